"""Progress for people and for logs: a tqdm bar at a terminal, plain lines elsewhere.

``LAD_PROGRESS=bar`` or ``lines`` forces one; unset, a bar when stderr is a terminal. In a log
(``dvc repro > log``, CI, queued experiments) a bar would write thousands of carriage-return updates;
there the training loop prints one plain line per ``train.log_interval`` steps instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

PROGRESS_ENV = "LAD_PROGRESS"


def interactive() -> bool:
    """Whether progress shows as bars (a terminal) rather than plain lines (a log)."""
    mode = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if mode in ("bar", "lines"):
        return mode == "bar"
    return sys.stderr.isatty()


def bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar, shown only at a terminal (and when ``enabled``)."""
    return tqdm(iterable, disable=not (enabled and interactive()), **kwargs)
