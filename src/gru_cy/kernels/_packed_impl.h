/* The packed-weight kernel for one element type and one instruction set;
 * _packed_instantiate.h includes it once per type for each set, with:
 *   T        the element type
 *   KN(x)    the instantiation's name for x
 *   VB       vector width in bytes (64 AVX-512, 32 AVX2, 16 portable)
 *   MR       rows of the main register tile
 *   NPS(m)   panels per tile when the whole product has m < MR rows
 *   TGT      the function attribute that selects the instruction set
 * The tile's accumulators are MR x (NPS * NR / VL) vectors, kept in
 * registers once the tile is inlined with constant mr and np. */

typedef T KN(vec) __attribute__((vector_size(VB)));
typedef T KN(uvec) __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));

#define NR_ (RC_PANEL_BYTES / (int)sizeof(T))
#define VL_ (VB / (int)sizeof(T))
#define NV_ (NR_ / VL_)

/* Rows a[0 .. mr) times np panels, written to c's columns coff .. coff +
 * np*NR (those within [0, n)). */
TGT static inline __attribute__((always_inline)) void
KN(tile)(const int mr, const int np, int K, const T *restrict a, ptrdiff_t lda,
         const T *restrict w, ptrdiff_t pstride, T beta, T *restrict c, ptrdiff_t ldc,
         int coff, int n)
{
    KN(vec) acc[MR][4 * NV_];
#pragma GCC unroll 16
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 16
        for (int v = 0; v < np * NV_; v++)
            acc[i][v] = (KN(vec)){0};
    for (int k = 0; k < K; k++) {
        KN(vec) wv[4 * NV_];
#pragma GCC unroll 16
        for (int q = 0; q < np; q++)
#pragma GCC unroll 16
            for (int v = 0; v < NV_; v++)
                wv[q * NV_ + v] = *(const KN(uvec) *)(w + q * pstride + (ptrdiff_t)k * NR_ + v * VL_);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const T ai = a[i * lda + k];
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                acc[i][v] += ai * wv[v];
        }
    }
    const int width = np * NR_;
    if (coff >= 0 && coff + width <= n) {
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++) {
                KN(uvec) *d = (KN(uvec) *)(c + i * ldc + coff + v * VL_);
                if (beta == 0)
                    *d = acc[i][v];
                else
                    *d = beta * *d + acc[i][v];
            }
    } else {
        for (int i = 0; i < mr; i++) {
            T buf[4 * NR_];
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                *(KN(uvec) *)(buf + v * VL_) = acc[i][v];
            int lo = coff < 0 ? -coff : 0;
            int hi = n - coff < width ? n - coff : width;
            T *ci = c + i * ldc;
            for (int jj = lo; jj < hi; jj++)
                ci[coff + jj] = beta == 0 ? buf[jj] : beta * ci[coff + jj] + buf[jj];
        }
    }
}

#define KN_CASE(m, q)                                                          \
    case (m) * 8 + (q):                                                        \
        KN(tile)(m, q, K, a, lda, w, pstride, beta, c, ldc, coff, n);          \
        return;

TGT static void
KN(run)(int mr, int np, int K, const T *a, ptrdiff_t lda, const T *w, ptrdiff_t pstride,
        T beta, T *c, ptrdiff_t ldc, int coff, int n)
{
    switch (mr * 8 + np) {
        KN_CASES
    }
}

#undef KN_CASE

TGT static void
KN(gemm)(int M, int K, int j0, int n, const T *a, ptrdiff_t lda, const T *wp, ptrdiff_t pstride,
         T beta, T *c, ptrdiff_t ldc)
{
    const int p0 = j0 / NR_, p1 = (j0 + n + NR_ - 1) / NR_;
    const int np = M >= MR ? 1 : NPS(M);
    /* Blocks of rows that stay in L2 (RC_ROW_BLOCK_BYTES of a) while every
     * panel passes over them: a per-step product is one block; a product
     * over many steps' rows (the input projection) reads the packed weights
     * once per block instead of streaming all rows once per panel. */
    int mb = (int)(RC_ROW_BLOCK_BYTES / ((size_t)(K > 0 ? K : 1) * sizeof(T)));
    mb = mb < MR ? MR : mb - mb % MR;
    for (int i0 = 0; i0 < M; i0 += mb) {
        const int i1 = M - i0 < mb ? M : i0 + mb;
        for (int p = p0; p < p1; p += np) {
            const int q = p1 - p < np ? p1 - p : np;
            const T *w = wp + (ptrdiff_t)p * pstride;
            const int coff = p * NR_ - j0;
            int i = i0;
            for (; i + MR <= i1; i += MR)
                KN(run)(MR, q, K, a + (ptrdiff_t)i * lda, lda, w, pstride, beta,
                        c + (ptrdiff_t)i * ldc, ldc, coff, n);
            if (i < i1)
                KN(run)(i1 - i, q, K, a + (ptrdiff_t)i * lda, lda, w, pstride, beta,
                        c + (ptrdiff_t)i * ldc, ldc, coff, n);
        }
    }
}

/* The benchmarks' yardstick (rc_fma_chains): rounds x 12 independent chains
 * of vector multiply-adds. The chains start apart, so none merges with
 * another, and their sum is returned, so none is dropped. Only the float
 * instances are called. */
TGT static __attribute__((unused)) T KN(fma_chains)(long long rounds)
{
    KN(vec) m, d, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    for (int v = 0; v < VL_; v++) {
        m[v] = (T)0.999999;
        d[v] = (T)1e-7;
    }
    a0 = m; a1 = m + d; a2 = a1 + d; a3 = a2 + d; a4 = a3 + d; a5 = a4 + d;
    a6 = a5 + d; a7 = a6 + d; a8 = a7 + d; a9 = a8 + d; a10 = a9 + d; a11 = a10 + d;
    for (long long r = 0; r < rounds; r++) {
        a0 = a0 * m + d; a1 = a1 * m + d; a2 = a2 * m + d; a3 = a3 * m + d;
        a4 = a4 * m + d; a5 = a5 * m + d; a6 = a6 * m + d; a7 = a7 * m + d;
        a8 = a8 * m + d; a9 = a9 * m + d; a10 = a10 * m + d; a11 = a11 * m + d;
    }
    KN(vec) s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11));
    T t = 0;
    for (int v = 0; v < VL_; v++)
        t += s[v];
    return t;
}

#undef NR_
#undef VL_
#undef NV_

