"""Tests for comixup.mixers.base: the protocol shared by every mixer.

One base class (:class:`Mixer`) and one ``__call__``; ``sample_params`` makes the draws and
``apply`` is deterministic and works for any channel count, so the same parameters mix a stack
of per-source masks; ``return_info=True`` returns one :class:`MixParams` with ``ratios``.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from comixup.mixers import (
    CoMixup,
    CutMix,
    InputMixup,
    ManifoldMixup,
    Mixer,
    MixParams,
    MultiCutMix,
    MultiInputMixup,
    PuzzleMix,
)
from comixup.vat import VAT

K = 5


def _mixers(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return {
        "mixup": InputMixup(K, generator=gen),
        "cutmix": CutMix(K, generator=gen),
        "mixup3": MultiInputMixup(K, k=3, generator=gen),
        "cutmix3": MultiCutMix(K, k=4, generator=gen),
        "manifold": ManifoldMixup(K, k=3, generator=gen),
        "puzzlemix": PuzzleMix(K, workers=1, generator=gen),
        "comixup": CoMixup(K, partition=4, workers=1, generator=gen),
    }


NAMES = list(_mixers())


def _batch(b: int = 6, size: int = 16):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(b, 3, size, size, generator=g)
    y = torch.randint(0, K, (b,), generator=g)
    sal = torch.rand(b, size, size, generator=g) ** 2
    return x, y, sal


def _args(mixer, x, y, sal):
    return (x, y, sal) if mixer.uses_saliency else (x, y)


def test_every_mixer_shares_the_base_class_and_its_call():
    for name, mixer in _mixers().items():
        assert isinstance(mixer, Mixer), name
        assert type(mixer).__call__ is Mixer.__call__, name
    assert not isinstance(VAT(), Mixer)  # a regularizer, not a mixer


@pytest.mark.parametrize("name", NAMES)
def test_return_info_gives_the_params_with_source_ratios(name):
    mixer = _mixers()[name]
    x, y, sal = _batch()
    x_mix, y_mix, info = mixer(*_args(mixer, x, y, sal), return_info=True)
    assert isinstance(info, MixParams)
    assert info.ratios.shape == (6, 6)
    with pytest.raises(TypeError):  # a dataclass: fields are attributes, not items
        info["ratios"]
    assert bool((info.ratios >= 0).all())
    torch.testing.assert_close(info.ratios.sum(1), torch.ones(6, dtype=info.ratios.dtype))
    # the soft targets are the ratios times the one-hot labels
    onehot = nn.functional.one_hot(y, K).to(info.ratios.dtype)
    torch.testing.assert_close(y_mix, (info.ratios @ onehot).to(y_mix.dtype))
    assert x_mix.shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_call_is_sample_params_then_apply(name):
    x, y, sal = _batch()
    first, second = _mixers(3)[name], _mixers(3)[name]
    x_mix, y_mix = first(*_args(first, x, y, sal))
    targets = nn.functional.one_hot(y, K).float()
    params = second.sample_params(x, targets, sal if second.uses_saliency else None)
    x2, y2 = second.apply(x, targets, params)
    assert torch.equal(x_mix, x2) and torch.equal(y_mix, y2)
    # apply is deterministic: no draw from the generator, the same result twice
    state = second.generator.get_state()
    x3, y3 = second.apply(x, targets, params)
    assert torch.equal(x2, x3) and torch.equal(y2, y3)
    assert torch.equal(second.generator.get_state(), state)
    assert second.apply(x, None, params)[1] is None


@pytest.mark.parametrize("name", NAMES)
def test_the_same_params_mix_a_stack_of_per_source_masks(name):
    """Source masks of all ones, one channel per input: after mixing with the batch's
    parameters, channel ``i`` of output ``j`` averages to the share of input ``i`` in it."""
    mixer = _mixers(5)[name]
    x, y, sal = _batch()
    _, _, params = mixer(*_args(mixer, x, y, sal), return_info=True)
    masks = torch.eye(6)[:, :, None, None].expand(6, 6, 16, 16).contiguous()
    mixed, _ = mixer.apply(masks, None, params)
    assert mixed.shape == (6, 6, 16, 16)
    torch.testing.assert_close(mixed.mean((2, 3)), params.ratios.float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_batch_of_one_is_returned_unmixed(name):
    mixer = _mixers()[name]
    x, y, sal = _batch(1)
    state = torch.get_rng_state()
    x_mix, y_mix, info = mixer(*_args(mixer, x, y, sal), return_info=True)
    assert torch.equal(x_mix, x) and x_mix is not x
    assert torch.equal(y_mix, nn.functional.one_hot(y, K).float())
    assert info.ratios.tolist() == [[1.0]]
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("name", NAMES)
def test_saliency_and_model_arguments_are_checked(name):
    mixer = _mixers()[name]
    x, y, sal = _batch()
    if mixer.uses_saliency:
        with pytest.raises(TypeError, match="saliency"):
            mixer(x, y)
    else:
        with pytest.raises(TypeError, match="saliency"):
            mixer(x, y, sal)
    with pytest.raises(TypeError, match="model"):  # mixing inside a model is not a call
        mixer(*_args(mixer, x, y, sal), model=nn.Identity())


class _Net(nn.Module):
    mix_depths = (0, 1)

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, K)

    def forward(self, x, mix_depth=None, mix_fn=None):
        if mix_depth == 0:
            x = mix_fn(x)
        h = torch.relu(self.conv(x))
        if mix_depth == 1:
            h = mix_fn(h)
        return self.fc(h.mean((2, 3)))


def test_manifold_mixup_mixes_inside_the_model_through_the_same_call():
    x, y, _ = _batch()
    net = _Net()
    a = ManifoldMixup(K, k=3, generator=torch.Generator().manual_seed(1))
    b = ManifoldMixup(K, k=3, generator=torch.Generator().manual_seed(1))
    logits, y_mix, params = a.forward_mixed(net, x, y, return_info=True)
    assert params.depth in (0, 1)
    logits2, y_mix2 = b.forward_mixed(net, x, y)
    assert torch.equal(logits, logits2) and torch.equal(y_mix, y_mix2)
    # the documented way to mix inside a model by hand
    c = ManifoldMixup(K, k=3, generator=torch.Generator().manual_seed(1))
    targets = nn.functional.one_hot(y, K).float()
    p = c.sample_params(x, targets, depths=c.usable_depths(net))
    logits3 = net(x, mix_depth=p.depth, mix_fn=lambda h: c.apply(h, None, p)[0])
    assert torch.equal(logits, logits3) and torch.equal(c.apply(x, targets, p)[1], y_mix)
