"""gru_cy's compiled kernels: the recurrent layers, the products, the thread
pool (C, in rc_*.c), behind a few entry points.

Python (gru_cy.nn) validates arguments and allocates results; these entry
points check only what a mistake would turn into a memory error (dtypes,
shapes, contiguity, writability) and run the C core with the GIL released.

Cells: GRU (flags: 1 reset_after, 0 reset_before), LSTM (P = proj_size),
RNN (flags: ACT_TANH or ACT_RELU), JORDAN (flags: act | out_act << 4,
P = output size). A weight (N, K) may be C-contiguous (W row-major) or
F-contiguous (W^T row-major: the products read it in place, nothing is
packed): results are the same bits either way.
"""

cimport cython
cimport numpy as cnp
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
from cpython.ref cimport Py_INCREF
from scipy.linalg.cython_blas cimport sgemm, dgemm

import time

cnp.import_array()

cdef extern from "rc_base.h":
    enum:
        RC_ISA_PORTABLE
        RC_ISA_AVX2
        RC_ISA_AVX512
        RC_F32
        RC_F64

cdef extern from "rc_gemm.h" nogil:
    ctypedef struct rc_bmat:
        pass
    ctypedef void (*rc_sgemm_t)(char *ta, char *tb, int *m, int *n, int *k, float *alpha,
                                float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                                int *ldc) noexcept nogil
    ctypedef void (*rc_dgemm_t)(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                                double *a, int *lda, double *b, int *ldb, double *beta,
                                double *c, int *ldc) noexcept nogil
    Py_ssize_t rc_packed_elems(int K, int N)
    Py_ssize_t rc_tail_elems(int K)
    void rc_bmat_init(int dtype, rc_bmat *b, int trans, int K, int N, const void *src,
                      Py_ssize_t ld, void *packed, void *tail)
    void rc_bmat_transposed(int dtype, rc_bmat *b, int K, int N, const void *src, Py_ssize_t ld)
    int rc_gemm_transposed_fast(int dtype)
    void rc_gemm(int dtype, int M, int K, int j0, int n, const void *a, Py_ssize_t sam,
                 Py_ssize_t sak, const rc_bmat *b, int k0, int init, void *c, Py_ssize_t ldc)
    int rc_isa()
    int rc_cpu_isa()
    int rc_set_isa(int isa)
    int rc_backend()
    void rc_set_backend(int blas)
    void rc_set_blas(rc_sgemm_t s, rc_dgemm_t d)
    long long rc_fma_chains(long long rounds, double *sink)

cdef extern from "rc_work.h" nogil:
    enum:
        RC_BLOCK_TAPE
    void *rc_block_alloc(int kind, size_t bytes)
    void rc_block_free(int kind, void *w)

cdef extern from "rc_pool.h" nogil:
    int gru_cy_get_num_threads()
    void gru_cy_set_num_threads(int n)
    void rc_set_spin_us(int us)
    int rc_spin_us()
    int rc_pool_workers()

cdef extern from "rc_cells.h" nogil:
    enum:
        RC_GRU
        RC_LSTM
        RC_RNN
        RC_JORDAN
        RC_TANH
        RC_RELU
        RC_SIGMOID
        RC_IDENTITY
    ctypedef struct rc_weight:
        const void *p
        int fortran
        const void *packed
        const void *q
    ctypedef struct rc_layer:
        int cell, dtype, flags
        int T, B, In, H, P
        int reverse
        const long long *lengths
        rc_weight w_ih, w_hh, w2
        const void *b_ih
        const void *b_hh
        const void *b2
        const void *x
        void *out
        Py_ssize_t out_ld
        void *h
        void *c
        void *tape
        const void *dout
        Py_ssize_t dout_ld
        void *dx
        void *dh
        void *dc
        rc_weight g_ih, g_hh, g2
        void *gb_ih
        void *gb_hh
        void *gb2
    Py_ssize_t rc_tape_elems(const rc_layer *L)
    Py_ssize_t rc_packed_weight_elems(int N, int K)
    void rc_pack_weight(int dtype, const void *w, int N, int K, void *dst)
    int rc_forward(rc_layer *layers, int n_layers, int n_dirs, int nthreads)
    int rc_backward(rc_layer *layers, int n_dirs, int nthreads)
    void rc_set_poison(int on)
    void rc_split(const rc_layer *L, int threads, int *row_groups, int *unit_groups)
    void rc_force_split(int row_groups, int unit_groups, double min_work)

# Packed (frozen) weights: fp32, bf16, int8.
include "_frozen.pxi"

GRU = RC_GRU
LSTM = RC_LSTM
RNN = RC_RNN
JORDAN = RC_JORDAN
ACT_TANH = RC_TANH
ACT_RELU = RC_RELU
ACT_SIGMOID = RC_SIGMOID
ACT_IDENTITY = RC_IDENTITY

rc_set_blas(<rc_sgemm_t>sgemm, <rc_dgemm_t>dgemm)

_ISAS = ("portable", "avx2", "avx512")

