"""The GRU module: PyTorch's nn.GRU semantics on NumPy arrays.

Per layer and direction, with gate order r, z, n (DESIGN.md §1)::

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))      reset_after=True
    n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)      reset_after=False
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}
"""

from __future__ import annotations

import numpy as np

from gru_cy import _gru
from gru_cy._base import RNNBase, empty

# Rows of the input projection computed per GEMM at inference: the
# workspace stays near 4 MiB (float32) whatever T is, and each GEMM still
# has hundreds of rows.
_CHUNK_ELEMENTS = 1 << 20

# Read-only zero biases for modules without bias, per (H, dtype).
_ZERO_BIAS = {}


class GRU(RNNBase):
    """Multi-layer gated recurrent unit over NumPy arrays.

    Parameters follow ``torch.nn.GRU`` (names, shapes, gate order r, z, n,
    initialisation U(-1/sqrt(H), 1/sqrt(H))). ``reset_after=False`` selects
    the original formulation (reset gate applied before the recurrent
    product), as in Keras ``reset_after=False`` and ONNX's default;
    ``seed`` seeds initialisation and dropout. ``go_backwards=True`` makes a
    reverse-only module (Keras ``go_backwards``, ONNX ``direction="reverse"``):
    its one direction reads each sequence from its last valid step back to
    the first, and ``out[t]`` stays aligned with ``x[t]``.

    ``gru(x, h0=None, lengths=None) -> (out, h_n)`` runs inference;
    ``forward_train`` also returns a tape for ``backward``.
    """

    _gates = 3
    _mode = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, reset_after=True, dtype=np.float32,
                 seed=None, go_backwards=False):
        if not isinstance(reset_after, (bool, np.bool_)):
            raise TypeError(f"reset_after should be a bool, got {type(reset_after).__name__}")
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers=num_layers, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         dtype=dtype, seed=seed, go_backwards=go_backwards)

    def _signature(self):
        return super()._signature() + (self.reset_after,)

    def _extra_repr_items(self):
        items = super()._extra_repr_items()
        if not self.reset_after:
            items.append("reset_after=False")
        return items

    # -- interop (gru_cy.interop; optional packages are imported there) ----

    @classmethod
    def from_torch(cls, module, *args, **kwargs):
        """A GRU with the configuration and weights of a ``torch.nn.GRU``."""
        from gru_cy import interop

        return interop.from_torch(module, *args, cls=cls, **kwargs)

    def to_torch(self, *args, **kwargs):
        """An equivalent ``torch.nn.GRU`` (reset_after=True only)."""
        from gru_cy import interop

        return interop.to_torch(self, *args, **kwargs)

    @classmethod
    def from_keras(cls, layer, *args, **kwargs):
        """A GRU from a Keras 3 ``GRU`` layer or ``Bidirectional(GRU)``."""
        from gru_cy import interop

        return interop.from_keras(layer, *args, cls=cls, **kwargs)

    def to_keras(self, *args, **kwargs):
        """An equivalent Keras 3 layer."""
        from gru_cy import interop

        return interop.to_keras(self, *args, **kwargs)

    def to_onnx(self, path, *args, **kwargs):
        """Write an ONNX model that ONNX Runtime runs with the same results."""
        from gru_cy import interop

        return interop.to_onnx(self, path, *args, **kwargs)

    def save(self, path):
        """Save configuration and weights as .npz (no pickles); see gru_cy.load."""
        from gru_cy import interop

        return interop.save(self, path)

    # -- kernels ----------------------------------------------------------

    def _biases(self, b_ih, b_hh):
        """(b_ih, b_hh) for the kernels: shared read-only zeros without bias."""
        if b_ih is not None:
            return b_ih, b_hh
        key = (self.hidden_size, self.dtype)
        zeros = _ZERO_BIAS.get(key)
        if zeros is None:
            zeros = np.zeros(3 * self.hidden_size, dtype=self.dtype)
            zeros.setflags(write=False)
            _ZERO_BIAS[key] = zeros
        return zeros, zeros

    def _alloc_saved(self, T, B):
        # Flat, so that either kernel layout can use them (see _gru's doc):
        # gates, aux, and T + 1 hidden states (hprev).
        H, dt = self.hidden_size, self.dtype
        return (empty(3 * H * T * B, dt), empty(H * T * B, dt), empty(H * (T + 1) * B, dt))

    def _kernel_forward(self, out, col, h, x, weights, lengths, full, reverse, saved):
        T, B, _ = x.shape
        H, dt = self.hidden_size, self.dtype
        w_ih, w_hh, b_ih, b_hh = weights
        b_ih, b_hh = self._biases(b_ih, b_hh)
        columns = _gru.use_columns(B, H, full)
        if saved is None:
            gates, aux, hprev = empty(3 * H * B, dt), empty(H * B, dt), empty(2 * H * B, dt)
            train = False
        else:
            gates, aux, hprev = saved
            train = True
        if reverse and not full:
            chunk = T
        else:
            chunk = max(1, min(T, _CHUNK_ELEMENTS // max(1, B * 3 * H)))
        gi = empty(max(chunk, 1) * B * 3 * H, dt)
        gh = empty(3 * H * B, dt)
        w_t = empty(3 * H * H if (B > 1 and not columns) else 1, dt)
        _gru.gru_forward(out, col, h, gates, aux, hprev, gi, chunk, gh, w_t, x, w_ih, w_hh,
                         b_ih, b_hh, lengths, full, reverse, self.reset_after, train, columns)

    def _kernel_backward(self, dx, dh, grads, dout, col, saved, x, weights, lengths, full,
                         reverse):
        T, B, I = x.shape
        H, dt = self.hidden_size, self.dtype
        w_ih, w_hh, _, _ = weights
        dw_ih, dw_hh, db_ih, db_hh = grads
        has_bias = db_ih is not None
        if not has_bias:
            db_ih = db_hh = empty(3 * H, dt)
        columns = _gru.use_columns(B, H, full)
        dgi = empty(T * B * 3 * H, dt)
        dgh = empty(T * B * 3 * H, dt)
        work = empty(3 * H * H + 3 * H * B if columns else max(1, B * H), dt)
        x_masked = empty((T, B, I) if not full else (1, 1, 1), dt)
        gates, aux, hprev = saved
        _gru.gru_backward(dx, dh, dw_ih, dw_hh, db_ih, db_hh, dgi, dgh, work, x_masked, dout,
                          col, gates, aux, hprev, x, w_ih, w_hh, lengths, full, reverse,
                          self.reset_after, has_bias, columns)
