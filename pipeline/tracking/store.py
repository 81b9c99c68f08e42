"""The MLflow store: where it lives, how a client reaches it, and the lock around creating it.

Store: ``sqlite:///<project>/.mlflow/mlflow.db`` with artifacts in ``.mlflow/artifacts``; the project is
``$DVC_ROOT`` (set by DVC, also for ``--temp`` and queued experiments, which run in a copy) or the
working directory. ``MLFLOW_TRACKING_URI`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

GROUP_TAG = "lad.pipeline_id"
ROLE_TAG = "lad.role"  # "pipeline" on the parent run, "stage" on children
INVOCATION_TAG = "lad.invocation"  # on the parent: what launched it (`dvc repro`, `dvc exp exec-run`)
# A tracking server that is down should cost seconds, not minutes of retries (MLflow's defaults:
# 7 retries with backoff factor 2, 120 s timeout); the journal keeps what could not be sent.
CLIENT_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
              "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # no progress bars of model files on stderr


def project_root() -> Path:
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()

def tracking_uri() -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{project_root() / '.mlflow' / 'mlflow.db'}"

def artifact_root() -> str:
    return (project_root() / ".mlflow" / "artifacts").as_uri()

def describe(err: BaseException) -> str:
    """``Type: first line of the message`` (tracker errors can carry whole HTML pages)."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:300] if text else ''}"

def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    return exp.experiment_id if exp else client.create_experiment(name, artifact_location=f"{artifact_root()}/{name}")


def lock_path() -> Path:
    """The file lock that serialises creating a local store and its parent run."""
    path = project_root() / ".mlflow" / ".lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def local_store() -> bool:
    return tracking_uri().startswith("sqlite:")


def quiet() -> None:
    """MLflow's and its database migrations' INFO lines ("Creating initial MLflow database tables...") off
    stderr: warnings and errors still show. ``MLFLOW_LOGGING_LEVEL`` set by the user wins."""
    import logging

    if not os.environ.get("MLFLOW_LOGGING_LEVEL"):
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


def connect(experiment: str) -> tuple[Any, str]:
    """A client of the tracking store and the id of ``experiment`` (created if new).

    Sets the client's environment defaults (:data:`CLIENT_ENV`) first; a value already set wins.
    """
    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    import mlflow

    quiet()
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    return client, _experiment_id(client, experiment)
