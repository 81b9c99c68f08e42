"""Time a command (or size a folder) and keep the figure in ``reports/timings.json``, with the CPU it ran on.

    python benchmarks/timings.py time make_test -- make test     # wall seconds of the command
    python benchmarks/timings.py size install .venv              # MB on disk of a folder

The README's first screen is generated from that file (``python -m pipeline.readme``), so every time it
quotes names its CPU and the command that gave it. A failed command records nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from pipeline.io import cpu_name

TIMINGS = Path("reports/timings.json")


def folder_mb(path: Path) -> float:
    """Bytes on disk of every file under ``path`` (links not followed), in MB."""
    return sum(f.lstat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def record(name: str, entry: dict, path: Path = TIMINGS) -> None:
    """Merge ``entry`` (with the CPU and the date) into ``path`` under ``name``."""
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[name] = {**entry, "cpu": cpu_name(), "date": time.strftime("%Y-%m-%d")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("time", help="run a command and record its wall seconds")
    t.add_argument("name")
    t.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command")
    s = sub.add_parser("size", help="record a folder's size")
    s.add_argument("name")
    s.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.what == "size":
        if not args.path.is_dir():
            sys.exit(f"error: {args.path}: no such folder")
        record(args.name, {"mb": round(folder_mb(args.path)), "path": str(args.path)})
        return
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("error: no command given (time NAME -- COMMAND ...)")
    start = time.perf_counter()
    code = subprocess.run(command).returncode
    seconds = time.perf_counter() - start
    if code:
        sys.exit(f"error: `{' '.join(command)}` failed (exit {code}); nothing recorded")
    record(args.name, {"seconds": round(seconds, 1), "command": " ".join(command)})
    print(f"{args.name}: {seconds:.1f} s on {cpu_name()}")


if __name__ == "__main__":
    main()
