# Two entry points a newcomer needs (see README.md):
#   make run   - install everything and start the service on 127.0.0.1:8080
#   make test  - install everything and run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Where the installer looks for model files before fetching them from their public URL.
MODEL_SOURCE_DIR ?= ../shared/models
MODEL_DIR ?= .models

.PHONY: install models system-packages run test bench clean

install: $(VENV)/.installed

# The Python client (clients/python) is installed as a package, not editable, so its
# tests exercise what `pip install ./clients/python` gives an integrator; any change to
# it reinstalls it.
CLIENT_FILES := clients/python/pyproject.toml $(wildcard clients/python/src/verification_client/*)

$(VENV)/.installed: pyproject.toml $(CLIENT_FILES)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m pip install --quiet --force-reinstall --no-deps ./clients/python
	touch $@

models: install
	$(PY) -m models.install --source-dir $(MODEL_SOURCE_DIR) --dest $(MODEL_DIR)

# Debian's Chromium, redis-server and coturn for the tests that drive them (each skips
# with a reason where it cannot install).
system-packages:
	bash scripts/install-system-packages.sh

# With SERVICE_REDIS_URL set, one replica per core on ports 8080, 8081, ... (service/launch.py).
run: models
	SERVICE_MODEL_DIR=$(MODEL_DIR) $(PY) -m service.launch --host 127.0.0.1 --port 8080

test: models system-packages
	$(VENV)/bin/lint-imports
	SERVICE_MODEL_DIR=$(MODEL_DIR) MODEL_SOURCE_DIR=$(MODEL_SOURCE_DIR) $(PY) -m pytest -q

bench: models
	SERVICE_MODEL_DIR=$(MODEL_DIR) $(PY) bench/face_compare.py

clean:
	rm -rf $(VENV) $(MODEL_DIR)
