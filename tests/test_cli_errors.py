"""Damaged and foreign checkpoints, bad flags and bad configuration values: every user error of
the command line is one ``comixup: error:`` line naming the file or the flag, exit status 2,
never a traceback; :func:`comixup.checkpoint.load` raises one InputError (a ValueError) naming
the file. Any other exception, a bug, keeps its traceback: :func:`comixup.cli.main` re-raises
it, and ``python -m comixup`` exits with status 1."""

from __future__ import annotations

import fractions
import json
import re
import subprocess
import sys

import pytest
import torch

from comixup import checkpoint as ck
from comixup._errors import InputError
from comixup.cli import main
from comixup.train import train

from .test_cli import tiny_args
from .train.conftest import tiny_settings


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A real ``last.pt`` of a one-epoch tiny run."""
    tmp = tmp_path_factory.mktemp("good")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(tiny_settings(tmp, epochs=1, limit_train=16, limit_test=16))
    finally:
        torch.set_num_threads(threads)
    return tmp / "run" / "last.pt"


def _run(argv, capsys) -> str:
    """Run ``comixup argv``; assert exit status 2 and one error line; return that line."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("comixup: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _damaged(tmp_path, good, kind):
    """A damaged or foreign checkpoint file of the given kind."""
    path = tmp_path / f"{kind}.pt"
    state = torch.load(good, weights_only=True)
    if kind == "random-bytes":
        path.write_bytes(bytes(range(256)) * 8)
    elif kind == "json":
        path.write_text(json.dumps({"format": ck.FORMAT, "epoch": 1}))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "half-written":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "disallowed-pickle":
        torch.save(dict(state, x=fractions.Fraction(1, 3)), path)  # not a weights-only type
    elif kind == "not-a-dict":
        torch.save([1, 2, 3], path)
    elif kind == "no-config":
        del state["config"]
        torch.save(state, path)
    elif kind == "no-model":
        del state["model"]
        torch.save(state, path)
    elif kind == "old-format":
        state["format"] = "comixup-train-checkpoint-v0"
        torch.save(state, path)
    elif kind == "config-not-a-dict":
        state["config"] = "lenet"
        torch.save(state, path)
    elif kind == "bad-config":
        state["config"]["epochs"] = -3
        torch.save(state, path)
    elif kind == "wrong-shapes":
        key = next(k for k, v in state["model"].items() if v.dim() >= 2)
        state["model"][key] = torch.zeros(3, 3)
        torch.save(state, path)
    elif kind == "missing-parameter":
        state["model"].pop(next(iter(state["model"])))
        torch.save(state, path)
    return path


DAMAGE = {
    "random-bytes": "cannot read it",
    "json": "cannot read it",
    "empty": "empty",
    "half-written": "cannot read it",
    "disallowed-pickle": "cannot read it",
    "not-a-dict": "not a dict",
    "no-config": "missing key 'config'",
    "no-model": "missing key 'model'",
    "old-format": "format is 'comixup-train-checkpoint-v0'",
    "config-not-a-dict": "'config' must be a dict",
    "bad-config": "epochs",
    "wrong-shapes": "has shape (3, 3)",
    "missing-parameter": "is missing",
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["eval", "resume"])
def test_damaged_checkpoints_give_one_line(kind, command, good, tmp_path, capsys):
    path = _damaged(tmp_path, good, kind)
    if command == "eval":
        argv = ["eval", "--checkpoint", str(path), "--no-plots", "--no-progress",
                "--out", str(tmp_path / "eval")]
    else:
        argv = ["train", "--resume", str(path), "--no-progress", "--no-tensorboard",
                "--no-plot", "--threads", "1"]
    line = _run(argv, capsys)
    assert f"{path} is not a valid comixup checkpoint" in line
    assert DAMAGE[kind] in line


def test_load_names_the_file_and_the_reason(good, tmp_path):
    assert ck.load(good)["epoch"] == 1
    for kind, reason in DAMAGE.items():
        if kind in ("wrong-shapes", "missing-parameter"):
            continue  # shapes are checked where the model is built
        path = _damaged(tmp_path, good, kind)
        with pytest.raises(ValueError, match="is not a valid comixup checkpoint") as exc:
            ck.load(path)
        assert str(path) in str(exc.value) and reason in str(exc.value)
    with pytest.raises(ValueError, match=r"missing keys \['optimizer'"):
        path = tmp_path / "snapshot.pt"
        state = torch.load(good, weights_only=True)
        torch.save({k: state[k] for k in ck.REQUIRED}, path)
        ck.load(path, require=ck.RESUME_KEYS)
    with pytest.raises(ValueError, match="not a file"):
        ck.load(tmp_path)


def test_load_model_state_names_the_parameter(good, tmp_path):
    from comixup.models import create

    state = torch.load(good, weights_only=True)["model"]
    model = create("lenet", 10, in_channels=3)
    ck.load_model_state(model, state, good)  # the real weights fit
    key = next(k for k, v in state.items() if v.dim() >= 2)
    bad = dict(state, **{key: torch.zeros(1)})
    with pytest.raises(ValueError, match=rf"parameter '{key}' has shape \(1,\)"):
        ck.load_model_state(model, bad, good)
    with pytest.raises(ValueError, match="'extra' is not in the model"):
        ck.load_model_state(model, dict(state, extra=torch.zeros(1)), good)


