"""``python -m gru_cy convert SRC DST``: every pair of formats, and helpful failures.

.npz and .onnx need no optional package (gru_cy reads and writes both itself); .pt/.pth need
torch and .keras needs Keras, and those cases skip without them. Each conversion must keep
the weights exactly (Keras reset_after=False aside, where the two biases are folded into
one: outputs still agree), and return 0; unknown extensions and missing files return 2, files
that cannot be converted return 1, each with a message naming the problem.
"""

import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import gru_cy  # noqa: E402
from gru_cy.io.convert import convert_cli  # noqa: E402

NEEDS = {".npz": None, ".onnx": None, ".pt": "torch", ".pth": "torch", ".keras": "keras"}


def _convert(capsys, src, dst):
    code = convert_cli(str(src), str(dst))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def _read(path):
    """Load any supported file back into a gru_cy module, by extension."""
    ext = os.path.splitext(str(path))[1]
    if ext == ".npz":
        return gru_cy.load(path)
    if ext == ".onnx":
        return gru_cy.load_onnx(path)
    if ext in (".pt", ".pth"):
        import torch

        return gru_cy.GRU.from_torch(torch.load(path, weights_only=True))
    import keras

    return gru_cy.GRU.from_keras(keras.saving.load_model(path, compile=False))


@pytest.mark.parametrize("src_ext", [".npz", ".onnx", ".pt", ".keras"])
@pytest.mark.parametrize("dst_ext", [".npz", ".onnx", ".pth", ".keras"])
def test_every_pair(tmp_path, capsys, src_ext, dst_ext):
    for ext in {src_ext, dst_ext}:
        if NEEDS[ext]:
            pytest.importorskip(NEEDS[ext])
    gru = gru_cy.GRU(3, 4, num_layers=2, bidirectional=True, seed=0)
    src, dst = tmp_path / f"src{src_ext}", tmp_path / f"dst{dst_ext}"
    gru.save(tmp_path / "seed.npz")
    code, _, err = _convert(capsys, tmp_path / "seed.npz", src)
    assert code == 0, err
    code, out, err = _convert(capsys, src, dst)
    assert code == 0, err
    assert f"wrote {dst}" in out
    _same_weights(gru, _read(dst))


def test_reset_before_through_every_format(tmp_path, capsys):
    """reset_after=False: .npz and .onnx keep it exactly; .keras keeps the function."""
    gru = gru_cy.GRU(3, 4, reset_after=False, go_backwards=True, seed=1)
    gru.save(tmp_path / "m.npz")
    assert _convert(capsys, tmp_path / "m.npz", tmp_path / "m.onnx")[0] == 0
    back = gru_cy.load_onnx(tmp_path / "m.onnx")
    assert not back.reset_after and back.go_backwards
    _same_weights(gru, back)
    code, _, err = _convert(capsys, tmp_path / "m.npz", tmp_path / "m.pt")
    assert code == 1 and "reset_after=False" in err and not (tmp_path / "m.pt").exists()
    pytest.importorskip("keras")
    assert _convert(capsys, tmp_path / "m.npz", tmp_path / "m.keras")[0] == 0
    back = _read(tmp_path / "m.keras")
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(back(x.transpose(1, 0, 2))[0].transpose(1, 0, 2), gru(x)[0],
                               rtol=1e-6, atol=1e-6)


def test_usage_errors(tmp_path, capsys):
    gru_cy.GRU(3, 4).save(tmp_path / "m.npz")
    code, _, err = _convert(capsys, tmp_path / "m.npz", tmp_path / "m.h5")
    assert code == 2 and "m.h5" in err and ".keras" in err and ".onnx" in err
    code, _, err = _convert(capsys, tmp_path / "m.bin", tmp_path / "m.onnx")
    assert code == 2 and "extension" in err
    code, _, err = _convert(capsys, tmp_path / "absent.npz", tmp_path / "m.onnx")
    assert code == 2 and "no such file" in err


def test_unconvertible_files(tmp_path, capsys):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    code, _, err = _convert(capsys, tmp_path / "junk.npz", tmp_path / "m.onnx")
    assert code == 1 and "not a gru_cy .npz file" in err
    (tmp_path / "junk.onnx").write_bytes(b"\x08")
    code, _, err = _convert(capsys, tmp_path / "junk.onnx", tmp_path / "m.npz")
    assert code == 1 and "not a readable ONNX model" in err
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.npz").exists()


def test_torch_files(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    model = torch.nn.Module()
    model.rnn = torch.nn.GRU(3, 4, num_layers=2, batch_first=True)
    model.head = torch.nn.Linear(4, 2)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    code, out, err = _convert(capsys, tmp_path / "model.pt", tmp_path / "m.npz")
    assert code == 0, err
    assert "ignored 2 entries" in out and "head.weight" in out
    _same_weights(gru_cy.GRU.from_torch(model.rnn), gru_cy.load(tmp_path / "m.npz"))
    # a whole pickled module is refused by torch.load(weights_only=True), not unpickled
    torch.save(model, tmp_path / "pickled.pt")
    code, _, err = _convert(capsys, tmp_path / "pickled.pt", tmp_path / "p.npz")
    assert code == 1 and "weights_only=True" in err and "state_dict" in err
    # an LSTM's state dict is recognised as such and converts to a gru_cy.LSTM
    torch.save(torch.nn.LSTM(3, 4).state_dict(), tmp_path / "lstm.pt")
    code, _, err = _convert(capsys, tmp_path / "lstm.pt", tmp_path / "l.npz")
    assert code == 0 and type(gru_cy.load(tmp_path / "l.npz")) is gru_cy.LSTM
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "model.pt").read_bytes()[:100])
    code, _, err = _convert(capsys, tmp_path / "trunc.pt", tmp_path / "t.npz")
    assert code == 1 and "trunc.pt" in err


def test_keras_model_with_other_layers(tmp_path, capsys):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4),
                              keras.layers.Dense(1, name="score")])
    model.save(tmp_path / "m.keras")
    code, _, err = _convert(capsys, tmp_path / "m.keras", tmp_path / "m.npz")
    assert code == 1 and "Dense 'score'" in err


def test_module_command_line(tmp_path):
    """The real entry point, in a fresh interpreter."""
    gru_cy.GRU(3, 4, seed=0).save(tmp_path / "m.npz")
    run = subprocess.run([sys.executable, "-m", "gru_cy", "convert", str(tmp_path / "m.npz"),
                          str(tmp_path / "m.onnx")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout
    _same_weights(gru_cy.load(tmp_path / "m.npz"), gru_cy.load_onnx(tmp_path / "m.onnx"))
    run = subprocess.run([sys.executable, "-m", "gru_cy", "convert", str(tmp_path / "m.npz"),
                          str(tmp_path / "m.txt")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and "supported" in run.stderr
