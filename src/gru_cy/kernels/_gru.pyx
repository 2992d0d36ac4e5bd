"""GRU kernels: one layer, one direction, a time-major padded batch.

Shapes (the letters of docs/architecture.md): T steps, B batch, I inputs, H hidden units.
Gate order r, z, n. Arrays are C-contiguous; the caller (gru_cy.nn.gru)
validates and allocates every output, tape and workspace (plan,
tape_sizes, forward_work_size and backward_work_size give the sizes). The
time loops run with the GIL released, never allocate and never call into
Python.

Step s of the loop handles, for each sequence b with s < len_b, time index
t = s (forward) or t = len_b - 1 - s (reverse): each sequence is reversed
within its own length. Saved activations are indexed by step s; per-time
quantities (x, out, dgi, dx) by t.

Two layouts (see _gru_gates.h), chosen by use_columns from B and H:

rows     the state h is (B, H); per step gh = h @ W_hh^T on W_hh^T packed
         once per call (gemm_packed; BLAS for one-step calls). Any lengths;
         every inference call. Tape: gates (T, B, 3H), aux (T, B, H), hprev
         (T, B, H).
columns  every per-step array is transposed, the state is h^T (H, B) and
         the recurrent product is gh^T = W_hh @ h^T (BLAS); training with
         full lengths from B = 8 (see _columns). The tape holds gates (3H rows),
         aux (H rows) and the T + 1 states h^T (H rows; h0 in slot 0, the
         state after step s in slot s + 1), each in blocks of Tb steps
         (slot); backward keeps one block of dgi and dgh and runs the
         weight-gradient GEMMs of a block as soon as it is complete.

The input projection x @ W_ih^T is one GEMM per chunk of steps, so the
inference workspace does not grow with T; the weight gradients are GEMMs
over all T * B rows (rows) or one per block (columns), after or during the
backward loop, never per step.
"""

import numpy as np

cimport numpy as cnp
from cython cimport floating
from libc.string cimport memset

from gru_cy.kernels._blas cimport gemm, NoTrans, pack, packed_elems, Trans
from gru_cy.kernels._recurrent cimport (
    LeanCell, rc_steps_t, alloc_work, block_input_grads, block_recurrent_grads, block_steps,
    blocked_size, packed_or_null, rc_work_free,
    check_array, check_lengths, columns_layout, float_type, init_steps, lean_infer, lean_step,
    masked_input, max_length, next_chunk, pack_steps, plan_chunk, project, rows_input_grads,
    use_packed,
    rows_recurrent, rows_recurrent_back, rows_recurrent_grads, slot, sorted_desc, sum_cols,
    sum_rows, transpose, zero_unvisited)

cdef extern from "<time.h>" nogil:
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec *tp)
    int CLOCK_MONOTONIC

cdef extern from "_gru_gates.h" nogil:
    ctypedef rc_steps_t gru_steps_t

    void gru_row_fwd_after_f32(const gru_steps_t *st, const float *gi, const float *gh,
                               const float *b_ih, const float *b_hh, float *h, float *out,
                               Py_ssize_t out_ld, float *gates, float *aux, float *hprev)
    void gru_row_fwd_after_f64(const gru_steps_t *st, const double *gi, const double *gh,
                               const double *b_ih, const double *b_hh, double *h, double *out,
                               Py_ssize_t out_ld, double *gates, double *aux, double *hprev)
    void gru_row_fwd_before_rz_f32(const gru_steps_t *st, const float *gi, const float *gh,
                                   const float *b_ih, const float *b_hh, const float *h,
                                   float *gates, float *rh, int train)
    void gru_row_fwd_before_rz_f64(const gru_steps_t *st, const double *gi, const double *gh,
                                   const double *b_ih, const double *b_hh, const double *h,
                                   double *gates, double *rh, int train)
    void gru_row_fwd_before_n_f32(const gru_steps_t *st, const float *gi, const float *gh,
                                  const float *b_ih, const float *b_hh, float *gates, float *h,
                                  float *out, Py_ssize_t out_ld, float *hprev)
    void gru_row_fwd_before_n_f64(const gru_steps_t *st, const double *gi, const double *gh,
                                  const double *b_ih, const double *b_hh, double *gates,
                                  double *h, double *out, Py_ssize_t out_ld, double *hprev)
    void gru_row_bwd_after_f32(const gru_steps_t *st, const float *gates, const float *aux,
                               const float *hprev, const float *dout, Py_ssize_t dout_ld,
                               float *dh, float *dgi, float *dgh)
    void gru_row_bwd_after_f64(const gru_steps_t *st, const double *gates, const double *aux,
                               const double *hprev, const double *dout, Py_ssize_t dout_ld,
                               double *dh, double *dgi, double *dgh)
    void gru_row_bwd_before_n_f32(const gru_steps_t *st, const float *gates, const float *hprev,
                                  const float *dout, Py_ssize_t dout_ld, float *dh, float *dgi,
                                  float *dgh)
    void gru_row_bwd_before_n_f64(const gru_steps_t *st, const double *gates,
                                  const double *hprev, const double *dout, Py_ssize_t dout_ld,
                                  double *dh, double *dgi, double *dgh)
    void gru_row_bwd_before_rz_f32(const gru_steps_t *st, const float *gates,
                                   const float *hprev, const float *drh, float *dh, float *dgi,
                                   float *dgh)
    void gru_row_bwd_before_rz_f64(const gru_steps_t *st, const double *gates,
                                   const double *hprev, const double *drh, double *dh,
                                   double *dgi, double *dgh)
    void gru_col_fwd_after_f32(int B, int H, const float *gi, Py_ssize_t gi_ld,
                               const float *gh, const float *b_ih, const float *b_hh,
                               const float *h, Py_ssize_t h_ld, float *h_new,
                               Py_ssize_t hn_ld, float *gates, float *aux, Py_ssize_t sv_ld)
    void gru_col_fwd_after_f64(int B, int H, const double *gi, Py_ssize_t gi_ld,
                               const double *gh, const double *b_ih, const double *b_hh,
                               const double *h, Py_ssize_t h_ld, double *h_new,
                               Py_ssize_t hn_ld, double *gates, double *aux, Py_ssize_t sv_ld)
    void gru_col_fwd_before_rz_f32(int B, int H, const float *gi, Py_ssize_t gi_ld,
                                   const float *gh, const float *b_ih, const float *b_hh,
                                   const float *h, Py_ssize_t h_ld, float *gates, float *rh,
                                   Py_ssize_t sv_ld)
    void gru_col_fwd_before_rz_f64(int B, int H, const double *gi, Py_ssize_t gi_ld,
                                   const double *gh, const double *b_ih, const double *b_hh,
                                   const double *h, Py_ssize_t h_ld, double *gates, double *rh,
                                   Py_ssize_t sv_ld)
    void gru_col_fwd_before_n_f32(int B, int H, const float *gi, Py_ssize_t gi_ld,
                                  const float *ghn, const float *b_ih, const float *b_hh,
                                  float *gates, Py_ssize_t sv_ld, const float *h,
                                  Py_ssize_t h_ld, float *h_new, Py_ssize_t hn_ld)
    void gru_col_fwd_before_n_f64(int B, int H, const double *gi, Py_ssize_t gi_ld,
                                  const double *ghn, const double *b_ih, const double *b_hh,
                                  double *gates, Py_ssize_t sv_ld, const double *h,
                                  Py_ssize_t h_ld, double *h_new, Py_ssize_t hn_ld)
    void gru_col_bwd_after_f32(int B, int H, const float *gates, const float *aux,
                               Py_ssize_t sv_ld, const float *hprev, Py_ssize_t hp_ld,
                               const float *dout, float *dh, float *dgi, float *dgh,
                               Py_ssize_t dg_ld)
    void gru_col_bwd_after_f64(int B, int H, const double *gates, const double *aux,
                               Py_ssize_t sv_ld, const double *hprev, Py_ssize_t hp_ld,
                               const double *dout, double *dh, double *dgi, double *dgh,
                               Py_ssize_t dg_ld)
    void gru_col_bwd_before_n_f32(int B, int H, const float *gates, Py_ssize_t sv_ld,
                                  const float *hprev, Py_ssize_t hp_ld, const float *dout,
                                  float *dh, float *dgi, float *dgh, Py_ssize_t dg_ld)
    void gru_col_bwd_before_n_f64(int B, int H, const double *gates, Py_ssize_t sv_ld,
                                  const double *hprev, Py_ssize_t hp_ld, const double *dout,
                                  double *dh, double *dgi, double *dgh, Py_ssize_t dg_ld)
    void gru_col_bwd_before_rz_f32(int B, int H, const float *gates, Py_ssize_t sv_ld,
                                   const float *hprev, Py_ssize_t hp_ld, const float *drh,
                                   float *dh, float *dgi, float *dgh, Py_ssize_t dg_ld)
    void gru_col_bwd_before_rz_f64(int B, int H, const double *gates, Py_ssize_t sv_ld,
                                   const double *hprev, Py_ssize_t hp_ld, const double *drh,
                                   double *dh, double *dgi, double *dgh, Py_ssize_t dg_ld)


