"""comixup.tools._measure: peak memory, explicit waits and the settings a benchmark restores."""

import pytest
import torch

from comixup import validation
from comixup.mixers._host import to_host
from comixup.tools._measure import ExplicitWaits, PeakMemory, Settings

CPU = torch.device("cpu")


def test_peak_rss_of_nested_blocks_covers_what_they_enclose():
    with PeakMemory(CPU) as outer:
        big = torch.ones(40_000_000)  # 160 MB, freed before the inner block
        del big
        with PeakMemory(CPU) as inner:
            small = torch.ones(1_000_000)
            del small
    if inner.figures()["rss_scope"] == "process":
        pytest.skip("the peak resident set cannot be reset here")
    # the outer block saw the 160 MB the inner block did not: its reset did not lose them
    assert outer.figures()["peak_rss_mib"] >= inner.figures()["peak_rss_mib"] + 100
    assert outer.figures()["rss_scope"] == "block"


def test_peak_memory_on_cuda_reads_the_allocator_after_resetting_it(monkeypatch):
    calls = []
    peaks = iter([100 * 2**20, 300 * 2**20, 120 * 2**20, 400 * 2**20])
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda d: calls.append(("reset", d)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d: next(peaks))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda d: next(peaks))
    device = torch.device("cuda:1")
    with PeakMemory(device) as meter:
        pass
    assert calls == [("reset", device)]
    assert meter.figures() == {"peak_allocated_mib": 120.0, "peak_reserved_mib": 400.0}


def test_explicit_waits_count_the_wait_of_a_host_copy(monkeypatch):
    # to_host of a (stand-in) CUDA tensor waits on its copy's event: one explicit wait, which
    # torch.cuda.set_sync_debug_mode does not report
    class FakeTensor:
        device = torch.device("cuda:0")
        shape = (2,)
        dtype = torch.float32

    class FakeHost:
        def copy_(self, src, non_blocking=False):
            pass

    class FakeEvent:
        def record(self, stream=None):
            pass

        def synchronize(self):
            pass

    monkeypatch.setattr(torch, "empty", lambda *a, **k: FakeHost())
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    original = FakeEvent.synchronize
    with ExplicitWaits() as waits:
        to_host(FakeTensor())
        to_host(FakeTensor())
        torch.cuda.synchronize()
    assert waits.count == 3
    assert FakeEvent.synchronize is original  # unwrapped after the block
    to_host(FakeTensor())
    assert waits.count == 3


def test_settings_are_restored_after_an_error_and_the_changes_reported():
    before = Settings.read()
    with pytest.raises(RuntimeError, match="inside"):
        with Settings() as settings:
            torch.backends.cudnn.benchmark = not before["cudnn.benchmark"]
            torch.set_float32_matmul_precision("medium")
            validation("never")
            raise RuntimeError("inside")
    assert Settings.read() == before
    assert settings.changed == {
        "cudnn.benchmark": (not before["cudnn.benchmark"], before["cudnn.benchmark"]),
        "float32_matmul_precision": ("medium", before["float32_matmul_precision"]),
        "validation": ("never", before["validation"])}
    with Settings() as settings:
        pass
    assert settings.changed == {}
