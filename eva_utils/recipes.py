"""How each course step trains: model, data, optimizer and schedule in one place.

A notebook and the command line train a step the same way by reading its
:class:`Recipe`, so ``python -m eva_utils train --recipe final --seed 2`` reproduces
notebook 06's seed-2 row exactly (on the same machine and torch version).

Quick mode: with ``EVA_SMOKE=1`` in the environment (CI only, never what is committed)
every run uses a few hundred images and one epoch (plus the epochs a recipe holds its LR
at the floor, so the whole schedule runs), so nbval can execute all notebooks in minutes.
:func:`quick_mode` and :meth:`Recipe.run_settings` read it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional

import torch

from pathlib import Path

from . import augment, data, datasets, engine, histories, models
from .checks import check_optional
from .devices import device_description, machine_description, pick_device

#: The course target: accuracy held in each of the last ``last_epochs`` epochs.
TARGET_ACC = 99.40
TARGET_PARAMS = 8000
TARGET_EPOCHS = 15
TARGET_LAST_EPOCHS = 3

SMOKE_TRAIN_IMAGES = 1024  # 8 batches of 128: OneCycleLR needs a few steps per phase
SMOKE_TEST_IMAGES = 500


#: The values of ``EVA_SMOKE`` that switch quick mode off (unset too) and on; anything else is refused.
SMOKE_OFF = ("", "0", "false", "no", "off", "n")
SMOKE_ON = ("1", "true", "yes", "on", "y")


def quick_mode() -> bool:
    """Whether ``EVA_SMOKE`` asks for quick mode: on for 1/true/yes/on/y, off when unset or
    ''/0/false/no/off/n (any case). Anything else is a ValueError naming it: a typo must not
    turn a real run into a quick one, nor the other way round."""
    raw = os.environ.get("EVA_SMOKE", "")
    value = raw.strip().lower()
    if value in SMOKE_OFF:
        return False
    if value in SMOKE_ON:
        return True
    raise ValueError(f"EVA_SMOKE={raw!r} is neither on ({'/'.join(SMOKE_ON)}) nor off (unset, "
                     f"{'/'.join(SMOKE_OFF[1:])}); set one of those, or unset it")


DEFAULT_MOMENTUM = 0.9  # SGD momentum of the course (05 and before; OneCycle cycles its own)


@dataclass(frozen=True)
class RunSettings:
    """Epochs and data limits of one run (full, or quick in CI)."""

    epochs: int
    train_limit: Optional[int] = None
    test_limit: Optional[int] = None
    quick: bool = False


#: The range of each numeric :class:`Recipe` field (checked on every Recipe made, ``with_`` too).
RECIPE_RANGES = {
    "epochs": dict(whole=True, at_least=1), "batch_size": dict(whole=True, at_least=1),
    "rotation": dict(at_least=0, at_most=180, unit="degrees"), "translate": dict(at_least=0, at_most=1),
    "scale": dict(at_least=0, below=1), "elastic": dict(at_least=0, unit="pixels"),
    "crop_padding": dict(whole=True, at_least=0, unit="pixels"), "flip": dict(at_least=0, at_most=1),
    "cutout": dict(whole=True, at_least=0, unit="pixels"), "cutout_p": dict(at_least=0, at_most=1),
    "lr": dict(above=0), "momentum": dict(at_least=0, below=1), "weight_decay": dict(at_least=0),
    "max_lr": dict(above=0), "pct_start": dict(above=0, below=1), "hold_epochs": dict(whole=True, at_least=0),
    "bn_momentum": dict(above=0, at_most=1), "precise_bn": dict(whole=True, at_least=0),
    "label_smoothing": dict(at_least=0, below=1), "ema": dict(at_least=0, below=1),
}


@dataclass(frozen=True)
class Recipe:
    """Everything but the seed that decides how a step trains: model, dataset, augmentation,
    optimizer, schedule, and the speed switches a model needs on a CPU."""

    name: str
    model: str
    dataset: str = "mnist"           # a key of eva_utils.datasets.DATASETS
    epochs: int = 15
    batch_size: int = 128
    rotation: float = 0.0            # random rotation of +-rotation degrees (05 on)
    translate: float = 0.0           # random shift of up to translate x 28 px each way (07)
    scale: float = 0.0               # random zoom in [1 - scale, 1 + scale] (07)
    elastic: float = 0.0             # elastic distortion of strength alpha (px), in the rotation's warp
    crop_padding: int = 0            # random shift of up to N px, as pad + crop (09)
    flip: float = 0.0                # horizontal flip with this probability (08, 09; never digits)
    cutout: int = 0                  # one N x N hole per image (09), with probability cutout_p
    cutout_p: float = 0.5
    mean_fill: bool = False          # crop padding and cutout holes take the mean pixel (09)
    optimizer: str = "sgd"           # "sgd" (with momentum) or "adamw"
    lr: float = 0.01                 # learning rate (the start LR under OneCycle)
    momentum: float = DEFAULT_MOMENTUM  # SGD's (constant-LR recipes; OneCycle cycles it 0.95 -> 0.85 -> 0.95)
    nesterov: bool = False
    weight_decay: float = 0.0
    scheduler: Optional[str] = None  # None (constant LR) or "onecycle" (06 on)
    max_lr: float = 0.05             # OneCycle's peak LR
    pct_start: float = 0.25          # OneCycle's share of steps spent warming up
    hold_epochs: int = 0             # OneCycle ends this many epochs early; the LR then stays at its floor
    bn_momentum: Optional[float] = None  # BatchNorm's running-average momentum (None: PyTorch's 0.1)
    precise_bn: int = 0              # BatchNorm's statistics recomputed over this many clean training images before each evaluation
    label_smoothing: float = 0.0     # cross-entropy against 1 - eps on the true class (07)
    ema: Optional[float] = None      # evaluate an exponential moving average of the weights (07)
    cpu_precision: Optional[str] = None     # training precision on a CPU (None: the engine's choice)
    cpu_channels_last: Optional[bool] = None  # channels-last memory format on a CPU (None: no)

    def __post_init__(self):
        """Refuse, when the recipe is made: a NaN, an infinity or an out-of-range number in any field
        (:data:`RECIPE_RANGES`; a NaN rotation would blank every training image, a NaN LR every
        weight), an unknown dataset, and a momentum the schedule would silently overwrite
        (OneCycleLR cycles SGD's momentum between 0.95 and 0.85 itself, so a recipe's own
        ``momentum`` would never be used)."""
        for name, bounds in RECIPE_RANGES.items():
            try:
                check_optional(name, getattr(self, name), **bounds)
            except ValueError as err:
                raise ValueError(f"recipe {self.name!r}: {err}") from None
        datasets.get(self.dataset)
        if self.scheduler == "onecycle" and self.momentum != DEFAULT_MOMENTUM:
            raise ValueError(f"recipe {self.name!r} sets momentum={self.momentum}, but OneCycleLR cycles "
                             f"SGD's momentum between 0.85 and 0.95 itself and would ignore it; leave "
                             f"momentum at {DEFAULT_MOMENTUM}")

    @property
    def info(self) -> datasets.DatasetInfo:
        """The description of the recipe's dataset: what the layers below are handed, not its name."""
        return datasets.get(self.dataset)

    def make_augment(self):
        """The batched augmentation of the training images (None when there is none).

        With only ``rotation`` set this is exactly the course's random rotation (05, 06).
        Order: rotation/shift/zoom, crop, flip, cutout.
        """
        steps = []
        if self.rotation or self.translate or self.scale or self.elastic:
            steps.append(augment.RandomAffine(
                degrees=self.rotation, translate=(self.translate, self.translate) if self.translate else None,
                scale=(1 - self.scale, 1 + self.scale) if self.scale else None, elastic=self.elastic))
        mean = self.info.mean

        def filled(step):
            return augment.MeanFill(step, mean) if self.mean_fill else step

        if self.crop_padding:
            steps.append(filled(augment.RandomCrop(self.crop_padding, fill=0.0)))
        if self.flip:
            steps.append(augment.RandomHorizontalFlip(self.flip))
        if self.cutout:
            steps.append(filled(augment.Cutout(self.cutout, p=self.cutout_p)))
        if not steps:
            return None
        return steps[0] if len(steps) == 1 else augment.Compose(steps)

    def classic_transform(self) -> dict:
        """What the textbook pipeline (``fast=False``) can do of this augmentation: the options of
        :func:`eva_utils.data.classic_transforms`, as ``data.loaders(fast=False, augment=...)`` takes them."""
        if self.translate or self.scale or self.cutout:
            raise ValueError(f"recipe {self.name!r} shifts, zooms or cuts out, which only the fast loader "
                             "does; drop --classic")
        return {"rotation": self.rotation, "flip": self.flip, "crop_padding": self.crop_padding,
                "elastic": self.elastic}

    def speed(self, device, **overrides):
        """The engine's speed switches for this recipe on ``device`` (its automatic choices are
        made once per run, where the run starts: :func:`run` resolves them for its device).

        On a CPU a recipe may fix the precision and memory format (09's depthwise convs
        train faster in fp32 channels-last there: PyTorch's CPU backward of a depthwise
        conv is slow in bf16); ``overrides`` (the command line's) win.
        """
        settings = {}
        if torch.device(device).type == "cpu":
            if self.cpu_precision:
                settings["precision"] = self.cpu_precision
            if self.cpu_channels_last is not None:
                settings["channels_last"] = self.cpu_channels_last
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return engine.Speed(**settings)

    def step_options(self) -> engine.StepOptions:
        """What this recipe adds to each training step (:class:`eva_utils.engine.StepOptions`)."""
        return engine.StepOptions(label_smoothing=self.label_smoothing)

    def eval_options(self, loaders=None, label: str = "Test set") -> engine.EvalOptions:
        """What each epoch of this recipe scores (:class:`eva_utils.engine.EvalOptions`; ``loaders``:
        the run's, whose ``bn`` split precise BN recomputes the statistics over)."""
        bn_loader = None
        if self.precise_bn:
            if loaders is None or loaders.bn is None:
                raise ValueError(f"recipe {self.name!r} recomputes BatchNorm's statistics (precise_bn="
                                 f"{self.precise_bn}): build the loaders with Splits(bn_images={self.precise_bn})")
            bn_loader = loaders.bn
        return engine.EvalOptions(ema=self.ema, bn_loader=bn_loader, label=label)

    def check_epochs(self, epochs: int) -> None:
        """Refuse a run too short for this recipe's schedule: :meth:`run_settings` asks before any
        data is loaded, :meth:`make_optimizer` where the schedule is built."""
        if self.scheduler == "onecycle" and not 0 <= self.hold_epochs < epochs:
            raise ValueError(f"recipe {self.name!r} holds its LR at the floor for the last {self.hold_epochs} "
                             f"epochs after the OneCycle, so it needs at least {self.hold_epochs + 1} epochs, "
                             f"not {epochs}")

    def make_optimizer(self, model: torch.nn.Module, steps_per_epoch: int, epochs: Optional[int] = None):
        """The optimizer and the step's LR schedule (None when the LR is constant)."""
        epochs = epochs or self.epochs
        if self.optimizer == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum,
                                        nesterov=self.nesterov, weight_decay=self.weight_decay)
        elif self.optimizer == "adamw":
            optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        else:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; use 'sgd' or 'adamw'")
        if self.scheduler is None:
            return optimizer, None
        if self.scheduler == "onecycle":
            self.check_epochs(epochs)
            cycle_steps = steps_per_epoch * (epochs - self.hold_epochs)
            if cycle_steps * min(self.pct_start, 1 - self.pct_start) < 2:
                raise ValueError(f"OneCycleLR needs more steps than {cycle_steps} "
                                 f"({steps_per_epoch} per epoch x {epochs - self.hold_epochs}) to warm up "
                                 "and anneal; train on more images or smaller batches")
            # steps once per batch: warm up to max_lr, then anneal far below the start LR
            final_div = 100
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.max_lr, total_steps=cycle_steps,
                pct_start=self.pct_start, div_factor=self.max_lr / self.lr, final_div_factor=final_div)
            if self.hold_epochs:
                # the last epochs at the cycle's floor (start LR / 100): the weights settle, so
                # each of the last epochs scores the same network, not one still moving
                floor = torch.optim.lr_scheduler.ConstantLR(
                    optimizer, factor=1 / final_div, total_iters=steps_per_epoch * self.hold_epochs + 1)
                scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [scheduler, floor],
                                                                  milestones=[cycle_steps])
        else:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; use None or 'onecycle'")
        return optimizer, scheduler

    def run_settings(self, epochs: Optional[int] = None, train_limit: Optional[int] = None,
                     test_limit: Optional[int] = None) -> RunSettings:
        """The epochs/data of a run of this recipe: full, or quick under ``EVA_SMOKE``.

        What is given explicitly wins in both modes; quick mode only fills in what is not
        (one epoch plus the epochs the LR holds at its floor, a few hundred images), and the
        run stays marked quick: it is never judged nor saved as a result.
        """
        if quick_mode():
            settings = RunSettings(epochs or 1 + self.hold_epochs, train_limit or SMOKE_TRAIN_IMAGES,
                                   test_limit or SMOKE_TEST_IMAGES, quick=True)
        else:
            settings = RunSettings(epochs or self.epochs, train_limit, test_limit)
        self.check_epochs(settings.epochs)  # before any data is loaded
        return settings

    def with_(self, **changes) -> "Recipe":
        return replace(self, **changes)