def set_threads(int n):
    """The threads a call may use (gru_cy._threads sets it; 1 until then)."""
    gru_cy_set_num_threads(n)


def get_threads():
    return gru_cy_get_num_threads()


def set_poison(bint on):
    """Fill every workspace with NaN when it is allocated (debug runs)."""
    rc_set_poison(on)


def isa():
    """The instruction set the kernels run with: "avx512", "avx2" or
    "portable"."""
    return _ISAS[rc_isa()]


def cpu_isa():
    """The best instruction set this CPU offers the kernels."""
    return _ISAS[rc_cpu_isa()]


def set_isa(str name):
    """Run the kernels with instruction set name ("avx512", "avx2",
    "portable"; at most the CPU's best); returns the one now used. For tests
    and benchmarks, not while other threads run kernels."""
    if name not in _ISAS:
        raise ValueError(f"isa must be one of {', '.join(_ISAS)}, got {name!r}")
    return _ISAS[rc_set_isa(_ISAS.index(name))]


def backend():
    """Where the products run: "gru_cy" (its kernels) or "blas" (SciPy's)."""
    return "blas" if rc_backend() else "gru_cy"


def set_backend(str name):
    if name not in ("gru_cy", "blas"):
        raise ValueError(f"backend must be 'gru_cy' or 'blas', got {name!r}")
    rc_set_backend(name == "blas")


def set_spin_us(int us):
    """How long a waiting thread spins before it sleeps (microseconds)."""
    rc_set_spin_us(us)


def spin_us():
    return rc_spin_us()


def pool_workers():
    """Worker threads the pool has started (0 until a threaded call)."""
    return rc_pool_workers()


def fma_peak(double seconds=0.05, int repeats=5):
    """The float32 multiply-add rate of one core in GFLOP/s (2 flops per
    multiply-add) with the kernels' instruction set: the fastest of repeats
    runs of about seconds each of independent vector multiply-add chains.
    The benchmarks' yardstick: no product runs faster on one core."""
    cdef long long rounds = 1 << 16, n = 0
    cdef double sink = 0.0, best = 0.0, t0, dt
    while True:
        t0 = time.perf_counter()
        with nogil:
            n = rc_fma_chains(rounds, &sink)
        dt = time.perf_counter() - t0
        if dt >= seconds or rounds >= (<long long>1 << 40):
            break
        rounds *= 2
    best = 2.0 * n / dt
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        with nogil:
            n = rc_fma_chains(rounds, &sink)
        dt = time.perf_counter() - t0
        best = max(best, 2.0 * n / dt)
    return best / 1e9


# ---- array checks ------------------------------------------------------------------

cdef inline int _dtype_of(cnp.ndarray a) except -1:
    cdef int t = cnp.PyArray_TYPE(a)
    if t == cnp.NPY_FLOAT32:
        return RC_F32
    if t == cnp.NPY_FLOAT64:
        return RC_F64
    raise TypeError(f"expected float32 or float64, got {a.dtype}")


