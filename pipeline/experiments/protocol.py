"""The table of docs/protocol.md as DVC experiments: its parts, their seeds, and the order they run in.

Each part is an :class:`pipeline.experiments.Experiment`; it runs seed by seed (:func:`shards`: the main
part's seeds first, then the comparison rows', the longer budget's and the ablations'), and each seed is
collected on its own in ``reports/paper/protocol/<name>@seeds<seed>``, merged by name when tabulated. The two
rows of a comparison come from one run of one experiment, or (an ablation and its reference) from runs made
one after the other; :func:`pipeline.statistics.paired` refuses a pair made on two CPU models. A shard
collected already and still current (:mod:`pipeline.experiments.currency`) is not run again: ``make paper``
resumes.

    python -m commands.paper run [--commit]   # every shard not yet collected, seed by seed
    python -m commands.paper report           # reports/paper.md, its figure and the README's table
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import method_section
from pipeline.experiments import TABLE_METHODS, Experiment, calibration
from pipeline.experiments.ablations import ABLATIONS, IMAGENET, imagenet_sets

RUNS = Path("reports/paper/protocol")
MAIN_SEEDS = (0, 2, 3, 4, 5, 6, 7, 8)  # seed 1 is never reported: the defaults were chosen on it
COMPARE_SEEDS = (0, 2, 3, 4, 5)
LONG_SEEDS = (0, 2, 3, 4, 5)
ABLATION_SEEDS = (0, 2, 3)
LONG = 3  # the longer budget: every step count times this
NOT_ABLATED = ("init-baseline",)  # the warm start is the table's own part, with its control
PART_ORDER = ("main", "compare", "long", "ablation")  # the questions every seed serves first
EXPERIMENTS = ("paper", "paper-compare", "paper-warm", "paper-long", "paper-abl-reference")  # the table's order
REFERENCE = "paper-abl-reference"  # the ablations' reference: params.yaml as committed (calibrated)
ABLATION_PREFIX = "paper-abl-"


def plan(params: dict[str, Any], chosen: dict[str, Any] | None = None, ablations: list[str] | None = None,
         seeds: dict[str, tuple[int, ...]] | None = None, imagenet: str | None = None) -> list[Experiment]:
    """The protocol's experiments (``params``: params.yaml as a dict; ``chosen``: the calibrated weights'
    sets, by default from reports/calibration.json; ``seeds``: part -> seeds, to shrink it; ``imagenet``: a
    timm weights file of the student's backbone, to add the ImageNet-initialised ablation)."""
    # the calibrated weights, and no latency loops (the table reports no latency; about 20 s per evaluation)
    chosen = {**(calibration.chosen_sets(params) if chosen is None else chosen), "evaluate.latency_reps": 0}
    s = {"main": MAIN_SEEDS, "compare": COMPARE_SEEDS, "long": LONG_SEEDS, "ablation": ABLATION_SEEDS,
         **(seeds or {})}
    main = {**chosen, "controls.enabled": True}
    longer = {"train.iters": LONG * params["train"]["iters"], "distill.iters": LONG * params["distill"]["iters"],
              "controls.matched_iters": LONG * params["controls"]["matched_iters"]}
    methods = ", ".join(method_section(m).title for m in TABLE_METHODS)

    def exp(name: str, sets: dict[str, Any], part: str, what: str, ablation: str = "") -> Experiment:
        return Experiment(name, sets, part, RUNS, s[part], ablation, what)  # type: ignore[arg-type]

    exps = [exp("paper", main, "main", "baseline, LAD teacher and student, compute-matched baseline, label-only "
                                       "control"),
            exp("paper-compare", {**main, "compare.enabled": True, "compare.methods": list(TABLE_METHODS)}, "compare",
                f"the conventional teacher and its students: {methods}"),
            exp("paper-warm", {**chosen, "distill.init": "baseline"}, "main",
                "the LAD student warm-started from the baseline, and its control (equal student iterations)"),
            exp("paper-long", {**main, **longer}, "long", f"the main rows at {LONG}x the steps"),
            exp(REFERENCE, dict(chosen), "ablation", "params.yaml as committed (calibrated)", "reference")]
    for name in ablations if ablations is not None else [a for a in ABLATIONS if a not in NOT_ABLATED]:
        ov = ABLATIONS[name]
        exps.append(exp(f"{ABLATION_PREFIX}{name}", {**chosen, **ov.sets}, "ablation", ov.what, name))
    if imagenet:
        exps.append(exp(f"{ABLATION_PREFIX}{IMAGENET[0]}", {**chosen, **imagenet_sets(imagenet)}, "ablation",
                        IMAGENET[1], IMAGENET[0]))
    return exps


def shards(exps: list[Experiment]) -> list[Experiment]:
    """Every experiment's run per seed: part by part (:data:`PART_ORDER`), and within a part seed by seed, a
    seed's experiments one after the other (an ablation right after its reference, on the same machine)."""
    runs = sorted((PART_ORDER.index(e.part), seed, i) for i, e in enumerate(exps) for seed in e.seeds)
    return [exps[i].shard(seed) for _, seed, i in runs]


# where each question's rows come from (pipeline.words.questions): the experiment of each row set
ROW_SETS = {"main": "paper", "compare": "paper-compare", "warm": "paper-warm", "long": "paper-long"}
# the rows of docs/protocol.md's table, experiment by experiment (a comparison row per method of its run)
ROWS = {"paper": ("baseline", "teacher_random", "teacher_fixed", "teacher_zero", "lad_student", "baseline_matched",
                  "label_student"),
        "paper-compare": ("conventional_teacher", *(f"distill_{m}" for m in TABLE_METHODS)),
        "paper-warm": ("lad_student", "baseline_ft"),
        "paper-long": ("baseline", "lad_student", "baseline_matched")}
