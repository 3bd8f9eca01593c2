"""comixup.methods: the method interface, the losses and the saliency step."""

import math
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F

from comixup import methods as M
from comixup import models
from comixup.losses import soft_cross_entropy, softmax_bce
from comixup.methods import TrainStep, method_names, option_defaults
from comixup.mixers.dirichlet import sample_weights

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
    from comixup.mixers import registry

    monkeypatch.setitem(registry._ENTRIES, "comixup",
                        registry.Entry(StandInSaliencyMixer, step="saliency"))
    StandInSaliencyMixer.calls = []
    return StandInSaliencyMixer


# -- registry and options ----------------------------------------------------------------------


def test_registry_names():
    for name in ("vanilla", "comixup", "mixup", "manifold", "cutmix", "mixup3", "mixup4",
                 "cutmix3", "cutmix4", "manifold3", "manifold4", "puzzlemix", "vat"):
        assert name in method_names()
        step = TrainStep(name, C)
        assert step.name == name and isinstance(step.method, M.Method)


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="method must be one of"):
        TrainStep("nope", C)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['foo'\].*'alpha'.*'loss'"):
        TrainStep("mixup", C, foo=1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['alpha'\] for method 'vanilla'"):
        TrainStep("vanilla", C, alpha=1.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainStep("cutmix", C, loss="mse")
    with pytest.raises(ValueError, match="num_classes"):
        TrainStep("vanilla", 0)  # one class is legal, as for the mixers (MIN_CLASSES)
    with pytest.raises(ValueError, match="seed"):
        TrainStep("vanilla", C, seed=-1)


def test_multi_input_methods_set_k():
    assert TrainStep("mixup4", C).mixer.k == 4
    assert TrainStep("cutmix3", C).mixer.k == 3


def test_real_puzzlemix_step():
    model = net()
    x, y = batch(b=8, size=16)
    rec = Recorder()
    method = TrainStep("puzzlemix", C, seed=0, mean=[0.5] * 3, std=[0.25] * 3)
    loss = float(method(model, x, y, backward=rec))
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
    loss = TrainStep(name, C, seed=3)(model, x, y, backward=rec)
    # the loss stays on the device, detached: the caller reads it when it logs
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0 and not loss.requires_grad
    assert len(rec.losses) == 1 and rec.losses[0].item() == pytest.approx(loss.item())
    assert loss.item() > 0
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_vanilla_is_cross_entropy():
    model = net()
    x, y = batch()
    loss = float(TrainStep("vanilla", C)(model, x, y, backward=Recorder()))
    assert loss == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-5)


def test_generator_state_roundtrip():
    x, y = batch()
    method = TrainStep("mixup", C, seed=5)
    state = method.state_dict()
    assert state["generator"].dtype == torch.uint8
    first = method.mixer(x, y)[0]
    method.load_state_dict(state)
    assert torch.equal(method.mixer(x, y)[0], first)
    other = TrainStep("mixup", C, seed=6)
    assert not torch.equal(other.mixer(x, y)[0], first)


def test_saliency_step(standin):
    model = net()
    x, y = batch()
    rec = Recorder()
    method = TrainStep("comixup", C, seed=0, loss="bce")
    total = float(method(model, x, y, backward=rec))
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
    TrainStep("comixup", C, loss="bce")(model, x, y, backward=Recorder())
    both = [p.grad.clone() for p in model.parameters()]
    model = net()
    TrainStep("comixup", C, clean_lam=0, loss="bce")(model, x, y, backward=Recorder())
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
    TrainStep("comixup", C, clean_lam=0.0)(model, x, y, backward=rec)
    assert len(rec.losses) == 1  # only the mixed loss
    assert standin.calls[0].sum() > 0


def test_non_finite_saliency_becomes_zero(standin):
    model = net()
    x, y = batch()
    # an fp16 overflow: the scaled clean gradient is inf
    TrainStep("comixup", C)(model, x, y, backward=Recorder(factor=float("inf")))
    saliency = standin.calls[0]
    assert torch.isfinite(saliency).all() and (saliency == 0).all()


def test_saliency_method_options(standin):
    m = TrainStep("comixup", C, clean_lam=0.5, loss="ce", strength=0.25)
    assert m.method.clean_lam == 0.5 and m.method.loss_name == "ce" and m.mixer.strength == 0.25
    with pytest.raises(ValueError, match="clean_lam"):
        TrainStep("comixup", C, clean_lam=-1)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\]"):
        TrainStep("comixup", C, bogus=1)


def test_real_comixup_step():
    model = net()
    x, y = batch(b=8, size=16)
    rec = Recorder()
    loss = float(TrainStep("comixup", C, seed=0)(model, x, y, backward=rec))
    assert len(rec.losses) == 2 and loss > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


