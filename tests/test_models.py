"""Segmentor factory: heads, strides, channels, checkpoint round trip, pretrained offline."""

import pytest
import torch

from pipeline.engine import atomic_save, load_trained
from pipeline.models import HEADS, count_flops, count_params, create_segmentor


@pytest.mark.parametrize("arch", sorted(HEADS))
@pytest.mark.parametrize("stride", [8, 16])
def test_heads_shapes(arch, stride):
    model = create_segmentor(arch, "resnet18d", 5, in_chans=4, output_stride=stride, head_channels=16,
                             aux_channels=8, aspp_rates=(1, 2, 3)).train()
    out = model(torch.randn(2, 4, 64, 64))
    assert out["out"].shape == (2, 5, 64 // stride, 64 // stride) and out["aux"].shape == out["out"].shape
    model.eval()
    assert set(model(torch.randn(1, 4, 64, 64))) == {"out"}
    assert model.predict(torch.randn(1, 4, 48, 40)).shape == (1, 5, 48, 40)


def test_counts():
    model = create_segmentor("fcn", "resnet18d", 3, head_channels=16, aux_channels=8)
    assert 11e6 < count_params(model) < 12e6  # ResNet-18 body ~11.2M
    assert count_flops(model, 64) > count_flops(model, 32) > 0


def test_checkpoint_round_trip_and_class_mismatch(tmp_path):
    model = create_segmentor("pspnet", "resnet18d", 4, head_channels=16, aux_channels=8).eval()
    atomic_save({"model": model.state_dict(), "spec": model.spec, "iteration": 3}, tmp_path / "m.pt")
    again, ckpt = load_trained(tmp_path / "m.pt", 4)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(again(x)["out"], model(x)["out"])
    with pytest.raises(ValueError, match="model has 4 classes, the dataset has 21"):
        load_trained(tmp_path / "m.pt", 21)
    # a teacher made for another dataset with as many classes: both class lists are named
    atomic_save({"model": model.state_dict(), "spec": model.spec, "classes": ["a", "b", "c", "d"]}, tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"trained on classes \['a', 'b', 'c', 'd'\], the dataset has \['w', 'x'"):
        load_trained(tmp_path / "t.pt", ["w", "x", "y", "z"])
    # weights of another architecture than the spec says: named, not a raw state-dict trace
    other = create_segmentor("fcn", "resnet18d", 4, head_channels=16, aux_channels=8)
    atomic_save({"model": other.state_dict(), "spec": model.spec}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="weights do not fit the architecture its spec names \\(pspnet-resnet18d"):
        load_trained(tmp_path / "x.pt", 4)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary file left
    atomic_save({"model": model.state_dict(), "spec": model.spec, "iteration": 3}, tmp_path / "again.pt")
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "m.pt").read_bytes()  # same weights, same bytes


def test_unknown_names():
    with pytest.raises(ValueError, match="arch"):
        create_segmentor("segformer", "resnet18d", 3)
    with pytest.raises(ValueError, match="unknown timm model"):
        create_segmentor("fcn", "resnet_nope", 3)


def test_pretrained_from_a_local_file_and_the_label_channel_init(tmp_path):
    import timm

    torch.manual_seed(1)
    reference = timm.create_model("resnet18d")  # stands in for timm's ImageNet weights, saved offline
    path = tmp_path / "resnet18d.pth"
    torch.save(reference.state_dict(), path)
    first = reference.state_dict()["conv1.0.weight"]  # resnet18d: deep stem, first conv 3 -> 32

    student = create_segmentor("fcn", "resnet18d", 3, pretrained=True, pretrained_path=str(path))
    torch.testing.assert_close(student.backbone.state_dict()["conv1.0.weight"], first)
    torch.testing.assert_close(student.backbone.state_dict()["layer4.1.conv2.weight"],
                               reference.state_dict()["layer4.1.conv2.weight"])

    teacher = create_segmentor("fcn", "resnet18d", 3, in_chans=4, pretrained=True, pretrained_path=str(path))
    w = teacher.backbone.state_dict()["conv1.0.weight"]
    assert w.shape[1] == 4
    torch.testing.assert_close(w[:, :3], first)  # official: RGB copied, label channel N(0, 0.1^2)
    assert 0.05 < w[:, 3].std().item() < 0.15
    timm_style = create_segmentor("fcn", "resnet18d", 3, in_chans=4, pretrained=True, pretrained_path=str(path),
                                  label_init="timm")
    assert not torch.equal(timm_style.backbone.state_dict()["conv1.0.weight"][:, :3], first)  # timm rescales
    assert teacher(torch.randn(1, 4, 32, 32))["out"].shape == (1, 3, 4, 4)


def test_pretrained_without_internet_says_how_to_provide_the_weights(tmp_path):
    bad = tmp_path / "not_weights.pth"
    bad.write_bytes(b"nothing")
    with pytest.raises(RuntimeError, match="pretrained_path"):
        create_segmentor("fcn", "resnet18d", 3, pretrained=True, pretrained_path=str(bad))


def test_pretrained_from_the_hub_offline_fails_with_a_way_out():
    """Here the hub cannot be reached: the message names the fix (offline mode makes it fail at once)."""
    import os
    import subprocess
    import sys

    code = ("from pipeline.models import create_segmentor\n"
            "create_segmentor('fcn', 'resnet18d', 3, pretrained=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    assert "could not load ImageNet weights for 'resnet18d'" in proc.stderr and "pretrained_path" in proc.stderr
