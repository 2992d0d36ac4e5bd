/* The packed-weight recurrent product (see _packed.h), for float and double
 * and, on x86-64 with GCC, for AVX-512, AVX2 + FMA and portable C, chosen
 * at run time. Compiled into the _blas extension only; the cells reach it
 * through _blas.pxd. */

#include <string.h>

#include "_packed.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#if defined(__GNUC__) && defined(__x86_64__) && !defined(GRU_CY_DEBUG)
#define RC_PK_X86 1
#else
#define RC_PK_X86 0
#endif

/* ---- packing (run once per layer call) ---- */

/* Panel j0 .. j0 + w of W = src^T, rows k = 0 .. K-1: d[k * nr + j] =
 * src[(j0 + j) * ld + k]. */
#define PACK_T_SCALAR(T)                                                      \
static void pack_t_scalar_##T(int K, int w, int nr, const T *src,             \
                              ptrdiff_t ld, T *d)                             \
{                                                                             \
    for (int j = 0; j < w; j++) {                                             \
        const T *s = src + (ptrdiff_t)j * ld;                                 \
        for (int k = 0; k < K; k++)                                           \
            d[(ptrdiff_t)k * nr + j] = s[k];                                  \
    }                                                                         \
}

PACK_T_SCALAR(float)
PACK_T_SCALAR(double)

/* The block transpose uses GCC's __builtin_shuffle (clang, which also
 * defines __GNUC__, names it differently): elsewhere the element loop. */
#if RC_PK_X86 && !defined(__clang__)
#define RC_PK_SHUFFLE 1
#else
#define RC_PK_SHUFFLE 0
#endif

#if RC_PK_SHUFFLE
typedef float rc_v8 __attribute__((vector_size(32)));
typedef float rc_uv8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef int rc_v8i __attribute__((vector_size(32)));

/* The same for float in blocks of 8 x 8, each transposed in registers by
 * three rounds of two-vector shuffles (interleave pairs of rows, then pairs
 * of pairs, then halves); the edges of the panel go element by element. */
__attribute__((target("avx2"))) static void
pack_t_avx2_float(int K, int w, int nr, const float *src, ptrdiff_t ld, float *d)
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
            /* u[m] holds k + m (low half) and k + m + 4 (high half) of rows
             * j .. j+3 in u[m], j+4 .. j+7 in u[m + 4]. */
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
    if (w8 < w)
        pack_t_scalar_float(K, w - w8, nr, src + (ptrdiff_t)w8 * ld, ld, d + w8);
}
#endif

#define PACK_IMPL(T, S, PACK_T)                                               \
void rc_pack##S(int trans, int K, int N, const T *src, ptrdiff_t ld, T *dst)  \
{                                                                             \
    const int nr = RC_PANEL_BYTES / (int)sizeof(T);                           \
    for (int j0 = 0; j0 < N; j0 += nr) {                                      \
        T *d = dst + (ptrdiff_t)(j0 / nr) * K * nr;                           \
        const int w = N - j0 < nr ? N - j0 : nr;                              \
        if (!trans) {                                                         \
            for (int k = 0; k < K; k++)                                       \
                memcpy(d + (ptrdiff_t)k * nr, src + k * ld + j0,              \
                       (size_t)w * sizeof(T));                                \
        } else {                                                              \
            PACK_T(K, w, nr, src + (ptrdiff_t)j0 * ld, ld, d);                \
        }                                                                     \
        for (int k = 0; k < K && w < nr; k++)                                 \
            for (int j = w; j < nr; j++)                                      \
                d[(ptrdiff_t)k * nr + j] = 0;                                 \
    }                                                                         \
}

#if RC_PK_SHUFFLE
static void pack_t_float(int K, int w, int nr, const float *src, ptrdiff_t ld, float *d)
{
    if (rc_packed_isa() >= 1)
        pack_t_avx2_float(K, w, nr, src, ld, d);
    else
        pack_t_scalar_float(K, w, nr, src, ld, d);
}
#else
#define pack_t_float pack_t_scalar_float
#endif

PACK_IMPL(float, _f32, pack_t_float)
PACK_IMPL(double, _f64, pack_t_scalar_double)

/* ---- the kernels ---- */

/* Portable C: one row, one panel per tile. */
#define TGT
#define VB 16
#define MR 1
#define NPS(m) 1
#define KN_CASES KN_CASE(1, 1)
#define ISA base
#include "_packed_instantiate.h"

#if RC_PK_X86
/* AVX2 + FMA: 16 vector registers; a tile of 3 rows x 32 floats is 12
 * accumulators. */
#define TGT __attribute__((target("avx2,fma")))
#define VB 32
#define MR 3
#define NPS(m) ((m) == 1 ? 2 : 1)
#define KN_CASES KN_CASE(1, 1) KN_CASE(2, 1) KN_CASE(3, 1) KN_CASE(1, 2)
#define ISA avx2
#include "_packed_instantiate.h"

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
#include "_packed_instantiate.h"
#endif

static int rc_isa = -1;

static int rc_packed_cpu_isa(void)
{
    int isa = 0;
#if RC_PK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        isa = 2;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        isa = 1;
#endif
    return isa;
}

int rc_packed_isa(void)
{
    if (rc_isa < 0)
        rc_isa = rc_packed_cpu_isa();
    return rc_isa;
}

int rc_packed_limit_isa(int cap)
{
    int isa = rc_packed_cpu_isa();
    rc_isa = cap >= 0 && cap < isa ? cap : isa;
    return rc_isa;
}

#if RC_PK_X86
#define DISPATCH(S)                                                           \
    switch (rc_packed_isa()) {                                                \
    case 2:                                                                   \
        gemm##S##_avx512(M, K, j0, n, a, lda, wp, pstride, beta, c, ldc);     \
        return;                                                               \
    case 1:                                                                   \
        gemm##S##_avx2(M, K, j0, n, a, lda, wp, pstride, beta, c, ldc);       \
        return;                                                               \
    }
#else
#define DISPATCH(S)
#endif

void rc_gemm_packed_f32(int M, int K, int j0, int n, const float *a, ptrdiff_t lda,
                        const float *wp, ptrdiff_t pstride, float beta, float *c,
                        ptrdiff_t ldc)
{
    if (M <= 0 || n <= 0)
        return;
    DISPATCH(_f32)
    gemm_f32_base(M, K, j0, n, a, lda, wp, pstride, beta, c, ldc);
}

void rc_gemm_packed_f64(int M, int K, int j0, int n, const double *a, ptrdiff_t lda,
                        const double *wp, ptrdiff_t pstride, double beta, double *c,
                        ptrdiff_t ldc)
{
    if (M <= 0 || n <= 0)
        return;
    DISPATCH(_f64)
    gemm_f64_base(M, K, j0, n, a, lda, wp, pstride, beta, c, ldc);
}

/* ---- the benchmarks' yardstick ---- */

long long rc_fma_chains(long long rounds, double *sink)
{
    int lanes = 4;
    float t;
    switch (rc_packed_isa()) {
#if RC_PK_X86
    case 2:
        t = fma_chains_f32_avx512(rounds);
        lanes = 16;
        break;
    case 1:
        t = fma_chains_f32_avx2(rounds);
        lanes = 8;
        break;
#endif
    default:
        t = fma_chains_f32_base(rounds);
    }
    *sink = t;
    return rounds * 12 * lanes;
}