# -- the two loss families (every column trained as the reference trained it) ----------------


def _one_hot(y):
    return F.one_hot(y, C).float()


def _hand_bce(logits, targets):
    p = torch.softmax(logits.double(), 1)
    t = targets.double()
    return float(-(t * p.log() + (1 - t) * (1 - p).log()).mean())


def _hand_ce(logits, targets):
    return float(-(targets.double() * torch.log_softmax(logits.double(), 1)).sum(1).mean())


@pytest.mark.parametrize("loss, hand", [("bce", _hand_bce), ("ce", _hand_ce)])
def test_vanilla_loss_families_equal_hand_computation(loss, hand):
    model = net()
    x, y = batch()
    rec = Recorder()
    value = float(TrainStep("vanilla", C, loss=loss)(model, x, y, backward=rec))
    with torch.no_grad():
        expected = hand(net()(x), _one_hot(y))
    assert value == pytest.approx(expected, rel=1e-5)
    assert len(rec.losses) == 1


@pytest.mark.parametrize("loss, hand, clean_factor",
                         [("bce", _hand_bce, 2 / C), ("ce", _hand_ce, 1.0)])
def test_saliency_method_losses_equal_hand_computation(standin, loss, hand, clean_factor):
    model = net()
    x, y = batch()
    rec = Recorder()
    TrainStep("comixup", C, loss=loss, clean_lam=0.5)(model, x, y, backward=rec)
    with torch.no_grad():
        logits = net()(x)
        clean = 0.5 * clean_factor * _hand_ce(logits, _one_hot(y))
        x_mix, t = StandInSaliencyMixer(C)(x, y, torch.zeros(8, 16, 16))
        mixed = hand(model(x_mix), t)  # model after step has the same weights (no optimizer)
    assert rec.losses[0].item() == pytest.approx(clean, rel=1e-5)
    assert rec.losses[1].item() == pytest.approx(mixed, rel=1e-4)


def _bn_net():
    torch.manual_seed(0)
    return models.create("preactresnet18", C, in_channels=3, initial_channels=4)


def test_clean_lam_zero_keeps_no_clean_gradient_and_uses_eval_mode():
    model = _bn_net()
    x, y = batch(b=8, size=16)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.num_batches_tracked.clone()) for m in bn]
    seen = []

    method = TrainStep("puzzlemix", C, seed=0, clean_lam=0, mean=[0.5] * 3, std=[0.25] * 3)
    real = method.method.mixer

    def mixer(xx, yy, saliency):
        seen.append(([p.grad for p in model.parameters()], model.training, saliency.clone(),
                     [(m.running_mean.clone(), m.num_batches_tracked.clone()) for m in bn]))
        return real(xx, yy, saliency)

    method.method.mixer = mixer
    rec = Recorder()
    method(model, x, y, backward=rec)
    grads, training, saliency, stats = seen[0]
    assert all(g is None for g in grads)  # the clean pass left no weight gradient
    assert training  # the model is back in train mode for the mixed pass
    for (mean0, n0), (mean1, n1) in zip(before, stats):  # eval mode: BN statistics untouched
        assert torch.equal(mean0, mean1) and torch.equal(n0, n1)
    # the saliency is the eval-mode input gradient of the cross-entropy
    ref_model = _bn_net().eval()
    inp = x.clone().requires_grad_(True)
    F.cross_entropy(ref_model(inp), y).backward()
    torch.testing.assert_close(saliency, inp.grad.pow(2).mean(1).sqrt())
    assert len(rec.losses) == 1


def test_clean_lam_one_keeps_clean_gradient_in_train_mode():
    model = _bn_net()
    x, y = batch(b=8, size=16)
    method = TrainStep("puzzlemix", C, seed=0, clean_lam=1, mean=[0.5] * 3, std=[0.25] * 3)
    real, seen = method.method.mixer, []
    method.method.mixer = lambda xx, yy, s: (
        seen.append([p.grad is not None for p in model.parameters()]) or real(xx, yy, s))
    method(model, x, y, backward=Recorder())
    assert all(seen[0])


