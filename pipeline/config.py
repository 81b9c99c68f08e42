"""``params.yaml`` -> a typed, validated configuration (pydantic v2, strict).

Each section of ``params.yaml`` is a model below whose fields carry their type, allowed values and
bounds; the values and their documentation live in ``params.yaml`` alone. Validation is strict: every
key must be present (no code default stands in for a missing one), unknown keys, NaN/inf, wrong types
(``"yes"`` for a bool, ``1.5`` for an integer) and empty lists are refused. :func:`load_config` runs
before a stage starts work and turns the first problem into one line that names the key::

    train.lr: expected a finite number, got nan
    train.lrr: unknown key; did you mean 'lr'? (allowed: iters, batch_size, ...)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

MAX_SEED = 2**31 - 1  # numpy and torch seed every generator from it (rank and offsets are added)


class ConfigError(ValueError):
    """A bad value in ``params.yaml``; the message names the key."""


class Invalid(ValueError):
    """Raised by a cross-field check: ``field`` (within the section) and what is wrong with it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


# The names params.yaml may use. This module is the schema: it imports no registry (so a stage that
# reads params does not depend on every registry's code); each registry implements exactly these names
# (its dict is typed with them, and tests/test_config.py checks that the two agree).
Optimizer = Literal["sgd", "adamw"]  # pipeline.optim.OPTIMIZERS
Precision = Literal["none", "bf16", "fp16"]  # pipeline.optim.AMP_DTYPES
Amp = Literal["auto", Precision]  # auto: bf16 on a CUDA GPU with native bf16, else none (distributed.resolve_amp)
Codebook = Literal["random", "fixed"]  # pipeline.lad.CODEBOOKS
Distance = Literal["cwd", "kl"]  # pipeline.losses.DISTANCES
Arch = Literal["deeplabv3", "fcn", "ocrnet", "pspnet", "stdc"]  # pipeline.models.HEADS
LabelInit = Literal["official", "timm"]  # pipeline.models.LABEL_INITS
DatasetName = Literal["synthetic", "voc", "cityscapes", "ade20k", "coco_stuff164k", "coco_stuff10k",
                      "camvid", "folder"]  # pipeline.data.layouts.LAYOUTS
STDC_BACKBONES = ("stdc1", "stdc2")  # pipeline.models.stdc.STDC_LAYERS: built here, not by timm
# timm models the defaults and recipes name, so that checking them needs no import of timm (about 5 s on a
# 2-core AMD EPYC, for every command that only reads params.yaml); tests/test_models.py asks timm about each
KNOWN_TIMM = frozenset({"resnet18d", "resnet34d", "resnet50d", "resnet101d"})


def check_backbone(name: str) -> None:
    """Raise ValueError if neither timm nor :data:`STDC_BACKBONES` knows ``name`` (the caller names the key)."""
    if name in STDC_BACKBONES or name in KNOWN_TIMM:
        return
    import timm  # its own registry of model names; imported only here, where a name is checked

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, list(STDC_BACKBONES) + timm.list_models(), n=5, cutoff=0.6)
        raise ValueError(f"unknown timm model {name!r} (close matches: {close or 'none'}; see timm.list_models())")


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
LearningRate = Annotated[float, Field(gt=0, le=10)]
Side = Annotated[int, Field(ge=16, le=8192)]  # an image or crop side, pixels
Width = Annotated[int, Field(ge=4, le=4096)]  # channels of a head


