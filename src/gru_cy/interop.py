"""Converters between gru_cy and PyTorch, Keras 3, ONNX, and a safe .npz format.

Every format stores the same parameters (DESIGN.md §1) with a different
gate order and packing::

    gru_cy, PyTorch   weight_ih (3H, I), weight_hh (3H, H), bias_ih, bias_hh (3H,)
                      gate blocks r, z, n
    Keras 3 GRU       kernel (I, 3H), recurrent_kernel (H, 3H), gate columns z, r, h;
                      bias (2, 3H) = [input; recurrent] when reset_after, else (3H,)
    ONNX GRU          W (D, 3H, I), R (D, 3H, H), B (D, 6H) = [Wb, Rb], gate rows z, r, h;
                      linear_before_reset=1 is reset_after=True, 0 is reset_after=False

so a conversion swaps the first two gate blocks, transposes, and splits or
joins biases: no arithmetic, exact both ways. One exception: a Keras
``reset_after=False`` layer has a single bias, so ``to_keras`` stores
``bias_ih + bias_hh`` there (the same function, up to one rounding of the
sum) and ``from_keras`` sets ``bias_hh`` to zero.

Directions. gru_cy's ``go_backwards=True`` (reverse-only) module keeps
``out[t]`` aligned with ``x[t]``, as ONNX ``direction="reverse"`` does. A
Keras ``GRU(go_backwards=True, return_sequences=True)`` returns its outputs
in processing order instead, i.e. reversed in time: ``keras_out[:, t]`` is
gru_cy's ``out[:, T - 1 - t]`` (flip the time axis to compare). Final
states agree. ``Bidirectional`` flips its backward half back itself, so its
concatenated output equals gru_cy's bidirectional ``out``.

Optional packages (torch, keras) are imported inside the functions that need
them. ONNX files are read and written by a small protobuf codec in this
module, so ``load_onnx`` and ``to_onnx`` need neither onnx nor onnxruntime.
No function here unpickles anything: ``.npz`` files are read with
``allow_pickle=False`` and PyTorch files with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
import sys
import zipfile
import zlib

import numpy as np

__all__ = [
    "from_torch", "to_torch", "from_keras", "to_keras", "load_onnx", "to_onnx",
    "save", "load", "convert_cli",
]

_FORMAT_NAME = "gru_cy"
_FORMAT_VERSION = 1
_CONFIG_KEY = "config"
_INT32_MAX = 2**31 - 1


# ---------------------------------------------------------------------------
# shared helpers


def _module_class(cls):
    if cls is not None:
        return cls
    from gru_cy.nn.gru import GRU

    return GRU


def _swap_rz(a):
    """Swap the first two gate blocks (axis 0): r, z, n <-> z, r, n. Its own inverse."""
    H = a.shape[0] // 3
    return np.concatenate([a[H:2 * H], a[:H], a[2 * H:]], axis=0)


def _float_dtype(dtype):
    """float64 stays float64; every other float type (float16, bfloat16, ...) becomes float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _param_shapes(input_size, hidden_size, num_layers, bidirectional, bias):
    """{name: shape} in PyTorch's order (DESIGN.md §1), without building a module."""
    H, D = hidden_size, 2 if bidirectional else 1
    shapes = {}
    for k in range(num_layers):
        for sfx in ("", "_reverse")[:D]:
            s = f"_l{k}{sfx}"
            shapes["weight_ih" + s] = (3 * H, input_size if k == 0 else D * H)
            shapes["weight_hh" + s] = (3 * H, H)
            if bias:
                shapes["bias_ih" + s] = shapes["bias_hh" + s] = (3 * H,)
    return shapes


def _direction_params(gru):
    """[(w_ih, w_hh, b_ih, b_hh)] per layer and direction; zero biases when bias=False."""
    H, dt = gru.hidden_size, gru.dtype
    params = gru.state_dict()
    layers = []
    for k in range(gru.num_layers):
        row = []
        for sfx in ("", "_reverse") if gru.bidirectional else ("",):
            s = f"_l{k}{sfx}"
            if gru.bias:
                b_ih, b_hh = params["bias_ih" + s], params["bias_hh" + s]
            else:
                b_ih = b_hh = np.zeros(3 * H, dt)
            row.append((params["weight_ih" + s], params["weight_hh" + s], b_ih, b_hh))
        layers.append(row)
    return layers


def _build(cls, config, state, dtype):
    """A module of class cls from a config dict and a PyTorch-named state dict."""
    gru = _module_class(cls)(**config, dtype=dtype)
    gru.load_state_dict(state)
    return gru


def _module_config(gru):
    return gru._config()


# ---------------------------------------------------------------------------
# PyTorch


def from_torch(module, *, cls=None, dtype=None, batch_first=None):
    """A gru_cy GRU with the configuration and weights of a ``torch.nn.GRU``.

    ``module`` may also be a state dict (a mapping of names to tensors or
    arrays, e.g. ``torch.load(path, weights_only=True)``); the configuration
    is then inferred from the key names and shapes (see ``_config_from_state_dict``).
    dtype defaults to the module's (float64 stays float64, anything else
    becomes float32).
    """
    if hasattr(module, "keys") and hasattr(module, "__getitem__"):
        config, state, _ = _config_from_state_dict(module)
        if batch_first is not None:
            config["batch_first"] = bool(batch_first)
        file_dtype = config.pop("dtype")
        return _build(cls, config, state, _float_dtype(dtype if dtype is not None else file_dtype))
    import torch

    if not isinstance(module, torch.nn.GRU):
        raise TypeError(f"from_torch expects a torch.nn.GRU (or its state_dict), got "
                        f"{type(module).__module__}.{type(module).__name__}; pass the GRU "
                        f"submodule itself (e.g. model.gru)")
    state = {}
    for name, p in module.named_parameters():
        t = p.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()
        state[name] = t.numpy()
    dt = _float_dtype(dtype if dtype is not None else state["weight_ih_l0"].dtype)
    config = dict(input_size=module.input_size, hidden_size=module.hidden_size,
                  num_layers=module.num_layers, bias=module.bias,
                  batch_first=module.batch_first if batch_first is None else bool(batch_first),
                  dropout=float(module.dropout), bidirectional=module.bidirectional)
    return _build(cls, config, state, dt)


def _check_torch_expressible(gru, what):
    if not gru.reset_after:
        raise ValueError(
            f"{what}: reset_after=False has no torch.nn.GRU form (torch.nn.GRU applies the reset "
            f"gate after the recurrent product: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))); "
            f"use to_onnx, to_keras or save instead")
    if gru.go_backwards:
        raise ValueError(
            f"{what}: go_backwards=True (a reverse-only module) has no torch.nn.GRU form "
            f"(torch.nn.GRU runs forward or bidirectional); use to_onnx, to_keras or save instead")


def to_torch(gru, *, dtype=None):
    """An equivalent ``torch.nn.GRU``, in eval mode (dropout off, as gru_cy's inference).

    reset_after=False and go_backwards=True have no PyTorch form: ValueError.
    """
    _check_torch_expressible(gru, "to_torch")
    import warnings

    import torch

    np_dtype = _float_dtype(dtype if dtype is not None else gru.dtype)
    torch_dtype = torch.float64 if np_dtype == np.float64 else torch.float32
    with warnings.catch_warnings():
        # torch warns about dropout with one layer; gru_cy accepts it silently.
        warnings.simplefilter("ignore", UserWarning)
        module = torch.nn.GRU(gru.input_size, gru.hidden_size, num_layers=gru.num_layers,
                              bias=gru.bias, batch_first=gru.batch_first, dropout=gru.dropout,
                              bidirectional=gru.bidirectional, dtype=torch_dtype)
    state = gru.state_dict()
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(state[name], dtype=np_dtype)))
    return module.eval()


_TORCH_KEY = re.compile(r"^(.*?)(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?$")


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


