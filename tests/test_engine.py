"""The training loop: it learns, validates, and resumes exactly from its checkpoint."""

import pytest
import torch

from pipeline.checkpoint import load_checkpoint
from pipeline.data import make_dataset
from pipeline.engine import Checkpoints, SegData, Trainer
from pipeline.lad import LabelChannel
from pipeline.models import NetworkSpec, create_segmentor
from pipeline.steps.lad_teacher import DualPath, LADTeacherStep
from pipeline.steps.method_distill import MethodDistillStep
from pipeline.steps.supervised import SupervisedStep
from tests.conftest import section, trainer_config


def make_trainer(index, iters, resume_dir, fingerprint="fp", val=False, channels_last=None, optimizer="adamw"):
    torch.manual_seed(0)
    k = len(index["classes"])
    model = create_segmentor(NetworkSpec("deeplabv3", "resnet18d", k, in_chans=4, head_channels=16, aux_channels=8,
                                         aspp_rates=(1, 2, 3), channels=[8, 16, 32, 64], stem_width=8))  # narrow: fast
    lad = section("lad", codebook="random", noise_std=0.03, scale=1.0, w_cons=5.0)  # label noise exercises the RNG
    step = LADTeacherStep(k, 255, LabelChannel.of("training", lad, section("distill")),
                          LabelChannel.of("distill", lad, section("distill")), DualPath.of(lad))
    train = make_dataset(index, "train", [0.5] * 3, [0.25] * 3, crop=32, scale_range=(0.75, 1.25), flip=True)
    val_set = make_dataset(index, "val", [0.5] * 3, [0.25] * 3) if val else None
    train_cfg, run, job = trainer_config(iters, val_interval=2, ckpt_interval=2)
    train_cfg = train_cfg.model_copy(update={"optimizer": optimizer})
    if channels_last is not None:
        run = run.model_copy(update={"channels_last": channels_last})
    return Trainer(model, step, SegData(train, val_set, index["classes"]), train_cfg, run, job,
                   Checkpoints(resume_dir, fingerprint) if resume_dir else None)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_index, tmp_path):
    straight = make_trainer(tiny_index, 6, None)
    straight.fit()
    first = make_trainer(tiny_index, 6, tmp_path)

    def crash(metrics, step):  # dies during iteration 5, after the checkpoint of iteration 4
        if step == 5:
            raise KeyboardInterrupt

    first.log_fn = crash
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["iteration"] == 4
    second = make_trainer(tiny_index, 6, tmp_path)
    second.fit()
    assert second.resumed_from == 4
    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert [r["step"] for r in second.history["train"]] == list(range(1, 7))


def test_validation_does_not_change_training(tiny_index):
    """Validation draws random numbers (loader seed, the teacher's label noise) on a forked stream:
    with or without it, the same weights."""
    plain, validated = make_trainer(tiny_index, 4, None), make_trainer(tiny_index, 4, None, val=True)
    plain.fit()
    validated.fit()
    assert len(validated.history["val"]) == 2
    for (name, a), b in zip(plain.model.state_dict().items(), validated.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_of_another_configuration_is_not_resumed(tiny_index, tmp_path):
    ckpt = tmp_path / "checkpoint.pt"
    t = make_trainer(tiny_index, 2, tmp_path, fingerprint="A")
    t.checkpoints.save(t.state(), t.ctx)
    other = make_trainer(tiny_index, 2, tmp_path, fingerprint="B")
    other.fit()
    assert other.resumed_from is None
    state = load_checkpoint(ckpt)
    assert {"model", "optimizer", "iteration", "rng", "git_commit", "fingerprint"} <= set(state)


def test_training_lowers_the_loss_and_validates(tiny_index):
    t = make_trainer(tiny_index, 12, None, val=True)
    hist = t.fit()
    losses = [r["loss"] for r in hist["train"]]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert [r["step"] for r in hist["val"]] == [2, 4, 6, 8, 10, 12]
    assert all(0 <= r["val_miou"] <= 100 for r in hist["val"])


def make_cirkd_trainer(index, iters, resume_dir):
    """A CIRKD student (STDC1) from a tiny FCN teacher: the method's projection and memory queues
    are trained and checkpointed with the network."""
    from pipeline.methods import Widths, create_method_loss

    torch.manual_seed(0)
    k = len(index["classes"])
    teacher = create_segmentor(NetworkSpec("fcn", "resnet18d", k, head_channels=8, aux_channels=8))
    student = create_segmentor(NetworkSpec("stdc", "stdc1", k, output_stride=32, head_channels=8, aux_channels=8))
    hp = section("compare").hparams.cirkd.model_copy(update={"pixel_memory": 32, "region_memory": 8})
    loss = create_method_loss("cirkd", hp, Widths.of(student, teacher), num_classes=k)
    train = make_dataset(index, "train", [0.5] * 3, [0.25] * 3, crop=32, scale_range=(0.75, 1.25), flip=True)
    return Trainer(student, MethodDistillStep(teacher, loss, 255, 0.4), SegData(train, None, index["classes"]),
                   *trainer_config(iters, ckpt_interval=2), Checkpoints(resume_dir, "cirkd") if resume_dir else None)


def test_cirkd_resume_restores_the_memory_queues(tiny_index, tmp_path):
    straight = make_cirkd_trainer(tiny_index, 4, None)
    straight.fit()
    first = make_cirkd_trainer(tiny_index, 4, tmp_path)

    def crash(metrics, step):
        if step == 3:
            raise KeyboardInterrupt

    first.log_fn = crash
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert {"memory.pixel_queue", "memory.region_ptr", "memory.project.0.weight"} <= set(state["step_module"])
    second = make_cirkd_trainer(tiny_index, 4, tmp_path)
    second.fit()
    assert second.resumed_from == 2
    for a, b in ((straight.module, second.module), (straight.extra, second.extra)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(x, y, msg=name)
    assert straight.extra.memory.region_ptr.sum() > 0  # the queues did fill


def test_a_methods_own_layers_have_their_gradient_norm_clipped(tiny_index):
    """Af-DCD's align and projector: clipped at its max_grad_norm (the official 15), the student not."""
    from pipeline.methods import Widths, create_method_loss

    k = len(tiny_index["classes"])
    train = make_dataset(tiny_index, "train", [0.5] * 3, [0.25] * 3, crop=32)
    image, label = torch.randn(2, 3, 32, 32), torch.randint(0, k, (2, 32, 32))
    norms = {}
    for clip in (1e-3, 1e6):
        torch.manual_seed(0)
        teacher = create_segmentor(NetworkSpec("fcn", "resnet18d", k, head_channels=8, aux_channels=8,
                                               channels=[8, 16, 32, 64]))
        student = create_segmentor(NetworkSpec("fcn", "resnet18d", k, head_channels=8, aux_channels=8,
                                               channels=[8, 16, 32, 32]))
        hp = section("compare").hparams.afdcd.model_copy(update={"pool": 1, "max_grad_norm": clip})
        loss = create_method_loss("afdcd", hp, Widths.of(student, teacher), k)
        data = SegData(train, None, tiny_index["classes"])
        trainer = Trainer(student, MethodDistillStep(teacher, loss, 255, 0.4), data, *trainer_config(1))
        trainer.train_step(image, label, 1e-3)
        norms[clip] = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in loss.parameters()]))
        assert student.head.head.cls[1].weight.grad.abs().sum() > 0
    assert norms[1e-3] <= 1.001e-3 < norms[1e6]


