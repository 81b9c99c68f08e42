"""benchmarks/gpu_check.py's logic on a CPU with tiny sizes: arguments, the recipe's networks, a run."""

from __future__ import annotations

import json
import sys

import pytest

from pipeline import readme
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


def test_a_tiny_run_times_every_role_resumes_and_writes_its_figures(capsys, tmp_path):
    out_file = tmp_path / "gpu_check.json"
    rows = gpu_check.main(["--device", "cpu", "--crop", "32", "--batch", "2", "--iters", "4", "--amp", "none",
                           "--workers", "0", "--peak-tflops", "1", "--out", str(out_file)])
    assert [r["role"] for r in rows] == list(gpu_check.ROLES_CHECKED)
    assert all(r["sec_per_iter"] > 0 and r["images_per_s"] > 0 for r in rows)
    # MFU: the roles table's training FLOPs per image x images/s over the peak (1 TFLOP/s given here)
    for r in rows:
        assert r["mfu"] == pytest.approx(r["tflops_per_gpu"]) and r["tflops_per_gpu"] > 0
    assert rows[1]["tflops_per_gpu"] / rows[1]["images_per_s"] > rows[0]["tflops_per_gpu"] / rows[0]["images_per_s"]
    out = capsys.readouterr().out
    assert "kill and resume: resumed at 2 (expected 2), ended at 4" in out and ": ok" in out
    saved = json.loads(out_file.read_text())
    assert saved["rows"] == rows and saved["resume"]["ok"] and saved["bf16_peak_tflops"] == 1
    assert readme.gpu_check(saved).startswith("Measured by `bash benchmarks/gpu_check.sh`")


def test_the_readme_says_when_no_gpu_figure_exists():
    assert "has not run on a GPU" in readme.gpu_check({})
