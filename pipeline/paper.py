"""The paper's table as DVC experiments: the plan, what each one leaves behind, and their tables.

``make paper`` (``python -m stages.paper run``, then ``report``) runs every experiment of :func:`plan`
in the workspace one after the other with ``dvc exp run``; DVC's run cache restores every stage an
experiment shares with an earlier one, so each reruns only what its params change. After each run the
files its numbers come from are copied to ``reports/paper/runs/<experiment>/`` (git-tracked), with
``meta.json``: the params it set, its seeds, its wall time, the commit and its MLflow parent run.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.ablations import (
    ABLATIONS,
    ABLATIONS_MD,
    ABLATIONS_PNG,
    IMAGENET,
    ablation_rows,
    imagenet_sets,
    plot_ablations,
)
from pipeline.io import atomic_write, git_commit, write_json
from pipeline.overlays import yaml_value
from pipeline.report import (
    PUBLISHED_NOTE,
    fmt,
    fmt_interval,
    markdown_table,
    mean_std,
    method_title,
    model_name,
    paired_interval,
    published,
)
from pipeline.roles import COMPARE_PREFIX, METHOD_NAMES

RUNS = Path("reports/paper/runs")  # one folder per experiment: its eval and train JSON, meta.json
PAPER_MD = Path("reports/paper.md")
README = Path("README.md")  # its table between the two markers below is rewritten by `report`
MARKERS = ("<!-- paper-table:start -->", "<!-- paper-table:end -->")
SEEDS = (0, 1, 2)  # reported seeds of generator seed 0; the default was chosen on generator seed 1, seed 1
ABLATION_SEEDS = (0,)  # the ablations run on the first seed only: three would take the hour twice over
PREFIX = "paper"


@dataclass(frozen=True)
class Experiment:
    """One DVC experiment of the table: its name, the params it sets (-S) and what it is for."""

    name: str
    sets: dict[str, Any]
    part: Literal["main", "warm", "ablation"]  # the table's two experiments, or an ablation
    ablation: str = ""  # its key of pipeline.ablations.ABLATIONS ("reference": params.yaml as committed)
    what: str = ""
    seeds: tuple[int, ...] = field(default=SEEDS)


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


# -- what the runs left ---------------------------------------------------------------------------
@dataclass
class Run:
    """One collected experiment: its meta data and, per evaluation and training role, one result per seed."""

    meta: dict[str, Any]
    eval: dict[str, list[dict[str, Any]]]
    train: dict[str, list[dict[str, Any]]]

    @classmethod
    def load(cls, folder: Path) -> Run:
        meta = json.loads((folder / "meta.json").read_text())
        found: dict[str, dict[str, list[dict[str, Any]]]] = {"eval": {}, "train": {}}
        for kind, per_role in found.items():
            for seed in meta["seeds"]:
                for f in sorted((folder / f"reports/{kind}/seed{seed}").glob("*.json")):
                    per_role.setdefault(f.stem, []).append(json.loads(f.read_text()))
        n = len(meta["seeds"])
        return cls(meta, {k: v for k, v in found["eval"].items() if len(v) == n},
                   {k: v for k, v in found["train"].items() if len(v) == n and "train_seconds" in v[0]})

    @property
    def name(self) -> str:
        return self.meta["name"]

    def miou(self, key: str) -> list[float]:
        return [r["miou"] for r in self.eval[key]]

    def train_seconds(self, key: str) -> float | None:
        """Mean training seconds of the model behind evaluation ``key`` (None: not trained, or no record)."""
        runs = self.train.get(self.eval[key][0]["model"])
        return mean_std([t["train_seconds"] for t in runs])[0] if runs else None


def load_runs(root: Path = RUNS) -> dict[str, Run]:
    """Every collected experiment, by name, in the order of :func:`plan` (others after, by name)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no collected experiment; run `python -m stages.paper run` first")
    order = {e.name: i for i, e in enumerate(plan())}
    runs = [Run.load(f) for f in root.iterdir() if (f / "meta.json").is_file()]
    return {r.name: r for r in sorted(runs, key=lambda r: (order.get(r.name, len(order)), r.name))}


# -- tables ---------------------------------------------------------------------------------------
def mean_pm(values: list[float]) -> str:
    mean, std = mean_std(values)
    return fmt(mean) + (f" ± {fmt(std)}" if len(values) > 1 else "")


def versus(run: Run, key: str, ref: str = "baseline") -> str:
    return fmt_interval(*paired_interval(run.miou(key), run.miou(ref))[:2])


Row = tuple[Run, str, str, str | None, str]


