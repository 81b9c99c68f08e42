"""The results flow one way: experiments -> results -> statistics -> words -> files, each step importing only
the steps before it, none of their modules over 300 lines; and no import circle anywhere in pipeline/."""

import ast
from pathlib import Path

from tests.conftest import REPO

STEPS = (("pipeline/experiments",), ("pipeline/results.py",), ("pipeline/statistics.py",), ("pipeline/words",),
         ("pipeline/documents.py", "pipeline/figures.py", "pipeline/readme.py"))


def module_of(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def files(entry: str) -> list[Path]:
    path = REPO / entry
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


MODULES = {module_of(p) for p in (REPO / "pipeline").rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, at the top, inside functions or under ``if TYPE_CHECKING``
    (``from pipeline.data import voc``: the module ``pipeline.data.voc``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES
            found |= subs if len(subs) == len(node.names) else subs | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("pipeline")}
    return found


def step_of(module: str) -> int | None:
    for i, entries in enumerate(STEPS):
        for entry in entries:
            name = module_of(REPO / entry) if entry.endswith(".py") else entry.replace("/", ".")
            if module == name or module.startswith(name + "."):
                return i
    return None


def test_each_step_imports_only_the_steps_before_it():
    wrong = []
    for i, entries in enumerate(STEPS):
        for entry in entries:
            for path in files(entry):
                for target in imports(path):
                    if (j := step_of(target)) is not None and j > i:
                        wrong.append(f"{path.relative_to(REPO)} imports {target} (step {j} after {i})")
    assert not wrong, wrong


def test_no_module_of_the_flow_is_over_300_lines():
    long = {str(p.relative_to(REPO)): n for entries in STEPS for e in entries for p in files(e)
            if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def test_no_import_circle_in_pipeline_type_only_ones_included():
    graph = {}
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        graph[module_of(path)] = imports(path)
    graph = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return trail + [start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, trail + [nxt]))
        return None

    circles = [c for m in graph if (c := cycle_from(m))]
    assert not circles, circles[:3]
