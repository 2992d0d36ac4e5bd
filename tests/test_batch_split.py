"""Batch halves on two threads (RNNBase._batch_split) against the unsplit run.

With two or more BLAS threads, large unidirectional calls run two halves of the batch at once.
Here the split is forced (thresholds lowered, the BLAS thread count reported as 2) so that it
runs whatever the machine, and every result is compared with the same call unsplit and with
the NumPy reference: outputs, final states, input and state gradients, accumulated parameter
gradients, with uneven lengths, dropout, layers, both variants, reverse-only, batch_first and
odd batch sizes. (With dropout the random masks keep the reference to inference; training is
compared with the unsplit run.)
"""

import numpy as np
import pytest

import gru_cy
from gru_cy.nn import base as _base
from reference import ref_gru_backward, ref_gru_forward

TOL = dict(rtol=1e-11, atol=1e-12)


@pytest.fixture
def force_split(monkeypatch):
    def enable(on):
        if on:
            monkeypatch.setattr(_base, "MIN_HALF_BATCH", 1)
            monkeypatch.setattr(_base, "MIN_MULTIPLY_ADDS", 0)
            monkeypatch.setattr(_base, "thread_budget", lambda: 2)
        else:
            monkeypatch.setattr(_base, "MIN_HALF_BATCH", 10**9)
    return enable


def _run(gru, x, h0, lengths, dout, dh_n):
    out, h_n = gru(x, h0, lengths=lengths)
    t_out, t_h, tape = gru.forward_train(x, h0, lengths=lengths)
    gru.zero_grad()
    dx, dh0 = gru.backward(tape, dout, dh_n)
    dx2, dh02 = gru.backward(tape, dout, dh_n)  # a tape may be used twice: grads add up
    return [out, h_n, t_out, t_h, dx, dh0, dx2, dh02] + [gru.grads[k] for k in sorted(gru.grads)]


CASES = [
    dict(B=6, module=dict(), lengths=None),
    dict(B=5, module=dict(reset_after=False), lengths=[7, 3, 0, 7, 1]),
    dict(B=4, module=dict(num_layers=3, dropout=0.5), lengths=None),
    dict(B=7, module=dict(num_layers=2, bias=False), lengths=[1, 2, 3, 4, 5, 6, 7]),
    dict(B=6, module=dict(go_backwards=True), lengths=[7, 7, 7, 2, 2, 2]),
    dict(B=6, module=dict(batch_first=True), lengths=None),
    dict(B=2, module=dict(), lengths=[7, 4]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c['B']}-" + "-".join(
    f"{k}={v}" for k, v in c["module"].items()) + ("-lengths" if c["lengths"] else ""))
def test_split_batch_equals_the_unsplit_run(case, force_split):
    T, B, I, H = 7, case["B"], 3, 5
    rng = np.random.default_rng(B)
    module = case["module"]
    L = module.get("num_layers", 1)
    x = rng.standard_normal((B, T, I) if module.get("batch_first") else (T, B, I))
    h0 = rng.standard_normal((L, B, H))
    lengths = case["lengths"]
    results = {}
    for split in (False, True):
        force_split(split)
        gru = gru_cy.GRU(I, H, dtype=np.float64, seed=5, **module)
        assert bool(gru._batch_split(T, B, I, train=False)) == (split and B >= 2)
        out_shape = (B, T, H) if gru.batch_first else (T, B, H)
        dout = np.random.default_rng(1).standard_normal(out_shape)
        dh_n = np.random.default_rng(2).standard_normal((L, B, H))
        results[split] = _run(gru, x, h0, lengths, dout, dh_n)
    for i, (a, b) in enumerate(zip(results[False], results[True])):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, err_msg=f"result {i}", **TOL)
    _check_against_reference(gru, x, h0, lengths, dout, dh_n, results[True])


