"""Stage ``prepare``: generate (synthetic) or validate (real) the dataset and write its index."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pipeline.config import Config
from pipeline.data import prepare_index
from pipeline.io import write_json
from pipeline.tracking import stage_run
from stages.common import EXPERIMENT, INDEX, run_stage

SECTIONS = ["data", "synthetic"]


def prepare(cfg: Config, index_path: Path = INDEX) -> dict:
    """Make the dataset ready and write ``index_path``; returns the index."""
    splits = {"train": cfg.data.train_split, "val": cfg.data.val_split}
    index = prepare_index(cfg.data.name, cfg.data.root, splits, dataclasses.asdict(cfg.synthetic))
    write_json(index_path, index)
    return index


def main(cfg: Config) -> None:
    with stage_run("prepare", EXPERIMENT, cfg.sections(*SECTIONS)) as run:
        index = prepare(cfg)
        for role, st in index["stats"].items():
            run.log_metrics({f"{role}_images": st["images"], f"{role}_ignore_fraction": st["ignore_fraction"],
                             **{f"{role}_freq_{c}": f for c, f in zip(index["classes"], st["class_frequency"])}})
        run.log_artifact(INDEX)
        print(f"prepared {cfg.data.name}: " + ", ".join(f"{r} {s['images']} images" for r, s in index["stats"].items()))


if __name__ == "__main__":
    run_stage(main)
