"""comixup study: the grid, resumption, sweeps and the report (a tiny grid through the CLI)."""

import json

import numpy as np
import pytest

from comixup.cli import main
from comixup.study import parse_sweep, plan_study

TINY = ["--", "--arch", "lenet", "--data-opt", "image_size=16", "--data-opt", "num_train=64",
        "--data-opt", "num_test=32", "--batch-size", "16", "--epochs", "1", "--device", "cpu",
        "--no-tensorboard", "--no-plot", "--no-final-eval", "--deterministic"]


def test_parse_sweep_and_plan(tmp_path):
    assert parse_sweep(["tau=0.79,0.83", "resolve=false", "depths=[0,1]", "threshold=soft"]) == [
        ("tau", [0.79, 0.83]), ("resolve", [False]), ("depths", [[0, 1]]), ("threshold", ["soft"])]
    runs = plan_study(tmp_path, ["vanilla", "comixup"], 2, parse_sweep(["tau=0.79,0.83"]))
    assert len(runs) == 2 * 2 * 2
    assert runs[-1].label == "comixup tau=0.83"
    assert runs[-1].out == tmp_path / "comixup-tau=0.83" / "seed1"
    assert {r.state() for r in runs} == {"todo"}
    with pytest.raises(ValueError, match="method must be one of"):
        plan_study(tmp_path, ["nope"], 1)
    with pytest.raises(ValueError, match="seeds"):
        plan_study(tmp_path, ["vanilla"], 0)
    with pytest.raises(ValueError, match="empty value"):
        parse_sweep(["tau=0.8,"])


def test_study_trains_the_grid_resumes_and_reports(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["study", "--preset", "synthetic-quick", "--methods", "vanilla,mixup", "--seeds", "2",
            "--out", str(out), "--no-progress", "--no-report", *TINY, "--data-dir",
            str(tmp_path / "data")]
    assert main(argv) == 0
    runs = sorted(p.parent for p in out.glob("*/seed*/summary.json"))
    assert [f"{p.parent.name}/{p.name}" for p in runs] == [
        "mixup/seed0", "mixup/seed1", "vanilla/seed0", "vanilla/seed1"]
    cfg = json.loads((out / "mixup" / "seed1" / "config.json").read_text())
    assert (cfg["method"], cfg["seed"], cfg["label"], cfg["epochs"]) == ("mixup", 1, "mixup", 1)
    capsys.readouterr()
    # an interrupted run (checkpoint, no summary) is resumed; finished ones are skipped
    (out / "vanilla" / "seed0" / "summary.json").unlink()
    argv[argv.index("--no-report")] = "--report"
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 runs, 3 done, 1 to resume" in text
    assert "resumed from" in (out / "vanilla" / "seed0" / "train.log").read_text()
    assert "Table 1: top-1 error" in text and "(n=2)" in text
    assert (out / "report" / "report.md").is_file()
    assert "### Cost per epoch" in text and "| vanilla |" in text.split("### Cost per epoch")[1]
    from PIL import Image

    with Image.open(out / "report" / "learning_curves.png") as img:
        assert img.size == (1100, 400)
        assert len(np.unique(np.asarray(img.convert("L")))) > 10  # curves, not a blank canvas
    # a second invocation into the same directory: one report over both
    argv2 = argv[:argv.index("--methods")] + ["--methods", "mixup", "--seeds", "1",
                                              "--method-opt", "clean_lam=1"]
    argv2 += argv[argv.index("--seeds") + 2:]
    assert main(argv2) == 0
    text = capsys.readouterr().out
    table = text.split("Table 1: top-1 error")[1].split("###")[0]
    assert "| preset | metric | vanilla | mixup | mixup clean_lam=1 |" in table
    cost = text.split("### Cost per epoch")[1]
    assert "| mixup clean_lam=1 |" in cost and "| vanilla |" in cost
    assert "| synthetic-quick | vanilla | mixup clean_lam=1 |" in text  # paired differences


def test_study_flags_that_it_sets_are_refused(tmp_path, capsys):
    assert main(["study", "--preset", "synthetic-quick", "--methods", "vanilla", "--out",
                 str(tmp_path), "--", "--seed", "3"]) == 2
    assert "--seed is set by comixup study" in capsys.readouterr().err
