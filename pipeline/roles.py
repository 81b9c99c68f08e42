"""The roles table: every model the pipeline trains and evaluates, and how, defined once.

A *role* is one trained model: the network it is (a ``model.*`` section of params.yaml), the step kind
that trains it (:mod:`pipeline.steps`), its schedule, when it is skipped, what it is warm-started from,
the params it reads, the trained models it needs and where its checkpoint goes. An *evaluation* is one
row of the report: a role's checkpoint, what its label channel holds, whether it ships (ONNX) and how its
row is worded. Every fact about a role the reports, the paper and the benchmarks use comes from here: its
training FLOPs with what it needed (:func:`training_tflop`), whether it is a teacher, sees the label, is
warm-started, tuned by calibration or registered; nothing else decides them by its name. The training,
evaluation and report stages and the benchmarks read these tables; ``tests/test_roles.py``
checks that ``dvc.yaml`` declares the same stages, params, inputs, outputs and code. This module
imports no torch: a stage with nothing to train decides so in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from pipeline.config import MethodName, method_section

if TYPE_CHECKING:
    from pipeline.config import Config, ModelConfig
    from pipeline.lad import Channel

COMPARE_PREFIX = "distill_"  # role of a comparison student: distill_<method>
METHOD_NAMES: tuple[str, ...] = get_args(MethodName)


def _train_schedule(cfg: Config) -> tuple[int, float]:
    return cfg.train.iters, cfg.train.lr


def _never(cfg: Config) -> str | None:
    return None


def _one_pass(cfg: Config) -> int:
    return 1


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
        passes: forward passes per training image (the LAD teacher's two noised paths with ``lad.dual_path``).
        tuned: the params keys of its distillation weights, which calibration scales (docs/protocol.md).
        calibrated: its name in reports/calibration.md and .json (a comparison row: its method).
        registered: the report registers its trained network (every role's stage logs its network as an
            MLflow LoggedModel) in the model registry, as ``evaluate.registered_model``: the student that ships.
    """

    name: str
    stage: str
    network: str
    step: str  # a module of pipeline/steps/ (pipeline.steps.StepKind)
    sections: tuple[str, ...]
    inputs: tuple[str, ...]
    out: str
    teacher: str | None = None
    method: str = ""
    schedule: Callable[[Config], tuple[int, float]] = _train_schedule
    skip: Callable[[Config], str | None] = _never
    warm_start: Callable[[Config], str | None] = _never
    registered: bool = False
    passes: Callable[[Config], int] = _one_pass
    tuned: tuple[str, ...] = ()
    calibrated: str = ""

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

    @property
    def sees_label(self) -> bool:
        """It reads the label channel besides the image (the LAD teacher)."""
        return self.in_chans > 3

    @property
    def is_teacher(self) -> bool:
        """Another role distils from its frozen model."""
        return any(r.teacher == self.name for r in ROLES.values())

    def needs(self, cfg: Config) -> tuple[str, ...]:
        """The roles whose trained models its training read under the params: its teacher, its warm start."""
        return tuple(r for r in (self.teacher, self.warm_start(cfg)) if r)

    def step_gflop(self, cfg: Config, forward: Callable[[str], float]) -> float:
        """GFLOP of one training step per image, from ``forward`` (role -> GFLOP of its network's forward on
        one image): three forwards per path (the backward counts two), plus the frozen teacher's forward. A
        method's own layers (CIRKD's projection, Af-DCD's projector) are not counted."""
        return 3 * self.passes(cfg) * forward(self.name) + (forward(self.teacher) if self.teacher else 0.0)

    def run_name(self, seed: int) -> str:
        """The DVC stage (and MLflow run) name, e.g. ``train_baseline@0`` or ``distill_compare@0-kd``."""
        return f"{self.stage}@{seed}" + (f"-{self.method}" if self.method else "")


def training_tflop(role: str, cfg: Config, forward: Callable[[str], float],
                   steps: Callable[[str], int] | None = None) -> float:
    """TFLOP of training ``role`` and every model it needed (:meth:`Role.needs`, recursively): steps x batch x
    :meth:`Role.step_gflop`. ``steps``: role -> the iterations it ran (default: its schedule under ``cfg``).
    The one accounting behind the compute-matched rows, ``benchmarks/recipes.py`` and ``benchmarks/cost.py``."""
    r = ROLES[role]
    iters = steps(role) if steps else r.schedule(cfg)[0]
    own = iters * cfg.train.batch_size * r.step_gflop(cfg, forward) / 1e3
    return own + sum(training_tflop(n, cfg, forward, steps) for n in r.needs(cfg))


