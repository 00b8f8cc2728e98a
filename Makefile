# Bulwark: every target bootstraps what it needs on a fresh machine.
#   make demo   backup, change, incremental backup, restore and verify on the local stack
#   make test   the whole test suite (what CI runs)
#   make bench  the data-mover benchmark side by side with restic and borg
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
# checkov (the infra checks in tests/infra) pins dependencies that clash with ours: its own venv.
TOOLS_VENV := .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.setup-stamp

.PHONY: setup test demo bench lint clean stack-up stack-down browser

setup: $(STAMP) $(TOOLS_STAMP) node_modules/.package-lock.json browser

# Headless Chromium renders the HTML reports in tests/report (Debian's package); installed once, as root.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium (tests/report renders the HTML reports with it)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "note: /usr/bin/chromium is missing and installing it needs root (apt-get install chromium);" \
			"the report rendering test skips without it"; \
	fi

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

$(TOOLS_STAMP): requirements-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m scripts.demo

bench: setup
	$(BIN)/python -m scripts.bench

# The local stack (Azurite + the Azure simulator) in the background; .local/stack.json says where.
stack-up: setup
	$(BIN)/python -m bulwark_local.stack up

stack-down:
	@test ! -x $(BIN)/python || $(BIN)/python -m bulwark_local.stack down

clean:
	rm -rf $(VENV) $(TOOLS_VENV) node_modules .local bench-results