cnp.import_array()


# ---- fused dispatchers over the C step functions -------------------------

cdef inline void row_fwd_after(const gru_steps_t *st, const floating *gi,
                               const floating *gh, const floating *b_ih,
                               const floating *b_hh, floating *h, floating *out,
                               Py_ssize_t out_ld, floating *gates, floating *aux,
                               floating *hprev) noexcept nogil:
    if floating is float:
        gru_row_fwd_after_f32(st, gi, gh, b_ih, b_hh, h, out, out_ld, gates, aux, hprev)
    else:
        gru_row_fwd_after_f64(st, gi, gh, b_ih, b_hh, h, out, out_ld, gates, aux, hprev)

cdef inline void row_fwd_before_rz(const gru_steps_t *st, const floating *gi,
                                   const floating *gh, const floating *b_ih,
                                   const floating *b_hh, const floating *h,
                                   floating *gates, floating *rh, int train) noexcept nogil:
    if floating is float:
        gru_row_fwd_before_rz_f32(st, gi, gh, b_ih, b_hh, h, gates, rh, train)
    else:
        gru_row_fwd_before_rz_f64(st, gi, gh, b_ih, b_hh, h, gates, rh, train)

cdef inline void row_fwd_before_n(const gru_steps_t *st, const floating *gi,
                                  const floating *gh, const floating *b_ih,
                                  const floating *b_hh, floating *gates, floating *h,
                                  floating *out, Py_ssize_t out_ld,
                                  floating *hprev) noexcept nogil:
    if floating is float:
        gru_row_fwd_before_n_f32(st, gi, gh, b_ih, b_hh, gates, h, out, out_ld, hprev)
    else:
        gru_row_fwd_before_n_f64(st, gi, gh, b_ih, b_hh, gates, h, out, out_ld, hprev)

cdef inline void row_bwd_after(const gru_steps_t *st, const floating *gates,
                               const floating *aux, const floating *hprev,
                               const floating *dout, Py_ssize_t dout_ld, floating *dh,
                               floating *dgi, floating *dgh) noexcept nogil:
    if floating is float:
        gru_row_bwd_after_f32(st, gates, aux, hprev, dout, dout_ld, dh, dgi, dgh)
    else:
        gru_row_bwd_after_f64(st, gates, aux, hprev, dout, dout_ld, dh, dgi, dgh)

cdef inline void row_bwd_before_n(const gru_steps_t *st, const floating *gates,
                                  const floating *hprev, const floating *dout,
                                  Py_ssize_t dout_ld, floating *dh, floating *dgi,
                                  floating *dgh) noexcept nogil:
    if floating is float:
        gru_row_bwd_before_n_f32(st, gates, hprev, dout, dout_ld, dh, dgi, dgh)
    else:
        gru_row_bwd_before_n_f64(st, gates, hprev, dout, dout_ld, dh, dgi, dgh)

cdef inline void row_bwd_before_rz(const gru_steps_t *st, const floating *gates,
                                   const floating *hprev, const floating *drh,
                                   floating *dh, floating *dgi,
                                   floating *dgh) noexcept nogil:
    if floating is float:
        gru_row_bwd_before_rz_f32(st, gates, hprev, drh, dh, dgi, dgh)
    else:
        gru_row_bwd_before_rz_f64(st, gates, hprev, drh, dh, dgi, dgh)

cdef inline void col_fwd_after(int B, int H, const floating *gi, Py_ssize_t gi_ld,
                               const floating *gh, const floating *b_ih,
                               const floating *b_hh, const floating *h, Py_ssize_t h_ld,
                               floating *h_new, Py_ssize_t hn_ld, floating *gates,
                               floating *aux, Py_ssize_t sv_ld) noexcept nogil:
    if floating is float:
        gru_col_fwd_after_f32(B, H, gi, gi_ld, gh, b_ih, b_hh, h, h_ld, h_new, hn_ld,
                              gates, aux, sv_ld)
    else:
        gru_col_fwd_after_f64(B, H, gi, gi_ld, gh, b_ih, b_hh, h, h_ld, h_new, hn_ld,
                              gates, aux, sv_ld)

cdef inline void col_fwd_before_rz(int B, int H, const floating *gi, Py_ssize_t gi_ld,
                                   const floating *gh, const floating *b_ih,
                                   const floating *b_hh, const floating *h,
                                   Py_ssize_t h_ld, floating *gates, floating *rh,
                                   Py_ssize_t sv_ld) noexcept nogil:
    if floating is float:
        gru_col_fwd_before_rz_f32(B, H, gi, gi_ld, gh, b_ih, b_hh, h, h_ld, gates, rh, sv_ld)
    else:
        gru_col_fwd_before_rz_f64(B, H, gi, gi_ld, gh, b_ih, b_hh, h, h_ld, gates, rh, sv_ld)

cdef inline void col_fwd_before_n(int B, int H, const floating *gi, Py_ssize_t gi_ld,
                                  const floating *ghn, const floating *b_ih,
                                  const floating *b_hh, floating *gates, Py_ssize_t sv_ld,
                                  const floating *h, Py_ssize_t h_ld, floating *h_new,
                                  Py_ssize_t hn_ld) noexcept nogil:
    if floating is float:
        gru_col_fwd_before_n_f32(B, H, gi, gi_ld, ghn, b_ih, b_hh, gates, sv_ld, h, h_ld,
                                 h_new, hn_ld)
    else:
        gru_col_fwd_before_n_f64(B, H, gi, gi_ld, ghn, b_ih, b_hh, gates, sv_ld, h, h_ld,
                                 h_new, hn_ld)

cdef inline void col_bwd_after(int B, int H, const floating *gates, const floating *aux,
                               Py_ssize_t sv_ld, const floating *hprev, Py_ssize_t hp_ld,
                               const floating *dout, floating *dh, floating *dgi,
                               floating *dgh, Py_ssize_t dg_ld) noexcept nogil:
    if floating is float:
        gru_col_bwd_after_f32(B, H, gates, aux, sv_ld, hprev, hp_ld, dout, dh, dgi, dgh,
                              dg_ld)
    else:
        gru_col_bwd_after_f64(B, H, gates, aux, sv_ld, hprev, hp_ld, dout, dh, dgi, dgh,
                              dg_ld)

