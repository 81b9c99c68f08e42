"""Bad data: every broken file is named (with a count) before training, or skipped and listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import BadDataError, SegDataset, prepare_index, voc
from pipeline.data.layouts import make_layout
from tests.conftest import copy_repo, run, tiny_params


@pytest.fixture()
def voc_copy(tmp_path, tiny_index) -> Path:
    root = tmp_path / "VOC2012"
    shutil.copytree(tiny_index["root"], root)
    return root


def break_files(root: Path) -> dict[str, str]:
    """Break four training samples four ways; returns file name -> the words its error must contain."""
    (root / "SegmentationClass/train_00000.png").unlink()
    voc.write_label(root / "SegmentationClass/train_00001.png", np.full((32, 32), 40, np.uint8))
    jpeg = (root / "JPEGImages/train_00002.jpg").read_bytes()
    (root / "JPEGImages/train_00002.jpg").write_bytes(jpeg[: len(jpeg) // 2])  # truncated download
    voc.write_label(root / "SegmentationClass/train_00003.png", np.zeros((20, 32), np.uint8))
    return {"train_00000.png": "label file missing",
            "train_00001.png": "label values [40] are not labels of this dataset (expected 0..20, 255)",
            "train_00002.jpg": "truncated", "train_00003.png": "label size (20, 32) differs"}


def test_real_voc_layout_reads(voc_copy):
    index = prepare_index("voc", voc_copy, {"train": "train", "val": "val"})  # the same reader serves real VOC
    assert index["classes"][0] == "background" and len(index["classes"]) == 21 and index["skipped"] == []


def test_every_bad_file_is_named_with_a_count(voc_copy):
    expected = break_files(voc_copy)
    with pytest.raises(BadDataError) as err:
        prepare_index("voc", voc_copy, {"train": "train", "val": "val"})
    message = str(err.value)
    assert message.startswith("4 problem(s) in 4 sample(s) of split 'train'") and "data.on_bad: skip" in message
    for name, words in expected.items():
        assert f"{name}: " in message and words in message, name


def test_skip_leaves_bad_samples_out_and_lists_them(voc_copy):
    expected = break_files(voc_copy)
    index = prepare_index("voc", voc_copy, {"train": "train", "val": "val"}, on_bad="skip")
    kept = [image for image, _ in index["samples"]["train"]]
    assert len(kept) == 8 and not set(kept) & {f"JPEGImages/train_0000{i}.jpg" for i in range(4)}
    assert {Path(s["file"]).name for s in index["skipped"]} == set(expected)
    assert index["stats"]["train"]["skipped"] == 4 and index["stats"]["val"]["skipped"] == 0
    assert index["stats"]["train"]["images"] == 8


def test_other_split_and_folder_errors(voc_copy, tmp_path):
    (voc_copy / "ImageSets/Segmentation/empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty.txt: split list is empty"):
        prepare_index("voc", voc_copy, {"train": "empty"})
    with pytest.raises(FileNotFoundError, match="missing.txt: split list not found"):
        prepare_index("voc", voc_copy, {"train": "missing"})
    with pytest.raises(FileNotFoundError, match="nowhere: dataset folder not found"):
        prepare_index("voc", tmp_path / "nowhere", {"train": "train"})
    (voc_copy / "JPEGImages/val_00002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="val_00002.jpg: missing or unreadable"):
        SegDataset(voc_copy, [("JPEGImages/val_00002.jpg", "SegmentationClass/val_00002.png")], [0, 0, 0], [1, 1, 1],
                   make_layout("voc"))[0]


@pytest.mark.e2e
def test_a_file_broken_after_prepare_is_named_not_buried_in_a_worker_trace(tmp_path):
    """DataLoader workers re-raise with their whole traceback; the stage prints one line naming the file."""
    repo = copy_repo(tmp_path, tiny_params(run={"num_workers": 1, "cache_images": False}))
    run(["python", "-m", "stages.prepare"], repo)
    for path in (repo / "data/prepared/synthetic/JPEGImages").glob("train_*.jpg"):
        path.write_bytes(b"")  # every training image broken, so the first batch fails in the worker
    proc = run(["python", "-m", "stages.train", "baseline"], repo, check=False)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "JPEGImages/train_" in errors[0] and "missing or unreadable image" in errors[0]
    assert "Traceback" not in proc.stderr and "DataLoader worker" not in proc.stderr
