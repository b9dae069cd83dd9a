"""What a run measured (:class:`History`), and the one place histories are written and read.

Each notebook's full run is kept as ``results/<step>.json`` so later notebooks can compare
with it. Where histories live:

* a run writes its history to ``results/<step>.json`` in the folder it runs in
  (``$EVA_RESULTS`` if set), never into the installed package (:func:`save_history`;
  :func:`eva_utils.recipes.run` calls it for a course step's full run);
* a notebook reads an earlier step's history from that same folder when the student
  has run that step there, else from the course's reference runs shipped inside the
  package (``eva_utils/results``, read with :mod:`importlib.resources`), so it works
  from a clone, an editable or a plain pip install, and on Colab alike (:func:`load_history`).

Instructors' ``make notebooks`` sets ``$EVA_RESULTS`` to the repository's
``eva_utils/results``, so a full re-run refreshes the reference runs that ship.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from .fsutil import atomic_write_text, check_writable_dir, describe, remove_stale_temps

#: Environment variable naming the folder runs write their histories to.
RESULTS_ENV = "EVA_RESULTS"


@dataclass
class History:
    """What a run measured, one entry per epoch. Notebooks render Results from it."""

    epoch: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_acc: list = field(default_factory=list)
    test_correct: list = field(default_factory=list)
    test_total: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    batch_lr: list = field(default_factory=list)  # the LR of every optimizer step
    batch_momentum: list = field(default_factory=list)  # its momentum (SGD) or first beta (Adam)
    seconds: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def add(self, **values) -> None:
        for key, value in values.items():
            getattr(self, key).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    @property
    def best_test(self) -> tuple[float, int]:
        """(best test accuracy, the 1-based epoch it was first reached)."""
        i = int(np.argmax(self.test_acc))
        return self.test_acc[i], self.epoch[i]

    @property
    def best_train(self) -> tuple[float, int]:
        i = int(np.argmax(self.train_acc))
        return self.train_acc[i], self.epoch[i]

    def last(self, n: int = 3) -> list:
        return self.test_acc[-n:]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)


# ----------------------------------------------------------------------------- where they live


def history_dir() -> Path:
    """Where this run's histories go: ``$EVA_RESULTS`` (``~`` expanded; blank means unset), else
    ``results/`` in the working folder."""
    value = os.environ.get(RESULTS_ENV, "")
    return Path(value).expanduser() if value.strip() else Path("results")


def check_results_dir(quick: bool) -> Optional[Path]:
    """At a notebook's start, not after its full run: the folder its history will be written to
    (:func:`history_dir`) must be writable. A quick run writes nothing, so nothing is checked."""
    if quick:
        return None
    what = f"${RESULTS_ENV}" if os.environ.get(RESULTS_ENV, "").strip() else "the results folder"
    return check_writable_dir(history_dir(), what)


def course_results():
    """The course's reference runs, shipped inside the package (an importlib.resources Traversable)."""
    return resources.files("eva_utils") / "results"


# ----------------------------------------------------------------------------- writing


def write_history(history: History, path) -> Path:
    """Write ``history`` as JSON to ``path`` atomically (a unique temporary file, then renamed),
    after removing what a write killed by SIGKILL left there."""
    path = Path(path)
    remove_stale_temps(path.parent, [path.name])
    atomic_write_text(path, json.dumps(history.to_dict(), indent=1))
    return path


def drop_per_step(history: History) -> History:
    """Empty the per-step lists (LR and momentum) of a history about to ship with the package:
    they are the recipe's schedule, the same for every run of it, and hundreds of kilobytes each."""
    for key in _STEP_FIELDS:
        setattr(history, key, [])
    return history


def save_history(history: History, step: str, quick: bool = False, results_dir: Optional[Path] = None) -> Optional[Path]:
    """Keep a full run's history as ``results/<step>.json`` (see :func:`history_dir`) for later notebooks.

    A quick (EVA_SMOKE) run is never saved: it must not replace a real result.
    """
    if quick:
        return None
    return write_history(history, Path(results_dir or history_dir()) / f"{step}.json")


