"""Cases for the training toolkit (layers, losses, optimisers) and their torch results.

Run from anywhere:  python tests/make_golden_toolkit.py
It writes tests/golden/toolkit_layers.npz, toolkit_losses.npz and toolkit_optim.npz
with torch. The tests (test_layers.py, test_losses.py, test_optim.py) import the case
tables and input builders from here: they compare gru_cy with the stored files always,
and with torch itself when torch is installed. Torch is imported only inside the
functions that need it.

Each file holds plain arrays (allow_pickle=False) named "<case>__<array>", plus
"config": a 0-d str array of JSON {case name: case dict, "torch_version": ...}.
Inputs are stored too, so the tests need no random generator to agree with the file.
"""

import json
import os

import numpy as np

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
SEP = "__"

# ---------------------------------------------------------------------------
# cases

LAYER_CASES = {
    "linear_2d": dict(kind="Linear", in_features=5, out_features=3, bias=True, x_shape=(4, 5)),
    "linear_3d_nobias": dict(kind="Linear", in_features=4, out_features=6, bias=False,
                             x_shape=(3, 2, 4)),
    "linear_1d": dict(kind="Linear", in_features=7, out_features=2, bias=True, x_shape=(7,)),
    "embedding_2d": dict(kind="Embedding", num_embeddings=9, embedding_dim=4, padding_idx=None,
                         ids_shape=(5, 3)),
    "embedding_pad": dict(kind="Embedding", num_embeddings=6, embedding_dim=3, padding_idx=-1,
                          ids_shape=(4, 6)),
    "embedding_1d_pad0": dict(kind="Embedding", num_embeddings=5, embedding_dim=2, padding_idx=0,
                              ids_shape=(12,)),
}

# logits shape, target ("index" or "prob"), weight, label_smoothing, reduction, ignore_index
# (an ignore_index that is not None is also written into a few targets).
LOSS_CASES = {}
for _shape_name, _shape in (("1d", (5,)), ("2d", (6, 4)), ("4d", (3, 4, 2, 3))):
    for _target in ("index", "prob"):
        for _weighted in (False, True):
            for _ls in (0.0, 0.25):
                for _red in ("mean", "sum", "none"):
                    _ignore = None
                    if _target == "index" and _shape_name != "1d":
                        _ignore = -100 if not _weighted else 1
                    name = (f"ce_{_shape_name}_{_target}_{'w' if _weighted else 'nw'}"
                            f"_ls{int(_ls * 100)}_{_red}")
                    LOSS_CASES[name] = dict(kind="cross_entropy", shape=_shape, target=_target,
                                            weighted=_weighted, label_smoothing=_ls,
                                            reduction=_red, ignore_index=_ignore)
for _red in ("mean", "sum", "none"):
    LOSS_CASES[f"mse_{_red}"] = dict(kind="mse", shape=(4, 3, 2), reduction=_red)

OPTIM_CASES = {
    "sgd_plain": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9)),
    "sgd_dampening_wd": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    "sgd_nesterov_wd": ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05)),
    "sgd_wd_only": ("SGD", dict(lr=0.1, weight_decay=0.1)),
    "adam_default": ("Adam", dict()),
    "adam_lr_betas_eps": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    "adam_wd": ("Adam", dict(lr=0.01, weight_decay=0.1)),
    "adamw_default": ("AdamW", dict(lr=0.01)),
    "adamw_wd_betas": ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.3, eps=1e-7)),
}
OPTIM_STEPS = 100
DTYPES = ("float64", "float32")


# ---------------------------------------------------------------------------
# inputs (deterministic from the case name)


def _seed(name):
    return sum((i + 1) * ord(c) for i, c in enumerate(name))


def layer_inputs(name, dtype):
    """Parameters (torch-shaped), input and upstream gradient for a layer case."""
    case = LAYER_CASES[name]
    rng = np.random.default_rng(_seed(name))
    if case["kind"] == "Linear":
        I, O = case["in_features"], case["out_features"]
        params = {"weight": rng.uniform(-1, 1, (O, I)).astype(dtype)}
        if case["bias"]:
            params["bias"] = rng.uniform(-1, 1, (O,)).astype(dtype)
        x = rng.standard_normal(case["x_shape"]).astype(dtype)
        dout = rng.standard_normal(case["x_shape"][:-1] + (O,)).astype(dtype)
        return params, x, dout
    N, D = case["num_embeddings"], case["embedding_dim"]
    weight = rng.standard_normal((N, D)).astype(dtype)
    if case["padding_idx"] is not None:
        weight[case["padding_idx"]] = 0
    ids = rng.integers(0, N, case["ids_shape"])
    ids.flat[:2] = ids.flat[2]  # repeated ids must add up
    if case["padding_idx"] is not None:
        ids.flat[-1] = case["padding_idx"] % N  # the padding row must get no gradient
    dout = rng.standard_normal(case["ids_shape"] + (D,)).astype(dtype)
    return {"weight": weight}, ids, dout


