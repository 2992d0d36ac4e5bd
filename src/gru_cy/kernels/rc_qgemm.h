/* Products on weights stored with fewer bits: bfloat16 and int8 (frozen
 * inference, gru_cy.nn.frozen).
 *
 *     C[i, j - j0] (=|+=) sum_k A[i, k] * B[k, j]     i < M, j0 <= j < j0 + n
 *
 * with A float32 (the activations: rows of x, the state), C float32 and B
 * = W^T, W an (N, K) float32 weight quantised once at pack time. The
 * activations are converted per product, row by row, inside the product,
 * so a row's result never depends on the other rows, on how the columns
 * are split over threads, or on the instruction set (below).
 *
 * bf16: every weight and every activation rounded to bfloat16 (nearest,
 * ties to even; NaN stays NaN, a float32 subnormal becomes a zero of its
 * sign), then per output element the chain, over pairs of k,
 *     c = ftz(fma(a[2p+1], w[2p+1], c));  c = ftz(fma(a[2p], w[2p], c))
 * from c = 0, ftz flushing a subnormal result to a zero of its sign: what
 * AVX512_BF16's vdpbf16ps computes (checked bit for bit on AMD Zen 4,
 * special values included; tests/test_frozen_kernels.py compares the
 * instruction with the emulation wherever it runs). Without the
 * instruction, the same chain runs as fused multiply-adds with the flush
 * (AVX-512F, AVX2 + FMA: the MXCSR flush mode; portable C: fmaf and a
 * test), as fast as float32's products, not faster.
 *
 * int8: per output column j (a row of W) a scale sw[j] = max_k |W[j, k]| /
 * 127 and q_w = rint(W[j, k] * (127 / max_k |W[j, k]|)) in [-127, 127];
 * per row i of A the same with its own maximum (sa[i]) at every product.
 * The product of the integers is exact (int32), whatever the instruction
 * set: AVX512-VNNI's vpdpbusd on (q_a + 128) as unsigned bytes, corrected
 * by 128 times the column sums of q_w; AVX2's vpmaddwd on 16-bit values;
 * plain C. Then
 *     C[i, j] = (float)acc[i, j] * (sa[i] * sw[j])
 * in that order (two roundings, no fused multiply-add), so int8 results are
 * the same bits on every CPU. A row of A whose maximum is not finite gives
 * NaN in every column; a row whose maximum is below 127 * FLT_MIN (all but
 * zero) gives zeros.
 *
 * K is at most RC_Q_MAX_K: int8's sums of K products of two values in
 * [-127, 127] then stay inside int32.
 *
 * Packed layout: the N columns in panels of 32; a panel holds, for each
 * group of RC_Q_GROUP(format) consecutive k (2 for bf16, 4 for int8; K
 * padded with zeros to Kp, a multiple of the group), 32 lanes of 4 bytes,
 * lane j holding the group's values of column j (lowest k in the lowest
 * bytes). int8 adds the scales (float32, N rounded up to 32) and the column
 * sums (int32, idem) after the panels. */
#ifndef GRU_CY_RC_QGEMM_H
#define GRU_CY_RC_QGEMM_H

#include <stddef.h>
#include <stdint.h>

enum { RC_QF32 = 0, RC_QBF16 = 1, RC_QINT8 = 2 };

#define RC_Q_MAX_K 131072
#define RC_Q_GROUP(format) ((format) == RC_QINT8 ? 4 : 2)

/* A packed weight, as rc_gemm's B operand (rc_bmat.q). */
typedef struct rc_qmat {
    int format;             /* RC_QBF16 or RC_QINT8 */
    int K, N, Kp;
    const uint32_t *panels; /* (N + 31) / 32 panels of Kp / group * 32 lanes */
    const float *scale;     /* int8: sw[j] */
    const int32_t *colsum;  /* int8: sum_k q_w[j, k] */
} rc_qmat;

/* Bytes of a packed (N, K) weight (a multiple of 64). */
size_t rc_q_bytes(int format, int K, int N);

/* Describe the packed weight at buf (64-byte aligned, rc_q_bytes). */
void rc_q_describe(rc_qmat *q, int format, int K, int N, const void *buf);

/* The canonical quantised form of an (N, K) C-contiguous float32 weight w:
 * bf16: the bfloat16 bits of each element into q16 (N * K); int8: the
 * integers into q8 (N * K) and the scales into scale (N). */
void rc_q_quantize(int format, const float *w, int N, int K, uint16_t *q16, int8_t *q8,
                   float *scale);

/* Pack a canonical form (as rc_q_quantize gives it) into buf. */
void rc_q_pack(int format, const uint16_t *q16, const int8_t *q8, const float *scale, int N,
               int K, void *buf);

/* The product above (k0 = 0 and K = q->K: the whole of k). init 0
 * overwrites C, 1 adds the product into it. Threads may call it at once. */
void rc_qgemm(const rc_qmat *q, int M, int K, int j0, int n, const float *a, ptrdiff_t sam,
              ptrdiff_t sak, int init, float *c, ptrdiff_t ldc);

/* Whether the current instruction set (rc_isa) runs format with the CPU's
 * own instruction (1: vdpbf16ps, vpdpbusd) or emulates it (0). */
int rc_q_native(int format);

/* For the tests: the bfloat16 rounding of n floats (bits into out), and
 * one row's int8 quantisation (q, the row's scale), as the products make
 * them. */
void rc_q_bf16_round(const float *x, ptrdiff_t n, uint16_t *out);
float rc_q_quantize_row(const float *x, int K, int8_t *q);

#endif
