"""A real training stage killed with SIGKILL mid-run resumes and ends with the uninterrupted weights."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import assert_same_weights, command_env, copy_repo, run, runs, tiny_params, weights

pytestmark = pytest.mark.e2e  # processes, servers or the real stages: make test-fast leaves it out

ITERS = 120  # long enough to be killed mid-run, short enough for CI


@pytest.fixture()
def kill_repo(tmp_path):
    params = tiny_params(train={"iters": ITERS, "val_interval": 40}, run={"ckpt_interval": 10, "log_interval": 10})
    return copy_repo(tmp_path, params)


def test_sigkill_then_rerun_resumes_to_the_same_weights(kill_repo):
    run(["dvc", "repro", "prepare"], kill_repo)
    cold = {"LAD_STAGE_SERVER": ""}  # a stage in a fresh process, not forked from pipeline.stage_server's server
    env = command_env({"PIPELINE_RUN_ID": "killed", **cold})
    proc = subprocess.Popen(["dvc", "repro", "train_baseline@0"], cwd=kill_repo, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = kill_repo / "checkpoints/seed0/baseline/checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # dvc, its shell and the stage process, all at once
    proc.wait()
    assert not (kill_repo / "models/seed0/baseline.pt").exists(), "a killed stage left a final model behind"

    out = run(["dvc", "repro", "train_baseline@0"], kill_repo, env={"PIPELINE_RUN_ID": "resumed", **cold})
    assert "resuming baseline" in out.stdout + out.stderr
    resumed = weights(kill_repo / "models/seed0/baseline.pt")
    assert not ckpt.exists(), "the resume checkpoint outlived a finished stage"

    run(["dvc", "repro", "--force", "--single-item", "train_baseline@0"], kill_repo)  # uninterrupted
    assert_same_weights(weights(kill_repo / "models/seed0/baseline.pt"), resumed)

    df = runs(kill_repo, stage="train_baseline@0")
    by_group = {g: rows for g, rows in df.groupby("tags.lad.pipeline_id")}
    killed, resumed_run = by_group["killed"].iloc[0], by_group["resumed"].iloc[0]
    assert killed["status"] == "FAILED" and killed["tags.lad.killed"] == "true"
    assert resumed_run["status"] == "FINISHED"
    assert int(resumed_run["tags.resumed_from"]) >= 10
