"""The one place that decides what ``InferenceSession(..., precision=...)`` means.

"fp32" runs everything in the model's own float type (the recurrent nodes on
modules frozen at that type). "bf16" and "int8" ask the recurrent nodes to
run on frozen modules with weights packed at that precision (``module.freeze(precision=...)``); when the recurrent module classes
of this gru_cy have no such method, asking for them raises NotImplementedError
whatever the model holds. The other products (MatMul, Gemm, Conv) run at the
model's precision whatever is asked.
"""

from __future__ import annotations

PRECISIONS = ("fp32", "bf16", "int8")


def _recurrent_classes():
    from gru_cy.io.onnx.cells import ONNX_CELLS
    from gru_cy.nn.base import MODULES

    return [MODULES[kind] for kind in ONNX_CELLS]


def check_precision(precision):
    """precision itself, once this gru_cy can honour it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    if precision != "fp32":
        missing = [cls.__name__ for cls in _recurrent_classes() if not hasattr(cls, "freeze")]
        if missing:
            raise NotImplementedError(
                f"precision={precision!r} needs frozen recurrent modules "
                f"({', '.join(f'{name}.freeze(precision=...)' for name in missing)}), which "
                f"this gru_cy does not have; use precision='fp32'")
    return precision


def recurrent_runner(module, precision):
    """What runs a recurrent node: the module frozen at that precision. A
    session's weights never change, so even at "fp32" (the module's own type,
    the same bits as the module) the frozen form pays: it packs the weights
    once, where the module packs them at every call (a streaming model's
    one-step calls spent most of their time there)."""
    return module.freeze(precision=precision)
