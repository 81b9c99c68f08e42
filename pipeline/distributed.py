"""Several processes through ``torchrun``: process group, device, rank roles, reductions, relaunch.

A stage asked for ``train.nproc > 1`` re-executes itself under ``torchrun`` (:func:`relaunch`); each
worker then calls :func:`setup`. NCCL on CUDA, gloo on CPU. Without torchrun everything here
degrades to a single process (rank 0 of 1), so the same code serves both.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# Extra torchrun flags for multi-node runs, e.g. "--nnodes 2 --node_rank 0 --rdzv_endpoint host:29500".
TORCHRUN_ARGS_ENV = "LAD_TORCHRUN_ARGS"


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Global rank 0: the one process that logs to MLflow and prints progress."""
        return self.rank == 0

    @property
    def writes_files(self) -> bool:
        """Local rank 0: writes checkpoints and reports (one writer per node, for node-local disks)."""
        return self.local_rank == 0


def multi_node() -> bool:
    """Multi-node torchrun flags are set: the stage runs under torchrun even with one process per node."""
    return bool(os.environ.get(TORCHRUN_ARGS_ENV, "").strip())


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def cuda_problem() -> tuple[str | None, bool]:
    """Why torch cannot use CUDA here (None: it can), and whether torch tried and failed: a GPU or driver is
    there but unusable (an old driver, say), rather than a machine without one."""
    with warnings.catch_warnings(record=True) as caught:  # torch says why only as a warning, once per process
        warnings.simplefilter("always")
        usable = torch.cuda.is_available()
    if usable:
        return None, False
    build = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        return f"{build} is a CPU-only build", False
    said = "; ".join(str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip())
    if said:
        return f"{build} (built for CUDA {torch.version.cuda}) cannot initialise CUDA: {said}", True
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        return "CUDA_VISIBLE_DEVICES is set and empty: no GPU is visible to this process", True
    return f"{build} (built for CUDA {torch.version.cuda}) finds no GPU: no NVIDIA driver or device here", False


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``cuda``: this process's GPU, or a clear error naming why CUDA is not usable. ``auto``: the GPU when
    usable, else the CPU, with a warning when a GPU is there but unusable (no silent fall-back)."""
    if name == "cpu":
        return torch.device("cpu")
    problem, gpu_there = cuda_problem()
    if problem is None:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    if name == "cuda":
        raise RuntimeError(f"train.device: 'cuda' asked for, but {problem}")
    if gpu_there:
        print(f"warning: train.device: auto trains on the CPU: {problem} (set train.device: cuda to make this an "
              "error)", file=sys.stderr, flush=True)
    return torch.device("cpu")


def resolve_amp(amp: str, device: torch.device) -> str:
    """``train.amp`` on ``device``: ``auto`` is bf16 on a CUDA GPU with native bf16 (compute capability 8.0
    on), else float32 (``none``: a CPU's bf16 pays only with AMX or AVX512-BF16); others as they are."""
    if amp != "auto":
        return amp
    native = device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)
    return "bf16" if native else "none"


def check_amp(amp: str, device: torch.device) -> None:
    """Mixed precision the device can run, checked when the stage starts on it: fp16 autocast needs CUDA (a
    GradScaler on the GPU); bf16 on a GPU needs native bf16 (emulated, it is slower than float32)."""
    amp = resolve_amp(amp, device)
    if amp == "fp16" and device.type != "cuda":
        raise RuntimeError(f"train.amp: 'fp16' needs CUDA, and this stage runs on {device.type}; use 'bf16' or "
                           "'none' on a CPU")
    if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
        major, minor = torch.cuda.get_device_capability(device)
        raise RuntimeError(f"train.amp: 'bf16' on {torch.cuda.get_device_name(device)} (compute capability "
                           f"{major}.{minor}) has no native bf16; use 'fp16' there")


def setup(device: str = "auto", amp: str = "none") -> Context:
    """Join the process group when started by torchrun; returns this process's :class:`Context`."""
    if not under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        dev = pick_device(device)
        check_amp(amp, dev)
        return Context(device=dev)
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    dev = pick_device(device, local)
    check_amp(amp, dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(minutes=30))
    return Context(rank, world, local, dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: Context) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place; a no-op for one process)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(obj: object, ctx: Context) -> list[object]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
    if not ctx.distributed:
        return [obj]
    out: list[object] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def relaunch(nproc: int, module: str, args: list[str]) -> int:
    """Run ``python -m module args`` under torchrun with ``nproc`` processes per node; its exit code.

    Single node by default (``--standalone`` picks a free port); ``$LAD_TORCHRUN_ARGS`` replaces
    that with multi-node flags.
    """
    extra = shlex.split(os.environ.get(TORCHRUN_ARGS_ENV, "")) or ["--standalone"]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", *extra,
           "-m", module, *args]
    print("launching: " + shlex.join(cmd), flush=True)
    return subprocess.call(cmd)
