"""`lad-predict` from a folder that is not the project: a checkpoint and its ONNX export give the same masks,
whole images and sliding windows alike; bad inputs are named before any work.
(The pipeline's own checkpoint, ONNX file and registered MLflow model: tests/test_pipeline_e2e.py.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.checkpoint import atomic_save
from pipeline.deploy import KEY, Preprocess, export_onnx
from pipeline.models import NetworkSpec, create_segmentor
from pipeline.predict import images_of, load, predict

pytestmark = pytest.mark.e2e  # processes, servers or the real stages: make test-fast leaves it out

CLASSES = ["background", "disc", "bar"]
PALETTE = [[0, 0, 0], [200, 40, 40], [40, 200, 40]]
CROP = 32  # the window: images larger than this are predicted in windows


def lad_predict() -> str:
    return str(Path(sys.executable).parent / "lad-predict")  # the console script pyproject.toml installs


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A small student as the pipeline ships it: a checkpoint (with classes, palette, config) and ONNX."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    model = create_segmentor(NetworkSpec("deeplabv3", "resnet18d", len(CLASSES), head_channels=8, aux_channels=8,
                                         channels=[8, 8, 16, 16])).eval()
    config = {"data": {"mean": [0.4, 0.45, 0.5], "std": [0.25, 0.25, 0.25], "channel_order": "rgb"},
              "train": {"crop_size": CROP}}
    atomic_save({"model": model.state_dict(), "spec": model.spec.to_dict(), "iteration": 1, "classes": CLASSES,
                 "palette": PALETTE, "config": config}, folder / "student.pt")
    pre = Preprocess.from_checkpoint(torch.load(folder / "student.pt", weights_only=True))
    export_onnx(model, folder / "student.onnx", torch.zeros(1, 3, CROP, CROP), pre)
    images = folder / "images"
    rng = np.random.default_rng(0)
    for name, (h, w) in {"small": (24, 30), "same_a": (CROP, CROP), "same_b": (CROP, CROP), "wide": (40, 75)}.items():
        (images / "sub").mkdir(parents=True, exist_ok=True)
        where = images / "sub" if name == "wide" else images
        cv2.imwrite(str(where / f"{name}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    (images / "notes.txt").write_text("not an image")
    return folder


def test_preprocess_travels_in_the_checkpoint_and_the_onnx_file(shipped):
    import onnxruntime as ort

    pre = Preprocess.from_checkpoint(torch.load(shipped / "student.pt", weights_only=True))
    assert pre.classes == CLASSES and pre.palette == PALETTE and pre.window == CROP and pre.stride == 22
    meta = ort.InferenceSession(str(shipped / "student.onnx")).get_modelmeta().custom_metadata_map
    assert Preprocess.from_json(meta[KEY], "onnx") == pre
    assert pre.inference(32, 32).mode == "whole" and pre.inference(40, 75).mode == "slide"
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 255  # red in OpenCV's order
    x = pre.tensor(bgr)  # the network sees RGB: channel 0 is red
    assert x.shape == (3, 2, 2) and x[0, 0, 0].item() == pytest.approx((1 - 0.4) / 0.25)
    assert x[2, 0, 0].item() == pytest.approx((0 - 0.5) / 0.25)


def test_torch_and_onnx_masks_agree_from_another_folder(shipped, tmp_path):
    """The console script, run where there is no params.yaml or data/: each image gives a palette PNG of class
    ids and an overlay; the checkpoint and its ONNX file give the same masks (sliding windows included)."""
    outs = {}
    for kind in ("pt", "onnx"):
        proc = subprocess.run([lad_predict(), str(shipped / "images"), "--model", str(shipped / f"student.{kind}"),
                               "--out", f"out_{kind}", "--batch-size", "2", "--device", "cpu"],
                              cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "4 masks and overlays" in proc.stdout
        outs[kind] = tmp_path / f"out_{kind}"
    names = ["small", "same_a", "same_b", "sub/wide"]
    for name in names:
        masks = [Image.open(outs[k] / f"{name}.png") for k in ("pt", "onnx")]
        assert masks[0].mode == "P" and masks[0].getpalette()[:9] == sum(PALETTE, [])
        a, b = (np.asarray(m) for m in masks)
        assert a.shape == cv2.imread(str(shipped / "images" / f"{name}.png")).shape[:2]
        assert (a == b).mean() > 0.999 and a.max() < len(CLASSES), name
        overlay = cv2.imread(str(outs["pt"] / f"{name}_overlay.jpg"))
        assert overlay.shape[:2] == a.shape
    assert not (tmp_path / "params.yaml").exists()


def test_sliding_windows_cover_an_image_larger_than_the_crop(shipped, tmp_path):
    """The wide image (40x75) goes through windows of 32 px; a whole-image forward would give other scores."""
    net = load(str(shipped / "student.pt"), "cpu")
    written = predict(net, [str(shipped / "images" / "sub" / "wide.png")], tmp_path, progress=False)
    assert [p.name for p in written] == ["wide.png"]
    assert np.asarray(Image.open(written[0])).shape == (40, 75)


def test_bad_inputs_are_named_before_any_work(shipped, tmp_path):
    cases = [
        (["missing.jpg", "--model", str(shipped / "student.pt")], "missing.jpg: no such image file or folder"),
        ([str(shipped / "images"), "--model", "nowhere.pt"], "nowhere.pt: no such model file"),
        ([str(shipped / "images"), "--model", "models:/nothing@candidate", "--tracking-uri",
          f"sqlite:///{tmp_path / 'empty.db'}"], "models:/nothing@candidate: not found in the MLflow store"),
        ([str(shipped / "images"), "--model", str(shipped / "student.pt"), "--device", "cuda:7"], None),
    ]
    for args, message in cases:
        proc = subprocess.run([lad_predict(), *args, "--out", "o"], cwd=tmp_path, capture_output=True, text=True)
        if message is None and torch.cuda.is_available():
            continue
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert (message or "no usable CUDA device") in proc.stderr
    assert not (tmp_path / "o").exists()  # nothing written
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        cv2.imwrite(str(tmp_path / d / "x.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="same output name: x"):
        images_of([str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "x.png")])
    teacher = create_segmentor(NetworkSpec("deeplabv3", "resnet18d", 3, in_chans=4, head_channels=8, aux_channels=8,
                                           channels=[8, 8, 16, 16]))
    atomic_save({"model": teacher.state_dict(), "spec": teacher.spec.to_dict(), "classes": CLASSES}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match="4 input channels"):
        load(str(tmp_path / "t.pt"), "cpu")
