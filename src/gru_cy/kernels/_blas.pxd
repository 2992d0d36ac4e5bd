# The one BLAS shim of gru_cy. Every matrix product in the package goes
# through these functions; no other module names sgemm/dgemm. The per-step
# recurrent product can instead run on weights packed once per layer call
# (pack, gemm_packed: gru_cy's own kernels, _packed.h).
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

# ---- the packed-weight recurrent product (_packed.h) ----------------------
#
# W (K x N) is packed into panels of PANEL_BYTES bytes (32 floats, 16
# doubles) of its columns, each panel K rows, panel_stride elements apart.

cdef enum:
    PANEL_BYTES = 128

cdef inline Py_ssize_t packed_elems(int K, int N) noexcept nogil:
    """Elements a packed K x N matrix needs, an upper bound for float and
    double alike (so that workspace sizes need no dtype)."""
    return <Py_ssize_t>((N + 31) // 32) * 32 * K

cdef inline Py_ssize_t panel_stride(int K, Py_ssize_t itemsize) noexcept nogil:
    return <Py_ssize_t>K * (PANEL_BYTES // itemsize)

# Whether the per-step products of M rows by a K x N matrix should run on
# packed weights (one thread) rather than BLAS: always while the BLAS runs
# one thread; with more, only while a product is small enough that BLAS's
# threads do not pay (set_thread_query tells how to ask the BLAS).
cdef bint packed_pays(int M, int K, int N) noexcept nogil

# dst := W packed; W[k, j] = src[k * ld + j] (trans False) or src[j * ld + k]
cdef void pack(bint trans, int K, int N, const floating *src, Py_ssize_t ld,
               floating *dst) noexcept nogil

# C[:, :n] := beta * C[:, :n] + A @ W[:, j0:j0 + n], A (m, K) with row
# stride lda, Wp a packed W (or its rows k0.. at Wp + k0 * PANEL_BYTES //
# itemsize), panels pstride apart; beta 0 never reads C.
cdef void gemm_packed(int m, int K, int j0, int n, const floating *A, Py_ssize_t lda,
                      const floating *Wp, Py_ssize_t pstride, floating beta,
                      floating *C, Py_ssize_t ldc) noexcept nogil
