"""gru_cy: fast, exact recurrent networks for NumPy (GRU, LSTM, Elman RNN, Jordan).

Compiled kernels of its own (products, a thread pool, one time loop per cell)
behind a PyTorch-shaped API::

    import numpy as np, gru_cy
    gru = gru_cy.GRU(input_size=8, hidden_size=16, num_layers=2, seed=0)
    out, h_n = gru(np.random.rand(50, 4, 8).astype(np.float32))
"""

import sys as _sys
from typing import TYPE_CHECKING

from gru_cy._version import __version__
from gru_cy.nn.gru import GRU
from gru_cy.nn.lstm import LSTM
from gru_cy.nn.rnn import RNN
from gru_cy.nn.jordan import Jordan
from gru_cy.nn.cells import GRUCell, LSTMCell, RNNCell
from gru_cy.nn.layers import Embedding, Linear
from gru_cy.nn import losses, optim
from gru_cy.io import load, load_onnx
from gru_cy.runtime import InferenceSession

if TYPE_CHECKING:
    # The thread budget's signatures as type checkers see them (the
    # functions themselves are imported below).
    def set_num_threads(n: int) -> None: ...

    def get_num_threads() -> int: ...

    def set_backend(name: str) -> None: ...

    def get_backend() -> str: ...

    # Loaded on first use (below): scikit-learn is an optional extra.
    from gru_cy.estimators import RNNClassifier as RNNClassifier
    from gru_cy.estimators import RNNRegressor as RNNRegressor
else:
    from gru_cy._threads import get_backend, get_num_threads, set_backend, set_num_threads

# `import gru_cy.losses` and `from gru_cy.optim import Adam` work too.
_sys.modules.setdefault("gru_cy.losses", losses)
_sys.modules.setdefault("gru_cy.optim", optim)

__all__ = ["GRU", "LSTM", "RNN", "Jordan", "GRUCell", "LSTMCell", "RNNCell", "Embedding",
           "Linear", "losses", "optim", "load", "load_onnx", "InferenceSession",
           "set_num_threads", "get_num_threads", "set_backend", "get_backend", "__version__"]

# The scikit-learn estimators load on first use: importing gru_cy never
# imports scikit-learn, which is an optional extra.
_ESTIMATORS = ("RNNClassifier", "RNNRegressor")


def __getattr__(name: str) -> object:
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


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_ESTIMATORS))
