"""Write notebook 08 (Fashion-MNIST) from one place, like tools/notebook_sources.py.

Reuses that script's badge, set-up cell and layout. Run it, then execute the notebook in full
(``OMP_NUM_THREADS=1 python tools/run_notebooks.py notebooks/08_fashion_mnist.ipynb``); the
Analysis already written in an existing notebook is kept. The validation runs it shows come
from ``tools/fashion_design.py`` (``eva_utils/results/08_design_*.json``, shipped with the package).

    python tools/fashion_notebook_source.py
"""
from __future__ import annotations

import sys
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_sources import SETUP, top, write_one  # noqa: E402

NAME = "08_fashion_mnist"

TARGET = (
    "- The same design method on a second dataset, **Fashion-MNIST** (Zalando): 28x28 grey images of "
    "ten kinds of clothes, in MNIST's exact format (60,000 training and 10,000 test images).\n"
    "- Measure the course's **final architecture as it is** (notebook 06's 7,756-parameter model and "
    "recipe, rotation ±7° included) on Fashion-MNIST, 15 epochs.\n"
    "- Design an **adapted model under 8,000 parameters** for clothes, deciding on a **validation split** "
    "(the last 10,000 training images), never on the test set; train it 15 epochs and compare.\n"
    "- Say what transfers from digits to clothes and what does not."
)


