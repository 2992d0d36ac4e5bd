#!/usr/bin/env bash
# The test suite against a bounds-checked debug build, with poisoned workspaces.
#
#   scripts/debug_tests.sh [pytest arguments]     (default: the whole suite)
#
# Builds gru_cy with GRU_CY_DEBUG=1 (Cython's boundscheck, wraparound and
# initializedcheck turned back on, C compiled at -O0 -g, no target_clones)
# from a copy of this checkout (so the checkout's generated C and in-place
# extensions are left alone), installs it into a fresh virtual environment
# and runs the suite from outside the source tree with GRU_CY_POISON=1: every
# workspace and tape buffer starts NaN-filled, so a result that depends on
# memory a kernel did not write shows up as NaN. An out-of-bounds index in a
# kernel raises IndexError instead of corrupting memory.
#
# GRU_CY_DEBUG_DIR=DIR keeps the build and the venv in DIR (default: a new
# temporary folder). GRU_CY_PEERS=1 installs PyTorch, ONNX, ONNX Runtime and
# Keras too, so that their parity tests run against the debug build. Takes
# one minute (three with the peers).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
# shellcheck source=scripts/_common.sh
source scripts/_common.sh
WORK=${GRU_CY_DEBUG_DIR:-$(mktemp -d)}
echo "debug build in $WORK"

copy_checkout "$WORK/src"
make_venv "$WORK/venv"
GRU_CY_DEBUG=1 "$WORK/venv/bin/python" -m pip install "$WORK/src" >"$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log"; echo "debug build failed"; exit 1; }

# Prove that the checks are compiled in: a bounds-checked kernel raises
# IndexError through this Cython helper, which a release build never calls.
calls=$(grep -c "__Pyx_RaiseBufferIndexError(" "$WORK/src/src/gru_cy/kernels/_gru.c" || true)
if [ "${calls:-0}" -lt 1 ]; then
    echo "the build has no bounds checks: GRU_CY_DEBUG=1 was not honoured"; exit 1
fi
echo "bounds checks compiled into gru_cy.kernels._gru: $calls sites"

mkdir -p "$WORK/outside"
cd "$WORK/outside"
rc=0
GRU_CY_DEBUG=1 GRU_CY_POISON=1 GRU_CY_TEST_INSTALLED=1 HYPOTHESIS_PROFILE=ci "$WORK/venv/bin/python" -m pytest \
    "$SRC/tests" -ra -p no:cacheprovider "$@" || rc=$?
pytest_verdict "$rc"
