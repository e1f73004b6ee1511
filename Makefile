# One command per job; CI (.ci/run) runs `make test`, exactly what a person runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# One lock per Python minor (constraints/py3.X.txt, written by `make lock`); the venv's own Python,
# once it exists, decides which applies.
PY_MINOR := $(shell $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
LOCK     := $(wildcard constraints/py$(PY_MINOR).txt)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]-*.ipynb))
# The browser test drives Debian's chromium (E2E_CHROMIUM may name another Chromium or Chrome).
CHROMIUM  := $(or $(E2E_CHROMIUM),$(shell command -v chromium 2>/dev/null))

.DEFAULT_GOAL := help
.PHONY: help install lab test lint typecheck unit nbval nbval-fd-limits e2e e2e-if-chromium soak bench classroom stats notebooks sync lock matrix site clean

help: ## List the commands
	@awk 'BEGIN {FS = ":.*## "} /^[a-z0-9-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml $(LOCK)
	@# Debian and Ubuntu leave a venv without pip when python3-venv is missing: never keep half a venv
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "Could not create $(VENV) with $(PYTHON): is it installed? On Debian or Ubuntu: apt-get install python3-venv"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
ifneq ($(LOCK),)
	@echo "Installing the versions pinned for Python $(PY_MINOR) in $(LOCK)."
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e '.[lab,test,dev,site]'
else
	@echo "NOTE: no lock for Python $(PY_MINOR) in constraints/ (there are: $(patsubst constraints/py%.txt,%,$(wildcard constraints/py*.txt)))."
	@echo "      Installing the newest releases instead. The stored notebook outputs were made with pinned"
	@echo "      versions, so \`make nbval\` may differ; \`make lock\` writes a lock for this Python."
	$(BIN)/python -m pip install --quiet -e '.[lab,test,dev,site]'
endif
	@# matplotlib builds its font cache on first import and says so on stderr: do it now, not in a notebook
	$(BIN)/python -c "import matplotlib.pyplot"
	touch $@

install: $(STAMP) ## Create .venv (if missing) and install the course into it

lab: $(STAMP) ## Install, then open the course in JupyterLab (on 127.0.0.1; prints the address)
	$(BIN)/python tools/lab.py

TIMED := $(BIN)/python tools/timed.py

# One stage after another, each timed into build/make-test-times.tsv (make bench shows the latest);
# the first that fails stops the run.
test: $(STAMP) ## Install, then run lint, types, budgets, tests, every notebook (nbval, at low fd limits), the website, browser
	$(TIMED) lint -- $(MAKE) --no-print-directory lint
	$(TIMED) typecheck -- $(MAKE) --no-print-directory typecheck
	$(TIMED) stats -- $(MAKE) --no-print-directory stats
	$(TIMED) unit -- $(MAKE) --no-print-directory unit
	$(TIMED) nbval -- $(MAKE) --no-print-directory nbval
	$(TIMED) nbval-fd-limits -- $(MAKE) --no-print-directory nbval-fd-limits
	$(TIMED) site -- $(MAKE) --no-print-directory site
	$(TIMED) e2e -- $(MAKE) --no-print-directory e2e-if-chromium

lint: $(STAMP) ## ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy over src/
	$(BIN)/mypy

unit: $(STAMP) ## Unit, loopback, kernel and command-line tests
	$(BIN)/pytest tests --ignore=tests/e2e --ignore=tests/soak

# Two notebooks at a time, each in its own kernel (--dist loadfile keeps a notebook's cells together).
NBVAL := $(BIN)/pytest -n 2 --dist loadfile --nbval --nbval-current-env --nbval-sanitize-with tests/nbval-sanitize.cfg \
	--nbval-cell-timeout 120 -p no:cacheprovider $(NOTEBOOKS)

nbval: $(STAMP) ## Re-run every notebook and compare with its stored outputs
	$(NBVAL)

# Students' machines start with a soft limit of 1,024 open files (Linux) or 256 (macOS).
nbval-fd-limits: $(STAMP) ## nbval again under `ulimit -Sn 1024` and `ulimit -Sn 256`
	bash -c 'ulimit -Sn 1024 && $(NBVAL)'
	bash -c 'ulimit -Sn 256 && $(NBVAL)'

e2e: $(STAMP) ## JupyterLab in headless chromium: run every notebook, fail on errors, screenshot each
	E2E_CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests/e2e -p no:cacheprovider

e2e-if-chromium:
	@if [ -n "$(CHROMIUM)" ]; then $(MAKE) --no-print-directory e2e; \
	else echo "SKIPPED the browser test (make e2e): no chromium found. Install it (apt-get install chromium) to run it."; fi

site: $(STAMP) ## The course as a static website (stored outputs, nothing re-run) in build/site/html; checks its links
	$(BIN)/python site/build.py build/site

soak: $(STAMP) ## Chat soak: 1,000 clients join, chat and leave for a while; prints its figures
	$(BIN)/pytest tests/soak -s -p no:cacheprovider

bench: $(STAMP) ## What the course adds over bare Twisted, start-up, memory per student, the alternatives; a table with verdicts
	$(BIN)/python benchmarks/run.py

# Not part of `make test`: it installs JupyterHub and configurable-http-proxy into .classroom/ (pip, npm).
classroom: $(STAMP) ## A real JupyterHub, 1-20 students running notebooks 08 and 02; writes RESULTS.md's Classroom
	$(BIN)/python benchmarks/classroom.py $(ARGS)

stats: $(STAMP) ## Per notebook: words, minutes and cell sizes against the class-period budgets
	$(BIN)/python tools/stats.py --check

sync: $(STAMP) ## Copy module code into notebook cells and refresh navigation links
	$(BIN)/python tools/sync_notebooks.py

notebooks: sync ## Re-execute every notebook and store its outputs
	$(BIN)/python tools/run_notebooks.py $(NOTEBOOKS)

# The oldest patch release of each minor found here (its lock then installs on later ones too).
LOCK_PYTHONS ?= oldest
lock: $(STAMP) ## Re-resolve constraints/: one lock per Python minor here (newest releases), and the floors
	$(BIN)/python tools/lock.py floors $(LOCK_PYTHONS)

matrix: $(STAMP) ## Unit tests and nbval on every Python here x pinned, newest, floors; prints a table (about 10 min per combination)
	rm -rf .nox/matrix-results
	$(BIN)/nox  # every matrix session, failed or not, then the table

clean: ## Remove .venv and caches
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache
