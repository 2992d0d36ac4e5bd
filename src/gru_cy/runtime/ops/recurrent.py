"""GRU, LSTM and RNN nodes on gru_cy's modules.

The node is read as load_onnx reads one (``io.onnx.read.read_recurrent_node``:
every attribute, gate order and weight shape the loaders accept), and a
one-layer module is built from it at load. At run the node's inputs map onto a
module call: X (layout 0: (T, B, I); layout 1: (B, T, I)) is ``x``,
sequence_lens is ``lengths``, initial_h / initial_c (D, B, H) — (B, D, H)
with layout 1 — the initial state, zeros when absent. Y is the module's
output seen as (T, D, B, H) (layout 1: (B, T, D, H)), Y_h and Y_c its final
state. As ONNX Runtime does, a sequence of length 0 ends in the state 0.

Exporters write a stack of layers as one node per layer, each reading the
previous one's Y through a Squeeze and its initial state through a Slice of one
state tensor. ``fuse_stacks`` turns such a chain of unidirectional nodes into
one step on one multi-layer module (one call into the kernels for every layer);
each layer's final state is still an output of its own.
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


def _kernel(run, cell, layout, D, H, L, dtype, label, results, stacked=False):
    """The kernel of L layers of one cell on a module call ``run(x, hx, lengths)``.

    Initial states are (L * D, B, H) ((B, L * D, H) with layout 1), or for a stacked
    chain the tensor whose first L * D rows they are; ``results(Y, finals)`` picks the
    outputs, finals being the final states (h, and c for an LSTM), each (L * D, B, H).
    """
    lstm = len(cell.states) == 2
    LD = L * D

    def state(value, name, batch):
        """An initial state as the module takes it: (L * D, B, H), contiguous, its dtype."""
        if stacked and value.ndim == 3 and value.shape[0] > LD:
            value = value[:LD]
        s = np.ascontiguousarray(value if layout == 0 else value.transpose(1, 0, 2), dtype)
        if s.shape != (LD, batch, H):
            raise ValueError(f"{label}: initial_{name} has shape {value.shape}, expected "
                             f"{(LD, batch, H) if layout == 0 else (batch, LD, H)}")
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
                zeros = np.zeros((LD, batch, H), dtype)
                hx = (zeros if h0 is None else state(h0, "h", batch),
                      zeros if c0 is None else state(c0, "c", batch))
            out, finals = run(x, hx, lengths)
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
        return results(Y, finals)
    return recurrent


def _build(ctx):
    cell = ONNX_CELLS[ctx.node.op_type]
    consts = {name: ctx.const(i) for i, name in enumerate(ctx.node.inputs) if name}
    layer = read_recurrent_node(ctx.node, cell, consts.get)
    module = module_of(cell, [layer], batch_first=layer["layout"] == 1)
    n_out = len(ctx.node.outputs)
    ctx.meta = dict(layer, cell=cell)
    return _kernel(recurrent_runner(module, ctx.precision), cell, layer["layout"], layer["D"],
                   layer["H"], 1, module.dtype, ctx.label,
                   (lambda Y, finals: Y) if n_out == 1 else
                   (lambda Y, finals: ((Y,) + tuple(finals))[:n_out]))


for _op_type, _attrs in _ATTRS.items():
    _n_inputs = 8 if _op_type == "LSTM" else 6
    op(_op_type, attrs=_attrs, inputs=(1, _n_inputs),
       outputs=(1, 1 + len(ONNX_CELLS[_op_type].states)), heavy=True)(_build)


# -- stacks --------------------------------------------------------------------------------

def fuse_stacks(steps, consts, outputs, precision, make_step):
    """Steps with each chain of unidirectional recurrent nodes joined by a Squeeze made one.

    A chain qualifies when its nodes agree (operator, direction, hidden size, the cell's
    settings, layout 0, sequence_lens), each intermediate Y and its squeezed form are read
    by the next node only, and every layer's initial state is absent, or the k-th slice
    along axis 0 of one tensor for every layer. ``make_step(steps, kernel, inputs,
    outputs)`` makes the step standing for the steps given.
    """
    readers = {}
    for step in steps:
        for n in step.inputs:
            if n:
                readers[n] = readers.get(n, 0) + 1
    for n in outputs:
        readers[n] = readers.get(n, 0) + 1
    producer = {o: step for step in steps for o in step.outputs if o}

    def single_reader(name):
        return readers.get(name) == 1

    def next_layer(step):
        """(squeeze step, next recurrent step) continuing step's chain, or None."""
        y = step.outputs[0]
        if not single_reader(y):
            return None
        squeeze = next((s for s in steps if y in s.inputs), None)
        if squeeze is None or squeeze.op_type != "Squeeze" or squeeze.inputs[0] != y:
            return None
        axes = squeeze.attrs.get("axes")
        if axes is None and len(squeeze.inputs) > 1 and squeeze.inputs[1]:
            axes = consts.get(squeeze.inputs[1])
            axes = None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
        if axes not in ([1], [-3]) or not single_reader(squeeze.outputs[0]):
            return None
        nxt = next((s for s in steps if s.inputs and s.inputs[0] == squeeze.outputs[0]), None)
        if nxt is None or nxt.op_type != step.op_type or not _same_layers(step, nxt):
            return None
        return squeeze, nxt

    continued = {}
    for step in steps:
        if getattr(step, "meta", None) is not None and step.meta["D"] == 1 \
                and step.meta["layout"] == 0:
            link = next_layer(step)
            if link is not None:
                continued[id(step)] = link
    heads = set(continued) - {id(nxt) for _, nxt in continued.values()}
    replaced, drop = {}, set()
    for step in steps:
        if id(step) not in heads:
            continue
        chain, squeezes = [step], []
        while id(chain[-1]) in continued:
            squeeze, nxt = continued[id(chain[-1])]
            squeezes.append(squeeze)
            chain.append(nxt)
        fused = _fuse_chain(chain, producer, consts, precision, make_step, single_reader)
        if fused is None:
            continue
        replaced[id(chain[-1])] = fused
        drop.update(id(s) for s in chain[:-1] + squeezes)
    return [replaced.get(id(s), s) for s in steps if id(s) not in drop]


