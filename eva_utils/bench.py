"""``python -m eva_utils bench``: the textbook pipeline against the fast path, in one process.

Every variant trains the final course model (recipe ``final``) from the same seed
for the same number of batches, after a short warm-up, and the table reports
images/s, seconds per 60k-image epoch, the peak memory the variant added, and the
speed-up over the textbook row that draws the same augmentation, measured in this same run
(like with like). Ratios, not absolute timings, are what carry from one machine to another.

Variants: (a) ``textbook``: torchvision MNIST + PIL RandomRotation (+ torchvision's
ElasticTransform when the recipe bends the digits) + DataLoader, fp32, NCHW, eager,
``zero_grad()`` and ``.item()`` every batch, and the same with rotation alone; each fast-path
switch alone on top of it; and (b) ``fast path``: every switch that is on by default on this
device, once per training precision (fp32, bf16, and fp16 on CUDA), the default one marked,
then the default with ``torch.compile`` and with rotation alone. Evaluation is always fp32.
Then it times evaluation of the 10k test images and (unless ``--skip-full``) a full
15-epoch run of the fast path with the course's recipe.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field, replace

import torch

from . import data, devices, engine, models, recipes


def _rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class PeakMemory:
    """Peak memory a block of code adds: CUDA's allocator counter, else sampled RSS."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.base = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes() - self.base)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes() - self.base)


@dataclass
class Variant:
    name: str
    fast_loader: bool
    speed: engine.Speed
    recipe_changes: dict = field(default_factory=dict)  # what this row changes in the recipe it times


@dataclass
class Result:
    name: str
    images_per_s: float
    epoch_s: float
    peak_mb: float
    speedup: float = 1.0
    recipe_changes: dict = field(default_factory=dict)  # which textbook row it is compared with


#: What the rows without the elastic distortion change in the final recipe.
ROTATION_ALONE = {"elastic": 0.0}


def precisions_to_compare(device: torch.device) -> list[str]:
    """The training precisions the bench times on ``device``: fp32 and bf16 everywhere
    (emulated bf16 included, to show what it would cost), fp16 on CUDA."""
    return ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])


def variants(device: torch.device) -> list[Variant]:
    """The textbook pipeline, each switch alone on top of it, and the fast path in each precision.

    The fast-path rows differ only in the training precision, so they show what the
    precision :func:`eva_utils.devices.auto_precision` picks for this device buys; one more adds
    ``torch.compile`` to the default. When the final recipe bends the digits, a textbook row and a
    last fast row leave its elastic distortion out (rotation alone): the speed-up without the
    distortion, and what it costs the fast path, measured beside the rest.
    """
    base = engine.Speed.textbook()
    elastic = bool(recipes.get_recipe("final").elastic)
    out = [Variant("textbook (DataLoader+PIL, fp32, NCHW, eager)", False, base)]
    if elastic:
        out.append(Variant("textbook, rotation alone (no elastic)", False, base, ROTATION_ALONE))
    out += [
        Variant("+ tensor loader, batched augmentation", True, base),
        Variant("+ channels_last", False, replace(base, channels_last=True)),
        Variant("+ zero_grad(set_to_none), sync every 20", False, replace(base, set_to_none=True, sync_every=20)),
        Variant("+ torch.compile", False, replace(base, compile=True)),
    ]
    default = devices.auto_precision(device)
    for precision in precisions_to_compare(device):
        mark = " (default)" if precision == default else ""
        out.append(Variant(f"fast path, {precision} training{mark}", True, engine.Speed(precision=precision)))
    out.append(Variant(f"fast path, {default}, + torch.compile", True, engine.Speed(precision=default, compile=True)))
    if elastic:
        out.append(Variant(f"fast path, {default}, rotation alone (no elastic)", True,
                           engine.Speed(precision=default), ROTATION_ALONE))
    return out


