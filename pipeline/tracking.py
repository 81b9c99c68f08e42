"""MLflow tracking: where the store lives, one parent run per pipeline run, one child per stage.

* Store: ``sqlite:///<project>/.mlflow/mlflow.db`` with artifacts in ``.mlflow/artifacts``; the
  project is ``$DVC_ROOT`` (set by DVC, also for ``--temp`` and queued experiments, which run in a
  copy) or the working directory. ``MLFLOW_TRACKING_URI`` overrides it.
* Creating the store and finding/creating the parent run happen under a file lock: two fresh
  processes creating one sqlite store at once corrupt it.
* Group id of a pipeline run: ``DVC_EXP_NAME`` (``dvc exp run``), else ``PIPELINE_RUN_ID``, else the
  pid and start time of the calling ``dvc`` process, else a new id (a stage run by hand).
* Outages never stop a stage. Every tracking call is an *operation* (a small dict); if the tracker
  cannot be reached, that operation and all later ones of the stage go to a journal,
  ``.mlflow/pending/<stage>-<pid>.jsonl`` (artifacts copied beside it), and a warning says so. The
  next stage that reaches the tracker, or ``python -m stages.sync``, replays the journals.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from pipeline.config import stable_hash
from pipeline.io import atomic_write

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A tracking server that is down should cost seconds, not minutes of retries (MLflow's defaults:
# 7 retries with backoff factor 2, 120 s timeout); the journal keeps what could not be sent.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")

GROUP_TAG = "lad.pipeline_id"
ROLE_TAG = "lad.role"  # "pipeline" on the parent run, "stage" on children


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root() / '.mlflow' / 'mlflow.db'}"


def artifact_root() -> str:
    return (project_root() / ".mlflow" / "artifacts").as_uri()


def _dvc_ancestor() -> str | None:
    """``<pid>-<start time>`` of the nearest ``dvc`` process above this one (Linux /proc), or None."""
    pid = os.getppid()
    for _ in range(16):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2:].split()
        if any(Path(c.decode(errors="replace")).name == "dvc" for c in cmd[:2]):
            return f"dvc-{pid}-{fields[19]}"  # field 22 of stat: start time, makes pids unique
        pid = int(fields[1])
        if pid <= 1:
            return None
    return None


def pipeline_id() -> str:
    return (os.environ.get("DVC_EXP_NAME") or os.environ.get("PIPELINE_RUN_ID") or _dvc_ancestor()
            or f"manual-{uuid.uuid4().hex[:8]}")


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            flat.update(flatten(v, f"{key}."))
        else:
            flat[key] = v
    return flat


# operation: {"op": name, ...}; "run" fields hold a run reference: a real run id, or "local:<n>"
# for a run created while the tracker was unreachable (resolved when the journal is replayed).
Operation = dict[str, Any]
LOCAL = "local:"


def describe(err: BaseException) -> str:
    """``Type: first line of the message`` (tracker errors can carry whole HTML pages)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"


def pending_dir() -> Path:
    return project_root() / ".mlflow" / "pending"


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name, artifact_location=f"{artifact_root()}/{name}")


