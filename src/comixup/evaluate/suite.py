"""The paper's evaluation of one model, as one call: what ``comixup eval`` and the engine run.

Tasks (:data:`TASKS`):

* ``clean``: top-1 / top-5 error and loss on the test set (Table 1); for a segmentation model
  the mean IoU, the pixel errors and the per-pixel loss;
* ``calibration``: ECE with 10 bins and the reliability data (Table 2 and 10, Figure 4);
* ``localization``: top-1 and GT-known localization accuracy by CAM, with the random-box
  baseline (Section 5.2, Table 2; :mod:`.localization`);
* ``robustness``: top-1 error under background replacement and Gaussian background, and the
  increase over the clean error (Section 5.4, Table 3; :mod:`.robustness`).

Localization and robustness need ground-truth boxes: on a dataset without them they are skipped
with a note. Localization also needs a model with a class activation map (every model but
LeNet): it is skipped with a note when not requested explicitly, an error otherwise.

The result is a JSON-ready dict (the content of ``eval.json``): the clean metrics at the top
level (``error``, ``error_top5``, ``ece``, ``loss``, ``samples``, ``bins``), then
``localization`` and ``robustness`` dicts, ``tasks`` (those run) and ``skipped`` (task ->
reason).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .._errors import InputError, InputTypeError

__all__ = ["TASKS", "evaluate_checkpoint", "format_table", "parse_tasks", "run_evaluation"]

#: The evaluation tasks, in the order they run.
TASKS = ("clean", "calibration", "localization", "robustness")
#: Corruptions of Table 3 evaluated by default.
DEFAULT_CORRUPTIONS = ("replace", "gaussian")


def parse_tasks(text: str | Sequence[str] | None) -> list[str] | None:
    """``"clean,localization"`` (or a list) -> a validated list; None (every task) stays None.
    An unknown task is an :class:`~comixup._errors.InputError` (a ValueError) naming them."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else list(text)
    items = [t for t in items if t]
    bad = [t for t in items if t not in TASKS]
    if bad or not items:
        raise InputError(f"tasks must be a comma-separated subset of {list(TASKS)}, got "
                         f"{text!r}")
    return [t for t in TASKS if t in items]


