"""Fixtures of the integration tests: the real training libraries, and the recipes of
docs/integrations.md run as the page writes them.

A library that does not import fails the test under CI (the ``test`` extra installs it) and
skips it elsewhere.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from comixup import models

DOC = Path(__file__).resolve().parents[2] / "docs" / "integrations.md"
#: A tested block: a ```python fence whose first line is ``# recipe: NAME``.
RECIPE = re.compile(r"```python\n# recipe: ([\w-]+)\n(.*?)```", re.DOTALL)
C = 5


def _require(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as err:
        message = f"{name} does not import ({err}); pip install -e '.[integrations]'"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs the test extra: its absence there is a failure
        pytest.skip(message)


@pytest.fixture(scope="session")
def lightning():
    """The ``lightning`` package."""
    return _require("lightning")


@pytest.fixture(scope="session")
def accelerate():
    """The ``accelerate`` package."""
    return _require("accelerate")


def recipes() -> dict[str, str]:
    """The tested blocks of docs/integrations.md, by name."""
    return dict(RECIPE.findall(DOC.read_text()))


@pytest.fixture
def run_recipe():
    """``run_recipe(*names, **names_in_scope)`` runs the named blocks of docs/integrations.md in
    one namespace holding ``names_in_scope`` and returns it."""

    def run(*names, **scope):
        blocks = recipes()
        namespace = {"__name__": "integrations_recipe", **scope}
        for name in names:
            exec(compile(blocks[name], f"{DOC}#{name}", "exec"), namespace)
        return namespace

    return run


def tiny_net(seed: int = 0) -> torch.nn.Module:
    """A PreActResNet-18 with 4 initial channels (CPU-sized), its weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return models.create("preactresnet18", C, initial_channels=4)


def loader(batches: int = 4, batch_size: int = 8, seed: int = 1) -> DataLoader:
    """A DataLoader of ``batches`` fixed batches of 16x16 random images, in order."""
    g = torch.Generator().manual_seed(seed)
    n = batches * batch_size
    data = TensorDataset(torch.rand(n, 3, 16, 16, generator=g),
                         torch.randint(0, C, (n,), generator=g))
    return DataLoader(data, batch_size=batch_size, shuffle=False)


def weights(model: torch.nn.Module) -> list[torch.Tensor]:
    """Copies of the model's parameters."""
    return [p.detach().clone() for p in model.parameters()]


def changed(before: list[torch.Tensor], model: torch.nn.Module) -> bool:
    """Whether any parameter of ``model`` differs from ``before``."""
    return any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))

