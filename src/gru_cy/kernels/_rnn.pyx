"""Elman RNN kernels: one layer, one direction, a time-major padded batch.

    h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  act = tanh or relu

Shapes: T steps, B batch, I inputs, H hidden units; W_ih (H, I), W_hh
(H, H). Arrays are C-contiguous; the caller (gru_cy.nn.rnn) validates and
allocates every output, tape and workspace (plan, tape_size,
forward_work_size and backward_work_size give the sizes). The time loops
run with the GIL released, never allocate and never call into Python.
The plumbing (planning, input projection, recurrent products, weight
gradients, the lean path) is _recurrent.pxd's; the step math is
_rnn_gates.c's.

Step s of the loop handles, for each sequence b with s < len_b, time index
t = s (forward) or t = len_b - 1 - s (reverse). The tape is the states
alone: slot 0 holds h0 and slot s + 1 the state after step s, from which
backward takes both act' (tanh' = 1 - y^2, relu' = [y > 0]) and the
h_{t-1} of the recurrent weight gradient.

rows     the state h is (B, H); tape slots are (B, H) one after the other
         (T + 1 of them); any lengths.
columns  the state is h^T (H, B); tape slots are blocked (_recurrent.pxd's
         slot) and backward runs the weight-gradient GEMMs block by block;
         full lengths only.
"""

cimport numpy as cnp
from cython cimport floating
from libc.string cimport memset, memcpy

from gru_cy.kernels._blas cimport gemm, NoTrans, pack, packed_elems
from gru_cy.kernels._recurrent cimport (
    LeanCell, rc_steps_t, alloc_work, block_input_grads, block_recurrent_grads, block_steps,
    packed_or_null, rc_work_free,
    blocked_size, check_array, check_lengths, columns_layout, float_type, init_steps,
    lean_infer, lean_step, masked_input, max_length, next_chunk, pack_steps, plan_chunk, project,
    use_packed,
    rows_input_grads, rows_recurrent, rows_recurrent_back, rows_recurrent_grads, slot,
    sorted_desc, sum_cols, sum_rows, transpose, zero_unvisited)

cdef extern from "_rnn_gates.h" nogil:
    void rnn_row_fwd_f32(const rc_steps_t *st, int act, const float *gi, const float *gh,
                         const float *bias, float *h, float *out, Py_ssize_t out_ld,
                         float *hs)
    void rnn_row_fwd_f64(const rc_steps_t *st, int act, const double *gi, const double *gh,
                         const double *bias, double *h, double *out, Py_ssize_t out_ld,
                         double *hs)
    void rnn_row_bwd_f32(const rc_steps_t *st, int act, const float *hs, const float *dout,
                         Py_ssize_t dout_ld, float *dh, float *dgi, float *dgh)
    void rnn_row_bwd_f64(const rc_steps_t *st, int act, const double *hs, const double *dout,
                         Py_ssize_t dout_ld, double *dh, double *dgi, double *dgh)
    void rnn_col_fwd_f32(int B, int H, int act, const float *gi, Py_ssize_t gi_ld,
                         const float *gh, const float *bias, float *h_new, Py_ssize_t hn_ld)
    void rnn_col_fwd_f64(int B, int H, int act, const double *gi, Py_ssize_t gi_ld,
                         const double *gh, const double *bias, double *h_new,
                         Py_ssize_t hn_ld)
    void rnn_col_bwd_f32(int B, int H, int act, const float *hs, Py_ssize_t hs_ld,
                         const float *dh, const float *dout, float *dgi, float *dgh,
                         Py_ssize_t dg_ld)
    void rnn_col_bwd_f64(int B, int H, int act, const double *hs, Py_ssize_t hs_ld,
                         const double *dh, const double *dout, double *dgi, double *dgh,
                         Py_ssize_t dg_ld)


cnp.import_array()


# ---- fused dispatchers over the C step functions -------------------------

cdef inline void row_fwd(const rc_steps_t *st, int act, const floating *gi,
                         const floating *gh, const floating *bias, floating *h,
                         floating *out, Py_ssize_t out_ld, floating *hs) noexcept nogil:
    if floating is float:
        rnn_row_fwd_f32(st, act, gi, gh, bias, h, out, out_ld, hs)
    else:
        rnn_row_fwd_f64(st, act, gi, gh, bias, h, out, out_ld, hs)

