"""Write notebook 07 (the stretch goal: < 3,600 parameters, 99.4% by epoch 6) from one place.

Reuses tools/notebook_sources.py's badge, set-up cell and layout. Run it, then execute the
notebook in full (``make notebooks`` or ``python tools/run_notebooks.py notebooks/07_stretch.ipynb``);
the Analysis already written in an existing notebook is kept.

    python tools/stretch_notebook_source.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_sources import misclassified_cells, rf_cells, top, write_one  # noqa: E402

NAME = "07_stretch"

TARGET = (
    "- The to-do the course's seeds end on: **< 3,600 parameters** (under half of 06's 7,756) reaching "
    "**>= 99.40% test accuracy at epoch 6 or earlier** and holding it through the last epoch, for seeds "
    "1, 2 and 3, reproducible from the command line (`python -m eva_utils train --model stretch --seed N`).\n"
    "- Anything a small network can use is fair (schedules, weight averaging, augmentation, "
    "depthwise-separable convolutions, channel budgets), but **nothing is tuned on the test set**: every "
    "choice is made on a validation split, the last 10,000 of the 60,000 training images, and the test set "
    "is only used to report.\n"
    "- An ablation (what each choice bought in test accuracy at epoch 6) and, whatever the verdict, the "
    "measured frontier: accuracy at epoch 6 for budgets of about 2k, 3k, 3.6k, 5k and 8k parameters.")


def cells(analysis: str) -> list:
    out = top(NAME, "07 · Stretch: under 3,600 parameters, 99.4% by epoch 6", TARGET, analysis)
    out += [
        new_markdown_cell(
            "## The model\nThe course's structure (two plain 3x3s at full resolution, max-pool at RF 6, a "
            "second block, GAP) with the second block built from **depthwise-separable** 3x3s: a depthwise "
            "3x3 (one filter per channel) then a 1x1 that mixes channels. Same RF growth as a plain 3x3 for "
            "a fraction of the weights, so the budget buys width where the digit's parts are recognised. "
            "Shown here with the widths the validation search below settled on (`models.build(\"stretch\")`)."),
        new_code_cell("print(inspect.getsource(models.SeparableConv))\nprint(inspect.getsource(models.Stretch))"),
        new_code_cell('# NBVAL_CHECK_OUTPUT\nSEED = 1\nengine.seed_everything(SEED)\nmodel = models.build("stretch")\n'
                      'print(f"{engine.count_parameters(model):,} parameters")'),
        new_markdown_cell("The summary follows the real forward pass; **RF** is each layer's receptive field in "
                          "input pixels, **Jump** the input pixels between neighbouring output units."),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nsummary(model, (1, 28, 28))"),
        new_markdown_cell(
            "## Choices, made on the validation split\nThe search starts from 06's recipe run for 6 epochs (with a "
            "higher peak LR, since there are fewer steps to use it) on the model above with 16 separable channels. "
            "Each row changes one thing from that start and trains from seed 1 on the first 50,000 training "
            "images; its accuracy at epoch 6 is on the 10,000 held-out ones, never trained on and not the test set. "
            "The best row becomes the recipe (and the model widths) that the rest of the notebook trains."),
        new_code_cell('''from IPython.display import Markdown
settings = recipes.STRETCH_START.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
print(recipes.STRETCH_TARGET)
variants = recipes.stretch_variants()
valid_rows = recipes.run_variants(variants, SEED, valid_size=10_000, device=device, settings=settings)
Markdown(report.variants_markdown(valid_rows, reference=recipes.STRETCH_START_NAME))'''),
        new_code_cell('''best = max(valid_rows, key=lambda r: r["acc"][-1])
recipe, model_kwargs = variants[best["name"]]
print(f"best on validation: {best['name']} ({best['acc'][-1]:.2f}% at epoch {len(best['acc'])})")
registered = models.build("stretch")
chosen = models.build("stretch", **model_kwargs)
print("the registered 'stretch' recipe and model (python -m eva_utils train --model stretch) are this row:",
      recipe == recipes.get_recipe("stretch") and (chosen.widths, chosen.separable) == (registered.widths, registered.separable))
recipe'''),
        new_markdown_cell(
            "## Training, seed 1 (test set)\nThe chosen recipe on all 60,000 training images, evaluated on the "
            "test set after every epoch."),
        new_code_cell('''run = recipes.run(recipe, SEED, device=device, settings=settings, model_kwargs=model_kwargs)
model, history, loaders = run.model, run.history, run.loaders
history.meta["device_name"] = report.device_description(device)
report.save_history(history, recipe.name, quick=settings.quick)
print(recipes.target_report(history, target=recipes.STRETCH_TARGET)[1])'''),
        new_code_cell("plots.plot_history(history, recipe.name);"),
        new_code_cell("plots.plot_lr(history);"),
        new_markdown_cell("## Seeds 1, 2 and 3\nEach row is reproducible with "
                          "`python -m eva_utils train --model stretch --seed N`."),
        new_code_cell('''seed_histories = {SEED: history}
for seed in (2, 3):
    print(f"--- seed {seed}")
    seed_histories[seed] = recipes.run(recipe, seed, device=device, settings=settings, progress=False,
                                       model_kwargs=model_kwargs).history
Markdown(report.seeds_markdown(seed_histories, target=recipes.STRETCH_TARGET))'''),
        new_markdown_cell(
            "## Ablation: what each change bought, in test accuracy at epoch 6\nThe same rows as the "
            "validation table, now trained on all 60,000 images and measured on the test set (seed 1); the "
            "chosen row is the seed-1 run above. This is reporting, not choosing: the choice was made on the "
            "validation table."),
        new_code_cell('''ablation_rows = recipes.run_variants({k: v for k, v in variants.items() if k != best["name"]}, SEED,
                                     device=device, settings=settings)
ablation_rows.append({"name": best["name"], "params": history.meta["params"], "acc": list(history.test_acc),
                      "split": "test", "history": history})
ablation_rows.sort(key=lambda r: list(variants).index(r["name"]))
Markdown(report.variants_markdown(ablation_rows, reference=recipes.STRETCH_START_NAME))'''),
        new_markdown_cell(
            "## The frontier: accuracy at epoch 6 against size\nThe chosen recipe and the same block structure "
            "with the channel widths scaled to about 2k, 3k, 3.6k, 5k and 8k parameters (seed 1, test set)."),
        new_code_cell('''sizes = recipes.stretch_frontier()
frontier_rows = recipes.run_variants({name: (recipe, kwargs) for name, kwargs in sizes.items()}, SEED,
                                     device=device, settings=settings)
plots.plot_frontier(frontier_rows, epoch=settings.epochs, target_params=recipes.STRETCH_TARGET.params)
Markdown(report.variants_markdown(frontier_rows))'''),
    ]
    out += misclassified_cells()
    out += rf_cells()
    out += [
        new_markdown_cell("## Results\nRendered from seed 1's `history`; the same table fills the slot at the top."),
        new_code_cell('report.show_results(history, f"Results: {recipe.name}", quick=settings.quick,\n'
                      '                     target_line=recipes.target_report(history, target=recipes.STRETCH_TARGET)[1]);'),
    ]
    return out


if __name__ == "__main__":
    print("wrote", write_one(NAME, cells))