def _config_from_state_dict(state_dict):
    """(config, state, ignored_keys) from a torch.nn.GRU state dict.

    The configuration is inferred: num_layers from the largest ``_l{k}``,
    bidirectional from ``_reverse`` keys, bias from ``bias_ih_l0``,
    input_size and hidden_size from the shapes of weight_ih_l0 and
    weight_hh_l0, dtype from weight_ih_l0. Keys may share a prefix
    (``gru.weight_ih_l0`` in a larger model's state dict); entries outside
    the GRU are ignored and returned.
    """
    from gru_cy.nn.base import to_numpy

    flat = _flatten_mapping(state_dict)
    groups = {}
    for key in flat:
        m = _TORCH_KEY.match(str(key))
        if m:
            groups.setdefault(m.group(1), []).append(key)
    if not groups:
        shown = ", ".join(repr(k) for k in list(flat)[:8]) or "none"
        raise ValueError("no GRU parameters (weight_ih_l0, weight_hh_l0, ...) in this state dict; "
                         f"its keys: {shown}")
    if len(groups) > 1:
        raise ValueError("this state dict holds several recurrent modules (key prefixes "
                         + ", ".join(repr(p) for p in sorted(groups))
                         + "); save the state_dict of the one GRU to convert")
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
    if w_hh.shape[0] != 3 * H:
        kind = {4 * H: "an LSTM (4H gate rows)", H: "an Elman RNN (H rows)"}.get(w_hh.shape[0])
        raise ValueError(f"{prefix}weight_hh_l0 has shape {tuple(w_hh.shape)}: a GRU needs "
                         f"(3H, H)" + (f"; this looks like {kind}" if kind else ""))
    layers = {int(_TORCH_KEY.match(k).group(3)) for k in state}
    config = dict(input_size=int(w_ih.shape[1]), hidden_size=int(H), num_layers=max(layers) + 1,
                  bias="bias_ih_l0" in state,
                  bidirectional=any(k.endswith("_reverse") for k in state))
    expected = _param_shapes(config["input_size"], H, config["num_layers"],
                             config["bidirectional"], config["bias"])
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError("state dict is not a complete torch.nn.GRU: "
                         + (f"missing {', '.join(missing)} " if missing else "")
                         + (f"unexpected {', '.join(unexpected)}" if unexpected else ""))
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise ValueError(f"state dict entry {prefix}{name} has shape "
                             f"{tuple(state[name].shape)}, expected {shape}")
    config["dtype"] = _float_dtype(w_ih.dtype)
    ignored = [k for k in flat if k not in keys]
    return config, state, ignored


# ---------------------------------------------------------------------------
# Keras 3


def _import_keras():
    try:
        import keras
    except ImportError as exc:
        raise ImportError(
            "this needs Keras 3 with a backend (pip install keras); without TensorFlow, set "
            "KERAS_BACKEND=torch (or jax) before keras is imported") from exc
    if int(str(keras.__version__).split(".")[0]) < 3:
        raise ImportError(f"this needs Keras 3, found keras {keras.__version__}")
    return keras


def _keras_specs(obj):
    """Plain descriptions of the recurrent layers of a Keras layer, list or model.

    A spec is {"class_name": "GRU", "config": layer.get_config(), "weights": [...]}
    or {"class_name": "Bidirectional", "merge_mode": ..., "forward": spec,
    "backward": spec}: the same structure the golden files store, so that
    the weight mapping (_from_keras_specs) is testable without Keras.
    """
    if isinstance(obj, (list, tuple)):
        specs = []
        for layer in obj:
            specs += _keras_specs(layer)
        return specs
    name = type(obj).__name__
    if name == "GRU":
        if not obj.built:
            raise ValueError(f"Keras layer {obj.name!r} is not built yet (it has no weights); "
                             "call it on an input or build it first")
        return [{"class_name": "GRU", "name": obj.name, "config": obj.get_config(),
                 "weights": obj.get_weights()}]
    if name == "Bidirectional":
        fw, bw = obj.forward_layer, obj.backward_layer
        for part in (fw, bw):
            if type(part).__name__ != "GRU":
                raise ValueError(f"Bidirectional layer {obj.name!r} wraps a "
                                 f"{type(part).__name__}; gru_cy converts Bidirectional(GRU)")
        return [{"class_name": "Bidirectional", "name": obj.name, "merge_mode": obj.merge_mode,
                 "forward": _keras_specs(fw)[0], "backward": _keras_specs(bw)[0]}]
    if hasattr(obj, "layers"):  # a Sequential or functional model
        others = [f"{type(layer).__name__} {layer.name!r}" for layer in obj.layers
                  if type(layer).__name__ not in ("GRU", "Bidirectional", "InputLayer")]
        if others:
            raise ValueError(
                "the Keras model holds layers a gru_cy GRU cannot represent: "
                + ", ".join(others) + "; pass its GRU layer(s) instead, e.g. "
                "GRU.from_keras(model.get_layer(name))")
        return _keras_specs([layer for layer in obj.layers
                             if type(layer).__name__ != "InputLayer"])
    raise TypeError(f"from_keras expects a keras.layers.GRU, a Bidirectional(GRU), a list of them "
                    f"or a model made of them, got {type(obj).__module__}.{name}")


def _keras_gru_arrays(spec):
    """(input_size, config, (w_ih, w_hh, b_ih, b_hh), dtype) of one Keras GRU spec.

    The arrays are in gru_cy's layout (biases None without use_bias).
    """
    cfg, weights, lname = spec["config"], [np.asarray(w) for w in spec["weights"]], spec["name"]
    unsupported = []
    for key, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        value = cfg.get(key, default)
        if isinstance(value, dict):  # a serialized function: {"config": "tanh", ...}
            value = value.get("config", value)
        if value != default:
            unsupported.append(f"{key}={value!r} (gru_cy computes {default})")
    if unsupported:
        raise ValueError(f"Keras GRU {lname!r} has settings gru_cy cannot reproduce: "
                         + "; ".join(unsupported))
    H = int(cfg["units"])
    reset_after = bool(cfg.get("reset_after", True))
    use_bias = bool(cfg.get("use_bias", True))
    if len(weights) != (3 if use_bias else 2):
        raise ValueError(f"Keras GRU {lname!r}: expected {3 if use_bias else 2} weight arrays "
                         f"(kernel, recurrent_kernel{', bias' if use_bias else ''}), got "
                         f"{len(weights)}")
    kernel, recurrent = weights[0], weights[1]
    I = kernel.shape[0] if kernel.ndim == 2 else -1
    bias_shape = ((2, 3 * H) if reset_after else (3 * H,)) if use_bias else None
    if (kernel.shape != (I, 3 * H) or recurrent.shape != (H, 3 * H)
            or (use_bias and weights[2].shape != bias_shape)):
        raise ValueError(
            f"Keras GRU {lname!r}: weight shapes {[tuple(w.shape) for w in weights]} do not fit "
            f"units={H}, reset_after={reset_after} (expected kernel (I, {3 * H}), "
            f"recurrent_kernel ({H}, {3 * H})" + (f", bias {bias_shape})" if use_bias else ")"))
    w_ih, w_hh = _swap_rz(kernel.T), _swap_rz(recurrent.T)
    if not use_bias:
        b_ih = b_hh = None
    elif reset_after:
        b_ih, b_hh = _swap_rz(weights[2][0]), _swap_rz(weights[2][1])
    else:
        b_ih, b_hh = _swap_rz(weights[2]), np.zeros(3 * H, weights[2].dtype)
    layer_cfg = dict(hidden_size=H, reset_after=reset_after, bias=use_bias,
                     go_backwards=bool(cfg.get("go_backwards", False)))
    return I, layer_cfg, (w_ih, w_hh, b_ih, b_hh), kernel.dtype


