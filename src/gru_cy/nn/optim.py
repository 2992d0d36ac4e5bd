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

import numpy as np

from gru_cy.nn.base import shape_str, to_numpy


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
    """What every optimiser shares: the parameter list, zero_grad, state_dict."""

    _defaults = {}

    def __init__(self, modules, **hyper):
        self.modules = _modules_list(modules)
        self.param_groups = [dict(hyper)]
        self.state = {}  # flat parameter index -> {name: array or number}

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

    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        self.param_groups[0]["lr"] = _number("learning rate", value,
                                             message=f"Invalid learning rate: {value}")

    def zero_grad(self):
        """Zero every module's gradients in place (backward adds into them)."""
        for m in self.modules:
            m.zero_grad()

    def state_dict(self):
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}, copies."""
        state = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                 for i, s in self.state.items()}
        n = sum(len(m.params) for m in self.modules)
        groups = [dict(g, params=list(range(n))) for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Resume from ``state_dict()`` (arrays may also be torch tensors)."""
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
                arr = np.array(to_numpy(value, name), dtype=p.dtype, copy=True)
                if arr.shape != p.shape:
                    raise ValueError(f"state[{i}][{name!r}] has shape {shape_str(arr.shape)}, "
                                     f"the parameter has {shape_str(p.shape)}")
                converted[name] = arr
            new_state[i] = converted
        hyper = {k: v for k, v in groups[0].items() if k != "params"}
        self._check_hyper(**{k: hyper.get(k, v) for k, v in self.param_groups[0].items()})
        self.param_groups[0].update({k: hyper[k] for k in self.param_groups[0] if k in hyper})
        self.state = new_state

    def _check_hyper(self, **hyper):
        raise NotImplementedError

    def __repr__(self):
        items = ", ".join(f"{k}={v!r}" for k, v in self.param_groups[0].items())
        return f"{type(self).__name__}({items})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

    g = grad + weight_decay * p
    buf = g on the first step, else momentum * buf + (1 - dampening) * g
    g = g + momentum * buf (nesterov) or buf (momentum > 0)
    p -= lr * g
    """

    def __init__(self, modules, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
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

    def step(self):
        """One update of every parameter with a gradient, in place."""
        h = self.param_groups[0]
        lr, momentum, dampening = h["lr"], h["momentum"], h["dampening"]
        weight_decay, nesterov = h["weight_decay"], h["nesterov"]
        for i, p, g in self._slots():
            if g is None:
                continue
            t = p.dtype.type
            if weight_decay != 0:
                g = g + t(weight_decay) * p
            if momentum != 0:
                state = self.state.setdefault(i, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype, copy=True)
                else:
                    buf *= t(momentum)
                    buf += t(1 - dampening) * g
                if nesterov:
                    g = g + t(momentum) * buf
                else:
                    g = buf
            p -= t(lr) * g


class Adam(Optimizer):
    """Adam (Kingma and Ba), as torch.optim.Adam with amsgrad=False.

    g = grad + weight_decay * p
    m = m + (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
    p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    _decoupled = False

    def __init__(self, modules, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
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

    def step(self):
        """One update of every parameter with a gradient, in place."""
        h = self.param_groups[0]
        lr, (beta1, beta2), eps, weight_decay = h["lr"], h["betas"], h["eps"], h["weight_decay"]
        for i, p, g in self._slots():
            if g is None:
                continue
            t = p.dtype.type
            state = self.state.get(i)
            if state is None:
                state = self.state[i] = {"step": 0, "exp_avg": np.zeros_like(p),
                                         "exp_avg_sq": np.zeros_like(p)}
            state["step"] += 1
            step = state["step"]
            if weight_decay != 0:
                if self._decoupled:
                    p *= t(1 - lr * weight_decay)
                else:
                    g = g + t(weight_decay) * p
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            # exp_avg.lerp_(g, 1 - beta1): weight below 0.5 computes m + w * (g - m)
            w = t(1 - beta1)
            if w < 0.5:
                exp_avg += w * (g - exp_avg)
            else:
                exp_avg[...] = g - (g - exp_avg) * t(1 - w)
            exp_avg_sq *= t(beta2)
            exp_avg_sq += t(1 - beta2) * g * g
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

    def __init__(self, modules, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(modules, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm(modules, max_norm, norm_type=2.0, error_if_nonfinite=False):
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