cdef inline void col_bwd_before_n(int B, int H, const floating *gates, Py_ssize_t sv_ld,
                                  const floating *hprev, Py_ssize_t hp_ld,
                                  const floating *dout, floating *dh, floating *dgi,
                                  floating *dgh, Py_ssize_t dg_ld) noexcept nogil:
    if floating is float:
        gru_col_bwd_before_n_f32(B, H, gates, sv_ld, hprev, hp_ld, dout, dh, dgi, dgh, dg_ld)
    else:
        gru_col_bwd_before_n_f64(B, H, gates, sv_ld, hprev, hp_ld, dout, dh, dgi, dgh, dg_ld)

cdef inline void col_bwd_before_rz(int B, int H, const floating *gates, Py_ssize_t sv_ld,
                                   const floating *hprev, Py_ssize_t hp_ld,
                                   const floating *drh, floating *dh, floating *dgi,
                                   floating *dgh, Py_ssize_t dg_ld) noexcept nogil:
    if floating is float:
        gru_col_bwd_before_rz_f32(B, H, gates, sv_ld, hprev, hp_ld, drh, dh, dgi, dgh, dg_ld)
    else:
        gru_col_bwd_before_rz_f64(B, H, gates, sv_ld, hprev, hp_ld, drh, dh, dgi, dgh, dg_ld)

# ---- layout choice ---------------------------------------------------------

# 0: choose by shape; 1: always rows; 2: columns whenever lengths are full
# (set_layout, for tests and measurements).
cdef int _layout_override = 0


cdef inline bint _columns(int B, int H, bint full, bint train) noexcept nogil:
    # Measured with the packed per-step products (one thread, T = 50-100,
    # H = 128-512): inference runs 1.05-1.35x faster in rows at every B up to
    # 128; training (forward with the tape, then backward) 1.3-1.45x faster
    # in columns at B = 8-32 (H = 128) and as fast at B = 64-128.
    if _layout_override != 0:
        return columns_layout(_layout_override, 3 * H, B, H, full)
    return full and train and (B >= 8 or columns_layout(0, 3 * H, B, H, full))


def large_batch(int B, int H):
    """Whether 3H * H * B exceeds the size up to which OpenBLAS's small-matrix
    GEMM kernels run the per-step products (columns_layout's rule); the
    GRU's two-thread batch split is measured against it."""
    return columns_layout(0, 3 * H, B, H, True)


def use_columns(int B, int H, bint full, bint train=True):
    """True when the kernels run (B, H) in the columns layout (see module
    doc); train: for forward with a tape and its backward."""
    return _columns(B, H, full, train)


def set_layout(str layout):
    """Force a layout for every later call: "rows", "columns" (used when
    lengths are full) or "auto" (the default). Process-wide; for tests and
    measurements, not for use while other threads run the kernels. A tape
    keeps the layout it was recorded in (gru_cy.nn.gru), whatever is set
    before backward."""
    global _layout_override
    _layout_override = {"auto": 0, "rows": 1, "columns": 2}[layout]


def plan(int T, int B, int H, bint full, bint reverse, Py_ssize_t chunk_elements,
         bint train=True):
    """(columns, chunk): the layout and the steps per input-projection GEMM."""
    cdef bint columns = _columns(B, H, full, train)
    return columns, plan_chunk(columns, T, B, 3 * H, full, reverse, chunk_elements)


def tape_sizes(int T, int B, int H):
    """Elements of the tape arrays (gates, aux, hprev) of gru_forward,
    enough for either layout."""
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    return (max(3 * H * TB, blocked_size(T, B, 3 * H)),
            max(H * TB, blocked_size(T, B, H)),
            max(H * (TB + B), blocked_size(T + 1, B, H)))


# ---- forward --------------------------------------------------------------

