"""An independent NumPy Jordan network, written from the equations alone:

    h_t = act(W_ih x_t + b_ih + W_yh y_{t-1})
    y_t = out_act(W_hy h_t + b_hy)

One sequence at a time, one step at a time, in float64 with NumPy's own
tanh and exp; no code shared with gru_cy. Backward is plain backpropagation
through time written out from the chain rule.
"""

import numpy as np

ACT = {
    "tanh": (np.tanh, lambda h: 1.0 - h * h),
    "relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(np.float64)),
    "sigmoid": (lambda a: 1.0 / (1.0 + np.exp(-a)), lambda h: h * (1.0 - h)),
    "identity": (lambda a: a, lambda y: np.ones_like(y)),
}


def _params(p, H, O):
    b_ih = p.get("bias_ih", np.zeros(H))
    b_hy = p.get("bias_hy", np.zeros(O))
    return (np.asarray(p["weight_ih"], np.float64), np.asarray(b_ih, np.float64),
            np.asarray(p["weight_yh"], np.float64), np.asarray(p["weight_hy"], np.float64),
            np.asarray(b_hy, np.float64))


def forward(params, x, y0=None, lengths=None, act="tanh", out_act="identity"):
    """x (T, B, I) time-major; y0 (B, O) or None; lengths (B,) or None.

    Returns out (T, B, O), y_n (B, O) and, per sequence, the list of
    (h_t, y_t) pairs of its valid steps (for backward).
    """
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    H = params["weight_ih"].shape[0]
    O = params["weight_hy"].shape[0]
    w_ih, b_ih, w_yh, w_hy, b_hy = _params(params, H, O)
    f, _ = ACT[act]
    g, _ = ACT[out_act]
    y0 = np.zeros((B, O)) if y0 is None else np.asarray(y0, np.float64)
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    out = np.zeros((T, B, O))
    y_n = np.zeros((B, O))
    history = []
    for b in range(B):
        y = y0[b].copy()
        steps = []
        for t in range(lengths[b]):
            h = f(w_ih @ x[t, b] + b_ih + w_yh @ y)
            y = g(w_hy @ h + b_hy)
            out[t, b] = y
            steps.append((h, y))
        y_n[b] = y
        history.append(steps)
    return out, y_n, history


def backward(params, x, y0, lengths, dout, dy_n, act="tanh", out_act="identity"):
    """Gradients of sum(out * dout) + sum(y_n * dy_n): (dx, dy0, dparams)."""
    x = np.asarray(x, np.float64)
    T, B, I = x.shape
    H = params["weight_ih"].shape[0]
    O = params["weight_hy"].shape[0]
    w_ih, b_ih, w_yh, w_hy, b_hy = _params(params, H, O)
    y0 = np.zeros((B, O)) if y0 is None else np.asarray(y0, np.float64)
    lengths = [T] * B if lengths is None else [int(n) for n in lengths]
    _, _, history = forward(params, x, y0, lengths, act, out_act)
    _, df = ACT[act]
    _, dg = ACT[out_act]
    dx = np.zeros_like(x)
    dy0 = np.zeros((B, O))
    g = {k: np.zeros_like(v) for k, v in
         dict(weight_ih=w_ih, bias_ih=b_ih, weight_yh=w_yh, weight_hy=w_hy, bias_hy=b_hy).items()}
    for b in range(B):
        steps = history[b]
        dy = np.array(dy_n[b], np.float64)          # dL/dy of the last valid step
        for t in range(lengths[b] - 1, -1, -1):
            h, y = steps[t]
            y_prev = steps[t - 1][1] if t > 0 else y0[b]
            dy = dy + dout[t, b]
            dz = dy * dg(y)
            g["weight_hy"] += np.outer(dz, h)
            g["bias_hy"] += dz
            da = (w_hy.T @ dz) * df(h)
            g["weight_ih"] += np.outer(da, x[t, b])
            g["bias_ih"] += da
            g["weight_yh"] += np.outer(da, y_prev)
            dx[t, b] = w_ih.T @ da
            dy = w_yh.T @ da
        dy0[b] = dy
    grads = {k: v for k, v in g.items() if k in params}
    return dx, dy0, grads
