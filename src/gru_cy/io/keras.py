"""Keras 3: from_keras and to_keras.

A Keras recurrent layer stores ``kernel`` (I, G*H), ``recurrent_kernel``
(H, G*H) and ``bias``, gate blocks as columns, in its own gate order; a
``Bidirectional`` wrapper holds a forward and a backward (go_backwards=True)
copy. The stacking, direction and shape logic here is cell-independent; what
differs per cell is one ``KerasCell`` entry in ``KERAS_CELLS`` per gru_cy kind:

- ``keras_class``: the ``keras.layers`` class name ("GRU", "SimpleRNN", "LSTM");
- ``gates``: gate blocks G;
- ``perm``: Keras's gate order as indices into gru_cy's (Keras block i is
  gru_cy block perm[i]); GRU: gru_cy r, z, n vs Keras z, r, h -> (1, 0, 2);
- ``read_config(cfg, name) -> dict``: the cell's own constructor arguments
  from ``layer.get_config()``; raise ValueError naming settings gru_cy
  cannot reproduce (another activation, ...);
- ``keras_kwargs(module) -> dict``: the extra Keras constructor arguments;
- ``bias_shape(H, extra)``, ``bias_from_keras(bias, extra) -> (b_ih, b_hh)``
  and ``bias_to_keras(b_ih, b_hh, module)``: the bias packing, in Keras's
  gate order (the permutation is applied around them);
- ``check(module)``: raise ValueError when the module has no Keras form
  (an LSTM's proj_size).

Adding a cell is adding its entry. Keras is imported inside the functions
that need it.

Directions. gru_cy's ``go_backwards=True`` (reverse-only) module keeps
``out[t]`` aligned with ``x[t]``, as ONNX ``direction="reverse"`` does. A
Keras layer with ``go_backwards=True, return_sequences=True`` returns its
outputs in processing order instead, i.e. reversed in time: ``keras_out[:, t]``
is gru_cy's ``out[:, T - 1 - t]`` (flip the time axis to compare). Final
states agree. ``Bidirectional`` flips its backward half back itself, so its
concatenated output equals gru_cy's bidirectional ``out``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from gru_cy.io._common import (build, cell_spec, direction_params, float_dtype, inverse,
                               kind_of, module_class, permute_gates, stack_state)

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from gru_cy.nn.base import RNNBase

__all__ = ["KerasCell", "KERAS_CELLS", "from_keras", "to_keras"]


@dataclass(frozen=True)
class KerasCell:
    keras_class: str
    gates: int
    perm: tuple
    read_config: Callable
    keras_kwargs: Callable
    bias_shape: Callable
    bias_from_keras: Callable
    bias_to_keras: Callable
    check: Callable = lambda module: None


def check_activations(cfg: dict[str, Any], lname: str, keras_class: str,
                      expected: dict[str, str]) -> None:
    """Raise ValueError when the layer's activations differ from expected {key: name}."""
    unsupported = []
    for key, default in expected.items():
        value = cfg.get(key, default)
        if isinstance(value, dict):  # a serialized function: {"config": "tanh", ...}
            value = value.get("config", value)
        if value != default:
            unsupported.append(f"{key}={value!r} (gru_cy computes {default})")
    if unsupported:
        raise ValueError(f"Keras {keras_class} {lname!r} has settings gru_cy cannot reproduce: "
                         + "; ".join(unsupported))


# -- GRU: reset_after=True keeps two biases (2, 3H); reset_after=False one (3H,),
# to which to_keras writes bias_ih + bias_hh (the same function up to one
# rounding of the sum) and from_keras reads as bias_ih with bias_hh = 0.

def _gru_read_config(cfg, lname):
    check_activations(cfg, lname, "GRU", {"activation": "tanh", "recurrent_activation": "sigmoid"})
    return dict(reset_after=bool(cfg.get("reset_after", True)))


def _gru_bias_from_keras(bias, extra):
    if extra["reset_after"]:
        return bias[0], bias[1]
    return bias, np.zeros_like(bias)


def _gru_bias_to_keras(b_ih, b_hh, module):
    return np.stack([b_ih, b_hh]) if module.reset_after else b_ih + b_hh


# -- LSTM: Keras's gate order i, f, c, o is PyTorch's i, f, g, o; one bias
# (4H,), to which to_keras writes bias_ih + bias_hh and from_keras reads as
# bias_ih with bias_hh = 0. Keras has no projection.

def _lstm_read_config(cfg, lname):
    check_activations(cfg, lname, "LSTM", {"activation": "tanh", "recurrent_activation": "sigmoid"})
    return {}


