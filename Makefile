# The first two commands of the README: `make run` and `make test` set up everything themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The torch build this project is tested with (a CPU/CUDA wheel pip finds locally or on PyPI).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install run test test-fast typecheck lint bench bench-quality studies clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e ".[dev,export,tensorboard,mlflow,dashboard]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/fcnet train experiments/digits.yaml

test: $(STAMP)
	$(BIN)/python -m pytest

# the inner loop: the suite without the tests marked slow (long end-to-end runs)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# mypy on the package; every function of fcnet_cli/engine must be typed (pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/mypy fcnet_cli

lint: $(STAMP)
	$(BIN)/ruff check fcnet_cli tests benchmarks
	$(BIN)/mypy fcnet_cli

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

# about an hour on 2 cores (idle): fcnet's defaults against scikit-learn's MLP, gradient
# boosting, RealMLP-TD and TabM-D (the `bench` extra, installed here)
bench-quality: $(STAMP)
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python benchmarks/bench_quality.py --process

studies: $(STAMP)
	$(BIN)/python -m fcnet_cli.studies

clean:
	rm -rf $(VENV) runs .pytest_cache
