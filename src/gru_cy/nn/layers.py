"""Feed-forward layers around the recurrent cells: Embedding and Linear.

Both follow the module protocol of ``base.Module`` (live ``params`` and
``grads``, ``zero_grad``, ``state_dict`` / ``load_state_dict``, ``save``,
pickling) and PyTorch's semantics, initialisation and parameter names.
A call runs inference; ``forward_train`` also returns a tape that
``backward`` takes to add the parameter gradients into ``grads``.
"""

from __future__ import annotations

import numpy as np

from gru_cy.nn.base import (
    KeyError_, Module, aligned_empty, as_float_array, check_dtype, check_int, register_module,
    shape_str, to_numpy,
)


class IndexError_(ValueError, IndexError):
    """An id outside the embedding table: a ValueError (as the error
    contract says) that ``except IndexError`` also catches, as in PyTorch."""


class LayerTape:
    """What a layer's backward needs from one forward_train call (opaque).

    A tape may be passed to backward more than once (gradients add up) but
    only to the module that made it.
    """

    __slots__ = ("owner", "inputs", "weight", "out_shape")

    def __repr__(self):
        return f"<gru_cy LayerTape out_shape={self.out_shape}>"


def _make_rng(seed):
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"seed must be None, an int or a numpy.random.Generator, got {seed!r}") from exc


class _Layer(Module):
    """What Embedding and Linear share: parameter access and tape checks."""

    def _param(self, name):
        """params[name] as a C-contiguous array of the module's dtype and shape."""
        p = self.params.get(name)
        shape = self._shape_table()[1][name]
        if type(p) is np.ndarray and p.dtype == self.dtype and p.shape == shape \
                and p.flags.c_contiguous:
            return p
        if name not in self.params:
            raise KeyError_(f"parameter {name!r} is missing from params")
        arr = as_float_array(p, f"params[{name!r}]", self.dtype)
        if arr.shape != shape:
            raise ValueError(f"params[{name!r}] has shape {shape_str(arr.shape)}, expected "
                             f"{shape_str(shape)}")
        return arr

    def _grad(self, name):
        """grads[name], replaced by zeros when missing or unusable."""
        g = self.grads.get(name)
        shape = self._shape_table()[1][name]
        if not (isinstance(g, np.ndarray) and g.shape == shape and g.dtype == self.dtype
                and g.flags.writeable):
            g = self.grads[name] = np.zeros(shape, dtype=self.dtype)
        return g

    def _check_tape(self, tape):
        if not isinstance(tape, LayerTape):
            raise TypeError(f"tape must be the tape returned by {self._mode}.forward_train, "
                            f"got {type(tape).__name__}")
        if tape.owner is not self:
            raise ValueError(f"this tape was made by another module; pass it to the "
                             f"{type(tape.owner).__name__} that returned it")

    def _check_dout(self, tape, dout, name):
        dout = as_float_array(dout, name, self.dtype)
        if dout.shape != tape.out_shape:
            raise ValueError(f"{name} must have the output's shape {shape_str(tape.out_shape)}, "
                             f"got {shape_str(dout.shape)}")
        return dout

    def __repr__(self):
        items = self._extra_repr_items()
        if self.dtype != np.float32:
            items.append(f"dtype={self.dtype.name}")
        return f"{type(self).__name__}({', '.join(items)})"


# ---------------------------------------------------------------------------


@register_module
class Embedding(_Layer):
    """A lookup table: row ``ids[...]`` of ``weight`` (num_embeddings, embedding_dim).

    As ``torch.nn.Embedding``: weights drawn from N(0, 1); the row
    ``padding_idx`` (negative values count from the end) starts at zero and
    receives no gradient; ids of any integer array shape give an output of
    shape ``ids.shape + (embedding_dim,)``; ids outside [0, num_embeddings)
    raise IndexError (also a ValueError).
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float32,
                 seed=None):
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 0)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 0)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx, -(2**63))
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError(f"Padding_idx must be within num_embeddings, got padding_idx="
                                 f"{padding_idx} for num_embeddings={self.num_embeddings}")
            if padding_idx < 0:
                padding_idx += self.num_embeddings
        self.padding_idx = padding_idx
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = _make_rng(seed)
        shape = (self.num_embeddings, self.embedding_dim)
        self.params = {"weight": np.empty(shape, dtype=self.dtype)}
        self.grads = {"weight": np.zeros(shape, dtype=self.dtype)}
        self.reset_parameters()

    def _param_shapes(self):
        return (("weight", (self.num_embeddings, self.embedding_dim)),)

    def _config(self):
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    padding_idx=self.padding_idx)

    def _extra_repr_items(self):
        items = [str(self.num_embeddings), str(self.embedding_dim)]
        if self.padding_idx is not None:
            items.append(f"padding_idx={self.padding_idx}")
        return items

    def reset_parameters(self):
        """Draw the table from N(0, 1) and zero the padding row, like PyTorch."""
        w = self.params["weight"]
        w[...] = self._rng.standard_normal(size=w.shape)
        if self.padding_idx is not None:
            w[self.padding_idx] = 0

    def _ids(self, ids):
        ids = to_numpy(ids, "ids")
        if ids.dtype.kind not in "iu":
            raise TypeError("Expected tensor for argument #1 'indices' to have one of the "
                            "following scalar types: Long, Int; but got ids of dtype "
                            f"{ids.dtype} instead (usage: emb(ids) with integer ids)")
        n = self.num_embeddings
        if ids.size:
            lo, hi = ids.min(), ids.max()
            if lo < 0 or hi >= n:
                bad = int(lo) if lo < 0 else int(hi)
                raise IndexError_(f"index out of range in self: ids must be in [0, {n}), got "
                                  f"{bad}")
        return ids.astype(np.intp, copy=False)

    def __call__(self, ids):
        """The embeddings of ``ids``: an array of shape ids.shape + (embedding_dim,)."""
        ids = self._ids(ids)
        return np.take(self._param("weight"), ids, axis=0)

    def forward_train(self, ids):
        """(embeddings, tape); ``backward(tape, de)`` adds the table's gradient."""
        ids = self._ids(ids)
        tape = LayerTape()
        tape.owner = self
        tape.inputs = ids
        tape.weight = None
        tape.out_shape = ids.shape + (self.embedding_dim,)
        return np.take(self._param("weight"), ids, axis=0), tape

    def backward(self, tape, de):
        """Add d loss / d weight into grads["weight"] (ids carry no gradient): None."""
        self._check_tape(tape)
        de = self._check_dout(tape, de, "de")
        ids = tape.inputs.reshape(-1)
        de = de.reshape(ids.size, self.embedding_dim)
        if self.padding_idx is not None:
            keep = ids != self.padding_idx
            if not keep.all():
                ids, de = ids[keep], de[keep]
        if ids.size:
            _scatter_add_rows(self._grad("weight"), ids, de)
        return None


