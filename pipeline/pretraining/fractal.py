"""Formula-driven pretraining images: FractalDB's categories of random iterated function systems.

Kataoka et al., *Pre-training without Natural Images* (ACCV 2020): a category is one iterated function
system (IFS) of 2 to 7 affine maps ``(x, y) -> (a x + b y + e, c x + d y + f)`` with every parameter drawn
uniformly from [-1, 1], each map chosen with probability proportional to ``|a d - b c|``; a system is kept
only when its attractor, rendered by the chaos game, fills at least ``rate`` of the image's pixels (their
``param_search/ifs_search.py``: rate 0.2, 100,000 points on 512 x 512 with a 6-pixel margin). The instances
of a category vary its parameters a little (their ``weights_*.csv``: one parameter scaled at a time) and
are flipped. Nothing here shares anything with the segmentation classes: no natural image, no label of
ours. This module makes the images and their category ids; the pretraining itself is a stage's.

The chaos game runs many short chains side by side (numpy, no Python loop per point): each chain forgets
its start within a few dozen steps of contracting maps, so the kept points are samples of the attractor
as one long chain's would be, in a fraction of the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BURN_IN = 20  # chaos-game steps a chain takes before its points are kept
CHAINS = 1000  # chains run side by side
DENSITY = 100_000 / 512**2  # points per pixel: FractalDB's 100,000 points on 512 x 512 (its rate 0.2 assumes it)


def point_count(size: int) -> int:
    """Chaos-game points for a ``size``-pixel image at FractalDB's density."""
    return max(100, round(DENSITY * size * size))


@dataclass(frozen=True)
class System:
    """An IFS: ``maps`` (n, 6) rows ``a b c d e f`` and their selection probabilities (n,)."""

    maps: np.ndarray
    probs: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, min_maps: int = 2, max_maps: int = 7) -> System:
        """FractalDB's draw: 2-7 maps, parameters uniform in [-1, 1], probabilities by ``|det|``."""
        maps = rng.uniform(-1.0, 1.0, (int(rng.integers(min_maps, max_maps + 1)), 6))
        return cls.of(maps)

    @classmethod
    def of(cls, maps: np.ndarray) -> System:
        det = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
        if not det.sum() > 0:
            raise ValueError("an IFS needs a map with a non-zero determinant")
        return cls(np.asarray(maps, dtype=np.float64), det / det.sum())

    def varied(self, rng: np.random.Generator, spread: float = 0.2) -> System:
        """An instance of the category: one parameter of one map scaled by a factor in
        ``[1 - spread, 1 + spread]`` (FractalDB's weight files scale one parameter at a time)."""
        maps = self.maps.copy()
        maps[rng.integers(len(maps)), rng.integers(6)] *= rng.uniform(1 - spread, 1 + spread)
        return System.of(maps)


def chaos_game(system: System, points: int, rng: np.random.Generator) -> np.ndarray:
    """``points`` samples (x, y) of the system's attractor, (points, 2); rows of a diverging chain are NaN."""
    chains = min(CHAINS, points)
    steps = -(-points // chains)
    xy = np.zeros((chains, 2))
    out = np.empty((steps, chains, 2))
    a, b, c, d, e, f = system.maps.T
    with np.errstate(over="ignore", invalid="ignore"):
        for step in range(BURN_IN + steps):
            k = rng.choice(len(system.probs), size=chains, p=system.probs)
            x, y = xy[:, 0], xy[:, 1]
            xy = np.stack([a[k] * x + b[k] * y + e[k], c[k] * x + d[k] * y + f[k]], axis=1)
            if step >= BURN_IN:
                out[step - BURN_IN] = xy
    return out.reshape(-1, 2)[:points]


def render(xy: np.ndarray, size: int, pad: int = 0) -> np.ndarray | None:
    """The points scaled into ``[pad, size - 1 - pad]`` on both axes (aspect kept per axis, as FractalDB), as a
    uint8 image of 0 and 255; None when the points diverge or collapse to a line."""
    if not np.isfinite(xy).all():
        return None
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    if (span <= 1e-9).any():
        return None
    ij = np.round((xy - lo) / span * (size - 1 - 2 * pad) + pad).astype(int)
    img = np.zeros((size, size), np.uint8)
    img[ij[:, 1], ij[:, 0]] = 255
    return img


def filling_rate(img: np.ndarray) -> float:
    """The share of lit pixels: FractalDB's acceptance criterion."""
    return float(np.count_nonzero(img)) / img.size


def categories(n: int, rng: np.random.Generator, rate: float = 0.2, size: int = 128, points: int | None = None,
               max_tries: int = 10000) -> list[System]:
    """``n`` systems whose attractor fills at least ``rate`` of a ``size``-pixel image (FractalDB's search;
    ``points``: by default at FractalDB's density, :func:`point_count`)."""
    points = points or point_count(size)
    found: list[System] = []
    for _ in range(max_tries):
        system = System.random(rng)
        img = render(chaos_game(system, points, rng), size, pad=max(1, size // 85))
        if img is not None and filling_rate(img) >= rate:
            found.append(system)
            if len(found) == n:
                return found
    raise RuntimeError(f"{len(found)} of {n} fractal categories reached a filling rate of {rate} in {max_tries} "
                       f"tries; lower the rate or raise the points ({points}) for {size}-pixel images")


def instance(system: System, size: int, rng: np.random.Generator, points: int | None = None,
             tries: int = 20) -> np.ndarray:
    """One training image of a category: a varied system (the original when every variation diverges),
    rendered (``points``: :func:`point_count` by default), randomly flipped; (size, size) uint8."""
    points = points or point_count(size)
    for candidate in [*(system.varied(rng) for _ in range(tries)), system]:
        img = render(chaos_game(candidate, points, rng), size, pad=max(1, size // 85))
        if img is not None:
            break
    else:
        raise ValueError("the category's own system does not render")
    if rng.random() < 0.5:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)
