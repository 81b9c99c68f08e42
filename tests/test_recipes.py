"""The paper's recipes: short overlays on params.yaml that validate, apply with every comment kept, and give
the same params as `dvc exp run -S` of the same overlay."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pipeline.config import ConfigError, config_from_dict
from pipeline.overlays import MARK, Overlay, apply_text, recipe, set_args
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
    assert "# Aims at:" in header and f"python -m pipeline.overlays apply {path.stem}" in header
    ov = recipe(path.stem)
    out = apply_text(PARAMS, ov)
    cfg = config_from_dict(yaml.safe_load(out))
    assert cfg.data.name in path.stem and cfg.model.student.pretrained and cfg.train.optimizer == "sgd"
    assert cfg.compare.enabled and cfg.model.conventional_teacher.backbone == "resnet101d"  # the paper's table
    if cfg.data.name == "voc":  # CIRKD's VOC script
        assert (cfg.compare.hparams.cirkd.w_memory_pixel, cfg.compare.hparams.cirkd.w_memory_region) == (0.01, 0.01)
    assert yaml.safe_load(out) == ov.merged(yaml.safe_load(PARAMS))  # what `dvc exp run -S` would set
    # every comment of params.yaml is kept
    comments = [ln.split("#", 1)[1] for ln in PARAMS.splitlines() if "#" in ln]
    assert all(c in out for c in comments)
    assert all(a == "-S" or "=" in a for a in set_args(ov.sets)) and " " not in "".join(set_args(ov.sets))


def test_bad_overlays_are_refused_before_writing():
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown key; did you mean 'lr'"):
        apply_text(PARAMS, Overlay("typo", {"train.lrr": 0.1}))
    with pytest.raises(ConfigError, match=r"train\.iters: expected a value >= 1"):
        apply_text(PARAMS, Overlay("bad", {"train.iters": 0}))
    once = apply_text(PARAMS, Overlay("first", {"train.iters": 10}))
    assert once.startswith(MARK + "first")
    with pytest.raises(ConfigError, match="overlay first is applied already"):
        apply_text(once, Overlay("second", {"train.iters": 20}))


def test_the_command_rewrites_params_yaml(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    cmd = [sys.executable, "-m", "pipeline.overlays", "apply", str(REPO / "recipes/voc_deeplabv3_r18.yaml"),
           "--params", str(params)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(params.read_text())["data"]["name"] == "voc"
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 1 and "applied already" in again.stderr and "Traceback" not in again.stderr
    sets = subprocess.run([sys.executable, "-m", "pipeline.overlays", "sets", "voc_deeplabv3_r18"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.split()
    assert sets[:2] == ["-S", "data.name=voc"]


@pytest.mark.parametrize("path", [REPO / "params.yaml", *RECIPES], ids=["default", *(p.stem for p in RECIPES)])
def test_the_label_code_reaches_the_range_of_normalised_pixels(path):
    """``lad.scale`` by rule (pipeline.lad.scale_for): the scaled fixed code book of the dataset's class count
    reaches about ±3, where ImageNet mean/std-normalised pixels lie, whatever the number of classes."""
    import torch

    from benchmarks.recipes import class_count
    from pipeline.lad import encode_label

    text = path.read_text() if path.name == "params.yaml" else apply_text(PARAMS, recipe(path.stem))
    cfg = config_from_dict(yaml.safe_load(text))
    k = class_count(cfg)
    label = torch.cat([torch.arange(k), torch.tensor([255])]).view(1, 1, -1)  # every class and ignore
    channel = encode_label(label, k, 255, "fixed", noise_std=0.0, scale=cfg.lad.scale)
    assert 2.9 <= channel.abs().max().item() <= 3.1, (k, cfg.lad.scale)
    assert torch.unique(channel).numel() == k + 1  # every class and the ignore slot keep their own code


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_each_recipe_states_its_models_cost_and_status(path):
    """The header's model count and GPU-hour estimate are what benchmarks/recipes.py --costs computes."""
    import re

    from benchmarks.recipes import gpu_hours

    header = path.read_text().split("\n\n", 1)[0]
    stated = re.search(r"# Costs: trains (\d+) models, about (\d+) GPU-hours", header)
    hours = gpu_hours(path.stem)
    assert stated and (int(stated[1]), int(stated[2])) == (len(hours), round(sum(hours.values())))
    assert "not yet run on real data or a GPU" in header


ALL_STAGES = {"check", "prepare", "train_baseline@0", "train_teacher@0", "distill@0", "train_baseline_ft@0",
              "train_conventional_teacher@0", "distill_compare@0-cirkd", "train_baseline_matched@0", "distill_label@0",
              "evaluate@0", "report"}


@pytest.mark.e2e
def test_a_recipe_runs_every_stage_end_to_end(tmp_path):
    """CamVid's recipe (the cheapest: 360x480 images, crop 360) applied as a user applies it, on a dataset
    generated in SegNet's layout, with timm-format weight files for ResNet-18-D and -101-D: every kind of
    stage of the DAG runs at the recipe's crop and heads, a comparison row (CIRKD: its feature projection
    and memory queues at the recipe's crop) and the controls included, and the report is written
    (benchmarks/recipes.py, shrunk in iterations, batch and images; docs/recipe_runs.md: every row, the
    others)."""
    from benchmarks.recipes import run_recipe

    one_step = {"train.iters": 1, "distill.iters": 1, "compare.iters": 1, "compare.teacher_iters": 1,
                "train.val_interval": 0, "compare.methods": ["cirkd"]}
    # one image per split: every stage still runs, and evaluation, the grid and the ONNX check cost half
    row = run_recipe("camvid_deeplabv3_r18", tmp_path, per_split=1, shrink={**one_step, "evaluate.latency_reps": 0})
    assert set(row["stages"]) == ALL_STAGES
