"""Results as Markdown, rendered from a run's history so no number is typed by hand.

Each notebook shows a placeholder under its Target at the top
(:func:`results_placeholder`) and fills it at the end (:func:`show_results`), so the
Results at the top of a committed notebook are the numbers of that notebook's own run.

Where histories live (later notebooks compare with earlier steps' runs):

* a notebook writes its full run's history to ``results/<step>.json`` in the folder it
  runs in (``$EVA_RESULTS`` if set), never into the installed package;
* a notebook reads an earlier step's history from that same folder when the student
  has run that step there, else from the course's reference runs shipped inside the
  package (``eva_utils/results``, read with :mod:`importlib.resources`), so it works
  from a clone, an editable or a plain pip install, and on Colab alike.

Instructors' ``make notebooks`` sets ``$EVA_RESULTS`` to the repository's
``eva_utils/results``, so a full re-run refreshes the reference runs that ship.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Optional, Sequence

import torch

from . import recipes
from .engine import History
from .fsutil import check_writable_dir, describe, remove_stale_temps

RESULTS_DISPLAY_ID = "eva-results"

#: Environment variable naming the folder notebooks write their histories to.
RESULTS_ENV = "EVA_RESULTS"


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


def save_history(history, step: str, quick: bool = False, results_dir: Optional[Path] = None) -> Optional[Path]:
    """Keep a full run's history as ``results/<step>.json`` (see :func:`history_dir`) for later notebooks.

    A quick (EVA_SMOKE) run is never saved: it must not replace a real result.
    """
    if quick:
        return None
    path = Path(results_dir or history_dir()) / f"{step}.json"
    remove_stale_temps(path.parent, [path.name])  # what a save killed by SIGKILL left
    history.save(path)
    return path


#: The per-epoch lists of a saved history (one entry per epoch); ``batch_lr`` has one per step.
_EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "test_correct", "test_total",
                 "lr", "seconds")


def _recipe_of(step: str) -> Optional[str]:
    """The recipe a history named ``step`` must record: the course step's own (``04_regularizer``,
    ``09_..._seed2``), or None for a design run, which records the recipe it started from."""
    names = sorted((r.name for r in recipes.RECIPES.values()), key=len, reverse=True)
    return next((n for n in names if step == n or step.startswith(n + "_")), None)


def parse_history(raw: bytes, step: str) -> History:
    """A saved history, checked: a JSON object with exactly :class:`History`'s fields, one number
    per epoch in each list, and (for a course step) no other step's recipe. Raises ValueError
    saying what is wrong (the caller names the file)."""
    import json

    try:
        d = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("it is not text (binary data)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"it is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    if not isinstance(d, dict):
        raise ValueError(f"it holds a JSON {type(d).__name__}, not a history object")
    fields = set(History.__dataclass_fields__)
    if set(d) != fields:
        missing, extra = sorted(fields - set(d)), sorted(set(d) - fields)
        raise ValueError("its keys are not a history's ("
                         + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                     + ([f"unexpected {', '.join(extra)}"] if extra else [])) + ")")
    n = len(d["epoch"]) if isinstance(d["epoch"], list) else -1
    for key in (*_EPOCH_FIELDS, "batch_lr"):
        value = d[key]
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                  for v in value):
            raise ValueError(f"its {key!r} is not a list of numbers")
        if key != "batch_lr" and len(value) != n:
            raise ValueError(f"its {key!r} has {len(value)} entries for {n} epochs")
    if n < 1:
        raise ValueError("it records no epoch")
    meta = d["meta"]
    if not isinstance(meta, dict) or not isinstance(meta.get("params"), int):
        raise ValueError("its 'meta' has no parameter count")
    expected, recorded = _recipe_of(step), meta.get("recipe")
    if expected is not None and recorded is not None and recorded != expected:  # a run of fit() records none
        raise ValueError(f"it holds a run of {recorded}, not of {expected}")
    return History.from_dict(d)


def load_history(step: str, results_dir: Optional[Path] = None):
    """An earlier step's full-run history: this folder's own run if there is one, else the course's.

    ``meta["source"]`` says which: the file's path, or ``"course reference run"``. An own file
    that is not a history of ``step`` (truncated, edited, another step's) is not used: one line
    on stderr names it and says the course's reference run is shown instead.
    """
    own = Path(results_dir or history_dir()) / f"{step}.json"
    if own.is_file():
        try:
            history = parse_history(own.read_bytes(), step)
            history.meta["source"] = str(own)
            return history
        except (ValueError, OSError) as err:
            why = err if isinstance(err, ValueError) else describe(err)
            print(f"warning: {own} is not a usable history of {step} ({why}); showing the course's reference "
                  f"run instead (run notebook {step} in full here to replace the file)", file=sys.stderr)
    shipped = course_results() / f"{step}.json"
    if not shipped.is_file():
        raise FileNotFoundError(f"no history for step {step!r}: neither {own} (run notebook {step} in full "
                                "here) nor a course reference run in the package")
    try:
        history = parse_history(shipped.read_bytes(), step)
    except ValueError as err:
        raise ValueError(f"the course's reference run {shipped} is damaged ({err}); reinstall eva_utils") from None
    history.meta["source"] = "course reference run"
    return history


def step_rows(steps: Sequence[str], current: Optional[dict] = None, results_dir: Optional[Path] = None) -> list:
    """Rows (name, params, best_acc, best_epoch, last3) for earlier steps' saved runs and this one."""
    histories = {s: load_history(s, results_dir) for s in steps}
    histories.update(current or {})
    rows = []
    for name, h in histories.items():
        best, epoch = h.best_test
        rows.append({"name": name, "params": h.meta["params"], "best_acc": best,
                     "best_epoch": epoch, "last3": h.last(3)})
    return rows


def shown_path(path) -> str:
    """A path as a notebook shows it: under the home folder as ``~/...``, so committed outputs
    name where a student's copy lives, not the build machine's home."""
    path = Path(path).expanduser().absolute()
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def device_description(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def results_markdown(history, title: str = "Results", quick: bool = False,
                     target_line: Optional[str] = None) -> str:
    """The Results block: params, best train/test accuracy, epoch, last 3, time, device.

    ``target_line`` states the verdict against a notebook's own target; by default the
    MNIST course target (:func:`eva_utils.recipes.target_report`).
    """
    best_test, best_epoch = history.best_test
    best_train, train_epoch = history.best_train
    last = ", ".join(f"{a:.2f}%" for a in history.last(3))
    total_s = sum(history.seconds)
    if target_line is None:
        _, target_line = recipes.target_report(history)
    lines = [
        f"### {title}",
        "",
        "| measured | value |",
        "|---|---|",
        f"| parameters | {history.meta['params']:,} |",
        f"| best train accuracy | {best_train:.2f}% (epoch {train_epoch}) |",
        f"| best test accuracy | {best_test:.2f}% (epoch {best_epoch}) |",
        f"| last 3 test accuracies | {last} |",
        f"| last-epoch gap (train - test) | {history.train_acc[-1] - history.test_acc[-1]:+.2f} points |",
        f"| epochs | {len(history)} |",
        f"| training time | {total_s:.0f} s ({total_s / max(len(history), 1):.1f} s/epoch) on "
        f"{history.meta.get('device_name', history.meta.get('device', '?'))} |",
        "",
        f"*{target_line}.*",
    ]
    if quick:
        lines += ["", "**Quick mode (EVA_SMOKE): a few hundred images, one epoch (plus any held at the floor LR). "
                  "Not a real result.**"]
    return "\n".join(lines)


def start_notebook() -> float:
    """The set-up every notebook shares: the results folder checked (:func:`check_results_dir`),
    figures inline, the Results slot at the top, the clock.

    Returns the start time that :func:`run_header` reports.
    """
    check_results_dir(recipes.quick_mode())  # a read-only $EVA_RESULTS now, not after the full run
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:  # plain Python: no notebook to set up
        pass
    results_placeholder()
    return time.time()


def results_placeholder() -> None:
    """Display the slot that :func:`show_results` fills with the run's Results."""
    from IPython.display import Markdown, display

    display(Markdown("*Results appear here when the notebook has run to the end.*"),
            display_id=RESULTS_DISPLAY_ID)


def show_results(history, title: str = "Results", quick: bool = False,
                 target_line: Optional[str] = None) -> str:
    """Render the Results, both here and in the placeholder at the top of the notebook."""
    from IPython.display import Markdown, display, update_display

    text = results_markdown(history, title, quick, target_line)
    update_display(Markdown(text), display_id=RESULTS_DISPLAY_ID)
    display(Markdown(text))
    return text


def seeds_markdown(histories: dict, target: "recipes.Target" = recipes.COURSE_TARGET, judged: bool = True) -> str:
    """A table of per-seed results (seed -> history) with the verdict of each against ``target``
    (``judged=False``, for quick-mode runs: "not judged" instead of a verdict)."""
    if target.last_epochs:
        rows = ["| seed | params | best test (epoch) | last 3 test accuracies | lowest of last 3 | target |",
                "|---|---|---|---|---|---|"]
    else:
        rows = [f"| seed | params | test accuracy by epoch | >= {target.acc:.2f}% from epoch | target |",
                "|---|---|---|---|---|"]
    for seed, h in histories.items():
        met, _ = recipes.target_report(h, target=target)
        verdict = ("met" if met else "NOT met") if judged else "not judged"
        if target.last_epochs:
            best, ep = h.best_test
            last = ", ".join(f"{a:.2f}" for a in h.last(3))
            rows.append(f"| {seed} | {h.meta['params']:,} | {best:.2f}% ({ep}) | {last} | "
                        f"{recipes.last_min(h, target):.2f}% | {verdict} |")
        else:
            accs = ", ".join(f"{a:.2f}" for a in h.test_acc)
            held = target.held_from(h.test_acc)
            rows.append(f"| {seed} | {h.meta['params']:,} | {accs} | {held if held else '-'} | {verdict} |")
    return "\n".join(rows)


def seeds_summary_line(histories: dict, target: "recipes.Target" = recipes.COURSE_TARGET) -> str:
    """One line under a seeds table: how many met the target; mean, lowest and spread of the last-3 minimum."""
    s = recipes.seeds_summary(histories, target)
    return (f"{target.name} met by {len(s['met'])}/{len(s['seeds'])} seeds. Lowest of the last "
            f"{target.last_epochs or 1}: mean {s['mean_min']:.2f}%, lowest {s['lowest']:.2f}% "
            f"(seed {s['lowest_seed']}), spread {s['spread']:.2f} points.")


def variants_markdown(rows: Sequence[dict], epoch: Optional[int] = None, reference: Optional[str] = None) -> str:
    """Rows from :func:`eva_utils.recipes.run_variants` as a table of accuracy at ``epoch``.

    ``epoch`` defaults to the last one; ``reference`` names the row the others are
    compared with (the difference column).
    """
    def at(r):
        return r["acc"][(epoch or len(r["acc"])) - 1]

    split = rows[0]["split"] if rows else "test"
    ref = next((at(r) for r in rows if r["name"] == reference), None)
    head = f"| variant | params | {split} accuracy at epoch {epoch or len(rows[0]['acc'])} |"
    out = [head + (f" vs {reference} |" if ref is not None else ""),
           "|---|---|---|" + ("---|" if ref is not None else "")]
    for r in rows:
        line = f"| {r['name']} | {r['params']:,} | {at(r):.2f}% |"
        if ref is not None:
            line += " - |" if r["name"] == reference else f" {at(r) - ref:+.2f} |"
        out.append(line)
    return "\n".join(out)


def design_markdown(groups: dict, target: "recipes.Target" = recipes.COURSE_TARGET) -> str:
    """Candidates run from several seeds (name -> {seed: history}) as one table, best first by the
    mean of their seeds' lowest accuracy of the last ``target.last_epochs`` epochs: the margin a
    recipe keeps, which is what the target asks of every seed."""
    n = target.last_epochs or 1
    rows = []
    for name, histories in groups.items():
        s = recipes.seeds_summary(histories, target)
        per_seed = "; ".join(f"{seed}: " + ", ".join(f"{a:.2f}" for a in h.last(n)) for seed, h in histories.items())
        train = sum(h.train_acc[-1] for h in histories.values()) / len(histories)
        params = next(iter(histories.values())).meta["params"]
        rows.append((s["mean_min"], f"| {name} | {params:,} | {per_seed} | {s['mean_min']:.2f}% | "
                                    f"{s['lowest']:.2f}% | {train:.2f}% |"))
    head = ["| candidate | params | last " + str(n) + " accuracies by seed | mean of the lowest | lowest | "
            "train accuracy, last epoch |", "|---|---|---|---|---|---|"]
    return "\n".join(head + [line for _, line in sorted(rows, key=lambda r: -r[0])])


def load_design_runs(prefix: str, names: dict, seeds) -> dict:
    """The saved design runs ``<prefix>_<name>_s<seed>`` (see :func:`load_history`) as
    label -> {seed: history}, for ``names`` = {label shown: saved name}."""
    return {label: {seed: load_history(f"{prefix}_{name}_s{seed}") for seed in seeds}
            for label, name in names.items()}


def compare_markdown(histories: dict, split: str = "test", timing: bool = False) -> str:
    """Runs side by side (name -> history): params, best and last 3 accuracies, and the last-epoch
    train - ``split`` gap (``timing``: seconds per epoch too).

    The ablation tables of notebooks 04 and 05 and the comparisons of 08: what each change
    bought, measured.
    """
    head = f"| run | params | best {split} (epoch) | last 3 {split} accuracies | last-epoch gap (train - {split}) |"
    rule = "|---|---|---|---|---|"
    if timing:
        head, rule = head + " s/epoch |", rule + "---|"
    out = [head, rule]
    for name, h in histories.items():
        best, epoch = h.best_test
        last = ", ".join(f"{a:.2f}" for a in h.last(3))
        row = (f"| {name} | {h.meta['params']:,} | {best:.2f}% ({epoch}) | {last} | "
               f"{h.train_acc[-1] - h.test_acc[-1]:+.2f} points |")
        if timing:
            row += f" {sum(h.seconds) / max(len(h), 1):.1f} |"
        out.append(row)
    return "\n".join(out)


def per_class_markdown(accuracies: dict) -> str:
    """{model label: {class: accuracy %}} side by side, one row per class
    (from :func:`eva_utils.plots.per_class_accuracy`)."""
    labels = list(accuracies)
    classes = list(next(iter(accuracies.values())))
    rows = ["| class | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name in classes:
        rows.append(f"| {name} | " + " | ".join(f"{accuracies[k][name]:.1f}%" for k in labels) + " |")
    return "\n".join(rows)


def checksum_markdown(rows: Sequence[dict]) -> str:
    """Raw files with their expected and measured MD5s (:func:`eva_utils.sources.fashion_checksum_rows`)."""
    out = ["| file | bytes | expected MD5 (original files) | measured MD5 | verified |", "|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{r['file']}` | {r['bytes']:,} | `{r['expected']}` | `{r['md5']}` | "
                   f"{'yes' if r['ok'] else '**NO**'} |")
    return "\n".join(out)


def steps_markdown(rows: Sequence[dict]) -> str:
    """The course's steps side by side (rows: name, params, best_acc, best_epoch, last3)."""
    out = ["| step | params | best test (epoch) | last 3 test accuracies |", "|---|---|---|---|"]
    for r in rows:
        last = ", ".join(f"{a:.2f}" for a in r["last3"])
        out.append(f"| {r['name']} | {r['params']:,} | {r['best_acc']:.2f}% ({r['best_epoch']}) | {last} |")
    return "\n".join(out)


def run_header(device, quick: bool, started: Optional[float] = None) -> str:
    """One line saying where and when this notebook ran (shown in its header)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started or time.time()))
    mode = "QUICK MODE (EVA_SMOKE), not a real run" if quick else "full run"
    return f"Ran on {device_description(device)}, torch {torch.__version__}, {when}: {mode}."
