"""LSTM kernels: one layer, one direction, a time-major padded batch.

Shapes: T steps, B batch, I inputs, H cell units, R = P (proj_size > 0) or
H the width of the state h and of the output. Gate order i, f, g, o.
Arrays are C-contiguous; gru_cy.nn.lstm validates and allocates every
output and tape. The time loops run with the GIL released, never allocate
and never call into Python (each call allocates its workspace once, before
the loop).

Step s of the loop handles, for each sequence b with s < len_b, time index
t = s (forward) or t = len_b - 1 - s (reverse). Tape rows and the input
gate gradients are indexed by time t (row t * B + b); the rows of padded
times (t >= len_b) are zero.

Per layer and direction (rows layout, state (B, R)):
- the input projection x @ W_ih^T is one GEMM per chunk of steps;
- one recurrent product per step for all four gates, h @ W_hh^T, over the
  rows still running when the batch is sorted by decreasing length, on
  W_hh^T packed once per call (gemm_packed; BLAS for one-step calls);
- with a projection, one more product per step, h = m @ W_hr^T;
- backward: one product per step dh = dgates @ W_hh (and dm = dh @ W_hr
  with a projection), on packed weights too; the weight gradients are
  GEMMs over all T * B rows after the loop.
"""

import numpy as np

cimport numpy as cnp
cimport cython
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset

from gru_cy.kernels._blas cimport gemm, NoTrans, packed_elems, Trans
from gru_cy.kernels._recurrent cimport (
    INT32_MAX_, alloc_work, check_array, check_lengths, fill_nan, float_type, init_steps,
    is_param, lean_x, max_length, next_chunk, pack_steps, packed_or_null, plan_chunk, project,
    rc_steps_t, rc_work_free, rows_input_grads, rows_recurrent, rows_recurrent_back,
    rows_recurrent_grads, sorted_desc, sum_rows, use_packed,
)

cdef extern from "_lstm_gates.h" nogil:
    void lstm_row_fwd_f32(const rc_steps_t *st, int R, const float *gi, const float *gh,
                          const float *bias, float *h, float *c, float *m, float *out,
                          Py_ssize_t out_ld, float *gates, float *cprev, float *tc,
                          float *hprev, float *m_tape)
    void lstm_row_fwd_f64(const rc_steps_t *st, int R, const double *gi, const double *gh,
                          const double *bias, double *h, double *c, double *m, double *out,
                          Py_ssize_t out_ld, double *gates, double *cprev, double *tc,
                          double *hprev, double *m_tape)
    void lstm_row_proj_out_f32(const rc_steps_t *st, int R, const float *p, float *h,
                               float *out, Py_ssize_t out_ld)
    void lstm_row_proj_out_f64(const rc_steps_t *st, int R, const double *p, double *h,
                               double *out, Py_ssize_t out_ld)
    void lstm_row_bwd_proj_f32(const rc_steps_t *st, int R, const float *dout,
                               Py_ssize_t dout_ld, float *dh, float *dhp, float *dhp_step)
    void lstm_row_bwd_proj_f64(const rc_steps_t *st, int R, const double *dout,
                               Py_ssize_t dout_ld, double *dh, double *dhp, double *dhp_step)
    void lstm_row_bwd_f32(const rc_steps_t *st, const float *dm, const float *dout,
                          Py_ssize_t dout_ld, const float *gates, const float *cprev,
                          const float *tc, float *dh, float *dc, float *dgi, float *dg_step)
    void lstm_row_bwd_f64(const rc_steps_t *st, const double *dm, const double *dout,
                          Py_ssize_t dout_ld, const double *gates, const double *cprev,
                          const double *tc, double *dh, double *dc, double *dgi,
                          double *dg_step)


cnp.import_array()


# ---- fused dispatchers over the C step functions -------------------------

cdef inline void row_fwd(const rc_steps_t *st, int R, const floating *gi, const floating *gh,
                         const floating *bias, floating *h, floating *c, floating *m,
                         floating *out, Py_ssize_t out_ld, floating *gates, floating *cprev,
                         floating *tc, floating *hprev, floating *m_tape) noexcept nogil:
    if floating is float:
        lstm_row_fwd_f32(st, R, gi, gh, bias, h, c, m, out, out_ld, gates, cprev, tc, hprev,
                         m_tape)
    else:
        lstm_row_fwd_f64(st, R, gi, gh, bias, h, c, m, out, out_ld, gates, cprev, tc, hprev,
                         m_tape)

cdef inline void row_proj_out(const rc_steps_t *st, int R, const floating *p, floating *h,
                              floating *out, Py_ssize_t out_ld) noexcept nogil:
    if floating is float:
        lstm_row_proj_out_f32(st, R, p, h, out, out_ld)
    else:
        lstm_row_proj_out_f64(st, R, p, h, out, out_ld)

cdef inline void row_bwd_proj(const rc_steps_t *st, int R, const floating *dout,
                              Py_ssize_t dout_ld, floating *dh, floating *dhp,
                              floating *dhp_step) noexcept nogil:
    if floating is float:
        lstm_row_bwd_proj_f32(st, R, dout, dout_ld, dh, dhp, dhp_step)
    else:
        lstm_row_bwd_proj_f64(st, R, dout, dout_ld, dh, dhp, dhp_step)

