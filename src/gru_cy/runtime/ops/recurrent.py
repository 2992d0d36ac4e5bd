"""GRU, LSTM and RNN nodes on gru_cy's modules.

The node is read as load_onnx reads one (``io.onnx.read.read_recurrent_node``:
every attribute, gate order and weight shape the loaders accept), and a
one-layer module is built from it at load. At run the node's inputs map onto a
module call: X (layout 0: (T, B, I); layout 1: (B, T, I)) is ``x``,
sequence_lens is ``lengths``, initial_h / initial_c (D, B, H) — (B, D, H)
with layout 1 — the initial state, zeros when absent. Y is the module's
output seen as (T, D, B, H) (layout 1: (B, T, D, H)), Y_h and Y_c its final
state. As ONNX Runtime does, a sequence of length 0 ends in the state 0.
"""

from __future__ import annotations

import numpy as np

from gru_cy.io.onnx.cells import ONNX_CELLS
from gru_cy.io.onnx.read import module_of, read_recurrent_node
from gru_cy.runtime._precision import recurrent_runner
from gru_cy.runtime._registry import FLOAT, FLOATS, INT, STRING, STRINGS, op

_COMMON = {"activation_alpha": (FLOATS, None), "activation_beta": (FLOATS, None),
           "activations": (STRINGS, None), "clip": (FLOAT, None),
           "direction": (STRING, "forward"), "hidden_size": (INT, None), "layout": (INT, 0)}
_ATTRS = {"GRU": dict(_COMMON, linear_before_reset=(INT, 0)),
          "LSTM": dict(_COMMON, input_forget=(INT, 0)), "RNN": dict(_COMMON)}


def _build(ctx):
    cell = ONNX_CELLS[ctx.node.op_type]
    consts = {name: ctx.const(i) for i, name in enumerate(ctx.node.inputs) if name}
    layer = read_recurrent_node(ctx.node, cell, consts.get)
    layout, D, H = layer["layout"], layer["D"], layer["H"]
    module = module_of(cell, [layer], batch_first=layout == 1)
    run = recurrent_runner(module, ctx.precision, ctx.label)
    dtype = module.dtype
    lstm = len(cell.states) == 2
    n_out = len(ctx.node.outputs)
    label = ctx.label

    def state(value, name, batch):
        """An initial state as the module takes it: (D, B, H), contiguous, its dtype."""
        s = np.ascontiguousarray(value if layout == 0 else value.transpose(1, 0, 2), dtype)
        if s.shape != (D, batch, H):
            raise ValueError(f"{label}: initial_{name} has shape {value.shape}, expected "
                             f"{(D, batch, H) if layout == 0 else (batch, D, H)}")
        return s

    def recurrent(X, W=None, R=None, B=None, seq_lens=None, h0=None, c0=None, P=None):
        if X.ndim != 3:
            raise ValueError(f"{label}: X has shape {X.shape}, expected 3-D")
        x = np.ascontiguousarray(X, dtype)
        T, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
        lengths = None
        if seq_lens is not None:
            if seq_lens.shape != (batch,) or seq_lens.dtype.kind not in "iu":
                raise ValueError(f"{label}: sequence_lens has shape {seq_lens.shape} and type "
                                 f"{seq_lens.dtype}, expected ({batch},) integers")
            if batch and seq_lens.min() < T:
                lengths = seq_lens
        if lstm:
            if h0 is None and c0 is None:
                hx = None
            else:
                zeros = np.zeros((D, batch, H), dtype)
                hx = (zeros if h0 is None else state(h0, "h", batch),
                      zeros if c0 is None else state(c0, "c", batch))
            out, (h_n, c_n) = run(x, hx, lengths)
            finals = (h_n, c_n)
        else:
            out, h_n = run(x, None if h0 is None else state(h0, "h", batch), lengths)
            finals = (h_n,)
        if lengths is not None and batch and lengths.min() == 0:
            for f in finals:   # ONNX Runtime's final state of an empty sequence
                f[:, lengths == 0] = 0
        if layout == 0:
            Y = out.reshape(T, batch, D, H).transpose(0, 2, 1, 3)
        else:
            Y = out.reshape(batch, T, D, H)
            finals = tuple(f.transpose(1, 0, 2) for f in finals)
        if n_out == 1:
            return Y
        return ((Y,) + finals)[:n_out]
    return recurrent


for _op_type, _attrs in _ATTRS.items():
    _n_inputs = 8 if _op_type == "LSTM" else 6
    op(_op_type, attrs=_attrs, inputs=(1, _n_inputs),
       outputs=(1, 1 + len(ONNX_CELLS[_op_type].states)), heavy=True)(_build)
