# mnist-diffusion: the index of everything that can be run. `make help` lists the targets.
# Every target sets itself up: the first one creates .venv and installs the package with its dev extras.

PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Data root: $MNIST_DIFFUSION_DATA if set, else the shared offline copy beside the repo, else ./data.
export MNIST_DIFFUSION_DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),$(abspath ../shared/data),$(abspath data))

.DEFAULT_GOAL := help
.PHONY: help install data verify test test-fast train-smoke train-baseline train-unet clean-runs
.PHONY: classifier floors evaluate
.PHONY: bench

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package (editable) with dev extras

data: $(STAMP) ## get MNIST into the data root (no-op when already there and verified)
	$(PYTHON) -m mnist_diffusion data fetch

verify: $(STAMP) ## check the four MNIST files' sizes and md5 sums
	$(PYTHON) -m mnist_diffusion data verify

test: data ## run the whole test suite (what CI runs)
	$(PYTHON) -m pytest

test-fast: data ## the test suite without the tests marked slow
	$(PYTHON) -m pytest -m "not slow"

train-smoke: data ## seconds-long end-to-end run of the UNet recipe, into runs/smoke/
	$(PYTHON) -m mnist_diffusion train --config configs/ddpm_unet.yaml --profile smoke

train-baseline: data ## train the coursework baseline (configs/ddpm_baseline.yaml) into runs/ddpm_baseline/
	$(PYTHON) -m mnist_diffusion train --config configs/ddpm_baseline.yaml $(if $(wildcard runs/ddpm_baseline/checkpoints/*.pt),--resume)

train-unet: data ## train the project's recipe (configs/ddpm_unet.yaml) into runs/ddpm_unet/
	$(PYTHON) -m mnist_diffusion train --config configs/ddpm_unet.yaml $(if $(wildcard runs/ddpm_unet/checkpoints/*.pt),--resume)

classifier: data ## retrain the evaluation's MNIST classifier into the committed weights (seeded, minutes on CPU)
	$(PYTHON) -m mnist_diffusion train-classifier

floors: data ## real-data floors at N = 10,000 into results/floors/<classifier hash>_n10000.json
	$(PYTHON) -m mnist_diffusion evaluate --floors --n 10000

SAMPLES ?= samples.npz
METRICS ?= metrics.json
evaluate: data ## fidelity metrics of SAMPLES (one or more npz, one per seed) into METRICS, floors beside them
	$(PYTHON) -m mnist_diffusion evaluate --samples $(SAMPLES) --out $(METRICS)

BENCH_FLAGS ?=
bench: data ## performance benchmarks (~25 min on 2 cores; idle machine) into benchmarks/results/, then the README table
	$(PYTHON) benchmarks/bench_training.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/bench_sampling.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/bench_evaluation.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/profile_training.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/report.py

clean-runs: ## delete scratch runs (runs/); committed results are untouched
	rm -rf runs
