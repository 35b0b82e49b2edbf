# Developer and CI entry points. Needs only python3 (3.10+) with its venv module and GNU make.
#
#   make demo                        install with the asyncio extra, run `sqlaudit demo`
#   make test                        ruff, ruff format --check, mypy, import-linter, pytest
#   make test SQLALCHEMY="SQLAlchemy==2.0.30"   ... against another SQLAlchemy
#   make test PYTEST_ARGS="-k budget -x"        ... passing arguments to pytest
#   make test VENV=.venv-other                  ... in another virtualenv
#   make clean                       remove $(VENV)
#
# The virtualenv is created once; the project is (re)installed into it when pyproject.toml or
# the SQLALCHEMY requirement changed since the last install (stamp files inside $(VENV)).
# Going back from a pinned SQLALCHEMY to none keeps the pinned release: `make clean` first.

PYTHON ?= python3
VENV ?= .venv
SQLALCHEMY ?=
PYTEST_ARGS ?=

VENV_PY := $(VENV)/bin/python
PIP := $(VENV_PY) -m pip
DEV_STAMP := $(VENV)/.sqlaudit-installed-dev
DEMO_STAMP := $(VENV)/.sqlaudit-installed-asyncio
SA_SPEC := $(VENV)/.sqlaudit-sqlalchemy-spec

.DEFAULT_GOAL := test
.PHONY: demo test clean FORCE

demo: $(DEMO_STAMP)
	$(VENV)/bin/sqlaudit demo

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf "$(VENV)"

$(VENV_PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "error: $(PYTHON) not found or older than 3.10 (pass PYTHON=python3.X)" >&2; exit 1; }
	@echo '$(PYTHON) -m venv "$(VENV)"'
	@$(PYTHON) -m venv "$(VENV)" || { rm -rf "$(VENV)"; \
		echo "error: '$(PYTHON) -m venv' failed (Debian/Ubuntu: apt-get install python3-venv)" >&2; \
		exit 1; }

# Holds the SQLALCHEMY value of the last install; rewritten (so newer) only when it changes.
$(SA_SPEC): FORCE | $(VENV_PY)
	@printf '%s\n' '$(SQLALCHEMY)' | cmp -s - "$@" || printf '%s\n' '$(SQLALCHEMY)' > "$@"

$(DEV_STAMP): pyproject.toml $(SA_SPEC) | $(VENV_PY)
	$(PIP) install -e ".[dev]"
ifneq ($(strip $(SQLALCHEMY)),)
	$(PIP) install "$(SQLALCHEMY)"
endif
	@touch "$@"

$(DEMO_STAMP): pyproject.toml | $(VENV_PY)
	$(PIP) install -e ".[asyncio]"
	@touch "$@"

FORCE:
