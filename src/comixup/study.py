"""``comixup study``: a method x seed grid on one preset, resumable, then ``comixup report``.

A study is the unit of a comparison: every method of ``methods`` is trained with every seed of
``range(seeds)`` on the same preset (same recipe, same loss family, same data), each in its own
run directory ``OUT/<label>/seed<k>``, and the runs are summarized by
:func:`comixup.evaluate.report.make_report` into ``OUT/report`` (the paper's Tables 1, 2, 3 and
10 with mean ± std over seeds).

The report covers every finished run under ``OUT``, so several invocations into one study
directory (e.g. the methods, then ``--method-opt clean_lam=1`` controls) make one table.

Resumable: a run whose ``summary.json`` exists is skipped; a run with a ``last.pt`` but no
summary (interrupted) is resumed from it; re-running the same command finishes the grid.

Sweeps: an option with several comma-separated values (``--method-opt tau=0.79,0.83,0.87``)
adds one column per value (Table 11 with the same command); the column is labelled
``<method> tau=0.79`` and its runs live in ``OUT/<method>-tau=0.79/seed<k>``.

Runs execute as ``python -m comixup train ...`` subprocesses, ``jobs`` at a time (one torch
thread each unless ``--threads`` says otherwise), so an interrupted study loses at most the
epochs since each run's last checkpoint.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ._checks import check_int
from ._errors import InputError

__all__ = ["StudyRun", "cost_table", "finished_runs", "learning_curves", "parse_sweep",
           "plan_study", "run_study"]


@dataclass(frozen=True)
class StudyRun:
    """One cell of the grid: the method, its swept options, the seed and the run directory."""

    method: str
    options: tuple = ()
    seed: int = 0
    out: Path = field(default_factory=Path)

    @property
    def label(self) -> str:
        """The column name: the method, then the swept options (``comixup tau=0.79``)."""
        return " ".join([self.method, *(f"{k}={json.dumps(v)}" for k, v in self.options)])

    def state(self) -> str:
        """``"done"`` (summary.json), ``"partial"`` (last.pt only) or ``"todo"``."""
        if (self.out / "summary.json").is_file():
            return "done"
        return "partial" if (self.out / "last.pt").is_file() else "todo"


def parse_sweep(pairs) -> list[tuple[str, list]]:
    """``[("tau", "0.79,0.83")]`` (or ``"tau=0.79,0.83"`` strings) -> ``[("tau", [0.79, 0.83])]``.

    Values are read as JSON when they parse (a value starting with ``[`` is one JSON list, not
    split on commas), else kept as strings. A malformed pair is an
    :class:`~comixup._errors.InputError` naming it.
    """
    out = []
    for pair in pairs:
        if isinstance(pair, str):
            if "=" not in pair:
                raise InputError(f"a method option must look like key=value, got {pair!r}")
            pair = tuple(pair.split("=", 1))
        key, raw = pair
        if not isinstance(raw, str):
            out.append((key, [raw]))
            continue
        parts = [raw] if raw.lstrip().startswith("[") else raw.split(",")
        values = []
        for part in parts:
            try:
                values.append(json.loads(part))
            except json.JSONDecodeError:
                values.append(part.strip())
        if not values or any(v == "" for v in values):
            raise InputError(f"method option {key!r} has an empty value in {raw!r}")
        out.append((key, values))
    return out


def plan_study(out, methods, seeds: int, sweep=()) -> list[StudyRun]:
    """The grid of runs: every method x every combination of the swept values x every seed
    (an unknown method, or none, is an :class:`~comixup._errors.InputError`)."""
    seeds = check_int("seeds", seeds, 1)
    if not methods:
        raise InputError("methods must name at least one method")
    from .methods import method_names

    for method in methods:
        if method not in method_names():
            raise InputError(f"method must be one of {method_names()}, got {method!r}")
    out = Path(out)
    keys = [k for k, _ in sweep]
    combos = list(itertools.product(*[v for _, v in sweep])) or [()]
    runs = []
    for method in methods:
        for combo in combos:
            options = tuple(zip(keys, combo))
            name = "-".join([method, *(f"{k}={v}" for k, v in options)])
            for seed in range(seeds):
                runs.append(StudyRun(method, options, seed, out / name / f"seed{seed}"))
    return runs


def _command(run: StudyRun, preset: str, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "comixup", "train", "--preset", preset, "--method", run.method,
           "--seed", str(run.seed), "--out", str(run.out), "--no-progress",
           "--label", run.label]
    for key, value in run.options:
        cmd += ["--method-opt", f"{key}={json.dumps(value)}"]
    cmd += extra
    if run.state() == "partial":
        cmd += ["--resume", str(run.out / "last.pt")]
    return cmd


def run_study(preset: str, methods, seeds: int = 3, *, out=None, sweep=(), jobs: int = 1,
              train_args=(), report: bool = True, progress: bool = True,
              log=print) -> dict:
    """Train the grid of :func:`plan_study` (skipping finished runs, resuming interrupted
    ones), then write the report.

    Args:
        preset: the preset every run starts from.
        methods: method names (columns).
        seeds: seeds ``0 .. seeds-1`` per column.
        out: study directory (default ``runs/study-<preset>``).
        sweep: ``[(option, [values])]`` from :func:`parse_sweep`; one column per combination.
        jobs: runs trained at the same time (subprocesses).
        train_args: extra ``comixup train`` flags for every run (e.g. ``["--threads", "1"]``).
        report: write ``OUT/report`` with :func:`comixup.evaluate.report.make_report`.
        progress: a progress bar over the grid.
        log: where status lines go.

    Returns:
        ``{"runs": [...], "failed": [...], "report": dict or None}``; a failed run is listed
        with the tail of its log (``OUT/<run>/train.log``) and does not stop the others.
    """
    from tqdm.auto import tqdm

    jobs = check_int("jobs", jobs, 1)
    out = Path(out) if out else Path("runs") / f"study-{preset}"
    from .config import load_preset

    load_preset(preset)  # fail fast on a bad name
    runs = plan_study(out, list(methods), seeds, sweep)
    todo = [r for r in runs if r.state() != "done"]
    log(f"study {out}: {len(runs)} runs, {len(runs) - len(todo)} done, "
        f"{sum(r.state() == 'partial' for r in todo)} to resume, {jobs} at a time")
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({
        "preset": preset, "methods": list(methods), "seeds": seeds,
        "sweep": [[k, v] for k, v in sweep], "train_args": list(train_args)}, indent=2) + "\n")
    extra = list(train_args)
    if "--threads" not in extra:
        extra += ["--threads", "1"]
    failed = []
    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run", disable=not progress,
               desc="study", dynamic_ncols=True)

    def work(run: StudyRun):
        run.out.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(run.out / "train.log", "a") as logfile:
            proc = subprocess.run(_command(run, preset, extra), stdout=logfile,
                                  stderr=subprocess.STDOUT, env={**os.environ}, check=False)
        return run, proc.returncode, time.perf_counter() - start

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for run, code, seconds in pool.map(work, todo):
            bar.update(1)
            if code != 0:
                tail = (run.out / "train.log").read_text().strip().splitlines()[-3:]
                failed.append({"run": str(run.out), "code": code, "log": tail})
                log(f"FAILED {run.label} seed {run.seed} ({code}): {' | '.join(tail)}")
            else:
                log(f"done {run.label} seed {run.seed} in {seconds:.0f}s")
    bar.close()
    result = {"runs": [str(r.out) for r in runs], "failed": failed, "report": None}
    if report:
        from .evaluate.report import make_report

        done = finished_runs(out)
        if done:
            result["report"] = make_report([r.out for r in done], out / "report", log=log)
            cost = cost_table(done)
            (out / "report" / "cost.md").write_text(cost + "\n")
            result["report"]["markdown"] += "\n### Cost per epoch\n\n" + cost + "\n"
            png = learning_curves(done, out / "report" / "learning_curves.png")
            result["report"]["files"] += [str(out / "report" / "cost.md"), str(png)]
    return result


def finished_runs(out) -> list[StudyRun]:
    """Every finished run (``summary.json``) below the study directory ``out``, from any
    invocation, as :class:`StudyRun` whose method is the run's column label."""
    runs = []
    for summary in sorted(Path(out).glob("*/seed*/summary.json")):
        cfg = json.loads((summary.parent / "config.json").read_text())
        runs.append(StudyRun(cfg.get("label") or cfg["method"], (), cfg["seed"], summary.parent))
    return runs


def _history(run: StudyRun) -> list[dict]:
    import csv

    with open(run.out / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _by_label(runs) -> dict:
    groups: dict = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def cost_table(runs) -> str:
    """Markdown table of the training cost of each column: seconds of training per epoch and
    training images per second (mean ± std over its runs' epoch means), from ``metrics.csv``."""
    import statistics

    def fmt(values, digits):
        if len(values) < 2:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    lines = ["| method | s / epoch (train) | train img/s | runs |", "| --- | ---: | ---: | ---: |"]
    for label, members in _by_label(runs).items():
        secs, rates = [], []
        for run in members:
            rows = _history(run)
            secs.append(statistics.mean(float(r["train_seconds"]) for r in rows))
            rates.append(statistics.mean(float(r["images_per_s"]) for r in rows))
        lines.append(f"| {label} | {fmt(secs, 1)} | {fmt(rates, 0)} | {len(members)} |")
    return "\n".join(lines)


def learning_curves(runs, path) -> Path:
    """Plot the test error (the mean IoU for segmentation runs) and the ECE of every column
    against the epoch (mean over its runs, shaded ± one standard deviation) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups = _by_label(runs)
    # the evaluated epochs (every epoch, or every ``eval_every``-th and the last)
    histories = {label: [[r for r in _history(run) if r["test_error"] != ""] for run in members]
                 for label, members in groups.items()}
    segmentation = any(h and h[0].get("test_miou") for hs in histories.values() for h in hs)
    keys = ("test_miou", "ece") if segmentation else ("test_error", "ece")
    for label, members in groups.items():
        length = min(len(h) for h in histories[label])
        if length == 0:
            continue
        epochs = np.array([int(r["epoch"]) for r in histories[label][0][:length]])
        for ax, key in zip(axes, keys):
            values = np.array([[float(r[key]) for r in h[:length]] for h in histories[label]])
            mean, std = values.mean(0), values.std(0)
            ax.plot(epochs, mean, label=f"{label} (n={len(members)})")
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    titles = (("test mean IoU (%)", "pixel ECE (%)") if segmentation
              else ("test error (%)", "ECE (%)"))
    for ax, title in zip(axes, titles):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
