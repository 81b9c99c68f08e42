"""A warm interpreter for stage processes: torch, timm and MLflow imported once, every stage forked from it.

A tiny stage spends most of its ~10 s importing torch (~3 s), timm (which imports torchvision and with
it torch._dynamo, ~3 s) and MLflow (~2.5 s) on a 2-core AMD EPYC. Many tiny stages in a row (the test
suite, the paper's table on the embedded data) pay that every time, so::

    python -m pipeline.stage_server -- dvc exp run ...     # or: -- pytest, -- make paper

starts a server that holds those imports, runs the command with ``LAD_STAGE_SERVER`` naming the
server's socket, and stops the server when the command ends. A stage started under it
(:func:`stages.common.run_stage`) hands the server its command line, folder, environment and standard
streams, and waits. The server forks a child that runs the stage module from the stage's own folder, as
``python -m`` would, and reports its exit status. No project module is preloaded: each child imports
the code of its own checkout.

The stage process stays the one DVC waits for: SIGINT, SIGTERM and SIGHUP sent to it reach the child's
process group, and when it dies (SIGKILL included) the child's process group is killed. When the server
cannot be reached, the stage runs in its own process as usual; so do torchrun's workers, which torchrun
must watch itself. Any ``python -m stages.X`` hands itself over, ``commands.paper`` and its experiments too.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ENV = "LAD_STAGE_SERVER"  # the socket of the server a stage hands itself to ("" or unset: run in-process)
# Third-party modules worth holding: what a training, evaluation or report stage imports first.
PRELOAD = ("numpy", "cv2", "torch", "timm", "yaml", "pydantic", "tqdm", "mlflow",
           "mlflow.store.tracking.sqlalchemy_store", "mlflow.pytorch", "onnx", "onnxruntime", "scipy.stats",
           "matplotlib.pyplot")
# Caches worth filling once: MLflow maps every installed distribution to its modules (~1.3 s) in each
# process that logs a model, and the installed packages do not change while the server runs. (module,
# function); a name missing in another MLflow version is skipped.
WARM_CALLS = (("mlflow.utils.requirements_utils", "_init_modules_to_packages_map"),)
PROJECT = ("pipeline", "stages", "benchmarks", "examples", "tests")  # never inherited: each child imports its own
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
HEADER = struct.Struct("!Q")  # request length, sent with the three standard streams
EXIT = struct.Struct("!i")  # the child's exit status, as a shell reports it (128 + N when killed by signal N)
READY_TIMEOUT_S = 300  # preloading takes ~10 s on 2 cores; far longer means the server failed
STARTING = ".starting"  # beside the socket while the server preloads: a stage started meanwhile waits for it


# --- the stage's side -------------------------------------------------------------------------------


def handoff(path: str) -> None:
    """Run this process's command (``python -m MODULE ARGS``, from ``sys.orig_argv``) in the server at
    ``path`` and exit with its status; return when the server cannot be reached (the caller then runs
    the command itself). Under torchrun (``LOCAL_RANK`` set) a worker stays the process torchrun watches."""
    argv = sys.orig_argv[sys.orig_argv.index("-m") + 1:]
    if "LOCAL_RANK" in os.environ:
        return
    deadline = time.monotonic() + READY_TIMEOUT_S  # the wrapper does not wait for the server: a stage does
    while not os.path.exists(path) and os.path.exists(path + STARTING) and time.monotonic() < deadline:
        time.sleep(0.05)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
    except OSError as err:
        print(f"note: {ENV}={path}: no stage server ({err.strerror}); running in this process", file=sys.stderr)
        conn.close()
        return
    from pipeline.tracking.invocation import pin

    pin()  # the forked stage is not below `dvc`: it learns its pipeline invocation (MLflow parent) from here
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2])
    conn.sendall(request)
    for sig in FORWARDED:  # the child is not in this process group: pass on what this process receives
        signal.signal(sig, lambda signum, _frame: conn.send(bytes([signum])))
    status = recv_exact(conn, EXIT.size)
    sys.exit(EXIT.unpack(status)[0] if status else 1)


def recv_exact(conn: socket.socket, size: int) -> bytes:
    """``size`` bytes from ``conn``, or fewer if it closes first."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


