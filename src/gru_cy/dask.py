"""Scale-out on Dask: batch inference and data-parallel training.

An optional extra (``gru_cy[dask]``: ``dask[distributed]``); ``import
gru_cy`` never imports this module, and this module imports dask.

``predict(model, X)``
    Lazy inference over a dask collection. The model travels to the workers
    once (one node of the task graph that every block depends on), never
    once per chunk; each worker runs the compiled kernels on its own blocks
    with the GIL released.

``fit(estimator, X, y, client=None)``
    Synchronous data-parallel training of an ``RNNClassifier`` /
    ``RNNRegressor`` on a ``dask.distributed`` cluster. The data stay on
    the workers; every optimiser step sends the current weights to the
    tasks that hold the samples of the global batch, sums their gradients
    by a tree reduction and applies one step on the client. The global
    batches are the ones a local fit draws, so k workers give the model one
    process gives, to float rounding.
"""

from __future__ import annotations

import copy
import math
import numbers
import threading
import uuid
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

try:
    import dask
    import dask.array as da
    import dask.bag as db
except ImportError as exc:  # pragma: no cover - exercised without dask only
    raise ImportError(
        "gru_cy.dask needs dask with its distributed scheduler: install the extra "
        "gru_cy[dask] (or dask[distributed])") from exc

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from gru_cy.estimators import RNNClassifier, RNNRegressor

__all__ = ["predict", "fit"]

_Estimator = TypeVar("_Estimator", bound="RNNClassifier | RNNRegressor")


# ---------------------------------------------------------------------------
# what kind of model


def _is_estimator(model):
    return hasattr(model, "predict") and hasattr(model, "get_params")


def _first(result):
    """A module's output sequence: the first item of what it returns
    ((out, h_n), (out, (h_n, c_n)), (out, y_n))."""
    return result[0] if isinstance(result, tuple) else result


def _check_model(model, method):
    if _is_estimator(model):
        if not isinstance(method, str) or not hasattr(model, method):
            raise ValueError(
                f"method must name a prediction method of {type(model).__name__} (such as "
                f"'predict' or 'predict_proba'), got {method!r}")
        return "estimator"
    if method != "predict":
        raise ValueError(f"method is for estimators; a module is called, got method={method!r}")
    if callable(model) and hasattr(model, "dtype"):
        return "module"
    raise TypeError(
        "model must be a fitted gru_cy estimator (RNNClassifier, RNNRegressor) or a recurrent "
        f"module (GRU, LSTM, RNN, Jordan), got {type(model).__name__}")


# ---------------------------------------------------------------------------
# what runs on the workers for predict


def _estimator_block(x, model, method, tail, dtype):
    if x.shape[0] == 0:  # scikit-learn refuses empty inputs; an empty chunk is no error
        return np.empty((0,) + tail, dtype=dtype)
    return getattr(model, method)(x)


def _module_block(x, lengths, model):
    return _first(model(x, lengths=lengths))


def _module_block_nolengths(x, model):
    return _first(model(x))


def _estimator_partition(seqs, model, method):
    seqs = list(seqs)
    if not seqs:
        return []
    return list(getattr(model, method)(seqs))


def _padded(seqs, dtype, batch_first):
    """Sequences (T_i, I) as one zero-padded batch and their lengths."""
    arrays = [np.asarray(s) for s in seqs]
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[1] != arrays[0].shape[1]:
            raise ValueError(
                "each sequence of the bag must be a 2-D array (T_i, input_size) with the same "
                f"input_size; sequence {i} of its partition has shape {a.shape}, the first "
                f"{arrays[0].shape}")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    B, T, I = len(arrays), int(lengths.max()), arrays[0].shape[1]
    x = np.zeros((B, T, I) if batch_first else (T, B, I), dtype=dtype)
    for b, a in enumerate(arrays):
        if batch_first:
            x[b, :a.shape[0]] = a
        else:
            x[:a.shape[0], b] = a
    return x, lengths


