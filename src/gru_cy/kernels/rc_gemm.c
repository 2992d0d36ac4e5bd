/* gru_cy's matrix products (rc_gemm.h): packing, the portable kernel, the
 * AVX2 + FMA and AVX-512 kernels (x86-64, GCC or clang), the choice of
 * instruction set and the BLAS backend. */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rc_gemm.h"
#include "rc_qgemm.h"

#if RC_X86
#include <cpuid.h>
#include <immintrin.h>
#endif


#if defined(__GNUC__) && !defined(__clang__)
/* Without -ftrapping-math GCC if-converts and vectorises freely; exception
 * flags are never inspected, NaN and Inf still propagate. */
#pragma GCC optimize("no-trapping-math")
#endif

/* ---- packing ------------------------------------------------------------ */

/* Columns j0 .. j0 + w of B into one panel d (row length nr): d[k * nr + j]
 * = B[k, j0 + j] for k < K; B[k, j] = src[k * ld + j] or, transposed,
 * src[j * ld + k]. Columns w .. nr are zeroed. */
#define PACK_PANEL(T)                                                         \
static void pack_panel_##T(int trans, int K, int w, int nr, const T *src,     \
                           ptrdiff_t ld, T *d)                                \
{                                                                             \
    if (!trans) {                                                             \
        for (int k = 0; k < K; k++)                                           \
            memcpy(d + (ptrdiff_t)k * nr, src + (ptrdiff_t)k * ld,            \
                   (size_t)w * sizeof(T));                                    \
    } else {                                                                  \
        for (int j = 0; j < w; j++) {                                         \
            const T *s = src + (ptrdiff_t)j * ld;                             \
            for (int k = 0; k < K; k++)                                       \
                d[(ptrdiff_t)k * nr + j] = s[k];                              \
        }                                                                     \
    }                                                                         \
    if (w < nr)                                                               \
        for (int k = 0; k < K; k++)                                           \
            memset(d + (ptrdiff_t)k * nr + w, 0, (size_t)(nr - w) * sizeof(T)); \
}

PACK_PANEL(float)
PACK_PANEL(double)

#if RC_X86 && defined(__GNUC__) && !defined(__clang__)
typedef float rc_v8 __attribute__((vector_size(32)));
typedef float rc_uv8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int rc_v8i __attribute__((vector_size(32)));

/* The transposed float panel in blocks of 8 x 8, each transposed in
 * registers by three rounds of two-vector shuffles (interleave pairs of
 * rows, then pairs of pairs, then halves); the edges go element by element.
 * (GCC's __builtin_shuffle: clang, which names it differently, keeps the
 * element loop.) */
__attribute__((target("avx2"))) static void
pack_t_avx2(int K, int w, int nr, const float *src, ptrdiff_t ld, float *d)
{
    const rc_v8i lo1 = {0, 8, 1, 9, 4, 12, 5, 13}, hi1 = {2, 10, 3, 11, 6, 14, 7, 15};
    const rc_v8i lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const rc_v8i lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    const int w8 = w - w % 8, k8 = K - K % 8;
    for (int j = 0; j < w8; j += 8) {
        const float *s = src + (ptrdiff_t)j * ld;
        for (int k = 0; k < k8; k += 8) {
            rc_v8 r[8], t[8], u[8];
            for (int i = 0; i < 8; i++)
                r[i] = *(const rc_uv8 *)(s + (ptrdiff_t)i * ld + k);
            for (int i = 0; i < 8; i += 2) {
                t[i] = __builtin_shuffle(r[i], r[i + 1], lo1);
                t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi1);
            }
            for (int i = 0; i < 8; i += 4) {
                u[i] = __builtin_shuffle(t[i], t[i + 2], lo2);
                u[i + 1] = __builtin_shuffle(t[i], t[i + 2], hi2);
                u[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], lo2);
                u[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], hi2);
            }
            for (int m = 0; m < 4; m++) {
                *(rc_uv8 *)(d + (ptrdiff_t)(k + m) * nr + j) =
                    __builtin_shuffle(u[m], u[m + 4], lo4);
                *(rc_uv8 *)(d + (ptrdiff_t)(k + m + 4) * nr + j) =
                    __builtin_shuffle(u[m], u[m + 4], hi4);
            }
        }
        for (int jj = j; jj < j + 8; jj++)
            for (int k = k8; k < K; k++)
                d[(ptrdiff_t)k * nr + jj] = src[(ptrdiff_t)jj * ld + k];
    }
    for (int jj = w8; jj < w; jj++)
        for (int k = 0; k < K; k++)
            d[(ptrdiff_t)k * nr + jj] = src[(ptrdiff_t)jj * ld + k];
    if (w < nr)
        for (int k = 0; k < K; k++)
            memset(d + (ptrdiff_t)k * nr + w, 0, (size_t)(nr - w) * sizeof(float));
}
#define RC_PACK_T_AVX2 1
#else
#define RC_PACK_T_AVX2 0
#endif

