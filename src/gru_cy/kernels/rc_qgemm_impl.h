/* The x86-64 tiles of the bf16 and int8 products (rc_qgemm.c includes this
 * once; see rc_qgemm.h for the arithmetic each one must reproduce).
 *
 * A tile holds mr rows x np panels of accumulators in registers and walks
 * the groups of k once: each group's panel lanes are loaded once and
 * multiplied into every row (its converted activations broadcast). The
 * tile functions are written for constant mr and np and instantiated per
 * case through a switch, so the compiler keeps every accumulator in a
 * register.
 *
 *   tile_bf16_native  AVX512_BF16: vdpbf16ps, 12 x 32 (or fewer rows x up
 *                     to 4 panels); the activations as bfloat16 pairs
 *   tile_bf16_avx512  AVX-512F: the same chain as two fused multiply-adds
 *                     per pair (the driver sets the flush to zero)
 *   tile_bf16_avx2    AVX2 + FMA: idem, 3 x 32
 *   tile_i8_vnni      AVX512-VNNI: vpdpbusd on (q_a + 128) and q_w, the
 *                     column sums removed at the end
 *   tile_i8_avx2      AVX2: q_a as int16 (four per 64 bits, broadcast),
 *                     q_w sign-extended to int16 four columns at a time,
 *                     vpmaddwd: pairs of k per 32-bit lane, summed in the
 *                     epilogue; 3 rows x 16 columns per pass */

/* The tile cases every 12-row kernel instantiates: (rows, panels). */
#define Q_CASES12                                                              \
    Q_CASE(1, 1) Q_CASE(2, 1) Q_CASE(3, 1) Q_CASE(4, 1) Q_CASE(5, 1)           \
    Q_CASE(6, 1) Q_CASE(7, 1) Q_CASE(8, 1) Q_CASE(9, 1) Q_CASE(10, 1)          \
    Q_CASE(11, 1) Q_CASE(12, 1)                                                \
    Q_CASE(1, 2) Q_CASE(1, 3) Q_CASE(1, 4)                                     \
    Q_CASE(2, 2) Q_CASE(2, 3) Q_CASE(2, 4)                                     \
    Q_CASE(3, 2) Q_CASE(4, 2) Q_CASE(5, 2) Q_CASE(6, 2)

/* 16 results r into C's columns col .. col + 16 that lie in [0, n) (a
 * masked store: lanes outside are neither read nor written), added into C
 * when init. */
TGT_AVX512 static RC_ALWAYS_INLINE void
store16(float *ci, int col, int n, __m512 r, int init)
{
    const int lo = col < 0 ? -col : 0;
    const int hi = n - col < 16 ? n - col : 16;
    if (lo == 0 && hi == 16) {
        if (init)
            r = _mm512_add_ps(_mm512_loadu_ps(ci + col), r);
        _mm512_storeu_ps(ci + col, r);
        return;
    }
    if (hi <= lo)
        return;
    const __mmask16 m = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    float *base = (float *)((uintptr_t)ci + (intptr_t)col * 4);
    if (init)
        r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, base), r);
    _mm512_mask_storeu_ps(base, m, r);
}

/* The results of a tile row (np * 32 floats in r) into C. */
#define Q_STORE_ROW(r, np, init, ci, coff, n)                                  \
    do {                                                                       \
        _Pragma("GCC unroll 8")                                                \
        for (int v_ = 0; v_ < 2 * (np); v_++)                                  \
            store16(ci, (coff) + 16 * v_, n, (r)[v_], init);                   \
    } while (0)

/* ---- bf16, AVX512_BF16 ---------------------------------------------------------- */

TGT_BF16 static RC_ALWAYS_INLINE void
tile_bf16_native_k(const int mr, const int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
                   int p, int init, float *c, ptrdiff_t ldc, int coff, int n)
{
    const int groups = q->Kp / 2;
    const ptrdiff_t pstride = (ptrdiff_t)groups * QNR;
    const uint32_t *w = q->panels + (ptrdiff_t)p * pstride;
    __m512 acc[12][8];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < 2 * np; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int g = 0; g < groups; g++) {
        __m512i wv[8];
#pragma GCC unroll 4
        for (int qq = 0; qq < np; qq++) {
            wv[2 * qq] = _mm512_loadu_si512((const void *)(w + qq * pstride + g * QNR));
            wv[2 * qq + 1] = _mm512_loadu_si512((const void *)(w + qq * pstride + g * QNR + 16));
        }
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            int32_t pair;
            memcpy(&pair, (const char *)a + i * lds + 4 * g, 4);
            const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 8
            for (int v = 0; v < 2 * np; v++)
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], av, (__m512bh)wv[v]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
        Q_STORE_ROW(acc[i], np, init, c + (ptrdiff_t)i * ldc, coff, n);
}

