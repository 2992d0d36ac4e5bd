"""Loss functions returning the loss and its gradient, PyTorch's semantics.

Each function returns ``(loss, grad)``: the loss as ``torch.nn.functional``
computes it and the gradient of the reduced loss with respect to the
prediction (for ``reduction="none"``, the gradient of ``loss.sum()``), in
the prediction's dtype.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from gru_cy.nn.base import shape_str, to_numpy

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    # A reduced loss is a NumPy scalar of the prediction's dtype;
    # reduction="none" gives one loss per element.
    _Reduced = tuple[np.floating[Any], NDArray[Any]]
    _Unreduced = tuple[NDArray[Any], NDArray[Any]]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{reduction} is not a valid value for reduction "
                         f"(expected 'mean', 'sum' or 'none')")
    return reduction


def _float_input(value, name):
    arr = to_numpy(value, name)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    return arr


def _log_softmax(z):
    """log-softmax over the last axis, stable for any finite z; also softmax."""
    shifted = z - z.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=-1, keepdims=True)
    logp = shifted - np.log(total)
    return logp, exp / total


@overload
def cross_entropy(logits: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: Literal["mean", "sum"] = "mean") -> _Reduced: ...


@overload
def cross_entropy(logits: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0, *,
                  reduction: Literal["none"]) -> _Unreduced: ...


@overload
def cross_entropy(logits: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> _Reduced | _Unreduced: ...


def cross_entropy(logits: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> _Reduced | _Unreduced:
    """Softmax cross-entropy as ``torch.nn.functional.cross_entropy``: (loss, dlogits).

    logits: (C,), (N, C) or (N, C, d1, ...), classes on axis 1 (axis 0 for 1-D).
    target: class indices, shape (), (N,) or (N, d1, ...) respectively (an
    integer array; ``ignore_index`` marks entries that contribute nothing),
    or class probabilities of the logits' shape (a float array).
    weight: per-class weights (C,). With class indices the mean divides by
    the summed weights of the targets that are not ignored; with
    probabilities by the number of samples.
    label_smoothing in [0, 1] mixes the target with the uniform
    distribution, as PyTorch does (weights included).
    """
    _check_reduction(reduction)
    if (isinstance(label_smoothing, (bool, np.bool_))
            or not isinstance(label_smoothing, numbers.Real)
            or not 0.0 <= float(label_smoothing) <= 1.0):
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    eps = float(label_smoothing)
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index should be an integer, got {type(ignore_index).__name__}")
    ignore_index = int(ignore_index)
    z = _float_input(logits, "logits")
    dtype = z.dtype
    if z.ndim < 1:
        raise ValueError(f"Expected 1 or more dimensions for logits (got {z.ndim})")
    class_axis = 0 if z.ndim == 1 else 1
    C = z.shape[class_axis]
    t = to_numpy(target, "target")
    if weight is not None:
        w = _float_input(weight, "weight").astype(dtype, copy=False)
        if w.ndim != 1 or w.shape[0] != C:
            raise ValueError(f"weight tensor should be defined either for all {C} classes or no "
                             f"classes but got weight tensor of shape: {shape_str(w.shape)}")
    else:
        w = None

    # Rows (M, C) with the classes last.
    rows = np.moveaxis(z, class_axis, -1).reshape(-1, C) if z.ndim > 1 else z.reshape(1, C)
    sample_shape = z.shape[:class_axis] + z.shape[class_axis + 1:]
    M = rows.shape[0]

    if t.shape == z.shape:
        if t.dtype.kind != "f":
            raise TypeError(f"Expected floating point type for target with class probabilities, "
                            f"got {t.dtype}")
        if ignore_index != -100:
            raise ValueError("ignore_index is not supported for floating point target")
        loss_rows, grad_rows = _cross_entropy_probs(rows, t, class_axis, C, w, eps, dtype)
        if reduction == "mean":
            if M:
                loss = loss_rows.sum() / dtype.type(M)
                grad_rows /= dtype.type(M)
            else:  # the mean over no samples is NaN, as in PyTorch
                loss = dtype.type(np.nan)
        elif reduction == "sum":
            loss = loss_rows.sum()
        else:
            loss = loss_rows.reshape(sample_shape)
    else:
        if t.dtype.kind not in "iu":
            raise TypeError(f"expected class indices of an integer dtype for target (or class "
                            f"probabilities of the logits' shape {shape_str(z.shape)}), got "
                            f"dtype {t.dtype} and shape {shape_str(t.shape)}")
        if t.shape != sample_shape:
            if z.ndim >= 2 and (t.ndim == 0 or t.shape[0] != z.shape[0]):
                got = t.shape[0] if t.ndim else "a 0-d target"
                raise ValueError(f"Expected input batch_size ({z.shape[0]}) to match target "
                                 f"batch_size ({got}).")
            raise ValueError(f"Expected target size {shape_str(sample_shape)}, got "
                             f"{shape_str(t.shape)}")
        if (w is None and eps == 0.0 and z.ndim == 2 and reduction != "none" and M
                and not 0 <= ignore_index < C):
            fast = _cross_entropy_plain(z, t, reduction)
            if fast is not None:
                return fast
        loss_rows, grad_rows, valid, w_t = _cross_entropy_indices(
            rows, t.reshape(-1), C, w, ignore_index, eps, dtype)
        if reduction == "mean":
            # Divided by the summed weights of the kept targets: 0/0 (nothing
            # kept) is NaN as in PyTorch, whose ignored rows keep zero gradient.
            denom = w_t.sum()
            with np.errstate(divide="ignore", invalid="ignore"):
                loss = loss_rows.sum() / denom
                grad_rows /= denom
            grad_rows[~valid] = 0
        elif reduction == "sum":
            loss = loss_rows.sum()
        else:
            loss = loss_rows.reshape(sample_shape)

    if z.ndim > 1:
        moved = z.shape[:1] + z.shape[2:] + (C,)
        dlogits = np.moveaxis(grad_rows.reshape(moved), -1, 1)
        dlogits = np.ascontiguousarray(dlogits)
    else:
        dlogits = grad_rows.reshape(C)
    if reduction != "none":
        loss = dtype.type(loss)
    return loss, dlogits


def _cross_entropy_plain(z, t, reduction):
    """(N, C) logits, class indices all in range, no weights or smoothing:
    the common case in fewer NumPy calls (same arithmetic, same bits as the
    general path); None when some target is out of range or ignored."""
    N, C = z.shape
    if t.min() < 0 or t.max() >= C:
        return None
    dtype = z.dtype
    rows = np.arange(N)
    shifted = z - z.max(axis=1, keepdims=True)
    grad = np.exp(shifted)
    total = grad.sum(axis=1, keepdims=True)
    grad /= total
    grad[rows, t] -= dtype.type(1)
    # -(log p_t) = log(total) - shifted_t
    loss = (np.log(total[:, 0]) - shifted[rows, t]).sum()
    if reduction == "mean":
        loss = loss / dtype.type(N)
        grad /= dtype.type(N)
    return dtype.type(loss), grad


def _cross_entropy_indices(rows, t, C, w, ignore_index, eps, dtype):
    """Per-row losses (M,), their gradients (M, C), the kept rows (M,) and
    each row's target weight (M,; zero where ignored)."""
    M = rows.shape[0]
    valid = t != ignore_index
    bad = valid & ((t < 0) | (t >= C))
    if bad.any():
        raise ValueError(f"Target {int(t[bad][0])} is out of bounds (expected class indices in "
                         f"[0, {C}) or ignore_index={ignore_index}).")
    safe = np.where(valid, t, 0).astype(np.intp)
    logp, p = _log_softmax(rows)
    picked = logp[np.arange(M), safe]
    if w is None:
        w_t = valid.astype(dtype)
    else:
        w_t = np.where(valid, w[safe], dtype.type(0))
    # d(-w_t logp_t)/dz = w_t (p - onehot(t))
    nll = -(w_t * picked)
    grad = p * w_t[:, None]
    grad[np.arange(M), safe] -= w_t
    grad *= dtype.type(1.0 - eps)
    if eps > 0.0:
        # smooth_i = -sum_c w_c logp_ic over valid rows, weighted by eps / C;
        # d smooth_i / dz_j = p_j sum_c w_c - w_j.
        if w is None:
            smooth = -logp.sum(axis=1)
            dsmooth = p * dtype.type(C)
            dsmooth -= dtype.type(1)
        else:
            smooth = -(logp * w).sum(axis=1)
            dsmooth = p * w.sum()
            dsmooth -= w
        smooth = np.where(valid, smooth, dtype.type(0))
        dsmooth *= valid[:, None]
        factor = dtype.type(eps / C)
        loss = dtype.type(1.0 - eps) * nll + factor * smooth
        grad += factor * dsmooth
    else:
        loss = nll
    return loss, grad, valid, w_t


