# Two commands on a fresh machine: `make run` trains the default experiment, `make test` checks
# everything CI checks. Both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision come from the machine's local wheels where pip is capped (see README).
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q

.PHONY: install install-dev run test typecheck bench mutation clean

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

# Every measured claim in README's Performance section; a few minutes on 2 cores.
bench: install-dev
	$(BIN)/python -m benchmarks.engine_parity
	$(BIN)/python -m benchmarks.engine_overhead
	$(BIN)/python -m benchmarks.tracking_cost
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.data_path
	$(BIN)/python -m benchmarks.sweep

$(VENV)/.installed-mutation: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[dev,mutation]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

# Mutation score per module (mutmut; tens of minutes on 2 cores, not part of `make test`).
# One module: `make mutation MODULES=models`. Fails below 85% or on a survivor that
# mutation/equivalent.txt does not list with its reason.
MODULES ?=
mutation: $(VENV)/.installed-mutation
	$(BIN)/python -m mutation.run $(MODULES)

clean:
	rm -rf $(VENV) outputs multirun swanlog .mypy_cache .pytest_cache .mutation
