"""PyTorch: from_torch, to_torch, and reading torch state dicts.

gru_cy's recurrent modules use PyTorch's parameter names, shapes and gate
order (``weight_ih_l{k}[_reverse]`` of G gate blocks), so converting is
copying. What differs between cells is a few facts, one ``TorchCell`` entry
in ``TORCH_CELLS`` per gru_cy kind:

- ``torch_class``: the ``torch.nn`` class name ("GRU", "RNN", "LSTM");
- ``gates``: gate blocks per weight matrix (3, 1, 4); state dicts of
  unknown origin are matched to a cell by ``weight_hh_l0``'s rows / H;
- ``from_torch(module) -> dict``: the cell's own constructor arguments read
  from the torch module (an Elman RNN's ``nonlinearity``); raise ValueError
  for torch settings gru_cy cannot reproduce (the LSTM's ``proj_size``, which
  gru_cy reproduces, is read here);
- ``to_torch(module) -> dict``: the extra ``torch.nn`` constructor arguments;
- ``check(module, what)``: raise ValueError when the module has no torch
  form (a GRU with reset_after=False; go_backwards for every cell);
- ``state_dict_note``: what a bare state dict cannot tell (an Elman RNN's
  nonlinearity), printed by the convert command.

Adding a cell is adding its entry; nothing else here changes. torch is
imported inside the functions that need it; ``torch.load`` is only ever
called with ``weights_only=True`` (by the convert command).

The one-step cells (``GRUCell``, ``LSTMCell``, ``RNNCell``) have the
parameter names of ``torch.nn``'s cells (``weight_ih``, ``weight_hh``,
``bias_ih``, ``bias_hh``) and convert with ``cell_from_torch`` /
``cell_to_torch``: one ``TORCH_STEP_CELLS`` entry per cell kind, naming the
torch class and the cell's own constructor arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from gru_cy.io._common import (build, cell_spec, float_dtype, kind_of, module_class,
                               param_shapes)

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from gru_cy.nn.base import Module, RNNBase

__all__ = ["TorchCell", "TORCH_CELLS", "from_torch", "to_torch", "TORCH_STEP_CELLS",
           "cell_from_torch", "cell_to_torch"]


def _no_extra(module):
    return {}


def _check_directions(module, what):
    if module.go_backwards:
        name = cell_spec(TORCH_CELLS, type(module)).torch_class
        raise ValueError(
            f"{what}: go_backwards=True (a reverse-only module) has no torch.nn.{name} form "
            f"(torch.nn.{name} runs forward or bidirectional); use to_onnx, to_keras or save "
            f"instead")


@dataclass(frozen=True)
class TorchCell:
    torch_class: str
    gates: int
    from_torch: Callable = _no_extra
    to_torch: Callable = _no_extra
    check: Callable = _check_directions
    # What a state dict cannot say about the module (the convert command prints it).
    state_dict_note: str = ""


def _check_gru(gru, what):
    if not gru.reset_after:
        raise ValueError(
            f"{what}: reset_after=False has no torch.nn.GRU form (torch.nn.GRU applies the reset "
            f"gate after the recurrent product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); "
            f"use to_onnx, to_keras or save instead")
    _check_directions(gru, what)


def _proj_size(lstm):
    return dict(proj_size=int(lstm.proj_size))


def _rnn_nonlinearity(module):
    return dict(nonlinearity=module.nonlinearity)


TORCH_CELLS = {
    "GRU": TorchCell(torch_class="GRU", gates=3, check=_check_gru),
    "RNN": TorchCell(torch_class="RNN", gates=1, from_torch=_rnn_nonlinearity,
                     to_torch=_rnn_nonlinearity,
                     state_dict_note="a torch.nn.RNN state dict does not record its "
                                     "nonlinearity: tanh (the default) assumed"),
    "LSTM": TorchCell(torch_class="LSTM", gates=4, from_torch=_proj_size, to_torch=_proj_size),
}

# What a state dict's gate rows say when no cell of that size is known.
_GATE_NAMES = {1: "an Elman RNN (H rows)", 3: "a GRU (3H rows)", 4: "an LSTM (4H gate rows)"}


def check_torch_expressible(module: RNNBase, what: str) -> None:
    cell_spec(TORCH_CELLS, type(module)).check(module, what)


def from_torch(module: Any, *, cls: type[RNNBase] | None = None, dtype: DTypeLike | None = None,
               batch_first: bool | None = None) -> RNNBase:
    """A gru_cy module with the configuration and weights of a ``torch.nn`` recurrent module.

    ``module`` may also be a state dict (a mapping of names to tensors or
    arrays, e.g. ``torch.load(path, weights_only=True)``); the configuration
    is then inferred from the key names and shapes (see ``config_from_state_dict``).
    dtype defaults to the module's (float64 stays float64, anything else
    becomes float32).
    """
    spec = None if cls is None else cell_spec(TORCH_CELLS, cls)
    if hasattr(module, "keys") and hasattr(module, "__getitem__"):
        config, state, _ = config_from_state_dict(module, spec)
        cls = module_class(cls, config.pop("kind"))
        if batch_first is not None:
            config["batch_first"] = bool(batch_first)
        file_dtype = config.pop("dtype")
        return build(cls, config, state, float_dtype(dtype if dtype is not None else file_dtype))
    import torch

    if spec is None:  # the cell whose torch class this module is (GRU if none)
        spec = next((s for s in TORCH_CELLS.values()
                     if isinstance(module, getattr(torch.nn, s.torch_class))), TORCH_CELLS["GRU"])
    cls = module_class(cls, kind_of(TORCH_CELLS, spec))
    name = spec.torch_class
    if not isinstance(module, getattr(torch.nn, name)):
        raise TypeError(f"from_torch expects a torch.nn.{name} (or its state_dict), got "
                        f"{type(module).__module__}.{type(module).__name__}; pass the {name} "
                        f"submodule itself (e.g. model.{name.lower()})")
    state = _torch_parameters(module)
    dt = float_dtype(dtype if dtype is not None else state["weight_ih_l0"].dtype)
    config = dict(input_size=module.input_size, hidden_size=module.hidden_size,
                  num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first if batch_first is None else bool(batch_first),
                  dropout=float(module.dropout), bidirectional=module.bidirectional,
                  **spec.from_torch(module))
    return build(cls, config, state, dt)


def _torch_parameters(module):
    """A torch module's parameters as NumPy arrays (float64 stays float64,
    other float types become float32)."""
    import torch

    state = {}
    for name, p in module.named_parameters():
        t = p.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()
        state[name] = t.numpy()
    return state


def to_torch(module: RNNBase, *, dtype: DTypeLike | None = None) -> Any:
    """An equivalent ``torch.nn`` module, in eval mode (dropout off, as gru_cy's inference).

    Settings torch cannot compute (a GRU's reset_after=False, go_backwards)
    raise ValueError.
    """
    spec = cell_spec(TORCH_CELLS, type(module))
    spec.check(module, "to_torch")
    import warnings

    import torch

    np_dtype = float_dtype(dtype if dtype is not None else module.dtype)
    torch_dtype = torch.float64 if np_dtype == np.float64 else torch.float32
    with warnings.catch_warnings():
        # torch warns about dropout with one layer; gru_cy accepts it silently.
        warnings.simplefilter("ignore", UserWarning)
        out = getattr(torch.nn, spec.torch_class)(
            module.input_size, module.hidden_size, num_layers=module.num_layers,
            bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
            bidirectional=module.bidirectional, dtype=torch_dtype, **spec.to_torch(module))
    state = module.state_dict()
    with torch.no_grad():
        for name, p in out.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(state[name], dtype=np_dtype)))
    return out.eval()


_TORCH_KEY = re.compile(
    r"^(.*?)(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def _flatten_mapping(mapping, prefix="", depth=0):
    """Nested dicts (checkpoints like {"model": state_dict}) as one "a.b.c" -> value dict."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if hasattr(value, "keys") and hasattr(value, "__getitem__") and depth < 8:
            flat.update(_flatten_mapping(value, name + ".", depth + 1))
        else:
            flat[name] = value
    return flat


def config_from_state_dict(state_dict: Mapping[str, Any], spec: TorchCell | None = None
                           ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(config, state, ignored_keys) from a torch recurrent module's state dict.

    The configuration is inferred: num_layers from the largest ``_l{k}``,
    bidirectional from ``_reverse`` keys, bias from ``bias_ih_l0``,
    input_size and hidden_size from the shapes of weight_ih_l0 and
    weight_hh_l0, dtype from weight_ih_l0. Keys may share a prefix
    (``gru.weight_ih_l0`` in a larger model's state dict); entries outside
    the module are ignored and returned. ``spec`` is the expected cell
    (a ``TORCH_CELLS`` entry); None picks the cell by the gate rows of
    weight_hh_l0. The config gets a "kind" entry naming the cell.
    """
    from gru_cy.nn.base import to_numpy

    name = "GRU" if spec is None else spec.torch_class
    flat = _flatten_mapping(state_dict)
    groups = {}
    for key in flat:
        m = _TORCH_KEY.match(str(key))
        if m:
            groups.setdefault(m.group(1), []).append(key)
    if not groups:
        shown = ", ".join(repr(k) for k in list(flat)[:8]) or "none"
        raise ValueError(f"no {name} parameters (weight_ih_l0, weight_hh_l0, ...) in this state "
                         f"dict; its keys: {shown}")
    if len(groups) > 1:
        raise ValueError("this state dict holds several recurrent modules (key prefixes "
                         + ", ".join(repr(p) for p in sorted(groups))
                         + f"); save the state_dict of the one {name} to convert")
    (prefix, keys), = groups.items()
    state = {}
    for key in keys:
        arr = to_numpy(flat[key], key)
        if arr.dtype.kind != "f":
            # torch tensors of bfloat16 refuse .numpy(); anything non-float is an error.
            raise ValueError(f"state dict entry {key!r} has dtype {arr.dtype}, expected floats")
        state[key[len(prefix):]] = arr
    if "weight_ih_l0" not in state or "weight_hh_l0" not in state:
        raise ValueError(f"state dict has no {prefix}weight_ih_l0 / {prefix}weight_hh_l0")
    w_ih, w_hh = state["weight_ih_l0"], state["weight_hh_l0"]
    if w_hh.ndim != 2 or w_ih.ndim != 2:
        raise ValueError(f"{prefix}weight_ih_l0 and weight_hh_l0 must be 2-D, got shapes "
                         f"{w_ih.shape} and {w_hh.shape}")
    H = w_hh.shape[1]
    proj_size = 0
    w_hr = state.get("weight_hr_l0")
    if w_hr is not None and w_hr.ndim == 2 and w_hr.shape[0] == H:
        # An LSTM with projections: weight_hh is (4H, P), weight_hr (P, H).
        proj_size, H = H, w_hr.shape[1]
    if spec is None and H and w_hh.shape[0] % H == 0:
        matches = [s for s in TORCH_CELLS.values() if s.gates * H == w_hh.shape[0]]
        spec = matches[0] if len(matches) == 1 else None
        name = "GRU" if spec is None else spec.torch_class
    if spec is None:
        spec = TORCH_CELLS["GRU"]
    if proj_size and spec.torch_class != "LSTM":
        # Only an LSTM has weight_hr: report those keys as unexpected below.
        proj_size, H = 0, w_hh.shape[1]
    G = spec.gates
    if w_hh.shape[0] != G * H:
        kind = next((v for g, v in _GATE_NAMES.items() if g != G and g * H == w_hh.shape[0]),
                    None)
        rows = "H" if G == 1 else f"{G}H"
        raise ValueError(f"{prefix}weight_hh_l0 has shape {tuple(w_hh.shape)}: a {name} needs "
                         f"({rows}, H)" + (f"; this looks like {kind}" if kind else ""))
    layers = {int(_TORCH_KEY.match(k).group(3)) for k in state}
    config = dict(input_size=int(w_ih.shape[1]), hidden_size=int(H), num_layers=max(layers) + 1,
                  bias="bias_ih_l0" in state,
                  bidirectional=any(k.endswith("_reverse") for k in state))
    if proj_size:
        config["proj_size"] = int(proj_size)
    expected = param_shapes(G, config["input_size"], H, config["num_layers"],
                            config["bidirectional"], config["bias"], proj_size)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"state dict is not a complete torch.nn.{name}: "
                         + (f"missing {', '.join(missing)} " if missing else "")
                         + (f"unexpected {', '.join(unexpected)}" if unexpected else ""))
    for pname, shape in expected.items():
        if tuple(state[pname].shape) != shape:
            raise ValueError(f"state dict entry {prefix}{pname} has shape "
                             f"{tuple(state[pname].shape)}, expected {shape}")
    config["dtype"] = float_dtype(w_ih.dtype)
    config["kind"] = kind_of(TORCH_CELLS, spec)
    ignored = [k for k in flat if k not in keys]
    return config, state, ignored


# ---------------------------------------------------------------------------
# the one-step cells


@dataclass(frozen=True)
class TorchStepCell:
    torch_class: str
    gates: int
    # The cell's own constructor arguments, read from the torch cell and
    # passed to it (an RNNCell's nonlinearity).
    arguments: Callable = _no_extra


TORCH_STEP_CELLS = {
    "GRUCell": TorchStepCell(torch_class="GRUCell", gates=3),
    "LSTMCell": TorchStepCell(torch_class="LSTMCell", gates=4),
    "RNNCell": TorchStepCell(torch_class="RNNCell", gates=1, arguments=_rnn_nonlinearity),
}


def cell_from_torch(module: Any, *, cls: type[Module], dtype: DTypeLike | None = None) -> Module:
    """A gru_cy cell of class cls with the configuration and weights of the
    matching ``torch.nn`` cell, or of its state dict (``weight_ih``,
    ``weight_hh``, ``bias_ih``, ``bias_hh``; an RNNCell's nonlinearity is not
    in a state dict: tanh assumed)."""
    from gru_cy.nn.base import to_numpy

    spec = cell_spec(TORCH_STEP_CELLS, cls)
    extra = {}
    if hasattr(module, "keys") and hasattr(module, "__getitem__"):
        state = {str(k): to_numpy(v, str(k)) for k, v in module.items()}
    else:
        import torch

        if not isinstance(module, getattr(torch.nn, spec.torch_class)):
            raise TypeError(f"from_torch expects a torch.nn.{spec.torch_class} (or its "
                            f"state_dict), got {type(module).__module__}."
                            f"{type(module).__name__}")
        state = _torch_parameters(module)
        extra = spec.arguments(module)
    w_ih, w_hh = state.get("weight_ih"), state.get("weight_hh")
    if w_ih is None or w_hh is None or w_ih.ndim != 2 or w_hh.ndim != 2:
        raise ValueError(f"a torch.nn.{spec.torch_class} state dict needs 2-D weight_ih and "
                         f"weight_hh; got keys {sorted(state)}")
    if any(a.dtype.kind != "f" for a in state.values()):
        raise ValueError(f"every entry of a torch.nn.{spec.torch_class} state dict must hold "
                         "floats")
    config = dict(input_size=int(w_ih.shape[1]), hidden_size=int(w_hh.shape[1]),
                  bias="bias_ih" in state, **extra)
    return build(cls, config, state, float_dtype(dtype if dtype is not None else w_ih.dtype))


def cell_to_torch(cell: Any, *, dtype: DTypeLike | None = None) -> Any:
    """An equivalent ``torch.nn`` cell (GRUCell, LSTMCell or RNNCell)."""
    import torch

    spec = cell_spec(TORCH_STEP_CELLS, type(cell))
    np_dtype = float_dtype(dtype if dtype is not None else cell.dtype)
    torch_dtype = torch.float64 if np_dtype == np.float64 else torch.float32
    out = getattr(torch.nn, spec.torch_class)(cell.input_size, cell.hidden_size, bias=cell.bias,
                                              dtype=torch_dtype, **spec.arguments(cell))
    state = cell.state_dict()
    with torch.no_grad():
        for name, p in out.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(state[name], dtype=np_dtype)))
    return out
