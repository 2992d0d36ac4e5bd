/* One Elman RNN step over the whole batch, instantiated for T = float and
 * T = double by _rnn_gates.c.
 *
 *   gi    x_t @ W_ih^T, no bias         gh    h @ W_hh^T, no bias
 *   bias  b_ih + b_hh (H), zeros when the module has none
 *   hs    the state after the step, saved for backward (NULL at inference)
 *
 * Backward needs only the new state y = act(pre): tanh' = 1 - y^2 and
 * relu' = [y > 0] (as PyTorch: a NaN output passes no gradient through
 * relu). It takes the carried gradient dh and the output gradient dout of
 * the step and writes dpre, the gradient of the pre-activation, into dgi
 * (indexed by time) and dgh (by step); every other path to h_{t-1} goes
 * through W_hh, which the caller adds with one GEMM for the whole batch.
 *
 * relu is written pre < 0 ? 0 : pre so that a NaN pre-activation stays NaN.
 */

/* ---- one row of H units ------------------------------------------------- */

static RC_INLINE void S(row_tanh)(int H, const T *restrict gi, const T *restrict gh,
                                  const T *restrict bias, T *restrict h, T *restrict out)
{
    for (int j = 0; j < H; j++) {
        T y = TANH(gi[j] + gh[j] + bias[j]);
        h[j] = y;
        out[j] = y;
    }
}

static RC_INLINE void S(row_relu)(int H, const T *restrict gi, const T *restrict gh,
                                  const T *restrict bias, T *restrict h, T *restrict out)
{
    for (int j = 0; j < H; j++) {
        T pre = gi[j] + gh[j] + bias[j];
        T y = pre < 0 ? 0 : pre;
        h[j] = y;
        out[j] = y;
    }
}

static RC_INLINE void S(row_bwd_tanh)(int H, const T *restrict y, const T *restrict dout,
                                      T *restrict dh, T *restrict dgi, T *restrict dgh)
{
    for (int j = 0; j < H; j++) {
        T d = (dh[j] + dout[j]) * (1 - y[j] * y[j]);
        dgi[j] = d;
        dgh[j] = d;
        dh[j] = 0;
    }
}

static RC_INLINE void S(row_bwd_relu)(int H, const T *restrict y, const T *restrict dout,
                                      T *restrict dh, T *restrict dgi, T *restrict dgh)
{
    for (int j = 0; j < H; j++) {
        T d = y[j] > 0 ? dh[j] + dout[j] : 0;
        dgi[j] = d;
        dgh[j] = d;
        dh[j] = 0;
    }
}

/* ---- rows layout: one step over the batch ------------------------------- */

/* gi holds the row block of time t at row (t - t0) * B + b; out rows are
 * (t * B + b) * out_ld; h, gh and hs are (B, H). A row whose sequence is
 * over keeps its state; in training its hs row is zeroed, so that the
 * weight-gradient GEMM over all rows sees finite zeros. */
RC_DISPATCH
void S(rnn_row_fwd)(const rc_steps_t *st, int act, const T *gi, const T *gh, const T *bias,
                    T *h, T *out, ptrdiff_t out_ld, T *hs)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t Hp = H;
    for (int b = 0; b < B; b++) {
        int t = rc_row_time(st, b);
        if (t < 0) {
            if (hs)
                memset(hs + b * Hp, 0, Hp * sizeof(T));
            continue;
        }
        const T *gi_b = gi + ((ptrdiff_t)(t - st->t0) * B + b) * Hp;
        T *out_b = out + ((ptrdiff_t)t * B + b) * out_ld;
        T *h_b = h + b * Hp;
        if (act == RNN_RELU)
            S(row_relu)(H, gi_b, gh + b * Hp, bias, h_b, out_b);
        else
            S(row_tanh)(H, gi_b, gh + b * Hp, bias, h_b, out_b);
        if (hs)
            memcpy(hs + b * Hp, h_b, Hp * sizeof(T));
    }
}

/* hs: the states after this step (B, H); dgi rows (t * B + b) * H, dgh
 * (B, H). A row whose sequence is over gets dgh = 0 and keeps dh. */
RC_DISPATCH
void S(rnn_row_bwd)(const rc_steps_t *st, int act, const T *hs, const T *dout,
                    ptrdiff_t dout_ld, T *dh, T *dgi, T *dgh)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t Hp = H;
    for (int b = 0; b < B; b++) {
        int t = rc_row_time(st, b);
        if (t < 0) {
            memset(dgh + b * Hp, 0, Hp * sizeof(T));
            continue;
        }
        const T *dout_b = dout + ((ptrdiff_t)t * B + b) * dout_ld;
        T *dgi_b = dgi + ((ptrdiff_t)t * B + b) * Hp;
        if (act == RNN_RELU)
            S(row_bwd_relu)(H, hs + b * Hp, dout_b, dh + b * Hp, dgi_b, dgh + b * Hp);
        else
            S(row_bwd_tanh)(H, hs + b * Hp, dout_b, dh + b * Hp, dgi_b, dgh + b * Hp);
    }
}

/* ---- columns layout: one step, transposed ------------------------------- */

/* h_new^T (H, B) = act(gi^T + gh^T + bias); gh has ld = B. */
RC_DISPATCH
void S(rnn_col_fwd)(int B, int H, int act, const T *gi, ptrdiff_t gi_ld, const T *gh,
                    const T *bias, T *h_new, ptrdiff_t hn_ld)
{
    const ptrdiff_t Bp = B;
    for (ptrdiff_t j = 0; j < H; j++) {
        const T *restrict gi_j = gi + j * gi_ld;
        const T *restrict gh_j = gh + j * Bp;
        T *restrict y = h_new + j * hn_ld;
        const T bj = bias[j];
        if (act == RNN_RELU) {
            for (int b = 0; b < B; b++) {
                T pre = gi_j[b] + gh_j[b] + bj;
                y[b] = pre < 0 ? 0 : pre;
            }
        } else {
            for (int b = 0; b < B; b++)
                y[b] = TANH(gi_j[b] + gh_j[b] + bj);
        }
    }
}

/* dpre^T = (dh^T + dout^T) * act'(hs^T) into dgi and dgh (ld dg_ld); dh and
 * dout have ld = B. The caller then sets dh^T = W_hh^T @ dpre^T. */
RC_DISPATCH
void S(rnn_col_bwd)(int B, int H, int act, const T *hs, ptrdiff_t hs_ld, const T *dh,
                    const T *dout, T *dgi, T *dgh, ptrdiff_t dg_ld)
{
    const ptrdiff_t Bp = B;
    for (ptrdiff_t j = 0; j < H; j++) {
        const T *restrict y = hs + j * hs_ld;
        const T *restrict dh_j = dh + j * Bp;
        const T *restrict do_j = dout + j * Bp;
        T *restrict dgi_j = dgi + j * dg_ld;
        T *restrict dgh_j = dgh + j * dg_ld;
        if (act == RNN_RELU) {
            for (int b = 0; b < B; b++) {
                T d = y[b] > 0 ? dh_j[b] + do_j[b] : 0;
                dgi_j[b] = d;
                dgh_j[b] = d;
            }
        } else {
            for (int b = 0; b < B; b++) {
                T d = (dh_j[b] + do_j[b]) * (1 - y[b] * y[b]);
                dgi_j[b] = d;
                dgh_j[b] = d;
            }
        }
    }
}
