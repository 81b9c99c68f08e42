"""docs/extending.md's new role, followed for real on a copy of the project: `teacher_long` in
pipeline/roles.py and its stage in dvc.yaml, and nothing else; the stage checks pass there, and the
report's tables and the FLOP accounting take the new row."""

import subprocess
import sys

import pytest
import yaml

from tests.conftest import copy_repo, tiny_params

pytestmark = pytest.mark.e2e

ROLE = '''    Role("teacher_long", "train_teacher_long", "teacher", "lad_teacher",
         ("data", "model.teacher", "train", "lad", "distill.codebook", "distill.noise_std", "distill.iters",
          "distill.lr"), ("teacher",), "teacher_long.pt", schedule=_distill_schedule,
         warm_start=lambda cfg: "teacher", passes=_dual_path),
'''
EVALUATION = '''    Evaluation("teacher_long_fixed", "teacher_long", "fixed",
               what="LAD teacher trained longer, fixed code book",
               input="image + label, fixed code book, after distill.iters more steps"),
'''
CHECK = '''
from pipeline.config import load_config
from pipeline.results import Results
from pipeline.words import tables

cfg = load_config(networks=False)
ev = {k: [{"miou": m, "gflops": 0.1, "iterations": 100, "model": k, "arch": "deeplabv3", "backbone": "resnet18d",
           "params_m": 1.0, "pixel_acc": 50.0}] for k, m in (("baseline", 30.0), ("teacher_fixed", 60.0),
                                                                ("teacher_long_fixed", 65.0))}
res = Results(cfg, [0], ev, {})
print(tables.teachers_table(res))
# its own 100 steps x batch x 3 forwards x 2 paths x 0.1 GFLOP, and the teacher it started from as much again
print("TFLOP", res.training_tflop("teacher_long_fixed"), 2 * 100 * cfg.train.batch_size * 3 * 2 * 0.1 / 1e3)
'''


def test_a_new_role_touches_the_roles_table_and_dvc_yaml_only(tmp_path):
    repo = copy_repo(tmp_path / "repo", tiny_params())
    roles = repo / "pipeline/roles.py"
    text = roles.read_text()
    text = text.replace('    *[Role(f"{COMPARE_PREFIX}{m}"', ROLE + '    *[Role(f"{COMPARE_PREFIX}{m}"', 1)
    anchor = '    *[Evaluation(f"{COMPARE_PREFIX}{m}"'
    roles.write_text(text.replace(anchor, EVALUATION + anchor, 1))
    dvc = yaml.safe_load((repo / "dvc.yaml").read_text())
    stage = {**dvc["stages"]["train_teacher"]}
    stage["cmd"] = "python -m stages.train teacher_long --seed ${item.seed}"
    stage["deps"] = [*stage["deps"], "models/seed${item.seed}/teacher.pt"]
    stage["params"] = [*stage["params"], "distill.iters", "distill.lr"]
    stage["outs"] = ["models/seed${item.seed}/teacher_long.pt"]
    stage["metrics"] = [{"reports/train/seed${item.seed}/teacher_long.json": {"cache": False}}]
    stage["plots"] = [{f"reports/curves/seed${{item.seed}}/teacher_long_{k}.tsv": {"cache": False}}
                      for k in ("train", "val")]
    dvc["stages"]["train_teacher_long"] = stage
    dvc["stages"]["evaluate"]["deps"].append("models/seed${item.seed}/teacher_long.pt")
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    checks = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_roles.py"],
                            cwd=repo, capture_output=True, text=True)
    assert checks.returncode == 0, checks.stdout[-3000:]
    assert "teacher_long" in subprocess.run([sys.executable, "-m", "stages.train", "--help"], cwd=repo,
                                            capture_output=True, text=True).stdout
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=repo, capture_output=True, text=True, check=True).stdout
    row = next(line for line in out.splitlines() if "after distill.iters more steps" in line)
    assert "65.00" in row and "DeepLabV3-resnet18d + label (LAD)" in row  # a teacher that sees the label
    counted, expected = out.split("TFLOP ")[1].split()
    assert float(counted) == pytest.approx(float(expected))
