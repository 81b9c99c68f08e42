"""Seconds per training step of every trained model of params.yaml, and what a stage would take.

    python benchmarks/step_time.py [--steps 10] [--params params.yaml]

Random weights and a random batch at params.yaml's sizes (train.batch_size, train.crop_size,
model.*), on the device train.device picks: the optimiser step, forward and backward of each role,
teachers included where a role runs one. The projection multiplies by the role's iterations; data
loading and validation are not included (a real stage adds a few percent).
"""

from __future__ import annotations

import argparse
import time

import torch

from pipeline.config import load_config
from pipeline.dist import pick_device
from pipeline.engine import make_optimizer
from pipeline.methods import create_method_loss
from pipeline.models import create_segmentor
from pipeline.steps import STEPS


def net(cfg, role: str, k: int, in_chans: int = 3) -> torch.nn.Module:
    m = getattr(cfg.model, role)
    return create_segmentor(m.arch, m.backbone, k, in_chans, m.output_stride, m.head_channels, m.aux_channels,
                            False, m.dropout, m.aspp_rates)


def roles(cfg, k: int, ignore: int):
    """(name, model, step, iterations) of every trained role."""
    lad, dst, c = cfg.lad, cfg.distill, cfg.compare
    yield "baseline", net(cfg, "student", k), STEPS["baseline"](k, ignore, cfg.train.w_aux), cfg.train.iters
    yield "lad_teacher", net(cfg, "teacher", k, 4), STEPS["teacher"](
        k, ignore, lad.codebook, lad.noise_std, lad.scale, lad.w_aux, lad.w_cons, lad.temperature, lad.dual_path,
        dst.codebook, dst.noise_std, lad.distance), cfg.train.iters
    yield "lad_student", net(cfg, "student", k), STEPS["distill"](
        net(cfg, "teacher", k, 4), k, ignore, dst.codebook, dst.noise_std, lad.scale, dst.w_kd, dst.temperature,
        dst.w_aux, dst.distance), dst.iters
    yield "conventional_teacher", net(cfg, "conventional_teacher", k), STEPS["baseline"](k, ignore, cfg.train.w_aux), \
        cfg.train.iters
    for m in c.methods:
        s_ch, t_ch = cfg.model.student.head_channels, cfg.model.conventional_teacher.head_channels
        loss = create_method_loss(m, c.hparams.get(m), s_ch, t_ch, k, ignore)
        yield f"distill_{m}", net(cfg, "student", k), STEPS["method"](net(cfg, "conventional_teacher", k), loss,
                                                                       ignore, c.w_aux), c.iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per role (after 2 warm-up steps)")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--classes", type=int, default=6, help="classes (the embedded dataset has 6)")
    args = parser.parse_args()
    cfg = load_config(args.params)
    device = pick_device(cfg.train.device)
    torch.manual_seed(0)
    b, s, k = cfg.train.batch_size, cfg.train.crop_size, args.classes
    image = torch.randn(b, 3, s, s, device=device)
    label = torch.randint(0, k, (b, s, s), device=device)
    print(f"device {device}, batch {b}, crop {s}, torch threads {torch.get_num_threads()}")
    print(f"{'role':24s} {'s/step':>8s} {'iters':>6s} {'stage (s)':>10s}")
    total = 0.0
    for name, model, step, iters in roles(cfg, k, 255):
        model.to(device).train()
        for attr in ("teacher", "module"):
            if isinstance(getattr(step, attr, None), torch.nn.Module):
                getattr(step, attr).to(device)
        params = list(model.parameters()) + (list(step.module.parameters()) if hasattr(step, "module") else [])
        opt = make_optimizer(cfg.train.optimizer, params, cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay)
        for i in range(args.steps + 2):
            if i == 2:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
            loss = step(model, image, label)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        sec = (time.perf_counter() - t0) / args.steps
        total += sec * iters
        print(f"{name:24s} {sec:8.3f} {iters:6d} {sec * iters:10.0f}")
    print(f"{'all trained stages':24s} {'':8s} {'':6s} {total:10.0f}")


if __name__ == "__main__":
    main()
