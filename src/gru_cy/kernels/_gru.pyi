"""Type stubs for gru_cy.kernels._gru, the GRU kernels (one layer, one direction).

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

def large_batch(B: int, H: int) -> bool:
    """Whether 3H * H * B is past OpenBLAS's small-matrix GEMM sizes (the batch-split rule)."""

def use_columns(B: int, H: int, full: bool, train: bool = True) -> bool:
    """True when the kernels run (B, H) in the columns (transposed) layout."""

def set_layout(layout: str) -> None:
    """Force "rows", "columns" or "auto" (default) for every later call (tests, measurements)."""

def plan(
    T: int, B: int, H: int, full: bool, reverse: bool, chunk_elements: int, train: bool = True
) -> tuple[bool, int]:
    """(columns, chunk): the layout and the steps per input-projection GEMM."""

def tape_sizes(T: int, B: int, H: int) -> tuple[int, int, int]:
    """Elements of the tape arrays (gates, aux, hprev), enough for either layout."""

def forward_work_size(
    T: int, B: int, I: int, H: int, chunk: int, train: bool, columns: bool, has_bias: bool
) -> int:
    """Elements of the workspace gru_forward needs."""

def gru_forward(
    out: _Array,
    col: int,
    h: _Array,
    saved: tuple[_Array, _Array, _Array] | None,
    work: _Array | None,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    b_ih: _Array | None,
    b_hh: _Array | None,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    reset_after: bool,
    columns: bool,
    chunk: int,
) -> None:
    """Run one GRU layer in one direction over x, writing out[..., col:col + H] and h."""

def set_poison(on: bool) -> None:
    """Fill the workspaces the kernels allocate themselves with NaN before use (debug runs)."""

def gru_infer(
    x: object,
    h: object,
    params: object,
    names: tuple[tuple[str, ...], ...],
    input_size: int,
    hidden_size: int,
    typenum: int,
    reverse: bool,
    reset_after: bool,
    batch_first: bool,
    chunk_elements: int,
) -> tuple[_Array, _Array] | None:
    """Inference over every layer with full lengths (GRU.__call__'s lean path), or None."""

def gru_step(
    x: object,
    h: object,
    params: object,
    names: tuple[tuple[str, ...], ...],
    input_size: int,
    hidden_size: int,
    typenum: int,
    reverse: bool,
    reset_after: bool,
) -> tuple[_Array, _Array] | None:
    """One step of every layer (GRU.step's lean path), or None to take the general path."""

def backward_work_size(T: int, B: int, I: int, H: int, full: bool, columns: bool) -> int:
    """Elements of the workspace gru_backward needs."""

def gru_backward(
    dx: _Array,
    dh: _Array,
    grads: tuple[_Array, _Array, _Array | None, _Array | None],
    work: _Array | None,
    dout: _Array,
    col: int,
    saved: tuple[_Array, _Array, _Array],
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    reset_after: bool,
    columns: bool,
) -> None:
    """Backward of gru_forward with a tape; adds into dx, dw_ih, dw_hh, db_ih, db_hh."""

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
