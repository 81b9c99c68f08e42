"""The README's figures are what the committed result files give (pipeline/readme.py), its size, and the
project's functions stay short."""

import ast
import json

import pytest

from pipeline import documents, readme
from pipeline.experiments import protocol
from pipeline.results import load_collected
from pipeline.words.questions import summary_table
from tests.conftest import REPO

TEXT = (REPO / "README.md").read_text()


def test_the_readme_holds_what_the_committed_files_give():
    for name, body in readme.run_blocks(REPO).items():
        assert readme.block(TEXT, name) == body, f"README block {name!r} is stale: python -m pipeline.readme"
    runs = load_collected(REPO / protocol.RUNS, list(protocol.EXPERIMENTS), REPO / "params.yaml")
    assert readme.block(TEXT, "paper-table") == summary_table(documents.paper_found(runs)), \
        "README's paper table is stale: python -m commands.paper report"


def test_the_readme_is_at_most_200_lines():
    assert len(TEXT.splitlines()) <= 200


def test_blocks_from_known_files(tmp_path):
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/metrics.json").write_text(json.dumps({
        "headline_miou": {"lad_student": 36.26, "baseline": 34.115, "teacher": 69.8},
        "baseline": {"seeds": 1}, "teacher_zero": {"miou": 16.1}}))
    cpu = "Some CPU, 2 cores, flags: avx2"
    (tmp_path / "reports/timings.json").write_text(json.dumps({
        "make_test": {"seconds": 400.0, "cpu": cpu, "date": "2026-01-02"},
        "noop": {"seconds": 1.24, "cpu": cpu, "date": "2026-01-02"},
        "install": {"mb": 5557, "cpu": cpu, "date": "2026-01-02"}}))
    blocks = readme.run_blocks(tmp_path)
    assert blocks["costs"] == (f"Measured on {cpu} (2026-01-02): a no-op `dvc repro`: **1.2 s**; `make test`: "
                               "**6.7 min**; the installed environment (`.venv`, torch's CUDA build included): "
                               "**5.6 GB**.")
    assert "baseline **34.12**, LAD student **36.26**" in blocks["default-run"]
    assert "16.10 with an empty label channel" in blocks["default-run"]
    text = "a\n<!-- costs:start -->\nold\n<!-- costs:end -->\n<!-- default-run:start -->\n<!-- default-run:end -->\n" \
           "<!-- gpu-check:start -->\n<!-- gpu-check:end -->\n"
    (tmp_path / "README.md").write_text(text)
    readme.write(tmp_path)
    assert readme.block((tmp_path / "README.md").read_text(), "costs") == blocks["costs"]
    assert "has not run on a GPU" in readme.block((tmp_path / "README.md").read_text(), "gpu-check")
    (tmp_path / "README.md").write_text("no markers\n")
    with pytest.raises(ValueError, match="costs:start"):
        readme.write(tmp_path)
    assert (tmp_path / "README.md").read_text() == "no markers\n"  # nothing written


def test_no_function_over_50_lines():
    long = []
    for folder in ("pipeline", "stages", "commands", "benchmarks", "tests", "examples"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 50:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not long, long


def test_no_function_or_constructor_takes_more_than_8_parameters():
    """Typed objects passed whole (a NetworkSpec, a Job, a method's hyper-parameter section), not their fields."""
    wide = []
    for folder in ("pipeline", "stages", "commands"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    a = node.args
                    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs] + [x.arg for x in (a.vararg,
                                                                                               a.kwarg) if x]
                    if len([n for n in names if n not in ("self", "cls")]) > 8:
                        wide.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}")
    assert not wide, wide


def test_timings_record_what_ran_and_nothing_that_failed(tmp_path):
    import subprocess
    import sys

    script = str(REPO / "benchmarks/timings.py")
    subprocess.run([sys.executable, script, "time", "quick", "--", "true"], cwd=tmp_path, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, script, "size", "folder", "."], cwd=tmp_path, check=True)
    failed = subprocess.run([sys.executable, script, "time", "bad", "--", "false"], cwd=tmp_path, capture_output=True,
                            text=True)
    assert failed.returncode == 1 and "nothing recorded" in failed.stderr
    data = json.loads((tmp_path / "reports/timings.json").read_text())
    assert set(data) == {"quick", "folder"} and data["quick"]["command"] == "true"
    assert 0 <= data["quick"]["seconds"] < 30 and data["folder"]["mb"] >= 0 and data["quick"]["cpu"]
