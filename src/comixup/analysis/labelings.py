"""What Co-Mixup's labelings look like over training: inputs per output and mixed cells.

The random-labeling control (``CoMixup(labeling="random")``) must match the solver's labelings in
the two statistics that do not involve saliency, so that what remains between them is the
optimization itself:

* **inputs per output**: ``#{i : ratios[j, i] > 1e-6}`` (as Figure 2 (b),
  :func:`comixup.analysis.mixing.inputs_per_output`), averaged over the outputs of a batch;
* **mixed cells**: the share of the labeling cells that mix two inputs
  (``weight[..., 1] > 0`` of :class:`comixup.mixers.comixup.CoMixupParams`), over all cells, and
  over the cells of outputs with two or more inputs (``random_mixed`` of the control is the latter).

:func:`labeling_statistics_over_training` measures them for trained runs at each of their
snapshots: the run's own mixer (built from its configuration, so a control run gives the
control's statistics), on ``batches`` batches of the run's batch size from its test set, with
the checkpoint model's eval-mode input-gradient saliency. ``comixup analyze labelings`` prints
them per run and epoch and as a mean ± standard error over all (run, epoch) rows.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import check_int
from .._errors import InputError

__all__ = ["LABELING_KEYS", "labeling_statistics", "labeling_statistics_over_training",
           "run_labelings"]

#: The statistics of :func:`labeling_statistics`.
LABELING_KEYS = ("inputs_per_output", "mixed_cells", "mixed_cells_multi")


def labeling_statistics(params) -> dict:
    """The statistics of one Co-Mixup call from its :class:`~comixup.mixers.comixup.CoMixupParams`:
    ``inputs_per_output`` (mean over outputs), ``mixed_cells`` (share of all cells mixing two
    inputs), ``mixed_cells_multi`` (the same over outputs with two or more inputs; None if
    there are none) and ``histogram`` (outputs with 1, 2, ... inputs, a list)."""
    from .mixing import inputs_per_output

    if getattr(params, "weight", None) is None:
        raise ValueError("params must be the CoMixupParams of a mixed batch (return_info=True)")
    counts = inputs_per_output(params.ratios)
    mixed = (params.weight[..., 1] > 0).flatten(1).double().cpu().numpy()  # (B, cells)
    multi = counts >= 2
    return {"inputs_per_output": float(counts.mean()),
            "mixed_cells": float(mixed.mean()),
            "mixed_cells_multi": float(mixed[multi].mean()) if multi.any() else None,
            "histogram": np.bincount(counts, minlength=counts.max() + 1)[1:].tolist()}


def labeling_statistics_over_training(run_dirs, *, batches: int = 5, seed: int = 0,
                                      device: str = "cpu", progress: bool = True) -> list[dict]:
    """:func:`labeling_statistics` of each Co-Mixup run at each of its snapshots and
    ``last.pt``, averaged over ``batches`` test batches of the run's batch size.

    Returns:
        One row per (run, epoch): ``label``, ``seed``, ``epoch``, ``run`` and the
        :data:`LABELING_KEYS` (means over the batches).
    """
    from pathlib import Path

    from tqdm.auto import tqdm

    from ..mixers import CoMixup
    from ..run import build_method, load_run
    from ..saliency import clean_loss_and_saliency
    from .fidelity import _checkpoints

    batches = check_int("batches", batches, 1)
    rows = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        run = load_run(run_dir / "config.json", device=device)
        cfg, dataset = run.cfg, run.dataset
        size = cfg.batch_size
        n = min(len(dataset), batches * size)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:n]
        samples = [dataset[int(i)] for i in order]
        images = torch.stack([s[0] for s in samples]).to(run.device)
        labels = torch.tensor([int(s[1]) for s in samples], device=run.device)
        for epoch, path in tqdm(_checkpoints(run_dir), desc=run_dir.name, disable=not progress):
            run.load_weights(path)
            mixer = build_method(cfg, run.info, seed=seed).mixer
            if not isinstance(mixer, CoMixup):
                raise InputError(f"{run_dir}: method {cfg.method!r} is not Co-Mixup")
            stats: dict = {k: [] for k in LABELING_KEYS}
            for start in range(0, n - 1, size):
                x, y = images[start:start + size], labels[start:start + size]
                if x.shape[0] < 2:
                    continue
                _, sal = clean_loss_and_saliency(run.model, x, y, clean_lam=0)
                got = labeling_statistics(mixer(x, y, sal, return_info=True)[2])
                for k in LABELING_KEYS:
                    if got[k] is not None:
                        stats[k].append(got[k])
            row = {"label": _label(cfg, run_dir), "seed": cfg.seed, "epoch": epoch,
                   "run": str(run_dir)}
            row.update({k: (sum(v) / len(v) if v else None) for k, v in stats.items()})
            rows.append(row)
    return rows


def _label(cfg, run_dir) -> str:
    """The run's study label; else its study folder (``<label>/seed<N>``); else its method."""
    if cfg.label:
        return cfg.label
    if run_dir.name.startswith("seed") and run_dir.parent.name:
        return run_dir.parent.name
    return cfg.method


