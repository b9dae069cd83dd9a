"""The notebooks' sources: jupytext pairs in sync, each notebook's model cell equal to the package's class,
and one copy of each class in the notebooks.

Instructors edit ``notebooks/NN_*.py`` (jupytext percent format) and sync with
``jupytext --sync``; the ``.ipynb`` beside it holds the outputs of the full run. A pair out of
sync means the committed outputs are not those of the committed source. A student edits the
model class in its notebook cell; the command line and the tests train the package's class of
the same name, so the two must be the same code (as d2l's ``#@save`` cells are its package).
A class is written in the notebook where it is introduced or changed; a later notebook that uses
it unchanged imports it from the package and says where it was defined.
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
#: The notebooks that introduce or change a model define it in a cell.
MODEL_CELL_NOTEBOOKS = ["01_skeleton", "02_lighter", "03_batchnorm", "04_regularizer", "07_stretch",
                        "08_fashion_mnist", "09_cifar10_advanced_convs"]
#: The notebooks that reuse a class unchanged: notebook -> {class: the notebook that defines it}.
IMPORTED_CLASSES = {"05_augmentation": {"Regularized": "04_regularizer"},
                    "06_optimizer": {"Regularized": "04_regularizer"},
                    "09_cifar10_advanced_convs": {"SeparableConv": "07_stretch"}}
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


def _imports_from_models(path: Path) -> set[str]:
    """The names a notebook's code cells import from ``eva_utils.models``."""
    names = set()
    for cell in jupytext.read(path).cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(TransformerManager().transform_cell(cell.source))):
                if isinstance(node, ast.ImportFrom) and node.module == "eva_utils.models":
                    names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("name", sorted(IMPORTED_CLASSES))
def test_a_reused_class_is_imported_and_says_where_it_was_defined(name):
    path = NOTEBOOKS / f"{name}.py"
    markdown = " ".join(c.source for c in jupytext.read(path).cells if c.cell_type == "markdown")
    for cls, home in IMPORTED_CLASSES[name].items():
        assert cls not in _definitions(path), f"{name} writes {cls} out again: import it (it is defined in {home})"
        assert cls in _imports_from_models(path), f"{name} uses {cls} without importing it from eva_utils.models"
        assert isinstance(_definitions(NOTEBOOKS / f"{home}.py").get(cls), ast.ClassDef), f"{home} does not define {cls}"
        assert f"notebook {home[:2]}" in markdown, f"{name} does not say that {cls} is defined in notebook {home[:2]}"


def test_each_model_class_is_written_once_in_the_notebooks():
    where = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py")):
        for cls, node in _definitions(path).items():
            if isinstance(node, ast.ClassDef):
                where.setdefault(cls, []).append(path.stem)
    copies = {cls: names for cls, names in where.items() if len(names) > 1}
    assert not copies, f"classes written out in more than one notebook (import them instead): {copies}"


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_the_cells_nbval_checks_are_marked_by_tags_not_comments_a_student_reads(path):
    """nbval compares a cell's outputs with the committed ones when the cell carries the tag
    ``nbval-check-output`` (parameter counts, summary tables); the tag lives in the cell's metadata,
    so the code a student reads carries no test marker."""
    from nbval.plugin import metadata_tags

    assert metadata_tags["nbval-check-output"] == "check"
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked, f"{path.name}: no cell tagged nbval-check-output"
    assert all(c.cell_type == "code" and c.outputs for c in checked)
    assert not any("NBVAL" in c.source for c in nb.cells)


def _markdown_words(nb, start: str = "", stop: str = "## ") -> int:
    """Words of markdown; with ``start``, only from the cell opening with it to the next heading cell."""
    words, inside = 0, not start
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        text = cell.source.strip()
        if start:
            if text.startswith(start):
                inside = True
            elif inside and text.startswith(stop):
                break
        if inside:
            words += len(text.split())
    return words


@pytest.mark.parametrize("path", IPYNBS, ids=lambda p: p.stem)
def test_each_analysis_is_a_summary_not_a_log(path):
    """A student reads the Analysis before the lesson: at most 400 words; a design log goes to the appendix."""
    nb = nbformat.read(path, as_version=4)
    assert _markdown_words(nb, start="## Analysis") <= 400


def test_the_schedule_step_is_a_lesson_of_under_a_thousand_words_with_its_design_log_in_the_appendix():
    nb = nbformat.read(NOTEBOOKS / "06_optimizer.ipynb", as_version=4)
    assert _markdown_words(nb) < 1000
    assert "10_appendix_design_log.ipynb" in " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    appendix = nbformat.read(NOTEBOOKS / "10_appendix_design_log.ipynb", as_version=4)
    code = " ".join(c.source for c in appendix.cells if c.cell_type == "code")
    assert "load_design_runs" in code and "recipes.run" not in code and "fit(" not in code  # renders, trains nothing
