# Everything a fresh clone needs: `make demo`, `make test`, `make bench`.
# Each target creates .venv on first use (torch pinned: 2.13.0 is the local CPU build).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-py test-js bench bench-journal clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0 -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: test-py test-js

test-py: $(STAMP)
	$(PY) -m pytest -q

test-js:
	node --test web/tests/

bench: $(STAMP)  # every benchmark runs; the target fails if any misses a reachable target
	$(PY) bench/run.py; decode=$$?; $(PY) bench/batch.py; batch=$$?; $(PY) bench/journal_pg.py; journal=$$?; \
	exit $$((decode || batch || journal))

bench-journal: $(STAMP)  # the journal on SQLite and PostgreSQL; several machines on one account (~40 s)
	$(PY) bench/journal_pg.py

clean:
	rm -rf $(VENV) demo_output bench/.work
