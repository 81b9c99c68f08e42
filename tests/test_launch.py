"""The paper's table launched: 2 local jobs, and a Slurm job array on a real single-node cluster with one task
requeued mid-training; each gives the serial runner's table number for number at the same thread count."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import MlflowServer, copy_repo, run, tiny_params
from tests.slurm_cluster import Cluster, missing

pytestmark = pytest.mark.e2e
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
PAPER = ["python", "-m", "commands.paper"]
TABLE = ["--part", "ablation", "--ablations", "noise-0", "--seeds", "0", "2"]  # 4 shards: 2 experiments x 2 seeds
# 20 steps a model, a checkpoint every 2: long enough to requeue a task while its teacher trains
PARAMS = tiny_params(train={"iters": 20, "val_interval": 10}, distill={"iters": 20}, evaluate={"latency_reps": 0},
                     run={"ckpt_interval": 2, "log_interval": 5})
ONE_THREAD = ["--cpus", "1"]  # every launcher at the serial run's thread count
REQUEUED = "paper-abl-noise-0@seeds0"  # its teacher is its own (no other shard trains it)
SCORES = ("miou", "pixel_acc", "mean_acc", "per_class_iou", "confusion")


def numbers(repo: Path) -> dict:
    """Every collected shard's scores: its metrics.json, each evaluation's scores, each model's val mIoU."""
    out = {}
    for shard in sorted((repo / "reports/paper/protocol").iterdir()):
        evals = {f.stem: {k: json.loads(f.read_text())[k] for k in SCORES} for f in shard.glob("reports/eval/*/*.json")}
        trains = {f.stem: json.loads(f.read_text()).get("val_miou") for f in shard.glob("reports/train/*/*.json")}
        out[shard.name] = {"metrics": json.loads((shard / "metrics.json").read_text()), "eval": evals, "train": trains}
    return out


def meta(repo: Path, folder: str) -> dict:
    return json.loads((repo / "reports/paper/protocol" / folder / "meta.json").read_text())


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict:
    repo = copy_repo(tmp_path_factory.mktemp("serial"), PARAMS)
    run([*PAPER, "run", *TABLE], repo, env={"LAD_THREADS": "1"})
    found = numbers(repo)
    assert len(found) == 4, sorted(found)
    return found


def test_two_local_jobs_give_the_serial_table(serial, tmp_path):
    repo = copy_repo(tmp_path / "local", PARAMS)
    t0 = time.perf_counter()
    out = run([*PAPER, "run", *TABLE, "--launcher", "local", "--jobs", "2", *ONE_THREAD, "--commit"], repo, env=GIT_ID)
    print(f"4 shards, 2 local jobs: {time.perf_counter() - t0:.0f} s\n{out.stdout}")
    assert "running 4 shards, 2 at a time (1 torch thread(s) each)" in out.stdout
    assert numbers(repo) == serial
    metas = [meta(repo, f) for f in serial]
    assert {(m["launcher"], m["threads"]) for m in metas} == {("local", 1)}
    log = run(["git", "log", "--format=%s"], repo).stdout
    assert sum(line.startswith("paper table: ") for line in log.splitlines()) == 4, log
    again = run([*PAPER, "run", *TABLE, "--launcher", "local", "--jobs", "2"], repo)
    assert "4 shards: 4 done; submitting 0" in again.stdout
    status = run([*PAPER, "status", *TABLE], repo)
    assert status.stdout.rstrip().endswith("4 shards: 4 done"), status.stdout
    import mlflow  # one server for both jobs, serving the repository's own store: every shard has its parent run

    mlflow.set_tracking_uri(f"sqlite:///{repo / '.mlflow' / 'mlflow.db'}")
    for m in metas:
        assert mlflow.get_run(m["mlflow_parent_run"]).data.tags["dvc_exp_name"] == m["name"]


