"""Command line over the same library code the notebooks use.

    python -m eva_utils train --recipe final --epochs 15 --seed 1 --save runs/final.pt
    python -m eva_utils seeds --recipe final --seeds 1-10
    python -m eva_utils bench [--tiny] [--device cuda] [--skip-full]

``--recipe`` names a recipe of :data:`eva_utils.recipes.RECIPES` (a course step's model, data,
optimizer and schedule); ``--model``, its first spelling, is still accepted.
``train`` prints the model summary (with the receptive-field column), the per-epoch
logs, and a last line comparing the run with the course target (or the model's own).
Its exit status is the verdict: 0 met (or a run too small to be judged, which says
so), 1 missed, 2 a usage error. ``seeds`` trains several seeds and prints one table.
In quick mode (``EVA_SMOKE=1``) neither judges: both say "not judged" and exit 0.
Every option is checked before training starts, and a bad one is one line naming it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from . import bench, convs, devices, engine, models, recipes, report
from .fsutil import WriteError, check_writable_dir, check_writable_file, describe, special_kind
from .summary import summary

#: Upper bounds of the numeric options: far above any course run, far below what would exhaust
#: memory or run for months before failing (``--seeds 1-1000000000000``, ``--epochs 10**9``).
MAX_EPOCHS = 1000
MAX_SEEDS = 1000
MAX_BATCH_SIZE = 65_536
MAX_SEED = 2**32 - 1  # NumPy's seeds are 32-bit


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _bounded_int(low: int, high=None, why: str = ""):
    """An argparse type: a whole number from ``low`` to ``high()`` (a callable, or None: no bound)."""
    def parse(text: str) -> int:
        value = _whole_number(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}" if low else
                                             f"must be 0 or more, got {value}")
        top = high() if callable(high) else high
        if top is not None and value > top:
            raise argparse.ArgumentTypeError(f"must be at most {top:,}{why}, got {value:,}")
        return value
    return parse


_positive_int = _bounded_int(1)
_non_negative_int = _bounded_int(0)
_epochs = _bounded_int(1, MAX_EPOCHS)
_batch_size = _bounded_int(1, MAX_BATCH_SIZE)
# refused, not capped: a thread per core is torch's own default, more only makes them wait on each other
_threads = _bounded_int(1, lambda: os.cpu_count() or 1, " (the CPUs of this machine)")


def _seed(text: str) -> int:
    value = _whole_number(text)
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED} (seeds are 32-bit), got {value}")
    return value


def _folder(text: str) -> str:
    """A non-empty folder name (an empty one would silently mean the current folder), ``~`` expanded."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty folder name: give a folder, or leave the option out")
    return os.path.expanduser(text)


def _file_path(text: str) -> Path:
    """A non-empty path with ``~`` expanded here, once: the path checked is the path written."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path: give a file or folder name, or leave the option out")
    return Path(text).expanduser()


def available_devices() -> list[str]:
    """The ``--device`` values this machine can run: auto, cpu, and cuda/mps where present."""
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def _device(text: str) -> str:
    """A device this machine has, checked before anything runs (``meta`` or ``tpu`` would fail in
    torch's words, ``meta`` only once training has started)."""
    import torch

    choices = available_devices()
    try:
        name = text if text == "auto" else str(torch.device(text))
    except (RuntimeError, ValueError):
        name = None
    if name not in choices:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device of this machine; choose one of: "
                                         + ", ".join(choices))
    return name


