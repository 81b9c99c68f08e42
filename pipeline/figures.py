"""The report's figures (matplotlib, Agg backend: no display needed): curves, per-class bars, examples,
compute. :mod:`pipeline.words` words the tables beside them, :mod:`pipeline.documents` writes them."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


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


def plot_compute(points: list[tuple[str, float, float, float]], path: Path) -> None:
    """mIoU against total training TFLOP (teachers included), one point per row (label, TFLOP, mean, std over
    its seeds), the std as an error bar; a log TFLOP axis labelled 1, 2, 5, 10, ...; the legend beside it."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig, ax = plt.subplots(figsize=(11, 5.5))
    colours = plt.get_cmap("tab20").colors  # 20 colours and a marker cycle: no two of the table's rows look alike
    for i, (label, tflop, mean, std) in enumerate(points):
        ax.errorbar(tflop, mean, yerr=std, fmt="osD^v"[i % 5], capsize=3, color=colours[i % 20], label=label)
    ax.set(xscale="log", xlabel="training TFLOP, teachers included (log)", ylabel="val mIoU (%)",
           title="mIoU against training compute (error bars: std over seeds)")
    ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
