"""Helpers shared by the mixer tests (importable from them: ``tests/mixers`` is on pytest's
``pythonpath``)."""

from __future__ import annotations

import torch
from torch import nn


def coded_batch(b: int, h: int = 4, w: int = 5, dtype=torch.float64):
    """One-hot coded inputs: x_i has channel i = 1 and label i, so every input's pixel mass in a
    mixed image is measurable."""
    x = torch.zeros(b, b, h, w, dtype=dtype)
    for i in range(b):
        x[i, i] = 1.0
    return x, torch.arange(b)


class TinyNet(nn.Module):
    """Stand-in for comixup.models: depth 0 = input, 1 and 2 = after each 'stage'.

    Follows the contract ``model(x, mix_depth=None, mix_fn=None)`` / ``model.mix_depths`` and
    records at which depth ``mix_fn`` was called and the hidden state it received.
    """

    def __init__(self, in_ch: int = 3, num_classes: int = 4, mix_depths=(0, 1, 2)):
        super().__init__()
        self.mix_depths = tuple(mix_depths)
        self.stage1 = nn.Conv2d(in_ch, 4, 3, padding=1)
        self.stage2 = nn.Conv2d(4, 5, 3, padding=1)
        self.fc = nn.Linear(5, num_classes)
        self.calls: list[int] = []
        self.seen: dict[int, torch.Tensor] = {}

    def forward(self, x, mix_depth=None, mix_fn=None):
        h = x
        for d, layer in enumerate((None, self.stage1, self.stage2)):
            if layer is not None:
                h = torch.relu(layer(h))
            if mix_depth == d:
                self.calls.append(d)
                self.seen[d] = h.detach().clone()
                h = mix_fn(h)
        return self.fc(h.mean(dim=(2, 3)))
