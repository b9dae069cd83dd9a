"""Command line over the same library code the notebooks use.

    python -m eva_utils train --model final --epochs 15 --seed 1 --save runs/final.pt
    python -m eva_utils seeds --model final --seeds 1-10
    python -m eva_utils bench [--tiny] [--device cuda] [--skip-full]

``train`` prints the model summary (with the receptive-field column), the per-epoch
logs, and a last line comparing the run with the course target (or the model's own).
Its exit status is the verdict: 0 met (or a run too small to be judged, which says
so), 1 missed, 2 a usage error. ``seeds`` trains several seeds and prints one table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import bench, convs, datasets, engine, models, recipes, report
from .fsutil import check_writable_dir, check_writable_file, describe
from .summary import summary


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _folder(text: str) -> str:
    """A non-empty folder name: an empty one would silently mean the current folder."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty folder name: give a folder, or leave the option out")
    return text


def _file_path(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path: give a file or folder name, or leave the option out")
    return Path(text)


def _seed_list(text: str) -> list[int]:
    """``1-10``, ``1,3,5`` or ``2``: the seeds to run."""
    seeds = []
    try:
        for part in text.split(","):
            lo, dash, hi = part.strip().partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 1-10 or 1,2,5, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"no seeds in {text!r}")
    return seeds


def _add_precision(parser: argparse.ArgumentParser) -> None:
    """``--precision``, for ``train`` and ``seeds`` alike: ``fp32`` on a bf16 machine is how
    to see what a student's laptop (no bf16 units) would train."""
    parser.add_argument("--precision", choices=["auto", *engine.PRECISIONS], default="auto",
                        help="training precision: auto (by hardware: bf16 on CPUs with AVX-512 BF16/AMX "
                             "and CUDA >= 8.0, fp16 on older GPUs, else fp32), fp32, bf16 or fp16; "
                             "evaluation is always fp32")


