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


def _main(monkeypatch, capsys, argv, argv0):
    from gru_cy.__main__ import main

    monkeypatch.setattr(sys, "argv", [argv0, *argv])
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_the_formats_and_exit_codes(monkeypatch, capsys):
    code, out, _ = _main(monkeypatch, capsys, ["convert", "--help"], "/x/gru_cy/__main__.py")
    assert code == 0
    assert out.startswith("usage: python -m gru_cy convert")
    for ext in (".npz", ".onnx", ".pt", ".pth", ".keras"):
        assert ext in out
    assert "exit status" in out and "  3  " in out
    code, out, _ = _main(monkeypatch, capsys, ["--help"], "/x/gru_cy/__main__.py")
    assert code == 0 and "convert" in out
    assert "``" not in out  # no raw reStructuredText


def test_console_script_names_itself(monkeypatch, capsys):
    code, out, _ = _main(monkeypatch, capsys, ["--help"], "/usr/local/bin/gru-cy")
    assert code == 0 and out.startswith("usage: gru-cy ")
    code, _, err = _main(monkeypatch, capsys, ["convert", "only-one.npz"], "/usr/local/bin/gru-cy")
    assert code == 2 and err.startswith("usage: gru-cy convert")


def test_one_exit_code_per_kind_of_error(tmp_path, monkeypatch, capsys):
    gru_cy.GRU(3, 4, seed=0).save(tmp_path / "m.npz")
    # usage: bad arguments, unknown extension, missing source
    assert _main(monkeypatch, capsys, ["convert", str(tmp_path / "m.npz")], "gru-cy")[0] == 2
    assert _main(monkeypatch, capsys, ["convert", str(tmp_path / "m.npz"), "a.onnx", "extra"],
                 "gru-cy")[0] == 2
    assert _convert(capsys, tmp_path / "m.npz", tmp_path / "m.h5")[0] == 2
    assert _convert(capsys, tmp_path / "none.npz", tmp_path / "m.onnx")[0] == 2
    # conversion failures: unreadable source, unwritable destination
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01")
    assert _convert(capsys, tmp_path / "bad.onnx", tmp_path / "m2.npz")[0] == 1
    code, _, err = _convert(capsys, tmp_path / "m.npz", tmp_path / "no" / "such" / "m.onnx")
    assert code == 1 and "cannot convert" in err
    # a missing optional package
    monkeypatch.setitem(sys.modules, "torch", None)  # "import torch" raises ImportError
    code, _, err = _convert(capsys, tmp_path / "m.npz", tmp_path / "m.pt")
    assert code == 3 and "torch" in err


def test_memory_errors_never_escape(tmp_path, monkeypatch, capsys):
    """Running out of memory (for whatever reason) is a failed conversion, not a traceback;
    and a hostile ONNX file that asks for gigabytes is refused before that."""
    import gru_cy.io.convert as convert

    gru_cy.GRU(3, 4, seed=0).save(tmp_path / "m.npz")

    def exhausted(*args):
        raise MemoryError

    monkeypatch.setattr(convert, "_read_model", exhausted)
    code, _, err = _convert(capsys, tmp_path / "m.npz", tmp_path / "m.onnx")
    assert code == 1 and "out of memory" in err
    monkeypatch.undo()
    bomb = tmp_path / "bomb.onnx"   # ConstantOfShape of 2**28 doubles as a GRU's W
    bomb.write_bytes(_constant_of_shape_model([1, 1 << 28], value_type=11))
    code, _, err = _convert(capsys, bomb, tmp_path / "b.npz")
    assert code == 1 and "memory limit" in err


def _constant_of_shape_model(shape, value_type):
    def varint(v):
        out = bytearray()
        while True:
            out.append((v & 0x7F) | (0x80 if v > 0x7F else 0))
            v >>= 7
            if not v:
                return bytes(out)

    def field(num, value):
        if isinstance(value, int):
            return varint(num << 3) + varint(value)
        value = value.encode() if isinstance(value, str) else value
        return varint(num << 3 | 2) + varint(len(value)) + value

    shape_tensor = (field(1, len(shape)) + field(2, 7) + field(8, "shape")
                    + field(9, np.asarray(shape, "<i8").tobytes()))
    value = field(1, 1) + field(2, value_type) + field(9, b"\0" * 8)
    fill = (field(1, "shape") + field(2, "W") + field(4, "ConstantOfShape")
            + field(5, field(1, "value") + field(20, 4) + field(5, value)))
    gru = field(1, "X") + field(1, "W") + field(1, "W") + field(2, "Y") + field(4, "GRU")
    graph = (field(1, fill) + field(1, gru) + field(5, shape_tensor)
             + field(11, field(1, "X")) + field(12, field(1, "Y")))
    return field(1, 8) + field(7, graph) + field(8, field(2, 17))


def test_torch_rnn_state_dict_notes_the_assumed_nonlinearity(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if not hasattr(gru_cy, "RNN"):
        pytest.skip("no Elman RNN in this gru_cy")
    module = torch.nn.RNN(3, 4, num_layers=2)
    torch.save(module.state_dict(), tmp_path / "rnn.pt")
    code, out, err = _convert(capsys, tmp_path / "rnn.pt", tmp_path / "rnn.npz")
    assert code == 0, err
    assert "nonlinearity" in out and "tanh" in out
    loaded = gru_cy.load(tmp_path / "rnn.npz")
    assert type(loaded) is gru_cy.RNN and loaded.nonlinearity == "tanh"
    _same_weights(gru_cy.RNN.from_torch(module), loaded)