#: The strength (alpha, px) of 05's and 06's elastic distortion: chosen on the validation split
#: (the appendix notebook 10, ninth round: final_elastic_16); Simard's 34 was more than 7,972 parameters carry.
ELASTIC_ALPHA = 16.0

#: Where notebook 07's design runs start (tools/stretch_design.py, ``start_w16``): 06's OneCycle in 6
#: epochs with a higher peak LR (fewer steps to use it) and no hold, rotation alone.
STRETCH_START = Recipe("07_stretch", "stretch", epochs=6, rotation=7.0, lr=0.01, nesterov=True,
                       scheduler="onecycle", max_lr=0.1)


#: One recipe per notebook; each changes one thing from the one before.
RECIPES: dict[str, Recipe] = {
    "skeleton": Recipe("01_skeleton", "skeleton"),
    "lighter": Recipe("02_lighter", "lighter"),
    "batchnorm": Recipe("03_batchnorm", "batchnorm"),
    "regularizer": Recipe("04_regularizer", "regularizer"),
    # 05: the data regularises instead of dropout: each training digit is turned by up to +-7 degrees
    # and bent by a mild elastic distortion (alpha 16: smooth moves of about half a pixel), one new draw per image
    "augmentation": Recipe("05_augmentation", "augmentation", rotation=7.0, elastic=ELASTIC_ALPHA),
    # 06: OneCycle (Nesterov momentum, peak LR 0.05) over the first 13 epochs, then 2 epochs at its
    # floor LR (the hold: each of the last 3 epochs scores the same settled network); before each
    # evaluation, BatchNorm's statistics are recomputed over 10,000 clean training images (precise
    # BN: the scored statistics belong to the scored weights). The data is 05's (rotation + mild
    # elastic distortion). tools/final_design.py (shown in the appendix, notebook 10) chose the hold, precise BN
    # and the distortion on the validation split (final_hold_2, final_precise_bn, final_elastic_16).
    "final": Recipe("06_optimizer", "final", rotation=7.0, elastic=ELASTIC_ALPHA, lr=0.005, nesterov=True,
                    scheduler="onecycle", max_lr=0.05, hold_epochs=2, precise_bn=10_000),
    # 07 (bonus): 6 epochs, < 3,600 parameters: the start with 05's augmentation (rotation + the mild
    # elastic distortion), 06's precise BN, and an EMA of the weights evaluated, on the all-separable
    # Stretch model. tools/stretch_design.py chose it on the validation split (all_separable_w22_ema).
    "stretch": STRETCH_START.with_(elastic=ELASTIC_ALPHA, precise_bn=10_000, ema=0.99),
    # 08 (bonus): Fashion-MNIST, the adapted model; the flip chosen on notebook 08's validation runs
    "fashion_adapted": Recipe("08_fashion_adapted", "fashion_adapted", dataset="fashion_mnist", flip=0.5,
                              lr=0.005, nesterov=True, scheduler="onecycle", max_lr=0.05),
    # 09 (bonus): CIFAR-10. SGD + Nesterov under OneCycle: warm up from 0.01 to 0.1 in the first
    # 25% of the steps, then anneal to 1e-4; weight decay 5e-4 (BN networks on CIFAR need it).
    "cifar_advanced": Recipe("09_cifar10_advanced_convs", "cifar_advanced", dataset="cifar10", epochs=20,
                             crop_padding=4, flip=0.5, cutout=8, cutout_p=0.5, mean_fill=True, lr=0.01,
                             nesterov=True, weight_decay=5e-4, scheduler="onecycle", max_lr=0.1,
                             cpu_precision="fp32", cpu_channels_last=True),
}


