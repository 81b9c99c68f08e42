"""Training steps: what one kind of training computes per batch (the loop is :mod:`pipeline.engine`'s).

A step turns a batch into loss terms (``loss`` is the one minimised) and says what the model sees at
validation (:meth:`model_input`). Every kind is built through one signature, ``from_inputs(StepInputs)``,
and is loaded by name only when a role trains with it: a stage imports the loss code of its own role
and no other, so editing a distillation loss leaves the baseline's stage up to date (``dvc.yaml``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pipeline.config import Config
    from pipeline.roles import Role

StepKind = Literal["supervised", "lad_teacher", "lad_distill", "method_distill"]

# kind -> "module:class"; a new kind of training is one more entry and one module beside this one
STEP_KINDS: dict[StepKind, str] = {
    "supervised": "pipeline.steps.supervised:SupervisedStep",  # CE (+ aux): baselines, conventional teacher
    "lad_teacher": "pipeline.steps.lad_teacher:LADTeacherStep",  # image + noised label, dual-path consistency
    "lad_distill": "pipeline.steps.lad_distill:DistillStep",  # student from the frozen LAD teacher
    "method_distill": "pipeline.steps.method_distill:MethodDistillStep",  # a pipeline.methods loss
}


@dataclass(frozen=True)
class StepInputs:
    """Everything a step is built from: the params, the role it trains, the label space and, for a
    role that distils, its frozen teacher (on the training device)."""

    cfg: Config
    role: Role
    num_classes: int
    ignore_index: int
    teacher: nn.Module | None = None


class Step(Protocol):
    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]: ...


def step_class(kind: StepKind) -> Any:
    """The class of step ``kind``, imported on first use."""
    module, name = STEP_KINDS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_step(inputs: StepInputs) -> Step:
    """The step that trains ``inputs.role``."""
    if inputs.role.teacher and inputs.teacher is None:
        raise ValueError(f"{inputs.role.name}: distils from {inputs.role.teacher}, and no teacher was given")
    return step_class(inputs.role.step).from_inputs(inputs)
