"""One-step-ahead forecasting: yearly sunspot numbers, 1700-2008.

statsmodels ships the series (no download). Each sample is a window of the
previous WINDOW years (a univariate sequence) and the target is the next
year. The first 80% of the windows (in time) train, the last 20% test. A
GRU regressor from gru_cy is compared with the persistence forecast (next
year = this year) and with the same network (GRU(1 -> 32) -> last state ->
Linear(32 -> 1), Adam, MSE, same epochs and batch size) trained by a PyTorch
loop when torch is installed. RMSE is in sunspot numbers.

    pip install "gru_cy[examples]"     # scikit-learn, statsmodels
    python examples/forecast_sunspots.py [--epochs 150] [--precision fp32|bf16|int8|all]

Both libraries run on one thread, so that the times compare like with like.
--precision also scores the trained regressor with its network frozen at
bf16 and/or int8 (inference_precision): RMSE, and the largest change of a
forecast against float32's.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from _needs import need  # noqa: E402  (next to this script)

need(sklearn="scikit-learn", statsmodels="statsmodels")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from statsmodels.datasets import sunspots  # noqa: E402

import gru_cy  # noqa: E402

WINDOW, HIDDEN, BATCH, LR = 20, 32, 16, 3e-3


def windows(series, width):
    """(n, width) windows and the value that follows each."""
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], width)
    return X.copy(), series[width:].copy()


def train_torch(X_train, y_train, X_test, epochs, seed=0):
    """The same network and training in PyTorch: (test predictions, seconds)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(1, HIDDEN, batch_first=True)
            self.out = nn.Linear(HIDDEN, 1)

        def forward(self, x):
            return self.out(self.gru(x)[1][-1])[:, 0]

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = nn.MSELoss()
    x_all = torch.tensor(X_train[:, :, None], dtype=torch.float32)
    y_all = torch.tensor(y_train, dtype=torch.float32)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x_all))
        for s in range(0, len(x_all), BATCH):
            idx = order[s:s + BATCH]
            opt.zero_grad()
            loss_fn(net(x_all[idx]), y_all[idx]).backward()
            opt.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        pred = net(torch.tensor(X_test[:, :, None], dtype=torch.float32)).numpy()
    return pred, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description="one-step-ahead sunspot forecasts")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8", "all"],
                    help="also score the regressor at this inference precision")
    args = ap.parse_args(argv)

    series = sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    X, y = windows(series, WINDOW)
    cut = int(0.8 * len(X))
    # Scale with the training part only (no peeking at the test years).
    mean, std = series[:cut + WINDOW].mean(), series[:cut + WINDOW].std()
    Xs, ys = (X - mean) / std, (y - mean) / std
    X_train, X_test, y_train, y_test = Xs[:cut], Xs[cut:], ys[:cut], y[cut:]
    print(f"sunspots: {len(series)} years; windows of {WINDOW} years; {len(X_train)} training "
          f"and {len(X_test)} test forecasts; {args.epochs} epochs, batch {BATCH}, hidden "
          f"{HIDDEN}, 1 thread\n")

    def rmse(pred_scaled):
        return float(np.sqrt(np.mean((pred_scaled * std + mean - y_test) ** 2)))

    rows = [("persistence (next = last)", rmse(X_test[:, -1]), 0.0)]
    reg = gru_cy.RNNRegressor(hidden_size=HIDDEN, batch_size=BATCH, learning_rate_init=LR,
                              max_iter=args.epochs, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, y_train)                     # 2-D X: univariate sequences
    seconds = time.perf_counter() - start
    rows.append((f"gru_cy RNNRegressor (GRU {HIDDEN})", rmse(reg.predict(X_test)), seconds))
    try:
        pred, seconds = train_torch(X_train, y_train, X_test, args.epochs)
        rows.append((f"PyTorch loop (GRU {HIDDEN})", rmse(pred), seconds))
    except ImportError:
        print("(torch is not installed: PyTorch comparison skipped)")

    print(f"{'model':<32} {'test RMSE':>9} {'fit time':>9}")
    for name, err, secs in rows:
        print(f"{name:<32} {err:9.2f} {secs:8.2f}s")
    if len(rows) == 3:
        print(f"\ngru_cy trains {rows[2][2] / rows[1][2]:.1f}x faster than the PyTorch loop")
    if args.precision != "fp32":
        base = reg.predict(X_test) * std + mean
        print(f"\n{'inference precision':<20} {'test RMSE':>9} {'largest change (sunspots)':>26}")
        print(f"{'fp32':<20} {rmse(reg.predict(X_test)):9.2f} {0.0:26.3f}")
        for precision in ["bf16", "int8"] if args.precision == "all" else [args.precision]:
            reg.set_params(inference_precision=precision)
            pred = reg.predict(X_test)
            change = float(np.abs(pred * std + mean - base).max())
            print(f"{precision:<20} {rmse(pred):9.2f} {change:26.3f}")
        reg.set_params(inference_precision="fp32")


if __name__ == "__main__":
    main()