cdef inline void row_bwd(const rc_steps_t *st, int act, const floating *hs,
                         const floating *dout, Py_ssize_t dout_ld, floating *dh,
                         floating *dgi, floating *dgh) noexcept nogil:
    if floating is float:
        rnn_row_bwd_f32(st, act, hs, dout, dout_ld, dh, dgi, dgh)
    else:
        rnn_row_bwd_f64(st, act, hs, dout, dout_ld, dh, dgi, dgh)

cdef inline void col_fwd(int B, int H, int act, const floating *gi, Py_ssize_t gi_ld,
                         const floating *gh, const floating *bias, floating *h_new,
                         Py_ssize_t hn_ld) noexcept nogil:
    if floating is float:
        rnn_col_fwd_f32(B, H, act, gi, gi_ld, gh, bias, h_new, hn_ld)
    else:
        rnn_col_fwd_f64(B, H, act, gi, gi_ld, gh, bias, h_new, hn_ld)

cdef inline void col_bwd(int B, int H, int act, const floating *hs, Py_ssize_t hs_ld,
                         const floating *dh, const floating *dout, floating *dgi,
                         floating *dgh, Py_ssize_t dg_ld) noexcept nogil:
    if floating is float:
        rnn_col_bwd_f32(B, H, act, hs, hs_ld, dh, dout, dgi, dgh, dg_ld)
    else:
        rnn_col_bwd_f64(B, H, act, hs, hs_ld, dh, dout, dgi, dgh, dg_ld)


# ---- layout choice ---------------------------------------------------------

# 0: choose by shape; 1: always rows; 2: columns whenever lengths are full
# (set_layout, for tests and measurements).
cdef int _layout_override = 0


cdef inline bint _columns(int B, int H, bint full, bint train) noexcept nogil:
    # Measured for this cell with the packed per-step products (one thread,
    # T = 50-100, H = 128-512, B = 8-128): rows runs inference 1.07-1.35x
    # and training 1.0-1.25x faster than columns (before those products,
    # columns trained 1.1-1.4x faster from B = 8). Columns stays for
    # set_layout.
    if _layout_override != 0:
        return columns_layout(_layout_override, H, B, H, full)
    return False


def use_columns(int B, int H, bint full, bint train):
    """True when the kernels run (B, H) in the columns layout (see module
    doc); train: for forward with a tape and its backward."""
    return _columns(B, H, full, train)


def set_layout(str layout):
    """Force a layout for every later call: "rows", "columns" (used when
    lengths are full) or "auto" (the default). Process-wide; for tests and
    measurements. A tape must be used by backward under the layout that
    recorded it."""
    global _layout_override
    _layout_override = {"auto": 0, "rows": 1, "columns": 2}[layout]


def plan(int T, int B, int H, bint full, bint reverse, Py_ssize_t chunk_elements, bint train):
    """(columns, chunk): the layout and the steps per input-projection GEMM."""
    cdef bint columns = _columns(B, H, full, train)
    return columns, plan_chunk(columns, T, B, H, full, reverse, chunk_elements)


def tape_size(int T, int B, int H):
    """Elements of the tape (the T + 1 states) of rnn_forward, enough for
    either layout."""
    return max(<Py_ssize_t>H * (<Py_ssize_t>T * B + B), blocked_size(T + 1, B, H))


# ---- forward ----------------------------------------------------------------

