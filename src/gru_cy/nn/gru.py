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

from gru_cy.kernels import _gru
from gru_cy.nn.base import _POISON, OneStateRNN, check_bool, empty, register_module
from gru_cy.nn.base import CHUNK_ELEMENTS as _CHUNK_ELEMENTS

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

_gru.set_poison(_POISON)


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

    def _split_train(self, B):
        # Measured at 2 threads (T=100): splitting the batch speeds training
        # up for small batches (B=8 and B=16 at H=128: 1.2-1.3x), and slows
        # it down from 3H * H * B > 3 * 2**18 (B=32 at H=128, B=64 at H=256:
        # 0.85-0.9x), where OpenBLAS's threaded GEMMs and weight gradients
        # over all T*B rows do better. Inference gains either way (1.1-2x).
        return not _gru.large_batch(B, self.hidden_size)

    def _alloc_saved(self, T, B):
        # Flat, so that either kernel layout can use them (see _gru's doc);
        # the last entry records the layout forward ran in, for backward
        # (set_layout may change the choice in between).
        n0, n1, n2 = _gru.tape_sizes(T, B, self.hidden_size)
        buf = empty(n0 + n1 + n2, self.dtype)  # one allocation, three views
        return [buf[:n0], buf[n0:n0 + n1], buf[n0 + n1:], None]

    def _kernel_forward(self, out, col, h, x, weights, lengths, full, reverse, saved):
        T, B, _ = x.shape
        H = self.hidden_size
        w_ih, w_hh, b_ih, b_hh = weights
        columns, chunk = _gru.plan(T, B, H, full, reverse, _CHUNK_ELEMENTS, saved is not None)
        if saved is not None:
            saved[3] = columns
            saved = tuple(saved[:3])
        # work=None: the kernel allocates its workspace (NaN-filled under
        # GRU_CY_POISON, see set_poison) and frees it.
        _gru.gru_forward(out, col, h, saved, None, x, w_ih, w_hh, b_ih, b_hh, lengths, full,
                         reverse, self.reset_after, columns, chunk)

    def _kernel_backward(self, dx, dh, grads, dout, col, saved, x, weights, lengths, full,
                         reverse):
        w_ih, w_hh, _, _ = weights
        columns = saved[3]      # the layout forward_train ran in
        _gru.gru_backward(dx, dh, tuple(grads), None, dout, col, tuple(saved[:3]), x, w_ih,
                          w_hh, lengths, full, reverse, self.reset_after, columns)

    # -- the lean paths (RNNBase's hooks) -----------------------------------

    _lean = None    # cached _lean_args(), per instance

    def _lean_args(self):
        """(names, I, H, dtype number, reverse, reset_after) for _gru.gru_step
        and gru_infer; cached until a public attribute is set (RNNBase.__setattr__)."""
        args = self.__dict__.get("_lean")
        if args is None:
            kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if self.bias else 2]
            names = tuple(tuple(f"{n}_l{k}" for n in kinds) for k in range(self.num_layers))
            args = (names, self.input_size, self.hidden_size, self.dtype.num, self.go_backwards,
                    self.reset_after)
            self.__dict__["_lean"] = args
        return args

    def _kernel_step(self, x_t, h):
        """The lean path of step(): (y, h) or None when the arguments or the
        parameters need the checks and conversions of the general path."""
        return _gru.gru_step(x_t, h, self.params, *(self._lean or self._lean_args()))

    def _kernel_infer(self, x, h0):
        """The lean path of __call__ (unidirectional, no lengths): (out, h_n)
        or None when the general path is needed."""
        return _gru.gru_infer(x, h0, self.params, *(self._lean or self._lean_args()),
                              self.batch_first, _CHUNK_ELEMENTS)
