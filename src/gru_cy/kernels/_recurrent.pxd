# The time-loop plumbing every recurrent cell shares: layout planning, the
# chunked input projection, the per-step recurrent product of the running
# rows, the weight-gradient GEMMs, transposes, bias-gradient sums, workspace
# allocation and the lean multi-layer inference driver. Inline, so that each
# cell's extension compiles its own copy and nothing here costs a call.
#
# A cell's weights hold G gate blocks of H rows each; GH = G * H is the width
# of one step's gate pre-activations. Nothing here knows what the gates are.
#
# Layouts (a cell's .pyx chooses per call with columns_layout):
# rows     the state h is (B, H); per step gh = h @ W_hh^T on W_hh^T packed
#          once per call (gemm_packed; BLAS for one-step calls). Any lengths.
# columns  every per-step array is transposed, the state is h^T (H, B) and
#          the recurrent product gh^T = W_hh @ h^T; full lengths only. Tape
#          arrays are blocked: Tb = block_steps(B) steps per block (slot).

cimport numpy as cnp
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.string cimport memset, memcpy
from libc.math cimport NAN

from gru_cy.kernels._blas cimport (
    PANEL_BYTES, gemm, gemm_packed, gemv, NoTrans, pack, packed_pays, panel_stride, Trans,
)

cdef extern from "_recurrent.h" nogil:
    void *rc_work_alloc(size_t bytes)
    void rc_work_free(void *w)

    ctypedef struct rc_steps_t:
        int B, H, s, T, t0, reverse
        const long long *lengths

    void rc_transpose_f32(int rows, int cols, const float *src, Py_ssize_t src_ld,
                          float *dst, Py_ssize_t dst_ld)
    void rc_transpose_f64(int rows, int cols, const double *src, Py_ssize_t src_ld,
                          double *dst, Py_ssize_t dst_ld)
    void rc_sum_rows_f32(int rows, int n, const float *x, Py_ssize_t ld, float *acc)
    void rc_sum_rows_f64(int rows, int n, const double *x, Py_ssize_t ld, double *acc)
    void rc_sum_cols_f32(int n, int cols, const float *x, Py_ssize_t ld, float *acc)
    void rc_sum_cols_f64(int n, int cols, const double *x, Py_ssize_t ld, double *acc)


# ---- layout helpers ------------------------------------------------------------

cdef inline void transpose(int rows, int cols, const floating *src, Py_ssize_t src_ld,
                           floating *dst, Py_ssize_t dst_ld) noexcept nogil:
    """dst[j, i] = src[i, j] for i < rows, j < cols."""
    if floating is float:
        rc_transpose_f32(rows, cols, src, src_ld, dst, dst_ld)
    else:
        rc_transpose_f64(rows, cols, src, src_ld, dst, dst_ld)

cdef inline void sum_rows(int rows, int n, const floating *x, Py_ssize_t ld,
                          floating *acc) noexcept nogil:
    """acc += x[:rows, :n].sum(0)"""
    if floating is float:
        rc_sum_rows_f32(rows, n, x, ld, acc)
    else:
        rc_sum_rows_f64(rows, n, x, ld, acc)

cdef inline void sum_cols(int n, int cols, const floating *x, Py_ssize_t ld,
                          floating *acc) noexcept nogil:
    """acc += x[:n, :cols].sum(1)"""
    if floating is float:
        rc_sum_cols_f32(n, cols, x, ld, acc)
    else:
        rc_sum_cols_f64(n, cols, x, ld, acc)


# ---- planning ----------------------------------------------------------------------

cdef inline bint columns_layout(int override, int GH, int B, int H, bint full) noexcept nogil:
    """The layout of one call: override 0 chooses by shape, 1 always rows,
    2 columns whenever lengths are full (a cell's set_layout)."""
    # The rule by shape dates from when BLAS ran every per-step product:
    # while GH * H * B was at most 3 * 2^18 OpenBLAS ran h @ W_hh^T in its
    # small-matrix kernel, the fastest; above, W_hh @ h^T was 1.1-1.8x
    # faster. With the packed products each cell decides for itself (its
    # _columns); the GRU still uses the rule for training and batch splits.
    if override == 1:
        return False
    if override == 2:
        return full and B >= 1
    return full and B >= 2 and <double>GH * H * B > 786432.0


