"""A small dataset in each published layout, with real file names, label encodings and image sizes (each
layout's :class:`pipeline.data.layouts.Example`, written here).

What the layout tests and the recipe runs (``benchmarks/recipes.py``) read, and a way to see a layout
before downloading the real thing::

    python -m pipeline.layout_examples cityscapes /tmp/cityscapes --per-split 2

Images are noise; labels are vertical bands of raw values the real files use (before the lookup to
train ids: Cityscapes labelIds, ADE20K's 0 = "other", COCO-Stuff's 1-based .mat ids, ...).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.data.layouts import LAYOUTS, Writer

EXAMPLES = {name: entry.example for name, entry in LAYOUTS.items() if entry.example}  # every real layout


def write_example(name: str, root: Path, per_split: int = 2, size: tuple[int, int] | None = None,
                  labels: list[int] | None = None, seed: int = 0) -> dict[str, list[str]]:
    """Write ``per_split`` images per split of layout ``name`` under ``root``; returns the file stems."""
    ex = EXAMPLES[name]
    names = {s: [ex.stem(s, i) for i in range(per_split)] for s in ex.splits}
    ex.write(Path(root), Writer(size or ex.size, labels or list(ex.labels), seed), names)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(EXAMPLES))
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-split", type=int, default=2, help="images per split")
    args = parser.parse_args()
    names = write_example(args.name, args.root, args.per_split)
    print(f"{args.root}: {args.name} layout, " + ", ".join(f"{s} {len(n)}" for s, n in names.items()))


if __name__ == "__main__":
    main()
