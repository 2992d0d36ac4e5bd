#!/usr/bin/env bash
# The test suite against a debug build, with poisoned workspaces.
#
#   scripts/debug_tests.sh [pytest arguments]     (default: the whole suite)
#
# Builds gru_cy with GRU_CY_DEBUG=1 (see setup.py: the one extension,
# gru_cy.kernels._core, with Cython's boundscheck, wraparound and
# initializedcheck turned back on, and its C sources, kernels/rc_*.c,
# compiled at -O0 -g with GRU_CY_DEBUG defined, which compiles out the
# AVX2/AVX-512 paths so that every product runs through the portable loops)
# from a copy of this checkout (so the checkout's generated C and in-place
# extension are left alone), installs it into a fresh virtual environment
# and runs the suite from outside the source tree with GRU_CY_POISON=1: every
# workspace and tape buffer starts NaN-filled, so a result that depends on
# memory a kernel did not write shows up as NaN.
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

# Prove that the installed extension is the debug build: with GRU_CY_DEBUG
# defined, the C core has no vector paths, so the best instruction set it
# reports is the portable one whatever the CPU (a release build reports the
# CPU's), and the shared object carries DWARF debug information (a release
# build is stripped).
mkdir -p "$WORK/outside"
isa=$(cd "$WORK/outside" && "$WORK/venv/bin/python" -c \
    "from gru_cy.kernels import _core; print(_core.cpu_isa())")
so=$(cd "$WORK/outside" && "$WORK/venv/bin/python" -c \
    "from gru_cy.kernels import _core; print(_core.__file__)")
if [ "$isa" != portable ]; then
    echo "gru_cy.kernels._core reports $isa: GRU_CY_DEBUG=1 was not honoured"; exit 1
fi
if ! python3 - "$so" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
sys.exit(0 if b".debug_info" in data else 1)
PY
then
    echo "$so has no debug information: GRU_CY_DEBUG=1 was not honoured"; exit 1
fi
echo "debug build: $(basename "$so") runs the portable kernels only and has debug information"

cd "$WORK/outside"
rc=0
GRU_CY_DEBUG=1 GRU_CY_POISON=1 GRU_CY_TEST_INSTALLED=1 HYPOTHESIS_PROFILE=ci "$WORK/venv/bin/python" -m pytest \
    "$SRC/tests" -ra -p no:cacheprovider "$@" || rc=$?
pytest_verdict "$rc"
