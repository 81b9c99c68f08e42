"""The paper's table: its plan, and `make paper`'s commands end to end on a shrunk repository copy: after the
default `dvc repro` (seed 0), the table's experiments on two seeds with every comparison method, and one
ablation. The networks differ from the default's: an STDC1 student, an OCRNet LAD teacher and a PSPNet
conventional teacher. The statistics and the wording are tests/test_report.py's."""

import json

import pytest

from pipeline.methods import METHODS
from pipeline.overlays import set_args
from pipeline.paper import plan
from pipeline.readme import markers, with_block
from pipeline.report import fmt_interval, method_title, paired_interval
from pipeline.results import Results
from tests.conftest import copy_repo, run, runs, tiny_params


def test_plan_and_readme_markers(tmp_path):
    exps = plan((0, 1), (0,), ["single-path"])
    assert [e.name for e in exps] == ["paper", "paper-warm", "paper-abl-reference", "paper-abl-single-path"]
    assert set_args(exps[1].sets) == ["-S", "seeds=[0,1]", "-S", "compare.enabled=true", "-S", "distill.init=baseline"]
    assert set_args(exps[3].sets) == ["-S", "seeds=[0]", "-S", "lad.dual_path=false"]
    # other seeds than the table's are a share of it (docs/scale.md): collected apart, merged when tabulated
    assert [e.folder for e in exps] == ["paper@seeds0-1", "paper-warm@seeds0-1", "paper-abl-reference",
                                        "paper-abl-single-path"]
    start, end = markers("paper-table")
    readme = f"intro\n{start}\nold\n{end}\nrest\n"
    assert with_block(readme, "paper-table", "| new |") == f"intro\n{start}\n| new |\n{end}\nrest\n"
    with pytest.raises(ValueError, match="markers"):
        with_block("no markers\n", "paper-table", "| new |")


STDC = {"arch": "stdc", "backbone": "stdc1", "output_stride": 32, "channels": [], "stem_width": 0}
PARAMS = tiny_params(compare={"methods": sorted(METHODS)},
                     model={"student": STDC, "teacher": {"arch": "ocrnet"}, "conventional_teacher": {"arch": "pspnet"}})
RUNS = "reports/paper/runs"
MAIN = f"{RUNS}/paper@seeds0-1"  # two of the table's three seeds: collected as a share of the table


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("paper"), PARAMS)
    run(["dvc", "repro"], repo, env={"PIPELINE_RUN_ID": "default"})  # the default first: seed 0, no comparison
    run(["git", "add", "dvc.lock"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "the default's lock"], repo)
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")
    refused = run(["python", "-m", "stages.paper", "run"], repo, check=False)
    assert refused.returncode == 1 and "params.yaml, dvc.yaml or dvc.lock has uncommitted changes" in refused.stderr
    run(["git", "checkout", "-q", "--", "params.yaml"], repo)
    args = ["--seeds", "0", "1", "--ablations"]  # no ablation but the reference: tests/test_report.py has the Δs
    proc = run(["python", "-m", "stages.paper", "run", *args], repo)
    (repo / "paper.log").write_text(proc.stdout + proc.stderr)
    readme = (repo / "README.md").read_text()
    (repo / "README.md").write_text(readme.replace(markers("paper-table")[0], ""))
    refused = run(["python", "-m", "stages.paper", "report"], repo, check=False)
    assert refused.returncode == 1 and "markers" in refused.stderr and not (repo / "reports/paper.md").exists()
    (repo / "README.md").write_text(readme)
    run(["python", "-m", "stages.paper", "report"], repo)
    return repo


e2e = pytest.mark.e2e


def logged(repo, name: str) -> set[str]:
    df = runs(repo, **{"lad.pipeline_id": name})
    return set(df[df["tags.lad.role"] == "stage"]["tags.stage"])


def students(text: str) -> list[str]:
    """The rows of the students' table of a report."""
    table = text.split("## Students")[1].split("## Teachers")[0]
    return [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]


@e2e
def test_each_experiment_reruns_only_what_it_changes(paper_repo):
    # params.yaml and dvc.lock as committed
    assert not run(["git", "status", "--porcelain", "params.yaml", "dvc.lock"], paper_repo).stdout
    main = logged(paper_repo, "paper")  # a second seed and the comparison rows: seed 0's LAD models are reused
    assert {"train_baseline@1", "train_teacher@1", "distill@1", "train_conventional_teacher@0",
            "distill_compare@1-cirkd", "evaluate@0", "evaluate@1", "report"} <= main
    assert not {"prepare", "train_baseline@0", "train_teacher@0", "distill@0"} & main
    warm = logged(paper_repo, "paper-warm")
    assert {"distill@0", "distill@1", "train_baseline_ft@0", "train_baseline_ft@1", "report"} <= warm
    assert not {s for s in warm if s.startswith(("train_baseline@", "train_teacher", "train_conv", "distill_compare"))}
    assert not {s for s in logged(paper_repo, "paper-abl-reference")
                if s.startswith(("train", "distill", "evaluate"))}  # the default run's seed 0, from the run cache
    assert "[3/3] paper-abl-reference" in (paper_repo / "paper.log").read_text()


