"""comixup.TrainStep: one call per batch in the user's own loop, the step the engine runs."""

from __future__ import annotations

import contextlib

import pytest
import torch

from comixup import CoMixup, CutMix, ManifoldMixup, TrainStep, models

C = 5


def _net(seed=0):
    torch.manual_seed(seed)
    return models.create("preactresnet18", C, initial_channels=4)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(6, 3, 16, 16, generator=g), torch.randint(0, C, (6,), generator=g)


@pytest.mark.parametrize("name", ["vanilla", "mixup", "cutmix", "manifold", "comixup",
                                  "puzzlemix", "vat"])
def test_a_step_equals_the_methods_step(name):
    x, y = _batch()
    a, b = _net(), _net()
    options = {"std": [0.25] * 3} if name in ("puzzlemix", "vat") else {}
    loss = TrainStep(name, C, seed=3, **options)(a, x, y)
    backward = lambda loss: loss.backward()  # noqa: E731 - the method's own interface
    expected = TrainStep(name, C, seed=3, **options).method.step(b, x, y, backward)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and not loss.requires_grad
    assert torch.equal(loss, expected)
    for p, q in zip(a.parameters(), b.parameters()):
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert torch.equal(p.grad, q.grad)


def test_backward_and_no_sync_are_the_callers():
    x, y = _batch()
    seen, entered = [], []

    @contextlib.contextmanager
    def no_sync():
        entered.append(True)
        yield

    def backward(loss):
        seen.append(float(loss.detach()))
        (2 * loss).backward()

    step = TrainStep("comixup", C, backward=backward, no_sync=no_sync)
    model = _net()
    step(model, x, y)
    assert len(seen) == 2 and entered == [True]  # clean then mixed; the first without sync
    step(model, x, y, backward=lambda loss: seen.append(None) or loss.backward())
    assert seen[-2:] == [None, None]


def test_a_mixer_picks_its_step():
    x, y = _batch()
    gen = torch.Generator().manual_seed(0)
    step = TrainStep(CoMixup(C, generator=gen), clean_lam=0.5)
    assert type(step.method).__name__ == "SaliencyStep" and step.name == "comixup"
    assert step.method.clean_lam == 0.5
    assert step.mixer.generator is gen and step.method.generator is gen
    assert type(TrainStep(CutMix(C)).method).__name__ == "MixStep"
    assert TrainStep(CutMix(C)).name == "cutmix"
    assert type(TrainStep(ManifoldMixup(C, k=3)).method).__name__ == "ManifoldStep"
    assert TrainStep(ManifoldMixup(C, k=3)).name == "manifold3"
    assert torch.isfinite(step(_net(), x, y))
    with pytest.raises(ValueError, match="the mixer's own options are set on the mixer"):
        TrainStep(CutMix(C), alpha=0.2)


def test_state_round_trips():
    x, y = _batch()
    a = TrainStep("cutmix", C, seed=7)
    state = a.state_dict()
    first = a(_net(), x, y)
    a.load_state_dict(state)
    assert torch.equal(a(_net(), x, y), first)


def test_bad_arguments():
    with pytest.raises(TypeError, match="num_classes is required"):
        TrainStep("comixup")
    with pytest.raises(TypeError, match="method must be"):
        TrainStep(3, C)
    with pytest.raises(TypeError, match="backward must be callable"):
        TrainStep("mixup", C, backward=1)
    with pytest.raises(ValueError, match="method must be one of"):
        TrainStep("nope", C)
    with pytest.raises(TypeError, match="method must be a method name or a Mixer, got TrainStep"):
        TrainStep(TrainStep("mixup", C))
    with pytest.raises(TypeError, match="memory_format must be"):
        TrainStep("mixup", C, memory_format="channels_last")
