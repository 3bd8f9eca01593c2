"""CoMixup's random-labeling control: valid labelings, the requested statistics, no saliency."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from comixup import CoMixup
from comixup.mixers.comixup import dense_labelings, mix, random_sources, top_sources


def _bounds(batch, partition):
    return [(s, min(s + partition, batch)) for s in range(0, batch, partition)]


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 40), partition=st.integers(1, 20), grid=st.integers(1, 6),
       inputs=st.floats(1.0, 8.0), mixed=st.floats(0.0, 1.0), levels=st.sampled_from([2, 3, 4, 5]),
       seed=st.integers(0, 2**31 - 1))
def test_random_labelings_are_valid(batch, partition, grid, inputs, mixed, levels, seed):
    bounds = _bounds(batch, partition)
    index, weight = random_sources(bounds, grid, inputs, mixed, levels,
                                   np.random.default_rng(seed))
    assert index.shape == weight.shape == (batch, grid, grid, 2)
    np.testing.assert_allclose(weight.sum(-1), 1.0)
    assert (weight[..., 0] >= weight[..., 1]).all() and (weight[..., 1] >= 0).all()
    # a cell mixes two distinct inputs exactly when its second weight is positive, at a level
    mixes = weight[..., 1] > 0
    assert (index[..., 0] != index[..., 1])[mixes].all()
    assert (index[..., 0] == index[..., 1])[~mixes].all()
    allowed = {max(lv, levels - 1 - lv) / (levels - 1) for lv in range(levels)}
    assert set(np.round(weight[..., 0].ravel(), 9)) <= {round(a, 9) for a in allowed}
    if levels == 2:
        assert not mixes.any()
    cells = grid * grid
    for a, b in bounds:
        assert ((index[a:b] >= a) & (index[a:b] < b)).all()  # each output mixes its partition
        for j in range(a, b):
            used = np.unique(index[j])
            k = len(np.unique(index[j, ..., 0]))
            assert len(used) == k  # a mixed cell's second input is one of the output's inputs
            lo = min(int(np.floor(inputs)), b - a, cells)
            hi = min(int(np.ceil(inputs)), b - a, cells)
            assert max(lo, 1) <= k <= max(hi, 1)


def test_random_labelings_have_the_requested_statistics():
    bounds = _bounds(20000, 20)
    index, weight = random_sources(bounds, 4, 2.6, 0.22, 3, np.random.default_rng(0))
    counts = np.array([len(np.unique(row)) for row in index.reshape(len(index), -1)])
    assert counts.mean() == pytest.approx(2.6, abs=0.02)
    assert set(counts) == {2, 3}
    assert (weight[..., 1] > 0).mean() == pytest.approx(0.22, abs=0.005)
    assert set(np.unique(weight)) == {0.0, 0.5, 1.0}  # three levels: a mixed cell is 50/50


def test_dense_labelings_invert_top_sources():
    bounds = _bounds(13, 5)
    index, weight = random_sources(bounds, 3, 2.5, 0.4, 4, np.random.default_rng(1))
    for (a, b), z in zip(bounds, dense_labelings(index, weight, bounds)):
        assert z.shape == (b - a, 3, 3, b - a)
        np.testing.assert_allclose(z.sum(-1), 1.0)
        got_index, got_weight = top_sources(z, offset=a)
        np.testing.assert_allclose(got_weight, weight[a:b])
        single = weight[a:b, ..., 1] == 0
        assert (got_index[..., 0] == index[a:b, ..., 0]).all()
        assert (got_index[..., 1] == index[a:b, ..., 1])[~single].all()


def _control(seed=0, **kw):
    return CoMixup(10, labeling="random", random_inputs=2.6, random_mixed=0.2,
                   generator=torch.Generator().manual_seed(seed), **kw)


class _Untouchable(torch.Tensor):
    """A saliency map that fails on any use."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        raise AssertionError(f"the random control used the saliency ({func.__name__})")


def test_the_random_control_never_reads_the_saliency():
    x = torch.rand(12, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(12) % 10
    params = _control().sample_params(x, y, None)  # no saliency at all
    assert params.ratios.shape == (12, 12)
    sal = torch.rand(12, 16, 16).as_subclass(_Untouchable)
    with pytest.raises(AssertionError, match="used the saliency"):
        sal.sum()
    again = _control().sample_params(x, y, sal)
    assert torch.equal(params.ratios, again.ratios) and torch.equal(params.index, again.index)
    # through the public call, two unrelated saliency maps give the same batch and targets
    one = _control()(x, y, torch.rand(12, 16, 16))
    two = _control()(x, y, torch.zeros(12, 16, 16))
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    np.testing.assert_allclose(one[1].sum(1).numpy(), 1.0, rtol=1e-6)


def test_the_random_control_mixes_by_its_labeling():
    x = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8)
    mixed, targets, params = _control(grid=4)(x, y, torch.rand(8, 8, 8), return_info=True)
    # the same image and target arithmetic as the solver's labelings
    expected, soft, _ = mix(x, torch.nn.functional.one_hot(y, 10).float(), params.index,
                            params.weight)
    torch.testing.assert_close(mixed, expected)
    torch.testing.assert_close(targets, soft)
    assert "labeling='random'" in repr(_control())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"labeling": "greedy"}, ValueError, "labeling"),
    ({"labeling": "random"}, ValueError, "random_inputs"),
    ({"labeling": "random", "random_inputs": 2.0}, ValueError, "random_mixed"),
    ({"labeling": "random", "random_inputs": 0.5, "random_mixed": 0.1}, ValueError,
     "random_inputs"),
    ({"labeling": "random", "random_inputs": 2.0, "random_mixed": 1.5}, ValueError,
     "random_mixed"),
    ({"labeling": "random", "random_inputs": "2", "random_mixed": 0.1}, TypeError,
     "random_inputs"),
    ({"random_inputs": 2.0}, ValueError, "labeling='random' only"),
])
def test_bad_control_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        CoMixup(10, **kwargs)
