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


@pytest.fixture
def torchrun_rank_on_two_gpus(monkeypatch):
    """Rank 1 of 2 as torchrun starts it, on a two-GPU machine, on the CPU: torch.cuda says two
    GPUs and records ``set_device``; ``init_process_group`` records its arguments."""
    from torch import distributed as dist

    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(key, value)
    calls = {"set_device": [], "init": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device",
                        lambda d: calls["set_device"].append(torch.device("cuda", d)
                                                             if isinstance(d, int) else d))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls["init"].append(kw))
    return calls


@pytest.mark.parametrize("name", ["cuda", "auto"])
def test_torchrun_rank_trains_on_its_own_gpu(torchrun_rank_on_two_gpus, name):
    from comixup.config import TrainConfig
    from comixup.train.engine import _world_and_device

    world, device = _world_and_device(TrainConfig(device=name))
    assert (world.rank, world.world_size, world.local_rank) == (1, 2, 1)
    (init,) = torchrun_rank_on_two_gpus["init"]
    # the model's device is the GPU NCCL binds the rank to, and nothing touches GPU 0
    assert init["backend"] == "nccl" and init["device_id"] == device == torch.device("cuda", 1)
    assert set(torchrun_rank_on_two_gpus["set_device"]) == {torch.device("cuda", 1)}


@pytest.mark.parametrize("name", ["cuda:0", "cuda:1"])
def test_torchrun_refuses_one_gpu_for_every_rank(torchrun_rank_on_two_gpus, tiny, name):
    from comixup.train import train

    with pytest.raises(ValueError, match=rf"device '{name}' names one GPU for every rank"):
        train(tiny(device=name))
    assert torchrun_rank_on_two_gpus["init"] == []  # refused before any process group
