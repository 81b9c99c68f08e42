"""Experiments: what to run. The first step of the results' one-way flow.

    experiments (this package: the protocol's parts, the ablations, the calibration probes, when a
    collected shard is current) -> results (pipeline.results: what was collected) -> statistics
    (pipeline.statistics: paired outcomes, intervals, power) -> words (pipeline.words: one question list,
    one wording, every table) -> files (pipeline.documents, pipeline.figures, pipeline.readme)

Each step imports only the steps before it (``tests/test_flow.py``). An :class:`Experiment` is one DVC
experiment: ``python -m commands.paper run`` runs it with ``dvc exp run`` and :func:`pipeline.results.collect`
copies what it left to ``<its runs>/<folder>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

# The comparison methods of the from-scratch table as it was collected: a method added since (fitnet) is the
# pretrained regime's, so the collected shards keep their params (and stay current).
TABLE_METHODS = ("kd", "cwd", "cirkd", "dist", "afdcd")


@dataclass(frozen=True)
class Experiment:
    """One DVC experiment of the table: its name, the params it sets (-S) and what it is for."""

    name: str
    sets: dict[str, Any]
    # a part of docs/protocol.md's table, or a calibration probe
    part: Literal["main", "compare", "long", "ablation", "calibration"]
    runs: Path  # where its part is collected
    seeds: tuple[int, ...]
    ablation: str = ""  # its key of pipeline.experiments.ablations.ABLATIONS ("reference": params.yaml as committed)
    what: str = ""
    default_seeds: tuple[int, ...] | None = None  # collected without a seed suffix at these (None: its seeds)

    @property
    def folder(self) -> str:
        """Where it is collected: ``<runs>/<name>``, or with other seeds than its default ones (one seed's
        shard, one machine's share) ``<runs>/<name>@seeds<a>-<b>``; the shards of one experiment merge when
        the table is written."""
        default = self.seeds if self.default_seeds is None else self.default_seeds
        return self.name if self.seeds == tuple(default) else f"{self.name}@seeds{'-'.join(map(str, self.seeds))}"

    def shard(self, seed: int) -> Experiment:
        """Its run on one seed (sets ``seeds``), collected as ``<name>@seeds<seed>``."""
        return replace(self, sets={**self.sets, "seeds": [seed]}, seeds=(seed,), default_seeds=())
