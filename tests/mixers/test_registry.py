"""comixup.mixers.registry: one name -> mixer map for every training method."""

from __future__ import annotations

import pytest
import torch

from comixup import mixers
from comixup.methods import TrainStep, method_names


def test_every_method_name_builds_its_mixer():
    assert mixers.names() == method_names()
    for name in method_names():
        mixer = mixers.create(name, 10, generator=torch.Generator().manual_seed(0))
        assert isinstance(mixer, mixers.Mixer), name
        entry = mixers.registry.entry(name)
        assert type(mixer) is entry.mixer
        for key, value in entry.fixed.items():
            assert getattr(mixer, key) == value
        assert TrainStep(name, 10).name == name and entry.step in mixers.registry.STEPS


def test_fixed_options_are_not_options():
    assert "k" not in mixers.options("mixup3") and "k" not in mixers.options("manifold")
    assert mixers.options("mixup")["alpha"] == 1.0
    assert mixers.options("manifold")["alpha"] == 2.0
    assert mixers.create("cutmix4", 3).k == 4


def test_unknown_names_and_options_are_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        mixers.create("nope", 10)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['k'\] for mixer 'mixup3'"):
        mixers.create("mixup3", 10, k=5)
    with pytest.raises(ValueError, match="alpha"):
        mixers.create("mixup", 10, alpha=-1.0)


def test_the_unmixed_columns_return_the_batch():
    x = torch.rand(4, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 1])
    for name in ("vanilla", "vat"):
        x_mix, y_mix, params = mixers.create(name, 3)(x, y, return_info=True)
        assert torch.equal(x_mix, x) and x_mix is not x
        assert torch.equal(y_mix, torch.nn.functional.one_hot(y, 3).float())
        assert torch.equal(params.ratios, torch.eye(4))


def test_mixing_probability_skips_whole_batches():
    x = torch.rand(6, 3, 16, 16)
    y = torch.arange(6)
    for name in ("saliencymix", "guidedmixup-sr"):
        never = mixers.create(name, 6, prob=0.0, generator=torch.Generator().manual_seed(0))
        x_mix, y_mix, params = never(x, y, return_info=True)
        assert torch.equal(y_mix, torch.eye(6))
        assert torch.equal(x_mix, x) and torch.equal(params.ratios, torch.eye(6))
        # prob 1 draws nothing more: the same batches as without the option
        a = mixers.create(name, 6, prob=1.0, generator=torch.Generator().manual_seed(1))
        b = mixers.create(name, 6, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a(x, y)[0], b(x, y)[0])
        half = mixers.create(name, 6, prob=0.5, generator=torch.Generator().manual_seed(2))
        mixed = sum(not torch.equal(half(x, y)[0], x) for _ in range(200))
        assert 70 <= mixed <= 130, mixed
    with pytest.raises(ValueError, match="prob"):
        mixers.create("saliencymix", 6, prob=1.5)
