"""gru_cy.Linear and gru_cy.Embedding: torch parity (golden files, and torch itself when
installed), central finite differences in float64, initialisation, the module protocol
(state_dict, pickling, save) and the error messages."""

import json
import pickle

import numpy as np
import pytest

import gru_cy
from gru_cy.nn.base import MODULES
from helpers import assert_same_modules, same_bits
from make_golden_toolkit import LAYER_CASES, layer_inputs, load_golden, torch_layer

TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-5, atol=1e-5)}


def _build(name, dtype):
    case = LAYER_CASES[name]
    params, x, dout = layer_inputs(name, dtype)
    if case["kind"] == "Linear":
        m = gru_cy.Linear(case["in_features"], case["out_features"], case["bias"], dtype=dtype)
    else:
        m = gru_cy.Embedding(case["num_embeddings"], case["embedding_dim"], case["padding_idx"],
                             dtype=dtype)
    m.load_state_dict(params)
    return m, x, dout


def _ours(name, dtype):
    m, x, dout = _build(name, dtype)
    out, tape = m.forward_train(x)
    dx = m.backward(tape, dout)
    res = {"out": out}
    if LAYER_CASES[name]["kind"] == "Linear":
        res["dx"] = dx
    else:
        assert dx is None
    for k, g in m.grads.items():
        res["grad_" + k] = g
    np.testing.assert_array_equal(m(x), out)  # inference equals the training forward
    return res


def _check(name, dtype, expected):
    got = _ours(name, dtype)
    assert sorted(got) == sorted(expected)
    for field, arr in expected.items():
        assert got[field].dtype == np.dtype(dtype), field
        assert got[field].shape == arr.shape, field
        np.testing.assert_allclose(got[field], arr, **TOL[dtype], err_msg=f"{name} {field}")


GOLDEN, _ = load_golden("layers")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_golden(name, dtype):
    _check(name, dtype, GOLDEN[(name, dtype)])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_vs_torch(name, dtype):
    pytest.importorskip("torch")
    _check(name, dtype, torch_layer(name, dtype))


# ---------------------------------------------------------------------------
# finite differences (float64) of L = sum(out * dout)


def _fd(f, a, h=1e-6):
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        ap, am = a.copy(), a.copy()
        ap[i] += h
        am[i] -= h
        g[i] = (f(ap) - f(am)) / (2 * h)
    return g


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_finite_differences(name):
    m, x, dout = _build(name, np.float64)
    _, tape = m.forward_train(x)
    dx = m.backward(tape, dout)
    for pname, p in m.params.items():
        def loss_of_param(value, pname=pname):
            saved = m.params[pname].copy()
            m.params[pname][...] = value
            try:
                return float(np.sum(m(x) * dout))
            finally:
                m.params[pname][...] = saved
        numeric = _fd(loss_of_param, p.copy())
        if LAYER_CASES[name].get("padding_idx") is not None:
            # torch's convention: the padding row receives no gradient at all.
            numeric[LAYER_CASES[name]["padding_idx"]] = 0
        np.testing.assert_allclose(m.grads[pname], numeric, rtol=1e-7, atol=1e-8, err_msg=pname)
    if dx is not None:
        np.testing.assert_allclose(dx, _fd(lambda xx: float(np.sum(m(xx) * dout)), x),
                                   rtol=1e-7, atol=1e-8)


# ---------------------------------------------------------------------------
# behaviour


def test_backward_adds_into_grads_and_zero_grad_resets():
    for name in ("linear_3d_nobias", "embedding_pad"):
        m, x, dout = _build(name, np.float64)
        _, tape = m.forward_train(x)
        m.backward(tape, dout)
        once = {k: g.copy() for k, g in m.grads.items()}
        refs = {k: g for k, g in m.grads.items()}
        m.backward(tape, dout)
        for k in once:
            np.testing.assert_allclose(m.grads[k], 2 * once[k], rtol=1e-15)
            assert m.grads[k] is refs[k]  # accumulated in place
        m.zero_grad()
        for k in once:
            assert m.grads[k] is refs[k] and not m.grads[k].any()


