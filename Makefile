# Two commands for a newcomer: `make demo` (the main job) and `make test`.
# Both set up .venv first; setup reruns only when its inputs change.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Override to use another torch build, e.g. `make setup TORCH_SPEC="torch==2.7.1"`.
TORCH_SPEC ?= torch==2.13.0
export TORCH_SPEC
STAMP := $(VENV)/.setup-done
SETUP_INPUTS := pyproject.toml scripts/setup_venv.sh $(wildcard requirements/*.txt)

# A different TORCH_SPEC than the one the venv was built with forces a refresh.
ifneq ($(TORCH_SPEC),$(shell cat $(VENV)/.torch-spec 2>/dev/null))
.PHONY: $(STAMP)
endif

.PHONY: setup test demo bench compile-check selftest traffic clean-venv

setup: $(STAMP)

$(STAMP): $(SETUP_INPUTS)
	scripts/setup_venv.sh
	echo "$(TORCH_SPEC)" > $(VENV)/.torch-spec
	touch $@

compile-check: setup
	$(PY) -m spp_triton.devtools.compile_check

# The GPU path in one command: Triton against the torch backend at realistic shapes and
# the operator benchmark on CUDA; without CUDA, the interpreter on small shapes.
selftest: setup
	$(PY) -m spp_triton.devtools.selftest

# Bytes the Triton kernels move, counted in Triton's interpreter.
traffic: setup
	$(PY) -m spp_triton.devtools.load_counter

# Tests run in parallel processes, one test file per worker at a time (module fixtures are
# built once); TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= auto
test: setup
	$(PY) -m spp_triton.devtools.compile_check
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) benchmarks/bench_spp_roi_pool.py
	$(PY) benchmarks/bench_cpu_backend.py
	$(PY) benchmarks/rcnn_vs_sppnet.py
	$(PY) benchmarks/profile_detector.py
	$(PY) benchmarks/scaling.py

clean-venv:
	rm -rf $(VENV)
