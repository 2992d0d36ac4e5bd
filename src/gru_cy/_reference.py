"""The one plain-NumPy GRU inside the package: a vectorised layer, forward
and backward, with the kernels' conventions (time-major x (T, B, I), gate
order r, z, n, lengths, reverse).

Two users: ``python -m gru_cy`` checks an installed wheel's compiled
kernels against it on the machine it landed on (gru_cy._selfcheck), and
the benchmark runs it as its NumPy peer (gru_cy.bench). The test suite
keeps its own, independent reference (tests/reference.py).
"""

from __future__ import annotations

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_layer_forward(x, w_ih, w_hh, b_ih, b_hh, h0, reset_after, reverse, lengths,
                        keep=False):
    """One layer, one direction: (out (T, B, H), h_n (B, H), saved). With
    lengths (B,) or None for full ones; reverse runs each sequence from its
    last valid step back; keep=True returns what numpy_layer_backward needs
    (per step s: h_prev, r, z, n and W_hn h_prev + b_hn or r * h_prev)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    gi = (x.reshape(T * B, -1) @ w_ih.T + b_ih).reshape(T, B, 3 * H)
    h = h0.copy()
    out = np.zeros((T, B, H), dtype=x.dtype)
    rows = np.arange(B)
    saved = [] if keep else None
    for s in range(T):
        if lengths is None:
            t = np.full(B, T - 1 - s if reverse else s)
            active = None
        else:
            active = s < lengths
            t = np.where(active, lengths - 1 - s if reverse else s, 0)
        g = gi[t, rows]
        gh = h @ w_hh.T + b_hh
        r = _sigmoid(g[:, :H] + gh[:, :H])
        z = _sigmoid(g[:, H:2 * H] + gh[:, H:2 * H])
        if reset_after:
            n = np.tanh(g[:, 2 * H:] + r * gh[:, 2 * H:])
        else:
            rh = r * h
            n = np.tanh(g[:, 2 * H:] + rh @ w_hh[2 * H:].T + b_hh[2 * H:])
        h_new = n + z * (h - n)
        if keep:
            saved.append((h, r, z, n, gh[:, 2 * H:] if reset_after else r * h))
        if active is None:
            h = h_new
            out[t[0]] = h
        else:
            h = np.where(active[:, None], h_new, h)
            out[t[active], rows[active]] = h[active]
    return out, h, saved


def numpy_layer_backward(dout, dh, saved, x, w_ih, w_hh, reset_after):
    """Backward of numpy_layer_forward(..., keep=True) in the forward
    direction over full lengths: (dx, dh0, dw_ih, dw_hh, db_ih, db_hh) for
    the gradient dout of out and dh of h_n."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dgi = np.empty((T, B, 3 * H), dtype=x.dtype)
    dgh = np.empty((T, B, 3 * H), dtype=x.dtype)
    hprev = np.empty((T, B, H), dtype=x.dtype)
    aux_all = np.empty((T, B, H), dtype=x.dtype)
    dh = dh.copy()
    for t in range(T - 1, -1, -1):
        h, r, z, n, aux = saved[t]
        dht = dh + dout[t]
        dn = dht * (1 - z) * (1 - n * n)
        dz = dht * (h - n) * z * (1 - z)
        if reset_after:
            dr = dn * aux * r * (1 - r)
            dgh[t] = np.concatenate([dr, dz, dn * r], axis=1)
            dh = dht * z + dgh[t] @ w_hh
        else:
            drh = dn @ w_hh[2 * H:]
            dr = drh * h * r * (1 - r)
            dgh[t] = np.concatenate([dr, dz, dn], axis=1)
            dh = dht * z + drh * r + dgh[t, :, :2 * H] @ w_hh[:2 * H]
        dgi[t] = np.concatenate([dr, dz, dn], axis=1)
        hprev[t] = h
        aux_all[t] = aux
    dgi2 = dgi.reshape(T * B, 3 * H)
    dgh2 = dgh.reshape(T * B, 3 * H)
    dw_ih = dgi2.T @ x.reshape(T * B, -1)
    dx = (dgi2 @ w_ih).reshape(x.shape)
    if reset_after:
        dw_hh = dgh2.T @ hprev.reshape(T * B, H)
    else:
        dw_hh = np.concatenate([dgh2[:, :2 * H].T @ hprev.reshape(T * B, H),
                                dgh2[:, 2 * H:].T @ aux_all.reshape(T * B, H)])
    return dx, dh, dw_ih, dw_hh, dgi2.sum(0), dgh2.sum(0)
