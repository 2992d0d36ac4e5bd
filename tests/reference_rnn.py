"""A plain-NumPy reference Elman RNN (forward and hand-derived backward), written for clarity.

It is independent of gru_cy and is the yardstick gru_cy.RNN is tested against:

    h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),    act = tanh or relu

with W_ih (H, I_k), W_hh (H, H) under PyTorch's names. Every sequence of the batch runs on its own,
one step at a time with (H,)-vectors: the forward direction visits t = 0 .. len_b - 1, the reverse
direction t = len_b - 1 .. 0; out[t, b] = 0 for t >= len_b and the final state is the one after the
last visited step (h0 when len_b = 0).

Backward, for loss L with dL/dout and dL/dh_n given, walks each sequence's visited steps in reverse:

    dy    = dL/dout[t] + (gradient carried from the step after)
    dpre  = dy * act'(pre)          tanh' = 1 - y^2, relu' = [pre > 0]
    dW_ih += outer(dpre, x_t)   dW_hh += outer(dpre, h_{t-1})   db_ih += dpre   db_hh += dpre
    dx_t  += W_ih^T dpre        carried = W_hh^T dpre

Arithmetic is done in the dtype of the inputs: pass float64 for a float64 reference.
"""

import numpy as np

__all__ = ["ref_rnn_forward", "ref_rnn_backward", "random_rnn_params", "rnn_param_names"]


def _act(name, pre):
    if name == "tanh":
        return np.tanh(pre)
    if name == "relu":
        return np.maximum(pre, 0.0)
    raise ValueError(name)


def _act_grad(name, pre, y):
    if name == "tanh":
        return 1.0 - y * y
    return (pre > 0).astype(pre.dtype)


def rnn_param_names(num_layers, bidirectional, bias):
    """The PyTorch parameter names, in PyTorch's order."""
    names = []
    for k in range(num_layers):
        for suffix in (("", "_reverse") if bidirectional else ("",)):
            names += [f"weight_ih_l{k}{suffix}", f"weight_hh_l{k}{suffix}"]
            if bias:
                names += [f"bias_ih_l{k}{suffix}", f"bias_hh_l{k}{suffix}"]
    return names


def random_rnn_params(rng, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                      dtype=np.float64):
    """PyTorch-named parameters drawn from U(-1/sqrt(H), 1/sqrt(H))."""
    D = 2 if bidirectional else 1
    H = hidden_size
    bound = 1.0 / np.sqrt(H)
    params = {}
    for name in rnn_param_names(num_layers, bidirectional, bias):
        k = int(name.split("_l")[1].split("_")[0])
        if name.startswith("weight_ih"):
            shape = (H, input_size if k == 0 else D * H)
        elif name.startswith("weight_hh"):
            shape = (H, H)
        else:
            shape = (H,)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


def _directions(bidirectional, go_backwards):
    if bidirectional:
        return [("", False), ("_reverse", True)]
    return [("", go_backwards)]


def ref_rnn_forward(x, params, num_layers=1, nonlinearity="tanh", bidirectional=False, bias=True,
                    h0=None, lengths=None, go_backwards=False):
    """x (T, B, I) -> (out (T, B, D*H), h_n (L*D, B, H), cache for ref_rnn_backward)."""
    x = np.asarray(x)
    T, B, _ = x.shape
    dirs = _directions(bidirectional, go_backwards)
    D = len(dirs)
    H = params["weight_hh_l0"].shape[1]
    dtype = x.dtype
    if h0 is None:
        h0 = np.zeros((num_layers * D, B, H), dtype)
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    h_n = np.zeros((num_layers * D, B, H), dtype)
    layer_in = x
    layers = []
    for k in range(num_layers):
        out = np.zeros((T, B, D * H), dtype)
        steps = {}      # (d, b) -> list of (t, h_prev, pre, y)
        for d, (sfx, reverse) in enumerate(dirs):
            w_ih, w_hh = params[f"weight_ih_l{k}{sfx}"], params[f"weight_hh_l{k}{sfx}"]
            b = (params[f"bias_ih_l{k}{sfx}"] + params[f"bias_hh_l{k}{sfx}"]) if bias else 0.0
            for bb in range(B):
                n = int(lengths[bb])
                order = range(n - 1, -1, -1) if reverse else range(n)
                h = h0[k * D + d, bb].astype(dtype)
                record = []
                for t in order:
                    pre = w_ih @ layer_in[t, bb] + w_hh @ h + b
                    y = _act(nonlinearity, pre)
                    record.append((t, h, pre, y))
                    out[t, bb, d * H:(d + 1) * H] = y
                    h = y
                steps[(d, bb)] = record
                h_n[k * D + d, bb] = h
        layers.append((layer_in, steps))
        layer_in = out
    cache = dict(layers=layers, params=params, num_layers=num_layers, dirs=dirs, H=H, bias=bias,
                 nonlinearity=nonlinearity, shape=(T, B), dtype=dtype)
    return layer_in, h_n, cache


def ref_rnn_backward(cache, dout, dh_n):
    """(dx (T, B, I), dh0 (L*D, B, H), {name: gradient}) for loss with the given dout, dh_n."""
    params, dirs, H = cache["params"], cache["dirs"], cache["H"]
    L, D, act = cache["num_layers"], len(cache["dirs"]), cache["nonlinearity"]
    T, B = cache["shape"]
    dtype = cache["dtype"]
    grads = {name: np.zeros_like(p) for name, p in params.items()}
    dh0 = np.zeros((L * D, B, H), dtype)
    d_above = np.asarray(dout, dtype)
    for k in range(L - 1, -1, -1):
        layer_in, steps = cache["layers"][k]
        d_in = np.zeros(layer_in.shape, dtype)
        for d, (sfx, _) in enumerate(dirs):
            w_ih, w_hh = params[f"weight_ih_l{k}{sfx}"], params[f"weight_hh_l{k}{sfx}"]
            for bb in range(B):
                carried = np.asarray(dh_n[k * D + d, bb], dtype).copy()
                for t, h_prev, pre, y in reversed(steps[(d, bb)]):
                    dy = d_above[t, bb, d * H:(d + 1) * H] + carried
                    dpre = dy * _act_grad(act, pre, y)
                    grads[f"weight_ih_l{k}{sfx}"] += np.outer(dpre, layer_in[t, bb])
                    grads[f"weight_hh_l{k}{sfx}"] += np.outer(dpre, h_prev)
                    if cache["bias"]:
                        grads[f"bias_ih_l{k}{sfx}"] += dpre
                        grads[f"bias_hh_l{k}{sfx}"] += dpre
                    d_in[t, bb] += w_ih.T @ dpre
                    carried = w_hh.T @ dpre
                dh0[k * D + d, bb] = carried
        d_above = d_in
    return d_above, dh0, grads
