"""scikit-learn estimators over gru_cy's modules: RNNClassifier, RNNRegressor.

The network is ``[Embedding] -> recurrent cell -> pooling -> Linear``,
trained with Adam on softmax cross-entropy (classifier) or the mean squared
error (regressor). scikit-learn is an optional dependency of gru_cy: this
module imports it, ``import gru_cy`` does not (the package exposes the two
classes lazily).

X may be

* a 3-D float array (n_samples, n_timesteps, n_features);
* a 2-D float array (n_samples, n_timesteps): univariate sequences, and
  ``n_features_in_`` is the number of columns, as scikit-learn expects;
* a list of arrays (T_i, n_features) or (T_i,) of unequal lengths;
* with ``embedding_dim`` set, integer token ids: a 2-D int array or a list
  of 1-D int arrays.

Sequences of unequal lengths run as one padded batch with ``lengths``: the
padding never enters the recurrence.

The training loop is built from a handful of private methods
(``_initialize``, ``_encode``, ``_loss_and_grads``, ``_apply_gradients``,
``_get_weights``, ``_set_weights``, ``_epoch_order``) and one epoch loop,
``_train_epochs`` (early stopping, the best weights restored, the
convergence warning), which a local fit and a distributed fit
(gru_cy.dask) both run: the distributed one sums the gradients of the
shares of each global batch and so gives the model a local fit gives, to
float rounding. Dropout masks come from the modules' own generators, so
with ``dropout > 0`` a distributed fit differs from a local one beyond
rounding.

``cell="jordan"`` runs the Jordan network (one layer, one direction) as the
recurrent part: its output y_t (of width hidden_size, squashed by tanh as
the other cells' states are) is what the pooling reads.
"""

from __future__ import annotations

import numbers
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    assert_all_finite,
    check_array,
    check_is_fitted,
    column_or_1d,
)

import gru_cy
from gru_cy.nn.base import Recurrent, check_dtype

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike, NDArray
    from typing_extensions import Self

    # What fit, predict and score take as X: an array, or a list of sequences.
    _X = ArrayLike | Sequence[ArrayLike]

__all__ = ["RNNClassifier", "RNNRegressor"]

# Samples per forward pass at prediction time (memory stays bounded).
_PREDICT_CHUNK = 1024

# Recurrent cells the estimators know, by the name of the ``cell`` argument.
_CELL_CLASSES = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN", "jordan": "Jordan"}

# Input kinds: a 2-D float table (univariate sequences, n_features_in_ =
# columns), float sequences (3-D array or list; n_features_in_ = features),
# token ids as a 2-D int array or as a list.
_TABLE, _SEQUENCES, _TOKEN_TABLE, _TOKEN_LIST = "table", "sequences", "token_table", "token_list"


def available_cells() -> list[str]:
    """The ``cell`` values usable now (the cells this build of gru_cy has)."""
    return [name for name, cls in _CELL_CLASSES.items()
            if isinstance(getattr(gru_cy, cls, None), type)
            and issubclass(getattr(gru_cy, cls), Recurrent)]


def _cell_class(cell):
    cls = getattr(gru_cy, _CELL_CLASSES.get(cell, ""), None) if isinstance(cell, str) else None
    if not (isinstance(cls, type) and issubclass(cls, Recurrent)):
        raise ValueError(
            f"The 'cell' parameter must be one of {available_cells()} (the recurrent cells "
            f"available in this build of gru_cy). Got {cell!r} instead.")
    return cls


# ---------------------------------------------------------------------------
# encoded data


class SequenceData:
    """Samples ready for the network: padded inputs, lengths and targets.

    ``x`` is (n, T, F) of the estimator's dtype for float sequences or
    (n, T) int64 token ids; ``lengths`` (n,) int64 (every entry >= 1);
    ``y`` None, (n,) int64 class indices or (n, k) float targets. Holds
    NumPy arrays only (it is pickled to dask workers).
    """

    def __init__(self, x: NDArray[Any], lengths: NDArray[np.int64],
                 y: NDArray[Any] | None = None) -> None:
        self.x = x
        self.lengths = lengths
        self.y = y

    def __len__(self):
        return self.lengths.shape[0]

    def take(self, indices: ArrayLike) -> SequenceData:
        """The samples at ``indices`` (1-D ints), padding trimmed to their
        longest sequence."""
        indices = np.asarray(indices, dtype=np.intp)
        lengths = self.lengths[indices]
        T = int(lengths.max()) if lengths.size else 0
        x = self.x[indices, :T] if T < self.x.shape[1] else self.x[indices]
        y = None if self.y is None else self.y[indices]
        return SequenceData(x, lengths, y)

    def time_major(self) -> tuple[NDArray[Any], NDArray[np.int64] | None]:
        """(x as (T, B, ...) C-contiguous, lengths or None when all are T)."""
        x = np.ascontiguousarray(np.swapaxes(self.x, 0, 1))
        T = x.shape[0]
        lengths = None if np.all(self.lengths == T) else self.lengths
        return x, lengths