def student_rows(main: Run, warm: Run) -> list[Row]:
    """(experiment, evaluation, method, the teacher's evaluation, its row of pipeline.report.PUBLISHED) of
    every row of the students' table."""
    rows: list[Row] = [(main, "baseline", "Baseline", None, "baseline")]
    if "baseline_ft" in warm.eval:
        rows.append((warm, "baseline_ft", "Baseline + the warm start's iterations (equal-budget control)", None,
                     "baseline_ft"))
    rows += [(main, f"{COMPARE_PREFIX}{m}", method_title(m), "conventional_teacher", m)
             for m in METHOD_NAMES if f"{COMPARE_PREFIX}{m}" in main.eval]
    rows.append((main, "lad_student", "LAD (from scratch)", "teacher_fixed", "lad"))
    rows.append((warm, "lad_student", "LAD (warm start from the baseline)", "teacher_fixed", "lad"))
    return rows


def students_table(main: Run, warm: Run, dataset: str) -> str:
    def teacher(run: Run, key: str | None) -> str:
        if key is None:
            return "—"
        return model_name(run.eval[key][0]) + (" + label (LAD)" if key == "teacher_fixed" else "")

    rows = []
    for run, key, method, t, paper_row in student_rows(main, warm):
        r = run.eval[key][0]
        rows.append([teacher(run, t), model_name(r), method, mean_pm(run.miou(key)),
                     "—" if key == "baseline" else versus(run, key), fmt(r["params_m"]), fmt(r["gflops"], 3),
                     fmt(r.get("latency", {}).get("median_ms")), fmt(run.train_seconds(key), 0),
                     mean_pm(run.miou(t)) if t else "—", fmt(run.train_seconds(t), 0) if t else "—",
                     fmt(published(dataset, paper_row, r["arch"], r["backbone"])), f"`{run.name}`"])
    return markdown_table(["Teacher", "Student", "Method", "mIoU", "Δ vs baseline [95 % CI]", "params (M)", "GFLOPs",
                           "latency ms", "train s", "teacher mIoU", "teacher train s", "published mIoU",
                           "DVC experiment"], rows)


TEACHERS = (("conventional_teacher", "image only (the comparison rows' teacher)"),
            ("teacher_random", "image + label, random code book (as trained)"),
            ("teacher_fixed", "image + label, fixed code book (as distilling)"),
            ("teacher_zero", "image + all-zero label channel"))


def teachers_table(main: Run) -> str:
    rows = []
    for k, what in TEACHERS:
        if k in main.eval:
            r = main.eval[k][0]
            rows.append([model_name(r) + ("" if k == "conventional_teacher" else " + label (LAD)"), what,
                         mean_pm(main.miou(k)), versus(main, k), fmt(r["params_m"]), fmt(r["gflops"], 3),
                         fmt(main.train_seconds(k), 0), f"`{main.name}`"])
    return markdown_table(["Teacher", "input at evaluation", "mIoU", "Δ vs baseline [95 % CI]", "params (M)", "GFLOPs",
                           "train s", "DVC experiment"], rows)


def sources_table(runs: dict[str, Run]) -> str:
    """Per experiment and seed: its MLflow parent run, the evaluate run and each model's training run."""
    roles = sorted({role for r in runs.values() for role in r.train})
    rows = []
    for r in runs.values():
        for i, seed in enumerate(r.meta["seeds"]):
            evaluate = next(iter(r.eval.values()))[i].get("mlflow_run_id") if r.eval else None
            rows.append([f"`{r.name}`", str(seed), r.meta.get("mlflow_parent_run") or "—", evaluate or "—"]
                        + [(r.train[role][i].get("mlflow_run_id") or "—") if role in r.train else ""
                           for role in roles])
    return markdown_table(["DVC experiment", "seed", "MLflow parent run", "evaluate run"]
                          + [f"{role} training run" for role in roles], rows)


# -- the questions, answered only as far as the intervals allow -----------------------------------
def compare(run: Run, a: str, b: str, a_name: str, b_name: str) -> str:
    """One sentence on evaluation ``a`` against ``b`` of ``run``, paired over its seeds."""
    mean, half, n = paired_interval(run.miou(a), run.miou(b))
    head = f"{a_name[0].upper()}{a_name[1:]} − {b_name}: {mean:+.2f} mIoU"
    if n < 2:
        return f"{head} (one seed: no interval)."
    lo, hi = mean - half, mean + half
    if lo > 0:
        what = f"{a_name} is higher; the interval excludes zero"
    elif hi < 0:
        what = f"{a_name} is lower; the interval excludes zero"
    else:
        what = f"the interval includes zero, so {n} seeds cannot tell {a_name} from {b_name}"
    return f"{head}, 95 % interval [{lo:+.2f}, {hi:+.2f}]: {what}."


