/* Gate math of one LSTM step over the whole batch, instantiated for T = float
 * and T = double by _lstm_gates.c. Gate order i, f, g, o in every 4H block:
 *
 *   i = sigmoid(.)  f = sigmoid(.)  g = tanh(.)  o = sigmoid(.)
 *   c_t = f c_{t-1} + i g,   m_t = o tanh(c_t),
 *   h_t = m_t (no projection) or m_t @ W_hr^T (the caller's GEMM)
 *
 *   gi    x_t @ W_ih^T (row (t - t0) * B + b), gh  h @ W_hh^T (row b),
 *   bias  b_ih + b_hh (4H; zeros when the module has none)
 *   tape (rows by time index, t * B + b): gates i, f, g, o (4H), cprev
 *   c_{t-1} (H), tc tanh(c_t) (H), hprev h_{t-1} (R), m_tape m_t (H, with a
 *   projection only)
 *
 * A row whose sequence is over at step s is skipped (its tape rows are left
 * as they are: the caller zeroes the tape rows of padded times). Backward
 * takes the carried gradients dh (R) and dc (H), writes the pre-activation
 * gate gradients to dgi (by time) and dg_step (row b, zero for a finished
 * row), sets dh of the running rows to zero and leaves dc = dL/dc_{t-1};
 * the caller adds dg_step @ W_hh into dh with one GEMM for the batch.
 */

/* Each gate block is passed as its own pointer: indexing one pointer with
 * H + j or 2 * H + j defeats GCC's vectoriser under -fwrapv. train and proj
 * are compile-time constants at every call (always_inline). */
static RC_INLINE void S(lstm_row)(int H, int train, int proj,
                                    const T *restrict gi_i, const T *restrict gi_f,
                                    const T *restrict gi_g, const T *restrict gi_o,
                                    const T *restrict gh_i, const T *restrict gh_f,
                                    const T *restrict gh_g, const T *restrict gh_o,
                                    const T *restrict b_i, const T *restrict b_f,
                                    const T *restrict b_g, const T *restrict b_o,
                                    T *restrict c, T *restrict h_or_m, T *restrict out,
                                    T *restrict s_i, T *restrict s_f, T *restrict s_g,
                                    T *restrict s_o, T *restrict cprev, T *restrict tc,
                                    T *restrict m_tape)
{
    for (int j = 0; j < H; j++) {
        T i = SIGMOID(gi_i[j] + gh_i[j] + b_i[j]);
        T f = SIGMOID(gi_f[j] + gh_f[j] + b_f[j]);
        T g = TANH(gi_g[j] + gh_g[j] + b_g[j]);
        T o = SIGMOID(gi_o[j] + gh_o[j] + b_o[j]);
        T cp = c[j];
        T cn = f * cp + i * g;
        T th = TANH(cn);
        T m = o * th;
        c[j] = cn;
        h_or_m[j] = m;
        if (!proj)
            out[j] = m;
        if (train) {
            s_i[j] = i;
            s_f[j] = f;
            s_g[j] = g;
            s_o[j] = o;
            cprev[j] = cp;
            tc[j] = th;
            if (proj)
                m_tape[j] = m;
        }
    }
}

/* One forward step: c and h (no projection) or m (projection: the caller
 * then runs p = m @ W_hr^T and lstm_row_proj_out) of every running row;
 * out row (t * B + b) * out_ld without projection; the tape when gates is
 * not NULL. */
RC_DISPATCH
void S(lstm_row_fwd)(const rc_steps_t *st, int R, const T *gi, const T *gh, const T *bias,
                     T *h, T *c, T *m, T *out, ptrdiff_t out_ld, T *gates, T *cprev, T *tc,
                     T *hprev, T *m_tape)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H4 = 4 * (ptrdiff_t)H;
    const int proj = m != NULL;
    const T *b_i = bias, *b_f = bias + H, *b_g = bias + 2 * H, *b_o = bias + 3 * H;
    for (int b = 0; b < B; b++) {
        int t = rc_row_time(st, b);
        if (t < 0)
            continue;
        const T *gir = gi + ((ptrdiff_t)(t - st->t0) * B + b) * H4;
        const T *ghr = gh + (ptrdiff_t)b * H4;
        ptrdiff_t row = (ptrdiff_t)t * B + b;
        T *cr = c + (ptrdiff_t)b * H;
        T *hr = proj ? m + (ptrdiff_t)b * H : h + (ptrdiff_t)b * R;
        T *outr = out + row * out_ld;
        if (gates) {
            memcpy(hprev + row * R, h + (ptrdiff_t)b * R, (size_t)R * sizeof(T));
            T *sg = gates + row * H4;
            if (proj)
                S(lstm_row)(H, 1, 1, gir, gir + H, gir + 2 * H, gir + 3 * H, ghr, ghr + H,
                            ghr + 2 * H, ghr + 3 * H, b_i, b_f, b_g, b_o, cr, hr, outr, sg,
                            sg + H, sg + 2 * H, sg + 3 * H, cprev + row * H, tc + row * H,
                            m_tape + row * H);
            else
                S(lstm_row)(H, 1, 0, gir, gir + H, gir + 2 * H, gir + 3 * H, ghr, ghr + H,
                            ghr + 2 * H, ghr + 3 * H, b_i, b_f, b_g, b_o, cr, hr, outr, sg,
                            sg + H, sg + 2 * H, sg + 3 * H, cprev + row * H, tc + row * H,
                            NULL);
        } else if (proj) {
            S(lstm_row)(H, 0, 1, gir, gir + H, gir + 2 * H, gir + 3 * H, ghr, ghr + H,
                        ghr + 2 * H, ghr + 3 * H, b_i, b_f, b_g, b_o, cr, hr, outr, NULL, NULL,
                        NULL, NULL, NULL, NULL, NULL);
        } else {
            S(lstm_row)(H, 0, 0, gir, gir + H, gir + 2 * H, gir + 3 * H, ghr, ghr + H,
                        ghr + 2 * H, ghr + 3 * H, b_i, b_f, b_g, b_o, cr, hr, outr, NULL, NULL,
                        NULL, NULL, NULL, NULL, NULL);
        }
    }
}

