"""Stage ``prepare``: generate (synthetic) or validate (real) the dataset and write its index.

Writes ``data/prepared/index.json``, ``data/prepared/skipped.tsv`` (the samples left out with
``data.on_bad: skip``, one per line with its file and problem) and ``data/prepared/stats.json``
(per-split image counts, skipped counts, ignore fraction and class pixel frequencies; the report
shows them, and ``dvc exp show`` keeps its metric columns for results). When the dataset's files are
generated into ``data/prepared/`` (the synthetic set), the index holds their digest: the later stages
depend on ``index.json`` alone, which DVC checks at a no-op ``dvc repro`` in one read instead of walking
every image once per stage.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from pipeline.config import Config
from pipeline.data import prepare_index
from pipeline.io import atomic_write, write_json
from pipeline.tracking import stage_run
from pipeline.tracking.datasets import describe_all
from stages.common import EXPERIMENT, INDEX, run_stage

SECTIONS = ["data", "synthetic"]
DATA_STATS = INDEX.parent / "stats.json"


def prepare(cfg: Config, index_path: Path = INDEX) -> dict:
    """Make the dataset ready and write ``index_path``; returns the index."""
    splits = {"train": cfg.data.train_split, "val": cfg.data.val_split}
    index = prepare_index(cfg.data.name, cfg.data.root, splits, cfg.synthetic, cfg.data.on_bad,
                          cfg.data.coco_classes)
    root = Path(index["root"]).resolve()
    if root.is_relative_to(index_path.parent.resolve()):
        index["files_md5"] = files_digest(root)
    skipped = pd.DataFrame(index["skipped"], columns=["split", "image", "file", "problem"])
    atomic_write(index_path.parent / "skipped.tsv", lambda tmp: skipped.to_csv(tmp, sep="\t", index=False))
    write_json(index_path, index)
    write_json(DATA_STATS, {split: {**{k: v for k, v in st.items() if k != "class_frequency"},
                                   "class_frequency": dict(zip(index["classes"], st["class_frequency"]))}
                            for split, st in index["stats"].items()})
    if len(skipped):
        print(f"warning: {len(skipped)} problem(s) found; those samples are left out "
              f"(data.on_bad: skip), listed in {index_path.parent / 'skipped.tsv'}")
    return index


def files_digest(folder: Path) -> str:
    """The md5 of every file's path (relative to ``folder``) and bytes, in path order."""
    digest = hashlib.md5()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def main(cfg: Config) -> None:
    with stage_run("prepare", EXPERIMENT, cfg.sections(*SECTIONS)) as run:
        index = prepare(cfg)
        run.log_inputs(describe_all(index, cfg.data))
        for split, st in index["stats"].items():
            run.log_metrics({f"{split}_images": st["images"], f"{split}_ignore_fraction": st["ignore_fraction"],
                             **{f"{split}_freq_{c}": f for c, f in zip(index["classes"], st["class_frequency"])}})
        run.log_artifact(INDEX)
        run.log_artifact(DATA_STATS)
        run.log_artifact(INDEX.parent / "skipped.tsv")
        print(f"prepared {cfg.data.name}: " + ", ".join(f"{r} {s['images']} images" for r, s in index["stats"].items()))


if __name__ == "__main__":
    run_stage(main, light=True)  # builds no network: the backbones are checked by the stages that do
