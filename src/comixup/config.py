"""Training configuration: :class:`TrainConfig`, presets and their resolution.

A run is fully described by a :class:`TrainConfig`. It is built from three layers, later ones
winning: the defaults below, a preset (a JSON file in ``comixup/presets/``, one per
experiment of the paper) and explicit overrides (the command-line flags). The resolved
configuration is written to ``config.json`` in the run directory and stored in every checkpoint,
so ``comixup eval`` and ``--resume`` can rebuild the run.

Every error about a configuration (an unknown preset, key or option, a bad value) is an
:class:`~comixup._errors.InputError` naming it: the user's input, printed by ``comixup`` as one
line.

Everything in a configuration is plain JSON (numbers, strings, booleans, ``null``, lists and
dicts), which keeps checkpoints loadable with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ._checks import (
    check_bool,
    check_choice,
    check_device,
    check_int,
    check_number,
    check_optional_int,
    check_str,
)
from ._errors import InputError, InputTypeError, user_input

__all__ = [
    "AMP_DTYPES",
    "FIELD_KINDS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Phase",
    "TrainConfig",
    "check_field",
    "list_presets",
    "load_preset",
    "parse_option",
    "preset_source",
    "resolve_config",
]

#: Learning-rate schedules: ``step`` (x ``gamma`` at each milestone epoch, the paper's CIFAR and
#: Tiny-ImageNet recipe), ``cosine`` (per iteration, to 0 at the last epoch), ``piecewise``
#: (linear interpolation between ``lr_points``, per iteration; the fast ImageNet protocol) and
#: ``constant``.
SCHEDULES = ("step", "cosine", "piecewise", "constant")
#: Mixed-precision dtypes used on CUDA when ``amp`` is on (and on the CPU with ``amp_cpu``).
AMP_DTYPES = ("bf16", "fp16")
#: Optimizers: SGD with (Nesterov) momentum, the paper's; Adam for the speech recipe of
#: Zhang et al. (2018).
OPTIMIZERS = ("sgd", "adam")


#: What :func:`_field` metadata's ``kind`` checks (with :mod:`comixup._checks`), and so what
#: the generated flag of ``comixup train`` parses: ``int`` (``check_int`` with ``low``),
#: ``number`` (``check_number`` with ``low``, ``low_open``), ``bool`` (``check_bool``; a
#: ``--flag/--no-flag`` pair), ``str``, ``choice`` (``check_choice`` with ``choices``),
#: ``device`` (``check_device``), ``ints`` (a list of ``check_int`` values; a flag of zero or
#: more values), ``dict``; ``None``: a field checked by a special case of
#: :meth:`TrainConfig.validate`.
FIELD_KINDS = ("int", "number", "bool", "str", "choice", "device", "ints", "dict", None)


def _field(default, kind: str | None, *, help: str = "", low=None, low_open: bool = False,
           choices=None, optional: bool = False, flag: bool = True, metavar: str | None = None):
    """A :class:`TrainConfig` field whose metadata says how to check it and its flag.

    Args:
        default: the default value (a list or dict is copied for each instance).
        kind: one of :data:`FIELD_KINDS`.
        help: the ``--help`` text of its flag.
        low, low_open: the lower bound of an ``int``, ``number`` or ``ints`` field
            (``low_open``: the bound itself is excluded).
        choices: the values of a ``choice`` field.
        optional: ``None`` is allowed too.
        flag: whether ``comixup train`` has a flag ``--<name-with-dashes>`` for it.
        metavar: the flag's value placeholder in ``--help``.
    """
    if kind not in FIELD_KINDS:
        raise ValueError(f"kind must be one of {list(FIELD_KINDS)}, got {kind!r}")
    if flag and (kind in ("dict", None) or not help):
        raise ValueError("a flag needs help text and a kind that parses from text")
    metadata = {"kind": kind, "help": help, "low": low, "low_open": low_open,
                "choices": tuple(choices) if choices is not None else None,
                "optional": optional, "flag": flag, "metavar": metavar}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def check_field(name: str, value, metadata) -> Any:
    """Check one configuration value against its field's metadata (see :func:`_field`) with
    :mod:`comixup._checks`; return it. Raises TypeError / ValueError naming ``name``."""
    kind, low = metadata.get("kind"), metadata.get("low")
    if kind is None or (value is None and metadata.get("optional")):
        return value
    if kind == "int":
        return check_int(name, value, low)
    if kind == "number":
        return check_number(name, value, low=-math.inf if low is None else low,
                            low_open=metadata.get("low_open", False))
    if kind == "bool":
        return check_bool(name, value)
    if kind == "str":
        return check_str(name, value)
    if kind == "choice":
        return check_choice(name, value, metadata["choices"])
    if kind == "device":
        return check_device(name, value)
    if kind == "ints":
        if not isinstance(value, list):
            raise TypeError(f"{name} must be a list of ints, got {value!r}")
        return [check_int(f"{name}[]", item, low) for item in value]
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict, got {value!r}")
    return value



@dataclass
class Phase:
    """One phase of a multi-phase protocol (the fast ImageNet recipe, recipes 3).

    Attributes:
        start: first epoch (0-based) of the phase.
        batch_size: global batch size during the phase (``None``: the run's ``batch_size``).
        data_options: extra keyword options for ``comixup.data.build_dataset`` during the phase
            (e.g. the crop size); merged over the run's ``data_options``.
        data_dir: dataset root during the phase (e.g. a copy of ImageNet pre-resized to 160 px
            for the first phase); ``None`` keeps the run's ``data_dir``.
        method_options: method options that hold from this phase's start, keyed like
            :attr:`TrainConfig.preset_method_options` (``{"<method>": {...}}``, ``"*"`` for
            every method), e.g. ``{"puzzlemix": {"clean_lam": 0}}`` for the last phase of the
            ImageNet Puzzle Mix recipe. They are merged over the run's method options (its
            ``"*"`` entry first, then the run's method's) when the phase starts; options a
            phase does not name keep the run's values.
    """

    start: int
    batch_size: int | None = None
    data_options: dict = field(default_factory=dict)
    data_dir: str | None = None
    method_options: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Everything that defines a training run (see ``docs/training.md``).

    Attributes:
        preset: name of the preset the run started from (informational).
        description: one line describing the experiment.
        label: the run's column name in ``comixup report`` (``None``: the method name);
            ``comixup study`` sets it for option sweeps (``"comixup tau=0.79"``).
        method: training method, a name of :func:`comixup.methods.method_names`.
        method_options: keyword options of the method (mixer hyperparameters, ``clean_lam``,
            ``loss``); a preset may hold ``{"<method>": {...}}`` entries in
            ``preset_method_options`` that apply when that method is chosen.
        preset_method_options: per-method defaults of the preset, ``{"<method>": {...}}``; the
            key ``"*"`` applies to every method (e.g. ``{"*": {"loss": "bce"}}``).
        arch: model name for ``comixup.models.create``.
        arch_options: keyword options of the model (e.g. ``initial_channels``, ``stem_stride``).
        data: dataset name for ``comixup.data.build_dataset``.
        data_dir: dataset root directory (``None`` for the embedded synthetic datasets).
        data_options: extra keyword options for ``build_dataset``.
        epochs: number of training epochs.
        batch_size: global training batch size (split evenly across DDP ranks).
        test_batch_size: evaluation batch size per process (``None``: ``batch_size``).
        optimizer: ``"sgd"`` (the paper's) or ``"adam"``.
        lr: initial learning rate (ignored by the ``piecewise`` schedule, whose points are
            absolute learning rates).
        momentum: SGD momentum (Adam: beta1).
        nesterov: Nesterov momentum for SGD.
        weight_decay: L2 weight decay.
        norm_weight_decay: weight decay of the normalization layers' parameters (BatchNorm,
            GroupNorm, LayerNorm weights and biases); ``None`` means ``weight_decay``.
            :func:`resolve_config` fills it in, so the resolved configuration shows the value.
            The ImageNet reference uses 0 (torchvision's ``--norm-weight-decay``).
        schedule: one of :data:`SCHEDULES`.
        milestones: epochs at which the ``step`` schedule multiplies the lr by ``gamma``.
        gamma: the ``step`` schedule's factor.
        lr_points: ``[[epoch, lr], ...]`` for the ``piecewise`` schedule (epochs increasing;
            fractional epochs allowed).
        phases: list of :class:`Phase` dicts (``start``, ``batch_size``, ``data_options``,
            ``data_dir``, ``method_options``).
        eval_every: evaluate on the test set after every ``eval_every``-th epoch and after the
            last one (``1``: every epoch). The other rows of ``metrics.csv`` leave the test
            columns empty; early stopping still validates every epoch.
        snapshots: epochs after which the model's weights are also kept in
            ``snapshots/epoch<N>.pt`` (for analyses over training, e.g. label fidelity).
        early_stop_patience: stop when the accuracy on ``early_stop_split`` has not improved for
            this many epochs (``None``: never).
        early_stop_split: the split watched by early stopping (``"val"``).
        limit_train: use only this many training samples (``None``: all).
        limit_test: use only this many test samples (``None``: all).
        seed: base random seed.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        workers: data-loader worker processes per rank.
        threads: ``torch.set_num_threads`` value (``None``: torch's default).
        amp: mixed precision on CUDA (on the CPU only with ``amp_cpu``).
        amp_cpu: run the GPU code paths on the CPU too: ``amp`` (autocast with ``amp_dtype``;
            for ``"fp16"`` the gradient scaler and its skip-on-overflow logic) and
            ``channels_last``. Meant for testing those paths without a GPU (CPU autocast is
            slow); off by default, so the CPU trains in full precision and contiguous format.
        amp_dtype: ``"bf16"`` or ``"fp16"`` (with a gradient scaler).
        channels_last: channels-last memory format on CUDA (on the CPU only with ``amp_cpu``).
        deterministic: deterministic algorithms (bitwise reproducible on the CPU).
        out: run directory (``None``: ``runs/<preset>-<method>-<timestamp>``).
        progress: show tqdm progress bars.
        tensorboard: also log to TensorBoard when ``torch.utils.tensorboard`` imports.
        plot: save ``reliability.png`` (confidence-vs-accuracy diagram) at the end.
        final_eval: at the end, when the test set has boxes, evaluate localization by CAM
            (Table 2) and background-corruption robustness (Table 3) into ``summary.json``.
    """

    preset: str | None = _field(None, "str", optional=True, flag=False)
    description: str = _field("", "str", flag=False)
    label: str | None = _field(None, "str", optional=True, metavar="NAME",
                               help="the run's column name in comixup report (default: the "
                                    "method)")
    method: str = _field("vanilla", "str", metavar="NAME",
                         help="training method: vanilla, comixup, puzzlemix, mixup, manifold, "
                              "cutmix, mixup3, mixup4, cutmix3, cutmix4, manifold3, manifold4, "
                              "vat, fmix, resizemix, saliencymix, guidedmixup-sr, guidedmixup-ap "
                              "(comixup.mixers.names())")
    method_options: dict = _field({}, "dict", flag=False)
    preset_method_options: dict = _field({}, "dict", flag=False)
    arch: str = _field("preactresnet18", "str", metavar="NAME",
                       help="model name (comixup.models.names())")
    arch_options: dict = _field({}, "dict", flag=False)
    data: str = _field("synthetic", "str", metavar="NAME",
                       help="dataset name (comixup.data.DATASETS)")
    data_dir: str | None = _field(None, "str", optional=True, metavar="DIR",
                                  help="dataset root directory (real datasets)")
    data_options: dict = _field({}, "dict", flag=False)
    epochs: int = _field(1, "int", low=1, metavar="N", help="number of training epochs")
    batch_size: int = _field(100, "int", low=1, metavar="N", help="global training batch size")
    test_batch_size: int | None = _field(None, "int", low=1, optional=True, metavar="N",
                                         help="evaluation batch per process (default: "
                                              "--batch-size)")
    optimizer: str = _field("sgd", "choice", choices=OPTIMIZERS, help="optimizer")
    lr: float = _field(0.2, "number", low=0.0, metavar="X",
                       help="initial learning rate")
    momentum: float = _field(0.9, "number", low=0.0, flag=False)
    nesterov: bool = _field(True, "bool", help="Nesterov momentum for SGD")
    weight_decay: float = _field(1e-4, "number", low=0.0, metavar="X", help="L2 weight decay")
    norm_weight_decay: float | None = _field(None, "number", low=0.0, optional=True,
                                             metavar="X",
                                             help="weight decay of normalization-layer "
                                                  "parameters (default: --weight-decay)")
    schedule: str = _field("step", "choice", choices=SCHEDULES, help="learning-rate schedule")
    milestones: list = _field([], "ints", low=0, metavar="E",
                              help="epochs of the x0.1 decays of the step schedule")
    gamma: float = _field(0.1, "number", low=0.0, flag=False)
    lr_points: list = _field([], None, flag=False)  # checked by _validate_lr_points
    phases: list = _field([], None, flag=False)  # checked by _validate_phases
    eval_every: int = _field(1, "int", low=1, metavar="N",
                             help="evaluate on the test set every N epochs and after the last "
                                  "(default 1)")
    snapshots: list = _field([], "ints", low=1, metavar="EPOCH",
                             help="also keep the model weights after these epochs "
                                  "(snapshots/epoch<N>.pt)")
    early_stop_patience: int | None = _field(None, "int", low=1, optional=True, metavar="N",
                                             help="stop when validation accuracy has not "
                                                  "improved for N epochs")
    early_stop_split: str = _field("val", "str", flag=False)
    limit_train: int | None = _field(None, "int", low=1, optional=True, metavar="N",
                                     help="use N training samples")
    limit_test: int | None = _field(None, "int", low=1, optional=True, metavar="N",
                                    help="use N test samples")
    seed: int = _field(0, "int", low=0, metavar="N", help="base random seed")
    device: str = _field("auto", "device", help="auto (default), cpu, cuda or cuda:N")
    workers: int = _field(0, "int", low=0, metavar="N", help="data-loader workers per process")
    threads: int | None = _field(None, "int", low=1, optional=True, metavar="N",
                                 help="torch CPU threads")
    amp: bool = _field(True, "bool", help="mixed precision on CUDA (default on; on the CPU "
                                          "only with --amp-cpu)")
    amp_cpu: bool = _field(False, "bool",
                           help="run the GPU code paths on the CPU too: --amp (autocast; fp16 "
                                "with the gradient scaler) and --channels-last; for testing "
                                "without a GPU (default off: the CPU trains in full precision)")
    amp_dtype: str = _field("bf16", "choice", choices=AMP_DTYPES,
                            help="mixed-precision dtype (fp16 with a gradient scaler)")
    channels_last: bool = _field(True, "bool", help="channels-last memory format on CUDA "
                                                    "(default on; on the CPU only with "
                                                    "--amp-cpu)")
    deterministic: bool = _field(False, "bool", help="deterministic algorithms (bitwise "
                                                     "reproducible on the CPU)")
    out: str | None = _field(None, "str", optional=True, metavar="DIR",
                             help="run directory (default runs/<preset>-<method>-<timestamp>)")
    progress: bool = _field(True, "bool", help="progress bars (default on)")
    tensorboard: bool = _field(True, "bool", help="TensorBoard logs when tensorboard is "
                                                  "installed (default on)")
    plot: bool = _field(True, "bool", help="save reliability.png at the end (default on)")
    final_eval: bool = _field(True, "bool",
                              help="at the end, evaluate localization and background "
                                   "robustness when the dataset has boxes (Tables 2 and 3; "
                                   "default on)")

    # -- conversion ---------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The configuration as a JSON-compatible dict (a deep copy)."""
        return copy.deepcopy(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build and validate a configuration from a dict (unknown keys are an error)."""
        if not isinstance(values, dict):
            raise InputTypeError(f"a configuration must be a dict, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(f"unknown configuration key(s) {unknown}; known keys: "
                             f"{sorted(known)}")
        cfg = cls(**copy.deepcopy(values))
        cfg.validate()
        return cfg

    def effective_method_options(self) -> dict:
        """The options the method runs with: its defaults
        (:func:`comixup.methods.option_defaults`), updated by the preset's options
        for every method (key ``"*"`` of :attr:`preset_method_options`), then by its options for
        :attr:`method`, then by :attr:`method_options`.

        Raises:
            InputError: an option the method does not take (the message lists those it takes),
                or an unknown method.
        """
        from .methods import accepted_options, method_names, option_defaults

        with user_input():
            check_choice("method", self.method, method_names())
        opts = option_defaults(self.method)
        opts.update(self.preset_method_options.get("*", {}))
        opts.update(self.preset_method_options.get(self.method, {}))
        opts.update(self.method_options)
        accepted = accepted_options(self.method)
        unknown = sorted(set(opts) - accepted)
        if unknown:
            raise InputError(f"unknown method option(s) {unknown} for method {self.method!r}; "
                             f"accepted: {sorted(accepted)}")
        return opts

    def phase_method_options(self, phase: dict) -> dict:
        """The options :attr:`method` runs with during ``phase`` (an entry of :attr:`phases`):
        :meth:`effective_method_options` updated by the phase's ``method_options["*"]``, then
        by its ``method_options[method]``.

        Raises:
            InputError: an option the method does not take (naming the phase's entry).
        """
        from .methods import accepted_options

        opts = self.effective_method_options()
        extra = phase.get("method_options", {})
        opts.update(extra.get("*", {}))
        opts.update(extra.get(self.method, {}))
        accepted = accepted_options(self.method)
        unknown = sorted(set(opts) - accepted)
        if unknown:
            raise InputError(f"unknown method option(s) {unknown} for method {self.method!r} in "
                             f"phases[].method_options (start {phase.get('start')}); accepted: "
                             f"{sorted(accepted)}")
        return opts

    def phase_at(self, epoch: int) -> dict:
        """The phase active at ``epoch``: ``{"index", "batch_size", "data_options", "data_dir",
        "method_options"}`` (index -1 and the run's settings when no phase has started);
        ``method_options`` are those of :meth:`phase_method_options`."""
        active = {"index": -1, "batch_size": self.batch_size,
                  "data_options": dict(self.data_options), "data_dir": self.data_dir,
                  "method_options": self.effective_method_options()}
        for i, phase in enumerate(sorted(self.phases, key=lambda p: p["start"])):
            if phase["start"] <= epoch:
                active = {
                    "index": i,
                    "batch_size": phase.get("batch_size") or self.batch_size,
                    "data_options": {**self.data_options, **phase.get("data_options", {})},
                    "data_dir": phase.get("data_dir") or self.data_dir,
                    "method_options": self.phase_method_options(phase),
                }
        return active

    # -- validation ---------------------------------------------------------------------------

    def validate(self) -> TrainConfig:
        """Check every field; raise an :class:`~comixup._errors.InputError` (a ValueError;
        :class:`~comixup._errors.InputTypeError`, also a TypeError, for a value of the wrong
        kind) naming the bad one.

        Each field is checked as its metadata says (:func:`check_field`); then the special
        cases: ``lr_points`` and ``phases``, the method, model and dataset names against
        :func:`comixup.methods.method_names`, ``comixup.models.names()`` and
        ``comixup.data.DATASETS``, and the per-method option tables. The model's and
        dataset's options are checked when the objects are built.
        """
        with user_input():  # every value here is the user's (a preset, flags, a checkpoint)
            self._check_fields()
        return self

    def _check_fields(self) -> None:
        for f in dataclasses.fields(self):
            check_field(f.name, getattr(self, f.name), f.metadata)
        self._validate_lr_points()
        self._validate_phases()
        from . import data, models
        from .methods import method_names

        check_choice("method", self.method, method_names())
        check_choice("arch", self.arch, models.names())
        check_choice("data", self.data, data.DATASETS)

        def check_per_method(table: dict, label: str) -> None:
            # {"<method>" or "*": {options}}, as preset_method_options and phase options hold
            for name, opts in table.items():
                if name != "*":
                    check_choice(f"{label} key", name, ["*", *method_names()])
                if not isinstance(opts, dict):
                    raise TypeError(f"{label}[{name!r}] must be a dict, got {opts!r}")

        check_per_method(self.preset_method_options, "preset_method_options")
        for i, phase in enumerate(self.phases):
            check_per_method(phase.get("method_options", {}), f"phases[{i}].method_options")
            self.phase_method_options(phase)
        try:
            json.dumps(self.to_dict())
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the configuration must be plain JSON data: {exc}") from None

    def _validate_lr_points(self) -> None:
        if not isinstance(self.lr_points, list):
            raise TypeError("lr_points must be a list of [epoch, lr] pairs, "
                            f"got {self.lr_points!r}")
        last = -math.inf
        for point in self.lr_points:
            if not isinstance(point, (list, tuple)) or len(point) != 2:
                raise ValueError(f"lr_points must hold [epoch, lr] pairs, got {point!r}")
            epoch = check_number("lr_points[][0] (epoch)", point[0], low=0.0)
            check_number("lr_points[][1] (lr)", point[1], low=0.0)
            if epoch <= last:
                raise ValueError(f"lr_points epochs must increase, got {self.lr_points!r}")
            last = epoch
        if self.schedule == "piecewise" and len(self.lr_points) < 2:
            raise ValueError("schedule 'piecewise' needs lr_points with at least 2 "
                             "[epoch, lr] pairs")

    def _validate_phases(self) -> None:
        if not isinstance(self.phases, list):
            raise TypeError(f"phases must be a list of dicts, got {self.phases!r}")
        starts = []
        for i, phase in enumerate(self.phases):
            if not isinstance(phase, dict):
                raise TypeError(f"phases[{i}] must be a dict, got {phase!r}")
            allowed = {f.name for f in dataclasses.fields(Phase)}
            unknown = sorted(set(phase) - allowed)
            if unknown:
                raise ValueError(f"phases[{i}] has unknown key(s) {unknown}; "
                                 f"allowed: {sorted(allowed)}")
            if "start" not in phase:
                raise ValueError(f"phases[{i}] needs a 'start' epoch")
            starts.append(check_int(f"phases[{i}].start", phase["start"], 0))
            check_optional_int(f"phases[{i}].batch_size", phase.get("batch_size"), 1)
            if not isinstance(phase.get("data_options", {}), dict):
                raise TypeError(f"phases[{i}].data_options must be a dict")
            if not isinstance(phase.get("method_options", {}), dict):
                raise TypeError(f"phases[{i}].method_options must be a dict of "
                                "{method: options}")
            if phase.get("data_dir") is not None:
                check_str(f"phases[{i}].data_dir", phase["data_dir"])
        if len(set(starts)) != len(starts):
            raise ValueError(f"phases must start at distinct epochs, got {starts}")


_DEFAULTS = {"arch": TrainConfig.arch, "data": TrainConfig.data}


# -- presets ----------------------------------------------------------------------------------

_PRESET_META = ("source",)


def _preset_files() -> dict[str, Any]:
    root = resources.files("comixup") / "presets"
    return {
        p.name[: -len(".json")]: p
        for p in sorted(root.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".json")
    }


def list_presets() -> dict[str, str]:
    """Preset names mapped to their one-line descriptions, sorted by name."""
    out = {}
    for name, path in _preset_files().items():
        data = json.loads(path.read_text())
        out[name] = data.get("description", "")
    return out


def load_preset(name: str) -> dict:
    """The settings of preset ``name`` as a dict (without its ``source`` note).

    Raises:
        InputError: no such preset (the message lists them).
    """
    files = _preset_files()
    if not isinstance(name, str) or name not in files:
        raise InputError(f"preset must be one of {sorted(files)}, got {name!r}")
    data = json.loads(files[name].read_text())
    for key in _PRESET_META:
        data.pop(key, None)
    data["preset"] = name
    return data


def preset_source(name: str) -> str:
    """Where preset ``name``'s settings come from (paper section / recipes), for documentation."""
    files = _preset_files()
    if name not in files:
        raise InputError(f"preset must be one of {sorted(files)}, got {name!r}")
    return json.loads(files[name].read_text()).get("source", "")


def resolve_config(
    preset: str | None = None,
    overrides: dict | None = None,
    base: dict | None = None,
) -> TrainConfig:
    """Resolve defaults <- ``base`` (or the preset) <- ``overrides`` into a validated config.

    Args:
        preset: a preset name (see :func:`list_presets`); ignored when ``base`` is given.
        overrides: explicit settings; ``method_options`` / ``arch_options`` / ``data_options``
            are merged into the preset's dicts rather than replacing them, except that a
            different ``arch`` (``data``) starts from empty ``arch_options`` (``data_options``).
        base: a full configuration dict to start from instead of a preset (``--resume``,
            ``comixup eval``).

    Returns:
        The validated :class:`TrainConfig`, with ``method_options`` holding every option in
        effect (the method's defaults, the preset's per-method options, the overrides) and
        ``norm_weight_decay`` filled in.

    Raises:
        InputError: an unknown preset, key, method option or a bad value, naming it
            (:class:`~comixup._errors.InputTypeError`, also a TypeError, for a value of the
            wrong kind).
    """
    values = copy.deepcopy(base) if base is not None else (load_preset(preset) if preset else {})
    overrides = overrides or {}
    # options belong to a model / dataset: choosing another one drops the preset's options
    for name, options in (("arch", "arch_options"), ("data", "data_options")):
        if name in overrides and overrides[name] != values.get(name, _DEFAULTS[name]):
            values.pop(options, None)
    for key, value in overrides.items():
        if key in ("method_options", "arch_options", "data_options") and isinstance(value, dict):
            merged = dict(values.get(key, {}))
            merged.update(value)
            values[key] = merged
        else:
            values[key] = copy.deepcopy(value)
    cfg = TrainConfig.from_dict(values)
    cfg.method_options = cfg.effective_method_options()
    if cfg.norm_weight_decay is None:
        cfg.norm_weight_decay = cfg.weight_decay
    return cfg.validate()


def parse_option(text: str) -> tuple[str, Any]:
    """Parse ``key=value`` (``--method-opt`` and friends); the value is read as JSON when it
    parses (numbers, ``true``/``false``, ``null``, lists), else kept as a string."""
    if not isinstance(text, str) or "=" not in text:
        raise InputError(f"an option must look like key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key.isidentifier():
        raise InputError(f"option key must be an identifier, got {key!r} in {text!r}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value
