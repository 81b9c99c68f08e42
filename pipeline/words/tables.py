"""Every table of the two reports: one run's students, teachers and seeds (``reports/report.md``), and the
paper's rows, ablations, wall times and sources (``reports/paper.md``). Rows are named by the roles table."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.experiments.protocol import ABLATION_PREFIX, PART_ORDER, REFERENCE, ROWS
from pipeline.results import Results
from pipeline.roles import EVALUATIONS, ROLES
from pipeline.statistics import Comparison, paired, paired_interval
from pipeline.words.format import fmt, fmt_interval, latency, markdown_table, mean_pm, model_name, with_experiment
from pipeline.words.published import published

Point = tuple[str, float, float, float]  # a row of the compute figure: label, TFLOP, mean mIoU, std


def versus(res: Results, key: str, ref: str = "baseline") -> str:
    """Evaluation ``key`` against ``ref`` of the same run, paired by seed, with its 95 % interval."""
    return fmt_interval(*paired_interval(res.miou(key), res.miou(ref))[:2])


def teacher_of(res: Results, key: str) -> str | None:
    """The evaluation of the frozen teacher behind evaluation ``key`` as it distils (the label channel its
    student's training gives it), None for a model trained without one."""
    teacher = ROLES[EVALUATIONS[key].role].teacher
    if teacher is None:
        return None
    found = [e for e in EVALUATIONS.values() if e.role == teacher and e.name in res.eval]
    return next((e.name for e in found if e.label_channel == res.cfg.distill.codebook), found[0].name if found
                else None)


def teacher_name(res: Results, key: str) -> str:
    """The network of teacher evaluation ``key``; one that sees the label is marked so."""
    return model_name(res.first(key)) + (" + label (LAD)" if ROLES[EVALUATIONS[key].role].sees_label else "")


def is_teacher(key: str) -> bool:
    """A teachers' table row: another role distils from it, or it sees the label (no student does)."""
    role = ROLES[EVALUATIONS[key].role]
    return role.is_teacher or role.sees_label


def students_table(res: Results) -> str:
    """One line per student ``res`` evaluated (every evaluation that is no teacher, :func:`is_teacher`): mean over
    seeds and paired Δ against the baseline."""
    lines = []
    for key in [k for k in EVALUATIONS if k in res.eval and not is_teacher(k)]:
        r, onnx, t = res.first(key), res.first(key).get("onnx"), teacher_of(res, key)
        lines.append([teacher_name(res, t) if t else "—", model_name(r), res.title(key), mean_pm(res.miou(key)),
                      "—" if key == "baseline" else versus(res, key),
                      fmt(res.mean(key, "pixel_acc")), fmt(r["params_m"]),
                      fmt(r["gflops"], 3), latency(r), f"{onnx['max_abs_diff']:.1e}" if onnx else "—",
                      fmt(onnx["ort_median_ms"]) if onnx else "—", str(r["iterations"]),
                      fmt(res.train_seconds(key), 0), mean_pm(res.miou(t)) if t else "—",
                      fmt(res.train_seconds(t), 0) if t else "—", fmt(published(res, key))])
    return with_experiment(["Teacher", "Student", "Row", "mIoU", "Δ vs baseline [95 % CI]", "pixel acc",
                            "params (M)", "GFLOPs", "latency ms", "ONNX max abs diff", "ONNX ms", "iterations",
                            "train s", "teacher mIoU", "teacher train s", "published mIoU"], lines,
                           [res.name] * len(lines))


def teachers_table(res: Results) -> str:
    """Every teacher of ``res``, each label channel the LAD teacher can be given."""
    keys = [k for k in EVALUATIONS if k in res.eval and is_teacher(k)]
    lines = [[teacher_name(res, k), EVALUATIONS[k].input, mean_pm(res.miou(k)), versus(res, k),
              fmt(res.mean(k, "pixel_acc")), fmt(res.first(k)["params_m"]), fmt(res.first(k)["gflops"], 3),
              latency(res.first(k)), fmt(res.train_seconds(k), 0), fmt(published(res, k))] for k in keys]
    return with_experiment(["Teacher", "input at evaluation", "mIoU", "Δ vs baseline [95 % CI]", "pixel acc",
                            "params (M)", "GFLOPs", "latency ms", "train s", "published mIoU"], lines,
                           [res.name] * len(lines))


def teacher_costs(res: Results) -> str:
    """What each teacher cost: its parameters and training seconds."""
    keys = [k for k in EVALUATIONS if k in res.eval and is_teacher(k)]
    by_role = {EVALUATIONS[k].role: k for k in reversed(keys)}  # one evaluation per teacher role
    if len(by_role) < 2:
        return ""
    costs = [f"the {EVALUATIONS[k].what.split(',')[0]} has {fmt(res.first(k)['params_m'])} M params and took "
             f"{fmt(res.train_seconds(k), 0)} s to train" for k in by_role.values()]
    return "Teachers: " + "; ".join(costs) + "."


def seeds_table(res: Results) -> str:
    """Every evaluation's mIoU on each seed."""
    return markdown_table(["seed", *res.eval], [[str(s)] + [fmt(runs[i]["miou"]) for runs in res.eval.values()]
                                                for i, s in enumerate(res.seeds)])


def compared_methods(runs: dict[str, Results]) -> list[str]:
    """The comparison methods of the collected table (none before its comparison part ran)."""
    return list(runs["paper-compare"].cfg.compare.methods) if "paper-compare" in runs else []


def rows_table(runs: dict[str, Results]) -> tuple[str, list[Point]]:
    """Every row of docs/protocol.md's table that ran (:data:`pipeline.experiments.protocol.ROWS`): mIoU (mean
    ± std over its seeds), total training TFLOP and the published mIoU; and the points of the compute figure.
    A row of an experiment with more steps than the main one says how many times more."""
    cells: list[list[str]] = []
    points: list[Point] = []
    main = runs["paper"].cfg.train.iters
    for exp, keys in ROWS.items():
        for key in [k for k in keys if exp in runs and k in runs[exp].eval]:
            r, values = runs[exp], runs[exp].miou(key)
            ratio = r.cfg.train.iters / main
            title = r.title(key) + (f", {ratio:g}x steps" if ratio != 1 else "")
            tflop = r.training_tflop(key)
            cells.append([title, f"`{exp}`", ", ".join(map(str, r.seeds)), mean_pm(values), f"{tflop:.2f}",
                          fmt(published(r, key))])
            points.append((title, tflop, float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1
                           else 0.0))
    header = ["row", "experiment", "seeds", "mIoU", "training TFLOP, teachers included", "published mIoU"]
    return markdown_table(header, cells), points


def as_trained(res: Results) -> str:
    """The LAD teacher's evaluation with the code book it trained with (the registered student's teacher)."""
    teacher = next(r.teacher for r in ROLES.values() if r.registered)
    return next(e.name for e in EVALUATIONS.values() if e.role == teacher and e.label_channel == res.cfg.lad.codebook)


def ablations_section(runs: dict[str, Results]) -> str:
    """Each ablation against the reference on the seeds both ran: the teacher as it trained (the code book it
    trained with, its own noise) and the student; then which differences are beyond noise (docs/protocol.md: a
    paired interval that excludes zero)."""
    names = sorted(n for n in runs if n.startswith(ABLATION_PREFIX) and n != REFERENCE)
    if REFERENCE not in runs or not names:
        return "Not run."
    ref, rows, beyond, within = runs[REFERENCE], [], [], []
    student = next(k for k, e in EVALUATIONS.items() if ROLES[e.role].registered)
    for name in names:
        short, cells = name.removeprefix(ABLATION_PREFIX), []
        for model, (key, ref_key) in (("teacher", (as_trained(runs[name]), as_trained(ref))),
                                      ("student", (student, student))):
            o = paired(runs, Comparison((name, key), (REFERENCE, ref_key), name, "the reference"))
            cells.append("—" if o is None else f"{fmt_interval(o.mean, o.half)}, "
                                               f"{o.wins}/{len(o.diffs)}" + (" **finding**" if o.finding else ""))
            if o is not None and len(o.diffs) > 1:  # one seed has no interval: neither
                (beyond if o.finding else within).append(f"{short}'s {model} ({o.mean:+.2f})")
        rows.append([short, runs[name].meta["what"], *cells])
    table = markdown_table(["ablation", "what it tests", "Δ teacher as trained [95 %], wins",
                            "Δ LAD student [95 %], wins"], rows)
    return (f"{table}\n\nBeyond noise (the interval excludes zero): {', '.join(beyond) or 'none'}. "
            f"Within noise on these seeds: {', '.join(within) or 'none'}.")


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


def provenance(runs: list[Results], gone: set[str]) -> str:
    """What the collected runs' records lack: commits no longer in the repository's history (``gone``) and
    runs whose files name no MLflow evaluate run; said, not rerun."""
    metas = [m for r in runs for m in r.metas]
    commits = {m.get("git_commit", "?") for m in metas}
    lost = sorted(commits & gone)
    unnamed = sum(1 for r in runs for e in r.eval["baseline"] if not e.get("mlflow_run_id"))
    seeds = sum(len(r.seeds) for r in runs)
    said = " (marked *gone* below): their results stand as collected, their code cannot be checked out by " \
           "commit, and they are not rerun" if lost else ""
    text = (f"Of the {len(commits)} commits the {len(metas)} collected runs name, {len(lost)} are not in this "
            f"repository's history{said}. ")
    return text + (f"{unnamed} of {seeds} seeds' evaluations name no MLflow run (— below)." if unnamed else
                   "Every evaluation names its MLflow run.")


def sources_table(runs: list[Results], gone: set[str] = frozenset()) -> str:
    """Per experiment and seed: its commit (*gone*: not in the repository's history), its MLflow parent run,
    the evaluate run and each model's training run."""
    roles = sorted({role for r in runs for role in r.train})
    rows = []
    for r in runs:
        for i, seed in enumerate(r.seeds):
            commit = r.shard(seed).get("git_commit", "?")
            rows.append([f"`{r.name}`", str(seed), f"`{commit[:10]}`" + (" *gone*" if commit in gone else ""),
                         r.parent_run(seed) or "—", r.eval["baseline"][i].get("mlflow_run_id") or "—"]
                        + [(r.train[role][i].get("mlflow_run_id") or "—") if role in r.train else "" for role in roles])
    return markdown_table(["DVC experiment", "seed", "commit", "MLflow parent run", "evaluate run"]
                          + [f"{role} training run" for role in roles], rows)