cdef inline int block_steps(int B) noexcept nogil:
    # Steps per block of the columns layout: blocks of about 128 columns keep
    # what one step reads or writes of a (rows, T*B) array within a few
    # hundred kilobytes (a flat (rows, T*B) array puts each of its rows T*B
    # floats apart: the gate loops then ran 2-4x slower), while the GEMMs
    # over a block (K = 128) run as fast as one over all T*B columns.
    return max(1, 128 // B) if B > 0 else 1


cdef inline Py_ssize_t slot(int s, int Tb, int B, int rows) noexcept nogil:
    """Offset of step s in a blocked (rows, T*B) array: block s // Tb holds
    rows x (Tb * B) floats, row stride Tb * B, step s at column (s % Tb) * B."""
    return <Py_ssize_t>(s // Tb) * rows * Tb * B + <Py_ssize_t>(s % Tb) * B


cdef inline Py_ssize_t blocked_size(int steps, int B, int rows) noexcept nogil:
    cdef int Tb = block_steps(B)
    return <Py_ssize_t>((steps + Tb - 1) // Tb) * rows * Tb * B


cdef inline int plan_chunk(bint columns, int T, int B, int GH, bint full, bint reverse,
                           Py_ssize_t chunk_elements) noexcept nogil:
    """Steps per input-projection GEMM. Rows: as many steps as fit in
    chunk_elements floats (all T when reverse with uneven lengths, where
    steps of one block need different times); columns: 256 columns (OpenBLAS
    slows down below; measured at B=128, H=512 for the GRU, one step per
    GEMM costs 12% more than two), at least a block."""
    cdef Py_ssize_t chunk
    if columns:
        chunk = max(block_steps(B), 256 // B)
    elif reverse and not full:
        chunk = T
    else:
        chunk = max(1, min(<Py_ssize_t>T, chunk_elements // max(1, <Py_ssize_t>B * GH)))
    return <int>max(1, min(chunk, <Py_ssize_t>T))


cdef inline bint sorted_desc(const long long *lengths, bint full, int B) noexcept nogil:
    """Lengths given and non-increasing: the sequences still running at any
    step are then the first rows, and the rows layout's per-step products
    cover only those (gru_cy sorts batches with uneven lengths so)."""
    cdef int b
    if full:
        return False
    for b in range(1, B):
        if lengths[b] > lengths[b - 1]:
            return False
    return True


cdef inline int max_length(const long long *lengths, bint full, int T, int B) noexcept nogil:
    cdef int b, m = 0
    if full:
        return T
    for b in range(B):
        if lengths[b] > m:
            m = <int>lengths[b]
    return m


cdef inline void init_steps(rc_steps_t *st, int B, int H, int T, bint reverse,
                            const long long *lengths, bint full) noexcept nogil:
    st.B = B
    st.H = H
    st.T = T
    st.s = 0
    st.t0 = 0
    st.reverse = reverse
    st.lengths = NULL
    if not full:
        st.lengths = lengths


# ---- forward products ------------------------------------------------------------

cdef inline bint next_chunk(int s, int T, int chunk, bint reverse, int *t0,
                            int *count) noexcept nogil:
    """Whether step s needs a new block of the input projection; if so, set
    [t0, t0 + count) to the times it must hold. The projection holds the
    times [t0, t0 + count); count = 0 before the first step."""
    cdef int need = s if not reverse else T - 1 - s
    if chunk >= T:
        if count[0] == 0:
            t0[0] = 0
            count[0] = T
            return True
        return False
    if need < t0[0] or need >= t0[0] + count[0]:
        if not reverse:
            t0[0] = s
            count[0] = min(chunk, T - s)
        else:
            t0[0] = max(0, need - chunk + 1)
            count[0] = need - t0[0] + 1
        return True
    return False


cdef inline void project(bint columns, int count, int B, int I, int GH,
                         const floating *x, const floating *w_ih, const floating *w_ih_p,
                         floating *gi) noexcept nogil:
    if columns:
        # gi^T = w_ih @ x[t0:t0 + count].T      (GH, count * B)
        gemm(NoTrans, Trans, GH, count * B, I, <floating>1.0, w_ih, I, x, I,
             <floating>0.0, gi, count * B)
    elif w_ih_p != NULL:
        # gi = x[t0:t0 + count] @ w_ih.T, on w_ih.T packed (pack(True, I, GH, ...))
        gemm_packed(count * B, I, 0, GH, x, I, w_ih_p, panel_stride(I, sizeof(floating)),
                    <floating>0.0, gi, GH)
    else:
        # gi = x[t0:t0 + count] @ w_ih.T        (count * B, GH)
        gemm(NoTrans, Trans, count * B, GH, I, <floating>1.0, x, I, w_ih, I,
             <floating>0.0, gi, GH)


cdef inline bint pack_steps(int T) noexcept nogil:
    """Whether a layer call over T steps may run its per-step products on
    packed weights (gemm_packed), so its workspace has room for them.
    Packing reads and writes the weights once, about the cost of one
    product, so a one-step call keeps BLAS."""
    return T > 1


cdef inline floating *packed_or_null(bint use, bint trans, int K, int N, const floating *w,
                                     Py_ssize_t ld, floating *dst) noexcept nogil:
    """dst holding W (K x N; W[k, j] = w[j * ld + k] when trans) packed,
    when use; else NULL, for products that run on w through BLAS."""
    if not use:
        return NULL
    pack(trans, K, N, w, ld, dst)
    return dst


cdef inline bint use_packed(int T, int B, int K, int N) noexcept nogil:
    """Whether it does, for products of B rows by a K x N matrix: also not
    when the BLAS runs several threads and the products are large enough
    for them to pay (packed_pays)."""
    return T > 1 and packed_pays(B, K, N)


cdef inline void rows_recurrent(int B, int j0, int n, int K, int GH, const floating *h,
                                const floating *w, const floating *wp,
                                floating *gh) noexcept nogil:
    """gh[:B, j0:j0 + n] = h[:B] @ W_hh[j0:j0 + n].T, with W_hh (GH, K) in w,
    h (B, K) and gh of row stride GH. wp: W_hh^T packed (pack(True, K, GH,
    w, K, wp)), or NULL: BLAS on w (one-step calls)."""
    if wp != NULL:
        gemm_packed(B, K, j0, n, h, K, wp, panel_stride(K, sizeof(floating)), <floating>0.0,
                    gh + j0, GH)
    else:
        # gh = h @ w.T
        gemm(NoTrans, Trans, B, n, K, <floating>1.0, h, K, w + <Py_ssize_t>j0 * K, K,
             <floating>0.0, gh + j0, GH)


cdef inline void rows_recurrent_back(int B, int n_act, int k0, int n, int K, int GH,
                                     const floating *dgh, const floating *w,
                                     const floating *wpb, floating beta,
                                     floating *dh) noexcept nogil:
    """dh[:m] = beta * dh[:m] + dgh[:m, k0:k0 + n] @ W_hh[k0:k0 + n] for the
    first m = n_act rows (all B rows when B = 1), W_hh (GH, K) in w, dgh of
    row stride GH, dh (B, K). wpb: W_hh packed (pack(False, GH, K, w, K,
    wpb)), or NULL: BLAS on w."""
    if wpb != NULL:
        gemm_packed(B if B == 1 else n_act, n, 0, K, dgh + k0, GH,
                    wpb + <Py_ssize_t>k0 * (PANEL_BYTES // sizeof(floating)),
                    panel_stride(GH, sizeof(floating)), beta, dh, K)
    elif B == 1:
        # dh = beta * dh + w.T @ dgh
        gemv(Trans, n, K, <floating>1.0, w + <Py_ssize_t>k0 * K, K, dgh + k0, 1, beta, dh, 1)
    else:
        # dh = beta * dh + dgh @ w
        gemm(NoTrans, NoTrans, n_act, K, n, <floating>1.0, dgh + k0, GH,
             w + <Py_ssize_t>k0 * K, K, beta, dh, K)


# ---- backward plumbing ---------------------------------------------------------------

cdef inline void zero_unvisited(floating *dgi, floating *dgh, const long long *lengths,
                                int max_len, int T, int B, int GH) noexcept nogil:
    """Rows layout with uneven lengths: times no step visits keep zero
    input-gate gradients, and steps past the longest sequence zero
    recurrent ones."""
    cdef int b, t
    for b in range(B):
        for t in range(<int>lengths[b], T):
            memset(dgi + (<Py_ssize_t>t * B + b) * GH, 0, GH * sizeof(floating))
    memset(dgh + <Py_ssize_t>max_len * B * GH, 0,
           <Py_ssize_t>(T - max_len) * B * GH * sizeof(floating))


cdef inline const floating *masked_input(floating *x_masked, const floating *x,
                                         const long long *lengths, int T, int B,
                                         int I) noexcept nogil:
    """x with the rows of padded times zeroed, in x_masked (T * B * I): NaN
    or Inf there must not meet the zero gradient rows in dw_ih
    (0 * NaN = NaN)."""
    cdef int b, t
    for t in range(T):
        for b in range(B):
            if t < lengths[b]:
                memcpy(x_masked + (<Py_ssize_t>t * B + b) * I,
                       x + (<Py_ssize_t>t * B + b) * I, I * sizeof(floating))
            else:
                memset(x_masked + (<Py_ssize_t>t * B + b) * I, 0, I * sizeof(floating))
    return x_masked


cdef inline void rows_input_grads(floating *dw_ih, floating *dx, const floating *dgi,
                                  const floating *x, const floating *w_ih, int rows, int I,
                                  int GH) noexcept nogil:
    """Rows layout: dw_ih and dx from dgi (rows, GH), one GEMM each over all
    T * B rows."""
    # dw_ih += dgi.T @ x
    gemm(Trans, NoTrans, GH, I, rows, <floating>1.0, dgi, GH, x, I,
         <floating>1.0, dw_ih, I)
    # dx += dgi @ w_ih
    gemm(NoTrans, NoTrans, rows, I, GH, <floating>1.0, dgi, GH, w_ih, I,
         <floating>1.0, dx, I)


cdef inline void rows_recurrent_grads(floating *dw_hh, const floating *dgh,
                                      const floating *hprev, int rows, int n, int H,
                                      int GH) noexcept nogil:
    """Rows layout: dw_hh[:n] += dgh[:, :n].T @ hprev, with dw_hh the n
    rows of the gates wanted, dgh with row stride GH, hprev (rows, H)."""
    gemm(Trans, NoTrans, n, H, rows, <floating>1.0, dgh, GH, hprev, H,
         <floating>1.0, dw_hh, H)


cdef inline void block_input_grads(floating *dx_p, floating *dw_ih, floating *db_ih,
                                   const floating *dgi_p, const floating *x_p,
                                   const floating *w_ih, int cols, int ld, int I,
                                   int GH) noexcept nogil:
    """Columns layout: dw_ih, db_ih and the block's rows of dx from one block
    of dgi^T (GH, cols) with row stride ld."""
    # dw_ih += dgi_p @ x_p
    gemm(NoTrans, NoTrans, GH, I, cols, <floating>1.0, dgi_p, ld, x_p, I,
         <floating>1.0, dw_ih, I)
    # dx_p += dgi_p.T @ w_ih
    gemm(Trans, NoTrans, cols, I, GH, <floating>1.0, dgi_p, ld, w_ih, I,
         <floating>1.0, dx_p, I)
    if db_ih != NULL:
        # db_ih += dgi_p.sum(1)
        sum_cols(GH, cols, dgi_p, ld, db_ih)


cdef inline void block_recurrent_grads(floating *dw_hh, const floating *dgh_p,
                                       const floating *hs_p, int n, int cols, int ld,
                                       int H) noexcept nogil:
    """Columns layout: dw_hh[:n] += dgh_p[:n] @ hprev_p from one block of
    dgh^T (n rows, cols) and of the states h^T (H, cols), row stride ld."""
    gemm(NoTrans, Trans, n, H, cols, <floating>1.0, dgh_p, ld, hs_p, ld,
         <floating>1.0, dw_hh, H)


# ---- entry-point checks -------------------------------------------------------------
#
# The entry points take ndarrays, not typed memoryviews: acquiring a
# memoryview costs about 0.15 us per array, several microseconds per call,
# which is the whole budget of a one-step call. They check what a mistake
# would turn into a memory error (dtype, C order, writability, sizes) and
# trust the rest, as the kernels do.

cdef inline int check_array(cnp.ndarray a, int typenum, Py_ssize_t size, bint write,
                            str name) except -1:
    if (cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or cnp.PyArray_SIZE(a) < size or (write and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(
            f"{name}: expected a C-contiguous{' writable' if write else ''} array of "
            f"{'float32' if typenum == cnp.NPY_FLOAT32 else 'float64'} with at "
            f"least {size} elements")
    return 0


cdef inline int float_type(cnp.ndarray x) except -1:
    cdef int t = cnp.PyArray_TYPE(x)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"x: expected float32 or float64, got {x.dtype}")
    return t


cdef inline int check_lengths(cnp.ndarray lengths, int B) except -1:
    if cnp.PyArray_TYPE(lengths) != cnp.NPY_INT64 or cnp.PyArray_SIZE(lengths) < B:
        raise ValueError("lengths: expected int64 with one entry per batch row")
    return 0


cdef inline void fill_nan(char *w, Py_ssize_t n, int typenum) noexcept nogil:
    """Set n elements of the type at w to NaN (poisoned workspaces)."""
    cdef Py_ssize_t i
    if typenum == cnp.NPY_FLOAT32:
        for i in range(n):
            (<float *>w)[i] = <float>NAN
    else:
        for i in range(n):
            (<double *>w)[i] = NAN


cdef inline char *alloc_work(Py_ssize_t n, int typenum, bint poison) noexcept nogil:
    """n elements of the type (NaN-filled when poison) from rc_work_alloc
    (release with rc_work_free), or NULL."""
    cdef char *w = <char *>rc_work_alloc(max(n, 1) * (4 if typenum == cnp.NPY_FLOAT32 else 8))
    if w != NULL and poison:
        fill_nan(w, n, typenum)
    return w


# ---- the lean path ------------------------------------------------------------------
#
# Whole-module inference with full lengths, unidirectional, in one call from
# Python, for arguments already of the kernels' types: the driver below
# checks them, allocates the results and one workspace, and runs the cell's
# layer function over every layer with the GIL released. A cell describes
# itself with a LeanCell: plan() fills columns and chunk for (T, B) and
# returns the elements of one layer's inference workspace (for inputs at most
# I wide); run() is the cell's layer forward (its general path's kernel, so
# results agree bit for bit) on out (T, B, H) with row stride H.

ctypedef Py_ssize_t (*lean_plan_t)(void *cell, int T, int B, int I,
                                   bint has_bias) noexcept nogil
ctypedef void (*lean_layer_t)(void *cell, char *out, char *h, char *work, const char *x,
                              const char **w, int T, int B, int I) noexcept nogil

cdef struct LeanCell:
    int H               # hidden units
    int GH              # rows of W_ih and W_hh
    int typenum
    int flags           # the cell's own options
    bint reverse
    bint poison         # NaN-fill the workspace
    Py_ssize_t chunk_elements
    bint columns        # set by plan
    int chunk           # set by plan
    lean_plan_t plan
    lean_layer_t run


cdef enum:
    INT32_MAX_ = 2147483647


cdef inline bint is_param(object o, int typenum, int rows, int cols) noexcept:
    """o is a C-contiguous ndarray of the type, (rows, cols), or (rows,) when
    cols is 0."""
    cdef cnp.ndarray a
    if type(o) is not cnp.ndarray:
        return False
    a = <cnp.ndarray>o
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        return False
    if cols == 0:
        return a.ndim == 1 and a.shape[0] == rows
    return a.ndim == 2 and a.shape[0] == rows and a.shape[1] == cols


cdef inline bint lean_x(object x, int typenum, int input_size) noexcept:
    cdef cnp.ndarray xa
    if type(x) is not cnp.ndarray:
        return False
    xa = <cnp.ndarray>x
    return (cnp.PyArray_TYPE(xa) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(xa)
            and xa.ndim >= 1 and xa.shape[xa.ndim - 1] == input_size)


cdef inline object lean_layers(LeanCell *cell, cnp.ndarray xa, object h, dict params,
                               tuple names, int T, int B, int input_size, int h_ndim,
                               int y_ndim, cnp.npy_intp *y_dims):
    """Every layer over x (T, B, I), full lengths: (y, h_new) with y the top
    layer's output, of shape y_dims (T * B * H elements), or None when h or a
    parameter is not already what the kernels take."""
    cdef int L = len(names), k, H = cell.H, GH = cell.GH, typenum = cell.typenum
    cdef cnp.ndarray ha, h_new, y
    cdef bint has_bias
    cdef Py_ssize_t HB = <Py_ssize_t>H * B, per_layer, item, seq, n_work
    cdef cnp.npy_intp dims[3]
    cdef tuple row
    cdef list layers = None
    cdef const char *ptrs[64]
    cdef const char **lp = ptrs
    cdef char *work = NULL
    cdef char *bufs[2]
    cdef char *h_p
    cdef char *y_p
    cdef char *dst
    cdef const char *x_p
    if L == 0:
        return None
    if h is not None:
        if type(h) is not cnp.ndarray:
            return None
        ha = <cnp.ndarray>h
        if (cnp.PyArray_TYPE(ha) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(ha)
                or ha.ndim != h_ndim or ha.shape[0] != L or ha.shape[h_ndim - 1] != H
                or (h_ndim == 3 and ha.shape[1] != B)):
            return None
    # The parameters, checked, as data pointers (4 per layer).
    has_bias = len(<tuple>names[0]) == 4
    # The arrays must stay alive while the GIL is released (another thread
    # may replace entries of params): with one layer the locals w_ih ...
    # b_hh hold them, with more the list does.
    if L > 1:
        layers = []
    if L > 16:
        lp = <const char **>malloc(4 * L * sizeof(char *))
        if lp == NULL:
            raise MemoryError()
    try:
        for k in range(L):
            row = <tuple>names[k]
            w_ih = params.get(row[0])
            w_hh = params.get(row[1])
            if (not is_param(w_ih, typenum, GH, input_size if k == 0 else H)
                    or not is_param(w_hh, typenum, GH, H)):
                return None
            lp[4 * k] = <const char *>cnp.PyArray_DATA(<cnp.ndarray>w_ih)
            lp[4 * k + 1] = <const char *>cnp.PyArray_DATA(<cnp.ndarray>w_hh)
            lp[4 * k + 2] = lp[4 * k + 3] = NULL
            if L > 1:
                layers.append(w_ih)
                layers.append(w_hh)
            if has_bias:
                b_ih = params.get(row[2])
                b_hh = params.get(row[3])
                if not is_param(b_ih, typenum, GH, 0) or not is_param(b_hh, typenum, GH, 0):
                    return None
                lp[4 * k + 2] = <const char *>cnp.PyArray_DATA(<cnp.ndarray>b_ih)
                lp[4 * k + 3] = <const char *>cnp.PyArray_DATA(<cnp.ndarray>b_hh)
                if L > 1:
                    layers.append(b_ih)
                    layers.append(b_hh)
        per_layer = cell.plan(cell, T, B, max(input_size, H), has_bias)
        seq = <Py_ssize_t>T * HB
        dims[0] = L
        dims[1] = B
        dims[2] = H
        if h_ndim == 2:
            dims[1] = H
        item = cnp.PyArray_ITEMSIZE(xa)
        if h is None:
            h_new = cnp.PyArray_ZEROS(h_ndim, dims, typenum, 0)
        else:
            # (PyArray_NewCopy goes through NumPy's general assignment machinery.)
            h_new = cnp.PyArray_EMPTY(h_ndim, dims, typenum, 0)
            memcpy(cnp.PyArray_DATA(h_new), cnp.PyArray_DATA(ha), L * HB * item)
        y = cnp.PyArray_EMPTY(y_ndim, y_dims, typenum, 0)
        h_p = <char *>cnp.PyArray_DATA(h_new)
        y_p = <char *>cnp.PyArray_DATA(y)
        x_p = <const char *>cnp.PyArray_DATA(xa)
        # Workspace of one layer, then the outputs of the layers below the
        # top (two alternating buffers; with T = 1 a layer's output is its
        # new state, so one scratch buffer does).
        n_work = per_layer + (0 if L == 1 else (seq if (T == 1 or L == 2) else 2 * seq))
        with nogil:
            work = alloc_work(n_work, typenum, cell.poison)
            if work != NULL:
                bufs[0] = work + per_layer * item
                bufs[1] = bufs[0] if (T == 1 or L == 2) else bufs[0] + seq * item
                for k in range(L):
                    dst = y_p if k == L - 1 else bufs[k % 2]
                    cell.run(cell, dst, h_p + k * HB * item, work, x_p, lp + 4 * k, T, B,
                             input_size if k == 0 else H)
                    # Layer k + 1 reads layer k's output (with T = 1, its new
                    # state: the same values, in a buffer no later layer writes).
                    x_p = (h_p + k * HB * item) if T == 1 else dst
                rc_work_free(work)
        if work == NULL:
            raise MemoryError()
    finally:
        if lp != ptrs:
            free(lp)
    return y, h_new


cdef inline object lean_infer(LeanCell *cell, object x, object h, object params,
                              tuple names, int input_size, bint batch_first):
    """The lean path of a module's __call__: (out, h_n), or None when an
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
    """
    cdef cnp.ndarray xa
    cdef int T, B
    cdef cnp.npy_intp dims[3]
    if type(params) is not dict or not lean_x(x, cell.typenum, input_size):
        return None
    xa = <cnp.ndarray>x
    if xa.ndim == 2:
        if xa.shape[0] == 0 or xa.shape[0] > INT32_MAX_:
            return None
        T, B = <int>xa.shape[0], 1
        dims[0] = T
        dims[1] = cell.H
        return lean_layers(cell, xa, h, params, names, T, B, input_size, 2, 2, dims)
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
    dims[2] = cell.H
    return lean_layers(cell, xa, h, params, names, T, B, input_size, 3, 3, dims)


cdef inline object lean_step(LeanCell *cell, object x, object h, object params, tuple names,
                             int input_size):
    """One step of every layer, the lean path of a module's step: (y, h_new),
    or None when an argument is not already what the kernels take.

    x      (B, I) or (I,)
    h      None (zeros), or (L, B, H), (L, H) for unbatched x
    Runs the layer kernel with T = 1, so the result is the whole-sequence
    one bit for bit (same BLAS calls).
    """
    cdef cnp.ndarray xa
    cdef cnp.npy_intp dims[2]
    if type(params) is not dict or not lean_x(x, cell.typenum, input_size):
        return None
    xa = <cnp.ndarray>x
    if xa.ndim == 1:
        dims[0] = cell.H
        return lean_layers(cell, xa, h, params, names, 1, 1, input_size, 2, 1, dims)
    if xa.ndim != 2 or xa.shape[0] == 0 or xa.shape[0] > INT32_MAX_:
        return None
    dims[0] = xa.shape[0]
    dims[1] = cell.H
    return lean_layers(cell, xa, h, params, names, 1, <int>xa.shape[0], input_size, 3, 2, dims)
