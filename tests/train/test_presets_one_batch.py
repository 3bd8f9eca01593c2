"""One training batch of every preset x method at the preset's real input size, grid and
neighbourhood, with a tiny model: the recipes' geometry (image sides, labeling grids, Puzzle
Mix's neighbourhood and transport blocks, Co-Mixup's partitions) fails here, in seconds,
rather than hours into a run (e.g. at the first 224-px batch of the ImageNet recipe).

The model is the smallest width of the preset's network where it has a width option
(``initial_channels``), otherwise a PreActResNet18 of width 1 as a stand-in: the checks are of
shapes, grids and neighbourhoods, not of the network. Every phase of a multi-phase preset runs,
with its batch size's input size and its method options.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from comixup import data, models
from comixup.config import list_presets, resolve_config
from comixup.data.synthetic import SyntheticConfig, segmentation_info, synthetic_info
from comixup.methods import TrainStep, accepted_options, method_names, uses_normalization

BATCH = 4
PRESETS = sorted(list_presets())

#: Preset x method pairs that cannot run, with the error they raise (checked, so a pair that
#: starts working must leave this list). Every pair runs: the speech presets' Puzzle Mix
#: (160x100 spectrograms) draws the grid sides that divide both sides (2 and 4).
UNSUPPORTED: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("preset", ["speech-lenet", "speech-vgg11"])
def test_the_speech_puzzle_mix_recipe_mixes_every_grid_it_draws(preset):
    # the released grid draw {2, 4, 8, 16} fails on 100-px-wide spectrograms (8 and 16 do not
    # divide 100); the preset's grids 2 and 4 and its neighbourhood and transport blocks run
    cfg = resolve_config(preset, {"method": "puzzlemix"})
    num_classes, channels, (h, w), mean, std = train_geometry(cfg, {})
    assert (h, w) == (160, 100)
    options = {**cfg.method_options, "mean": mean, "std": std}
    assert (options["grid"], options["neigh_size"], options["t_size"]) == ([2, 4], 5, -1)
    step = TrainStep("puzzlemix", num_classes, seed=0, **options)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, channels, h, w, generator=g)
    _, _, info = step.mixer(x, torch.arange(BATCH), x[:, 0].abs(), return_info=True)
    grids = {info.grid}
    for _ in range(8):
        grids.add(step.mixer(x, torch.arange(BATCH), x[:, 0].abs(), return_info=True)[2].grid)
    assert grids == {2, 4}
    with pytest.raises(ValueError, match=r"grid 8 must divide both sides of x.*grid=\[2, 4\]"):
        TrainStep("puzzlemix", num_classes, **{**options, "grid": -1}).mixer.check_batch(x)


def train_geometry(cfg, data_options: dict):
    """``(num_classes, channels, (H, W), mean, std)`` of the preset's training batches."""
    info = data.dataset_info(cfg.data)
    size = info.image_size
    if cfg.data.startswith("synthetic"):
        fields = {f.name for f in dataclasses.fields(SyntheticConfig)}
        base = {"image_size": 64} if cfg.data.startswith("synthetic64") else {}
        base.update({k: v for k, v in data_options.items() if k in fields})
        make_info = segmentation_info if info.task == "segmentation" else synthetic_info
        info = make_info(SyntheticConfig(**base))
        size = info.image_size
    elif cfg.data == "imagenet":
        crop = data_options.get("crop", info.image_size[0])
        size = (crop, crop)
    return info.num_classes, info.channels, size, list(info.mean), list(info.std)


def tiny_model(cfg, num_classes: int, channels: int):
    """The preset's network at width 1 when it has ``initial_channels``, else a stand-in."""
    if "initial_channels" in models.options(cfg.arch):
        arch, options = cfg.arch, {**cfg.arch_options, "initial_channels": 1}
    else:
        arch, options = "preactresnet18", {"initial_channels": 1}
    options["in_channels"] = channels
    torch.manual_seed(0)
    return models.create(arch, num_classes, **options)


def test_the_imagenet_puzzle_mix_recipe_runs_a_224_px_batch():
    # neighbourhood 4 does not divide the 14-px block of the 16x16 grid at 224 px; the
    # released ImageNet settings (neighbourhood 2, transport on the grid's blocks) do
    cfg = resolve_config("imagenet-resnet50", {"method": "puzzlemix"})
    phase = cfg.phase_at(15)
    assert phase["data_options"]["crop"] == 224
    options = {**phase["method_options"], "mean": [0.5] * 3, "std": [0.25] * 3}
    step = TrainStep("puzzlemix", 1000, seed=0, **options)
    for grid in (2, 4, 8, 16):  # every grid the recipe draws
        step.mixer.grid = grid
        g = torch.Generator().manual_seed(grid)
        x = torch.randn(BATCH, 3, 224, 224, generator=g)
        y = torch.randint(0, 1000, (BATCH,), generator=g)
        model = tiny_model(cfg, 1000, 3)
        assert math.isfinite(step(model, x, y))
    with pytest.raises(ValueError, match="neigh_size 4 must divide the block side 14"):
        TrainStep("puzzlemix", 1000, **{**options, "neigh_size": 4}).mixer.check_batch(x)


def phases_of(cfg) -> list[dict]:
    """Every phase of the run (the run's own settings when it has none)."""
    if not cfg.phases:
        return [cfg.phase_at(0)]
    return [cfg.phase_at(p["start"]) for p in sorted(cfg.phases, key=lambda p: p["start"])]


@pytest.mark.parametrize("method", method_names())
@pytest.mark.parametrize("preset", PRESETS)
def test_one_batch_of_every_preset_and_method(preset, method):
    cfg = resolve_config(preset, {"method": method})
    for phase in phases_of(cfg):
        num_classes, channels, (h, w), mean, std = train_geometry(cfg, phase["data_options"])
        options = dict(phase["method_options"])
        if uses_normalization(method):  # as comixup.run.method_options
            for key, value in (("mean", mean), ("std", std)):
                if key in accepted_options(method):
                    options.setdefault(key, value)
        step = TrainStep(method, num_classes, seed=0, **options)
        model = tiny_model(cfg, num_classes, channels).train()
        seen_inputs, seen_losses = [], []
        model.register_forward_pre_hook(
            lambda _m, args, seen=seen_inputs: seen.append(tuple(args[0].shape)))
        real_loss = step.method.loss

        def loss(logits, targets, real_loss=real_loss, seen=seen_losses):
            seen.append((tuple(logits.shape), tuple(targets.shape)))
            return real_loss(logits, targets)

        step.method.loss = loss
        g = torch.Generator().manual_seed(1)
        x = torch.randn(BATCH, channels, h, w, generator=g)
        dense = data.dataset_info(cfg.data).task == "segmentation"
        y = torch.randint(0, num_classes, (BATCH, h, w) if dense else (BATCH,), generator=g)
        where = f"{preset} / {method} / phase {phase['index']} ({h}x{w})"
        if (preset, method) in UNSUPPORTED:
            with pytest.raises(ValueError, match=UNSUPPORTED[preset, method]):
                step(model, x, y)
            continue
        total = step(model, x, y)
        assert math.isfinite(total), where
        assert seen_inputs and all(s == (BATCH, channels, h, w) for s in seen_inputs), where
        pixels = (h, w) if dense else ()
        for logits, targets in seen_losses:
            assert logits == (BATCH, num_classes, *pixels), where
            assert targets in ((BATCH, *pixels), (BATCH, num_classes, *pixels)), where
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(gr).all() for gr in grads), where
