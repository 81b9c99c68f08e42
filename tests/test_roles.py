"""dvc.yaml agrees with the roles table and with the code: stages, params, model inputs, outputs, imports."""

from __future__ import annotations

import json
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
    assert set(DVC) == trained | {"check", "prepare", "evaluate", "report"}


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


pytestmark = pytest.mark.e2e  # stage processes forked from the stage server: make test-fast leaves it out

CODE_EXEMPT = ("pipeline/tracking",)  # MLflow logging: left out on purpose (dvc.yaml's header)
PACKAGES = ("pipeline/data", "pipeline/models", "pipeline/experiments", "pipeline/words")  # listed as folders: a
# stage imports every module of each


def code_deps(stage: str) -> list[str]:
    """The project code among a stage's dvc.yaml deps."""
    return [d for d in entries(DVC[stage]["deps"]) if d.startswith(("pipeline/", "stages/"))]


def as_deps(files: list[str]) -> set[str]:
    """Imported files as dvc.yaml lists them: the two packages as folders, package docstrings and the
    exempt tracking code left out."""
    out = set()
    for f in files:
        if f.startswith(CODE_EXEMPT) or f in ("pipeline/__init__.py", "stages/__init__.py"):
            continue
        out.add(next((p for p in PACKAGES if f.startswith(p + "/")), f))
    return out


# One interpreter loads the heavy libraries once, then forks a child per stage that imports the stage's module
# (and, for training, its role's step) afresh: the project modules each child holds are exactly what that
# stage imports, at a fraction of a fresh interpreter per stage.
IMPORTS = """
import importlib, json, os, sys

sys.path.insert(0, ".")
for lib in ("torch", "timm", "mlflow", "mlflow.pytorch", "pandas", "matplotlib", "onnx", "onnxruntime", "cv2",
            "scipy.stats", "pydantic", "yaml", "ruamel.yaml"):
    importlib.import_module(lib)
found = {}
for module, role in json.loads(sys.argv[1]):
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        m = importlib.import_module(module)
        if role:
            m.load(role)
        from stages.common import project_modules
        with os.fdopen(w, "w") as f:
            f.write(json.dumps(project_modules()))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        found[f"{module} {role}"] = json.loads(f.read())
    os.wait()
print(json.dumps(found))
"""


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    """``"<module> <role>"`` -> the project files a fresh process imports for that stage (and role)."""
    specs = [(module, role) for _, module, role in STAGE_CODE]
    out = subprocess.run([sys.executable, "-c", IMPORTS, json.dumps(specs)], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return {key: as_deps(files) for key, files in json.loads(out).items()}


TRAINED = [(r.stage, r.name) for r in {r.stage: r for r in reversed(list(ROLES.values()))}.values()]


STAGE_CODE = [("prepare", "stages.prepare", None), ("evaluate", "stages.evaluate", None),
              ("report", "stages.report", None)] + [(stage, "stages.train", role) for stage, role in TRAINED]


@pytest.mark.parametrize("stage,module,role", STAGE_CODE)
def test_stage_deps_are_exactly_the_code_it_imports(imports, stage, module, role):
    """A change to any project module a stage imports reruns it, and to no other (only MLflow logging
    is exempt): a listed module that is not imported fails as a missing one does."""
    deps = set(code_deps(stage))
    got = imports[f"{module} {role}"]
    assert not got - deps, f"{stage}: imports {sorted(got - deps)}, not in its dvc.yaml deps"
    assert not deps - got, f"{stage}: lists {sorted(deps - got)} in its dvc.yaml deps, but does not import them"


def test_a_distillation_loss_is_no_dep_of_the_data_or_the_baseline():
    for stage in ("prepare", "train_baseline", "report"):
        assert not {"pipeline/losses.py", "pipeline/methods.py"} & set(code_deps(stage)), stage


def test_no_stage_imports_another():
    for path in sorted((REPO / "stages").glob("*.py")):
        text = path.read_text()
        others = [m for m in ("train", "evaluate", "report", "prepare", "paper", "sync")
                  if m != path.stem and f"stages.{m} import" in text]
        assert not others, f"{path.name} imports stages {others}"


def test_every_role_has_its_step_kind_and_every_kind_one_signature():
    import inspect

    from pipeline.steps import step_class

    for role in ROLES.values():
        cls = step_class(role.step)
        assert list(inspect.signature(cls.from_inputs).parameters) == ["s"], role.name
    with pytest.raises(ValueError, match="no module pipeline/steps/nothing.py"):
        step_class("nothing")
