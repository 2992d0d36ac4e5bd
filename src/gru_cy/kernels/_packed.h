/* The recurrent product on pre-packed weights.
 *
 * A recurrent step multiplies the running rows of the state (M rows, K
 * wide) by the same weight matrix (K x N) at every step. BLAS repacks that
 * matrix on every call; for the per-step shapes of a recurrent network
 * (M = batch, a few hundred K and N) the repacking is 15-20% of the time.
 * Here the weights are packed once per call of a layer, and every step runs
 * a register-blocked kernel on them.
 *
 * Packed layout: the N columns are cut into panels of RC_PANEL_BYTES bytes
 * (32 floats, 16 doubles); panel p holds W[k, p*NR : p*NR + NR] for
 * k = 0 .. K-1 contiguously (row k at offset k*NR), zero-padded past N.
 * Panels are pstride elements apart (K*NR for a whole packed matrix; a
 * product over the rows k0 .. k0+K' of a packed matrix passes wp + k0*NR
 * and the whole matrix's pstride).
 *
 * Each output element is one chain of multiply-adds over k = 0 .. K-1 in
 * order, whatever M, the row's position or the instruction set: a row's
 * result does not depend on the other rows of the batch.
 */
#ifndef GRU_CY_PACKED_H
#define GRU_CY_PACKED_H

#include <stddef.h>

#define RC_PANEL_BYTES 128

/* Rows of the left operand kept in L2 while the panels pass over them. */
#define RC_ROW_BLOCK_BYTES (256 * 1024)

#define RC_PACKED_DECLARE(T, S)                                               \
/* Pack W (K x N) into dst (rc_packed_size elements): W[k, j] is           \
 * src[k * ld + j] when trans == 0, src[j * ld + k] when trans != 0. */     \
void rc_pack##S(int trans, int K, int N, const T *src, ptrdiff_t ld,         \
                T *dst);                                                      \
/* c[i, j - j0] = beta * c[i, j - j0] + sum_k a[i * lda + k] * W[k, j]       \
 * for i < M, j0 <= j < j0 + n; beta 0 never reads c. */                     \
void rc_gemm_packed##S(int M, int K, int j0, int n, const T *a,              \
                       ptrdiff_t lda, const T *wp, ptrdiff_t pstride,        \
                       T beta, T *c, ptrdiff_t ldc);

RC_PACKED_DECLARE(float, _f32)
RC_PACKED_DECLARE(double, _f64)

#undef RC_PACKED_DECLARE

/* Which instruction set the kernels run with: 2 AVX-512, 1 AVX2 + FMA,
 * 0 portable C. */
int rc_packed_isa(void);

/* Run with at most instruction set cap (-1: the best the CPU has); returns
 * the one now used. For the tests, which check every variant on one
 * machine. */
int rc_packed_limit_isa(int cap);

/* The core's float32 multiply-add rate, for the benchmarks: runs rounds
 * rounds of 12 independent chains of vector multiply-adds with the
 * kernels' instruction set and returns how many multiply-adds that was
 * (their sum goes to *sink). Not used by the kernels. */
long long rc_fma_chains(long long rounds, double *sink);

#endif