cdef void _forward(floating *out, Py_ssize_t out_ld, floating *h,
                   floating *gates, floating *aux, floating *hprev,
                   floating *gi, int chunk, floating *gh, floating *w_p,
                   floating *w_ih_p, const floating *x, const floating *w_ih, const floating *w_hh,
                   const floating *b_ih, const floating *b_hh,
                   const long long *lengths, bint full,
                   int T, int B, int I, int H, bint reverse, bint reset_after,
                   bint train, bint columns) noexcept nogil:
    cdef int H3 = 3 * H
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef Py_ssize_t h_ld = B, hn_ld = B, sv_ld = B
    cdef int s, t, t0 = 0, count = 0, max_len = max_length(lengths, full, T, B)
    cdef int Tb = block_steps(B)
    cdef bint prefix = (not columns) and sorted_desc(lengths, full, B)
    cdef int n_act = B      # rows still running (all of them unless prefix)
    cdef gru_steps_t st
    cdef floating *g_s
    cdef floating *a_s
    cdef floating *p_s
    cdef floating *h_cur
    cdef floating *h_new
    cdef floating *swap

    init_steps(&st, B, H, T, reverse, lengths, full)
    if columns:
        # State h^T: the tape's state slots in training (blocked, ld
        # Tb * B), two buffers (in hprev) otherwise.
        if train:
            h_cur = hprev
            h_ld = hn_ld = sv_ld = <Py_ssize_t>Tb * B
        else:
            h_cur = hprev
            h_new = hprev + HB
        transpose(B, H, h, H, h_cur, h_ld)
    else:
        w_p = packed_or_null(use_packed(T, B, H, H3), True, H, H3, w_hh, H, w_p)
    w_ih_p = packed_or_null(not columns and use_packed(T, chunk * B, I, H3), True, I, H3,
                            w_ih, I, w_ih_p)

    for s in range(max_len):
        # Refill the input projection when step s needs times outside the
        # chunk: gi holds times [t0, t0 + count). (With uneven lengths in
        # reverse the caller passes chunk = T.)
        if next_chunk(s, T, chunk, reverse, &t0, &count):
            project(columns, count, B, I, H3, x + <Py_ssize_t>t0 * B * I, w_ih, w_ih_p, gi)

        if columns:
            t = s if not reverse else T - 1 - s
            if train:
                h_cur = hprev + slot(s, Tb, B, H)
                h_new = hprev + slot(s + 1, Tb, B, H)
                g_s = gates + slot(s, Tb, B, H3)
                a_s = aux + slot(s, Tb, B, H)
            else:
                g_s = gates
                a_s = aux
            if reset_after:
                # gh^T = w_hh @ h^T      (3H, B)
                gemm(NoTrans, NoTrans, H3, B, H, <floating>1.0, w_hh, H, h_cur, <int>h_ld,
                     <floating>0.0, gh, B)
                col_fwd_after(B, H, gi + <Py_ssize_t>(t - t0) * B, <Py_ssize_t>count * B, gh,
                              b_ih, b_hh, h_cur, h_ld, h_new, hn_ld,
                              g_s if train else NULL, a_s, sv_ld)
            else:
                # gh^T[:2H] = w_hh[:2H] @ h^T
                gemm(NoTrans, NoTrans, 2 * H, B, H, <floating>1.0, w_hh, H, h_cur, <int>h_ld,
                     <floating>0.0, gh, B)
                col_fwd_before_rz(B, H, gi + <Py_ssize_t>(t - t0) * B, <Py_ssize_t>count * B,
                                  gh, b_ih, b_hh, h_cur, h_ld, g_s, a_s, sv_ld)
                # gh^T[2H:] = w_hh[2H:] @ (r * h)^T
                gemm(NoTrans, NoTrans, H, B, H, <floating>1.0, w_hh + 2 * <Py_ssize_t>H * H, H,
                     a_s, <int>sv_ld, <floating>0.0, gh + 2 * HB, B)
                col_fwd_before_n(B, H, gi + <Py_ssize_t>(t - t0) * B, <Py_ssize_t>count * B,
                                 gh + 2 * HB, b_ih, b_hh, g_s, sv_ld, h_cur, h_ld,
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
            g_s = gates + <Py_ssize_t>s * B * H3 if train else gates
            a_s = aux + s * HB if train else aux
            p_s = hprev + s * HB if train else NULL
            if prefix:
                # The gate loops skip finished rows without reading their gh.
                while n_act > 0 and lengths[n_act - 1] <= s:
                    n_act -= 1
            if reset_after:
                # gh[:n_act] = h[:n_act] @ w_hh.T
                rows_recurrent(n_act, 0, H3, H, H3, h, w_hh, w_p, gh)
                row_fwd_after(&st, gi, gh, b_ih, b_hh, h, out, out_ld,
                              g_s if train else NULL, a_s, p_s)
            else:
                # gh[:n_act, :2H] = h[:n_act] @ w_hh[:2H].T
                rows_recurrent(n_act, 0, 2 * H, H, H3, h, w_hh, w_p, gh)
                row_fwd_before_rz(&st, gi, gh, b_ih, b_hh, h, g_s, a_s, train)
                # gh[:n_act, 2H:] = (r * h)[:n_act] @ w_hh[2H:].T
                rows_recurrent(n_act, 2 * H, H, H, H3, a_s, w_hh, w_p, gh)
                row_fwd_before_n(&st, gi, gh, b_ih, b_hh, g_s, h, out, out_ld, p_s)

    if columns:
        # h_n = the last state, back to (B, H)
        if train:
            h_cur = hprev + slot(T, Tb, B, H)
        transpose(H, B, h_cur, h_ld, h, H)
    elif train and max_len < T:
        # Steps past the longest sequence change nothing; their tape rows
        # must hold finite values, since backward multiplies them by zero.
        memset(gates + <Py_ssize_t>max_len * B * H3, 0,
               <Py_ssize_t>(T - max_len) * B * H3 * sizeof(floating))
        memset(aux + max_len * HB, 0, (T - max_len) * HB * sizeof(floating))
        memset(hprev + max_len * HB, 0, (T - max_len) * HB * sizeof(floating))


# ---- entry points (checks in _recurrent.pxd) -------------------------------

cdef Py_ssize_t _forward_work(int T, int B, int I, int H, int chunk, bint train,
                              bint columns, bint has_bias) noexcept nogil:
    cdef Py_ssize_t H3B = <Py_ssize_t>3 * H * B
    cdef Py_ssize_t n = <Py_ssize_t>chunk * H3B + H3B          # gi, gh
    if not columns and pack_steps(T):
        n += packed_elems(H, 3 * H) + packed_elems(I, 3 * H)   # W_hh^T, W_ih^T packed
    if not train:
        n += 2 * H3B                                           # gates, aux, hprev
    if not has_bias:
        n += 3 * H                                             # zero biases
    return n


def forward_work_size(int T, int B, int I, int H, int chunk, bint train, bint columns,
                      bint has_bias):
    """Elements of the workspace gru_forward needs."""
    return _forward_work(T, B, I, H, chunk, train, columns, has_bias)


cdef void _forward_call(char *out, Py_ssize_t out_ld, char *h, char *gates, char *aux,
                        char *hprev, char *work, int chunk, const char *x,
                        const char *w_ih, const char *w_hh, const char *b_ih,
                        const char *b_hh, const long long *lengths, bint full, int T, int B,
                        int I, int H, bint reverse, bint reset_after, bint train,
                        bint columns, floating *typed) noexcept nogil:
    """Carve the workspace and run _forward; typed only selects the type."""
    cdef Py_ssize_t H3B = <Py_ssize_t>3 * H * B
    cdef floating *w = <floating *>work
    cdef floating *gi = w
    cdef floating *gh = gi + <Py_ssize_t>chunk * H3B
    cdef bint packed = not columns and pack_steps(T)
    cdef floating *w_p = gh + H3B
    cdef floating *w_ih_p = w_p + (packed_elems(H, 3 * H) if packed else 0)
    cdef floating *rest = w_ih_p + (packed_elems(I, 3 * H) if packed else 0)
    cdef floating *g = <floating *>gates
    cdef floating *a = <floating *>aux
    cdef floating *p = <floating *>hprev
    cdef const floating *bi = <const floating *>b_ih
    cdef const floating *bh = <const floating *>b_hh
    if not train:
        g = rest
        a = g + H3B
        p = a + <Py_ssize_t>H * B
        rest = p + 2 * <Py_ssize_t>H * B
    if bi == NULL:
        memset(rest, 0, 3 * H * sizeof(floating))
        bi = rest
        bh = rest
    _forward(<floating *>out, out_ld, <floating *>h, g, a, p, gi, chunk, gh, w_p, w_ih_p,
             <const floating *>x, <const floating *>w_ih, <const floating *>w_hh, bi, bh,
             lengths, full, T, B, I, H, reverse, reset_after, train, columns)


def gru_forward(cnp.ndarray out, int col, cnp.ndarray h, tuple saved, object work,
                cnp.ndarray x, cnp.ndarray w_ih, cnp.ndarray w_hh, object b_ih, object b_hh,
                cnp.ndarray lengths, bint full, bint reverse, bint reset_after, bint columns,
                int chunk):
    """Run one GRU layer in one direction over x.

    out    (T, B, OH)  receives h_t in columns [col, col + H); rows of
                       padded steps (t >= len_b) are left untouched
    h      (B, H)      h0 on entry, h_n on return (last valid step)
    saved  None (inference) or the tape (gates, aux, hprev) to fill, of
                       3H*T*B, H*T*B and H*(T+1)*B elements (module doc)
    work               workspace of forward_work_size(...) elements, or None
                       to have one allocated (and freed) here
    x      (T, B, I),  w_ih (3H, I), w_hh (3H, H), b_ih, b_hh (3H,) or None
    lengths (B,)       int64, 0 <= len_b <= T; full: every len_b == T
    columns            the layout, as use_columns(B, H, full) says
    chunk              steps per input-projection GEMM; T when reverse
                       with uneven lengths
    All arrays C-contiguous, of x's float dtype.
    """
    cdef int typenum = float_type(x)
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = h.shape[1]
    cdef bint train = saved is not None
    cdef bint has_bias = b_ih is not None
    cdef cnp.ndarray gates = None, aux = None, hprev = None, bi = None, bh = None
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    if x.ndim != 3 or h.ndim != 2 or out.ndim != 3 or w_ih.ndim != 2 or w_hh.ndim != 2:
        raise ValueError("gru_forward: x and out must be 3-D, h, w_ih and w_hh 2-D")
    if T == 0 or B == 0:
        return
    if (out.shape[0] != T or out.shape[1] != B or col < 0 or col + H > out.shape[2]
            or h.shape[0] != B or w_ih.shape[0] != 3 * H or w_ih.shape[1] != I
            or w_hh.shape[0] != 3 * H or w_hh.shape[1] != H or chunk < 1):
        raise ValueError("gru_forward: inconsistent shapes")
    check_array(out, typenum, 0, True, "out")
    check_array(h, typenum, 0, True, "h")
    cdef Py_ssize_t n_work = _forward_work(T, B, I, H, chunk, train, columns, has_bias)
    if work is not None:
        check_array(work, typenum, n_work, True, "work")
    check_array(w_ih, typenum, 0, False, "w_ih")
    check_array(w_hh, typenum, 0, False, "w_hh")
    if has_bias:
        bi, bh = b_ih, b_hh
        check_array(bi, typenum, 3 * H, False, "b_ih")
        check_array(bh, typenum, 3 * H, False, "b_hh")
    check_lengths(lengths, B)
    if train:
        gates, aux, hprev = saved
        sizes = tape_sizes(T, B, H)
        check_array(gates, typenum, sizes[0], True, "gates")
        check_array(aux, typenum, sizes[1], True, "aux")
        check_array(hprev, typenum, sizes[2], True, "hprev")
    cdef char *out_p = <char *>cnp.PyArray_DATA(out) + col * cnp.PyArray_ITEMSIZE(out)
    cdef char *g_p = NULL
    cdef char *a_p = NULL
    cdef char *p_p = NULL
    cdef const char *bi_p = NULL
    cdef const char *bh_p = NULL
    if train:
        g_p = <char *>cnp.PyArray_DATA(gates)
        a_p = <char *>cnp.PyArray_DATA(aux)
        p_p = <char *>cnp.PyArray_DATA(hprev)
    if has_bias:
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
                _forward_call(out_p, out_ld, h_p, g_p, a_p, p_p, w_p, chunk, x_p, wi_p, wh_p,
                              bi_p, bh_p, len_p, full, T, B, I, H, reverse, reset_after, train,
                              columns, <float *>NULL)
            else:
                _forward_call(out_p, out_ld, h_p, g_p, a_p, p_p, w_p, chunk, x_p, wi_p, wh_p,
                              bi_p, bh_p, len_p, full, T, B, I, H, reverse, reset_after, train,
                              columns, <double *>NULL)
            if own:
                rc_work_free(w_p)
    if w_p == NULL:
        raise MemoryError()


# The lean path: whole-module inference with full lengths, unidirectional,
# in one call from Python, for arguments already of the kernels' types
# (the driver is _recurrent.pxd's lean_layers).

# GRU_CY_POISON: fill the workspaces the kernels allocate themselves with
# NaN (set_poison).
cdef bint _poison = False


def set_poison(bint on):
    """Fill the workspaces the kernels allocate themselves (the lean path's,
    and gru_forward's and gru_backward's with work=None) with NaN before use
    (debug runs)."""
    global _poison
    _poison = on


cdef Py_ssize_t _lean_plan(void *cell, int T, int B, int I, bint has_bias) noexcept nogil:
    cdef LeanCell *c = <LeanCell *>cell
    c.columns = _columns(B, c.H, True, False)
    c.chunk = plan_chunk(c.columns, T, B, 3 * c.H, True, c.reverse, c.chunk_elements)
    return _forward_work(T, B, I, c.H, c.chunk, False, c.columns, has_bias)


cdef void _lean_layer(void *cell, char *out, char *h, char *work, const char *x,
                      const char **w, int T, int B, int I) noexcept nogil:
    cdef LeanCell *c = <LeanCell *>cell
    if c.typenum == cnp.NPY_FLOAT32:
        _forward_call(out, c.H, h, NULL, NULL, NULL, work, c.chunk, x, w[0], w[1], w[2], w[3],
                      NULL, True, T, B, I, c.H, c.reverse, c.flags, False, c.columns,
                      <float *>NULL)
    else:
        _forward_call(out, c.H, h, NULL, NULL, NULL, work, c.chunk, x, w[0], w[1], w[2], w[3],
                      NULL, True, T, B, I, c.H, c.reverse, c.flags, False, c.columns,
                      <double *>NULL)


cdef inline void _lean_cell(LeanCell *c, int hidden_size, int typenum, bint reverse,
                            bint reset_after, Py_ssize_t chunk_elements) noexcept:
    c.H = hidden_size
    c.GH = 3 * hidden_size
    c.typenum = typenum
    c.flags = reset_after
    c.reverse = reverse
    c.poison = _poison
    c.chunk_elements = chunk_elements
    c.plan = _lean_plan
    c.run = _lean_layer


def gru_infer(object x, object h, object params, tuple names, int input_size, int hidden_size,
              int typenum, bint reverse, bint reset_after, bint batch_first,
              Py_ssize_t chunk_elements):
    """Inference over every layer with full lengths, the lean path of
    GRU.__call__ for unidirectional modules: (out, h_n), or None when an
    argument is not already what the kernels take (another dtype, not
    C-contiguous, a wrong shape, a missing parameter, an empty or too large
    input...), so that the caller's general path converts it or raises the
    right error.

    x      (T, B, I), (B, T, I) when batch_first (then only with B = 1 or
           T = 1, where both orders share one memory layout), or (T, I)
    h      None (zeros), or (L, B, H), (L, H) for unbatched x
    params the module's parameters (a dict; other mappings take the general
           path); names holds per layer the names of (w_ih, w_hh) or
           (w_ih, w_hh, b_ih, b_hh)
    Runs gru_forward's kernel on each layer, so the results are the
    general path's bit for bit.
    """
    cdef LeanCell cell
    _lean_cell(&cell, hidden_size, typenum, reverse, reset_after, chunk_elements)
    return lean_infer(&cell, x, h, params, names, input_size, batch_first)


def gru_step(object x, object h, object params, tuple names, int input_size, int hidden_size,
             int typenum, bint reverse, bint reset_after):
    """One step of every layer, the lean path of GRU.step: (y, h_new), or
    None when an argument is not already what the kernels take (see
    gru_infer).

    x      (B, I) or (I,)
    h      None (zeros), or (L, B, H), (L, H) for unbatched x
    Runs gru_forward's kernel with T = 1 per layer: bit for bit the
    whole-sequence call over that one step. Over a longer sequence the
    whole-sequence call projects many steps' inputs in one GEMM, which BLAS
    may round differently from this one-step GEMM (a few ulp).
    """
    cdef LeanCell cell
    _lean_cell(&cell, hidden_size, typenum, reverse, reset_after, 1)
    return lean_step(&cell, x, h, params, names, input_size)


# ---- backward -------------------------------------------------------------

cdef void _backward_rows(floating *dh, floating *dgi, floating *dgh, floating *drh,
                         const floating *dout, Py_ssize_t dout_ld,
                         const floating *gates, const floating *aux, const floating *hprev,
                         const floating *w_hh, const floating *w_p,
                         const long long *lengths, bint full, int max_len, int T, int B,
                         int H, bint reverse, bint reset_after) noexcept nogil:
    cdef int H3 = 3 * H
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef int s
    cdef gru_steps_t st
    cdef floating *dgh_s
    # Sorted lengths: the products below cover only the rows still running
    # at step s (the others have dgh = 0, and their drh is never read).
    cdef bint prefix = sorted_desc(lengths, full, B)
    cdef int n_act = B if not prefix else 0
    init_steps(&st, B, H, T, reverse, lengths, full)
    if not full:
        zero_unvisited(dgi, dgh, lengths, max_len, T, B, H3)
    for s in range(max_len - 1, -1, -1):
        st.s = s
        dgh_s = dgh + <Py_ssize_t>s * B * H3
        if prefix:
            while n_act < B and lengths[n_act] > s:
                n_act += 1
        if reset_after:
            row_bwd_after(&st, gates + <Py_ssize_t>s * B * H3, aux + s * HB, hprev + s * HB,
                          dout, dout_ld, dh, dgi, dgh_s)
            # dh += dgh_s @ w_hh
            rows_recurrent_back(B, n_act, 0, H3, H, H3, dgh_s, w_hh, w_p, <floating>1.0, dh)
        else:
            row_bwd_before_n(&st, gates + <Py_ssize_t>s * B * H3, hprev + s * HB, dout,
                             dout_ld, dh, dgi, dgh_s)
            # drh = dgh_s[:, 2H:] @ w_hh[2H:]
            rows_recurrent_back(B, n_act, 2 * H, H, H, H3, dgh_s, w_hh, w_p, <floating>0.0,
                                drh)
            row_bwd_before_rz(&st, gates + <Py_ssize_t>s * B * H3, hprev + s * HB, drh, dh,
                              dgi, dgh_s)
            # dh += dgh_s[:, :2H] @ w_hh[:2H]
            rows_recurrent_back(B, n_act, 0, 2 * H, H, H3, dgh_s, w_hh, w_p, <floating>1.0, dh)


cdef void _backward_columns(floating *dx, floating *dh, floating *dw_ih, floating *dw_hh,
                            floating *db_ih, floating *db_hh, floating *work,
                            const floating *dout, Py_ssize_t dout_ld,
                            const floating *gates, const floating *aux, const floating *hs,
                            const floating *x, const floating *w_ih, const floating *w_hh,
                            int T, int B, int I, int H, bint reverse,
                            bint reset_after) noexcept nogil:
    """Columns-layout backward. dgi and dgh live one block (Tb steps) at a
    time: as soon as the steps of a block are done its weight-gradient GEMMs
    run, so the workspace does not grow with T (and stays in cache)."""
    cdef int H3 = 3 * H
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef int Tb = block_steps(B)
    cdef int W = Tb * B
    cdef int s, t, first
    # work: dgi and dgh blocks (3H, W), w_t (H, 3H), dh^T, dout_t^T, drh^T (H, B)
    cdef floating *dgi_b = work
    cdef floating *dgh_b = dgi_b + <Py_ssize_t>H3 * W
    cdef floating *w_t = dgh_b + <Py_ssize_t>H3 * W
    cdef floating *dh_t = w_t + <Py_ssize_t>H3 * H
    cdef floating *dout_t = dh_t + HB
    cdef floating *drh_t = dout_t + HB
    cdef floating *dgh_s
    cdef floating *dgi_t
    cdef const floating *g_s
    cdef const floating *a_s
    cdef const floating *hp_s
    transpose(H3, H, w_hh, H, w_t, H3)
    transpose(B, H, dh, H, dh_t, B)
    for s in range(T - 1, -1, -1):
        t = s if not reverse else T - 1 - s
        dgh_s = dgh_b + (s % Tb) * B
        dgi_t = dgi_b + (t % Tb) * B
        g_s = gates + slot(s, Tb, B, H3)
        a_s = aux + slot(s, Tb, B, H)
        hp_s = hs + slot(s, Tb, B, H)
        transpose(B, H, dout + <Py_ssize_t>t * B * dout_ld, dout_ld, dout_t, B)
        if reset_after:
            col_bwd_after(B, H, g_s, a_s, W, hp_s, W, dout_t, dh_t, dgi_t, dgh_s, W)
            # dh^T += w_hh.T @ dgh_s^T
            gemm(NoTrans, NoTrans, H, B, H3, <floating>1.0, w_t, H3, dgh_s, W,
                 <floating>1.0, dh_t, B)
        else:
            col_bwd_before_n(B, H, g_s, W, hp_s, W, dout_t, dh_t, dgi_t, dgh_s, W)
            # drh^T = w_hh[2H:].T @ dgh_s^T[2H:]
            gemm(NoTrans, NoTrans, H, B, H, <floating>1.0, w_t + 2 * H, H3,
                 dgh_s + <Py_ssize_t>2 * H * W, W, <floating>0.0, drh_t, B)
            col_bwd_before_rz(B, H, g_s, W, hp_s, W, drh_t, dh_t, dgi_t, dgh_s, W)
            # dh^T += w_hh[:2H].T @ dgh_s^T[:2H]
            gemm(NoTrans, NoTrans, H, B, 2 * H, <floating>1.0, w_t, H3, dgh_s, W,
                 <floating>1.0, dh_t, B)
        if s % Tb == 0:
            # Steps [s, s + Tb) done: their recurrent weight gradients.
            _recurrent_grads(dw_hh, db_hh, dgh_b, aux + slot(s, Tb, B, H), hp_s,
                             (min(s + Tb, T) - s) * B, W, H, reset_after)
        if (t % Tb == 0) if not reverse else (t % Tb == Tb - 1 or t == T - 1):
            # Times [first, first + Tb) done: their input weight gradients and dx.
            first = t - t % Tb
            block_input_grads(dx + <Py_ssize_t>first * B * I, dw_ih, db_ih, dgi_b,
                              x + <Py_ssize_t>first * B * I, w_ih,
                              (min(first + Tb, T) - first) * B, W, I, H3)
    transpose(H, B, dh_t, B, dh, H)


cdef void _recurrent_grads(floating *dw_hh, floating *db_hh, const floating *dgh_p,
                           const floating *aux_p, const floating *hs_p, int cols, int ld,
                           int H, bint reset_after) noexcept nogil:
    """dw_hh and db_hh from one block of dgh^T (3H, cols) with row stride ld."""
    if reset_after:
        # dw_hh += dgh_p @ hprev_p          (hprev_p^T = the block's state slots)
        block_recurrent_grads(dw_hh, dgh_p, hs_p, 3 * H, cols, ld, H)
    else:
        # dw_hh[:2H] += dgh_p[:2H] @ hprev_p ; dw_hh[2H:] += dgh_p[2H:] @ (r * hprev)_p
        block_recurrent_grads(dw_hh, dgh_p, hs_p, 2 * H, cols, ld, H)
        block_recurrent_grads(dw_hh + 2 * <Py_ssize_t>H * H, dgh_p + <Py_ssize_t>2 * H * ld,
                              aux_p, H, cols, ld, H)
    if db_hh != NULL:
        # db_hh += dgh_p.sum(1)
        sum_cols(3 * H, cols, dgh_p, ld, db_hh)


cdef void _backward(floating *dx, floating *dh, floating *dw_ih, floating *dw_hh,
                    floating *db_ih, floating *db_hh, floating *work,
                    const floating *dout, Py_ssize_t dout_ld,
                    const floating *gates, const floating *aux, const floating *hprev,
                    const floating *x, const floating *w_ih, const floating *w_hh,
                    const long long *lengths, bint full, int T, int B, int I, int H,
                    bint reverse, bint reset_after, bint columns) noexcept nogil:
    cdef int H3 = 3 * H
    cdef int rows = T * B
    cdef int max_len = max_length(lengths, full, T, B)
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef floating *dgi = work
    cdef floating *dgh = dgi + TB * H3
    cdef floating *rest = dgh + TB * H3
    cdef const floating *x_used = x
    cdef floating *w_p = NULL
    if columns:
        _backward_columns(dx, dh, dw_ih, dw_hh, db_ih, db_hh, work, dout, dout_ld, gates, aux,
                          hprev, x, w_ih, w_hh, T, B, I, H, reverse, reset_after)
        return
    # rest: drh (B, H), x_masked (T * B, I) with uneven lengths, W_hh packed
    if use_packed(T, B, H3, H):
        w_p = rest + <Py_ssize_t>B * H + (0 if full else TB * I)
        pack(False, H3, H, w_hh, H, w_p)
    _backward_rows(dh, dgi, dgh, rest, dout, dout_ld, gates, aux, hprev, w_hh, w_p,
                   lengths, full, max_len, T, B, H, reverse, reset_after)
    if not full:
        x_used = masked_input(rest + <Py_ssize_t>B * H, x, lengths, T, B, I)
    # Weight gradients: one GEMM each over all T * B rows.
    # dw_ih += dgi.T @ x ; dx += dgi @ w_ih
    rows_input_grads(dw_ih, dx, dgi, x_used, w_ih, rows, I, H3)
    if reset_after:
        # dw_hh += dgh.T @ hprev
        rows_recurrent_grads(dw_hh, dgh, hprev, rows, H3, H, H3)
    else:
        # dw_hh[:2H] += dgh[:, :2H].T @ hprev ; dw_hh[2H:] += dgh[:, 2H:].T @ (r * hprev)
        rows_recurrent_grads(dw_hh, dgh, hprev, rows, 2 * H, H, H3)
        rows_recurrent_grads(dw_hh + 2 * <Py_ssize_t>H * H, dgh + 2 * H, aux, rows, H, H, H3)
    if db_ih != NULL:
        # db_ih += dgi.sum(0) ; db_hh += dgh.sum(0)
        sum_rows(rows, H3, dgi, H3, db_ih)
        sum_rows(rows, H3, dgh, H3, db_hh)


cdef Py_ssize_t _backward_work(int T, int B, int I, int H, bint full,
                               bint columns) noexcept:
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef Py_ssize_t n = 2 * TB * 3 * H                         # dgi, dgh
    if columns:
        n = 2 * <Py_ssize_t>3 * H * block_steps(B) * B        # one block of each
        n += <Py_ssize_t>3 * H * H + <Py_ssize_t>3 * H * B     # w_t, dh^T, dout^T, drh^T
    else:
        n += <Py_ssize_t>H * B                                 # drh
        if not full:
            n += TB * I                                        # x_masked
        if pack_steps(T):
            n += packed_elems(3 * H, H)                        # W_hh packed
    return n


def backward_work_size(int T, int B, int I, int H, bint full, bint columns):
    """Elements of the workspace gru_backward needs."""
    return _backward_work(T, B, I, H, full, columns)


def gru_backward(cnp.ndarray dx, cnp.ndarray dh, tuple grads, object work,
                 cnp.ndarray dout, int col, tuple saved, cnp.ndarray x, cnp.ndarray w_ih,
                 cnp.ndarray w_hh, cnp.ndarray lengths, bint full, bint reverse,
                 bint reset_after, bint columns):
    """Backward of gru_forward with a tape; adds into dx and the gradients.

    dx     (T, B, I)   += dL/dx (both directions of a layer add here)
    dh     (B, H)      dL/dh_n on entry, dL/dh0 on return
    grads  (dw_ih (3H, I), dw_hh (3H, H), db_ih, db_hh (3H,) or None), added to
    work               workspace of backward_work_size(...) elements, or None
                       to have one allocated (and freed) here
    dout   (T, B, OH)  dL/dout, columns [col, col + H)
    saved  the tape (gates, aux, hprev) gru_forward filled
    x, w_ih, w_hh, lengths, full, reverse, reset_after, columns: as given
                       to gru_forward
    All arrays C-contiguous, of x's float dtype.
    """
    cdef int typenum = float_type(x)
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = dh.shape[1]
    cdef Py_ssize_t TB = <Py_ssize_t>T * B
    cdef cnp.ndarray dw_ih, dw_hh, db_ih = None, db_hh = None, gates, aux, hprev
    if x.ndim != 3 or dx.ndim != 3 or dout.ndim != 3 or dh.ndim != 2:
        raise ValueError("gru_backward: x, dx and dout must be 3-D, dh 2-D")
    if T == 0 or B == 0:
        return
    dw_ih, dw_hh, b1, b2 = grads
    gates, aux, hprev = saved
    if (dx.shape[0] != T or dx.shape[1] != B or dx.shape[2] != I or dh.shape[0] != B
            or dout.shape[0] != T or dout.shape[1] != B or col < 0 or col + H > dout.shape[2]
            or w_ih.shape[0] != 3 * H or w_ih.shape[1] != I or w_hh.shape[0] != 3 * H
            or w_hh.shape[1] != H or cnp.PyArray_SIZE(dw_ih) != 3 * H * I
            or cnp.PyArray_SIZE(dw_hh) != 3 * H * H):
        raise ValueError("gru_backward: inconsistent shapes")
    check_array(dx, typenum, 0, True, "dx")
    check_array(dh, typenum, 0, True, "dh")
    check_array(dw_ih, typenum, 0, True, "dw_ih")
    check_array(dw_hh, typenum, 0, True, "dw_hh")
    if b1 is not None:
        db_ih, db_hh = b1, b2
        check_array(db_ih, typenum, 3 * H, True, "db_ih")
        check_array(db_hh, typenum, 3 * H, True, "db_hh")
    cdef Py_ssize_t n_work = _backward_work(T, B, I, H, full, columns)
    cdef bint own = work is None
    if not own:
        check_array(work, typenum, n_work, True, "work")
    check_array(dout, typenum, 0, False, "dout")
    sizes = tape_sizes(T, B, H)
    check_array(gates, typenum, sizes[0], False, "gates")
    check_array(aux, typenum, sizes[1], False, "aux")
    check_array(hprev, typenum, sizes[2], False, "hprev")
    check_array(x, typenum, 0, False, "x")
    check_array(w_ih, typenum, 0, False, "w_ih")
    check_array(w_hh, typenum, 0, False, "w_hh")
    check_lengths(lengths, B)
    cdef char *p[9]
    p[0] = <char *>cnp.PyArray_DATA(dx)
    p[1] = <char *>cnp.PyArray_DATA(dh)
    p[2] = <char *>cnp.PyArray_DATA(dw_ih)
    p[3] = <char *>cnp.PyArray_DATA(dw_hh)
    p[4] = <char *>cnp.PyArray_DATA(db_ih) if db_ih is not None else NULL
    p[5] = <char *>cnp.PyArray_DATA(db_hh) if db_hh is not None else NULL
    p[6] = NULL if own else <char *>cnp.PyArray_DATA(<cnp.ndarray>work)
    p[7] = <char *>cnp.PyArray_DATA(dout) + col * cnp.PyArray_ITEMSIZE(dout)
    p[8] = <char *>cnp.PyArray_DATA(gates)
    cdef const char *a_p = <const char *>cnp.PyArray_DATA(aux)
    cdef const char *hp_p = <const char *>cnp.PyArray_DATA(hprev)
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
                          dout_ld, <const float *>p[8], <const float *>a_p,
                          <const float *>hp_p, <const float *>x_p, <const float *>wi_p,
                          <const float *>wh_p, len_p, full, T, B, I, H, reverse, reset_after,
                          columns)
            else:
                _backward(<double *>p[0], <double *>p[1], <double *>p[2], <double *>p[3],
                          <double *>p[4], <double *>p[5], <double *>p[6], <const double *>p[7],
                          dout_ld, <const double *>p[8], <const double *>a_p,
                          <const double *>hp_p, <const double *>x_p, <const double *>wi_p,
                          <const double *>wh_p, len_p, full, T, B, I, H, reverse, reset_after,
                          columns)
            if own:
                rc_work_free(p[6])
    if p[6] == NULL:
        raise MemoryError()


