"""Shape and layout operators: views and copies of data, and the shape arithmetic around them.

Most of these return NumPy views (Reshape, Transpose, Squeeze, Slice, Split,
Expand): the planner knows a view shares its base's memory and never lets an
operator overwrite either while the other is still read.
"""

from __future__ import annotations

import math

import numpy as np

from gru_cy.runtime._registry import (ANY, FLOAT, FLOATS, INT, INTS, STRING, STRINGS, TENSOR,
                                      as_ints, normalize_axis, op)


def _axes_of(ctx, attr_axes, value, what="axes"):
    """Axes from the attribute (older opsets) or the input (newer ones)."""
    if value is not None:
        return as_ints(value, f"{ctx.label}: {what}")
    return None if attr_axes is None else list(attr_axes)


@op("Shape", attrs={"start": (INT, 0), "end": (INT, None)},
    size=lambda args, attrs: args[0].ndim)
def build_shape(ctx):
    start, end = ctx["start"], ctx["end"]
    return lambda x: np.array(x.shape[start:end], dtype=np.int64)


@op("Size", size=lambda args, attrs: 1)
def build_size(ctx):
    return lambda x: np.array(x.size, dtype=np.int64)


@op("Identity")
def build_identity(ctx):
    return lambda x: x


@op("Reshape", attrs={"allowzero": (INT, 0)}, inputs=(2, 2), shape_inputs=(1,))
def build_reshape(ctx):
    allowzero = ctx["allowzero"]
    label = ctx.label

    def reshape(x, shape):
        dims = as_ints(shape, f"{label}: shape")
        if not allowzero:
            if any(d == 0 and i >= x.ndim for i, d in enumerate(dims)):
                raise ValueError(f"{label}: shape {dims} copies a dimension the {x.ndim}-D input "
                                 f"does not have")
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        if any(d < -1 for d in dims) or dims.count(-1) > 1:
            raise ValueError(f"{label}: shape {dims} is not a valid target shape")
        return x.reshape(dims)
    return reshape


@op("Flatten", attrs={"axis": (INT, 1)})
def build_flatten(ctx):
    axis = ctx["axis"]
    label = ctx.label

    def flatten(x):
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"{label}: axis {axis} for a {x.ndim}-D input")
        return x.reshape(math.prod(x.shape[:a]), math.prod(x.shape[a:]))
    return flatten


@op("Squeeze", attrs={"axes": (INTS, None)}, inputs=(1, 2), shape_inputs=(1,))
def build_squeeze(ctx):
    attr_axes = ctx["axes"]

    def squeeze(x, axes=None):
        axes = _axes_of(ctx, attr_axes, axes)
        if axes is None:
            return np.squeeze(x)
        return np.squeeze(x, axis=tuple(normalize_axis(a, x.ndim, ctx.label) for a in axes))
    return squeeze


@op("Unsqueeze", attrs={"axes": (INTS, None)}, inputs=(1, 2), shape_inputs=(1,))
def build_unsqueeze(ctx):
    attr_axes = ctx["axes"]

    def unsqueeze(x, axes=None):
        axes = _axes_of(ctx, attr_axes, axes)
        if axes is None:
            raise ValueError(f"{ctx.label} has no axes")
        rank = x.ndim + len(axes)
        norm = sorted(normalize_axis(a, rank, ctx.label) for a in axes)
        if len(set(norm)) != len(norm):
            raise ValueError(f"{ctx.label}: repeated axes {axes}")
        return np.expand_dims(x, tuple(norm))
    return unsqueeze


@op("Transpose", attrs={"perm": (INTS, None)})
def build_transpose(ctx):
    perm = ctx["perm"]
    if perm is None:
        return lambda x: x.transpose()
    if sorted(perm) != list(range(len(perm))):
        raise ctx.corrupt(f"perm {perm} is not a permutation")
    perm = tuple(perm)

    def transpose(x):
        if x.ndim != len(perm):
            raise ValueError(f"{ctx.label}: perm {list(perm)} for a {x.ndim}-D input")
        return x.transpose(perm)
    return transpose


def _concat_size(args, attrs):
    return sum(a.size for a in args if a is not None)


@op("Concat", attrs={"axis": (INT, None)}, inputs=(1, ANY), size=_concat_size, out=True)
def build_concat(ctx):
    axis = ctx["axis"]
    if axis is None:
        raise ctx.corrupt("Concat has no axis")

    def concat(*args, out=None):
        if len(args) == 1:
            return args[0]
        a = normalize_axis(axis, args[0].ndim, ctx.label)
        if out is not None and any(x.dtype != out.dtype for x in args):
            out = None
        return np.concatenate(args, axis=a, out=out)
    return concat


