"""The notebooks' sources: jupytext pairs in sync, and each notebook's model cell equal to the package's class.

Instructors edit ``notebooks/NN_*.py`` (jupytext percent format) and sync with
``jupytext --sync``; the ``.ipynb`` beside it holds the outputs of the full run. A pair out of
sync means the committed outputs are not those of the committed source. A student edits the
model class in its notebook cell; the command line and the tests train the package's class of
the same name, so the two must be the same code (as d2l's ``#@save`` cells are its package).
"""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import jupytext
import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from eva_utils import models

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
IPYNBS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
#: Every notebook defines its model in a cell.
MODEL_CELL_NOTEBOOKS = ["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer", "05_augmentation",
                        "06_optimizer", "07_stretch", "08_fashion_mnist", "09_cifar10_advanced_convs"]
#: Where the package keeps the notebooks' classes: one registry of models for every dataset.
PACKAGE_MODULES = (models,)


def _package_object(name: str):
    return next((getattr(m, name) for m in PACKAGE_MODULES if hasattr(m, name)), None)


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source.strip()) for c in nb.cells]


def test_every_notebook_has_a_jupytext_source():
    assert IPYNBS, "no notebooks found"
    missing = [p.name for p in IPYNBS if not p.with_suffix(".py").is_file()]
    assert not missing, f"no .py source beside {missing}: run `jupytext --set-formats ipynb,py:percent` on them"


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_pair_is_in_sync(path):
    source = jupytext.read(path.with_suffix(".py"))
    executed = nbformat.read(path, as_version=4)
    src_cells, run_cells = _cells(source), _cells(executed)
    for i, (a, b) in enumerate(zip(src_cells, run_cells)):
        assert a == b, (f"{path.name} cell {i} differs from {path.with_suffix('.py').name}: "
                        f"run `jupytext --sync {path.with_suffix('.py')}` and re-execute the notebook")
    assert len(src_cells) == len(run_cells), f"{path.name}: {len(run_cells)} cells, its source {len(src_cells)}"


def _definitions(path: Path) -> dict[str, ast.AST]:
    """Top-level classes and functions defined in the notebook's code cells."""
    nb = jupytext.read(path)
    found = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code = TransformerManager().transform_cell(cell.source)  # !pip, %matplotlib: Python, as IPython runs them
        for node in ast.parse(code).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                found[node.name] = node
    return found


def _same_code(a: ast.AST, b: ast.AST) -> bool:
    return ast.dump(a, include_attributes=False) == ast.dump(b, include_attributes=False)


@pytest.mark.parametrize("name", MODEL_CELL_NOTEBOOKS)
def test_model_cells_equal_the_package(name):
    definitions = _definitions(NOTEBOOKS / f"{name}.py")
    classes = [n for n, node in definitions.items() if isinstance(node, ast.ClassDef)]
    assert classes, f"{name}: no model class defined in a cell"
    for cls in classes:
        assert _package_object(cls) is not None, f"{name} defines {cls}, which the package lacks: add it there too"
    for fn, node in definitions.items():
        obj = _package_object(fn)
        if obj is None:
            continue  # the notebook's own helpers (01's plain training loop)
        package = ast.parse(inspect.getsource(obj)).body[0]
        assert _same_code(node, package), (f"{name}: {fn} differs from {obj.__module__}.{fn}; "
                                           "change both, or copy one into the other")


def test_a_changed_class_is_caught(tmp_path):
    """The check above really compares code: one changed channel count fails it."""
    source = inspect.getsource(models.Regularized)
    changed = source.replace("conv_block(1, 8, bn=True", "conv_block(1, 10, bn=True")
    assert changed != source
    assert not _same_code(ast.parse(changed).body[0], ast.parse(source).body[0])
