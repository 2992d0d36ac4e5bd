"""Streaming: gru.step() fed one time step at a time against the whole-sequence forward.

What is promised (docs/architecture.md, "Reproducibility"): step() fed a sequence returns bit
for bit what one whole-sequence call returns, at every size, under every instruction set and
whatever the BLAS: every product is one multiply-add chain per element on gru_cy's kernels,
which read the weights in place, so a one-step call and a long call compute each element the
same way.
"""

import numpy as np
import pytest

import gru_cy
from reference import ref_gru_forward

T = 40
DTYPES = [np.float32, np.float64]


def _module(I, H, L, reset_after, dtype, **kwargs):
    return gru_cy.GRU(I, H, num_layers=L, reset_after=reset_after, dtype=dtype, seed=7, **kwargs)


def _stream(gru, xs, h=None):
    """Feed xs (T, ...) one step at a time: (stacked y_t, final h)."""
    ys = []
    for x_t in xs:
        y_t, h = gru.step(x_t, h)
        ys.append(y_t)
    return np.stack(ys), h


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("L", [1, 3])
@pytest.mark.parametrize("B", [1, 3])
def test_step_equals_forward_bit_for_bit(B, L, reset_after, dtype):
    rng = np.random.default_rng(1)
    gru = _module(5, 6, L, reset_after, dtype)
    x = rng.standard_normal((T, B, 5)).astype(dtype)
    h0 = rng.standard_normal((L, B, 6)).astype(dtype)
    out, h_n = gru(x, h0)
    ys, h = _stream(gru, x, h0)
    assert ys.dtype == h.dtype == np.dtype(dtype)
    assert ys.shape == (T, B, 6) and h.shape == (L, B, 6)
    np.testing.assert_array_equal(ys, out)
    np.testing.assert_array_equal(h, h_n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("B", [1, 3, 8])
@pytest.mark.parametrize("H", [6, 32, 128, 256])
def test_one_step_call_is_a_one_step_sequence_bit_for_bit(H, B, L, reset_after, dtype):
    """At every size: step(x_t, h) == gru(x_t[None], h), bit for bit."""
    rng = np.random.default_rng(11)
    I = 40
    gru = _module(I, H, L, reset_after, dtype)
    h = (0.5 * rng.standard_normal((L, B, H))).astype(dtype)
    for _ in range(3):
        x_t = rng.standard_normal((B, I)).astype(dtype)
        y, h_step = gru.step(x_t, h)
        out, h_seq = gru(x_t[None], h)
        np.testing.assert_array_equal(y, out[0])
        np.testing.assert_array_equal(h_step, h_seq)
        h = h_step


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("B", [1, 3, 8])
@pytest.mark.parametrize("H", [6, 32, 128, 256])
def test_step_bit_for_bit_at_every_size(H, B, L, reset_after, dtype):
    """Input widths of 40 and more (the old BLAS-backed step() drifted by a few ulp there)."""
    rng = np.random.default_rng(12)
    I, steps = 40, 24
    gru = _module(I, H, L, reset_after, dtype)
    x = rng.standard_normal((steps, B, I)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((L, B, H))).astype(dtype)
    out, h_n = gru(x, h0)
    ys, h = _stream(gru, x, h0)
    np.testing.assert_array_equal(ys, out)
    np.testing.assert_array_equal(h, h_n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
def test_step_unbatched(reset_after, dtype):
    rng = np.random.default_rng(2)
    gru = _module(4, 5, 2, reset_after, dtype)
    x = rng.standard_normal((T, 4)).astype(dtype)
    out, h_n = gru(x)
    ys, h = _stream(gru, x)
    assert ys.shape == (T, 5) and h.shape == (2, 5)
    np.testing.assert_array_equal(ys, out)
    np.testing.assert_array_equal(h, h_n)


@pytest.mark.parametrize("reset_after", [True, False])
def test_step_matches_numpy_reference(reset_after):
    """An independent check: the streamed float64 result is the reference GRU's."""
    rng = np.random.default_rng(3)
    gru = _module(3, 4, 2, reset_after, np.float64)
    x = rng.standard_normal((12, 2, 3))
    ys, h = _stream(gru, x)
    ref_out, ref_h, _ = ref_gru_forward(x, gru.params, num_layers=2, bidirectional=False,
                                     reset_after=reset_after, bias=True)
    np.testing.assert_allclose(ys, ref_out, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reset_after", [True, False])
def test_step_continues_a_forward_call(reset_after):
    """forward over the first part, then step() from its h_n, equals forward over all."""
    rng = np.random.default_rng(4)
    gru = _module(3, 4, 2, reset_after, np.float32)
    x = rng.standard_normal((T, 3, 3)).astype(np.float32)
    out, h_n = gru(x)
    head, h = gru(x[:25])
    tail, h = _stream(gru, x[25:], h)
    np.testing.assert_array_equal(np.concatenate([head, tail]), out)
    np.testing.assert_array_equal(h, h_n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset_after", [True, False])
def test_step_go_backwards_fed_in_reverse(reset_after, dtype):
    """A reverse-only module reads x[T-1] first: streaming x[::-1] gives out[::-1] and h_n."""
    rng = np.random.default_rng(5)
    gru = _module(3, 4, 2, reset_after, dtype, go_backwards=True)
    x = rng.standard_normal((T, 2, 3)).astype(dtype)
    out, h_n = gru(x)
    ys, h = _stream(gru, x[::-1])
    np.testing.assert_array_equal(ys[::-1], out)
    np.testing.assert_array_equal(h, h_n)


def test_step_batch_first_module_takes_one_step_per_call():
    """batch_first changes the layout of whole sequences only; x_t is (B, I) either way."""
    rng = np.random.default_rng(6)
    gru = _module(3, 4, 1, True, np.float32, batch_first=True)
    x = rng.standard_normal((2, 10, 3)).astype(np.float32)
    out, h_n = gru(x)
    ys, h = _stream(gru, x.transpose(1, 0, 2))
    np.testing.assert_array_equal(ys.transpose(1, 0, 2), out)
    np.testing.assert_array_equal(h, h_n)


def test_step_leaves_its_inputs_alone():
    rng = np.random.default_rng(7)
    gru = _module(3, 4, 2, True, np.float32)
    x_t = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 2, 4)).astype(np.float32)
    x_copy, h_copy = x_t.copy(), h.copy()
    y, h_new = gru.step(x_t, h)
    np.testing.assert_array_equal(x_t, x_copy)
    np.testing.assert_array_equal(h, h_copy)
    assert not np.shares_memory(h_new, h)
    # the top layer's output is the top layer's new state
    np.testing.assert_array_equal(y, h_new[-1])


def test_step_h_none_means_zeros():
    rng = np.random.default_rng(8)
    gru = _module(3, 4, 2, False, np.float64)
    x_t = rng.standard_normal((3, 3))
    np.testing.assert_array_equal(gru.step(x_t)[1], gru.step(x_t, np.zeros((2, 3, 4)))[1])


def test_step_rejects_bidirectional():
    gru = gru_cy.GRU(3, 4, bidirectional=True, seed=0)
    with pytest.raises(ValueError, match="bidirectional"):
        gru.step(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("x_t, h, match", [
    (np.zeros((2, 5)), None, "input_size"),
    (np.zeros((1, 2, 3)), None, "1D or 2D"),
    (np.zeros((2, 3)), np.zeros((1, 2, 4)), "hidden size"),
    (np.zeros(3), np.zeros((2, 1, 4)), "hidden size"),
])
def test_step_argument_errors(x_t, h, match):
    gru = gru_cy.GRU(3, 4, num_layers=2, seed=0)
    with pytest.raises(ValueError, match=match):
        gru.step(x_t, h)
