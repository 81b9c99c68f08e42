"""dvc.yaml agrees with the roles table and with the code: stages, params, model inputs, outputs, imports."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from pipeline.roles import EVALUATIONS, ROLES
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
SEED = "${item.seed}"


def model_path(role: str) -> str:
    r = ROLES[role]
    out = f"compare/{'${item.method}'}" if r.method else r.out
    return f"models/seed{SEED}/{out}"


def entries(items: list) -> list[str]:
    """Paths of a deps/outs/metrics list (strings, or one-key mappings with options), comments stripped."""
    return [(next(iter(i)) if isinstance(i, dict) else i).split("#")[0].strip() for i in items]


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_is_its_stage(role):
    r = ROLES[role]
    stage = DVC[r.stage]
    name = "distill_${item.method}" if r.method else role
    assert stage["cmd"] == f"python -m stages.train {name} --seed {SEED}"
    assert stage["params"] == list(r.sections)
    deps = entries(stage["deps"])
    assert [d for d in deps if d.startswith("models/")] == [model_path(i) for i in r.inputs]
    assert entries(stage["outs"]) == [model_path(role)]
    assert entries(stage["metrics"]) == [f"reports/train/seed{SEED}/{name}.json"]
    assert set(stage["matrix"]) == ({"seed", "method"} if r.method else {"seed"})


def test_no_stage_outside_the_table():
    trained = {r.stage for r in ROLES.values()}
    assert set(DVC) == trained | {"prepare", "evaluate", "report"}


def test_evaluation_reads_every_model_and_its_params():
    from stages.evaluate import SECTIONS

    deps = entries(DVC["evaluate"]["deps"])
    for e in EVALUATIONS.values():
        path = model_path(e.role)
        assert path in deps or path.rsplit("/", 1)[0] in deps, path  # comparison rows: the compare folder
    assert DVC["evaluate"]["params"] == list(SECTIONS)


def test_report_params():
    from stages.report import SECTIONS

    assert DVC["report"]["params"] == list(SECTIONS)


CODE_EXEMPT = ("pipeline/tracking",)  # MLflow logging: left out on purpose (dvc.yaml's header)


@pytest.mark.parametrize("stage,module", [("prepare", "stages.prepare"), ("train_baseline", "stages.train"),
                                          ("distill", "stages.train"), ("evaluate", "stages.evaluate"),
                                          ("report", "stages.report")])
def test_stage_deps_cover_the_code_it_imports(stage, module):
    """A change to any project module a stage imports reruns it (only MLflow logging is exempt)."""
    code = ("import importlib, sys, os; importlib.import_module(sys.argv[1]); "
            "print('\\n'.join(sorted({os.path.relpath(m.__file__) for m in list(sys.modules.values()) "
            "if getattr(m, '__file__', None) and os.path.abspath(m.__file__).startswith(os.getcwd() + os.sep)})))")
    files = subprocess.run([sys.executable, "-c", code, module], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    ours = [f for f in files if f.startswith(("pipeline/", "stages/")) and not f.startswith(CODE_EXEMPT)
            and f not in ("pipeline/__init__.py", "stages/__init__.py")]  # package docstrings
    deps = entries(DVC[stage]["deps"])
    missing = [f for f in ours if not any(f == d or f.startswith(d + "/") for d in deps)]
    assert not missing, f"{stage}: imports {missing}, not in its dvc.yaml deps"


def test_no_stage_imports_another():
    for path in sorted((REPO / "stages").glob("*.py")):
        text = path.read_text()
        others = [m for m in ("train", "evaluate", "report", "prepare", "paper", "sync")
                  if m != path.stem and f"stages.{m} import" in text]
        assert not others, f"{path.name} imports stages {others}"