def _dual_path(cfg: Config) -> int:
    return 2 if cfg.lad.dual_path else 1


def _method_tuned(method: str) -> tuple[str, ...]:
    return tuple(f"compare.hparams.{method}.{k}" for k in method_section(method).tuned)


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
         ("data", "model.teacher", "train", "lad", "distill.codebook", "distill.noise_std"), (), "teacher.pt",
         passes=_dual_path),
    Role("student", "distill", "student", "lad_distill",
         ("data", "model.student", "model.teacher", "train", "lad.scale", "distill"), ("teacher", "baseline"),
         "student.pt", teacher="teacher", schedule=_distill_schedule, warm_start=_baseline_if_warm,
         registered=True, tuned=("distill.w_kd",), calibrated="lad"),  # the baseline: its warm start (distill.init)
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
         "label_student", schedule=_distill_schedule, skip=_without_controls, warm_start=_baseline_if_warm,
         tuned=("controls.w_kd",), calibrated="label"),
    *[Role(f"{COMPARE_PREFIX}{m}", "distill_compare", "student", "method_distill", COMPARE_SECTIONS,
           ("conventional_teacher",), f"compare/{m}", teacher="conventional_teacher", method=m,
           schedule=_compare_schedule, skip=_method_skip(m), tuned=_method_tuned(m), calibrated=m)
      for m in METHOD_NAMES],
]}


def _teacher_detail(cfg: Config) -> str:
    net = "the student's network, " if cfg.model.conventional_teacher == cfg.model.student else ""
    return f" ({net}{cfg.compare.teacher_iters / cfg.train.iters:g}x the steps)"


@dataclass(frozen=True)
class Evaluation:
    """One evaluated model: a role's checkpoint, what its label channel holds (None: image only), whether it
    ships (exported to ONNX and checked by onnxruntime), and its row's wording in every table
    (:meth:`title`; ``input``: what a teacher sees at evaluation, for the teachers' table)."""

    name: str
    role: str
    label_channel: Channel | None = None
    ships: bool = False
    what: str = ""
    input: str = ""
    detail: Callable[[Config], str] | None = None  # what the params add to ``what``

    def title(self, cfg: Config) -> str:
        """The row's name under the params: ``what`` with its detail, and how a student whose start
        ``distill.init`` decides started."""
        role = ROLES[self.role]
        if role.warm_start is not _baseline_if_warm:
            return self.what + (self.detail(cfg) if self.detail else "")
        warm = role.warm_start(cfg)
        return self.what + (f" warm-started from the {warm}" if warm else " from scratch")


EVALUATIONS: dict[str, Evaluation] = {e.name: e for e in [
    Evaluation("baseline", "baseline", ships=True, what="baseline"),
    Evaluation("baseline_ft", "baseline_ft", ships=True,
               what="equal-budget control: the baseline trained on for as many steps as the student"),
    Evaluation("lad_student", "student", ships=True, what="LAD student"),
    Evaluation("teacher_random", "teacher", "random", what="LAD teacher, random code book (as it trained)",
               input="image + label, random code book (as trained)"),
    Evaluation("teacher_fixed", "teacher", "fixed", what="LAD teacher, fixed code book (as it distils)",
               input="image + label, fixed code book (as distilling)"),
    Evaluation("teacher_zero", "teacher", "zero", what="LAD teacher, all-zero label channel",
               input="image + all-zero label channel"),
    Evaluation("conventional_teacher", "conventional_teacher", what="conventional teacher",
               input="image only (the comparison rows' teacher)", detail=_teacher_detail),
    Evaluation("baseline_matched", "baseline_matched", ships=True, what="compute-matched baseline"),
    Evaluation("label_student", "label_student", ships=True, what="label-only control"),
    *[Evaluation(f"{COMPARE_PREFIX}{m}", f"{COMPARE_PREFIX}{m}", ships=True, what=f"{method_section(m).title} student")
      for m in METHOD_NAMES],
]}


# role -> its first evaluation (one per role that ships; the LAD teacher's first: the code book it trained with)
EVALUATION_OF = {e.role: e.name for e in reversed(EVALUATIONS.values())}

# the first columns of `dvc exp show` (reports/metrics.json's first entry): column -> evaluation
HEADLINE = {"lad_student": "lad_student", "baseline": "baseline", "teacher": "teacher_fixed"}
