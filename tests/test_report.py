"""One results model, one renderer: results read from files with known answers, the statistics, the wording,
and the same rows for the report stage's one run and the paper's several."""

import json
import math

import pytest

from pipeline import documents
from pipeline.config import load_config
from pipeline.results import Results, load_collected, mean_std
from pipeline.statistics import Comparison, paired, paired_interval
from pipeline.words import tables
from pipeline.words.format import fmt_interval
from pipeline.words.published import published
from pipeline.words.questions import sentence
from tests.conftest import REPO

T_975_2 = 4.302652729749464  # Student-t 97.5 % quantile, 2 degrees of freedom
CFG = load_config(REPO / "params.yaml", networks=False)


def result(miou: float, model: str, **extra) -> dict:
    net = {"arch": "deeplabv3", "backbone": "resnet18d", "channels": [], "params_m": 1.0, "gflops": 0.5,
           "iterations": 10, "flops_input": 64}
    return {"miou": miou, "pixel_acc": 2 * miou, "mean_acc": miou, "per_class_iou": {"a": miou}, "model": model,
            **net, **extra}


MODELS = {"baseline": "baseline", "lad_student": "student", "teacher_fixed": "teacher", "teacher_zero": "teacher",
          "teacher_random": "teacher"}


def write_run(root, mious: dict[str, list[float]], seconds: dict[str, list[float]]) -> None:
    """reports/eval and reports/train for seeds 0, 1, 2 as the stages write them."""
    for i in range(3):
        for key, values in mious.items():
            path = root / f"reports/eval/seed{i}/{key}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result(values[i], MODELS.get(key, key))))
        for role, secs in seconds.items():
            path = root / f"reports/train/seed{i}/{role}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"train_seconds": secs[i]}))
        skipped = root / f"reports/train/seed{i}/conventional_teacher.json"
        skipped.parent.mkdir(parents=True, exist_ok=True)
        skipped.write_text(json.dumps({"skipped": "off"}))


MIOUS = {"baseline": [30.0, 32.0, 34.0], "lad_student": [33.0, 36.0, 36.0], "teacher_fixed": [70.0, 71.0, 72.0],
         "teacher_zero": [10.0, 11.0, 12.0], "teacher_random": [69.0, 70.0, 71.0]}


@pytest.fixture()
def workspace(tmp_path) -> Results:
    write_run(tmp_path, MIOUS, {"baseline": [40.0, 42.0, 44.0], "student": [50.0, 50.0, 53.0]})
    return Results.load(CFG.model_copy(update={"seeds": [0, 1, 2]}), tmp_path)


def test_paired_interval_known_answers():
    mean, half, n = paired_interval([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])  # differences 1, 2, 3: sd 1
    assert (mean, n) == (2.0, 3) and half == pytest.approx(T_975_2 / 3**0.5)
    mean, half, n = paired_interval([5.0, 6.0], [4.0, 4.0])  # differences 1, 2: sd 1/sqrt(2), t(1) 12.706
    assert mean == 1.5 and half == pytest.approx(12.706204736174694 * (0.5**0.5) / 2**0.5)
    mean, half, n = paired_interval([5.0], [3.0])
    assert (mean, n) == (2.0, 1) and math.isnan(half)
    with pytest.raises(ValueError, match="one per seed"):
        paired_interval([1.0], [1.0, 2.0])
    assert fmt_interval(2.0, 0.5) == "+2.00 [+1.50, +2.50]"
    assert fmt_interval(-1.0, float("nan")) == "-1.00"


def fake(seeds: list[int], **mious: list[float]) -> Results:
    return Results(CFG, seeds, {k: [{"miou": v} for v in vs] for k, vs in mious.items()}, {})


def compare(res: Results, a: str, b: str, a_name: str, b_name: str) -> str:
    return sentence(paired({res.name: res}, Comparison((res.name, a), (res.name, b), a_name, b_name)))