def _seed_list(text: str) -> list[int]:
    """``1-10``, ``1,3,5`` or ``2``: the seeds to run, each once, at most ``MAX_SEEDS``."""
    seeds = []
    try:
        for part in (p.strip() for p in text.split(",")):
            lo, dash, hi = part.partition("-")
            lo, hi = int(lo or "-1"), int(hi) if dash else int(lo)  # "-1": no low end, a negative seed
            if lo < 0 or hi > MAX_SEED:
                raise argparse.ArgumentTypeError(f"seeds must be between 0 and {MAX_SEED}, got {part!r}")
            if len(seeds) + hi - lo + 1 > MAX_SEEDS:  # counted before the list is built
                raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS:,} seeds per run, {text!r} asks for more")
            seeds += range(lo, hi + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 1-10 or 1,2,5, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    repeated = [seed for seed, n in Counter(seeds).items() if n > 1]
    if repeated:
        raise argparse.ArgumentTypeError(f"seed {', '.join(map(str, repeated))} appears more than once in "
                                         f"{text!r}: each seed is one run; list it once")
    return seeds


def _add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision``, for ``train`` and ``seeds`` alike: ``fp32`` on a bf16 machine is how
    to see what a student's laptop (no bf16 units) would train."""
    parser.add_argument("--precision", choices=["auto", *devices.PRECISIONS], default="auto",
                        help="training precision: auto (by hardware: bf16 on CPUs with AVX-512 BF16/AMX "
                             "and CUDA >= 8.0, fp16 on older GPUs, else fp32), fp32, bf16 or fp16; "
                             "evaluation is always fp32")


def _speed(recipe, device, args):
    """The engine's speed switches for ``recipe`` on ``device``, with ``--precision`` applied (resolved:
    decided here, once per run)."""
    return recipe.speed(device, precision=None if args.precision == "auto" else args.precision,
                        compile=getattr(args, "compile", False) or None).resolve(device)


def _add_recipe(parser: argparse.ArgumentParser, what: str) -> None:
    """``--recipe NAME`` (``--model NAME``, its first spelling, still accepted): a recipe's name, not a
    model's (a recipe names its model, dataset, augmentation, optimizer and schedule)."""
    parser.add_argument("--recipe", "--model", dest="recipe", default="final", choices=list(recipes.RECIPES),
                        metavar="RECIPE", help=f"the recipe {what}: " + ", ".join(recipes.RECIPES)
                        + " (default: final; --model is the old spelling)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eva_utils", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a course step's recipe (its model, dataset and schedule)")
    _add_recipe(t, "to train")
    t.add_argument("--epochs", type=_epochs, default=None, help=f"default: the step's (15); at most {MAX_EPOCHS}")
    t.add_argument("--seed", type=_seed, default=1)
    t.add_argument("--batch-size", type=_batch_size, default=None, help=f"at most {MAX_BATCH_SIZE:,}")
    t.add_argument("--save", type=_file_path, default=None, help="write the final checkpoint here")
    t.add_argument("--checkpoint-dir", type=_file_path, default=None, help="write last.pt/best.pt here every epoch")
    t.add_argument("--device", type=_device, default=None, help="cuda, mps or cpu (default: the best available)")
    t.add_argument("--data", type=_folder, default=None,
                   help="data folder (default: $EVA_DATA or ~/.cache/eva_utils/data)")
    t.add_argument("--classic", action="store_true", help="use the textbook DataLoader pipeline")
    _add_precision(t)
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--train-limit", type=_positive_int, default=None, help="use only the first N training images")
    t.add_argument("--test-limit", type=_positive_int, default=None, help="use only the first N test images")
    t.add_argument("--no-progress", action="store_true", help="hide the per-batch progress bar")
    t.add_argument("--valid", type=_non_negative_int, default=0, metavar="N",
                   help="hold out the last N training images and evaluate on them instead of the test set")
    t.add_argument("--threads", type=_threads, default=None,
                   help="CPU threads for torch, at most the CPU count (default: torch's own choice, or "
                        "$OMP_NUM_THREADS); the thread count changes the last digits of a CPU run")

    s = sub.add_parser("seeds", help="train one step's recipe from several seeds and print one table")
    _add_recipe(s, "to train from each seed")
    s.add_argument("--seeds", type=_seed_list, default=list(range(1, 11)),
                   help=f"e.g. 1-10 (default) or 1,3,5; each seed once, at most {MAX_SEEDS:,}")
    s.add_argument("--device", type=_device, default=None)
    s.add_argument("--data", type=_folder, default=None)
    s.add_argument("--threads", type=_threads, default=None,
                   help="CPU threads for torch (default: torch's own choice, or $OMP_NUM_THREADS)")
    _add_precision(s)

    b = sub.add_parser("bench", help="textbook pipeline vs the fast path, in one process")
    b.add_argument("--device", type=_device, default=None)
    b.add_argument("--batches", type=_positive_int, default=100, help="training batches timed per variant")
    b.add_argument("--tiny", action="store_true", help="a few batches per variant (CI)")
    b.add_argument("--skip-full", action="store_true", help="skip the full 15-epoch fast run")
    b.add_argument("--data", type=_folder, default=None)
    return parser


def _check_paths(args) -> None:
    """Paths first: a bad --save or --checkpoint-dir must not be found only after every epoch has run."""
    if args.save:
        check_writable_file(args.save, "--save")
    if args.checkpoint_dir:
        check_writable_dir(args.checkpoint_dir, "--checkpoint-dir")
        for name in ("last.pt", "best.pt"):
            kind = special_kind(args.checkpoint_dir / name)
            if kind:
                raise ValueError(f"--checkpoint-dir {args.checkpoint_dir} holds {kind} {name} where the "
                                 "checkpoint goes: remove it, or choose another folder")


def _check_sizes(args, info) -> None:
    """The options that depend on the dataset, named as the command line spells them."""
    if args.valid and args.classic:
        raise ValueError("--valid holds images out in the fast loader only: drop --classic, or --valid")
    if args.valid >= info.train_count:
        raise ValueError(f"--valid {args.valid:,} leaves no training images: {info.title} has "
                         f"{info.train_count:,}; hold out fewer")
    room = info.train_count - args.valid
    if args.train_limit and args.train_limit > room:
        held = f" ({info.train_count:,} less the {args.valid:,} of --valid)" if args.valid else ""
        raise ValueError(f"--train-limit {args.train_limit:,} is more than the {room:,} training images of "
                         f"{info.title}{held}; give at most {room:,}, or leave it out to use them all")
    if args.test_limit and args.test_limit > info.test_count:
        raise ValueError(f"--test-limit {args.test_limit:,} is more than the {info.test_count:,} test images of "
                         f"{info.title}; give at most {info.test_count:,}, or leave it out to use them all")


def _mode(settings) -> str:
    """Which mode runs, for the header: quick (EVA_SMOKE), limited or full."""
    if settings.quick:
        return (f" (QUICK MODE, EVA_SMOKE: {settings.train_limit:,} training and {settings.test_limit:,} test "
                f"images, {settings.epochs} epoch(s); not a real result, not judged)")
    if settings.train_limit or settings.test_limit:
        return " (limited run: not judged against the target)"
    return " (full run)"


def _save_final(args, model, history, stamp_before, **extra) -> None:
    """Write ``--save``; if that fails (a full disk), keep the trained weights anyway.

    The error then says where they are: this run's last checkpoint (``--checkpoint-dir``, written
    after the last epoch), or a copy written to the first folder with room.
    """
    try:
        engine.save_checkpoint(args.save, model, history, **extra)
        return
    except (OSError, ValueError) as err:  # ValueError: the path became a FIFO or a link since the check
        problem = describe(err)
    if args.checkpoint_dir and _checkpoint_stamp(args.checkpoint_dir) not in (None, stamp_before):
        raise WriteError(f"{problem}; the trained weights are in {args.checkpoint_dir / 'last.pt'} "
                         "(written after the last epoch)")
    tried = []
    for folder in dict.fromkeys(Path(f) for f in (args.checkpoint_dir, tempfile.gettempdir(), Path.home(),
                                                    Path.cwd()) if f):
        if folder.resolve() == args.save.parent.resolve():
            continue
        rescue = folder / f"{args.save.stem}.rescued-{os.getpid()}{args.save.suffix or '.pt'}"
        try:
            engine.save_checkpoint(rescue, model, history, **extra)
        except (OSError, ValueError):
            tried.append(str(folder))
            continue
        raise WriteError(f"{problem}; the trained weights were saved to {rescue} instead")
    raise WriteError(f"{problem}; the trained weights could not be kept anywhere else either "
                     f"(tried {', '.join(tried)})")


def cmd_train(args) -> int:
    _check_paths(args)
    stamp_before = _checkpoint_stamp(args.checkpoint_dir)
    recipe = recipes.get_recipe(args.recipe)
    info = recipe.info  # the dataset's description, handed down from here
    _check_sizes(args, info)
    if args.batch_size:
        recipe = recipe.with_(batch_size=args.batch_size)
    # explicit options win; quick mode (EVA_SMOKE) fills in only what was not given. The recipe checks
    # the epochs here, before any data is loaded; the error names the flag when one was given
    recipes.quick_mode()  # a bad EVA_SMOKE is named as itself, not as a fault of --epochs
    try:
        settings = recipe.run_settings(args.epochs, args.train_limit, args.test_limit)
    except ValueError as err:
        raise ValueError(f"--epochs {args.epochs}: {err}" if args.epochs else str(err)) from None
    device = devices.pick_device(args.device)
    speed = _speed(recipe, device, args)
    print(f"Recipe {args.recipe!r} (step {recipe.name}, model {recipe.model!r}) on {info.title}, seed {args.seed}, "
          f"device {device}, {'classic DataLoader' if args.classic else 'fast tensor loader'}, "
          f"training precision {speed.precision}, {settings.epochs} epoch(s)"
          + (f", validation on the last {args.valid:,} training images" if args.valid else "")
          + _mode(settings))
    print(summary(models.build(recipe.model), info.shape))
    start = time.perf_counter()
    result = recipes.run(recipe, args.seed, device=device, settings=settings, valid_size=args.valid,
                         fast=not args.classic, root=args.data, speed=speed,
                         checkpoint_dir=args.checkpoint_dir, progress=not args.no_progress,
                         save=False)  # the command line keeps --save's checkpoint, not results/<step>.json
    model, history, epochs = result.model, result.history, settings.epochs
    history.meta.update(wall_seconds=time.perf_counter() - start)
    if args.save:
        _save_final(args, model, history, stamp_before, epoch=epochs, recipe=recipe.name, seed=args.seed,
                    quick=settings.quick)
        print(f"Saved {args.save} (load it with eva_utils.models.load({str(args.save)!r}))")
    best, best_epoch = history.best_test
    split = "validation" if args.valid else "test"
    print(f"Best {split} accuracy {best:.2f}% at epoch {best_epoch}; {history.meta['wall_seconds']:.1f} s in all")
    if args.valid:
        return 0  # targets are about test accuracy
    target = recipes.target_for(args.recipe)
    if settings.train_limit or settings.test_limit or settings.quick:
        trained = f"{settings.train_limit:,}" if settings.train_limit else "all"
        print(f"{target.name} not judged: trained on {trained} training images and tested on "
              f"{history.test_total[-1]:,}; the target is about the full training and test sets"
              + (" (quick mode, EVA_SMOKE)" if settings.quick else ""))
        return 0
    if len(history) < (target.last_epochs or 1):
        print(f"{target.name} not judged: {len(history)} epochs, fewer than the last {target.last_epochs} it is about")
        return 0
    rf = convs.rf_before_gap(model, info.shape) if target.rf_above is not None else None
    met, line = recipes.target_report(history, target=target, rf=rf)
    print(line)
    return 0 if met else 1


def _print_seeds(histories: dict, target, settings) -> None:
    """The seeds table and its summary line; a quick-mode run is not judged (as in ``train``)."""
    print()
    print(report.seeds_markdown(histories, target, judged=not settings.quick))
    print()
    if settings.quick:
        print(f"{target.name} not judged: quick mode (EVA_SMOKE) trained on {settings.train_limit:,} images "
              f"for {settings.epochs} epoch(s); the target is about the full training and test sets")
    else:
        print(report.seeds_summary_line(histories, target))


def cmd_seeds(args) -> int:
    recipe = recipes.get_recipe(args.recipe)
    target = recipes.target_for(args.recipe)
    settings = recipe.run_settings()
    import torch

    device = devices.pick_device(args.device)
    speed = _speed(recipe, device, args)
    print(f"Recipe {args.recipe!r} (step {recipe.name}, model {recipe.model!r}), seeds {args.seeds}, "
          f"{settings.epochs} epochs, device {device}, training precision {speed.precision}, "
          f"{torch.get_num_threads()} CPU thread(s)" + _mode(settings), flush=True)
    histories = {}
    try:
        for seed in args.seeds:
            start = time.perf_counter()
            history = recipes.run(recipe, seed, device=device, settings=settings, root=args.data,
                                  speed=speed, progress=False, verbose=False, save=False).history
            histories[seed] = history
            print(f"  seed {seed}: last 3 " + ", ".join(f"{a:.2f}" for a in history.last(3))
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    except KeyboardInterrupt:  # the seeds that finished are kept: print their table, then stop
        if histories:
            _close_progress_bars()
            print(f"\nInterrupted after {len(histories)} of {len(args.seeds)} seeds; the finished ones:")
            _print_seeds(histories, target, settings)
            sys.stdout.flush()
        raise
    _print_seeds(histories, target, settings)
    if settings.quick:
        return 0
    return 0 if len(recipes.seeds_summary(histories, target)["met"]) == len(histories) else 1


def _checkpoint_stamp(folder) -> tuple | None:
    """Identity of ``folder/last.pt`` (inode, mtime): a checkpoint written later differs."""
    try:
        st = (Path(folder) / "last.pt").stat()
    except (OSError, TypeError):
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _close_progress_bars() -> None:
    try:
        from tqdm import tqdm

        for bar in list(getattr(tqdm, "_instances", ())):
            bar.close()
    except Exception:  # cosmetic only
        pass


def _interrupted_message(args, stamp_before) -> str:
    """``interrupted after epoch N; last checkpoint at PATH`` (or why there is none)."""
    folder = getattr(args, "checkpoint_dir", None)
    if getattr(args, "command", None) != "train":
        return "interrupted"
    if folder is None:
        return "interrupted; no checkpoint was written (use --checkpoint-dir DIR to keep one after every epoch)"
    last = Path(folder) / "last.pt"
    stamp = _checkpoint_stamp(folder)
    if stamp is None or stamp == stamp_before:  # none, or one left by an earlier run
        return f"interrupted before the first epoch ended; no checkpoint was written to {folder}"
    epoch = "?"
    try:
        import torch

        epoch = torch.load(last, map_location="cpu", weights_only=True).get("epoch", "?")
    except Exception:  # the file is complete (written atomically), but be safe about its content
        pass
    return f"interrupted after epoch {epoch}; last checkpoint at {last}"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stamp_before = _checkpoint_stamp(getattr(args, "checkpoint_dir", None))
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        if args.command == "train":
            return cmd_train(args)
        if args.command == "seeds":
            return cmd_seeds(args)
        return bench.run_bench(args)
    except (ValueError, RuntimeError, OSError) as err:  # OSError: FileNotFoundError, PermissionError, ...
        print(f"error: {describe(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _close_progress_bars()  # so the message starts on a line of its own
        sys.stdout.flush()
        print(_interrupted_message(args, stamp_before), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
