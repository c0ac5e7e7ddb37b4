# make demo: set up .venv and run the whole pipeline on the embedded synthetic sources.
# make test: set up .venv and run the test suite (the CI command).
# make test-fast: the unmarked tests only (no real dvc repro, no TensorFlow training), for the edit loop.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup demo test test-fast bench figures verify clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks.prepare_bench
	$(BIN)/python -m benchmarks.augment_bench
	$(BIN)/python -m benchmarks.dvc_bench
	$(BIN)/python -m benchmarks.train_input_bench
	$(BIN)/python -m benchmarks.cli_bench

figures: $(STAMP)
	$(BIN)/python -m scripts.readme_figures

verify: $(STAMP)
	$(BIN)/python -m scripts.verify --dataset lasc

clean:
	rm -rf data artifacts metrics reports
