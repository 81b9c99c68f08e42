"""The data a stage run reads, as MLflow dataset inputs: the runs table's "Dataset" column, and the dataset that
a LoggedModel's metrics were measured on.

One dataset per split of the prepared index (``data/prepared/index.json``): named ``<data.name>-<split>``, its
digest over the split's sample list and the prepared files' digest (so regenerated or edited data gets a new
digest), its source the folder it was read from (``data.root``), the class names as its schema, the image
counts as its profile.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CONTEXT = {"train": "training", "val": "evaluation"}  # the split's role in a run, as MLflow's UI shows it


def describe(index: dict[str, Any], role: str, data: Any = None) -> dict[str, Any]:
    """The MLflow dataset of split ``role`` (``train``/``val``) of a prepared ``index``, named by its split on disk
    (``data.train_split``: ``train_aug``) when the ``data`` params are given."""
    split = getattr(data, f"{role}_split", None)
    samples = index["samples"][role]
    digest = hashlib.sha256(json.dumps([index.get("files_md5", ""), samples]).encode()).hexdigest()[:10]
    stats = index["stats"][role]
    return {"name": f"{index['name']}-{split or role}", "digest": digest, "source_type": "local",
            "source": json.dumps({"uri": str(Path(index["root"]).resolve())}),
            "schema": json.dumps({"classes": index["classes"], "ignore_index": index["ignore_index"]}),
            "profile": json.dumps({"images": stats["images"], "skipped": stats.get("skipped", 0),
                                   "split": split or role}),
            "context": CONTEXT.get(role, role)}


def describe_all(index: dict[str, Any], data: Any = None, roles: tuple[str, ...] = ("train", "val")
                 ) -> list[dict[str, Any]]:
    """:func:`describe` of each of ``roles`` in ``index``."""
    return [describe(index, r, data) for r in roles if r in index["samples"]]
