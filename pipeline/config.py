"""``params.yaml`` -> typed, validated configuration.

Every section of ``params.yaml`` maps onto a dataclass below. :func:`load_config` checks keys,
types and allowed values before any stage starts work, and every error names the offending key
(``train.lr``), what it got and what is allowed.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


class ConfigError(ValueError):
    """A bad value in ``params.yaml``; the message names the key."""


@dataclass
class SyntheticConfig:
    """The embedded shapes dataset that ``prepare`` generates (see pipeline/data/synthetic.py)."""

    seed: int = 0  # generator seed: same seed, same images
    num_train: int = 600  # training images
    num_val: int = 150  # validation images
    size: int = 64  # image side, pixels
    max_objects: int = 4  # objects per image, drawn uniformly in 1..max_objects
    min_scale: float = 0.3  # smallest object diameter, fraction of the image side
    max_scale: float = 0.6  # largest object diameter, fraction of the image side
    clutter: int = 3  # background distractor blobs per image (labelled background)
    noise_std: float = 12.0  # additive pixel noise, in 0..255 intensity units
    ignore_border: int = 1  # width in pixels of the ignore band around objects, as in VOC


@dataclass
class DataConfig:
    name: str = "synthetic"  # synthetic | voc | cityscapes | ade20k | coco_stuff164k | coco_stuff10k | camvid
    root: str = "data/prepared/synthetic"  # the dataset in its published layout (generated here for synthetic)
    train_split: str = "train"  # split used for training (e.g. train_aug for VOC, training for ADE20K)
    val_split: str = "val"  # split used for validation and evaluation
    coco_classes: int = 171  # COCO-Stuff: 171 (mmsegmentation; unused thing ids ignored) | 182 (raw ids)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])  # per input channel, 0..1 units
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])  # per input channel, 0..1 units
    channel_order: str = "rgb"  # rgb (timm's ImageNet weights) | bgr (Caffe-style weights of the official code)
    cache: bool = True  # keep decoded images in memory (small datasets only)
    on_bad: str = "error"  # a bad file in prepare: error (stop, naming it) | skip (leave it out, listed in skipped.tsv)


@dataclass
class ModelConfig:
    arch: str = "deeplabv3"  # head registry key: deeplabv3 | pspnet | fcn | ocrnet | stdc
    backbone: str = "resnet18d"  # any timm model that supports features_only, or stdc1 | stdc2
    output_stride: int = 8  # 8 or 16: dilated last stage(s), as in the paper; 32 for STDC
    head_channels: int = 64  # width of the decode head (paper: 256-512; small for CPU)
    aux_channels: int = 32  # width of the auxiliary FCN head on stage-3 features
    pretrained: bool = False  # timm ImageNet weights (from the hub, or from pretrained_path)
    pretrained_path: str = ""  # local file of timm's weights for this backbone (offline clusters); "" = the hub
    label_init: str = "official"  # teacher, pretrained: 4th input channel N(0, 0.1^2), RGB copied (official) | timm
    dropout: float = 0.1  # dropout before the classifier
    aspp_rates: list[int] = field(default_factory=lambda: [12, 24, 36])  # deeplabv3 dilations (paper, stride 8)
    channels: list[int] = field(default_factory=list)  # timm ResNet stage widths, e.g. [16, 32, 64, 128]; [] = its own
    stem_width: int = 0  # timm ResNet stem width; 0 = its own


@dataclass
class ModelsConfig:
    student: ModelConfig = field(default_factory=ModelConfig)  # the deployed network (image only)
    teacher: ModelConfig = field(default_factory=ModelConfig)  # LAD teacher (image + label channel)
    conventional_teacher: ModelConfig = field(default_factory=ModelConfig)  # large image-only teacher (compare)


@dataclass
class TrainConfig:
    iters: int = 1000  # optimisation steps per trained model
    batch_size: int = 8  # images per step
    optimizer: str = "adamw"  # sgd | adamw (ours: adamw learns from scratch on CPU, TRIAL.md)
    lr: float = 1e-3  # peak learning rate
    momentum: float = 0.9  # SGD momentum (adamw: beta1)
    weight_decay: float = 1e-4  # decoupled for adamw, L2 for sgd
    poly_power: float = 0.9  # lr = lr0 * (1 - it/iters) ** power
    w_aux: float = 0.4  # auxiliary head CE weight of the baseline (CIRKD 0.4)
    crop_size: int = 64  # square training crop, pixels
    scale_range: list[float] = field(default_factory=lambda: [0.75, 1.25])  # random rescale
    flip: bool = True  # random horizontal flip
    amp: str = "none"  # none | bf16 | fp16 (fp16 only on CUDA); bf16 pays only on CPUs with native bf16
    val_interval: int = 250  # validate every N steps (0: only at the end)
    log_interval: int = 10  # log losses every N steps
    num_workers: int = 0  # DataLoader workers (0: in the main process)
    ckpt_interval: int = 100  # write the resume checkpoint every N steps
    nproc: int = 1  # processes per node; > 1 runs the stage under torchrun (DDP), batch_size is per process
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda


@dataclass
class LADConfig:
    """Label Noising Module and dual-path teacher training (METHOD.md)."""

    codebook: str = "random"  # code book while training the teacher: random | fixed
    noise_std: float = 0.03  # pixel noise sigma while training the teacher (official 0.03)
    scale: float = 1.0  # label channel scale; 1 suits mean/std-normalised images (official x100 on Caffe BGR)
    dual_path: bool = True  # two noised paths + consistency (False: one path, no consistency)
    w_aux: float = 0.4  # auxiliary head CE weight
    w_cons: float = 5.0  # consistency (CWD) weight between the two paths
    temperature: float = 4.0  # CWD temperature of the consistency term
    distance: str = "cwd"  # consistency distance: cwd (official) | kl (pixel-wise KL; ablation)


@dataclass
class DistillConfig:
    """Student distillation from the frozen LAD teacher."""

    codebook: str = "fixed"  # code book the frozen teacher sees: random | fixed (official fixed)
    noise_std: float = 0.02  # pixel noise sigma on the teacher's label channel (official 0.02)
    w_kd: float = 3.0  # CWD distillation weight (official 3)
    temperature: float = 4.0  # CWD temperature (official 4)
    w_aux: float = 0.02  # student auxiliary head CE weight (official 0.02)
    distance: str = "cwd"  # distillation distance: cwd (official) | kl (pixel-wise KL; ablation)
    init: str = "scratch"  # scratch | baseline (warm start from the trained baseline, as official)
    iters: int = 1000  # distillation steps (same budget as the baseline by default)
    lr: float = 1e-3  # peak learning rate of the distillation run


@dataclass
class CompareConfig:
    """The comparison rows: a conventional teacher and earlier distillation methods from it."""

    enabled: bool = False  # train the conventional teacher and one student per method (off: stages skip)
    methods: list[str] = field(default_factory=lambda: ["kd", "cwd", "cirkd"])  # pipeline/methods.py keys
    iters: int = 1000  # distillation steps per method (same budget as the baseline by default)
    lr: float = 1e-3  # peak learning rate
    w_aux: float = 0.4  # student auxiliary CE weight (CIRKD 0.4)
    hparams: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> overrides of its defaults


@dataclass
class EvaluateConfig:
    batch_size: int = 16  # images per evaluation batch
    multi_scale: list[float] = field(default_factory=lambda: [1.0])  # scales whose logits are averaged
    flip: bool = False  # also average horizontally flipped logits
    mode: str = "whole"  # whole (the image at once) | slide (crop-size windows, e.g. Cityscapes 512 of 1024x2048)
    crop: int = 512  # slide window side, pixels (of the rescaled image)
    stride: int = 341  # slide window step, pixels (2/3 of the window, as mmsegmentation)
    num_examples: int = 6  # val images in the prediction grid of the report


@dataclass
class Config:
    seeds: list[int] = field(default_factory=lambda: [0])  # one run of every trained stage per seed (DVC matrix)
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    model: ModelsConfig = field(default_factory=ModelsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    lad: LADConfig = field(default_factory=LADConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sections(self, *names: str) -> dict[str, Any]:
        """The named sections (``"train"``, ``"model.student"``) keyed by their dotted names."""
        tree = self.to_dict()
        return {name: select(tree, name) for name in names}

    def section_hash(self, *names: str) -> str:
        """A short stable hash of the named sections."""
        return stable_hash(self.sections(*names))


def stable_hash(obj: Any) -> str:
    """12 hex digits of SHA-256 over canonical JSON: equal values, equal hash."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