def _module_partition(seqs, model):
    seqs = list(seqs)
    if not seqs:
        return []
    batch_first = bool(getattr(model, "batch_first", False))
    x, lengths = _padded(seqs, model.dtype, batch_first)
    out = _first(model(x, lengths=lengths))
    if batch_first:
        return [out[b, :n].copy() for b, n in enumerate(lengths)]
    return [out[:n, b].copy() for b, n in enumerate(lengths)]


# ---------------------------------------------------------------------------
# predict


@overload
def predict(model: Any, X: da.Array, *, lengths: ArrayLike | da.Array | None = None,
            method: str = "predict") -> da.Array: ...


@overload
def predict(model: Any, X: db.Bag, *, lengths: None = None,
            method: str = "predict") -> db.Bag: ...


def predict(model: Any, X: da.Array | db.Bag, *, lengths: ArrayLike | da.Array | None = None,
            method: str = "predict") -> da.Array | db.Bag:
    """Lazy predictions of ``model`` over a dask collection.

    model: a fitted estimator (``RNNClassifier`` / ``RNNRegressor``, or any
        scikit-learn style estimator) or a recurrent module (``GRU``,
        ``LSTM``, ``RNN``, ``Jordan``).
    X: a dask array chunked along the samples only, or a dask bag whose
        elements are single sequences of any lengths.
    lengths: modules and dask arrays only: the valid length of each
        sequence (1-D ints, a NumPy or dask array), as the module's own
        ``lengths``.
    method: estimators only: the method to call ("predict",
        "predict_proba", ...).

    Returns the matching lazy collection:

    * estimator, dask array (n, T[, F]) chunked along axis 0: a dask array
      of ``model.predict(block)`` per block ((n,) or (n, k)), chunked as X.
    * module, dask array (T, B, I) ((B, T, I) with ``batch_first``) chunked
      along the batch axis only: a dask array of the module's output
      sequence ``out`` (the first item of what the module returns; for the
      LSTM ``out``, for the Jordan network the outputs y_t), chunked as X
      with the last axis the output width. The final states are not
      returned: ``out`` holds every step.
    * estimator, dask bag of sequences: a bag of one prediction per
      sequence (each partition is predicted in one call).
    * module, dask bag of sequences (T_i, I): a bag of arrays
      ``out[:T_i]`` (T_i, output width), one per sequence; each partition
      runs as one zero-padded batch with ``lengths`` (the padding never
      enters the recurrence).

    Every block runs exactly the computation a local call on that block
    runs, so the result equals the local result on the same blocks bit for
    bit. (Against one local call over all samples at once it agrees to
    float rounding: BLAS may choose another kernel for another number of
    rows.) The model is one node of the graph: it is pickled once and
    copied to each worker that needs it.
    """
    kind = _check_model(model, method)
    if isinstance(X, db.Bag):
        if lengths is not None:
            raise ValueError("lengths is for dask arrays; the elements of a bag carry their "
                             "own lengths")
        model_node = dask.delayed(model, pure=True, traverse=False)
        if kind == "estimator":
            return X.map_partitions(_estimator_partition, model_node, method)
        return X.map_partitions(_module_partition, model_node)
    if not isinstance(X, da.Array):
        raise TypeError(
            f"X must be a dask array or a dask bag, got {type(X).__name__}; for NumPy data call "
            "the model directly")
    if kind == "estimator":
        if lengths is not None:
            raise ValueError("lengths is for modules; an estimator takes sequences of unequal "
                             "lengths as a dask bag")
        return _predict_array_estimator(model, X, method)
    return _predict_array_module(model, X, lengths)


