"""Joint image/label augmentation: random scale, pad, random crop, horizontal flip, normalise.

Every random draw comes from the ``rng`` passed in, so a sample's augmentation is fixed by its seed
(see :class:`pipeline.data.dataset.InfiniteSampler`) whatever process or worker computes it.
"""

from __future__ import annotations

import cv2
import numpy as np


def normalize(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float32 (3, H, W), mean/std given in 0..1 units."""
    x = (image.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def train_augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, crop: int,
                  scale_range: tuple[float, float], flip: bool, ignore_index: int,
                  mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random rescale, pad (image with the mean colour, label with ignore), crop and flip."""
    s = rng.uniform(*scale_range)
    h, w = label.shape
    nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
    if (nh, nw) != (h, w):
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
    ph, pw = max(crop - nh, 0), max(crop - nw, 0)
    if ph or pw:
        fill = tuple(float(v) for v in (mean * 255.0))
        image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=fill)
        label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=ignore_index)
    h, w = label.shape
    y0, x0 = rng.integers(0, h - crop + 1), rng.integers(0, w - crop + 1)
    image, label = image[y0:y0 + crop, x0:x0 + crop], label[y0:y0 + crop, x0:x0 + crop]
    if flip and rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return image, label