def _lstm_check(module):
    if module.proj_size:
        raise ValueError(f"to_keras: proj_size={module.proj_size} has no Keras LSTM form (Keras "
                         f"LSTMs have no projection); use to_torch or save instead")


# -- Elman RNN (SimpleRNN): one bias (H,), read as bias_ih with bias_hh = 0; to_keras
# writes bias_ih + bias_hh. activation "tanh" or "relu" is the module's nonlinearity.

def _rnn_read_config(cfg, lname):
    act = cfg.get("activation", "tanh")
    if isinstance(act, dict):  # a serialized function: {"config": "tanh", ...}
        act = act.get("config", act)
    if act not in ("tanh", "relu"):
        raise ValueError(f"Keras SimpleRNN {lname!r} has settings gru_cy cannot reproduce: "
                         f"activation={act!r} (gru_cy computes tanh or relu)")
    return dict(nonlinearity=act)


KERAS_CELLS = {
    "GRU": KerasCell(
        keras_class="GRU", gates=3, perm=(1, 0, 2), read_config=_gru_read_config,
        keras_kwargs=lambda m: dict(activation="tanh", recurrent_activation="sigmoid",
                                    reset_after=m.reset_after),
        bias_shape=lambda H, extra: (2, 3 * H) if extra["reset_after"] else (3 * H,),
        bias_from_keras=_gru_bias_from_keras, bias_to_keras=_gru_bias_to_keras),
    "LSTM": KerasCell(
        keras_class="LSTM", gates=4, perm=(0, 1, 2, 3), read_config=_lstm_read_config,
        keras_kwargs=lambda m: dict(activation="tanh", recurrent_activation="sigmoid"),
        bias_shape=lambda H, extra: (4 * H,),
        bias_from_keras=lambda bias, extra: (bias, np.zeros_like(bias)),
        bias_to_keras=lambda b_ih, b_hh, module: b_ih + b_hh, check=_lstm_check),
    "RNN": KerasCell(
        keras_class="SimpleRNN", gates=1, perm=(0,), read_config=_rnn_read_config,
        keras_kwargs=lambda m: dict(activation=m.nonlinearity),
        bias_shape=lambda H, extra: (H,),
        bias_from_keras=lambda bias, extra: (bias, np.zeros_like(bias)),
        bias_to_keras=lambda b_ih, b_hh, module: b_ih + b_hh),
}


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


def _names(classes):
    return " / ".join(classes)


def _keras_specs(obj, classes=None):
    """Plain descriptions of the recurrent layers of a Keras layer, list or model.

    A spec is {"class_name": "GRU", "config": layer.get_config(), "weights": [...]}
    or {"class_name": "Bidirectional", "merge_mode": ..., "forward": spec,
    "backward": spec}: the same structure the golden files store, so that
    the weight mapping (_from_keras_specs) is testable without Keras.
    classes: the Keras class names accepted (default: every cell's).
    """
    if classes is None:
        classes = tuple(c.keras_class for c in KERAS_CELLS.values())
    if isinstance(obj, (list, tuple)):
        specs = []
        for layer in obj:
            specs += _keras_specs(layer, classes)
        return specs
    name = type(obj).__name__
    if name in classes:
        if not obj.built:
            raise ValueError(f"Keras layer {obj.name!r} is not built yet (it has no weights); "
                             "call it on an input or build it first")
        return [{"class_name": name, "name": obj.name, "config": obj.get_config(),
                 "weights": obj.get_weights()}]
    if name == "Bidirectional":
        fw, bw = obj.forward_layer, obj.backward_layer
        for part in (fw, bw):
            if type(part).__name__ not in classes:
                raise ValueError(f"Bidirectional layer {obj.name!r} wraps a "
                                 f"{type(part).__name__}; gru_cy converts Bidirectional("
                                 f"{_names(classes)})")
        return [{"class_name": "Bidirectional", "name": obj.name, "merge_mode": obj.merge_mode,
                 "forward": _keras_specs(fw, classes)[0],
                 "backward": _keras_specs(bw, classes)[0]}]
    if hasattr(obj, "layers"):  # a Sequential or functional model
        others = [f"{type(layer).__name__} {layer.name!r}" for layer in obj.layers
                  if type(layer).__name__ not in (*classes, "Bidirectional", "InputLayer")]
        if others:
            raise ValueError(
                f"the Keras model holds layers a gru_cy {_names(classes)} cannot represent: "
                + ", ".join(others) + f"; pass its {_names(classes)} layer(s) instead, e.g. "
                f"{classes[0]}.from_keras(model.get_layer(name))")
        return _keras_specs([layer for layer in obj.layers
                             if type(layer).__name__ != "InputLayer"], classes)
    raise TypeError(f"from_keras expects a keras.layers.{_names(classes)}, a Bidirectional("
                    f"{_names(classes)}), a list of them or a model made of them, got "
                    f"{type(obj).__module__}.{name}")


