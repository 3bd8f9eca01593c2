"""The CIFAR batches are read by a restricted unpickler: arrays and plain containers only."""

import pickle

import numpy as np
import pytest

from comixup.data import build_dataset
from comixup.data.cifar import safe_unpickle


class _CreatesFile:
    """Unpickled by a plain pickle.load, this calls open(target, "w"), creating the file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_crafted_batch_is_refused_and_its_payload_never_runs(cifar_root, tmp_path):
    target = tmp_path / "payload-ran"
    batch = cifar_root / "cifar-10-batches-py" / "data_batch_3"
    with open(batch, "wb") as f:
        pickle.dump({b"labels": [0], b"data": np.zeros((1, 3072), np.uint8),
                     b"filenames": _CreatesFile(target)}, f, protocol=3)
    with pytest.raises(ValueError, match=r"data_batch_3: refused as a CIFAR batch: .*open"):
        build_dataset("cifar10", root=cifar_root, split="train")
    assert not target.exists()


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_real_batch_contents_round_trip(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    d = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 7], b"data": data,
         b"filenames": [b"a.png", b"b.png"], "text": "str keys too"}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(d, protocol=protocol))
    if protocol >= 5:  # numpy pickles arrays through another function from protocol 5 on
        with pytest.raises(ValueError, match="batch: refused"):
            safe_unpickle(path)
        return
    out = safe_unpickle(path)
    np.testing.assert_array_equal(out[b"data"], data)
    assert out[b"labels"] == [3, 7] and out[b"filenames"] == [b"a.png", b"b.png"]
    assert out["text"] == "str keys too"


def test_numpy1_spelling_of_the_array_reconstruction_is_admitted(tmp_path):
    data = np.arange(12, dtype=np.uint8).reshape(2, 6)
    # protocol 3 names globals as text lines (the published batches, written by Python 2 and
    # numpy 1, name numpy.core.multiarray the same way)
    raw = pickle.dumps({b"data": data}, protocol=3)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    path = tmp_path / "batch"
    path.write_bytes(raw)
    np.testing.assert_array_equal(safe_unpickle(path)[b"data"], data)


def test_damaged_or_foreign_pickles_name_the_file(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": b"x" * 50}, protocol=3)[:20])
    with pytest.raises(ValueError, match="test_batch: not a readable CIFAR batch"):
        safe_unpickle(path)
    path.write_bytes(pickle.dumps([1, 2], protocol=3))
    with pytest.raises(ValueError, match="test_batch: does not hold a pickled dict"):
        safe_unpickle(path)
    path.write_bytes(pickle.dumps({b"s": {1, 2}}, protocol=3))  # protocol 3 names builtins.set
    with pytest.raises(ValueError, match="builtins.set"):
        safe_unpickle(path)
