"""A user script, type-checked by CI with ``mypy --strict`` against the installed
package (tests/test_typing.py runs the same check when mypy is installed), and run.

It uses every public name of gru_cy: the recurrent modules (GRU, LSTM, RNN, Jordan)
and the cells (GRUCell, LSTMCell, RNNCell) for inference, training and streaming,
Embedding and Linear, the losses and optimisers, the thread budget, saving and
loading (.npz, ONNX, state dicts), the scikit-learn estimators and gru_cy.dask.
Every result is used as the type it is (an array, a pair of arrays, a module), so
an unannotated public API (an untyped call, a result of type Any where a type is
known) fails the check. Parts that need an optional package run only when it is
installed; the type check covers them either way.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

import gru_cy
from gru_cy import losses, optim

Array = npt.NDArray[np.float32]
AnyArray = npt.NDArray[np.generic]


def has(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def make_batch(rng: np.random.Generator, T: int, B: int) -> tuple[Array, Array]:
    x = rng.standard_normal((T, B, 3)).astype(np.float32)
    target = np.cumsum(x[..., :1], axis=0).astype(np.float32)
    return x, target


def train(gru: gru_cy.GRU, steps: int, lr: float = 0.05) -> list[float]:
    rng = np.random.default_rng(0)
    history: list[float] = []
    for _ in range(steps):
        x, target = make_batch(rng, 20, 8)
        out, h_n, tape = gru.forward_train(x)
        diff = out[..., :1] - target
        history.append(float(np.mean(diff ** 2)))
        dout = np.zeros_like(out)
        dout[..., :1] = 2 * diff / diff.size
        gru.zero_grad()
        dx, dh0 = gru.backward(tape, dout)
        assert dx.shape == x.shape and dh0.shape == h_n.shape
        for name, param in gru.params.items():
            param -= lr * gru.grads[name]
    return history


def stream(gru: gru_cy.GRU, x: Array) -> Array:
    h: Array | None = None
    ys: list[Array] = []
    for x_t in x:
        y_t, h = gru.step(x_t, hx=h)
        ys.append(y_t)
    return np.stack(ys)


def recurrent_modules(x: Array) -> None:
    h0 = np.zeros((2, x.shape[1], 16), np.float32)
    gru = gru_cy.GRU(3, 16, num_layers=2, dtype=np.float32, seed=0)
    out, h_n = gru(x, hx=h0, lengths=np.array([10, 7]))
    same, _ = gru(x, h0=h0)                      # the older name of hx
    out2, h_n2 = gru.forward(x, h0)
    _, h_t = gru.step(x[0], h=h_n)
    print(out.shape, h_n.shape, same.shape, out2.shape, h_n2.shape, h_t.shape)

    lstm = gru_cy.LSTM(3, 8, num_layers=2, proj_size=4, seed=1)
    out, (h_n, c_n) = lstm(x)
    out, (h_n, c_n), tape = lstm.forward_train(x, hx=(h_n, c_n))
    dx, (dh0, dc0) = lstm.backward(tape, dout=np.ones_like(out), dhx=(None, c_n))
    y_t, (h, c) = lstm.step(x[0], (h_n, c_n))
    print(dx.shape, dh0.shape, dc0.shape, y_t.shape, h.shape, c.shape)

    rnn = gru_cy.RNN(3, 8, nonlinearity="relu", bidirectional=True, seed=2)
    out, h_n = rnn(x, None, [10, 3])
    out, h_n, rtape = rnn.forward_train(x)
    dx, dh0 = rnn.backward(rtape, None, np.ones_like(h_n))
    print(out.shape, dx.shape, dh0.shape, rnn.num_directions, repr(rnn))

    jordan = gru_cy.Jordan(3, 8, 2, nonlinearity="tanh", output_activation="sigmoid", seed=3)
    out, y_n = jordan(x, y0=None)
    out, y_n, jtape = jordan.forward_train(x, y_n)
    dx, dy0 = jordan.backward(jtape, np.ones_like(out), dy_n=None)
    y_t, y = jordan.step(x[0], y=y_n)
    print(out.shape, dx.shape, dy0.shape, y_t.shape, y.shape, jordan.output_size)

    fast = gru.freeze(precision="int8")          # frozen inference
    out, h_n = fast(x, hx=h0, lengths=None)
    y_t, h_t = fast.step(x[0], hx=h_n)
    head = gru_cy.Linear(16, 2, seed=4).freeze("bf16")
    print(out.shape, y_t.shape, head(y_t).shape, fast.precision, fast.nbytes)


def cells(x: Array) -> None:
    cell = gru_cy.GRUCell(3, 6, seed=0)
    h: Array | None = None
    for x_t in x:
        h = cell(x_t, h)
    assert h is not None
    h2, tape = cell.forward_train(x[0], h)
    dx, dh = cell.backward(tape, np.ones_like(h2))
    unbatched: AnyArray = cell(x[0, 0])

    lcell = gru_cy.LSTMCell(3, 6, bias=False, dtype=np.float32, seed=1)
    hc = lcell(x[0])
    hc = lcell(x[1], hx=hc)
    hc2, ltape = lcell.forward_train(x[2], hc)
    ldx, (ldh, ldc) = lcell.backward(ltape, (np.ones_like(hc2[0]), None))

    rcell = gru_cy.RNNCell(3, 6, bias=True, nonlinearity="relu", seed=2)
    r = rcell(x[0])
    r2, rtape = rcell.forward_train(x[1], r)
    rdx, rdh = rcell.backward(rtape, None)

    fcell = cell.freeze("int8")                  # frozen one-step inference
    fh = fcell(x[0], h)
    print(fh.shape, fcell.precision, fcell.nbytes, fcell.hidden_size)

    copy = gru_cy.GRUCell.from_torch(cell.state_dict())     # a state dict needs no torch
    assert np.array_equal(copy(x[0]), cell(x[0]))
    if has("torch"):
        print(type(rcell.to_torch()).__name__)
    print(dx.shape, dh.shape, unbatched.shape, ldx.shape, ldh.shape, ldc.shape,
          r2.shape, rdx.shape, rdh.shape, repr(lcell), rcell.nonlinearity)


def layers_losses_optimisers(x: Array) -> float:
    rng = np.random.default_rng(4)
    emb = gru_cy.Embedding(10, 3, padding_idx=0, seed=0)
    gru = gru_cy.GRU(3, 8, seed=1)
    head = gru_cy.Linear(8, 2, bias=True, seed=2)
    ids = rng.integers(0, 10, size=(12, 4))
    labels = rng.integers(0, 2, size=4)
    opt = optim.Adam([emb, gru, head], lr=1e-2, betas=(0.9, 0.99))
    last = 0.0
    for _ in range(3):
        opt.zero_grad()
        e, etape = emb.forward_train(ids)
        out, h_n, tape = gru.forward_train(e)
        logits, ltape = head.forward_train(h_n[-1])
        loss, dlogits = losses.cross_entropy(logits, labels, label_smoothing=0.1)
        dh = head.backward(ltape, dlogits)
        dx, _ = gru.backward(tape, None, dh[None])
        emb.backward(etape, dx)
        norm = optim.clip_grad_norm([emb, gru, head], max_norm=1.0)
        opt.step()
        last = float(loss) + 0.0 * float(norm)
    per_sample, _ = losses.cross_entropy(head(gru(emb(ids))[1][-1]), labels, reduction="none")
    mse, dpred = losses.mse_loss(gru_cy.Linear(3, 2)(x[-1]), np.zeros((2, 2), np.float32))
    sgd = optim.SGD([head], lr=0.1, momentum=0.9, nesterov=True)
    sgd.step()
    adamw = optim.AdamW(head, lr=1e-3, weight_decay=0.01)
    adamw.lr = 5e-4
    state = opt.state_dict()
    opt.load_state_dict(state)
    print(per_sample.shape, float(mse), dpred.shape, adamw.lr, len(state["param_groups"]))
    return last


def files(x: Array) -> None:
    gru = gru_cy.GRU(3, 16, num_layers=2, dtype=np.float32, seed=0)
    state: dict[str, AnyArray] = gru.state_dict()
    copy = gru_cy.GRU(3, 16, num_layers=2)
    missing, unexpected = copy.load_state_dict(state)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "gru.npz")
        gru.save(path)
        loaded = gru_cy.load(path, cls=gru_cy.GRU)        # typed by cls
        anything = gru_cy.load(path)                      # the class the file names
        same, _ = loaded(x)
        onnx_path = os.path.join(folder, "gru.onnx")
        gru.to_onnx(onnx_path)
        from_onnx = gru_cy.load_onnx(onnx_path)
        print(same.shape, type(anything).__name__, type(from_onnx).__name__, missing, unexpected)


def estimators() -> None:
    if not has("sklearn"):
        return
    rng = np.random.default_rng(5)
    X = rng.standard_normal((40, 6, 2)).astype(np.float32)
    y = (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = gru_cy.RNNClassifier(cell="gru", hidden_size=8, max_iter=2, random_state=0)
        clf = clf.fit(X, y)
        reg = gru_cy.RNNRegressor(cell="jordan", hidden_size=8, max_iter=2).fit(X, y * 1.0)
        clf.partial_fit(X, y)
    labels: AnyArray = clf.predict(X)
    proba: npt.NDArray[np.float64] = clf.predict_proba(X)
    accuracy: float = clf.score(X, y)
    r2: float = reg.score(X, y * 1.0)
    print(labels.shape, proba.shape, accuracy, r2, reg.predict(X).shape)
    if has("dask") and has("distributed"):
        dask_predict(clf, X)


def dask_array(X: Array, rows: int) -> Any:
    """A dask array of X (dask's own functions are not all annotated)."""
    import dask.array as da  # type: ignore[import-not-found, unused-ignore]

    from_array: Any = da.from_array
    return from_array(X, chunks=(rows,) + X.shape[1:])


def dask_predict(clf: gru_cy.RNNClassifier, X: Array) -> None:
    import gru_cy.dask

    lazy = gru_cy.dask.predict(clf, dask_array(X, 10))
    computed: Any = lazy.compute
    print(computed().shape)


def dask_fit(client: object, clf: gru_cy.RNNClassifier, X: Array, y: AnyArray
             ) -> gru_cy.RNNClassifier:
    """Data-parallel training (needs a dask.distributed cluster; not run here)."""
    import gru_cy.dask

    return gru_cy.dask.fit(clf, dask_array(X, 20), y, client=client)


def main() -> None:
    gru_cy.set_num_threads(1)
    threads: int = gru_cy.get_num_threads()
    version: str = gru_cy.__version__
    gru = gru_cy.GRU(3, 16, num_layers=2, dtype=np.float32, seed=0)
    history = train(gru, steps=5)
    print(f"gru_cy {version}, {threads} thread(s): loss {history[0]:.4f} -> {history[-1]:.4f}")
    x = np.random.default_rng(1).standard_normal((10, 2, 3)).astype(np.float32)
    print(stream(gru, x[:, :1]).shape, gru.hidden_size, gru.num_layers)
    recurrent_modules(x)
    cells(x)
    print(f"toolkit loss {layers_losses_optimisers(x):.4f}")
    files(x)
    estimators()


if __name__ == "__main__":
    main()
