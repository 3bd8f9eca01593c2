"""Label fidelity: does a mixed image show what its soft target says it shows?

Co-Mixup's argument (Sections 1 and 3 of the paper) is that saliency-guided mixing keeps the
objects its targets name: a target that gives 40% to a class should come with an image in which
that class's object is visible. This module measures it for any mixer of :mod:`comixup.mixers`
with the benchmark's ground-truth boxes as object masks, through the mixer protocol: the
parameters are sampled once on the real batch (:meth:`comixup.mixers.base.Mixer.sample_params`,
with the graph cuts and transport of Puzzle Mix and Co-Mixup solved on the real saliency) and
then applied (:meth:`~comixup.mixers.base.Mixer.apply`) to a ``(B, B, H, W)`` stack whose
channel ``i`` holds source ``i``'s object mask and zeros elsewhere. Channel ``i`` of mixed
output ``j`` is then the part of object ``i`` that output ``j`` shows, weighted by its mixing
weight.

For an output ``j`` and a source ``i`` with target share ``t_ji = ratios[j, i] > 0``:

* ``coverage f_ji``: the fraction of object ``i``'s pixels at which output ``j`` shows source
  ``i`` at all (weight > 0): 1 for Input Mixup, the part of the object inside the kept region
  for the cut-and-paste methods;
* ``object share v_ji``: the weighted object mass, ``sum(mixed mask) / sum(mask)``; for Input
  Mixup ``v_ji = t_ji`` exactly.

Reported over all outputs and sources (:func:`label_fidelity`):

* ``visible``: the target-weighted mean coverage ``sum t f / sum t``: how much of the object a
  unit of label mass points at is visible;
* ``hidden_mass``: the share of the label mass on objects less than half visible
  (``sum_{f < 1/2} t / sum t``);
* ``hidden_pairs``: the fraction of (output, source) pairs with ``t > 0`` whose object is less
  than half visible;
* ``object_mass``: the mean over outputs of ``sum_i v_ji``: the object mass an output carries, in
  units of one whole object (1 for Input Mixup; above 1 when a mix gathers several objects'
  salient parts, below when it shows background).

:func:`saliency_in_box` is the share of a model's input-gradient saliency inside the box: how well
the saliency the guided methods rely on finds the object.
"""

from __future__ import annotations

import torch

from .._errors import InputError

__all__ = ["FIDELITY_KEYS", "fidelity_from_masks", "fidelity_over_training", "label_fidelity",
           "object_masks", "run_fidelity", "saliency_in_box"]

#: The keys of :func:`label_fidelity`'s result.
FIDELITY_KEYS = ("visible", "hidden_mass", "hidden_pairs", "object_mass")


def object_masks(masks: torch.Tensor) -> torch.Tensor:
    """The ``(B, B, H, W)`` stack whose channel ``i`` of sample ``i`` is ``masks[i]`` (float),
    zeros elsewhere: the input of :meth:`Mixer.apply` for label fidelity."""
    if not isinstance(masks, torch.Tensor) or masks.dim() != 3:
        raise ValueError(f"masks must be a (B, H, W) tensor, got {getattr(masks, 'shape', masks)}")
    b = masks.shape[0]
    out = torch.zeros(b, b, *masks.shape[1:], dtype=torch.float32, device=masks.device)
    idx = torch.arange(b, device=masks.device)
    out[idx, idx] = masks.float()
    return out


def fidelity_from_masks(mixed: torch.Tensor, masks: torch.Tensor, ratios: torch.Tensor) -> dict:
    """The statistics of the module docstring from the mixed mask stack ``mixed`` ``(B', B, H,
    W)``, the source masks ``masks`` ``(B, H, W)`` and the ``(B', B)`` target shares ``ratios``.
    A pixel of object ``i`` counts as shown in output ``j`` where ``mixed[j, i] > 1e-6``."""
    area = masks.float().flatten(1).sum(1)  # (B,)
    if bool((area <= 0).any()):
        raise ValueError("every source needs a non-empty object mask")
    shown = mixed > 1e-6
    coverage = shown.float().flatten(2).sum(2) / area[None, :]  # f (B', B)
    share = mixed.float().flatten(2).sum(2) / area[None, :]  # v (B', B)
    t = ratios.float().to(mixed.device)
    pairs = t > 1e-9
    mass = t[pairs].sum()
    hidden = pairs & (coverage < 0.5)
    return {
        "visible": float((t * coverage)[pairs].sum() / mass),
        "hidden_mass": float(t[hidden].sum() / mass),
        "hidden_pairs": float(hidden.sum() / pairs.sum()),
        "object_mass": float(share.sum(1).mean()),
    }


