"""GRU kernels: one layer, one direction, a time-major padded batch.

Shapes (see DESIGN.md §1): T steps, B batch, I inputs, H hidden units.
Gate order r, z, n. Arrays are C-contiguous; the caller (gru_cy.gru)
validates, allocates every output and workspace, and zero-fills the ones
documented as such. The kernels trust their arguments, release the GIL for
the whole time loop, never allocate and never call into Python.

Step s of the loop handles, for each sequence b with s < len_b, time index
t = s (forward) or t = len_b - 1 - s (reverse): each sequence is reversed
within its own length. Saved activations (gates, aux, hprev) are indexed by
step s; per-time quantities (x, out, dgi, dx) by t.
"""

from cython cimport floating
from libc.string cimport memset, memcpy

from gru_cy._blas cimport gemm, NoTrans, Trans

cdef extern from "_gru_gates.h" nogil:
    void gru_fwd_after_f32(int H, const float *gi, const float *gh, const float *bias,
                           float *h, float *out)
    void gru_fwd_after_f64(int H, const double *gi, const double *gh, const double *bias,
                           double *h, double *out)
    void gru_fwd_after_train_f32(int H, const float *gi, const float *gh, const float *bias,
                                 float *h, float *out, float *gates, float *aux, float *hprev)
    void gru_fwd_after_train_f64(int H, const double *gi, const double *gh, const double *bias,
                                 double *h, double *out, double *gates, double *aux,
                                 double *hprev)
    void gru_fwd_before_rz_f32(int H, const float *gi, const float *gh, const float *bias,
                               const float *h, float *gates, float *rh)
    void gru_fwd_before_rz_f64(int H, const double *gi, const double *gh, const double *bias,
                               const double *h, double *gates, double *rh)
    void gru_fwd_before_n_f32(int H, const float *gi, const float *ghn, const float *bias,
                              float *gates, float *h, float *out, float *hprev)
    void gru_fwd_before_n_f64(int H, const double *gi, const double *ghn, const double *bias,
                              double *gates, double *h, double *out, double *hprev)
    void gru_bwd_after_f32(int H, const float *gates, const float *aux, const float *hprev,
                           const float *dout, float *dh, float *dgi, float *dgh)
    void gru_bwd_after_f64(int H, const double *gates, const double *aux, const double *hprev,
                           const double *dout, double *dh, double *dgi, double *dgh)
    void gru_bwd_before_n_f32(int H, const float *gates, const float *hprev,
                              const float *dout, float *dh, float *dgi, float *dgh)
    void gru_bwd_before_n_f64(int H, const double *gates, const double *hprev,
                              const double *dout, double *dh, double *dgi, double *dgh)
    void gru_bwd_before_rz_f32(int H, const float *gates, const float *hprev,
                               const float *drh, float *dh, float *dgi, float *dgh)
    void gru_bwd_before_rz_f64(int H, const double *gates, const double *hprev,
                               const double *drh, double *dh, double *dgi, double *dgh)


# ---- thin fused dispatchers over the C gate rows -------------------------

cdef inline void fwd_after(int H, const floating *gi, const floating *gh,
                           const floating *bias, floating *h,
                           floating *out) noexcept nogil:
    if floating is float:
        gru_fwd_after_f32(H, gi, gh, bias, h, out)
    else:
        gru_fwd_after_f64(H, gi, gh, bias, h, out)

cdef inline void fwd_after_train(int H, const floating *gi, const floating *gh,
                                 const floating *bias, floating *h, floating *out,
                                 floating *gates, floating *aux,
                                 floating *hprev) noexcept nogil:
    if floating is float:
        gru_fwd_after_train_f32(H, gi, gh, bias, h, out, gates, aux, hprev)
    else:
        gru_fwd_after_train_f64(H, gi, gh, bias, h, out, gates, aux, hprev)

cdef inline void fwd_before_rz(int H, const floating *gi, const floating *gh,
                               const floating *bias, const floating *h,
                               floating *gates, floating *rh) noexcept nogil:
    if floating is float:
        gru_fwd_before_rz_f32(H, gi, gh, bias, h, gates, rh)
    else:
        gru_fwd_before_rz_f64(H, gi, gh, bias, h, gates, rh)

