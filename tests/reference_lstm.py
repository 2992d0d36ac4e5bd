"""A plain-NumPy reference LSTM (forward and hand-derived backward), written for clarity, not speed.

Independent of gru_cy: the yardstick its LSTM is tested against. PyTorch's nn.LSTM maths, gate
order i, f, g, o in every stored weight:

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t), or W_hr (o * tanh(c_t)) with a projection (proj_size P > 0)

Every sequence runs on its own, one step at a time, with vectors: the forward direction visits
t = 0 .. len_b - 1, the reverse one t = len_b - 1 .. 0; out is zero at padded times and the final
state is the state after the last valid step. Arithmetic is in float64.
"""

import numpy as np

__all__ = ["lstm_param_names", "ref_lstm_forward", "ref_lstm_backward"]


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _suffixes(bidirectional):
    return ("", "_reverse") if bidirectional else ("",)


def lstm_param_names(num_layers, bidirectional, bias, proj_size=0):
    """PyTorch's parameter names, in PyTorch's order."""
    names = []
    for k in range(num_layers):
        for sfx in _suffixes(bidirectional):
            names += [f"weight_ih_l{k}{sfx}", f"weight_hh_l{k}{sfx}"]
            if bias:
                names += [f"bias_ih_l{k}{sfx}", f"bias_hh_l{k}{sfx}"]
            if proj_size:
                names.append(f"weight_hr_l{k}{sfx}")
    return names


def _cell_forward(W_ih, W_hh, b, W_hr, x, h, c):
    """One step for one sequence: (h_new, c_new, saved)."""
    H = W_hh.shape[0] // 4
    a = W_ih @ x + W_hh @ h + b
    i, f = _sigmoid(a[:H]), _sigmoid(a[H:2 * H])
    g, o = np.tanh(a[2 * H:3 * H]), _sigmoid(a[3 * H:])
    c_new = f * c + i * g
    tc = np.tanh(c_new)
    m = o * tc
    h_new = m if W_hr is None else W_hr @ m
    return h_new, c_new, (x, h, c, i, f, g, o, tc, m)


def _cell_backward(W_ih, W_hh, W_hr, saved, dh_new, dc_new, grads):
    """Backward of _cell_forward: (dx, dh, dc); weight gradients added into grads (dict of
    dW_ih, dW_hh, db, dW_hr)."""
    x, h, c, i, f, g, o, tc, m = saved
    if W_hr is None:
        dm = dh_new
    else:
        dm = W_hr.T @ dh_new
        grads["W_hr"] += np.outer(dh_new, m)
    do = dm * tc
    dc_t = dc_new + dm * o * (1.0 - tc ** 2)
    di, df, dg = dc_t * g, dc_t * c, dc_t * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
    grads["W_ih"] += np.outer(da, x)
    grads["W_hh"] += np.outer(da, h)
    grads["b"] += da
    return W_ih.T @ da, W_hh.T @ da, dc_t * f


