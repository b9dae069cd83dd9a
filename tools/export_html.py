"""Export notebooks to standalone HTML for readers without a kernel (``make html``).

Why not plain ``jupyter nbconvert --to html``: for a widget output nbconvert writes only a script
tag that loads the widget renderer from a CDN at *any* version (``@jupyter-widgets/html-manager@*``),
so offline the cell is blank, and online it shows controls that cannot work (the course's widgets
redraw through Python, and an HTML page has no kernel). Every course widget also saves a picture
of its opening view and a one-line note (``eva_utils.widgets``); this export shows those instead
and loads no widget code at all. Should another widget without a picture remain, the renderer's
version range is pinned to the manager that matches ipywidgets 8 (the ``1.x`` series).

    python tools/export_html.py notebooks/*.ipynb --output-dir build/html
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import html

import nbformat
from nbconvert import HTMLExporter

#: The widget renderer for ipywidgets 8 (its widget protocol 2): html-manager 1.x, never a later major.
HTML_MANAGER_RANGE = "^1.0.0"


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def widgets_as_pictures(nb) -> int:
    """Replace each widget output that carries a picture by that picture and its note (HTML);
    drop the saved widget state when no live widget is left. Returns how many were replaced."""
    replaced, live = 0, 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            if "image/png" not in data:
                live += 1
                continue
            note = html.escape(str(data.get("text/plain", "")))
            out["data"] = {"text/html": f'<img src="data:image/png;base64,{data["image/png"].strip()}" '
                                        f'alt="{note}"><p><em>{note}</em></p>',
                           "text/plain": data.get("text/plain", "")}
            replaced += 1
    if not live:
        nb.metadata.pop("widgets", None)
    return replaced


def exporter() -> HTMLExporter:
    """nbconvert's HTML exporter with the widget renderer's version range pinned."""
    html = HTMLExporter()
    html.html_manager_semver_range = HTML_MANAGER_RANGE
    return html


def export(path: Path, output_dir: Path) -> Path:
    """Write ``path`` (a notebook) as ``output_dir/<name>.html``; returns the file written."""
    nb = nbformat.read(path, as_version=4)
    widgets_as_pictures(nb)
    body, _resources = exporter().from_notebook_node(nb)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / (path.stem + ".html")
    target.write_text(body, encoding="utf-8")
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--output-dir", type=Path, default=Path("build/html"))
    args = parser.parse_args(argv)
    for path in args.notebooks:
        if not path.is_file():
            print(f"no notebook at {path}: give .ipynb files (for example notebooks/*.ipynb)", file=sys.stderr)
            return 2
        print(export(path, args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
