"""The words and tables of every report, from :class:`pipeline.results.Results`: ``reports/report.md`` (the
``report`` stage, one run of the pipeline) and the paired comparisons that ``reports/paper.md`` is made of
(:mod:`pipeline.verdicts` asks docs/protocol.md's questions with them, :mod:`pipeline.protocol` writes it).
The numbers, names and settings come from the results and the params they ran with, none is typed here.
The figures are :mod:`pipeline.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.results import Results, mean_std
from pipeline.roles import COMPARE_PREFIX, EVALUATIONS, ROLES

ARCH_NAMES = {"deeplabv3": "DeepLabV3", "pspnet": "PSPNet", "fcn": "FCN", "ocrnet": "OCRNet", "stdc": "STDC"}

# Published val mIoU (%) for settings we can match: (dataset, row, arch, backbone family) -> mIoU.
# Rows: baseline, lad (student), a pipeline.methods key, conventional_teacher. Sources: the LAD paper
# (ECCV 2024) for VOC, the CIRKD paper (CVPR 2022) otherwise; both single-scale, DeepLabV3-R101 teacher.
PUBLISHED: dict[tuple[str, str, str, str], float] = {
    ("voc", "baseline", "deeplabv3", "resnet18"): 73.21,
    ("voc", "cirkd", "deeplabv3", "resnet18"): 74.50,
    ("voc", "lad", "deeplabv3", "resnet18"): 75.0,
    ("voc", "baseline", "pspnet", "resnet18"): 73.33,
    ("voc", "cirkd", "pspnet", "resnet18"): 74.78,
    ("voc", "lad", "pspnet", "resnet18"): 75.4,
    ("cityscapes", "conventional_teacher", "deeplabv3", "resnet101"): 78.07,
    ("cityscapes", "baseline", "deeplabv3", "resnet18"): 74.21,
    ("cityscapes", "cwd", "deeplabv3", "resnet18"): 75.55,
    ("cityscapes", "cirkd", "deeplabv3", "resnet18"): 76.38,
    ("ade20k", "baseline", "deeplabv3", "resnet18"): 33.91,
    ("ade20k", "cirkd", "deeplabv3", "resnet18"): 35.41,
    ("coco_stuff164k", "baseline", "deeplabv3", "resnet18"): 32.60,
    ("coco_stuff164k", "cirkd", "deeplabv3", "resnet18"): 33.11,
}
PUBLISHED_NOTE = ("the paper's number where dataset, row, architecture, backbone width and initialisation match "
                  "(VOC: the LAD paper; Cityscapes, ADE20K, COCO-Stuff 164K: the CIRKD paper; both at 512-1024 px "
                  "crops and 40k-80k iterations from ImageNet weights, so only a full recipe run is comparable); — "
                  "elsewhere.")


def method_title(method: str) -> str:
    """The Method column of a comparison row: its hyper-parameter section's title (pipeline/config.py)."""
    from pipeline.config import MethodsHparams

    return MethodsHparams.model_fields[method].annotation.title


def describe(method: str, hp: Any) -> str:
    """``CIRKD (w_kd=1, ...)``: the method and every hyper-parameter it ran with (``hp``: its section)."""
    return f"{method_title(method)} (" + ", ".join(f"{k}={v:g}" for k, v in hp.model_dump().items()) + ")"


def published(res: Results, key: str) -> float | None:
    """The published mIoU of evaluation ``key`` of ``res`` (its row of :data:`PUBLISHED`: ``lad`` for the LAD
    student, the method for a comparison row) where it has the published setting: the dataset, decode head
    and backbone family (resnet18d and resnet18 both count as ResNet-18), at the backbone's full widths and
    from ImageNet weights; None elsewhere."""
    row = "lad" if key == "lad_student" else key.removeprefix(COMPARE_PREFIX)
    r = res.first(key)
    if r.get("channels") or not ROLES[EVALUATIONS[key].role].net(res.cfg).pretrained:
        return None  # narrowed or from scratch: no published number has that setting
    family = next((f for f in ("resnet101", "resnet18") if r["backbone"].startswith(f)), r["backbone"])
    return PUBLISHED.get((res.cfg.data.name, row, r["arch"], family))


def model_name(res: dict[str, Any]) -> str:
    """``DeepLabV3-resnet18d`` from an evaluation result (with its stage widths when narrowed)."""
    widths = f" (widths {'/'.join(map(str, res['channels']))})" if res.get("channels") else ""
    return f"{ARCH_NAMES.get(res['arch'], res['arch'])}-{res['backbone']}{widths}"


