# Two commands for a newcomer: `make demo` (the main job) and `make test`.
# Both set up .venv first; setup reruns only when its inputs change.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Override to use another torch build, e.g. `make setup TORCH_SPEC="torch==2.7.1"`.
TORCH_SPEC ?= torch==2.13.0
export TORCH_SPEC
STAMP := $(VENV)/.setup-done
SETUP_INPUTS := pyproject.toml scripts/setup_venv.sh scripts/unpack_wheel_data.py $(wildcard requirements/*.txt)

# A different TORCH_SPEC than the one the venv was built with forces a refresh.
ifneq ($(TORCH_SPEC),$(shell cat $(VENV)/.torch-spec 2>/dev/null))
.PHONY: $(STAMP)
endif

.PHONY: setup test demo demo-real infer export-onnx bench bench-speed bench-accuracy compile-check selftest traffic clean-venv

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
# pytest runs under scripts/heartbeat.py: a line at least once a minute while two long
# tests keep both workers busy.
test: setup
	$(PY) -m spp_triton.devtools.compile_check
	$(PY) scripts/heartbeat.py --label pytest -- $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

demo: setup
	$(PY) scripts/demo.py

# The same on real aerial photographs: the ImageNet-pretrained EfficientNet-Lite0 SPPNet
# detector fine-tuned on tree-crown tiles, tested on a held-out area (work_dirs/demo-real).
demo-real: setup
	$(PY) scripts/demo.py --data trees

# Detect objects in your own images: `make infer IMAGES=photo.jpg` (or a folder) with the
# demo's detector; CONFIG= and CHECKPOINT= pick another. Writes work_dirs/infer/{vis,preds}.
# A config with sliced_infer_cfg (the tree detectors) runs large images in native-resolution
# windows; INFER_ARGS="--tile 400 --overlap 50" (or --no-slicing) sets it for any config.
CONFIG ?= configs/synth_demo/sppnet_r18-w16_fpn_24e_synth-voc.py
CHECKPOINT ?= $(shell cat work_dirs/demo/last_checkpoint 2>/dev/null)
infer: setup
	@test -n "$(IMAGES)" || { echo "usage: make infer IMAGES=path/to/image_or_folder [CONFIG=... CHECKPOINT=...]"; exit 2; }
	@test -n "$(CHECKPOINT)" || { echo "no checkpoint: run 'make demo' first, or give CHECKPOINT=path.pth"; exit 2; }
	$(PY) tools/infer.py $(CONFIG) $(CHECKPOINT) $(IMAGES) --out-dir work_dirs/infer $(INFER_ARGS)

# Export a trained detector whole to ONNX (image in, boxes out; standard ops only) and check
# it against mmdet on held-out images; run it anywhere with `python -m sppnet_runtime`
# (onnxruntime, numpy and Pillow only). CONFIG= and CHECKPOINT= as for `make infer`.
export-onnx: setup
	@test -n "$(CHECKPOINT)" || { echo "no checkpoint: run 'make demo' first, or give CHECKPOINT=path.pth"; exit 2; }
	$(PY) tools/export_onnx.py $(CONFIG) $(CHECKPOINT) --whole

# How fast (benchmarks/speed/): the operator, the CPU kernel, R-CNN vs SPP-net per image, the
# demo detector's step, scaling. About 15 minutes on 2 cores.
bench: bench-speed
bench-speed: setup
	$(PY) benchmarks/speed/bench_spp_roi_pool.py
	$(PY) benchmarks/speed/rcnn_vs_sppnet.py
	$(PY) benchmarks/speed/profile_detector.py
	$(PY) benchmarks/speed/scaling.py

# How accurate (benchmarks/accuracy/): rewrite the R-CNN vs SPP-net table and its ablations
# from the committed run rows, training nothing (run a script without --tables-only to
# train the rows a table lacks: hours on a CPU).
bench-accuracy: setup
	$(PY) benchmarks/accuracy/rcnn_vs_sppnet_table.py --data trees --tables-only
	$(PY) benchmarks/accuracy/rcnn_vs_sppnet_table.py --data synth --tables-only
	$(PY) benchmarks/accuracy/rcnn_vs_sppnet_ablations.py --data trees --tables-only
	$(PY) benchmarks/accuracy/rcnn_vs_sppnet_ablations.py --data synth --tables-only

clean-venv:
	rm -rf $(VENV)
