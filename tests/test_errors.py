"""The error contract (docs/architecture.md): every bad argument raises TypeError or
ValueError naming the argument with expected versus got, before any kernel
runs; odd but valid inputs (ints, bools, non-contiguous, read-only) work."""

import re

import numpy as np
import pytest

import gru_cy

T, B, I, H = 5, 3, 4, 6


@pytest.fixture
def gru():
    return gru_cy.GRU(I, H, num_layers=2, seed=0)


def x_ok(dtype=np.float32):
    return np.random.default_rng(0).standard_normal((T, B, I)).astype(dtype)


# -- constructor ----------------------------------------------------------------

@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(input_size=0, hidden_size=H), ValueError, "input_size must be >= 1, got 0"),
    (dict(input_size=-3, hidden_size=H), ValueError, "input_size must be >= 1, got -3"),
    (dict(input_size=2.5, hidden_size=H), TypeError, "input_size should be an integer"),
    (dict(input_size=True, hidden_size=H), TypeError, "input_size should be an integer"),
    (dict(input_size=I, hidden_size=0), ValueError, "hidden_size must be >= 1, got 0"),
    (dict(input_size=I, hidden_size="8"), TypeError, "hidden_size should be an integer"),
    (dict(input_size=I, hidden_size=H, num_layers=0), ValueError, "num_layers must be >= 1"),
    (dict(input_size=I, hidden_size=H, dropout=1.5), ValueError, "dropout should be a number"),
    (dict(input_size=I, hidden_size=H, dropout=-0.1), ValueError, "dropout should be a number"),
    (dict(input_size=I, hidden_size=H, dtype=np.int32), ValueError, "dtype must be numpy.float32"),
    (dict(input_size=I, hidden_size=H, dtype=np.float16), ValueError, "got float16"),
    (dict(input_size=I, hidden_size=H, dtype="nonsense"), TypeError, "dtype must be"),
    (dict(input_size=I, hidden_size=H, bias=1), TypeError, "bias should be a bool"),
    (dict(input_size=I, hidden_size=H, batch_first="yes"), TypeError, "batch_first"),
    (dict(input_size=I, hidden_size=H, bidirectional=None), TypeError, "bidirectional"),
    (dict(input_size=I, hidden_size=H, reset_after=0), TypeError, "reset_after"),
    (dict(input_size=I, hidden_size=H, bidirectional=True, go_backwards=True), ValueError,
     "go_backwards"),
    (dict(input_size=I, hidden_size=H, seed="abc"), TypeError, "seed must be"),
])
def test_constructor_rejects(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        gru_cy.GRU(**kwargs)


def test_constructor_accepts_numpy_ints_and_dtype_names():
    g = gru_cy.GRU(np.int64(I), np.int32(H), dtype="float64", dropout=0)
    assert g.params["weight_ih_l0"].dtype == np.float64
    assert g.params["weight_ih_l0"].shape == (3 * H, I)


def test_repr_lists_non_default_arguments():
    assert repr(gru_cy.GRU(I, H)) == f"GRU({I}, {H})"
    g = gru_cy.GRU(I, H, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                   bidirectional=True, reset_after=False, dtype=np.float64)
    assert repr(g) == (f"GRU({I}, {H}, num_layers=2, bias=False, batch_first=True, "
                       "dropout=0.5, bidirectional=True, reset_after=False, dtype=float64)")


# -- input ----------------------------------------------------------------------

@pytest.mark.parametrize("bad,exc,match", [
    (np.ones((T, B, I), np.complex64), TypeError, "input must hold real numbers.*complex64"),
    (np.full((T, B, I), "a"), TypeError, "input must hold real numbers"),
    (np.empty((T, B, I), object), TypeError, "input must hold real numbers.*object"),
    (np.ones(I, np.float32), ValueError, "Expected input to be 2D or 3D, got 1D"),
    (np.ones((2, T, B, I), np.float32), ValueError, "Expected input to be 2D or 3D, got 4D"),
    (np.ones((T, B, I + 1), np.float32), ValueError,
     re.escape(f"input.size(-1) must be equal to input_size. Expected {I}, got {I + 1}")),
    ([[1, 2], [3]], TypeError, "input must"),
])
def test_bad_input(gru, bad, exc, match):
    with pytest.raises(exc, match=match):
        gru(bad)
    with pytest.raises(exc, match=match):
        gru.forward_train(bad)


def test_int_and_bool_inputs_are_converted(gru):
    xi = np.arange(T * B * I).reshape(T, B, I) % 3
    out, _ = gru(xi)
    expected, _ = gru(xi.astype(np.float32))
    np.testing.assert_array_equal(out, expected)
    out_b, _ = gru(xi > 0)
    np.testing.assert_array_equal(out_b, gru((xi > 0).astype(np.float32))[0])


def test_non_contiguous_and_read_only_inputs(gru):
    x = x_ok()
    expected, h_expected = gru(x)
    big = np.zeros((T, 2 * B, 2 * I), np.float32)
    big[:, ::2, ::2] = x
    view = big[:, ::2, ::2]
    assert not view.flags.c_contiguous
    out, h = gru(view)
    np.testing.assert_array_equal(out, expected)
    ro = x.copy()
    ro.flags.writeable = False
    out, h = gru(ro)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(h, h_expected)


def test_float64_input_to_float32_module_is_converted(gru):
    x = x_ok()
    out, _ = gru(x.astype(np.float64))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, gru(x)[0])