def get_recipe(name: str) -> Recipe:
    """The recipe named ``name`` (a key of :data:`RECIPES`, as ``--recipe`` takes it)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}") from None


@dataclass(frozen=True)
class Target:
    """What a run must show to meet a goal.

    ``last_epochs``: accuracy >= ``acc`` in each of the last N epochs (the course target).
    ``reach_by``: accuracy >= ``acc`` from some epoch <= ``reach_by`` on, through the
    last epoch (the stretch goal of notebook 07).
    Neither: the best accuracy of the run >= ``acc`` (08, 09). ``rf_above``: the receptive
    field before global pooling must exceed it (09).
    """

    name: str
    params: int
    acc: float = TARGET_ACC
    epochs: int = TARGET_EPOCHS
    last_epochs: Optional[int] = None
    reach_by: Optional[int] = None
    rf_above: Optional[int] = None

    def held_from(self, accs) -> Optional[int]:
        """The 1-based epoch from which every accuracy is >= ``acc`` (None if the last one is not)."""
        first = None
        for epoch in range(len(accs), 0, -1):
            if accs[epoch - 1] < self.acc:
                break
            first = epoch
        return first


#: <8k parameters, >= 99.40% in each of the last 3 of at most 15 epochs (notebook 06).
COURSE_TARGET = Target("Course target", TARGET_PARAMS, last_epochs=TARGET_LAST_EPOCHS)
#: <3.6k parameters, >= 99.40% reached by epoch 6 and held to the last epoch (notebook 07).
STRETCH_TARGET = Target("Stretch target", 3600, epochs=6, reach_by=6)


#: Fashion-MNIST (notebook 08): < 8,000 parameters, best test accuracy >= 90% within 15 epochs.
FASHION_TARGET = Target("Fashion-MNIST target", TARGET_PARAMS, acc=90.0)
#: CIFAR-10 (notebook 09): < 200k parameters, RF > 44 before GAP, best >= 85% within 20 epochs.
CIFAR_TARGET = Target("CIFAR-10 target", 200_000, acc=85.0, epochs=20, rf_above=44)

#: The goal of each recipe that is not the course target.
OWN_TARGETS = {"stretch": STRETCH_TARGET, "fashion_adapted": FASHION_TARGET, "cifar_advanced": CIFAR_TARGET}


def target_for(step: str) -> Target:
    """The goal a step's runs are measured against (a recipe's name, as the CLI takes it)."""
    return OWN_TARGETS.get(step, COURSE_TARGET)


def target_report(history, epochs_allowed: Optional[int] = None, target: Target = COURSE_TARGET,
                  rf: Optional[int] = None) -> tuple[bool, str]:
    """(met?, one line) comparing a run with ``target`` (the course target by default).

    ``rf``: the model's receptive field before global pooling, for a target with ``rf_above``.
    """
    epochs_allowed = epochs_allowed or target.epochs
    params = history.meta["params"]
    ok_params = params < target.params
    ok_epochs = len(history) <= epochs_allowed
    if target.last_epochs:
        last = history.last(target.last_epochs)
        ok_acc = len(last) == target.last_epochs and all(a >= target.acc for a in last)
        lasts = ", ".join(f"{a:.2f}%" for a in last)
        acc_text = (f"last {target.last_epochs} test accuracies [{lasts}] "
                    f"{'>=' if ok_acc else 'not all >='} {target.acc:.2f}%")
        if last and not ok_acc:
            acc_text += f" (the lowest is {target.acc - min(last):.2f} points short)"
    elif target.reach_by:
        held = target.held_from(history.test_acc)
        ok_acc = held is not None and held <= target.reach_by
        acc_text = (f">= {target.acc:.2f}% from epoch {held} through the last "
                    f"({history.test_acc[-1]:.2f}%)" if held is not None else
                    f"last test accuracy {history.test_acc[-1]:.2f}% < {target.acc:.2f}%")
        acc_text += f" ({'reached by' if ok_acc else 'not reached by'} epoch {target.reach_by})"
    else:
        best, epoch = history.best_test
        ok_acc = best >= target.acc
        acc_text = (f"best test accuracy {best:.2f}% (epoch {epoch}) {'>=' if ok_acc else '<'} {target.acc:.2f}%"
                    + ("" if ok_acc else f" ({target.acc - best:.2f} points short)"))
    if target.rf_above is not None:
        if rf is None:
            raise ValueError(f"{target.name} needs the receptive field before GAP (rf=...)")
        ok_rf = rf > target.rf_above
        acc_text += f"; RF before GAP {rf} {'>' if ok_rf else 'not >'} {target.rf_above}"
        ok_acc = ok_acc and ok_rf
    met = ok_acc and ok_params and ok_epochs
    line = (f"{target.name} {'MET' if met else 'NOT MET'}: {acc_text}; "
            f"{params:,} parameters {'<' if ok_params else 'not <'} {target.params:,}; "
            f"{len(history)} epochs {'<=' if ok_epochs else '>'} {epochs_allowed}")
    return met, line


def last_min(history, target: Target = COURSE_TARGET) -> float:
    """The lowest test accuracy of the last ``target.last_epochs`` epochs: the margin's measure."""
    return min(history.last(target.last_epochs or 1))


