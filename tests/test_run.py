"""comixup.run: a run's data, model and method, rebuilt from its configuration or checkpoint."""

import json

import pytest
import torch

from comixup import run as run_layer
from comixup.config import TrainConfig
from comixup.data import dataset_info
from comixup.run import (
    build_method,
    load_run,
    method_options,
    read_config,
    resolve_device,
)

#: LeNet on 16 x 16 synthetic images (64 train / 32 test): trains in about a second.
TINY = {"method": "vanilla", "arch": "lenet", "data": "synthetic",
        "data_options": {"image_size": 16, "num_train": 64, "num_test": 32}, "epochs": 2,
        "batch_size": 16, "seed": 0, "device": "cpu", "threads": 1, "progress": False,
        "tensorboard": False, "plot": False, "final_eval": False, "snapshots": [1],
        "limit_test": 20}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run: ``(run directory, its settings)``."""
    from comixup.train import train

    root = tmp_path_factory.mktemp("run_layer")
    settings = dict(TINY, data_dir=str(root / "data"), out=str(root / "run"))
    train(settings)
    return root / "run", settings


def test_a_checkpoint_gives_its_weights_test_data_and_epoch(trained):
    run_dir, settings = trained
    run = load_run(run_dir / "last.pt", device="cpu")
    state = torch.load(run_dir / "last.pt", weights_only=True)
    assert run.epoch == 2 and run.checkpoint == run_dir / "last.pt" and run.state["epoch"] == 2
    for key, value in run.model.state_dict().items():
        assert torch.equal(value, state["model"][key]), key
    assert not run.model.training and run.device == torch.device("cpu")
    assert run.split == "test" and len(run.dataset) == settings["limit_test"]
    assert run.info is run.dataset.info and run.num_classes == run.info.num_classes
    assert run.autocast_dtype is None and run.channels_last is False  # the CPU, no amp_cpu
    assert run.cfg.method == "vanilla" and run.cfg.limit_test == settings["limit_test"]


def test_overrides_replace_the_configuration(trained, tmp_path):
    run_dir, _settings = trained
    assert len(load_run(run_dir / "last.pt", device="cpu", limit_test=5).dataset) == 5
    whole = load_run(run_dir / "last.pt", device="cpu", overrides={"limit_test": None})
    assert len(whole.dataset) == TINY["data_options"]["num_test"]
    moved = load_run(run_dir / "last.pt", device="cpu", data_dir=tmp_path)
    assert moved.cfg.data_dir == str(tmp_path) and moved.cfg.data_options == TINY["data_options"]


def test_a_configuration_gives_a_fresh_model(trained):
    run_dir, settings = trained
    for source in (settings, TrainConfig.from_dict(settings), run_dir / "config.json",
                   str(run_dir / "config.json")):
        run = load_run(source, device="cpu")
        assert run.checkpoint is None and run.state is None and run.epoch is None
        assert run.cfg.arch == "lenet" and len(run.dataset) == settings["limit_test"]
    epoch = run.load_weights(run_dir / "snapshots" / "epoch1.pt")
    assert epoch == run.epoch == 1 and run.checkpoint.name == "epoch1.pt"
    snapshot = torch.load(run_dir / "snapshots" / "epoch1.pt", weights_only=True)["model"]
    assert all(torch.equal(v, snapshot[k]) for k, v in run.model.state_dict().items())


def test_no_split_builds_no_dataset(trained):
    run = load_run(trained[0] / "last.pt", device="cpu", split=None)
    assert run.dataset is None and run.split is None
    assert run.info == dataset_info("synthetic")


def test_bad_sources_are_named(trained, tmp_path):
    run_dir, _ = trained
    with pytest.raises(TypeError, match="source must be a TrainConfig"):
        load_run(3)
    with pytest.raises(ValueError, match="not a valid comixup checkpoint: not a file"):
        load_run(run_dir)  # a run directory is not a checkpoint
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_run(tmp_path / "missing.pt")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json is not a configuration"):
        load_run(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json is not a JSON configuration"):
        read_config(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="device must be"):
        load_run(run_dir / "last.pt", device="gpu")


def test_read_config_of_a_run_directory(trained, tmp_path):
    run_dir, _ = trained
    written = json.loads((run_dir / "config.json").read_text())
    assert read_config(run_dir) == written == read_config(run_dir / "config.json")
    assert read_config(run_dir / "last.pt") == torch.load(run_dir / "last.pt",
                                                          weights_only=True)["config"]
    only_checkpoint = tmp_path / "copy"
    only_checkpoint.mkdir()
    (only_checkpoint / "last.pt").write_bytes((run_dir / "last.pt").read_bytes())
    assert read_config(only_checkpoint)["arch"] == "lenet"
    with pytest.raises(FileNotFoundError, match="neither config.json nor last.pt"):
        read_config(tmp_path)


def test_method_options_fill_in_the_normalization_for_the_methods_that_take_it():
    info = dataset_info("synthetic")
    puzzle = TrainConfig(method="puzzlemix")
    options = method_options(puzzle, info)
    assert options["mean"] == list(info.mean) and options["std"] == list(info.std)
    assert set(options) - {"mean", "std"} == set(puzzle.effective_method_options())
    assert method_options(puzzle, info, {"mean": [0.5], "std": [0.25]}) == {"mean": [0.5],
                                                                           "std": [0.25]}
    mixup = TrainConfig(method="mixup")
    assert method_options(mixup, info) == mixup.effective_method_options()
    assert "mean" not in method_options(mixup, info)


def test_build_method_seeds_per_rank_or_as_asked():
    info = dataset_info("synthetic")
    cfg = TrainConfig(method="mixup", seed=3)

    def draws(method):
        return torch.rand(4, generator=method.method.generator)

    rank0, again, rank1 = (build_method(cfg, info, rank=r) for r in (0, 0, 1))
    assert torch.equal(draws(rank0), draws(again)) and not torch.equal(draws(rank0), draws(rank1))
    seeded = build_method(cfg, info, seed=7)
    assert torch.equal(draws(seeded), draws(build_method(cfg, info, seed=7)))
    assert rank0.name == "mixup" and rank0.method.num_classes == info.num_classes
    assert rank0.method.memory_format is torch.contiguous_format
    assert build_method(cfg, info, channels_last=True).method.memory_format is torch.channels_last
    assert build_method(cfg, info, options={"alpha": 0.3}).mixer.alpha == 0.3


def test_build_method_fills_in_the_normalization_the_method_takes(monkeypatch):
    info = dataset_info("synthetic")
    seen = {}
    real = run_layer.TrainStep

    def spy(name, num_classes, **options):
        seen[name] = set(options) & {"mean", "std"}
        return real(name, num_classes, **options)

    monkeypatch.setattr(run_layer, "TrainStep", spy)
    for method in ("puzzlemix", "vat", "mixup"):
        build_method(TrainConfig(method=method), info)
    # Puzzle Mix's smoothness takes both; VAT's ball the std only; the others neither
    assert seen == {"puzzlemix": {"mean", "std"}, "vat": {"std"}, "mixup": set()}


def test_resolve_device():
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


@pytest.fixture
def two_gpus(monkeypatch):
    """torch.cuda of a machine with two GPUs, on the CPU: ``set_device`` records its calls."""
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(torch.device(d)))
    return calls


def test_resolve_device_makes_the_gpu_current(two_gpus):
    # a single process on cuda:N makes it the current device (the mixers' streams and events)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)]
    assert resolve_device("cuda") == resolve_device("auto") == torch.device("cuda", 0)
    assert two_gpus[1:] == [torch.device("cuda", 0)] * 2
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 2 CUDA device\(s\)"):
        resolve_device("cuda:2")
    assert resolve_device("cpu") == torch.device("cpu") and len(two_gpus) == 3


def test_resolve_device_under_torchrun(two_gpus):
    # each rank on its own GPU; one GPU named for every rank is refused
    for name in ("cuda", "auto", torch.device("cuda")):
        assert resolve_device(name, 1, distributed=True) == torch.device("cuda", 1)
    assert two_gpus == [torch.device("cuda", 1)] * 3
    for name in ("cuda:0", "cuda:1", torch.device("cuda", 0)):
        with pytest.raises(ValueError, match=r"names one GPU for every rank.*torchrun.*'cuda'"):
            resolve_device(name, 1, distributed=True)
    assert len(two_gpus) == 3
    with pytest.raises(ValueError, match=r"'cuda:2': this machine has 2"):
        resolve_device("cuda", 2, distributed=True)  # LOCAL_RANK beyond the GPUs
    assert resolve_device("cpu", 1, distributed=True) == torch.device("cpu")
