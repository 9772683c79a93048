# otxlike: `make install` sets everything up in .venv, `make test` runs the tests,
# `make demo` runs the whole slice on real sample data (scikit-learn's digits).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
UVPIP  := $(UV) pip install --python $(PY)
# mmcv 2.1.0 only exists as a source distribution; a wheel built exactly the same way
# (see ../shared/wheels/README.md) saves ~10 minutes of compiling when it is present.
WHEELS := $(wildcard ../shared/wheels/mmcv-2.1.0-*.whl)
FIND_LINKS := $(if $(WHEELS),--find-links ../shared/wheels)
DEMO_DIR ?= demo-run

.PHONY: install test test-slow test-all demo compat clean

install: $(UV)
	$(UVPIP) "torch==2.13.0" "torchvision==0.28.0" "setuptools>=77,<81" wheel ninja
	MAX_JOBS=2 $(UVPIP) --no-build-isolation $(FIND_LINKS) "mmcv==2.1.0"
	$(UVPIP) $(FIND_LINKS) -e ".[dev]"
	$(VENV)/bin/otxlike doctor

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "uv>=0.5"

test:
	$(PY) -m pytest -m "not slow" -q

# CI's slow suite samples: `exhaustive` tests (more formats, the demo-scale accuracy, a heavier
# backbone) run with make test-all only.
test-slow:
	$(PY) -m pytest -m "slow and not exhaustive" -q --durations=15

test-all:
	$(PY) -m pytest -q

demo:
	bash scripts/demo.sh $(DEMO_DIR)

# The compatibility matrix: every backbone x task swapped, trained one epoch and evaluated (hours
# on 2 cores; resumable). COMPAT_ARGS narrows it, e.g. COMPAT_ARGS="--library mmdet --jobs 2".
compat:
	$(PY) scripts/compat.py $(COMPAT_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
