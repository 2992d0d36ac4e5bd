"""Planning a graph at load: order, constant folding, what each value depends on.

The planner walks the graph once, in topological order, and gives every value
a *taint*:

- ``CONST``: computed from stored tensors only. Folded now (within the
  limits of io.onnx.graph.Limits), except by ``heavy`` operators (products),
  which become SHAPE steps: run once per set of input shapes, then kept.
- ``SHAPE``: computed from the shapes of the graph inputs (Shape, Size and what
  follows from them and from constants), provided those shapes do not depend on
  data (``stable``: an operator whose output shape is read from a tensor computed
  from data, like Reshape to a computed shape, makes its output unstable). Such
  values are folded at the first run with a new set of input shapes.
- ``DATA``: everything else, computed by every run.

Every node is checked and its kernel built here: an operator, attribute or
value the runtime does not support raises NotImplementedError, a malformed
graph ValueError, before any run. An ``If`` whose condition folds is replaced by
its branch; one whose condition depends on inputs becomes a step that runs the
chosen branch's own plan. Dead nodes are dropped, and a MatMul by a stored matrix
followed by the addition of a stored bias becomes one product.
"""

from __future__ import annotations

import heapq

import numpy as np

from gru_cy.io.onnx.codec import Corrupt
from gru_cy.io.onnx.graph import Limits, read_initializer
from gru_cy.runtime._model import DEFAULT_DOMAINS, GraphDef
from gru_cy.runtime._registry import OPS, BuildContext, Unsupported
from gru_cy.runtime.ops.recurrent import fuse_stacks

CONST, SHAPE, DATA = 0, 1, 2
SHAPE_OF = ("Shape", "Size")
# What NumPy raises on values an operator cannot take (shapes that do not fit, indices out
# of range, ...): a malformed model at load, a bad input (or model) at run.
FAILURES = (ValueError, IndexError, TypeError, OverflowError, ZeroDivisionError, KeyError,
            MemoryError)


class Step:
    """One node (or fused pair of nodes) to run: kernel(*inputs) -> outputs."""

    __slots__ = ("label", "op_type", "spec", "attrs", "kernel", "inputs", "outputs", "taint",
                 "stable", "meta")

    def __init__(self, label, op_type, spec, attrs, kernel, inputs, outputs, taint, stable,
                 meta=None):
        self.label, self.op_type, self.spec, self.attrs = label, op_type, spec, attrs
        self.kernel, self.inputs, self.outputs = kernel, inputs, outputs
        self.taint, self.stable, self.meta = taint, stable, meta

    def call(self, values):
        """The step's outputs (a tuple) from the dict of values."""
        args = [values[n] if n else None for n in self.inputs]
        result = self.kernel(*args)
        return result if len(self.outputs) > 1 else (result,)

    def output_size(self, args):
        """The elements of the step's largest output, known before running it."""
        if self.spec is not None and self.spec.size is not None:
            return self.spec.size(args, self.attrs)
        return max((a.size for a in args if isinstance(a, np.ndarray)), default=1)


class Scope:
    """The names a graph sees, mapped to the plan's internal (unique) names."""

    def __init__(self, parent=None, prefix=""):
        self.parent, self.prefix = parent, prefix
        self.names = {}
        self.escaped = set()   # internal names this scope reads from enclosing graphs

    def define(self, name):
        internal = self.prefix + name
        self.names[name] = internal
        return internal

    def visible(self, name):
        scope = self
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.parent
        return False

    def resolve(self, name):
        scope, passed = self, []
        while scope is not None:
            if name in scope.names:
                internal = scope.names[name]
                for s in passed:
                    s.escaped.add(internal)
                return internal
            passed.append(scope)
            scope = scope.parent
        return None


class Plan:
    """A planned main graph: steps in order, constants, taints, inputs and outputs."""

    def __init__(self, steps, consts, taint, stable, inputs, outputs, limits):
        self.steps = steps
        self.consts = consts
        self.taint = taint
        self.stable = stable
        self.inputs = inputs      # [(ValueInfo, internal name)]
        self.outputs = outputs    # [(ValueInfo, internal name)]
        self.limits = limits


