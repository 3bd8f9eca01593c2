"""Puzzle Mix's graph cut and transport (Kim, Choo and Song, ICML 2020; recipes 4): the terms
against a transcription of the reference, the cut against brute force, the transport plan
against the reference's greedy plan."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from comixup.saliency import pooled_unary, realistic_saliency
from comixup.solver import grid_energy
from comixup.solver.puzzle import (
    apply_transport,
    graphcut_masks,
    graphcut_terms,
    label_costs,
    level_prior,
    neigh_penalty,
    smoothness_terms,
    transport_plan,
)


def batch(b=6, size=16, c=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size, size, generator=gen)
    y = torch.randint(0, 10, (b,), generator=gen)
    sal = torch.from_numpy(realistic_saliency(b, size, rng=np.random.default_rng(seed))).float()
    return x, y, sal


# ------------------------------------------------------------------------------------------------
# Transcriptions of the reference code (Puzzle Mix, mixup.py), used as oracles.
# ------------------------------------------------------------------------------------------------


def ref_neigh_penalty(input1, input2, k):
    pw_x = input1[:, :, :-1, :] - input2[:, :, 1:, :]
    pw_y = input1[:, :, :, :-1] - input2[:, :, :, 1:]
    pw_x = pw_x[:, :, k - 1 :: k, :]
    pw_y = pw_y[:, :, :, k - 1 :: k]
    pw_x = F.avg_pool2d(pw_x.abs().mean(1), kernel_size=(1, k))
    pw_y = F.avg_pool2d(pw_y.abs().mean(1), kernel_size=(k, 1))
    return pw_x, pw_y


def ref_terms(x1, s1, s2, x2, block_num, beta, gamma, eta, lam, n_labels, neigh_size):
    """The reference's unary/pairwise construction, returned in PuzzleMix's label order."""
    b, _, _, width = x1.shape
    block_size = width // block_num
    neigh_size = min(neigh_size, block_size)
    beta = beta / block_num / 16
    unary1_t, unary2_t = s1.double(), s2.double()
    p1, p2 = F.avg_pool2d(x1, neigh_size), F.avg_pool2d(x2, neigh_size)
    pw_x = torch.zeros([b, 2, 2, block_num - 1, block_num], dtype=torch.float64)
    pw_y = torch.zeros([b, 2, 2, block_num, block_num - 1], dtype=torch.float64)
    k = block_size // neigh_size
    pw_x[:, 0, 0], pw_y[:, 0, 0] = ref_neigh_penalty(p2, p2, k)
    pw_x[:, 0, 1], pw_y[:, 0, 1] = ref_neigh_penalty(p2, p1, k)
    pw_x[:, 1, 0], pw_y[:, 1, 0] = ref_neigh_penalty(p1, p2, k)
    pw_x[:, 1, 1], pw_y[:, 1, 1] = ref_neigh_penalty(p1, p1, k)
    pw_x, pw_y = beta * gamma * pw_x, beta * gamma * pw_y
    unary1, unary2 = unary1_t.clone(), unary2_t.clone()
    unary2[:, :-1, :] += (pw_x[:, 1, 0] + pw_x[:, 1, 1]) / 2.0
    unary1[:, :-1, :] += (pw_x[:, 0, 1] + pw_x[:, 0, 0]) / 2.0
    unary2[:, 1:, :] += (pw_x[:, 0, 1] + pw_x[:, 1, 1]) / 2.0
    unary1[:, 1:, :] += (pw_x[:, 1, 0] + pw_x[:, 0, 0]) / 2.0
    unary2[:, :, :-1] += (pw_y[:, 1, 0] + pw_y[:, 1, 1]) / 2.0
    unary1[:, :, :-1] += (pw_y[:, 0, 1] + pw_y[:, 0, 0]) / 2.0
    unary2[:, :, 1:] += (pw_y[:, 0, 1] + pw_y[:, 1, 1]) / 2.0
    unary1[:, :, 1:] += (pw_y[:, 1, 0] + pw_y[:, 0, 0]) / 2.0
    pw_x = (pw_x[:, 1, 0] + pw_x[:, 0, 1] - pw_x[:, 1, 1] - pw_x[:, 0, 0]) / 2
    pw_y = (pw_y[:, 1, 0] + pw_y[:, 0, 1] - pw_y[:, 1, 1] - pw_y[:, 0, 0]) / 2
    # graphcut_multi(unary2[i], unary1[i], ...): label i has weight lam_i = i / (L - 1) on its
    # first argument's complement; reference label i means mask = 1 - i / (L - 1).
    eps = 1e-8
    if n_labels == 2:
        prior = np.array([-np.log(lam + eps), -np.log(1 - lam + eps)])
    else:
        prior = np.array([-np.log(lam**2 + eps), -np.log(2 * lam * (1 - lam) + eps),
                          -np.log((1 - lam) ** 2 + eps)])
    prior = eta * prior / block_num**2
    u_a, u_b = unary2.numpy(), unary1.numpy()
    unary = np.stack([(1 - t) * u_a + t * u_b + prior[i]
                      for i, t in enumerate(np.linspace(0, 1, n_labels))], -1)
    # PuzzleMix's label l means mask = l / (L - 1): reverse the label axis.
    return unary[..., ::-1], (pw_y + beta).numpy(), (pw_x + beta).numpy()


def ref_mask_transport(region, s, eps):
    """The reference's mask_transport (dense, ``plan * cost`` column resolve)."""
    t = region.shape[1]
    n = t * t
    idx = torch.arange(n)
    r, c = idx // t, idx % t
    C = (((r[:, None] - r[None]) ** 2 + (c[:, None] - c[None]) ** 2).float() / (t - 1) ** 2)[None]
    z = region.float()
    cost = eps * C - s.reshape(-1, n, 1) * z.reshape(-1, 1, n)
    plan_win = None
    for _ in range(t):
        row_best = cost.min(-1)[1]
        plan = torch.zeros_like(cost).scatter_(-1, row_best.unsqueeze(-1), 1)
        cost_fight = plan * cost
        col_best = cost_fight.min(-2)[1]
        plan_win = torch.zeros_like(cost).scatter_(-2, col_best.unsqueeze(-2), 1) * plan
        cost += (1 - plan_win) * plan
    return plan_win  # [b, source i, target j]


