"""Both kernel layouts, forced, against the NumPy reference: forward, backward and gradients.

The kernels pick the rows or the columns layout from B and H (_gru.use_columns); the test
sizes elsewhere are small enough that they nearly always get rows. Here _gru.set_layout forces
each layout in turn (columns applies when lengths are full), over both variants, bias or not,
up to 3 layers, bidirectional or reverse-only, B = 1, 3 and 8, and T long enough for several
column blocks.
"""

import numpy as np
import pytest

import gru_cy
from gru_cy.kernels import _gru
from reference import ref_gru_backward, ref_gru_forward

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}


@pytest.fixture(params=["rows", "columns"])
def layout(request):
    _gru.set_layout(request.param)
    yield request.param
    _gru.set_layout("auto")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("config", [
    dict(T=7, B=3, module=dict()),
    dict(T=7, B=1, module=dict(reset_after=False)),
    dict(T=5, B=3, module=dict(num_layers=2, bidirectional=True, bias=False)),
    dict(T=5, B=3, module=dict(num_layers=2, bidirectional=True, reset_after=False)),
    # 128 // B = 42 steps per column block: three blocks.
    dict(T=100, B=3, module=dict()),
    # The columns-layout reset_after=False backward (two recurrent GEMMs per step, r * h
    # saved per block): blocks, no bias, three layers, reverse-only, B = 1 and B = 8.
    dict(T=100, B=3, module=dict(reset_after=False)),
    dict(T=40, B=8, module=dict(reset_after=False, bias=False)),
    dict(T=33, B=1, module=dict(reset_after=False, num_layers=3)),
    dict(T=50, B=8, module=dict(reset_after=False, go_backwards=True)),
    dict(T=20, B=3, module=dict(reset_after=False, num_layers=2, go_backwards=True, bias=False)),
], ids=lambda c: f"T{c['T']}B{c['B']}-" + "-".join(f"{k}={v}" for k, v in c["module"].items()))
def test_forced_layout_matches_the_reference(layout, config, dtype):
    T, B, I, H = config["T"], config["B"], 4, 5
    gru = gru_cy.GRU(I, H, dtype=dtype, seed=11, **config["module"])
    assert _gru.use_columns(B, H, True) == (layout == "columns")
    L, D = gru.num_layers, gru.num_directions
    rng = np.random.default_rng(T * B)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((L * D, B, H)).astype(dtype)
    out, h_n, tape = gru.forward_train(x, h0)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dh_n = rng.standard_normal(h_n.shape).astype(dtype)
    gru.zero_grad()
    dx, dh0 = gru.backward(tape, dout, dh_n)
    inf_out, inf_h = gru(x, h0)
    p64 = {k: v.astype(np.float64) for k, v in gru.params.items()}
    e_out, e_h, cache = ref_gru_forward(x.astype(np.float64), p64, num_layers=L,
                                        bidirectional=gru.bidirectional,
                                        reset_after=gru.reset_after, bias=gru.bias,
                                        h0=h0.astype(np.float64),
                                        go_backwards=gru.go_backwards)
    e_dx, e_dh0, e_grads = ref_gru_backward(cache, dout.astype(np.float64),
                                            dh_n.astype(np.float64))
    for label, got, want in [("out", out, e_out), ("h_n", h_n, e_h), ("inference out", inf_out,
                             e_out), ("inference h_n", inf_h, e_h), ("dx", dx, e_dx),
                             ("dh0", dh0, e_dh0)] + [
                                 (f"grads[{k}]", gru.grads[k], g) for k, g in e_grads.items()]:
        np.testing.assert_allclose(got, want, err_msg=f"{layout}: {label}", **TOL[dtype])


def test_forced_columns_agrees_with_rows_on_a_reverse_only_module():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 3, 4))
    results = {}
    for layout in ("rows", "columns"):
        gru = gru_cy.GRU(4, 5, go_backwards=True, dtype=np.float64, seed=2)
        _gru.set_layout(layout)
        try:
            out, h_n, tape = gru.forward_train(x)
            dx, dh0 = gru.backward(tape, np.ones_like(out))
            results[layout] = [out, h_n, dx, dh0] + [gru.grads[k] for k in sorted(gru.grads)]
        finally:
            _gru.set_layout("auto")
    for a, b in zip(results["rows"], results["columns"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("recorded, later", [("columns", "rows"), ("rows", "columns"),
                                             ("columns", "auto")])
def test_backward_uses_the_layout_the_tape_was_recorded_in(recorded, later, reset_after):
    """The tape remembers its layout: changing the process-wide choice between
    forward_train and backward does not change the gradients."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 3, 4))
    dout = rng.standard_normal((9, 3, 5))
    results = []
    for switch in (False, True):
        gru = gru_cy.GRU(4, 5, reset_after=reset_after, dtype=np.float64, seed=2)
        _gru.set_layout(recorded)
        try:
            out, h_n, tape = gru.forward_train(x)
            if switch:
                _gru.set_layout(later)
            dx, dh0 = gru.backward(tape, dout)
        finally:
            _gru.set_layout("auto")
        results.append([dx, dh0] + [gru.grads[k] for k in sorted(gru.grads)])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
