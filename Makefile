# One command sets up a local virtual environment and runs the job asked for.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA ?= $(abspath ../shared/data/cuzn)
# The demo reads a local copy of the recorded data when there is one, else
# the cache folder (downloaded there on first use).
LOCAL_DATA := $(if $(wildcard $(SHARED_DATA)/*.hspy),$(SHARED_DATA),)
DEMO_ARGS ?=

.PHONY: setup demo test lint bench clean queue queue-stop

$(BIN)/hae: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, with an exact pin: a looser request pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/hae

setup: $(BIN)/hae

demo: setup
	HAE_DATA_DIR=$${HAE_DATA_DIR:-$(LOCAL_DATA)} $(BIN)/hae demo $(DEMO_ARGS)

test: setup
	HAE_DATA_DIR=$${HAE_DATA_DIR:-$(SHARED_DATA)} $(BIN)/python -m pytest -q tests

lint: setup
	$(BIN)/ruff check .

bench: setup
	HAE_DATA_DIR=$${HAE_DATA_DIR:-$(SHARED_DATA)} $(BIN)/python benchmarks/patch_extraction.py

clean:
	rm -rf $(VENV) build *.egg-info

# Queueserver session on loopback: Redis, Tiled (API key) and the RE Manager with profile/.
queue: setup
	HAE_DATA_DIR=$${HAE_DATA_DIR:-$(SHARED_DATA)} VENV=$(VENV) scripts/queue-services.sh start

queue-stop:
	VENV=$(VENV) scripts/queue-services.sh stop
