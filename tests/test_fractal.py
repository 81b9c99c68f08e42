"""Formula-driven pretraining images (pipeline/pretraining/fractal.py) with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.pretraining.fractal import System, categories, chaos_game, filling_rate, instance, point_count, render

# Sierpinski's triangle: three maps halving toward three corners, each chosen with probability 1/3
SIERPINSKI = np.array([[0.5, 0, 0, 0.5, 0, 0], [0.5, 0, 0, 0.5, 0.5, 0], [0.5, 0, 0, 0.5, 0.25, 0.5]])


def test_probabilities_follow_the_determinants():
    s = System.of(np.array([[1, 0, 0, 0.5, 0, 0], [0.5, 0, 0, 0.5, 0, 0], [0, 1, 1, 0, 0, 0]], dtype=float))
    assert s.probs == pytest.approx([0.5 / 1.75, 0.25 / 1.75, 1 / 1.75])
    assert System.of(SIERPINSKI).probs == pytest.approx([1 / 3] * 3)
    with pytest.raises(ValueError, match="non-zero determinant"):
        System.of(np.zeros((2, 6)))


def test_the_chaos_game_samples_the_attractor():
    xy = chaos_game(System.of(SIERPINSKI), 30000, np.random.default_rng(0))
    assert xy.shape == (30000, 2)
    assert xy.min() >= -1e-9 and xy[:, 0].max() <= 1 + 1e-9 and xy[:, 1].max() <= 1 + 1e-9
    # the central hole, the triangle (0.5, 0)-(0.25, 0.5)-(0.75, 0.5) without its edges: no point inside
    x, y = xy[:, 0], xy[:, 1]
    assert not ((y < 0.5 - 1e-6) & (y > 2 * np.abs(x - 0.5) + 1e-6)).any()
    assert ((y < 0.5) & (y > 2 * np.abs(x - 0.5) - 0.05)).any()  # its edges are reached
    # each third of the triangle holds a third of the points
    assert np.mean(y >= 0.5) == pytest.approx(1 / 3, abs=0.02)


def test_rendering_keeps_the_margin_and_refuses_divergence():
    img = render(chaos_game(System.of(SIERPINSKI), 20000, np.random.default_rng(1)), 64, pad=2)
    assert img.shape == (64, 64) and set(np.unique(img)) == {0, 255}
    rows, cols = np.nonzero(img)
    assert rows.min() == 2 and rows.max() == 61 and cols.min() == 2 and cols.max() == 61
    # Sierpinski's triangle at level ~log2(60) covers (3/4)^6 of its bounding box: well under half
    assert 0.1 < filling_rate(img) < 0.35
    assert render(np.array([[0.0, 0.0], [np.inf, 1.0]]), 8) is None
    assert render(np.array([[0.0, 1.0], [0.0, 2.0]]), 8) is None  # a vertical line: no width


def test_categories_meet_the_filling_rate_and_repeat_with_the_seed():
    first = categories(3, np.random.default_rng(7), rate=0.15, size=48, points=5000)
    again = categories(3, np.random.default_rng(7), rate=0.15, size=48, points=5000)
    assert all(np.array_equal(a.maps, b.maps) for a, b in zip(first, again))
    assert all(2 <= len(s.maps) <= 7 and np.abs(s.maps).max() <= 1 for s in first)
    rng = np.random.default_rng(3)
    img = instance(first[0], 48, rng, points=5000)
    assert img.shape == (48, 48) and img.dtype == np.uint8 and img.any()
    with pytest.raises(RuntimeError, match="filling rate of 0.99"):
        categories(1, np.random.default_rng(0), rate=0.99, size=16, points=500, max_tries=5)


def test_the_point_count_keeps_fractaldbs_density():
    assert point_count(512) == 100_000 and point_count(64) == round(100_000 / 64)
