"""A plan specialised to one set of input shapes: shape subgraphs folded, one Python function.

The first run with new input shapes (``specialize``) walks every step with
checks: each output's size against ``tensor_limit`` before it is computed,
errors named by node. The SHAPE steps' results become constants of the
specialisation; the DATA steps become a straight-line function (generated
source: one line per step, the kernels and constants bound as default
arguments) that later runs with these shapes call directly. The same walk
decides which buffers are reused:

- an elementwise step writes into an input nothing reads afterwards (``out=``)
  when that input owns its memory (no other live value is a view of it) and has
  the result's shape and type;
- a value is released (``del``) right after its last reader, so NumPy recycles
  its memory for the next allocations;
- a large intermediate value (``ARENA_MIN_BYTES``) of an operator that writes
  into a given buffer gets one kept between runs (an arena per concurrent run;
  values whose spans do not overlap share a buffer), so that the C allocator does
  not hand those pages back to the system and fault them in again every call;
- an output that is a constant, a graph input or a view of one is copied, so
  the caller never receives memory the session or the caller's inputs own; no
  output lives in an arena or is overwritten by a later step.
"""

from __future__ import annotations

import numpy as np

from gru_cy.io.onnx.codec import Corrupt
from gru_cy.runtime._plan import DATA, FAILURES, SHAPE, _live_steps, _Values

# A run may allocate no tensor larger than this many bytes per byte of the model and
# its inputs, plus the slack (a file can ask for any shape; real models stay far below).
TENSOR_FACTOR = 64
TENSOR_SLACK = 64 << 20


def tensor_limit(model_bytes, feeds):
    return TENSOR_SLACK + TENSOR_FACTOR * (model_bytes + sum(a.nbytes for a in feeds))


def check_size(step, args, limit):
    itemsize = max((a.itemsize for a in args if isinstance(a, (np.ndarray, np.generic))),
                   default=8)
    try:
        n = step.output_size(args)
    except FAILURES as exc:
        raise ValueError(f"{step.label} failed: {type(exc).__name__}: {exc}") from None
    if n * itemsize > limit:
        raise ValueError(f"{step.label} would make a tensor of {n} elements ({n * itemsize} "
                         f"bytes), more than the {limit} bytes a run may allocate for this "
                         f"model and these inputs")


def call_step(step, values):
    try:
        return step.call(values)
    except Corrupt:
        raise
    except FAILURES as exc:
        raise ValueError(f"{step.label} failed: {type(exc).__name__}: {exc}") from None