class Planner:
    def __init__(self, model, base_dir, size, precision):
        self.opset = model.opset
        self.functions = model.functions
        self.base_dir = base_dir
        self.precision = precision
        self.limits = Limits(size)
        self.consts = {}
        self.pending = {}    # internal name -> TensorProto not decoded yet
        self.taint = {}
        self.stable = {}
        self._graphs = {}
        self._prefixes = 0
        self.static = {}     # graph input -> its declared shape, when every dimension is fixed

    # -- the main graph ---------------------------------------------------------------

    def plan(self, graph):
        scope = Scope()
        inputs = []
        for vi in graph.inputs:
            if vi.name in graph.initializers:
                continue   # an initializer listed as an input too: its stored value is used
            if scope.visible(vi.name):
                raise Corrupt(f"graph input {vi.name!r} is declared twice")
            internal = scope.define(vi.name)
            self.taint[internal], self.stable[internal] = DATA, True
            if vi.dims is not None and all(isinstance(d, int) and d >= 0 for d in vi.dims):
                self.static[internal] = tuple(vi.dims)   # run checks the feeds against it
            inputs.append((vi, internal))
        steps = []
        self._plan_graph(graph, scope, steps)
        outputs = []
        for vi in graph.outputs:
            internal = scope.resolve(vi.name)
            if internal is None:
                raise Corrupt(f"graph output {vi.name!r} is computed by no node")
            self.const(internal)   # a stored tensor given out as it is: decode it now
            outputs.append((vi, internal))
        names = [o for _, o in outputs]
        steps = _fuse_matmul_add(_live_steps(steps, names), self.consts, names)
        steps = fuse_stacks(steps, self.consts, names, self.precision, _stack_step)
        steps = _live_steps(steps, names)   # the Slices of a fused stack's state are dead
        return Plan(steps, self.consts, self.taint, self.stable, inputs, outputs, self.limits)

    # -- graphs and nodes --------------------------------------------------------------

    def _plan_graph(self, graph, scope, steps):
        for name, msg in graph.initializers.items():
            if name in scope.names:
                raise Corrupt(f"initializer {name!r} has the name of a graph input")
            internal = scope.define(name)
            self.pending[internal] = (msg, name)
            self.taint[internal], self.stable[internal] = CONST, True
        for node in self._topological(graph, scope):
            self._plan_node(node, scope, steps, graph.depth)

    def const(self, internal):
        """The value of a CONST name (decoding a stored tensor on first use), else None."""
        if self.taint.get(internal) != CONST:
            return None
        value = self.consts.get(internal)
        if value is None:
            msg, name = self.pending.pop(internal)
            value = read_initializer(msg, name, self.base_dir, self.limits)
            value.setflags(write=False)
            self.consts[internal] = value
        return value

    def _subgraph(self, node, attr, depth):
        msg = node.attrs.get(attr)
        if msg is None:
            raise Corrupt(f"{node.label()} has no {attr}")
        key = id(msg)
        if key not in self._graphs:
            graph = msg.message(6)
            if graph is None:
                raise Corrupt(f"{node.label()}: attribute {attr!r} is not a graph")
            self._graphs[key] = (msg, GraphDef(graph, depth + 1))
        return self._graphs[key][1]

    def _free_names(self, node, depth):
        """Names a node's subgraphs read from the graphs around them."""
        if node.op_type != "If" or node.domain not in DEFAULT_DOMAINS:
            return set()
        free = set()
        for attr in ("then_branch", "else_branch"):
            if attr not in node.attrs:
                continue
            graph = self._subgraph(node, attr, depth)
            inside = set(graph.initializers) | {vi.name for vi in graph.inputs}
            for inner in graph.nodes:
                inside.update(o for o in inner.outputs if o)
            for inner in graph.nodes:
                self.limits.step()
                free.update(n for n in inner.inputs if n and n not in inside)
                free.update(n for n in self._free_names(inner, depth + 1) if n not in inside)
            free.update(vi.name for vi in graph.outputs if vi.name not in inside)
        return free

    def _topological(self, graph, scope):
        """The graph's nodes, each after the nodes it reads (the file's order otherwise)."""
        nodes = graph.nodes
        produced = {}
        for i, node in enumerate(nodes):
            for out in node.outputs:
                if not out:
                    continue
                if out in produced or out in scope.names:
                    raise Corrupt(f"{node.label()}: its output {out!r} is already defined")
                produced[out] = i
        waiting = [0] * len(nodes)
        readers = [[] for _ in nodes]
        for i, node in enumerate(nodes):
            needs = set()
            for name in [n for n in node.inputs if n] + sorted(self._free_names(node,
                                                                                graph.depth)):
                self.limits.step()
                if name in produced:
                    needs.add(produced[name])
                elif not scope.visible(name):
                    raise Corrupt(f"{node.label()} reads {name!r}, which no node, graph input or "
                                  f"initializer provides")
            for j in needs:
                readers[j].append(i)
            waiting[i] = len(needs)
        ready = [i for i in range(len(nodes)) if waiting[i] == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(nodes[i])
            for j in readers[i]:
                self.limits.step()
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) != len(nodes):
            stuck = [nodes[i].label() for i in range(len(nodes)) if waiting[i]][:3]
            raise Corrupt(f"the graph has a cycle (through {', '.join(stuck)})")
        return order

    def _plan_node(self, node, scope, steps, depth):
        self.limits.step()
        label = node.label()
        if node.domain not in DEFAULT_DOMAINS:
            if (node.domain, node.op_type) in self.functions:
                raise Unsupported(f"{label} calls the model's local function "
                                  f"{node.domain}.{node.op_type}; gru_cy.InferenceSession does "
                                  f"not run local functions (export with them inlined)")
            raise Unsupported(f"{label}: operator {node.op_type} of domain {node.domain!r} is "
                              f"not supported by gru_cy.InferenceSession")
        spec = OPS.get(node.op_type)
        if spec is None:
            raise Unsupported(f"{label}: operator {node.op_type} is not supported by "
                              f"gru_cy.InferenceSession (docs/session.md lists what it runs)")
        lo, hi = spec.inputs
        if not lo <= len(node.inputs) <= hi or not all(node.inputs[:lo]):
            raise Corrupt(f"{label} has inputs {node.inputs}; {node.op_type} takes {lo} to "
                          f"{hi}, the first {lo} given")
        lo, hi = spec.outputs
        if not lo <= len(node.outputs) <= hi or not node.outputs[0]:
            raise Corrupt(f"{label} has outputs {node.outputs}; {node.op_type} gives {lo} to {hi}")
        inputs = [scope.resolve(n) if n else "" for n in node.inputs]
        if node.op_type == "If":
            self._plan_if(node, scope, steps, inputs, depth)
            return
        consts = [self.const(n) if n else None for n in inputs]
        try:
            ctx = BuildContext(node, spec, self.opset, consts, [bool(o) for o in node.outputs],
                               self.precision, self.base_dir)
            kernel = spec.build(ctx)
        except (IndexError, TypeError, KeyError, OverflowError, ZeroDivisionError) as exc:
            raise Corrupt(f"{label} cannot be prepared ({type(exc).__name__}: {exc})") from None
        present = [n for n in inputs if n]
        taint = max((self.taint[n] for n in present), default=CONST)
        stable = all(self.stable[n] for n in present) and all(
            self.taint[inputs[k]] <= SHAPE for k in spec.shape_inputs
            if k < len(inputs) and inputs[k])
        if node.op_type in SHAPE_OF and taint != CONST:
            taint = SHAPE if self.stable[inputs[0]] else DATA
            if inputs[0] in self.static:
                # The shape of an input whose every dimension is declared: folded now, on a
                # stand-in of that shape that holds no memory.
                shape = self.static[inputs[0]]
                try:
                    consts = [np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape,
                                                              (0,) * len(shape))]
                    taint = CONST
                except ValueError:   # a shape NumPy cannot even describe: left to the run
                    pass
        outputs = [scope.define(n) if n else "" for n in node.outputs]
        step = Step(label, node.op_type, spec, ctx.attrs, kernel, inputs, outputs, taint, stable,
                    ctx.meta)
        if taint == CONST and not spec.heavy:
            self._fold(step, consts)
            return
        if taint == CONST:
            step.taint = SHAPE   # a product of constants: computed at the first run, then kept
        for name in outputs:
            if name:
                self.taint[name], self.stable[name] = step.taint, stable
        steps.append(step)

    def _fold(self, step, args):
        """Evaluate a step of constants now, within the memory limit."""
        try:
            itemsize = max((a.itemsize for a in args if a is not None), default=8)
            self.limits.reserve(step.output_size(args) * max(itemsize, 8), step.label)
            values = step.call(dict(zip(step.inputs, args)))
        except Corrupt:
            raise
        except FAILURES as exc:
            raise Corrupt(f"{step.label} cannot be evaluated ({type(exc).__name__}: "
                          f"{exc})") from None
        for name, value in zip(step.outputs, values):
            if not name:
                continue
            if value is None:
                raise Corrupt(f"{step.label} gives no value for its output {name!r}")
            value = np.asarray(value)
            self.limits.charge(value, args, f"{step.label} output {name!r}")
            if value.flags.writeable:
                value.setflags(write=False)
            self.consts[name] = value
            self.taint[name], self.stable[name] = CONST, True

    def _prefix(self):
        self._prefixes += 1
        return f"\x00{self._prefixes}/"   # no ONNX name holds a NUL: no clash with the file's

    def _plan_if(self, node, scope, steps, inputs, depth):
        cond = inputs[0]
        branches = [self._subgraph(node, a, depth) for a in ("then_branch", "else_branch")]
        for graph in branches:
            if len(graph.outputs) != len(node.outputs):
                raise Corrupt(f"{node.label()}: a branch gives {len(graph.outputs)} outputs for "
                              f"{len(node.outputs)}")
        if self.taint[cond] == CONST:
            value = self.const(cond)
            if value.size != 1:
                raise Corrupt(f"{node.label()}: its condition has {value.size} elements")
            graph = branches[0] if bool(value.reshape(-1)[0]) else branches[1]
            sub = Scope(scope, self._prefix())
            self._plan_graph(graph, sub, steps)
            for name, vi in zip(node.outputs, graph.outputs):
                internal = sub.resolve(vi.name)
                if internal is None:
                    raise Corrupt(f"{node.label()}: branch output {vi.name!r} is computed by "
                                  f"no node")
                if name:
                    scope.names[name] = internal
            return
        planned = []
        for graph in branches:
            sub = Scope(scope, self._prefix())
            sub_steps = []
            self._plan_graph(graph, sub, sub_steps)
            outs = [sub.resolve(vi.name) for vi in graph.outputs]
            if None in outs:
                raise Corrupt(f"{node.label()}: a branch output is computed by no node")
            for o in outs:
                self.const(o)   # a stored tensor given out as it is: decode it now
            planned.append((sub_steps, outs, sub.escaped))
        implicit = sorted(set().union(*(esc for _, _, esc in planned))
                          - {n for n in self.taint if self.taint[n] == CONST})
        for n in implicit:
            self.const(n)
        step_inputs = [cond] + implicit
        taint = max(self.taint[n] for n in step_inputs)
        stable = self.taint[cond] <= SHAPE and all(self.stable[n] for n in step_inputs) and all(
            self.stable.get(o, True) for _, outs, _ in planned for o in outs)
        kernel = _IfKernel(node.label(), planned, implicit, self.consts, len(node.outputs))
        outputs = [scope.define(n) if n else "" for n in node.outputs]
        for name in outputs:
            if name:
                self.taint[name], self.stable[name] = taint, stable
        steps.append(Step(node.label(), "If", None, {}, kernel, step_inputs, outputs, taint,
                          stable))