cdef void _forward(floating *out, Py_ssize_t out_ld, floating *h, floating *hs,
                   floating *gi, int chunk, floating *gh, floating *w_p,
                   floating *w_ih_p, const floating *bias, floating *hbuf, const floating *x,
                   const floating *w_ih, const floating *w_hh, const long long *lengths,
                   bint full, int T, int B, int I, int H, bint reverse, int act, bint train,
                   bint columns) noexcept nogil:
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef Py_ssize_t h_ld = B, hn_ld = B
    cdef int s, t, t0 = 0, count = 0, max_len = max_length(lengths, full, T, B)
    cdef int Tb = block_steps(B)
    cdef bint prefix = (not columns) and sorted_desc(lengths, full, B)
    cdef int n_act = B      # rows still running (all of them unless prefix)
    cdef rc_steps_t st
    cdef floating *h_cur
    cdef floating *h_new
    cdef floating *swap

    init_steps(&st, B, H, T, reverse, lengths, full)
    if columns:
        # State h^T: the tape's slots in training (blocked, ld Tb * B), two
        # buffers otherwise.
        if train:
            h_cur = hs
            h_ld = hn_ld = <Py_ssize_t>Tb * B
        else:
            h_cur = hbuf
            h_new = hbuf + HB
        transpose(B, H, h, H, h_cur, h_ld)
    else:
        if train:
            memcpy(hs, h, HB * sizeof(floating))
        w_p = packed_or_null(use_packed(T, B, H, H), True, H, H, w_hh, H, w_p)
        w_ih_p = packed_or_null(use_packed(T, chunk * B, I, H), True, I, H, w_ih, I, w_ih_p)

    for s in range(max_len):
        # gi holds the input projection of times [t0, t0 + count).
        if next_chunk(s, T, chunk, reverse, &t0, &count):
            project(columns, count, B, I, H, x + <Py_ssize_t>t0 * B * I, w_ih, w_ih_p, gi)
        if columns:
            t = s if not reverse else T - 1 - s
            if train:
                h_cur = hs + slot(s, Tb, B, H)
                h_new = hs + slot(s + 1, Tb, B, H)
            # gh^T = w_hh @ h^T      (H, B)
            gemm(NoTrans, NoTrans, H, B, H, <floating>1.0, w_hh, H, h_cur, <int>h_ld,
                 <floating>0.0, gh, B)
            col_fwd(B, H, act, gi + <Py_ssize_t>(t - t0) * B, <Py_ssize_t>count * B, gh, bias,
                    h_new, hn_ld)
            # out[t] = h_new.T
            transpose(H, B, h_new, hn_ld, out + <Py_ssize_t>t * B * out_ld, out_ld)
            if not train:
                swap = h_cur
                h_cur = h_new
                h_new = swap
        else:
            st.s = s
            st.t0 = t0
            if prefix:
                # The step skips finished rows without reading their gh.
                while n_act > 0 and lengths[n_act - 1] <= s:
                    n_act -= 1
            # gh = h @ w_hh.T
            rows_recurrent(n_act, 0, H, H, H, h, w_hh, w_p, gh)
            row_fwd(&st, act, gi, gh, bias, h, out, out_ld,
                    hs + (s + 1) * HB if train else NULL)

    if columns:
        # h_n = the last state, back to (B, H)
        if train:
            h_cur = hs + slot(T, Tb, B, H)
        transpose(H, B, h_cur, h_ld, h, H)
    elif train and max_len < T:
        # Steps past the longest sequence change nothing; their tape slots
        # must hold finite values, since backward multiplies them by zero.
        memset(hs + (max_len + 1) * HB, 0, (T - max_len) * HB * sizeof(floating))


cdef Py_ssize_t _forward_work(int T, int B, int I, int H, int chunk,
                              bint columns) noexcept nogil:
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef Py_ssize_t n = <Py_ssize_t>chunk * HB + HB + H       # gi, gh, bias
    if not columns and pack_steps(T):
        n += packed_elems(H, H) + packed_elems(I, H)          # W_hh^T, W_ih^T packed
    if columns:
        n += 2 * HB                                           # two states (inference)
    return n


def forward_work_size(int T, int B, int I, int H, int chunk, bint columns):
    """Elements of the workspace rnn_forward needs."""
    return _forward_work(T, B, I, H, chunk, columns)