@pytest.mark.parametrize("k", [3, 4])
def test_manifold_k_targets_equal_dirichlet_weights(k):
    model = net()
    x, y = batch(b=8)
    method = TrainStep(f"manifold{k}", C, seed=4, alpha=1.0)
    state = method.method.generator.get_state()
    captured = {}
    real = method.method.loss

    def loss(logits, targets):
        captured["t"] = targets
        return real(logits, targets)

    method.method.loss = loss
    method(model, x, y, backward=Recorder())
    # the weights are the Dirichlet draw after the depth draw
    g = torch.Generator().set_state(state)
    torch.randint(0, 3, (1,), generator=g)
    weights = sample_weights(k, 1.0, g).tolist()
    assert len(weights) == k and sum(weights) == pytest.approx(1.0)
    perms = [torch.randperm(8, generator=g) for _ in range(k - 1)]
    expected = weights[0] * _one_hot(y)
    for w, perm in zip(weights[1:], perms):
        expected = expected + w * _one_hot(y)[perm]
    torch.testing.assert_close(captured["t"].float(), expected)
    # with all labels distinct the target mass of each source is its weight
    assert captured["t"].sum(1).allclose(torch.ones(8))


# -- VAT --------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_vat_perturbation_has_norm_eps_and_beats_a_random_direction(norm):
    from comixup.vat import VAT, kl_divergence

    model = net().eval()
    x, _ = batch(b=8)
    std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)
    vat = VAT(eps=2.0, power_iterations=1, norm=norm, std=std.flatten().tolist(),
              generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)
    kl, r_adv = vat(model, x, logits)
    raw = (r_adv * std).flatten(1)
    size = raw.abs().amax(1) if norm == "linf" else raw.norm(dim=1)
    torch.testing.assert_close(size, torch.full((8,), 2.0 / 255), rtol=1e-5, atol=0)
    # a random direction of the same norm raises the KL less
    rand = VAT(eps=2.0, power_iterations=0, norm=norm, std=std.flatten().tolist(),
               generator=torch.Generator().manual_seed(1))
    r_rand = rand.perturbation(model, x, logits)
    raw_rand = (r_rand * std).flatten(1)
    size = raw_rand.abs().amax(1) if norm == "linf" else raw_rand.norm(dim=1)
    torch.testing.assert_close(size, torch.full((8,), 2.0 / 255), rtol=1e-5, atol=0)
    with torch.no_grad():
        kl_rand = kl_divergence(logits, model(x + r_rand))
        assert kl.item() > 1.5 * kl_rand.item() > 0


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_vat_direction_under_bf16_autocast_equals_the_float32_direction(norm):
    from comixup.vat import VAT

    model = _bn_net()  # BatchNorm in train mode, as in training
    x, _ = batch(b=8, size=16)
    std = [0.2, 0.25, 0.3]

    def direction(autocast):
        vat = VAT(eps=1.0, power_iterations=1, norm=norm, std=std,
                  generator=torch.Generator().manual_seed(3))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)  # the clean forward, bf16 logits under autocast
            r_adv = vat.perturbation(model, x, logits.detach())
            assert torch.is_autocast_enabled("cpu") == autocast
        return r_adv

    r32, r16 = direction(False), direction(True)
    assert r16.dtype == torch.float32
    cosine = F.cosine_similarity(r16.flatten(1).double(), r32.flatten(1).double(), dim=1)
    assert cosine.min().item() > 1 - 1e-6
    torch.testing.assert_close(r16, r32, rtol=1e-5, atol=1e-6 * float(r32.abs().max()))


def test_vat_perturbed_forwards_leave_the_batchnorm_statistics_alone():
    from comixup.vat import VAT, frozen_batchnorm_stats

    model = _bn_net()
    x, y = batch(b=8, size=16)
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    def stats():
        return [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                for m in bn]

    logits = model(x)  # the clean forward updates them once
    before = stats()
    vat = VAT(power_iterations=1, generator=torch.Generator().manual_seed(0))
    kl, r_adv = vat(model, x, logits.detach())
    kl.backward()
    for (m0, v0, n0), (m1, v1, n1) in zip(before, stats()):
        assert torch.equal(m0, m1) and torch.equal(v0, v1) and torch.equal(n0, n1)
    assert all(m.track_running_stats for m in bn)  # restored after the block
    # frozen, the train-mode forward still normalizes with the batch's statistics
    with torch.no_grad(), frozen_batchnorm_stats(model):
        frozen = model(x + r_adv)
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(frozen, model(x + r_adv))
    model.train()
    # the training step: the supervised forward is the only one that updates the statistics
    method = TrainStep("vat", C, seed=0, std=[0.25] * 3)
    reference = _bn_net()
    reference(x)
    method(model := _bn_net(), x, y, backward=Recorder())
    for a, b in zip([m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)],
                    [m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)]):
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)
        assert a.num_batches_tracked == b.num_batches_tracked == 1


def test_vat_defaults_are_table12_best_cell_with_the_power_iteration():
    # Table 12 (update = 1): alpha 0.001 / 0.01 / 0.1 -> 24.76 / 28.33 / 34.75 at eps 1
    opts = option_defaults("vat")
    assert (opts["alpha"], opts["eps"], opts["power_iterations"]) == (0.001, 1.0, 1)


