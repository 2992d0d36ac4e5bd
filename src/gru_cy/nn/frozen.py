"""Frozen inference: a module's weights copied and packed once, at float32
(the module's own float type), bfloat16 or int8.

``m.freeze(precision)`` returns an inference-only object with the module's
calls (``__call__(x, hx=None, lengths=None)`` and ``step(x_t, hx=None)``
for the recurrent modules, ``__call__(x_t, hx=None)`` for the cells,
``__call__(x)`` for Linear), their argument
checks, shapes and semantics (batch_first, unbatched input, lengths,
bidirectional and stacked layers). Later changes to the module do not
reach it; it is picklable and may be called from several threads at once.

- ``"fp32"``: the same bits as the module (``m(x)``, ``m.step``): the same
  products on the same panels, packed once instead of at every call, which
  is what small calls (``step()``, T = 1) gain.
- ``"bf16"``: every product on weights rounded to bfloat16 (nearest, ties
  to even) with the activations rounded likewise per product, float32
  accumulation (AVX512_BF16's vdpbf16ps, or its exact emulation); gates,
  states and biases stay float32.
- ``"int8"``: every product on int8 weights with a scale per output (row of
  the weight, symmetric), the activations quantised per row at every
  product (a row of x for the input product, each sequence's state at each
  step for the recurrent one), exact integer sums: the same bits on every
  CPU and instruction set; gates, states and biases stay float32.

bf16 and int8 take float32 modules and products of at most
``kernels._core.Q_MAX_K`` inputs; kernels/rc_qgemm.h states the arithmetic
exactly. docs/precision.md measures speed and error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import MODULES, aligned_copy, shape_str

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

PRECISIONS = ("fp32", "bf16", "int8")

# What a frozen module keeps of the module's attributes: the configuration,
# not the parameters, gradients or caches.
_DROPPED = frozenset(("params", "grads", "_grad_lock", "_lean", "_shapes", "_names", "_sig",
                      "_weights"))


def check_precision(precision: Any, dtype: np.dtype[Any], what: str) -> str:
    """precision, checked against the module's dtype."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision must be one of 'fp32', 'bf16' or 'int8', got {precision!r}")
    if precision != "fp32" and dtype != np.float32:
        raise ValueError(f"precision={precision!r} needs a float32 {what}, got dtype={dtype}; "
                         f"freeze it with precision='fp32' or build it with dtype=np.float32")
    return precision


def _freeze_array(a: NDArray[Any] | None, precision: str, name: str) -> Any:
    """A weight matrix as a PackedWeight, a bias as a private aligned copy."""
    if a is None:
        return None
    if a.ndim == 2:
        if precision != "fp32" and a.shape[1] > _core.Q_MAX_K:
            raise ValueError(
                f"precision={precision!r} takes at most {_core.Q_MAX_K} inputs per product; "
                f"{name} has shape {shape_str(a.shape)}")
        return _core.PackedWeight(np.ascontiguousarray(a), precision)
    return aligned_copy(np.ascontiguousarray(a))


class _Frozen:
    """What the frozen recurrent modules and cells share: a private instance
    of the module's class without parameters (``_spec``) whose calls run the
    frozen weights, the configuration read as attributes, pickling."""

    precision: str
    _cls: type
    _attrs: dict[str, Any]
    _weights: Any
    _spec: Any

    def _setup(self, cls: type, attrs: dict[str, Any], weights: Any) -> None:
        raise NotImplementedError

    def _bind(self, cls: type, attrs: dict[str, Any], weights: Any) -> Any:
        """The private instance (its params and grads empty), remembered with
        what made it."""
        spec: Any = object.__new__(cls)
        spec.__dict__.update(attrs)
        spec.__dict__["params"] = {}
        spec.__dict__["grads"] = {}
        self._cls = cls
        self._attrs = attrs
        self._weights = weights
        self._spec = spec
        return spec

    def __getattr__(self, name: str) -> Any:
        # The configuration (input_size, hidden_size, batch_first, ...).
        if name.startswith("_") or name in ("params", "grads"):
            raise AttributeError(name)
        try:
            return self._attrs[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}") from None

    @property
    def module_type(self) -> type:
        """The class of the module it was frozen from."""
        return self._cls

    @property
    def dtype(self) -> np.dtype[Any]:
        """The type of its inputs and results: the module's."""
        return self._spec.dtype

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._spec!r}, precision={self.precision!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"cls": self._cls, "attrs": self._attrs, "precision": self.precision,
                "weights": self._weights}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.precision = state["precision"]
        self._setup(state["cls"], state["attrs"], state["weights"])


