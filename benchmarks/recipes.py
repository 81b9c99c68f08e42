"""Every recipe, end to end, on a CPU: the whole DAG at the recipe's own crop, heads and evaluation.

For each recipe (``recipes/*.yaml``), in a fresh copy of the project:

1. a small dataset in the recipe's published layout, at the real dataset's image size
   (``pipeline/layout_examples.py``);
2. timm state dicts of every backbone the recipe loads ImageNet weights for, written to local files
   (random weights in timm's format: what ``pretrained_path`` reads on an offline cluster);
3. the recipe applied as a user applies it (``python -m pipeline.overlays apply NAME``), then
   ``dvc exp run`` with the dataset's folder, the weight files, and only these shrunk: iterations,
   batch, image count; on the CPU: ``train.device: cpu``, float32, one process.

It prints and writes (``--out``) one row per recipe: the stages that ran, each stage's seconds, the
total, the CPU. ``tests/test_recipes.py`` runs one recipe the same way::

    python benchmarks/recipes.py --out docs/recipe_runs.md          # all seven, ~1 h on 2 cores
    python benchmarks/recipes.py camvid_deeplabv3_r18                # one
    python benchmarks/recipes.py --costs                             # GPU-hour estimates, no training

``--costs`` estimates each recipe's GPU hours from one measured anchor, the official LAD log of the
VOC DeepLabV3-R18 distillation (skyshoumeng/Label_Assisted_Distillation, logs/deeplabv3_resnet18_voc_log.txt:
about 1.1 s per iteration at batch 16, 512 px, on 2 GPUs of an unnamed type), scaled by each model's
training FLOPs per image (3 forward passes for forward and backward, twice for the LAD teacher's two
paths, plus the frozen teacher's forward when distilling; counted by torch on the meta device) and
crop. An estimate: real speed also depends on memory traffic, the GPU and the data loader.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cost import timed_command  # noqa: E402
from pipeline.config import load_yaml  # noqa: E402
from pipeline.io import copy_repo, cpu_name  # noqa: E402
from pipeline.layout_examples import write_example  # noqa: E402
from pipeline.overlays import recipe, set_args  # noqa: E402

NETS = ("student", "teacher", "conventional_teacher")
# What a CPU run shrinks: iterations, batch, images; the device and precision a CPU can run.
SHRINK = {"train.iters": 2, "distill.iters": 2, "compare.iters": 2, "compare.teacher_iters": 2,
          "controls.matched_iters": 2, "train.batch_size": 2, "train.nproc": 1,
          "train.device": "cpu", "train.amp": "none", "train.val_interval": 2, "evaluate.num_examples": 2,
          "evaluate.latency_reps": 2, "run.num_workers": 0, "run.log_interval": 1}


def write_weights(params: dict[str, Any], folder: Path) -> dict[str, str]:
    """A timm state dict per backbone the params load ImageNet weights for; the ``pretrained_path`` sets."""
    import timm
    import torch

    sets = {}
    for net in NETS:
        section = params["model"][net]
        if not section.get("pretrained"):
            continue
        path = folder / f"{section['backbone']}.pth"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(timm.create_model(section["backbone"]).state_dict(), path)
        sets[f"model.{net}.pretrained_path"] = str(path)
    return sets


ANCHOR_S_PER_ITER = 1.1  # the official log: LAD distillation of DeepLabV3-R18 from its R18 teacher, 2 GPUs
ANCHOR_GPUS = 2


_FORWARD_GFLOP: dict[tuple[str, int, int, int], float] = {}  # the roles of a recipe share a few networks


def forward_gflop(cfg: Any, network: str, k: int, in_chans: int) -> float:
    """GFLOP of one forward pass of ``model.<network>`` on one crop of ``cfg``, by the evaluate stage's count
    (:func:`pipeline.models.count_flops`); built on the meta device, so nothing is computed."""
    import torch

    from pipeline.models import count_flops, segmentor_from_config

    net = getattr(cfg.model, network).model_copy(update={"pretrained": False, "pretrained_path": ""})
    key = (net.model_dump_json(), k, in_chans, cfg.train.crop_size)
    if key not in _FORWARD_GFLOP:
        with torch.device("meta"):
            model = segmentor_from_config(net, k, in_chans)
        _FORWARD_GFLOP[key] = count_flops(model, cfg.train.crop_size) / 1e9
    return _FORWARD_GFLOP[key]


def training_gflop(cfg: Any, k: int) -> dict[str, tuple[int, float]]:
    """Per role that trains under ``cfg``: (iterations, GFLOP per image per iteration), by the roles table's
    accounting (:meth:`pipeline.roles.Role.step_gflop`, as the paper's compute-matched rows)."""
    from pipeline.roles import ROLES

    def forward(role: str) -> float:
        return forward_gflop(cfg, ROLES[role].network, k, ROLES[role].in_chans)

    return {name: (role.schedule(cfg)[0], role.step_gflop(cfg, forward)) for name, role in ROLES.items()
            if role.skip(cfg) is None}


def class_count(cfg: Any) -> int:
    """The classes of a recipe's dataset; for the folder layout's template, those of its generated example."""
    from pipeline.data.layouts import FOLDER_EXAMPLE_CLASSES, make_layout

    if cfg.data.name == "folder":
        return len(FOLDER_EXAMPLE_CLASSES.splitlines())
    return len(make_layout(cfg.data.name, cfg.data.coco_classes).classes)


@functools.cache
def anchor_gflop() -> float:
    """Training GFLOP per image of the anchor: the VOC recipe's LAD student (21 classes)."""
    return training_gflop(recipe_config("voc_deeplabv3_r18"), 21)["student"][1]


def gpu_hours(name: str) -> dict[str, float]:
    """Estimated GPU hours of each model recipe ``name`` trains (see ``--costs``)."""
    return config_gpu_hours(recipe_config(name))


def config_gpu_hours(cfg: Any) -> dict[str, float]:
    """Estimated GPU hours of each model validated params ``cfg`` train on one seed (what ``commands.paper run
    --recipe`` prints before submitting a table)."""
    anchor = anchor_gflop()
    batch = cfg.train.batch_size * cfg.train.nproc / 16  # the anchor's batch: 16
    return {role: iters * ANCHOR_S_PER_ITER * gflop / anchor * batch * ANCHOR_GPUS / 3600
            for role, (iters, gflop) in training_gflop(cfg, class_count(cfg)).items()}


def recipe_config(name: str) -> Any:
    """The validated params of recipe ``name`` applied to the committed params.yaml."""
    from pipeline.config import config_from_dict
    from pipeline.overlays import apply_text

    return config_from_dict(load_yaml(apply_text((REPO / "params.yaml").read_text(), recipe(name))))


def costs_table(names: list[str]) -> str:
    lines = ["| recipe | models it trains | estimated GPU hours |", "|---|---|---|"]
    for name in names:
        hours = gpu_hours(name)
        lines.append(f"| `{name}` | {len(hours)}: {', '.join(hours)} | {sum(hours.values()):.0f} |")
    return "\n".join(lines) + "\n"


def run_recipe(name: str, work: Path, per_split: int = 2, shrink: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run recipe ``name`` end to end in ``work`` (shrunk by :data:`SHRINK`, then ``shrink``); its stages'
    seconds."""
    repo = copy_repo(REPO, work / "repo")
    subprocess.run([sys.executable, "-m", "pipeline.overlays", "apply", name], cwd=repo, check=True,
                   capture_output=True)
    params = load_yaml((repo / "params.yaml").read_text())
    data = work / "data"
    write_example(params["data"]["name"], data, per_split=per_split)
    sets = {"data.root": str(data), **write_weights(params, work / "weights"), **SHRINK, **(shrink or {})}
    total, stages = timed_command(["dvc", "exp", "run", *set_args(sets)], repo)
    report = (repo / "reports/report.md").read_text()
    if "| Teacher | Student | Row | mIoU" not in report:
        raise SystemExit(f"{name}: the report has no results table:\n{report[:2000]}")
    return {"recipe": name, "seconds": round(total), "stages": {k: round(v) for k, v in stages.items()},
            "sets": {k: v for k, v in sets.items() if k in SHRINK or k in (shrink or {})}}


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["# Every recipe, end to end on a CPU", "",
             "Written by `python benchmarks/recipes.py --out docs/recipe_runs.md` (rows kept in "
             "`docs/recipe_runs.json`). Each recipe applied as a user applies it (`python -m pipeline.overlays "
             "apply`), on a dataset generated in its published layout at the real image size "
             "(`pipeline/layout_examples.py`), with timm-format weight files, shrunk only in "
             f"{', '.join(f'`{k}: {v}`' for k, v in SHRINK.items())}. "
             "Seconds are wall time per DVC stage (process start to the next stage), under "
             "`pipeline.stage_server`.", "",
             "| recipe | images per split | stages that ran (s) | total s | CPU, date |", "|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["recipe"]):
        stages = ", ".join(f"`{k}` {v}" for k, v in r["stages"].items())
        lines.append(f"| `{r['recipe']}` | {r['per_split']} | {stages} | {r['seconds']} | {r['cpu']}, {r['date']} |")
    return "\n".join(lines) + "\n"


def save(rows: list[dict[str, Any]], out: Path) -> None:
    """Merge ``rows`` into ``out``'s JSON twin by recipe and rewrite the Markdown table from all of them."""
    data = out.with_suffix(".json")
    kept = {r["recipe"]: r for r in (json.loads(data.read_text()) if data.exists() else [])}
    kept.update({r["recipe"]: r for r in rows})
    data.write_text(json.dumps(sorted(kept.values(), key=lambda r: r["recipe"]), indent=1) + "\n")
    out.write_text(table(list(kept.values())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", help="recipe names (default: every recipes/*.yaml)")
    parser.add_argument("--per-split", type=int, default=2, help="images per split of the generated dataset")
    parser.add_argument("--out", type=Path, help="write the table (Markdown) here as well")
    parser.add_argument("--costs", action="store_true", help="print GPU-hour estimates instead of running")
    args = parser.parse_args()
    names = args.recipes or sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
    for name in names:
        recipe(str(REPO / "recipes" / f"{name}.yaml"))  # a wrong name fails here, before any work
    if args.costs:
        print(costs_table(names))
        return
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"recipe-{name}-") as work:
            row = run_recipe(name, Path(work), args.per_split)
        rows.append({**row, "per_split": args.per_split, "cpu": cpu_name(), "date": str(datetime.date.today())})
        print(f"{name}: {row['seconds']} s, stages {row['stages']}", flush=True)
        if args.out:
            save(rows, args.out)
    print(table(rows))


if __name__ == "__main__":
    main()
