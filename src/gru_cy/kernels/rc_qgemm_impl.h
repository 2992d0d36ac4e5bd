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

/* ---- converting the activations ---------------------------------------------------- */

/* prep_portable's results (the scalar definitions of rc_qgemm.c), a vector
 * at a time: the largest |x| is exact in any order, the conversions are
 * elementwise; rows with strides other than 1 go to prep_portable. */

TGT_AVX512 static RC_ALWAYS_INLINE __m512i bf16_bits16(__m512i u)
{
    const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_and_si512(
        _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)),
        _mm512_set1_epi32((int)0xFFFF0000u));
    const __m512i quiet = _mm512_and_si512(_mm512_or_si512(u, _mm512_set1_epi32(0x00400000)),
                                           _mm512_set1_epi32((int)0xFFFF0000u));
    r = _mm512_mask_mov_epi32(r, _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7F800000)),
                              quiet);
    return _mm512_mask_mov_epi32(
        r, _mm512_cmplt_epu32_mask(mag, _mm512_set1_epi32(0x00800000)),
        _mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u)));
}

TGT_AVX512 static void prep_avx512(int kind, const float *a, ptrdiff_t sam, ptrdiff_t sak,
                                   int rows, int K, int Kp, void *scr, ptrdiff_t lds,
                                   float *rscale)
{
    if (sak != 1 || kind == Q_A_S16 || kind == Q_A_S8) {
        prep_portable(kind, a, sam, sak, rows, K, Kp, scr, lds, rscale);
        return;
    }
    for (int i = 0; i < rows; i++) {
        const float *x = a + (ptrdiff_t)i * sam;
        char *row = (char *)scr + (ptrdiff_t)i * lds;
        if (kind == Q_A_BF16 || kind == Q_A_F32) {
            for (int k = 0; k < K; k += 16) {
                const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF
                                                : (__mmask16)((1u << (K - k)) - 1u);
                const __m512i r = bf16_bits16(_mm512_maskz_loadu_epi32(m, x + k));
                if (kind == Q_A_BF16)
                    _mm256_mask_storeu_epi16((uint16_t *)row + k, m,
                                             _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16)));
                else
                    _mm512_mask_storeu_epi32((uint32_t *)row + k, m, r);
            }
            for (int k = K; k < Kp; k++) {
                if (kind == Q_A_BF16)
                    ((uint16_t *)row)[k] = 0;
                else
                    ((uint32_t *)row)[k] = 0;
            }
            continue;
        }
        /* int8 (the VNNI kernel's q + 128) */
        __m512 vmax = _mm512_setzero_ps();
        __mmask16 bad = 0;
        for (int k = 0; k < K; k += 16) {
            const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF
                                            : (__mmask16)((1u << (K - k)) - 1u);
            const __m512i mag = _mm512_and_si512(_mm512_maskz_loadu_epi32(m, x + k),
                                                 _mm512_set1_epi32(0x7FFFFFFF));
            bad |= _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7F7FFFFF));
            vmax = _mm512_max_ps(vmax, _mm512_castsi512_ps(mag));
        }
        float inv;
        rscale[i] = row_scale(_mm512_reduce_max_ps(vmax), bad != 0, &inv);
        uint8_t *d = (uint8_t *)row;
        if (inv == 0.0f) {
            memset(d, 128, (size_t)Kp);
            continue;
        }
        const __m512 vinv = _mm512_set1_ps(inv);
        const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
        for (int k = 0; k < K; k += 16) {
            const __mmask16 m = K - k >= 16 ? (__mmask16)0xFFFF
                                            : (__mmask16)((1u << (K - k)) - 1u);
            const __m512 y = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vinv);
            __m512i q = _mm512_cvt_roundps_epi32(y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi),
                                 _mm512_set1_epi32(128));
            _mm_mask_storeu_epi8(d + k, m, _mm512_cvtepi32_epi8(q));
        }
        for (int k = K; k < Kp; k++)
            d[k] = 128;
    }
}