def run_evaluation(
    model: torch.nn.Module,
    dataset,
    num_classes: int,
    device: torch.device | str = "cpu",
    *,
    tasks: Sequence[str] | None = None,
    clean: dict | None = None,
    corruptions: Sequence[str] = DEFAULT_CORRUPTIONS,
    threshold: float = 0.25,
    seed: int = 0,
    batch_size: int = 100,
    workers: int = 0,
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
    keep_examples: int = 0,
    strict: bool | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the evaluation ``tasks`` on ``model`` over ``dataset`` (see the module docstring).

    Args:
        model: the classifier.
        dataset: the test set (``(x, y)`` samples; ``has_boxes`` / ``boxes(i)`` for the box tasks).
        num_classes: number of classes.
        device: where the model lives.
        tasks: a subset of :data:`TASKS`; None runs every task the dataset and model support.
        clean: an already computed :func:`comixup.evaluate.evaluate` result of the same model
            and samples (the engine passes its last epoch's), to skip the clean pass.
        corruptions: the robustness modes (``replace``, ``gaussian``; also ``gaussian_add``).
        threshold: the CAM threshold (0.25).
        seed: seed of the corruptions and of the random-box baseline.
        batch_size, workers: of the evaluation loaders.
        autocast_dtype: forward under :func:`torch.autocast` with this dtype (CUDA AMP).
        progress: tqdm bars over the test set.
        keep_examples: keep this many localization examples (CAMs, boxes) under
            ``localization["examples"]`` (not JSON; for :func:`plot_cam_samples`).
        strict: raise an :class:`~comixup._errors.InputTypeError` (a TypeError) when
            ``localization`` is requested for a model without a CAM (default: when ``tasks``
            is given); otherwise it is skipped with a note.
        log: where the one-line notes of skipped tasks go.

    Returns:
        The result dict (module docstring).
    """
    from tqdm.auto import tqdm

    from .cam import _cam_problem
    from .localization import localize
    from .metrics import evaluate
    from .robustness import robustness

    explicit = tasks is not None if strict is None else bool(strict)
    tasks = list(TASKS) if tasks is None else parse_tasks(list(tasks))
    result: dict = {"tasks": [], "skipped": {}}
    has_boxes = bool(getattr(dataset, "has_boxes", False))
    if not has_boxes:
        reason = f"{type(dataset).__name__} has no bounding boxes"
        for t in ("localization", "robustness"):
            if t in tasks:
                result["skipped"][t] = reason
        if any(t in tasks for t in ("localization", "robustness")):
            log(f"note: localization and robustness skipped: {reason}")
    elif "localization" in tasks:
        problem = _cam_problem(model)
        if problem is not None:
            if explicit:
                raise InputTypeError(f"localization needs a class activation map: {problem}")
            result["skipped"]["localization"] = problem
            log(f"note: localization skipped: {problem}")
    todo = [t for t in tasks if t not in result["skipped"]]
    device = torch.device(device)

    if clean is None and any(t in todo for t in ("clean", "calibration", "robustness")):
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                             num_workers=workers)
        bar = tqdm(loader, desc="clean", disable=not progress, leave=False, unit="batch",
                   dynamic_ncols=True)
        clean = evaluate(model, bar, num_classes, device, autocast_dtype=autocast_dtype,
                         sync=False)
    if clean is not None and ("clean" in todo or "calibration" in todo):
        keys = ["error", "error_top5", "loss", "samples", "miou", "iou", "images"] \
            if "clean" in todo else ["samples"]
        if "calibration" in todo:
            keys += ["ece", "bins"]
        elif "ece" in clean:
            keys.append("ece")
        result.update({k: clean[k] for k in keys if k in clean})
    if "localization" in todo:
        result["localization"] = localize(
            model, dataset, device, batch_size=batch_size, threshold=threshold, seed=seed,
            workers=workers, autocast_dtype=autocast_dtype, progress=progress,
            keep=keep_examples)
    if "robustness" in todo:
        result["robustness"] = robustness(
            model, dataset, num_classes, device, modes=corruptions, seed=seed,
            batch_size=batch_size, workers=workers, clean_error=clean["error"],
            autocast_dtype=autocast_dtype, progress=progress)
    result["tasks"] = todo
    return result


def _pct(v) -> str:
    return "-" if v is None else f"{v:.2f}%"


def format_table(result: dict) -> str:
    """The evaluation result as one plain-text table (what ``comixup eval`` prints)."""
    rows: list[tuple[str, str, str]] = []
    if "miou" in result:  # a segmentation model: every clean metric is per pixel
        rows += [("clean", "mean IoU", _pct(result["miou"])),
                 ("clean", "pixel error", _pct(result["error"])),
                 ("clean", "test loss (per pixel)", f"{result['loss']:.4f}")]
    elif "error" in result:
        rows += [("clean", "top-1 error", _pct(result["error"])),
                 ("clean", "top-5 error", _pct(result.get("error_top5"))),
                 ("clean", "test loss", f"{result['loss']:.4f}")]
    if "ece" in result:
        rows.append(("calibration", "ECE (10 bins)", _pct(result["ece"])))
    loc = result.get("localization")
    if loc:
        rows += [("localization", "top-1 loc. accuracy (CAM, IoU >= 0.5)", _pct(loc["top1_loc"])),
                 ("localization", "GT-known loc. accuracy", _pct(loc["gt_known_loc"])),
                 ("localization", "random boxes, top-1 loc.", _pct(loc["random_top1_loc"])),
                 ("localization", "random boxes, GT-known loc.",
                  _pct(loc["random_gt_known_loc"])),
                 ("localization", "mean IoU (GT-known CAM box)", f"{loc['mean_iou']:.3f}"),
                 ("localization", "mean IoU (random boxes)", f"{loc['random_mean_iou']:.3f}")]
    rob = result.get("robustness")
    if rob:
        names = {"replace": "background replaced", "gaussian": "Gaussian background",
                 "gaussian_add": "additive Gaussian background"}
        for mode, label in names.items():
            if mode in rob:
                r = rob[mode]
                rows.append(("robustness", f"top-1 error, {label}",
                             f"{r['error']:.2f}% ({r['increase']:+.2f})"))
    for task, reason in result.get("skipped", {}).items():
        rows.append((task, "skipped", reason))
    if not rows:
        return "(no result)"
    w0 = max(len(r[0]) for r in rows + [("task", "", "")])
    w1 = max(len(r[1]) for r in rows + [("", "metric", "")])
    lines = [f"{'task':<{w0}}  {'metric':<{w1}}  value", f"{'-' * w0}  {'-' * w1}  -----"]
    lines += [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    n = result.get("samples") or (loc or {}).get("samples")
    if n:
        lines.append(f"({n} test samples)")
    return "\n".join(lines)


def evaluate_checkpoint(
    checkpoint,
    *,
    tasks: Sequence[str] | None = None,
    out_dir=None,
    split: str = "test",
    data_dir=None,
    limit_test: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    workers: int = 0,
    corruptions: Sequence[str] = DEFAULT_CORRUPTIONS,
    threshold: float = 0.25,
    seed: int | None = None,
    plots: bool = True,
    progress: bool = True,
    write: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Rebuild a run's model and test data from ``last.pt`` (:func:`comixup.run.load_run`) and
    evaluate it.

    Writes ``eval.json`` (the :func:`run_evaluation` result plus the run's identity under
    ``run``) and, with ``plots``, ``reliability.png``, ``cam_samples.png`` and
    ``corruption_samples.png`` into ``out_dir`` (default: beside the checkpoint).

    Args:
        checkpoint: path of a ``last.pt`` written by ``comixup train``.
        tasks: subset of :data:`TASKS` (None: every supported task).
        out_dir: where the files go (default: the checkpoint's directory).
        split, data_dir, limit_test, batch_size, device, workers: as ``comixup eval``'s flags
            (None keeps the checkpoint configuration's value).
        corruptions, threshold: see :func:`run_evaluation`.
        seed: seed of the corruptions / random boxes (default: the run's seed).
        plots: draw the PNGs.
        progress: tqdm bars.
        write: write ``eval.json`` and the PNGs at all.
        log: where notes go.

    Returns:
        The result dict (also written to ``eval.json``).
    """
    from ..run import load_run

    run = load_run(checkpoint, device=device, split=split, data_dir=data_dir,
                   limit_test=limit_test)
    cfg = run.cfg
    seed = cfg.seed if seed is None else seed
    result = run_evaluation(
        run.model, run.dataset, run.num_classes, run.device, tasks=tasks,
        corruptions=corruptions, threshold=threshold, seed=seed, workers=workers,
        autocast_dtype=run.autocast_dtype,  # the same choice as training
        batch_size=batch_size or cfg.test_batch_size or cfg.batch_size, progress=progress,
        keep_examples=16 if plots and write else 0, log=log)
    result["run"] = {"checkpoint": str(checkpoint), "epoch": run.epoch,
                     "method": cfg.method, "preset": cfg.preset, "arch": cfg.arch,
                     "data": cfg.data, "seed": cfg.seed, "split": split,
                     "limit_test": cfg.limit_test, "eval_seed": seed}
    examples = (result.get("localization") or {}).pop("examples", None)
    if write:
        out = Path(out_dir) if out_dir is not None else Path(checkpoint).resolve().parent
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
        result["files"] = [str(out / "eval.json")]
        if plots:
            result["files"] += _draw(result, examples, run.dataset, run.info, out,
                                     corruptions, seed, cfg.method, log)
    return result


def _draw(result, examples, dataset, info, out: Path, corruptions, seed, title, log) -> list:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .calibration import plot_reliability
    from .figures import plot_cam_samples, plot_corruption_samples

    written = []
    jobs = []
    if "bins" in result:
        jobs.append(("reliability.png",
                     lambda p: plot_reliability(result["bins"], p, title=title)))
    if examples:
        names = getattr(dataset, "classes", None)
        jobs.append(("cam_samples.png",
                     lambda p: plot_cam_samples(examples, p, mean=info.mean, std=info.std,
                                                class_names=names)))
    if "robustness" in result:
        jobs.append(("corruption_samples.png",
                     lambda p: plot_corruption_samples(dataset, corruptions, p, seed=seed)))
    for name, draw in jobs:
        try:
            fig = draw(out / name)
            plt.close(fig)
            written.append(str(out / name))
        except Exception as exc:
            log(f"warning: could not draw {name}: {exc}")
    return written