class _IfKernel:
    """An If whose condition is known only at run: runs the chosen branch's plan."""

    def __init__(self, label, branches, implicit, consts, n_out):
        self.label, self.branches, self.implicit = label, branches, implicit
        self.consts, self.n_out = consts, n_out

    def __call__(self, cond, *values):
        cond = np.asarray(cond)
        if cond.size != 1:
            raise ValueError(f"{self.label}: its condition has {cond.size} elements")
        steps, outs, _ = self.branches[0 if bool(cond.reshape(-1)[0]) else 1]
        env = _Values(self.consts, dict(zip(self.implicit, values)))
        run_steps(steps, env)
        results = tuple(env[o] for o in outs)
        return results if self.n_out > 1 else results[0]


class _Values(dict):
    """Values by internal name, falling back on the plan's constants."""

    def __init__(self, consts, values):
        super().__init__(values)
        self.consts = consts

    def __missing__(self, name):
        return self.consts[name]


def run_steps(steps, values, check=None):
    """Run steps over a dict of values (the plain interpreter; check(step, args) first)."""
    for step in steps:
        if check is not None:
            check(step, [values[n] if n else None for n in step.inputs])
        try:
            results = step.call(values)
        except Corrupt:
            raise
        except FAILURES as exc:
            raise ValueError(f"{step.label} failed: {type(exc).__name__}: {exc}") from None
        for name, value in zip(step.outputs, results):
            if name:
                values[name] = value
    return values


