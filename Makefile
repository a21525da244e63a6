# Quick start: `make demo` plays the scripted doctor over the scenario bank, offline;
# `make test` runs the test suite. Both create or update the local .venv first; only
# `make test` installs the test extras (a llama.cpp server built from source among them).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On a machine without CUDA the CPU build of torch is installed first, so that
# sentence-transformers does not pull the CUDA packages. Elsewhere, set
# TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu" to fetch the CPU build.
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?=
# llama.cpp for the integration tests' server is built from source. A default build targets the
# build machine's own CPU (GGML_NATIVE) and turns on ggml's AMX kernels where the CPU has AMX;
# those kernels crash llama-cpp-python 0.3.36's server on its first multi-token prompt, and a
# native build can use instructions another machine lacks. So the build is portable: no native
# tuning, no AMX, no AVX-512 (absent on many x86-64 CPUs), AVX2 + FMA + F16C (x86-64-v3, every
# x86-64 CPU since 2013-2015). Other architectures get the generic non-native build.
LLAMA_CPP_VERSION ?= 0.3.36
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
# The portable wheel is built once per version and flag set and kept outside the clone (pip's own
# wheel cache would hand back a wheel built with other flags: its key ignores CMAKE_ARGS).
LLAMA_WHEELS := $(HOME)/.cache/agentclinic/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-$(shell echo '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
# faiss (the retrieve tool): the GPU build where nvidia-smi runs, the CPU build elsewhere.
FAISS_EXTRA ?= $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)
BASE_STAMP := $(VENV)/.installed-base
TEST_STAMP := $(VENV)/.installed-test
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test install install-test clean

install: $(BASE_STAMP)
install-test: $(TEST_STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BASE_STAMP): pyproject.toml | $(BIN)/python
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
		echo "torch already installed: keeping it"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/python -m pip install "torch>=2.2"; \
	else \
		$(BIN)/python -m pip install "torch==$(TORCH_VERSION)" $(TORCH_INDEX); \
	fi
	$(BIN)/python -m pip install -e ".[$(FAISS_EXTRA)]"
	@touch $@

$(TEST_STAMP): $(BASE_STAMP) Makefile
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_CPP_VERSION) with CMAKE_ARGS=$(LLAMA_CMAKE_ARGS)"; \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --no-deps --no-cache-dir \
			--no-binary llama-cpp-python -w $(LLAMA_WHEELS).tmp "llama-cpp-python==$(LLAMA_CPP_VERSION)" \
		&& rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); \
	fi
	$(BIN)/python -m pip install --find-links $(LLAMA_WHEELS) \
		"llama-cpp-python[server]==$(LLAMA_CPP_VERSION)" -e ".[test,$(FAISS_EXTRA)]"
	# The IU-Xray reports inside torchxrayvision's wheel (read at run time by the report checker's
	# tests and benchmark); --no-deps: its torchvision requirement would pull a CUDA torch.
	$(BIN)/python -m pip install --no-deps "torchxrayvision==1.5.7"
	@touch $@

demo: $(BASE_STAMP)
	$(BIN)/agentclinic scenarios validate scenarios/
	$(BIN)/agentclinic run --scenarios scenarios/ --doctor scripted --seed 0 --concurrency 4

# The test extras are installed here, so the real-server tests must run: a missing server fails them.
test: $(TEST_STAMP)
	AGENTCLINIC_REQUIRE_LLAMA=1 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
