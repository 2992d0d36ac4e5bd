"""gru_cy: a fast, exact GRU for NumPy.

Cython kernels over BLAS (through SciPy) behind a PyTorch-shaped API::

    import numpy as np, gru_cy
    gru = gru_cy.GRU(input_size=8, hidden_size=16, num_layers=2, seed=0)
    out, h_n = gru(np.random.rand(50, 4, 8).astype(np.float32))
"""

from gru_cy._version import __version__
from gru_cy.nn.gru import GRU
from gru_cy.nn.lstm import LSTM
from gru_cy.nn.layers import Embedding, Linear
from gru_cy.nn import losses, optim
from gru_cy.io import load, load_onnx

__all__ = ["GRU", "LSTM", "Embedding", "Linear", "losses", "optim", "load", "load_onnx",
           "__version__"]
