"""One parent MLflow run per pipeline run, one child run per stage (:func:`stage_run`).

The parent is found by the invocation's key (:mod:`pipeline.tracking.invocation`: ``PIPELINE_RUN_ID``, else
the ``dvc`` process the stage runs under, else a new id), so one ``dvc repro`` or ``dvc exp run`` is one
parent however its stages are started. Outages never stop a stage: what cannot be delivered is journaled
(:mod:`pipeline.tracking.journal`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.config import flatten, stable_hash
from pipeline.io import git_commit
from pipeline.tracking import invocation, system
from pipeline.tracking.invocation import Invocation
from pipeline.tracking.journal import LOCAL, Journal, Operation, alive, execute, find_parent, refused, sync_pending
from pipeline.tracking.store import (
    GROUP_TAG,
    INVOCATION_TAG,
    ROLE_TAG,
    connect,
    describe,
    local_store,
    lock_path,
    tracking_uri,
)


def parent_run_id(experiment: str, group: str) -> str | None:
    """The MLflow parent run of pipeline run ``group`` (a DVC experiment's name), or None (none, or no tracker)."""
    try:
        return find_parent(*connect(experiment), group)
    except Exception:  # noqa: BLE001 - the tracker is down: the source is then unknown, not an error
        return None


def parent_name(inv: Invocation, commit: str) -> str:
    """The parent run's name in the MLflow UI: the DVC experiment's name, else what launched it and the commit
    (``dvc repro @ 1a2b3c4``), else the id a user chose."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    if inv.command or inv.key.startswith("manual-"):
        return f"{inv.command or 'by hand'} @ {commit[:7]}"
    return inv.key

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

    @property
    def tracked_id(self) -> str | None:
        """The MLflow run id, or None while the run exists only in the journal (tracker unreachable)."""
        return None if self.run_id.startswith(LOCAL) else self.run_id

    def emit(self, op: Operation) -> None:
        """Deliver ``op`` now, or keep it in the journal once the tracker has failed."""
        if self.offline_reason is None:
            try:
                execute(self.client, op, self.refs)
                return
            except Exception as err:  # noqa: BLE001 - any failure of the tracker: keep training
                if refused(err):  # the tracker is up: the stage goes on logging the rest
                    print(f"warning: MLflow refused a {op['op']} operation of {self.stage} ({describe(err)}); "
                          "not logged", file=sys.stderr, flush=True)
                    return
                self.offline_reason = describe(err)
        if self.journal is None:
            self.journal = Journal(self.stage)
            self.journal.append({"op": "resolved", "refs": dict(self.refs)})  # runs created before the outage
            print(f"warning: MLflow tracking at {tracking_uri()} failed ({self.offline_reason}); the stage goes on, "
                  f"its outputs still land in reports/, and what is not logged is kept in {self.journal.path} "
                  "(uploaded by the next stage that reaches the tracker, or by `python -m commands.sync`)",
                  file=sys.stderr, flush=True)
        self.journal.append(op)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, parent: bool = False) -> None:
        """One batched request for all ``metrics`` at ``step`` (optionally on the parent run)."""
        ts = int(time.time() * 1000)
        rows = [[k, float(v), ts, step or 0] for k, v in metrics.items() if v is not None]
        self.emit({"op": "batch", "run": self.parent_ref if parent else self.run_ref, "metrics": rows})

    def log_params(self, params: dict[str, Any], parent: bool = False) -> None:
        rows = [[k, str(v)[:6000]] for k, v in flatten(params).items()]
        for i in range(0, len(rows), 100):  # the store takes at most 100 params per batch
            self.emit({"op": "batch", "run": self.parent_ref if parent else self.run_ref, "params": rows[i:i + 100]})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.emit({"op": "batch", "run": self.run_ref, "tags": [[k, str(v)] for k, v in tags.items()]})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None, parent: bool = False) -> None:
        self.emit({"op": "artifact", "run": self.parent_ref if parent else self.run_ref, "path": str(path),
                   "artifact_path": artifact_path})

    def log_model(self, path: str | Path, name: str, step: int, metrics: dict[str, float] | None = None,
                  dataset: dict[str, str] | None = None, tags: dict[str, Any] | None = None) -> str:
        """Log the saved MLflow model folder ``path`` as an MLflow 3 LoggedModel ``name`` of this run at ``step``,
        ``metrics`` linked to it (evaluated on ``dataset``: its ``name`` and ``digest``), ``tags`` on it.

        Returns its reference for :meth:`register_model`: the model id once the tracker has it, a local
        reference while the run is journaled (the replay resolves it). The run's ``model_uri`` tag names it.
        """
        ts = int(time.time() * 1000)
        ref = f"{LOCAL}model-{name}-{len(self.refs)}"
        self.emit({"op": "model", "ref": ref, "run": self.run_ref, "name": name, "path": str(path), "step": step,
                   "metrics": [[k, float(v), ts, step] for k, v in (metrics or {}).items() if v is not None],
                   "dataset": dataset, "tags": {k: str(v) for k, v in (tags or {}).items()},
                   "model_type": "semantic-segmentation"})
        return self.refs.get(ref, ref)

    def log_inputs(self, datasets: list[dict[str, Any]]) -> None:
        """The datasets this run reads (:func:`pipeline.tracking.journal.log_inputs` says their fields)."""
        self.emit({"op": "inputs", "run": self.run_ref, "datasets": datasets})

    def find_model(self, tags: dict[str, str]) -> str | None:
        """The id of this experiment's newest READY LoggedModel carrying ``tags``, or None (none, or the tracker
        is unreachable)."""
        if self.offline_reason is not None or self.tracked_id is None:
            return None
        try:
            exp_id = self.client.get_run(self.run_id).info.experiment_id
            where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
            newest = [{"field_name": "creation_timestamp", "ascending": False}]
            found = self.client.search_logged_models([exp_id], filter_string=where, max_results=20, order_by=newest)
        except Exception:  # noqa: BLE001 - not found is not an error: the caller logs the model itself
            return None
        ready = [m for m in found if str(m.status).endswith("READY")]
        return ready[0].model_id if ready else None

    def register_model(self, name: str, model: str, tags: dict[str, Any], alias: str = "",
                       description: str = "") -> None:
        """Register the LoggedModel ``model`` (an id, or a reference from :meth:`log_model`) as registered model
        ``name`` with ``description``: a new version unless the latest one has the same ``weights_sha256`` tag;
        ``alias`` (if any) then names that version."""
        self.emit({"op": "register", "run": self.run_ref, "name": name, "model": model,
                   "tags": {k: str(v) for k, v in tags.items()}, "alias": alias, "description": description})

    def terminate(self, status: str) -> None:
        self.emit({"op": "terminate", "run": self.run_ref, "status": status})
        self.emit({"op": "terminate", "run": self.parent_ref, "status": status})
        if self.journal is not None:
            self.journal.close()
            print(f"warning: {self.journal.count} MLflow operation(s) of {self.stage} were not delivered; kept in "
                  f"{self.journal.path}; upload them with `python -m commands.sync`", file=sys.stderr, flush=True)

def _fail_killed_runs(client: Any, exp_id: str, stage: str, current_parent: str) -> None:
    """Mark FAILED the RUNNING runs of ``stage`` whose process on this host is gone, and their parents.

    A stage killed outright (SIGKILL, power loss) cannot end its own run; its rerun does it here.
    """
    host = socket.gethostname()
    stale = client.search_runs([exp_id], f"tags.`{ROLE_TAG}` = 'stage' and tags.stage = '{stage}' "
                                         f"and tags.`lad.host` = '{host}' and attributes.status = 'RUNNING'")
    for run in stale:
        pid = run.data.tags.get("lad.pid", "")
        if pid.isdigit() and not alive(int(pid)):
            client.set_tag(run.info.run_id, "lad.killed", "true")
            client.set_terminated(run.info.run_id, status="FAILED")
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent and parent != current_parent and client.get_run(parent).info.status == "RUNNING":
                client.set_terminated(parent, status="FAILED")

def run_ops(stage: str, experiment: str, params: dict[str, Any], tags: dict[str, Any] | None
            ) -> tuple[Operation, Operation]:
    """The operations that find or create this invocation's parent run and create the stage's child run."""
    inv, commit = invocation.current(), git_commit()
    common = {GROUP_TAG: inv.key, "git_commit": commit}
    if os.environ.get("DVC_EXP_NAME"):  # empty under a plain `dvc repro`: then no tag at all
        common["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    parent_tags = {**common, ROLE_TAG: "pipeline", **({INVOCATION_TAG: inv.command} if inv.command else {})}
    parent_op = {"op": "parent", "ref": f"{LOCAL}parent", "experiment": experiment, "group": inv.key,
                 "name": parent_name(inv, commit), "tags": parent_tags}
    child_tags = {**common, ROLE_TAG: "stage", "stage": stage, "params_hash": stable_hash(params),
                  "lad.host": socket.gethostname(), "lad.pid": os.getpid(), **(tags or {})}
    child_op = {"op": "child", "ref": f"{LOCAL}{stage}", "experiment": experiment, "parent": f"{LOCAL}parent",
                "name": stage, "tags": {k: str(v) for k, v in child_tags.items()}}
    return parent_op, child_op


@contextlib.contextmanager
def stage_run(stage: str, experiment: str, params: dict[str, Any], tags: dict[str, Any] | None = None,
              enabled: bool = True, system_metrics: bool = False) -> Iterator[StageRun | None]:
    """Open the child run of ``stage`` under this pipeline run's parent (created on first use).

    ``system_metrics``: sample CPU, memory and GPU use into the run while it is open
    (:mod:`pipeline.tracking.system`; not while the tracker is unreachable).

    The child ends FINISHED, or FAILED if the stage raised. With ``enabled=False`` (DDP ranks
    other than 0) yields None and touches nothing. If the tracker cannot be reached the stage
    runs all the same and its runs are journaled (see :class:`StageRun`).
    """
    if not enabled:
        yield None
        return
    from filelock import FileLock

    parent_op, child_op = run_ops(stage, experiment, params, tags)
    refs: dict[str, str] = {}
    client, offline = None, None
    try:
        # the lock serialises creating a store and its parent run (a server does that itself)
        lock = FileLock(str(lock_path()), timeout=300) if local_store() else contextlib.nullcontext()
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
    monitor = system.start(run.run_id, tracking_uri()) if system_metrics and run.offline_reason is None else None
    status = "FAILED"
    try:
        yield run
        status = "FINISHED"
    finally:
        if monitor is not None:
            monitor.finish()
        run.terminate(status)
