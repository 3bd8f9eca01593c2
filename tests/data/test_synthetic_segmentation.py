"""The segmentation task of the synthetic benchmark: masks, ``SyntheticSegmentation``, registry."""

import hashlib

import numpy as np
import pytest

from comixup.data.synthetic import (
    SyntheticConfig,
    generate,
    load_or_generate,
    mask_dtype,
)

SMALL = {"num_train": 64, "num_test": 16}


def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:24]


def test_images_labels_boxes_unchanged_by_the_masks():
    # Recorded with the renderer before it emitted masks (same GENERATOR_VERSION): adding the
    # masks must not move a single pixel, label or box. (Rendering uses float32 numpy maths; a
    # platform whose SIMD sin/cos differ in the last bit could differ here, not the code.)
    expected = {
        "train": ("b53ad9bdb7153ccbfb17c4d0", "37c14715caab9ec9ee023e95",
                  "631944420f9f2769ace44a8a"),
        "test": ("4d361105aae98eda16fa8cd5", "e6c56284448851e298d68167",
                 "d3baaf2dbc5e65c66628154e"),
    }
    for split, hashes in expected.items():
        d = generate(SyntheticConfig(**SMALL), split)
        assert tuple(_sha(d[k]) for k in ("images", "labels", "boxes")) == hashes


def test_masks_are_deterministic_and_prefix_stable():
    cfg = SyntheticConfig(**SMALL)
    a = generate(cfg, "train")
    assert a["masks"].shape == (64, 32, 32) and a["masks"].dtype == np.uint8
    assert np.array_equal(generate(cfg, "train")["masks"], a["masks"])
    assert np.array_equal(generate(cfg, "train", n=9)["masks"], a["masks"][:9])
    other = generate(SyntheticConfig(seed=1, **SMALL), "train", n=9)["masks"]
    assert not np.array_equal(other, a["masks"][:9])
    assert generate(cfg, "train", n=0)["masks"].shape == (0, 32, 32)
    big = SyntheticConfig(num_classes=300, num_train=3, num_test=1)
    assert mask_dtype(big) == np.int16 and generate(big, "train")["masks"].dtype == np.int16


def test_mask_values_are_background_or_label_plus_one():
    d = generate(SyntheticConfig(**SMALL), "train")
    masks, labels = d["masks"].astype(np.int64), d["labels"]
    assert ((masks == 0) | (masks == labels[:, None, None] + 1)).all()
    assert (masks > 0).any(axis=(1, 2)).all()  # every image shows its object
    assert (masks == 0).any(axis=(1, 2)).all()  # and some background (clutter included)


@pytest.mark.parametrize("image_size", [32, 64])
def test_box_is_the_bounding_box_of_the_mask(image_size):
    d = generate(SyntheticConfig(image_size=image_size, **SMALL), "train")
    fg = d["masks"] > 0
    rows, cols = fg.any(axis=2), fg.any(axis=1)
    y0, y1 = rows.argmax(1), image_size - rows[:, ::-1].argmax(1)
    x0, x1 = cols.argmax(1), image_size - cols[:, ::-1].argmax(1)
    assert np.array_equal(np.stack([x0, y0, x1, y1], 1).astype(np.float32), d["boxes"])


def test_cache_stores_masks_and_regenerates_an_old_file(tmp_path):
    cfg = SyntheticConfig(**SMALL)
    fresh = load_or_generate(cfg, "test", tmp_path)
    path = tmp_path / "synthetic" / f"synthetic-{cfg.key()}-test.npz"
    with np.load(path) as z:
        assert set(z.files) == {"images", "labels", "boxes", "masks", "attributes"}
    # a cache written before the masks existed: same key, no "masks" array
    np.savez(path, **{k: v for k, v in fresh.items() if k != "masks"})
    again = load_or_generate(cfg, "test", tmp_path)
    assert all(np.array_equal(again[k], fresh[k]) for k in fresh)
    with np.load(path) as z:
        assert "masks" in z.files
