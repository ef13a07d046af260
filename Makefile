# `make demo` and `make test` work on a fresh machine with nothing else done first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.sfd-basicsr-installed
PYTEST_ARGS ?=

.PHONY: setup test demo demo-csud lint clean wheels gpu-check gpu-check-cpu gpu-decide gpu-decide-cpu

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

# CSUD on CPU (about 10 minutes): synthetic rain, 400 iterations, derain the held-out set and
# print rainy-input vs derained PSNR/SSIM.
demo-csud: setup
	$(PY) scripts/make_synthetic_rain.py --root datasets/csud_synthetic --overwrite
	$(PY) basicsr/train.py -opt options/demo_CSUD_cpu.yml
	$(PY) scripts/derain.py -i datasets/csud_synthetic/test/rain --gt datasets/csud_synthetic/test/clean \
		-w experiments/demo_CSUD_cpu/models/net_g_latest.pth -o results/demo_CSUD_cpu

# The GPU check (issues 18, 21). `make wheels` here (pip reaches PyPI) fills .whl/ with what a PyTorch GPU
# image lacks; on the GPU machine `make gpu-check` (or `bash scripts/gpu_check.sh`, no venv needed)
# installs them, runs every CUDA path and GPU number in 6 minutes (setup included) and writes
# benchmarks/results/gpu-<date>.{json,md}. `make gpu-check-cpu` is its rehearsal on CPU (also in `make test`).
wheels:
	bash scripts/gpu_wheels.sh

gpu-check:
	bash scripts/gpu_check.sh

gpu-check-cpu: setup
	bash scripts/gpu_check.sh --cpu --python $(PY) --out results/gpu_check_cpu

# The decision (issue 31, docs/gpu-check.md): whether network_d.fast_path auto may become the default.
# On a lent GPU, in one call with .whl/ carried (`make wheels` here first): `make gpu-decide
# GPU_OUT=$$OUT` (or `bash scripts/gpu_decide.sh --out $$OUT`), 5 minutes, setup included; prints
# the verdict line and the D-iteration table, writes <GPU_OUT>/gpu-decide-<date>.{json,md}.
# `make gpu-decide-cpu` is its rehearsal on CPU (also in `make test`: tests/test_gpu_decide.py).
GPU_OUT ?= benchmarks/results
gpu-decide:
	bash scripts/gpu_decide.sh --out $(GPU_OUT)

gpu-decide-cpu: setup
	bash scripts/gpu_decide.sh --cpu --python $(PY) --out results/gpu_decide_cpu

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) build *.egg-info