def conclusions(main: Run, warm: Run) -> str:
    n = len(main.meta["seeds"])
    teacher = ("**Is the label-assisted teacher stronger than the same network without the label?** "
               + compare(main, "teacher_fixed", "baseline", "the LAD teacher (fixed code book)",
                         "the baseline (the same network, image only)") + " "
               + compare(main, "teacher_fixed", "teacher_zero", "the LAD teacher",
                         "itself with an all-zero label channel"))
    student = ("**Does its student beat the baseline?** "
               + compare(main, "lad_student", "baseline", "the LAD student from scratch", "the baseline") + " "
               + compare(warm, "lad_student", "baseline", "the warm-started LAD student", "the baseline") + " "
               + (compare(warm, "lad_student", "baseline_ft", "the warm-started LAD student",
                          "the baseline trained on for as many iterations") if "baseline_ft" in warm.eval else ""))
    methods = [m for m in METHOD_NAMES if f"{COMPARE_PREFIX}{m}" in main.eval]
    lines = [compare(main, "conventional_teacher", "baseline", "the conventional teacher",
                     "the baseline (its students' network, trained alike)")] if methods else []
    lines += [compare(main, "lad_student", f"{COMPARE_PREFIX}{m}", "the LAD student from scratch",
                      f"the {method_title(m)} student") for m in methods]
    cost = (f" The conventional teacher has "
            f"{fmt(main.eval['conventional_teacher'][0]['params_m'])} M params and took "
            f"{fmt(main.train_seconds('conventional_teacher'), 0)} s to train; the LAD teacher "
            f"{fmt(main.eval['teacher_fixed'][0]['params_m'])} M params and "
            f"{fmt(main.train_seconds('teacher_fixed'), 0)} s.") if methods else ""
    others = ("**Does it beat KD / CWD / CIRKD from the larger teacher?** " + " ".join(lines) + cost
              if methods else "")
    return "\n\n".join(p for p in (f"Over {n} seeds, paired by seed (the same baseline and data order):",
                                     teacher, student, others) if p)


def ablation_entries(runs: dict[str, Run]) -> list[tuple[dict[str, Any], dict[str, float]]]:
    """Each ablation experiment's meta data and first-seed mIoU per evaluation; the reference must be there."""
    abl = [r for r in runs.values() if r.meta["part"] == "ablation"]
    if not any(r.meta["ablation"] == "reference" for r in abl):
        raise FileNotFoundError(f"{RUNS}: the ablations' reference experiment is missing")
    return [(r.meta, {k: r.miou(k)[0] for k in r.eval}) for r in abl]


def ablations_markdown(entries: list[tuple[dict[str, Any], dict[str, float]]], main: Run | None) -> str:
    """reports/ablations.md: one row per ablation against the reference run, and the figure's link."""
    header, rows = ablation_rows(entries)
    ref = next(meta for meta, _ in entries if meta["ablation"] == "reference")
    seeds = ", ".join(map(str, ref["seeds"]))
    scale = ""
    if main is not None and len(main.meta["seeds"]) > 1:
        scale = (f" For scale, the sample std over the main table's {len(main.meta['seeds'])} seeds: LAD student "
                 f"{fmt(mean_std(main.miou('lad_student'))[1])}, teacher {fmt(mean_std(main.miou('teacher_fixed'))[1])}"
                 "; a Δ within about twice that is not a finding.")
    return (f"Seed {seeds} only, one run per row (`python -m stages.paper run`, ablation part); each reruns only "
            f"the stages its params change. Δ: against the reference, params.yaml as committed.{scale} "
            "`kl` is pixel-wise KL at temperature T, multiplied by T² "
            "(`pipeline.losses.kd`, as CIRKD's KD), not the official code's unused `kl_kd` (no T², 1e-5 "
            f"smoothing).\n\n{markdown_table(header, rows)}\n\n![ablations](ablations.png)\n")


