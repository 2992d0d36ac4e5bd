/* The gate math of every cell over a range of units of one batch row,
 * instantiated by rc_loops_impl.h for one element type T and one
 * instruction set. Each gate block is its own restrict pointer (indexing
 * one pointer with H + j defeats GCC's vectoriser under -fwrapv, which
 * Python builds use); n is the number of units.
 *
 * Forward functions take the input projection gi (x_t @ W_ih^T) and the
 * recurrent product gh (h @ W_hh^T) of the row without bias, and the bias
 * terms once summed where the maths adds them (b_ih + b_hh), so the bias
 * enters every pre-activation at one place. Backward functions write the
 * pre-activation gradients of the input side (di*) and of the recurrent
 * side (dh*) and leave in dh the part of dL/dh_{t-1} that does not go
 * through W_hh (the caller's product adds the rest). */

/* ---- GRU (gates r, z, n) ---------------------------------------------------- */

/* reset_after: n = tanh(gi_n + b_in + r * (gh_n + b_hn)); aux = gh_n + b_hn. */
static RC_ALWAYS_INLINE void
S(gru_fwd_after)(int n, const T *RC_RESTRICT gi_r, const T *RC_RESTRICT gi_z,
                 const T *RC_RESTRICT gi_n, const T *RC_RESTRICT gh_r,
                 const T *RC_RESTRICT gh_z, const T *RC_RESTRICT gh_n,
                 const T *RC_RESTRICT b_r, const T *RC_RESTRICT b_z,
                 const T *RC_RESTRICT b_in, const T *RC_RESTRICT b_hn,
                 const T *RC_RESTRICT hp, T *RC_RESTRICT hn, T *RC_RESTRICT out,
                 T *RC_RESTRICT s_r, T *RC_RESTRICT s_z, T *RC_RESTRICT s_n,
                 T *RC_RESTRICT s_aux, T *RC_RESTRICT s_hp, const int train)
{
    for (int j = 0; j < n; j++) {
        T r = SIGMOID(gi_r[j] + gh_r[j] + b_r[j]);
        T z = SIGMOID(gi_z[j] + gh_z[j] + b_z[j]);
        T a = gh_n[j] + b_hn[j];
        T g = TANH(gi_n[j] + b_in[j] + r * a);
        T h = hp[j];
        T y = g + z * (h - g);
        hn[j] = y;
        out[j] = y;
        if (train) {
            s_r[j] = r;
            s_z[j] = z;
            s_n[j] = g;
            s_aux[j] = a;
            s_hp[j] = h;
        }
    }
}

/* reset_before, first half: r, z and aux = r * h_{t-1}. */
static RC_ALWAYS_INLINE void
S(gru_fwd_rz)(int n, const T *RC_RESTRICT gi_r, const T *RC_RESTRICT gi_z,
              const T *RC_RESTRICT gh_r, const T *RC_RESTRICT gh_z,
              const T *RC_RESTRICT b_r, const T *RC_RESTRICT b_z, const T *RC_RESTRICT hp,
              T *RC_RESTRICT s_r, T *RC_RESTRICT s_z, T *RC_RESTRICT rh)
{
    for (int j = 0; j < n; j++) {
        T r = SIGMOID(gi_r[j] + gh_r[j] + b_r[j]);
        T z = SIGMOID(gi_z[j] + gh_z[j] + b_z[j]);
        s_r[j] = r;
        s_z[j] = z;
        rh[j] = r * hp[j];
    }
}

/* reset_before, second half: n = tanh(gi_n + gh_n + b_in + b_hn) with
 * gh_n = (r * h) @ W_hn^T. */
static RC_ALWAYS_INLINE void
S(gru_fwd_n)(int n, const T *RC_RESTRICT gi_n, const T *RC_RESTRICT gh_n,
             const T *RC_RESTRICT b_n, const T *RC_RESTRICT s_z, const T *RC_RESTRICT hp,
             T *RC_RESTRICT hn, T *RC_RESTRICT out, T *RC_RESTRICT s_n,
             T *RC_RESTRICT s_hp, const int train)
{
    for (int j = 0; j < n; j++) {
        T g = TANH(gi_n[j] + gh_n[j] + b_n[j]);
        T z = s_z[j];
        T h = hp[j];
        T y = g + z * (h - g);
        hn[j] = y;
        out[j] = y;
        if (train) {
            s_n[j] = g;
            s_hp[j] = h;
        }
    }
}

