"""requirements.lock pins every dependency of pyproject.toml, installs on every platform it is for, and the
environment runs on its pins."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)\s*(?:;\s*(.+))?$")
# (uv's --python-platform, environment markers, extra environment): the platforms the lock is for
PLATFORMS = {
    "linux-x86_64": ("x86_64-manylinux_2_28", {"sys_platform": "linux", "platform_machine": "x86_64"}, {}),
    "linux-aarch64": ("aarch64-manylinux_2_28", {"sys_platform": "linux", "platform_machine": "aarch64"}, {}),
    # onnxruntime's macOS wheels are for macOS 14 (Sonoma) and newer
    "macos-arm64": ("aarch64-apple-darwin", {"sys_platform": "darwin", "platform_machine": "arm64"},
                    {"MACOSX_DEPLOYMENT_TARGET": "14.0"}),
}


def pins(env: dict[str, str] | None = None) -> dict[str, str]:
    """Package -> pinned version; with ``env`` (marker variables), only the pins whose markers hold there."""
    lines = (REPO / "requirements.lock").read_text().splitlines()
    full = {**default_environment(), "python_version": "3.11", "python_full_version": "3.11.7", **(env or {})}
    return {canonicalize_name(m[1]): m[2] for ln in lines if (m := PIN.match(ln))
            and (env is None or m[3] is None or Marker(m[3]).evaluate(full))}


def requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_lock_matches_pyproject(platform):
    """Regenerate with `make lock` when this fails: a dependency was added or its range moved."""
    locked = pins(PLATFORMS[platform][1])
    for req in requirements():
        if req.marker and not req.marker.evaluate({**default_environment(), **PLATFORMS[platform][1]}):
            continue
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name}: in pyproject.toml, not in requirements.lock (run `make lock`)"
        assert req.specifier.contains(locked[name], prereleases=True), \
            f"{req.name}: requirements.lock pins {locked[name]}, pyproject.toml asks for {req.specifier} (`make lock`)"
    header = (REPO / "requirements.lock").read_text()
    assert "uv pip compile pyproject.toml --extra test --universal" in header
    assert any(n.startswith("nvidia-") for n in locked) == platform.startswith("linux")  # torch's CUDA build


def index_url() -> str:
    """The package index uv reads (its own variable, pip's, or PyPI)."""
    return os.environ.get("UV_INDEX_URL") or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/"


def index_problem(url: str, timeout: float = 10.0) -> str | None:
    """Why ``url`` cannot be read (None: it answers)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/uv/", timeout=timeout):
            return None
    except Exception as err:  # noqa: BLE001 - offline, DNS, proxy, TLS: all mean the same here
        return f"{type(err).__name__}: {err}"


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    """uv resolving the lock for every platform at once, as an installer would (a wheel for every package,
    the markers applied): dry runs, nothing downloaded but the index pages; skipped offline."""
    if problem := index_problem(index_url()):
        pytest.skip(f"the package index {index_url()} cannot be reached ({problem}): the per-platform dry runs "
                    "of requirements.lock need it (the other lock tests ran)")
    uv, procs = Path(sys.executable).parent / "uv", {}
    for platform, (target, _, extra_env) in PLATFORMS.items():
        procs[platform] = subprocess.Popen(
            [str(uv), "pip", "install", "--dry-run", "--python-platform", target, "--python-version", "3.11",
             "--target", str(tmp_path_factory.mktemp(platform)), "-r", str(REPO / "requirements.lock")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **extra_env})
    return {p: (proc.communicate(timeout=600)[0], proc.returncode) for p, proc in procs.items()}


@pytest.mark.e2e
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_lock_installs_on_each_platform(platform, dry_runs):
    output, code = dry_runs[platform]
    assert code == 0, output[-3000:]
    would = {canonicalize_name(m[1]) for m in re.finditer(r"^ \+ ([A-Za-z0-9._-]+)==", output, re.M)}
    assert "torch" in would and would == set(pins(PLATFORMS[platform][1]))


def test_environment_is_the_lock():
    """`make test` installs requirements.lock: every package pinned for this platform is installed at its pin."""
    wrong = {}
    for name, version in pins(dict(default_environment())).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or installed.split("+")[0] != version.split("+")[0]:
            wrong[name] = (version, installed)
    assert not wrong, f"installed versions differ from requirements.lock (pinned, installed): {wrong}"


def test_an_unreachable_index_is_a_reason_not_a_failure():
    """Offline, the dry runs skip with the reason; 127.0.0.1:9 (discard) refuses at once."""
    assert "Connection refused" in index_problem("http://127.0.0.1:9/simple/", timeout=2)
