# tsepipe: `make demo` and `make test` each set up .venv on first use (pinned stack,
# about 2 minutes and 2.8 GB), then run the main job on real data / the tests.
# The Python that makes .venv: 3.11, found by tools/find-python (python3 when it is 3.11,
# else python3.11; `make PYTHON=/path/to/python3.11` to choose). Without one, make stops
# with one line saying what to install, before anything is created.
PYTHON ?=
VENV   ?= .venv
FOUND_PYTHON = $(shell tools/find-python $(PYTHON) 2>&1)
VENV_PYTHON  = $(if $(filter /%,$(FOUND_PYTHON)),$(FOUND_PYTHON),$(error $(FOUND_PYTHON)))
BIN    := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
# telemetry off for every tool (the package sets these too; here they cover pip and make)
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1

.PHONY: setup demo demo-indices test lint bench clean-data

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(VENV_PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $@

# GPU workers (Linux x86_64, an NVIDIA driver for CUDA 12.5): the same stack with TensorFlow's
# CUDA build and the CUDA 12 wheels of constraints-gpu.txt. tensorflow and tensorflow-cpu hold
# the same files (the `tensorflow` module): tensorflow-cpu is removed, then the CUDA build laid
# again. It marks the CPU setup done too, so `make test` keeps this venv (back to CPU: rm -r .venv).
.PHONY: setup-gpu
setup-gpu: $(VENV)/.installed-gpu  ## then `tsepipe doctor` says what TensorFlow sees

$(VENV)/.installed-gpu: pyproject.toml constraints.txt constraints-gpu.txt
	$(VENV_PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints-gpu.txt -e ".[dev,gpu]"
	$(BIN)/pip uninstall --quiet --yes tensorflow-cpu
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
		-c constraints-gpu.txt "tensorflow==2.21.0"
	touch $@ $(VENV)/.installed

demo: setup  ## the whole pipeline on TEDPIX's real 2008-2019 history, in demo/tedpix/
	python tools/demo.py tedpix

demo-indices: setup  ## the whole pipeline on the 16 real exports of 1397-1398, in demo/indices/
	python tools/demo.py indices

test: setup lint  ## every test, slow and browser ones included (as CI runs them)
	tools/ensure-chromium
	tools/ensure-postgresql
	python -m pytest -n 2 --dist loadfile --durations=25  # two processes, a file each at a time

lint: setup
	ruff check .

bench: setup
	python benchmarks/ingest.py
	python benchmarks/train.py

# The experiments compared (docs/experiments.md): the champion, its test MCC and 95 % interval,
# the best baseline's test MCC and the params that differ; no dependency columns. In this
# project, or another: `make experiments PROJECT=demo/tedpix`.
PROJECT ?= .
.PHONY: experiments
experiments: setup  ## dvc exp show: the headline and the changed params
	cd $(PROJECT) && dvc exp show --only-changed \
		--keep '^(champion|test_mcc|mcc_lo|mcc_hi|baseline_mcc)$$' --drop '.*/|models$$|Created$$'

clean-data:  ## remove generated data and reports (the DVC cache and remote stay)
	rm -rf data/raw data/interim data/processed data/quarantine reports/validation
