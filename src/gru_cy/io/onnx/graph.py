"""The graph of an ONNX model: nodes, initializers, producers, constant folding.

``Graph`` indexes the main graph of a decoded model. ``const(name)`` folds
the few shape and copy operators exporters wrap around weights
(torch.onnx.export without constant folding slices and concatenates gate
blocks at run time), so that a recurrent node's W, R and B can be read
whether they are initializers or computed from them; ``trace`` follows a
tensor back through copies and transposes (how stacked layers are joined).
Nothing here knows about recurrent cells.

Limits (a file is untrusted: a few hundred bytes could otherwise ask for
gigabytes). Folding allocates at most ``FOLD_FACTOR`` bytes per byte of
the model (its file and the external data it reads) plus ``FOLD_SLACK``
in all, checked before each allocation; it nests at most ``MAX_DEPTH``
operators, and the graph walks take at most ``STEP_FACTOR`` steps per
byte of the model plus ``STEP_SLACK``. Beyond a limit, loading raises
``Corrupt`` (a ValueError) saying which. Real exports stay far below: their
folded weights are a few copies of the weights stored in the file.
"""

from __future__ import annotations

import math

import numpy as np

from gru_cy.io.onnx.codec import (ATTR_FLOAT, ATTR_FLOATS, ATTR_INT, ATTR_INTS, ATTR_NAMES,
                                  ATTR_STRING, ATTR_STRINGS, ATTR_TENSOR, ONNX_BFLOAT16,
                                  ONNX_NUMPY, Corrupt, Unreadable, attr_kind, attr_value,
                                  onnx_tensor)

FOLD_FACTOR = 8
FOLD_SLACK = 16 << 20
MAX_DEPTH = 200
STEP_FACTOR = 16
STEP_SLACK = 100_000

# The attribute types read here, by attribute name.
ATTR_TYPES = {"to": ATTR_INT, "axis": ATTR_INT, "perm": ATTR_INTS, "axes": ATTR_INTS,
              "allowzero": ATTR_INT, "starts": ATTR_INTS, "ends": ATTR_INTS, "split": ATTR_INTS,
              "value": ATTR_TENSOR, "value_float": ATTR_FLOAT, "value_floats": ATTR_FLOATS,
              "value_int": ATTR_INT, "value_ints": ATTR_INTS, "direction": ATTR_STRING,
              "activations": ATTR_STRINGS, "hidden_size": ATTR_INT, "layout": ATTR_INT,
              "linear_before_reset": ATTR_INT, "input_forget": ATTR_INT}


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
        """The attribute's value, default when absent; Corrupt when it has another type
        than ATTR_TYPES gives for its name."""
        a = self.attrs.get(name)
        if a is None:
            return default
        expected = ATTR_TYPES.get(name)
        if expected is not None and attr_kind(a) != expected:
            raise Corrupt(f"{self.label()}: attribute {name!r} should be {ATTR_NAMES[expected]}")
        return attr_value(a, base_dir)

    def label(self):
        return f"{self.op_type} node {self.name!r}" if self.name else f"{self.op_type} node"


class NotConstant(Exception):
    """A tensor computed from graph inputs (or by an operator folding does not know)."""


_NOT_CONSTANT = NotConstant()

# Inputs each folded operator needs (the rest are optional).
_ARITY = {"Identity": 1, "Dropout": 1, "Cast": 1, "Concat": 1, "Transpose": 1, "Unsqueeze": 1,
          "Squeeze": 1, "Reshape": 2, "Slice": 1, "Gather": 2, "Split": 1, "Shape": 1,
          "ConstantOfShape": 1, "Expand": 2}