@pytest.mark.parametrize("argv,flag", [
    (["eval", "--checkpoint", "x.pt", "--device", "tpu"], "--device"),
    (["train", "--device", "tpu"], "--device"),
    (["report", "runs", "--device", "cuda:x"], "--device"),
    (["eval", "--checkpoint", "x.pt", "--threshold", "nan"], "--threshold"),
    (["eval", "--checkpoint", "x.pt", "--threshold", "2"], "--threshold"),
    (["train", "--weight-decay", "inf"], "--weight-decay"),
    (["train", "--weight-decay", "-1"], "--weight-decay"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--epochs", "1.5"], "--epochs"),
    (["train", "--schedule", "linear"], "--schedule"),
    (["train", "--optimizer", "lbfgs"], "--optimizer"),
    (["train", "--amp-dtype", "fp8"], "--amp-dtype"),
    (["train", "--loss", "mse"], "--loss"),
    (["no-such-command"], "invalid choice"),
    (["study", "--preset", "synthetic-quick", "--methods", "vanilla", "--jobs", "0"], "--jobs"),
    (["analyze", "table6", "--seeds", "0"], "--seeds"),
    (["analyze", "mixing", "--taus", "nan"], "--taus"),
    (["show", "--batch", "1"], "--batch"),
    (["bench", "solver", "--out"], "--out"),
])
def test_bad_flags_give_one_line_naming_the_flag(argv, flag, capsys):
    assert flag in _run(argv, capsys)


def test_choices_come_from_the_package_constants():
    from comixup.cli import build_parser
    from comixup.config import AMP_DTYPES, OPTIMIZERS, SCHEDULES
    from comixup.losses import LOSSES

    train_parser = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: a.choices for a in train_parser._actions if a.choices}
    assert choices["schedule"] == list(SCHEDULES)
    assert choices["optimizer"] == list(OPTIMIZERS)
    assert choices["amp_dtype"] == list(AMP_DTYPES)
    assert choices["loss"] == list(LOSSES)


def test_missing_and_unreadable_files_give_one_line(tmp_path, capsys):
    assert "checkpoint not found" in _run(["eval", "--checkpoint", str(tmp_path / "no.pt")],
                                          capsys)
    assert "not a file" in _run(["eval", "--checkpoint", str(tmp_path)], capsys)


def test_resume_config_refuses_what_would_change_the_run(good):
    from comixup.run import resume_config

    cfg = resume_config(good, overrides={"epochs": 3, "arch": "lenet"})
    assert (cfg.epochs, cfg.method, cfg.out) == (3, "vanilla", str(good.resolve().parent))
    assert resume_config(good, overrides={"out": "elsewhere"}).out == "elsewhere"
    path = re.escape(str(good))
    overrides = {"method": "mixup"}
    with pytest.raises(ValueError, match=rf"^--method contradicts the checkpoint {path}: "
                                         r"method is 'vanilla' there, 'mixup' here$"):
        resume_config(good, overrides=overrides)
    assert overrides == {"method": "mixup"}  # the caller's dict is left as it was
    with pytest.raises(ValueError, match="^--arch-opt contradicts the checkpoint"):
        resume_config(good, overrides={"arch_options": {"initial_channels": 3}})
    with pytest.raises(ValueError, match=r"^--data-opt contradicts .* data_options is"):
        resume_config(good, overrides={"data_options": {"num_train": 96}})
    loss = {"method_options": {"loss": "bce"}}
    with pytest.raises(ValueError, match=r"^--method-opt loss contradicts the checkpoint .*: "
                                         r"the loss is 'ce' there, 'bce' here$"):
        resume_config(good, overrides=loss)
    with pytest.raises(ValueError, match="^--loss contradicts the checkpoint"):
        resume_config(good, overrides=loss, loss_flag="--loss")
    with pytest.raises(ValueError, match="^--preset contradicts the checkpoint"):
        resume_config(good, "synthetic-quick")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        resume_config(good.parent / "missing.pt")


# -- the contract: a user's error is one line, exit 2; a bug keeps its traceback -----------------


@pytest.mark.parametrize("extra, message", [
    (["--method", "mixup", "--method-opt", "alpha=-1"], "method 'mixup': alpha must be"),
    (["--method", "cutmix", "--method-opt", 'alpha="x"'],
     "method 'cutmix': alpha must be a real number, got str"),
    (["--method", "comixup", "--method-opt", "partition=0"], "method 'comixup': partition"),
    (["--arch-opt", "in_channels=0"], "arch 'lenet': in_channels must be >= 1, got 0"),
    (["--arch-opt", "width=2"], "unknown option(s) ['width'] for model 'lenet'"),
    (["--data-opt", "num_train=-1"], "num_train must be >= 0, got -1"),
    (["--data-opt", "bogus=1"], "unknown option(s) ['bogus'] for synthetic"),
    (["--limit-train", "4"], "no training batch: 4 training samples"),
    (["--method", "puzzlemix", "--method-opt", "grid=5"],
     "method 'puzzlemix' with 'lenet' on 'synthetic': grid 5 must divide the image side 16"),
    (["--method", "manifold", "--method-opt", "depths=[9]"],
     "depths (9,) share no depth with model.mix_depths (0, 1)"),
])
def test_config_values_checked_where_the_run_is_built_give_one_line(extra, message, tmp_path,
                                                                    capsys):
    assert message in _run(tiny_args(tmp_path, "--epochs", "1", *extra), capsys)


