"""Row-major BLAS over scipy.linalg.cython_blas (see _blas.pxd)."""

import time

import numpy as np

from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv, saxpy, daxpy

cdef extern from "_packed.h" nogil:
    void rc_pack_f32(int trans, int K, int N, const float *src, Py_ssize_t ld, float *dst)
    void rc_pack_f64(int trans, int K, int N, const double *src, Py_ssize_t ld, double *dst)
    void rc_gemm_packed_f32(int M, int K, int j0, int n, const float *a, Py_ssize_t lda,
                            const float *wp, Py_ssize_t pstride, float beta, float *c,
                            Py_ssize_t ldc)
    void rc_gemm_packed_f64(int M, int K, int j0, int n, const double *a, Py_ssize_t lda,
                            const double *wp, Py_ssize_t pstride, double beta, double *c,
                            Py_ssize_t ldc)
    int rc_packed_isa()
    int rc_packed_limit_isa(int cap)
    long long rc_fma_chains(long long rounds, double *sink)


cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating *A, int lda,
               const floating *B, int ldb,
               floating beta, floating *C, int ldc) noexcept nogil:
    """C := alpha * op(A) @ op(B) + beta * C   (row-major, C is m x n)"""
    cdef char ta_c = <char>ta
    cdef char tb_c = <char>tb
    if m <= 0 or n <= 0:
        return
    # Column-major view: C^T (n x m) = op(B)^T (n x k) @ op(A)^T (k x m).
    if floating is float:
        sgemm(&tb_c, &ta_c, &n, &m, &k, &alpha, <float *>B, &ldb,
              <float *>A, &lda, &beta, C, &ldc)
    else:
        dgemm(&tb_c, &ta_c, &n, &m, &k, &alpha, <double *>B, &ldb,
              <double *>A, &lda, &beta, C, &ldc)


cdef void gemv(BLAS_Trans ta, int m, int n, floating alpha,
               const floating *A, int lda, const floating *x, int incx,
               floating beta, floating *y, int incy) noexcept nogil:
    """y := alpha * op(A) @ x + beta * y   (row-major A is m x n)"""
    # A row-major (m x n) is the column-major (n x m) matrix A^T, so the
    # transpose flag flips and the dimensions swap.
    cdef char t_c = b't' if ta == NoTrans else b'n'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemv(&t_c, &n, &m, &alpha, <float *>A, &lda, <float *>x, &incx,
              &beta, y, &incy)
    else:
        dgemv(&t_c, &n, &m, &alpha, <double *>A, &lda, <double *>x, &incx,
              &beta, y, &incy)


cdef void axpy(int n, floating alpha, const floating *x, int incx,
               floating *y, int incy) noexcept nogil:
    """y := alpha * x + y"""
    if floating is float:
        saxpy(&n, &alpha, <float *>x, &incx, y, &incy)
    else:
        daxpy(&n, &alpha, <double *>x, &incx, y, &incy)


ctypedef int (*thread_query_t)() noexcept nogil
cdef thread_query_t _blas_threads = NULL

# Measured at 2 threads (inference, GRU and LSTM, T = 50-100, one run
# alternating both): up to M * K * N = 4.2M (B = 64, H = 128) the one-thread
# packed product is level with OpenBLAS's two threads; from 6.3M (GRU,
# B = 128, H = 128) to 134M (LSTM, B = 128, H = 512) OpenBLAS's threads are
# 1.1-1.37x faster, except for the LSTM at 8.4M and 16.8M (B = 128, H = 128;
# B = 64, H = 256), 0.84-0.95x.
cdef enum:
    PACKED_MAX_THREADED = 1 << 22


def set_thread_query(size_t address):
    """Give the kernels the address of the BLAS's int get_num_threads(void)
    (gru_cy._threads finds it; 0 forgets it, as if the BLAS ran one thread)."""
    global _blas_threads
    _blas_threads = <thread_query_t>address


cdef bint packed_pays(int M, int K, int N) noexcept nogil:
    if _blas_threads == NULL or _blas_threads() <= 1:
        return True
    return <double>M * K * N <= PACKED_MAX_THREADED


cdef void pack(bint trans, int K, int N, const floating *src, Py_ssize_t ld,
               floating *dst) noexcept nogil:
    if floating is float:
        rc_pack_f32(trans, K, N, src, ld, dst)
    else:
        rc_pack_f64(trans, K, N, src, ld, dst)


