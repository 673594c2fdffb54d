# Set-up and the two README commands. `make quickstart` and `make test` create .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# A CPU build of torch; in pyproject the range is torch>=2.4. Override: make TORCH_SPEC='torch==2.5.1'
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: venv quickstart test test-fast clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,eval,harness]"
	touch $@

venv: $(VENV)/.installed

quickstart: venv
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/paradistill quickstart

test: venv
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-fast: venv
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
