"""A plain-NumPy model of frozen inference's bf16 and int8 arithmetic (gru_cy/kernels/rc_qgemm.h),
written from the definitions, independent of gru_cy's kernels.

- bf16_round: float32 -> the float32 value of its bfloat16 rounding (nearest, ties to even; NaN
  stays NaN; a subnormal becomes a zero of its sign).
- bf16_matmul(A, W): per output element, over pairs of k, c = ftz(fma(a[2p+1], w[2p+1], c)) then
  c = ftz(fma(a[2p], w[2p], c)), from c = 0 (vdpbf16ps's chain). A fused multiply-add in float32
  is computed here in float64: a product of two bfloat16 values (8-bit significands) is exact in
  float64, and its sum with a float32 is exact too unless the two are more than about 2**29 apart
  in magnitude; then the sum lies so close to the larger term (itself a float32) that rounding it
  first to float64 cannot put it on a float32 rounding tie, so rounding to float32 after float64
  gives the correctly rounded fused result either way.
- quantize_rows(X): per row, amax = max |x|; NaN or Inf in the row: integers 0 and scale NaN;
  amax < 127 * FLT_MIN: integers 0 and scale 0; else q = rint(x * float32(127 / amax)) in
  [-127, 127] and scale = float32(amax / 127), all in float32.
- int8_matmul(A, W): the integers' product exactly (int64 here), then
  float32(acc) * (scale_a[i] * scale_w[j]) in float32, in that order.
- step(...): one time step of each cell with every product replaced by one of these, the
  activations NumPy's, for comparing a frozen module step by step.
"""

import numpy as np

F32 = np.float32
TINY = np.finfo(np.float32).tiny


def bf16_bits(x):
    """The bfloat16 bits (uint16) of float32 values."""
    u = np.ascontiguousarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    mag = u & 0x7FFFFFFF
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    quiet = (u | 0x00400000) & 0xFFFF0000
    out = np.where(mag > 0x7F800000, quiet, rounded)
    out = np.where(mag < 0x00800000, u & 0x80000000, out)
    return (out >> 16).astype(np.uint16)


def bf16_round(x):
    """float32 values rounded to bfloat16, as float32."""
    return (bf16_bits(x).astype(np.uint32) << 16).view(F32)


def _ftz(x):
    return np.where(np.abs(x) < TINY, np.copysign(F32(0), x), x).astype(F32)


def bf16_matmul(A, W):
    """A (M, K) @ W (N, K).T with both rounded to bfloat16, vdpbf16ps's chain."""
    a = bf16_round(A).astype(np.float64)
    w = bf16_round(W).astype(np.float64)
    M, K = a.shape
    if K % 2:
        a = np.pad(a, ((0, 0), (0, 1)))
        w = np.pad(w, ((0, 0), (0, 1)))
    acc = np.zeros((M, w.shape[0]), F32)
    with np.errstate(invalid="ignore", over="ignore"):
        for p in range(a.shape[1] // 2):
            for k in (2 * p + 1, 2 * p):
                s = a[:, k][:, None] * w[:, k][None, :] + acc.astype(np.float64)
                acc = _ftz(s.astype(F32))
    return acc


def quantize_rows(X):
    """(q int8 (M, K), scale float32 (M,)) of each row of X."""
    X = np.asarray(X, dtype=F32)
    M = X.shape[0]
    q = np.zeros(X.shape, np.int8)
    scale = np.zeros(M, F32)
    for i in range(M):
        row = X[i]
        amax = np.max(np.abs(row)) if row.size else F32(0)
        if not np.all(np.isfinite(row)):
            scale[i] = np.nan
        elif amax >= F32(127) * F32(TINY):
            inv = F32(127) / F32(amax)
            q[i] = np.clip(np.rint(row * inv), -127, 127).astype(np.int8)
            scale[i] = F32(amax) / F32(127)
    return q, scale


def int8_matmul(A, W):
    """A (M, K) @ W (N, K).T with per-row int8 quantisation of both."""
    qa, sa = quantize_rows(A)
    qw, sw = quantize_rows(W)
    acc = qa.astype(np.int64) @ qw.astype(np.int64).T
    with np.errstate(invalid="ignore"):
        return acc.astype(F32) * (sa[:, None] * sw[None, :])


def matmul(precision):
    """The product A @ W.T of a precision."""
    return {"bf16": bf16_matmul, "int8": int8_matmul}[precision]


def _sigmoid(a):
    return F32(0.5) * (F32(1) + np.tanh(F32(0.5) * a))


def _act(name, a):
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, F32(0))
    if name == "sigmoid":
        return _sigmoid(a)
    return a


def step(module, precision, x, state):
    """One step of a one-layer unidirectional float32 module, its products at precision: x (B, I),
    state as the module's step takes it ((1, B, W) arrays) -> the new state."""
    mm = matmul(precision)
    p = module.params
    kind = type(module).__name__
    if kind == "Jordan":
        y = state[0][0]
        h = _act(module.nonlinearity, mm(x, p["weight_ih"]) + p.get("bias_ih", F32(0))
                 + mm(y, p["weight_yh"]))
        y = _act(module.output_activation, mm(h, p["weight_hy"]) + p.get("bias_hy", F32(0)))
        return (y[None],)
    b_ih = p.get("bias_ih_l0", F32(0))
    b_hh = p.get("bias_hh_l0", F32(0))
    H = module.hidden_size
    if kind == "LSTM":
        h, c = state[0][0], state[1][0]
        g = mm(x, p["weight_ih_l0"]) + b_ih + mm(h, p["weight_hh_l0"]) + b_hh
        i, f, gg, o = (g[:, k * H:(k + 1) * H] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
        m = _sigmoid(o) * np.tanh(c)
        h = mm(m, p["weight_hr_l0"]) if module.proj_size else m
        return (h[None], c[None])
    h = state[0][0]
    if kind == "RNN":
        a = mm(x, p["weight_ih_l0"]) + b_ih + mm(h, p["weight_hh_l0"]) + b_hh
        return (_act(module.nonlinearity, a)[None],)
    gi = mm(x, p["weight_ih_l0"]) + b_ih
    W_hh = p["weight_hh_l0"]
    b_hh = np.broadcast_to(b_hh, (3 * H,))
    gh = mm(h, W_hh[:2 * H]) + b_hh[:2 * H]
    r = _sigmoid(gi[:, :H] + gh[:, :H])
    z = _sigmoid(gi[:, H:2 * H] + gh[:, H:])
    if module.reset_after:
        n = np.tanh(gi[:, 2 * H:] + r * (mm(h, W_hh[2 * H:]) + b_hh[2 * H:]))
    else:
        n = np.tanh(gi[:, 2 * H:] + mm(r * h, W_hh[2 * H:]) + b_hh[2 * H:])
    return (((1 - z) * n + z * h)[None],)
