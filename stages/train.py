"""Training stages: ``python -m stages.train <role> --seed N``, one per role of :data:`pipeline.roles.ROLES`
(its docstring and table say what each trains, from what and for how long; ``--help`` lists them).

A role with nothing to train under the params (its ``skip``) writes its outputs as notes of why, without
importing torch or logging an MLflow run: a fraction of a second. With ``train.nproc > 1`` the stage
re-executes itself under ``torchrun`` (DDP, one process per GPU, or gloo processes on a CPU).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from pipeline.config import Config
from pipeline.io import write_json
from pipeline.paths import SeedPaths
from pipeline.roles import ROLES
from stages.common import run_stage, stage_args, start_heavy


def skip(role: str, reason: str, paths: SeedPaths) -> None:
    """A stage with nothing to train: its outputs record why (DVC needs them to exist)."""
    out = paths.out(role)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    (out / "SKIPPED").write_text(reason + "\n")
    for kind in ("train", "val"):  # empty curves, as the report reads them
        paths.curve(role, kind).parent.mkdir(parents=True, exist_ok=True)
        paths.curve(role, kind).write_text("step\n")
    write_json(paths.train_report(role), {"skipped": True, "reason": reason})
    print(f"{role}: skipped ({reason})")


def load(role: str) -> Callable[[str, Config, int], None]:
    """What trains ``role``: torch, the networks and this role's step (its losses and no other's)."""
    from pipeline.steps import step_class
    from pipeline.training import run_role

    step_class(ROLES[role].step)
    return run_role


def main(cfg: Config, role: str, seed: int) -> None:
    reason = ROLES[role].skip(cfg)
    if reason:
        return skip(role, reason, SeedPaths(seed))
    start_heavy(cfg)
    load(role)(role, cfg, seed)


if __name__ == "__main__":
    args = stage_args(__doc__.splitlines()[0], sorted(ROLES))
    run_stage(lambda cfg: main(cfg, args.role, args.seed), light=True)
