"""docs/protocol.md's questions answered from the collected table, only as far as the paired intervals allow.

A comparison pairs two rows (an experiment's evaluation each) on the seeds both ran, refusing a seed whose two
runs were made on different CPU models; it reports the mean of the per-seed differences, its 95 % interval,
the per-seed wins and, when the interval includes zero, the smallest difference those seeds had 80 % power
to detect. :func:`pipeline.protocol.plan` names the experiments; ``python -m stages.paper report`` writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.report import detectable, fmt, mean_pm, method_title, paired_interval
from pipeline.results import Results
from pipeline.roles import COMPARE_PREFIX, METHOD_NAMES

Ref = tuple[str, str]  # (experiment, evaluation)
# evaluation -> the models its training needed besides its own (a warm start's baseline is added by the run)
TEACHERS = {"lad_student": ("teacher_fixed",), "baseline_ft": ("baseline",), "conventional_teacher": (),
            **{f"{COMPARE_PREFIX}{m}": ("conventional_teacher",) for m in METHOD_NAMES}}
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
        return f"{head}; 95 % interval [{lo:+.2f}, {hi:+.2f}]: {what}."


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


def questions(methods: list[str]) -> list[tuple[str, list[Comparison]]]:
    """docs/protocol.md's questions and the comparisons that answer each (``methods``: the comparison rows)."""
    lad, base = ("paper", "lad_student"), ("paper", "baseline")
    long = "paper-long"
    return [
        ("1. Is the LAD teacher stronger than the same network without the label?",
         [Comparison(("paper", "teacher_fixed"), base, "the LAD teacher (fixed code book)", "the baseline"),
          Comparison(("paper", "teacher_fixed"), ("paper", "teacher_zero"), "the LAD teacher",
                     "itself with an all-zero label channel")]),
        ("2. Does the LAD student beat supervision alone?",
         [Comparison(lad, base, "the LAD student", "the baseline (equal student steps)"),
          Comparison(lad, ("paper", "baseline_matched"), "the LAD student",
                     "the compute-matched baseline (the LAD pipeline's training FLOPs)")]),
        ("3. Does the teacher teach more than its label?",
         [Comparison(lad, ("paper", "label_student"), "the LAD student", "the label-only control")]),
        ("4. Does it beat conventional distillation at equal teacher cost?",
         [Comparison(("paper-compare", "conventional_teacher"), ("paper-compare", "baseline"),
                     "the conventional teacher", "the baseline")]
         + [Comparison(("paper-compare", "lad_student"), ("paper-compare", f"distill_{m}"), "the LAD student",
                       f"the {method_title(m)} student") for m in methods]),
        ("5. Does the warm start help beyond its extra steps?",
         [Comparison(("paper-warm", "lad_student"), ("paper-warm", "baseline_ft"), "the warm-started LAD student",
                     "its control, the baseline trained on for as many student steps")]),
        ("6. Does it hold at three times the steps?",
         [Comparison((long, "lad_student"), (long, "baseline"), "the LAD student", "the baseline"),
          Comparison((long, "lad_student"), (long, "baseline_matched"), "the LAD student",
                     "the compute-matched baseline")]),
    ]


def answers(runs: dict[str, Results], methods: list[str]) -> tuple[str, list[Outcome]]:
    """The questions' paragraphs (markdown), and every outcome where the LAD row is the lower one."""
    paragraphs, losses = [], []
    for title, comparisons in questions(methods):
        outcomes = [o for c in comparisons if (o := paired(runs, c)) is not None]
        if not outcomes:
            paragraphs.append(f"**{title}** Not run.")
            continue
        paragraphs.append(f"**{title}** " + " ".join(o.sentence() for o in outcomes))
        losses += [o for o in outcomes if "LAD" in o.comparison.a_name and o.mean < 0]
    return "\n\n".join(paragraphs), losses


def losses_list(losses: list[Outcome]) -> str:
    """Every comparison where the LAD row is lower, named (a finding or not)."""
    if not losses:
        return "None: in every comparison the LAD row has the higher mean."
    return "\n".join(f"- {o.comparison.a_name} below {o.comparison.b_name}: {o.mean:+.2f} mIoU "
                     f"[{o.mean - o.half:+.2f}, {o.mean + o.half:+.2f}], higher on {o.wins} of {len(o.diffs)} seeds"
                     + (" (the interval excludes zero)" if o.finding else "") for o in losses)


def own_tflop(res: Results, key: str) -> float:
    """Training TFLOP of the model behind evaluation ``key``: steps x batch x 3 forwards (the backward counts
    two) of its evaluated forward GFLOPs, twice for a dual-path LAD teacher, plus its teacher's forward per
    image. A method's own layers (CIRKD's projection, Af-DCD's projector) are not counted."""
    e, batch = res.first(key), res.cfg.train.batch_size
    paths = 2 if key.startswith("teacher") and res.cfg.lad.dual_path else 1
    teacher = sum(res.first(t)["gflops"] for t in TEACHERS.get(key, ()) if t != "baseline")  # a forward per image
    per_image = 3 * paths * e["gflops"] + teacher
    return e["iterations"] * batch * per_image / 1e3


def total_tflop(res: Results, key: str) -> float:
    """``key``'s training TFLOP with every model it needed (its teacher, a warm start's baseline)."""
    needed = [t for t in TEACHERS.get(key, ()) if t in res.eval]
    if key in ("lad_student", "label_student") and res.warm:
        needed.append("baseline")
    return own_tflop(res, key) + sum(own_tflop(res, t) for t in needed)


Point = tuple[str, float, float, float]  # a row of the compute figure: label, TFLOP, mean mIoU, std


def rows_table(runs: dict[str, Results], rows: list[tuple[Ref, str]]) -> tuple[str, list[Point]]:
    """mIoU (mean ± std over its seeds) and total training TFLOP of every row that ran; and the points of
    :func:`pipeline.figures.plot_compute`."""
    lines = ["| row | experiment | seeds | mIoU | training TFLOP, teachers included |", "|---|---|---|---|---|"]
    points: list[Point] = []
    for (exp, key), title in rows:
        if exp in runs and key in runs[exp].eval:
            r, values = runs[exp], runs[exp].miou(key)
            tflop = total_tflop(r, key)
            lines.append(f"| {title} | `{exp}` | {', '.join(map(str, r.seeds))} | {mean_pm(values)} | {tflop:.2f} |")
            points.append((title, tflop, float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1
                           else 0.0))
    return "\n".join(lines), points
