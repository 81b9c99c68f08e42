"""The table of docs/protocol.md as DVC experiments: its parts, their seeds, and when a run can be skipped.

Each part is an :class:`pipeline.paper.Experiment`; it runs seed by seed (:func:`shards`: the main part's
seeds first, then the comparison rows', the longer budget's and the ablations'), and each seed is collected
on its own in ``reports/paper/protocol/<name>@seeds<seed>``, merged by name when tabulated. The two rows of
a comparison come from one run of one experiment, or (an ablation and its reference) from runs made one
after the other; :mod:`pipeline.verdicts` refuses a pair made on two CPU models. A
shard already collected with the same :func:`digest` (its params, the committed params.yaml and every
file of code the training and evaluation stages depend on) is not run again: ``make paper`` resumes.

    python -m stages.paper run [--commit]   # every shard not yet collected, seed by seed
    python -m stages.paper report           # reports/paper.md, its figure and the README's table
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline import calibration
from pipeline.ablations import ABLATIONS, IMAGENET, imagenet_sets
from pipeline.config import load_yaml
from pipeline.io import atomic_write
from pipeline.paper import Experiment
from pipeline.readme import README, with_block
from pipeline.report import Comparison, fmt, fmt_interval, markdown_table, method_title, paired, sources_table
from pipeline.results import Results, load_collected
from pipeline.roles import METHOD_NAMES
from pipeline.verdicts import answers, compared_methods, losses_list, outcomes, rows_table, summary_table

RUNS = Path("reports/paper/protocol")
MAIN_SEEDS = (0, 2, 3, 4, 5, 6, 7, 8)  # seed 1 is never reported: the defaults were chosen on it
COMPARE_SEEDS = (0, 2, 3, 4, 5)
LONG_SEEDS = (0, 2, 3, 4, 5)
ABLATION_SEEDS = (0, 2, 3)
LONG = 3  # the longer budget: every step count times this
NOT_ABLATED = ("init-baseline",)  # the warm start is the table's own part, with its control


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

    def exp(name: str, sets: dict[str, Any], part: str, what: str, ablation: str = "") -> Experiment:
        return Experiment(name, sets, part, RUNS, s[part], ablation, what)  # type: ignore[arg-type]

    exps = [exp("paper", main, "main", "baseline, LAD teacher and student, compute-matched baseline, label-only "
                                       "control"),
            exp("paper-compare", {**main, "compare.enabled": True, "compare.methods": list(METHOD_NAMES)}, "compare",
                "the conventional teacher and its KD, CWD, CIRKD, DIST and Af-DCD students"),
            exp("paper-warm", {**chosen, "distill.init": "baseline"}, "main",
                "the LAD student warm-started from the baseline, and its control (equal student iterations)"),
            exp("paper-long", {**main, **longer}, "long", f"the main rows at {LONG}x the steps"),
            exp("paper-abl-reference", dict(chosen), "ablation", "params.yaml as committed (calibrated)",
                "reference")]
    for name in ablations if ablations is not None else [a for a in ABLATIONS if a not in NOT_ABLATED]:
        ov = ABLATIONS[name]
        exps.append(exp(f"paper-abl-{name}", {**chosen, **ov.sets}, "ablation", ov.what, name))
    if imagenet:
        exps.append(exp(f"paper-abl-{IMAGENET[0]}", {**chosen, **imagenet_sets(imagenet)}, "ablation", IMAGENET[1],
                        IMAGENET[0]))
    return exps


PART_ORDER = ("main", "compare", "long", "ablation")  # the questions every seed serves first


def shards(exps: list[Experiment]) -> list[Experiment]:
    """Every experiment's run per seed: part by part (:data:`PART_ORDER`), and within a part seed by seed, a
    seed's experiments one after the other (an ablation right after its reference, on the same machine)."""
    runs = sorted((PART_ORDER.index(e.part), seed, i) for i, e in enumerate(exps) for seed in e.seeds)
    return [exps[i].shard(seed) for _, seed, i in runs]


