"""The packed-weight recurrent product (kernels/_packed.c) against NumPy in
float64, for every instruction-set variant this CPU can run.

Each cell's per-step products go through it for calls of two or more steps;
the cells' own parity tests check it inside the time loops (with the best
variant), and the last test here runs a cell under each variant."""

import numpy as np
import pytest

import gru_cy
from gru_cy.kernels import _blas

ISAS = ("portable", "avx2", "avx512")
BEST = _blas.packed_isa(-1)
VARIANTS = [i for i, name in enumerate(ISAS) if i <= ISAS.index(BEST)]


@pytest.fixture(params=VARIANTS, ids=[ISAS[i] for i in VARIANTS])
def isa(request):
    assert _blas.packed_isa(request.param) == ISAS[request.param]
    yield ISAS[request.param]
    _blas.packed_isa(-1)


def _product(A, W, trans, j0, n, beta, C, k0=0, K=None):
    Wf = (W.T if trans else W).astype(np.float64)
    K = Wf.shape[0] - k0 if K is None else K
    ref = A[:, :K].astype(np.float64) @ Wf[k0:k0 + K, j0:j0 + n]
    if beta:
        ref = ref + beta * C.astype(np.float64)
    out = C.copy()
    _blas._gemm_packed(np.ascontiguousarray(A[:, :K]), W, trans, j0, n, beta, out, k0, K)
    return out, ref


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans", [False, True])
def test_matches_numpy_over_shapes(isa, dtype, trans):
    rng = np.random.default_rng(0)
    eps = np.finfo(dtype).eps
    # M covers every row-tile remainder of every variant; N not a multiple
    # of the panel width; K from 1.
    for M in (1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 25, 40):
        for K, N in ((1, 1), (3, 40), (17, 33), (64, 256), (100, 300)):
            W = rng.standard_normal((N, K) if trans else (K, N)).astype(dtype)
            A = rng.standard_normal((M, K)).astype(dtype)
            for j0, n in ((0, N), (N // 3, N - N // 3), (N // 2, max(1, N // 4))):
                for beta in (0.0, 1.0):
                    C = rng.standard_normal((M, n)).astype(dtype)
                    out, ref = _product(A, W, trans, j0, n, beta, C)
                    bound = 4 * K * eps * (np.abs(A).max() * np.abs(W).max() + 1) + 4 * eps
                    assert np.abs(out - ref).max() <= bound, (M, K, N, j0, n, beta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_ranges_of_the_packed_matrix(isa, dtype):
    """The backward products use rows k0 .. k0 + K of a packed matrix."""
    rng = np.random.default_rng(1)
    K, N, M = 96, 70, 9
    W = rng.standard_normal((K, N)).astype(dtype)
    for k0, k in ((0, 32), (32, 32), (64, 32), (5, 40)):
        A = rng.standard_normal((M, k)).astype(dtype)
        C = np.zeros((M, N), dtype)
        out, ref = _product(A, W, False, 0, N, 0.0, C, k0, k)
        np.testing.assert_allclose(out, ref, rtol=0, atol=200 * np.finfo(dtype).eps * k)


def test_beta_zero_never_reads_the_output(isa):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((5, 20)).astype(np.float32)
    W = rng.standard_normal((20, 45)).astype(np.float32)
    C = np.full((5, 45), np.nan, np.float32)
    out, ref = _product(A, W, False, 0, 45, 0.0, C)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def test_columns_outside_the_range_are_untouched(isa):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((4, 16)).astype(np.float64)
    W = rng.standard_normal((16, 100)).astype(np.float64)
    full = np.full((4, 100), 7.0)
    # write columns 30 .. 70 through a view of the wider array
    view = full[:, 30:70]
    out = np.ascontiguousarray(view)
    _blas._gemm_packed(A, W, False, 30, 40, 0.0, out)
    full[:, 30:70] = out
    assert (full[:, :30] == 7.0).all() and (full[:, 70:] == 7.0).all()
    np.testing.assert_allclose(out, A @ W[:, 30:70], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_does_not_depend_on_the_batch(isa, dtype):
    """Each element is one multiply-add chain over k in order: a row's
    result is the same bit for bit whatever rows surround it."""
    rng = np.random.default_rng(4)
    K, N = 130, 200
    W = rng.standard_normal((N, K)).astype(dtype)
    A = rng.standard_normal((29, K)).astype(dtype)
    C = np.zeros((29, N), dtype)
    together, _ = _product(A, W, True, 0, N, 0.0, C)
    for i in (0, 1, 11, 12, 28):
        alone, _ = _product(A[i:i + 1], W, True, 0, N, 0.0, C[i:i + 1])
        np.testing.assert_array_equal(alone[0], together[i])


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "RNN"])
def test_cells_agree_under_every_variant(isa, cell):
    """A cell's forward and backward under this variant against the best
    variant's (the cells' parity tests check the best one against the
    references)."""
    rng = np.random.default_rng(5)
    T, B, I, H = 6, 5, 7, 37
    m = getattr(gru_cy, cell)(I, H, num_layers=2, bidirectional=True, dtype=np.float64, seed=3)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, 2 * H))
    lengths = np.array([6, 3, 5, 1, 6])
    out, _, tape = m.forward_train(x, lengths=lengths)
    m.zero_grad()
    dx, _ = m.backward(tape, dout)
    grads = {k: v.copy() for k, v in m.grads.items()}
    _blas.packed_isa(-1)
    out_b, _, tape_b = m.forward_train(x, lengths=lengths)
    m.zero_grad()
    dx_b, _ = m.backward(tape_b, dout)
    np.testing.assert_allclose(out, out_b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, dx_b, rtol=1e-11, atol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], m.grads[k], rtol=1e-11, atol=1e-12)


def test_reports_a_known_variant():
    assert _blas.packed_isa() in ISAS


@pytest.mark.parametrize("cell", ["GRU", "LSTM", "RNN"])
def test_large_products_go_to_a_threaded_blas(cell):
    """With a BLAS running several threads, products past packed_pays' size
    take BLAS instead of the packed kernel: the same results to rounding."""
    import ctypes

    from gru_cy import _threads

    rng = np.random.default_rng(6)
    T, B, I, H = 3, 64, 5, 300          # M * K * N = 64 * 300 * (G * 300) > 2^22
    m = getattr(gru_cy, cell)(I, H, dtype=np.float64, seed=4)
    x = rng.standard_normal((T, B, I))
    dout = rng.standard_normal((T, B, H))
    asked = []
    two_threads = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: asked.append(1) or 2)
    runs = []
    try:
        for address in (0, ctypes.cast(two_threads, ctypes.c_void_p).value):
            _blas.set_thread_query(address)
            out, _, tape = m.forward_train(x)
            m.zero_grad()
            dx, _ = m.backward(tape, dout)
            runs.append((out, dx, {k: v.copy() for k, v in m.grads.items()}, m(x)[0]))
    finally:
        _threads._connect_kernels()
    assert asked, "the kernels never asked the BLAS for its thread count"
    (o1, d1, g1, i1), (o2, d2, g2, i2) = runs
    np.testing.assert_allclose(o1, o2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(i1, i2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(d1, d2, rtol=1e-11, atol=1e-12)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-11, atol=1e-12)



def test_fma_peak_runs_under_every_isa(isa):
    # The benchmarks' yardstick: a positive, finite rate with each
    # instruction set the CPU has (the rate itself is the benchmarks' to read).
    rate = _blas.fma_peak(0.001, 2)
    assert np.isfinite(rate) and rate > 0
