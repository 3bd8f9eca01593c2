"""The ``comixup`` command line: train, eval, bench, presets and argument errors."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from comixup.cli import main

TINY = ["--arch", "lenet", "--data-opt", "image_size=16", "--data-opt", "num_train=64",
        "--data-opt", "num_test=32", "--batch-size", "16", "--epochs", "2", "--device", "cpu",
        "--threads", "1", "--no-progress", "--no-tensorboard", "--no-plot", "--deterministic"]


def tiny_args(tmp_path, *extra):
    return ["train", "--preset", "synthetic-quick", *TINY, "--data-dir", str(tmp_path / "data"),
            "--out", str(tmp_path / "run"), *extra]


def check_run(tmp_path, method, out):
    run = tmp_path / "run"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == method and cfg["preset"] == "synthetic-quick"
    assert cfg["data_options"] == {"image_size": 16, "num_train": 64, "num_test": 32}
    with open(run / "metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["epoch"] for r in table] == ["1", "2"]
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 2
    final = [line for line in out.splitlines() if line.startswith("final:")]
    assert len(final) == 1
    for word in ("test error", "top-5 error", "ECE", "img/s"):
        assert word in final[0]


def test_train_vanilla_then_eval(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "--method", "vanilla")) == 0
    check_run(tmp_path, "vanilla", capsys.readouterr().out)
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "test error" in out and "ECE" in out and "(32 samples)" in out
    assert main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--json",
                 "--limit-test", "8", "--plot", str(tmp_path / "rel.png")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["samples"] == 8 and set(metrics) >= {"error", "error_top5", "ece", "loss"}
    assert (tmp_path / "rel.png").exists()
    # the eval metrics on the full test set equal the last epoch's
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    main(["eval", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--json"])
    assert json.loads(capsys.readouterr().out)["error"] == pytest.approx(
        float(last["test_error"]), abs=1e-3)


def test_train_comixup(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "--method", "comixup", "--method-opt", "partition=8")) == 0
    check_run(tmp_path, "comixup", capsys.readouterr().out)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    # every option in effect is recorded: the flag, the preset's loss, the method's defaults
    assert cfg["method_options"]["partition"] == 8 and cfg["method_options"]["loss"] == "bce"
    assert cfg["method_options"]["clean_lam"] == 1.0 and cfg["method_options"]["tau"] == 0.83


def test_resume_continues(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "--method", "mixup", "--epochs", "1")) == 0
    assert main(["train", "--resume", str(tmp_path / "run" / "last.pt"), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "resumed from" in out and "epoch 2 |" in out
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 2
    # the original command with --resume added (and a longer run) is accepted
    assert main(tiny_args(tmp_path, "--method", "mixup", "--epochs", "3", "--resume",
                          str(tmp_path / "run" / "last.pt"))) == 0
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 3
    capsys.readouterr()


@pytest.mark.parametrize("extra, flag", [
    (["--method", "cutmix"], "--method"),
    (["--method", "mixup", "--loss", "ce"], "--loss"),
    (["--method", "mixup", "--method-opt", "loss=ce"], "--method-opt loss"),
    (["--method", "mixup", "--arch", "preactresnet18"], "--arch"),
    (["--method", "mixup", "--data-opt", "num_train=96"], "--data-opt"),
])
def test_resume_refuses_flags_that_change_the_run(tmp_path, capsys, extra, flag):
    assert main(tiny_args(tmp_path, "--method", "mixup", "--epochs", "1")) == 0
    capsys.readouterr()
    ckpt = str(tmp_path / "run" / "last.pt")
    assert main(tiny_args(tmp_path, *extra, "--resume", ckpt)) == 2
    err = capsys.readouterr().err
    assert f"comixup: error: {flag} contradicts the checkpoint" in err
    assert main(["train", "--resume", ckpt, "--preset", "cifar100-preactresnet18"]) == 2
    assert "--preset contradicts the checkpoint" in capsys.readouterr().err


def test_list_presets(capsys):
    assert main(["train", "--list-presets"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic-quick", "synthetic", "cifar100-preactresnet18", "cifar100-wrn16-8",
                 "cifar100-resnext29-4-24", "tinyimagenet-preactresnet18", "imagenet-resnet50",
                 "speech-lenet", "speech-vgg11"):
        line = next(ln for ln in out.splitlines() if ln.split()[0] == name)
        assert len(line.split()) > 3  # a description follows the name


def test_print_config(capsys):
    assert main(["train", "--preset", "cifar100-preactresnet18", "--method", "mixup",
                 "--method-opt", "alpha=0.2", "--lr", "0.1", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["method"], cfg["method_options"], cfg["lr"], cfg["epochs"]) == \
        ("mixup", {"loss": "bce", "clean_lam": 0.0, "alpha": 0.2}, 0.1, 300)
    assert (cfg["weight_decay"], cfg["norm_weight_decay"], cfg["nesterov"]) == (1e-4, 1e-4, True)


TABLE1_METHODS = ["vanilla", "mixup", "manifold", "cutmix", "puzzlemix", "comixup"]


@pytest.mark.parametrize("method", TABLE1_METHODS)
def test_cifar_preset_trains_every_column_with_bce(method, capsys):
    assert main(["train", "--preset", "cifar100-preactresnet18", "--method", method,
                 "--print-config"]) == 0
    options = json.loads(capsys.readouterr().out)["method_options"]
    assert options["loss"] == "bce"
    if method == "puzzlemix":
        assert options["clean_lam"] == 0 and options["t_size"] == 4
    if method in ("mixup", "cutmix"):
        assert options["alpha"] == 1.0


def test_imagenet_and_tinyimagenet_recipes(capsys):
    assert main(["train", "--preset", "imagenet-resnet50", "--method", "comixup",
                 "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    options = cfg["method_options"]
    assert (options["loss"], options["partition"], options["n_iter"]) == ("ce", 16, 3)
    assert options["location_stride"] == 8 and options["clean_lam"] == 1.0
    assert cfg["nesterov"] is False and cfg["norm_weight_decay"] == 0
    for method in ("mixup", "manifold", "cutmix", "puzzlemix"):
        assert main(["train", "--preset", "tinyimagenet-preactresnet18", "--method", method,
                     "--print-config"]) == 0
        options = json.loads(capsys.readouterr().out)["method_options"]
        assert options["loss"] == "bce"
        if method == "puzzlemix":
            assert (options["clean_lam"], options["t_size"], options["alpha"]) == (1, -1, 1.0)
        else:
            assert options["alpha"] == 0.2
    assert main(["train", "--preset", "synthetic", "--method", "vanilla", "--loss", "ce",
                 "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["method_options"] == {"loss": "ce"}


def test_imagenet_preset_prints_the_released_settings(capsys):
    assert main(["train", "--preset", "imagenet-resnet50", "--method", "comixup",
                 "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["method_options"]["alpha"] == 1.0
    assert main(["train", "--preset", "imagenet-resnet50", "--method", "puzzlemix",
                 "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    options = cfg["method_options"]
    assert (options["beta"], options["neigh_size"], options["t_size"]) == (1.5, 2, -1)
    by_phase = [(p["start"], p["method_options"]["puzzlemix"]["clean_lam"]) for p in cfg["phases"]]
    assert by_phase == [(0, 1), (15, 1), (40, 0)]
    assert [p["data_options"]["scale"][0] for p in cfg["phases"]] == [0.08, 0.087, 0.087]


FP32_REFERENCE = ["cifar100-preactresnet18", "cifar100-wrn16-8", "cifar100-resnext29-4-24",
                  "tinyimagenet-preactresnet18"]


@pytest.mark.parametrize("preset", FP32_REFERENCE)
def test_presets_of_float32_references_print_amp_false(preset, capsys):
    # Co-Mixup's and Puzzle Mix's main.py train CIFAR-100 and Tiny-ImageNet in float32
    assert main(["train", "--preset", preset, "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["amp"] is False
    assert main(["train", "--preset", preset, "--amp", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["amp"] is True  # a flag still turns it on


@pytest.mark.parametrize("argv,match", [
    (["train", "--preset", "nope"], "preset must be one of"),
    (["train", "--method", "nope", "--print-config"], "method must be one of"),
    (["train", "--arch", "nope", "--print-config"], "arch must be one of"),
    (["train", "--data", "nope", "--print-config"], "data must be one of"),
    (["eval", "--checkpoint", "/nonexistent/last.pt"], "checkpoint not found"),
])
def test_errors_name_the_argument(argv, match, capsys):
    assert main(argv) == 2
    assert match in capsys.readouterr().err


def test_method_errors_are_reported(tmp_path, capsys):
    assert main(tiny_args(tmp_path, "--method", "mixup", "--method-opt", "beta=2")) == 2
    assert "unknown method option(s) ['beta'] for method 'mixup'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["train", "--epochs", "0"],
    ["train", "--batch-size", "x"],
    ["train", "--method-opt", "alpha"],
    ["train", "--lr", "-1"],
    ["bench", "nothing"],
])
def test_bad_flag_values_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    flag = argv[1] if argv[0] == "train" else "what"
    assert flag in capsys.readouterr().err


def test_python_dash_m_comixup():
    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "comixup", *args], check=False,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    top = run("--help")
    assert top.startswith("usage: comixup")
    choices = top[top.index("{") + 1 : top.index("}")].split(",")
    assert {"train", "eval", "report", "study", "bench"} <= set(choices)
    train = run("train", "--help")
    for flag in ("--preset", "--method", "--method-opt", "--arch", "--data", "--epochs",
                 "--batch-size", "--lr", "--seed", "--device", "--out", "--resume"):
        assert flag in train, flag
    assert "{solver,mixers" in run("bench", "--help")
    bad = subprocess.run([sys.executable, "-m", "comixup", "no-such-command"], check=False,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.parametrize("method", __import__("comixup.methods", fromlist=["x"]).method_names())
def test_every_method_trains_one_epoch_through_the_cli(method, tmp_path, capsys):
    # Every method through `comixup train` on the synthetic benchmark, with the limit flags.
    argv = tiny_args(tmp_path, "--method", method, "--epochs", "1", "--limit-train", "32",
                     "--limit-test", "16")
    assert main(argv) == 0
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["epoch"] == "1" and float(row["train_loss"]) > 0
    assert "final:" in capsys.readouterr().out


def _train_parser():
    from comixup.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices["train"]


#: ``train`` flags that are not configuration fields (``--preset`` names the preset to start
#: from; it is not an override of the ``preset`` field; ``--download`` and ``--data-mirror``
#: fetch the dataset and set ``data_dir``).
TRAIN_ONLY = {"help", "list_presets", "preset", "resume", "print_config", "loss", "method_opt",
              "arch_opt", "data_opt", "download", "data_mirror"}


def test_every_flagged_field_has_a_documented_flag():
    import dataclasses

    from comixup.config import TrainConfig

    parser = _train_parser()
    actions = {a.dest: a for a in parser._actions}
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.metadata["flag"]:
            assert flag in actions[f.name].option_strings, f.name
            assert actions[f.name].default is None, f.name  # only the flags given override
        elif f.name not in TRAIN_ONLY:
            assert f.name not in actions and flag not in parser._option_string_actions, f.name
    flagged = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata["flag"]}
    assert set(actions) == flagged | TRAIN_ONLY
    for action in parser._actions:
        assert action.help, action.dest  # `comixup train --help` documents every flag
    assert {"momentum", "gamma", "lr_points", "phases", "description",
            "preset_method_options", "early_stop_split"}.isdisjoint(flagged)


def _sample(meta):
    """Text for a flag of this field's kind and the value it parses to."""
    kind, low = meta["kind"], meta["low"]
    if kind == "int":
        return [str(low + 2)], low + 2
    if kind == "ints":
        return [str(low), str(low + 3)], [low, low + 3]
    if kind == "number":
        return ["0.5"], 0.5
    if kind == "choice":
        return [meta["choices"][-1]], meta["choices"][-1]
    if kind == "device":
        return ["cuda:1"], "cuda:1"
    return ["some-text"], "some-text"


