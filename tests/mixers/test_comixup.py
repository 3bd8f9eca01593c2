"""CoMixup: properties over shapes, determinism, worker independence, errors."""

import dataclasses
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comixup import CoMixup
from comixup.saliency import compatibility, pooled_unary, realistic_saliency, salient_location
from comixup.solver import objective


def one_hot_coded(batch, h, w, dtype=torch.float32):
    """x_i = e_i in channel space: channel i of x_mix[j] is the weight of input i at each pixel."""
    x = torch.zeros(batch, batch, h, w, dtype=dtype)
    x[torch.arange(batch), torch.arange(batch)] = 1.0
    return x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.integers(1, 130),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    partition=st.integers(1, 25),
    grid=st.sampled_from([-1, 1, 2, 3, 4, 5, 6, 7, 8]),
    levels=st.sampled_from([2, 3, 4]),
    seed=st.integers(0, 2**31 - 1),
)
def test_pixel_weights_sum_to_one_and_targets_are_pixel_mass(batch, h, w, partition, grid, levels,
                                                              seed):
    x = one_hot_coded(batch, h, w)
    y = torch.arange(batch)
    gen = torch.Generator().manual_seed(seed)
    sal = torch.rand(batch, h, w, generator=gen)
    comix = CoMixup(batch, grid=grid, partition=partition, levels=levels, workers=1,
                    generator=torch.Generator().manual_seed(seed))
    x_mix, y_mix = comix(x, y, sal)
    assert x_mix.shape == x.shape and y_mix.shape == (batch, batch)
    assert torch.isfinite(x_mix).all() and torch.isfinite(y_mix).all()
    torch.testing.assert_close(x_mix.sum(1), torch.ones(batch, h, w))
    torch.testing.assert_close(y_mix, x_mix.mean((2, 3)))  # target = mean pixel weight
    torch.testing.assert_close(y_mix.sum(1), torch.ones(batch))
    # Outputs only mix inputs of their own partition.
    part = torch.arange(batch) // partition
    outside = part[:, None] != part[None, :]
    assert (y_mix[outside] == 0).all()


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(2, 70), grid=st.sampled_from([-1, 2, 4]), seed=st.integers(0, 2**31 - 1))
def test_deterministic_and_independent_of_workers(batch, grid, seed):
    x = torch.rand(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 10, (batch,), generator=torch.Generator().manual_seed(seed))
    sal = torch.rand(batch, 16, 16, generator=torch.Generator().manual_seed(seed + 1))
    results = [
        CoMixup(10, grid=grid, workers=workers,
                generator=torch.Generator().manual_seed(seed))(x, y, sal)
        for workers in (1, 2, 4, 1)
    ]
    for x_mix, y_mix in results[1:]:
        assert torch.equal(x_mix, results[0][0]) and torch.equal(y_mix, results[0][1])


def test_global_seed_applies_without_a_generator():
    x, y, sal = torch.rand(8, 3, 8, 8), torch.arange(8), torch.rand(8, 8, 8)
    torch.manual_seed(3)
    a = CoMixup(8, grid=-1)(x, y, sal)
    torch.manual_seed(3)
    b = CoMixup(8, grid=-1)(x, y, sal)
    assert torch.equal(a[0], b[0])


def test_realistic_batch_mixes_salient_regions():
    rng = np.random.default_rng(0)
    sal = torch.from_numpy(realistic_saliency(40, 32, rng=rng)).float()
    x = one_hot_coded(40, 32, 32)
    comix = CoMixup(40, generator=torch.Generator().manual_seed(0))
    x_mix, y_mix, info = comix(x, torch.arange(40), sal, return_info=True)
    assert info.grid == 4 and info.partitions == [(0, 20), (20, 40)]
    assert [z.shape for z in info.labelings] == [(20, 4, 4, 20)] * 2
    torch.testing.assert_close(y_mix, info.ratios)
    # Outputs carry more saliency than the average input region would (Figure 2c > 1).
    sal_n = sal / sal.sum((1, 2), keepdim=True)
    carried = (x_mix * sal_n[None]).sum((2, 3)).sum(1)  # mass of each input's saliency kept
    assert carried.mean() > 1.0
    # Most outputs mix more than one input.
    assert ((y_mix > 0).sum(1) >= 2).float().mean() > 0.5