def label_fidelity(mixer, x: torch.Tensor, y: torch.Tensor, masks: torch.Tensor,
                   saliency: torch.Tensor | None = None) -> dict:
    """Label fidelity of one mixed batch (see the module docstring).

    Args:
        mixer: a :class:`comixup.mixers.base.Mixer` that mixes images (not inside a model).
        x: images ``(B, C, H, W)``, B >= 2.
        y: labels ``(B,)`` or soft targets.
        masks: ``(B, H, W)`` object masks (e.g. :func:`comixup.evaluate.localization.box_mask`
            of the ground-truth boxes), each non-empty.
        saliency: ``(B, H, W)`` for the saliency-guided mixers.

    Returns:
        ``{"visible", "hidden_mass", "hidden_pairs", "object_mass"}`` as floats.
    """
    from ..mixers import ManifoldMixup

    if isinstance(mixer, ManifoldMixup):
        raise TypeError(f"{type(mixer).__name__} mixes inside the model: its hidden mixes have "
                        "no image-space label fidelity")
    if x.shape[0] < 2:
        raise ValueError("label fidelity needs a batch of at least 2 images")
    if masks.shape != (x.shape[0], *x.shape[2:]):
        raise ValueError(f"masks must have shape {(x.shape[0], *x.shape[2:])}, got "
                         f"{tuple(masks.shape)}")
    with torch.no_grad():
        args = (x, y) if saliency is None else (x, y, saliency)
        _, _, params = mixer(*args, return_info=True)
        mixed, _ = mixer.apply(object_masks(masks.to(x.device)), None, params)
    return fidelity_from_masks(mixed, masks, params.ratios)


def saliency_in_box(saliency: torch.Tensor, masks: torch.Tensor) -> float:
    """The mean over samples of the share of each saliency map inside its object mask."""
    s = saliency.detach().float().flatten(1)
    total = s.sum(1).clamp_min(1e-30)
    inside = (s * masks.flatten(1).float().to(s.device)).sum(1)
    return float((inside / total).mean())


def _checkpoints(run_dir) -> list:
    """``[(epoch, path)]`` of a run's snapshots and its ``last.pt``, in epoch order."""
    from pathlib import Path

    from .. import checkpoint as ckpt_io

    run_dir = Path(run_dir)
    found = {}
    for path in sorted((run_dir / "snapshots").glob("epoch*.pt")):
        found[int(path.stem[len("epoch"):])] = path
    if (run_dir / "last.pt").is_file():
        found.setdefault(int(ckpt_io.load(run_dir / "last.pt")["epoch"]), run_dir / "last.pt")
    return sorted(found.items())


