"""MLflow tracking: one parent run per pipeline run, one child per stage, and outages that cost nothing.

* :mod:`~pipeline.tracking.store`: where the store lives and how a client reaches it. Creating the store
  and finding or creating the parent run happen under a file lock: two fresh processes creating one
  sqlite store at once corrupt it.
* :mod:`~pipeline.tracking.runs`: :func:`stage_run`, the child run of a stage under its pipeline run.
* :mod:`~pipeline.tracking.journal`: if the tracker cannot be reached, a stage's operations go to a
  journal in ``.mlflow/pending/``, replayed by the next stage that reaches it or ``python -m commands.sync``.

* :mod:`~pipeline.tracking.invocation`: which pipeline invocation (``dvc repro``, ``dvc exp run``, a queued
  experiment) a stage belongs to, and so which parent run.

Importing it changes nothing: the client's environment defaults are set when a stage connects. Its names
load on first use, so the stage server's hand-off imports :mod:`~pipeline.tracking.invocation` alone.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Journal": "journal", "pending_dir": "journal", "replay": "journal", "replayable": "journal",
          "sync_pending": "journal", "StageRun": "runs", "parent_run_id": "runs", "stage_run": "runs",
          "connect": "store", "describe": "store", "tracking_uri": "store"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
