"""System metrics of a stage run: CPU, memory, disk, network and, where NVML finds an NVIDIA GPU, its
utilisation and memory, as MLflow's ``system/...`` metrics (the run's "System metrics" tab).

MLflow's own monitor (a thread) samples every :data:`INTERVAL_S` seconds and logs each sample; a stage shorter
than one interval would log none, so :class:`StageMonitor` logs one last sample when it stops.
``benchmarks/system_metrics.py`` measures what it costs a training step.
"""

from __future__ import annotations

import os
from typing import Any

INTERVAL_S = 10.0  # seconds between samples (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides): a sample
#                    costs a few ms of one thread, < 0.1 % of a step's time at this interval (the benchmark)
OFF_ENV = "LAD_SYSTEM_METRICS"  # "0": no system metrics


def enabled() -> bool:
    return os.environ.get(OFF_ENV, "1") != "0"


def start(run_id: str, tracking_uri: str) -> Any:
    """A started monitor of run ``run_id`` (call ``finish()``), or None when off or MLflow cannot start it."""
    if not enabled():
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    class StageMonitor(SystemMetricsMonitor):
        def finish(self) -> None:
            """Stop sampling; never raises (a tracker gone mid-run loses its system metrics, nothing else)."""
            try:
                if self._process is not None and self._logging_step == 0:  # nothing logged yet: one sample now
                    self._shutdown_event.set()
                    self._process.join()
                    self._process = None
                    self.collect_metrics()
                    self.publish_metrics(self.aggregate_metrics())
                    self.mlflow_logger.flush()
                    return
                super().finish()
            except Exception:  # noqa: BLE001 - the journal keeps the stage's own records; these are samples
                self._process = None

    try:
        monitor = StageMonitor(run_id, sampling_interval=INTERVAL_S, tracking_uri=tracking_uri)
        monitor.start()
        return monitor
    except Exception:  # noqa: BLE001 - system metrics are a nicety: a stage never fails for them
        return None
