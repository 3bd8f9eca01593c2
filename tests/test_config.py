"""comixup.config and .schedule: presets, resolution, validation, learning rates."""

import json

import pytest
import torch

from comixup import data, models
from comixup.config import (
    TrainConfig,
    list_presets,
    load_preset,
    parse_option,
    preset_source,
    resolve_config,
)
from comixup.methods import accepted_options, method_names
from comixup.train.schedule import EpochSchedule, lr_at

TABLE1 = ["cifar100-preactresnet18", "cifar100-wrn16-8", "cifar100-resnext29-4-24",
          "tinyimagenet-preactresnet18", "imagenet-resnet50", "speech-lenet", "speech-vgg11"]


def test_every_paper_experiment_has_a_preset():
    presets = list_presets()
    for name in TABLE1 + ["synthetic-quick", "synthetic"]:
        assert name in presets, name
        assert presets[name], f"{name} has no description"
        assert "\n" not in presets[name]


@pytest.mark.parametrize("name", sorted(list_presets()))
def test_presets_resolve_to_valid_settings(name):
    cfg = resolve_config(name)
    assert cfg.preset == name
    assert cfg.arch in models.names()
    assert cfg.data in data.DATASETS
    assert cfg.method in method_names()
    assert set(models.options(cfg.arch)) >= set(cfg.arch_options)
    for method in cfg.preset_method_options:
        assert method == "*" or method in method_names()
    for method in method_names():  # every column of the preset resolves, with valid options
        options = resolve_config(name, {"method": method}).method_options
        assert set(options) <= accepted_options(method)
        assert options["loss"] in ("bce", "ce")
    if name in TABLE1:
        assert preset_source(name), f"{name} does not cite its source"


def test_table1_recipes():
    c = resolve_config("cifar100-preactresnet18")
    assert (c.epochs, c.batch_size, c.lr, c.milestones, c.gamma) == (300, 100, 0.2, [100, 200], 0.1)
    assert (c.optimizer, c.momentum, c.nesterov, c.weight_decay) == ("sgd", 0.9, True, 1e-4)
    t = resolve_config("tinyimagenet-preactresnet18")
    assert (t.epochs, t.milestones, t.arch_options["stem_stride"]) == (1200, [600, 900], 2)
    i = resolve_config("imagenet-resnet50")
    assert i.schedule == "piecewise" and i.epochs == 100
    assert i.phase_at(0)["batch_size"] == 1024 and i.phase_at(0)["data_options"]["crop"] == 128
    assert i.phase_at(15)["batch_size"] == 448 and i.phase_at(99)["data_options"]["crop"] == 224
    for name in ("speech-lenet", "speech-vgg11"):
        s = resolve_config(name)
        assert (s.epochs, s.early_stop_patience, s.early_stop_split) == (30, 5, "val")


def test_imagenet_recipe_follows_the_released_code():
    # Co-Mixup: the released code draws its prior from Dirichlet(ones) (alpha 1), grid 4
    c = resolve_config("imagenet-resnet50", {"method": "comixup"})
    assert (c.method_options["alpha"], c.method_options["grid"]) == (1.0, 4)
    assert (c.method_options["partition"], c.method_options["n_iter"]) == (16, 3)
    # RandomResizedCrop min scale 0.08 in phase 1, 0.087 in phases 2-3
    assert c.phase_at(0)["data_options"]["scale"] == [0.08, 1.0]
    for epoch in (15, 40, 99):
        assert c.phase_at(epoch)["data_options"]["scale"] == [0.087, 1.0]
    # Puzzle Mix: the released ImageNet configs, clean_lam 1, 1, 0 by phase
    p = resolve_config("imagenet-resnet50", {"method": "puzzlemix"})
    opts = p.method_options
    assert (opts["beta"], opts["gamma"], opts["eta"], opts["alpha"]) == (1.5, 0.5, 0.2, 1.0)
    assert (opts["neigh_size"], opts["t_size"], opts["transport"], opts["t_eps"]) == \
        (2, -1, True, 0.8)
    by_epoch = {e: p.phase_at(e)["method_options"]["clean_lam"] for e in (0, 14, 15, 39, 40, 99)}
    assert by_epoch == {0: 1, 14: 1, 15: 1, 39: 1, 40: 0, 99: 0}
    assert p.phase_at(40)["method_options"]["beta"] == 1.5  # the rest holds in every phase
    # the other columns do not see Puzzle Mix's phase options
    assert c.phase_at(40)["method_options"]["clean_lam"] == 1.0
    text = json.dumps(p.to_dict())
    assert '"clean_lam": 0' in text and '"neigh_size": 2' in text