class Limits:
    """The budget of loading one model of ``size`` bytes (see the module docstring).

    ``fold_bytes`` is what folding has allocated so far, ``steps`` the steps
    the graph walks have taken; beyond a limit, ``Corrupt`` says which.
    """

    def __init__(self, size):
        self.model_bytes = size
        self.fold_bytes = 0
        self.fold_limit = FOLD_SLACK + FOLD_FACTOR * size
        self.steps = 0
        self.step_limit = STEP_SLACK + STEP_FACTOR * size

    def step(self, count=1):
        self.steps += count
        if self.steps > self.step_limit:
            raise Corrupt(f"walking the graph takes more than {self.step_limit} steps, the limit "
                          f"for a model of this size ({STEP_FACTOR} per byte plus {STEP_SLACK})")

    def reserve(self, nbytes, what):
        """Refuse, before allocating, memory beyond the folding limit."""
        if self.fold_bytes + nbytes > self.fold_limit:
            raise Corrupt(
                f"constant folding would exceed its memory limit: {what} needs {nbytes} bytes "
                f"with {self.fold_bytes} of {self.fold_limit} in use (the limit is {FOLD_FACTOR} "
                f"bytes per byte of the model plus {FOLD_SLACK >> 20} MiB)")

    def charge(self, value, args, what):
        """Count value's memory unless it is a view of an argument's."""
        if any(a is not None and np.may_share_memory(value, a) for a in args):
            return
        self.reserve(value.nbytes, what)
        self.fold_bytes += value.nbytes

    def external(self, nbytes):
        """A tensor of nbytes stored outside the file: the model is larger than its file."""
        self.model_bytes += nbytes
        self.fold_limit += FOLD_FACTOR * nbytes


def read_initializer(msg, name, base_dir, limits):
    """A stored tensor (TensorProto msg) as an array, counted against the limits."""
    code = msg.int(2)
    itemsize = np.dtype(ONNX_NUMPY[code]).itemsize if code in ONNX_NUMPY else 0
    dims = msg.ints(1)
    nbytes = math.prod(dims) * itemsize if all(d >= 0 for d in dims) else 0
    if msg.int(14) == 1:  # external data: the model is larger than its file
        limits.external(nbytes)
    limits.reserve(nbytes, f"initializer {name!r}")
    value = onnx_tensor(msg, name, base_dir)
    limits.fold_bytes += value.nbytes
    return value


