# The README's two commands: `make demo` (main job on the embedded default) and `make test` (whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev]'
	touch $(STAMP)

install: $(STAMP)

# The demo trains for at most DEMO_BUDGET seconds (the default budget is 900 s; the converged rule
# stops it after about 40,000 epochs, 75-80 s here), capturing every epoch
# into runs/demo/pinnprov.db, runs the PyGIMLi baseline for Figure 2, then reads Table 1 back from the store.
DEMO_BUDGET ?= 180
DEMO_STORE := sqlite:///runs/demo/pinnprov.db
demo: $(STAMP)
	$(BIN)/pinnprov train --out runs/demo --store $(DEMO_STORE) --time-budget $(DEMO_BUDGET) --with-baseline --run-name demo-$$(date +%Y%m%d-%H%M%S)
	$(BIN)/pinnprov query epochs --run latest --every 2000 --store $(DEMO_STORE)
	@echo "Watch and steer runs in a browser: $(BIN)/pinnprov ui --store $(DEMO_STORE)"

# Lint, layers (import-linter contracts in pyproject.toml), types (mypy, [tool.mypy]), the user guide (mkdocs.yml: strict,
# so a dead link between pages of docs/ fails; the site goes to the git-ignored DOCS_SITE), then the suite (which also
# runs yamllint and ansible-lint on ansible/, tests/ansible/test_ansible_lint.py).
DOCS_SITE ?= build/site
test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_SITE)
	$(BIN)/python -m pytest -q -ra

lint: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m mypy
	$(BIN)/yamllint -s ansible
	cd ansible && ../$(BIN)/ansible-lint --profile production

bench: $(STAMP)
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
