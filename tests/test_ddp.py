"""DDP: a training stage under torchrun with 2 CPU processes (gloo) matches the single-process run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import copy_repo, run, runs, tiny_params

pytestmark = pytest.mark.e2e  # processes, servers or the real stages: make test-fast leaves it out


@pytest.fixture(scope="module")
def ddp_repo(tmp_path_factory):
    # float32 and no dropout, so the only differences are per-process BatchNorm statistics (torch has
    # no CPU SyncBatchNorm) and the mean of per-process losses against one global mean
    params = tiny_params(train={"batch_size": 4, "amp": "none"}, model={"student": {"dropout": 0.0}})
    repo = copy_repo(tmp_path_factory.mktemp("ddp"), params)
    run(["python", "-m", "stages.prepare"], repo)
    return repo


def train_baseline(repo, batch_size: int, nproc: int, group: str) -> tuple[pd.DataFrame, dict]:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"].update(batch_size=batch_size, nproc=nproc)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = run(["python", "-m", "stages.train", "baseline", "--seed", "0"], repo, env={"PIPELINE_RUN_ID": group})
    if nproc > 1:
        assert "torch.distributed.run" in proc.stdout and f"--nproc_per_node={nproc}" in proc.stdout
    curve = pd.read_csv(repo / "reports/curves/seed0/baseline_train.tsv", sep="\t")
    return curve, json.loads((repo / "reports/train/seed0/baseline.json").read_text())


def test_two_gloo_processes_match_one_process_at_equal_effective_batch(ddp_repo):
    single, s_summary = train_baseline(ddp_repo, batch_size=4, nproc=1, group="single")
    double, d_summary = train_baseline(ddp_repo, batch_size=2, nproc=2, group="ddp")
    assert s_summary["effective_batch"] == d_summary["effective_batch"] == 4
    assert d_summary["processes"] == 2 and d_summary["batch_per_process"] == 2
    assert list(single["step"]) == list(double["step"]) == [1, 2, 3, 4]  # the curve's grid: every step of 4
    # the same samples and augmentations (one global stream, strided over ranks), the same start
    assert double["loss"].to_numpy() == pytest.approx(single["loss"].to_numpy(), rel=0.03)
    assert not (double["loss"].to_numpy() == single["loss"].to_numpy()).all()  # really another run

    # only rank 0 logs: one MLflow run for the DDP stage, with the effective batch as a param
    df = runs(ddp_repo, **{"lad.pipeline_id": "ddp"})
    stage = df[df["tags.lad.role"] == "stage"]
    assert len(stage) == 1 and stage["status"].iloc[0] == "FINISHED"
    assert stage["params.effective_batch"].iloc[0] == "4" and stage["params.processes"].iloc[0] == "2"
    assert len(df[df["tags.lad.role"] == "pipeline"]) == 1


def test_dual_path_teacher_and_student_train_under_ddp(ddp_repo):
    """The teacher calls the DDP model twice before one backward (two noised paths); the student
    has a frozen teacher beside it: both must run as 2 gloo processes."""
    params = yaml.safe_load((ddp_repo / "params.yaml").read_text())
    params["train"].update(batch_size=2, nproc=2)
    (ddp_repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for role in ("teacher", "student"):
        run(["python", "-m", "stages.train", role, "--seed", "0"], ddp_repo)
        summary = json.loads((ddp_repo / f"reports/train/seed0/{role}.json").read_text())
        assert summary["processes"] == 2 and summary["iters"] == 4, role