def _check_chunks(X, sample_axis, layout):
    for axis, chunks in enumerate(X.chunks):
        if axis == sample_axis:
            continue
        if len(chunks) != 1 or any(math.isnan(c) for c in chunks):
            raise ValueError(
                f"X must be chunked along the samples only (axis {sample_axis} of {layout}); "
                f"got chunks {X.chunks}. Rechunk first, e.g. "
                f"X.rechunk({{{', '.join(f'{a}: -1' for a in range(X.ndim) if a != sample_axis)}"
                "})")


def _predict_array_estimator(model, X, method):
    if X.ndim not in (2, 3):
        raise ValueError(
            f"X must be a 2-D (n_samples, n_timesteps) or 3-D (n_samples, n_timesteps, "
            f"n_features) dask array, got {X.ndim}-D with shape {X.shape}")
    _check_chunks(X, 0, "(n_samples, n_timesteps[, n_features])")
    # One sample through the local model: the output's trailing shape and
    # dtype, and the estimator's own errors (not fitted, wrong width) now
    # rather than on a worker.
    probe = getattr(model, method)(np.zeros((1,) + X.shape[1:], dtype=X.dtype))
    probe = np.asarray(probe)
    tail, dtype = probe.shape[1:], probe.dtype
    model_node = dask.delayed(model, pure=True, traverse=False)
    in_index = "btf"[:X.ndim]
    out_index = "b" + "k" * len(tail)
    new_axes = {"k": tail[0]} if tail else {}
    return da.blockwise(
        _estimator_block, out_index, X, in_index, model_node, None, method, None, tail, None,
        dtype, None, new_axes=new_axes, concatenate=True, dtype=dtype,
        meta=np.empty((0,) * len(out_index), dtype=dtype))


def _predict_array_module(model, X, lengths):
    batch_first = bool(getattr(model, "batch_first", False))
    layout = "(B, T, I)" if batch_first else "(T, B, I)"
    if X.ndim != 3:
        raise ValueError(
            f"X must be a 3-D dask array {layout} (batch_first={batch_first}), got {X.ndim}-D "
            f"with shape {X.shape}")
    sample_axis = 0 if batch_first else 1
    _check_chunks(X, sample_axis, layout)
    probe_shape = list(X.shape)
    probe_shape[sample_axis] = 0  # modules take empty batches: the probe costs nothing
    probe = _first(model(np.zeros(probe_shape, dtype=X.dtype)))
    width, dtype = probe.shape[-1], probe.dtype
    model_node = dask.delayed(model, pure=True, traverse=False)
    index = "bti" if batch_first else "tbi"
    out_index = index[:2] + "o"
    meta = np.empty((0, 0, 0), dtype=dtype)
    if lengths is None:
        return da.blockwise(
            _module_block_nolengths, out_index, X, index, model_node, None,
            new_axes={"o": width}, concatenate=True, dtype=dtype, meta=meta)
    lengths = _dask_lengths(lengths, X.chunks[sample_axis])
    return da.blockwise(
        _module_block, out_index, X, index, lengths, "b", model_node, None,
        new_axes={"o": width}, concatenate=True, dtype=dtype, meta=meta)


def _dask_lengths(lengths, sample_chunks):
    n = sum(sample_chunks)
    if isinstance(lengths, da.Array):
        if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be a 1-D array of integers, got a {lengths.ndim}-D "
                             f"dask array of {lengths.dtype}")
        if lengths.shape[0] != n:
            raise ValueError(f"lengths must have one entry per sequence: expected {n}, got "
                             f"{lengths.shape[0]}")
        return lengths.rechunk((sample_chunks,))
    arr = np.asarray(lengths)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"lengths must be a 1-D array of integers, got shape {arr.shape} and "
                         f"dtype {arr.dtype}")
    if arr.shape[0] != n:
        raise ValueError(f"lengths must have one entry per sequence: expected {n}, got "
                         f"{arr.shape[0]}")
    return da.from_array(arr.astype(np.int64, copy=False), chunks=(sample_chunks,))


# ---------------------------------------------------------------------------
# fit: what runs on the workers

