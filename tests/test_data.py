"""Synthetic generator, VOC layout reader, augmentation and the resumable sampler."""

import itertools

import numpy as np

from pipeline.data import InfiniteSampler, make_dataset, synthetic, voc


def test_generator_is_deterministic_and_has_the_properties_asked():
    a = synthetic.make_sample(np.random.default_rng([0, 0, 3]), 64, 4, (0.3, 0.6), 3, 12.0, 1)
    b = synthetic.make_sample(np.random.default_rng([0, 0, 3]), 64, 4, (0.3, 0.6), 3, 12.0, 1)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    labels = [synthetic.make_sample(np.random.default_rng([0, 0, i]), 64, 4, (0.3, 0.6), 3, 12.0, 1)[1]
              for i in range(40)]
    values = set(np.unique(np.stack(labels)))
    assert values == set(range(len(synthetic.CLASSES))) | {255}  # every class and a thin ignore band
    ignore = np.mean([np.mean(lb == 255) for lb in labels])
    assert 0.01 < ignore < 0.15


def test_prepare_index_writes_voc_layout(tiny_index):
    root = voc.Path(tiny_index["root"])
    assert (root / "JPEGImages" / "train_00000.jpg").is_file()
    ids = (root / "ImageSets/Segmentation/val.txt").read_text().split()
    assert [tuple(s) for s in tiny_index["samples"]["val"]] == [(f"JPEGImages/{i}.jpg", f"SegmentationClass/{i}.png")
                                                                for i in ids]
    label = voc.read_label(root / "SegmentationClass" / "train_00000.png")
    assert label.dtype == np.uint8 and label.shape == (32, 32)
    assert tiny_index["stats"]["train"]["images"] == 12
    assert abs(sum(tiny_index["stats"]["train"]["class_frequency"]) - 1) < 1e-6


def test_voc_palette_matches_published_colours():
    pal = voc.voc_palette()
    assert pal[0].tolist() == [0, 0, 0] and pal[1].tolist() == [128, 0, 0] and pal[15].tolist() == [192, 128, 128]


def test_training_augmentation_shapes_and_padding_with_ignore(tiny_index):
    ds = make_dataset(tiny_index, "train", [0.5] * 3, [0.25] * 3, crop=48, scale_range=(1.0, 1.0), flip=False)
    x, y = ds[(0, 123)]
    assert x.shape == (3, 48, 48) and y.shape == (48, 48)
    assert (y[32:, :] == 255).all() and (y[:, 32:] == 255).all()  # 32 px images padded with ignore
    x2, y2 = ds[(0, 123)]
    assert (x == x2).all() and (y == y2).all()  # a sample's augmentation is fixed by its seed


def test_sampler_resumes_exactly_and_shards_without_overlap():
    full = list(itertools.islice(iter(InfiniteSampler(10, seed=3)), 35))
    resumed = list(itertools.islice(iter(InfiniteSampler(10, seed=3, start=20)), 15))
    assert resumed == full[20:]
    assert sorted(i for i, _ in full[:10]) == list(range(10))  # each epoch is a permutation
    r0 = list(itertools.islice(iter(InfiniteSampler(10, 3, rank=0, world_size=2)), 5))
    r1 = list(itertools.islice(iter(InfiniteSampler(10, 3, rank=1, world_size=2)), 5))
    assert r0 == full[0:10:2] and r1 == full[1:10:2]


def test_the_index_digest_covers_every_generated_file(tmp_path):
    """Later stages depend on index.json alone: its digest must change with any byte or name prepare wrote."""
    import hashlib

    from stages.prepare import files_digest

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "sub/b.jpg").write_bytes(b"yz")
    before = files_digest(tmp_path)
    assert before == hashlib.md5(b"a.png\0x" + b"sub/b.jpg\0yz").hexdigest()
    (tmp_path / "sub/b.jpg").write_bytes(b"yZ")
    assert files_digest(tmp_path) != before
    (tmp_path / "sub/b.jpg").write_bytes(b"yz")
    (tmp_path / "a.png").rename(tmp_path / "c.png")
    assert files_digest(tmp_path) != before
