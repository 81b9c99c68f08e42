"""What a trained network costs at inference, and the forms it ships in: ONNX and an MLflow model.

* :func:`latency`: batch-1 forward time, median and p90 after warm-up (CUDA synchronised).
* :func:`export_onnx` / :func:`check_onnx`: the network as ONNX with a dynamic batch and image size
  (not PSPNet: :func:`onnx_problem`),
  run by onnxruntime on real images against PyTorch.
* :class:`Predictor`: the network as people call it, ``image -> logits at the image's size``; this is
  what the MLflow model and the ONNX file hold.
* :class:`Preprocess`: what prediction needs besides the weights (normalisation, channel order, classes,
  palette, window), carried by every checkpoint, ONNX file and MLflow model (``lad-predict`` reads it).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from pipeline.io import atomic_write

if TYPE_CHECKING:
    from pipeline.evaluate import Inference

KEY = "lad_preprocess"  # the metadata key of :class:`Preprocess` in the ONNX file and the MLflow model
WARMUP = 10  # untimed forwards first (fewer when fewer are timed): allocator, caches, lazy initialisation


class Predictor(nn.Module):
    """``(B, C, H, W)`` normalised image(s) -> ``(B, classes, H, W)`` logits (eval mode)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.predict(image)


@dataclass(frozen=True)
class Preprocess:
    """What turns an image file into the network's input, and its output into a coloured mask."""

    classes: list[str]
    palette: list[list[int]]  # class id -> RGB
    mean: list[float]  # per channel of the network's input, 0..1 units
    std: list[float]
    channel_order: str  # "rgb" | "bgr": the order the network was trained on
    window: int  # the training crop, pixels: larger images are predicted in windows of this side
    stride: int  # window step, pixels (2/3 of the window: every pixel seen by one or more windows)

    @classmethod
    def of(cls, classes: list[str], palette: list[list[int]], mean: list[float], std: list[float],
           channel_order: str, crop: int) -> Preprocess:
        """From the class names, palette, the ``data`` params' normalisation and the training crop."""
        return cls(list(classes), [list(map(int, c)) for c in palette], list(mean), list(std), channel_order, crop,
                   max(1, math.ceil(crop * 2 / 3)))

    @classmethod
    def from_checkpoint(cls, ckpt: dict[str, Any], path: str | Path = "checkpoint") -> Preprocess:
        missing = [k for k in ("classes", "palette", "config") if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: the checkpoint has no {', '.join(missing)} (saved by an older version of "
                             "the pipeline: rerun its stage, or predict from its MLflow model)")
        data, train = ckpt["config"]["data"], ckpt["config"]["train"]
        return cls.of(ckpt["classes"], ckpt["palette"], data["mean"], data["std"], data["channel_order"],
                      train["crop_size"])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str, source: str) -> Preprocess:
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: its {KEY!r} metadata is not this project's ({err})") from err

    def tensor(self, bgr: np.ndarray) -> torch.Tensor:
        """A ``(3, H, W)`` normalised float tensor from an ``(H, W, 3)`` uint8 BGR image (OpenCV's order)."""
        image = bgr[:, :, ::-1] if self.channel_order == "rgb" else bgr
        x = (image.astype(np.float32) / 255 - np.float32(self.mean)) / np.float32(self.std)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def inference(self, height: int, width: int) -> Inference:
        """The whole image when it fits the training crop; overlapping windows of the crop's side otherwise."""
        from pipeline.evaluate import WHOLE, Inference  # prediction only: the report stage imports this module

        if max(height, width) <= self.window:
            return WHOLE
        return Inference(mode="slide", crop=self.window, stride=self.stride)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def latency(fn: Callable[[], Any], reps: int, device: torch.device = torch.device("cpu"),
            warmup: int = WARMUP) -> dict[str, float]:
    """Milliseconds per call of ``fn``: median and 90th percentile over ``reps`` timed calls, after
    ``min(warmup, reps)`` untimed ones (a quick check with 2 timed calls does not pay for 10 warm-ups)."""
    warmup = min(warmup, reps)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "reps": reps,
            "warmup": warmup}


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


