/* Gate math of one GRU step over the whole batch, instantiated for T = float
 * and T = double by _gru_gates.c. Gate order r, z, n in every 3H block.
 *
 *   gi    x_t @ W_ih^T, no bias            gh    h @ W_hh^T, no bias
 *   b_ih, b_hh (3H)  the two bias vectors (zeros when the module has none)
 *   gates saved r, z, n                    hprev saved h_{t-1}
 *   aux   saved W_hn h + b_hn (reset_after) or r * h_{t-1} (reset_before)
 *
 * The update is written h_t = n + z (h_{t-1} - n), equal to
 * (1 - z) n + z h_{t-1}. Backward functions take the carried gradient dh
 * and the output gradient dout of the step, write the pre-activation gate
 * gradients dgi (input projection) and dgh (recurrent product), and leave
 * in dh the part of dL/dh_{t-1} that does not go through W_hh; the caller
 * adds dgh @ W_hh with one GEMM for the whole batch.
 *
 * Rows layout (gru_row_*): arrays are (B, 3H) or (B, H) for one step, gi
 * holds the row block of time t at row (t - t0) * B + b, out and dout rows
 * are (t * B + b) * ld. A row whose sequence is over at step s is skipped;
 * in training its saved gates, aux, hprev and dgh rows are written as
 * zeros, so that the weight-gradient GEMMs over all rows see finite zeros.
 *
 * Columns layout (gru_col_*): every array is transposed, (3H, .) or (H, .),
 * element (j, b) at X[j * ld + b]; gh, dout and dh have ld = B.
 */

/* ---- one row: the loops the compiler vectorises along j ----------------- */
/* Each gate block is passed as its own pointer: indexing one pointer with
 * H + j or 2 * H + j defeats GCC's vectoriser under -fwrapv (which Python
 * builds use), as the index may wrap. */

static GRU_INLINE void S(row_after)(int H, const T *restrict gi_r, const T *restrict gi_z,
                                    const T *restrict gi_n, const T *restrict gh_r,
                                    const T *restrict gh_z, const T *restrict gh_n,
                                    const T *restrict bi_r, const T *restrict bi_z,
                                    const T *restrict bi_n, const T *restrict bh_r,
                                    const T *restrict bh_z, const T *restrict bh_n,
                                    T *restrict h, T *restrict out)
{
    for (int j = 0; j < H; j++) {
        T r = SIGMOID(gi_r[j] + gh_r[j] + (bi_r[j] + bh_r[j]));
        T z = SIGMOID(gi_z[j] + gh_z[j] + (bi_z[j] + bh_z[j]));
        T hn = gh_n[j] + bh_n[j];
        T n = TANH(gi_n[j] + bi_n[j] + r * hn);
        T hnew = n + z * (h[j] - n);
        h[j] = hnew;
        out[j] = hnew;
    }
}

static GRU_INLINE void S(row_after_train)(int H, const T *restrict gi_r,
                                          const T *restrict gi_z, const T *restrict gi_n,
                                          const T *restrict gh_r, const T *restrict gh_z,
                                          const T *restrict gh_n, const T *restrict bi_r,
                                          const T *restrict bi_z, const T *restrict bi_n,
                                          const T *restrict bh_r, const T *restrict bh_z,
                                          const T *restrict bh_n, T *restrict h,
                                          T *restrict out, T *restrict g_r, T *restrict g_z,
                                          T *restrict g_n, T *restrict aux,
                                          T *restrict hprev)
{
    for (int j = 0; j < H; j++) {
        T r = SIGMOID(gi_r[j] + gh_r[j] + (bi_r[j] + bh_r[j]));
        T z = SIGMOID(gi_z[j] + gh_z[j] + (bi_z[j] + bh_z[j]));
        T hn = gh_n[j] + bh_n[j];
        T n = TANH(gi_n[j] + bi_n[j] + r * hn);
        T hp = h[j];
        T hnew = n + z * (hp - n);
        g_r[j] = r;
        g_z[j] = z;
        g_n[j] = n;
        aux[j] = hn;
        hprev[j] = hp;
        h[j] = hnew;
        out[j] = hnew;
    }
}

