# Two commands do everything on a fresh machine:
#   make demo   generate synthetic data, train both stages briefly, chain, score, draw
#   make test   the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test lint benchmark clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

demo: venv
	$(PY) tools/demo.py

test: venv
	$(PY) -m pytest -q -n 2 --durations=15

lint: venv
	$(PY) -m ruff check .

benchmark: venv
	$(PY) tools/benchmark.py

clean:
	rm -rf output log data/synthetic
