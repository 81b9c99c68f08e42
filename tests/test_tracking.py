"""The tracking journal: an interrupted replay resumes without repeating or losing operations; importing
tracking has no side effects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from pipeline import tracking


class FakeClient:
    """Just enough of MlflowClient; ``fail_on`` makes that call raise, like a server going down; ``refuse``
    makes a params batch fail as MLflow refuses a param logged again with another value."""

    def __init__(self, fail_on: str | None = None, refuse: bool = False) -> None:
        self.calls: list[tuple] = []
        self.fail_on, self.runs, self.refuse = fail_on, 0, refuse

    def _call(self, name: str, *args) -> None:
        if name == self.fail_on:
            raise ConnectionError("server gone")
        self.calls.append((name, *args))

    def get_experiment_by_name(self, name):
        return SimpleNamespace(experiment_id="1")

    def search_runs(self, *args, **kwargs):
        return []

    def create_run(self, exp_id, run_name, tags):
        self._call("create_run", run_name)
        self.runs += 1
        return SimpleNamespace(info=SimpleNamespace(run_id=f"id{self.runs}-{run_name}"))

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        if params and self.refuse:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

            raise MlflowException("Changing param values is not allowed", error_code=INVALID_PARAMETER_VALUE)
        self._call("log_batch", run_id, tuple(m.key for m in metrics))

    def set_terminated(self, run_id, status):
        self._call("set_terminated", run_id, status)


def test_replay_resumes_after_a_failure_without_duplicates(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    journal = tracking.Journal("train_teacher@0")
    journal.append({"op": "resolved", "refs": {}})
    journal.append({"op": "parent", "ref": "local:parent", "experiment": "lad", "group": "g", "name": "p", "tags": {}})
    journal.append({"op": "child", "ref": "local:c", "experiment": "lad", "parent": "local:parent", "name": "c",
                    "tags": {}})
    journal.append({"op": "batch", "run": "local:c", "metrics": [["train_loss", 1.0, 0, 2]]})
    journal.append({"op": "terminate", "run": "local:c", "status": "FINISHED"})
    journal.close()
    assert tracking.replayable(journal.path)

    down = FakeClient(fail_on="log_batch")
    with pytest.raises(ConnectionError):
        tracking.replay(down, journal.path)
    assert [c[0] for c in down.calls] == ["create_run", "create_run"]  # parent and child made before the failure
    lines = [json.loads(x) for x in journal.path.read_text().splitlines()]
    assert lines[0]["op"] == "open" and lines[1] == {"op": "resolved", "refs": {"local:parent": "id1-p",
                                                                               "local:c": "id2-c"}}

    up = FakeClient()
    assert tracking.sync_pending(up) == [(journal.path, 2)]
    assert up.calls == [("log_batch", "id2-c", ("train_loss",)), ("set_terminated", "id2-c", "FINISHED")]
    assert not journal.path.exists()


def test_a_refused_operation_is_skipped_not_taken_for_an_outage(tmp_path, monkeypatch, capsys):
    """A param logged again with another value (two seeds' runs under one parent) is refused by MLflow: the
    stage keeps logging, and a journal holding such an operation still replays the rest."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    client = FakeClient(refuse=True)
    run = tracking.StageRun(client, "report", "id-c", "id-p", {})
    run.log_params({"seeds": [3]}, parent=True)
    run.log_metrics({"miou": 1.0})
    assert run.offline_reason is None and run.journal is None and client.calls == [("log_batch", "id-c", ("miou",))]
    assert "MLflow refused a batch operation of report" in capsys.readouterr().err
    journal = tracking.Journal("report")
    journal.append({"op": "batch", "run": "id-p", "params": [["seeds", "[3]"]]})
    journal.append({"op": "batch", "run": "id-c", "metrics": [["miou", 1.0, 0, 0]]})
    journal.close()
    assert tracking.sync_pending(client) == [(journal.path, 1)] and not journal.path.exists()
    assert client.calls[-1] == ("log_batch", "id-c", ("miou",))


def test_importing_tracking_changes_no_environment():
    """The MLflow client settings are applied when a stage connects, not on import."""
    code = ("import os; before = dict(os.environ); import pipeline.tracking; "
            "print(sorted(k for k in os.environ if k.startswith('MLFLOW') and before.get(k) != os.environ[k]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_progress_is_plain_lines_outside_a_terminal(monkeypatch):
    from pipeline import progress

    monkeypatch.setenv(progress.PROGRESS_ENV, "lines")
    assert not progress.interactive() and progress.bar(range(3)).disable
    monkeypatch.setenv(progress.PROGRESS_ENV, "bar")
    assert progress.interactive() and not progress.bar(range(3), enabled=True).disable
    assert progress.bar(range(3), enabled=False).disable


def test_a_version_only_when_the_weights_change_and_the_alias_follows(tmp_path, monkeypatch):
    """The registry of the report stage: the same weights registered again reuse the latest version (a run
    restored from DVC's run cache, a forced rerun), other weights make a new one; ``@candidate`` names it."""
    import mlflow
    from mlflow import MlflowClient

    from pipeline.tracking.journal import WEIGHTS_TAG, register

    monkeypatch.chdir(tmp_path)  # the runs' artifacts go to ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    runs = []
    for _ in range(3):
        with mlflow.start_run() as run:
            mlflow.log_text("weights", "model/MLmodel")
        runs.append(run.info.run_id)
    got = [register(client, f"runs:/{rid}/model", "m", {WEIGHTS_TAG: digest}, "candidate")
           for rid, digest in zip(runs, ["aaa", "aaa", "bbb"])]
    assert got == ["1", "1", "2"]
    assert str(client.get_model_version_by_alias("m", "candidate").version) == "2"
    assert register(client, f"runs:/{runs[0]}/model", "m", {WEIGHTS_TAG: "aaa"}, "candidate") == "3"  # not the latest
    assert register(client, f"runs:/{runs[0]}/model", "m", {}, "") == "4"  # no digest: always a new version
    assert str(client.get_model_version_by_alias("m", "candidate").version) == "3"


def test_the_invocation_is_the_nearest_dvc_process_above(tmp_path, monkeypatch):
    """A process below a ``dvc`` (here a script of that name) belongs to that dvc's invocation, found through
    psutil (no /proc walk); ``PIPELINE_RUN_ID`` wins; with no dvc above, a new id each time."""
    from pipeline.tracking import invocation

    probe = "from pipeline.tracking.invocation import current; print(current().key, '|', current().command)"
    fake = tmp_path / "dvc"
    fake.write_text(f"#!{sys.executable}\nimport subprocess, sys\nprint(subprocess.run([sys.executable, '-c', "
                    f"{probe!r}], capture_output=True, text=True).stdout, end='')\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != invocation.ENV}
    env["PYTHONPATH"] = os.getcwd()
    out = [subprocess.run([str(fake), "exp", "run", "-n", "x"], capture_output=True, text=True, env=env).stdout
           for _ in range(2)]
    keys = [o.split(" | ")[0] for o in out]
    assert all(k.startswith("dvc-") for k in keys) and keys[0] != keys[1]  # one dvc process, one invocation
    assert out[0].split(" | ")[1].strip() == "dvc exp run"
    assert invocation.dvc_command(["/venv/bin/python", "/venv/bin/dvc", "repro", "-f"]) == "dvc repro"  # macOS
    assert invocation.dvc_command(["python", "-m", "stages.train"]) is None
    monkeypatch.delenv(invocation.ENV, raising=False)
    if invocation.dvc_ancestor() is None:  # pytest run by hand, not under `dvc`
        assert invocation.current().key.startswith("manual-") and invocation.current() != invocation.current()
    monkeypatch.setenv(invocation.ENV, "mine")
    assert invocation.current().key == "mine"


def test_a_journaled_logged_model_dataset_and_registration_replay_into_mlflow(tmp_path, monkeypatch):
    """Offline, a stage's LoggedModel, dataset inputs and registration go to the journal with the model's files;
    the replay creates the run, a READY LoggedModel with its metrics linked, the inputs, and a registered
    version made from that LoggedModel, which loads without unpickling."""
    import mlflow
    import numpy as np
    from mlflow import MlflowClient

    from pipeline.deploy import Preprocess, log_model
    from pipeline.models import NetworkSpec, create_segmentor
    from pipeline.tracking.datasets import describe_all

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # the journal's folder: .mlflow/pending
    net = create_segmentor(NetworkSpec("fcn", "resnet18d", 3, head_channels=8, aux=False, channels=[8, 8, 16, 16],
                                       stem_width=8))
    index = {"name": "toy", "root": str(tmp_path), "classes": ["a", "b", "c"], "ignore_index": 255, "files_md5": "f",
             "samples": {"train": [["x.jpg", "x.png"]], "val": [["y.jpg", "y.png"]]},
             "stats": {"train": {"images": 1}, "val": {"images": 1}}}
    datasets = describe_all(index)
    run = tracking.StageRun(None, "distill@0", "local:distill@0", "local:parent", {}, offline_reason="down")
    run.emit({"op": "parent", "ref": "local:parent", "experiment": "lad", "group": "g", "name": "g", "tags": {}})
    run.emit({"op": "child", "ref": "local:distill@0", "experiment": "lad", "parent": "local:parent",
              "name": "distill@0", "tags": {}})
    run.log_inputs(datasets)
    pre = Preprocess.of(index["classes"], [[0, 0, 0], [1, 1, 1], [2, 2, 2]], [0.5] * 3, [0.2] * 3, "rgb", 32)
    ref = log_model(run, net, "student", pre, 7, {"val_miou": 12.5}, datasets[1], {"role": "student"})
    run.register_model("toy-student", ref, {"weights_sha256": "d"}, "candidate", "What it is.\n\nIts data.")
    run.terminate("FINISHED")
    assert ref.startswith("local:") and run.journal.files.is_dir()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # as connect() does: the registry resolves models:/ through it
    client = MlflowClient(uri)
    client.create_experiment("lad", artifact_location=(tmp_path / "artifacts").as_uri())
    assert tracking.sync_pending(client)[0][1] > 0 and not run.journal.path.exists()
    (model,) = client.search_logged_models([client.get_experiment_by_name("lad").experiment_id])
    assert model.name == "student" and str(model.status).endswith("READY") and model.tags["weights_sha256"]
    assert [(m.key, m.value, m.step, m.dataset_name) for m in model.metrics] == [("val_miou", 12.5, 7, "toy-val")]
    inputs = client.get_run(model.source_run_id).inputs.dataset_inputs
    assert {i.dataset.name for i in inputs} == {"toy-train", "toy-val"}
    version = client.get_model_version_by_alias("toy-student", "candidate")
    assert version.source == f"models:/{model.model_id}" and version.description == "What it is.\n\nIts data."
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = mlflow.pyfunc.load_model("models:/toy-student@candidate")
    out = loaded.predict(np.zeros((2, 3, 24, 40), np.float32))
    assert out.shape == (2, 3, 24, 40)
