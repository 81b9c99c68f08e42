"""The launchers' parts with known answers: settings, the batch script, state files, a log's error line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError
from pipeline.experiments import Experiment
from pipeline.launch import Launcher, Manifest, Workdir, error_line, exp_from_dict, exp_to_dict, read_json, slurm
from pipeline.launch.driver import configured

EXP = Experiment("paper-abl-noise-0", {"lad.noise_std": 0.0}, "ablation", Path("reports/paper/protocol"), (0, 2),
                 "noise-0", "label noise sigma 0").shard(2)


def test_an_experiment_goes_through_a_manifest_unchanged(tmp_path):
    assert exp_from_dict(exp_to_dict(EXP)) == EXP
    m = Manifest("abc", "/repo", "c0ffee", "slurm", "http://h:1", "lad", str(tmp_path), None,
                 [{"exp": exp_to_dict(EXP), "run_key": "k"}])
    assert Manifest.load(m.save()).experiment(0) == EXP
    with pytest.raises(ValueError, match="shard index 1"):
        m.experiment(1)


def test_the_config_file_is_checked_and_flags_win(tmp_path):
    f = tmp_path / "launch.yaml"
    f.write_text("launcher: {kind: slurm, gpus: 1, cpus: 8, time: '12:00:00', sbatch_args: [--qos=low]}\n")
    cfg = configured({"cpus": 4}, f)
    assert (cfg.kind, cfg.gpus, cfg.cpus, cfg.time, cfg.sbatch_args) == ("slurm", 1, 4, "12:00:00", ("--qos=low",))
    f.write_text("launcher: {kind: slurm, gpu: 1}\n")
    with pytest.raises(ConfigError, match="launcher.gpu: unknown key"):
        configured({}, f)
    with pytest.raises(ConfigError, match="launcher.jobs: expected a whole number >= 0"):
        configured({"jobs": -1}, None)
    with pytest.raises(ConfigError, match="file not found"):
        configured({}, tmp_path / "none.yaml")


def test_the_batch_script_asks_for_what_the_launcher_says(tmp_path):
    cfg = Launcher(kind="slurm", jobs=3, gpus=2, cpus=8, mem="32G", time="1:00:00", partition="gpu",
                   sbatch_args=("--account=lab",), grace_s=90)
    text = slurm.script(tmp_path / "m.json", 10, cfg, Path("/repo"), Workdir(tmp_path))
    for flag in ("--array=0-9%3", "--requeue", "--signal=B:USR1@90", "--cpus-per-task=8", "--gres=gpu:2",
                 "--mem=32G", "--time=1:00:00", "--partition=gpu", "--account=lab", "--open-mode=append",
                 "--chdir=/repo"):
        assert f"#SBATCH {flag}\n" in text, flag
    assert "unset LAD_STAGE_SERVER" in text and text.rstrip().endswith('"$SLURM_ARRAY_TASK_ID"')
    bare = slurm.script(tmp_path / "m.json", 1, Launcher(kind="slurm"), Path("/repo"), Workdir(tmp_path))
    assert "--array=0-0\n" in bare and "--gres" not in bare and "--mem" not in bare


def test_a_logs_error_line_is_the_one_that_names_the_error(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("Running stage 'prepare':\nerror: data.root: /x: not found\nERROR: failed to reproduce 'prepare'\n")
    assert error_line(log) == "error: data.root: /x: not found"
    log.write_text("Traceback (most recent call last):\n  File 'x'\ntorch.OutOfMemoryError: CUDA out of memory\nbye\n")
    assert error_line(log) == "torch.OutOfMemoryError: CUDA out of memory"
    log.write_text("just this\n")
    assert error_line(log) == "just this"
    assert read_json(tmp_path / "absent.json") == {}
