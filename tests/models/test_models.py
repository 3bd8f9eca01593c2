"""Tests of comixup.models: parameter counts (recipes 6), shapes and the mixing interface."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from comixup import models

B = 2


@functools.cache
def _model(name: str, num_classes: int, **options) -> nn.Module:
    """Build each configuration once per session (in eval mode, seeded)."""
    torch.manual_seed(0)
    return models.create(name, num_classes, **options).eval()


def _get(case) -> nn.Module:
    name, num_classes, options = case[:3]
    return _model(name, num_classes, **dict(options))


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# (name, num_classes, options, input shape, hidden shape per mix depth > 0, features shape)
CASES = {
    "preactresnet18": (
        "preactresnet18", 100, (), (B, 3, 32, 32),
        {1: (B, 64, 32, 32), 2: (B, 128, 16, 16), 3: (B, 256, 8, 8)}, (B, 512, 4, 4),
    ),
    "preactresnet18-small": (
        "preactresnet18", 100, (("initial_channels", 16),), (B, 3, 32, 32),
        {1: (B, 16, 32, 32), 2: (B, 32, 16, 16), 3: (B, 64, 8, 8)}, (B, 128, 4, 4),
    ),
    "preactresnet18-tiny": (
        "preactresnet18", 200, (("stem_stride", 2),), (B, 3, 64, 64),
        {1: (B, 64, 32, 32), 2: (B, 128, 16, 16), 3: (B, 256, 8, 8)}, (B, 512, 4, 4),
    ),
    "wrn16_8": (
        "wrn16_8", 100, (), (B, 3, 16, 16),
        {1: (B, 128, 16, 16), 2: (B, 256, 8, 8)}, (B, 512, 4, 4),
    ),
    "resnext29_4_24": (
        "resnext29_4_24", 100, (), (B, 3, 16, 16),
        {1: (B, 256, 16, 16), 2: (B, 512, 8, 8)}, (B, 1024, 4, 4),
    ),
    "resnet50": (
        "resnet50", 1000, (), (B, 3, 64, 64),
        {1: (B, 256, 16, 16), 2: (B, 512, 8, 8), 3: (B, 1024, 4, 4)}, (B, 2048, 2, 2),
    ),
    "vgg11": (
        "vgg11", 30, (), (B, 1, 64, 40),
        {1: (B, 64, 32, 20), 2: (B, 128, 16, 10), 3: (B, 256, 8, 5), 4: (B, 512, 4, 2)},
        (B, 512, 4, 2),
    ),
    "lenet": ("lenet", 30, (), (B, 1, 160, 100), {1: (B, 6, 78, 48)}, (B, 16, 37, 22)),
}
CASE_IDS = list(CASES)


def _input(case) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(case[3], generator=g)


def test_names():
    assert models.names() == [
        "preactresnet18", "wrn16_8", "resnext29_4_24", "resnet50", "vgg11", "lenet",
        "preactresnet18_unet",
    ]


@pytest.mark.parametrize(
    "name, num_classes, options, expected",
    [
        ("preactresnet18", 100, (), 11_217_316),
        ("preactresnet18", 200, (), 11_268_616),
        ("wrn16_8", 100, (), 11_012_036),
        ("resnext29_4_24", 100, (), 4_937_252),
        ("resnet50", 1000, (), 25_557_032),
    ],
)
def test_parameter_counts(name, num_classes, options, expected):
    assert _n_params(_model(name, num_classes, **dict(options))) == expected


@pytest.mark.parametrize(
    "name, num_classes, options, shape",
    [
        ("preactresnet18", 100, (), (B, 3, 32, 32)),
        ("preactresnet18", 100, (), (B, 3, 64, 64)),
        ("preactresnet18", 200, (("stem_stride", 2),), (B, 3, 64, 64)),
        ("preactresnet18", 10, (("initial_channels", 16),), (B, 3, 32, 32)),
        ("wrn16_8", 100, (), (B, 3, 32, 32)),
        ("wrn16_8", 100, (), (B, 3, 64, 64)),
        ("resnext29_4_24", 100, (), (B, 3, 32, 32)),
        ("resnext29_4_24", 100, (), (B, 3, 64, 64)),
        ("resnet50", 1000, (), (B, 3, 64, 64)),
        ("vgg11", 30, (), (B, 1, 160, 100)),
        ("lenet", 30, (), (B, 1, 160, 100)),
    ],
)
def test_output_shapes(name, num_classes, options, shape):
    model = _model(name, num_classes, **dict(options))
    with torch.no_grad():
        out = model(torch.randn(shape))
    assert out.shape == (B, num_classes)
    assert bool(torch.isfinite(out).all())
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.out_features == num_classes


def test_vgg_features_on_spectrogram():
    with torch.no_grad():
        f = _model("vgg11", 30).features(torch.randn(B, 1, 160, 100))
    assert f.shape == (B, 512, 10, 6)


def test_small_variant_widths():
    model = _model("preactresnet18", 100, initial_channels=16)
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert sorted(set(widths)) == [16, 32, 64, 128]
    assert model.classifier.in_features == 128


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_forward_is_features_then_head(case_id):
    case = CASES[case_id]
    model, x = _get(case), _input(case)
    with torch.no_grad():
        f = model.features(x)
        out = model(x)
        assert f.shape == case[5]
        torch.testing.assert_close(model.logits_from_features(f), out, rtol=0, atol=0)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_mix_depths(case_id):
    case = CASES[case_id]
    assert _get(case).mix_depths == (0,) + tuple(sorted(case[4]))


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_mix_fn_called_once_with_hidden_shape_and_identity_is_noop(case_id):
    case = CASES[case_id]
    model, x = _get(case), _input(case)
    shapes = {0: case[3], **case[4]}
    with torch.no_grad():
        plain = model(x)
        for depth in model.mix_depths:
            calls = []

            def identity(h, calls=calls):
                calls.append(tuple(h.shape))
                return h

            out = model(x, mix_depth=depth, mix_fn=identity)
            assert calls == [shapes[depth]], depth
            torch.testing.assert_close(out, plain, rtol=0, atol=0)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_zeroing_the_hidden_state_changes_the_output(case_id):
    case = CASES[case_id]
    model, x = _get(case), _input(case)
    with torch.no_grad():
        plain = model(x)
        for depth in model.mix_depths:
            out = model(x, mix_depth=depth, mix_fn=torch.zeros_like)
            assert out.shape == plain.shape
            assert not torch.allclose(out, plain), depth
            # zero input at that depth: every sample gives the same logits
            torch.testing.assert_close(out[0], out[1])


def test_mix_fn_at_depth_1_sees_layer1_output():
    model, x = _model("preactresnet18", 100), torch.randn(B, 3, 32, 32)
    seen = []
    with torch.no_grad():
        model(x, mix_depth=1, mix_fn=lambda h: seen.append(h.clone()) or h)
        expected = model.layer1(model.conv1(x))
    assert seen[0].shape == (B, 64, 32, 32)
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)


def test_mix_fn_may_change_the_batch_size_and_gradients_flow():
    model = models.create("preactresnet18", 10, initial_channels=16)
    x = torch.randn(B, 3, 32, 32, requires_grad=True)
    out = model(x, mix_depth=2, mix_fn=lambda h: torch.cat([h, 0.5 * (h + h.flip(0))]))
    assert out.shape == (2 * B, 10)
    out.sum().backward()
    assert x.grad is not None and model.conv1.weight.grad is not None


def test_options_are_applied():
    assert _n_params(models.create("lenet", 30, in_channels=2)) == _n_params(
        _model("lenet", 30)
    ) + 6 * 25
    wrn = models.create("wrn16_8", 10, dropout=0.3)
    assert {m.p for m in wrn.modules() if isinstance(m, nn.Dropout)} == {0.3}
    assert models.options("preactresnet18") == {
        "in_channels": 3, "initial_channels": 64, "stem_stride": 1
    }


@pytest.mark.parametrize("bad", ["preactresnet", "resnet18", "", None])
def test_unknown_name_raises(bad):
    with pytest.raises(ValueError, match="name must be one of .*preactresnet18"):
        models.create(bad, 10)


def test_bad_options_raise():
    with pytest.raises(ValueError, match=r"unknown option.*'width'.*choices.*initial_channels"):
        models.create("preactresnet18", 10, width=3)
    with pytest.raises(ValueError, match="stem_stride"):
        models.create("preactresnet18", 10, stem_stride=3)
    with pytest.raises(ValueError, match="dropout"):
        models.create("wrn16_8", 10, dropout=1.5)
    with pytest.raises(ValueError, match="unknown option.*'dropout'"):
        models.create("resnet50", 10, dropout=0.1)
    with pytest.raises(ValueError, match="num_classes"):
        models.create("lenet", 0)
    with pytest.raises(TypeError, match="in_channels"):
        models.create("lenet", 10, in_channels=1.0)


@pytest.mark.parametrize("name, options, exc, match", [
    ("preactresnet18", {"initial_channels": 0}, ValueError, "initial_channels must be >= 1, got 0"),
    ("preactresnet18", {"initial_channels": 8.0}, TypeError, "initial_channels must be an int"),
    ("preactresnet18", {"stem_stride": True}, ValueError, r"stem_stride must be one of \[1, 2\]"),
    ("preactresnet18", {"stem_stride": 2.0}, ValueError, "stem_stride must be one of"),
    ("wrn16_8", {"dropout": 1.0}, ValueError, r"dropout must be a finite number in \[0.0, 1.0\)"),
    ("wrn16_8", {"dropout": "0.1"}, TypeError, "dropout must be a real number"),
    ("lenet", {"in_channels": 0}, ValueError, "in_channels must be >= 1"),
])
def test_model_options_are_checked_with_the_shared_checks(name, options, exc, match):
    with pytest.raises(exc, match=match):
        models.create(name, 10, **options)


def test_model_constructors_check_their_sizes():
    from comixup.models import base
    from comixup.models.resnext import CifarResNeXt
    from comixup.models.wide_resnet import WideResNet

    assert not {"check_choice", "check_positive_int", "check_probability"} & set(vars(base))
    with pytest.raises(ValueError, match="widen_factor must be >= 1, got 0"):
        WideResNet(16, 0, 10)
    with pytest.raises(ValueError, match="cardinality must be >= 1, got 0"):
        CifarResNeXt(cardinality=0)
    with pytest.raises(TypeError, match="base_width must be an int, got float"):
        CifarResNeXt(base_width=2.5)
    with pytest.raises(TypeError, match="num_classes must be an int, got bool"):
        models.create("lenet", True)


def test_bad_mix_arguments_raise():
    model, x = _model("lenet", 30), torch.randn(1, 1, 32, 32)
    with pytest.raises(ValueError, match=r"mix_depth must be one of \[0, 1\]"):
        model(x, mix_depth=2, mix_fn=lambda h: h)
    with pytest.raises(ValueError, match="mix_depth must be one of"):
        model(x, mix_depth=-1, mix_fn=lambda h: h)
    with pytest.raises(ValueError, match="mix_depth must be an int"):
        model(x, mix_depth=True, mix_fn=lambda h: h)
    with pytest.raises(ValueError, match="mix_fn must be a callable"):
        model(x, mix_depth=0)
    with pytest.raises(ValueError, match="mix_fn was given without mix_depth"):
        model(x, mix_fn=lambda h: h)
    big = _model("preactresnet18", 100)
    with pytest.raises(ValueError, match=r"\[0, 1, 2, 3\]"):
        big(torch.randn(1, 3, 32, 32), mix_depth=4, mix_fn=lambda h: h)


def test_resnet50_initialization_follows_the_imagenet_references():
    """Zero weight on every bottleneck's last BatchNorm, classifier weight ~ N(0, 0.01^2), the
    classifier bias PyTorch's default uniform(-1/sqrt(2048), 1/sqrt(2048)); the other BatchNorms
    start at 1."""
    from comixup.models.resnet import Bottleneck

    model = _model("resnet50", 1000)
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    for block in blocks:
        assert torch.count_nonzero(block.bn3.weight) == 0
        assert torch.all(block.bn1.weight == 1) and torch.all(block.bn2.weight == 1)
    assert torch.all(model.bn1.weight == 1)
    weight, bias = model.classifier.weight, model.classifier.bias
    assert weight.std().item() == pytest.approx(0.01, rel=0.01)  # 2,048,000 draws
    assert abs(weight.mean().item()) < 1e-4
    bound = 1 / 2048 ** 0.5
    assert bias.abs().max().item() <= bound and bias.std().item() > bound / 3
    # with every residual branch at zero the network's output does not depend on bn3's input
    x = _input(CASES["resnet50"])
    with torch.no_grad():
        out = model(x)
        for block in blocks:
            block.conv3.weight.mul_(2)
        assert torch.equal(model(x), out)
        for block in blocks:
            block.conv3.weight.div_(2)