@e2e
def test_the_table_comes_from_the_collected_runs(paper_repo):
    main = Results.collected(paper_repo / MAIN)
    assert main.seeds == [0, 1] and main.meta["sets"] == {"seeds": [0, 1], "compare.enabled": True}
    assert main.cfg.compare.enabled and (paper_repo / MAIN / "params.yaml").is_file()
    text = (paper_repo / "reports/paper.md").read_text()
    rows = {line.split(" | ")[2]: line for line in students(text)}
    assert {"Baseline", "KD", "CIRKD", "LAD (from scratch)", "LAD (warm start from the baseline)",
            "Baseline + 4 more iterations (equal-budget control)"} <= set(rows)
    lad, base = main.miou("lad_student"), main.miou("baseline")
    mean, half, _ = paired_interval(lad, base)
    assert fmt_interval(mean, half) in rows["LAD (from scratch)"]
    assert f"{sum(lad) / 2:.2f} ± " in rows["LAD (from scratch)"] and "`paper`" in rows["LAD (from scratch)"]
    assert "`paper-warm`" in rows["LAD (warm start from the baseline)"]
    for question in ("stronger than the same network without the label", "beat the baseline",
                     " / ".join(method_title(m) for m in sorted(METHODS))):
        assert question in text
    readme = (paper_repo / "README.md").read_text()
    assert "LAD (from scratch)" in readme.split(markers("paper-table")[0])[1].split(markers("paper-table")[1])[0]
    # the experiment's metrics.json averages its seeds as the report does
    metrics = json.loads((paper_repo / MAIN / "metrics.json").read_text())["baseline"]
    assert metrics["seeds"] == 2 and metrics["miou"] == pytest.approx(sum(base) / 2, abs=1e-3)
    assert metrics["miou_std"] == pytest.approx(abs(base[0] - base[1]) / 2**0.5, abs=1e-3)


@e2e
def test_every_comparison_method_trains_and_is_a_row(paper_repo):
    main = Results.collected(paper_repo / MAIN)
    for name in ["conventional_teacher"] + [f"distill_{m}" for m in METHODS]:
        for r in main.eval[name]:
            assert 0 <= r["miou"] <= 100 and r["iterations"] == 4 and r["params_m"] > 0 and r["gflops"] > 0, name
    assert (main.first("distill_cirkd")["arch"], main.first("distill_cirkd")["backbone"]) == ("stdc", "stdc1")
    assert main.first("conventional_teacher")["arch"] == "pspnet" and main.first("teacher_fixed")["arch"] == "ocrnet"
    text = (paper_repo / "reports/paper.md").read_text()
    table = students(text)
    methods = [line.split(" | ")[2] for line in table]
    assert methods[2:-2] == [method_title(m) for m in sorted(METHODS)]
    for line in table[2:-2]:
        assert line.startswith("| PSPNet-resnet18d (widths 16/32/64/128) | STDC-stdc1 |")
    assert table[-1].startswith("| OCRNet-resnet18d (widths 16/32/64/128) + label (LAD) | STDC-stdc1 | LAD")
    assert "| PSPNet-resnet18d (widths 16/32/64/128) | image only (the comparison rows' teacher) |" in text
    assert "CIRKD (w_kd=1, kd_temperature=1, w_pair=1, w_memory_pixel=0.1" in text
    df = runs(paper_repo, **{"lad.pipeline_id": "paper"})
    cirkd = df[df["tags.stage"] == "distill_compare@0-cirkd"].iloc[0]
    assert cirkd["params.compare.methods"] == str(sorted(METHODS))
    for term in ("kd", "pair", "memory_pixel", "memory_region", "ce", "aux"):  # every loss term, logged
        assert cirkd[f"metrics.train_{term}"] >= 0, term
    assert df[df["tags.stage"] == "distill_compare@0-cwd"].iloc[0]["metrics.train_cwd_features"] >= 0
    assert {f"distill_compare@{s}-{m}" for s in (0, 1) for m in METHODS} <= logged(paper_repo, "paper")


@e2e
def test_every_number_names_its_mlflow_runs(paper_repo):
    main = Results.collected(paper_repo / MAIN)
    df = runs(paper_repo)
    by_id = df.set_index("run_id")
    teacher_run = main.train["teacher"][1]["mlflow_run_id"]
    assert by_id.loc[teacher_run, "tags.stage"] == "train_teacher@1"
    evaluate_run = main.eval["lad_student"][0]["mlflow_run_id"]
    assert by_id.loc[evaluate_run, "tags.stage"] == "evaluate@0"
    parent = by_id.loc[main.meta["mlflow_parent_run"]]
    assert parent["tags.lad.role"] == "pipeline" and parent["tags.lad.pipeline_id"] == "paper"
    # the parent shows what the experiment changed and its headline metrics (the MLflow UI's compare view)
    assert parent["params.compare.enabled"] == "True" and parent["params.seeds"] == "[0, 1]"
    assert "params.lad.noise_std" not in df.columns or parent.isna()["params.lad.noise_std"]
    assert parent["metrics.lad_student_miou"] == pytest.approx(sum(main.miou("lad_student")) / 2, abs=1e-3)
    sources = (paper_repo / "reports/paper.md").read_text().split("## Sources")[1]
    assert teacher_run in sources and evaluate_run in sources and main.meta["mlflow_parent_run"] in sources


@e2e
def test_ablations_table_and_figure(paper_repo):
    table = (paper_repo / "reports/ablations.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    ref = Results.collected(paper_repo / RUNS / "paper-abl-reference")
    assert len(rows) == 1 and rows[0].startswith("| reference | params.yaml as committed | none |")
    assert f"| {ref.miou('lad_student')[0]:.2f} | — |" in rows[0] and ref.seeds == [0]
    assert (paper_repo / "reports/ablations.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Ablations" in (paper_repo / "reports/paper.md").read_text()
