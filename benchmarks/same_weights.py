"""Does a change leave the numbers alone? The default run's trained weights, tensor for tensor, at two commits.

    python benchmarks/same_weights.py fingerprint REV OUT.json   # `dvc repro` of REV's default run in a fresh
                                                                 # worktree (no cache, no run cache), then a
                                                                 # sha256 of every tensor of models/seed0/
    python benchmarks/same_weights.py compare BEFORE.json AFTER.json [--record reports/same_weights.json]

Both fingerprints must come from one CPU model (the same seed gives other weights on another: the comparison
refuses two). A refactor that keeps every tensor of every role of seed 0 equal changes no number of the
paper's table, so its shards stay current (docs/protocol.md, "When a shard is current"); ``--record`` keeps
the verdict, both commits and the CPU in the committed record.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pipeline.io import cpu_name

REPO = Path(__file__).resolve().parents[1]
RECORD = Path("reports/same_weights.json")


def tensors(path: Path) -> dict[str, str]:
    """``name -> sha256(dtype, shape, bytes)`` of every tensor of a checkpoint's ``model`` state dict."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    out = {}
    for name, t in state.items():
        t = t.detach().contiguous()
        h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        out[name] = h.hexdigest()
    return out


def fingerprint(rev: str, out: Path) -> dict:
    """Run the default pipeline of ``rev`` from nothing in a temporary worktree; every checkpoint's tensors."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="same-weights-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), commit], cwd=REPO, check=True,
                       capture_output=True)
        try:
            env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db", "DVC_NO_ANALYTICS": "1",
                   "MLFLOW_DISABLE_TELEMETRY": "true", "LAD_SYSTEM_METRICS": "0"}
            t0 = time.perf_counter()
            subprocess.run(["dvc", "repro", "--no-run-cache"], cwd=tree, env=env, check=True)
            seconds = time.perf_counter() - t0
            models = sorted((tree / "models/seed0").rglob("*.pt"))
            result = {"commit": commit, "cpu": cpu_name(), "seconds": round(seconds, 1),
                      "models": {str(p.relative_to(tree / "models/seed0")): tensors(p) for p in models}}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def compare(before: dict, after: dict) -> dict:
    """Per checkpoint of either: its tensors, and how many differ or are missing from one side."""
    if before["cpu"] != after["cpu"]:
        raise ValueError(f"the fingerprints come from two CPUs ({before['cpu']}; {after['cpu']}): the same seed "
                         "gives other weights on another, so only one CPU's pair says anything")
    models = {}
    for name in sorted(before["models"].keys() | after["models"].keys()):
        a, b = before["models"].get(name, {}), after["models"].get(name, {})
        differ = sorted(k for k in a.keys() & b.keys() if a[k] != b[k])
        models[name] = {"tensors": len(a.keys() | b.keys()), "differ": len(differ),
                        "only_one_side": len(a.keys() ^ b.keys()), "first_differing": differ[:3]}
    same = all(m["differ"] == 0 and m["only_one_side"] == 0 for m in models.values()) and bool(models)
    return {"before": before["commit"], "after": after["commit"], "cpu": before["cpu"], "same": same,
            "date": time.strftime("%Y-%m-%d"), "models": models}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fingerprint", help="train REV's default run from nothing; hash every tensor")
    f.add_argument("rev")
    f.add_argument("out", type=Path)
    c = sub.add_parser("compare", help="two fingerprints, tensor for tensor")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    c.add_argument("--record", type=Path, help=f"keep the verdict there (the committed one: {RECORD})")
    args = parser.parse_args(argv)
    if args.what == "fingerprint":
        result = fingerprint(args.rev, args.out)
        print(f"{args.out}: {len(result['models'])} checkpoints of {result['commit'][:10]} ({result['seconds']} s)")
        return
    for p in (args.before, args.after):
        if not p.is_file():
            sys.exit(f"error: {p}: no such fingerprint (python benchmarks/same_weights.py fingerprint REV {p})")
    verdict = compare(*(json.loads(p.read_text()) for p in (args.before, args.after)))
    for name, m in verdict["models"].items():
        print(f"{name:32s} {m['tensors']:4d} tensors, {m['differ']} differ, {m['only_one_side']} on one side only")
    print(f"{verdict['before'][:10]} -> {verdict['after'][:10]} on {verdict['cpu']}: "
          + ("the same weights" if verdict["same"] else "the weights differ"))
    if args.record:
        args.record.write_text(json.dumps(verdict, indent=2, sort_keys=True) + "\n")
    sys.exit(0 if verdict["same"] else 1)


if __name__ == "__main__":
    main()
