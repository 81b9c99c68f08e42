"""Segmentor factory: heads, strides, channels, checkpoint round trip, pretrained offline."""

import re

import pytest
import torch

from pipeline.checkpoint import atomic_save, load_trained
from pipeline.models import (
    HEADS,
    NetworkSpec,
    Pretrained,
    count_flops,
    count_params,
    create_segmentor,
    segmentor_from_spec,
)
from tests.conftest import REPO


@pytest.mark.parametrize("arch", sorted(HEADS))
@pytest.mark.parametrize("stride", [8, 16])
def test_heads_shapes(arch, stride):
    model = create_segmentor(NetworkSpec(arch, "resnet18d", 5, in_chans=4, output_stride=stride, head_channels=16,
                                         aux_channels=8, aspp_rates=(1, 2, 3))).train()
    out = model(torch.randn(2, 4, 64, 64))
    side = 64 // (8 if arch == "stdc" else stride)  # STDC decodes at stage 2 (the backbone's stride-8 map)
    assert out["out"].shape == (2, 5, side, side) and out["aux"].shape == (2, 5, 64 // stride, 64 // stride)
    assert out["feat"].shape == (2, 16, side, side)  # the head embedding, head_channels wide
    assert set(out) == {"out", "feat", "backbone", "aux"} | ({"detail"} if arch == "stdc" else set())
    assert out["backbone"].shape == (2, model.feature_channels[-1], 64 // stride, 64 // stride)  # Af-DCD's map
    assert model.feature_channels == tuple(model.backbone.feature_info.channels())
    model.eval()
    assert set(model(torch.randn(1, 4, 64, 64))) == {"out", "feat", "backbone"}  # no aux or detail at inference
    assert model(torch.randn(1, 4, 64, 64), with_aux=True)["aux"].shape == (1, 5, 64 // stride, 64 // stride)
    assert model.predict(torch.randn(1, 4, 48, 40)).shape == (1, 5, 48, 40)


@pytest.mark.parametrize("backbone,stages", [("stdc1", (2, 2, 2)), ("stdc2", (4, 5, 3))])
@pytest.mark.parametrize("arch", ["stdc", "fcn", "ocrnet"])
def test_stdc_backbones(backbone, stages, arch):
    """STDC1/2: the module counts of the paper, widths 256/512/1024 at strides 8/16/32; STDC-Seg's
    output at stride 8 with its detail head in training."""
    model = create_segmentor(NetworkSpec(arch, backbone, 3, output_stride=32, head_channels=16, aux_channels=8)).train()
    assert tuple(len(s) for s in model.backbone.stages) == stages
    feats = model.backbone(torch.randn(2, 3, 64, 64))
    assert [tuple(f.shape[1:]) for f in feats] == [(256, 8, 8), (512, 4, 4), (1024, 2, 2)]
    out = model(torch.randn(2, 3, 64, 64))
    assert out["out"].shape[2:] == ((8, 8) if arch == "stdc" else (2, 2))
    assert ("detail" in out) == (arch == "stdc") and out.get("detail", out["out"]).shape[2:] == out["out"].shape[2:]
    with pytest.raises(ValueError, match="output_stride: 32 and pretrained: false"):
        create_segmentor(NetworkSpec(arch, backbone, 3, output_stride=8))


def test_ocrnet_uses_regions_of_the_aux_head():
    """OCRNet's soft object regions are the auxiliary logits: changing the aux head changes the output
    (a per-class constant would not: each region is a softmax over positions)."""
    torch.manual_seed(0)
    model = create_segmentor(NetworkSpec("ocrnet", "resnet18d", 4, head_channels=16, aux_channels=8)).eval()
    x = torch.randn(1, 3, 32, 32)
    before = model(x)["out"].clone()
    with torch.no_grad():
        model.aux_head.cls[1].weight[0].mul_(10)  # class 0's region: another spatial distribution
    assert not torch.allclose(model(x)["out"], before)
    with pytest.raises(ValueError, match="needs the auxiliary head"):
        create_segmentor(NetworkSpec("ocrnet", "resnet18d", 4, aux=False))


def test_counts():
    model = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, head_channels=16, aux_channels=8))
    assert 11e6 < count_params(model) < 12e6  # ResNet-18 body ~11.2M
    assert count_flops(model, 64) > count_flops(model, 32) > 0


def test_checkpoint_round_trip_and_class_mismatch(tmp_path):
    model = create_segmentor(NetworkSpec("pspnet", "resnet18d", 4, head_channels=16, aux_channels=8)).eval()
    atomic_save({"model": model.state_dict(), "spec": model.spec.to_dict(), "iteration": 3}, tmp_path / "m.pt")
    again, ckpt = load_trained(tmp_path / "m.pt", 4)
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(again(x)["out"], model(x)["out"])
    with pytest.raises(ValueError, match="model has 4 classes, the dataset has 21"):
        load_trained(tmp_path / "m.pt", 21)
    # a teacher made for another dataset with as many classes: both class lists are named
    atomic_save({"model": model.state_dict(), "spec": model.spec.to_dict(), "classes": ["a", "b", "c", "d"]},
                tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"trained on classes \['a', 'b', 'c', 'd'\], the dataset has \['w', 'x'"):
        load_trained(tmp_path / "t.pt", ["w", "x", "y", "z"])
    # weights of another architecture than the spec says: named, not a raw state-dict trace
    other = create_segmentor(NetworkSpec("fcn", "resnet18d", 4, head_channels=16, aux_channels=8))
    atomic_save({"model": other.state_dict(), "spec": model.spec.to_dict()}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="weights do not fit the architecture its spec names \\(pspnet-resnet18d"):
        load_trained(tmp_path / "x.pt", 4)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporary file left
    atomic_save({"model": model.state_dict(), "spec": model.spec.to_dict(), "iteration": 3}, tmp_path / "again.pt")
    assert (tmp_path / "again.pt").read_bytes() == (tmp_path / "m.pt").read_bytes()  # same weights, same bytes


def test_narrow_resnet_rebuilds_from_its_spec_and_other_backbones_refuse_widths():
    model = create_segmentor(NetworkSpec("deeplabv3", "resnet18d", 3, head_channels=8, aux_channels=8,
                                         aspp_rates=(2, 4, 6), channels=[16, 32, 64, 128], stem_width=16))
    assert model.backbone.feature_info.channels() == [32, 64, 128]
    assert model.backbone.conv1[0].out_channels == 16  # the deep stem's first conv
    again = segmentor_from_spec(model.spec)
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]
    with pytest.raises(ValueError, match="'mobilenetv3_small_050' does not take"):
        create_segmentor(NetworkSpec("fcn", "mobilenetv3_small_050", 3, channels=[8, 8, 8, 8]))
    with pytest.raises(ValueError, match="cannot load"):
        create_segmentor(NetworkSpec("fcn", "resnet18d", 3, channels=[8, 8, 8, 8]), Pretrained())


