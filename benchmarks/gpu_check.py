"""The CUDA path at the VOC recipe's shapes: speed and memory per role and precision, and resume.

    bash benchmarks/gpu_check.sh                     # one process, then torchrun over every GPU
    python benchmarks/gpu_check.py --amp bf16 fp16   # one process (what the script runs first)

Builds the VOC recipe's networks (``recipes/voc_deeplabv3_r18.yaml``: DeepLabV3-R18 student, its
label-assisted teacher, the distilled student; no ImageNet weights needed) and trains each for
``--iters`` steps on random 512-px synthetic data with the project's own Trainer, in every precision
of ``--amp`` (fp16 with a GradScaler). Under torchrun it runs DDP with NCCL, ``--batch`` per process.
Prints s/iteration (median over logging windows after the first), images/s, peak memory, the GPU and the
step's model FLOPs utilisation (MFU: the roles table's training FLOPs per image, as the compute-matched rows
count them, times images/s, over the GPU's dense bf16 peak), and writes them to ``--out``
(``reports/gpu_check.json``, which ``make timings`` folds into the README). The speed switches are the
pipeline's own (params.yaml ``run``: channels-last and cuDNN autotuning on CUDA; ``--compile``: torch.compile).
Then a kill-and-resume check: a run that dies mid-way resumes from its checkpoint at the right
iteration and ends close to an uninterrupted run (CUDA kernels need not be bit-reproducible).
The official code's VOC distillation ran at 1.2 s/iteration on 2 GPUs (batch 16 in all).
On a CPU with tiny sizes it runs the same logic (``tests/test_gpu_check.py``).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.recipes import training_gflop  # noqa: E402
from pipeline import distributed  # noqa: E402
from pipeline.config import Config, config_from_dict, load_yaml  # noqa: E402
from pipeline.data import make_dataset, prepare_index  # noqa: E402
from pipeline.engine import Checkpoints, Job, Schedule, SegData, Trainer  # noqa: E402
from pipeline.io import cpu_name, git_commit, write_json  # noqa: E402
from pipeline.models import segmentor_from_config  # noqa: E402
from pipeline.overlays import recipe  # noqa: E402
from pipeline.roles import ROLES  # noqa: E402
from pipeline.training import build  # noqa: E402

ROLES_CHECKED = ("baseline", "teacher", "student")  # the student distils from a teacher of random weights
# dense bf16 tensor-core peaks, TFLOP/s, from each vendor sheet (SXM parts; no sparsity); --peak-tflops otherwise
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,
                    "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "RTX 4090": 165.0}
OUT = REPO / "reports" / "gpu_check.json"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="voc_deeplabv3_r18", help="recipes/<name>.yaml: the networks and optimiser")
    p.add_argument("--crop", type=int, default=512, help="square training crop, pixels (the recipe's 512)")
    p.add_argument("--batch", type=int, default=8, help="images per step and process (the recipe's 8)")
    p.add_argument("--iters", type=int, default=50, help="steps timed per role and precision")
    p.add_argument("--amp", nargs="+", default=["bf16", "fp16"], choices=["none", "bf16", "fp16"])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu", "auto"])
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers")
    p.add_argument("--skip-resume", action="store_true", help="no kill-and-resume check")
    p.add_argument("--compile", action="store_true", help="torch.compile each network (params.yaml run.compile)")
    p.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, TFLOP/s (default: by its name)")
    p.add_argument("--out", type=Path, default=OUT, help="the figures as JSON (make timings puts them in the README)")
    args = p.parse_args(argv)
    if args.iters < 4 or args.batch < 1 or args.crop < 16:
        p.error(f"--iters >= 4, --batch >= 1 and --crop >= 16 are needed, got {args.iters}, {args.batch}, {args.crop}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: torch sees no CUDA device (use --device cpu to try the logic)")
    return args


def check_config(args: argparse.Namespace, data_root: Path) -> Config:
    """The recipe applied to params.yaml, at this check's sizes, without ImageNet weights (none offline)."""
    params = recipe(str(REPO / "recipes" / f"{args.recipe}.yaml")).merged(
        load_yaml((REPO / "params.yaml").read_text()))
    for net in params["model"].values():
        net["pretrained"], net["pretrained_path"] = False, ""
    params["data"].update(name="synthetic", root=str(data_root))
    params["run"]["cache_images"] = True
    params["synthetic"].update(size=args.crop, num_train=2 * args.batch, num_val=2)
    params["train"].update(crop_size=args.crop, batch_size=args.batch, iters=args.iters, device=args.device,
                           val_interval=0, amp="none", nproc=1)
    params["run"].update(num_workers=args.workers, compile=args.compile)
    return config_from_dict(params)