def paired_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean of the per-seed differences ``a - b`` and the half-width of its Student-t interval at ``level``
    (nan for a single seed), and the number of seeds."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_interval: {len(a)} and {len(b)} values; one per seed for both was expected")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if len(d) < 2:
        return float(d[0]), float("nan"), 1
    from scipy import stats

    return float(d.mean()), float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))), len(d)


def power(delta: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at ``alpha`` with ``n`` seeds for a true mean difference ``delta``
    when the per-seed differences have std ``sd``: P(|T| > t_crit) under the noncentral t."""
    if n < 2 or sd <= 0:
        return float("nan")
    from scipy import stats

    crit, nc = stats.t.ppf(1 - alpha / 2, n - 1), abs(delta) * np.sqrt(n) / sd
    return float(stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc))


def detectable(sd: float, n: int, target: float = 0.8) -> float:
    """The smallest difference (0.05 mIoU steps, up to 100) that ``n`` seeds detect with ``target`` power."""
    return next((d for d in np.arange(0.05, 100, 0.05) if power(d, sd, n) >= target), float("inf"))


def fmt_interval(mean: float, half: float) -> str:
    """``+2.10 [-0.40, +4.60]``, or just the difference when there is no interval."""
    return f"{mean:+.2f}" if np.isnan(half) else f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_pm(values: list[float]) -> str:
    """``31.93 ± 3.18`` over seeds (the mean alone for one seed)."""
    mean, std = mean_std(values)
    return fmt(mean) + (f" ± {fmt(std)}" if len(values) > 1 else "")


def versus(res: Results, key: str, ref: str = "baseline") -> str:
    """Evaluation ``key`` against ``ref`` of the same run, paired by seed, with its 95 % interval."""
    return fmt_interval(*paired_interval(res.miou(key), res.miou(ref))[:2])


def lad_title(res: Results) -> str:
    return f"LAD ({'warm start from the baseline' if res.warm else 'from scratch'})"


def teacher_name(res: Results, key: str) -> str:
    """The network of teacher evaluation ``key``; the LAD teacher's is marked as seeing the label."""
    return model_name(res.first(key)) + ("" if key == "conventional_teacher" else " + label (LAD)")


def compared(*results: Results) -> Results | None:
    """The first run that holds comparison rows (KD, CWD, ... from the conventional teacher)."""
    return next((r for r in results if methods(r)), None)


def methods(res: Results) -> list[str]:
    """The comparison methods ``res`` evaluated, in the order of its ``compare.methods``."""
    return [m for m in res.cfg.compare.methods if f"{COMPARE_PREFIX}{m}" in res.eval]


@dataclass(frozen=True)
class Row:
    """One row of the students' table: the run it comes from, its evaluation, what it is called and its
    teacher's evaluation."""

    res: Results
    key: str
    method: str
    teacher: str | None


def student_rows(*results: Results) -> list[Row]:
    """The students' table over one run or several (the paper's: from scratch, then warm-started): the first
    run's baseline, each run's equal-budget control, the comparison rows of the first run that has them, and
    each run's LAD student."""
    main = results[0]
    rows = [Row(main, "baseline", "Baseline", None)]
    rows += [Row(r, "baseline_ft", f"Baseline + {r.first('baseline_ft')['iterations']} more iterations "
                 "(equal-budget control)", None) for r in results if r.warm]
    if (c := compared(*results)) is not None:
        rows += [Row(c, f"{COMPARE_PREFIX}{m}", method_title(m), "conventional_teacher") for m in methods(c)]
    return rows + [Row(r, "lad_student", lad_title(r), "teacher_fixed") for r in results]


def with_experiment(header: list[str], rows: list[list[str]], names: list[str]) -> str:
    """A markdown table with a last column naming each row's DVC experiment (none for the workspace)."""
    if not any(names):
        return markdown_table(header, rows)
    return markdown_table([*header, "DVC experiment"], [[*row, f"`{n}`"] for row, n in zip(rows, names, strict=True)])


def latency(r: dict[str, Any]) -> str:
    """Batch-1 latency of an evaluation result: ``median (p90)`` ms."""
    lat = r.get("latency")
    return f"{fmt(lat['median_ms'])} ({fmt(lat['p90_ms'])})" if lat else "—"


def students_table(rows: list[Row]) -> str:
    """The paper's table: one line per :class:`Row`, mean over seeds and paired Δ against the baseline."""
    lines = []
    for row in rows:
        res, key, t = row.res, row.key, row.teacher
        r, onnx = res.first(key), res.first(key).get("onnx")
        lines.append([teacher_name(res, t) if t else "—", model_name(r), row.method, mean_pm(res.miou(key)),
                      "—" if key == "baseline" else versus(res, key),
                      fmt(res.mean(key, "pixel_acc")), fmt(r["params_m"]),
                      fmt(r["gflops"], 3), latency(r), f"{onnx['max_abs_diff']:.1e}" if onnx else "—",
                      fmt(onnx["ort_median_ms"]) if onnx else "—", str(r["iterations"]),
                      fmt(res.train_seconds(key), 0), mean_pm(res.miou(t)) if t else "—",
                      fmt(res.train_seconds(t), 0) if t else "—",
                      fmt(published(res, key))])
    return with_experiment(["Teacher", "Student", "Method", "mIoU", "Δ vs baseline [95 % CI]", "pixel acc",
                            "params (M)", "GFLOPs", "latency ms", "ONNX max abs diff", "ONNX ms", "iterations",
                            "train s", "teacher mIoU", "teacher train s", "published mIoU"], lines,
                           [row.res.name for row in rows])


TEACHERS = (("conventional_teacher", "image only (the comparison rows' teacher)"),
            ("teacher_random", "image + label, random code book (as trained)"),
            ("teacher_fixed", "image + label, fixed code book (as distilling)"),
            ("teacher_zero", "image + all-zero label channel"))


def teachers_table(res: Results) -> str:
    """Every teacher of ``res``: the LAD teacher with each label channel it can be given."""
    keys = [(k, what) for k, what in TEACHERS if k in res.eval]
    lines = [[teacher_name(res, k), what, mean_pm(res.miou(k)), versus(res, k),
              fmt(res.mean(k, "pixel_acc")), fmt(res.first(k)["params_m"]),
              fmt(res.first(k)["gflops"], 3), latency(res.first(k)), fmt(res.train_seconds(k), 0),
              fmt(published(res, k))]
             for k, what in keys]
    return with_experiment(["Teacher", "input at evaluation", "mIoU", "Δ vs baseline [95 % CI]", "pixel acc",
                            "params (M)", "GFLOPs", "latency ms", "train s", "published mIoU"], lines,
                           [res.name] * len(lines))


def seeds_table(res: Results) -> str:
    """Every evaluation's mIoU on each seed."""
    return markdown_table(["seed", *res.eval], [[str(s)] + [fmt(runs[i]["miou"]) for runs in res.eval.values()]
                                                for i, s in enumerate(res.seeds)])


def methods_note(res: Results) -> str:
    """The comparison methods and every hyper-parameter they ran with, or why there are none."""
    if not res.cfg.compare.enabled:
        return "off (`compare.enabled: false`): no conventional teacher or earlier methods ran"
    return "; ".join(describe(m, getattr(res.cfg.compare.hparams, m)) for m in res.cfg.compare.methods)


# -- the questions, answered only as far as the intervals allow -----------------------------------
Ref = tuple[str, str]  # (experiment, evaluation); the workspace's experiment is its Results.name
FRAGILE = 1.0  # mIoU: a finding whose interval bound is this close to zero is called fragile


@dataclass(frozen=True)
class Comparison:
    """``a`` - ``b``, named for the report."""

    a: Ref
    b: Ref
    a_name: str
    b_name: str


@dataclass(frozen=True)
class Outcome:
    """A :class:`Comparison` on the seeds both rows ran: the per-seed differences."""

    comparison: Comparison
    seeds: list[int]
    diffs: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs))

    @property
    def half(self) -> float:
        return paired_interval(self.diffs, [0.0] * len(self.diffs))[1]

    @property
    def wins(self) -> int:
        return sum(d > 0 for d in self.diffs)

    @property
    def finding(self) -> bool:
        return len(self.diffs) > 1 and abs(self.mean) > self.half

    @property
    def bounds(self) -> str:
        """``[+1.50, +4.60]``, or ``—`` for one seed (no interval)."""
        return "—" if len(self.diffs) < 2 else f"[{self.mean - self.half:+.2f}, {self.mean + self.half:+.2f}]"

    def sentence(self) -> str:
        c, n = self.comparison, len(self.diffs)
        head = (f"{c.a_name[0].upper()}{c.a_name[1:]} − {c.b_name}: {self.mean:+.2f} mIoU over {n} seed"
                f"{'s' if n > 1 else ''}, higher on {self.wins} of {n}")
        if n < 2:
            return f"{head} (one seed: no interval)."
        lo, hi = self.mean - self.half, self.mean + self.half
        if self.finding:
            what = f"{c.a_name} is {'higher' if lo > 0 else 'lower'}; the interval excludes zero"
            if min(abs(lo), abs(hi)) < FRAGILE:
                what += f" (fragile: a bound within {FRAGILE:g} mIoU of zero)"
        else:
            sd = float(np.std(self.diffs, ddof=1))
            what = (f"the interval includes zero: {n} seeds cannot tell them apart (they had 80 % power for a "
                    f"difference of {fmt(detectable(sd, n), 1)} mIoU)")
        return f"{head}; 95 % interval {self.bounds}: {what}."


