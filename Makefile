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

# GPU workers (Linux x86_64, an NVIDIA driver for CUDA 12.5): the same stack with TensorFlow's
# CUDA build and the CUDA 12 wheels of constraints-gpu.txt. tensorflow and tensorflow-cpu hold
# the same files (the `tensorflow` module): tensorflow-cpu is removed, then the CUDA build laid
# again. It marks the CPU setup done too, so `make test` keeps this venv (back to CPU: rm -r .venv).
.PHONY: setup-gpu
setup-gpu: $(VENV)/.installed-gpu  ## then `tsepipe doctor` says what TensorFlow sees

$(VENV)/.installed-gpu: pyproject.toml constraints.txt constraints-gpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints-gpu.txt -e ".[dev,gpu]"
	$(BIN)/pip uninstall --quiet --yes tensorflow-cpu
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
		-c constraints-gpu.txt "tensorflow==2.21.0"
	touch $@ $(VENV)/.installed

demo: setup  ## the main job on the embedded sample data
	tsepipe sample-data --out data/raw
	tsepipe run

test: setup lint  ## every test, slow and browser ones included (as CI runs them)
	tools/ensure-chromium
	tools/ensure-postgresql
	python -m pytest

lint: setup
	ruff check .

bench: setup
	python benchmarks/ingest.py
	python benchmarks/train.py

clean-data:  ## remove generated data and reports (the DVC cache and remote stay)
	rm -rf data/raw data/interim data/processed data/quarantine reports/validation
