"""The train/test loop students know from PyTorch's ``examples/mnist``, made fast.

``train`` runs one epoch with a progress bar that reads like the course's logs
(``Loss=0.0368 Batch_id=468 Accuracy=98.89``), ``test`` prints exactly
``Test set: Average loss: 0.0182, Accuracy: 9940/10000 (99.40%)``, and ``fit``
runs both for N epochs and returns a :class:`History` that plots and notebooks use.

The options of the loop come in three small groups, so :func:`fit` reads in one line:
:class:`StepOptions` (what a training step adds to the plain update: label smoothing, L1,
gradient clipping), :class:`EvalOptions` (what each epoch scores: an EMA of the weights,
BatchNorm statistics recomputed first, the split's name) and :class:`Checkpoints` (where
``last.pt``/``best.pt`` go). The device and the :class:`Speed` switches are resolved once, where
a run starts (:func:`fit`, or :func:`eva_utils.recipes.run` above it).

Speed comes from switches collected in :class:`Speed`, each one independent so a
notebook or the benchmark can show what it buys: ``channels_last`` memory format,
training in bf16 or fp16 autocast where the hardware computes it natively
(:func:`auto_precision`), ``torch.compile``, ``zero_grad(set_to_none)``, and no
``.item()`` per batch (loss and hits are summed on the device and read once per
progress update). Evaluation runs in fp32 under ``torch.inference_mode``.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .devices import PRECISIONS, auto_precision, pick_device
from .fsutil import atomic_torch_save, check_regular_or_absent, remove_stale_temps
from .histories import History

# ----------------------------------------------------------------------------- progress


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, VS Code, nbclient)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _Discard:
    """A file that drops what tqdm writes to it (the notebook bar shows itself elsewhere)."""

    def write(self, _text):
        return 0

    def flush(self):
        pass


class NotebookTextBar(tqdm):
    """tqdm's text bar, shown in a notebook as one output updated in place.

    tqdm's notebook widget saves ``0%| | 0/469`` as its text form, which is all GitHub,
    nbviewer and exports show; this bar is plain text from start to end, so the saved
    notebook keeps the bar's last state (``... 100%|##########| 469/469 [00:12<00:00]``).
    """

    def __init__(self, *args, **kwargs):
        from IPython.display import display

        self._handle = display({"text/plain": ""}, raw=True, display_id=True)
        kwargs.setdefault("mininterval", 0.5)
        kwargs.setdefault("ncols", 100)
        super().__init__(*args, file=_Discard(), **kwargs)

    def display(self, msg=None, pos=None):
        self._handle.update({"text/plain": self.__str__() if msg is None else msg}, raw=True)
        return True


class PlainBar(tqdm):
    """No carriage-return stream where no terminal shows it (``train ... > log``, CI): one
    line on stderr when the epoch ends (``Loss=0.0368 Batch_id=468 Accuracy=98.89 (12.3 s)``)."""

    def __init__(self, *args, **kwargs):
        kwargs.update(mininterval=float("inf"), file=_Discard())
        super().__init__(*args, **kwargs)

    def close(self):
        if not self.disable and self.desc:
            print(f"{self.desc.rstrip(': ')} ({self.format_dict['elapsed']:.1f} s)", file=sys.stderr, flush=True)
        super().close()


def progress_bar(iterable, total: int, enabled: bool = True):
    """The progress bar that fits where the run shows: a live tqdm bar in a terminal, a text
    bar updated in place in a notebook, one plain line per epoch when output goes to a file."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if _in_notebook():
        return NotebookTextBar(iterable, total=total, leave=True)
    if sys.stdout.isatty() and sys.stderr.isatty():
        return tqdm(iterable, total=total, leave=True)
    return PlainBar(iterable, total=total)


# ----------------------------------------------------------------------------- set-up


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA) so a CPU run repeats exactly."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    return seed


