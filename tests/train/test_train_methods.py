"""comixup.train.methods: the method interface, the losses and the saliency step."""

import importlib
import sys
import types
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from comixup import models
from comixup.train import methods as M
from comixup.train.methods import METHODS, create_method, soft_cross_entropy, softmax_bce

C = 10


def net():
    torch.manual_seed(0)
    return models.create("lenet", C, in_channels=3)


def batch(b=8, size=16):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 3, size, size, generator=g), torch.randint(0, C, (b,), generator=g)


class Recorder:
    """A ``backward`` that records the losses and backpropagates them."""

    def __init__(self, factor=1.0):
        self.losses = []
        self.factor = factor

    def __call__(self, loss):
        self.losses.append(loss.detach().clone())
        (loss * self.factor).backward()


# -- a temporary stand-in mixer for the saliency methods (used only in these tests) ------------


class StandInSaliencyMixer:
    """Records the saliency it was called with; returns a fixed soft-target batch."""

    calls: ClassVar[list] = []

    def __init__(self, num_classes, *, generator=None, strength=0.5):
        self.num_classes = num_classes
        self.generator = generator
        self.strength = strength

    def __call__(self, x, y, saliency):
        StandInSaliencyMixer.calls.append(saliency.clone())
        t = F.one_hot(y, self.num_classes).to(x.dtype)
        return x.flip(0) * self.strength + x * (1 - self.strength), 0.5 * t + 0.5 * t.flip(0)


@pytest.fixture
def standin(monkeypatch):
    module = types.ModuleType("standin_saliency_mixer")
    module.Mixer = StandInSaliencyMixer
    monkeypatch.setitem(sys.modules, "standin_saliency_mixer", module)
    monkeypatch.setattr(M.CoMixupMethod, "mixer_module", "standin_saliency_mixer")
    monkeypatch.setattr(M.CoMixupMethod, "mixer_class", "Mixer")
    StandInSaliencyMixer.calls = []
    return StandInSaliencyMixer


# -- registry and options ----------------------------------------------------------------------


