"""Overlays: the one way params.yaml is varied. A recipe, an experiment of the paper's table and an
ablation are each a set of dotted keys and values (``train.iters: 40000``) over the committed params.

An overlay becomes either ``dvc exp run -S key=value`` arguments (:func:`set_args`: the paper's table
and the ablations run this way), or an edit of params.yaml in place (:func:`apply_file`: ``make recipe``),
done as DVC's own ``-S`` does it, through ruamel.yaml's round trip, so every comment stays. Either way the
merged params are validated first, and nothing is written when they are bad::

    python -m pipeline.overlays list
    python -m pipeline.overlays apply voc_deeplabv3_r18        # or: make recipe R=voc_deeplabv3_r18
    dvc exp run -n voc $(python -m pipeline.overlays sets voc_deeplabv3_r18)   # the same, as an experiment
    git checkout params.yaml                                   # back to the default
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import ConfigError, config_from_dict, flatten, load_yaml
from pipeline.io import atomic_write

RECIPES = Path("recipes")
MARK = "# overlay: "  # the first line of a params.yaml an overlay was applied to


@dataclass(frozen=True)
class Overlay:
    """Dotted params keys and their values, with a name and what it is for."""

    name: str
    sets: dict[str, Any] = field(default_factory=dict)
    what: str = ""

    def merged(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` with every key set; a key params.yaml does not have is an error naming it."""
        out = copy.deepcopy(params)
        for key, value in self.sets.items():
            *parents, leaf = key.split(".")
            node = out
            for part in parents:
                if not isinstance(node.get(part), dict):
                    break
                node = node[part]
            else:
                node[leaf] = value
                continue
            node[part] = value  # not a section: validation names the key
        return out

    def check(self, params: dict[str, Any]) -> dict[str, Any]:
        """The merged params, validated (unknown keys with did-you-mean, types, bounds)."""
        merged = self.merged(params)
        config_from_dict(merged)
        return merged


def recipe_path(name: str) -> Path:
    """``recipes/<name>.yaml``; the error lists the recipes there."""
    path = Path(name) if name.endswith(".yaml") else RECIPES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml"))) or "none"
        raise ConfigError(f"{path}: recipe not found (recipes: {known})")
    return path


def recipe(name: str) -> Overlay:
    """A recipe file (nested YAML, only what differs from params.yaml) as an :class:`Overlay`."""
    path = recipe_path(name)
    tree = load_yaml(path.read_text()) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of params.yaml keys")
    aims = next((ln for ln in path.read_text().splitlines() if ln.startswith("# Aims at:")), "")
    return Overlay(path.stem, flatten(tree), aims.removeprefix("# Aims at: "))


def yaml_value(v: Any) -> str:
    """``v`` as ``dvc exp run -S key=value`` reads it (YAML): strings as they are, the rest as JSON
    without spaces (so ``$(python -m pipeline.overlays sets NAME)`` splits into whole arguments), with a
    mantissa point in exponents (``4.0e-05``: YAML 1.1, as PyYAML reads params.yaml, takes ``4e-05`` for a
    string)."""
    if isinstance(v, str):
        return v
    return re.sub(r"(?<![\w.])(\d+)(e[-+]?\d)", r"\1.0\2", json.dumps(v, separators=(",", ":")))


def set_args(sets: dict[str, Any]) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run``."""
    return [a for k, v in sets.items() for a in ("-S", f"{k}={yaml_value(v)}")]


def _round_trip() -> Any:
    from ruamel.yaml import YAML  # DVC's own YAML library: it edits params.yaml for -S the same way

    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 110  # flow mappings wrap as params.yaml writes them (comments are kept as they are)
    return rt


def apply_text(text: str, overlay: Overlay) -> str:
    """``text`` (a params.yaml) with ``overlay`` set in place, every comment kept; validated first."""
    if text.startswith(MARK):
        raise ConfigError(f"params.yaml: overlay {text.splitlines()[0][len(MARK):].split()[0]} is applied "
                          "already; restore the default first (git checkout params.yaml)")
    overlay.check(load_yaml(text))
    from ruamel.yaml.comments import CommentedSeq

    rt = _round_trip()
    doc = rt.load(text)
    for key, value in overlay.sets.items():
        *parents, leaf = key.split(".")
        node = doc
        for part in parents:
            node = node[part]
        if isinstance(value, list):  # one line, as params.yaml writes lists
            value = CommentedSeq(value)
            value.fa.set_flow_style()
        node[leaf] = value
    out = io.StringIO()
    rt.dump(doc, out)
    header = f"{MARK}{overlay.name} ({len(overlay.sets)} keys; `git diff params.yaml` shows them, " \
             "`git checkout params.yaml` restores the default)\n"
    result = header + out.getvalue()
    if yaml.safe_load(result) != overlay.merged(yaml.safe_load(text)):  # exactly the overlay's values
        raise AssertionError(f"{overlay.name}: editing params.yaml did not give the overlay's values")
    return result


def apply_file(overlay: Overlay, params: Path = Path("params.yaml")) -> None:
    """Apply ``overlay`` to ``params`` in place (atomically)."""
    text = apply_text(params.read_text(), overlay)
    atomic_write(params, lambda tmp: tmp.write_text(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Apply a paper recipe (recipes/*.yaml) to params.yaml.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the recipes and what each aims at")
    a = sub.add_parser("apply", help="set a recipe's values in params.yaml (comments kept)")
    a.add_argument("name", help="a recipe: recipes/<name>.yaml")
    a.add_argument("--params", type=Path, default=Path("params.yaml"))
    s = sub.add_parser("sets", help="a recipe as `dvc exp run` -S arguments")
    s.add_argument("name", help="a recipe: recipes/<name>.yaml")
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for path in sorted(RECIPES.glob("*.yaml")):
                print(f"{path.stem:32s} {recipe(path.stem).what}")
        elif args.command == "sets":
            ov = recipe(args.name)
            ov.check(load_yaml(Path("params.yaml").read_text()))
            print(" ".join(set_args(ov.sets)))
        else:
            ov = recipe(args.name)
            apply_file(ov, args.params)
            print(f"{args.params}: {ov.name} applied; `git diff {args.params}` shows what changed")
    except ConfigError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
