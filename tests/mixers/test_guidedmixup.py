"""GuidedMixup: the greedy one-cycle pairing, the pixel-wise saliency ratios, the protocol."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comixup.mixers.base import Mixer
from comixup.mixers.guidedmixup import GuidedMixup, greedy_cycle
from comixup.saliency import gaussian_blur, spectral_residual


def _naive_greedy(dist):
    """The greedy rule over the sorted distances, spelled out: the largest off-diagonal pair
    (row-major first on ties) starts the cycle; from the last image, the largest distance to
    an image not yet visited (lowest index on ties); then back to the start."""
    n = len(dist)
    pairs = sorted(((i, j) for i in range(n) for j in range(n) if i != j),
                   key=lambda ij: (-dist[ij[0]][ij[1]], ij[0] * n + ij[1]))
    start, cur = pairs[0]
    perm = {start: cur}
    visited = {start, cur}
    while len(visited) < n:
        nxt = sorted((j for j in range(n) if j not in visited), key=lambda j: (-dist[cur][j], j))[0]
        perm[cur] = nxt
        visited.add(nxt)
        cur = nxt
    perm[cur] = start
    return [perm[i] for i in range(n)]


def _is_one_cycle(perm):
    seen, i = set(), 0
    for _ in range(len(perm)):
        seen.add(i)
        i = int(perm[i])
    return i == 0 and len(seen) == len(perm)


def _indicators(b, h, w):
    return torch.eye(b, dtype=torch.float64)[:, :, None, None].expand(b, b, h, w).contiguous()


@pytest.mark.parametrize("seed", range(20))
def test_greedy_cycle_matches_the_naive_greedy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    pts = rng.normal(size=(n, 3))
    dist = np.linalg.norm(pts[:, None] - pts[None], axis=-1).astype(np.float32)
    if seed % 3 == 0:
        dist = np.round(dist)   # many ties
    before = dist.copy()
    perm = greedy_cycle(dist)
    assert perm.tolist() == _naive_greedy(dist.tolist())
    assert _is_one_cycle(perm)
    assert np.array_equal(dist, before)   # the input is left as it was


def test_greedy_cycle_ties_take_the_lowest_index():
    assert greedy_cycle(np.ones((5, 5), np.float32)).tolist() == [1, 2, 3, 4, 0]
    assert greedy_cycle(np.zeros((2, 2), np.float32)).tolist() == [1, 0]


def test_greedy_cycle_is_optimal_on_two_far_clusters():
    # two tight clusters far apart: every greedy step crosses, the most a cycle can get
    pts = np.array([[0.0], [0.1], [10.0], [10.3], [0.2], [10.1]])
    dist = np.abs(pts - pts.T).astype(np.float32)
    perm = greedy_cycle(dist)
    best = max(
        sum(dist[i, p[i]] for i in range(6))
        for p in itertools.permutations(range(6)) if _is_one_cycle(p)
    )
    assert sum(dist[i, perm[i]] for i in range(6)) == pytest.approx(best)


def test_mixer_pairs_greedily_on_the_normalized_maps_and_masks_by_their_ratio():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 9, 11, generator=gen)
    y = torch.randint(0, 5, (6,), generator=gen)
    sal = torch.rand(6, 9, 11, generator=gen) ** 4
    mix = GuidedMixup(5, saliency="gradient", blur=1)
    x_mix, _, p = mix(x, y, sal, return_info=True)
    norm = sal / sal.sum((1, 2), keepdim=True)
    torch.testing.assert_close(p.saliency, norm)
    dist = np.array([[float((norm[i] - norm[j]).norm()) for j in range(6)] for i in range(6)])
    assert p.perm.tolist() == _naive_greedy(dist.tolist())
    mask = norm / (norm + norm[p.perm])
    torch.testing.assert_close(p.mask, mask)
    expected = mask[:, None] * x + (1 - mask[:, None]) * x[p.perm]
    torch.testing.assert_close(x_mix, expected)
    torch.testing.assert_close(p.ratio, mask.mean((1, 2)))


def test_blur_of_the_maps_and_spectral_saliency():
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    _, _, p = GuidedMixup(3)(x, torch.arange(4) % 3, return_info=True)
    sr = gaussian_blur(spectral_residual(x, variant="guidedmixup"), 7, 3.0)
    torch.testing.assert_close(p.saliency, sr / sr.sum((1, 2), keepdim=True))
    assert _is_one_cycle(p.perm)


@pytest.mark.parametrize("saliency", ["spectral", "gradient"])
def test_ratios_are_the_mask_shares_and_apply_reproduces_the_call(saliency):
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(5, 3, 8, 10, generator=gen)
    y = torch.randint(0, 4, (5,), generator=gen)
    sal = torch.rand(5, 8, 10, generator=gen) if saliency == "gradient" else None
    mix = GuidedMixup(4, saliency=saliency)
    x_mix, y_mix, p = mix(x, y, sal, return_info=True)
    masks, _ = mix.apply(_indicators(5, 8, 10), None, p)
    torch.testing.assert_close(masks.mean((2, 3)).to(p.ratios.dtype), p.ratios)
    torch.testing.assert_close(p.ratios.sum(1), torch.ones(5))
    onehot = torch.nn.functional.one_hot(y, 4).float()
    torch.testing.assert_close(y_mix, p.ratios @ onehot)
    again, y_again = mix.apply(x, onehot, p)
    assert torch.equal(again, x_mix) and torch.equal(y_again, y_mix)
    assert mix.apply(torch.rand(5, 7, 8, 10), None, p)[0].shape == (5, 7, 8, 10)


def test_uses_saliency_is_per_instance_and_prepare_follows_it():
    assert Mixer.uses_saliency is False
    assert GuidedMixup(3).uses_saliency is False
    assert GuidedMixup(3, saliency="gradient").uses_saliency is True
    assert GuidedMixup.uses_saliency is False
    x, y = torch.rand(3, 3, 6, 6), torch.arange(3)
    with pytest.raises(TypeError, match="saliency"):
        GuidedMixup(3, saliency="gradient")(x, y)
    with pytest.raises(TypeError, match="saliency"):
        GuidedMixup(3)(x, y, torch.rand(3, 6, 6))
    with pytest.raises(ValueError, match="saliency"):
        GuidedMixup(3, saliency="gradient")(x, y, -torch.rand(3, 6, 6))


def test_zero_saliency_mixes_halves_random_pairing_seed_and_batch_of_one():
    x, y = torch.rand(4, 3, 6, 6), torch.arange(4)
    _, _, p = GuidedMixup(4, saliency="gradient")(x, y, torch.zeros(4, 6, 6), return_info=True)
    torch.testing.assert_close(p.mask, torch.full((4, 6, 6), 0.5))
    a = GuidedMixup(4, pairing="random", generator=torch.Generator().manual_seed(4))(
        x, y, return_info=True)
    assert torch.equal(a[2].perm, torch.randperm(4, generator=torch.Generator().manual_seed(4)))
    b = GuidedMixup(4, pairing="random", generator=torch.Generator().manual_seed(4))(x, y)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    one, y_one = GuidedMixup(4)(x[:1], y[:1])
    assert torch.equal(one, x[:1]) and torch.equal(y_one, torch.eye(4)[:1])


def test_errors_name_the_argument():
    for kwargs, name in [({"saliency": "grad"}, "saliency"), ({"pairing": "optimal"}, "pairing"),
                         ({"blur": 4}, "blur"), ({"blur": 0}, "blur"), ({"sigma": 0.0}, "sigma")]:
        with pytest.raises((ValueError, TypeError), match=name):
            GuidedMixup(3, **kwargs)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(b=st.integers(2, 5), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**16),
       saliency=st.sampled_from(["spectral", "gradient"]),
       pairing=st.sampled_from(["greedy", "random"]))
def test_property_ratios_rows_sum_to_one_and_targets_follow(b, h, w, seed, saliency, pairing):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 3, h, w, generator=gen)
    y = torch.randint(0, 4, (b,), generator=gen)
    sal = torch.rand(b, h, w, generator=gen) if saliency == "gradient" else None
    mix = GuidedMixup(4, saliency=saliency, pairing=pairing, generator=gen)
    x_mix, y_mix, p = mix(x, y, sal, return_info=True)
    assert x_mix.shape == x.shape and bool(torch.isfinite(x_mix).all())
    torch.testing.assert_close(p.ratios.sum(1), torch.ones(b))
    assert bool((p.ratios >= 0).all())
    torch.testing.assert_close(y_mix, p.ratios @ torch.nn.functional.one_hot(y, 4).float())
    if pairing == "greedy":
        assert _is_one_cycle(p.perm)
    masks, _ = mix.apply(_indicators(b, h, w), None, p)
    torch.testing.assert_close(masks.mean((2, 3)).to(p.ratios.dtype), p.ratios)
