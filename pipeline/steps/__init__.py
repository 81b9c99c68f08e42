"""Training steps: what one kind of training computes per batch (the loop is :mod:`pipeline.engine`'s).

A step turns a batch into loss terms (``loss`` is the one minimised) and says what the model sees at
validation (:meth:`model_input`). A kind is a module of this package, ``pipeline/steps/<kind>.py``, whose
``STEP`` class is built through the one signature ``STEP.from_inputs(StepInputs)``. It is imported only
when a role trains with it: a stage imports the loss code of its own role and no other, so editing a
distillation loss leaves the baseline's stage up to date (``dvc.yaml``). A new kind is one new module.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

    from pipeline.config import Config
    from pipeline.roles import Role

# the kinds here: supervised (CE + aux: the baselines, the conventional teacher), lad_teacher (image +
# noised label, dual-path consistency), lad_distill (the student from the frozen LAD teacher),
# method_distill (a comparison row: a pipeline.methods loss from the conventional teacher), label_distill
# (the label-only control: the LAD student's loss toward the smoothed label, no teacher)
StepKind = str  # the name of a module of this package


@dataclass(frozen=True)
class StepInputs:
    """Everything a step is built from: the params, the role it trains, the label space, the network it
    trains (its widths; the trainer moves it) and, for a role that distils, its frozen teacher (on the
    training device)."""

    cfg: Config
    role: Role
    num_classes: int
    ignore_index: int
    teacher: nn.Module | None = None
    model: nn.Module | None = None


class Step(Protocol):
    """What the trainer needs from a step, and all it reads of one.

    Attributes:
        module: its own trainable layers and buffers (a method's projections and memory queues), optimised
            and checkpointed with the network, their gradients averaged over processes by the trainer;
            None: none.
        generator: its own random stream (the distilling teacher's label noise), seeded and checkpointed by
            the trainer; None: it draws from torch's.
        max_grad_norm: the gradient norm ``module``'s parameters are clipped to (Af-DCD's); None: not clipped.
    """

    module: nn.Module | None
    generator: torch.Generator | None
    max_grad_norm: float | None

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """What the model sees at validation."""
        ...

    def __call__(self, model: nn.Module, image: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        """The loss terms of one batch (``loss``: the one minimised)."""
        ...


class StepDefaults:
    """A step with no module of its own, torch's random stream, and the image as the validation input; the
    step kinds start from it."""

    module: nn.Module | None = None
    generator: torch.Generator | None = None
    max_grad_norm: float | None = None

    def model_input(self, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        return image


def step_class(kind: StepKind) -> Any:
    """The ``STEP`` class of ``pipeline/steps/<kind>.py``, imported on first use."""
    try:
        module = importlib.import_module(f"{__name__}.{kind}")
    except ModuleNotFoundError as err:
        if err.name != f"{__name__}.{kind}":
            raise
        raise ValueError(f"step kind {kind!r}: no module pipeline/steps/{kind}.py") from None
    return module.STEP


def build_step(inputs: StepInputs) -> Step:
    """The step that trains ``inputs.role``."""
    if inputs.role.teacher and inputs.teacher is None:
        raise ValueError(f"{inputs.role.name}: distils from {inputs.role.teacher}, and no teacher was given")
    return step_class(inputs.role.step).from_inputs(inputs)