def test_restarts_lower_the_mean_objective():
    # With eta = 0 the solver's objective is Eq. (1) on the pooled saliency, so the best of
    # four restarts can only be lower than one run.
    sal = torch.from_numpy(realistic_saliency(40, 32, rng=np.random.default_rng(1))).float()
    cost = -pooled_unary(sal, 4).double().numpy()
    loc = salient_location(sal)
    totals = {}
    for restarts in (1, 4):
        comix = CoMixup(40, restarts=restarts, eta=0.0, generator=torch.Generator().manual_seed(0))
        _, _, info = comix(one_hot_coded(40, 32, 32), torch.arange(40), sal, return_info=True)
        totals[restarts] = sum(
            objective(cost[a:b], z, compatibility(loc[a:b]).numpy(), beta=0.32, gamma=1.0, tau=0.83)
            for (a, b), z in zip(info.partitions, info.labelings)
        )
    assert totals[4] < totals[1]


def test_soft_targets_are_mixed():
    x = one_hot_coded(6, 8, 8)
    y = torch.softmax(torch.randn(6, 4), 1)
    x_mix, y_mix = CoMixup(4, generator=torch.Generator().manual_seed(0))(x, y, torch.rand(6, 8, 8))
    torch.testing.assert_close(y_mix, x_mix.mean((2, 3)) @ y)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_any_float_dtype(dtype):
    x = one_hot_coded(5, 8, 8, dtype=dtype)
    x_mix, y_mix = CoMixup(5, generator=torch.Generator().manual_seed(0))(
        x, torch.arange(5), torch.rand(5, 8, 8))
    assert x_mix.dtype == dtype and y_mix.dtype == dtype
    torch.testing.assert_close(y_mix.double().sum(1), torch.ones(5, dtype=torch.float64),
                               atol=1e-2, rtol=0)


def test_zero_saliency_is_legal_and_batch_of_one_is_unmixed():
    x = torch.rand(4, 3, 8, 8)
    x_mix, _y_mix = CoMixup(3, generator=torch.Generator().manual_seed(0))(
        x, torch.tensor([0, 1, 2, 0]), torch.zeros(4, 8, 8))
    assert torch.isfinite(x_mix).all()
    one, target = CoMixup(3)(x[:1], torch.tensor([2]), torch.rand(1, 8, 8))
    assert torch.equal(one, x[:1]) and torch.equal(target, torch.tensor([[0.0, 0.0, 1.0]]))


