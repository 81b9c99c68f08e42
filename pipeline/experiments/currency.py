"""When a collected shard still stands for the code and params: its digest, and a shard's status.

A shard's numbers are a function of two things only: the params its computing stages read, resolved
(params.yaml with the experiment's sets applied, validated, defaults filled in: a comment, a key's order, a
``run`` knob or a new key whose default keeps the old behaviour changes nothing, :data:`ADDED`), and what the
code computes from them. The first is hashed; the second is :data:`pipeline.NUMERICS`, a version that a change
bumps when it changes any trained weight or score. A change that only moves or renames code keeps it, and proves so
with ``benchmarks/same_weights.py`` (the default run's weights, tensor for tensor, before and after, on one
CPU; the verdict in ``reports/same_weights.json``). docs/protocol.md, "When a shard is current", says the
rule for people.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pipeline import NUMERICS
from pipeline.config import config_from_dict, load_yaml, select
from pipeline.experiments import Experiment
from pipeline.overlays import Overlay

NOT_COMPUTING = ("report", "check")  # stages whose params decide no collected number (the tables recompute)
META, PARAMS = "meta.json", "params.yaml"  # what a collected shard holds besides its results
FIRST_NUMERICS = 1  # the version of a shard collected before meta.json recorded one
Status = Literal["current", "stale", "missing"]


def computing_keys(dvc_yaml: Path = Path("dvc.yaml")) -> list[str]:
    """Every params key a stage that trains, prepares or evaluates reads (dvc.yaml), and the seeds."""
    stages = load_yaml(dvc_yaml.read_text())["stages"]
    keys = {k for name, st in stages.items() if name not in NOT_COMPUTING for k in st.get("params", [])
            if isinstance(k, str)}
    return sorted(keys | {"seeds"})


def resolved(values: dict[str, Any], keys: list[str]) -> dict[str, Any]:
    """``keys`` of params ``values`` (params.yaml as a dict) after validation, defaults filled in."""
    tree = config_from_dict(values, networks=False).to_dict()
    return {k: select(tree, k) for k in keys}


def digest_of(values: dict[str, Any], numerics: int, keys: list[str]) -> str:
    """sha256 of the resolved computing params and the code's numerics version."""
    text = json.dumps({"params": resolved(values, keys), "numerics": numerics}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def digest(exp: Experiment, root: Path = Path("."), keys: list[str] | None = None) -> str:
    """The digest ``exp`` would be collected with now: the committed params.yaml with its sets, this code
    (``keys``: :func:`computing_keys`, when read already)."""
    params = load_yaml((root / PARAMS).read_text())
    keys = computing_keys(root / "dvc.yaml") if keys is None else keys
    return digest_of(Overlay(exp.name, exp.sets).merged(params), NUMERICS, keys)


# Keys added to params.yaml since shards were collected whose absence means what the shard ran: today's values
# stand in for them (key -> why nothing it decides touched a shard that lacks it).
ADDED = {"run": "decides no number (the GPU speed switches joined it)",
         "compare.hparams.fitnet": "a comparison method no shard without the key ran"}


def with_added_keys(values: dict[str, Any], params: Path = Path(PARAMS)) -> dict[str, Any]:
    """A collected shard's params with the keys of :data:`ADDED` it lacks filled in from ``params`` (the
    repository's params.yaml): a key added since it ran, which decided none of its numbers."""
    now = load_yaml(params.read_text()) if params.is_file() else {}
    out = copy.deepcopy(values)
    for key in ADDED:
        *parents, leaf = key.split(".")
        src, dst = now, out
        for part in parents:
            src, dst = src.get(part, {}), dst.setdefault(part, {})
        if leaf in src and isinstance(src[leaf], dict):
            dst[leaf] = {**src[leaf], **(dst.get(leaf) or {})}
        elif leaf in src:
            dst.setdefault(leaf, src[leaf])
    return out


def collected_digest(folder: Path, keys: list[str], params: Path = Path(PARAMS)) -> str | None:
    """The digest of a collected shard, from the params.yaml it ran with and the numerics it recorded
    (None: not collected, or its params no longer validate); ``params``: the repository's params.yaml."""
    meta, own = folder / META, folder / PARAMS
    if not (meta.is_file() and own.is_file()):
        return None
    numerics = json.loads(meta.read_text()).get("numerics", FIRST_NUMERICS)
    try:
        return digest_of(with_added_keys(load_yaml(own.read_text()), params), numerics, keys)
    except ValueError:  # a key renamed or removed since: the shard speaks for other params
        return None


def status(exp: Experiment, root: Path = Path("."), current: str | None = None) -> Status:
    """``current`` (collected, and its digest is :func:`digest`'s), ``stale`` (collected for other params or
    numerics) or ``missing``; ``current``: the digest, when computed already."""
    folder = root / exp.runs / exp.folder
    if not (folder / META).is_file():
        return "missing"
    keys = computing_keys(root / "dvc.yaml")
    want = current or digest(exp, root, keys)
    return "current" if collected_digest(folder, keys, root / PARAMS) == want else "stale"
