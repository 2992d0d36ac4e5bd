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
    n_states = len(cell.states)
    n_out = len(ctx.node.outputs)
    label = ctx.label

    def recurrent(X, W=None, R=None, B=None, seq_lens=None, *states):
        if X.ndim != 3:
            raise ValueError(f"{label}: X has shape {X.shape}, expected 3-D")
        T, batch = (X.shape[0], X.shape[1]) if layout == 0 else (X.shape[1], X.shape[0])
        x = np.ascontiguousarray(X, dtype=dtype)
        lengths = None
        if seq_lens is not None:
            if seq_lens.shape != (batch,) or seq_lens.dtype.kind not in "iu":
                raise ValueError(f"{label}: sequence_lens has shape {seq_lens.shape} and type "
                                 f"{seq_lens.dtype}, expected ({batch},) integers")
            if batch and seq_lens.min() < T:
                lengths = seq_lens
        given = [None if s is None else
                 np.ascontiguousarray(s if layout == 0 else s.transpose(1, 0, 2), dtype=dtype)
                 for s in states[:n_states]]
        given += [None] * (n_states - len(given))
        if all(s is None for s in given):
            hx = None
        else:
            shapes = [(D, batch, H)] * n_states
            hx = [np.zeros(shape, dtype) if s is None else s for s, shape in zip(given, shapes)]
            for s, shape, (name, _, _) in zip(hx, shapes, cell.states):
                if s.shape != shape:
                    raise ValueError(f"{label}: initial_{name} has shape {s.shape} (seen as "
                                     f"(D, B, H)), expected {shape}")
            hx = hx[0] if n_states == 1 else tuple(hx)
        out, final = run(x, hx, lengths)
        final = (final,) if n_states == 1 else tuple(final)
        if lengths is not None and batch and lengths.min() == 0:
            empty = lengths == 0
            for f in final:
                f[:, empty] = 0
        if layout == 0:
            Y = out.reshape(T, batch, D, H).transpose(0, 2, 1, 3)
        else:
            Y = out.reshape(batch, T, D, H)
            final = tuple(f.transpose(1, 0, 2) for f in final)
        results = (Y,) + final
        return results[0] if n_out == 1 else results[:n_out]
    return recurrent


for _op_type, _attrs in _ATTRS.items():
    _n_inputs = 8 if _op_type == "LSTM" else 6
    op(_op_type, attrs=_attrs, inputs=(1, _n_inputs),
       outputs=(1, 1 + len(ONNX_CELLS[_op_type].states)), heavy=True)(_build)
