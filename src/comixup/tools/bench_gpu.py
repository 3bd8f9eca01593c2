"""``comixup bench gpu``: the GPU code paths checked and measured in one command.

:func:`bench_gpu` runs five sections on one device and writes ``bench_gpu.json`` and
``bench_gpu.md`` (one Markdown table per section):

1. **Device equality**: every mixer's ``apply`` on device tensors against CPU tensors, with the
   parameters drawn once on the CPU; then Co-Mixup's and Puzzle Mix's whole call on the device
   against the CPU from the same generator seed (their graph cuts run on the CPU either way).
2. **AMP epochs**: one short epoch of every method through :func:`comixup.train.train` under
   bf16 and fp16 autocast (on the CPU with ``amp_cpu``); is the loss finite, how long it took.
3. **Host syncs per step**: the reads of batch values back to the host per training step of
   every method (:func:`comixup.analysis.host_reads.count_host_reads`), the explicit waits
   (``synchronize()`` calls, :class:`comixup.tools._measure.ExplicitWaits`) and on CUDA the
   synchronisations that ``torch.cuda.set_sync_debug_mode("warn")`` reports.
4. **Step times**: the median time of a training step (with the optimizer step) of Vanilla,
   Co-Mixup and Puzzle Mix on PreActResNet18, and the ratios to Vanilla.
5. **Co-Mixup overhead**: one Co-Mixup step split into its parts (saliency pass, the mixer's
   parameters: pooling and copy to the host, Algorithm 1, the rest; mixing, mixed pass,
   optimizer step) against the whole step.

Every section runs on its own (:func:`_run_section`): an exception ends that section only and
becomes its result (its type and message; the traceback in the JSON), and the process-wide
settings it changed (cuDNN and matmul flags, deterministic algorithms, threads, grad mode, the
validation policy, the sync debug mode; :class:`comixup.tools._measure.Settings`) are restored
before the next one, as they are after every run of sections 2 to 4. Every section reports its
peak memory, and sections 2 to 4 the peak of every method: on CUDA the allocator's peak
allocated and reserved bytes, on the CPU the process's peak resident set
(:class:`comixup.tools._measure.PeakMemory`).

Everything is seeded. On CUDA the clock is read after ``torch.cuda.synchronize()`` and every
timing follows a warm-up; sections 3 to 5 train as the engine does on CUDA (bf16 autocast,
channels-last). ``device="cpu"`` runs the same code on the CPU, autocast and channels-last
included (a smoke test of the code paths; its times say nothing about a GPU), and ``quick``
shrinks every size so that the CPU run takes well under a minute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import statistics
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from .._args import one_line
from .._checks import check_bool, check_device
from .._errors import InputError
from ._markdown import markdown
from ._measure import Clock, ExplicitWaits, PeakMemory, Settings

__all__ = ["SECTIONS", "TITLES", "bench_gpu", "markdown"]

#: The sections of :func:`bench_gpu`, in order.
SECTIONS = ("equality", "amp", "syncs", "step_time", "breakdown")

#: The title of every section (``{device}``: the device benchmarked).
TITLES = {
    "equality": "Device equality ({device} against the CPU)",
    "amp": "AMP epochs (one short epoch of every method)",
    "syncs": "Host syncs per training step",
    "step_time": "Step time (training step with the optimizer step)",
    "breakdown": "Co-Mixup step, part by part",
}

#: Largest difference between a device result and the CPU one that still counts as equal
#: (float32 images and targets in [0, 1]; the mixers' gathers and weighted sums are exact, a
#: matrix product of the targets may round differently).
TOLERANCE = 1e-5


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """The sizes of one run (see :func:`_sizes`)."""

    batch: int  # training batch of sections 3 to 5
    image: int  # image side everywhere
    width: int  # PreActResNet18 initial_channels of sections 3 to 5
    classes: int  # classes of sections 1 and 3 to 5
    mix_batch: int  # batch of section 1
    amp_batch: int  # batch of section 2
    amp_batches: int  # training batches of one epoch of section 2
    amp_width: int  # PreActResNet18 initial_channels of section 2
    sync_steps: int  # steps counted per method in section 3
    warmup: int  # untimed steps before sections 4 and 5
    repeats: int  # timed steps of sections 4 and 5


def _sizes(device: torch.device, quick: bool) -> _Sizes:
    if device.type == "cuda":  # the CIFAR-100 setting of the paper's step-time comparison
        return _Sizes(batch=100, image=32, width=64, classes=100, mix_batch=100,
                      amp_batch=100, amp_batches=2 if quick else 10, amp_width=16,
                      sync_steps=2 if quick else 5, warmup=2 if quick else 5,
                      repeats=5 if quick else 20)
    if quick:
        return _Sizes(batch=16, image=16, width=8, classes=10, mix_batch=8, amp_batch=8,
                      amp_batches=2, amp_width=4, sync_steps=2, warmup=2, repeats=5)
    return _Sizes(batch=32, image=32, width=16, classes=100, mix_batch=32, amp_batch=16,
                  amp_batches=4, amp_width=8, sync_steps=2, warmup=1, repeats=5)


# ----------------------------------------------------------------------------------------------
# the command
# ----------------------------------------------------------------------------------------------


def bench_gpu(*, device="cuda", quick: bool = False, out=None) -> dict:
    """``comixup bench gpu``: check and time the GPU code paths (see the module docstring).

    Args:
        device: ``"cuda"`` (default), ``"cuda:N"``, ``"cpu"`` (a smoke test of the same code on
            the CPU) or ``"auto"``.
        quick: a short run (fewer steps; on the CPU also smaller batches, images and models).
        out: the directory of ``bench_gpu.json`` and ``bench_gpu.md`` (default ``./bench_gpu``).

    Returns:
        The report: the run's settings (``device``, ``device_name``, ``quick``, versions, CPU
        and thread counts), ``sections`` (one dict per entry of :data:`SECTIONS` with its
        ``title``, ``columns``, ``rows``, ``notes`` and ``seconds``), ``seconds`` and
        ``files``. The Markdown is printed.

    Raises:
        ValueError: a bad ``device`` or CUDA not available (the message names ``--device``),
            or ``out`` is a file.
    """
    quick = check_bool("quick", quick)
    dev = _resolve_device(device)
    out = Path("bench_gpu" if out is None else out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out must be a directory, but {out} is a file")
    sizes = _sizes(dev, quick)
    start = time.perf_counter()
    report = {
        "benchmark": "gpu",
        "device": str(dev),
        "device_name": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"),
        "quick": quick,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "sizes": dataclasses.asdict(sizes),
        "sections": [],
    }
    report["settings"] = Settings.read()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="comixup-bench-gpu-") as scratch:
        for name in SECTIONS:
            report["sections"].append(_run_section(name, dev, sizes, Path(scratch)))
    report["seconds"] = time.perf_counter() - start
    text = markdown(report)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "bench_gpu.json", out / "bench_gpu.md"]
    report["files"] = [str(f) for f in files]
    files[0].write_text(json.dumps(report, indent=2, default=str) + "\n")
    files[1].write_text(text)
    print(text, end="")
    return report


def _run_section(name: str, device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    """Run one section: its failure becomes its result (the exception's type and message; the
    traceback in the JSON), the process-wide settings it changed are restored, and its peak
    memory is measured (:class:`~comixup.tools._measure.PeakMemory`)."""
    t0 = time.perf_counter()
    with Settings() as settings:
        with PeakMemory(device) as memory:
            try:
                section = _SECTION_FUNCTIONS[name](device, sizes, scratch)
            except Exception as exc:  # one section's failure does not stop the others
                section = {"title": TITLES[name].format(device=device),
                           "columns": [["error", "error"]],
                           "rows": [{"error": _error(exc), "ok": False}],
                           "notes": ["The section stopped at this error; the sections after it "
                                     "ran. The JSON holds the traceback."],
                           "error": _error(exc), "traceback": traceback.format_exc()}
    section.update(name=name, seconds=time.perf_counter() - t0, memory=memory.figures(),
                   settings_restored={k: list(v) for k, v in settings.changed.items()})
    return section


#: The memory columns of the per-method tables (CUDA: the allocator's peaks; CPU: the peak RSS).
_MEMORY_COLUMNS = [["peak_allocated_mib", "peak alloc MiB"],
                   ["peak_reserved_mib", "peak reserved MiB"], ["peak_rss_mib", "peak RSS MiB"]]

#: The last columns of a table of :func:`_measured` rows.
_MEASURED_COLUMNS = [*_MEMORY_COLUMNS, ["settings_restored", "settings restored"],
                     ["status", "status"]]


#: What the memory columns hold.
_MEMORY_NOTE = ("Memory: on CUDA the caching allocator's peaks over the row (model, optimizer, "
                "batch, warm-up and measured steps), torch.cuda.max_memory_allocated and "
                "max_memory_reserved after torch.cuda.reset_peak_memory_stats; on the CPU the "
                "process's peak resident set size over the row (VmHWM, reset before it), which "
                "includes the interpreter and the libraries.")


def _measured(device: torch.device, fn, on_error) -> dict:
    """``fn()`` (a row) with the peak memory of the call and the settings it changed, restored
    after it; ``on_error(exc)`` gives the row of a call that raised."""
    with Settings() as settings:
        with PeakMemory(device) as memory:
            try:
                row = fn()
            except Exception as exc:  # a row reports, it does not stop the section
                row = on_error(exc)
    row.update(memory.figures())
    row["settings_restored"] = ", ".join(sorted(settings.changed)) or None
    return row


def _error(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line."""
    return f"{type(exc).__name__}: {one_line(exc)}"


