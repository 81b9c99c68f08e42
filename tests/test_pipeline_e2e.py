"""The real `dvc repro` on a shrunk copy of the repository: outputs, MLflow runs, no-op, variations.
(A second seed, the warm start and the comparison rows: tests/test_paper.py, on its own copy.)

The tests share one repository copy and run in file order (each builds on the previous state).
"""

import json
import os
import re

import numpy as np
import pytest
import yaml

from stages.prepare import files_digest
from tests.conftest import assert_same_weights, run, runs, weights

pytestmark = pytest.mark.e2e

STAGES = {"prepare", "train_baseline@0", "train_teacher@0", "distill@0", "evaluate@0", "report"}  # that ran code
SKIPPED = {"train_baseline_ft@0", "train_conventional_teacher@0", "distill_compare@0-kd", "distill_compare@0-cwd",
           "distill_compare@0-cirkd"}  # off by default: a note of why, no MLflow run
MODELS = {"baseline", "lad_student", "teacher_random", "teacher_fixed", "teacher_zero"}


def test_outputs(tiny_repo):
    metrics = json.loads((tiny_repo / "reports/metrics.json").read_text())
    headline = metrics.pop("headline_miou")  # first: the first columns of `dvc exp show`
    assert headline == {"lad_student": metrics["lad_student"]["miou"], "baseline": metrics["baseline"]["miou"],
                        "teacher": metrics["teacher_fixed"]["miou"]}
    assert set(metrics) == MODELS  # baseline_ft only with distill.init: baseline
    for name, m in metrics.items():
        assert 0 <= m["miou"] <= 100 and 0 <= m["pixel_acc"] <= 100, name
    res = json.loads((tiny_repo / "reports/eval/seed0/teacher_fixed.json").read_text())
    assert len(res["per_class_iou"]) == 6 and 0.5 < res["params_m"] < 2 and res["gflops"] > 0  # quarter-width R18-D
    assert res["label_channel"] == "fixed" and res["iterations"] == 4
    report = (tiny_repo / "reports/report.md").read_text()
    assert "| Teacher | Student | Row | mIoU" in report and "all-zero label channel" in report
    assert "compare.enabled: false" in report and "reports/paper.md" in report  # the ablations: outside the DAG
    for fig in ("training_curves", "per_class_iou", "examples"):
        data = (tiny_repo / f"reports/figures/{fig}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, fig
    curve = (tiny_repo / "reports/curves/seed0/teacher_train.tsv").read_text().splitlines()
    assert curve[0].split("\t")[:3] == ["step", "lr", "loss"] and "cons" in curve[0] and len(curve) == 5  # every step
    header = (tiny_repo / "reports/curves/seed0/student_val.tsv").read_text().splitlines()[0]
    assert header == "step\tval_miou\tval_pixel_acc"
    index = json.loads((tiny_repo / "data/prepared/index.json").read_text())  # the later stages' data dependency
    assert index["files_md5"] == files_digest(tiny_repo / "data/prepared/synthetic")
    train = json.loads((tiny_repo / "reports/train/seed0/student.json").read_text())
    assert train["iters"] == 4 and train["resumed_from"] is None and train["effective_batch"] == 2
    assert not list((tiny_repo / "checkpoints/seed0").glob("*/checkpoint.pt"))  # completed: nothing to resume
    assert json.loads((tiny_repo / "checkpoints/seed0/student/status.json").read_text())["complete"] is True
    data = json.loads((tiny_repo / "data/prepared/stats.json").read_text())
    assert data["train"]["images"] == 16 and data["train"]["skipped"] == 0
    assert abs(sum(data["val"]["class_frequency"].values()) - 1) < 1e-6
    log = (tiny_repo / "first_repro.log").read_text()
    assert "Running stage 'report'" in log and log.index("Running stage 'check'") < log.index("Running stage 'prep")
    for noise in ("INFO mlflow", "Creating initial MLflow database", "alembic", "UserWarning", "Downloading artif"):
        assert noise not in log, noise  # MLflow's own lines stay off stderr unless something fails


def test_latency_and_onnx_in_the_evaluation_and_report(tiny_repo):
    for name in ("baseline", "lad_student"):  # the students: timed, exported, checked by onnxruntime
        res = json.loads((tiny_repo / f"reports/eval/seed0/{name}.json").read_text())
        lat, onnx = res["latency"], res["onnx"]
        assert 0 < lat["median_ms"] <= lat["p90_ms"] and lat["device"] == "cpu" and lat["threads"] >= 1
        assert lat["input"] == [1, 3, 32, 32] and lat["reps"] == 3 and lat["dtype"] == "float32"
        assert onnx["max_abs_diff"] < 1e-3 and onnx["ort_median_ms"] > 0 and onnx["images"] == 2
        assert (tiny_repo / f"models/seed0/onnx/{name}.onnx").stat().st_size > 100_000
    teacher = json.loads((tiny_repo / "reports/eval/seed0/teacher_fixed.json").read_text())
    assert teacher["latency"]["input"] == [1, 4, 32, 32] and "onnx" not in teacher  # image + label channel
    report = (tiny_repo / "reports/report.md").read_text()
    assert "| latency ms | ONNX max abs diff | ONNX ms |" in report and "Latency: one 32x32 image (batch 1)" in report
    log = (tiny_repo / "first_repro.log").read_text()  # not a terminal: plain lines, no progress bars
    assert "teacher 2/4: loss" in log and "teacher 4/4: loss" in log and "it/s]" not in log


def test_the_student_is_registered_and_predicts_from_another_folder(tiny_repo, tmp_path):
    """``models:/lad-student@candidate``, the checkpoint and the ONNX file each carry what prediction needs:
    ``lad-predict`` runs from a folder with no params.yaml or data/, and the three give the same masks."""
    import mlflow
    from mlflow import MlflowClient
    from PIL import Image

    from pipeline.deploy import KEY

    uri = f"sqlite:///{tiny_repo / '.mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri)
    versions = client.search_model_versions("name = 'lad-student'")
    assert len(versions) == 1  # one pipeline run so far
    tags = versions[0].tags
    metrics = json.loads((tiny_repo / "reports/metrics.json").read_text())
    assert tags["git_commit"] and float(tags["miou"]) == pytest.approx(metrics["lad_student"]["miou"], abs=1e-3)
    assert len(tags["weights_sha256"]) == 64 and client.get_model_version_by_alias("lad-student", "candidate")
    student = json.loads((tiny_repo / "reports/train/seed0/student.json").read_text())["mlflow_run_id"]
    logged = client.get_logged_model(versions[0].source.removeprefix("models:/"))  # the distillation's LoggedModel
    assert logged.source_run_id == student and logged.tags["weights_sha256"] == tags["weights_sha256"]
    described = versions[0].description
    assert "Label Assisted Distillation" in described and "Trained on synthetic (16 training images, 6 classes)" \
        in described and f"mIoU {metrics['lad_student']['miou']:.2f}" in described
    assert client.get_registered_model("lad-student").description == described.split("\n\n")[0]
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info("models:/lad-student@candidate")
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 3, -1, -1)
    assert json.loads(info.metadata[KEY])["classes"] == json.loads((tiny_repo / "data/prepared/index.json")
                                                                   .read_text())["classes"]
    images = tiny_repo / "data/prepared/synthetic/JPEGImages"
    sources = {"mlflow": "models:/lad-student@candidate", "pt": str(tiny_repo / "models/seed0/student.pt"),
               "onnx": str(tiny_repo / "models/seed0/onnx/lad_student.onnx")}
    for kind, model in sources.items():
        proc = run(["lad-predict", str(images), "--model", model, "--out", kind, "--tracking-uri", uri], tmp_path)
        assert "masks and overlays" in proc.stdout, proc.stderr
    nowhere = run(["lad-predict", str(images), "--out", "masks"], tmp_path, check=False)  # no store to look in
    assert nowhere.returncode == 1 and "no MLflow store" in nowhere.stderr and "Traceback" not in nowhere.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(sources)  # no mlflow.db, no masks/
    palette = {tuple(c) for c in json.loads((tiny_repo / "data/prepared/index.json").read_text())["palette"]}
    names = sorted(p.stem for p in images.iterdir())[:5]
    for name in names:
        masks = {k: np.asarray(Image.open(tmp_path / k / f"{name}.png")) for k in sources}
        assert (masks["mlflow"] == masks["pt"]).all() and (masks["onnx"] == masks["pt"]).mean() > 0.999
        rgb = np.asarray(Image.open(tmp_path / "pt" / f"{name}.png").convert("RGB"))
        colours = {tuple(int(v) for v in c) for c in rgb.reshape(-1, 3)}
        assert colours <= palette