class Section(BaseModel):
    """Strict: exact types (an int where a float is asked is fine), every key required, no extras."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, validate_default=True)


class SyntheticConfig(Section):
    """The embedded shapes dataset that ``prepare`` generates (pipeline/data/synthetic.py)."""

    seed: Seed  # generator seed: same seed, same images
    num_train: Annotated[int, Field(ge=1)]  # images
    num_val: Annotated[int, Field(ge=1)]  # images
    size: Annotated[int, Field(ge=16, le=4096)]  # image side, pixels
    max_objects: Annotated[int, Field(ge=1, le=32)]  # objects per image: 1..max_objects
    min_scale: Annotated[float, Field(ge=0.01, le=1)]  # object diameter, fraction of the side
    max_scale: Annotated[float, Field(ge=0.01, le=1)]  # object diameter, fraction of the side
    clutter: Annotated[int, Field(ge=0, le=64)]  # background blobs per image
    noise_std: Annotated[float, Field(ge=0, le=255)]  # pixel noise, 0..255 units
    ignore_border: Annotated[int, Field(ge=0, le=16)]  # ignore band along outlines, pixels

    @model_validator(mode="after")
    def _scales(self) -> SyntheticConfig:
        if self.min_scale > self.max_scale:
            raise Invalid("min_scale", f"must not exceed synthetic.max_scale ({self.max_scale}), got {self.min_scale}")
        return self


class DataConfig(Section):
    name: DatasetName  # a layout of pipeline/data/layouts.py
    root: str  # the dataset in its published layout
    train_split: str
    val_split: str
    coco_classes: Literal[171, 182]  # COCO-Stuff label space
    mean: Annotated[list[float], Field(min_length=3, max_length=3)]  # per input channel, 0..1 units
    std: Annotated[list[Positive], Field(min_length=3, max_length=3)]  # per input channel, 0..1 units
    channel_order: Literal["rgb", "bgr"]
    on_bad: Literal["error", "skip"]  # a bad file in prepare


class ModelConfig(Section):
    arch: Arch  # decode head
    backbone: str  # a timm model with features_only, or stdc1 | stdc2
    output_stride: Literal[8, 16, 32]
    head_channels: Width
    aux_channels: Width
    pretrained: bool  # timm ImageNet weights
    pretrained_path: str  # local weights file; "" = the hub
    label_init: LabelInit  # the teacher's 4th input channel with pretrained weights
    dropout: Annotated[float, Field(ge=0, le=0.99)]
    aspp_rates: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]  # DeepLabV3 dilations
    channels: list[Annotated[int, Field(ge=1)]]  # 4 ResNet stage widths, or [] for the backbone's own
    stem_width: Annotated[int, Field(ge=0, le=4096)]  # 0 = the backbone's own

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, name: str, info: ValidationInfo) -> str:
        if (info.context or {}).get("networks", True):  # off only where no network is built (a skipped stage)
            check_backbone(name)
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.pretrained_path and not Path(self.pretrained_path).is_file():
            raise Invalid("pretrained_path", f"{self.pretrained_path}: file not found "
                                             "(a timm weights file for the backbone, .pth/.bin/.safetensors)")
        if self.pretrained_path and not self.pretrained:
            raise Invalid("pretrained_path", "is set but pretrained is false")
        if self.channels and len(self.channels) != 4:
            raise Invalid("channels", "expected 4 stage widths >= 1 (or [] for the backbone's own), "
                                      f"got {self.channels}")
        if self.backbone in STDC_BACKBONES and (self.output_stride != 32 or self.pretrained):
            raise Invalid("backbone", f"{self.backbone} is built here without dilation or ImageNet weights: set "
                                      "output_stride: 32 and pretrained: false")
        if self.backbone in STDC_BACKBONES and (self.channels or self.stem_width):
            raise Invalid("channels", f"{self.backbone} has fixed widths; set channels: [] and stem_width: 0 (they "
                                      f"narrow timm ResNets), got {self.channels} and {self.stem_width}")
        return self


class ModelsConfig(Section):
    student: ModelConfig  # the deployed network (image only)
    teacher: ModelConfig  # the LAD teacher (image + label channel)
    conventional_teacher: ModelConfig  # the comparison rows' image-only teacher


class TrainConfig(Section):
    iters: Annotated[int, Field(ge=1)]  # optimisation steps
    batch_size: Annotated[int, Field(ge=1)]  # images per step and process
    optimizer: Optimizer
    lr: LearningRate  # peak
    momentum: Annotated[float, Field(ge=0, le=1)]  # sgd momentum / adamw beta1
    weight_decay: Annotated[float, Field(ge=0, le=1)]
    poly_power: Annotated[float, Field(ge=0, le=10)]
    w_aux: NonNegative  # the baseline's auxiliary CE weight
    crop_size: Side
    scale_range: Annotated[list[Positive], Field(min_length=2, max_length=2)]  # [min, max] random rescale
    flip: bool
    amp: Amp
    val_interval: Annotated[int, Field(ge=0)]  # steps; 0 = at the end only
    nproc: Annotated[int, Field(ge=1, le=1024)]  # processes per node (torchrun)
    device: Literal["auto", "cpu", "cuda"]

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        # the same answer on every machine: whether CUDA is there is checked when a stage starts
        # (pipeline.distributed.pick_device), not here
        if self.scale_range[0] > self.scale_range[1]:
            raise Invalid("scale_range", f"expected [min, max] with 0 < min <= max, got {self.scale_range}")
        if self.amp == "fp16" and self.device == "cpu":
            raise Invalid("amp", "'fp16' needs CUDA; use 'bf16' or 'none' on CPU")
        return self


class RunConfig(Section):
    """How the stages run, never what they compute: no stage lists it under ``params`` and no
    fingerprint hashes it, so changing it reruns nothing."""

    log_interval: Annotated[int, Field(ge=1)]  # steps between printed and MLflow-logged loss lines
    ckpt_interval: Annotated[int, Field(ge=1)]  # steps between resume checkpoints
    num_workers: Annotated[int, Field(ge=0, le=64)]  # DataLoader workers (augmentation is seeded per sample)
    cache_images: bool  # decoded images kept in RAM
    # GPU speed (pipeline.engine.Trainer); float32 results within rounding of the defaults (tests/test_engine.py)
    channels_last: bool | Literal["auto"]  # NHWC tensors, what tensor cores want; auto: on CUDA only
    cudnn_benchmark: bool  # cuDNN times its kernels for each input shape once, then keeps the fastest (CUDA)
    compile: bool  # torch.compile the training step's network (minutes of compiling first; pays on long runs)


class LADConfig(Section):
    """Label Noising Module and dual-path teacher training."""

    codebook: Codebook  # while training the teacher
    noise_std: NonNegative  # label channel pixel noise sigma
    scale: NonNegative  # label channel multiplier
    dual_path: bool  # two noised paths + consistency
    w_aux: NonNegative
    w_cons: NonNegative  # consistency weight
    temperature: Positive  # of the consistency distance
    distance: Distance  # consistency distance


class DistillConfig(Section):
    """The student from the frozen LAD teacher."""

    codebook: Codebook  # what the frozen teacher sees
    noise_std: NonNegative
    w_kd: NonNegative
    temperature: Positive
    w_aux: NonNegative
    distance: Distance
    init: Literal["scratch", "baseline"]  # the student's starting weights
    iters: Annotated[int, Field(ge=1)]
    lr: LearningRate


class KDHparams(Section):
    """Pixel-wise KD on the logits (CIRKD's train_kd.py: lambda-kd 1, T 1)."""

    title: ClassVar[str] = "KD"  # the Method column of the tables
    tuned: ClassVar[tuple[str, ...]] = ("w_kd",)  # its weights calibration scales
    w_kd: NonNegative
    temperature: Positive


class CWDHparams(Section):
    """CWD on logits and head embeddings plus pixel KD (CIRKD's train_cwd.sh: lambda-cwd-logit 3,
    lambda-cwd-fea 50, T 4, lambda-kd 1 with KD T 1; its adversarial terms are left out)."""

    title: ClassVar[str] = "CWD + KD (no adversarial term)"
    tuned: ClassVar[tuple[str, ...]] = ("w_logits", "w_features", "w_kd")
    w_logits: NonNegative
    w_features: NonNegative  # 0: CWD on logits only
    temperature: Positive
    w_kd: NonNegative  # 0: no pixel KD
    kd_temperature: Positive


class CIRKDHparams(Section):
    """CIRKD (CIRKD's train_cirkd.py defaults, Cityscapes; its VOC script sets both memory weights to 0.01)."""

    title: ClassVar[str] = "CIRKD"
    tuned: ClassVar[tuple[str, ...]] = ("w_kd", "w_pair", "w_memory_pixel", "w_memory_region")
    w_kd: NonNegative
    kd_temperature: Positive
    w_pair: NonNegative
    w_memory_pixel: NonNegative
    w_memory_region: NonNegative
    contrast_temperature: Positive
    contrast_kd_temperature: Positive
    pixel_memory: Annotated[int, Field(ge=1)]  # queue lengths and sampled contrasts, pixels / regions
    region_memory: Annotated[int, Field(ge=1)]
    pixel_contrast: Annotated[int, Field(ge=1)]
    region_contrast: Annotated[int, Field(ge=1)]


class DISTHparams(Section):
    """DIST on the class probabilities (hunto/DIST_KD, segmentation/train_kd.py and losses/dist_kd.py:
    lambda-kd 1, beta 1, gamma 1, softmax at temperature 1, 0.4 of it on the auxiliary logits)."""

    title: ClassVar[str] = "DIST"
    tuned: ClassVar[tuple[str, ...]] = ("w_dist",)
    w_dist: NonNegative
    beta: NonNegative  # the inter-class relation (per pixel, over classes)
    gamma: NonNegative  # the intra-class relation (per class, over the batch's pixels)
    w_aux: NonNegative  # of w_dist, on the auxiliary heads' logits; 0 = main logits only


class FitNetHparams(Section):
    """FitNet-style feature distillation (Romero et al., ICLR 2015): one weight on the hint loss, the mean
    squared error of the adapted student backbone map against the teacher's (1 here; the protocol's grid
    calibrates it, as every method's)."""

    title: ClassVar[str] = "FitNet"
    tuned: ClassVar[tuple[str, ...]] = ("w_hint",)
    w_hint: NonNegative


class AfDCDHparams(Section):
    """Af-DCD (OSVAI/Af-DCD, train_ocmgd.py defaults: lambda-kd 1 with KD T 1, lambda-fd 4e-5, lambda-ctr
    0.001, mask ratio 0.75; losses/ocmgd.py: tau 0.07, 16 groups, max-pool 4, 4x4 patches; gradient norm of
    its layers clipped at 15). Its VOC script sets lambda-fd 1e-6, lambda-ctr 0.005."""

    title: ClassVar[str] = "Af-DCD"
    tuned: ClassVar[tuple[str, ...]] = ("w_kd", "w_fd", "w_ctr")
    w_kd: NonNegative
    kd_temperature: Positive
    w_fd: NonNegative  # the masked generation's summed squared error, per image
    w_ctr: NonNegative  # the omni-contrastive term
    mask_ratio: Annotated[float, Field(ge=0, lt=1)]  # share of the student's positions zeroed
    temperature: Positive  # of the contrast
    groups: Annotated[int, Field(ge=1)]  # channel groups (the teacher's backbone width must divide)
    pool: Annotated[int, Field(ge=1)]  # max-pool before the contrast (1: none)
    patch: Annotated[int, Field(ge=1)]  # contrast patch side, after the pool
    max_grad_norm: Positive  # of its own layers (align, projector)


class MethodsHparams(Section):
    """One section per distillation method of pipeline.methods.METHODS (the same keys)."""

    kd: KDHparams
    cwd: CWDHparams
    cirkd: CIRKDHparams
    dist: DISTHparams
    afdcd: AfDCDHparams
    fitnet: FitNetHparams


# the fields of MethodsHparams; pipeline.methods.METHODS
MethodName = Literal["kd", "cwd", "cirkd", "dist", "afdcd", "fitnet"]


def method_section(method: str) -> type[Section]:
    """The hyper-parameter section of a distillation method: its fields, ``title`` and ``tuned`` weights."""
    return MethodsHparams.model_fields[method].annotation


class CompareConfig(Section):
    """The comparison rows: a conventional teacher and earlier distillation methods from it."""

    enabled: bool
    teacher_iters: Annotated[int, Field(ge=1)]  # the conventional teacher's steps (peak lr: train.lr)
    methods: Annotated[list[MethodName], Field(min_length=1)]  # one comparison student each
    iters: Annotated[int, Field(ge=1)]
    lr: LearningRate
    w_aux: NonNegative
    hparams: MethodsHparams  # every method's hyper-parameters

    @model_validator(mode="after")
    def _distinct(self) -> CompareConfig:
        if len(set(self.methods)) != len(self.methods):
            raise Invalid("methods", f"expected a non-empty list of distinct method names, got {self.methods}")
        return self


class ControlsConfig(Section):
    """The paper table's controls (docs/protocol.md): a compute-matched baseline and a label-only student."""

    enabled: bool
    matched_iters: Annotated[int, Field(ge=1)]  # the compute-matched baseline's steps (peak lr: train.lr)
    w_kd: NonNegative  # the label-only student's distance weight (its other settings: distill's)
    label_smoothing: Annotated[float, Field(gt=0, lt=1)]  # the label-only student's target: (1 - e) one-hot + e / K


class EvaluateConfig(Section):
    batch_size: Annotated[int, Field(ge=1)]
    multi_scale: Annotated[list[Positive], Field(min_length=1)]  # scales whose scores are averaged
    flip: bool
    mode: Literal["whole", "slide"]
    crop: Side  # slide window side
    stride: Annotated[int, Field(ge=1, le=8192)]  # slide window step
    num_examples: Annotated[int, Field(ge=0, le=64)]  # images in the report's grid
    latency_reps: Annotated[int, Field(ge=0, le=100000)]  # timed batch-1 forwards per model; 0 = not timed
    registered_model: str  # MLflow model registry name of the LAD student; "" = not registered

    @model_validator(mode="after")
    def _no_gaps(self) -> EvaluateConfig:
        if self.stride > self.crop:
            raise Invalid("stride", f"must not exceed evaluate.crop ({self.crop}): windows would leave gaps, "
                                    f"got {self.stride}")
        return self


# heads with a BatchNorm on a globally pooled map: on one image it sees one value per channel and torch fails
# in the first training step (tests/test_config.py checks this list against the real networks)
POOLED_BATCHNORM: dict[str, str] = {"deeplabv3": "ASPP image pooling", "pspnet": "the 1x1 pyramid bin",
                                    "stdc": "the global context"}


class Config(Section):
    seeds: Annotated[list[Seed], Field(min_length=1)]  # one run of every trained stage per seed
    data: DataConfig
    synthetic: SyntheticConfig
    model: ModelsConfig
    train: TrainConfig
    lad: LADConfig
    distill: DistillConfig
    compare: CompareConfig
    controls: ControlsConfig
    evaluate: EvaluateConfig
    run: RunConfig  # operational: read by the stages, listed by none

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"expected distinct seeds, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _trainable(self) -> Config:
        pooled = sorted({net.arch for _, net in self.model} & set(POOLED_BATCHNORM))
        if self.train.batch_size < 2 and pooled:
            where = "; ".join(f"{a}: {POOLED_BATCHNORM[a]}" for a in pooled)
            raise Invalid("train.batch_size", f"1 image per process cannot train these heads, whose BatchNorm after a "
                                              f"global pooling sees one value per channel ({where}); use 2 or more "
                                              "(it is per process), or fewer processes")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def sections(self, *names: str) -> dict[str, Any]:
        """The named sections (``"train"``, ``"model.student"``) keyed by their dotted names."""
        tree = self.to_dict()
        return {name: select(tree, name) for name in names}

    def section_hash(self, *names: str) -> str:
        """A short stable hash of the named sections."""
        return stable_hash(self.sections(*names))


def check_networks(cfg: Config) -> None:
    """The backbone names of every network, as a full validation checks them (``networks=True``)."""
    for name, net in cfg.model:
        try:
            check_backbone(net.backbone)
        except ValueError as err:
            raise ConfigError(f"model.{name}.backbone: {err}") from None


def stable_hash(obj: Any) -> str:
    """12 hex digits of SHA-256 over canonical JSON: equal values, equal hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        flat.update(flatten(v, f"{key}.") if isinstance(v, dict) else {key: v})
    return flat


def select(tree: dict[str, Any], dotted: str) -> Any:
    """``select(d, "a.b")`` is ``d["a"]["b"]``."""
    for part in dotted.split("."):
        tree = tree[part]
    return tree


EXPECTED = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
            "string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
            "model_type": "a mapping (section)", "finite_number": "a finite number",
            "missing": None, "extra_forbidden": None}
BOUND_WORDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
               "less_than": ("<", "lt")}


def _section_fields(loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed at ``loc`` (the path of a section)."""
    model: Any = Config
    for part in loc:
        model = model.model_fields[part].annotation
    return list(model.model_fields)


def _explain(err: dict[str, Any]) -> str:
    """One pydantic error -> ``key: what was expected, got what``."""
    loc, kind, ctx = tuple(err["loc"]), err["type"], err.get("ctx") or {}
    cause = ctx.get("error")
    if isinstance(cause, ConfigError):
        return str(cause)
    if isinstance(cause, Invalid):
        sep = " " if cause.message.startswith("is ") else ": "  # "x is set but ..." reads as a sentence
        return f"{'.'.join(map(str, loc + (cause.field,)))}{sep}{cause.message}"
    key = ".".join(str(p) for p in loc) or "params"
    got = f", got {err['input']!r}"
    if kind == "missing":
        return f"{key}: missing; params.yaml must set every key (the repository's params.yaml lists them all)"
    if kind == "extra_forbidden":
        names = _section_fields(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{key}: unknown key{hint} (allowed: {', '.join(names)})"
    if kind == "literal_error":
        return f"{key}: expected one of {ctx['expected']}{got}"
    if kind in BOUND_WORDS:
        word, name = BOUND_WORDS[kind]
        return f"{key}: expected a value {word} {ctx[name]}{got}"
    if kind in ("too_short", "too_long"):
        count, more = ctx.get("min_length", ctx.get("max_length")), "more" if kind == "too_short" else "fewer"
        return f"{key}: expected {count} or {more} items{got}"
    if EXPECTED.get(kind):
        return f"{key}: expected {EXPECTED[kind]}{got}"
    if isinstance(cause, ValueError):
        return f"{key}: {cause}"
    return f"{key}: {err['msg']}{got}"


def config_from_dict(values: Any, networks: bool = True) -> Config:
    """Build and validate a :class:`Config`; raises :class:`ConfigError` naming the bad key.

    ``networks=False`` leaves out the one check that imports a library (timm's list of backbones), for a
    stage that builds no network and should start in a fraction of a second.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"params: expected a mapping at the top level, got {type(values).__name__}")
    try:
        return Config.model_validate(values, context={"networks": networks})
    except ValidationError as err:
        # a wrong or misspelt key explains the key that then goes missing: report it first
        errors = sorted(err.errors(), key=lambda e: e["type"] == "missing")
        raise ConfigError(_explain(errors[0])) from None
    except ValueError as err:  # a registry check (backbone) names its own key
        raise ConfigError(str(err)) from None


class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: ``4e-05`` (no mantissa point) is a number, as DVC's
    ruamel writes a float set with ``dvc exp run -S`` back into params.yaml, not the string YAML 1.1 reads."""


ParamsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+"
               r"(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))$|^\.(?:nan|NaN|NAN)$"),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """``text`` (params.yaml or a part of it) as Python values, read as DVC writes it (:class:`ParamsLoader`)."""
    return yaml.load(text, Loader=ParamsLoader)  # noqa: S506 -- a SafeLoader subclass


def load_config(path: str | Path = "params.yaml", networks: bool = True) -> Config:
    """Read ``params.yaml`` into a validated :class:`Config`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        values = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return config_from_dict(values, networks)