def _keras_layer_arrays(spec, cell):
    """(input_size, config, (w_ih, w_hh, b_ih, b_hh), dtype) of one Keras layer spec.

    The arrays are in gru_cy's layout (biases None without use_bias).
    """
    cfg, weights, lname = spec["config"], [np.asarray(w) for w in spec["weights"]], spec["name"]
    kname, G = cell.keras_class, cell.gates
    extra = cell.read_config(cfg, lname)
    H = int(cfg["units"])
    use_bias = bool(cfg.get("use_bias", True))
    if len(weights) != (3 if use_bias else 2):
        raise ValueError(f"Keras {kname} {lname!r}: expected {3 if use_bias else 2} weight "
                         f"arrays (kernel, recurrent_kernel{', bias' if use_bias else ''}), got "
                         f"{len(weights)}")
    kernel, recurrent = weights[0], weights[1]
    I = kernel.shape[0] if kernel.ndim == 2 else -1
    bias_shape = tuple(cell.bias_shape(H, extra)) if use_bias else None
    if (kernel.shape != (I, G * H) or recurrent.shape != (H, G * H)
            or (use_bias and weights[2].shape != bias_shape)):
        settings = "".join(f", {k}={v}" for k, v in extra.items())
        raise ValueError(
            f"Keras {kname} {lname!r}: weight shapes {[tuple(w.shape) for w in weights]} do not "
            f"fit units={H}{settings} (expected kernel (I, {G * H}), "
            f"recurrent_kernel ({H}, {G * H})" + (f", bias {bias_shape})" if use_bias else ")"))
    back = inverse(cell.perm)
    w_ih, w_hh = permute_gates(kernel.T, back), permute_gates(recurrent.T, back)
    if not use_bias:
        b_ih = b_hh = None
    else:
        b_ih, b_hh = cell.bias_from_keras(weights[2], extra)
        b_ih, b_hh = permute_gates(b_ih, back), permute_gates(b_hh, back)
    layer_cfg = dict(hidden_size=H, **extra, bias=use_bias,
                     go_backwards=bool(cfg.get("go_backwards", False)))
    return I, layer_cfg, (w_ih, w_hh, b_ih, b_hh), kernel.dtype


def _cell_of(specs, cls):
    """The KERAS_CELLS entry of the layers (all of one class), checked against cls."""
    names = {s["forward"]["class_name"] if s["class_name"] == "Bidirectional"
             else s["class_name"] for s in specs}
    by_class = {c.keras_class: c for c in KERAS_CELLS.values()}
    if cls is not None:
        cell = cell_spec(KERAS_CELLS, cls)
        bad = sorted(names - {cell.keras_class})
        if bad:
            raise ValueError(f"cannot convert a Keras {bad[0]} layer to a {cls.__name__}")
        return cell
    unknown = sorted(names - set(by_class))
    if unknown:
        raise ValueError(f"cannot convert a Keras {unknown[0]} layer")
    if len(names) > 1:
        raise ValueError(f"the Keras layers mix {', '.join(sorted(names))}; a gru_cy module "
                         f"stacks layers of one kind")
    return by_class[names.pop()]


