# Entry points: make demo | make test | make lint | make bench
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench system-deps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests drive for real: headless Chromium renders the HTML report.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian) for the report rendering tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

demo: $(STAMP)
	$(VENV)/bin/tokenplan demo --db out/demo.duckdb --out out

test: $(STAMP) system-deps
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src/tokenplan

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/ingest.py
	$(PY) bench/collector.py
	$(PY) bench/project_calibration.py
	$(PY) bench/forecast_speed.py
	$(PY) bench/m4_hourly.py --save bench/results/m4_hourly.json
	$(PY) bench/forecast_accuracy.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .mypy_cache
