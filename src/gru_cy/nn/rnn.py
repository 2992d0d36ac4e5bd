"""The Elman RNN module: PyTorch's nn.RNN semantics on NumPy arrays.

Per layer and direction::

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),    act = tanh or relu

with W_ih (H, I_k) and W_hh (H, H).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import OneStateRNN, check_choice, register_module

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


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

    _cell = _core.RNN

    def _core_flags(self):
        return _core.ACT_RELU if self.nonlinearity == "relu" else _core.ACT_TANH
