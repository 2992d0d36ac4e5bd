"""A plain-NumPy reference GRU (forward and hand-derived backward), written for clarity, not speed.

It is independent of gru_cy and is the yardstick the package is tested against. The maths is
docs/architecture.md ("The maths and the contract"); gate order in every stored weight is r, z, n (PyTorch):

    r_t = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
    z_t = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
    reset_after=True:   n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    reset_after=False:  n_t = tanh(W_in x_t + b_in + W_hn (r_t * h_{t-1}) + b_hn)
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Every sequence of the batch is run on its own, one time step at a time, with (H,)-vectors, so the
handling of variable lengths is obvious: the forward direction visits t = 0 .. len_b - 1 and the
reverse direction t = len_b - 1 .. 0. Arithmetic is done in the widest dtype of the inputs, so
pass float64 arrays to get a float64 reference.
"""

import numpy as np

__all__ = ["ref_gru_forward", "ref_gru_backward", "random_params", "param_names"]


def _sigmoid(a):
    # 0.5 * (1 + tanh(a / 2)) is sigmoid without overflow warnings for large |a|.
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _suffixes(bidirectional):
    return ("", "_reverse") if bidirectional else ("",)


def param_names(num_layers, bidirectional, bias):
    """The PyTorch parameter names, in PyTorch's order."""
    names = []
    for k in range(num_layers):
        for suffix in _suffixes(bidirectional):
            names += [f"weight_ih_l{k}{suffix}", f"weight_hh_l{k}{suffix}"]
            if bias:
                names += [f"bias_ih_l{k}{suffix}", f"bias_hh_l{k}{suffix}"]
    return names


def random_params(rng, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True,
                  dtype=np.float64):
    """PyTorch-named parameters drawn from U(-1/sqrt(H), 1/sqrt(H)) with the Generator `rng`."""
    D = 2 if bidirectional else 1
    H = hidden_size
    bound = 1.0 / np.sqrt(H)
    params = {}
    for name in param_names(num_layers, bidirectional, bias):
        k = int(name.split("_l")[1].split("_")[0])
        in_k = input_size if k == 0 else D * H
        if name.startswith("weight_ih"):
            shape = (3 * H, in_k)
        elif name.startswith("weight_hh"):
            shape = (3 * H, H)
        else:
            shape = (3 * H,)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


def _layer_weights(params, k, suffix, bias, H, dtype):
    """Split one layer/direction's weights into the per-gate blocks (r, z, n)."""
    W_ih = params[f"weight_ih_l{k}{suffix}"].astype(dtype)
    W_hh = params[f"weight_hh_l{k}{suffix}"].astype(dtype)
    if bias:
        b_ih = params[f"bias_ih_l{k}{suffix}"].astype(dtype)
        b_hh = params[f"bias_hh_l{k}{suffix}"].astype(dtype)
    else:
        b_ih = np.zeros(3 * H, dtype)
        b_hh = np.zeros(3 * H, dtype)
    W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
    W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
    b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
    b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
    return dict(W_ir=W_ir, W_iz=W_iz, W_in=W_in, W_hr=W_hr, W_hz=W_hz, W_hn=W_hn,
                b_ir=b_ir, b_iz=b_iz, b_in=b_in, b_hr=b_hr, b_hz=b_hz, b_hn=b_hn)


def _cell_forward(w, x_t, h_prev, reset_after):
    """One GRU step for one sequence: x_t (I,), h_prev (H,) -> h (H,) and what backward needs."""
    r = _sigmoid(w["W_ir"] @ x_t + w["b_ir"] + w["W_hr"] @ h_prev + w["b_hr"])
    z = _sigmoid(w["W_iz"] @ x_t + w["b_iz"] + w["W_hz"] @ h_prev + w["b_hz"])
    saved = dict(x=x_t, h_prev=h_prev, r=r, z=z)
    if reset_after:
        hn = w["W_hn"] @ h_prev + w["b_hn"]            # the recurrent part of n before the reset
        n = np.tanh(w["W_in"] @ x_t + w["b_in"] + r * hn)
        saved["hn"] = hn
    else:
        rh = r * h_prev                                # the reset state fed to W_hn
        n = np.tanh(w["W_in"] @ x_t + w["b_in"] + w["W_hn"] @ rh + w["b_hn"])
        saved["rh"] = rh
    saved["n"] = n
    h = (1.0 - z) * n + z * h_prev
    return h, saved


