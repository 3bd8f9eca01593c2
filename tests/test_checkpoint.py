"""comixup.checkpoint: atomic saves survive SIGKILL; RNG states round-trip."""

import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from comixup import checkpoint as ck


def test_save_and_load_weights_only(tmp_path):
    obj = {"format": ck.FORMAT, "epoch": 2, "w": torch.arange(4.0), "cfg": {"a": [1, None, "x"]},
           "rng": ck.rng_state(), "config": {"method": "mixup"}, "model": {"w": torch.ones(2)}}
    path = ck.save_atomic(obj, tmp_path / "sub" / "last.pt")
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 2 and torch.equal(loaded["w"], obj["w"])
    assert ck.load(path)["cfg"] == {"a": [1, None, "x"]}
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left over
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        ck.load(tmp_path / "nope.pt")
    torch.save({"epoch": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt is not a valid comixup checkpoint"):
        ck.load(tmp_path / "other.pt")


def test_failed_save_leaves_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    ck.save_atomic({"format": ck.FORMAT, "epoch": 1}, path)
    with pytest.raises((AttributeError, TypeError, pickle.PicklingError)):
        ck.save_atomic({"format": ck.FORMAT, "bad": lambda: 0}, path)  # lambdas do not pickle
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_rng_state_roundtrip():
    state = ck.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    ck.set_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    g = torch.Generator().manual_seed(3)
    s = ck.generator_state(g)
    x = torch.rand(2, generator=g)
    ck.set_generator_state(g, s)
    assert torch.equal(torch.rand(2, generator=g), x)


def test_rng_state_survives_weights_only(tmp_path):
    random.gauss(0, 1)  # populate Python's cached gaussian
    np.random.randn()
    state = ck.rng_state()
    ck.save_atomic({"format": ck.FORMAT, "epoch": 0, "config": {}, "model": {}, "rng": state},
                   tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), np.random.randn(), torch.rand(2))
    ck.set_rng_state(ck.load(tmp_path / "r.pt")["rng"])
    got = (random.random(), np.random.rand(), np.random.randn(), torch.rand(2))
    assert expected[:3] == got[:3] and torch.equal(expected[3], got[3])


# The child saves epoch 1, then starts saving epoch 2 with a patched step that announces itself
# (marker file) and hangs; the parent SIGKILLs it there.
CHILD = textwrap.dedent("""
    import os, sys, time, torch
    from comixup import checkpoint as ck
    path, marker, where = sys.argv[1], sys.argv[2], sys.argv[3]
    ck.save_atomic({"format": ck.FORMAT, "epoch": 1, "config": {}, "model": {},
                    "w": torch.ones(1000)}, path)
    def hang():
        open(marker, "w").close()
        time.sleep(120)
    if where == "during-write":
        real_save = torch.save
        def partial_save(obj, f, *a, **k):
            f.write(b"PK\\x03\\x04 torn")   # a few bytes of a zip, then hang
            f.flush()
            hang()
        torch.save = partial_save
    else:  # the temporary file is complete and fsynced; hang before os.replace
        real_replace = os.replace
        def slow_replace(src, dst):
            hang()
            real_replace(src, dst)
        os.replace = slow_replace
    ck.save_atomic({"format": ck.FORMAT, "epoch": 2, "w": torch.zeros(1000)}, path)
""")


@pytest.mark.parametrize("where", ["during-write", "before-replace"])
def test_sigkill_during_save_keeps_previous_checkpoint(tmp_path, where):
    path, marker = tmp_path / "last.pt", tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(marker), where])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the child exited before reaching the save"
            assert time.monotonic() < deadline, "the child never reached the save"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = ck.load(path)  # weights_only load of the previous, complete checkpoint
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.ones(1000))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("last.pt", "marker")]
    assert all(name.startswith(".last.pt.") and name.endswith(".tmp") for name in leftovers)
    assert len(leftovers) == 1
