# `make app` and `make test` set everything up on a fresh machine (Python 3.11 + make) and then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: app test test-fast e2e-deps screenshots recbole-env lock clean help

help:
	@echo "make app    - set up and open the studio on the demo dataset (http://localhost:$(PORT))"
	@echo "make test   - set up and run the test suite"

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

app: $(STAMP)
	$(VENV)/bin/streamlit run app.py --server.headless true --server.address localhost \
		--server.port $(PORT) --browser.gatherUsageStats false

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# Debian's chromium for the end-to-end test (tests/e2e skips without it; .ci/run installs it).
e2e-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# README screenshots of the studio on the demo data (needs chromium).
screenshots: $(STAMP)
	$(PY) bench/screenshots.py

# RecBole 1.2.1, the peer that bench/speed.py --vs-recbole races, in its own venv (never our dependency).
RECBOLE_VENV := .venv-recbole
recbole-env: $(RECBOLE_VENV)/.installed
$(RECBOLE_VENV)/.installed:
	@test -x $(RECBOLE_VENV)/bin/python || $(PYTHON) -m venv $(RECBOLE_VENV)
	$(RECBOLE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	@# --no-deps: RecBole's and thop's bare 'torch' would swap our CPU build for a CUDA one
	$(RECBOLE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps recbole==1.2.1 thop
	$(RECBOLE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "numpy<2" "pandas<2.3" \
		"scipy<1.14" "setuptools<70" tqdm colorlog==4.7.2 colorama==0.4.4 scikit-learn pyyaml tensorboard \
		tabulate plotly texttable psutil "ray>=1.13,<=2.6.3"
	@touch $@

# Regenerate the lock from the current environment (torch stays pinned to the CPU build's version).
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e' | sed 's/^torch==2.13.0+cpu/torch==2.13.0/' > requirements.lock

clean:
	rm -rf $(VENV) $(RECBOLE_VENV) .pytest_cache runs uploads tests/e2e/artifacts
