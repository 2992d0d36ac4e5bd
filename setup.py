"""Declares the compiled extensions; all metadata lives in pyproject.toml.

GRU_CY_DEBUG=1 at build time turns Cython's bounds, wraparound and
initialisation checks back on and compiles the C helpers without
optimisation and with debug information, for the debug test run;
GRU_CY_PROFILE=1 keeps the release optimisation and adds symbols, for
profilers. Release
builds (the default) carry no debug information and are stripped, which
makes the wheel about 4x smaller.
"""
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("GRU_CY_DEBUG", "0") not in ("", "0")
# GRU_CY_PROFILE=1: the release build's optimisation with its symbols kept
# (for perf and valgrind).
PROFILE = os.environ.get("GRU_CY_PROFILE", "0") not in ("", "0")

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
    # run on any x86-64; the AVX2 and AVX-512 paths are compiled with target
    # attributes and chosen at run time (kernels/rc_gemm.c, rc_cells.c).
    # -g0 overrides the -g that Python's own CFLAGS usually carry.
    compile_args = ["-O0", "-g"] if DEBUG else ["-O3", "-g0"]
    # -ffp-contract=off: no compiler fuses a * b + c on its own. The fused
    # multiply-adds the kernels need are written out (intrinsics, fma()), so
    # the bits do not depend on a compiler's contraction rules (clang's
    # -ffp-contract=fast would even override the pragmas that turn it off).
    compile_args += ["-fno-math-errno", "-ffp-contract=off", "-Wno-unused-function",
                     "-pthread"]
    if DEBUG:
        compile_args += ["-DGRU_CY_DEBUG=1"]
    elif PROFILE:
        compile_args += ["-g"]
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
        extra_link_args=link_args + ([] if os.name == "nt" else ["-pthread"]),
    )


# One extension: the Cython entry points and the C core (products, thread
# pool, the cells' time loops, the workspace cache, the bf16 / int8 products).
K = "src/gru_cy/kernels/"
extensions = [
    ext("gru_cy.kernels._core", [K + "_core.pyx", K + "rc_gemm.c", K + "rc_pool.c",
                                 K + "rc_cells.c", K + "rc_work.c", K + "rc_qgemm.c"]),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        force=DEBUG,
    ),
)