static GRU_INLINE void S(row_before_rz)(int H, const T *restrict gi_r,
                                        const T *restrict gi_z, const T *restrict gh_r,
                                        const T *restrict gh_z, const T *restrict bi_r,
                                        const T *restrict bi_z, const T *restrict bh_r,
                                        const T *restrict bh_z, const T *restrict h,
                                        T *restrict g_r, T *restrict g_z, T *restrict rh)
{
    for (int j = 0; j < H; j++) {
        T r = SIGMOID(gi_r[j] + gh_r[j] + (bi_r[j] + bh_r[j]));
        T z = SIGMOID(gi_z[j] + gh_z[j] + (bi_z[j] + bh_z[j]));
        g_r[j] = r;
        g_z[j] = z;
        rh[j] = r * h[j];
    }
}

static GRU_INLINE void S(row_before_n)(int H, const T *restrict gi_n, const T *restrict gh_n,
                                       const T *restrict bi_n, const T *restrict bh_n,
                                       const T *restrict g_z, T *restrict g_n,
                                       T *restrict h, T *restrict out)
{
    for (int j = 0; j < H; j++) {
        T n = TANH(gi_n[j] + bi_n[j] + (gh_n[j] + bh_n[j]));
        T z = g_z[j];
        T hnew = n + z * (h[j] - n);
        g_n[j] = n;
        h[j] = hnew;
        out[j] = hnew;
    }
}

static GRU_INLINE void S(row_bwd_after_1)(int H, const T *restrict g_r, const T *restrict g_z,
                                          const T *restrict g_n, const T *restrict aux,
                                          const T *restrict hprev, const T *restrict dout,
                                          T *restrict dh, T *restrict dgi_r,
                                          T *restrict dgi_z, T *restrict dgi_n,
                                          T *restrict dgh_r, T *restrict dgh_z,
                                          T *restrict dgh_n)
{
    for (int j = 0; j < H; j++) {
        T r = g_r[j], z = g_z[j], n = g_n[j];
        T dht = dh[j] + dout[j];
        T dn_pre = dht * (1 - z) * (1 - n * n);
        T dz_pre = dht * (hprev[j] - n) * z * (1 - z);
        T dr_pre = dn_pre * aux[j] * r * (1 - r);
        dgi_r[j] = dr_pre;
        dgi_z[j] = dz_pre;
        dgi_n[j] = dn_pre;
        dgh_r[j] = dr_pre;
        dgh_z[j] = dz_pre;
        dgh_n[j] = dn_pre * r;
        dh[j] = dht * z;
    }
}

static GRU_INLINE void S(row_bwd_before_n_1)(int H, const T *restrict g_z,
                                             const T *restrict g_n, const T *restrict hprev,
                                             const T *restrict dout, T *restrict dh,
                                             T *restrict dgi_z, T *restrict dgi_n,
                                             T *restrict dgh_z, T *restrict dgh_n)
{
    for (int j = 0; j < H; j++) {
        T z = g_z[j], n = g_n[j];
        T dht = dh[j] + dout[j];
        T dn_pre = dht * (1 - z) * (1 - n * n);
        T dz_pre = dht * (hprev[j] - n) * z * (1 - z);
        dgi_z[j] = dz_pre;
        dgi_n[j] = dn_pre;
        dgh_z[j] = dz_pre;
        dgh_n[j] = dn_pre;
        dh[j] = dht;
    }
}

static GRU_INLINE void S(row_bwd_before_rz_1)(int H, const T *restrict g_r,
                                              const T *restrict g_z,
                                              const T *restrict hprev,
                                              const T *restrict drh, T *restrict dh,
                                              T *restrict dgi_r, T *restrict dgh_r)
{
    for (int j = 0; j < H; j++) {
        T r = g_r[j], z = g_z[j];
        T dr_pre = drh[j] * hprev[j] * r * (1 - r);
        dgi_r[j] = dr_pre;
        dgh_r[j] = dr_pre;
        dh[j] = dh[j] * z + drh[j] * r;
    }
}

/* ---- rows layout: one step over the batch ------------------------------- */

