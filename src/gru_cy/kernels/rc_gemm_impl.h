/* The product kernel for one element type and one instruction set
 * (rc_gemm.c includes it once per pair), with:
 *   T        the element type
 *   KN(x)    this instantiation's name for x
 *   VB       vector width in bytes (64 AVX-512, 32 AVX2, 16 portable)
 *   MR       rows of the main register tile
 *   NPS(m)   panels per tile when the whole product has m < MR rows
 *   KN_CASES the (rows, panels) tiles instantiated
 *   TGT      the function attribute that selects the instruction set
 *   VFMA     a * b + c, vectors of T, one rounding (explicit: no
 *            compiler's contraction rules decide the products' bits)
 * A tile holds MR x (NPS * NR / VL) accumulator vectors in registers; it
 * walks k once, each accumulator lane one chain of multiply-adds. */

typedef T KN(vec) __attribute__((vector_size(VB)));
typedef T KN(uvec) __attribute__((vector_size(VB), aligned(sizeof(T)), may_alias));

#define NR_ (RC_PANEL_BYTES / (int)sizeof(T))
#define VL_ (VB / (int)sizeof(T))
#define NV_ (NR_ / VL_)

/* Rows 0 .. mr of A times np panels of B (w, panels pstride apart, rows ldw
 * apart), into C's columns coff .. coff + np * NR that lie in [0, n).
 * at: A transposed (a[k * sa + i]) or not (a[i * sa + k]). */
TGT static RC_ALWAYS_INLINE void
KN(tile)(const int mr, const int np, const int at, int K, const T *RC_RESTRICT a,
         ptrdiff_t sa, const T *RC_RESTRICT w, ptrdiff_t pstride, ptrdiff_t ldw, int init,
         T *RC_RESTRICT c, ptrdiff_t ldc, int coff, int n)
{
    KN(vec) acc[MR][4 * NV_];
    const int width = np * NR_;
    const int whole = coff >= 0 && coff + width <= n;
    if (!init) {
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                acc[i][v] = (KN(vec)){0};
    } else if (whole) {
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                acc[i][v] = *(const KN(uvec) *)(c + i * ldc + coff + v * VL_);
    } else {
        const int lo = coff < 0 ? -coff : 0;
        const int hi = n - coff < width ? n - coff : width;
        for (int i = 0; i < mr; i++) {
            T buf[4 * NR_];
            for (int jj = 0; jj < width; jj++)
                buf[jj] = jj >= lo && jj < hi ? c[i * ldc + coff + jj] : (T)0;
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                acc[i][v] = *(const KN(uvec) *)(buf + v * VL_);
        }
    }
    const T *wk = w;
    for (int k = 0; k < K; k++, wk += ldw) {
        KN(vec) wv[4 * NV_];
#pragma GCC unroll 16
        for (int q = 0; q < np; q++)
#pragma GCC unroll 16
            for (int v = 0; v < NV_; v++)
                wv[q * NV_ + v] = *(const KN(uvec) *)(wk + q * pstride + v * VL_);
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++) {
            const T ai = at ? a[(ptrdiff_t)k * sa + i] : a[i * sa + k];
            const KN(vec) av = ai - (KN(vec)){0};    /* ai in every lane (-0 too) */
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                acc[i][v] = VFMA(av, wv[v], acc[i][v]);
        }
    }
    if (whole) {
#pragma GCC unroll 16
        for (int i = 0; i < mr; i++)
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                *(KN(uvec) *)(c + i * ldc + coff + v * VL_) = acc[i][v];
    } else {
        const int lo = coff < 0 ? -coff : 0;
        const int hi = n - coff < width ? n - coff : width;
        for (int i = 0; i < mr; i++) {
            T buf[4 * NR_];
#pragma GCC unroll 16
            for (int v = 0; v < np * NV_; v++)
                *(KN(uvec) *)(buf + v * VL_) = acc[i][v];
            T *ci = c + i * ldc + coff;
            for (int jj = lo; jj < hi; jj++)
                ci[jj] = buf[jj];
        }
    }
}

#define KN_CASE(m, q)                                                          \
    case (m) * 8 + (q):                                                        \
        KN(tile)(m, q, AT_, K, a, sa, w, pstride, ldw, init, c, ldc, coff, n); \
        return;

