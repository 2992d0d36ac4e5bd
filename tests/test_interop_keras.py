"""Keras 3: GRU.from_keras and gru.to_keras.

Without Keras: the golden files (tests/golden/keras_*.npz, made by
tests/make_golden_interop.py) hold Keras layer configs, weights, inputs, masks and Keras's
outputs; the weight mapping behind from_keras must reproduce them within 1e-5.
With Keras (backend torch): outputs within 1e-5 of live layers for reset_after True and
False, use_bias, go_backwards, Bidirectional(concat), stacks, masks as lengths; exact round
trips; unsupported settings named in the error.

Keras's go_backwards returns its sequence in processing order (reversed in time); gru_cy's
out[t] stays aligned with x[t], so the tests flip Keras's sequence to compare. With a mask, a
plain Keras GRU repeats its last output over masked steps where gru_cy writes zeros, so only
valid steps are compared there (Bidirectional zeroes them, like gru_cy).
"""

import glob
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gru_cy  # noqa: E402
from gru_cy.io import keras as keras_io  # noqa: E402

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
GOLDEN = sorted(glob.glob(os.path.join(GOLDEN_DIR, "keras_*.npz")))
TOL = dict(rtol=1e-5, atol=1e-5)


def _golden(path):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    specs = json.loads(str(arrays.pop("spec")))
    counter = [0]

    def fill(spec):
        if spec["class_name"] == "GRU":
            i = counter[0]
            counter[0] += 1
            spec["weights"] = [arrays[f"w{i}_{j}"] for j in range(3) if f"w{i}_{j}" in arrays]
        else:
            fill(spec["forward"])
            fill(spec["backward"])
        return spec

    return [fill(s) for s in specs], arrays


def _compare(gru, out, h_n, keras_out, keras_states, lengths, last_spec):
    """gru_cy's (out, h_n), batch-first, against a Keras layer's sequence and states."""
    T = out.shape[1]
    valid = np.ones(out.shape[:2], bool) if lengths is None else \
        np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    if gru.go_backwards:
        keras_out = keras_out[:, ::-1]
    if last_spec["class_name"] == "GRU":
        np.testing.assert_allclose(out[valid], keras_out[valid], **TOL)
    else:  # Bidirectional zeroes masked steps, as gru_cy does
        np.testing.assert_allclose(out, keras_out, **TOL)
    D = gru.num_directions
    for d, state in enumerate(keras_states):
        np.testing.assert_allclose(h_n[-D + d], state, **TOL)


def test_golden_files_exist():
    assert len(GOLDEN) >= 6


@pytest.mark.parametrize("path", GOLDEN, ids=os.path.basename)
def test_golden(path):
    specs, arrays = _golden(path)
    gru = keras_io._from_keras_specs(specs)
    assert gru.batch_first and gru.num_layers == len(specs)
    lengths = arrays.get("lengths")
    out, h_n = gru(arrays["x"], lengths=lengths)
    states = [arrays[k] for k in sorted(k for k in arrays if k.startswith("h"))]
    _compare(gru, out, h_n, arrays["out"], states, lengths, specs[-1])


def test_golden_cover_both_variants_and_directions():
    kinds = set()
    for path in GOLDEN:
        specs, _ = _golden(path)
        gru = keras_io._from_keras_specs(specs)
        kinds.add((gru.reset_after, gru.bidirectional, gru.go_backwards, gru.bias))
    assert {k[0] for k in kinds} == {True, False}
    assert any(k[1] for k in kinds) and any(k[2] for k in kinds) and not all(k[3] for k in kinds)


def test_reset_before_bias_goes_to_bias_ih():
    """Keras reset_after=False keeps one (input) bias: it becomes bias_ih, bias_hh is 0."""
    path = os.path.join(GOLDEN_DIR, "keras_gru_reset_before.npz")
    specs, arrays = _golden(path)
    gru = keras_io._from_keras_specs(specs)
    np.testing.assert_array_equal(gru.params["bias_hh_l0"], 0)
    H = gru.hidden_size
    z, r, n = np.split(arrays["w0_2"], 3)
    np.testing.assert_array_equal(gru.params["bias_ih_l0"], np.concatenate([r, z, n]))
    assert arrays["w0_2"].shape == (3 * H,)


# ---------------------------------------------------------------------------
# live: Keras installed


@pytest.fixture(scope="module")
def keras():
    return pytest.importorskip("keras")


def _np(keras, t):
    return keras.ops.convert_to_numpy(t)


LAYERS = [
    ("GRU", dict()),
    ("GRU", dict(reset_after=False)),
    ("GRU", dict(use_bias=False)),
    ("GRU", dict(go_backwards=True)),
    ("GRU", dict(go_backwards=True, reset_after=False, use_bias=False)),
    ("Bidirectional", dict()),
    ("Bidirectional", dict(reset_after=False)),
]


def _make(keras, kind, kwargs, units=4):
    layer = keras.layers.GRU(units, return_sequences=True, return_state=True, **kwargs)
    return layer if kind == "GRU" else keras.layers.Bidirectional(layer)


