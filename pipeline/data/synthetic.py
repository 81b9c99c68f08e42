"""A deterministic synthetic segmentation dataset, written in the PASCAL VOC layout.

Classes differ by *shape* only: colour and texture are drawn at random for every object and for
the background, so a model must learn geometry, not colour. Backgrounds are textured and carry
clutter blobs (labelled background), objects overlap and vary in scale and rotation, and the image
gets blur and pixel noise. A thin band of ignore pixels follows object outlines, as in VOC.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.data.voc import write_label, write_split
from pipeline.progress import bar

if TYPE_CHECKING:
    from pipeline.config import SyntheticConfig

CLASSES = ("background", "ellipse", "rectangle", "triangle", "cross", "star")


def _polygon(kind: str, rng: np.random.Generator, cx: float, cy: float, r: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of radius ``r`` centred at (cx, cy), randomly rotated."""
    theta = rng.uniform(0, 2 * np.pi)
    if kind == "rectangle":
        aspect = rng.uniform(0.45, 1.0)
        pts = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], float)
    elif kind == "triangle":
        a = np.deg2rad([90, 210, 330]) + rng.uniform(-0.25, 0.25, 3)
        pts = np.stack([np.cos(a), np.sin(a)], 1)
    elif kind == "cross":
        w = rng.uniform(0.28, 0.4)
        pts = np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1],
                        [-w, w], [-1, w], [-1, -w], [-w, -w]], float)
    elif kind == "star":
        n = 5
        a = np.arange(2 * n) * np.pi / n
        rad = np.where(np.arange(2 * n) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        pts = np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
    elif kind == "blob":  # clutter: an irregular smooth-ish polygon
        a = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rad = rng.uniform(0.5, 1.0, 9)
        pts = np.stack([rad * np.cos(a), rad * np.sin(a)], 1)
    else:
        raise ValueError(kind)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return pts @ rot.T * r + np.array([cx, cy])


def _shape_mask(kind: str, rng: np.random.Generator, size: int, scale: tuple[float, float]) -> np.ndarray:
    """A binary (size, size) mask of one shape at a random place, size and rotation."""
    r = rng.uniform(*scale) * size / 2 * 2  # scale is the shape's diameter as a fraction of the side
    cx, cy = rng.uniform(0.1, 0.9, 2) * size
    mask = np.zeros((size, size), np.uint8)
    sub = 16  # fixed-point subpixel precision for anti-alias-free but smooth outlines
    if kind == "ellipse":
        axes = (int(r / 2 * sub), int(r / 2 * rng.uniform(0.45, 1.0) * sub))
        cv2.ellipse(mask, (int(cx * sub), int(cy * sub)), axes, rng.uniform(0, 180), 0, 360, 1, -1,
                    lineType=cv2.LINE_8, shift=4)
    else:
        pts = _polygon(kind, rng, cx, cy, r / 2)
        cv2.fillPoly(mask, [np.round(pts * sub).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random RGB texture (size, size, 3), float 0..255: flat, stripes, gradient or noise."""
    c1, c2 = rng.uniform(0, 255, (2, 3))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    kind = rng.integers(4)
    if kind == 0:
        t = np.zeros((size, size), np.float32)
    elif kind == 1:
        a = rng.uniform(0, np.pi)
        f = rng.uniform(2, 8)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (xx * np.cos(a) + yy * np.sin(a)))
    elif kind == 2:
        a = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(a) + yy * np.sin(a))
        t = (t - t.min()) / (np.ptp(t) + 1e-6)
    else:
        small = rng.uniform(0, 1, (max(2, size // 8),) * 2).astype(np.float32)
        t = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    return c1 + (c2 - c1) * t[..., None]


def make_sample(rng: np.random.Generator, size: int, max_objects: int, scale: tuple[float, float],
                clutter: int, noise_std: float, ignore_border: int) -> tuple[np.ndarray, np.ndarray]:
    """One (RGB uint8 image, uint8 label) pair; label 0..len(CLASSES)-1 and 255 = ignore."""
    image = _texture(rng, size)
    label = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(0, clutter + 1)):
        m = _shape_mask("blob", rng, size, (scale[0] * 0.6, scale[1] * 0.8))
        image[m] = _texture(rng, size)[m]
    for _ in range(rng.integers(1, max_objects + 1)):
        cls = int(rng.integers(1, len(CLASSES)))
        m = _shape_mask(CLASSES[cls], rng, size, scale)
        image[m] = _texture(rng, size)[m]
        label[m] = cls
    if ignore_border > 0:
        k = np.ones((ignore_border + 1,) * 2, np.uint8)
        edge = cv2.dilate(label, k) != cv2.erode(label, k)
        label[edge] = 255
    image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.3, 1.0))
    image = image + rng.normal(0, noise_std, image.shape)
    return image.clip(0, 255).astype(np.uint8), label


def generate(root: str | Path, params: SyntheticConfig) -> Path:
    """Write the dataset ``params`` (params.yaml ``synthetic``) describes under ``root`` in the VOC layout;
    returns ``root``.

    Every image has its own random stream derived from (seed, index), so the dataset does not
    depend on the order or the number of images generated before it.
    """
    p, root = params, Path(root)
    seed, num_train, num_val, size, max_objects, min_scale, max_scale, clutter, noise_std, ignore_border = (
        p.seed, p.num_train, p.num_val, p.size, p.max_objects, p.min_scale, p.max_scale, p.clutter, p.noise_std,
        p.ignore_border)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    splits = {"train": [f"train_{i:05d}" for i in range(num_train)],
              "val": [f"val_{i:05d}" for i in range(num_val)]}
    ids = [(split, i, name) for split, names in splits.items() for i, name in enumerate(names)]
    for split, i, name in bar(ids, desc="generate synthetic", unit="img"):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
        image, label = make_sample(rng, size, max_objects, (min_scale, max_scale), clutter,
                                   noise_std, ignore_border)
        cv2.imwrite(str(root / "JPEGImages" / f"{name}.jpg"), image[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 92])
        write_label(root / "SegmentationClass" / f"{name}.png", label)
    for split, names in splits.items():
        write_split(root, split, names)
    return root
