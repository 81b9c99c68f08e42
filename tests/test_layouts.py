"""Real dataset layouts: tiny fixtures in each published layout (real names, real label encodings)
go through prepare and a training step; the label tables match the published mappings."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import numpy as np
import pytest
import torch

from pipeline.config import DatasetName
from pipeline.data import BadDataError, make_dataset, prepare_index
from pipeline.data.layouts import INVALID, LAYOUTS, make_layout
from pipeline.engine import SegData, Trainer
from pipeline.layout_examples import EXAMPLES, Writer, write_example
from pipeline.models import NetworkSpec, create_segmentor
from pipeline.steps.supervised import SupervisedStep
from tests.conftest import trainer_config

SIZE = (24, 32)  # tiny: the layouts' names and encodings matter here, not their sizes


def make(name: str, root: Path) -> None:
    write_example(name, root, per_split=2, size=SIZE)
    if name == "cityscapes":  # made by cityscapesscripts' createTrainIdLabelImgs: taken as train ids
        writer = Writer(SIZE, [0, 13, 18, 255])
        for label in (root / "gtFine/val").rglob("*_gtFine_labelIds.png"):
            writer.grey(label.with_name(label.name.replace("labelIds", "labelTrainIds")))


def grey(path: Path, values: list[int]) -> None:
    Writer(SIZE, values).grey(path)


def test_every_real_layout_has_an_example():
    """Found through the registry: a new layout is tested here without a line of this file."""
    assert set(EXAMPLES) == set(LAYOUTS) - {"synthetic"} == set(get_args(DatasetName)) - {"synthetic"}
    assert all(ex.splits[:2] == make_layout(n, root=".").splits for n, ex in EXAMPLES.items() if n != "folder")


def test_published_label_mappings():
    city = make_layout("cityscapes").lut
    assert city[7] == 0 and city[26] == 13 and city[33] == 18 and city[0] == 255 and city[1] == 255
    assert city[34] == INVALID and city[255] == INVALID  # labelIds stop at 33
    assert make_layout("cityscapes").lut_for("x_gtFine_labelTrainIds.png")[18] == 18
    ade = make_layout("ade20k").lut
    assert ade[0] == 255 and ade[1] == 0 and ade[150] == 149 and ade[151] == INVALID
    c171, c182 = make_layout("coco_stuff164k").lut, make_layout("coco_stuff164k", 182).lut
    assert len(make_layout("coco_stuff164k").classes) == 171 and len(make_layout("coco_stuff164k", 182).classes) == 182
    assert c171[0] == 0 and c171[11] == 255 and c171[12] == 11 and c171[181] == 170 and c171[255] == 255
    assert c182[11] == 11 and c182[181] == 181 and c182[182] == INVALID
    assert make_layout("coco_stuff164k").classes[11] == "stop sign"  # 'street sign' (unused) dropped
    c10k = make_layout("coco_stuff10k").lut
    assert c10k[0] == 255 and c10k[1] == 0 and c10k[12] == 255 and c10k[13] == 11 and c10k[182] == 170
    cam = make_layout("camvid").lut
    assert cam[10] == 10 and cam[11] == 255 and cam[12] == INVALID and len(make_layout("camvid").classes) == 11
    voc_lut = make_layout("voc").lut
    assert voc_lut[20] == 20 and voc_lut[255] == 255 and voc_lut[21] == INVALID


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_layout_prepares_and_trains_one_step(name, tmp_path):
    root = tmp_path / name
    make(name, root)
    (train_split, val_split), expected = EXAMPLES[name].splits[:2], EXAMPLES[name].train_ids
    index = prepare_index(name, root, {"train": train_split, "val": val_split})
    assert index["stats"]["train"]["images"] >= 1 and index["stats"]["val"]["images"] >= 1
    k = len(index["classes"])
    ds = make_dataset(index, "train", [0.5] * 3, [0.25] * 3, crop=16, scale_range=(1.0, 1.0), flip=False)
    whole = make_dataset(index, "train", [0.5] * 3, [0.25] * 3)
    assert set(np.unique(whole.load(0)[1]).tolist()) == expected
    torch.manual_seed(0)
    model = create_segmentor(NetworkSpec("fcn", "resnet18d", k, head_channels=8, aux_channels=8))
    train, run, job = trainer_config(1)
    trainer = Trainer(model, SupervisedStep(k, 255), SegData(ds, None, index["classes"]),
                      train.model_copy(update={"batch_size": 1}), run, job)
    history = trainer.fit()
    assert trainer.iteration == 1 and np.isfinite(history["train"][0]["loss"])


def test_wrong_label_values_and_splits_are_named(tmp_path):
    root = tmp_path / "camvid"
    make("camvid", root)
    grey(root / "trainannot" / "0001TP_006690.png", [0, 12, 40])
    with pytest.raises(BadDataError, match=r"0001TP_006690.png: label values \[12, 40\] are not labels of this "
                                           r"dataset \(expected 0\.\.11\)"):
        prepare_index("camvid", root, {"train": "train"})
    with pytest.raises(FileNotFoundError, match=r"camvid/training: CamVid images folder not found.*usual splits: "
                                                r"train, val"):
        prepare_index("camvid", root, {"train": "training"})
    grey(root / "valannot" / "orphan.png", [0])
    with pytest.raises(BadDataError, match="valannot/orphan.png: label without an image"):
        prepare_index("camvid", root, {"val": "val"})
    index = prepare_index("camvid", root, {"train": "train", "val": "val"}, on_bad="skip")
    assert [(s["split"], Path(s["file"]).name) for s in index["skipped"]] == [("train", "0001TP_006690.png"),
                                                                               ("val", "orphan.png")]
    assert index["samples"]["train"] == [("train/Seq05VD_f00000.png", "trainannot/Seq05VD_f00000.png")]


def test_the_folder_layout_reads_its_classes_palette_and_lists(tmp_path):
    root = tmp_path / "own"
    make("folder", root)
    index = prepare_index("folder", root, {"train": "train", "val": "val"})
    assert index["classes"] == ["background", "road", "lane marking"]
    assert index["palette"] == [[0, 0, 0], [128, 64, 128], [255, 255, 255]]
    (root / "classes.txt").write_text("background\nroad\n")  # no colours: the VOC palette
    grey(root / "masks/train_0001.png", [0, 1, 2])
    with pytest.raises(BadDataError, match=r"train_0001.png: label values \[2\] are not labels of this dataset"):
        prepare_index("folder", root, {"train": "train"})
    (root / "classes.txt").unlink()
    with pytest.raises(FileNotFoundError, match="classes.txt: classes file not found"):
        prepare_index("folder", root, {"train": "train"})
    (root / "classes.txt").write_text("a\nb\na\n")
    with pytest.raises(ValueError, match=r"class names repeat: \['a'\]"):
        prepare_index("folder", root, {"train": "train"})
    (root / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(FileNotFoundError, match=r"splits/training.txt: split list not found.*usual splits: train, val"):
        prepare_index("folder", root, {"train": "training"})


def test_sbd_labels_become_the_train_aug_split(tmp_path):
    from scipy.io import savemat

    from pipeline.convert import voc_aug
    from pipeline.data import voc

    voc_root, sbd = tmp_path / "VOC2012", tmp_path / "benchmark_RELEASE/dataset"
    voc.write_split(voc_root, "train", ["2007_a", "2007_b"])
    voc.write_split(voc_root, "val", ["2007_c"])
    (sbd / "cls").mkdir(parents=True)
    for i, name in enumerate(["2007_b", "2007_c", "2008_d"]):
        savemat(sbd / "cls" / f"{name}.mat", {"GTcls": {"Segmentation": np.full((3, 4), i + 18, np.uint8)}})
    (sbd / "train.txt").write_text("2007_b\n2008_d\n")
    (sbd / "val.txt").write_text("2007_c\n")
    assert voc_aug(voc_root, sbd) == ["2007_a", "2007_b", "2008_d"]  # SBD + VOC train, without VOC val
    assert voc.read_split(voc_root, "train_aug") == ["2007_a", "2007_b", "2008_d"]
    assert np.unique(voc.read_label(voc_root / "SegmentationClassAug/2008_d.png")).tolist() == [20]