def test_transform_pickles_after_use():
    comix = CoMixup(4, workers=2)
    comix(torch.rand(30, 3, 8, 8), torch.randint(0, 4, (30,)), torch.rand(30, 8, 8))
    clone = pickle.loads(pickle.dumps(comix))
    assert repr(clone) == repr(comix)


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((torch.rand(4, 8, 8), torch.arange(4), torch.rand(4, 8, 8)), {}, ValueError, "x"),
        ((torch.zeros(4, 3, 8, 8, dtype=torch.long), torch.arange(4), torch.rand(4, 8, 8)), {},
         TypeError, "x"),
        ((torch.rand(0, 3, 8, 8), torch.arange(0), torch.rand(0, 8, 8)), {}, ValueError, "empty"),
        ((torch.rand(4, 3, 8, 8), torch.arange(4), torch.rand(4, 8, 7)), {}, ValueError,
         "saliency"),
        ((torch.rand(4, 3, 8, 8), torch.arange(4), -torch.rand(4, 8, 8)), {}, ValueError,
         "saliency"),
        ((torch.rand(4, 3, 8, 8), torch.arange(4), torch.full((4, 8, 8), float("nan"))), {},
         ValueError, "saliency"),
        ((torch.rand(4, 3, 8, 8), torch.arange(4), torch.full((4, 8, 8), float("inf"))), {},
         ValueError, "saliency"),
        ((torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 9]), torch.rand(4, 8, 8)), {},
         ValueError, "y"),
        ((torch.rand(4, 3, 8, 8), torch.arange(3), torch.rand(4, 8, 8)), {}, ValueError, "y"),
        ((torch.rand(4, 3, 8, 8), torch.rand(4), torch.rand(4, 8, 8)), {}, TypeError, "y"),
    ],
)
def test_bad_call_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        CoMixup(5)(*args, **kwargs)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(partition=0), ValueError, "partition"),
        (dict(levels=5), ValueError, "levels"),
        (dict(grid=0), ValueError, "grid"),
        (dict(grid=-2), ValueError, "grid"),
        (dict(threshold="x"), ValueError, "threshold"),
        (dict(omega=1.5), ValueError, "omega"),
        (dict(alpha=0.0), ValueError, "alpha"),
        (dict(beta=-0.1), ValueError, "beta"),
        (dict(workers=0), ValueError, "workers"),
        (dict(restarts=0), ValueError, "restarts"),
        (dict(generator=0), TypeError, "generator"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        CoMixup(5, **kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        CoMixup(0)


def _partition_objectives(mixer, info, cost, locations, seeds):
    """Eq. (1) with the drawn Dirichlet prior of every partition's labeling, on one problem."""
    from comixup.solver import dirichlet_prior

    hp = mixer.hyperparameters
    values = []
    for (a, b), z, seed in zip(info.partitions, info.labelings, seeds):
        m, g, _ = cost[a:b].shape
        prior = dirichlet_prior(m, g * g, eta=hp.eta, alpha=hp.alpha,
                                rng=np.random.default_rng(seed))  # the solver's first draw
        values.append(objective(cost[a:b] + prior[:, None, None], z,
                                compatibility(locations[a:b], hp.omega).numpy(), beta=hp.beta,
                                gamma=hp.gamma, tau=hp.tau, threshold=mixer.threshold))
    return np.array(values)


@pytest.mark.parametrize("device", [
    "cpu",  # the same checks on one device: keeps the test's own logic exercised
    pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA device")]),
])
def test_device_matches_cpu(device):
    """A GPU call solves the problem the CPU call solves, up to float reductions in another
    order: so the labelings may differ where two are (nearly) tied, and what must agree is
    the solver inputs (to rounding), the objective of the two labelings (to a tolerance), and
    the mixing given the same labeling (the images bit for bit)."""
    from comixup.mixers.comixup import source_ratios

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 3, 32, 32, generator=g), torch.randint(0, 10, (40,), generator=g)
    sal = torch.from_numpy(realistic_saliency(40, 32, rng=np.random.default_rng(0))).float()
    mixer = CoMixup(10, workers=1)

    def call(*tensors):
        mixer.generator = torch.Generator().manual_seed(0)
        return mixer(*tensors, return_info=True)

    x_cpu, y_cpu, info_cpu = call(x, y, sal)
    x_dev, y_dev, info_dev = call(x.to(device), y.to(device), sal.to(device))
    assert x_dev.device.type == y_dev.device.type == info_dev.index.device.type == device
    # the same problem: the solver inputs agree to float32 rounding
    cost, locations = mixer.solver_inputs(sal, info_cpu.grid)
    cost_dev, locations_dev = mixer.solver_inputs(sal.to(device), info_dev.grid)
    assert info_dev.grid == info_cpu.grid and info_dev.partitions == info_cpu.partitions
    np.testing.assert_allclose(cost_dev, cost, rtol=1e-5, atol=1e-9)
    assert torch.equal(locations_dev, locations)
    # the labelings: each partition's objective (with its drawn prior) on the CPU's problem is
    # the CPU labeling's, up to a tie the other device broke the other way
    seeds = torch.randint(0, 2**62, (len(info_cpu.partitions),),
                          generator=torch.Generator().manual_seed(0)).tolist()
    f_cpu = _partition_objectives(mixer, info_cpu, cost, locations, seeds)
    f_dev = _partition_objectives(mixer, info_dev, cost, locations, seeds)
    np.testing.assert_allclose(f_dev, f_cpu, rtol=1e-4, atol=1e-9)
    # the mixing given the CPU's labeling, on the device: the images bit for bit, the pixel
    # masses and the targets (sums in another order) to float32 rounding
    index, weight = info_cpu.index.to(device), info_cpu.weight.to(device)
    ratios = source_ratios(index, weight, 40, (32, 32), torch.float32, device)
    torch.testing.assert_close(ratios.cpu(), info_cpu.ratios, rtol=1e-6, atol=1e-7)
    same = dataclasses.replace(info_cpu, index=index, weight=weight, ratios=ratios)
    targets = torch.nn.functional.one_hot(y, 10).float()
    x_same, y_same = mixer.apply(x.to(device), targets.to(device), same)
    assert torch.equal(x_same.cpu(), x_cpu)
    torch.testing.assert_close(y_same.cpu(), y_cpu, rtol=1e-6, atol=1e-7)


def test_solver_inputs_are_pooled_unary_and_salient_location_for_any_magnitude():
    from comixup.saliency import pooled_unary, salient_location

    g = torch.Generator().manual_seed(5)
    sal = torch.rand(6, 16, 16, generator=g)
    sal[1] *= 3e37  # float32 pooling would overflow: the exact path, via the flags of the copy
    sal[2] *= 1e-38  # a sum too small to divide by
    sal[3] = 0.0  # uniform
    mixer = CoMixup(4, workers=1)
    cost, locations = mixer.solver_inputs(sal, 4)
    assert cost.dtype == np.float64 and cost.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(cost, (-pooled_unary(sal, 4)).double().numpy())
    assert torch.equal(locations, salient_location(sal))


def test_cell_sizes_count_the_pixels_of_grid_index():
    from comixup.mixers.comixup import cell_sizes, grid_index

    for size in range(1, 40):
        for grid in range(1, 42):
            expected = torch.bincount(grid_index(size, grid), minlength=grid)
            got = cell_sizes(size, grid)
            assert got.dtype == expected.dtype and torch.equal(got, expected), (size, grid)


def test_solve_partitions_gives_the_labelings_of_a_call():
    # sample_params draws one seed per partition after the grid, then solves through
    # solve_partitions: the same seeds give the call's labelings, whatever the thread count
    from comixup.solver import solve

    sal = torch.from_numpy(realistic_saliency(45, 32, rng=np.random.default_rng(2))).float()
    x, y = torch.rand(45, 3, 32, 32), torch.arange(45) % 10
    mixer = CoMixup(10, workers=2, generator=torch.Generator().manual_seed(7))
    _, _, params = mixer(x, y, sal, return_info=True)
    assert mixer.partitions(45) == params.partitions == [(0, 20), (20, 40), (40, 45)]
    seeds = torch.randint(0, 2**62, (3,), generator=torch.Generator().manual_seed(7)).tolist()
    cost, locations = mixer.solver_inputs(sal, mixer.grid)
    seen = []
    for workers in (1, 2):
        mixer.workers = workers
        got = mixer.solve_partitions(cost, locations, seeds,
                                     on_solved=lambda i, z: seen.append((i, z)))
        assert len(got) == 3
        for z, ref in zip(got, params.labelings):
            np.testing.assert_array_equal(z, ref)
    assert sorted(i for i, _ in seen) == [0, 0, 1, 1, 2, 2]
    assert all(z is not None and z.shape == (b - a, 4, 4, b - a)
               for i, z in seen for a, b in [params.partitions[i]])
    # partition 1 is Algorithm 1 on its slice, with its compatibility and seed
    z1 = solve(cost[20:40], compatibility(locations[20:40], mixer.omega).numpy(),
               rng=np.random.default_rng(seeds[1]))
    np.testing.assert_array_equal(got[1], z1)


@pytest.mark.parametrize(("args", "error", "match"), [
    ((np.zeros((4, 2)), torch.zeros(4, 2, dtype=torch.long), [0]), ValueError, "cost must be"),
    ((np.zeros((4, 2, 2)), torch.zeros(3, 2, dtype=torch.long), [0]), ValueError,
     "locations must be a \\(4, 2\\) tensor"),
    ((np.zeros((4, 2, 2)), torch.zeros(4, 2, dtype=torch.long), [0, 1]), ValueError,
     "one seed per partition \\(1\\), got 2"),
    ((np.zeros((4, 2, 2)), torch.zeros(4, 2, dtype=torch.long), [-1]), ValueError, "seeds\\[0\\]"),
])
def test_solve_partitions_errors_name_the_argument(args, error, match):
    with pytest.raises(error, match=match):
        CoMixup(4, workers=1).solve_partitions(*args)
    with pytest.raises(TypeError, match="on_solved must be callable"):
        CoMixup(4, workers=1).solve_partitions(np.zeros((4, 2, 2)),
                                               torch.zeros(4, 2, dtype=torch.long), [0],
                                               on_solved=3)
