"""An ``mlflow server`` run as a child process: for the paper's launchers (one server for every shard, since
SQLite written by many processes over a network file system is not safe) and for the tests.

One process writes the SQLite file; the shards, on any node that reaches ``host``, log over HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

START_TIMEOUT_S = 120  # the server imports MLflow and migrates a new database: ~10 s on 2 cores


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on ``host`` and a free port, with the SQLite store ``db`` and artifacts in ``artifacts``
    (by default a store of its own in ``root``); ``log`` gets its output."""

    def __init__(self, root: Path, db: Path | None = None, artifacts: Path | None = None, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None) -> None:
        self.root, self.host, self.port, self.proc = root, host, free_port(host), None
        self.db, self.artifacts = db or root / "server.db", artifacts or root / "server-artifacts"
        self.log, self.env = root / "server.log", env

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        mlflow = Path(sys.executable).with_name("mlflow")
        cmd = [str(mlflow), "server", "--host", self.host, "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{self.db}", "--artifacts-destination", str(self.artifacts)]
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env or dict(os.environ), stdout=log,
                                         stderr=log, start_new_session=True)
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mlflow server exited ({self.proc.returncode}); its log, {self.log}:\n"
                                       f"{self.log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server did not start within {START_TIMEOUT_S} s (its log: {self.log})")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop it (``SIGKILL``: an outage, not a clean shutdown)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
