"""What each recurrent cell looks like as an ONNX operator: one ``OnnxCell`` per gru_cy kind.

The ONNX recurrent operators (GRU, RNN, LSTM) share one frame, which
read.py and write.py handle for every cell: inputs X, W (D, G*H, I),
R (D, G*H, H), B (D, 2*G*H) = [Wb, Rb], sequence_lens, then the initial
states; outputs Y (T, D, B, H) and the final states; attributes
hidden_size, direction ("forward", "reverse" = go_backwards, "bidirectional"),
layout (1 = batch-first), activations, clip, activation_alpha/beta. An entry
gives what differs:

- ``op_type``: the operator's name;
- ``gates`` and ``perm``: G, and ONNX's gate order as indices into
  gru_cy's (ONNX block i is gru_cy block perm[i]); GRU: gru_cy r, z, n vs
  ONNX z, r, h -> (1, 0, 2); LSTM: gru_cy i, f, g, o vs ONNX i, o, f, c
  -> (0, 3, 1, 2);
- ``states``: (name, node input index, node output index) per recurrent
  state; GRU and RNN: h (initial_h input 5, Y_h output 1); LSTM adds c
  (initial_c 6, Y_c 2);
- ``read_attrs(node, D) -> (extra config, unsupported)``: the cell's own
  constructor arguments from the node's attributes (activations included),
  and descriptions of settings gru_cy cannot honour (NotImplementedError is
  raised naming them); raise ValueError for values no writer produces;
- ``write_attrs(module) -> dict``: the node attributes beyond hidden_size
  and direction.

Adding a cell is adding its entry here (plus, for an operator with inputs
beyond the initial states, a check of them in ``read_attrs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class OnnxCell:
    op_type: str
    gates: int
    perm: tuple
    read_attrs: Callable
    write_attrs: Callable
    states: tuple = (("h", 5, 1),)


def activations_given(node, expected, D):
    """[description] when the node's activations differ from ``expected`` (one direction's)."""
    acts = node.attr("activations")
    if acts is not None and [a.lower() for a in acts] != [e.lower() for e in expected] * D:
        return [f"activations={acts} (gru_cy computes {list(expected) * D})"]
    return []


def _gru_read_attrs(node, D):
    unsupported = activations_given(node, ["Sigmoid", "Tanh"], D)
    lbr = node.attr("linear_before_reset", 0)
    if lbr not in (0, 1):
        raise ValueError(f"{node.label()}: linear_before_reset={lbr} (expected 0 or 1)")
    return dict(reset_after=bool(lbr)), unsupported


def _lstm_read_attrs(node, D):
    unsupported = activations_given(node, ["Sigmoid", "Tanh", "Tanh"], D)
    if node.attr("input_forget", 0) not in (0, None):
        unsupported.append(f"input_forget={node.attr('input_forget')} (gru_cy's LSTM has "
                           f"separate input and forget gates)")
    if len(node.inputs) > 7 and node.inputs[7]:
        unsupported.append("peephole weights (input P; gru_cy's LSTM has no peepholes)")
    return {}, unsupported


def _lstm_write_attrs(lstm):
    if lstm.proj_size:
        raise ValueError(f"to_onnx: proj_size={lstm.proj_size} has no ONNX LSTM form (the ONNX "
                         f"LSTM operator has no projection); use to_torch or save instead")
    return {}


_RNN_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu"}


def _rnn_read_attrs(node, D):
    acts = node.attr("activations")
    if acts is None:
        return dict(nonlinearity="tanh"), []
    names = [str(a).lower() for a in acts]
    if len(names) != D or len(set(names)) != 1 or names[0] not in _RNN_ACTIVATIONS:
        return dict(nonlinearity="tanh"), [
            f"activations={list(acts)} (gru_cy computes Tanh or Relu, the same in every "
            f"direction)"]
    return dict(nonlinearity=names[0]), []


ONNX_CELLS = {
    "GRU": OnnxCell(op_type="GRU", gates=3, perm=(1, 0, 2), read_attrs=_gru_read_attrs,
                    write_attrs=lambda m: dict(linear_before_reset=int(m.reset_after))),
    "LSTM": OnnxCell(op_type="LSTM", gates=4, perm=(0, 3, 1, 2), read_attrs=_lstm_read_attrs,
                     write_attrs=_lstm_write_attrs, states=(("h", 5, 1), ("c", 6, 2))),
    "RNN": OnnxCell(op_type="RNN", gates=1, perm=(0,), read_attrs=_rnn_read_attrs,
                    write_attrs=lambda m: dict(
                        activations=[_RNN_ACTIVATIONS[m.nonlinearity]] * m.num_directions)),
}