#define Q_CASE(m, qn)                                                          \
    case (m) * 8 + (qn):                                                       \
        tile_bf16_native_k(m, qn, q, a, lds, p, init, c, ldc, coff, n);        \
        return;
TGT_BF16 static void tile_bf16_native(int mr, int np, const rc_qmat *q, const void *a,
                                      ptrdiff_t lds, const float *rscale, int p, int init,
                                      float *c, ptrdiff_t ldc, int coff, int n)
{
    (void)rscale;
    switch (mr * 8 + np) {
        Q_CASES12
    }
}
#undef Q_CASE

/* ---- bf16 emulated, AVX-512F ---------------------------------------------------- */

TGT_AVX512 static RC_ALWAYS_INLINE void
tile_bf16_avx512_k(const int mr, const int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
                   int p, int init, float *c, ptrdiff_t ldc, int coff, int n)
{
    const int groups = q->Kp / 2;
    const ptrdiff_t pstride = (ptrdiff_t)groups * QNR;
    const uint32_t *w = q->panels + (ptrdiff_t)p * pstride;
    const __m512i hi_mask = _mm512_set1_epi32((int)0xFFFF0000u);
    __m512 acc[12][8];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < 2 * np; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int g = 0; g < groups; g++) {
        __m512 odd[8], even[8];
#pragma GCC unroll 4
        for (int qq = 0; qq < np; qq++)
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                const __m512i wv = _mm512_loadu_si512(
                    (const void *)(w + qq * pstride + g * QNR + 16 * h));
                odd[2 * qq + h] = _mm512_castsi512_ps(_mm512_and_si512(wv, hi_mask));
                even[2 * qq + h] = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
            }
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            const float *ai = (const float *)((const char *)a + i * lds) + 2 * g;
            const __m512 a1 = _mm512_set1_ps(ai[1]), a0 = _mm512_set1_ps(ai[0]);
#pragma GCC unroll 8
            for (int v = 0; v < 2 * np; v++) {
                acc[i][v] = _mm512_fmadd_ps(a1, odd[v], acc[i][v]);
                acc[i][v] = _mm512_fmadd_ps(a0, even[v], acc[i][v]);
            }
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
        Q_STORE_ROW(acc[i], np, init, c + (ptrdiff_t)i * ldc, coff, n);
}

#define Q_CASE(m, qn)                                                          \
    case (m) * 8 + (qn):                                                       \
        tile_bf16_avx512_k(m, qn, q, a, lds, p, init, c, ldc, coff, n);        \
        return;
TGT_AVX512 static void tile_bf16_avx512(int mr, int np, const rc_qmat *q, const void *a,
                                        ptrdiff_t lds, const float *rscale, int p, int init,
                                        float *c, ptrdiff_t ldc, int coff, int n)
{
    (void)rscale;
    switch (mr * 8 + np) {
        Q_CASES12
    }
}
#undef Q_CASE

/* ---- int8, AVX512-VNNI ------------------------------------------------------------ */

TGT_VNNI static RC_ALWAYS_INLINE void
tile_i8_vnni_k(const int mr, const int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
               const float *rscale, int p, int init, float *c, ptrdiff_t ldc, int coff, int n)
{
    const int groups = q->Kp / 4;
    const ptrdiff_t pstride = (ptrdiff_t)groups * QNR;
    const uint32_t *w = q->panels + (ptrdiff_t)p * pstride;
    __m512i acc[12][8];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < 2 * np; v++)
            acc[i][v] = _mm512_setzero_si512();
    for (int g = 0; g < groups; g++) {
        __m512i wv[8];
#pragma GCC unroll 4
        for (int qq = 0; qq < np; qq++) {
            wv[2 * qq] = _mm512_loadu_si512((const void *)(w + qq * pstride + g * QNR));
            wv[2 * qq + 1] = _mm512_loadu_si512((const void *)(w + qq * pstride + g * QNR + 16));
        }
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            int32_t quad;
            memcpy(&quad, (const char *)a + i * lds + 4 * g, 4);
            const __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 8
            for (int v = 0; v < 2 * np; v++)
                acc[i][v] = _mm512_dpbusd_epi32(acc[i][v], av, wv[v]);
        }
    }
    /* acc = sum (q_a + 128) q_w: remove 128 * colsum, then scale */
    __m512i corr[8];
    __m512 sw[8];