def test_registry_names():
    for name in ("vanilla", "comixup", "mixup", "manifold", "cutmix", "mixup3", "mixup4",
                 "cutmix3", "cutmix4", "puzzlemix"):
        assert name in METHODS
    assert all(isinstance(cls, type) and issubclass(cls, M.Method) for cls in METHODS.values())


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="method must be one of"):
        create_method("nope", C)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['foo'\].*'alpha'.*'loss'"):
        create_method("mixup", C, foo=1)
    with pytest.raises(ValueError, match="vanilla"):
        create_method("vanilla", C, alpha=1.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        create_method("cutmix", C, loss="mse")
    with pytest.raises(ValueError, match="num_classes"):
        create_method("vanilla", 1)
    with pytest.raises(ValueError, match="seed"):
        create_method("vanilla", C, seed=-1)


def test_multi_input_methods_set_k():
    assert create_method("mixup4", C).mixer.k == 4
    assert create_method("cutmix3", C).mixer.k == 3


def test_missing_mixer_module_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(M.PuzzleMixMethod, "mixer_module", "comixup.mixers.not_there")
    with pytest.raises(ImportError, match="puzzlemix.*comixup.mixers.not_there.PuzzleMix"):
        create_method("puzzlemix", C)


def test_real_puzzlemix_step():
    try:
        importlib.import_module("comixup.mixers.puzzlemix")
    except ImportError as exc:
        pytest.skip(f"comixup.mixers.puzzlemix does not import yet: {exc}")
    model = net()
    x, y = batch(b=8, size=16)
    rec = Recorder()
    method = create_method("puzzlemix", C, seed=0, mean=[0.5] * 3, std=[0.25] * 3)
    loss = method.step(model, x, y, rec)
    assert len(rec.losses) == 2 and loss > 0
    assert method.mixer.std.tolist() == [0.25] * 3
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# -- losses --------------------------------------------------------------------------------------


def test_losses():
    logits = torch.randn(5, C)
    t = torch.softmax(torch.randn(5, C), 1)
    p = torch.softmax(logits, 1)
    bce = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    assert softmax_bce(logits, t).item() == pytest.approx(bce.item(), rel=1e-5)
    ce = -(t * torch.log_softmax(logits, 1)).sum(1).mean()
    assert soft_cross_entropy(logits, t).item() == pytest.approx(ce.item(), rel=1e-6)
    y = torch.randint(0, C, (5,))
    assert soft_cross_entropy(logits, F.one_hot(y, C).float()).item() == pytest.approx(
        F.cross_entropy(logits, y).item(), rel=1e-6)


# -- steps -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vanilla", "mixup", "cutmix", "manifold", "mixup3", "cutmix4"])
def test_step_backpropagates_once(name):
    model = net()
    x, y = batch()
    rec = Recorder()
    loss = create_method(name, C, seed=3).step(model, x, y, rec)
    assert isinstance(loss, float) and loss > 0
    assert len(rec.losses) == 1 and rec.losses[0].item() == pytest.approx(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_vanilla_is_cross_entropy():
    model = net()
    x, y = batch()
    loss = create_method("vanilla", C).step(model, x, y, Recorder())
    assert loss == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)


def test_generator_state_roundtrip():
    x, y = batch()
    method = create_method("mixup", C, seed=5)
    state = method.state_dict()
    assert state["generator"].dtype == torch.uint8
    first = method.mixer(x, y)[0]
    method.load_state_dict(state)
    assert torch.equal(method.mixer(x, y)[0], first)
    other = create_method("mixup", C, seed=6)
    assert not torch.equal(other.mixer(x, y)[0], first)


def test_saliency_step(standin):
    model = net()
    x, y = batch()
    rec = Recorder()
    method = create_method("comixup", C, seed=0)
    total = method.step(model, x, y, rec)
    assert len(rec.losses) == 2
    clean = F.cross_entropy(net()(x), y).item() * 2 / C
    assert rec.losses[0].item() == pytest.approx(clean, rel=1e-5)
    assert total == pytest.approx(rec.losses[0].item() + rec.losses[1].item(), rel=1e-6)
    # the mixed loss is the BCE of the softmax against the soft targets
    x_mix, t = StandInSaliencyMixer(C)(x, y, torch.zeros(8, 16, 16))
    assert rec.losses[1].item() == pytest.approx(softmax_bce(model(x_mix), t).item(), rel=1e-4)
    (saliency,) = standin.calls[:1]
    assert saliency.shape == (8, 16, 16) and (saliency >= 0).all() and saliency.sum() > 0


def test_saliency_step_keeps_clean_gradients(standin):
    x, y = batch()
    model = net()
    create_method("comixup", C).step(model, x, y, Recorder())
    both = [p.grad.clone() for p in model.parameters()]
    model = net()
    create_method("comixup", C, clean_lam=0).step(model, x, y, Recorder())
    mixed_only = [p.grad.clone() for p in model.parameters()]
    model = net()
    (F.cross_entropy(model(x), y) * 2 / C).backward()
    clean = [p.grad.clone() for p in model.parameters()]
    for b, m, c in zip(both, mixed_only, clean):
        torch.testing.assert_close(b, m + c, rtol=1e-4, atol=1e-6)


def test_clean_lam_zero_still_gives_saliency(standin):
    model = net()
    x, y = batch()
    rec = Recorder()
    create_method("comixup", C, clean_lam=0.0).step(model, x, y, rec)
    assert len(rec.losses) == 1  # only the mixed loss
    assert standin.calls[0].sum() > 0


def test_non_finite_saliency_becomes_zero(standin):
    model = net()
    x, y = batch()
    # an fp16 overflow: the scaled clean gradient is inf
    create_method("comixup", C).step(model, x, y, Recorder(factor=float("inf")))
    saliency = standin.calls[0]
    assert torch.isfinite(saliency).all() and (saliency == 0).all()


def test_saliency_method_options(standin):
    m = create_method("comixup", C, clean_lam=0.5, loss="ce", strength=0.25)
    assert m.clean_lam == 0.5 and m.loss_fn is soft_cross_entropy and m.mixer.strength == 0.25
    with pytest.raises(ValueError, match="clean_lam"):
        create_method("comixup", C, clean_lam=-1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        create_method("comixup", C, bogus=1)


def test_real_comixup_step(require_comixup):
    model = net()
    x, y = batch(b=8, size=16)
    rec = Recorder()
    loss = create_method("comixup", C, seed=0).step(model, x, y, rec)
    assert len(rec.losses) == 2 and loss > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
