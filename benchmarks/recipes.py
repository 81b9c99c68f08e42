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
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.cost import copy_repo, timed_command  # noqa: E402
from pipeline.io import cpu_name  # noqa: E402
from pipeline.layout_examples import write_example  # noqa: E402
from pipeline.overlays import recipe, set_args  # noqa: E402

NETS = ("student", "teacher", "conventional_teacher")
# What a CPU run shrinks: iterations, batch, images; the device and precision a CPU can run.
SHRINK = {"train.iters": 2, "distill.iters": 2, "compare.iters": 2, "train.batch_size": 2, "train.nproc": 1,
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


def run_recipe(name: str, work: Path, per_split: int = 2) -> dict[str, Any]:
    """Run recipe ``name`` end to end in ``work``; its stages' seconds and the report's first line."""
    repo = copy_repo(work / "repo")
    subprocess.run([sys.executable, "-m", "pipeline.overlays", "apply", name], cwd=repo, check=True,
                   capture_output=True)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    data = work / "data"
    write_example(params["data"]["name"], data, per_split=per_split)
    sets = {"data.root": str(data), **write_weights(params, work / "weights"), **SHRINK}
    total, stages = timed_command(["dvc", "exp", "run", *set_args(sets)], repo)
    report = (repo / "reports/report.md").read_text()
    return {"recipe": name, "seconds": round(total), "stages": {k: round(v) for k, v in stages.items()},
            "report_lines": len(report.splitlines()), "sets": sets}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"Measured by `python benchmarks/recipes.py` on {cpu_name()} ({datetime.date.today()}): each recipe "
             "applied as a user applies it, on a small dataset in its layout at the real image size "
             f"({rows[0]['per_split'] if rows else 2} images per split), timm-format weight files, "
             f"shrunk only in {', '.join(f'`{k}: {v}`' for k, v in SHRINK.items())}.", "",
             "| recipe | stages that ran (s) | total s | report lines |", "|---|---|---|---|"]
    for r in rows:
        stages = ", ".join(f"`{k}` {v}" for k, v in r["stages"].items())
        lines.append(f"| `{r['recipe']}` | {stages} | {r['seconds']} | {r['report_lines']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="*", help="recipe names (default: every recipes/*.yaml)")
    parser.add_argument("--per-split", type=int, default=2, help="images per split of the generated dataset")
    parser.add_argument("--out", type=Path, help="write the table (Markdown) here as well")
    args = parser.parse_args()
    names = args.recipes or sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
    for name in names:
        recipe(str(REPO / "recipes" / f"{name}.yaml"))  # a wrong name fails here, before any work
    rows = []
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"recipe-{name}-") as work:
            row = run_recipe(name, Path(work), args.per_split)
        rows.append({**row, "per_split": args.per_split})
        print(f"{name}: {row['seconds']} s, stages {row['stages']}", flush=True)
        if args.out:
            args.out.write_text(table(rows))
    print(table(rows))


if __name__ == "__main__":
    main()
