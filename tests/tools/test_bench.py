"""comixup bench solver, mixers and pairwise: the command line, the rows, the shared code."""

import json

import pytest
import torch

from comixup.analysis import table6
from comixup.cli import main
from comixup.tools import bench


def test_bench_passes_quick_and_writes_out(monkeypatch, tmp_path, capsys):
    seen = []

    def fake(**kwargs):
        seen.append(kwargs)
        return [{"name": "x", "ms": 1.0}]

    monkeypatch.setattr(bench, "bench_solver", fake)
    monkeypatch.setattr(bench, "bench_mixers", fake)
    out = tmp_path / "new" / "b.json"
    assert main(["bench", "solver", "--quick", "--out", str(out)]) == 0
    assert seen == [{"quick": True}]
    assert json.loads(out.read_text()) == [{"name": "x", "ms": 1.0}]
    assert capsys.readouterr().out.strip().endswith(f"wrote {out}")
    assert main(["bench", "mixers"]) == 0
    assert seen[-1] == {"quick": False} and "wrote" not in capsys.readouterr().out


def test_bench_out_overwrites_an_existing_file(tmp_path, capsys):
    out = tmp_path / "pairwise.json"
    out.write_text("old results\n")
    assert main(["bench", "pairwise", "--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["pairwise"] for r in rows] == ["reference", "squared"]
    assert all(r["partitions"] == 10 for r in rows)
    assert f"wrote {out}" in capsys.readouterr().out
    assert main(["bench", "pairwise", "--quick", "--out", str(tmp_path)]) == 2
    assert f"{tmp_path} is a directory" in capsys.readouterr().err


def test_bench_functions_take_keywords_and_return_rows():
    rows = bench.bench_pairwise(partitions=2)
    assert len(rows) == 2 and {r["partitions"] for r in rows} == {2}
    with pytest.raises(TypeError, match="quick must be true or false"):
        bench.bench_pairwise(quick="yes")
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        bench.bench_pairwise(partitions=0)
    with pytest.raises(ValueError, match="name must be one of"):
        bench.run_benchmark("nothing")


@pytest.mark.parametrize("name", ["bench_solver", "bench_mixers"])
def test_the_cpu_benches_run_on_one_thread_and_give_the_callers_back(name, monkeypatch):
    from comixup.analysis import timing

    seen = []

    def stop(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("stop here")

    monkeypatch.setattr(timing, "solver_timing", stop)
    monkeypatch.setattr(bench, "realistic_saliency", stop)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError, match="stop here"):
            getattr(bench, name)(quick=True)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_bench_solver_prints_the_table6_rows_of_the_analysis(monkeypatch, capsys):
    # the solver timings and the end-to-end call are the analysis's and the mixer's; Table 6 is
    # analysis.table6's rows, printed, not a second copy of its loop
    from comixup.analysis import timing

    asked = []
    monkeypatch.setattr(timing, "solver_timing", lambda *a, **k: iter(()))
    monkeypatch.setattr(bench, "_bench_comixup_end_to_end", lambda rows, quick: None)
    fake = [dict(m=2, n=4, method=label, restarts=restarts, polish=polish, f_solve=1.5,
                 f_opt=1.25, f_random=3.0, rel_error=0.125)
            for label, restarts, polish in table6.VARIANTS]

    def rows(*, seeds):
        asked.append(seeds)
        return fake

    monkeypatch.setattr(bench, "table6_rows", rows)
    got = bench.bench_solver(quick=True)
    assert asked == [20]
    assert got == [dict(table6=True, **r) for r in fake]
    printed = capsys.readouterr().out
    assert "20 seeds" in printed and "restarts=4 polish=100" in printed and "0.1250" in printed