cdef inline cnp.ndarray _arr(object o, str name, int dtype, Py_ssize_t size, bint write):
    """o as an ndarray of the dtype, C-contiguous, with at least size
    elements (writable when write), or an error."""
    if not isinstance(o, cnp.ndarray):
        raise TypeError(f"{name}: expected an ndarray, got {type(o).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>o
    if (_dtype_of(a) != dtype or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or cnp.PyArray_SIZE(a) < size or (write and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(
            f"{name}: expected a C-contiguous{' writable' if write else ''} "
            f"{'float32' if dtype == RC_F32 else 'float64'} array of at least {size} elements")
    return a


cdef inline const void *_opt(object o, str name, int dtype, Py_ssize_t size) except? NULL:
    if o is None:
        return NULL
    return cnp.PyArray_DATA(_arr(o, name, dtype, size, False))


cdef inline int _weight(rc_weight *w, object o, str name, int dtype, int rows, int cols,
                        bint write) except -1:
    """A weight (rows, cols), C- or F-contiguous, or a PackedWeight of that
    shape (forward only)."""
    w.p = NULL
    w.fortran = 0
    w.packed = NULL
    w.q = NULL
    if o is None:
        return 0
    if type(o) is PackedWeight:
        return (<PackedWeight>o)._into(w, name, dtype, rows, cols, write)
    if not isinstance(o, cnp.ndarray):
        raise TypeError(f"{name}: expected an ndarray, got {type(o).__name__}")
    cdef cnp.ndarray a = <cnp.ndarray>o
    if (_dtype_of(a) != dtype or a.ndim != 2 or a.shape[0] != rows or a.shape[1] != cols
            or (write and not cnp.PyArray_ISWRITEABLE(a))):
        raise ValueError(f"{name}: expected a {'writable ' if write else ''}"
                         f"{'float32' if dtype == RC_F32 else 'float64'} array of shape "
                         f"({rows}, {cols})")
    if cnp.PyArray_IS_C_CONTIGUOUS(a):
        w.fortran = 0
    elif cnp.PyArray_IS_F_CONTIGUOUS(a):
        w.fortran = 1
    else:
        raise ValueError(f"{name}: expected a C- or F-contiguous array")
    w.p = cnp.PyArray_DATA(a)
    return 0


cdef inline void _dims(int cell, int H, int P, int *G, int *R) noexcept:
    G[0] = 3 if cell == RC_GRU else (4 if cell == RC_LSTM else 1)
    R[0] = P if (P > 0 and (cell == RC_LSTM or cell == RC_JORDAN)) else H


cdef int _describe(rc_layer *L, int cell, int flags, int P, int dtype, int T, int B, int I,
                   int H, tuple weights, str where, bint grads) except -1:
    """The weights of one direction into L: (w_ih, w_hh, b_ih, b_hh, w2, b2)."""
    cdef int G, R
    _dims(cell, H, P, &G, &R)
    L.cell = cell
    L.dtype = dtype
    L.flags = flags
    L.T = T
    L.B = B
    L.In = I
    L.H = H
    L.P = P if (cell == RC_LSTM or cell == RC_JORDAN) else 0
    if len(weights) != 6:
        raise ValueError(f"{where}: expected 6 weights")
    w_ih, w_hh, b_ih, b_hh, w2, b2 = weights
    cdef rc_weight *wi = &L.g_ih if grads else &L.w_ih
    cdef rc_weight *wh = &L.g_hh if grads else &L.w_hh
    cdef rc_weight *wr = &L.g2 if grads else &L.w2
    _weight(wi, w_ih, f"{where} w_ih", dtype, G * H, I, grads)
    _weight(wh, w_hh, f"{where} w_hh", dtype, G * H, R, grads)
    if wi.p == NULL or wh.p == NULL:
        raise ValueError(f"{where}: w_ih and w_hh are required")
    if cell == RC_LSTM and P > 0:
        _weight(wr, w2, f"{where} w_hr", dtype, P, H, grads)
    elif cell == RC_JORDAN:
        _weight(wr, w2, f"{where} w_hy", dtype, P, H, grads)
    if grads:
        L.gb_ih = <void *>_opt_w(b_ih, f"{where} b_ih", dtype, G * H)
        L.gb_hh = <void *>_opt_w(b_hh, f"{where} b_hh", dtype, G * H)
        L.gb2 = <void *>_opt_w(b2, f"{where} b2", dtype, P)
    else:
        L.b_ih = _opt(b_ih, f"{where} b_ih", dtype, G * H)
        L.b_hh = _opt(b_hh, f"{where} b_hh", dtype, G * H)
        L.b2 = _opt(b2, f"{where} b2", dtype, P) if cell == RC_JORDAN else NULL
        if cell != RC_JORDAN and (L.b_ih == NULL) != (L.b_hh == NULL):
            raise ValueError(f"{where}: b_ih and b_hh go together")
    return 0


cdef inline void *_opt_w(object o, str name, int dtype, Py_ssize_t size) except? NULL:
    if o is None:
        return NULL
    return cnp.PyArray_DATA(_arr(o, name, dtype, size, True))


def tape_size(int cell, int flags, int P, int T, int B, int I, int H):
    """Elements of one layer-direction's training tape."""
    cdef rc_layer L
    memset(&L, 0, sizeof(L))
    L.cell = cell
    L.flags = flags
    L.T = T
    L.B = B
    L.In = I
    L.H = H
    L.P = P
    return rc_tape_elems(&L)


cdef const long long *_lengths(object lengths, int T, int B, str who) except? NULL:
    """The entries of lengths (None: NULL), checked: C-contiguous int64, B of
    them, each in 0 .. T."""
    if lengths is None:
        return NULL
    if (not isinstance(lengths, cnp.ndarray)
            or cnp.PyArray_TYPE(<cnp.ndarray>lengths) != cnp.NPY_INT64
            or not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>lengths)
            or cnp.PyArray_SIZE(<cnp.ndarray>lengths) != B):
        raise ValueError(f"{who}: lengths must be C-contiguous int64 with B entries")
    cdef const long long *p = <const long long *>cnp.PyArray_DATA(<cnp.ndarray>lengths)
    cdef int b
    for b in range(B):
        if p[b] < 0 or p[b] > T:
            raise ValueError(f"{who}: lengths out of range")
    return p


@cython.auto_pickle(False)
cdef class _TapeBlock:
    """The memory under a tape_empty array: back to the tape slot (rc_work.h)
    when the array goes."""
    cdef void *p

    def __dealloc__(self):
        if self.p != NULL:
            rc_block_free(RC_BLOCK_TAPE, self.p)
            self.p = NULL


def tape_empty(Py_ssize_t n, object dtype):
    """np.empty(n, dtype) (float32 or float64) for a training tape, on a block
    that goes back to the kernels' tape slot when the array is freed, so that
    the next tape of that size or less reuses it instead of fresh pages."""
    import numpy as np
    cdef object dt = np.dtype(dtype)
    cdef int typenum = dt.num
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("tape_empty: float32 or float64")
    if n < 0:
        raise ValueError("tape_empty: n must be >= 0")
    cdef size_t nbytes = <size_t>n * <size_t>dt.itemsize
    cdef _TapeBlock blk = _TapeBlock.__new__(_TapeBlock)
    with nogil:
        blk.p = rc_block_alloc(RC_BLOCK_TAPE, nbytes if nbytes > 0 else 64)
    if blk.p == NULL:
        raise MemoryError()
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    cdef cnp.ndarray arr = cnp.PyArray_SimpleNewFromData(1, dims, typenum, blk.p)
    cnp.PyArray_SetBaseObject(arr, blk)     # steals a reference
    Py_INCREF(blk)
    return arr


def split(int cell, int flags, int P, int T, int B, int I, int H, int threads, str dtype="float32"):
    """(row groups, unit groups): how a layer's threads share its work."""
    cdef rc_layer L
    cdef int rg = 1, ug = 1
    memset(&L, 0, sizeof(L))
    L.cell = cell
    L.flags = flags
    L.T = T
    L.B = B
    L.In = I
    L.H = H
    L.P = P
    L.dtype = RC_F32 if dtype == "float32" else RC_F64
    rc_split(&L, threads, &rg, &ug)
    return rg, ug


def force_split(int row_groups=0, int unit_groups=0, double min_work=-1.0):
    """For the tests: split every layer's threads into (row_groups,
    unit_groups) as far as its rows and units allow, and thread calls from
    min_work multiply-adds on; force_split() restores the rule."""
    rc_force_split(row_groups, unit_groups, min_work)


cdef enum:
    MAX_DIRS = 16


def forward(int cell, int flags, int P, object x, object out, tuple states, tuple weights,
            object lengths, tuple reverses, tuple tapes, int nthreads=0):
    """One layer, its D = len(reverses) directions at once.

    x       (T, B, I)
    out     (T, B, D * R): direction d writes columns d * R .. d * R + R;
            rows of padded times (t >= len_b) are left as they are
    states  per direction (h,) or (h, c): h (B, R), c (B, H) (LSTM), the
            initial state in, the final one out
    weights per direction (w_ih, w_hh, b_ih, b_hh, w2, b2), None for absent
    lengths int64 (B,), or None: every sequence has T steps
    tapes   per direction None (inference) or an array of tape_size elements
    nthreads threads to use (0: the current setting)
    """
    cdef int D = len(reverses), d, dtype, T, B, I, H, G, R
    cdef rc_layer Ls[MAX_DIRS]
    cdef cnp.ndarray xa, oa, ha, ca
    cdef int rc = 0
    if D < 1 or D > MAX_DIRS or len(states) != D or len(weights) != D or len(tapes) != D:
        raise ValueError("forward: one state, weight tuple and tape per direction")
    if not isinstance(x, cnp.ndarray):
        raise TypeError("forward: x must be an ndarray")
    xa = <cnp.ndarray>x
    dtype = _dtype_of(xa)
    if xa.ndim != 3:
        raise ValueError("forward: x must be 3-D")
    T, B, I = xa.shape[0], xa.shape[1], xa.shape[2]
    _arr(x, "x", dtype, 0, False)
    w0 = (<tuple>weights[0])[1]
    G = 3 if cell == RC_GRU else (4 if cell == RC_LSTM else 1)
    if type(w0) is PackedWeight:
        H = (<PackedWeight>w0).N // G
    elif not isinstance(w0, cnp.ndarray) or (<cnp.ndarray>w0).ndim != 2:
        raise ValueError("forward: w_hh must be a 2-D array")
    else:
        H = (<cnp.ndarray>w0).shape[0] // G
    _dims(cell, H, P, &G, &R)
    oa = _arr(out, "out", dtype, 0, True)
    if oa.ndim != 3 or oa.shape[0] != T or oa.shape[1] != B or oa.shape[2] < D * R:
        raise ValueError(f"forward: out must be ({T}, {B}, >= {D * R})")
    cdef const long long *len_p = _lengths(lengths, T, B, "forward")
    if T == 0 or B == 0:
        return
    for d in range(D):
        memset(&Ls[d], 0, sizeof(rc_layer))
        _describe(&Ls[d], cell, flags, P, dtype, T, B, I, H, <tuple>weights[d],
                  f"direction {d}", False)
        Ls[d].reverse = 1 if reverses[d] else 0
        Ls[d].lengths = len_p
        Ls[d].x = cnp.PyArray_DATA(xa)
        Ls[d].out = <char *>cnp.PyArray_DATA(oa) + d * R * cnp.PyArray_ITEMSIZE(oa)
        Ls[d].out_ld = oa.shape[2]
        st = <tuple>states[d]
        ha = _arr(st[0], "h", dtype, <Py_ssize_t>B * R, True)
        Ls[d].h = cnp.PyArray_DATA(ha)
        if cell == RC_LSTM:
            ca = _arr(st[1], "c", dtype, <Py_ssize_t>B * H, True)
            Ls[d].c = cnp.PyArray_DATA(ca)
        if tapes[d] is not None:
            Ls[d].tape = cnp.PyArray_DATA(_arr(tapes[d], "tape", dtype, rc_tape_elems(&Ls[d]),
                                               True))
    if nthreads <= 0:
        nthreads = gru_cy_get_num_threads()
    with nogil:
        rc = rc_forward(Ls, 1, D, nthreads)
    if rc != 0:
        raise MemoryError()


def backward(int cell, int flags, int P, object x, object dout, tuple dxs, tuple dstates,
             tuple weights, tuple grads, object lengths, tuple reverses, tuple tapes,
             int nthreads=0):
    """Backward of forward(), its directions at once.

    dout    (T, B, D * R), direction d's columns d * R ..
    dxs     per direction a (T, B, I) array, added into
    dstates per direction (dh,) or (dh, dc): dL/d(final state) in,
            dL/d(initial state) out
    weights as forward got them (the tape's copies)
    grads   per direction (g_ih, g_hh, gb_ih, gb_hh, g2, gb2), added into
    tapes   what forward filled
    """
    cdef int D = len(reverses), d, dtype, T, B, I, H, G, R
    cdef rc_layer Ls[MAX_DIRS]
    cdef rc_layer Lg
    cdef cnp.ndarray xa, da
    cdef int rc = 0
    if (D < 1 or D > MAX_DIRS or len(dxs) != D or len(dstates) != D or len(weights) != D
            or len(grads) != D or len(tapes) != D):
        raise ValueError("backward: one of each argument per direction")
    if any(type(w) is PackedWeight for ws in weights for w in ws):
        raise ValueError("backward: packed weights are for inference only")
    if not isinstance(x, cnp.ndarray):
        raise TypeError("backward: x must be an ndarray")
    xa = <cnp.ndarray>x
    dtype = _dtype_of(xa)
    if xa.ndim != 3:
        raise ValueError("backward: x must be 3-D")
    T, B, I = xa.shape[0], xa.shape[1], xa.shape[2]
    _arr(x, "x", dtype, 0, False)
    w0 = (<tuple>weights[0])[1]
    if not isinstance(w0, cnp.ndarray) or (<cnp.ndarray>w0).ndim != 2:
        raise ValueError("backward: w_hh must be a 2-D array")
    G = 3 if cell == RC_GRU else (4 if cell == RC_LSTM else 1)
    H = (<cnp.ndarray>w0).shape[0] // G
    _dims(cell, H, P, &G, &R)
    da = _arr(dout, "dout", dtype, 0, False)
    if da.ndim != 3 or da.shape[0] != T or da.shape[1] != B or da.shape[2] < D * R:
        raise ValueError(f"backward: dout must be ({T}, {B}, >= {D * R})")
    cdef const long long *len_p = _lengths(lengths, T, B, "backward")
    if T == 0 or B == 0:
        return
    for d in range(D):
        memset(&Ls[d], 0, sizeof(rc_layer))
        _describe(&Ls[d], cell, flags, P, dtype, T, B, I, H, <tuple>weights[d],
                  f"direction {d}", False)
        memset(&Lg, 0, sizeof(rc_layer))
        _describe(&Lg, cell, flags, P, dtype, T, B, I, H, <tuple>grads[d],
                  f"direction {d} grads", True)
        Ls[d].g_ih = Lg.g_ih
        Ls[d].g_hh = Lg.g_hh
        Ls[d].g2 = Lg.g2
        Ls[d].gb_ih = Lg.gb_ih
        Ls[d].gb_hh = Lg.gb_hh
        Ls[d].gb2 = Lg.gb2
        if (Ls[d].b_ih == NULL) != (Ls[d].gb_ih == NULL):
            raise ValueError("backward: bias gradients go with biases")
        Ls[d].reverse = 1 if reverses[d] else 0
        Ls[d].lengths = len_p
        Ls[d].x = cnp.PyArray_DATA(xa)
        Ls[d].dout = <char *>cnp.PyArray_DATA(da) + d * R * cnp.PyArray_ITEMSIZE(da)
        Ls[d].dout_ld = da.shape[2]
        dxa = _arr(dxs[d], "dx", dtype, <Py_ssize_t>T * B * I, True)
        Ls[d].dx = cnp.PyArray_DATA(dxa)
        st = <tuple>dstates[d]
        Ls[d].dh = cnp.PyArray_DATA(_arr(st[0], "dh", dtype, <Py_ssize_t>B * R, True))
        if cell == RC_LSTM:
            Ls[d].dc = cnp.PyArray_DATA(_arr(st[1], "dc", dtype, <Py_ssize_t>B * H, True))
        Ls[d].tape = cnp.PyArray_DATA(_arr(tapes[d], "tape", dtype, rc_tape_elems(&Ls[d]),
                                           False))
    if nthreads <= 0:
        nthreads = gru_cy_get_num_threads()
    with nogil:
        rc = rc_backward(Ls, D, nthreads)
    if rc != 0:
        raise MemoryError()


# ---- packed weights ----------------------------------------------------------------------

def pack_weight(object w):
    """The (N, K) C-contiguous weight w packed as the forward products read
    it (W^T in panels): a 1-D array to pass as a weight's packed form."""
    cdef cnp.ndarray wa = <cnp.ndarray>w
    cdef int dtype = _dtype_of(wa)
    _arr(w, "w", dtype, 0, False)
    if wa.ndim != 2:
        raise ValueError("pack_weight: w must be 2-D")
    import numpy as np
    cdef int N = wa.shape[0], K = wa.shape[1]
    out = np.empty(rc_packed_weight_elems(N, K) + 16, dtype=w.dtype)
    cdef void *dst = cnp.PyArray_DATA(<cnp.ndarray>out)
    cdef const void *src = cnp.PyArray_DATA(wa)
    with nogil:
        rc_pack_weight(dtype, src, N, K, dst)
    return out


# ---- the lean path: a whole unidirectional module in one call ------------------------

cdef enum:
    MAX_LEAN_LAYERS = 64


cdef inline bint _is_weight(object o, int typenum, int rows, int cols) noexcept:
    """o is an ndarray of the type, (rows, cols) C- or F-contiguous, or
    (rows,) contiguous when cols is 0."""
    cdef cnp.ndarray a
    if type(o) is not cnp.ndarray:
        return False
    a = <cnp.ndarray>o
    if cnp.PyArray_TYPE(a) != typenum:
        return False
    if cols == 0:
        return a.ndim == 1 and a.shape[0] == rows and cnp.PyArray_IS_C_CONTIGUOUS(a)
    return (a.ndim == 2 and a.shape[0] == rows and a.shape[1] == cols
            and (cnp.PyArray_IS_C_CONTIGUOUS(a) or cnp.PyArray_IS_F_CONTIGUOUS(a)))


cdef inline bint _is_state(object o, int typenum, int ndim, int L, int B, int W) noexcept:
    cdef cnp.ndarray a
    if type(o) is not cnp.ndarray:
        return False
    a = <cnp.ndarray>o
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and a.ndim == ndim and a.shape[0] == L and a.shape[ndim - 1] == W
            and (ndim == 2 or a.shape[1] == B))


cdef class Lean:
    """The lean path of one module configuration: every layer of a
    unidirectional module, full lengths, arrays already of the kernels'
    types, in one call (the general path's kernels, so the results agree bit
    for bit). infer() and step() return None when an argument is not
    already what the kernels take, so that the caller's general path
    converts it or raises the right error.

    names: per layer the parameter names (w_ih, w_hh, b_ih, b_hh, w2, b2),
    None where the module has none."""
    cdef tuple names
    cdef int cell, flags, P, n_in, H, L, typenum, dtype, G, R
    cdef bint reverse
    # Frozen weights (FrozenLayers) in place of the lookups in params, or None.
    cdef object frozen

    def __init__(self, int cell, int flags, int P, tuple names, int input_size,
                 int hidden_size, int typenum, bint reverse):
        self.cell = cell
        self.flags = flags
        self.P = P
        self.names = names
        self.n_in = input_size
        self.H = hidden_size
        self.L = len(names)
        self.typenum = typenum
        self.dtype = RC_F32 if typenum == cnp.NPY_FLOAT32 else RC_F64
        self.reverse = reverse
        _dims(cell, hidden_size, P, &self.G, &self.R)
        if self.L < 1 or self.L > MAX_LEAN_LAYERS:
            raise ValueError("Lean: 1 to 64 layers")

    def use_frozen(self, FrozenLayers layers):
        """Run on these frozen weights from now on instead of looking the
        parameters up (frozen modules: the params argument is then unused)."""
        self.frozen = layers

    cdef int _layer_weights(self, rc_layer *Lk, int k, dict params, list keep):
        """Layer k's weights and biases from params into Lk (references kept
        alive in keep): 1, or 0 when one is not what the kernels take."""
        if self.frozen is not None:
            return (<FrozenLayers>self.frozen).layer_into(Lk, k)
        cdef int G = self.G, H = self.H, R = self.R, typenum = self.typenum
        cdef tuple row = <tuple>self.names[k]
        w_ih = params.get(row[0])
        w_hh = params.get(row[1])
        if (not _is_weight(w_ih, typenum, G * H, self.n_in if k == 0 else R)
                or not _is_weight(w_hh, typenum, G * H, R)):
            return 0
        b_ih = b_hh = w2 = b2 = None
        if row[2] is not None:
            b_ih = params.get(row[2])
            if not _is_weight(b_ih, typenum, G * H, 0):
                return 0
        if row[3] is not None:
            b_hh = params.get(row[3])
            if not _is_weight(b_hh, typenum, G * H, 0):
                return 0
        if row[4] is not None:
            w2 = params.get(row[4])
            if not _is_weight(w2, typenum, self.P, H):
                return 0
        if row[5] is not None:
            b2 = params.get(row[5])
            if not _is_weight(b2, typenum, self.P, 0):
                return 0
        keep.append((w_ih, w_hh, b_ih, b_hh, w2, b2))
        Lk.w_ih.p = cnp.PyArray_DATA(<cnp.ndarray>w_ih)
        Lk.w_ih.fortran = not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>w_ih)
        Lk.w_hh.p = cnp.PyArray_DATA(<cnp.ndarray>w_hh)
        Lk.w_hh.fortran = not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>w_hh)
        if w2 is not None:
            Lk.w2.p = cnp.PyArray_DATA(<cnp.ndarray>w2)
            Lk.w2.fortran = not cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>w2)
        if b_ih is not None:
            Lk.b_ih = cnp.PyArray_DATA(<cnp.ndarray>b_ih)
        if b_hh is not None:
            Lk.b_hh = cnp.PyArray_DATA(<cnp.ndarray>b_hh)
        if b2 is not None:
            Lk.b2 = cnp.PyArray_DATA(<cnp.ndarray>b2)
        return 1

    cdef object _run(self, cnp.ndarray xa, object hx, dict params, int T, int B, int s_ndim,
                     int y_ndim, cnp.npy_intp *y_dims):
        cdef int L = self.L, k, R = self.R, H = self.H, typenum = self.typenum
        cdef bint lstm = self.cell == RC_LSTM
        cdef cnp.ndarray h_new, c_new = None, y
        cdef object h0 = hx, c0 = None
        cdef cnp.npy_intp dims[3]
        cdef rc_layer Ls[MAX_LEAN_LAYERS]
        cdef list keep = []
        cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(xa), seq = <Py_ssize_t>T * B * R
        cdef Py_ssize_t RB = <Py_ssize_t>R * B, HB = <Py_ssize_t>H * B
        cdef char *bufs = NULL
        cdef int rc = 0, nthreads = gru_cy_get_num_threads()
        if lstm and hx is not None:
            if type(hx) is not tuple or len(<tuple>hx) != 2:
                return None
            h0 = (<tuple>hx)[0]
            c0 = (<tuple>hx)[1]
            if not _is_state(c0, typenum, s_ndim, L, B, H):
                return None
        if h0 is not None and not _is_state(h0, typenum, s_ndim, L, B, R):
            return None
        for k in range(L):
            memset(&Ls[k], 0, sizeof(rc_layer))
            if not self._layer_weights(&Ls[k], k, params, keep):
                return None
            Ls[k].cell = self.cell
            Ls[k].dtype = self.dtype
            Ls[k].flags = self.flags
            Ls[k].T = T
            Ls[k].B = B
            Ls[k].In = self.n_in if k == 0 else R
            Ls[k].H = H
            Ls[k].P = self.P if (self.cell == RC_LSTM or self.cell == RC_JORDAN) else 0
            Ls[k].reverse = self.reverse
        dims[0] = L
        dims[1] = B
        dims[2] = R
        if s_ndim == 2:
            dims[1] = R
        if h0 is None:
            h_new = cnp.PyArray_ZEROS(s_ndim, dims, typenum, 0)
        else:
            h_new = cnp.PyArray_EMPTY(s_ndim, dims, typenum, 0)
            memcpy(cnp.PyArray_DATA(h_new), cnp.PyArray_DATA(<cnp.ndarray>h0), L * RB * item)
        if lstm:
            dims[2] = H
            if s_ndim == 2:
                dims[1] = H
            if c0 is None:
                c_new = cnp.PyArray_ZEROS(s_ndim, dims, typenum, 0)
            else:
                c_new = cnp.PyArray_EMPTY(s_ndim, dims, typenum, 0)
                memcpy(cnp.PyArray_DATA(c_new), cnp.PyArray_DATA(<cnp.ndarray>c0),
                       L * HB * item)
        y = cnp.PyArray_EMPTY(y_ndim, y_dims, typenum, 0)
        # The outputs of the layers below the top: two alternating buffers
        # (one for two layers).
        if L > 1:
            bufs = <char *>malloc((1 if L == 2 else 2) * seq * item + 64)
            if bufs == NULL:
                raise MemoryError()
        for k in range(L):
            Ls[k].x = cnp.PyArray_DATA(xa) if k == 0 else Ls[k - 1].out
            Ls[k].out = (<char *>cnp.PyArray_DATA(y) if k == L - 1
                         else bufs + (k % 2) * seq * item)
            Ls[k].out_ld = R
            Ls[k].h = <char *>cnp.PyArray_DATA(h_new) + k * RB * item
            if lstm:
                Ls[k].c = <char *>cnp.PyArray_DATA(c_new) + k * HB * item
        with nogil:
            rc = rc_forward(Ls, L, 1, nthreads)
        free(bufs)
        if rc != 0:
            raise MemoryError()
        if lstm:
            return y, (h_new, c_new)
        return y, h_new

    def infer(self, object x, object hx, object params, bint batch_first):
        """__call__'s lean path: (out, state) or None.

        x  (T, B, I), (B, T, I) when batch_first (then only with B = 1 or
           T = 1, where both orders share one memory layout), or (T, I)
        hx None (zeros), (L, B, R) / (L, R), or for the LSTM a pair
        """
        cdef cnp.ndarray xa
        cdef int T, B
        cdef cnp.npy_intp dims[3]
        if type(params) is not dict or type(x) is not cnp.ndarray:
            return None
        xa = <cnp.ndarray>x
        if (cnp.PyArray_TYPE(xa) != self.typenum or not cnp.PyArray_IS_C_CONTIGUOUS(xa)
                or xa.ndim < 2 or xa.shape[xa.ndim - 1] != self.n_in):
            return None
        if xa.ndim == 2:
            if xa.shape[0] == 0 or xa.shape[0] > 2147483647:
                return None
            dims[0] = xa.shape[0]
            dims[1] = self.R
            return self._run(xa, hx, <dict>params, <int>xa.shape[0], 1, 2, 2, dims)
        if xa.ndim != 3 or xa.shape[0] == 0 or xa.shape[1] == 0:
            return None
        if <double>xa.shape[0] * <double>xa.shape[1] > 2147483647.0:
            return None
        if batch_first:
            if xa.shape[0] != 1 and xa.shape[1] != 1:
                return None
            T, B = <int>xa.shape[1], <int>xa.shape[0]
        else:
            T, B = <int>xa.shape[0], <int>xa.shape[1]
        dims[0] = xa.shape[0]
        dims[1] = xa.shape[1]
        dims[2] = self.R
        return self._run(xa, hx, <dict>params, T, B, 3, 3, dims)

    def step(self, object x, object hx, object params):
        """step()'s lean path: (y, state) or None. x (B, I) or (I,)."""
        cdef cnp.ndarray xa
        cdef cnp.npy_intp dims[2]
        if type(params) is not dict or type(x) is not cnp.ndarray:
            return None
        xa = <cnp.ndarray>x
        if (cnp.PyArray_TYPE(xa) != self.typenum or not cnp.PyArray_IS_C_CONTIGUOUS(xa)
                or xa.ndim < 1 or xa.shape[xa.ndim - 1] != self.n_in):
            return None
        if xa.ndim == 1:
            dims[0] = self.R
            return self._run(xa, hx, <dict>params, 1, 1, 2, 1, dims)
        if xa.ndim != 2 or xa.shape[0] == 0 or xa.shape[0] > 2147483647:
            return None
        dims[0] = xa.shape[0]
        dims[1] = self.R
        return self._run(xa, hx, <dict>params, 1, <int>xa.shape[0], 3, 2, dims)


