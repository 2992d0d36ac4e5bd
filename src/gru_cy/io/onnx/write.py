"""to_onnx: write a gru_cy module as an ONNX model, one recurrent node per layer.

Cell-independent: the graph around the nodes (batch-first transposes, the
initial states sliced per layer, sequence lengths, layers joined by
Transpose/Reshape, final states concatenated). What a cell adds (operator
name, gate order, attributes, its states) is its entry in
``gru_cy.io.onnx.cells.ONNX_CELLS``.
"""

from __future__ import annotations

import numpy as np

from gru_cy.io._common import cell_spec, direction_params, float_dtype, permute_gates, \
    write_atomically
from gru_cy.io.onnx.cells import ONNX_CELLS
from gru_cy.io.onnx.codec import ONNX_FROM_NUMPY, ONNX_INT32, onnx_node, onnx_tensor_proto, \
    onnx_value_info, pb_bytes, pb_int

__all__ = ["to_onnx"]

# ONNX opset -> the lowest IR version that carries it (onnx.helper.VERSION_TABLE).
IR_FOR_OPSET = {10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9,
                20: 9, 21: 10, 22: 10, 23: 11, 24: 12, 25: 13, 26: 13, 27: 13, 28: 14}


def to_onnx(module, path, opset=17, *, with_h0=False, with_lengths=False, dtype=None):
    """Write an ONNX model computing ``module(x, h0, lengths)``; returns the path.

    Graph inputs: ``input`` (T, B, I) — (B, T, I) for a batch_first module —
    then ``h0`` (L*D, B, H) if with_h0, and ``lengths`` (B,) int32 if
    with_lengths (ONNX's sequence_lens). Outputs: ``output`` laid out as
    gru_cy's ``out``, and ``h_n`` (L*D, B, H). One node per layer (GRU:
    linear_before_reset set from reset_after) with its direction from
    bidirectional / go_backwards. With both h0 and lengths, a Where keeps
    h0 as the final state of zero-length sequences (ONNX Runtime would give
    zeros; gru_cy and PyTorch give h0). opset 10 or later; dtype
    defaults to the module's (ONNX Runtime's GRU runs float32 only).
    No onnx package is needed.
    """
    cell = cell_spec(ONNX_CELLS, type(module))
    opset = int(opset)
    if opset not in IR_FOR_OPSET:
        raise ValueError(f"opset must be between {min(IR_FOR_OPSET)} and {max(IR_FOR_OPSET)}, "
                         f"got {opset}")
    np_dtype = float_dtype(dtype if dtype is not None else module.dtype)
    elem = ONNX_FROM_NUMPY[np_dtype]
    L, D, H, I = module.num_layers, module.num_directions, module.hidden_size, module.input_size
    direction = "bidirectional" if module.bidirectional else (
        "reverse" if module.go_backwards else "forward")
    op, perm = cell.op_type, cell.perm
    nodes, inits = [], []

    def const(name, arr):
        inits.append(onnx_tensor_proto(name, arr))
        return name

    x_dims = ["B", "T", I] if module.batch_first else ["T", "B", I]
    inputs = [onnx_value_info("input", elem, x_dims)]
    if with_h0:
        for s, _, _ in cell.states:
            inputs.append(onnx_value_info(f"{s}0", elem, [L * D, "B", H]))
    if with_lengths:
        inputs.append(onnx_value_info("lengths", ONNX_INT32, ["B"]))
    x = "input"
    if module.batch_first:
        nodes.append(onnx_node("Transpose", ["input"], ["x_time_major"], "to_time_major",
                               perm=[1, 0, 2]))
        x = "x_time_major"
    if with_h0 and with_lengths:
        # (1, B, 1) mask of zero-length sequences, for the Where on each layer's final state.
        const("zero_length", np.zeros((), np.int32))
        const("mask_shape", np.array([1, -1, 1], np.int64))
        nodes.append(onnx_node("Equal", ["lengths", "zero_length"], ["is_empty_flat"],
                               "is_empty_flat"))
        nodes.append(onnx_node("Reshape", ["is_empty_flat", "mask_shape"], ["is_empty"],
                               "is_empty"))
    const("layer_shape", np.array([0, 0, D * H], np.int64))
    finals = {s: [] for s, _, _ in cell.states}
    n_inputs = max(i for _, i, _ in cell.states) + 1
    n_outputs = max(o for _, _, o in cell.states) + 1
    for k, params in enumerate(direction_params(module)):
        W = np.stack([permute_gates(p[0], perm) for p in params]).astype(np_dtype)
        R = np.stack([permute_gates(p[1], perm) for p in params]).astype(np_dtype)
        node_inputs = [""] * n_inputs
        node_inputs[:3] = [x, const(f"W_l{k}", W), const(f"R_l{k}", R)]
        if module.bias:
            B = np.stack([np.concatenate([permute_gates(p[2], perm), permute_gates(p[3], perm)])
                          for p in params])
            node_inputs[3] = const(f"B_l{k}", B.astype(np_dtype))
        node_inputs[4] = "lengths" if with_lengths else ""
        node_outputs = [f"Y_l{k}"] + [""] * (n_outputs - 1)
        initial = {}
        for s, i, o in cell.states:
            node_outputs[o] = f"Y_{s}_l{k}"
            if not with_h0:
                continue
            if L == 1:
                initial[s] = f"{s}0"
            else:
                initial[s] = f"{s}0_l{k}"
                nodes.append(onnx_node(
                    "Slice", [f"{s}0", const(f"{s}0_start_l{k}", np.array([k * D], np.int64)),
                              const(f"{s}0_end_l{k}", np.array([(k + 1) * D], np.int64)),
                              const(f"{s}0_axis_l{k}", np.array([0], np.int64))],
                    [initial[s]], f"{s}0_slice_l{k}"))
            node_inputs[i] = initial[s]
        while node_inputs[-1] == "":
            node_inputs.pop()
        nodes.append(onnx_node(op, node_inputs, node_outputs, f"{op.lower()}_l{k}",
                               hidden_size=H, direction=direction, **cell.write_attrs(module)))
        for s, _, _ in cell.states:
            final = f"Y_{s}_l{k}"
            if with_h0 and with_lengths:
                nodes.append(onnx_node("Where", ["is_empty", initial[s], final],
                                       [f"{s}_n_l{k}"], f"keep_{s}0_l{k}"))
                final = f"{s}_n_l{k}"
            finals[s].append(final)
        # Y (T, D, B, H) -> (T, B, D*H), the next layer's input and the output.
        nodes.append(onnx_node("Transpose", [f"Y_l{k}"], [f"Y_tbdh_l{k}"], f"transpose_l{k}",
                               perm=[0, 2, 1, 3]))
        x = "out_time_major" if k == L - 1 and module.batch_first else (
            "output" if k == L - 1 else f"x_l{k + 1}")
        nodes.append(onnx_node("Reshape", [f"Y_tbdh_l{k}", "layer_shape"], [x],
                               f"reshape_l{k}"))
    if module.batch_first:
        nodes.append(onnx_node("Transpose", [x], ["output"], "to_batch_first", perm=[1, 0, 2]))
    out_dims = ["B", "T", D * H] if module.batch_first else ["T", "B", D * H]
    outputs = [onnx_value_info("output", elem, out_dims)]
    for s, _, _ in cell.states:
        if L == 1:
            nodes.append(onnx_node("Identity", finals[s], [f"{s}_n"], f"{s}_n"))
        else:
            nodes.append(onnx_node("Concat", finals[s], [f"{s}_n"], f"{s}_n", axis=0))
        outputs.append(onnx_value_info(f"{s}_n", elem, [L * D, "B", H]))
    graph = (b"".join(pb_bytes(1, n) for n in nodes) + pb_bytes(2, "gru_cy")
             + b"".join(pb_bytes(5, t) for t in inits)
             + b"".join(pb_bytes(11, v) for v in inputs)
             + b"".join(pb_bytes(12, v) for v in outputs))
    from gru_cy._version import __version__

    model = (pb_int(1, IR_FOR_OPSET[opset]) + pb_bytes(2, "gru_cy")
             + pb_bytes(3, __version__) + pb_bytes(6, repr(module))
             + pb_bytes(7, graph) + pb_bytes(8, pb_int(2, opset)))
    write_atomically(path, lambda f: f.write(model))
    return path
