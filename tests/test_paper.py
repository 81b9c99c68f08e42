"""The paper's table end to end, as a team builds it (docs/scale.md): clone A runs the default and pushes to a
DVC remote; clone B pulls, trains nothing, and runs its share of docs/protocol.md's table (seed 2's main rows);
A runs seed 0's main and comparison parts, resumes without training, merges B's share and writes the table.
One MLflow server holds both clones' runs. The networks differ from the default's: an STDC1 student, an OCRNet
LAD teacher and a PSPNet conventional teacher. The statistics and the wording are tests/test_report.py's and
tests/test_statistics.py's; the plan and when a shard is current tests/test_protocol.py's."""

from __future__ import annotations

import time

import pytest

from pipeline import documents
from pipeline.experiments import TABLE_METHODS, protocol
from pipeline.readme import block, markers
from pipeline.results import load_collected
from pipeline.statistics import Comparison, paired
from pipeline.words.format import method_title
from pipeline.words.questions import sentence, summary_table
from tests.conftest import MlflowServer, copy_repo, run, tiny_params

pytestmark = pytest.mark.e2e
GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
STDC = {"arch": "stdc", "backbone": "stdc1", "output_stride": 32, "channels": [], "stem_width": 0}
# the controls and no latency loops as the table runs them: seed 0's main rows all come from the default run
PARAMS = tiny_params(compare={"methods": sorted(TABLE_METHODS)}, controls={"enabled": True},
                     evaluate={"latency_reps": 0},
                     model={"student": STDC, "teacher": {"arch": "ocrnet"}, "conventional_teacher": {"arch": "pspnet"}})
PAPER = ["python", "-m", "commands.paper"]
SEED0 = [*PAPER, "run", "--part", "main", "compare", "--seeds", "0", "--commit"]  # clone A's share


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
    """Clone A trains and pushes; clone B pulls, reruns and runs seed 2; A runs seed 0, merges, tabulates."""
    env = {"MLFLOW_TRACKING_URI": server.uri}
    a, b, times, t0 = copy_repo(root / "a", PARAMS), root / "b", {}, time.perf_counter()
    run(["dvc", "remote", "add", "-d", "shared", str(root / "remote")], a)
    run(["dvc", "repro"], a, env={**env, "PIPELINE_RUN_ID": "clone-a"})
    run(["dvc", "push", "--run-cache"], a)
    run(["git", "add", "-A"], a)  # dvc.lock, the remote, and the outputs kept in git (reports/: cache: false)
    run([*GIT, "commit", "-qm", "trained on clone a"], a)
    for artifact in ("lad-student", "lad-student-onnx"):  # a version of each (GTO's tag format)
        run([*GIT, "tag", "-a", f"{artifact}@v0.1.0", "-m", "the default run's LAD student"], a)
    fetched = root / "fetched"  # an empty folder, no repository: the artifacts from clone a and its remote
    fetched.mkdir()
    run(["dvc", "artifacts", "get", str(a), "lad-student", "-o", "student.pt"], fetched)
    run(["dvc", "artifacts", "get", str(a), "lad-student-onnx", "--rev", "v0.1.0"], fetched)
    times["a: dvc repro + push"], t0 = time.perf_counter() - t0, time.perf_counter()
    run(["git", "clone", "-q", str(a), str(b)], root)
    run(["dvc", "pull"], b)
    repro_b = run(["dvc", "repro"], b, env={**env, "PIPELINE_RUN_ID": "clone-b"})
    times["b: clone + dvc pull + dvc repro"], t0 = time.perf_counter() - t0, time.perf_counter()
    (b / "params.yaml").write_text((b / "params.yaml").read_text() + "\n")
    refused = run([*PAPER, "run"], b, check=False)  # the table runs from the committed params only
    run(["git", "checkout", "-q", "--", "params.yaml"], b)
    wrong = run([*PAPER, "run", "--experiments", "paper-typo"], b, check=False)
    run([*PAPER, "run", "--experiments", "paper", "--seeds", "2", "--commit"], b, env={**env, **GIT_ID})
    times["b: seed 2's main rows"], t0 = time.perf_counter() - t0, time.perf_counter()
    run(SEED0, a, env={**env, **GIT_ID})
    again = run(SEED0, a, env={**env, **GIT_ID})  # every shard collected at this code and params
    times["a: seed 0's main and comparison parts"], t0 = time.perf_counter() - t0, time.perf_counter()
    run(["git", "fetch", "-q", str(b), "HEAD"], a)
    run([*GIT, "merge", "-q", "--no-edit", "FETCH_HEAD"], a)
    readme = (a / "README.md").read_text()
    (a / "README.md").write_text(readme.replace(markers("paper-table")[0], ""))
    no_markers = run([*PAPER, "report"], a, check=False)  # checked before anything is written
    written_without_markers = (a / documents.PAPER_MD).exists()
    (a / "README.md").write_text(readme)
    report = run([*PAPER, "report"], a, env=env)
    times["a: merge + report"] = time.perf_counter() - t0
    print("two-clone timings (s):", {k: round(v, 1) for k, v in times.items()})
    return {"a": a, "b": b, "server": server, "repro_b": repro_b.stdout + repro_b.stderr, "refused": [refused, wrong],
            "again": again.stdout, "no_markers": no_markers, "written_without_markers": written_without_markers,
            "report": report.stdout}


