"""Every mixer under autocast: the training step runs whole under :func:`torch.autocast`, yet
the targets, masks and weights stay float32 (the same bits as without autocast) and their rows
(per-pixel masses for dense targets) sum to 1; the image blend keeps the image's dtype.

CPU autocast takes bfloat16 and float16; it lowers the same ops as CUDA's that matter here
(matrix products, convolutions), so a CPU run shows what a GPU run would compute.
"""

from __future__ import annotations

import pytest
import torch
from mixer_helpers import TinyNet

from comixup import mixers
from comixup._precision import autocast_off, full_precision

K, B, SIZE = 10, 8, 32
AMP_DTYPES = (torch.bfloat16, torch.float16)
#: every grid a mixer can draw, each tested explicitly (``grid=-1`` draws 2, 4, 8 or 16)
GRIDS = {"comixup": (2, 4, 8, 16), "puzzlemix": (2, 4, 8, 16)}
CASES = [(name, grid) for name in mixers.names() for grid in GRIDS.get(name, (None,))]


def _batch(kind: str):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(B, 3, SIZE, SIZE, generator=g)
    shape = (B,) if kind == "labels" else (B, SIZE, SIZE)
    y = torch.randint(0, K, shape, generator=g)
    return x, y, torch.rand(B, SIZE, SIZE, generator=g)


def _mix(name, grid, kind, amp_dtype):
    """``(x_mix, y_mix, params)`` of one seeded call, under autocast of ``amp_dtype`` (None:
    autocast off)."""
    options = {"workers": 1} if name in GRIDS else {}
    if grid is not None:
        options["grid"] = grid
    mixer = mixers.create(name, K, generator=torch.Generator().manual_seed(0), **options)
    x, y, sal = _batch(kind)
    torch.manual_seed(0)
    net = TinyNet(3, K)
    autocast = (torch.autocast("cpu", dtype=amp_dtype) if amp_dtype is not None
                else torch.autocast("cpu", enabled=False))
    with autocast:
        if amp_dtype is not None:  # the test means something only if autocast lowers matmuls
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == amp_dtype
        if isinstance(mixer, mixers.ManifoldMixup):
            logits, y_mix, params = mixer.forward_mixed(net, x, y, return_info=True)
            return logits, y_mix, params
        args = (x, y, sal) if mixer.uses_saliency else (x, y)
        return mixer(*args, return_info=True)


@pytest.mark.parametrize("kind", ["labels", "dense"])
@pytest.mark.parametrize(("name", "grid"), CASES)
def test_targets_stay_float32_under_autocast(name, grid, kind):
    x_ref, y_ref, p_ref = _mix(name, grid, kind, None)
    for amp_dtype in AMP_DTYPES:
        x_mix, y_mix, params = _mix(name, grid, kind, amp_dtype)
        assert y_mix.dtype == torch.float32
        assert torch.equal(y_mix, y_ref), (amp_dtype, (y_mix - y_ref).abs().max().item())
        assert torch.equal(params.ratios, p_ref.ratios), amp_dtype
        mass = y_mix.double().sum(1)
        torch.testing.assert_close(mass, torch.ones_like(mass), rtol=0, atol=1e-6)
        if name.startswith("manifold"):  # the model's logits are autocast's business
            continue
        assert x_mix.dtype == torch.float32  # the image blend in the image's dtype
        assert torch.equal(x_mix, x_ref), amp_dtype
        for field in ("mask", "ratio", "weight"):  # masks and weights of the mixers that have them
            ref = getattr(p_ref, field, None)
            if isinstance(ref, torch.Tensor):
                got = getattr(params, field)
                assert got.dtype == ref.dtype and torch.equal(got, ref), (field, amp_dtype)


def test_apply_targets_and_mix_stay_float32_under_autocast():
    from comixup.mixers.comixup import mix

    mixer = mixers.create("comixup", K, grid=16, workers=1,
                          generator=torch.Generator().manual_seed(0))
    x, y, sal = _batch("labels")
    _, y_mix, params = mixer(x, y, sal, return_info=True)
    soft = torch.nn.functional.one_hot(y, K).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        again = mixer.apply_targets(soft, params)
        _, y_fn, ratios = mix(x, soft, params.index, params.weight)
    assert again.dtype == y_fn.dtype == torch.float32
    assert torch.equal(again, y_mix) and torch.equal(y_fn, y_mix)
    assert torch.equal(ratios, params.ratios)


def test_gaussian_blur_keeps_the_maps_dtype_under_autocast():
    from comixup.saliency import gaussian_blur

    maps = torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = gaussian_blur(maps, 7, 3.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = gaussian_blur(maps, 7, 3.0)
    assert out.dtype == torch.float32 and torch.equal(out, ref)


def test_autocast_off_and_full_precision():
    class Probe:
        @full_precision
        def run(self, t):
            return (t @ t).dtype, torch.is_autocast_enabled("cpu")

        @full_precision
        def echo(self, t):
            return t

    t = torch.ones(2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert Probe().run(t) == (torch.float32, False)
        assert torch.is_autocast_enabled("cpu")  # restored on the way out
        with autocast_off(t):
            assert not torch.is_autocast_enabled("cpu")
        with autocast_off("cuda"):  # another device type's autocast is left alone
            assert torch.is_autocast_enabled("cpu")
    assert Probe().echo("not a tensor") == "not a tensor"  # left to the method's own check
    with autocast_off(torch.device("meta")):  # no autocast for this type: a no-op
        pass
