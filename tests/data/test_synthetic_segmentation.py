"""The segmentation task of the synthetic benchmark: masks, ``SyntheticSegmentation``, registry."""

import hashlib

import numpy as np
import pytest
import torch

from comixup.data import build_dataset, dataset_info, make_loader, set_epoch
from comixup.data import transforms as T
from comixup.data.synthetic import (
    SyntheticConfig,
    SyntheticSegmentation,
    generate,
    load_or_generate,
    mask_dtype,
    save_segmentation_grid,
)

SMALL = {"num_train": 64, "num_test": 16}


def _sha(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:24]


def test_labels_unchanged_by_the_masks():
    # Recorded with the renderer before it emitted masks: the masks draw nothing, so the labels
    # (integer draws, the same on every platform) keep their stream. Images and boxes are not
    # pinned: they go through float32 sin/cos, whose last bit may differ between CPUs.
    expected = {"train": "37c14715caab9ec9ee023e95", "test": "e6c56284448851e298d68167"}
    for split, digest in expected.items():
        assert _sha(generate(SyntheticConfig(**SMALL), split)["labels"]) == digest


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


def test_dataset_returns_image_and_class_map(tmp_path):
    ds = build_dataset("synthetic-seg", root=tmp_path, split="train", **SMALL)
    cls = build_dataset("synthetic", root=tmp_path, split="train", **SMALL)
    assert len(list((tmp_path / "synthetic").iterdir())) == 1  # one cache file for both tasks
    assert isinstance(ds, SyntheticSegmentation) and len(ds) == 64
    x, mask = ds[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    assert torch.equal(x, cls[5][0])  # the same normalized pixels as the classification task
    data = generate(SyntheticConfig(**SMALL), "train")
    assert torch.equal(mask, torch.from_numpy(data["masks"][5].astype(np.int64)))
    assert set(mask.unique().tolist()) == {0, ds.targets[5] + 1}
    assert ds.targets == cls.targets
    assert ds.info.num_classes == 11 and ds.info.task == "segmentation"
    assert ds.info.image_size == (32, 32) and ds.info.mean == cls.info.mean
    assert cls.info.task == "classification" and dataset_info("cifar10").task == "classification"
    assert ds.classes == ["background", *cls.classes] and len(ds.classes) == ds.info.num_classes
    assert not ds.has_boxes
    with pytest.raises(ValueError, match="no bounding boxes"):
        ds.boxes(0)
    sub = build_dataset("synthetic-seg", root=tmp_path, split="train", limit=10, seed=2, **SMALL)
    ref = build_dataset("synthetic", root=tmp_path, split="train", limit=10, seed=2, **SMALL)
    assert len(sub) == 10 and sub.targets == ref.targets
    assert all((sub[i][1].max() == sub.targets[i] + 1).item() for i in range(10))


def test_synthetic64_seg_and_infos(tmp_path):
    ds = build_dataset(
        "synthetic64-seg", root=tmp_path, split="test", cache=False,
        num_train=4, num_test=4, num_classes=5, seed_data=3,
    )
    x, mask = ds[0]
    assert x.shape == (3, 64, 64) and mask.shape == (64, 64) and ds.info.num_classes == 6
    assert not (tmp_path / "synthetic").exists()
    for name, size in (("synthetic-seg", 32), ("synthetic64-seg", 64)):
        info = dataset_info(name)
        assert info.num_classes == 11 and info.task == "segmentation"
        assert info.image_size == (size, size) and info.channels == 3


def _stored(ds, i):
    x = ds.images[i].permute(2, 0, 1).float() / 255
    return ds.transform(x), ds.masks[i].long()


def test_joint_flip_keeps_mask_on_the_object(tmp_path):
    kw = {"root": tmp_path, "split": "train", "train_transform": True, **SMALL}
    aug = build_dataset("synthetic-seg", **kw)
    plain = build_dataset("synthetic", **kw)
    seen = set()
    for i in range(8):
        x0, m0 = _stored(aug, i)
        assert not torch.equal(m0, m0.flip(-1))  # objects are not mirror-symmetric in place
        torch.manual_seed(i)
        x, m = aug[i]
        flipped = torch.equal(x, x0.flip(-1))
        assert flipped or torch.equal(x, x0)
        assert torch.equal(m, m0.flip(-1) if flipped else m0)  # the mask follows its image
        seen.add(flipped)
        torch.manual_seed(i)  # the same draws as the classification task's augmentation
        assert torch.equal(plain[i][0], x)
    assert seen == {True, False}


def test_joint_crop_pads_mask_with_background(tmp_path):
    kw = {"root": tmp_path, "split": "train", "train_transform": True, "padding": 4, **SMALL}
    aug = build_dataset("synthetic-seg", **kw)
    plain = build_dataset("synthetic", **kw)
    x0, m0 = _stored(aug, 0)
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (aug.info.mean, aug.info.std))
    padded_x = ((torch.zeros(3, 40, 40) - mean) / std).contiguous()  # black, then normalized
    padded_x[:, 4:36, 4:36] = x0
    padded_m = torch.zeros(40, 40, dtype=torch.int64)  # background
    padded_m[4:36, 4:36] = m0
    corners = set()
    for seed in range(6):
        # the documented draws: RandomCrop's row then column offset, then the flip's torch.rand
        torch.manual_seed(seed)
        i, j = (int(torch.randint(0, 9, (1,))) for _ in range(2))
        flip = float(torch.rand(())) < 0.5
        want_x, want_m = padded_x[:, i:i + 32, j:j + 32], padded_m[i:i + 32, j:j + 32]
        if flip:
            want_x, want_m = want_x.flip(-1), want_m.flip(-1)
        torch.manual_seed(seed)
        x, m = aug[0]
        assert torch.allclose(x, want_x, atol=1e-6) and torch.equal(m, want_m)
        torch.manual_seed(seed)
        assert torch.equal(plain[0][0], x)  # the classification task draws the same
        corners.add((i, j))
    assert len(corners) > 1


