"""Cell-independent machinery of gru_cy's modules.

``Module`` is the protocol every trainable module follows (params, grads,
state dict, saving, pickling, the gradient lock and the rule for gradient
arrays). ``Recurrent`` is the recurrent driver every recurrent module runs
on: argument checking with PyTorch's wording, conversion of inputs to the
module's dtype and a time-major C-contiguous layout, variable lengths, the
batch plan (two halves on two threads, sorting by length), stacking of
layers and directions, inverted dropout between layers, the training tape
and backward. ``RNNBase`` adds PyTorch's stacked parameter layout (G gate
blocks of H rows per layer and direction) and the conversions; a cell (see
gru.py) supplies the number of gate blocks and the kernel calls for one
layer and one direction. The Jordan network (jordan.py) runs on
``Recurrent`` with a parameter table of its own.
"""

from __future__ import annotations

import numbers
import operator
import os
import threading
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from numpy.typing import ArrayLike, DTypeLike, NDArray
    from typing_extensions import Self

    from gru_cy.nn.frozen import FrozenRecurrent

from gru_cy.kernels import _core

_INT32_MAX = 2**31 - 1

# GRU_CY_POISON=1 fills every workspace and tape buffer with NaN when it is
# allocated, so that a result depending on memory the kernels did not write
# shows up as NaN (the debug test run sets it).
_POISON = os.environ.get("GRU_CY_POISON", "0") not in ("", "0")
_core.set_poison(_POISON)
_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# ---------------------------------------------------------------------------
# argument checking