# ----------------------------------------------------------------------------- reading


#: The per-epoch lists of a saved history (one entry per epoch); ``batch_lr`` has one per step.
_EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "test_correct", "test_total",
                 "lr", "seconds")
#: The per-step lists (any length; empty where a tool stripped them from a shipped history).
_STEP_FIELDS = ("batch_lr", "batch_momentum")
#: Fields added after histories were first saved: a file without one reads it as empty.
_LATER_FIELDS = ("batch_momentum",)


def parse_history(raw: bytes, step: str, recipe: Optional[str] = None) -> History:
    """A saved history, checked: a JSON object with exactly :class:`History`'s fields, one number
    per epoch in each list, and (``recipe``: the recipe a run of ``step`` records) no other
    recipe's run. Raises ValueError saying what is wrong (the caller names the file)."""
    try:
        d = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("it is not text (binary data)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"it is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(d, dict):
        raise ValueError(f"it holds a JSON {type(d).__name__}, not a history object")
    for key in _LATER_FIELDS:
        d.setdefault(key, [])
    fields = set(History.__dataclass_fields__)
    if set(d) != fields:
        missing, extra = sorted(fields - set(d)), sorted(set(d) - fields)
        raise ValueError("its keys are not a history's ("
                         + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                     + ([f"unexpected {', '.join(extra)}"] if extra else [])) + ")")
    n = len(d["epoch"]) if isinstance(d["epoch"], list) else -1
    for key in (*_EPOCH_FIELDS, *_STEP_FIELDS):
        value = d[key]
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in value):
            raise ValueError(f"its {key!r} is not a list of numbers")
        if key not in _STEP_FIELDS and len(value) != n:
            raise ValueError(f"its {key!r} has {len(value)} entries for {n} epochs")
    if n < 1:
        raise ValueError("it records no epoch")
    meta = d["meta"]
    if not isinstance(meta, dict) or not isinstance(meta.get("params"), int):
        raise ValueError("its 'meta' has no parameter count")
    recorded = meta.get("recipe")
    if recipe is not None and recorded is not None and recorded != recipe:  # a run of fit() records none
        raise ValueError(f"it holds a run of {recorded}, not of {recipe}")
    return History.from_dict(d)


def _reference_recipe(shipped) -> Optional[str]:
    """The recipe the course's reference run of a step records (None if it has none, or is unreadable:
    the fallback then says so). Why this way: the recipes sit a floor above, and the reference run
    says which recipe a step's run is one of."""
    try:
        meta = json.loads(shipped.read_bytes()).get("meta")
    except (OSError, ValueError, AttributeError):
        return None
    return meta.get("recipe") if isinstance(meta, dict) else None


def load_history(step: str, results_dir: Optional[Path] = None) -> History:
    """An earlier step's full-run history: this folder's own run if there is one, else the course's.

    ``meta["source"]`` says which: the file's path, or ``"course reference run"``. An own file
    that is not a history of ``step`` (truncated, edited, another step's) is not used: one line
    on stderr names it and says the course's reference run is shown instead.
    """
    own = Path(results_dir or history_dir()) / f"{step}.json"
    shipped = course_results() / f"{step}.json"
    recipe = _reference_recipe(shipped) if shipped.is_file() else None
    if own.is_file():
        try:
            history = parse_history(own.read_bytes(), step, recipe)
            history.meta["source"] = str(own)
            return history
        except (ValueError, OSError) as err:
            why = err if isinstance(err, ValueError) else describe(err)
            print(f"warning: {own} is not a usable history of {step} ({why}); showing the course's reference "
                  f"run instead (run notebook {step} in full here to replace the file)", file=sys.stderr)
    if not shipped.is_file():
        raise FileNotFoundError(f"no history for step {step!r}: neither {own} (run notebook {step} in full "
                                "here) nor a course reference run in the package")
    try:
        history = parse_history(shipped.read_bytes(), step)
    except ValueError as err:
        raise ValueError(f"the course's reference run {shipped} is damaged ({err}); reinstall eva_utils") from None
    history.meta["source"] = "course reference run"
    return history
