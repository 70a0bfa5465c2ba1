# The two commands of the README: `make lab` and `make test`. Both set up everything they need.
VENV ?= .venv
PY := $(VENV)/bin/python
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test check bench system-deps clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## Start JupyterLab on the tutorials, bound to 127.0.0.1, on the embedded SQLite default.
lab: $(VENV)/.installed
	cd notebooks && env -u MPLBACKEND ../$(VENV)/bin/jupyter lab --ServerApp.ip=127.0.0.1 $(ROOT_FLAG) \
		--ServerApp.root_dir=. --LabApp.default_url=/lab/tree/01_first_actor.ipynb

## Install system packages (PostgreSQL, Chromium), the environment, and run the whole suite.
test: system-deps $(VENV)/.installed
	env -u MPLBACKEND scripts/with-postgres scripts/check

check: $(VENV)/.installed
	scripts/check

system-deps:
	scripts/system-deps

## Run the benchmarks; writes bench/results/latest.json and prints a table.
bench: $(VENV)/.installed
	env -u MPLBACKEND scripts/with-postgres $(PY) -m bench
	$(PY) -m bench.plot

clean:
	rm -rf $(VENV) build dist *.egg-info