def mlflow_runs(server: MlflowServer, **tags: str):
    import mlflow

    mlflow.set_tracking_uri(server.uri)
    df = mlflow.search_runs(experiment_names=["lad"], output_format="pandas")
    for k, v in tags.items():
        df = df[df[f"tags.{k}"] == v]
    return df


def logged(clones: dict, pipeline: str) -> set[str]:
    """The stages that ran (and logged) in DVC experiment ``pipeline``, on either clone."""
    df = mlflow_runs(clones["server"], dvc_exp_name=pipeline)
    return set(df[df["tags.lad.role"] == "stage"]["tags.stage"])


def test_the_student_is_a_dvc_artifact_fetched_into_an_empty_folder(clones, tmp_path):
    fetched = clones["a"].parent / "fetched"
    assert (fetched / "student.pt").read_bytes() == (clones["a"] / "models/seed0/student.pt").read_bytes()
    onnx = clones["a"] / "models/seed0/onnx/lad_student.onnx"
    assert (fetched / "lad_student.onnx").read_bytes() == onnx.read_bytes()
    listed = run(["dvc", "artifacts", "get", str(clones["a"]), "lad-student", "--show-url"], tmp_path).stdout
    assert str(clones["a"].parent / "remote") in listed  # from the DVC remote, not the clone's cache
    proc = run(["lad-predict", str(next((clones["a"] / "data/prepared/synthetic/JPEGImages").iterdir())), "--model",
                str(fetched / "student.pt"), "--out", "masks"], tmp_path)
    assert "masks and overlays" in proc.stdout


def test_the_second_clone_trains_nothing_and_predicts(clones, tmp_path):
    assert "Running stage" not in clones["repro_b"] and "up to date" in clones["repro_b"]
    image = next((clones["b"] / "data/prepared/synthetic/JPEGImages").iterdir())  # pulled from the remote
    run(["lad-predict", str(image), "--out", "masks", "--tracking-uri", clones["server"].uri], tmp_path)  # @candidate
    assert (tmp_path / "masks" / f"{image.stem}.png").is_file()


def test_both_clones_runs_are_in_one_experiment(clones):
    stages = set(mlflow_runs(clones["server"])["tags.stage"].dropna())
    assert {"train_baseline@0", "evaluate@0", "report"} <= stages  # clone a's pipeline
    assert {"train_baseline@2", "train_teacher@2", "distill@2", "evaluate@2"} <= stages  # clone b's share
    assert "clone-a" in set(mlflow_runs(clones["server"])["tags.lad.pipeline_id"])
    assert "paper_table" in stages  # the table and its figure, logged by `report`


def test_each_shard_reruns_only_what_it_changes_is_committed_and_resumes(clones):
    a, b = clones["a"], clones["b"]
    refused, wrong = clones["refused"]
    assert refused.returncode == 1 and "params.yaml, dvc.yaml or dvc.lock has uncommitted changes" in refused.stderr
    assert wrong.returncode == 1 and "--experiments: ['paper-typo'] not in the plan" in wrong.stderr
    main = logged(clones, "paper")  # seed 0's rows are the default run's: b's seed 2 alone trained
    assert main == {"train_baseline@2", "train_teacher@2", "distill@2", "train_baseline_matched@2", "distill_label@2",
                    "evaluate@2", "report"}
    compare = logged(clones, "paper-compare")
    assert {"train_conventional_teacher@0", *{f"distill_compare@0-{m}" for m in TABLE_METHODS}} <= compare
    assert not {s for s in compare if s.startswith(("train_baseline@", "train_teacher", "distill@"))}
    warm = logged(clones, "paper-warm")
    assert {"distill@0", "train_baseline_ft@0"} <= warm
    assert not {s for s in warm if s.startswith(("train_baseline@", "train_teacher", "train_conv", "distill_compare"))}
    log = run(["git", "log", "--format=%s"], a).stdout
    for folder in ("paper@seeds0", "paper-compare@seeds0", "paper-warm@seeds0", "paper@seeds2"):
        assert f"paper table: {folder} collected" in log, folder  # b's through the merge
    for repo in (a, b):
        assert not run(["git", "status", "--porcelain", "params.yaml", "dvc.lock"], repo).stdout  # as committed
    assert clones["again"].count("collected and current") == 3
    assert "dvc exp run" not in clones["again"]