@dataclass
class Speed:
    """The fast-path switches. ``Speed.textbook()`` turns every one off.

    ``channels_last``: None = on CUDA only (measured slower on this course's CPU for
    8-16 channel layers; ``python -m eva_utils bench`` shows it), True/False force it.
    ``precision``: the autocast precision of training, ``"fp32"`` (none), ``"bf16"``
    or ``"fp16"`` (with a gradient scaler); None = :func:`auto_precision` of the device.
    ``compile``: wrap the model in ``torch.compile`` (off by default: on the course's
    CPU it bought nothing on top of bf16 and costs ~10 s to compile; try it on a GPU).
    ``sync_every``: read the running loss/accuracy from the device every N batches.
    """

    channels_last: Optional[bool] = None
    precision: Optional[str] = None
    compile: bool = False
    set_to_none: bool = True
    sync_every: int = 20

    def __post_init__(self):
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; use one of {', '.join(PRECISIONS)} "
                             "(or None to choose by hardware)")

    @classmethod
    def textbook(cls) -> "Speed":
        return cls(channels_last=False, precision="fp32", compile=False, set_to_none=False, sync_every=1)

    @property
    def resolved(self) -> bool:
        """Whether every automatic (None) choice has been made (:meth:`resolve`)."""
        return self.channels_last is not None and self.precision is not None

    def resolve(self, device: torch.device) -> "Speed":
        """A copy with the automatic (None) choices made for ``device``; itself when none is left,
        so the switches a run starts with are decided once."""
        if self.resolved:
            return self
        device = torch.device(device)
        channels_last = device.type == "cuda" if self.channels_last is None else self.channels_last
        precision = auto_precision(device) if self.precision is None else self.precision
        return replace(self, channels_last=channels_last, precision=precision)

    @property
    def amp_dtype(self) -> Optional[torch.dtype]:
        """The dtype training autocasts to (None: fp32, no autocast); of a resolved Speed."""
        if self.precision is None:
            raise ValueError("Speed.amp_dtype of an unresolved Speed: call speed.resolve(device) first")
        return PRECISIONS[self.precision]

    def autocast_dtype(self, device: torch.device) -> Optional[torch.dtype]:
        """The dtype training autocasts to on ``device`` (None: fp32, no autocast)."""
        return self.resolve(device).amp_dtype

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Move the model to ``device`` in the chosen memory format (and compile it)."""
        model = model.to(device)
        if self.resolve(device).channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        return model

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the memory format the model was prepared for (call on a resolved Speed)."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.ndim == 4 else x


def grad_scaler(device: torch.device, dtype: Optional[torch.dtype]):
    """A gradient scaler for fp16 training (fp16 gradients underflow without one); else None."""
    if dtype is not torch.float16:
        return None
    device = torch.device(device)
    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        return torch.amp.GradScaler(device.type)
    return torch.cuda.amp.GradScaler(enabled=device.type == "cuda")


def unwrap(model: nn.Module) -> nn.Module:
    """The original module behind a ``torch.compile`` wrapper."""
    return getattr(model, "_orig_mod", model)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- one epoch


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@dataclass(frozen=True)
class StepOptions:
    """What every training step adds to the plain update (all off by default)."""

    label_smoothing: float = 0.0     # cross-entropy against 1 - eps on the true class
    l1: float = 0.0                  # + l1 * sum(|w|) of the weights (not biases, not BatchNorm's)
    clip_grad: Optional[float] = None  # clip the gradient norm to this


def train(
    model: nn.Module,
    device: torch.device,
    train_loader,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler=None,
    speed: Speed = Speed(),
    step: StepOptions = StepOptions(),
    progress: bool = True,
    max_batches: Optional[int] = None,
    averaged=None,
) -> dict:
    """Train one epoch; returns {'loss': mean loss, 'acc': accuracy in %, 'lrs': LR per step,
    'momenta': momentum per step (:func:`step_momentum`; empty for an optimizer without one)}.

    ``scheduler`` (if given) is stepped after every batch (OneCycleLR, CyclicLR);
    per-epoch schedulers are stepped by :func:`fit`. ``step`` adds label smoothing, an L1
    penalty or gradient clipping (:class:`StepOptions`). Training autocasts to ``speed``'s
    precision (under fp16 with a gradient scaler, so small gradients do not underflow).
    ``averaged`` (a ``torch.optim.swa_utils.AveragedModel``, see :func:`ema_model`) is updated
    after every optimizer step.
    """
    device = torch.device(device)
    return _train_epoch(model, device, train_loader, optimizer, speed.resolve(device), step,
                        scheduler=scheduler, progress=progress, max_batches=max_batches, averaged=averaged)


def _train_epoch(model, device: torch.device, train_loader, optimizer, speed: Speed, step: StepOptions, *,
                 scheduler=None, progress: bool = True, max_batches: Optional[int] = None, averaged=None,
                 scaler=None) -> dict:
    """:func:`train`'s loop, for a device and Speed already resolved (:func:`fit` keeps the fp16
    gradient ``scaler`` across epochs)."""
    model.train()
    amp_dtype = speed.amp_dtype
    if scaler is None:
        scaler = grad_scaler(device, amp_dtype)
    total = len(train_loader) if max_batches is None else min(max_batches, len(train_loader))
    bar = progress_bar(train_loader, total, progress)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    lrs, momenta = [], []
    for batch_idx, (data, target) in enumerate(bar):
        if batch_idx >= total:
            break
        data = speed.inputs(data.to(device, non_blocking=True))
        target = target.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=speed.set_to_none)
        with _autocast(device, amp_dtype):
            output = model(data)
        loss = F.cross_entropy(output.float(), target, label_smoothing=step.label_smoothing)
        if step.l1:
            loss = loss + step.l1 * sum(p.abs().sum() for p in model.parameters() if p.ndim > 1)  # weights, not biases/BN
        lrs.append(optimizer.param_groups[0]["lr"])
        momentum = step_momentum(optimizer)
        if momentum is not None:
            momenta.append(momentum)
        if scaler is None:
            loss.backward()
            if step.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), step.clip_grad)
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            if step.clip_grad:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), step.clip_grad)
            scaler.step(optimizer)
            scaler.update()
        if averaged is not None:
            averaged.update_parameters(model)
        if scheduler is not None:
            scheduler.step()
        loss_sum += loss.detach() * len(target)
        correct += (output.argmax(dim=1) == target).sum()
        seen += len(target)
        if progress and (batch_idx % speed.sync_every == 0 or batch_idx == total - 1):
            bar.set_description(f"Loss={loss.item():0.4f} Batch_id={batch_idx} Accuracy={100 * correct.item() / seen:0.2f}",
                                refresh=False)
    bar.close()
    if seen == 0:
        raise ValueError("the training loader produced no batches")
    return {"loss": loss_sum.item() / seen, "acc": 100.0 * correct.item() / seen, "lrs": lrs,
            "momenta": momenta}


def step_momentum(optimizer: torch.optim.Optimizer) -> Optional[float]:
    """The momentum the next optimizer step uses: SGD's ``momentum``, or Adam's and AdamW's
    first beta (the same role: how much of the past gradients each step keeps). OneCycle
    cycles it opposite to the LR, so recording it shows that it did. None for an optimizer
    that has neither."""
    group = optimizer.param_groups[0]
    if "momentum" in group:
        return float(group["momentum"])
    if "betas" in group:
        return float(group["betas"][0])
    return None


def evaluate(model: nn.Module, device, loader, speed: Speed = Speed()) -> dict:
    """Loss, hits and accuracy on ``loader`` under ``torch.inference_mode`` (prints nothing).

    Always in fp32, whatever precision training used: the test line, the checkpoint's
    score, the misclassified images and the per-class tables then count the same
    predictions. (``speed`` gives only the memory format.)
    """
    device = torch.device(device)
    return _evaluate(model, device, loader, speed.resolve(device))


def _evaluate(model: nn.Module, device: torch.device, loader, speed: Speed) -> dict:
    """:func:`evaluate` for a device and Speed already resolved."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    with torch.inference_mode():
        for data, target in loader:
            data = speed.inputs(data.to(device, non_blocking=True))
            target = target.to(device, non_blocking=True)
            output = model(data).float()
            loss_sum += F.cross_entropy(output, target, reduction="sum").double()
            correct += (output.argmax(dim=1) == target).sum()
            n += len(target)
    if n == 0:
        raise ValueError("the test loader produced no batches")
    correct = int(correct.item())
    return {"loss": loss_sum.item() / n, "correct": correct, "total": n, "acc": 100.0 * correct / n}