def test_generated_flags_parse_and_check_as_the_metadata_says(capsys):
    import dataclasses

    from comixup._args import field_overrides
    from comixup.config import TrainConfig

    parser = _train_parser()
    for f in dataclasses.fields(TrainConfig):
        meta, flag = f.metadata, "--" + f.name.replace("_", "-")
        if not meta["flag"]:
            continue
        if meta["kind"] == "bool":
            for argv, value in (([flag], True), ([f"--no-{flag[2:]}"], False)):
                assert field_overrides(parser.parse_args(argv), TrainConfig) == {f.name: value}
            continue
        text, value = _sample(meta)
        assert field_overrides(parser.parse_args([flag, *text]), TrainConfig) == {f.name: value}
        if meta["low"] is not None:  # below the bound: the field's own check, naming the flag
            below = str(meta["low"] - 1) if meta["kind"] != "number" else str(meta["low"])
            if meta["kind"] == "number" and not meta["low_open"]:
                below = str(meta["low"] - 1.0)
            with pytest.raises(SystemExit):
                parser.parse_args([flag, below])
            err = capsys.readouterr().err
            assert err.startswith(f"comixup: error: argument {flag}") and "must be" in err
    assert field_overrides(parser.parse_args([]), TrainConfig) == {}


@pytest.mark.parametrize("method", ["saliencymix", "guidedmixup-sr", "guidedmixup-ap", "fmix",
                                    "resizemix"])
def test_print_config_shows_the_newer_methods_options(method, capsys):
    from comixup.methods import option_defaults

    assert main(["train", "--preset", "fashion-mnist-cpu", "--method", method,
                 "--print-config"]) == 0
    options = json.loads(capsys.readouterr().out)["method_options"]
    assert set(option_defaults(method)) <= set(options)
    if method == "guidedmixup-ap":  # the GuidedMixup CIFAR-100 script's setting
        assert options["clean_lam"] == 0
