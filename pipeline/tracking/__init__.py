"""MLflow tracking: one parent run per pipeline run, one child per stage, and outages that cost nothing.

* :mod:`~pipeline.tracking.store`: where the store lives and how a client reaches it. Creating the store
  and finding or creating the parent run happen under a file lock: two fresh processes creating one
  sqlite store at once corrupt it.
* :mod:`~pipeline.tracking.runs`: :func:`stage_run`, the child run of a stage under its pipeline run.
* :mod:`~pipeline.tracking.journal`: if the tracker cannot be reached, a stage's operations go to a
  journal in ``.mlflow/pending/``, replayed by the next stage that reaches it or ``python -m stages.sync``.

Importing it changes nothing: the client's environment defaults are set when a stage connects.
"""

from pipeline.tracking.journal import Journal, pending_dir, replay, replayable, sync_pending
from pipeline.tracking.runs import StageRun, parent_run_id, pipeline_id, stage_run
from pipeline.tracking.store import connect, describe, tracking_uri

__all__ = ["Journal", "StageRun", "connect", "describe", "parent_run_id", "pending_dir", "pipeline_id", "replay",
           "replayable", "stage_run", "sync_pending", "tracking_uri"]
