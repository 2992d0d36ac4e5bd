"""Row-major BLAS over scipy.linalg.cython_blas (see _blas.pxd)."""

import numpy as np

from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv, saxpy, daxpy


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