def _cross_entropy_probs(rows, t, class_axis, C, w, eps, dtype):
    """Per-row losses (M,) and gradients (M, C) for class-probability targets."""
    tr = np.moveaxis(t.astype(dtype, copy=False), class_axis, -1).reshape(-1, C) \
        if t.ndim > 1 else t.astype(dtype, copy=False).reshape(1, C)
    if eps > 0.0:
        tr = tr * dtype.type(1.0 - eps) + dtype.type(eps / C)
    logp, p = _log_softmax(rows)
    wt = tr if w is None else tr * w
    loss = -(logp * wt).sum(axis=1)
    # d/dz_j of -sum_c wt_c logp_c = p_j sum_c wt_c - wt_j
    grad = p * wt.sum(axis=1, keepdims=True)
    grad -= wt
    return loss, grad


@overload
def mse_loss(pred: ArrayLike, target: ArrayLike,
             reduction: Literal["mean", "sum"] = "mean") -> _Reduced: ...


@overload
def mse_loss(pred: ArrayLike, target: ArrayLike, *,
             reduction: Literal["none"]) -> _Unreduced: ...


@overload
def mse_loss(pred: ArrayLike, target: ArrayLike,
             reduction: str = "mean") -> _Reduced | _Unreduced: ...


def mse_loss(pred: ArrayLike, target: ArrayLike,
             reduction: str = "mean") -> _Reduced | _Unreduced:
    """Mean squared error as ``torch.nn.functional.mse_loss``: (loss, dpred).

    pred and target must have the same shape (PyTorch would broadcast with a
    warning; here a mismatch is an error).
    """
    _check_reduction(reduction)
    p = _float_input(pred, "pred")
    t = to_numpy(target, "target")
    if t.dtype.kind not in "biuf":
        raise TypeError(f"target must hold real numbers, got dtype {t.dtype}")
    if t.shape != p.shape:
        raise ValueError(f"Using a target size ({shape_str(t.shape)}) that is different to the "
                         f"input size ({shape_str(p.shape)}) is not supported: pred and target "
                         f"must have the same shape")
    dtype = p.dtype
    diff = p - t.astype(dtype, copy=False)
    if reduction == "none":
        return diff * diff, diff * dtype.type(2)
    loss = (diff * diff).sum()
    if reduction == "sum":
        return dtype.type(loss), diff * dtype.type(2)
    n = diff.size
    if n == 0:
        return dtype.type(np.nan), np.zeros_like(diff)
    return dtype.type(loss / dtype.type(n)), diff * dtype.type(2.0 / n)
