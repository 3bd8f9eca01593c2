import numpy as np
import pytest
import torch

from comixup.data import build_dataset, dataset_info


def _first_red(ds, i):
    info = ds.info
    x, _ = ds[i]
    return round(float(x[0, 0, 0]) * info.std[0] * 255 + info.mean[0] * 255)


# ---------------------------------------------------------------------------------- CIFAR


def test_cifar10_train_test_shapes_labels_normalization(cifar_root):
    tr = build_dataset("cifar10", root=cifar_root, split="train")
    assert len(tr) == 30
    assert tr.targets == [(i + k) % 3 for i in range(1, 6) for k in range(6)]
    x, y = tr[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert [_first_red(tr, i) for i in (0, 6, 29)] == [1, 2, 5]
    te = build_dataset("cifar10", root=cifar_root, split="test")
    assert te.targets == [0, 1, 2, 9] and te.classes[9] == "class9"
    info = dataset_info("cifar10")
    x, _ = te[0]
    expected = torch.tensor([(1 - m) / s for m, s in zip(info.mean, info.std)]).view(3, 1, 1)
    assert torch.allclose(x, expected.expand(3, 32, 32), atol=1e-5)
    assert info.mean[0] == pytest.approx(125.3 / 255) and info.std[2] == pytest.approx(66.7 / 255)


def test_cifar10_augmentation_and_subsets(cifar_root):
    aug = build_dataset("cifar10", root=cifar_root, split="test", train_transform=True)
    torch.manual_seed(0)
    xs = torch.stack([aug[0][0] for _ in range(8)])
    assert xs.shape == (8, 3, 32, 32) and (xs.std(0) > 0).any()  # random crops differ
    lpc = build_dataset("cifar10", root=cifar_root, split="train", labels_per_class=2)
    assert lpc.indices.tolist() == [0, 1, 2, 3, 4, 5]
    assert sorted(lpc.targets) == [0, 0, 1, 1, 2, 2]
    a = build_dataset("cifar10", root=cifar_root, split="train", limit=7, seed=1)
    b = build_dataset("cifar10", root=cifar_root, split="train", limit=7, seed=1)
    c = build_dataset("cifar10", root=cifar_root, split="train", limit=7, seed=2)
    assert len(a) == 7 and a.indices.tolist() == b.indices.tolist() != c.indices.tolist()
    assert list(a.indices) == sorted(a.indices)
    with pytest.raises(ValueError, match="labels_per_class"):
        build_dataset("cifar10", root=cifar_root, split="train", labels_per_class=0)


def test_cifar100(cifar_root):
    tr = build_dataset("cifar100", root=cifar_root, split="train")
    assert tr.targets == [k * 11 % 100 for k in range(8)] and tr.classes[11] == "fine11"
    x, _ = build_dataset("cifar100", root=cifar_root / "cifar-100-python", split="test")[3]
    assert x.shape == (3, 32, 32)
    assert dataset_info("cifar100").mean[1] == pytest.approx(124.1 / 255)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("tiny-imagenet", "tiny-imagenet-200"),
        ("imagenet", "imagenet"),
        ("speech-commands", "speech_commands"),
    ],
)
def test_missing_dataset_names_path_and_layout(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError) as e:
        build_dataset(name, root=tmp_path / "nowhere", split="train")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / expected) in msg and "layout" in msg


# --------------------------------------------------------------------------- Tiny-ImageNet


