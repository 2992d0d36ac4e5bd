"""Every matrix product of InferenceSession: MatMul, Gemm and Conv come here and nowhere else.

The surface is deliberately small, so that the products can move to gru_cy's
packed kernels without touching the operators:

- ``pack(b)``: a constant right-hand operand (..., K, N), arranged once at
  load; the result is opaque to the callers (they only pass it back here).
- ``matmul_packed(a, packed, bias=None, out=None)``: ``a @ b (+ bias)`` with
  NumPy's matmul broadcasting; ``bias`` broadcasts over the result without
  growing it; ``out`` is a buffer of the result's shape to write into.
- ``matmul(a, b, bias=None, out=None)``: the same, both operands computed at run
  time.
- ``gemm(a, b, c, alpha, beta, trans_a, trans_b)``: ``alpha * op(a) @ op(b) +
  beta * c``, for operands computed at run time.
- ``pack_conv(w, group)`` / ``conv(x, packed, strides, dilations, pads, bias)``:
  an N-D convolution, as ``Conv`` defines it, lowered to one product per group on
  patches (im2col), or to a loop over the kernel's taps when each group reads
  one channel (depthwise).

Today every product is NumPy's (its BLAS); a product on gru_cy's kernels goes in
here, behind the same names. Results are float arrays of the operands' type,
freshly allocated (never a view of an operand), C-contiguous.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

__all__ = ["Packed", "PackedConv", "pack", "matmul_packed", "matmul", "gemm", "pack_conv",
           "conv", "conv_output_shape"]


class Packed:
    """A constant right-hand operand (..., K, N), arranged for repeated products."""

    __slots__ = ("matrix",)

    def __init__(self, matrix):
        self.matrix = matrix

    @property
    def shape(self):
        return self.matrix.shape


def pack(b):
    """Arrange a constant operand (..., K, N) once (a private C-contiguous copy)."""
    m = np.array(b, order="C", copy=True)
    m.setflags(write=False)
    return Packed(m)


def matmul_packed(a, packed, bias=None, out=None):
    """a @ b (+ bias) for a packed b: (..., M, K) @ (K, N) -> (..., M, N).

    out: a C-contiguous buffer of the result's shape and type to write into.
    """
    return matmul(a, packed.matrix, bias, out)


def matmul(a, b, bias=None, out=None):
    """a @ b (+ bias) with np.matmul's semantics, both operands computed at run time."""
    if b.ndim == 2 and a.ndim > 2:
        # One product over every row instead of NumPy's loop over the leading axes.
        rows = a.reshape(-1, a.shape[-1])
        y = np.matmul(rows, b, out=None if out is None else out.reshape(rows.shape[0], -1))
        y = y.reshape(a.shape[:-1] + (b.shape[1],))
    else:
        y = np.matmul(a, b, out=out)
    if bias is not None:
        np.add(y, bias, out=y)
    return y


def gemm(a, b, c=None, alpha=1.0, beta=1.0, trans_a=False, trans_b=False):
    """alpha * op(a) @ op(b) + beta * c; op transposes a 2-D operand when asked."""
    y = np.matmul(a.T if trans_a else a, b.T if trans_b else b)
    if alpha != 1.0:
        np.multiply(y, y.dtype.type(alpha), out=y)
    if c is not None and beta != 0.0:
        np.add(y, c if beta == 1.0 else y.dtype.type(beta) * c, out=y)
    return y


class PackedConv:
    """A convolution's weights (M, C/group, *kernel), arranged once: per group the
    matrix (C/group * K, M/group) of the patch product, or the taps (M/group, K)
    when a group reads one channel."""

    __slots__ = ("weights", "group", "kernel", "out_channels", "in_per_group", "depthwise")

    def __init__(self, w, group):
        M, Cg = w.shape[:2]
        self.kernel = tuple(int(k) for k in w.shape[2:])
        self.group, self.out_channels, self.in_per_group = group, M, Cg
        K = math.prod(self.kernel)
        Mg = M // group
        self.depthwise = Cg == 1 and group > 1
        if self.depthwise:
            taps = np.array(w.reshape(group, Mg, K), order="C", copy=True)
        else:
            taps = np.array(w.reshape(group, Mg, Cg * K).transpose(0, 2, 1), order="C",
                            copy=True)
        taps.setflags(write=False)
        self.weights = taps