def _from_keras_specs(specs, cls=None, dtype=None, batch_first=True):
    """A gru_cy module from Keras layer specs (see _keras_specs), one spec per layer."""
    if not specs:
        raise ValueError("no Keras GRU layer to convert")
    layers, first = [], None
    for i, spec in enumerate(specs):
        if spec["class_name"] == "Bidirectional":
            if spec.get("merge_mode", "concat") != "concat":
                raise ValueError(f"Bidirectional layer {spec['name']!r} has merge_mode="
                                 f"{spec['merge_mode']!r}; gru_cy concatenates the two "
                                 f"directions, like merge_mode='concat'")
            (I, cfg_f, p_f, dt), (_, cfg_b, p_b, _) = (_keras_gru_arrays(spec["forward"]),
                                                       _keras_gru_arrays(spec["backward"]))
            if cfg_f["go_backwards"] or not cfg_b["go_backwards"]:
                raise ValueError(f"Bidirectional layer {spec['name']!r}: expected a forward "
                                 f"layer with go_backwards=False and a backward layer with "
                                 f"go_backwards=True")
            if {**cfg_f, "go_backwards": 0} != {**cfg_b, "go_backwards": 0}:
                raise ValueError(f"Bidirectional layer {spec['name']!r}: the forward and backward "
                                 f"GRUs differ ({cfg_f} vs {cfg_b}); gru_cy needs them alike")
            cfg = dict(cfg_f, bidirectional=True)
            params = [p_f, p_b]
        elif spec["class_name"] == "GRU":
            I, cfg, p, dt = _keras_gru_arrays(spec)
            cfg = dict(cfg, bidirectional=False)
            params = [p]
        else:
            raise ValueError(f"cannot convert a Keras {spec['class_name']} layer")
        if first is None:
            first = dict(cfg, input_size=I, dtype=dt)
        else:
            same = {k: first[k] for k in cfg}
            if same != cfg:
                raise ValueError(f"Keras layer {i} ({spec['name']!r}) differs from the first "
                                 f"({cfg} vs {same}); a gru_cy module stacks identical layers")
            D = 2 if cfg["bidirectional"] else 1
            if I != D * cfg["hidden_size"]:
                raise ValueError(f"Keras layer {i} ({spec['name']!r}) takes {I} features, "
                                 f"expected {D * cfg['hidden_size']} from the layer below")
        layers.append(params)
    if first["go_backwards"] and len(layers) > 1:
        raise ValueError("stacked Keras GRU layers with go_backwards=True feed each layer the "
                         "previous one's time-reversed output; gru_cy cannot stack those")
    state = {}
    for k, params in enumerate(layers):
        for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(params):
            sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
            state["weight_ih" + sfx], state["weight_hh" + sfx] = w_ih, w_hh
            if first["bias"]:
                state["bias_ih" + sfx], state["bias_hh" + sfx] = b_ih, b_hh
    config = dict(input_size=int(first["input_size"]), hidden_size=first["hidden_size"],
                  num_layers=len(layers), bias=first["bias"], batch_first=bool(batch_first),
                  bidirectional=first["bidirectional"], reset_after=first["reset_after"],
                  go_backwards=first["go_backwards"])
    dt = _float_dtype(dtype if dtype is not None else first["dtype"])
    return _build(cls, config, state, dt)


def from_keras(layer, *, cls=None, dtype=None, batch_first=True):
    """A gru_cy GRU from Keras 3: a ``keras.layers.GRU``, a ``Bidirectional(GRU)``
    (merge_mode="concat"), a list of such layers to stack, or a model made of them.

    Supported: reset_after True and False, use_bias, go_backwards (single
    layer). Dropout and recurrent_dropout do nothing at inference and are
    ignored; other activations raise ValueError naming them. The module is
    ``batch_first=True`` by default, so it takes Keras's (B, T, I) input.
    For go_backwards, gru_cy's ``out[t]`` is aligned with ``x[t]``, while
    Keras returns the sequence in processing (reversed) order; see the
    module docstring.
    """
    return _from_keras_specs(_keras_specs(layer), cls=cls, dtype=dtype, batch_first=batch_first)


def _keras_weights(params, reset_after, bias):
    w_ih, w_hh, b_ih, b_hh = params
    weights = [np.ascontiguousarray(_swap_rz(w_ih).T), np.ascontiguousarray(_swap_rz(w_hh).T)]
    if bias:
        if reset_after:
            weights.append(np.stack([_swap_rz(b_ih), _swap_rz(b_hh)]))
        else:
            weights.append(_swap_rz(b_ih + b_hh))
    return weights


def to_keras(gru, *, return_sequences=True, return_state=False):
    """An equivalent Keras 3 layer, built and holding gru_cy's weights.

    One layer gives a ``keras.layers.GRU`` (or ``Bidirectional(GRU)``), several
    a ``keras.Sequential`` of them. Keras takes (B, T, I) input whatever
    ``batch_first`` is. With reset_after=False, Keras's single bias receives
    bias_ih + bias_hh. A go_backwards module gives a Keras layer with
    go_backwards=True, whose sequence output is in reversed time order.
    """
    keras = _import_keras()
    if return_state and gru.num_layers > 1:
        raise ValueError("return_state=True needs a single layer (a Sequential returns one "
                         "tensor)")
    L, H, dt = gru.num_layers, gru.hidden_size, gru.dtype.name
    built = []
    for k, params in enumerate(_direction_params(gru)):
        last = k == L - 1

        def make(go_backwards):
            return keras.layers.GRU(
                H, activation="tanh", recurrent_activation="sigmoid", use_bias=gru.bias,
                reset_after=gru.reset_after, go_backwards=go_backwards,
                return_sequences=return_sequences if last else True,
                return_state=return_state and last, dtype=dt)

        weights = [w for p in params for w in _keras_weights(p, gru.reset_after, gru.bias)]
        if gru.bidirectional:
            layer = keras.layers.Bidirectional(make(False), merge_mode="concat", dtype=dt)
        else:
            layer = make(gru.go_backwards)
        in_k = gru.input_size if k == 0 else gru.num_directions * H
        layer.build((None, None, in_k))
        layer.set_weights(weights)
        built.append(layer)
    if L == 1:
        return built[0]
    return keras.Sequential([keras.Input(shape=(None, gru.input_size), dtype=dt), *built])


# ---------------------------------------------------------------------------
# a minimal protobuf codec for ONNX files


class _Corrupt(ValueError):
    pass


