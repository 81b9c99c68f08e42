"""The driver: submit every shard not collected and not in flight, then collect each one as it finishes.

    python -m commands.paper run --launcher local --jobs 2 [--commit]
    python -m commands.paper run --launcher slurm --gpus 1 --cpus 8 --mem 32G --time 12:00:00 [--jobs 4]
    python -m commands.paper status

One driver at a time (a lock in the workdir); a second ``run`` while jobs are in flight submits nothing
again: it finds them in ``squeue`` (Slurm) or alive (local), and waits for them with the rest. A shard's
status, in this order: ``done`` (collected and current), ``finished`` (collected in its worktree, not yet
brought home), ``running`` / ``queued`` (its job), ``failed`` (why, and its log), else ``stale`` or
``missing`` (:mod:`pipeline.experiments.currency`).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, load_yaml
from pipeline.experiments import Experiment, currency
from pipeline.launch import (
    Launcher,
    Manifest,
    Workdir,
    exp_to_dict,
    local,
    log_tail,
    pid_alive,
    read_json,
    slurm,
    update_json,
)
from pipeline.launch.shard import git, prepare_worktree
from pipeline.overlays import Overlay
from pipeline.paths import EXPERIMENT

POLL_S = 2.0  # seconds between looks at the jobs
IN_FLIGHT = ("running", "queued", "finished")


def shard_status(exp: Experiment, work: Workdir, queue: dict[str, tuple[str, str]], repo: Path,
                 keys: list[str] | None = None) -> tuple[str, str]:
    """``(status, detail)`` of one shard (the module's docstring lists the statuses; ``keys``: the computing
    keys of :func:`pipeline.experiments.currency.computing_keys`, when read already)."""
    keys = currency.computing_keys(repo / "dvc.yaml") if keys is None else keys
    params = repo / currency.PARAMS
    want = currency.digest(exp, repo, keys)
    here = repo / exp.runs / exp.folder
    if currency.collected_digest(here, keys, params) == want:
        return "done", str(exp.runs / exp.folder)
    collected = "stale" if (here / currency.META).is_file() else "missing"
    sub, st = read_json(work.submitted(exp)), read_json(work.state(exp))
    if not sub:
        return collected, ""
    ours = st.get("submission") == sub["submission"]
    if ours and st.get("state") == "done":  # collected in its worktree: for this code and params, or stale
        there = work.worktree(exp) / exp.runs / exp.folder
        return ("finished", str(there)) if currency.collected_digest(there, keys, params) == want else (collected, "")
    attempt = f", attempt {st.get('restarts', 0) + 1}" if ours and st.get("restarts") else ""
    if sub["launcher"] == "slurm" and (job := queue.get(sub["job"])):
        state, reason = job
        if state in slurm.RUNNING:
            return "running", f"job {sub['job']} on {st.get('host', '?')}{attempt}"
        if state in slurm.QUEUED:
            requeued = " (requeued)" if ours and st.get("state") == "interrupted" else ""
            return "queued", f"job {sub['job']}{requeued}: {reason}"
    if sub["launcher"] == "local":
        if ours and st.get("state") == "running" and pid_alive(st["pid"], st["host"]):
            return "running", f"{st.get('job')}{attempt}"
        if not ours and pid_alive(sub["driver"], sub["host"]):
            return "queued", f"by the driver, pid {sub['driver']}"
    if ours and st.get("state") == "failed":
        return "failed", st.get("why", "")
    if ours:
        return "failed", f"ended {st.get('state', '')} without a result ({st.get('why') or 'killed?'})"
    if sub["launcher"] == "slurm":
        return "failed", f"job {sub['job']} left the queue before it started (its log: {work.root / 'logs'})"
    return collected, ""


def bring_home(exp: Experiment, work: Workdir, repo: Path, commit: bool) -> Path:
    """Copy a finished shard's folder from its worktree into the repository (replacing an older copy,
    atomically), and commit it when asked."""
    src, dest = work.worktree(exp) / exp.runs / exp.folder, repo / exp.runs / exp.folder
    tmp = dest.with_name(dest.name + ".incoming")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    if commit:
        meta = read_json(dest / currency.META)
        git("add", str(dest.relative_to(repo)), cwd=repo)
        git("commit", "-qm", f"paper table: {exp.folder} collected ({meta.get('seconds', 0):.0f} s, "
            f"{meta.get('launcher')} {meta.get('job')}, threads: {meta.get('threads') or 'default'})", "--",
            str(dest.relative_to(repo)), cwd=repo)
    return dest


def tracking(cfg: Launcher, work: Workdir, repo: Path) -> tuple[str, Any]:
    """The tracking server every shard logs to: the one ``MLFLOW_TRACKING_URI`` names, or one started here on
    the repository's own store (``.mlflow/``, what ``make ui`` shows); ``(uri, server or None)``."""
    from pipeline.tracking.server import MlflowServer

    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        return uri, None
    if uri:
        raise ConfigError(f"MLFLOW_TRACKING_URI={uri}: launched shards log to one tracking server (SQLite written "
                          "from many processes or nodes is not safe); name a server (http://...) or unset it, and "
                          "the driver serves the repository's .mlflow store")
    if not cfg.wait:
        raise ConfigError("--no-wait: the MLflow server the driver starts would stop with it; name a running "
                          "server in MLFLOW_TRACKING_URI (docs/scale.md)")
    store = repo / ".mlflow"
    server = MlflowServer(work.root / "mlflow", db=store / "mlflow.db", artifacts=store / "artifacts",
                          host=cfg.mlflow_host).start()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.uri)
    if client.get_experiment_by_name(EXPERIMENT) is None:  # its artifacts where a local run puts them
        client.create_experiment(EXPERIMENT, artifact_location=(store / "artifacts" / EXPERIMENT).as_uri())
    return server.uri, server