cdef void gemm_packed(int m, int K, int j0, int n, const floating *A, Py_ssize_t lda,
                      const floating *Wp, Py_ssize_t pstride, floating beta,
                      floating *C, Py_ssize_t ldc) noexcept nogil:
    if floating is float:
        rc_gemm_packed_f32(m, K, j0, n, A, lda, Wp, pstride, beta, C, ldc)
    else:
        rc_gemm_packed_f64(m, K, j0, n, A, lda, Wp, pstride, beta, C, ldc)


def packed_isa(cap=None):
    """The instruction set of the packed recurrent product: "avx512",
    "avx2" or "portable". cap (0 portable, 1 AVX2, 2 AVX-512, -1 the best
    the CPU has) first limits it, for tests that check every variant."""
    cdef int isa = rc_packed_isa() if cap is None else rc_packed_limit_isa(<int>cap)
    return ("portable", "avx2", "avx512")[isa]


def fma_peak(double seconds=0.05, int repeats=5):
    """The float32 multiply-add rate of one core in GFLOP/s (2 flops per
    multiply-add), with the instruction set of the packed product (the
    CPU's best unless packed_isa(cap) lowered it): the fastest of repeats
    runs of about seconds each of independent vector multiply-add chains.
    The benchmarks' yardstick: with the CPU's best instruction set, no
    product can run faster on one core."""
    cdef long long rounds = 1 << 16, n = 0
    cdef double sink = 0.0, best = 0.0, t0, dt
    while True:
        t0 = time.perf_counter()
        with nogil:
            n = rc_fma_chains(rounds, &sink)
        dt = time.perf_counter() - t0
        if dt >= seconds or rounds >= (<long long>1 << 40):
            break
        rounds *= 2
    best = 2.0 * n / dt
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        with nogil:
            n = rc_fma_chains(rounds, &sink)
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * n / dt)
    return best / 1e9


# Python entry points for the shim's own tests (tests/test_blas.py). They
# take NumPy arrays, check nothing beyond what the tests need, and write
# into C in place.

def _gemm(str ta, str tb, alpha, floating[:, ::1] A, floating[:, ::1] B,
          beta, floating[:, ::1] C):
    """C := alpha * op(A) @ op(B) + beta * C, in place (test helper)."""
    cdef BLAS_Trans ta_ = Trans if ta == "t" else NoTrans
    cdef BLAS_Trans tb_ = Trans if tb == "t" else NoTrans
    cdef int m = C.shape[0], n = C.shape[1]
    cdef int k = A.shape[0] if ta == "t" else A.shape[1]
    gemm(ta_, tb_, m, n, k, <floating>alpha, &A[0, 0], A.shape[1],
         &B[0, 0], B.shape[1], <floating>beta, &C[0, 0], C.shape[1])


def _gemv(str ta, alpha, floating[:, ::1] A, floating[::1] x, beta,
          floating[::1] y):
    """y := alpha * op(A) @ x + beta * y, in place (test helper)."""
    cdef BLAS_Trans ta_ = Trans if ta == "t" else NoTrans
    gemv(ta_, A.shape[0], A.shape[1], <floating>alpha, &A[0, 0], A.shape[1],
         &x[0], 1, <floating>beta, &y[0], 1)


def _axpy(alpha, floating[::1] x, floating[::1] y):
    """y := alpha * x + y, in place (test helper)."""
    axpy(x.shape[0], <floating>alpha, &x[0], 1, &y[0], 1)


def _gemm_packed(floating[:, ::1] A, floating[:, ::1] W, bint trans, int j0, int n,
                 beta, floating[:, ::1] C, int k0=0, int K=-1):
    """C := beta * C + A @ W'[k0:k0 + K, j0:j0 + n], W' = W.T if trans else W,
    through pack and gemm_packed (test helper; C is (m, n))."""
    cdef int Kt = W.shape[1] if trans else W.shape[0]
    cdef int N = W.shape[0] if trans else W.shape[1]
    cdef Py_ssize_t nr = PANEL_BYTES // sizeof(floating)
    if K < 0:
        K = Kt - k0
    if (k0 < 0 or k0 + K > Kt or j0 < 0 or j0 + n > N or A.shape[1] < K
            or C.shape[0] != A.shape[0] or C.shape[1] != n):
        raise ValueError("_gemm_packed: inconsistent shapes")
    wp = np.zeros(packed_elems(Kt, N), dtype=np.asarray(A).dtype)
    cdef floating[::1] wp_v = wp
    pack(trans, Kt, N, &W[0, 0], W.shape[1], &wp_v[0])
    gemm_packed(A.shape[0], K, j0, n, &A[0, 0], A.shape[1], &wp_v[0] + k0 * nr,
                panel_stride(Kt, sizeof(floating)), <floating>beta, &C[0, 0], C.shape[1])
