"""Atomic file writes (a stage killed mid-write never leaves a file a later stage would take as complete)
and the provenance every output records: the commit, the CPU."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")  # keep the suffix: np.savez adds one otherwise
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def git_commit() -> str:
    """The current git commit (``unknown`` outside a repository)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU model and its vector/matrix flags, as quoted beside every time."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = re.search(r"model name\s*:\s*(.+)", info).group(1).strip()
        flags = set(re.search(r"flags\s*:\s*(.+)", info).group(1).split())
    except (OSError, AttributeError):
        return platform.processor() or platform.machine()
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16")
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(f for f in wanted if f in flags) or 'none of AVX2+'}"


def copy_repo(src: Path, dest: Path, params: dict | None = None) -> Path:
    """The git repository ``src``'s tracked (and not ignored) files, as in its working tree, without run outputs
    (``reports/``, ``dvc.lock``), committed in a fresh git repository at ``dest``; ``params`` (if given) as its
    ``params.yaml``. What ``benchmarks/cost.py --run`` times, and what the tests shrink."""
    import shutil

    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=src,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (src / f).is_file() and not f.startswith(("reports/", "dvc.lock")):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / f, dest / f)
    if params is not None:
        import yaml

        (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "a copy of the project"]):
        subprocess.run(cmd, cwd=dest, check=True, capture_output=True)
    return dest