# ------------------------------------------------------------------------------------------------
# graph-cut terms and graph cut
# ------------------------------------------------------------------------------------------------


def _brute_force(unary, w_right, w_down, n_labels):
    g = unary.shape[0]
    labs = np.array(list(itertools.product(range(n_labels), repeat=g * g))).reshape(-1, g, g)
    pc = label_costs(n_labels)
    e = np.take_along_axis(unary[None], labs[..., None], -1)[..., 0].sum((1, 2))
    e = e + (w_right[None] * pc[labs[:, :, :-1], labs[:, :, 1:]]).sum((1, 2))
    e = e + (w_down[None] * pc[labs[:, :-1, :], labs[:, 1:, :]]).sum((1, 2))
    return labs[e.argmin()], e.min()


def _swap_optimal(unary, w_right, w_down, labels, n_labels):
    """No alpha-beta swap move (any relabelling of the cells of a pair of labels) lowers E."""
    pc = label_costs(n_labels)
    e0 = grid_energy(unary, pc, labels, (w_right, w_down))
    for a, b in itertools.combinations(range(n_labels), 2):
        cells = np.argwhere((labels == a) | (labels == b))
        for bits in itertools.product((a, b), repeat=len(cells)):
            moved = labels.copy()
            moved[cells[:, 0], cells[:, 1]] = bits
            if grid_energy(unary, pc, moved, (w_right, w_down)) < e0 - 1e-12:
                return False
    return True


