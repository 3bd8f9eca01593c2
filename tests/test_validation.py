"""The validation policy: ``comixup.validation`` decides what ``validate=None`` checks."""

from __future__ import annotations

import pytest
import torch

import comixup
from comixup._checks import check_values
from comixup._validation import get_validation


class _OnADevice:
    """A stand-in for a tensor on a GPU: ``check_values`` reads only its device."""

    device = torch.device("cuda")


def _nan_batch():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    x[1, 0, 2, 2] = float("nan")
    return x, torch.tensor([0, 1, 2, 1])


def test_auto_is_the_default_and_checks_cpu_tensors_only():
    assert get_validation() == "auto"
    assert check_values(None, torch.zeros(1)) is True
    assert check_values(None, _OnADevice()) is False
    x, y = _nan_batch()
    with pytest.raises(ValueError, match="x contains NaN"):
        comixup.InputMixup(3, generator=torch.Generator().manual_seed(0))(x, y)


def test_always_checks_every_device():
    with comixup.validation("always") as policy:
        assert get_validation() == "always" and policy.mode == "always"
        assert check_values(None, _OnADevice()) is True
        assert check_values(None, torch.zeros(1)) is True
        x, y = _nan_batch()
        with pytest.raises(ValueError, match="x contains NaN"):
            comixup.CutMix(3, generator=torch.Generator().manual_seed(0))(x, y)
    assert get_validation() == "auto"


def test_never_skips_the_value_checks_but_not_the_shape_checks():
    x, y = _nan_batch()
    with comixup.validation("never"):
        assert check_values(None, torch.zeros(1)) is False
        x_mix, _ = comixup.InputMixup(3, generator=torch.Generator().manual_seed(0))(x, y)
        assert torch.isnan(x_mix).any()  # nothing read back, the NaN went through
        with pytest.raises(ValueError, match=r"label|range|num_classes"):
            comixup.InputMixup(3)(x.nan_to_num(), torch.tensor([0, 1, 2, 7]), validate=True)
        with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
            comixup.InputMixup(3)(x[0], y)
    assert get_validation() == "auto"


def test_an_explicit_validate_overrides_the_policy():
    with comixup.validation("never"):
        assert check_values(True, _OnADevice()) is True
    with comixup.validation("always"):
        assert check_values(False, torch.zeros(1)) is False


def test_a_call_sets_the_policy_and_a_block_restores_it_on_an_error():
    try:
        comixup.validation("never")
        assert get_validation() == "never"
        with pytest.raises(RuntimeError, match="inside"):
            with comixup.validation("always"):
                raise RuntimeError("inside")
        assert get_validation() == "never"
    finally:
        comixup.validation("auto")
    assert get_validation() == "auto"
    assert repr(comixup.validation("auto")) == "validation('auto')"


@pytest.mark.parametrize("mode, error", [("sometimes", ValueError), (None, TypeError),
                                         (True, TypeError)])
def test_a_bad_mode_names_the_argument_and_changes_nothing(mode, error):
    with pytest.raises(error, match="mode must be one of"):
        comixup.validation(mode)
    assert get_validation() == "auto"
