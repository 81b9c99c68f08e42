"""docs/protocol.md's table: its parts and seeds, seed-by-seed shards, when a collected shard is current, and the
table written from known shards (tests/test_paper.py runs it end to end)."""

import json

import yaml

from commands.paper import listing
from pipeline import documents
from pipeline.experiments import currency, protocol
from pipeline.overlays import Overlay
from pipeline.readme import block, markers
from pipeline.results import collect
from tests.conftest import REPO, copy_repo, tiny_params

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_plan_follows_the_protocol():
    exps = {e.name: e for e in protocol.plan(PARAMS, chosen={"distill.w_kd": 1.0})}
    assert 1 not in {s for e in exps.values() for s in e.seeds}  # the calibration's old seed is never reported
    assert len(exps["paper"].seeds) >= 8 and len(exps["paper-compare"].seeds) >= 5
    assert len(exps["paper-long"].seeds) >= 5 and all(len(e.seeds) >= 3 for e in exps.values())
    # the calibrated weights everywhere, and no latency loops
    assert exps["paper"].sets == {"distill.w_kd": 1.0, "evaluate.latency_reps": 0, "controls.enabled": True}
    assert set(exps["paper-compare"].sets["compare.methods"]) == {"kd", "cwd", "cirkd", "dist", "afdcd"}
    assert exps["paper-long"].sets["train.iters"] == 3 * PARAMS["train"]["iters"]
    assert exps["paper-long"].sets["controls.matched_iters"] == 3 * PARAMS["controls"]["matched_iters"]
    assert "paper-abl-init-baseline" not in exps and exps["paper-warm"].sets["distill.init"] == "baseline"
    shards = protocol.shards(list(exps.values()))
    assert [s.folder for s in shards[:3]] == ["paper@seeds0", "paper-warm@seeds0", "paper@seeds2"]  # main first
    assert [s.name for s in shards[16:18]] == ["paper-compare"] * 2 and shards[16].seeds == (0,)
    abl = [s.folder for s in shards if s.part == "ablation"]
    assert abl[:2] == ["paper-abl-reference@seeds0", "paper-abl-noise-0@seeds0"]  # a reference, then its ablations
    assert shards[0].sets["seeds"] == [0] and str(shards[0].runs) == "reports/paper/protocol"


def test_a_collected_shard_is_current_until_its_resolved_params_or_numerics_change(tmp_path, monkeypatch, capsys):
    repo = copy_repo(tmp_path / "repo", tiny_params())
    shard = protocol.shards(protocol.plan(tiny_params(), chosen={}, seeds={"main": (0,)}))[0]
    assert currency.status(shard, repo) == "missing"
    committed = (repo / "params.yaml").read_text()
    # what `dvc exp run -S` leaves in the workspace: params.yaml with the shard's sets, and its results
    (repo / "params.yaml").write_text(yaml.safe_dump(Overlay(shard.name, shard.sets).merged(yaml.safe_load(committed))))
    for sub in ("reports/eval/seed0", "reports/train/seed0"):
        (repo / sub).mkdir(parents=True)
        (repo / sub / "baseline.json").write_text("{}")
    (repo / "reports/metrics.json").write_text("{}")
    collect(shard, 1.0, None, repo, extra={"digest": currency.digest(shard, repo)})
    (repo / "params.yaml").write_text(committed)
    assert currency.status(shard, repo) == "current"
    meta = json.loads((repo / shard.runs / shard.folder / "meta.json").read_text())
    assert meta["cpu"] and meta["numerics"] == currency.NUMERICS
    (repo / "pipeline/losses.py").write_text((repo / "pipeline/losses.py").read_text() + "\n# moved code\n")
    values = yaml.safe_load(committed)
    quiet = Overlay("quiet", {"run.log_interval": values["run"]["log_interval"] + 1}).merged(values)
    (repo / "params.yaml").write_text("# a comment\n" + yaml.safe_dump(quiet, sort_keys=True))
    assert currency.status(shard, repo) == "current"  # no computing param changed, nor the numerics version
    noisier = Overlay("noisier", {"lad.noise_std": values["lad"]["noise_std"] + 0.01}).merged(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(noisier))
    assert currency.status(shard, repo) == "stale"  # a param the teacher's stage reads
    (repo / "params.yaml").write_text(committed)
    monkeypatch.setattr(currency, "NUMERICS", currency.NUMERICS + 1)
    assert currency.status(shard, repo) == "stale"  # a change that alters what the stages compute
    monkeypatch.undo()
    monkeypatch.chdir(repo)
    listing([shard, protocol.shards(protocol.plan(tiny_params(), chosen={}, seeds={"main": (2,)}))[0]])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["paper@seeds0", "current"] and out[1].split()[:2] == ["paper@seeds2", "missing"]
    assert out[-1] == "2 shards: 1 current, 0 stale, 1 missing"


def test_every_collected_shard_of_the_table_is_current():
    """The committed shards stand for this code and params.yaml (docs/protocol.md, "When a shard is current")."""
    shards = protocol.shards(protocol.plan(PARAMS))
    assert {s.folder: currency.status(s, REPO) for s in shards} == {s.folder: "current" for s in shards}