cdef void _forward_call(char *out, Py_ssize_t out_ld, char *h, char *hs, char *work,
                        int chunk, const char *x, const char *w_ih, const char *w_hh,
                        const char *b_ih, const char *b_hh, const long long *lengths,
                        bint full, int T, int B, int I, int H, bint reverse, int act,
                        bint train, bint columns, floating *typed) noexcept nogil:
    """Carve the workspace and run _forward; typed only selects the type."""
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef int j
    cdef floating *gi = <floating *>work
    cdef floating *gh = gi + <Py_ssize_t>chunk * HB
    cdef floating *bias = gh + HB
    cdef bint packed = not columns and pack_steps(T)
    cdef floating *w_p = bias + H
    cdef floating *w_ih_p = w_p + (packed_elems(H, H) if packed else 0)
    cdef floating *hbuf = w_ih_p + (packed_elems(I, H) if packed else 0)
    cdef const floating *bi = <const floating *>b_ih
    cdef const floating *bh = <const floating *>b_hh
    # bias = b_ih + b_hh, added once per element in the loop
    if bi == NULL:
        memset(bias, 0, H * sizeof(floating))
    else:
        for j in range(H):
            bias[j] = bi[j] + bh[j]
    _forward(<floating *>out, out_ld, <floating *>h, <floating *>hs, gi, chunk, gh, w_p,
             w_ih_p, bias, hbuf, <const floating *>x, <const floating *>w_ih, <const floating *>w_hh,
             lengths, full, T, B, I, H, reverse, act, train, columns)


def rnn_forward(cnp.ndarray out, int col, cnp.ndarray h, object saved, object work,
                cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, object b_ih, object b_hh,
                cnp.ndarray lengths, bint full, bint reverse, int act, bint columns,
                int chunk):
    """Run one Elman RNN layer in one direction over x.

    out    (T, B, OH)  receives h_t in columns [col, col + H); rows of
                       padded steps (t >= len_b) are left untouched
    h      (B, H)      h0 on entry, h_n on return (last valid step)
    saved  None (inference) or the tape to fill, tape_size(T, B, H) elements
    work               workspace of forward_work_size(...) elements, or None
                       to have one allocated (and freed) here
    x      (T, B, I),  w_ih (H, I), w_hh (H, H), b_ih, b_hh (H,) or None
    lengths (B,)       int64, 0 <= len_b <= T; full: every len_b == T
    act                0 tanh, 1 relu
    columns            the layout, as use_columns(B, H, full, train) says
    chunk              steps per input-projection GEMM; T when reverse
                       with uneven lengths
    All arrays C-contiguous, of x's float dtype.
    """
    cdef int typenum = float_type(x)
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = h.shape[1]
    cdef bint train = saved is not None
    cdef cnp.ndarray hs = None, bi = None, bh = None
    if x.ndim != 3 or h.ndim != 2 or out.ndim != 3 or w_ih.ndim != 2 or w_hh.ndim != 2:
        raise ValueError("rnn_forward: x and out must be 3-D, h, w_ih and w_hh 2-D")
    if T == 0 or B == 0:
        return
    if (out.shape[0] != T or out.shape[1] != B or col < 0 or col + H > out.shape[2]
            or h.shape[0] != B or w_ih.shape[0] != H or w_ih.shape[1] != I
            or w_hh.shape[0] != H or w_hh.shape[1] != H or chunk < 1 or act < 0 or act > 1):
        raise ValueError("rnn_forward: inconsistent shapes")
    check_array(out, typenum, 0, True, "out")
    check_array(h, typenum, 0, True, "h")
    cdef Py_ssize_t n_work = _forward_work(T, B, I, H, chunk, columns)
    if work is not None:
        check_array(work, typenum, n_work, True, "work")
    check_array(w_ih, typenum, 0, False, "w_ih")
    check_array(w_hh, typenum, 0, False, "w_hh")
    if b_ih is not None:
        bi, bh = b_ih, b_hh
        check_array(bi, typenum, H, False, "b_ih")
        check_array(bh, typenum, H, False, "b_hh")
    check_lengths(lengths, B)
    if train:
        hs = saved
        check_array(hs, typenum, tape_size(T, B, H), True, "saved")
    cdef char *out_p = <char *>cnp.PyArray_DATA(out) + col * cnp.PyArray_ITEMSIZE(out)
    cdef char *hs_p = NULL if hs is None else <char *>cnp.PyArray_DATA(hs)
    cdef const char *bi_p = NULL
    cdef const char *bh_p = NULL
    if bi is not None:
        bi_p = <const char *>cnp.PyArray_DATA(bi)
        bh_p = <const char *>cnp.PyArray_DATA(bh)
    cdef char *h_p = <char *>cnp.PyArray_DATA(h)
    cdef char *w_p = NULL if work is None else <char *>cnp.PyArray_DATA(<cnp.ndarray>work)
    cdef bint own = work is None
    cdef const char *x_p = <const char *>cnp.PyArray_DATA(x)
    cdef const char *wi_p = <const char *>cnp.PyArray_DATA(w_ih)
    cdef const char *wh_p = <const char *>cnp.PyArray_DATA(w_hh)
    cdef const long long *len_p = <const long long *>cnp.PyArray_DATA(lengths)
    cdef Py_ssize_t out_ld = out.shape[2]
    with nogil:
        if own:
            w_p = alloc_work(n_work, typenum, _poison)
        if w_p != NULL:
            if typenum == cnp.NPY_FLOAT32:
                _forward_call(out_p, out_ld, h_p, hs_p, w_p, chunk, x_p, wi_p, wh_p, bi_p, bh_p,
                              len_p, full, T, B, I, H, reverse, act, train, columns,
                              <float *>NULL)
            else:
                _forward_call(out_p, out_ld, h_p, hs_p, w_p, chunk, x_p, wi_p, wh_p, bi_p, bh_p,
                              len_p, full, T, B, I, H, reverse, act, train, columns,
                              <double *>NULL)
            if own:
                rc_work_free(w_p)
    if w_p == NULL:
        raise MemoryError()


