"""Export notebooks to standalone HTML for readers without a kernel (``make html``).

Why not plain ``jupyter nbconvert --to html``: nbconvert then loads the widget renderer from a CDN
at *any* version (``@jupyter-widgets/html-manager@*``), so a page made today may break when a new
major version appears. Here the range is pinned to the manager that matches ipywidgets 8 (the
``1.x`` series). Offline, or where the CDN is blocked, the widgets cannot come alive in any case;
every course widget therefore also leaves a static picture of its current state and a one-line
note (``eva_utils.widgets``), which the HTML shows without any script.

    python tools/export_html.py notebooks/*.ipynb --output-dir build/html
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

#: The widget renderer for ipywidgets 8 (its widget protocol 2): html-manager 1.x, never a later major.
HTML_MANAGER_RANGE = "^1.0.0"


def exporter() -> HTMLExporter:
    """nbconvert's HTML exporter with the widget renderer's version range pinned."""
    html = HTMLExporter()
    html.html_manager_semver_range = HTML_MANAGER_RANGE
    return html


def export(path: Path, output_dir: Path) -> Path:
    """Write ``path`` (a notebook) as ``output_dir/<name>.html``; returns the file written."""
    body, _resources = exporter().from_notebook_node(nbformat.read(path, as_version=4))
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
