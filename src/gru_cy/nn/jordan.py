"""The Jordan network (Jordan 1986): a recurrent layer that feeds back its
previous *output* rather than its hidden state.

One layer, one direction, with O = output_size::

    h_t = act(W_ih x_t + b_ih + W_yh y_{t-1})        act: tanh, relu or sigmoid
    y_t = out_act(W_hy h_t + b_hy)                  out_act: identity, tanh or sigmoid
    y_{-1} = y0 (zeros by default)

Parameters ``weight_ih`` (H, I), ``bias_ih`` (H,), ``weight_yh`` (H, O),
``weight_hy`` (O, H), ``bias_hy`` (O,); ``bias=False`` drops both biases.
"""

from __future__ import annotations

import os

import numpy as np

from gru_cy.kernels import _core
from gru_cy.nn.base import (
    _INT32_MAX, KeyError_, Module, RNNBase, Tape, _length_order, aligned_empty, as_float_array,
    check_dtype, check_int, empty, prepare_input, register_module, shape_str, to_numpy,
    weight_layout_ok,
)

_PARAM_NAMES = ("weight_ih", "bias_ih", "weight_yh", "weight_hy", "bias_hy")

# The activations each layer accepts, and the kernels' codes for them.
HIDDEN_ACTIVATIONS = ("tanh", "relu", "sigmoid")
OUTPUT_ACTIVATIONS = ("identity", "tanh", "sigmoid")
_CODES = {"tanh": _core.ACT_TANH, "relu": _core.ACT_RELU, "sigmoid": _core.ACT_SIGMOID,
          "identity": _core.ACT_IDENTITY}


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} should be a bool, got {type(value).__name__}")
    return bool(value)


def _check_choice(name, value, choices):
    if not isinstance(value, str):
        raise TypeError(f"{name} should be a str, got {type(value).__name__}: {value!r}")
    if value not in choices:
        names = ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'"
        raise ValueError(f"Unknown {name} '{value}'. Select from {names}.")
    return value


