"""Tests for comixup.mixers.manifold: Manifold Mixup (Verma et al., ICML 2019; recipes 4)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from mixer_helpers import TinyNet
from torch import nn

from comixup.mixers.manifold import ManifoldMixup
from comixup.mixers.mixup import mix_pair, sample_lambda

FAST = settings(max_examples=20, deadline=None)


class IgnoresMixFn(TinyNet):
    def forward(self, x, mix_depth=None, mix_fn=None):
        return super().forward(x)


class MixesTwice(TinyNet):
    def forward(self, x, mix_depth=None, mix_fn=None):
        return super().forward(mix_fn(x), mix_depth=mix_depth, mix_fn=mix_fn)


def replay(seed: int, usable, alpha: float, b: int):
    """Replay the draws: depth, lambda, permutation."""
    g = torch.Generator().manual_seed(seed)
    depth = usable[int(torch.randint(0, len(usable), (1,), generator=g))]
    lam = sample_lambda(alpha, g)
    perm = torch.randperm(b, generator=g)
    return depth, lam, perm


def manual_forward(model: TinyNet, x, depth, perm, lam):
    """Run the model mixing the hidden state at ``depth`` by hand."""
    return TinyNet.forward(model, x, mix_depth=depth, mix_fn=lambda h: mix_pair(h, perm, lam))


@pytest.mark.parametrize("seed", range(6))
def test_mixes_at_the_chosen_depth_only(seed):
    torch.manual_seed(0)
    model = TinyNet()
    x = torch.randn(6, 3, 5, 5)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    mm = ManifoldMixup(4, generator=torch.Generator().manual_seed(seed))
    logits, y_mix, params = mm.forward_mixed(model, x, y, return_info=True)
    depth, lam, perm = replay(seed, (0, 1, 2), 2.0, 6)
    assert model.calls == [depth] and params.depth == depth
    with torch.no_grad():
        expected = manual_forward(model, x, depth, perm, lam)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    onehot = torch.nn.functional.one_hot(y, 4).float()
    assert torch.equal(y_mix, lam * onehot + (1 - lam) * onehot[perm])


def test_depths_are_drawn_uniformly_from_the_usable_ones():
    model = TinyNet()
    x = torch.randn(3, 3, 4, 4)
    y = torch.tensor([0, 1, 2])
    mm = ManifoldMixup(4, generator=torch.Generator().manual_seed(0))
    counts = {0: 0, 1: 0, 2: 0}
    for _ in range(150):
        depth = mm.forward_mixed(model, x, y, return_info=True)[2].depth
        counts[depth] += 1
        assert model.calls[-1] == depth
    assert len(model.calls) == 150  # exactly one mix per forward
    assert all(c > 25 for c in counts.values()), counts


def test_depths_are_intersected_with_the_model_depths():
    model = TinyNet(mix_depths=(0, 2))
    mm = ManifoldMixup(4, depths=(1, 2), generator=torch.Generator().manual_seed(0))
    assert mm.usable_depths(model) == (2,)
    x = torch.randn(4, 3, 4, 4)
    for _ in range(10):
        mm.forward_mixed(model, x, torch.tensor([0, 1, 2, 3]))
    assert model.calls == [2] * 10


def test_mix_at_the_hidden_state_is_the_convex_combination():
    torch.manual_seed(0)
    model = TinyNet()
    x = torch.randn(5, 3, 4, 4)
    seed = next(s for s in range(100) if replay(s, (0, 1, 2), 2.0, 5)[0] == 1)
    mm = ManifoldMixup(4, generator=torch.Generator().manual_seed(seed))
    captured = {}

    class Spy(TinyNet):
        def forward(self, x, mix_depth=None, mix_fn=None):
            def spy(h):
                out = mix_fn(h)
                captured["in"], captured["out"] = h.detach(), out.detach()
                return out

            return super().forward(x, mix_depth=mix_depth, mix_fn=spy)

    spy = Spy()
    spy.load_state_dict(model.state_dict())
    mm.forward_mixed(spy, x, torch.arange(5) % 4)
    _, lam, perm = replay(seed, (0, 1, 2), 2.0, 5)
    assert captured["in"].shape == (5, 4, 4, 4)  # the stage-1 hidden state, not the input
    assert torch.equal(captured["out"], lam * captured["in"] + (1 - lam) * captured["in"][perm])


def test_determinism_with_a_fixed_generator():
    torch.manual_seed(0)
    model = TinyNet()
    x = torch.randn(6, 3, 5, 5)
    y = torch.randint(0, 4, (6,))
    a = ManifoldMixup(4, generator=torch.Generator().manual_seed(8)).forward_mixed(model, x, y)
    b = ManifoldMixup(4, generator=torch.Generator().manual_seed(8)).forward_mixed(model, x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_gradients_flow_through_the_mix():
    model = TinyNet()
    x = torch.randn(4, 3, 4, 4)
    logits, y_mix = ManifoldMixup(4, generator=torch.Generator().manual_seed(1)).forward_mixed(
        model, x, torch.tensor([0, 1, 2, 3])
    )
    loss = torch.sum(-y_mix * torch.log_softmax(logits, dim=1), dim=1).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_batch_of_one_runs_unmixed_with_one_hot_target():
    model = TinyNet()
    x = torch.randn(1, 3, 4, 4)
    mm = ManifoldMixup(4, generator=torch.Generator().manual_seed(0))
    logits, y_mix, params = mm.forward_mixed(model, x, torch.tensor([2]), return_info=True)
    assert model.calls == [] and params.depth is None
    torch.testing.assert_close(logits, model(x))
    assert torch.equal(y_mix, torch.tensor([[0.0, 0, 1, 0]]))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_dtypes(dtype):
    model = TinyNet().to(dtype)
    x = torch.randn(4, 3, 4, 4).to(dtype)
    logits, y_mix = ManifoldMixup(4, generator=torch.Generator().manual_seed(0)).forward_mixed(
        model, x, torch.tensor([0, 1, 2, 3])
    )
    assert logits.dtype == dtype and y_mix.dtype == dtype
    tol = 1e-2 if dtype == torch.bfloat16 else 1e-9
    torch.testing.assert_close(
        y_mix.double().sum(1), torch.ones(4, dtype=torch.float64), rtol=0, atol=tol
    )


@FAST
@given(
    b=st.integers(1, 6),
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    alpha=st.sampled_from([0.2, 1.0, 2.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_targets_sum_to_one_and_logits_finite(b, h, w, alpha, seed):
    gen = torch.Generator().manual_seed(seed)
    model = TinyNet()
    x = torch.randn(b, 3, h, w, generator=gen)
    y = torch.randint(0, 4, (b,), generator=gen)
    with torch.no_grad():
        logits, y_mix = ManifoldMixup(4, alpha=alpha, generator=gen).forward_mixed(model, x, y)
    assert logits.shape == (b, 4) and y_mix.shape == (b, 4)
    assert torch.isfinite(logits).all() and torch.isfinite(y_mix).all()
    torch.testing.assert_close(y_mix.sum(1), torch.ones(b), rtol=0, atol=1e-6)
    assert len(model.calls) == (1 if b > 1 else 0)


def test_contract_violations_raise():
    x = torch.randn(3, 3, 4, 4)
    y = torch.tensor([0, 1, 2])
    mm = ManifoldMixup(4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError, match="mix_fn"):
        mm.forward_mixed(IgnoresMixFn(), x, y)
    with pytest.raises(RuntimeError, match="mix_fn"):
        mm.forward_mixed(MixesTwice(), x, y)
    with pytest.raises(TypeError, match="mix_depths"):
        mm.forward_mixed(nn.Identity(), x, y)
    with pytest.raises(ValueError, match="depths"):
        ManifoldMixup(4, depths=(3,)).forward_mixed(TinyNet(), x, y)
    with pytest.raises(TypeError, match="model"):
        mm.forward_mixed("model", x, y)


@pytest.mark.parametrize(
    "kwargs, exc, word",
    [
        ({"num_classes": 0}, ValueError, "num_classes"),
        ({"num_classes": 3, "alpha": 0.0}, ValueError, "alpha"),
        ({"num_classes": 3, "alpha": "2"}, TypeError, "alpha"),
        ({"num_classes": 3, "depths": ()}, ValueError, "depths"),
        ({"num_classes": 3, "depths": (0, -1)}, ValueError, "depths"),
        ({"num_classes": 3, "depths": (0, 0)}, ValueError, "depths"),
        ({"num_classes": 3, "depths": (0, 1.0)}, TypeError, "depths"),
        ({"num_classes": 3, "depths": 1}, TypeError, "depths"),
        ({"num_classes": 3, "depths": "012"}, TypeError, "depths"),
        ({"num_classes": 3, "generator": 3}, TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(kwargs, exc, word):
    with pytest.raises(exc, match=word):
        ManifoldMixup(**kwargs)


def test_bad_call_arguments():
    mm = ManifoldMixup(4)
    with pytest.raises(ValueError, match="x"):
        mm.forward_mixed(TinyNet(), torch.zeros(3, 4, 4), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="y"):
        mm.forward_mixed(TinyNet(), torch.zeros(3, 3, 4, 4), torch.tensor([0, 1, 9]))