def timed_run(cfg: Config, role: str, data: SegData, amp: str, ctx: distributed.Context, ckpt_interval: int = 10**9,
              resume_dir: Path | None = None, log_fn: Any = None) -> Trainer:
    """Train ``role`` for ``train.iters`` steps in precision ``amp``; returns the finished trainer."""
    k, r = len(data.classes), ROLES[role]

    def fresh(name: str) -> torch.nn.Module:  # the teacher: random weights of its network
        return segmentor_from_config(ROLES[name].net(cfg), k, ROLES[name].in_chans)

    model, step = build(r, cfg, k, data.ignore_index, fresh, seed=0, device=ctx.device)
    run = cfg.run.model_copy(update={"log_interval": max(1, cfg.train.iters // 5), "ckpt_interval": ckpt_interval})
    job = Job(Schedule(cfg.train.iters, cfg.train.lr), desc=f"{role} {amp}", log_fn=log_fn)
    trainer = Trainer(model.to(ctx.device), step, data, cfg.train.model_copy(update={"amp": amp}), run, job,
                      Checkpoints(resume_dir) if resume_dir else None, ctx)
    trainer.fit()
    return trainer


def peak_tflops(ctx: distributed.Context, given: float | None) -> float | None:
    """The GPU's dense bf16 peak: ``given``, else by its name (None: unknown, or a CPU)."""
    if given or ctx.device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(ctx.device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def speed_row(trainer: Trainer, role: str, amp: str, ctx: distributed.Context, gflop: float,
              peak: float | None) -> dict[str, Any]:
    """Speed of a finished run; ``gflop``: training GFLOP per image per step, ``peak``: TFLOP/s per GPU."""
    rows = trainer.history["train"][1:] or trainer.history["train"]  # the first window holds the warm-up
    sec = statistics.median(r["sec_per_iter"] for r in rows)
    mem = torch.cuda.max_memory_allocated(ctx.device) / 2**20 if ctx.device.type == "cuda" else None
    images = trainer.effective_batch / sec
    tflops = gflop * images / ctx.world_size / 1e3  # achieved, per GPU
    return {"role": role, "amp": trainer.amp, "asked": amp, "sec_per_iter": sec, "images_per_s": images,
            "peak_mib": mem, "tflops_per_gpu": tflops, "mfu": tflops / peak if peak else None,
            "channels_last": trainer.channels_last}


def resume_check(cfg: Config, data: SegData, ctx: distributed.Context, workdir: Path) -> dict[str, Any]:
    """Die after the checkpoint of iteration ``iters // 2``, resume, compare with an uninterrupted run."""
    half = cfg.train.iters // 2

    def die(metrics: dict[str, float], step: int) -> None:
        if step > half:
            raise KeyboardInterrupt

    straight = timed_run(cfg, "baseline", data, "none", ctx)
    try:
        timed_run(cfg, "baseline", data, "none", ctx, resume_dir=workdir, ckpt_interval=half, log_fn=die)
    except KeyboardInterrupt:
        pass
    resumed = timed_run(cfg, "baseline", data, "none", ctx, resume_dir=workdir, ckpt_interval=half)
    diff = max((a.float() - b.float()).abs().max().item() for a, b in
               zip(straight.module.state_dict().values(), resumed.module.state_dict().values()))
    return {"resumed_from": resumed.resumed_from, "expected": half, "final_iteration": resumed.iteration,
            "max_weight_diff": diff}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse(argv)
    ctx = distributed.setup(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = check_config(args, Path(tmp) / "synthetic")
        # every process generates the same images (same generator seed) in its own folder
        index = prepare_index("synthetic", Path(tmp) / "synthetic", {"train": "train", "val": "val"},
                              cfg.synthetic)
        d = cfg.data
        train = make_dataset(index, "train", d.mean, d.std, True, d.channel_order, crop=args.crop,
                             scale_range=(0.5, 2.0), flip=True)
        data = SegData(train, None, index["classes"], index["ignore_index"])
        rows, peak = [], peak_tflops(ctx, args.peak_tflops)
        gflop = {role: g for role, (_, g) in training_gflop(cfg, len(data.classes)).items()}
        for amp in args.amp:
            for role in ROLES_CHECKED:
                if ctx.device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(ctx.device)
                rows.append(speed_row(timed_run(cfg, role, data, amp, ctx), role, amp, ctx, gflop[role], peak))
        resume = None if args.skip_resume or ctx.distributed else resume_check(cfg, data, ctx, Path(tmp) / "resume")
    if ctx.is_main:
        report(rows, resume, args, ctx, peak)
    distributed.teardown(ctx)
    return rows


def report(rows: list[dict[str, Any]], resume: dict[str, Any] | None, args: argparse.Namespace,
           ctx: distributed.Context, peak: float | None) -> None:
    gpu = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else cpu_name()
    head = (f"{gpu}, {ctx.world_size} process(es) x batch {args.batch}, crop {args.crop}, {args.iters} steps, "
            f"torch {torch.__version__}, recipe {args.recipe}" + (", torch.compile" if args.compile else ""))
    columns = f"{'role':10s} {'amp':5s} {'s/iter':>8s} {'img/s':>8s} {'peak MiB':>9s} {'TFLOP/s':>8s} {'MFU':>6s}"
    print(f"\n{head}\n{columns}")
    print(f"\n{head}\n{columns}")
    for r in rows:
        mfu = f"{100 * r['mfu']:5.1f}%" if r["mfu"] is not None else "   n/a"
        print(f"{r['role']:10s} {r['amp']:5s} {r['sec_per_iter']:8.3f} {r['images_per_s']:8.1f} "
              f"{r['peak_mib'] or 0:9.0f} {r['tflops_per_gpu']:8.1f} {mfu}")
    if peak is None:
        print("MFU: the GPU's bf16 peak is not known here; give it with --peak-tflops")
    ok = None
    if resume:
        ok = resume["resumed_from"] == resume["expected"] and resume["final_iteration"] == args.iters
        print(f"kill and resume: resumed at {resume['resumed_from']} (expected {resume['expected']}), ended at "
              f"{resume['final_iteration']}, largest weight difference from an uninterrupted run "
              f"{resume['max_weight_diff']:.2e}: {'ok' if ok else 'FAILED'}")
    if args.out:
        write_json(args.out, {"device": gpu, "processes": ctx.world_size, "batch": args.batch, "crop": args.crop,
                              "iters": args.iters, "recipe": args.recipe, "compile": args.compile,
                              "torch": torch.__version__, "bf16_peak_tflops": peak, "rows": rows,
                              "resume": {**resume, "ok": ok} if resume else None, "git_commit": git_commit(),
                              "date": datetime.date.today().isoformat()})
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
