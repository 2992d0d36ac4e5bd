"""The one place that decides what ``InferenceSession(..., precision=...)`` means.

"fp32" runs everything in the model's own float type. "bf16" and "int8" ask
the recurrent nodes to run on frozen modules with weights packed at that
precision (``module.freeze(precision=...)``); without that method in this
gru_cy they raise NotImplementedError. The other products (MatMul, Gemm,
Conv) run at the model's precision whatever is asked.
"""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16", "int8")


def check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    return precision


def recurrent_runner(module, precision, label):
    """What runs a recurrent node: the module itself (fp32) or its frozen form."""
    if precision == "fp32":
        return module
    freeze = getattr(module, "freeze", None)
    if freeze is None:
        raise NotImplementedError(
            f"{label}: precision={precision!r} needs frozen recurrent modules "
            f"({type(module).__name__}.freeze(precision=...)), which this gru_cy does not "
            f"have; use precision='fp32'")
    return freeze(precision=precision)
