# alcycle: the two commands of the README, the test tiers, lint, and the benchmark.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/$(VENV):$(PATH)

.PHONY: env demo test test-unit test-slow test-e2e lint bench

env:
	@scripts/env.sh

# The main job: active-learning cycles on the shipped MNIST set, oracle as annotator.
demo: env
	alcycle simulate --cycles $(or $(CYCLES),5)

# Every tier; CI runs this.
test: env
	python -m pytest $(PYTEST_ARGS)

# The tiers (markers in pyproject.toml): unit (seconds each), slow (kill -9, fuzzing, training),
# e2e (the real `dvc repro` in a temporary project).
test-unit: env
	python -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)

test-slow: env
	python -m pytest -m "slow and not e2e" $(PYTEST_ARGS)

test-e2e: env
	python -m pytest -m e2e $(PYTEST_ARGS)

# ruff and mypy come from a small environment of their own (pins: pyproject.toml's dev extra).
lint: env
	@bin=$$(scripts/dev-env.sh) && $$bin/ruff check . && $$bin/mypy --python-executable $(VENV)/python

bench: env
	python benchmarks/cycle.py
