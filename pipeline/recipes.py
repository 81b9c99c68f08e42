"""Recipes: the paper's settings as overlays on the default ``params.yaml``.

A recipe (``recipes/<name>.yaml``) holds only what differs from the default, under a header of the
numbers it aims at. Applying it rewrites ``params.yaml`` line by line: each key the recipe sets gets
the recipe's value and a comment naming the default it replaced; every other line, comments included,
stays as it was. The result is validated before anything is written::

    python -m pipeline.recipes list
    python -m pipeline.recipes apply voc_deeplabv3_r18      # or: make recipe R=voc_deeplabv3_r18
    git checkout params.yaml                                # back to the default
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import ConfigError, config_from_dict, flatten, select
from pipeline.io import atomic_write

RECIPES = Path("recipes")
MARK = "# recipe: "  # the first line of a params.yaml a recipe was applied to
LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w]*):(?P<value>[^#]*?)(?P<gap> *)(?P<comment>#.*)?$")


def recipe_path(name: str) -> Path:
    """``recipes/<name>.yaml``; the error lists the recipes there."""
    path = Path(name) if name.endswith(".yaml") else RECIPES / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.yaml"))) or "none"
        raise ConfigError(f"{path}: recipe not found (recipes: {known})")
    return path


def merge(base: dict[str, Any], overlay: dict[str, Any], leaves: set[str], prefix: str = "") -> dict[str, Any]:
    """``base`` with ``overlay``'s values; a dotted path in ``leaves`` is replaced whole (a free-form mapping)."""
    out = dict(base)
    for key, value in overlay.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict) and path not in leaves:
            out[key] = merge(base[key], value, leaves, f"{path}.")
        else:
            out[key] = value
    return out


def leaf_lines(text: str) -> tuple[dict[str, int], set[str]]:
    """Dotted key -> line number of every one-line value of a params file, and the free-form mappings
    (a leaf whose value is a mapping, such as ``compare.hparams: {}``)."""
    lines, stack, mappings = {}, [], set()
    for i, line in enumerate(text.splitlines()):
        m = LINE.match(line)
        if not m:
            continue
        depth = len(m["indent"]) // 2
        stack = stack[:depth] + [m["key"]]
        if m["value"].strip():
            path = ".".join(stack)
            lines[path] = i
            if m["value"].strip().startswith("{"):
                mappings.add(path)
    return lines, mappings


def dump(value: Any) -> str:
    """One-line YAML of a value (flow style)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip().removesuffix("\n...")


def apply(params_text: str, overlay: dict[str, Any], name: str) -> str:
    """``params_text`` with ``overlay`` applied; raises :class:`ConfigError` naming a bad key or value."""
    if params_text.startswith(MARK):
        raise ConfigError(f"params.yaml: recipe {params_text.splitlines()[0][len(MARK):].split()[0]} is applied "
                          "already; restore the default first (git checkout params.yaml)")
    lines, mappings = leaf_lines(params_text)
    base = yaml.safe_load(params_text)
    merged = merge(base, overlay, mappings)
    config_from_dict(merged)  # unknown keys (with did-you-mean), types and bounds, before writing anything
    orig = params_text.splitlines()
    out = list(orig)
    for path, value in flatten(overlay).items():
        leaf = next((p for p in mappings if path == p or path.startswith(p + ".")), path)
        if leaf not in lines:
            raise ConfigError(f"{name}: {leaf}: not a one-line key of params.yaml")
        m = LINE.match(orig[lines[leaf]])
        new_value = dump(value if leaf == path else select(merged, leaf))
        was = m["value"].strip()  # the default as params.yaml writes it
        out[lines[leaf]] = f"{m['indent']}{m['key']}: {new_value}".ljust(29) + f"  # {name} (default: {was})"
    header = f"{MARK}{name} (python -m pipeline.recipes apply {name}; `git checkout params.yaml` restores the default)"
    text = "\n".join([header] + out) + "\n"
    if yaml.safe_load(text) != merged:  # the line edits wrote exactly the merged values
        raise AssertionError(f"{name}: rewriting params.yaml did not give the recipe's values")
    return text


def apply_file(name: str, params: Path = Path("params.yaml")) -> Path:
    """Apply recipe ``name`` to ``params`` in place (atomically); returns the recipe's path."""
    path = recipe_path(name)
    overlay = yaml.safe_load(path.read_text()) or {}
    if not isinstance(overlay, dict):
        raise ConfigError(f"{path}: expected a mapping of params.yaml keys")
    text = apply(params.read_text(), overlay, path.stem)
    atomic_write(params, lambda tmp: tmp.write_text(text))
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Apply a paper recipe (recipes/*.yaml) to params.yaml.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the recipes and what each aims at")
    a = sub.add_parser("apply", help="rewrite params.yaml with a recipe's values")
    a.add_argument("name", help="a recipe: recipes/<name>.yaml")
    a.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            for path in sorted(RECIPES.glob("*.yaml")):
                aims = next((ln for ln in path.read_text().splitlines() if ln.startswith("# Aims at:")), "")
                print(f"{path.stem:32s} {aims.removeprefix('# Aims at: ')}")
        else:
            path = apply_file(args.name, args.params)
            print(f"{args.params}: {path.stem} applied; `git diff {args.params}` shows what changed")
    except ConfigError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
