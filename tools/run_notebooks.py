"""Execute notebooks in place, one progress line per notebook (``make notebooks``).

Full runs are what gets committed. Each notebook saves its history into the repository's
``eva_utils/results`` (``$EVA_RESULTS``), the course's reference runs that ship with the package. With EVA_SMOKE=1 the notebooks run in quick mode;
this script then refuses to write them back unless --allow-quick is given, so a quick
run can never replace a real one by accident.

    python tools/run_notebooks.py notebooks/*.ipynb
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    parser.add_argument("--allow-quick", action="store_true", help="write back quick-mode runs too")
    args = parser.parse_args(argv)
    quick = os.environ.get("EVA_SMOKE", "").strip().lower() not in ("", "0", "false", "no")
    if quick and not args.allow_quick:
        print("EVA_SMOKE is set: quick runs are never committed. Unset it, or pass --allow-quick.")
        return 2
    os.environ.setdefault("EVA_RESULTS", str(Path(__file__).resolve().parent.parent / "eva_utils" / "results"))
    paths = sorted(args.notebooks)
    for i, path in enumerate(paths, 1):
        start = time.perf_counter()
        print(f"[{i}/{len(paths)}] {path.name}: running ...", flush=True)
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        client.execute()
        nbformat.write(nb, path)
        print(f"[{i}/{len(paths)}] {path.name}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
