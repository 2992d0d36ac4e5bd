"""Jordan-network kernels: one layer, one direction, a time-major padded batch.

T steps, B batch, I inputs, H hidden units, O outputs; the state carried
from step to step is the previous output y (B, O)::

    h_t = act(x_t @ W_ih^T + b_ih + y_{t-1} @ W_yh^T)        (B, H)
    y_t = out_act(h_t @ W_hy^T + b_hy)                        (B, O)

Sequence b runs t = 0 .. len_b - 1; out[t, b] = 0 for t >= len_b and its
state stops at its last valid step. Arrays are C-contiguous; the caller
(gru_cy.nn.jordan) validates and allocates every output, tape and workspace
(forward_work_size, backward_work_size). The time loops run with the GIL
released, never allocate and never call into Python.

Per step two small products: the recurrent one y_{t-1} @ W_yh^T, added onto
the step's input projection, and the output one h_t @ W_hy^T (GEMVs when
one sequence runs). The input projection is one GEMM per chunk of steps
(inference: a workspace that does not grow with T; training: all steps at
once, straight into the tape's h, which the activation then overwrites).
Backward keeps dA = dL/d(pre-activation of h) and dZ = dL/d(pre-activation
of y) for every step and runs dx and the weight gradients as GEMMs over all
rows after the loop.

When the lengths are uneven and non-increasing (gru_cy sorts batches so
when it pays), the sequences still running at a step are the first rows,
and the per-step products cover only those.

Training tape: hs (T, B, H) holds h_t, ys (T + 1, B, O) holds y_{t-1} at
index t (ys[0] = y0); rows of steps past a sequence's end hold zeros, so
that the weight-gradient GEMMs over every row see finite values.
"""

from cython cimport floating
from libc.string cimport memset, memcpy

from gru_cy.kernels._blas cimport (
    gemm, gemm_packed, NoTrans, pack, packed_elems, panel_stride, Trans,
)
from gru_cy.kernels._recurrent cimport (
    max_length, pack_steps, use_packed, project, rows_input_grads, rows_recurrent, rows_recurrent_back,
    rows_recurrent_grads, sorted_desc, sum_rows,
)

cdef extern from "_jordan_gates.h" nogil:
    void jordan_hidden_f32(int act, int rows, int H, float *a, const float *b_ih)
    void jordan_hidden_f64(int act, int rows, int H, double *a, const double *b_ih)
    void jordan_output_f32(int out_act, int rows, int O, const float *z, const float *b_hy,
                           float *y)
    void jordan_output_f64(int out_act, int rows, int O, const double *z, const double *b_hy,
                           double *y)
    void jordan_dz_f32(int out_act, int rows, int O, const float *dout, const float *dy,
                       const float *y, float *dz)
    void jordan_dz_f64(int out_act, int rows, int O, const double *dout, const double *dy,
                       const double *y, double *dz)
    void jordan_da_f32(int act, int rows, int H, const float *h, float *da)
    void jordan_da_f64(int act, int rows, int H, const double *h, double *da)


# Activation codes shared with _jordan_gates.h.
HIDDEN_ACTIVATIONS = ("tanh", "relu", "sigmoid")
OUTPUT_ACTIVATIONS = ("identity", "tanh", "sigmoid")


# ---- fused dispatchers over the C functions --------------------------------

cdef inline void hidden(int act, int rows, int H, floating *a,
                        const floating *b_ih) noexcept nogil:
    """a := act(a + b_ih), (rows, H) in place"""
    if floating is float:
        jordan_hidden_f32(act, rows, H, a, b_ih)
    else:
        jordan_hidden_f64(act, rows, H, a, b_ih)

cdef inline void output(int out_act, int rows, int O, const floating *z,
                        const floating *b_hy, floating *y) noexcept nogil:
    """y := out_act(z + b_hy), (rows, O)"""
    if floating is float:
        jordan_output_f32(out_act, rows, O, z, b_hy, y)
    else:
        jordan_output_f64(out_act, rows, O, z, b_hy, y)