def test_file_system_and_file_errors_give_one_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("")
    line = _run(tiny_args(tmp_path, "--epochs", "1", "--out", str(afile / "run")), capsys)
    assert "Not a directory" in line and str(afile / "run") in line
    run = tmp_path / "bad-run"
    run.mkdir()
    (run / "config.json").write_text("{oops")
    line = _run(["report", str(run), "--no-evaluate", "--out", str(tmp_path / "r")], capsys)
    assert f"{run / 'config.json'} is not a JSON configuration" in line
    (run / "config.json").write_text('{"method": "vanilla"}')
    for damaged, reason in (("{", "is not a JSON file"), ("[1]", "holds a list")):
        (run / "summary.json").write_text(damaged)
        line = _run(["report", str(run), "--no-evaluate", "--out", str(tmp_path / "r")], capsys)
        assert f"{run / 'summary.json'} {reason}" in line


def _break_training(monkeypatch, error):
    """Make the engine's optimizer factory raise ``error``: an internal failure that
    ``comixup train`` meets after every user input was checked."""
    import comixup.train.engine as engine

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine, "build_optimizer", broken)


@pytest.mark.parametrize("error", [
    ValueError("an internal bug"), TypeError("an internal bug"), KeyError("an internal bug"),
    AttributeError("an internal bug"), OSError("an internal bug"),
    ImportError("an internal bug", name="comixup.nothing"),
], ids=lambda e: type(e).__name__)
def test_a_bug_keeps_its_traceback(error, tmp_path, monkeypatch, capsys):
    _break_training(monkeypatch, error)
    with pytest.raises(type(error), match="an internal bug"):
        main(tiny_args(tmp_path, "--epochs", "1"))
    assert "comixup: error" not in capsys.readouterr().err


def test_a_library_check_failing_inside_a_step_is_a_bug(tmp_path, monkeypatch, capsys):
    from comixup._checks import check_number
    from comixup.mixers import InputMixup

    def sample_params(self, *args, **kwargs):  # an argument check deep inside the library
        check_number("lam", float("nan"))

    monkeypatch.setattr(InputMixup, "sample_params", sample_params)
    with pytest.raises(ValueError, match="lam must be") as exc:
        main(tiny_args(tmp_path, "--epochs", "1", "--method", "mixup"))
    assert not isinstance(exc.value, InputError)
    assert "comixup: error" not in capsys.readouterr().err


@pytest.mark.parametrize("error, message", [
    (ModuleNotFoundError("No module named 'scipy'", name="scipy"),
     "this command needs scipy, from the training extra: pip install 'comixup[train]'"),
    (FileNotFoundError("checkpoint not found: x.pt"), "checkpoint not found: x.pt"),
    (PermissionError(13, "Permission denied", "/data/x"),
     "[Errno 13] Permission denied: '/data/x'"),
    (OSError(30, "Read-only file system", "/ro/run"),
     "[Errno 30] Read-only file system: '/ro/run'"),
    (InputError("a\nmessage on\ntwo lines"), "a message on two lines"),
], ids=lambda e: type(e).__name__ if isinstance(e, BaseException) else None)
def test_the_users_errors_are_one_line_wherever_raised(error, message, tmp_path, monkeypatch,
                                                       capsys):
    _break_training(monkeypatch, error)
    assert _run(tiny_args(tmp_path, "--epochs", "1"), capsys) == f"comixup: error: {message}"


def test_debug_shows_the_traceback_of_a_users_error(monkeypatch, capsys):
    monkeypatch.setenv("COMIXUP_DEBUG", "1")
    with pytest.raises(InputError, match="preset must be one of"):
        main(["train", "--preset", "nope"])
    assert capsys.readouterr().err == ""


def test_interrupt_exits_130(tmp_path, monkeypatch, capsys):
    _break_training(monkeypatch, KeyboardInterrupt())
    assert main(tiny_args(tmp_path, "--epochs", "1")) == 130
    assert capsys.readouterr().err == "comixup: interrupted\n"


SCRIPT = """
import runpy, sys
import comixup.train.engine as engine

def broken(*args, **kwargs):
    raise ValueError("an internal bug")

engine.build_optimizer = broken
sys.argv = ["comixup", *sys.argv[1:]]
runpy.run_module("comixup", run_name="__main__", alter_sys=True)
"""


def test_python_dash_m_comixup_prints_a_bugs_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, *tiny_args(tmp_path, "--epochs", "1")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().endswith("ValueError: an internal bug")
    assert "comixup: error" not in proc.stderr