/* Projection: h[b] = out row = p[b] (R wide) for every running row. */
RC_DISPATCH
void S(lstm_row_proj_out)(const rc_steps_t *st, int R, const T *p, T *h, T *out,
                          ptrdiff_t out_ld)
{
    const int B = st->B;
    for (int b = 0; b < B; b++) {
        int t = rc_row_time(st, b);
        if (t < 0)
            continue;
        memcpy(h + (ptrdiff_t)b * R, p + (ptrdiff_t)b * R, (size_t)R * sizeof(T));
        memcpy(out + ((ptrdiff_t)t * B + b) * out_ld, p + (ptrdiff_t)b * R,
               (size_t)R * sizeof(T));
    }
}

/* Projection, backward, first half: the gradient of the projected state,
 * dhp = dh + dout (R wide), saved by time (for dW_hr) and in row b of
 * dhp_step (zero for a finished row); dh of the running rows is set to
 * zero (it is rebuilt from dg_step @ W_hh). */
RC_DISPATCH
void S(lstm_row_bwd_proj)(const rc_steps_t *st, int R, const T *dout, ptrdiff_t dout_ld, T *dh,
                          T *dhp, T *dhp_step)
{
    const int B = st->B;
    for (int b = 0; b < B; b++) {
        int t = rc_row_time(st, b);
        T *ds = dhp_step + (ptrdiff_t)b * R;
        if (t < 0) {
            memset(ds, 0, (size_t)R * sizeof(T));
            continue;
        }
        T *restrict dhr = dh + (ptrdiff_t)b * R;
        const T *restrict dor = dout + ((ptrdiff_t)t * B + b) * dout_ld;
        T *restrict dt = dhp + ((ptrdiff_t)t * B + b) * R;
        T *restrict dsr = ds;
        for (int j = 0; j < R; j++) {
            T v = dhr[j] + dor[j];
            dt[j] = v;
            dsr[j] = v;
            dhr[j] = 0;
        }
    }
}

static RC_INLINE void S(lstm_row_bwd_1)(int H, const T *restrict dm, const T *restrict dor,
                                          T *restrict dhr, const T *restrict s_i,
                                          const T *restrict s_f, const T *restrict s_g,
                                          const T *restrict s_o, const T *restrict cp,
                                          const T *restrict th, T *restrict dc,
                                          T *restrict d_i, T *restrict d_f, T *restrict d_g,
                                          T *restrict d_o, T *restrict e_i, T *restrict e_f,
                                          T *restrict e_g, T *restrict e_o)
{
    for (int j = 0; j < H; j++) {
        T dmj;
        if (dm) {
            dmj = dm[j];
        } else {
            dmj = dhr[j] + dor[j];
            dhr[j] = 0;
        }
        T i = s_i[j], f = s_f[j], g = s_g[j], o = s_o[j], t = th[j];
        T dct = dc[j] + dmj * o * (1 - t * t);
        T gi = dct * g * i * (1 - i);
        T gf = dct * cp[j] * f * (1 - f);
        T gg = dct * i * (1 - g * g);
        T go = dmj * t * o * (1 - o);
        dc[j] = dct * f;
        d_i[j] = gi;
        d_f[j] = gf;
        d_g[j] = gg;
        d_o[j] = go;
        e_i[j] = gi;
        e_f[j] = gf;
        e_g[j] = gg;
        e_o[j] = go;
    }
}

/* One backward step through the gates. dm: the gradient of m_t, row b of a
 * (B, H) array (projection), or NULL: then dm = dh + dout (R = H) and dh of
 * the running rows is set to zero. */
RC_DISPATCH
void S(lstm_row_bwd)(const rc_steps_t *st, const T *dm, const T *dout, ptrdiff_t dout_ld,
                     const T *gates, const T *cprev, const T *tc, T *dh, T *dc, T *dgi,
                     T *dg_step)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H4 = 4 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = rc_row_time(st, b);
        T *e = dg_step + (ptrdiff_t)b * H4;
        if (t < 0) {
            memset(e, 0, (size_t)H4 * sizeof(T));
            continue;
        }
        ptrdiff_t row = (ptrdiff_t)t * B + b;
        const T *sg = gates + row * H4;
        T *d = dgi + row * H4;
        if (dm)
            S(lstm_row_bwd_1)(H, dm + (ptrdiff_t)b * H, NULL, NULL, sg, sg + H, sg + 2 * H,
                              sg + 3 * H, cprev + row * H, tc + row * H, dc + (ptrdiff_t)b * H,
                              d, d + H, d + 2 * H, d + 3 * H, e, e + H, e + 2 * H, e + 3 * H);
        else
            S(lstm_row_bwd_1)(H, NULL, dout + row * dout_ld, dh + (ptrdiff_t)b * H, sg, sg + H,
                              sg + 2 * H, sg + 3 * H, cprev + row * H, tc + row * H,
                              dc + (ptrdiff_t)b * H, d, d + H, d + 2 * H, d + 3 * H, e, e + H,
                              e + 2 * H, e + 3 * H);
    }
}
