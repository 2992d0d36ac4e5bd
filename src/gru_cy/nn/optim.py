"""Optimisers over modules' ``params`` / ``grads``, with torch.optim's update rules.

An optimiser takes a list of modules (anything with live ``params`` and
``grads`` dicts under the same names: the recurrent cells, Embedding,
Linear) and updates every parameter array in place, in its own dtype, with
the arithmetic in the same order as torch.optim's single-tensor path, so
that the same gradients give the same parameters. Hyper-parameters live in
``param_groups[0]`` (one group) and may be changed between steps, e.g. for a
learning-rate schedule.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from gru_cy.nn.base import shape_str, to_numpy

if TYPE_CHECKING:
    from numpy.typing import NDArray


class Trainable(Protocol):
    """What an optimiser updates: live ``params`` and ``grads`` under the same
    names (every gru_cy module, or a user's object shaped alike)."""

    params: dict[str, NDArray[Any]]
    grads: dict[str, NDArray[Any]]

    def zero_grad(self) -> None: ...


# One module or several.
Modules = Trainable | Iterable[Trainable]


def _modules_list(modules):
    if hasattr(modules, "params") and hasattr(modules, "grads"):
        modules = [modules]
    try:
        modules = list(modules)
    except TypeError:
        raise TypeError(f"modules must be a list of modules (objects with params and grads), "
                        f"got {type(modules).__name__}") from None
    seen = set()
    for i, m in enumerate(modules):
        if not (isinstance(getattr(m, "params", None), dict)
                and isinstance(getattr(m, "grads", None), dict)):
            raise TypeError(f"modules[{i}] must be a module with params and grads dicts, got "
                            f"{type(m).__name__}")
        if id(m) in seen:
            raise ValueError(f"modules[{i}] appears more than once in modules; each module's "
                             f"parameters may be optimised only once")
        seen.add(id(m))
    return modules


def _number(name, value, minimum=0.0, maximum=None, message=None):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} should be a real number, got {type(value).__name__}")
    value = float(value)
    if not (value >= minimum and (maximum is None or value < maximum)):
        raise ValueError(message or f"Invalid {name} value: {value}")
    return value


