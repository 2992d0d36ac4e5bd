"""The cells: one time step of one layer, as ``torch.nn.GRUCell``,
``torch.nn.LSTMCell`` and ``torch.nn.RNNCell``.

A cell holds ``weight_ih`` (G*H, I), ``weight_hh`` (G*H, H) and, with bias,
``bias_ih`` and ``bias_hh`` (G*H,), G gate blocks in PyTorch's order (GRU
r, z, n; LSTM i, f, g, o; RNN one block), drawn from U(-1/sqrt(H),
1/sqrt(H)). ``cell(x_t, hx=None)`` takes x_t (B, I) or unbatched (I,) and
hx (B, H) or (H,) (the LSTM: a tuple (h, c)), None for zeros, and returns
the new state in hx's form; ``forward_train`` also returns a tape for
``backward``, which returns the gradients of x_t and hx and adds those of
the parameters into ``grads``. The equations are those of the modules
(nn/gru.py, nn/lstm.py, nn/rnn.py) for one step.

A cell runs the compiled kernels of the matching module, one layer with
T = 1: the module's lean one-step entry point for a call whose arguments
are already of the cell's dtype and shapes, the module's forward and
backward of one layer and direction otherwise and for training. So a cell
gives what ``gru.step`` gives for a one-layer module with the same
weights; what it adds is PyTorch's names and shapes, and training one step
at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import (
    _INT32_MAX, IO_HOOKS, Module, Recurrent, Tape, as_float_array, check_bool, check_choice,
    check_dtype, check_int, empty, make_rng, private_copy, register_module,
)
from gru_cy.nn.rnn import _NONLINEARITIES

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike, NDArray
    from typing_extensions import Self

    from gru_cy.nn.frozen import FrozenCell

__all__ = ["GRUCell", "LSTMCell", "RNNCell"]

_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class _Cell(Module):
    """What the three cells share: parameters, argument checks with
    PyTorch's messages, the one-step forward and backward on the module's
    kernels, the tape, conversions and presentation.

    A cell class sets ``_gates``, ``_state_count`` (1, or 2 for (h, c)),
    ``_cell`` and ``_core_flags()`` (which of the compiled kernels runs it,
    the modules' own), and runs them through the recurrent driver's calls
    for one layer and one direction (``_kernel_forward``,
    ``_kernel_backward``, ``_alloc_saved``) and its one-step lean path
    (``_core.Lean``).
    """

    _gates: ClassVar[int]
    _state_count: ClassVar[int] = 1
    _cell: ClassVar[int]
    _CACHES = ("_shapes", "_sig", "_lean")

    def _core_flags(self):
        return 0

    def _core_P(self):
        return 0

    _six = Recurrent._six
    _alloc_saved = Recurrent._alloc_saved
    _kernel_forward = Recurrent._kernel_forward
    _kernel_backward = Recurrent._kernel_backward

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None) -> None:
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = make_rng(seed)
        if self._gates * self.hidden_size > _INT32_MAX or self.input_size > _INT32_MAX:
            raise ValueError(f"input_size={self.input_size}, hidden_size={self.hidden_size}: "
                             "too large for 32-bit BLAS (dimensions must stay below 2**31)")
        self._allocate()

    # -- parameters ---------------------------------------------------------------

    def _param_shapes(self):
        G, H = self._gates, self.hidden_size
        yield "weight_ih", (G * H, self.input_size)
        yield "weight_hh", (G * H, H)
        if self.bias:
            yield "bias_ih", (G * H,)
            yield "bias_hh", (G * H,)

    def _names(self):
        """(w_ih, w_hh, b_ih, b_hh) as the kernels take them, the biases None
        without bias."""
        return _NAMES if self.bias else _NAMES[:2] + (None, None)

    def reset_parameters(self) -> None:
        """Draw every parameter from U(-1/sqrt(H), 1/sqrt(H)), like PyTorch."""
        bound = 1.0 / np.sqrt(self.hidden_size)
        for p in self.params.values():
            p[...] = self._rng.uniform(-bound, bound, size=p.shape)

    def _config(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size, bias=self.bias)

    # -- arguments ----------------------------------------------------------------

    def _input(self, x_t):
        """(x (1, B, I) C-contiguous of the cell's dtype, unbatched)."""
        x = as_float_array(x_t, "input", self.dtype)
        if x.ndim not in (1, 2):
            raise ValueError(
                f"{self._mode}: Expected input to be 1D or 2D, got {x.ndim}D instead")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"input has inconsistent input_size: got {x.shape[-1]} expected "
                             f"{self.input_size}")
        unbatched = x.ndim == 1
        B = 1 if unbatched else x.shape[0]
        return x.reshape(1, B, self.input_size), unbatched

    def _state_arrays(self, hx):
        """hx as a list of the state arrays given (None: not given)."""
        if self._state_count == 1:
            return [hx]
        if hx is None:
            return [None, None]
        if not isinstance(hx, (tuple, list)):
            raise TypeError(f"hx must be a tuple (h, c) of arrays for {self._mode}, got "
                            f"{type(hx).__name__}")
        if len(hx) != 2:
            raise ValueError(f"hx must be a tuple (h, c) of two arrays for {self._mode}, got "
                             f"{len(hx)} items")
        return list(hx)

    def _states(self, hx, B, unbatched):
        """The state as a tuple of private (B, H) copies (zeros for None),
        checked with PyTorch's messages."""
        H = self.hidden_size
        states = []
        for i, h in enumerate(self._state_arrays(hx)):
            if h is None:
                states.append(np.zeros((B, H), dtype=self.dtype))
                continue
            label = "hidden" if self._state_count == 1 else f"hx[{i}]"
            name = "hx" if self._state_count == 1 else f"hx[{i}]"
            h = as_float_array(h, name, self.dtype)
            if h.ndim not in (1, 2):
                raise ValueError(
                    f"{self._mode}: Expected {label} to be 1D or 2D, got {h.ndim}D instead")
            if unbatched != (h.ndim == 1):
                raise ValueError(
                    f"For {'unbatched 1-D' if unbatched else 'batched 2-D'} input, {name} "
                    f"should also be {1 if unbatched else 2}-D but got {h.ndim}-D tensor")
            if h.shape[0] != B and not unbatched:
                raise ValueError(f"Input batch size {B} doesn't match hidden{i} batch size "
                                 f"{h.shape[0]}")
            if h.shape[-1] != H:
                raise ValueError(f"hidden{i} has inconsistent hidden_size: got {h.shape[-1]}, "
                                 f"expected {H}")
            states.append(np.array(h.reshape(B, H), dtype=self.dtype, copy=True))
        return tuple(states)

    def _public(self, states, unbatched):
        """The state as the caller gets it: h, or (h, c); unbatched (H,)."""
        if unbatched:
            states = tuple(s[0] for s in states)
        return states[0] if self._state_count == 1 else states

    # -- forward and backward -----------------------------------------------------------

    def _run(self, x_t, hx, train):
        """One step on the module's one-layer kernel with T = 1: (state, tape or None)."""
        x_user = x_t
        x, unbatched = self._input(x_t)
        B = x.shape[1]
        states = self._states(hx, B, unbatched)
        weights = tuple(None if name is None else self._param(name) for name in self._names())
        lengths = np.ones(B, dtype=np.int64)
        saved = self._alloc_saved(1, B) if train else None
        if B:
            out = empty((1, B, self.hidden_size), self.dtype)
            kernel_state = states[0] if self._state_count == 1 else states
            self._kernel_forward(out, 0, kernel_state, x, weights, lengths, True, False, saved)
        result = self._public(states, unbatched)
        if not train:
            return result, None
        tape = Tape()
        tape.owner = self
        tape.signature = self._signature()
        # A snapshot: the input and the weights as this step used them.
        tape.parts = (private_copy(x, x_user), saved, lengths)
        tape.weights = tuple(None if w is None else w.copy() for w in weights)
        tape.T, tape.B = 1, B
        tape.batch_first, tape.unbatched = False, unbatched
        tape.state_shapes = tuple(s.shape for s in
                                  (result if self._state_count == 2 else (result,)))
        tape.out_shape = tape.state_shapes[0]
        return result, tape

    def _backward(self, tape, dstates, names):
        """backward() for any state tuple: (dx, the gradient of hx)."""
        self._check_tape(tape, "second")
        x, saved, lengths = tape.parts
        B, H = tape.B, self.hidden_size
        # The gradient of the new h enters as the gradient of the step's
        # output (out = h), so the state gradient h starts from zeros; the
        # LSTM's cell state has no output and enters as its state gradient.
        dgrads = [self._grad_arg(g, name, shape)
                  for g, name, shape in zip(dstates, names, tape.state_shapes)]
        dout = dgrads[0].reshape(1, B, H)
        dstate = [np.zeros((B, H), dtype=self.dtype)]
        if self._state_count == 2:
            dstate.append(np.array(dgrads[1].reshape(B, H), copy=True))
        dx = np.zeros((1, B, self.input_size), dtype=self.dtype)
        with self._grads_lock():
            grads = tuple(None if name is None else self._grad_target(name)
                          for name in self._names())
            if B:
                self._kernel_backward(dx, dstate[0] if self._state_count == 1 else tuple(dstate),
                                      grads, np.ascontiguousarray(dout), 0, saved, x,
                                      tape.weights, lengths, True, False)
        return (dx[0, 0] if tape.unbatched else dx[0]), self._public(tuple(dstate),
                                                                      tape.unbatched)

    # -- conversions --------------------------------------------------------------

    @classmethod
    def from_torch(cls, module: Any, *, dtype: DTypeLike | None = None) -> Self:
        """A cell with the configuration and weights of the matching ``torch.nn``
        cell (or of its state dict)."""
        result: Self = IO_HOOKS["cell_from_torch"](module, cls=cls, dtype=dtype)
        return result

    def to_torch(self, *, dtype: DTypeLike | None = None) -> Any:
        """An equivalent ``torch.nn`` cell."""
        return IO_HOOKS["cell_to_torch"](self, dtype=dtype)

    def freeze(self, precision: str = "fp32") -> FrozenCell:
        """An inference-only copy of this cell with its weights packed once
        (gru_cy.nn.frozen): ``frozen(x_t, hx=None)`` as this cell's call.
        ``precision``: "fp32" (the cell's float type; the same bits as the
        cell), "bf16" or "int8" (float32 cells). Later changes to the cell do
        not reach it."""
        from gru_cy.nn.frozen import FrozenCell

        return FrozenCell(self, precision)

    # -- presentation -----------------------------------------------------------------

    def _extra_repr_items(self):
        items = [str(self.input_size), str(self.hidden_size)]
        if not self.bias:
            items.append("bias=False")
        return items

    # -- the lean one-step path, cached until a public attribute is set ------------

    def _lean_cached(self):
        """The cell's _core.Lean: the modules' one-step path on the cell's
        parameter names."""
        lean = self.__dict__.get("_lean")
        if lean is None:
            lean = self.__dict__["_lean"] = _core.Lean(
                self._cell, self._core_flags(), self._core_P(), (self._six(self._names()),),
                self.input_size, self.hidden_size, self.dtype.num, False)
        return lean


class _OneStateCell(_Cell):
    """A cell whose state is h alone (GRUCell, RNNCell)."""

    def __call__(self, x_t: ArrayLike, hx: ArrayLike | None = None) -> NDArray[Any]:
        """The next state h (B, H), or (H,) for unbatched x_t. No tape is kept."""
        # The lean path: arguments already of the cell's dtype and shapes go
        # to the kernel in one call (h as the one-layer state (1, B, H)); it
        # returns None for anything else, which the general path converts
        # or rejects.
        result = (self.__dict__.get("_lean") or self._lean_cached()).step(
            x_t, hx[None] if type(hx) is np.ndarray else hx, self.params)
        if result is not None:
            return result[0]
        return self._run(x_t, hx, False)[0]

    forward = __call__

    def forward_train(self, x_t: ArrayLike,
                      hx: ArrayLike | None = None) -> tuple[NDArray[Any], Tape]:
        """(h, tape): the next state and what backward needs."""
        h, tape = self._run(x_t, hx, True)
        return h, tape

    def backward(self, tape: Tape,
                 dh: ArrayLike | None = None) -> tuple[NDArray[Any], NDArray[Any]]:
        """(dx, dhx): the gradients of x_t and hx given dh, the gradient of the
        h forward_train returned (None: zeros). The parameter gradients are
        added into ``grads``; calls from several threads take turns."""
        dx, dhx = self._backward(tape, (dh,), ("dh",))
        return dx, dhx


@register_module
class GRUCell(_OneStateCell):
    """One GRU step, as ``torch.nn.GRUCell`` (gate order r, z, n)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h

    ``cell(x_t, hx=None) -> h'``; ``forward_train(x_t, hx) -> (h', tape)``;
    ``backward(tape, dh) -> (dx, dhx)``.
    """

    _gates = 3
    _cell = _core.GRU
    # PyTorch's variant, fixed.
    reset_after = property(lambda self: True,
                           doc="Always True: the reset gate after the recurrent product.")

    def _core_flags(self):
        return 1


@register_module
class RNNCell(_OneStateCell):
    """One Elman RNN step, as ``torch.nn.RNNCell``::

        h' = act(W_ih x + b_ih + W_hh h + b_hh),    act = tanh or relu

    ``cell(x_t, hx=None) -> h'``; ``forward_train(x_t, hx) -> (h', tape)``;
    ``backward(tape, dh) -> (dx, dhx)``.
    """

    _gates = 1
    _cell = _core.RNN

    def _core_flags(self):
        return _core.ACT_RELU if self.nonlinearity == "relu" else _core.ACT_TANH

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: DTypeLike = np.float32,
                 seed: int | np.random.Generator | None = None) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, _NONLINEARITIES)
        super().__init__(input_size, hidden_size, bias=bias, dtype=dtype, seed=seed)

    def _config(self) -> dict[str, Any]:
        return dict(super()._config(), nonlinearity=self.nonlinearity)

    def _extra_repr_items(self):
        items = super()._extra_repr_items()
        if self.nonlinearity != "tanh":
            items.append(f"nonlinearity={self.nonlinearity!r}")
        return items



