/* Products on bfloat16 and int8 weights (rc_qgemm.h): quantisation and
 * packing, the conversion of the activations, the driver, and the kernels
 * of rc_qgemm_impl.h for each instruction set.
 *
 * No contraction into fused multiply-adds here: the dequantisation
 * (acc * (sa * sw)) and the conversions must be the same operations on
 * every instruction set; the bf16 chains call their fused multiply-adds by
 * name. */

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("no-trapping-math", "fp-contract=off")
#endif

#include "rc_base.h"
#include "rc_gemm.h"
#include "rc_qgemm.h"

#if RC_X86
#include <cpuid.h>
#include <immintrin.h>
#endif

/* Columns per panel, and the bytes of one group of k of a panel. */
#define QNR 32
#define QLANES_BYTES (QNR * 4)

/* Activation rows converted per block live in this much stack (a block
 * of rows too long for it goes to the heap). */
#define Q_STACK_BYTES 32768
#define Q_MAX_BLOCK_ROWS 512

static ptrdiff_t round_up(ptrdiff_t n, ptrdiff_t m) { return (n + m - 1) / m * m; }

static int q_kp(int format, int K) { return (int)round_up(K > 0 ? K : 0, RC_Q_GROUP(format)); }

static size_t panels_bytes(int format, int K, int N)
{
    const size_t np = (size_t)(N + QNR - 1) / QNR;
    return np * (size_t)(q_kp(format, K) / RC_Q_GROUP(format)) * QLANES_BYTES;
}

size_t rc_q_bytes(int format, int K, int N)
{
    size_t bytes = panels_bytes(format, K, N);
    if (format == RC_QINT8)
        bytes += 2 * (size_t)round_up(N, QNR) * 4;
    return (size_t)round_up((ptrdiff_t)bytes, 64) + (bytes == 0 ? 64 : 0);
}

void rc_q_describe(rc_qmat *q, int format, int K, int N, const void *buf)
{
    const size_t pb = panels_bytes(format, K, N);
    q->format = format;
    q->K = K;
    q->N = N;
    q->Kp = q_kp(format, K);
    q->panels = (const uint32_t *)buf;
    if (format == RC_QINT8) {
        q->scale = (const float *)((const char *)buf + pb);
        q->colsum = (const int32_t *)((const char *)buf + pb + (size_t)round_up(N, QNR) * 4);
    } else {
        q->scale = NULL;
        q->colsum = NULL;
    }
}

/* ---- the scalar definitions (every vector path computes the same) ------------ */

