"""Comparison methods: STDC's detail loss, CIRKD's memory contrast, the method registry."""

import math

import pytest
import torch
import torch.nn.functional as F

from pipeline.losses import MemoryContrast, Queues, cwd, dist, kd, omni_contrast, pixel_pair_relation
from pipeline.methods import METHODS, Widths, create_method_loss
from pipeline.seg_losses import detail_loss, detail_target
from pipeline.steps.method_distill import MethodDistillStep
from pipeline.words.format import describe, method_title
from tests.conftest import section


def test_detail_target_marks_class_edges_only():
    # a vertical edge between class 0 (columns 0-3) and class 2 (columns 4-7); ignore pixels count as 0
    label = torch.zeros(1, 8, 8, dtype=torch.long)
    label[:, :, 4:] = 2
    t = detail_target(label)[0, 0]
    # the Laplacian is positive on the high side of the edge (column 4); strides 2 and 4 add weight
    # 0.3 + 0.1 around it, so the fused map passes 0.1 on columns 4 and nearby, never far from it
    assert t[:, 4].eq(1).all() and t[:, :2].eq(0).all()
    assert detail_target(torch.ones(1, 8, 8, dtype=torch.long))[0, 0, 2:-2, 2:-2].eq(0).all()  # no edge inside
    uniform_ignore = torch.full((1, 8, 8), 255)
    assert detail_target(uniform_ignore).sum() == 0


def test_detail_loss_hand_computed():
    label = torch.zeros(1, 4, 4, dtype=torch.long)  # no edges: target all zero
    logits = torch.zeros(1, 1, 4, 4)  # p = 0.5 everywhere
    bce = math.log(2)
    dice = 1 - 1 / (8 + 1)  # 1 - (2*0 + 1) / (sum p = 8, sum t = 0, + 1)
    assert abs(detail_loss(logits, label).item() - (bce + dice)) < 1e-6


def direct_memory_losses(mc, s, t, label, pix_idx, reg_idx):
    """CIRKD's contrast, written pixel by pixel against the queues as they are after enqueueing."""
    s = F.normalize(mc.project(s), dim=1)
    t = F.normalize(t, dim=1)
    out = []
    for queue, idx in ((mc.pixel_queue, pix_idx), (mc.region_queue, reg_idx)):
        bank = torch.cat([queue[c, idx] for c in range(queue.shape[0])])
        total, n = 0.0, 0
        for b in range(s.shape[0]):
            for i in range(s.shape[2]):
                for j in range(s.shape[3]):
                    if label[b, i, j] == 255:
                        continue
                    ps = F.log_softmax(bank @ s[b, :, i, j] / mc.temperature, 0)
                    pt = F.softmax(bank @ t[b, :, i, j] / mc.temperature, 0)
                    total = total + (pt * (pt.log() - ps)).sum()
                    n += 1
        out.append(total / n)
    return out


