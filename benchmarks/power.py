"""How many paired seeds a comparison needs: a power estimate from the spreads of the collected table.

    python benchmarks/power.py [--runs reports/paper/runs] [--power 0.8] [--effect 5]

For each paired comparison of the table (the same rows docs/protocol.md asks about), the mean and the
sample std of its per-seed differences over the collected seeds, and the smallest number of seeds n at
which a two-sided paired t-test at 5 % would detect a true difference of that mean (and of ``--effect``
mIoU) with probability ``--power``: P(|T| > t_0.975,n-1) under the noncentral t with n - 1 degrees of
freedom and noncentrality ``delta * sqrt(n) / sd``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.report import power  # noqa: E402
from pipeline.results import load_collected  # noqa: E402

# (what is compared, experiment, evaluation a, experiment, evaluation b)
PAIRS = [
    ("LAD student - baseline", "paper", "lad_student", "paper", "baseline"),
    ("LAD student - KD student", "paper", "lad_student", "paper", "distill_kd"),
    ("LAD student - CWD student", "paper", "lad_student", "paper", "distill_cwd"),
    ("LAD student - CIRKD student", "paper", "lad_student", "paper", "distill_cirkd"),
    ("conventional teacher - baseline", "paper", "conventional_teacher", "paper", "baseline"),
    ("warm LAD student - its control", "paper-warm", "lad_student", "paper-warm", "baseline_ft"),
    ("LAD teacher (fixed) - baseline", "paper", "teacher_fixed", "paper", "baseline"),
]


def seeds_needed(delta: float, sd: float, target: float, most: int = 200) -> int | None:
    """The smallest n (2..``most``) with at least ``target`` power; None beyond ``most``."""
    return next((n for n in range(2, most + 1) if power(delta, sd, n) >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("reports/paper/runs"))
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--effect", type=float, default=5.0, help="a second effect size to size for, mIoU")
    args = parser.parse_args()
    exps = load_collected(args.runs)
    print(f"| comparison | seeds | mean diff | sd of diffs | seeds for {args.power:.0%} power at the mean | "
          f"at {args.effect:g} mIoU |\n|---|---|---|---|---|---|")
    for what, ea, a, eb, b in PAIRS:
        if ea not in exps or eb not in exps or a not in exps[ea].eval or b not in exps[eb].eval:
            continue
        d = np.asarray(exps[ea].miou(a)) - np.asarray(exps[eb].miou(b))
        mean, sd = float(d.mean()), float(d.std(ddof=1))
        at_mean, at_effect = seeds_needed(mean, sd, args.power), seeds_needed(args.effect, sd, args.power)
        print(f"| {what} | {len(d)} | {mean:+.2f} | {sd:.2f} | {at_mean or '> 200'} | {at_effect or '> 200'} |")


if __name__ == "__main__":
    main()
