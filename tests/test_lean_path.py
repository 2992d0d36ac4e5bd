"""The lean inference path of GRU.__call__ against the general path and the NumPy reference.

A unidirectional module called without lengths on arrays already of its dtype, C-contiguous
and of the right shapes runs every layer in one compiled call (_core.Lean). It must give
the general path's results bit for bit (the same kernels), leave its
arguments alone, and hand anything it does not take (other dtypes, other layouts, wrong
shapes, replaced parameters) to the general path, which converts it or raises PyTorch's error.
"""

import numpy as np
import pytest

import gru_cy
from reference import ref_gru_forward

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


def _general(gru, x, h0=None):
    """The general path on the same arguments: explicit full lengths force it."""
    if x.ndim == 2:
        lengths = np.array(x.shape[0])
    else:
        B, T = (x.shape[0], x.shape[1]) if gru.batch_first else (x.shape[1], x.shape[0])
        lengths = np.full(B, T)
    return gru(x, h0, lengths=lengths)


def _check_bitwise(gru, x, h0=None):
    lean = gru._kernel_infer(x, h0)
    assert lean is not None, "these arguments should take the lean path"
    out, h_n = gru(x, h0)
    ref_out, ref_h = _general(gru, x, h0)
    assert out.dtype == h_n.dtype == gru.dtype
    assert out.shape == ref_out.shape and h_n.shape == ref_h.shape
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(h_n, ref_h)
    return out, h_n


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("T,B", [(1, 1), (1, 4), (9, 1), (9, 4)])
def test_lean_equals_general_and_reference(T, B, L, reset_after, dtype):
    rng = np.random.default_rng(T * 100 + B * 10 + L)
    gru = gru_cy.GRU(5, 6, num_layers=L, reset_after=reset_after, dtype=dtype, seed=3)
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    h0 = rng.standard_normal((L, B, 6)).astype(dtype)
    for h in (None, h0):
        out, h_n = _check_bitwise(gru, x, h)
        ref_out, ref_h, _ = ref_gru_forward(
            x.astype(np.float64), {k: v.astype(np.float64) for k, v in gru.params.items()},
            num_layers=L, bidirectional=False, reset_after=reset_after, bias=True,
            h0=None if h is None else h.astype(np.float64))
        np.testing.assert_allclose(out, ref_out, **TOL[dtype])
        np.testing.assert_allclose(h_n, ref_h, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_lean_unbatched_go_backwards_and_no_bias(dtype):
    rng = np.random.default_rng(5)
    for kwargs in (dict(), dict(go_backwards=True), dict(bias=False), dict(num_layers=2)):
        gru = gru_cy.GRU(3, 4, dtype=dtype, seed=1, **kwargs)
        L = gru.num_layers
        x = rng.standard_normal((7, 3)).astype(dtype)
        out, h_n = _check_bitwise(gru, x, rng.standard_normal((L, 4)).astype(dtype))
        assert out.shape == (7, 4) and h_n.shape == (L, 4)
        batched_out, batched_h = gru(x[:, None, :])
        np.testing.assert_array_equal(gru(x)[0], batched_out[:, 0])
        np.testing.assert_array_equal(gru(x)[1], batched_h[:, 0])


def test_lean_batch_first_shares_the_time_major_layout_only_at_b1_or_t1():
    rng = np.random.default_rng(6)
    gru = gru_cy.GRU(3, 4, num_layers=2, batch_first=True, seed=2)
    for shape in ((1, 8, 3), (5, 1, 3)):
        x = rng.standard_normal(shape).astype(np.float32)
        out, h_n = _check_bitwise(gru, x)
        assert out.shape == shape[:2] + (4,) and h_n.shape == (2, shape[0], 4)
    x = rng.standard_normal((5, 8, 3)).astype(np.float32)
    assert gru._kernel_infer(x, None) is None  # general path: it transposes
    out, _ = gru(x)
    tm = gru_cy.GRU(3, 4, num_layers=2, seed=2)
    np.testing.assert_array_equal(out, tm(np.ascontiguousarray(x.transpose(1, 0, 2)))[0]
                                  .transpose(1, 0, 2))


def test_lean_chunks_long_sequences_like_the_general_path():
    # T * B * 3H above the chunk size: the input projection runs in several GEMMs.
    rng = np.random.default_rng(7)
    gru = gru_cy.GRU(3, 64, num_layers=2, seed=4)
    x = rng.standard_normal((1500, 2, 3)).astype(np.float32)
    _check_bitwise(gru, x)


def test_lean_leaves_its_arguments_alone_and_returns_fresh_arrays():
    rng = np.random.default_rng(9)
    gru = gru_cy.GRU(3, 4, num_layers=2, seed=6)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 2, 4)).astype(np.float32)
    x_copy, h0_copy = x.copy(), h0.copy()
    params = {k: v.copy() for k, v in gru.params.items()}
    out, h_n = gru(x, h0)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(h0, h0_copy)
    for k, v in gru.params.items():
        np.testing.assert_array_equal(v, params[k])
    assert not np.may_share_memory(h_n, h0) and not np.may_share_memory(out, x)
    assert out.flags.owndata and h_n.flags.owndata and out.flags.writeable


