# Two commands on a fresh machine: `make run` trains the default experiment, `make test` checks
# everything CI checks. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision come from the machine's local wheels where pip is capped (see README).
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: install install-dev run test typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/typedexp

test: install-dev
	$(BIN)/python -m pytest
	$(MAKE) typecheck

typecheck: install-dev
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) outputs multirun swanlog .mypy_cache .pytest_cache
