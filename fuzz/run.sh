#!/usr/bin/env bash
# Fuzz gru_cy's file loaders (gru_cy.load, gru_cy.load_onnx, gru_cy.InferenceSession)
# for a bounded time.
#
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags]      (default: 60 seconds)
#
# Runs with the python on PATH, which must have gru_cy installed (pip install .).
# With atheris installed (pip install atheris) the fuzzing is coverage-guided;
# without it, fuzz/fuzz_loaders.py falls back to plain random mutation. The
# corpus grows in fuzz/corpus/ (seeded with valid files on each run) and any
# finding is written to fuzz/findings/ as the exact input that triggered it;
# reproduce one with: python fuzz/fuzz_loaders.py fuzz/findings/crash-...
# Exit status 0: no finding in the time given.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_LIMIT=${1:-60}
[ $# -gt 0 ] && shift
mkdir -p corpus findings
# The fuzz target's scratch files live here (libFuzzer exits without running
# Python's clean-up), removed when this script ends.
export TMPDIR
TMPDIR=$(mktemp -d)
trap 'rm -rf "$TMPDIR"' EXIT
if python -c "import atheris" 2>/dev/null; then
    python fuzz_loaders.py -max_total_time="$SECONDS_LIMIT" -timeout=20 \
        -rss_limit_mb=0 -artifact_prefix=findings/ -print_final_stats=1 "$@" corpus
else
    echo "atheris is not installed: plain random mutation (pip install atheris to guide it)"
    cd findings
    python ../fuzz_loaders.py --plain --seconds "$SECONDS_LIMIT"
fi
