"""Fashion-MNIST and MNIST from IDX files: tiny files in the real format written here (plain and
gzip, intact and damaged), the command line's one-line errors, and the real Debian files."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from comixup.cli import main
from comixup.data import build_dataset, dataset_info
from comixup.data.mnist import DEFAULT_ROOTS, read_idx

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (uint8) as an IDX file: 0, 0, type 0x08, ndim, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def tiny_arrays(n_train=20, n_test=10, seed=0):
    """Images with an object box of random extent on a zero background, labels 0..9 cycling."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for i in range(n):
            y0, x0 = rng.integers(0, 10, size=2)
            y1, x1 = rng.integers(15, 29, size=2)
            images[i, y0:y1, x0:x1] = rng.integers(1, 256, size=(y1 - y0, x1 - x0))
        out[f"{split}_images"] = images
        out[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
    return out


def write_dataset(root: Path, arrays: dict, gz: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for key, stem in FILES.items():
        data = idx_bytes(arrays[key])
        if gz:
            (root / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (root / stem).write_bytes(data)
    return root


@pytest.fixture
def arrays():
    return tiny_arrays()


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_reads_tiny_files(tmp_path, arrays, gz, name):
    root = write_dataset(tmp_path / "d", arrays, gz=gz)
    train = build_dataset(name, root=root, split="train")
    test = build_dataset(name, root=root, split="test")
    assert len(train) == 20 and len(test) == 10
    assert train.targets == list(arrays["train_labels"])
    info = dataset_info(name)
    assert train.info == info and info.channels == 1 and info.image_size == (32, 32)
    x, y = test[3]
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32 and y == 3
    # The evaluation image is the stored one, padded by 2 zero pixels, then normalized.
    pixels = x * info.std[0] + info.mean[0]
    expected = np.pad(arrays["test_images"][3], 2).astype(np.float32) / 255
    assert torch.allclose(pixels[0], torch.from_numpy(expected), atol=1e-6)


def test_boxes_are_tight_around_the_object(tmp_path, arrays):
    root = write_dataset(tmp_path / "d", arrays)
    test = build_dataset("fashion-mnist", root=root, split="test")
    for i in range(len(test)):
        rows, cols = np.nonzero(arrays["test_images"][i])
        box = (cols.min() + 2, rows.min() + 2, cols.max() + 3, rows.max() + 3)
        assert test.boxes(i) == [tuple(float(v) for v in box)]


def test_empty_image_box_is_the_stored_frame(tmp_path, arrays):
    arrays["test_images"][0] = 0
    root = write_dataset(tmp_path / "d", arrays)
    assert build_dataset("mnist", root=root, split="test").boxes(0) == [(2.0, 2.0, 30.0, 30.0)]


def test_training_transform_is_random_but_seeded(tmp_path, arrays):
    root = write_dataset(tmp_path / "d", arrays)
    train = build_dataset("fashion-mnist", root=root, split="train", train_transform=True)
    torch.manual_seed(0)
    a = train[0][0]
    torch.manual_seed(0)
    assert torch.equal(a, train[0][0])
    outs = set()
    for s in range(20):
        torch.manual_seed(s)
        outs.add(train[0][0].numpy().tobytes())
    assert len(outs) > 1


def test_labels_per_class_thins_train_only(tmp_path, arrays):
    root = write_dataset(tmp_path / "d", arrays)
    train = build_dataset("fashion-mnist", root=root, split="train", labels_per_class=1)
    assert train.targets == list(range(10))
    assert list(train.indices) == list(range(10))  # the first of each class, in file order
    assert len(build_dataset("fashion-mnist", root=root, split="test", labels_per_class=1)) == 10
    with pytest.raises(ValueError, match="labels_per_class"):
        build_dataset("fashion-mnist", root=root, split="train", labels_per_class=0)


# -- damaged files -------------------------------------------------------------------------------


def _damage(root: Path, key: str, how: str, arrays: dict) -> Path:
    """Damage one of the four files of ``root`` in the way ``how``; return its path."""
    path = root / f"{FILES[key]}.gz"
    data = idx_bytes(arrays[key])
    if how == "magic":
        data = bytes([0, 0, 0x09]) + data[3:]
    elif how == "truncated":
        data = data[:-7]
    elif how == "trailing":
        data = data + b"\0"
    elif how == "header":
        data = data[:6]
    elif how == "dims":
        if arrays[key].ndim == 3:
            data = idx_bytes(arrays[key][:, :27])
        else:
            data = idx_bytes(arrays[key][:, None])  # labels stored as a 2-d file
    if how == "gzip":
        path.write_bytes(gzip.compress(data)[:-20])
    elif how == "missing":
        path.unlink()
    else:
        path.write_bytes(gzip.compress(data))
    return path


HOWS = ["magic", "truncated", "trailing", "header", "dims", "gzip", "missing"]


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("key", list(FILES))
def test_damaged_file_is_named(tmp_path, arrays, key, how):
    root = write_dataset(tmp_path / "d", arrays)
    path = _damage(root, key, how, arrays)
    split = key.split("_")[0]
    error = FileNotFoundError if how == "missing" else ValueError
    with pytest.raises(error, match=str(path.with_suffix("")) if how == "missing" else str(path)):
        build_dataset("fashion-mnist", root=root, split=split)


def test_count_mismatch_and_bad_label(tmp_path, arrays):
    arrays["train_labels"] = arrays["train_labels"][:-1]
    root = write_dataset(tmp_path / "a", arrays)
    with pytest.raises(ValueError, match="19 labels for the 20 images"):
        build_dataset("fashion-mnist", root=root, split="train")
    arrays = tiny_arrays()
    arrays["test_labels"][4] = 10
    root = write_dataset(tmp_path / "b", arrays)
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte.gz: label 10 of sample 4 is "
                                         r"outside 0-9"):
        build_dataset("fashion-mnist", root=root, split="test")


def test_missing_directory_says_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        build_dataset("fashion-mnist", root=tmp_path / "nowhere", split="train")


def test_read_idx_checks_the_item_shape(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros((2, 3, 4), dtype=np.uint8)))
    assert read_idx(path, ndim=3).shape == (2, 3, 4)
    with pytest.raises(ValueError, match=r"items of size \(3, 4\), expected \(28, 28\)"):
        read_idx(path, ndim=3, shape=(28, 28))
    with pytest.raises(ValueError, match="bad magic number 0x00000803, expected 0x00000801"):
        read_idx(path, ndim=1)


def _cli_error(argv, capsys) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("comixup: error: "), err
    return lines[0]


def _train_argv(root, tmp_path):
    return ["train", "--data", "fashion-mnist", "--data-dir", str(root), "--epochs", "1",
            "--arch-opt", "initial_channels=2", "--out", str(tmp_path / "run"), "--no-progress",
            "--method", "vanilla"]


@pytest.mark.parametrize("key", list(FILES))
def test_cli_names_each_damaged_file(tmp_path, arrays, key, capsys):
    root = write_dataset(tmp_path / "d", arrays)
    path = _damage(root, key, "truncated", arrays)
    line = _cli_error(_train_argv(root, tmp_path), capsys)
    assert str(path) in line and "truncated" in line


def test_cli_missing_directory_and_bad_label(tmp_path, arrays, capsys):
    line = _cli_error(_train_argv(tmp_path / "nowhere", tmp_path), capsys)
    assert "apt-get install dataset-fashion-mnist" in line
    arrays["train_labels"][0] = 12
    root = write_dataset(tmp_path / "d", arrays)
    line = _cli_error(_train_argv(root, tmp_path), capsys)
    assert "train-labels-idx1-ubyte.gz: label 12 of sample 0 is outside 0-9" in line


# -- the real files ------------------------------------------------------------------------------


def _real_root() -> Path:
    root = Path(DEFAULT_ROOTS["fashion-mnist"])
    if not all((root / f"{stem}.gz").is_file() for stem in FILES.values()):
        message = (f"the Fashion-MNIST files are not in {root} "
                   "(apt-get install dataset-fashion-mnist)")
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them: their absence there is a failure
        pytest.skip(message)
    return root


def test_real_fashion_mnist():
    _real_root()
    train = build_dataset("fashion-mnist", split="train")
    test = build_dataset("fashion-mnist", split="test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert np.bincount(train.targets).tolist() == [6_000] * 10
    assert np.bincount(test.targets).tolist() == [1_000] * 10
    first = train.data[0, 2:30, 2:30].numpy()
    assert train.targets[0] == 9  # an ankle boot
    assert hashlib.sha256(first.tobytes()).hexdigest() == (
        "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b")