def collected_shard(root, name: str, seed: int, mious: dict[str, float], cpu: str = "Intel", part: str = "main",
                    what: str = "", lad: dict | None = None) -> None:
    """A collected shard as `commands.paper run` leaves it: params (``lad``: its LAD params set), meta and one JSON
    per evaluation."""
    folder = root / protocol.RUNS / f"{name}@seeds{seed}"
    (folder / f"reports/eval/seed{seed}").mkdir(parents=True)
    params = {**PARAMS, "seeds": [seed], "lad": {**PARAMS["lad"], **(lad or {})}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    (folder / "meta.json").write_text(json.dumps({"name": name, "folder": folder.name, "part": part, "what": what,
                                                  "sets": {}, "seeds": [seed], "seconds": 60.0, "git_commit": "c" * 40,
                                                  "cpu": cpu, "mlflow_parent_run": None}))
    for key, m in mious.items():
        gflops = {"teacher_fixed": 0.2}.get(key, 0.1)
        (folder / f"reports/eval/seed{seed}/{key}.json").write_text(json.dumps(
            {"miou": m, "gflops": gflops, "iterations": 1000, "model": key}))


def test_the_table_is_written_from_the_shards(tmp_path):
    for seed, lad in ((0, 40.0), (2, 38.0), (3, 45.0)):
        collected_shard(tmp_path, "paper", seed, {"baseline": 30.0 + seed, "lad_student": lad, "teacher_fixed": 70.0,
                                                  "teacher_zero": 20.0, "baseline_matched": 41.0 + seed,
                                                  "label_student": 33.0})
    teachers = {"baseline": 30.0, "teacher_random": 60.0, "teacher_fixed": 70.0}
    for seed, (ref, single) in zip((0, 2, 3), ((36.0, 30.0), (37.0, 33.0), (35.0, 33.0)), strict=True):
        collected_shard(tmp_path, "paper-abl-reference", seed, {**teachers, "lad_student": ref}, part="ablation")
        collected_shard(tmp_path, "paper-abl-single-path", seed, {**teachers, "lad_student": single}, part="ablation",
                        what="dual path off")
        collected_shard(tmp_path, "paper-abl-codebook-fixed", seed, {**teachers, "teacher_fixed": 90.0 + seed,
                                                                     "lad_student": ref}, part="ablation",
                        what="fixed code book", lad={"codebook": "fixed"})
    start, end = markers("paper-table")
    (tmp_path / "README.md").write_text(f"# title\n{start}\nold\n{end}\n")
    text = documents.write_paper(tmp_path)
    assert (tmp_path / documents.COMPUTE_PNG).read_bytes()[:4] == b"\x89PNG"
    assert "| 2 | the LAD student − the baseline (equal student steps) | +9.33 |" in block(
        (tmp_path / "README.md").read_text(), "paper-table")
    assert "| LAD student from scratch | `paper` | 0, 2, 3 | 41.00 ± 3.61 |" in text
    # training TFLOP: 1000 steps x batch 8 x (3 x 0.1 + the teacher's forward 0.2) = 4.0, + the teacher's 1000 x 8 x
    # 2 paths x 3 x 0.2 = 9.6
    assert "| 41.00 ± 3.61 | 13.60 |" in text
    assert "| compute-matched baseline | `paper` | 0, 2, 3 | 42.67 ± 1.53 | 2.40 | — |" in text  # no published setting
    assert "higher on 3 of 3" in text
    assert "**4. Does it beat conventional distillation at equal teacher cost?** Not run." in text
    lower = text.split("## Where LAD is lower")[1]
    assert "the LAD student below the compute-matched baseline (the LAD pipeline's training FLOPs): -1.67 mIoU" in lower
    # single path - reference, student: -6, -4, -2 (mean -4, sd 2: half 2 x 4.303 / sqrt 3 = 4.97)
    ablations = text.split("## Ablations")[1].split("##")[0]
    assert "| single-path | dual path off | +0.00 [+0.00, +0.00], 0/3 | -4.00 [-8.97, +0.97], 0/3 |" in ablations
    # the fixed-code-book teacher is scored with the code book it trained with against the reference's random one
    assert "| codebook-fixed | fixed code book | +31.67 [+27.87, +35.46], 3/3 **finding** | +0.00" in ablations
    assert "Beyond noise (the interval excludes zero): codebook-fixed's teacher (+31.67). Within noise on these " \
           "seeds: codebook-fixed's student (+0.00), single-path's teacher (+0.00), single-path's student " \
           "(-4.00)." in ablations
    timing = text.split("## Wall time per part")[1].split("##")[0]
    assert "| main | `paper` | 3 | 3.0 |" in timing and "; float32; 12.0 min of wall time" in text
    assert "| ablation | `paper-abl-codebook-fixed`, `paper-abl-reference`, `paper-abl-single-path` | 9 | 9.0 |" \
        in timing
    # provenance: a commit the repository's history lacks is said, and marked, not rerun
    assert "Of the 1 commits the 12 collected runs name, 1 are not in this repository's history" in text
    assert "`cccccccccc` *gone*" in text


def test_a_commit_is_in_history_when_head_descends_from_it():
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert documents.in_history(head, REPO)
    assert not documents.in_history("0" * 40, REPO) and not documents.in_history("unknown", REPO)
