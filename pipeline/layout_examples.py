"""A small dataset in each published layout, with real file names, label encodings and image sizes.

What the layout tests and the recipe runs (``benchmarks/recipes.py``) read, and a way to see a layout
before downloading the real thing::

    python -m pipeline.layout_examples cityscapes /tmp/cityscapes --per-split 2

Images are noise; labels are vertical bands of raw values the real files use (before the lookup to
train ids: Cityscapes labelIds, ADE20K's 0 = "other", COCO-Stuff's 1-based .mat ids, ...).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.data import voc

# (height, width) of a typical image of the real dataset
SIZES = {"voc": (375, 500), "cityscapes": (1024, 2048), "ade20k": (512, 683), "coco_stuff164k": (480, 640),
         "coco_stuff10k": (480, 640), "camvid": (360, 480), "folder": (480, 640)}  # CamVid: SegNet's copy
# raw label values drawn, as the published files hold them (each maps to a train id or to ignore)
LABELS = {"voc": [0, 1, 20, 255], "cityscapes": [0, 7, 26, 33, 1], "ade20k": [0, 1, 150],
          "coco_stuff164k": [0, 11, 12, 181, 255], "coco_stuff10k": [0, 1, 12, 13, 182], "camvid": [0, 3, 10, 11],
          "folder": [0, 1, 2, 255]}
FOLDER_CLASSES = "background 0 0 0\nroad 128 64 128\nlane marking 255 255 255\n"  # names, optional R G B


class Writer:
    """Writes noise images and banded labels of one size, from one random stream."""

    def __init__(self, size: tuple[int, int], labels: list[int], seed: int = 0) -> None:
        self.size, self.labels, self.rng = size, labels, np.random.default_rng(seed)

    def image(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), self.rng.integers(0, 255, (*self.size, 3), dtype=np.uint8))

    def bands(self, values: list[int] | None = None, dtype: type = np.uint8) -> np.ndarray:
        values = values or self.labels
        h, w = self.size
        return np.repeat(np.array(values, dtype), -(-w // len(values)))[:w][None].repeat(h, 0)

    def grey(self, path: Path, values: list[int] | None = None) -> None:
        """A grey (mode L) label PNG."""
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.bands(values), mode="L").save(path)


def voc_aug(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """VOC 2012 + SBD: JPEGImages, SegmentationClassAug (grey), SegmentationClass (palette) for val,
    ImageSets/Segmentation/<split>.txt."""
    for split, ids in names.items():
        for n in ids:
            w.image(root / "JPEGImages" / f"{n}.jpg")
            if split == "val":
                (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
                voc.write_label(root / "SegmentationClass" / f"{n}.png", w.bands([15]))
            w.grey(root / "SegmentationClassAug" / f"{n}.png")
        voc.write_split(root, split, ids)


def cityscapes(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/.../*_gtFine_labelIds.png."""
    for split, ids in names.items():
        for n in ids:
            stem = f"{split}/{n.split('_')[0]}/{n}"
            w.image(root / "leftImg8bit" / f"{stem}_leftImg8bit.png")
            w.grey(root / "gtFine" / f"{stem}_gtFine_labelIds.png")


def ade20k(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """ADEChallengeData2016/images/<split>/*.jpg and annotations/<split>/*.png."""
    base = root / "ADEChallengeData2016"
    for split, ids in names.items():
        for n in ids:
            w.image(base / "images" / split / f"{n}.jpg")
            w.grey(base / "annotations" / split / f"{n}.png")


def coco_stuff164k(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """images/<split>/*.jpg and annotations/<split>/*.png (stuffthingmaps)."""
    for split, ids in names.items():
        for n in ids:
            w.image(root / "images" / split / f"{n}.jpg")
            w.grey(root / "annotations" / split / f"{n}.png")


def coco_stuff10k(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """images/*.jpg, annotations/*.mat (key S, 1-based ids) and imageLists/<split>.txt."""
    from scipy.io import savemat

    for split, ids in names.items():
        for n in ids:
            w.image(root / "images" / f"{n}.jpg")
            (root / "annotations").mkdir(parents=True, exist_ok=True)
            savemat(root / "annotations" / f"{n}.mat", {"S": w.bands(dtype=np.uint16)})
        (root / "imageLists").mkdir(parents=True, exist_ok=True)
        (root / "imageLists" / f"{split}.txt").write_text("".join(f"{n}\n" for n in ids))


def camvid(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """<split>/*.png and <split>annot/*.png (SegNet's 11-class CamVid)."""
    for split, ids in names.items():
        for n in ids:
            w.image(root / split / f"{n}.png")
            w.grey(root / f"{split}annot" / f"{n}.png")


def folder(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """A user's own data: classes.txt, images/*.jpg, masks/*.png (train ids, 255 ignored), splits/<split>.txt."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(FOLDER_CLASSES)
    for split, ids in names.items():
        for n in ids:
            w.image(root / "images" / f"{n}.jpg")
            w.grey(root / "masks" / f"{n}.png")
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{n}\n" for n in ids))


# layout -> (writer, its splits, a real file name stem for image i of a split)
LAYOUT_WRITERS: dict[str, tuple[Callable[[Path, Writer, dict[str, list[str]]], None], tuple[str, ...],
                                Callable[[str, int], str]]] = {
    "voc": (voc_aug, ("train_aug", "val"), lambda s, i: f"{2007 if s == 'train_aug' else 2008}_{i:06d}"),
    "cityscapes": (cityscapes, ("train", "val"),
                   lambda s, i: f"{'aachen' if s == 'train' else 'frankfurt'}_{i:06d}_000019"),
    "ade20k": (ade20k, ("training", "validation"),
               lambda s, i: f"ADE_{'train' if s == 'training' else 'val'}_{i + 1:08d}"),
    "coco_stuff164k": (coco_stuff164k, ("train2017", "val2017"),
                       lambda s, i: f"{(9 if s == 'train2017' else 25) + i:012d}"),
    "coco_stuff10k": (coco_stuff10k, ("train", "test"),
                      lambda s, i: f"COCO_train2014_{77 + i + (100 if s == 'test' else 0):012d}"),
    "camvid": (camvid, ("train", "val", "test"),
               lambda s, i: f"Seq05VD_f{30 * (i // 2):05d}" if i % 2 else f"0001TP_{6690 + 30 * (i // 2):06d}"),
    "folder": (folder, ("train", "val"), lambda s, i: f"{s}_{i:04d}"),
}


def write_example(name: str, root: Path, per_split: int = 2, size: tuple[int, int] | None = None,
                  labels: list[int] | None = None, seed: int = 0) -> dict[str, list[str]]:
    """Write ``per_split`` images per split of layout ``name`` under ``root``; returns the file stems."""
    write, splits, stem = LAYOUT_WRITERS[name]
    names = {s: [stem(s, i) for i in range(per_split)] for s in splits}
    write(Path(root), Writer(size or SIZES[name], labels or LABELS[name], seed), names)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(LAYOUT_WRITERS))
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-split", type=int, default=2, help="images per split")
    args = parser.parse_args()
    names = write_example(args.name, args.root, args.per_split)
    print(f"{args.root}: {args.name} layout, " + ", ".join(f"{s} {len(n)}" for s, n in names.items()))


if __name__ == "__main__":
    main()
