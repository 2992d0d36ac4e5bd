"""The Jordan network (Jordan 1986): a recurrent layer that feeds back its
previous *output* rather than its hidden state.

One layer, one direction, with O = output_size::

    h_t = act(W_ih x_t + b_ih + W_yh y_{t-1})        act: tanh, relu or sigmoid
    y_t = out_act(W_hy h_t + b_hy)                  out_act: identity, tanh or sigmoid
    y_{-1} = y0 (zeros by default)

Parameters ``weight_ih`` (H, I), ``bias_ih`` (H,), ``weight_yh`` (H, O),
``weight_hy`` (O, H), ``bias_hy`` (O,); ``bias=False`` drops both biases.

The module runs on the recurrent driver (``base.Recurrent``) like every
other cell: one layer, one direction, the state y (B, O), and a kernel call
per layer that takes the five parameters in the order above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import (
    _INT32_MAX, Recurrent, check_bool, check_choice, check_dtype, check_int, make_rng,
    register_module,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from gru_cy.nn.base import Tape

_PARAM_NAMES = ("weight_ih", "bias_ih", "weight_yh", "weight_hy", "bias_hy")

# The activations each layer accepts, and the kernels' codes for them.
HIDDEN_ACTIVATIONS = ("tanh", "relu", "sigmoid")
OUTPUT_ACTIVATIONS = ("identity", "tanh", "sigmoid")
_CODES = {"tanh": _core.ACT_TANH, "relu": _core.ACT_RELU, "sigmoid": _core.ACT_SIGMOID,
          "identity": _core.ACT_IDENTITY}


@register_module
class Jordan(Recurrent):
    """Jordan network over NumPy arrays: the previous output is the state.

    ``jordan(x, y0=None, lengths=None) -> (out, y_n)``: ``out`` (T, B, O)
    holds every y_t, ``y_n`` (1, B, O) the output after each sequence's last
    valid step (y0 when its length is 0). x is (T, B, I), (B, T, I) with
    ``batch_first`` or unbatched (T, I) (y0 and y_n are then (1, O)).
    ``forward_train`` also returns a tape for ``backward``, which adds the
    parameter gradients into ``grads``; ``step`` advances one time step.
    Weights are drawn from U(-1/sqrt(H), 1/sqrt(H)) by a generator seeded
    with ``seed``.

    The state is named ``y0`` / ``y`` here, not ``hx`` as in the GRU, the
    LSTM and the RNN: what a Jordan network carries from step to step is
    its output y_t (of width O), not a hidden state h_t (of width H), and
    PyTorch has no such module whose name to follow.
    """

    _CACHES = ("_shapes", "_sig", "_names", "_lean")
    _state_names = ("y",)
    _cell = _core.JORDAN

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 nonlinearity: str = "tanh", output_activation: str = "identity",
                 bias: bool = True, batch_first: bool = False, dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None) -> None:
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity,
                                         HIDDEN_ACTIVATIONS)
        self.output_activation = check_choice("output_activation", output_activation,
                                              OUTPUT_ACTIVATIONS)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = make_rng(seed)
        I, H, O = self.input_size, self.hidden_size, self.output_size
        if max(I, H, O) > _INT32_MAX:
            raise ValueError(f"input_size={I}, hidden_size={H}, output_size={O}: too large for "
                             "32-bit BLAS (dimensions must stay below 2**31)")
        self._allocate()

    # -- the cell description -------------------------------------------------

    def _param_shapes(self):
        I, H, O = self.input_size, self.hidden_size, self.output_size
        yield "weight_ih", (H, I)
        if self.bias:
            yield "bias_ih", (H,)
        yield "weight_yh", (H, O)
        yield "weight_hy", (O, H)
        if self.bias:
            yield "bias_hy", (O,)

    def _layer_names(self):
        """One layer, one direction: the five parameters in the kernels'
        order, the biases None without bias."""
        names = self.__dict__.get("_names")
        if names is None:
            shapes = self._shape_table()[1]
            names = self.__dict__["_names"] = (
                (tuple(name if name in shapes else None for name in _PARAM_NAMES),),)
        return names

    def _state_widths(self):
        return (self.output_size,)

    def _config(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, nonlinearity=self.nonlinearity,
                    output_activation=self.output_activation, bias=self.bias,
                    batch_first=self.batch_first)

    def _make_signature(self):
        return (self._mode, self.input_size, self.hidden_size, self.output_size,
                self.nonlinearity, self.output_activation, self.bias, self.dtype)

    def reset_parameters(self) -> None:
        """Draw every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / np.sqrt(self.hidden_size)
        for p in self.params.values():
            p[...] = self._rng.uniform(-bound, bound, size=p.shape)

    # -- the kernels: the Jordan cell of gru_cy.kernels._core ----------------------

    def _core_flags(self):
        """Both activations' codes (checked again: the attributes may have
        been reassigned since construction)."""
        act = check_choice("nonlinearity", self.nonlinearity, HIDDEN_ACTIVATIONS)
        out_act = check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        return _CODES[act] | _CODES[out_act] << 4

    def _core_P(self):
        return self.output_size

    def _six(self, arrays):
        """(w_ih, b_ih, w_yh, w_hy, b_hy) in the kernels' order."""
        w_ih, b_ih, w_yh, w_hy, b_hy = arrays
        return (w_ih, w_yh, b_ih, None, w_hy, b_hy)

    # -- the state, named y0 / y ---------------------------------------------------

    def _prepare_state(self, hx, B, unbatched, name="y0"):
        return super()._prepare_state(hx, B, unbatched, name)

    def _prepare_step_state(self, h, B, unbatched, name="y"):
        return super()._prepare_step_state(h, B, unbatched, name)

    # -- the public calls ---------------------------------------------------------

    def __call__(self, x: ArrayLike, y0: ArrayLike | None = None,  # type: ignore[override]
                 lengths: ArrayLike | None = None) -> tuple[NDArray[Any], NDArray[Any]]:
        """Inference: (out, y_n)."""
        return self._forward_general(x, y0, lengths)

    forward = __call__  # type: ignore[assignment]

    def forward_train(self, x: ArrayLike,  # type: ignore[override]
                      y0: ArrayLike | None = None, lengths: ArrayLike | None = None
                      ) -> tuple[NDArray[Any], NDArray[Any], Tape]:
        """Forward that keeps what backward needs: (out, y_n, tape)."""
        return super().forward_train(x, y0, lengths)

    def backward(self, tape: Tape, dout: ArrayLike | None = None,  # type: ignore[override]
                 dy_n: ArrayLike | None = None) -> tuple[NDArray[Any], NDArray[Any]]:
        """Backpropagate through a forward_train call: (dx, dy0).

        dout has the shape of that call's out, dy_n of its y_n; None means
        zeros. Parameter gradients are added into self.grads (zero_grad()
        starts afresh); calls from several threads on one module take turns
        for that. Uses the parameters recorded when the tape was made.
        """
        dx, dy0 = self._backward_states(tape, dout, (dy_n,), ("dy_n",))
        return dx, dy0

    def step(self, x_t: ArrayLike,  # type: ignore[override]
             y: ArrayLike | None = None) -> tuple[NDArray[Any], NDArray[Any]]:
        """Advance one time step: (y_t, y).

        x_t is (B, I) or unbatched (I,); y the previous output, (1, B, O) or
        (1, O), None for zeros. y_t is (B, O) (or (O,)), y the new state in
        y's shape. Fed a sequence one step at a time it returns bit for bit
        what one whole-sequence call returns. Inference only.
        """
        return Recurrent.step(self, x_t, y)

    # -- presentation -----------------------------------------------------------

    def _extra_repr_items(self):
        items = [str(self.input_size), str(self.hidden_size), str(self.output_size)]
        if self.nonlinearity != "tanh":
            items.append(f"nonlinearity={self.nonlinearity!r}")
        if self.output_activation != "identity":
            items.append(f"output_activation={self.output_activation!r}")
        if not self.bias:
            items.append("bias=False")
        if self.batch_first:
            items.append("batch_first=True")
        return items