def _live_steps(steps, outputs):
    """The steps whose results reach an output."""
    needed = set(outputs)
    live = []
    for step in reversed(steps):
        if any(o in needed for o in step.outputs if o):
            live.append(step)
            needed.update(n for n in step.inputs if n)
    return live[::-1]


def _stack_step(chain, kernel, inputs, outputs, label):
    """The step of a stack of recurrent nodes run as one module (ops.recurrent.fuse_stacks)."""
    return Step(label, chain[0].op_type, chain[0].spec, {}, kernel, inputs, outputs,
                max(s.taint for s in chain), all(s.stable for s in chain))


def _fuse_matmul_add(steps, consts, outputs):
    """MatMul by a stored matrix, then Add of a stored bias over its last axis: one step."""
    from gru_cy.runtime.ops.nn import fused_matmul_bias

    readers = {}
    for step in steps:
        for n in step.inputs:
            if n:
                readers[n] = readers.get(n, 0) + 1
    producer = {o: step for step in steps for o in step.outputs if o}
    fused, drop = {}, set()
    for step in steps:
        if step.op_type != "Add":
            continue
        a, b = step.inputs
        for x, bias_name in ((a, b), (b, a)):
            mm = producer.get(x)
            bias = consts.get(bias_name)
            if (mm is None or bias is None or mm.op_type != "MatMul" or readers.get(x) != 1
                    or x in outputs or id(mm) in drop):
                continue
            w = consts.get(mm.inputs[1])
            # A bias of at most one axis cannot change the product's shape.
            if (w is None or w.ndim != 2 or bias.ndim > 1 or bias.dtype != w.dtype
                    or (bias.ndim and bias.shape[0] not in (1, w.shape[1]))):
                continue
            kernel = fused_matmul_bias(w, bias)
            fused[id(step)] = Step(f"{mm.label} + {step.label}", "MatMul+Add", mm.spec, mm.attrs,
                                   kernel, mm.inputs, step.outputs, max(mm.taint, step.taint),
                                   step.stable)
            drop.add(id(mm))
            break
    return [fused.get(id(s), s) for s in steps if id(s) not in drop]
