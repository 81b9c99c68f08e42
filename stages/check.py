"""Stage ``check``: the whole ``params.yaml`` validated before any other stage reads it.

Keys, types and values of every section, and every network's backbone name (timm's list, or stdc1/stdc2):
what can be found wrong without training is refused here, in one line naming the key, before ``prepare`` checks
a real dataset file by file or a training stage starts. Its output, ``reports/params_check.txt``, is the same
whenever the check passes, so a change that passes reruns nothing after it (``prepare`` depends on it for the
order alone).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Config
from pipeline.io import atomic_write
from stages.common import run_stage

OUT = Path("reports/params_check.txt")
TEXT = "params.yaml: every key, type, value and backbone name valid (python -m stages.check)\n"


def main(cfg: Config) -> None:  # noqa: ARG001 - the config is checked by run_stage when it loads it
    if not OUT.is_file() or OUT.read_text() != TEXT:
        atomic_write(OUT, lambda tmp: tmp.write_text(TEXT))
    print("params.yaml: valid")


if __name__ == "__main__":
    run_stage(main, light=False)
