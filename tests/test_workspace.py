"""The kernels' workspaces and tapes: the extension keeps the workspace its
last call released and the tape block the last freed tape held, and hands
them to the next call (rc_work.c). A reused block holds whatever the
previous call left in it, of any shape or type; no result may depend on
that. Each call below is repeated after other
calls that filled the cached block with their own data, and must give the
same bits as the first time.

(Reads of workspace memory nothing wrote are caught separately: the suite
run with GRU_CY_POISON=1 fills every workspace with NaN.)
"""

import numpy as np
import pytest

import gru_cy
from helpers import same_bits

CELLS = [
    ("GRU", {}),
    ("RNN", {}),
    ("LSTM", {}),
    ("LSTM", {"proj_size": 5}),
]


def _module(name, kw, I, H, dtype, **more):
    return getattr(gru_cy, name)(I, H, dtype=dtype, seed=3, **kw, **more)


def _flat(result):
    """out and the final state(s) of a forward call as a list of arrays."""
    out, h_n = result
    return [out, *(h_n if isinstance(h_n, tuple) else (h_n,))]


def _train(m, x, dout_seed=0):
    """out, h_n, dx and every gradient of one training step."""
    m.zero_grad()
    out, h_n, tape = m.forward_train(x)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape).astype(m.dtype)
    dx, _ = m.backward(tape, dout)
    return [*_flat((out, h_n)), dx, *(m.grads[k].copy() for k in sorted(m.grads))]


def _disturb(name, kw):
    """Calls of other shapes and both types: the cached block ends up larger
    than the small calls need and full of other numbers."""
    rng = np.random.default_rng(9)
    for dtype in (np.float64, np.float32):
        big = _module(name, kw, 24, 40, dtype, num_layers=2, bidirectional=True)
        xb = rng.standard_normal((60, 33, 24)).astype(dtype) * 3
        big(xb)
        _train(big, xb, dout_seed=5)


@pytest.mark.parametrize("name,kw", CELLS, ids=[c[0] + ("-proj" if c[1] else "") for c in CELLS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_earlier_calls(name, kw, dtype):
    m = _module(name, kw, 7, 11, dtype, num_layers=2)
    x = np.random.default_rng(1).standard_normal((13, 6, 7)).astype(dtype)
    first = _flat(m(x)) + _train(m, x)
    _disturb(name, kw)
    again = _flat(m(x)) + _train(m, x)
    assert len(first) == len(again)
    for a, b in zip(first, again):
        assert same_bits(a, b)


def test_uneven_lengths_after_a_larger_call():
    # Padded steps must read as zeros in the tapes and outputs even when the
    # workspace was last filled by a call over full lengths.
    m = gru_cy.LSTM(5, 9, seed=0)
    x = np.random.default_rng(2).standard_normal((10, 4, 5)).astype(np.float32)
    lengths = np.array([10, 3, 7, 1])
    out1, _ = m(x, None, lengths)
    _disturb("LSTM", {})
    out2, _ = m(x, None, lengths)
    assert same_bits(out1, out2)
    for b, n in enumerate(lengths):
        assert not out2[n:, b].any()


def test_a_freed_tape_block_serves_the_next_tape():
    from gru_cy.kernels import _core
    a = _core.tape_empty(1000, np.float32)
    where = a.ctypes.data
    assert where % 64 == 0 and a.dtype == np.float32 and a.shape == (1000,)
    del a
    b = _core.tape_empty(300, np.float64)               # smaller: the same block
    assert b.ctypes.data == where
    c = _core.tape_empty(10, np.float32)                # the slot is empty now
    assert c.ctypes.data != where
    with pytest.raises(TypeError):
        _core.tape_empty(10, np.int32)
    with pytest.raises(ValueError):
        _core.tape_empty(-1, np.float32)


def test_training_with_uneven_lengths_on_a_reused_tape():
    # The tape rows of padded times must be zeros for the weight gradients
    # even when the tape block last held another call's numbers.
    m = gru_cy.GRU(5, 9, num_layers=2, bidirectional=True, seed=0)
    x = np.random.default_rng(2).standard_normal((10, 4, 5)).astype(np.float32)
    lengths = np.array([10, 3, 7, 1])

    def grads():
        m.zero_grad()
        out, _, tape = m.forward_train(x, None, lengths)
        dx, _ = m.backward(tape, np.ones_like(out))
        return [dx] + [m.grads[k].copy() for k in sorted(m.grads)]

    first = grads()
    _disturb("GRU", {})
    for a, b in zip(first, grads()):
        assert same_bits(a, b)
