"""The README's figures, generated from committed result files: no number in it is typed by hand.

Each block lies between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` and comes from one file:

- ``costs``: what ``make run``, ``make test`` and the install take, from ``reports/timings.json``
  (``benchmarks/timings.py`` measures them and names the CPU);
- ``default-run``: the default run's headline mIoUs, from ``reports/metrics.json`` (the ``report`` stage),
  beside the paper's run of the same baseline (``reports/paper/protocol/paper@seeds0``) and its CPU;
- ``gpu-check``: the training step's speed on a GPU, from ``reports/gpu_check.json`` (``bash
  benchmarks/gpu_check.sh`` writes it on a CUDA machine; until then the block says no GPU figure exists);
- ``paper-table``: the paper's comparisons, from ``reports/paper/protocol/`` (``python -m commands.paper report``).

``python -m pipeline.readme`` rewrites the first two (the paper's table is written with the paper's report);
``tests/test_readme.py`` checks that the committed README holds what the committed files give.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pipeline.io import atomic_write
from pipeline.results import mean_std

README = Path("README.md")
TIMINGS = Path("reports/timings.json")
METRICS = Path("reports/metrics.json")
GPU_CHECK = Path("reports/gpu_check.json")
# the paper's main experiment on seed 0: its baseline trains as the default run's (pipeline.experiments.protocol.plan)
REFERENCE = Path("reports/paper/protocol/paper@seeds0")
RUN_BLOCKS = ("costs", "default-run", "gpu-check")  # this module's blocks; the paper's table is pipeline.documents'


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def block(text: str, name: str, path: Path = README) -> str:
    """What lies between block ``name``'s markers in ``text`` (of file ``path``)."""
    start, end = markers(name)
    found = re.search(re.escape(start) + "\n(.*?)\n?" + re.escape(end), text, re.S)
    if not found:
        raise ValueError(f"{path}: the markers {start} ... {end} are missing; block {name!r} goes between them")
    return found.group(1)


def with_block(text: str, name: str, body: str, path: Path = README) -> str:
    """``text`` with block ``name`` replaced by ``body`` (an error naming the markers when they are missing)."""
    block(text, name, path)
    start, end = markers(name)
    return re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: f"{start}\n{body}\n{end}", text, flags=re.S)


def minutes(seconds: float) -> str:
    if seconds >= 90:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


COSTS = (("repro", "`make run`'s `dvc repro`, from nothing"), ("noop", "a no-op `dvc repro`"),
         ("make_test", "`make test`"),
         ("install_cold_s", "installing the lock into a new venv (`make`'s uv, every package downloaded)"),
         ("install_s", "the same with uv's cache warm"),
         ("install", "the installed environment (`.venv`, torch's CUDA build included)"))


def costs(timings: dict) -> str:
    """The first screen's costs, grouped by the CPU and the day that measured them."""
    groups: dict[tuple[str, str], list[str]] = {}
    for key, what in COSTS:
        if key in timings:
            t = timings[key]
            figure = f"{t['mb'] / 1000:.1f} GB" if "mb" in t else minutes(t["seconds"])
            groups.setdefault((t["cpu"], t["date"]), []).append(f"{what}: **{figure}**")
    if not groups:
        return "Costs: not measured yet (`make timings`)."
    return "\n".join(f"Measured on {cpu} ({date}): " + "; ".join(lines) + "." for (cpu, date), lines in groups.items())


def default_run(metrics: dict) -> str:
    """The default run's headline: the baseline, the LAD student and the teacher, one seed."""
    h, seeds = metrics["headline_miou"], int(metrics["baseline"]["seeds"])
    zero = metrics.get("teacher_zero", {}).get("miou")
    return (f"baseline **{h['baseline']:.2f}**, LAD student **{h['lad_student']:.2f}**, LAD teacher "
            f"**{h['teacher']:.2f}** with the fixed code book"
            + (f" and {zero:.2f} with an empty label channel" if zero is not None else "")
            + f" (mIoU, {seeds} seed{'s' if seeds > 1 else ''}; `reports/metrics.json`).")


