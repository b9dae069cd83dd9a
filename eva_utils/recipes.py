"""How each course step trains: model, data, optimizer and schedule in one place.

A notebook and the command line train a step the same way by reading its
:class:`Recipe`, so ``python -m eva_utils train --model final --seed 2`` reproduces
notebook 06's seed-2 row exactly (on the same machine and torch version).

Quick mode: with ``EVA_SMOKE=1`` in the environment (CI only, never what is committed)
every run uses a few hundred images and one epoch, so nbval can execute all notebooks
in minutes. :func:`quick_mode` and :meth:`Recipe.run_settings` read it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional

import torch

#: The course target: accuracy held in each of the last ``last_epochs`` epochs.
TARGET_ACC = 99.40
TARGET_PARAMS = 8000
TARGET_EPOCHS = 15
TARGET_LAST_EPOCHS = 3

SMOKE_TRAIN_IMAGES = 1024  # 8 batches of 128: OneCycleLR needs a few steps per phase
SMOKE_TEST_IMAGES = 500


def quick_mode() -> bool:
    """True when ``EVA_SMOKE`` is set to something other than '', '0' or 'false'."""
    return os.environ.get("EVA_SMOKE", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class RunSettings:
    """Epochs and data limits of one run (full, or quick in CI)."""

    epochs: int
    train_limit: Optional[int] = None
    test_limit: Optional[int] = None
    quick: bool = False


@dataclass(frozen=True)
class Recipe:
    """Everything but the seed that decides how a step trains."""

    name: str
    model: str
    epochs: int = 15
    batch_size: int = 128
    rotation: float = 0.0            # random rotation of +-rotation degrees (05 on)
    lr: float = 0.01                 # SGD learning rate (the start LR under OneCycle)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    scheduler: Optional[str] = None  # None, "onecycle" or "step"
    max_lr: float = 0.05             # OneCycle's peak LR
    pct_start: float = 0.25          # OneCycle's share of steps spent warming up
    step_size: int = 6               # StepLR: epochs between decays
    gamma: float = 0.1               # StepLR: decay factor

    def make_optimizer(self, model: torch.nn.Module, steps_per_epoch: int, epochs: Optional[int] = None):
        """SGD and the step's LR schedule (None when the LR is constant)."""
        epochs = epochs or self.epochs
        optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                                    nesterov=self.nesterov, weight_decay=self.weight_decay)
        if self.scheduler is None:
            return optimizer, None
        if self.scheduler == "onecycle":
            if steps_per_epoch * epochs * min(self.pct_start, 1 - self.pct_start) < 2:
                raise ValueError(f"OneCycleLR needs more steps than {steps_per_epoch * epochs} "
                                 f"({steps_per_epoch} per epoch x {epochs}) to warm up and anneal; "
                                 "train on more images or smaller batches")
            # steps once per batch: warm up to max_lr, then anneal far below the start LR
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.max_lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                pct_start=self.pct_start, div_factor=self.max_lr / self.lr, final_div_factor=100)
        elif self.scheduler == "step":
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, self.step_size, self.gamma)
        else:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; use None, 'onecycle' or 'step'")
        return optimizer, scheduler

    def run_settings(self, epochs: Optional[int] = None) -> RunSettings:
        """The epochs/data of a run of this recipe: full, or quick under ``EVA_SMOKE``."""
        if quick_mode():
            return RunSettings(1, SMOKE_TRAIN_IMAGES, SMOKE_TEST_IMAGES, quick=True)
        return RunSettings(epochs or self.epochs)

    def with_(self, **changes) -> "Recipe":
        return replace(self, **changes)


#: One recipe per notebook; each changes one thing from the one before.
RECIPES: dict[str, Recipe] = {
    "skeleton": Recipe("01_skeleton", "skeleton"),
    "lighter": Recipe("02_lighter", "lighter"),
    "batchnorm": Recipe("03_batchnorm", "batchnorm"),
    "regularizer": Recipe("04_regularizer", "regularizer"),
    "augmentation": Recipe("05_augmentation", "augmentation", rotation=7.0),
    "final": Recipe("06_optimizer", "final", rotation=7.0, lr=0.005, nesterov=True,
                    scheduler="onecycle", max_lr=0.05),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(RECIPES)}") from None


def target_report(history, epochs_allowed: int = TARGET_EPOCHS) -> tuple[bool, str]:
    """(met?, one line) comparing a run with the course target."""
    params = history.meta["params"]
    last = history.last(TARGET_LAST_EPOCHS)
    ok_acc = len(last) == TARGET_LAST_EPOCHS and all(a >= TARGET_ACC for a in last)
    ok_params = params < TARGET_PARAMS
    ok_epochs = len(history) <= epochs_allowed
    met = ok_acc and ok_params and ok_epochs
    lasts = ", ".join(f"{a:.2f}%" for a in last)
    line = (f"Course target {'MET' if met else 'NOT MET'}: last {TARGET_LAST_EPOCHS} test accuracies "
            f"[{lasts}] {'>=' if ok_acc else 'not all >='} {TARGET_ACC:.2f}%; "
            f"{params:,} parameters {'<' if ok_params else 'not <'} {TARGET_PARAMS:,}; "
            f"{len(history)} epochs {'<=' if ok_epochs else '>'} {epochs_allowed}")
    return met, line