def test_phase_method_options_merge_and_validate():
    cfg = TrainConfig.from_dict({"method": "mixup", "method_options": {"alpha": 0.4},
                                 "phases": [{"start": 0},
                                            {"start": 3, "method_options": {
                                                "*": {"loss": "bce"}, "mixup": {"alpha": 2.0},
                                                "cutmix": {"alpha": 9.0}}}]})
    assert cfg.phase_at(0)["method_options"]["alpha"] == 0.4
    late = cfg.phase_at(5)["method_options"]
    assert (late["alpha"], late["loss"]) == (2.0, "bce")
    with pytest.raises(ValueError, match=r"phases\[0\].method_options key must be one of"):
        TrainConfig.from_dict({"phases": [{"start": 0, "method_options": {"mixupp": {}}}]})
    with pytest.raises(TypeError, match=r"phases\[0\].method_options\['mixup'\] must be a dict"):
        TrainConfig.from_dict({"phases": [{"start": 0, "method_options": {"mixup": 1}}]})
    with pytest.raises(TypeError, match=r"phases\[0\].method_options must be a dict"):
        TrainConfig.from_dict({"phases": [{"start": 0, "method_options": [1]}]})
    with pytest.raises(ValueError, match=r"unknown method option\(s\) \['beta'\].*phases"):
        TrainConfig.from_dict({"method": "mixup",
                               "phases": [{"start": 0, "method_options": {"mixup": {"beta": 1}}}]})


def test_fashion_mnist_recipes():
    # FMix Table 1's recipe (recipes 3), every column with CE and alpha 1.
    f = resolve_config("fashion-mnist-preactresnet18")
    assert (f.data, f.data_options, f.limit_train) == ("fashion-mnist", {}, None)
    assert (f.epochs, f.batch_size, f.lr, f.schedule, f.milestones, f.gamma) == \
        (200, 128, 0.1, "step", [100, 150], 0.1)
    assert (f.optimizer, f.momentum, f.nesterov, f.weight_decay) == ("sgd", 0.9, False, 1e-4)
    assert f.arch_options == {"initial_channels": 64, "stem_stride": 1}
    for method in ("mixup", "cutmix"):
        opts = resolve_config("fashion-mnist-preactresnet18", {"method": method}).method_options
        assert (opts["loss"], opts["alpha"]) == ("ce", 1.0)
    assert "FMix" in preset_source("fashion-mnist-preactresnet18")
    c = resolve_config("fashion-mnist-cpu")
    assert c.data == "fashion-mnist" and c.threads == 1
    assert resolve_config("fashion-mnist-cpu",
                          {"method": "vanilla"}).method_options["loss"] == "bce"


def test_imagenet_lr_points():
    i = resolve_config("imagenet-resnet50")
    kw = {"schedule": "piecewise", "lr": i.lr, "epochs": i.epochs, "lr_points": i.lr_points}
    assert lr_at(0, **kw) == pytest.approx(0.5)
    assert lr_at(4, **kw) == pytest.approx(0.75)
    assert lr_at(8, **kw) == pytest.approx(1.0)
    assert lr_at(14.99, **kw) == pytest.approx(0.125, abs=0.002)
    assert lr_at(15.5, **kw) == pytest.approx(0.2 - 0.18 * 0.5 / 25, rel=1e-3)
    assert lr_at(40, **kw) == pytest.approx(0.02)
    assert lr_at(100, **kw) == pytest.approx(2e-5)


def test_resolution_layers():
    cfg = resolve_config("synthetic-quick", {"epochs": 1, "method_options": {"alpha": 1.0},
                                             "arch_options": {"stem_stride": 1}})
    assert cfg.epochs == 1 and cfg.method_options["alpha"] == 1.0
    assert cfg.method_options["loss"] == "bce"  # the preset's "*" entry
    assert cfg.method_options["tau"] == 0.83  # Co-Mixup's default, recorded
    assert cfg.arch_options == {"initial_channels": 16, "stem_stride": 1}  # merged
    again = resolve_config(base=cfg.to_dict(), overrides={"seed": 3})
    assert again.seed == 3 and again.epochs == 1
    json.dumps(again.to_dict())


