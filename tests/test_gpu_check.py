"""benchmarks/gpu_check.py's logic on a CPU with tiny sizes: arguments, the recipe's networks, a run."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402

pytestmark = pytest.mark.e2e  # processes, servers or the real stages: make test-fast leaves it out


def test_arguments_are_checked():
    for bad in (["--iters", "2"], ["--crop", "8"], ["--amp", "fp8"]):
        with pytest.raises(SystemExit):
            gpu_check.parse(bad + ["--device", "cpu"])


def test_the_recipe_shapes(tmp_path):
    args = gpu_check.parse(["--device", "cpu"])
    cfg = gpu_check.check_config(args, tmp_path)
    assert (cfg.train.crop_size, cfg.train.batch_size, cfg.train.optimizer) == (512, 8, "sgd")  # VOC recipe
    s, t = cfg.model.student, cfg.model.teacher
    assert (s.arch, s.backbone, s.head_channels, s.channels) == ("deeplabv3", "resnet18d", 256, [])
    assert t == s and not s.pretrained  # the label-assisted teacher: the same network (+ a label channel)


def test_a_tiny_run_times_every_role_and_resumes(capsys):
    rows = gpu_check.main(["--device", "cpu", "--crop", "32", "--batch", "2", "--iters", "4", "--amp", "none",
                           "--workers", "0"])
    assert [r["role"] for r in rows] == list(gpu_check.ROLES_CHECKED)
    assert all(r["sec_per_iter"] > 0 and r["images_per_s"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "kill and resume: resumed at 2 (expected 2), ended at 4" in out and ": ok" in out
