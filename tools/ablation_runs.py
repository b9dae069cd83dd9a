"""Ablation runs on the test set, shipped with the package for notebooks 06 and 09 to render.

An ablation measures what one part of a chosen recipe buys; it chooses nothing (the validation
split did that, ``tools/final_design.py``). Each variant takes one part back out of the step's own
recipe and trains exactly as the notebook's seed runs do (``engine.seed_everything(seed)``, the
model drawn, then ``recipes.run`` on all training images, scored on the test set), so the notebook
compares it with its own runs of the same seeds. Each history ships as
``eva_utils/results/<step>_ablation_<variant>_s<seed>.json``.

    OMP_NUM_THREADS=1 python tools/ablation_runs.py 06 [variant,variant] [1,2,3]
    OMP_NUM_THREADS=1 python tools/ablation_runs.py 09 plain_c3 1

The committed notebooks ran with one thread; run these with one thread too, so that a variant and
the notebook's run of the same seed differ only by the part taken out.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from design_runs import ship  # noqa: E402  (the tools' shared way to keep a run as package data)
from eva_utils import engine, models, recipes  # noqa: E402


def _plain_c3():
    """09's model with C3's first depthwise-separable conv replaced by a plain 3x3 (Try #2)."""
    model = models.AdvancedConvNet()
    width = model.c3[0][0].in_channels  # the depthwise conv's channels: C3 keeps its width
    model.c3[0] = models.conv_bn(width, width)
    return model


#: step -> (the step's recipe, variant -> (change to the recipe, model factory))
VARIANTS = {
    "06": ("final", {
        "recipe": ({}, lambda: models.Regularized(dropout=0.0)),  # the reference, run the same way
        "no_hold": (dict(hold_epochs=0), lambda: models.Regularized(dropout=0.0)),
        "no_nesterov": (dict(nesterov=False), lambda: models.Regularized(dropout=0.0)),
        "no_precise_bn": (dict(precise_bn=0), lambda: models.Regularized(dropout=0.0)),
    }),
    "09": ("cifar_advanced", {
        "plain_c3": ({}, _plain_c3),
    }),
}
STEP_NAMES = {"06": "06_optimizer", "09": "09_cifar10_advanced_convs"}


def main(argv: list[str]) -> int:
    if recipes.quick_mode():
        raise SystemExit("ablation runs are full runs, shipped with the package: unset EVA_SMOKE")
    if not argv or argv[0] not in VARIANTS:
        raise SystemExit(f"usage: ablation_runs.py {{{','.join(VARIANTS)}}} [variants] [seeds]")
    recipe_name, variants = VARIANTS[argv[0]]
    names = argv[1].split(",") if len(argv) > 1 else list(variants)
    seeds = [int(s) for s in argv[2].split(",")] if len(argv) > 2 else [1, 2, 3]
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(variants)}")
    base = recipes.get_recipe(recipe_name)
    for name in names:
        change, factory = variants[name]
        for seed in seeds:
            start = time.perf_counter()
            engine.seed_everything(seed)  # before the weights are drawn, as the notebook's seed runs do
            history = recipes.run(base.with_(**change), seed, model=factory(), progress=False,
                                  verbose=False, save=False).history
            path = ship(history, name, f"{STEP_NAMES[argv[0]]}_ablation_{name}_s{seed}", "test set")
            last = ", ".join(f"{a:.2f}" for a in history.test_acc[-3:])
            print(f"{name} seed {seed}: last 3 test {last}; train {history.train_acc[-1]:.2f}; "
                  f"{time.perf_counter() - start:.0f} s -> {path.name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