def test_mlflow_parent_and_child_runs(tiny_repo):
    """One `dvc repro` whose stages ran in the stage server (as `make run`'s), no id variable set: one parent run,
    named after what launched it, every stage that ran code its child."""
    df = runs(tiny_repo)
    parents = df[df["tags.lad.role"] == "pipeline"]
    children = df[df["tags.lad.role"] == "stage"]
    assert len(parents) == 1 and set(children["tags.stage"]) == STAGES and len(children) == len(STAGES)
    parent = parents.iloc[0]
    assert parent["tags.lad.invocation"] == "dvc repro" and parent["tags.mlflow.runName"].startswith("dvc repro @ ")
    assert not isinstance(parent.get("tags.dvc_exp_name"), str)  # no experiment: no empty tag either
    if os.environ.get("LAD_STAGE_SERVER"):  # under `make test`: the stages ran forked from its server
        assert "no stage server" not in (tiny_repo / "first_repro.log").read_text()
    for stage in SKIPPED:  # what a skipped stage leaves: the note, empty curves, a summary saying why
        role = {"train_baseline_ft@0": "baseline_ft", "train_conventional_teacher@0": "conventional_teacher"}.get(
            stage, f"distill_{stage.rsplit('-', 1)[-1]}")
        assert json.loads((tiny_repo / f"reports/train/seed0/{role}.json").read_text())["skipped"] is True
    parent_id = parents["run_id"].iloc[0]
    assert (children["tags.mlflow.parentRunId"] == parent_id).all()
    assert (children["status"] == "FINISHED").all()
    assert children["tags.git_commit"].str.len().eq(40).all() and children["tags.params_hash"].notna().all()
    teacher = children[children["tags.stage"] == "train_teacher@0"].iloc[0]
    assert teacher["params.lad.noise_std"] == "0.03" and teacher["params.train.iters"] == "4"
    assert parents["metrics.lad_student_miou"].notna().all()

    import mlflow

    client = mlflow.MlflowClient()
    history = client.get_metric_history(teacher["run_id"], "train_loss")
    assert [m.step for m in history] == [2, 4]
    assert {"report.md", "figures"} <= {a.path for a in client.list_artifacts(parent_id)}
    model_uri = children[children["tags.stage"] == "distill@0"]["tags.model_uri"].iloc[0]
    assert model_uri.startswith("models:/m-")
    code = ("import mlflow, numpy as np, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "m = mlflow.pyfunc.load_model(sys.argv[2]); print(m.predict(np.zeros((1, 3, 32, 40), np.float32)).shape)")
    proc = run(["python", "-c", code, mlflow.get_tracking_uri(), model_uri], tiny_repo,
               env={"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"})  # a fresh process, pickle refused
    assert proc.stdout.strip().endswith("(1, 6, 32, 40)")  # image -> logits at its size


def test_every_network_is_a_logged_model_with_its_metrics_data_and_system_use(tiny_repo):
    import mlflow

    df = runs(tiny_repo)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name("lad").experiment_id
    models = {m.name: m for m in client.search_logged_models([exp])}
    assert set(models) == {"baseline", "teacher", "student"}  # every trained network; the report logs none more
    train = json.loads((tiny_repo / "reports/train/seed0/student.json").read_text())
    student = models["student"]
    assert str(student.status).endswith("READY") and student.source_run_id == train["mlflow_run_id"]
    linked = {m.key: m for m in student.metrics}
    assert linked["val_miou"].value == pytest.approx(train["val_miou"]) and linked["val_miou"].step == 4
    assert linked["val_miou"].dataset_name == "synthetic-val" and student.tags["weights_sha256"]
    run = client.get_run(train["mlflow_run_id"])
    assert [o.model_id for o in run.outputs.model_outputs] == [student.model_id]
    for stage in ("prepare", "train_baseline@0", "distill@0", "evaluate@0"):  # the Dataset column
        row = df[df["tags.stage"] == stage].iloc[0]
        inputs = client.get_run(row["run_id"]).inputs.dataset_inputs
        names = {i.dataset.name: [t.value for t in i.tags] for i in inputs}
        assert names["synthetic-val"] == ["evaluation"] and (stage == "evaluate@0") != ("synthetic-train" in names)
        digest = {i.dataset.name: i.dataset.digest for i in inputs}["synthetic-val"]
        assert digest == linked["val_miou"].dataset_digest  # one digest of the prepared data everywhere
        if stage != "prepare":  # training and evaluation: CPU and memory use
            assert row["metrics.system/cpu_utilization_percentage"] >= 0, stage
            assert row["metrics.system/system_memory_usage_megabytes"] > 0, stage


def test_exp_show_leads_with_the_headline(tiny_repo):
    header = run(["dvc", "exp", "show", "--md", "--no-pager"], tiny_repo).stdout.splitlines()[0]
    columns = [c.strip() for c in header.strip("|").split("|")]
    first = columns.index("headline_miou.lad_student")
    assert columns[first:first + 3] == ["headline_miou.lad_student", "headline_miou.baseline", "headline_miou.teacher"]
    assert all(c in ("Experiment", "Created") for c in columns[:first])
    report = (tiny_repo / "reports/report.md").read_text()  # and the report says what the numbers show
    metrics = json.loads((tiny_repo / "reports/metrics.json").read_text())
    said = re.search(r"The LAD student − the baseline \(equal student steps\): ([+-][\d.]+) mIoU over 1 seed, "
                     r"higher on [01] of 1 \(one seed: no interval\)\.", report)
    assert float(said.group(1)) == pytest.approx(metrics["lad_student"]["miou"] - metrics["baseline"]["miou"], abs=0.01)


def test_second_repro_is_a_noop(tiny_repo):
    proc = run(["dvc", "repro"], tiny_repo)
    assert "Data and pipelines are up to date" in proc.stdout + proc.stderr


def stale(repo) -> set[str]:
    """The stages `dvc status` calls changed."""
    out = run(["dvc", "status"], repo).stdout
    return {line[:-1] for line in out.splitlines() if line and not line[0].isspace() and line.endswith(":")}


def test_operational_keys_rerun_nothing(tiny_repo):
    params = tiny_repo / "params.yaml"
    before = params.read_text()
    try:
        for key, value in (("log_interval", 1), ("ckpt_interval", 3), ("num_workers", 1), ("cache_images", False)):
            data = yaml.safe_load(params.read_text())
            data["run"][key] = value
            params.write_text(yaml.safe_dump(data, sort_keys=False))
            assert stale(tiny_repo) == set(), key
    finally:
        params.write_text(before)


def test_a_bad_value_is_refused_by_the_first_stage_and_a_good_one_leaves_the_data_alone(tiny_repo):
    """An unknown backbone stops `dvc repro` in `check`, before anything else runs; a valid model change makes
    `check` and the trained stages stale, not `prepare`."""
    params = tiny_repo / "params.yaml"
    before = params.read_text()
    try:
        data = yaml.safe_load(before)
        data["model"]["student"]["backbone"] = "resnet18x"
        params.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = run(["dvc", "repro"], tiny_repo, check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "error: model.student.backbone:" in out and "resnet18x" in out
        assert re.findall(r"Running stage '([^']+)'", out) == ["check"]
        data["model"]["student"]["backbone"] = "resnet18d"
        data["model"]["student"]["head_channels"] = 24
        params.write_text(yaml.safe_dump(data, sort_keys=False))
        changed = stale(tiny_repo)
        assert {"check", "train_baseline@0", "distill@0"} <= changed and "prepare" not in changed, changed
    finally:
        params.write_text(before)
    assert stale(tiny_repo) == set()


def test_editing_a_distillation_loss_leaves_the_data_and_the_baseline_alone(tiny_repo):
    losses = tiny_repo / "pipeline/losses.py"
    before = losses.read_text()
    try:
        losses.write_text(before.replace("def cwd(", "# an edit of CWD\ndef cwd(", 1))
        changed = stale(tiny_repo)
        assert {"train_teacher@0", "distill@0", "distill_compare@0-cwd"} <= changed
        assert not changed & {"prepare", "train_baseline@0", "train_baseline_ft@0", "evaluate@0", "report"}, changed
        report = tiny_repo / "pipeline/documents.py"
        losses.write_text(before)
        text = report.read_text()
        report.write_text(text + "\n# an edit of the report\n")
        assert stale(tiny_repo) == {"report"}
        report.write_text(text)
    finally:
        losses.write_text(before)


def test_variations_rerun_only_what_they_change(tiny_repo):
    proc = run(["dvc", "exp", "run", "-n", "noise-01", "-S", "lad.noise_std=0.1"], tiny_repo)
    out = proc.stdout + proc.stderr
    for stage in ("train_teacher@0", "distill@0", "evaluate@0", "report"):
        assert f"Running stage '{stage}'" in out, stage
    for stage in ("prepare", "train_baseline@0", "train_baseline_ft@0"):
        assert f"Running stage '{stage}'" not in out, stage
    table = run(["dvc", "exp", "show", "--md", "--no-pager"], tiny_repo).stdout
    assert "noise-01" in table and "0.1" in table
    df = runs(tiny_repo, dvc_exp_name="noise-01")
    stages = set(df[df["tags.lad.role"] == "stage"]["tags.stage"])
    assert stages == {"train_teacher@0", "distill@0", "evaluate@0", "report"}
    parents = df[df["tags.lad.role"] == "pipeline"]
    assert len(parents) == 1 and (parents["tags.mlflow.runName"] == "noise-01").all()
    assert (df[df["tags.lad.role"] == "stage"]["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]).all()


def stages_logged(repo, experiment: str) -> set[str]:
    """The stages that ran code (and so logged an MLflow run) in DVC experiment ``experiment``."""
    df = runs(repo, dvc_exp_name=experiment)
    return set(df[df["tags.lad.role"] == "stage"]["tags.stage"])


def test_a_value_run_before_is_restored_from_the_run_cache(tiny_repo):
    """Back to the first run's values: DVC restores the teacher and student from its run cache,
    without training (no MLflow run for them)."""
    proc = run(["dvc", "exp", "run", "-n", "back", "-S", "lad.noise_std=0.03", "-S", "distill.init=scratch"], tiny_repo)
    out = proc.stdout + proc.stderr
    for stage in ("train_teacher@0", "distill@0"):
        assert f"Stage '{stage}' is cached - skipping run" in out, stage
        assert f"Running stage '{stage}'" not in out, stage
    assert not {"train_teacher@0", "distill@0", "train_baseline@0"} & stages_logged(tiny_repo, "back")


def test_same_seed_same_weights_in_a_new_process(tiny_repo):
    """Also a plain `dvc repro` (no stage server, no id variable): its two stages under one new parent run."""
    path = tiny_repo / "models/seed0/baseline.pt"
    before, before_bytes = weights(path), path.read_bytes()
    parents = set(runs(tiny_repo).query("`tags.lad.role` == 'pipeline'")["run_id"])
    run(["dvc", "repro", "--force", "--single-item", "train_baseline@0", "evaluate@0"], tiny_repo,
        env={"LAD_STAGE_SERVER": "", "PIPELINE_RUN_ID": ""})
    assert_same_weights(before, weights(path))
    assert path.read_bytes() == before_bytes  # byte for byte, so DVC sees nothing new downstream
    df = runs(tiny_repo)
    new = df[(df["tags.lad.role"] == "pipeline") & ~df["run_id"].isin(parents)]
    assert len(new) == 1 and new["tags.lad.invocation"].iloc[0] == "dvc repro"
    children = df[df["tags.mlflow.parentRunId"] == new["run_id"].iloc[0]]
    assert set(children["tags.stage"]) == {"train_baseline@0", "evaluate@0"}


def test_a_queued_experiment_runs_only_what_it_changes(tiny_repo):
    """README's queue: a queued run executes in a copy under .dvc/tmp/exps/, where no model exists yet, and
    still trains only what its change touches: the rest comes from DVC's run cache. It logs to the project's
    store. The change: no distillation, and from scratch the student then differs from the baseline only by
    the distillation term, so it gives the baseline's weights (same seed, samples, auxiliary weight, schedule)."""
    with pytest.raises(AssertionError):  # distilled (the default), the student is another network
        assert_same_weights(weights(tiny_repo / "models/seed0/baseline.pt"),
                            weights(tiny_repo / "models/seed0/student.pt"))
    run(["dvc", "exp", "run", "--queue", "-n", "q-kd0", "-S", "distill.w_kd=0"], tiny_repo)
    run(["dvc", "exp", "run", "--run-all"], tiny_repo, env={"LAD_THREADS": "1"})
    assert "q-kd0" in run(["dvc", "exp", "show", "--md", "--no-pager"], tiny_repo).stdout
    ran = stages_logged(tiny_repo, "q-kd0")
    assert {"distill@0", "evaluate@0", "report"} <= ran, ran
    assert not {s for s in ran if s.startswith(("train_baseline", "train_teacher", "prepare"))}, ran
    queued = runs(tiny_repo, dvc_exp_name="q-kd0")
    assert (queued["status"] == "FINISHED").all() and (queued["tags.lad.role"] == "pipeline").sum() == 1
    run(["dvc", "exp", "apply", "q-kd0"], tiny_repo)
    assert_same_weights(weights(tiny_repo / "models/seed0/baseline.pt"), weights(tiny_repo / "models/seed0/student.pt"))
    run(["git", "checkout", "--", "params.yaml"], tiny_repo)  # the default again, for the tests after this one
