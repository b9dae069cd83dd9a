"""What the design tools share (``final_design.py`` for notebook 06, rendered in the appendix notebook 10; ``stretch_design.py`` for 07).

A candidate is ``(recipe, model factory[, augmentation factory])``, or a callable of the seed
that trains in a loop of its own and returns the history. :func:`main` trains the candidates
named on the command line from each seed on the validation split (the first 50,000 training
images; scored on the last 10,000, never the test set) and ships each history as
``eva_utils/results/<prefix>_<candidate>_s<seed>.json``, which the notebooks render.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eva_utils import devices, engine, histories, recipes  # noqa: E402

VALIDATION = 10_000
REFERENCE_RUNS = ROOT / "eva_utils" / "results"


class CleanAfter:
    """A batched augmentation that stops after ``batches`` batches: the images of the epochs after
    it come as they are, drawn like the test set's."""

    def __init__(self, step, batches: int):
        self.step, self.batches, self.seen = step, batches, 0

    def __call__(self, x, generator=None):
        self.seen += 1
        return self.step(x, generator) if self.seen <= self.batches else x


def batches_per_epoch(recipe) -> int:
    """How many batches the validation runs' training loader gives per epoch (its ``len``)."""
    return -(-(recipe.info.train_count - VALIDATION) // recipe.batch_size)


def train(candidate, seed: int):
    """One candidate from one seed on the validation split: its history."""
    if callable(candidate):  # a loop of its own
        return candidate(seed)
    recipe, factory, *augmentation = candidate
    engine.seed_everything(seed)  # before the weights are drawn, as the command line does
    return recipes.run(recipe, seed, model=factory(), valid_size=VALIDATION, progress=False, verbose=False,
                       save=False, augment=augmentation[0]() if augmentation else None).history


def ship(history, name: str, saved_as: str, evaluated_on: str, results_dir=REFERENCE_RUNS):
    """Keep a design or ablation run as package data: without the recipe's per-step lists, with the
    machine, the variant's name and the split it was scored on in its meta. Returns the file written."""
    histories.drop_per_step(history)  # the recipe's per-step LRs and momenta stay out of the package
    history.meta.update(device_name=devices.device_description("cpu"), variant=name, evaluated_on=evaluated_on)
    return histories.save_history(history, saved_as, results_dir=results_dir)


def main(prefix: str, candidates: dict, argv: list[str], seeds: list[int], describe: Callable) -> None:
    """``argv``: candidate names (comma-separated; all when absent), then seeds (``1,2``; else ``seeds``).
    ``describe(history)`` is the short result printed for each run."""
    if recipes.quick_mode():  # a quick run would overwrite a shipped history with a few hundred images' worth
        raise SystemExit("design runs are full runs, shipped with the package: unset EVA_SMOKE")
    names = argv[0].split(",") if argv else list(candidates)
    seeds = [int(s) for s in argv[1].split(",")] if len(argv) > 1 else seeds
    for name in names:
        for seed in seeds:
            start = time.perf_counter()
            history = train(candidates[name], seed)
            path = ship(history, name, f"{prefix}_{name}_s{seed}",
                        f"validation: the last {VALIDATION:,} training images")
            print(f"{name} seed {seed}: {describe(history)}; train {history.train_acc[-1]:.2f}; "
                  f"{time.perf_counter() - start:.0f} s -> {path.name}", flush=True)