def test_linear_leading_axes_equal_2d():
    rng = np.random.default_rng(0)
    lin = gru_cy.Linear(6, 3, dtype=np.float64, seed=1)
    x = rng.standard_normal((2, 3, 4, 6))
    np.testing.assert_allclose(lin(x).reshape(-1, 3), lin(x.reshape(-1, 6)), rtol=1e-15)
    assert lin(x).shape == (2, 3, 4, 3)
    assert lin(np.zeros((0, 6))).shape == (0, 3)
    y, tape = lin.forward_train(np.zeros((0, 6)))
    assert lin.backward(tape, y).shape == (0, 6)


def test_embedding_shapes_and_repeated_ids():
    emb = gru_cy.Embedding(4, 3, dtype=np.float64, seed=0)
    ids = np.array([[1, 1], [1, 2]])
    e, tape = emb.forward_train(ids)
    assert e.shape == (2, 2, 3)
    np.testing.assert_array_equal(e[0, 0], emb.params["weight"][1])
    emb.backward(tape, np.ones((2, 2, 3)))
    np.testing.assert_array_equal(emb.grads["weight"], [[0] * 3, [3] * 3, [1] * 3, [0] * 3])
    assert emb(np.array(2)).shape == (3,)  # 0-d ids
    assert emb(np.zeros((0, 5), np.int64)).shape == (0, 5, 3)
    for dt in (np.int8, np.uint16, np.int32, np.int64):
        np.testing.assert_array_equal(emb(ids.astype(dt)), e)
    np.testing.assert_array_equal(emb([[1, 1], [1, 2]]), e)


@pytest.mark.parametrize("V", [3, 5000])  # dense and sparse-table paths of the scatter
def test_embedding_backward_matches_add_at(V):
    rng = np.random.default_rng(V)
    emb = gru_cy.Embedding(V, 8, padding_idx=1, dtype=np.float64, seed=0)
    ids = rng.integers(0, V, (50, 7))
    ids[0, :3] = 1
    de = rng.standard_normal((50, 7, 8))
    _, tape = emb.forward_train(ids)
    emb.backward(tape, de)
    expected = np.zeros((V, 8))
    np.add.at(expected, ids.ravel(), de.reshape(-1, 8))
    expected[1] = 0
    np.testing.assert_allclose(emb.grads["weight"], expected, rtol=1e-13, atol=1e-14)


def test_init_as_torch():
    lin = gru_cy.Linear(400, 300, seed=0)
    bound = 1 / np.sqrt(400)
    for p in lin.params.values():
        assert p.dtype == np.float32 and np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.95 * bound
    assert abs(lin.params["weight"].std() - bound / np.sqrt(3)) < 0.01 * bound
    emb = gru_cy.Embedding(1000, 50, padding_idx=3, seed=0)
    w = emb.params["weight"]
    assert not w[3].any()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


def test_seed_reproducible_bit_for_bit():
    for make in (lambda s: gru_cy.Linear(7, 5, seed=s),
                 lambda s: gru_cy.Embedding(7, 5, seed=s, dtype=np.float64)):
        a, b, c = make(3), make(3), make(4)
        for k in a.params:
            assert same_bits(a.params[k], b.params[k])
            assert not np.array_equal(a.params[k], c.params[k])
    gen = np.random.default_rng(5)
    assert gru_cy.Linear(3, 2, seed=gen).params["weight"].shape == (2, 3)


def test_params_grads_state_dict_protocol():
    lin = gru_cy.Linear(4, 2, dtype=np.float64, seed=0)
    assert list(lin.params) == ["weight", "bias"] == list(lin.grads)
    assert lin.params["weight"].shape == (2, 4) and lin.params["bias"].shape == (2,)
    assert list(gru_cy.Linear(4, 2, bias=False).params) == ["weight"]
    sd = lin.state_dict()
    sd["weight"][...] = 7  # a copy
    assert not (lin.params["weight"] == 7).any()
    ref = lin.params["weight"]
    lin.load_state_dict(sd)
    assert lin.params["weight"] is ref and (ref == 7).all()
    with pytest.raises(KeyError, match='Missing key\\(s\\) in state_dict: "bias"'):
        lin.load_state_dict({"weight": sd["weight"]})
    with pytest.raises(ValueError, match="size mismatch for weight"):
        lin.load_state_dict({"weight": np.zeros((4, 2)), "bias": sd["bias"]})


