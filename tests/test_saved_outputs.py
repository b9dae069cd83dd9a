"""What a saved notebook shows a reader without a kernel (GitHub, nbviewer, an export): a
real kernel runs a small notebook (nbclient, as ``make notebooks`` does) and the outputs
it saved are read back."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
WIDGET = "application/vnd.jupyter.widget-view+json"

CELLS = [
    f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    "import torch\nfrom eva_utils import data, engine, models, widgets\n"
    "engine.seed_everything(0)\n"
    "loaders = data.loaders(64, device='cpu', splits=data.Splits(train_limit=256, test_limit=100))\n"
    "model = models.build('final')",
    "engine.train(model, 'cpu', loaders.train, torch.optim.SGD(model.parameters(), lr=0.01), progress=True);",
    "widgets.rf_explorer(model, next(iter(loaders.test))[0][:3]);",
    "widgets.misclassified_browser(model, loaders.test)",  # no semicolon: the returned value shows too
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    folder = tmp_path_factory.mktemp("nb")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    nbformat.write(nb, folder / "saved.ipynb")
    return nbformat.read(folder / "saved.ipynb", as_version=4)


def _texts(cell):
    for out in cell.outputs:
        if "text" in out:
            yield out.text
        for mime, value in out.get("data", {}).items():
            if mime == "text/plain":
                yield value


def test_progress_bars_leave_their_last_state_as_text(saved):
    cell = saved.cells[1]
    assert not any(WIDGET in out.get("data", {}) for out in cell.outputs)
    bars = [text for text in _texts(cell) if "Batch_id=" in text]
    assert len(bars) == 1, list(_texts(cell))
    assert "100%" in bars[0] and "4/4" in bars[0] and "0%|" not in bars[0].replace("100%|", "")


@pytest.mark.parametrize("index,words", [(2, "RF explorer"), (3, "Misclassified browser")])
def test_each_widget_leaves_a_picture_and_a_one_line_note(saved, index, words):
    cell = saved.cells[index]
    shown = [out for out in cell.outputs if WIDGET in out.get("data", {})]
    assert len(shown) == 1
    data = shown[0]["data"]
    assert data["image/png"].startswith("iVBOR")  # a PNG of the opening view, for viewers without a kernel
    note = data["text/plain"]
    assert note.startswith(words) and "interactive when the notebook runs" in note and "\n" not in note
    for text in _texts(cell):  # never the widget tree as text
        assert "VBox(" not in text and "IntSlider(" not in text and "Output()" not in text
    assert "widget-state+json" in str(saved.metadata.get("widgets", {}))  # the live state is saved too


def test_an_html_export_shows_each_widget_as_its_picture_and_loads_no_widget_code(saved, tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import export_html

    path = tmp_path / "saved.ipynb"
    nbformat.write(saved, path)
    page = export_html.export(path, tmp_path / "html").read_text()
    assert "html-manager" not in page and WIDGET not in page  # nothing to fetch from a CDN, offline or not
    for words in ("RF explorer", "Misclassified browser"):
        assert page.count(f"<p><em>{words}") == 1  # the one-line note under its picture
    pictures = [out["data"]["image/png"].strip()[:200] for cell in saved.cells[2:4] for out in cell.outputs
                if WIDGET in out.get("data", {})]
    assert len(pictures) == 2 and all(f'src="data:image/png;base64,{p}' in page for p in pictures)
