# Set-up and the two entry points of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/fashion-mnist-demo

$(VENV)/installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

.PHONY: install test demo chromium
install: $(VENV)/installed

# Headless Chromium renders the HTML report in tests/test_report.py (Debian's package).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get install -y chromium || { $$SUDO apt-get update && $$SUDO apt-get install -y chromium; }; }

test: $(VENV)/installed chromium
	$(PY) -m pytest

demo: $(VENV)/installed
	rm -rf $(DEMO_OUT)
	$(VENV)/bin/imae train --dataset fashion-mnist --out $(DEMO_OUT)
