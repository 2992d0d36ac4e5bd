"""Feed-forward layers around the recurrent cells: Embedding and Linear.

Both follow the module protocol of ``base.Module`` (live ``params`` and
``grads``, ``zero_grad``, ``state_dict`` / ``load_state_dict``, ``save``,
pickling) and PyTorch's semantics, initialisation and parameter names.
A call runs inference; ``forward_train`` also returns a tape that
``backward`` takes to add the parameter gradients into ``grads``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from gru_cy.nn.base import (
    Module, as_float_array, check_bool, check_dtype, check_int, make_rng, private_copy,
    register_module, shape_str, to_numpy,
)

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from gru_cy.nn.frozen import FrozenLinear


class IndexError_(ValueError, IndexError):
    """An id outside the embedding table: a ValueError (as the error
    contract says) that ``except IndexError`` also catches, as in PyTorch."""


class LayerTape:
    """What a layer's backward needs from one forward_train call (opaque).

    A snapshot, as the recurrent modules' tapes are: it owns its copies of
    the input and the weight backward reads, so an optimiser step or a
    reused input buffer between forward and backward changes no gradient. A
    tape may be passed to backward more than once (gradients add up) but
    only to the module that made it.
    """

    __slots__ = ("owner", "inputs", "weight", "out_shape")

    owner: Module
    inputs: NDArray[Any]
    weight: NDArray[Any] | None
    out_shape: tuple[int, ...]

    def __repr__(self) -> str:
        return f"<gru_cy LayerTape out_shape={self.out_shape}>"


class _Layer(Module):
    """What Embedding and Linear share: the tape checks and the repr (the
    parameter access and the gradient rule are Module's)."""

    def _check_layer_tape(self, tape):
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

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None) -> None:
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
        self._rng = make_rng(seed)
        self._allocate()

    def _param_shapes(self):
        return (("weight", (self.num_embeddings, self.embedding_dim)),)

    def _config(self) -> dict[str, Any]:
        return dict(num_embeddings=self.num_embeddings, embedding_dim=self.embedding_dim,
                    padding_idx=self.padding_idx)

    def _extra_repr_items(self):
        items = [str(self.num_embeddings), str(self.embedding_dim)]
        if self.padding_idx is not None:
            items.append(f"padding_idx={self.padding_idx}")
        return items

    def reset_parameters(self) -> None:
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

    def __call__(self, ids: ArrayLike) -> NDArray[Any]:
        """The embeddings of ``ids``: an array of shape ids.shape + (embedding_dim,)."""
        ids = self._ids(ids)
        return np.take(self._param("weight"), ids, axis=0)

    forward = __call__

    def forward_train(self, ids: ArrayLike) -> tuple[NDArray[Any], LayerTape]:
        """(embeddings, tape); ``backward(tape, de)`` adds the table's gradient."""
        ids_user = ids
        ids = private_copy(self._ids(ids), ids_user)
        tape = LayerTape()
        tape.owner = self
        tape.inputs = ids
        tape.weight = None   # the table's gradient does not depend on the table
        tape.out_shape = ids.shape + (self.embedding_dim,)
        return np.take(self._param("weight"), ids, axis=0), tape

    def backward(self, tape: LayerTape, de: ArrayLike) -> None:
        """Add d loss / d weight into grads["weight"] (ids carry no gradient): None."""
        self._check_layer_tape(tape)
        de = self._check_dout(tape, de, "de")
        ids = tape.inputs.reshape(-1)
        de = de.reshape(ids.size, self.embedding_dim)
        if self.padding_idx is not None:
            keep = ids != self.padding_idx
            if not keep.all():
                ids, de = ids[keep], de[keep]
        with self._grads_lock():
            grad = self._grad_target("weight")
            if ids.size:
                _scatter_add_rows(grad, ids, de)
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

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None) -> None:
        self.in_features = check_int("in_features", in_features, 0)
        self.out_features = check_int("out_features", out_features, 0)
        self.bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = make_rng(seed)
        self._allocate()

    def _param_shapes(self):
        yield "weight", (self.out_features, self.in_features)
        if self.bias:
            yield "bias", (self.out_features,)

    def _config(self) -> dict[str, Any]:
        return dict(in_features=self.in_features, out_features=self.out_features,
                    bias=self.bias)

    def _extra_repr_items(self):
        return [f"in_features={self.in_features}", f"out_features={self.out_features}",
                f"bias={self.bias}"]

    def reset_parameters(self) -> None:
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

    def __call__(self, x: ArrayLike) -> NDArray[Any]:
        """x (..., in_features) -> y (..., out_features), the module's dtype."""
        return self._forward(self._input(x))[0]

    def freeze(self, precision: str = "fp32") -> FrozenLinear:
        """An inference-only copy with the weight packed once
        (gru_cy.nn.frozen): ``frozen(x)`` as this layer's call. ``precision``:
        "fp32" (the same bits as the layer), "bf16" or "int8" (float32
        layers). Later changes to the layer do not reach it."""
        from gru_cy.nn.frozen import FrozenLinear

        return FrozenLinear(self, precision)

    forward = __call__

    def forward_train(self, x: ArrayLike) -> tuple[NDArray[Any], LayerTape]:
        """(y, tape); ``backward(tape, dy)`` returns dx and adds into grads."""
        x_user = x
        x = self._input(x)
        y, w = self._forward(x)
        tape = LayerTape()
        tape.owner = self
        # Copies: backward must see this call's input and weight, whatever
        # the caller or an optimiser step does to them in between.
        tape.inputs = private_copy(x, x_user)
        tape.weight = w.copy()
        tape.out_shape = y.shape
        return y, tape

    def backward(self, tape: LayerTape, dy: ArrayLike) -> NDArray[Any]:
        """dx (the input's shape); adds d loss / d weight and d loss / d bias into grads."""
        self._check_layer_tape(tape)
        dy = self._check_dout(tape, dy, "dy")
        x = tape.inputs
        dy2 = dy.reshape(-1, self.out_features)
        x2 = x.reshape(-1, self.in_features)
        with self._grads_lock():
            gw = self._grad_target("weight")
            gb = self._grad_target("bias") if self.bias else None
            gw += np.matmul(dy2.T, x2)  # dW = dy.T @ x over all leading axes
            if gb is not None:
                gb += dy2.sum(axis=0)
        return np.matmul(dy, tape.weight)  # dx = dy @ W
