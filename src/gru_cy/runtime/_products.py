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

from gru_cy.runtime._windows import conv_output_shape, pad_spatial, shifted_views

__all__ = ["Packed", "PackedConv", "pack", "matmul_packed", "matmul", "gemm", "pack_conv",
           "conv"]


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
    if b.ndim == 2 and a.ndim >= 2:
        # One product over every row (np.dot: straight to the BLAS) instead of NumPy's
        # loop over the leading axes.
        rows = a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a
        if rows.shape[1] != b.shape[0]:
            raise ValueError(f"matmul: operands of shapes {a.shape} and {b.shape}")
        y = np.dot(rows, b, out=None if out is None else out.reshape(rows.shape[0], -1))
        y = y.reshape(a.shape[:-1] + (b.shape[1],)) if a.ndim > 2 else y
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
    """A convolution's weights (M, C/group, *kernel), arranged once.

    Patches are taken channels-last, so the weights become per group the matrix
    (K * C/group, M/group), rows ordered (kernel position, channel); a group that
    reads one channel (depthwise) keeps its taps (M/group, K).
    """

    __slots__ = ("weights", "group", "kernel", "out_channels", "in_per_group", "depthwise",
                 "views")

    def __init__(self, w, group):
        self.views = {}   # the kernel positions' slices, by input shape and geometry
        M, Cg = w.shape[:2]
        self.kernel = tuple(int(k) for k in w.shape[2:])
        self.group, self.out_channels, self.in_per_group = group, M, Cg
        K = math.prod(self.kernel)
        Mg = M // group
        self.depthwise = Cg == 1 and group > 1
        if self.depthwise:
            taps = np.array(w.reshape(group, Mg, K), order="C", copy=True)
        else:
            # (G, Mg, Cg, *kernel) -> (G, Mg, *kernel, Cg) -> (G, K * Cg, Mg)
            grouped = np.moveaxis(w.reshape((group, Mg, Cg) + self.kernel), 2, -1)
            taps = np.array(grouped.reshape(group, Mg, K * Cg).transpose(0, 2, 1), order="C",
                            copy=True)
        taps.setflags(write=False)
        self.weights = taps


def patch_positions(spatial, kernel, strides, dilations, pads, out):
    """(padded shape, index of the input inside it, the flat positions (L * K,) each output's
    patch reads in the padded input, output-major then kernel-position-major)."""
    nd = len(kernel)
    padded = tuple(spatial[i] + pads[i] + pads[i + nd] for i in range(nd))
    inner = tuple(slice(pads[i], pads[i] + spatial[i]) for i in range(nd))
    grids = np.meshgrid(*[np.arange(o) for o in out], *[np.arange(k) for k in kernel],
                        indexing="ij")
    coords = tuple(grids[i] * strides[i] + grids[nd + i] * dilations[i] for i in range(nd))
    return padded, inner, np.ravel_multi_index(coords, padded).reshape(-1)


def pack_conv(w, group):
    """Arrange a constant convolution weight (M, C/group, *kernel) once."""
    return PackedConv(w, int(group))


def conv(x, packed, strides, dilations, pads, bias=None):
    """Conv of x (N, C, *spatial) with packed weights: (N, M, *out).

    strides, dilations: tuples per spatial axis; pads (begin per axis..., end per
    axis...) of zeros; bias (M,) or None.
    """
    key = (x.shape, strides, dilations, pads)
    geometry = packed.views.get(key)
    if geometry is None:
        out = conv_output_shape(x.shape[2:], packed.kernel, strides, dilations, pads)
        if any(o <= 0 for o in out):
            raise ValueError(f"the kernel {list(packed.kernel)} (dilations {list(dilations)}) "
                             f"is larger than the padded input {list(x.shape[2:])}")
        # One short sequence: its patches gathered at once (the flat positions they read in
        # the padded input, channels-last), one product.
        columns = None
        if x.shape[0] == 1 and packed.group == 1 and math.prod(out) <= 64:
            columns = patch_positions(x.shape[2:], packed.kernel, strides, dilations, pads, out)
        if len(packed.views) > 64:   # many input shapes: start over
            packed.views.clear()
        geometry = packed.views[key] = (tuple(out), shifted_views(
            packed.kernel, strides, dilations, out, 2 if packed.depthwise else 1), columns)
    out, views, columns = geometry
    N = x.shape[0]
    G, M = packed.group, packed.out_channels
    Mg = M // G
    L = math.prod(out)
    dtype = np.result_type(x.dtype, packed.weights.dtype)
    if packed.depthwise:
        # Each group reads one channel: a weighted sum of the kernel's shifted views.
        xp = pad_spatial(x, pads)
        taps = packed.weights                                          # (G, Mg, K)
        y = np.zeros((N, G, Mg, L), dtype=dtype)
        for k, index in enumerate(views):
            y += xp[index].reshape(N, G, 1, L) * taps[None, :, :, k, None]
        y = y.reshape(N, M, L)
        if bias is not None:
            y += bias.reshape(M, 1)
        return y.reshape((N, M) + out)
    C = x.shape[1]
    Cg = packed.in_per_group
    K = math.prod(packed.kernel)
    if columns is not None:
        padded_shape, inner, positions = columns
        flat = np.zeros(padded_shape + (C,), dtype=x.dtype)
        flat[inner] = x[0].transpose(tuple(range(1, x.ndim - 1)) + (0,))
        cols = flat.reshape(-1, C)[positions].reshape(L, K * C)
        y = np.dot(cols, packed.weights[0])                             # (L, M)
        if bias is not None:
            y += bias
        return y.T.reshape((1, M) + out)
    # Patches channels-last: x as (N, *padded, C), each patch (*kernel, C) one row
    # (im2col: the kernel's shifted views side by side, one copy).
    xt = pad_spatial(x, pads, channels_last=True)
    if G == 1:
        cols = (np.concatenate([xt[index] for index in views], axis=-1) if K > 1
                else xt[views[0]]).reshape(N * L, K * C)
        y = np.dot(cols, packed.weights[0])                             # (N * L, M)
        if bias is not None:
            y += bias
        y = np.ascontiguousarray(y.reshape(N, L, M).transpose(0, 2, 1))
    else:
        grouped = np.stack([xt[index] for index in views], axis=-2).reshape(N, L, K, G, Cg)
        cols = grouped.transpose(3, 0, 1, 2, 4).reshape(G, N * L, K * Cg)
        y = np.matmul(cols, packed.weights)                             # (G, N * L, Mg)
        if bias is not None:
            y += bias.reshape(G, 1, Mg)
        y = np.ascontiguousarray(y.reshape(G, N, L, Mg).transpose(1, 0, 3, 2))
    return y.reshape((N, M) + out)
