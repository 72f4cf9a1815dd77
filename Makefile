# The two commands of the README. Each creates the environment first if needed.
#   make book   execute every chapter (profile cpu) and build _build/html/index.html
#   make test   run the whole test suite
# Other targets: make sync (regenerate exercises/ and the Colab notebooks), make bench.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu

.PHONY: book test sync bench env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[cpu,book,test]'
	touch $@

book: env
	$(PY) -m course_utils.build book --profile $(PROFILE)

test: env
	$(PY) -m pytest

sync: env
	$(PY) -m course_utils.build sync

bench: env
	$(PY) bench/run.py

clean:
	rm -rf _build
