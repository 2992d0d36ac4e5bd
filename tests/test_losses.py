"""gru_cy.losses against torch.nn.functional (golden files, and torch itself when installed),
central finite differences in float64, and the error messages."""

import numpy as np
import pytest

import gru_cy
from gru_cy import losses
from make_golden_toolkit import LOSS_CASES, load_golden, loss_inputs, loss_kwargs, torch_loss

TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-5, atol=1e-5)}


def _ours(name, dtype):
    case = LOSS_CASES[name]
    z, target, weight = loss_inputs(name, dtype)
    if case["kind"] == "mse":
        return losses.mse_loss(z, target, **loss_kwargs(name))
    return losses.cross_entropy(z, target, weight, **loss_kwargs(name))


def _check(name, dtype, expected):
    loss, grad = _ours(name, dtype)
    assert np.asarray(loss).dtype == np.dtype(dtype) and grad.dtype == np.dtype(dtype)
    assert np.shape(loss) == expected["loss"].shape
    assert grad.shape == expected["grad"].shape
    np.testing.assert_allclose(loss, expected["loss"], **TOL[dtype], err_msg=f"{name} loss")
    np.testing.assert_allclose(grad, expected["grad"], **TOL[dtype], err_msg=f"{name} grad")


GOLDEN, _ = load_golden("losses")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_golden(name, dtype):
    _check(name, dtype, GOLDEN[(name, dtype)])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_vs_torch(name, dtype):
    pytest.importorskip("torch")
    _check(name, dtype, torch_loss(name, dtype))


def test_golden_covers_every_option():
    assert {(c["target"], c["weighted"], c["label_smoothing"] > 0, c["reduction"])
            for c in LOSS_CASES.values() if c["kind"] == "cross_entropy"} == {
        (t, w, s, r) for t in ("index", "prob") for w in (False, True) for s in (False, True)
        for r in ("mean", "sum", "none")}
    assert len(GOLDEN) == 2 * len(LOSS_CASES)


# ---------------------------------------------------------------------------
# finite differences (float64): the gradient is that of the reduced loss


def _numeric_grad(f, z, h=1e-6):
    g = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += h
        zm[i] -= h
        g[i] = (np.sum(f(zp)) - np.sum(f(zm))) / (2 * h)
    return g


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_finite_differences(name):
    case = LOSS_CASES[name]
    z, target, weight = loss_inputs(name, np.float64)
    kw = loss_kwargs(name)
    if case["kind"] == "mse":
        def f(zz):
            return losses.mse_loss(zz, target, **kw)[0]
        grad = losses.mse_loss(z, target, **kw)[1]
    else:
        def f(zz):
            return losses.cross_entropy(zz, target, weight, **kw)[0]
        grad = losses.cross_entropy(z, target, weight, **kw)[1]
    np.testing.assert_allclose(grad, _numeric_grad(f, z), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------
# properties and edge cases


def test_plain_cross_entropy_by_hand():
    z = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]])
    t = np.array([2, 0])
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss, grad = losses.cross_entropy(z, t)
    assert loss == pytest.approx(-(logp[0, 2] + logp[1, 0]) / 2, rel=1e-14)
    p = np.exp(logp)
    p[[0, 1], [2, 0]] -= 1
    np.testing.assert_allclose(grad, p / 2, rtol=1e-13)


def test_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0], [-1e30, 1e30, 0.0]])
    loss, grad = losses.cross_entropy(z, np.array([0, 1]), reduction="none")
    np.testing.assert_array_equal(loss, [0.0, 0.0])
    assert np.all(np.isfinite(grad))
    loss, _ = losses.cross_entropy(z, np.array([2, 2]), reduction="none")
    np.testing.assert_allclose(loss, [2000.0, 1e30])


def test_all_targets_ignored_gives_nan_mean_and_zero_grad():
    z = np.random.default_rng(0).standard_normal((3, 4))
    loss, grad = losses.cross_entropy(z, np.full(3, -100))
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0)
    loss, grad = losses.cross_entropy(z, np.full(3, -100), reduction="sum")
    assert loss == 0
    np.testing.assert_array_equal(grad, 0)