@register_module
class Jordan(Module):
    """Jordan network over NumPy arrays: the previous output is the state.

    ``jordan(x, y0=None, lengths=None) -> (out, y_n)``: ``out`` (T, B, O)
    holds every y_t, ``y_n`` (1, B, O) the output after each sequence's last
    valid step (y0 when its length is 0). x is (T, B, I), (B, T, I) with
    ``batch_first`` or unbatched (T, I) (y0 and y_n are then (1, O)).
    ``forward_train`` also returns a tape for ``backward``, which adds the
    parameter gradients into ``grads``; ``step`` advances one time step.
    Weights are drawn from U(-1/sqrt(H), 1/sqrt(H)) by a generator seeded
    with ``seed``.
    """

    _CACHES = ("_shapes", "_sig")

    def __init__(self, input_size, hidden_size, output_size, nonlinearity="tanh",
                 output_activation="identity", bias=True, batch_first=False, dtype=np.float32,
                 seed=None):
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.nonlinearity = _check_choice("nonlinearity", nonlinearity,
                                          HIDDEN_ACTIVATIONS)
        self.output_activation = _check_choice("output_activation", output_activation,
                                               OUTPUT_ACTIVATIONS)
        self.bias = _check_bool("bias", bias)
        self.batch_first = _check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        self.seed = seed
        try:
            self._rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"seed must be None, an int or a numpy.random.Generator, got {seed!r}") from exc
        self._check_size()
        self.params = {name: aligned_empty(shape, self.dtype)
                       for name, shape in self._param_shapes()}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.reset_parameters()

    def _check_size(self):
        """Refuse, before allocating anything, sizes no machine can hold."""
        I, H, O = self.input_size, self.hidden_size, self.output_size
        if max(I, H, O) > _INT32_MAX:
            raise ValueError(f"input_size={I}, hidden_size={H}, output_size={O}: too large for "
                             "32-bit BLAS (dimensions must stay below 2**31)")
        need = 2 * (H * I + 2 * H * O + H + O) * self.dtype.itemsize
        try:
            physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            physical = 1 << 46
        if need > physical:
            raise MemoryError(
                f"{self._mode} parameters and gradients would need {need / 2**30:.1f} GiB, more "
                f"than this machine's {physical / 2**30:.1f} GiB of memory")

    # -- parameters -------------------------------------------------------

    def _param_shapes(self):
        I, H, O = self.input_size, self.hidden_size, self.output_size
        yield "weight_ih", (H, I)
        if self.bias:
            yield "bias_ih", (H,)
        yield "weight_yh", (H, O)
        yield "weight_hy", (O, H)
        if self.bias:
            yield "bias_hy", (O,)

    def _config(self):
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    output_size=self.output_size, nonlinearity=self.nonlinearity,
                    output_activation=self.output_activation, bias=self.bias,
                    batch_first=self.batch_first)

    def reset_parameters(self):
        """Draw every parameter from U(-1/sqrt(H), 1/sqrt(H))."""
        bound = 1.0 / np.sqrt(self.hidden_size)
        for p in self.params.values():
            p[...] = self._rng.uniform(-bound, bound, size=p.shape)

    def _weights(self):
        """(w_ih, b_ih, w_yh, w_hy, b_hy), checked and contiguous, biases
        None without bias. params is live: anything of the wrong shape is an
        error, another float type or layout is converted for this call."""
        shapes = self._shape_table()[1]
        result = []
        for name in _PARAM_NAMES:
            if name not in shapes:
                result.append(None)
                continue
            p = self.params.get(name)
            if not (type(p) is np.ndarray and p.dtype == self.dtype and weight_layout_ok(p)):
                if name not in self.params:
                    raise KeyError_(f"parameter {name!r} is missing from params")
                p = as_float_array(p, f"params[{name!r}]", self.dtype)
            if p.shape != shapes[name]:
                raise ValueError(f"params[{name!r}] has shape {shape_str(p.shape)}, expected "
                                 f"{shape_str(shapes[name])}")
            result.append(p)
        return result

    def _signature(self):
        sig = self.__dict__.get("_sig")
        if sig is None:
            sig = self.__dict__["_sig"] = (
                self._mode, self.input_size, self.hidden_size, self.output_size,
                self.nonlinearity, self.output_activation, self.bias, self.dtype)
        return sig

    def _flags(self):
        """The kernels' activation codes (checked again: the attributes may
        have been reassigned since construction)."""
        act = _check_choice("nonlinearity", self.nonlinearity, HIDDEN_ACTIVATIONS)
        out_act = _check_choice("output_activation", self.output_activation, OUTPUT_ACTIVATIONS)
        return _CODES[act] | _CODES[out_act] << 4

    @staticmethod
    def _six(arrays):
        """(w_ih, b_ih, w_yh, w_hy, b_hy) in the kernels' order."""
        w_ih, b_ih, w_yh, w_hy, b_hy = arrays
        return (w_ih, w_yh, b_ih, None, w_hy, b_hy)

    # -- arguments ----------------------------------------------------------

    def _prepare(self, x, y0, lengths):
        """(x (T, B, I) time-major C-contiguous, y (B, O) a private copy of
        y0, lengths int64 (B,), full, unbatched)."""
        x, unbatched = prepare_input(self, x)
        T, B = x.shape[0], x.shape[1]
        y = self._state_arg(y0, "y0", B, unbatched)
        lengths = RNNBase._check_lengths(lengths, T, B, unbatched)
        return x, y, lengths, bool(np.all(lengths == T)), unbatched

    def _state_arg(self, y0, name, B, unbatched, of_step=False):
        """A private (B, O) copy of the state argument (zeros for None)."""
        O = self.output_size
        if y0 is None:
            return np.zeros((B, O), dtype=self.dtype)
        y0 = as_float_array(y0, name, self.dtype)
        if not of_step and y0.ndim != (2 if unbatched else 3):
            raise ValueError(
                f"For {'unbatched 2-D' if unbatched else 'batched 3-D'} input, {name} should "
                f"also be {2 if unbatched else 3}-D but got {y0.ndim}-D tensor")
        expected = (1, O) if unbatched else (1, B, O)
        if y0.shape != expected:
            raise ValueError(f"Expected {name} size {shape_str(expected)}, got {list(y0.shape)}")
        return np.array(y0.reshape(B, O), dtype=self.dtype, copy=True)

    def _finish(self, out, y, unbatched):
        if unbatched:
            return out[:, 0, :], y.reshape(1, self.output_size)
        if self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return out, y[None]

    # -- forward ------------------------------------------------------------

    def __call__(self, x, y0=None, lengths=None):
        """Inference: (out, y_n)."""
        x, y, lengths, full, unbatched = self._prepare(x, y0, lengths)
        out = self._run(x, y, lengths, full, self._weights(), None)
        return self._finish(out, y, unbatched)

    forward = __call__

    def forward_train(self, x, y0=None, lengths=None):
        """Forward that keeps what backward needs: (out, y_n, tape)."""
        x_user = x
        x, y, lengths, full, unbatched = self._prepare(x, y0, lengths)
        if np.may_share_memory(
                x, x_user if isinstance(x_user, np.ndarray) else to_numpy(x_user, "input")):
            # The tape keeps the input: later changes to the caller's buffer
            # must not reach backward.
            x = x.copy()
        if not full:
            # Padded steps take no part; zeroed here so that NaN or Inf there
            # cannot reach dW_ih = dA.T @ x (padded rows carry dA = 0).
            x[np.arange(x.shape[0])[:, None] >= lengths[None, :]] = 0
        # Backward uses these copies even if an optimiser updates params first.
        weights = [None if w is None else w.copy(order="K") for w in self._weights()]
        tape = Tape()
        tape.owner = self
        tape.signature = self._signature()
        out = self._run(x, y, lengths, full, weights, tape)
        tape.T, tape.B = x.shape[0], x.shape[1]
        tape.batch_first, tape.unbatched = self.batch_first, unbatched
        tape.weights = weights
        out, y_n = self._finish(out, y, unbatched)
        tape.out_shape, tape.state_shapes = out.shape, (y_n.shape,)
        return out, y_n, tape

    def _run(self, x, y, lengths, full, weights, tape):
        """The kernel over x (T, B, I): out (T, B, O); y (B, O) goes from y0
        to y_n in place. With a tape, sets tape.parts (one part, see
        _run_part)."""
        out, part = self._run_part(x, y, lengths, full, weights, tape is not None)
        if tape is not None:
            tape.parts = [(slice(None),) + part]
        return out

    def _run_part(self, x, y, lengths, full, weights, train):
        """One kernel call: (out, part). part = (x, hs, ys, lengths, full,
        order) is what backward needs, in the row order the kernel ran
        (order: the permutation applied, or None); None at inference."""
        T, B = x.shape[0], x.shape[1]
        H, O = self.hidden_size, self.output_size
        # Uneven lengths: sorted by decreasing length when that pays, so the
        # per-step products skip finished sequences.
        order = _length_order(lengths, full)
        y_k = y
        if order is not None:
            x = np.ascontiguousarray(x[:, order])
            y_k = np.ascontiguousarray(y[order])
            lengths = np.ascontiguousarray(lengths[order])
        flags = self._flags()
        out = (empty if full else np.zeros)((T, B, O), self.dtype)
        tape = empty(_core.tape_size(_core.JORDAN, flags, O, T, B, 0, H), self.dtype) \
            if train else None
        if T and B:
            _core.forward(_core.JORDAN, flags, O, x, out, ((y_k,),), (self._six(weights),),
                          None if full else lengths, (False,), (tape,))
        if order is not None:
            back = np.argsort(order)
            y[...] = y_k[back]
            out = np.ascontiguousarray(out[:, back])
        return out, ((x, tape, lengths, full, order) if train else None)

    def step(self, x_t, y=None):
        """Advance one time step: (y_t, y).

        x_t is (B, I) or unbatched (I,); y the previous output, (1, B, O) or
        (1, O), None for zeros. y_t is (B, O) (or (O,)), y the new state in
        y's shape. Feeding a sequence one step at a time gives what the
        whole sequence gives, bit for bit. Inference only.
        """
        x_t = as_float_array(x_t, "x_t", self.dtype)
        if x_t.ndim not in (1, 2):
            raise ValueError(f"step: Expected x_t to be 1D or 2D, got {x_t.ndim}D input instead")
        unbatched = x_t.ndim == 1
        if x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {x_t.shape[-1]}")
        B = 1 if unbatched else x_t.shape[0]
        x = x_t.reshape(1, B, self.input_size)
        state = self._state_arg(y, "y", B, unbatched, of_step=True)
        out = self._run(x, state, np.ones(B, dtype=np.int64), True, self._weights(), None)
        if unbatched:
            return out[0, 0], state.reshape(1, self.output_size)
        return out[0], state[None]

    # -- backward -------------------------------------------------------------

    def backward(self, tape, dout=None, dy_n=None):
        """Backpropagate through a forward_train call: (dx, dy0).

        dout has the shape of that call's out, dy_n of its y_n; None means
        zeros. Parameter gradients are added into self.grads (zero_grad()
        starts afresh). Uses the parameters recorded when the tape was made.
        """
        if not isinstance(tape, Tape):
            raise TypeError(
                f"tape must be the third result of forward_train, got {type(tape).__name__}")
        if tape.owner is not self:
            raise ValueError("tape was recorded by a different module; pass it to that module's "
                             "backward")
        if tape.signature != self._signature():
            raise ValueError("tape was recorded with a different configuration or dtype than "
                             "the module has now; run forward_train again")
        B, O = tape.B, self.output_size
        dout = self._grad_arg(dout, "dout", tape.out_shape)
        dy = self._grad_arg(dy_n, "dy_n", tape.state_shapes[0])
        if tape.unbatched:
            dout = dout[:, None, :]
        elif tape.batch_first:
            dout = dout.transpose(1, 0, 2)
        dout = np.ascontiguousarray(dout)
        dy = np.array(dy.reshape(B, O), copy=True)   # the kernel updates it in place
        grads = self._grad_buffers()
        dx = self._backward_part(tape.parts[0], dout, dy, grads, tape.weights)
        if tape.unbatched:
            return dx[:, 0, :], dy.reshape(1, O)
        if tape.batch_first:
            dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        return dx, dy[None]

    def _backward_part(self, part, dout, dy, grads, weights):
        """Backward through one kernel call of a tape (see _run_part): dx;
        dy (B, O) goes from dL/dy_n to dL/dy0 in place, grads are added
        into. dout and dy in the caller's row order."""
        _, x, tape, lengths, full, order = part
        T, B = x.shape[0], x.shape[1]
        O = self.output_size
        dy_k = dy
        if order is not None:
            dout = np.ascontiguousarray(dout[:, order])
            dy_k = np.ascontiguousarray(dy[order])
        dx = np.zeros((T, B, self.input_size), self.dtype)
        if T and B:
            _core.backward(_core.JORDAN, self._flags(), O, x, dout, (dx,), ((dy_k,),),
                           (self._six(weights),), (self._six(grads),),
                           None if full else lengths, (False,), (tape,))
        if order is not None:
            back = np.argsort(order)
            dx = np.ascontiguousarray(dx[:, back])
            dy[...] = dy_k[back]
        return dx

    # The same checked conversion of dout and dy_n as the other modules'.
    _grad_arg = RNNBase._grad_arg

    def _grad_buffers(self):
        """grads arrays in kernel order (w_ih, b_ih, w_yh, w_hy, b_hy), each
        checked to be a writable target (missing ones created), before any
        is used; biases None without bias."""
        shapes = self._shape_table()[1]
        result = []
        for name in _PARAM_NAMES:
            if name not in shapes:
                result.append(None)
                continue
            g = self.grads.get(name)
            if g is None:
                g = self.grads[name] = np.zeros(shapes[name], dtype=self.dtype)
            elif not (isinstance(g, np.ndarray) and g.shape == shapes[name]
                      and g.dtype == self.dtype and weight_layout_ok(g) and g.flags.writeable):
                raise ValueError(
                    f"grads[{name!r}] must be a writable contiguous {self.dtype} array of "
                    f"shape {shape_str(shapes[name])}; call zero_grad() to recreate it")
            result.append(g)
        return result

    # -- presentation -----------------------------------------------------------

    def __repr__(self):
        items = [str(self.input_size), str(self.hidden_size), str(self.output_size)]
        if self.nonlinearity != "tanh":
            items.append(f"nonlinearity={self.nonlinearity!r}")
        if self.output_activation != "identity":
            items.append(f"output_activation={self.output_activation!r}")
        if not self.bias:
            items.append("bias=False")
        if self.batch_first:
            items.append("batch_first=True")
        if self.dtype != np.float32:
            items.append(f"dtype={self.dtype.name}")
        return f"{type(self).__name__}({', '.join(items)})"