def _same_layers(a, b):
    ma, mb = a.meta, b.meta
    keys = ("direction", "D", "H", "layout", "extra")
    return (all(ma[k] == mb[k] for k in keys) and mb["I"] == ma["H"]
            and (a.inputs + [""] * 5)[4] == (b.inputs + [""] * 5)[4])


def _stacked_state(chain, index, producer, consts, single_reader):
    """The tensor whose slices along axis 0 are the chain's initial states at node input
    ``index``: "" when every layer starts from zeros, None when they do not fit."""
    names = [(s.inputs + [""] * 8)[index] for s in chain]
    if not any(names):
        return ""
    sources = set()
    for k, name in enumerate(names):
        s = producer.get(name)
        if not name or s is None or s.op_type != "Slice" or not single_reader(name):
            return None
        bounds = [consts.get(n) if n else None for n in (s.inputs + [""] * 5)[1:5]]
        if bounds[0] is None or bounds[1] is None:
            return None
        starts, ends = (np.asarray(b).reshape(-1).tolist() for b in bounds[:2])
        axes = [0] if bounds[2] is None else np.asarray(bounds[2]).reshape(-1).tolist()
        steps = [1] if bounds[3] is None else np.asarray(bounds[3]).reshape(-1).tolist()
        if (starts, ends, axes, steps) != ([k], [k + 1], [0], [1]) \
                or (bounds[2] is None and len(s.inputs) > 3 and s.inputs[3]) \
                or (bounds[3] is None and len(s.inputs) > 4 and s.inputs[4]):
            return None
        sources.add(s.inputs[0])
    return sources.pop() if len(sources) == 1 else None


def _fuse_chain(chain, producer, consts, precision, make_step, single_reader):
    first = chain[0].meta
    cell = first["cell"]
    states = [_stacked_state(chain, index, producer, consts, single_reader)
              for _, index, _ in cell.states]
    if any(s is None for s in states):
        return None
    L = len(chain)
    module = module_of(cell, [s.meta for s in chain], batch_first=False)
    finals_out = [[(s.outputs + [""] * 3)[o] for s in chain] for _, _, o in cell.states]

    def results(Y, finals):
        per_layer = tuple(f[k:k + 1] for f in finals for k in range(L))
        return (Y,) + per_layer

    label = " + ".join(s.label for s in chain)
    kernel = _kernel(recurrent_runner(module, precision), cell, 0, 1, first["H"], L,
                     module.dtype, label, results, stacked=True)
    seq_lens = (chain[0].inputs + [""] * 5)[4]
    inputs = [chain[0].inputs[0], "", "", "", seq_lens] + states
    outputs = [chain[-1].outputs[0]] + [n for names in finals_out for n in names]
    return make_step(chain, kernel, inputs, outputs, label)
