"""Tables and figures of the report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ARCH_NAMES = {"deeplabv3": "DeepLabV3", "pspnet": "PSPNet", "fcn": "FCN", "ocrnet": "OCRNet", "stdc": "STDC"}

# Published val mIoU (%) for settings we can match: (dataset, row, arch, backbone family) -> mIoU.
# Rows: baseline, lad (student), a pipeline.methods key, conventional_teacher. Sources: the LAD paper
# (ECCV 2024) for VOC, the CIRKD paper (CVPR 2022) otherwise; both single-scale, DeepLabV3-R101 teacher.
PUBLISHED: dict[tuple[str, str, str, str], float] = {
    ("voc", "baseline", "deeplabv3", "resnet18"): 73.21,
    ("voc", "cirkd", "deeplabv3", "resnet18"): 74.50,
    ("voc", "lad", "deeplabv3", "resnet18"): 75.0,
    ("voc", "baseline", "pspnet", "resnet18"): 73.33,
    ("voc", "cirkd", "pspnet", "resnet18"): 74.78,
    ("voc", "lad", "pspnet", "resnet18"): 75.4,
    ("cityscapes", "conventional_teacher", "deeplabv3", "resnet101"): 78.07,
    ("cityscapes", "baseline", "deeplabv3", "resnet18"): 74.21,
    ("cityscapes", "cwd", "deeplabv3", "resnet18"): 75.55,
    ("cityscapes", "cirkd", "deeplabv3", "resnet18"): 76.38,
    ("ade20k", "baseline", "deeplabv3", "resnet18"): 33.91,
    ("ade20k", "cirkd", "deeplabv3", "resnet18"): 35.41,
    ("coco_stuff164k", "baseline", "deeplabv3", "resnet18"): 32.60,
    ("coco_stuff164k", "cirkd", "deeplabv3", "resnet18"): 33.11,
}
PUBLISHED_NOTE = ("the paper's number where dataset, row and student architecture match (VOC: the LAD paper; "
                  "Cityscapes, ADE20K, COCO-Stuff 164K: the CIRKD paper; both at 512-1024 px crops and 40k-80k "
                  "iterations with ImageNet weights, so only a full recipe run is comparable); — elsewhere.")


def published(dataset: str, row: str, arch: str, backbone: str) -> float | None:
    """The published mIoU of ``row`` for this dataset and model, if any (backbone by family: resnet18d
    and resnet18 both count as ResNet-18)."""
    family = next((f for f in ("resnet101", "resnet18") if backbone.startswith(f)), backbone)
    return PUBLISHED.get((dataset, row, arch, family))


def model_name(res: dict[str, Any]) -> str:
    """``DeepLabV3-resnet18d`` from an evaluation result (with its stage widths when narrowed)."""
    widths = f" (widths {'/'.join(map(str, res['channels']))})" if res.get("channels") else ""
    return f"{ARCH_NAMES.get(res['arch'], res['arch'])}-{res['backbone']}{widths}"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def plot_curves(curves: dict[str, dict[str, pd.DataFrame]], path: Path) -> None:
    """Training loss and validation mIoU against iterations, one line per trained model."""
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    for name, c in curves.items():
        if "loss" in c["train"]:
            ax_loss.plot(c["train"]["step"], c["train"]["loss"], label=name)
        if "val_miou" in c["val"]:
            ax_val.plot(c["val"]["step"], c["val"]["val_miou"], marker="o", label=name)
    ax_loss.set(xlabel="iteration", ylabel="training loss (total)", title="Training loss", yscale="log")
    ax_val.set(xlabel="iteration", ylabel="val mIoU (%)", title="Validation mIoU during training")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_per_class(per_class: pd.DataFrame, path: Path) -> None:
    """Grouped bars: per-class IoU (rows = classes, columns = models)."""
    ax = per_class.plot.bar(figsize=(max(8, len(per_class) * 1.2), 4), width=0.8)
    ax.set(ylabel="IoU (%)", title="Per-class IoU on val", ylim=(0, 100))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, ncol=3)
    plt.xticks(rotation=30, ha="right")
    plt.tight_layout()
    plt.savefig(path, dpi=110)
    plt.close()


def plot_examples(examples: dict[str, np.ndarray], columns: list[tuple[str, str]], palette: np.ndarray,
                  path: Path) -> None:
    """Grid of val examples: one row per image, columns = (key in ``examples``, title)."""
    n = len(examples["image"])
    cols = [(k, t) for k, t in columns if k in examples]
    fig, axes = plt.subplots(n, len(cols), figsize=(2 * len(cols), 2 * n), squeeze=False)
    for i in range(n):
        for j, (key, title) in enumerate(cols):
            ax = axes[i, j]
            ax.imshow(examples[key][i] if key == "image" else palette[examples[key][i]], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def full_palette(palette: list[list[int]]) -> np.ndarray:
    """Class colours padded to 256 entries; the ignore value 255 shows as VOC's cream."""
    pal = np.zeros((256, 3), np.uint8)
    pal[: len(palette)] = np.asarray(palette, np.uint8)
    pal[255] = (224, 224, 192)
    return pal