def seeds_summary(histories: dict, target: Target = COURSE_TARGET) -> dict:
    """Over seeds (seed -> history): how many met ``target``, and the mean, lowest and spread of
    each seed's last-3 minimum (a 0.1-point spread means one seed's verdict is luck)."""
    mins = {seed: last_min(h, target) for seed, h in histories.items()}
    met = [seed for seed, h in histories.items() if target_report(h, target=target)[0]]
    worst = min(mins, key=mins.get)
    return {"seeds": list(histories), "met": met, "mins": mins, "mean_min": sum(mins.values()) / len(mins),
            "lowest": mins[worst], "lowest_seed": worst, "spread": max(mins.values()) - mins[worst]}


@dataclass
class Run:
    """What :func:`run` trained: the model (evaluated weights), its history and its loaders, and
    where the history was saved (None: not saved)."""

    model: torch.nn.Module
    history: object
    loaders: object
    recipe: Recipe
    seed: int
    saved: Optional[Path] = None


def set_bn_momentum(model: torch.nn.Module, momentum: float) -> int:
    """Set every BatchNorm layer's running-average momentum; returns how many there are.

    The running mean and variance the network is evaluated with are an exponential
    average over training batches: with PyTorch's 0.1 they follow the last ~10 batches,
    so two evaluations of the same weights differ by a few hundredths of a point on
    MNIST. A smaller momentum averages over more batches (0.01: ~100).
    """
    if not 0 < momentum <= 1:
        raise ValueError(f"bn_momentum must be in (0, 1] (PyTorch's default is 0.1), got {momentum}")
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.momentum = momentum
    return len(layers)


