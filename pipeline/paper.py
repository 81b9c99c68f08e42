"""The paper's table as DVC experiments: the plan, what each one leaves behind, and writing their tables.

``make paper`` (``python -m stages.paper run``, then ``report``) runs every experiment of :func:`plan`
in the workspace one after the other with ``dvc exp run``; DVC's run cache restores every stage an
experiment shares with an earlier one, so each reruns only what its params change. After each run the
files its numbers come from are copied to ``reports/paper/runs/<experiment>/`` (git-tracked), with
``params.yaml`` and ``meta.json``: the params it set, its seeds, its wall time, the commit and its MLflow
parent run. :mod:`pipeline.results` reads them back as it reads the workspace; :mod:`pipeline.report` renders.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pipeline import calibration, report
from pipeline.ablations import ABLATIONS, IMAGENET, imagenet_sets
from pipeline.figures import plot_ablations
from pipeline.io import atomic_write, cpu_name, git_commit, write_json
from pipeline.readme import README, with_block
from pipeline.results import PARAMS, load_collected

RUNS = Path("reports/paper/runs")  # one folder per experiment: its eval and train JSON, params.yaml, meta.json
PAPER_MD = Path("reports/paper.md")
ABLATIONS_MD = Path("reports/ablations.md")  # git-tracked; no DVC stage reads it
ABLATIONS_PNG = Path("reports/ablations.png")
SEEDS = (0, 1, 2)  # reported seeds of generator seed 0; the default was chosen on generator seed 1, seed 1
ABLATION_SEEDS = (0,)  # the ablations run on the first seed only: three would take the hour twice over
PREFIX = "paper"


@dataclass(frozen=True)
class Experiment:
    """One DVC experiment of the table: its name, the params it sets (-S) and what it is for."""

    name: str
    sets: dict[str, Any]
    # the table's two, an ablation, a calibration probe, or a part of docs/protocol.md's table
    part: Literal["main", "warm", "ablation", "calibration", "compare", "long"]
    ablation: str = ""  # its key of pipeline.ablations.ABLATIONS ("reference": params.yaml as committed)
    what: str = ""
    seeds: tuple[int, ...] = field(default=SEEDS)
    runs: Path = RUNS  # where its part is collected
    default_seeds: tuple[int, ...] | None = None  # collected without a seed suffix at these (None: its part's)

    @property
    def folder(self) -> str:
        """Where it is collected: ``<runs>/<name>``, or with other seeds than its part's (one machine's share
        of it) ``<runs>/<name>@seeds<a>-<b>``; the shards of one experiment merge when the table is written."""
        default = self.default_seeds
        if default is None:
            default = ABLATION_SEEDS if self.part == "ablation" else SEEDS
        return self.name if self.seeds == tuple(default) else f"{self.name}@seeds{'-'.join(map(str, self.seeds))}"

    def shard(self, seed: int) -> Experiment:
        """Its run on one seed (sets ``seeds``), collected as ``<name>@seeds<seed>``."""
        return replace(self, sets={**self.sets, "seeds": [seed]}, seeds=(seed,), default_seeds=())


def plan(seeds: tuple[int, ...] = SEEDS, ablation_seeds: tuple[int, ...] = ABLATION_SEEDS,
         ablations: list[str] | None = None, imagenet: str | None = None) -> list[Experiment]:
    """The experiments in the order they run: the table first, then the ablations (``imagenet``: a timm
    weights file of the student's backbone, to add the ImageNet-initialised ablation)."""
    table = {"seeds": list(seeds), "compare.enabled": True}
    exps = [Experiment(PREFIX, table, "main", what="LAD student from scratch, the comparison rows", seeds=seeds),
            Experiment(f"{PREFIX}-warm", {**table, "distill.init": "baseline"}, "warm",
                       what="LAD student warm-started from the baseline, with the equal-budget control",
                       seeds=seeds)]
    abl = {"seeds": list(ablation_seeds)}
    exps.append(Experiment(f"{PREFIX}-abl-reference", abl, "ablation", "reference", "params.yaml as committed",
                           ablation_seeds))
    for name in ablations if ablations is not None else list(ABLATIONS):
        ov = ABLATIONS[name]
        exps.append(Experiment(f"{PREFIX}-abl-{name}", {**abl, **ov.sets}, "ablation", name, ov.what, ablation_seeds))
    if imagenet:
        exps.append(Experiment(f"{PREFIX}-abl-{IMAGENET[0]}", {**abl, **imagenet_sets(imagenet)}, "ablation",
                               IMAGENET[0], IMAGENET[1], ablation_seeds))
    return exps


def calibration_plan(params: dict[str, Any], seeds: tuple[int, ...] = calibration.SEEDS) -> list[Experiment]:
    """The calibration probes (``params``: params.yaml as a dict), the committed weights' first."""
    return [Experiment(calibration.probe_name(s), {**calibration.base_sets(seeds), **calibration.probe_sets(params, s)},
                       "calibration", what=f"every tuned method's distillation weights x{s:.3g}", seeds=seeds,
                       runs=calibration.RUNS, default_seeds=calibration.SEEDS)
            for s in sorted(calibration.PROBES, key=lambda s: s != 1.0)]


def collect(exp: Experiment, seconds: float, parent_run: str | None, root: Path = Path("."),
            extra: dict[str, Any] | None = None) -> Path:
    """Copy the experiment's results from the workspace into ``<its runs>/<folder>`` (replacing an older copy);
    ``extra``: more of meta.json (a protocol shard's digest)."""
    dest = root / exp.runs / exp.folder
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for seed in exp.seeds:
        for sub in (f"reports/eval/seed{seed}", f"reports/train/seed{seed}"):
            src = root / sub
            if not src.is_dir():
                raise FileNotFoundError(f"{src}: missing after `dvc exp run -n {exp.name}`")
            (tmp / sub).mkdir(parents=True)
            for f in src.glob("*.json"):
                shutil.copy2(f, tmp / sub / f.name)
    shutil.copy2(root / "reports/metrics.json", tmp / "metrics.json")
    shutil.copy2(root / PARAMS, tmp / PARAMS)  # the params it ran with: the tables name its settings
    write_json(tmp / "meta.json", {"name": exp.name, "folder": exp.folder, "part": exp.part, "ablation": exp.ablation,
                                   "what": exp.what,
                                   "sets": exp.sets, "seeds": list(exp.seeds), "seconds": round(seconds, 1),
                                   "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                   "git_commit": git_commit(), "cpu": cpu_name(), "mlflow_parent_run": parent_run,
                                   **(extra or {})})
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


# -- the tables, from the collected runs ---------------------------------------------------------
def write_report(root: Path = Path(".")) -> str:
    """reports/ablations.md (+ .png) when the ablations ran, and reports/paper.md and the README's table when
    the table's two experiments ran, from the collected runs; returns what was written, as markdown."""
    runs = load_collected(root / RUNS, [e.name for e in plan()], root / PARAMS)
    parts = {r.meta["part"]: r for r in reversed(runs.values())}  # the first of each part
    main, warm = parts.get("main"), parts.get("warm")
    ablations = [r for r in runs.values() if r.meta["part"] == "ablation"]
    shard_metas = [m for r in runs.values() for m in r.meta.get("shards", [r.meta])]
    abl = report.ablations_markdown(ablations, main) if ablations else None
    text = readme = None
    if main is not None and warm is not None:
        if (root / README).is_file():  # its markers are checked before anything is written
            readme = with_block((root / README).read_text(), "paper-table", report.summary_table(main, warm),
                                root / README)
        text = report.fill(
            report.PAPER, main, experiments=str(len(runs)),
            commits=", ".join(sorted({f"`{m['git_commit'][:10]}`" for m in shard_metas})),
            cpus="; ".join(sorted({m.get("cpu", "a CPU not recorded") for m in shard_metas})),
            minutes=f"{sum(r.meta['seconds'] for r in runs.values()) / 60:.1f}",
            students=report.students_table(report.student_rows(main, warm)), teachers=report.teachers_table(main),
            conclusions=report.conclusions(main, warm), ablations=abl or "Not run.\n",
            sources=report.sources_table(list(runs.values())), timing=report.timing_table(list(runs.values())))
    elif abl is None:
        raise FileNotFoundError(f"{root / RUNS}: neither the table's experiments nor the ablations were collected")
    if ablations:
        plot_ablations(report.ablation_mious(ablations), report.ABLATION_SHOWN, root / ABLATIONS_PNG)
    for path, body in ((ABLATIONS_MD, abl), (PAPER_MD, text), (README, readme)):
        if body is not None:
            atomic_write(root / path, lambda tmp, body=body: tmp.write_text(body))
    return text or abl or ""
