"""InferenceSession: a whole ONNX model run on NumPy and gru_cy, with ONNX Runtime's call shape.

    sess = gru_cy.InferenceSession("model.onnx")
    probs, h = sess.run(None, {"tokens": ids, "h0": h0})

Loading decodes the file with gru_cy's bounded reader, plans the graph (order,
constants folded, every node checked and its kernel built) and raises there
for anything it cannot run: NotImplementedError naming the node, operator and
attribute, ValueError for a malformed or hostile file. ``run`` checks the
feeds (names, types, ranks, fixed dimensions: ValueError naming the input),
then calls the plan specialised to the feeds' shapes, made by the first run
with those shapes (see runtime._compile).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from typing import IO, Any, Sequence

import numpy as np

from gru_cy.io.onnx.codec import ONNX_BFLOAT16, ONNX_NUMPY, Corrupt, read_source
from gru_cy.runtime import ops  # noqa: F401  (fills the operator table)
from gru_cy.runtime._compile import specialize, tensor_limit
from gru_cy.runtime._model import ModelDef
from gru_cy.runtime._plan import Planner, _Values, run_steps
from gru_cy.runtime._precision import check_precision

__all__ = ["InferenceSession", "NodeArg"]

# Specialisations kept per session (one per set of input shapes; least recently used
# dropped first).
MAX_SPECIALIZATIONS = 32


class NodeArg:
    """A graph input or output: ``name``, ``shape`` (ints, str for symbolic dimensions,
    None for unknown ones) and ``type`` ("tensor(float)", ...), as ONNX Runtime's."""

    __slots__ = ("name", "shape", "type")

    def __init__(self, name, shape, type):
        self.name, self.shape, self.type = name, shape, type

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


class _Input:
    __slots__ = ("name", "dtype", "dims", "fixed", "rank")

    def __init__(self, vi):
        self.name = vi.name
        code = vi.elem_type
        if code == 8:
            raise NotImplementedError(f"graph input {vi.name!r} is a string tensor; "
                                      f"gru_cy.InferenceSession runs numeric tensors")
        if code == ONNX_BFLOAT16:
            raise NotImplementedError(f"graph input {vi.name!r} is a bfloat16 tensor, which "
                                      f"NumPy has no type for")
        self.dtype = np.dtype(ONNX_NUMPY[code]).newbyteorder("=") if code in ONNX_NUMPY \
            else None
        self.dims = vi.dims
        self.rank = None if vi.dims is None else len(vi.dims)
        self.fixed = None if vi.dims is None else [
            (i, d) for i, d in enumerate(vi.dims) if isinstance(d, int) and d >= 0]