def paired(runs: dict[str, Results], c: Comparison) -> Outcome | None:
    """``c`` on the seeds both rows ran (None when a row is missing); an error if a seed's two runs were made
    on different CPU models."""
    (ea, ka), (eb, kb) = c.a, c.b
    if ea not in runs or eb not in runs or ka not in runs[ea].eval or kb not in runs[eb].eval:
        return None
    ra, rb = runs[ea], runs[eb]
    seeds = sorted(set(ra.seeds) & set(rb.seeds))
    for s in seeds:
        if ra.cpu(s) != rb.cpu(s):
            raise ValueError(f"seed {s}: {ea} ran on {ra.cpu(s)} and {eb} on {rb.cpu(s)}; a paired difference "
                             "needs both on one CPU model (rerun one of them there)")
    diffs = [ra.miou(ka)[ra.seeds.index(s)] - rb.miou(kb)[rb.seeds.index(s)] for s in seeds]
    return Outcome(c, seeds, diffs) if seeds else None


def compare(res: Results, a: str, b: str, a_name: str, b_name: str) -> str:
    """One sentence on evaluation ``a`` against ``b`` of ``res``, paired over its seeds."""
    outcome = paired({res.name: res}, Comparison((res.name, a), (res.name, b), a_name, b_name))
    assert outcome is not None, (a, b)  # both are evaluations of res
    return outcome.sentence()


