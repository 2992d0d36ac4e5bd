"""Type stubs for gru_cy._gru, the GRU kernels (one layer, one direction).

Every array is C-contiguous and of one float dtype (float32 or float64)
throughout a call; lengths is int64. The kernels trust their arguments:
gru_cy.GRU checks and allocates everything before calling them. Shapes and
meanings are in the docstrings of the compiled functions.
"""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_Array = npt.NDArray[_Float]
_Lengths = npt.NDArray[np.int64]

def gru_forward(
    out: _Array,
    col: int,
    h: _Array,
    gates: _Array,
    aux: _Array,
    hprev: _Array,
    gi: _Array,
    gh: _Array,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    bias: _Array,
    lengths: _Lengths,
    reverse: bool,
    reset_after: bool,
    train: bool,
) -> None:
    """Run one GRU layer in one direction over x, writing out[..., col:col + H] and h."""

def gru_backward(
    dx: _Array,
    dh: _Array,
    dw_ih: _Array,
    dw_hh: _Array,
    db_ih: _Array,
    db_hh: _Array,
    dgi: _Array,
    dgh: _Array,
    drh: _Array,
    dout: _Array,
    col: int,
    gates: _Array,
    aux: _Array,
    hprev: _Array,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    lengths: _Lengths,
    reverse: bool,
    reset_after: bool,
    has_bias: bool,
) -> None:
    """Backward of gru_forward(train=True); adds into dx, dw_ih, dw_hh, db_ih, db_hh."""