def pack_conv(w, group):
    """Arrange a constant convolution weight (M, C/group, *kernel) once."""
    return PackedConv(w, int(group))


def conv_output_shape(spatial, kernel, strides, dilations, pads):
    """Output sizes of a convolution or pooling window over padded inputs (may be <= 0)."""
    nd = len(kernel)
    return [(spatial[i] + pads[i] + pads[i + nd] - ((kernel[i] - 1) * dilations[i] + 1))
            // strides[i] + 1 for i in range(nd)]


def _windows(x, kernel, strides, dilations, out):
    """A read-only view (N, C, *out, *kernel) of every window of x (N, C, *spatial)."""
    nd = len(kernel)
    sN, sC = x.strides[:2]
    sp = x.strides[2:]
    return as_strided(x, shape=x.shape[:2] + tuple(out) + tuple(kernel),
                      strides=(sN, sC) + tuple(sp[i] * strides[i] for i in range(nd))
                      + tuple(sp[i] * dilations[i] for i in range(nd)), writeable=False)


def conv(x, packed, strides, dilations, pads, bias=None):
    """Conv of x (N, C, *spatial) with packed weights: (N, M, *out).

    pads is (begin per axis..., end per axis...) of zeros; bias (M,) or None.
    """
    nd = len(packed.kernel)
    if any(pads):
        x = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    N = x.shape[0]
    G, M = packed.group, packed.out_channels
    Mg = M // G
    out = conv_output_shape(x.shape[2:], packed.kernel, strides, dilations, [0] * (2 * nd))
    if any(o <= 0 for o in out):
        raise ValueError(f"the kernel {list(packed.kernel)} (dilations {list(dilations)}) is "
                         f"larger than the padded input {list(x.shape[2:])}")
    L = math.prod(out)
    windows = _windows(x, packed.kernel, strides, dilations, out)
    dtype = np.result_type(x.dtype, packed.weights.dtype)
    if packed.depthwise:
        # Each group reads one channel: a weighted sum of the kernel's shifted views.
        taps = packed.weights                                          # (G, Mg, K)
        y = np.zeros((N, G, Mg, L), dtype=dtype)
        for k, index in enumerate(np.ndindex(*packed.kernel)):
            view = windows[(slice(None),) * (2 + nd) + index]          # (N, G, *out)
            y += view.reshape(N, G, 1, L) * taps[None, :, :, k, None]
        y = y.reshape(N, M, L)
    else:
        Cg = packed.in_per_group
        Kc = Cg * math.prod(packed.kernel)
        # (N, G, Cg, *out, *kernel) -> patches (N, G, L, Cg * K): the one copy of im2col.
        grouped = windows.reshape((N, G, Cg) + tuple(out) + packed.kernel)
        axes = (0, 1) + tuple(range(3, 3 + nd)) + (2,) + tuple(range(3 + nd, 3 + 2 * nd))
        cols = grouped.transpose(axes).reshape(N, G, L, Kc)
        if G == 1:
            y = np.matmul(cols.reshape(N * L, Kc), packed.weights[0])   # (N * L, M)
            if bias is not None:
                y += bias
            y = np.ascontiguousarray(y.reshape(N, L, M).transpose(0, 2, 1))
        else:
            y = np.matmul(cols, packed.weights)                         # (N, G, L, Mg)
            if bias is not None:
                y += bias.reshape(G, 1, Mg)
            y = np.ascontiguousarray(y.transpose(0, 1, 3, 2)).reshape(N, M, L)
        bias = None
    if bias is not None:
        y += bias.reshape(M, 1)
    return y.reshape((N, M) + tuple(out))