# ---- the GEMM-only floor ------------------------------------------------------

cdef double _seconds() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + 1e-9 * ts.tv_nsec


cdef void _floor_run(int T, int B, int I, int H, int chunk, bint reset_after, bint train,
                     bint columns, const floating *x, const floating *w_ih,
                     const floating *w_hh, const floating *w_t, const floating *w_p,
                     const floating *w_pb, floating *gi, floating *gh,
                     floating *h, floating *rh, floating *dgi, floating *dgh,
                     floating *hs, floating *dx, floating *dw_ih, floating *dw_hh,
                     floating *dh) noexcept nogil:
    cdef int H3 = 3 * H
    cdef int rows = T * B
    cdef Py_ssize_t HB = <Py_ssize_t>H * B
    cdef int Tb = block_steps(B)
    cdef int W = Tb * B
    cdef int s, t0 = 0, count = 0
    cdef floating *dgh_s
    for s in range(T):
        if s >= t0 + count:
            t0 = s
            count = min(chunk, T - s)
            project(columns, count, B, I, H3, x + <Py_ssize_t>t0 * B * I, w_ih, NULL, gi)
        if columns:
            if reset_after:
                gemm(NoTrans, NoTrans, H3, B, H, <floating>1.0, w_hh, H, h, B,
                     <floating>0.0, gh, B)
            else:
                gemm(NoTrans, NoTrans, 2 * H, B, H, <floating>1.0, w_hh, H, h, B,
                     <floating>0.0, gh, B)
                gemm(NoTrans, NoTrans, H, B, H, <floating>1.0, w_hh + 2 * <Py_ssize_t>H * H, H,
                     rh, B, <floating>0.0, gh + 2 * HB, B)
        elif reset_after:
            rows_recurrent(B, 0, H3, H, H3, h, w_hh, w_p, gh)
        else:
            rows_recurrent(B, 0, 2 * H, H, H3, h, w_hh, w_p, gh)
            rows_recurrent(B, 2 * H, H, H, H3, rh, w_hh, w_p, gh)
    if not train:
        return
    for s in range(T - 1, -1, -1):
        if columns:
            dgh_s = dgh + slot(s, Tb, B, H3)
            if reset_after:
                gemm(NoTrans, NoTrans, H, B, H3, <floating>1.0, w_t, H3, dgh_s, W,
                     <floating>1.0, dh, B)
            else:
                gemm(NoTrans, NoTrans, H, B, H, <floating>1.0, w_t + 2 * H, H3,
                     dgh_s + <Py_ssize_t>2 * H * W, W, <floating>0.0, rh, B)
                gemm(NoTrans, NoTrans, H, B, 2 * H, <floating>1.0, w_t, H3, dgh_s, W,
                     <floating>1.0, dh, B)
        elif reset_after:
            rows_recurrent_back(B, B, 0, H3, H, H3, dgh + s * B * H3, w_hh, w_pb,
                                <floating>1.0, dh)
        else:
            rows_recurrent_back(B, B, 2 * H, H, H, H3, dgh + s * B * H3, w_hh, w_pb,
                                <floating>0.0, rh)
            rows_recurrent_back(B, B, 0, 2 * H, H, H3, dgh + s * B * H3, w_hh, w_pb,
                                <floating>1.0, dh)
    if columns:
        s = 0
        while s < T:
            _recurrent_grads(dw_hh, <floating *>NULL, dgh, hs, hs, (min(s + Tb, T) - s) * B,
                             W, H, reset_after)
            block_input_grads(dx + <Py_ssize_t>s * B * I, dw_ih, <floating *>NULL, dgi,
                              x + <Py_ssize_t>s * B * I, w_ih, (min(s + Tb, T) - s) * B, W, I,
                              H3)
            s += Tb
    else:
        gemm(Trans, NoTrans, H3, I, rows, <floating>1.0, dgi, H3, x, I, <floating>1.0,
             dw_ih, I)
        gemm(NoTrans, NoTrans, rows, I, H3, <floating>1.0, dgi, H3, w_ih, I, <floating>1.0,
             dx, I)
        if reset_after:
            gemm(Trans, NoTrans, H3, H, rows, <floating>1.0, dgh, H3, hs, H, <floating>1.0,
                 dw_hh, H)
        else:
            gemm(Trans, NoTrans, 2 * H, H, rows, <floating>1.0, dgh, H3, hs, H, <floating>1.0,
                 dw_hh, H)
            gemm(Trans, NoTrans, H, H, rows, <floating>1.0, dgh + 2 * H, H3, hs, H,
                 <floating>1.0, dw_hh + 2 * <Py_ssize_t>H * H, H)