class Optimizer:
    """What every optimiser shares: the parameter list, zero_grad, state_dict.

    A subclass implements ``_update(p, g, state, hyper)``: one step on one
    array p with gradient g, in place, given its state dict (empty before
    the first step; arrays the shape of p, and "step" where used). When
    every parameter has a gradient and all share a dtype and step count,
    the rule runs once on the concatenation of all parameters instead of
    once per array (the state arrays are then views into one buffer each):
    the arithmetic is elementwise, so the bits are the same either way,
    and the per-call overhead is paid once.
    """

    # Whether the rule runs once over all parameters (it pays when the rule
    # makes many NumPy calls per array, as Adam's does; SGD's few calls run
    # faster per array than the concatenation and copies back cost).
    _one_pass = True

    param_groups: list[dict[str, Any]]
    state: dict[int, dict[str, Any]]

    def __init__(self, modules: Modules, **hyper: Any) -> None:
        self.modules = _modules_list(modules)
        self.param_groups = [dict(hyper)]
        self.state = {}  # flat parameter index -> {name: array or number}
        self._flat = None  # (layout key, {name: buffer}) behind the state's views

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_flat"] = None  # the views would unpickle as separate copies
        return state

    def _slots(self):
        """[(index, param, grad)] in module order, then each module's params order."""
        slots = []
        index = 0
        for k, m in enumerate(self.modules):
            for name, p in m.params.items():
                g = m.grads.get(name)
                if not isinstance(p, np.ndarray) or not p.flags.writeable:
                    raise TypeError(f"modules[{k}].params[{name!r}] must be a writeable NumPy "
                                    f"array to be updated in place, got {type(p).__name__}")
                if p.dtype.kind != "f":
                    raise TypeError(f"modules[{k}].params[{name!r}] must be a float array, got "
                                    f"dtype {p.dtype}")
                if g is not None:
                    if not isinstance(g, np.ndarray) or g.shape != p.shape:
                        raise ValueError(
                            f"modules[{k}].grads[{name!r}] must be an array of the parameter's "
                            f"shape {shape_str(p.shape)}, got "
                            f"{shape_str(getattr(g, 'shape', ()))}")
                    if g.dtype != p.dtype:
                        g = g.astype(p.dtype)
                slots.append((index, p, g))
                index += 1
        return slots

    def step(self) -> None:
        """One update of every parameter with a gradient, in place."""
        hyper = self.param_groups[0]
        slots = [slot for slot in self._slots() if slot[2] is not None]
        if not slots:
            return
        buffers = self._flat_buffers(slots)
        if buffers is None:
            for i, p, g in slots:
                state = self.state.setdefault(i, {})
                self._update(p, g, state, hyper)
            return
        flat_p = np.concatenate([p.reshape(-1) for _, p, _ in slots])
        flat_g = np.concatenate([g.reshape(-1) for _, _, g in slots])
        first = not buffers
        state = dict(buffers)
        step = self.state.get(slots[0][0], {}).get("step")
        if step is not None:
            state["step"] = step
        self._update(flat_p, flat_g, state, hyper)
        offset = 0
        for i, p, _ in slots:
            size = p.size
            np.copyto(p, flat_p[offset:offset + size].reshape(p.shape))
            offset += size
        if first:
            buffers.update({k: v for k, v in state.items() if isinstance(v, np.ndarray)})
            self._share(slots, buffers, state.get("step"))
        elif "step" in state:  # the views already look into the buffers
            for i, _, _ in slots:
                self.state[i]["step"] = state["step"]

    def _layout(self, slots):
        return (slots[0][1].dtype,) + tuple((i, p.shape) for i, p, _ in slots)

    def _flat_buffers(self, slots):
        """{name: flat buffer} ({} before the first step) for the flat path, or None."""
        dtype = slots[0][1].dtype
        if not self._one_pass or len(slots) < 2 or any(p.dtype != dtype for _, p, _ in slots):
            return None
        key = self._layout(slots)
        if self._flat is not None and self._flat[0] == key:
            return self._flat[1]
        states = [self.state.get(i) for i, _, _ in slots]
        if not any(states):
            if any(self.state.values()):
                return None  # some parameters have state, others not
            self._flat = (key, {})
            return self._flat[1]
        # Pack existing per-array state (after load_state_dict, or a new layout).
        first = states[0]
        names = sorted(k for k, v in first.items() if isinstance(v, np.ndarray))
        for st, (_, p, _) in zip(states, slots):
            if not st or sorted(k for k, v in st.items() if isinstance(v, np.ndarray)) != names \
                    or st.get("step") != first.get("step") \
                    or any(st[k].shape != p.shape or st[k].dtype != dtype for k in names):
                return None
        buffers = {k: np.concatenate([st[k].reshape(-1) for st in states]) for k in names}
        self._share(slots, buffers, first.get("step"))
        self._flat = (key, buffers)
        return buffers

    def _share(self, slots, buffers, step):
        """Make every parameter's state entries views into the flat buffers."""
        offset = 0
        for i, p, _ in slots:
            size = p.size
            st = self.state.setdefault(i, {})
            for name, buf in buffers.items():
                st[name] = buf[offset:offset + size].reshape(p.shape)
            if step is not None:
                st["step"] = step
            offset += size

    def _update(self, p, g, state, hyper):
        raise NotImplementedError

    @property
    def lr(self) -> float:
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = _number("learning rate", value,
                                             message=f"Invalid learning rate: {value}")

    def zero_grad(self) -> None:
        """Zero every module's gradients in place (backward adds into them)."""
        for m in self.modules:
            m.zero_grad()

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}, copies."""
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        n = sum(len(m.params) for m in self.modules)
        groups = [dict(g, params=list(range(n))) for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume from ``state_dict()`` (also torch.optim's, whose arrays are tensors)."""
        if not isinstance(state_dict, dict) or "state" not in state_dict \
                or "param_groups" not in state_dict:
            raise ValueError("state_dict must be a dict with 'state' and 'param_groups', as "
                             "returned by state_dict()")
        groups = state_dict["param_groups"]
        if len(groups) != 1:
            raise ValueError(f"loaded state dict has {len(groups)} parameter groups; this "
                             f"optimizer has 1")
        slots = self._slots()
        if len(groups[0].get("params", ())) != len(slots):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                f"optimizer's group: {len(groups[0].get('params', ()))} parameters, expected "
                f"{len(slots)}")
        shapes = {i: p for i, p, _ in slots}
        new_state = {}
        for key, entry in state_dict["state"].items():
            i = int(key)
            if i not in shapes:
                raise ValueError(f"loaded state refers to parameter {i}; this optimizer has "
                                 f"{len(slots)}")
            p = shapes[i]
            converted = {}
            for name, value in entry.items():
                if name == "step":
                    converted[name] = int(to_numpy(value, "step"))
                    continue
                if value is None:
                    continue
                arr = np.array(to_numpy(value, name), dtype=p.dtype, copy=True)
                if arr.shape != p.shape:
                    raise ValueError(f"state[{i}][{name!r}] has shape {shape_str(arr.shape)}, "
                                     f"the parameter has {shape_str(p.shape)}")
                converted[name] = arr
            new_state[i] = converted
        hyper = {k: v for k, v in groups[0].items() if k != "params"}
        checked = self._check_hyper(**{k: hyper.get(k, v)
                                       for k, v in self.param_groups[0].items()})
        self.param_groups[0].update(checked)
        self.state = new_state
        self._flat = None

    def _check_hyper(self, **hyper):
        raise NotImplementedError

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items())
        return f"{type(self).__name__}({items})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

    g = grad + weight_decay * p
    buf = g on the first step, else momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (nesterov) or buf (momentum > 0)
    p -= lr * g
    """

    _one_pass = False

    def __init__(self, modules: Modules, lr: float, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False) -> None:
        hyper = self._check_hyper(lr=lr, momentum=momentum, dampening=dampening,
                                  weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(modules, **hyper)

    def _check_hyper(self, lr, momentum, dampening, weight_decay, nesterov):
        lr = _number("learning rate", lr, message=f"Invalid learning rate: {lr}")
        momentum = _number("momentum", momentum)
        dampening = _number("dampening", dampening, minimum=-math.inf)
        weight_decay = _number("weight_decay", weight_decay)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov should be a bool, got {type(nesterov).__name__}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        return dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                    nesterov=bool(nesterov))

    def _update(self, p, g, state, hyper):
        t = p.dtype.type
        weight_decay, momentum = hyper["weight_decay"], hyper["momentum"]
        if weight_decay != 0:
            g = g + t(weight_decay) * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:  # the first step takes the gradient as it is
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
            else:
                buf *= t(momentum)
                buf += t(1 - hyper["dampening"]) * g
            if hyper["nesterov"]:
                g = g + t(momentum) * buf
            else:
                g = buf
        p -= t(hyper["lr"]) * g


class Adam(Optimizer):
    """Adam (Kingma and Ba), as torch.optim.Adam with amsgrad=False.

    g = grad + weight_decay * p
    m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    _decoupled = False

    def __init__(self, modules: Modules, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        hyper = self._check_hyper(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(modules, **hyper)

    def _check_hyper(self, lr, betas, eps, weight_decay):
        lr = _number("learning rate", lr, message=f"Invalid learning rate: {lr}")
        eps = _number("epsilon", eps, message=f"Invalid epsilon value: {eps}")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"betas should be a pair of numbers, got {betas!r}") from None
        beta1 = _number("beta1", beta1, maximum=1.0,
                        message=f"Invalid beta parameter at index 0: {beta1}")
        beta2 = _number("beta2", beta2, maximum=1.0,
                        message=f"Invalid beta parameter at index 1: {beta2}")
        weight_decay = _number("weight_decay", weight_decay)
        return dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay)

    def _update(self, p, g, state, hyper):
        t = p.dtype.type
        lr, (beta1, beta2), eps = hyper["lr"], hyper["betas"], hyper["eps"]
        weight_decay = hyper["weight_decay"]
        if "exp_avg" not in state:
            state["exp_avg"] = np.zeros_like(p)
            state["exp_avg_sq"] = np.zeros_like(p)
        step = state["step"] = state.get("step", 0) + 1
        if weight_decay != 0:
            if self._decoupled:
                p *= t(1 - lr * weight_decay)
            else:
                g = g + t(weight_decay) * p
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        # exp_avg.lerp_(g, 1 - beta1): a weight below 0.5 computes m + w * (g - m)
        w = t(1 - beta1)
        if w < 0.5:
            delta = g - exp_avg
            delta *= w
            exp_avg += delta
        else:
            delta = g - exp_avg
            delta *= t(1 - w)
            np.subtract(g, delta, out=exp_avg)
        exp_avg_sq *= t(beta2)
        square = t(1 - beta2) * g
        square *= g
        exp_avg_sq += square
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        denom = np.sqrt(exp_avg_sq)
        denom /= t(bias_correction2 ** 0.5)
        denom += t(eps)
        update = t(-step_size) * exp_avg
        update /= denom
        p += update


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW: p *= 1 - lr * weight_decay
    before the Adam update (which then sees the plain gradient)."""

    _decoupled = True

    def __init__(self, modules: Modules, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(modules, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm(modules: Modules, max_norm: float, norm_type: float | str = 2.0,
                   error_if_nonfinite: bool = False) -> np.floating[Any]:
    """Scale every gradient in place so that their joint norm is at most max_norm.

    As torch.nn.utils.clip_grad_norm_: the total norm is the norm of the
    per-array norms (norm_type may be inf: the largest absolute value); the
    gradients are multiplied by min(max_norm / (total_norm + 1e-6), 1).
    Returns the total norm before clipping.
    """
    modules = _modules_list(modules)
    max_norm = _number("max_norm", max_norm, minimum=-math.inf)
    try:
        norm_type = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"norm_type should be a number or 'inf', got {norm_type!r}") from None
    grads = []
    for k, m in enumerate(modules):
        for name in m.params:
            g = m.grads.get(name)
            if g is None:
                continue
            if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
                raise TypeError(f"modules[{k}].grads[{name!r}] must be a float NumPy array, "
                                f"got {type(g).__name__}")
            grads.append(g)
    if not grads:
        return np.float32(0.0)
    dtype = np.result_type(*grads)
    t = dtype.type
    norms = np.array([_vector_norm(g.reshape(-1), norm_type) for g in grads], dtype=dtype)
    total = t(_vector_norm(norms, norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the gradients "
            "by the non-finite norm anyway, set `error_if_nonfinite=False`")
    with np.errstate(divide="ignore", invalid="ignore"):
        clip_coef = t(max_norm) / (total + t(1e-6))
    clip_coef = min(clip_coef, t(1.0)) if not np.isnan(clip_coef) else clip_coef
    with np.errstate(invalid="ignore"):  # a non-finite norm scales by NaN, as in torch
        for g in grads:
            g *= g.dtype.type(clip_coef)
    return total


def _vector_norm(x, p):
    """torch.linalg.vector_norm of a 1-D array, in its dtype."""
    if x.size == 0:
        return x.dtype.type(0)
    if p == 2.0:
        return np.sqrt(np.dot(x, x))
    if p == math.inf:
        return np.abs(x).max()
    if p == -math.inf:
        return np.abs(x).min()
    if p == 0.0:
        return x.dtype.type(np.count_nonzero(x))
    if p == 1.0:
        return np.abs(x).sum()
    a = np.abs(x)
    return (a ** x.dtype.type(p)).sum() ** x.dtype.type(1.0 / p)
