# Two commands on a fresh machine: `make run` trains the default experiment, `make test` checks
# everything CI checks. Both create .venv on first use.
# The first Python >= 3.10 on PATH (python3 itself when it is new enough); PYTHON=... overrides it.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11 python3.10; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
	&& { echo $$p; break; }; done)
# TORCH=cpu installs PyTorch's CPU-only wheels first (no CUDA libraries, ~5 GB less); the default
# is PyPI's torch, which runs on a GPU when there is one.
TORCH ?= default
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision come from the machine's local wheels where pip is capped (see README).
PIP_INSTALL := $(BIN)/python -m pip install --disable-pip-version-check -q

INSTALL_TORCH := $(if $(filter cpu,$(TORCH)),$(PIP_INSTALL) --index-url $(TORCH_CPU_INDEX) torch torchvision,true)

.PHONY: install install-dev run test typecheck bench mutation clean python-check

python-check:
	@test -n "$(PYTHON)" || { echo "typedexp: no Python >= 3.10 found on PATH (python3, python3.13 ... python3.10); install one, or run make PYTHON=/path/to/python" >&2; exit 1; }
	@echo $(PYTHON)

$(BIN)/python: | python-check
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(INSTALL_TORCH)
	$(PIP_INSTALL) -e .
	touch $@

# The dev install includes Optuna (hpo) and the joblib and submitit launchers: tests/test_launchers.py runs sweeps
# under both. Ray (the `ray` extra) stays out: it downgrades cloudpickle (see pyproject.toml).
DEV_EXTRAS := dev,hpo,joblib,slurm

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(INSTALL_TORCH)
	$(PIP_INSTALL) -e '.[$(DEV_EXTRAS)]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/typedexp

test: install-dev
	$(BIN)/python -m pytest -n auto --dist loadgroup  # one worker per core (pytest-xdist); docs/development.md
	$(MAKE) typecheck

# Two checkers: mypy --strict (mypy.ini) and pyright in standard mode (pyrightconfig.json).
typecheck: install-dev
	$(BIN)/python -m mypy
	$(BIN)/basedpyright

# Every measured claim in benchmarks/README.md; a few minutes on 2 cores.
bench: install-dev
	$(BIN)/python -m benchmarks.engine_parity
	$(BIN)/python -m benchmarks.engine_overhead
	$(BIN)/python -m benchmarks.tracking_cost
	$(BIN)/python -m benchmarks.startup
	$(BIN)/python -m benchmarks.patches
	$(BIN)/python -m benchmarks.data_path
	$(BIN)/python -m benchmarks.sweep
	$(BIN)/python -m benchmarks.job_parts
	$(BIN)/python -m benchmarks.media_cost
	$(BIN)/python -m benchmarks.hpo
	$(BIN)/python -m benchmarks.sweep_summary
	$(BIN)/python -m benchmarks.runs_table

$(VENV)/.installed-mutation: pyproject.toml | $(BIN)/python
	$(PIP_INSTALL) -e '.[$(DEV_EXTRAS),mutation]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

# Mutation score per module (mutmut; tens of minutes on 2 cores, not part of `make test`).
# One module: `make mutation MODULES=specs/models`. Fails below 85% or on a survivor that
# mutation/equivalent.txt does not list with its reason.
MODULES ?=
mutation: $(VENV)/.installed-mutation
	$(BIN)/python -m mutation.run $(MODULES)

clean:
	rm -rf $(VENV) outputs multirun swanlog .mypy_cache .pytest_cache .mutation
