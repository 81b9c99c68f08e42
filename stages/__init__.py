"""Thin DVC stage entry points: read params, call the library, write outputs (``python -m stages.X``).

Under ``python -m pipeline.stage_server`` a stage started as ``python -m stages.X`` runs in a process forked
from a warm interpreter (torch, timm and MLflow already imported): this package, imported before the
stage module and its imports, hands the command to that interpreter and exits with the stage's status.
"""

import os
import sys

if os.environ.get("LAD_STAGE_SERVER") and sys.argv[:1] == ["-m"]:  # `python -m stages.X`, being located
    from pipeline.stage_server import handoff

    handoff(os.environ["LAD_STAGE_SERVER"])  # exits, unless no server answers
