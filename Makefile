# Quick start: `make demo` and `make test` each work alone on a fresh machine with Python 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-dev

.PHONY: venv demo test test-slow test-all test-fast bench-overhead gpu-check clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

DEMO_RUN := demo-$(shell date +%Y%m%d-%H%M%S)

demo: $(STAMP)
	$(PY) -m harness bench --runtime torch,ort --models resnet18,mobilenet_v2,squeezenet1_1 \
		--batch-sizes 1,4 --device cpu --out results/ --run-id $(DEMO_RUN); status=$$?; \
	$(PY) -m harness report results/$(DEMO_RUN) --quiet && exit $$status

# The fast tier (under 10 minutes on 2 cores); CI runs it and then the slow tier. Two pytest-xdist workers, a
# module each at a time (--dist loadfile: a module's fixtures are made once): most of a test's time is a cell's
# own process starting and importing, which a second worker overlaps.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist loadfile

# Tests marked slow: building every catalogue model, exports of large models, the wheel install, real Ray
# clusters, long on-device runs.
test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-all: $(STAMP)
	$(PY) -m pytest

test-fast: test

bench-overhead: $(STAMP)
	$(PY) bench/overhead.py

# On a CUDA machine: every CUDA runtime installed (torch, ort, ort-trt, trt) at fp32/fp16, parity, memory,
# and trtexec's GPU compute median beside ours where trtexec is on PATH.
gpu-check: $(STAMP)
	$(PY) bench/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info
