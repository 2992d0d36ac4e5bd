"""Type stubs for gru_cy.kernels._rnn, the Elman RNN kernels (one layer, one direction).

Every array is C-contiguous and of one float dtype (float32 or float64)
throughout a call; lengths is int64; act is 0 (tanh) or 1 (relu). The
kernels trust their arguments: gru_cy.RNN checks and allocates everything
before calling them. Shapes and meanings are in the docstrings of the
compiled functions.
"""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_Array = npt.NDArray[_Float]
_Lengths = npt.NDArray[np.int64]

def use_columns(B: int, H: int, full: bool, train: bool) -> bool:
    """True when the kernels run (B, H) in the columns (transposed) layout (train: with a tape)."""

def set_layout(layout: str) -> None:
    """Force "rows", "columns" or "auto" (default) for every later call (tests, measurements)."""

def plan(
    T: int, B: int, H: int, full: bool, reverse: bool, chunk_elements: int, train: bool
) -> tuple[bool, int]:
    """(columns, chunk): the layout and the steps per input-projection GEMM."""

def tape_size(T: int, B: int, H: int) -> int:
    """Elements of the tape (the T + 1 states), enough for either layout."""

def forward_work_size(T: int, B: int, I: int, H: int, chunk: int, columns: bool) -> int:
    """Elements of the workspace rnn_forward needs."""

def rnn_forward(
    out: _Array,
    col: int,
    h: _Array,
    saved: _Array | None,
    work: _Array | None,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    b_ih: _Array | None,
    b_hh: _Array | None,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    act: int,
    columns: bool,
    chunk: int,
) -> None:
    """Run one Elman RNN layer in one direction over x, writing out[..., col:col + H] and h."""

def set_poison(on: bool) -> None:
    """Fill the workspaces the kernels allocate themselves with NaN before use (debug runs)."""

def rnn_infer(
    x: object,
    h: object,
    params: object,
    names: tuple[tuple[str, ...], ...],
    input_size: int,
    hidden_size: int,
    typenum: int,
    reverse: bool,
    act: int,
    batch_first: bool,
    chunk_elements: int,
) -> tuple[_Array, _Array] | None:
    """Inference over every layer with full lengths (RNN.__call__'s lean path), or None."""

def rnn_step(
    x: object,
    h: object,
    params: object,
    names: tuple[tuple[str, ...], ...],
    input_size: int,
    hidden_size: int,
    typenum: int,
    reverse: bool,
    act: int,
) -> tuple[_Array, _Array] | None:
    """One step of every layer (RNN.step's lean path), or None to take the general path."""

def backward_work_size(T: int, B: int, I: int, H: int, full: bool, columns: bool) -> int:
    """Elements of the workspace rnn_backward needs."""

def rnn_backward(
    dx: _Array,
    dh: _Array,
    grads: tuple[_Array, _Array, _Array | None, _Array | None],
    work: _Array | None,
    dout: _Array,
    col: int,
    saved: _Array,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    act: int,
    columns: bool,
) -> None:
    """Backward of rnn_forward with a tape; adds into dx, dw_ih, dw_hh, db_ih, db_hh."""