def test_memory_contrast_matches_a_direct_loop_and_trains_the_projection():
    torch.manual_seed(0)
    mc = MemoryContrast(6, 4, num_classes=3, queues=Queues(pixel_memory=10, region_memory=5, pixel_contrast=6,
                                                           region_contrast=3, pixel_update=2))
    s, t = torch.randn(2, 6, 3, 3, requires_grad=True), torch.randn(2, 4, 3, 3)
    label = torch.randint(0, 3, (2, 3, 3))
    label[0, 0, 0] = 255
    mc.eval()  # BN in the projection: use running stats so the direct loop sees the same projection
    torch.manual_seed(1)
    pixel, region = mc(s, t, label)
    # replay the random draws: enqueue (one randperm per image and class), then the two samples
    torch.manual_seed(1)
    for y in label.flatten(1):
        for c in y.unique().tolist():
            if c != 255:
                torch.randperm(int((y == c).sum()))
    pix_idx = torch.randperm(10)[:6 // 3 + 1]
    reg_idx = torch.randperm(5)[:3 // 3 + 1]
    want = direct_memory_losses(mc, s, t, label, pix_idx, reg_idx)
    torch.testing.assert_close(pixel, want[0])
    torch.testing.assert_close(region, want[1])
    (pixel + region).backward()
    assert s.grad.abs().sum() > 0 and mc.project[0].weight.grad.abs().sum() > 0
    # enqueue: each class present in an image adds one region and min(count, 2) pixels
    counts = [sum(int((y == c).any()) for y in label.flatten(1)) for c in range(3)]
    assert mc.region_ptr.tolist() == [n % 5 for n in counts]
    assert all(torch.allclose(mc.region_queue[c].norm(dim=1), torch.ones(5)) for c in range(3))


def test_memory_queue_wraps_like_cirkd():
    mc = MemoryContrast(2, 2, num_classes=1, queues=Queues(pixel_memory=5, region_memory=2, pixel_update=3))
    feats = torch.randn(1, 2, 2, 2)
    label = torch.zeros(1, 2, 2, dtype=torch.long)
    mc.enqueue(F.normalize(feats, dim=1), label)
    assert mc.pixel_ptr.item() == 3 and mc.region_ptr.item() == 1
    mc.enqueue(F.normalize(feats, dim=1), label)  # 3 + 3 >= 5: written to the last 3 slots, pointer back to 0
    assert mc.pixel_ptr.item() == 0 and mc.region_ptr.item() == 0


def hp(method: str, **update):
    """The method's hyper-parameters as params.yaml sets them, with ``update`` applied."""
    return getattr(section("compare").hparams, method).model_copy(update=update)


def test_registry_names_and_official_values():
    from pipeline.config import MethodsHparams

    assert set(METHODS) == set(MethodsHparams.model_fields) == {"kd", "cwd", "cirkd", "dist", "afdcd", "fitnet"}
    assert hp("fitnet").w_hint == 1.0 and method_title("fitnet") == "FitNet"
    assert hp("cirkd").w_memory_pixel == 0.1  # CIRKD's default; VOC recipes set 0.01
    assert describe("kd", hp("kd")) == "KD (w_kd=1, temperature=1)" and method_title("cirkd") == "CIRKD"
    assert (hp("dist").w_dist, hp("dist").beta, hp("dist").gamma, hp("dist").w_aux) == (1.0, 1.0, 1.0, 0.4)
    a = hp("afdcd")  # train_ocmgd.py's defaults and ocmgd.py's; the pool is ours (8x8 maps, not 64x64)
    assert (a.w_kd, a.w_fd, a.w_ctr, a.mask_ratio, a.temperature, a.groups, a.patch, a.max_grad_norm) == (
        1.0, 4e-5, 0.001, 0.75, 0.07, 16, 4, 15.0)


SIZES = dict(widths=Widths(s_feat=5, t_feat=6, s_backbone=4, t_backbone=8), num_classes=3)


def test_method_losses_equal_their_definitions():
    torch.manual_seed(0)
    s = {"out": torch.randn(2, 3, 4, 4), "feat": torch.randn(2, 5, 4, 4)}
    t = {"out": torch.randn(2, 3, 8, 8), "feat": torch.randn(2, 6, 8, 8)}  # teacher at another stride
    label = torch.randint(0, 3, (2, 32, 32))
    terms = create_method_loss("kd", hp("kd"), **SIZES)(s, t, label)
    torch.testing.assert_close(terms["kd"], kd(s["out"], t["out"], 1.0))
    cwd_loss = create_method_loss("cwd", hp("cwd", w_features=2.0), **SIZES)
    terms = cwd_loss(s, t, label)
    torch.testing.assert_close(terms["cwd_logits"], 3.0 * cwd(s["out"], t["out"], 4.0))
    aligned = F.interpolate(cwd_loss.align(s["feat"]), (8, 8), mode="bilinear", align_corners=False)
    # CIRKD's normalisation: the KL summed over the teacher's 6 channels, divided by N * the student's 5
    log_s = F.log_softmax(aligned.reshape(2, 6, -1) / 4.0, -1)
    log_t = F.log_softmax(t["feat"].reshape(2, 6, -1) / 4.0, -1)
    by_hand = 4.0**2 * (log_t.exp() * (log_t - log_s)).sum() / (2 * 5)
    torch.testing.assert_close(terms["cwd_features"], 2.0 * by_hand)
    torch.testing.assert_close(terms["kd"], 1.0 * kd(s["out"], t["out"], 1.0))  # train_cwd.sh: lambda-kd 1
    assert "kd" not in create_method_loss("cwd", hp("cwd", w_kd=0.0), **SIZES)(s, t, label)
    assert "cwd_features" not in create_method_loss("cwd", hp("cwd", w_features=0.0), **SIZES)(s, t, label)
    cirkd = create_method_loss("cirkd", hp("cirkd", pixel_memory=50, region_memory=10), **SIZES)
    terms = cirkd(s, t, label)
    assert set(terms) == {"kd", "pair", "memory_pixel", "memory_region"}
    up = F.interpolate(s["feat"], (8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(terms["pair"], pixel_pair_relation(up, t["feat"], 0.1))
    assert all(torch.isfinite(v) and v >= 0 for v in terms.values())
    s["aux"], t["aux"] = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 8, 8)
    terms = create_method_loss("dist", hp("dist", beta=2.0), **SIZES)(s, t, label)
    torch.testing.assert_close(terms["dist"], dist(s["out"], t["out"], 2.0, 1.0))
    torch.testing.assert_close(terms["dist_aux"], 0.4 * dist(s["aux"], t["aux"], 2.0, 1.0))  # DIST's 0.4 on aux
    assert "dist_aux" not in create_method_loss("dist", hp("dist", w_aux=0.0), **SIZES)(s, t, label)
    s["backbone"], t["backbone"] = torch.randn(2, 4, 4, 4), torch.randn(2, 8, 8, 8)
    afdcd = create_method_loss("afdcd", hp("afdcd", mask_ratio=0.0, groups=2, patch=2), **SIZES)  # nothing masked
    terms = afdcd(s, t, label)
    generated = afdcd.projector(F.interpolate(afdcd.align(s["backbone"]), (8, 8), mode="bilinear",
                                              align_corners=False))
    torch.testing.assert_close(terms["fd"], 4e-5 * ((generated - t["backbone"]) ** 2).sum() / 2)
    pooled = F.max_pool2d(generated, 2), F.max_pool2d(t["backbone"], 2)
    torch.testing.assert_close(terms["ctr"], 0.001 * omni_contrast(*pooled, 2, 2, 0.07) / 2)
    torch.testing.assert_close(terms["kd"], kd(s["out"], t["out"], 1.0))


def test_omni_contrast_known_values():
    # one position, two groups of one channel: each vector against the other group's, at tau 1
    s, t = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1), torch.tensor([0.0, 2.0]).view(1, 2, 1, 1)
    # row 0: -|1-0| vs -|1-2| -> log 2; row 1: -|0-2| vs -|0-0| -> log(1 + e^2)
    expected = math.log(2) + math.log(1 + math.e**2)
    assert omni_contrast(s, t, groups=2, patch=1, temperature=1.0).item() == pytest.approx(expected)
    assert omni_contrast(s, t, groups=1, patch=1, temperature=1.0).item() == 0  # one group: no negatives


def test_omni_contrast_equals_its_definition_by_loops():
    torch.manual_seed(0)
    n, c, h, w, groups, patch, tau = 2, 6, 4, 4, 3, 2, 0.5
    s, t = torch.randn(n, c, h, w), torch.randn(n, c, h, w)
    d, total = c // groups, 0.0
    for i in range(n):
        for py in range(0, h, patch):
            for px in range(0, w, patch):
                cells = [(y, x) for y in range(py, py + patch) for x in range(px, px + patch)]
                vec = [(y, x, g) for (y, x) in cells for g in range(groups)]

                def v(m, y, x, g, i=i):
                    return m[i, g * d:(g + 1) * d, y, x]
                for (y, x, g) in vec:
                    pos = -(v(s, y, x, g) - v(t, y, x, g)).abs().sum() / tau
                    negs = [-(v(s, y, x, g) - v(t, yy, xx, gg)).abs().sum() / tau for (yy, xx, gg) in vec if gg != g]
                    total += (torch.logsumexp(torch.stack([pos, *negs]), 0) - pos).item()
    assert omni_contrast(s, t, groups, patch, tau).item() == pytest.approx(total / (h * w), rel=1e-5)
    with pytest.raises(ValueError, match="4x4 patches"):
        omni_contrast(s, t[:, :, :3], groups, 4, tau)



@pytest.mark.parametrize("method", sorted(METHODS))
def test_method_step_trains_student_and_method_weights(method):
    from pipeline.models import NetworkSpec, create_segmentor

    torch.manual_seed(0)
    teacher = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, head_channels=8, aux_channels=8))
    student = create_segmentor(NetworkSpec("stdc", "stdc1", 3, output_stride=32, head_channels=6,
                                           aux_channels=4)).train()
    small = {"cirkd": {"pixel_memory": 40, "region_memory": 8}, "afdcd": {"pool": 1}}.get(method, {})
    loss = create_method_loss(method, hp(method, **small), Widths.of(student, teacher), num_classes=3)
    step = MethodDistillStep(teacher, loss, 255, w_aux=0.4)
    image, label = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    terms = step(student, image, label)
    terms["loss"].backward()
    first = {"cwd": "cwd_logits", "dist": "dist", "fitnet": "hint"}.get(method, "kd")
    assert torch.isfinite(terms["loss"]) and terms[first] > 0
    if method == "dist":  # the eval-mode teacher's auxiliary logits too, as DIST's code has them
        assert terms["dist_aux"] > 0
    assert all(p.grad is None for p in teacher.parameters())  # frozen
    assert student.head.head.cls[1].weight.grad.abs().sum() > 0
    # CWD's and CIRKD's projections (the embeddings here are 6 and 8 wide), Af-DCD's align and projector
    own = list(loss.parameters())
    assert bool(own) == (method in ("cwd", "cirkd", "afdcd", "fitnet")), method
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in own)