# Private copies of the estimator on each worker, one per fit and worker
# thread: tasks of one worker may run on several threads at once, and
# _set_weights / _loss_and_grads write into the network.
_REPLICAS = {}
_REPLICAS_LOCK = threading.Lock()


def _replica(template, token):
    key = (token, threading.get_ident())
    est = _REPLICAS.get(key)
    if est is None:
        est = copy.deepcopy(template)
        with _REPLICAS_LOCK:
            _REPLICAS[key] = est
    return est


def _forget_replicas(token):
    with _REPLICAS_LOCK:
        for key in [k for k in _REPLICAS if k[0] == token]:
            del _REPLICAS[key]


def _materialize(part):
    return part if isinstance(part, (list, np.ndarray)) else list(part)


def _identity(value):
    return value


def _describe_part(x, est):
    return est._describe_input(x)


def _y_info_part(y, est):
    return est._y_info(y, None)


def _encode_part(x, y, template, token):
    return _replica(template, token)._encode(x, y)


def _grads_part(template, token, weights, data, local):
    est = _replica(template, token)
    est._set_weights(weights)
    return est._loss_and_grads(data.take(local))


def _targets_part(data):
    return data.y


def _raw_part(template, token, weights, data, local):
    est = _replica(template, token)
    est._set_weights(weights)
    return est._predict_raw(data.take(local))


def _add(a, b):
    """(loss, grads) + (loss, grads), key by key (a node of the tree sum)."""
    loss_a, grads_a = a
    loss_b, grads_b = b
    return loss_a + loss_b, {key: grads_a[key] + grads_b[key] for key in grads_a}


# ---------------------------------------------------------------------------
# fit: the client side


def _get_client(client):
    if client is not None:
        return client
    from distributed import get_client

    try:
        return get_client()
    except ValueError as exc:
        raise ValueError(
            "gru_cy.dask.fit needs a dask.distributed Client: pass client=... or create one "
            "first (Client(LocalCluster()) on one machine, Client('tcp://scheduler:8786') on "
            "a cluster)") from exc


class _Waiter:
    """Waits on futures with a timeout and turns the engine's failures into
    errors that say where the fit stopped."""

    def __init__(self, estimator, timeout):
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, numbers.Real) or timeout <= 0):
            raise ValueError(f"timeout must be None or a positive number of seconds, got "
                             f"{timeout!r}")
        self.estimator = estimator
        self.timeout = timeout

    def __call__(self, futures, what):
        from distributed import wait

        single = not isinstance(futures, list)
        futures = [futures] if single else futures
        try:
            wait(futures, timeout=self.timeout)
            results = futures[0].client.gather(futures)
        except TimeoutError as exc:
            raise TimeoutError(
                f"gru_cy.dask.fit: {what} did not finish within timeout={self.timeout} s"
            ) from exc
        except Exception as exc:
            if not _is_engine_failure(exc):
                raise  # the estimator's own errors (bad X or y) as they are
            raise RuntimeError(
                f"gru_cy.dask.fit: {what} failed on the cluster ({type(exc).__name__}: {exc}). "
                f"The estimator keeps the weights of its last completed step "
                f"(t_={getattr(self.estimator, 't_', 0)})") from exc
        return results[0] if single else results


def _is_engine_failure(exc):
    from concurrent.futures import CancelledError

    from distributed import KilledWorker
    names = {"FutureCancelledError", "KilledWorker", "CommClosedError", "FutureState"}
    return isinstance(exc, (KilledWorker, CancelledError, OSError)) or type(exc).__name__ in names


