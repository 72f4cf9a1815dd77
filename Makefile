# The two commands of the README. Each creates the environment first if needed.
#   make book   execute every chapter (profile cpu) and build _build/html/index.html (STRICT=1: fail on a broken claim)
#   make test   run the whole test suite (make test-fast: without the notebook runs)
# Other targets: make sync (regenerate exercises/ and the Colab notebooks), make bench,
# make lint (ruff and the import contracts), make format (ruff's formatter),
# make sandbox (bubblewrap, which the grader needs).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= cpu

.PHONY: book test test-fast sync bench lint format env browser sandbox clean

env: $(VENV)/.installed

# The browser tests drive Debian's Chromium. Installed here when we may (root
# with apt-get, as on CI); elsewhere the tests say how to install it and skip.
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null; \
	else echo "Chromium is not installed (sudo apt-get install chromium): the browser tests will be skipped."; fi

# The grader confines each student's notebook with bubblewrap (course_utils/grading/sandbox.py). Installed here
# when we may (root with apt-get, as on CI); elsewhere the grader says how, and refuses to run unconfined.
sandbox:
	@if command -v bwrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq bubblewrap >/dev/null; \
	else echo "bubblewrap is not installed (sudo apt-get install bubblewrap): the grader will refuse to run submissions."; fi

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[cpu,book,test,instructor]'
	touch $@

# STRICT=1 (benchmarks, CI, releases): a claim of the text that the run breaks fails the build; without it,
# each is a warning on its page and in the summary that ends the build.
book: env
	$(PY) -m course_utils.build book --profile $(PROFILE) $(if $(STRICT),--strict)

test: env browser sandbox
	$(PY) -m pytest

# The package's own tests, without executing whole notebooks: a few minutes.
test-fast: env sandbox
	$(PY) -m pytest -m "not notebooks"

sync: env
	$(PY) -m course_utils.build sync

bench: env
	$(PY) -m bench

lint: env
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports

format: env
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

clean:
	rm -rf _build