class FrozenRecurrent(_Frozen):
    """A recurrent module (GRU, LSTM, RNN, Jordan) frozen for inference at
    one precision (see the module docstring). Made by ``module.freeze``.

    ``frozen(x, hx=None, lengths=None) -> (out, state)`` and
    ``frozen.step(x_t, hx=None) -> (y_t, state)`` are the module's
    ``__call__`` and ``step`` (the Jordan network's state y0 / y is hx
    here), with its configuration (``input_size``, ``hidden_size``,
    ``batch_first``, ...) readable as attributes.
    """

    def __init__(self, module: Any, precision: str = "fp32") -> None:
        self.precision = check_precision(precision, module.dtype, type(module).__name__)
        names = module._layer_names()
        weights = module._weights()
        frozen = [[tuple(_freeze_array(a, precision, n) for a, n in zip(arrays, row_names))
                   for arrays, row_names in zip(row, name_row)]
                  for row, name_row in zip(weights, names)]
        attrs = {k: v for k, v in module.__dict__.items() if k not in _DROPPED}
        self._setup(type(module), attrs, frozen)

    def _setup(self, cls: type, attrs: dict[str, Any], weights: list[Any]) -> None:
        # The module's own driver (checks, layouts, lengths, layers and
        # directions) on a private instance without parameters, whose kernel
        # calls get the packed weights.
        spec = self._bind(cls, attrs, weights)
        spec.__dict__["_weights"] = lambda: weights
        if not spec.bidirectional and len(weights) <= 64:
            lean = spec._lean_obj()
            lean.use_frozen(_core.FrozenLayers(
                tuple(spec._six(row[0]) for row in weights), spec._cell, spec._core_P(),
                spec.input_size, spec.hidden_size, spec.dtype.name))

    # -- the module's calls ----------------------------------------------------

    def __call__(self, x: ArrayLike, hx: Any = None,
                 lengths: ArrayLike | None = None) -> tuple[NDArray[Any], Any]:
        """Inference as the module's ``__call__``: (out, state)."""
        return self._spec(x, hx, lengths)

    forward = __call__

    def step(self, x_t: ArrayLike, hx: Any = None) -> tuple[NDArray[Any], Any]:
        """One time step as the module's ``step``: (y_t, state)."""
        return self._spec.step(x_t, hx)

    @property
    def nbytes(self) -> int:
        """Bytes of the packed weights and the biases."""
        return sum(0 if a is None else a.nbytes
                   for row in self._weights for arrays in row for a in arrays)


_NO_PARAMS: dict[str, Any] = {}