# Allowed values for string keys; the registries are checked where they live (models, data).
CHOICES: dict[str, tuple[str, ...]] = {
    "train.optimizer": ("sgd", "adamw"),
    "train.amp": ("none", "bf16", "fp16"),
    "train.device": ("auto", "cpu", "cuda"),
    "data.on_bad": ("error", "skip"),
    "data.coco_classes": (171, 182),
    "data.channel_order": ("rgb", "bgr"),
    "lad.codebook": ("random", "fixed"),
    "distill.codebook": ("random", "fixed"),
    "distill.init": ("scratch", "baseline"),
    "lad.distance": ("cwd", "kl"),
    "distill.distance": ("cwd", "kl"),
    "evaluate.mode": ("whole", "slide"),
}
MODEL_ROLES = ("student", "teacher", "conventional_teacher")  # the sections of params.yaml `model`

# (min, max, inclusive-min) bounds for numbers.
BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "synthetic.num_train": (1, None),
    "synthetic.num_val": (1, None),
    "synthetic.size": (16, 4096),
    "synthetic.max_objects": (1, 32),
    "synthetic.min_scale": (0.01, 1.0),
    "synthetic.max_scale": (0.01, 1.0),
    "synthetic.clutter": (0, 64),
    "synthetic.noise_std": (0.0, 255.0),
    "synthetic.ignore_border": (0, 16),
    "train.iters": (1, None),
    "train.batch_size": (1, None),
    "train.lr": (1e-12, 10.0),
    "train.momentum": (0.0, 1.0),
    "train.weight_decay": (0.0, 1.0),
    "train.poly_power": (0.0, 10.0),
    "train.w_aux": (0.0, None),
    "train.crop_size": (16, 8192),
    "train.val_interval": (0, None),
    "train.log_interval": (1, None),
    "train.num_workers": (0, 64),
    "train.ckpt_interval": (1, None),
    "train.nproc": (1, 1024),
    "lad.noise_std": (0.0, None),
    "lad.scale": (0.0, None),
    "lad.w_aux": (0.0, None),
    "lad.w_cons": (0.0, None),
    "lad.temperature": (1e-6, None),
    "distill.noise_std": (0.0, None),
    "distill.w_kd": (0.0, None),
    "distill.temperature": (1e-6, None),
    "distill.w_aux": (0.0, None),
    "distill.iters": (1, None),
    "distill.lr": (1e-12, 10.0),
    "compare.iters": (1, None),
    "compare.lr": (1e-12, 10.0),
    "compare.w_aux": (0.0, None),
    "evaluate.batch_size": (1, None),
    "evaluate.crop": (16, 8192),
    "evaluate.stride": (1, 8192),
    "evaluate.num_examples": (0, 64),
}
for _role in MODEL_ROLES:
    CHOICES[f"model.{_role}.output_stride"] = (8, 16, 32)
    CHOICES[f"model.{_role}.label_init"] = ("official", "timm")
    BOUNDS[f"model.{_role}.head_channels"] = (4, 4096)
    BOUNDS[f"model.{_role}.aux_channels"] = (4, 4096)
    BOUNDS[f"model.{_role}.dropout"] = (0.0, 0.99)
    BOUNDS[f"model.{_role}.stem_width"] = (0, 4096)