void rc_bmat_describe(int dtype, rc_bmat *b, int trans, int K, int N, const void *src,
                      ptrdiff_t ld, void *packed, void *tail)
{
    const int nr = dtype == RC_F32 ? 32 : 16;
    b->K = K;
    b->N = N;
    b->raw = src;
    b->raw_ld = ld;
    b->raw_trans = trans;
    b->q = NULL;
    b->tr = 0;
    if (trans || packed != NULL) {
        b->p = packed;
        b->pstride = (ptrdiff_t)K * nr;
        b->ld = nr;
        b->tail = NULL;
    } else {
        b->p = src;
        b->pstride = nr;
        b->ld = ld;
        b->tail = N % nr ? tail : NULL;
    }
}

/* Panels [p0, p1) of what rc_bmat_describe says must be packed: all of
 * them into b->p when packed, else only the tail (when p1 reaches it). */
void rc_bmat_pack_panels(int dtype, const rc_bmat *b, int p0, int p1)
{
    const int nr = dtype == RC_F32 ? 32 : 16;
    const size_t item = dtype == RC_F32 ? 4 : 8;
    const int K = b->K, N = b->N, np = (N + nr - 1) / nr;
    if (p1 > np)
        p1 = np;
    for (int p = p0; p < p1; p++) {
        const int j0 = p * nr, w = N - j0 < nr ? N - j0 : nr;
        void *d;
        if (b->p != b->raw || b->raw_trans)
            d = (char *)b->p + (size_t)p * K * nr * item;
        else if (b->tail != NULL && p == np - 1)
            d = (void *)b->tail;
        else
            continue;
        const char *s = (const char *)b->raw
                        + (b->raw_trans ? (size_t)j0 * b->raw_ld : (size_t)j0) * item;
        if (dtype == RC_F32) {
#if RC_PACK_T_AVX2
            if (b->raw_trans && rc_isa() >= RC_ISA_AVX2) {
                pack_t_avx2(K, w, nr, (const float *)s, b->raw_ld, (float *)d);
                continue;
            }
#endif
            pack_panel_float(b->raw_trans, K, w, nr, (const float *)s, b->raw_ld, (float *)d);
        } else {
            pack_panel_double(b->raw_trans, K, w, nr, (const double *)s, b->raw_ld,
                              (double *)d);
        }
    }
}

void rc_bmat_init(int dtype, rc_bmat *b, int trans, int K, int N, const void *src,
                  ptrdiff_t ld, void *packed, void *tail)
{
    rc_bmat_describe(dtype, b, trans, K, N, src, ld, packed, tail);
    rc_bmat_pack_panels(dtype, b, 0, (N + 31) / (dtype == RC_F32 ? 32 : 16) + 1);
}

/* ---- the portable kernel: plain C, any compiler --------------------------- */

