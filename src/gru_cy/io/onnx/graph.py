"""The graph of an ONNX model: nodes, initializers, producers, constant folding.

``Graph`` indexes the main graph of a decoded model. ``const(name)`` folds
the few shape and copy operators exporters wrap around weights
(torch.onnx.export without constant folding slices and concatenates gate
blocks at run time), so that a recurrent node's W, R and B can be read
whether they are initializers or computed from them; ``trace`` follows a
tensor back through copies and transposes (how stacked layers are joined).
Nothing here knows about recurrent cells.
"""

from __future__ import annotations

import math

import numpy as np

from gru_cy.io.onnx.codec import (ONNX_BFLOAT16, ONNX_NUMPY, Corrupt, Unreadable, attr_value,
                                  onnx_tensor)

class Node:
    __slots__ = ("op_type", "domain", "name", "inputs", "outputs", "attrs")

    def __init__(self, msg):
        self.inputs = msg.strings(1)
        self.outputs = msg.strings(2)
        self.name = msg.string(3)
        self.op_type = msg.string(4)
        self.domain = msg.string(7)
        self.attrs = {a.string(1): a for a in msg.messages(5)}

    def attr(self, name, default=None, base_dir=None):
        a = self.attrs.get(name)
        return default if a is None else attr_value(a, base_dir)

    def label(self):
        return f"{self.op_type} node {self.name!r}" if self.name else f"{self.op_type} node"


class NotConstant(Exception):
    pass


