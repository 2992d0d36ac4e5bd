"""A plain-NumPy single-layer GRU (forward and backward) for `python -m gru_cy`.

Small and slow on purpose: it exists so that an installed wheel can check
its compiled kernels on the machine it landed on. The test suite has its
own, fuller reference (tests/reference.py).
"""

from __future__ import annotations

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_gru(x, h0, w_ih, w_hh, b_ih, b_hh, reset_after=True):
    """One layer, one direction, time-major x (T, B, I): (out, cache)."""
    H = w_hh.shape[1]
    h = h0
    out, cache = [], []
    for t in range(x.shape[0]):
        gi = x[t] @ w_ih.T + b_ih
        gh_rz = h @ w_hh[:2 * H].T + b_hh[:2 * H]
        r = _sigmoid(gi[:, :H] + gh_rz[:, :H])
        z = _sigmoid(gi[:, H:2 * H] + gh_rz[:, H:])
        if reset_after:
            hn = h @ w_hh[2 * H:].T + b_hh[2 * H:]
            n = np.tanh(gi[:, 2 * H:] + r * hn)
        else:
            hn = (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:]
            n = np.tanh(gi[:, 2 * H:] + hn)
        cache.append((h, r, z, n, hn))
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out), cache


def numpy_gru_backward(x, cache, dout, w_ih, w_hh, reset_after=True):
    """Gradients (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) of sum(out * dout)."""
    H = w_hh.shape[1]
    dx = np.zeros_like(x)
    dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    db_ih, db_hh = np.zeros(3 * H, x.dtype), np.zeros(3 * H, x.dtype)
    dh = np.zeros_like(cache[0][0])
    for t in range(x.shape[0] - 1, -1, -1):
        h, r, z, n, hn = cache[t]
        dh = dh + dout[t]
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (h - n) * z * (1 - z)
        if reset_after:
            dr = dn * hn * r * (1 - r)
            dgh = np.concatenate([dr, dz, dn * r], axis=1)
            dh_prev = dh * z + dgh @ w_hh
            dw_hh += dgh.T @ h
        else:
            drh = dn @ w_hh[2 * H:]
            dr = drh * h * r * (1 - r)
            dgh = np.concatenate([dr, dz, dn], axis=1)
            dh_prev = dh * z + drh * r + dgh[:, :2 * H] @ w_hh[:2 * H]
            dw_hh[:2 * H] += dgh[:, :2 * H].T @ h
            dw_hh[2 * H:] += dn.T @ (r * h)
        dgi = np.concatenate([dr, dz, dn], axis=1)
        dx[t] = dgi @ w_ih
        dw_ih += dgi.T @ x[t]
        db_ih += dgi.sum(0)
        db_hh += dgh.sum(0)
        dh = dh_prev
    return dx, dh, dw_ih, dw_hh, db_ih, db_hh


def self_check(reset_after=True, dtype=np.float64, seed=0):
    """Largest relative difference between gru_cy and numpy_gru, forward and backward."""
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
    ref_out, cache = numpy_gru(x, h0[0], *args, reset_after=reset_after)
    ref = numpy_gru_backward(x, cache, dout, args[0], args[1], reset_after=reset_after)
    pairs = [(out, ref_out), (h_n[0], ref_out[-1]), (dx, ref[0]), (dh0[0], ref[1]),
             (gru.grads["weight_ih_l0"], ref[2]), (gru.grads["weight_hh_l0"], ref[3]),
             (gru.grads["bias_ih_l0"], ref[4]), (gru.grads["bias_hh_l0"], ref[5])]
    worst = 0.0
    for got, want in pairs:
        scale = max(1.0, float(np.abs(want).max()))
        worst = max(worst, float(np.abs(got - want).max()) / scale)
    return worst
