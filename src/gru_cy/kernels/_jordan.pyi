"""Type stubs for gru_cy.kernels._jordan, the Jordan-network kernels (one layer).

Every array is C-contiguous and of one float dtype (float32 or float64)
throughout a call; lengths is int64. The kernels trust their arguments:
gru_cy.Jordan checks and allocates everything before calling them. Shapes
and meanings are in the docstrings of the compiled functions.
"""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_Array = npt.NDArray[_Float]
_Lengths = npt.NDArray[np.int64]

HIDDEN_ACTIVATIONS: tuple[str, str, str]
OUTPUT_ACTIVATIONS: tuple[str, str, str]

def forward_work_size(T: int, B: int, H: int, O: int, chunk: int, train: bool) -> int:
    """Elements of the workspace jordan_forward needs."""

def backward_work_size(T: int, B: int, H: int, O: int) -> int:
    """Elements of the workspace jordan_backward needs."""

def jordan_forward(
    out: _Array,
    y: _Array,
    hs: _Array | None,
    ys: _Array | None,
    work: _Array,
    x: _Array,
    w_ih: _Array,
    b_ih: _Array | None,
    w_yh: _Array,
    w_hy: _Array,
    b_hy: _Array | None,
    lengths: _Lengths,
    full: bool,
    act: int,
    out_act: int,
    chunk: int,
) -> None:
    """Run the sequence: out (T, B, O) every y_t; y (B, O) y0 in, y_n out."""

def jordan_backward(
    dx: _Array,
    dy: _Array,
    g_wih: _Array,
    g_bih: _Array | None,
    g_wyh: _Array,
    g_why: _Array,
    g_bhy: _Array | None,
    work: _Array,
    dout: _Array,
    hs: _Array,
    ys: _Array,
    x: _Array,
    w_ih: _Array,
    w_yh: _Array,
    w_hy: _Array,
    lengths: _Lengths,
    full: bool,
    act: int,
    out_act: int,
) -> None:
    """Backpropagate through jordan_forward's training run (gradients added into g_*)."""
