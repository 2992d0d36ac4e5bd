/* The time loops of every cell for one element type T and one instruction
 * set (rc_cells.c includes this once per pair, under that set's target
 * options, with T, S(name), DT (RC_F32 / RC_F64), SIGMOID and TANH).
 *
 * S(forward) and S(backward) run one layer and one direction on one thread
 * of the layer's team (lr: its rank among the layer's threads); rc_cells.c
 * plans the call (rc_ctx) and carves its workspace.
 *
 * Per step, a thread computes the gate columns of its units for its rows
 * (the products, then the gate math) and writes its units of the new state
 * into the state's second buffer (the buffers alternate, so no thread
 * overwrites a state another still reads); threads that share rows meet at
 * the end of the step. The tape and the gradients of the input side are
 * indexed by time (rows t * B + b); what a step's product reads lives in
 * per-step scratch arrays (rows b). */

#include "rc_gates_impl.h"

#define ROW(p, r, ld) ((T *)(p) + (ptrdiff_t)(r) * (ld))
#define CROW(p, r, ld) ((const T *)(p) + (ptrdiff_t)(r) * (ld))

/* d = (a + b) * act'(y) (the Jordan network's output layer). */
static RC_ALWAYS_INLINE void
S(act_grad)(int act, int n, const T *RC_RESTRICT y, const T *RC_RESTRICT a,
            const T *RC_RESTRICT b, T *RC_RESTRICT d)
{
    switch (act) {
    case RC_TANH:
        for (int j = 0; j < n; j++)
            d[j] = (a[j] + b[j]) * (1 - y[j] * y[j]);
        break;
    case RC_RELU:
        for (int j = 0; j < n; j++)
            d[j] = y[j] > 0 ? a[j] + b[j] : 0;
        break;
    case RC_SIGMOID:
        for (int j = 0; j < n; j++)
            d[j] = (a[j] + b[j]) * (y[j] * (1 - y[j]));
        break;
    default:
        for (int j = 0; j < n; j++)
            d[j] = a[j] + b[j];
    }
}

/* d *= act'(y) (the Jordan network's hidden layer). */
static RC_ALWAYS_INLINE void
S(act_scale)(int act, int n, const T *RC_RESTRICT y, T *RC_RESTRICT d)
{
    switch (act) {
    case RC_TANH:
        for (int j = 0; j < n; j++)
            d[j] *= 1 - y[j] * y[j];
        break;
    case RC_RELU:
        for (int j = 0; j < n; j++)
            d[j] = y[j] > 0 ? d[j] : 0;
        break;
    case RC_SIGMOID:
        for (int j = 0; j < n; j++)
            d[j] *= y[j] * (1 - y[j]);
        break;
    default:
        break;
    }
}

/* C[rows, columns g * w + u0 .. g * w + u1 for g0 <= g < g1] = A @ B: the
 * gate columns of a thread's units. */
static void S(gate_gemm)(int M, int K, const T *a, ptrdiff_t lda, const rc_bmat *b, int w,
                         int g0, int g1, int u0, int u1, T *c, ptrdiff_t ldc)
{
    if (M <= 0 || u1 <= u0)
        return;
    if (u0 == 0 && u1 == w) {
        rc_gemm(DT, M, K, g0 * w, (g1 - g0) * w, a, lda, 1, b, 0, 0, c + g0 * w, ldc);
        return;
    }
    for (int g = g0; g < g1; g++)
        rc_gemm(DT, M, K, g * w + u0, u1 - u0, a, lda, 1, b, 0, 0, c + g * w + u0, ldc);
}

/* Zero a thread's columns of tape array k at row r (a row of a finished
 * sequence: the weight-gradient products read finite zeros there). */
static void S(zero_tape_row)(const rc_ctx *cx, int k, T *p, ptrdiff_t r, const rc_range *rg)
{
    const int H = cx->L->H;
    T *row = ROW(p, r, cx->tape_ld[k]);
    switch (cx->tape_kind[k]) {
    case RC_COLS_GATES:
        for (int g = 0; g < cx->G; g++)
            memset(row + g * H + rg->u0, 0, (size_t)(rg->u1 - rg->u0) * sizeof(T));
        break;
    case RC_COLS_UNITS:
        memset(row + rg->u0, 0, (size_t)(rg->u1 - rg->u0) * sizeof(T));
        break;
    case RC_COLS_STATE:
        memset(row + rg->r0, 0, (size_t)(rg->r1 - rg->r0) * sizeof(T));
        break;
    default:
        memset(row + rg->q0, 0, (size_t)(rg->q1 - rg->q0) * sizeof(T));
    }
}

