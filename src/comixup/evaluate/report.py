"""The paper's tables from run directories: ``comixup report RUN_DIR [RUN_DIR ...]``.

Runs are grouped by preset and method (or by the run's ``label``, which ``comixup study`` sets
for option sweeps) and averaged over seeds (mean, sample standard deviation
with ``n - 1``, and the count ``n``; the paper's CIFAR numbers are means over 3 seeds). The
tables, written as Markdown (``report.md``) and CSV, and printed:

* ``table1_error``: top-1 test error (Table 1);
* ``table2_localization``: top-1 and GT-known localization accuracy by CAM, the random-box
  baseline, and the ECE (Table 2);
* ``table3_robustness``: top-1 error with the background replaced / Gaussian, and its increase
  over the clean error (Table 3; the increase is computed per run, then averaged);
* ``table10_ece``: ECE per method (Table 10);
* ``segmentation_miou``: the mean IoU of segmentation runs (not in the paper; written only when
  a run has one; their ``error`` and ``ece`` are per pixel);
* ``paired_error``: the paired differences of top-1 error against reference columns
  (:data:`PAIRED_REFERENCES` present in the preset): for each other column, the per-seed
  differences ``error(method, seed) - error(reference, seed)`` over the seeds both have, their
  mean, sample std, count and standard error ``std / sqrt(n)``, and ``t = mean / SE`` (a
  negative difference: the method has the lower error). Pairing by seed removes the part of
  the spread that the seed's data order and initialization share across columns. Segmentation
  runs get the same table for the mean IoU (``paired_miou``; a positive difference: the method
  has the higher mIoU).

``reliability_grid.png`` has one reliability diagram per method side by side, one row per preset
(Figure 4); the bins of a method's seeds are added (the diagram of the pooled predictions).

A run's numbers come from its ``eval.json`` (``comixup eval``) when present, else from its
``summary.json`` (whose ``final_eval`` holds localization and robustness when the engine ran
them). A run with neither the calibration bins nor a final evaluation is evaluated on the fly
from ``last.pt`` (writing its ``eval.json``), or, with ``evaluate=False``, flagged in the
report, as is any run that cannot be read.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from .._errors import InputError
from .._provenance import describe

__all__ = ["METHOD_ORDER", "PAIRED_REFERENCES", "aggregate", "collect_runs", "find_runs",
           "load_run", "make_report", "paired_differences"]

#: Column order of the paper's tables; other methods follow alphabetically.
METHOD_ORDER = ("vanilla", "mixup", "manifold", "cutmix", "puzzlemix", "comixup",
                "mixup3", "mixup4", "cutmix3", "cutmix4")

#: The columns other columns are compared with, seed by seed, when a preset has them.
PAIRED_REFERENCES = ("vanilla", "comixup")

#: (table file stem, title, rows: (metric key, label)) of each table.
TABLES = (
    ("table1_error", "Table 1: top-1 error (%)", (("error", "top-1 error"),)),
    ("table2_localization", "Table 2: localization accuracy by CAM (%) and ECE (%)",
     (("top1_loc", "localization (top-1 loc.)"), ("gt_known_loc", "localization (GT-known)"),
      ("random_top1_loc", "random boxes (top-1 loc.)"), ("ece", "calibration (ECE)"))),
    ("table3_robustness", "Table 3: top-1 error (%) with corrupted background (increase)",
     (("error_replace", "random replacement"), ("error_gaussian", "Gaussian noise"),
      ("error_gaussian_add", "additive Gaussian noise"))),
    ("table10_ece", "Table 10: expected calibration error (%)", (("ece", "ECE"),)),
    ("segmentation_miou", "Segmentation: mean IoU (%)", (("miou", "mIoU"),)),
)

#: Metric key -> its name in the paired tables.
_PAIRED_NAMES = {"error": "top-1 error", "miou": "mean IoU"}


def find_runs(paths: Sequence) -> list[Path]:
    """Run directories (holding ``config.json``) among ``paths`` and, for a path that is not a
    run directory itself, below it (sorted)."""
    runs: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise FileNotFoundError(f"run directory not found: {p}")
        if (p / "config.json").is_file() or (p / "last.pt").is_file():
            runs.append(p)
            continue
        found = sorted(c.parent for c in p.rglob("config.json"))
        if not found:
            raise FileNotFoundError(f"{p} is not a run directory (no config.json) and holds none")
        runs += found
    seen, unique = set(), []
    for r in runs:
        if r.resolve() not in seen:
            seen.add(r.resolve())
            unique.append(r)
    return unique


def _flatten(run: dict, result: dict) -> None:
    """Copy the table metrics of an ``eval.json`` / ``summary.json`` dict into ``run``."""
    for k in ("error", "error_top5", "ece", "bins", "miou"):
        if result.get(k) is not None:
            run[k] = result[k]
    final = result.get("final_eval") or {}
    loc = result.get("localization") or final.get("localization")
    if loc:
        for k in ("top1_loc", "gt_known_loc", "random_top1_loc", "random_gt_known_loc"):
            run[k] = loc[k]
    rob = result.get("robustness") or final.get("robustness")
    if rob:
        for mode in ("replace", "gaussian", "gaussian_add"):
            if mode in rob:
                run[f"error_{mode}"] = rob[mode]["error"]
                run[f"increase_{mode}"] = rob[mode]["increase"]
    skipped = dict(final.get("skipped", {}))
    skipped.update(result.get("skipped", {}))
    if skipped:
        run["skipped"] = skipped


def _read_json(path: Path) -> dict:
    """The JSON object of a run's ``eval.json`` or ``summary.json``; a file that does not hold
    one is an :class:`~comixup._errors.InputError` naming it."""
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not a JSON file: {exc}") from None
    if not isinstance(value, dict):
        raise InputError(f"{path} holds a {type(value).__name__}, not a JSON object")
    return value


def load_run(run_dir, *, evaluate: bool = True, device: str = "auto", progress: bool = False,
             log: Callable[[str], None] = print) -> dict:
    """The table metrics of one run directory.

    Returns:
        A dict with ``dir``, ``preset``, ``method``, ``seed``, ``source`` (``eval.json``,
        ``summary.json`` or ``evaluated``), the metrics found (``error``, ``ece``, ``bins``,
        ``top1_loc``, ``error_replace``, ``increase_replace``, ...) and ``flag`` (a reason)
        when something is missing.
    """
    from ..run import read_config

    run_dir = Path(run_dir)
    run: dict = {"dir": str(run_dir)}
    try:  # its config.json, else its last.pt's configuration
        cfg = read_config(run_dir)
    except FileNotFoundError:
        cfg = {}
    run.update(preset=cfg.get("preset") or f"{cfg.get('data', '?')}-{cfg.get('arch', '?')}",
               method=cfg.get("label") or cfg.get("method", "?"), seed=cfg.get("seed"),
               data=cfg.get("data"))
    eval_path, summary_path = run_dir / "eval.json", run_dir / "summary.json"
    summary = _read_json(summary_path) if summary_path.is_file() else None
    run["code_version"] = describe((summary or {}).get("code_version"))
    if eval_path.is_file():
        run["source"] = "eval.json"
        if summary:
            _flatten(run, summary)
        _flatten(run, _read_json(eval_path))
        return run
    complete = summary is not None and "bins" in summary and "final_eval" in summary
    if summary is not None:
        run["source"] = "summary.json"
        _flatten(run, summary)
    if complete:
        return run
    if evaluate and (run_dir / "last.pt").is_file():
        from .suite import evaluate_checkpoint

        log(f"note: {run_dir} has no evaluation: evaluating {run_dir / 'last.pt'}")
        result = evaluate_checkpoint(run_dir / "last.pt", device=device, plots=False,
                                     progress=progress, log=log)
        run["source"] = "evaluated"
        _flatten(run, result)
        return run
    missing = "no summary.json" if summary is None else "no calibration bins / final evaluation"
    run["flag"] = (f"{missing}" + ("" if (run_dir / "last.pt").is_file() else
                                   " and no last.pt") + ": run `comixup eval --checkpoint "
                   f"{run_dir / 'last.pt'}`")
    return run


def collect_runs(paths: Sequence, **kwargs) -> list[dict]:
    """:func:`load_run` of every run directory found by :func:`find_runs`."""
    return [load_run(p, **kwargs) for p in find_runs(paths)]


def _stats(values: list[float]) -> dict:
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def aggregate(runs: list[dict]) -> dict:
    """Group runs by ``(preset, method)``: ``{(preset, method): {"runs", "seeds", metric:
    {"mean", "std", "n"}, "bins"}}`` (``std`` is the sample standard deviation, None for one
    run; ``bins`` the added reliability bins, or None)."""
    from .calibration import add_bins

    groups: dict = {}
    for run in runs:
        groups.setdefault((run["preset"], run["method"]), []).append(run)
    keys = {"error", "error_top5", "ece", "top1_loc", "gt_known_loc", "random_top1_loc",
            "random_gt_known_loc", "error_replace", "increase_replace", "error_gaussian",
            "increase_gaussian", "error_gaussian_add", "increase_gaussian_add", "miou"}
    out = {}
    for key, members in groups.items():
        entry = {"runs": [m["dir"] for m in members], "seeds": [m.get("seed") for m in members]}
        for k in keys:
            entry[k] = _stats([float(m[k]) for m in members if m.get(k) is not None])
        bins = [m["bins"] for m in members if m.get("bins")]
        entry["bins"] = add_bins(*bins) if bins else None
        out[key] = entry
    return out


def paired_differences(runs: list[dict], references: Sequence[str] = PAIRED_REFERENCES,
                       metric: str = "error") -> list[dict]:
    """Per-seed differences of ``metric`` of every column against each reference column.

    Args:
        runs: :func:`load_run` results (``preset``, ``method``, ``seed`` and ``metric``).
        references: the reference columns (method names or labels); those absent from a preset
            are skipped.
        metric: the run metric compared (``"error"``: top-1 error in percent).

    Returns:
        One record per (preset, reference, other column) with at least one common seed:
        ``{"preset", "reference", "method", "metric", "n", "mean", "std", "se", "t",
        "seeds", "differences"}`` (``std``, ``se`` and ``t`` are None below two seeds, ``t``
        also when ``se`` is 0).
    """
    values: dict = {}
    for run in runs:
        if run.get(metric) is not None and run.get("seed") is not None:
            values.setdefault(run["preset"], {}).setdefault(run["method"], {})[run["seed"]] = \
                float(run[metric])
    out = []
    for preset in sorted(values):
        columns = values[preset]
        for ref in references:
            if ref not in columns:
                continue
            for method in _method_order(columns):
                if method == ref:
                    continue
                seeds = sorted(set(columns[method]) & set(columns[ref]))
                if not seeds:
                    continue
                diffs = [columns[method][k] - columns[ref][k] for k in seeds]
                s = _stats(diffs)
                se = s["std"] / math.sqrt(s["n"]) if s["std"] is not None else None
                out.append({"preset": preset, "reference": ref, "method": method,
                            "metric": metric, "n": s["n"], "mean": s["mean"], "std": s["std"],
                            "se": se, "t": s["mean"] / se if se else None,
                            "seeds": " ".join(str(k) for k in seeds),
                            "differences": " ".join(f"{d:.2f}" for d in diffs)})
    return out


def _paired_markdown(records: list[dict], pixel: set = frozenset()) -> str:
    name = _PAIRED_NAMES.get(records[0]["metric"], records[0]["metric"])
    if records[0]["metric"] == "error" and pixel & {r["preset"] for r in records}:
        name += " (pixel error for the segmentation presets)"
    lines = [f"### Paired differences of {name} (percentage points; method minus reference, "
             "seed by seed)", "",
             "| preset | reference | method | mean ± std | SE | mean / SE | n | per seed |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in records:
        spread = f" ± {r['std']:.2f}" if r["std"] is not None else ""
        se = "-" if r["se"] is None else f"{r['se']:.2f}"
        t = "-" if r["t"] is None else f"{r['t']:.1f}"
        lines.append(f"| {r['preset']} | {r['reference']} | {r['method']} | "
                     f"{r['mean']:+.2f}{spread} | {se} | {t} | {r['n']} | {r['differences']} |")
    return "\n".join(lines)


def _method_order(methods) -> list[str]:
    known = [m for m in METHOD_ORDER if m in methods]
    return known + sorted(m for m in methods if m not in METHOD_ORDER)


def _cell(entry: dict, key: str) -> str:
    s = entry[key]
    if not s["n"]:
        return "-"
    text = f"{s['mean']:.2f}" + (f" ± {s['std']:.2f}" if s["std"] is not None else "")
    inc_key = key.replace("error_", "increase_", 1) if key.startswith("error_") and \
        key != "error_top5" else None
    if inc_key and entry.get(inc_key, {}).get("n"):
        inc = entry[inc_key]
        text += f" (+{inc['mean']:.2f}" if inc["mean"] >= 0 else f" ({inc['mean']:.2f}"
        text += (f" ± {inc['std']:.2f})" if inc["std"] is not None else ")")
    return f"{text} (n={s['n']})"


#: The row labels of a segmentation preset, whose errors and ECE are per pixel.
_PIXEL_LABELS = {"error": "pixel error", "ece": "pixel ECE"}


def _segmentation_presets(groups: dict) -> set:
    """The presets whose runs have a mean IoU (segmentation)."""
    return {p for (p, _), entry in groups.items() if entry["miou"]["n"]}


def _tables(groups: dict) -> list[tuple[str, str, list[str], list[list[str]], list[dict]]]:
    presets = sorted({p for p, _ in groups})
    methods = _method_order({m for _, m in groups})
    pixel = _segmentation_presets(groups)
    tables = []
    for stem, title, rows in TABLES:
        header = ["preset", "metric"] + methods
        body, records = [], []
        for preset in presets:
            for key, label in rows:
                cells = []
                present = False
                for method in methods:
                    entry = groups.get((preset, method))
                    if entry is None:
                        cells.append("")
                        continue
                    present |= bool(entry[key]["n"])
                    cells.append(_cell(entry, key))
                    s = entry[key]
                    rec = {"preset": preset, "method": method, "metric": key,
                           "mean": s["mean"], "std": s["std"], "n": s["n"],
                           "seeds": " ".join(str(x) for x in entry["seeds"])}
                    if key.startswith("error_") and key != "error_top5":
                        inc = entry[key.replace("error_", "increase_", 1)]
                        rec.update(increase_mean=inc["mean"], increase_std=inc["std"])
                    records.append(rec)
                if present or key in ("error", "ece"):
                    shown = _PIXEL_LABELS.get(key, label) if preset in pixel else label
                    body.append([preset, shown] + cells)
        tables.append((stem, title, header, body, records))
    return tables


def _markdown(title: str, header: list[str], body: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |",
             "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    if not body:
        lines.append("| (no run has these numbers) |" + " |" * (len(header) - 1))
    return "\n".join(lines)


def _versions_markdown(runs: list[dict]) -> str:
    """The code versions behind the runs (from each ``summary.json``), with their run counts."""
    counts: dict = {}
    for run in runs:
        counts[run["code_version"]] = counts.get(run["code_version"], 0) + 1
    return "Code: " + "; ".join(f"{v} ({n} run{'s' if n > 1 else ''})"
                                for v, n in sorted(counts.items()))


def make_report(paths: Sequence, out_dir=None, *, evaluate: bool = True, device: str = "auto",
                progress: bool = False, plot: bool = True,
                log: Callable[[str], None] = print) -> dict:
    """Collect runs, aggregate them and write the tables (see the module docstring).

    Args:
        paths: run directories, or directories holding run directories.
        out_dir: where ``report.md``, the CSVs and ``reliability_grid.png`` go (None: write
            nothing).
        evaluate: evaluate runs without an evaluation on the fly (else flag them).
        device: device of the on-the-fly evaluations.
        progress: tqdm bars during those.
        plot: draw ``reliability_grid.png``.
        log: where notes go.

    Returns:
        ``{"runs", "groups", "paired", "markdown", "files", "flagged"}``.
    """
    runs = collect_runs(paths, evaluate=evaluate, device=device, progress=progress, log=log)
    groups = aggregate(runs)
    tables = _tables(groups)
    flagged = [r for r in runs if r.get("flag")]
    parts = [f"## comixup report: {len(runs)} run(s), {len(groups)} group(s) (preset x method); "
             + "mean ± sample std over seeds (n = runs)"]
    parts.append(_versions_markdown(runs))
    parts += [_markdown(title, header, body) for _, title, header, body, _ in tables]
    paired = paired_differences(runs)
    if paired:
        parts.append(_paired_markdown(paired, _segmentation_presets(groups)))
    paired_miou = paired_differences(runs, metric="miou")
    if paired_miou:
        parts.append(_paired_markdown(paired_miou))
    if flagged:
        parts.append("### Flagged runs\n\n" + "\n".join(f"- {r['dir']}: {r['flag']}"
                                                        for r in flagged))
    markdown = "\n\n".join(parts) + "\n"
    files = []
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(markdown)
        files.append(str(out / "report.md"))
        for stem, _, _, _, records in tables:
            path = out / f"{stem}.csv"
            fields = ["preset", "method", "metric", "mean", "std", "n", "seeds",
                      "increase_mean", "increase_std"]
            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(records)
            files.append(str(path))
        for stem, records in (("paired_error", paired), ("paired_miou", paired_miou)):
            if records:
                path = out / f"{stem}.csv"
                with open(path, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=list(records[0]))
                    w.writeheader()
                    w.writerows(records)
                files.append(str(path))
        if plot:
            grid = _reliability_grid(groups, out / "reliability_grid.png", log)
            if grid:
                files.append(grid)
    return {"runs": runs, "groups": groups, "paired": paired, "markdown": markdown,
            "files": files, "flagged": flagged}


def _reliability_grid(groups: dict, path: Path, log) -> str | None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .calibration import plot_reliability_grid

    rows = []
    for preset in sorted({p for p, _ in groups}):
        row = []
        for method in _method_order({m for p, m in groups if p == preset}):
            entry = groups[(preset, method)]
            if entry["bins"]:
                n = len(entry["runs"])
                row.append((f"{preset}\n{method} (n={n})", entry["bins"]))
        if row:
            rows.append(row)
    if not rows:
        log("note: no run has calibration bins: reliability_grid.png not drawn")
        return None
    fig = plot_reliability_grid(rows, path)
    plt.close(fig)
    return str(path)