def execute(client: Any, op: Operation, refs: dict[str, str]) -> None:
    """Carry out one operation against ``client``; ``refs`` maps local run references to run ids."""
    from mlflow.entities import Metric, Param, RunTag

    def run_id(ref: str) -> str:
        return refs.get(ref, ref)

    kind = op["op"]
    if kind == "parent":  # find this pipeline run's parent by its group tag, or create it
        exp_id = _experiment_id(client, op["experiment"])
        found = client.search_runs([exp_id], f"tags.`{GROUP_TAG}` = '{op['group']}' and tags.`{ROLE_TAG}` = 'pipeline'",
                                   max_results=1)
        if found:
            refs[op["ref"]] = found[0].info.run_id
            client.update_run(found[0].info.run_id, status="RUNNING")
        else:
            refs[op["ref"]] = client.create_run(exp_id, run_name=op["name"], tags=op["tags"]).info.run_id
    elif kind == "child":
        exp_id = _experiment_id(client, op["experiment"])
        tags = {**op["tags"], "mlflow.parentRunId": run_id(op["parent"])}
        refs[op["ref"]] = client.create_run(exp_id, run_name=op["name"], tags=tags).info.run_id
    elif kind == "batch":
        rid = run_id(op["run"])
        metrics = [Metric(k, v, ts, step) for k, v, ts, step in op.get("metrics", [])]
        params = [Param(k, v) for k, v in op.get("params", [])]
        tags = [RunTag(k, v) for k, v in op.get("tags", [])]
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
    elif kind == "artifact":
        path = Path(op["path"])
        if path.is_dir():
            client.log_artifacts(run_id(op["run"]), str(path), op.get("artifact_path"))
        elif path.is_file():
            client.log_artifact(run_id(op["run"]), str(path), op.get("artifact_path"))
    elif kind == "model_uri":  # known only once the run id is
        client.set_tag(run_id(op["run"]), "model_uri", f"runs:/{run_id(op['run'])}/{op['name']}")
    elif kind == "terminate":
        client.set_terminated(run_id(op["run"]), status=op["status"])
    else:
        raise ValueError(f"unknown tracking operation {kind!r}")


class Journal:
    """The operations a stage could not deliver, one JSON line each, with copies of their files."""

    def __init__(self, stage: str) -> None:
        name = f"{stage.replace('@', '-')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.path = pending_dir() / f"{name}.jsonl"
        self.files = pending_dir() / name
        self.count = 0

    def append(self, op: Operation) -> None:
        if op["op"] == "artifact" and Path(op["path"]).exists():  # the file may change before the replay
            src = Path(op["path"])
            dest = self.files / f"{self.count}" / src.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
            op = {**op, "path": str(dest)}
        if self.count == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write({"op": "open", "pid": os.getpid(), "host": socket.gethostname()})
        self._write(op)
        self.count += 1

    def close(self) -> None:
        if self.count:
            self._write({"op": "close"})

    def _write(self, op: Operation) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(op) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _replayable(path: Path) -> bool:
    """A journal whose stage closed it, or whose writer on this host is gone."""
    lines = path.read_text().splitlines()
    if not lines:
        return False
    head, last = json.loads(lines[0]), json.loads(lines[-1])
    if last.get("op") == "close":
        return True
    return head.get("host") == socket.gethostname() and not _alive(int(head.get("pid", 0)))


def replay(client: Any, path: Path) -> int:
    """Replay one journal; on success delete it (and its files) and return the operations done.

    If the tracker fails part-way, the journal is rewritten with what is left (the runs already
    created are remembered), so a later replay neither repeats nor loses anything; the error is raised.
    """
    ops = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    refs: dict[str, str] = {}
    done = 0
    for i, op in enumerate(ops):
        if op["op"] in ("open", "close"):
            continue
        if op["op"] == "resolved":
            refs.update(op["refs"])
            continue
        try:
            execute(client, op, refs)
        except Exception:
            head = [o for o in ops[:1] if o["op"] == "open"]  # keeps who wrote it: replayable once they are gone
            rest = head + [{"op": "resolved", "refs": refs}] + [o for o in ops[i:] if o["op"] not in ("resolved", "open")]
            atomic_write(path, lambda tmp: tmp.write_text("".join(json.dumps(o) + "\n" for o in rest)))
            raise
        done += 1
    shutil.rmtree(path.with_suffix(""), ignore_errors=True)
    path.unlink()
    return done


def sync_pending(client: Any) -> list[tuple[Path, int]]:
    """Replay every replayable journal; returns (journal, operations) for those uploaded."""
    out = []
    for path in sorted(pending_dir().glob("*.jsonl")) if pending_dir().is_dir() else []:
        if _replayable(path):
            out.append((path, replay(client, path)))
    return out


