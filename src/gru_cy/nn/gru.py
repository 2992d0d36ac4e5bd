"""The GRU module: PyTorch's nn.GRU semantics on NumPy arrays.

Per layer and direction, with gate order r, z, n::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))      reset_after=True
    n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)      reset_after=False
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import OneStateRNN, check_bool, register_module

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


@register_module
class GRU(OneStateRNN):
    """Multi-layer gated recurrent unit over NumPy arrays.

    Parameters follow ``torch.nn.GRU`` (names, shapes, gate order r, z, n,
    initialisation U(-1/sqrt(H), 1/sqrt(H))). ``reset_after=False`` selects
    the original formulation (reset gate applied before the recurrent
    product), as in Keras ``reset_after=False`` and ONNX's default;
    ``seed`` seeds initialisation and dropout. ``go_backwards=True`` makes a
    reverse-only module (Keras ``go_backwards``, ONNX ``direction="reverse"``):
    its one direction reads each sequence from its last valid step back to
    the first, and ``out[t]`` stays aligned with ``x[t]``.

    ``gru(x, hx=None, lengths=None) -> (out, h_n)`` runs inference
    (``hx``: the initial state, PyTorch's name; ``h0`` is its alias);
    ``forward_train`` also returns a tape for ``backward``.
    """

    _gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, reset_after: bool = True,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None,
                 go_backwards: bool = False) -> None:
        self.reset_after = check_bool("reset_after", reset_after)
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, go_backwards=go_backwards)

    def _config(self) -> dict[str, Any]:
        return dict(super()._config(), reset_after=self.reset_after)

    def _make_signature(self):
        return super()._make_signature() + (self.reset_after,)

    def _extra_repr_items(self):
        items = super()._extra_repr_items()
        if not self.reset_after:
            items.append("reset_after=False")
        return items

    # -- kernels ----------------------------------------------------------

    _cell = _core.GRU

    def _core_flags(self):
        return int(self.reset_after)