def ref_gru_forward(x, params, *, num_layers, bidirectional, reset_after, bias, h0=None,
                    lengths=None, dropout_masks=None, go_backwards=False):
    """Run a (multi-layer, optionally bidirectional) GRU over a time-major batch.

    x: (T, B, I). params: dict with PyTorch names. h0: (L*D, B, H) or None (zeros).
    go_backwards (unidirectional only): the one direction is the reverse one, each sequence read
    from t = len_b - 1 down to 0 with out[t] aligned with x[t] (Keras go_backwards, ONNX
    direction="reverse").
    lengths: B ints in [0, T] or None (all T). dropout_masks: None or a list of L-1 arrays of
    shape (T, B, D*H), multiplied (already scaled) into the outputs of layers 0 .. L-2 before
    they feed the next layer.
    Returns out (T, B, D*H), h_n (L*D, B, H) and a cache for ref_gru_backward.
    """
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (T, B, I), got shape {x.shape}")
    T, B, _ = x.shape
    L = num_layers
    D = 2 if bidirectional else 1
    H = params["weight_hh_l0"].shape[1]
    dtype = np.result_type(x.dtype, *(p.dtype for p in params.values()),
                           *(() if h0 is None else (np.asarray(h0).dtype,)))
    if not np.issubdtype(dtype, np.floating):
        dtype = np.float64
    x = x.astype(dtype)
    h0 = np.zeros((L * D, B, H), dtype) if h0 is None else np.asarray(h0).astype(dtype)
    if lengths is None:
        lengths = np.full(B, T, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    assert lengths.shape == (B,) and np.all((0 <= lengths) & (lengths <= T))
    if dropout_masks is not None:
        assert len(dropout_masks) == L - 1
    assert not (go_backwards and bidirectional)

    h_n = np.zeros((L * D, B, H), dtype)
    cache = dict(params=params, num_layers=L, bidirectional=bidirectional, reset_after=reset_after,
                 bias=bias, T=T, B=B, H=H, D=D, dtype=dtype, lengths=lengths, layers=[])
    layer_input = x
    for k in range(L):
        out = np.zeros((T, B, D * H), dtype)
        layer_cache = dict(input=layer_input, directions=[])
        for d, suffix in enumerate(_suffixes(bidirectional)):
            w = _layer_weights(params, k, suffix, bias, H, dtype)
            sequences = []                              # per b: the list of saved steps, in run order
            for b in range(B):
                len_b = lengths[b]
                forward = d == 0 and not go_backwards
                times = range(len_b) if forward else range(len_b - 1, -1, -1)
                h = h0[k * D + d, b]
                steps = []
                for t in times:
                    h, saved = _cell_forward(w, layer_input[t, b], h, reset_after)
                    saved["t"] = t
                    steps.append(saved)
                    out[t, b, d * H:(d + 1) * H] = h
                h_n[k * D + d, b] = h
                sequences.append(steps)
            layer_cache["directions"].append(dict(weights=w, suffix=suffix, sequences=sequences))
        mask = None
        if k < L - 1 and dropout_masks is not None:
            mask = np.asarray(dropout_masks[k]).astype(dtype)
        layer_cache["mask"] = mask
        cache["layers"].append(layer_cache)
        layer_input = out if mask is None else out * mask
    return out, h_n, cache


def _cell_backward(w, saved, dh, reset_after, grads):
    """Backprop one step. dh: dLoss/dh_t (H,). Adds the weight gradients into `grads` (dict of the
    per-gate blocks) and returns (dx_t, dh_prev)."""
    x_t, h_prev, r, z, n = saved["x"], saved["h_prev"], saved["r"], saved["z"], saved["n"]
    # h = (1 - z) n + z h_prev
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    da_n = dn * (1.0 - n * n)                  # through tanh
    if reset_after:
        # a_n = W_in x + b_in + r * hn,  hn = W_hn h_prev + b_hn
        hn = saved["hn"]
        dr = da_n * hn
        dhn = da_n * r
        grads["W_hn"] += np.outer(dhn, h_prev)
        grads["b_hn"] += dhn
        dh_prev += w["W_hn"].T @ dhn
    else:
        # a_n = W_in x + b_in + W_hn rh + b_hn,  rh = r * h_prev
        rh = saved["rh"]
        drh = w["W_hn"].T @ da_n
        grads["W_hn"] += np.outer(da_n, rh)
        grads["b_hn"] += da_n
        dr = drh * h_prev
        dh_prev += drh * r
    da_r = dr * r * (1.0 - r)                  # through sigmoid
    da_z = dz * z * (1.0 - z)
    for gate, da in (("r", da_r), ("z", da_z), ("n", da_n)):
        grads[f"W_i{gate}"] += np.outer(da, x_t)
        grads[f"b_i{gate}"] += da
    for gate, da in (("r", da_r), ("z", da_z)):
        grads[f"W_h{gate}"] += np.outer(da, h_prev)
        grads[f"b_h{gate}"] += da
    dh_prev += w["W_hr"].T @ da_r + w["W_hz"].T @ da_z
    dx_t = w["W_ir"].T @ da_r + w["W_iz"].T @ da_z + w["W_in"].T @ da_n
    return dx_t, dh_prev


def ref_gru_backward(cache, dout, dh_n):
    """Backprop through time for ref_gru_forward.

    dout: (T, B, D*H) or None (zeros); dh_n: (L*D, B, H) or None (zeros). Entries of dout at
    padded positions (t >= len_b) are ignored, since out is a constant 0 there.
    Returns dx (T, B, I), dh0 (L*D, B, H) and a dict of parameter gradients (PyTorch names).
    """
    params = cache["params"]
    L, D, T, B, H = cache["num_layers"], cache["D"], cache["T"], cache["B"], cache["H"]
    dtype, reset_after, bias = cache["dtype"], cache["reset_after"], cache["bias"]
    d_layer_out = (np.zeros((T, B, D * H), dtype) if dout is None
                   else np.asarray(dout).astype(dtype).copy())
    dh_n = np.zeros((L * D, B, H), dtype) if dh_n is None else np.asarray(dh_n).astype(dtype)
    dh0 = np.zeros((L * D, B, H), dtype)
    grads = {}
    d_input = None
    for k in range(L - 1, -1, -1):
        layer_cache = cache["layers"][k]
        d_input = np.zeros_like(layer_cache["input"])
        for d, direction in enumerate(layer_cache["directions"]):
            w = direction["weights"]
            g = {name: np.zeros_like(value) for name, value in w.items()}
            for b, steps in enumerate(direction["sequences"]):
                dh = dh_n[k * D + d, b].copy()
                for saved in reversed(steps):
                    t = saved["t"]
                    dh = dh + d_layer_out[t, b, d * H:(d + 1) * H]
                    dx_t, dh = _cell_backward(w, saved, dh, reset_after, g)
                    d_input[t, b] += dx_t
                dh0[k * D + d, b] = dh
            suffix = direction["suffix"]
            grads[f"weight_ih_l{k}{suffix}"] = np.concatenate([g["W_ir"], g["W_iz"], g["W_in"]])
            grads[f"weight_hh_l{k}{suffix}"] = np.concatenate([g["W_hr"], g["W_hz"], g["W_hn"]])
            if bias:
                grads[f"bias_ih_l{k}{suffix}"] = np.concatenate([g["b_ir"], g["b_iz"], g["b_in"]])
                grads[f"bias_hh_l{k}{suffix}"] = np.concatenate([g["b_hr"], g["b_hz"], g["b_hn"]])
        if k > 0:
            mask = cache["layers"][k - 1]["mask"]
            d_layer_out = d_input if mask is None else d_input * mask
    grads = {name: grads[name] for name in params}       # same key order as params
    return d_input, dh0, grads