class InferenceSession:
    """Run an ONNX model: ``run(output_names, input_feed)`` -> list of arrays.

    ``path_or_bytes``: a path, a file object or the model's bytes (external data
    is read from the model's folder, so give a path for such models).
    ``precision``: "fp32"; "bf16" or "int8" run the recurrent nodes on frozen
    modules of that precision (module.freeze; float32 models). The options ONNX Runtime's constructor takes (``sess_options``,
    ``providers``, ``provider_options``) are accepted and ignored, so that a
    script switches by changing its import; an ONNX Runtime SessionOptions
    object given positionally is taken for sess_options.
    """

    def __init__(self, path_or_bytes: str | os.PathLike[str] | bytes | IO[bytes],
                 precision: Any = "fp32", providers: Sequence[Any] | None = None,
                 sess_options: Any = None, provider_options: Any = None,
                 **kwargs: Any) -> None:
        if not isinstance(precision, str):   # ort.InferenceSession(path, SessionOptions())
            precision = "fp32"
        self._precision = check_precision(precision)
        data, source, base_dir = read_source(path_or_bytes)
        self._source = source
        try:
            model = ModelDef(data)
            self._plan = Planner(model, base_dir, len(data), precision).plan(model.graph)
        except Corrupt as exc:
            raise ValueError(f"{source} is not a readable ONNX model: {exc}") from exc
        except RecursionError:
            raise ValueError(f"{source} is not a readable ONNX model: nested too deeply") \
                from None
        plan = self._plan
        self._model_bytes = plan.limits.model_bytes
        self._inputs = [_Input(vi) for vi, _ in plan.inputs]
        self._input_index = {inp.name: k for k, inp in enumerate(self._inputs)}
        self._output_index = {vi.name: k for k, (vi, _) in enumerate(plan.outputs)}
        if len(self._output_index) != len(plan.outputs):
            raise ValueError(f"{source} is not a readable ONNX model: an output is listed twice")
        self._input_args = [NodeArg(vi.name, _shape(vi.dims), vi.type_name)
                            for vi, _ in plan.inputs]
        self._output_args = [NodeArg(vi.name, _shape(vi.dims), vi.type_name)
                             for vi, _ in plan.outputs]
        self._specialized = OrderedDict()
        self._selections = {}

    # -- ONNX Runtime's surface ------------------------------------------------------

    def get_inputs(self) -> list[NodeArg]:
        return list(self._input_args)

    def get_outputs(self) -> list[NodeArg]:
        return list(self._output_args)

    def get_overridable_initializers(self) -> list[NodeArg]:
        return []

    def get_providers(self) -> list[str]:
        return ["gru_cy"]

    @property
    def precision(self) -> str:
        return self._precision

    def run(self, output_names: Sequence[str] | None,
            input_feed: dict[str, Any], run_options: Any = None) -> list[np.ndarray]:
        """The outputs named (all, for None or an empty list), in that order."""
        feeds = self._check_feeds(input_feed)
        selection = self._select(output_names) if output_names else None
        key = tuple([a.shape for a in feeds])
        compiled = self._specialized.get(key)
        if compiled is None:
            outputs = self._first_run(key, feeds)
        else:
            try:
                outputs = compiled.run(*feeds)
            except Exception as exc:  # noqa: BLE001  (named by the checked walk below)
                outputs = self._checked_run(feeds, exc)
        if selection is None:
            return list(outputs)
        return [outputs[k] for k in selection]

    # -- internals -------------------------------------------------------------------------

    def _first_run(self, key, feeds):
        compiled, outputs = specialize(self._plan, feeds,
                                       tensor_limit(self._model_bytes, feeds))
        self._specialized[key] = compiled
        if len(self._specialized) > MAX_SPECIALIZATIONS:
            self._specialized.popitem(last=False)
        return outputs

    def _checked_run(self, feeds, exc):
        """Rerun step by step after the specialised function raised exc, so that the
        failure is reported as a ValueError naming its node."""
        inputs = [internal for _, internal in self._plan.inputs]
        values = run_steps(self._plan.steps, _Values(self._plan.consts,
                                                     dict(zip(inputs, feeds))))
        # The step-by-step walk did not fail where the specialised function did: give its
        # results, and plan these shapes again next time.
        self._specialized.pop(tuple(a.shape for a in feeds), None)
        return [np.array(values[o], copy=True) for _, o in self._plan.outputs]

    def _select(self, output_names):
        key = tuple(output_names) if not isinstance(output_names, str) else None
        if key is None:
            raise TypeError(f"output_names must be a list of names or None, got "
                            f"{output_names!r}")
        selection = self._selections.get(key)
        if selection is None:
            missing = [n for n in key if n not in self._output_index]
            if missing:
                raise ValueError(f"unknown output name(s) {missing}; the model's outputs are "
                                 f"{list(self._output_index)}")
            selection = self._selections[key] = [self._output_index[n] for n in key]
        return selection

    def _check_feeds(self, input_feed):
        if not isinstance(input_feed, dict):
            raise TypeError(f"input_feed must be a dict of input name -> array, got "
                            f"{type(input_feed).__name__}")
        if len(input_feed) != len(self._inputs):
            self._feed_names(input_feed)
        feeds = []
        for inp in self._inputs:
            value = input_feed.get(inp.name)
            if type(value) is not np.ndarray:
                if value is None:
                    self._feed_names(input_feed)
                value = self._as_array(inp, value)
            if value.dtype != inp.dtype and inp.dtype is not None:
                raise ValueError(f"input {inp.name!r}: expected {_type_words(inp.dtype)}, got "
                                 f"{_type_words(value.dtype)}")
            if inp.fixed is not None:
                if value.ndim != inp.rank:
                    raise ValueError(f"input {inp.name!r}: expected a {inp.rank}-D tensor "
                                     f"of shape {_shape(inp.dims)}, got shape {value.shape}")
                for i, d in inp.fixed:
                    if value.shape[i] != d:
                        raise ValueError(f"input {inp.name!r}: expected shape "
                                         f"{_shape(inp.dims)}, got {value.shape} (axis {i} "
                                         f"must be {d})")
            feeds.append(value)
        return feeds

    def _feed_names(self, input_feed):
        expected = set(self._input_index)
        unknown = [n for n in input_feed if n not in expected]
        missing = [n for n in self._input_index if input_feed.get(n) is None]
        if unknown:
            raise ValueError(f"unknown input name(s) {unknown}; the model's inputs are "
                             f"{list(self._input_index)}")
        if missing:
            raise ValueError(f"missing input(s) {missing}; the model's inputs are "
                             f"{list(self._input_index)}")

    @staticmethod
    def _as_array(inp, value):
        if isinstance(value, np.ndarray):   # a subclass
            return np.asarray(value)
        try:
            return np.asarray(value, dtype=inp.dtype)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input {inp.name!r}: cannot be read as an array of "
                             f"{_type_words(inp.dtype)} ({exc})") from None

    def __repr__(self):
        return (f"InferenceSession({self._source!r}, inputs={[a.name for a in self._input_args]}"
                f", outputs={[a.name for a in self._output_args]})")


def _shape(dims):
    return None if dims is None else [d if isinstance(d, (int, str)) else None for d in dims]


def _type_words(dtype):
    if dtype is None:
        return "any type"
    from gru_cy.runtime._model import TYPE_NAMES

    codes = {np.dtype(v).newbyteorder("="): k for k, v in ONNX_NUMPY.items() if k != 16}
    code = codes.get(np.dtype(dtype))
    return f"tensor({TYPE_NAMES[code]}) ({np.dtype(dtype).name})" if code else \
        f"{np.dtype(dtype).name} (no ONNX type)"
