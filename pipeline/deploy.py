"""What a trained network costs at inference, and the forms it ships in: ONNX and an MLflow model.

* :func:`latency`: batch-1 forward time, median and p90 after warm-up (CUDA synchronised).
* :func:`export_onnx` / :func:`check_onnx`: the network as ONNX with a dynamic batch and image size
  (not PSPNet: :func:`onnx_problem`),
  run by onnxruntime on real images against PyTorch.
* :class:`Predictor`: the network as people call it, ``image -> logits at the image's size``; this is
  what the MLflow model and the ONNX file hold.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.io import atomic_write

WARMUP = 10  # untimed forwards first: allocator, caches, lazy initialisation


class Predictor(nn.Module):
    """``(B, C, H, W)`` normalised image(s) -> ``(B, classes, H, W)`` logits (eval mode)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.predict(image)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency(fn: Callable[[], Any], reps: int, device: torch.device = torch.device("cpu"),
            warmup: int = WARMUP) -> dict[str, float]:
    """Milliseconds per call of ``fn``: median and 90th percentile over ``reps`` timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "reps": reps}


@torch.no_grad()
def torch_latency(model: nn.Module, x: torch.Tensor, reps: int, device: torch.device,
                  autocast_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """Batch-1 inference latency of ``model`` on ``x`` (one image), with the setting it was timed in."""
    from pipeline.evaluate import autocast

    model = model.eval().to(device)
    x = x[:1].to(device)

    def forward() -> None:
        with autocast(device, autocast_dtype):
            model.predict(x)

    timed = latency(forward, reps, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {**timed, "device": name, "dtype": str(autocast_dtype or torch.float32).removeprefix("torch."),
            "threads": torch.get_num_threads(), "input": list(x.shape)}


def onnx_problem(model: nn.Module) -> str | None:
    """Why ``model`` has no ONNX form for any image size (None: it has). PSPNet's pyramid pools to fixed
    grids (2x2, 3x3, 6x6): ONNX pools only to 1x1 at a size known at run time, and torch exports a fixed
    grid only when the feature map divides into it, which real images' sizes do not."""
    if any(isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size not in (1, (1, 1)) for m in model.modules()):
        return "adaptive average pooling to grids larger than 1x1 (PSPNet's pyramid) has no ONNX export"
    return None


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor) -> None:
    """Write ``Predictor(model)`` as ONNX (opset 17) with a dynamic batch, height and width, atomically.

    TorchScript-based export: a fraction of a second for these networks, where the dynamo exporter
    takes several seconds per model and needs onnxscript.
    """
    wrapper = Predictor(model).cpu().eval()
    axes = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notices about its own deprecation
            torch.onnx.export(wrapper, (example[:1].cpu(),), str(tmp), input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
                              opset_version=17, dynamo=False)

    atomic_write(path, write)


@torch.no_grad()
def check_onnx(path: str | Path, model: nn.Module, images: torch.Tensor, reps: int) -> dict[str, Any]:
    """Run the ONNX file with onnxruntime (CPU) on ``images``: the largest absolute difference of its
    logits from PyTorch's, and its batch-1 latency beside PyTorch's on the same CPU threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same threads as the PyTorch timing
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model = model.eval().cpu()
    ours = model.predict(images.cpu()).numpy()
    theirs = session.run(None, {"image": images.cpu().numpy()})[0]
    one = images[:1].cpu().numpy()
    timed = latency(lambda: session.run(None, {"image": one}), reps) if reps else {}
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "images": len(images),
            "ort_median_ms": timed.get("median_ms"), "ort_p90_ms": timed.get("p90_ms"),
            "onnxruntime": ort.__version__}


def signature(num_classes: int, in_chans: int = 3) -> Any:
    """The MLflow signature of a :class:`Predictor`: any batch and image size."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, in_chans, -1, -1), "image")]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes, -1, -1), "logits")]))


def log_model(run: Any, model: nn.Module, name: str, size: int) -> str:
    """Log ``Predictor(model)`` to the MLflow run ``run`` as ``name``, with its signature and a
    ``size`` x ``size`` input example; returns its ``runs:/`` URI."""
    spec = model.spec
    example = np.zeros((1, spec["in_chans"], size, size), np.float32)
    return run.log_pytorch_model(Predictor(model), name, example, signature(spec["num_classes"], spec["in_chans"]))