@op("Split", attrs={"axis": (INT, 0), "split": (INTS, None), "num_outputs": (INT, None)},
    inputs=(1, 2), outputs=(1, ANY), shape_inputs=(1,))
def build_split(ctx):
    axis, attr_split, n = ctx["axis"], ctx["split"], len(ctx.node.outputs)
    if ctx["num_outputs"] is not None and ctx["num_outputs"] != n:
        raise ctx.corrupt(f"num_outputs={ctx['num_outputs']} but {n} outputs")

    def split(x, sizes=None):
        a = normalize_axis(axis, x.ndim, ctx.label)
        sizes = _axes_of(ctx, attr_split, sizes, "split")
        dim = x.shape[a]
        if sizes is None:
            chunk = -(-dim // n)
            sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(n)]
        if len(sizes) != n or sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ValueError(f"{ctx.label}: split {sizes} of a dimension of {dim} into {n} "
                             f"outputs")
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=a))
    return split


def onnx_slices(shape, starts, ends, axes, steps, label):
    """The Python slices of ONNX's Slice (clamped as the operator defines)."""
    rank = len(shape)
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError(f"{label}: starts, ends, axes and steps differ in length")
    index = [slice(None)] * rank
    seen = set()
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = normalize_axis(a, rank, label)
        if a in seen or st == 0:
            raise ValueError(f"{label}: repeated axis {a} or a step of 0")
        seen.add(a)
        dim = shape[a]
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
            index[a] = slice(s, e, st)
        else:
            s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
            index[a] = slice(s, None if e < 0 else e, st)
    return tuple(index)


@op("Slice", attrs={"starts": (INTS, None), "ends": (INTS, None), "axes": (INTS, None)},
    inputs=(1, 5), shape_inputs=(1, 2, 3, 4))
def build_slice(ctx):
    attr = ctx["starts"], ctx["ends"], ctx["axes"]
    label = ctx.label
    stored = [ctx.const(i) if ctx.has_input(i) else None for i in range(1, 5)]
    if all(v is not None or not ctx.has_input(i + 1) for i, v in enumerate(stored)) and (
            ctx.has_input(1) or attr[0] is not None):
        # Stored bounds: the slices depend on the input's shape only, worked out once per shape.
        if ctx.has_input(1):
            bounds = [None if v is None else as_ints(v, f"{label}: {what}")
                      for v, what in zip(stored, ("starts", "ends", "axes", "steps"))]
        else:
            bounds = [attr[0], attr[1], attr[2], None]
        if bounds[0] is None or bounds[1] is None:
            raise ctx.corrupt("Slice has no starts or ends")
        by_shape = {}

        def slice_stored(x, *_):
            index = by_shape.get(x.shape)
            if index is None:
                index = by_shape[x.shape] = onnx_slices(x.shape, *bounds, label)
            return x[index]
        return slice_stored

    def slice_(x, starts=None, ends=None, axes=None, steps=None):
        if starts is None or ends is None:
            if attr[0] is None or attr[1] is None:
                raise ValueError(f"{label} has no starts or ends")
            starts, ends, axes = attr
        else:
            starts, ends = as_ints(starts, f"{label}: starts"), as_ints(ends, f"{label}: ends")
            axes = None if axes is None else as_ints(axes, f"{label}: axes")
        steps = None if steps is None else as_ints(steps, f"{label}: steps")
        return x[onnx_slices(x.shape, starts, ends, axes, steps, label)]
    return slice_


