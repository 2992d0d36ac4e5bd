"""The table of operators InferenceSession runs, and what a builder is given.

Each operator is one ``OpSpec``: the attributes it honours (name -> kind and
default), how many inputs and outputs it takes, which inputs set the shape
of its outputs (``shape_inputs``: a shape computed from data makes the
outputs' shapes data-dependent), whether it is ``heavy`` (products: computed
at run time even when every input is a constant, never folded at load), and,
for operators whose output can be much larger than their inputs, ``size``:
the number of elements of their largest output, computed from the inputs
before anything is allocated.

``build(ctx)`` runs once at load and returns the kernel: a function of the
node's input arrays (None for an absent optional input) returning one array,
or a tuple with one entry per output of the node. A kernel with ``out=True``
also takes ``out=``, a buffer of its first output's shape and type to write
that output into (and return; returning another array is allowed); with
``inplace=True`` that buffer may be one of its inputs (elementwise operators:
the planner passes an input nothing reads afterwards).

Errors: an attribute the table does not list, or a value the builder cannot
honour, raises NotImplementedError naming the node, the operator and the
attribute; an attribute of the wrong type or an impossible value raises
``Corrupt`` (a ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from gru_cy.io.onnx.codec import (ATTR_FLOAT, ATTR_FLOATS, ATTR_GRAPH, ATTR_INT, ATTR_INTS,
                                  ATTR_NAMES, ATTR_STRING, ATTR_STRINGS, ATTR_TENSOR, Corrupt,
                                  attr_kind, attr_value)

FLOAT, INT, STRING, TENSOR, GRAPH, FLOATS, INTS, STRINGS = (
    ATTR_FLOAT, ATTR_INT, ATTR_STRING, ATTR_TENSOR, ATTR_GRAPH, ATTR_FLOATS, ATTR_INTS,
    ATTR_STRINGS)
ANY = 2 ** 31  # no upper bound on a node's inputs or outputs


@dataclass(frozen=True)
class OpSpec:
    op_type: str
    build: Callable
    attrs: dict = field(default_factory=dict)
    inputs: tuple = (1, 1)
    outputs: tuple = (1, 1)
    shape_inputs: tuple = ()
    heavy: bool = False
    size: Callable | None = None
    inplace: bool = False
    out: bool = False


OPS: dict[str, OpSpec] = {}


def op(names, attrs=None, inputs=(1, 1), outputs=(1, 1), shape_inputs=(), heavy=False,
       size=None, inplace=False, out=False):
    """Register the decorated builder for one operator name or several."""
    def register(build):
        for name in (names,) if isinstance(names, str) else names:
            OPS[name] = OpSpec(name, build, dict(attrs or {}), inputs, outputs,
                               tuple(shape_inputs), heavy, size, inplace, out or inplace)
        return build
    return register


class Unsupported(NotImplementedError):
    """An operator, attribute or value InferenceSession does not run."""


class BuildContext:
    """What a builder knows at load: the node, its attributes (defaults filled in),
    the model's opset, the constant inputs, and which outputs anything reads."""

    def __init__(self, node, spec, opset, consts, used, precision, base_dir=None):
        self.node = node
        self.spec = spec
        self.opset = opset
        self.consts = consts            # one entry per input: its value if constant, else None
        self.present = [bool(n) for n in node.inputs]
        self.used = used                # one flag per output
        self.precision = precision
        self.label = node.label()
        self.attrs = read_attrs(node, spec, base_dir)
        self.meta = None                # what a builder tells the planner about its node

    def __getitem__(self, name):
        return self.attrs[name]

    def has_input(self, i):
        return i < len(self.present) and self.present[i]

    def const(self, i):
        """Input i's value when it is a constant, else None."""
        return self.consts[i] if i < len(self.consts) else None

    def unsupported(self, attr, why):
        """NotImplementedError naming the node, the operator and the attribute (or input)."""
        return Unsupported(f"{self.label}: {self.node.op_type} with {attr} is not supported by "
                           f"gru_cy.InferenceSession ({why})")

    def corrupt(self, what):
        return Corrupt(f"{self.label}: {what}")


def read_attrs(node, spec, base_dir=None):
    """The node's attributes as spec.attrs lists them, with their defaults."""
    values = {}
    for name, msg in node.attrs.items():
        if name not in spec.attrs:
            raise Unsupported(f"{node.label()}: attribute {name!r} of {node.op_type} is not "
                              f"supported by gru_cy.InferenceSession (it reads "
                              f"{', '.join(sorted(spec.attrs)) or 'no attributes'})")
        kind, _ = spec.attrs[name]
        got = attr_kind(msg)
        if msg.has(21):  # ref_attr_name: only inside functions, which are not inlined here
            raise Unsupported(f"{node.label()}: attribute {name!r} refers to a function's "
                              f"attribute; gru_cy.InferenceSession does not run local functions")
        if got != kind and not (kind == FLOATS and got == FLOAT):
            raise Corrupt(f"{node.label()}: attribute {name!r} should be {ATTR_NAMES[kind]}, "
                          f"got {ATTR_NAMES.get(got, f'type {got}')}")
        values[name] = attr_value(msg, base_dir)
    for name, (_, default) in spec.attrs.items():
        values.setdefault(name, default)
    return values


def as_ints(value, what):
    """A 0-D or 1-D integer tensor as a list of Python ints."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub" or arr.ndim > 1:
        raise Corrupt(f"{what} must be a 1-D integer tensor, got {arr.dtype} of shape "
                      f"{arr.shape}")
    return [int(v) for v in arr.reshape(-1)]


def normalize_axis(axis, rank, what):
    if not -rank <= axis < rank:
        raise Corrupt(f"{what}: axis {axis} out of range for a {rank}-D tensor")
    return axis + rank if axis < 0 else axis