def test_the_table_comes_from_both_clones_shares(clones):
    a = clones["a"]
    assert clones["no_markers"].returncode == 1 and "markers" in clones["no_markers"].stderr
    assert not clones["written_without_markers"]
    runs = load_collected(a / protocol.RUNS)
    main = runs["paper"]
    assert main.seeds == [0, 2] and len(main.meta["shards"]) == 2 and main.cpu(0) == main.cpu(2)
    # one shard, one MLflow parent run (commands.paper names each shard's invocation), named after the experiment;
    # seed 0's shard trained nothing (its rows are the default run's, from the run cache): no stage, no parent
    assert main.parent_run(0) is None and main.parent_run(2) is not None
    parent = mlflow_runs(clones["server"]).set_index("run_id").loc[main.parent_run(2)]
    assert parent["tags.mlflow.runName"] == "paper" and parent["tags.dvc_exp_name"] == "paper"
    assert len({r["mlflow_run_id"] for r in main.eval["baseline"]}) == 2
    text = (a / documents.PAPER_MD).read_text()
    assert "## What the intervals allow" in clones["report"]  # printed as written
    assert "| LAD student from scratch | `paper` | 0, 2 |" in text and "| KD student | `paper-compare` | 0 |" in text
    lad = paired(runs, Comparison(("paper", "lad_student"), ("paper", "baseline"), "the LAD student",
                                  "the baseline (equal student steps)"))
    assert lad.seeds == [0, 2] and sentence(lad) in text
    assert (a / documents.COMPUTE_PNG).read_bytes()[:4] == b"\x89PNG"
    assert block((a / "README.md").read_text(), "paper-table") == summary_table(documents.paper_found(runs))
    timing = text.split("## Wall time per part")[1]
    assert "| main | `paper`, `paper-warm` | 3 |" in timing and "| compare | `paper-compare` | 1 |" in timing


def test_every_comparison_method_trains_and_is_a_row(clones):
    compare = load_collected(clones["a"] / protocol.RUNS)["paper-compare"]
    for name in ["conventional_teacher"] + [f"distill_{m}" for m in TABLE_METHODS]:
        for r in compare.eval[name]:
            assert 0 <= r["miou"] <= 100 and r["iterations"] == 4 and r["params_m"] > 0 and r["gflops"] > 0, name
    assert (compare.first("distill_cirkd")["arch"], compare.first("distill_cirkd")["backbone"]) == ("stdc", "stdc1")
    assert compare.first("conventional_teacher")["arch"] == "pspnet"
    assert compare.first("teacher_fixed")["arch"] == "ocrnet"
    text = (clones["a"] / documents.PAPER_MD).read_text()
    for m in TABLE_METHODS:
        assert f"| {method_title(m)} student | `paper-compare` | 0 |" in text, m
        assert f"the {method_title(m)} student" in text.split("## What the intervals allow")[1], m
    df = mlflow_runs(clones["server"], dvc_exp_name="paper-compare")
    cirkd = df[df["tags.stage"] == "distill_compare@0-cirkd"].iloc[0]
    assert cirkd["params.compare.methods"] == str(list(TABLE_METHODS))  # the protocol's order
    for term in ("kd", "pair", "memory_pixel", "memory_region", "ce", "aux"):  # every loss term, logged
        assert cirkd[f"metrics.train_{term}"] >= 0, term
    assert df[df["tags.stage"] == "distill_compare@0-cwd"].iloc[0]["metrics.train_cwd_features"] >= 0


def test_every_number_names_its_mlflow_runs(clones):
    main = load_collected(clones["a"] / protocol.RUNS)["paper"]
    by_id = mlflow_runs(clones["server"]).set_index("run_id")
    teacher_run = main.train["teacher"][main.seeds.index(2)]["mlflow_run_id"]
    assert by_id.loc[teacher_run, "tags.stage"] == "train_teacher@2"
    evaluate_run = main.eval["lad_student"][main.seeds.index(0)]["mlflow_run_id"]
    assert by_id.loc[evaluate_run, "tags.stage"] == "evaluate@0"
    parent = by_id.loc[main.parent_run(2)]
    assert parent["tags.lad.role"] == "pipeline" and parent["tags.dvc_exp_name"] == "paper"
    assert parent["metrics.lad_student_miou"] >= 0  # the headline, beside the other experiments' in the UI
    sources = (clones["a"] / documents.PAPER_MD).read_text().split("## Sources")[1]
    assert teacher_run in sources and evaluate_run in sources and main.parent_run(2) in sources