def test_ignored_rows_get_zero_gradient_and_loss():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 3))
    t = np.array([0, 7, 2, 7, 1])
    loss, grad = losses.cross_entropy(z, t, ignore_index=7, label_smoothing=0.2, reduction="none")
    np.testing.assert_array_equal(loss[[1, 3]], 0)
    np.testing.assert_array_equal(grad[[1, 3]], 0)
    mean, _ = losses.cross_entropy(z, t, ignore_index=7, label_smoothing=0.2)
    assert mean == pytest.approx(loss.sum() / 3, rel=1e-14)


def test_weighted_mean_divides_by_target_weights():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 3))
    t = np.array([0, 2, 2, 1])
    w = np.array([0.5, 2.0, 3.0])
    per, _ = losses.cross_entropy(z, t, w, reduction="none")
    mean, _ = losses.cross_entropy(z, t, w)
    assert mean == pytest.approx(per.sum() / w[t].sum(), rel=1e-14)


def test_probability_targets_equal_one_hot_indices():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((2, 5, 3))
    t = rng.integers(0, 5, (2, 3))
    one_hot = np.moveaxis(np.eye(5)[t], -1, 1)
    for red in ("mean", "sum", "none"):
        a = losses.cross_entropy(z, t, reduction=red)
        b = losses.cross_entropy(z, one_hot, reduction=red)
        np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-16)


def test_empty_batch():
    z = np.zeros((0, 4), np.float32)
    loss, grad = losses.cross_entropy(z, np.zeros(0, np.int64))
    assert np.isnan(loss) and grad.shape == (0, 4) and grad.dtype == np.float32
    loss, grad = losses.cross_entropy(z, np.zeros(0, np.int64), reduction="sum")
    assert loss == 0
    loss, grad = losses.mse_loss(z, z)
    assert np.isnan(loss) and grad.shape == (0, 4)


def test_dtype_follows_logits_and_inputs_untouched():
    z = np.random.default_rng(4).standard_normal((3, 4)).astype(np.float32)
    z0 = z.copy()
    loss, grad = losses.cross_entropy(z, np.array([0, 1, 3]))
    assert type(loss) is np.float32 and grad.dtype == np.float32
    np.testing.assert_array_equal(z, z0)
    loss, grad = losses.mse_loss(z, np.ones((3, 4)))
    assert type(loss) is np.float32 and grad.dtype == np.float32


def test_mse_by_hand():
    p = np.array([[1.0, 2.0], [3.0, 5.0]])
    t = np.array([[0.0, 2.0], [1.0, 1.0]])
    loss, grad = losses.mse_loss(p, t)
    assert loss == pytest.approx((1 + 0 + 4 + 16) / 4)
    np.testing.assert_allclose(grad, 2 * (p - t) / 4)
    loss, grad = losses.mse_loss(p, t, reduction="sum")
    assert loss == 21 and np.allclose(grad, 2 * (p - t))
    loss, grad = losses.mse_loss(p, t, reduction="none")
    np.testing.assert_array_equal(loss, (p - t) ** 2)


