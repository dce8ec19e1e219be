# Entry points: make demo | make test | make lint | make bench
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick system-deps promtool clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Debian packages the tests drive for real: headless Chromium renders the HTML report;
# redis-server backs the live path (the tests start their own on a free loopback port);
# java (OpenJDK 17) runs the local Spark session of the scale-out tests.
# Each entry is command:Debian-package.
SYSTEM_DEPS := chromium:chromium redis-server:redis-server java:openjdk-17-jre-headless
system-deps:
	@missing=""; for d in $(SYSTEM_DEPS); do \
	  command -v $${d%%:*} >/dev/null 2>&1 || missing="$$missing $${d#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (Debian) for the tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@command -v promtool >/dev/null 2>&1 || $(MAKE) --no-print-directory promtool

# promtool checks and unit-tests deploy/prometheus-rules.yml. Debian ships it only inside the
# prometheus server package (19 MB); take the one 48 MB binary out of it, install no service.
promtool:
	@echo "installing promtool (from Debian's prometheus package) for the alert-rule tests"
	@tmp=$$(mktemp -d) && cd $$tmp && chmod 755 . && \
	  { apt-get download -qq prometheus 2>/dev/null || \
	    { apt-get update -qq && apt-get download -qq prometheus; }; } && \
	  dpkg-deb -x prometheus_*.deb root && \
	  install -m 0755 root/usr/bin/promtool /usr/local/bin/promtool; \
	  status=$$?; rm -rf $$tmp; exit $$status

demo: $(STAMP)
	$(VENV)/bin/tokenplan demo --db out/demo.duckdb --out out

# Two pytest workers: the suite is mostly single-threaded (CLI subprocesses, small fits), and
# two workers on two cores took it from 22 to 10-20 minutes. loadscope keeps a module's tests on
# one worker, so a module's engine (Spark, Ray, Dask) and fixtures start once.
TEST_WORKERS ?= 2
test: $(STAMP) system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadscope

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy src/tokenplan

# The forecast benchmarks that run in minutes: a forecaster change is checked against these at
# least (a fill that helped week-long histories once broke one day of 10-minute history, found
# only by bench/one_day.py).
bench-quick: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/one_day.py
	$(PY) bench/short_history.py
	$(PY) bench/intermittent.py --bands
	$(PY) bench/level_shifts.py

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/ingest.py
	$(PY) bench/lake.py
	$(PY) bench/collector.py
	$(PY) bench/collector_outage.py
	$(PY) bench/redis_path.py
	$(PY) bench/project_calibration.py
	$(PY) bench/spike_alerts.py
	$(PY) bench/bucket_under_way.py
	$(PY) bench/forecast_speed.py
	$(PY) bench/many_series.py
	$(PY) bench/m4_hourly.py --save bench/results/m4_hourly.json
	$(PY) bench/forecast_accuracy.py
	$(PY) bench/split_accuracy.py
	$(PY) bench/unknown_hours.py
	$(PY) bench/short_history.py
	$(PY) bench/short_fallback.py
	$(PY) bench/one_cycle.py
	$(PY) bench/one_day.py
	$(PY) bench/no_season.py
	$(PY) bench/disruptions.py
	$(PY) bench/level_shifts.py
	$(PY) bench/steady_sums.py
	$(PY) bench/intermittent.py --bands
	$(PY) bench/forecast_fuzz.py --seconds 300
	$(PY) bench/cli_fuzz.py --seconds 180
	$(PY) bench/scale_out.py --save bench/results/scale_out.json

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .mypy_cache
