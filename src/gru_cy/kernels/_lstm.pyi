"""Type stubs for gru_cy.kernels._lstm, the LSTM kernels (one layer, one direction).

Every array is C-contiguous and of one float dtype (float32 or float64)
throughout a call; lengths is int64. The kernels trust their arguments:
gru_cy.LSTM checks and allocates everything before calling them. Shapes and
meanings are in the docstrings of the compiled functions.
"""

import numpy as np
import numpy.typing as npt

_Float = np.float32 | np.float64
_Array = npt.NDArray[_Float]
_Lengths = npt.NDArray[np.int64]

def plan(T: int, B: int, H: int, full: bool, reverse: bool, chunk_elements: int) -> int:
    """Steps per input-projection GEMM."""

def tape_sizes(T: int, B: int, H: int, P: int) -> tuple[int, int, int, int, int]:
    """Elements of the tape arrays (gates, cprev, tc, hprev, m); m is 0 when P = 0."""

def set_poison(on: bool) -> None:
    """Fill every workspace the kernels allocate with NaN before use (debug runs)."""

def lstm_forward(
    out: _Array,
    col: int,
    h: _Array,
    c: _Array,
    saved: tuple[_Array, _Array, _Array, _Array, _Array | None] | None,
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    b_ih: _Array | None,
    b_hh: _Array | None,
    w_hr: _Array | None,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
    chunk: int,
) -> None:
    """Run one LSTM layer in one direction over x, writing out[..., col:col + R], h and c."""

def lstm_backward(
    dx: _Array,
    dh: _Array,
    dc: _Array,
    grads: tuple[_Array, _Array, _Array | None, _Array | None, _Array | None],
    dout: _Array,
    col: int,
    saved: tuple[_Array, _Array, _Array, _Array, _Array | None],
    x: _Array,
    w_ih: _Array,
    w_hh: _Array,
    w_hr: _Array | None,
    lengths: _Lengths,
    full: bool,
    reverse: bool,
) -> None:
    """Backward of lstm_forward with a tape; adds into dx and the weight gradients."""

def lstm_infer(
    x: object,
    hx: object,
    params: object,
    names: tuple[tuple[str | None, ...], ...],
    input_size: int,
    hidden_size: int,
    proj_size: int,
    typenum: int,
    reverse: bool,
    batch_first: bool,
    chunk_elements: int,
) -> tuple[_Array, tuple[_Array, _Array]] | None:
    """Inference over every layer with full lengths (LSTM.__call__'s lean path), or None."""

def lstm_step(
    x: object,
    hx: object,
    params: object,
    names: tuple[tuple[str | None, ...], ...],
    input_size: int,
    hidden_size: int,
    proj_size: int,
    typenum: int,
    reverse: bool,
) -> tuple[_Array, tuple[_Array, _Array]] | None:
    """One step of every layer (LSTM.step's lean path), or None to take the general path."""

class LeanLSTM:
    """lstm_step and lstm_infer bound to one module's configuration (LSTM._lean_args)."""

    names: tuple[tuple[str | None, ...], ...]
    input_size: int
    hidden_size: int
    proj_size: int
    typenum: int
    reverse: bool
    unidirectional: bool

    def __init__(
        self,
        names: tuple[tuple[str | None, ...], ...],
        input_size: int,
        hidden_size: int,
        proj_size: int,
        typenum: int,
        reverse: bool,
        unidirectional: bool = True,
    ) -> None: ...
    def step(
        self, x: object, hx: object, params: object
    ) -> tuple[_Array, tuple[_Array, _Array]] | None:
        """lstm_step with this configuration, or None (also for a bidirectional module)."""
    def infer(
        self, x: object, hx: object, params: object, batch_first: bool, chunk_elements: int
    ) -> tuple[_Array, tuple[_Array, _Array]] | None:
        """lstm_infer with this configuration, or None (also for a bidirectional module)."""
