"""gru_cy's matrix products (kernels/rc_gemm.c) against an exact model of what they promise.

Each element of C = A @ B is one chain of multiply-adds over k in increasing order, started at
zero (or, init, at C's own value): fused multiply-adds on the AVX2 and AVX-512 paths, a multiply
then an add on the portable one. The float32 reference below computes exactly that chain, one
element at a time in NumPy (a fused multiply-add emulated exactly through float64), so the
kernels must match it bit for bit under every instruction set this CPU runs; and a row of C,
a column block or a block of k continued from C give the same bits as the whole product.
"""

import numpy as np
import pytest

from gru_cy.kernels import _core
from helpers import same_bits

ISAS = [name for name in ("portable", "avx2", "avx512")
        if ("portable", "avx2", "avx512").index(name)
        <= ("portable", "avx2", "avx512").index(_core.cpu_isa())]


@pytest.fixture(params=ISAS)
def isa(request):
    before = _core.isa()
    assert _core.set_isa(request.param) == request.param
    yield request.param
    _core.set_isa(before)


def fma32(a, b, c):
    """round_to_float32(a * b + c) computed exactly, elementwise (float32 arrays)."""
    p = a.astype(np.float64) * b.astype(np.float64)         # exact: 24 + 24 bits
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)                       # s + err == p + c exactly
    r = s.astype(np.float32)
    # Rounding s to float32 is right unless s lies exactly halfway between two
    # floats while the exact sum does not (err != 0): then round towards err.
    other = np.nextafter(r, np.where(s > r.astype(np.float64), np.inf, -np.inf).astype(np.float32))
    tie = (np.abs(s - r.astype(np.float64)) == np.abs(other.astype(np.float64) - s)) & (err != 0)
    up = np.maximum(r, other)
    down = np.minimum(r, other)
    return np.where(tie, np.where(err > 0, up, down), r)


def chain32(A, B, fused, C0=None):
    """The promised chain for every element: acc = C0 (or 0); acc = acc + A[:, k] B[k, :] for
    k = 0 .. K-1, fused (one rounding) or not (two)."""
    M, K = A.shape
    acc = np.zeros((M, B.shape[1]), np.float32) if C0 is None else C0.astype(np.float32)
    for k in range(K):
        a = np.broadcast_to(A[:, k:k + 1], acc.shape)
        b = np.broadcast_to(B[k:k + 1, :], acc.shape)
        acc = fma32(a, b, acc) if fused else (acc + a * b).astype(np.float32)
    return acc


def _data(rng, M, K, N, dtype):
    A = rng.standard_normal((M, K)).astype(dtype)
    W = rng.standard_normal((N, K)).astype(dtype)      # a weight as a module holds it
    return A, W


SHAPES = [(1, 1, 1), (1, 64, 192), (3, 33, 70), (12, 17, 32), (13, 5, 96), (40, 70, 33),
          (7, 600, 40)]