def lad_name(res: Results) -> str:
    return f"the {'warm-started LAD student' if res.warm else 'LAD student from scratch'}"


def student_sentences(res: Results) -> str:
    text = compare(res, "lad_student", "baseline", lad_name(res), "the baseline")
    if res.warm:
        text += " " + compare(res, "lad_student", "baseline_ft", lad_name(res),
                              "the baseline trained on for as many iterations")
    return text


def methods_paragraph(res: Results) -> str:
    """LAD against every comparison method of ``res``, and what the two teachers cost."""
    ms = methods(res)
    lines = [compare(res, "conventional_teacher", "baseline", "the conventional teacher",
                     "the baseline (its students' network, trained alike)")]
    lines += [compare(res, "lad_student", f"{COMPARE_PREFIX}{m}", lad_name(res), f"the {method_title(m)} student")
              for m in ms]
    conventional, lad = (f"{fmt(res.first(k)['params_m'])} M params" for k in ("conventional_teacher", "teacher_fixed"))
    cost = (f"The conventional teacher has {conventional} and took {fmt(res.train_seconds('conventional_teacher'), 0)}"
            f" s to train; the LAD teacher {lad} and {fmt(res.train_seconds('teacher_fixed'), 0)} s.")
    return (f"**Does it beat {' / '.join(method_title(m) for m in ms)} from the larger teacher?** "
            + " ".join(lines) + " " + cost)


def conclusions(*results: Results) -> str:
    """What the runs show, question by question, worded only as far as the paired intervals allow."""
    main = results[0]
    n = len(main.seeds)
    opening = f"Over {n} seeds, paired by seed (the same baseline and data order):" if n > 1 else \
        "One seed: the differences below have no interval, and the spread between seeds is not measured."
    teacher = ("**Is the label-assisted teacher stronger than the same network without the label?** "
               + compare(main, "teacher_fixed", "baseline", "the LAD teacher (fixed code book)",
                         "the baseline (the same network, image only)") + " "
               + compare(main, "teacher_fixed", "teacher_zero", "the LAD teacher",
                         "itself with an all-zero label channel"))
    student = "**Does its student beat the baseline?** " + " ".join(student_sentences(r) for r in results)
    others = methods_paragraph(c) if (c := compared(*results)) is not None else ""
    return "\n\n".join(p for p in (opening, teacher, student, others) if p)


# -- the lines around the tables --------------------------------------------------------------------
def dataset_line(res: Results) -> str:
    """The data set, with the generator's seed for the embedded one."""
    if res.cfg.data.name == "synthetic":
        return f"embedded synthetic data (generator seed {res.cfg.synthetic.seed})"
    return f"{res.cfg.data.name} ({res.cfg.data.root})"


