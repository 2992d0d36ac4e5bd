"""The BLAS shim against NumPy: every transpose combination, both dtypes,
non-square shapes, alpha/beta handling (beta = 0 must ignore C's contents)."""

import numpy as np
import pytest

from gru_cy.kernels import _blas

DTYPES = [np.float32, np.float64]
TOL = {np.float32: 2e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("ta", ["n", "t"])
@pytest.mark.parametrize("tb", ["n", "t"])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 7), (17, 2, 9), (4, 33, 1)])
def test_gemm_matches_numpy(dtype, ta, tb, m, n, k):
    rng = np.random.default_rng(m * 100 + n * 10 + k)
    A = rng.standard_normal((k, m) if ta == "t" else (m, k)).astype(dtype)
    B = rng.standard_normal((n, k) if tb == "t" else (k, n)).astype(dtype)
    C = rng.standard_normal((m, n)).astype(dtype)
    opA = A.T if ta == "t" else A
    opB = B.T if tb == "t" else B
    expected = 0.5 * (opA.astype(np.float64) @ opB.astype(np.float64)) + 2.0 * C
    _blas._gemm(ta, tb, 0.5, A, B, 2.0, C)
    np.testing.assert_allclose(C, expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_gemm_beta_zero_overwrites_nan(dtype):
    # BLAS promises that beta = 0 never reads C, so NaN in C must vanish.
    A = np.ones((2, 3), dtype)
    B = np.ones((3, 4), dtype)
    C = np.full((2, 4), np.nan, dtype)
    _blas._gemm("n", "n", 1.0, A, B, 0.0, C)
    np.testing.assert_array_equal(C, np.full((2, 4), 3.0, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("ta", ["n", "t"])
@pytest.mark.parametrize("m,n", [(1, 1), (5, 3), (2, 17)])
def test_gemv_matches_numpy(dtype, ta, m, n):
    rng = np.random.default_rng(m * 10 + n)
    A = rng.standard_normal((m, n)).astype(dtype)
    x = rng.standard_normal(m if ta == "t" else n).astype(dtype)
    y = rng.standard_normal(n if ta == "t" else m).astype(dtype)
    opA = A.T if ta == "t" else A
    expected = -1.5 * (opA.astype(np.float64) @ x) + 0.25 * y
    _blas._gemv(ta, -1.5, A, x, 0.25, y)
    np.testing.assert_allclose(y, expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_axpy_matches_numpy(dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(11).astype(dtype)
    y = rng.standard_normal(11).astype(dtype)
    expected = 3.0 * x.astype(np.float64) + y
    _blas._axpy(3.0, x, y)
    np.testing.assert_allclose(y, expected, rtol=TOL[dtype], atol=TOL[dtype])


def test_gemm_rejects_mixed_dtypes():
    # The fused Python helper dispatches on one dtype for all arrays.
    A = np.ones((2, 2), np.float32)
    B = np.ones((2, 2), np.float64)
    C = np.ones((2, 2), np.float32)
    with pytest.raises((TypeError, ValueError)):
        _blas._gemm("n", "n", 1.0, A, B, 0.0, C)