@pytest.mark.parametrize("g", [2, 3])
@pytest.mark.parametrize("n_labels", [2, 3])
def test_graph_cut_matches_brute_force_on_tiny_grids(g, n_labels):
    """Binary cuts are exact; with three levels alpha-beta swap is a local method, and the two
    starts (unary argmin, uniform middle level) reach the brute-force optimum in every case."""
    pairwise = label_costs(n_labels)
    for seed in range(15):
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        x = torch.rand(4, 3, 4 * g, 4 * g, generator=gen)
        sal = torch.rand(4, 4 * g, 4 * g, generator=gen) ** 3
        perm = torch.tensor([1, 2, 3, 0])
        s1 = pooled_unary(sal, g)
        down, right = smoothness_terms(x, x[perm], g, 4)
        unary, w_right, w_down = graphcut_terms(s1, s1[perm], down, right, lam=float(rng.uniform()),
                                                n_labels=n_labels)
        labels = graphcut_masks(unary, w_right, w_down)
        for b in range(4):
            best, e_min = _brute_force(unary[b], w_right[b], w_down[b], n_labels)
            e = grid_energy(unary[b], pairwise, labels[b], (w_right[b], w_down[b]))
            assert e == pytest.approx(e_min, abs=1e-12)
            np.testing.assert_array_equal(labels[b], best)
            assert _swap_optimal(unary[b], w_right[b], w_down[b], labels[b], n_labels)