GRU_DISPATCH
void S(gru_row_fwd_after)(const gru_steps_t *st, const T *gi, const T *gh,
                          const T *b_ih, const T *b_hh, T *h, T *out, ptrdiff_t out_ld,
                          T *gates, T *aux, T *hprev)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H3 = 3 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = gru_row_time(st, b);
        if (t < 0) {
            if (gates) {
                memset(gates + b * H3, 0, H3 * sizeof(T));
                memset(aux + (ptrdiff_t)b * H, 0, H * sizeof(T));
                memset(hprev + (ptrdiff_t)b * H, 0, H * sizeof(T));
            }
            continue;
        }
        const T *gi_b = gi + ((ptrdiff_t)(t - st->t0) * B + b) * H3;
        T *out_b = out + ((ptrdiff_t)t * B + b) * out_ld;
        const T *gh_b = gh + b * H3;
        T *g_b = gates + b * H3;
        if (gates)
            S(row_after_train)(H, gi_b, gi_b + H, gi_b + 2 * H, gh_b, gh_b + H, gh_b + 2 * H,
                               b_ih, b_ih + H, b_ih + 2 * H, b_hh, b_hh + H, b_hh + 2 * H,
                               h + (ptrdiff_t)b * H, out_b, g_b, g_b + H, g_b + 2 * H,
                               aux + (ptrdiff_t)b * H, hprev + (ptrdiff_t)b * H);
        else
            S(row_after)(H, gi_b, gi_b + H, gi_b + 2 * H, gh_b, gh_b + H, gh_b + 2 * H,
                         b_ih, b_ih + H, b_ih + 2 * H, b_hh, b_hh + H, b_hh + 2 * H,
                         h + (ptrdiff_t)b * H, out_b);
    }
}

GRU_DISPATCH
void S(gru_row_fwd_before_rz)(const gru_steps_t *st, const T *gi, const T *gh,
                              const T *b_ih, const T *b_hh, const T *h, T *gates, T *rh,
                              int train)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H3 = 3 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = gru_row_time(st, b);
        if (t < 0) {
            if (train) {
                memset(gates + b * H3, 0, H3 * sizeof(T));
                memset(rh + (ptrdiff_t)b * H, 0, H * sizeof(T));
            }
            continue;
        }
        const T *gi_b = gi + ((ptrdiff_t)(t - st->t0) * B + b) * H3;
        const T *gh_b = gh + b * H3;
        S(row_before_rz)(H, gi_b, gi_b + H, gh_b, gh_b + H, b_ih, b_ih + H, b_hh, b_hh + H,
                         h + (ptrdiff_t)b * H, gates + b * H3, gates + b * H3 + H,
                         rh + (ptrdiff_t)b * H);
    }
}

GRU_DISPATCH
void S(gru_row_fwd_before_n)(const gru_steps_t *st, const T *gi, const T *gh,
                             const T *b_ih, const T *b_hh, T *gates, T *h, T *out,
                             ptrdiff_t out_ld, T *hprev)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H3 = 3 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = gru_row_time(st, b);
        T *h_b = h + (ptrdiff_t)b * H;
        if (t < 0) {
            if (hprev)
                memset(hprev + (ptrdiff_t)b * H, 0, H * sizeof(T));
            continue;
        }
        if (hprev)
            memcpy(hprev + (ptrdiff_t)b * H, h_b, H * sizeof(T));
        S(row_before_n)(H, gi + ((ptrdiff_t)(t - st->t0) * B + b) * H3 + 2 * H,
                        gh + b * H3 + 2 * H, b_ih + 2 * H, b_hh + 2 * H,
                        gates + b * H3 + H, gates + b * H3 + 2 * H, h_b,
                        out + ((ptrdiff_t)t * B + b) * out_ld);
    }
}

GRU_DISPATCH
void S(gru_row_bwd_after)(const gru_steps_t *st, const T *gates, const T *aux,
                          const T *hprev, const T *dout, ptrdiff_t dout_ld, T *dh, T *dgi,
                          T *dgh)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H3 = 3 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = gru_row_time(st, b);
        if (t < 0) {
            memset(dgh + b * H3, 0, H3 * sizeof(T));
            continue;
        }
        ptrdiff_t row = (ptrdiff_t)t * B + b;
        const T *g_b = gates + b * H3;
        T *dgi_b = dgi + row * H3, *dgh_b = dgh + b * H3;
        S(row_bwd_after_1)(H, g_b, g_b + H, g_b + 2 * H, aux + (ptrdiff_t)b * H,
                           hprev + (ptrdiff_t)b * H, dout + row * dout_ld,
                           dh + (ptrdiff_t)b * H, dgi_b, dgi_b + H, dgi_b + 2 * H, dgh_b,
                           dgh_b + H, dgh_b + 2 * H);
    }
}

