"""The public surface: what ``import comixup`` offers, and every registered method documented."""
import re
from pathlib import Path

import pytest

import comixup
from comixup import methods, mixers, solver
from comixup.config import TrainConfig

ROOT = Path(__file__).parents[1]


def test_the_top_level_offers_every_mixer_the_factory_the_step_vat_and_solve():
    classes = {type(mixers.create(name, 10)).__name__ for name in mixers.names()}
    assert classes <= set(comixup.__all__)
    assert {"create", "names", "TrainStep", "VAT", "solve", "Mixer", "MixParams"} <= set(
        comixup.__all__)
    assert comixup.solve is solver.solve and comixup.create is mixers.create


@pytest.mark.parametrize("module", [comixup, mixers, solver, mixers.base])
def test_every_exported_name_exists_and_has_a_docstring(module):
    for name in module.__all__:
        obj = getattr(module, name)
        if callable(obj) or isinstance(obj, type(comixup)):
            assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"


def test_validators_and_kernels_are_not_exported():
    exported = set(mixers.__all__) | set(mixers.base.__all__) | set(solver.__all__)
    assert not {n for n in exported if n.startswith("check_")}
    assert not exported & {"to_host", "sample_weights", "graphcut_masks", "transport_plan"}


def _names_in(text: str) -> set[str]:
    """The method names a text lists, with ``mixup3/4`` read as ``mixup3`` and ``mixup4``."""
    found = set(re.findall(r"[a-z][a-z0-9-]*", text))
    for stem, first, second in re.findall(r"([a-z]+)(\d)/(\d)", text):
        found |= {stem + first, stem + second}
    return found


def _documented():
    table = (ROOT / "docs" / "training.md").read_text()
    rows = "\n".join(re.findall(r"^\| `[^|]*\|", table, flags=re.M))
    help_text = TrainConfig.__dataclass_fields__["method"].metadata.get("help") or ""
    return {"docs/training.md methods table": rows, "methods module docstring": methods.__doc__,
            "--method help": help_text}


@pytest.mark.parametrize("where", sorted(_documented()))
def test_every_registered_method_is_documented(where):
    missing = set(mixers.names()) - _names_in(_documented()[where])
    assert not missing, f"{where} does not list {sorted(missing)}"


def test_the_method_help_is_what_the_cli_prints(capsys):
    from comixup.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in mixers.names():
        assert name in out