def test_the_label_as_logits_by_hand():
    from pipeline.losses import label_logits

    label = torch.tensor([[[0, 0, 1, 1],
                           [0, 1, 1, 1],
                           [255, 255, 2, 2],
                           [255, 255, 2, 255]]])
    z = label_logits(label, (2, 2), num_classes=3, ignore_index=255, smoothing=0.3)
    q = torch.tensor([[0.75, 0.25, 0.0], [0.0, 1.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.0, 0.0, 1.0]])  # cells, row-major
    torch.testing.assert_close(z[0].permute(1, 2, 0).reshape(4, 3), (0.7 * q + 0.1).log())


def test_the_label_only_control_is_the_lad_students_loss_toward_the_label():
    from pipeline.losses import label_logits
    from pipeline.models import NetworkSpec, create_segmentor
    from pipeline.seg_losses import seg_terms
    from pipeline.steps.label_distill import LabelDistillStep

    torch.manual_seed(0)
    student = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, head_channels=8, aux_channels=8,
                                           channels=[8, 16, 32, 32]))
    image, label = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    terms = LabelDistillStep(3, 255, 0.1, w_kd=3.0, temperature=4.0, w_aux=0.4, distance="cwd")(student.eval(), image,
                                                                                                 label)
    out = student(image)
    ce, aux = seg_terms(out, label, 255)
    target = label_logits(label, out["out"].shape[2:], 3, 255, 0.1)
    torch.testing.assert_close(terms["kd"], cwd(out["out"], target, 4.0))
    torch.testing.assert_close(terms["loss"], ce + 0.4 * aux + 3.0 * cwd(out["out"], target, 4.0))


def test_fitnet_adapts_the_students_backbone_map_and_regresses_the_teachers():
    """The hint: w x the mean squared error of the 1x1-adapted student map (resized) against the teacher's."""
    from pipeline.methods import FitNetLoss

    loss = create_method_loss("fitnet", hp("fitnet").model_copy(update={"w_hint": 2.0}), **SIZES)
    assert isinstance(loss, FitNetLoss) and loss.adapter.weight.shape == (8, 4, 1, 1)
    torch.nn.init.zeros_(loss.adapter.weight)
    s = {"backbone": torch.randn(2, 4, 3, 3)}
    t = {"backbone": torch.full((2, 8, 6, 6), 0.5)}
    assert loss(s, t, None)["hint"].item() == pytest.approx(2.0 * 0.25)  # a zero adapter: 2 x mean(0.5^2)