class StageRun:
    """The MLflow child run of one stage: batched metrics, params, tags, artifacts, a model.

    Every call becomes an operation that is carried out at once while the tracker answers; after the
    first failure (or if it never answered) the operations go to a :class:`Journal` instead, so a
    tracker outage costs no training and loses no record.
    """

    def __init__(self, client: Any, stage: str, run_ref: str, parent_ref: str, refs: dict[str, str] | None = None,
                 offline_reason: str | None = None) -> None:
        self.client, self.stage = client, stage
        self.run_ref, self.parent_ref = run_ref, parent_ref
        self.refs = refs if refs is not None else {}
        self.journal: Journal | None = None
        self.offline_reason = offline_reason

    @property
    def run_id(self) -> str:
        return self.refs.get(self.run_ref, self.run_ref)

    def emit(self, op: Operation) -> None:
        """Deliver ``op`` now, or keep it in the journal once the tracker has failed."""
        if self.offline_reason is None:
            try:
                execute(self.client, op, self.refs)
                return
            except Exception as err:  # noqa: BLE001 - any failure of the tracker: keep training
                self.offline_reason = describe(err)
        if self.journal is None:
            self.journal = Journal(self.stage)
            self.journal.append({"op": "resolved", "refs": dict(self.refs)})  # runs created before the outage
            print(f"warning: MLflow tracking at {tracking_uri()} failed ({self.offline_reason}); the stage goes on, "
                  f"its outputs still land in reports/, and what is not logged is kept in {self.journal.path} "
                  "(uploaded by the next stage that reaches the tracker, or by `python -m stages.sync`)",
                  file=sys.stderr, flush=True)
        self.journal.append(op)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, parent: bool = False) -> None:
        """One batched request for all ``metrics`` at ``step`` (optionally on the parent run)."""
        ts = int(time.time() * 1000)
        rows = [[k, float(v), ts, step or 0] for k, v in metrics.items() if v is not None]
        self.emit({"op": "batch", "run": self.parent_ref if parent else self.run_ref, "metrics": rows})

    def log_params(self, params: dict[str, Any]) -> None:
        rows = [[k, str(v)[:6000]] for k, v in flatten(params).items()]
        for i in range(0, len(rows), 100):  # the store takes at most 100 params per batch
            self.emit({"op": "batch", "run": self.run_ref, "params": rows[i:i + 100]})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.emit({"op": "batch", "run": self.run_ref, "tags": [[k, str(v)] for k, v in tags.items()]})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None, parent: bool = False) -> None:
        self.emit({"op": "artifact", "run": self.parent_ref if parent else self.run_ref, "path": str(path),
                   "artifact_path": artifact_path})

    def log_pytorch_model(self, model: Any, name: str, input_example: Any = None) -> str:
        """Log ``model`` as an MLflow PyTorch model (pickled, with the ``pipeline`` package as code).

        Returns its ``runs:/<run id>/<name>`` URI, also set as the run's ``model_uri`` tag (if the
        tracker is down, the replay sets the tag with the real run id);
        ``mlflow.pytorch.load_model(uri)`` gives the module back.
        """
        import tempfile

        import mlflow
        import torch

        with tempfile.TemporaryDirectory() as tmp:
            mlflow.pytorch.save_model(model, f"{tmp}/{name}", input_example=input_example,
                                      pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "timm"],
                                      code_paths=[str(Path(__file__).parent)], serialization_format="pickle")
            self.log_artifact(f"{tmp}/{name}", name)
        self.emit({"op": "model_uri", "run": self.run_ref, "name": name})
        return f"runs:/{self.run_id}/{name}"

    def terminate(self, status: str) -> None:
        self.emit({"op": "terminate", "run": self.run_ref, "status": status})
        self.emit({"op": "terminate", "run": self.parent_ref, "status": status})
        if self.journal is not None:
            self.journal.close()
            print(f"warning: {self.journal.count} MLflow operation(s) of {self.stage} were not delivered; kept in "
                  f"{self.journal.path}; upload them with `python -m stages.sync`", file=sys.stderr, flush=True)


