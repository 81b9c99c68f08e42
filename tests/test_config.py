"""params.yaml validation: every bad value is reported with its key, before any work."""

import re

import pytest
import yaml

from pipeline.config import ConfigError, config_from_dict, load_config
from tests.conftest import REPO, copy_repo, run, tiny_params

BAD = [
    ({"train": {"lr": -0.1}}, "train.lr"),
    ({"train": {"lrr": 0.1}}, "did you mean 'lr'"),
    ({"train": {"iters": "many"}}, "train.iters"),
    ({"train": {"iters": 1.5}}, "train.iters"),
    ({"train": {"optimizer": "adam"}}, "train.optimizer"),
    ({"train": {"amp": "fp8"}}, "train.amp"),
    ({"train": {"scale_range": [2.0, 1.0]}}, "train.scale_range"),
    ({"train": {"flip": "yes"}}, "train.flip"),
    ({"lad": {"noise_std": -1}}, "lad.noise_std"),
    ({"lad": {"codebook": "learned"}}, "lad.codebook"),
    ({"distill": {"init": "imagenet"}}, "distill.init"),
    ({"distill": {"temperature": 0}}, "distill.temperature"),
    ({"model": {"student": {"arch": "unet"}}}, "model.student.arch"),
    ({"model": {"teacher": {"backbone": "resnet_does_not_exist"}}}, "model.teacher.backbone"),
    ({"model": {"student": {"output_stride": 4}}}, "model.student.output_stride"),
    ({"data": {"name": "imagenet"}}, "data.name"),
    ({"data": {"std": [0.2, 0.0, 0.2]}}, "data.std"),
    ({"synthetic": {"min_scale": 0.9, "max_scale": 0.5}}, "synthetic.min_scale"),
    ({"evaluate": {"multi_scale": []}}, "evaluate.multi_scale"),
    ({"seed": 1}, "did you mean 'seeds'"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"seeds": [-1]}, "seeds"),
    ({"seeds": 3}, "seeds: expected a list"),
    ({"train": {"nproc": 0}}, "train.nproc"),
    ({"train": {"device": "tpu"}}, "train.device"),
    ({"train": {"amp": "fp16", "device": "cpu"}}, "train.amp"),
    ({"train": {"crop_size": 100000}}, "train.crop_size"),
    ({"data": {"on_bad": "ignore"}}, "data.on_bad"),
    ({"data": {"name": "pascal"}}, "data.name: expected one of .*'cityscapes'"),
    ({"data": {"coco_classes": 150}}, "data.coco_classes"),
    ({"data": {"channel_order": "rbg"}}, "data.channel_order"),
    ({"evaluate": {"mode": "tiles"}}, "evaluate.mode"),
    ({"evaluate": {"crop": 64, "stride": 100}}, "evaluate.stride"),
    ({"model": {"teacher": {"pretrained": True, "pretrained_path": "/nowhere/r18.pth"}}},
     "model.teacher.pretrained_path"),
    ({"model": {"student": {"pretrained_path": "params.yaml"}}}, "model.student.pretrained_path is set but"),
    ({"model": {"teacher": {"label_init": "zeros"}}}, "model.teacher.label_init"),
    ({"model": {"teacher": {"dropout": 1.5}}}, "model.teacher.dropout"),
    ({"model": {"student": {"channels": [16, 32, 64]}}}, "model.student.channels: expected 4 stage widths"),
    ({"model": {"student": {"channels": [16, 32, 0, 128]}}}, "model.student.channels"),
    ({"model": {"teacher": {"stem_width": -1}}}, "model.teacher.stem_width"),
    ({"model": {"student": {"backbone": "stdc1", "output_stride": 32}}}, "model.student.channels: stdc1 has fixed"),
    ({"unknown_section": {}}, "unknown_section"),
    ({"compare": {"methods": ["kd", "at"]}},
     "compare.methods.1: expected one of 'kd', 'cwd', 'cirkd', 'dist', 'afdcd' or 'fitnet'"),
    ({"compare": {"methods": ["kd", "kd"]}}, "compare.methods: expected a non-empty list of distinct"),
    ({"compare": {"methods": []}}, "compare.methods"),
    ({"compare": {"hparams": {"cirkd": {"w_memory": 0.01}}}}, "hparams.cirkd.w_memory: unknown key; did you mean"),
    ({"compare": {"hparams": {"kd": {"temperature": "hot"}}}}, "compare.hparams.kd.temperature: expected a number"),
    ({"compare": {"hparams": ["kd"]}}, "compare.hparams: expected a mapping"),
    ({"compare": {"hparams": {"cirkd": {"pixel_memory": 0}}}}, "hparams.cirkd.pixel_memory: expected a value >= 1"),
    ({"train": {"log_interval": 10}}, "train.log_interval: unknown key"),  # operational: the run section
    ({"run": {"num_workers": -1}}, "run.num_workers: expected a value >= 0"),
    ({"compare": {"lr": 0}}, "compare.lr"),
    ({"compare": {"enabled": "yes"}}, "compare.enabled"),
    ({"model": {"conventional_teacher": {"arch": "segformer"}}}, "model.conventional_teacher.arch"),
    ({"model": {"student": {"backbone": "stdc1"}}}, "model.student.backbone: stdc1 .*output_stride: 32"),
    ({"lad": {"distance": "mse"}}, "lad.distance"),
    ({"distill": {"distance": "l2"}}, "distill.distance"),
    ({"train": {"lr": float("nan")}}, "train.lr: expected a finite number, got nan"),
    ({"distill": {"w_kd": float("inf")}}, "distill.w_kd: expected a finite number"),
    ({"seeds": [1e30]}, "seeds.0: expected an integer"),
    ({"seeds": [2**40]}, "seeds.0: expected a value <= 2147483647"),
    ({"model": {"student": {"aspp_rates": []}}}, "model.student.aspp_rates: expected 1 or more items"),
    ({"data": {"mean": [0.5, 0.5]}}, "data.mean: expected 3 or more items"),
    ({"train": {"iters": True}}, "train.iters: expected an integer, got True"),
    ({"train": {"iters": "10"}}, "train.iters: expected an integer, got '10'"),
]