def _read_varint(buf, pos):
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Corrupt("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Corrupt("varint longer than 10 bytes")


def _signed64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


class _Msg:
    """The fields of one protobuf message: {number: [(wire_type, value)]}.

    Length-delimited values are memoryviews into the file's bytes (no copy);
    nested messages are decoded when asked for.
    """

    __slots__ = ("fields",)

    def __init__(self, data):
        buf = memoryview(data)
        fields = {}
        pos, n = 0, len(buf)
        while pos < n:
            key, pos = _read_varint(buf, pos)
            num, wire = key >> 3, key & 7
            if num == 0:
                raise _Corrupt("field number 0")
            if wire == 0:
                value, pos = _read_varint(buf, pos)
            elif wire == 1:
                value, pos = buf[pos:pos + 8], pos + 8
            elif wire == 2:
                size, pos = _read_varint(buf, pos)
                value, pos = buf[pos:pos + size], pos + size
            elif wire == 5:
                value, pos = buf[pos:pos + 4], pos + 4
            else:
                raise _Corrupt(f"unsupported wire type {wire}")
            if pos > n:
                raise _Corrupt("field runs past the end of its message")
            fields.setdefault(num, []).append((wire, value))
        self.fields = fields

    def has(self, num):
        return num in self.fields

    def int(self, num, default=0):
        if num not in self.fields:
            return default
        wire, value = self.fields[num][-1]
        if wire != 0:
            raise _Corrupt(f"field {num} is not a varint")
        return _signed64(value)

    def ints(self, num):
        out = []
        for wire, value in self.fields.get(num, ()):
            if wire == 0:
                out.append(_signed64(value))
            elif wire == 2:  # packed
                pos = 0
                while pos < len(value):
                    v, pos = _read_varint(value, pos)
                    out.append(_signed64(v))
            else:
                raise _Corrupt(f"field {num} is not a list of varints")
        return out

    def _fixed(self, num, size, fmt):
        """A packed or unpacked repeated fixed-width field as a NumPy array."""
        chunks = []
        for wire, value in self.fields.get(num, ()):
            if wire not in (1, 2, 5) or len(value) % size:
                raise _Corrupt(f"field {num} has a bad length")
            chunks.append(bytes(value))
        return np.frombuffer(b"".join(chunks), dtype=fmt)

    def floats(self, num):
        return self._fixed(num, 4, "<f4")

    def doubles(self, num):
        return self._fixed(num, 8, "<f8")

    def float(self, num, default=0.0):
        if num not in self.fields:
            return default
        wire, value = self.fields[num][-1]
        if wire != 5:
            raise _Corrupt(f"field {num} is not a float")
        return struct.unpack("<f", value)[0]

    def bytes(self, num, default=None):
        if num not in self.fields:
            return default
        wire, value = self.fields[num][-1]
        if wire != 2:
            raise _Corrupt(f"field {num} is not length-delimited")
        return value

    def string(self, num, default=""):
        value = self.bytes(num)
        return default if value is None else bytes(value).decode("utf-8")

    def strings(self, num):
        return [bytes(v).decode("utf-8") for w, v in self.fields.get(num, ()) if w == 2]

    def message(self, num):
        value = self.bytes(num)
        return None if value is None else _Msg(value)

    def messages(self, num):
        return [_Msg(v) for w, v in self.fields.get(num, ()) if w == 2]


def _pb_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_int(num, v):
    return _pb_varint(num << 3) + _pb_varint(v)


def _pb_bytes(num, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _pb_varint(num << 3 | 2) + _pb_varint(len(data)) + data


# TensorProto.DataType codes and the NumPy types they are read as.
_ONNX_FLOAT, _ONNX_INT32, _ONNX_INT64, _ONNX_DOUBLE, _ONNX_BFLOAT16 = 1, 6, 7, 11, 16
_ONNX_NUMPY = {1: "<f4", 2: "u1", 3: "i1", 4: "<u2", 5: "<i2", 6: "<i4", 7: "<i8", 9: "?",
               10: "<f2", 11: "<f8", 12: "<u4", 13: "<u8", 16: "<u2"}
_ONNX_FROM_NUMPY = {np.dtype(np.float32): _ONNX_FLOAT, np.dtype(np.float64): _ONNX_DOUBLE,
                    np.dtype(np.int32): _ONNX_INT32, np.dtype(np.int64): _ONNX_INT64}
_MAX_ELEMENTS = 1 << 31


def _external_data(msg, name, base_dir, nbytes):
    """The bytes of a tensor stored in a file next to the model (ONNX external data).

    Only files inside the model's folder are read: an absolute location, a
    ``..`` or a symbolic link leading elsewhere is refused.
    """
    if base_dir is None:
        raise NotImplementedError(
            f"tensor {name!r} keeps its data in an external file; load the model from its path "
            f"so that the file next to it can be read")
    entries = {e.string(1): e.string(2) for e in msg.messages(13)}
    location = entries.get("location", "")
    parts = re.split(r"[\\/]", location)
    if not location or os.path.isabs(location) or ".." in parts or ":" in location:
        raise ValueError(f"tensor {name!r}: external data location {location!r} is not a file "
                         f"in the model's folder; refused")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise ValueError(f"tensor {name!r}: external data {location!r} leads out of the model's "
                         f"folder; refused")
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries.get("length", str(nbytes)))
    except ValueError as exc:
        raise _Corrupt(f"tensor {name!r}: bad external data offset or length") from exc
    if offset < 0 or length != nbytes:
        raise _Corrupt(f"tensor {name!r}: external data of {length} bytes at offset {offset}, "
                       f"expected {nbytes} bytes")
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(nbytes)
    except OSError as exc:
        raise ValueError(f"tensor {name!r}: cannot read its external data file {location!r} "
                         f"({exc.strerror or exc})") from exc
    if len(data) != nbytes:
        raise _Corrupt(f"tensor {name!r}: external data file {location!r} is too short")
    return data


def _onnx_tensor(msg, what, base_dir=None):
    """A TensorProto as a NumPy array (native byte order, its own memory)."""
    dims = msg.ints(1)
    dtype_code = msg.int(2)
    name = msg.string(8) or what
    if dtype_code not in _ONNX_NUMPY:
        raise ValueError(f"tensor {name!r} has ONNX data type {dtype_code}, which gru_cy does not "
                         f"read (it reads float, double, float16, bfloat16 and integer tensors)")
    if any(d < 0 for d in dims):
        raise _Corrupt(f"tensor {name!r} has negative dimensions {dims}")
    size = math.prod(dims)
    if size > _MAX_ELEMENTS:
        raise _Corrupt(f"tensor {name!r} claims {size} elements")
    np_type = np.dtype(_ONNX_NUMPY[dtype_code])
    raw = msg.bytes(9)
    if msg.int(14) == 1:
        raw = _external_data(msg, name, base_dir, size * np_type.itemsize)
    if raw is not None:
        if len(raw) != size * np_type.itemsize:
            raise _Corrupt(f"tensor {name!r}: {len(raw)} bytes of data for shape {dims} of "
                           f"{np_type.itemsize}-byte elements")
        arr = np.frombuffer(raw, dtype=np_type)
    elif dtype_code == _ONNX_FLOAT:
        arr = msg.floats(4)
    elif dtype_code == _ONNX_DOUBLE:
        arr = msg.doubles(10)
    elif dtype_code == _ONNX_INT64:
        arr = np.array(msg.ints(7), dtype=np.int64)
    elif dtype_code in (12, 13):
        arr = np.array([v & ((1 << 64) - 1) for v in msg.ints(11)], dtype=np.uint64)
    else:  # int32_data carries every type up to 32 bits, float16 and bfloat16 as bit patterns
        arr = np.array(msg.ints(5), dtype=np.int64).astype(np_type)
    if arr.size != size:
        raise _Corrupt(f"tensor {name!r}: {arr.size} values for shape {dims}")
    if dtype_code == _ONNX_BFLOAT16:
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr.astype(arr.dtype.newbyteorder("="), copy=True).reshape(dims)


def _attr_value(msg, base_dir=None):
    """The value of an AttributeProto (by its type field, or by the field present)."""
    kind = msg.int(20, 0)
    if kind == 0:  # old writers leave the type out: use whichever field is set
        for field, k in ((2, 1), (3, 2), (4, 3), (5, 4), (7, 6), (8, 7), (9, 8)):
            if msg.has(field):
                kind = k
                break
    if kind == 1:
        return msg.float(2)
    if kind == 2:
        return msg.int(3)
    if kind == 3:
        return bytes(msg.bytes(4, b"")).decode("utf-8")
    if kind == 4:
        return _onnx_tensor(msg.message(5), msg.string(1), base_dir)
    if kind == 6:
        return [float(v) for v in msg.floats(7)]
    if kind == 7:
        return msg.ints(8)
    if kind == 8:
        return msg.strings(9)
    return _Unreadable(kind)


class _Unreadable:
    """An attribute of a kind gru_cy never needs (graphs, sparse tensors, ...)."""

    def __init__(self, kind):
        self.kind = kind

    def __repr__(self):
        return f"<attribute of type {self.kind}>"


class _Node:
    __slots__ = ("op_type", "domain", "name", "inputs", "outputs", "attrs")

    def __init__(self, msg):
        self.inputs = msg.strings(1)
        self.outputs = msg.strings(2)
        self.name = msg.string(3)
        self.op_type = msg.string(4)
        self.domain = msg.string(7)
        self.attrs = {a.string(1): a for a in msg.messages(5)}

    def attr(self, name, default=None, base_dir=None):
        a = self.attrs.get(name)
        return default if a is None else _attr_value(a, base_dir)

    def label(self):
        return f"{self.op_type} node {self.name!r}" if self.name else f"{self.op_type} node"


class _NotConstant(Exception):
    pass


class _OnnxGraph:
    """The main graph of a model: nodes, initializers, and constant folding.

    Constant folding evaluates the few shape and copy operators exporters
    wrap around weights (torch.onnx.export without constant folding slices
    and concatenates gate blocks at run time), so a GRU's W, R and B can be
    read whether they are initializers or computed from them.
    """

    _MAX_FOLD_ELEMENTS = 1 << 28

    def __init__(self, model, base_dir=None):
        self.base_dir = base_dir
        graph = model.message(7)
        if graph is None:
            raise _Corrupt("the model has no graph")
        self.opset = 1
        for op in model.messages(8):
            if op.string(1) in ("", "ai.onnx"):
                self.opset = op.int(2, 1)
        self.nodes = [_Node(m) for m in graph.messages(1)]
        self.initializers = {}
        for t in graph.messages(5):
            self.initializers[t.string(8)] = t
        self.inputs = [vi.string(1) for vi in graph.messages(11)]
        self.outputs = [vi.string(1) for vi in graph.messages(12)]
        self.producer = {}
        for node in self.nodes:
            for i, out in enumerate(node.outputs):
                if out:
                    self.producer[out] = (node, i)
        self._folded = {}

    def const(self, name):
        """The value of a tensor if it does not depend on graph inputs, else None."""
        try:
            return self._fold(name, 0)
        except _NotConstant:
            return None

    def _fold(self, name, depth):
        if name in self._folded:
            return self._folded[name]
        if depth > 200:
            raise _NotConstant
        if name in self.initializers:
            value = _onnx_tensor(self.initializers[name], name, self.base_dir)
        elif name in self.producer:
            node, index = self.producer[name]
            args = [None if not n else self._fold(n, depth + 1) for n in node.inputs]
            value = self._evaluate(node, args)[index]
        else:
            raise _NotConstant  # a graph input
        if value.size > self._MAX_FOLD_ELEMENTS:
            raise _Corrupt(f"constant {name!r} would hold {value.size} elements")
        self._folded[name] = value
        return value

    def _evaluate(self, node, args):
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise _NotConstant
        if op == "Constant":
            for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
                if key in node.attrs:
                    v = node.attr(key, base_dir=self.base_dir)
                    if isinstance(v, _Unreadable):
                        raise _NotConstant
                    if isinstance(v, np.ndarray):
                        return [v]
                    dt = np.float32 if "float" in key else np.int64
                    return [np.array(v, dtype=dt)]
            raise _NotConstant
        if op in ("Identity", "Dropout"):
            return [args[0]]
        if op == "Cast":
            code = node.attr("to")
            if code not in _ONNX_NUMPY or code == _ONNX_BFLOAT16:
                raise _NotConstant
            return [args[0].astype(np.dtype(_ONNX_NUMPY[code]).newbyteorder("="))]
        if op == "Concat":
            return [np.concatenate(args, axis=node.attr("axis"))]
        if op == "Transpose":
            return [np.transpose(args[0], node.attr("perm"))]
        if op in ("Unsqueeze", "Squeeze"):
            axes = node.attr("axes")
            if axes is None and len(args) > 1 and args[1] is not None:
                axes = [int(a) for a in args[1]]
            if op == "Unsqueeze":
                rank = args[0].ndim + len(axes)
                return [np.expand_dims(args[0], tuple(sorted(a % rank for a in axes)))]
            return [np.squeeze(args[0], axis=None if axes is None else tuple(axes))]
        if op == "Reshape":
            shape = [int(s) for s in args[1]]
            if not node.attr("allowzero", 0):
                shape = [args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return [args[0].reshape(shape)]
        if op == "Slice":
            if len(args) > 1:
                starts, ends = args[1], args[2]
                axes = args[3] if len(args) > 3 and args[3] is not None else None
                steps = args[4] if len(args) > 4 and args[4] is not None else None
            else:
                starts, ends, axes = node.attr("starts"), node.attr("ends"), node.attr("axes")
                steps = None
            data = args[0]
            axes = range(len(starts)) if axes is None else axes
            steps = [1] * len(starts) if steps is None else steps
            index = [slice(None)] * data.ndim
            for s, e, a, st in zip(starts, ends, axes, steps):
                index[int(a)] = slice(int(s), int(e), int(st))
            return [data[tuple(index)]]
        if op == "Gather":
            return [np.take(args[0], args[1], axis=node.attr("axis", 0))]
        if op == "Split":
            axis = node.attr("axis", 0)
            split = node.attr("split")
            if split is None and len(args) > 1 and args[1] is not None:
                split = [int(s) for s in args[1]]
            if split is None:
                return np.array_split(args[0], len(node.outputs), axis=axis)
            return np.split(args[0], np.cumsum(split)[:-1], axis=axis)
        if op == "Shape":
            return [np.array(args[0].shape, dtype=np.int64)]
        if op == "ConstantOfShape":
            shape = [int(s) for s in args[0]]
            if math.prod(shape) > self._MAX_FOLD_ELEMENTS:
                raise _Corrupt(f"ConstantOfShape to {shape}")
            value = node.attr("value")
            value = np.zeros(1, np.float32) if value is None else value.reshape(-1)
            return [np.full(shape, value[0], dtype=value.dtype)]
        if op == "Expand":
            shape = np.broadcast_shapes(args[0].shape, tuple(int(s) for s in args[1]))
            if math.prod(shape) > self._MAX_FOLD_ELEMENTS:
                raise _Corrupt(f"Expand to {shape}")
            return [np.array(np.broadcast_to(args[0], shape))]
        raise _NotConstant

    def trace(self, name, through=("Identity", "Dropout", "Cast", "Transpose", "Reshape",
                                   "Squeeze", "Unsqueeze")):
        """Follow a tensor back through copy/shape operators: (source name, transposes).

        The source is a graph input or the output of the first node of another
        kind; transposes lists the permutations met on the way.
        """
        perms = []
        seen = 0
        while name in self.producer and seen < 1000:
            node, _ = self.producer[name]
            if node.op_type not in through:
                break
            if node.op_type == "Transpose":
                perms.append(tuple(node.attr("perm") or ()))
            name = node.inputs[0]
            seen += 1
        return name, perms

    def depends_on_input(self, name):
        """Whether a tensor is computed from a graph input (breadth-first over producers)."""
        stack, seen = [name], set()
        while stack:
            n = stack.pop()
            if n in seen or not n:
                continue
            seen.add(n)
            if n in self.initializers:
                continue
            if n not in self.producer:
                return True
            stack.extend(self.producer[n][0].inputs)
        return False


def _read_source(source):
    """(bytes, name for messages, folder of external data or None) of a path, file or bytes."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>", None
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        folder = os.path.dirname(os.path.abspath(name)) if isinstance(name, str) else None
        return source.read(), name or "<file>", folder
    path = os.fspath(source)
    with open(path, "rb") as f:
        return f.read(), path, os.path.dirname(os.path.abspath(path))


_ONNX_ACTIVATIONS = ["sigmoid", "tanh"]


def _read_gru_node(graph, node):
    """The configuration and weights of one ONNX GRU node."""
    where = node.label()
    unsupported = []
    D_by_direction = {"forward": 1, "reverse": 1, "bidirectional": 2}
    direction = node.attr("direction", "forward")
    if direction not in D_by_direction:
        raise ValueError(f"{where}: unknown direction {direction!r}")
    D = D_by_direction[direction]
    acts = node.attr("activations")
    if acts is not None and [a.lower() for a in acts] != _ONNX_ACTIVATIONS * D:
        unsupported.append(f"activations={acts} (gru_cy computes {['Sigmoid', 'Tanh'] * D})")
    for key in ("clip", "activation_alpha", "activation_beta"):
        if key in node.attrs:
            unsupported.append(f"{key}={node.attr(key)!r}")
    if unsupported:
        raise NotImplementedError(f"{where} has attributes gru_cy cannot honour: "
                                  + "; ".join(unsupported))
    lbr = node.attr("linear_before_reset", 0)
    layout = node.attr("layout", 0)
    if lbr not in (0, 1) or layout not in (0, 1):
        raise ValueError(f"{where}: linear_before_reset={lbr}, layout={layout} (expected 0 or 1)")
    inputs = node.inputs + [""] * (6 - len(node.inputs))
    arrays = {}
    for label, name in zip(("W", "R", "B"), inputs[1:4]):
        if not name:
            continue
        value = graph.const(name)
        if value is None:
            raise ValueError(f"{where}: its {label} input {name!r} is computed from graph inputs, "
                             f"not stored in the file; gru_cy needs the weights as constants")
        if value.dtype.kind != "f":
            raise ValueError(f"{where}: {label} has dtype {value.dtype}, expected floats")
        arrays[label] = value
    if "W" not in arrays or "R" not in arrays:
        raise ValueError(f"{where} has no W or R input")
    W, R = arrays["W"], arrays["R"]
    if R.ndim != 3 or R.shape[0] != D or R.shape[1] != 3 * R.shape[2]:
        raise ValueError(f"{where}: R has shape {R.shape}, expected ({D}, 3*H, H)")
    H = R.shape[2]
    hidden_size = node.attr("hidden_size", H)
    if hidden_size != H:
        raise ValueError(f"{where}: hidden_size={hidden_size} but R has shape {R.shape}")
    if W.ndim != 3 or W.shape[:2] != (D, 3 * H):
        raise ValueError(f"{where}: W has shape {W.shape}, expected ({D}, {3 * H}, input_size)")
    B = arrays.get("B")
    if B is not None and B.shape != (D, 6 * H):
        raise ValueError(f"{where}: B has shape {B.shape}, expected ({D}, {6 * H})")
    for label, name in (("sequence_lens", inputs[4]), ("initial_h", inputs[5])):
        if not name:
            continue
        value = graph.const(name)
        if value is not None and np.any(value != 0) and label == "initial_h":
            raise NotImplementedError(
                f"{where}: initial_h is a constant stored in the graph; a gru_cy module holds no "
                f"state, so pass that state as h0 when calling it")
        if value is not None and label == "sequence_lens":
            raise NotImplementedError(
                f"{where}: sequence_lens is a constant stored in the graph; pass lengths= when "
                f"calling the gru_cy module instead")
        if value is None and label == "initial_h":
            src, _ = graph.trace(name, through=("Expand", "Identity", "Cast", "Reshape"))
            if src in graph.producer or src in graph.initializers:
                filler = graph.const(src)
                if filler is not None and np.any(filler != 0):
                    raise NotImplementedError(
                        f"{where}: initial_h is filled with a constant from the graph; a gru_cy "
                        f"module holds no state, so pass that state as h0 when calling it")
    params = []
    for d in range(D):
        b_ih = None if B is None else _swap_rz(B[d, :3 * H])
        b_hh = None if B is None else _swap_rz(B[d, 3 * H:])
        params.append((_swap_rz(W[d]), _swap_rz(R[d]), b_ih, b_hh))
    return dict(direction=direction, D=D, H=H, I=W.shape[2], reset_after=bool(lbr),
                layout=layout, has_bias=B is not None, params=params,
                dtype=_float_dtype(W.dtype), node=node)


def load_onnx(path, *, cls=None, dtype=None, batch_first=None):
    """A gru_cy GRU with the weights of an ONNX model's GRU node(s).

    Reads a single GRU node (forward, reverse -> go_backwards=True,
    bidirectional; linear_before_reset 0 or 1 -> reset_after; layout 1 ->
    batch_first=True) or a stack of them as torch.onnx.export writes for an
    nn.GRU with several layers and directions (weights as initializers or
    computed from them by Slice/Concat/Unsqueeze, layers joined by
    Transpose/Reshape/Squeeze). Weights stored as external data are read
    from files in the model's folder (pass a path, not bytes). Attributes it cannot honour (activations
    other than Sigmoid/Tanh, clip, activation_alpha/beta) raise
    NotImplementedError naming them; anything that is not such a graph
    raises ValueError. No onnx package is needed.

    Calling the module: ONNX's sequence_lens is ``lengths``; initial_h
    (D, B, H) per node is ``h0`` (L*D, B, H), and ``out`` (T, B, D*H) is
    Y (T, D, B, H) transposed and reshaped; ``h_n`` is Y_h concatenated over
    layers. One difference: for a sequence of length 0, ONNX Runtime returns
    Y_h = 0 where gru_cy (like PyTorch) returns h0.
    """
    data, source, base_dir = _read_source(path)
    try:
        graph = _OnnxGraph(_Msg(data), base_dir)
        nodes = [n for n in graph.nodes if n.op_type == "GRU" and n.domain in ("", "ai.onnx")]
        if not nodes:
            kinds = sorted({n.op_type for n in graph.nodes})
            raise ValueError(
                f"{source}: no ONNX GRU node in the graph (its operators: "
                f"{', '.join(kinds) or 'none'}); gru_cy reads graphs whose recurrent part is GRU "
                f"nodes, as torch.onnx.export(..., dynamo=False) writes for nn.GRU")
        layers = [_read_gru_node(graph, n) for n in nodes]
        batch_first_found = _check_onnx_stack(graph, layers, source)
    except (_Corrupt, UnicodeDecodeError, struct.error, IndexError, KeyError, TypeError,
            AttributeError, RecursionError, OverflowError) as exc:
        raise ValueError(f"{source} is not a readable ONNX model ({type(exc).__name__}: "
                         f"{exc})") from exc
    first = layers[0]
    state = {}
    for k, layer in enumerate(layers):
        for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(layer["params"]):
            sfx = f"_l{k}" + ("_reverse" if d == 1 else "")
            state["weight_ih" + sfx], state["weight_hh" + sfx] = w_ih, w_hh
            if any(lay["has_bias"] for lay in layers):
                zeros = np.zeros(3 * layer["H"], w_ih.dtype)
                state["bias_ih" + sfx] = zeros if b_ih is None else b_ih
                state["bias_hh" + sfx] = zeros if b_hh is None else b_hh
    config = dict(input_size=int(first["I"]), hidden_size=int(first["H"]),
                  num_layers=len(layers), bias=any(lay["has_bias"] for lay in layers),
                  batch_first=batch_first_found if batch_first is None else bool(batch_first),
                  bidirectional=first["D"] == 2, reset_after=first["reset_after"],
                  go_backwards=first["direction"] == "reverse")
    dt = _float_dtype(dtype if dtype is not None else first["dtype"])
    return _build(cls, config, state, dt)


def _check_onnx_stack(graph, layers, source):
    """Check that the GRU nodes form one stack; return whether its input is batch-first."""
    first = layers[0]
    for k, layer in enumerate(layers[1:], start=1):
        src, perms = graph.trace(layer["node"].inputs[0])
        prev = layers[k - 1]["node"]
        if graph.producer.get(src) != (prev, 0):
            raise ValueError(
                f"{source}: {layer['node'].label()} does not read the Y output of "
                f"{prev.label()}; gru_cy loads one stack of GRU layers")
        for key in ("direction", "H", "reset_after", "layout"):
            if layer[key] != first[key]:
                raise ValueError(
                    f"{source}: GRU nodes differ in {key} ({first[key]!r} in the first, "
                    f"{layer[key]!r} in {layer['node'].label()}); a gru_cy module stacks "
                    f"identical layers")
        if layer["I"] != first["D"] * first["H"]:
            raise ValueError(f"{source}: {layer['node'].label()} takes {layer['I']} features, "
                             f"expected {first['D'] * first['H']} from the layer below")
        # Y is (T, D, B, H) with layout 0: bringing D next to H needs perm (0, 2, 1, 3)
        # (optional when D = 1); with layout 1, Y is (B, T, D, H) already.
        if first["layout"] == 1:
            allowed = [[]]
        elif first["D"] == 2:
            allowed = [[(0, 2, 1, 3)]]
        else:
            allowed = [[], [(0, 2, 1, 3)]]
        if perms not in allowed:
            raise ValueError(f"{source}: between {prev.label()} and {layer['node'].label()} "
                             f"the tensor is transposed by {perms}, expected {allowed[-1]}")
    src, perms = graph.trace(first["node"].inputs[0])
    if src in graph.producer or src in graph.initializers:
        import warnings

        warnings.warn(f"{source}: the first GRU node reads the output of "
                      f"{graph.producer[src][0].label() if src in graph.producer else src!r}, "
                      f"not a graph input; the gru_cy module holds the GRU layers only",
                      stacklevel=3)
        return first["layout"] == 1
    if first["layout"] == 1:
        return not perms
    return perms == [(1, 0, 2)]


# ONNX opset -> the lowest IR version that carries it (onnx.helper.VERSION_TABLE).
_IR_FOR_OPSET = {10: 5, 11: 6, 12: 7, 13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9,
                 20: 9, 21: 10, 22: 10, 23: 11, 24: 12, 25: 13, 26: 13, 27: 13, 28: 14}


def _onnx_tensor_proto(name, arr):
    arr = np.ascontiguousarray(arr)
    code = _ONNX_FROM_NUMPY[arr.dtype]
    return (b"".join(_pb_int(1, d) for d in arr.shape) + _pb_int(2, code) + _pb_bytes(8, name)
            + _pb_bytes(9, arr.astype(arr.dtype.newbyteorder("<")).tobytes()))


def _onnx_value_info(name, elem_type, dims):
    shape = b"".join(
        _pb_bytes(1, _pb_bytes(2, d) if isinstance(d, str) else _pb_int(1, d)) for d in dims)
    tensor_type = _pb_int(1, elem_type) + _pb_bytes(2, shape)
    return _pb_bytes(1, name) + _pb_bytes(2, _pb_bytes(1, tensor_type))


def _onnx_node(op_type, inputs, outputs, name, **attrs):
    out = b"".join(_pb_bytes(1, i) for i in inputs) + b"".join(_pb_bytes(2, o) for o in outputs)
    out += _pb_bytes(3, name) + _pb_bytes(4, op_type)
    for key, value in attrs.items():
        if isinstance(value, str):
            attr = _pb_bytes(1, key) + _pb_int(20, 3) + _pb_bytes(4, value)
        elif isinstance(value, (list, tuple)):
            attr = _pb_bytes(1, key) + _pb_int(20, 7) + b"".join(_pb_int(8, v) for v in value)
        else:
            attr = _pb_bytes(1, key) + _pb_int(20, 2) + _pb_int(3, int(value))
        out += _pb_bytes(5, attr)
    return out


def to_onnx(gru, path, opset=17, *, with_h0=False, with_lengths=False, dtype=None):
    """Write an ONNX model computing ``gru(x, h0, lengths)``; returns the path.

    Graph inputs: ``input`` (T, B, I) — (B, T, I) for a batch_first module —
    then ``h0`` (L*D, B, H) if with_h0, and ``lengths`` (B,) int32 if
    with_lengths (ONNX's sequence_lens). Outputs: ``output`` laid out as
    gru_cy's ``out``, and ``h_n`` (L*D, B, H). One GRU node per layer with
    linear_before_reset set from reset_after and direction from
    bidirectional / go_backwards. With both h0 and lengths, a Where keeps
    h0 as the final state of zero-length sequences (ONNX Runtime would give
    zeros; gru_cy and PyTorch give h0). opset 10 or later; dtype
    defaults to the module's (ONNX Runtime's GRU runs float32 only).
    No onnx package is needed.
    """
    opset = int(opset)
    if opset not in _IR_FOR_OPSET:
        raise ValueError(f"opset must be between {min(_IR_FOR_OPSET)} and {max(_IR_FOR_OPSET)}, "
                         f"got {opset}")
    np_dtype = _float_dtype(dtype if dtype is not None else gru.dtype)
    elem = _ONNX_FROM_NUMPY[np_dtype]
    L, D, H, I = gru.num_layers, gru.num_directions, gru.hidden_size, gru.input_size
    direction = "bidirectional" if gru.bidirectional else (
        "reverse" if gru.go_backwards else "forward")
    nodes, inits = [], []

    def const(name, arr):
        inits.append(_onnx_tensor_proto(name, arr))
        return name

    x_dims = ["B", "T", I] if gru.batch_first else ["T", "B", I]
    inputs = [_onnx_value_info("input", elem, x_dims)]
    if with_h0:
        inputs.append(_onnx_value_info("h0", elem, [L * D, "B", H]))
    if with_lengths:
        inputs.append(_onnx_value_info("lengths", _ONNX_INT32, ["B"]))
    x = "input"
    if gru.batch_first:
        nodes.append(_onnx_node("Transpose", ["input"], ["x_time_major"], "to_time_major",
                                perm=[1, 0, 2]))
        x = "x_time_major"
    if with_h0 and with_lengths:
        # (1, B, 1) mask of zero-length sequences, for the Where on each layer's Y_h.
        const("zero_length", np.zeros((), np.int32))
        const("mask_shape", np.array([1, -1, 1], np.int64))
        nodes.append(_onnx_node("Equal", ["lengths", "zero_length"], ["is_empty_flat"],
                                "is_empty_flat"))
        nodes.append(_onnx_node("Reshape", ["is_empty_flat", "mask_shape"], ["is_empty"],
                                "is_empty"))
    const("layer_shape", np.array([0, 0, D * H], np.int64))
    finals = []
    for k, params in enumerate(_direction_params(gru)):
        W = np.stack([_swap_rz(p[0]) for p in params]).astype(np_dtype)
        R = np.stack([_swap_rz(p[1]) for p in params]).astype(np_dtype)
        gru_inputs = [x, const(f"W_l{k}", W), const(f"R_l{k}", R)]
        if gru.bias:
            B = np.stack([np.concatenate([_swap_rz(p[2]), _swap_rz(p[3])]) for p in params])
            gru_inputs.append(const(f"B_l{k}", B.astype(np_dtype)))
        else:
            gru_inputs.append("")
        gru_inputs.append("lengths" if with_lengths else "")
        h0_k = ""
        if with_h0:
            if L == 1:
                h0_k = "h0"
            else:
                h0_k = f"h0_l{k}"
                nodes.append(_onnx_node(
                    "Slice", ["h0", const(f"h0_start_l{k}", np.array([k * D], np.int64)),
                              const(f"h0_end_l{k}", np.array([(k + 1) * D], np.int64)),
                              const(f"h0_axis_l{k}", np.array([0], np.int64))],
                    [h0_k], f"h0_slice_l{k}"))
        gru_inputs.append(h0_k)
        while gru_inputs[-1] == "":
            gru_inputs.pop()
        nodes.append(_onnx_node("GRU", gru_inputs, [f"Y_l{k}", f"Y_h_l{k}"], f"gru_l{k}",
                                hidden_size=H, direction=direction,
                                linear_before_reset=int(gru.reset_after)))
        final = f"Y_h_l{k}"
        if with_h0 and with_lengths:
            nodes.append(_onnx_node("Where", ["is_empty", h0_k, final], [f"h_n_l{k}"],
                                    f"keep_h0_l{k}"))
            final = f"h_n_l{k}"
        finals.append(final)
        # Y (T, D, B, H) -> (T, B, D*H), the next layer's input and the output.
        nodes.append(_onnx_node("Transpose", [f"Y_l{k}"], [f"Y_tbdh_l{k}"], f"transpose_l{k}",
                                perm=[0, 2, 1, 3]))
        x = "out_time_major" if k == L - 1 and gru.batch_first else (
            "output" if k == L - 1 else f"x_l{k + 1}")
        nodes.append(_onnx_node("Reshape", [f"Y_tbdh_l{k}", "layer_shape"], [x],
                                f"reshape_l{k}"))
    if gru.batch_first:
        nodes.append(_onnx_node("Transpose", [x], ["output"], "to_batch_first", perm=[1, 0, 2]))
    if L == 1:
        nodes.append(_onnx_node("Identity", finals, ["h_n"], "h_n"))
    else:
        nodes.append(_onnx_node("Concat", finals, ["h_n"], "h_n", axis=0))
    out_dims = ["B", "T", D * H] if gru.batch_first else ["T", "B", D * H]
    outputs = [_onnx_value_info("output", elem, out_dims),
               _onnx_value_info("h_n", elem, [L * D, "B", H])]
    graph = (b"".join(_pb_bytes(1, n) for n in nodes) + _pb_bytes(2, "gru_cy")
             + b"".join(_pb_bytes(5, t) for t in inits)
             + b"".join(_pb_bytes(11, v) for v in inputs)
             + b"".join(_pb_bytes(12, v) for v in outputs))
    from gru_cy._version import __version__

    model = (_pb_int(1, _IR_FOR_OPSET[opset]) + _pb_bytes(2, "gru_cy")
             + _pb_bytes(3, __version__) + _pb_bytes(6, repr(gru))
             + _pb_bytes(7, graph) + _pb_bytes(8, _pb_int(2, opset)))
    _write_atomically(path, lambda f: f.write(model))
    return path


# ---------------------------------------------------------------------------
# .npz: arrays + a JSON config, never pickled


def _write_atomically(path, write):
    if hasattr(path, "write"):
        write(path)
        return
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save(gru, path):
    """Save configuration and weights to ``path`` (written as given, no suffix added).

    The file is an ordinary .npz: each parameter under its PyTorch name,
    plus ``config``, a 0-d string array holding JSON (format name and
    version, the constructor arguments, dtype). ``numpy.load(path,
    allow_pickle=False)`` reads it; ``gru_cy.load`` checks it.
    """
    from gru_cy._version import __version__

    config = dict(format=_FORMAT_NAME, format_version=_FORMAT_VERSION,
                  **{"class": type(gru).__name__}, **_module_config(gru),
                  dtype=gru.dtype.name, gru_cy_version=__version__)
    arrays = {name: np.ascontiguousarray(p, dtype=gru.dtype)
              for name, p in gru.state_dict().items()}
    arrays[_CONFIG_KEY] = np.array(json.dumps(config))
    _write_atomically(path, lambda f: np.savez(f, **arrays))
    return path


def _npy_header(zf, member, source):
    with zf.open(member) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(f)
        raise ValueError(f"{source}: {member} has .npy format version {version}")


def _check_config(config, source):
    def fail(msg):
        raise ValueError(f"{source}: bad config: {msg}")

    if not isinstance(config, dict) or config.get("format") != _FORMAT_NAME:
        fail(f"not a gru_cy model file (its config has no \"format\": \"{_FORMAT_NAME}\")")
    version = config.get("format_version")
    if type(version) is not int or version < 1:
        fail(f"format_version must be a positive integer, got {version!r}")
    if version > _FORMAT_VERSION:
        raise ValueError(f"{source} was written by a newer gru_cy (file format version "
                         f"{version}); this gru_cy reads version {_FORMAT_VERSION}: upgrade it")
    if config.get("class") != "GRU":
        fail(f"class {config.get('class')!r} (this gru_cy loads GRU)")
    checked = {}
    for key in ("input_size", "hidden_size", "num_layers"):
        v = config.get(key)
        if type(v) is not int or not 1 <= v <= _INT32_MAX:
            fail(f"{key} must be a positive integer, got {v!r}")
        checked[key] = v
    for key in ("bias", "batch_first", "bidirectional", "reset_after", "go_backwards"):
        v = config.get(key)
        if type(v) is not bool:
            fail(f"{key} must be true or false, got {v!r}")
        checked[key] = v
    dropout = config.get("dropout")
    if type(dropout) not in (int, float) or not 0.0 <= dropout <= 1.0:
        fail(f"dropout must be a number in [0, 1], got {dropout!r}")
    checked["dropout"] = float(dropout)
    if config.get("dtype") not in ("float32", "float64"):
        fail(f"dtype must be \"float32\" or \"float64\", got {config.get('dtype')!r}")
    return checked, np.dtype(config["dtype"])


def load(path, *, cls=None):
    """Load a module written by ``save`` (or ``gru.save``). No pickles are read.

    Raises ValueError, naming the problem, for anything that is not such a
    file: not a zip archive, truncated or corrupted data, a missing or
    malformed config, a newer format version, missing or unexpected arrays,
    shapes or dtypes that disagree with the config, object arrays.
    """
    if hasattr(path, "read"):
        return _load_npz(path, getattr(path, "name", "<file>"), cls)
    source = os.fspath(path)
    with open(source, "rb") as f:  # a missing file stays FileNotFoundError
        return _load_npz(f, source, cls)


def _load_npz(f, source, cls):
    # Whatever zipfile, zlib and numpy raise on bad bytes (zipfile alone raises
    # BadZipFile, NotImplementedError, EOFError, OSError, ValueError, ...).
    corrupt = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
               NotImplementedError, UnicodeDecodeError, struct.error, OverflowError)
    try:
        zf = zipfile.ZipFile(f)
    except corrupt as exc:
        raise ValueError(f"{source} is not a gru_cy .npz file (not a zip archive, or truncated): "
                         f"{type(exc).__name__}: {exc}") from exc
    with zf:
        try:
            names = zf.namelist()
        except corrupt as exc:
            raise ValueError(f"{source}: unreadable archive directory: {exc}") from exc
        if len(set(names)) != len(names):
            raise ValueError(f"{source}: the archive lists a member twice")
        bad = [n for n in names if not n.endswith(".npy")]
        if bad:
            raise ValueError(f"{source}: unexpected members {bad} (a .npz holds only .npy arrays)")
        members = {n[:-4]: n for n in names}
        if _CONFIG_KEY not in members:
            raise ValueError(f"{source}: no '{_CONFIG_KEY}' entry; not a file written by "
                             f"gru_cy's save()")
        try:
            shape, _, dt = _npy_header(zf, members[_CONFIG_KEY], source)
            if dt.kind != "U" or shape != () or dt.itemsize > 1 << 20:
                raise ValueError(f"'{_CONFIG_KEY}' must be a 0-d string, got dtype {dt} "
                                 f"shape {shape}")
            with zf.open(members[_CONFIG_KEY]) as f:
                text = str(np.lib.format.read_array(f, allow_pickle=False))
            config = json.loads(text)
        except corrupt as exc:
            raise ValueError(f"{source}: unreadable config ({type(exc).__name__}: {exc})") from exc
        checked, dtype = _check_config(config, source)
        expected = _param_shapes(checked["input_size"], checked["hidden_size"],
                                 checked["num_layers"], checked["bidirectional"], checked["bias"])
        found = set(members) - {_CONFIG_KEY}
        missing, unexpected = sorted(set(expected) - found), sorted(found - set(expected))
        if missing or unexpected:
            raise ValueError(f"{source}: arrays do not match the config: "
                             + (f"missing {missing} " if missing else "")
                             + (f"unexpected {unexpected}" if unexpected else ""))
        state = {}
        for name, shape in expected.items():
            try:
                file_shape, _, dt = _npy_header(zf, members[name], source)
            except corrupt as exc:
                raise ValueError(f"{source}: array {name!r} is unreadable ({exc})") from exc
            if dt.hasobject:
                raise ValueError(f"{source}: array {name!r} holds Python objects; gru_cy never "
                                 f"unpickles (allow_pickle=False)")
            if dt.kind != "f" or dt.itemsize != dtype.itemsize or tuple(file_shape) != shape:
                raise ValueError(f"{source}: array {name!r} is {dt} of shape {file_shape}, "
                                 f"expected {dtype} of shape {shape}")
            try:
                with zf.open(members[name]) as f:
                    state[name] = np.lib.format.read_array(f, allow_pickle=False)
            except corrupt as exc:
                raise ValueError(f"{source}: array {name!r} is truncated or corrupted "
                                 f"({type(exc).__name__}: {exc})") from exc
    if cls is None:
        from gru_cy.nn.gru import GRU as cls
    gru = cls(**checked, dtype=dtype)
    gru.load_state_dict(state)
    return gru


# ---------------------------------------------------------------------------
# python -m gru_cy convert SRC DST


_FORMATS = {".npz": "npz", ".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".keras": "keras"}
_FORMAT_HELP = (".npz (gru_cy save), .onnx, .pt/.pth (a PyTorch state_dict of one nn.GRU), "
                ".keras (a Keras 3 model made of GRU / Bidirectional(GRU) layers)")


def _format_of(path):
    return _FORMATS.get(os.path.splitext(str(path))[1].lower())


def _prepare_keras_backend():
    """Pick a Keras backend that is installed, unless the user chose one."""
    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    import importlib.util

    for backend, module in (("tensorflow", "tensorflow"), ("torch", "torch"), ("jax", "jax")):
        if importlib.util.find_spec(module) is not None:
            os.environ["KERAS_BACKEND"] = backend
            return


def _read_model(path, fmt, notes):
    if fmt == "npz":
        return load(path)
    if fmt == "onnx":
        return load_onnx(path)
    if fmt == "torch":
        try:
            import torch
        except ImportError as exc:
            raise ImportError("reading a PyTorch file needs torch (pip install torch)") from exc
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
            raise ValueError(
                f"{path}: torch.load(weights_only=True) refused it ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); save a state_dict with "
                f"torch.save(model.gru.state_dict(), path), not a pickled module") from exc
        if not (hasattr(obj, "keys") and hasattr(obj, "__getitem__")):
            raise ValueError(f"{path} holds a {type(obj).__name__}, not a state_dict")
        config, state, ignored = _config_from_state_dict(obj)
        if ignored:
            shown = ", ".join(map(str, ignored[:5])) + (", ..." if len(ignored) > 5 else "")
            notes.append(f"ignored {len(ignored)} entries outside the GRU ({shown})")
        dt = config.pop("dtype")
        return _build(None, config, state, dt)
    if fmt == "keras":
        _prepare_keras_backend()
        keras = _import_keras()
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
        return from_keras(model)
    raise AssertionError(fmt)


def _write_model(gru, path, fmt):
    if fmt == "npz":
        save(gru, path)
    elif fmt == "onnx":
        to_onnx(gru, path)
    elif fmt == "torch":
        _check_torch_expressible(gru, "writing a PyTorch state_dict")
        try:
            import torch
        except ImportError as exc:
            raise ImportError("writing a PyTorch file needs torch (pip install torch)") from exc
        state = {name: torch.from_numpy(np.ascontiguousarray(p))
                 for name, p in gru.state_dict().items()}
        _write_atomically(path, lambda f: torch.save(state, f))
    elif fmt == "keras":
        _prepare_keras_backend()
        keras = _import_keras()
        model = to_keras(gru)
        if not isinstance(model, keras.Model):
            model = keras.Sequential([keras.Input(shape=(None, gru.input_size),
                                                  dtype=gru.dtype.name), model])
        model.save(path)


def convert_cli(src, dst, out=None, err=None):
    """``python -m gru_cy convert SRC DST``: formats from the extensions. Returns an exit code.

    0 on success, 2 for a usage problem (unknown extension, missing file),
    1 when the conversion itself fails (the message says why).
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    src_fmt, dst_fmt = _format_of(src), _format_of(dst)
    for path, fmt in ((src, src_fmt), (dst, dst_fmt)):
        if fmt is None:
            print(f"gru_cy convert: cannot tell the format of {path!r} from its extension; "
                  f"supported: {_FORMAT_HELP}", file=err)
            return 2
    if not os.path.isfile(src):
        print(f"gru_cy convert: no such file: {src!r}", file=err)
        return 2
    notes = []
    try:
        gru = _read_model(src, src_fmt, notes)
        _write_model(gru, dst, dst_fmt)
    except ImportError as exc:
        print(f"gru_cy convert: {exc}", file=err)
        return 1
    except (ValueError, NotImplementedError, TypeError, OSError) as exc:
        print(f"gru_cy convert: cannot convert {src} to {dst}: {exc}", file=err)
        return 1
    for note in notes:
        print(f"note: {note}", file=out)
    print(f"wrote {dst}: {gru!r}", file=out)
    return 0


def _install_hooks():
    from gru_cy.nn import base

    base.IO_HOOKS["save"] = save


_install_hooks()
