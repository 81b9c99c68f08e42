"""Conversions a download needs before ``prepare`` reads it (docs/datasets.md walks through each dataset).

Only PASCAL VOC's augmented training set needs one: SBD ships its labels as MATLAB files::

    python -m pipeline.convert voc-aug VOCdevkit/VOC2012 benchmark_RELEASE/dataset

writes ``SegmentationClassAug/<id>.png`` (grey, train ids 0..20; SBD draws no 255 borders) from SBD's
``cls/<id>.mat``, and ``ImageSets/Segmentation/train_aug.txt``: SBD's train and val plus VOC's train,
minus VOC's val (10,582 images with the full SBD). mmsegmentation's ``voc_aug.py`` lists the same
images as ``trainaug.txt`` (then set ``data.train_split: trainaug``).
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data import voc
from pipeline.progress import bar

AUG_SPLIT = "train_aug"


def sbd_label(mat: Path) -> np.ndarray:
    """The class map of an SBD ``cls/*.mat`` file (``GTcls.Segmentation``), uint8."""
    from scipy.io import loadmat

    return loadmat(mat, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation.astype(np.uint8)


def voc_aug(voc_root: Path, sbd_root: Path, workers: int = 8) -> list[str]:
    """Write ``SegmentationClassAug`` and ``train_aug.txt`` under ``voc_root``; returns the split's ids."""
    cls = sbd_root / "cls"
    mats = sorted(cls.glob("*.mat"))
    if not mats:
        raise FileNotFoundError(f"{cls}: no SBD .mat labels (expected benchmark_RELEASE/dataset/cls/*.mat)")
    out = voc_root / voc.AUG_LABEL_DIR
    out.mkdir(parents=True, exist_ok=True)

    def convert(mat: Path) -> None:
        Image.fromarray(sbd_label(mat), mode="L").save(out / f"{mat.stem}.png")

    with ThreadPoolExecutor(workers) as pool:
        list(bar(pool.map(convert, mats), total=len(mats), desc="SBD -> SegmentationClassAug"))
    sbd = [i for name in ("train", "val") for i in (sbd_root / f"{name}.txt").read_text().split()]
    ids = sorted((set(sbd) | set(voc.read_split(voc_root, "train"))) - set(voc.read_split(voc_root, "val")))
    voc.write_split(voc_root, AUG_SPLIT, ids)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    aug = sub.add_parser("voc-aug", help="SBD's .mat labels -> SegmentationClassAug PNGs and train_aug.txt")
    aug.add_argument("voc_root", type=Path, help="VOCdevkit/VOC2012")
    aug.add_argument("sbd_root", type=Path, help="benchmark_RELEASE/dataset (holds cls/, train.txt, val.txt)")
    args = parser.parse_args()
    ids = voc_aug(args.voc_root, args.sbd_root)
    print(f"{args.voc_root / voc.SPLIT_DIR / AUG_SPLIT}.txt: {len(ids)} images "
          f"(10,582 with the full SBD); labels in {args.voc_root / voc.AUG_LABEL_DIR}")


if __name__ == "__main__":
    main()
