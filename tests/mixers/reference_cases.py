"""The fixed cases of the mixers' reproducibility test (``test_reference.py``).

:func:`run_cases` runs every mixer (Input Mixup, CutMix, their 3-input variants, Puzzle Mix,
Co-Mixup, Manifold Mixup with 2 and 3 inputs) twice or three times in a row on fixed inputs
from fixed generator seeds and returns their outputs by name (the mixed images as channel 0 of
the first call plus every plane's sum, to keep the fixture small). ``reference_outputs.pt``
holds what the code returned when the fixture was made (``python tests/mixers/reference_cases.py``
rewrites it); the test checks that the same generator state still gives the same batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

FIXTURE = Path(__file__).with_name("reference_outputs.pt")
NUM_CLASSES = 5
BATCH, CHANNELS, SIZE = 6, 3, 16


class TinyNet(nn.Module):
    """A deterministic stand-in for comixup.models (depths 0, 1, 2: input and two stages)."""

    mix_depths = (0, 1, 2)

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(123)
        self.w1 = nn.Parameter(torch.randn(4, CHANNELS, 3, 3, generator=g) * 0.3)
        self.w2 = nn.Parameter(torch.randn(4, 4, 3, 3, generator=g) * 0.3)
        self.fc = nn.Parameter(torch.randn(NUM_CLASSES, 4, generator=g) * 0.3)

    def forward(self, x, mix_depth=None, mix_fn=None):
        h = x
        for d, weight in enumerate((None, self.w1, self.w2)):
            if weight is not None:
                h = torch.relu(nn.functional.conv2d(h, weight, padding=1))
            if mix_depth == d:
                h = mix_fn(h)
        return h.mean((2, 3)) @ self.fc.t()


def inputs():
    """``(x, y, saliency)``: images ``(6, 3, 16, 16)``, labels and a positive saliency map."""
    g = torch.Generator().manual_seed(2021)
    x = torch.rand(BATCH, CHANNELS, SIZE, SIZE, generator=g)
    y = torch.randint(0, NUM_CLASSES, (BATCH,), generator=g)
    sal = torch.rand(BATCH, SIZE, SIZE, generator=g) ** 3
    return x, y, sal


def _store(out: dict, key: str, x_mix: torch.Tensor, full: bool) -> None:
    """Keep the fixture small: channel 0 of the first call in full, and for every call the
    float64 sum of every (image, channel) plane, which catches a change in any channel."""
    if full:
        out[f"{key}/x_mix_c0"] = x_mix[:, 0]
    out[f"{key}/x_mix_sums"] = x_mix.double().sum((2, 3))


def run_cases() -> dict[str, torch.Tensor]:
    """Every mixer's outputs, two consecutive calls each, by ``"<name>/<call>/<output>"``."""
    from comixup.mixers import (
        CoMixup,
        CutMix,
        InputMixup,
        ManifoldMixup,
        MultiCutMix,
        MultiInputMixup,
        PuzzleMix,
    )

    x, y, sal = inputs()

    def gen(seed):
        return torch.Generator().manual_seed(seed)

    mixers = {
        "mixup": (InputMixup(NUM_CLASSES, generator=gen(1)), False),
        "cutmix": (CutMix(NUM_CLASSES, generator=gen(2)), False),
        "mixup3": (MultiInputMixup(NUM_CLASSES, k=3, generator=gen(3)), False),
        "cutmix3": (MultiCutMix(NUM_CLASSES, k=3, generator=gen(4)), False),
        "puzzlemix": (PuzzleMix(NUM_CLASSES, workers=1, generator=gen(5)), True),
        "puzzlemix_g4": (PuzzleMix(NUM_CLASSES, grid=4, n_labels=4, workers=1, generator=gen(6)),
                         True),
        "comixup": (CoMixup(NUM_CLASSES, partition=4, workers=1, generator=gen(7)), True),
        "comixup_g-1": (CoMixup(NUM_CLASSES, grid=-1, levels=4, workers=1, generator=gen(8)), True),
    }
    out: dict[str, torch.Tensor] = {}
    for name, (mixer, needs_saliency) in mixers.items():
        for call in range(2):
            args = (x, y, sal) if needs_saliency else (x, y)
            x_mix, y_mix = mixer(*args)
            _store(out, f"{name}/{call}", x_mix, call == 0)
            out[f"{name}/{call}/y_mix"] = y_mix
    model = TinyNet()
    for k, seed in ((2, 9), (3, 10)):
        mixer = ManifoldMixup(NUM_CLASSES, k=k, generator=gen(seed))
        for call in range(3):
            with torch.no_grad():
                logits, y_mix, params = mixer.forward_mixed(model, x, y, return_info=True)
            out[f"manifold{k}/{call}/logits"] = logits
            out[f"manifold{k}/{call}/y_mix"] = y_mix
            out[f"manifold{k}/{call}/depth"] = torch.tensor(params.depth)
    return {key: value.detach().clone() for key, value in out.items()}


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.save(run_cases(), FIXTURE)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")
