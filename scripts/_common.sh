# Helpers shared by scripts/debug_tests.sh and scripts/memcheck.sh (sourced).

# copy_checkout DEST: the checkout's tracked and untracked-but-not-ignored
# files, without build products, so a build there leaves the checkout alone.
copy_checkout() {
    local dest=$1
    mkdir -p "$dest"
    if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$SRC" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - ) \
            | tar xf - -C "$dest"
    else
        (cd "$SRC" && tar cf - --exclude='*.so' --exclude='*.pyd' --exclude=build \
            --exclude='*.egg-info' --exclude=src/gru_cy/kernels/_core.c .) \
            | tar xf - -C "$dest"
    fi
}

# make_venv DIR: a fresh virtual environment with the test requirements, and
# with GRU_CY_PEERS=1 the optional peers too (their parity tests skip without).
make_venv() {
    python3 -m venv "$1"
    "$1/bin/python" -m pip install --upgrade pip >/dev/null
    "$1/bin/python" -m pip install "pytest>=7" "hypothesis>=6" "threadpoolctl>=3" >/dev/null
    if [ "${GRU_CY_PEERS:-0}" != 0 ]; then
        "$1/bin/python" -m pip install torch==2.13.0 onnx onnxruntime onnxscript keras >/dev/null \
            || echo "optional peers not installed; their tests will skip"
        export KERAS_BACKEND=torch
    fi
}

# pytest_verdict EXIT_CODE: pytest's 5 (nothing collected) is a failure too.
pytest_verdict() {
    case "$1" in
        0) return 0 ;;
        5) echo "pytest collected no tests"; return 1 ;;
        *) return "$1" ;;
    esac
}