def test_load_state_dict_from_torch():
    torch = pytest.importorskip("torch")
    tl = torch.nn.Linear(3, 2)
    lin = gru_cy.Linear(3, 2)
    lin.load_state_dict(tl.state_dict())
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(lin(x), tl(torch.tensor(x)).detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    te = torch.nn.Embedding(6, 2, padding_idx=0)
    emb = gru_cy.Embedding(6, 2, padding_idx=0)
    emb.load_state_dict(te.state_dict())
    np.testing.assert_array_equal(emb(np.arange(6)), te.weight.detach().numpy())


@pytest.mark.parametrize("make", [
    lambda: gru_cy.Linear(4, 3, bias=False, dtype=np.float64, seed=2),
    lambda: gru_cy.Linear(4, 3, seed=2),
    lambda: gru_cy.Embedding(5, 3, padding_idx=-1, seed=2),
])
def test_pickle_round_trip(make):
    m = make()
    x = np.arange(8).reshape(2, 4) % (4 if isinstance(m, gru_cy.Embedding) else 8)
    if isinstance(m, gru_cy.Linear):
        x = x.astype(np.float64)
    out, tape = m.forward_train(x)
    m.backward(tape, np.ones_like(out))
    m2 = pickle.loads(pickle.dumps(m))
    assert_same_modules(m, m2)
    for k in m.grads:
        assert same_bits(m.grads[k], m2.grads[k])
    assert same_bits(m(x), m2(x))


def test_repr_as_torch():
    assert repr(gru_cy.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert repr(gru_cy.Linear(3, 2, False, np.float64)) == \
        "Linear(in_features=3, out_features=2, bias=False, dtype=float64)"
    assert repr(gru_cy.Embedding(10, 3)) == "Embedding(10, 3)"
    assert repr(gru_cy.Embedding(10, 3, padding_idx=-1)) == "Embedding(10, 3, padding_idx=9)"


def test_registered_for_loading():
    assert MODULES["Linear"] is gru_cy.Linear and MODULES["Embedding"] is gru_cy.Embedding
    for m in (gru_cy.Linear(3, 2, False), gru_cy.Embedding(4, 2, padding_idx=1)):
        config = m._config()
        json.dumps(config)
        rebuilt = type(m)(**config, dtype=m.dtype)
        assert repr(rebuilt) == repr(m)


@pytest.mark.parametrize("make", [
    lambda: gru_cy.Linear(4, 3, dtype=np.float64, seed=2),
    lambda: gru_cy.Embedding(5, 3, padding_idx=1, seed=2),
])
def test_save_writes_config_and_weights(tmp_path, make):
    m = make()
    path = tmp_path / "m.npz"
    m.save(path)
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(str(data["config"]))
        for k, p in m.params.items():
            assert same_bits(data[k], p)
    assert config["class"] == type(m).__name__
    assert config["dtype"] == m.dtype.name
    for k, v in m._config().items():
        assert config[k] == v
    try:
        loaded = gru_cy.load(path)
    except ValueError as exc:
        if "loads GRU" in str(exc):
            pytest.skip("this gru_cy.load reads GRU files only")
        raise
    assert_same_modules(m, loaded)


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("call, exc, match", [
    (lambda: gru_cy.Linear(3, 2)(np.zeros((4, 5))), ValueError,
     r"input.size\(-1\) must be equal to in_features. Expected 3, got 5"),
    (lambda: gru_cy.Linear(3, 2)(np.float32(1)), ValueError, "at least 1 dimension"),
    (lambda: gru_cy.Linear(3, 2)(np.array(["a", "b", "c"])), TypeError,
     "input must hold real numbers"),
    (lambda: gru_cy.Linear(3.0, 2), TypeError, "in_features should be an integer"),
    (lambda: gru_cy.Linear(3, -1), ValueError, "out_features must be >= 0, got -1"),
    (lambda: gru_cy.Linear(3, 2, bias=1), TypeError, "bias should be a bool"),
    (lambda: gru_cy.Linear(3, 2, dtype=np.int32), ValueError,
     "dtype must be numpy.float32 or numpy.float64"),
    (lambda: gru_cy.Linear(3, 2, seed="x"), TypeError, "seed must be None, an int"),
    (lambda: gru_cy.Embedding(5, 2, padding_idx=5), ValueError,
     "Padding_idx must be within num_embeddings"),
    (lambda: gru_cy.Embedding(5, 2, padding_idx=-6), ValueError,
     "Padding_idx must be within num_embeddings"),
    (lambda: gru_cy.Embedding(5, 2)(np.array([0, 5])), IndexError,
     r"index out of range in self: ids must be in \[0, 5\), got 5"),
    (lambda: gru_cy.Embedding(5, 2)(np.array([-1, 0])), ValueError,
     r"index out of range in self: ids must be in \[0, 5\), got -1"),
    (lambda: gru_cy.Embedding(5, 2)(np.array([0.0, 1.0])), TypeError,
     "Expected tensor for argument #1 'indices' to have one of the following scalar types"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_backward_argument_errors():
    lin = gru_cy.Linear(3, 2)
    other = gru_cy.Linear(3, 2)
    y, tape = lin.forward_train(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"dy must have the output's shape \(4, 2\), got \(4, 3\)"):
        lin.backward(tape, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="tape was made by another module"):
        other.backward(tape, y)
    with pytest.raises(TypeError, match="tape must be the tape returned by Linear.forward_train"):
        lin.backward(None, y)
    emb = gru_cy.Embedding(4, 2)
    e, tape = emb.forward_train(np.array([1, 2]))
    with pytest.raises(ValueError, match=r"de must have the output's shape \(2, 2\)"):
        emb.backward(tape, np.zeros((2, 3)))


def test_torch_rejects_what_we_reject():
    torch = pytest.importorskip("torch")
    with pytest.raises(IndexError, match="index out of range in self"):
        torch.nn.Embedding(5, 2)(torch.tensor([0, 5]))
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        torch.nn.Embedding(5, 2, padding_idx=5)


# ---------------------------------------------------------------------------
# tapes are snapshots; one rule for gradient arrays


def test_linear_tape_is_a_snapshot():
    # An optimiser step (or a reused input buffer) between forward_train and
    # backward changes no gradient, as with the recurrent modules' tapes.
    rng = np.random.default_rng(0)
    lin = gru_cy.Linear(4, 3, dtype=np.float64, seed=1)
    x = rng.standard_normal((5, 4))
    dy = rng.standard_normal((5, 3))
    _, tape = lin.forward_train(x)
    dx_ref = lin.backward(tape, dy)
    grads_ref = {k: g.copy() for k, g in lin.grads.items()}
    np.testing.assert_allclose(dx_ref, dy @ lin.params["weight"], rtol=1e-14)
    lin.zero_grad()
    _, tape = lin.forward_train(x)
    x[...] = 3.0
    lin.params["weight"] -= 0.25
    dx = lin.backward(tape, dy)
    np.testing.assert_array_equal(dx, dx_ref)
    for k in grads_ref:
        np.testing.assert_array_equal(lin.grads[k], grads_ref[k])


def test_embedding_tape_keeps_its_ids():
    emb = gru_cy.Embedding(5, 2, dtype=np.float64, seed=0)
    ids = np.array([1, 1, 3], dtype=np.intp)
    _, tape = emb.forward_train(ids)
    ids[...] = 0
    emb.backward(tape, np.ones((3, 2)))
    np.testing.assert_array_equal(emb.grads["weight"][:, 0], [0, 2, 0, 1, 0])


@pytest.mark.parametrize("make,x,grad", [
    (lambda: gru_cy.Linear(3, 2, dtype=np.float64), np.ones((4, 3)), "weight"),
    (lambda: gru_cy.Linear(3, 2, dtype=np.float64), np.ones((4, 3)), "bias"),
    (lambda: gru_cy.Embedding(5, 2, dtype=np.float64), np.array([1, 2]), "weight"),
])
def test_unusable_gradient_arrays_raise(make, x, grad):
    m = make()
    out, tape = m.forward_train(x)
    shape = m.params[grad].shape
    for bad in (np.zeros(shape, np.float32), np.zeros(shape + (1,)), np.zeros(shape).T.copy().T
                if len(shape) == 2 else np.zeros(2 * shape[0])[::2], "junk"):
        m.grads[grad] = bad
        with pytest.raises(ValueError, match=rf"grads\['{grad}'\] must be a writable"):
            m.backward(tape, np.ones_like(out))
        assert m.grads[grad] is bad          # never silently replaced
    del m.grads[grad]                        # a missing one is created
    m.backward(tape, np.ones_like(out))
    assert m.grads[grad].shape == shape and m.grads[grad].any()