cdef inline void fwd_before_n(int H, const floating *gi, const floating *ghn,
                              const floating *bias, floating *gates, floating *h,
                              floating *out, floating *hprev) noexcept nogil:
    if floating is float:
        gru_fwd_before_n_f32(H, gi, ghn, bias, gates, h, out, hprev)
    else:
        gru_fwd_before_n_f64(H, gi, ghn, bias, gates, h, out, hprev)

cdef inline void bwd_after(int H, const floating *gates, const floating *aux,
                           const floating *hprev, const floating *dout,
                           floating *dh, floating *dgi, floating *dgh) noexcept nogil:
    if floating is float:
        gru_bwd_after_f32(H, gates, aux, hprev, dout, dh, dgi, dgh)
    else:
        gru_bwd_after_f64(H, gates, aux, hprev, dout, dh, dgi, dgh)

cdef inline void bwd_before_n(int H, const floating *gates, const floating *hprev,
                              const floating *dout, floating *dh, floating *dgi,
                              floating *dgh) noexcept nogil:
    if floating is float:
        gru_bwd_before_n_f32(H, gates, hprev, dout, dh, dgi, dgh)
    else:
        gru_bwd_before_n_f64(H, gates, hprev, dout, dh, dgi, dgh)

cdef inline void bwd_before_rz(int H, const floating *gates, const floating *hprev,
                               const floating *drh, floating *dh, floating *dgi,
                               floating *dgh) noexcept nogil:
    if floating is float:
        gru_bwd_before_rz_f32(H, gates, hprev, drh, dh, dgi, dgh)
    else:
        gru_bwd_before_rz_f64(H, gates, hprev, drh, dh, dgi, dgh)


# ---- forward --------------------------------------------------------------