def saved_as(recipe: Recipe, settings: RunSettings, save=None, *, valid_size: int = 0,
             custom_augment: bool = False, custom_model: bool = False) -> Optional[str]:
    """The name (``results/<name>.json``) a run's history is saved under, or None.

    ``save``: None (the default) saves the course step's own run, and only it, under the step's
    name: a recipe of :data:`RECIPES` as it is, for its full epochs on every image, evaluated on
    the test set, on the step's own model (a changed recipe or model, a validation or quick run
    is an experiment, not the step).
    False never saves; True saves under the recipe's name; a string under that name. A quick
    (``EVA_SMOKE``) run is never saved, whatever ``save`` says: it must not replace a real result.
    """
    if settings.quick or save is False:
        return None
    if isinstance(save, str):
        if not save.strip() or "/" in save or save.startswith("."):
            raise ValueError(f"save={save!r} is not a file name for results/<name>.json; give a name such as "
                             f"{recipe.name + '_seed2'!r}, or save=False")
        return save
    if save is True:
        return recipe.name
    if save is not None:
        raise ValueError(f"save={save!r}: give None (the course step's full run is saved), False, True or a name")
    full = (settings.train_limit is None and settings.test_limit is None and settings.epochs == recipe.epochs)
    course_step = recipe in RECIPES.values()
    return (recipe.name if course_step and full and not valid_size and not custom_augment and not custom_model
            else None)