# ---- the lean path (driver: _recurrent.pxd's lean_layers) ---------------------

# GRU_CY_POISON: fill the workspaces the kernels allocate themselves with
# NaN (set_poison).
cdef bint _poison = False


def set_poison(bint on):
    """Fill the workspaces the kernels allocate themselves with NaN before
    use (debug runs)."""
    global _poison
    _poison = on


cdef Py_ssize_t _lean_plan(void *cell, int T, int B, int I, bint has_bias) noexcept nogil:
    cdef LeanCell *c = <LeanCell *>cell
    c.columns = _columns(B, c.H, True, False)
    c.chunk = plan_chunk(c.columns, T, B, c.H, True, c.reverse, c.chunk_elements)
    return _forward_work(T, B, I, c.H, c.chunk, c.columns)


cdef void _lean_layer(void *cell, char *out, char *h, char *work, const char *x,
                      const char **w, int T, int B, int I) noexcept nogil:
    cdef LeanCell *c = <LeanCell *>cell
    if c.typenum == cnp.NPY_FLOAT32:
        _forward_call(out, c.H, h, NULL, work, c.chunk, x, w[0], w[1], w[2], w[3], NULL, True,
                      T, B, I, c.H, c.reverse, c.flags, False, c.columns, <float *>NULL)
    else:
        _forward_call(out, c.H, h, NULL, work, c.chunk, x, w[0], w[1], w[2], w[3], NULL, True,
                      T, B, I, c.H, c.reverse, c.flags, False, c.columns, <double *>NULL)


cdef inline void _lean_cell(LeanCell *c, int hidden_size, int typenum, bint reverse, int act,
                            Py_ssize_t chunk_elements) noexcept:
    c.H = hidden_size
    c.GH = hidden_size
    c.typenum = typenum
    c.flags = act
    c.reverse = reverse
    c.poison = _poison
    c.chunk_elements = chunk_elements
    c.plan = _lean_plan
    c.run = _lean_layer


def rnn_infer(object x, object h, object params, tuple names, int input_size, int hidden_size,
              int typenum, bint reverse, int act, bint batch_first,
              Py_ssize_t chunk_elements):
    """Inference over every layer with full lengths, the lean path of
    RNN.__call__ for unidirectional modules: (out, h_n), or None when an
    argument is not already what the kernels take (see _recurrent.pxd's
    lean_infer). Runs rnn_forward's kernel on each layer, so the results
    are the general path's bit for bit."""
    cdef LeanCell cell
    _lean_cell(&cell, hidden_size, typenum, reverse, act, chunk_elements)
    return lean_infer(&cell, x, h, params, names, input_size, batch_first)


def rnn_step(object x, object h, object params, tuple names, int input_size, int hidden_size,
             int typenum, bint reverse, int act):
    """One step of every layer, the lean path of RNN.step: (y, h_new), or
    None when an argument is not already what the kernels take."""
    cdef LeanCell cell
    _lean_cell(&cell, hidden_size, typenum, reverse, act, 1)
    return lean_step(&cell, x, h, params, names, input_size)


