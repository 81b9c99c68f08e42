"""MLflow tracking: where the store lives, one parent run per pipeline run, one child per stage.

* Store: ``sqlite:///<project>/.mlflow/mlflow.db`` with artifacts in ``.mlflow/artifacts``; the
  project is ``$DVC_ROOT`` (set by DVC, also for ``--temp`` and queued experiments, which run in a
  copy) or the working directory. ``MLFLOW_TRACKING_URI`` overrides it.
* Creating the store and finding/creating the parent run happen under a file lock: two fresh
  processes creating one sqlite store at once corrupt it.
* Group id of a pipeline run: ``DVC_EXP_NAME`` (``dvc exp run``), else ``PIPELINE_RUN_ID``, else the
  pid and start time of the calling ``dvc`` process, else a new id (a stage run by hand).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

from pipeline.config import stable_hash

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

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


class StageRun:
    """The MLflow child run of one stage: batched metrics, params, artifacts, models."""

    def __init__(self, client: Any, run_id: str, parent_id: str) -> None:
        self.client, self.run_id, self.parent_id = client, run_id, parent_id

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, parent: bool = False) -> None:
        """One batched request for all ``metrics`` at ``step`` (optionally on the parent run)."""
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        rows = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items() if v is not None]
        self.client.log_batch(self.parent_id if parent else self.run_id, metrics=rows)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        rows = [Param(k, str(v)[:6000]) for k, v in flatten(params).items()]
        for i in range(0, len(rows), 100):  # the store takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=rows[i:i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None, parent: bool = False) -> None:
        path = Path(path)
        run = self.parent_id if parent else self.run_id
        if path.is_dir():
            self.client.log_artifacts(run, str(path), artifact_path)
        elif path.is_file():
            self.client.log_artifact(run, str(path), artifact_path)

    def log_pytorch_model(self, model: Any, name: str, input_example: Any = None) -> str:
        """Log ``model`` as an MLflow PyTorch model (pickled, with the ``pipeline`` package as code).

        Returns its ``models:/`` URI; ``mlflow.pytorch.load_model(uri)`` gives the module back.
        """
        import mlflow
        import torch

        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pytorch.log_model(model, name=name, input_example=input_example,
                                            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "timm"],
                                            code_paths=[str(Path(__file__).parent)],
                                            serialization_format="pickle")
        return info.model_uri


def _client(experiment: str) -> tuple[Any, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment, artifact_location=f"{artifact_root()}/{experiment}")
    return client, exp_id


def _alive(pid: int) -> bool:
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


@contextlib.contextmanager
def stage_run(stage: str, experiment: str, params: dict[str, Any], tags: dict[str, Any] | None = None,
              enabled: bool = True) -> Iterator[StageRun | None]:
    """Open the child run of ``stage`` under this pipeline run's parent (created on first use).

    The child ends FINISHED, or FAILED if the stage raised. With ``enabled=False`` (DDP ranks
    other than 0) yields None and touches nothing.
    """
    if not enabled:
        yield None
        return
    from filelock import FileLock

    from pipeline.engine import git_commit

    group = pipeline_id()
    common = {GROUP_TAG: group, "git_commit": git_commit(), "dvc_exp_name": os.environ.get("DVC_EXP_NAME", "")}
    with FileLock(str(_lock_path()), timeout=300):
        client, exp_id = _client(experiment)
        found = client.search_runs([exp_id], f"tags.`{GROUP_TAG}` = '{group}' and tags.`{ROLE_TAG}` = 'pipeline'",
                                   max_results=1)
        if found:
            parent_id = found[0].info.run_id
            client.update_run(parent_id, status="RUNNING")
        else:
            name = os.environ.get("DVC_EXP_NAME") or f"pipeline {group}"
            parent_id = client.create_run(exp_id, run_name=name, tags={**common, ROLE_TAG: "pipeline"}).info.run_id
        _fail_killed_runs(client, exp_id, stage, parent_id)
    child_tags = {**common, ROLE_TAG: "stage", "stage": stage, "params_hash": stable_hash(params),
                  "lad.host": socket.gethostname(), "lad.pid": os.getpid(),
                  "mlflow.parentRunId": parent_id, **(tags or {})}
    run_id = client.create_run(exp_id, run_name=stage, tags=child_tags).info.run_id
    run = StageRun(client, run_id, parent_id)
    run.log_params(params)
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
        client.set_terminated(parent_id, status=status)