def _resolve_device(device) -> torch.device:
    """The device of ``--device`` (:func:`comixup.run.resolve_device`), with one-line errors that
    name the flag."""
    from ..run import resolve_device

    if isinstance(device, torch.device):
        device = str(device)
    try:
        check_device("--device", device)
        return resolve_device(device)
    except ValueError as exc:
        hint = " (use --device cpu for the smoke test of the same code on the CPU)" \
            if not torch.cuda.is_available() else ""
        raise InputError(f"--device {device}: {exc}{hint}") from None


# ----------------------------------------------------------------------------------------------
# shared pieces
# ----------------------------------------------------------------------------------------------


def _median_ms(times: list[float]) -> float:
    return 1e3 * statistics.median(times)


def _batch(sizes: _Sizes, batch: int, device: torch.device, seed: int = 0):
    """Seeded images ``(batch, 3, s, s)``, labels and realistic saliency on ``device``."""
    from ..saliency import realistic_saliency

    gen = torch.Generator().manual_seed(seed)
    s = sizes.image
    x = torch.rand(batch, 3, s, s, generator=gen)
    y = torch.randint(0, sizes.classes, (batch,), generator=gen)
    sal = torch.from_numpy(realistic_saliency(batch, s, rng=np.random.default_rng(seed))).float()
    return x.to(device), y.to(device), sal.to(device)


