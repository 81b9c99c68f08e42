"""Stage ``evaluate --seed N``: every model of one seed on the val split; the teacher three ways.

Models a stage skipped (``baseline_ft``, the comparison rows without ``compare.enabled``) are left out.

Writes ``reports/eval/seed<N>/<model>.json`` (scores, per-class IoU, confusion matrix, params,
FLOPs, batch-1 latency and, for students, the ONNX check) and ``examples.npz`` (a few val images
with every model's prediction, for the report's grid), the seed's summary ``reports/eval/seed<N>.json``
(DVC metrics), and every student as ONNX in ``models/seed<N>/onnx/``. The report averages over seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.checkpoint import load_trained
from pipeline.config import Config
from pipeline.data import eval_loader, load_index, make_dataset
from pipeline.data.dataset import pad_collate
from pipeline.deploy import Preprocess, check_onnx, export_onnx, onnx_problem, torch_latency
from pipeline.distributed import check_amp, pick_device, resolve_amp
from pipeline.evaluate import Inference, evaluate
from pipeline.io import atomic_write, write_json
from pipeline.lad import Channel, LabelChannel
from pipeline.metrics import scores
from pipeline.models import count_flops, count_params
from pipeline.optim import AMP_DTYPES
from pipeline.paths import EXPERIMENT, INDEX, SeedPaths
from pipeline.roles import EVALUATIONS
from pipeline.tracking import stage_run
from pipeline.tracking.datasets import describe_all
from stages.common import run_stage, stage_args

# the params this stage reads (dvc.yaml lists the same; tests/test_roles.py checks)
SECTIONS = ("data", "lad.scale", "lad.noise_std", "distill.codebook", "distill.noise_std", "evaluate", "train.amp",
            "train.crop_size", "train.device")


def input_fn(cfg: Config, index: dict[str, Any], channel: Channel | None) -> Callable | None:
    """What the model sees: the image (None), or image + label channel (random / fixed / zero)."""
    if channel is None:
        return None
    k, ignore, make = len(index["classes"]), index["ignore_index"], LabelChannel.of(channel, cfg.lad, cfg.distill)
    return lambda x, y: make(x, y, k, ignore)


def example_batch(cfg: Config, val: Any, ignore: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, np.ndarray]]:
    """The first val images, padded to one size, for the report's prediction grid: (images, labels,
    ``{"image": uint8 RGB, "label": uint8}``); empty with ``evaluate.num_examples: 0``."""
    n_ex = min(cfg.evaluate.num_examples, len(val))
    if not n_ex:
        return torch.empty(0), torch.empty(0), {}
    images, labels = pad_collate([val[i] for i in range(n_ex)], ignore)
    rgb = images * torch.tensor(cfg.data.std)[:, None, None] + torch.tensor(cfg.data.mean)[:, None, None]
    if cfg.data.channel_order == "bgr":
        rgb = rgb.flip(1)
    return images, labels, {"image": (rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy(),
                            "label": labels.numpy().astype(np.uint8)}


def evaluate_model(name: str, path: Path, cfg: Config, index: dict[str, Any], loader: Any, seed: int,
                   device: torch.device) -> tuple[dict[str, Any], torch.nn.Module, Callable | None]:
    """Scores of one evaluation (:data:`pipeline.roles.EVALUATIONS`) of the checkpoint at ``path``;
    returns (result, model on the CPU, its input function)."""
    k, ignore, classes = len(index["classes"]), index["ignore_index"], index["classes"]
    model, ckpt = load_trained(path, classes)
    codebook = EVALUATIONS[name].label_channel
    fn = input_fn(cfg, index, codebook)
    torch.manual_seed(seed)  # the label noise of the teacher's evaluation is reproducible
    ev = cfg.evaluate
    dtype = AMP_DTYPES[resolve_amp(cfg.train.amp, device)]
    conf = evaluate(model.to(device), loader, k, ignore, fn, Inference.from_config(ev, dtype), device,
                    progress=f"evaluate {name} (seed {seed})")
    model.cpu()
    res = scores(conf, classes)
    spec = ckpt["spec"]
    res.update(model=EVALUATIONS[name].role, label_channel=codebook or "none", arch=spec["arch"],
               backbone=spec["backbone"], channels=spec.get("channels"), params_m=count_params(model) / 1e6,
               gflops=count_flops(model, cfg.train.crop_size) / 1e9, flops_input=cfg.train.crop_size,
               iterations=ckpt["iteration"], confusion=conf.tolist())
    return res, model, fn


@dataclass(frozen=True)
class Deployment:
    """Where a seed's models are timed and exported: its params, files, device and the preprocessing its
    ONNX files carry."""

    cfg: Config
    paths: SeedPaths
    device: torch.device
    preprocess: Preprocess


def deployment(name: str, model: torch.nn.Module, fn: Callable | None, sample: tuple, checked: tuple,
               where: Deployment) -> dict[str, Any]:
    """Batch-1 latency of one evaluation; for a student, its ONNX file (carrying ``where.preprocess``) checked
    by onnxruntime on ``checked``: (images, PyTorch's logits of them or None)."""
    cfg, paths, device, preprocess = where.cfg, where.paths, where.device, where.preprocess
    reps = cfg.evaluate.latency_reps
    with torch.random.fork_rng():  # the label noise drawn here leaves the grid's predictions as they were
        x = fn(*sample) if fn else sample[0]
    out: dict[str, Any] = {}
    if reps:
        out["latency"] = torch_latency(model, x, reps, device, AMP_DTYPES[resolve_amp(cfg.train.amp, device)])
        model.cpu()
    if EVALUATIONS[name].ships:  # the networks that ship: image in, logits out
        onnx, problem = paths.onnx(name), onnx_problem(model)
        if problem:  # said in a note where the file would be, and in the results; the report shows a dash
            atomic_write(onnx.with_suffix(".txt"), lambda tmp: tmp.write_text(f"{name}: not exported: {problem}\n"))
            out["onnx_skipped"] = problem
        else:
            export_onnx(model, onnx, x, preprocess)
            out["onnx"] = {"file": str(onnx), **check_onnx(onnx, model, checked[0], reps, checked[1])}
    return out


def evaluate_all(cfg: Config, seed: int = 0, run_id: str | None = None) -> dict[str, dict[str, Any]]:
    """Evaluate every model of ``seed`` whose checkpoint exists; returns name -> result (each names
    ``run_id``, the MLflow run of this evaluation, as its source)."""
    paths = SeedPaths(seed)
    device = pick_device(cfg.train.device)
    check_amp(cfg.train.amp, device)
    index = load_index(INDEX)
    val = make_dataset(index, "val", cfg.data.mean, cfg.data.std, cfg.run.cache_images, cfg.data.channel_order)
    loader = eval_loader(val, cfg.evaluate.batch_size)
    ex_images, ex_labels, examples = example_batch(cfg, val, index["ignore_index"])
    # one val image at its own size (latency) and the grid's images (or that one: the ONNX check)
    sample = pad_collate([val[0]], index["ignore_index"])
    d = cfg.data
    preprocess = Preprocess.of(index["classes"], index["palette"], d.mean, d.std, d.channel_order, cfg.train.crop_size)
    results: dict[str, dict[str, Any]] = {}
    where = Deployment(cfg, paths, device, preprocess)
    for name, ev in EVALUATIONS.items():
        path = paths.model(ev.role)
        if not path.is_file():
            continue  # skipped: baseline_ft when distill.init is scratch, the comparison rows when off
        results[name], model, fn = evaluate_model(name, path, cfg, index, loader, seed, device)
        checked = (sample[0], None)
        if examples:  # the grid's logits serve the ONNX check too (a student's input is the image alone)
            with torch.no_grad():
                logits = model.eval().predict(fn(ex_images, ex_labels) if fn else ex_images)
            examples[name] = logits.argmax(1).numpy().astype(np.uint8)
            checked = (ex_images, None if fn else logits)
        results[name].update(deployment(name, model, fn, sample, checked, where))
        print(f"{name:16s} mIoU {results[name]['miou']:6.2f}  pixel acc {results[name]['pixel_acc']:6.2f}"
              + (f"  {results[name]['latency']['median_ms']:.2f} ms/image" if "latency" in results[name] else ""))
    for name, res in results.items():
        write_json(paths.eval / f"{name}.json", {**res, "mlflow_run_id": run_id})
    atomic_write(paths.eval / "examples.npz", lambda tmp: np.savez_compressed(tmp, **examples))
    summary = {name: {"miou": round(r["miou"], 3), "pixel_acc": round(r["pixel_acc"], 3),
                      "mean_acc": round(r["mean_acc"], 3)} for name, r in results.items()}
    write_json(paths.eval_metrics, summary)
    return results


def deployment_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``<model>_latency_ms``, ``<model>_onnx_latency_ms`` and ``<model>_onnx_max_abs_diff`` for MLflow."""
    out = {}
    for n, r in results.items():
        if "latency" in r:
            out[f"{n}_latency_ms"] = r["latency"]["median_ms"]
        if "onnx" in r:
            out[f"{n}_onnx_max_abs_diff"] = r["onnx"]["max_abs_diff"]
            if r["onnx"]["ort_median_ms"] is not None:
                out[f"{n}_onnx_latency_ms"] = r["onnx"]["ort_median_ms"]
    return out


def main(cfg: Config, seed: int) -> None:
    with stage_run(f"evaluate@{seed}", EXPERIMENT, {**cfg.sections(*SECTIONS), "seed": seed}, {"seed": seed},
                   system_metrics=True) as run:
        run.log_inputs(describe_all(load_index(INDEX), cfg.data, roles=("val",)))
        results = evaluate_all(cfg, seed, run.tracked_id if run else None)
        run.log_metrics({f"{n}_{m}": r[m] for n, r in results.items() for m in ("miou", "pixel_acc")})
        run.log_metrics(deployment_metrics(results))
        run.log_artifact(SeedPaths(seed).eval, "eval")
        if SeedPaths(seed).onnx("lad_student").parent.is_dir():
            run.log_artifact(SeedPaths(seed).onnx("lad_student").parent, "onnx")


if __name__ == "__main__":
    args = stage_args(__doc__.splitlines()[0])
    run_stage(lambda cfg: main(cfg, args.seed))