# -- h0 -------------------------------------------------------------------------

def test_h0_wrong_shape(gru):
    with pytest.raises(ValueError, match=re.escape(f"Expected hidden size (2, {B}, {H}), "
                                                   f"got [1, {B}, {H}]")):
        gru(x_ok(), np.zeros((1, B, H)))


def test_h0_wrong_ndim(gru):
    with pytest.raises(ValueError, match="For batched 3-D input, hx should also be 3-D but got 2-D"):
        gru(x_ok(), np.zeros((2, H)))
    with pytest.raises(ValueError, match="For unbatched 2-D input, hx should also be 2-D but got 3-D"):
        gru(x_ok()[:, 0], np.zeros((2, 1, H)))


def test_h0_complex_is_type_error(gru):
    with pytest.raises(TypeError, match="hx must hold real numbers"):
        gru(x_ok(), np.zeros((2, B, H), np.complex128))


def test_h0_is_not_modified(gru):
    h0 = np.ones((2, B, H), np.float32)
    gru(x_ok(), h0)
    np.testing.assert_array_equal(h0, 1.0)


# -- lengths --------------------------------------------------------------------

@pytest.mark.parametrize("lengths,exc,match", [
    ([T] * (B - 1), ValueError, re.escape(f"expected shape ({B},), got ({B - 1},)")),
    ([[T] * B], ValueError, "1-D array"),
    ([T, -1, 0], ValueError, re.escape(f"lengths must lie in [0, T] with T={T}, got values from -1")),
    ([T, T + 1, 0], ValueError, f"lengths must lie in \\[0, T\\] with T={T}.*to {T + 1}"),
    ([1.0, 2.0, 3.0], TypeError, "lengths must be integers, got dtype float64"),
    (["a", "b", "c"], TypeError, "lengths must be integers"),
])
def test_bad_lengths(gru, lengths, exc, match):
    with pytest.raises(exc, match=match):
        gru(x_ok(), lengths=lengths)


def test_lengths_unbatched_scalar(gru):
    x = x_ok()[:, 0]
    out, h = gru(x, lengths=3)
    full, _ = gru(x[:3])
    np.testing.assert_allclose(out[:3], full, rtol=1e-6, atol=1e-7)
    assert np.all(out[3:] == 0)


# -- state dict -----------------------------------------------------------------

