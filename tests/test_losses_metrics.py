"""Losses and metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from pipeline.losses import cwd
from pipeline.metrics import confusion, scores
from pipeline.seg_losses import seg_ce


def test_cwd_hand_computed():
    # one image, one channel, two positions: p_t = softmax([2 ln 3, 0] / 2) = (0.75, 0.25), p_s = (0.5, 0.5)
    t = torch.tensor([2 * math.log(3), 0.0]).reshape(1, 1, 1, 2)
    s = torch.zeros(1, 1, 1, 2)
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert abs(cwd(s, t, temperature=2.0).item() - 4 * kl) < 1e-6


def test_cwd_averages_over_images_and_channels_and_is_zero_for_equal_maps():
    torch.manual_seed(0)
    t = torch.randn(3, 4, 5, 5)
    assert cwd(t, t).item() < 1e-6
    s = torch.randn(3, 4, 5, 5)
    per = [cwd(s[i:i + 1, c:c + 1], t[i:i + 1, c:c + 1]).item() for i in range(3) for c in range(4)]
    assert abs(cwd(s, t).item() - np.mean(per)) < 1e-5


def test_seg_ce_ignores_pixels_and_upsamples():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 0] = 10.0  # confident class 0 everywhere
    label = torch.tensor([[[0, 0], [255, 255]]])
    assert seg_ce(logits, label).item() < 1e-3
    label = torch.tensor([[[1, 1], [255, 255]]])
    assert abs(seg_ce(logits, label).item() - 10.0) < 1e-3
    big = torch.zeros(1, 4, 4, dtype=torch.long)
    assert seg_ce(logits, big).item() < 1e-3  # logits upsampled to the 4x4 label


def test_confusion_and_scores_known_answer():
    label = torch.tensor([0, 0, 1, 1, 2, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2])
    conf = confusion(pred, label, 4)
    expected = np.zeros((4, 4), int)
    expected[0, 0], expected[0, 1], expected[1, 1], expected[2, 0] = 1, 1, 2, 1
    np.testing.assert_array_equal(conf.numpy(), expected)
    s = scores(conf.numpy(), ["a", "b", "c", "d"])
    # IoU: a = 1/(2+2-1) = 1/3, b = 2/(2+3-2) = 2/3, c = 0/(1+0-0) = 0, d absent -> skipped (nanmean)
    assert s["per_class_iou"]["d"] is None
    assert abs(s["miou"] - 100 * (1 / 3 + 2 / 3 + 0) / 3) < 1e-9
    assert abs(s["pixel_acc"] - 100 * 3 / 5) < 1e-9


def test_sliding_window_equals_whole_image_for_a_position_independent_model():
    import torch.nn.functional as F
    from torch import nn

    from pipeline.evaluate import Inference, predict_logits

    class PerPixel(nn.Module):  # a 1x1 convolution: windows cannot change its answer
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return {"out": self.conv(x)}

    torch.manual_seed(0)
    model, x = PerPixel(), torch.randn(2, 3, 37, 50)
    whole = predict_logits(model, x)
    slide = predict_logits(model, x, Inference(mode="slide", crop=16, stride=11))
    torch.testing.assert_close(slide, whole)
    torch.testing.assert_close(whole, F.softmax(model(x)["out"], 1))
    small = predict_logits(model, x[:, :, :10, :12], Inference(mode="slide", crop=16, stride=11))  # padded window
    torch.testing.assert_close(small, F.softmax(model(x[:, :, :10, :12])["out"], 1))


def test_kd_hand_computed_and_its_gradient():
    from pipeline.losses import kd

    s = torch.tensor([[[[1.0]], [[0.0]]]])  # one pixel, two classes
    t = torch.tensor([[[[0.0]], [[1.0]]]])
    ps, pt = torch.softmax(torch.tensor([0.5, 0.0]), 0), torch.softmax(torch.tensor([0.0, 0.5]), 0)
    expected = 4 * (pt * (pt.log() - ps.log())).sum()  # T = 2
    assert abs(kd(s, t, 2.0).item() - expected.item()) < 1e-6
    x = torch.randn(2, 3, 4, 5)
    assert kd(x, x).item() < 1e-7
    # the gradient is T (p_s - p_t) / (number of pixels), p at temperature T
    z, b = torch.randn(1, 3, 2, 2, requires_grad=True), torch.randn(1, 3, 2, 2)
    kd(z, b, 3.0).backward()
    torch.testing.assert_close(z.grad, 3.0 * ((z / 3).softmax(1) - (b / 3).softmax(1)).detach() / 4)


def test_pixel_pair_relation_matches_a_direct_loop_and_its_gradient():
    from pipeline.losses import pixel_pair_relation

    torch.manual_seed(0)
    s, t = torch.randn(3, 4, 2, 3), torch.randn(3, 4, 2, 3)

    def direct(fs, ft, tau):  # the definition, pair by pair and row by row
        fs, ft = torch.nn.functional.normalize(fs, dim=1), torch.nn.functional.normalize(ft, dim=1)
        total = 0.0
        for i in range(3):
            for j in range(3):
                a_s, a_t = fs[i].flatten(1).T @ fs[j].flatten(1), ft[i].flatten(1).T @ ft[j].flatten(1)
                rows = [(torch.softmax(a_t[r] / tau, 0) * (torch.log_softmax(a_t[r] / tau, 0)
                         - torch.log_softmax(a_s[r] / tau, 0))).sum() for r in range(6)]
                total += sum(rows) / 6
        return total / 9

    assert abs(pixel_pair_relation(s, t, 0.5).item() - direct(s, t, 0.5).item()) < 1e-5
    assert pixel_pair_relation(t, t).item() < 1e-6
    assert abs(pixel_pair_relation(3 * s, t).item() - pixel_pair_relation(s, t).item()) < 1e-5  # normalised
    assert pixel_pair_relation(torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5), pool=True).item() > 0
    a = s.clone().requires_grad_()
    pixel_pair_relation(a, t, 0.5).backward()
    b = s.clone().requires_grad_()
    direct(b, t, 0.5).backward()
    torch.testing.assert_close(a.grad, b.grad)  # the same gradient as the definition's


def test_dist_hand_computed():
    """Two pixels, three classes, logits = log p so the softmax gives p back. Student: pixel 1 (.2, .3, .5),
    pixel 2 (.5, .3, .2); teacher: the same two rows swapped. Inter (per pixel, over classes): each pixel's
    correlation is -39/42 (centred rows (-2/15, -1/30, 1/6) and (1/6, -1/30, -2/15)), so inter = 1 + 39/42.
    Intra (per class, over pixels): classes 0 and 2 correlate -1, class 1 is constant (0), so intra = 1 + 2/3."""
    from pipeline.losses import dist

    p_s = torch.tensor([[0.2, 0.3, 0.5], [0.5, 0.3, 0.2]])
    p_t = p_s.flip(0)
    to_map = lambda p: p.log().t().reshape(1, 3, 1, 2)  # noqa: E731 - (pixels, classes) -> (1, C, 1, 2)
    inter, intra = 1 + 39 / 42, 1 + 2 / 3
    assert dist(to_map(p_s), to_map(p_t)).item() == pytest.approx(inter + intra, abs=1e-5)
    assert dist(to_map(p_s), to_map(p_t), beta=2.0, gamma=0.5).item() == pytest.approx(2 * inter + intra / 2, abs=1e-5)
    same = torch.randn(2, 3, 4, 4)
    assert dist(same, same).item() == pytest.approx(0.0, abs=1e-5)
    s = torch.randn(2, 3, 4, 4, requires_grad=True)
    dist(s, same).backward()
    assert s.grad.abs().sum() > 0


def test_the_hint_loss_is_the_mean_squared_error_after_resizing():
    from pipeline.losses import hint

    s, t = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 4, 4)
    assert hint(s, t).item() == pytest.approx(1.0)  # resized zeros against ones: every element off by 1
    t2 = torch.arange(8.0).reshape(1, 2, 2, 2)
    assert hint(t2, t2 + 3).item() == pytest.approx(9.0)
