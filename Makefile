# The two commands of the README. Both install the project (and its pinned dependencies) first.
PYTHON ?= python
EXAMPLE_DIR ?= example
VERSION ?= example-$(shell date -u +%Y%m%d-%H%M%S)

.PHONY: install example test lint

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e ".[dev]"

# Generate the example corpus and build (then validate) a release from it.
example: install
	$(PYTHON) -m census_builder example --out $(EXAMPLE_DIR)/corpus
	$(PYTHON) -m census_builder build --version $(VERSION) --manifest $(EXAMPLE_DIR)/corpus/manifest.csv \
		--workdir $(EXAMPLE_DIR)/releases

# The test suite (what CI runs): the default suite, then the slow kill-and-resume matrix (-m slow).
# pytest exits 5 when it collects no test: that fails too.
test: install
	$(PYTHON) -m pytest -q
	$(PYTHON) -m pytest -q -m slow

lint: install
	$(PYTHON) -m ruff check census_builder validation schema tests benchmarks
	$(PYTHON) -m mypy
