"""The lines around the tables: the data, the inference, how cost and latency were measured."""

from __future__ import annotations

from typing import Any

from pipeline.results import Results
from pipeline.words.format import describe, fmt


def dataset_line(res: Results) -> str:
    """The data set, with the generator's seed for the embedded one."""
    if res.cfg.data.name == "synthetic":
        return f"embedded synthetic data (generator seed {res.cfg.synthetic.seed})"
    return f"{res.cfg.data.name} ({res.cfg.data.root})"


def data_line(index: dict[str, Any]) -> str:
    """The prepared splits in one line: images, skipped samples, ignored pixels, background share."""
    parts = []
    for split, st in index["stats"].items():
        freq = dict(zip(index["classes"], st["class_frequency"], strict=True))
        parts.append(f"{split} {st['images']} images ({st.get('skipped', 0)} skipped), "
                     f"{fmt(100 * st['ignore_fraction'])} % pixels ignored, "
                     f"{fmt(100 * freq.get(index['classes'][0], 0))} % {index['classes'][0]}")
    return "; ".join(parts)


def inference_line(res: Results) -> str:
    ev = res.cfg.evaluate
    window = f"sliding window {ev.crop}x{ev.crop}, stride {ev.stride}" if ev.mode == "slide" else "whole image"
    return f"{window}, scales {', '.join(f'{s:g}' for s in ev.multi_scale)}{', with flip' if ev.flip else ''}"


def deployment_line(res: Results) -> str:
    """How cost, latency and the ONNX check were measured (from the baseline's evaluation)."""
    r = res.first("baseline")
    lat, onnx = r.get("latency"), r.get("onnx")
    text = f"FLOPs: one forward at {r['flops_input']}x{r['flops_input']} (2 x multiply-adds)."
    if not lat:
        return text + " Latency: not measured (`evaluate.latency_reps: 0`)."
    text += (f" Latency: one {'x'.join(map(str, lat['input'][2:]))} image (batch 1) on {lat['device']}, "
             f"{lat['dtype']}, {lat['threads']} threads; median (p90) of {lat['reps']} forwards after "
             f"{lat.get('warmup', 10)} warm-up ones, first seed.")
    if onnx:
        text += (f" ONNX: each student exported with a dynamic batch and size (`models/seed{res.seeds[0]}/onnx/`), "
                 f"run by onnxruntime {onnx['onnxruntime']} on the CPU with the same threads: the largest absolute "
                 f"difference of its logits from PyTorch's over {onnx['images']} val images, and its median latency.")
    return text


def methods_note(res: Results) -> str:
    """The comparison methods and every hyper-parameter they ran with, or why there are none."""
    if not res.cfg.compare.enabled:
        return "off (`compare.enabled: false`): no conventional teacher or earlier methods ran"
    return "; ".join(describe(m, getattr(res.cfg.compare.hparams, m)) for m in res.cfg.compare.methods)
