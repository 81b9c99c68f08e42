"""What the default pipeline costs: compute, speed against the CPU's peak, stage wall times.

    python benchmarks/cost.py [--steps 30] [--params params.yaml]    # per training step of every role
    python benchmarks/cost.py --run                                   # + `dvc repro` of a fresh copy, timed
    python benchmarks/cost.py --run --parallel                        # + two experiments at -j 1 and -j 2

Per role (random weights, a random batch at params.yaml's sizes, on the device train.device picks):
GFLOP of one training step (forward and backward, teachers' forwards included, as
``torch.utils.flop_counter`` counts, beside what the roles table's accounting counts:
:meth:`pipeline.roles.Role.step_gflop`, as the paper's compute-matched rows), the bare step's seconds
and images/s, the achieved GFLOP/s against a convolution and a matmul peak measured here in the same
dtype, and the projected stage.
The total is the TFLOP of all training steps of the run (validation excluded, printed apart).

``--run`` copies the repository's tracked files to a temporary folder and times ``dvc repro`` there:
each stage's wall time (process start to the next stage, MLflow logging included), and the training
loop's images/s (iterations x batch / the stage's ``train_seconds``, validation and checkpoints
included) against the bare step's; then a no-op ``dvc repro`` and three experiments: one that changes
only the distillation, one that changes the LAD teacher, and one back to the default (run cache).
``--parallel`` then queues two distillation-only experiments twice: run with ``-j 1``, and with
``-j 2`` and ``LAD_THREADS`` set to half the cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from pipeline.config import Config, load_config
from pipeline.distributed import pick_device
from pipeline.evaluate import autocast
from pipeline.io import copy_repo, cpu_name
from pipeline.models import count_flops, segmentor_from_config
from pipeline.optim import AMP_DTYPES, make_optimizer
from pipeline.roles import ROLES
from pipeline.training import build

REPO = Path(__file__).resolve().parents[1]


def roles(cfg: Config, k: int, ignore: int) -> Iterator[tuple[str, torch.nn.Module, Any, int]]:
    """(role, model, step, iterations) of every role the params train (pipeline.roles), from random weights."""
    def fresh(role: str) -> torch.nn.Module:  # what a warm start or a teacher would read, untrained here
        r = ROLES[role]
        return segmentor_from_config(r.net(cfg), k, r.in_chans)

    offline = cfg.model_copy(update={"model": cfg.model.model_copy(update={
        name: net.model_copy(update={"pretrained": False, "pretrained_path": ""}) for name, net in cfg.model})})
    for role, r in ROLES.items():
        if r.skip(cfg) is None:
            model, step = build(r, offline, k, ignore, fresh, seed=0)
            yield role, model, step, r.schedule(cfg)[0]


def timed(fn: Callable[[], Any], steps: int, device: torch.device, warmup: int = 2) -> float:
    """Seconds per call of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def flops_of(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peaks(device: torch.device, dtype: torch.dtype | None) -> dict[str, float]:
    """GFLOP/s of a large matmul and of a wide 3x3 convolution (forward), in the training dtype."""
    dt = dtype or torch.float32
    a, b = (torch.randn(2048, 2048, device=device, dtype=dt) for _ in range(2))
    x = torch.randn(16, 128, 64, 64, device=device, dtype=dt)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1, bias=False).to(device, dt)
    out = {}
    with torch.no_grad():
        for name, fn in (("matmul 2048^2", lambda: a @ b), ("conv3x3 128ch 64px b16", lambda: conv(x))):
            out[name] = flops_of(fn) / timed(fn, 10, device) / 1e9
    return out