def test_unknown_names():
    with pytest.raises(ValueError, match="arch"):
        create_segmentor(NetworkSpec("segformer", "resnet18d", 3))
    with pytest.raises(ValueError, match="unknown timm model"):
        create_segmentor(NetworkSpec("fcn", "resnet_nope", 3))


def test_the_backbones_checked_without_timm_are_timm_models_and_cover_every_recipe():
    import timm

    from pipeline.config import KNOWN_TIMM, STDC_BACKBONES

    assert all(timm.is_model(name) for name in KNOWN_TIMM)
    named = set(re.findall(r"backbone: (\w+)", "".join(p.read_text() for p in [REPO / "params.yaml",
                                                                                *(REPO / "recipes").glob("*.yaml")])))
    assert named and named <= KNOWN_TIMM | set(STDC_BACKBONES)


def test_pretrained_from_a_local_file_and_the_label_channel_init(tmp_path):
    import timm

    torch.manual_seed(1)
    reference = timm.create_model("resnet18d")  # stands in for timm's ImageNet weights, saved offline
    path = tmp_path / "resnet18d.pth"
    torch.save(reference.state_dict(), path)
    first = reference.state_dict()["conv1.0.weight"]  # resnet18d: deep stem, first conv 3 -> 32

    student = create_segmentor(NetworkSpec("fcn", "resnet18d", 3), Pretrained(str(path)))
    torch.testing.assert_close(student.backbone.state_dict()["conv1.0.weight"], first)
    torch.testing.assert_close(student.backbone.state_dict()["layer4.1.conv2.weight"],
                               reference.state_dict()["layer4.1.conv2.weight"])

    teacher = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, in_chans=4), Pretrained(str(path)))
    w = teacher.backbone.state_dict()["conv1.0.weight"]
    assert w.shape[1] == 4
    torch.testing.assert_close(w[:, :3], first)  # official: RGB copied, label channel N(0, 0.1^2)
    assert 0.05 < w[:, 3].std().item() < 0.15
    timm_style = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, in_chans=4), Pretrained(str(path),
                                              label_init="timm"))
    assert not torch.equal(timm_style.backbone.state_dict()["conv1.0.weight"][:, :3], first)  # timm rescales
    assert teacher(torch.randn(1, 4, 32, 32))["out"].shape == (1, 3, 4, 4)


def test_pretrained_without_internet_says_how_to_provide_the_weights(tmp_path):
    bad = tmp_path / "not_weights.pth"
    bad.write_bytes(b"nothing")
    with pytest.raises(RuntimeError, match="pretrained_path"):
        create_segmentor(NetworkSpec("fcn", "resnet18d", 3), Pretrained(str(bad)))


@pytest.mark.e2e
def test_pretrained_from_the_hub_offline_fails_with_a_way_out():
    """Here the hub cannot be reached: the message names the fix (offline mode makes it fail at once)."""
    import os
    import subprocess
    import sys

    code = ("from pipeline.models import NetworkSpec, Pretrained, create_segmentor\n"
            "create_segmentor(NetworkSpec('fcn', 'resnet18d', 3), Pretrained())\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode != 0
    assert "could not load ImageNet weights for 'resnet18d'" in proc.stderr and "pretrained_path" in proc.stderr


def test_pspnet_is_named_as_having_no_onnx_form_the_others_export():
    """PSPNet's pyramid pools to 2x2..6x6 grids, which ONNX cannot do at a run-time size: evaluation notes it
    instead of failing (found by benchmarks/recipes.py on voc_pspnet_r18); every other head exports."""
    from pipeline.deploy import Preprocess, export_onnx, onnx_problem

    psp = create_segmentor(NetworkSpec("pspnet", "resnet18d", 3, head_channels=8, aux_channels=8)).eval()
    assert "PSPNet's pyramid" in onnx_problem(psp)
    meta = Preprocess.of(["a", "b", "c"], [[0, 0, 0]] * 3, [0.5] * 3, [0.25] * 3, "rgb", 32)
    with pytest.raises(Exception, match="adaptive_avg_pool2d"):
        export_onnx(psp, "unused.onnx", torch.randn(1, 3, 40, 56), meta)
    for arch in ("deeplabv3", "fcn", "ocrnet"):
        assert onnx_problem(create_segmentor(NetworkSpec(arch, "resnet18d", 3, head_channels=8,
                                                         aux_channels=8))) is None
