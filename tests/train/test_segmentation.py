"""The segmentation task end to end: per-pixel training of every studied method, mIoU in the
run's outputs, the model/task check, the report and ``comixup show`` with masks."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from comixup.cli import main
from comixup.evaluate.report import make_report
from comixup.study import StudyRun, learning_curves
from comixup.train import train


def seg(tiny, **overrides):
    """The tiny setup as a segmentation run: U-Net of width 2 on 16 x 16 class maps."""
    return tiny(**{"data": "synthetic-seg", "arch": "preactresnet18_unet",
                   "arch_options": {"initial_channels": 2}, "batch_size": 8, **overrides})


@pytest.mark.parametrize("method", ["vanilla", "cutmix", "puzzlemix", "comixup"])
def test_every_studied_method_trains_per_pixel_and_reports_the_miou(tiny, tmp_path, method):
    options = {"puzzlemix": {"clean_lam": 0, "t_size": 4}}.get(method, {})
    result = train(seg(tiny, method=method, method_options=options, epochs=1))
    m = result.metrics
    assert 0 <= m["miou"] <= 100 and len(m["iou"]) == 11 and m["images"] == 32
    assert m["samples"] == 32 * 16 * 16  # every pixel scored
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        row = list(csv.DictReader(f))[-1]
    assert float(row["test_miou"]) == pytest.approx(m["miou"], abs=1e-3)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["miou"] == pytest.approx(m["miou"])


def test_comixup_eval_of_a_segmentation_run_prints_and_stores_the_miou(tiny, tmp_path, capsys):
    result = train(seg(tiny, method="cutmix", epochs=1))
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--no-progress",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "mean IoU" in printed and "skipped" in printed  # no boxes: no CAM, no robustness
    stored = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert stored["miou"] == pytest.approx(result.metrics["miou"])


def test_the_model_must_fit_the_task(tiny):
    with pytest.raises(ValueError, match="arch 'lenet' predicts one class per image"):
        train(seg(tiny, arch="lenet", arch_options={}))
    with pytest.raises(ValueError, match="arch 'preactresnet18_unet' predicts per-pixel"):
        train(tiny(arch="preactresnet18_unet", arch_options={"initial_channels": 2}))


def test_the_report_has_the_miou_table_and_its_paired_differences(tiny, tmp_path):
    for method in ("vanilla", "cutmix"):
        for seed in (0, 1):
            train(seg(tiny, method=method, seed=seed, epochs=1, plot=True,
                      out=str(tmp_path / method / f"seed{seed}")))
    report = make_report([tmp_path / "vanilla", tmp_path / "cutmix"], tmp_path / "report",
                         evaluate=False, log=lambda _: None)
    assert "Segmentation: mean IoU (%)" in report["markdown"]
    assert "Paired differences of mean IoU" in report["markdown"]
    assert "| pixel error |" in report["markdown"] and "| top-1 error |" not in report["markdown"]
    assert "pixel error for the segmentation presets" in report["markdown"]
    assert (tmp_path / "report" / "paired_miou.csv").is_file()
    runs = [StudyRun(m, (), k, tmp_path / m / f"seed{k}") for m in ("vanilla", "cutmix")
            for k in (0, 1)]
    with Image.open(learning_curves(runs, tmp_path / "curves.png")) as img:
        assert len(np.unique(np.asarray(img.convert("L")))) > 10


def test_show_draws_the_masks_beside_the_mixed_images(tmp_path, capsys):
    out = tmp_path / "seg.png"
    assert main(["show", "--data", "synthetic-seg", "--method", "comixup", "--batch", "4",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["show", "--data", "synthetic-seg", "--checkpoint", str(out)]) == 2
    assert "comixup: error: --data synthetic-seg draws the masks" in capsys.readouterr().err
