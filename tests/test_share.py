"""Two clones on one DVC remote and one MLflow server, as a team shares work (docs/scale.md): the second
clone trains nothing the first pushed, predicts with the student the first registered, and runs its share
of the paper table (another seed), which the first tabulates with its own share."""

from __future__ import annotations

import time

import pytest

from pipeline.paper import RUNS
from pipeline.results import load_collected
from tests.conftest import MlflowServer, copy_repo, run, tiny_params

pytestmark = pytest.mark.e2e
GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]


@pytest.fixture(scope="module")
def clones(tmp_path_factory):
    root = tmp_path_factory.mktemp("share")
    server = MlflowServer(root)
    server.start()
    try:  # the server stops even when a step below fails
        yield share(root, server)
    finally:
        server.stop()


def share(root, server) -> dict:
    """Clone A trains and pushes; clone B pulls and reruns; each runs one seed of the table; A tabulates."""
    env = {"MLFLOW_TRACKING_URI": server.uri}
    a = copy_repo(root / "a", tiny_params())
    times = {}
    t0 = time.perf_counter()
    run(["dvc", "remote", "add", "-d", "shared", str(root / "remote")], a)
    run(["dvc", "repro"], a, env={**env, "PIPELINE_RUN_ID": "clone-a"})
    run(["dvc", "push", "--run-cache"], a)
    run(["git", "add", "-A"], a)  # dvc.lock, the remote, and the outputs kept in git (reports/: cache: false)
    run([*GIT, "commit", "-qm", "trained on clone a"], a)
    times["a: dvc repro + push"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(["git", "clone", "-q", str(a), str(root / "b")], root)
    b = root / "b"
    run(["dvc", "pull"], b)
    repro_b = run(["dvc", "repro"], b, env={**env, "PIPELINE_RUN_ID": "clone-b"})
    times["b: clone + dvc pull + dvc repro"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    # the paper table split over the clones: seed 0's experiment on a, seed 1's on b
    paper = ["python", "-m", "stages.paper", "run", "--part", "ablation", "--ablations", "--ablation-seeds"]
    run([*paper, "1"], b, env=env)
    run(["git", "add", str(RUNS)], b)
    run([*GIT, "commit", "-qm", "seed 1 of the table"], b)
    run([*paper, "0"], a, env=env)
    run(["git", "fetch", "-q", str(b), "HEAD"], a)
    run(["git", "merge", "-q", "--ff-only", "FETCH_HEAD"], a)
    run(["python", "-m", "stages.paper", "report"], a)
    times["the table: b's seed, a's seed, a's report"] = time.perf_counter() - t0
    print("two-clone timings (s):", {k: round(v, 1) for k, v in times.items()})
    return {"a": a, "b": b, "server": server, "repro_b": repro_b.stdout + repro_b.stderr}


def test_the_second_clone_trains_nothing_and_predicts(clones, tmp_path):
    assert "Running stage" not in clones["repro_b"] and "up to date" in clones["repro_b"]
    image = next((clones["b"] / "data/prepared/synthetic/JPEGImages").iterdir())  # pulled from the remote
    run(["lad-predict", str(image), "--out", "masks", "--tracking-uri", clones["server"].uri], tmp_path)  # @candidate
    assert (tmp_path / "masks" / f"{image.stem}.png").is_file()


def test_both_clones_runs_are_in_one_experiment(clones):
    import mlflow

    mlflow.set_tracking_uri(clones["server"].uri)
    df = mlflow.search_runs(experiment_names=["lad"], output_format="pandas")
    stages = set(df["tags.stage"].dropna())
    assert {"train_baseline@0", "evaluate@0", "report"} <= stages  # clone a's pipeline
    assert {"train_baseline@1", "train_teacher@1", "distill@1", "evaluate@1"} <= stages  # clone b's share
    assert "clone-a" in set(df["tags.lad.pipeline_id"])


def test_the_table_is_written_from_both_clones_shares(clones):
    a = clones["a"]
    assert sorted(p.name for p in (a / RUNS).iterdir()) == ["paper-abl-reference", "paper-abl-reference@seeds1"]
    ref = load_collected(a / RUNS)["paper-abl-reference"]
    assert ref.seeds == [0, 1] and len(ref.meta["shards"]) == 2 and len(ref.miou("lad_student")) == 2
    # one experiment, one MLflow parent run (found on the server by the experiment's name), both seeds under it
    assert ref.cfg.seeds == [0, 1] and ref.parent_run(0) == ref.parent_run(1) is not None
    evaluate_runs = {r["mlflow_run_id"] for r in ref.eval["baseline"]}
    assert len(evaluate_runs) == 2
    assert "| reference | params.yaml as committed |" in (a / "reports/ablations.md").read_text()