#pragma GCC unroll 8
    for (int v = 0; v < 2 * np; v++) {
        const int j = p * QNR + 16 * v;
        corr[v] = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(q->colsum + j)), 7);
        sw[v] = _mm512_loadu_ps(q->scale + j);
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        const __m512 sa = _mm512_set1_ps(rscale[i]);
        __m512 r[8];
#pragma GCC unroll 8
        for (int v = 0; v < 2 * np; v++)
            r[v] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][v], corr[v])),
                                 _mm512_mul_ps(sa, sw[v]));
        Q_STORE_ROW(r, np, init, c + (ptrdiff_t)i * ldc, coff, n);
    }
}

#define Q_CASE(m, qn)                                                          \
    case (m) * 8 + (qn):                                                       \
        tile_i8_vnni_k(m, qn, q, a, lds, rscale, p, init, c, ldc, coff, n);    \
        return;
TGT_VNNI static void tile_i8_vnni(int mr, int np, const rc_qmat *q, const void *a,
                                  ptrdiff_t lds, const float *rscale, int p, int init,
                                  float *c, ptrdiff_t ldc, int coff, int n)
{
    switch (mr * 8 + np) {
        Q_CASES12
    }
}
#undef Q_CASE
#undef Q_STORE_ROW

/* ---- AVX2 ---------------------------------------------------------------------- */

/* 8 results into C's columns col .. col + 8 in [0, n), as store16. */
TGT_AVX2 static RC_ALWAYS_INLINE void
store8(float *ci, int col, int n, __m256 r, int init)
{
    const int lo = col < 0 ? -col : 0;
    const int hi = n - col < 8 ? n - col : 8;
    if (lo == 0 && hi == 8) {
        if (init)
            r = _mm256_add_ps(_mm256_loadu_ps(ci + col), r);
        _mm256_storeu_ps(ci + col, r);
        return;
    }
    if (hi <= lo)
        return;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane),
                                       _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)));
    float *base = (float *)((uintptr_t)ci + (intptr_t)col * 4);
    if (init)
        r = _mm256_add_ps(_mm256_maskload_ps(base, m), r);
    _mm256_maskstore_ps(base, m, r);
}

#define Q_STORE_ROW8(r, nv, init, ci, coff, n)                                 \
    do {                                                                       \
        _Pragma("GCC unroll 8")                                                \
        for (int v_ = 0; v_ < (nv); v_++)                                      \
            store8(ci, (coff) + 8 * v_, n, (r)[v_], init);                     \
    } while (0)

/* bf16 emulated: mr rows x np panels (4 vectors of 8 per panel). */
TGT_AVX2 static RC_ALWAYS_INLINE void
tile_bf16_avx2_k(const int mr, const int np, const rc_qmat *q, const void *a, ptrdiff_t lds,
                 int p, int init, float *c, ptrdiff_t ldc, int coff, int n)
{
    const int groups = q->Kp / 2;
    const ptrdiff_t pstride = (ptrdiff_t)groups * QNR;
    const uint32_t *w = q->panels + (ptrdiff_t)p * pstride;
    const __m256i hi_mask = _mm256_set1_epi32((int)0xFFFF0000u);
    __m256 acc[3][8];
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 8
        for (int v = 0; v < 4 * np; v++)
            acc[i][v] = _mm256_setzero_ps();
    for (int g = 0; g < groups; g++) {
#pragma GCC unroll 8
        for (int v = 0; v < 4 * np; v++) {
            const __m256i wv = _mm256_loadu_si256(
                (const __m256i *)(w + (v / 4) * pstride + g * QNR + 8 * (v % 4)));
            const __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(wv, hi_mask));
            const __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
#pragma GCC unroll 3
            for (int i = 0; i < mr; i++) {
                const float *ai = (const float *)((const char *)a + i * lds) + 2 * g;
                acc[i][v] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai + 1), odd, acc[i][v]);
                acc[i][v] = _mm256_fmadd_ps(_mm256_broadcast_ss(ai), even, acc[i][v]);
            }
        }
    }
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++)
        Q_STORE_ROW8(acc[i], 4 * np, init, c + (ptrdiff_t)i * ldc, coff, n);
}

