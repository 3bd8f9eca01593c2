"""Every mixer gives the batch pinned by its golden fixture.

``reference_outputs.pt`` was written by ``reference_cases.py`` from the code as it was before
the mixers were moved onto one base class; the same generator state must still give the same
mixed images, soft targets and (Manifold Mixup) logits and depths.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location(
    "reference_cases", Path(__file__).with_name("reference_cases.py"))
reference_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_cases)

EXPECTED = torch.load(reference_cases.FIXTURE)


@pytest.fixture(scope="module")
def actual():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return reference_cases.run_cases()
    finally:
        torch.set_num_threads(threads)


def test_the_same_cases_are_produced(actual):
    assert sorted(actual) == sorted(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_output_matches_the_fixture(actual, key):
    got, want = actual[key], EXPECTED[key]
    assert got.dtype == want.dtype and got.shape == want.shape, key
    if key.endswith("/depth"):
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
