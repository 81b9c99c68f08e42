"""What every stage shares: its command line, config loading, threads and clear input errors."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Config, ConfigError, check_networks, load_config
from pipeline.paths import EXPERIMENT, INDEX, SeedPaths  # noqa: F401  (the stages' shared names)


def stage_args(description: str, roles: list[str] | None = None) -> argparse.Namespace:
    """The command line of a per-seed stage: ``[role] --seed N``."""
    parser = argparse.ArgumentParser(description=description)
    if roles:
        parser.add_argument("role", choices=roles)
    parser.add_argument("--seed", type=int, default=0, help="the seed of this run (an entry of params.yaml seeds)")
    return parser.parse_args()


def error_line(err: BaseException) -> str:
    """One readable line for an input error, also when it was raised inside a DataLoader worker.

    A worker's exception reaches the main process with the worker's whole traceback in its message;
    its last line is the original error, which names the file.
    """
    text = str(err).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text


def start_heavy(cfg: Config) -> None:
    """What :func:`run_stage` left out for a ``light`` stage: torch's threads, the backbone names."""
    set_threads()
    check_networks(cfg)


THREADS_ENV = "LAD_THREADS"  # torch threads per stage process: cores / parallel jobs (`dvc exp run -j N`)


def set_threads(env: dict[str, str] = os.environ) -> int | None:
    """Apply ``LAD_THREADS`` to torch (intra-op) and OpenCV; returns it (None: torch's default, all cores).

    Parallel experiments (``dvc exp run --run-all -j N``) must divide the cores: processes that each
    use every core fight over them (docs/experiments.md).
    """
    value = env.get(THREADS_ENV, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"{THREADS_ENV}: expected a whole number of threads >= 1, got {value!r}")
    import cv2
    import torch

    torch.set_num_threads(int(value))
    cv2.setNumThreads(int(value))
    return int(value)


def run_stage(body: Callable[[Config], None], params_file: str = "params.yaml", light: bool = False) -> None:
    """Load and validate the config, run ``body``, and turn input errors into one clear line.

    ``light``: ``body`` may have nothing to do and should then cost a fraction of a second, so neither
    torch's threads nor timm's backbone names are touched here; ``body`` calls :func:`start_heavy` when
    it goes on to build networks.
    """
    try:
        if not light:
            set_threads()
        cfg = load_config(params_file, networks=not light)
        body(cfg)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as err:
        if os.environ.get("LAD_DEBUG"):
            traceback.print_exc()
        print(f"error: {error_line(err)}", file=sys.stderr)
        sys.exit(2)
    finally:
        record_imports()


IMPORT_LOG_ENV = "LAD_IMPORT_LOG"  # a file: each stage process appends the project modules it imported


def project_modules() -> list[str]:
    """The project's source files this process has imported, relative to the repository root."""
    root = Path.cwd().resolve()
    files = {Path(m.__file__).resolve() for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
    return sorted(str(f.relative_to(root)) for f in files
                  if f.is_relative_to(root) and f.parts[len(root.parts)] in ("pipeline", "stages"))


def record_imports() -> None:
    """With ``$LAD_IMPORT_LOG`` set, append this stage's command and imported modules (tests/test_roles.py
    checks them against the stage's dvc.yaml deps)."""
    path = os.environ.get(IMPORT_LOG_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"argv": sys.argv[1:], "module": sys.argv[0], "modules": project_modules()}) + "\n")
