"""The comparison table end to end: `dvc repro` with compare.enabled on a shrunk repository copy.

An STDC1 student, an OCRNet LAD teacher (another architecture than the student) and a PSPNet
conventional teacher; every registered method distils from the latter.
"""

import json

import pytest

from pipeline.methods import METHODS
from pipeline.report import method_title
from tests.conftest import copy_repo, run, runs, tiny_params

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def compare_repo(tmp_path_factory):
    stdc = {"arch": "stdc", "backbone": "stdc1", "output_stride": 32, "channels": [], "stem_width": 0}
    params = tiny_params(compare={"enabled": True, "methods": sorted(METHODS)},
                         model={"student": stdc, "teacher": {"arch": "ocrnet"},
                                "conventional_teacher": {"arch": "pspnet"}})
    repo = copy_repo(tmp_path_factory.mktemp("compare"), params)
    proc = run(["dvc", "repro"], repo, env={"PIPELINE_RUN_ID": "compare"})
    (repo / "repro.log").write_text(proc.stdout + proc.stderr)
    return repo


def test_every_method_trains_and_evaluates(compare_repo):
    metrics = json.loads((compare_repo / "reports/metrics.json").read_text())
    rows = {"conventional_teacher"} | {f"distill_{m}" for m in METHODS}
    assert rows <= set(metrics)
    for name in rows:
        assert 0 <= metrics[name]["miou"] <= 100 and 0 <= metrics[name]["pixel_acc"] <= 100, name
        res = json.loads((compare_repo / f"reports/eval/seed0/{name}.json").read_text())
        assert res["iterations"] == 4 and res["params_m"] > 0 and res["gflops"] > 0, name
    res = json.loads((compare_repo / "reports/eval/seed0/distill_cirkd.json").read_text())
    assert (res["arch"], res["backbone"]) == ("stdc", "stdc1")
    assert json.loads((compare_repo / "reports/eval/seed0/conventional_teacher.json").read_text())["arch"] == "pspnet"
    assert json.loads((compare_repo / "reports/eval/seed0/teacher_fixed.json").read_text())["arch"] == "ocrnet"
    curve = (compare_repo / "reports/curves/seed0/distill_cirkd_train.tsv").read_text().splitlines()[0].split("\t")
    assert {"kd", "pair", "memory_pixel", "memory_region", "ce", "aux"} <= set(curve)
    assert "cwd_features" in (compare_repo / "reports/curves/seed0/distill_cwd_train.tsv").read_text()


def test_report_lists_every_row(compare_repo):
    report = (compare_repo / "reports/report.md").read_text()
    students = report.split("## Students")[1].split("## Teachers")[0]
    table = [line for line in students.splitlines() if line.startswith("| ") and "---" not in line][1:]
    methods = [line.split(" | ")[2] for line in table]
    assert methods == ["Baseline"] + [method_title(m) for m in sorted(METHODS)] + ["LAD (init: scratch)"]
    for line in table[1:-1]:
        assert line.startswith("| PSPNet-resnet34d (widths 32/64/128/256) | STDC-stdc1 |")
    assert table[-1].startswith("| OCRNet-resnet18d (widths 16/32/64/128) + label (LAD) | STDC-stdc1 | LAD")
    teachers = report.split("## Teachers")[1]
    assert "| PSPNet-resnet34d (widths 32/64/128/256) | image only (conventional teacher) |" in teachers
    assert "CIRKD (w_kd=1, kd_temperature=1, w_pair=1, w_memory_pixel=0.1" in report


def test_mlflow_has_a_run_per_method(compare_repo):
    df = runs(compare_repo, **{"lad.pipeline_id": "compare"})
    stages = set(df[df["tags.lad.role"] == "stage"]["tags.stage"])
    assert {f"distill_compare@0-{m}" for m in METHODS} | {"train_conventional_teacher@0"} <= stages
    cirkd = df[df["tags.stage"] == "distill_compare@0-cirkd"].iloc[0]
    assert cirkd["params.compare.methods"] == str(sorted(METHODS)) and cirkd["metrics.train_memory_pixel"] >= 0
