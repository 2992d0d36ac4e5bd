"""Type stubs for gru_cy.kernels._blas, the BLAS shim (row-major, over SciPy's BLAS).

The cdef functions gemm / gemv / axpy are C-level only; these are the
Python-visible test helpers, which write into their last array in place.
"""

import enum

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64

class BLAS_Trans(enum.IntEnum):
    NoTrans = 110
    Trans = 116

def _gemm(
    ta: str,
    tb: str,
    alpha: float,
    A: npt.NDArray[_Float],
    B: npt.NDArray[_Float],
    beta: float,
    C: npt.NDArray[_Float],
) -> None:
    """C := alpha * op(A) @ op(B) + beta * C, in place; op is .T when its flag is "t"."""

def _gemv(
    ta: str,
    alpha: float,
    A: npt.NDArray[_Float],
    x: npt.NDArray[_Float],
    beta: float,
    y: npt.NDArray[_Float],
) -> None:
    """y := alpha * op(A) @ x + beta * y, in place."""

def _axpy(alpha: float, x: npt.NDArray[_Float], y: npt.NDArray[_Float]) -> None:
    """y := alpha * x + y, in place."""

def set_thread_query(address: int) -> None:
    """Give the kernels the address of the BLAS's get_num_threads (0 forgets it)."""

def packed_isa(cap: int | None = None) -> str:
    """The packed recurrent product's instruction set ("avx512", "avx2" or
    "portable"); cap (0, 1, 2, or -1 for the CPU's best) first limits it."""

def fma_peak(seconds: float = 0.05, repeats: int = 5) -> float:
    """One core's float32 multiply-add rate in GFLOP/s (the benchmarks' yardstick)."""

def _gemm_packed(
    A: npt.NDArray[_Float],
    W: npt.NDArray[_Float],
    trans: bool,
    j0: int,
    n: int,
    beta: float,
    C: npt.NDArray[_Float],
    k0: int = 0,
    K: int = -1,
) -> None:
    """C := beta * C + A @ W'[k0:k0 + K, j0:j0 + n] (W' = W.T if trans), in place, via pack."""
