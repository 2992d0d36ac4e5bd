# Frozen inference's weights (included by _core.pyx): a weight packed once
# at one of three precisions, the products on it, and the per-layer table
# the lean path runs a frozen module from.
#
#   fp32  W^T in the float panels every product reads (rc_pack_weight), the
#         weight itself kept beside it (the BLAS backend reads that): the
#         same bits as the module, without packing at every call
#   bf16  bfloat16 weights, products with float32 accumulation (rc_qgemm.h)
#   int8  int8 weights with a scale per output, the activations quantised
#         per row at every product, exact integer sums (rc_qgemm.h)

cdef extern from "rc_qgemm.h" nogil:
    ctypedef struct rc_qmat:
        int format
        int K, N, Kp
    enum:
        RC_QF32
        RC_QBF16
        RC_QINT8
        RC_Q_MAX_K
    size_t rc_q_bytes(int format, int K, int N)
    void rc_q_describe(rc_qmat *q, int format, int K, int N, const void *buf)
    void rc_q_quantize(int format, const float *w, int N, int K, unsigned short *q16,
                       signed char *q8, float *scale)
    void rc_q_pack(int format, const unsigned short *q16, const signed char *q8,
                   const float *scale, int N, int K, void *buf)
    void rc_qgemm(const rc_qmat *q, int M, int K, int j0, int n, const float *a,
                  Py_ssize_t sam, Py_ssize_t sak, int init, float *c, Py_ssize_t ldc)
    int rc_q_native(int format)
    void rc_q_bf16_round(const float *x, Py_ssize_t n, unsigned short *out)
    float rc_q_quantize_row(const float *x, int K, signed char *q)

PRECISIONS = ("fp32", "bf16", "int8")
# The most inputs (K) a bf16 or int8 product takes: int8's integer sums stay
# inside int32.
Q_MAX_K = RC_Q_MAX_K


cdef int _precision_format(str precision) except -1:
    if precision == "fp32":
        return RC_QF32
    if precision == "bf16":
        return RC_QBF16
    if precision == "int8":
        return RC_QINT8
    raise ValueError(f"precision must be one of 'fp32', 'bf16' or 'int8', got {precision!r}")


def native(str precision):
    """Whether the products at this precision run on the CPU's own
    instruction with the current instruction set (bf16: AVX512_BF16's
    vdpbf16ps; int8: AVX512-VNNI's vpdpbusd); False: emulated exactly, at
    about float32's speed. fp32: always True."""
    cdef int fmt = _precision_format(precision)
    if fmt == RC_QF32:
        return True
    return bool(rc_q_native(fmt))


cdef object _aligned_bytes(Py_ssize_t nbytes):
    """A uint8 array of nbytes starting on a 64-byte boundary."""
    import numpy as np
    buf = np.empty(nbytes + 64, dtype=np.uint8)
    start = -buf.__array_interface__["data"][0] % 64
    return buf[start:start + nbytes]


