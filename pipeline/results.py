"""Results: what was collected. The second step of the one-way flow (pipeline/experiments/__init__.py).

What the evaluation and training stages left, for one seed or many, read in one way.

The workspace after ``dvc repro`` and a seed of an experiment of the paper's table collected by ``make paper``
(``reports/paper/protocol/<name>@seeds<N>/``) hold the same files under the same sub-folders, so one loader
reads both: ``reports/eval/seed<N>/<evaluation>.json`` and ``reports/train/seed<N>/<role>.json`` for each
seed. :func:`collect` copies an experiment's files there right after its run; :mod:`pipeline.statistics`
pairs them, :mod:`pipeline.words` words them, :mod:`pipeline.documents` writes the files.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import NUMERICS
from pipeline.config import Config, config_from_dict, load_yaml
from pipeline.experiments import Experiment
from pipeline.experiments.currency import META, PARAMS, with_added_keys
from pipeline.io import cpu_name, git_commit, write_json
from pipeline.overlays import Overlay
from pipeline.paths import EVAL, TRAIN_REPORTS
from pipeline.roles import EVALUATIONS, ROLES, training_tflop

SCORES = ("miou", "pixel_acc", "mean_acc")  # the scores averaged over seeds (reports/metrics.json)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def read_seeds(root: Path, kind: Path, seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Name -> one JSON per seed from ``root/kind/seed<N>/<name>.json``; names missing for a seed are dropped."""
    per_seed = [{f.stem: json.loads(f.read_text()) for f in sorted((root / kind / f"seed{s}").glob("*.json"))}
                for s in seeds]
    names = sorted(set.intersection(*(set(found) for found in per_seed)))
    return {n: [found[n] for found in per_seed] for n in names}