static RC_ALWAYS_INLINE uint32_t f2u(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static RC_ALWAYS_INLINE float u2f(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* x rounded to bfloat16, as float32 bits (the low 16 bits zero): nearest,
 * ties to even; NaN stays NaN (made quiet); a subnormal (or zero) becomes
 * a zero of its sign; overflow rounds to infinity. Branch-free, so that
 * the compiler vectorises the loops that call it. */
static RC_ALWAYS_INLINE uint32_t bf16_bits(uint32_t u)
{
    const uint32_t mag = u & 0x7FFFFFFFu;
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    const uint32_t quiet = (u | 0x00400000u) & 0xFFFF0000u;
    uint32_t r = mag > 0x7F800000u ? quiet : rounded;
    return mag < 0x00800000u ? (u & 0x80000000u) : r;
}

/* The largest |x| of a row and whether the row holds a NaN or an infinity. */
static RC_ALWAYS_INLINE float row_amax(const float *x, ptrdiff_t sx, int K, int *bad)
{
    float amax = 0.0f;
    int nonfinite = 0;
    for (int k = 0; k < K; k++) {
        const float v = fabsf(x[(ptrdiff_t)k * sx]);
        nonfinite |= !(v <= FLT_MAX);
        amax = v > amax ? v : amax;
    }
    *bad = nonfinite;
    return amax;
}

/* The row's scale from its maximum, and the factor its values are
 * multiplied by before rounding (0: the row quantises to zeros). */
static RC_ALWAYS_INLINE float row_scale(float amax, int bad, float *inv)
{
    if (bad) {
        *inv = 0.0f;
        return NAN;
    }
    if (amax < 127.0f * FLT_MIN) {
        *inv = 0.0f;
        return 0.0f;
    }
    *inv = 127.0f / amax;
    return amax / 127.0f;
}

static RC_ALWAYS_INLINE int32_t quantize(float x, float inv)
{
    float r = rintf(x * inv);
    r = r > 127.0f ? 127.0f : r;
    r = r < -127.0f ? -127.0f : r;
    return (int32_t)r;
}

void rc_q_bf16_round(const float *x, ptrdiff_t n, uint16_t *out)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = (uint16_t)(bf16_bits(f2u(x[i])) >> 16);
}

float rc_q_quantize_row(const float *x, int K, int8_t *q)
{
    int bad;
    float inv;
    const float amax = row_amax(x, 1, K, &bad);
    const float s = row_scale(amax, bad, &inv);
    for (int k = 0; k < K; k++)
        q[k] = (int8_t)(inv != 0.0f ? quantize(x[k], inv) : 0);
    return s;
}

/* ---- quantisation and packing of the weights ------------------------------------- */

void rc_q_quantize(int format, const float *w, int N, int K, uint16_t *q16, int8_t *q8,
                   float *scale)
{
    for (int j = 0; j < N; j++) {
        const float *row = w + (ptrdiff_t)j * K;
        if (format == RC_QBF16)
            rc_q_bf16_round(row, K, q16 + (ptrdiff_t)j * K);
        else
            scale[j] = rc_q_quantize_row(row, K, q8 + (ptrdiff_t)j * K);
    }
}

void rc_q_pack(int format, const uint16_t *q16, const int8_t *q8, const float *scale, int N,
               int K, void *buf)
{
    rc_qmat q;
    rc_q_describe(&q, format, K, N, buf);
    const int g = RC_Q_GROUP(format), groups = q.Kp / g, np = (N + QNR - 1) / QNR;
    uint32_t *lanes = (uint32_t *)buf;
    for (int p = 0; p < np; p++)
        for (int gi = 0; gi < groups; gi++) {
            uint32_t *d = lanes + ((ptrdiff_t)p * groups + gi) * QNR;
            for (int l = 0; l < QNR; l++) {
                const int j = p * QNR + l;
                uint32_t v = 0;
                for (int t = 0; t < g; t++) {
                    const int k = gi * g + t;
                    if (j >= N || k >= K)
                        continue;
                    if (format == RC_QBF16)
                        v |= (uint32_t)q16[(ptrdiff_t)j * K + k] << (16 * t);
                    else
                        v |= (uint32_t)(uint8_t)q8[(ptrdiff_t)j * K + k] << (8 * t);
                }
                d[l] = v;
            }
        }
    if (format == RC_QINT8) {
        float *sc = (float *)q.scale;
        int32_t *cs = (int32_t *)q.colsum;
        const int Np = (int)round_up(N, QNR);
        for (int j = 0; j < Np; j++) {
            int32_t sum = 0;
            if (j < N)
                for (int k = 0; k < K; k++)
                    sum += q8[(ptrdiff_t)j * K + k];
            sc[j] = j < N ? scale[j] : 0.0f;
            cs[j] = sum;
        }
    }
}

/* ---- the activations, converted per block of rows ------------------------------- */

/* Each kernel set reads the rows in its own element type (rc_qgemm_impl.h):
 *   Q_A_BF16   bfloat16 bits (native bf16)
 *   Q_A_F32    float32 holding bfloat16 values (emulated bf16)
 *   Q_A_U8     q + 128 (VNNI int8)
 *   Q_A_S16    q as int16 (AVX2 int8)
 *   Q_A_S8     q (portable int8)
 * Rows are padded to Kp with the element of a zero. */
enum { Q_A_BF16, Q_A_F32, Q_A_U8, Q_A_S16, Q_A_S8 };

static int q_a_size(int kind)
{
    return kind == Q_A_F32 ? 4 : kind == Q_A_BF16 || kind == Q_A_S16 ? 2 : 1;
}

/* One conversion routine, compiled per instruction set (the compiler
 * vectorises the contiguous case). */
#define Q_PREP(NAME, TGT)                                                      \
TGT static void NAME(int kind, const float *a, ptrdiff_t sam, ptrdiff_t sak, int rows, int K, \
                     int Kp, void *scr, ptrdiff_t lds, float *rscale)          \
{                                                                             \
    for (int i = 0; i < rows; i++) {                                          \
        const float *RC_RESTRICT x = a + (ptrdiff_t)i * sam;                  \
        char *row = (char *)scr + (ptrdiff_t)i * lds;                        \
        if (kind == Q_A_BF16 || kind == Q_A_F32) {                            \
            if (kind == Q_A_BF16) {                                           \
                uint16_t *RC_RESTRICT d = (uint16_t *)row;                    \
                if (sak == 1)                                                 \
                    for (int k = 0; k < K; k++)                               \
                        d[k] = (uint16_t)(bf16_bits(f2u(x[k])) >> 16);       \
                else                                                          \
                    for (int k = 0; k < K; k++)                               \
                        d[k] = (uint16_t)(bf16_bits(f2u(x[(ptrdiff_t)k * sak])) >> 16); \
                for (int k = K; k < Kp; k++)                                  \
                    d[k] = 0;                                                 \
            } else {                                                          \
                uint32_t *RC_RESTRICT d = (uint32_t *)row;                    \
                if (sak == 1)                                                 \
                    for (int k = 0; k < K; k++)                               \
                        d[k] = bf16_bits(f2u(x[k]));                          \
                else                                                          \
                    for (int k = 0; k < K; k++)                               \
                        d[k] = bf16_bits(f2u(x[(ptrdiff_t)k * sak]));         \
                for (int k = K; k < Kp; k++)                                  \
                    d[k] = 0;                                                 \
            }                                                                 \
            continue;                                                         \
        }                                                                     \
        int bad;                                                              \
        float inv;                                                            \
        const float amax = row_amax(x, sak, K, &bad);                         \
        rscale[i] = row_scale(amax, bad, &inv);                               \
        if (kind == Q_A_U8) {                                                 \
            uint8_t *RC_RESTRICT d = (uint8_t *)row;                          \
            if (sak == 1)                                                     \
                for (int k = 0; k < K; k++)                                   \
                    d[k] = (uint8_t)(quantize(x[k], inv) + 128);              \
            else                                                              \
                for (int k = 0; k < K; k++)                                   \
                    d[k] = (uint8_t)(quantize(x[(ptrdiff_t)k * sak], inv) + 128); \
            for (int k = K; k < Kp; k++)                                      \
                d[k] = 128;                                                   \
        } else if (kind == Q_A_S16) {                                         \
            int16_t *RC_RESTRICT d = (int16_t *)row;                          \
            if (sak == 1)                                                     \
                for (int k = 0; k < K; k++)                                   \
                    d[k] = (int16_t)quantize(x[k], inv);                      \
            else                                                              \
                for (int k = 0; k < K; k++)                                   \
                    d[k] = (int16_t)quantize(x[(ptrdiff_t)k * sak], inv);     \
            for (int k = K; k < Kp; k++)                                      \
                d[k] = 0;                                                     \
        } else {                                                              \
            int8_t *RC_RESTRICT d = (int8_t *)row;                            \
            for (int k = 0; k < K; k++)                                       \
                d[k] = (int8_t)quantize(x[(ptrdiff_t)k * sak], inv);          \
            for (int k = K; k < Kp; k++)                                      \
                d[k] = 0;                                                     \
        }                                                                     \
    }                                                                         \
}

Q_PREP(prep_portable, )

/* ---- the kernels ------------------------------------------------------------------ */

/* A tile: rows 0 .. mr of the converted block (lds bytes apart) times np
 * panels from panel p, into C's columns coff .. coff + np * 32 that lie in
 * [0, n) (coff: the panel's first column relative to C's first). */
typedef void (*q_tile_fn)(int mr, int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
                          const float *rscale, int p, int init, float *c, ptrdiff_t ldc,
                          int coff, int n);

typedef struct {
    int kind;       /* Q_A_* */
    int mr;         /* rows of the main tile */
    int nps[4];     /* panels per tile for a product of 1, 2, 3-6, 7+ rows (< mr) */
    int ftz;        /* run with the MXCSR's flush-to-zero and denormals-are-zero */
    void (*prep)(int kind, const float *a, ptrdiff_t sam, ptrdiff_t sak, int rows, int K,
                 int Kp, void *scr, ptrdiff_t lds, float *rscale);
    q_tile_fn tile;
} q_kernels;

/* Store a tile row's results (w columns from C's column coff, clipped to
 * [0, n)), adding into C when init. */
static RC_ALWAYS_INLINE void store_row(const float *r, int w, int init, float *c, int coff,
                                       int n)
{
    const int lo = coff < 0 ? -coff : 0;
    const int hi = n - coff < w ? n - coff : w;
    float *ci = c + coff;
    if (init)
        for (int j = lo; j < hi; j++)
            ci[j] = ci[j] + r[j];
    else
        for (int j = lo; j < hi; j++)
            ci[j] = r[j];
}

/* Portable C: one row and one panel at a time. */
static void tile_bf16_portable(int mr, int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
                               const float *rscale, int p, int init, float *c, ptrdiff_t ldc,
                               int coff, int n)
{
    (void)rscale;
    const int groups = q->Kp / 2;
    for (int i = 0; i < mr; i++) {
        const float *ai = (const float *)((const char *)a + (ptrdiff_t)i * lds);
        for (int pp = 0; pp < np; pp++) {
            const uint32_t *w = q->panels + (ptrdiff_t)(p + pp) * groups * QNR;
            float acc[QNR];
            for (int l = 0; l < QNR; l++)
                acc[l] = 0.0f;
            for (int g = 0; g < groups; g++) {
                const float a1 = ai[2 * g + 1], a0 = ai[2 * g];
                const uint32_t *wg = w + (ptrdiff_t)g * QNR;
                for (int l = 0; l < QNR; l++) {
                    float s = fmaf(a1, u2f(wg[l] & 0xFFFF0000u), acc[l]);
                    s = fabsf(s) < FLT_MIN ? copysignf(0.0f, s) : s;
                    s = fmaf(a0, u2f(wg[l] << 16), s);
                    acc[l] = fabsf(s) < FLT_MIN ? copysignf(0.0f, s) : s;
                }
            }
            store_row(acc, QNR, init, c + (ptrdiff_t)i * ldc, coff + pp * QNR, n);
        }
    }
}

static void tile_i8_portable(int mr, int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
                             const float *rscale, int p, int init, float *c, ptrdiff_t ldc,
                             int coff, int n)
{
    const int groups = q->Kp / 4;
    for (int i = 0; i < mr; i++) {
        const int8_t *ai = (const int8_t *)a + (ptrdiff_t)i * lds;
        for (int pp = 0; pp < np; pp++) {
            const int j0 = (p + pp) * QNR;
            const uint32_t *w = q->panels + (ptrdiff_t)(p + pp) * groups * QNR;
            /* unsigned: a sum outside int32 would wrap as the vector
             * paths' sums do (RC_Q_MAX_K keeps the final sums inside) */
            uint32_t acc[QNR];
            for (int l = 0; l < QNR; l++)
                acc[l] = 0;
            for (int g = 0; g < groups; g++) {
                const int8_t *ag = ai + 4 * g;
                const uint32_t *wg = w + (ptrdiff_t)g * QNR;
                for (int l = 0; l < QNR; l++) {
                    const uint32_t v = wg[l];
                    int32_t s = ag[0] * (int32_t)(int8_t)(v & 0xFF)
                                + ag[1] * (int32_t)(int8_t)((v >> 8) & 0xFF)
                                + ag[2] * (int32_t)(int8_t)((v >> 16) & 0xFF)
                                + ag[3] * (int32_t)(int8_t)(v >> 24);
                    acc[l] += (uint32_t)s;
                }
            }
            float r[QNR];
            for (int l = 0; l < QNR; l++)
                r[l] = (float)(int32_t)acc[l] * (rscale[i] * q->scale[j0 + l]);
            store_row(r, QNR, init, c + (ptrdiff_t)i * ldc, coff + pp * QNR, n);
        }
    }
}

static const q_kernels k_bf16_portable = {Q_A_F32, 1, {1, 1, 1, 1}, 0, prep_portable,
                                          tile_bf16_portable};
static const q_kernels k_i8_portable = {Q_A_S8, 1, {1, 1, 1, 1}, 0, prep_portable,
                                        tile_i8_portable};

#if RC_X86
#define TGT_AVX2 __attribute__((target("avx2,fma")))
#define TGT_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx2,fma")))
#define TGT_VNNI __attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni,avx2,fma")))
#define TGT_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,avx2,fma")))

#include "rc_qgemm_impl.h"

static const q_kernels k_bf16_native = {Q_A_BF16, 12, {4, 4, 2, 1}, 0, prep_avx512,
                                        tile_bf16_native};
static const q_kernels k_bf16_avx512 = {Q_A_F32, 12, {4, 4, 2, 1}, 1, prep_avx512,
                                        tile_bf16_avx512};
static const q_kernels k_bf16_avx2 = {Q_A_F32, 3, {2, 1, 1, 1}, 1, prep_avx2, tile_bf16_avx2};
static const q_kernels k_i8_vnni = {Q_A_U8, 12, {4, 4, 2, 1}, 0, prep_avx512, tile_i8_vnni};
static const q_kernels k_i8_avx2 = {Q_A_S16, 3, {1, 1, 1, 1}, 0, prep_avx2, tile_i8_avx2};
#endif

/* ---- the driver ---------------------------------------------------------------- */

static int cpu_bf16 = -1, cpu_vnni = -1;

/* The CPU's AVX512_BF16 and AVX512-VNNI (cpuid leaf 7); used only when the
 * instruction set is AVX-512, whose choice checked the OS saves the
 * registers. */
static void q_cpu(void)
{
    if (cpu_bf16 >= 0)
        return;
    int bf16 = 0, vnni = 0;
#if RC_X86
    unsigned a, b, c, d;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        const unsigned subleaves = a;
        vnni = (c >> 11) & 1;
        if (subleaves >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d))
            bf16 = (a >> 5) & 1;
    }