def _gather_size(args, attrs):
    data, indices = args[0], args[1]
    axis = normalize_axis(attrs["axis"], data.ndim, "Gather")
    return indices.size * (data.size // data.shape[axis] if data.shape[axis] else 0)


@op("Gather", attrs={"axis": (INT, 0)}, inputs=(2, 2), size=_gather_size, out=True)
def build_gather(ctx):
    axis = ctx["axis"]

    def gather(data, indices, out=None):
        if indices.dtype.kind not in "iu":
            raise ValueError(f"{ctx.label}: indices of type {indices.dtype}")
        return np.asarray(data.take(indices, normalize_axis(axis, data.ndim, ctx.label), out))
    return gather


@op("GatherElements", attrs={"axis": (INT, 0)}, inputs=(2, 2))
def build_gather_elements(ctx):
    axis = ctx["axis"]

    def gather_elements(data, indices):
        a = normalize_axis(axis, data.ndim, ctx.label)
        idx = np.where(indices < 0, indices + data.shape[a], indices)
        return np.take_along_axis(data, idx, axis=a)
    return gather_elements


def _shape_arg(value, label):
    dims = as_ints(value, f"{label}: shape")
    if any(d < 0 for d in dims):
        raise ValueError(f"{label}: negative dimensions {dims}")
    return dims


def _expand_size(args, attrs):
    return math.prod(np.broadcast_shapes(args[0].shape, tuple(_shape_arg(args[1], "Expand"))))


@op("Expand", inputs=(2, 2), shape_inputs=(1,), size=_expand_size)
def build_expand(ctx):
    def expand(x, shape):
        dims = np.broadcast_shapes(x.shape, tuple(_shape_arg(shape, ctx.label)))
        return np.broadcast_to(x, dims)
    return expand


def _constant_of_shape_size(args, attrs):
    return math.prod(_shape_arg(args[0], "ConstantOfShape"))


@op("ConstantOfShape", attrs={"value": (TENSOR, None)}, shape_inputs=(0,),
    size=_constant_of_shape_size)
def build_constant_of_shape(ctx):
    value = ctx["value"]
    if value is None:
        value = np.zeros(1, np.float32)
    if value.size != 1:
        raise ctx.corrupt(f"value has {value.size} elements, expected 1")
    fill = value.reshape(-1)[0]
    return lambda shape: np.full(_shape_arg(shape, ctx.label), fill, dtype=value.dtype)


@op("Constant", attrs={"value": (TENSOR, None), "value_float": (FLOAT, None),
                       "value_floats": (FLOATS, None), "value_int": (INT, None),
                       "value_ints": (INTS, None), "value_string": (STRING, None),
                       "value_strings": (STRINGS, None), "sparse_value": (TENSOR, None)},
    inputs=(0, 0))
def build_constant(ctx):
    given = [k for k in ctx.node.attrs]
    if len(given) != 1:
        raise ctx.corrupt(f"a Constant needs exactly one value attribute, got {given}")
    key = given[0]
    if key in ("value_string", "value_strings", "sparse_value"):
        raise ctx.unsupported(key, "it runs numeric tensors")
    value = ctx[key]
    if not isinstance(value, np.ndarray):
        value = np.array(value, dtype=np.float32 if "float" in key else np.int64)
    return lambda: value


@op("Dropout", attrs={"ratio": (FLOAT, 0.5), "seed": (INT, 0)}, inputs=(1, 3), outputs=(1, 2))
def build_dropout(ctx):
    if ctx.has_input(2):
        mode = ctx.const(2)
        if mode is None or bool(np.asarray(mode).reshape(-1)[:1].any()):
            raise ctx.unsupported("training_mode", "inference only: training_mode must be a "
                                  "constant false")
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        return lambda x, ratio=None, mode=None: (x, np.ones(x.shape, dtype=bool))
    return lambda x, ratio=None, mode=None: x


def _tile_size(args, attrs):
    reps = as_ints(args[1], "Tile: repeats")
    return args[0].size * math.prod(max(r, 0) for r in reps)


@op("Tile", inputs=(2, 2), shape_inputs=(1,), size=_tile_size)
def build_tile(ctx):
    def tile(x, repeats):
        reps = as_ints(repeats, f"{ctx.label}: repeats")
        if len(reps) != x.ndim or any(r < 0 for r in reps):
            raise ValueError(f"{ctx.label}: repeats {reps} for a {x.ndim}-D input")
        return np.tile(x, reps)
    return tile


def _range_count(start, limit, delta, label):
    if np.ndim(start) or np.ndim(limit) or np.ndim(delta):
        raise ValueError(f"{label}: start, limit and delta must be scalars")
    if delta == 0:
        raise ValueError(f"{label}: delta is 0")
    count = math.ceil((float(limit) - float(start)) / float(delta))
    return max(count, 0)


@op("Range", inputs=(3, 3), shape_inputs=(0, 1, 2),
    size=lambda args, attrs: _range_count(*args, "Range"))
def build_range(ctx):
    def range_(start, limit, delta):
        n = _range_count(start, limit, delta, ctx.label)
        if start.dtype.kind in "iu":
            return (int(start) + int(delta) * np.arange(n, dtype=np.int64)).astype(start.dtype)
        return (start + delta * np.arange(n, dtype=start.dtype)).astype(start.dtype)
    return range_


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def _pad_widths(x, pads, axes, label):
    pads = as_ints(pads, f"{label}: pads")
    rank = x.ndim
    axes = list(range(rank)) if axes is None else [normalize_axis(a, rank, label)
                                                   for a in as_ints(axes, f"{label}: axes")]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"{label}: {len(pads)} pads for {len(axes)} axes")
    widths = [[0, 0] for _ in range(rank)]
    for i, a in enumerate(axes):
        widths[a] = [pads[i], pads[i + len(axes)]]
    return widths


