"""Datasets: a registry of known datasets, the prepared index, and loaders built from it.

``prepare`` (stage) -> :func:`prepare_index` writes ``index.json``; later stages call
:func:`load_index` and :func:`make_dataset` and never look at the raw layout again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipeline.data import synthetic, voc
from pipeline.data.dataset import InfiniteSampler, SegDataset, eval_loader, train_loader

__all__ = ["BadDataError", "DATASETS", "DatasetInfo", "InfiniteSampler", "SegDataset", "eval_loader", "train_loader",
           "load_index", "make_dataset", "prepare_index"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is: its class names and ignore value (all use the VOC folder layout here)."""

    classes: tuple[str, ...]
    ignore_index: int = 255
    generated: bool = False  # True: ``prepare`` generates it (the embedded default)


DATASETS: dict[str, DatasetInfo] = {
    "synthetic": DatasetInfo(synthetic.CLASSES, generated=True),
    "voc": DatasetInfo(voc.VOC_CLASSES),
}


class BadDataError(ValueError):
    """Bad dataset files; the message names each file and what is wrong with it."""


def check_sample(root: Path, sample_id: str, num_classes: int, ignore_index: int
                 ) -> tuple[np.ndarray | None, list[tuple[Path, str]]]:
    """Decode one image/label pair fully; returns (label value histogram or None, problems).

    A problem is ``(file, what is wrong)``: missing, unreadable or truncated file, label values
    outside ``0..num_classes-1`` other than the ignore value, image and label of different sizes.
    """
    image_path, label_path = root / voc.IMAGE_DIR / f"{sample_id}.jpg", root / voc.LABEL_DIR / f"{sample_id}.png"
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
    values = np.bincount(label.ravel(), minlength=256)
    bad = [int(v) for v in np.nonzero(values)[0] if v >= num_classes and v != ignore_index]
    if bad:
        problems.append((label_path, f"label values {bad} outside 0..{num_classes - 1} "
                                     f"(and not the ignore value {ignore_index})"))
    return (None if problems else values), problems


def scan_split(root: Path, ids: list[str], num_classes: int, ignore_index: int, desc: str
               ) -> tuple[list[str], list[tuple[str, Path, str]], dict[str, Any]]:
    """Check every sample of a split; returns (good ids, problems as (id, file, what), statistics)."""
    counts = np.zeros(num_classes + 1, np.int64)  # last slot: ignore
    good, problems = [], []
    for sample_id in tqdm(ids, desc=f"check {desc}", unit="img", leave=False):
        values, found = check_sample(root, sample_id, num_classes, ignore_index)
        problems += [(sample_id, path, what) for path, what in found]
        if values is None:
            continue
        good.append(sample_id)
        counts[:num_classes] += values[:num_classes]
        counts[num_classes] += values[ignore_index]
    total = max(int(counts[:num_classes].sum()), 1)
    stats = {"images": len(good), "ignore_fraction": float(counts[num_classes] / max(counts.sum(), 1)),
             "class_frequency": [float(c / total) for c in counts[:num_classes]]}
    return good, problems, stats


def prepare_index(name: str, root: str | Path, splits: dict[str, str],
                  synthetic_params: dict[str, Any] | None = None, on_bad: str = "error") -> dict[str, Any]:
    """Generate (synthetic) or validate (real) a dataset and return its index.

    Args:
        name: key of :data:`DATASETS`.
        root: the VOC-layout folder.
        splits: role -> split name, e.g. ``{"train": "train", "val": "val"}``.
        synthetic_params: generator arguments (only for generated datasets).
        on_bad: ``error``: raise :class:`BadDataError` naming every bad file (up to 10) and the
            count; ``skip``: leave those samples out and list them in ``index["skipped"]``.
    """
    info = DATASETS[name]
    root = Path(root)
    if info.generated:
        synthetic.generate(root, **(synthetic_params or {}))
    elif not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found (data.root for data.name={name!r})")
    index: dict[str, Any] = {
        "name": name, "root": str(root),  # as given: relative roots stay relative to the project
        "classes": list(info.classes), "ignore_index": info.ignore_index,
        "palette": voc.voc_palette(len(info.classes)).tolist(), "splits": {}, "stats": {}, "skipped": [],
    }
    k = len(info.classes)
    for role, split in splits.items():
        ids = voc.read_split(root, split)
        good, problems, stats = scan_split(root, ids, k, info.ignore_index, f"{name}/{split}")
        if problems and on_bad == "error":
            listed = "; ".join(f"{path}: {what}" for _, path, what in problems[:10])
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise BadDataError(f"{len(problems)} problem(s) in {len(ids) - len(good)} sample(s) of split "
                               f"'{split}': {listed}{more}. Fix them, or set data.on_bad: skip to leave them out")
        if not good:
            raise BadDataError(f"split '{split}': none of its {len(ids)} samples is usable "
                               f"(first problem: {problems[0][1]}: {problems[0][2]})")
        index["splits"][role] = good
        index["stats"][role] = {**stats, "skipped": len(ids) - len(good)}
        index["skipped"] += [{"split": split, "id": i, "file": str(p), "problem": w} for i, p, w in problems]
    return index


def load_index(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: dataset index not found; run the 'prepare' stage first (dvc repro prepare)")
    return json.loads(path.read_text())


def make_dataset(index: dict[str, Any], role: str, mean: list[float], std: list[float],
                 cache: bool = False, **augment: Any) -> SegDataset:
    """The :class:`SegDataset` of split ``role`` ("train" or "val") of a prepared index."""
    return SegDataset(index["root"], index["splits"][role], mean, std, index["ignore_index"],
                      cache=cache, **augment)
