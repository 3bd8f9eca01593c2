"""The core install (torch, numpy, numba) carries the library; the CLI asks for the extra.

One subprocess refuses every package of the ``comixup[train]`` extra through a
``sys.meta_path`` finder, so the check needs no second virtual environment.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from comixup.cli import TRAIN_EXTRA

SCRIPT = textwrap.dedent("""
    import importlib.abc, json, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, Refuse())
    import torch
    import comixup
    from comixup import mixers, solver, saliency, losses
    from comixup.vat import VAT

    out = {}
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 16, 16, generator=g)
    y = torch.arange(8) % 4
    sal = torch.rand(8, 16, 16, generator=g)
    mixed = {}
    for name in mixers.names():
        m = mixers.create(name, 4, generator=torch.Generator().manual_seed(0))
        xm, ym = m(x, y, sal) if m.uses_saliency else m(x, y)
        mixed[name] = [list(xm.shape), float(ym.sum())]
    out["mixed"] = mixed
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    out["step"] = {name: float(comixup.TrainStep(name, 4)(model, x, y).detach())
                   for name in ("vanilla", "cutmix", "comixup", "puzzlemix")}
    out["vat"] = float(VAT()(model, x, model(x))[0].detach())
    out["loaded"] = sorted({n.split(".")[0] for n in sys.modules} & BLOCKED)

    from comixup.cli import main
    out["cli"] = main(["train", "--preset", "synthetic-quick", "--epochs", "1"])
    print(json.dumps(out))
""")


def run_blocked():
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(TRAIN_EXTRA)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_library_works_and_cli_names_the_extra_without_it():
    from comixup import mixers
    out, stderr = run_blocked()
    # every mixer mixed a batch, and the labels kept their mass (one per output)
    assert sorted(out["mixed"]) == sorted(mixers.names())
    for name, (shape, mass) in out["mixed"].items():
        assert shape[1:] == [3, 16, 16], name
        assert abs(mass - shape[0]) < 1e-4, name
    assert all(v == v and v > 0 for v in out["step"].values())  # finite, positive losses
    assert out["vat"] == out["vat"]
    assert out["loaded"] == []
    # the CLI answers with one line naming the extra, exit status 2
    assert out["cli"] == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("comixup: error: ") and "comixup[train]" in lines[0]


def test_pyproject_keeps_the_extra_out_of_the_core():
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("<")[0].strip().lower()
            for d in meta["dependencies"]}
    assert core == {"torch", "numpy", "numba"}
    train = {d.split(">")[0].strip().lower() for d in meta["optional-dependencies"]["train"]}
    assert {"scipy", "tqdm", "pooch", "torchmetrics", "matplotlib", "pillow"} <= train
    assert any(d.startswith("comixup[train]") for d in meta["optional-dependencies"]["test"])
