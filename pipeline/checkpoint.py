"""Checkpoint files: atomic saves, safe loads, and trained networks rebuilt from their spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.io import atomic_write
from pipeline.models import segmentor_from_spec


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` without ever leaving a half-written file at ``path``.

    Saved through a file object: given a path, torch names the archive's root folder after the
    (temporary) file name, so equal weights would give different bytes and DVC would rerun
    everything downstream of a reproduced model.
    """
    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            torch.save(obj, f)

    atomic_write(path, write)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); the error names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise ValueError(f"{path}: not a loadable checkpoint ({type(err).__name__}: {err})") from err

def load_trained(path: str | Path, classes: list[str] | int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a trained network from its final checkpoint; returns (model in eval mode, checkpoint).

    ``classes`` (the dataset's class names, or just their count) is checked against the
    checkpoint's, naming both on mismatch: a model made for another dataset is refused.
    """
    ckpt = load_checkpoint(path)
    if "spec" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: not a trained-model checkpoint of this project (no 'spec'/'model')")
    spec = ckpt["spec"]
    count = classes if isinstance(classes, int) or classes is None else len(classes)
    if count is not None and spec["num_classes"] != count:
        raise ValueError(f"{path}: model has {spec['num_classes']} classes, the dataset has {count}")
    if isinstance(classes, list) and ckpt.get("classes") not in (None, classes):
        raise ValueError(f"{path}: model was trained on classes {ckpt['classes']}, the dataset has {classes}")
    model = segmentor_from_spec(spec)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the architecture its spec names ({spec['arch']}-"
                         f"{spec['backbone']}, {spec['in_chans']} input channels): {str(err).splitlines()[0]}") from err
    return model.eval(), ckpt