def time_training(variant: Variant, device, batches: int, warmup: int, root=None,
                  recipe_name: str = "final") -> tuple[float, float]:
    """(seconds per batch, peak MB) of ``batches`` training steps of a recipe after ``warmup`` steps.

    The course's final model by default; notebook 09 times its CIFAR-10 model's speed switches
    with ``recipe_name="cifar_advanced"``.
    """
    recipe = recipes.get_recipe(recipe_name).with_(**variant.recipe_changes)
    engine.seed_everything(1)
    n_images = (batches + warmup) * recipe.batch_size
    # the textbook rows draw the same augmentation per PIL image (rotation, and torchvision's
    # elastic twin when the recipe distorts), so the rows compare pipelines, not workloads.
    # Only the elastic option: recipe.classic_transform() refuses cifar_advanced's cutout (09 times it)
    classic = {"rotation": recipe.rotation, "elastic": recipe.elastic}
    loaders = data.loaders(recipe.batch_size, dataset=recipe.info, device=device, seed=1, fast=variant.fast_loader,
                           augment=recipe.make_augment() if variant.fast_loader else classic,
                           splits=data.Splits(train_limit=n_images, test_limit=1000), root=root)
    model = models.build(recipe.model)
    # the schedule of a full run (a timed slice is too short to hold one)
    steps_per_epoch = math.ceil(recipe.info.train_count / recipe.batch_size)
    optimizer, scheduler = recipe.make_optimizer(model, steps_per_epoch)
    net = variant.speed.prepare(model, device)
    kwargs = dict(scheduler=scheduler, speed=variant.speed, progress=False)
    # warm-up: first batches pay for allocation (and compilation)
    engine.train(net, device, loaders.train, optimizer, max_batches=warmup, **kwargs)
    with PeakMemory(device) as mem:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        engine.train(net, device, loaders.train, optimizer, max_batches=batches, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds / batches, mem.peak / 2**20


def time_evaluation(device, root=None, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds to evaluate the 10k test images with the fast path."""
    loaders = data.loaders(1000, device=device, splits=data.Splits(train_limit=1), root=root)
    model = engine.Speed().prepare(models.build("final"), device)
    engine.evaluate(model, device, loaders.test)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        engine.evaluate(model, device, loaders.test)
        best = min(best, time.perf_counter() - start)
    return best


def full_run(device, root=None) -> tuple[float, engine.History]:
    """Wall seconds of the course's full 15-epoch fast run (seed 1), with its history."""
    recipe = recipes.get_recipe("final")
    start = time.perf_counter()
    history = recipes.run(recipe, 1, device=device, root=root, settings=recipes.RunSettings(recipe.epochs),
                          progress=False, verbose=None, save=False).history  # the command line's run, data loading included (silent)
    return time.perf_counter() - start, history


def format_table(results: list[Result]) -> str:
    head = f"| {'variant':<46} | {'images/s':>9} | {'s/epoch (60k)':>13} | {'peak MB':>8} | {'speed-up':>8} |"
    rule = "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"
    rows = [head, rule]
    for r in results:
        rows.append(f"| {r.name:<46} | {r.images_per_s:>9,.0f} | {r.epoch_s:>13.1f} | {r.peak_mb:>8.1f} | {r.speedup:>7.2f}x |")
    return "\n".join(rows)


def machine_line(device: torch.device) -> str:
    if device.type == "cuda":
        what = torch.cuda.get_device_name(device)
    else:
        what = f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads"
        what += ", native bf16 (AVX-512 BF16/AMX)" if devices.cpu_has_native_bf16() else ", no native bf16"
    return f"device {device} ({what}), torch {torch.__version__}"


def speedups(results: list[Result]) -> None:
    """Each row's speed-up over the textbook row that draws the same augmentation (rotation alone
    against rotation alone), or over the first textbook row when there is no such twin."""
    textbook = {}
    for r in results:
        key = tuple(sorted(r.recipe_changes.items()))
        textbook.setdefault(key, r)  # the first row of each augmentation is its textbook row
    for r in results:
        base = textbook.get(tuple(sorted(r.recipe_changes.items())), results[0])
        r.speedup = r.images_per_s / base.images_per_s


def run_bench(args) -> int:
    device = devices.pick_device(args.device)
    batches, warmup = (3, 1) if args.tiny else (args.batches, 5)
    batch_size = recipes.get_recipe("final").batch_size
    print(f"Benchmark on {machine_line(device)}: {batches} timed batches of {batch_size} per variant")
    results = []
    for v in variants(device):
        if args.tiny and v.speed.compile:
            continue  # compiling costs more than a tiny run measures
        per_batch, peak = time_training(v, device, batches, warmup, args.data)
        results.append(Result(v.name, batch_size / per_batch, per_batch * 60000 / batch_size, peak,
                              recipe_changes=v.recipe_changes))
        print(f"  {v.name}: {per_batch * 1000:.1f} ms/batch", flush=True)
    speedups(results)
    print()
    print(format_table(results))
    print("(speed-up: over the textbook row that draws the same augmentation; the rows without the elastic "
          "distortion over the textbook row with rotation alone)")
    eval_s = time_evaluation(device, args.data, repeats=1 if args.tiny else 3)
    print(f"\nEvaluation of the 10,000 test images (fast path, batch 1000): {eval_s:.2f} s")
    if not (args.skip_full or args.tiny):
        wall, history = full_run(device, args.data)
        _, line = recipes.target_report(history)
        print(f"Full 15-epoch fast run of 'final' (seed 1), data loading included: {wall:.1f} s wall")
        print(line)
    return 0
