"""ONNX files without the onnx package: ``codec`` (protobuf reading and writing),
``graph`` (the graph walker and constant folding), ``cells`` (one entry per
recurrent cell: operator, gate order, attributes), ``read`` (load_onnx) and
``write`` (to_onnx)."""

from gru_cy.io.onnx.read import load_onnx
from gru_cy.io.onnx.write import to_onnx

__all__ = ["load_onnx", "to_onnx"]
