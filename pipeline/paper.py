"""The paper's table as DVC experiments: the plan, what each one leaves behind, and their tables.

``make paper`` (``python -m stages.paper run``, then ``report``) runs every experiment of :func:`plan`
in the workspace one after the other with ``dvc exp run``; DVC's run cache restores every stage an
experiment shares with an earlier one, so each reruns only what its params change. After each run the
files its numbers come from are copied to ``reports/paper/runs/<experiment>/`` (git-tracked), with
``meta.json``: the params it set, its seeds, its wall time, the commit and its MLflow parent run.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.ablations import ABLATIONS
from pipeline.io import git_commit, write_json

RUNS = Path("reports/paper/runs")  # one folder per experiment: its eval and train JSON, meta.json
SEEDS = (0, 1, 2)  # reported seeds of generator seed 0; the default was chosen on generator seed 1, seed 1
ABLATION_SEEDS = (0,)  # the ablations run on the first seed only: three would take the hour twice over
PREFIX = "paper"


@dataclass(frozen=True)
class Experiment:
    """One DVC experiment of the table: its name, the params it sets (-S) and what it is for."""

    name: str
    sets: dict[str, Any]
    part: str  # main | warm | ablation
    ablation: str = ""  # its key of pipeline.ablations.ABLATIONS ("reference": params.yaml as committed)
    what: str = ""
    seeds: tuple[int, ...] = field(default=SEEDS)


def plan(seeds: tuple[int, ...] = SEEDS, ablation_seeds: tuple[int, ...] = ABLATION_SEEDS,
         ablations: list[str] | None = None) -> list[Experiment]:
    """The experiments in the order they run: the table first, then the ablations."""
    table = {"seeds": list(seeds), "compare.enabled": True}
    exps = [Experiment(PREFIX, table, "main", what="LAD student from scratch, the comparison rows", seeds=seeds),
            Experiment(f"{PREFIX}-warm", {**table, "distill.init": "baseline"}, "warm",
                       what="LAD student warm-started from the baseline, with the equal-budget control",
                       seeds=seeds)]
    abl = {"seeds": list(ablation_seeds)}
    exps.append(Experiment(f"{PREFIX}-abl-reference", abl, "ablation", "reference", "params.yaml as committed",
                           ablation_seeds))
    for name in ablations if ablations is not None else list(ABLATIONS):
        what, sets = ABLATIONS[name]
        exps.append(Experiment(f"{PREFIX}-abl-{name}", {**abl, **sets}, "ablation", name, what, ablation_seeds))
    return exps


def set_args(sets: dict[str, Any]) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` (values in YAML/JSON form: lists, booleans)."""
    return [a for k, v in sets.items() for a in ("-S", f"{k}={v if isinstance(v, str) else json.dumps(v)}")]


def collect(exp: Experiment, seconds: float, parent_run: str | None, root: Path = Path(".")) -> Path:
    """Copy the experiment's results from the workspace into ``RUNS/<name>`` (replacing an older copy)."""
    dest = root / RUNS / exp.name
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
    write_json(tmp / "meta.json", {"name": exp.name, "part": exp.part, "ablation": exp.ablation, "what": exp.what,
                                   "sets": exp.sets, "seeds": list(exp.seeds), "seconds": round(seconds, 1),
                                   "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                   "git_commit": git_commit(), "mlflow_parent_run": parent_run})
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
