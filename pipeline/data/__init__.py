"""Datasets: validation of a dataset in its layout, the prepared index, and loaders built from it.

``prepare`` (stage) -> :func:`prepare_index` writes ``index.json``; later stages call
:func:`load_index` and :func:`make_dataset` and never look at the raw layout again.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from pipeline.data import synthetic, voc
from pipeline.data.dataset import Augment, InfiniteSampler, SegDataset, eval_loader, train_loader
from pipeline.data.layouts import INVALID, LAYOUTS, Layout, make_layout
from pipeline.progress import bar as progress_bar

if TYPE_CHECKING:
    from pipeline.config import SyntheticConfig

__all__ = ["BadDataError", "LAYOUTS", "InfiniteSampler", "SegDataset", "eval_loader", "train_loader",
           "load_index", "make_dataset", "prepare_index"]


class BadDataError(ValueError):
    """Bad dataset files; the message names each file and what is wrong with it."""


def check_sample(root: Path, image_rel: str, label_rel: str, lut: np.ndarray
                 ) -> tuple[np.ndarray | None, list[tuple[Path, str]]]:
    """Decode one image/label pair fully; returns (train-id histogram or None, problems).

    A problem is ``(file, what is wrong)``: missing, unreadable or truncated file, raw label
    values the dataset never uses (``lut`` says -1), image and label of different sizes.
    """
    image_path, label_path = root / image_rel, root / label_rel
    problems: list[tuple[Path, str]] = []
    size = None
    if not image_path.is_file():
        problems.append((image_path, "image file missing"))
    else:
        try:
            with Image.open(image_path) as img:
                img.load()  # decodes every byte: a truncated file raises here
                size = img.size[::-1]
        except (OSError, SyntaxError, ValueError) as err:
            problems.append((image_path, f"unreadable or truncated image ({err})"))
    if not label_path.is_file():
        problems.append((label_path, "label file missing"))
        return None, problems
    try:
        label = voc.read_label(label_path)
    except ValueError as err:
        problems.append((label_path, str(err).removeprefix(f"{label_path}: ")))
        return None, problems
    if size is not None and label.shape != size:
        problems.append((label_path, f"label size {label.shape} differs from its image's {size}"))
    raw = np.bincount(label.ravel(), minlength=256)
    bad = [int(v) for v in np.nonzero(raw)[0] if lut[v] == INVALID]
    if bad:
        valid = np.nonzero(lut != INVALID)[0]
        problems.append((label_path, f"label values {bad} are not labels of this dataset (expected "
                                     f"{compact(valid)})"))
    if problems:
        return None, problems
    mapped = np.zeros(256, np.int64)
    np.add.at(mapped, lut.clip(0), raw)  # histogram over train ids (255: ignore)
    return mapped, problems


def compact(values: np.ndarray) -> str:
    """``0..20, 255`` for a sorted array of ints."""
    runs, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            runs.append(f"{start}..{v}" if v > start else f"{v}")
            start = None
    return ", ".join(runs)


def scan_split(root: Path, samples: list[tuple[str, str]], layout: Layout, desc: str
               ) -> tuple[list[tuple[str, str]], list[tuple[str, Path, str]], dict[str, Any]]:
    """Check every sample of a split; returns (good samples, problems as (image, file, what), statistics)."""
    k = len(layout.classes)
    counts = np.zeros(k + 1, np.int64)  # last slot: ignore
    good, problems = [], []
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # image decoding releases the GIL
        checked = pool.map(lambda s: check_sample(root, s[0], s[1], layout.lut_for(s[1])), samples)
        bar = progress_bar(checked, total=len(samples), desc=f"check {desc}", unit="img", leave=False)
        for (image, label), (values, found) in zip(samples, bar):
            problems += [(image, path, what) for path, what in found]
            if values is None:
                continue
            good.append((image, label))
            counts[:k] += values[:k]
            counts[k] += values[layout.ignore_index]
    total = max(int(counts[:k].sum()), 1)
    stats = {"images": len(good), "ignore_fraction": float(counts[k] / max(counts.sum(), 1)),
             "class_frequency": [float(c / total) for c in counts[:k]]}
    return good, problems, stats


def refuse(problems: list[tuple[str, Path, str]], samples: int, good: int, split: str, on_bad: str) -> None:
    """A :class:`BadDataError` naming every bad file (up to 10) with ``on_bad: error``, or when nothing is left."""
    if problems and on_bad == "error":
        listed = "; ".join(f"{path}: {what}" for _, path, what in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise BadDataError(f"{len(problems)} problem(s) in {samples - good} sample(s) of split "
                           f"'{split}': {listed}{more}. Fix them, or set data.on_bad: skip to leave them out")
    if not good:
        raise BadDataError(f"split '{split}': none of its {samples} samples is usable "
                           f"(first problem: {problems[0][1]}: {problems[0][2]})")


def prepare_index(name: str, root: str | Path, splits: dict[str, str],
                  synthetic_params: SyntheticConfig | None = None, on_bad: str = "error",
                  coco_classes: int = 171) -> dict[str, Any]:
    """Generate (synthetic) or validate (real) a dataset and return its index.

    Args:
        name: a dataset of :data:`pipeline.data.layouts.LAYOUTS`.
        root: where the dataset is, in its published layout.
        splits: role -> split name, e.g. ``{"train": "train", "val": "val"}``.
        synthetic_params: params.yaml ``synthetic`` (only for the synthetic dataset).
        on_bad: ``error``: raise :class:`BadDataError` naming every bad file (up to 10) and the
            count; ``skip``: leave those samples out and list them in ``index["skipped"]``.
        coco_classes: 171 or 182 (COCO-Stuff only).
    """
    root = Path(root)
    if name == "synthetic":
        if synthetic_params is None:
            raise ValueError("prepare_index: the synthetic dataset needs its params (params.yaml synthetic)")
        synthetic.generate(root, synthetic_params)
    elif not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found (data.root for data.name={name!r})")
    layout = make_layout(name, coco_classes, root)
    index: dict[str, Any] = {
        "name": name, "root": str(root),  # as given: relative roots stay relative to the project
        "coco_classes": coco_classes, "classes": list(layout.classes), "ignore_index": layout.ignore_index,
        "palette": layout.palette or voc.voc_palette(len(layout.classes)).tolist(),
        "samples": {}, "stats": {}, "skipped": [],
    }
    for role, split in splits.items():
        try:
            samples = layout.samples(root, split)
        except (FileNotFoundError, ValueError) as err:
            raise type(err)(f"{err} (data.{role}_split: {split!r}; {name}'s usual splits: "
                            f"{', '.join(layout.splits)})") from err
        good, problems, stats = scan_split(root, samples, layout, f"{name}/{split}")
        if layout.labels is not None:  # the reverse of "image without label"
            paired = {label for _, label in samples}
            problems += [("", root / f, "label without an image") for f in layout.labels(root, split)
                         if f not in paired]
        refuse(problems, len(samples), len(good), split, on_bad)
        index["samples"][role] = good
        index["stats"][role] = {**stats, "skipped": len(samples) - len(good)}
        index["skipped"] += [{"split": split, "image": i, "file": str(p), "problem": w} for i, p, w in problems]
    return index


def load_index(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset index not found; run the 'prepare' stage first (dvc repro prepare)")
    return json.loads(path.read_text())


def make_dataset(index: dict[str, Any], role: str, mean: list[float], std: list[float],
                 cache: bool = False, channel_order: str = "rgb", **augment: Any) -> SegDataset:
    """The :class:`SegDataset` of split ``role`` ("train" or "val") of a prepared index."""
    layout = make_layout(index["name"], index.get("coco_classes", 171), index["root"])
    return SegDataset(index["root"], [tuple(s) for s in index["samples"][role]], mean, std, layout,
                      Augment(**augment), cache=cache, channel_order=channel_order)
