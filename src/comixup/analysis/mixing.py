"""Figure 2 (b)-(d): what the mixing does to a batch, for every method.

Definitions (Section 3 / Figure 2 of Co-Mixup; the methods' outputs are measured, not modelled):

* **Source ratios.** Every mixer is called with the labels ``y = arange(B)`` and
  ``num_classes = B``, so its soft targets are the ``(B', B)`` matrix ``R`` whose row ``j`` is
  the share of every input in output ``j`` (pixel mass for CutMix, Puzzle Mix and Co-Mixup,
  mixing weights for Input Mixup).
* **Inputs per output** (Figure 2 (b)): ``#{i : R[j, i] > 1e-6}``; its histogram over outputs.
* **Diversity** (Figure 2 (d)): ``1 - sum_j sum_{j' != j} o~_j . o~_j' / m`` with
  ``o~_j = R[j] / ||R[j]||_1`` and ``m`` the number of inputs (1 for no mixing; ``1 - 2 lambda
  (1 - lambda)`` for Input Mixup with a derangement).
* **Batch saliency** (Figure 2 (c)). Each input's saliency map ``s_i`` (full resolution) is
  normalized to sum 1. Output ``j`` carries, at every pixel ``p``, ``sum_i w_ji(p) s_i(q_ji(p))``:
  for each source ``i`` shown at ``p`` (with weight ``w_ji(p)``, from pixel ``q_ji(p)`` of input
  ``i`` - ``p`` itself unless Puzzle Mix's transport moved the block), the normalized saliency
  of ``i`` there, weighted by its mixing weight. The batch saliency is the mean over outputs of
  ``sum_p`` of that map. It is computed by mixing the normalized saliency maps themselves with
  the same parameters as the images: an extra image channel for Input Mixup, CutMix and Co-Mixup
  (they never look at the pixel values), the returned mask and transport plans for Puzzle Mix.
  No mixing gives exactly 1, Input Mixup exactly 1, CutMix 1 in expectation.

:func:`run_mixing` (``comixup analyze mixing``) measures all three on a batch of 100 test images
of the synthetic benchmark (or of a checkpoint's dataset), with the saliency of
:func:`comixup.saliency.clean_loss_and_saliency` from the checkpoint's model or from a
PreActResNet18 of width 16 trained for a few epochs on the fly, and plots Figure 2 (b)-(d).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from .._checks import check_int
from ._io import out_dir, progress, pyplot, write_csv

__all__ = [
    "DEFAULT_TAUS",
    "METHODS",
    "PAPER_BATCH_SALIENCY",
    "batch_saliency",
    "diversity",
    "input_histogram",
    "inputs_per_output",
    "load_batch",
    "make_mixer",
    "mix_batch",
    "mixing_statistics",
    "model_saliency",
    "normalize_saliency",
    "quick_model",
    "run_mixing",
]

#: Methods of Figure 2 (c), in its order.
METHODS = ("none", "mixup", "cutmix", "puzzlemix", "comixup")
#: Figure 2 (c): the mean batch saliency the paper reports (ImageNet).
PAPER_BATCH_SALIENCY = {"none": 1.0, "mixup": 1.0, "cutmix": 1.0, "puzzlemix": 1.22,
                        "comixup": 1.36}
#: The tau values of the diversity sweep (Figure 2 (d)).
DEFAULT_TAUS = (0.0, 0.2, 0.4, 0.6, 0.83, 1.0, 1.2)
_LABELS = {"none": "no mixing", "mixup": "Input Mixup", "cutmix": "CutMix",
           "puzzlemix": "Puzzle Mix", "comixup": "Co-Mixup", "mixup3": "Input Mixup k=3",
           "mixup4": "Input Mixup k=4", "cutmix3": "CutMix k=3", "cutmix4": "CutMix k=4"}


def _ratios(ratios) -> np.ndarray:
    r = ratios.detach().cpu().double().numpy() if isinstance(ratios, torch.Tensor) \
        else np.asarray(ratios, dtype=np.float64)
    if r.ndim != 2:
        raise ValueError(f"ratios must be a (B', B) matrix, got shape {r.shape}")
    return r


def inputs_per_output(ratios, tol: float = 1e-6) -> np.ndarray:
    """Number of inputs with a share above ``tol`` in every output (Figure 2 (b)), ``(B',)``."""
    return (_ratios(ratios) > tol).sum(1)


def input_histogram(counts, max_count: int = 8) -> np.ndarray:
    """Histogram of :func:`inputs_per_output`: entry ``c - 1`` counts the outputs that mix
    ``c`` inputs, for ``c = 1 .. max_count`` (the last bin holds ``max_count`` and more)."""
    counts = np.asarray(counts, dtype=np.int64)
    max_count = check_int("max_count", max_count, 1)
    return np.bincount(np.clip(counts, 1, max_count) - 1, minlength=max_count)


def diversity(ratios) -> float:
    """``1 - sum_j sum_{j' != j} o~_j . o~_j' / m`` with ``o~_j = R[j] / ||R[j]||_1``
    (Figure 2 (d)); ``m`` is the number of inputs (columns of ``ratios``)."""
    r = _ratios(ratios)
    o = r / r.sum(1, keepdims=True)
    gram = o @ o.T
    return float(1.0 - (gram.sum() - np.trace(gram)) / r.shape[1])


def normalize_saliency(saliency: torch.Tensor) -> torch.Tensor:
    """Each ``(H, W)`` map divided by its sum (an all-zero map becomes uniform), float32."""
    if not isinstance(saliency, torch.Tensor) or saliency.dim() != 3:
        raise ValueError("saliency must be a (B, H, W) tensor")
    s = saliency.detach().float()
    total = s.sum((1, 2), keepdim=True)
    uniform = torch.full_like(s, 1.0 / (s.shape[1] * s.shape[2]))
    return torch.where(total > 0, s / total.clamp_min(1e-30), uniform)


def batch_saliency(mixed_saliency: torch.Tensor) -> float:
    """Mean over outputs of the total normalized saliency each carries (Figure 2 (c))."""
    return float(mixed_saliency.detach().double().flatten(1).sum(1).mean())


def make_mixer(method: str, batch: int, *, seed: int = 0, tau: float = 0.83, mean=None,
               std=None, partition: int = 20):
    """The mixer of ``method`` (:func:`comixup.mixers.create`) with ``num_classes = batch`` (so
    its targets are the source ratios) and a generator seeded with ``seed``.

    Methods: ``none`` (the unmixed batch), ``mixup``, ``cutmix``, ``mixup3``, ``mixup4``,
    ``cutmix3``, ``cutmix4``, ``puzzlemix``, ``comixup`` (with ``tau`` and ``partition``; the
    paper's other defaults).
    """
    from .. import mixers

    if method not in _LABELS:
        raise ValueError(f"method must be one of {sorted(_LABELS)}, got {method!r}")
    options = {"puzzlemix": dict(mean=mean, std=std, workers=1),
               "comixup": dict(tau=tau, partition=partition, workers=1)}.get(method, {})
    return mixers.create("vanilla" if method == "none" else method, batch,
                         generator=torch.Generator().manual_seed(int(seed)), **options)


def mix_batch(mixer, x: torch.Tensor, saliency: torch.Tensor,
              dense: torch.Tensor | None = None) -> dict:
    """Mix ``x`` and the normalized saliency with the same parameters: the mixer draws them
    for ``x`` (and its saliency), then :meth:`~comixup.mixers.Mixer.apply` mixes the images
    with the normalized saliency as an extra channel (and ``dense``, per-pixel targets
    ``(B, K, H, W)`` such as one-hot masks, as ``K`` more).

    Returns a dict with ``x_mix`` ``(B', C, H, W)``, ``ratios`` ``(B', B)``, ``saliency``
    ``(B', H, W)``, the mixed normalized saliency (see the module docstring), and ``dense``
    ``(B', K, H, W)`` (None without ``dense``).
    """
    s = normalize_saliency(saliency)
    x, targets, sal = mixer.prepare(x, torch.arange(x.shape[0]),
                                    saliency if mixer.uses_saliency else None)
    params = mixer.sample_params(x, targets, sal)
    channels = [x.float(), s[:, None]] + ([dense.float()] if dense is not None else [])
    x_mix, ratios = mixer.apply(torch.cat(channels, 1), targets, params)
    c = x.shape[1]
    return dict(x_mix=x_mix[:, :c].to(x.dtype), ratios=ratios.to(x.dtype), saliency=x_mix[:, c],
                dense=x_mix[:, c + 1:] if dense is not None else None)


def mixing_statistics(method: str, x, saliency, *, seeds: Sequence[int] = (0,), tau: float = 0.83,
                      mean=None, std=None, max_count: int = 8) -> dict:
    """Figure 2 statistics of one method, averaged over mixing draws ``seeds``.

    Returns a dict with ``method``, ``tau``, ``histogram`` (outputs per input count, summed over
    draws and divided by their number), ``mean_inputs``, ``mode_inputs``, ``diversity`` and
    ``batch_saliency`` (means over draws).
    """
    hist = np.zeros(max_count)
    div, sal, mean_in = [], [], []
    for seed in seeds:
        mixer = make_mixer(method, x.shape[0], seed=seed, tau=tau, mean=mean, std=std)
        out = mix_batch(mixer, x, saliency)
        counts = inputs_per_output(out["ratios"])
        hist += input_histogram(counts, max_count)
        mean_in.append(counts.mean())
        div.append(diversity(out["ratios"]))
        sal.append(batch_saliency(out["saliency"]))
    hist /= len(seeds)
    return dict(method=method, tau=tau if method == "comixup" else None, histogram=hist,
                mean_inputs=float(np.mean(mean_in)), mode_inputs=int(hist.argmax() + 1),
                diversity=float(np.mean(div)), batch_saliency=float(np.mean(sal)))


def quick_model(*, epochs: int = 2, train_images: int = 5000, width: int = 16, seed: int = 0,
                show_progress: bool = True, log: Callable[[str], None] = print):
    """A PreActResNet18 of width ``width`` trained on the synthetic benchmark for ``epochs``.

    Plain cross-entropy, SGD (lr 0.1, Nesterov momentum 0.9, weight decay 1e-4), batch 100,
    the first ``train_images`` training images, one torch thread; the initialization uses
    ``torch.manual_seed(seed)`` and the shuffling a generator seeded with ``seed``. It is only a
    saliency source for the mixing statistics (a few epochs already localize the objects).

    Returns:
        ``(model, info)``: the model in eval mode and the dataset's
        :class:`~comixup.data.DatasetInfo`.
    """
    import torch.nn.functional as F

    from ..data.synthetic import SyntheticConfig, generate, load_or_generate, synthetic_info
    from ..models import create

    epochs = check_int("epochs", epochs, 0)
    train_images = check_int("train_images", train_images, 1)
    torch.set_num_threads(1)
    config = SyntheticConfig()
    info = synthetic_info(config)
    # A prefix of the training split (sample i does not depend on n): render a few directly.
    data = (generate(config, "train", n=train_images) if train_images < config.num_train
            else load_or_generate(config, "train"))
    x = _normalize(torch.from_numpy(data["images"][:train_images]), info)
    y = torch.from_numpy(data["labels"][:train_images])
    torch.manual_seed(seed)
    model = create("preactresnet18", info.num_classes, initial_channels=width)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        batches = [order[i:i + 100] for i in range(0, len(y), 100)]
        for idx in progress(batches, desc=f"saliency model, epoch {epoch + 1}/{epochs}",
                            enabled=show_progress):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    log(f"trained a width-{width} PreActResNet18 for {epochs} epoch(s) on {len(y)} synthetic "
        f"images in {time.perf_counter() - t0:.1f} s (saliency source)")
    return model, info


def _normalize(images_uint8: torch.Tensor, info) -> torch.Tensor:
    x = images_uint8.permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (x - mean) / std


def load_batch(batch: int = 100, checkpoint=None):
    """The first ``batch`` test images: ``(x, y, info, model)``.

    With ``checkpoint`` (a ``last.pt`` of ``comixup train``) the model and the test data come
    from its configuration; otherwise the synthetic benchmark's test split and ``model = None``.
    ``x`` is normalized as the dataset's training input.
    """
    batch = check_int("batch", batch, 2)
    if checkpoint is not None:
        from ..run import load_run

        # on the CPU, on the whole test split (not the run's limit_test subset)
        run = load_run(checkpoint, device="cpu", overrides={"limit_test": None})
        items = [run.dataset[i] for i in range(min(batch, len(run.dataset)))]
        x = torch.stack([it[0] for it in items])
        y = torch.tensor([int(it[1]) for it in items])
        return x, y, run.info, run.model
    from ..data.synthetic import SyntheticConfig, generate, synthetic_info

    config = SyntheticConfig()
    info = synthetic_info(config)
    data = generate(config, "test", n=batch)
    return (_normalize(torch.from_numpy(data["images"]), info), torch.from_numpy(data["labels"]),
            info, None)


def model_saliency(model, x, y) -> torch.Tensor:
    """The paper's saliency of ``x`` under ``model``: the input gradient of the cross-entropy,
    ``sqrt(mean_c grad^2)`` (Section 4.1; eval mode, no weight gradient is kept)."""
    from ..saliency import clean_loss_and_saliency

    return clean_loss_and_saliency(model, x, y, clean_lam=0.0)[1]


def run_mixing(*, checkpoint=None, taus: Sequence[float] = DEFAULT_TAUS, batch: int = 100,
               epochs: int = 2, train_images: int = 5000, draws: int = 5, seed: int = 0,
               out=None, show_progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """``comixup analyze mixing``: Figure 2 (b)-(d) as ``mixing.png`` and ``mixing.csv``.

    Args:
        checkpoint: a ``last.pt``; its model gives the saliency and its test split the batch.
            Without one, the synthetic benchmark and :func:`quick_model` (``epochs``,
            ``train_images``).
        taus: Co-Mixup's tau values (Figure 2 (b) and (d)); 0.83 (the paper's) is added.
        batch: images in the batch (the paper: 100).
        draws: mixing draws averaged per method (seeds ``seed .. seed + draws - 1``).

    Returns:
        dict with ``rows`` (one per method and tau), ``seconds`` and ``files``.
    """
    t0 = time.perf_counter()
    taus = sorted({float(t) for t in taus} | {0.83})
    if any(t < 0 for t in taus):
        raise ValueError(f"taus must be >= 0, got {taus}")
    draws = check_int("draws", draws, 1)
    torch.set_num_threads(1)
    x, y, info, model = load_batch(batch, checkpoint)
    if model is None:
        model, _ = quick_model(epochs=epochs, train_images=train_images, seed=seed,
                               show_progress=show_progress, log=log)
        source = f"a width-16 PreActResNet18 trained {epochs} epoch(s) on the fly"
    else:
        source = f"the model of {checkpoint}"
    sal = model_saliency(model, x, y)
    seeds = list(range(seed, seed + draws))
    runs = [(m, 0.83) for m in METHODS if m != "comixup"] + [("comixup", t) for t in taus]
    rows = []
    for method, tau in progress(runs, desc="mixing statistics", enabled=show_progress):
        st = mixing_statistics(method, x, sal, seeds=seeds, tau=tau, mean=info.mean, std=info.std)
        rows.append(st)
    seconds = time.perf_counter() - t0
    log(f"# Figure 2: batch of {x.shape[0]} images, saliency from {source}, {draws} draws")
    log(f"{'method':<12} {'tau':>5} {'mean inputs':>12} {'mode':>5} {'diversity':>10} "
        f"{'batch saliency':>15} {'paper':>6}")
    for r in rows:
        paper = PAPER_BATCH_SALIENCY.get(r["method"]) if r["tau"] in (None, 0.83) else None
        log(f"{r['method']:<12} {'' if r['tau'] is None else r['tau']:>5} "
            f"{r['mean_inputs']:>12.2f} {r['mode_inputs']:>5} {r['diversity']:>10.3f} "
            f"{r['batch_saliency']:>15.3f} {'' if paper is None else paper:>6}")
    files = []
    csv_rows = [dict(method=r["method"], tau=r["tau"], mean_inputs=r["mean_inputs"],
                     mode_inputs=r["mode_inputs"], diversity=r["diversity"],
                     batch_saliency=r["batch_saliency"],
                     paper_batch_saliency=PAPER_BATCH_SALIENCY.get(r["method"])
                     if r["tau"] in (None, 0.83) else None,
                     **{f"outputs_with_{c + 1}_inputs": h for c, h in enumerate(r["histogram"])})
                for r in rows]
    if out is not None:
        d = out_dir(out)
        files = [str(write_csv(d / "mixing.csv", csv_rows)),
                 str(_plot(rows, d / "mixing.png", source, x.shape[0]))]
        log(f"wrote {', '.join(files)} ({seconds:.1f} s)")
    return dict(rows=rows, csv_rows=csv_rows, seconds=seconds, files=files, source=source)


def _plot(rows, path, source, batch):
    plt = pyplot()
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.4))
    co = [r for r in rows if r["method"] == "comixup"]
    pick = [co[0], next(r for r in co if r["tau"] == 0.83), co[-1]] if len(co) > 2 else co
    pick = list({id(r): r for r in pick}.values())
    width = 0.8 / len(pick)
    for i, r in enumerate(pick):
        c = np.arange(1, len(r["histogram"]) + 1)
        ax1.bar(c + (i - (len(pick) - 1) / 2) * width, r["histogram"], width=width,
                label=f"tau = {r['tau']:g}")
    ax1.set_xlabel("number of mixed inputs")
    ax1.set_ylabel(f"outputs (of {batch})")
    ax1.set_title("(b) inputs per Co-Mixup output", fontsize=9)
    ax1.legend(fontsize=7)
    base = [r for r in rows if r["method"] != "comixup"] + [pick[1] if len(pick) > 1 else co[0]]
    names = [_LABELS[r["method"]] for r in base]
    ax2.bar(names, [r["batch_saliency"] for r in base], color="tab:blue", label="ours")
    ax2.plot(names, [PAPER_BATCH_SALIENCY[r["method"]] for r in base], "k*", ms=9,
             label="paper (ImageNet)")
    for i, r in enumerate(base):
        ax2.text(i, r["batch_saliency"] + 0.01, f"{r['batch_saliency']:.2f}", ha="center",
                 fontsize=7)
    ax2.set_ylim(0.8, max(1.5, max(r["batch_saliency"] for r in base) + 0.1))
    ax2.set_title("(c) batch saliency (Co-Mixup at tau = 0.83)", fontsize=9)
    ax2.tick_params(axis="x", labelsize=7, rotation=20)
    ax2.legend(fontsize=7)
    ax3.plot([r["tau"] for r in co], [r["diversity"] for r in co], "r-o", label="Co-Mixup")
    for r, style in zip([r for r in rows if r["method"] != "comixup"], ["-", "--", ":", "-."]):
        ax3.axhline(r["diversity"], color="gray", ls=style, lw=1, label=_LABELS[r["method"]])
    ax3.set_xlabel("tau")
    ax3.set_ylabel("diversity")
    ax3.set_title("(d) diversity against tau", fontsize=9)
    ax3.legend(fontsize=7)
    fig.suptitle(f"Figure 2 (b)-(d) on a batch of {batch}; saliency from {source}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