def check_int(name: str, value: Any, minimum: int) -> int:
    """An integer argument >= minimum (bools are not integers here)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} should be an integer, got {type(value).__name__}: {value!r}")
    value = operator.index(value)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """A bool argument (NumPy's bool too; 0 and 1 are not bools here)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} should be a bool, got {type(value).__name__}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of a few strings, with PyTorch's wording for an unknown one."""
    if not isinstance(value, str):
        raise TypeError(f"{name} should be a str, got {type(value).__name__}: {value!r}")
    if value not in choices:
        names = ", ".join(f"'{c}'" for c in choices[:-1]) + f" or '{choices[-1]}'"
        raise ValueError(f"Unknown {name} '{value}'. Select from {names}.")
    return value


def check_dtype(dtype: Any) -> np.dtype[Any]:
    """numpy.float32 or numpy.float64 as a np.dtype (names and types accepted)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be numpy.float32 or numpy.float64, got {dtype!r}") from exc
    if dt not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be numpy.float32 or numpy.float64, got {dt}")
    return dt


def make_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """The random generator of a module's ``seed`` argument (None, an int or
    a Generator, as numpy.random.default_rng takes it): the one place every
    module turns its seed into the generator of its initialisation and
    dropout."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"seed must be None, an int or a numpy.random.Generator, got {seed!r}") from exc


def check_memory(mode: str, elements: int, itemsize: int) -> None:
    """Refuse, before allocating anything, parameters and gradients of this
    many elements each that no memory of this machine can hold."""
    need = 2 * elements * itemsize
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        physical = 1 << 46
    if need > physical:
        raise MemoryError(
            f"{mode} parameters and gradients would need {need / 2**30:.1f} GiB, more "
            f"than this machine's {physical / 2**30:.1f} GiB of memory")


def to_numpy(value: Any, name: str) -> NDArray[Any]:
    """Accept NumPy arrays, array-likes and CPU torch tensors."""
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists, objects NumPy refuses
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from exc
    return arr


def as_float_array(value: Any, name: str, dtype: np.dtype[Any]) -> NDArray[Any]:
    """Convert to a C-contiguous array of dtype; reject non-numeric kinds.

    Integers and bools are converted (as NumPy would); complex, object,
    string, bytes and structured arrays raise TypeError. Read-only and
    non-contiguous inputs are copied, never written to.
    """
    if (type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous
            and value.ndim):
        return value
    arr = to_numpy(value, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (float, int or bool), got dtype {arr.dtype}"
        )
    return np.ascontiguousarray(arr, dtype=dtype)


def private_copy(arr: NDArray[Any], user: Any) -> NDArray[Any]:
    """arr, or a copy of it when it shares memory with what the caller passed
    (a tape keeps its inputs: later changes to the caller's buffer must not
    reach backward)."""
    if np.may_share_memory(arr, user if isinstance(user, np.ndarray) else to_numpy(user, "input")):
        return arr.copy()
    return arr


def _length_order(lengths, full):
    """The batch order by decreasing length (stable), when uneven lengths
    leave enough finished rows to skip (the kernels need the running rows
    first) and the batch is not in such an order already; else None."""
    B = lengths.shape[0]
    if full or B < 2 or np.all(lengths[:-1] >= lengths[1:]):
        return None
    longest = int(lengths.max())
    # Rows x steps the kernels would skip, against the copies sorting costs.
    if longest == 0 or int(lengths.sum()) > 0.9 * B * longest:
        return None
    return np.argsort(-lengths, kind="stable")


def prepare_input(module: Any, x: Any) -> tuple[NDArray[Any], bool]:
    """The input of a forward call, checked and converted: (x, unbatched),
    x time-major (T, B, I), C-contiguous, of the module's dtype. module has
    input_size, batch_first, dtype and _mode."""
    x = as_float_array(x, "input", module.dtype)
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{module._mode}: Expected input to be 2D or 3D, got {x.ndim}D input instead")
    unbatched = x.ndim == 2
    if x.shape[-1] != module.input_size:
        raise ValueError(
            f"input.size(-1) must be equal to input_size. Expected {module.input_size}, "
            f"got {x.shape[-1]}")
    if unbatched:
        x = x[:, None, :]
    elif module.batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    if x.shape[0] * x.shape[1] > _INT32_MAX or module.input_size > _INT32_MAX:
        raise ValueError(
            f"input of shape {shape_str(x.shape)} is too large for 32-bit BLAS "
            f"(T * B must be < 2**31)")
    return x, unbatched


def state_alias(hx: Any, alias: Any, alias_name: str) -> Any:
    """The state argument given as ``hx`` (PyTorch's name) or under its
    older name ``alias_name``; both at once is an error."""
    if alias is None:
        return hx
    if hx is not None:
        raise TypeError(f"got the state twice: pass hx or {alias_name} (its alias), not both")
    return alias


def empty(shape: int | tuple[int, ...], dtype: DTypeLike) -> NDArray[Any]:
    """np.empty for workspaces and tapes (NaN-filled under GRU_CY_POISON=1)."""
    if _POISON:
        return np.full(shape, np.nan, dtype=dtype)
    return np.empty(shape, dtype=dtype)


# Parameters start on a 64-byte boundary (a cache line; malloc gives 16), so
# that packing them never reads a row split across two lines.
PARAM_ALIGN = 64


def aligned_empty(shape: Iterable[int], dtype: DTypeLike) -> NDArray[Any]:
    """np.empty(shape, dtype) whose data starts on a PARAM_ALIGN boundary."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in shape)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buf = np.empty(nbytes + PARAM_ALIGN, dtype=np.uint8)
    start = -buf.__array_interface__["data"][0] % PARAM_ALIGN
    return buf[start:start + nbytes].view(dtype).reshape(shape)


def aligned_copy(arr: NDArray[Any]) -> NDArray[Any]:
    """A C-contiguous copy of the array, of its dtype, on a PARAM_ALIGN boundary."""
    out = aligned_empty(arr.shape, arr.dtype)
    out[...] = arr
    return out


def weight_layout_ok(p: NDArray[Any]) -> bool:
    """Whether the kernels take an array as it is: C- or F-contiguous (the
    products read either layout, with the same bits)."""
    return bool(p.flags.c_contiguous or p.flags.f_contiguous)


def shape_str(shape: Iterable[int]) -> str:
    """(3, 4) -> "(3, 4)", (3,) -> "(3,)", as Python prints a tuple."""
    return str(tuple(int(s) for s in shape))


# ---------------------------------------------------------------------------
# the training tape


class Tape:
    """What backward needs from one forward_train call.

    Treat it as opaque: its contents depend on the cell and may change
    between versions. It is a snapshot: it owns copies of the inputs and
    weights backward reads, so an optimiser step or a reused input buffer
    between forward and backward changes no gradient. A tape may be passed
    to backward more than once (gradients add up each time) but only to the
    module that made it, and only while that module keeps its configuration.
    """

    __slots__ = (
        "owner", "signature", "parts", "T", "B", "batch_first", "unbatched",
        "out_shape", "state_shapes", "weights",
    )

    owner: Module
    signature: tuple[Any, ...]
    parts: Any
    T: int
    B: int
    batch_first: bool
    unbatched: bool
    out_shape: tuple[int, ...]
    state_shapes: tuple[tuple[int, ...], ...]
    weights: Any

    def __repr__(self) -> str:
        return (f"<gru_cy Tape T={self.T} B={self.B} "
                f"out_shape={self.out_shape}>")


# ---------------------------------------------------------------------------
# what every module shares

# Module classes by name (class attribute ``_kind``), filled by
# register_module as each class is defined; gru_cy.io rebuilds modules from
# files through it, so nn never imports io.
MODULES: dict[str, type[Module]] = {}

_ModuleClass = TypeVar("_ModuleClass", bound="type[Module]")

# Functions that gru_cy.io installs when it is imported (gru_cy's __init__
# imports it): "save" -> save(module, path), and the converters "from_torch",
# "to_torch", "from_keras", "to_keras", "to_onnx" that the modules' methods call.
IO_HOOKS: dict[str, Any] = {}


def register_module(cls: _ModuleClass) -> _ModuleClass:
    """Class decorator: make cls loadable by name (its ``_kind``)."""
    kind = cls.__dict__.get("_kind") or cls.__name__
    cls._kind = kind
    MODULES[kind] = cls
    return cls


class Module:
    """The protocol every trainable module follows.

    ``params`` and ``grads`` are live dicts of NumPy arrays under the same
    names; ``zero_grad``, ``state_dict`` / ``load_state_dict``, ``save`` and
    plain pickling work alike for every module. A subclass sets ``dtype``
    and ``_rng`` and calls ``_allocate()`` in its constructor, and
    implements ``_param_shapes()`` (name, shape pairs in the stored order),
    ``reset_parameters()`` and ``_config()`` (the constructor arguments
    other than dtype and seed, as JSON-able values, so that
    ``cls(**config, dtype=dtype)`` rebuilds it).

    Gradient arrays follow one rule everywhere: backward adds into
    ``grads[name]`` when it is a writable C-contiguous array of the
    parameter's shape and the module's dtype, creates it (zeros) when it is
    missing, and raises ValueError for anything else (never replacing it
    silently, which would drop the gradient the array held).
    """

    _kind: str | None = None
    # Values derived from the configuration alone, kept in these instance
    # attributes until a public attribute is set (see __setattr__).
    _CACHES: tuple[str, ...] = ("_shapes", "_sig")

    params: dict[str, NDArray[Any]]
    grads: dict[str, NDArray[Any]]
    dtype: np.dtype[Any]
    _rng: np.random.Generator

    @property
    def _mode(self) -> str:
        """The module's name in messages."""
        return type(self).__name__

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "dtype":
            value = check_dtype(value)  # a np.dtype, whatever the user assigns
        object.__setattr__(self, name, value)
        # (Reconfiguring a module while other threads call it is not
        # supported: a call in flight may store a cache of the old setting.)
        if not name.startswith("_"):
            for key in self._CACHES:
                self.__dict__.pop(key, None)

    def __getstate__(self) -> dict[str, Any]:
        # Caches are rebuilt on demand; everything else (parameters,
        # gradients, the random generator's state) pickles as it is.
        state = dict(self.__dict__)
        for key in self._CACHES + ("_grad_lock",):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        params = self.__dict__.get("params")
        if type(params) is dict:
            # Unpickled arrays have malloc's alignment: back on cache lines.
            for name, p in params.items():
                if (type(p) is np.ndarray and p.flags.c_contiguous
                        and p.__array_interface__["data"][0] % PARAM_ALIGN):
                    params[name] = aligned_copy(p)

    def _allocate(self) -> None:
        """Parameters (on PARAM_ALIGN boundaries) and zero gradients of the
        shapes _param_shapes() gives, checked first against the memory of
        this machine; then reset_parameters() draws the parameters."""
        shapes = list(self._param_shapes())
        check_memory(self._mode, sum(int(np.prod(s, dtype=np.int64)) for _, s in shapes),
                     self.dtype.itemsize)
        self.params = {name: aligned_empty(shape, self.dtype) for name, shape in shapes}
        self.grads = {name: np.zeros_like(p) for name, p in self.params.items()}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        raise NotImplementedError

    def _param_shapes(self) -> Iterable[tuple[str, tuple[int, ...]]]:
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:
        raise NotImplementedError

    def _shape_table(self):
        """(((name, shape), ...) in stored order, {name: shape}), cached."""
        table = self.__dict__.get("_shapes")
        if table is None:
            pairs = tuple(self._param_shapes())
            table = self.__dict__["_shapes"] = (pairs, dict(pairs))
        return table

    def _param(self, name: str) -> NDArray[Any]:
        """params[name] checked for backward and the kernels: C- or
        F-contiguous, of the module's dtype and of its shape. params is live and users may
        assign into it: a wrong shape or a missing entry is an error,
        another float type or layout is converted for this call."""
        shape = self._shape_table()[1][name]
        p = self.params.get(name)
        if (type(p) is np.ndarray and p.dtype == self.dtype and p.shape == shape
                and weight_layout_ok(p)):
            return p
        if name not in self.params:
            raise KeyError_(f"parameter {name!r} is missing from params")
        p = as_float_array(p, f"params[{name!r}]", self.dtype)
        if p.shape != shape:
            raise ValueError(
                f"params[{name!r}] has shape {shape_str(p.shape)}, expected {shape_str(shape)}")
        return p

    def _grad_target(self, name: str) -> NDArray[Any]:
        """grads[name] as backward adds into it, by the rule above."""
        shape = self._shape_table()[1][name]
        g = self.grads.get(name)
        if g is None:
            g = self.grads[name] = np.zeros(shape, dtype=self.dtype)
            return g
        if not (isinstance(g, np.ndarray) and g.shape == shape and g.dtype == self.dtype
                and g.flags.c_contiguous and g.flags.writeable):
            raise ValueError(
                f"grads[{name!r}] must be a writable C-contiguous {self.dtype} array of shape "
                f"{shape_str(shape)}; call zero_grad() to recreate it")
        return g

    def _grad_arg(self, g, name, shape):
        """A gradient argument of backward: of the shape forward_train's result
        had, converted to the module's dtype (None: zeros)."""
        if g is None:
            return np.zeros(shape, dtype=self.dtype)
        g = as_float_array(g, name, self.dtype)
        if g.shape != tuple(shape):
            raise ValueError(f"{name} must have shape {shape_str(shape)} (as returned by "
                             f"forward_train), got {shape_str(g.shape)}")
        return g

    def _grads_lock(self) -> threading.Lock:
        """The lock held while gradients are added into self.grads, so that
        backward calls from several threads on one module add up instead of
        losing updates (created on first use; setdefault is atomic)."""
        lock = self.__dict__.get("_grad_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_grad_lock", threading.Lock())
        return lock

    def _check_tape(self, tape: Any, result: str) -> None:
        """A tape for this module's backward: made by this module's
        forward_train (``result``: which item of its results the tape is) and
        with the configuration the module has now."""
        if not isinstance(tape, Tape):
            raise TypeError(
                f"tape must be the {result} result of forward_train, got {type(tape).__name__}")
        if tape.owner is not self:
            raise ValueError("tape was recorded by a different module; pass it to that module's "
                             "backward")
        if tape.signature != self._signature():
            raise ValueError("tape was recorded with a different configuration or dtype than "
                             "the module has now; run forward_train again")
        for name, shape in self._shape_table()[0]:
            p = self.params.get(name)
            if getattr(p, "shape", None) != shape:
                raise ValueError(
                    f"tape was recorded with params[{name!r}] of shape {shape_str(shape)}, but it "
                    f"is now {shape_str(p.shape) if hasattr(p, 'shape') else 'missing'}; run "
                    "forward_train again")

    def _signature(self) -> tuple[Any, ...]:
        """What a tape must agree on with the module (cached until a public
        attribute is set)."""
        sig = self.__dict__.get("_sig")
        if sig is None:
            sig = self.__dict__["_sig"] = self._make_signature()
        return sig

    def _make_signature(self) -> tuple[Any, ...]:
        return (self._mode, self.dtype, self._shape_table()[0],
                tuple(sorted(self._config().items())))

    def zero_grad(self) -> None:
        """Set every gradient to zero (in place: references stay valid)."""
        with self._grads_lock():
            for name, shape in self._shape_table()[0]:
                g = self.grads.get(name)
                if (isinstance(g, np.ndarray) and g.shape == shape and g.dtype == self.dtype
                        and g.flags.c_contiguous and g.flags.writeable):
                    g[...] = 0
                else:
                    self.grads[name] = np.zeros(shape, dtype=self.dtype)

    def state_dict(self) -> dict[str, NDArray[Any]]:
        """A dict of copies of the parameters, PyTorch names and order."""
        return {name: np.array(p, copy=True) for name, p in self.params.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any],
                        strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy parameters in (NumPy arrays, array-likes or torch tensors).

        strict=True: the keys must match exactly. strict=False: missing and
        unexpected keys are ignored. Shapes must match either way. Returns
        (missing_keys, unexpected_keys), like PyTorch. Nothing is changed
        when an error is raised.
        """
        if not hasattr(state_dict, "keys") or not hasattr(state_dict, "__getitem__"):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
        expected = self._shape_table()[1]
        keys = list(state_dict.keys())
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in keys if k not in expected]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
            if unexpected:
                parts.append("Unexpected key(s) in state_dict: "
                             + ", ".join(f'"{k}"' for k in unexpected))
            raise KeyError_(f"Error(s) in loading state_dict for {self._mode}: " + ". ".join(parts))
        staged = {}
        errors = []
        for name, shape in expected.items():
            if name not in state_dict:
                continue
            arr = as_float_array(state_dict[name], f"state_dict[{name!r}]", self.dtype)
            if arr.shape != shape:
                errors.append(
                    f"size mismatch for {name}: copying a param with shape {shape_str(arr.shape)}, "
                    f"the shape in current model is {shape_str(shape)}")
            staged[name] = arr
        if errors:
            raise ValueError(
                f"Error(s) in loading state_dict for {self._mode}: " + "; ".join(errors))
        for name, arr in staged.items():
            p = self.params.get(name)
            if (isinstance(p, np.ndarray) and p.shape == arr.shape and p.dtype == self.dtype
                    and p.flags.writeable):
                p[...] = arr
            else:
                self.params[name] = aligned_copy(arr)
        return missing, unexpected

    def _extra_repr_items(self) -> list[str]:
        """The constructor arguments repr lists: the positional ones, then
        those that differ from their defaults (as PyTorch's repr)."""
        return []

    def __repr__(self) -> str:
        items = self._extra_repr_items()
        if self.dtype != np.float32:
            items.append(f"dtype={self.dtype.name}")
        return f"{type(self).__name__}({', '.join(items)})"

    def save(self, path: str | os.PathLike[str] | IO[bytes]) -> str | os.PathLike[str] | IO[bytes]:
        """Save configuration and weights as .npz (no pickles); see gru_cy.load."""
        result: str | os.PathLike[str] | IO[bytes] = IO_HOOKS["save"](self, path)
        return result



class Recurrent(Module):
    """The recurrent driver: layers x directions of one cell over a padded,
    time-major batch, forward and backward.

    A cell is described by ``_gates`` (gate blocks per weight matrix),
    ``_state_names`` (the arrays of its recurrent state: ("h",) for the GRU,
    ("h", "c") for the LSTM, ("y",) for the Jordan network) and
    ``_state_widths()`` (the width of each; the first state is also each
    step's output, so a layer's output has num_directions times its width),
    ``_layer_names()`` (the parameter names each kernel call takes, per
    layer and direction), and ``_cell`` with ``_core_flags()``,
    ``_core_P()`` and ``_six()``: which of the compiled kernels
    (gru_cy.kernels._core) runs it and how its parameters map onto theirs.
    A cell with one state array takes and returns it as such (``hx``,
    ``h_n``, ``dh0``); one with more takes and returns tuples
    (``hx = (h0, c0)``).

    What the driver decides for every cell: the checks and conversions of
    the arguments, the batch plan (_run_sorted: the rows by decreasing
    length; the kernels split a call over gru_cy's threads themselves), the
    tape (a snapshot of the inputs, weights and activations backward reads),
    one tape check and one lock per module in backward, and the gradient
    buffers.
    """

    _gates = 1
    _state_names: tuple[str, ...] = ("h",)
    _cell: int = -1         # _core.GRU, _core.LSTM, _core.RNN, _core.JORDAN
    # One layer, one direction, no dropout unless a subclass's constructor
    # sets these (RNNBase does).
    input_size: int
    hidden_size: int
    batch_first: bool
    num_layers = 1
    bidirectional = False
    dropout = 0.0
    go_backwards = False

    # -- the cell description ---------------------------------------------------

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _state_widths(self):
        """Width of each state array, in _state_names order."""
        return (self.hidden_size,)

    @property
    def _out_size(self):
        """Width of one direction's output (the first state's width)."""
        return self._state_widths()[0]

    def _state_shapes(self, LD, B, unbatched=False):
        """Shapes of the state arrays as the caller sees them."""
        if unbatched:
            return tuple((LD, w) for w in self._state_widths())
        return tuple((LD, B, w) for w in self._state_widths())

    def _pack_state(self, states):
        """The public form of a state tuple: the array itself for a
        one-array state, else the tuple."""
        return states[0] if len(states) == 1 else tuple(states)

    @staticmethod
    def _kernel_state(states, i):
        """Entry i (layer * D + direction) of every state array, as the
        kernels take it: the (B, W) array itself for a one-array state, a
        tuple of them otherwise."""
        if len(states) == 1:
            return states[0][i]
        return tuple(s[i] for s in states)

    def _directions(self):
        """Reverse flag of each direction, in output order."""
        if self.bidirectional:
            return (False, True)
        return (self.go_backwards,)

    def _layer_names(self):
        """[[names of one direction's parameters as its kernel calls take
        them (None for an absent one)] per direction] per layer."""
        raise NotImplementedError

    def _weights(self):
        """Checked, contiguous parameters per layer and direction, in the
        order _layer_names gives (None for absent ones)."""
        return [[tuple(None if name is None else self._param(name) for name in names)
                 for names in row]
                for row in self._layer_names()]

    # -- input checking and layout -------------------------------------------

    def _prepare(self, x, h0, lengths):
        """Check and convert the arguments of a forward call.

        Returns (x_tm, states, lengths, full, unbatched): x time-major
        (T, B, I) C-contiguous of the module's dtype, states a tuple of
        private (L*D, B, W) copies of the initial state arrays, lengths int64
        (B,), full = every length equals T.
        """
        x, unbatched = prepare_input(self, x)
        T, B = x.shape[0], x.shape[1]
        states = self._prepare_state(h0, B, unbatched)
        if lengths is None:
            lengths_arr = np.empty(B, dtype=np.int64)
            lengths_arr.fill(T)
            return x, states, lengths_arr, True, unbatched
        lengths_arr = self._check_lengths(lengths, T, B, unbatched)
        full = bool(np.all(lengths_arr == T))
        return x, states, lengths_arr, full, unbatched

    def _prepare_state(self, hx, B, unbatched, name="hx"):
        """The initial state as a tuple of private (L*D, B, W) copies (zeros
        for None). One state array, PyTorch's wording; cells with more
        override this."""
        LD, H = self.num_layers * self.num_directions, self._state_widths()[0]
        if hx is None:
            return (np.zeros((LD, B, H), dtype=self.dtype),)
        h0 = as_float_array(hx, name, self.dtype)
        if unbatched and h0.ndim != 2:
            raise ValueError(
                f"For unbatched 2-D input, {name} should also be 2-D but got {h0.ndim}-D tensor")
        if not unbatched and h0.ndim != 3:
            raise ValueError(
                f"For batched 3-D input, {name} should also be 3-D but got {h0.ndim}-D tensor")
        expected = (LD, H) if unbatched else (LD, B, H)
        if h0.shape != expected:
            what = "hidden" if name == "hx" else name
            raise ValueError(
                f"Expected {what} size {shape_str(expected)}, got {list(h0.shape)}")
        return (np.array(h0.reshape(LD, B, H), dtype=self.dtype, copy=True),)

    @staticmethod
    def _check_lengths(lengths, T, B, unbatched):
        if lengths is None:
            return np.full(B, T, dtype=np.int64)
        arr = to_numpy(lengths, "lengths")
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)  # np.asarray([]) is float64: an empty batch's lengths
        if arr.dtype.kind not in "iu":
            raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
        if unbatched and arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1 or arr.shape[0] != B:
            raise ValueError(
                f"lengths must be a 1-D array with one entry per batch element: expected shape "
                f"({B},), got {shape_str(arr.shape)}")
        # Work on a private copy, checked after copying: the kernels index
        # with these values, and the caller's buffer may change afterwards
        # (reused for the next batch before backward, or by another thread).
        if B and (arr.min() < 0 or arr.max() > T):
            raise ValueError(
                f"lengths must lie in [0, T] with T={T}, got values from {arr.min()} to {arr.max()}")
        own = np.array(arr, dtype=np.int64, copy=True)
        if B and (own.min() < 0 or own.max() > T):
            raise ValueError(
                f"lengths must lie in [0, T] with T={T}, got values from {own.min()} to {own.max()}")
        return own

    def _finish(self, out, states, unbatched):
        """(out, state) as the caller sees them (the state packed by
        _pack_state)."""
        if unbatched:
            return out[:, 0, :], self._pack_state(tuple(s[:, 0, :] for s in states))
        if self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return out, self._pack_state(states)

    # -- forward and backward over layers and directions -----------------------

    def __call__(self, x: ArrayLike, hx: Any = None, lengths: ArrayLike | None = None, *,
                 h0: Any = None) -> tuple[NDArray[Any], Any]:
        """Inference: (out, h_n). No tape is kept and no dropout applied.

        ``hx`` is the initial state (PyTorch's name); ``h0`` is its older
        alias (GRU, RNN).
        """
        if h0 is not None:
            hx = state_alias(hx, h0, "h0")
        if lengths is None and not self.bidirectional:
            # Lean path: arrays already of the module's dtype, C-contiguous
            # and of the right shapes go to the kernels in one call.
            result = self._kernel_infer(x, hx)
            if result is not None:
                return result
        return self._forward_general(x, hx, lengths)

    forward = __call__

    def _forward_general(self, x, h0, lengths):
        """Inference for arguments that need checks, conversions or lengths."""
        x, states, lengths, full, unbatched = self._prepare(x, h0, lengths)
        weights = self._weights()
        parts = self._run_batch(x, states, lengths, full, weights, False, None)
        out = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts], axis=1)
        return self._finish(out, states, unbatched)

    def forward_train(self, x: ArrayLike, hx: Any = None, lengths: ArrayLike | None = None, *,
                      h0: Any = None) -> tuple[NDArray[Any], Any, Tape]:
        """Forward that keeps what backward needs: (out, h_n, tape).

        Dropout (if any) is applied between layers, drawn from the module's
        random generator. ``h0`` is an alias of ``hx`` (GRU, RNN).
        """
        if h0 is not None:
            hx = state_alias(hx, h0, "h0")
        x_user = x
        x, states, lengths, full, unbatched = self._prepare(x, hx, lengths)
        # The tape keeps the input for backward: it must not follow later
        # changes the caller makes to its own buffer.
        x = private_copy(x, x_user)
        if not full:
            # Padded steps take no part in the result; zero them in this
            # private copy so that NaN or Inf there cannot reach the weight
            # gradient (dW_ih = dgi.T @ x runs over every row, padded ones
            # carry dgi = 0, and 0 * NaN is NaN).
            x[np.arange(x.shape[0])[:, None] >= lengths[None, :]] = 0
        weights = self._weights()
        T, B = x.shape[0], x.shape[1]
        D, R, L = self.num_directions, self._out_size, self.num_layers
        # The dropout masks of the outputs of layers 0 .. L-2, drawn before
        # anything runs (the draws do not depend on the batch split).
        masks = [self._dropout_mask((T, B, D * R)) if self.dropout > 0.0 else None
                 for _ in range(L - 1)]
        tape = Tape()
        tape.owner = self
        tape.signature = self._signature()
        tape.parts = self._run_batch(x, states, lengths, full, weights, True, masks)
        tape.T, tape.B = T, B
        tape.batch_first, tape.unbatched = self.batch_first, unbatched
        # Backward must see the parameters this forward used, even if an
        # optimiser updates the module's params in place before backward runs.
        tape.weights = [[tuple(None if w is None else w.copy() for w in arrays)
                         for arrays in row] for row in weights]
        parts = tape.parts
        out = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts], axis=1)
        # backward never reads a part's top-layer output: do not keep it alive.
        tape.parts = [(p[0], None) + p[2:] for p in parts]
        out, state_user = self._finish(out, states, unbatched)
        tape.out_shape = out.shape
        tape.state_shapes = self._state_shapes(L * D, B, unbatched)
        return out, state_user, tape

    # -- the batch, layer by layer ---------------------------------------------

    def _run_batch(self, x, states, lengths, full, weights, train, masks):
        """Every layer over the batch: a list of one part (batch slice, out,
        layer_inputs, saved, masks, lengths, full, order) with the inputs,
        tape, masks and lengths in the order of the rows the kernels ran
        (order: see _run_sorted); the state arrays are updated in place."""
        return [(slice(None),) + self._run_sorted(x, states, lengths, full, weights, train,
                                                  masks)]

    def _run_sorted(self, x, states, lengths, full, weights, train, masks):
        """_run_layers with the batch sorted by decreasing length when that
        pays: the kernels then multiply only the rows of the sequences still
        running at each step (as packed sequences do). Returns (out, inputs,
        saved, masks, lengths, full, order): out in the caller's row order,
        the rest in the order the kernels ran (order = that permutation, or
        None for the caller's own)."""
        order = _length_order(lengths, full)
        if order is None:
            out, inputs, saved = self._run_layers(x, states, lengths, full, weights, train,
                                                  masks)
            return out, inputs, saved, masks, lengths, full, None
        h_sorted = tuple(np.ascontiguousarray(s[:, order]) for s in states)
        lengths = np.ascontiguousarray(lengths[order])
        if masks is not None:
            masks = [None if m is None else np.ascontiguousarray(m[:, order]) for m in masks]
        out, inputs, saved = self._run_layers(np.ascontiguousarray(x[:, order]), h_sorted,
                                              lengths, full, weights, train, masks)
        back = np.argsort(order)
        for s, s_sorted in zip(states, h_sorted):
            s[...] = s_sorted[:, back]
        return (np.ascontiguousarray(out[:, back]), inputs, saved, masks, lengths, full,
                order)

    def _run_layers(self, x, states, lengths, full, weights, train, masks):
        """Every layer and direction over x (T, B, I): (out, layer inputs,
        saved), the last two empty unless train. masks: dropout masks of the
        outputs of layers 0 .. L-2 (entries None for no dropout), or None."""
        T, B = x.shape[0], x.shape[1]
        D, L, R = self.num_directions, self.num_layers, self._out_size
        inputs, saved = [], []
        layer_in = x
        for k in range(L):
            out = (empty if full else np.zeros)((T, B, D * R), dtype=self.dtype)
            saved_k = tuple(self._alloc_saved(T, B) if train else None for _ in range(D))
            self._kernel_layer(out, states, k, layer_in, weights[k], lengths, full, saved_k)
            if train:
                inputs.append(layer_in)
                saved.append(saved_k)
            if masks is not None and k < L - 1 and masks[k] is not None:
                out *= masks[k]
            layer_in = out
        return layer_in, inputs, saved

    def step(self, x_t: ArrayLike, hx: Any = None, *, h: Any = None
             ) -> tuple[NDArray[Any], Any]:
        """Advance every layer by one time step: (y_t, hx).

        x_t is (B, I) or unbatched (I,); hx is (L, B, H) or (L, H), None for
        zeros (``h`` is its older alias, GRU and RNN). y_t (B, H) is the top
        layer's output, hx the new state of every layer. Fed a sequence one
        step at a time it returns bit for bit what one whole-sequence call
        returns (docs/architecture.md, "The guarantees").
        Inference only: no dropout, no tape. Not for bidirectional modules,
        whose reverse direction needs the whole sequence.
        """
        if h is not None:
            hx = state_alias(hx, h, "h")
        if not self.bidirectional:
            # Lean path: arrays already of the module's dtype, C-contiguous and
            # of the right shapes go straight to the kernel (no per-call
            # workspace is shared, so threads may call step() concurrently).
            result = self._kernel_step(x_t, hx)
            if result is not None:
                return result
        return self._step_general(x_t, hx)

    def _step_general(self, x_t, h):
        """step() for arguments that need checks and conversions."""
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional module: the reverse direction of a "
                             f"bidirectional {self._mode} depends on the whole sequence")
        x_t = as_float_array(x_t, "x_t", self.dtype)
        if x_t.ndim not in (1, 2):
            raise ValueError(f"step: Expected x_t to be 1D or 2D, got {x_t.ndim}D input instead")
        unbatched = x_t.ndim == 1
        if x_t.shape[-1] != self.input_size:
            raise ValueError(
                f"x_t.size(-1) must be equal to input_size. Expected {self.input_size}, "
                f"got {x_t.shape[-1]}")
        x = x_t.reshape(1, 1 if unbatched else x_t.shape[0], self.input_size)
        B, L, R = x.shape[1], self.num_layers, self._out_size
        states = self._prepare_step_state(h, B, unbatched)
        weights = self._weights()
        lengths = np.ones(B, dtype=np.int64)
        layer_in = x
        for k in range(L):
            out = empty((1, B, R), dtype=self.dtype)
            self._kernel_layer(out, states, k, layer_in, weights[k], lengths, True, (None,))
            layer_in = out
        if unbatched:
            return layer_in[0, 0], self._pack_state(tuple(s[:, 0] for s in states))
        return layer_in[0], self._pack_state(states)

    def _prepare_step_state(self, h, B, unbatched, name="hx"):
        """step()'s state as a tuple of private (L, B, W) copies (zeros for
        None); one state array, cells with more override this."""
        L, H = self.num_layers, self._state_widths()[0]
        if h is None:
            return (np.zeros((L, B, H), dtype=self.dtype),)
        expected = (L, H) if unbatched else (L, B, H)
        h = as_float_array(h, name, self.dtype)
        if h.shape != expected:
            what = "hidden" if name == "hx" else name
            raise ValueError(f"Expected {what} size {shape_str(expected)}, got {list(h.shape)}")
        return (h.reshape(L, B, H).copy(),)

    def _dropout_mask(self, shape):
        p = self.dropout
        if p >= 1.0:
            return np.zeros(shape, dtype=self.dtype)
        keep = self._rng.random(shape) >= p
        return keep.astype(self.dtype) * self.dtype.type(1.0 / (1.0 - p))

    def backward(self, tape: Tape, dout: ArrayLike | None = None,
                 dh_n: Any = None) -> tuple[NDArray[Any], Any]:
        """Backpropagate through a forward_train call: (dx, dh0).

        dout has the shape of that call's out, dh_n of its h_n; None means
        zeros. Parameter gradients are added into self.grads (call
        zero_grad() to start afresh); calls from several threads on one
        module take turns for that. Uses the parameters recorded when the
        tape was made.
        """
        return self._backward_states(tape, dout, (dh_n,), ("dh_n",))

    def _backward_states(self, tape, dout, dstates, names):
        """backward() for any state tuple: dstates holds the gradient of each
        final state array (None for zeros), names their argument names.
        Returns (dx, the initial state's gradient packed by _pack_state)."""
        self._check_tape(tape, "third")
        B = tape.B
        D, L = self.num_directions, self.num_layers
        dout = self._grad_arg(dout, "dout", tape.out_shape)
        dh = []
        for g, name, shape, W in zip(dstates, names, tape.state_shapes, self._state_widths()):
            if g is None:
                dh.append(np.zeros((L * D, B, W), dtype=self.dtype))
            else:
                # A copy: the kernels update it in place.
                dh.append(self._grad_arg(g, name, shape).reshape(L * D, B, W).copy())
        dh = tuple(dh)
        if tape.unbatched:
            dout = dout[:, None, :]
        elif tape.batch_first:
            dout = dout.transpose(1, 0, 2)
        dout = np.ascontiguousarray(dout)
        # The kernels add into self.grads in place: one backward at a time
        # per module (other modules' calls run in parallel).
        with self._grads_lock():
            return self._backward_locked(tape, dout, dh)

    def _backward_locked(self, tape, dout, dh):
        grads = self._grad_buffers()
        dx = self._backward_layers(tape.parts[0], dout, dh, grads, tape.weights)
        if tape.unbatched:
            return dx[:, 0, :], self._pack_state(tuple(d[:, 0, :] for d in dh))
        if tape.batch_first:
            dx = np.ascontiguousarray(dx.transpose(1, 0, 2))
        return dx, self._pack_state(dh)

    def _backward_layers(self, part, dout, dh, grads, weights):
        """Backward through the layers of one part of a tape (see _run_batch):
        dx; dh, a tuple of (L*D, B, W) state gradients, is updated in place,
        grads added into."""
        _, _, layer_inputs, saved, masks, lengths, full, order = part
        if order is not None:
            # The tape is in the kernels' (sorted) row order.
            dh_sorted = tuple(np.ascontiguousarray(d[:, order]) for d in dh)
            dx = self._backward_layers(part[:-1] + (None,), np.ascontiguousarray(dout[:, order]),
                                       dh_sorted, grads, weights)
            back = np.argsort(order)
            for d, d_sorted in zip(dh, dh_sorted):
                d[...] = d_sorted[:, back]
            return np.ascontiguousarray(dx[:, back])
        D, L = self.num_directions, self.num_layers
        for k in range(L - 1, -1, -1):
            layer_in = layer_inputs[k]
            dx = self._kernel_layer_backward(dout, dh, k, layer_in, weights[k], grads[k],
                                             lengths, full, saved[k])
            if k > 0 and masks is not None and masks[k - 1] is not None:
                dx *= masks[k - 1]
            dout = dx
        return dout

    def _grad_buffers(self):
        """self.grads arrays per layer and direction, each checked to be a
        writable target (Module._grad_target), all before any is used."""
        return [[tuple(None if name is None else self._grad_target(name) for name in names)
                 for names in row]
                for row in self._layer_names()]

    # -- the compiled kernels (gru_cy.kernels._core) ------------------------------

    def _core_flags(self):
        """The cell's kernel flags (GRU: reset_after; RNN: the activation;
        Jordan: both activations)."""
        return 0

    def _core_P(self):
        """The second product's width: the LSTM's proj_size, the Jordan
        network's output size (0 for the other cells)."""
        return 0

    def _six(self, arrays):
        """One direction's parameters (the _layer_names order) as the kernels
        take them: (w_ih, w_hh, b_ih, b_hh, w2, b2), None where the cell has
        none."""
        return tuple(arrays) + (None,) * (6 - len(arrays))

    @staticmethod
    def _state_tuple(states, i):
        """Entry i (layer * D + direction) of every state array, (B, W) each."""
        return tuple(s[i] for s in states)

    def _alloc_saved(self, T, B):
        """One layer-direction's training tape (on the kernels' tape block, which
        the next forward_train reuses once this tape is freed)."""
        n = _core.tape_size(self._cell, self._core_flags(), self._core_P(), T, B, 0,
                            self.hidden_size)
        if _POISON:
            return empty(n, self.dtype)
        return _core.tape_empty(n, self.dtype)

    def _kernel_layer(self, out, states, k, x, weights, lengths, full, saved):
        """Layer k, every direction at once: out (T, B, D * W) written (its
        rows of padded times left as they are), the states' entries of layer
        k updated in place; weights[d] as _layer_names lists them; saved: a
        tape per direction (_alloc_saved) or None each."""
        D = len(saved)
        _core.forward(self._cell, self._core_flags(), self._core_P(), x, out,
                      tuple(self._state_tuple(states, k * D + d) for d in range(D)),
                      tuple(self._six(w) for w in weights), None if full else lengths,
                      self._directions(), tuple(saved))

    def _kernel_layer_backward(self, dout, dh, k, x, weights, grads, lengths, full, saved):
        """Backward of _kernel_layer for layer k, every direction at once:
        dx; the states' gradients of layer k (in dh) go from dL/d(final) to
        dL/d(initial) in place, grads[d] added into."""
        D = len(saved)
        # One dx per direction: the directions run at once.
        dxs = tuple(np.zeros(x.shape, dtype=self.dtype) for _ in range(D))
        _core.backward(self._cell, self._core_flags(), self._core_P(), x, dout, dxs,
                       tuple(self._state_tuple(dh, k * D + d) for d in range(D)),
                       tuple(self._six(w) for w in weights), tuple(self._six(g) for g in grads),
                       None if full else lengths, self._directions(), tuple(saved))
        return dxs[0] if D == 1 else dxs[0] + dxs[1]

    def _kernel_forward(self, out, col, state, x, weights, lengths, full, reverse, saved):
        """One layer, one direction (the cells' calls): out[..., col:col + W]
        written, state (as _kernel_state gives it) updated in place."""
        state = (state,) if isinstance(state, np.ndarray) else tuple(state)
        _core.forward(self._cell, self._core_flags(), self._core_P(), x,
                      out[:, :, col:] if col else out, (state,), (self._six(weights),),
                      None if full else lengths, (reverse,), (saved,))

    def _kernel_backward(self, dx, dstate, grads, dout, col, saved, x, weights, lengths, full,
                         reverse):
        """Backward of _kernel_forward: dx added into, dstate (as
        _kernel_state gives it) from dL/d(final) to dL/d(initial), grads
        added into."""
        dstate = (dstate,) if isinstance(dstate, np.ndarray) else tuple(dstate)
        _core.backward(self._cell, self._core_flags(), self._core_P(), x,
                       dout[:, :, col:] if col else dout, (dx,), (dstate,),
                       (self._six(weights),), (self._six(grads),), None if full else lengths,
                       (reverse,), (saved,))

    _lean = None    # the cached _core.Lean of this configuration

    def _lean_names(self):
        """The kernels' six parameter names per layer, for _core.Lean."""
        return tuple(self._six(row[0]) for row in self._layer_names())

    def _lean_obj(self):
        """The module's _core.Lean (its parameter names bound), cached until a
        public attribute is set."""
        lean = self.__dict__.get("_lean")
        if lean is None:
            names = self._lean_names()
            if type(self.params) is dict:
                # The dict's own key objects: each call's lookups then match
                # by identity instead of comparing the strings.
                keys = {k: k for k in self.params}
                names = tuple(tuple(None if n is None else keys.get(n, n) for n in row)
                              for row in names)
            lean = _core.Lean(self._cell, self._core_flags(), self._core_P(), names,
                              self.input_size, self.hidden_size, self.dtype.num,
                              self.go_backwards)
            self.__dict__["_lean"] = lean
        return lean

    def freeze(self, precision: str = "fp32") -> FrozenRecurrent:
        """An inference-only copy of this module with its weights packed once
        (gru_cy.nn.frozen): ``frozen(x, hx=None, lengths=None)`` and
        ``frozen.step(x_t, hx=None)`` as this module's calls. ``precision``:
        "fp32" (the module's float type; the same bits as the module),
        "bf16" or "int8" (float32 modules). Later changes to the module do
        not reach it."""
        from gru_cy.nn.frozen import FrozenRecurrent

        return FrozenRecurrent(self, precision)

    def _kernel_infer(self, x, h0):
        """The lean path of __call__ (unidirectional, no lengths): (out, h_n)
        or None when the general path is needed."""
        return (self._lean or self._lean_obj()).infer(x, h0, self.params, self.batch_first)

    def _kernel_step(self, x_t, h):
        """The lean path of step(): (y, h) or None."""
        return (self._lean or self._lean_obj()).step(x_t, h, self.params)