/* ---- forward ------------------------------------------------------------------- */

void S(forward)(rc_ctx *cx, int lr)
{
    rc_layer *L = cx->L;
    const int B = L->B, H = L->H, I = L->In, T_ = cx->steps, G = cx->G, GH = cx->GH, R = cx->R;
    const int P2 = cx->P2, cell = L->cell, train = L->tape != NULL;
    const int reverse = L->reverse, prefix = cx->prefix;
    const long long *len = L->lengths;
    const rc_range rg = rc_thread_range(cx, lr);
    const int b0 = rg.b0, b1 = rg.b1, u0 = rg.u0, u1 = rg.u1, q0 = rg.q0, q1 = rg.q1;
    const int r0 = rg.r0, r1 = rg.r1, nu = u1 - u0, nq = q1 - q0;
    rc_group *grp = &cx->rgroups[rg.group];
    const int sync = cx->n_ug > 1;
    const int before = cell == RC_GRU && !(L->flags & 1);
    const int act = L->flags & 15, out_act = (L->flags >> 4) & 15;
    const ptrdiff_t out_ld = L->out_ld;

    T *hb[2];
    hb[0] = (T *)L->h;
    hb[1] = (T *)cx->hb1;
    T *gi = (T *)cx->gi, *gh = (T *)cx->gh, *sc = (T *)cx->sc, *sc2 = (T *)cx->sc2;
    const T *bsum = (const T *)cx->bsum, *b2 = (const T *)cx->b2, *zeros = (const T *)cx->zeros;
    /* The tape arrays, rows by time (rc_cells.c: tape_layout). */
    T *tp[RC_TAPE_ARRAYS];
    for (int k = 0; k < RC_TAPE_ARRAYS; k++)
        tp[k] = train && cx->tape_off[k] >= 0 ? (T *)L->tape + cx->tape_off[k] : NULL;

    /* Set-up shared by the layer's threads (packing, bias sums), then the
     * state's second buffer: a row that never runs keeps its state there. */
    rc_prepare_common(cx, lr, 0);
    for (int b = b0; b < b1; b++)
        memcpy(ROW(hb[1], b, R) + r0, CROW(hb[0], b, R) + r0, (size_t)(r1 - r0) * sizeof(T));
    /* Tape rows of padded times (no step writes them) hold finite zeros for
     * the weight-gradient products. */
    if (train && len != NULL)
        for (int b = b0; b < b1; b++)
            for (int t = (int)len[b]; t < cx->max_len; t++)
                for (int k = 0; k < RC_TAPE_ARRAYS; k++)
                    if (tp[k] != NULL)
                        S(zero_tape_row)(cx, k, tp[k], (ptrdiff_t)t * B + b, &rg);
    rc_sync_layer(cx);

    int t0 = 0, count = 0, n_act = b1 - b0;
    for (int s = 0; s < cx->max_len; s++) {
        T *hc = hb[s & 1], *hn = hb[(s + 1) & 1];
        /* The input projection of the chunk of times step s needs (gi holds
         * times t0 .. t0 + count). */
        if (rc_next_chunk(s, T_, cx->chunk, reverse, &t0, &count)) {
            if (b0 == 0 && b1 == B)
                S(gate_gemm)(count * B, I, (const T *)L->x + (ptrdiff_t)t0 * B * I, I,
                             &cx->f_ih, H, 0, G, u0, u1, gi, GH);
            else
                for (int t = 0; t < count; t++)
                    S(gate_gemm)(b1 - b0, I,
                                 (const T *)L->x + ((ptrdiff_t)(t0 + t) * B + b0) * I, I,
                                 &cx->f_ih, H, 0, G, u0, u1,
                                 ROW(gi, (ptrdiff_t)t * B + b0, GH), GH);
        }
        /* Sorted lengths: the products cover only the rows still running. */
        if (prefix)
            while (n_act > 0 && len[b0 + n_act - 1] <= s)
                n_act--;
        const int nb = n_act;
        /* Phase 1: the recurrent product of the thread's gate columns, then
         * the gates. */
        S(gate_gemm)(nb, R, ROW(hc, b0, R), R, &cx->f_hh, H, 0, before ? 2 : G, u0, u1,
                     ROW(gh, b0, GH), GH);
        for (int b = b0; b < b1; b++) {
            const int t = rc_time(len, T_, reverse, s, b);
            if (t < 0)
                continue;
            const ptrdiff_t srow = (ptrdiff_t)t * B + b;      /* the tape's row */
            const T *gir = ROW(gi, (ptrdiff_t)(t - t0) * B + b, GH) + u0;
            const T *ghr = ROW(gh, b, GH) + u0;
            T *outr = (T *)L->out + ((ptrdiff_t)t * B + b) * out_ld;
            const T *hpr = ROW(hc, b, R);
            switch (cell) {
            case RC_GRU:
                if (!before) {
                    /* (train as a constant: the loop has no branch to vectorise) */
                    if (train) {
                        T *g = ROW(tp[0], srow, GH) + u0;
                        S(gru_fwd_after)(nu, gir, gir + H, gir + 2 * H, ghr, ghr + H,
                                         ghr + 2 * H, bsum + u0, bsum + H + u0,
                                         bsum + 2 * H + u0, bsum + 3 * H + u0, hpr + u0,
                                         ROW(hn, b, R) + u0, outr + u0, g, g + H, g + 2 * H,
                                         ROW(tp[1], srow, H) + u0, ROW(tp[2], srow, H) + u0,
                                         1);
                    } else {
                        S(gru_fwd_after)(nu, gir, gir + H, gir + 2 * H, ghr, ghr + H,
                                         ghr + 2 * H, bsum + u0, bsum + H + u0,
                                         bsum + 2 * H + u0, bsum + 3 * H + u0, hpr + u0,
                                         ROW(hn, b, R) + u0, outr + u0, NULL, NULL, NULL, NULL,
                                         NULL, 0);
                    }
                } else {
                    /* r * h goes to the scratch rows the second product reads */
                    T *g = train ? ROW(tp[0], srow, GH) + u0 : ROW(sc2, b, 2 * H) + u0;
                    T *rh = ROW(sc, b, H) + u0;
                    S(gru_fwd_rz)(nu, gir, gir + H, ghr, ghr + H, bsum + u0, bsum + H + u0,
                                  hpr + u0, g, g + H, rh);
                    if (train)
                        memcpy(ROW(tp[1], srow, H) + u0, rh, (size_t)nu * sizeof(T));
                }
                break;
            case RC_LSTM: {
                T *g = train ? ROW(tp[0], srow, GH) + u0 : NULL;
                T *m = P2 ? ROW(sc, b, H) + u0 : ROW(hn, b, R) + u0;
#define LSTM_FWD(TRAIN, OUT)                                                            \
    S(lstm_fwd)(nu, gir, gir + H, gir + 2 * H, gir + 3 * H, ghr, ghr + H, ghr + 2 * H,          \
                ghr + 3 * H, bsum + u0, bsum + H + u0, bsum + 2 * H + u0, bsum + 3 * H + u0,     \
                ROW(L->c, b, H) + u0, m, outr + u0, g, TRAIN ? g + H : NULL,                  \
                TRAIN ? g + 2 * H : NULL, TRAIN ? g + 3 * H : NULL,                          \
                TRAIN ? ROW(tp[1], srow, H) + u0 : NULL,                                     \
                TRAIN ? ROW(tp[2], srow, H) + u0 : NULL, TRAIN, OUT)
                if (train) {
                    if (P2)
                        LSTM_FWD(1, 0);
                    else
                        LSTM_FWD(1, 1);
                } else {
                    if (P2)
                        LSTM_FWD(0, 0);
                    else
                        LSTM_FWD(0, 1);
                }
#undef LSTM_FWD
                if (train && P2)
                    memcpy(ROW(tp[4], srow, H) + u0, m, (size_t)nu * sizeof(T));
                if (train)
                    memcpy(ROW(tp[3], srow, R) + r0, hpr + r0, (size_t)(r1 - r0) * sizeof(T));
                break;
            }
            case RC_RNN:
                S(act_fwd)(act, nu, gir, ghr, bsum + u0, ROW(hn, b, R) + u0, outr + u0, 1);
                if (train) {
                    memcpy(ROW(tp[0], srow, H) + u0, ROW(hn, b, R) + u0,
                           (size_t)nu * sizeof(T));
                    memcpy(ROW(tp[1], srow, H) + u0, hpr + u0, (size_t)nu * sizeof(T));
                }
                break;
            default: {  /* Jordan: h_t = act(x W_ih^T + y_{t-1} W_yh^T + b_ih) */
                T *hj = ROW(sc, b, H) + u0;
                S(act_fwd)(act, nu, gir, ghr, bsum + u0, hj, NULL, 0);
                if (train) {
                    memcpy(ROW(tp[0], srow, H) + u0, hj, (size_t)nu * sizeof(T));
                    memcpy(ROW(tp[1], srow, R) + r0, hpr + r0, (size_t)(r1 - r0) * sizeof(T));
                }
            }
            }
        }
        /* Phase 2, for the cells with a second product per step: it reads
         * every unit of phase 1's result. */
        if (before || P2) {
            if (sync)
                rc_group_sync(grp);
            if (before) {
                /* gh_n = (r * h) @ W_hn^T, rows of W_hh 2H .. 3H */
                S(gate_gemm)(nb, H, ROW(sc, b0, H), H, &cx->f_hh, H, 2, 3, u0, u1,
                             ROW(gh, b0, GH), GH);
            } else if (nq > 0) {
                /* LSTM: p = m @ W_hr^T; Jordan: z = h_t @ W_hy^T (own outputs) */
                rc_gemm(DT, nb, H, q0, nq, ROW(sc, b0, H), H, 1, &cx->f_2, 0, 0,
                        ROW(sc2, b0, P2) + q0, P2);
            }
            for (int b = b0; b < b1; b++) {
                const int t = rc_time(len, T_, reverse, s, b);
                if (t < 0)
                    continue;
                const ptrdiff_t srow = (ptrdiff_t)t * B + b;  /* the tape's row */
                T *outr = (T *)L->out + ((ptrdiff_t)t * B + b) * out_ld;
                if (before) {
                    const T *gir = ROW(gi, (ptrdiff_t)(t - t0) * B + b, GH) + u0;
                    const T *z = (train ? ROW(tp[0], srow, GH) : ROW(sc2, b, 2 * H)) + H + u0;
                    if (train)
                        S(gru_fwd_n)(nu, gir + 2 * H, ROW(gh, b, GH) + 2 * H + u0,
                                     bsum + 2 * H + u0, z, ROW(hc, b, R) + u0,
                                     ROW(hn, b, R) + u0, outr + u0,
                                     ROW(tp[0], srow, GH) + 2 * H + u0,
                                     ROW(tp[2], srow, H) + u0, 1);
                    else
                        S(gru_fwd_n)(nu, gir + 2 * H, ROW(gh, b, GH) + 2 * H + u0,
                                     bsum + 2 * H + u0, z, ROW(hc, b, R) + u0,
                                     ROW(hn, b, R) + u0, outr + u0, NULL, NULL, 0);
                } else if (cell == RC_LSTM) {
                    const T *p = ROW(sc2, b, P2) + q0;
                    memcpy(ROW(hn, b, R) + q0, p, (size_t)nq * sizeof(T));
                    memcpy(outr + q0, p, (size_t)nq * sizeof(T));
                } else {
                    /* Jordan: y_t = out_act(z + b_hy) */
                    T *yn = ROW(hn, b, R) + q0;
                    S(act_fwd)(out_act, nq, ROW(sc2, b, P2) + q0, zeros, b2 + q0, yn,
                               outr + q0, 1);
                    if (train)
                        memcpy(ROW(tp[2], srow, R) + q0, yn, (size_t)nq * sizeof(T));
                }
            }
        }
        if (sync)
            rc_group_sync(grp);
    }
    /* Each row's final state is in the buffer its last step wrote. */
    for (int b = b0; b < b1; b++) {
        const int steps = len ? (int)len[b] : T_;
        if (steps & 1)
            memcpy(ROW(hb[0], b, R) + r0, CROW(hb[1], b, R) + r0,
                   (size_t)(r1 - r0) * sizeof(T));
    }
}

