# Each target bootstraps what it needs: system packages (when root), .venv, the package in editable mode.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSBINS := mosquitto mosquitto_pub ffmpeg ffprobe espeak-ng promtool systemd-analyze chromium
# chromium: the console's real-browser tests (Playwright drives this one; it never downloads its own)
APT_PKGS := mosquitto mosquitto-clients ffmpeg espeak-ng prometheus systemd chromium

.PHONY: demo test check bench soak sysdeps venv clean lint fmt screenshots i18n

sysdeps:
	@missing=""; for b in $(SYSBINS); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages (missing:$$missing)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq $(APT_PKGS) >/dev/null || exit 1; \
	  else \
	    echo "missing system programs:$$missing"; \
	    echo "install them with: sudo apt-get install -y $(APT_PKGS)"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip >/dev/null
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: sysdeps venv
	$(VENV)/bin/broadcastd demo -c config/sang-moc.yaml

# Two workers: most of the suite waits (for a play_at, a heartbeat, a killed broker), so two run in
# the wall time of one on a 2-core machine; the link lab's tests share one worker (xdist_group).
test: sysdeps venv
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

fmt: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: sysdeps venv lint test

bench: sysdeps venv
	@# benchmarks/_*.py are helpers (a worker process, a shared config writer), not benchmarks
	@for b in benchmarks/[!_]*.py; do echo "# $$b"; $(PY) $$b || exit 1; done

soak: sysdeps venv
	BROADCASTD_SOAK=1 $(VENV)/bin/pytest -q tests/resilience

# The README's console screenshots, taken by the browser test at phone and desktop width.
screenshots: sysdeps venv
	BROADCASTD_SCREENSHOTS=docs/screenshots $(VENV)/bin/pytest -q tests/integration/test_console_browser.py -k photographed

# After changing a console message: refresh the catalogs; translators then edit the .po files.
i18n: venv
	$(VENV)/bin/pybabel -q extract -F broadcastd/console/babel.cfg -k N_ --no-location --omit-header -o .console.pot .
	for lang in vi en; do $(VENV)/bin/pybabel -q update -N --ignore-obsolete -w 100 -D console -i .console.pot -d broadcastd/console/locale -l $$lang; done
	rm -f .console.pot

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
