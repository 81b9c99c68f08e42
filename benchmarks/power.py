"""How many paired seeds a comparison needs: a power estimate from the spreads of the collected table.

    python benchmarks/power.py [--runs reports/paper/protocol] [--power 0.8] [--effect 5]

For each paired comparison of the table (docs/protocol.md's questions, pipeline/words/questions.py), the mean and the
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

from pipeline.results import load_collected  # noqa: E402
from pipeline.statistics import paired, power  # noqa: E402
from pipeline.words.questions import questions  # noqa: E402
from pipeline.words.tables import compared_methods  # noqa: E402


def seeds_needed(delta: float, sd: float, target: float, most: int = 200) -> int | None:
    """The smallest n (2..``most``) with at least ``target`` power; None beyond ``most``."""
    return next((n for n in range(2, most + 1) if power(delta, sd, n) >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=Path("reports/paper/protocol"))
    parser.add_argument("--power", type=float, default=0.8)
    parser.add_argument("--effect", type=float, default=5.0, help="a second effect size to size for, mIoU")
    args = parser.parse_args()
    exps = load_collected(args.runs)
    print(f"| comparison | seeds | mean diff | sd of diffs | seeds for {args.power:.0%} power at the mean | "
          f"at {args.effect:g} mIoU |\n|---|---|---|---|---|---|")
    methods = compared_methods(exps)
    for c in [c for _, comparisons in questions(methods) for c in comparisons]:
        if (o := paired(exps, c)) is None or len(o.diffs) < 2:
            continue
        sd = float(np.std(o.diffs, ddof=1))
        at_mean, at_effect = seeds_needed(o.mean, sd, args.power), seeds_needed(args.effect, sd, args.power)
        print(f"| {c.a_name} − {c.b_name} | {len(o.diffs)} | {o.mean:+.2f} | {sd:.2f} | {at_mean or '> 200'} | "
              f"{at_effect or '> 200'} |")


if __name__ == "__main__":
    main()