@pytest.mark.parametrize("M,K,N", SHAPES)
@pytest.mark.parametrize("form", ["packed", "in place", "transposed in place"])
def test_float32_is_the_promised_chain(isa, M, K, N, form):
    """W^T packed, W^T given as a row-major matrix and read in place, or W read in place
    transposed (one-step calls: 8 x 8 blocks transposed in registers): the same chains."""
    rng = np.random.default_rng(M * 1000 + K)
    A, W = _data(rng, M, K, N, np.float32)
    if form == "in place":
        C = _core.gemm(A, np.ascontiguousarray(W.T), False)
    else:
        C = _core.gemm(A, W, True, pack=form == "packed", in_place=form != "packed")
    want = chain32(A, W.T, fused=isa != "portable")
    assert np.array_equal(C.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_in_place_is_the_packed_product(isa, dtype):
    """W read in place transposed, on random shapes, column ranges, blocks of k and
    continued chains, gives the bits of the packed product."""
    rng = np.random.default_rng(11)
    for _ in range(150):
        M, K, N = int(rng.integers(1, 7)), int(rng.integers(0, 70)), int(rng.integers(1, 80))
        W = rng.standard_normal((N, K)).astype(dtype)
        j0 = int(rng.integers(0, N))
        n = int(rng.integers(1, N - j0 + 1))
        k0 = int(rng.integers(0, K + 1))
        KK = int(rng.integers(0, K - k0 + 1))
        A = rng.standard_normal((M, KK)).astype(dtype)
        init = bool(rng.integers(0, 2))
        C0 = rng.standard_normal((M, n)).astype(dtype)
        want = _core.gemm(A, W, True, j0, n, C0.copy(), init, True, k0, KK)
        got = _core.gemm(A, W, True, j0, n, C0.copy(), init, False, k0, KK, in_place=True)
        assert same_bits(got, want), (M, K, N, j0, n, k0, KK, init)
        got_t = _core.gemm(np.ascontiguousarray(A.T), W, True, j0, n, C0.copy(), init, False,
                           k0, KK, a_trans=True, in_place=True)
        assert same_bits(got_t, want)


@pytest.mark.parametrize("M,K,N", [(5, 40, 70), (13, 600, 33)])
def test_chains_continue_from_the_output(isa, M, K, N):
    """init=True starts each chain at C's value; a product split into blocks of k, each
    continuing the last, gives the same bits as the whole."""
    rng = np.random.default_rng(7)
    A, W = _data(rng, M, K, N, np.float32)
    C0 = rng.standard_normal((M, N)).astype(np.float32)
    C = _core.gemm(A, W, True, c=C0.copy(), init=True)
    assert np.array_equal(C, chain32(A, W.T, isa != "portable", C0))
    whole = _core.gemm(A, W, True)
    k1 = K // 3
    part = _core.gemm(np.ascontiguousarray(A[:, :k1]), W, True, K=k1)
    part = _core.gemm(np.ascontiguousarray(A[:, k1:]), W, True, c=part, init=True, k0=k1)
    assert np.array_equal(whole, part)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_column_or_layout_never_changes_an_element(isa, dtype):
    """The bits of an element do not depend on the other rows, on the column block asked for,
    on packing, on A given transposed, or on W's layout."""
    rng = np.random.default_rng(3)
    M, K, N = 29, 75, 101
    A, W = _data(rng, M, K, N, dtype)
    whole = _core.gemm(A, W, True)
    np.testing.assert_allclose(whole, A.astype(np.float64) @ W.T.astype(np.float64),
                               rtol=1e-4 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)
    assert np.array_equal(whole, _core.gemm(A, W, True, pack=True))
    assert np.array_equal(whole, _core.gemm(A, np.ascontiguousarray(W.T), False))
    assert np.array_equal(whole, _core.gemm(A, np.ascontiguousarray(W.T), False, pack=True))
    assert np.array_equal(whole, _core.gemm(np.ascontiguousarray(A.T), W, True, a_trans=True))
    for i in (0, 5, M - 1):
        assert np.array_equal(whole[i:i + 1], _core.gemm(A[i:i + 1], W, True))
    for j0, n in ((0, 32), (3, 50), (64, 37), (100, 1)):
        assert np.array_equal(whole[:, j0:j0 + n], _core.gemm(A, W, True, j0=j0, n=n))


def test_avx2_and_avx512_agree():
    """Both fused paths make the same chain: the same bits (float64 too)."""
    if _core.cpu_isa() != "avx512":
        pytest.skip("needs a CPU with AVX-512")
    rng = np.random.default_rng(4)
    before = _core.isa()
    try:
        for dtype in (np.float32, np.float64):
            A, W = _data(rng, 37, 130, 70, dtype)
            out = []
            for name in ("avx2", "avx512"):
                _core.set_isa(name)
                out.append(_core.gemm(A, W, True))
            assert np.array_equal(out[0], out[1])
    finally:
        _core.set_isa(before)


def test_nan_and_inf_propagate(isa):
    A = np.ones((2, 4), np.float32)
    W = np.ones((3, 4), np.float32)
    A[0, 1] = np.nan
    W[2, 3] = np.inf
    C = _core.gemm(A, W, True)
    assert np.isnan(C[0]).all()
    assert np.isinf(C[1, 2]) and np.isfinite(C[1, :2]).all()


def test_the_blas_backend_computes_the_same_product():
    rng = np.random.default_rng(5)
    A, W = _data(rng, 9, 40, 33, np.float64)
    ours = _core.gemm(A, W, True)
    try:
        _core.set_backend("blas")
        assert _core.backend() == "blas"
        theirs = _core.gemm(A, W, True)
    finally:
        _core.set_backend("gru_cy")
    np.testing.assert_allclose(theirs, ours, rtol=1e-13, atol=1e-13)
    with pytest.raises(ValueError, match="backend"):
        _core.set_backend("mkl")


def test_fma_peak_runs_under_every_isa(isa):
    assert _core.fma_peak(seconds=0.002, repeats=1) > 0
