"""Tracker outages: a real `mlflow server` on 127.0.0.1, down at the start and stopped mid-run.

Stages go on, their outputs land in reports/, a warning says what was not logged, and the next
stage (or `python -m commands.sync`) uploads the journal once the server is back.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.conftest import MlflowServer, command_env, copy_repo, run, tiny_params

pytestmark = pytest.mark.e2e  # processes, servers or the real stages: make test-fast leaves it out

ITERS = 60  # long enough to stop the server mid-run


@pytest.fixture()
def server(tmp_path):
    srv = MlflowServer(tmp_path)
    yield srv
    srv.stop()


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def stage_runs(uri: str) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=["lad"], output_format="pandas")


def train_through_an_outage(repo, server, env: dict) -> None:
    """The server comes up; the next stage uploads prepare's journal first, then the server dies mid-run."""
    server.start()
    train = subprocess.Popen([sys.executable, "-m", "stages.train", "baseline", "--seed", "0"], cwd=repo,
                             env=command_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = repo / "checkpoints/seed0/baseline/checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.is_file() and train.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert train.poll() is None, "the stage ended before the outage"
    server.stop()
    out, err = train.communicate(timeout=600)
    assert train.returncode == 0, err[-3000:]
    assert "uploaded" in out and "pending MLflow operation" in out  # prepare's journal, at the start
    assert f"MLflow tracking at {server.uri} failed" in err and "were not delivered" in err
    curve = pd.read_csv(repo / "reports/curves/seed0/baseline_train.tsv", sep="\t")
    assert list(curve["step"]) == list(range(2, ITERS + 1, 2))  # the DVC files are complete all the same
    assert (repo / "models/seed0/baseline.pt").is_file()


def test_outage_at_start_and_mid_run_loses_nothing(tmp_path, server):
    repo = copy_repo(tmp_path / "repo", tiny_params(train={"iters": ITERS, "val_interval": 20},
                                                           run={"log_interval": 2, "ckpt_interval": 10}))
    env = {"MLFLOW_TRACKING_URI": server.uri, "PIPELINE_RUN_ID": "outage"}
    pending = repo / ".mlflow" / "pending"

    # 1. the server is down from the start: prepare runs all the same and journals its run
    proc = run([sys.executable, "-m", "stages.prepare"], repo, env=env)
    assert (repo / "data/prepared/index.json").is_file()
    assert f"MLflow tracking at {server.uri} failed" in proc.stderr and "commands.sync" in proc.stderr
    assert len(list(pending.glob("*.jsonl"))) == 1

    # 2. the server comes up, then dies while a training stage runs
    train_through_an_outage(repo, server, env)
    assert len(list(pending.glob("*.jsonl"))) == 1

    # 3. while the server is still down, sync keeps the journal and says so
    proc = run([sys.executable, "-m", "commands.sync"], repo, env=env, check=False)
    assert proc.returncode == 1 and "still fails" in proc.stderr and len(list(pending.glob("*.jsonl"))) == 1

    # 4. back up: sync uploads what was missed, exactly once
    server.start()
    proc = run([sys.executable, "-m", "commands.sync"], repo, env=env)
    assert "uploaded" in proc.stdout and not list(pending.glob("*.jsonl"))
    assert "nothing to upload" in run([sys.executable, "-m", "commands.sync"], repo, env=env).stdout

    df = stage_runs(server.uri)
    parents = df[df["tags.lad.role"] == "pipeline"]
    stages = df[df["tags.lad.role"] == "stage"].set_index("tags.stage")
    assert len(parents) == 1 and set(stages.index) == {"prepare", "train_baseline@0"}
    assert (stages["status"] == "FINISHED").all() and (df["status"] == "FINISHED").all()
    assert (stages["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]).all()
    assert stages.loc["prepare", "metrics.train_images"] == 16
    c = client(server.uri)
    history = c.get_metric_history(stages.loc["train_baseline@0", "run_id"], "train_loss")
    assert sorted(m.step for m in history) == list(range(2, ITERS + 1, 2))  # before and after the outage, once each
    assert {a.path for a in c.list_artifacts(stages.loc["train_baseline@0", "run_id"], "curves")} == {
        "curves/baseline_train.tsv", "curves/baseline_val.tsv"}
