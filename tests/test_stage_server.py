"""The stage server (pipeline/stage_server.py): a ``python -m stages.X`` started under it runs forked from the
server, from its own folder and checkout, with its exit status, signals and death passed on."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.stage_server import ENV, STARTING
from tests.conftest import REPO

pytestmark = pytest.mark.e2e  # a server and its forked processes: make test-fast leaves it out

PROBE = '''
import os, sys, time
from pathlib import Path

mode = sys.argv[1]
print("preloaded" if "torch" in sys.modules else "cold", os.getcwd(), os.environ.get("PROBE"), __file__, flush=True)
if mode == "sleep":
    Path("pid").write_text(str(os.getpid()))
    time.sleep(120)
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
'''


@pytest.fixture(scope="module")
def server():
    """The socket of a server started by the wrapper; the wrapper's exit status and folder at the end."""
    wrapper = subprocess.Popen(
        [sys.executable, "-m", "pipeline.stage_server", "--", sys.executable, "-c",
         f"import os, sys; print(os.environ[{ENV!r}], flush=True); sys.stdin.read()"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    path = wrapper.stdout.readline().strip()
    yield path
    wrapper.stdin.close()
    assert wrapper.wait(timeout=60) == 0
    assert not Path(path).parent.exists(), "the wrapper left its socket folder behind"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A checkout with the real stages package and a probe stage."""
    (tmp_path / "stages").mkdir()
    shutil.copy(REPO / "stages/__init__.py", tmp_path / "stages/__init__.py")
    (tmp_path / "stages/probe.py").write_text(PROBE)
    return tmp_path


def start(project: Path, server: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, ENV: server, "PROBE": "from-the-stage", "PYTHONPATH": str(REPO)}  # REPO: pipeline.stage_server
    return subprocess.Popen([sys.executable, "-m", "stages.probe", *args], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_the_stage_runs_in_the_server_with_its_folder_code_environment_and_status(server, project):
    proc = start(project, server, "exit", "3")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert out.split() == ["preloaded", str(project), "from-the-stage", str(project / "stages/probe.py")]


def test_a_signal_reaches_the_stage_and_a_killed_stage_process_takes_it_along(server, project):
    proc = start(project, server, "sleep")
    pid_file = project / "pid"
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM  # the stage's own death, as a shell reports it

    pid_file.unlink()
    proc = start(project, server, "sleep")
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.02)
    child = int(pid_file.read_text())
    proc.kill()  # SIGKILL: nothing forwarded, the server notices the closed connection
    proc.wait()
    for _ in range(100):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the stage outlived its killed stage process")


def test_without_a_server_the_stage_runs_in_its_own_process(project, tmp_path):
    proc = start(project, str(tmp_path / "no-socket"), "exit", "0")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.split()[0] == "cold"
    assert "no stage server" in err


def test_a_stage_waits_for_a_starting_server_and_runs_alone_when_it_never_comes(project, tmp_path):
    """The wrapper does not wait for its server: a stage started while the server preloads waits for it, and
    runs in its own process when the server ends before it was ready (the wrapper removes the marker)."""
    socket_path = tmp_path / "socket"
    marker = Path(f"{socket_path}{STARTING}")
    marker.touch()
    proc = start(project, str(socket_path), "exit", "0")
    time.sleep(1.0)
    assert proc.poll() is None  # waiting for the socket
    marker.unlink()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out.split()[0] == "cold" and "no stage server" in err
