"""Tests for comixup.mixers._host: the copies of the CPU solvers' inputs to the host and back."""

from __future__ import annotations

import numpy as np
import torch

from comixup.mixers._host import host_copy, host_rows, to_device, to_host


def test_to_host_waits_on_the_stream_of_the_tensors_device(monkeypatch):
    # A CPU stand-in for a tensor on cuda:1 while the current device is another one: the
    # non-blocking copy runs on cuda:1's current stream, so the event must be recorded there.
    calls = []

    class FakeTensor:
        device = torch.device("cuda:1")
        shape = (2, 3)
        dtype = torch.float32

    class FakeHost:
        def copy_(self, src, non_blocking=False):
            calls.append(("copy", src.device, non_blocking))

    class FakeEvent:
        def record(self, stream=None):
            calls.append(("record", stream))

        def synchronize(self):
            calls.append(("synchronize",))

    host = FakeHost()

    def fake_empty(shape, *, dtype, pin_memory):
        calls.append(("empty", tuple(shape), dtype, pin_memory))
        return host

    monkeypatch.setattr(torch, "empty", fake_empty)
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream",
                        lambda device=None: ("stream of", None if device is None else str(device)))
    assert to_host(FakeTensor()) is host
    assert calls == [("empty", (2, 3), torch.float32, True),
                     ("copy", torch.device("cuda:1"), True),
                     ("record", ("stream of", "cuda:1")),
                     ("synchronize",)]


def test_to_host_of_a_cpu_tensor_is_the_tensor_itself():
    t = torch.arange(6.0).reshape(2, 3)
    out = to_host(t)
    assert out.device.type == "cpu" and torch.equal(out, t)


def test_host_copy_splits_one_transfer_back_into_the_tensors():
    a = torch.arange(12, dtype=torch.float32).reshape(3, 2, 2)
    b = torch.tensor([[1], [0], [1]], dtype=torch.bool)
    c = torch.arange(6, dtype=torch.long).reshape(3, 2)
    got = host_copy(a, b, c)
    assert [g.shape for g in got] == [(3, 2, 2), (3, 1), (3, 2)]
    assert all(g.dtype == np.float64 for g in got)
    np.testing.assert_array_equal(got[0], a.numpy())
    np.testing.assert_array_equal(got[1], [[1.0], [0.0], [1.0]])
    np.testing.assert_array_equal(got[2], c.numpy())


def test_host_rows_and_to_device_on_the_cpu():
    rows = host_rows(np.array([False, True, False, True]), torch.device("cpu"))
    assert rows.dtype == torch.long and rows.tolist() == [1, 3]
    out = torch.zeros(2, 3)
    to_device(torch.arange(6.0).reshape(2, 3), out[:, :])
    assert torch.equal(out, torch.arange(6.0).reshape(2, 3))
