# Two entry points: `make demo` (main job) and `make test` (whole test suite).
# Both install what is missing: Debian packages (libngspice0, ngspice, python3-venv),
# a virtual environment in .venv and the package with its test extras.  Idempotent.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := libngspice0 ngspice python3-venv python3-pip

.PHONY: setup system demo test
setup: system $(VENV)/.installed

system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

$(VENV)/.installed: pyproject.toml
	@[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]"
	@touch $@

demo: setup
	$(VENV)/bin/analogprop demo

# one test process per core (pytest-xdist), each on one BLAS thread
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -n auto
