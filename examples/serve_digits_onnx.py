"""Train in PyTorch, export to ONNX, serve with gru_cy.InferenceSession: handwritten digits.

scikit-learn's 8x8 digits (shipped with scikit-learn, no download) become sequences
of 8 steps with 8 features (one pixel row per step). A whole model, a convolutional
front end over the rows, a GRU and a softmax head,

    Conv1d(8 -> 16, kernel 3) -> ReLU -> GRU(16 -> 32) -> last step -> Linear(32 -> 10) -> softmax

is trained with PyTorch on 75% of the digits, exported with torch.onnx.export
(dynamic batch), and served by gru_cy.InferenceSession with NumPy and SciPy only:
the script reports the test accuracy of the served model, its largest difference
from PyTorch's probabilities (and ONNX Runtime's, when installed), and the time per
call at batch 1 and for the whole test set, one thread each.

    python examples/serve_digits_onnx.py [--epochs 40] [--out digits.onnx]

Needs torch for the training and the export; the serving side needs neither torch nor
onnxruntime: a deployment script only does the last part.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import gru_cy  # noqa: E402

HIDDEN, BATCH, LR = 32, 32, 3e-3


def train_and_export(X_train, y_train, epochs, path, seed=0):
    """Train the model with PyTorch and write it to path; returns the torch module."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)

    class DigitReader(nn.Module):
        def __init__(self):
            super().__init__()
            self.front = nn.Conv1d(8, 16, kernel_size=3, padding=1)
            self.gru = nn.GRU(16, HIDDEN, batch_first=True)
            self.head = nn.Linear(HIDDEN, 10)

        def forward(self, rows):                        # (B, 8 steps, 8 pixels)
            x = torch.relu(self.front(rows.transpose(1, 2))).transpose(1, 2)
            y, _ = self.gru(x)
            return torch.softmax(self.head(y[:, -1]), dim=-1)

    net = DigitReader()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    x_all = torch.tensor(X_train, dtype=torch.float32)
    y_all = torch.tensor(y_train, dtype=torch.int64)
    for _ in range(epochs):
        order = torch.randperm(len(x_all))
        for s in range(0, len(x_all), BATCH):
            idx = order[s:s + BATCH]
            opt.zero_grad()
            probs = net(x_all[idx])
            nn.functional.nll_loss(torch.log(probs + 1e-9), y_all[idx]).backward()
            opt.step()
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x_all[:2],), path, input_names=["rows"], output_names=["probs"],
                          dynamic_axes={"rows": {0: "batch"}, "probs": {0: "batch"}},
                          dynamo=False, opset_version=17)
    return net


def per_call(fn, repeats):
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main(argv=None):
    ap = argparse.ArgumentParser(description="digits: train in PyTorch, serve with gru_cy")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=None, help="where to write the ONNX file")
    args = ap.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("this example trains and exports with PyTorch: pip install torch")
        return 1

    digits = load_digits()
    X = (digits.data.reshape(-1, 8, 8) / 16.0).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    path = args.out or os.path.join(tempfile.mkdtemp(), "digits.onnx")
    start = time.perf_counter()
    net = train_and_export(X_train, y_train, args.epochs, path)
    print(f"trained {args.epochs} epochs with PyTorch and exported to {path} "
          f"({os.path.getsize(path)} bytes) in {time.perf_counter() - start:.1f}s\n")

    # --- serving: what a deployment script does, NumPy and SciPy only -------------------
    session = gru_cy.InferenceSession(path)
    print("inputs: ", session.get_inputs())
    print("outputs:", session.get_outputs())
    (probs,) = session.run(None, {"rows": X_test})
    accuracy = float(np.mean(probs.argmax(1) == y_test))
    print(f"\ntest accuracy of the served model: {accuracy:.4f} on {len(X_test)} digits")

    with torch.no_grad():
        reference = net(torch.from_numpy(X_test)).numpy()
    print(f"largest difference from PyTorch's probabilities: "
          f"{np.abs(probs - reference).max():.2e}")
    timings = [("gru_cy.InferenceSession", session)]
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        peer = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        theirs = peer.run(None, {"rows": X_test})[0]
        print(f"largest difference from ONNX Runtime's:             "
              f"{np.abs(probs - theirs).max():.2e}")
        timings.append(("ONNX Runtime", peer))
    except ImportError:
        print("(onnxruntime is not installed: no comparison with it)")

    one = {"rows": X_test[:1]}
    every = {"rows": X_test}
    print(f"\n{'runtime':<26} {'batch 1':>10} {f'batch {len(X_test)}':>12}")
    for name, s in timings:
        print(f"{name:<26} {per_call(lambda: s.run(None, one), 2000) * 1e6:8.1f}us "
              f"{per_call(lambda: s.run(None, every), 50) * 1e3:10.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
