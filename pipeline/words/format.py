"""Number formats and markdown tables shared by every report."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.config import method_section
from pipeline.results import mean_std

ARCH_NAMES = {"deeplabv3": "DeepLabV3", "pspnet": "PSPNet", "fcn": "FCN", "ocrnet": "OCRNet", "stdc": "STDC"}


def fmt(v: Any, digits: int = 2) -> str:
    return "—" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def fmt_interval(mean: float, half: float) -> str:
    """``+2.10 [-0.40, +4.60]``, or just the difference when there is no interval."""
    return f"{mean:+.2f}" if np.isnan(half) else f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}]"


def mean_pm(values: list[float]) -> str:
    """``31.93 ± 3.18`` over seeds (the mean alone for one seed)."""
    mean, std = mean_std(values)
    return fmt(mean) + (f" ± {fmt(std)}" if len(values) > 1 else "")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def with_experiment(header: list[str], rows: list[list[str]], names: list[str]) -> str:
    """A markdown table with a last column naming each row's DVC experiment (none for the workspace)."""
    if not any(names):
        return markdown_table(header, rows)
    return markdown_table([*header, "DVC experiment"], [[*row, f"`{n}`"] for row, n in zip(rows, names, strict=True)])


def method_title(method: str) -> str:
    """The Method column of a comparison row: its hyper-parameter section's title (pipeline/config.py)."""
    return method_section(method).title


def describe(method: str, hp: Any) -> str:
    """``CIRKD (w_kd=1, ...)``: the method and every hyper-parameter it ran with (``hp``: its section)."""
    return f"{method_title(method)} (" + ", ".join(f"{k}={v:g}" for k, v in hp.model_dump().items()) + ")"


def model_name(res: dict[str, Any]) -> str:
    """``DeepLabV3-resnet18d`` from an evaluation result (with its stage widths when narrowed)."""
    widths = f" (widths {'/'.join(map(str, res['channels']))})" if res.get("channels") else ""
    return f"{ARCH_NAMES.get(res['arch'], res['arch'])}-{res['backbone']}{widths}"


def latency(r: dict[str, Any]) -> str:
    """Batch-1 latency of an evaluation result: ``median (p90)`` ms."""
    lat = r.get("latency")
    return f"{fmt(lat['median_ms'])} ({fmt(lat['p90_ms'])})" if lat else "—"