def is_registered_model(model: torch.nn.Module, recipe: Recipe) -> bool:
    """Whether ``model`` is the step's own network: the class and parameter count of
    ``models.build(recipe.model)`` (a notebook's copy of the class counts; other widths do not).
    Building the comparison draws no random numbers the run would otherwise have drawn."""
    with torch.random.fork_rng(devices=[]):
        registered = models.build(recipe.model)
    return (type(model).__name__ == type(registered).__name__
            and engine.count_parameters(model) == engine.count_parameters(registered))


def run(recipe: Recipe, seed: int = 1, *, device=None, settings: Optional[RunSettings] = None,
        valid_size: int = 0, fast: bool = True, root=None, speed=None, checkpoint_dir=None,
        progress: bool = True, verbose: bool = True, model_kwargs: Optional[dict] = None,
        model: Optional[torch.nn.Module] = None, augment=None, save=None) -> Run:
    """Train ``recipe`` from ``seed``: the one path behind the CLI and the notebooks' loops.

    Order: seed everything, draw the weights, build the loaders (their shuffling and
    augmentation use their own generator seeded with ``seed``), then fit. With
    ``valid_size`` > 0 the last ``valid_size`` training images are held out and every
    epoch is evaluated on them instead of the test set (for design choices).

    The facts a run rests on are settled once, here, and handed down: the dataset's
    description (``recipe.info``), the device and the speed switches (resolved for it).

    ``model``: a network the caller built (a notebook's own class, which a student may
    edit) instead of ``recipe.model`` from the registry. The caller has drawn its weights
    after ``engine.seed_everything(seed)``, so nothing is re-seeded here: the run is then
    exactly the command line's for the same class and seed.

    ``augment``: a batched augmentation (:mod:`eva_utils.augment`) used instead of the
    recipe's, for design searches that try one a Recipe has no field for (a slant,
    bilinear rotation); fast path only.

    The history records the device and the machine (``meta["device_name"]``, ``meta["machine"]``)
    and, for the course step's full run, is saved as ``results/<step>.json`` for later notebooks
    (:func:`saved_as` says when; ``save`` overrides it; ``Run.saved`` says where it went).
    """
    settings = settings or recipe.run_settings()  # run_settings checks the epochs, before any data
    if augment is not None and not fast:
        raise ValueError("a custom augment is batched, for the fast path only; drop fast=False")
    augmentation = (recipe.make_augment() if augment is None else augment) if fast else recipe.classic_transform()
    custom_model = bool(model_kwargs) or (model is not None and save is None and not is_registered_model(model, recipe))
    name = saved_as(recipe, settings, save, valid_size=valid_size, custom_augment=augment is not None,
                    custom_model=custom_model)
    if name is not None:
        histories.check_results_dir(quick=False)  # a folder it cannot write to fails now, not after training
    info = recipe.info
    device = pick_device(device)
    speed = (speed or recipe.speed(device)).resolve(device)
    if model is None:
        engine.seed_everything(seed)
        model = models.build(recipe.model, **(model_kwargs or {}))
    models.check_output(model, info)  # [batch, classes], before any data is loaded
    loaders = data.loaders(recipe.batch_size, dataset=info, device=device, seed=seed, fast=fast, augment=augmentation,
                           splits=data.Splits(settings.train_limit, settings.test_limit, valid_size, recipe.precise_bn),
                           root=root)
    if recipe.bn_momentum is not None:
        set_bn_momentum(model, recipe.bn_momentum)
    optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), settings.epochs)
    evaluated_on = loaders.valid if valid_size else loaders.test
    checkpoints = (engine.Checkpoints(checkpoint_dir, {"quick": True} if settings.quick else {})
                   if checkpoint_dir is not None else None)
    history = engine.fit(model, settings.epochs, loaders.train, evaluated_on, optimizer, scheduler,
                         device=device, speed=speed, step=recipe.step_options(),
                         evaluation=recipe.eval_options(loaders, "Validation set" if valid_size else "Test set"),
                         checkpoints=checkpoints, progress=progress, verbose=verbose)
    history.meta.update(seed=seed, recipe=recipe.name, valid_size=valid_size,
                        device_name=device_description(device), machine=machine_description())
    path = histories.save_history(history, name) if name is not None else None
    return Run(model, history, loaders, recipe, seed, path)