GRU_DISPATCH
void S(gru_row_bwd_before_n)(const gru_steps_t *st, const T *gates, const T *hprev,
                             const T *dout, ptrdiff_t dout_ld, T *dh, T *dgi, T *dgh)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H3 = 3 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = gru_row_time(st, b);
        if (t < 0) {
            memset(dgh + b * H3, 0, H3 * sizeof(T));
            continue;
        }
        ptrdiff_t row = (ptrdiff_t)t * B + b;
        const T *g_b = gates + b * H3;
        T *dgi_b = dgi + row * H3, *dgh_b = dgh + b * H3;
        S(row_bwd_before_n_1)(H, g_b + H, g_b + 2 * H, hprev + (ptrdiff_t)b * H,
                              dout + row * dout_ld, dh + (ptrdiff_t)b * H, dgi_b + H,
                              dgi_b + 2 * H, dgh_b + H, dgh_b + 2 * H);
    }
}

GRU_DISPATCH
void S(gru_row_bwd_before_rz)(const gru_steps_t *st, const T *gates, const T *hprev,
                              const T *drh, T *dh, T *dgi, T *dgh)
{
    const int B = st->B, H = st->H;
    const ptrdiff_t H3 = 3 * (ptrdiff_t)H;
    for (int b = 0; b < B; b++) {
        int t = gru_row_time(st, b);
        if (t < 0)
            continue;               /* dgh row already zeroed by before_n */
        ptrdiff_t row = (ptrdiff_t)t * B + b;
        S(row_bwd_before_rz_1)(H, gates + b * H3, gates + b * H3 + H,
                               hprev + (ptrdiff_t)b * H, drh + (ptrdiff_t)b * H,
                               dh + (ptrdiff_t)b * H, dgi + row * H3, dgh + b * H3);
    }
}

/* ---- columns layout: one step, loops along the batch -------------------- */

/* The loops along b take their rows as restrict parameters: GCC does not
 * vectorise them when the row pointers are block-scope restrict locals. */

static GRU_INLINE void S(col_after)(int B, const T *restrict gi_r, const T *restrict gi_z,
                                    const T *restrict gi_n, const T *restrict gh_r,
                                    const T *restrict gh_z, const T *restrict gh_n,
                                    T br, T bz, T bin, T bhn, const T *restrict h,
                                    T *restrict h_new)
{
    for (int b = 0; b < B; b++) {
        T r = SIGMOID(gi_r[b] + gh_r[b] + br);
        T z = SIGMOID(gi_z[b] + gh_z[b] + bz);
        T hn = gh_n[b] + bhn;
        T n = TANH(gi_n[b] + bin + r * hn);
        h_new[b] = n + z * (h[b] - n);
    }
}

static GRU_INLINE void S(col_after_train)(int B, const T *restrict gi_r,
                                          const T *restrict gi_z, const T *restrict gi_n,
                                          const T *restrict gh_r, const T *restrict gh_z,
                                          const T *restrict gh_n, T br, T bz, T bin, T bhn,
                                          const T *restrict h, T *restrict h_new,
                                          T *restrict g_r, T *restrict g_z, T *restrict g_n,
                                          T *restrict aux)
{
    for (int b = 0; b < B; b++) {
        T r = SIGMOID(gi_r[b] + gh_r[b] + br);
        T z = SIGMOID(gi_z[b] + gh_z[b] + bz);
        T hn = gh_n[b] + bhn;
        T n = TANH(gi_n[b] + bin + r * hn);
        g_r[b] = r;
        g_z[b] = z;
        g_n[b] = n;
        aux[b] = hn;
        h_new[b] = n + z * (h[b] - n);
    }
}

static GRU_INLINE void S(col_before_rz)(int B, const T *restrict gi_r,
                                        const T *restrict gi_z, const T *restrict gh_r,
                                        const T *restrict gh_z, T br, T bz,
                                        const T *restrict h, T *restrict g_r,
                                        T *restrict g_z, T *restrict rh)
{
    for (int b = 0; b < B; b++) {
        T r = SIGMOID(gi_r[b] + gh_r[b] + br);
        T z = SIGMOID(gi_z[b] + gh_z[b] + bz);
        g_r[b] = r;
        g_z[b] = z;
        rh[b] = r * h[b];
    }
}