static RC_ALWAYS_INLINE void
S(gru_bwd_after)(int n, const T *RC_RESTRICT s_r, const T *RC_RESTRICT s_z,
                 const T *RC_RESTRICT s_n, const T *RC_RESTRICT s_aux,
                 const T *RC_RESTRICT s_hp, const T *RC_RESTRICT dout, T *RC_RESTRICT dh,
                 T *RC_RESTRICT di_r, T *RC_RESTRICT di_z, T *RC_RESTRICT di_n,
                 T *RC_RESTRICT dh_r, T *RC_RESTRICT dh_z, T *RC_RESTRICT dh_n)
{
    for (int j = 0; j < n; j++) {
        T r = s_r[j], z = s_z[j], g = s_n[j];
        T d = dh[j] + dout[j];
        T dn = d * (1 - z) * (1 - g * g);
        T dz = d * (s_hp[j] - g) * z * (1 - z);
        T dr = dn * s_aux[j] * r * (1 - r);
        di_r[j] = dr;
        di_z[j] = dz;
        di_n[j] = dn;
        dh_r[j] = dr;
        dh_z[j] = dz;
        dh_n[j] = dn * r;
        dh[j] = d * z;
    }
}

/* reset_before, backward of the second half: the n and z gradients; dh
 * keeps d = dh + dout for the first half. */
static RC_ALWAYS_INLINE void
S(gru_bwd_n)(int n, const T *RC_RESTRICT s_z, const T *RC_RESTRICT s_n,
             const T *RC_RESTRICT s_hp, const T *RC_RESTRICT dout, T *RC_RESTRICT dh,
             T *RC_RESTRICT di_z, T *RC_RESTRICT di_n, T *RC_RESTRICT dh_z,
             T *RC_RESTRICT dh_n)
{
    for (int j = 0; j < n; j++) {
        T z = s_z[j], g = s_n[j];
        T d = dh[j] + dout[j];
        T dn = d * (1 - z) * (1 - g * g);
        T dz = d * (s_hp[j] - g) * z * (1 - z);
        di_z[j] = dz;
        di_n[j] = dn;
        dh_z[j] = dz;
        dh_n[j] = dn;
        dh[j] = d;
    }
}

/* reset_before, backward of the first half, given drh = dL/d(r * h). */
static RC_ALWAYS_INLINE void
S(gru_bwd_rz)(int n, const T *RC_RESTRICT s_r, const T *RC_RESTRICT s_z,
              const T *RC_RESTRICT s_hp, const T *RC_RESTRICT drh, T *RC_RESTRICT dh,
              T *RC_RESTRICT di_r, T *RC_RESTRICT dh_r)
{
    for (int j = 0; j < n; j++) {
        T r = s_r[j];
        T dr = drh[j] * s_hp[j] * r * (1 - r);
        di_r[j] = dr;
        dh_r[j] = dr;
        dh[j] = dh[j] * s_z[j] + drh[j] * r;
    }
}

/* ---- LSTM (gates i, f, g, o) --------------------------------------------------- */

/* c' = f c + i g, m = o tanh(c'); m goes to hn (no projection) or to the
 * projection's input. */
static RC_ALWAYS_INLINE void
S(lstm_fwd)(int n, const T *RC_RESTRICT gi_i, const T *RC_RESTRICT gi_f,
            const T *RC_RESTRICT gi_g, const T *RC_RESTRICT gi_o,
            const T *RC_RESTRICT gh_i, const T *RC_RESTRICT gh_f,
            const T *RC_RESTRICT gh_g, const T *RC_RESTRICT gh_o,
            const T *RC_RESTRICT b_i, const T *RC_RESTRICT b_f, const T *RC_RESTRICT b_g,
            const T *RC_RESTRICT b_o, T *RC_RESTRICT c, T *RC_RESTRICT m,
            T *RC_RESTRICT out, T *RC_RESTRICT s_i, T *RC_RESTRICT s_f,
            T *RC_RESTRICT s_g, T *RC_RESTRICT s_o, T *RC_RESTRICT s_cp,
            T *RC_RESTRICT s_tc, const int train, const int write_out)
{
    for (int j = 0; j < n; j++) {
        T i = SIGMOID(gi_i[j] + gh_i[j] + b_i[j]);
        T f = SIGMOID(gi_f[j] + gh_f[j] + b_f[j]);
        T g = TANH(gi_g[j] + gh_g[j] + b_g[j]);
        T o = SIGMOID(gi_o[j] + gh_o[j] + b_o[j]);
        T cp = c[j];
        T cn = f * cp + i * g;
        T th = TANH(cn);
        T y = o * th;
        c[j] = cn;
        m[j] = y;
        if (write_out)
            out[j] = y;
        if (train) {
            s_i[j] = i;
            s_f[j] = f;
            s_g[j] = g;
            s_o[j] = o;
            s_cp[j] = cp;
            s_tc[j] = th;
        }
    }
}