# ---- the products, for the tests and for other layers ------------------------------------

def gemm(object a, object w, bint trans_w, int j0=0, int n=-1, object c=None, bint init=False,
         bint pack=False, int k0=0, int K=-1, bint a_trans=False, bint in_place=False):
    """C[:, :n] (=|+=) A @ W'[k0:k0 + K, j0:j0 + n] on gru_cy's kernels (or
    the BLAS backend), W' = W.T when trans_w else W; A (M, K) or, a_trans,
    given as A^T (K, M). pack: pack W' first (same bits). in_place with
    trans_w: W' read in place, as one-step calls read it (same bits).
    Returns C."""
    cdef cnp.ndarray aa = <cnp.ndarray>a, wa = <cnp.ndarray>w, ca
    cdef int dtype = _dtype_of(aa)
    _arr(a, "a", dtype, 0, False)
    _arr(w, "w", dtype, 0, False)
    if aa.ndim != 2 or wa.ndim != 2:
        raise ValueError("gemm: a and w must be 2-D")
    cdef int Kt = wa.shape[1] if trans_w else wa.shape[0]
    cdef int N = wa.shape[0] if trans_w else wa.shape[1]
    cdef int M = aa.shape[1] if a_trans else aa.shape[0]
    if K < 0:
        K = Kt - k0
    if n < 0:
        n = N - j0
    if (k0 < 0 or k0 + K > Kt or j0 < 0 or j0 + n > N
            or (aa.shape[0] if a_trans else aa.shape[1]) < K):
        raise ValueError("gemm: inconsistent shapes")
    import numpy as np
    if c is None:
        c = np.zeros((M, n), dtype=a.dtype)
    ca = _arr(c, "c", dtype, 0, True)
    if ca.ndim != 2 or ca.shape[0] != M or ca.shape[1] < n:
        raise ValueError("gemm: c must be (M, >= n)")
    nr = 32 if dtype == RC_F32 else 16
    packed = np.zeros(rc_packed_elems(Kt, N) + 16, a.dtype) if (pack or trans_w) else None
    tail = np.zeros(rc_tail_elems(Kt) + 16, a.dtype)
    cdef rc_bmat b
    cdef void *pp = NULL if packed is None else cnp.PyArray_DATA(<cnp.ndarray>packed)
    if trans_w and in_place:
        rc_bmat_transposed(dtype, &b, Kt, N, cnp.PyArray_DATA(wa), wa.shape[1])
    else:
        rc_bmat_init(dtype, &b, trans_w, Kt, N, cnp.PyArray_DATA(wa), wa.shape[1], pp,
                     cnp.PyArray_DATA(<cnp.ndarray>tail))
    cdef Py_ssize_t lda = aa.shape[1]
    with nogil:
        rc_gemm(dtype, M, K, j0, n, cnp.PyArray_DATA(aa), 1 if a_trans else lda,
                lda if a_trans else 1, &b, k0, init, cnp.PyArray_DATA(ca), ca.shape[1])
    return c
