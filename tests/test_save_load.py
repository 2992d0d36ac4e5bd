"""gru.save / gru_cy.load: exact round trips, and clean errors for every bad file.

The format is a plain .npz (each parameter under its PyTorch name plus a JSON ``config``
string), so numpy.load(allow_pickle=False) must read it too. Loading must raise ValueError,
naming the problem, for truncated, corrupted, mismatched and hostile files, and never
unpickle anything.
"""

import io
import json
import os
import zipfile

import numpy as np
import pytest

import gru_cy

CONFIGS = [
    dict(input_size=3, hidden_size=4),
    dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=True),
    dict(input_size=2, hidden_size=3, num_layers=3, bias=False, reset_after=False, dropout=0.25),
    dict(input_size=5, hidden_size=2, go_backwards=True, dtype=np.float64),
]


def _same(a, b):
    assert repr(a) == repr(b)
    assert (a.reset_after, a.go_backwards, a.dropout, a.dtype) == \
        (b.reset_after, b.go_backwards, b.dropout, b.dtype)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert sa[name].dtype == sb[name].dtype
        np.testing.assert_array_equal(sa[name], sb[name])


@pytest.fixture
def saved(tmp_path):
    gru = gru_cy.GRU(3, 4, num_layers=2, bidirectional=True, seed=1)
    path = tmp_path / "model.npz"
    gru.save(path)
    return gru, path


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_round_trip_is_exact(tmp_path, config):
    gru = gru_cy.GRU(**config, seed=3)
    path = tmp_path / "m.npz"
    assert gru.save(path) == path
    loaded = gru_cy.load(path)
    _same(gru, loaded)
    I = config["input_size"]
    x = np.random.default_rng(0).standard_normal((2, 6, I) if config.get("batch_first") else
                                                 (6, 2, I))
    for a, b in zip(gru(x), loaded(x)):
        np.testing.assert_array_equal(a, b)


def test_file_objects_and_str_paths(tmp_path):
    gru = gru_cy.GRU(3, 4, seed=0)
    buf = io.BytesIO()
    gru.save(buf)
    buf.seek(0)
    _same(gru, gru_cy.load(buf))
    path = str(tmp_path / "no_suffix")
    gru.save(path)
    assert os.path.exists(path)  # written as named, no ".npz" appended
    _same(gru, gru_cy.load(path))


def test_plain_numpy_reads_the_format(saved):
    gru, path = saved
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(str(data["config"]))
        assert config["format"] == "gru_cy" and config["format_version"] == 1
        assert config["hidden_size"] == 4 and config["bidirectional"] is True
        for name, p in gru.state_dict().items():
            np.testing.assert_array_equal(data[name], p)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        gru_cy.load(tmp_path / "absent.npz")