def test_load_state_dict_missing_and_unexpected(gru):
    sd = gru.state_dict()
    del sd["bias_hh_l1"]
    sd["weight_ih_l2"] = np.zeros((3 * H, H))
    with pytest.raises(ValueError, match='Missing key\\(s\\) in state_dict: "bias_hh_l1"'):
        gru.load_state_dict(sd)
    with pytest.raises(KeyError):  # also a KeyError, like PyTorch's RuntimeError text
        gru.load_state_dict(sd)
    with pytest.raises(ValueError, match='Unexpected key\\(s\\) in state_dict: "weight_ih_l2"'):
        gru.load_state_dict(sd)
    missing, unexpected = gru.load_state_dict(sd, strict=False)
    assert missing == ["bias_hh_l1"] and unexpected == ["weight_ih_l2"]


def test_load_state_dict_shape_mismatch_changes_nothing(gru):
    before = gru.state_dict()
    sd = {k: np.zeros_like(v) for k, v in before.items()}
    sd["weight_hh_l0"] = np.zeros((3 * H, H + 1))
    with pytest.raises(ValueError, match=re.escape(
            f"size mismatch for weight_hh_l0: copying a param with shape ({3 * H}, {H + 1}), "
            f"the shape in current model is ({3 * H}, {H})")):
        gru.load_state_dict(sd)
    for k, v in gru.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_bad_values(gru):
    sd = gru.state_dict()
    sd["weight_ih_l0"] = sd["weight_ih_l0"].astype(np.complex64)
    with pytest.raises(TypeError, match="weight_ih_l0"):
        gru.load_state_dict(sd)
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        gru.load_state_dict([1, 2, 3])


def test_load_state_dict_keeps_params_live(gru):
    ref = gru.params["weight_ih_l0"]
    sd = {k: np.full_like(v, 0.5) for k, v in gru.state_dict().items()}
    gru.load_state_dict(sd)
    assert gru.params["weight_ih_l0"] is ref
    assert np.all(ref == 0.5)


def test_state_dict_is_a_copy(gru):
    sd = gru.state_dict()
    sd["weight_ih_l0"][...] = 7
    assert not np.any(gru.params["weight_ih_l0"] == 7)


def test_param_replaced_with_wrong_shape(gru):
    gru.params["weight_hh_l1"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=re.escape(
            f"params['weight_hh_l1'] has shape (2, 2), expected ({3 * H}, {H})")):
        gru(x_ok())


# -- backward -------------------------------------------------------------------

def test_backward_bad_tape(gru):
    with pytest.raises(TypeError, match="tape must be the third result of forward_train"):
        gru.backward(object(), None)
    other = gru_cy.GRU(I, H, num_layers=2, seed=0)
    _, _, tape = other.forward_train(x_ok())
    with pytest.raises(ValueError, match="tape was recorded by a different module"):
        gru.backward(tape)


def test_backward_after_params_changed_shape(gru):
    _, _, tape = gru.forward_train(x_ok())
    gru.params["weight_ih_l0"] = np.zeros((3 * H, I + 2), np.float32)
    with pytest.raises(ValueError, match="tape was recorded with params\\['weight_ih_l0'\\]"):
        gru.backward(tape)


def test_backward_bad_gradients(gru):
    out, h_n, tape = gru.forward_train(x_ok())
    with pytest.raises(ValueError, match=re.escape(f"dout must have shape ({T}, {B}, {H})")):
        gru.backward(tape, np.zeros((T, B, H + 1)))
    with pytest.raises(ValueError, match=re.escape(f"dh_n must have shape (2, {B}, {H})")):
        gru.backward(tape, None, np.zeros((1, B, H)))
    with pytest.raises(TypeError, match="dout must hold real numbers"):
        gru.backward(tape, np.zeros(out.shape, np.complex64))


def test_backward_uses_parameters_of_the_forward(gru):
    x = x_ok()
    _, _, tape = gru.forward_train(x)
    gru.zero_grad()
    dx_before, _ = gru.backward(tape, np.ones((T, B, H), np.float32))
    g_before = {k: v.copy() for k, v in gru.grads.items()}
    gru.params["weight_hh_l0"] *= 3  # an optimiser step between forward and backward
    gru.zero_grad()
    dx_after, _ = gru.backward(tape, np.ones((T, B, H), np.float32))
    np.testing.assert_array_equal(dx_before, dx_after)
    for k in g_before:
        np.testing.assert_array_equal(g_before[k], gru.grads[k])