def test_preset_method_options():
    cfg = TrainConfig(method="mixup", preset_method_options={"mixup": {"alpha": 0.2}},
                      method_options={"loss": "bce"})
    assert cfg.effective_method_options() == {"alpha": 0.2, "loss": "bce", "clean_lam": 0.0}
    cfg.method = "cutmix"  # CutMix's default alpha
    assert cfg.effective_method_options() == {"alpha": 1.0, "loss": "bce", "clean_lam": 0.0}
    # "*" applies to every method, a method's own entry wins over it, the flags win over both
    cfg = TrainConfig(method="vanilla", preset_method_options={
        "*": {"loss": "bce"}, "mixup": {"loss": "ce", "alpha": 2.0}})
    assert cfg.effective_method_options() == {"loss": "bce"}
    cfg.method = "mixup"
    assert cfg.effective_method_options() == {"loss": "ce", "alpha": 2.0, "clean_lam": 0.0}
    cfg.method_options = {"alpha": 0.2}
    assert cfg.effective_method_options() == {"loss": "ce", "alpha": 0.2, "clean_lam": 0.0}
    cfg.method_options = {"beta": 1}
    with pytest.raises(ValueError, match=r"unknown method option\(s\) \['beta'\]"):
        cfg.effective_method_options()
    with pytest.raises(ValueError, match="preset_method_options key"):
        TrainConfig(preset_method_options={"mixupp": {}}).validate()


@pytest.mark.parametrize("key,value,match", [
    ("epochs", 0, "epochs must be >= 1"),
    ("epochs", 1.5, "epochs must be an int"),
    ("lr", -1.0, "lr must be"),
    ("schedule", "poly", "schedule must be one of"),
    ("device", "tpu", "device must be"),
    ("amp", "yes", "amp must be true or false"),
    ("optimizer", "rmsprop", "optimizer must be one of"),
    ("milestones", [10, -1], "milestones"),
    ("limit_train", 0, "limit_train must be >= 1"),
    ("method_options", [], "method_options must be a dict"),
    ("lr_points", [[0, 1.0], [0, 0.5]], "lr_points epochs must increase"),
    ("phases", [{"start": 0, "crop": 3}], "unknown key"),
    ("phases", [{"batch_size": 3}], "needs a 'start'"),
])
def test_validation_names_the_field(key, value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig.from_dict({key: value})


def test_every_field_is_checked_as_its_metadata_says():
    import dataclasses

    from comixup.config import FIELD_KINDS, check_field

    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["kind"] in FIELD_KINDS, f.name
        if f.metadata["flag"]:
            assert f.metadata["help"], f.name
    meta = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}
    assert check_field("threads", None, meta["threads"]) is None  # optional
    with pytest.raises(TypeError, match="epochs must be an int"):
        check_field("epochs", None, meta["epochs"])
    assert TrainConfig.from_dict({"lr": 0.0}).lr == 0.0  # a run that cannot learn, for tests
    with pytest.raises(ValueError, match=r"lr must be a finite number in \[0.0, inf\]"):
        TrainConfig.from_dict({"lr": -0.1})
    with pytest.raises(TypeError, match=r"snapshots must be a list of ints"):
        TrainConfig.from_dict({"snapshots": 3})
    with pytest.raises(ValueError, match=r"snapshots\[\] must be >= 1, got 0"):
        TrainConfig.from_dict({"snapshots": [0]})
    with pytest.raises(TypeError, match="momentum must be a real number"):
        TrainConfig.from_dict({"momentum": "0.9"})
    with pytest.raises(TypeError, match="label must be a string"):
        TrainConfig.from_dict({"label": 3})
    with pytest.raises(ValueError, match="amp_dtype must be one of"):
        TrainConfig.from_dict({"amp_dtype": "fp8"})


