"""The offline journal: tracking operations a stage could not deliver, and their replay.

Every tracking call is an *operation* (a small dict). If the tracker cannot be reached, that operation
and all later ones of the stage go to ``.mlflow/pending/<stage>-<pid>.jsonl`` (artifacts copied beside
it); the next stage that reaches the tracker, or ``python -m commands.sync``, replays the journals.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

from pipeline.io import atomic_write
from pipeline.tracking.store import GROUP_TAG, ROLE_TAG, _experiment_id, project_root

# operation: {"op": name, ...}; "run" fields hold a run reference: a real run id, or "local:<n>"
# for a run created while the tracker was unreachable (resolved when the journal is replayed).

Operation = dict[str, Any]

LOCAL = "local:"


def pending_dir() -> Path:
    return project_root() / ".mlflow" / "pending"

def find_parent(client: Any, exp_id: str, group: str) -> str | None:
    """The run id of the parent run of pipeline run ``group``, or None."""
    found = client.search_runs([exp_id], f"tags.`{GROUP_TAG}` = '{group}' and tags.`{ROLE_TAG}` = 'pipeline'",
                               max_results=1)
    return found[0].info.run_id if found else None


WEIGHTS_TAG = "weights_sha256"  # a registered version's weights: equal weights, no new version


def register(client: Any, source: str, name: str, tags: dict[str, str], alias: str, description: str = "",
             model_id: str | None = None, run_id: str | None = None) -> str:
    """Register ``source`` (``models:/<model id>`` of a LoggedModel, or an older ``runs:/`` URI) as model ``name``
    (created on first use, with the first part of ``description`` as its own), unless the latest version carries
    the same :data:`WEIGHTS_TAG`; point ``alias`` at the version. Returns the version."""
    latest = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
    if latest and tags.get(WEIGHTS_TAG) and latest[0].tags.get(WEIGHTS_TAG) == tags[WEIGHTS_TAG]:
        version = latest[0].version
    else:
        try:
            client.create_registered_model(name, description=description.split("\n\n")[0])
        except Exception as err:  # noqa: BLE001 - MLflow's "already exists" comes in two codes
            if getattr(err, "error_code", None) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise
        version = client.create_model_version(name, source, run_id=run_id, tags=tags, description=description or None,
                                              model_id=model_id).version
    if alias:
        client.set_registered_model_alias(name, alias, version)
    return str(version)


def log_logged_model(client: Any, op: Operation, refs: dict[str, str], run_id: str) -> None:
    """An MLflow 3 LoggedModel of run ``run_id`` from the saved model folder ``op["path"]``: created, its files
    uploaded, READY, an output of the run at ``op["step"]``, with ``op["metrics"]`` linked to it (and to their
    dataset), and the run's ``model_uri`` tag naming it. A replay that failed after creating it reuses it."""
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model

    if op["ref"] in refs:
        model = client.get_logged_model(refs[op["ref"]])
    else:
        exp_id = client.get_run(run_id).info.experiment_id
        model = client.create_logged_model(exp_id, name=op["name"], source_run_id=run_id, params=op.get("params"),
                                           tags=op.get("tags"), model_type=op.get("model_type"))
        refs[op["ref"]] = model.model_id
    mlmodel = Path(op["path"]) / "MLmodel"
    saved = Model.load(str(mlmodel))  # its identity, as mlflow.pyfunc.log_model writes it
    saved.model_id, saved.model_uuid, saved.run_id = model.model_id, model.model_id, run_id
    saved.artifact_path = model.artifact_location
    saved.save(str(mlmodel))
    client.log_model_artifacts(model.model_id, op["path"])
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=op.get("step", 0))])
    dataset = op.get("dataset") or {}
    metrics = [Metric(k, v, ts, step, model_id=model.model_id, dataset_name=dataset.get("name"),
                      dataset_digest=dataset.get("digest")) for k, v, ts, step in op.get("metrics", [])]
    if metrics:
        client.log_batch(run_id, metrics=metrics)
    client.set_tag(run_id, "model_uri", f"models:/{model.model_id}")