def data_line(index: dict[str, Any]) -> str:
    """The prepared splits in one line: images, skipped samples, ignored pixels, background share."""
    parts = []
    for split, st in index["stats"].items():
        freq = dict(zip(index["classes"], st["class_frequency"], strict=True))
        parts.append(f"{split} {st['images']} images ({st.get('skipped', 0)} skipped), "
                     f"{fmt(100 * st['ignore_fraction'])} % pixels ignored, "
                     f"{fmt(100 * freq.get(index['classes'][0], 0))} % {index['classes'][0]}")
    return "; ".join(parts)


def inference_line(res: Results) -> str:
    ev = res.cfg.evaluate
    window = f"sliding window {ev.crop}x{ev.crop}, stride {ev.stride}" if ev.mode == "slide" else "whole image"
    return f"{window}, scales {', '.join(f'{s:g}' for s in ev.multi_scale)}{', with flip' if ev.flip else ''}"


def deployment_line(res: Results) -> str:
    """How cost, latency and the ONNX check were measured (from the baseline's evaluation)."""
    r = res.first("baseline")
    lat, onnx = r.get("latency"), r.get("onnx")
    text = f"FLOPs: one forward at {r['flops_input']}x{r['flops_input']} (2 x multiply-adds)."
    if not lat:
        return text + " Latency: not measured (`evaluate.latency_reps: 0`)."
    text += (f" Latency: one {'x'.join(map(str, lat['input'][2:]))} image (batch 1) on {lat['device']}, "
             f"{lat['dtype']}, {lat['threads']} threads; median (p90) of {lat['reps']} forwards after "
             f"{lat.get('warmup', 10)} warm-up ones, first seed.")
    if onnx:
        text += (f" ONNX: each student exported with a dynamic batch and size (`models/seed{res.seeds[0]}/onnx/`), "
                 f"run by onnxruntime {onnx['onnxruntime']} on the CPU with the same threads: the largest absolute "
                 f"difference of its logits from PyTorch's over {onnx['images']} val images, and its median latency.")
    return text


def fill(template: str, res: Results, **fields: str) -> str:
    """``template`` with the fields every report shares (from ``res``) and ``fields``."""
    return template.format(dataset=dataset_line(res), seeds=", ".join(map(str, res.seeds)),
                           inference=inference_line(res), deployment=deployment_line(res),
                           compare_note=methods_note(res), published_note=PUBLISHED_NOTE, **fields)


MIOU_NOTE = """mIoU is the nanmean of per-class IoU over classes present in the prediction or the ground truth (as
mmsegmentation), from one confusion matrix over the split; the checkpoint evaluated is the last one (no
best-on-val selection). Evaluation: {inference}, scores upsampled to the original label resolution.
{deployment}"""

# reports/report.md: the `report` stage, one run of the pipeline
REPORT = """# LAD report: {dataset}

Generated by `dvc repro` (stage `report`) at commit `{commit}` on {when}. Val split: {val_images} images,
{classes} classes. Seeds: {seeds}{over_seeds}; per-class IoU is the mean over seeds. Data: {data}.
""" + MIOU_NOTE + """

## What it shows

{conclusions}

## Students

{students}

Comparison methods from the conventional teacher: {compare_note}.
"published mIoU": {published_note}

## Teachers

{teachers}

The ablations and the table over seeds are DVC experiments of their own (`make paper`): reports/paper.md.

## mIoU of each seed

{seed_table}

## Per-class IoU (%)

{per_class}

![per-class IoU](figures/per_class_iou.png)

## Training curves (seed {first_seed})

![training curves](figures/training_curves.png)

## Val examples (seed {first_seed})

![examples](figures/examples.png)
"""


def sources_table(runs: list[Results]) -> str:
    """Per experiment and seed: its commit, its MLflow parent run, the evaluate run and each model's training
    run."""
    roles = sorted({role for r in runs for role in r.train})
    rows = []
    for r in runs:
        for i, seed in enumerate(r.seeds):
            rows.append([f"`{r.name}`", str(seed), f"`{r.shard(seed).get('git_commit', '?')[:10]}`",
                         r.parent_run(seed) or "—", r.eval["baseline"][i].get("mlflow_run_id") or "—"]
                        + [(r.train[role][i].get("mlflow_run_id") or "—") if role in r.train else "" for role in roles])
    return markdown_table(["DVC experiment", "seed", "commit", "MLflow parent run", "evaluate run"]
                          + [f"{role} training run" for role in roles], rows)