static GRU_INLINE void S(col_before_n)(int B, const T *restrict gi_n, const T *restrict gh_n,
                                       T bin, T bhn, const T *restrict g_z,
                                       T *restrict g_n, const T *restrict h,
                                       T *restrict h_new)
{
    for (int b = 0; b < B; b++) {
        T n = TANH(gi_n[b] + bin + (gh_n[b] + bhn));
        T z = g_z[b];
        g_n[b] = n;
        h_new[b] = n + z * (h[b] - n);
    }
}

static GRU_INLINE void S(col_bwd_after_1)(int B, const T *restrict g_r,
                                          const T *restrict g_z, const T *restrict g_n,
                                          const T *restrict aux, const T *restrict hprev,
                                          const T *restrict dout, T *restrict dh,
                                          T *restrict dgi_r, T *restrict dgi_z,
                                          T *restrict dgi_n, T *restrict dgh_r,
                                          T *restrict dgh_z, T *restrict dgh_n)
{
    for (int b = 0; b < B; b++) {
        T r = g_r[b], z = g_z[b], n = g_n[b];
        T dht = dh[b] + dout[b];
        T dn_pre = dht * (1 - z) * (1 - n * n);
        T dz_pre = dht * (hprev[b] - n) * z * (1 - z);
        T dr_pre = dn_pre * aux[b] * r * (1 - r);
        dgi_r[b] = dr_pre;
        dgi_z[b] = dz_pre;
        dgi_n[b] = dn_pre;
        dgh_r[b] = dr_pre;
        dgh_z[b] = dz_pre;
        dgh_n[b] = dn_pre * r;
        dh[b] = dht * z;
    }
}

static GRU_INLINE void S(col_bwd_before_n_1)(int B, const T *restrict g_z,
                                             const T *restrict g_n,
                                             const T *restrict hprev,
                                             const T *restrict dout, T *restrict dh,
                                             T *restrict dgi_z, T *restrict dgi_n,
                                             T *restrict dgh_z, T *restrict dgh_n)
{
    for (int b = 0; b < B; b++) {
        T z = g_z[b], n = g_n[b];
        T dht = dh[b] + dout[b];
        T dn_pre = dht * (1 - z) * (1 - n * n);
        T dz_pre = dht * (hprev[b] - n) * z * (1 - z);
        dgi_z[b] = dz_pre;
        dgi_n[b] = dn_pre;
        dgh_z[b] = dz_pre;
        dgh_n[b] = dn_pre;
        dh[b] = dht;
    }
}

static GRU_INLINE void S(col_bwd_before_rz_1)(int B, const T *restrict g_r,
                                              const T *restrict g_z,
                                              const T *restrict hprev,
                                              const T *restrict drh, T *restrict dh,
                                              T *restrict dgi_r, T *restrict dgh_r)
{
    for (int b = 0; b < B; b++) {
        T r = g_r[b], z = g_z[b];
        T dr_pre = drh[b] * hprev[b] * r * (1 - r);
        dgi_r[b] = dr_pre;
        dgh_r[b] = dr_pre;
        dh[b] = dh[b] * z + drh[b] * r;
    }
}

GRU_DISPATCH
void S(gru_col_fwd_after)(int B, int H, const T *gi, ptrdiff_t gi_ld, const T *gh,
                          const T *b_ih, const T *b_hh, const T *h, ptrdiff_t h_ld,
                          T *h_new, ptrdiff_t hn_ld, T *gates, T *aux, ptrdiff_t sv_ld)
{
    const ptrdiff_t Hp = H, Bp = B;
    for (ptrdiff_t j = 0; j < Hp; j++) {
        T br = b_ih[j] + b_hh[j], bz = b_ih[Hp + j] + b_hh[Hp + j];
        T bin = b_ih[2 * Hp + j], bhn = b_hh[2 * Hp + j];
        if (gates)
            S(col_after_train)(B, gi + j * gi_ld, gi + (Hp + j) * gi_ld,
                               gi + (2 * Hp + j) * gi_ld, gh + j * Bp, gh + (Hp + j) * Bp,
                               gh + (2 * Hp + j) * Bp, br, bz, bin, bhn, h + j * h_ld,
                               h_new + j * hn_ld, gates + j * sv_ld,
                               gates + (Hp + j) * sv_ld, gates + (2 * Hp + j) * sv_ld,
                               aux + j * sv_ld);
        else
            S(col_after)(B, gi + j * gi_ld, gi + (Hp + j) * gi_ld, gi + (2 * Hp + j) * gi_ld,
                         gh + j * Bp, gh + (Hp + j) * Bp, gh + (2 * Hp + j) * Bp,
                         br, bz, bin, bhn, h + j * h_ld, h_new + j * hn_ld);
    }
}

