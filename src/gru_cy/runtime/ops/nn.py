"""Products and layers: MatMul, Gemm, Conv, pooling, BatchNormalization, LayerNormalization,
InstanceNormalization.

Every product goes through ``runtime._products``; a constant operand (a
weight) is arranged there once, at load.
"""

from __future__ import annotations

import math

import numpy as np

from gru_cy.runtime import _products
from gru_cy.runtime._registry import FLOAT, INT, INTS, STRING, normalize_axis, op
from gru_cy.runtime._windows import pad_spatial, shifted_views, window_geometry


# -- MatMul, Gemm ---------------------------------------------------------------

def _matmul_size(args, attrs):
    a, b = args[0].shape, args[1].shape
    if not a or not b:
        raise ValueError("MatMul of a scalar")
    a = a if len(a) > 1 else (1,) + a
    b = b if len(b) > 1 else b + (1,)
    return math.prod(np.broadcast_shapes(a[:-2], b[:-2])) * a[-2] * b[-1]


@op("MatMul", inputs=(2, 2), heavy=True, size=_matmul_size, out=True)
def build_matmul(ctx):
    b = ctx.const(1)
    if b is not None and b.ndim >= 2:
        packed = _products.pack(b)
        return lambda a, _b, out=None: _products.matmul_packed(a, packed, out=out)
    return _products.matmul


def fused_matmul_bias(w, bias):
    """The kernel of MatMul(a, w) then Add(bias) for a stored w (K, N) and bias (N,) or (1,)."""
    packed = _products.pack(w)
    bias = np.array(bias, copy=True)
    return lambda a, _w, out=None: _products.matmul_packed(a, packed, bias, out=out)


def _gemm_size(args, attrs):
    a, b = args[0], args[1]
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"Gemm of {a.ndim}-D and {b.ndim}-D operands (both must be 2-D)")
    return a.shape[1 if attrs["transA"] else 0] * b.shape[0 if attrs["transB"] else 1]


@op("Gemm", attrs={"alpha": (FLOAT, 1.0), "beta": (FLOAT, 1.0), "transA": (INT, 0),
                   "transB": (INT, 0)}, inputs=(2, 3), heavy=True, size=_gemm_size, out=True)
def build_gemm(ctx):
    alpha, beta = ctx["alpha"], ctx["beta"]
    trans_a, trans_b = bool(ctx["transA"]), bool(ctx["transB"])
    b, c = ctx.const(1), ctx.const(2)
    if b is None or b.ndim != 2:
        return lambda a, b, c=None: _products.gemm(a, b, c, alpha, beta, trans_a, trans_b)
    w = b.T if trans_b else b
    packed = _products.pack(w if alpha == 1.0 else w * w.dtype.type(alpha))
    if c is not None and c.ndim > 2:
        raise ctx.corrupt(f"C has shape {c.shape}, expected at most 2-D")
    bias = None
    if c is not None and beta != 0.0:
        bias = np.array(c * c.dtype.type(beta) if beta != 1.0 else c, copy=True)
    if bias is not None or not ctx.has_input(2) or beta == 0.0:
        def gemm_packed(a, _b, _c=None, out=None):
            if a.ndim != 2:
                raise ValueError(f"{ctx.label}: A is {a.ndim}-D, expected 2-D")
            return _products.matmul_packed(a.T if trans_a else a, packed, bias, out=out)
        return gemm_packed

    def gemm_packed_c(a, _b, c=None, out=None):
        if a.ndim != 2:
            raise ValueError(f"{ctx.label}: A is {a.ndim}-D, expected 2-D")
        y = _products.matmul_packed(a.T if trans_a else a, packed)
        if c is not None and beta != 0.0:
            y += c if beta == 1.0 else c * c.dtype.type(beta)
        return y
    return gemm_packed_c


# -- windows: Conv and pooling ------------------------------------------------------