/* One row, one panel at a time: acc[j] is column j's chain. */
#define PORTABLE_GEMM(T, NR)                                                  \
static void gemm_portable_##T(int M, int K, int j0, int n, const T *a,        \
                              ptrdiff_t sam, ptrdiff_t sak, const rc_bmat *b, \
                              int k0, int init, T *c, ptrdiff_t ldc)          \
{                                                                             \
    const int p0 = j0 / NR, p1 = (j0 + n + NR - 1) / NR;                      \
    const int pfull = b->tail ? b->N / NR : p1;                               \
    for (int i = 0; i < M; i++) {                                             \
        const T *ai = a + (ptrdiff_t)i * sam;                                 \
        T *ci = c + (ptrdiff_t)i * ldc - j0;                                  \
        for (int p = p0; p < p1; p++) {                                       \
            const T *w;                                                       \
            ptrdiff_t ld;                                                     \
            if (p < pfull) {                                                  \
                ld = b->ld;                                                   \
                w = (const T *)b->p + (ptrdiff_t)p * b->pstride + (ptrdiff_t)k0 * ld; \
            } else {                                                          \
                ld = NR;                                                      \
                w = (const T *)b->tail + (ptrdiff_t)k0 * NR;                  \
            }                                                                 \
            const int lo = p * NR < j0 ? j0 - p * NR : 0;                     \
            const int hi = (p + 1) * NR > j0 + n ? j0 + n - p * NR : NR;      \
            T acc[NR];                                                        \
            for (int j = 0; j < NR; j++)                                      \
                acc[j] = init && j >= lo && j < hi ? ci[p * NR + j] : (T)0;   \
            for (int k = 0; k < K; k++) {                                     \
                const T ak = ai[(ptrdiff_t)k * sak];                          \
                const T *wk = w + (ptrdiff_t)k * ld;                          \
                for (int j = 0; j < NR; j++)                                  \
                    acc[j] += ak * wk[j];                                     \
            }                                                                 \
            for (int j = lo; j < hi; j++)                                     \
                ci[p * NR + j] = acc[j];                                      \
        }                                                                     \
    }                                                                         \
}

PORTABLE_GEMM(float, 32)
PORTABLE_GEMM(double, 16)


/* ---- the x86-64 kernels ----------------------------------------------------- */

#if RC_X86
#define RC_PK_NAME_(x, t, isa) x##t##isa
#define RC_PK_NAME(x, t, isa) RC_PK_NAME_(x, t, isa)

/* AVX2 + FMA: 16 vector registers; a tile of 3 rows x 32 floats is 12
 * accumulators. */
#define TGT __attribute__((target("avx2,fma")))
#define VB 32
#define MR 3
#define NPS(m) ((m) == 1 ? 2 : 1)
#define KN_CASES KN_CASE(1, 1) KN_CASE(2, 1) KN_CASE(3, 1) KN_CASE(1, 2)
#define ISA avx2
#define T float
#define KN(x) RC_PK_NAME(x, _f32_, ISA)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#include "rc_gemm_impl.h"
#undef T
#undef KN
#undef VFMA
#define T double
#define KN(x) RC_PK_NAME(x, _f64_, ISA)
#define VFMA(a, b, c) _mm256_fmadd_pd((a), (b), (c))
#include "rc_gemm_impl.h"
#undef T
#undef KN
#undef VFMA
#undef TGT
#undef VB
#undef MR
#undef NPS
#undef KN_CASES
#undef ISA

/* AVX-512: 32 vector registers; 12 rows x 32 floats is 24 accumulators;
 * fewer rows take more panels so that enough independent chains hide the
 * multiply-add latency. */
#define TGT __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define VB 64
#define MR 12
#define NPS(m) ((m) <= 2 ? 4 : (m) <= 6 ? 2 : 1)
#define KN_CASES                                                              \
    KN_CASE(1, 1) KN_CASE(2, 1) KN_CASE(3, 1) KN_CASE(4, 1) KN_CASE(5, 1)     \
    KN_CASE(6, 1) KN_CASE(7, 1) KN_CASE(8, 1) KN_CASE(9, 1) KN_CASE(10, 1)    \
    KN_CASE(11, 1) KN_CASE(12, 1)                                             \
    KN_CASE(1, 2) KN_CASE(1, 3) KN_CASE(1, 4)                                 \
    KN_CASE(2, 2) KN_CASE(2, 3) KN_CASE(2, 4)                                 \
    KN_CASE(3, 2) KN_CASE(4, 2) KN_CASE(5, 2) KN_CASE(6, 2)
