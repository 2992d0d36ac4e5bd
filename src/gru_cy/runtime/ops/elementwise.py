"""Elementwise operators: arithmetic, comparisons, logic, activations, Cast, Clip, Where.

Binary and variadic operators broadcast as NumPy does (ONNX's multidirectional
broadcasting is the same rule). The unary and binary ones take ``out=``: the
planner hands them an input buffer nothing reads afterwards, so that a chain of
activations and bias additions allocates once.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from gru_cy.io.onnx.codec import ONNX_BFLOAT16, ONNX_NUMPY
from gru_cy.runtime._registry import ANY, FLOAT, INT, STRING, op


def _broadcast_size(args, attrs):
    return math.prod(np.broadcast_shapes(*(a.shape for a in args if a is not None)))


# -- binary arithmetic --------------------------------------------------------

def _divide(a, b, out=None):
    if a.dtype.kind in "iu":
        # Integer division truncates toward zero (C's rule, which ONNX Runtime follows);
        # a division by zero gives 0 instead of a fault. out is not used: a is read twice.
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.floor_divide(a, b)
            q += (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
        return q
    return np.divide(a, b, out=out)


def _power(a, b, out=None):
    # ONNX: the result has the base's type whatever the exponent's.
    if a.dtype.kind == "f":
        return np.power(a, b.astype(a.dtype, copy=False), out=out)
    with np.errstate(all="ignore"):  # integers through double, as std::pow, then truncated
        return np.power(a.astype(np.float64), b).astype(a.dtype)


def _mod(fmod):
    def mod(a, b, out=None):
        if fmod or a.dtype.kind == "f":
            return np.fmod(a, b, out=out)
        return np.remainder(a, b, out=out)
    return mod


_BINARY = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _divide,
           "Pow": _power, "Equal": np.equal, "Less": np.less, "Greater": np.greater,
           "LessOrEqual": np.less_equal, "GreaterOrEqual": np.greater_equal,
           "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}


@op(tuple(_BINARY), inputs=(2, 2), size=_broadcast_size, inplace=True)
def build_binary(ctx):
    return _BINARY[ctx.node.op_type]


@op("Mod", attrs={"fmod": (INT, 0)}, inputs=(2, 2), size=_broadcast_size, inplace=True)
def build_mod(ctx):
    if ctx["fmod"] not in (0, 1):
        raise ctx.corrupt(f"fmod={ctx['fmod']} (expected 0 or 1)")
    return _mod(ctx["fmod"])


@op("PRelu", inputs=(2, 2), size=_broadcast_size)
def build_prelu(ctx):
    def prelu(x, slope):
        return np.where(x < 0, x * slope, x)
    return prelu


_VARIADIC = {"Sum": np.add, "Max": np.maximum, "Min": np.minimum, "Mean": np.add}


@op(tuple(_VARIADIC), inputs=(1, ANY), size=_broadcast_size)
def build_variadic(ctx):
    fold = _VARIADIC[ctx.node.op_type]
    mean = ctx.node.op_type == "Mean"

    def variadic(*args):
        result = args[0]
        for other in args[1:]:
            result = fold(result, other)
        if mean and len(args) > 1:
            result /= result.dtype.type(len(args))
        return result
    return variadic


# -- unary --------------------------------------------------------------------

def _relu(x, out=None):
    return np.maximum(x, x.dtype.type(0), out=out)


def _softsign(x, out=None):
    return np.divide(x, np.abs(x) + x.dtype.type(1), out=out)


def _softplus(x, out=None):
    return np.logaddexp(x.dtype.type(0), x, out=out)


def _sign(x, out=None):
    return np.sign(x, out=out)


# NaN and infinities propagate as IEEE arithmetic says (NumPy may warn, as it does for
# every array computation).
_UNARY = {
    "Neg": np.negative, "Abs": np.absolute, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
    "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Round": np.rint,
    "Sign": _sign, "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Erf": special.erf,
    "Sigmoid": special.expit, "Tanh": np.tanh, "Relu": _relu, "Softsign": _softsign,
    "Softplus": _softplus, "Not": np.logical_not, "IsNaN": np.isnan,
}


@op(tuple(_UNARY), inplace=True)
def build_unary(ctx):
    return _UNARY[ctx.node.op_type]


@op("IsInf", attrs={"detect_negative": (INT, 1), "detect_positive": (INT, 1)})
def build_isinf(ctx):
    neg, pos = bool(ctx["detect_negative"]), bool(ctx["detect_positive"])

    def isinf(x):
        found = np.isinf(x)
        if not neg:
            found &= x > 0
        if not pos:
            found &= x < 0
        return found
    return isinf


@op("LeakyRelu", attrs={"alpha": (FLOAT, 0.01)})
def build_leaky_relu(ctx):
    alpha = ctx["alpha"]
    return lambda x: np.where(x < 0, x * x.dtype.type(alpha), x)


@op("Elu", attrs={"alpha": (FLOAT, 1.0)})
def build_elu(ctx):
    alpha = ctx["alpha"]

    def elu(x):
        t = x.dtype.type
        return np.where(x < 0, np.expm1(np.minimum(x, t(0))) * t(alpha), x)
    return elu


@op("Selu", attrs={"alpha": (FLOAT, 1.67326319217681884765625),
                   "gamma": (FLOAT, 1.05070102214813232421875)})
def build_selu(ctx):
    alpha, gamma = ctx["alpha"], ctx["gamma"]

    def selu(x):
        t = x.dtype.type
        return t(gamma) * np.where(x > 0, x, t(alpha) * np.expm1(np.minimum(x, t(0))))
    return selu


@op("Celu", attrs={"alpha": (FLOAT, 1.0)})
def build_celu(ctx):
    alpha = ctx["alpha"]

    def celu(x):
        t = x.dtype.type
        with np.errstate(all="ignore"):
            return np.maximum(x, t(0)) + np.minimum(t(0), t(alpha) * np.expm1(x / t(alpha)))
    return celu


@op("ThresholdedRelu", attrs={"alpha": (FLOAT, 1.0)})
def build_thresholded_relu(ctx):
    alpha = ctx["alpha"]
    return lambda x: np.where(x > x.dtype.type(alpha), x, x.dtype.type(0))


@op("HardSigmoid", attrs={"alpha": (FLOAT, 0.2), "beta": (FLOAT, 0.5)}, inplace=True)
def build_hard_sigmoid(ctx):
    alpha, beta = ctx["alpha"], ctx["beta"]

    def hard_sigmoid(x, out=None):
        t = x.dtype.type
        y = np.multiply(x, t(alpha), out=out)
        y += t(beta)
        return np.clip(y, t(0), t(1), out=y)
    return hard_sigmoid


@op("HardSwish", inplace=True)
def build_hard_swish(ctx):
    def hard_swish(x, out=None):
        t = x.dtype.type
        gate = np.clip(x * t(1 / 6) + t(0.5), t(0), t(1))
        return np.multiply(x, gate, out=out)
    return hard_swish


@op("Mish")
def build_mish(ctx):
    def mish(x):
        with np.errstate(all="ignore"):
            return x * np.tanh(np.logaddexp(x.dtype.type(0), x))
    return mish


_SQRT_HALF = 0.7071067811865476
_SQRT_2_OVER_PI = 0.7978845608028654


@op("Gelu", attrs={"approximate": (STRING, "none")})
def build_gelu(ctx):
    approximate = ctx["approximate"]
    if approximate not in ("none", "tanh"):
        raise ctx.unsupported(f"approximate={approximate!r}", "it computes 'none' and 'tanh'")

    def gelu(x):
        t = x.dtype.type
        if approximate == "tanh":
            inner = np.tanh(t(_SQRT_2_OVER_PI) * (x + t(0.044715) * x * x * x))
        else:
            inner = special.erf(x * t(_SQRT_HALF))
        inner += t(1)
        inner *= x
        inner *= t(0.5)
        return inner
    return gelu


# -- Clip, Cast, Where ----------------------------------------------------------

@op("Clip", attrs={"min": (FLOAT, None), "max": (FLOAT, None)}, inputs=(1, 3))
def build_clip(ctx):
    lo_attr, hi_attr = ctx["min"], ctx["max"]   # opsets before 11

    def clip(x, lo=None, hi=None):
        lo = lo_attr if lo is None else lo
        hi = hi_attr if hi is None else hi
        y = x
        if lo is not None:
            y = np.maximum(y, np.asarray(lo, x.dtype))
        if hi is not None:
            y = np.minimum(y, np.asarray(hi, x.dtype), out=None if y is x else y)
        return y
    return clip


def onnx_dtype(code, ctx, attr):
    """The NumPy type of an ONNX data type code (for Cast's ``to`` and similar)."""
    if code == ONNX_BFLOAT16 or code not in ONNX_NUMPY:
        raise ctx.unsupported(f"{attr}={code}", "it casts to float, double, float16, bool and "
                              "integer types")
    return np.dtype(ONNX_NUMPY[code]).newbyteorder("=")


def cast(x, dtype):
    """x as dtype; floats to integers truncate toward zero as ONNX does, NaN and out-of-range
    values give what the hardware gives (ONNX leaves them undefined)."""
    if x.dtype == dtype:
        return x
    if dtype.kind in "iu" and x.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            return x.astype(dtype)
    return x.astype(dtype)


@op("Cast", attrs={"to": (INT, None), "saturate": (INT, 1), "round_mode": (STRING, "up")},
    out=True)
def build_cast(ctx):
    if ctx["to"] is None:
        raise ctx.corrupt("Cast has no 'to' attribute")
    dtype = onnx_dtype(ctx["to"], ctx, "to")

    def cast_to(x, out=None):
        if out is not None and x.dtype != dtype:
            with np.errstate(invalid="ignore"):
                np.copyto(out, x, casting="unsafe")
            return out
        return cast(x, dtype)
    return cast_to


@op("CastLike", attrs={"saturate": (INT, 1), "round_mode": (STRING, "up")}, inputs=(2, 2))
def build_cast_like(ctx):
    return lambda x, like: cast(x, like.dtype)


@op("Where", inputs=(3, 3), size=_broadcast_size, out=True)
def build_where(ctx):
    def where(cond, x, y, out=None):
        if out is None or x.dtype != out.dtype or y.dtype != out.dtype:
            return np.where(cond, x, y)
        np.copyto(out, y)
        np.copyto(out, x, where=cond)
        return out
    return where