GRU_DISPATCH
void S(gru_col_fwd_before_rz)(int B, int H, const T *gi, ptrdiff_t gi_ld, const T *gh,
                              const T *b_ih, const T *b_hh, const T *h, ptrdiff_t h_ld,
                              T *gates, T *rh, ptrdiff_t sv_ld)
{
    const ptrdiff_t Hp = H, Bp = B;
    for (ptrdiff_t j = 0; j < Hp; j++)
        S(col_before_rz)(B, gi + j * gi_ld, gi + (Hp + j) * gi_ld, gh + j * Bp,
                         gh + (Hp + j) * Bp, b_ih[j] + b_hh[j], b_ih[Hp + j] + b_hh[Hp + j],
                         h + j * h_ld, gates + j * sv_ld, gates + (Hp + j) * sv_ld,
                         rh + j * sv_ld);
}

GRU_DISPATCH
void S(gru_col_fwd_before_n)(int B, int H, const T *gi, ptrdiff_t gi_ld, const T *ghn,
                             const T *b_ih, const T *b_hh, T *gates, ptrdiff_t sv_ld,
                             const T *h, ptrdiff_t h_ld, T *h_new, ptrdiff_t hn_ld)
{
    const ptrdiff_t Hp = H, Bp = B;
    for (ptrdiff_t j = 0; j < Hp; j++)
        S(col_before_n)(B, gi + (2 * Hp + j) * gi_ld, ghn + j * Bp, b_ih[2 * Hp + j],
                        b_hh[2 * Hp + j], gates + (Hp + j) * sv_ld,
                        gates + (2 * Hp + j) * sv_ld, h + j * h_ld, h_new + j * hn_ld);
}

GRU_DISPATCH
void S(gru_col_bwd_after)(int B, int H, const T *gates, const T *aux, ptrdiff_t sv_ld,
                          const T *hprev, ptrdiff_t hp_ld, const T *dout, T *dh, T *dgi,
                          T *dgh, ptrdiff_t dg_ld)
{
    const ptrdiff_t Hp = H, Bp = B;
    for (ptrdiff_t j = 0; j < Hp; j++)
        S(col_bwd_after_1)(B, gates + j * sv_ld, gates + (Hp + j) * sv_ld,
                           gates + (2 * Hp + j) * sv_ld, aux + j * sv_ld, hprev + j * hp_ld,
                           dout + j * Bp, dh + j * Bp, dgi + j * dg_ld,
                           dgi + (Hp + j) * dg_ld, dgi + (2 * Hp + j) * dg_ld,
                           dgh + j * dg_ld, dgh + (Hp + j) * dg_ld,
                           dgh + (2 * Hp + j) * dg_ld);
}

GRU_DISPATCH
void S(gru_col_bwd_before_n)(int B, int H, const T *gates, ptrdiff_t sv_ld,
                             const T *hprev, ptrdiff_t hp_ld, const T *dout, T *dh, T *dgi,
                             T *dgh, ptrdiff_t dg_ld)
{
    const ptrdiff_t Hp = H, Bp = B;
    for (ptrdiff_t j = 0; j < Hp; j++)
        S(col_bwd_before_n_1)(B, gates + (Hp + j) * sv_ld, gates + (2 * Hp + j) * sv_ld,
                              hprev + j * hp_ld, dout + j * Bp, dh + j * Bp,
                              dgi + (Hp + j) * dg_ld, dgi + (2 * Hp + j) * dg_ld,
                              dgh + (Hp + j) * dg_ld, dgh + (2 * Hp + j) * dg_ld);
}

GRU_DISPATCH
void S(gru_col_bwd_before_rz)(int B, int H, const T *gates, ptrdiff_t sv_ld,
                              const T *hprev, ptrdiff_t hp_ld, const T *drh, T *dh, T *dgi,
                              T *dgh, ptrdiff_t dg_ld)
{
    const ptrdiff_t Hp = H, Bp = B;
    for (ptrdiff_t j = 0; j < Hp; j++)
        S(col_bwd_before_rz_1)(B, gates + j * sv_ld, gates + (Hp + j) * sv_ld,
                               hprev + j * hp_ld, drh + j * Bp, dh + j * Bp,
                               dgi + j * dg_ld, dgh + j * dg_ld);
}
