"""Uneven lengths: the batch sorted by decreasing length, products over the running rows only.

With uneven lengths the kernels multiply, at each step, only the rows of the sequences still
running, which requires the batch in decreasing order of length: batches already in that
order run as they are, others are sorted (when enough rows finish early) and the results put
back in the caller's order. Every case is checked against the NumPy reference and against the
same calls with the sorting turned off, over directions, layers, both variants, dropout, bias,
reverse-only modules, batch_first, the batch split, lengths of 0 and B = 1. (With dropout the
random masks keep the reference to inference; training is compared with the unsorted run.)
"""

import numpy as np
import pytest

import gru_cy
from gru_cy.nn import base as _base
from helpers import threads
from reference import ref_gru_backward, ref_gru_forward

TOL = dict(rtol=1e-10, atol=1e-12)


def test_length_order_decisions():
    order = _base._length_order
    assert order(np.array([5, 5, 5]), True) is None              # full lengths
    assert order(np.array([3]), False) is None                   # one row
    assert order(np.array([9, 7, 7, 2, 0]), False) is None       # already decreasing
    assert order(np.array([9, 9, 9, 9, 9, 9, 9, 9, 9, 8]), False) is None  # already decreasing
    assert order(np.array([8, 9, 9, 9, 9, 9, 9, 9, 9, 9]), False) is None  # little to skip
    assert order(np.array([0, 0, 0]), False) is None             # nothing runs
    np.testing.assert_array_equal(order(np.array([2, 9, 5, 9, 0]), False), [1, 3, 2, 0, 4])


def _run(gru, x, lengths, dout, dh_n):
    out, h_n = gru(x, lengths=lengths)
    t_out, t_h, tape = gru.forward_train(x, lengths=lengths)
    gru.zero_grad()
    dx, dh0 = gru.backward(tape, dout, dh_n)
    return [out, h_n, t_out, t_h, dx, dh0] + [gru.grads[k] for k in sorted(gru.grads)]


CASES = [
    dict(),
    dict(bidirectional=True),
    dict(num_layers=2, reset_after=False),
    dict(num_layers=3, dropout=0.4),
    dict(bias=False, bidirectional=True, num_layers=2),
    dict(go_backwards=True),
    dict(batch_first=True),
]


@pytest.mark.parametrize("module", CASES, ids=lambda m: "-".join(f"{k}={v}" for k, v in m.items())
                         or "default")
@pytest.mark.parametrize("lengths", [[3, 9, 0, 5, 9, 1], [9, 8, 5, 5, 1, 0]],
                         ids=["unsorted", "sorted"])
def test_sorted_run_equals_unsorted_run(module, lengths, monkeypatch):
    T, B, I, H = 9, len(lengths), 3, 4
    rng = np.random.default_rng(len(module))
    x = rng.standard_normal((B, T, I) if module.get("batch_first") else (T, B, I))
    lengths = np.array(lengths)
    results = {}
    for sort in (True, False):
        if not sort:
            monkeypatch.setattr(_base, "_length_order", lambda lengths, full: None)
        gru = gru_cy.GRU(I, H, dtype=np.float64, seed=3, **module)
        out_shape = (B, T, gru.num_directions * H) if gru.batch_first else (
            T, B, gru.num_directions * H)
        dout = np.random.default_rng(1).standard_normal(out_shape)
        dh_n = np.random.default_rng(2).standard_normal(
            (gru.num_layers * gru.num_directions, B, H))
        results[sort] = _run(gru, x, lengths, dout, dh_n)
    for i, (a, b) in enumerate(zip(results[True], results[False])):
        np.testing.assert_allclose(a, b, err_msg=f"result {i}", **TOL)
    _check_against_reference(gru, x, lengths, dout, dh_n, results[True])


