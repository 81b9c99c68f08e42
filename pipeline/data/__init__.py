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
from tqdm import tqdm

from pipeline.data import synthetic, voc
from pipeline.data.dataset import InfiniteSampler, SegDataset, eval_loader, train_loader

__all__ = ["DATASETS", "DatasetInfo", "InfiniteSampler", "SegDataset", "eval_loader", "train_loader",
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


def split_stats(ds: SegDataset, num_classes: int, desc: str) -> dict[str, Any]:
    """Image count and class pixel frequencies of a split; checks every label value on the way."""
    counts = np.zeros(num_classes + 1, np.int64)  # last slot: ignore
    for i in tqdm(range(len(ds)), desc=f"check {desc}", unit="img", leave=False):
        _, label = ds.load(i)
        values = np.bincount(label.ravel(), minlength=256)
        bad = [int(v) for v in np.nonzero(values)[0] if v >= num_classes and v != ds.ignore_index]
        if bad:
            path = ds.root / voc.LABEL_DIR / f"{ds.ids[i]}.png"
            raise ValueError(f"{path}: label values {bad} outside 0..{num_classes - 1} "
                             f"(and not the ignore value {ds.ignore_index})")
        counts[:num_classes] += values[:num_classes]
        counts[num_classes] += values[ds.ignore_index]
    total = max(int(counts[:num_classes].sum()), 1)
    return {"images": len(ds), "ignore_fraction": float(counts[num_classes] / max(counts.sum(), 1)),
            "class_frequency": [float(c / total) for c in counts[:num_classes]]}


def prepare_index(name: str, root: str | Path, splits: dict[str, str],
                  synthetic_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate (synthetic) or validate (real) a dataset and return its index.

    Args:
        name: key of :data:`DATASETS`.
        root: the VOC-layout folder.
        splits: role -> split name, e.g. ``{"train": "train", "val": "val"}``.
        synthetic_params: generator arguments (only for generated datasets).
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
        "palette": voc.voc_palette(len(info.classes)).tolist(), "splits": {}, "stats": {},
    }
    for role, split in splits.items():
        ids = voc.read_split(root, split)
        voc.check_files(root, ids)
        ds = SegDataset(root, ids, [0, 0, 0], [1, 1, 1], info.ignore_index)
        index["splits"][role] = ids
        index["stats"][role] = split_stats(ds, len(info.classes), f"{name}/{split}")
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
