# The one BLAS shim of gru_cy. Every matrix product in the package goes
# through these three functions; no other module names sgemm/dgemm.
#
# All arrays are row-major (C order). Fortran BLAS is column-major, so the
# shim swaps operands once, here: a row-major C = op(A) @ op(B) is the
# column-major C^T = op(B)^T @ op(A)^T.

from cython cimport floating

cpdef enum BLAS_Trans:
    NoTrans = 110  # 'n'
    Trans = 116    # 't'

# C := alpha * op(A) @ op(B) + beta * C, with C (m, n) and op(A) (m, k)
cdef void gemm(BLAS_Trans ta, BLAS_Trans tb, int m, int n, int k,
               floating alpha, const floating *A, int lda,
               const floating *B, int ldb,
               floating beta, floating *C, int ldc) noexcept nogil

# y := alpha * op(A) @ x + beta * y, with A (m, n) row-major
cdef void gemv(BLAS_Trans ta, int m, int n, floating alpha,
               const floating *A, int lda, const floating *x, int incx,
               floating beta, floating *y, int incy) noexcept nogil

# y := alpha * x + y
cdef void axpy(int n, floating alpha, const floating *x, int incx,
               floating *y, int incy) noexcept nogil
