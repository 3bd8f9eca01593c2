"""comixup.TrainStep under Hugging Face Accelerate: the loop of docs/integrations.md with a real
``accelerate.Accelerator`` on the CPU, accumulating gradients over 2 batches
(``backward=accelerator.backward``)."""

from __future__ import annotations

import contextlib
import functools

import pytest
import torch

from comixup import TrainStep

from .conftest import C, changed, loader, tiny_net, weights

BATCHES = 4
ACCUMULATE = 2


def _reset():
    """Forget Accelerate's process-wide state (its singletons), so that a new Accelerator
    starts from its arguments."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture
def fresh_state(accelerate, monkeypatch):
    """Each test starts and ends without Accelerate state, on the CPU whatever the machine."""
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    _reset()
    yield
    _reset()


def _sgd(net):
    """SGD whose steps are counted in ``optimizer.steps``."""
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4,
                                nesterov=True)
    optimizer.steps = 0

    def count(opt, args, kwargs):
        opt.steps += 1

    optimizer.register_step_post_hook(count)
    return optimizer


def test_the_docs_loop_accumulates_as_plain_pytorch(fresh_state, run_recipe):
    net = tiny_net()
    before = weights(net)
    optimizer = _sgd(net)
    scope = run_recipe("accelerate-loop", "accelerate-setup", model=net, optimizer=optimizer,
                       loader=loader(BATCHES), num_classes=C, epochs=1)
    assert scope["accelerator"].gradient_accumulation_steps == ACCUMULATE
    assert optimizer.steps == BATCHES // ACCUMULATE
    losses = scope["losses"]
    assert losses.shape == (BATCHES,) and torch.isfinite(losses).all()
    assert changed(before, net)

    # the plain-PyTorch accumulation of the docs, from the same weights and seed
    reference = tiny_net()
    plain = run_recipe("plain-accumulation", model=reference, optimizer=_sgd(reference),
                       loader=loader(BATCHES), num_classes=C, device=torch.device("cpu"))
    assert plain["optimizer"].steps == BATCHES // ACCUMULATE
    for p, q in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize(("method", "options"),
                         [("comixup", {}),
                          ("puzzlemix", {"mean": [0.5] * 3, "std": [0.25] * 3}),
                          ("cutmix", {})])
def test_the_docs_loop_under_an_explicit_accelerator(fresh_state, accelerate, run_recipe,
                                                     method, options):
    train_one_epoch = run_recipe("accelerate-loop")["train_one_epoch"]
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATE)
    net = tiny_net()
    before = weights(net)
    raw = _sgd(net)
    model, optimizer, data = accelerator.prepare(net, raw, loader(BATCHES + 1))
    passes = []  # per backward call: whether the accelerator synchronizes on this batch

    def backward(loss):
        passes.append(accelerator.sync_gradients)
        accelerator.backward(loss)

    step = TrainStep(method, C, seed=accelerator.process_index, backward=backward, **options)
    losses = train_one_epoch(model, optimizer, data, step, accelerator)
    assert losses.shape == (BATCHES + 1,) and torch.isfinite(losses).all()
    # 5 batches, windows of 2: steps after batches 2 and 4, and at the end of the data
    assert raw.steps == 3
    per_batch = 2 if method in ("comixup", "puzzlemix") else 1  # the clean pass, the mixed
    assert passes == [s for s in (False, True, False, True, True) for _ in range(per_batch)]
    assert changed(before, net)


def _clean_and_mixed_dtypes(accelerator, around):
    """The logits' dtypes of one Co-Mixup step (clean pass, mixed pass) on a prepared model."""
    net = tiny_net()
    model = accelerator.prepare(net)
    dtypes = []
    net.classifier.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    step = TrainStep("comixup", C, backward=accelerator.backward)
    x, y = next(iter(loader(1)))
    with accelerator.accumulate(model), around():
        loss = step(model, x, y)
    assert torch.isfinite(loss)
    return dtypes


def test_mixed_precision_and_the_saliency_pass(fresh_state, accelerate):
    # Accelerate's mixed precision wraps the prepared forward in its autocast; the step's
    # saliency pass still runs in float32 (as in comixup train), the mixed pass in bf16
    accelerator = accelerate.Accelerator(cpu=True, mixed_precision="bf16")
    assert _clean_and_mixed_dtypes(accelerator, contextlib.nullcontext) == [torch.float32,
                                                                            torch.bfloat16]
    _reset()
    # autocast around the step instead of mixed_precision gives the same pair
    accelerator = accelerate.Accelerator(cpu=True)
    bf16 = functools.partial(torch.autocast, accelerator.device.type, dtype=torch.bfloat16)
    assert _clean_and_mixed_dtypes(accelerator, bf16) == [torch.float32, torch.bfloat16]


def test_the_saliency_pass_puts_accelerates_forward_back(fresh_state, accelerate):
    accelerator = accelerate.Accelerator(cpu=True, mixed_precision="bf16")
    model = accelerator.prepare(tiny_net())
    patched = model.forward
    x, y = next(iter(loader(1)))
    TrainStep("comixup", C, backward=accelerator.backward)(model, x, y)
    assert model.forward is patched  # the prepared model keeps Accelerate's autocast afterwards
    assert model(x).dtype == torch.float32  # convert_outputs_to_fp32 still applies