def gemm_floor(const floating[:, :, ::1] x, const floating[:, ::1] w_ih,
               const floating[:, ::1] w_hh, int chunk, bint reset_after, bint train,
               int repeats):
    """Seconds taken by each of `repeats` runs of only the matrix products
    that one layer and direction makes (forward, plus backward when train),
    with full lengths, in the layout the kernels choose: the GEMM-only floor
    of the benchmark. Gate math, transposes, copies and the packing of the
    weights are left out. chunk: steps per input-projection GEMM, as plan()
    gives it."""
    cdef int T = x.shape[0], B = x.shape[1], I = x.shape[2], H = w_hh.shape[1]
    cdef bint columns = _columns(B, H, True, train)
    cdef int r
    cdef double t0
    dt = np.float32 if floating is float else np.float64
    times = np.zeros(repeats)
    cdef double[::1] times_v = times
    if T == 0 or B == 0:
        return times
    chunk = max(1, min(chunk, T))
    cdef floating[::1] gi = np.zeros(<Py_ssize_t>chunk * B * 3 * H, dt)
    cdef floating[::1] gh = np.zeros(3 * H * B, dt)
    cdef floating[::1] h = np.zeros(H * B, dt)
    cdef floating[::1] rh = np.zeros(H * B, dt)
    cdef floating[::1] dh = np.zeros(H * B, dt)
    cdef floating[:, ::1] w_t = np.ascontiguousarray(np.asarray(w_hh).T)
    cdef floating[::1] w_p = np.zeros(packed_elems(H, 3 * H), dt)
    cdef floating[::1] w_pb = np.zeros(packed_elems(3 * H, H), dt)
    pack(True, H, 3 * H, &w_hh[0, 0], H, &w_p[0])
    pack(False, 3 * H, H, &w_hh[0, 0], H, &w_pb[0])
    sizes = tape_sizes(T, B, H)
    cdef floating[::1] dgi = np.zeros(sizes[0] if train else 1, dt)
    cdef floating[::1] dgh = np.zeros(sizes[0] if train else 1, dt)
    cdef floating[::1] hs = np.zeros(sizes[2] if train else 1, dt)
    cdef floating[::1] dx = np.zeros(<Py_ssize_t>T * B * I if train else 1, dt)
    cdef floating[:, ::1] dw_ih = np.zeros((3 * H, I), dt)
    cdef floating[:, ::1] dw_hh = np.zeros((3 * H, H), dt)
    with nogil:
        for r in range(repeats):
            t0 = _seconds()
            _floor_run(T, B, I, H, chunk, reset_after, train, columns, &x[0, 0, 0],
                       &w_ih[0, 0], &w_hh[0, 0], &w_t[0, 0],
                       &w_p[0] if use_packed(T, B, H, 3 * H) else NULL,
                       &w_pb[0] if use_packed(T, B, 3 * H, H) else NULL, &gi[0],
                       &gh[0], &h[0], &rh[0],
                       &dgi[0], &dgh[0], &hs[0], &dx[0], &dw_ih[0, 0], &dw_hh[0, 0], &dh[0])
            times_v[r] = _seconds() - t0
    return times
