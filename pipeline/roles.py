"""The roles table: every model the pipeline trains and evaluates, and how, defined once.

A *role* is one trained model: the network it is (a ``model.*`` section of params.yaml), the step kind
that trains it (:mod:`pipeline.steps`), its schedule, when it is skipped, what it is warm-started from,
the params it reads, the trained models it needs and where its checkpoint goes. An *evaluation* is one
row of the report: a role's checkpoint, what its label channel holds and whether it ships (ONNX).
The training, evaluation and report stages and the benchmarks read these tables; ``tests/test_roles.py``
checks that ``dvc.yaml`` declares the same stages, params, inputs, outputs and code. This module
imports no torch: a stage with nothing to train decides so in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from pipeline.config import MethodName

if TYPE_CHECKING:
    from pipeline.config import Config, ModelConfig
    from pipeline.lad import Channel
    from pipeline.steps import StepKind

COMPARE_PREFIX = "distill_"  # role of a comparison student: distill_<method>
METHOD_NAMES: tuple[str, ...] = get_args(MethodName)


def _train_schedule(cfg: Config) -> tuple[int, float]:
    return cfg.train.iters, cfg.train.lr


def _never(cfg: Config) -> str | None:
    return None


@dataclass(frozen=True)
class Role:
    """One trained model.

    Attributes:
        name: the role (``python -m stages.train <name>``; its files are named after it).
        stage: the DVC stage (before ``@<seed>``) and the MLflow child run's name.
        network: its section of params.yaml, ``model.<network>``.
        step: the kind of step that trains it: the module ``pipeline/steps/<step>.py``.
        sections: the params it reads (its DVC ``params``).
        inputs: the roles whose trained models it reads (its DVC model ``deps``).
        out: its DVC output within ``models/seed<N>/``: a ``.pt`` file, or a folder holding ``model.pt``
            or a ``SKIPPED`` note when the stage may have nothing to train.
        teacher: the role whose frozen model it distils from.
        method: comparison rows: the :data:`pipeline.methods.METHODS` key (the DVC matrix's second column).
        schedule: iterations and peak learning rate under the params.
        skip: why it has nothing to train under the params (None: it trains).
        warm_start: the role whose trained weights it starts from under the params (None: fresh).
        registered: the report registers its trained network (every role's stage logs its network as an
            MLflow LoggedModel) in the model registry, as ``evaluate.registered_model``: the student that ships.
    """

    name: str
    stage: str
    network: str
    step: StepKind
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    out: str
    teacher: str | None = None
    method: str = ""
    schedule: Callable[[Config], tuple[int, float]] = _train_schedule
    skip: Callable[[Config], str | None] = _never
    warm_start: Callable[[Config], str | None] = _never
    registered: bool = False

    @property
    def in_chans(self) -> int:
        """Input channels: the LAD teacher sees the image and the label channel."""
        return 4 if self.step == "lad_teacher" else 3

    @property
    def model_file(self) -> str:
        """The checkpoint within ``models/seed<N>/``."""
        return self.out if self.out.endswith(".pt") else f"{self.out}/model.pt"

    def net(self, cfg: Config) -> ModelConfig:
        """Its network's section of the params."""
        return getattr(cfg.model, self.network)

    def run_name(self, seed: int) -> str:
        """The DVC stage (and MLflow run) name, e.g. ``train_baseline@0`` or ``distill_compare@0-kd``."""
        return f"{self.stage}@{seed}" + (f"-{self.method}" if self.method else "")


def _distill_schedule(cfg: Config) -> tuple[int, float]:
    return cfg.distill.iters, cfg.distill.lr


def _compare_schedule(cfg: Config) -> tuple[int, float]:
    return cfg.compare.iters, cfg.compare.lr


def _without_warm_start(cfg: Config) -> str | None:
    if cfg.distill.init != "baseline":
        return f"distill.init is {cfg.distill.init!r}: the baseline itself is the equal-budget control"
    return None


def _teacher_schedule(cfg: Config) -> tuple[int, float]:
    return cfg.compare.teacher_iters, cfg.train.lr


def _matched_schedule(cfg: Config) -> tuple[int, float]:
    return cfg.controls.matched_iters, cfg.train.lr


def _without_controls(cfg: Config) -> str | None:
    return None if cfg.controls.enabled else "controls.enabled is false: no control rows (on in the paper's table)"


def _without_compare(cfg: Config) -> str | None:
    return None if cfg.compare.enabled else "compare.enabled is false: no comparison rows (on in the paper recipes)"


def _method_skip(method: str) -> Callable[[Config], str | None]:
    def skip(cfg: Config) -> str | None:
        if _without_compare(cfg):
            return _without_compare(cfg)
        return None if method in cfg.compare.methods else f"{method!r} is not in compare.methods {cfg.compare.methods}"
    return skip


def _baseline_if_warm(cfg: Config) -> str | None:
    return "baseline" if cfg.distill.init == "baseline" else None


COMPARE_SECTIONS = ("data", "model.student", "model.conventional_teacher", "train", "compare")
ROLES: dict[str, Role] = {r.name: r for r in [
    Role("baseline", "train_baseline", "student", "supervised", ("data", "model.student", "train"), (),
         "baseline.pt"),
    Role("teacher", "train_teacher", "teacher", "lad_teacher",
         ("data", "model.teacher", "train", "lad", "distill.codebook", "distill.noise_std"), (), "teacher.pt"),
    Role("student", "distill", "student", "lad_distill",
         ("data", "model.student", "model.teacher", "train", "lad.scale", "distill"), ("teacher", "baseline"),
         "student.pt", teacher="teacher", schedule=_distill_schedule, warm_start=_baseline_if_warm,
         registered=True),  # the baseline: its warm start with distill.init: baseline
    Role("baseline_ft", "train_baseline_ft", "student", "supervised",
         ("data", "model.student", "train", "distill.init", "distill.iters", "distill.lr"), ("baseline",),
         "baseline_ft", schedule=_distill_schedule, skip=_without_warm_start, warm_start=lambda cfg: "baseline"),
    Role("conventional_teacher", "train_conventional_teacher", "conventional_teacher", "supervised",
         ("data", "model.conventional_teacher", "train", "compare.enabled", "compare.teacher_iters"), (),
         "conventional_teacher", schedule=_teacher_schedule, skip=_without_compare),
    Role("baseline_matched", "train_baseline_matched", "student", "supervised",
         ("data", "model.student", "train", "controls.enabled", "controls.matched_iters"), (), "baseline_matched",
         schedule=_matched_schedule, skip=_without_controls),
    Role("label_student", "distill_label", "student", "label_distill",
         ("data", "model.student", "train", "distill", "controls.enabled", "controls.w_kd",
          "controls.label_smoothing"), ("baseline",),
         "label_student", schedule=_distill_schedule, skip=_without_controls, warm_start=_baseline_if_warm),
    *[Role(f"{COMPARE_PREFIX}{m}", "distill_compare", "student", "method_distill", COMPARE_SECTIONS,
           ("conventional_teacher",), f"compare/{m}", teacher="conventional_teacher", method=m,
           schedule=_compare_schedule, skip=_method_skip(m)) for m in METHOD_NAMES],
]}


@dataclass(frozen=True)
class Evaluation:
    """One evaluated model: a role's checkpoint, what its label channel holds (None: image only) and
    whether it ships (exported to ONNX and checked by onnxruntime)."""

    name: str
    role: str
    label_channel: Channel | None = None
    ships: bool = False


EVALUATIONS: dict[str, Evaluation] = {e.name: e for e in [
    Evaluation("baseline", "baseline", ships=True),
    Evaluation("baseline_ft", "baseline_ft", ships=True),
    Evaluation("lad_student", "student", ships=True),
    Evaluation("teacher_random", "teacher", "random"),
    Evaluation("teacher_fixed", "teacher", "fixed"),
    Evaluation("teacher_zero", "teacher", "zero"),
    Evaluation("conventional_teacher", "conventional_teacher"),
    Evaluation("baseline_matched", "baseline_matched", ships=True),
    Evaluation("label_student", "label_student", ships=True),
    *[Evaluation(f"{COMPARE_PREFIX}{m}", f"{COMPARE_PREFIX}{m}", ships=True) for m in METHOD_NAMES],
]}

# the first columns of `dvc exp show` (reports/metrics.json's first entry): column -> evaluation
HEADLINE = {"lad_student": "lad_student", "baseline": "baseline", "teacher": "teacher_fixed"}