# ---- backward -------------------------------------------------------------

cdef void _backward_rows(floating *dh, floating *dgi, floating *dgh, const floating *dout,
                         Py_ssize_t dout_ld, const floating *hs, const floating *w_hh,
                         const floating *w_p, const long long *lengths, bint full, int max_len, int T, int B,
                         int H, bint reverse, int act) noexcept nogil:
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef int s
    cdef rc_steps_t st
    cdef floating *dgh_s
    # Sorted lengths: the product below covers only the rows still running
    # at step s (the others have dgh = 0).
    cdef bint prefix = sorted_desc(lengths, full, B)
    cdef int n_act = B if not prefix else 0
    init_steps(&st, B, H, T, reverse, lengths, full)
    if not full:
        zero_unvisited(dgi, dgh, lengths, max_len, T, B, H)
    for s in range(max_len - 1, -1, -1):
        st.s = s
        dgh_s = dgh + s * HB
        if prefix:
            while n_act < B and lengths[n_act] > s:
                n_act += 1
        row_bwd(&st, act, hs + (s + 1) * HB, dout, dout_ld, dh, dgi, dgh_s)
        # dh += dgh_s @ w_hh
        rows_recurrent_back(B, n_act, 0, H, H, H, dgh_s, w_hh, w_p, <floating>1.0, dh)


cdef void _backward_columns(floating *dx, floating *dh, floating *dw_ih, floating *dw_hh,
                            floating *db_ih, floating *db_hh, floating *work,
                            const floating *dout, Py_ssize_t dout_ld, const floating *hs,
                            const floating *x, const floating *w_ih, const floating *w_hh,
                            int T, int B, int I, int H, bint reverse, int act) noexcept nogil:
    """Columns-layout backward. dgi and dgh live one block (Tb steps) at a
    time: as soon as the steps of a block are done its weight-gradient GEMMs
    run, so the workspace does not grow with T."""
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef int Tb = block_steps(B)
    cdef int W = Tb * B
    cdef int s, t, first, cols
    # work: dgi and dgh blocks (H, W), w_t (H, H), dh^T, dout_t^T (H, B)
    cdef floating *dgi_b = work
    cdef floating *dgh_b = dgi_b + <Py_ssize_t>H * W
    cdef floating *w_t = dgh_b + <Py_ssize_t>H * W
    cdef floating *dh_t = w_t + <Py_ssize_t>H * H
    cdef floating *dout_t = dh_t + HB
    cdef floating *dgh_s
    transpose(H, H, w_hh, H, w_t, H)
    transpose(B, H, dh, H, dh_t, B)
    for s in range(T - 1, -1, -1):
        t = s if not reverse else T - 1 - s
        dgh_s = dgh_b + (s % Tb) * B
        transpose(B, H, dout + <Py_ssize_t>t * B * dout_ld, dout_ld, dout_t, B)
        col_bwd(B, H, act, hs + slot(s + 1, Tb, B, H), W, dh_t, dout_t,
                dgi_b + (t % Tb) * B, dgh_s, W)
        # dh^T = w_hh.T @ dgh_s^T
        gemm(NoTrans, NoTrans, H, B, H, <floating>1.0, w_t, H, dgh_s, W,
             <floating>0.0, dh_t, B)
        if s % Tb == 0:
            # Steps [s, s + Tb) done: dw_hh += dgh_b @ hprev_b; db += dgh_b.sum(1)
            cols = (min(s + Tb, T) - s) * B
            block_recurrent_grads(dw_hh, dgh_b, hs + slot(s, Tb, B, H), H, cols, W, H)
            if db_ih != NULL:
                sum_cols(H, cols, dgh_b, W, db_ih)
                sum_cols(H, cols, dgh_b, W, db_hh)
        if (t % Tb == 0) if not reverse else (t % Tb == Tb - 1 or t == T - 1):
            # Times [first, first + Tb) done: their input weight gradients and dx.
            first = t - t % Tb
            block_input_grads(dx + <Py_ssize_t>first * B * I, dw_ih, <floating *>NULL, dgi_b,
                              x + <Py_ssize_t>first * B * I, w_ih,
                              (min(first + Tb, T) - first) * B, W, I, H)
    transpose(H, B, dh_t, B, dh, H)