cdef void _forward(floating *out, Py_ssize_t out_ld, floating *h,
                   floating *gates, floating *aux, floating *hprev,
                   floating *gi, Py_ssize_t chunk, floating *gh,
                   const floating *x, const floating *w_ih, const floating *w_hh,
                   const floating *bias, const long long *lengths,
                   int T, int B, int I, int H, bint reverse, bint reset_after,
                   bint train) noexcept nogil:
    cdef Py_ssize_t H3 = 3 * H
    cdef int s, b, t, t0 = 0, count = 0, max_len = 0, need
    cdef floating *g_row
    cdef floating *a_row
    cdef floating *p_row
    # Inference keeps one step of gates / aux / hprev; training keeps all.
    cdef Py_ssize_t step_stride = <Py_ssize_t>B * H if train else 0
    for b in range(B):
        if lengths[b] > max_len:
            max_len = <int>lengths[b]
    if not reverse:
        t0 = 0
        count = 0
    else:
        t0 = T
        count = 0
    for s in range(max_len):
        # Refill the input projection when step s needs times outside the
        # chunk: gi[t - t0] = x[t] @ w_ih.T for t in [t0, t0 + count).
        # (With uneven lengths in reverse the caller passes chunk = T.)
        need = s if not reverse else T - 1 - s
        if chunk >= T:
            if count == 0:
                t0 = 0
                count = T
                gemm(NoTrans, Trans, T * B, <int>H3, I, <floating>1.0, x, I,
                     w_ih, I, <floating>0.0, gi, <int>H3)
        elif need < t0 or need >= t0 + count:
            if not reverse:
                t0 = s
                count = <int>min(chunk, T - s)
            else:
                t0 = <int>max(0, need - chunk + 1)
                count = need - t0 + 1
            gemm(NoTrans, Trans, count * B, <int>H3, I, <floating>1.0,
                 x + <Py_ssize_t>t0 * B * I, I, w_ih, I, <floating>0.0, gi, <int>H3)

        if reset_after:
            # gh = h @ w_hh.T   (B, 3H)
            gemm(NoTrans, Trans, B, <int>H3, H, <floating>1.0, h, H, w_hh, H,
                 <floating>0.0, gh, <int>H3)
            for b in range(B):
                g_row = gates + s * step_stride * 3 + b * H3
                a_row = aux + s * step_stride + <Py_ssize_t>b * H
                p_row = hprev + s * step_stride + <Py_ssize_t>b * H
                if s >= lengths[b]:
                    if train:
                        memset(g_row, 0, H3 * sizeof(floating))
                        memset(a_row, 0, H * sizeof(floating))
                        memcpy(p_row, h + <Py_ssize_t>b * H, H * sizeof(floating))
                    continue
                t = s if not reverse else <int>lengths[b] - 1 - s
                if train:
                    fwd_after_train(H, gi + (<Py_ssize_t>(t - t0) * B + b) * H3,
                                    gh + b * H3, bias, h + <Py_ssize_t>b * H,
                                    out + (<Py_ssize_t>t * B + b) * out_ld,
                                    g_row, a_row, p_row)
                else:
                    fwd_after(H, gi + (<Py_ssize_t>(t - t0) * B + b) * H3,
                              gh + b * H3, bias, h + <Py_ssize_t>b * H,
                              out + (<Py_ssize_t>t * B + b) * out_ld)
        else:
            # gh[:, :2H] = h @ w_hh[:2H].T
            gemm(NoTrans, Trans, B, 2 * H, H, <floating>1.0, h, H, w_hh, H,
                 <floating>0.0, gh, <int>H3)
            for b in range(B):
                g_row = gates + s * step_stride * 3 + b * H3
                a_row = aux + s * step_stride + <Py_ssize_t>b * H
                if s >= lengths[b]:
                    memset(g_row, 0, H3 * sizeof(floating))
                    memset(a_row, 0, H * sizeof(floating))
                    continue
                t = s if not reverse else <int>lengths[b] - 1 - s
                fwd_before_rz(H, gi + (<Py_ssize_t>(t - t0) * B + b) * H3,
                              gh + b * H3, bias, h + <Py_ssize_t>b * H, g_row, a_row)
            # gh[:, 2H:] = (r * h) @ w_hh[2H:].T
            gemm(NoTrans, Trans, B, H, H, <floating>1.0, aux + s * step_stride, H,
                 w_hh + 2 * <Py_ssize_t>H * H, H, <floating>0.0, gh + 2 * H, <int>H3)
            for b in range(B):
                g_row = gates + s * step_stride * 3 + b * H3
                p_row = hprev + s * step_stride + <Py_ssize_t>b * H
                if s >= lengths[b]:
                    memcpy(p_row, h + <Py_ssize_t>b * H, H * sizeof(floating))
                    continue
                t = s if not reverse else <int>lengths[b] - 1 - s
                fwd_before_n(H, gi + (<Py_ssize_t>(t - t0) * B + b) * H3,
                             gh + b * H3 + 2 * H, bias, g_row, h + <Py_ssize_t>b * H,
                             out + (<Py_ssize_t>t * B + b) * out_ld, p_row)
    # Steps past the longest sequence change nothing; the tape rows for them
    # must still hold finite values, since backward multiplies them by zero.
    if train and max_len < T:
        memset(gates + max_len * step_stride * 3, 0,
               (T - max_len) * step_stride * 3 * sizeof(floating))
        memset(aux + max_len * step_stride, 0,
               (T - max_len) * step_stride * sizeof(floating))
        for s in range(max_len, T):
            memcpy(hprev + s * step_stride, h, step_stride * sizeof(floating))


