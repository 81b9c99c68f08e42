"""Published dataset layouts: where each dataset keeps its images and labels, and its label mapping.

A layout turns ``(root, split)`` into a list of ``(image, label)`` paths relative to ``root``; a
lookup table (256 entries: raw label value -> train id, 255 = ignore, -1 = a value the dataset
never uses, reported by ``prepare``) is applied to every label when it is loaded. Class names are
the datasets' own (as mmsegmentation lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.config import DatasetName
from pipeline.data import voc

IGNORE = 255
INVALID = -1  # in a lookup table: a raw value this dataset's labels never hold

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle")
# labelId of each train id (the Cityscapes scripts' labels.py); every other labelId is ignored
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)

ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand",
    "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove",
    "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus",
    "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle",
    "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything",
    "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven",
    "ball", "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator",
    "glass", "clock", "flag")

# The 182 COCO-Stuff ids (0-based, as in stuffthingmaps): 91 thing ids, then 91 stuff classes.
COCO_STUFF_182 = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe",
    "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed",
    "mirror", "dining table", "window", "desk", "toilet", "door", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "blender", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard",
    "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain",
    "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile",
    "floor-wood", "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel",
    "ground-other", "hill", "house", "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain",
    "mud", "napkin", "net", "paper", "pavement", "pillow", "plant-other", "plastic", "platform",
    "playingfield", "railing", "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea",
    "shelf", "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable", "wall-brick",
    "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile", "wall-wood", "water-other",
    "waterdrops", "window-blind", "window-other", "wood")
# COCO thing ids that have no annotation in COCO-Stuff; the 171-class convention drops them
COCO_STUFF_UNUSED = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car",
                  "pedestrian", "bicyclist")


def lookup(pairs: dict[int, int], ignored: tuple[int, ...] | range = (IGNORE,)) -> np.ndarray:
    """A 256-entry int16 table: ``pairs`` as given, ``ignored`` to 255, every other value invalid."""
    lut = np.full(256, INVALID, np.int16)
    lut[list(ignored)] = IGNORE
    for raw, train_id in pairs.items():
        lut[raw] = train_id
    return lut


def identity(num_classes: int) -> np.ndarray:
    """Labels that are train ids already: 0..K-1 and 255."""
    return lookup({k: k for k in range(num_classes)})


def cityscapes_lut() -> np.ndarray:
    """labelIds (0..33) -> the 19 train ids; the other labelIds are ignored."""
    return lookup({label_id: i for i, label_id in enumerate(CITYSCAPES_LABEL_IDS)}, ignored=range(34))


def coco_stuff_lut(num_classes: int, one_based: bool = False) -> np.ndarray:
    """Raw COCO-Stuff ids -> train ids: 182 keeps them, 171 drops (ignores) the unused thing ids.

    ``one_based``: COCO-Stuff 10K labels are 1..182 with 0 unlabeled (164K: 0..181, 255 unlabeled).
    """
    kept = [i for i in range(182) if num_classes == 182 or i not in COCO_STUFF_UNUSED]
    unlabeled = 0 if one_based else IGNORE
    ignored = [unlabeled] + [i + one_based for i in COCO_STUFF_UNUSED if num_classes == 171]
    return lookup({raw + one_based: i for i, raw in enumerate(kept)}, ignored=ignored)


def coco_stuff_classes(num_classes: int) -> tuple[str, ...]:
    return tuple(c for i, c in enumerate(COCO_STUFF_182) if num_classes == 182 or i not in COCO_STUFF_UNUSED)


def rel(paths: list[Path], root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in paths]


def label_files(folder: str, pattern: str, exclude: str | None = None) -> Callable[[Path, str], list[str]]:
    """The label files of a split (``folder`` and ``pattern`` may hold ``{split}``), relative to the root."""
    def find(root: Path, split: str) -> list[str]:
        base = root / folder.format(split=split)
        return [str(p.relative_to(root)) for p in sorted(base.glob(pattern.format(split=split)))
                if not (exclude and p.name.endswith(exclude))]
    return find


def _glob(folder: Path, pattern: str, what: str) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} folder not found")
    found = sorted(folder.glob(pattern))
    if not found:
        raise ValueError(f"{folder}: no {pattern} files ({what})")
    return found


def voc_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """VOC 2012 (+ SBD aug): ``ImageSets/Segmentation/<split>.txt``; labels from ``SegmentationClass``,
    else ``SegmentationClassAug`` (train_aug's 10,582 images)."""
    samples = []
    for i in voc.read_split(root, split):
        label = f"{voc.LABEL_DIR}/{i}.png"
        if not (root / label).is_file() and (root / voc.AUG_LABEL_DIR / f"{i}.png").is_file():
            label = f"{voc.AUG_LABEL_DIR}/{i}.png"
        samples.append((f"{voc.IMAGE_DIR}/{i}.jpg", label))
    return samples


def cityscapes_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine/...`` labelTrainIds (if made) or labelIds."""
    images = _glob(root / "leftImg8bit" / split, "*/*_leftImg8bit.png", "Cityscapes images")
    samples = []
    for image in images:
        stem = str(image.relative_to(root / "leftImg8bit")).removesuffix("_leftImg8bit.png")
        train_ids = f"gtFine/{stem}_gtFine_labelTrainIds.png"
        samples.append((f"leftImg8bit/{stem}_leftImg8bit.png",
                        train_ids if (root / train_ids).is_file() else f"gtFine/{stem}_gtFine_labelIds.png"))
    return samples


def cityscapes_labels(root: Path, split: str) -> list[str]:
    """The label file a sample of each ``gtFine`` labelIds file would read (its labelTrainIds twin if made)."""
    out = []
    for f in label_files("gtFine/{split}", "*/*_gtFine_labelIds.png")(root, split):
        twin = f.replace("_gtFine_labelIds.png", "_gtFine_labelTrainIds.png")
        out.append(twin if (root / twin).is_file() else f)
    return out


def ade20k_root(root: Path) -> Path:
    return root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root


def ade20k_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``ADEChallengeData2016/images/<split>/*.jpg`` with ``annotations/<split>/*.png``
    (split: training | validation)."""
    base = ade20k_root(root)
    images = _glob(base / "images" / split, "*.jpg", "ADE20K images")
    return [(str(p.relative_to(root)), str((base / "annotations" / split / f"{p.stem}.png").relative_to(root)))
            for p in images]


def coco164k_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``images/<split>/*.jpg`` with ``annotations/<split>/*.png`` (stuffthingmaps; split: train2017 | val2017)."""
    images = _glob(root / "images" / split, "*.jpg", "COCO-Stuff 164K images")
    return [(f"images/{split}/{p.name}", f"annotations/{split}/{p.stem}.png") for p in images]


def coco10k_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``imageLists/<split>.txt`` naming ``images/<name>.jpg`` and ``annotations/<name>.mat`` (split: train | test)."""
    path = root / "imageLists" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: COCO-Stuff 10K image list not found")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: image list is empty")
    return [(f"images/{n}.jpg", f"annotations/{n}.mat") for n in names]


def camvid_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """SegNet layout: ``<split>/*.png`` with ``<split>annot/*.png`` (split: train | val | test)."""
    images = _glob(root / split, "*.png", "CamVid images")
    return [(f"{split}/{p.name}", f"{split}annot/{p.name}") for p in images]


FOLDER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def folder_classes(root: Path) -> tuple[tuple[str, ...], list[list[int]] | None]:
    """``<root>/classes.txt``: one class per line in train-id order, ``name`` or ``name R G B``; returns the
    names and the palette (None unless every line gives a colour)."""
    path = Path(root) / "classes.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: classes file not found (the folder layout: one class name per line, "
                                "optionally followed by its colour as R G B)")
    names, colours = [], []
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        rgb = words[-3:] if len(words) > 3 and all(w.isdigit() and int(w) < 256 for w in words[-3:]) else None
        names.append(" ".join(words[:-3] if rgb else words))
        colours.append([int(c) for c in rgb] if rgb else None)
    if not 1 <= len(names) <= IGNORE:
        raise ValueError(f"{path}: expected 1 to {IGNORE} class names, got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: class names repeat: {sorted({c for c in names if names.count(c) > 1})}")
    palette = colours if all(colours) else None
    return tuple(names), palette


def folder_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``splits/<split>.txt`` naming ``images/<name>.{jpg,jpeg,png}`` with ``masks/<name>.png``."""
    path = root / "splits" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found (one image name per line, without its suffix)")
    samples = []
    for name in (line.strip() for line in path.read_text().splitlines()):
        if name:
            image = next((f"images/{name}{s}" for s in FOLDER_IMAGE_SUFFIXES if (root / f"images/{name}{s}").is_file()),
                         f"images/{name}.jpg")  # missing: prepare names it
            samples.append((image, f"masks/{name}.png"))
    if not samples:
        raise ValueError(f"{path}: split list is empty")
    return samples


@dataclass(frozen=True)
class Layout:
    """How one dataset is stored and labelled.

    Attributes:
        classes: class names, in train-id order.
        samples: ``(root, split) -> [(image, label), ...]`` relative to root.
        lut: raw label value -> train id (see :func:`lookup`).
        splits: the usual (train, val) split names.
        trainid_suffix: label files whose name ends so hold train ids already (identity table).
        labels: ``(root, split) -> label files`` of the split's label folder, to find labels
            without an image (None: the split is a list file, nothing to compare).
        ignore_index: the train-id ignore value.
        palette: RGB colour per class for the report (None: VOC's palette).
    """

    classes: tuple[str, ...]
    samples: Callable[[Path, str], list[tuple[str, str]]]
    lut: np.ndarray
    splits: tuple[str, str] = ("train", "val")
    trainid_suffix: str | None = None
    labels: Callable[[Path, str], list[str]] | None = None
    ignore_index: int = IGNORE
    palette: list[list[int]] | None = None

    def lut_for(self, label_path: str) -> np.ndarray:
        """The table for one label file."""
        if self.trainid_suffix and label_path.endswith(self.trainid_suffix):
            return identity(len(self.classes))
        return self.lut

    def to_train_ids(self, raw: np.ndarray, label_path: str) -> np.ndarray:
        """Raw label values -> uint8 train ids in one table lookup; unused raw values become ignore
        (``prepare`` has reported them already)."""
        lut = self.lut_for(label_path)
        return np.where(lut == INVALID, self.ignore_index, lut).astype(np.uint8)[raw]


def make_layout(name: str, coco_classes: int = 171, root: str | Path | None = None) -> Layout:
    """The :class:`Layout` of dataset ``name`` (``coco_classes``: 171 or 182 for COCO-Stuff; ``root``: the
    folder layout reads its classes there)."""
    if name == "folder":  # a user's own data: masks hold train ids 0..K-1, 255 ignored
        classes, palette = folder_classes(Path(root or "."))
        return Layout(classes, folder_samples, identity(len(classes)), palette=palette)
    if name in ("voc", "synthetic"):
        from pipeline.data import synthetic

        classes = voc.VOC_CLASSES if name == "voc" else synthetic.CLASSES
        return Layout(classes, voc_samples, identity(len(classes)),
                      splits=("train_aug", "val") if name == "voc" else ("train", "val"))
    if name == "cityscapes":
        return Layout(CITYSCAPES_CLASSES, cityscapes_samples, cityscapes_lut(),
                      trainid_suffix="_gtFine_labelTrainIds.png",
                      labels=cityscapes_labels)
    if name == "ade20k":  # 0 is "other" -> ignore, 1..150 -> 0..149
        return Layout(ADE20K_CLASSES, ade20k_samples, lookup({k: k - 1 for k in range(1, 151)}, ignored=(0,)),
                      splits=("training", "validation"),
                      labels=lambda root, split: label_files(
                          str(ade20k_root(root).relative_to(root) / "annotations" / split), "*.png")(root, split))
    if name == "coco_stuff164k":  # mmsegmentation's converted *_labelTrainIds.png may lie beside the raw maps
        return Layout(coco_stuff_classes(coco_classes), coco164k_samples, coco_stuff_lut(coco_classes),
                      splits=("train2017", "val2017"),
                      labels=label_files("annotations/{split}", "*.png", exclude="_labelTrainIds.png"))
    if name == "coco_stuff10k":
        return Layout(coco_stuff_classes(coco_classes), coco10k_samples, coco_stuff_lut(coco_classes, one_based=True),
                      splits=("train", "test"))
    if name == "camvid":  # 11 is void
        return Layout(CAMVID_CLASSES, camvid_samples, lookup({k: k for k in range(11)}, ignored=(11,)),
                      labels=label_files("{split}annot", "*.png"))
    raise ValueError(f"data.name: expected one of {sorted(LAYOUTS)}, got {name!r}")


LAYOUTS: tuple[DatasetName, ...] = ("synthetic", "voc", "cityscapes", "ade20k", "coco_stuff164k", "coco_stuff10k",
                                     "camvid", "folder")
