"""gru_cy.GRU (its public API) against the NumPy reference GRU and finite differences.

The reference (tests/reference.py) runs in float64 on the module's own parameters and inputs (cast
up from float32 where the module is float32); loss-style checks use
    loss = sum(out * dout) + sum(h_n * dh_n).
"""

import itertools

import numpy as np
import pytest

import gru_cy
from helpers import threads
from reference import param_names, ref_gru_backward, ref_gru_forward

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-5)}
DTYPES = [np.float64, np.float32]


def _id(name):
    return lambda value: f"{name}={getattr(value, '__name__', value)}"


def _make(input_size, hidden_size, *, dtype=np.float64, seed=0, **kwargs):
    return gru_cy.GRU(input_size, hidden_size, dtype=dtype, seed=seed, **kwargs)


def _params64(gru):
    return {name: np.array(value, dtype=np.float64) for name, value in gru.params.items()}


def _reference(gru, x, h0, lengths, dout, dh_n, *, num_layers, bidirectional, reset_after, bias,
               dropout_masks=None, go_backwards=False):
    """Reference forward + backward in float64 for time-major batched arrays."""
    as64 = lambda a: None if a is None else np.asarray(a, dtype=np.float64)  # noqa: E731
    out, h_n, cache = ref_gru_forward(as64(x), _params64(gru), num_layers=num_layers,
                                      bidirectional=bidirectional, reset_after=reset_after,
                                      bias=bias, h0=as64(h0), lengths=lengths,
                                      dropout_masks=dropout_masks, go_backwards=go_backwards)
    dx, dh0, grads = ref_gru_backward(cache, as64(dout), as64(dh_n))
    return out, h_n, dx, dh0, grads


def _check(label, actual, expected, dtype):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape}, expected {expected.shape}"
    assert actual.dtype == np.dtype(dtype), f"{label}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    np.testing.assert_allclose(actual, expected, err_msg=label, **TOLERANCES[dtype])


def _check_all(gru, results, expected, dtype):
    out, h_n, dx, dh0 = results
    e_out, e_h_n, e_dx, e_dh0, e_grads = expected
    _check("out", out, e_out, dtype)
    _check("h_n", h_n, e_h_n, dtype)
    _check("dx", dx, e_dx, dtype)
    _check("dh0", dh0, e_dh0, dtype)
    assert set(gru.grads) == set(e_grads)
    for name, grad in e_grads.items():
        _check(f"grads[{name!r}]", gru.grads[name], grad, dtype)


# ----------------------------------------------------------------------------------------------
# Parameters and gradients: names, shapes, dtypes, initialisation.