def gru_forward(floating[:, :, ::1] out, int col, floating[:, ::1] h,
                floating[:, :, ::1] gates, floating[:, :, ::1] aux,
                floating[:, :, ::1] hprev,
                floating[:, :, ::1] gi, floating[:, ::1] gh,
                const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] bias,
                const long long[::1] lengths, bint reverse, bint reset_after,
                bint train):
    """Run one GRU layer in one direction over x.

    out    (T, B, OH)  receives h_t in columns [col, col + H); rows of
                       padded steps (t >= len_b) are left untouched
    h      (B, H)      h0 on entry, h_n on return (last valid step)
    gates  (S, B, 3H)  r, z, n        S = T when train, else S = 1
    aux    (S, B, H)   W_hn h + b_hn (reset_after) or r * h (reset_before)
    hprev  (S, B, H)   h_{t-1}
    gi     (Tc, B, 3H) workspace for the input projection, Tc >= 1 steps
                       at a time; Tc = T when reverse with uneven lengths
    gh     (B, 3H)     workspace for h @ w_hh.T
    x      (T, B, I),  w_ih (3H, I), w_hh (3H, H)
    bias   (4H,)       [b_ir + b_hr, b_iz + b_hz, b_in, b_hn]
    lengths (B,)       int64, 0 <= len_b <= T
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = h.shape[1]
    if T == 0 or B == 0:
        return
    with nogil:
        _forward(&out[0, 0, col], out.shape[2], &h[0, 0],
                 &gates[0, 0, 0], &aux[0, 0, 0], &hprev[0, 0, 0],
                 &gi[0, 0, 0], gi.shape[0], &gh[0, 0],
                 &x[0, 0, 0], &w_ih[0, 0], &w_hh[0, 0], &bias[0], &lengths[0],
                 T, B, I, H, reverse, reset_after, train)


# ---- backward -------------------------------------------------------------

cdef void _backward(floating *dx, floating *dh, floating *dw_ih, floating *dw_hh,
                    floating *db_ih, floating *db_hh,
                    floating *dgi, floating *dgh, floating *drh,
                    const floating *dout, Py_ssize_t dout_ld,
                    const floating *gates, const floating *aux, const floating *hprev,
                    const floating *x, const floating *w_ih, const floating *w_hh,
                    const long long *lengths,
                    int T, int B, int I, int H, bint reverse, bint reset_after,
                    bint has_bias) noexcept nogil:
    cdef Py_ssize_t H3 = 3 * H
    cdef Py_ssize_t rows = <Py_ssize_t>T * B
    cdef Py_ssize_t stepB = <Py_ssize_t>B * H
    cdef int s, b, t, max_len = 0
    cdef Py_ssize_t row, j
    cdef floating *dgh_s
    for b in range(B):
        if lengths[b] > max_len:
            max_len = <int>lengths[b]
    for s in range(max_len - 1, -1, -1):
        dgh_s = dgh + s * stepB * 3
        if reset_after:
            for b in range(B):
                if s >= lengths[b]:
                    continue
                t = s if not reverse else <int>lengths[b] - 1 - s
                bwd_after(H, gates + s * stepB * 3 + b * H3, aux + s * stepB + b * H,
                          hprev + s * stepB + b * H,
                          dout + (<Py_ssize_t>t * B + b) * dout_ld,
                          dh + <Py_ssize_t>b * H, dgi + (<Py_ssize_t>t * B + b) * H3,
                          dgh_s + b * H3)
            # dh += dgh_s @ w_hh
            gemm(NoTrans, NoTrans, B, H, <int>H3, <floating>1.0, dgh_s, <int>H3,
                 w_hh, H, <floating>1.0, dh, H)
        else:
            for b in range(B):
                if s >= lengths[b]:
                    continue
                t = s if not reverse else <int>lengths[b] - 1 - s
                bwd_before_n(H, gates + s * stepB * 3 + b * H3, hprev + s * stepB + b * H,
                             dout + (<Py_ssize_t>t * B + b) * dout_ld,
                             dh + <Py_ssize_t>b * H, dgi + (<Py_ssize_t>t * B + b) * H3,
                             dgh_s + b * H3)
            # drh = dgh_s[:, 2H:] @ w_hh[2H:]
            gemm(NoTrans, NoTrans, B, H, H, <floating>1.0, dgh_s + 2 * H, <int>H3,
                 w_hh + 2 * <Py_ssize_t>H * H, H, <floating>0.0, drh, H)
            for b in range(B):
                if s >= lengths[b]:
                    continue
                t = s if not reverse else <int>lengths[b] - 1 - s
                bwd_before_rz(H, gates + s * stepB * 3 + b * H3, hprev + s * stepB + b * H,
                              drh + <Py_ssize_t>b * H, dh + <Py_ssize_t>b * H,
                              dgi + (<Py_ssize_t>t * B + b) * H3, dgh_s + b * H3)
            # dh += dgh_s[:, :2H] @ w_hh[:2H]
            gemm(NoTrans, NoTrans, B, H, 2 * H, <floating>1.0, dgh_s, <int>H3,
                 w_hh, H, <floating>1.0, dh, H)

    # Weight gradients: one GEMM each over all T * B rows, after the loop.
    # dw_ih += dgi.T @ x
    gemm(Trans, NoTrans, <int>H3, I, <int>rows, <floating>1.0, dgi, <int>H3, x, I,
         <floating>1.0, dw_ih, I)
    # dx += dgi @ w_ih
    gemm(NoTrans, NoTrans, <int>rows, I, <int>H3, <floating>1.0, dgi, <int>H3, w_ih, I,
         <floating>1.0, dx, I)
    if reset_after:
        # dw_hh += dgh.T @ hprev
        gemm(Trans, NoTrans, <int>H3, H, <int>rows, <floating>1.0, dgh, <int>H3, hprev, H,
             <floating>1.0, dw_hh, H)
    else:
        # dw_hh[:2H] += dgh[:, :2H].T @ hprev ; dw_hh[2H:] += dgh[:, 2H:].T @ (r * hprev)
        gemm(Trans, NoTrans, 2 * H, H, <int>rows, <floating>1.0, dgh, <int>H3, hprev, H,
             <floating>1.0, dw_hh, H)
        gemm(Trans, NoTrans, H, H, <int>rows, <floating>1.0, dgh + 2 * H, <int>H3, aux, H,
             <floating>1.0, dw_hh + 2 * <Py_ssize_t>H * H, H)
    if has_bias:
        # db_ih += dgi.sum(0) ; db_hh += dgh.sum(0)
        for row in range(rows):
            for j in range(H3):
                db_ih[j] += dgi[row * H3 + j]
                db_hh[j] += dgh[row * H3 + j]


def gru_backward(floating[:, :, ::1] dx, floating[:, ::1] dh,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] db_ih, floating[::1] db_hh,
                 floating[:, :, ::1] dgi, floating[:, :, ::1] dgh, floating[:, ::1] drh,
                 const floating[:, :, ::1] dout, int col,
                 const floating[:, :, ::1] gates, const floating[:, :, ::1] aux,
                 const floating[:, :, ::1] hprev,
                 const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const long long[::1] lengths,
                 bint reverse, bint reset_after, bint has_bias):
    """Backward of gru_forward(train=True); adds into dx, dw_*, db_*.

    dx     (T, B, I)   += dL/dx (both directions of a layer add here)
    dh     (B, H)      dL/dh_n on entry, dL/dh0 on return
    dw_ih  (3H, I), dw_hh (3H, H), db_ih (3H,), db_hh (3H,)   accumulated
    dgi    (T, B, 3H)  zero-filled workspace, indexed by time
    dgh    (T, B, 3H)  zero-filled workspace, indexed by step
    drh    (B, H)      workspace (reset_before only)
    dout   (T, B, OH)  dL/dout, columns [col, col + H)
    gates, aux, hprev  the tape written by gru_forward(train=True)
    x, w_ih, w_hh, lengths, reverse, reset_after: as given to gru_forward
    """
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = dh.shape[1]
    if T == 0 or B == 0:
        return
    with nogil:
        _backward(&dx[0, 0, 0], &dh[0, 0], &dw_ih[0, 0], &dw_hh[0, 0],
                  &db_ih[0], &db_hh[0], &dgi[0, 0, 0], &dgh[0, 0, 0], &drh[0, 0],
                  &dout[0, 0, col], dout.shape[2],
                  &gates[0, 0, 0], &aux[0, 0, 0], &hprev[0, 0, 0],
                  &x[0, 0, 0], &w_ih[0, 0], &w_hh[0, 0], &lengths[0],
                  T, B, I, H, reverse, reset_after, has_bias)
