"""Declares the compiled extensions; all metadata lives in pyproject.toml.

GRU_CY_DEBUG=1 at build time turns Cython's bounds, wraparound and
initialisation checks back on and compiles the C helpers without
optimisation and with debug information, for the debug test run. Release
builds (the default) carry no debug information and are stripped, which
makes the wheel about 4x smaller.
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("GRU_CY_DEBUG", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
}

link_args = []
if os.name == "nt":
    compile_args = ["/O2"]
else:
    # No -ffast-math: NaN and Inf must propagate. No -march=native: wheels
    # run on any x86-64; AVX2 comes from target_clones in _gru_gates.c.
    # -g0 overrides the -g that Python's own CFLAGS usually carry.
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
    compile_args += ["-fno-math-errno", "-Wno-unused-function"]
    if DEBUG:
        compile_args += ["-DGRU_CY_DEBUG=1"]
    elif sys.platform.startswith("linux"):
        # Strip the static symbol table (the module's exported PyInit_*
        # lives in the dynamic one, which stays).
        link_args = ["-Wl,--strip-all"]
    elif sys.platform == "darwin":
        link_args = ["-Wl,-S", "-Wl,-x"]

macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]


def ext(name, sources):
    return Extension(
        name,
        sources,
        include_dirs=[np.get_include(), "src/gru_cy/kernels"],
        define_macros=macros,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )


# Every cell's extension compiles _layout.c into itself (its shared helpers
# and its own workspace cache), to the same object file: build serially
# (no build_ext -j), or two extensions may write that object at once.
extensions = [
    ext("gru_cy.kernels._blas", ["src/gru_cy/kernels/_blas.pyx", "src/gru_cy/kernels/_packed.c"]),
    ext("gru_cy.kernels._gru", ["src/gru_cy/kernels/_gru.pyx", "src/gru_cy/kernels/_gru_gates.c",
                                "src/gru_cy/kernels/_layout.c"]),
    ext("gru_cy.kernels._rnn", ["src/gru_cy/kernels/_rnn.pyx", "src/gru_cy/kernels/_rnn_gates.c",
                                "src/gru_cy/kernels/_layout.c"]),
    ext("gru_cy.kernels._jordan",
        ["src/gru_cy/kernels/_jordan.pyx", "src/gru_cy/kernels/_jordan_gates.c",
         "src/gru_cy/kernels/_layout.c"]),
    ext("gru_cy.kernels._lstm",
        ["src/gru_cy/kernels/_lstm.pyx", "src/gru_cy/kernels/_lstm_gates.c",
         "src/gru_cy/kernels/_layout.c"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        force=DEBUG,
    ),
)
