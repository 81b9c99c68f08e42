"""requirements.lock pins every dependency of pyproject.toml, and the environment runs on those pins."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")


def pins() -> dict[str, str]:
    lines = (REPO / "requirements.lock").read_text().splitlines()
    return {canonicalize_name(m[1]): m[2] for ln in lines if (m := PIN.match(ln))}


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def test_lock_matches_pyproject():
    """Regenerate with `make lock` when this fails: a dependency was added or its range moved."""
    locked = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name}: in pyproject.toml, not in requirements.lock (run `make lock`)"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"{req.name}: requirements.lock pins {locked[name]}, pyproject.toml asks for {req.specifier} (`make lock`)"
    header = (REPO / "requirements.lock").read_text()
    assert "pip-compile --extra=test" in header and "pyproject.toml" in header


def test_environment_is_the_lock():
    """`make test` installs requirements.lock: every pinned package is installed at its pinned version."""
    wrong = {}
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or installed.split("+")[0] != version.split("+")[0]:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from requirements.lock (pinned, installed): {wrong}"
