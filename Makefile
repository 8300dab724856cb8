# alcycle: the two commands of the README, and the benchmark.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/$(VENV):$(PATH)

.PHONY: env demo test bench

env:
	@scripts/env.sh

# The main job: active-learning cycles on the shipped MNIST set, oracle as annotator.
demo: env
	alcycle simulate --cycles $(or $(CYCLES),5)

test: env
	python -m pytest $(PYTEST_ARGS)

bench: env
	python benchmarks/cycle.py