def _from_keras_specs(specs, cls=None, dtype=None, batch_first=True):
    """A gru_cy module from Keras layer specs (see _keras_specs), one spec per layer."""
    if not specs:
        raise ValueError("no Keras GRU layer to convert")
    for spec in specs:
        if spec["class_name"] == "Bidirectional" and spec.get("merge_mode", "concat") != "concat":
            raise ValueError(f"Bidirectional layer {spec['name']!r} has merge_mode="
                             f"{spec['merge_mode']!r}; gru_cy concatenates the two "
                             f"directions, like merge_mode='concat'")
    cell = _cell_of(specs, cls)
    cls = module_class(cls, kind_of(KERAS_CELLS, cell))
    kname = cell.keras_class
    layers, first = [], None
    for i, spec in enumerate(specs):
        if spec["class_name"] == "Bidirectional":
            (I, cfg_f, p_f, dt), (_, cfg_b, p_b, _) = (_keras_layer_arrays(spec["forward"], cell),
                                                       _keras_layer_arrays(spec["backward"], cell))
            if cfg_f["go_backwards"] or not cfg_b["go_backwards"]:
                raise ValueError(f"Bidirectional layer {spec['name']!r}: expected a forward "
                                 f"layer with go_backwards=False and a backward layer with "
                                 f"go_backwards=True")
            if {**cfg_f, "go_backwards": 0} != {**cfg_b, "go_backwards": 0}:
                raise ValueError(f"Bidirectional layer {spec['name']!r}: the forward and backward "
                                 f"{kname}s differ ({cfg_f} vs {cfg_b}); gru_cy needs them alike")
            cfg = dict(cfg_f, bidirectional=True)
            params = [p_f, p_b]
        else:
            I, cfg, p, dt = _keras_layer_arrays(spec, cell)
            cfg = dict(cfg, bidirectional=False)
            params = [p]
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
        raise ValueError(f"stacked Keras {kname} layers with go_backwards=True feed each layer "
                         "the previous one's time-reversed output; gru_cy cannot stack those")
    state = stack_state(layers, first["bias"])
    config = {k: v for k, v in first.items() if k not in ("input_size", "dtype")}
    config = dict(input_size=int(first["input_size"]), **config, num_layers=len(layers),
                  batch_first=bool(batch_first))
    dt = float_dtype(dtype if dtype is not None else first["dtype"])
    return build(cls, config, state, dt)


def from_keras(layer: Any, *, cls: type[RNNBase] | None = None, dtype: DTypeLike | None = None,
               batch_first: bool = True) -> RNNBase:
    """A gru_cy module from Keras 3: a recurrent layer (``keras.layers.GRU``, ...),
    a ``Bidirectional`` of one (merge_mode="concat"), a list of such layers to
    stack, or a model made of them.

    GRU: reset_after True and False, use_bias, go_backwards (single
    layer). Dropout and recurrent_dropout do nothing at inference and are
    ignored; other activations raise ValueError naming them. The module is
    ``batch_first=True`` by default, so it takes Keras's (B, T, I) input.
    For go_backwards, gru_cy's ``out[t]`` is aligned with ``x[t]``, while
    Keras returns the sequence in processing (reversed) order; see the
    module docstring.
    """
    classes = None if cls is None else (cell_spec(KERAS_CELLS, cls).keras_class,)
    return _from_keras_specs(_keras_specs(layer, classes), cls=cls, dtype=dtype,
                             batch_first=batch_first)


def _keras_weights(cell, params, module):
    w_ih, w_hh, b_ih, b_hh = params
    weights = [np.ascontiguousarray(permute_gates(w_ih, cell.perm).T),
               np.ascontiguousarray(permute_gates(w_hh, cell.perm).T)]
    if module.bias:
        weights.append(cell.bias_to_keras(permute_gates(b_ih, cell.perm),
                                          permute_gates(b_hh, cell.perm), module))
    return weights


def to_keras(module: RNNBase, *, return_sequences: bool = True,
             return_state: bool = False) -> Any:
    """An equivalent Keras 3 layer, built and holding gru_cy's weights.

    One layer gives a ``keras.layers.GRU`` (or ``Bidirectional(GRU)``), several
    a ``keras.Sequential`` of them. Keras takes (B, T, I) input whatever
    ``batch_first`` is. With reset_after=False, Keras's single bias receives
    bias_ih + bias_hh. A go_backwards module gives a Keras layer with
    go_backwards=True, whose sequence output is in reversed time order.
    """
    cell = cell_spec(KERAS_CELLS, type(module))
    cell.check(module)
    keras = _import_keras()
    if return_state and module.num_layers > 1:
        raise ValueError("return_state=True needs a single layer (a Sequential returns one "
                         "tensor)")
    L, H, dt = module.num_layers, module.hidden_size, module.dtype.name
    layer_class = getattr(keras.layers, cell.keras_class)
    built = []
    for k, params in enumerate(direction_params(module)):
        last = k == L - 1

        def make(go_backwards):
            return layer_class(
                H, use_bias=module.bias, go_backwards=go_backwards,
                return_sequences=return_sequences if last else True,
                return_state=return_state and last, dtype=dt, **cell.keras_kwargs(module))

        weights = [w for p in params for w in _keras_weights(cell, p, module)]
        if module.bidirectional:
            layer = keras.layers.Bidirectional(make(False), merge_mode="concat", dtype=dt)
        else:
            layer = make(module.go_backwards)
        in_k = module.input_size if k == 0 else module.num_directions * H
        layer.build((None, None, in_k))
        layer.set_weights(weights)
        built.append(layer)
    if L == 1:
        return built[0]
    return keras.Sequential([keras.Input(shape=(None, module.input_size), dtype=dt), *built])
