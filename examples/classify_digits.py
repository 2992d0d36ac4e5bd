"""Sequence classification: handwritten digits read row by row.

scikit-learn's 8x8 digits (shipped with scikit-learn, no download) become
sequences of 8 steps with 8 features (one pixel row per step). A GRU
classifier from gru_cy is trained on 75% of them and scored on the rest,
against logistic regression on the flattened pixels and the same network
(GRU(8 -> 64) -> last state -> Linear(64 -> 10), Adam, same epochs and
batch size) trained by a PyTorch loop when torch is installed.

    pip install "gru_cy[examples]"     # scikit-learn, statsmodels
    python examples/classify_digits.py [--epochs 30] [--precision fp32|bf16|int8|all]

Both libraries run on one thread, so that the times compare like with like.
--precision also scores the trained classifier with its network frozen at
bf16 and/or int8 (inference_precision): accuracy, and how many test
predictions differ from float32's.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from _needs import need  # noqa: E402  (next to this script)

need(sklearn="scikit-learn")

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import gru_cy  # noqa: E402

HIDDEN, BATCH, LR = 64, 32, 3e-3


def train_torch(X_train, y_train, X_test, epochs, seed=0):
    """The same network and training in PyTorch: (test predictions, seconds)."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(X_train.shape[2], HIDDEN, batch_first=True)
            self.out = nn.Linear(HIDDEN, 10)

        def forward(self, x):
            return self.out(self.gru(x)[1][-1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    x_all = torch.tensor(X_train, dtype=torch.float32)
    y_all = torch.tensor(y_train, dtype=torch.int64)
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
        pred = net(torch.tensor(X_test, dtype=torch.float32)).argmax(1).numpy()
    return pred, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description="digits as 8-step sequences")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8", "all"],
                    help="also score the classifier at this inference precision")
    args = ap.parse_args(argv)

    digits = load_digits()
    X = digits.data.reshape(-1, 8, 8) / 16.0          # (n_samples, 8 steps, 8 features)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    print(f"digits: {len(X_train)} training and {len(X_test)} test sequences of 8 steps x 8 "
          f"features; {args.epochs} epochs, batch {BATCH}, hidden {HIDDEN}, 1 thread\n")

    rows = []
    start = time.perf_counter()
    baseline = LogisticRegression(max_iter=5000).fit(X_train.reshape(len(X_train), -1), y_train)
    rows.append(("logistic regression (flat pixels)",
                 baseline.score(X_test.reshape(len(X_test), -1), y_test),
                 time.perf_counter() - start))

    clf = gru_cy.RNNClassifier(hidden_size=HIDDEN, batch_size=BATCH, learning_rate_init=LR,
                               max_iter=args.epochs, random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    rows.append(("gru_cy RNNClassifier (GRU 64)", clf.score(X_test, y_test), seconds))

    try:
        pred, seconds = train_torch(X_train, y_train, X_test, args.epochs)
        rows.append(("PyTorch loop (GRU 64)", float(np.mean(pred == y_test)), seconds))
    except ImportError:
        print("(torch is not installed: PyTorch comparison skipped)")

    print(f"{'model':<36} {'test accuracy':>13} {'fit time':>9}")
    for name, acc, secs in rows:
        print(f"{name:<36} {acc:13.4f} {secs:8.2f}s")
    if len(rows) == 3:
        print(f"\ngru_cy trains {rows[2][2] / rows[1][2]:.1f}x faster than the PyTorch loop")
    if args.precision != "fp32":
        score_precisions(clf, X_test, y_test,
                         ["bf16", "int8"] if args.precision == "all" else [args.precision])


def score_precisions(clf, X_test, y_test, precisions):
    """The trained classifier's test accuracy with its network frozen at each precision."""
    clf.set_params(inference_precision="fp32")
    base = clf.predict(X_test)
    print(f"\n{'inference precision':<20} {'test accuracy':>13} {'predictions changed':>20}")
    print(f"{'fp32':<20} {np.mean(base == y_test):13.4f} {0:>20}")
    for precision in precisions:
        clf.set_params(inference_precision=precision)
        pred = clf.predict(X_test)
        changed = int(np.sum(pred != base))
        print(f"{precision:<20} {np.mean(pred == y_test):13.4f} "
              f"{f'{changed} of {len(pred)}':>20}")
    clf.set_params(inference_precision="fp32")


if __name__ == "__main__":
    main()
