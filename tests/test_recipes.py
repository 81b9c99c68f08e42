"""The paper's recipes: short overlays on params.yaml that apply, validate and keep every comment."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pipeline.config import ConfigError, config_from_dict
from pipeline.recipes import MARK, apply
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
PARAMS = (REPO / "params.yaml").read_text()


def test_a_recipe_per_paper_setting():
    names = {p.stem for p in RECIPES}
    assert {"voc_deeplabv3_r18", "voc_pspnet_r18", "cityscapes_deeplabv3_r18", "ade20k_deeplabv3_r18",
            "coco_stuff164k_deeplabv3_r18", "coco_stuff10k_deeplabv3_r18", "camvid_deeplabv3_r18"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_applies_and_validates(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 30  # only what differs from params.yaml
    header = text.split("\n\n", 1)[0]
    assert "# Aims at:" in header and f"python -m pipeline.recipes apply {path.stem}" in header
    out = apply(PARAMS, yaml.safe_load(text), path.stem)
    cfg = config_from_dict(yaml.safe_load(out))
    assert cfg.data.name in path.stem and cfg.model.student.pretrained and cfg.train.optimizer == "sgd"
    assert cfg.compare.enabled and cfg.model.conventional_teacher.backbone == "resnet101d"  # the paper's table
    if cfg.data.name == "voc":  # CIRKD's VOC script
        assert cfg.compare.hparams["cirkd"] == {"w_memory_pixel": 0.01, "w_memory_region": 0.01}
    # every line of params.yaml is kept: unchanged, or with the recipe's value and the default it replaced
    changed = [ln for ln in out.splitlines()[1:] if f"# {path.stem} (default: " in ln]
    assert len(out.splitlines()) == len(PARAMS.splitlines()) + 1 and changed
    kept = set(out.splitlines()[1:])
    assert all(ln in kept for ln in PARAMS.splitlines() if ln.split(":")[0] not in {c.split(":")[0] for c in changed})


def test_bad_overlays_are_refused_before_writing():
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key; did you mean 'lr'"):
        apply(PARAMS, {"train": {"lrr": 0.1}}, "typo")
    with pytest.raises(ConfigError, match=r"train\.iters: expected a value >= 1"):
        apply(PARAMS, {"train": {"iters": 0}}, "bad")
    once = apply(PARAMS, {"train": {"iters": 10}}, "first")
    assert once.startswith(MARK + "first")
    with pytest.raises(ConfigError, match="recipe first is applied already"):
        apply(once, {"train": {"iters": 20}}, "second")


def test_the_command_rewrites_params_yaml(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    cmd = [sys.executable, "-m", "pipeline.recipes", "apply", str(REPO / "recipes/voc_deeplabv3_r18.yaml"),
           "--params", str(params)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(params.read_text())["data"]["name"] == "voc"
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 1 and "applied already" in again.stderr and "Traceback" not in again.stderr
