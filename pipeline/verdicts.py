"""docs/protocol.md's questions answered from the collected table, only as far as the paired intervals allow.

A comparison pairs two rows (an experiment's evaluation each) on the seeds both ran, refusing a seed whose two
runs were made on different CPU models; it reports the mean of the per-seed differences, its 95 % interval,
the per-seed wins and, when the interval includes zero, the smallest difference those seeds had 80 % power
to detect. :func:`pipeline.protocol.plan` names the experiments; ``python -m stages.paper report`` writes them.
"""

from __future__ import annotations

import numpy as np

from pipeline.report import Comparison, Outcome, Ref, fmt, markdown_table, mean_pm, method_title, paired, published
from pipeline.results import Results
from pipeline.roles import COMPARE_PREFIX, METHOD_NAMES

# evaluation -> the models its training needed besides its own (a warm start's baseline is added by the run)
TEACHERS = {"lad_student": ("teacher_fixed",), "baseline_ft": ("baseline",), "conventional_teacher": (),
            **{f"{COMPARE_PREFIX}{m}": ("conventional_teacher",) for m in METHOD_NAMES}}


def compared_methods(runs: dict[str, Results]) -> list[str]:
    """The comparison methods of the collected table (none before its comparison part ran)."""
    return list(runs["paper-compare"].cfg.compare.methods) if "paper-compare" in runs else []


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
         [Comparison((long, "lad_student"), (long, "baseline"), "the LAD student (3x steps)",
                     "the baseline (3x steps)"),
          Comparison((long, "lad_student"), (long, "baseline_matched"), "the LAD student (3x steps)",
                     "the compute-matched baseline (3x steps)")]),
    ]


Found = list[tuple[str, list[Outcome]]]  # each question with the outcomes of its comparisons that ran


def outcomes(runs: dict[str, Results], methods: list[str]) -> Found:
    """Every question with the outcomes of its comparisons that ran (none when its rows did not)."""
    return [(title, [o for c in comparisons if (o := paired(runs, c)) is not None])
            for title, comparisons in questions(methods)]


def answers(found: Found) -> tuple[str, list[Outcome]]:
    """The questions' paragraphs (markdown), and every outcome where the LAD row is the lower one."""
    paragraphs, losses = [], []
    for title, outs in found:
        paragraphs.append(f"**{title}** " + (" ".join(o.sentence() for o in outs) if outs else "Not run."))
        losses += [o for o in outs if "LAD" in o.comparison.a_name and o.mean < 0]
    return "\n\n".join(paragraphs), losses


def summary_table(found: Found) -> str:
    """The README's short table: each comparison that ran, its paired difference, interval and wins."""
    rows = [[title.split(" ", 1)[0].rstrip("."), f"{o.comparison.a_name} − {o.comparison.b_name}",
             f"{o.mean:+.2f}", o.bounds, f"{o.wins} of {len(o.diffs)}"] for title, outs in found for o in outs]
    return markdown_table(["question", "comparison", "Δ mIoU", "95 % interval", "seeds higher"], rows)


def losses_list(losses: list[Outcome]) -> str:
    """Every comparison where the LAD row is lower, named (a finding or not)."""
    if not losses:
        return "None: in every comparison the LAD row has the higher mean."
    return "\n".join(f"- {o.comparison.a_name} below {o.comparison.b_name}: {o.mean:+.2f} mIoU "
                     + (f"{o.bounds}, " if len(o.diffs) > 1 else "(one seed: no interval), ")
                     + f"higher on {o.wins} of {len(o.diffs)} seeds" + (" (the interval excludes zero)" if o.finding
                                                                        else "") for o in losses)


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
    """mIoU (mean ± std over its seeds), total training TFLOP and the published mIoU (:func:`published`:
    where the setting matches it) of every row that ran; and the points of :func:`pipeline.figures.plot_compute`."""
    cells: list[list[str]] = []
    points: list[Point] = []
    for (exp, key), title in rows:
        if exp in runs and key in runs[exp].eval:
            r, values = runs[exp], runs[exp].miou(key)
            tflop = total_tflop(r, key)
            cells.append([title, f"`{exp}`", ", ".join(map(str, r.seeds)), mean_pm(values), f"{tflop:.2f}",
                          fmt(published(r, key))])
            points.append((title, tflop, float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1
                           else 0.0))
    header = ["row", "experiment", "seeds", "mIoU", "training TFLOP, teachers included", "published mIoU"]
    return markdown_table(header, cells), points