cdef inline void row_bwd(const rc_steps_t *st, const floating *dm, const floating *dout,
                         Py_ssize_t dout_ld, const floating *gates, const floating *cprev,
                         const floating *tc, floating *dh, floating *dc, floating *dgi,
                         floating *dg_step) noexcept nogil:
    if floating is float:
        lstm_row_bwd_f32(st, dm, dout, dout_ld, gates, cprev, tc, dh, dc, dgi, dg_step)
    else:
        lstm_row_bwd_f64(st, dm, dout, dout_ld, gates, cprev, tc, dh, dc, dgi, dg_step)


# ---- planning -------------------------------------------------------------

def plan(int T, int B, int H, bint full, bint reverse, Py_ssize_t chunk_elements):
    """Steps per input-projection GEMM: as many as fit in chunk_elements
    floats, all T when reverse with uneven lengths (steps of one chunk then
    need different times)."""
    return plan_chunk(False, T, B, 4 * H, full, reverse, chunk_elements)


def tape_sizes(int T, int B, int H, int P):
    """Elements of the tape arrays (gates, cprev, tc, hprev, m) of
    lstm_forward; m is empty without a projection (P = 0)."""
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef int R = P if P > 0 else H
    return (4 * H * TB, H * TB, H * TB, R * TB, H * TB if P > 0 else 0)


# GRU_CY_POISON: fill the workspaces the kernels allocate with NaN.
cdef bint _poison = False


def set_poison(bint on):
    """Fill every workspace the kernels allocate with NaN before use (debug
    runs: a result that depends on memory nothing wrote shows up as NaN)."""
    global _poison
    _poison = on


# ---- forward --------------------------------------------------------------

cdef Py_ssize_t _forward_work(int T, int B, int I, int H, int R, int P,
                              int chunk) noexcept nogil:
    cdef Py_ssize_t H4B = <Py_ssize_t>4 * H * B
    cdef Py_ssize_t n = <Py_ssize_t>chunk * H4B + H4B + 4 * H      # gi, gh, bias
    if pack_steps(T):
        n += packed_elems(R, 4 * H) + packed_elems(I, 4 * H)       # W_hh^T, W_ih^T packed
    if P > 0:
        n += <Py_ssize_t>B * H + <Py_ssize_t>B * P                 # m, p
        if pack_steps(T):
            n += packed_elems(H, P)                                # W_hr^T packed
    return n


cdef void _forward(floating *work, floating *out, Py_ssize_t out_ld, floating *h,
                   floating *c, floating *gates, floating *cprev, floating *tc,
                   floating *hprev, floating *m_tape, int chunk, const floating *x,
                   const floating *w_ih, const floating *w_hh, const floating *b_ih,
                   const floating *b_hh, const floating *w_hr, const long long *lengths,
                   bint full, int T, int B, int I, int H, int P, bint reverse,
                   bint train) noexcept nogil:
    cdef int H4 = 4 * H
    cdef int R = P if P > 0 else H
    cdef int s, j, t0 = 0, count = 0
    cdef int max_len = max_length(lengths, full, T, B)
    cdef bint prefix = sorted_desc(lengths, full, B)
    cdef int n_act = B
    cdef rc_steps_t st
    # work: gi (chunk * B, 4H), gh (B, 4H), bias (4H), W_hh^T packed,
    # W_ih^T packed, m (B, H), p (B, P), W_hr^T packed
    cdef bint packed = pack_steps(T)
    cdef floating *gi = work
    cdef floating *gh = gi + <Py_ssize_t>chunk * B * H4
    cdef floating *bias = gh + <Py_ssize_t>B * H4
    cdef floating *w_p = bias + H4
    cdef floating *w_ih_p = w_p + (packed_elems(R, H4) if packed else 0)
    cdef floating *m = w_ih_p + (packed_elems(I, H4) if packed else 0)
    cdef floating *p = m + <Py_ssize_t>B * H
    cdef floating *w_hr_p = p + <Py_ssize_t>B * P
    if P == 0:
        m = NULL
    for j in range(H4):
        bias[j] = (b_ih[j] + b_hh[j]) if b_ih != NULL else <floating>0.0
    w_p = packed_or_null(use_packed(T, B, R, H4), True, R, H4, w_hh, R, w_p)
    w_ih_p = packed_or_null(use_packed(T, chunk * B, I, H4), True, I, H4, w_ih, I, w_ih_p)
    w_hr_p = packed_or_null(P > 0 and use_packed(T, B, H, P), True, H, P, w_hr, H, w_hr_p)
    if train and not full:
        # Padded times are never visited: their tape rows must read as zeros.
        memset(gates, 0, <Py_ssize_t>T * B * H4 * sizeof(floating))
        memset(cprev, 0, <Py_ssize_t>T * B * H * sizeof(floating))
        memset(tc, 0, <Py_ssize_t>T * B * H * sizeof(floating))
        memset(hprev, 0, <Py_ssize_t>T * B * R * sizeof(floating))
        if P > 0:
            memset(m_tape, 0, <Py_ssize_t>T * B * H * sizeof(floating))
    init_steps(&st, B, H, T, reverse, lengths, full)

    for s in range(max_len):
        # gi holds the input projection of times [t0, t0 + count).
        if next_chunk(s, T, chunk, reverse, &t0, &count):
            project(False, count, B, I, H4, x + <Py_ssize_t>t0 * B * I, w_ih, w_ih_p, gi)
        if prefix:
            while n_act > 0 and lengths[n_act - 1] <= s:
                n_act -= 1
        st.s = s
        st.t0 = t0
        # gh[:n_act] = h[:n_act] @ w_hh.T
        rows_recurrent(n_act, 0, H4, R, H4, h, w_hh, w_p, gh)
        if train:
            row_fwd(&st, R, gi, gh, bias, h, c, m, out, out_ld, gates, cprev, tc, hprev, m_tape)
        else:
            row_fwd(&st, R, gi, gh, bias, h, c, m, out, out_ld, <floating *>NULL,
                    <floating *>NULL, <floating *>NULL, <floating *>NULL, <floating *>NULL)
        if P > 0:
            # p[:n_act] = m[:n_act] @ w_hr.T
            rows_recurrent(n_act, 0, P, H, P, m, w_hr, w_hr_p, p)
            row_proj_out(&st, R, p, h, out, out_ld)


