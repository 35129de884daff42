# Set-up and the two entry points of the README: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/fashion-mnist-demo

$(VENV)/installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

.PHONY: install test demo
install: $(VENV)/installed

test: $(VENV)/installed
	$(PY) -m pytest

demo: $(VENV)/installed
	rm -rf $(DEMO_OUT)
	$(VENV)/bin/imae train --dataset fashion-mnist --out $(DEMO_OUT)