cdef inline void d_output(int out_act, int rows, int O, const floating *dout,
                          const floating *dy, const floating *y,
                          floating *dz) noexcept nogil:
    """dz := (dout + dy) * out_act'(y)"""
    if floating is float:
        jordan_dz_f32(out_act, rows, O, dout, dy, y, dz)
    else:
        jordan_dz_f64(out_act, rows, O, dout, dy, y, dz)

cdef inline void d_hidden(int act, int rows, int H, const floating *h,
                          floating *da) noexcept nogil:
    """da := da * act'(h), in place"""
    if floating is float:
        jordan_da_f32(act, rows, H, h, da)
    else:
        jordan_da_f64(act, rows, H, h, da)

# ---- forward ----------------------------------------------------------------

cdef void _forward(floating *out, floating *y, floating *hs, floating *ys,
                   floating *gi, int chunk, floating *z, floating *w_yh_p, floating *w_hy_p,
                   const floating *x, const floating *w_ih, const floating *b_ih,
                   const floating *w_yh, const floating *w_hy, const floating *b_hy,
                   const long long *lengths, bint full,
                   int T, int B, int I, int H, int O, int act, int out_act,
                   bint train) noexcept nogil:
    # out (T, B, O); y (B, O) the state, y0 in and y_n out; hs (T, B, H) and
    # ys (T + 1, B, O) the tape (train), else gi (chunk * B, H) a workspace;
    # z (B, O), and w_yh_p, w_hy_p for w_yh.T and w_hy.T packed (unused for
    # one step).
    cdef Py_ssize_t BH = <Py_ssize_t>B * H, BO = <Py_ssize_t>B * O
    cdef int max_len = max_length(lengths, full, T, B)
    cdef bint prefix = sorted_desc(lengths, full, B)
    cdef bint block = full or prefix     # the running rows are rows 0 .. n - 1
    cdef int n = B                       # rows the per-step products cover
    cdef int s, b, t0 = 0, count = 0
    cdef floating *a
    cdef floating *out_s

    if use_packed(T, B, O, H):
        pack(True, O, H, w_yh, O, w_yh_p)
        pack(True, H, O, w_hy, H, w_hy_p)
    else:
        w_yh_p = w_hy_p = NULL
    if train:
        # ys[0] = y0, zero rows for sequences that never start
        memcpy(ys, y, BO * sizeof(floating))
        if not full:
            for b in range(B):
                if lengths[b] == 0:
                    memset(ys + <Py_ssize_t>b * O, 0, O * sizeof(floating))
        # hs[:max_len] = x[:max_len] @ w_ih.T      (max_len * B, H)
        project(False, max_len, B, I, H, x, w_ih, NULL, hs)
        gi = hs
        count = max_len

    for s in range(max_len):
        if s >= t0 + count:
            t0 = s
            count = min(chunk, max_len - s)
            # gi = x[t0:t0 + count] @ w_ih.T     (count * B, H)
            project(False, count, B, I, H, x + <Py_ssize_t>t0 * B * I, w_ih, NULL, gi)
        a = gi + (s - t0) * BH
        if prefix:
            while lengths[n - 1] <= s:
                n -= 1
        if w_yh_p != NULL:
            # a[:n] += y[:n] @ w_yh.T
            gemm_packed(n, O, 0, H, y, O, w_yh_p, panel_stride(O, sizeof(floating)),
                        <floating>1.0, a, H)
        else:
            # a[:n] += y[:n] @ w_yh.T
            gemm(NoTrans, Trans, n, H, O, <floating>1.0, y, O, w_yh, O, <floating>1.0, a, H)
        if block:
            hidden(act, n, H, a, b_ih)
            memset(a + <Py_ssize_t>n * H, 0, <Py_ssize_t>(B - n) * H * sizeof(floating))
        else:
            for b in range(B):
                if s < lengths[b]:
                    hidden(act, 1, H, a + <Py_ssize_t>b * H, b_ih)
                else:
                    memset(a + <Py_ssize_t>b * H, 0, H * sizeof(floating))
        # z[:n] = h[:n] @ w_hy.T     (n, O)
        rows_recurrent(n, 0, O, H, O, a, w_hy, w_hy_p, z)
        out_s = out + s * BO
        if block:
            output(out_act, n, O, z, b_hy, out_s)
            memset(out_s + <Py_ssize_t>n * O, 0, <Py_ssize_t>(B - n) * O * sizeof(floating))
            memcpy(y, out_s, <Py_ssize_t>n * O * sizeof(floating))
        else:
            for b in range(B):
                if s < lengths[b]:
                    output(out_act, 1, O, z + <Py_ssize_t>b * O, b_hy, out_s + <Py_ssize_t>b * O)
                    memcpy(y + <Py_ssize_t>b * O, out_s + <Py_ssize_t>b * O,
                           O * sizeof(floating))
                else:
                    memset(out_s + <Py_ssize_t>b * O, 0, O * sizeof(floating))
        if train:
            # ys[s + 1] = out[s], finished rows zero
            memcpy(ys + (s + 1) * BO, out_s, BO * sizeof(floating))

    # Steps past the longest sequence change nothing.
    memset(out + max_len * BO, 0, <Py_ssize_t>(T - max_len) * BO * sizeof(floating))
    if train:
        memset(hs + max_len * BH, 0, <Py_ssize_t>(T - max_len) * BH * sizeof(floating))
        memset(ys + (max_len + 1) * BO, 0, <Py_ssize_t>(T - max_len) * BO * sizeof(floating))