def test_loader_stacks_images_and_masks(tmp_path):
    ds = build_dataset("synthetic-seg", root=tmp_path, split="train", train_transform=True, **SMALL)
    loader = make_loader(ds, batch_size=8, shuffle=True, seed=3)
    set_epoch(loader, 1)
    x, mask = next(iter(loader))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32
    assert mask.shape == (8, 32, 32) and mask.dtype == torch.int64
    assert 0 <= int(mask.min()) and int(mask.max()) < ds.info.num_classes
    set_epoch(loader, 1)
    x2, mask2 = next(iter(loader))
    assert torch.equal(x, x2) and torch.equal(mask, mask2)  # reproducible from (seed, epoch)


def test_errors_match_the_classification_dataset(tmp_path):
    with pytest.raises(ValueError, match="split"):
        build_dataset("synthetic-seg", root=tmp_path, split="val", cache=False, **SMALL)
    with pytest.raises(ValueError, match="num_trian"):
        build_dataset("synthetic-seg", root=tmp_path, split="train", num_trian=3)
    with pytest.raises(ValueError, match="num_classes"):
        build_dataset("synthetic-seg", split="train", cache=False, num_classes=1)
    with pytest.raises(TypeError, match="config"):
        SyntheticSegmentation({"num_classes": 3}, cache=False)
    with pytest.raises(ValueError, match="padding"):
        SyntheticSegmentation(
            SyntheticConfig(**SMALL), cache=False, train_transform=True, padding=-1
        )


def test_joint_transform_checks():
    x = torch.rand(3, 6, 6)
    mask = torch.arange(36).view(6, 6) % 4
    flip = T.JointTransform([T.RandomHorizontalFlip(p=1.0)])
    fx, fm = flip(x, mask)
    assert torch.equal(fx, x.flip(-1)) and torch.equal(fm, mask.flip(-1)) and fm.dtype == mask.dtype
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    crop = T.RandomCrop(6, padding=2)
    jx, jm = T.JointTransform([crop])(x, mask, generator=g1)
    assert torch.equal(jx, crop(x, generator=g2))  # same draws as the image alone
    assert set(jm.unique().tolist()) <= {0, 1, 2, 3}
    with pytest.raises(TypeError, match=r"transforms\[0\]"):
        T.JointTransform([T.Resize(4)])
    with pytest.raises(ValueError, match="fill"):
        T.JointTransform([T.RandomCrop(6, padding=1, fill=1.0)])
    with pytest.raises(ValueError, match="mask"):
        flip(x, mask[:5])
    with pytest.raises(TypeError, match="mask"):
        flip(x, mask.float())


def test_save_segmentation_grid(tmp_path):
    from PIL import Image

    path = save_segmentation_grid(tmp_path / "seg.png", SyntheticConfig(**SMALL), rows=2, cols=3)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == (480, 360)
        rgb = np.asarray(img.convert("RGB")).astype(np.int64)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100
    lime = (rgb[..., 0] < 60) & (rgb[..., 1] > 200) & (rgb[..., 2] < 60)
    assert lime.sum() > 200  # the mask outlines
    with pytest.raises(ValueError, match="rows"):
        save_segmentation_grid(tmp_path / "x.png", SyntheticConfig(**SMALL), rows=0)
