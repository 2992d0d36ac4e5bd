"""The GRU benchmark's cases: the shape grid, the extra rows and the step() row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GRID", "QUICK_GRID", "EXTRA_SHAPE", "STEP_SHAPE", "PEERS", "Case", "grid_cases",
           "extra_cases"]

GRID = [(1, 1, 64, 64), (50, 1, 32, 64), (100, 8, 64, 128), (100, 32, 128, 128),
        (100, 64, 256, 256), (50, 128, 512, 512)]
QUICK_GRID = [(1, 1, 64, 64), (50, 1, 32, 64), (100, 8, 64, 128), (100, 32, 128, 128)]
EXTRA_SHAPE = (100, 32, 128, 128)
STEP_SHAPE = (1, 64, 64)          # B, I, H of the step() latency row
PEERS = ("gru_cy", "numpy", "torch", "onnxruntime")



@dataclass
class Case:
    """One benchmark row: a GRU configuration and its input shape."""

    label: str
    T: int
    B: int
    I: int
    H: int
    dtype: str = "float32"
    num_layers: int = 1
    bidirectional: bool = False
    reset_after: bool = True
    varlen: bool = False
    modes: tuple = ("forward", "train")

    @property
    def D(self):
        return 2 if self.bidirectional else 1

    def lengths(self):
        """Variable lengths: spread over [T/2, T], the longest equal to T."""
        if not self.varlen:
            return None
        rng = np.random.default_rng(1)
        lengths = rng.integers(self.T // 2, self.T + 1, size=self.B)
        lengths[0] = self.T
        return lengths.astype(np.int64)

    def flops(self, mode):
        """2 * multiply-adds of the GEMMs (backward costs twice the forward)."""
        total = 0
        for k in range(self.num_layers):
            in_k = self.I if k == 0 else self.D * self.H
            total += self.D * 2 * self.T * self.B * 3 * self.H * (in_k + self.H)
        return total * (3 if mode == "train" else 1)


def grid_cases(grid):
    return [Case(f"T={T} B={B} I={I} H={H}", T, B, I, H) for T, B, I, H in grid]


def extra_cases():
    T, B, I, H = EXTRA_SHAPE
    shape = f"T={T} B={B} I={I} H={H}"
    return [
        Case(f"{shape} float64", T, B, I, H, dtype="float64"),
        Case(f"{shape} bidirectional", T, B, I, H, bidirectional=True),
        Case(f"{shape} 2 layers", T, B, I, H, num_layers=2),
        Case(f"{shape} reset_after=False", T, B, I, H, reset_after=False),
        Case(f"{shape} variable lengths", T, B, I, H, varlen=True),
    ]
