"""PyTorch's keyword for the state: ``hx`` on the GRU, the RNN and the LSTM, in
``__call__``, ``forward`` (the same), ``forward_train`` and ``step``; the GRU's and
the RNN's older names ``h0`` / ``h`` stay as aliases (both at once is an error);
positional calls are unchanged. The Jordan network keeps ``y0`` / ``y``.
"""

import numpy as np
import pytest

import gru_cy
from helpers import same_bits

T, B, I, H = 4, 3, 2, 5


def _data(L=2, dtype=np.float64):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((T, B, I)).astype(dtype),
            rng.standard_normal((L, B, H)).astype(dtype))


def _all_same(results):
    first = results[0]
    for other in results[1:]:
        for a, b in zip(first, other):
            assert same_bits(a, b)


@pytest.mark.parametrize("cls", [gru_cy.GRU, gru_cy.RNN])
def test_hx_and_its_aliases(cls):
    m = cls(I, H, num_layers=2, dtype=np.float64, seed=0)
    x, h = _data()
    lengths = [4, 2, 3]
    # a non-trivial state: the results must depend on it
    assert not np.allclose(m(x, h)[0], m(x)[0])
    _all_same([m(x, h), m(x, hx=h), m(x, h0=h), m.forward(x, hx=h), m.forward(x, h0=h)])
    _all_same([m(x, h, lengths), m(x, hx=h, lengths=lengths), m(x, h0=h, lengths=lengths)])
    trained = [m.forward_train(x, h)[:2], m.forward_train(x, hx=h)[:2],
               m.forward_train(x, h0=h)[:2]]
    _all_same(trained)
    steps = [m.step(x[0], h), m.step(x[0], hx=h), m.step(x[0], h=h)]
    _all_same([(s[0], s[1]) for s in steps])
    for call in (lambda: m(x, h, h0=h), lambda: m(x, hx=h, h0=h),
                 lambda: m.forward_train(x, hx=h, h0=h), lambda: m.step(x[0], hx=h, h=h)):
        with pytest.raises(TypeError, match="not both"):
            call()


def test_lstm_takes_hx_and_no_alias():
    m = gru_cy.LSTM(I, H, dtype=np.float64, seed=0)
    x, h = _data(L=1)
    c = h * 0.5
    _all_same([m(x, (h, c))[1], m(x, hx=(h, c))[1], m.forward_train(x, hx=(h, c))[1]])
    assert same_bits(m.step(x[0], hx=(h, c))[0], m.step(x[0], (h, c))[0])
    with pytest.raises(TypeError):
        m(x, h0=(h, c))


def test_jordan_keeps_y0_and_y():
    j = gru_cy.Jordan(I, H, 3, dtype=np.float64, seed=0)
    x = _data()[0]
    y0 = np.random.default_rng(1).standard_normal((1, B, 3))
    _all_same([j(x, y0), j(x, y0=y0), j.forward_train(x, y0=y0)[:2]])
    _all_same([j.step(x[0], y0), j.step(x[0], y=y0)])
    with pytest.raises(TypeError):
        j(x, hx=y0)
