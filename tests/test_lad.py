"""Label Noising Module and the dual-path loss."""

import torch

from pipeline.lad import LabelChannel, encode_label, fixed_codes, teacher_input
from pipeline.losses import cwd
from pipeline.models import NetworkSpec, create_segmentor
from pipeline.steps.lad_teacher import DualPath, dual_path_loss


def reference_encode(label, num_classes, ignore_index, codes, noise, scale):
    """The official per-class, per-image loop (slow), given the codes and the noise."""
    b, h, w = label.shape
    out = torch.zeros(b, 1, h, w)
    for i in range(b):
        for k in range(num_classes + 1):
            mask = (label[i] == k) if k < num_classes else (label[i] == ignore_index)
            out[i, 0][mask] = codes[i, k]
    return scale * (out + noise)


def test_encode_matches_reference_loop():
    torch.manual_seed(0)
    label = torch.randint(0, 5, (3, 9, 7))
    label[:, 0, :] = 255
    gen = torch.Generator().manual_seed(1)
    fast = encode_label(label, 5, 255, "random", 0.03, 1.7, generator=gen)
    gen = torch.Generator().manual_seed(1)
    codes = torch.randn(3, 6, generator=gen)
    noise = 0.03 * torch.randn(3, 1, 9, 7, generator=gen)
    slow = reference_encode(label, 5, 255, codes, noise, 1.7)
    torch.testing.assert_close(fast, slow)


def test_fixed_codes_official_values():
    v = fixed_codes(22)  # VOC: 21 classes + ignore
    assert abs(v[0].item() + 1.1) < 1e-6 and abs(v[-1].item() - 1.0) < 1e-6 and abs(v[11].item()) < 1e-6
    torch.testing.assert_close(v[1:] - v[:-1], torch.full((21,), 0.1))


def test_fixed_codebook_is_the_same_for_every_image_and_ignore_has_its_slot():
    label = torch.tensor([[[0, 1], [2, 255]]]).repeat(4, 1, 1)
    m = encode_label(label, 3, 255, "fixed", noise_std=0.0, scale=1.0)
    expected = fixed_codes(4)[torch.tensor([[0, 1], [2, 3]])]
    for i in range(4):
        torch.testing.assert_close(m[i, 0], expected)


def test_random_codes_are_standard_normal_per_image_and_constant_within_a_class():
    torch.manual_seed(0)
    label = torch.arange(8).repeat_interleave(4).reshape(1, 4, 8).repeat(2000, 1, 1)  # 8 classes, 4 px each
    m = encode_label(label, 8, 255, "random", noise_std=0.0, scale=1.0)[:, 0]
    per_class = m.reshape(2000, 4, 8)[:, 0, :: 4]  # one pixel per class region
    assert abs(per_class.mean().item()) < 0.05 and abs(per_class.std().item() - 1.0) < 0.05
    # all pixels of a class share its code within an image; codes differ between images
    assert torch.allclose(m.reshape(2000, -1).reshape(2000, 8, 4).std(-1), torch.zeros(2000, 8))
    assert per_class[:, 0].std() > 0.9


def test_pixel_noise_std_and_scale():
    torch.manual_seed(0)
    label = torch.zeros(4, 64, 64, dtype=torch.long)
    m = encode_label(label, 3, 255, "fixed", noise_std=0.03, scale=100.0)
    noise = m - 100.0 * fixed_codes(4)[0]
    assert abs(noise.std().item() - 3.0) < 0.1 and abs(noise.mean().item()) < 0.1


def test_teacher_input_zero_channel():
    x = torch.randn(2, 3, 5, 5)
    y = torch.randint(0, 3, (2, 5, 5))
    t = teacher_input(x, y, 3, 255, None, 0.03, 1.0)
    assert t.shape == (2, 4, 5, 5) and t[:, 3].abs().sum() == 0 and torch.equal(t[:, :3], x)


def test_symmetric_stop_gradient():
    """Each CWD term sends gradient only to its first argument."""
    torch.manual_seed(0)
    z1 = torch.randn(2, 3, 4, 4, requires_grad=True)
    z2 = torch.randn(2, 3, 4, 4, requires_grad=True)
    (cwd(z1, z2.detach()) + cwd(z2, z1.detach())).backward()
    g1, g2 = z1.grad.clone(), z2.grad.clone()
    a, b = z1.detach().clone().requires_grad_(), z2.detach().clone()
    cwd(a, b).backward()
    torch.testing.assert_close(g1, a.grad)
    a, b = z1.detach().clone(), z2.detach().clone().requires_grad_()
    cwd(b, a).backward()
    torch.testing.assert_close(g2, b.grad)


def test_dual_path_loss_terms_and_single_path_ablation():
    torch.manual_seed(0)
    model = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, in_chans=4, head_channels=8, aux_channels=8)).train()
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    out = dual_path_loss(model, x, y, 3, 255, LabelChannel("random", 0.03, 1.0), DualPath(0.4, 5.0, 4.0))
    assert set(out) == {"loss", "ce", "aux", "cons"} and out["cons"] > 0
    torch.testing.assert_close(out["loss"].detach(), out["ce"] + 0.4 * out["aux"] + 5.0 * out["cons"])
    single = dual_path_loss(model, x, y, 3, 255, LabelChannel("random", 0.03, 1.0),
                            DualPath(0.4, 5.0, 4.0, dual_path=False))
    assert "cons" not in single
    single["loss"].backward()
    assert model.backbone.conv1[0].weight.grad[:, 3].abs().sum() > 0  # the label channel is used


def test_distill_step_leaves_teacher_frozen():
    from pipeline.steps.lad_distill import DistillStep

    torch.manual_seed(0)
    teacher = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, in_chans=4, head_channels=8, aux_channels=8))
    student = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, in_chans=3, head_channels=8, aux_channels=8)).train()
    step = DistillStep(teacher, 3, 255, LabelChannel("fixed", 0.02, 1.0), w_kd=3.0, temperature=4.0, w_aux=0.02,
                       distance="cwd")
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    out = step(student, x, y)
    out["loss"].backward()
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.backbone.parameters() if p.requires_grad)
    torch.testing.assert_close(out["loss"].detach(), out["ce"] + 0.02 * out["aux"] + 3.0 * out["kd"])


def test_bf16_autocast_keeps_the_label_channel_and_cwd_in_float32():
    torch.manual_seed(0)
    image, label = torch.randn(2, 3, 8, 8), torch.randint(0, 5, (2, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x = teacher_input(image, label, 5, 255, "fixed", 0.0, 3.0)
        s, t = torch.randn(2, 5, 4, 4).bfloat16(), torch.randn(2, 5, 4, 4).bfloat16()
        loss = cwd(s, t)
    assert x.dtype == torch.float32  # codes 0.1 apart survive (bf16 would round 3 * 0.1 steps)
    torch.testing.assert_close(x[:, 3], 3.0 * fixed_codes(6)[label])
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, cwd(s.float(), t.float()))