# ---- backward ----------------------------------------------------------------

cdef void _backward(floating *dx, floating *dy,
                    floating *g_wih, floating *g_bih, floating *g_wyh, floating *g_why,
                    floating *g_bhy, floating *da_all, floating *dz_all, floating *tmp,
                    floating *w_hy_p, floating *w_yh_p,
                    const floating *dout, const floating *hs, const floating *ys,
                    const floating *x, const floating *w_ih, const floating *w_yh,
                    const floating *w_hy, const long long *lengths, bint full,
                    int T, int B, int I, int H, int O, int act, int out_act) noexcept nogil:
    # dx (T, B, I) written; dy (B, O) dy_n in, dy0 out; g_* added into
    # (g_bih, g_bhy NULL without bias); da_all (T, B, H), dz_all (T, B, O),
    # tmp (B, O) workspaces, w_hy_p and w_yh_p room for w_hy and w_yh packed
    # (unused for one step); dout (T, B, O); hs, ys the forward's tape.
    cdef Py_ssize_t BH = <Py_ssize_t>B * H, BO = <Py_ssize_t>B * O
    cdef int max_len = max_length(lengths, full, T, B)
    cdef bint prefix = sorted_desc(lengths, full, B)
    cdef bint block = full or prefix
    cdef int n = 0 if prefix else B
    cdef int s, b
    cdef Py_ssize_t M = <Py_ssize_t>max_len * B
    cdef floating *dz
    cdef floating *da
    cdef const floating *y_s
    cdef const floating *h_s
    cdef const floating *dout_s

    if use_packed(T, B, O, H):
        pack(False, O, H, w_hy, H, w_hy_p)
        pack(False, H, O, w_yh, O, w_yh_p)
    else:
        w_hy_p = w_yh_p = NULL
    for s in range(max_len - 1, -1, -1):
        if prefix:
            while n < B and lengths[n] > s:
                n += 1
        dz = dz_all + s * BO
        da = da_all + s * BH
        y_s = ys + (s + 1) * BO
        h_s = hs + s * BH
        dout_s = dout + s * BO
        # dz = (dout[s] + dy) * out_act'(y_s)   (running rows; others zero)
        if block:
            d_output(out_act, n, O, dout_s, dy, y_s, dz)
            memset(dz + <Py_ssize_t>n * O, 0, <Py_ssize_t>(B - n) * O * sizeof(floating))
        else:
            for b in range(B):
                if s < lengths[b]:
                    d_output(out_act, 1, O, dout_s + <Py_ssize_t>b * O, dy + <Py_ssize_t>b * O,
                             y_s + <Py_ssize_t>b * O, dz + <Py_ssize_t>b * O)
                else:
                    memset(dz + <Py_ssize_t>b * O, 0, O * sizeof(floating))
        # da[:n] = dz[:n] @ w_hy     (n, H)
        rows_recurrent_back(n, n, 0, O, H, O, dz, w_hy, w_hy_p, <floating>0.0, da)
        # da *= act'(h_s)   (running rows; others zero)
        if block:
            d_hidden(act, n, H, h_s, da)
            memset(da + <Py_ssize_t>n * H, 0, <Py_ssize_t>(B - n) * H * sizeof(floating))
        else:
            for b in range(B):
                if s < lengths[b]:
                    d_hidden(act, 1, H, h_s + <Py_ssize_t>b * H, da + <Py_ssize_t>b * H)
                else:
                    memset(da + <Py_ssize_t>b * H, 0, H * sizeof(floating))
        # The gradient reaching y_{s-1}: dy = da @ w_yh for the running rows.
        if block:
            # dy[:n] = da[:n] @ w_yh     (n, O)
            rows_recurrent_back(n, n, 0, H, O, H, da, w_yh, w_yh_p, <floating>0.0, dy)
        else:
            # tmp = da @ w_yh, copied to the running rows of dy
            rows_recurrent_back(B, B, 0, H, O, H, da, w_yh, w_yh_p, <floating>0.0, tmp)
            for b in range(B):
                if s < lengths[b]:
                    memcpy(dy + <Py_ssize_t>b * O, tmp + <Py_ssize_t>b * O, O * sizeof(floating))

    memset(dx, 0, <Py_ssize_t>T * B * I * sizeof(floating))
    if M == 0:
        return
    # g_wih += da.T @ x; dx[:max_len] += da @ w_ih
    rows_input_grads(g_wih, dx, da_all, x, w_ih, <int>M, I, H)
    # g_wyh += da.T @ ys[:max_len]    (H, O)
    rows_recurrent_grads(g_wyh, da_all, ys, <int>M, H, O, H)
    # g_why += dz.T @ hs[:max_len]    (O, H)
    rows_recurrent_grads(g_why, dz_all, hs, <int>M, O, H, O)
    if g_bih != NULL:
        # g_bih += da.sum(0); g_bhy += dz.sum(0)
        sum_rows(<int>M, H, da_all, H, g_bih)
        sum_rows(<int>M, O, dz_all, O, g_bhy)