TGT_AVX2 static void prep_avx2(int kind, const float *a, ptrdiff_t sam, ptrdiff_t sak,
                               int rows, int K, int Kp, void *scr, ptrdiff_t lds,
                               float *rscale)
{
    if (sak != 1 || (kind != Q_A_F32 && kind != Q_A_S16)) {
        prep_portable(kind, a, sam, sak, rows, K, Kp, scr, lds, rscale);
        return;
    }
    const int K8 = K - K % 8;
    for (int i = 0; i < rows; i++) {
        const float *x = a + (ptrdiff_t)i * sam;
        char *row = (char *)scr + (ptrdiff_t)i * lds;
        if (kind == Q_A_F32) {
            uint32_t *d = (uint32_t *)row;
            const __m256i absm = _mm256_set1_epi32(0x7FFFFFFF), top = _mm256_set1_epi32((int)0xFFFF0000u);
            for (int k = 0; k < K8; k += 8) {
                const __m256i u = _mm256_loadu_si256((const __m256i *)(x + k));
                const __m256i mag = _mm256_and_si256(u, absm);
                const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
                __m256i r = _mm256_and_si256(
                    _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), top);
                const __m256i quiet = _mm256_and_si256(
                    _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), top);
                /* magnitudes are below 2^31: signed compares order them */
                r = _mm256_blendv_epi8(r, quiet,
                                       _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7F800000)));
                r = _mm256_blendv_epi8(
                    r, _mm256_andnot_si256(absm, u),
                    _mm256_cmpgt_epi32(_mm256_set1_epi32(0x00800000), mag));
                _mm256_storeu_si256((__m256i *)(d + k), r);
            }
            for (int k = K8; k < K; k++)
                d[k] = bf16_bits(f2u(x[k]));
            for (int k = K; k < Kp; k++)
                d[k] = 0;
            continue;
        }
        __m256 vmax = _mm256_setzero_ps();
        __m256i bad = _mm256_setzero_si256();
        const __m256i absm = _mm256_set1_epi32(0x7FFFFFFF);
        for (int k = 0; k < K8; k += 8) {
            const __m256i mag = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + k)),
                                                 absm);
            bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(mag, _mm256_set1_epi32(0x7F7FFFFF)));
            vmax = _mm256_max_ps(vmax, _mm256_castsi256_ps(mag));
        }
        float lanes[8], amax = 0.0f;
        _mm256_storeu_ps(lanes, vmax);
        for (int l = 0; l < 8; l++)
            amax = lanes[l] > amax ? lanes[l] : amax;
        int tail_bad;
        const float tail_max = row_amax(x + K8, 1, K - K8, &tail_bad);
        amax = tail_max > amax ? tail_max : amax;
        float inv;
        rscale[i] = row_scale(amax, tail_bad || !_mm256_testz_si256(bad, bad), &inv);
        int16_t *d = (int16_t *)row;
        if (inv == 0.0f) {
            memset(d, 0, (size_t)Kp * sizeof(int16_t));
            continue;
        }
        const __m256 vinv = _mm256_set1_ps(inv);
        const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
        for (int k = 0; k < K8; k += 8) {
            __m256 y = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            y = _mm256_min_ps(_mm256_max_ps(y, lo), hi);
            const __m256i q = _mm256_cvttps_epi32(y);
            _mm_storeu_si128((__m128i *)(d + k), _mm_packs_epi32(_mm256_castsi256_si128(q),
                                                                 _mm256_extracti128_si256(q, 1)));
        }
        for (int k = K8; k < K; k++)
            d[k] = (int16_t)quantize(x[k], inv);
        for (int k = K; k < Kp; k++)
            d[k] = 0;
    }
}

/* The tile cases every 12-row kernel instantiates: (rows, panels). */
#define Q_CASES12                                                              \
    Q_CASE(1, 1) Q_CASE(2, 1) Q_CASE(3, 1) Q_CASE(4, 1) Q_CASE(5, 1)           \
    Q_CASE(6, 1) Q_CASE(7, 1) Q_CASE(8, 1) Q_CASE(9, 1) Q_CASE(10, 1)          \
    Q_CASE(11, 1) Q_CASE(12, 1)                                                \
    Q_CASE(1, 2) Q_CASE(1, 3) Q_CASE(1, 4)                                     \
    Q_CASE(2, 2) Q_CASE(2, 3) Q_CASE(2, 4)                                     \
    Q_CASE(3, 2) Q_CASE(4, 2) Q_CASE(5, 2) Q_CASE(6, 2)

/* A kernel's entry point: a switch over its tiles, each case calling
 * Q_KERNEL(rows, panels), which the kernel defines before Q_TILE_ENTRY. */
#define Q_CASE(m, qn)                                                          \
    case (m) * 8 + (qn):                                                       \
        Q_KERNEL(m, qn);                                                       \
        return;
#define Q_TILE_ENTRY(TGT_, name, cases)                                        \
    TGT_ static void name(int mr, int np, const rc_qmat *q, const void *a,     \
                          ptrdiff_t lds, const float *rscale, int p, int init, \
                          float *c, ptrdiff_t ldc, int coff, int n)            \
    {                                                                          \
        (void)rscale;                                                          \
        switch (mr * 8 + np) {                                                 \
            cases                                                              \
        }                                                                      \
    }

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

#define Q_KERNEL(m, qn) tile_bf16_native_k(m, qn, q, a, lds, p, init, c, ldc, coff, n)
Q_TILE_ENTRY(TGT_BF16, tile_bf16_native, Q_CASES12)
#undef Q_KERNEL

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

#define Q_KERNEL(m, qn) tile_bf16_avx512_k(m, qn, q, a, lds, p, init, c, ldc, coff, n)
Q_TILE_ENTRY(TGT_AVX512, tile_bf16_avx512, Q_CASES12)
#undef Q_KERNEL

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

#define Q_KERNEL(m, qn) tile_i8_vnni_k(m, qn, q, a, lds, rscale, p, init, c, ldc, coff, n)
Q_TILE_ENTRY(TGT_VNNI, tile_i8_vnni, Q_CASES12)
#undef Q_KERNEL
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

#define Q_KERNEL(m, qn) tile_bf16_avx2_k(m, qn, q, a, lds, p, init, c, ldc, coff, n)
Q_TILE_ENTRY(TGT_AVX2, tile_bf16_avx2, Q_CASE(1, 1) Q_CASE(2, 1) Q_CASE(3, 1) Q_CASE(1, 2))
#undef Q_KERNEL

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

#undef Q_TILE_ENTRY
#undef Q_CASE
#undef Q_CASES12
