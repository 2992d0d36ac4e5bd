"""Sliding windows shared by Conv and the pooling operators: geometry, padding, views."""

from __future__ import annotations

import numpy as np


def window_geometry(spatial, kernel, strides, dilations, pads, auto_pad, ceil_mode=False):
    """(output sizes, pads begin + end) of a sliding window, as Conv and the pools define them.

    With ceil_mode a last, partial window is kept if it starts inside the input or its
    leading padding.
    """
    nd = len(kernel)
    span = [(kernel[i] - 1) * dilations[i] + 1 for i in range(nd)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-spatial[i] // strides[i]) for i in range(nd)]
        total = [max((out[i] - 1) * strides[i] + span[i] - spatial[i], 0) for i in range(nd)]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        pads = small + big if auto_pad == "SAME_UPPER" else big + small
        return out, pads
    if auto_pad == "VALID":
        pads = [0] * (2 * nd)
    out = []
    for i in range(nd):
        room = spatial[i] + pads[i] + pads[i + nd] - span[i]
        n = (-(-room // strides[i]) if ceil_mode else room // strides[i]) + 1
        if ceil_mode and (n - 1) * strides[i] >= spatial[i] + pads[i]:
            n -= 1
        out.append(n)
    return out, list(pads)


def conv_output_shape(spatial, kernel, strides, dilations, pads):
    """Output sizes of a convolution or pooling window over padded inputs (may be <= 0)."""
    nd = len(kernel)
    return [(spatial[i] + pads[i] + pads[i + nd] - ((kernel[i] - 1) * dilations[i] + 1))
            // strides[i] + 1 for i in range(nd)]


def pad_spatial(x, pads, fill=0, channels_last=False):
    """x (N, C, *spatial) padded on its spatial axes by pads (begin..., end...) of fill;
    with channels_last the result is laid out (N, *padded, C)."""
    nd = x.ndim - 2
    inner = tuple(slice(pads[i], pads[i] + x.shape[2 + i]) for i in range(nd))
    padded = tuple(x.shape[2 + i] + pads[i] + pads[i + nd] for i in range(nd))
    if channels_last:
        shape = (x.shape[0],) + padded + (x.shape[1],)
        index = (slice(None),) + inner + (slice(None),)
        src = x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
    else:
        shape, index, src = x.shape[:2] + padded, (slice(None), slice(None)) + inner, x
    if not any(pads):
        return np.ascontiguousarray(src)
    out = np.full(shape, fill, dtype=x.dtype) if fill else np.zeros(shape, dtype=x.dtype)
    out[index] = src
    return out


def shifted_views(kernel, strides, dilations, out, first=2):
    """For each kernel position (row-major), the index of the view of a padded input that
    position reads for every output: the spatial axes start at axis ``first`` (2 for
    (N, C, *spatial), 1 for channels-last (N, *spatial, C)) and become ``out``."""
    nd = len(kernel)
    lead = (slice(None),) * first
    return [lead + tuple(
        slice(offset[i] * dilations[i],
              offset[i] * dilations[i] + (out[i] - 1) * strides[i] + 1, strides[i])
        for i in range(nd)) for offset in np.ndindex(*kernel)]


