"""The Elman RNN module: PyTorch's nn.RNN semantics on NumPy arrays.

Per layer and direction::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),    act = tanh or relu

with W_ih (H, I_k) and W_hh (H, H).
"""

from __future__ import annotations

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import RNNBase, register_module

_NONLINEARITIES = ("tanh", "relu")


@register_module
class RNN(RNNBase):
    """Multi-layer Elman recurrent network over NumPy arrays.

    Parameters follow ``torch.nn.RNN`` (names, shapes, initialisation
    U(-1/sqrt(H), 1/sqrt(H))); ``nonlinearity`` is ``"tanh"`` or ``"relu"``.
    ``seed`` seeds initialisation and dropout. ``go_backwards=True`` makes a
    reverse-only module (Keras ``go_backwards``, ONNX
    ``direction="reverse"``): its one direction reads each sequence from its
    last valid step back to the first, and ``out[t]`` stays aligned with
    ``x[t]``.

    ``rnn(x, h0=None, lengths=None) -> (out, h_n)`` runs inference;
    ``forward_train`` also returns a tape for ``backward``.
    """

    _gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float32,
                 seed=None, go_backwards=False):
        if not isinstance(nonlinearity, str):
            raise TypeError(
                f"nonlinearity should be a str, got {type(nonlinearity).__name__}")
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, go_backwards=go_backwards)

    def _config(self):
        return dict(super()._config(), nonlinearity=self.nonlinearity)

    def _make_signature(self):
        return super()._make_signature() + (self.nonlinearity,)

    def _extra_repr_items(self):
        items = super()._extra_repr_items()
        if self.nonlinearity != "tanh":
            items.insert(2, f"nonlinearity={self.nonlinearity!r}")
        return items

    # -- kernels ----------------------------------------------------------

    _cell = _core.RNN

    def _core_flags(self):
        return _core.ACT_RELU if self.nonlinearity == "relu" else _core.ACT_TANH
