/* Gate math for one batch row of one GRU step, instantiated for T = float
 * and T = double by _gru_gates.c. Gate order r, z, n in every 3H vector.
 *
 *   gi    (3H)  x_t @ W_ih^T, no bias           gh   (3H)  h @ W_hh^T, no bias
 *   bias  (4H)  [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]
 *   gates (3H)  saved r, z, n                   hprev (H)  saved h_{t-1}
 *   aux   (H)   saved W_hn h + b_hn (reset_after) or r * h_{t-1} (before)
 *
 * The update is written h_t = n + z (h_{t-1} - n), equal to
 * (1 - z) n + z h_{t-1}. Backward functions take the carried gradient dh
 * and the output gradient dout of this step, write the pre-activation gate
 * gradients dgi (for the input projection) and dgh (for the recurrent
 * product), and leave in dh the part of dL/dh_{t-1} that does not go
 * through W_hh; the caller adds dgh @ W_hh with one GEMM for the batch.
 */

GRU_DISPATCH
void S(gru_fwd_after)(int H, const T *restrict gi, const T *restrict gh,
                      const T *restrict bias, T *restrict h, T *restrict out)
{
    for (int j = 0; j < H; j++) {
        T r = SIGMOID(gi[j] + gh[j] + bias[j]);
        T z = SIGMOID(gi[H + j] + gh[H + j] + bias[H + j]);
        T n = TANH(gi[2 * H + j] + bias[2 * H + j] + r * (gh[2 * H + j] + bias[3 * H + j]));
        T hnew = n + z * (h[j] - n);
        h[j] = hnew;
        out[j] = hnew;
    }
}

GRU_DISPATCH
void S(gru_fwd_after_train)(int H, const T *restrict gi, const T *restrict gh,
                            const T *restrict bias, T *restrict h, T *restrict out,
                            T *restrict gates, T *restrict aux, T *restrict hprev)
{
    for (int j = 0; j < H; j++) {
        T r = SIGMOID(gi[j] + gh[j] + bias[j]);
        T z = SIGMOID(gi[H + j] + gh[H + j] + bias[H + j]);
        T hn = gh[2 * H + j] + bias[3 * H + j];
        T n = TANH(gi[2 * H + j] + bias[2 * H + j] + r * hn);
        T hp = h[j];
        T hnew = n + z * (hp - n);
        gates[j] = r;
        gates[H + j] = z;
        gates[2 * H + j] = n;
        aux[j] = hn;
        hprev[j] = hp;
        h[j] = hnew;
        out[j] = hnew;
    }
}

GRU_DISPATCH
void S(gru_fwd_before_rz)(int H, const T *restrict gi, const T *restrict gh,
                          const T *restrict bias, const T *restrict h,
                          T *restrict gates, T *restrict rh)
{
    for (int j = 0; j < H; j++) {
        T r = SIGMOID(gi[j] + gh[j] + bias[j]);
        T z = SIGMOID(gi[H + j] + gh[H + j] + bias[H + j]);
        gates[j] = r;
        gates[H + j] = z;
        rh[j] = r * h[j];
    }
}

GRU_DISPATCH
void S(gru_fwd_before_n)(int H, const T *restrict gi, const T *restrict ghn,
                         const T *restrict bias, T *restrict gates, T *restrict h,
                         T *restrict out, T *restrict hprev)
{
    for (int j = 0; j < H; j++) {
        T n = TANH(gi[2 * H + j] + bias[2 * H + j] + ghn[j] + bias[3 * H + j]);
        T z = gates[H + j];
        T hp = h[j];
        T hnew = n + z * (hp - n);
        gates[2 * H + j] = n;
        hprev[j] = hp;
        h[j] = hnew;
        out[j] = hnew;
    }
}

GRU_DISPATCH
void S(gru_bwd_after)(int H, const T *restrict gates, const T *restrict aux,
                      const T *restrict hprev, const T *restrict dout,
                      T *restrict dh, T *restrict dgi, T *restrict dgh)
{
    for (int j = 0; j < H; j++) {
        T r = gates[j], z = gates[H + j], n = gates[2 * H + j];
        T dht = dh[j] + dout[j];
        T dn_pre = dht * (1 - z) * (1 - n * n);
        T dz_pre = dht * (hprev[j] - n) * z * (1 - z);
        T dr_pre = dn_pre * aux[j] * r * (1 - r);
        dgi[j] = dr_pre;
        dgi[H + j] = dz_pre;
        dgi[2 * H + j] = dn_pre;
        dgh[j] = dr_pre;
        dgh[H + j] = dz_pre;
        dgh[2 * H + j] = dn_pre * r;
        dh[j] = dht * z;
    }
}

GRU_DISPATCH
void S(gru_bwd_before_n)(int H, const T *restrict gates, const T *restrict hprev,
                         const T *restrict dout, T *restrict dh, T *restrict dgi,
                         T *restrict dgh)
{
    for (int j = 0; j < H; j++) {
        T z = gates[H + j], n = gates[2 * H + j];
        T dht = dh[j] + dout[j];
        T dn_pre = dht * (1 - z) * (1 - n * n);
        T dz_pre = dht * (hprev[j] - n) * z * (1 - z);
        dgi[H + j] = dz_pre;
        dgi[2 * H + j] = dn_pre;
        dgh[H + j] = dz_pre;
        dgh[2 * H + j] = dn_pre;
        dh[j] = dht;
    }
}

GRU_DISPATCH
void S(gru_bwd_before_rz)(int H, const T *restrict gates, const T *restrict hprev,
                          const T *restrict drh, T *restrict dh, T *restrict dgi,
                          T *restrict dgh)
{
    for (int j = 0; j < H; j++) {
        T r = gates[j], z = gates[H + j];
        T dr_pre = drh[j] * hprev[j] * r * (1 - r);
        dgi[j] = dr_pre;
        dgh[j] = dr_pre;
        dh[j] = dh[j] * z + drh[j] * r;
    }
}