def write_report(root: Path = Path(".")) -> str:
    """reports/ablations.md (+ .png) when the ablations ran, and reports/paper.md and the README's table when
    the table's two experiments ran, from the collected runs; returns what was written, as markdown."""
    runs = load_runs(root / RUNS)
    parts = {r.meta["part"]: r for r in reversed(runs.values())}  # the first of each part
    main, warm = parts.get("main"), parts.get("warm")
    entries = ablation_entries(runs) if "ablation" in parts else None
    abl = ablations_markdown(entries, main) if entries else None
    text = readme = None
    if main is not None and warm is not None:
        if (root / README).is_file():  # its markers are checked before anything is written
            readme = with_table((root / README).read_text(), readme_table(main, warm), root / README)
        text = PAPER.format(
            commit=main.meta["git_commit"][:10], experiments=len(runs),
            minutes=f"{sum(r.meta['seconds'] for r in runs.values()) / 60:.1f}",
            seeds=", ".join(map(str, main.meta["seeds"])),
            students=students_table(main, warm, dataset_name(main, root)), teachers=teachers_table(main),
            conclusions=conclusions(main, warm), published_note=PUBLISHED_NOTE, ablations=abl or "Not run.\n",
            sources=sources_table(runs), timing=timing_table(runs))
    elif abl is None:
        raise FileNotFoundError(f"{root / RUNS}: neither the table's experiments nor the ablations were collected")
    if entries:
        plot_ablations(entries, root / ABLATIONS_PNG)
    for path, body in ((ABLATIONS_MD, abl), (PAPER_MD, text), (README, readme)):
        if body is not None:
            atomic_write(root / path, lambda tmp, body=body: tmp.write_text(body))
    return text or abl or ""


def dataset_name(run: Run, root: Path) -> str:
    """``data.name`` the experiment ran on: the params it set, else params.yaml's."""
    return run.meta["sets"].get("data.name") or yaml.safe_load((root / "params.yaml").read_text())["data"]["name"]


def timing_table(runs: dict[str, Run]) -> str:
    rows = [[f"`{r.name}`", r.meta["what"], " ".join(f"`{k}={yaml_value(v)}`" for k, v in r.meta["sets"].items()),
             ", ".join(map(str, r.meta["seeds"])), fmt(r.meta["seconds"], 0)] for r in runs.values()]
    return markdown_table(["DVC experiment", "what", "params set", "seeds", "wall s"], rows)


def readme_table(main: Run, warm: Run) -> str:
    """The README's headline table: every student and teacher, mean ± std, Δ against the baseline."""
    rows = [[method, mean_pm(run.miou(key)), "—" if key == "baseline" else versus(run, key),
             fmt(run.train_seconds(key), 0)] for run, key, method, _, _ in student_rows(main, warm)]
    rows += [[f"{'Conventional' if k == 'conventional_teacher' else 'LAD'} teacher, {what}", mean_pm(main.miou(k)),
              versus(main, k), fmt(main.train_seconds(k), 0)] for k, what in TEACHERS if k in main.eval]
    return markdown_table(["Model", f"mIoU (mean ± std, {len(main.meta['seeds'])} seeds)", "Δ vs baseline [95 % CI]",
                           "train s"], rows)


def with_table(text: str, table: str, path: Path) -> str:
    """``text`` (of file ``path``) with what lies between :data:`MARKERS` replaced by ``table``."""
    pattern = re.compile(re.escape(MARKERS[0]) + ".*?" + re.escape(MARKERS[1]), re.S)
    if not pattern.search(text):
        raise ValueError(f"{path}: the markers {MARKERS} are missing; the table goes between them")
    return pattern.sub(lambda _: f"{MARKERS[0]}\n{table}\n{MARKERS[1]}", text)


PAPER = """# The paper's table at CPU scale: embedded synthetic data

Written by `python -m stages.paper report` (`make paper`) from the {experiments} DVC experiments in
`reports/paper/runs/`, all run at commit `{commit}` by `python -m stages.paper run`: {minutes} min of
wall time in all (the table below, "wall s"). Seeds {seeds} of generator seed 0; the defaults were chosen
on generator seed 1, seed 1 (docs/results.md), so no number reported here was used to pick them. mIoU: mean ± sample std
over seeds. Δ: the mean of the per-seed differences from the baseline of the same seed, with its 95 %
Student-t interval. Latency: batch 1 at 64x64, first seed. Train s: mean over seeds.

## Students

{students}

"published mIoU": {published_note}
The CWD row follows CIRKD's `train_cwd.sh`: CWD on logits (weight 3) and on the head embeddings (weight 50,
normalised by the student's channel count as CIRKD does), plus pixel KD (weight 1); its adversarial term
(a discriminator on the logits, weights 0.001 and 0.1) is not implemented, since it needs a second optimiser
stepping in turn with the student's.

## Teachers

{teachers}

## What the intervals allow

{conclusions}

## Ablations

{ablations}
## Time per experiment

{timing}

## Sources

Every number above comes from the files in `reports/paper/runs/<DVC experiment>/`, copied from the
workspace right after that experiment ran. A model restored from DVC's run cache names the MLflow run that
trained it.

{sources}
"""
