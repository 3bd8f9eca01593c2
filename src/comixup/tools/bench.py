"""Benchmarks behind ``comixup bench``: the solver, the mixing methods, the graph cut's pair
costs, and the GPU code paths (``comixup bench gpu``, :mod:`comixup.tools.bench_gpu`).

Timings are medians over repeated runs after a JIT warm-up; they depend on the machine and on
what else runs on it, so the table prints the thread count and the CPU count it ran with.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["BENCHMARKS", "bench_mixers", "bench_pairwise", "bench_solver", "run_benchmark",
           "write_rows"]

from .._checks import check_bool, check_choice, check_int
from .._errors import InputError
from ..analysis.host_reads import count_host_reads
from ..analysis.problems import realistic_costs
from ..analysis.table6 import table6_rows
from ..saliency import realistic_saliency
from ._measure import Settings
from .bench_gpu import bench_gpu

#: The benchmarks of ``comixup bench <name>``: ``solver``, ``mixers``, ``pairwise`` (each
#: :func:`bench_<name>`, rows written as one JSON file) and ``gpu`` (:func:`bench_gpu`, which
#: writes its report into a directory).
BENCHMARKS = ("solver", "mixers", "pairwise", "gpu")


def _partition_statistics(z: np.ndarray) -> dict:
    """Share of mixed cells and inputs per output of one partition's labeling ``(m', g, g, m)``.

    A cell is mixed when it shows two inputs; an output uses an input when any cell shows it.
    """
    sources = (z > 0).sum(-1)
    used = (z > 0).any(axis=(1, 2)).sum(-1)
    return dict(mixed_cells=float((sources > 1).mean()), inputs_per_output=float(used.mean()))


def bench_pairwise(*, quick: bool = False, partitions: int | None = None) -> list[dict]:
    """``comixup bench pairwise``: what the graph cut's label-pair costs do to the labelings.

    Solves ``partitions`` partitions of realistic saliency (m = 20, 4x4 grid, the paper's
    hyperparameters, |L| = 3, the same seeds for both variants) with the reference's pair costs
    and with ``||z - z'||^2 / 2``, and reports the share of mixed cells, the mean number of inputs
    per output and the mean objective (Eq. (1) without prior). ``partitions`` defaults to 80, or
    10 with ``quick``. Prints the table and returns its rows.
    """
    from ..solver import PAIRWISE, objective, solve

    quick = check_bool("quick", quick)
    if partitions is None:
        partitions = 10 if quick else 80
    partitions = check_int("partitions", partitions, 1)
    rows = []
    print(f"# comixup bench pairwise  ({partitions} partitions, m = 20, 4x4 grid, |L| = 3)")
    print(f"{'pairwise':>10} {'mixed cells':>12} {'inputs/output':>14} {'mean f':>9}")
    for variant in PAIRWISE:
        stats, values = [], []
        for seed in range(partitions):
            cost, A = realistic_costs(20, rng=np.random.default_rng(seed))
            z = solve(cost, A, pairwise=variant, rng=np.random.default_rng(seed))
            stats.append(_partition_statistics(z))
            values.append(objective(cost, z, A, beta=0.32, gamma=1.0, tau=0.83))
        row = dict(pairwise=variant, partitions=partitions,
                   mixed_cells=float(np.mean([s["mixed_cells"] for s in stats])),
                   inputs_per_output=float(np.mean([s["inputs_per_output"] for s in stats])),
                   objective=float(np.mean(values)))
        rows.append(row)
        print(f"{variant:>10} {100 * row['mixed_cells']:>11.1f}% {row['inputs_per_output']:>14.2f} "
              f"{row['objective']:>9.2f}")
    return rows


def _one_thread(bench):
    """Run ``bench`` with one torch thread; the caller's settings come back after it
    (:class:`~comixup.tools._measure.Settings`)."""

    @functools.wraps(bench)
    def wrapper(*args, **kwargs):
        with Settings():
            torch.set_num_threads(1)
            return bench(*args, **kwargs)

    return wrapper


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


@_one_thread
def bench_solver(*, quick: bool = False) -> list[dict]:
    """``comixup bench solver``: Algorithm 1 time and objective on realistic saliency.

    For m in {2, 10, 20, 50, 100} and |L| in {2, 3, 4}: the median time per partition (one
    thread, after warm-up) and the mean objective (Eq. (1) without prior) over the same problems;
    then ``CoMixup`` end to end on a batch of 100x3x32x32 with 1 and 2 workers, then Table 6.
    With ``quick``, m up to 20 and fewer problems, repeats and seeds. Prints the tables and
    returns their rows.
    """
    from ..analysis.timing import solver_timing

    quick = check_bool("quick", quick)
    ms = (2, 10, 20) if quick else (2, 10, 20, 50, 100)
    problems = 10 if quick else 50
    rows = []
    print(f"# comixup bench solver  (cpus={os.cpu_count()}, torch threads=1, numba, "
          "4x4 grid, n_iter=4)")
    print(f"{'m':>4} {'|L|':>4} {'median ms':>10} {'mean f':>10} {'std f':>8}")
    for row in solver_timing(ms, (2, 3, 4), problems=problems):  # shared with Figure 6
        rows.append(row)
        print(f"{row['m']:>4} {row['levels']:>4} {row['median_ms']:>10.3f} "
              f"{row['mean_f']:>10.3f} {row['std_f']:>8.3f}")
    _bench_comixup_end_to_end(rows, quick)
    seeds = 20 if quick else 100
    print(f"# Table 6 (|L| = 2, unary U[0, 1], hard clipping, {seeds} seeds)")
    print(f"{'m':>3} {'n':>3} {'settings':>22} {'f_solve':>8} {'f_opt':>8} "
          f"{'f_random':>9} {'rel err':>8}")
    for r in table6_rows(seeds=seeds):  # the rows of comixup analyze table6
        label = f"restarts={r['restarts']} polish={r['polish']}"
        print(f"{r['m']:>3} {r['n']:>3} {label:>22} {r['f_solve']:>8.3f} {r['f_opt']:>8.3f} "
              f"{r['f_random']:>9.3f} {r['rel_error']:>8.4f}")
        rows.append(dict(table6=True, **r))
    return rows


def _bench_comixup_end_to_end(rows: list, quick: bool) -> None:
    from ..mixers.comixup import CoMixup

    rng = np.random.default_rng(0)
    x = torch.rand(100, 3, 32, 32)
    y = torch.randint(0, 100, (100,), generator=torch.Generator().manual_seed(0))
    sal = torch.from_numpy(realistic_saliency(100, 32, rng=rng)).float()
    print(f"{'CoMixup 100x3x32x32':<24} {'workers':>8} {'median ms':>10}")
    for workers in (1, 2):
        comix = CoMixup(100, workers=workers, generator=torch.Generator().manual_seed(0))
        for _ in range(3):
            comix(x, y, sal)
        t = _median_ms(lambda comix=comix: comix(x, y, sal), 10 if quick else 50)
        rows.append(dict(m="CoMixup", levels=3, workers=workers, median_ms=t))
        print(f"{'':<24} {workers:>8} {t:>10.3f}")


@_one_thread
def bench_mixers(*, quick: bool = False) -> list[dict]:
    """``comixup bench mixers``: per-batch cost of every mixing method (recipes 4).

    Batches of 100x3x32x32 and 100x3x64x64 random images with integer labels and
    :func:`realistic_saliency`; for each method the median wall time of one call (one torch
    thread, after a warm-up of 3 calls) over ``repeats`` calls (50, or 10 with ``quick``;
    twice as many for Puzzle Mix with the grid drawn per call, whose cost is a mixture over
    ``g in {2, 4, 8, 16}``). Methods: Input Mixup, CutMix, Manifold Mixup (its ``mix_fn`` alone,
    on a hidden tensor of the shape of PreActResNet18's ``layer1`` output, stride-1 stem at 32
    and the Tiny-ImageNet stride-2 stem at 64: the rest of its cost is the model's forward),
    multi-input Mixup and CutMix with ``k = 3``, Puzzle Mix (Kim, Choo and Song, ICML 2020) with
    the grid drawn as the reference and fixed at 2, 4, 8 and 16 (one graph-cut worker thread,
    plus the drawn grid and ``g = 16`` with 2), Co-Mixup (``g = 4``) with 1 and 2 workers, FMix,
    ResizeMix, SaliencyMix (its spectral-residual saliency included) and GuidedMixup (SR: its
    spectral-residual saliency included; AP: given the same saliency as Co-Mixup, whose
    gradient pass, the same for both, is the model's cost). The last column counts the reads of
    batch values back to the host per call with the value checks off, as for tensors on a GPU
    (:func:`comixup.analysis.host_reads.count_host_reads`): each would be a device
    synchronisation. Prints one table (method, size, median ms, host
    reads) and returns its rows.
    """

    def cases_for(size: int) -> list:
        """``(name, zero-argument call, repeat factor)`` of every method at one image size."""
        from ..mixers import create
        from ..mixers.mixup import mix_pair, sample_lambda
        from ..models.preactresnet import preactresnet18

        gen = torch.Generator().manual_seed(size)
        x = torch.rand(100, 3, size, size, generator=gen)
        y = torch.randint(0, 100, (100,), generator=gen)
        sal = torch.from_numpy(
            realistic_saliency(100, size, rng=np.random.default_rng(size))).float()
        model = preactresnet18(100, stem_stride=1 if size == 32 else 2)
        with torch.no_grad():
            hidden_shape = tuple(model.layer1(model.conv1(x[:1])).shape[1:])
        hidden = torch.rand(100, *hidden_shape, generator=gen)

        def seed() -> torch.Generator:
            return torch.Generator().manual_seed(0)

        manifold_gen = seed()

        def manifold_mix_fn(**_):
            lam = sample_lambda(2.0, manifold_gen)
            perm = torch.randperm(hidden.shape[0], generator=manifold_gen)
            return mix_pair(hidden, perm, lam)

        def call(name, **options):
            mixer = create(name, 100, generator=seed(), **options)
            if mixer.uses_saliency:
                return lambda **kw: mixer(x, y, sal, **kw)
            return lambda **kw: mixer(x, y, **kw)

        cases = [
            ("InputMixup", call("mixup"), 1),
            ("CutMix", call("cutmix"), 1),
            (f"ManifoldMixup mix_fn {'x'.join(map(str, hidden_shape))}", manifold_mix_fn, 1),
            ("MultiInputMixup k=3", call("mixup3"), 1),
            ("MultiCutMix k=3", call("cutmix3"), 1),
            ("PuzzleMix grid drawn, 1 worker", call("puzzlemix", workers=1), 2),
        ]
        cases += [(f"PuzzleMix grid={g}, 1 worker", call("puzzlemix", grid=g, workers=1), 1)
                  for g in (2, 4, 8, 16)]
        cases += [
            ("PuzzleMix grid drawn, 2 workers", call("puzzlemix", workers=2), 2),
            ("PuzzleMix grid=16, 2 workers", call("puzzlemix", grid=16, workers=2), 1),
            ("CoMixup grid=4, 1 worker", call("comixup", workers=1), 1),
            ("CoMixup grid=4, 2 workers", call("comixup", workers=2), 1),
            ("FMix", call("fmix"), 1),
            ("ResizeMix", call("resizemix"), 1),
            ("SaliencyMix", call("saliencymix"), 1),
            ("GuidedMixup SR (spectral saliency)", call("guidedmixup-sr"), 1),
            ("GuidedMixup AP (given saliency)", call("guidedmixup-ap"), 1),
        ]
        return cases, [x, y, sal, hidden]

    quick = check_bool("quick", quick)
    repeats = 10 if quick else 50
    rows: list[dict] = []
    print(f"# comixup bench mixers  (cpus={os.cpu_count()}, torch threads=1, batch 100, "
          f"median over {repeats} calls after 3 warm-up calls)")
    print(f"{'method':<34} {'size':>10} {'median ms':>10} {'host reads':>11}")
    for size in (32, 64):
        cases, tracked = cases_for(size)
        for name, fn, factor in cases:
            for _ in range(3):
                fn()
            t = _median_ms(fn, factor * repeats)
            # the reads of a GPU batch: value checks off, as they are for device tensors
            reads = count_host_reads(lambda fn=fn: fn(validate=False), tracked)
            label = f"{size}x{size}"
            rows.append({"method": name, "size": label, "median_ms": t, "repeats": factor * repeats,
                         "host_reads": reads.batch, "scalar_reads": reads.scalar})
            print(f"{name:<34} {label:>10} {t:>10.3f} {reads.batch:>11}")
    return rows


def write_rows(rows: list[dict], path) -> Path:
    """Write benchmark ``rows`` to ``path`` as JSON (creating its directory, replacing an
    existing file); return the path."""
    path = _check_out(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2, default=str) + "\n")
    return path


def run_benchmark(name: str, *, quick: bool = False, out=None, device=None) -> list[dict] | dict:
    """Run benchmark ``name`` (one of :data:`BENCHMARKS`, i.e. :func:`bench_<name>`) and, with
    ``out``, write its rows there with :func:`write_rows`; return the rows.

    ``gpu`` is :func:`bench_gpu` on ``device`` (default ``"cuda"``): ``out`` is its directory
    (default ``./bench_gpu``) and it returns its report. ``device`` is for ``gpu`` only.
    """
    name = check_choice("name", name, BENCHMARKS)
    if name == "gpu":
        return bench_gpu(device="cuda" if device is None else device, quick=quick, out=out)
    if device is not None:
        raise InputError(f"--device is an option of comixup bench gpu only, not of bench {name}")
    bench = globals()[f"bench_{name}"]
    if out is not None:
        _check_out(out)  # before a benchmark of minutes, not after it
    rows = bench(quick=quick)
    if out is not None:
        write_rows(rows, out)
    return rows


def _check_out(path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--out must be a file name, but {path} is a directory")
    return path