def _mean_se(values) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, std / math.sqrt(len(values))


def run_labelings(paths, *, batches: int = 5, seed: int = 0, out="analysis-results",
                  show_progress: bool = True, log=print) -> dict:
    """``comixup analyze labelings``: :func:`labeling_statistics_over_training` of every run found
    under ``paths``; a table per (label, epoch) and one per label (mean ± standard error over
    its (run, epoch) rows), written to ``OUT/labelings.md`` and ``OUT/labelings.csv``.

    Returns:
        dict with ``rows`` (per run and epoch), ``summary`` (per label: ``n`` and the mean and
        standard error of each statistic) and ``files``.
    """
    import csv
    from pathlib import Path

    from ..evaluate.report import find_runs

    runs = find_runs(paths)
    if not runs:
        raise InputError(f"no run directory (with config.json) under {list(map(str, paths))}")
    rows = labeling_statistics_over_training(runs, batches=batches, seed=seed,
                                             progress=show_progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keys = ["label", "seed", "epoch", *LABELING_KEYS, "run"]
    with open(out / "labelings.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)

    def fmt(pair, scale=1.0, digits=2):
        mean, se = pair
        if mean is None:
            return "-"
        return f"{scale * mean:.{digits}f}" + ("" if se is None else f" ± {scale * se:.{digits}f}")

    by_label: dict = {}
    for row in rows:
        by_label.setdefault(row["label"], []).append(row)
    summary = {label: {"n": len(members), **{k: _mean_se([m[k] for m in members])
                                             for k in LABELING_KEYS}}
               for label, members in by_label.items()}
    header = "| method | rows (run x epoch) | inputs per output | mixed cells (%) | " \
             "mixed cells of outputs with >= 2 inputs (%) |"
    lines = [header, "|" + " --- |" * 5]
    for label, s in summary.items():
        lines.append(f"| {label} | {s['n']} | {fmt(s['inputs_per_output'])} | "
                     f"{fmt(s['mixed_cells'], 100, 1)} | {fmt(s['mixed_cells_multi'], 100, 1)} |")
    lines += ["", "| method | epoch | n | inputs per output | mixed cells (%) |",
              "|" + " --- |" * 5]
    epochs: dict = {}
    for row in rows:
        epochs.setdefault((row["label"], row["epoch"]), []).append(row)
    for (label, epoch), members in sorted(epochs.items()):
        lines.append(f"| {label} | {epoch} | {len(members)} | "
                     f"{fmt(_mean_se([m['inputs_per_output'] for m in members]))} | "
                     f"{fmt(_mean_se([m['mixed_cells'] for m in members]), 100, 1)} |")
    text = "\n".join(lines)
    (out / "labelings.md").write_text(text + "\n")
    log("mean ± standard error over (run, epoch) rows; each row averages "
        f"{batches} test batches of the run's batch size")
    log(text)
    files = [str(out / "labelings.md"), str(out / "labelings.csv")]
    log(f"wrote {', '.join(files)}")
    return {"rows": rows, "summary": summary, "files": files}