def _pad_size(args, attrs):
    x = args[0]
    pads = args[1] if len(args) > 1 and args[1] is not None else np.array(attrs["pads"] or [])
    axes = args[3] if len(args) > 3 else None
    widths = _pad_widths(x, pads, axes, "Pad")
    return math.prod(max(d + b + e, 0) for d, (b, e) in zip(x.shape, widths))


@op("Pad", attrs={"mode": (STRING, "constant"), "pads": (INTS, None), "value": (FLOAT, 0.0)},
    inputs=(1, 4), shape_inputs=(1, 3), size=_pad_size)
def build_pad(ctx):
    mode = ctx["mode"]
    if mode not in _PAD_MODES:
        raise ctx.unsupported(f"mode={mode!r}", "it pads in modes constant, reflect, edge, wrap")
    attr_pads, attr_value = ctx["pads"], ctx["value"]
    label = ctx.label

    def pad(x, pads=None, value=None, axes=None):
        if pads is None:
            if attr_pads is None:
                raise ValueError(f"{label} has no pads")
            pads = np.array(attr_pads, np.int64)
        widths = _pad_widths(x, pads, axes, label)
        # Negative pads remove elements: crop first, then pad.
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0))
                     for i, (b, e) in enumerate(widths))
        x = x[crop]
        grow = [(max(b, 0), max(e, 0)) for b, e in widths]
        if not any(b or e for b, e in grow):
            return x
        if mode == "constant":
            fill = attr_value if value is None else np.asarray(value).reshape(-1)
            fill = fill if np.ndim(fill) == 0 else (fill[0] if fill.size else 0)
            return np.pad(x, grow, mode="constant", constant_values=x.dtype.type(fill))
        if x.size == 0:
            raise ValueError(f"{label}: cannot pad an empty tensor in mode {mode!r}")
        if mode == "reflect" and any((b or e) and d < 2 for d, (b, e) in zip(x.shape, grow)):
            raise ValueError(f"{label}: reflect padding of an axis of size 1")
        return np.pad(x, grow, mode=_PAD_MODES[mode])
    return pad


@op("Trilu", attrs={"upper": (INT, 1)}, inputs=(1, 2))
def build_trilu(ctx):
    upper = ctx["upper"]

    def trilu(x, k=None):
        k = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
        return np.triu(x, k) if upper else np.tril(x, k)
    return trilu


@op("CumSum", attrs={"exclusive": (INT, 0), "reverse": (INT, 0)}, inputs=(2, 2))
def build_cumsum(ctx):
    exclusive, reverse = ctx["exclusive"], ctx["reverse"]

    def cumsum(x, axis):
        a = normalize_axis(int(np.asarray(axis).reshape(-1)[0]), x.ndim, ctx.label)
        y = np.flip(x, a) if reverse else x
        total = np.cumsum(y, axis=a, dtype=x.dtype)
        if exclusive:
            total = np.concatenate([np.zeros_like(np.take(total, [0], axis=a)),
                                    np.take(total, range(total.shape[a] - 1), axis=a)], axis=a)
        return np.flip(total, a) if reverse else total
    return cumsum


@op("NonZero", shape_inputs=(0,))
def build_nonzero(ctx):
    return lambda x: np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


# -- sequences (lists of tensors), as the dynamo exporter writes for unrolled loops ----------

@op("SplitToSequence", attrs={"axis": (INT, 0), "keepdims": (INT, 1)}, inputs=(1, 2),
    shape_inputs=(1,))
def build_split_to_sequence(ctx):
    axis, keepdims = ctx["axis"], ctx["keepdims"]

    def split_to_sequence(x, split=None):
        a = normalize_axis(axis, x.ndim, ctx.label)
        if split is None:
            parts = np.split(x, x.shape[a], axis=a)
            return [np.squeeze(p, axis=a) for p in parts] if not keepdims else parts
        sizes = as_ints(split, f"{ctx.label}: split")
        if np.ndim(split) == 0:
            sizes = [sizes[0]] * (x.shape[a] // sizes[0]) + (
                [x.shape[a] % sizes[0]] if x.shape[a] % sizes[0] else [])
        if sum(sizes) != x.shape[a] or any(s < 0 for s in sizes):
            raise ValueError(f"{ctx.label}: split {sizes} of a dimension of {x.shape[a]}")
        return np.split(x, np.cumsum(sizes)[:-1], axis=a)
    return split_to_sequence


