"""The paper's table: its statistics with known answers, its wording, and `make paper`'s commands end to
end on a shrunk repository copy (two seeds, one ablation)."""

import json
import math

import pytest

from pipeline.overlays import set_args
from pipeline.paper import MARKERS, Run, compare, plan, with_table
from pipeline.report import fmt_interval, paired_interval
from tests.conftest import copy_repo, run, runs, tiny_params

T_975_2 = 4.302652729749464  # Student-t 97.5 % quantile, 2 degrees of freedom


def test_paired_interval_known_answers():
    mean, half, n = paired_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])  # differences 1, 2, 3: sd 1
    assert (mean, n) == (2.0, 3) and half == pytest.approx(T_975_2 / 3**0.5)
    mean, half, n = paired_interval([5.0, 6.0], [4.0, 4.0])  # differences 1, 2: sd 1/sqrt(2), t(1) 12.706
    assert mean == 1.5 and half == pytest.approx(12.706204736174694 * (0.5**0.5) / 2**0.5)
    mean, half, n = paired_interval([5.0], [3.0])
    assert (mean, n) == (2.0, 1) and math.isnan(half)
    with pytest.raises(ValueError, match="one per seed"):
        paired_interval([1.0], [1.0, 2.0])
    assert fmt_interval(2.0, 0.5) == "+2.00 [+1.50, +2.50]" and fmt_interval(-1.0, float("nan")) == "-1.00"


def fake_run(**mious: list[float]) -> Run:
    return Run({"name": "x", "seeds": [0, 1, 2]}, {k: [{"miou": v} for v in vs] for k, vs in mious.items()}, {})


def test_conclusions_say_only_what_the_interval_allows():
    r = fake_run(a=[3.0, 4.0, 5.0], b=[1.0, 1.0, 1.0], c=[2.0, 1.0, 3.0], d=[9.0, 9.5, 9.0])
    assert "A is higher; the interval excludes zero" in compare(r, "a", "b", "A", "B")
    assert "A is lower; the interval excludes zero" in compare(r, "a", "d", "A", "D")
    assert "3 seeds cannot tell A from C" in compare(r, "a", "c", "A", "C")
    assert "+3.00 mIoU, 95 % interval [+0.52, +5.48]" in compare(r, "a", "b", "A", "B")  # 3 -+ 4.303 / sqrt 3
    one = Run({"name": "y", "seeds": [0]}, {"a": [{"miou": 2.0}], "b": [{"miou": 1.0}]}, {})
    assert compare(one, "a", "b", "A", "B") == "A − B: +1.00 mIoU (one seed: no interval)."


def test_plan_and_readme_markers(tmp_path):
    exps = plan((0, 1), (0,), ["single-path"])
    assert [e.name for e in exps] == ["paper", "paper-warm", "paper-abl-reference", "paper-abl-single-path"]
    assert set_args(exps[1].sets) == ["-S", "seeds=[0,1]", "-S", "compare.enabled=true", "-S", "distill.init=baseline"]
    assert set_args(exps[3].sets) == ["-S", "seeds=[0]", "-S", "lad.dual_path=false"]
    readme = f"intro\n{MARKERS[0]}\nold\n{MARKERS[1]}\nrest\n"
    assert with_table(readme, "| new |", tmp_path) == f"intro\n{MARKERS[0]}\n| new |\n{MARKERS[1]}\nrest\n"
    with pytest.raises(ValueError, match="markers"):
        with_table("no markers\n", "| new |", tmp_path / "README.md")


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("paper"), tiny_params())
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n")
    refused = run(["python", "-m", "stages.paper", "run"], repo, check=False)
    assert refused.returncode == 1 and "params.yaml, dvc.yaml or dvc.lock has uncommitted changes" in refused.stderr
    run(["git", "checkout", "-q", "--", "params.yaml"], repo)
    args = ["--seeds", "0", "1", "--ablations", "single-path"]
    proc = run(["python", "-m", "stages.paper", "run", *args], repo)
    (repo / "paper.log").write_text(proc.stdout + proc.stderr)
    readme = (repo / "README.md").read_text()
    (repo / "README.md").write_text(readme.replace(MARKERS[0], ""))
    refused = run(["python", "-m", "stages.paper", "report"], repo, check=False)
    assert refused.returncode == 1 and "markers" in refused.stderr and not (repo / "reports/paper.md").exists()
    (repo / "README.md").write_text(readme)
    run(["python", "-m", "stages.paper", "report"], repo)
    return repo


