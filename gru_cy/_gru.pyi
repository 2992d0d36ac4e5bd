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

def use_columns(B: int, H: int, full: bool) -> bool:
    """True when the kernels run (B, H) in the columns (transposed) layout."""

def gru_forward(
    out: _Array,
    col: int,
    h: _Array,
    gates: _Array,
    aux: _Array,
    hprev: _Array,
    gi: _Array,
    chunk: int,
    gh: _Array,
    w_t: _Array,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    b_ih: _Array,
    b_hh: _Array,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    reset_after: bool,
    train: bool,
    columns: bool,
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
    work: _Array,
    x_masked: _Array,
    dout: _Array,
    col: int,
    gates: _Array,
    aux: _Array,
    hprev: _Array,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    reset_after: bool,
    has_bias: bool,
    columns: bool,
) -> None:
    """Backward of gru_forward(train=True); adds into dx, dw_ih, dw_hh, db_ih, db_hh."""

def gemm_floor(
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    chunk: int,
    reset_after: bool,
    train: bool,
    repeats: int,
) -> npt.NDArray[np.float64]:
    """Seconds per run of only the BLAS calls of one layer and direction (the benchmark floor)."""
