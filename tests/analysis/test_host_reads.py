"""comixup.analysis.host_reads: what a per-batch call reads back to the host.

A read of a value computed from the batch is a device synchronisation on a GPU; the mixers make
none (Input Mixup, CutMix, their k-input variants, Manifold Mixup) or only the one copy the CPU
solver needs (Co-Mixup), when their value checks are off as they are for device tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from comixup import mixers
from comixup.analysis.host_reads import count_host_reads
from comixup.saliency import realistic_saliency


def _batch(b=8, size=16, k=5):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, size, size, generator=g)
    y = torch.randint(0, k, (b,), generator=g)
    sal = torch.from_numpy(realistic_saliency(b, size, rng=np.random.default_rng(0))).float()
    return x, y, sal


def test_counts_reads_of_derived_values_only():
    x = torch.rand(4, 3)
    gen = torch.Generator().manual_seed(0)

    def fn():
        float(x.sum())  # a read of the batch: counted twice (scalar and batch)
        (x * 2).tolist()  # a list of batch values: counted as a batch read
        x.mean(0).numpy()  # likewise
        int(torch.randint(0, 5, (1,), generator=gen))  # a generator draw: a scalar read only
        torch.zeros(3).tolist()  # unrelated to the batch: not counted

    reads = count_host_reads(fn, [x])
    assert reads.scalar == 2
    assert reads.batch == 3
    assert reads.ops[0] == "scalar read of sum"
    assert torch.Tensor.tolist(torch.ones(2)) == [1.0, 1.0]  # the patch is gone


def test_bad_arguments():
    with pytest.raises(TypeError, match="fn must be callable"):
        count_host_reads(3)
    with pytest.raises(TypeError, match=r"tracked\[0\]"):
        count_host_reads(lambda: None, [np.zeros(2)])


#: The most batch reads a call may make with value checks off: the copy a CPU solver needs.
EXPECTED = {"vanilla": 0, "mixup": 0, "cutmix": 0, "mixup3": 0, "mixup4": 0, "cutmix3": 0,
            "cutmix4": 0, "comixup": 1, "fmix": 0, "resizemix": 0,
            "saliencymix": 1, "guidedmixup-sr": 1, "guidedmixup-ap": 1}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_mixers_read_nothing_back_but_the_solver_copy(name):
    x, y, sal = _batch()
    options = {"workers": 1} if name == "comixup" else {}
    mixer = mixers.create(name, 5, generator=torch.Generator().manual_seed(0), **options)
    args = (x, y, sal) if mixer.uses_saliency else (x, y)
    reads = count_host_reads(lambda: mixer(*args, validate=False), [x, y, sal])
    assert reads.batch == EXPECTED[name], reads.ops
    # on CPU tensors the default checks the values too (reading them costs no sync there)
    checked = count_host_reads(lambda: mixer(*args), [x, y, sal])
    assert checked.batch > reads.batch


def test_manifold_mixup_in_a_model_reads_nothing_back():
    from comixup import models

    x, y, _ = _batch()
    model = models.create("preactresnet18", 5, initial_channels=4)
    mixer = mixers.create("manifold", 5, generator=torch.Generator().manual_seed(0))
    tracked = [x, y, *model.parameters(), *model.buffers()]
    reads = count_host_reads(lambda: mixer.forward_mixed(model, x, y, validate=False), tracked)
    assert reads.batch == 0, reads.ops


def test_value_checks_run_on_cpu_by_default_and_can_be_forced_off():
    x, y, _ = _batch()
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    mixer = mixers.create("mixup", 5)
    with pytest.raises(ValueError, match="x contains NaN"):
        mixer(bad, y)
    with pytest.raises(ValueError, match="out of range"):
        mixer(x, torch.full_like(y, 7))
    mixer(bad, y, validate=False)  # the caller's choice: no read, no check
    with pytest.raises(TypeError, match="validate"):
        mixer(x, y, validate="yes")


def test_counts_ops_whose_output_size_depends_on_values():
    x = torch.tensor([0.5, -1.0, 2.0, 0.0])
    idx = torch.tensor([1, 0, 1])

    def fn():
        m = x > 0
        x[m]  # a boolean mask: counted
        x[m] = 1.0  # so is a masked write
        m.nonzero()
        idx.unique()
        torch.bincount(idx, minlength=3)  # a minlength does not fix the size: counted
        x.masked_select(m)
        idx.repeat_interleave(idx)  # repeats given by a tensor
        x[idx]  # a long index: sizes known, not counted
        x.repeat_interleave(2)
        idx.repeat_interleave(idx, output_size=2)  # the size given: not counted

    reads = count_host_reads(fn, [x])
    assert reads.size_ops == ["index", "index_put_", "nonzero", "_unique2", "bincount",
                              "masked_select", "repeat_interleave"]
    assert reads.sizes == 7 and reads.batch == 0


@pytest.mark.parametrize("grid", [2, 4, 8, 16])
def test_solvers_count_on_the_host_and_transport_with_few_size_reads(grid):
    # Co-Mixup computes its cell areas arithmetically (no bincount on the device); Puzzle Mix's
    # transport lists its active blocks once and then reads two sizes per round (the blocks
    # that lost a claim, the owners that became active), and its move of the blocks one
    from comixup.mixers.puzzlemix import _geometry

    x, y, sal = _batch(b=8, size=32)
    for name in ("comixup", "puzzlemix"):
        mixer = mixers.create(name, 5, grid=grid, workers=1,
                              generator=torch.Generator().manual_seed(0))
        reads = count_host_reads(lambda m=mixer: m(x, y, sal, validate=False), [x, y, sal])
        assert reads.batch == 1, reads.ops  # the solver's copy
        if name == "comixup":
            assert reads.sizes == 0, reads.size_ops
        else:
            rounds = _geometry(32, 32, grid, mixer.neigh_size, mixer.t_size, True)[3]
            assert set(reads.size_ops) == {"nonzero"}
            assert reads.sizes <= 2 + 2 * (rounds - 1), reads.size_ops