def loss_inputs(name, dtype):
    """(prediction, target, weight or None) for a loss case."""
    case = LOSS_CASES[name]
    rng = np.random.default_rng(_seed(name))
    shape = case["shape"]
    z = (3 * rng.standard_normal(shape)).astype(dtype)
    if case["kind"] == "mse":
        return z, rng.standard_normal(shape).astype(dtype), None
    C = shape[0] if len(shape) == 1 else shape[1]
    if case["target"] == "prob":
        p = rng.random(shape)
        axis = 0 if len(shape) == 1 else 1
        target = (p / p.sum(axis=axis, keepdims=True)).astype(dtype)
    else:
        sample_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        target = rng.integers(0, C, sample_shape)
        if case["ignore_index"] is not None:
            target.flat[::3] = case["ignore_index"]
    weight = rng.uniform(0.2, 2.0, C).astype(dtype) if case["weighted"] else None
    return z, target, weight


def loss_kwargs(name):
    case = LOSS_CASES[name]
    if case["kind"] == "mse":
        return dict(reduction=case["reduction"])
    kw = dict(label_smoothing=case["label_smoothing"], reduction=case["reduction"])
    if case["ignore_index"] is not None:
        kw["ignore_index"] = case["ignore_index"]
    return kw


def optim_start(name, dtype):
    """Two modules' worth of starting parameters and the gradient sequence:
    ({"a.w": ..., "a.b": ..., "b.w": ...}, [same keys -> gradient] * OPTIM_STEPS)."""
    rng = np.random.default_rng(_seed(name))
    shapes = {"a.w": (4, 3), "a.b": (4,), "b.w": (2, 5)}
    start = {k: rng.uniform(-1, 1, s).astype(dtype) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
             for _ in range(OPTIM_STEPS)]
    return start, grads


# ---------------------------------------------------------------------------
# torch results


def _torch_dtype(torch, dtype):
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def torch_layer(name, dtype):
    """{out, dx (Linear only), grad_<param>} from torch for a layer case."""
    import torch

    case = LAYER_CASES[name]
    tdt = _torch_dtype(torch, dtype)
    params, x, dout = layer_inputs(name, dtype)
    if case["kind"] == "Linear":
        m = torch.nn.Linear(case["in_features"], case["out_features"], bias=case["bias"])
        m = m.to(tdt)
        m.load_state_dict({k: torch.tensor(v) for k, v in params.items()})
        xt = torch.tensor(x, requires_grad=True)
        out = m(xt)
        out.backward(torch.tensor(dout))
        res = {"out": out.detach().numpy(), "dx": xt.grad.numpy()}
    else:
        m = torch.nn.Embedding(case["num_embeddings"], case["embedding_dim"],
                               padding_idx=case["padding_idx"]).to(tdt)
        m.load_state_dict({"weight": torch.tensor(params["weight"])})
        out = m(torch.tensor(ids_to_int64(x)))
        out.backward(torch.tensor(dout))
        res = {"out": out.detach().numpy()}
    for k, p in m.named_parameters():
        res["grad_" + k] = p.grad.numpy()
    return res


def ids_to_int64(ids):
    return np.asarray(ids, dtype=np.int64)


def torch_loss(name, dtype):
    """{loss, grad} from torch.nn.functional for a loss case (grad of loss.sum())."""
    import torch
    import torch.nn.functional as F

    case = LOSS_CASES[name]
    z, target, weight = loss_inputs(name, dtype)
    zt = torch.tensor(z, requires_grad=True)
    tt = torch.tensor(target)
    if case["kind"] == "mse":
        loss = F.mse_loss(zt, tt, reduction=case["reduction"])
    else:
        kw = loss_kwargs(name)
        loss = F.cross_entropy(zt, tt, None if weight is None else torch.tensor(weight), **kw)
    loss.sum().backward()
    return {"loss": np.asarray(loss.detach().numpy()), "grad": zt.grad.numpy()}


def torch_optim(name, dtype):
    """The parameters after OPTIM_STEPS torch.optim steps: {"a.w": ..., ...}."""
    import torch

    cls_name, kw = OPTIM_CASES[name]
    start, grads = optim_start(name, dtype)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in start.items()}
    opt = getattr(torch.optim, cls_name)(list(params.values()), **kw)
    for g in grads:
        for k, p in params.items():
            p.grad = torch.tensor(g[k])
        opt.step()
    return {k: p.detach().numpy() for k, p in params.items()}


# ---------------------------------------------------------------------------
# files


def golden_path(kind):
    return os.path.join(GOLDEN_DIR, f"toolkit_{kind}.npz")


def load_golden(kind):
    """({(case, dtype): {array name: array}}, config) from a stored file."""
    with np.load(golden_path(kind), allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    config = json.loads(str(arrays.pop("config")))
    cases = {}
    for key, arr in arrays.items():
        case, dtype, field = key.split(SEP)
        cases.setdefault((case, dtype), {})[field] = arr
    return cases, config


def _write(kind, table, compute):
    import torch

    arrays = {}
    for name in table:
        for dtype in DTYPES:
            for field, arr in compute(name, dtype).items():
                arrays[SEP.join((name, dtype, field))] = np.asarray(arr)
    config = {"torch_version": torch.__version__, "cases": {k: table[k] for k in table}}
    arrays["config"] = np.array(json.dumps(config))
    os.makedirs(GOLDEN_DIR, exist_ok=True)
    np.savez_compressed(golden_path(kind), **arrays)
    print(golden_path(kind), len(arrays) - 1, "arrays")


def main():
    _write("layers", LAYER_CASES, torch_layer)
    _write("losses", LOSS_CASES, torch_loss)
    _write("optim", OPTIM_CASES, torch_optim)


if __name__ == "__main__":
    main()
