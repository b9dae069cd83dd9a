"""The Colab route: a plain (non-editable) install of the package and one notebook in an empty folder.

That is all a student has on Colab: no ``notebooks/`` beside the package, no ``tools/``,
no repository. Here the package is installed with ``pip install --no-deps --target``
into a temporary folder, which goes first on the kernel's path; every MNIST notebook is
copied alone into an empty folder and executed there in quick mode (EVA_SMOKE=1). A
last cell asserts that the kernel imported that installed copy, not this checkout.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError

REPO = Path(__file__).resolve().parent.parent
MNIST_NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("0[1-7]_*.ipynb"))

pytestmark = pytest.mark.skipif(not MNIST_NOTEBOOKS, reason="no notebooks in this checkout")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package as pip installs it from the repository (package data included), nothing else."""
    target = tmp_path_factory.mktemp("site-packages")
    build = tmp_path_factory.mktemp("source") / "eva"
    # build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    shutil.copytree(REPO, build, ignore=shutil.ignore_patterns(".venv", ".git", "notebooks", "runs", "build",
                                                                 "*.egg-info", "__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--target", str(target), str(build)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (target / "eva_utils" / "results" / "03_batchnorm.json").is_file(), "reference runs not shipped"
    return target


#: A quick-mode cell takes seconds; one silent this long lost a kernel message (seen once in CI,
#: kernel and client both idle): the notebook is run once more from a fresh kernel instead of hanging.
CELL_TIMEOUT_S = 240


def run_alone(notebook: str, installed: Path, folder: Path, tries: int = 2) -> nbformat.NotebookNode:
    """Copy ``notebook`` alone into ``folder`` and execute it there, importing the installed copy."""
    try:
        return _execute_alone(notebook, installed, folder)
    except CellTimeoutError:
        if tries <= 1:
            raise
        print(f"{notebook}: a cell was silent for {CELL_TIMEOUT_S} s; running it again in a fresh kernel")
        return run_alone(notebook, installed, folder.with_name(folder.name + "_again"), tries - 1)


def _execute_alone(notebook: str, installed: Path, folder: Path) -> nbformat.NotebookNode:
    folder.mkdir()
    shutil.copy(REPO / "notebooks" / notebook, folder / notebook)
    nb = nbformat.read(folder / notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import eva_utils, pathlib\n"
        f"assert pathlib.Path(eva_utils.__file__).resolve().is_relative_to({str(installed.resolve())!r}), "
        "eva_utils.__file__\n"
        "print('imported', eva_utils.__file__)"))
    env = {**os.environ, "EVA_SMOKE": "1", "PYTHONPATH": str(installed), "OMP_NUM_THREADS": "1"}
    env.pop("EVA_RESULTS", None)
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute(env=env)  # env: the kernel's
    return nb


@pytest.mark.parametrize("notebook", MNIST_NOTEBOOKS)
def test_notebook_runs_from_a_pip_install_in_an_empty_folder(notebook, installed, tmp_path):
    nb = run_alone(notebook, installed, tmp_path / "colab")
    last = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert f"imported {installed.resolve()}" in last or "imported " + str(installed) in last
    # nothing was written into the installed package; quick runs save no history anywhere
    assert sorted(p.name for p in (installed / "eva_utils" / "results").iterdir()) == \
        sorted(p.name for p in (REPO / "eva_utils" / "results").iterdir())
    assert not (tmp_path / "colab" / "results").exists()


def test_every_notebook_installs_the_package_version_it_ran_with():
    """The Colab cell pins a tag (never a branch): the tag of this package version."""
    import re
    from importlib import metadata

    import eva_utils

    assert eva_utils.COLAB_INSTALL.endswith(f".git@v{eva_utils.__version__}")
    assert metadata.version("eva-utils") == eva_utils.__version__  # pyproject reads the same number
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cells = [cell.source for cell in nb.cells if cell.cell_type == "code" and "google.colab" in cell.source]
        assert cells, f"{path.name}: no Colab install cell"
        for source in cells:  # subprocess.run([... "pip", "install", "-q", "eva-utils @ ..."]) (or a !pip line)
            assert "pip" in source and "install" in source, f"{path.name}: its Colab cell installs nothing"
            required = re.findall(r"\"(eva-utils @ [^\"]*)\"", source)
            assert required == [eva_utils.COLAB_INSTALL], \
                f"{path.name}: installs {required} (edit the install line in its .py source, then `jupytext --sync` it)"
