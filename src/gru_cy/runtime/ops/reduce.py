"""Reductions, arg-reductions, Softmax, LogSoftmax, Hardmax, TopK."""

from __future__ import annotations

import numpy as np

from gru_cy.runtime._registry import INT, INTS, as_ints, normalize_axis, op


def _sum_square(x, axis, keepdims):
    return np.sum(x * x, axis=axis, keepdims=keepdims)


def _l1(x, axis, keepdims):
    return np.sum(np.abs(x), axis=axis, keepdims=keepdims)


def _l2(x, axis, keepdims):
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


def _log_sum(x, axis, keepdims):
    with np.errstate(divide="ignore"):
        return np.log(np.sum(x, axis=axis, keepdims=keepdims))


def _log_sum_exp(x, axis, keepdims):
    peak = np.max(x, axis=axis, keepdims=True) if x.size else np.zeros((), x.dtype)
    peak = np.where(np.isfinite(peak), peak, 0).astype(x.dtype)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


def _mean(x, axis, keepdims):
    if x.dtype.kind == "f":
        return np.mean(x, axis=axis, keepdims=keepdims, dtype=x.dtype)
    return np.mean(x, axis=axis, keepdims=keepdims, dtype=np.float64).astype(x.dtype)


_REDUCE = {"ReduceSum": np.add.reduce, "ReduceMean": _mean, "ReduceMax": np.maximum.reduce,
           "ReduceMin": np.minimum.reduce, "ReduceProd": np.multiply.reduce,
           "ReduceSumSquare": _sum_square, "ReduceL1": _l1, "ReduceL2": _l2,
           "ReduceLogSum": _log_sum, "ReduceLogSumExp": _log_sum_exp}


@op(tuple(_REDUCE), attrs={"axes": (INTS, None), "keepdims": (INT, 1),
                           "noop_with_empty_axes": (INT, 0)}, inputs=(1, 2), shape_inputs=(1,))
def build_reduce(ctx):
    fn = _REDUCE[ctx.node.op_type]
    attr_axes, keepdims, noop = ctx["axes"], bool(ctx["keepdims"]), ctx["noop_with_empty_axes"]
    label = ctx.label

    def reduce(x, axes=None):
        axes = attr_axes if axes is None else as_ints(axes, f"{label}: axes")
        if not axes:
            if noop:
                return x
            axis = None
        else:
            axis = tuple(normalize_axis(a, x.ndim, label) for a in axes)
            if len(set(axis)) != len(axis):
                raise ValueError(f"{label}: repeated axes {axes}")
        if x.size == 0 and fn in (np.maximum.reduce, np.minimum.reduce):
            raise ValueError(f"{label}: {ctx.node.op_type} of an empty tensor")
        return np.asarray(fn(x, axis=axis, keepdims=keepdims))
    return reduce


@op(("ArgMax", "ArgMin"), attrs={"axis": (INT, 0), "keepdims": (INT, 1),
                                 "select_last_index": (INT, 0)})
def build_arg(ctx):
    axis, keepdims, last = ctx["axis"], bool(ctx["keepdims"]), bool(ctx["select_last_index"])
    pick = np.argmax if ctx.node.op_type == "ArgMax" else np.argmin

    def arg(x):
        a = normalize_axis(axis, x.ndim, ctx.label)
        if x.shape[a] == 0:
            raise ValueError(f"{ctx.label}: {ctx.node.op_type} over an empty axis")
        if last:
            index = x.shape[a] - 1 - pick(np.flip(x, a), axis=a, keepdims=keepdims)
        else:
            index = pick(x, axis=a, keepdims=keepdims)
        return np.asarray(index, dtype=np.int64)
    return arg


def _softmax_axis(ctx, x):
    """(array to normalise over its last axis, shape to give back) for Softmax and kin.

    Before opset 13 the input is seen as 2-D: the axes before ``axis`` and from it on.
    """
    axis = ctx["axis"]
    if ctx.opset < 13:
        a = normalize_axis(1 if axis is None else axis, x.ndim, ctx.label) if x.ndim else 0
        return x.reshape(int(np.prod(x.shape[:a])), -1) if x.size else x, -1
    return x, normalize_axis(-1 if axis is None else axis, x.ndim, ctx.label)


# Below this, a sum of exponentials shifted by the tensor's maximum has lost too much of
# its row's precision: that row is shifted by its own maximum instead.
_TINY_SUM = 1e-30