def _root(a):
    """The object owning a's memory (a itself unless a is a view)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return id(a)


class Specialized:
    """The straight-line function of one set of input shapes (its source kept for reading),
    with the arenas of its large intermediate values: one per concurrent run."""

    __slots__ = ("fn", "source", "steps", "new_arena", "arenas", "delivery", "run")

    def __init__(self, fn, source, steps, new_arena, delivery):
        self.fn, self.source, self.steps, self.delivery = fn, source, steps, delivery
        self.new_arena = new_arena or None
        self.arenas = []
        # run(*feeds) -> outputs: the function itself when it needs no arena
        self.run = fn if self.new_arena is None else self._run_in_arena

    def _run_in_arena(self, *feeds):
        arenas = self.arenas
        try:
            arena = arenas.pop()
        except IndexError:          # the first run, or another thread holds the arena
            arena = self.new_arena()
        try:
            return self.fn(*feeds, arena)
        finally:
            arenas.append(arena)


def specialize(plan, feeds, limit):
    """Run the plan once with checks; returns (Specialized, outputs)."""
    inputs = [internal for _, internal in plan.inputs]
    values = _Values(plan.consts, dict(zip(inputs, feeds)))
    folded = {}
    fast = []
    for step in plan.steps:
        args = [values[n] if n else None for n in step.inputs]
        check_size(step, args, limit)
        results = call_step(step, values)
        for name, value in zip(step.outputs, results):
            if name:
                values[name] = value
                if step.taint == SHAPE:
                    folded[name] = value
        if step.taint != SHAPE:
            fast.append(step)
    # Steps whose results only fed the folded shape computations are dead now.
    live = _live_steps(fast, [o for _, o in plan.outputs])
    compiled = _generate(plan, live, values, folded, limit)
    outputs = [_deliver(values[o], how) for (_, o), how in zip(plan.outputs, compiled.delivery)]
    return compiled, outputs


def _deliver(value, how):
    """An output as the caller receives it: copied, made contiguous, or as it is."""
    if how == "copy":
        return np.array(value, copy=True, order="C")
    if how == "contiguous":
        return np.ascontiguousarray(value)
    return value


# Ops whose output, for a stable shape, is their first input reshaped (a view when possible).
VIEW_OPS = ("Reshape", "Squeeze", "Unsqueeze", "Flatten")
# Buffers at least this large come from the arena: smaller ones NumPy and the C allocator
# recycle cheaply, larger ones the allocator may hand back to the system and fault in again.
ARENA_MIN_BYTES = 32 << 10


class _Storage:
    """Memory shared by values (a buffer and its views, an in-place chain)."""

    __slots__ = ("names", "first", "end", "fixed", "output")

    def __init__(self):
        self.names, self.first, self.end = [], None, -1
        self.fixed = self.output = False


def _generate(plan, fast, values, folded, limit):
    inputs = [internal for _, internal in plan.inputs]
    output_names = [o for _, o in plan.outputs]
    ident = {n: f"i{k}" for k, n in enumerate(inputs)}
    bound = {}

    def name_of(n):
        if n not in ident:
            if n in folded or n in plan.consts:
                ident[n] = f"k{len(bound)}"
                bound[ident[n]] = folded[n] if n in folded else plan.consts[n]
            else:
                ident[n] = f"v{len(ident)}"
        return ident[n]

    defined, last = {}, {}
    for j, step in enumerate(fast):
        for n in step.inputs:
            if n:
                last[n] = j
        for n in step.outputs:
            if n:
                defined[n] = j
    storages = _storages(plan, values, folded, defined, last, output_names)
    storage_of = {n: st for st in storages for n in st.names}

    def reusable(n, j, result):
        """Whether step j may write its result into input n's buffer."""
        a, st = values.get(n), storage_of.get(n)
        return (st is not None and n in defined and isinstance(a, np.ndarray)
                and isinstance(result, np.ndarray) and a.flags.writeable
                and a.flags.c_contiguous and a.shape == result.shape
                and a.dtype == result.dtype and plan.stable.get(n, False)
                and plan.taint.get(n) == DATA and not st.fixed and not st.output
                and st.end == j)

    kernels, inplace = {}, {}
    for j, step in enumerate(fast):
        kernel = step.kernel
        result_name = step.outputs[0]
        result = values.get(result_name)
        if (step.op_type in VIEW_OPS and plan.stable.get(result_name)
                and isinstance(result, np.ndarray)):
            kernel = _view_as(result.shape)
        elif step.spec is not None and step.spec.size is not None and any(
                k < len(step.inputs) and step.inputs[k] and plan.taint.get(step.inputs[k]) == DATA
                for k in step.spec.shape_inputs):
            kernel = _guarded(step, limit)
        kernels[f"f{j}"] = kernel
        if step.spec is not None and step.spec.inplace and plan.stable.get(result_name):
            for n in step.inputs[:2]:
                if n and reusable(n, j, result):
                    inplace[j] = n
                    _merge(storage_of, storage_of[n], storage_of.get(result_name))
                    break
    arena, (buffers, new_arena) = _arena(fast, values, storage_of, plan)
    lines = [f"    {', '.join(buffers)}, = arena"] if buffers else []
    for j, step in enumerate(fast):
        args = [name_of(n) if n else "None" for n in step.inputs]
        extra = ""
        if j in inplace:
            extra = f", out={name_of(inplace[j])}"
        elif j in arena:
            extra = f", out={arena[j]}"
        outs = [name_of(o) if o else "_" for o in step.outputs]
        lhs = outs[0] if len(outs) == 1 else ", ".join(outs)
        while args and args[-1] == "None" and not extra:
            args.pop()
        lines.append(f"    {lhs} = f{j}({', '.join(args)}{extra})")
        dead = [name_of(n) for n in dict.fromkeys(step.inputs + step.outputs)
                if n and n in defined and n not in output_names and last.get(n, -1) <= j]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    returns, delivery = [], []
    seen = set()
    for o in output_names:
        v = values[o]
        st = storage_of.get(o)
        shared = st is None or st.fixed or id(st) in seen or any(
            m not in defined for m in st.names)
        if o not in defined or shared or not isinstance(v, np.ndarray) or not v.flags.writeable:
            delivery.append("copy")
            returns.append(f"_array({name_of(o)}, copy=True, order='C')")
        elif not v.flags.c_contiguous:
            delivery.append("contiguous")
            returns.append(f"_contiguous({name_of(o)})")
        else:
            delivery.append("as is")
            returns.append(name_of(o))
        if st is not None:
            seen.add(id(st))
    params = [f"i{k}" for k in range(len(inputs))] + (["arena"] if buffers else [])
    params += [f"{k}={k}" for k in kernels] + [f"{k}={k}" for k in bound]
    params += ["_array=_array", "_contiguous=_contiguous"]
    source = "\n".join([f"def run({', '.join(params)}):"] + lines
                       + [f"    return ({''.join(r + ', ' for r in returns)})"]) + "\n"
    namespace = dict(kernels, **bound, _array=np.array, _contiguous=np.ascontiguousarray)
    exec(compile(source, "<gru_cy.InferenceSession plan>", "exec"), namespace)  # noqa: S102
    return Specialized(namespace["run"], source, fast, new_arena, delivery)


