# The README's commands. Each bootstraps .venv from nothing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch that lies on this project's machines; override for another build.
TORCH_SPEC ?= torch==2.13.0
PIP = $(VENV)/bin/pip
PY = $(VENV)/bin/python

.PHONY: demo test bench figures clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamp files re-run an install only when the package metadata changes.
$(VENV)/.core: $(VENV)/bin/python setup.cfg pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) install --quiet "$(TORCH_SPEC)" -e ".[test,backend]"
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/scratchsim demo

test: $(VENV)/.test
	$(PY) -m pytest -q

bench: $(VENV)/.test
	$(PY) bench/run.py $(BENCH_ARGS)

# Every experiments/figN_NAME.toml is swept into experiments/results/figN_NAME.csv (resuming
# where an earlier run stopped) and drawn as figure NAME into experiments/figures.
FIGURE_SPECS = $(sort $(wildcard experiments/fig*.toml))
figures: $(VENV)/.core
	mkdir -p experiments/results experiments/figures
	set -e; for spec in $(FIGURE_SPECS); do \
		name=$$(basename $$spec .toml); \
		$(VENV)/bin/scratchsim sweep $$spec -o experiments/results/$$name.csv $(SWEEP_ARGS); \
		$(VENV)/bin/scratchsim figures experiments/results/$$name.csv -o experiments/figures \
			--only $${name#*_}; \
	done

clean:
	rm -rf $(VENV) scratchsim-out bench/out .pytest_cache