# ---- entry points -----------------------------------------------------------



cdef inline char *_data(object a):
    """Data pointer of an ndarray, NULL for None."""
    return NULL if a is None else <char *>cnp.PyArray_DATA(<cnp.ndarray>a)


def lstm_forward(cnp.ndarray out, int col, cnp.ndarray h, cnp.ndarray c, tuple saved,
                 cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, object b_ih, object b_hh,
                 object w_hr, cnp.ndarray lengths, bint full, bint reverse, int chunk):
    """Run one LSTM layer in one direction over x.

    out    (T, B, OR)  receives h_t in columns [col, col + R); rows of padded
                       steps (t >= len_b) are left untouched
    h      (B, R)      h0 on entry, h_n on return (last valid step)
    c      (B, H)      c0 on entry, c_n on return
    saved  None (inference) or the tape (gates, cprev, tc, hprev, m) to
                       fill, of the sizes tape_sizes gives (m None when P = 0)
    x      (T, B, I),  w_ih (4H, I), w_hh (4H, R), b_ih, b_hh (4H,) or None,
                       w_hr (P, H) or None (then R = H)
    lengths (B,)       int64, 0 <= len_b <= T; full: every len_b == T
    chunk              steps per input-projection GEMM (plan)
    All arrays C-contiguous, of x's float dtype.
    """
    cdef int typenum = float_type(x)
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = c.shape[1]
    cdef int P = 0 if w_hr is None else (<cnp.ndarray>w_hr).shape[0]
    cdef int R = P if P > 0 else H
    cdef bint train = saved is not None
    if x.ndim != 3 or h.ndim != 2 or c.ndim != 2 or out.ndim != 3:
        raise ValueError("lstm_forward: x and out must be 3-D, h and c 2-D")
    if T == 0 or B == 0:
        return
    if (out.shape[0] != T or out.shape[1] != B or col < 0 or col + R > out.shape[2]
            or h.shape[0] != B or h.shape[1] != R or c.shape[0] != B
            or w_ih.shape[0] != 4 * H or w_ih.shape[1] != I or w_hh.shape[0] != 4 * H
            or w_hh.shape[1] != R or chunk < 1):
        raise ValueError("lstm_forward: inconsistent shapes")
    check_array(out, typenum, 0, True, "out")
    check_array(h, typenum, 0, True, "h")
    check_array(c, typenum, 0, True, "c")
    check_array(w_ih, typenum, 0, False, "w_ih")
    check_array(w_hh, typenum, 0, False, "w_hh")
    if P > 0:
        check_array(w_hr, typenum, P * H, False, "w_hr")
    if b_ih is not None:
        check_array(b_ih, typenum, 4 * H, False, "b_ih")
        check_array(b_hh, typenum, 4 * H, False, "b_hh")
    check_lengths(lengths, B)
    cdef char *tp[5]
    cdef int k
    sizes = tape_sizes(T, B, H, P)
    for k in range(5):
        tp[k] = NULL
        if train and sizes[k]:
            check_array(saved[k], typenum, sizes[k], True, "saved")
            tp[k] = _data(saved[k])
    cdef char *out_p = <char *>cnp.PyArray_DATA(out) + col * cnp.PyArray_ITEMSIZE(out)
    cdef char *h_p = _data(h)
    cdef char *c_p = _data(c)
    cdef const char *x_p = _data(x)
    cdef const char *wi_p = _data(w_ih)
    cdef const char *wh_p = _data(w_hh)
    cdef const char *bi_p = _data(b_ih)
    cdef const char *bh_p = _data(b_hh)
    cdef const char *wr_p = _data(w_hr)
    cdef const long long *len_p = <const long long *>cnp.PyArray_DATA(lengths)
    cdef Py_ssize_t out_ld = out.shape[2]
    cdef char *work
    with nogil:
        work = alloc_work(_forward_work(T, B, I, H, R, P, chunk), typenum, _poison)
        if work != NULL:
            if typenum == cnp.NPY_FLOAT32:
                _forward(<float *>work, <float *>out_p, out_ld, <float *>h_p, <float *>c_p,
                         <float *>tp[0], <float *>tp[1], <float *>tp[2], <float *>tp[3],
                         <float *>tp[4], chunk, <const float *>x_p, <const float *>wi_p,
                         <const float *>wh_p, <const float *>bi_p, <const float *>bh_p,
                         <const float *>wr_p, len_p, full, T, B, I, H, P, reverse, train)
            else:
                _forward(<double *>work, <double *>out_p, out_ld, <double *>h_p, <double *>c_p,
                         <double *>tp[0], <double *>tp[1], <double *>tp[2], <double *>tp[3],
                         <double *>tp[4], chunk, <const double *>x_p, <const double *>wi_p,
                         <const double *>wh_p, <const double *>bi_p, <const double *>bh_p,
                         <const double *>wr_p, len_p, full, T, B, I, H, P, reverse, train)
            rc_work_free(work)
    if work == NULL:
        raise MemoryError()