class _Trainer:
    """A PreActResNet18, its optimizer and a fixed batch, trained as on a GPU: bf16 autocast and
    channels-last (the training defaults on CUDA; on the CPU, what ``amp_cpu`` runs)."""

    precision = "bf16 autocast, channels-last"

    def __init__(self, sizes: _Sizes, device: torch.device, seed: int = 0):
        from ..models.preactresnet import preactresnet18

        self.device, self.classes = device, sizes.classes
        self.format = torch.channels_last
        torch.manual_seed(seed)
        self.model = preactresnet18(sizes.classes, initial_channels=sizes.width).to(
            device=device, memory_format=self.format)
        self.model.train()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9,
                                         nesterov=True, weight_decay=1e-4)
        x, y, _ = _batch(sizes, sizes.batch, device, seed)
        self.x, self.y = x.contiguous(memory_format=self.format), y

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` outside autocast, as the training engine does."""
        with torch.autocast(self.device.type, enabled=False):
            loss.backward()

    def train_step(self, name: str, *, seed: int = 0):
        """The :class:`~comixup.methods.TrainStep` of ``name`` (loss ``bce``), set up as the
        engine sets it up on this device."""
        from ..methods import TrainStep

        step = TrainStep(name, self.classes, seed=seed, loss="bce", backward=self.backward)
        step.method.memory_format = self.format
        return step

    def run(self, step) -> torch.Tensor:
        """One training step: zero the gradients, the method's step, the optimizer step."""
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = step(self.model, self.x, self.y)
        self.optimizer.step()
        return loss


def _value_checks_as_on_a_gpu():
    """Within: ``validate=None`` skips the value checks of CPU tensors too, as it does for device
    tensors (the ``"never"`` policy of :func:`comixup.validation`), so that the host reads
    counted on the CPU are those of a GPU run."""
    from .._validation import validation

    return validation("never")


# ----------------------------------------------------------------------------------------------
# 1. device equality
# ----------------------------------------------------------------------------------------------


def _difference(a: torch.Tensor | None, b: torch.Tensor | None) -> tuple[bool, float]:
    """``(bitwise equal, max abs difference)`` of a CPU and a device tensor."""
    if a is None or b is None:
        return a is None and b is None, 0.0 if a is None and b is None else math.inf
    b = b.detach().cpu()
    if a.shape != b.shape or a.dtype != b.dtype:
        return False, math.inf
    if a.numel() == 0:
        return True, 0.0
    return torch.equal(a, b), float((a.double() - b.double()).abs().max())


def _comparison_row(check: str, ref, got, device: torch.device, **extra) -> dict:
    x_equal, x_diff = _difference(ref[0], got[0])
    y_equal, y_diff = _difference(ref[1], got[1])
    on_device = got[0].device.type == device.type
    row = {"check": check, "x_equal": x_equal, "x_max_diff": x_diff, "y_equal": y_equal,
           "y_max_diff": y_diff, "on_device": on_device, **extra}
    row["ok"] = (on_device and x_diff <= TOLERANCE and y_diff <= TOLERANCE
                 and extra.get("same_labeling", True) is not False)
    return row


def _same_labeling(name: str, a, b) -> bool:
    """Whether two parameter sets of Co-Mixup (the labelings) or Puzzle Mix (the permutation
    and the graph-cut masks) are the same."""
    if name == "comixup":
        return (a.grid == b.grid and len(a.labelings) == len(b.labelings)
                and all(np.array_equal(p, q) for p, q in zip(a.labelings, b.labelings)))
    return (a.grid == b.grid and torch.equal(a.perm.cpu(), b.perm.cpu())
            and torch.equal(a.mask.cpu(), b.mask.cpu()))


def _section_equality(device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    from .. import mixers

    cpu = torch.device("cpu")
    x, y, sal = _batch(sizes, sizes.mix_batch, cpu, seed=1)
    rows = []
    for name in mixers.names():
        mixer = mixers.create(name, sizes.classes, generator=torch.Generator().manual_seed(0))
        s = sal if mixer.uses_saliency else None
        try:
            x_c, t_c, s_c = mixer.prepare(x, y, s)
            params = mixer.sample_params(x_c, t_c, s_c)  # drawn once, on the CPU
            ref = mixer.apply(x_c, t_c, params)
            x_d, t_d, _ = mixer.prepare(x.to(device), y.to(device),
                                        None if s is None else s.to(device), validate=False)
            got = mixer.apply(x_d, t_d, params)
            rows.append(_comparison_row(f"{name}: apply", ref, got, device))
        except Exception as exc:  # a check reports, it does not stop the benchmark
            rows.append({"check": f"{name}: apply", "ok": False, "error": _error(exc)})
    for name in ("comixup", "puzzlemix"):
        try:
            results = []
            for where in (cpu, device):
                mixer = mixers.create(name, sizes.classes,
                                      generator=torch.Generator().manual_seed(1))
                results.append(mixer(x.to(where), y.to(where), sal.to(where), return_info=True))
            (xc, yc, pc), (xd, yd, pd) = results
            rows.append(_comparison_row(f"{name}: whole call", (xc, yc), (xd, yd), device,
                                        same_labeling=_same_labeling(name, pc, pd)))
        except Exception as exc:
            rows.append({"check": f"{name}: whole call", "ok": False, "error": _error(exc)})
    notes = [
        f"Batch {sizes.mix_batch}x3x{sizes.image}x{sizes.image}, realistic saliency, "
        f"{sizes.classes} classes. 'apply': the parameters drawn once on the CPU "
        "(sample_params after prepare), applied to CPU and to device tensors. 'whole call': "
        "the mixer called on each device from the same generator seed.",
        "comixup.solver.solve (Algorithm 1) and Puzzle Mix's graph cut and transport plan are "
        "CPU-only (NumPy / numba): on every device the mixers copy the pooled saliency to the "
        "host once per call, so the same pooled maps give the same labelings.",
        f"ok: the output is on the device and both differences are <= {TOLERANCE:g} (and the "
        "labelings are the same).",
    ]
    if device.type == "cpu":
        notes.append("Run on the CPU: CPU against CPU, equal by construction.")
    return {"title": TITLES["equality"].format(device=device),
            "columns": [["check", "check"], ["x_equal", "x bitwise"],
                        ["x_max_diff", "x max diff"], ["y_equal", "y bitwise"],
                        ["y_max_diff", "y max diff"], ["same_labeling", "same labeling"],
                        ["on_device", "on device"], ["ok", "ok"], ["error", "error"]],
            "rows": rows, "notes": notes}


# ----------------------------------------------------------------------------------------------
# 2. AMP epochs
# ----------------------------------------------------------------------------------------------


def _amp_run(name: str, dtype: str, device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    from ..config import resolve_config
    from ..train.engine import train

    limit_train = sizes.amp_batch * sizes.amp_batches
    limit_test = sizes.amp_batch
    cfg = resolve_config("synthetic-quick", {
        "method": name, "device": str(device), "amp": True, "amp_dtype": dtype,
        "amp_cpu": device.type == "cpu", "epochs": 1, "batch_size": sizes.amp_batch,
        "limit_train": limit_train, "limit_test": limit_test,
        "data_dir": str(scratch / "data"),
        "data_options": {"image_size": sizes.image, "num_train": limit_train,
                         "num_test": limit_test},
        "arch_options": {"initial_channels": sizes.amp_width},
        "progress": False, "tensorboard": False, "plot": False, "final_eval": False,
        "out": str(scratch / "amp" / f"{name}-{dtype}"), "seed": 0, "workers": 0,
    })
    log = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(log):
        result = train(cfg)
    seconds = time.perf_counter() - t0
    train_loss = float(result.history[-1]["train_loss"])
    test_loss = float(result.metrics["loss"])
    return {"method": name, "dtype": dtype,
            "finite": math.isfinite(train_loss) and math.isfinite(test_loss),
            "train_loss": train_loss, "test_loss": test_loss, "seconds": seconds,
            "status": "ok"}


def _section_amp(device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    from ..methods import method_names

    rows = []
    for name in method_names():
        for dtype in ("bf16", "fp16"):
            rows.append(_measured(
                device, lambda name=name, dtype=dtype: _amp_run(name, dtype, device, sizes,
                                                                scratch),
                lambda exc, name=name, dtype=dtype: {"method": name, "dtype": dtype,
                                                     "finite": False,
                                                     "status": f"error: {_error(exc)}"}))
    for row in rows:
        row["ok"] = row["status"] == "ok" and row["finite"]
    where = ("CUDA" if device.type == "cuda" else
             "the CPU with amp_cpu (the GPU code paths on the CPU)")
    return {"title": TITLES["amp"],
            "columns": [["method", "method"], ["dtype", "dtype"], ["finite", "finite loss"],
                        ["train_loss", "train loss"], ["test_loss", "test loss"],
                        ["seconds", "seconds"], *_MEASURED_COLUMNS],
            "rows": rows,
            "notes": [f"comixup.train.train on preset synthetic-quick with "
                      f"{sizes.amp_batches} batch(es) of {sizes.amp_batch} "
                      f"{sizes.image}x{sizes.image} images, PreActResNet18 width "
                      f"{sizes.amp_width}, then the test loss on {sizes.amp_batch} images; "
                      f"{where}: autocast in the dtype (fp16 with the gradient scaler), "
                      "channels-last. Seconds include building the run (data, model) and the "
                      "evaluation; the first rows also include compilation and warm-up.",
                      _MEMORY_NOTE + " 'settings restored': the process-wide settings the run "
                      "left changed, put back after it."]}


# ----------------------------------------------------------------------------------------------
# 3. host syncs per step
# ----------------------------------------------------------------------------------------------


def _cuda_syncs(trainer: _Trainer, step, steps: int) -> tuple[int, list[str]]:
    """The synchronisations ``torch.cuda.set_sync_debug_mode("warn")`` reports over ``steps``
    steps, and their most frequent places."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                trainer.run(step)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    sites = Counter(f"{Path(w.filename).name}:{w.lineno}" for w in syncs)
    return len(syncs), [f"{site} x{n}" for site, n in sites.most_common(8)]


def _syncs_row(name: str, device: torch.device, sizes: _Sizes) -> dict:
    """The host reads, explicit waits and (CUDA) reported syncs of ``steps`` steps of ``name``."""
    from ..analysis.host_reads import count_host_reads

    steps = sizes.sync_steps
    trainer = _Trainer(sizes, device)
    step = trainer.train_step(name)
    trainer.run(step)  # warm-up: lazy initialisation, autotuning
    tracked = [trainer.x, trainer.y, *trainer.model.parameters()]
    with _value_checks_as_on_a_gpu(), ExplicitWaits() as waits:
        reads = count_host_reads(lambda: [trainer.run(step) for _ in range(steps)], tracked)
    row = {"method": name, "host_reads_per_step": reads.batch / steps,
           "explicit_waits_per_step": waits.count / steps,
           "reads": "; ".join(sorted(set(reads.ops)))}
    if device.type == "cuda":
        syncs, sites = _cuda_syncs(trainer, step, steps)
        row.update(cuda_syncs_per_step=syncs / steps, sync_sites=sites)
    row["status"] = "ok"
    return row


def _section_syncs(device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    from ..methods import method_names

    steps = sizes.sync_steps
    rows = []
    for name in method_names():
        row = _measured(device, lambda name=name: _syncs_row(name, device, sizes),
                        lambda exc, name=name: {"method": name,
                                                "status": f"error: {_error(exc)}"})
        row["ok"] = row["status"] == "ok"
        rows.append(row)
    counter = ("comixup.analysis.host_reads.count_host_reads and "
               "torch.cuda.set_sync_debug_mode('warn')" if device.type == "cuda" else
               "comixup.analysis.host_reads.count_host_reads (no CUDA here: the sync debug mode "
               "needs a GPU)")
    return {"title": TITLES["syncs"],
            "columns": [["method", "method"], ["host_reads_per_step", "host reads / step"],
                        ["reads", "what is read (op of the value)"],
                        ["cuda_syncs_per_step", "CUDA syncs / step"],
                        ["explicit_waits_per_step", "explicit waits / step"], *_MEASURED_COLUMNS],
            "rows": rows,
            "notes": [f"Counter: {counter}. {steps} step(s) per method after one warm-up step: "
                      f"zero_grad, the TrainStep (loss bce), the SGD step; PreActResNet18 width "
                      f"{sizes.width}, batch {sizes.batch}x3x{sizes.image}x{sizes.image}, "
                      f"{_Trainer.precision}.",
                      "host reads: reads of values computed from the batch or the weights "
                      "(.item(), bool(), .tolist(), .numpy(), the copy of the saliency for the "
                      "CPU solver), counted with the value checks of CPU tensors off, as for "
                      "device tensors. CUDA syncs: every synchronising CUDA call, including "
                      "copies of the CPU-drawn parameters to the device (the JSON lists the "
                      "places, sync_sites), but not the explicit waits.",
                      "explicit waits: calls of torch.cuda.synchronize, Event.synchronize and "
                      "Stream.synchronize in the counted steps (comixup.tools._measure."
                      "ExplicitWaits), e.g. the wait of the host copy of Co-Mixup's and Puzzle "
                      "Mix's costs on its event, which the sync debug mode does not report"
                      + ("." if device.type == "cuda" else "; on the CPU the copies need no "
                         "wait (0), and the host reads above are what a GPU would wait for."),
                      _MEMORY_NOTE]}


# ----------------------------------------------------------------------------------------------
# 4. step times
# ----------------------------------------------------------------------------------------------

_TIMED = ("vanilla", "comixup", "puzzlemix")
_LABELS = {"vanilla": "Vanilla", "comixup": "Co-Mixup", "puzzlemix": "Puzzle Mix"}


def _step_time_row(name: str, device: torch.device, sizes: _Sizes) -> dict:
    """The median and the minimum of ``repeats`` timed steps of ``name`` after a warm-up."""
    clock = Clock(device)
    trainer = _Trainer(sizes, device)
    step = trainer.train_step(name)
    for _ in range(sizes.warmup):
        trainer.run(step)
    times = [clock.time(lambda: trainer.run(step))[0] for _ in range(sizes.repeats)]
    return {"method": _LABELS[name], "median_ms": _median_ms(times),
            "min_ms": 1e3 * min(times), "repeats": sizes.repeats, "status": "ok"}


def _section_step_time(device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    rows = [_measured(device, lambda name=name: _step_time_row(name, device, sizes),
                      lambda exc, name=name: {"method": _LABELS[name],
                                              "status": f"error: {_error(exc)}"})
            for name in _TIMED]
    base = rows[0].get("median_ms")
    for row in rows:
        ms = row.get("median_ms")
        row["vs_vanilla"] = ms / base if ms is not None and base else None
        row["ok"] = row["status"] == "ok"
    ratios = ", ".join(f"{r['method']}/Vanilla = {r['vs_vanilla']:.2f}" for r in rows[1:]
                       if r["vs_vanilla"] is not None)
    return {"title": TITLES["step_time"],
            "columns": [["method", "method"], ["median_ms", "median ms"], ["min_ms", "min ms"],
                        ["vs_vanilla", "vs Vanilla"], *_MEASURED_COLUMNS],
            "rows": rows,
            "notes": [f"PreActResNet18 width {sizes.width}, batch {sizes.batch}x3x{sizes.image}x"
                      f"{sizes.image}, {sizes.classes} classes, loss bce, {_Trainer.precision}; "
                      f"median of {sizes.repeats} steps after {sizes.warmup} warm-up step(s)"
                      + (", the clock read after torch.cuda.synchronize()"
                         if device.type == "cuda" else "") + ".",
                      f"Ratios: {ratios or 'n/a'}.", _MEMORY_NOTE]}


# ----------------------------------------------------------------------------------------------
# 5. Co-Mixup overhead breakdown
# ----------------------------------------------------------------------------------------------


def _section_breakdown(device: torch.device, sizes: _Sizes, scratch: Path) -> dict:
    from ..saliency import clean_loss_and_saliency

    clock = Clock(device)
    trainer = _Trainer(sizes, device)
    step = trainer.train_step("comixup")
    method, mixer = step.method, step.mixer
    model, x, y = trainer.model, trainer.x, trainer.y
    partitions = len(mixer.partitions(sizes.batch))
    parts: dict[str, list[float]] = {key: [] for key in (
        "saliency", "prepare", "pool", "solve", "sample_params", "apply", "mixed", "optimizer")}

    def one_step(record: bool) -> None:
        """One Co-Mixup step as SaliencyStep runs it, every part timed on its own."""

        def timed(key, fn):
            seconds, result = clock.time(fn)
            if record:
                parts[key].append(seconds)
            return result

        def mixed_pass(x_mix, y_mix):
            loss = method.loss(model(x_mix.contiguous(memory_format=trainer.format)),
                               y_mix.to(x_mix.dtype))
            trainer.backward(loss)

        trainer.optimizer.zero_grad(set_to_none=True)
        with trainer.autocast():
            _, sal = timed("saliency", lambda: clean_loss_and_saliency(
                model, x, y, loss=method.loss_name, clean_lam=method.clean_lam,
                backward=trainer.backward))
            with torch.no_grad():
                xd, targets, sal = timed("prepare", lambda: mixer.prepare(x.detach(), y, sal))
                cost, locations = timed("pool", lambda: mixer.solver_inputs(sal, mixer.grid))
                timed("solve", lambda: mixer.solve_partitions(cost, locations, range(partitions)))
                params = timed("sample_params", lambda: mixer.sample_params(xd, targets, sal))
                x_mix, y_mix = timed("apply", lambda: mixer.apply(xd, targets, params))
            timed("mixed", lambda: mixed_pass(x_mix, y_mix))
        timed("optimizer", trainer.optimizer.step)

    for i in range(sizes.warmup + sizes.repeats):
        one_step(record=i >= sizes.warmup)
    for _ in range(sizes.warmup):
        trainer.run(step)
    parts["whole"] = [clock.time(lambda: trainer.run(step))[0] for _ in range(sizes.repeats)]
    ms = {key: _median_ms(values) for key, values in parts.items()}
    ms["rest"] = ms["sample_params"] - ms["pool"] - ms["solve"]
    ms["sum"] = sum(ms[k] for k in ("saliency", "prepare", "sample_params", "apply", "mixed",
                                    "optimizer"))
    workers = mixer.n_workers(partitions)
    labels = dict(_PARTS)
    labels["solve"] = labels["solve"].format(partitions=partitions, workers=workers)
    rows = [{"part": labels[key], "key": key, "median_ms": ms[key],
             "share": ms[key] / ms["whole"] if ms["whole"] else None}
            for key in ("saliency", "prepare", "sample_params", "pool", "solve", "rest",
                        "apply", "mixed", "optimizer", "sum", "whole")]
    for row in rows:
        row["ok"] = math.isfinite(row["median_ms"])
    return {"title": TITLES["breakdown"],
            "columns": [["part", "part"], ["median_ms", "median ms"],
                        ["share", "share of the step"]],
            "rows": rows,
            "notes": [f"PreActResNet18 width {sizes.width}, batch {sizes.batch}x3x{sizes.image}x"
                      f"{sizes.image}, Co-Mixup grid {mixer.grid}, partitions of "
                      f"{mixer.partition}, {trainer.precision}; medians of {sizes.repeats} steps "
                      f"after {sizes.warmup} warm-up step(s), each part timed alone"
                      + (" (torch.cuda.synchronize() before and after)"
                         if device.type == "cuda" else "") + ".",
                      "The indented parts are inside sample_params, timed again on their own "
                      "(the same pooling and copy; Algorithm 1 with fixed seeds); 'rest' is "
                      "sample_params minus the two. 'sum' adds the unindented parts; the whole "
                      "step is the TrainStep and the optimizer step timed together."]}


#: The parts of section 5, by key; the indented ones are inside ``sample_params``.
_PARTS = (
    ("saliency", "saliency pass (clean forward + backward, clean_loss_and_saliency)"),
    ("prepare", "checks and soft targets (prepare)"),
    ("sample_params", "sample_params"),
    ("pool", "· pooling + copy to the host"),
    ("solve", "· solve (Algorithm 1, {partitions} partition(s), {workers} thread(s))"),
    ("rest", "· rest (the seeds, the sources, ratios and copies to the device)"),
    ("apply", "apply (mixing)"),
    ("mixed", "mixed pass (forward + backward)"),
    ("optimizer", "optimizer step"),
    ("sum", "sum of the parts"),
    ("whole", "whole step"),
)

_SECTION_FUNCTIONS = {"equality": _section_equality, "amp": _section_amp,
                      "syncs": _section_syncs, "step_time": _section_step_time,
                      "breakdown": _section_breakdown}