# --- the server's side ------------------------------------------------------------------------------


def serve(path: str) -> None:
    """Preload, listen on ``path`` and fork a supervisor per stage until SIGTERM."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no telemetry thread to fork
    import matplotlib

    matplotlib.use("Agg")  # as pipeline/figures.py: no display
    for name in PRELOAD:
        __import__(name)
    for module, function in WARM_CALLS:
        getattr(sys.modules.get(module) or __import__(module, fromlist=[function]), function, lambda: None)()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.replace(path + ".tmp", path)  # the socket appears only when the server is ready
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        conn, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            supervise(conn)
        conn.close()


def supervise(conn: socket.socket) -> None:
    """Fork the stage, pass on signals, kill it if the stage process dies, report its exit status."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    request = json.loads(recv_exact(conn, HEADER.unpack(header)[0]))
    pid = os.fork()
    if pid == 0:
        conn.close()
        run_child(request, fds)
    for fd in fds:
        os.close(fd)
    while True:
        ready, _, _ = select.select([conn], [], [], 0.05)
        try:
            message = conn.recv(64) if ready else b""
        except ConnectionError:
            message = b""
        if ready and not message:  # the stage process is gone: so is its stage
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os._exit(0)
        for signum in message:
            try:
                os.killpg(pid, signum)
            except ProcessLookupError:  # not yet its own group, or already gone
                os.kill(pid, signum)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            conn.sendall(EXIT.pack(128 - code if code < 0 else code))
            os._exit(0)


def run_child(request: dict, fds: list[int]) -> None:
    """Become the stage process: its streams, folder, environment, signals and project code."""
    os.setsid()  # a process group of its own, killed whole (torchrun's workers, DataLoader workers)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    for sig in FORWARDED + (signal.SIGCHLD,):
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])  # the server's name included: the stage's own stages use it too
    for name in [m for m in sys.modules if m.split(".")[0] in PROJECT]:
        del sys.modules[name]
    sys.path[0] = request["cwd"]  # as `python -m` puts the current folder first
    module, *args = request["argv"]
    sys.argv = [module, *args]  # runpy puts the module's path first, as `python -m` does
    import numpy as np

    np.random.seed()  # a fresh process's unseeded state, not the server's (Python's random reseeds itself)
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001  (reported as an uncaught exception would be)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- the wrapper ----------------------------------------------------------------------------------------


def run_warm(command: list[str]) -> int:
    """Run ``command`` with a stage server; its exit status. The command starts at once, while the server
    preloads (its own start-up overlaps: a stage started meanwhile waits in :func:`handoff` while the
    :data:`STARTING` file is there); if the server ends before it is ready, the file goes and stages run in
    their own processes."""
    folder = Path(tempfile.mkdtemp(prefix="lad-warm-"))
    path = str(folder / "socket")
    starting = Path(path + STARTING)
    starting.touch()
    server = subprocess.Popen([sys.executable, "-m", "pipeline.stage_server", "--serve", path])
    try:
        with subprocess.Popen(command, env={**os.environ, ENV: path}) as proc:
            try:
                while proc.poll() is None:
                    if starting.exists() and server.poll() is not None and not os.path.exists(path):
                        print(f"note: the stage server ended before it was ready (exit status {server.poll()}); "
                              "stages run in their own processes", file=sys.stderr)
                        starting.unlink()
                    time.sleep(0.05)
            except BaseException:  # as subprocess.call: Ctrl-C and the like end the command too
                proc.kill()
                raise
            return proc.returncode
    finally:
        server.terminate()
        server.wait()
        for leftover in folder.iterdir():
            leftover.unlink()
        folder.rmdir()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", metavar="SOCKET", help="be the server itself (what the wrapper starts)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the command to run with the server")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run, e.g. python -m pipeline.stage_server -- dvc repro")
    return run_warm(command)


if __name__ == "__main__":
    sys.exit(main())