def step_costs(cfg: Config, steps: int, k: int = 6) -> list[dict[str, Any]]:
    """GFLOP and bare seconds of one training step of every role."""
    device = pick_device(cfg.train.device)
    dtype = AMP_DTYPES[cfg.train.amp]
    b, s = cfg.train.batch_size, cfg.train.crop_size
    torch.manual_seed(0)
    image = torch.randn(b, 3, s, s, device=device)
    label = torch.randint(0, k, (b, s, s), device=device)
    rows, forwards = [], {}
    for name, model, step, iters in roles(cfg, k, 255):
        model.to(device).train()
        for attr in ("teacher", "module"):
            if isinstance(getattr(step, attr, None), torch.nn.Module):
                getattr(step, attr).to(device)
        params = list(model.parameters()) + (list(step.module.parameters()) if hasattr(step, "module") else [])
        opt = make_optimizer(cfg.train.optimizer, params, cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay)

        def train_step(step: Any = step, model: torch.nn.Module = model, opt: Any = opt) -> None:
            with autocast(device, dtype):
                loss = step(model, image, label)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        gflop = flops_of(train_step) / 1e9
        sec = timed(train_step, steps, device)
        forwards[name] = count_flops(model, s) / 1e9
        rows.append({"role": name, "gflop": gflop, "sec": sec, "iters": iters, "images_per_s": b / sec})
    for r in rows:  # the roles table's accounting, as the paper's compute-matched rows count it
        r["accounted_gflop"] = b * ROLES[r["role"]].step_gflop(cfg, forwards.__getitem__)
    return rows


def val_gflop(cfg: Config, num_val: int, k: int = 6) -> float:
    """GFLOP of the validations during training: forward passes over the val images at each interval."""
    t = cfg.train
    model = segmentor_from_config(cfg.model.student, k).eval()
    with torch.no_grad():
        per_image = flops_of(lambda: model(torch.zeros(1, 3, cfg.synthetic.size, cfg.synthetic.size))) / 1e9
    validations = t.iters // t.val_interval + (t.iters % t.val_interval != 0) if t.val_interval else 1
    return per_image * num_val * validations * 3  # three trained models of the default