def _shifted_exp(x, axis, out):
    """(exp(x - c), c, sum over axis) with c the maximum of the whole tensor when that keeps
    every row's sum of exponentials well inside float range, else each row's maximum.

    ONNX's Softmax is invariant to the shift; the whole tensor's maximum is one vectorised
    reduction where a maximum per short row is a slow loop in NumPy (with few rows, the
    maximum per row costs less than the check). One row of float32 or float64 (a streaming
    call) needs no shift when its exponentials stay well inside float range: the values are
    capped at 80 first, and a sum outside (1e-30, 1e30) means they did not.
    """
    if x.size == x.shape[axis] and x.dtype.kind == "f" and x.dtype.itemsize >= 4:
        e = np.minimum(x, x.dtype.type(80), out=out)
        np.exp(e, out=e)
        total = np.add.reduce(e, axis=axis, keepdims=True)
        if 1e-30 < total.item() < 1e30:
            return e, 0, total
    if x.size > 16 * x.shape[axis]:
        peak = np.maximum.reduce(x, axis=None)
        if np.isfinite(peak):
            e = np.subtract(x, peak, out=out)
            np.exp(e, out=e)
            total = np.add.reduce(e, axis=axis, keepdims=True)
            if np.minimum.reduce(total, axis=None) > _TINY_SUM:
                return e, peak, total
    peak = np.maximum.reduce(x, axis=axis, keepdims=True)
    e = np.subtract(x, peak, out=out)
    np.exp(e, out=e)
    return e, peak, np.add.reduce(e, axis=axis, keepdims=True)


def softmax(x, axis, out=None):
    """exp(x - c) / sum over axis (c a shift the result does not depend on)."""
    e, _, total = _shifted_exp(x, axis, out)
    e /= total
    return e


def log_softmax(x, axis, out=None):
    """x - c - log(sum over axis of exp(x - c))."""
    e, peak, total = _shifted_exp(x, axis, out)
    np.log(total, out=total)
    total += peak
    return np.subtract(x, total, out=e)


def hardmax(x, axis, out=None):
    y = np.zeros_like(x)
    index = np.expand_dims(np.argmax(x, axis=axis), axis)
    np.put_along_axis(y, index, 1, axis=axis)
    return y


_NORMALISERS = {"Softmax": softmax, "LogSoftmax": log_softmax, "Hardmax": hardmax}


@op(tuple(_NORMALISERS), attrs={"axis": (INT, None)}, out=True)
def build_softmax(ctx):
    fn = _NORMALISERS[ctx.node.op_type]
    if ctx.opset >= 13:
        axis = -1 if ctx["axis"] is None else ctx["axis"]

        def normalise(x, out=None):
            if x.size == 0 or x.dtype.kind != "f":
                if x.dtype.kind != "f":
                    raise ValueError(f"{ctx.label}: input of type {x.dtype}, expected floats")
                return x.copy()
            return fn(x, normalize_axis(axis, x.ndim, ctx.label), out)
        return normalise

    def normalise_2d(x, out=None):
        flat, a = _softmax_axis(ctx, x)
        if x.size == 0 or x.dtype.kind != "f":
            if x.dtype.kind != "f":
                raise ValueError(f"{ctx.label}: input of type {x.dtype}, expected floats")
            return x.copy()
        return fn(flat, a, None if out is None else out.reshape(flat.shape)).reshape(x.shape)
    return normalise_2d


@op("TopK", attrs={"axis": (INT, -1), "largest": (INT, 1), "sorted": (INT, 1)}, inputs=(2, 2),
    outputs=(2, 2), shape_inputs=(1,))
def build_topk(ctx):
    axis, largest = ctx["axis"], bool(ctx["largest"])

    def topk(x, k):
        k = as_ints(k, f"{ctx.label}: K")
        a = normalize_axis(axis, x.ndim, ctx.label)
        if len(k) != 1 or not 0 <= k[0] <= x.shape[a]:
            raise ValueError(f"{ctx.label}: K={k} for an axis of {x.shape[a]}")
        # A stable sort keeps the lower index first among equal values, as ONNX asks.
        order = np.argsort(-x if largest else x, axis=a, kind="stable")
        index = np.take(order, np.arange(k[0]), axis=a).astype(np.int64)
        return np.take_along_axis(x, index, axis=a), index
    return topk
