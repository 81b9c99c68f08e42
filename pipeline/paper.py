"""The paper's table as DVC experiments: what one experiment is, and what it leaves behind.

``python -m stages.paper run`` runs the experiments of :func:`pipeline.protocol.plan` (the table) or of
:func:`calibration_plan` (the probes) in the workspace, one after the other with ``dvc exp run``; DVC's run
cache restores every stage an experiment shares with an earlier one, so each reruns only what its params
change. After each run the files its numbers come from are copied to ``<its runs>/<folder>/`` (git-tracked),
with ``params.yaml`` and ``meta.json``: the params it set, its seeds, its wall time, the commit, the CPU and
its MLflow parent run. :mod:`pipeline.results` reads them back as it reads the workspace.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pipeline import calibration
from pipeline.io import cpu_name, git_commit, write_json
from pipeline.results import PARAMS


@dataclass(frozen=True)
class Experiment:
    """One DVC experiment of the table: its name, the params it sets (-S) and what it is for."""

    name: str
    sets: dict[str, Any]
    # a part of docs/protocol.md's table, or a calibration probe
    part: Literal["main", "compare", "long", "ablation", "calibration"]
    runs: Path  # where its part is collected
    seeds: tuple[int, ...]
    ablation: str = ""  # its key of pipeline.ablations.ABLATIONS ("reference": params.yaml as committed)
    what: str = ""
    default_seeds: tuple[int, ...] | None = None  # collected without a seed suffix at these (None: its seeds)

    @property
    def folder(self) -> str:
        """Where it is collected: ``<runs>/<name>``, or with other seeds than its default ones (one seed's
        shard, one machine's share) ``<runs>/<name>@seeds<a>-<b>``; the shards of one experiment merge when
        the table is written."""
        default = self.seeds if self.default_seeds is None else self.default_seeds
        return self.name if self.seeds == tuple(default) else f"{self.name}@seeds{'-'.join(map(str, self.seeds))}"

    def shard(self, seed: int) -> Experiment:
        """Its run on one seed (sets ``seeds``), collected as ``<name>@seeds<seed>``."""
        return replace(self, sets={**self.sets, "seeds": [seed]}, seeds=(seed,), default_seeds=())


def calibration_plan(params: dict[str, Any], seeds: tuple[int, ...] = calibration.SEEDS) -> list[Experiment]:
    """The calibration probes (``params``: params.yaml as a dict), the committed weights' first."""
    return [Experiment(calibration.probe_name(s), {**calibration.base_sets(seeds), **calibration.probe_sets(params, s)},
                       "calibration", calibration.RUNS, seeds, what=f"every tuned method's distillation weights "
                       f"x{s:.3g}", default_seeds=calibration.SEEDS)
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
