"""Side-by-side benchmark: gru_cy against NumPy, PyTorch and ONNX Runtime.

``python -m gru_cy bench [--quick] [--threads N ...] [--out results.json]``
calls :func:`run_cli`; ``benchmarks/run_bench.py`` runs the full grid and
draws the plot. Every peer gets the same weights and the same inputs, runs
in this one process, and is pinned to the same number of threads
(``gru_cy.set_num_threads`` for gru_cy's kernels, threadpoolctl for the
BLAS libraries, ``torch.set_num_threads``, ONNX
Runtime ``intra_op_num_threads`` with ``inter_op_num_threads = 1``).
Peers that are not installed are skipped with a note. The peers take
turns call by call, so that a noisy machine slows all of them alike, and
each one's median time is reported.

Per row: median seconds, GF/s (2 flops per multiply-add of the GEMMs a GRU
needs, gate math not counted), each peer's time divided by gru_cy's, and the
share of the machine's peak the row runs at: its GF/s divided by one core's
float32 multiply-add peak (``core_peak``, from
``gru_cy.kernels._core.fma_peak`` with the kernels' instruction set,
measured once per run and recorded in the environment) times the threads
(float64 rows: half that peak). No implementation reaches 100%. The
environment also records gru_cy's instruction set, backend and threads, and
OPENBLAS_CORETYPE.

The package, by concern; the names below are its public surface, which the
scripts in benchmarks/ use:

- ``cases``: the shape grid and the GRU cases;
- ``timing``: thread pinning (``Threads``), the interleaved timer
  (``time_interleaved``, ``time_peers``), how busy the machine is;
- ``peers``: the GRU peers, the ONNX models, which peers are installed;
- ``report``: the environment, the peak (``core_peak``, ``peak_share``) and
  the tables (text, Markdown);
- ``runner``: the GRU benchmark itself (``run``, ``run_cli``).

Imported only by the ``bench`` command and the benchmark scripts; NumPy is
the only dependency, the peers are imported when present.
"""

from gru_cy.bench.cases import (
    EXTRA_SHAPE, GRID, PEERS, QUICK_GRID, STEP_SHAPE, Case, extra_cases, grid_cases,
)
from gru_cy.bench.peers import (
    GruCyPeer, NumpyPeer, OrtPeer, TorchPeer, Unsupported, available_peers, onnx_gru_model,
    ort_session, torch_onnx_model,
)
from gru_cy.bench.report import (
    core_peak, cpu_name, describe_run, environment, fmt_seconds, fmt_share, format_markdown,
    format_table, peak_share, print_report, scipy_blas, write_results,
)
from gru_cy.bench.runner import make_inputs, run, run_case, run_cli, run_step
from gru_cy.bench.timing import (
    Threads, blas_threads_controllable, busy_fraction, time_interleaved, time_peers,
    wait_until_quiet,
)

__all__ = [
    "EXTRA_SHAPE", "GRID", "PEERS", "QUICK_GRID", "STEP_SHAPE", "Case", "extra_cases",
    "grid_cases", "GruCyPeer", "NumpyPeer", "OrtPeer", "TorchPeer", "Unsupported",
    "available_peers", "onnx_gru_model", "ort_session", "torch_onnx_model",
    "core_peak", "cpu_name", "describe_run", "environment", "fmt_seconds", "fmt_share",
    "format_markdown", "format_table", "peak_share", "print_report", "scipy_blas",
    "write_results", "make_inputs", "run", "run_case", "run_cli", "run_step", "Threads",
    "blas_threads_controllable", "busy_fraction", "time_interleaved", "time_peers",
    "wait_until_quiet",
]
