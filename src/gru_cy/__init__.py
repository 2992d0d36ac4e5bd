"""gru_cy: fast, exact recurrent networks for NumPy (GRU, LSTM, Elman RNN, Jordan).

Cython kernels over BLAS (through SciPy) behind a PyTorch-shaped API::

    import numpy as np, gru_cy
    gru = gru_cy.GRU(input_size=8, hidden_size=16, num_layers=2, seed=0)
    out, h_n = gru(np.random.rand(50, 4, 8).astype(np.float32))
"""

import sys as _sys

from gru_cy._version import __version__
from gru_cy.nn.gru import GRU
from gru_cy.nn.lstm import LSTM
from gru_cy.nn.rnn import RNN
from gru_cy.nn.jordan import Jordan
from gru_cy.nn.layers import Embedding, Linear
from gru_cy.nn import losses, optim
from gru_cy.io import load, load_onnx
from gru_cy.runtime import InferenceSession
from gru_cy._threads import get_num_threads, set_num_threads

# `import gru_cy.losses` and `from gru_cy.optim import Adam` work too.
_sys.modules.setdefault("gru_cy.losses", losses)
_sys.modules.setdefault("gru_cy.optim", optim)

__all__ = ["GRU", "LSTM", "RNN", "Jordan", "Embedding", "Linear", "losses", "optim", "load",
           "load_onnx", "InferenceSession", "set_num_threads", "get_num_threads", "__version__"]

# The scikit-learn estimators load on first use: importing gru_cy never
# imports scikit-learn, which is an optional extra.
_ESTIMATORS = ("RNNClassifier", "RNNRegressor")


def __getattr__(name):
    if name in _ESTIMATORS:
        try:
            from gru_cy import estimators
        except ImportError as exc:
            if getattr(exc, "name", None) is None or not exc.name.startswith("sklearn"):
                raise
            raise ImportError(
                f"gru_cy.{name} needs scikit-learn: pip install gru_cy[sklearn]") from exc
        return getattr(estimators, name)
    raise AttributeError(f"module 'gru_cy' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_ESTIMATORS))
