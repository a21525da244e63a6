# Quick start: `make demo` plays the scripted doctor over the scenario bank, offline;
# `make test` runs the test suite. Both create or update the local .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On a machine without CUDA the CPU build of torch is installed first, so that
# sentence-transformers does not pull the CUDA packages. Elsewhere, set
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu" to fetch the CPU build.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install clean

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "torch already installed: keeping it"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip install "torch>=2.2"; \
	else \
		$(BIN)/python -m pip install "torch==$(TORCH_VERSION)" $(TORCH_INDEX); \
	fi
	$(BIN)/python -m pip install -e ".[test]"
	# The IU-Xray reports inside torchxrayvision's wheel (read at run time by the report checker's
	# tests and benchmark); --no-deps: its torchvision requirement would pull a CUDA torch.
	$(BIN)/python -m pip install --no-deps "torchxrayvision==1.5.7"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/agentclinic scenarios validate scenarios/
	$(BIN)/agentclinic run --scenarios scenarios/ --doctor scripted --seed 0 --concurrency 4

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