def _randomize(layer, seed):
    """Random weights everywhere: Keras starts biases at zero, which would hide bias mix-ups."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype)
                       for w in layer.get_weights()])


@pytest.mark.parametrize("kind, kwargs", LAYERS, ids=range(len(LAYERS)))
@pytest.mark.parametrize("with_mask", [False, True])
def test_from_keras_matches_keras(keras, kind, kwargs, with_mask):
    keras.utils.set_random_seed(0)
    layer = _make(keras, kind, kwargs)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    lengths = np.array([7, 3, 1, 5]) if with_mask else None
    mask = None if lengths is None else np.arange(7)[None, :] < lengths[:, None]
    layer.build(x.shape)
    _randomize(layer, 1)
    result = layer(x, mask=mask)
    gru = gru_cy.GRU.from_keras(layer)
    out, h_n = gru(x, lengths=lengths)
    _compare(gru, out, h_n, _np(keras, result[0]), [_np(keras, s) for s in result[1:]], lengths,
             {"class_name": kind})


def test_from_keras_stack_and_model(keras):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((None, 3)),
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True, reset_after=False)),
        keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True, reset_after=False)),
    ])
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype(np.float32)
    _randomize(model, 2)
    gru = gru_cy.GRU.from_keras(model)
    assert gru.num_layers == 2 and gru.bidirectional and not gru.reset_after
    np.testing.assert_allclose(gru(x)[0], _np(keras, model(x)), **TOL)
    same = gru_cy.GRU.from_keras(list(model.layers))
    for name, p in gru.params.items():
        np.testing.assert_array_equal(p, same.params[name])


CY_CONFIGS = [
    dict(),
    dict(reset_after=False),
    dict(bias=False, num_layers=2),
    dict(go_backwards=True),
    dict(bidirectional=True, num_layers=2),
    dict(bidirectional=True, num_layers=2, dtype=np.float64),
    dict(bidirectional=True, reset_after=False, dtype=np.float64),
]


@pytest.mark.parametrize("config", CY_CONFIGS, ids=range(len(CY_CONFIGS)))
def test_to_keras_matches_and_round_trips(keras, config):
    gru = gru_cy.GRU(3, 4, batch_first=True, seed=3, **config)
    if not gru.reset_after and gru.bias:
        # Keras has one bias here; with bias_hh = 0 nothing is folded and the trip is exact.
        for name in gru.params:
            if name.startswith("bias_hh"):
                gru.params[name][...] = 0
    layer = gru.to_keras()
    x = np.random.default_rng(3).standard_normal((2, 6, 3)).astype(gru.dtype)
    keras_out = _np(keras, layer(x))
    if gru.go_backwards:
        keras_out = keras_out[:, ::-1]
    tol = TOL
    if gru.dtype == np.float64:
        # float64 layers: reset_after=True agrees to 1e-15; Keras's reset_after=False path
        # (torch backend) rounds somewhere to float32 precision, 2e-8 off the NumPy reference
        # where gru_cy is within 1e-16.
        tol = dict(rtol=1e-12, atol=1e-12) if gru.reset_after else dict(rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gru(x)[0], keras_out, **tol)
    back = gru_cy.GRU.from_keras(layer)
    assert repr(back) == repr(gru)
    for name, p in gru.params.items():
        np.testing.assert_array_equal(back.params[name], p, err_msg=name)


def test_to_keras_folds_bias_hh_when_reset_before(keras):
    gru = gru_cy.GRU(3, 4, reset_after=False, batch_first=True, seed=4)
    layer = gru.to_keras(return_state=True)
    x = np.random.default_rng(4).standard_normal((2, 5, 3)).astype(np.float32)
    keras_out, keras_h = (_np(keras, t) for t in layer(x))
    out, h_n = gru(x)
    np.testing.assert_allclose(out, keras_out, **TOL)
    np.testing.assert_allclose(h_n[0], keras_h, **TOL)
    back = gru_cy.GRU.from_keras(layer)
    np.testing.assert_allclose(back.params["bias_ih_l0"],
                               gru.params["bias_ih_l0"] + gru.params["bias_hh_l0"], rtol=1e-7)
    np.testing.assert_array_equal(back.params["bias_hh_l0"], 0)


@pytest.mark.parametrize("build, match", [
    (lambda k: k.layers.GRU(4, activation="relu"), "activation='relu'"),
    (lambda k: k.layers.GRU(4, recurrent_activation="hard_sigmoid"),
     "recurrent_activation='hard_sigmoid'"),
    (lambda k: k.layers.Bidirectional(k.layers.GRU(4, return_sequences=True), merge_mode="sum"),
     "merge_mode='sum'"),
])
def test_unsupported_settings_are_named(keras, build, match):
    layer = build(keras)
    layer(np.zeros((1, 3, 2), np.float32))
    with pytest.raises(ValueError, match=match):
        gru_cy.GRU.from_keras(layer)


def test_other_layers_and_unbuilt_layers(keras):
    with pytest.raises(ValueError, match="not built"):
        gru_cy.GRU.from_keras(keras.layers.GRU(4))
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4),
                              keras.layers.Dense(2, name="head")])
    with pytest.raises(ValueError, match="Dense 'head'"):
        gru_cy.GRU.from_keras(model)
    lstm = keras.layers.LSTM(4)
    lstm(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(TypeError, match="LSTM"):
        gru_cy.GRU.from_keras(lstm)
    with pytest.raises(ValueError, match="return_state"):
        gru_cy.GRU(3, 4, num_layers=2).to_keras(return_state=True)
