"""An independent NumPy reference for the one-step cells (GRUCell, LSTMCell, RNNCell).

A cell is one step of one layer: the modules' references (reference.py,
reference_lstm.py, reference_rnn.py, written from the equations) run with
T = 1 and the cell's parameters under the layer's names (``weight_ih`` ->
``weight_ih_l0``). Everything in float64.
"""

import numpy as np

from reference import ref_gru_backward, ref_gru_forward
from reference_lstm import ref_lstm_backward, ref_lstm_forward
from reference_rnn import ref_rnn_backward, ref_rnn_forward

KINDS = ("gru", "lstm", "rnn_tanh", "rnn_relu")


def _layer(params):
    return {f"{name}_l0": np.asarray(p, np.float64) for name, p in params.items()}


def ref_cell(kind, params, x, hx=None, dh=None, dc=None):
    """One step of a cell on x (B, I): (state, dx, dstate, grads).

    hx: None, h (B, H), or for the LSTM (h, c). dh (and dc for the LSTM) the
    gradient of the new state (None: zeros). state is h or (h, c); dstate
    the gradient of hx in the same form; grads by the cell's parameter names.
    """
    x = np.asarray(x, np.float64)[None]
    B = x.shape[1]
    p = _layer(params)
    bias = "bias_ih" in params
    H = np.asarray(params["weight_hh"]).shape[1]
    zeros = np.zeros((B, H))
    if kind == "lstm":
        h0, c0 = (zeros, zeros) if hx is None else hx
        out, h_n, c_n, cache = ref_lstm_forward(x, p, bias=bias, h0=np.asarray(h0)[None],
                                                c0=np.asarray(c0)[None])
        dout = (zeros if dh is None else np.asarray(dh, np.float64))[None]
        dx, dh0, dc0, grads = ref_lstm_backward(cache, dout, None,
                                                None if dc is None else np.asarray(dc)[None])
        state, dstate = (h_n[0], c_n[0]), (dh0[0], dc0[0])
    elif kind == "gru":
        h0 = zeros if hx is None else np.asarray(hx, np.float64)
        out, h_n, cache = ref_gru_forward(x, p, num_layers=1, bidirectional=False,
                                          reset_after=True, bias=bias, h0=h0[None])
        dout = (zeros if dh is None else np.asarray(dh, np.float64))[None]
        dx, dh0, grads = ref_gru_backward(cache, dout, None)
        state, dstate = h_n[0], dh0[0]
    else:
        h0 = zeros if hx is None else np.asarray(hx, np.float64)
        out, h_n, cache = ref_rnn_forward(x, p, nonlinearity=kind[4:], bias=bias, h0=h0[None])
        dout = (zeros if dh is None else np.asarray(dh, np.float64))[None]
        dx, dh0, grads = ref_rnn_backward(cache, dout, np.zeros((1, B, H)))
        state, dstate = h_n[0], dh0[0]
    return state, dx[0], dstate, {name[:-3]: g for name, g in grads.items()}