def _position(seq, index, label):
    i = as_ints(index, f"{label}: position")
    if len(i) != 1 or not -len(seq) <= i[0] < len(seq):
        raise ValueError(f"{label}: position {i} in a sequence of {len(seq)} tensors")
    return i[0]


@op("SequenceAt", inputs=(2, 2))
def build_sequence_at(ctx):
    return lambda seq, index: seq[_position(seq, index, ctx.label)]


@op("SequenceLength")
def build_sequence_length(ctx):
    return lambda seq: np.array(len(seq), dtype=np.int64)


@op("SequenceConstruct", inputs=(1, ANY))
def build_sequence_construct(ctx):
    return lambda *tensors: list(tensors)


@op("ConcatFromSequence", attrs={"axis": (INT, None), "new_axis": (INT, 0)},
    size=lambda args, attrs: sum(t.size for t in args[0]))
def build_concat_from_sequence(ctx):
    axis, new_axis = ctx["axis"], ctx["new_axis"]
    if axis is None:
        raise ctx.corrupt("ConcatFromSequence has no axis")

    def concat_from_sequence(seq):
        if not seq:
            raise ValueError(f"{ctx.label}: an empty sequence")
        if new_axis:
            return np.stack(seq, axis=normalize_axis(axis, seq[0].ndim + 1, ctx.label))
        return np.concatenate(seq, axis=normalize_axis(axis, seq[0].ndim, ctx.label))
    return concat_from_sequence


# -- scatter and gather by index tensors (exports of sorting, packing, index assignment) ------

_SCATTER_REDUCTIONS = {"none": None, "add": np.add, "mul": np.multiply, "max": np.maximum,
                       "min": np.minimum}


def _reduction(ctx):
    name = ctx["reduction"]
    if name not in _SCATTER_REDUCTIONS:
        raise ctx.unsupported(f"reduction={name!r}", "it reads none, add, mul, max, min")
    return _SCATTER_REDUCTIONS[name]


def _in_range(index, dim, label):
    index = np.asarray(index)
    if index.dtype.kind not in "iu":
        raise ValueError(f"{label}: indices of type {index.dtype}")
    if index.size and (index.min() < -dim or index.max() >= dim):
        raise ValueError(f"{label}: an index out of range for a dimension of {dim}")
    return np.where(index < 0, index + dim, index)


@op("ScatterElements", attrs={"axis": (INT, 0), "reduction": (STRING, "none")}, inputs=(3, 3))
def build_scatter_elements(ctx):
    axis, reduce = ctx["axis"], _reduction(ctx)

    def scatter_elements(data, indices, updates):
        a = normalize_axis(axis, data.ndim, ctx.label)
        if indices.shape != updates.shape or indices.ndim != data.ndim:
            raise ValueError(f"{ctx.label}: indices {indices.shape}, updates {updates.shape} "
                             f"for data {data.shape}")
        index = list(np.indices(indices.shape, sparse=True))
        index[a] = _in_range(indices, data.shape[a], ctx.label)
        out = data.copy()
        if reduce is None:
            out[tuple(index)] = updates
        else:
            reduce.at(out, tuple(index), updates)
        return out
    return scatter_elements


@op("ScatterND", attrs={"reduction": (STRING, "none")}, inputs=(3, 3))
def build_scatter_nd(ctx):
    reduce = _reduction(ctx)

    def scatter_nd(data, indices, updates):
        k = indices.shape[-1] if indices.ndim else 0
        if not 1 <= k <= data.ndim or updates.shape != indices.shape[:-1] + data.shape[k:]:
            raise ValueError(f"{ctx.label}: indices {indices.shape}, updates {updates.shape} "
                             f"for data {data.shape}")
        index = tuple(_in_range(indices[..., i], data.shape[i], ctx.label) for i in range(k))
        out = data.copy()
        if reduce is None:
            out[index] = updates
        else:
            reduce.at(out, index, updates)
        return out
    return scatter_nd


@op("GatherND", attrs={"batch_dims": (INT, 0)}, inputs=(2, 2))
def build_gather_nd(ctx):
    if ctx["batch_dims"] != 0:
        raise ctx.unsupported(f"batch_dims={ctx['batch_dims']}", "it gathers with batch_dims=0")

    def gather_nd(data, indices):
        k = indices.shape[-1] if indices.ndim else 0
        if not 1 <= k <= data.ndim:
            raise ValueError(f"{ctx.label}: indices {indices.shape} for data {data.shape}")
        return np.asarray(data[tuple(_in_range(indices[..., i], data.shape[i], ctx.label)
                                     for i in range(k))])
    return gather_nd
