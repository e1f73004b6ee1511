# One command per job; CI (.ci/run) runs `make test`, exactly what a person runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]-*.ipynb))

.DEFAULT_GOAL := help
.PHONY: help install lab test lint typecheck unit nbval notebooks sync clean

help: ## List the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[lab,test,dev]'
	@# matplotlib builds its font cache on first import and says so on stderr: do it now, not in a notebook
	$(BIN)/python -c "import matplotlib.pyplot"
	touch $@

install: $(STAMP) ## Create .venv (if missing) and install the course into it

lab: $(STAMP) ## Install, then open the course in JupyterLab (on 127.0.0.1; prints the address)
	$(BIN)/python tools/lab.py

test: $(STAMP) lint typecheck unit nbval ## Install, then run lint, type check, unit tests and every notebook

lint: $(STAMP) ## ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy over src/
	$(BIN)/mypy

unit: $(STAMP) ## Unit and loopback tests
	$(BIN)/pytest tests

nbval: $(STAMP) ## Re-run every notebook and compare with its stored outputs
	$(BIN)/pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg \
	    --nbval-cell-timeout 120 -p no:cacheprovider $(NOTEBOOKS)

sync: $(STAMP) ## Copy module code into notebook cells and refresh navigation links
	$(BIN)/python tools/sync_notebooks.py

notebooks: sync ## Re-execute every notebook and store its outputs
	$(BIN)/python tools/run_notebooks.py $(NOTEBOOKS)

clean: ## Remove .venv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