def test_tiny_imagenet_train(tiny_root):
    tr = build_dataset("tiny-imagenet", root=tiny_root, split="train", train_transform=True)
    assert tr.classes == ["n01", "n02", "n03"]  # sorted wnids
    assert len(tr) == 6 and sorted(tr.targets) == [0, 0, 1, 1, 2, 2]
    x, _y = tr[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert tr.has_boxes and tr.boxes(0) == [(0.0, 1.0, 31.0, 41.0)]


def test_tiny_imagenet_val_boxes_and_normalization(tiny_root):
    for split in ("val", "test"):
        va = build_dataset("tiny-imagenet", root=tiny_root, split=split)
        assert [p.name for p, _ in va.samples] == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG"]
        assert va.targets == [1, 0, 2]
    x, _ = va[0]
    assert x.shape == (3, 64, 64)
    assert torch.allclose(x, torch.full_like(x, (128 / 255 - 0.5) / 0.5), atol=0.02)
    assert va.boxes(2) == [(2.0, 2.0, 53.0, 61.0)]
    sub = build_dataset("tiny-imagenet", root=tiny_root, split="val", limit=2)
    assert len(sub) == 2 and len(sub.boxes(1)) == 1
    with pytest.raises(ValueError, match="split"):
        build_dataset("tiny-imagenet", root=tiny_root, split="holdout")


# -------------------------------------------------------------------------------- ImageNet


def test_imagenet_eval_boxes_rescaled(imagenet_root):
    va = build_dataset("imagenet", root=imagenet_root, split="val", crop=16, resize=20)
    assert va.classes == ["n01", "n02"] and va.targets == [0, 1]
    x, y = va[0]
    assert x.shape == (3, 16, 16) and y == 0
    assert va.has_boxes
    # XML box 40..119 x 0..79 on 160x80 -> 20..60 x 0..40 on the 80x40 file -> resize shorter
    # side 40->20 (x0.5): 10..30 x 0..20 on 40x20 -> center crop 16 (offsets 12, 2): 0..16 x 0..16
    assert va.boxes(0) == [pytest.approx((0.0, 0.0, 16.0, 16.0))]
    assert va.boxes(1) == []


def test_imagenet_box_mapping_without_clipping(imagenet_root, tmp_path, voc_xml):
    box_dir = tmp_path / "xml"
    box_dir.mkdir()
    (box_dir / "ILSVRC2012_val_00000001.xml").write_text(
        voc_xml.format(stem="x", w=80, h=40, x0=36, y0=10, x1=43, y1=29)
    )
    va = build_dataset(
        "imagenet",
        root=imagenet_root / "imagenet",
        split="val",
        crop=16,
        resize=20,
        box_dir=box_dir,
    )
    # 36..44 x 10..30 on 80x40 -> x0.5: 18..22 x 5..15 on 40x20 -> minus (2, 12): 6..10 x 3..13
    assert va.boxes(1) == [pytest.approx((6.0, 3.0, 10.0, 13.0))]


def test_imagenet_train_default_sizes(imagenet_root):
    tr = build_dataset("imagenet", root=imagenet_root, split="train", train_transform=True, limit=3)
    assert len(tr) == 3 and not tr.has_boxes
    x, _ = tr[0]
    assert x.shape == (3, 224, 224)
    info = dataset_info("imagenet")
    assert info.image_size == (224, 224) and info.mean == (0.485, 0.456, 0.406)
    with pytest.raises(ValueError, match="no bounding boxes"):
        tr.boxes(0)


# ------------------------------------------------------------------------ Speech Commands


def test_speech_commands_splits_and_features(speech_root):
    tr = build_dataset("speech-commands", root=speech_root, split="train")
    va = build_dataset("speech-commands", root=speech_root, split="val")
    te = build_dataset("speech-commands", root=speech_root, split="test")
    assert (len(tr), len(va), len(te)) == (6, 2, 1)
    classes = tr.classes
    assert len(classes) == 30 and classes == sorted(classes)
    assert sorted({classes[t] for t in tr.targets}) == ["no", "yes", "zero"]
    assert [classes[t] for t in te.targets] == ["zero"]
    x, y = tr[0]
    assert x.shape == (1, 160, 100) and x.dtype == torch.float32 and isinstance(y, int)
    assert abs(float(x.mean())) < 1e-4 and float(x.std()) == pytest.approx(1.0, abs=1e-3)
    info = dataset_info("speech-commands")
    assert info.num_classes == 30 and info.channels == 1 and info.image_size == (160, 100)
    # the strongest frequency bin is the tone's: 300 Hz -> bin 300 * 318 / 16000 ~ 6
    no = next(i for i, t in enumerate(tr.targets) if classes[t] == "no")  # 500 Hz -> bin ~ 10
    peak = int(tr[no][0][0].mean(1).argmax())
    assert abs(peak - 500 * 318 / 16000) <= 1


def test_speech_commands_short_and_long_files(speech_root, tmp_path, wav_writer):
    from comixup.data.speech_commands import log_spectrogram, read_wav

    short = read_wav(speech_root / "speech_commands" / "yes" / "spk0_nohash_0.wav")
    assert short.shape == (12000,) and short.dtype == np.float32
    assert log_spectrogram(short).shape == (1, 160, 100)
    assert log_spectrogram(np.zeros(20000)).abs().max() == 0
    wav_writer(tmp_path / "bad.wav", np.zeros(100, np.int16), rate=8000)
    with pytest.raises(ValueError, match="16000 Hz"):
        read_wav(tmp_path / "bad.wav")


def test_unknown_option_named(cifar_root):
    with pytest.raises(ValueError, match="labels_per_clas"):
        build_dataset("cifar10", root=cifar_root, split="train", labels_per_clas=3)
    with pytest.raises(ValueError, match="name must be one of"):
        build_dataset("svhn", root=cifar_root, split="train")