def test_vat_step_adds_weighted_kl():
    model = net()
    x, y = batch()
    rec = Recorder()
    method = TrainStep("vat", C, seed=0, alpha=0.1, loss="ce")
    total = float(method(model, x, y, backward=rec))
    assert len(rec.losses) == 2
    assert rec.losses[0].item() == pytest.approx(F.cross_entropy(net()(x), y).item(), rel=1e-5)
    assert total == pytest.approx(rec.losses[0].item() + rec.losses[1].item(), rel=1e-6)
    with pytest.raises(ValueError, match="power_iterations"):
        TrainStep("vat", C, power_iterations=2)
    with pytest.raises(ValueError, match="norm"):
        TrainStep("vat", C, norm="l1")


# -- norm_weight_decay ---------------------------------------------------------------------------


def test_normalization_parameters_get_no_decay_when_norm_weight_decay_is_zero():
    from types import SimpleNamespace

    from comixup.train.optimizer import build_optimizer

    model = _bn_net()
    cfg = SimpleNamespace(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=0.5, norm_weight_decay=0.0)
    opt = build_optimizer(cfg, model)
    norm_ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
                for p in m.parameters()}
    assert norm_ids
    for group in opt.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= norm_ids or not ids & norm_ids
        assert group["weight_decay"] == (0.0 if ids <= norm_ids else 0.5)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    # one step with zero gradients: only decayed parameters move
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    opt.step()
    for p in model.parameters():
        moved = not torch.equal(before[id(p)], p.detach())
        nonzero = bool(before[id(p)].abs().sum() > 0)
        assert moved == (id(p) not in norm_ids and nonzero)


@pytest.mark.parametrize("name", ["mixup", "cutmix"])
@pytest.mark.parametrize("loss, hand, clean_factor",
                         [("bce", _hand_bce, 2 / C), ("ce", _hand_ce, 1.0)])
def test_pair_mixing_clean_lam_adds_the_saliency_methods_clean_loss(name, loss, hand, clean_factor):
    model = net()
    x, y = batch()
    rec = Recorder()
    value = float(TrainStep(name, C, seed=3, loss=loss, clean_lam=0.5)(model, x, y, backward=rec))
    with torch.no_grad():
        clean = 0.5 * clean_factor * _hand_ce(net()(x), _one_hot(y))
        # the same mixer draws: a fresh method with the same seed (the clean pass draws nothing)
        x_mix, t = TrainStep(name, C, seed=3).mixer(x, y)
        mixed = hand(net()(x_mix), t)
    assert len(rec.losses) == 2
    assert rec.losses[0].item() == pytest.approx(clean, rel=1e-5)
    assert rec.losses[1].item() == pytest.approx(mixed, rel=1e-4)
    assert value == pytest.approx(clean + mixed, rel=1e-4)
    # clean_lam 0 (the default) is the original method: one loss, the mixed one
    rec0 = Recorder()
    TrainStep(name, C, seed=3, loss=loss)(net(), x, y, backward=rec0)
    assert len(rec0.losses) == 1 and rec0.losses[0].item() == pytest.approx(mixed, rel=1e-4)
    with pytest.raises(ValueError, match="clean_lam"):
        TrainStep(name, C, clean_lam=-1)


def test_vat_takes_per_pixel_logits_and_names_mismatched_ones():
    from comixup.vat import VAT

    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 4, 3, padding=1)
    x = torch.randn(2, 3, 8, 8)
    vat = VAT(generator=torch.Generator().manual_seed(0))
    kl, r_adv = vat(model, x, model(x).detach())
    assert kl.dim() == 0 and kl > 0 and r_adv.shape == x.shape
    with pytest.raises(ValueError, match="logits must have shape"):
        vat(model, x, torch.zeros(2, 4, 4, 4))


@pytest.mark.parametrize("name", ["vanilla", "cutmix", "comixup", "puzzlemix", "mixup"])
def test_every_method_defaults_to_cross_entropy(name):
    # a zero-logit model: every soft target's cross-entropy is log C, so a step's mixed loss is
    # log C whatever the mixing (and a saliency method adds its clean loss, CE = log C too)
    from comixup import TrainStep

    class Zero(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x.flatten(1)[:, :1].expand(-1, C) * self.w

    x, y = torch.rand(8, 3, 16, 16), torch.arange(8) % C
    step = TrainStep(name, C, seed=0)
    assert step.method.loss_name == "ce"
    loss = float(step(Zero(), x, y))
    parts = 2 if name in ("comixup", "puzzlemix") else 1
    assert loss == pytest.approx(parts * math.log(C), rel=1e-6)