#define ISA avx512
#define T float
#define KN(x) RC_PK_NAME(x, _f32_, ISA)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#include "rc_gemm_impl.h"
#undef T
#undef KN
#undef VFMA
#define T double
#define KN(x) RC_PK_NAME(x, _f64_, ISA)
#define VFMA(a, b, c) _mm512_fmadd_pd((a), (b), (c))
#include "rc_gemm_impl.h"
#undef T
#undef KN
#undef VFMA
#undef TGT
#undef VB
#undef MR
#undef NPS
#undef KN_CASES
#undef ISA

#endif

/* ---- B stored transposed, read in place ------------------------------------- */

void rc_bmat_transposed(int dtype, rc_bmat *b, int K, int N, const void *src, ptrdiff_t ld)
{
    /* The transposed matrix as the BLAS backend reads it, then in place. */
    rc_bmat_describe(dtype, b, 1, K, N, src, ld, NULL, NULL);
    b->p = src;
    b->ld = ld;
    b->tr = 1;
}

/* Any element type and instruction set, one element at a time: the chain of
 * that instruction set (fused on AVX2 and AVX-512, a multiply then an add on
 * the portable path). */
#define TRANSPOSED_SCALAR(T, FMA_)                                                \
static void gemm_tr_scalar_##T(int M, int K, int j0, int n, const T *a, ptrdiff_t sam, \
                               ptrdiff_t sak, const T *w, ptrdiff_t ldw, int k0,  \
                               int init, T *c, ptrdiff_t ldc, int fused)          \
{                                                                                 \
    for (int i = 0; i < M; i++)                                                   \
        for (int j = 0; j < n; j++) {                                             \
            const T *wj = w + (ptrdiff_t)(j0 + j) * ldw + k0;                     \
            const T *ai = a + (ptrdiff_t)i * sam;                                 \
            T acc = init ? c[(ptrdiff_t)i * ldc + j] : (T)0;                      \
            if (fused)                                                            \
                for (int k = 0; k < K; k++)                                       \
                    acc = FMA_(ai[(ptrdiff_t)k * sak], wj[k], acc);               \
            else                                                                  \
                for (int k = 0; k < K; k++)                                       \
                    acc += ai[(ptrdiff_t)k * sak] * wj[k];                        \
            c[(ptrdiff_t)i * ldc + j] = acc;                                      \
        }                                                                         \
}
TRANSPOSED_SCALAR(float, fmaf)
TRANSPOSED_SCALAR(double, fma)
#undef TRANSPOSED_SCALAR

#if RC_X86
/* R rows of A times 8 * NB columns of B: per block of 8 columns and 8 k, the
 * 8 x 8 block of W transposed in registers (interleave pairs of rows, then
 * pairs of pairs, then halves) gives B's rows k .. k + 7 for those columns,
 * which go into the rows' chains in order of k; the NB blocks' chains are
 * independent, so that their multiply-adds overlap. The k past the last
 * block of 8 go one at a time, in the same chains. */