class FrozenCell(_Frozen):
    """A one-step cell (GRUCell, LSTMCell, RNNCell) frozen for inference at
    one precision (see the module docstring). Made by ``cell.freeze``.

    ``frozen(x_t, hx=None)`` is the cell's ``__call__``: the next state h
    ((h, c) for the LSTM cell), with the cell's checks and shapes
    (``input_size``, ``hidden_size``, ``bias`` readable as attributes). At
    "fp32" the same bits as the cell; a call skips the packing of the
    weights that the cell does at each call, which is most of a call's time
    at small batches.
    """

    def __init__(self, cell: Any, precision: str = "fp32") -> None:
        self.precision = check_precision(precision, cell.dtype, type(cell).__name__)
        weights = tuple(None if n is None else _freeze_array(cell._param(n), precision, n)
                        for n in cell._names())
        attrs = {k: v for k, v in cell.__dict__.items() if k not in _DROPPED}
        self._setup(type(cell), attrs, weights)

    def _setup(self, cls: type, attrs: dict[str, Any], weights: tuple[Any, ...]) -> None:
        # The cell's own calls on a private instance without parameters: the
        # lean path runs the frozen weights, the general path (conversions,
        # errors) looks them up by name.
        spec = self._bind(cls, attrs, weights)
        by_name = {n: w for n, w in zip(spec._names(), weights) if n is not None}
        spec.__dict__["_param"] = by_name.__getitem__
        lean = spec._lean_cached()
        lean.use_frozen(_core.FrozenLayers(
            (spec._six(weights),), spec._cell, spec._core_P(), spec.input_size,
            spec.hidden_size, spec.dtype.name))
        # The lean path straight from __call__ (one Python frame less; the
        # cell's own __call__ does the same).
        self._lean = lean
        self._pair = spec._state_count == 2

    def __call__(self, x_t: ArrayLike, hx: Any = None) -> Any:
        """The next state, as the cell's ``__call__``."""
        if not self._pair:
            if type(hx) is np.ndarray:
                result = self._lean.step(x_t, hx[None], _NO_PARAMS)
                if result is not None:
                    return result[0]
        elif (type(hx) is tuple and len(hx) == 2 and type(hx[0]) is np.ndarray
                and type(hx[1]) is np.ndarray):
            result = self._lean.step(x_t, (hx[0][None], hx[1][None]), _NO_PARAMS)
            if result is not None:
                return result[0], result[1][1][0]
        return self._spec(x_t, hx)

    forward = __call__

    @property
    def nbytes(self) -> int:
        """Bytes of the packed weights and the biases."""
        return sum(0 if a is None else a.nbytes for a in self._weights)


class FrozenLinear:
    """A Linear layer frozen for inference at one precision:
    ``frozen(x) -> x @ weight.T + bias`` over the last axis, as the
    module's ``__call__`` ("fp32": the same bits)."""

    def __init__(self, module: Any, precision: str = "fp32") -> None:
        self.precision = check_precision(precision, module.dtype, "Linear")
        self.in_features = module.in_features
        self.out_features = module.out_features
        self.bias = module.bias
        self.dtype = module.dtype
        w = module._param("weight")
        if precision != "fp32" and w.shape[1] > _core.Q_MAX_K:
            raise ValueError(f"precision={precision!r} takes at most {_core.Q_MAX_K} inputs per "
                             f"product; the weight has shape {shape_str(w.shape)}")
        self._weight = (aligned_copy(np.ascontiguousarray(w)) if precision == "fp32"
                        else _core.PackedWeight(np.ascontiguousarray(w), precision))
        self._bias = aligned_copy(module._param("bias")) if module.bias else None

    def _input(self, x: Any) -> NDArray[Any]:
        return MODULES["Linear"]._input(self, x)

    def __call__(self, x: ArrayLike) -> NDArray[Any]:
        """x (..., in_features) -> y (..., out_features), the module's dtype."""
        x = self._input(x)
        if self.precision == "fp32":
            y = np.matmul(x, self._weight.T)
        else:
            rows = x.reshape(-1, self.in_features)
            if rows.shape[0] > 2**31 - 1:
                raise ValueError("input too large: more than 2**31 - 1 rows")
            y = _core.qgemm(np.ascontiguousarray(rows), self._weight)
            y = y.reshape(x.shape[:-1] + (self.out_features,))
        if self._bias is not None:
            y += self._bias
        return y

    forward = __call__

    @property
    def module_type(self) -> type:
        return MODULES["Linear"]

    @property
    def nbytes(self) -> int:
        return self._weight.nbytes + (0 if self._bias is None else self._bias.nbytes)

    def __repr__(self) -> str:
        return (f"FrozenLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias}, precision={self.precision!r})")