def _check_against_reference(gru, x, lengths, dout, dh_n, results):
    """The sorted run's results (as _run returns them) against the NumPy reference. With
    dropout the masks are random: inference only (training was compared with the unsorted run
    above)."""
    tm = (lambda a: a.transpose(1, 0, 2)) if gru.batch_first else (lambda a: a)
    e_out, e_h, cache = ref_gru_forward(tm(x), gru.params, num_layers=gru.num_layers,
                                        bidirectional=gru.bidirectional,
                                        reset_after=gru.reset_after, bias=gru.bias,
                                        lengths=lengths, go_backwards=gru.go_backwards)
    out, h_n, t_out, t_h, dx, dh0 = results[:6]
    checks = [("out", tm(out), e_out), ("h_n", h_n, e_h)]
    if gru.dropout == 0:
        e_dx, e_dh0, e_grads = ref_gru_backward(cache, tm(dout), dh_n)
        checks += [("train out", tm(t_out), e_out), ("train h_n", t_h, e_h),
                   ("dx", tm(dx), e_dx), ("dh0", dh0, e_dh0)]
        checks += [(f"grads[{k!r}]", g, e_grads[k]) for k, g in zip(sorted(gru.grads),
                                                                    results[6:])]
    for label, got, want in checks:
        np.testing.assert_allclose(got, want, err_msg=label, **TOL)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("lengths", [[3, 9, 0, 5, 9, 1], [9, 8, 5, 5, 1, 0], [4]])
def test_sorted_lengths_match_the_reference(lengths, bidirectional):
    T, I, H, L = 9, 3, 5, 2
    B = len(lengths)
    rng = np.random.default_rng(B)
    gru = gru_cy.GRU(I, H, num_layers=L, bidirectional=bidirectional, dtype=np.float64, seed=4)
    x = rng.standard_normal((T, B, I))
    h0 = rng.standard_normal((L * gru.num_directions, B, H))
    lengths = np.array(lengths)
    out, h_n, tape = gru.forward_train(x, h0, lengths=lengths)
    dout = rng.standard_normal(out.shape)
    dh_n = rng.standard_normal(h_n.shape)
    gru.zero_grad()
    dx, dh0 = gru.backward(tape, dout, dh_n)
    e_out, e_h, cache = ref_gru_forward(x, gru.params, num_layers=L, bidirectional=bidirectional,
                                        reset_after=True, bias=True, h0=h0, lengths=lengths)
    e_dx, e_dh0, e_grads = ref_gru_backward(cache, dout, dh_n)
    for got, want in [(out, e_out), (h_n, e_h), (dx, e_dx), (dh0, e_dh0)] + [
            (gru.grads[k], g) for k, g in e_grads.items()]:
        np.testing.assert_allclose(got, want, **TOL)
    inf_out, inf_h = gru(x, h0, lengths=lengths)
    np.testing.assert_allclose(inf_out, e_out, **TOL)
    np.testing.assert_allclose(inf_h, e_h, **TOL)


@pytest.mark.parametrize("split", [(2, 2, 1), (3, 3, 1), (2, 1, 2)])
def test_sorted_rows_split_over_threads(split):
    # Each thread's rows skip their own finished sequences.
    T, I, H = 8, 3, 40
    lengths = np.array([1, 8, 3, 0, 8, 2, 5, 7])
    rng = np.random.default_rng(7)
    x = rng.standard_normal((T, len(lengths), I))
    gru = gru_cy.GRU(I, H, dtype=np.float64, seed=5)
    with threads(*split):
        out, h_n, tape = gru.forward_train(x, lengths=lengths)
        assert tape.parts[0][-1] is not None        # the kernels ran a sorted batch
        dout = rng.standard_normal(out.shape)
        dx, dh0 = gru.backward(tape, dout)
    e_out, e_h, cache = ref_gru_forward(x, gru.params, num_layers=1, bidirectional=False,
                                        reset_after=True, bias=True, lengths=lengths)
    e_dx, e_dh0, e_grads = ref_gru_backward(cache, dout, None)
    for got, want in [(out, e_out), (h_n, e_h), (dx, e_dx), (dh0, e_dh0)] + [
            (gru.grads[k], g) for k, g in e_grads.items()]:
        np.testing.assert_allclose(got, want, **TOL)