def test_grads_replaced_with_wrong_shape(gru):
    _, _, tape = gru.forward_train(x_ok())
    gru.grads["bias_ih_l0"] = np.zeros(2)
    with pytest.raises(ValueError, match="grads\\['bias_ih_l0'\\] must be"):
        gru.backward(tape)
    gru.zero_grad()
    assert gru.grads["bias_ih_l0"].shape == (3 * H,)
    gru.backward(tape)


# -- step -----------------------------------------------------------------------

def test_step_errors():
    with pytest.raises(ValueError, match="step\\(\\) needs a unidirectional module"):
        gru_cy.GRU(I, H, bidirectional=True).step(np.zeros((B, I)))
    g = gru_cy.GRU(I, H, num_layers=2)
    with pytest.raises(ValueError, match="Expected x_t to be 1D or 2D, got 3D"):
        g.step(np.zeros((1, B, I)))
    with pytest.raises(ValueError, match=re.escape(f"Expected {I}, got {I + 1}")):
        g.step(np.zeros((B, I + 1)))
    with pytest.raises(ValueError, match=re.escape(f"Expected hidden size (2, {B}, {H}), got [2, {B + 1}, {H}]")):
        g.step(np.zeros((B, I)), np.zeros((2, B + 1, H)))
    with pytest.raises(TypeError, match="x_t must hold real numbers"):
        g.step(np.zeros((B, I), np.complex64))


# -- IEEE -----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset_after", [True, False])
def test_nan_and_inf_propagate_per_sequence(dtype, reset_after):
    g = gru_cy.GRU(I, H, reset_after=reset_after, dtype=dtype, seed=1)
    x = x_ok(dtype)
    x[2, 0, 1] = np.nan
    x[1, 1, 0] = np.inf
    out, h = g(x)
    # Sequence 0 is NaN from step 2 on and finite before; sequence 2 is untouched.
    assert np.all(np.isfinite(out[:2, 0])) and np.all(np.isnan(out[2:, 0]))
    assert np.all(np.isfinite(out[:, 2]))
    clean = x.copy()
    clean[2, 0, 1] = 0
    clean[1, 1, 0] = 0
    np.testing.assert_array_equal(out[:, 2], g(clean)[0][:, 2])
    # An infinite input saturates the gates: a finite (bounded) result, never NaN
    # unless Inf meets a zero weight (inf * 0 = NaN) -- check it is bounded where finite.
    fin = out[:, 1][np.isfinite(out[:, 1])]
    assert np.all(np.abs(fin) <= 1)


def test_forward_train_with_lengths_leaves_callers_input_alone():
    # The tape zeroes padded steps in its own copy, never in the caller's array.
    g = gru_cy.GRU(I, H, seed=0)
    x = x_ok()
    keep = x.copy()
    _, _, tape = g.forward_train(x, lengths=[T, 2, 0])
    np.testing.assert_array_equal(x, keep)
    torch = pytest.importorskip("torch")
    xt = torch.from_numpy(x)
    g.forward_train(xt, lengths=[T, 2, 0])
    np.testing.assert_array_equal(xt.numpy(), keep)


def test_huge_sizes_are_refused_before_allocating():
    with pytest.raises(MemoryError, match="would need"):
        gru_cy.GRU(3, 4, num_layers=2**40)
    with pytest.raises(ValueError, match="too large for 32-bit BLAS"):
        gru_cy.GRU(3, 2**30)


def test_empty_batch_with_empty_lengths_list():
    out, h = gru_cy.GRU(3, 4)(np.zeros((2, 0, 3), np.float32), lengths=[])
    assert out.shape == (2, 0, 4) and h.shape == (1, 0, 4)
