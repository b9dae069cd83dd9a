"""What a notebook shows of its run: its one start call, and Results as Markdown rendered from
a run's history, so no number is typed by hand.

:func:`start` is a notebook's set-up: figures inline, the Results slot under its Target at the
top (filled at the end by :func:`show_results`, so the Results at the top of a committed notebook
are the numbers of that notebook's own run), the clock, and the device it runs on. Later
notebooks compare with earlier steps' runs, read with :func:`eva_utils.histories.load_history`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from . import recipes
from .devices import auto_precision, device_description, pick_device
from .histories import check_results_dir, load_history

RESULTS_DISPLAY_ID = "eva-results"


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


def start(device=None) -> torch.device:
    """A notebook's one set-up call (``device = eva_utils.start()``): the results folder checked
    (:func:`eva_utils.histories.check_results_dir`: a read-only ``$EVA_RESULTS`` fails now, not
    after the full run), figures inline, the Results slot at the top, the clock, and one line
    saying where and when the notebook runs (:func:`run_header`).

    Returns the device (``device``, or the best available: cuda, then mps, then cpu).
    """
    quick = recipes.quick_mode()
    check_results_dir(quick)
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:  # plain Python: no notebook to set up
        pass
    results_placeholder()
    started = time.time()
    device = pick_device(device)
    print(run_header(device, quick, started))
    return device


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


def design_markdown(groups: dict, target: "recipes.Target" = recipes.COURSE_TARGET, *,
                    first_column: str = "candidate", ranked: bool = True, spread: bool = False) -> str:
    """Candidates run from several seeds (name -> {seed: history}) as one table, best first by the
    mean of their seeds' lowest accuracy of the last ``target.last_epochs`` epochs: the margin a
    recipe keeps, which is what the target asks of every seed.

    ``ranked=False`` keeps the given order (an ablation reads top to bottom); ``spread`` adds the
    widest spread of any seed's last epochs (how settled the scored network is)."""
    n = target.last_epochs or 1
    rows = []
    for name, histories in groups.items():
        s = recipes.seeds_summary(histories, target)
        per_seed = "; ".join(f"{seed}: " + ", ".join(f"{a:.2f}" for a in h.last(n)) for seed, h in histories.items())
        train = sum(h.train_acc[-1] for h in histories.values()) / len(histories)
        params = next(iter(histories.values())).meta["params"]
        widest = max(max(h.last(n)) - min(h.last(n)) for h in histories.values())
        rows.append((s["mean_min"], f"| {name} | {params:,} | {per_seed} | {s['mean_min']:.2f}% | "
                                    f"{s['lowest']:.2f}% | {train:.2f}% |" + (f" {widest:.2f} |" if spread else "")))
    head = [f"| {first_column} | params | last {n} accuracies by seed | mean of the lowest | lowest | "
            "train accuracy, last epoch |" + (f" widest spread of a seed's last {n} (points) |" if spread else ""),
            "|---|---|---|---|---|---|" + ("---|" if spread else "")]
    ordered = sorted(rows, key=lambda r: -r[0]) if ranked else rows
    return "\n".join(head + [line for _, line in ordered])


def load_design_runs(prefix: str, names: dict, seeds) -> dict:
    """The saved design runs ``<prefix>_<name>_s<seed>`` (see :func:`load_history`) as
    label -> {seed: history}, for ``names`` = {label shown: saved name}."""
    return {label: {seed: load_history(f"{prefix}_{name}_s{seed}") for seed in seeds}
            for label, name in names.items()}


def compare_markdown(histories: dict, split: str = "test", timing: bool = False,
                     means: Optional[dict] = None) -> str:
    """Runs side by side (name -> history): params, best and last 3 accuracies, and the last-epoch
    train - ``split`` gap (``timing``: seconds per epoch too).

    The ablation tables of notebooks 04 and 05 and the comparisons of 08: what each change
    bought, measured. ``means`` (label -> histories of one seed each) adds a bold row per label
    under the runs, each column averaged over its histories (03's seeds), so a mean sits under
    the seeds it summarises in the same columns.
    """
    head = f"| run | params | best {split} (epoch) | last 3 {split} accuracies | last-epoch gap (train - {split}) |"
    rule = "|---|---|---|---|---|"
    if timing:
        head, rule = head + " s/epoch |", rule + "---|"
    out = [head, rule]

    def columns(h):  # best, last 3, gap and s/epoch of one run: what a row shows, or averages
        return h.best_test[0], h.last(3), h.train_acc[-1] - h.test_acc[-1], sum(h.seconds) / max(len(h), 1)

    def row(name, params, best, last, gap, per_epoch):
        text = f"| {name} | {params:,} | {best} | " + ", ".join(f"{a:.2f}" for a in last) + f" | {gap:+.2f} points |"
        return text + (f" {per_epoch:.1f} |" if timing else "")

    for name, h in histories.items():
        best, last, gap, per_epoch = columns(h)
        out.append(row(name, h.meta["params"], f"{best:.2f}% ({h.best_test[1]})", last, gap, per_epoch))
    for label, runs in (means or {}).items():
        runs = list(runs)
        if not runs:
            raise ValueError(f"compare_markdown: the mean row {label!r} has no runs to average")
        n = len(runs)
        best, lasts, gaps, per_epochs = zip(*map(columns, runs))
        last = [sum(epoch) / n for epoch in zip(*lasts)]
        out.append(row(f"**{label}**", runs[0].meta["params"], f"{sum(best) / n:.2f}%", last,
                       sum(gaps) / n, sum(per_epochs) / n))
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
    """One line saying where and when this notebook ran (printed by :func:`start`)."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started or time.time()))
    mode = "QUICK MODE (EVA_SMOKE), not a real run" if quick else "full run"
    # the precision training uses on this hardware unless a recipe says otherwise (09 trains in fp32):
    # the reason the same seed gives other last digits on another machine
    precision = auto_precision(device)
    return (f"Ran on {device_description(device)}, torch {torch.__version__}, {when}: {mode}; "
            f"training in {precision} by default here, evaluation in fp32.")