def fidelity_over_training(run_dirs, *, batches: int = 5, batch_size: int = 100, seed: int = 0,
                           device: str = "cpu", progress: bool = True) -> list[dict]:
    """Label fidelity and saliency-in-box of each run at each of its snapshots (and last.pt).

    For every run directory: its test set (which must have boxes; for a segmentation run the
    class maps are the labels and their object pixels the masks), its method's mixer built
    from the run's configuration (seeded with ``seed``), and for each checkpoint the model's
    eval-mode input-gradient saliency (:func:`comixup.saliency.clean_loss_and_saliency` with
    ``clean_lam=0``) on ``batches`` test batches of ``batch_size``. The mixer's parameters are
    sampled with that saliency, so Co-Mixup's and Puzzle Mix's fidelity follows the model.

    Returns:
        One row per (run, epoch): ``label``, ``method``, ``seed``, ``epoch``,
        ``saliency_in_box`` and the :data:`FIDELITY_KEYS` (None for methods without an
        image-space mixer: Vanilla, Manifold Mixup, VAT).
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from ..evaluate.localization import box_mask
    from ..mixers import ManifoldMixup
    from ..run import build_method, load_run
    from ..saliency import clean_loss_and_saliency

    rows = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        run = load_run(run_dir / "config.json", device=device)
        cfg, dataset, dev = run.cfg, run.dataset, run.device
        if getattr(dataset, "all_boxes", None) is None:
            raise InputError(f"{run_dir}: the test set of {cfg.data!r} has no per-image boxes "
                             "(label fidelity runs on the synthetic benchmark)")
        n = min(len(dataset), batches * batch_size)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
        samples = [dataset[int(i)] for i in order]
        images = torch.stack([s[0] for s in samples])
        if run.info.task == "segmentation":  # class maps: the objects' own pixels as masks
            labels = torch.stack([s[1] for s in samples])
            masks = (labels > 0).float()
        else:
            labels = torch.tensor([int(s[1]) for s in samples])
            masks = box_mask(dataset.all_boxes[order], *images.shape[2:])
        for epoch, path in tqdm(_checkpoints(run_dir), desc=run_dir.name, disable=not progress):
            run.load_weights(path)
            mixer = build_method(cfg, run.info, seed=seed).mixer
            image_mixer = not isinstance(mixer, ManifoldMixup)
            stats = {k: [] for k in ("saliency_in_box", *FIDELITY_KEYS)}
            for start in range(0, n, batch_size):
                x = images[start:start + batch_size].to(dev)
                y = labels[start:start + batch_size].to(dev)
                m = masks[start:start + batch_size]
                _, sal = clean_loss_and_saliency(run.model, x, y, clean_lam=0)
                stats["saliency_in_box"].append(saliency_in_box(sal, m))
                if image_mixer and x.shape[0] >= 2:
                    got = label_fidelity(mixer, x, y, m.to(dev),
                                         sal if getattr(mixer, "uses_saliency", False) else None)
                    for k in FIDELITY_KEYS:
                        stats[k].append(got[k])
            row = {"label": cfg.label or cfg.method, "method": cfg.method, "seed": cfg.seed,
                   "epoch": epoch, "run": str(run_dir)}
            row.update({k: (sum(v) / len(v) if v else None) for k, v in stats.items()})
            rows.append(row)
    return rows


def run_fidelity(paths, *, batches: int = 5, batch_size: int = 100, seed: int = 0,
                 out="analysis-results", show_progress: bool = True, log=print) -> list[dict]:
    """``comixup analyze fidelity``: :func:`fidelity_over_training` of every run found under
    ``paths``, averaged over the seeds of each (label, epoch), printed as a Markdown table and
    written to ``OUT/fidelity.md`` and ``OUT/fidelity.csv`` (one row per run and epoch)."""
    import csv
    import math
    from pathlib import Path

    from ..evaluate.report import find_runs

    runs = find_runs(paths)
    if not runs:
        raise InputError(f"no run directory (with config.json) under {list(map(str, paths))}")
    rows = fidelity_over_training(runs, batches=batches, batch_size=batch_size, seed=seed,
                                  progress=show_progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ["label", "method", "seed", "epoch", "saliency_in_box", *FIDELITY_KEYS, "run"]
    with open(out / "fidelity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    groups: dict = {}
    for row in rows:
        groups.setdefault((row["label"], row["epoch"]), []).append(row)

    def cell(values):
        values = [v for v in values if v is not None]
        if not values:
            return "-"
        mean = sum(values) / len(values)
        if len(values) == 1:
            return f"{100 * mean:.1f}"
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        return f"{100 * mean:.1f} ± {100 * std:.1f}"

    header = ["method", "epoch", "n", "saliency in box (%)", "visible (%)", "hidden mass (%)",
              "hidden pairs (%)", "object mass (%)"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for (label, epoch), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        cells = [cell([m[k] for m in members]) for k in ("saliency_in_box", *FIDELITY_KEYS)]
        lines.append(f"| {label} | {epoch} | {len(members)} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    (out / "fidelity.md").write_text(text + "\n")
    log(text)
    log(f"wrote {out / 'fidelity.md'}, {out / 'fidelity.csv'}")
    return rows
