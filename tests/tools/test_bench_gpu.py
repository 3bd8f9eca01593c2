"""comixup bench gpu: the CPU smoke run through the command line, its errors, and a CUDA run."""

import json

import pytest
import torch

from comixup.cli import main
from comixup.methods import method_names
from comixup.mixers import names as mixer_names
from comixup.tools.bench_gpu import SECTIONS, bench_gpu


def _section(report: dict, name: str) -> dict:
    return next(s for s in report["sections"] if s["name"] == name)


def test_cpu_quick_run_through_the_command_line(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "gpu", "--device", "cpu", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "bench_gpu.json").read_text())
    text = (out / "bench_gpu.md").read_text()
    assert report["device"] == "cpu" and report["quick"] is True
    assert [s["name"] for s in report["sections"]] == list(SECTIONS)
    for number, section in enumerate(report["sections"], start=1):
        assert section["rows"], section["name"]
        assert f"## {number}. {section['title']}" in text
        failed = [row for row in section["rows"] if not row["ok"]]
        assert not failed, (section["name"], failed)
    assert text in printed and printed.strip().endswith("bench_gpu.md")

    # 1. CPU against CPU: equal, bitwise, for every mixer and both whole calls
    equality = _section(report, "equality")["rows"]
    assert [r["check"] for r in equality] == [f"{n}: apply" for n in mixer_names()] + [
        "comixup: whole call", "puzzlemix: whole call"]
    for row in equality:
        assert row["x_equal"] and row["y_equal"] and row["on_device"], row
        assert row["x_max_diff"] == 0 and row["y_max_diff"] == 0
    assert all(r["same_labeling"] for r in equality[-2:])

    # 2. every method in both dtypes, a finite loss
    amp = _section(report, "amp")["rows"]
    assert {(r["method"], r["dtype"]) for r in amp} == {
        (m, d) for m in method_names() for d in ("bf16", "fp16")}
    assert all(r["finite"] and r["seconds"] > 0 for r in amp)

    # 3. one row per method, counted by count_host_reads (no CUDA here)
    syncs = _section(report, "syncs")["rows"]
    assert [r["method"] for r in syncs] == method_names()
    assert all(r["host_reads_per_step"] >= 0 and "cuda_syncs_per_step" not in r for r in syncs)
    by_method = {r["method"]: r["host_reads_per_step"] for r in syncs}
    assert by_method["mixup"] == 0 and by_method["comixup"] >= 1  # the saliency's copy

    # 4. the three step times and their ratios to Vanilla
    times = _section(report, "step_time")["rows"]
    assert [r["method"] for r in times] == ["Vanilla", "Co-Mixup", "Puzzle Mix"]
    assert times[0]["vs_vanilla"] == 1 and all(r["median_ms"] > 0 for r in times)
    assert "Co-Mixup/Vanilla" in text and "Puzzle Mix/Vanilla" in text

    # 5. the parts of a Co-Mixup step
    parts = {r["key"]: r["median_ms"] for r in _section(report, "breakdown")["rows"]}
    assert set(parts) == {"saliency", "prepare", "sample_params", "pool", "solve", "rest",
                          "apply", "mixed", "optimizer", "sum", "whole"}
    assert all(parts[k] > 0 for k in ("saliency", "sample_params", "pool", "solve", "apply",
                                      "mixed", "whole"))


def test_bad_devices_and_outputs_give_one_line_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="--device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        bench_gpu(device="tpu", out=tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["bench", "gpu", "--device", "tpu"])
    assert exc.value.code == 2 and "--device" in capsys.readouterr().err
    assert main(["bench", "solver", "--device", "cpu"]) == 2
    assert "--device is an option of comixup bench gpu only" in capsys.readouterr().err
    afile = tmp_path / "file"
    afile.write_text("")
    with pytest.raises(ValueError, match="--out must be a directory"):
        bench_gpu(device="cpu", quick=True, out=afile)
    assert not list(tmp_path.glob("bench_gpu.*"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_names_the_flag(capsys):
    with pytest.raises(ValueError, match="--device cuda: .*CUDA is not available"):
        bench_gpu()
    assert main(["bench", "gpu", "--device", "cuda:0", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("comixup: error: --device cuda:0: ") and "CUDA is not available" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_quick_run(tmp_path):
    report = bench_gpu(device="cuda", quick=True, out=tmp_path)
    assert [s["name"] for s in report["sections"]] == list(SECTIONS)
    for section in report["sections"]:
        assert not [r for r in section["rows"] if "error" in r or
                    str(r.get("status", "ok")).startswith("error")], section["name"]
    assert all(r["ok"] for r in _section(report, "equality")["rows"]
               if r["check"].endswith(": apply"))
    assert all(r["finite"] for r in _section(report, "amp")["rows"])
    assert all("cuda_syncs_per_step" in r for r in _section(report, "syncs")["rows"])
    assert (tmp_path / "bench_gpu.json").is_file() and (tmp_path / "bench_gpu.md").is_file()
