"""The Elman RNN module: PyTorch's nn.RNN semantics on NumPy arrays.

Per layer and direction::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),    act = tanh or relu

with W_ih (H, I_k) and W_hh (H, H).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.kernels import _rnn
from gru_cy.nn.base import _POISON, OneStateRNN, check_choice, empty, register_module
from gru_cy.nn.base import CHUNK_ELEMENTS as _CHUNK_ELEMENTS

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

_rnn.set_poison(_POISON)

_NONLINEARITIES = ("tanh", "relu")


@register_module
class RNN(OneStateRNN):
    """Multi-layer Elman recurrent network over NumPy arrays.

    Parameters follow ``torch.nn.RNN`` (names, shapes, initialisation
    U(-1/sqrt(H), 1/sqrt(H))); ``nonlinearity`` is ``"tanh"`` or ``"relu"``.
    ``seed`` seeds initialisation and dropout. ``go_backwards=True`` makes a
    reverse-only module (Keras ``go_backwards``, ONNX
    ``direction="reverse"``): its one direction reads each sequence from its
    last valid step back to the first, and ``out[t]`` stays aligned with
    ``x[t]``.

    ``rnn(x, hx=None, lengths=None) -> (out, h_n)`` runs inference (``h0``
    is an alias of ``hx``);
    ``forward_train`` also returns a tape for ``backward``.
    """

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None,
                 go_backwards: bool = False) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, _NONLINEARITIES)
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, go_backwards=go_backwards)

    @property
    def _act(self) -> int:
        """The kernels' activation code: 0 tanh, 1 relu."""
        return _NONLINEARITIES.index(self.nonlinearity)

    def _config(self) -> dict[str, Any]:
        return dict(super()._config(), nonlinearity=self.nonlinearity)

    def _make_signature(self):
        return super()._make_signature() + (self.nonlinearity,)

    def _extra_repr_items(self):
        items = super()._extra_repr_items()
        if self.nonlinearity != "tanh":
            items.insert(2, f"nonlinearity={self.nonlinearity!r}")
        return items

    # -- kernels ----------------------------------------------------------

    def _alloc_saved(self, T, B):
        # The states, and the layout forward ran in, for backward (set_layout
        # may change the choice in between).
        return [empty(_rnn.tape_size(T, B, self.hidden_size), self.dtype), None]

    def _kernel_forward(self, out, col, h, x, weights, lengths, full, reverse, saved):
        T, B, _ = x.shape
        w_ih, w_hh, b_ih, b_hh = weights
        columns, chunk = _rnn.plan(T, B, self.hidden_size, full, reverse, _CHUNK_ELEMENTS,
                                   saved is not None)
        if saved is not None:
            saved[1] = columns
            saved = saved[0]
        _rnn.rnn_forward(out, col, h, saved, None, x, w_ih, w_hh, b_ih, b_hh, lengths, full,
                         reverse, self._act, columns, chunk)

    def _kernel_backward(self, dx, dh, grads, dout, col, saved, x, weights, lengths, full,
                         reverse):
        w_ih, w_hh, _, _ = weights
        saved, columns = saved      # the tape, and the layout forward_train ran in
        _rnn.rnn_backward(dx, dh, tuple(grads), None, dout, col, saved, x, w_ih, w_hh, lengths,
                          full, reverse, self._act, columns)

    # -- the lean paths (RNNBase's hooks) -----------------------------------

    _lean = None    # cached _lean_args(), per instance

    def _lean_args(self):
        """(names, I, H, dtype number, reverse, act) for _rnn.rnn_step and
        rnn_infer; cached until a public attribute is set."""
        args = self.__dict__.get("_lean")
        if args is None:
            kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if self.bias else 2]
            names = tuple(tuple(f"{n}_l{k}" for n in kinds) for k in range(self.num_layers))
            args = (names, self.input_size, self.hidden_size, self.dtype.num, self.go_backwards,
                    self._act)
            self.__dict__["_lean"] = args
        return args

    def _kernel_step(self, x_t, h):
        return _rnn.rnn_step(x_t, h, self.params, *(self._lean or self._lean_args()))

    def _kernel_infer(self, x, h0):
        return _rnn.rnn_infer(x, h0, self.params, *(self._lean or self._lean_args()),
                              self.batch_first, _CHUNK_ELEMENTS)
