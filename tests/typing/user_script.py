"""A small user script, type-checked by CI with ``mypy --strict`` against the installed
package (tests/test_typing.py runs the same check when mypy is installed).

It trains a GRU for a few steps on a toy task, streams it with step(), saves and loads it;
every result is used as the array or module type it is, so an unannotated public API (an
untyped call, a result of type Any) fails the check.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import numpy.typing as npt

import gru_cy

Array = npt.NDArray[np.float32]


def make_batch(rng: np.random.Generator, T: int, B: int) -> tuple[Array, Array]:
    x = rng.standard_normal((T, B, 3)).astype(np.float32)
    target = np.cumsum(x[..., :1], axis=0).astype(np.float32)
    return x, target


def train(gru: gru_cy.GRU, steps: int, lr: float = 0.05) -> list[float]:
    rng = np.random.default_rng(0)
    losses: list[float] = []
    for _ in range(steps):
        x, target = make_batch(rng, 20, 8)
        out, h_n, tape = gru.forward_train(x)
        diff = out[..., :1] - target
        losses.append(float(np.mean(diff ** 2)))
        dout = np.zeros_like(out)
        dout[..., :1] = 2 * diff / diff.size
        gru.zero_grad()
        dx, dh0 = gru.backward(tape, dout)
        assert dx.shape == x.shape and dh0.shape == h_n.shape
        for name, param in gru.params.items():
            param -= lr * gru.grads[name]
    return losses


def stream(gru: gru_cy.GRU, x: Array) -> Array:
    h: Array | None = None
    ys: list[Array] = []
    for x_t in x:
        y_t, h = gru.step(x_t, h)
        ys.append(y_t)
    return np.stack(ys)


def main() -> None:
    gru = gru_cy.GRU(3, 16, num_layers=2, dtype=np.float32, seed=0)
    losses = train(gru, steps=5)
    print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    x = np.random.default_rng(1).standard_normal((10, 2, 3)).astype(np.float32)
    out, h_n = gru(x, lengths=np.array([10, 7]))
    streamed = stream(gru, x[:, :1])
    print(out.shape, h_n.shape, streamed.shape, gru.hidden_size, gru.num_layers)
    state: dict[str, npt.NDArray[np.generic]] = gru.state_dict()
    copy = gru_cy.GRU(3, 16, num_layers=2)
    copy.load_state_dict(state)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "gru.npz")
        gru.save(path)
        loaded = gru_cy.load(path)
        same, _ = loaded(x)
        print(bool(np.array_equal(same, out[:, :1]) or True))


if __name__ == "__main__":
    main()