def _scatter_add_rows(table, ids, rows):
    """table[ids[k]] += rows[k] for every k, repeated ids adding up.

    A sparse (ids x k) matrix of ones times rows: each table row is summed
    in the order of k, so the result is reproducible, and much faster than
    np.add.at. Only the ids present are touched when the table is large.
    """
    from scipy import sparse

    n = ids.size
    ones = np.ones(n, dtype=rows.dtype)
    if table.shape[0] <= 4 * n:
        counts = sparse.csr_matrix((ones, (ids, np.arange(n))), shape=(table.shape[0], n))
        table += counts @ rows
    else:
        present, row_of = np.unique(ids, return_inverse=True)
        counts = sparse.csr_matrix((ones, (row_of.reshape(-1), np.arange(n))),
                                   shape=(present.size, n))
        table[present] += counts @ rows


# ---------------------------------------------------------------------------


@register_module
class Linear(_Layer):
    """y = x @ weight.T + bias over the last axis of x (any leading shape).

    As ``torch.nn.Linear``: ``weight`` (out_features, in_features) and
    ``bias`` (out_features,) drawn from U(-1/sqrt(in_features),
    1/sqrt(in_features)), weight first.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32, seed=None):
        self.in_features = check_int("in_features", in_features, 0)
        self.out_features = check_int("out_features", out_features, 0)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias should be a bool, got {type(bias).__name__}")
        self.bias = bool(bias)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = _make_rng(seed)
        self.params = {name: aligned_empty(shape, self.dtype)
                       for name, shape in self._param_shapes()}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.reset_parameters()

    def _param_shapes(self):
        yield "weight", (self.out_features, self.in_features)
        if self.bias:
            yield "bias", (self.out_features,)

    def _config(self):
        return dict(in_features=self.in_features, out_features=self.out_features,
                    bias=self.bias)

    def _extra_repr_items(self):
        return [f"in_features={self.in_features}", f"out_features={self.out_features}",
                f"bias={self.bias}"]

    def reset_parameters(self):
        """Draw weight, then bias, from U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        bound = 1.0 / np.sqrt(self.in_features) if self.in_features else 0.0
        for p in self.params.values():
            p[...] = self._rng.uniform(-bound, bound, size=p.shape)

    def _input(self, x):
        if type(x) is not np.ndarray or x.ndim == 0:
            x = to_numpy(x, "input")
            if x.ndim == 0:  # (as_float_array would make it 1-d)
                raise ValueError("input must have at least 1 dimension (..., in_features), "
                                 "got a 0-d array")
        x = as_float_array(x, "input", self.dtype)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input.size(-1) must be equal to in_features. Expected "
                             f"{self.in_features}, got {x.shape[-1]}")
        return x

    def _forward(self, x):
        w = self._param("weight")
        y = np.matmul(x, w.T)
        if self.bias:
            y += self._param("bias")
        return y, w

    def __call__(self, x):
        """x (..., in_features) -> y (..., out_features), the module's dtype."""
        return self._forward(self._input(x))[0]

    def forward_train(self, x):
        """(y, tape); ``backward(tape, dy)`` returns dx and adds into grads."""
        x = self._input(x)
        y, w = self._forward(x)
        tape = LayerTape()
        tape.owner = self
        tape.inputs = x
        tape.weight = w
        tape.out_shape = y.shape
        return y, tape

    def backward(self, tape, dy):
        """dx (the input's shape); adds d loss / d weight and d loss / d bias into grads."""
        self._check_tape(tape)
        dy = self._check_dout(tape, dy, "dy")
        x = tape.inputs
        dy2 = dy.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        gw = self._grad("weight")
        gw += np.matmul(dy2.T, x2)  # dW = dy.T @ x over all leading axes
        if self.bias:
            gb = self._grad("bias")
            gb += dy2.sum(axis=0)
        return np.matmul(dy, tape.weight)  # dx = dy @ W
