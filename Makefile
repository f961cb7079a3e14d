# tsepipe: `make demo` and `make test` each set up .venv on first use (pinned stack,
# about 2 minutes and 2.8 GB), then run the main job on the sample data / the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# telemetry off for every tool (the package sets these too; here they cover pip and make)
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo test lint bench clean-data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

demo: setup  ## the main job on the embedded sample data
	tsepipe sample-data --out data/raw
	tsepipe run

test: setup lint  ## every test, slow and browser ones included (as CI runs them)
	tools/ensure-chromium
	python -m pytest

lint: setup
	ruff check .

bench: setup
	python benchmarks/ingest.py
	python benchmarks/train.py

clean-data:  ## remove generated data and reports (the DVC cache and remote stay)
	rm -rf data/raw data/interim data/processed data/quarantine reports/validation
