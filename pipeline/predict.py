"""``lad-predict``: segment images with a trained network, from any folder, with no ``params.yaml`` or ``data/``.

    lad-predict IMAGE_OR_FOLDER [...] [--model MODEL] --out DIR [--device auto] [--batch-size 4]

``--model`` is one of

* an MLflow model URI: ``models:/lad-student@candidate`` (the default: the alias the ``report`` stage sets),
  ``models:/lad-student/3``, ``runs:/<run id>/student``; the tracking server from ``--tracking-uri``,
  ``MLFLOW_TRACKING_URI``, or in the project folder its own store (``.mlflow/mlflow.db``);
* a checkpoint file of the pipeline (``models/seed0/student.pt``);
* an ONNX file of the ``evaluate`` stage (``models/seed0/onnx/lad_student.onnx``), run by onnxruntime.

Each carries what prediction needs (:class:`Preprocess`: normalisation, channel order, class names,
palette, window): the checkpoint in its metadata, the ONNX file in its metadata properties, the MLflow
model in its ``MLmodel`` metadata. For each image it writes ``<name>.png``, the mask (a palette PNG whose
pixel values are the class ids), and ``<name>_overlay.jpg``, the mask blended over the image. Images
larger than the training crop are predicted in overlapping windows of that size.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.deploy import KEY, Preprocess
from pipeline.evaluate import predict_logits

DEFAULT_MODEL = "models:/lad-student@candidate"  # params.yaml's evaluate.registered_model and the report's alias
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
OVERLAY_ALPHA = 0.5  # the mask's weight in the overlay


@dataclass
class Loaded:
    """A network ready to predict: ``logits(x)`` maps ``(B, 3, H, W)`` to ``(B, K, H, W)`` logits."""

    logits: Callable[[torch.Tensor], torch.Tensor]
    preprocess: Preprocess
    device: torch.device
    source: str


def pick(device: str) -> torch.device:
    """``auto`` is CUDA when usable, else the CPU; ``cuda`` without a usable CUDA device is an error naming why
    (the training stages' diagnosis, :func:`pipeline.distributed.cuda_problem`)."""
    from pipeline.distributed import cuda_problem

    if device != "auto" and torch.device(device).type != "cuda":
        return torch.device(device)
    problem, _ = cuda_problem()
    if device == "auto":
        return torch.device("cpu" if problem else "cuda")
    if problem:
        raise ValueError(f"--device {device}: no usable CUDA device ({problem})")
    return torch.device(device)


def image_only(spec: dict[str, Any], source: str) -> None:
    if spec.get("in_chans", 3) != 3:
        raise ValueError(f"{source}: this network takes {spec['in_chans']} input channels (a LAD teacher sees the "
                         "label too); predict with a student or the baseline")


def load_checkpoint_model(path: Path, device: torch.device) -> Loaded:
    from pipeline.checkpoint import load_trained

    model, ckpt = load_trained(path)
    image_only(ckpt["spec"], str(path))
    model = model.to(device).eval()
    return Loaded(model.predict, Preprocess.from_checkpoint(ckpt, path), device, str(path))


def load_onnx_model(path: Path, device: torch.device) -> Loaded:
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), providers=providers)
    meta = session.get_modelmeta().custom_metadata_map
    if KEY not in meta:
        raise ValueError(f"{path}: the ONNX file has no {KEY!r} metadata (not exported by this pipeline's "
                         "evaluate stage)")

    def logits(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"image": x.cpu().numpy()})[0])

    return Loaded(logits, Preprocess.from_json(meta[KEY], str(path)), torch.device("cpu"), str(path))


def tracking_store(tracking_uri: str | None) -> str:
    """The tracking URI an MLflow model URI is looked up in: ``--tracking-uri``, else the project's own store when
    run in the project folder. Without either it is an error, before MLflow would create an empty store
    (``mlflow.db``) in the user's folder."""
    local = Path(".mlflow/mlflow.db")  # the project's own store, when run in the project folder
    if tracking_uri:
        return tracking_uri
    if local.is_file():
        return f"sqlite:///{local.resolve()}"
    raise ValueError("no MLflow store to look the model up in: give --tracking-uri (or MLFLOW_TRACKING_URI), run "
                     "lad-predict in the project folder (its .mlflow/mlflow.db), or pass a .pt or .onnx file")


def load_mlflow_model(uri: str, device: torch.device, tracking_uri: str | None) -> Loaded:
    """An MLflow model of this pipeline: the pyfunc model of :mod:`pipeline.mlflow_model` (safetensors weights,
    nothing unpickled), or one logged by older versions (MLflow's PyTorch flavour, a pickled module: loaded
    with MLflow's pickle gate opened for this model only, as it comes from the project's own runs)."""
    import mlflow

    from pipeline.tracking.store import quiet

    quiet()
    mlflow.set_tracking_uri(tracking_store(tracking_uri))
    try:
        info = mlflow.models.get_model_info(uri)
    except Exception as err:  # noqa: BLE001 - MLflow raises many kinds: no such model, alias, server
        raise ValueError(f"{uri}: not found in the MLflow store {mlflow.get_tracking_uri()} "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:300]})") from err
    meta = (info.metadata or {}).get(KEY)
    if meta is None:
        raise ValueError(f"{uri}: the MLflow model has no {KEY!r} metadata (logged by an older version of the "
                         "pipeline: predict from its checkpoint)")
    if "pytorch" in info.flavors:  # before LoggedModels: a pickled Predictor
        from unittest import mock

        with mock.patch.dict(os.environ, {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}):  # restored after
            model = mlflow.pytorch.load_model(uri, map_location=device)
    else:
        model = mlflow.pyfunc.load_model(uri).unwrap_python_model().net  # a Predictor: logits at the image's size
    return Loaded(model.to(device).eval(), Preprocess.from_json(meta, uri), device, uri)


