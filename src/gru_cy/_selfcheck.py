"""The self-check of `python -m gru_cy`: the compiled kernels against the
package's plain-NumPy GRU (gru_cy._reference), forward and backward, so
that an installed wheel can be checked on the machine it landed on. The
test suite has its own, independent reference (tests/reference.py).
"""

from __future__ import annotations

import numpy as np

from gru_cy._reference import numpy_layer_backward, numpy_layer_forward


def self_check(reset_after=True, dtype=np.float64, seed=0):
    """Largest relative difference between gru_cy and the NumPy GRU, forward and backward."""
    from gru_cy import GRU

    rng = np.random.default_rng(seed)
    T, B, I, H = 7, 3, 5, 8
    gru = GRU(I, H, reset_after=reset_after, dtype=dtype, seed=seed)
    p = gru.params
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((1, B, H)).astype(dtype)
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    out, h_n, tape = gru.forward_train(x, h0)
    gru.zero_grad()
    dx, dh0 = gru.backward(tape, dout)
    args = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    ref_out, ref_h, saved = numpy_layer_forward(x, *args, h0[0], reset_after, False, None,
                                                keep=True)
    ref = numpy_layer_backward(dout, np.zeros_like(h0[0]), saved, x, args[0], args[1],
                               reset_after)
    pairs = [(out, ref_out), (h_n[0], ref_h), (dx, ref[0]), (dh0[0], ref[1]),
             (gru.grads["weight_ih_l0"], ref[2]), (gru.grads["weight_hh_l0"], ref[3]),
             (gru.grads["bias_ih_l0"], ref[4]), (gru.grads["bias_hh_l0"], ref[5])]
    worst = 0.0
    for got, want in pairs:
        scale = max(1.0, float(np.abs(want).max()))
        worst = max(worst, float(np.abs(got - want).max()) / scale)
    return worst