def export_onnx(model: nn.Module, path: str | Path, example: torch.Tensor, preprocess: Preprocess) -> None:
    """Write ``Predictor(model)`` as ONNX (opset 17) with a dynamic batch, height and width, and ``preprocess``
    in its metadata (key :data:`KEY`), atomically.

    TorchScript-based export: a fraction of a second for these networks, where the dynamo exporter
    takes several seconds per model and needs onnxscript.
    """
    import onnx

    wrapper = Predictor(model).cpu().eval()
    axes = {0: "batch", 2: "height", 3: "width"}

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notices about its own deprecation
            torch.onnx.export(wrapper, (example[:1].cpu(),), str(tmp), input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
                              opset_version=17, dynamo=False)
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {KEY: preprocess.to_json()})
        onnx.save(proto, str(tmp))

    atomic_write(path, write)


@torch.no_grad()
def check_onnx(path: str | Path, model: nn.Module, images: torch.Tensor, reps: int,
               ours: torch.Tensor | None = None) -> dict[str, Any]:
    """Run the ONNX file with onnxruntime (CPU) on ``images``: the largest absolute difference of its
    logits from PyTorch's (``ours``: ``model.predict(images)`` when the caller has it already), and its
    batch-1 latency beside PyTorch's on the same CPU threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same threads as the PyTorch timing
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    if ours is None:
        ours = model.eval().cpu().predict(images.cpu())
    ours = ours.cpu().numpy()
    theirs = session.run(None, {"image": images.cpu().numpy()})[0]
    one = images[:1].cpu().numpy()
    timed = latency(lambda: session.run(None, {"image": one}), reps) if reps else {}
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "images": len(images),
            "ort_median_ms": timed.get("median_ms"), "ort_p90_ms": timed.get("p90_ms"),
            "onnxruntime": ort.__version__}


def weights_digest(model: nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes, values in name order): equal weights, equal digest."""
    import hashlib

    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        t = value.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def signature(num_classes: int, in_chans: int = 3) -> Any:
    """The MLflow signature of a :class:`Predictor`: any batch and image size."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, in_chans, -1, -1), "image")]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, num_classes, -1, -1), "logits")]))


MODEL_CODE = Path(__file__).with_name("mlflow_model.py")  # the MLflow model's code (models from code)
WEIGHTS, NETWORK = "weights", "network"  # its artifact names


def save_mlflow_model(model: nn.Module, path: str | Path, preprocess: Preprocess) -> None:
    """Save ``model`` as an MLflow pyfunc model at ``path`` (a new folder): :mod:`pipeline.mlflow_model` as its
    code, the weights as safetensors and the spec as JSON (nothing pickled), the ``pipeline`` package as its
    code path, its signature, an input example of the training crop's size, and ``preprocess`` in its
    metadata (key :data:`KEY`)."""
    import tempfile

    import mlflow
    from safetensors.torch import save_file

    spec, size = model.spec.to_dict(), preprocess.window
    with tempfile.TemporaryDirectory() as tmp:
        weights, network = Path(tmp) / "model.safetensors", Path(tmp) / "network.json"
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(weights))
        network.write_text(json.dumps(spec, sort_keys=True))
        mlflow.pyfunc.save_model(
            str(path), python_model=str(MODEL_CODE), artifacts={WEIGHTS: str(weights), NETWORK: str(network)},
            code_paths=[str(Path(__file__).parent)], signature=signature(spec["num_classes"], spec["in_chans"]),
            input_example=np.zeros((1, spec["in_chans"], size, size), np.float32),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "timm", "safetensors"],
            metadata={KEY: preprocess.to_json()})


def log_model(run: Any, model: nn.Module, name: str, preprocess: Preprocess, step: int,
              metrics: dict[str, float] | None = None, dataset: dict[str, str] | None = None,
              tags: dict[str, Any] | None = None) -> str:
    """Log ``model`` to the MLflow stage run ``run`` as the LoggedModel ``name`` (:func:`save_mlflow_model`) at
    ``step``, ``metrics`` (evaluated on ``dataset``) linked to it, its weights digest among its ``tags``;
    returns the model's reference (:meth:`pipeline.tracking.StageRun.log_model`)."""
    import tempfile

    from pipeline.tracking.journal import WEIGHTS_TAG

    with tempfile.TemporaryDirectory() as tmp:
        save_mlflow_model(model, Path(tmp) / name, preprocess)
        return run.log_model(Path(tmp) / name, name, step, metrics, dataset,
                             {**(tags or {}), WEIGHTS_TAG: weights_digest(model)})