_AUTO_PAD = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _window_attrs(ctx, nd):
    """strides, dilations, explicit pads of an operator over nd spatial axes (checked)."""
    strides = ctx["strides"] or [1] * nd
    dilations = ctx.attrs.get("dilations") or [1] * nd
    pads = ctx["pads"] or [0] * (2 * nd)
    if ctx["auto_pad"] not in _AUTO_PAD:
        raise ctx.unsupported(f"auto_pad={ctx['auto_pad']!r}", f"it reads {', '.join(_AUTO_PAD)}")
    if len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd:
        raise ctx.corrupt(f"strides {strides}, dilations {dilations} and pads {pads} do not "
                          f"fit a {nd}-D kernel")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations) or any(p < 0 for p in pads):
        raise ctx.corrupt(f"strides {strides}, dilations {dilations}, pads {pads}: strides and "
                          f"dilations must be positive, pads not negative")
    return list(strides), list(dilations), list(pads)


def _conv_size(args, attrs):
    x, w = args[0], args[1]
    nd = w.ndim - 2
    if x.ndim != w.ndim or nd < 1:
        raise ValueError(f"Conv of a {x.ndim}-D input with a {w.ndim}-D weight")
    out, _ = window_geometry(x.shape[2:], w.shape[2:], attrs["strides"] or [1] * nd,
                             attrs["dilations"] or [1] * nd, attrs["pads"] or [0] * (2 * nd),
                             attrs["auto_pad"])
    L = math.prod(max(o, 0) for o in out)
    return max(x.shape[0] * w.shape[0] * L, x.shape[0] * L * x.shape[1] * math.prod(w.shape[2:]))


@op("Conv", attrs={"auto_pad": (STRING, "NOTSET"), "dilations": (INTS, None),
                   "group": (INT, 1), "kernel_shape": (INTS, None), "pads": (INTS, None),
                   "strides": (INTS, None)}, inputs=(2, 3), heavy=True, size=_conv_size)
def build_conv(ctx):
    group = ctx["group"]
    w_const, b_const = ctx.const(1), ctx.const(2)
    if group < 1:
        raise ctx.corrupt(f"group={group}")
    if w_const is None:
        raise ctx.unsupported("a weight computed at run time", "W must be stored in the file")
    if w_const.ndim < 3:
        raise ctx.corrupt(f"W has shape {w_const.shape}, expected (M, C/group, *kernel)")
    nd = w_const.ndim - 2
    M = w_const.shape[0]
    if M % group:
        raise ctx.corrupt(f"W has {M} output channels, not a multiple of group={group}")
    if ctx["kernel_shape"] is not None and list(ctx["kernel_shape"]) != list(w_const.shape[2:]):
        raise ctx.corrupt(f"kernel_shape {ctx['kernel_shape']} but W has shape {w_const.shape}")
    if b_const is not None and b_const.shape != (M,):
        raise ctx.corrupt(f"B has shape {b_const.shape}, expected ({M},)")
    strides, dilations, pads = _window_attrs(ctx, nd)
    auto_pad = ctx["auto_pad"]
    packed = _products.pack_conv(w_const, group)
    C = w_const.shape[1] * group
    strides, dilations = tuple(strides), tuple(dilations)
    fixed_pads = tuple(pads) if auto_pad in ("NOTSET", "VALID") else None
    if auto_pad == "VALID":
        fixed_pads = (0,) * (2 * nd)

    def conv(x, _w, b=None):
        if x.ndim != nd + 2 or x.shape[1] != C:
            raise ValueError(f"{ctx.label}: input of shape {x.shape}, expected (N, {C}, "
                             f"{nd} spatial axes)")
        p = fixed_pads
        if p is None:
            p = tuple(window_geometry(x.shape[2:], w_const.shape[2:], strides, dilations,
                                      pads, auto_pad)[1])
        return _products.conv(x, packed, strides, dilations, p, b)
    return conv


def _pool_size(args, attrs):
    x = args[0]
    nd = x.ndim - 2
    kernel = attrs["kernel_shape"] or []
    if nd < 1 or len(kernel) != nd:
        raise ValueError(f"pooling a {x.ndim}-D input with kernel {kernel}")
    out, _ = window_geometry(x.shape[2:], kernel, attrs["strides"] or [1] * nd,
                             attrs.get("dilations") or [1] * nd,
                             attrs["pads"] or [0] * (2 * nd), attrs["auto_pad"],
                             bool(attrs["ceil_mode"]))
    return x.shape[0] * x.shape[1] * math.prod(max(o, 0) for o in out) * math.prod(kernel)


