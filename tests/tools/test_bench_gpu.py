"""comixup bench gpu: the CPU smoke run through the command line, its errors, and a CUDA run."""

import json

import pytest
import torch

from comixup.cli import main
from comixup.methods import method_names
from comixup.mixers import names as mixer_names
from comixup.tools._measure import Settings
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
    # every section and every method row of sections 2 to 4 has its peak memory (the RSS here)
    assert all(s["memory"]["peak_rss_mib"] > 0 for s in report["sections"])
    assert text.count("; peak RSS ") == len(SECTIONS)
    for name in ("amp", "syncs", "step_time"):
        assert all(r["peak_rss_mib"] > 0 for r in _section(report, name)["rows"]), name
    assert Settings.read() == report["settings"]  # the run left the process as it found it

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
    assert all(r["explicit_waits_per_step"] == 0 for r in syncs)  # nothing waits on the CPU
    assert "explicit waits / step" in text

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
    syncs = {r["method"]: r for r in _section(report, "syncs")["rows"]}
    assert all("cuda_syncs_per_step" in r for r in syncs.values())
    # the wait of the saliency's host copy on its event, once per step at least
    assert syncs["comixup"]["explicit_waits_per_step"] >= 1
    assert syncs["puzzlemix"]["explicit_waits_per_step"] >= 1
    assert all(s["memory"]["peak_allocated_mib"] > 0 for s in report["sections"])
    assert all(r["peak_reserved_mib"] >= r["peak_allocated_mib"] > 0
               for r in _section(report, "step_time")["rows"])
    assert (tmp_path / "bench_gpu.json").is_file() and (tmp_path / "bench_gpu.md").is_file()


def _small_section(title="t"):
    return {"title": title, "columns": [["method", "method"]],
            "rows": [{"method": "m", "ok": True}], "notes": ["n"]}


def test_a_failing_section_is_its_result_and_the_others_run_with_their_settings(
        monkeypatch, tmp_path):
    from comixup import validation
    from comixup.mixers import CoMixup
    from comixup.tools import bench_gpu as bg
    from comixup.tools._measure import Settings

    before = Settings.read()
    seen = {}

    def fake(name):
        def section(device, sizes, scratch):
            seen[name] = Settings.read()
            return _small_section(name)
        return section

    def failing(device, sizes, scratch):  # changes every kind of setting, then fails
        torch.backends.cudnn.benchmark = not before["cudnn.benchmark"]
        torch.set_num_threads(before["num_threads"] + 1)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.set_grad_enabled(False)
        validation("always")
        raise RuntimeError("boom\non two lines")

    def no_solve(*args, **kwargs):
        raise ZeroDivisionError("the solver failed")

    functions = {name: fake(name) for name in SECTIONS}
    functions["amp"] = failing
    functions["breakdown"] = bg._section_breakdown  # the real one, its solve made to fail
    monkeypatch.setattr(bg, "_SECTION_FUNCTIONS", functions)
    monkeypatch.setattr(CoMixup, "solve_partitions", no_solve)
    report = bench_gpu(device="cpu", quick=True, out=tmp_path)

    assert [s["name"] for s in report["sections"]] == list(SECTIONS)
    assert set(seen) == {"equality", "syncs", "step_time"}  # the sections after a failure ran
    for name in ("syncs", "step_time"):  # ... under the settings of the start
        assert seen[name] == before, name
    assert Settings.read() == before
    amp = _section(report, "amp")
    assert amp["error"] == "RuntimeError: boom on two lines"
    assert amp["rows"] == [{"error": "RuntimeError: boom on two lines", "ok": False}]
    assert "RuntimeError: boom" in amp["traceback"]
    assert set(amp["settings_restored"]) == {"cudnn.benchmark", "num_threads",
                                             "deterministic_algorithms",
                                             "deterministic_warn_only", "grad_enabled",
                                             "validation"}
    assert amp["settings_restored"]["validation"] == ["always", before["validation"]]
    breakdown = _section(report, "breakdown")
    assert breakdown["error"] == "ZeroDivisionError: the solver failed"
    assert "_section_breakdown" in breakdown["traceback"]
    text = (tmp_path / "bench_gpu.md").read_text()
    assert "## 2. AMP epochs (one short epoch of every method)" in text
    assert "**failed**: RuntimeError: boom on two lines" in text
    assert "settings restored after it: " in text and "validation (always -> auto)" in text
    assert "## 5. Co-Mixup step, part by part" in text
    assert "**failed**: ZeroDivisionError: the solver failed" in text
    for section in report["sections"]:
        assert section["memory"]["peak_rss_mib"] > 0, section["name"]
    assert text.count("peak RSS ") == len(SECTIONS)
    assert not _section(report, "syncs")["settings_restored"]


def test_every_run_of_a_section_gets_its_settings_back_and_its_memory(monkeypatch):
    from comixup import methods
    from comixup.tools import bench_gpu as bg
    from comixup.tools._measure import Settings

    before = Settings.read()

    def fake_run(name, dtype, device, sizes, scratch):
        assert torch.backends.cudnn.benchmark == before["cudnn.benchmark"]  # restored between
        torch.backends.cudnn.benchmark = not before["cudnn.benchmark"]  # as train() on CUDA
        if dtype == "fp16":
            raise ValueError("no fp16 today")
        return {"method": name, "dtype": dtype, "finite": True, "train_loss": 1.0,
                "test_loss": 1.0, "seconds": 0.1, "status": "ok"}

    monkeypatch.setattr(methods, "method_names", lambda: ["vanilla", "comixup"])
    monkeypatch.setattr(bg, "_amp_run", fake_run)
    device = torch.device("cpu")
    section = bg._section_amp(device, bg._sizes(device, True), None)
    assert Settings.read() == before
    assert [(r["dtype"], r["ok"]) for r in section["rows"]] == [
        ("bf16", True), ("fp16", False), ("bf16", True), ("fp16", False)]
    assert section["rows"][1]["status"] == "error: ValueError: no fp16 today"
    assert all(r["settings_restored"] == "cudnn.benchmark" for r in section["rows"])
    assert all(r["peak_rss_mib"] > 0 and r["rss_scope"] in ("block", "process")
               for r in section["rows"])
    text = bg.markdown({"device": "cpu", "device_name": "CPU", "quick": True, "torch": "x",
                        "cuda": None, "cpus": 1, "torch_threads": 1,
                        "sections": [dict(section, seconds=1.0)]})
    assert "| seconds | peak RSS MiB | settings restored | status |" in text
    assert text.count("| cudnn.benchmark |") == 4