def test_every_truncation_raises_value_error(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    bad = tmp_path / "cut.npz"
    for cut in list(range(0, len(data), max(1, len(data) // 150))) + [len(data) - 1]:
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            gru_cy.load(bad)


def test_corruption_raises_or_loads_the_same_weights(saved, tmp_path):
    """Zip CRCs cover every array: a flipped byte either breaks loading with ValueError or
    falls in metadata that does not matter (timestamps), leaving the weights intact."""
    gru, path = saved
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    bad = tmp_path / "flip.npz"
    failures = 0
    for pos in rng.choice(len(data), size=120, replace=False):
        flipped = bytearray(data)
        flipped[pos] ^= 1 << int(rng.integers(8))
        bad.write_bytes(bytes(flipped))
        try:
            loaded = gru_cy.load(bad)
        except ValueError:
            failures += 1
            continue
        _same(gru, loaded)
    assert failures > 60


def test_zip_features_python_cannot_read(saved, tmp_path):
    """zipfile raises NotImplementedError for a newer zip version or compression method: still
    a ValueError from gru_cy.load."""
    _, path = saved
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    version = bytearray(data)
    version[central + 6] = 0x7F                       # "version needed to extract": 12.7
    (tmp_path / "version.npz").write_bytes(bytes(version))
    method = bytearray(data)
    method[central + 10] = 99                         # compression method 99 (AES)
    method[data.index(b"PK\x03\x04") + 8] = 99
    (tmp_path / "method.npz").write_bytes(bytes(method))
    for name in ("version.npz", "method.npz"):
        with pytest.raises(ValueError):
            gru_cy.load(tmp_path / name)


def test_an_encrypted_member_is_a_value_error(saved, tmp_path):
    """A member whose "encrypted" flag is set (general-purpose bit 0, in the central directory
    and the local header): zipfile would raise RuntimeError asking for a password."""
    _, path = saved
    data = bytearray(path.read_bytes())
    for header, offset in ((b"PK\x01\x02", 8), (b"PK\x03\x04", 6)):
        at = data.index(header)
        data[at + offset] |= 0x1
    bad = tmp_path / "encrypted.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="encrypted"):
        gru_cy.load(bad)


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _arrays(saved):
    _, path = saved
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


_DROP = object()  # a config change that deletes the key


def _config_with(arrays, **changes):
    config = json.loads(str(arrays["config"]))
    config.update(changes)
    for key in [k for k, v in changes.items() if v is _DROP]:
        del config[key]
    return np.array(json.dumps(config))


@pytest.mark.parametrize("changes, match", [
    (dict(format="other"), "not a gru_cy model"),
    (dict(format=_DROP), "not a gru_cy model"),
    (dict(format_version=2), "newer gru_cy"),
    (dict(format_version="1"), "format_version"),
    (dict(**{"class": "Transformer"}), "class 'Transformer'"),
    (dict(**{"class": 3}), "class 3"),
    (dict(**{"class": "LSTM"}), r"unknown settings \['reset_after'\] for LSTM"),
    (dict(hidden_size=5), "shape"),
    (dict(hidden_size=2**30), "shape"),
    (dict(hidden_size=-4), "hidden_size"),
    (dict(num_layers=1), "unexpected"),
    (dict(num_layers=3), "missing"),
    (dict(bidirectional=False), "unexpected"),
    (dict(bias=False), "unexpected"),
    (dict(bias=1), "bias"),
    (dict(dtype="float16"), "dtype"),
    (dict(dtype="float64"), "expected float64"),
    (dict(dropout=2.0), "dropout"),
    (dict(input_size=_DROP), "input_size"),
])
def test_config_mismatches(saved, tmp_path, changes, match):
    arrays = _arrays(saved)
    arrays["config"] = _config_with(arrays, **changes)
    path = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        gru_cy.load(path)


def test_a_file_claiming_another_registered_class(saved, tmp_path):
    """The class named in the file is built (here an Elman RNN, one gate block), and the
    GRU's arrays (three gate blocks) do not fit it."""
    if "RNN" not in gru_cy.nn.base.MODULES:
        pytest.skip("no Elman RNN in this gru_cy")
    arrays = _arrays(saved)
    config = json.loads(str(arrays["config"]))
    del config["reset_after"]
    arrays["config"] = np.array(json.dumps(dict(config, **{"class": "RNN"})))
    with pytest.raises(ValueError, match="shape"):
        gru_cy.load(_write_npz(tmp_path / "bad.npz", **arrays))
    arrays["config"] = np.array(json.dumps(dict(config, **{"class": "RNN"}, reset_after=True)))
    with pytest.raises(ValueError, match="unknown settings.*reset_after.*RNN"):
        gru_cy.load(_write_npz(tmp_path / "bad.npz", **arrays))


def test_unparseable_or_missing_config(saved, tmp_path):
    arrays = _arrays(saved)
    for config, match in ((np.array("{not json"), "config"),
                          (np.array(["a", "b"]), "0-d string"),
                          (np.array(3.0), "0-d string"),
                          (np.array("[1, 2]"), "not a gru_cy model")):
        path = _write_npz(tmp_path / "bad.npz", **dict(arrays, config=config))
        with pytest.raises(ValueError, match=match):
            gru_cy.load(path)
    del arrays["config"]
    with pytest.raises(ValueError, match="config"):
        gru_cy.load(_write_npz(tmp_path / "noconfig.npz", **arrays))


@pytest.mark.parametrize("change, match", [
    (lambda a: a.update(weight_ih_l0=a["weight_ih_l0"][:-1]), "shape"),
    (lambda a: a.update(weight_ih_l0=a["weight_ih_l0"].astype(np.float64)), "float64"),
    (lambda a: a.update(bias_hh_l0=a["bias_hh_l0"].astype(np.int32)), "int32"),
    (lambda a: a.update(bias_hh_l0=a["bias_hh_l0"].astype(np.complex64)), "complex"),
    (lambda a: a.pop("weight_hh_l1_reverse"), "missing"),
    (lambda a: a.update(extra=np.zeros(3, np.float32)), "unexpected"),
])
def test_array_mismatches(saved, tmp_path, change, match):
    arrays = _arrays(saved)
    change(arrays)
    with pytest.raises(ValueError, match=match):
        gru_cy.load(_write_npz(tmp_path / "bad.npz", **arrays))


def test_object_arrays_are_never_unpickled(saved, tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    arrays = _arrays(saved)
    for key in ("weight_ih_l0", "config"):
        hostile = dict(arrays)
        hostile[key] = np.array([Boom()], dtype=object) if key != "config" \
            else np.array(Boom(), dtype=object)
        path = tmp_path / f"hostile_{key}.npz"
        np.savez(path, **hostile, allow_pickle=True)
        with pytest.raises(ValueError, match="object|0-d string"):
            gru_cy.load(path)
        assert not (tmp_path / "pwned").exists()


def test_archives_that_are_not_npz(saved, tmp_path):
    _, path = saved
    with zipfile.ZipFile(path) as src:
        members = {name: src.read(name) for name in src.namelist()}
    # a stray non-.npy member
    extra = tmp_path / "extra.npz"
    with zipfile.ZipFile(extra, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
        dst.writestr("script.py", b"print('hi')")
    with pytest.raises(ValueError, match="unexpected members"):
        gru_cy.load(extra)
    # a member that is not .npy data
    garbage = tmp_path / "garbage.npz"
    with zipfile.ZipFile(garbage, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, b"\x93NUMPY garbage" if name == "weight_hh_l0.npy" else data)
    with pytest.raises(ValueError, match="weight_hh_l0"):
        gru_cy.load(garbage)
    # not a zip at all, and an empty file
    for content in (b"", b"PK\x03\x04" + b"\0" * 40, b"just text\n" * 20):
        bad = tmp_path / "bad.npz"
        bad.write_bytes(content)
        with pytest.raises(ValueError, match="not a gru_cy .npz file"):
            gru_cy.load(bad)


def test_a_torch_golden_file_is_not_a_model(tmp_path):
    """An .npz of the right kind but another schema (the torch golden files)."""
    golden = os.path.join(os.path.dirname(__file__), "golden", "torch_gru_uni1_float32.npz")
    with pytest.raises(ValueError, match="not a gru_cy model"):
        gru_cy.load(golden)


@pytest.mark.parametrize("make", [
    lambda: gru_cy.GRU(3, 5, num_layers=2),
    lambda: gru_cy.LSTM(3, 5, proj_size=2, dtype=np.float64),
    lambda: gru_cy.RNN(3, 5, bidirectional=True),
    lambda: gru_cy.Jordan(3, 5, 2),
    lambda: gru_cy.Linear(3, 5),
], ids=["gru", "lstm", "rnn", "jordan", "linear"])
def test_parameters_start_on_cache_lines(make, tmp_path):
    """Every parameter starts on a 64-byte boundary (nn.base.PARAM_ALIGN): when built, when
    load_state_dict replaces an array, after pickling and after gru_cy.load."""
    import pickle

    from gru_cy.nn.base import PARAM_ALIGN

    def aligned(m):
        return all(p.__array_interface__["data"][0] % PARAM_ALIGN == 0
                   for p in m.params.values())

    m = make()
    assert aligned(m)
    name = next(iter(m.params))
    m.params[name] = m.params[name].tolist()    # not an array: load_state_dict replaces it
    m.load_state_dict({k: np.asarray(v) for k, v in m.params.items()})
    assert aligned(m)
    assert aligned(pickle.loads(pickle.dumps(m)))
    if hasattr(m, "save"):
        path = str(tmp_path / "m.npz")
        m.save(path)
        assert aligned(gru_cy.load(path))