# keys or sections deleted from a valid params.yaml: no code default may stand in for them
MISSING = [(("lad",), "lad: missing"), (("lad", "scale"), "lad.scale: missing"),
           (("model", "teacher", "aspp_rates"), "model.teacher.aspp_rates: missing"), (("seeds",), "seeds: missing")]


def test_default_params_are_valid():
    cfg = load_config(REPO / "params.yaml")
    assert cfg.lad.noise_std == 0.03 and cfg.distill.w_kd == 3.0  # official values


@pytest.mark.parametrize("override,needle", BAD, ids=[n for _, n in BAD])
def test_bad_params_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle if ".*" in needle else re.escape(needle)):
        config_from_dict(tiny_params(**override))


@pytest.mark.parametrize("path,needle", MISSING, ids=[n for _, n in MISSING])
def test_missing_keys_are_refused(path, needle):
    params = tiny_params()
    parent = params
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(ConfigError, match=re.escape(needle)):
        config_from_dict(params)


def test_default_params_round_trip():
    """Every key of params.yaml is a field, and the config dumps back to the same values."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    assert load_config(REPO / "params.yaml").to_dict() == params


@pytest.mark.e2e
def test_stage_stops_before_work_with_a_clear_message(tmp_path):
    repo = copy_repo(tmp_path, tiny_params(train={"lr": -1.0}))
    proc = run(["python", "-m", "stages.prepare"], repo, check=False)
    assert proc.returncode == 2
    assert "train.lr" in proc.stderr and "Traceback" not in proc.stderr
    assert not (repo / "data" / "prepared").exists()
    assert not (repo / ".mlflow").exists()  # not even a tracking run was opened


def test_not_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text(yaml.safe_dump({"train": 3}))
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config(path)


def test_threads_from_the_environment():
    import torch

    from stages.common import THREADS_ENV, set_threads

    before = torch.get_num_threads()
    try:
        assert set_threads({}) is None and torch.get_num_threads() == before  # unset: torch's default
        assert set_threads({THREADS_ENV: "1"}) == 1 and torch.get_num_threads() == 1
        for bad in ("two", "0", "-1"):
            with pytest.raises(ConfigError, match=f"{THREADS_ENV}: expected a whole number of threads >= 1"):
                set_threads({THREADS_ENV: bad})
    finally:
        torch.set_num_threads(before)


def test_every_registry_implements_exactly_the_schema_names():
    """config.py names what params.yaml may say without importing a registry; each registry has those names."""
    from typing import get_args

    from pipeline import config, lad, losses, methods, models, optim
    from pipeline.data import layouts
    from pipeline.models import stdc

    for names, registry in [(config.Optimizer, optim.OPTIMIZERS), (config.Precision, optim.AMP_DTYPES),
                            (config.Codebook, lad.CODEBOOKS), (config.Distance, losses.DISTANCES),
                            (config.Arch, models.HEADS), (config.LabelInit, models.LABEL_INITS),
                            (config.DatasetName, layouts.LAYOUTS), (config.MethodName, methods.METHODS)]:
        assert set(get_args(names)) == set(registry), registry
    assert set(config.STDC_BACKBONES) == set(stdc.STDC_LAYERS)
    assert set(get_args(config.MethodName)) == set(config.MethodsHparams.model_fields)


def test_validation_gives_the_same_answer_on_every_machine():
    """No CUDA probe in validation: a GPU recipe validates on a laptop; the stage says so when it starts."""
    import torch

    from pipeline.distributed import check_amp, pick_device

    config_from_dict(tiny_params(train={"device": "cuda", "amp": "fp16"}))
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="train.device: 'cuda' asked for"):
            pick_device("cuda")
    with pytest.raises(RuntimeError, match="train.amp: 'fp16' needs CUDA"):
        check_amp("fp16", torch.device("cpu"))


def test_an_unusable_gpu_is_named_and_never_a_silent_fallback(monkeypatch, capsys):
    import warnings

    import torch

    from pipeline import distributed

    def old_driver() -> bool:
        warnings.warn("CUDA initialization: The NVIDIA driver on your system is too old (found version 11040).\n"
                      "Please update your GPU driver.", stacklevel=1)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", old_driver)
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    with pytest.raises(RuntimeError, match="'cuda' asked for, but .* cannot initialise CUDA: CUDA initialization: "
                                           "The NVIDIA driver on your system is too old"):
        distributed.pick_device("cuda")
    assert distributed.pick_device("auto") == torch.device("cpu")
    assert "warning: train.device: auto trains on the CPU" in capsys.readouterr().err
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(RuntimeError, match="is a CPU-only build"):
        distributed.pick_device("cuda")
    assert distributed.pick_device("auto") == torch.device("cpu") and not capsys.readouterr().err  # no GPU: no warning


def test_bf16_on_a_gpu_without_it_is_refused(monkeypatch):
    import torch

    from pipeline.distributed import check_amp

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.raises(RuntimeError, match=r"'bf16' on Tesla T4 \(compute capability 7.5\) has no native bf16"):
        check_amp("bf16", torch.device("cuda", 0))
    check_amp("bf16", torch.device("cpu"))  # the CPU path: bf16 autocast runs there


def test_one_image_per_process_is_refused_for_heads_that_cannot_train_on_it():
    from typing import get_args

    import torch

    from pipeline.config import POOLED_BATCHNORM, Arch
    from pipeline.models import NetworkSpec, create_segmentor

    for arch in get_args(Arch):  # the list agrees with the networks: exactly these fail on one image
        backbone, extra = ("stdc1", {"output_stride": 32}) if arch == "stdc" else ("resnet18d", {})
        model = create_segmentor(NetworkSpec(arch, backbone, 3, **extra)).train()
        if arch in POOLED_BATCHNORM:
            with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
                model(torch.randn(1, 3, 32, 32))
        else:
            model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ConfigError, match=r"train.batch_size: 1 image per process cannot train .*deeplabv3: ASPP"):
        config_from_dict(tiny_params(train={"batch_size": 1}))
    fcn = {r: {"arch": "fcn"} for r in ("student", "teacher", "conventional_teacher")}
    config_from_dict(tiny_params(train={"batch_size": 1}, model=fcn))


def test_params_written_by_dvc_exp_run_read_back_as_numbers(tmp_path):
    """DVC's ruamel writes a float set with -S as ``4e-05``; YAML 1.1 (PyYAML) reads that as a string."""
    from pipeline.config import load_config, load_yaml

    text = (REPO / "params.yaml").read_text().replace("w_fd: 4.0e-5", "w_fd: 4e-05")
    assert "w_fd: 4e-05" in text
    (tmp_path / "params.yaml").write_text(text)
    assert load_config(tmp_path / "params.yaml", networks=False).compare.hparams.afdcd.w_fd == 4e-05
    assert load_yaml("a: 1e3\nb: resnet4e5\nc: 3") == {"a": 1000.0, "b": "resnet4e5", "c": 3}