def log_inputs(client: Any, op: Operation, run_id: str) -> None:
    """Datasets as inputs of run ``run_id``: each ``{name, digest, source_type, source, schema, profile, context}``
    (what ``mlflow.data`` datasets carry), ``context`` the split's role (``training``, ``evaluation``)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    inputs = [DatasetInput(Dataset(d["name"], d["digest"], d["source_type"], d["source"], d.get("schema"),
                                   d.get("profile")), [InputTag("mlflow.data.context", d["context"])])
              for d in op["datasets"]]
    client.log_inputs(run_id, datasets=inputs)


# the tracker answered and refused the operation (a param logged again with another value, say): retrying it
# cannot help, so it is dropped with a warning instead of holding back every later operation as an outage does
REFUSED = ("INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS")


def refused(err: Exception) -> bool:
    """``err`` is the tracker's refusal of an operation (:data:`REFUSED`), not an outage."""
    return getattr(err, "error_code", None) in REFUSED


def execute(client: Any, op: Operation, refs: dict[str, str]) -> None:
    """Carry out one operation against ``client``; ``refs`` maps local run references to run ids."""
    from mlflow.entities import Metric, Param, RunTag

    def run_id(ref: str) -> str:
        return refs.get(ref, ref)

    kind = op["op"]
    if kind == "parent":  # find this pipeline run's parent by its group tag, or create it
        exp_id = _experiment_id(client, op["experiment"])
        found = find_parent(client, exp_id, op["group"])
        if found:
            refs[op["ref"]] = found
            client.update_run(found, status="RUNNING")
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
    elif kind == "model":
        log_logged_model(client, op, refs, run_id(op["run"]))
    elif kind == "inputs":
        log_inputs(client, op, run_id(op["run"]))
    elif kind == "model_uri":  # journals of older versions: a run artifact's URI, known once the run id is
        client.set_tag(run_id(op["run"]), "model_uri", f"runs:/{run_id(op['run'])}/{op['name']}")
    elif kind == "register" and "artifact" in op:  # journals of older versions: a run artifact
        register(client, f"runs:/{run_id(op['run'])}/{op['artifact']}", op["name"], op["tags"], op.get("alias", ""))
    elif kind == "register":  # a LoggedModel: one of this journal's (a local reference) or an existing id
        model_id = run_id(op["model"])
        register(client, f"models:/{model_id}", op["name"], op["tags"], op.get("alias", ""), op.get("description", ""),
                 model_id, run_id(op["run"]))
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
        if op["op"] in ("artifact", "model") and Path(op["path"]).exists():  # the file may change before the replay
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

def alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True

def replayable(path: Path) -> bool:
    """A journal whose stage closed it, or whose writer on this host is gone."""
    lines = path.read_text().splitlines()
    if not lines:
        return False
    head, last = json.loads(lines[0]), json.loads(lines[-1])
    if last.get("op") == "close":
        return True
    return head.get("host") == socket.gethostname() and not alive(int(head.get("pid", 0)))

def replay(client: Any, path: Path) -> int:
    """Replay one journal; on success delete it (and its files) and return the operations done.

    If the tracker fails part-way, the journal is rewritten with what is left (the runs already
    created are remembered), so a later replay neither repeats nor loses anything; the error is raised. An
    operation the tracker refuses (:func:`refused`) is skipped with a warning.
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
        except Exception as err:
            if refused(err):
                print(f"warning: {path.name}: the tracker refused a {op['op']} operation ({err}); skipped",
                      file=sys.stderr)
                continue
            head = [o for o in ops[:1] if o["op"] == "open"]  # keeps who wrote it: replayable once they are gone
            rest = head + [{"op": "resolved", "refs": refs}] + [o for o in ops[i:]
                                                                  if o["op"] not in ("resolved", "open")]
            text = "".join(json.dumps(o) + "\n" for o in rest)
            atomic_write(path, lambda tmp, text=text: tmp.write_text(text))
            raise
        done += 1
    shutil.rmtree(path.with_suffix(""), ignore_errors=True)
    path.unlink()
    return done

def sync_pending(client: Any) -> list[tuple[Path, int]]:
    """Replay every replayable journal; returns (journal, operations) for those uploaded."""
    out = []
    for path in sorted(pending_dir().glob("*.jsonl")) if pending_dir().is_dir() else []:
        if replayable(path):
            out.append((path, replay(client, path)))
    return out