def connect(experiment: str) -> tuple[Any, str]:
    """A client of the tracking store and the id of ``experiment`` (created if new)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    return client, _experiment_id(client, experiment)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _fail_killed_runs(client: Any, exp_id: str, stage: str, current_parent: str) -> None:
    """Mark FAILED the RUNNING runs of ``stage`` whose process on this host is gone, and their parents.

    A stage killed outright (SIGKILL, power loss) cannot end its own run; its rerun does it here.
    """
    host = socket.gethostname()
    stale = client.search_runs([exp_id], f"tags.`{ROLE_TAG}` = 'stage' and tags.stage = '{stage}' "
                                         f"and tags.`lad.host` = '{host}' and attributes.status = 'RUNNING'")
    for run in stale:
        pid = run.data.tags.get("lad.pid", "")
        if pid.isdigit() and not _alive(int(pid)):
            client.set_tag(run.info.run_id, "lad.killed", "true")
            client.set_terminated(run.info.run_id, status="FAILED")
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent and parent != current_parent and client.get_run(parent).info.status == "RUNNING":
                client.set_terminated(parent, status="FAILED")


def _lock_path() -> Path:
    path = project_root() / ".mlflow" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _local_store() -> bool:
    return tracking_uri().startswith("sqlite:")


@contextlib.contextmanager
def stage_run(stage: str, experiment: str, params: dict[str, Any], tags: dict[str, Any] | None = None,
              enabled: bool = True) -> Iterator[StageRun | None]:
    """Open the child run of ``stage`` under this pipeline run's parent (created on first use).

    The child ends FINISHED, or FAILED if the stage raised. With ``enabled=False`` (DDP ranks
    other than 0) yields None and touches nothing. If the tracker cannot be reached the stage
    runs all the same and its runs are journaled (see :class:`StageRun`).
    """
    if not enabled:
        yield None
        return
    from filelock import FileLock

    from pipeline.engine import git_commit

    group = pipeline_id()
    common = {GROUP_TAG: group, "git_commit": git_commit(), "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "")}
    parent_op = {"op": "parent", "ref": f"{LOCAL}parent", "experiment": experiment, "group": group,
                 "name": os.environ.get("DVC_EXP_NAME") or f"pipeline {group}", "tags": {**common, ROLE_TAG: "pipeline"}}
    child_tags = {**common, ROLE_TAG: "stage", "stage": stage, "params_hash": stable_hash(params),
                  "lad.host": socket.gethostname(), "lad.pid": os.getpid(), **(tags or {})}
    child_op = {"op": "child", "ref": f"{LOCAL}{stage}", "experiment": experiment, "parent": f"{LOCAL}parent",
                "name": stage, "tags": {k: str(v) for k, v in child_tags.items()}}
    refs: dict[str, str] = {}
    client, offline = None, None
    try:
        # the lock serialises creating a store and its parent run (a server does that itself)
        lock = FileLock(str(_lock_path()), timeout=300) if _local_store() else contextlib.nullcontext()
        with lock:
            client, exp_id = connect(experiment)
            for path, n in sync_pending(client):
                print(f"uploaded {n} pending MLflow operation(s) from {path}")
            execute(client, parent_op, refs)
            _fail_killed_runs(client, exp_id, stage, refs[parent_op["ref"]])
    except Exception as err:  # noqa: BLE001 - the tracker is down: journal everything
        offline = describe(err)
    run = StageRun(client, stage, child_op["ref"], parent_op["ref"], refs, offline)
    if offline:
        run.emit(parent_op)
    run.emit(child_op)
    run.log_params(params)
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        run.terminate(status)