def test_public_names():
    assert gru_cy.losses.cross_entropy is losses.cross_entropy
    assert gru_cy.losses.mse_loss is losses.mse_loss


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("call, exc, match", [
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="avg"),
     ValueError, "avg is not a valid value for reduction"),
    (lambda: losses.mse_loss(np.zeros(2), np.zeros(2), reduction=None),
     ValueError, "None is not a valid value for reduction"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3])),
     ValueError, r"Target 3 is out of bounds"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([-1, 0])),
     ValueError, r"Target -1 is out of bounds"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])),
     ValueError, r"Expected input batch_size \(2\) to match target batch_size \(3\)\."),
    (lambda: losses.cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 5), np.int64)),
     ValueError, r"Expected target size \(2, 4\), got \(2, 5\)"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])),
     TypeError, "integer dtype for target"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.zeros((2, 3), np.int64)),
     TypeError, "Expected floating point type for target with class probabilities"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.ones((2, 3)), ignore_index=0),
     ValueError, "ignore_index is not supported for floating point target"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), np.ones(4)),
     ValueError, r"weight tensor should be defined either for all 3 classes or no classes but "
                 r"got weight tensor of shape: \(4,\)"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=1.5),
     ValueError, "label_smoothing must be between 0.0 and 1.0. Got: 1.5"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), ignore_index=1.0),
     TypeError, "ignore_index should be an integer"),
    (lambda: losses.cross_entropy(np.zeros((2, 3), np.int64), np.array([0, 1])),
     TypeError, "logits must be a float32 or float64 array, got dtype int64"),
    (lambda: losses.cross_entropy(np.float64(1.0), np.array(0)),
     ValueError, r"Expected 1 or more dimensions for logits \(got 0\)"),
    (lambda: losses.mse_loss(np.zeros((2, 3)), np.zeros((3, 2))),
     ValueError, r"Using a target size \(\(3, 2\)\) that is different to the input size "
                 r"\(\(2, 3\)\)"),
    (lambda: losses.mse_loss(np.zeros(2), np.array(["a", "b"])),
     TypeError, "target must hold real numbers"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_torch_raises_where_we_raise():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    for z, t in ((np.zeros((2, 3)), np.array([0, 3])),
                 (np.zeros((2, 3)), np.array([0, 1, 2])),
                 (np.zeros((2, 3, 4)), np.zeros((2, 5), np.int64))):
        with pytest.raises((ValueError, IndexError, RuntimeError)):
            F.cross_entropy(torch.tensor(z), torch.tensor(t))
        with pytest.raises(ValueError):
            losses.cross_entropy(z, t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_plain_and_general_paths_same_bits(dtype, reduction):
    # Plain (N, C) targets take a shorter path; an ignore_index inside the
    # class range (here a class no target uses) forces the general one.
    from helpers import same_bits

    rng = np.random.default_rng(7)
    z = (4 * rng.standard_normal((50, 6))).astype(dtype)
    t = rng.integers(0, 5, 50)
    plain = losses.cross_entropy(z, t, reduction=reduction)
    general = losses.cross_entropy(z, t, ignore_index=5, reduction=reduction)
    assert same_bits(plain[0], general[0]) and same_bits(plain[1], general[1])


def test_random_cases_vs_torch():
    torch = pytest.importorskip("torch")
    hypothesis = pytest.importorskip("hypothesis")
    import torch.nn.functional as F
    from hypothesis import strategies as st

    @hypothesis.settings(max_examples=150, deadline=None)
    @hypothesis.given(
        n=st.integers(0, 4), c=st.integers(1, 5), extra=st.lists(st.integers(1, 3), max_size=2),
        unbatched=st.booleans(), probs=st.booleans(), weighted=st.booleans(),
        smoothing=st.sampled_from([0.0, 0.1, 1.0]), reduction=st.sampled_from(["mean", "sum", "none"]),
        ignore=st.sampled_from([-100, 0, 2]), seed=st.integers(0, 2**16))
    def check(n, c, extra, unbatched, probs, weighted, smoothing, reduction, ignore, seed):
        rng = np.random.default_rng(seed)
        shape = (c,) if unbatched else (n, c, *extra)
        z = 5 * rng.standard_normal(shape)
        if probs:
            t = rng.random(shape)
        else:
            t = rng.integers(0, c, shape[:1] + shape[2:] if not unbatched else ())
            t[rng.random(t.shape) < 0.3] = ignore
            if np.any((t != ignore) & (t >= c)):
                return
        w = rng.uniform(0.1, 2, c) if weighted else None
        if probs:
            ignore = -100  # the only value allowed with probabilities (tested below)
        loss, grad = losses.cross_entropy(z, t, w, ignore_index=ignore,
                                          label_smoothing=smoothing, reduction=reduction)
        zt = torch.tensor(z, requires_grad=True)
        lt = F.cross_entropy(zt, torch.tensor(t), None if w is None else torch.tensor(w),
                             ignore_index=ignore, label_smoothing=smoothing, reduction=reduction)
        lt.sum().backward()
        np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=1e-10, atol=1e-12)

    check()
