"""The paper's table on the embedded data: run its DVC experiments, then tabulate them (pipeline/paper.py).

    python -m stages.paper list                  # the experiments and the params each sets
    python -m stages.paper run [--part ablation] # dvc exp run each, one after another; results to reports/paper/runs
    python -m stages.paper report                # reports/paper.md, reports/ablations.md (+ .png), the README table

``make paper`` runs both, then ``dvc repro`` to bring the workspace back to params.yaml (every stage
then comes from the run cache) so that reports/report.md includes the ablations.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from pipeline import protocol
from pipeline.ablations import ABLATIONS
from pipeline.config import load_yaml
from pipeline.overlays import set_args
from pipeline.paper import ABLATION_SEEDS, SEEDS, Experiment, calibration_plan, collect, plan
from pipeline.results import PARAMS
from pipeline.tracking import parent_run_id, stage_run
from stages.common import EXPERIMENT


def git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def restore_committed() -> None:
    """params.yaml and dvc.lock as committed: the next `dvc repro` restores params.yaml's run from the run
    cache, and dvc.lock keeps no entry of the experiments' extra seeds."""
    git("checkout", "HEAD", "--", "params.yaml")
    if git("ls-files", "dvc.lock").strip():
        git("checkout", "HEAD", "--", "dvc.lock")
    else:
        Path("dvc.lock").unlink(missing_ok=True)


def run(exps: list[Experiment], resume: bool = False, commit: bool = False) -> None:
    """``dvc exp run`` each experiment in the workspace, from the committed params.yaml, and collect it
    (``resume``: skip one collected at the same digest, :func:`pipeline.protocol.done`; ``commit``: commit
    each collected folder as soon as it exists)."""
    if git("status", "--porcelain", "params.yaml", "dvc.yaml", "dvc.lock").strip():
        sys.exit("error: params.yaml, dvc.yaml or dvc.lock has uncommitted changes; the table runs from the "
                 "committed params and leaves the committed lock (commit or stash them first)")
    start = time.perf_counter()
    try:
        for i, exp in enumerate(exps, 1):
            git("checkout", "HEAD", "--", "params.yaml")  # each experiment sets its params on the committed ones
            extra = {"digest": protocol.digest(exp)} if resume else None
            if extra and protocol.done(exp, current=extra["digest"]):
                print(f"[{i}/{len(exps)}] {exp.folder}: collected already at this code and params", flush=True)
                continue
            subprocess.run(["dvc", "exp", "remove", exp.name], capture_output=True)  # a rerun replaces the old one
            cmd = ["dvc", "exp", "run", "-n", exp.name, *set_args(exp.sets)]
            print(f"[{i}/{len(exps)}] {exp.folder}: {exp.what} ({' '.join(cmd)})", flush=True)
            t0 = time.perf_counter()
            if (code := subprocess.run(cmd).returncode) != 0:
                sys.exit(f"error: `{' '.join(cmd)}` failed (exit {code}); the experiments before it are "
                         "collected, and a rerun restores every finished stage from the run cache")
            seconds = time.perf_counter() - t0
            dest = collect(exp, seconds, parent_run_id(EXPERIMENT, exp.name), extra=extra)
            if commit:
                git("add", str(dest))
                git("commit", "-qm", f"paper table: {exp.folder} collected ({seconds:.0f} s)", "--", str(dest))
            print(f"[{i}/{len(exps)}] {exp.folder}: {seconds:.0f} s (total {time.perf_counter() - start:.0f} s), "
                  f"results in {dest}", flush=True)
    finally:
        restore_committed()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list", "run", "report", "calibrate"])
    parser.add_argument("--part", nargs="+", choices=["main", "warm", "ablation", "calibration", "compare", "long"],
                        help="only these parts (calibration: only when named; docs/protocol.md)")
    parser.add_argument("--seeds", nargs="+", type=int,
                        help=f"seeds of the table (default {list(SEEDS)}; with --protocol: every part on these)")
    parser.add_argument("--ablation-seeds", nargs="+", type=int, default=list(ABLATION_SEEDS),
                        help="seeds of the ablations")
    parser.add_argument("--ablations", nargs="*", choices=list(ABLATIONS), help="these ablations only")
    parser.add_argument("--imagenet", metavar="PATH", help="add the ImageNet-initialised student (timm weights)")
    parser.add_argument("--protocol", action="store_true",
                        help="docs/protocol.md's table, seed by seed, skipping what is collected already")
    parser.add_argument("--commit", action="store_true", help="commit each collected experiment at once")
    args = parser.parse_args(argv)
    if args.imagenet and not Path(args.imagenet).is_file():
        parser.error(f"--imagenet: {args.imagenet}: file not found")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    exps = [e for e in plan(tuple(args.seeds or SEEDS), tuple(args.ablation_seeds), args.ablations, args.imagenet)
            if not args.part or e.part in args.part]
    params = load_yaml(Path(PARAMS).read_text())
    if args.part and "calibration" in args.part:
        exps += calibration_plan(params)
    if args.protocol:
        seeds = {part: tuple(args.seeds) for part in protocol.PART_ORDER} if args.seeds else None
        exps = protocol.shards([e for e in protocol.plan(params, ablations=args.ablations, seeds=seeds)
                                if not args.part or e.part in args.part])
    if args.command == "calibrate":
        from pipeline.calibration import write

        print(write())
    elif args.command == "list":
        for e in exps:
            print(f"{e.folder:28s} {' '.join(set_args(e.sets)):70s} {e.what}")
    elif args.command == "run":
        run(exps, resume=args.protocol, commit=args.commit)
    elif args.protocol:
        print(protocol.write_report())
        with stage_run("paper_table", EXPERIMENT, {"protocol": "docs/protocol.md"}, {"seeds": "all"}) as mlflow_run:
            for path in (protocol.PAPER_MD, protocol.COMPUTE_PNG):  # the table and its figure, in MLflow too
                mlflow_run.log_artifact(path, "paper")
    else:
        from pipeline.paper import write_report

        print(write_report())


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
