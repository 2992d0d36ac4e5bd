#!/usr/bin/env bash
# The test suite under a memory checker; the run passes only with zero errors.
#
#   scripts/memcheck.sh [asan|valgrind] [pytest arguments]
#
# asan (default): builds gru_cy with AddressSanitizer (-fsanitize=address,
#   release optimisation, so the checked code is the shipped code) from a copy
#   of this checkout into a fresh venv, and runs the whole suite with the ASan
#   runtime preloaded into the (uninstrumented) Python. Every heap overflow,
#   use after free or double free in the extension (gru_cy.kernels._core: the
#   Cython entry points and the C core, kernels/rc_*.c) stops the run with a
#   report. About three minutes.
# valgrind: valgrind memcheck over a representative subset of the suite
#   (the kernels' products, reference parity, error paths, IEEE, threads,
#   workspaces, step(), the golden files, a few property examples) against a
#   normal release build; also catches reads of uninitialised memory, which
#   ASan does not. About fifteen minutes.
#
# Both run Python with PYTHONMALLOC=malloc so that every object goes through
# the checked allocator, OpenBLAS single-threaded, and GRU_CY_MEMCHECK=MODE,
# which skips the RSS-growth tests (a checker's quarantine and shadow memory
# make RSS meaningless) and, under valgrind, which serialises threads, the
# tests about threads running during a kernel. Leak checking is off: CPython keeps objects alive at
# exit by design. Suppressions: scripts/valgrind.supp (CPython and OpenBLAS
# noise only; see the comments there). Reports go to $WORK/reports.
#
# GRU_CY_MEMCHECK_DIR=DIR keeps the build, venv and reports in DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
# shellcheck source=scripts/_common.sh
source scripts/_common.sh
MODE=${1:-asan}
[ $# -gt 0 ] && shift
case "$MODE" in asan|valgrind) ;; *) echo "usage: $0 [asan|valgrind] [pytest args]"; exit 2;; esac
WORK=${GRU_CY_MEMCHECK_DIR:-$(mktemp -d)}
REPORTS="$WORK/reports"
rm -rf "$REPORTS"
mkdir -p "$REPORTS" "$WORK/outside"
echo "memcheck ($MODE) in $WORK"

copy_checkout "$WORK/src"
make_venv "$WORK/venv"
PY="$WORK/venv/bin/python"

export PYTHONMALLOC=malloc OPENBLAS_NUM_THREADS=1 GRU_CY_MEMCHECK=$MODE GRU_CY_TEST_INSTALLED=1
# Derandomised examples, and no health check failing a run for being slow.
export HYPOTHESIS_PROFILE=ci

if [ "$MODE" = asan ]; then
    CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
        "$PY" -m pip install "$WORK/src" >"$WORK/build.log" 2>&1 \
        || { tail -n 40 "$WORK/build.log"; echo "ASan build failed"; exit 1; }
    LIBASAN=$(gcc -print-file-name=libasan.so)
    [ -e "$LIBASAN" ] || { echo "libasan.so not found (gcc -print-file-name)"; exit 1; }
    # The extension must really be instrumented (and be there: a glob that
    # matches nothing would otherwise check nothing).
    found=0
    for so in "$WORK"/venv/lib/python3*/site-packages/gru_cy/kernels/_core*.so; do
        [ -e "$so" ] || continue
        found=$((found + 1))
        grep -q "__asan_report" "$so" || { echo "$so is not instrumented"; exit 1; }
    done
    [ "$found" -ge 1 ] || { echo "gru_cy/kernels/_core*.so not found in the venv"; exit 1; }
    cd "$WORK/outside"
    rc=0
    LD_PRELOAD="$LIBASAN" \
    ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:halt_on_error=1:log_path=$REPORTS/asan" \
        "$PY" -m pytest "$SRC/tests" -q -p no:cacheprovider "$@" || rc=$?
    errors=$(cat "$REPORTS"/asan* 2>/dev/null | grep -c "ERROR: AddressSanitizer" || true)
    echo "AddressSanitizer: ${errors:-0} errors (reports: $REPORTS)"
    [ "${errors:-0}" -eq 0 ] || { cat "$REPORTS"/asan* | head -n 80; exit 1; }
    pytest_verdict "$rc"
    exit 0
fi

# valgrind
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)"; exit 1; }
"$PY" -m pip install "$WORK/src" >"$WORK/build.log" 2>&1 \
    || { tail -n 40 "$WORK/build.log"; echo "build failed"; exit 1; }
if [ $# -eq 0 ]; then
    set -- "$SRC/tests/test_products.py" "$SRC/tests/test_vs_reference.py" \
           "$SRC/tests/test_errors.py" "$SRC/tests/test_ieee.py" \
           "$SRC/tests/test_threads.py" "$SRC/tests/test_properties.py" \
           "$SRC/tests/test_golden.py" "$SRC/tests/test_step.py" \
           "$SRC/tests/test_workspace.py"
    # The large-layer thread tests do ~100 full training runs: hours under valgrind.
    set -- "$@" -k "not large_bidirectional"
fi
cd "$WORK/outside"
rc=0
GRU_CY_EXAMPLES_SCALE=${GRU_CY_EXAMPLES_SCALE:-0.1} \
valgrind --tool=memcheck --error-exitcode=99 --leak-check=no --num-callers=30 \
    --suppressions="$SRC/scripts/valgrind.supp" --log-file="$REPORTS/valgrind.%p" \
    "$PY" -m pytest -q -p no:cacheprovider "$@" || rc=$?
summary=$(grep -h "ERROR SUMMARY" "$REPORTS"/valgrind.* || true)
echo "$summary"
errors=$(echo "$summary" | awk '{s += $4} END {print s + 0}')
echo "valgrind memcheck: $errors errors (reports: $REPORTS)"
if [ "$errors" -ne 0 ]; then
    grep -l "ERROR SUMMARY: [1-9]" "$REPORTS"/valgrind.* | head -n 1 | xargs sed -n '1,120p'
    exit 1
fi
[ "$rc" -eq 99 ] && exit 1
pytest_verdict "$rc"