def run_variants(variants: dict, seed: int = 1, *, valid_size: int = 0, device=None,
                 settings: Optional[RunSettings] = None, progress: bool = False) -> list[dict]:
    """Train each recipe of ``variants`` (name -> Recipe, or (Recipe, model kwargs)) from one seed.

    Returns one row per variant: name, params, the accuracy of every epoch, and the
    history. With ``valid_size`` the accuracies are on the held-out validation images
    (design choices); without, on the test set (what a choice bought, reported).
    """
    rows = []
    for name, variant in variants.items():
        recipe, model_kwargs = variant if isinstance(variant, tuple) else (variant, None)
        print(f"--- {name}: {recipe.name}" + (f" {model_kwargs}" if model_kwargs else ""), flush=True)
        result = run(recipe, seed, device=device, settings=settings, valid_size=valid_size,
                     progress=progress, verbose=False, model_kwargs=model_kwargs, save=False)
        h = result.history
        print(f"    {h.meta['params']:,} params; accuracy by epoch: "
              + ", ".join(f"{a:.2f}" for a in h.test_acc), flush=True)
        rows.append({"name": name, "params": h.meta["params"], "acc": list(h.test_acc),
                     "split": "validation" if valid_size else "test", "history": h})
    return rows


def stretch_frontier() -> dict:
    """Stretch widths (conv1, conv2, trans1, block 2) for about 2k, 3k, 3.5k (the chosen), 5k and 8k parameters."""
    return {
        "~2k": {"widths": (8, 16, 8, 16)},
        "~3k": {"widths": (8, 20, 10, 19)},
        "~3.5k (the chosen)": {"widths": (10, 24, 10, 22)},
        "~5k": {"widths": (12, 28, 12, 28)},
        "~8k": {"widths": (16, 40, 16, 36)},
    }