def test_arguments_the_lean_path_does_not_take_go_the_general_way():
    rng = np.random.default_rng(10)
    gru = gru_cy.GRU(3, 4, seed=7)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    expected = gru(x)
    # Another dtype, a non-contiguous view, a list: converted by the general path.
    for other in (x.astype(np.float64), np.asfortranarray(x), x.tolist()):
        assert gru._kernel_infer(other, None) is None
        for a, b in zip(gru(other), expected):
            np.testing.assert_array_equal(a, b)
    # Wrong shapes: the general path's (PyTorch's) errors.
    with pytest.raises(ValueError, match="input_size"):
        gru(x[..., :2].copy())
    with pytest.raises(ValueError, match="Expected hidden size"):
        gru(x, np.zeros((1, 3, 4), np.float32))
    with pytest.raises(ValueError, match="hx should also be 3-D"):
        gru(x, np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="Expected input to be 2D or 3D"):
        gru(x[None])
    # Empty batches and sequences.
    for empty_shape in ((0, 2, 3), (5, 0, 3)):
        out, h_n = gru(np.zeros(empty_shape, np.float32))
        assert out.shape == empty_shape[:2] + (4,) and h_n.shape == (1, empty_shape[1], 4)


def test_parameters_the_lean_path_does_not_take_go_the_general_way():
    rng = np.random.default_rng(11)
    gru = gru_cy.GRU(3, 4, seed=8)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    expected = gru(x)
    # Parameters assigned as another dtype or layout: converted for the call.
    gru.params["weight_hh_l0"] = gru.params["weight_hh_l0"].astype(np.float64)
    assert gru._kernel_infer(x, None) is None
    np.testing.assert_array_equal(gru(x)[0], expected[0])
    gru.params["weight_hh_l0"] = np.asfortranarray(gru.params["weight_hh_l0"])
    np.testing.assert_array_equal(gru(x)[0], expected[0])
    # A wrong shape or a missing parameter: errors.
    gru.params["weight_hh_l0"] = np.zeros((12, 5), np.float32)
    with pytest.raises(ValueError, match="weight_hh_l0"):
        gru(x)
    del gru.params["weight_hh_l0"]
    with pytest.raises(KeyError, match="weight_hh_l0"):
        gru(x)


def test_in_place_parameter_updates_are_seen_by_the_next_call():
    rng = np.random.default_rng(12)
    gru = gru_cy.GRU(3, 4, seed=9)
    x = rng.standard_normal((5, 1, 3)).astype(np.float32)
    before = gru(x)[0]
    gru.params["bias_hh_l0"] += 1.0
    after = gru(x)[0]
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, _general(gru, x)[0])


def test_changing_the_configuration_after_a_call_is_seen_by_the_next_call():
    # The lean paths cache the module's configuration; setting an attribute drops the cache.
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    gru = gru_cy.GRU(3, 4, seed=10)
    gru(x)
    gru.step(x[0])
    gru.reset_after = False
    other = gru_cy.GRU(3, 4, reset_after=False, seed=10)
    np.testing.assert_array_equal(gru(x)[0], other(x)[0])
    np.testing.assert_array_equal(gru.step(x[0])[0], other.step(x[0])[0])
    gru.go_backwards = True
    other = gru_cy.GRU(3, 4, reset_after=False, go_backwards=True, seed=10)
    np.testing.assert_array_equal(gru(x)[0], other(x)[0])


def test_cached_shapes_and_names_follow_a_configuration_change():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    gru = gru_cy.GRU(3, 4, seed=11)
    out, h_n, tape = gru.forward_train(x)
    gru.num_layers = 2
    with pytest.raises(KeyError, match="weight_ih_l1"):
        gru(x)
    with pytest.raises(KeyError, match="weight_ih_l1"):
        gru.forward_train(x)
    with pytest.raises(ValueError, match="run forward_train again"):
        gru.backward(tape, np.ones_like(out))
    two = gru_cy.GRU(3, 4, num_layers=2, seed=12)
    gru.load_state_dict(two.state_dict())
    gru.zero_grad()
    assert set(gru.grads) == set(two.grads)
    for a, b in zip(gru(x), two(x)):
        np.testing.assert_array_equal(a, b)
    out, h_n, tape = gru.forward_train(x)
    gru.backward(tape, np.ones_like(out))
    assert set(gru.grads) == set(two.params)


def test_params_in_another_mapping_and_dtype_assigned_as_a_type():
    import collections

    rng = np.random.default_rng(15)
    x = rng.standard_normal((4, 2, 3)).astype(np.float32)
    gru = gru_cy.GRU(3, 4, num_layers=2, seed=13)
    expected = gru(x)
    gru.params = collections.OrderedDict(gru.params)  # not a dict: the general path
    for a, b in zip(gru(x), expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(gru.step(x[0])[0], gru(x[:1])[0][0])
    gru.dtype = np.float32  # a type, not a np.dtype
    assert gru.dtype == np.dtype(np.float32)
    np.testing.assert_array_equal(gru(x)[0], expected[0])
    with pytest.raises((TypeError, ValueError), match="dtype"):
        gru.dtype = np.int32


def test_zero_dimensional_arrays_are_promoted_as_before():
    gru = gru_cy.GRU(1, 2, seed=14)
    y0, _ = gru.step(np.array(0.5, np.float32))
    y1, _ = gru.step(np.float32(0.5))
    assert y0.shape == y1.shape == (2,)
    np.testing.assert_array_equal(y0, y1)


def test_the_tape_does_not_keep_the_returned_output():
    import weakref

    gru = gru_cy.GRU(3, 4, seed=15)
    x = np.random.default_rng(16).standard_normal((5, 2, 3)).astype(np.float32)
    out, h_n, tape = gru.forward_train(x)
    assert all(part[1] is None for part in tape.parts)
    ref = weakref.ref(out)
    del out
    assert ref() is None
