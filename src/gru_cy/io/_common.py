"""Helpers every format shares: the module registry, gate blocks, stacked
layer/direction parameters, dtypes, atomic writes.

A recurrent module stores, per layer ``k`` and direction (``_reverse``
suffix for the second), ``weight_ih_l{k}`` (G*H, in), ``weight_hh_l{k}``
(G*H, H) and, with bias, ``bias_ih_l{k}`` / ``bias_hh_l{k}`` (G*H,), where
G is the cell's number of gate blocks (``_gates``). The converters move
these blocks between formats: they reorder gate blocks (``permute_gates``),
transpose, and split or join biases, and never compute with the values.
"""

from __future__ import annotations

import os
import secrets

import numpy as np

from gru_cy.nn.base import MODULES


def module_class(cls, kind="GRU"):
    """cls if given, else the registered class of that kind."""
    if cls is not None:
        return cls
    return MODULES[kind]


def cell_spec(table, cls, default="GRU"):
    """The entry of a format's per-cell table for class cls (or the default kind).

    A subclass uses the entry of its nearest registered ancestor, so that a
    user's ``class MyGRU(gru_cy.GRU)`` converts like a GRU.
    """
    if cls is None:
        return table[default]
    for klass in cls.__mro__:
        kind = klass.__dict__.get("_kind")
        if kind in table:
            return table[kind]
    raise TypeError(f"{cls.__name__} has no converter for this format (it converts "
                    f"{', '.join(sorted(table))})")


def kind_of(spec_table, spec):
    """The gru_cy kind a table entry belongs to."""
    for kind, entry in spec_table.items():
        if entry is spec:
            return kind
    raise KeyError(spec)


def permute_gates(a, perm):
    """Reorder the gate blocks along axis 0: block i of the result is block perm[i] of a."""
    n = a.shape[0] // len(perm)
    return np.concatenate([a[p * n:(p + 1) * n] for p in perm], axis=0)


def inverse(perm):
    """The permutation undoing perm."""
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def float_dtype(dtype):
    """float64 stays float64; every other float type (float16, bfloat16, ...) becomes float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def suffix(k, d):
    return f"_l{k}" + ("_reverse" if d == 1 else "")


def direction_params(module):
    """[(w_ih, w_hh, b_ih, b_hh)] per layer and direction; zero biases when bias=False."""
    G, H, dt = module._gates, module.hidden_size, module.dtype
    params = module.state_dict()
    layers = []
    for k in range(module.num_layers):
        row = []
        for d in range(module.num_directions):
            s = suffix(k, d)
            if module.bias:
                b_ih, b_hh = params["bias_ih" + s], params["bias_hh" + s]
            else:
                b_ih = b_hh = np.zeros(G * H, dt)
            row.append((params["weight_ih" + s], params["weight_hh" + s], b_ih, b_hh))
        layers.append(row)
    return layers


def stack_state(layers, bias):
    """The state dict of per-layer lists of per-direction (w_ih, w_hh, b_ih, b_hh)."""
    state = {}
    for k, params in enumerate(layers):
        for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(params):
            s = suffix(k, d)
            state["weight_ih" + s], state["weight_hh" + s] = w_ih, w_hh
            if bias:
                state["bias_ih" + s], state["bias_hh" + s] = b_ih, b_hh
    return state


def param_shapes(G, input_size, hidden_size, num_layers, bidirectional, bias, proj_size=0):
    """{name: shape} of a stacked cell with G gate blocks, without building a module
    (proj_size: an LSTM's projection, state width R = proj_size, weight_hr (P, H))."""
    H, D = hidden_size, 2 if bidirectional else 1
    R = proj_size or H
    shapes = {}
    for k in range(num_layers):
        for d in range(D):
            s = suffix(k, d)
            shapes["weight_ih" + s] = (G * H, input_size if k == 0 else D * R)
            shapes["weight_hh" + s] = (G * H, R)
            if bias:
                shapes["bias_ih" + s] = shapes["bias_hh" + s] = (G * H,)
            if proj_size:
                shapes["weight_hr" + s] = (proj_size, H)
    return shapes


def build(cls, config, state, dtype):
    """A module of class cls from a config dict and a PyTorch-named state dict."""
    module = cls(**config, dtype=dtype)
    module.load_state_dict(state)
    return module


def write_atomically(path, write):
    """Call write(f) on a new temporary file next to path, then rename it to path.

    The temporary file's name is unique (created with O_EXCL under a random
    name, as tempfile.mkstemp does, but with the permissions an ordinary
    ``open`` gives), so that threads and processes saving to one path at
    once never write into each other's file: each rename is atomic, the last
    one wins, and a reader sees one whole file or another. A file object is
    written directly.
    """
    if hasattr(path, "write"):
        write(path)
        return
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no unused temporary name next to {path}")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
