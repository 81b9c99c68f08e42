"""Which pipeline invocation a stage process belongs to: one ``dvc repro``, one ``dvc exp run``, one queued
experiment, one shard of ``commands.paper`` gets one MLflow parent run, whoever launches its stages.

The invocation is, in this order:

1. ``PIPELINE_RUN_ID`` when set (``commands.paper`` sets it per shard; a user may set it to group runs by hand);
2. the nearest ``dvc`` process above this one (``dvc-<pid>-<start ms>``, found with psutil, so on Linux and
   macOS alike): a plain ``dvc repro``, a ``dvc exp run`` in the workspace, and each queued experiment
   (``dvc exp exec-run``, one process per experiment);
3. a new ``manual-<id>``: a stage run by hand.

Under the stage server (:mod:`pipeline.stage_server`) a stage's code runs in a process forked from the server, not
below ``dvc``: the stage process, which *is* below ``dvc``, pins the invocation into the environment it hands
over (:func:`pin`). This module is imported before that hand-off, so it imports nothing heavy.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

ENV = "PIPELINE_RUN_ID"
COMMAND_ENV = "LAD_INVOCATION_COMMAND"  # what launched a pinned invocation, for the parent run's name
DEPTH = 32  # ancestors searched: dvc -> sh -> python is 2 above a stage, a queue worker a few more


@dataclass(frozen=True)
class Invocation:
    """One pipeline invocation: ``key`` groups its stage runs (the parent's ``lad.pipeline_id`` tag),
    ``command`` is what launched it (``dvc repro``, ``dvc exp exec-run``, or ``""``)."""

    key: str
    command: str = ""


def dvc_command(cmdline: list[str]) -> str | None:
    """``dvc repro`` / ``dvc exp run`` for a ``dvc`` command line, as its own executable or as a script run by
    Python (macOS names the process python); None for any other process."""
    at = next((i for i, part in enumerate(cmdline[:2]) if Path(part).stem == "dvc"), None)
    if at is None:
        return None
    words = [a for a in cmdline[at + 1:] if not a.startswith("-")]
    return " ".join(["dvc", *words[:2 if words[:1] in (["exp"], ["queue"]) else 1]])


def dvc_ancestor() -> Invocation | None:
    """The nearest ``dvc`` process above this one, or None (no dvc above, or psutil cannot see it)."""
    try:
        import psutil

        proc = psutil.Process().parent()
        for _ in range(DEPTH):
            if proc is None:
                return None
            command = dvc_command(proc.cmdline())
            if command:
                return Invocation(f"dvc-{proc.pid}-{int(proc.create_time() * 1000)}", command)
            proc = proc.parent()
    except Exception:  # noqa: BLE001 - psutil's AccessDenied, NoSuchProcess, ZombieProcess: no dvc found
        return None
    return None


def current() -> Invocation:
    """This process's invocation (see the module's docstring for the order)."""
    if os.environ.get(ENV):
        return Invocation(os.environ[ENV], os.environ.get(COMMAND_ENV, ""))
    return dvc_ancestor() or Invocation(f"manual-{uuid.uuid4().hex[:8]}")


def pin() -> None:
    """Put the ``dvc`` invocation above this process into ``PIPELINE_RUN_ID``, for a process that hands its
    work to another (the stage server's fork is not below ``dvc``). Without a ``dvc`` above (``commands.paper``,
    a stage run by hand) nothing is pinned: each of the commands it starts finds its own."""
    if not os.environ.get(ENV) and (found := dvc_ancestor()):
        os.environ[ENV] = found.key
        os.environ.setdefault(COMMAND_ENV, found.command)

