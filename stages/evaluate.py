"""Stage ``evaluate``: every trained model on the val split; the teacher three ways.

Writes ``reports/eval/<model>.json`` (scores, per-class IoU, confusion matrix, params, FLOPs),
the summary ``reports/metrics.json`` (DVC metrics) and ``reports/eval/examples.npz`` (a few val
images with every model's prediction, for the report's grid).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from pipeline.config import Config
from pipeline.data import eval_loader, load_index, make_dataset
from pipeline.data.dataset import pad_collate
from pipeline.engine import AMP_DTYPES, load_trained
from pipeline.evaluate import evaluate, predict_logits
from pipeline.io import atomic_write
from pipeline.lad import teacher_input
from pipeline.metrics import scores
from pipeline.models import count_flops, count_params
from pipeline.io import write_json
from pipeline.tracking import stage_run
from stages.common import EVAL, EXPERIMENT, INDEX, METRICS, run_stage
from stages.train import model_path

SECTIONS = ["data", "lad.scale", "distill.codebook", "distill.noise_std", "evaluate", "train.amp",
            "train.crop_size"]

# evaluated name -> (checkpoint role, label channel code book: None = image only, "zero" = empty channel)
EVALUATIONS: dict[str, tuple[str, str | None]] = {
    "baseline": ("baseline", None),
    "baseline_ft": ("baseline_ft", None),
    "lad_student": ("student", None),
    "teacher_random": ("teacher", "random"),
    "teacher_fixed": ("teacher", "fixed"),
    "teacher_zero": ("teacher", "zero"),
}


def input_fn(cfg: Config, index: dict[str, Any], codebook: str | None) -> Callable | None:
    """What the model sees: the image, or image + label channel (random / fixed / zero)."""
    if codebook is None:
        return None
    k, ignore = len(index["classes"]), index["ignore_index"]
    noise = cfg.distill.noise_std if codebook == "fixed" else cfg.lad.noise_std
    book = None if codebook == "zero" else codebook
    return lambda x, y: teacher_input(x, y, k, ignore, book, noise, cfg.lad.scale)


def evaluate_all(cfg: Config) -> dict[str, dict[str, Any]]:
    """Evaluate every model whose checkpoint exists; returns name -> result."""
    index = load_index(INDEX)
    k, ignore, classes = len(index["classes"]), index["ignore_index"], index["classes"]
    val = make_dataset(index, "val", cfg.data.mean, cfg.data.std, cfg.data.cache)
    loader = eval_loader(val, cfg.evaluate.batch_size)
    amp = AMP_DTYPES[cfg.train.amp]
    n_ex = min(cfg.evaluate.num_examples, len(val))
    examples: dict[str, np.ndarray] = {}
    if n_ex:  # the first val images, padded to one size, for the report's prediction grid
        ex_images, ex_labels = pad_collate([val[i] for i in range(n_ex)], ignore)
        rgb = ex_images * torch.tensor(cfg.data.std)[:, None, None] + torch.tensor(cfg.data.mean)[:, None, None]
        examples = {"image": (rgb.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy(),
                    "label": ex_labels.numpy().astype(np.uint8)}
    results: dict[str, dict[str, Any]] = {}
    for name, (role, codebook) in EVALUATIONS.items():
        path = model_path(role)
        if not path.is_file():
            continue  # e.g. baseline_ft when distill.init is scratch
        model, ckpt = load_trained(path, k)
        fn = input_fn(cfg, index, codebook)
        torch.manual_seed(cfg.seed)  # the label noise of the teacher's evaluation is reproducible
        conf = evaluate(model, loader, k, ignore, fn, cfg.evaluate.multi_scale, cfg.evaluate.flip,
                        autocast_dtype=amp, progress=f"evaluate {name}")
        res = scores(conf, classes)
        res.update(model=role, label_channel=codebook or "none", arch=ckpt["spec"]["arch"],
                   backbone=ckpt["spec"]["backbone"], params_m=count_params(model) / 1e6,
                   gflops=count_flops(model, cfg.train.crop_size) / 1e9, flops_input=cfg.train.crop_size,
                   iterations=ckpt["iteration"], confusion=conf.tolist())
        results[name] = res
        if n_ex:
            x = fn(ex_images, ex_labels) if fn else ex_images
            examples[name] = predict_logits(model, x).argmax(1).numpy().astype(np.uint8)
        print(f"{name:16s} mIoU {res['miou']:6.2f}  pixel acc {res['pixel_acc']:6.2f}")
    EVAL.mkdir(parents=True, exist_ok=True)
    for name, res in results.items():
        write_json(EVAL / f"{name}.json", res)
    atomic_write(EVAL / "examples.npz", lambda tmp: np.savez_compressed(tmp, **examples))
    summary = {name: {"miou": round(r["miou"], 3), "pixel_acc": round(r["pixel_acc"], 3),
                      "mean_acc": round(r["mean_acc"], 3)} for name, r in results.items()}
    write_json(METRICS, summary)
    return results


def main(cfg: Config) -> None:
    with stage_run("evaluate", EXPERIMENT, cfg.sections(*SECTIONS)) as run:
        results = evaluate_all(cfg)
        run.log_metrics({f"{n}_{m}": r[m] for n, r in results.items() for m in ("miou", "pixel_acc")})
        run.log_artifact(METRICS)
        run.log_artifact(EVAL, "eval")


if __name__ == "__main__":
    run_stage(main)