def test(model: nn.Module, device, test_loader, speed: Speed = Speed(), verbose: bool = True,
         label: str = "Test set") -> dict:
    """Evaluate and print the course's line:
    ``Test set: Average loss: 0.0182, Accuracy: 9940/10000 (99.40%)``."""
    r = evaluate(model, device, test_loader, speed)
    if verbose:
        print(test_line(r, label))
    return r


def test_line(r: dict, label: str = "Test set") -> str:
    """The course's evaluation line for a result of :func:`evaluate`."""
    return f"{label}: Average loss: {r['loss']:.4f}, Accuracy: {r['correct']}/{r['total']} ({r['acc']:.2f}%)"


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path, model: nn.Module, history: Optional[History] = None, **extra) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    It holds the model's registry name and arguments (set by
    :func:`eva_utils.models.build`) so :func:`eva_utils.models.load` rebuilds it.
    """
    path = Path(path)
    model = unwrap(model)
    state = {
        "model_name": getattr(model, "registry_name", None),
        "model_kwargs": getattr(model, "registry_kwargs", {}),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": history.to_dict() if history is not None else None,
        **extra,
    }

    check_regular_or_absent(path, "checkpoint")  # never over a device node, a FIFO or a link
    remove_stale_temps(path.parent, [path.name])  # what a save killed by SIGKILL left
    atomic_torch_save(state, path)  # a unique temporary file: two runs saving one path do not collide
    return path


# ----------------------------------------------------------------------------- fit


def ema_model(model: nn.Module, decay: float) -> nn.Module:
    """An exponential moving average of ``model``'s weights, updated after every step.

    ``torch.optim.swa_utils.AveragedModel`` does the bookkeeping; ``use_buffers=True``
    averages BatchNorm's running statistics too, so the average is ready to evaluate
    without a pass to recompute them. Why: a tiny network's weights still jitter from
    batch to batch at the end of a short run; the average of the last few hundred
    steps (``1 / (1 - decay)``) tests steadier and usually higher.
    """
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be between 0 and 1 (e.g. 0.999), got {decay}")
    return AveragedModel(unwrap(model), multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def recompute_bn(model: nn.Module, loader) -> int:
    """Replace every BatchNorm layer's running statistics with their exact values over
    ``loader`` (the weights fixed; "precise BN"); returns the number of images seen.

    Why: the running mean and variance a network is evaluated with are an exponential average
    over the last ~10 training batches, of augmented images, taken while the weights moved.
    Two evaluations of nearly the same weights then differ by a few hundredths of a point, and
    the course target takes the lowest of the last 3. Recomputed over a fixed set of clean
    training images, the statistics belong to the weights being evaluated, and repeat.

    As ``torch.optim.swa_utils.update_bn`` does (a cumulative average: momentum None), but with
    only the BatchNorm layers in training mode: ``update_bn`` puts the whole model in training
    mode, so a dropout layer would drop units during the pass and draw from the global random
    generator, which would change the rest of the run. Training itself is unaffected: in
    training mode BatchNorm normalises with each batch's own statistics.
    """
    model = unwrap(model)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over every batch of the pass
        m.train()
    device = next(model.parameters()).device
    with torch.no_grad():
        for x, _ in loader:
            model(x.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)
    return _images_in(loader)


def _images_in(loader) -> int:
    """The number of images a loader yields per pass (a TensorLoader's, or a DataLoader's dataset's)."""
    return len(loader.images) if hasattr(loader, "images") else len(loader.dataset)


def lr_range_test(model: nn.Module, device, loader, optimizer: torch.optim.Optimizer, *, start: float = 1e-4,
                  end: float = 1.0, steps: int = 200, smoothing: float = 0.9) -> dict:
    """Leslie Smith's LR range test: raise the LR exponentially from ``start`` to ``end``
    over ``steps`` training batches and record the (smoothed) loss at each LR.

    Why: the loss falls fastest a little below the LR where it stops falling and blows up;
    OneCycle's peak LR is chosen from that region. It trains ``model`` (use a throwaway
    copy) in fp32, and stops early once the loss is four times its lowest.
    Returns ``{"lr": [...], "loss": [...], "lowest_lr": ..., "lowest_loss": ...}``: every step's
    LR and smoothed loss, and the LR where that loss was lowest (where the loss stops falling;
    a peak is chosen below it), so a notebook's printout and its plot's marker are one number.
    """
    if not 0 < start < end or steps < 2:
        raise ValueError(f"need 0 < start < end and steps >= 2, got start={start}, end={end}, steps={steps}")
    device = pick_device(device)
    model.to(device).train()
    factor = (end / start) ** (1 / (steps - 1))
    lrs, losses, avg, lowest = [], [], 0.0, float("inf")
    batches = iter(loader)
    for i in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:  # a short loader: go round again
            batches = iter(loader)
            x, y = next(batches)
        lr = start * factor ** i
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x.to(device)).float(), y.to(device))
        loss.backward()
        optimizer.step()
        value = loss.item()
        # an exponential moving average that starts at 0, bias-corrected as Adam does: the
        # correction undoes exactly that start, so a constant loss gives a flat curve
        avg = smoothing * avg + (1 - smoothing) * value
        smoothed = avg / (1 - smoothing ** (i + 1))
        lrs.append(lr)
        losses.append(smoothed)
        lowest = min(lowest, smoothed)
        if smoothed > 4 * lowest or not math.isfinite(smoothed):
            break
    at = min(range(len(losses)), key=losses.__getitem__)
    return {"lr": lrs, "loss": losses, "lowest_lr": lrs[at], "lowest_loss": losses[at]}


