"""The roles table: every model the pipeline trains and evaluates, defined once.

A *role* is one trained network: which ``model.*`` section it is built from, which step trains it,
which params it reads, which trained models it needs and where its checkpoint goes. An *evaluation*
is one row of the report: a role's checkpoint and what its label channel sees. The training,
evaluation and report stages and ``benchmarks/cost.py`` read these tables; ``tests/test_roles.py``
checks that ``dvc.yaml`` declares the same stages, params, model inputs and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from pipeline.methods import METHODS, create_method_loss
from pipeline.steps import STEPS

if TYPE_CHECKING:
    from pipeline.config import Config

COMPARE_PREFIX = "distill_"  # role of a comparison student: distill_<key of pipeline.methods.METHODS>


@dataclass(frozen=True)
class Role:
    """One trained model.

    Attributes:
        name: the role (``python -m stages.train <name>``).
        stage: the DVC stage (before ``@<seed>``) and the MLflow child run's name.
        net: which network of params.yaml ``model`` it is.
        step: the key of :data:`pipeline.steps.STEPS` that trains it.
        sections: the params it reads (its DVC ``params``).
        inputs: the roles whose trained models it reads (its DVC model ``deps``).
        out: its DVC output within ``models/seed<N>/``: a ``.pt`` file, or a folder holding ``model.pt``
            or a ``SKIPPED`` note when the stage may have nothing to train.
        method: comparison rows: the :data:`pipeline.methods.METHODS` key (the DVC matrix's second column).
    """

    name: str
    stage: str
    net: str
    step: str
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    out: str
    method: str = ""

    @property
    def teacher(self) -> str | None:
        """The role whose frozen model this one distils from, if any."""
        return {"distill": "teacher", "method": "conventional_teacher"}.get(self.step)

    @property
    def in_chans(self) -> int:
        """Input channels: the LAD teacher sees the image and the label channel."""
        return 4 if self.step == "teacher" else 3

    @property
    def model_file(self) -> str:
        """The checkpoint within ``models/seed<N>/``."""
        return self.out if self.out.endswith(".pt") else f"{self.out}/model.pt"

    def run_name(self, seed: int) -> str:
        """The DVC stage (and MLflow run) name, e.g. ``train_baseline@0`` or ``distill_compare@0-kd``."""
        return f"{self.stage}@{seed}" + (f"-{self.method}" if self.method else "")


COMPARE_SECTIONS = ("data", "model.student", "model.conventional_teacher", "train", "compare")
ROLES: dict[str, Role] = {r.name: r for r in [
    Role("baseline", "train_baseline", "student", "baseline", ("data", "model.student", "train"), (), "baseline.pt"),
    Role("teacher", "train_teacher", "teacher", "teacher",
         ("data", "model.teacher", "train", "lad", "distill.codebook", "distill.noise_std"), (), "teacher.pt"),
    Role("student", "distill", "student", "distill",
         ("data", "model.student", "model.teacher", "train", "lad.scale", "distill"), ("teacher", "baseline"),
         "student.pt"),  # the baseline: its warm start with distill.init: baseline
    Role("baseline_ft", "train_baseline_ft", "student", "baseline",
         ("data", "model.student", "train", "distill.init", "distill.iters", "distill.lr"), ("baseline",),
         "baseline_ft"),
    Role("conventional_teacher", "train_conventional_teacher", "conventional_teacher", "baseline",
         ("data", "model.conventional_teacher", "train", "compare.enabled"), (), "conventional_teacher"),
    *[Role(f"{COMPARE_PREFIX}{m}", "distill_compare", "student", "method", COMPARE_SECTIONS,
           ("conventional_teacher",), f"compare/{m}", m) for m in METHODS],
]}


@dataclass(frozen=True)
class Evaluation:
    """One evaluated model: a role's checkpoint and what its label channel holds (None: image only)."""

    name: str
    role: str
    label_channel: str | None = None  # random | fixed (code books) | zero (an all-zero channel)


EVALUATIONS: dict[str, Evaluation] = {e.name: e for e in [
    Evaluation("baseline", "baseline"),
    Evaluation("baseline_ft", "baseline_ft"),
    Evaluation("lad_student", "student"),
    Evaluation("teacher_random", "teacher", "random"),
    Evaluation("teacher_fixed", "teacher", "fixed"),
    Evaluation("teacher_zero", "teacher", "zero"),
    Evaluation("conventional_teacher", "conventional_teacher"),
    *[Evaluation(f"{COMPARE_PREFIX}{m}", f"{COMPARE_PREFIX}{m}") for m in METHODS],
]}

# the first columns of `dvc exp show` (reports/metrics.json's first entry): column -> evaluation
HEADLINE = {"lad_student": "lad_student", "baseline": "baseline", "teacher": "teacher_fixed"}


def skip_reason(role: str, cfg: Config) -> str | None:
    """Why ``role`` has nothing to train under ``cfg`` (None: it trains)."""
    method = ROLES[role].method
    if role == "baseline_ft" and cfg.distill.init != "baseline":
        return f"distill.init is {cfg.distill.init!r}: the baseline itself is the equal-budget control"
    if (role == "conventional_teacher" or method) and not cfg.compare.enabled:
        return "compare.enabled is false: no comparison rows (they are on in the paper recipes)"
    if method and method not in cfg.compare.methods:
        return f"{method!r} is not in compare.methods {cfg.compare.methods}"
    return None


def schedule(role: str, cfg: Config) -> tuple[int, float]:
    """Iterations and peak learning rate of ``role``: distillation and the comparison rows have their own."""
    if role in ("student", "baseline_ft"):
        return cfg.distill.iters, cfg.distill.lr
    if ROLES[role].method:
        return cfg.compare.iters, cfg.compare.lr
    return cfg.train.iters, cfg.train.lr


def make_step(role: str, cfg: Config, num_classes: int, ignore_index: int, teacher: nn.Module | None = None) -> Any:
    """The step that trains ``role``; ``teacher``: the frozen model of :attr:`Role.teacher`, for those that distil."""
    r, k = ROLES[role], num_classes
    if r.step == "baseline":
        return STEPS["baseline"](k, ignore_index, cfg.train.w_aux)
    if r.step == "teacher":
        return STEPS["teacher"](k, ignore_index, cfg.lad, cfg.distill)
    if teacher is None:
        raise ValueError(f"{role}: distils from {r.teacher}, and no teacher was given")
    if r.step == "distill":
        return STEPS["distill"](teacher, k, ignore_index, cfg.distill, cfg.lad.scale)
    loss = create_method_loss(r.method, cfg.compare.hparams.get(r.method), s_channels=cfg.model.student.head_channels,
                              t_channels=teacher.spec["head_channels"], num_classes=k, ignore_index=ignore_index)
    return STEPS["method"](teacher, loss, ignore_index, cfg.compare.w_aux)
