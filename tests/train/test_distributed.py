"""Two-process DistributedDataParallel training on the CPU (gloo), launched with torchrun."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")


def _method():
    """Co-Mixup exercises the clean backward under no_sync()."""
    return "comixup"


@pytest.mark.slow
def test_two_ranks_end_with_identical_weights(tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # PreActResNet18 at width 16 has BatchNorm buffers; 16 images a step, 8 per rank
    cfg = tiny(method=_method(), arch="preactresnet18", arch_options={"initial_channels": 16},
               epochs=2, batch_size=16, out=str(out))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(WORKER), json.dumps(cfg), str(out)],
        check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    a = torch.load(out / "rank0.pt", weights_only=True)
    b = torch.load(out / "rank1.pt", weights_only=True)
    assert a.keys() == b.keys() and any("running_mean" in k for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # metrics are reduced over the ranks: every test sample counted once, the same on both
    m0, m1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert m0["samples"] == m1["samples"] == 32
    assert m0["error"] == pytest.approx(m1["error"]) and m0["ece"] == pytest.approx(m1["ece"])
    # only rank 0 writes the run files: one header and one row per epoch
    with open(out / "metrics.csv", newline="") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2"]
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and len(state["method"]) == 2
    assert all(torch.equal(state["model"][k], a[k]) for k in a)
    assert proc.stdout.count("final:") == 1
