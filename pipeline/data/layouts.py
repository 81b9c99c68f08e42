"""Published dataset layouts: where each dataset keeps its images and labels, its label mapping, and a
small example of it. One entry of :data:`LAYOUTS` each (a new layout: docs/extending.md).

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

FOLDER_EXAMPLE_CLASSES = "background 0 0 0\nroad 128 64 128\nlane marking 255 255 255\n"  # names, optional R G B
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


class Writer:
    """Writes noise images and banded labels of one size, from one random stream."""

    def __init__(self, size: tuple[int, int], labels: list[int], seed: int = 0) -> None:
        self.size, self.labels, self.rng = size, labels, np.random.default_rng(seed)

    def image(self, path: Path) -> None:
        import cv2

        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), self.rng.integers(0, 255, (*self.size, 3), dtype=np.uint8))

    def bands(self, values: list[int] | None = None, dtype: type = np.uint8) -> np.ndarray:
        values = values or self.labels
        h, w = self.size
        return np.repeat(np.array(values, dtype), -(-w // len(values)))[:w][None].repeat(h, 0)

    def grey(self, path: Path, values: list[int] | None = None) -> None:
        """A grey (mode L) label PNG."""
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(self.bands(values), mode="L").save(path)


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


def write_voc(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """VOC 2012 + SBD: JPEGImages, SegmentationClassAug (grey), SegmentationClass (palette) for val,
    ImageSets/Segmentation/<split>.txt."""
    for split, ids in names.items():
        for n in ids:
            w.image(root / "JPEGImages" / f"{n}.jpg")
            if split == "val":
                (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
                voc.write_label(root / "SegmentationClass" / f"{n}.png", w.bands([15]))
            w.grey(root / "SegmentationClassAug" / f"{n}.png")
        voc.write_split(root, split, ids)


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


def write_cityscapes(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """leftImg8bit/<split>/<city>/*_leftImg8bit.png and gtFine/.../*_gtFine_labelIds.png."""
    for split, ids in names.items():
        for n in ids:
            stem = f"{split}/{n.split('_')[0]}/{n}"
            w.image(root / "leftImg8bit" / f"{stem}_leftImg8bit.png")
            w.grey(root / "gtFine" / f"{stem}_gtFine_labelIds.png")


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


def write_ade20k(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """ADEChallengeData2016/images/<split>/*.jpg and annotations/<split>/*.png."""
    base = root / "ADEChallengeData2016"
    for split, ids in names.items():
        for n in ids:
            w.image(base / "images" / split / f"{n}.jpg")
            w.grey(base / "annotations" / split / f"{n}.png")


def coco164k_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``images/<split>/*.jpg`` with ``annotations/<split>/*.png`` (stuffthingmaps; split: train2017 | val2017)."""
    images = _glob(root / "images" / split, "*.jpg", "COCO-Stuff 164K images")
    return [(f"images/{split}/{p.name}", f"annotations/{split}/{p.stem}.png") for p in images]


def write_coco164k(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """images/<split>/*.jpg and annotations/<split>/*.png (stuffthingmaps)."""
    for split, ids in names.items():
        for n in ids:
            w.image(root / "images" / split / f"{n}.jpg")
            w.grey(root / "annotations" / split / f"{n}.png")


def coco10k_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """``imageLists/<split>.txt`` naming ``images/<name>.jpg`` and ``annotations/<name>.mat`` (split: train | test)."""
    path = root / "imageLists" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: COCO-Stuff 10K image list not found")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path}: image list is empty")
    return [(f"images/{n}.jpg", f"annotations/{n}.mat") for n in names]


def write_coco10k(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """images/*.jpg, annotations/*.mat (key S, 1-based ids) and imageLists/<split>.txt."""
    from scipy.io import savemat

    for split, ids in names.items():
        for n in ids:
            w.image(root / "images" / f"{n}.jpg")
            (root / "annotations").mkdir(parents=True, exist_ok=True)
            savemat(root / "annotations" / f"{n}.mat", {"S": w.bands(dtype=np.uint16)})
        (root / "imageLists").mkdir(parents=True, exist_ok=True)
        (root / "imageLists" / f"{split}.txt").write_text("".join(f"{n}\n" for n in ids))


def camvid_samples(root: Path, split: str) -> list[tuple[str, str]]:
    """SegNet layout: ``<split>/*.png`` with ``<split>annot/*.png`` (split: train | val | test)."""
    images = _glob(root / split, "*.png", "CamVid images")
    return [(f"{split}/{p.name}", f"{split}annot/{p.name}") for p in images]


def write_camvid(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """<split>/*.png and <split>annot/*.png (SegNet's 11-class CamVid)."""
    for split, ids in names.items():
        for n in ids:
            w.image(root / split / f"{n}.png")
            w.grey(root / f"{split}annot" / f"{n}.png")


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


def write_folder(root: Path, w: Writer, names: dict[str, list[str]]) -> None:
    """A user's own data: classes.txt, images/*.jpg, masks/*.png (train ids, 255 ignored), splits/<split>.txt."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(FOLDER_EXAMPLE_CLASSES)
    for split, ids in names.items():
        for n in ids:
            w.image(root / "images" / f"{n}.jpg")
            w.grey(root / "masks" / f"{n}.png")
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{n}\n" for n in ids))


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


@dataclass(frozen=True)
class Example:
    """A small copy of a layout, written with its real file names, label encoding and image size
    (``python -m pipeline.layout_examples``; the layout tests and ``benchmarks/recipes.py`` read it).

    Attributes:
        write: ``(root, writer, {split: [stems]})``: writes the files (``writer``: a :class:`Writer` of the
            size and labels below).
        splits: its splits, the usual (train, val) first.
        stem: ``(split, i) -> `` the real-looking file name stem of image ``i``.
        size: (height, width) of a typical image of the real dataset.
        labels: the raw label values drawn, as the published files hold them.
        train_ids: the train ids those values become (the label table applied; 255: ignored).
    """

    write: Callable[[Path, Writer, dict[str, list[str]]], None]
    splits: tuple[str, ...]
    stem: Callable[[str, int], str]
    size: tuple[int, int]
    labels: tuple[int, ...]
    train_ids: frozenset[int]


@dataclass(frozen=True)
class Entry:
    """One dataset layout, in one place: its :class:`Layout` (``make(coco_classes, root)``) and its
    :class:`Example` (None: the embedded data, generated by ``prepare`` itself)."""

    make: Callable[[int, Path], Layout]
    example: Example | None


def _voc(name: str) -> Callable[[int, Path], Layout]:
    def make(coco_classes: int, root: Path) -> Layout:
        from pipeline.data import synthetic

        classes = voc.VOC_CLASSES if name == "voc" else synthetic.CLASSES
        return Layout(classes, voc_samples, identity(len(classes)),
                      splits=("train_aug", "val") if name == "voc" else ("train", "val"))
    return make


def _folder(coco_classes: int, root: Path) -> Layout:  # a user's own data: masks hold train ids 0..K-1, 255 ignored
    classes, palette = folder_classes(root)
    return Layout(classes, folder_samples, identity(len(classes)), palette=palette)


def _ade20k_labels(root: Path, split: str) -> list[str]:
    return label_files(str(ade20k_root(root).relative_to(root) / "annotations" / split), "*.png")(root, split)


LAYOUTS: dict[DatasetName, Entry] = {
    "synthetic": Entry(_voc("synthetic"), None),
    "voc": Entry(_voc("voc"), Example(write_voc, ("train_aug", "val"),
                                      lambda s, i: f"{2007 if s == 'train_aug' else 2008}_{i:06d}", (375, 500),
                                      (0, 1, 20, 255), frozenset({0, 1, 20, 255}))),
    "cityscapes": Entry(
        lambda _, root: Layout(CITYSCAPES_CLASSES, cityscapes_samples, cityscapes_lut(),
                               trainid_suffix="_gtFine_labelTrainIds.png", labels=cityscapes_labels),
        # labelIds 0 and 1 -> ignore, 7 -> road, 26 -> car, 33 -> bicycle
        Example(write_cityscapes, ("train", "val"),
                lambda s, i: f"{'aachen' if s == 'train' else 'frankfurt'}_{i:06d}_000019", (1024, 2048),
                (0, 7, 26, 33, 1), frozenset({255, 0, 13, 18}))),
    "ade20k": Entry(  # 0 is "other" -> ignore, 1..150 -> 0..149
        lambda _, root: Layout(ADE20K_CLASSES, ade20k_samples, lookup({k: k - 1 for k in range(1, 151)}, ignored=(0,)),
                               splits=("training", "validation"), labels=_ade20k_labels),
        Example(write_ade20k, ("training", "validation"),
                lambda s, i: f"ADE_{'train' if s == 'training' else 'val'}_{i + 1:08d}", (512, 683), (0, 1, 150),
                frozenset({255, 0, 149}))),
    "coco_stuff164k": Entry(  # mmsegmentation's converted *_labelTrainIds.png may lie beside the raw maps
        lambda k, root: Layout(coco_stuff_classes(k), coco164k_samples, coco_stuff_lut(k),
                               splits=("train2017", "val2017"),
                               labels=label_files("annotations/{split}", "*.png", exclude="_labelTrainIds.png")),
        Example(write_coco164k, ("train2017", "val2017"), lambda s, i: f"{(9 if s == 'train2017' else 25) + i:012d}",
                (480, 640), (0, 11, 12, 181, 255), frozenset({0, 255, 11, 170}))),
    "coco_stuff10k": Entry(
        lambda k, root: Layout(coco_stuff_classes(k), coco10k_samples, coco_stuff_lut(k, one_based=True),
                               splits=("train", "test")),
        Example(write_coco10k, ("train", "test"),
                lambda s, i: f"COCO_train2014_{77 + i + (100 if s == 'test' else 0):012d}", (480, 640),
                (0, 1, 12, 13, 182), frozenset({255, 0, 11, 170}))),
    "camvid": Entry(  # 11 is void; SegNet's copy (360 x 480)
        lambda _, root: Layout(CAMVID_CLASSES, camvid_samples, lookup({k: k for k in range(11)}, ignored=(11,)),
                               labels=label_files("{split}annot", "*.png")),
        Example(write_camvid, ("train", "val", "test"),
                lambda s, i: f"Seq05VD_f{30 * (i // 2):05d}" if i % 2 else f"0001TP_{6690 + 30 * (i // 2):06d}",
                (360, 480), (0, 3, 10, 11), frozenset({0, 3, 10, 255}))),
    "folder": Entry(_folder, Example(write_folder, ("train", "val"), lambda s, i: f"{s}_{i:04d}", (480, 640),
                                     (0, 1, 2, 255), frozenset({0, 1, 2, 255}))),
}


def make_layout(name: str, coco_classes: int = 171, root: str | Path | None = None) -> Layout:
    """The :class:`Layout` of dataset ``name`` (``coco_classes``: 171 or 182 for COCO-Stuff; ``root``: the
    folder layout reads its classes there)."""
    if name not in LAYOUTS:
        raise ValueError(f"data.name: expected one of {sorted(LAYOUTS)}, got {name!r}")
    return LAYOUTS[name].make(coco_classes, Path(root or "."))
