"""The LSTM module: PyTorch's nn.LSTM semantics on NumPy arrays.

Per layer and direction, with gate order i, f, g, o::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                  (proj_size = 0)
    h_t = W_hr (o * tanh(c_t))           (proj_size = P > 0, W_hr (P, H))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import (
    RNNBase, as_float_array, check_int, register_module, shape_str,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from gru_cy.nn.base import Tape

    # (h, c): the state of every layer and direction.
    _State = tuple[NDArray[Any], NDArray[Any]]



@register_module
class LSTM(RNNBase):
    """Multi-layer long short-term memory network over NumPy arrays.

    Parameters follow ``torch.nn.LSTM`` (names, shapes, gate order i, f, g,
    o, initialisation U(-1/sqrt(H), 1/sqrt(H)) of every parameter including
    ``weight_hr_l{k}``). With ``proj_size = P > 0`` the state h and the
    output have width P (h_t = W_hr (o * tanh(c_t))); the cell state c keeps
    width H. ``go_backwards=True`` makes a reverse-only module (Keras
    ``go_backwards``, ONNX ``direction="reverse"``).

    ``lstm(x, hx=None, lengths=None) -> (out, (h_n, c_n))`` runs inference,
    with ``hx = (h0, c0)``; ``forward_train`` also returns a tape for
    ``backward(tape, dout=None, dhx=None) -> (dx, (dh0, dc0))``.
    """

    _gates = 4
    _state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None,
                 go_backwards: bool = False) -> None:
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size, (int, np.integer)):
            raise TypeError(
                f"proj_size should be an integer, got {type(proj_size).__name__}: {proj_size!r}")
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections")
        hidden = check_int("hidden_size", hidden_size, 1)
        if proj_size >= hidden:
            raise ValueError("proj_size has to be smaller than hidden_size")
        self.proj_size = int(proj_size)
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, go_backwards=go_backwards)

    # -- the cell description -------------------------------------------------

    def _state_widths(self):
        H = self.hidden_size
        return (self.proj_size or H, H)

    def _param_shapes(self):
        H, D, P = self.hidden_size, self.num_directions, self.proj_size
        R = P or H
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else D * R
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
                yield "weight_ih" + sfx, (4 * H, in_k)
                yield "weight_hh" + sfx, (4 * H, R)
                if self.bias:
                    yield "bias_ih" + sfx, (4 * H,)
                    yield "bias_hh" + sfx, (4 * H,)
                if P:
                    yield "weight_hr" + sfx, (P, H)

    def _direction_names(self, sfx):
        return super()._direction_names(sfx) + (("weight_hr" + sfx) if self.proj_size else None,)

    def _config(self) -> dict[str, Any]:
        return dict(super()._config(), proj_size=self.proj_size)

    def _make_signature(self):
        return super()._make_signature() + (self.proj_size,)

    def _extra_repr_items(self):
        items = super()._extra_repr_items()
        if self.proj_size:
            items.append(f"proj_size={self.proj_size}")
        return items

    # -- the public calls, with the state as a tuple -----------------------------

    def __call__(self, x: ArrayLike,  # type: ignore[override]
                 hx: tuple[ArrayLike, ArrayLike] | None = None,
                 lengths: ArrayLike | None = None) -> tuple[NDArray[Any], _State]:
        """Inference: (out, (h_n, c_n)). No tape is kept and no dropout applied.

        x is (T, B, I), (B, T, I) with batch_first, or unbatched (T, I); hx =
        (h0, c0) with h0 (L*D, B, R) and c0 (L*D, B, H) ((L*D, R) and
        (L*D, H) unbatched), or None for zeros; lengths (B,) in any order.
        """
        return RNNBase.__call__(self, x, hx, lengths)

    forward = __call__

    def forward_train(self, x: ArrayLike,  # type: ignore[override]
                      hx: tuple[ArrayLike, ArrayLike] | None = None,
                      lengths: ArrayLike | None = None) -> tuple[NDArray[Any], _State, Tape]:
        """Forward that keeps what backward needs: (out, (h_n, c_n), tape)."""
        return super().forward_train(x, hx, lengths)

    def backward(self, tape: Tape, dout: ArrayLike | None = None,
                 dhx: tuple[ArrayLike | None, ArrayLike | None] | None = None
                 ) -> tuple[NDArray[Any], _State]:
        """Backpropagate through a forward_train call: (dx, (dh0, dc0)).

        dout has the shape of that call's out; dhx = (dh_n, dc_n) the
        gradients of its h_n and c_n, either (or dhx itself) None for zeros.
        Parameter gradients are added into self.grads.
        """
        if dhx is None:
            dhx = (None, None)
        elif not isinstance(dhx, (tuple, list)) or len(dhx) != 2:
            raise TypeError(
                "dhx must be a tuple (dh_n, dc_n) (either may be None) or None, got "
                f"{type(dhx).__name__}")
        return self._backward_states(tape, dout, tuple(dhx), ("dh_n", "dc_n"))

    def step(self, x_t: ArrayLike,  # type: ignore[override]
             hx: tuple[ArrayLike, ArrayLike] | None = None) -> tuple[NDArray[Any], _State]:
        """Advance every layer by one time step: (y_t, (h, c)).

        x_t is (B, I) or unbatched (I,); hx = (h, c) with h (L, B, R) and c
        (L, B, H) ((L, R) and (L, H) unbatched), or None for zeros. How
        exactly it agrees with the whole-sequence call: README, "step()".
        Inference only; not for bidirectional modules.
        """
        # Recurrent.step in one frame: the lean path (unidirectional modules),
        # else the general one.
        if not self.bidirectional:
            result = (self._lean or self._lean_obj()).step(x_t, hx, self.params)
            if result is not None:
                return result
        return self._step_general(x_t, hx)

    def _state_pair(self, hx):
        if not isinstance(hx, (tuple, list)):
            raise TypeError(
                f"hx must be a tuple (h0, c0) of arrays for {self._mode}, got "
                f"{type(hx).__name__}")
        if len(hx) != 2:
            raise ValueError(
                f"hx must be a tuple (h0, c0) of two arrays for {self._mode}, got {len(hx)} "
                "items")
        return (as_float_array(hx[0], "hx[0]", self.dtype),
                as_float_array(hx[1], "hx[1]", self.dtype))

    def _prepare_state(self, hx, B, unbatched):
        LD, H, R = self.num_layers * self.num_directions, self.hidden_size, self._out_size
        if hx is None:
            return (np.zeros((LD, B, R), dtype=self.dtype), np.zeros((LD, B, H), dtype=self.dtype))
        h0, c0 = self._state_pair(hx)
        if unbatched and (h0.ndim != 2 or c0.ndim != 2):
            raise ValueError("For unbatched 2-D input, hx and cx should also be 2-D but got "
                             f"({h0.ndim}-D, {c0.ndim}-D) tensors")
        if not unbatched and (h0.ndim != 3 or c0.ndim != 3):
            raise ValueError("For batched 3-D input, hx and cx should also be 3-D but got "
                             f"({h0.ndim}-D, {c0.ndim}-D) tensors")
        out = []
        for i, (a, W) in enumerate(((h0, R), (c0, H))):
            expected = (LD, W) if unbatched else (LD, B, W)
            if a.shape != expected:
                raise ValueError(
                    f"Expected hidden[{i}] size {shape_str(expected)}, got {list(a.shape)}")
            out.append(np.array(a.reshape(LD, B, W), dtype=self.dtype, copy=True))
        return tuple(out)

    def _prepare_step_state(self, hx, B, unbatched):
        L, H, R = self.num_layers, self.hidden_size, self._out_size
        if hx is None:
            return (np.zeros((L, B, R), dtype=self.dtype), np.zeros((L, B, H), dtype=self.dtype))
        h, c = self._state_pair(hx)
        out = []
        for i, (a, W) in enumerate(((h, R), (c, H))):
            expected = (L, W) if unbatched else (L, B, W)
            if a.shape != expected:
                raise ValueError(
                    f"Expected hidden[{i}] size {shape_str(expected)}, got {list(a.shape)}")
            out.append(a.reshape(L, B, W).copy())
        return tuple(out)

    # -- kernels ------------------------------------------------------------

    _cell = _core.LSTM

    def _core_P(self):
        return self.proj_size
