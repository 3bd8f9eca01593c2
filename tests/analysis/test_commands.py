"""Every analysis command through ``comixup`` with tiny settings, and the shared code paths."""

import csv

import numpy as np
import pytest
import torch

from comixup.analysis import table6, timing
from comixup.cli import main


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_analyze_table6(tmp_path, capsys):
    assert main(["analyze", "table6", "--seeds", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = _csv(tmp_path / "table6.csv")
    assert len(rows) == 6  # three configurations x two solve variants
    for r in rows:
        assert float(r["f_opt"]) <= float(r["f_solve"]) + 1e-9
        assert float(r["f_opt"]) <= float(r["f_random"])
    assert "0.004" in (tmp_path / "table6.md").read_text()  # the paper's value beside ours


def test_table6_rows_share_the_brute_force_between_the_variants():
    rows = table6.table6_rows(seeds=2, configs=((2, 2),))
    assert [(r["m"], r["n"], r["method"]) for r in rows] == [
        (2, 4, label) for label, _, _ in table6.VARIANTS]
    assert rows[0]["f_opt"] == rows[1]["f_opt"] and rows[0]["paper_rel_error"] == 0.004
    for row, (_, restarts, polish) in zip(rows, table6.VARIANTS):
        alone = table6.table6_relative_error(2, 2, seeds=2, restarts=restarts, polish=polish)
        assert (row["restarts"], row["polish"]) == (restarts, polish)
        assert {k: row[k] for k in ("f_solve", "f_opt", "rel_error")} == {
            k: alone[k] for k in ("f_solve", "f_opt", "rel_error")}


def test_table6_relative_error_reuses_cached_optima():
    optima = {}
    a = table6.table6_relative_error(2, 2, seeds=2, restarts=1, polish=0, optima=optima)
    b = table6.table6_relative_error(2, 2, seeds=2, restarts=1, polish=0, optima=optima)
    a.pop("solve_ms"), b.pop("solve_ms")
    assert a == b and len(optima) == 2
    # The cached optima are used, not recomputed.
    c = table6.table6_relative_error(2, 2, seeds=2, restarts=1, polish=0,
                                     optima={0: -100.0, 1: -100.0})
    assert c["f_opt"] == -100.0


@pytest.mark.parametrize("setting", ["reference", "table6"])
def test_analyze_table7(tmp_path, setting):
    assert main(["analyze", "table7", "--seeds", "2", "--m", "3", "4", "--grid", "2",
                 "--setting", setting, "--out", str(tmp_path), "--no-progress"]) == 0
    summary = _csv(tmp_path / "table7.csv")
    assert [(r["m"], r["method"]) for r in summary][:3] == [
        ("3", "Algorithm 1"), ("3", "Narasimhan-Bilmes"), ("3", "Random")]
    assert len(_csv(tmp_path / "table7_runs.csv")) == 2 * 2 * 3
    md = (tmp_path / "table7.md").read_text()
    assert "Table 8" in md
    assert ("Bernoulli" in md) == (setting == "reference")


def test_analyze_timing_shares_bench_code(tmp_path):
    rows = list(timing.solver_timing((2, 3), (2, 3), problems=2))
    assert [(r["m"], r["levels"]) for r in rows] == [(2, 2), (2, 3), (3, 2), (3, 3)]
    assert main(["analyze", "timing", "--problems", "1", "--m", "2", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    assert len(_csv(tmp_path / "timing.csv")) == 3
    assert (tmp_path / "timing.png").stat().st_size > 0


def test_analyze_mixing(tmp_path):
    assert main(["analyze", "mixing", "--batch", "8", "--epochs", "1", "--train-images", "40",
                 "--draws", "1", "--taus", "0.5", "--out", str(tmp_path), "--no-progress"]) == 0
    rows = _csv(tmp_path / "mixing.csv")
    assert [r["method"] for r in rows] == ["none", "mixup", "cutmix", "puzzlemix", "comixup",
                                           "comixup"]
    assert float(rows[0]["batch_saliency"]) == pytest.approx(1.0)
    assert float(rows[0]["diversity"]) == 1.0
    assert (tmp_path / "mixing.png").stat().st_size > 0


def test_show_synthetic_two_taus(tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["show", "--method", "comixup", "--tau", "0.5", "1.0", "--batch", "4",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert "the object box" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["comixup", "puzzlemix"])
def test_show_fashion_mnist_grayscale(tmp_path, capsys, method):
    from PIL import Image

    from ..data.test_mnist import tiny_arrays, write_dataset

    root = write_dataset(tmp_path / "fm", tiny_arrays())
    out = tmp_path / "fm.png"
    assert main(["show", "--data", "fashion-mnist", "--data-dir", str(root), "--method", method,
                 "--batch", "6", "--out", str(out)]) == 0
    assert "the object box" in capsys.readouterr().out
    with Image.open(out) as img:
        assert len(np.unique(np.asarray(img.convert("L")))) > 10
    assert main(["show", "--data", "fashion-mnist", "--data-dir", str(root), "--seed", "8",
                 "--batch", "4", "--out", str(out)]) == 2
    assert "exceeds the 10 test images" in capsys.readouterr().err


def test_show_image_folder(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
            tmp_path / f"im{i}.{'png' if i else 'jpg'}")
    out = tmp_path / "f.png"
    assert main(["show", "--method", "puzzlemix", "--images", str(tmp_path), "--size", "32",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert "gradient magnitude" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["show", "--method", "mixup", "--tau", "0.5"], "--tau applies to --method comixup"),
    (["show", "--images", "/nonexistent/dir"], "no such directory"),
    (["show", "--saliency", "model"], "--saliency model needs --checkpoint"),
])
def test_user_errors_are_one_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("comixup: error:") and message in err[0]


def test_images_that_do_not_fit_or_decode_are_one_line(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(
            tmp_path / f"im{i}.png")
    argv = ["show", "--method", "puzzlemix", "--images", str(tmp_path), "--out",
            str(tmp_path / "x.png")]
    assert main(argv + ["--size", "20"]) == 2  # Puzzle Mix's blocks do not tile 20 pixels
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["comixup: error: --method puzzlemix on 20x20 images: grid 8 must divide the "
                   "image side 20; it is one of the drawn grid sides [2, 4, 8, 16]: pass "
                   "grid=[2, 4], the sides that divide 20x20"]
    (tmp_path / "im2.png").write_bytes(b"not a png")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{tmp_path / 'im2.png'}: not a readable image" in err[0]


def test_mixing_and_show_use_a_checkpoints_model(tmp_path, capsys):
    from comixup.analysis.mixing import load_batch
    from comixup.data import build_dataset
    from comixup.train import train

    data = {"num_train": 32, "num_test": 12}
    train({"arch": "lenet", "data": "synthetic", "data_dir": str(tmp_path / "data"),
           "data_options": data, "epochs": 1, "batch_size": 16, "limit_test": 6,
           "device": "cpu", "threads": 1, "progress": False, "tensorboard": False,
           "plot": False, "final_eval": False, "out": str(tmp_path / "run")})
    ckpt = tmp_path / "run" / "last.pt"
    x, y, info, model = load_batch(4, ckpt)
    # the first images of the whole test split (not the run's limit_test subset)
    test = build_dataset("synthetic", root=tmp_path / "data", split="test", **data)
    assert torch.equal(x, torch.stack([test[i][0] for i in range(4)]))
    assert y.tolist() == [test[i][1] for i in range(4)] and info == test.info
    weights = torch.load(ckpt, weights_only=True)["model"]
    assert not model.training
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    out = tmp_path / "show.png"
    assert main(["show", "--checkpoint", str(ckpt), "--method", "mixup", "--batch", "4",
                 "--out", str(out)]) == 0
    assert "input-gradient saliency of the model" in capsys.readouterr().out