def test_unknown_keys_and_presets():
    with pytest.raises(ValueError, match=r"unknown configuration key\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="preset must be one of"):
        load_preset("cifar1000")
    with pytest.raises(ValueError, match="piecewise"):
        TrainConfig.from_dict({"schedule": "piecewise"})


def test_parse_option():
    assert parse_option("alpha=1.5") == ("alpha", 1.5)
    assert parse_option("resolve=false") == ("resolve", False)
    assert parse_option("threshold=soft") == ("threshold", "soft")
    assert parse_option("depths=[0,1]") == ("depths", [0, 1])
    assert parse_option("workers=null") == ("workers", None)
    with pytest.raises(ValueError, match="key=value"):
        parse_option("alpha")
    with pytest.raises(ValueError, match="identifier"):
        parse_option("a-b=1")


def test_step_and_cosine_schedules():
    assert lr_at(99.99, schedule="step", lr=0.2, epochs=300, milestones=[100, 200]) == 0.2
    assert lr_at(100, schedule="step", lr=0.2, epochs=300,
                 milestones=[100, 200]) == pytest.approx(0.02)
    assert lr_at(250, schedule="step", lr=0.2, epochs=300,
                 milestones=[100, 200]) == pytest.approx(0.002)
    assert lr_at(0, schedule="cosine", lr=0.1, epochs=10) == pytest.approx(0.1)
    assert lr_at(5, schedule="cosine", lr=0.1, epochs=10) == pytest.approx(0.05)
    assert lr_at(10, schedule="cosine", lr=0.1, epochs=10) == pytest.approx(0.0)
    assert lr_at(3, schedule="constant", lr=0.1, epochs=10) == 0.1


def test_epoch_schedule_sets_the_optimizer():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = EpochSchedule(opt, schedule="step", lr=0.2, epochs=3, milestones=[1])
    assert s.set(1.0) == pytest.approx(0.02) and opt.param_groups[0]["lr"] == pytest.approx(0.02)
    state = s.state_dict()
    t = EpochSchedule(opt, schedule="step", lr=0.2, epochs=3, milestones=[1])
    t.load_state_dict(state)
    assert t.last_t == 1.0 and t.last_lr == pytest.approx(0.02)


def test_changing_arch_or_data_drops_the_presets_options():
    assert resolve_config("synthetic-quick", {"arch": "lenet"}).arch_options == {}
    assert resolve_config("synthetic-quick", {"arch": "preactresnet18"}).arch_options == \
        {"initial_channels": 16}
    cfg = resolve_config("imagenet-resnet50", {"data": "synthetic64",
                                               "data_options": {"num_train": 10}})
    assert cfg.data_options == {"num_train": 10}


def test_cifar10_preset_prints_the_published_co_mixup_command(capsys):
    """The resolved configuration is the CIFAR-10 command whose run gave Co-Mixup 96.44%:
    --labels_per_class 5000 --arch preactresnet18 --learning_rate 0.2 --epochs 300 --schedule
    100 200 --gammas 0.1 0.1 --m_part 20 --m_block_num 4 --mixup_alpha 2.0 --clean_lam 1.0
    --m_beta 0.32 --m_gamma 1.0 --m_thres 0.83 --m_eta 0.05 --m_omega 0.001."""
    from comixup.cli import main

    assert main(["train", "--preset", "cifar10-preactresnet18", "--method", "comixup",
                 "--print-config"]) == 0
    c = json.loads(capsys.readouterr().out)
    assert (c["data"], c["data_options"], c["arch"]) == (
        "cifar10", {"labels_per_class": 5000}, "preactresnet18")
    assert (c["arch_options"]["initial_channels"], c["arch_options"]["stem_stride"]) == (64, 1)
    assert (c["lr"], c["epochs"], c["milestones"], c["gamma"]) == (0.2, 300, [100, 200], 0.1)
    assert (c["batch_size"], c["optimizer"], c["nesterov"], c["weight_decay"]) == (
        100, "sgd", True, 1e-4)
    m = c["method_options"]
    assert (m["partition"], m["grid"], m["alpha"], m["clean_lam"]) == (20, 4, 2.0, 1.0)
    assert (m["beta"], m["gamma"], m["tau"], m["eta"], m["omega"]) == (
        0.32, 1.0, 0.83, 0.05, 0.001)
    assert m["loss"] == "bce" and c["amp"] is False
    # the other columns as the CIFAR-100 preset trains them
    for method in ("mixup", "puzzlemix", "manifold"):
        ours = resolve_config("cifar10-preactresnet18", {"method": method}).method_options
        assert ours == resolve_config("cifar100-preactresnet18", {"method": method}).method_options