/* ---- backward ------------------------------------------------------------------- */

/* A weight gradient G (Nw x Kw) += D^T @ X over the rows r < M, for rows
 * j0 .. j1 of G: each element one chain over r that goes on from the
 * gradient's value. G is stored row-major, or transposed when fortran (then
 * G^T += X^T @ D, columns j0 .. j1); gx: X as a B operand for the
 * row-major case. */
static void S(weight_grad)(rc_weight g, int Kw, int Nw, int M, const T *x, ptrdiff_t ldx,
                           const rc_bmat *gx, const T *d, ptrdiff_t ldd, int j0, int j1)
{
    if (g.p == NULL || j1 <= j0 || Kw <= 0)
        return;
    T *gp = (T *)g.p;
    if (!g.fortran) {
        /* C[j, k] = G[j, k]: A = D^T (a[j, r] = d[r * ldd + j]), B = X */
        rc_gemm(DT, j1 - j0, M, 0, Kw, d + j0, 1, ldd, gx, 0, 1, gp + (ptrdiff_t)j0 * Kw, Kw);
        return;
    }
    rc_bmat bd;          /* D, its rows padded to whole panels */
    bd.p = d;
    bd.pstride = RC_PANEL_BYTES / (int)sizeof(T);
    bd.ld = ldd;
    bd.tail = NULL;             /* the rows of D are padded to whole panels */
    bd.K = M;
    bd.N = Nw;
    bd.raw = d;
    bd.raw_ld = ldd;
    bd.raw_trans = 0;
    bd.tr = 0;
    bd.q = NULL;
    rc_gemm(DT, Kw, M, j0, j1 - j0, x, 1, ldx, &bd, 0, 1, gp + j0, Nw);
}