def _per_batch(scheduler) -> bool:
    from torch.optim import lr_scheduler as S

    if isinstance(scheduler, S.SequentialLR):  # e.g. OneCycle, then a floor (recipes' hold_epochs)
        return any(_per_batch(part) for part in scheduler._schedulers)
    return isinstance(scheduler, (S.OneCycleLR, S.CyclicLR))


@dataclass(frozen=True)
class EvalOptions:
    """What each epoch's evaluation scores (by default the raw weights, on the test set)."""

    ema: Optional[float] = None  # score an exponential moving average of the weights (a decay, e.g. 0.999)
    bn_loader: object = None     # precise BN: recompute BatchNorm's statistics over these clean images first
    label: str = "Test set"      # the evaluated split's name in the log ("Validation set")


@dataclass(frozen=True)
class Checkpoints:
    """Where :func:`fit` writes ``last.pt`` and ``best.pt`` after every epoch, and what else they hold."""

    folder: str | os.PathLike
    extra: dict = field(default_factory=dict)  # stored in every checkpoint ({"quick": True} marks a quick run's)


def fit(
    model: nn.Module,
    epochs: int,
    train_loader,
    test_loader,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler=None,
    *,
    device=None,
    speed: Optional[Speed] = None,
    step: StepOptions = StepOptions(),
    evaluation: EvalOptions = EvalOptions(),
    checkpoints: Optional[Checkpoints] = None,
    progress: bool = True,
    verbose: Optional[bool] = True,
) -> History:
    """Train ``epochs`` epochs, testing after each; returns the :class:`History`.

    ``optimizer`` defaults to the course's SGD(lr=0.01, momentum=0.9). A scheduler is
    stepped per batch if it is OneCycleLR/CyclicLR, per epoch otherwise (ReduceLROnPlateau
    gets the test loss). ``step``: what each training step adds (:class:`StepOptions`).

    ``evaluation`` (:class:`EvalOptions`): with ``ema`` (a decay such as 0.999) an exponential
    moving average of the weights (:func:`ema_model`) is evaluated and checkpointed instead of the
    raw weights, and ``model`` holds the averaged weights when ``fit`` returns; the training
    loss/accuracy stay those of the raw weights. With ``bn_loader`` (clean training images,
    ``data.loaders(splits=Splits(bn_images=N)).bn``) the evaluated network's BatchNorm statistics
    are recomputed over it before every evaluation (:func:`recompute_bn`), so the test line, the
    checkpoint and the returned model all hold statistics of the weights they score. ``label``
    names the evaluated split in the log ("Validation set" when ``test_loader`` is one).

    ``checkpoints`` (:class:`Checkpoints`): ``last.pt`` and ``best.pt`` written atomically after
    every epoch. ``verbose``: True prints the course's log (``EPOCH``, ``Train set``, ``Test set``
    lines); False one short line per epoch (``epoch 3/15: train 98.10%, test 99.02% (12.3 s)``), so
    an ablation or seed run in a notebook still leaves a record of each epoch; None nothing.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    device = pick_device(device)
    speed = (speed or Speed()).resolve(device)  # the one place a run's switches are decided
    net = speed.prepare(model, device)
    if optimizer is None:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    per_batch = _per_batch(scheduler)
    history = History(meta={
        "params": count_parameters(model),
        "device": str(device),
        "precision": speed.precision,
        "model": getattr(unwrap(model), "registry_name", type(unwrap(model)).__name__),
    })
    scaler = grad_scaler(device, speed.amp_dtype)  # fp16 only; its scale carries across epochs
    averaged = ema_model(net, evaluation.ema) if evaluation.ema else None
    evaluated = averaged if averaged is not None else net
    if evaluation.ema:
        history.meta["ema"] = evaluation.ema
    if evaluation.bn_loader is not None:
        history.meta["precise_bn"] = _images_in(evaluation.bn_loader)
    best = -1.0
    for epoch in range(1, epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        if verbose:
            print(f"EPOCH: {epoch} (LR: {lr:.6f})")
        start = time.perf_counter()
        tr = _train_epoch(net, device, train_loader, optimizer, speed, step,
                          scheduler=scheduler if per_batch else None, progress=progress, averaged=averaged,
                          scaler=scaler)
        seconds = time.perf_counter() - start
        if verbose:  # plain text, so every viewer keeps the record the progress bar shows live
            print(f"Train set: Average loss: {tr['loss']:.4f}, Accuracy: {tr['acc']:.2f}% ({seconds:.1f} s)")
        if evaluation.bn_loader is not None:
            recompute_bn(evaluated, evaluation.bn_loader)
        te = _evaluate(evaluated, device, test_loader, speed)
        if verbose:
            print(test_line(te, evaluation.label))
        elif verbose is False:
            split = "validation" if evaluation.label.lower().startswith("validation") else "test"
            print(f"epoch {epoch}/{epochs}: train {tr['acc']:.2f}%, {split} {te['acc']:.2f}% ({seconds:.1f} s)",
                  flush=True)
        if scheduler is not None and not per_batch:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(te["loss"])
            else:
                scheduler.step()
        history.add(epoch=epoch, train_loss=tr["loss"], train_acc=tr["acc"], test_loss=te["loss"],
                    test_acc=te["acc"], test_correct=te["correct"], test_total=te["total"],
                    lr=lr, seconds=seconds)
        history.batch_lr.extend(tr["lrs"])
        history.batch_momentum.extend(tr["momenta"])
        if checkpoints is not None:
            saved = model if averaged is None else averaged.module  # a deep copy: registry name included
            extra = dict(checkpoints.extra, epoch=epoch)
            save_checkpoint(Path(checkpoints.folder) / "last.pt", saved, history, **extra)
            if te["acc"] > best:
                best = te["acc"]
                save_checkpoint(Path(checkpoints.folder) / "best.pt", saved, history, **extra)
    if averaged is not None:  # the model you get back is the one that was evaluated
        unwrap(model).load_state_dict(averaged.module.state_dict())
    return history
