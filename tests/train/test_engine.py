"""comixup.train.engine: outputs of a run, exact resume, early stopping and phases."""

import csv
import json

import pytest
import torch

from comixup import checkpoint as ck
from comixup.train import TrainConfig, train


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_config_metrics_and_checkpoint(tiny, tmp_path):
    result = train(tiny(method="mixup", plot=True))
    out = tmp_path / "run"
    assert result.out_dir == out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["method"] == "mixup" and cfg["out"] == str(out)
    table = rows(out / "metrics.csv")
    assert [r["epoch"] for r in table] == ["1", "2"]
    for key in ("epoch", "train_loss", "test_error", "test_error_top5", "ece", "seconds", "lr",
                "images_per_s"):
        assert table[-1][key] != "", key
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 2 and state["config"]["method"] == "mixup"
    assert set(state["model"]) == set(result.model.state_dict())
    m = result.metrics
    assert 0 <= m["error"] <= 100 and 0 <= m["ece"] <= 100 and m["samples"] == 32
    assert m["images_per_s"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["error"] == pytest.approx(m["error"])
    from comixup._provenance import code_version
    assert summary["code_version"] == code_version() and summary["code_version"]["version"]
    assert (out / "reliability.png").stat().st_size > 0


@pytest.mark.parametrize("method", ["mixup", "comixup"])
def test_resume_equals_uninterrupted_run(tiny, tmp_path, method):
    # a step schedule (independent of the total epochs) with a decay at the resume point
    opts = {"method": method, "schedule": "step", "milestones": [2]}
    full = train(tiny(epochs=3, out=str(tmp_path / "full"), **opts))
    train(tiny(epochs=2, out=str(tmp_path / "cut"), **opts))
    resumed = train(tiny(epochs=3, out=str(tmp_path / "cut"), **opts),
                    resume=tmp_path / "cut" / "last.pt")
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    fa, fb = (ck.load(tmp_path / d / "last.pt") for d in ("full", "cut"))
    for key, value in fa["optimizer"]["state"].items():
        assert torch.equal(value["momentum_buffer"],
                           fb["optimizer"]["state"][key]["momentum_buffer"])
    assert [r["epoch"] for r in rows(tmp_path / "cut" / "metrics.csv")] == ["1", "2", "3"]
    assert rows(tmp_path / "cut" / "metrics.csv")[2]["test_error"] == \
        rows(tmp_path / "full" / "metrics.csv")[2]["test_error"]


def test_resume_of_a_finished_run_only_evaluates(tiny, tmp_path):
    first = train(tiny(epochs=1))
    again = train(tiny(epochs=1), resume=tmp_path / "run" / "last.pt")
    assert again.history == []
    assert again.metrics["error"] == pytest.approx(first.metrics["error"])


def test_resume_drops_metric_rows_after_the_checkpoint(tiny, tmp_path):
    train(tiny(epochs=1))
    path = tmp_path / "run" / "metrics.csv"
    with open(path, "a") as f:  # a row written just before a crash, with no checkpoint
        f.write("2,1,1,1,1,1,,0.1,1,1,1\n")
    train(tiny(epochs=2), resume=tmp_path / "run" / "last.pt")
    assert [r["epoch"] for r in rows(path)] == ["1", "2"]


def test_early_stopping(tiny):
    # lr 0: the validation accuracy never improves after the first epoch
    result = train(tiny(epochs=10, lr=0.0, schedule="constant", early_stop_patience=2,
                        early_stop_split="test"))
    assert result.stopped_early and len(result.history) == 3
    assert all(r["val_error"] != "" for r in result.history)


def test_phases_change_the_batch_size(tiny):
    result = train(tiny(epochs=2, phases=[{"start": 0, "batch_size": 32},
                                          {"start": 1, "batch_size": 16}]))
    assert len(result.history) == 2


def test_phases_switch_the_method_options_and_continue_its_random_stream(tiny, tmp_path,
                                                                         monkeypatch):
    from comixup import run

    built = []
    real = run.TrainStep

    def spy(name, num_classes, **options):
        method = real(name, num_classes, **options)
        built.append((options["alpha"], method))
        return method

    monkeypatch.setattr(run, "TrainStep", spy)
    phases = [{"start": 0}, {"start": 1, "method_options": {"mixup": {"alpha": 0.3},
                                                            "cutmix": {"alpha": 5.0}}}]
    train(tiny(method="mixup", epochs=2, limit_train=32, phases=phases))
    assert [alpha for alpha, _ in built] == [1.0, 0.3]
    assert built[1][1].mixer.alpha == 0.3
    built.clear()
    train(tiny(method="mixup", epochs=2, limit_train=32, phases=[{"start": 0}, {"start": 1}]))
    assert len(built) == 1  # no option changes: the method is kept
    # a run resumed in the second phase switches too and continues the same random stream
    opts = {"method": "mixup", "limit_train": 32, "phases": phases, "schedule": "constant"}
    full = train(tiny(epochs=2, out=str(tmp_path / "full"), **opts))
    train(tiny(epochs=1, out=str(tmp_path / "cut"), **opts))
    resumed = train(tiny(epochs=2, out=str(tmp_path / "cut"), **opts),
                    resume=tmp_path / "cut" / "last.pt")
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert built[-1][0] == 0.3


def test_bad_settings_fail_early(tiny):
    with pytest.raises(ValueError, match="no training batch"):
        train(tiny(limit_train=8))
    with pytest.raises(ValueError, match=r"unknown method option\(s\) \['beta'\]"):
        train(tiny(method="mixup", method_options={"beta": 1.0}))
    with pytest.raises(ValueError, match="arch must be one of"):
        train(tiny(arch="resnet9000"))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['depth'\] for model 'lenet'"):
        train(tiny(arch_options={"depth": 3}))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train(tiny(device="cuda"))


def test_train_restores_global_torch_settings(tiny, monkeypatch):
    from comixup.train import engine

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    real = engine._set_determinism

    def as_on_cuda(cfg, device):  # what it does to cuDNN on a GPU
        real(cfg, device)
        torch.backends.cudnn.benchmark = not cudnn[0]
        torch.backends.cudnn.deterministic = not cudnn[1]

    monkeypatch.setattr(engine, "_set_determinism", as_on_cuda)
    train(tiny(epochs=1, threads=2, deterministic=True))
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic) == cudnn