def test_conclusions_say_only_what_the_interval_allows():
    r = fake([0, 1, 2], a=[3.0, 4.0, 5.0], b=[1.0, 1.0, 1.0], c=[2.0, 1.0, 3.0], d=[9.0, 9.5, 9.0])
    assert "A is higher; the interval excludes zero" in compare(r, "a", "b", "A", "B")
    assert "A is lower; the interval excludes zero" in compare(r, "a", "d", "A", "D")
    assert "the interval includes zero: 3 seeds cannot tell them apart" in compare(r, "a", "c", "A", "C")
    # 3 -+ 4.303 / sqrt 3
    assert compare(r, "a", "b", "A", "B") == ("A − B: +3.00 mIoU over 3 seeds, higher on 3 of 3; 95 % interval "
                                                    "[+0.52, +5.48]: A is higher; the interval excludes zero "
                                                    "(fragile: a bound within 1 mIoU of zero).")
    one = fake([0], a=[2.0], b=[1.0])
    assert compare(one, "a", "b", "A", "B") == "A − B: +1.00 mIoU over 1 seed, higher on 1 of 1 (one seed: no " \
                                                      "interval)."


def test_results_read_every_seed_with_known_summaries(workspace):
    assert workspace.seeds == [0, 1, 2] and set(workspace.eval) == set(MIOUS) and not workspace.warm("lad_student")
    assert set(workspace.train) == {"baseline", "student"}  # the skipped conventional teacher's note is no summary
    s = workspace.summary()["lad_student"]
    assert (s["seeds"], s["miou"], s["miou_std"]) == (3, 35.0, round(3**0.5, 3))  # 33, 36, 36: sd sqrt(3)
    assert s["pixel_acc"] == 70.0
    assert workspace.train_seconds("lad_student") == 51.0 and workspace.train_seconds("teacher_zero") is None
    assert mean_std([2.0]) == (2.0, 0.0)


def test_a_seed_missing_its_evaluation_is_a_clear_error(tmp_path):
    write_run(tmp_path, MIOUS, {})
    (tmp_path / "reports/eval/seed1/baseline.json").unlink()
    with pytest.raises(FileNotFoundError, match="baseline.json: missing for a seed of \\[0, 1, 2\\]"):
        Results.load(CFG.model_copy(update={"seeds": [0, 1, 2]}), tmp_path)


def test_one_run_answers_the_protocols_questions_its_rows_allow(workspace, tmp_path):
    table = tables.students_table(workspace)
    assert [line.split(" | ")[2] for line in table.splitlines()[2:]] == ["baseline", "LAD student from scratch"]
    lad = next(line for line in table.splitlines() if "LAD student from scratch" in line)
    assert "35.00 ± 1.73" in lad and "+3.00 [" in lad and "| 51 |" in lad and "71.00 ± 1.00" in lad
    assert "DVC experiment" not in table
    text = documents.conclusions(workspace)
    assert "**2. Does the LAD student beat supervision alone?** The LAD student − the baseline (equal student " \
           "steps): +3.00 mIoU over 3 seeds" in text
    assert "Over 3 seeds" in text and "**4." not in text and "**6." not in text  # no comparison rows, one budget
    warm_root = tmp_path / "warm"
    write_run(warm_root, {**MIOUS, "baseline_ft": [40.0, 41.0, 45.0], "lad_student": [44.0, 45.0, 46.0]}, {})
    cfg = workspace.cfg.model_copy(update={"distill": workspace.cfg.distill.model_copy(update={"init": "baseline"})})
    warm = Results.load(cfg, warm_root, name="w")
    rows = [line.split(" | ")[2] for line in tables.students_table(warm).splitlines()[2:]]
    assert rows == ["baseline", "equal-budget control: the baseline trained on for as many steps as the student",
                    "LAD student warm-started from the baseline"]
    assert "**5. Does the warm start help beyond its extra steps?** The warm-started LAD student − its control, " \
           "the baseline trained on for as many student steps: +3.00 mIoU" in documents.conclusions(warm)


