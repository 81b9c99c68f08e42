"""A single-node Slurm cluster where the tests run, for one test: munged, slurmctld and slurmd on 127.0.0.1 and
free ports, every file in a temporary folder, the configuration in ``SLURM_CONF`` (tests run in parallel:
two clusters never share a port or a state folder). Debian's ``slurm-wlm`` and ``munge`` come from
``tests/install_slurm.sh`` (``make test`` runs it); :func:`missing` says why a test must skip without them.

Settings a root-run node needs: ``proctrack/linuxproc`` and ``task/none`` (no cgroups), the node line of
``slurmd -C``, ``cred_expire=5`` (a requeued task is eligible again after 5 s, not 121) and a scheduler that
looks every 2 s. Without accounting ``sacct`` fails: jobs are watched with ``squeue``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from pipeline.tracking.server import free_port

DAEMONS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def missing() -> str | None:
    """Why no cluster can start here (None: it can)."""
    if absent := [d for d in DAEMONS if not shutil.which(d)]:
        how = "tests/install_slurm.sh installs them as root with apt-get" if os.geteuid() != 0 or not \
            shutil.which("apt-get") else "run tests/install_slurm.sh (make test does)"
        return f"Slurm or munge missing ({', '.join(absent)}); not root or no apt-get here, or not installed: {how}"
    if os.geteuid() != 0:
        return "a single-node Slurm for tests runs its daemons as root (SlurmUser=root); not root here"
    return None


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        # munged wants every folder above its socket open to all (pytest's are 0700): one of its own in /tmp
        self.munge = Path(tempfile.mkdtemp(prefix="lad-munge-"))
        self.socket = self.munge / "socket"
        self.procs: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True, text=True, check=check)

    def write_conf(self) -> None:
        node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
        host = socket.gethostname()
        r = self.root
        self.conf.write_text("\n".join([
            f"ClusterName=lad{free_port()}", "SlurmctldHost=localhost(127.0.0.1)",
            f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.socket},cred_expire=5",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool", f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd.pid", f"SlurmctldLogFile={r}/slurmctld.log", f"SlurmdLogFile={r}/slurmd.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core", "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none", "MpiDefault=none", "MailProg=/bin/true", "ReturnToService=2",
            "SchedulerParameters=sched_interval=2,bf_interval=2", "KillWait=10", "MinJobAge=600",
            f"{node} NodeHostname={host} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName=debug Nodes={node.split()[0].split('=')[1]} Default=YES MaxTime=INFINITE State=UP", ""]))

    def start(self) -> Cluster:
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        m = self.munge
        os.chmod(m, 0o755)  # munged: "execute permissions for all required"
        subprocess.run(["mungekey", "-c", "-k", str(m / "munge.key")], check=True, capture_output=True)
        files = [f"--key-file={m}/munge.key", f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log",
                 f"--seed-file={m}/munged.seed"]
        proc = subprocess.run(["munged", f"--socket={self.socket}", *files], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AssertionError(f"munged failed ({proc.returncode}): {proc.stderr.strip()}")
        self.write_conf()
        for daemon in ("slurmctld", "slurmd"):
            log = (self.root / f"{daemon}.out").open("w")
            self.procs.append(subprocess.Popen([daemon, "-D"], env={**os.environ, **self.env}, stdout=log,
                                               stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.time() + 60
        while time.time() < deadline:
            state = self.command("sinfo", "-h", "-o", "%T", check=False).stdout.strip()
            if state in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.5)
        raise AssertionError(f"the node is not idle after 60 s ({state!r}); {self.root}/slurmctld.log:\n"
                             f"{(self.root / 'slurmctld.log').read_text()[-2000:]}")

    def jobs(self) -> list[str]:
        return self.command("squeue", "-h", "-r", "-o", "%i", check=False).stdout.split()

    def stop(self) -> None:
        """Cancel every job and wait for an empty queue (a stopped slurmd leaves its jobs behind), then the
        daemons and munged."""
        self.command("scancel", "--full", "--user", "root", check=False)
        deadline = time.time() + 60
        while self.jobs() and time.time() < deadline:
            time.sleep(1)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        pid = self.munge / "munged.pid"
        if pid.is_file():
            try:
                os.kill(int(pid.read_text()), 15)
            except (ProcessLookupError, ValueError):
                pass
        shutil.rmtree(self.munge, ignore_errors=True)