# ---------------------------------------------------------------------------
# the estimators


class _RNNBase(BaseEstimator):
    """What RNNClassifier and RNNRegressor share."""

    _parameter_constraints = {
        "cell": [str],
        "hidden_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "num_layers": [Interval(numbers.Integral, 1, None, closed="left")],
        "bidirectional": ["boolean"],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "embedding_dim": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "pooling": [StrOptions({"last", "mean", "max"})],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "learning_rate_init": [Interval(numbers.Real, 0, None, closed="neither")],
        "alpha": [Interval(numbers.Real, 0, None, closed="left")],
        "clip_norm": [Interval(numbers.Real, 0, None, closed="neither"), None],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(numbers.Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "dtype": "no_validation",
        "inference_precision": [StrOptions({"fp32", "bf16", "int8"})],
    }

    def __init__(self, cell: str = "gru", hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0,
                 embedding_dim: int | None = None, pooling: str = "last",
                 batch_size: int | str = 32, learning_rate_init: float = 1e-3,
                 alpha: float = 0.0, clip_norm: float | None = None, max_iter: int = 200,
                 tol: float = 1e-4, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10,
                 random_state: int | np.random.RandomState | None = None,
                 verbose: bool | int = False, warm_start: bool = False,
                 dtype: DTypeLike = np.float32, inference_precision: str = "fp32") -> None:
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.embedding_dim = embedding_dim
        self.pooling = pooling
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.clip_norm = clip_norm
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.dtype = dtype
        self.inference_precision = inference_precision

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    # -- hyper-parameters -----------------------------------------------------

    def _check_params(self):
        self._validate_params()
        _cell_class(self.cell)
        if self.cell == "jordan" and (self.num_layers != 1 or self.bidirectional):
            raise ValueError(
                "cell='jordan' is one layer in one direction (the Jordan network feeds back its "
                f"own output); got num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}.")
        try:
            check_dtype(self.dtype)
        except (TypeError, ValueError):
            raise ValueError(
                f"The 'dtype' parameter of {type(self).__name__} must be numpy.float32 or "
                f"numpy.float64. Got {self.dtype!r} instead.") from None

    @property
    def _dtype(self):
        return check_dtype(self.dtype)

    # -- input description and encoding ----------------------------------------

    def _describe_input(self, X):
        """(n_features_in, input_info) of X as fit would set them.

        input_info = {"kind": ..., "input_size": width of the recurrent
        cell's input, "num_embeddings": vocabulary size (token ids) or
        None}. gru_cy.dask calls this on its first piece of data.
        """
        return self._describe(X)[:2]

    def _describe(self, X):
        """(n_features_in, input_info, SequenceData of X) while fitting."""
        x, lengths, kind, n_features = self._convert_X(X, None)
        info = {"kind": kind, "input_size": n_features if kind == _SEQUENCES else 1,
                "num_embeddings": None}
        if kind in (_TOKEN_TABLE, _TOKEN_LIST):
            info["input_size"] = self.embedding_dim
            info["num_embeddings"] = int(x.max()) + 1 if x.size else 1
        return n_features, info, SequenceData(x, lengths)

    def _convert_X(self, X, fitted_kind):
        """(padded x, lengths, kind, n_features) for X in any accepted format.

        fitted_kind: the kind recorded at fit (None while fitting): it
        decides how an ambiguous 2-D array is read.
        """
        tokens = self.embedding_dim is not None
        name = type(self).__name__
        if isinstance(X, (list, tuple)):
            return self._convert_list(X, tokens, name, fitted_kind)
        _check_feature_names(self, X, reset=fitted_kind is None)
        arr = check_array(X, dtype=None if tokens else self._dtype, allow_nd=True,
                          ensure_all_finite=True, ensure_min_samples=1, ensure_min_features=1,
                          input_name="X", estimator=self)
        if arr.ndim > (2 if tokens else 3):
            raise ValueError(
                f"Found array with dim {arr.ndim}. {name} expected <= {2 if tokens else 3}.")
        if arr.ndim == 3 and arr.shape[2] < 1:
            raise ValueError(
                f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is "
                "required.")
        n = arr.shape[0]
        if tokens:
            ids = self._check_tokens(arr)
            lengths = np.full(n, ids.shape[1], dtype=np.int64)
            if fitted_kind == _TOKEN_LIST:
                # A model fitted on token lists reads a 2-D array as equal-length sequences.
                return ids, lengths, _TOKEN_LIST, 1
            return ids, lengths, _TOKEN_TABLE, ids.shape[1]
        if arr.ndim == 2 and fitted_kind != _SEQUENCES:
            x = arr.reshape(n, arr.shape[1], 1)
            return x, np.full(n, arr.shape[1], dtype=np.int64), _TABLE, arr.shape[1]
        if arr.ndim == 2:
            # A model fitted on sequences reads a 2-D array as univariate sequences.
            x = arr.reshape(n, arr.shape[1], 1)
            return x, np.full(n, arr.shape[1], dtype=np.int64), _SEQUENCES, 1
        return arr, np.full(n, arr.shape[1], dtype=np.int64), _SEQUENCES, arr.shape[2]

    def _check_tokens(self, arr):
        """Token ids as int64, or the error scikit-learn users expect."""
        if arr.dtype.kind in "iu":
            ids = arr.astype(np.int64, copy=False)
        else:
            if arr.dtype.kind not in "fb":
                raise ValueError(
                    f"With embedding_dim set, X must hold integer token ids; got dtype "
                    f"{arr.dtype}.")
            as_float = arr.astype(np.float64)
            if not np.all(np.isfinite(as_float)) or np.any(as_float != np.round(as_float)):
                raise ValueError(
                    "With embedding_dim set, X must hold integer token ids; got non-integer "
                    "values.")
            ids = as_float.astype(np.int64)
        if ids.size and ids.min() < 0:
            raise ValueError(f"Token ids must be >= 0; got {int(ids.min())}.")
        return ids

    def _convert_list(self, X, tokens, name, fitted_kind):
        if len(X) == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape=(0,)) while a minimum of 1 is required by "
                f"{name}.")
        seqs = []
        for i, s in enumerate(X):
            if type(s) is not np.ndarray:
                if hasattr(s, "detach"):  # torch tensors
                    s = s.detach().cpu().numpy()
                try:
                    s = np.asarray(s)
                except (ValueError, TypeError) as exc:
                    raise ValueError(f"X[{i}] is not a rectangular array: {exc}") from None
            if s.dtype.kind == "c":
                raise ValueError("Complex data not supported")
            if s.dtype.kind not in "biuf":
                try:
                    s = s.astype(np.float64)
                except (ValueError, TypeError) as exc:
                    raise ValueError(
                        f"X[{i}] must hold numbers; got dtype {s.dtype}: {exc}") from None
            seqs.append(s)
        ndims = {s.ndim for s in seqs}
        if ndims == {0}:
            raise ValueError(
                "Expected a 2D or 3D array or a list of sequences, got a 1D list of numbers "
                "instead. Reshape your data using array.reshape(-1, 1) if each sample is a "
                "sequence of one step, or array.reshape(1, -1) if it is one sequence.")
        if len(ndims) > 1:
            found = ", ".join(f"{d}-D" for d in sorted(ndims))
            raise ValueError(
                f"All sequences in X must have the same number of dimensions (1-D (T_i,) or "
                f"2-D (T_i, n_features)); found {found} sequences.")
        ndim = ndims.pop()
        if ndim > (1 if tokens else 2) or ndim == 0:
            wanted = ("a 1-D array of token ids" if tokens
                      else "a 1-D (T_i,) or 2-D (T_i, n_features) array")
            raise ValueError(f"Each sequence in X must be {wanted}; found a {ndim}-D one.")
        lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)
        if lengths.min() < 1:
            i = int(np.argmin(lengths))
            raise ValueError(f"Every sequence needs at least one step; X[{i}] has none.")
        n_features = 1 if ndim == 1 else seqs[0].shape[1]
        if ndim == 2:
            widths = np.array([s.shape[1] for s in seqs])
            bad = np.flatnonzero(widths != n_features)
            if bad.size:
                j = int(bad[0])
                raise ValueError(
                    f"All sequences in X must have the same number of features: X[0] has "
                    f"{n_features}, X[{j}] has {int(widths[j])}.")
            if n_features < 1:
                raise ValueError(
                    "Found array with 0 feature(s) while a minimum of 1 is required.")
        T = int(lengths.max())
        n = len(seqs)
        # A list of equal-length 1-D rows is a table, as scikit-learn reads it
        # (unless the model was fitted on sequences).
        table = (ndim == 1 and fitted_kind not in (_SEQUENCES, _TOKEN_LIST)
                 and bool(np.all(lengths == T)))
        if tokens:
            x = np.zeros((n, T), dtype=np.int64)
            for i, s in enumerate(seqs):
                x[i, :s.shape[0]] = self._check_tokens(s)
            if table:
                return x, lengths, _TOKEN_TABLE, T
            return x, lengths, _TOKEN_LIST, 1
        x = np.zeros((n, T, n_features), dtype=self._dtype)
        for i, s in enumerate(seqs):
            x[i, :s.shape[0]] = s.reshape(s.shape[0], n_features)
        assert_all_finite(x, allow_nan=False, estimator_name=name, input_name="X")
        if table:
            return x, lengths, _TABLE, T
        return x, lengths, _SEQUENCES, n_features

    def _check_X(self, X):
        """X encoded against the fitted model (n_features_in_, vocabulary)."""
        x, lengths, kind, n_features = self._convert_X(X, self._input_info["kind"])
        name = type(self).__name__
        fitted = self._input_info["kind"]
        if (fitted in (_TABLE, _TOKEN_TABLE)) != (kind in (_TABLE, _TOKEN_TABLE)):
            if fitted in (_TABLE, _TOKEN_TABLE):
                raise ValueError(
                    f"{name} was fitted on a 2-D array (n_samples, n_timesteps); predict needs "
                    f"the same format with {self.n_features_in_} columns, got "
                    f"{'a list of sequences' if isinstance(X, (list, tuple)) else 'a 3-D array'}.")
        if n_features != self.n_features_in_:
            raise ValueError(
                f"X has {n_features} features, but {name} is expecting {self.n_features_in_} "
                "features as input.")
        if self._input_info["num_embeddings"] is not None and x.size:
            top = int(x.max())
            if top >= self._input_info["num_embeddings"]:
                raise ValueError(
                    f"X holds token id {top}, but {name} was fitted with a vocabulary of "
                    f"{self._input_info['num_embeddings']} ids (0 .. "
                    f"{self._input_info['num_embeddings'] - 1}).")
        return SequenceData(x, lengths)

    def _encode(self, X, y=None):
        """Validate and encode one piece of data against the fitted state."""
        data = self._check_X(X)
        if y is not None:
            data.y = self._encode_y(y, len(data))
        return data

    # -- the network ------------------------------------------------------------

    def _initialize(self, n_features_in, y_info, input_info=None):
        """Fresh fitted state for training (see the module docstring).

        input_info: as _describe_input returns it; None means float
        sequences with n_features_in features (3-D arrays or lists).
        """
        self._check_params()
        if input_info is None:
            if self.embedding_dim is not None:
                raise ValueError("with embedding_dim set, _initialize needs input_info (the "
                                 "vocabulary size); see _describe_input")
            input_info = {"kind": _SEQUENCES, "input_size": int(n_features_in),
                          "num_embeddings": None}
        self._input_info = dict(input_info)
        self.n_features_in_ = int(n_features_in)
        n_outputs = self._set_targets(y_info)
        rs = check_random_state(self.random_state)
        seeds = rs.randint(np.iinfo(np.int32).max, size=4)
        dtype = self._dtype
        modules = []
        if self.embedding_dim is not None:
            modules.append(gru_cy.Embedding(int(input_info["num_embeddings"]),
                                            int(self.embedding_dim), dtype=dtype,
                                            seed=int(seeds[0])))
        cell_cls = _cell_class(self.cell)
        if self.cell == "jordan":
            # Its output, of width hidden_size, is what the pooling reads; tanh
            # keeps the fed-back output bounded, as the other cells' states are.
            modules.append(cell_cls(int(input_info["input_size"]), int(self.hidden_size),
                                    int(self.hidden_size), output_activation="tanh",
                                    dtype=dtype, seed=int(seeds[1])))
        else:
            modules.append(cell_cls(int(input_info["input_size"]), int(self.hidden_size),
                                    num_layers=int(self.num_layers),
                                    dropout=float(self.dropout),
                                    bidirectional=bool(self.bidirectional), dtype=dtype,
                                    seed=int(seeds[1])))
        D = 2 if self.bidirectional else 1
        modules.append(gru_cy.Linear(D * int(self.hidden_size), n_outputs, dtype=dtype,
                                     seed=int(seeds[2])))
        self.network_ = modules
        self.__dict__.pop("_frozen_parts", None)
        self._optimizer = gru_cy.optim.Adam(modules, lr=float(self.learning_rate_init))
        self._order_rng = np.random.default_rng(int(seeds[3]))
        self.loss_curve_ = []
        self.n_iter_ = 0
        self.t_ = 0
        self.validation_scores_ = [] if self.early_stopping else None
        self.best_validation_score_ = None
        self.best_loss_ = np.inf
        self._no_improvement_count = 0
        return self

    def _parts(self):
        """(embedding or None, cell, linear)."""
        net = self.network_
        return (net[0] if len(net) == 3 else None), net[-2], net[-1]

    def _inference_parts(self):
        """(embedding or None, cell, linear) as predict runs them: the fitted
        modules at inference_precision="fp32"; frozen copies of the cell and
        the linear layer at "bf16" or "int8" (made at the first prediction
        and kept until the network is trained again)."""
        precision = self.inference_precision
        if isinstance(precision, str) and precision == "fp32":
            return self._parts()
        if not isinstance(precision, str) or precision not in ("bf16", "int8"):
            raise ValueError(f"The 'inference_precision' parameter of {type(self).__name__} "
                             "must be a str among {'fp32', 'bf16', 'int8'}. Got "
                             f"{precision!r} instead.")
        cached = self.__dict__.get("_frozen_parts")
        if cached is None or cached[0] != precision:
            emb, cell, lin = self._parts()
            cached = (precision, (emb, cell.freeze(precision), lin.freeze(precision)))
            self.__dict__["_frozen_parts"] = cached
        return cached[1]

    def _forward(self, data, train, parts=None):
        """Logits / predictions (B, k) and, when train, what backward needs
        (parts: the modules to run, _parts() by default)."""
        emb, cell, lin = parts or self._parts()
        x, lengths = data.time_major()
        tape_emb = None
        if emb is not None:
            if train:
                x, tape_emb = emb.forward_train(x)
            else:
                x = emb(x)
        if train:
            out, state, tape_cell = cell.forward_train(x, None, lengths)
        else:
            out, state = cell(x, None, lengths)
            tape_cell = None
        paired = isinstance(state, tuple)  # LSTM: (h_n, c_n)
        h_n = state[0] if paired else state
        pooled, pool_aux = self._pool(out, h_n, data.lengths, lengths is None)
        if train:
            logits, tape_lin = lin.forward_train(pooled)
            return logits, (tape_emb, tape_cell, tape_lin, out.shape, h_n.shape, pool_aux,
                            data.lengths, lengths is None, paired)
        return lin(pooled), None

    def _pool(self, out, h_n, lengths, full):
        """(B, D*H) summary of each sequence, and what the gradient needs."""
        D = 2 if self.bidirectional else 1
        if self.pooling == "last":
            # The top layer's final states: the forward direction's output at
            # the last valid step, the reverse direction's at t = 0.
            if D == 1:
                return h_n[-1], None
            return np.concatenate([h_n[-2], h_n[-1]], axis=1), None
        if self.pooling == "mean":
            # Outputs past each length are zero, so the plain sum is the sum
            # over valid steps.
            scale = (1.0 / lengths).astype(out.dtype)[:, None]
            return out.sum(axis=0) * scale, scale
        # max over valid steps only
        if full:
            arg = out.argmax(axis=0)
        else:
            invalid = np.arange(out.shape[0])[:, None] >= lengths[None, :]
            masked = np.where(invalid[:, :, None], -np.inf, out)
            arg = masked.argmax(axis=0)
        pooled = np.take_along_axis(out, arg[None], axis=0)[0]
        return pooled, arg

    def _unpool(self, dpooled, aux, out_shape, h_shape, lengths, full):
        """(dout, dh_n) of the cell from the gradient of the pooled summary."""
        T, B, DH = out_shape
        dtype = dpooled.dtype
        if self.pooling == "last":
            dh_n = np.zeros(h_shape, dtype=dtype)
            if self.bidirectional:
                H = DH // 2
                dh_n[-2] = dpooled[:, :H]
                dh_n[-1] = dpooled[:, H:]
            else:
                dh_n[-1] = dpooled
            return None, dh_n
        if self.pooling == "mean":
            dout = np.empty(out_shape, dtype=dtype)
            dout[...] = dpooled * aux
            if not full:
                dout[np.arange(T)[:, None] >= lengths[None, :]] = 0
            return dout, None
        dout = np.zeros(out_shape, dtype=dtype)
        np.put_along_axis(dout, aux[None], dpooled[None], axis=0)
        return dout, None

    def _loss_and_grads(self, data):
        """(sum over samples of the loss, {key: gradient of that sum}).

        Forward and backward over all samples of ``data`` with the current
        weights; the optimiser is not touched.
        """
        emb, cell, lin = self._parts()
        for module in self.network_:
            module.zero_grad()
        logits, (tape_emb, tape_cell, tape_lin, out_shape, h_shape, aux, lengths,
                 full, paired) = self._forward(data, True)
        loss_sum, dlogits = self._loss(logits, data.y)
        dpooled = lin.backward(tape_lin, dlogits)
        dout, dh_n = self._unpool(np.ascontiguousarray(dpooled), aux, out_shape, h_shape,
                                  lengths, full)
        if paired:
            dx, _ = cell.backward(tape_cell, dout, (dh_n, None))
        else:
            dx, _ = cell.backward(tape_cell, dout, dh_n)
        if emb is not None:
            emb.backward(tape_emb, dx)
        grads = {}
        for i, module in enumerate(self.network_):
            for name, g in module.grads.items():
                grads[f"{i}.{name}"] = g.copy()
        return float(loss_sum), grads

    def _apply_gradients(self, grads, n_samples):
        """One Adam step from gradients summed over a global batch of
        n_samples: mean gradient, plus alpha * parameter (L2, every
        parameter as Adam's weight_decay does), clipped to clip_norm."""
        alpha = float(self.alpha)
        for i, module in enumerate(self.network_):
            for name, g in module.grads.items():
                np.divide(grads[f"{i}.{name}"], n_samples, out=g, casting="same_kind")
                if alpha:
                    g += alpha * module.params[name]
        if self.clip_norm is not None:
            gru_cy.optim.clip_grad_norm(self.network_, float(self.clip_norm))
        self._optimizer.step()
        self.t_ += 1

    def _get_weights(self):
        return {f"{i}.{name}": np.array(p, copy=True)
                for i, module in enumerate(self.network_) for name, p in module.params.items()}

    def _set_weights(self, weights):
        self.__dict__.pop("_frozen_parts", None)
        for i, module in enumerate(self.network_):
            for name, p in module.params.items():
                p[...] = weights[f"{i}.{name}"]

    def _epoch_order(self, n_samples):
        """The sample order of the next epoch (advances the generator)."""
        return self._order_rng.permutation(n_samples)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        return max(1, min(int(self.batch_size), n_samples))

    # -- training -----------------------------------------------------------------

    def _fit(self, X, y, incremental, classes=None):
        self._check_params()
        fresh = not (hasattr(self, "network_") and (incremental or self.warm_start))
        if fresh:
            n_features, info, data = self._describe(X)
            self._initialize(n_features, self._y_info(y, classes), info)
            data.y = self._encode_y(y, len(data))
        else:
            if incremental and classes is not None:
                self._check_partial_fit_classes(classes)
            data = self._encode(X, y)
        early = self.early_stopping and not incremental
        val = None
        if early:
            if self.validation_scores_ is None:  # a warm start after a fit without it
                self.validation_scores_ = []
            train_idx, val_idx = self._validation_split(data)
            data, val = data.take(train_idx), data.take(val_idx)
            y_val = self._decode_y(val.y)
        n = len(data)
        if early:
            def validate():
                return self._score_data(val, y_val)
        else:
            validate = None
        return self._train_epochs(
            n, 1 if incremental else int(self.max_iter),
            lambda batch, what: self._loss_and_grads(data.take(batch)),
            validate, incremental)

    def _train_epochs(self, n: int, epochs: int,
                      gradients: Callable[[NDArray[Any], str], tuple[float, dict[str, Any]]],
                      validate: Callable[[], float] | None = None,
                      incremental: bool = False) -> Self:
        """The epoch loop of fit, partial_fit and gru_cy.dask.fit.

        n: the number of training samples; gradients(batch, what): the loss
        sum and the gradient sums of the training samples at the indices
        ``batch`` with the current weights (``what`` names the step, for
        messages); validate(): the validation score after an epoch, None
        without early stopping. Each epoch draws the sample order from the
        estimator's generator and takes one optimiser step per batch; then
        MLPClassifier's stopping rule. At the end the best weights are
        restored (early stopping) and, when max_iter epochs ran without
        converging, a ConvergenceWarning says so (not for partial_fit).
        """
        # The weights change: predictions at bf16 / int8 freeze them anew.
        self.__dict__.pop("_frozen_parts", None)
        early = validate is not None
        bs = self._batch_size(n)
        bar = self._progress(epochs)
        stopped = False
        try:
            for _ in range(epochs):
                order = self._epoch_order(n)
                total = 0.0
                for step, start in enumerate(range(0, n, bs)):
                    batch = order[start:start + bs]
                    loss_sum, grads = gradients(
                        batch, f"epoch {self.n_iter_ + 1}, step {step + 1}")
                    self._apply_gradients(grads, len(batch))
                    total += loss_sum
                loss = total / n + self._l2_term()
                self.n_iter_ += 1
                self.loss_curve_.append(loss)
                if validate is not None:
                    self.validation_scores_.append(validate())
                self._report(bar, loss, early and self.validation_scores_[-1])
                if incremental:
                    break
                if self._update_no_improvement(early):
                    stopped = True
                    break
        finally:
            if bar is not None:
                bar.close()
        if early and getattr(self, "_best_weights", None) is not None:
            self._set_weights(self._best_weights)
            self._best_weights = None
        if not incremental and not stopped:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.", ConvergenceWarning)
        return self

    def _l2_term(self):
        """The L2 penalty's share of the loss: 0.5 * alpha * sum of p**2."""
        alpha = float(self.alpha)
        if not alpha:
            return 0.0
        return 0.5 * alpha * sum(float(np.dot(p.ravel(), p.ravel()))
                                 for m in self.network_ for p in m.params.values())

    def _update_no_improvement(self, early):
        """MLPClassifier's stopping rule; True when training should stop."""
        if early:
            score = self.validation_scores_[-1]
            best = self.best_validation_score_
            if best is not None and score < best + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if best is None or score > best:
                self.best_validation_score_ = score
                self._best_weights = self._get_weights()
        else:
            loss = self.loss_curve_[-1]
            if loss > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if loss < self.best_loss_:
                self.best_loss_ = loss
        if self._no_improvement_count > self.n_iter_no_change:
            if self.verbose:
                what = "Validation score" if early else "Training loss"
                print(f"{what} did not improve more than tol={self.tol} for "
                      f"{self.n_iter_no_change} consecutive epochs. Stopping.")
            return True
        return False

    def _validation_split(self, data):
        n = len(data)
        stratify = data.y if isinstance(self, ClassifierMixin) else None
        if stratify is not None and np.min(np.bincount(stratify)) < 2:
            stratify = None
        rs = check_random_state(self.random_state)
        train_idx, val_idx = train_test_split(
            np.arange(n), test_size=self.validation_fraction, random_state=rs,
            stratify=stratify)
        if len(val_idx) < 2:
            raise ValueError(
                f"The validation set is too small ({len(val_idx)} sample(s)) if "
                f"validation_fraction={self.validation_fraction}; use more samples or a larger "
                "validation_fraction.")
        return np.sort(train_idx), np.sort(val_idx)

    def _progress(self, epochs):
        if not self.verbose:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None
        return tqdm(total=epochs, desc=type(self).__name__, unit="epoch", file=sys.stderr)

    def _report(self, bar, loss, score):
        if not self.verbose:
            return
        if bar is not None:
            post = {"loss": f"{loss:.6f}"}
            if score is not False and score is not None:
                post["val"] = f"{score:.4f}"
            bar.set_postfix(post, refresh=False)
            bar.update(1)
        else:
            print(f"Iteration {self.n_iter_}, loss = {loss:.8f}")
            if score is not False and score is not None:
                print(f"Validation score: {score:.6f}")

    def _predict_raw(self, data, frozen=False):
        """Network outputs (n, k), in chunks of samples; frozen: at
        inference_precision (predict), else the fitted float modules
        (the validation scores while fitting)."""
        modules = self._inference_parts() if frozen else None
        n = len(data)
        if n <= _PREDICT_CHUNK:
            return self._forward(data, False, modules)[0]
        parts = [self._forward(data.take(np.arange(s, min(s + _PREDICT_CHUNK, n))), False,
                               modules)[0]
                 for s in range(0, n, _PREDICT_CHUNK)]
        return np.concatenate(parts)

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_best_weights", None)
        state.pop("_frozen_parts", None)
        return state