def test_collected_experiments_in_order(tmp_path):
    for name, ablation, student in (("paper-abl-reference", "reference", 30.0), ("paper-abl-x", "x", 32.5)):
        write_run(tmp_path / name, {**MIOUS, "lad_student": [student] * 3}, {})
        (tmp_path / name / "meta.json").write_text(json.dumps({
            "name": name, "part": "ablation", "ablation": ablation, "what": "w", "seeds": [0],
            "sets": {"seeds": [0], **({"lad.w_cons": 5.0} if ablation == "x" else {})}, "seconds": 1.0}))
    runs = load_collected(tmp_path, ["paper-abl-x"], REPO / "params.yaml")
    assert list(runs) == ["paper-abl-x", "paper-abl-reference"]  # the order given, then the others by name
    assert runs["paper-abl-x"].cfg.lad.w_cons == 5.0 and runs["paper-abl-x"].seeds == [0]


def test_shards_of_one_experiment_merge_into_its_seeds(tmp_path):
    """The table split over machines: one experiment collected as ``paper`` (seeds 0, 1) on one and as
    ``paper@seeds2`` on another reads as one experiment over seeds 0, 1, 2 with known means."""
    for folder, seeds in (("paper", [0, 1]), ("paper@seeds2", [2])):
        write_run(tmp_path / folder, MIOUS, {"baseline": [40.0, 42.0, 44.0]})
        for s in {0, 1, 2} - set(seeds):  # each machine holds only its own seeds
            for kind in ("eval", "train"):
                for f in (tmp_path / folder / f"reports/{kind}/seed{s}").glob("*.json"):
                    f.unlink()
        (tmp_path / folder / "meta.json").write_text(json.dumps({
            "name": "paper", "folder": folder, "part": "main", "what": "w", "seeds": seeds, "sets": {"seeds": seeds},
            "seconds": 10.0 * len(seeds), "git_commit": folder, "mlflow_parent_run": f"run-{folder}"}))
    merged = load_collected(tmp_path, [], REPO / "params.yaml")["paper"]
    assert merged.seeds == [0, 1, 2] and merged.cfg.seeds == [0, 1, 2]
    assert merged.miou("baseline") == [30.0, 32.0, 34.0] and merged.mean("lad_student") == pytest.approx(35.0)
    assert [t["train_seconds"] for t in merged.train["baseline"]] == [40.0, 42.0, 44.0]
    assert merged.meta["seconds"] == 30.0 and [m["folder"] for m in merged.meta["shards"]] == ["paper", "paper@seeds2"]
    assert merged.parent_run(1) == "run-paper" and merged.parent_run(2) == "run-paper@seeds2"
    meta = json.loads((tmp_path / "paper@seeds2/meta.json").read_text())
    (tmp_path / "paper@seeds2/meta.json").write_text(json.dumps({**meta, "seeds": [1], "sets": {"seeds": [1]}}))
    for kind in ("eval", "train"):  # seed 1 collected on both machines: which copy counts is not ours to guess
        (tmp_path / f"paper@seeds2/reports/{kind}/seed2").rename(tmp_path / f"paper@seeds2/reports/{kind}/seed1")
    with pytest.raises(ValueError, match=r"seed\(s\) \[1\] collected more than once \(paper, paper@seeds2\)"):
        load_collected(tmp_path, [], REPO / "params.yaml")


def test_a_published_number_only_where_the_setting_matches():
    cfg = CFG
    voc = cfg.model_copy(update={"data": cfg.data.model_copy(update={"name": "voc"})})
    pretrained = voc.model_copy(update={"model": voc.model.model_copy(update={
        "student": voc.model.student.model_copy(update={"pretrained": True})})})
    full = {"arch": "deeplabv3", "backbone": "resnet18d", "channels": None}
    narrow = {**full, "channels": [16, 32, 64, 128]}

    def res(c, r):
        return Results(c, [0], {"baseline": [r]}, {}, "x", {})

    assert published(res(pretrained, full), "baseline") == 73.21  # the LAD paper's VOC baseline
    assert published(res(pretrained, narrow), "baseline") is None  # narrowed widths
    assert published(res(voc, full), "baseline") is None  # from scratch
    assert published(res(cfg.model_copy(update={"model": pretrained.model}), full), "baseline") is None