def _build_pool(ctx, kind):
    kernel = ctx["kernel_shape"]
    if not kernel or any(k < 1 for k in kernel):
        raise ctx.corrupt(f"kernel_shape {kernel}")
    nd = len(kernel)
    strides, dilations, pads = _window_attrs(ctx, nd)
    auto_pad, ceil_mode = ctx["auto_pad"], bool(ctx["ceil_mode"])
    if ctx.attrs.get("storage_order", 0) not in (0, 1):
        raise ctx.corrupt(f"storage_order={ctx['storage_order']}")
    if kind == "max" and len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        raise ctx.unsupported("the Indices output", "it computes the pooled values only")
    count_pad = bool(ctx.attrs.get("count_include_pad", 0))
    n_out = len(ctx.node.outputs)
    plans = {}

    def plan(shape):
        """(pads begin + end, with the extra room of ceil_mode windows; output sizes; the
        views of each kernel position; for averages, how many elements each window holds)."""
        out, p = window_geometry(shape[2:], kernel, strides, dilations, pads, auto_pad,
                                 ceil_mode)
        if any(o <= 0 for o in out):
            raise ValueError(f"{ctx.label}: the window {kernel} does not fit the input "
                             f"{list(shape[2:])}")
        room = [max((out[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
                    - shape[2 + i] - p[i], p[i + nd]) for i in range(nd)]
        padded = tuple(p[:nd]) + tuple(room)
        views = shifted_views(kernel, strides, dilations, out)
        count = None
        if kind == "average":
            # The input's elements, plus the explicit padding with count_include_pad; never
            # the extra room a ceil_mode window reaches into.
            ones = np.ones((1, 1) + shape[2:], np.float64)
            if count_pad:
                ones = pad_spatial(ones, list(p), fill=1)
                ones = pad_spatial(ones, [0] * nd + [room[i] - p[i + nd] for i in range(nd)])
            else:
                ones = pad_spatial(ones, padded)
            count = sum(ones[v] for v in views)
        if len(plans) > 64:
            plans.clear()
        plans[shape] = (padded, tuple(out), views, count)
        return plans[shape]

    def pool(x):
        if x.ndim != nd + 2:
            raise ValueError(f"{ctx.label}: input of shape {x.shape}, expected (N, C, "
                             f"{nd} spatial axes)")
        padded, out, views, count = plans.get(x.shape) or plan(x.shape)
        if kind == "max":
            fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
            xp = pad_spatial(x, padded, fill=fill)
            y = xp[views[0]].copy()
            for v in views[1:]:
                np.maximum(y, xp[v], out=y)
        else:
            xp = pad_spatial(x, padded)
            y = xp[views[0]].copy()
            for v in views[1:]:
                y += xp[v]
            y /= count.astype(y.dtype)
        return y if n_out == 1 else (y, None)
    return pool


_POOL_ATTRS = {"auto_pad": (STRING, "NOTSET"), "ceil_mode": (INT, 0), "dilations": (INTS, None),
               "kernel_shape": (INTS, None), "pads": (INTS, None), "strides": (INTS, None)}


@op("MaxPool", attrs=dict(_POOL_ATTRS, storage_order=(INT, 0)), outputs=(1, 2), heavy=True,
    size=_pool_size)
def build_max_pool(ctx):
    return _build_pool(ctx, "max")


@op("AveragePool", attrs=dict(_POOL_ATTRS, count_include_pad=(INT, 0)), heavy=True,
    size=_pool_size)
def build_average_pool(ctx):
    return _build_pool(ctx, "average")


@op(("GlobalAveragePool", "GlobalMaxPool"))
def build_global_pool(ctx):
    reduce = np.mean if ctx.node.op_type == "GlobalAveragePool" else np.max

    def global_pool(x):
        if x.ndim < 3:
            raise ValueError(f"{ctx.label}: input of shape {x.shape}, expected (N, C, ...)")
        return reduce(x, axis=tuple(range(2, x.ndim)), keepdims=True)
    return global_pool


# -- normalisation ------------------------------------------------------------------

def _per_channel(v, ndim):
    """A (C,) vector shaped to broadcast over axis 1 of an ndim-D tensor."""
    return v.reshape((-1,) + (1,) * (ndim - 2)) if ndim > 2 else v


@op("BatchNormalization", attrs={"epsilon": (FLOAT, 1e-5), "momentum": (FLOAT, 0.9),
                                 "training_mode": (INT, 0), "spatial": (INT, 1)},
    inputs=(5, 5), outputs=(1, 3), inplace=True)
def build_batch_norm(ctx):
    if ctx["training_mode"]:
        raise ctx.unsupported("training_mode=1", "inference only")
    if ctx["spatial"] != 1:
        raise ctx.unsupported(f"spatial={ctx['spatial']}", "it normalises per channel")
    if any(ctx.node.outputs[1:]):
        raise ctx.unsupported("the running mean and variance outputs", "inference only")
    eps = ctx["epsilon"]

    def coefficients(scale, bias, mean, var):
        # y = (x - mean) / sqrt(var + eps) * scale + bias = x * a + b
        a = scale / np.sqrt(var + var.dtype.type(eps))
        return a, bias - mean * a

    consts = [ctx.const(i) for i in range(1, 5)]
    fixed = coefficients(*consts) if all(c is not None for c in consts) else None

    def batch_norm(x, scale, bias, mean, var, out=None):
        if x.ndim < 2:
            raise ValueError(f"{ctx.label}: input of shape {x.shape}, expected (N, C, ...)")
        a, b = fixed if fixed is not None else coefficients(scale, bias, mean, var)
        y = np.multiply(x, _per_channel(a, x.ndim), out=out)
        y += _per_channel(b, x.ndim)
        return y
    return batch_norm


@op("LayerNormalization", attrs={"axis": (INT, -1), "epsilon": (FLOAT, 1e-5),
                                 "stash_type": (INT, 1)}, inputs=(2, 3), outputs=(1, 3))
def build_layer_norm(ctx):
    axis, eps = ctx["axis"], ctx["epsilon"]
    if ctx["stash_type"] not in (1, 11):
        raise ctx.unsupported(f"stash_type={ctx['stash_type']}", "it computes in float or double")
    stash = np.float64 if ctx["stash_type"] == 11 else np.float32
    n_out = len(ctx.node.outputs)

    def layer_norm(x, scale, bias=None):
        a = normalize_axis(axis, x.ndim, ctx.label)
        axes = tuple(range(a, x.ndim))
        xs = x.astype(stash, copy=False) if x.dtype.itemsize < np.dtype(stash).itemsize \
            else x
        mean = np.mean(xs, axis=axes, keepdims=True)
        centred = xs - mean
        var = np.mean(np.square(centred), axis=axes, keepdims=True)
        inv = 1.0 / np.sqrt(var + var.dtype.type(eps))
        y = centred
        y *= inv
        y = y.astype(x.dtype, copy=False)
        y *= scale
        if bias is not None:
            y += bias
        return (y, mean.astype(stash), inv.astype(stash))[:n_out] if n_out > 1 else y
    return layer_norm


@op("InstanceNormalization", attrs={"epsilon": (FLOAT, 1e-5)}, inputs=(3, 3))
def build_instance_norm(ctx):
    eps = ctx["epsilon"]

    def instance_norm(x, scale, bias):
        if x.ndim < 3:
            raise ValueError(f"{ctx.label}: input of shape {x.shape}, expected (N, C, ...)")
        axes = tuple(range(2, x.ndim))
        mean = np.mean(x, axis=axes, keepdims=True)
        centred = x - mean
        var = np.mean(np.square(centred), axis=axes, keepdims=True)
        centred /= np.sqrt(var + var.dtype.type(eps))
        centred *= _per_channel(scale, x.ndim)
        centred += _per_channel(bias, x.ndim)
        return centred
    return instance_norm