e2e = pytest.mark.e2e


def logged(repo, name: str) -> set[str]:
    df = runs(repo, **{"lad.pipeline_id": name})
    return set(df[df["tags.lad.role"] == "stage"]["tags.stage"])


@e2e
def test_each_experiment_reruns_only_what_it_changes(paper_repo):
    # params.yaml as committed, and no dvc.lock (none was committed)
    assert not run(["git", "status", "--porcelain", "params.yaml"], paper_repo).stdout
    assert not (paper_repo / "dvc.lock").exists()
    assert {"train_baseline@0", "train_teacher@1", "distill@1", "train_conventional_teacher@0",
            "distill_compare@1-cirkd", "evaluate@1", "report"} <= logged(paper_repo, "paper")
    warm = logged(paper_repo, "paper-warm")
    assert {"distill@0", "distill@1", "train_baseline_ft@0", "train_baseline_ft@1", "report"} <= warm
    assert not {s for s in warm if s.startswith(("train_baseline@", "train_teacher", "train_conv", "distill_compare"))}
    single = logged(paper_repo, "paper-abl-single-path")
    assert {"train_teacher@0", "distill@0", "evaluate@0", "report"} <= single
    assert not {"train_baseline@0", "train_teacher@1", "distill@1"} & single
    assert not {"train_baseline@0", "train_teacher@0", "distill@0"} & logged(paper_repo, "paper-abl-reference")
    assert "[4/4] paper-abl-single-path" in (paper_repo / "paper.log").read_text()


@e2e
def test_the_table_comes_from_the_collected_runs(paper_repo):
    main = Run.load(paper_repo / "reports/paper/runs/paper")
    assert main.meta["seeds"] == [0, 1] and main.meta["sets"] == {"seeds": [0, 1], "compare.enabled": True}
    text = (paper_repo / "reports/paper.md").read_text()
    table = text.split("## Students")[1].split("## Teachers")[0]
    rows = {line.split(" | ")[2]: line for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    assert {"Baseline", "KD", "CIRKD", "LAD (from scratch)", "LAD (warm start from the baseline)",
            "Baseline + the warm start's iterations (equal-budget control)"} <= set(rows)
    lad, base = main.miou("lad_student"), main.miou("baseline")
    mean, half, _ = paired_interval(lad, base)
    assert fmt_interval(mean, half) in rows["LAD (from scratch)"]
    assert f"{sum(lad) / 2:.2f} ± " in rows["LAD (from scratch)"] and "`paper`" in rows["LAD (from scratch)"]
    assert "`paper-warm`" in rows["LAD (warm start from the baseline)"]
    for question in ("stronger than the same network without the label", "beat the baseline", "KD / CWD / CIRKD"):
        assert question in text
    readme = (paper_repo / "README.md").read_text()
    assert "LAD (from scratch)" in readme.split(MARKERS[0])[1].split(MARKERS[1])[0]


@e2e
def test_every_number_names_its_mlflow_runs(paper_repo):
    main = Run.load(paper_repo / "reports/paper/runs/paper")
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
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert {"reference", "single-path"} <= set(rows)
    single = Run.load(paper_repo / "reports/paper/runs/paper-abl-single-path")
    ref = Run.load(paper_repo / "reports/paper/runs/paper-abl-reference")
    delta = single.miou("lad_student")[0] - ref.miou("lad_student")[0]
    assert f"{delta:+.2f}" in rows["single-path"] and "`lad.dual_path=false`" in rows["single-path"]
    assert (paper_repo / "reports/ablations.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((paper_repo / "reports/paper/runs/paper-abl-single-path/meta.json").read_text())["seeds"] == [0]