def check_devices(exps: list[Experiment], cfg: Launcher, params: dict[str, Any], gpus: list[str]) -> None:
    """A shard that trains on CUDA (``train.device: cuda``, as every recipe) needs a GPU: refused up front."""
    cuda = [e.folder for e in exps if Overlay(e.name, e.sets).merged(params)["train"]["device"] == "cuda"]
    if cuda and cfg.kind == "slurm" and not cfg.gpus:
        raise ConfigError(f"--gpus: {cuda[0]} trains on CUDA (train.device: cuda); give each task a GPU, e.g. --gpus 1")
    if cuda and cfg.kind == "local" and not gpus:
        raise ConfigError(f"--launcher local: {cuda[0]} trains on CUDA (train.device: cuda) and torch sees no GPU")


def submit(todo: list[Experiment], cfg: Launcher, work: Workdir, repo: Path, uri: str,
           gpus: list[str]) -> local.Pool | None:
    """Worktrees for ``todo``, one manifest, then a job array (Slurm) or a pool (local)."""
    commit, submission = git("rev-parse", "HEAD", cwd=repo), uuid.uuid4().hex[:8]
    cache = subprocess.run(["dvc", "cache", "dir"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
    jobs = cfg.jobs or max(1, len(gpus))
    threads = cfg.cpus or (max(1, local.cores() // jobs) if cfg.kind == "local" else None)
    for i, exp in enumerate(todo, 1):
        print(f"  worktree {i}/{len(todo)}: {work.worktree(exp)}", flush=True)
        prepare_worktree(repo, work.worktree(exp), commit, cache)
        work.state(exp).unlink(missing_ok=True)
    m = Manifest(submission, str(repo), commit, cfg.kind, uri, EXPERIMENT, str(work.root), threads,
                 [{"exp": exp_to_dict(e), "run_key": f"{e.folder}-{submission}"} for e in todo])
    path = m.save()
    (work.root / "logs").mkdir(parents=True, exist_ok=True)  # Slurm opens its output files there
    base = {"launcher": cfg.kind, "submission": submission, "driver": os.getpid(), "host": socket.gethostname(),
            "submitted": time.strftime("%Y-%m-%d %H:%M:%S"), "commit": commit}
    if cfg.kind == "slurm":
        script = path.with_suffix(".sh")
        script.write_text(slurm.script(path, len(todo), cfg, repo, work))
        array = slurm.submit(script)
        print(f"submitted job array {array} ({len(todo)} tasks{f', {cfg.jobs} at a time' if cfg.jobs else ''}; "
              f"script {script})", flush=True)
        for i, exp in enumerate(todo):
            update_json(work.submitted(exp), **base, job=f"{array}_{i}")
        return None
    for exp in todo:
        update_json(work.submitted(exp), **base, job="local")
    pool = local.Pool(path, len(todo), jobs, [work.log(e) for e in todo], repo, gpus, max(1, cfg.gpus))
    each = f"GPUs {' / '.join(pool.slots)}" if gpus else f"{threads} torch thread(s) each"
    print(f"running {len(todo)} shards, {jobs} at a time ({each})", flush=True)
    return pool


def locked(work: Workdir) -> Any:
    """The driver's lock (held until the process ends), or None when another driver holds it."""
    work.root.mkdir(parents=True, exist_ok=True)
    handle = (work.root / "driver.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def wait(watch: dict[str, Experiment], work: Workdir, repo: Path, cfg: Launcher, commit: bool,
         pool: local.Pool | None, todo: list[Experiment]) -> list[str]:
    """Poll until every watched shard is collected (brought home, committed when asked) or failed (reported
    with its log's tail); the failed ones' folders."""
    failed, keys = [], currency.computing_keys(repo / "dvc.yaml")
    while watch:
        for i, code in pool.step() if pool else ():  # a job that died before its shard said anything
            submission = read_json(work.submitted(todo[i]))["submission"]
            if read_json(work.state(todo[i])).get("submission") != submission:
                update_json(work.state(todo[i]), submission=submission, state="failed", exit=code,
                            why=f"exit {code} before the shard started")
        queue = slurm.queue() if cfg.kind == "slurm" else {}
        for folder, exp in list(watch.items()):
            state, detail = shard_status(exp, work, queue, repo, keys)
            if state == "finished":
                dest = bring_home(exp, work, repo, commit)
                meta = read_json(dest / currency.META)
                requeued = f", requeued {meta['restarts']}x" if meta.get("restarts") else ""
                print(f"{folder}: collected in {dest.relative_to(repo)} ({meta.get('seconds', 0):.0f} s, "
                      f"{meta.get('job')}{requeued})", flush=True)
            elif state == "failed":
                failed.append(folder)
                print(f"{folder}: FAILED: {detail}\n  its log, {work.log(exp)}:\n    " +
                      log_tail(work.log(exp)).replace("\n", "\n    "), file=sys.stderr, flush=True)
            elif state in ("running", "queued"):
                continue
            del watch[folder]
        if watch:
            time.sleep(POLL_S)
    return failed


def launch(exps: list[Experiment], cfg: Launcher, commit: bool = False, repo: Path | None = None) -> int:
    """Submit, wait and collect (the module's docstring); 0 when every shard is collected, 1 when one failed."""
    repo = (repo or Path.cwd()).resolve()
    work = Workdir((repo / cfg.workdir).resolve())
    if (lock := locked(work)) is None:
        print(f"a driver (pid {(work.root / 'driver.lock').read_text().strip()}) is collecting these shards "
              "already: nothing submitted; `python -m commands.paper status` shows them")
        return 0
    gpus = local.visible_gpus() if cfg.kind == "local" else []
    check_devices(exps, cfg, load_yaml((repo / currency.PARAMS).read_text()), gpus)
    queue = slurm.queue() if cfg.kind == "slurm" else {}
    keys = currency.computing_keys(repo / "dvc.yaml")
    found = {e.folder: shard_status(e, work, queue, repo, keys) for e in exps}
    todo = [e for e in exps if found[e.folder][0] in ("stale", "missing", "failed")]
    counts = {s: sum(v[0] == s for v in found.values()) for s in ("done", *IN_FLIGHT, "failed", "stale", "missing")}
    print(f"{len(exps)} shards: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) +
          f"; submitting {len(todo)}", flush=True)
    watch = {e.folder: e for e in exps if found[e.folder][0] in IN_FLIGHT or e in todo}
    uri, server, pool = "", None, None
    try:
        if todo:
            uri, server = tracking(cfg, work, repo)
            pool = submit(todo, cfg, work, repo, uri, gpus)
        if not cfg.wait and pool is None:
            return 0
        failed = wait(watch, work, repo, cfg, commit, pool, todo)
    finally:
        if pool:
            pool.stop()
        if server:
            server.stop()
        lock.close()
    done = sum(shard_status(e, work, {}, repo, keys)[0] == "done" for e in exps)
    print(f"{done} of {len(exps)} shards collected" + (f"; failed: {', '.join(failed)} (fix the cause and run again: "
                                                          "only these are submitted)" if failed else ""), flush=True)
    return 1 if failed else 0


def status(exps: list[Experiment], cfg: Launcher, repo: Path | None = None) -> None:
    """Every shard: done, finished, running, queued, failed (why), stale or missing; then the count of each."""
    repo = (repo or Path.cwd()).resolve()
    work = Workdir((repo / cfg.workdir).resolve())
    try:
        queue = slurm.queue() if any(read_json(work.submitted(e)).get("launcher") == "slurm" for e in exps) else {}
    except (ConfigError, RuntimeError) as err:
        print(f"note: {err}; Slurm jobs shown from their state files", file=sys.stderr)
        queue = {}
    keys = currency.computing_keys(repo / "dvc.yaml")
    rows = [(e, *shard_status(e, work, queue, repo, keys)) for e in exps]
    for e, state, detail in rows:
        print(f"{e.folder:34s} {state:9s} {detail}")
    counts: dict[str, int] = {}
    for _, state, _ in rows:
        counts[state] = counts.get(state, 0) + 1
    print(f"{len(rows)} shards: " + ", ".join(f"{n} {s}" for s, n in counts.items()))


def configured(args: dict[str, Any], config: Path | None) -> Launcher:
    """The launcher from ``--config``'s ``launcher`` section, then the flags that were given."""
    values = Launcher.from_file(config) if config else {}
    values = {**values, **{k: v for k, v in args.items() if v is not None}}
    if "sbatch_args" in values:
        values["sbatch_args"] = tuple(values["sbatch_args"])
    return replace(Launcher(), **values).checked()