#define Q_CASE(m, qn)                                                          \
    case (m) * 8 + (qn):                                                       \
        tile_bf16_avx2_k(m, qn, q, a, lds, p, init, c, ldc, coff, n);          \
        return;
TGT_AVX2 static void tile_bf16_avx2(int mr, int np, const rc_qmat *q, const void *a,
                                    ptrdiff_t lds, const float *rscale, int p, int init,
                                    float *c, ptrdiff_t ldc, int coff, int n)
{
    (void)rscale;
    switch (mr * 8 + np) {
        Q_CASE(1, 1) Q_CASE(2, 1) Q_CASE(3, 1) Q_CASE(1, 2)
    }
}
#undef Q_CASE

/* int8: mr rows x 16 columns (half a panel, h), as 4 vectors of 4 columns
 * x 2 pairs of k. */
TGT_AVX2 static RC_ALWAYS_INLINE void
tile_i8_avx2_k(const int mr, const int h, const rc_qmat *q, const void *a, ptrdiff_t lds,
               const float *rscale, int p, int init, float *c, ptrdiff_t ldc, int coff, int n)
{
    const int groups = q->Kp / 4;
    const ptrdiff_t pstride = (ptrdiff_t)groups * QNR;
    const uint32_t *w = q->panels + (ptrdiff_t)p * pstride + 16 * h;
    __m256i acc[3][4];
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++)
            acc[i][v] = _mm256_setzero_si256();
    for (int g = 0; g < groups; g++) {
        __m256i av[3];
#pragma GCC unroll 3
        for (int i = 0; i < mr; i++) {
            long long quad;
            memcpy(&quad, (const char *)a + i * lds + 8 * g, 8);
            av[i] = _mm256_set1_epi64x(quad);
        }
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) {
            const __m256i wv = _mm256_cvtepi8_epi16(
                _mm_loadu_si128((const __m128i *)(w + g * QNR + 4 * v)));
#pragma GCC unroll 3
            for (int i = 0; i < mr; i++)
                acc[i][v] = _mm256_add_epi32(acc[i][v], _mm256_madd_epi16(av[i], wv));
        }
    }
    const int j = p * QNR + 16 * h;
    const __m256 sw0 = _mm256_loadu_ps(q->scale + j), sw1 = _mm256_loadu_ps(q->scale + j + 8);
#pragma GCC unroll 3
    for (int i = 0; i < mr; i++) {
        /* lanes (column, half of the group) -> columns */
        const __m256i s01 = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][0], acc[i][1]),
                                                     0xD8);
        const __m256i s23 = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[i][2], acc[i][3]),
                                                     0xD8);
        const __m256 sa = _mm256_set1_ps(rscale[i]);
        __m256 r[2];
        r[0] = _mm256_mul_ps(_mm256_cvtepi32_ps(s01), _mm256_mul_ps(sa, sw0));
        r[1] = _mm256_mul_ps(_mm256_cvtepi32_ps(s23), _mm256_mul_ps(sa, sw1));
        Q_STORE_ROW8(r, 2, init, c + (ptrdiff_t)i * ldc, coff + 16 * h, n);
    }
}

TGT_AVX2 static void tile_i8_avx2(int mr, int np, const rc_qmat *q, const void *a,
                                  ptrdiff_t lds, const float *rscale, int p, int init,
                                  float *c, ptrdiff_t ldc, int coff, int n)
{
    for (int pp = 0; pp < np; pp++)
        for (int h = 0; h < 2; h++) {
            const int co = coff + pp * QNR;
            if (co + 16 * h >= n || co + 16 * h + 16 <= 0)
                continue;          /* columns outside [0, n) */
            switch (mr) {
            case 1:
                tile_i8_avx2_k(1, h, q, a, lds, rscale, p + pp, init, c, ldc, co, n);
                break;
            case 2:
                tile_i8_avx2_k(2, h, q, a, lds, rscale, p + pp, init, c, ldc, co, n);
                break;
            default:
                tile_i8_avx2_k(3, h, q, a, lds, rscale, p + pp, init, c, ldc, co, n);
            }
        }
}
#undef Q_STORE_ROW8
