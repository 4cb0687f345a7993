# Fresh machine: `make demo` sets up .venv/ and runs the demo; `make test` runs the test suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test demo bench lint clean

setup: $(STAMP)

# torch is pinned here: an unpinned torch pulls a multi-GB CUDA build; numpy<2 is required by the
# Triton python backend (responses arrive empty with numpy 2).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0" "numpy<2"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

test: setup
	$(PY) -m pytest -q

demo: setup
	$(PY) -m diffusegae.cli demo --out out/demo.png

bench: setup
	$(PY) bench/pipeline.py

lint: setup
	$(VENV)/bin/ruff check diffusegae tests bench
	$(VENV)/bin/ruff format --check diffusegae tests bench

clean:
	rm -rf $(VENV) out .pytest_cache
