/* gru_cy's matrix products: every product the recurrent kernels make,
 * forward and backward, runs here.
 *
 *     C[i, j - j0] (=|+=) sum_k A[i, k] * B[k0 + k, j]     i < M, j0 <= j < j0 + n
 *
 * The contract that makes results reproducible: each element of C is one
 * chain of multiply-adds over k = 0 .. K-1 in increasing order, started at
 * zero (init 0) or at the element's current value (init 1: the chain goes
 * on from an earlier product), whatever M, n, the element's position, the
 * blocking, the thread that computes it or the layout of the operands. A
 * row of C therefore never depends on the other rows, and a product split
 * into column blocks, row blocks or blocks of k (each continuing the
 * chain) gives the same bits as one product. The chain uses fused
 * multiply-adds on the AVX2 and AVX-512 paths (which agree bit for bit)
 * and separate multiplies and adds on the portable path.
 *
 * A is read at a[i * sam + k * sak] (row-major: sak = 1; transposed:
 * sam = 1). B is described by an rc_bmat: its N columns cut into panels of
 * RC_PANEL_BYTES bytes (NR = 32 floats or 16 doubles), panel p at
 * p + p * pstride, its row k at offset k * ld within the panel. Two forms
 * serve every product:
 *   - a row-major matrix read in place: pstride = NR, ld = its row length
 *     (a weight stored transposed, a workspace); the last, partial panel is
 *     copied once per call into `tail` so that no load reads past the end;
 *   - packed panels (rc_pack): pstride = K * NR, ld = NR, from any matrix
 *     (a transposed one too), when the same B serves many products.
 * A third, for a product made once (a one-step call's, a few rows of A):
 *   - a matrix stored transposed read in place (rc_bmat_transposed): B[k, j]
 *     = raw[j * raw_ld + k]; the float kernel of AVX2 and AVX-512 transposes
 *     8 x 8 blocks of it in registers on the way to the same chains, so that
 *     the packing, which would cost more than the product, is skipped.
 *
 * With the BLAS backend (rc_set_backend) the products go to SciPy's BLAS
 * instead, through the raw matrix each rc_bmat also records; the contract
 * above then does not hold. */
#ifndef GRU_CY_RC_GEMM_H
#define GRU_CY_RC_GEMM_H

#include <stddef.h>

#include "rc_base.h"

#define RC_PANEL_BYTES 128
/* Elements per panel for an element size. */
#define RC_NR(itemsize) (RC_PANEL_BYTES / (int)(itemsize))

typedef struct {
    const void *p;          /* the panels */
    ptrdiff_t pstride;      /* elements from one panel to the next */
    ptrdiff_t ld;           /* elements from one row k to the next */
    const void *tail;       /* the last panel packed (row length NR), or NULL */
    int K, N;
    /* The matrix as given, for the BLAS backend: B[k, j] = raw[k * raw_ld + j],
     * or raw[j * raw_ld + k] when raw_trans. */
    const void *raw;
    ptrdiff_t raw_ld;
    int raw_trans;
    /* Non-NULL for weights packed as bfloat16 or int8 (rc_qgemm.h): rc_gemm
     * then hands the product to rc_qgemm (float32 A and C, k0 = 0 and the
     * whole of K; init 1 adds the product into C). */
    const struct rc_qmat *q;
    /* 1: B is raw transposed, read in place (rc_bmat_transposed). */
    int tr;
} rc_bmat;

/* Elements rc_pack writes for a K x N matrix (an upper bound for float and
 * double alike, so that workspace sizes need no element type). */
static inline ptrdiff_t rc_packed_elems(int K, int N)
{
    return (ptrdiff_t)((N + 31) / 32) * 32 * (ptrdiff_t)K;
}

/* Elements of the tail buffer rc_bmat_rows may need. */
static inline ptrdiff_t rc_tail_elems(int K)
{
    return (ptrdiff_t)32 * K;
}

/* B = the K x N matrix src[k * ld + j] (trans 0) or src[j * ld + k]
 * (trans 1), read in place when trans is 0 (the partial last panel copied
 * into tail, rc_tail_elems(K) elements), packed into `packed`
 * (rc_packed_elems(K, N) elements) when trans is 1 or packed is not NULL. */
void rc_bmat_init(int dtype, rc_bmat *b, int trans, int K, int N, const void *src,
                  ptrdiff_t ld, void *packed, void *tail);

/* B = the K x N matrix src[j * ld + k] read in place, for products made
 * once with few rows of A. Every element keeps the chain it has with the
 * other forms; the fast path is float on AVX2 and AVX-512
 * (rc_gemm_transposed_fast says whether it runs). */
void rc_bmat_transposed(int dtype, rc_bmat *b, int K, int N, const void *src, ptrdiff_t ld);
int rc_gemm_transposed_fast(int dtype);

/* Panels [p0, p1) of rc_bmat_init's packing only (threads share the work:
 * call rc_bmat_describe first, then each thread packs its panels). */
void rc_bmat_describe(int dtype, rc_bmat *b, int trans, int K, int N, const void *src,
                      ptrdiff_t ld, void *packed, void *tail);
void rc_bmat_pack_panels(int dtype, const rc_bmat *b, int p0, int p1);

/* The product above; B's rows k0 .. k0 + K - 1. init 0 overwrites C, 1
 * continues the chains from C's values. */
void rc_gemm(int dtype, int M, int K, int j0, int n, const void *a, ptrdiff_t sam,
             ptrdiff_t sak, const rc_bmat *b, int k0, int init, void *c, ptrdiff_t ldc);

/* The instruction set the products (and the cells' loops) run with:
 * RC_ISA_*. Chosen once, at the first call: the best the CPU has, or what
 * the environment variable GRU_CY_ISA (avx512, avx2, portable) asks for,
 * when the CPU has it. */
int rc_isa(void);
/* The best instruction set the CPU has. */
int rc_cpu_isa(void);
/* Run with instruction set isa from now on (at most the CPU's best);
 * returns the one now used. For tests and benchmarks: not while other
 * threads run kernels. */
int rc_set_isa(int isa);

/* The products' backend: 0 gru_cy's kernels (the default), 1 the BLAS
 * given to rc_set_blas. */
int rc_backend(void);
void rc_set_backend(int blas);

/* Fortran BLAS ?gemm, as SciPy's cython_blas exports them. */
typedef void (*rc_sgemm_t)(char *ta, char *tb, int *m, int *n, int *k, float *alpha,
                           float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                           int *ldc);
typedef void (*rc_dgemm_t)(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                           double *a, int *lda, double *b, int *ldb, double *beta,
                           double *c, int *ldc);
void rc_set_blas(rc_sgemm_t sgemm, rc_dgemm_t dgemm);

/* The benchmarks' yardstick: rounds of 12 independent chains of vector
 * multiply-adds with the current instruction set; returns the number of
 * multiply-adds (their sum goes to *sink). */
long long rc_fma_chains(long long rounds, double *sink);

#endif
