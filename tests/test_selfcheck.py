"""The package's own NumPy GRU (gru_cy._reference, used by `python -m gru_cy`'s
self-check and by the benchmark's NumPy peer) against the independent test
reference, and the rule that the package carries only that one.
"""

import os

import numpy as np
import pytest

import gru_cy
from gru_cy._reference import numpy_layer_backward, numpy_layer_forward
from gru_cy._selfcheck import self_check
from reference import random_params, ref_gru_backward, ref_gru_forward

TOL = dict(rtol=1e-12, atol=1e-13)


def _args(params):
    return [params[f"{n}_l0"] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, [6, 2, 0, 5]])
def test_package_reference_forward_matches_the_test_reference(lengths, reverse, reset_after):
    rng = np.random.default_rng(1)
    T, B, I, H = 6, 4, 3, 5
    params = random_params(rng, I, H)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    lens = None if lengths is None else np.array(lengths)
    out, h_n, _ = numpy_layer_forward(x, *_args(params), h0, reset_after, reverse, lens)
    if reverse:
        # The test reference's reverse direction is the second of a bidirectional layer.
        params = dict(params, **{k + "_reverse": v for k, v in params.items()})
        want, want_h, _ = ref_gru_forward(x, params, num_layers=1, bidirectional=True,
                                          reset_after=reset_after, bias=True,
                                          h0=np.stack([h0, h0]), lengths=lens)
        want, want_h = want[..., H:], want_h[1]
    else:
        want, want_h, _ = ref_gru_forward(x, params, num_layers=1, bidirectional=False,
                                          reset_after=reset_after, bias=True, h0=h0[None],
                                          lengths=lens)
        want_h = want_h[0]
    np.testing.assert_allclose(out, want, **TOL)
    np.testing.assert_allclose(h_n, want_h, **TOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_package_reference_backward_matches_the_test_reference(reset_after):
    rng = np.random.default_rng(2)
    T, B, I, H = 6, 3, 4, 5
    params = random_params(rng, I, H)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((B, H))
    dout = rng.standard_normal((T, B, H))
    dh_n = rng.standard_normal((B, H))
    w = _args(params)
    _, _, saved = numpy_layer_forward(x, *w, h0, reset_after, False, None, keep=True)
    got = numpy_layer_backward(dout, dh_n, saved, x, w[0], w[1], reset_after)
    _, _, cache = ref_gru_forward(x, params, num_layers=1, bidirectional=False,
                                  reset_after=reset_after, bias=True, h0=h0[None])
    dx, dh0, grads = ref_gru_backward(cache, dout, dh_n[None])
    want = (dx, dh0[0]) + tuple(grads[f"{n}_l0"] for n in
                                ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    for g, w_ in zip(got, want):
        np.testing.assert_allclose(g, w_, **TOL)


@pytest.mark.parametrize("reset_after", [True, False])
def test_self_check_passes(reset_after):
    assert self_check(reset_after=reset_after, dtype=np.float64) <= 1e-12
    assert self_check(reset_after=reset_after, dtype=np.float32) <= 1e-5


def test_one_numpy_gru_in_the_package():
    """Only gru_cy/_reference.py computes a GRU cell in NumPy: the one file
    with both a tanh in NumPy and the recurrent weight."""
    root = os.path.dirname(gru_cy.__file__)
    holders = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    text = f.read()
                if "np.tanh(" in text and "w_hh" in text.lower():
                    holders.append(os.path.relpath(path, root))
    assert holders == ["_reference.py"], holders
