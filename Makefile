# The README's commands. Each creates and uses its own virtualenv (.venv) on first use.
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: demo test test-fast check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,redis,postgres]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/sekisho demo

test: $(STAMP)
	$(BIN)/pytest -q -ra

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

check: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/breach.py --sizes 10000000
	$(BIN)/python bench/stuffing.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