__attribute__((target("avx2,fma"))) static RC_ALWAYS_INLINE void
tr_tile(const int R, const int NB, int K, const float *RC_RESTRICT a, ptrdiff_t sam,
        ptrdiff_t sak, const float *RC_RESTRICT w, ptrdiff_t ldw, int init,
        float *RC_RESTRICT c, ptrdiff_t ldc)
{
    __m256 acc[2][4];
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++)
            acc[r][b] = init ? _mm256_loadu_ps(c + (ptrdiff_t)r * ldc + 8 * b)
                             : _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        for (int b = 0; b < NB; b++) {
            const float *wb = w + (ptrdiff_t)8 * b * ldw + k;
            const __m256 r0 = _mm256_loadu_ps(wb), r1 = _mm256_loadu_ps(wb + ldw);
            const __m256 r2 = _mm256_loadu_ps(wb + 2 * ldw), r3 = _mm256_loadu_ps(wb + 3 * ldw);
            const __m256 r4 = _mm256_loadu_ps(wb + 4 * ldw), r5 = _mm256_loadu_ps(wb + 5 * ldw);
            const __m256 r6 = _mm256_loadu_ps(wb + 6 * ldw), r7 = _mm256_loadu_ps(wb + 7 * ldw);
            const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
            const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
            const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
            const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
            __m256 col[8];
            col[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
            col[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
            col[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
            col[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
            col[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
            col[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
            col[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
            col[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
            for (int r = 0; r < R; r++) {
                const float *ar = a + (ptrdiff_t)r * sam + (ptrdiff_t)k * sak;
                for (int q = 0; q < 8; q++)
                    acc[r][b] = _mm256_fmadd_ps(_mm256_set1_ps(ar[(ptrdiff_t)q * sak]), col[q],
                                                acc[r][b]);
            }
        }
    }
    for (; k < K; k++)
        for (int b = 0; b < NB; b++) {
            const float *wb = w + (ptrdiff_t)8 * b * ldw + k;
            const __m256 col = _mm256_setr_ps(wb[0], wb[ldw], wb[2 * ldw], wb[3 * ldw],
                                              wb[4 * ldw], wb[5 * ldw], wb[6 * ldw], wb[7 * ldw]);
            for (int r = 0; r < R; r++)
                acc[r][b] = _mm256_fmadd_ps(
                    _mm256_set1_ps(a[(ptrdiff_t)r * sam + (ptrdiff_t)k * sak]), col, acc[r][b]);
        }
    for (int r = 0; r < R; r++)
        for (int b = 0; b < NB; b++)
            _mm256_storeu_ps(c + (ptrdiff_t)r * ldc + 8 * b, acc[r][b]);
}

/* Rows in pairs (a last single row alone), columns in groups of 32 (16 for
 * a pair), then of 8, then one at a time. */
__attribute__((target("avx2,fma"))) static void
gemm_tr_f32_avx2(int M, int K, int j0, int n, const float *a, ptrdiff_t sam, ptrdiff_t sak,
                 const float *w, ptrdiff_t ldw, int k0, int init, float *c, ptrdiff_t ldc)
{
    const float *wj0 = w + (ptrdiff_t)j0 * ldw + k0;
    for (int i = 0; i < M;) {
        const int pair = M - i >= 2;
        const float *ai = a + (ptrdiff_t)i * sam;
        float *ci = c + (ptrdiff_t)i * ldc;
        int j = 0;
        if (pair) {
            for (; j + 16 <= n; j += 16)
                tr_tile(2, 2, K, ai, sam, sak, wj0 + (ptrdiff_t)j * ldw, ldw, init, ci + j, ldc);
            for (; j + 8 <= n; j += 8)
                tr_tile(2, 1, K, ai, sam, sak, wj0 + (ptrdiff_t)j * ldw, ldw, init, ci + j, ldc);
        } else {
            for (; j + 32 <= n; j += 32)
                tr_tile(1, 4, K, ai, sam, sak, wj0 + (ptrdiff_t)j * ldw, ldw, init, ci + j, ldc);
            for (; j + 8 <= n; j += 8)
                tr_tile(1, 1, K, ai, sam, sak, wj0 + (ptrdiff_t)j * ldw, ldw, init, ci + j, ldc);
        }
        for (int r = 0; r < 1 + pair; r++)
            for (int jj = j; jj < n; jj++) {
                const float *wj = wj0 + (ptrdiff_t)jj * ldw;
                const float *ar = ai + (ptrdiff_t)r * sam;
                float acc = init ? ci[(ptrdiff_t)r * ldc + jj] : 0.0f;
                for (int k = 0; k < K; k++)
                    acc = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(ar[(ptrdiff_t)k * sak]),
                                                     _mm_set_ss(wj[k]), _mm_set_ss(acc)));
                ci[(ptrdiff_t)r * ldc + jj] = acc;
            }
        i += 1 + pair;
    }
}
#endif

int rc_gemm_transposed_fast(int dtype)
{
#if RC_X86
    return dtype == RC_F32 && rc_isa() >= RC_ISA_AVX2 && !rc_backend();
#else
    (void)dtype;
    return 0;
#endif
}

static void gemm_transposed(int dtype, int M, int K, int j0, int n, const void *a,
                            ptrdiff_t sam, ptrdiff_t sak, const rc_bmat *b, int k0, int init,
                            void *c, ptrdiff_t ldc)
{
#if RC_X86
    if (dtype == RC_F32 && rc_isa() >= RC_ISA_AVX2) {
        gemm_tr_f32_avx2(M, K, j0, n, (const float *)a, sam, sak, (const float *)b->p, b->ld,
                         k0, init, (float *)c, ldc);
        return;
    }
#endif
    const int fused = rc_isa() != RC_ISA_PORTABLE;
    if (dtype == RC_F32)
        gemm_tr_scalar_float(M, K, j0, n, (const float *)a, sam, sak, (const float *)b->p,
                             b->ld, k0, init, (float *)c, ldc, fused);
    else
        gemm_tr_scalar_double(M, K, j0, n, (const double *)a, sam, sak, (const double *)b->p,
                              b->ld, k0, init, (double *)c, ldc, fused);
}

/* ---- instruction set and backend ----------------------------------------- */

static int rc_isa_now = -1;
static int rc_backend_now = 0;
static rc_sgemm_t rc_sgemm;
static rc_dgemm_t rc_dgemm;

/* From the CPU's own answer (cpuid) and the operating system's (xgetbv:
 * which register states it saves): AVX2 needs AVX2, FMA and the YMM state;
 * AVX-512 needs F, VL, DQ and BW (what the kernels are compiled for) and
 * the opmask and ZMM states as well. */
int rc_cpu_isa(void)
{
    int isa = RC_ISA_PORTABLE;
#if RC_X86
    unsigned a, b, c, d, lo, hi;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return isa;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1;
    if (!osxsave || !avx)
        return isa;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    const unsigned long long xcr0 = ((unsigned long long)hi << 32) | lo;
    if ((xcr0 & 0x6) != 0x6 || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return isa;
    if (((b >> 5) & 1) && fma)
        isa = RC_ISA_AVX2;
    const int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (isa == RC_ISA_AVX2 && f && dq && bw && vl && (xcr0 & 0xe6) == 0xe6)
        isa = RC_ISA_AVX512;
#endif
    return isa;
}

int rc_set_isa(int isa)
{
    int best = rc_cpu_isa();
    rc_isa_now = isa >= 0 && isa < best ? isa : best;
    return rc_isa_now;
}

int rc_isa(void)
{
    if (rc_isa_now < 0) {
        const char *env = getenv("GRU_CY_ISA");
        int want = -1;
        if (env != NULL) {
            if (strcmp(env, "portable") == 0)
                want = RC_ISA_PORTABLE;
            else if (strcmp(env, "avx2") == 0)
                want = RC_ISA_AVX2;
            else if (strcmp(env, "avx512") == 0)
                want = RC_ISA_AVX512;
        }
        rc_set_isa(want);
    }
    return rc_isa_now;
}

int rc_backend(void)
{
    return rc_backend_now;
}

void rc_set_backend(int blas)
{
    rc_backend_now = blas && rc_sgemm != NULL && rc_dgemm != NULL;
}

void rc_set_blas(rc_sgemm_t sgemm, rc_dgemm_t dgemm)
{
    rc_sgemm = sgemm;
    rc_dgemm = dgemm;
}

/* The product through BLAS: row-major C = op(A) @ op(B) as the
 * column-major C^T = op(B)^T @ op(A)^T. */
static void gemm_blas(int dtype, int M, int K, int j0, int n, const void *a, ptrdiff_t sam,
                      ptrdiff_t sak, const rc_bmat *b, int k0, int init, void *c,
                      ptrdiff_t ldc)
{
    const size_t item = dtype == RC_F32 ? 4 : 8;
    char ta = 'n', tb = b->raw_trans ? 't' : 'n';
    int lda, ldb = (int)b->raw_ld, ldc_ = (int)ldc;
    const char *bp = (const char *)b->raw;
    if (sak == 1) {
        lda = (int)sam;
    } else {
        ta = 't';
        lda = (int)sak;
    }
    if (M == 1 && lda < K && sak == 1)
        lda = K;            /* one row: any stride BLAS accepts */
    if (ldb < 1)
        ldb = 1;
    if (b->raw_trans)
        bp += ((size_t)j0 * b->raw_ld + (size_t)k0) * item;
    else
        bp += ((size_t)k0 * b->raw_ld + (size_t)j0) * item;
    if (K == 0) {
        if (!init)
            for (int i = 0; i < M; i++)
                memset((char *)c + (size_t)i * ldc * item, 0, (size_t)n * item);
        return;
    }
    if (dtype == RC_F32) {
        float one = 1.0f, beta = init ? 1.0f : 0.0f;
        rc_sgemm(&tb, &ta, &n, &M, &K, &one, (float *)bp, &ldb, (float *)a, &lda, &beta,
                 (float *)c, &ldc_);
    } else {
        double one = 1.0, beta = init ? 1.0 : 0.0;
        rc_dgemm(&tb, &ta, &n, &M, &K, &one, (double *)bp, &ldb, (double *)a, &lda, &beta,
                 (double *)c, &ldc_);
    }
}

void rc_gemm(int dtype, int M, int K, int j0, int n, const void *a, ptrdiff_t sam,
             ptrdiff_t sak, const rc_bmat *b, int k0, int init, void *c, ptrdiff_t ldc)
{
    if (M <= 0 || n <= 0)
        return;
    if (M == 1)
        sam = sak == 1 ? K : 1;   /* one row: the row stride plays no part */
    if (b->q != NULL) {
        rc_qgemm(b->q, M, K, j0, n, (const float *)a, sam, sak, init, (float *)c, ldc);
        return;
    }
    if (rc_backend_now) {
        gemm_blas(dtype, M, K, j0, n, a, sam, sak, b, k0, init, c, ldc);
        return;
    }
    if (b->tr) {
        gemm_transposed(dtype, M, K, j0, n, a, sam, sak, b, k0, init, c, ldc);
        return;
    }
    switch (rc_isa()) {
#if RC_X86
    case RC_ISA_AVX512:
        if (dtype == RC_F32)
            gemm_f32_avx512(M, K, j0, n, (const float *)a, sam, sak, b, k0, init, (float *)c,
                            ldc);
        else
            gemm_f64_avx512(M, K, j0, n, (const double *)a, sam, sak, b, k0, init,
                            (double *)c, ldc);
        return;
    case RC_ISA_AVX2:
        if (dtype == RC_F32)
            gemm_f32_avx2(M, K, j0, n, (const float *)a, sam, sak, b, k0, init, (float *)c,
                          ldc);
        else
            gemm_f64_avx2(M, K, j0, n, (const double *)a, sam, sak, b, k0, init,
                          (double *)c, ldc);
        return;
#endif
    default:
        if (dtype == RC_F32)
            gemm_portable_float(M, K, j0, n, (const float *)a, sam, sak, b, k0, init,
                                (float *)c, ldc);
        else
            gemm_portable_double(M, K, j0, n, (const double *)a, sam, sak, b, k0, init,
                                 (double *)c, ldc);
    }
}

/* ---- the benchmarks' yardstick ---------------------------------------------- */

static float fma_chains_portable(long long rounds)
{
    float m = 0.999999f, d = 1e-7f, acc[12];
    for (int i = 0; i < 12; i++)
        acc[i] = m + (float)i * d;
    for (long long r = 0; r < rounds; r++)
        for (int i = 0; i < 12; i++)
            acc[i] = acc[i] * m + d;
    float t = 0;
    for (int i = 0; i < 12; i++)
        t += acc[i];
    return t;
}

long long rc_fma_chains(long long rounds, double *sink)
{
    int lanes = 1;
    float t;
    switch (rc_isa()) {
#if RC_X86
    case RC_ISA_AVX512:
        t = fma_chains_f32_avx512(rounds);
        lanes = 16;
        break;
    case RC_ISA_AVX2:
        t = fma_chains_f32_avx2(rounds);
        lanes = 8;
        break;
#endif
    default:
        t = fma_chains_portable(rounds);
    }
    *sink = t;
    return rounds * 12 * lanes;
}
