"""load_onnx: a gru_cy module from the recurrent node(s) of an ONNX model.

Cell-independent: finding the recurrent nodes, reading W, R, B (constants
or folded from them), checking shapes and the initial states, checking that
several nodes form one stack of layers, and building the module. What a
cell adds (operator name, gate order, attributes) is its entry in
``gru_cy.io.onnx.cells.ONNX_CELLS``.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import os

    from numpy.typing import DTypeLike

from gru_cy.io._common import (build, cell_spec, float_dtype, inverse, kind_of, module_class,
                               permute_gates, stack_state)
from gru_cy.io.onnx.cells import ONNX_CELLS
from gru_cy.io.onnx.codec import Corrupt, Msg, read_source
from gru_cy.io.onnx.graph import Graph

__all__ = ["load_onnx"]

_D_BY_DIRECTION = {"forward": 1, "reverse": 1, "bidirectional": 2}

# The operators exporters write around a stack of recurrent nodes: layout changes, the
# shape arithmetic of a zero initial state, the folding of the weights, and to_onnx's
# handling of zero-length sequences. Any other operator is a part of the model that a
# gru_cy module cannot hold.
STACK_PLUMBING = frozenset({
    "Identity", "Dropout", "Cast", "Concat", "Transpose", "Unsqueeze", "Squeeze", "Reshape",
    "Slice", "Gather", "Split", "Shape", "ConstantOfShape", "Expand", "Constant", "Equal",
    "Where"})
WHOLE_MODEL_HINT = ("gru_cy.load_onnx reads a stack of recurrent layers; run the whole model "
                    "with gru_cy.InferenceSession(path)")


def read_recurrent_node(node, cell, const):
    """The configuration and weights of one recurrent node (load_onnx and
    gru_cy.runtime share it).

    ``const(name)`` is the value of a tensor stored in the file (or folded
    from stored tensors), None when it is computed from graph inputs. Returns
    a dict: direction, D, H, I, layout, extra (the cell's constructor
    arguments, also spread into the dict), has_bias, params (per direction
    (w_ih, w_hh, b_ih, b_hh) in gru_cy's gate order, biases None without B),
    dtype, node, op, and inputs (the node's input names, padded with "" up to
    the last initial state). Attributes gru_cy cannot honour raise
    NotImplementedError naming them; values no writer produces, ValueError.
    """
    where = node.label()
    G, op = cell.gates, cell.op_type
    direction = node.attr("direction", "forward")
    if direction not in _D_BY_DIRECTION:
        raise ValueError(f"{where}: unknown direction {direction!r}")
    D = _D_BY_DIRECTION[direction]
    extra, unsupported = cell.read_attrs(node, D)
    for key in ("clip", "activation_alpha", "activation_beta"):
        if key in node.attrs:
            unsupported.append(f"{key}={node.attr(key)!r}")
    if unsupported:
        raise NotImplementedError(f"{where} has attributes gru_cy cannot honour: "
                                  + "; ".join(unsupported))
    layout = node.attr("layout", 0)
    if layout not in (0, 1):
        raise ValueError(f"{where}: layout={layout} (expected 0 or 1)")
    n_inputs = max(5, *(i + 1 for _, i, _ in cell.states))
    inputs = node.inputs + [""] * (n_inputs - len(node.inputs))
    arrays = {}
    for label, name in zip(("W", "R", "B"), inputs[1:4]):
        if not name:
            continue
        value = const(name)
        if value is None:
            raise ValueError(f"{where}: its {label} input {name!r} is computed from graph inputs, "
                             f"not stored in the file; gru_cy needs the weights as constants")
        if value.dtype.kind != "f":
            raise ValueError(f"{where}: {label} has dtype {value.dtype}, expected floats")
        arrays[label] = value
    if "W" not in arrays or "R" not in arrays:
        raise ValueError(f"{where} has no W or R input")
    W, R = arrays["W"], arrays["R"]
    rows = "H" if G == 1 else f"{G}*H"
    if R.ndim != 3 or R.shape[0] != D or R.shape[1] != G * R.shape[2]:
        raise ValueError(f"{where}: R has shape {R.shape}, expected ({D}, {rows}, H)")
    H = R.shape[2]
    hidden_size = node.attr("hidden_size", H)
    if hidden_size != H:
        raise ValueError(f"{where}: hidden_size={hidden_size} but R has shape {R.shape}")
    if W.ndim != 3 or W.shape[:2] != (D, G * H):
        raise ValueError(f"{where}: W has shape {W.shape}, expected ({D}, {G * H}, input_size)")
    B = arrays.get("B")
    if B is not None and B.shape != (D, 2 * G * H):
        raise ValueError(f"{where}: B has shape {B.shape}, expected ({D}, {2 * G * H})")
    back = inverse(cell.perm)
    params = []
    for d in range(D):
        b_ih = None if B is None else permute_gates(B[d, :G * H], back)
        b_hh = None if B is None else permute_gates(B[d, G * H:], back)
        params.append((permute_gates(W[d], back), permute_gates(R[d], back), b_ih, b_hh))
    return dict(direction=direction, D=D, H=H, I=W.shape[2], extra=extra, **extra, layout=layout,
                has_bias=B is not None, params=params, dtype=float_dtype(W.dtype), node=node,
                op=op, inputs=inputs)


def _read_node(graph, node, cell):
    """read_recurrent_node, and what a module without state cannot take: a stored
    sequence_lens or a stored non-zero initial state."""
    layer = read_recurrent_node(node, cell, graph.const)
    where, inputs = node.label(), layer["inputs"]
    name = inputs[4]
    if name and graph.const(name) is not None:
        raise NotImplementedError(
            f"{where}: sequence_lens is a constant stored in the graph; pass lengths= when "
            f"calling the gru_cy module instead, or run the whole model with "
            f"gru_cy.InferenceSession")
    for state, index, _ in cell.states:
        name = inputs[index]
        if name:
            _check_initial_state(graph, name, f"initial_{state}", where)
    return layer


def module_of(cell, layers, batch_first, cls=None, dtype=None):
    """The gru_cy module of one stack of recurrent nodes (read_recurrent_node's dicts)."""
    cls = module_class(cls, kind_of(ONNX_CELLS, cell))
    first = layers[0]
    bias = any(lay["has_bias"] for lay in layers)
    stacked = []
    for layer in layers:
        zeros = np.zeros(cell.gates * layer["H"], layer["params"][0][0].dtype)
        stacked.append([(w_ih, w_hh, zeros if b_ih is None else b_ih,
                         zeros if b_hh is None else b_hh)
                        for w_ih, w_hh, b_ih, b_hh in layer["params"]])
    config = dict(input_size=int(first["I"]), hidden_size=int(first["H"]),
                  num_layers=len(layers), bias=bias, batch_first=bool(batch_first),
                  bidirectional=first["D"] == 2, go_backwards=first["direction"] == "reverse",
                  **first["extra"])
    dt = float_dtype(dtype if dtype is not None else first["dtype"])
    return build(cls, config, stack_state(stacked, bias), dt)


def _check_initial_state(graph, name, label, where):
    """A stored non-zero initial state cannot be kept: a gru_cy module holds no state."""
    value = graph.const(name)
    if value is not None:
        if np.any(value != 0):
            raise NotImplementedError(
                f"{where}: {label} is a constant stored in the graph; a gru_cy module holds no "
                f"state, so pass that state as h0 when calling it")
        return
    src, _ = graph.trace(name, through=("Expand", "Identity", "Cast", "Reshape"))
    if src in graph.producer or src in graph.initializers:
        filler = graph.const(src)
        if filler is not None and np.any(filler != 0):
            raise NotImplementedError(
                f"{where}: {label} is filled with a constant from the graph; a gru_cy "
                f"module holds no state, so pass that state as h0 when calling it")


def _recurrent_nodes(graph, cls, source):
    """(cell, nodes) of the one kind of recurrent node in the graph (cls's, when given)."""
    cells = [cell_spec(ONNX_CELLS, cls)] if cls is not None else list(ONNX_CELLS.values())
    found = []
    for cell in cells:
        nodes = [n for n in graph.nodes
                 if n.op_type == cell.op_type and n.domain in ("", "ai.onnx")]
        if nodes:
            found.append((cell, nodes))
    ops = " / ".join(c.op_type for c in cells)
    if not found:
        kinds = sorted({n.op_type for n in graph.nodes})
        hint = ""
        if "MatMul" in kinds and ({"Tanh", "Relu"} & set(kinds)) and any(
                str(name).startswith(("weight_hh_l", "bias_hh_l")) for name in graph.initializers):
            # torch.onnx.export(dynamo=True) of a torch.nn.RNN writes no RNN node.
            hint = ("; this looks like a torch.nn.RNN exported with dynamo=True, which unrolls "
                    "the time loop into MatMul/Add/activation nodes for the traced sequence "
                    "length: export it with torch.onnx.export(..., dynamo=False), or convert its "
                    "state_dict")
        raise ValueError(
            f"{source}: no ONNX {ops} node in the graph (its operators: "
            f"{', '.join(kinds) or 'none'}); gru_cy reads graphs whose recurrent part is {ops} "
            f"nodes, as torch.onnx.export(..., dynamo=False) writes for torch.nn.{ops}{hint}; "
            f"to run a whole model, use gru_cy.InferenceSession(path)")
    if len(found) > 1:
        raise ValueError(f"{source}: the graph holds {' and '.join(c.op_type for c, _ in found)} "
                         f"nodes; a gru_cy module stacks layers of one kind; "
                         f"{WHOLE_MODEL_HINT}")
    cell = found[0][0]
    others = sorted({n.op_type for n in graph.nodes} - STACK_PLUMBING - {cell.op_type})
    if others:
        raise ValueError(f"{source} holds more than a stack of {cell.op_type} layers (its other "
                         f"operators: {', '.join(others)}); {WHOLE_MODEL_HINT}")
    return found[0]


def load_onnx(path: str | os.PathLike[str] | bytes | IO[bytes], *, cls: type | None = None,
              dtype: DTypeLike = None, batch_first: bool | None = None) -> Any:
    """A gru_cy module with the weights of an ONNX model's recurrent node(s).

    Reads a single node (GRU: forward, reverse -> go_backwards=True,
    bidirectional; linear_before_reset 0 or 1 -> reset_after; layout 1 ->
    batch_first=True) or a stack of them as torch.onnx.export writes for a
    multi-layer, bidirectional module (weights as initializers or
    computed from them by Slice/Concat/Unsqueeze, layers joined by
    Transpose/Reshape/Squeeze). The class comes from the operator (GRU ->
    gru_cy.GRU), or is cls. Weights stored as external data are read
    from files in the model's folder (pass a path, not bytes). Attributes it
    cannot honour (other activations, clip, activation_alpha/beta) raise
    NotImplementedError naming them; anything that is not such a graph
    raises ValueError, and so does a graph holding more than the stack (an
    embedding before it, a head after it: gru_cy.InferenceSession runs such
    whole models). No onnx package is needed.

    Calling the module: ONNX's sequence_lens is ``lengths``; initial_h
    (D, B, H) per node is ``h0`` (L*D, B, H), and ``out`` (T, B, D*H) is
    Y (T, D, B, H) transposed and reshaped; ``h_n`` is Y_h concatenated over
    layers. One difference: for a sequence of length 0, ONNX Runtime returns
    Y_h = 0 where gru_cy (like PyTorch) returns h0.
    """
    data, source, base_dir = read_source(path)
    try:
        graph = Graph(Msg(data), base_dir, len(data))
        cell, nodes = _recurrent_nodes(graph, cls, source)
        layers = [_read_node(graph, n, cell) for n in nodes]
        batch_first_found = _check_stack(graph, layers, source)
    except Corrupt as exc:  # what malformed bytes raise (codec, graph); not our own bugs
        raise ValueError(f"{source} is not a readable ONNX model ({type(exc).__name__}: "
                         f"{exc})") from exc
    return module_of(cell, layers, batch_first_found if batch_first is None else batch_first,
                     cls, dtype)


def _check_stack(graph, layers, source):
    """Check that the recurrent nodes form one stack; return whether its input is batch-first."""
    first = layers[0]
    op = first["op"]
    for k, layer in enumerate(layers[1:], start=1):
        src, perms = graph.trace(layer["node"].inputs[0])
        prev = layers[k - 1]["node"]
        if graph.producer.get(src) != (prev, 0):
            raise ValueError(
                f"{source}: {layer['node'].label()} does not read the Y output of "
                f"{prev.label()}; {WHOLE_MODEL_HINT}")
        for key in ("direction", "H", "layout", *first["extra"]):
            if layer[key] != first[key]:
                raise ValueError(
                    f"{source}: {op} nodes differ in {key} ({first[key]!r} in the first, "
                    f"{layer[key]!r} in {layer['node'].label()}); a gru_cy module stacks "
                    f"identical layers")
        if layer["I"] != first["D"] * first["H"]:
            raise ValueError(f"{source}: {layer['node'].label()} takes {layer['I']} features, "
                             f"expected {first['D'] * first['H']} from the layer below")
        # Y is (T, D, B, H) with layout 0: bringing D next to H needs perm (0, 2, 1, 3)
        # (optional when D = 1); with layout 1, Y is (B, T, D, H) already.
        if first["layout"] == 1:
            allowed = [[]]
        elif first["D"] == 2:
            allowed = [[(0, 2, 1, 3)]]
        else:
            allowed = [[], [(0, 2, 1, 3)]]
        if perms not in allowed:
            raise ValueError(f"{source}: between {prev.label()} and {layer['node'].label()} "
                             f"the tensor is transposed by {perms}, expected {allowed[-1]}")
    src, perms = graph.trace(first["node"].inputs[0])
    if src in graph.producer or src in graph.initializers:
        raise ValueError(f"{source}: the first {op} node reads the output of "
                         f"{graph.producer[src][0].label() if src in graph.producer else src!r}, "
                         f"not a graph input: the file holds more than a stack of {op} layers; "
                         f"{WHOLE_MODEL_HINT}")
    if first["layout"] == 1:
        return not perms
    return perms == [(1, 0, 2)]