cdef class PackedWeight:
    """An (N, K) weight (a module's (outputs, inputs) matrix) packed once
    for the forward products at one precision: "fp32" (the module's own
    float type), "bf16" or "int8" (float32 weights only). Later changes to
    the array it was made from do not reach it. Picklable: the canonical
    form (fp32: the weight; bf16: its bfloat16 bits; int8: the integers and
    the scales) is pickled and packed again on loading."""
    cdef readonly str precision
    cdef readonly int N, K
    cdef int format
    cdef object weight      # fp32: the (N, K) copy, C-contiguous
    cdef object buf         # the panels (and int8's scales and column sums)
    cdef rc_qmat q

    def __init__(self, object w, str precision):
        import numpy as np
        self.format = _precision_format(precision)
        self.precision = precision
        if not isinstance(w, np.ndarray) or w.ndim != 2 or w.dtype not in (np.float32,
                                                                          np.float64):
            raise TypeError("PackedWeight: expected a 2-D float32 or float64 array")
        if self.format != RC_QF32 and w.dtype != np.float32:
            raise TypeError(f"PackedWeight: precision={precision!r} takes float32 weights, "
                            f"got {w.dtype}")
        if w.shape[0] > 2147483647 or w.shape[1] > 2147483647:
            raise ValueError("PackedWeight: dimensions must stay below 2**31")
        self.N = <int>w.shape[0]
        self.K = <int>w.shape[1]
        if self.format == RC_QF32:
            self._pack_fp32(w)
            return
        if self.K > RC_Q_MAX_K:
            raise ValueError(f"precision={precision!r} takes at most {RC_Q_MAX_K} inputs per "
                             f"product, got a weight of shape ({self.N}, {self.K})")
        cdef tuple full = (self.N, self.K), empty = (0, 0)
        cdef cnp.ndarray wa = np.ascontiguousarray(w)
        cdef cnp.ndarray q16 = np.zeros(full if self.format == RC_QBF16 else empty,
                                        dtype=np.uint16)
        cdef cnp.ndarray q8 = np.zeros(full if self.format == RC_QINT8 else empty,
                                       dtype=np.int8)
        cdef cnp.ndarray scale = np.zeros(self.N, dtype=np.float32)
        with nogil:
            rc_q_quantize(self.format, <const float *>cnp.PyArray_DATA(wa), self.N, self.K,
                          <unsigned short *>cnp.PyArray_DATA(q16),
                          <signed char *>cnp.PyArray_DATA(q8),
                          <float *>cnp.PyArray_DATA(scale))
        self._pack_canonical(q16, q8, scale)

    cdef _pack_fp32(self, object w):
        import numpy as np
        weight = np.empty((self.N, self.K), dtype=w.dtype)
        weight[...] = w
        self.weight = weight
        self.buf = pack_weight(weight)

    cdef _pack_canonical(self, cnp.ndarray q16, cnp.ndarray q8, cnp.ndarray scale):
        self.buf = _aligned_bytes(rc_q_bytes(self.format, self.K, self.N))
        cdef void *dst = cnp.PyArray_DATA(<cnp.ndarray>self.buf)
        with nogil:
            rc_q_pack(self.format, <const unsigned short *>cnp.PyArray_DATA(q16),
                      <const signed char *>cnp.PyArray_DATA(q8),
                      <const float *>cnp.PyArray_DATA(scale), self.N, self.K, dst)
        rc_q_describe(&self.q, self.format, self.K, self.N, dst)

    @property
    def shape(self):
        return (self.N, self.K)

    @property
    def nbytes(self):
        """Bytes the packed weight holds (fp32: the copy and its panels)."""
        return self.buf.nbytes + (0 if self.weight is None else self.weight.nbytes)

    def quantized(self):
        """The canonical form: fp32: the weight (N, K); bf16: its bfloat16
        bits (N, K) uint16; int8: (the integers (N, K) int8, the scales (N,)
        float32), each weight row j being q[j] * scale[j]. Unpacked from the
        panels the products read."""
        import numpy as np
        if self.format == RC_QF32:
            return self.weight.copy()
        g = 2 if self.format == RC_QBF16 else 4
        Kp = (self.K + g - 1) // g * g
        npan = (self.N + 31) // 32
        nb = npan * (Kp // g) * 128
        lanes = self.buf[:nb].view(np.uint16 if g == 2 else np.int8)
        q = lanes.reshape(npan, Kp // g, 32, g).transpose(0, 2, 1, 3).reshape(npan * 32, Kp)
        q = np.ascontiguousarray(q[:self.N, :self.K])
        if self.format == RC_QBF16:
            return q
        Np = npan * 32
        scale = self.buf[nb:nb + 4 * Np].view(np.float32)[:self.N].copy()
        return q, scale

    def dequantized(self):
        """The (N, K) float32 weight the products multiply by (fp32: the
        weight itself)."""
        import numpy as np
        if self.format == RC_QF32:
            return self.weight.copy()
        if self.format == RC_QBF16:
            return (self.quantized().astype(np.uint32) << 16).view(np.float32)
        q, scale = self.quantized()
        return q.astype(np.float32) * scale[:, None]

    def __reduce__(self):
        return (_packed_weight, (self.precision, self.N, self.K, self.quantized()))

    def __repr__(self):
        return f"<gru_cy PackedWeight {self.precision} ({self.N}, {self.K})>"

    cdef int _into(self, rc_weight *w, str name, int dtype, int rows, int cols,
                   bint write) except -1:
        """This weight as the kernels' weight of shape (rows, cols)."""
        if write:
            raise ValueError(f"{name}: a packed weight is for inference only")
        if rows != self.N or cols != self.K:
            raise ValueError(f"{name}: expected a weight of shape ({rows}, {cols}), got a "
                             f"packed one of shape ({self.N}, {self.K})")
        if self.format == RC_QF32:
            if _dtype_of(<cnp.ndarray>self.weight) != dtype:
                raise ValueError(f"{name}: the packed weight is {self.weight.dtype}, the input "
                                 f"{'float32' if dtype == RC_F32 else 'float64'}")
            w.p = cnp.PyArray_DATA(<cnp.ndarray>self.weight)
            w.packed = cnp.PyArray_DATA(<cnp.ndarray>self.buf)
            return 0
        if dtype != RC_F32:
            raise ValueError(f"{name}: a {self.precision} weight takes float32 inputs")
        w.p = cnp.PyArray_DATA(<cnp.ndarray>self.buf)
        w.q = &self.q
        return 0


def _packed_weight(str precision, int N, int K, object state):
    """PackedWeight from its canonical form (unpickling)."""
    import numpy as np
    cdef PackedWeight pw = PackedWeight.__new__(PackedWeight)
    pw.format = _precision_format(precision)
    pw.precision = precision
    pw.N = N
    pw.K = K
    if pw.format == RC_QF32:
        state = np.asarray(state)
        if state.shape != (N, K) or state.dtype not in (np.float32, np.float64):
            raise ValueError("PackedWeight: corrupt state")
        pw._pack_fp32(state)
        return pw
    if K > RC_Q_MAX_K or N < 0 or K < 0:
        raise ValueError("PackedWeight: corrupt state")
    if pw.format == RC_QBF16:
        q16 = np.ascontiguousarray(state, dtype=np.uint16)
        if q16.shape != (N, K):
            raise ValueError("PackedWeight: corrupt state")
        pw._pack_canonical(q16, np.zeros((0, 0), np.int8), np.zeros(N, np.float32))
    else:
        q8, scale = state
        q8 = np.ascontiguousarray(q8, dtype=np.int8)
        scale = np.ascontiguousarray(scale, dtype=np.float32)
        if q8.shape != (N, K) or scale.shape != (N,) or (q8 == -128).any():
            raise ValueError("PackedWeight: corrupt state")
        pw._pack_canonical(np.zeros((0, 0), np.uint16), q8, scale)
    return pw


def qgemm(object a, PackedWeight w, int j0=0, int n=-1, object c=None, bint init=False):
    """C[:, :n] (=|+=) A @ W[j0:j0 + n].T on the packed weight's product
    (for the tests and Linear): A (M, K) float32 C-contiguous. Returns C."""
    import numpy as np
    if w.format == RC_QF32:
        raise ValueError("qgemm: an fp32 weight runs on gemm()")
    cdef cnp.ndarray aa = _arr(a, "a", RC_F32, 0, False), ca
    if aa.ndim != 2 or aa.shape[1] != w.K:
        raise ValueError(f"qgemm: a must be (M, {w.K})")
    if n < 0:
        n = w.N - j0
    if j0 < 0 or j0 + n > w.N:
        raise ValueError("qgemm: columns out of range")
    cdef int M = <int>aa.shape[0]
    if c is None:
        c = np.zeros((M, n), dtype=np.float32)
    ca = _arr(c, "c", RC_F32, 0, True)
    if ca.ndim != 2 or ca.shape[0] != M or ca.shape[1] < n:
        raise ValueError("qgemm: c must be (M, >= n)")
    cdef const float *ap = <const float *>cnp.PyArray_DATA(aa)
    cdef float *cp = <float *>cnp.PyArray_DATA(ca)
    cdef Py_ssize_t ldc = ca.shape[1]
    with nogil:
        rc_qgemm(&w.q, M, w.K, j0, n, ap, w.K, 1, init, cp, ldc)
    return c


def bf16_round(object x):
    """The bfloat16 bits (uint16) of a float32 array as the products round
    it (nearest, ties to even; NaN quiet; subnormals to zero)."""
    import numpy as np
    cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=np.float32)
    cdef cnp.ndarray out = np.empty(np.shape(xa), dtype=np.uint16)
    rc_q_bf16_round(<const float *>cnp.PyArray_DATA(xa), cnp.PyArray_SIZE(xa),
                    <unsigned short *>cnp.PyArray_DATA(out))
    return out


def quantize_row(object x):
    """(q int8, scale) of one float32 row as the int8 products quantise it."""
    import numpy as np
    cdef cnp.ndarray xa = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    cdef cnp.ndarray q = np.empty(xa.shape[0], dtype=np.int8)
    cdef float s = rc_q_quantize_row(<const float *>cnp.PyArray_DATA(xa), <int>xa.shape[0],
                                     <signed char *>cnp.PyArray_DATA(q))
    return q, np.float32(s)


cdef enum:
    MAX_FROZEN_LAYERS = 64


cdef class FrozenLayers:
    """The weights of every layer of a unidirectional frozen module as the
    lean path hands them to the kernels (Lean.use_frozen): per layer the
    kernels' six (w_ih, w_hh, b_ih, b_hh, w2, b2), matrices as
    PackedWeight, biases as C-contiguous arrays of the module's dtype,
    None where the module has none."""
    cdef rc_weight ws[MAX_FROZEN_LAYERS][3]
    cdef const void *bs[MAX_FROZEN_LAYERS][3]
    cdef int L
    cdef tuple layers

    def __init__(self, tuple layers, int cell, int P, int input_size, int hidden_size,
                 str dtype):
        cdef int G, R, k, dt = RC_F32 if dtype == "float32" else RC_F64
        _dims(cell, hidden_size, P, &G, &R)
        if len(layers) < 1 or len(layers) > MAX_FROZEN_LAYERS:
            raise ValueError("FrozenLayers: 1 to 64 layers")
        self.L = len(layers)
        self.layers = layers
        for k in range(self.L):
            six = layers[k]
            _weight(&self.ws[k][0], six[0], "w_ih", dt, G * hidden_size,
                    input_size if k == 0 else R, False)
            _weight(&self.ws[k][1], six[1], "w_hh", dt, G * hidden_size, R, False)
            _weight(&self.ws[k][2], six[4], "w2", dt, P, hidden_size, False)
            self.bs[k][0] = _opt(six[2], "b_ih", dt, G * hidden_size)
            self.bs[k][1] = _opt(six[3], "b_hh", dt, G * hidden_size)
            self.bs[k][2] = _opt(six[5], "b2", dt, P)

    def __reduce__(self):
        raise TypeError("FrozenLayers holds pointers: pickle the frozen module instead")

    cdef int layer_into(self, rc_layer *Lk, int k):
        if k >= self.L:
            return 0
        Lk.w_ih = self.ws[k][0]
        Lk.w_hh = self.ws[k][1]
        Lk.w2 = self.ws[k][2]
        Lk.b_ih = self.bs[k][0]
        Lk.b_hh = self.bs[k][1]
        Lk.b2 = self.bs[k][2]
        return 1
