# `make demo` and `make test` work on a fresh machine with nothing else done first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.sfd-basicsr-installed
PYTEST_ARGS ?=

.PHONY: setup test demo lint clean

setup: $(STAMP)

# torch first (CUDA build, runs on CPU), then basicsr without build isolation (its setup.py
# imports torch), then this plugin in editable mode; the editable wheel carries the start-up hook.
$(STAMP): setup.py pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt setuptools wheel
	$(PIP) install -q -c constraints.txt torch torchvision
	$(PIP) install -q --no-build-isolation -c constraints.txt basicsr
	$(PIP) install -q --no-build-isolation -c constraints.txt -e '.[test]'
	# Real-ESRGAN's package only for the coexistence test; its face-restoration deps are not needed.
	$(PIP) install -q --no-deps -c constraints.txt realesrgan
	touch $@

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