@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("bias", [True, False], ids=_id("bias"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
def test_params_and_grads_have_pytorch_names_and_shapes(bidirectional, bias, dtype):
    I, H, L = 3, 5, 2
    D = 2 if bidirectional else 1
    gru = _make(I, H, num_layers=L, bias=bias, bidirectional=bidirectional, dtype=dtype)
    names = param_names(L, bidirectional, bias)
    assert set(gru.params) == set(names)
    assert set(gru.grads) == set(names)
    for name in names:
        k = int(name.split("_l")[1][0])
        if name.startswith("weight_ih"):
            shape = (3 * H, I if k == 0 else D * H)
        elif name.startswith("weight_hh"):
            shape = (3 * H, H)
        else:
            shape = (3 * H,)
        assert gru.params[name].shape == shape, name
        assert gru.grads[name].shape == shape, name
        assert gru.params[name].dtype == np.dtype(dtype), name
        assert gru.grads[name].dtype == np.dtype(dtype), name
        assert np.all(gru.grads[name] == 0), f"fresh grads[{name!r}] not zero"
        bound = 1 / np.sqrt(H)
        assert np.all(np.abs(gru.params[name]) <= bound), f"{name} outside U(-1/sqrt(H), 1/sqrt(H))"
        assert np.unique(gru.params[name]).size > 1, f"{name} not random"


def test_seed_reproduces_parameters():
    a = _make(3, 4, num_layers=2, bidirectional=True, seed=11)
    b = _make(3, 4, num_layers=2, bidirectional=True, seed=11)
    c = _make(3, 4, num_layers=2, bidirectional=True, seed=12)
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    assert any(not np.array_equal(a.params[n], c.params[n]) for n in a.params)


@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_params_are_live(reset_after):
    """Writing into gru.params in place changes the results (the finite-difference tests rely
    on this)."""
    rng = np.random.default_rng(0)
    gru = _make(3, 4, reset_after=reset_after)
    x = rng.standard_normal((4, 2, 3))
    out_before, _ = gru(x)
    gru.params["weight_hh_l0"][...] *= 0.5
    gru.params["bias_ih_l0"][2] += 0.25
    out_after, h_n_after = gru(x)
    assert not np.allclose(out_before, out_after)
    e_out, e_h_n, *_ = _reference(gru, x, None, None, None, None, num_layers=1,
                                  bidirectional=False, reset_after=reset_after, bias=True)
    _check("out", out_after, e_out, np.float64)
    _check("h_n", h_n_after, e_h_n, np.float64)


# ----------------------------------------------------------------------------------------------
# Forward and backward against the reference, time-major batched input.

T_, B_, I_, H_ = 5, 4, 3, 4
LENGTHS = {
    "none": None,
    "full": np.full(B_, T_, dtype=np.int64),
    "mixed": [3, 0, 5, 1],          # unsorted, with a zero length, as a Python list
}


@pytest.mark.parametrize("h0_given", [False, True], ids=lambda v: "h0" if v else "h0=None")
@pytest.mark.parametrize("lengths_kind", list(LENGTHS), ids=_id("lengths"))
@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("bias", [True, False], ids=_id("bias"))
@pytest.mark.parametrize("num_layers", [1, 2], ids=_id("L"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_forward_backward_match_reference(reset_after, bidirectional, num_layers, bias, dtype,
                                          lengths_kind, h0_given):
    rng = np.random.default_rng(42)
    D, L = (2 if bidirectional else 1), num_layers
    lengths = LENGTHS[lengths_kind]
    gru = _make(I_, H_, num_layers=L, bias=bias, bidirectional=bidirectional,
                reset_after=reset_after, dtype=dtype, seed=3)
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    h0 = rng.standard_normal((L * D, B_, H_)).astype(dtype) if h0_given else None
    # dout is nonzero at padded positions too: the module must ignore it there.
    dout = rng.standard_normal((T_, B_, D * H_)).astype(dtype)
    dh_n = rng.standard_normal((L * D, B_, H_)).astype(dtype)
    x_copy, h0_copy = x.copy(), None if h0 is None else h0.copy()

    out, h_n, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)

    expected = _reference(gru, x, h0, lengths, dout, dh_n, num_layers=L,
                          bidirectional=bidirectional, reset_after=reset_after, bias=bias)
    _check_all(gru, (out, h_n, dx, dh0), expected, dtype)
    np.testing.assert_array_equal(x, x_copy, err_msg="x was modified")
    if h0 is not None:
        np.testing.assert_array_equal(h0, h0_copy, err_msg="h0 was modified")

    # Inference equals training exactly without dropout.
    out_inf, h_n_inf = gru(x, h0, lengths)
    np.testing.assert_array_equal(out_inf, out, err_msg="__call__ out != forward_train out")
    np.testing.assert_array_equal(h_n_inf, h_n, err_msg="__call__ h_n != forward_train h_n")


@pytest.mark.parametrize("h0_given", [False, True], ids=lambda v: "h0" if v else "h0=None")
@pytest.mark.parametrize("lengths_kind", list(LENGTHS), ids=_id("lengths"))
@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("bias", [True, False], ids=_id("bias"))
@pytest.mark.parametrize("num_layers", [1, 2], ids=_id("L"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_reverse_only_forward_backward_match_reference(reset_after, num_layers, bias, dtype,
                                                       lengths_kind, h0_given):
    """go_backwards=True: every result and gradient against the reference run in reverse."""
    rng = np.random.default_rng(43)
    L = num_layers
    lengths = LENGTHS[lengths_kind]
    gru = _make(I_, H_, num_layers=L, bias=bias, go_backwards=True, reset_after=reset_after,
                dtype=dtype, seed=4)
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    h0 = rng.standard_normal((L, B_, H_)).astype(dtype) if h0_given else None
    dout = rng.standard_normal((T_, B_, H_)).astype(dtype)
    dh_n = rng.standard_normal((L, B_, H_)).astype(dtype)
    out, h_n, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)
    expected = _reference(gru, x, h0, lengths, dout, dh_n, num_layers=L, bidirectional=False,
                          reset_after=reset_after, bias=bias, go_backwards=True)
    _check_all(gru, (out, h_n, dx, dh0), expected, dtype)
    # ... and it is not the forward-direction result (the check above can tell them apart).
    forward = _reference(gru, x, h0, lengths, dout, dh_n, num_layers=L, bidirectional=False,
                         reset_after=reset_after, bias=bias)
    assert not np.allclose(dx, forward[2], **TOLERANCES[dtype])


@pytest.mark.parametrize("order", ["sorted", "unsorted"])
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
@pytest.mark.parametrize("bidirectional, split", [(False, (1, 0, 0)), (False, (2, 2, 1)),
                                                  (False, (2, 1, 2)), (True, (1, 0, 0)),
                                                  (True, (4, 2, 1))],
                         ids=["go_backwards", "go_backwards-rows", "go_backwards-units",
                              "bidirectional", "bidirectional-rows"])
def test_long_uneven_reverse_runs_match_reference(bidirectional, split, reset_after, order):
    """T = 40 with uneven lengths in the reverse direction (go_backwards or the second direction
    of a bidirectional layer): the kernels then need every time step's input projection at once
    (one chunk); sorted and unsorted batches, on one thread or split over threads."""
    rng = np.random.default_rng(44)
    T, B, I, H, L = 40, 6, 3, 5, 2
    D = 2 if bidirectional else 1
    lengths = np.array([40, 37, 31, 12, 1, 0] if order == "sorted" else [12, 40, 0, 31, 1, 37])
    gru = _make(I, H, num_layers=L, bidirectional=bidirectional, go_backwards=not bidirectional,
                reset_after=reset_after, dtype=np.float64, seed=6)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H))
    dout = rng.standard_normal((T, B, D * H))
    dh_n = rng.standard_normal((L * D, B, H))
    with threads(*split):
        out, h_n, tape = gru.forward_train(x, h0, lengths)
        dx, dh0 = gru.backward(tape, dout, dh_n)
    expected = _reference(gru, x, h0, lengths, dout, dh_n, num_layers=L,
                          bidirectional=bidirectional, reset_after=reset_after, bias=True,
                          go_backwards=not bidirectional)
    _check_all(gru, (out, h_n, dx, dh0), expected, np.float64)
    out_inf, h_n_inf = gru(x, h0, lengths)
    _check("inference out", out_inf, expected[0], np.float64)
    _check("inference h_n", h_n_inf, expected[1], np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_lengths_semantics(reset_after, dtype):
    """Padded outputs are exactly 0, h_n is h0 for a zero length, full lengths equal no lengths,
    and a sequence's results do not depend on the rest of the batch."""
    rng = np.random.default_rng(8)
    L, D = 2, 2
    gru = _make(I_, H_, num_layers=L, bidirectional=True, reset_after=reset_after, dtype=dtype)
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    h0 = rng.standard_normal((L * D, B_, H_)).astype(dtype)
    lengths = np.array([3, 0, 5, 1])
    out, h_n = gru(x, h0, lengths)
    for b, len_b in enumerate(lengths):
        assert np.all(out[len_b:, b] == 0), f"out[{len_b}:, {b}] not zero"
        out_b, h_n_b = gru(x[:len_b, b:b + 1], h0[:, b:b + 1])
        np.testing.assert_allclose(out[:len_b, b:b + 1], out_b, **TOLERANCES[dtype])
        np.testing.assert_allclose(h_n[:, b:b + 1], h_n_b, **TOLERANCES[dtype])
    np.testing.assert_array_equal(h_n[:, 1], h0[:, 1])
    out_full, h_n_full = gru(x, h0, [T_] * B_)
    out_none, h_n_none = gru(x, h0)
    np.testing.assert_array_equal(out_full, out_none)
    np.testing.assert_array_equal(h_n_full, h_n_none)


@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
def test_h0_none_equals_zeros(bidirectional):
    rng = np.random.default_rng(1)
    D = 2 if bidirectional else 1
    gru = _make(I_, H_, num_layers=2, bidirectional=bidirectional)
    x = rng.standard_normal((T_, B_, I_))
    out_none, h_n_none = gru(x)
    out_zero, h_n_zero = gru(x, np.zeros((2 * D, B_, H_)))
    np.testing.assert_array_equal(out_none, out_zero)
    np.testing.assert_array_equal(h_n_none, h_n_zero)


# ----------------------------------------------------------------------------------------------
# Layouts: batch_first and unbatched input.

@pytest.mark.parametrize("lengths", [None, [3, 0, 5, 1]], ids=_id("lengths"))
@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_batch_first(reset_after, bidirectional, dtype, lengths):
    rng = np.random.default_rng(5)
    L, D = 2, (2 if bidirectional else 1)
    gru = _make(I_, H_, num_layers=L, batch_first=True, bidirectional=bidirectional,
                reset_after=reset_after, dtype=dtype)
    x = rng.standard_normal((B_, T_, I_)).astype(dtype)            # (B, T, I)
    h0 = rng.standard_normal((L * D, B_, H_)).astype(dtype)        # h0 stays (L*D, B, H)
    dout = rng.standard_normal((B_, T_, D * H_)).astype(dtype)     # same layout as out
    dh_n = rng.standard_normal((L * D, B_, H_)).astype(dtype)

    out, h_n, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)

    e_out, e_h_n, e_dx, e_dh0, e_grads = _reference(
        gru, x.swapaxes(0, 1), h0, lengths, dout.swapaxes(0, 1), dh_n, num_layers=L,
        bidirectional=bidirectional, reset_after=reset_after, bias=True)
    expected = (e_out.swapaxes(0, 1), e_h_n, e_dx.swapaxes(0, 1), e_dh0, e_grads)
    _check_all(gru, (out, h_n, dx, dh0), expected, dtype)


@pytest.mark.parametrize("h0_given", [False, True], ids=lambda v: "h0" if v else "h0=None")
@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("num_layers", [1, 2], ids=_id("L"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_unbatched(reset_after, bidirectional, num_layers, dtype, h0_given):
    """(T, I) input -> out (T, D*H), h_n (L*D, H); backward takes and returns the same layouts."""
    rng = np.random.default_rng(6)
    L, D = num_layers, (2 if bidirectional else 1)
    gru = _make(I_, H_, num_layers=L, bidirectional=bidirectional, reset_after=reset_after,
                dtype=dtype)
    x = rng.standard_normal((T_, I_)).astype(dtype)
    h0 = rng.standard_normal((L * D, H_)).astype(dtype) if h0_given else None
    dout = rng.standard_normal((T_, D * H_)).astype(dtype)
    dh_n = rng.standard_normal((L * D, H_)).astype(dtype)

    out, h_n, tape = gru.forward_train(x, h0, None)
    dx, dh0 = gru.backward(tape, dout, dh_n)
    out_inf, h_n_inf = gru(x, h0)

    e_out, e_h_n, e_dx, e_dh0, e_grads = _reference(
        gru, x[:, None], None if h0 is None else h0[:, None], None, dout[:, None], dh_n[:, None],
        num_layers=L, bidirectional=bidirectional, reset_after=reset_after, bias=True)
    expected = (e_out[:, 0], e_h_n[:, 0], e_dx[:, 0], e_dh0[:, 0], e_grads)
    _check_all(gru, (out, h_n, dx, dh0), expected, dtype)
    np.testing.assert_array_equal(out_inf, out)
    np.testing.assert_array_equal(h_n_inf, h_n)


# ----------------------------------------------------------------------------------------------
# Empty inputs: T = 0 and B = 0.

EMPTY = [(0, 3), (4, 0), (0, 0)]


@pytest.mark.parametrize("batch_first", [False, True], ids=_id("batch_first"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
@pytest.mark.parametrize("T,B", EMPTY, ids=[f"T={t}-B={b}" for t, b in EMPTY])
def test_empty_forward(T, B, bidirectional, batch_first):
    rng = np.random.default_rng(0)
    L, D = 2, (2 if bidirectional else 1)
    gru = _make(I_, H_, num_layers=L, bidirectional=bidirectional, batch_first=batch_first)
    x = np.zeros((B, T, I_) if batch_first else (T, B, I_))
    out_shape = (B, T, D * H_) if batch_first else (T, B, D * H_)
    h0 = rng.standard_normal((L * D, B, H_))

    out, h_n = gru(x)
    assert out.shape == out_shape and out.dtype == np.float64
    assert h_n.shape == (L * D, B, H_) and h_n.dtype == np.float64
    assert np.all(h_n == 0)

    out, h_n = gru(x, h0)
    assert out.shape == out_shape
    np.testing.assert_array_equal(h_n, h0)       # no step taken: h_n is h0

    out, h_n, _ = gru.forward_train(x, h0, None)
    assert out.shape == out_shape
    np.testing.assert_array_equal(h_n, h0)


@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
@pytest.mark.parametrize("T,B", EMPTY, ids=[f"T={t}-B={b}" for t, b in EMPTY])
def test_empty_backward(T, B, bidirectional):
    rng = np.random.default_rng(0)
    L, D = 2, (2 if bidirectional else 1)
    gru = _make(I_, H_, num_layers=L, bidirectional=bidirectional)
    x = np.zeros((T, B, I_))
    h0 = rng.standard_normal((L * D, B, H_))
    dh_n = rng.standard_normal((L * D, B, H_))
    _, _, tape = gru.forward_train(x, h0, None)
    dx, dh0 = gru.backward(tape, np.zeros((T, B, D * H_)), dh_n)
    assert dx.shape == (T, B, I_)
    np.testing.assert_array_equal(dh0, dh_n)     # h_n is h0, so dh0 is dh_n
    for name, grad in gru.grads.items():
        assert np.all(grad == 0), name


def test_unbatched_empty():
    gru = _make(I_, H_, bidirectional=True)
    out, h_n = gru(np.zeros((0, I_)))
    assert out.shape == (0, 2 * H_)
    assert h_n.shape == (2, H_)


# ----------------------------------------------------------------------------------------------
# backward(): accumulation, zero_grad, None gradients.

def _trained(reset_after=True, dtype=np.float64, seed=2):
    rng = np.random.default_rng(seed)
    L, D = 2, 2
    gru = _make(I_, H_, num_layers=L, bidirectional=True, reset_after=reset_after, dtype=dtype)
    x = rng.standard_normal((T_, B_, I_)).astype(dtype)
    h0 = rng.standard_normal((L * D, B_, H_)).astype(dtype)
    dout = rng.standard_normal((T_, B_, D * H_)).astype(dtype)
    dh_n = rng.standard_normal((L * D, B_, H_)).astype(dtype)
    lengths = [3, 0, 5, 1]
    return gru, x, h0, lengths, dout, dh_n


@pytest.mark.parametrize("dtype", DTYPES, ids=_id("dtype"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_backward_accumulates_and_zero_grad_resets(reset_after, dtype):
    gru, x, h0, lengths, dout, dh_n = _trained(reset_after, dtype)
    _, _, tape = gru.forward_train(x, h0, lengths)
    dx1, dh01 = gru.backward(tape, dout, dh_n)
    once = {name: g.copy() for name, g in gru.grads.items()}
    assert any(np.any(g != 0) for g in once.values())
    dx2, dh02 = gru.backward(tape, dout, dh_n)       # the same tape again
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-14)
    for name, g in gru.grads.items():
        np.testing.assert_allclose(g, 2 * once[name], err_msg=f"grads[{name!r}] after 2 backward",
                                   **tol)
    # dx and dh0 are returned fresh, not accumulated.
    np.testing.assert_allclose(dx2, dx1, **tol)
    np.testing.assert_allclose(dh02, dh01, **tol)

    gru.zero_grad()
    for name, g in gru.grads.items():
        assert np.all(g == 0), f"grads[{name!r}] after zero_grad"
    gru.backward(tape, dout, dh_n)
    for name, g in gru.grads.items():
        np.testing.assert_allclose(g, once[name], err_msg=name, **tol)


@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_backward_none_means_zeros(reset_after):
    gru, x, h0, lengths, dout, dh_n = _trained(reset_after)
    _, _, tape = gru.forward_train(x, h0, lengths)

    def run(dout_arg, dh_n_arg, *positional):
        gru.zero_grad()
        if positional:
            dx, dh0 = gru.backward(tape, dout_arg)
        else:
            dx, dh0 = gru.backward(tape, dout_arg, dh_n_arg)
        return dx, dh0, {name: g.copy() for name, g in gru.grads.items()}

    pairs = [
        ("dout=None", run(None, dh_n), run(np.zeros_like(dout), dh_n)),
        ("dh_n=None", run(dout, None), run(dout, np.zeros_like(dh_n))),
        ("dh_n omitted", run(dout, None, "positional"), run(dout, np.zeros_like(dh_n))),
    ]
    for label, got, want in pairs:
        np.testing.assert_array_equal(got[0], want[0], err_msg=f"{label}: dx")
        np.testing.assert_array_equal(got[1], want[1], err_msg=f"{label}: dh0")
        for name in want[2]:
            np.testing.assert_array_equal(got[2][name], want[2][name], err_msg=f"{label}: {name}")
    dx, dh0, grads = run(None, None)
    assert np.all(dx == 0) and np.all(dh0 == 0)
    assert all(np.all(g == 0) for g in grads.values())


# ----------------------------------------------------------------------------------------------
# Central finite differences on the module itself (float64).

def _module_loss(gru, x, h0, lengths, dout, dh_n):
    out, h_n, _ = gru.forward_train(x, h0, lengths)
    return float(np.sum(out * dout) + np.sum(h_n * dh_n))


def _numeric_gradient(array, loss, eps=1e-6):
    """Central differences of loss() with respect to `array`, perturbed in place."""
    numeric = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + eps
        plus = loss()
        array[idx] = saved - eps
        minus = loss()
        array[idx] = saved
        numeric[idx] = (plus - minus) / (2 * eps)
    return numeric


FD_TOL = dict(rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("bias", [True, False], ids=_id("bias"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_module_gradients_match_finite_differences(reset_after, bias):
    rng = np.random.default_rng(77)
    T, B, I, H, L, D = 4, 3, 3, 4, 2, 2
    gru = _make(I, H, num_layers=L, bias=bias, bidirectional=True, reset_after=reset_after,
                dtype=np.float64, seed=5)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * D, B, H))
    dout = rng.standard_normal((T, B, D * H))
    dh_n = rng.standard_normal((L * D, B, H))
    lengths = [4, 0, 2]

    gru.zero_grad()
    _, _, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)
    grads = {name: g.copy() for name, g in gru.grads.items()}

    def loss():
        return _module_loss(gru, x, h0, lengths, dout, dh_n)

    np.testing.assert_allclose(dx, _numeric_gradient(x, loss), err_msg="dx", **FD_TOL)
    np.testing.assert_allclose(dh0, _numeric_gradient(h0, loss), err_msg="dh0", **FD_TOL)
    for name in gru.params:
        # gru.params is live (test_params_are_live), so perturbing it in place perturbs the module.
        numeric = _numeric_gradient(gru.params[name], loss)
        np.testing.assert_allclose(grads[name], numeric, err_msg=f"grads[{name!r}]", **FD_TOL)


@pytest.mark.parametrize("bias", [True, False], ids=_id("bias"))
@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
def test_reverse_only_gradients_match_finite_differences(reset_after, bias):
    rng = np.random.default_rng(78)
    T, B, I, H, L = 4, 3, 3, 4, 2
    gru = _make(I, H, num_layers=L, bias=bias, go_backwards=True, reset_after=reset_after,
                dtype=np.float64, seed=7)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L, B, H))
    dout = rng.standard_normal((T, B, H))
    dh_n = rng.standard_normal((L, B, H))
    lengths = [4, 0, 2]

    gru.zero_grad()
    _, _, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)
    grads = {name: g.copy() for name, g in gru.grads.items()}

    def loss():
        return _module_loss(gru, x, h0, lengths, dout, dh_n)

    np.testing.assert_allclose(dx, _numeric_gradient(x, loss), err_msg="dx", **FD_TOL)
    np.testing.assert_allclose(dh0, _numeric_gradient(h0, loss), err_msg="dh0", **FD_TOL)
    for name in gru.params:
        numeric = _numeric_gradient(gru.params[name], loss)
        np.testing.assert_allclose(grads[name], numeric, err_msg=f"grads[{name!r}]", **FD_TOL)


# ----------------------------------------------------------------------------------------------
# Dropout (between layers, training only).
#
# The dropout mask is not part of the API, so these tests rely only on this: two freshly built
# modules with the same seed and config draw the same mask on their first forward_train call, and
# that mask does not depend on the parameter values (load_state_dict draws no random numbers).
# The mask is then held fixed by rebuilding a fresh module for every forward_train evaluation.

P = 0.5
DROP_CFG = dict(input_size=3, hidden_size=3, num_layers=2, dropout=P, dtype=np.float64, seed=21)


def _fresh(state=None, **overrides):
    cfg = dict(DROP_CFG, **overrides)
    gru = gru_cy.GRU(cfg.pop("input_size"), cfg.pop("hidden_size"), **cfg)
    if state is not None:
        gru.load_state_dict(state)
    return gru


def _drop_inputs(bidirectional, T=4, B=3, seed=4):
    rng = np.random.default_rng(seed)
    D, H, L = (2 if bidirectional else 1), DROP_CFG["hidden_size"], DROP_CFG["num_layers"]
    return (rng.standard_normal((T, B, DROP_CFG["input_size"])),
            rng.standard_normal((L * D, B, H)),
            rng.standard_normal((T, B, D * H)),
            rng.standard_normal((L * D, B, H)))


def _recover_mask(bidirectional, reset_after, x, h0, lengths):
    """The layer-0 dropout mask of a fresh module's first forward_train, read off the output of a
    layer 1 rigged to be memoryless and elementwise: W_hh = 0, b_hh = 0, z ~ 0 (b_iz = -60) and
    W_in selecting this direction's own input slice, so out_1[t] = tanh(mask * y_0[t]).
    Returns (mask, layer-0 output without dropout, out_1)."""
    gru = _fresh(bidirectional=bidirectional, reset_after=reset_after)
    H = DROP_CFG["hidden_size"]
    D = 2 if bidirectional else 1
    state = gru.state_dict()
    for d, suffix in enumerate(("", "_reverse")[:D]):
        w_ih = np.zeros((3 * H, D * H))
        w_ih[2 * H:, d * H:(d + 1) * H] = np.eye(H)
        b_ih = np.zeros(3 * H)
        b_ih[H:2 * H] = -60.0
        state[f"weight_ih_l1{suffix}"] = w_ih
        state[f"weight_hh_l1{suffix}"] = np.zeros((3 * H, H))
        state[f"bias_ih_l1{suffix}"] = b_ih
        state[f"bias_hh_l1{suffix}"] = np.zeros(3 * H)
    gru.load_state_dict(state)
    out_1, _, _ = gru.forward_train(x, h0, lengths)
    layer0 = {k: v for k, v in _params64(gru).items() if "_l0" in k}
    y_0, _, _ = ref_gru_forward(x, layer0, num_layers=1, bidirectional=bidirectional,
                                reset_after=reset_after, bias=True, h0=h0[:D], lengths=lengths)
    # Dropped entries give |out_1| <= z * |h_prev| (about 1e-26); kept ones tanh(2 y_0), far above.
    mask = np.where(np.abs(out_1) > 1e-6, 1.0 / (1.0 - P), 0.0)
    return mask, y_0, out_1


def _same_seed_reproducible(bidirectional, reset_after, x, h0, lengths):
    a = _fresh(bidirectional=bidirectional, reset_after=reset_after)
    b = _fresh(bidirectional=bidirectional, reset_after=reset_after)
    return all(np.array_equal(u, v) for u, v in
               zip(a.forward_train(x, h0, lengths)[:2], b.forward_train(x, h0, lengths)[:2]))


@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
def test_dropout_training_differs_from_inference(bidirectional):
    x, h0, _, _ = _drop_inputs(bidirectional, T=6, B=5)
    D = 2 if bidirectional else 1
    gru = _fresh(bidirectional=bidirectional)
    out_inf, h_n_inf = gru(x, h0)
    out_inf2, h_n_inf2 = gru(x, h0)
    np.testing.assert_array_equal(out_inf, out_inf2, err_msg="inference is not deterministic")
    out_tr, h_n_tr, _ = gru.forward_train(x, h0)
    assert not np.allclose(out_tr, out_inf), "forward_train with dropout=0.5 equals __call__"
    # Dropout acts between layers: layer 0's final state is untouched, layer 1's is not.
    np.testing.assert_allclose(h_n_tr[:D], h_n_inf[:D], rtol=1e-12, atol=1e-14)
    assert not np.allclose(h_n_tr[D:], h_n_inf[D:])
    # Inference equals the reference without dropout.
    e_out, e_h_n, *_ = _reference(gru, x, h0, None, None, None, num_layers=2,
                                  bidirectional=bidirectional, reset_after=True, bias=True)
    _check("out (__call__, dropout=0.5)", out_inf, e_out, np.float64)
    _check("h_n (__call__, dropout=0.5)", h_n_inf, e_h_n, np.float64)


@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
def test_dropout_reproducible_with_seed(bidirectional):
    x, h0, _, _ = _drop_inputs(bidirectional)
    a, b = _fresh(bidirectional=bidirectional), _fresh(bidirectional=bidirectional)
    for call in range(2):            # the first and the second draw both agree
        out_a, h_n_a, _ = a.forward_train(x, h0)
        out_b, h_n_b, _ = b.forward_train(x, h0)
        np.testing.assert_array_equal(out_a, out_b, err_msg=f"call {call}: out")
        np.testing.assert_array_equal(h_n_a, h_n_b, err_msg=f"call {call}: h_n")


@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
def test_dropout_matches_reference_with_recovered_mask(bidirectional, reset_after):
    """Recover the mask (see _recover_mask), check it is inverted dropout (values 0 or 1/(1-p) on
    layer 0's output), then compare forward_train and backward of a fresh same-seed module with
    its real parameters to the reference run with that mask."""
    x, h0, dout, dh_n = _drop_inputs(bidirectional, T=6, B=5)
    lengths = [6, 2, 0, 5, 3]
    if not _same_seed_reproducible(bidirectional, reset_after, x, h0, lengths):
        pytest.skip("same-seed modules draw different dropout masks; mask cannot be recovered")
    mask, y_0, out_1 = _recover_mask(bidirectional, reset_after, x, h0, lengths)
    np.testing.assert_allclose(out_1, np.tanh(mask * y_0), rtol=1e-10, atol=1e-7,
                               err_msg="layer-1 input is not layer-0 output * {0, 1/(1-p)}")
    valid = np.arange(x.shape[0])[:, None] < np.array(lengths)[None, :]
    kept = (mask[valid] != 0).mean()
    assert 0.2 < kept < 0.8, f"fraction kept {kept:.2f} with p={P}"

    gru = _fresh(bidirectional=bidirectional, reset_after=reset_after)
    gru.zero_grad()
    out, h_n, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)
    expected = _reference(gru, x, h0, lengths, dout, dh_n, num_layers=2,
                          bidirectional=bidirectional, reset_after=reset_after, bias=True,
                          dropout_masks=[mask])
    _check_all(gru, (out, h_n, dx, dh0), expected, np.float64)


@pytest.mark.parametrize("reset_after", [True, False], ids=_id("reset_after"))
@pytest.mark.parametrize("bidirectional", [False, True], ids=_id("bidirectional"))
def test_dropout_gradients_match_finite_differences(bidirectional, reset_after):
    """Finite differences with the mask held fixed: every loss evaluation rebuilds a fresh module
    with the same seed, loads the (perturbed) parameters and runs its first forward_train."""
    x, h0, dout, dh_n = _drop_inputs(bidirectional, T=3, B=3)
    lengths = [3, 0, 2]
    if not _same_seed_reproducible(bidirectional, reset_after, x, h0, lengths):
        pytest.skip("same-seed modules draw different dropout masks; mask cannot be held fixed")
    gru = _fresh(bidirectional=bidirectional, reset_after=reset_after)
    state = gru.state_dict()
    gru.zero_grad()
    _, _, tape = gru.forward_train(x, h0, lengths)
    dx, dh0 = gru.backward(tape, dout, dh_n)

    def loss():
        fresh = _fresh(state, bidirectional=bidirectional, reset_after=reset_after)
        return _module_loss(fresh, x, h0, lengths, dout, dh_n)

    np.testing.assert_allclose(dx, _numeric_gradient(x, loss), err_msg="dx", **FD_TOL)
    np.testing.assert_allclose(dh0, _numeric_gradient(h0, loss), err_msg="dh0", **FD_TOL)
    for name in state:
        numeric = _numeric_gradient(state[name], loss)
        np.testing.assert_allclose(gru.grads[name], numeric, err_msg=f"grads[{name!r}]", **FD_TOL)