/* gb[j] += sum over rows r < M of D[r, j], j0 <= j < j1 (the sum in row
 * order, then added). */
static void S(bias_grad)(T *gb, int M, const T *d, ptrdiff_t ldd, int j0, int j1, T *acc)
{
    if (gb == NULL || j1 <= j0)
        return;
    for (int j = j0; j < j1; j++)
        acc[j - j0] = 0;
    for (int r = 0; r < M; r++) {
        const T *RC_RESTRICT dr = CROW(d, r, ldd) + j0;
        T *RC_RESTRICT a = acc;
        for (int j = 0; j < j1 - j0; j++)
            a[j] += dr[j];
    }
    for (int j = j0; j < j1; j++)
        gb[j] += acc[j - j0];
}

/* The weight and bias gradients and dx, after the loop: each thread takes
 * a block of columns of every gradient and a block of rows of dx. */
static void S(gradients)(rc_ctx *cx, int lr)
{
    rc_layer *L = cx->L;
    const int B = L->B, H = L->H, I = L->In, GH = cx->GH, R = cx->R, P2 = cx->P2;
    const int n = cx->n_rg * cx->n_ug, cell = L->cell;
    const int before = cell == RC_GRU && !(L->flags & 1);
    const int M = cx->max_len * B;
    const ptrdiff_t ldg = cx->ldg, ld2 = cx->ld2;
    const T *dgi = (const T *)cx->dgi, *dgh = (const T *)cx->dgh, *d2 = (const T *)cx->d2;
    T *tmp = (T *)cx->gtmp + (ptrdiff_t)lr * cx->gtmp_per_thread;
    const T *tp[RC_TAPE_ARRAYS];
    for (int k = 0; k < RC_TAPE_ARRAYS; k++)
        tp[k] = cx->tape_off[k] < 0 ? NULL : (const T *)L->tape + cx->tape_off[k];
    int j0, j1;

    /* dx += dgi @ W_ih, a block of rows (by time) */
    {
        const int i0 = (int)((long long)M * lr / n), i1 = (int)((long long)M * (lr + 1) / n);
        if (i1 > i0)
            rc_gemm(DT, i1 - i0, GH, 0, I, CROW(dgi, i0, ldg), ldg, 1, &cx->b_ih, 0, 1,
                    ROW(L->dx, i0, I), I);
    }
    /* W_ih: X = x (by time), D = dgi */
    rc_block(GH, n, lr, DT, &j0, &j1);
    S(weight_grad)(L->g_ih, I, GH, M, (const T *)L->x, I, &cx->gx[0], dgi, ldg, j0, j1);
    /* the recurrent weight: X = the state before each step, D = dgi (the
     * reset_after GRU's n gate: dgh) */
    const int hp = cell == RC_GRU ? 2 : cell == RC_LSTM ? 3 : 1;
    const int jn = j0 > 2 * H ? j0 : 2 * H;         /* the GRU's n columns: jn .. j1 */
    if (cell == RC_GRU) {
        /* W_hr, W_hz from h_{t-1}; W_hn from r * h_{t-1} (reset_before) or
         * h_{t-1} */
        S(weight_grad)(L->g_hh, R, GH, M, tp[hp], R, &cx->gx[1], dgi, ldg, j0,
                       j1 < 2 * H ? j1 : 2 * H);
        if (before)
            S(weight_grad)(L->g_hh, R, GH, M, tp[1], H, &cx->gx[2], dgi, ldg, jn, j1);
        else
            S(weight_grad)(L->g_hh, R, GH, M, tp[hp], R, &cx->gx[1], dgh, ldg, jn, j1);
    } else {
        S(weight_grad)(L->g_hh, R, GH, M, tp[hp], R, &cx->gx[1], dgi, ldg, j0, j1);
    }
    T *acc = tmp;
    if (cell == RC_JORDAN) {
        S(bias_grad)((T *)L->gb_ih, M, dgi, ldg, j0, j1, acc);
    } else if (L->gb_ih != NULL && j1 > j0) {
        /* b_ih and b_hh have the same gradient (but the reset_after GRU's
         * b_hn): one sum for both */
        S(bias_grad)((T *)L->gb_ih, M, dgi, ldg, j0, j1, acc);
        const int jh = cell == RC_GRU && !before ? (j1 < jn ? j1 : jn) : j1;
        for (int j = j0; j < jh; j++)
            ((T *)L->gb_hh)[j] += acc[j - j0];
        if (cell == RC_GRU && !before)
            S(bias_grad)((T *)L->gb_hh, M, dgh, ldg, jn, j1, acc);
    }
    if (P2) {
        /* LSTM: W_hr from m and dL/dh_t; Jordan: W_hy from h_t and dz */
        rc_block(P2, n, lr, DT, &j0, &j1);
        S(weight_grad)(L->g2, H, P2, M, tp[cell == RC_LSTM ? 4 : 0], H, &cx->gx[3], d2, ld2,
                       j0, j1);
        if (cell == RC_JORDAN)
            S(bias_grad)((T *)L->gb2, M, d2, ld2, j0, j1, acc);
    }
}

