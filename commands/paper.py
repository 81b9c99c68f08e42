"""docs/protocol.md's table: run its DVC experiments seed by seed, then tabulate them.

    python -m commands.paper list                # every shard (experiment, seed): current, stale or missing,
                                                 # and the params it sets
    python -m commands.paper run [--part ablation] [--seeds 0 2] [--experiments paper] [--commit]
                                                 # dvc exp run each shard not collected and current (its
                                                 # results to reports/paper/protocol/<name>@seeds<s>)
    python -m commands.paper run --launcher local --jobs 2       # 2 shards at once (a GPU or cores // 2 each)
    python -m commands.paper run --launcher slurm --gpus 1 --cpus 8 --time 12:00:00 --recipe voc_deeplabv3_r18
                                                 # one Slurm job array (docs/scale.md); GPU hours asked first
    python -m commands.paper status              # every shard: done, running, queued, failed (why), missing
    python -m commands.paper report              # reports/paper.md, its figure, the README's table, in MLflow
    python -m commands.paper run --part calibration && python -m commands.paper calibrate   # the probes

``make paper`` runs and commits every shard, reports, then ``dvc repro`` brings the workspace back to
params.yaml (every stage from the run cache). The plan is :mod:`pipeline.experiments.protocol`'s; when a
shard is current, :mod:`pipeline.experiments.currency`'s; the launchers are :mod:`pipeline.launch`'s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline import documents
from pipeline.config import ConfigError, load_yaml
from pipeline.experiments import Experiment, calibration, currency, protocol
from pipeline.experiments.ablations import ABLATIONS
from pipeline.launch import KINDS, Launcher, driver, shard
from pipeline.overlays import recipe, set_args
from pipeline.paths import EXPERIMENT
from pipeline.results import collect
from pipeline.tracking import invocation, parent_run_id, stage_run

PARAMS = Path(currency.PARAMS)


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


def run(exps: list[Experiment], commit: bool = False) -> None:
    """``dvc exp run`` each experiment in the workspace, from the committed params.yaml, and collect it; one
    collected and current is skipped (:func:`pipeline.experiments.currency.status`); ``commit``: commit each
    collected folder as soon as it exists."""
    if git("status", "--porcelain", "params.yaml", "dvc.yaml", "dvc.lock").strip():
        sys.exit("error: params.yaml, dvc.yaml or dvc.lock has uncommitted changes; the table runs from the "
                 "committed params and leaves the committed lock (commit or stash them first)")
    start = time.perf_counter()
    try:
        for i, exp in enumerate(exps, 1):
            git("checkout", "HEAD", "--", "params.yaml")  # each experiment sets its params on the committed ones
            if currency.status(exp) == "current":
                print(f"[{i}/{len(exps)}] {exp.folder}: collected and current", flush=True)
                continue
            subprocess.run(["dvc", "exp", "remove", exp.name], capture_output=True)  # a rerun replaces the old one
            cmd = ["dvc", "exp", "run", "-n", exp.name, *set_args(exp.sets)]
            print(f"[{i}/{len(exps)}] {exp.folder}: {exp.what} ({' '.join(cmd)})", flush=True)
            t0 = time.perf_counter()
            shard = f"{exp.folder}-{uuid.uuid4().hex[:8]}"  # its own MLflow parent run, named after the experiment
            if (code := subprocess.run(cmd, env={**os.environ, invocation.ENV: shard}).returncode) != 0:
                sys.exit(f"error: `{' '.join(cmd)}` failed (exit {code}); the experiments before it are "
                         "collected, and a rerun restores every finished stage from the run cache")
            seconds = time.perf_counter() - t0
            dest = collect(exp, seconds, parent_run_id(EXPERIMENT, shard))
            if commit:
                git("add", str(dest))
                git("commit", "-qm", f"paper table: {exp.folder} collected ({seconds:.0f} s)", "--", str(dest))
            print(f"[{i}/{len(exps)}] {exp.folder}: {seconds:.0f} s (total {time.perf_counter() - start:.0f} s), "
                  f"results in {dest}", flush=True)
    finally:
        restore_committed()


def listing(exps: list[Experiment]) -> None:
    """Each shard: collected and current, stale (collected for other params or numerics) or missing; the params
    it sets; then the count of each."""
    found = [(e, currency.status(e)) for e in exps]
    for e, state in found:
        print(f"{e.folder:30s} {state:8s} {' '.join(set_args(e.sets)):70s} {e.what}")
    counts = {s: sum(state == s for _, state in found) for s in ("current", "stale", "missing")}
    print(f"{len(found)} shards: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


LAUNCHER_FLAGS = {  # flag -> (type, help); each one overrides the `launcher` section of --config
    "jobs": (int, "local: shards at once (default: one per GPU, else 1); slurm: tasks at once (%%N; default: no cap)"),
    "gpus": (int, "GPUs per shard (slurm: --gres=gpu:N; local: per job)"),
    "cpus": (int, "torch threads per shard (slurm: also --cpus-per-task; local default: cores // jobs)"),
    "mem": (str, "slurm: --mem per task, e.g. 32G"),
    "time": (str, "slurm: --time per task, e.g. 12:00:00 (near it, a task requeues itself)"),
    "partition": (str, "slurm: --partition"),
    "workdir": (str, "worktrees, logs and state of launched shards (default .paper; on shared storage)"),
    "mlflow_host": (str, "where the driver's own MLflow server listens (default 127.0.0.1; a name the nodes reach)"),
}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["list", "run", "status", "report", "calibrate"])
    parser.add_argument("--part", "--parts", nargs="+", choices=[*protocol.PART_ORDER, "calibration"],
                        help="only these parts (calibration: only when named; docs/protocol.md)")
    parser.add_argument("--seeds", nargs="+", type=int, help="every part on these seeds (a share of the table)")
    parser.add_argument("--experiments", nargs="+", metavar="NAME",
                        help="only these experiments of the plan (python -m commands.paper list names them)")
    parser.add_argument("--ablations", nargs="*", choices=list(ABLATIONS), help="these ablations only")
    parser.add_argument("--imagenet", metavar="PATH", help="add the ImageNet-initialised student (timm weights)")
    parser.add_argument("--recipe", metavar="NAME", help="the table of a recipe (recipes/NAME.yaml over params.yaml), "
                        "collected in reports/paper/NAME/; its GPU hours are estimated and asked for first")
    parser.add_argument("--yes", action="store_true", help="submit without asking (the GPU-hour estimate)")
    parser.add_argument("--commit", action="store_true", help="commit each collected experiment at once")
    launch = parser.add_argument_group("launchers (docs/scale.md)")
    launch.add_argument("--launcher", choices=list(KINDS), help="serial (default: dvc exp run, one after the "
                        "other), local (--jobs at once) or slurm (a job array)")
    for name, (kind, text) in LAUNCHER_FLAGS.items():
        launch.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    launch.add_argument("--sbatch-arg", dest="sbatch_args", action="append", metavar="FLAG",
                        help="slurm: one more sbatch flag (repeatable), e.g. --sbatch-arg=--account=lab")
    launch.add_argument("--no-wait", dest="wait", action="store_false", default=None,
                        help="slurm: submit and return (needs a tracking server named in MLFLOW_TRACKING_URI); "
                             "a later run or status collects")
    launch.add_argument("--config", type=Path, help="a YAML file whose `launcher:` section sets these flags")
    args = parser.parse_args(argv)
    if args.imagenet and not Path(args.imagenet).is_file():
        parser.error(f"--imagenet: {args.imagenet}: file not found")
    try:
        args.launch = configured({k: getattr(args, k) for k in ("launcher", *LAUNCHER_FLAGS, "sbatch_args", "wait")
                                  if getattr(args, k) is not None}, args.config)
    except ConfigError as err:
        parser.error(str(err))
    return args


def configured(flags: dict[str, Any], config: Path | None) -> Launcher:
    return driver.configured({("kind" if k == "launcher" else k): v for k, v in flags.items()}, config)


def with_recipe(exps: list[Experiment], name: str) -> list[Experiment]:
    """Each experiment over recipe ``name`` (its keys first, the experiment's after), collected apart."""
    sets = recipe(name).sets
    return [replace(e, sets={**sets, **e.sets}, runs=Path("reports/paper") / name / e.runs.name) for e in exps]


def confirm(exps: list[Experiment], params: dict[str, Any], yes: bool) -> None:
    """Print the shards' estimated GPU hours (benchmarks/recipes.py) and ask before submitting them."""
    from benchmarks.recipes import config_gpu_hours
    from pipeline.config import config_from_dict
    from pipeline.overlays import Overlay

    per_exp: dict[str, list[float]] = {}
    for e in exps:
        hours = config_gpu_hours(config_from_dict(Overlay(e.name, e.sets).merged(params)))
        per_exp.setdefault(e.name, []).append(sum(hours.values()))
    for name, shards in per_exp.items():
        print(f"  {name:28s} {len(shards)} shard(s) x {shards[0]:6.1f} GPU h = {sum(shards):7.1f} GPU h")
    total = sum(map(sum, per_exp.values()))
    print(f"estimated: at most {total:.1f} GPU hours for {len(exps)} shards (benchmarks/recipes.py --costs, scaled "
          "from the official VOC log; a stage two shards share, e.g. a seed's teacher, trains once)", flush=True)
    if yes:
        return
    if not sys.stdin.isatty():
        sys.exit("error: the estimate above is asked for; add --yes to submit without asking")
    if input("submit? [y/N] ").strip().lower() not in ("y", "yes"):
        sys.exit("nothing submitted")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["shard"]:  # what a launched job runs: python -m commands.paper shard MANIFEST [INDEX]
        index = argv[2] if len(argv) > 2 else os.environ.get("SLURM_ARRAY_TASK_ID", "0")
        sys.exit(shard.run(Path(argv[1]), int(index)))
    args = parse(argv)
    params = load_yaml(PARAMS.read_text())
    if args.recipe:
        params = recipe(args.recipe).merged(params)
    seeds = {part: tuple(args.seeds) for part in protocol.PART_ORDER} if args.seeds else None
    planned = protocol.plan(params, ablations=args.ablations, seeds=seeds, imagenet=args.imagenet)
    if unknown := set(args.experiments or ()) - {e.name for e in planned}:
        sys.exit(f"error: --experiments: {sorted(unknown)} not in the plan; expected some of "
                 f"{[e.name for e in planned]}")
    exps = protocol.shards([e for e in planned if (not args.part or e.part in args.part)
                            and (not args.experiments or e.name in args.experiments)])
    if args.part and "calibration" in args.part:
        exps += calibration.plan(params)
    if args.recipe:
        exps = with_recipe(exps, args.recipe)
    if args.command == "calibrate":
        print(documents.write_calibration())
    elif args.command == "list":
        listing(exps)
    elif args.command == "status":
        driver.status(exps, args.launch)
    elif args.command == "run":
        if args.recipe:
            confirm(exps, load_yaml(PARAMS.read_text()), args.yes)
        if args.launch.kind == "serial":
            run(exps, commit=args.commit)
        else:
            sys.exit(driver.launch(exps, args.launch, commit=args.commit))
    else:
        print(documents.write_paper())
        with stage_run("paper_table", EXPERIMENT, {"protocol": "docs/protocol.md"}, {"seeds": "all"}) as mlflow_run:
            for path in (documents.PAPER_MD, documents.COMPUTE_PNG):  # the table and its figure, in MLflow too
                mlflow_run.log_artifact(path, "paper")


if __name__ == "__main__":
    try:
        main()
    except (FileNotFoundError, ValueError, RuntimeError) as err:  # ConfigError is a ValueError
        sys.exit(f"error: {err}")
