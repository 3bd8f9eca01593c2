import numpy as np
import pytest
import torch

from comixup.data import DATASETS, build_dataset, dataset_info
from comixup.data.synthetic import (
    SyntheticConfig,
    cache_dir,
    class_attributes,
    generate,
    save_sample_grid,
)

SMALL = {"num_train": 40, "num_test": 16}


def test_generate_is_deterministic_and_prefix_stable():
    cfg = SyntheticConfig(**SMALL)
    a = generate(cfg, "train")
    b = generate(cfg, "train", n=8)
    assert a["images"].shape == (40, 32, 32, 3) and a["images"].dtype == np.uint8
    assert np.array_equal(a["images"][:8], b["images"]) and np.array_equal(
        a["boxes"][:8], b["boxes"]
    )
    c = generate(SyntheticConfig(seed=1, **SMALL), "train", n=8)
    assert not np.array_equal(c["images"], b["images"])
    test = generate(cfg, "test")
    assert test["images"].shape[0] == 16 and not np.array_equal(test["images"][:8], b["images"])


def test_synthetic64_renders_the_same_scenes():
    a = generate(SyntheticConfig(**SMALL), "train", n=6)
    b = generate(SyntheticConfig(image_size=64, **SMALL), "train", n=6)
    assert np.array_equal(a["labels"], b["labels"])
    assert np.abs(b["boxes"] - 2 * a["boxes"]).max() <= 2.0


def test_class_attributes_are_distinct_conjunctions():
    for k in (2, 10, 30, 100):
        table = class_attributes(SyntheticConfig(num_classes=k))
        assert table.shape == (k, 3) and len({tuple(r) for r in table}) == k
    table = class_attributes(SyntheticConfig())
    for a in range(3):  # no attribute value identifies a single class on its own
        assert np.bincount(table[:, a]).max() >= 2


def test_boxes_hold_the_object():
    d = generate(SyntheticConfig(**SMALL), "train")
    boxes = d["boxes"]
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
    assert boxes.min() >= 0 and boxes.max() <= 32
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.min() >= 3 and sides.max() <= 22  # radius 0.16-0.30 of 32 pixels


def test_dataset_cache_subset_and_transforms(tmp_path):
    ds = build_dataset("synthetic", root=tmp_path, split="train", **SMALL)
    files = sorted(p.name for p in (tmp_path / "synthetic").iterdir())
    assert len(files) == 1 and files[0].startswith("synthetic-") and files[0].endswith("-train.npz")
    again = build_dataset("synthetic", root=tmp_path, split="train", **SMALL)
    assert torch.equal(again.images, ds.images)
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    info = dataset_info("synthetic")
    raw = ds.images[3].permute(2, 0, 1).float() / 255
    mean = torch.tensor(info.mean).view(3, 1, 1)
    std = torch.tensor(info.std).view(3, 1, 1)
    assert torch.allclose(x, (raw - mean) / std, atol=1e-6)
    assert ds.has_boxes and len(ds.boxes(3)) == 1 and ds.boxes(-1) == ds.boxes(len(ds) - 1)
    sub = build_dataset("synthetic", root=tmp_path, split="train", limit=10, seed=2, **SMALL)
    assert len(sub) == 10 and len(sub.boxes(9)) == 1
    aug = build_dataset("synthetic", root=tmp_path, split="train", train_transform=True, **SMALL)
    torch.manual_seed(0)
    clean = ds[0][0]
    assert all(torch.equal(ds[0][0], clean) for _ in range(3))  # eval pipeline is deterministic
    flips = {bool(torch.equal(aug[0][0], clean.flip(-1))) for _ in range(10)}
    assert flips == {True, False}  # flip only by default: the image is x or its mirror
    crop = build_dataset(
        "synthetic", root=tmp_path, split="train", train_transform=True, padding=2, **SMALL
    )
    assert crop[0][0].shape == (3, 32, 32)
    assert ds.classes[0].count(" ") == 2  # "<colour> <texture> <shape>"


def test_synthetic64_and_options(tmp_path):
    ds = build_dataset(
        "synthetic64",
        root=tmp_path,
        split="test",
        cache=False,
        num_train=8,
        num_test=4,
        num_classes=5,
        seed_data=3,
    )
    assert len(ds) == 4 and ds[0][0].shape == (3, 64, 64) and ds.info.num_classes == 5
    assert not (tmp_path / "synthetic").exists()
    assert max(max(b) for i in range(4) for b in ds.boxes(i)) <= 64
    assert dataset_info("synthetic64").image_size == (64, 64)
    with pytest.raises(ValueError, match="num_trian"):
        build_dataset("synthetic", root=tmp_path, split="train", num_trian=3)
    with pytest.raises(ValueError, match="num_classes"):
        SyntheticConfig(num_classes=1)
    with pytest.raises(ValueError, match="split"):
        build_dataset("synthetic", root=tmp_path, split="val", cache=False, **SMALL)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("COMIXUP_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert cache_dir(tmp_path) == tmp_path / "synthetic"


def test_save_sample_grid(tmp_path):
    from PIL import Image

    path = save_sample_grid(tmp_path / "grid.png", SyntheticConfig(**SMALL), rows=2, cols=3)
    with Image.open(path) as img:
        assert img.format == "PNG"
        # figsize (1.6 * cols, 1.8 * rows) inches at dpi 100
        assert img.size == (480, 360)
        rgb = np.asarray(img.convert("RGB")).astype(np.int64)
    assert rgb.std() > 20  # not blank: rendered scenes on a white figure
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100  # textured images, not flat fills
    # the boxes are drawn in lime (0, 255, 0): enough pixels for six rectangle outlines
    lime = (rgb[..., 0] < 60) & (rgb[..., 1] > 200) & (rgb[..., 2] < 60)
    assert lime.sum() > 600
    # and the six panels are not all the same image
    panels = [rgb[r * 180:(r + 1) * 180, c * 160:(c + 1) * 160] for r in range(2) for c in range(3)]
    assert len({p.tobytes() for p in panels}) == 6


def test_registry_lists_every_dataset():
    assert DATASETS == (
        "synthetic",
        "synthetic64",
        "synthetic-seg",
        "synthetic64-seg",
        "cifar10",
        "cifar100",
        "tiny-imagenet",
        "imagenet",
        "speech-commands",
        "fashion-mnist",
        "mnist",
    )
    for name in DATASETS:
        info = dataset_info(name)
        assert len(info.mean) == len(info.std) == info.channels
    with pytest.raises(ValueError, match="name must be one of"):
        dataset_info("svhn")