cdef void _backward(floating *dx, floating *dh, floating *dw_ih, floating *dw_hh,
                    floating *db_ih, floating *db_hh, floating *work,
                    const floating *dout, Py_ssize_t dout_ld, const floating *hs,
                    const floating *x, const floating *w_ih, const floating *w_hh,
                    const long long *lengths, bint full, int T, int B, int I, int H,
                    bint reverse, int act, bint columns) noexcept nogil:
    cdef int rows = T * B
    cdef int max_len = max_length(lengths, full, T, B)
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef floating *dgi = work
    cdef floating *dgh = dgi + TB * H
    cdef floating *rest = dgh + TB * H
    cdef const floating *x_used = x
    cdef floating *w_p = NULL
    if columns:
        _backward_columns(dx, dh, dw_ih, dw_hh, db_ih, db_hh, work, dout, dout_ld, hs, x, w_ih,
                          w_hh, T, B, I, H, reverse, act)
        return
    # rest: x_masked (T * B, I) with uneven lengths, W_hh packed
    if use_packed(T, B, H, H):
        w_p = rest + (0 if full else TB * I)
        pack(False, H, H, w_hh, H, w_p)
    _backward_rows(dh, dgi, dgh, dout, dout_ld, hs, w_hh, w_p, lengths, full, max_len, T, B,
                   H, reverse, act)
    if not full:
        x_used = masked_input(rest, x, lengths, T, B, I)
    # Weight gradients: one GEMM each over all T * B rows.
    # dw_ih += dgi.T @ x ; dx += dgi @ w_ih
    rows_input_grads(dw_ih, dx, dgi, x_used, w_ih, rows, I, H)
    # dw_hh += dgh.T @ hprev      (slots 0 .. T-1 of the tape)
    rows_recurrent_grads(dw_hh, dgh, hs, rows, H, H, H)
    if db_ih != NULL:
        # db_ih += dgh.sum(0) ; db_hh += dgh.sum(0)   (the same pre-activation)
        sum_rows(rows, H, dgh, H, db_ih)
        sum_rows(rows, H, dgh, H, db_hh)


cdef Py_ssize_t _backward_work(int T, int B, int I, int H, bint full, bint columns) noexcept:
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef Py_ssize_t n
    if columns:
        n = 2 * <Py_ssize_t>H * block_steps(B) * B             # dgi, dgh blocks
        n += <Py_ssize_t>H * H + 2 * <Py_ssize_t>H * B         # w_t, dh^T, dout^T
    else:
        n = 2 * TB * H                                         # dgi, dgh
        if not full:
            n += TB * I                                        # x_masked
        if pack_steps(T):
            n += packed_elems(H, H)                            # W_hh packed
    return n


def backward_work_size(int T, int B, int I, int H, bint full, bint columns):
    """Elements of the workspace rnn_backward needs."""
    return _backward_work(T, B, I, H, full, columns)