def _speed(recipe, device, args):
    """The engine's speed switches for ``recipe`` on ``device``, with ``--precision`` applied."""
    return recipe.speed(device, precision=None if args.precision == "auto" else args.precision,
                        compile=getattr(args, "compile", False) or None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eva_utils", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a course step's model (the dataset comes from its recipe)")
    t.add_argument("--model", default="final", choices=list(recipes.RECIPES), metavar="NAME",
                   help="course step to train: " + ", ".join(recipes.RECIPES) + " (default: final)")
    t.add_argument("--epochs", type=_positive_int, default=None, help="default: the step's (15)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--save", type=_file_path, default=None, help="write the final checkpoint here")
    t.add_argument("--checkpoint-dir", type=_file_path, default=None, help="write last.pt/best.pt here every epoch")
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
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
    t.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (default: torch's own choice, or $OMP_NUM_THREADS); "
                        "the thread count changes the last digits of a CPU run")

    s = sub.add_parser("seeds", help="train one step's recipe from several seeds and print one table")
    s.add_argument("--model", default="final", choices=list(recipes.RECIPES), metavar="NAME",
                   help="course step (default: final)")
    s.add_argument("--seeds", type=_seed_list, default=list(range(1, 11)), help="e.g. 1-10 (default) or 1,3,5")
    s.add_argument("--device", default=None)
    s.add_argument("--data", type=_folder, default=None)
    s.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads for torch (default: torch's own choice, or $OMP_NUM_THREADS)")
    _add_precision(s)

    b = sub.add_parser("bench", help="textbook pipeline vs the fast path, in one process")
    b.add_argument("--device", default=None)
    b.add_argument("--batches", type=_positive_int, default=100, help="training batches timed per variant")
    b.add_argument("--tiny", action="store_true", help="a few batches per variant (CI)")
    b.add_argument("--skip-full", action="store_true", help="skip the full 15-epoch fast run")
    b.add_argument("--data", type=_folder, default=None)
    return parser


def cmd_train(args) -> int:

    # paths first: a bad --save must not be found only after every epoch has run
    if args.save:
        check_writable_file(args.save, "--save")
    if args.checkpoint_dir:
        check_writable_dir(args.checkpoint_dir, "--checkpoint-dir")
        for name in ("last.pt", "best.pt"):
            if (args.checkpoint_dir / name).is_dir():
                raise ValueError(f"--checkpoint-dir {args.checkpoint_dir} holds a folder {name} where the "
                                 "checkpoint goes: remove it, or choose another folder")
    recipe = recipes.get_recipe(args.model)
    if args.batch_size:
        recipe = recipe.with_(batch_size=args.batch_size)
    if recipes.quick_mode() and not (args.train_limit or args.test_limit):
        settings = recipe.run_settings(args.epochs)  # EVA_SMOKE: a few hundred images, one epoch (+ any held)
    else:
        settings = recipes.RunSettings(args.epochs or recipe.epochs, args.train_limit, args.test_limit)
    device = engine.pick_device(args.device)
    speed = _speed(recipe, device, args)
    info = datasets.get(recipe.dataset)
    print(f"Model {args.model!r} (step {recipe.name}) on {info.title}, seed {args.seed}, device {device}, "
          f"{'classic DataLoader' if args.classic else 'fast tensor loader'}, "
          f"training precision {speed.resolve(device).precision}"
          + (f", validation on the last {args.valid:,} training images" if args.valid else ""))
    print(summary(models.build(recipe.model), info.shape))
    start = time.perf_counter()
    result = recipes.run(recipe, args.seed, device=device, settings=settings, valid_size=args.valid,
                         fast=not args.classic, root=args.data, speed=speed,
                         checkpoint_dir=args.checkpoint_dir, progress=not args.no_progress)
    model, history, epochs = result.model, result.history, settings.epochs
    history.meta.update(wall_seconds=time.perf_counter() - start)
    if args.save:
        engine.save_checkpoint(args.save, model, history, epoch=epochs, recipe=recipe.name, seed=args.seed)
        print(f"Saved {args.save} (load it with eva_utils.models.load({str(args.save)!r}))")
    best, best_epoch = history.best_test
    split = "validation" if args.valid else "test"
    print(f"Best {split} accuracy {best:.2f}% at epoch {best_epoch}; {history.meta['wall_seconds']:.1f} s in all")
    if args.valid:
        return 0  # targets are about test accuracy
    target = recipes.target_for(args.model)
    if settings.train_limit or settings.test_limit or settings.quick:
        trained = f"{settings.train_limit:,}" if settings.train_limit else "all"
        print(f"{target.name} not judged: trained on {trained} training images and tested on "
              f"{history.test_total[-1]:,}; the target is about the full training and test sets")
        return 0
    if len(history) < (target.last_epochs or 1):
        print(f"{target.name} not judged: {len(history)} epochs, fewer than the last {target.last_epochs} it is about")
        return 0
    rf = convs.rf_before_gap(model, info.shape) if target.rf_above is not None else None
    met, line = recipes.target_report(history, target=target, rf=rf)
    print(line)
    return 0 if met else 1


def cmd_seeds(args) -> int:
    recipe = recipes.get_recipe(args.model)
    target = recipes.target_for(args.model)
    settings = recipe.run_settings()
    import torch

    device = engine.pick_device(args.device)
    speed = _speed(recipe, device, args)
    print(f"Model {args.model!r} (step {recipe.name}), seeds {args.seeds}, {settings.epochs} epochs, "
          f"device {device}, training precision {speed.resolve(device).precision}, "
          f"{torch.get_num_threads()} CPU thread(s)"
          + (" (QUICK MODE: not a real result)" if settings.quick else ""), flush=True)
    histories = {}
    for seed in args.seeds:
        start = time.perf_counter()
        history = recipes.run(recipe, seed, device=device, settings=settings, root=args.data,
                              speed=speed, progress=False, verbose=False).history
        histories[seed] = history
        print(f"  seed {seed}: last 3 " + ", ".join(f"{a:.2f}" for a in history.last(3))
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(report.seeds_markdown(histories, target))
    print()
    print(report.seeds_summary_line(histories, target))
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