def test_terms_match_the_reference_construction():
    x, _, sal = batch(5, 32, seed=3)
    perm = torch.tensor([2, 0, 4, 1, 3])
    for g, n_labels, lam in ((2, 3, 0.3), (4, 3, 0.8), (8, 2, 0.5), (16, 3, 0.1)):
        s1 = pooled_unary(sal, g)
        neigh = min(4, 32 // g)
        down, right = smoothness_terms(x.double(), x[perm].double(), g, neigh)
        unary, w_right, w_down = graphcut_terms(s1, s1[perm], down, right, lam=lam,
                                                n_labels=n_labels, beta=1.2, gamma=0.5, eta=0.2)
        r_unary, r_right, r_down = ref_terms(x.double(), s1, s1[perm], x[perm].double(), g,
                                             1.2, 0.5, 0.2, lam, n_labels, 4)
        np.testing.assert_allclose(unary, r_unary, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(w_right, np.maximum(r_right, 0), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(w_down, np.maximum(r_down, 0), rtol=1e-10, atol=1e-14)


def test_neigh_penalty_and_prior():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 2, 8, 8, generator=gen), torch.rand(3, 2, 8, 8, generator=gen)
    for k in (1, 2, 4):
        down, right = neigh_penalty(a, b, k)
        r_down, r_right = ref_neigh_penalty(a, b, k)
        torch.testing.assert_close(down, r_down)
        torch.testing.assert_close(right, r_right)
    p = level_prior(0.3, 3, eta=0.2, n_cells=16)
    expect = -0.2 / 16 * np.log(np.array([0.49, 0.42, 0.09]) + 1e-8)
    np.testing.assert_allclose(p, expect)
    np.testing.assert_allclose(level_prior(0.3, 2, 1.0, 1), -np.log(np.array([0.7, 0.3]) + 1e-8))


def test_negative_edge_weights_are_clamped():
    # x1 smooth, x2 constant: d10 + d01 < d00 + d11 is possible when x1 has strong edges.
    x1 = torch.zeros(1, 1, 8, 8)
    x1[..., :, ::2] = 1.0  # stripes: large d11 across vertical boundaries
    x2 = torch.full((1, 1, 8, 8), 0.5)
    s = torch.full((1, 2, 2), 0.25)
    down, right = smoothness_terms(x1, x2, 2, 1)
    _, w_right, w_down = graphcut_terms(s, s, down, right, lam=0.5, beta=0.0, gamma=1.0)
    assert (w_right >= 0).all() and (w_down >= 0).all()


def test_graphcut_masks_do_not_depend_on_workers():
    x, _, sal = batch(13, 32, seed=4)
    s1 = pooled_unary(sal, 8)
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(0))
    terms = graphcut_terms(s1, s1[perm], *smoothness_terms(x, x[perm], 8, 4), lam=0.3)
    ref = graphcut_masks(*terms, workers=1)
    for w in (2, 5, 13, 40):
        np.testing.assert_array_equal(graphcut_masks(*terms, workers=w), ref)


# ------------------------------------------------------------------------------------------------
# transport
# ------------------------------------------------------------------------------------------------


def test_transport_plan_matches_the_reference_on_the_region():
    for seed in range(40):
        gen = torch.Generator().manual_seed(seed)
        t = (2, 4, 8, 16)[seed % 4]
        region = torch.randint(0, 3, (3, t, t), generator=gen) > 0
        s = torch.rand(3, t, t, generator=gen) ** 4 + 1e-3
        s = s / s.sum((1, 2), keepdim=True)
        for eps in (0.8, 0.1, 0.0):
            src = transport_plan(region, s, eps)
            plan = ref_mask_transport(region, s, eps)
            ref_src = torch.where(plan.sum(1) > 0, plan.argmax(1), -1).view(3, t * t)
            flat = region.view(3, -1)
            assert torch.equal(src, torch.where(flat, ref_src, -1))


def test_transport_plan_of_an_image_does_not_depend_on_the_batch():
    """The plan of a batch is the plans of its parts (the mixer plans x1's and x2's regions in
    one call), bit for bit, whether the parts stop early or not."""
    for seed in range(12):
        gen = torch.Generator().manual_seed(seed)
        t = (2, 4, 8, 16)[seed % 4]
        region = torch.rand(10, t, t, generator=gen) > (0.2, 0.5, 0.8)[seed % 3]
        s = torch.rand(10, t, t, generator=gen) ** 4 + 1e-4
        s = s / s.sum((1, 2), keepdim=True)
        for eps in (0.8, 0.05, 0.0):
            for n_iter in (None, 2):
                whole = transport_plan(region, s, eps, n_iter)
                parts = [transport_plan(region[a:b], s[a:b], eps, n_iter)
                         for a, b in ((0, 3), (3, 4), (4, 10))]
                assert torch.equal(whole, torch.cat(parts))


def test_transport_is_an_injection_of_blocks_into_the_region():
    x, _, sal = batch(6, 32, seed=7)
    gen = torch.Generator().manual_seed(7)
    t, ts = 8, 4
    region = torch.rand(6, t, t, generator=gen) > 0.4
    s = pooled_unary(sal, t)
    src = transport_plan(region, s, 0.05)  # small eps: many blocks move
    flat = region.view(6, -1)
    assert ((src >= 0) == flat).all()  # every region position is assigned, nothing else
    moved = 0
    for b in range(6):
        used = src[b][flat[b]]
        assert used.unique().numel() == used.numel()  # distinct blocks
        moved += int((used != torch.arange(t * t)[flat[b]]).sum())
    assert moved > 0
    # Block-coded images: each 4x4 block holds its own index.
    code = torch.arange(t * t, dtype=torch.float32).view(1, 1, t, t).expand(6, 1, t, t)
    coded = code.repeat_interleave(ts, 2).repeat_interleave(ts, 3).contiguous()
    out = apply_transport(coded, src, ts)
    out_blocks = out[:, 0, ::ts, ::ts].reshape(6, -1)
    for b in range(6):
        # positions outside the region untouched, inside: the planned source block
        expect = torch.where(flat[b], src[b], torch.arange(t * t)).float()
        assert torch.equal(out_blocks[b], expect)
        assert torch.equal(out[b], out[b, :, ::ts, ::ts].repeat_interleave(ts, 1)
                           .repeat_interleave(ts, 2))
    # and on real images: every block of the output is a block of the same image
    out = apply_transport(x, src, ts)
    xb = x.view(6, 3, t, ts, t, ts).permute(0, 2, 4, 1, 3, 5).reshape(6, t * t, -1)
    ob = out.view(6, 3, t, ts, t, ts).permute(0, 2, 4, 1, 3, 5).reshape(6, t * t, -1)
    for b in range(6):
        for j in range(t * t):
            k = int(src[b, j]) if src[b, j] >= 0 else j
            assert torch.equal(ob[b, j], xb[b, k])


# ------------------------------------------------------------------------------------------------
# rectangular images: per-axis block sizes
# ------------------------------------------------------------------------------------------------


def loop_neigh_penalty(a, b, g, kh, kw):
    """:func:`neigh_penalty` by loops over blocks, boundary pixels and channels."""
    bsz, ch = a.shape[:2]
    down = torch.zeros(bsz, g - 1, g, dtype=a.dtype)
    right = torch.zeros(bsz, g, g - 1, dtype=a.dtype)
    for i in range(bsz):
        for r in range(g):
            for c in range(g):
                if r < g - 1:  # last pooled row of block (r, c) against the next block's first
                    row = (r + 1) * kh
                    down[i, r, c] = sum(abs(a[i, q, row - 1, col] - b[i, q, row, col])
                                        for q in range(ch) for col in range(c * kw, (c + 1) * kw)
                                        ) / (ch * kw)
                if c < g - 1:
                    col = (c + 1) * kw
                    right[i, r, c] = sum(abs(a[i, q, row, col - 1] - b[i, q, row, col])
                                         for q in range(ch) for row in range(r * kh, (r + 1) * kh)
                                         ) / (ch * kh)
    return down, right


@pytest.mark.parametrize("g, kh, kw", [(2, 3, 1), (3, 1, 2), (2, 2, 4), (3, 2, 2)])
def test_neigh_penalty_with_rectangular_blocks_matches_loops(g, kh, kw):
    gen = torch.Generator().manual_seed(g * 10 + kh + kw)
    a = torch.rand(2, 2, g * kh, g * kw, generator=gen, dtype=torch.float64)
    b = torch.rand(2, 2, g * kh, g * kw, generator=gen, dtype=torch.float64)
    down, right = neigh_penalty(a, b, (kh, kw))
    r_down, r_right = loop_neigh_penalty(a, b, g, kh, kw)
    torch.testing.assert_close(down, r_down, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(right, r_right, rtol=1e-12, atol=1e-14)
    if kh == kw:  # an int k is the square block of the reference
        assert all(torch.equal(u, v) for u, v in zip(neigh_penalty(a, b, kh), (down, right),
                                                     strict=True))


def test_smoothness_terms_of_transposed_images_swap_down_and_right():
    gen = torch.Generator().manual_seed(0)
    x1 = torch.rand(3, 2, 12, 8, generator=gen, dtype=torch.float64)
    x2 = torch.rand(3, 2, 12, 8, generator=gen, dtype=torch.float64)
    down, right = smoothness_terms(x1, x2, 2, (3, 2))  # cells 6x4, 2x2 pooled cells each
    t_down, t_right = smoothness_terms(x1.mT, x2.mT, 2, (2, 3))
    torch.testing.assert_close(t_down, right.mT, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(t_right, down.mT, rtol=1e-12, atol=1e-14)
    # the pooled images and (kh, kw) of the rectangular cell, from loop_neigh_penalty
    p1, p2 = F.avg_pool2d(x1, (3, 2)), F.avg_pool2d(x2, (3, 2))
    torch.testing.assert_close(down[:, 1, 0], loop_neigh_penalty(p1, p2, 2, 2, 2)[0],
                               rtol=1e-12, atol=1e-14)


def test_apply_transport_moves_rectangular_blocks_as_loops():
    gen = torch.Generator().manual_seed(2)
    t, th, tw = 3, 2, 3
    x = torch.rand(4, 2, t * th, t * tw, generator=gen)
    region = torch.rand(4, t, t, generator=gen) > 0.3
    s = torch.rand(4, t, t, generator=gen) ** 6 + 1e-4
    src = transport_plan(region, s / s.sum((1, 2), keepdim=True), 0.01)
    assert ((src >= 0) & (src != torch.arange(t * t))).any()  # some blocks move
    expect = x.clone()
    for b in range(4):
        for j in range(t * t):
            i = int(src[b, j])
            if i < 0:
                continue
            rj, cj, ri, ci = j // t, j % t, i // t, i % t
            expect[b, :, rj * th:(rj + 1) * th, cj * tw:(cj + 1) * tw] = \
                x[b, :, ri * th:(ri + 1) * th, ci * tw:(ci + 1) * tw]
    assert torch.equal(apply_transport(x, src, (th, tw)), expect)
    inplace = x.clone()
    apply_transport(inplace, src, (th, tw), out=inplace)
    assert torch.equal(inplace, expect)
    with pytest.raises(ValueError, match="t_size"):
        apply_transport(x, src, (2, 2))  # a 3x4 grid of blocks: not square
    with pytest.raises(ValueError, match="src"):
        apply_transport(x, src[:, :4], (th, tw))
