"""``python -m commands.sync``: upload the MLflow operations that stages journaled during a tracker outage.

A stage whose tracker could not be reached kept its runs, metrics, tags and artifacts in
``.mlflow/pending/`` (see :mod:`pipeline.tracking`). The next stage that reaches the tracker uploads
them on its own; this command does it now, e.g. after the server is back. Exit code 1 if the
tracker is still unreachable (the journals stay, nothing is lost or sent twice).
"""

from __future__ import annotations

import argparse
import sys

from pipeline.tracking import connect, describe, pending_dir, sync_pending, tracking_uri
from stages.common import EXPERIMENT


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    pending = sorted(pending_dir().glob("*.jsonl")) if pending_dir().is_dir() else []
    if not pending:
        print(f"nothing to upload ({pending_dir()} holds no journal)")
        return 0
    try:
        client, _ = connect(EXPERIMENT)
        done = sync_pending(client)
    except Exception as err:  # noqa: BLE001 - report, keep the journals
        print(f"error: MLflow tracking at {tracking_uri()} still fails ({describe(err)}); "
              f"{len(pending)} journal(s) kept in {pending_dir()}", file=sys.stderr)
        return 1
    for path, n in done:
        print(f"uploaded {n} operation(s) from {path.name}")
    left = len(pending) - len(done)
    if left:
        print(f"{left} journal(s) left: their stage is still running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