def other_cpu(metrics: dict, timings: dict, reference: Path, root: Path = Path(".")) -> str:
    """The default run's baseline against the paper's run of the same baseline (its params and seed), with the
    CPU each ran on (empty when the paper's runs are not there)."""
    if not (reference / "meta.json").is_file():
        return ""
    meta, ref = (json.loads((reference / f).read_text()) for f in ("meta.json", "metrics.json"))
    trained = root / "reports/train/seed0/baseline.json"  # the CPU that trained the default run's baseline
    here = (json.loads(trained.read_text()) if trained.is_file() else {}).get("cpu") or \
        timings.get("repro", {}).get("cpu", "the CPU of the last `dvc repro`")
    same = round(ref["baseline"]["miou"], 2) == round(metrics["baseline"]["miou"], 2)
    seeds = [json.loads(f.read_text())["miou"]
             for f in sorted(reference.parent.glob("paper@seeds*/reports/eval/seed*/baseline.json"))]
    noise = (f" (for scale: the baseline's std over the paper's {len(seeds)} seeds is {mean_std(seeds)[1]:.2f})"
             if len(seeds) > 1 else "")
    if same:
        verdict = ": the same."
    elif meta["cpu"].split(",")[0] != here.split(",")[0]:
        verdict = f": another CPU gives other numbers for the same seed and params{noise}."
    else:
        verdict = f": the same CPU model, so the code or the data changed since the paper's runs{noise}."
    return (f" Seed {meta['seeds'][0]}'s baseline: {metrics['baseline']['miou']:.2f} here ({here}), "
            f"{ref['baseline']['miou']:.2f} in the paper's run (`{reference.name}`, {meta['cpu']})"
            + verdict)


def gpu_check(found: dict) -> str:
    """The GPU speed line: each role's s/iteration, images/s, peak memory and MFU at the VOC recipe's shapes."""
    if not found:
        return ("`bash benchmarks/gpu_check.sh` has not run on a GPU yet: no GPU speed figure is quoted here "
                "(target: 100 images/s or more for the VOC student step at 512 px on one H100-class GPU).")
    rows = "; ".join(
        f"{r['role']} {r['amp']}: {r['sec_per_iter']:.3f} s/iter, **{r['images_per_s']:.0f} images/s**, "
        f"{(r['peak_mib'] or 0) / 1024:.1f} GiB" + (f", MFU {100 * r['mfu']:.0f}%" if r.get("mfu") is not None else "")
        for r in found["rows"])
    return (f"Measured by `bash benchmarks/gpu_check.sh` on {found['device']} ({found['date']}, torch "
            f"{found['torch']}, {found['processes']} process(es) x batch {found['batch']}, {found['crop']} px, "
            f"recipe {found['recipe']}): {rows}.")


def run_blocks(root: Path = Path(".")) -> dict[str, str]:
    """The blocks :data:`RUN_BLOCKS` as the committed files give them."""
    timings = json.loads((root / TIMINGS).read_text()) if (root / TIMINGS).is_file() else {}
    if not (root / METRICS).is_file():
        raise FileNotFoundError(f"{root / METRICS}: missing; run the pipeline first (dvc repro)")
    metrics = json.loads((root / METRICS).read_text())
    gpu = json.loads((root / GPU_CHECK).read_text()) if (root / GPU_CHECK).is_file() else {}
    return {"costs": costs(timings),
            "default-run": default_run(metrics) + other_cpu(metrics, timings, root / REFERENCE, root),
            "gpu-check": gpu_check(gpu)}


def write(root: Path = Path(".")) -> None:
    """Rewrite the README's run blocks from the committed files (every marker checked before writing)."""
    text = (root / README).read_text()
    for name, body in run_blocks(root).items():
        text = with_block(text, name, body, root / README)
    atomic_write(root / README, lambda tmp: tmp.write_text(text))


if __name__ == "__main__":
    try:
        write()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"error: {err}")
    print(f"{README}: {', '.join(RUN_BLOCKS)} rewritten")
