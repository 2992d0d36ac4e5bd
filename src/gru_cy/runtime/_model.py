"""Decoding an ONNX model for InferenceSession: opsets, graphs, their inputs and outputs.

Everything is read through gru_cy's bounded protobuf codec (io.onnx.codec);
nested graphs (the branches of If) are decoded when the planner reaches them,
at most ``MAX_GRAPH_DEPTH`` deep.
"""

from __future__ import annotations

from gru_cy.io.onnx.codec import Corrupt, Msg, read_value_info
from gru_cy.io.onnx.graph import Node
from gru_cy.runtime._registry import Unsupported

# The ONNX opsets whose operators InferenceSession knows (the default domain).
MIN_OPSET, MAX_OPSET = 9, 23
MAX_GRAPH_DEPTH = 16

# ONNX Runtime's names for the element types of tensors.
TYPE_NAMES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
              7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32",
              13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16"}
DEFAULT_DOMAINS = ("", "ai.onnx")


class ValueInfo:
    """A graph input or output: name, element type code, dims (int, str or None per axis)."""

    __slots__ = ("name", "elem_type", "dims")

    def __init__(self, msg, where):
        self.name, self.elem_type, self.dims, kind = read_value_info(msg)
        if kind != "tensor":
            raise Unsupported(f"{where} {self.name!r} is {kind}; gru_cy.InferenceSession runs "
                              f"graphs of tensors")
        if not self.name:
            raise Corrupt(f"{where} without a name")

    @property
    def type_name(self):
        return f"tensor({TYPE_NAMES.get(self.elem_type, 'undefined')})"


class GraphDef:
    """One graph: nodes (io.onnx.graph.Node), initializers (undecoded), inputs, outputs."""

    def __init__(self, msg, depth=0):
        if depth > MAX_GRAPH_DEPTH:
            raise Corrupt(f"graphs nested more than {MAX_GRAPH_DEPTH} deep")
        self.depth = depth
        self.nodes = [Node(m) for m in msg.messages(1)]
        self.initializers = {}
        for t in msg.messages(5):
            name = t.string(8)
            if not name or name in self.initializers:
                raise Corrupt(f"an initializer is unnamed or named twice ({name!r})")
            self.initializers[name] = t
        if msg.has(15):
            raise Unsupported("the graph stores sparse initializers; gru_cy.InferenceSession "
                              "reads dense tensors")
        self.inputs = [ValueInfo(v, "graph input") for v in msg.messages(11)]
        self.outputs = [ValueInfo(v, "graph output") for v in msg.messages(12)]


class ModelDef:
    """A decoded ModelProto: the main graph and the default domain's opset."""

    def __init__(self, data):
        model = Msg(data)
        graph = model.message(7)
        if graph is None:
            raise Corrupt("the model has no graph")
        self.opset = None
        for entry in model.messages(8):
            if entry.string(1) in DEFAULT_DOMAINS:
                self.opset = entry.int(2, 1)
        if self.opset is None:
            raise Corrupt("the model imports no version of the ONNX operator set")
        if not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise Unsupported(f"the model uses ONNX opset {self.opset}; gru_cy.InferenceSession "
                              f"runs opsets {MIN_OPSET} to {MAX_OPSET}")
        self.functions = {(f.string(10), f.string(1)) for f in model.messages(25)}
        self.graph = GraphDef(graph)
