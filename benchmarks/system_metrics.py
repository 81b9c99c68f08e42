"""What MLflow's system metrics cost a training step (pipeline/tracking/system.py).

    python benchmarks/system_metrics.py [--seconds 20] [--rounds 2] [--role baseline]

Times the role's training step (params.yaml's sizes, random weights and batch, as benchmarks/cost.py does) in
blocks of ``--seconds``, in turn without a monitor, with the monitor at the pipeline's interval
(:data:`pipeline.tracking.system.INTERVAL_S`) and with it ten times denser (1 s), each monitor logging into a
real run of a temporary SQLite store. Prints seconds per step of each and the slowdown against no monitor
(medians over ``--rounds``), and the monitor's own time per sample (collecting and logging, in its thread).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.cost import roles  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.io import cpu_name  # noqa: E402
from pipeline.optim import make_optimizer  # noqa: E402
from pipeline.tracking import system  # noqa: E402


def block(step, seconds: float) -> float:  # noqa: ANN001 - a training step callable
    """Seconds per step over a block of about ``seconds``."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return (time.perf_counter() - t0) / n


def measure(train_step, rounds: int, seconds: float, default: float) -> tuple[dict[str, list[float]], list[float]]:  # noqa: ANN001
    """Seconds per step of blocks without a monitor, with one at ``default`` s and at 1 s, interleaved; and the
    monitor's own seconds for one sample (collected and logged), timed alone."""
    import mlflow
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        client = MlflowClient(uri)
        mlflow.set_tracking_uri(uri)
        exp = client.create_experiment("bench", artifact_location=Path(tmp).as_uri())
        times: dict[str, list[float]] = {"none": [], f"{default:g} s": [], "1 s": []}
        per_sample: list[float] = []
        for _ in range(rounds):
            for kind in times:
                monitor = None
                if kind != "none":
                    run_id = client.create_run(exp).info.run_id
                    system.INTERVAL_S = float(kind.split()[0])  # read by start()
                    monitor = system.start(run_id, uri)
                times[kind].append(block(train_step, seconds))
                if monitor is not None:
                    t0 = time.perf_counter()
                    monitor.collect_metrics()
                    monitor.publish_metrics(monitor.aggregate_metrics())
                    monitor.mlflow_logger.flush()
                    per_sample.append(time.perf_counter() - t0)  # one more sample, timed alone
                    monitor.finish()
                    client.set_terminated(run_id)
    return times, per_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of one timed block (s)")
    parser.add_argument("--rounds", type=int, default=2, help="blocks of each kind, interleaved")
    parser.add_argument("--role", default="baseline")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    import mlflow  # noqa: F401  (configures its loggers on import: quiet() after it)

    from pipeline.tracking.store import quiet

    quiet()
    cfg = load_config(args.params)
    b, s = cfg.train.batch_size, cfg.train.crop_size
    torch.manual_seed(0)
    image, label = torch.randn(b, 3, s, s), torch.randint(0, 6, (b, s, s))
    _, model, step, _ = next(r for r in roles(cfg, 6, 255) if r[0] == args.role)
    opt = make_optimizer(cfg.train.optimizer, list(model.parameters()), cfg.train.lr, cfg.train.momentum,
                         cfg.train.weight_decay)

    def train_step() -> None:
        loss = step(model.train(), image, label)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        train_step()
    default = system.INTERVAL_S  # the pipeline's interval
    times, per_sample = measure(train_step, args.rounds, args.seconds, default)
    base = statistics.median(times["none"])
    print(f"{cpu_name()}; torch threads {torch.get_num_threads()}; role {args.role}, batch {b} at {s} px; "
          f"{args.rounds} blocks of {args.seconds:g} s each")
    for kind, values in times.items():
        med = statistics.median(values)
        print(f"  monitor {kind:>5}: {med * 1000:8.2f} ms/step  slowdown {100 * (med / base - 1):+6.2f} %")
    print(f"  one sample (collect + log to SQLite), timed alone: {1000 * statistics.median(per_sample):.1f} ms, "
          f"{100 * statistics.median(per_sample) / default:.3f} % of the pipeline's {default:g} s interval")


if __name__ == "__main__":
    main()