@pytest.mark.parametrize("arch,backbone", [("fcn", "resnet18d"), ("pspnet", "resnet18d"), ("deeplabv3", "resnet18d"),
                                           ("ocrnet", "resnet18d"), ("stdc", "stdc1"), ("stdc", "stdc2")])
def test_every_architecture_trains_and_evaluates(tiny_index, arch, backbone):
    """Each decode head (and both STDC backbones) takes optimisation steps and gives sane scores."""
    from pipeline.data import eval_loader
    from pipeline.evaluate import evaluate
    from pipeline.metrics import scores

    torch.manual_seed(0)
    k = len(tiny_index["classes"])
    model = create_segmentor(NetworkSpec(arch, backbone, k, output_stride=32 if backbone.startswith("stdc") else 8,
                                         head_channels=16, aux_channels=8, aspp_rates=(1, 2, 3)))
    train = make_dataset(tiny_index, "train", [0.5] * 3, [0.25] * 3, crop=32, scale_range=(0.75, 1.25), flip=True)
    val = make_dataset(tiny_index, "val", [0.5] * 3, [0.25] * 3)
    trainer = Trainer(model, SupervisedStep(k, 255, 0.4), SegData(train, None, tiny_index["classes"]),
                      *trainer_config(3, desc=arch))
    hist = trainer.fit()
    assert len(hist["train"]) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in hist["train"])
    if arch == "stdc":  # the detail loss is part of the main term: larger than plain CE would be at init
        assert hist["train"][0]["ce"] > 0.5
    res = scores(evaluate(model.eval(), eval_loader(val, 4), k, 255), tiny_index["classes"])
    assert 0 <= res["miou"] <= 100 and 0 <= res["pixel_acc"] <= 100 and len(res["per_class_iou"]) == k


def test_channels_last_gives_the_default_layouts_forward_and_training_step_on_a_cpu(tiny_index):
    """run.channels_last (on by default on CUDA) changes the memory layout only: the same logits and, after two
    SGD steps (the recipes' optimiser), the same weights as the default NCHW layout, within float32 rounding.
    (AdamW divides each gradient by its running size, so a rounding-sized gradient moves a weight by up to lr:
    1.8e-3 here, the same for any two float32 orders of summation.)"""
    nchw, nhwc = (make_trainer(tiny_index, 2, None, channels_last=layout, optimizer="sgd") for layout in (False, True))
    assert (nchw.channels_last, nhwc.channels_last) == (False, True)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in nhwc.module.parameters())
    x = torch.randn(2, 4, 32, 32)
    with torch.no_grad():
        ref = nchw.module.eval()(x)["out"]
        out = nhwc.module.eval()(x.contiguous(memory_format=torch.channels_last))["out"]
    assert torch.allclose(ref, out, atol=1e-5, rtol=1e-4)
    for t in (nchw, nhwc):
        t.module.train()
        t.fit()
    after = nhwc.module.state_dict()
    for name, tensor in nchw.module.state_dict().items():
        assert torch.allclose(tensor.float(), after[name].float(), atol=1e-5, rtol=1e-4), name
