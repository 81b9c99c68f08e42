"""The paper's recipes: complete params files that validate and stay in step with params.yaml."""

from __future__ import annotations

import pytest
import yaml

from pipeline.config import config_from_dict
from tests.conftest import REPO

RECIPES = sorted((REPO / "recipes").glob("*.yaml"))


def keys(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in tree.items():
        free = f"{prefix}{k}" == "compare.hparams"  # a free-form mapping: method -> overrides
        out |= keys(v, f"{prefix}{k}.") if isinstance(v, dict) and not free else {f"{prefix}{k}"}
    return out


def test_a_recipe_per_paper_setting():
    names = {p.stem for p in RECIPES}
    assert {"voc_deeplabv3_r18", "voc_pspnet_r18", "cityscapes_deeplabv3_r18", "ade20k_deeplabv3_r18",
            "coco_stuff164k_deeplabv3_r18", "coco_stuff10k_deeplabv3_r18", "camvid_deeplabv3_r18"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_validates_and_has_every_key(path):
    params = yaml.safe_load(path.read_text())
    assert keys(params) == keys(yaml.safe_load((REPO / "params.yaml").read_text()))  # nothing stale, nothing missing
    cfg = config_from_dict(params)
    assert cfg.data.name in path.stem and cfg.model.student.pretrained and cfg.train.optimizer == "sgd"
    assert cfg.compare.enabled and cfg.model.conventional_teacher.backbone == "resnet101d"  # the paper's table
    if cfg.data.name == "voc":  # CIRKD's VOC script
        assert cfg.compare.hparams["cirkd"] == {"w_memory_pixel": 0.01, "w_memory_region": 0.01}
    header = path.read_text().split("\n\n", 1)[0]
    assert "# Aims at:" in header and f"cp recipes/{path.name} params.yaml" in header