def _check_against_reference(gru, x, h0, lengths, dout, dh_n, results):
    """The split run's results (as _run returns them) against the NumPy reference. With
    dropout the masks are random: inference only (training was compared with the unsplit run
    above, and dropout gradients with finite differences in test_vs_reference.py)."""
    tm = (lambda a: a.transpose(1, 0, 2)) if gru.batch_first else (lambda a: a)
    e_out, e_h, cache = ref_gru_forward(tm(x), gru.params, num_layers=gru.num_layers,
                                        bidirectional=gru.bidirectional,
                                        reset_after=gru.reset_after, bias=gru.bias, h0=h0,
                                        lengths=lengths, go_backwards=gru.go_backwards)
    out, h_n, t_out, t_h, dx, dh0, dx2, dh02 = results[:8]
    checks = [("out", tm(out), e_out), ("h_n", h_n, e_h)]
    if gru.dropout == 0:
        e_dx, e_dh0, e_grads = ref_gru_backward(cache, tm(dout), dh_n)
        checks += [("train out", tm(t_out), e_out), ("train h_n", t_h, e_h), ("dx", tm(dx), e_dx),
                   ("dh0", dh0, e_dh0), ("dx again", tm(dx2), e_dx), ("dh0 again", dh02, e_dh0)]
        # Two backward calls: the gradients added up twice.
        checks += [(f"grads[{k!r}]", g, 2 * e_grads[k])
                   for k, g in zip(sorted(gru.grads), results[8:])]
    for label, got, want in checks:
        np.testing.assert_allclose(got, want, err_msg=label, rtol=1e-10, atol=1e-12)


def test_split_batch_matches_the_reference(force_split):
    force_split(True)
    T, B, I, H, L = 9, 6, 4, 5, 2
    rng = np.random.default_rng(3)
    gru = gru_cy.GRU(I, H, num_layers=L, dtype=np.float64, seed=6)
    x = rng.standard_normal((T, B, I))
    lengths = np.array([9, 1, 5, 9, 0, 3])
    out, h_n, tape = gru.forward_train(x, lengths=lengths)
    assert len(tape.parts) == 2
    dout = rng.standard_normal(out.shape)
    gru.zero_grad()
    dx, dh0 = gru.backward(tape, dout)
    e_out, e_h, cache = ref_gru_forward(x, gru.params, num_layers=L, bidirectional=False,
                                        reset_after=True, bias=True, lengths=lengths)
    e_dx, e_dh0, e_grads = ref_gru_backward(cache, dout, None)
    for got, want in [(out, e_out), (h_n, e_h), (dx, e_dx), (dh0, e_dh0)] + [
            (gru.grads[k], g) for k, g in e_grads.items()]:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_training_splits_only_in_the_rows_layout(force_split):
    force_split(True)
    gru = gru_cy.GRU(8, 128, seed=1)
    # 3 * H * H * B above 3 * 2**18: the whole batch would run in the columns layout.
    assert gru._batch_split(10, 8, 8, train=True)
    assert not gru._batch_split(10, 64, 8, train=True)
    assert gru._batch_split(10, 64, 8, train=False)


def test_no_split_for_bidirectional_small_or_single_threaded_calls(monkeypatch):
    monkeypatch.setattr(_base, "thread_budget", lambda: 1)
    assert not gru_cy.GRU(64, 256, seed=1)._batch_split(100, 64, 64)
    monkeypatch.setattr(_base, "thread_budget", lambda: 2)
    assert gru_cy.GRU(64, 256, seed=1)._batch_split(100, 64, 64) == 32
    assert not gru_cy.GRU(64, 256, bidirectional=True, seed=1)._batch_split(100, 64, 64)
    assert not gru_cy.GRU(4, 4, seed=1)._batch_split(2, 64, 4)
    assert not gru_cy.GRU(64, 256, seed=1)._batch_split(100, 2 * _base.MIN_HALF_BATCH - 1, 64)


def test_split_calls_from_many_threads_at_once(force_split):
    # Concurrent calls share one worker thread: the ones that cannot get it run their
    # halves one after the other. Every result must equal the serial one.
    import threading

    force_split(True)
    gru = gru_cy.GRU(3, 5, num_layers=2, dtype=np.float64, seed=9)
    xs = [np.random.default_rng(i).standard_normal((6, 4 + i, 3)) for i in range(6)]
    serial = []
    for x in xs:
        out, h_n, tape = gru.forward_train(x)
        serial.append((gru(x), out, h_n, gru.backward(tape, np.ones_like(out))))
    results, errors = [None] * len(xs), []
    barrier = threading.Barrier(len(xs))

    def body(i):
        try:
            barrier.wait()
            x = xs[i]
            inference = gru(x)
            # A module per thread for training would be usual; here backward's
            # gradient sums race, so compare dx and dh0 only.
            out, h_n, tape = gru.forward_train(x)
            results[i] = (inference, out, h_n, gru.backward(tape, np.ones_like(out)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, serial):
        np.testing.assert_array_equal(got[0][0], want[0][0])
        np.testing.assert_array_equal(got[0][1], want[0][1])
        for a, b in zip(got[1:3] + got[3], want[1:3] + want[3]):
            np.testing.assert_array_equal(a, b)