def cells(analysis: str) -> list:
    out = top(NAME, "08 · Fashion-MNIST: does the design transfer?", TARGET, analysis)
    out[1] = new_code_cell(SETUP.replace("from eva_utils.summary import summary",
                                         "from eva_utils import augment, fashion\n"
                                         "from eva_utils.summary import summary\n"
                                         "from IPython.display import Markdown"))
    out += [
        new_markdown_cell(
            "## Data\nRead by `torchvision.datasets.FashionMNIST` from `<data>/FashionMNIST/raw`. Where the raw "
            "files are missing or wrong, torchvision downloads them (with internet); without internet they are "
            "decompressed from the four original `.gz` files that Debian's `dataset-fashion-mnist` package "
            "installs in `/usr/share/datasets/fashion-mnist` (or a folder named by `$EVA_FASHION_MNIST_DIR`). "
            "Whatever the source, the four uncompressed files are checked against the MD5s of the original "
            "files before every use; a wrong file is deleted, never trained on. (Debian re-compressed the "
            "`.gz` files, so their MD5s differ from the upstream downloads torchvision lists; the files inside "
            "are byte for byte the original ones, which is what the table checks.)"),
        new_code_cell('''root = fashion.ensure_fashion_mnist()
print("raw files in", fashion.raw_dir(root), "| source:", fashion.source(root))
Markdown(fashion.checksum_markdown(root))'''),
        new_code_cell('''train_set, test_set = fashion.dataset(True, root), fashion.dataset(False, root)
counts = Markdown("| class | label | train images | test images |\\n|---|---|---|---|\\n" + "\\n".join(
    f"| {name} | {c} | {n_train:,} | {n_test:,} |" for c, (name, n_train, n_test) in enumerate(zip(
        fashion.class_names, torch.bincount(train_set.targets).tolist(), torch.bincount(test_set.targets).tolist()))))
mean, std = fashion.pixel_stats(train_set.data)
print(f"train {tuple(train_set.data.shape)}, test {tuple(test_set.data.shape)}, {train_set.data.dtype}")
print(f"training pixels: mean {mean:.4f}, std {std:.4f} (published: {fashion.FASHION_MEAN:.4f}, "
      f"{fashion.FASHION_STD:.4f}; MNIST's are {data.MNIST_MEAN}, {data.MNIST_STD})")
counts'''),
        new_code_cell('''first = [int(torch.nonzero(test_set.targets == c)[i]) for i in range(2) for c in range(10)]
plots.show_images(test_set.data[first].unsqueeze(1).float() / 255, [fashion.class_names[test_set.targets[i]] for i in first],
                  ncols=10, normalized=False, title="Two test images of every class");'''),
        new_markdown_cell(
            "## 1. The course's final model, as it is\nNotebook 06's model (`models.build(\"final\")`) and recipe "
            "(`recipes.RECIPES[\"final\"]`: SGD + Nesterov under OneCycle, random rotation ±7°), unchanged; only "
            "the data and its normalisation (Fashion-MNIST's own mean and std) differ."),
        new_code_cell('''# NBVAL_CHECK_OUTPUT
SEED = 1
engine.seed_everything(SEED)  # before the weights are drawn
final_model = models.build("final")
print(f"{engine.count_parameters(final_model):,} parameters")'''),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nsummary(final_model, (1, 28, 28))"),
        new_code_cell('''final_recipe = recipes.RECIPES["final"]
settings = final_recipe.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
final_loaders = fashion.loaders(final_recipe.batch_size, augment=augment.RandomAffine(degrees=final_recipe.rotation),
                                device=device, seed=SEED, train_limit=settings.train_limit,
                                test_limit=settings.test_limit)
optimizer, scheduler = final_recipe.make_optimizer(final_model, len(final_loaders.train), settings.epochs)
final_recipe'''),
        new_code_cell('''final_history = engine.fit(final_model, settings.epochs, final_loaders.train, final_loaders.test,
                           optimizer, scheduler, device=device)
final_history.meta["device_name"] = report.device_description(device)
report.save_history(final_history, "08_fashion_final", quick=settings.quick)
plots.plot_history(final_history, "the final model as is, on Fashion-MNIST", target=None);'''),
        new_markdown_cell(
            "## 2. Design on a validation split\nWhat should change for clothes? The choices were compared "
            "by `tools/fashion_design.py`, which trains on the **first 50,000** training images and scores on "
            "the **last 10,000** (`fashion.loaders(valid_size=10_000)`), 8 epochs per variant (short, to keep "
            "the exploration small), seed 1, the final model's optimizer and schedule. The test set played no "
            "part. Its saved runs (`08_design_*.json`, shipped with `eva_utils`), in the order they were made:\n\n"
            "- `final_rot7`: the final model and recipe as they are (rotation ±7°);\n"
            "- `final_shiftflip`: the same model, shifts of up to 2 pixels and horizontal flips instead of "
            "rotation (a mirrored shirt is still a shirt; a mirrored 2 is not a 2);\n"
            "- `candidate1_shiftflip`: a first adapted candidate, every conv padded and a second max-pool "
            "down to 7x7 (same 7,756 parameters; its code is in `tools/fashion_design.py`), shift + flip;\n"
            "- `final_flip`: the final model, flips only;\n"
            "- `adapted_flip`: the adapted model below (first block padded), flips only.\n\n"
            "The last column is the over-fitting gap: negative means the model does better on images it "
            "never trained on than on its own (augmented) training images."),
        new_code_cell('''design = {name: report.load_history(f"08_design_{name}") for name in
          ("final_rot7", "final_shiftflip", "candidate1_shiftflip", "final_flip", "adapted_flip")}
print("evaluated on:", design["final_rot7"].meta["evaluated_on"])
Markdown(fashion.comparison_markdown(design, split="validation"))'''),
        new_markdown_cell(
            "## 3. The adapted model\nComments give each layer's output size and receptive field; the summary "
            "recomputes both from the forward pass. Its augmentation (flips only) and recipe (the final model's "
            "optimizer and OneCycle schedule):"),
        new_code_cell("print(inspect.getsource(fashion.FashionNet))\nprint(inspect.getsource(fashion.adapted_augment))\n"
                      "fashion.ADAPTED_RECIPE"),
        new_code_cell('''# NBVAL_CHECK_OUTPUT
engine.seed_everything(SEED)
model = models.build("fashion_adapted")
print(f"{engine.count_parameters(model):,} parameters")'''),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nsummary(model, (1, 28, 28))"),
        new_code_cell('''recipe = fashion.ADAPTED_RECIPE
settings = recipe.run_settings()
loaders = fashion.loaders(recipe.batch_size, augment=fashion.adapted_augment(), device=device, seed=SEED,
                          train_limit=settings.train_limit, test_limit=settings.test_limit)
optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), settings.epochs)
plots.show_augmented(loaders.train, n=8, repeats=3, class_names=fashion.class_names,
                     title="Row 1: original; rows 2-4: random flip draws");'''),
        new_code_cell('''history = engine.fit(model, settings.epochs, loaders.train, loaders.test, optimizer, scheduler,
                     device=device)
history.meta["device_name"] = report.device_description(device)
report.save_history(history, recipe.name, quick=settings.quick)
plots.plot_history(history, "the adapted model, on Fashion-MNIST", target=None);'''),
        new_markdown_cell("## 4. The two models side by side\nOn the test set, each after its own 15-epoch run; "
                          "then the accuracy per class."),
        new_code_cell('''Markdown(fashion.comparison_markdown({"final model as is (rotation ±7°)": final_history,
                                     "adapted model (flips)": history}))'''),
        new_code_cell('''Markdown(fashion.per_class_markdown({
    "final as is": fashion.per_class_accuracy(final_model, final_loaders.test),
    "adapted": fashion.per_class_accuracy(model, loaders.test)}))'''),
        new_markdown_cell("## What the adapted model gets wrong\nMisclassified test images (predicted / true), "
                          "spread over all of them."),
        new_code_cell("plots.show_misclassified(model, loaders.test, n=24, class_names=fashion.class_names,\n"
                      "                        mean=loaders.test.normalize.mean, std=loaders.test.normalize.std);"),
        new_markdown_cell("## Results\nRendered from the adapted model's `history`, compared with the final "
                          "model's; the same table fills the slot at the top."),
        new_code_cell('report.show_results(history, f"Results: {recipe.name}", quick=settings.quick,\n'
                      '                    target_line=fashion.target_line(history, final_history));'),
    ]
    return out


def write() -> Path:
    return write_one(NAME, cells)


if __name__ == "__main__":
    print("wrote", write())