def ref_lstm_forward(x, params, *, num_layers=1, bidirectional=False, bias=True, proj_size=0,
                     h0=None, c0=None, lengths=None, dropout_masks=None):
    """x (T, B, I) time-major; h0 (L*D, B, R), c0 (L*D, B, H) or None. dropout_masks: per layer
    but the last, a (T, B, D*R) multiplier of that layer's output, or None.

    Returns (out (T, B, D*R), h_n, c_n, cache)."""
    x = np.asarray(x, np.float64)
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[0] // 4
    R = proj_size or H
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h0 = np.zeros((num_layers * D, B, R)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((num_layers * D, B, H)) if c0 is None else np.asarray(c0, np.float64)
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h_n, c_n = np.zeros_like(h0), np.zeros_like(c0)
    layer_in = x
    cache = dict(T=T, B=B, D=D, H=H, R=R, L=num_layers, bias=bias, proj=proj_size, p=p,
                 lengths=lengths, masks=dropout_masks, steps={}, inputs=[])
    for k in range(num_layers):
        out = np.zeros((T, B, D * R))
        for d, sfx in enumerate(_suffixes(bidirectional)):
            W_ih, W_hh = p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"]
            b = p[f"bias_ih_l{k}{sfx}"] + p[f"bias_hh_l{k}{sfx}"] if bias else np.zeros(4 * H)
            W_hr = p[f"weight_hr_l{k}{sfx}"] if proj_size else None
            for bb in range(B):
                n = int(lengths[bb])
                times = range(n) if d == 0 else range(n - 1, -1, -1)
                h, c = h0[k * D + d, bb], c0[k * D + d, bb]
                saved = []
                for t in times:
                    h, c, s = _cell_forward(W_ih, W_hh, b, W_hr, layer_in[t, bb], h, c)
                    out[t, bb, d * R:(d + 1) * R] = h
                    saved.append((t, s))
                h_n[k * D + d, bb], c_n[k * D + d, bb] = h, c
                cache["steps"][k, d, bb] = saved
        cache["inputs"].append(layer_in)
        if dropout_masks is not None and k < num_layers - 1 and dropout_masks[k] is not None:
            out = out * dropout_masks[k]
        layer_in = out
    return layer_in, h_n, c_n, cache


def ref_lstm_backward(cache, dout, dh_n=None, dc_n=None):
    """Backward of ref_lstm_forward: (dx, dh0, dc0, grads) with grads by PyTorch name."""
    T, B, D, H, R, L = (cache[k] for k in ("T", "B", "D", "H", "R", "L"))
    p, masks = cache["p"], cache["masks"]
    dout = np.asarray(dout, np.float64)
    dh_n = np.zeros((L * D, B, R)) if dh_n is None else np.asarray(dh_n, np.float64)
    dc_n = np.zeros((L * D, B, H)) if dc_n is None else np.asarray(dc_n, np.float64)
    dh0, dc0 = np.zeros_like(dh_n), np.zeros_like(dc_n)
    grads = {}
    d_out = dout
    for k in range(L - 1, -1, -1):
        layer_in = cache["inputs"][k]
        d_in = np.zeros_like(layer_in)
        for d, sfx in enumerate(_suffixes(D == 2)):
            W_ih, W_hh = p[f"weight_ih_l{k}{sfx}"], p[f"weight_hh_l{k}{sfx}"]
            W_hr = p[f"weight_hr_l{k}{sfx}"] if cache["proj"] else None
            g = dict(W_ih=np.zeros_like(W_ih), W_hh=np.zeros_like(W_hh), b=np.zeros(4 * H),
                     W_hr=None if W_hr is None else np.zeros_like(W_hr))
            for bb in range(B):
                dh, dc = dh_n[k * D + d, bb].copy(), dc_n[k * D + d, bb].copy()
                for t, s in reversed(cache["steps"][k, d, bb]):
                    dh = dh + d_out[t, bb, d * R:(d + 1) * R]
                    dx_t, dh, dc = _cell_backward(W_ih, W_hh, W_hr, s, dh, dc, g)
                    d_in[t, bb] += dx_t
                dh0[k * D + d, bb], dc0[k * D + d, bb] = dh, dc
            grads[f"weight_ih_l{k}{sfx}"] = g["W_ih"]
            grads[f"weight_hh_l{k}{sfx}"] = g["W_hh"]
            if cache["bias"]:
                grads[f"bias_ih_l{k}{sfx}"] = g["b"].copy()
                grads[f"bias_hh_l{k}{sfx}"] = g["b"].copy()
            if W_hr is not None:
                grads[f"weight_hr_l{k}{sfx}"] = g["W_hr"]
        if k > 0 and masks is not None and masks[k - 1] is not None:
            d_in = d_in * masks[k - 1]
        d_out = d_in
    return d_out, dh0, dc0, grads
