"""Command line over the same library code the notebooks use.

    python -m eva_utils train --model final --epochs 15 --seed 1 --save runs/final.pt
    python -m eva_utils bench [--tiny] [--device cuda] [--skip-full]

``train`` prints the model summary (with the receptive-field column), the per-epoch
logs, and a last line comparing the run with the course target.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import engine, recipes


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eva_utils", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a course step's model on MNIST")
    t.add_argument("--model", default="final", choices=list(recipes.RECIPES), metavar="NAME",
                   help="course step to train: " + ", ".join(recipes.RECIPES) + " (default: final)")
    t.add_argument("--epochs", type=_positive_int, default=None, help="default: the step's (15)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--batch-size", type=_positive_int, default=None)
    t.add_argument("--save", type=Path, default=None, help="write the final checkpoint here")
    t.add_argument("--checkpoint-dir", type=Path, default=None, help="write last.pt/best.pt here every epoch")
    t.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    t.add_argument("--data", default=None, help="data folder (default: $EVA_DATA or ~/.cache/eva_utils/data)")
    t.add_argument("--classic", action="store_true", help="use the textbook DataLoader pipeline")
    t.add_argument("--precision", choices=["auto", *engine.PRECISIONS], default="auto",
                   help="training precision: auto (by hardware: bf16 on CPUs with AVX-512 BF16/AMX and "
                        "CUDA >= 8.0, fp16 on older GPUs, else fp32), fp32, bf16 or fp16; "
                        "evaluation is always fp32")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--train-limit", type=_positive_int, default=None, help="use only the first N training images")
    t.add_argument("--test-limit", type=_positive_int, default=None, help="use only the first N test images")
    t.add_argument("--no-progress", action="store_true", help="hide the per-batch progress bar")
    t.add_argument("--valid", type=int, default=0, metavar="N",
                   help="hold out the last N training images and evaluate on them instead of the test set")

    b = sub.add_parser("bench", help="textbook pipeline vs the fast path, in one process")
    b.add_argument("--device", default=None)
    b.add_argument("--batches", type=_positive_int, default=100, help="training batches timed per variant")
    b.add_argument("--tiny", action="store_true", help="a few batches per variant (CI)")
    b.add_argument("--skip-full", action="store_true", help="skip the full 15-epoch fast run")
    b.add_argument("--data", default=None)
    return parser


def cmd_train(args) -> int:
    from . import models
    from .summary import summary

    recipe = recipes.get_recipe(args.model)
    if args.batch_size:
        recipe = recipe.with_(batch_size=args.batch_size)
    settings = recipes.RunSettings(args.epochs or recipe.epochs, args.train_limit, args.test_limit)
    device = engine.pick_device(args.device)
    speed = engine.Speed(precision=None if args.precision == "auto" else args.precision, compile=args.compile)
    print(f"Model {args.model!r} (step {recipe.name}), seed {args.seed}, device {device}, "
          f"{'classic DataLoader' if args.classic else 'fast tensor loader'}, "
          f"training precision {speed.resolve(device).precision}"
          + (f", validation on the last {args.valid:,} training images" if args.valid else ""))
    print(summary(models.build(recipe.model), (1, 28, 28)))
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
    met, line = recipes.target_report(history, target=recipes.target_for(args.model))
    print(line)
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            return cmd_train(args)
        from .bench import run_bench
        return run_bench(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
