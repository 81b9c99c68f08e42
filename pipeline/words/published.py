"""Published val mIoU for the settings the tables can match, and which row matches which."""

from __future__ import annotations

from pipeline.results import Results
from pipeline.roles import EVALUATIONS, ROLES

# (dataset, row, arch, backbone family) -> mIoU (%). Rows: a role's calibrated name (lad: the LAD student; a
# comparison row: its method) or its name (baseline, conventional_teacher). Sources: the LAD paper (ECCV 2024)
# for VOC, the CIRKD paper (CVPR 2022) otherwise; both single-scale, DeepLabV3-R101 teacher.
PUBLISHED: dict[tuple[str, str, str, str], float] = {
    ("voc", "baseline", "deeplabv3", "resnet18"): 73.21,
    ("voc", "cirkd", "deeplabv3", "resnet18"): 74.50,
    ("voc", "lad", "deeplabv3", "resnet18"): 75.0,
    ("voc", "baseline", "pspnet", "resnet18"): 73.33,
    ("voc", "cirkd", "pspnet", "resnet18"): 74.78,
    ("voc", "lad", "pspnet", "resnet18"): 75.4,
    ("cityscapes", "conventional_teacher", "deeplabv3", "resnet101"): 78.07,
    ("cityscapes", "baseline", "deeplabv3", "resnet18"): 74.21,
    ("cityscapes", "cwd", "deeplabv3", "resnet18"): 75.55,
    ("cityscapes", "cirkd", "deeplabv3", "resnet18"): 76.38,
    ("ade20k", "baseline", "deeplabv3", "resnet18"): 33.91,
    ("ade20k", "cirkd", "deeplabv3", "resnet18"): 35.41,
    ("coco_stuff164k", "baseline", "deeplabv3", "resnet18"): 32.60,
    ("coco_stuff164k", "cirkd", "deeplabv3", "resnet18"): 33.11,
}
PUBLISHED_NOTE = ("the paper's number where dataset, row, architecture, backbone width and initialisation match "
                  "(VOC: the LAD paper; Cityscapes, ADE20K, COCO-Stuff 164K: the CIRKD paper; both at 512-1024 px "
                  "crops and 40k-80k iterations from ImageNet weights, so only a full recipe run is comparable); — "
                  "elsewhere.")


def published(res: Results, key: str) -> float | None:
    """The published mIoU of evaluation ``key`` of ``res`` (its role's row of :data:`PUBLISHED`) where it has
    the published setting: the dataset, decode head and backbone family (resnet18d and resnet18 both count as
    ResNet-18), at the backbone's full widths and from ImageNet weights; None elsewhere."""
    role = ROLES[EVALUATIONS[key].role]
    r = res.first(key)
    if r.get("channels") or not role.net(res.cfg).pretrained:
        return None  # narrowed or from scratch: no published number has that setting
    family = next((f for f in ("resnet101", "resnet18") if r["backbone"].startswith(f)), r["backbone"])
    return PUBLISHED.get((res.cfg.data.name, role.calibrated or role.name, r["arch"], family))