def _storages(plan, values, folded, defined, last, output_names):
    """Group values by the memory they share (in the first run), with each group's span."""
    by_root = {}
    items = list(values.items()) + [(n, v) for n, v in plan.consts.items() if n not in values]
    for n, v in items:
        if not isinstance(v, np.ndarray):
            continue
        st = by_root.setdefault(_root(v), _Storage())
        st.names.append(n)
        if n not in defined:
            st.fixed = True    # a graph input, a constant, a folded shape value
        else:
            j = defined[n]
            if st.first is None or j < defined[st.first]:
                st.first = n
            st.end = max(st.end, j, last.get(n, -1))
        if n in output_names:
            st.output = True
    return list(by_root.values())


def _merge(storage_of, into, other):
    """An in-place step: its result's memory is its input's."""
    if other is None or other is into:
        return
    for n in other.names:
        storage_of[n] = into
    into.names += other.names
    into.end = max(into.end, other.end)
    into.fixed |= other.fixed
    into.output |= other.output


def _arena(fast, values, storage_of, plan):
    """Buffers kept between runs for the large values nothing returns: ({step: buffer name},
    (buffer names, arena factory)). Values whose spans do not overlap share a buffer."""
    wanted = {}
    for st in {id(s): s for s in storage_of.values()}.values():
        n = st.first
        if n is None or st.fixed or st.output:
            continue
        v = values.get(n)
        step_index = None
        for j, step in enumerate(fast):
            if step.outputs and step.outputs[0] == n:
                step_index = j
                break
        if (step_index is None or not isinstance(v, np.ndarray)
                or not v.flags.c_contiguous or v.nbytes < ARENA_MIN_BYTES
                or not plan.stable.get(n) or fast[step_index].spec is None
                or not fast[step_index].spec.out):
            continue
        wanted[step_index] = st
    if not wanted:
        return {}, ((), None)
    sizes, views, assigned = [], [], {}
    busy, free = [], []   # (last step reading it, buffer index); buffer indices
    for j in sorted(wanted):
        st = wanted[j]
        free += [b for end, b in busy if end < j]
        busy = [(end, b) for end, b in busy if end >= j]
        v = values[st.first]
        fits = [b for b in free if sizes[b] >= v.nbytes]
        if fits:
            b = min(fits, key=sizes.__getitem__)
            free.remove(b)
        else:
            b = len(sizes)
            sizes.append(v.nbytes)
        busy.append((st.end, b))
        views.append((b, v.dtype, v.shape))
        assigned[j] = f"b{len(views) - 1}"

    def new_arena():
        raw = [np.empty(-(-size // 64) * 64 + 64, np.uint8) for size in sizes]
        out = []
        for b, dtype, shape in views:
            base = raw[b]
            offset = (-base.ctypes.data) % 64      # cache-line aligned
            nbytes = int(np.prod(shape)) * dtype.itemsize
            out.append(base[offset:offset + nbytes].view(dtype).reshape(shape))
        return tuple(out)
    return assigned, ([f"b{k}" for k in range(len(views))], new_arena)


def _view_as(shape):
    def view(x, *_):
        return x.reshape(shape)
    return view


def _guarded(step, limit):
    """A kernel checking its output's size first: its shape is read from data."""
    kernel = step.kernel

    def guarded(*args, **kwargs):
        check_size(step, args, limit)
        return kernel(*args, **kwargs)
    return guarded
