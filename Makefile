# The README's two commands: `make example` and `make test`. Both first make sure the project's virtual
# environment exists and matches requirements.lock (exact versions for Python 3.11), then run in it.
# Nothing is installed into the Python that runs make; only python3 (3.11) and make are assumed.
PYTHON3 ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXAMPLE_DIR ?= example
VERSION ?= example-$(shell date -u +%Y%m%d-%H%M%S)
STAMP := $(VENV)/.installed

.PHONY: install example test lint lock clean-venv

install: $(STAMP)

# Re-run when the lock or the package metadata changes. pip's own output goes to a log; its tail is shown
# if the install fails.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON3) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "census-builder needs Python 3.11: set PYTHON3=/path/to/python3.11")'
	@test -x $(PY) || { echo "first run: creating the virtual environment $(VENV)"; $(PYTHON3) -m venv $(VENV); }
	@echo "installing dependencies from requirements.lock into $(VENV) (first run: a few minutes; log: $(VENV)/install.log)"
	@$(PY) -m pip install --disable-pip-version-check --no-input --require-hashes -r requirements.lock \
		> $(VENV)/install.log 2>&1 || { tail -n 30 $(VENV)/install.log; echo "install failed; full log: $(VENV)/install.log"; exit 1; }
	@$(PY) -m pip install --disable-pip-version-check --no-input --no-deps -e . \
		>> $(VENV)/install.log 2>&1 || { tail -n 30 $(VENV)/install.log; echo "install failed; full log: $(VENV)/install.log"; exit 1; }
	@$(PY) -m pip check --disable-pip-version-check
	@touch $@
	@echo "environment ready: $(VENV)"

# Generate the example corpus and build (then validate) a release from it; then the same for Census
# schema 2.4.0 from the dataset schema 7.0.0 corpus, with its Gene Expression data; then each release's report.
example: install
	$(PY) -m census_builder example --out $(EXAMPLE_DIR)/corpus
	$(PY) -m census_builder build --version $(VERSION) --manifest $(EXAMPLE_DIR)/corpus/manifest.csv \
		--workdir $(EXAMPLE_DIR)/releases
	$(PY) -m census_builder example --census-schema 2.4.0 --out $(EXAMPLE_DIR)/corpus-2.4.0
	$(PY) -m census_builder build --census-schema 2.4.0 --version $(VERSION)-2.4.0 \
		--manifest $(EXAMPLE_DIR)/corpus-2.4.0/manifest.csv --workdir $(EXAMPLE_DIR)/releases --gene-expression
	$(PY) -m census_builder report --version $(VERSION) --workdir $(EXAMPLE_DIR)/releases
	$(PY) -m census_builder report --version $(VERSION)-2.4.0 --workdir $(EXAMPLE_DIR)/releases
	@echo "open the reports: $(EXAMPLE_DIR)/releases/$(VERSION)/report/index.html and $(EXAMPLE_DIR)/releases/$(VERSION)-2.4.0/report/index.html"

# The test suite (what CI runs): the default suite, then the slow kill-and-resume matrix (-m slow).
# pytest exits 5 when it collects no test: that fails too.
test: install
	$(PY) -m pytest -q
	$(PY) -m pytest -q -m slow

# Lint: ruff's rules (incl. docstrings on public names), ruff's formatting (checked, never rewritten here) and
# mypy strict; all three over the same trees (mypy's list is [tool.mypy] files in pyproject.toml).
LINT_PATHS := census_builder validation schema tests benchmarks
lint: install
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy

# Regenerate requirements.lock from the ranges in pyproject.toml (needs uv: `python3 -m pip install uv`).
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--generate-hashes -o requirements.lock

clean-venv:
	rm -rf $(VENV)