void S(backward)(rc_ctx *cx, int lr)
{
    rc_layer *L = cx->L;
    const int B = L->B, H = L->H, T_ = cx->steps, G = cx->G, GH = cx->GH, R = cx->R;
    const int P2 = cx->P2, cell = L->cell;
    const int reverse = L->reverse, prefix = cx->prefix;
    const long long *len = L->lengths;
    const rc_range rg = rc_thread_range(cx, lr);
    const int b0 = rg.b0, b1 = rg.b1, u0 = rg.u0, u1 = rg.u1, q0 = rg.q0, q1 = rg.q1;
    const int r0 = rg.r0, r1 = rg.r1, nu = u1 - u0, nq = q1 - q0;
    rc_group *grp = &cx->rgroups[rg.group];
    const int sync = cx->n_ug > 1;
    const int before = cell == RC_GRU && !(L->flags & 1);
    const int after = cell == RC_GRU && (L->flags & 1);
    const int act = L->flags & 15, out_act = (L->flags >> 4) & 15;
    const ptrdiff_t ldg = cx->ldg, ld2 = cx->ld2, dout_ld = L->dout_ld;
    /* By time: dgi (the gates' gradients, which are also those of the
     * recurrent product but for the reset_after GRU's n gate: dgh), d2.
     * Per step (rows b; two buffers that alternate, so that no thread
     * overwrites what another's product still reads): dgs, d2s. */
    T *dgi = (T *)cx->dgi, *dgh = (T *)cx->dgh, *d2 = (T *)cx->d2, *dsc = (T *)cx->dsc;
    T *dh = (T *)L->dh;
    const T *tp[RC_TAPE_ARRAYS];
    for (int k = 0; k < RC_TAPE_ARRAYS; k++)
        tp[k] = cx->tape_off[k] < 0 ? NULL : (const T *)L->tape + cx->tape_off[k];

    rc_prepare_common(cx, lr, 1);
    /* Gradients of padded times (no step visits them) are zero. */
    if (len != NULL)
        for (int b = b0; b < b1; b++)
            for (int t = (int)len[b]; t < cx->max_len; t++) {
                const ptrdiff_t trow = (ptrdiff_t)t * B + b;
                for (int g = 0; g < G; g++)
                    memset(ROW(dgi, trow, ldg) + g * H + u0, 0, (size_t)nu * sizeof(T));
                if (after)
                    memset(ROW(dgh, trow, ldg) + 2 * H + u0, 0, (size_t)nu * sizeof(T));
                if (P2)
                    memset(ROW(d2, trow, ld2) + q0, 0, (size_t)nq * sizeof(T));
            }
    rc_sync_layer(cx);

    int n_act = prefix ? 0 : b1 - b0;
    for (int s = cx->max_len - 1; s >= 0; s--) {
        if (prefix)
            while (b0 + n_act < b1 && len[b0 + n_act] > s)
                n_act++;
        const int nb = n_act;
        T *dgs = ROW(cx->dgs, (ptrdiff_t)(s & 1) * B, ldg);
        if (P2) {
            /* The gradient at the second product's output, own columns:
             * LSTM dL/dh_t = dh + dout; Jordan dz = (dy + dout) out_act'(y_t).
             * The state's gradient restarts from the products below. */
            T *d2s = ROW(cx->d2s, (ptrdiff_t)(s & 1) * B, ld2);
            for (int b = b0; b < b1; b++) {
                const int t = rc_time(len, T_, reverse, s, b);
                T *d = ROW(d2s, b, ld2) + q0;
                if (t < 0) {
                    memset(d, 0, (size_t)nq * sizeof(T));
                    continue;
                }
                const ptrdiff_t trow = (ptrdiff_t)t * B + b;
                const T *dor = (const T *)L->dout + trow * dout_ld + q0;
                T *dhr = ROW(dh, b, R) + q0;
                if (cell == RC_LSTM)
                    for (int j = 0; j < nq; j++)
                        d[j] = dhr[j] + dor[j];
                else
                    S(act_grad)(out_act, nq, CROW(tp[2], trow, R) + q0, dhr, dor, d);
                memset(dhr, 0, (size_t)nq * sizeof(T));
                memcpy(ROW(d2, trow, ld2) + q0, d, (size_t)nq * sizeof(T));
            }
            if (sync)
                rc_group_sync(grp);
            /* dm (LSTM) or da before act' (Jordan) = d2 @ W2, own units */
            S(gate_gemm)(nb, P2, ROW(d2s, b0, ld2), ld2, &cx->b_2, H, 0, 1, u0, u1,
                         ROW(dsc, b0, H), H);
        }
        /* The gates' backward, own units. */
        for (int b = b0; b < b1; b++) {
            const int t = rc_time(len, T_, reverse, s, b);
            T *dghr = ROW(dgs, b, ldg);
            if (t < 0) {
                for (int g = 0; g < G; g++)
                    memset(dghr + g * H + u0, 0, (size_t)nu * sizeof(T));
                continue;
            }
            const ptrdiff_t trow = (ptrdiff_t)t * B + b;
            T *dgir = ROW(dgi, trow, ldg) + u0;
            const T *dor = (const T *)L->dout + trow * dout_ld;
            T *dhr = ROW(dh, b, R);
            switch (cell) {
            case RC_GRU: {
                const T *g = CROW(tp[0], trow, GH) + u0;
                if (!before) {
                    S(gru_bwd_after)(nu, g, g + H, g + 2 * H, CROW(tp[1], trow, H) + u0,
                                     CROW(tp[2], trow, H) + u0, dor + u0, dhr + u0, dgir,
                                     dgir + H, dgir + 2 * H, dghr + u0, dghr + H + u0,
                                     dghr + 2 * H + u0);
                    memcpy(ROW(dgh, trow, ldg) + 2 * H + u0, dghr + 2 * H + u0,
                           (size_t)nu * sizeof(T));
                } else {
                    S(gru_bwd_n)(nu, g + H, g + 2 * H, CROW(tp[2], trow, H) + u0, dor + u0,
                                 dhr + u0, dgir + H, dgir + 2 * H, dghr + H + u0,
                                 dghr + 2 * H + u0);
                }
                break;
            }
            case RC_LSTM: {
                const T *g = CROW(tp[0], trow, GH) + u0;
                T *dm = ROW(dsc, b, H) + u0;
                if (!P2) {
                    /* dm = dh + dout; dh restarts from the product below */
                    for (int j = 0; j < nu; j++) {
                        dm[j] = dhr[u0 + j] + dor[u0 + j];
                        dhr[u0 + j] = 0;
                    }
                }
                S(lstm_bwd)(nu, dm, g, g + H, g + 2 * H, g + 3 * H, CROW(tp[1], trow, H) + u0,
                            CROW(tp[2], trow, H) + u0, ROW(L->dc, b, H) + u0, dgir, dgir + H,
                            dgir + 2 * H, dgir + 3 * H, dghr + u0, dghr + H + u0,
                            dghr + 2 * H + u0, dghr + 3 * H + u0);
                break;
            }
            case RC_RNN:
                S(act_bwd)(act, nu, CROW(tp[0], trow, H) + u0, dhr + u0, dor + u0, dgir,
                           dghr + u0);
                memset(dhr + u0, 0, (size_t)nu * sizeof(T));
                break;
            default: {  /* Jordan: da = (dz @ W_hy) * act'(h_t) */
                T *da = ROW(dsc, b, H) + u0;
                S(act_scale)(act, nu, CROW(tp[0], trow, H) + u0, da);
                memcpy(dgir, da, (size_t)nu * sizeof(T));
                memcpy(dghr + u0, da, (size_t)nu * sizeof(T));
            }
            }
        }
        if (sync)
            rc_group_sync(grp);
        /* Back to the state: dh (own state columns) += dgs @ W_hh. */
        if (before) {
            /* drh = dgh_n @ W_hn; then the r gate; then the r and z rows */
            if (nb > 0 && nu > 0)
                rc_gemm(DT, nb, H, u0, nu, dgs + (ptrdiff_t)b0 * ldg + 2 * H, ldg, 1,
                        &cx->b_hh, 2 * H, 0, ROW(dsc, b0, H) + u0, H);
            for (int b = b0; b < b1; b++) {
                const int t = rc_time(len, T_, reverse, s, b);
                if (t < 0)
                    continue;
                const ptrdiff_t trow = (ptrdiff_t)t * B + b;
                const T *g = CROW(tp[0], trow, GH) + u0;
                S(gru_bwd_rz)(nu, g, g + H, CROW(tp[2], trow, H) + u0, ROW(dsc, b, H) + u0,
                              ROW(dh, b, R) + u0, ROW(dgi, trow, ldg) + u0,
                              ROW(dgs, b, ldg) + u0);
            }
            if (sync)
                rc_group_sync(grp);
            if (nb > 0 && r1 > r0)
                rc_gemm(DT, nb, 2 * H, r0, r1 - r0, dgs + (ptrdiff_t)b0 * ldg, ldg, 1,
                        &cx->b_hh, 0, 1, ROW(dh, b0, R) + r0, R);
        } else if (nb > 0 && r1 > r0) {
            rc_gemm(DT, nb, GH, r0, r1 - r0, dgs + (ptrdiff_t)b0 * ldg, ldg, 1, &cx->b_hh,
                    0, 1, ROW(dh, b0, R) + r0, R);
        }
    }
    rc_sync_layer(cx);
    S(gradients)(cx, lr);
}

#undef ROW
#undef CROW