def load(model: str, device: str = "auto", tracking_uri: str | None = None) -> Loaded:
    """The network named by ``model``: an MLflow URI, a ``.pt`` checkpoint or an ``.onnx`` file."""
    dev = pick(device)
    if "://" in model or model.startswith(("models:", "runs:")):
        return load_mlflow_model(model, dev, tracking_uri)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{model}: no such model file (expected a .pt checkpoint, an .onnx file or an "
                                "MLflow URI such as models:/lad-student@candidate)")
    if path.suffix == ".onnx":
        return load_onnx_model(path, dev)
    return load_checkpoint_model(path, dev)


def images_of(inputs: list[str]) -> list[tuple[Path, Path]]:
    """(image file, output name without suffix) for every image named or inside a named folder (recursively;
    a folder's images keep their relative paths)."""
    out = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            out += [(f, f.relative_to(p).with_suffix("")) for f in files]
        elif p.is_file():
            out.append((p, Path(p.stem)))
        else:
            raise FileNotFoundError(f"{name}: no such image file or folder")
    if not out:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(inputs)}")
    dup = sorted(n for n, k in Counter(str(n) for _, n in out).items() if k > 1)
    if dup:
        raise ValueError(f"two inputs would write the same output name: {', '.join(dup)}")
    return out


def read_bgr(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image


def batches(items: list[tuple[Path, Path]], size: int) -> Iterator[list[tuple[Path, Path, np.ndarray]]]:
    """Runs of consecutive images of one size, at most ``size`` each (a batch is one tensor)."""
    batch: list[tuple[Path, Path, np.ndarray]] = []
    for path, name in items:
        image = read_bgr(path)
        if batch and (len(batch) == size or batch[0][2].shape != image.shape):
            yield batch
            batch = []
        batch.append((path, name, image))
    if batch:
        yield batch


def predict_masks(net: Loaded, images: list[np.ndarray]) -> np.ndarray:
    """``(B, H, W)`` uint8 class ids of same-size BGR ``images``."""
    x = torch.stack([net.preprocess.tensor(im) for im in images]).to(net.device)
    runner = lambda z: {"out": net.logits(z)}  # noqa: E731 - the dict the evaluation code expects
    scores = predict_logits(runner, x, net.preprocess.inference(*x.shape[2:]))
    return scores.argmax(1).to(torch.uint8).cpu().numpy()


def write_outputs(out: Path, name: Path, bgr: np.ndarray, mask: np.ndarray, palette: np.ndarray) -> None:
    """``<name>.png`` (palette PNG of class ids) and ``<name>_overlay.jpg``, each written whole or not at all."""
    import cv2
    from PIL import Image

    from pipeline.io import atomic_write

    target = out / name
    target.parent.mkdir(parents=True, exist_ok=True)
    png = Image.fromarray(mask, mode="P")
    png.putpalette(palette.reshape(-1).tolist())
    atomic_write(target.with_suffix(".png"), lambda tmp: png.save(tmp, format="PNG"))
    colour = palette[mask][:, :, ::-1]  # RGB -> BGR for OpenCV
    overlay = cv2.addWeighted(bgr, 1 - OVERLAY_ALPHA, np.ascontiguousarray(colour), OVERLAY_ALPHA, 0)
    ok, jpg = cv2.imencode(".jpg", overlay)
    atomic_write(Path(f"{target}_overlay.jpg"), lambda tmp: tmp.write_bytes(jpg.tobytes()))


def predict(net: Loaded, inputs: list[str], out: Path, batch_size: int = 4, progress: bool = True) -> list[Path]:
    """Masks and overlays of every image in ``inputs`` (files and folders) under ``out``; returns the masks'
    paths."""
    return predict_items(net, images_of(inputs), out, batch_size, progress)


def predict_items(net: Loaded, items: list[tuple[Path, Path]], out: Path, batch_size: int = 4,
                  progress: bool = True) -> list[Path]:
    """:func:`predict` for the ``(image file, output name)`` pairs of :func:`images_of`."""
    from pipeline.progress import bar

    palette = np.array(net.preprocess.palette, np.uint8)
    written = []
    with bar(total=len(items), enabled=progress, desc="lad-predict", unit="image") as pbar:
        for batch in batches(items, batch_size):
            masks = predict_masks(net, [im for _, _, im in batch])
            for (_, name, image), mask in zip(batch, masks):
                write_outputs(out, name, image, mask, palette)
                written.append(out / name.with_suffix(".png"))
            pbar.update(len(batch))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lad-predict", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[2:]))
    parser.add_argument("inputs", nargs="+", help="image files and folders of images")
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL,
                        help=f"models:/NAME@ALIAS, models:/NAME/VERSION, runs:/ID/PATH, a .pt or an .onnx file "
                             f"(default: {DEFAULT_MODEL})")
    parser.add_argument("--out", type=Path, default=Path("predictions"), help="output folder (default: predictions)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when usable), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=int, default=4, help="images of one size per forward pass")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                        help="the MLflow tracking server of an MLflow URI (default: $MLFLOW_TRACKING_URI, else "
                             "the project's .mlflow/mlflow.db when run in the project folder)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size {args.batch_size}: expected 1 or more")
    try:
        items = images_of(args.inputs)  # a missing input fails before the model loads
        net = load(args.model, args.device, args.tracking_uri)
        written = predict_items(net, items, args.out, args.batch_size)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"lad-predict: {err}")
    print(f"{len(written)} masks and overlays from {net.source} in {args.out}/")


if __name__ == "__main__":
    main()
