"""``comixup report`` (Tables 1, 2, 3, 10 and Figure 4 over seeds), ``comixup eval`` and the
engine's final evaluation, end to end on tiny runs."""

import csv
import json
import math

import pytest

from comixup.cli import main
from comixup.evaluate.report import aggregate, make_report

BINS = {"count": [0] * 9 + [10], "confidence_sum": [0] * 9 + [9.5], "correct_sum": [0] * 9 + [8]}


def fake_run(root, name, method, seed, error, ece, loc=None, replace=None, preset="toy"):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"preset": preset, "method": method, "seed": seed, "data": "synthetic"}))
    summary = {"error": error, "error_top5": 1.0, "ece": ece, "bins": BINS}
    final = {}
    if loc is not None:
        final["localization"] = {"top1_loc": loc, "gt_known_loc": loc + 10,
                                 "random_top1_loc": 5.0, "random_gt_known_loc": 6.0}
    if replace is not None:
        final["robustness"] = {"replace": {"error": replace, "increase": replace - error},
                               "gaussian": {"error": error + 1, "increase": 1.0}}
    summary["final_eval"] = final
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def test_aggregate_mean_std_count(tmp_path):
    fake_run(tmp_path, "a0", "vanilla", 0, 10.0, 4.0, loc=50.0, replace=30.0)
    fake_run(tmp_path, "a1", "vanilla", 1, 12.0, 6.0, loc=54.0, replace=33.0)
    fake_run(tmp_path, "b0", "mixup", 0, 11.0, 8.0, loc=60.0, replace=31.0)
    report = make_report([tmp_path], tmp_path / "out", evaluate=False, log=lambda s: None)
    groups = report["groups"]
    v = groups[("toy", "vanilla")]
    assert v["error"] == {"mean": 11.0, "std": pytest.approx(math.sqrt(2)), "n": 2}
    assert v["increase_replace"]["mean"] == pytest.approx(20.5)  # (20 + 21) / 2
    assert v["bins"]["count"][-1] == 20                          # seeds' bins added
    assert groups[("toy", "mixup")]["error"] == {"mean": 11.0, "std": None, "n": 1}
    md = report["markdown"]
    assert "| toy | top-1 error | 11.00 ± 1.41 (n=2) | 11.00 (n=1) |" in md
    assert "| toy | random replacement | 31.50 ± 2.12 (+20.50 ± 0.71) (n=2) | " \
           "31.00 (+20.00) (n=1) |" in md
    assert "| toy | localization (top-1 loc.) | 52.00 ± 2.83 (n=2) | 60.00 (n=1) |" in md
    assert "| toy | ECE | 5.00 ± 1.41 (n=2) | 8.00 (n=1) |" in md
    assert md.index("Table 1") < md.index("Table 2") < md.index("Table 3") < md.index("Table 10")
    out = tmp_path / "out"
    for name in ("report.md", "table1_error.csv", "table2_localization.csv",
                 "table3_robustness.csv", "table10_ece.csv", "reliability_grid.png"):
        assert (out / name).is_file(), name
    with open(out / "table1_error.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], float(r["mean"]), r["n"], r["seeds"]) for r in rows] == \
        [("vanilla", 11.0, "2", "0 1"), ("mixup", 11.0, "1", "0")]


def test_runs_without_evaluation_are_flagged(tmp_path):
    fake_run(tmp_path, "ok", "vanilla", 0, 10.0, 4.0)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text(json.dumps({"method": "cutmix"}))
    report = make_report([tmp_path / "ok", tmp_path / "empty"], None, evaluate=False)
    assert len(report["flagged"]) == 1 and "no summary.json" in report["flagged"][0]["flag"]
    assert "### Flagged runs" in report["markdown"]
    assert aggregate([])== {}


TINY = ["--preset", "synthetic-quick", "--arch", "preactresnet18", "--arch-opt",
        "initial_channels=4", "--data-opt", "image_size=16", "--data-opt", "num_train=48",
        "--data-opt", "num_test=16", "--batch-size", "16", "--epochs", "1", "--device", "cpu",
        "--threads", "1", "--no-progress", "--no-tensorboard", "--no-plot", "--deterministic"]


def test_train_eval_report_end_to_end(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["train", *TINY, "--method", "vanilla", "--seed", "0", "--data-dir",
            str(tmp_path / "data"), "--out", str(runs / "vanilla-s0")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("final eval: top-1 loc") == 1
    summary = json.loads((runs / "vanilla-s0" / "summary.json").read_text())
    assert summary["seed"] == 0 and len(summary["bins"]["count"]) == 10
    final = summary["final_eval"]
    assert final["tasks"] == ["localization", "robustness"]
    assert final["robustness"]["clean_error"] == summary["error"]
    assert 0 <= final["localization"]["top1_loc"] <= 100 - summary["error"] + 1e-9

    # comixup eval: every task, one table, eval.json and three figures beside the checkpoint
    ckpt = runs / "vanilla-s0" / "last.pt"
    assert main(["eval", "--checkpoint", str(ckpt), "--device", "cpu", "--no-progress"]) == 0
    out = capsys.readouterr().out
    for word in ("top-1 error", "ECE (10 bins)", "top-1 loc. accuracy", "GT-known",
                 "random boxes", "background replaced", "Gaussian background"):
        assert word in out, word
    result = json.loads((runs / "vanilla-s0" / "eval.json").read_text())
    assert result["tasks"] == ["clean", "calibration", "localization", "robustness"]
    assert result["error"] == pytest.approx(json.loads(
        (runs / "vanilla-s0" / "summary.json").read_text())["error"], abs=1e-6)
    for name in ("reliability.png", "cam_samples.png", "corruption_samples.png"):
        assert (runs / "vanilla-s0" / name).is_file(), name
    assert main(["eval", "--checkpoint", str(ckpt), "--tasks", "clean", "--json", "--out",
                 str(tmp_path / "e"), "--no-progress"]) == 0
    only = json.loads(capsys.readouterr().out)
    assert only["tasks"] == ["clean"] and "localization" not in only
    assert main(["eval", "--checkpoint", str(ckpt), "--tasks", "nope"]) == 2
    assert "comixup: error: tasks must be" in capsys.readouterr().err

    # comixup report over two seeds, one of them without a final evaluation: evaluated
    argv = ["train", *TINY, "--method", "vanilla", "--seed", "1", "--no-final-eval",
            "--data-dir", str(tmp_path / "data"), "--out", str(runs / "vanilla-s1")]
    assert main(argv) == 0
    assert "final_eval" not in json.loads((runs / "vanilla-s1" / "summary.json").read_text())
    capsys.readouterr()
    assert main(["report", str(runs), "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "vanilla-s1 has no evaluation: evaluating" in out
    assert "Table 1: top-1 error" in out and "Table 10" in out
    assert "| synthetic-quick | top-1 error | " in out and out.count("(n=2)") >= 6
    assert (tmp_path / "report" / "reliability_grid.png").is_file()
    assert main(["report", str(tmp_path / "nothing-here")]) == 2
    assert "comixup: error: run directory not found" in capsys.readouterr().err


def test_paired_differences_by_seed(tmp_path):
    # Vanilla's seeds differ by 4 points; mixup is 1 and 2 points better on the same seeds.
    fake_run(tmp_path, "v0", "vanilla", 0, 10.0, 4.0)
    fake_run(tmp_path, "v1", "vanilla", 1, 14.0, 4.0)
    fake_run(tmp_path, "v2", "vanilla", 2, 12.0, 4.0)
    fake_run(tmp_path, "m0", "mixup", 0, 9.0, 4.0)
    fake_run(tmp_path, "m1", "mixup", 1, 12.0, 4.0)
    fake_run(tmp_path, "c1", "comixup", 1, 11.0, 4.0)
    fake_run(tmp_path, "x0", "cutmix", 0, 9.0, 4.0, preset="other")  # no reference there
    report = make_report([tmp_path], tmp_path / "out", evaluate=False, plot=False,
                         log=lambda s: None)
    rows = {(r["reference"], r["method"]): r for r in report["paired"]}
    assert set(rows) == {("vanilla", "mixup"), ("vanilla", "comixup"), ("comixup", "vanilla"),
                         ("comixup", "mixup")}
    r = rows[("vanilla", "mixup")]
    assert (r["n"], r["mean"], r["seeds"]) == (2, -1.5, "0 1")
    assert r["std"] == pytest.approx(math.sqrt(0.5))
    assert r["se"] == pytest.approx(0.5)
    assert r["t"] == pytest.approx(-3.0)
    one = rows[("comixup", "vanilla")]  # one common seed: no spread
    assert (one["n"], one["mean"], one["std"], one["se"], one["t"]) == (1, 3.0, None, None, None)
    assert "| toy | vanilla | mixup | -1.50 ± 0.71 | 0.50 | -3.0 | 2 | -1.00 -2.00 |" in \
        report["markdown"]
    with open(tmp_path / "out" / "paired_error.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 4


def test_report_prints_the_code_versions(tmp_path):
    for seed, commit in ((0, "a" * 40), (1, "a" * 40), (2, None)):
        run = fake_run(tmp_path, f"v{seed}", "vanilla", seed, 10.0 + seed, 4.0)
        summary = json.loads((run / "summary.json").read_text())
        if commit:
            summary["code_version"] = {"version": "9.9", "commit": commit, "dirty": seed == 1}
        (run / "summary.json").write_text(json.dumps(summary))
    md = make_report([tmp_path], None, evaluate=False, log=lambda s: None)["markdown"]
    line = next(x for x in md.splitlines() if x.startswith("Code: "))
    assert line == ("Code: comixup 9.9 @ aaaaaaaaaaaa (1 run); comixup 9.9 @ aaaaaaaaaaaa "
                    "(+uncommitted changes) (1 run); unrecorded (1 run)")


def test_code_version_names_this_checkout():
    import subprocess
    from pathlib import Path

    import comixup
    from comixup._provenance import code_version, describe

    version = code_version()
    assert version["version"] == comixup.__version__
    src = Path(comixup.__file__).resolve().parent

    def git(*args):
        done = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top and Path(top) / "src" / "comixup" == src:  # an editable install or a source tree
        assert version["commit"] == git("rev-parse", "HEAD")
        assert describe(version).startswith(f"comixup {comixup.__version__} @ "
                                            f"{version['commit'][:12]}")
    else:
        assert version["commit"] is None
    assert describe(None) == "unrecorded"