def timed_command(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, dict[str, float]]:
    """Run ``cmd`` (streaming its output); returns its wall time and each DVC stage's share of it."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    tail: list[str] = []
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            tail = [*tail[-40:], line]
            if line.startswith("Running stage '"):
                marks.append((line.split("'")[1], time.perf_counter()))
        if proc.wait() != 0:
            raise SystemExit(f"{' '.join(cmd)} failed in {cwd}; its last lines:\n{''.join(tail)}")
    end = time.perf_counter()
    stages = {name: (marks[i + 1][1] if i + 1 < len(marks) else end) - t for i, (name, t) in enumerate(marks)}
    return end - start, stages


def run_pipeline(rows: list[dict[str, Any]], cfg: Config, parallel: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="lad-cost-") as tmp:
        repo = copy_repo(REPO, Path(tmp))
        wall, stages = timed_command(["dvc", "repro"], repo, {"PIPELINE_RUN_ID": "benchmark"})
        print(f"\n`dvc repro` of a fresh copy: {wall:.0f} s wall")
        print(f"{'stage':32s} {'wall s':>8s}")
        for name, sec in stages.items():
            print(f"{name:32s} {sec:8.1f}")
        print(f"\n{'role':24s} {'loop img/s':>10s} {'bare img/s':>10s} {'loop/bare':>9s}")
        for row in rows:
            report = repo / "reports/train/seed0" / f"{row['role']}.json"
            if not report.is_file() or json.loads(report.read_text()).get("skipped"):
                continue
            train = json.loads(report.read_text())
            loop = train["iters"] * train["effective_batch"] / train["train_seconds"]
            print(f"{row['role']:24s} {loop:10.1f} {row['images_per_s']:10.1f} {loop / row['images_per_s']:9.2f}")
        noop, _ = timed_command(["dvc", "repro"], repo)
        print(f"\nno-op `dvc repro` (everything up to date): {noop:.2f} s")
        print(f"\n{'experiment (after the full run)':44s} {'wall s':>8s}  stages run")
        for what, setting in (("distill-only: -S distill.w_kd=2", "distill.w_kd=2"),
                              ("LAD-only: -S lad.noise_std=0.05", "lad.noise_std=0.05"),
                              ("back to the default: -S lad.noise_std=0.03", "lad.noise_std=0.03")):
            wall, ran = timed_command(["dvc", "exp", "run", "-S", setting], repo)
            print(f"{what:44s} {wall:8.0f}  {', '.join(ran) or 'none'}")
        if parallel:
            run_parallel(repo)


def run_parallel(repo: Path) -> None:
    """Two distillation-only experiments, queued, at -j 1 (all cores each) and at -j 2 (cores halved)."""
    half = str(max(1, (os.cpu_count() or 2) // 2))
    print(f"\n{'two queued distill-only experiments':44s} {'wall s':>8s}")
    for jobs, env, values in (("1", {}, ("1", "2")), ("2", {"LAD_THREADS": half}, ("4", "5"))):
        for v in values:
            subprocess.run(["dvc", "exp", "run", "--queue", "-S", f"distill.w_kd={v}"], cwd=repo, check=True,
                           capture_output=True, env={**os.environ, "PATH": f"{Path(sys.executable).parent}"
                                                                          f"{os.pathsep}{os.environ['PATH']}"})
        wall, _ = timed_command(["dvc", "exp", "run", "--run-all", "-j", jobs], repo, env)
        label = f"-j {jobs}" + (f", LAD_THREADS={env['LAD_THREADS']}" if env else ", torch's default threads")
        print(f"{label:44s} {wall:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per role (after 2 warm-up steps)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--run", action="store_true", help="also time `dvc repro` of a fresh copy of the repository")
    parser.add_argument("--parallel", action="store_true", help="with --run: two queued experiments, -j 1 vs -j 2")
    args = parser.parse_args()
    cfg = load_config(args.params)
    device = pick_device(cfg.train.device)
    print(f"CPU: {cpu_name()}")
    print(f"device {device}, dtype {cfg.train.amp if cfg.train.amp != 'none' else 'float32'}, torch threads "
          f"{torch.get_num_threads()}, batch {cfg.train.batch_size}, crop {cfg.train.crop_size}")
    peak = peaks(device, AMP_DTYPES[cfg.train.amp])
    print("peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items()))
    rows = step_costs(cfg, args.steps)
    best = max(peak.values())
    print(f"\n{'role':24s} {'GFLOP/step':>10s} {'s/step':>8s} {'img/s':>7s} {'GFLOP/s':>8s} {'of peak':>7s} "
          f"{'iters':>6s} {'stage s':>8s} {'TFLOP':>7s} {'counted':>7s}")
    total = counted = 0.0
    for r in rows:
        tflop, accounted = r["gflop"] * r["iters"] / 1e3, r["accounted_gflop"] * r["iters"] / 1e3
        total, counted = total + tflop, counted + accounted
        print(f"{r['role']:24s} {r['gflop']:10.2f} {r['sec']:8.4f} {r['images_per_s']:7.0f} "
              f"{r['gflop'] / r['sec']:8.0f} {r['gflop'] / r['sec'] / best:7.0%} {r['iters']:6d} "
              f"{r['sec'] * r['iters']:8.0f} {tflop:7.2f} {accounted:7.2f}")
    num_val = cfg.synthetic.num_val if cfg.data.name == "synthetic" else 0
    print(f"{'all training steps':24s} {'':10s} {'':8s} {'':7s} {'':8s} {'':7s} {'':6s} "
          f"{sum(r['sec'] * r['iters'] for r in rows):8.0f} {total:7.2f} {counted:7.2f}")
    print("(TFLOP: the step as torch's FLOP counter measures it; counted: pipeline.roles' accounting of the "
          "paper's compute-matched rows, 3 forwards per path plus the teacher's, each role's own steps)")
    if num_val:
        print(f"(validation during training, forward only: {val_gflop(cfg, num_val) / 1e3:.2f} TFLOP more)")
    if args.run:
        run_pipeline(rows, cfg, args.parallel)


if __name__ == "__main__":
    main()
