/* The recurrent layers (rc_cells.h): planning a call (how the work splits
 * over threads, which weights are packed, the workspace), the time loops
 * of rc_loops_impl.h compiled for each element type and instruction set,
 * and the jobs the thread pool runs. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Without -ftrapping-math GCC if-converts and vectorises the gate loops;
 * exception flags are never inspected, NaN and Inf still propagate.
 * No contraction of a * b + c into fused multiply-adds in the gate math:
 * the compiler would choose differently for each copy of a loop (vector
 * body, scalar remainder, the training and inference variants, each
 * instruction set), and a row's bits would depend on which copy ran it.
 * Written out, the same operations run everywhere; the products' chains are
 * fused on purpose, in rc_gemm.c. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("no-trapping-math", "fp-contract=off")
#endif

#include "rc_base.h"
#include "rc_gemm.h"
#include "rc_pool.h"
#include "rc_cells.h"
#include "rc_work.h"

/* Steps per input-projection product: as many as fit in this many elements
 * of the projection (inference memory stays flat in T). */
#define RC_CHUNK_ELEMENTS (1 << 18)

/* Multiply-adds of a call below which it runs on the calling thread alone
 * (about 40 us on one core). */
#define RC_MIN_THREADED_WORK 2e6

static int forced_rg, forced_ug;
static double min_threaded_work = RC_MIN_THREADED_WORK;

void rc_force_split(int row_groups, int unit_groups, double min_work)
{
    forced_rg = row_groups > 0 ? row_groups : 0;
    forced_ug = unit_groups > 0 ? unit_groups : 0;
    min_threaded_work = min_work >= 0 ? min_work : RC_MIN_THREADED_WORK;
}

/* The tape arrays: which columns of an array a thread writes. */
enum { RC_COLS_GATES, RC_COLS_UNITS, RC_COLS_STATE, RC_COLS_OUT2 };
#define RC_TAPE_ARRAYS 5

/* A thread's share of a layer: rows b0 .. b1 of the batch, units u0 .. u1,
 * outputs q0 .. q1 of the second product, state columns r0 .. r1 (the
 * units, or the second product's outputs when they are the state), and its
 * row group. */
typedef struct {
    int group, b0, b1, u0, u1, q0, q1, r0, r1;
} rc_range;

typedef struct {
    rc_layer *L;
    int G, GH, R, P2;           /* P2: outputs of the second product, or 0 */
    int steps;                  /* the layer's T (T names the element type in the loops) */
    int nr;                     /* elements per panel */
    int max_len, prefix, chunk;
    int n_rg, n_ug;             /* row groups x unit groups */
    rc_group *rgroups;          /* n_rg barriers of n_ug threads each */
    rc_group all;               /* the layer's n_rg * n_ug threads */
    /* The products' B operands: forward W_ih^T, W_hh^T, W2^T; backward
     * W_ih, W_hh, W2. pk: which of the six are packed (or have a tail). */
    rc_bmat f_ih, f_hh, f_2, b_ih, b_hh, b_2;
    int pk[6];
    /* Backward: the inputs of the weight gradients as B operands (rows by
     * time), for gradients stored row-major: x, the tape's state
     * before each step, the GRU's r * h, the input of the second product. */
    rc_bmat gx[4];
    int gx_tail[4];
    /* Workspace. */
    void *gi, *gh, *hb1, *sc, *sc2, *bsum, *b2, *zeros;
    void *dgi, *dgh, *d2, *dgs, *d2s, *dsc, *gtmp;
    ptrdiff_t ldg, ld2, gtmp_per_thread;
    ptrdiff_t tape_off[RC_TAPE_ARRAYS], tape_ld[RC_TAPE_ARRAYS];
    int tape_kind[RC_TAPE_ARRAYS];
} rc_ctx;

static int poison;