def select(tree: dict[str, Any], dotted: str) -> Any:
    """``select(d, "a.b")`` is ``d["a"]["b"]``."""
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {value!r}")
        return _build(tp, value, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list of {_type_name(item)}, got {value!r}")
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_tp, value_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return {_coerce(k, key_tp, key): _coerce(v, value_tp, f"{key}.{k}") for k, v in value.items()}
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {tp} for {key}")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{dotted}: unknown key{hint} (allowed: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], dotted)
    return cls(**kwargs)


def _check_values(cfg: Config) -> None:
    tree = cfg.to_dict()
    for key, allowed in CHOICES.items():
        value = select(tree, key)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {list(allowed)}, got {value!r}")
    for key, (lo, hi) in BOUNDS.items():
        value = select(tree, key)
        if lo is not None and value < lo or hi is not None and value > hi:
            rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"{key}: expected a value in {rng}, got {value!r}")
    s = cfg.synthetic
    if s.min_scale > s.max_scale:
        raise ConfigError(f"synthetic.min_scale: must not exceed synthetic.max_scale ({s.max_scale}), got {s.min_scale}")
    lo, hi = (cfg.train.scale_range + [None, None])[:2]
    if len(cfg.train.scale_range) != 2 or not 0 < lo <= hi:
        raise ConfigError(f"train.scale_range: expected [min, max] with 0 < min <= max, got {cfg.train.scale_range}")
    for key in ("data.mean", "data.std"):
        value = select(tree, key)
        if len(value) != 3 or (key == "data.std" and min(value) <= 0):
            raise ConfigError(f"{key}: expected 3 numbers (one per input channel){', all > 0' if key == 'data.std' else ''}, got {value}")
    if not cfg.seeds or min(cfg.seeds) < 0 or len(set(cfg.seeds)) != len(cfg.seeds):
        raise ConfigError(f"seeds: expected a non-empty list of distinct integers >= 0, got {cfg.seeds}")
    if cfg.evaluate.stride > cfg.evaluate.crop:
        raise ConfigError(f"evaluate.stride: must not exceed evaluate.crop ({cfg.evaluate.crop}): windows would "
                          f"leave gaps, got {cfg.evaluate.stride}")
    if not cfg.evaluate.multi_scale or min(cfg.evaluate.multi_scale) <= 0:
        raise ConfigError(f"evaluate.multi_scale: expected a non-empty list of scales > 0, got {cfg.evaluate.multi_scale}")
    import torch

    if cfg.train.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device: 'cuda' asked for, but torch sees no CUDA device; use 'auto' or 'cpu'")
    if cfg.train.amp == "fp16" and (cfg.train.device == "cpu" or not torch.cuda.is_available()):
        raise ConfigError("train.amp: 'fp16' needs CUDA; use 'bf16' or 'none' on CPU")
    from pipeline.data import LAYOUTS
    from pipeline.models import HEADS, STDC_LAYERS, check_backbone

    if cfg.data.name not in LAYOUTS:
        raise ConfigError(f"data.name: expected one of {list(LAYOUTS)}, got {cfg.data.name!r}")
    from pipeline.methods import method_hparams

    c = cfg.compare
    if not c.methods or len(set(c.methods)) != len(c.methods):
        raise ConfigError(f"compare.methods: expected a non-empty list of distinct method names, got {c.methods}")
    for name in c.methods + [m for m in c.hparams if m not in c.methods]:
        try:
            method_hparams(name, c.hparams.get(name))
        except ValueError as err:
            raise ConfigError(str(err)) from err
    for role in MODEL_ROLES:
        m = getattr(cfg.model, role)
        if m.arch not in HEADS:
            raise ConfigError(f"model.{role}.arch: expected one of {sorted(HEADS)}, got {m.arch!r}")
        try:
            check_backbone(m.backbone, f"model.{role}.backbone")
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if m.pretrained_path and not Path(m.pretrained_path).is_file():
            raise ConfigError(f"model.{role}.pretrained_path: {m.pretrained_path}: file not found "
                              "(a timm weights file for the backbone, .pth/.bin/.safetensors)")
        if m.pretrained_path and not m.pretrained:
            raise ConfigError(f"model.{role}.pretrained_path is set but model.{role}.pretrained is false")
        if m.channels and (len(m.channels) != 4 or min(m.channels) < 1):
            raise ConfigError(f"model.{role}.channels: expected 4 stage widths >= 1 (or [] for the backbone's own), "
                              f"got {m.channels}")
        if m.backbone in STDC_LAYERS and (m.output_stride != 32 or m.pretrained):
            raise ConfigError(f"model.{role}.backbone: {m.backbone} is built here without dilation or ImageNet "
                              f"weights: set model.{role}.output_stride: 32 and pretrained: false")
        if m.backbone in STDC_LAYERS and (m.channels or m.stem_width):
            raise ConfigError(f"model.{role}.channels: {m.backbone} has fixed widths; set model.{role}.channels: [] "
                              f"and stem_width: 0 (they narrow timm ResNets), got {m.channels} and {m.stem_width}")


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config`; raises :class:`ConfigError` naming the bad key."""
    if not isinstance(values, dict):
        raise ConfigError(f"params: expected a mapping at the top level, got {type(values).__name__}")
    cfg = _build(Config, values, "")
    _check_values(cfg)
    return cfg


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read ``params.yaml`` into a validated :class:`Config`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return config_from_dict(values)