def test_a_failed_shard_is_reported_with_its_log_and_the_others_go_on(tmp_path):
    bad = tiny_params(train={"iters": 2}, distill={"iters": 2}, evaluate={"latency_reps": 0},
                      data={"root": "/proc/lad-nowhere"})  # prepare cannot write there
    repo = copy_repo(tmp_path / "bad", bad)
    out = run([*PAPER, "run", "--part", "ablation", "--ablations", "noise-0", "--seeds", "0", "--launcher", "local",
               "--jobs", "2", *ONE_THREAD], repo, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAILED" in out.stderr and "its log" in out.stderr, out.stderr
    status = run([*PAPER, "status", "--part", "ablation", "--ablations", "noise-0", "--seeds", "0"], repo)
    assert "failed" in status.stdout and "dvc repro` exit" in status.stdout, status.stdout
    assert "/proc/lad-nowhere" in status.stdout  # why: the error line of its log, not DVC's last word


def test_a_slurm_array_requeued_mid_training_gives_the_serial_table(serial, tmp_path):
    if why := missing():
        pytest.skip(why)
    cluster, server = Cluster(tmp_path / "slurm").start(), MlflowServer(tmp_path / "mlflow")
    server.start()
    try:
        repo = copy_repo(tmp_path / "repo", PARAMS)
        env = {**cluster.env, "MLFLOW_TRACKING_URI": server.uri, **GIT_ID}
        t0 = time.perf_counter()
        first = run([*PAPER, "run", *TABLE, "--launcher", "slurm", *ONE_THREAD, "--no-wait"], repo, env=env)
        assert "submitted job array" in first.stdout and "(4 tasks" in first.stdout, first.stdout
        tree = repo / ".paper" / "shards" / REQUEUED
        checkpoint = tree / "checkpoints" / "seed0" / "teacher" / "checkpoint.pt"
        deadline = time.time() + 600
        while not checkpoint.exists():  # the teacher is training: requeue its task now
            assert time.time() < deadline and cluster.jobs(), \
                f"no teacher checkpoint, and {len(cluster.jobs())} jobs left; {cluster.root}/slurmd.log:\n" + \
                (cluster.root / "slurmd.log").read_text()[-3000:]
            time.sleep(0.05)
        job = json.loads((repo / ".paper" / "submitted" / f"{REQUEUED}.json").read_text())["job"]
        cluster.command("scontrol", "requeue", job)
        status = run([*PAPER, "status", *TABLE], repo, env=env)
        assert REQUEUED in status.stdout
        second = run([*PAPER, "run", *TABLE, "--launcher", "slurm", *ONE_THREAD, "--commit"], repo, env=env)
        print(f"4 shards on Slurm, one requeued: {time.perf_counter() - t0:.0f} s\n{second.stdout}")
        assert "submitting 0" in second.stdout, second.stdout  # all four in flight: none submitted twice
        assert numbers(repo) == serial
        requeued = meta(repo, REQUEUED)
        assert requeued["restarts"] >= 1 and requeued["launcher"] == "slurm" and requeued["threads"] == 1
        teacher = json.loads((repo / "reports/paper/protocol" / REQUEUED / "reports/train/seed0/teacher.json")
                             .read_text())
        assert teacher["resumed_from"], teacher  # from its last checkpoint, and the same numbers as without
        final = run([*PAPER, "status", *TABLE], repo, env=env)
        assert final.stdout.rstrip().endswith("4 shards: 4 done"), final.stdout
    finally:
        cluster.stop()
        server.stop()


def test_a_recipes_table_is_estimated_and_asked_for_before_anything_is_submitted(tmp_path):
    """--recipe, --seeds and --parts make a recipe's table one command; its GPU hours are printed and asked for,
    and a shard that trains on CUDA without a GPU per task is refused before any submission."""
    repo = copy_repo(tmp_path / "repo", PARAMS)
    table = [*PAPER, "run", "--recipe", "voc_deeplabv3_r18", "--seeds", "0", "2", "3", "--parts", "main", "compare",
             "--launcher", "slurm"]
    asked = run([*table, "--gpus", "1"], repo, check=False)  # stdin is no terminal: asked, not answered
    assert asked.returncode == 1 and "add --yes" in asked.stderr, asked.stderr
    assert "GPU hours for 9 shards" in asked.stdout, asked.stdout  # paper, paper-warm, paper-compare x 3 seeds
    no_gpu = run([*table, "--yes"], repo, check=False)
    assert no_gpu.returncode == 1 and "--gpus: paper@seeds0 trains on CUDA" in no_gpu.stderr, no_gpu.stderr
    assert not (repo / ".paper" / "manifests").exists()  # nothing submitted
    listing = run([*PAPER, "list", "--recipe", "voc_deeplabv3_r18", "--seeds", "0", "--parts", "main"], repo)
    assert "-S train.crop_size=512" in listing.stdout and "2 shards: 0 current, 0 stale, 2 missing" in listing.stdout