class Graph:
    """The main graph of a model: nodes, initializers, constant folding, tracing.

    ``size`` is the model's size in bytes, which sets the limits (``limits``,
    see the module docstring).
    """

    def __init__(self, model, base_dir=None, size=0):
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
        self.limits = Limits(size)
        self._step = self.limits.step
        self._reserve = self.limits.reserve
        self._charge = self.limits.charge

    # -- folding

    def const(self, name):
        """The value of a tensor if it does not depend on graph inputs, else None."""
        try:
            return self._fold(name, 0)
        except NotConstant:
            return None

    def _fold(self, name, depth):
        cached = self._folded.get(name)
        if cached is not None:
            if cached is _NOT_CONSTANT:
                raise NotConstant
            return cached
        if depth > MAX_DEPTH:
            raise Corrupt(f"constant folding nested deeper than {MAX_DEPTH} operators (at "
                          f"{name!r})")
        self._step()
        try:
            value = self._compute(name, depth)
        except NotConstant:
            self._folded[name] = _NOT_CONSTANT
            raise
        self._folded[name] = value
        return value

    def _compute(self, name, depth):
        if name in self.initializers:
            return self._initializer(name)
        if name not in self.producer:
            raise NotConstant  # a graph input
        node, index = self.producer[name]
        if node.domain not in ("", "ai.onnx"):
            raise NotConstant
        args = [None if not n else self._fold(n, depth + 1) for n in node.inputs]
        need = _ARITY.get(node.op_type, 0)
        if len(args) < need or any(a is None for a in args[:need]):
            raise Corrupt(f"{node.label()} needs {need} input(s), got {node.inputs}")
        try:
            values = self._evaluate(node, args)
        except (Corrupt, NotConstant):
            raise
        except (ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError) as exc:
            # NumPy refusing the operator's inputs or attributes (axes out of range,
            # shapes that do not fit): the file's values are inconsistent.
            raise Corrupt(f"{node.label()} cannot be evaluated ({type(exc).__name__}: "
                          f"{exc})") from None
        if index >= len(values):
            raise Corrupt(f"{node.label()} has no output {index}")
        value = values[index]
        self._charge(value, args, f"{node.label()} output {name!r}")
        return value

    def _initializer(self, name):
        return read_initializer(self.initializers[name], name, self.base_dir, self.limits)

    def _evaluate(self, node, args):
        op = node.op_type
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
            dtype = np.dtype(ONNX_NUMPY[code]).newbyteorder("=")
            self._reserve(args[0].size * dtype.itemsize, node.label())
            return [args[0].astype(dtype)]
        if op == "Concat":
            if any(a is None for a in args):
                raise Corrupt(f"{node.label()} has an empty input name")
            self._reserve(sum(a.nbytes for a in args), node.label())
            return [np.concatenate(args, axis=node.attr("axis"))]
        if op == "Transpose":
            return [np.transpose(args[0], node.attr("perm"))]
        if op in ("Unsqueeze", "Squeeze"):
            axes = node.attr("axes")
            if axes is None and len(args) > 1 and args[1] is not None:
                axes = [int(a) for a in args[1].reshape(-1)]
            if op == "Unsqueeze":
                if axes is None:
                    raise Corrupt(f"{node.label()} has no axes")
                rank = args[0].ndim + len(axes)
                return [np.expand_dims(args[0], tuple(sorted(a % rank for a in axes)))]
            return [np.squeeze(args[0], axis=None if axes is None else tuple(axes))]
        if op == "Reshape":
            shape = [int(s) for s in args[1].reshape(-1)]
            if not node.attr("allowzero", 0):
                shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            self._reserve(args[0].nbytes, node.label())  # a copy if not contiguous
            return [args[0].reshape(shape)]
        if op == "Slice":
            if len(args) > 1:
                if len(args) < 3 or args[1] is None or args[2] is None:
                    raise Corrupt(f"{node.label()} has no starts or ends")
                starts, ends = args[1].reshape(-1), args[2].reshape(-1)
                axes = args[3].reshape(-1) if len(args) > 3 and args[3] is not None else None
                steps = args[4].reshape(-1) if len(args) > 4 and args[4] is not None else None
            else:
                starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
                steps = None
                if starts is None or ends is None:
                    raise Corrupt(f"{node.label()} has no starts or ends")
            data = args[0]
            axes = range(len(starts)) if axes is None else axes
            steps = [1] * len(starts) if steps is None else steps
            index = [slice(None)] * data.ndim
            for s, e, a, st in zip(starts, ends, axes, steps):
                index[int(a)] = slice(int(s), int(e), int(st))
            return [data[tuple(index)]]
        if op == "Gather":
            data, indices = args[0], args[1]
            axis = node.attr("axis", 0)
            if not -data.ndim <= axis < data.ndim:
                raise Corrupt(f"{node.label()}: axis {axis} for a {data.ndim}-D input")
            rest = data.size // data.shape[axis] if data.shape[axis] else 0
            self._reserve(indices.size * rest * data.itemsize, node.label())
            return [np.take(data, indices, axis=axis)]
        if op == "Split":
            axis = node.attr("axis", 0)
            split = node.attr("split")
            if split is None and len(args) > 1 and args[1] is not None:
                split = [int(s) for s in args[1].reshape(-1)]
            if split is None:
                return np.array_split(args[0], len(node.outputs), axis=axis)
            return np.split(args[0], np.cumsum(split)[:-1], axis=axis)
        if op == "Shape":
            return [np.array(args[0].shape, dtype=np.int64)]
        if op == "ConstantOfShape":
            shape = [int(s) for s in args[0].reshape(-1)]
            value = node.attr("value")
            value = np.zeros(1, np.float32) if value is None else value.reshape(-1)
            if any(s < 0 for s in shape) or value.size < 1:
                raise Corrupt(f"{node.label()}: shape {shape}, value of {value.size} elements")
            self._reserve(math.prod(shape) * value.itemsize, node.label())
            return [np.full(shape, value[0], dtype=value.dtype)]
        if op == "Expand":
            shape = np.broadcast_shapes(args[0].shape, tuple(int(s) for s in args[1].reshape(-1)))
            self._reserve(math.prod(shape) * args[0].itemsize, node.label())
            return [np.array(np.broadcast_to(args[0], shape))]
        raise NotConstant

    # -- walking

    def trace(self, name, through=("Identity", "Dropout", "Cast", "Transpose", "Reshape",
                                   "Squeeze", "Unsqueeze")):
        """Follow a tensor back through copy/shape operators: (source name, transposes).

        The source is a graph input or the output of the first node of another
        kind; transposes lists the permutations met on the way.
        """
        perms = []
        seen = 0
        while name in self.producer and seen < 1000:
            self._step()
            node, _ = self.producer[name]
            if node.op_type not in through or not node.inputs:
                break
            if node.op_type == "Transpose":
                perms.append(tuple(node.attr("perm") or ()))
            name = node.inputs[0]
            seen += 1
        return name, perms
