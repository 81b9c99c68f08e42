"""docs/protocol.md's questions, in one list and one wording, answered only as far as the paired intervals allow.

Both reports answer the same :func:`questions`: ``reports/paper.md`` with each row set from its experiment of
the table (:data:`pipeline.experiments.protocol.ROW_SETS`), ``reports/report.md`` with every row set from the
one run it reports (a question whose rows that run has not, e.g. the longer budget's, is left out).
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.experiments.protocol import LONG
from pipeline.results import Results
from pipeline.statistics import Comparison, Outcome, paired
from pipeline.words.format import fmt, markdown_table, method_title

FRAGILE = 1.0  # mIoU: a finding whose interval bound is this close to zero is called fragile
Where = Callable[[str], str | None]  # a row set ("main", "compare", "warm", "long") -> its experiment (None: none)


def questions(where: Where, methods: list[str]) -> list[tuple[str, list[Comparison]]]:
    """The questions and the comparisons that answer each (``methods``: the comparison rows' methods)."""
    def at(rows: str, a: str, b: str, a_name: str, b_name: str) -> list[Comparison]:
        exp = where(rows)
        return [] if exp is None else [Comparison((exp, a), (exp, b), a_name, b_name)]

    x = f" ({LONG}x steps)"
    return [
        ("1. Is the LAD teacher stronger than the same network without the label?",
         at("main", "teacher_fixed", "baseline", "the LAD teacher (fixed code book)", "the baseline")
         + at("main", "teacher_fixed", "teacher_zero", "the LAD teacher", "itself with an all-zero label channel")),
        ("2. Does the LAD student beat supervision alone?",
         at("main", "lad_student", "baseline", "the LAD student", "the baseline (equal student steps)")
         + at("main", "lad_student", "baseline_matched", "the LAD student",
              "the compute-matched baseline (the LAD pipeline's training FLOPs)")),
        ("3. Does the teacher teach more than its label?",
         at("main", "lad_student", "label_student", "the LAD student", "the label-only control")),
        ("4. Does it beat conventional distillation at equal teacher cost?",
         at("compare", "conventional_teacher", "baseline", "the conventional teacher", "the baseline")
         + [c for m in methods for c in at("compare", "lad_student", f"distill_{m}", "the LAD student",
                                           f"the {method_title(m)} student")]),
        ("5. Does the warm start help beyond its extra steps?",
         at("warm", "lad_student", "baseline_ft", "the warm-started LAD student",
            "its control, the baseline trained on for as many student steps")),
        ("6. Does it hold at three times the steps?",
         at("long", "lad_student", "baseline", f"the LAD student{x}", f"the baseline{x}")
         + at("long", "lad_student", "baseline_matched", f"the LAD student{x}", f"the compute-matched baseline{x}")),
    ]


Found = list[tuple[str, list[Outcome]]]  # each question with the outcomes of its comparisons that ran


def outcomes(runs: dict[str, Results], where: Where, methods: list[str]) -> Found:
    """Every question with the outcomes of its comparisons that ran (none when its rows did not)."""
    return [(title, [o for c in comparisons if (o := paired(runs, c)) is not None])
            for title, comparisons in questions(where, methods)]


def sentence(o: Outcome) -> str:
    """One outcome in words: the difference, the interval, the wins, and what they allow."""
    c, n = o.comparison, len(o.diffs)
    head = (f"{c.a_name[0].upper()}{c.a_name[1:]} − {c.b_name}: {o.mean:+.2f} mIoU over {n} seed"
            f"{'s' if n > 1 else ''}, higher on {o.wins} of {n}")
    if n < 2:
        return f"{head} (one seed: no interval)."
    lo, hi = o.mean - o.half, o.mean + o.half
    if o.finding:
        what = f"{c.a_name} is {'higher' if lo > 0 else 'lower'}; the interval excludes zero"
        if min(abs(lo), abs(hi)) < FRAGILE:
            what += f" (fragile: a bound within {FRAGILE:g} mIoU of zero)"
    else:
        what = (f"the interval includes zero: {n} seeds cannot tell them apart (they had 80 % power for a "
                f"difference of {fmt(o.detectable, 1)} mIoU)")
    return f"{head}; 95 % interval {bounds(o)}: {what}."


def bounds(o: Outcome) -> str:
    """``[+1.50, +4.60]``, or ``—`` for one seed (no interval)."""
    return "—" if len(o.diffs) < 2 else f"[{o.mean - o.half:+.2f}, {o.mean + o.half:+.2f}]"


def answers(found: Found, unrun: bool = True) -> tuple[str, list[Outcome]]:
    """The questions' paragraphs (markdown; ``unrun``: a question none of whose rows ran says so, else it is
    left out), and every outcome where the LAD row is the lower one."""
    paragraphs, losses = [], []
    for title, outs in found:
        if outs or unrun:
            paragraphs.append(f"**{title}** " + (" ".join(sentence(o) for o in outs) if outs else "Not run."))
        losses += [o for o in outs if "LAD" in o.comparison.a_name and o.mean < 0]
    return "\n\n".join(paragraphs), losses


def summary_table(found: Found) -> str:
    """The README's short table: each comparison that ran, its paired difference, interval and wins."""
    rows = [[title.split(" ", 1)[0].rstrip("."), f"{o.comparison.a_name} − {o.comparison.b_name}",
             f"{o.mean:+.2f}", bounds(o), f"{o.wins} of {len(o.diffs)}"] for title, outs in found for o in outs]
    return markdown_table(["question", "comparison", "Δ mIoU", "95 % interval", "seeds higher"], rows)


def losses_list(losses: list[Outcome]) -> str:
    """Every comparison where the LAD row is lower, named (a finding or not)."""
    if not losses:
        return "None: in every comparison the LAD row has the higher mean."
    return "\n".join(f"- {o.comparison.a_name} below {o.comparison.b_name}: {o.mean:+.2f} mIoU "
                     + (f"{bounds(o)}, " if len(o.diffs) > 1 else "(one seed: no interval), ")
                     + f"higher on {o.wins} of {len(o.diffs)} seeds" + (" (the interval excludes zero)" if o.finding
                                                                        else "") for o in losses)


def opening(res: Results) -> str:
    """How far one run's answers go: the seeds, paired."""
    n = len(res.seeds)
    return (f"Over {n} seeds, paired by seed (the same baseline and data order):" if n > 1 else
            "One seed: the differences below have no interval, and the spread between seeds is not measured.")


def in_one_run(res: Results) -> Where:
    """Every row set from the one run ``res`` (the longer budget excepted: it needs a run of its own)."""
    return lambda rows: None if rows == "long" else res.name