# ---- entry points -------------------------------------------------------------

def forward_work_size(int T, int B, int H, int O, int chunk, bint train):
    """Elements of the workspace jordan_forward needs."""
    cdef Py_ssize_t n = <Py_ssize_t>B * O                        # z
    if pack_steps(T):
        n += packed_elems(O, H) + packed_elems(H, O)             # packed weights
    if not train:
        n += <Py_ssize_t>chunk * B * H                           # gi
    return n


def backward_work_size(int T, int B, int H, int O):
    """Elements of the workspace jordan_backward needs."""
    cdef Py_ssize_t n = <Py_ssize_t>T * B * (H + O) + <Py_ssize_t>B * O   # dA, dZ, tmp
    if pack_steps(T):
        n += packed_elems(O, H) + packed_elems(H, O)             # packed weights
    return n


def jordan_forward(floating[:, :, ::1] out, floating[:, ::1] y, floating[:, :, ::1] hs,
                   floating[:, :, ::1] ys, floating[::1] work, const floating[:, :, ::1] x,
                   const floating[:, ::1] w_ih, const floating[::1] b_ih,
                   const floating[:, ::1] w_yh, const floating[:, ::1] w_hy,
                   const floating[::1] b_hy, const long long[::1] lengths, bint full,
                   int act, int out_act, int chunk):
    """Run the sequence: out (T, B, O) every y_t, y (B, O) y0 in, y_n out.

    Training: hs (T, B, H) and ys (T + 1, B, O) receive the tape; else both
    None and chunk is the number of steps per input-projection GEMM. work has
    forward_work_size(T, B, H, O, chunk, train) elements. x (T, B, I); weights
    w_ih (H, I), w_yh (H, O), w_hy (O, H); biases (H,), (O,) or both None;
    lengths (B,) int64 in [0, T] (full: every length is T). Codes: act 0 tanh,
    1 relu, 2 sigmoid; out_act 0 identity, 1 tanh, 2 sigmoid.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef int H = w_ih.shape[0], O = w_hy.shape[0]
    cdef bint train = hs is not None
    if T == 0 or B == 0:
        return
    cdef floating *w = &work[0]
    cdef Py_ssize_t w_t = packed_elems(O, H) + packed_elems(H, O) if pack_steps(T) else 0
    cdef floating *hs_p = &hs[0, 0, 0] if train else NULL
    cdef floating *ys_p = &ys[0, 0, 0] if train else NULL
    cdef const floating *bi = NULL
    cdef const floating *bh = NULL
    if b_ih is not None:
        bi = &b_ih[0]
        bh = &b_hy[0]
    with nogil:
        _forward(&out[0, 0, 0], &y[0, 0], hs_p, ys_p, w + <Py_ssize_t>B * O + w_t, chunk, w,
                 w + <Py_ssize_t>B * O, w + <Py_ssize_t>B * O + packed_elems(O, H),
                 &x[0, 0, 0], &w_ih[0, 0], bi, &w_yh[0, 0], &w_hy[0, 0], bh,
                 &lengths[0], full, T, B, I, H, O, act, out_act, train)


def jordan_backward(floating[:, :, ::1] dx, floating[:, ::1] dy, floating[:, ::1] g_wih,
                    floating[::1] g_bih, floating[:, ::1] g_wyh, floating[:, ::1] g_why,
                    floating[::1] g_bhy, floating[::1] work, const floating[:, :, ::1] dout,
                    const floating[:, :, ::1] hs, const floating[:, :, ::1] ys,
                    const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                    const floating[:, ::1] w_yh, const floating[:, ::1] w_hy,
                    const long long[::1] lengths, bint full, int act, int out_act):
    """Backpropagate through jordan_forward's training run.

    dx (T, B, I) is written; dy (B, O) holds dL/dy_n on entry and dL/dy0 on
    return; the gradients g_* (shapes of the weights; the two bias ones both
    None without bias) are added into. work has backward_work_size(T, B, H,
    O) elements; dout (T, B, O); hs, ys the tape; the rest as in
    jordan_forward.
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2]
    cdef int H = w_ih.shape[0], O = w_hy.shape[0]
    if T == 0 or B == 0:
        return
    cdef floating *w = &work[0]
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef floating *gbi = NULL
    cdef floating *gbh = NULL
    if g_bih is not None:
        gbi = &g_bih[0]
        gbh = &g_bhy[0]
    with nogil:
        _backward(&dx[0, 0, 0], &dy[0, 0], &g_wih[0, 0], gbi, &g_wyh[0, 0], &g_why[0, 0], gbh,
                  w, w + TB * H, w + TB * (H + O), w + TB * (H + O) + B * O,
                  w + TB * (H + O) + B * O + packed_elems(O, H), &dout[0, 0, 0], &hs[0, 0, 0],
                  &ys[0, 0, 0],
                  &x[0, 0, 0], &w_ih[0, 0], &w_yh[0, 0], &w_hy[0, 0], &lengths[0], full,
                  T, B, I, H, O, act, out_act)