/* dm: dL/dm_t; the gate gradients go to di* and dh*; dc becomes
 * dL/dc_{t-1}. */
static RC_ALWAYS_INLINE void
S(lstm_bwd)(int n, const T *RC_RESTRICT dm, const T *RC_RESTRICT s_i,
            const T *RC_RESTRICT s_f, const T *RC_RESTRICT s_g, const T *RC_RESTRICT s_o,
            const T *RC_RESTRICT s_cp, const T *RC_RESTRICT s_tc, T *RC_RESTRICT dc,
            T *RC_RESTRICT di_i, T *RC_RESTRICT di_f, T *RC_RESTRICT di_g,
            T *RC_RESTRICT di_o, T *RC_RESTRICT dh_i, T *RC_RESTRICT dh_f,
            T *RC_RESTRICT dh_g, T *RC_RESTRICT dh_o)
{
    for (int j = 0; j < n; j++) {
        T i = s_i[j], f = s_f[j], g = s_g[j], o = s_o[j], th = s_tc[j], d = dm[j];
        T dct = dc[j] + d * o * (1 - th * th);
        T gi = dct * g * i * (1 - i);
        T gf = dct * s_cp[j] * f * (1 - f);
        T gg = dct * i * (1 - g * g);
        T go = d * th * o * (1 - o);
        dc[j] = dct * f;
        di_i[j] = gi;
        di_f[j] = gf;
        di_g[j] = gg;
        di_o[j] = go;
        dh_i[j] = gi;
        dh_f[j] = gf;
        dh_g[j] = gg;
        dh_o[j] = go;
    }
}

/* ---- Elman RNN and the Jordan network's activations ------------------------------ */

/* y = act(gi + gh + b) (and out = y when write_out); relu is written pre < 0 ? 0 : pre so that NaN
 * stays NaN. */
static RC_ALWAYS_INLINE void
S(act_fwd)(int act, int n, const T *RC_RESTRICT gi, const T *RC_RESTRICT gh,
           const T *RC_RESTRICT b, T *RC_RESTRICT y, T *RC_RESTRICT out, const int write_out)
{
    switch (act) {
    case RC_TANH:
        for (int j = 0; j < n; j++) {
            T v = TANH(gi[j] + gh[j] + b[j]);
            y[j] = v;
            if (write_out)
                out[j] = v;
        }
        break;
    case RC_RELU:
        for (int j = 0; j < n; j++) {
            T p = gi[j] + gh[j] + b[j];
            T v = p < 0 ? 0 : p;
            y[j] = v;
            if (write_out)
                out[j] = v;
        }
        break;
    case RC_SIGMOID:
        for (int j = 0; j < n; j++) {
            T v = SIGMOID(gi[j] + gh[j] + b[j]);
            y[j] = v;
            if (write_out)
                out[j] = v;
        }
        break;
    default:
        for (int j = 0; j < n; j++) {
            T v = gi[j] + gh[j] + b[j];
            y[j] = v;
            if (write_out)
                out[j] = v;
        }
    }
}

/* dpre = (dh + dout) * act'(y) from the activation's output y (tanh:
 * 1 - y^2; relu: [y > 0], so a NaN output passes no gradient; sigmoid:
 * y (1 - y)). */
static RC_ALWAYS_INLINE void
S(act_bwd)(int act, int n, const T *RC_RESTRICT y, const T *RC_RESTRICT dh,
           const T *RC_RESTRICT dout, T *RC_RESTRICT d1, T *RC_RESTRICT d2)
{
    switch (act) {
    case RC_TANH:
        for (int j = 0; j < n; j++) {
            T d = (dh[j] + dout[j]) * (1 - y[j] * y[j]);
            d1[j] = d;
            d2[j] = d;
        }
        break;
    case RC_RELU:
        for (int j = 0; j < n; j++) {
            T d = y[j] > 0 ? dh[j] + dout[j] : 0;
            d1[j] = d;
            d2[j] = d;
        }
        break;
    case RC_SIGMOID:
        for (int j = 0; j < n; j++) {
            T d = (dh[j] + dout[j]) * (y[j] * (1 - y[j]));
            d1[j] = d;
            d2[j] = d;
        }
        break;
    default:
        for (int j = 0; j < n; j++) {
            T d = dh[j] + dout[j];
            d1[j] = d;
            d2[j] = d;
        }
    }
}
