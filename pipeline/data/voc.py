"""The PASCAL VOC folder layout: palette, label files, split lists and validation.

Layout::

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClass/<id>.png      palette PNG, pixel value = class index, 255 = ignore
    <root>/SegmentationClassAug/<id>.png   (VOC aug) grey PNG, the same encoding
    <root>/ImageSets/Segmentation/<split>.txt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_DIR = "JPEGImages"
LABEL_DIR = "SegmentationClass"
AUG_LABEL_DIR = "SegmentationClassAug"  # the SBD-augmented labels (grey PNG) of train_aug
SPLIT_DIR = "ImageSets/Segmentation"

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")


def voc_palette(n: int = 256) -> np.ndarray:
    """The VOC colour map (n, 3) uint8: class bits spread over the high bits of R, G and B."""
    palette = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def write_label(path: Path, label: np.ndarray) -> None:
    """Save a (H, W) uint8 label map as a VOC palette PNG."""
    img = Image.fromarray(label.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().flatten().tolist())
    img.save(path)


def read_label(path: Path) -> np.ndarray:
    """Read a label file as (H, W) uint8 raw values: a PNG's palette index or grey value, or the
    ``S`` matrix of a COCO-Stuff 10K ``.mat`` file."""
    if path.suffix == ".mat":
        from scipy.io import loadmat

        try:
            values = loadmat(path)["S"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: unreadable .mat label file ({type(err).__name__}: {err})") from err
        if values.max(initial=0) > 255:
            raise ValueError(f"{path}: label values up to {values.max()}, more than 8 bits")
        return values.astype(np.uint8)
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise ValueError(f"{path}: label PNG must be palette (P) or grey (L), got mode {img.mode}")
            return np.array(img, dtype=np.uint8)
    except (OSError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable label file ({err})") from err


def write_split(root: Path, split: str, ids: list[str]) -> None:
    path = Path(root) / SPLIT_DIR / f"{split}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def read_split(root: Path, split: str) -> list[str]:
    """Image ids of ``split``; errors name the missing or empty file."""
    path = Path(root) / SPLIT_DIR / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found (expected one image id per line)")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path}: split list is empty")
    return ids