#endif
    cpu_vnni = vnni;
    cpu_bf16 = bf16;
}

static const q_kernels *q_pick(int format)
{
    q_cpu();
#if RC_X86
    const int isa = rc_isa();
    if (format == RC_QBF16) {
        if (isa >= RC_ISA_AVX512)
            return cpu_bf16 ? &k_bf16_native : &k_bf16_avx512;
        if (isa >= RC_ISA_AVX2)
            return &k_bf16_avx2;
        return &k_bf16_portable;
    }
    if (isa >= RC_ISA_AVX512 && cpu_vnni)
        return &k_i8_vnni;
    if (isa >= RC_ISA_AVX2)
        return &k_i8_avx2;
    return &k_i8_portable;
#else
    return format == RC_QBF16 ? &k_bf16_portable : &k_i8_portable;
#endif
}

int rc_q_native(int format)
{
    const q_kernels *k = q_pick(format);
#if RC_X86
    return k == &k_bf16_native || k == &k_i8_vnni;
#else
    (void)k;
    return 0;
#endif
}

void rc_qgemm(const rc_qmat *q, int M, int K, int j0, int n, const float *a, ptrdiff_t sam,
              ptrdiff_t sak, int init, float *c, ptrdiff_t ldc)
{
    (void)K;
    if (M <= 0 || n <= 0)
        return;
    const q_kernels *ks = q_pick(q->format);
    const ptrdiff_t lds = round_up((ptrdiff_t)q->Kp * q_a_size(ks->kind), 64);
    char stack_bytes[Q_STACK_BYTES + 64];
    char *const stack = (char *)(((uintptr_t)stack_bytes + 63) & ~(uintptr_t)63);
    float rscale[Q_MAX_BLOCK_ROWS];
    char *scr = stack;
    int mb = (int)(Q_STACK_BYTES / (lds > 0 ? lds : 64));
    if (mb < 1) {
        /* rows longer than the stack block: a heap block for this call */
        mb = M < ks->mr ? M : ks->mr;
        scr = (char *)malloc((size_t)(lds * mb) + 64);
        if (scr == NULL) {
            /* out of memory: a visible failure rather than a wrong number */
            for (int i = 0; i < M; i++)
                for (int j = 0; j < n; j++)
                    c[(ptrdiff_t)i * ldc + j] = NAN;
            return;
        }
    }
    if (mb > Q_MAX_BLOCK_ROWS)
        mb = Q_MAX_BLOCK_ROWS;
    if (mb > ks->mr)
        mb -= mb % ks->mr;
    if (mb > M)
        mb = M;
    const int np = M >= ks->mr ? 1
                   : ks->nps[M == 1 ? 0 : M == 2 ? 1 : M <= 6 ? 2 : 3];
#if RC_X86
    unsigned int csr = 0;
    if (ks->ftz) {
        /* vdpbf16ps's flush of subnormal results (and inputs) for the
         * emulating fused multiply-adds */
        csr = _mm_getcsr();
        _mm_setcsr(csr | 0x8040u);
    }
#endif
    const int p0 = j0 / QNR, p1 = (j0 + n + QNR - 1) / QNR;
    for (int i0 = 0; i0 < M; i0 += mb) {
        const int rows = M - i0 < mb ? M - i0 : mb;
        ks->prep(ks->kind, a + (ptrdiff_t)i0 * sam, sam, sak, rows, q->K, q->Kp, scr, lds,
                 rscale);
        for (int p = p0; p < p1;) {
            const int qn = p1 - p < np ? p1 - p : np;
            const int coff = p * QNR - j0;
            for (int i = 0; i < rows; i += ks->mr) {
                const int mr = rows - i < ks->mr ? rows - i : ks->mr;
                ks->tile(mr, qn, q, scr + (ptrdiff_t)i * lds, lds, rscale + i, p, init,
                         c + (ptrdiff_t)(i0 + i) * ldc, ldc, coff, n);
            }
            p += qn;
        }
    }
#if RC_X86
    if (ks->ftz)
        _mm_setcsr(csr);
#endif
    if (scr != stack)
        free(scr);
}