def _parts(client, X, y, waiter):
    """Futures of the pieces of X and y (held by the workers) and their sizes."""
    if isinstance(X, da.Array):
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X must be a 2-D (n_samples, n_timesteps) or 3-D (n_samples, n_timesteps, "
                f"n_features) dask array, got {X.ndim}-D with shape {X.shape}")
        _check_chunks(X, 0, "(n_samples, n_timesteps[, n_features])")
        x_parts = list(X.to_delayed().ravel())
        sizes = list(X.chunks[0])
    elif isinstance(X, db.Bag):
        x_parts = [dask.delayed(_materialize)(part) for part in X.to_delayed()]
        sizes = [math.nan] * len(x_parts)
    else:
        raise TypeError(
            f"X must be a dask array or a dask bag of sequences, got {type(X).__name__} (wrap "
            "NumPy data with dask.array.from_array, a list with dask.bag.from_sequence)")
    x_futures = client.compute(x_parts)
    if any(math.isnan(s) for s in sizes):
        sizes = waiter(client.map(len, x_futures), "counting the samples of X")
    sizes = [int(s) for s in sizes]
    n = sum(sizes)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    if isinstance(y, db.Bag):
        if y.npartitions != len(x_parts):
            raise ValueError(f"y must be partitioned as X: X has {len(x_parts)} partitions, y "
                             f"{y.npartitions}")
        y_futures = client.compute([dask.delayed(_materialize)(p) for p in y.to_delayed()])
        y_sizes = waiter(client.map(len, y_futures), "counting the samples of y")
        if sum(y_sizes) != n:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"[{n}, {sum(y_sizes)}]")
        if list(y_sizes) != sizes:
            raise ValueError(f"y must be partitioned as X: partition sizes {sizes} (X) and "
                             f"{list(y_sizes)} (y)")
    else:
        if not isinstance(y, da.Array):
            y = np.asarray(y)
            if y.ndim not in (1, 2):
                raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, n_outputs), "
                                 f"got shape {y.shape}")
            if y.shape[0] != n:
                raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                 f"[{n}, {y.shape[0]}]")
            # Each piece of y becomes one task of the graph (which the engine
            # can rerun if a worker is lost), not scattered data.
            y_parts = [dask.delayed(_identity)(y[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
        else:
            if y.ndim not in (1, 2) or math.isnan(y.shape[0]):
                raise ValueError(f"y must be a 1-D or 2-D dask array of known length, got shape "
                                 f"{y.shape}")
            if y.shape[0] != n:
                raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                 f"[{n}, {y.shape[0]}]")
            y = y.rechunk((tuple(sizes),) + tuple((s,) for s in y.shape[1:]))
            y_parts = list(y.to_delayed().ravel())
        y_futures = client.compute(y_parts)
    keep = [i for i, s in enumerate(sizes) if s > 0]
    return ([x_futures[i] for i in keep], [y_futures[i] for i in keep],
            [sizes[i] for i in keep])


def _combine_inputs(described):
    """One (n_features_in, input_info) from those of the pieces of X."""
    n_features, info = described[0]
    info = dict(info)
    for i, (n_i, info_i) in enumerate(described[1:], 1):
        if n_i != n_features or info_i.get("kind") != info.get("kind") or (
                info_i.get("input_size") != info.get("input_size")):
            raise ValueError(
                f"every piece of X must have the same format: piece 0 has {n_features} "
                f"features ({info.get('kind')}), piece {i} has {n_i} ({info_i.get('kind')})")
        if info_i.get("num_embeddings") is not None:
            # token ids: the vocabulary covers the largest id of any piece
            info["num_embeddings"] = max(info["num_embeddings"], info_i["num_embeddings"])
    return n_features, info


def _combine_targets(y_infos, classifier):
    if classifier:
        return np.unique(np.concatenate([np.asarray(c) for c in y_infos]))
    first = tuple(y_infos[0])
    for i, info in enumerate(y_infos[1:], 1):
        if tuple(info) != first:
            raise ValueError(f"every piece of y must have the same number of outputs: piece 0 "
                             f"gives {first}, piece {i} {tuple(info)}")
    return first


def _tree_sum(client, futures):
    """Pairwise sums on the workers until at most two partial sums are
    left (the root of the tree, their sum, is taken on the client: one
    scheduling round trip less per step)."""
    while len(futures) > 2:
        paired = [client.submit(_add, futures[i], futures[i + 1], pure=False)
                  for i in range(0, len(futures) - 1, 2)]
        if len(futures) % 2:
            paired.append(futures[-1])
        futures = paired
    return futures


class _Cluster:
    """The encoded pieces of (X, y) on the workers and the gradients of any
    set of global sample indices over them."""

    def __init__(self, estimator, X, y, client, timeout):
        from sklearn.base import clone, is_classifier

        needed = ("_initialize", "_encode", "_loss_and_grads", "_apply_gradients",
                  "_get_weights", "_set_weights", "_epoch_order", "_train_epochs")
        if not all(hasattr(estimator, name) for name in needed):
            raise TypeError(
                f"estimator must be a gru_cy RNNClassifier or RNNRegressor, got "
                f"{type(estimator).__name__}")
        self.client = client = _get_client(client)
        self.estimator = estimator
        self.wait = _Waiter(estimator, timeout)
        self.token = uuid.uuid4().hex
        x_parts, y_parts, sizes = _parts(client, X, y, self.wait)
        self.bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.n = int(self.bounds[-1])
        if self.n == 0:
            raise ValueError("Found array with 0 sample(s) while a minimum of 1 is required.")
        if not (estimator.warm_start and hasattr(estimator, "network_")):
            probe = clone(estimator)
            described = self.wait(client.map(_describe_part, x_parts, est=probe, pure=False),
                                  "describing X")
            y_infos = self.wait(client.map(_y_info_part, y_parts, est=probe, pure=False),
                                "reading the targets")
            n_features, info = _combine_inputs(described)
            estimator._initialize(n_features, _combine_targets(y_infos, is_classifier(estimator)),
                                  info)
        # The estimator is one task of the graph, so the engine reruns it if
        # its worker dies (a copy: the client goes on changing the original).
        # Each worker thread then trains a private copy of it.
        self.template = client.submit(_identity, copy.deepcopy(estimator), pure=False)
        self.data = client.map(_encode_part, x_parts, y_parts, template=self.template,
                               token=self.token, pure=False)
        self.wait(self.data, "encoding X and y")
        # (The encoded pieces keep their lineage: the scheduler can recompute
        # a lost one from the pieces of X and y without the client.)

    def gradients(self, indices, what):
        """(loss sum, {key: gradient sum}) over the global samples at
        ``indices``, with the estimator's current weights."""
        weights = self.estimator._get_weights()
        shares = [self.client.submit(_grads_part, self.template, self.token, weights,
                                     self.data[p], local, pure=False)
                  for p, local in self._by_piece(np.asarray(indices, dtype=np.int64))]
        partial = self.wait(_tree_sum(self.client, shares), what)
        return partial[0] if len(partial) == 1 else _add(*partial)

    def _by_piece(self, indices):
        owner = np.searchsorted(self.bounds, indices, side="right") - 1
        return [(p, indices[owner == p] - self.bounds[p]) for p in np.unique(owner)]

    def targets(self):
        """The encoded targets of every sample (small: one label or row each)."""
        return np.concatenate(self.wait(self.client.map(_targets_part, self.data, pure=False),
                                        "gathering the targets"))

    def outputs(self, indices, what):
        """The network's outputs (len(indices), k) at the global samples
        ``indices`` (ascending), with the estimator's current weights."""
        weights = self.estimator._get_weights()
        futures = [self.client.submit(_raw_part, self.template, self.token, weights,
                                      self.data[p], local, pure=False)
                   for p, local in self._by_piece(np.asarray(indices, dtype=np.int64))]
        return np.concatenate(self.wait(futures, what))

    def close(self):
        self.template = self.data = None
        try:
            self.client.run(_forget_replicas, self.token, on_error="ignore")
        except Exception:  # pragma: no cover - best effort on a failing cluster
            pass


class _Targets:
    """What the estimator's validation split reads of the data: the
    number of samples and the encoded targets."""

    def __init__(self, y):
        self.y = y

    def __len__(self):
        return len(self.y)


def _score(estimator, outputs, y_true):
    """The estimator's validation score from its network's outputs."""
    from sklearn.base import is_classifier
    from sklearn.metrics import accuracy_score, r2_score

    if is_classifier(estimator):
        return accuracy_score(y_true, estimator.classes_[outputs.argmax(axis=1)])
    return r2_score(y_true, estimator._decode_y(outputs))


def _gradients(estimator, X, y, client=None, timeout=None):
    """(loss sum, gradient sums) of the whole data set, computed on the
    cluster as fit computes each step (for tests)."""
    cluster = _Cluster(estimator, X, y, client, timeout)
    try:
        return cluster.gradients(np.arange(cluster.n), "the gradient")
    finally:
        cluster.close()


def fit(estimator: _Estimator, X: da.Array | db.Bag, y: ArrayLike | da.Array | db.Bag,
        client: Any = None, *, timeout: float | None = None) -> _Estimator:
    """Train ``estimator`` on a dask.distributed cluster; returns it.

    estimator: an ``RNNClassifier`` or ``RNNRegressor`` (its
        hyper-parameters: batch_size, max_iter, tol, n_iter_no_change,
        random_state, verbose, warm_start, ... mean what they mean in
        ``estimator.fit``). With ``early_stopping=True`` the validation
        samples are drawn as a local fit draws them, over the global sample
        index, and scored on the workers after each epoch.
    X: a dask array (n_samples, n_timesteps[, n_features]) chunked along
        the samples only, or a dask bag of sequences (unequal lengths).
    y: the labels / targets: a dask array (rechunked to X's pieces), a dask
        bag partitioned as X, or an array-like (split into X's pieces).
    client: the ``distributed.Client`` (default: the current one).
    timeout: seconds to wait for any one step before raising TimeoutError
        (None: no limit).

    The pieces of X and y are computed where the cluster puts them and
    stay there (X is never gathered to the client). Each epoch draws the
    sample order on the client (``estimator``'s own generator, as a local
    fit does); each global batch is split by the pieces that hold its
    samples, each of those tasks computes the loss and gradient sums of its
    share with the current weights, a tree of pairwise sums on the workers
    adds them up, and the client applies one optimiser step. Only weights
    and gradients travel, once per step. The result is the model a local
    fit with the same batches gives, to float rounding (sums are grouped
    differently), except with dropout > 0: each worker draws its own
    dropout masks.

    If a worker dies, the engine reruns its tasks elsewhere (the pieces of
    X are recomputed from their graph); when it cannot, a RuntimeError says
    at which epoch and step the fit stopped.
    """
    if hasattr(estimator, "_check_params"):
        estimator._check_params()
    cluster = _Cluster(estimator, X, y, client, timeout)
    try:
        train = None
        validate = None
        if getattr(estimator, "early_stopping", False):
            if estimator.validation_scores_ is None:  # a warm start after a fit without it
                estimator.validation_scores_ = []
            # The split a local fit makes (stratified on the encoded labels).
            targets = cluster.targets()
            train, held_out = estimator._validation_split(_Targets(targets))
            y_held_out = estimator._decode_y(targets[held_out])

            def validate():
                outputs = cluster.outputs(held_out, f"scoring epoch {estimator.n_iter_}")
                return _score(estimator, outputs, y_held_out)

        def gradients(batch, what):
            return cluster.gradients(batch if train is None else train[batch], what)

        # The local fit's epoch loop, with each step's gradients from the cluster.
        estimator._train_epochs(cluster.n if train is None else len(train),
                                int(estimator.max_iter), gradients, validate)
    finally:
        cluster.close()
    return estimator