#define AT_ 0
TGT static void
KN(run_n)(int mr, int np, int K, const T *a, ptrdiff_t sa, const T *w, ptrdiff_t pstride,
          ptrdiff_t ldw, int init, T *c, ptrdiff_t ldc, int coff, int n)
{
    switch (mr * 8 + np) {
        KN_CASES
    }
}
#undef AT_
#define AT_ 1
TGT static void
KN(run_t)(int mr, int np, int K, const T *a, ptrdiff_t sa, const T *w, ptrdiff_t pstride,
          ptrdiff_t ldw, int init, T *c, ptrdiff_t ldc, int coff, int n)
{
    switch (mr * 8 + np) {
        KN_CASES
    }
}
#undef AT_
#undef KN_CASE

/* Rows of k per pass: a pass of one panel (KC x 128 bytes) stays in L1/L2
 * while every row tile runs over it; the chains go on from C between
 * passes, which changes no bit. */
#define KC_ 512

TGT static void
KN(gemm)(int M, int K, int j0, int n, const T *a, ptrdiff_t sam, ptrdiff_t sak,
         const rc_bmat *b, int k0, int init, T *c, ptrdiff_t ldc)
{
    const int at = sak != 1;               /* then sam == 1 */
    const ptrdiff_t sa = at ? sak : sam;
    const int p0 = j0 / NR_, p1 = (j0 + n + NR_ - 1) / NR_;
    const int pfull = b->tail ? b->N / NR_ : p1;   /* panels read from b->p */
    const int np = M >= MR ? 1 : NPS(M);
    /* Rows kept in L2 (256 KiB of A) while the panels pass over them. */
    const int kc = K < KC_ ? (K > 0 ? K : 1) : KC_;
    int mb = (int)((256 * 1024) / ((size_t)kc * sizeof(T)));
    mb = mb < MR ? MR : mb - mb % MR;
    for (int kk = 0; kk < K || (kk == 0 && K == 0); kk += kc) {
        const int kn = K - kk < kc ? K - kk : kc;
        const int in = init || kk > 0;
        for (int i0 = 0; i0 < M; i0 += mb) {
            const int i1 = M - i0 < mb ? M : i0 + mb;
            for (int p = p0; p < p1;) {
                const T *w;
                ptrdiff_t ps, ld;
                int q;
                if (p < pfull) {
                    q = pfull - p < np ? pfull - p : np;
                    if (p1 - p < q)
                        q = p1 - p;
                    ps = b->pstride;
                    ld = b->ld;
                    w = (const T *)b->p + (ptrdiff_t)p * ps + (ptrdiff_t)(k0 + kk) * ld;
                } else {
                    q = 1;
                    ps = NR_;
                    ld = NR_;
                    w = (const T *)b->tail + (ptrdiff_t)(k0 + kk) * NR_;
                }
                const int coff = p * NR_ - j0;
                int i = i0;
                for (; i + MR <= i1; i += MR) {
                    const T *ai = at ? a + i + (ptrdiff_t)kk * sa : a + (ptrdiff_t)i * sa + kk;
                    if (at)
                        KN(run_t)(MR, q, kn, ai, sa, w, ps, ld, in, c + (ptrdiff_t)i * ldc,
                                  ldc, coff, n);
                    else
                        KN(run_n)(MR, q, kn, ai, sa, w, ps, ld, in, c + (ptrdiff_t)i * ldc,
                                  ldc, coff, n);
                }
                if (i < i1) {
                    const T *ai = at ? a + i + (ptrdiff_t)kk * sa : a + (ptrdiff_t)i * sa + kk;
                    if (at)
                        KN(run_t)(i1 - i, q, kn, ai, sa, w, ps, ld, in,
                                  c + (ptrdiff_t)i * ldc, ldc, coff, n);
                    else
                        KN(run_n)(i1 - i, q, kn, ai, sa, w, ps, ld, in,
                                  c + (ptrdiff_t)i * ldc, ldc, coff, n);
                }
                p += q;
            }
        }
        if (K == 0)
            break;
    }
}

#undef KC_

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
        a0 = VFMA(a0, m, d); a1 = VFMA(a1, m, d); a2 = VFMA(a2, m, d); a3 = VFMA(a3, m, d);
        a4 = VFMA(a4, m, d); a5 = VFMA(a5, m, d); a6 = VFMA(a6, m, d); a7 = VFMA(a7, m, d);
        a8 = VFMA(a8, m, d); a9 = VFMA(a9, m, d); a10 = VFMA(a10, m, d);
        a11 = VFMA(a11, m, d);
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