void rc_set_poison(int on)
{
    poison = on;
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static ptrdiff_t round_up(ptrdiff_t n, ptrdiff_t m) { return (n + m - 1) / m * m; }

/* Time index of row b at step s, or -1 once its sequence is over. */
static inline int rc_time(const long long *len, int T, int reverse, int s, int b)
{
    int n = len ? (int)len[b] : T;
    if (s >= n)
        return -1;
    return reverse ? n - 1 - s : s;
}

/* Whether step s needs a new chunk of the input projection; if so, the
 * times [t0, t0 + count) it must hold. count = 0 before the first step. */
static inline int rc_next_chunk(int s, int T, int chunk, int reverse, int *t0, int *count)
{
    int need = reverse ? T - 1 - s : s;
    if (chunk >= T) {
        if (*count == 0) {
            *t0 = 0;
            *count = T;
            return 1;
        }
        return 0;
    }
    if (need < *t0 || need >= *t0 + *count) {
        if (!reverse) {
            *t0 = s;
            *count = imin(chunk, T - s);
        } else {
            *t0 = imax(0, need - chunk + 1);
            *count = need - *t0 + 1;
        }
        return 1;
    }
    return 0;
}

/* Block lr of n of [0, N) in whole panels. */
static void rc_block(int N, int n, int lr, int dtype, int *j0, int *j1)
{
    const int nr = dtype == RC_F32 ? 32 : 16;
    const int np = (N + nr - 1) / nr;
    *j0 = imin(N, (int)((long long)np * lr / n) * nr);
    *j1 = imin(N, (int)((long long)np * (lr + 1) / n) * nr);
}

/* Row group g's first row. Equal shares of the rows; with sorted lengths
 * (the rows still running are the first ones) equal shares of the work
 * instead, a row weighing the input projection of every step plus its own
 * steps of the recurrent product, so that the group of the short sequences
 * does not idle while the long ones run. Every group keeps one row or more
 * (rc_split gives at most B groups). Which thread computes a row changes no
 * bit of it. */
static int rc_row_bound(const rc_ctx *cx, int g)
{
    const rc_layer *L = cx->L;
    const int B = L->B, n = cx->n_rg;
    if (g <= 0)
        return 0;
    if (g >= n)
        return B;
    if (!cx->prefix || L->lengths == NULL || n > B)
        return (int)((long long)B * g / n);
    const double wi = (double)cx->max_len * L->In, wh = (double)cx->R;
    double total = 0.0, acc = 0.0;
    for (int b = 0; b < B; b++)
        total += wi + wh * (double)L->lengths[b];
    const double target = total * g / n;
    int b = 0;
    while (b < B) {
        const double w = wi + wh * (double)L->lengths[b];
        if (acc + 0.5 * w > target)
            break;
        acc += w;
        b++;
    }
    return imin(imax(b, g), B - (n - g));
}

static rc_range rc_thread_range(const rc_ctx *cx, int lr)
{
    const rc_layer *L = cx->L;
    rc_range r;
    const int rgi = lr / cx->n_ug, ug = lr % cx->n_ug;
    r.group = rgi;
    r.b0 = rc_row_bound(cx, rgi);
    r.b1 = rc_row_bound(cx, rgi + 1);
    rc_block(L->H, cx->n_ug, ug, L->dtype, &r.u0, &r.u1);
    if (cx->P2)
        rc_block(cx->P2, cx->n_ug, ug, L->dtype, &r.q0, &r.q1);
    else
        r.q0 = r.q1 = 0;
    if (cx->R == L->H && !(L->cell == RC_LSTM && L->P) && L->cell != RC_JORDAN) {
        r.r0 = r.u0;
        r.r1 = r.u1;
    } else {
        r.r0 = r.q0;
        r.r1 = r.q1;
    }
    return r;
}

static void rc_sync_layer(rc_ctx *cx)
{
    rc_group_sync(&cx->all);
}

/* Shared set-up before a layer's loop: the panels of the packed operands
 * (split over the layer's threads) and, forward, the bias sums. */
/* The bias each gate column adds (4H entries, zeros beyond the gates):
 * b_ih + b_hh; the Jordan network's b_ih; the reset_after GRU keeps b_in
 * (columns 2H .. 3H) and b_hn (3H .. 4H) apart. */
#define BIAS_SUMS(T)                                                          \
static void bias_sums_##T(const rc_layer *L, int GH, T *bs)                   \
{                                                                             \
    const int H = L->H;                                                       \
    const T *bi = (const T *)L->b_ih, *bh = (const T *)L->b_hh;               \
    memset(bs, 0, (size_t)4 * H * sizeof(T));                                \
    if (L->cell == RC_JORDAN) {                                               \
        if (bi)                                                               \
            memcpy(bs, bi, (size_t)H * sizeof(T));                            \
    } else if (bi) {                                                          \
        for (int j = 0; j < GH; j++)                                          \
            bs[j] = bi[j] + bh[j];                                            \
        if (L->cell == RC_GRU && (L->flags & 1))                              \
            for (int j = 2 * H; j < 3 * H; j++) {                             \
                bs[j] = bi[j];                                                \
                bs[H + j] = bh[j];                                            \
            }                                                                 \
    }                                                                         \
}
BIAS_SUMS(float)
BIAS_SUMS(double)
#undef BIAS_SUMS

static void rc_prepare_common(rc_ctx *cx, int lr, int backward)
{
    const rc_layer *L = cx->L;
    const int n = cx->n_rg * cx->n_ug;
    const rc_bmat *ops[3];
    const int *pk = cx->pk + (backward ? 3 : 0);
    ops[0] = backward ? &cx->b_ih : &cx->f_ih;
    ops[1] = backward ? &cx->b_hh : &cx->f_hh;
    ops[2] = backward ? &cx->b_2 : &cx->f_2;
    for (int k = 0; k < 3; k++) {
        if (!pk[k])
            continue;
        const int np = (ops[k]->N + cx->nr - 1) / cx->nr;
        rc_bmat_pack_panels(L->dtype, ops[k], (int)((long long)np * lr / n),
                            (int)((long long)np * (lr + 1) / n));
    }
    if (backward) {
        for (int k = 0; k < 4; k++)
            if (cx->gx_tail[k] && k % n == lr)
                rc_bmat_pack_panels(L->dtype, &cx->gx[k], 0, (cx->gx[k].N + cx->nr - 1) / cx->nr);
        return;
    }
    if (lr != 0)
        return;
    memset(cx->zeros, 0, (size_t)imax(cx->P2, 1) * (L->dtype == RC_F32 ? 4 : 8));
    /* The bias sums (rank 0; read after the layer's barrier). */
    if (L->dtype == RC_F32)
        bias_sums_float(L, cx->GH, (float *)cx->bsum);
    else
        bias_sums_double(L, cx->GH, (double *)cx->bsum);
}

/* ---- the loops, per element type and instruction set ----------------------------- */

/* Each instruction set's activations (A: their names; MADF / MADD: its
 * multiply-add, fused on every set: C99's fmaf / fma on the portable one, a
 * single instruction where the CPU has one, so that the gates give the same
 * bits under every instruction set and frozen int8 inference, whose
 * products are exact integers, does too) and loops, for float and double. */
#define ISA_TAG _portable
#define MADF(a, b, c) fmaf((a), (b), (c))
#define MADD(a, b, c) fma((a), (b), (c))
#include "rc_isa_impl.h"
#undef ISA_TAG
#undef MADF
#undef MADD

#if RC_X86
/* Each instruction set's instances under its target (GCC's pragma; clang
 * gives every function in the region the attribute). */
#define MADF(a, b, c) __builtin_fmaf((a), (b), (c))
#define MADD(a, b, c) __builtin_fma((a), (b), (c))
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define ISA_TAG _avx2
#include "rc_isa_impl.h"
#undef ISA_TAG
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#endif
#define ISA_TAG _avx512
#include "rc_isa_impl.h"
#undef ISA_TAG
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef MADF
#undef MADD
#endif

typedef void (*rc_loop_fn)(rc_ctx *cx, int lr);

static rc_loop_fn loop_fn(int dtype, int backward)
{
    switch (rc_isa()) {
#if RC_X86
    case RC_ISA_AVX512:
        if (dtype == RC_F32)
            return backward ? backward_f32_avx512 : forward_f32_avx512;
        return backward ? backward_f64_avx512 : forward_f64_avx512;
    case RC_ISA_AVX2:
        if (dtype == RC_F32)
            return backward ? backward_f32_avx2 : forward_f32_avx2;
        return backward ? backward_f64_avx2 : forward_f64_avx2;
#endif
    default:
        if (dtype == RC_F32)
            return backward ? backward_f32_portable : forward_f32_portable;
        return backward ? backward_f64_portable : forward_f64_portable;
    }
}

/* ---- planning -------------------------------------------------------------------- */

static void rc_dims(const rc_layer *L, int *G, int *R, int *P2)
{
    switch (L->cell) {
    case RC_GRU:
        *G = 3;
        break;
    case RC_LSTM:
        *G = 4;
        break;
    default:
        *G = 1;
    }
    *P2 = (L->cell == RC_LSTM || L->cell == RC_JORDAN) ? L->P : 0;
    *R = *P2 ? *P2 : L->H;
}

/* The tape: each array's width, column kind and place (rows by time). */
static ptrdiff_t tape_layout(const rc_layer *L, ptrdiff_t *off, ptrdiff_t *ld, int *kind)
{
    int G, R, P2;
    rc_dims(L, &G, &R, &P2);
    const int H = L->H;
    int w[RC_TAPE_ARRAYS] = {0, 0, 0, 0, 0};
    int k[RC_TAPE_ARRAYS] = {RC_COLS_UNITS, RC_COLS_UNITS, RC_COLS_UNITS, RC_COLS_UNITS,
                             RC_COLS_UNITS};
    switch (L->cell) {
    case RC_GRU:        /* gates r, z, n; aux; h_{t-1} */
        w[0] = 3 * H;
        k[0] = RC_COLS_GATES;
        w[1] = H;
        w[2] = H;
        break;
    case RC_LSTM:       /* gates i, f, g, o; c_{t-1}; tanh(c_t); h_{t-1}; m_t */
        w[0] = 4 * H;
        k[0] = RC_COLS_GATES;
        w[1] = H;
        w[2] = H;
        w[3] = R;
        k[3] = RC_COLS_STATE;
        w[4] = P2 ? H : 0;
        break;
    case RC_RNN:        /* h_t; h_{t-1} */
        w[0] = H;
        w[1] = H;
        break;
    default:            /* Jordan: h_t; y_{t-1}; y_t */
        w[0] = H;
        w[1] = R;
        k[1] = RC_COLS_STATE;
        w[2] = R;
        k[2] = RC_COLS_OUT2;
    }
    const ptrdiff_t TB = (ptrdiff_t)L->T * L->B;
    ptrdiff_t total = 0;
    for (int i = 0; i < RC_TAPE_ARRAYS; i++) {
        if (off) {
            off[i] = w[i] ? total : -1;
            ld[i] = w[i];
            kind[i] = k[i];
        }
        total += TB * w[i];
    }
    return total;
}

ptrdiff_t rc_packed_weight_elems(int N, int K)
{
    return rc_packed_elems(K, N);
}

void rc_pack_weight(int dtype, const void *w, int N, int K, void *dst)
{
    rc_bmat b;
    rc_bmat_init(dtype, &b, 1, K, N, w, K, dst, NULL);
}

ptrdiff_t rc_tape_elems(const rc_layer *L)
{
    return tape_layout(L, NULL, NULL, NULL);
}

void rc_split(const rc_layer *L, int threads, int *row_groups, int *unit_groups)
{
    int G, R, P2;
    rc_dims(L, &G, &R, &P2);
    const int nr = L->dtype == RC_F32 ? 32 : 16;
    const int B = L->B, blocks = (L->H + nr - 1) / nr;
    const double step = (double)B * G * L->H * (R + (P2 ? L->H : 0));
    *row_groups = 1;
    *unit_groups = 1;
    if (threads <= 1 || B < 1)
        return;
    if (forced_rg || forced_ug) {
        int ug = imax(1, imin(forced_ug ? forced_ug : 1, blocks));
        int rg = imax(1, imin(forced_rg ? forced_rg : 1, B));
        while (rg * ug > threads && rg > 1)
            rg--;
        while (rg * ug > threads && ug > 1)
            ug--;
        *row_groups = rg;
        *unit_groups = ug;
        return;
    }
    /* Rows need no barrier: every thread runs its own sequences. They pay
     * while each thread keeps several rows. */
    if (B >= 4 * threads) {
        *row_groups = threads;
        return;
    }
    /* Units: a barrier per step; worth it when a step is large. */
    if (blocks >= 2 && step >= 65536.0) {
        int ug = imin(threads, blocks);
        int rg = imax(1, imin(B, threads / ug));
        *unit_groups = ug;
        *row_groups = rg;
        return;
    }
    if (B >= 2)
        *row_groups = imin(B, threads);
}

/* A workspace carved in 64-byte aligned pieces. */
typedef struct {
    char *base;
    size_t used;
    size_t item;
} rc_carver;

static void *carve(rc_carver *c, ptrdiff_t elems)
{
    void *p = c->base ? c->base + c->used : NULL;
    size_t bytes = (size_t)(elems > 0 ? elems : 0) * c->item;
    c->used += (bytes + 63) / 64 * 64;
    return p;
}

/* Describe the operands and carve the workspace of one layer (c->base NULL:
 * only count). */
static void rc_plan(rc_ctx *cx, rc_layer *L, int backward, int max_threads, rc_carver *c)
{
    int G, R, P2;
    rc_dims(L, &G, &R, &P2);
    const int B = L->B, H = L->H, I = L->In, T = L->T, GH = G * H;
    const int nr = L->dtype == RC_F32 ? 32 : 16;
    const ptrdiff_t TB = (ptrdiff_t)T * B;
    memset(cx, 0, sizeof(*cx));
    cx->L = L;
    cx->steps = T;
    cx->G = G;
    cx->GH = GH;
    cx->R = R;
    cx->P2 = P2;
    cx->nr = nr;
    cx->n_rg = cx->n_ug = 1;
    /* The steps that run, and whether the lengths are sorted so that the
     * running rows are always the first ones. */
    cx->max_len = T;
    cx->prefix = 0;
    if (L->lengths) {
        int m = 0, sorted = 1;
        for (int b = 0; b < B; b++) {
            m = imax(m, (int)L->lengths[b]);
            if (b > 0 && L->lengths[b] > L->lengths[b - 1])
                sorted = 0;
        }
        cx->max_len = m;
        cx->prefix = sorted;
    }
    if (L->reverse && L->lengths)
        cx->chunk = T;
    else
        cx->chunk = imax(1, imin(T, (int)(RC_CHUNK_ELEMENTS / imax(1, B * GH))));
    tape_layout(L, cx->tape_off, cx->tape_ld, cx->tape_kind);
    /* Packing pays when the same operand serves many large products; a
     * weight held row-major (not transposed) is always packed forward. */
    const int big = T >= 8 && (double)B * R * GH >= 2097152.0;
    const rc_weight ws[3] = {L->w_ih, L->w_hh, L->w2};
    const int Ks[3] = {I, R, H}, Ns[3] = {GH, GH, P2};
    rc_bmat *fs[3] = {&cx->f_ih, &cx->f_hh, &cx->f_2};
    rc_bmat *bs[3] = {&cx->b_ih, &cx->b_hh, &cx->b_2};
    for (int k = 0; k < 3; k++) {
        const int K = Ks[k], N = Ns[k];
        if (N == 0 || ws[k].p == NULL)
            continue;
        if (!backward && (ws[k].packed != NULL || ws[k].q != NULL)) {
            rc_bmat_describe(L->dtype, fs[k], 1, K, N, ws[k].p, K, (void *)ws[k].packed, NULL);
            fs[k]->q = ws[k].q;
            cx->pk[k] = 0;
        } else if (!backward && T == 1 && B <= 2 && !ws[k].fortran
                   && rc_gemm_transposed_fast(L->dtype)) {
            /* forward, one step of a few rows: each product is made once,
             * so W^T is read in place rather than packed (the same chains) */
            rc_bmat_transposed(L->dtype, fs[k], K, N, ws[k].p, K);
            cx->pk[k] = 0;
        } else if (!backward) {
            /* forward: B = W^T (K x N) */
            const int pack = !ws[k].fortran || big;
            void *packed = pack ? carve(c, rc_packed_elems(K, N)) : NULL;
            void *tail = !pack && N % nr ? carve(c, rc_tail_elems(K)) : NULL;
            if (ws[k].fortran)
                rc_bmat_describe(L->dtype, fs[k], 0, K, N, ws[k].p, N, packed, tail);
            else
                rc_bmat_describe(L->dtype, fs[k], 1, K, N, ws[k].p, K, packed, tail);
            cx->pk[k] = pack || tail != NULL;
        } else {
            /* backward: B = W (N x K) */
            const int pack = ws[k].fortran || T > 1;
            void *packed = pack ? carve(c, rc_packed_elems(N, K)) : NULL;
            void *tail = !pack && K % nr ? carve(c, rc_tail_elems(N)) : NULL;
            if (ws[k].fortran)
                rc_bmat_describe(L->dtype, bs[k], 1, N, K, ws[k].p, N, packed, tail);
            else
                rc_bmat_describe(L->dtype, bs[k], 0, N, K, ws[k].p, K, packed, tail);
            cx->pk[3 + k] = pack || tail != NULL;
        }
    }
    if (!backward) {
        cx->gi = carve(c, (ptrdiff_t)cx->chunk * B * GH);
        cx->gh = carve(c, (ptrdiff_t)B * GH);
        cx->hb1 = carve(c, (ptrdiff_t)B * R);
        cx->sc = carve(c, (ptrdiff_t)B * H);
        cx->sc2 = carve(c, (ptrdiff_t)B * imax(2 * H, P2));
        cx->bsum = carve(c, 4 * (ptrdiff_t)H);
        cx->zeros = carve(c, imax(P2, 1));
        cx->b2 = L->b2 ? (void *)L->b2 : cx->zeros;
    } else {
        cx->ldg = round_up(GH, nr);
        cx->ld2 = round_up(imax(P2, 1), nr);
        /* By time: the gates' gradients, the reset_after GRU's n gate at
         * the recurrent product, the second product's output gradients; by
         * step (two buffers each): what the step's products read. */
        cx->dgi = carve(c, TB * cx->ldg);
        cx->dgh = L->cell == RC_GRU && (L->flags & 1) ? carve(c, TB * cx->ldg) : NULL;
        cx->d2 = P2 ? carve(c, TB * cx->ld2) : NULL;
        cx->dgs = carve(c, 2 * (ptrdiff_t)B * cx->ldg);
        cx->d2s = P2 ? carve(c, 2 * (ptrdiff_t)B * cx->ld2) : NULL;
        cx->dsc = carve(c, (ptrdiff_t)B * H);
        /* Per thread: the bias sums, and the transposing stage of a weight
         * gradient not stored transposed. */
        /* (a thread's block of columns is at most all of them: the pool may
         * give the call fewer threads than asked) */
        const ptrdiff_t block = round_up(imax(GH, P2), nr);
        cx->gtmp_per_thread = round_up(block, 16);
        cx->gtmp = carve(c, cx->gtmp_per_thread * max_threads);
        /* The gradients' inputs, read in place (a tail panel for a width
         * not a multiple of the panel's) for gradients stored row-major. */
        const int before = L->cell == RC_GRU && !(L->flags & 1);
        const int hp = L->cell == RC_GRU ? 2 : L->cell == RC_LSTM ? 3 : 1;
        const int xk[4] = {-1, hp, before ? 1 : -2, P2 ? (L->cell == RC_LSTM ? 4 : 0) : -2};
        const int xw[4] = {I, R, H, H};
        const rc_weight xg[4] = {L->g_ih, L->g_hh, L->g_hh, L->g2};
        for (int k = 0; k < 4; k++) {
            cx->gx_tail[k] = 0;
            memset(&cx->gx[k], 0, sizeof(rc_bmat));
            if (xk[k] == -2 || xg[k].p == NULL || xg[k].fortran)
                continue;
            const void *src = xk[k] < 0 ? L->x
                              : (const char *)L->tape + cx->tape_off[xk[k]] * c->item;
            void *tail = xw[k] % nr ? carve(c, (ptrdiff_t)nr * TB) : NULL;
            rc_bmat_describe(L->dtype, &cx->gx[k], 0, (int)TB, xw[k], c->base ? src : NULL,
                             xw[k], NULL, tail);
            cx->gx_tail[k] = tail != NULL;
        }
    }
}

/* ---- jobs ------------------------------------------------------------------------- */

typedef struct {
    rc_ctx *cx;                 /* n_layers * n_dirs, layer-major */
    int n_layers, n_dirs, backward;
    int rank0[16], size[16];    /* per direction: its first rank and its threads */
    rc_group *groups;           /* row-group barriers, groups_per_ctx per layer */
    int groups_per_ctx;
    rc_loop_fn fn;
} rc_job;

/* Rank 0, before anyone runs: which ranks take which direction, and how
 * each direction's threads split its layers. */
static void plan_team(rc_job *j, int S)
{
    const int D = j->n_dirs;
    for (int d = 0; d < D; d++) {
        if (S >= D) {
            j->rank0[d] = (int)((long long)S * d / D);
            j->size[d] = (int)((long long)S * (d + 1) / D) - j->rank0[d];
        } else {
            j->rank0[d] = 0;
            j->size[d] = 1;
        }
    }
    for (int k = 0; k < j->n_layers; k++)
        for (int d = 0; d < D; d++) {
            rc_ctx *cx = &j->cx[k * D + d];
            rc_split(cx->L, j->size[d], &cx->n_rg, &cx->n_ug);
            cx->rgroups = j->groups + (ptrdiff_t)(k * D + d) * j->groups_per_ctx;
            for (int g = 0; g < cx->n_rg; g++)
                rc_group_init(&cx->rgroups[g], cx->n_ug, g);
            rc_group_init(&cx->all, cx->n_rg * cx->n_ug, 0);
        }
}

static void job_main(void *arg, rc_team *team, int rank)
{
    rc_job *j = (rc_job *)arg;
    if (rank == 0)
        plan_team(j, rc_team_size(team));
    rc_team_sync(team);
    for (int k = 0; k < j->n_layers; k++) {
        for (int d = 0; d < j->n_dirs; d++) {
            rc_ctx *cx = &j->cx[k * j->n_dirs + d];
            const int lr = rank - j->rank0[d];
            if (lr >= 0 && lr < cx->n_rg * cx->n_ug)
                j->fn(cx, lr);
        }
        if (k + 1 < j->n_layers)
            rc_team_sync(team);
    }
}

static void fill_nan(void *p, size_t bytes, int dtype)
{
    if (dtype == RC_F32) {
        float *f = (float *)p;
        for (size_t i = 0; i < bytes / 4; i++)
            f[i] = NAN;
    } else {
        double *f = (double *)p;
        for (size_t i = 0; i < bytes / 8; i++)
            f[i] = NAN;
    }
}

static int run(rc_layer *layers, int n_layers, int n_dirs, int nthreads, int backward)
{
    if (n_layers <= 0 || n_dirs <= 0 || n_dirs > 16)
        return 0;
    const int n = n_layers * n_dirs;
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > RC_MAX_THREADS)
        nthreads = RC_MAX_THREADS;
    if (rc_backend())
        nthreads = 1;       /* the BLAS runs its own threads: never both */
    /* Small calls keep their plans on the stack; the row-group barriers are
     * allocated only for a call that may run threads. */
    rc_ctx cx_stack[4];
    rc_group groups_stack[4];
    rc_ctx *cx = n <= 4 ? cx_stack : (rc_ctx *)malloc(sizeof(rc_ctx) * n);
    rc_group *groups = nthreads == 1 && n <= 4 ? groups_stack
                       : (rc_group *)malloc(sizeof(rc_group) * RC_MAX_THREADS * n);
    if (cx == NULL || groups == NULL) {
        if (cx != cx_stack)
            free(cx);
        if (groups != groups_stack)
            free(groups);
        return -1;
    }
    /* Sizes: the directions of a layer at once, the layers in turn. */
    size_t need = 0;
    const size_t item = layers[0].dtype == RC_F32 ? 4 : 8;
    for (int k = 0; k < n_layers; k++) {
        size_t layer = 0;
        for (int d = 0; d < n_dirs; d++) {
            rc_carver c = {NULL, 0, item};
            rc_plan(&cx[k * n_dirs + d], &layers[k * n_dirs + d], backward, nthreads, &c);
            layer += c.used;
        }
        need = need > layer ? need : layer;
    }
    char *work = (char *)rc_work_alloc(need ? need : 64);
    if (work == NULL) {
        if (cx != cx_stack)
            free(cx);
        if (groups != groups_stack)
            free(groups);
        return -1;
    }
    if (poison)
        fill_nan(work, need, layers[0].dtype);
    for (int k = 0; k < n_layers; k++) {
        rc_carver c = {work, 0, item};
        for (int d = 0; d < n_dirs; d++)
            rc_plan(&cx[k * n_dirs + d], &layers[k * n_dirs + d], backward, nthreads, &c);
    }
    /* The threads the call can use: each direction's share of nthreads as
     * far as its layers' splits take them (a small call runs on the calling
     * thread alone, without waking the pool). */
    int useful = 0;
    for (int d = 0; d < n_dirs; d++) {
        const int share = nthreads >= n_dirs ? nthreads / n_dirs + (d < nthreads % n_dirs) : 1;
        int most = 1;
        for (int k = 0; k < n_layers; k++) {
            int rg, ug;
            rc_split(&layers[k * n_dirs + d], share, &rg, &ug);
            most = imax(most, rg * ug);
        }
        useful += most;
    }
    /* Waking the pool costs microseconds (tens when its threads sleep):
     * small calls stay on the calling thread. */
    double mads = 0.0;
    for (int i = 0; i < n; i++) {
        const rc_layer *L = &layers[i];
        int G, R, P2;
        rc_dims(L, &G, &R, &P2);
        mads += (double)L->T * L->B * (G * (double)L->H * (L->In + R) + (double)P2 * L->H);
    }
    if (mads < min_threaded_work || nthreads < n_dirs)
        useful = 1;
    nthreads = imin(nthreads, imax(1, useful));
    rc_job j;
    memset(&j, 0, sizeof(j));
    j.cx = cx;
    j.n_layers = n_layers;
    j.n_dirs = n_dirs;
    j.backward = backward;
    j.groups = groups;
    j.groups_per_ctx = groups == groups_stack ? 1 : RC_MAX_THREADS;
    j.fn = loop_fn(layers[0].dtype, backward);
    rc_run(nthreads, job_main, &j);
    rc_work_free(work);
    if (groups != groups_stack)
        free(groups);
    if (cx != cx_stack)
        free(cx);
    return 0;
}

int rc_forward(rc_layer *layers, int n_layers, int n_dirs, int nthreads)
{
    return run(layers, n_layers, n_dirs, nthreads, 0);
}

int rc_backward(rc_layer *layers, int n_dirs, int nthreads)
{
    return run(layers, 1, n_dirs, nthreads, 1);
}