@register_module
class LSTMCell(_Cell):
    """One LSTM step, as ``torch.nn.LSTMCell`` (gate order i, f, g, o)::

        i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)   f = sigmoid(W_if x + b_if + W_hf h + b_hf)
        g = tanh(W_ig x + b_ig + W_hg h + b_hg)      o = sigmoid(W_io x + b_io + W_ho h + b_ho)
        c' = f * c + i * g;  h' = o * tanh(c')

    ``cell(x_t, hx=None) -> (h', c')`` with hx = (h, c);
    ``forward_train(x_t, hx) -> ((h', c'), tape)``;
    ``backward(tape, (dh, dc)) -> (dx, (dh0, dc0))``.
    """

    _gates = 4
    _state_count = 2
    _cell = _core.LSTM
    # As the LSTM has it: a cell has no projection.
    proj_size = property(lambda self: 0, doc="Always 0: an LSTMCell has no projection.")

    def __call__(self, x_t: ArrayLike, hx: tuple[ArrayLike, ArrayLike] | None = None
                 ) -> tuple[NDArray[Any], NDArray[Any]]:
        """The next state (h, c), each (B, H) or (H,) for unbatched x_t."""
        # The lean path, as for the other cells: (h, c) as one-layer states.
        if hx is None:
            state = None
        elif (type(hx) is tuple and len(hx) == 2 and type(hx[0]) is np.ndarray
                and type(hx[1]) is np.ndarray):
            state = (hx[0][None], hx[1][None])
        else:
            return self._run(x_t, hx, False)[0]
        result = (self.__dict__.get("_lean") or self._lean_cached()).step(x_t, state,
                                                                          self.params)
        if result is not None:
            return result[0], result[1][1][0]
        return self._run(x_t, hx, False)[0]

    forward = __call__

    def forward_train(self, x_t: ArrayLike, hx: tuple[ArrayLike, ArrayLike] | None = None
                      ) -> tuple[tuple[NDArray[Any], NDArray[Any]], Tape]:
        """((h, c), tape): the next state and what backward needs."""
        state, tape = self._run(x_t, hx, True)
        return state, tape

    def backward(self, tape: Tape,
                 dhx: tuple[ArrayLike | None, ArrayLike | None] | None = None
                 ) -> tuple[NDArray[Any], tuple[NDArray[Any], NDArray[Any]]]:
        """(dx, (dh0, dc0)): the gradients of x_t and hx given dhx = (dh, dc),
        the gradients of the (h, c) forward_train returned (either, or dhx
        itself, None for zeros). The parameter gradients are added into
        ``grads``; calls from several threads take turns."""
        if dhx is None:
            dhx = (None, None)
        elif not isinstance(dhx, (tuple, list)) or len(dhx) != 2:
            raise TypeError("dhx must be a tuple (dh, dc) (either may be None) or None, got "
                            f"{type(dhx).__name__}")
        dx, dstate = self._backward(tape, tuple(dhx), ("dh", "dc"))
        return dx, dstate
