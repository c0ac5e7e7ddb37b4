# make demo: set up .venv and run the whole pipeline on the embedded synthetic sources.
# make test: set up .venv and run the test suite (the CI command).
# make test-fast: the unmarked tests only (no real dvc repro, no TensorFlow training), for the edit loop.
# make bench: every speed figure as a ratio to a floor measured in the same run (installs med2image, the
#   tool prepare is compared with, into .venv-m2i: it needs numpy<2 and nibabel<5).
# make setup GPU=1: the CUDA build of the same TensorFlow instead of the CPU build (Linux x86_64,
#   NVIDIA driver); GPU=0 goes back to the CPU build; unset keeps the build the venv has (CPU when new).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
BUILD  := $(if $(filter 1 yes true,$(GPU)),gpu,$(if $(filter 0 no false,$(GPU)),cpu,$(if $(wildcard $(VENV)/.installed-gpu),gpu,cpu)))
OTHER  := $(if $(filter gpu,$(BUILD)),cpu,gpu)
# The distribution the other build brings: both provide the module `tensorflow`, so it goes first.
OTHER_TF := $(if $(filter gpu,$(BUILD)),tensorflow-cpu,tensorflow)
STAMP  := $(VENV)/.installed-$(BUILD)
export PATH := $(CURDIR)/$(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL := 2

.PHONY: setup demo test test-fast bench figures verify clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip uninstall --quiet --yes $(OTHER_TF)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[$(BUILD),test]'
	rm -f $(VENV)/.installed $(VENV)/.installed-$(OTHER)
	$(BIN)/python -m scripts.tf_build
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow"

# med2image, the tool prepare is compared with, needs numpy<2 and nibabel<5: a venv of its own
M2I := .venv-m2i/bin/med2image
$(M2I): benchmarks/med2image-requirements.txt
	$(PYTHON) -m venv .venv-m2i
	.venv-m2i/bin/pip install --quiet -r benchmarks/med2image-requirements.txt
	touch $(M2I)

bench: $(STAMP) $(M2I)
	$(BIN)/python -m benchmarks.prepare_bench --med2image $(M2I)
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
