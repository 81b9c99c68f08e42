"""Queue the LAD ablations as DVC experiments and tabulate them (the plan: pipeline/ablations.py).

    python -m stages.ablations list                 # the plan: name -> params it changes
    python -m stages.ablations queue [--only NAME]  # dvc exp run --queue, one per ablation
    dvc exp run --run-all                           # run the queue (only the stages a change touches rerun)
    python -m stages.ablations report               # dvc exp show --json -> reports/ablations.md (+ .png)
    dvc repro report                                # the report's "Ablations" section includes it

``make ablations`` does all four.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pipeline.ablations import ABLATIONS, IMAGENET, queue_commands, write_ablations, yaml_value

__all__ = ["main", "queue_commands"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the ablations")
    q = sub.add_parser("queue", help="queue the ablations as DVC experiments")
    q.add_argument("--only", nargs="+", choices=list(ABLATIONS), help="queue only these")
    q.add_argument("--imagenet", metavar="PATH", help="also queue init-imagenet with this timm weights file")
    sub.add_parser("report", help="tabulate finished experiments into reports/ablations.md")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, (what, sets) in ABLATIONS.items():
            print(f"{name:16s} {what}: " + " ".join(f"{k}={yaml_value(v)}" for k, v in sets.items()))
        print(f"{IMAGENET[0]:16s} {IMAGENET[1]}: with --imagenet PATH")
    elif args.command == "queue":
        if args.imagenet and not Path(args.imagenet).is_file():
            sys.exit(f"error: --imagenet: {args.imagenet}: file not found")
        dirty = subprocess.run(["git", "status", "--porcelain", "params.yaml"], capture_output=True, text=True).stdout
        if dirty.strip():
            print("warning: params.yaml has uncommitted changes; queued experiments start from the workspace "
                  "as it is now", file=sys.stderr)
        for cmd in queue_commands(args.only or list(ABLATIONS), args.imagenet):
            print(" ".join(cmd))
            subprocess.run(cmd, check=True)
    else:
        out = subprocess.run(["dvc", "exp", "show", "--json"], capture_output=True, text=True)
        if out.returncode:
            sys.exit(f"error: dvc exp show failed: {out.stderr.strip()}")
        print(write_ablations(json.loads(out.stdout)))


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:
        sys.exit(f"error: {err}")