# ---- the lean paths ---------------------------------------------------------
#
# Whole-module inference with full lengths, unidirectional, in one call from
# Python, for arguments already of the kernels' types (LSTM.__call__ and
# LSTM.step); anything else returns None and takes the general path, which
# converts or raises the right error. They run lstm_forward's loop on each
# layer, so the results are the general path's bit for bit.



# Lean workspaces up to this many bytes live on the C stack (a step of a
# module with H <= 256 at B = 1 needs 12 KiB); larger ones are malloc'ed.
# Parameter pointers of up to _STACK_LAYERS layers live there too.
cdef enum:
    _STACK_DOUBLES = 2048
    _STACK_BYTES = 8 * _STACK_DOUBLES
    _STACK_LAYERS = 16


cdef inline bint _is_state(object o, int typenum, int ndim, int L, int B, int W) noexcept:
    cdef cnp.ndarray a
    if type(o) is not cnp.ndarray:
        return False
    a = <cnp.ndarray>o
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and a.ndim == ndim and a.shape[0] == L and a.shape[ndim - 1] == W
            and (ndim == 2 or a.shape[1] == B))


cdef object _lean(cnp.ndarray xa, object hx, dict params, tuple names, int T, int B,
                  int input_size, int H, int P, int typenum, bint reverse, int s_ndim,
                  int y_ndim, cnp.npy_intp *y_dims, Py_ssize_t chunk_elements):
    """Every layer over x (T, B, I), full lengths: (y, (h, c)), or None when
    hx or a parameter is not already what the kernels take."""
    cdef int L = len(names), k, chunk, R = P if P > 0 else H
    cdef cnp.ndarray h_new, c_new, y
    cdef Py_ssize_t item, seq, per_layer, n_work
    cdef Py_ssize_t RB = <Py_ssize_t>R * B, HB = <Py_ssize_t>H * B
    cdef cnp.npy_intp dims[3]
    cdef tuple row
    cdef list keep = None
    cdef bint has_bias = len(<tuple>names[0]) >= 4 and (<tuple>names[0])[2] is not None
    cdef object h0 = None, c0 = None
    cdef object w_ih, w_hh, b_ih = None, b_hh = None, w_hr = None
    cdef const char *ptrs[5 * _STACK_LAYERS]
    cdef const char **lp = ptrs
    cdef double stack[_STACK_DOUBLES + 8]    # + 64 bytes to align the start
    cdef bint on_heap = False
    cdef char *work = NULL
    cdef char *bufs[2]
    cdef char *dst
    cdef char *y_p
    cdef char *h_p
    cdef char *c_p
    cdef const char *x_p
    if L == 0:
        return None
    if hx is not None:
        if type(hx) is not tuple or len(<tuple>hx) != 2:
            return None
        h0 = (<tuple>hx)[0]
        c0 = (<tuple>hx)[1]
        if (not _is_state(h0, typenum, s_ndim, L, B, R)
                or not _is_state(c0, typenum, s_ndim, L, B, H)):
            return None
    # The parameters must stay alive while the GIL is released (another
    # thread may replace entries of params): with one layer the locals
    # w_ih ... w_hr hold them, with more the list does.
    if L > 1:
        keep = []
    if L > _STACK_LAYERS:
        lp = <const char **>malloc(5 * L * sizeof(char *))
        if lp == NULL:
            raise MemoryError()
    try:
        for k in range(L):
            row = <tuple>names[k]
            w_ih = params.get(row[0])
            w_hh = params.get(row[1])
            if (not is_param(w_ih, typenum, 4 * H, input_size if k == 0 else R)
                    or not is_param(w_hh, typenum, 4 * H, R)):
                return None
            if has_bias:
                b_ih = params.get(row[2])
                b_hh = params.get(row[3])
                if (not is_param(b_ih, typenum, 4 * H, 0)
                        or not is_param(b_hh, typenum, 4 * H, 0)):
                    return None
            if P > 0:
                w_hr = params.get(row[4])
                if not is_param(w_hr, typenum, P, H):
                    return None
            lp[5 * k] = _data(w_ih)
            lp[5 * k + 1] = _data(w_hh)
            lp[5 * k + 2] = _data(b_ih)
            lp[5 * k + 3] = _data(b_hh)
            lp[5 * k + 4] = _data(w_hr)
            if keep is not None:
                keep.append((w_ih, w_hh, b_ih, b_hh, w_hr))
        chunk = <int>max(1, min(<Py_ssize_t>T, chunk_elements // max(1, <Py_ssize_t>B * 4 * H)))
        per_layer = _forward_work(T, B, max(input_size, R), H, R, P, chunk)
        seq = <Py_ssize_t>T * RB
        # One layer's workspace, then the outputs of the layers below the top:
        # two alternating buffers, one when a single buffer is never read and
        # written by the same layer (two layers, or T = 1, where each layer
        # reads the new state of the one below instead: the same values).
        n_work = per_layer + (0 if L == 1 else (seq if (T == 1 or L == 2) else 2 * seq))
        item = cnp.PyArray_ITEMSIZE(xa)
        dims[0] = L
        dims[1] = B
        if s_ndim == 2:
            dims[1] = R
        else:
            dims[2] = R
        if h0 is None:
            h_new = cnp.PyArray_ZEROS(s_ndim, dims, typenum, 0)
        else:
            h_new = cnp.PyArray_EMPTY(s_ndim, dims, typenum, 0)
            memcpy(cnp.PyArray_DATA(h_new), cnp.PyArray_DATA(<cnp.ndarray>h0), L * RB * item)
        if s_ndim == 2:
            dims[1] = H
        else:
            dims[2] = H
        if c0 is None:
            c_new = cnp.PyArray_ZEROS(s_ndim, dims, typenum, 0)
        else:
            c_new = cnp.PyArray_EMPTY(s_ndim, dims, typenum, 0)
            memcpy(cnp.PyArray_DATA(c_new), cnp.PyArray_DATA(<cnp.ndarray>c0), L * HB * item)
        y = cnp.PyArray_EMPTY(y_ndim, y_dims, typenum, 0)
        h_p = <char *>cnp.PyArray_DATA(h_new)
        c_p = <char *>cnp.PyArray_DATA(c_new)
        x_p = <const char *>cnp.PyArray_DATA(xa)
        y_p = <char *>cnp.PyArray_DATA(y)
        with nogil:
            if n_work * item <= _STACK_BYTES:
                # (aligned to 64 bytes)
                work = <char *>stack + ((64 - (<size_t>stack & 63)) & 63)
                if _poison:
                    fill_nan(work, n_work, typenum)
            else:
                work = alloc_work(n_work, typenum, _poison)
                on_heap = True
            if work != NULL:
                bufs[0] = work + per_layer * item
                bufs[1] = bufs[0] if (T == 1 or L == 2) else bufs[0] + seq * item
                for k in range(L):
                    dst = y_p if k == L - 1 else bufs[k % 2]
                    if typenum == cnp.NPY_FLOAT32:
                        _forward(<float *>work, <float *>dst, R, <float *>(h_p + k * RB * item),
                                 <float *>(c_p + k * HB * item), NULL, NULL, NULL, NULL, NULL,
                                 chunk, <const float *>x_p, <const float *>lp[5 * k],
                                 <const float *>lp[5 * k + 1], <const float *>lp[5 * k + 2],
                                 <const float *>lp[5 * k + 3], <const float *>lp[5 * k + 4],
                                 NULL, True, T, B, input_size if k == 0 else R, H, P, reverse,
                                 False)
                    else:
                        _forward(<double *>work, <double *>dst, R,
                                 <double *>(h_p + k * RB * item),
                                 <double *>(c_p + k * HB * item), NULL, NULL, NULL, NULL, NULL,
                                 chunk, <const double *>x_p, <const double *>lp[5 * k],
                                 <const double *>lp[5 * k + 1], <const double *>lp[5 * k + 2],
                                 <const double *>lp[5 * k + 3], <const double *>lp[5 * k + 4],
                                 NULL, True, T, B, input_size if k == 0 else R, H, P, reverse,
                                 False)
                    # Layer k + 1 reads layer k's output (with T = 1, its new
                    # state h: the same values, in memory no later layer writes).
                    x_p = (h_p + k * RB * item) if T == 1 else dst
                if on_heap:
                    rc_work_free(work)
        if work == NULL:
            raise MemoryError()
    finally:
        if lp != ptrs:
            free(lp)
    return y, (h_new, c_new)





cdef object _infer(object x, object hx, object params, tuple names, int input_size,
                   int hidden_size, int proj_size, int typenum, bint reverse,
                   bint batch_first, Py_ssize_t chunk_elements):
    cdef cnp.ndarray xa
    cdef int T, B, R = proj_size if proj_size > 0 else hidden_size
    cdef cnp.npy_intp dims[3]
    if type(params) is not dict or not lean_x(x, typenum, input_size):
        return None
    xa = <cnp.ndarray>x
    if xa.ndim == 2:
        if xa.shape[0] == 0 or xa.shape[0] > INT32_MAX_:
            return None
        dims[0] = xa.shape[0]
        dims[1] = R
        return _lean(xa, hx, params, names, <int>xa.shape[0], 1, input_size, hidden_size,
                     proj_size, typenum, reverse, 2, 2, dims, chunk_elements)
    if xa.ndim != 3 or xa.shape[0] == 0 or xa.shape[1] == 0:
        return None
    if <double>xa.shape[0] * <double>xa.shape[1] > INT32_MAX_:
        return None
    if batch_first:
        if xa.shape[0] != 1 and xa.shape[1] != 1:
            return None
        T, B = <int>xa.shape[1], <int>xa.shape[0]
    else:
        T, B = <int>xa.shape[0], <int>xa.shape[1]
    dims[0] = xa.shape[0]
    dims[1] = xa.shape[1]
    dims[2] = R
    return _lean(xa, hx, params, names, T, B, input_size, hidden_size, proj_size, typenum,
                 reverse, 3, 3, dims, chunk_elements)


cdef object _step(object x, object hx, object params, tuple names, int input_size,
                  int hidden_size, int proj_size, int typenum, bint reverse):
    cdef cnp.ndarray xa
    cdef int R = proj_size if proj_size > 0 else hidden_size
    cdef cnp.npy_intp dims[2]
    if type(params) is not dict or not lean_x(x, typenum, input_size):
        return None
    xa = <cnp.ndarray>x
    if xa.ndim == 1:
        dims[0] = R
        return _lean(xa, hx, params, names, 1, 1, input_size, hidden_size, proj_size, typenum,
                     reverse, 2, 1, dims, 1)
    if xa.ndim != 2 or xa.shape[0] == 0 or xa.shape[0] > INT32_MAX_:
        return None
    dims[0] = xa.shape[0]
    dims[1] = R
    return _lean(xa, hx, params, names, 1, <int>xa.shape[0], input_size, hidden_size,
                 proj_size, typenum, reverse, 3, 2, dims, 1)


def lstm_infer(object x, object hx, object params, tuple names, int input_size,
               int hidden_size, int proj_size, int typenum, bint reverse, bint batch_first,
               Py_ssize_t chunk_elements):
    """Inference over every layer with full lengths, the lean path of
    LSTM.__call__ for unidirectional modules: (out, (h_n, c_n)), or None when
    an argument is not already what the kernels take.

    x      (T, B, I), (B, T, I) when batch_first (then only with B = 1 or
           T = 1, where both orders share one memory layout), or (T, I)
    hx     None (zeros), or a tuple (h, c): (L, B, R) and (L, B, H), 2-D for
           unbatched x
    params the module's parameters (a dict); names holds per layer the names
           of (w_ih, w_hh, b_ih, b_hh, w_hr), None for absent ones
    """
    return _infer(x, hx, params, names, input_size, hidden_size, proj_size, typenum, reverse,
                  batch_first, chunk_elements)


def lstm_step(object x, object hx, object params, tuple names, int input_size,
              int hidden_size, int proj_size, int typenum, bint reverse):
    """One step of every layer, the lean path of LSTM.step: (y, (h, c)), or
    None when an argument is not already what the kernels take.

    x      (B, I) or (I,)
    hx     None (zeros), or a tuple (h, c): (L, B, R) and (L, B, H), 2-D for
           unbatched x
    """
    return _step(x, hx, params, names, input_size, hidden_size, proj_size, typenum, reverse)


@cython.auto_pickle(False)    # a cache: modules drop it when pickled
cdef class LeanLSTM:
    """lstm_step and lstm_infer bound to one module's configuration, made
    once per module and cached (LSTM._lean_args), so that a call from Python
    passes three arguments instead of nine. Both return None when an
    argument is not already what the kernels take, and for a bidirectional
    module (unidirectional=False), whose calls take the general path.
    """
    cdef readonly tuple names
    cdef readonly int input_size, hidden_size, proj_size, typenum
    cdef readonly bint reverse, unidirectional

    def __init__(self, tuple names, int input_size, int hidden_size, int proj_size,
                 int typenum, bint reverse, bint unidirectional=True):
        self.names = names
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.proj_size = proj_size
        self.typenum = typenum
        self.reverse = reverse
        self.unidirectional = unidirectional

    def step(self, x, hx, params):
        """lstm_step(x, hx, params, *this configuration)."""
        if not self.unidirectional:
            return None
        return _step(x, hx, params, self.names, self.input_size, self.hidden_size,
                     self.proj_size, self.typenum, self.reverse)

    def infer(self, x, hx, params, bint batch_first, Py_ssize_t chunk_elements):
        """lstm_infer(x, hx, params, *this configuration, batch_first,
        chunk_elements)."""
        if not self.unidirectional:
            return None
        return _infer(x, hx, params, self.names, self.input_size, self.hidden_size,
                      self.proj_size, self.typenum, self.reverse, batch_first, chunk_elements)


# ---- backward -------------------------------------------------------------

cdef Py_ssize_t _backward_work(int T, int B, int H, int P) noexcept nogil:
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef int R = P if P > 0 else H
    cdef Py_ssize_t n = TB * 4 * H + <Py_ssize_t>B * 4 * H         # dgi, dg_step
    if P > 0:
        n += TB * P + <Py_ssize_t>B * P + <Py_ssize_t>B * H         # dhp, dhp_step, dm
    if pack_steps(T):
        n += packed_elems(4 * H, R)                                # W_hh packed
        if P > 0:
            n += packed_elems(P, H)                                # W_hr packed
    return n


cdef void _backward(floating *work, floating *dx, floating *dh, floating *dc,
                    floating *dw_ih, floating *dw_hh, floating *db_ih, floating *db_hh,
                    floating *dw_hr, const floating *dout, Py_ssize_t dout_ld,
                    const floating *gates, const floating *cprev, const floating *tc,
                    const floating *hprev, const floating *m_tape, const floating *x,
                    const floating *w_ih, const floating *w_hh, const floating *w_hr,
                    const long long *lengths, bint full, int T, int B, int I, int H, int P,
                    bint reverse) noexcept nogil:
    cdef int H4 = 4 * H
    cdef int R = P if P > 0 else H
    cdef int rows = T * B
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef int s, max_len = max_length(lengths, full, T, B)
    cdef bint prefix = sorted_desc(lengths, full, B)
    cdef int n_act = B if not prefix else 0
    cdef rc_steps_t st
    # work: dgi (T * B, 4H) by time, dg_step (B, 4H), dhp (T * B, P) by time,
    # dhp_step (B, P), dm (B, H), W_hh packed, W_hr packed
    cdef floating *dgi = work
    cdef floating *dg_step = dgi + TB * H4
    cdef floating *dhp = dg_step + <Py_ssize_t>B * H4
    cdef floating *dhp_step = dhp + TB * P
    cdef floating *dm = dhp_step + <Py_ssize_t>B * P
    cdef floating *w_p = dm + (<Py_ssize_t>B * H if P > 0 else 0)
    cdef floating *w_hr_p = w_p + packed_elems(H4, R)
    w_p = packed_or_null(use_packed(T, B, H4, R), False, H4, R, w_hh, R, w_p)
    w_hr_p = packed_or_null(P > 0 and use_packed(T, B, P, H), False, P, H, w_hr, H, w_hr_p)
    if not full or max_len < T:
        # Padded times get no gradient.
        memset(dgi, 0, TB * H4 * sizeof(floating))
        if P > 0:
            memset(dhp, 0, TB * P * sizeof(floating))
    init_steps(&st, B, H, T, reverse, lengths, full)
    for s in range(max_len - 1, -1, -1):
        st.s = s
        if prefix:
            while n_act < B and lengths[n_act] > s:
                n_act += 1
        if P > 0:
            row_bwd_proj(&st, R, dout, dout_ld, dh, dhp, dhp_step)
            # dm[:n_act] = dhp_step[:n_act] @ w_hr
            rows_recurrent_back(B, n_act, 0, P, H, P, dhp_step, w_hr, w_hr_p, <floating>0.0,
                                dm)
            row_bwd(&st, dm, dout, dout_ld, gates, cprev, tc, dh, dc, dgi, dg_step)
        else:
            row_bwd(&st, <floating *>NULL, dout, dout_ld, gates, cprev, tc, dh, dc, dgi,
                    dg_step)
        # dh[:n_act] += dg_step[:n_act] @ w_hh
        rows_recurrent_back(B, n_act, 0, H4, R, H4, dg_step, w_hh, w_p, <floating>1.0, dh)
    # Weight gradients: one GEMM each over all T * B rows (by time; padded
    # rows of dgi, dhp and the tape are zero).
    # dw_ih += dgi.T @ x ; dx += dgi @ w_ih
    rows_input_grads(dw_ih, dx, dgi, x, w_ih, rows, I, H4)
    # dw_hh += dgi.T @ hprev
    rows_recurrent_grads(dw_hh, dgi, hprev, rows, H4, R, H4)
    if P > 0:
        # dw_hr += dhp.T @ m
        gemm(Trans, NoTrans, P, H, rows, <floating>1.0, dhp, P, m_tape, H, <floating>1.0,
             dw_hr, H)
    if db_ih != NULL:
        # db_ih += dgi.sum(0) ; db_hh += dgi.sum(0)
        sum_rows(rows, H4, dgi, H4, db_ih)
        sum_rows(rows, H4, dgi, H4, db_hh)


def lstm_backward(cnp.ndarray dx, cnp.ndarray dh, cnp.ndarray dc, tuple grads,
                  cnp.ndarray dout, int col, tuple saved, cnp.ndarray x, cnp.ndarray w_ih,
                  cnp.ndarray w_hh, object w_hr, cnp.ndarray lengths, bint full,
                  bint reverse):
    """Backward of lstm_forward with a tape; adds into dx and the gradients.

    dx     (T, B, I)   += dL/dx (both directions of a layer add here)
    dh     (B, R)      dL/dh_n on entry, dL/dh0 on return
    dc     (B, H)      dL/dc_n on entry, dL/dc0 on return
    grads  (dw_ih, dw_hh, db_ih, db_hh, dw_hr), the biases None without
           bias, dw_hr None without projection; added to
    dout   (T, B, OR)  dL/dout, columns [col, col + R)
    saved  the tape lstm_forward filled; x, w_ih, w_hh, w_hr, lengths, full,
           reverse as given to lstm_forward. The rows of padded times of x
           must be finite (they meet zero gradients in dw_ih).
    """
    cdef int typenum = float_type(x)
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = dc.shape[1]
    cdef int P = 0 if w_hr is None else (<cnp.ndarray>w_hr).shape[0]
    cdef int R = P if P > 0 else H
    if x.ndim != 3 or dx.ndim != 3 or dout.ndim != 3 or dh.ndim != 2 or dc.ndim != 2:
        raise ValueError("lstm_backward: x, dx and dout must be 3-D, dh and dc 2-D")
    if T == 0 or B == 0:
        return
    dw_ih, dw_hh, db_ih, db_hh, dw_hr = grads
    if (dx.shape[0] != T or dx.shape[1] != B or dx.shape[2] != I or dh.shape[0] != B
            or dh.shape[1] != R or dc.shape[0] != B or dout.shape[0] != T
            or dout.shape[1] != B or col < 0 or col + R > dout.shape[2]
            or w_ih.shape[0] != 4 * H or w_ih.shape[1] != I or w_hh.shape[0] != 4 * H
            or w_hh.shape[1] != R):
        raise ValueError("lstm_backward: inconsistent shapes")
    check_array(dx, typenum, 0, True, "dx")
    check_array(dh, typenum, 0, True, "dh")
    check_array(dc, typenum, 0, True, "dc")
    check_array(dw_ih, typenum, 4 * H * I, True, "dw_ih")
    check_array(dw_hh, typenum, 4 * H * R, True, "dw_hh")
    if db_ih is not None:
        check_array(db_ih, typenum, 4 * H, True, "db_ih")
        check_array(db_hh, typenum, 4 * H, True, "db_hh")
    if P > 0:
        check_array(w_hr, typenum, P * H, False, "w_hr")
        check_array(dw_hr, typenum, P * H, True, "dw_hr")
    check_array(dout, typenum, 0, False, "dout")
    check_array(x, typenum, 0, False, "x")
    check_array(w_ih, typenum, 0, False, "w_ih")
    check_array(w_hh, typenum, 0, False, "w_hh")
    check_lengths(lengths, B)
    sizes = tape_sizes(T, B, H, P)
    cdef char *tp[5]
    cdef int k
    for k in range(5):
        tp[k] = NULL
        if sizes[k]:
            check_array(saved[k], typenum, sizes[k], False, "saved")
            tp[k] = _data(saved[k])
    cdef char *g[8]
    g[0] = _data(dx)
    g[1] = _data(dh)
    g[2] = _data(dc)
    g[3] = _data(dw_ih)
    g[4] = _data(dw_hh)
    g[5] = _data(db_ih)
    g[6] = _data(db_hh)
    g[7] = _data(dw_hr)
    cdef const char *dout_p = <const char *>cnp.PyArray_DATA(dout) + col * cnp.PyArray_ITEMSIZE(dout)
    cdef const char *x_p = _data(x)
    cdef const char *wi_p = _data(w_ih)
    cdef const char *wh_p = _data(w_hh)
    cdef const char *wr_p = _data(w_hr)
    cdef const long long *len_p = <const long long *>cnp.PyArray_DATA(lengths)
    cdef Py_ssize_t dout_ld = dout.shape[2]
    cdef char *work
    with nogil:
        work = alloc_work(_backward_work(T, B, H, P), typenum, _poison)
        if work != NULL:
            if typenum == cnp.NPY_FLOAT32:
                _backward(<float *>work, <float *>g[0], <float *>g[1], <float *>g[2],
                          <float *>g[3], <float *>g[4], <float *>g[5], <float *>g[6],
                          <float *>g[7], <const float *>dout_p, dout_ld, <const float *>tp[0],
                          <const float *>tp[1], <const float *>tp[2], <const float *>tp[3],
                          <const float *>tp[4], <const float *>x_p, <const float *>wi_p,
                          <const float *>wh_p, <const float *>wr_p, len_p, full, T, B, I, H, P,
                          reverse)
            else:
                _backward(<double *>work, <double *>g[0], <double *>g[1], <double *>g[2],
                          <double *>g[3], <double *>g[4], <double *>g[5], <double *>g[6],
                          <double *>g[7], <const double *>dout_p, dout_ld,
                          <const double *>tp[0], <const double *>tp[1], <const double *>tp[2],
                          <const double *>tp[3], <const double *>tp[4], <const double *>x_p,
                          <const double *>wi_p, <const double *>wh_p, <const double *>wr_p,
                          len_p, full, T, B, I, H, P, reverse)
            rc_work_free(work)
    if work == NULL:
        raise MemoryError()