class RNNClassifier(ClassifierMixin, _RNNBase):
    """Recurrent network classifier: [Embedding] -> GRU/LSTM/RNN/Jordan ->
    pooling -> Linear -> softmax, trained with Adam on cross-entropy.

    Parameters follow MLPClassifier where the idea is the same. ``cell``:
    "gru", "lstm", "rnn" or "jordan" (one layer, one direction: its output,
    of width hidden_size, is the state the pooling reads); ``pooling``: "last" (each
    sequence's final state, both directions), "mean" or "max" over the valid
    steps. ``inference_precision``: "fp32" (default), "bf16" or "int8": the
    precision predict, predict_proba and score run the network at (frozen
    copies of the cell and the output layer, gru_cy.nn.frozen; training
    and the validation scores of early stopping stay in ``dtype``).
    Fitted attributes: ``classes_``, ``n_features_in_``,
    ``loss_curve_``, ``n_iter_``, ``validation_scores_``,
    ``best_validation_score_``, ``network_`` (the trained modules).
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = True
        tags.classifier_tags.multi_label = False
        return tags

    def _y_info(self, y, classes):
        if classes is not None:
            return self._checked_classes(classes)
        y = self._validated_y(y)
        return np.unique(y)

    def _checked_classes(self, classes):
        classes = np.asarray(classes)
        if classes.ndim != 1:
            raise ValueError(f"classes must be a 1-D array, got shape {classes.shape}")
        return np.unique(classes)

    def _check_partial_fit_classes(self, classes):
        if not np.array_equal(self.classes_, self._checked_classes(classes)):
            raise ValueError(
                f"`classes={self._checked_classes(classes)!r}` is not the same as on last call "
                f"to partial_fit, was: {self.classes_!r}")

    def _validated_y(self, y):
        if y is None:
            raise ValueError(
                f"requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        assert_all_finite(y, input_name="y") if y.dtype.kind in "fc" else None
        check_classification_targets(y)
        return y

    def _set_targets(self, y_info):
        self.classes_ = np.asarray(y_info)
        return max(len(self.classes_), 1)

    def _encode_y(self, y, n):
        y = self._validated_y(y)
        if y.shape[0] != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]")
        idx = np.searchsorted(self.classes_, y)
        idx = np.minimum(idx, len(self.classes_) - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains previously unseen labels: {np.unique(y[unknown])} (the classes are "
                f"{self.classes_}; pass every label in `classes` on the first call to "
                "partial_fit)")
        return idx.astype(np.int64)

    def _decode_y(self, y_idx):
        return self.classes_[y_idx]

    def _loss(self, logits, target):
        return gru_cy.losses.cross_entropy(logits, target, reduction="sum")

    def _score_data(self, data, y_true):
        return accuracy_score(y_true, self.classes_[self._predict_raw(data).argmax(axis=1)])

    def fit(self, X: _X, y: ArrayLike) -> Self:
        """Train on X (any accepted format) and labels y; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: _X, y: ArrayLike, classes: ArrayLike | None = None) -> Self:
        """One epoch over (X, y); ``classes`` (every label) on the first call."""
        if not hasattr(self, "network_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        return self._fit(X, y, incremental=True, classes=classes)

    def predict_proba(self, X: _X) -> NDArray[np.float64]:
        """Class probabilities (n_samples, n_classes), columns as classes_."""
        proba = self.predict_log_proba(X)
        np.exp(proba, out=proba)
        return proba

    def predict_log_proba(self, X: _X) -> NDArray[np.float64]:
        """Logarithms of the class probabilities (a log-softmax of the logits)."""
        check_is_fitted(self, "network_")
        logits = self._predict_raw(self._check_X(X), frozen=True).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        logits -= np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return logits

    def predict(self, X: _X) -> NDArray[Any]:
        """Predicted labels."""
        check_is_fitted(self, "network_")
        return self.classes_[self._predict_raw(self._check_X(X), frozen=True).argmax(axis=1)]

    def score(self, X: _X, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean accuracy on (X, y), as scikit-learn's classifiers define it."""
        return float(super().score(X, y, sample_weight=sample_weight))


class RNNRegressor(RegressorMixin, _RNNBase):
    """Recurrent network regressor: [Embedding] -> GRU/LSTM/RNN/Jordan -> pooling ->
    Linear, trained with Adam on the mean squared error. y is (n,) or (n, k);
    ``score`` is R². Other parameters as RNNClassifier."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = False
        return tags

    def _y_info(self, y, classes):
        y = self._validated_y(y)
        return (1 if y.ndim == 1 else y.shape[1], y.ndim == 1)

    def _validated_y(self, y):
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        y = check_array(y, ensure_2d=False, dtype=self._dtype, input_name="y",
                        ensure_all_finite=True, estimator=self)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D (n_samples,) or 2-D (n_samples, n_targets), got "
                             f"{y.ndim}-D")
        return y

    def _set_targets(self, y_info):
        n_outputs, y_1d = y_info
        self.n_outputs_ = int(n_outputs)
        self._y_1d = bool(y_1d)
        return self.n_outputs_

    def _encode_y(self, y, n):
        y = self._validated_y(y)
        if y.shape[0] != n:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]")
        y2 = y.reshape(n, -1)
        if y2.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {y2.shape[1]} targets, but {type(self).__name__} was fitted "
                             f"with {self.n_outputs_}.")
        return np.ascontiguousarray(y2, dtype=self._dtype)

    def _decode_y(self, y):
        return y[:, 0] if self._y_1d else y

    def _loss(self, pred, target):
        # Per-sample loss: the mean over targets of the squared error.
        loss, grad = gru_cy.losses.mse_loss(pred, target, reduction="sum")
        k = pred.shape[1]
        if k != 1:
            loss = loss / k
            grad = grad / grad.dtype.type(k)
        return loss, grad

    def _score_data(self, data, y_true):
        return r2_score(y_true, self._decode_y(self._predict_raw(data)))

    def fit(self, X: _X, y: ArrayLike) -> Self:
        """Train on X (any accepted format) and targets y; returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X: _X, y: ArrayLike) -> Self:
        """One epoch over (X, y) (starts a fresh model on the first call)."""
        return self._fit(X, y, incremental=True)

    def predict(self, X: _X) -> NDArray[np.float64]:
        """Predicted targets, (n,) or (n, k) as y was at fit."""
        check_is_fitted(self, "network_")
        return self._decode_y(self._predict_raw(self._check_X(X), frozen=True)
                              .astype(np.float64))

    def score(self, X: _X, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """R² of the predictions, as scikit-learn's regressors define it."""
        return float(super().score(X, y, sample_weight=sample_weight))