class Graph:
    """The main graph of a model: nodes, initializers, and constant folding.

    Constant folding evaluates the few shape and copy operators exporters
    wrap around weights (torch.onnx.export without constant folding slices
    and concatenates gate blocks at run time), so a GRU's W, R and B can be
    read whether they are initializers or computed from them.
    """

    _MAX_FOLD_ELEMENTS = 1 << 28

    def __init__(self, model, base_dir=None):
        self.base_dir = base_dir
        graph = model.message(7)
        if graph is None:
            raise Corrupt("the model has no graph")
        self.opset = 1
        for op in model.messages(8):
            if op.string(1) in ("", "ai.onnx"):
                self.opset = op.int(2, 1)
        self.nodes = [Node(m) for m in graph.messages(1)]
        self.initializers = {}
        for t in graph.messages(5):
            self.initializers[t.string(8)] = t
        self.inputs = [vi.string(1) for vi in graph.messages(11)]
        self.outputs = [vi.string(1) for vi in graph.messages(12)]
        self.producer = {}
        for node in self.nodes:
            for i, out in enumerate(node.outputs):
                if out:
                    self.producer[out] = (node, i)
        self._folded = {}

    def const(self, name):
        """The value of a tensor if it does not depend on graph inputs, else None."""
        try:
            return self._fold(name, 0)
        except NotConstant:
            return None

    def _fold(self, name, depth):
        if name in self._folded:
            return self._folded[name]
        if depth > 200:
            raise NotConstant
        if name in self.initializers:
            value = onnx_tensor(self.initializers[name], name, self.base_dir)
        elif name in self.producer:
            node, index = self.producer[name]
            args = [None if not n else self._fold(n, depth + 1) for n in node.inputs]
            value = self._evaluate(node, args)[index]
        else:
            raise NotConstant  # a graph input
        if value.size > self._MAX_FOLD_ELEMENTS:
            raise Corrupt(f"constant {name!r} would hold {value.size} elements")
        self._folded[name] = value
        return value

    def _evaluate(self, node, args):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise NotConstant
        if op == "Constant":
            for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                if key in node.attrs:
                    v = node.attr(key, base_dir=self.base_dir)
                    if isinstance(v, Unreadable):
                        raise NotConstant
                    if isinstance(v, np.ndarray):
                        return [v]
                    dt = np.float32 if "float" in key else np.int64
                    return [np.array(v, dtype=dt)]
            raise NotConstant
        if op in ("Identity", "Dropout"):
            return [args[0]]
        if op == "Cast":
            code = node.attr("to")
            if code not in ONNX_NUMPY or code == ONNX_BFLOAT16:
                raise NotConstant
            return [args[0].astype(np.dtype(ONNX_NUMPY[code]).newbyteorder("="))]
        if op == "Concat":
            return [np.concatenate(args, axis=node.attr("axis"))]
        if op == "Transpose":
            return [np.transpose(args[0], node.attr("perm"))]
        if op in ("Unsqueeze", "Squeeze"):
            axes = node.attr("axes")
            if axes is None and len(args) > 1 and args[1] is not None:
                axes = [int(a) for a in args[1]]
            if op == "Unsqueeze":
                rank = args[0].ndim + len(axes)
                return [np.expand_dims(args[0], tuple(sorted(a % rank for a in axes)))]
            return [np.squeeze(args[0], axis=None if axes is None else tuple(axes))]
        if op == "Reshape":
            shape = [int(s) for s in args[1]]
            if not node.attr("allowzero", 0):
                shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return [args[0].reshape(shape)]
        if op == "Slice":
            if len(args) > 1:
                starts, ends = args[1], args[2]
                axes = args[3] if len(args) > 3 and args[3] is not None else None
                steps = args[4] if len(args) > 4 and args[4] is not None else None
            else:
                starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
                steps = None
            data = args[0]
            axes = range(len(starts)) if axes is None else axes
            steps = [1] * len(starts) if steps is None else steps
            index = [slice(None)] * data.ndim
            for s, e, a, st in zip(starts, ends, axes, steps):
                index[int(a)] = slice(int(s), int(e), int(st))
            return [data[tuple(index)]]
        if op == "Gather":
            return [np.take(args[0], args[1], axis=node.attr("axis", 0))]
        if op == "Split":
            axis = node.attr("axis", 0)
            split = node.attr("split")
            if split is None and len(args) > 1 and args[1] is not None:
                split = [int(s) for s in args[1]]
            if split is None:
                return np.array_split(args[0], len(node.outputs), axis=axis)
            return np.split(args[0], np.cumsum(split)[:-1], axis=axis)
        if op == "Shape":
            return [np.array(args[0].shape, dtype=np.int64)]
        if op == "ConstantOfShape":
            shape = [int(s) for s in args[0]]
            if math.prod(shape) > self._MAX_FOLD_ELEMENTS:
                raise Corrupt(f"ConstantOfShape to {shape}")
            value = node.attr("value")
            value = np.zeros(1, np.float32) if value is None else value.reshape(-1)
            return [np.full(shape, value[0], dtype=value.dtype)]
        if op == "Expand":
            shape = np.broadcast_shapes(args[0].shape, tuple(int(s) for s in args[1]))
            if math.prod(shape) > self._MAX_FOLD_ELEMENTS:
                raise Corrupt(f"Expand to {shape}")
            return [np.array(np.broadcast_to(args[0], shape))]
        raise NotConstant

    def trace(self, name, through=("Identity", "Dropout", "Cast", "Transpose", "Reshape",
                                   "Squeeze", "Unsqueeze")):
        """Follow a tensor back through copy/shape operators: (source name, transposes).

        The source is a graph input or the output of the first node of another
        kind; transposes lists the permutations met on the way.
        """
        perms = []
        seen = 0
        while name in self.producer and seen < 1000:
            node, _ = self.producer[name]
            if node.op_type not in through:
                break
            if node.op_type == "Transpose":
                perms.append(tuple(node.attr("perm") or ()))
            name = node.inputs[0]
            seen += 1
        return name, perms

    def depends_on_input(self, name):
        """Whether a tensor is computed from a graph input (breadth-first over producers)."""
        stack, seen = [name], set()
        while stack:
            n = stack.pop()
            if n in seen or not n:
                continue
            seen.add(n)
            if n in self.initializers:
                continue
            if n not in self.producer:
                return True
            stack.extend(self.producer[n][0].inputs)
        return False