def test_accepts_a_dict_or_a_config(tiny):
    cfg = TrainConfig.from_dict(tiny(epochs=1))
    assert train(cfg).config is cfg
    from_dict = train(tiny(epochs=1, out=cfg.out + "-dict"))
    assert isinstance(from_dict.config, TrainConfig) and from_dict.config.out == cfg.out + "-dict"
    assert from_dict.metrics["error"] == pytest.approx(train(cfg).metrics["error"])


def test_puzzlemix_gets_the_dataset_normalization(tiny, monkeypatch):
    from comixup import run

    seen = {}
    real = run.TrainStep

    def spy(name, num_classes, **options):
        seen.update(options)
        return real(name, num_classes, **options)

    monkeypatch.setattr(run, "TrainStep", spy)
    train(tiny(method="puzzlemix", epochs=1, limit_train=16))
    from comixup.data import build_dataset

    info = build_dataset("synthetic", root=tiny()["data_dir"], split="test",
                         **tiny()["data_options"]).info
    assert seen["mean"] == list(info.mean) and seen["std"] == list(info.std)



def test_a_step_may_return_its_loss_as_a_float_or_a_tensor(tiny, tmp_path, monkeypatch):
    """The engine sums the losses on the device: a step that returns a detached 0-dim tensor
    gives the same train_loss as one that returns a float (progress bar on)."""
    from comixup.methods import MixStep

    cls = MixStep
    real = cls.step
    losses = {}
    for kind in ("float", "tensor"):
        def step(self, model, x, y, backward, kind=kind):
            loss = real(self, model, x, y, backward)
            value = float(loss)
            return value if kind == "float" else torch.tensor(value, dtype=torch.float32)

        monkeypatch.setattr(cls, "step", step)
        result = train(tiny(method="mixup", epochs=1, progress=True,
                            out=str(tmp_path / kind)))
        losses[kind] = result.history[0]["train_loss"]
    assert isinstance(losses["tensor"], float) and losses["tensor"] == losses["float"]


def test_all_reduce_sum_takes_numbers_and_tensors():
    from comixup.train import distributed as ddp

    values = [torch.tensor(2.5, dtype=torch.float64), 3, torch.tensor(0.25)]
    assert ddp.all_reduce_sum(values, ddp.DistInfo(), "cpu") == [2.5, 3.0, 0.25]


def test_autocast_dtype_is_one_choice_for_training_and_eval():
    from comixup.run import autocast_dtype

    cpu = torch.device("cpu")
    assert autocast_dtype(TrainConfig(amp=True, amp_dtype="bf16"), cpu) is None
    assert autocast_dtype(TrainConfig(amp=False), cpu) is None
    if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
        cuda = torch.device("cuda")
        expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        assert autocast_dtype(TrainConfig(amp=True, amp_dtype="bf16"), cuda) is expected
        assert autocast_dtype(TrainConfig(amp=True, amp_dtype="fp16"), cuda) is torch.float16

def test_snapshots_keep_the_weights_of_the_listed_epochs(tiny, tmp_path):
    result = train(tiny(epochs=2, snapshots=[1]))
    snap = torch.load(result.out_dir / "snapshots" / "epoch1.pt", weights_only=True)
    assert snap["epoch"] == 1 and set(snap["model"]) == set(result.model.state_dict())
    assert not (result.out_dir / "snapshots" / "epoch2.pt").exists()
    final = {k: v for k, v in result.model.state_dict().items() if v.is_floating_point()}
    assert any(not torch.equal(snap["model"][k], v) for k, v in final.items())  # trained on
    with pytest.raises(ValueError, match="snapshots"):
        train(tiny(snapshots=[0]))


def test_eval_every_evaluates_the_listed_epochs_and_the_last(tiny, tmp_path):
    full = train(tiny(epochs=5, out=str(tmp_path / "full")))
    sparse = train(tiny(epochs=5, eval_every=2, out=str(tmp_path / "sparse")))
    table = rows(tmp_path / "sparse" / "metrics.csv")
    assert [r["test_error"] != "" for r in table] == [False, True, False, True, True]
    assert all(r["train_loss"] != "" for r in table)
    reference = rows(tmp_path / "full" / "metrics.csv")
    for epoch in (1, 3, 4):  # same training, the same numbers where both evaluated
        assert table[epoch]["test_error"] == reference[epoch]["test_error"]
        assert table[epoch]["ece"] == reference[epoch]["ece"]
    assert sparse.metrics["error"] == pytest.approx(full.metrics["error"])
    with pytest.raises(ValueError, match="eval_every"):
        train(tiny(eval_every=0))


def test_study_learning_curves_use_the_evaluated_epochs(tiny, tmp_path):
    from PIL import Image

    from comixup import study

    train(tiny(epochs=3, eval_every=2, out=str(tmp_path / "a")))

    class Run:
        label, out = "vanilla", tmp_path / "a"

    path = study.learning_curves([Run()], tmp_path / "curves.png")
    with Image.open(path) as img:
        assert img.size[0] > 0