class RNNBase(Recurrent):
    """Layers x directions of one recurrent cell in PyTorch's parameter layout.

    Per layer ``k`` and direction (suffix ``_reverse`` for the second):
    ``weight_ih_l{k}`` (G*H, in), ``weight_hh_l{k}`` (G*H, H) and, with
    bias, ``bias_ih_l{k}`` / ``bias_hh_l{k}`` (G*H,), G = ``_gates``; the
    constructor arguments of ``torch.nn.GRU`` / ``LSTM`` / ``RNN``; the
    conversions to and from PyTorch, Keras and ONNX. The driver
    (``Recurrent``) runs it.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float32, seed: int | np.random.Generator | None = None,
                 go_backwards: bool = False) -> None:
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        bias = check_bool("bias", bias)
        batch_first = check_bool("batch_first", batch_first)
        bidirectional = check_bool("bidirectional", bidirectional)
        if (isinstance(dropout, (bool, np.bool_)) or not isinstance(dropout, numbers.Real)
                or not 0.0 <= float(dropout) <= 1.0):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability "
                f"of an element being zeroed, got {dropout!r}")
        go_backwards = check_bool("go_backwards", go_backwards)
        if go_backwards and bidirectional:
            raise ValueError("go_backwards=True makes a reverse-only module; it cannot be combined "
                             "with bidirectional=True")
        self.go_backwards = go_backwards
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.dtype = check_dtype(dtype)
        self.seed = seed
        self._rng = make_rng(seed)
        self._check_size()
        self._allocate()

    _CACHES = ("_lean", "_shapes", "_names", "_sig")

    def _check_size(self):
        """Refuse, before allocating anything, sizes 32-bit BLAS cannot take
        (Module._allocate then checks the memory)."""
        G, H, D = self._gates, self.hidden_size, self.num_directions
        if G * H > _INT32_MAX or self.input_size > _INT32_MAX or D * H > _INT32_MAX:
            raise ValueError(f"input_size={self.input_size}, hidden_size={H}: too large for "
                             "32-bit BLAS (dimensions must stay below 2**31)")
        # The memory check, before _param_shapes enumerates a huge num_layers.
        per_direction_first = G * H * (self.input_size + H) + (2 * G * H if self.bias else 0)
        per_direction_rest = G * H * (D * H + H) + (2 * G * H if self.bias else 0)
        check_memory(self._mode, D * (per_direction_first
                                      + (self.num_layers - 1) * per_direction_rest),
                     self.dtype.itemsize)

    # -- parameters ---------------------------------------------------------

    def _param_shapes(self):
        G, H, D = self._gates, self.hidden_size, self.num_directions
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else D * H
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
                yield "weight_ih" + sfx, (G * H, in_k)
                yield "weight_hh" + sfx, (G * H, H)
                if self.bias:
                    yield "bias_ih" + sfx, (G * H,)
                    yield "bias_hh" + sfx, (G * H,)

    def _direction_names(self, sfx):
        """Names of one direction's parameters as the kernels take them (None
        for an absent one), sfx = "_l{k}" or "_l{k}_reverse"."""
        return (("weight_ih" + sfx, "weight_hh" + sfx)
                + (("bias_ih" + sfx, "bias_hh" + sfx) if self.bias else (None, None)))

    def _layer_names(self):
        """[[_direction_names per direction] per layer] ((w_ih, w_hh, b_ih,
        b_hh) by default, the bias names None when bias=False); cached."""
        names = self.__dict__.get("_names")
        if names is None:
            names = tuple(
                tuple(self._direction_names(f"_l{k}" + ("_reverse" if d == 1 else ""))
                      for d in range(self.num_directions))
                for k in range(self.num_layers))
            self.__dict__["_names"] = names
        return names

    def reset_parameters(self) -> None:
        """Draw every parameter from U(-1/sqrt(H), 1/sqrt(H)), like PyTorch."""
        bound = 1.0 / np.sqrt(self.hidden_size)
        for p in self.params.values():
            p[...] = self._rng.uniform(-bound, bound, size=p.shape)

    def _make_signature(self):
        return (self._mode, self.input_size, self.hidden_size, self.num_layers, self.bias,
                self.bidirectional, self.go_backwards, self.dtype, self._shape_table()[0])

    # -- presentation ----------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return dict(input_size=self.input_size, hidden_size=self.hidden_size,
                    num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                    dropout=self.dropout, bidirectional=self.bidirectional,
                    go_backwards=self.go_backwards)

    # -- conversions: gru_cy.io installs IO_HOOKS when imported (nn never imports io) --

    @classmethod
    def from_torch(cls, module: Any, *args: Any, **kwargs: Any) -> Self:
        """A module of this class with the configuration and weights of the matching
        ``torch.nn`` module (or of its state dict)."""
        result: Self = IO_HOOKS["from_torch"](module, *args, cls=cls, **kwargs)
        return result

    def to_torch(self, *args: Any, **kwargs: Any) -> Any:
        """An equivalent ``torch.nn`` module, in eval mode."""
        return IO_HOOKS["to_torch"](self, *args, **kwargs)

    @classmethod
    def from_keras(cls, layer: Any, *args: Any, **kwargs: Any) -> Self:
        """A module of this class from a Keras 3 layer, a ``Bidirectional`` of one, a
        list of them or a model made of them."""
        result: Self = IO_HOOKS["from_keras"](layer, *args, cls=cls, **kwargs)
        return result

    def to_keras(self, *args: Any, **kwargs: Any) -> Any:
        """An equivalent Keras 3 layer (a ``keras.Sequential`` for several layers)."""
        return IO_HOOKS["to_keras"](self, *args, **kwargs)

    def to_onnx(self, path: str | os.PathLike[str] | IO[bytes], *args: Any,
                **kwargs: Any) -> Any:
        """Write an ONNX model that ONNX Runtime runs with the same results."""
        return IO_HOOKS["to_onnx"](self, path, *args, **kwargs)

    def _extra_repr_items(self):
        items = [str(self.input_size), str(self.hidden_size)]
        if self.num_layers != 1:
            items.append(f"num_layers={self.num_layers}")
        if not self.bias:
            items.append("bias=False")
        if self.batch_first:
            items.append("batch_first=True")
        if self.dropout != 0.0:
            items.append(f"dropout={self.dropout}")
        if self.bidirectional:
            items.append("bidirectional=True")
        if self.go_backwards:
            items.append("go_backwards=True")
        return items




if TYPE_CHECKING:
    class OneStateRNN(RNNBase):
        """RNNBase's calls as type checkers see them for a cell whose state is
        one array (GRU, RNN); the LSTM types its (h, c) tuple itself."""

        def __call__(self, x: ArrayLike, hx: ArrayLike | None = None,
                     lengths: ArrayLike | None = None, *, h0: ArrayLike | None = None
                     ) -> tuple[NDArray[Any], NDArray[Any]]: ...

        def forward(self, x: ArrayLike, hx: ArrayLike | None = None,
                    lengths: ArrayLike | None = None, *, h0: ArrayLike | None = None
                    ) -> tuple[NDArray[Any], NDArray[Any]]: ...

        def forward_train(self, x: ArrayLike, hx: ArrayLike | None = None,
                          lengths: ArrayLike | None = None, *, h0: ArrayLike | None = None
                          ) -> tuple[NDArray[Any], NDArray[Any], Tape]: ...

        def backward(self, tape: Tape, dout: ArrayLike | None = None,
                     dh_n: ArrayLike | None = None) -> tuple[NDArray[Any], NDArray[Any]]: ...

        def step(self, x_t: ArrayLike, hx: ArrayLike | None = None, *,
                 h: ArrayLike | None = None) -> tuple[NDArray[Any], NDArray[Any]]: ...
else:
    # At run time the GRU and the RNN are RNNBase's subclasses directly.
    OneStateRNN = RNNBase

class KeyError_(ValueError, KeyError):
    """A missing or unexpected state-dict key: a ValueError (as the error
    contract says) that ``except KeyError`` also catches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""