def rnn_backward(cnp.ndarray dx, cnp.ndarray dh, tuple grads, object work,
                 cnp.ndarray dout, int col, cnp.ndarray saved, cnp.ndarray x, cnp.ndarray w_ih,
                 cnp.ndarray w_hh, cnp.ndarray lengths, bint full, bint reverse, int act,
                 bint columns):
    """Backward of rnn_forward with a tape; adds into dx and the gradients.

    dx     (T, B, I)   += dL/dx (both directions of a layer add here)
    dh     (B, H)      dL/dh_n on entry, dL/dh0 on return
    grads  (dw_ih (H, I), dw_hh (H, H), db_ih, db_hh (H,) or None), added to
    work               workspace of backward_work_size(...) elements, or None
                       to have one allocated (and freed) here
    dout   (T, B, OH)  dL/dout, columns [col, col + H)
    saved  the tape rnn_forward filled
    x, w_ih, w_hh, lengths, full, reverse, act, columns: as given to
                       rnn_forward
    All arrays C-contiguous, of x's float dtype.
    """
    cdef int typenum = float_type(x)
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = dh.shape[1]
    cdef cnp.ndarray dw_ih, dw_hh, db_ih = None, db_hh = None
    if x.ndim != 3 or dx.ndim != 3 or dout.ndim != 3 or dh.ndim != 2:
        raise ValueError("rnn_backward: x, dx and dout must be 3-D, dh 2-D")
    if T == 0 or B == 0:
        return
    dw_ih, dw_hh, b1, b2 = grads
    if (dx.shape[0] != T or dx.shape[1] != B or dx.shape[2] != I or dh.shape[0] != B
            or dout.shape[0] != T or dout.shape[1] != B or col < 0 or col + H > dout.shape[2]
            or w_ih.shape[0] != H or w_ih.shape[1] != I or w_hh.shape[0] != H
            or w_hh.shape[1] != H or cnp.PyArray_SIZE(dw_ih) != <Py_ssize_t>H * I
            or cnp.PyArray_SIZE(dw_hh) != <Py_ssize_t>H * H or act < 0 or act > 1):
        raise ValueError("rnn_backward: inconsistent shapes")
    check_array(dx, typenum, 0, True, "dx")
    check_array(dh, typenum, 0, True, "dh")
    check_array(dw_ih, typenum, 0, True, "dw_ih")
    check_array(dw_hh, typenum, 0, True, "dw_hh")
    if b1 is not None:
        db_ih, db_hh = b1, b2
        check_array(db_ih, typenum, H, True, "db_ih")
        check_array(db_hh, typenum, H, True, "db_hh")
    cdef Py_ssize_t n_work = _backward_work(T, B, I, H, full, columns)
    cdef bint own = work is None
    if not own:
        check_array(work, typenum, n_work, True, "work")
    check_array(dout, typenum, 0, False, "dout")
    check_array(saved, typenum, tape_size(T, B, H), False, "saved")
    check_array(x, typenum, 0, False, "x")
    check_array(w_ih, typenum, 0, False, "w_ih")
    check_array(w_hh, typenum, 0, False, "w_hh")
    check_lengths(lengths, B)
    cdef char *p[8]
    p[0] = <char *>cnp.PyArray_DATA(dx)
    p[1] = <char *>cnp.PyArray_DATA(dh)
    p[2] = <char *>cnp.PyArray_DATA(dw_ih)
    p[3] = <char *>cnp.PyArray_DATA(dw_hh)
    p[4] = <char *>cnp.PyArray_DATA(db_ih) if db_ih is not None else NULL
    p[5] = <char *>cnp.PyArray_DATA(db_hh) if db_hh is not None else NULL
    p[6] = NULL if own else <char *>cnp.PyArray_DATA(<cnp.ndarray>work)
    p[7] = <char *>cnp.PyArray_DATA(dout) + col * cnp.PyArray_ITEMSIZE(dout)
    cdef const char *hs_p = <const char *>cnp.PyArray_DATA(saved)
    cdef const char *x_p = <const char *>cnp.PyArray_DATA(x)
    cdef const char *wi_p = <const char *>cnp.PyArray_DATA(w_ih)
    cdef const char *wh_p = <const char *>cnp.PyArray_DATA(w_hh)
    cdef const long long *len_p = <const long long *>cnp.PyArray_DATA(lengths)
    cdef Py_ssize_t dout_ld = dout.shape[2]
    with nogil:
        if own:
            p[6] = alloc_work(n_work, typenum, _poison)
        if p[6] != NULL:
            if typenum == cnp.NPY_FLOAT32:
                _backward(<float *>p[0], <float *>p[1], <float *>p[2], <float *>p[3],
                          <float *>p[4], <float *>p[5], <float *>p[6], <const float *>p[7],
                          dout_ld, <const float *>hs_p, <const float *>x_p,
                          <const float *>wi_p, <const float *>wh_p, len_p, full, T, B, I, H,
                          reverse, act, columns)
            else:
                _backward(<double *>p[0], <double *>p[1], <double *>p[2], <double *>p[3],
                          <double *>p[4], <double *>p[5], <double *>p[6], <const double *>p[7],
                          dout_ld, <const double *>hs_p, <const double *>x_p,
                          <const double *>wi_p, <const double *>wh_p, len_p, full, T, B, I, H,
                          reverse, act, columns)
            if own:
                rc_work_free(p[6])
    if p[6] == NULL:
        raise MemoryError()