@dataclass
class Results:
    """The results of one run of the pipeline (the workspace, or one collected DVC experiment).

    Attributes:
        cfg: the params it ran with.
        seeds: its seeds, in order; every list below holds one entry per seed.
        eval: evaluation (a key of :data:`pipeline.roles.EVALUATIONS`) -> its result per seed.
        train: role -> its training summary per seed (roles that trained on every seed only).
        name: the DVC experiment ("" for the workspace).
        meta: a collected experiment's ``meta.json`` (empty for the workspace).
    """

    cfg: Config
    seeds: list[int]
    eval: dict[str, list[dict[str, Any]]]
    train: dict[str, list[dict[str, Any]]]
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, cfg: Config, root: Path = Path("."), name: str = "", meta: dict[str, Any] | None = None) -> Results:
        """Every result under ``root`` for ``cfg.seeds``; an error if no evaluation was found for every seed."""
        seeds = list(cfg.seeds)
        found = read_seeds(root, EVAL, seeds)
        if "baseline" not in found:
            raise FileNotFoundError(f"{root / EVAL}/seed<N>/baseline.json: missing for a seed of {seeds}; run the "
                                    "stages before the report (dvc repro)")
        train = {r: runs for r, runs in read_seeds(root, TRAIN_REPORTS, seeds).items()
                 if all("train_seconds" in t for t in runs)}  # a skipped stage writes a note, not a summary
        return cls(cfg, seeds, found, train, name, meta or {})

    @classmethod
    def collected(cls, folder: Path, params: Path = Path(PARAMS)) -> Results:
        """A collected experiment: its own params.yaml, or (collected before it was kept) ``params`` with the
        experiment's sets applied."""
        meta = json.loads((folder / META).read_text())
        own = folder / PARAMS
        values = with_added_keys(load_yaml((own if own.is_file() else params).read_text()), params)
        if not own.is_file():
            values = Overlay(meta["name"], meta["sets"]).merged(values)
        return cls.load(config_from_dict(values, networks=False), folder, meta["name"], meta)

    @classmethod
    def merged(cls, shards: list[Results]) -> Results:
        """One experiment collected in shards: disjoint seeds run apart (on several machines, say) with the
        same params otherwise. Their seeds in order; ``meta["shards"]`` keeps each shard's own meta."""
        first, seeds = shards[0], [s for r in shards for s in r.seeds]
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        folders = ", ".join(r.meta.get("folder", r.name) for r in shards)
        if twice:
            raise ValueError(f"experiment {first.name}: seed(s) {twice} collected more than once ({folders}); "
                             "remove one of the folders")
        base = {k: v for k, v in first.cfg.to_dict().items() if k != "seeds"}
        for r in shards[1:]:
            other = {k: v for k, v in r.cfg.to_dict().items() if k != "seeds"}
            if other != base:
                keys = sorted(k for k in base.keys() | other.keys() if base.get(k) != other.get(k))
                raise ValueError(f"experiment {first.name}: its shards ({folders}) ran with different params "
                                 f"(sections {keys}); collect each with the same commit's params.yaml")
        order = sorted(range(len(seeds)), key=seeds.__getitem__)

        def join(kind: str) -> dict[str, list[dict[str, Any]]]:
            names = set.intersection(*(set(getattr(r, kind)) for r in shards))
            flat = {n: [x for r in shards for x in getattr(r, kind)[n]] for n in names}  # in the shards' seed order
            return {n: [flat[n][i] for i in order] for n in sorted(names)}

        meta = {**first.meta, "seeds": sorted(seeds), "sets": {**first.meta["sets"], "seeds": sorted(seeds)},
                "seconds": sum(r.meta["seconds"] for r in shards), "shards": [r.meta for r in shards],
                "mlflow_parent_runs": {str(s): r.meta.get("mlflow_parent_run") for r in shards for s in r.seeds}}
        cfg = first.cfg.model_copy(update={"seeds": sorted(seeds)})
        return cls(cfg, sorted(seeds), join("eval"), join("train"), first.name, meta)

    def parent_run(self, seed: int) -> str | None:
        """The MLflow parent run of the experiment's run that gave ``seed``."""
        return self.meta.get("mlflow_parent_runs", {}).get(str(seed), self.meta.get("mlflow_parent_run"))

    def training_tflop(self, key: str) -> float:
        """Training TFLOP of the model behind evaluation ``key`` with every model it needed (its teacher, a warm
        start), from the evaluated forward GFLOPs and iterations (:func:`pipeline.roles.training_tflop`)."""
        def evaluated(role: str) -> dict[str, Any]:  # any evaluation of the role: one network, one count
            return self.first(key if EVALUATIONS[key].role == role else
                              next(e for e, ev in EVALUATIONS.items() if ev.role == role and e in self.eval))

        return training_tflop(EVALUATIONS[key].role, self.cfg, lambda r: evaluated(r)["gflops"],
                              lambda r: evaluated(r)["iterations"])

    def title(self, key: str) -> str:
        """Evaluation ``key``'s row name under the params it ran with."""
        return EVALUATIONS[key].title(self.cfg)

    def warm(self, key: str) -> bool:
        """The model behind evaluation ``key`` was warm-started (from the params it ran with)."""
        return ROLES[EVALUATIONS[key].role].warm_start(self.cfg) is not None

    def first(self, key: str) -> dict[str, Any]:
        """Evaluation ``key`` of the first seed (what is the same on every seed: the network, its cost)."""
        return self.eval[key][0]

    def miou(self, key: str) -> list[float]:
        return [r["miou"] for r in self.eval[key]]

    @property
    def metas(self) -> list[dict[str, Any]]:
        """The meta.json of each run behind it: its shards', when collected in shards."""
        return self.meta.get("shards", [self.meta])

    def shard(self, seed: int) -> dict[str, Any]:
        """The meta.json of the run that gave ``seed``."""
        return next((m for m in self.metas if seed in m.get("seeds", [])), self.meta)

    def cpu(self, seed: int) -> str:
        """The CPU model the run of ``seed`` was made on."""
        return self.shard(seed).get("cpu", "a CPU not recorded")

    def mean(self, key: str, score: str = "miou") -> float:
        """Mean over seeds of ``score`` (a key of :data:`SCORES`) of evaluation ``key``."""
        return mean_std([r[score] for r in self.eval[key]])[0]

    def train_seconds(self, key: str | None) -> float | None:
        """Mean training seconds of the model behind evaluation ``key`` (None: not trained, or no record)."""
        runs = self.train.get(self.first(key)["model"]) if key else None
        return mean_std([t["train_seconds"] for t in runs])[0] if runs else None

    def summary(self) -> dict[str, dict[str, float]]:
        """Per evaluation: the number of seeds and the mean and sample std of each score."""
        out = {}
        for name, runs in self.eval.items():
            row: dict[str, float] = {"seeds": len(runs)}
            for m in SCORES:
                mean, std = mean_std([r[m] for r in runs])
                row[m], row[f"{m}_std"] = round(mean, 3), round(std, 3)
            out[name] = row
        return out


def load_collected(root: Path, order: list[str] = (), params: Path = Path(PARAMS)) -> dict[str, Results]:
    """Every experiment collected in ``root``, by name, in ``order`` (others after, by name); the shards of
    one experiment (folders ``<name>@seeds<...>``, from machines that each ran some seeds) merged."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no collected experiment; run `python -m commands.paper run` first")
    rank = {name: i for i, name in enumerate(order)}
    shards: dict[str, list[Results]] = {}
    for f in sorted(root.iterdir()):
        if (f / META).is_file():
            r = Results.collected(f, params)
            shards.setdefault(r.name, []).append(r)
    runs = [group[0] if len(group) == 1 else Results.merged(group) for group in shards.values()]
    return {r.name: r for r in sorted(runs, key=lambda r: (rank.get(r.name, len(rank)), r.name))}


def collect(exp: Experiment, seconds: float, parent_run: str | None, root: Path = Path("."),
            extra: dict[str, Any] | None = None) -> Path:
    """Copy the experiment's results from the workspace into ``<its runs>/<folder>`` (replacing an older copy),
    with the params it ran with and ``meta.json`` (the numerics version of the code; ``extra``: more of it)."""
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
    write_json(tmp / META, {"name": exp.name, "folder": exp.folder, "part": exp.part, "ablation": exp.ablation,
                            "what": exp.what, "sets": exp.sets, "seeds": list(exp.seeds), "seconds": round(seconds, 1),
                            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                            "git_commit": git_commit(), "cpu": cpu_name(), "mlflow_parent_run": parent_run,
                            "numerics": NUMERICS, **(extra or {})})
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
