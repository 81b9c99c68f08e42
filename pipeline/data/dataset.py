"""Dataset, deterministic infinite sampler and loaders built from a prepared index."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from pipeline.data import voc
from pipeline.data.layouts import Layout
from pipeline.data.transforms import normalize, train_augment


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3); the error names the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: missing or unreadable image file")
    return image[..., ::-1]


@dataclass(frozen=True)
class Augment:
    """Training augmentation: a random ``crop`` (side, pixels; None: whole, un-augmented images, as
    evaluation reads them) after a random rescale in ``scale_range``, and a random horizontal ``flip``."""

    crop: int | None = None
    scale_range: tuple[float, float] = (1.0, 1.0)
    flip: bool = False


class SegDataset(Dataset):
    """Images and labels of one split, read where the dataset keeps them and mapped to train ids.

    Args:
        root: dataset folder.
        samples: ``(image, label)`` paths relative to ``root``.
        mean: RGB mean, 0..1 units.
        std: RGB std, 0..1 units.
        layout: the dataset's :class:`~pipeline.data.layouts.Layout` (label lookup table, ignore value).
        augment: the training crop, rescale and flip (:class:`Augment`; by default none: whole images).
        cache: keep decoded images in memory.
        channel_order: ``rgb`` or ``bgr``: the order of the image channels the network sees (and
            of ``mean`` and ``std``).
    """

    def __init__(self, root: str | Path, samples: list[tuple[str, str]], mean: list[float], std: list[float],
                 layout: Layout, augment: Augment | None = None, cache: bool = False,
                 channel_order: str = "rgb") -> None:
        aug = augment or Augment()
        crop, scale_range, flip = aug.crop, aug.scale_range, aug.flip
        self.root, self.samples, self.layout = Path(root), list(samples), layout
        self.bgr = channel_order == "bgr"
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.ignore_index, self.crop = layout.ignore_index, crop
        self.scale_range, self.flip = tuple(scale_range), flip
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 image in ``channel_order``, uint8 train-id label) of sample ``index``."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        image_rel, label_rel = self.samples[index]
        image = read_image(self.root / image_rel)
        if self.bgr:
            image = np.ascontiguousarray(image[..., ::-1])
        label_path = self.root / label_rel
        label = self.layout.to_train_ids(voc.read_label(label_path), label_rel)
        if image.shape[:2] != label.shape:
            raise ValueError(f"{label_path}: label size {label.shape} differs from its image {image.shape[:2]}")
        if self._cache is not None:
            self._cache[index] = (image, label)
        return image, label

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        image, label = self.load(index)
        if self.crop is not None:
            rng = np.random.default_rng(seed)
            image, label = train_augment(image, label, rng, self.crop, self.scale_range, self.flip,
                                         self.ignore_index, self.mean)
        x = normalize(image, self.mean, self.std)
        return torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(label).astype(np.int64))


class InfiniteSampler(Sampler):
    """Endless (index, augmentation seed) stream, reshuffled each epoch, resumable at any position.

    Position ``p`` of the stream depends only on (seed, p), so a run resumed at ``start`` sees
    exactly the samples an uninterrupted run would have seen. With ``world_size > 1`` each rank
    takes every ``world_size``-th sample of the same global stream.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.size, self.seed, self.start = size, seed, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.start * self.world_size + self.rank
        while True:
            epoch, offset = divmod(pos, self.size)
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.size)
            yield int(perm[offset]), int(np.random.default_rng([self.seed, epoch, offset]).integers(2**31))
            pos += self.world_size

    def __len__(self) -> int:  # pragma: no cover - infinite; DataLoader only needs it for len()
        return 2**62


def train_loader(dataset: SegDataset, batch_size: int, seed: int, start_iter: int,
                 num_workers: int = 0, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
    """Endless iterator of training batches, starting at step ``start_iter``."""
    sampler = InfiniteSampler(len(dataset), seed, start_iter * batch_size, rank, world_size)
    # Its own generator: creating the iterator must not draw from torch's global RNG, or a resumed
    # run's label noise and dropout would be shifted by one draw against an uninterrupted run.
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                        drop_last=True, persistent_workers=num_workers > 0,
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)


def pad_collate(batch: list[tuple[torch.Tensor, torch.Tensor]], ignore_index: int = 255
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack samples of different sizes: pad images with 0 (the mean) and labels with ignore."""
    h = max(x.shape[1] for x, _ in batch)
    w = max(x.shape[2] for x, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w)
    labels = torch.full((len(batch), h, w), ignore_index, dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        images[i, :, : x.shape[1], : x.shape[2]] = x
        labels[i, : y.shape[0], : y.shape[1]] = y
    return images, labels


def eval_loader(dataset: SegDataset, batch_size: int, num_workers: int = 0, rank: int = 0,
                world_size: int = 1) -> DataLoader:
    """Whole images in order, padded to a common size within a batch (padding is ignored).

    With ``world_size > 1`` this process gets every ``world_size``-th image from ``rank`` on: the
    processes together see each image exactly once (no padding with duplicates).
    """
    part = dataset if world_size == 1 else Subset(dataset, range(rank, len(dataset), world_size))
    return DataLoader(part, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=functools.partial(pad_collate, ignore_index=dataset.ignore_index))
