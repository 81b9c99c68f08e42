"""Statistics: paired outcomes, intervals, power. The third step of the one-way flow.

A :class:`Comparison` pairs two rows (an experiment's evaluation each) on the seeds both ran, refusing a seed
whose two runs were made on different CPU models; its :class:`Outcome` holds the per-seed differences, their
mean, the 95 % Student-t interval and the wins. :func:`detectable` is the smallest difference the seeds had
80 % power to detect; :func:`choose` picks each calibrated role's factor. :mod:`pipeline.words` words them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.experiments.calibration import TIE, TUNED
from pipeline.results import Results

Ref = tuple[str, str]  # (experiment, evaluation); the workspace's experiment is its Results.name


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
    def detectable(self) -> float:
        """The difference these seeds had 80 % power to detect (nan for one seed)."""
        return detectable(float(np.std(self.diffs, ddof=1)), len(self.diffs)) if len(self.diffs) > 1 else float("nan")


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


def choose(probes: dict[float, Results]) -> dict[str, dict[str, Any]]:
    """Per calibrated role: each probe's mean student mIoU, and the chosen factor (best; 1 on a tie within
    :data:`pipeline.experiments.calibration.TIE`)."""
    out = {}
    for method, (evaluation, keys) in TUNED.items():
        scores = {s: float(np.mean(r.miou(evaluation))) for s, r in sorted(probes.items()) if evaluation in r.eval}
        if not scores:
            continue
        best = max(scores.values())
        scale = 1.0 if scores.get(1.0, -np.inf) >= best - TIE else max(scores, key=scores.get)
        out[method] = {"evaluation": evaluation, "scores": {f"{s:.4g}": round(v, 2) for s, v in scores.items()},
                       "scale": scale, "keys": list(keys)}
    return out