def code_files(dvc_yaml: Path = Path("dvc.yaml"), root: Path = Path(".")) -> list[Path]:
    """The project code the training and evaluation stages depend on (the report's own code excluded)."""
    stages = load_yaml(dvc_yaml.read_text())["stages"]
    deps = {d for name, st in stages.items() if name != "report" for d in st.get("deps", [])
            if isinstance(d, str) and d.split("/")[0] in ("stages", "pipeline")}
    files = set()
    for d in deps:
        path = root / d
        files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return sorted(files)


def digest(exp: Experiment, root: Path = Path(".")) -> str:
    """What the shard's results are a function of: its sets, the committed params.yaml and the stage code."""
    h = hashlib.sha256(json.dumps({"sets": exp.sets, "seeds": list(exp.seeds)}, sort_keys=True).encode())
    h.update((root / "params.yaml").read_bytes())
    for f in code_files(root / "dvc.yaml", root):
        h.update(f"{f.relative_to(root)}\0".encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def done(exp: Experiment, root: Path = Path("."), current: str | None = None) -> bool:
    """The shard is collected already, at the same :func:`digest` (``current``: it, when computed already)."""
    meta = root / exp.runs / exp.folder / "meta.json"
    return meta.is_file() and json.loads(meta.read_text()).get("digest") == (current or digest(exp, root))


# -- the table, from the collected shards ------------------------------------------------------------
PAPER_MD = Path("reports/paper.md")
COMPUTE_PNG = Path("reports/paper_compute.png")  # mIoU against training TFLOP (dvc.yaml plots)


def rows(runs: dict[str, Results]) -> list[tuple[tuple[str, str], str]]:
    """Every row of the table: (experiment, evaluation) and its title (the comparison rows' from
    ``runs["paper-compare"]``: its methods and its teacher's steps)."""
    methods, teacher = compared_methods(runs), "the student's network"
    if "paper-compare" in runs:
        cfg = runs["paper-compare"].cfg
        teacher += f", {cfg.compare.teacher_iters / cfg.train.iters:g}x the steps"
    return [(("paper", "baseline"), "baseline"),
            (("paper", "teacher_random"), "LAD teacher, random code book (as it trained)"),
            (("paper", "teacher_fixed"), "LAD teacher, fixed code book (as it distils)"),
            (("paper", "teacher_zero"), "LAD teacher, all-zero label channel"),
            (("paper", "lad_student"), "LAD student from scratch"),
            (("paper", "baseline_matched"), "compute-matched baseline"),
            (("paper", "label_student"), "label-only control"),
            (("paper-compare", "conventional_teacher"), f"conventional teacher ({teacher})"),
            *[(("paper-compare", f"distill_{m}"), f"{method_title(m)} student") for m in methods],
            (("paper-warm", "lad_student"), "LAD student warm-started from the baseline"),
            (("paper-warm", "baseline_ft"), "its control: the baseline trained on for as many steps"),
            (("paper-long", "baseline"), f"baseline, {LONG}x steps"),
            (("paper-long", "lad_student"), f"LAD student, {LONG}x steps (its teacher too)"),
            (("paper-long", "baseline_matched"), f"compute-matched baseline, {LONG}x steps")]


def ablations_section(runs: dict[str, Results]) -> str:
    """Each ablation against the reference on the seeds both ran: the teacher as it trained (the code book it
    trained with, its own noise) and the student; then which differences are beyond noise (docs/protocol.md: a
    paired interval that excludes zero)."""
    names = sorted(n for n in runs if n.startswith("paper-abl-") and n != "paper-abl-reference")
    if "paper-abl-reference" not in runs or not names:
        return "Not run."
    ref, rows, beyond, within = runs["paper-abl-reference"], [], [], []
    for name in names:
        short, cells = name.removeprefix("paper-abl-"), []
        teachers = (f"teacher_{runs[name].cfg.lad.codebook}", f"teacher_{ref.cfg.lad.codebook}")
        for model, (key, ref_key) in (("teacher", teachers), ("student", ("lad_student", "lad_student"))):
            o = paired(runs, Comparison((name, key), ("paper-abl-reference", ref_key), name, "the reference"))
            cells.append("—" if o is None else f"{fmt_interval(o.mean, o.half)}, "
                                               f"{o.wins}/{len(o.diffs)}" + (" **finding**" if o.finding else ""))
            if o is not None and len(o.diffs) > 1:  # one seed has no interval: neither
                (beyond if o.finding else within).append(f"{short}'s {model} ({o.mean:+.2f})")
        rows.append([short, runs[name].meta["what"], *cells])
    table = markdown_table(["ablation", "what it tests", "Δ teacher as trained [95 %], wins",
                            "Δ LAD student [95 %], wins"], rows)
    return (f"{table}\n\nBeyond noise (the interval excludes zero): {', '.join(beyond) or 'none'}. "
            f"Within noise on these seeds: {', '.join(within) or 'none'}.")


EXPERIMENTS = ("paper", "paper-compare", "paper-warm", "paper-long", "paper-abl-reference")  # the table's order


def timing_table(runs: dict[str, Results]) -> tuple[str, float]:
    """Per part of the protocol: its experiments, the seeds collected and the wall time; and the total, s."""
    parts: dict[str, list[dict[str, Any]]] = {}
    for r in runs.values():
        parts.setdefault(r.meta["part"], []).extend(r.metas)
    lines = [[part, ", ".join(f"`{n}`" for n in sorted({m["name"] for m in metas})), str(len(metas)),
              fmt(sum(m["seconds"] for m in metas) / 60, 1)]
             for part in [p for p in PART_ORDER if p in parts] for metas in [parts[part]]]
    total = sum(m["seconds"] for metas in parts.values() for m in metas)
    return markdown_table(["part", "experiments", "runs (one seed each)", "wall min"], lines), total


def write_report(root: Path = Path(".")) -> str:
    """reports/paper.md, its compute figure and the README's table from the collected shards of :data:`RUNS`
    (the README's markers checked before anything is written); returns the text."""
    from pipeline.figures import plot_compute  # matplotlib: only when a table is written

    runs = load_collected(root / RUNS, list(EXPERIMENTS))
    if "paper" not in runs:
        raise FileNotFoundError(f"{root / RUNS}: the table's main experiment was not collected yet")
    found = outcomes(runs, compared_methods(runs))
    readme = with_block((root / README).read_text(), "paper-table", summary_table(found), root / README)
    table, points = rows_table(runs, rows(runs))
    text, losses = answers(found)
    metas = [m for r in runs.values() for m in r.metas]
    dtypes = sorted({"float32" if r.cfg.train.amp == "none" else f"{r.cfg.train.amp} autocast" for r in runs.values()})
    timing, seconds = timing_table(runs)
    body = "\n\n".join([
        "# The paper's table, by docs/protocol.md",
        f"Written by `python -m stages.paper report` from {len(metas)} collected runs in `{RUNS}` "
        f"({len({m['git_commit'] for m in metas})} commits, each run's under Sources; CPUs: "
        f"{'; '.join(sorted({m.get('cpu', '?') for m in metas}))}; {', '.join(dtypes)}; "
        f"{seconds / 60:.1f} min of wall time). Every difference is paired by seed, "
        "both rows of a seed from one CPU model; 95 % Student-t intervals; wins: the seeds the first row is "
        "higher on.",
        "## Rows", table, "![mIoU against training compute](paper_compute.png)",
        "## What the intervals allow", text,
        "## Where LAD is lower", losses_list(losses),
        "## Ablations", ablations_section(runs),
        "## Wall time per part", timing,
        "## Sources", f"Every number above comes from the files in `{RUNS}/<experiment>@seeds<seed>/`, copied from "
        "the workspace right after that run; a model restored from DVC's run cache names the MLflow run that "
        "trained it.", sources_table(list(runs.values()))]) + "\n"
    plot_compute(points, root / COMPUTE_PNG)
    atomic_write(root / PAPER_MD, lambda tmp: tmp.write_text(body))
    atomic_write(root / README, lambda tmp: tmp.write_text(readme))
    return body
