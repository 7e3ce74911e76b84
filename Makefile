# Two commands do all the set-up: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch 2.13.0 CPU lies on this machine's disk; a plain `torch` would pull a CUDA build of several GB.
TORCH := torch==2.13.0
WHEELS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: run test lint bench index clean-venv browser-deps

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(WHEELS) $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/rag index
	$(VENV)/bin/rag serve

index: $(STAMP)
	$(VENV)/bin/rag index

test: $(STAMP)
	$(PY) -m ruff check rag ui tests bench scripts
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check rag ui tests bench scripts

bench: $(STAMP)
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
