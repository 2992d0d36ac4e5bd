"""Streaming: a model whose recurrent state is a graph input and a graph output.

Exported for streaming, a recurrent model takes its state as inputs (h0, and c0
for an LSTM) and returns the final state as outputs; feeding each call the
previous call's final state runs a long sequence chunk by chunk, with the
results of one call over the whole sequence::

    stream = Stream(sess, {"h0": "h_n"})            # state input -> state output
    for chunk in chunks:
        (probs,) = stream.run(["probs"], {"tokens": chunk})
    stream.reset()                                  # the next sequence starts from zeros

The state starts as ``initial`` (a dict input name -> array) or zeros of the
state input's declared shape, its symbolic dimensions read from the other
inputs' shapes (``batch`` in ``h0: [1, "batch", 64]`` is the size of the axis
named ``batch`` of an input fed to the call).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["Stream"]


class Stream:
    """Run ``session`` call after call, each call fed the state the previous one returned."""

    def __init__(self, session: Any, state: Mapping[str, str],
                 initial: Mapping[str, Any] | None = None) -> None:
        inputs = {a.name: a for a in session.get_inputs()}
        outputs = {a.name for a in session.get_outputs()}
        if not state:
            raise ValueError("state must map at least one state input to its output")
        for name, out in state.items():
            if name not in inputs:
                raise ValueError(f"state input {name!r} is not an input of the model (its "
                                 f"inputs: {list(inputs)})")
            if out not in outputs:
                raise ValueError(f"state output {out!r} is not an output of the model (its "
                                 f"outputs: {sorted(outputs)})")
        self.session = session
        self.pairs = dict(state)
        self._inputs = inputs
        self._all = [a.name for a in session.get_outputs()]
        self.state: dict[str, np.ndarray] = {}
        self.reset(initial)

    def reset(self, initial: Mapping[str, Any] | None = None) -> None:
        """Start a new sequence: from ``initial``, or zeros."""
        initial = dict(initial or {})
        unknown = [n for n in initial if n not in self.pairs]
        if unknown:
            raise ValueError(f"initial gives {unknown}, which are not state inputs "
                             f"({list(self.pairs)})")
        self.state = {n: np.asarray(v) for n, v in initial.items()}

    def _zeros(self, name, feed):
        arg = self._inputs[name]
        if arg.shape is None:
            raise ValueError(f"state input {name!r} has no declared shape; give its first "
                             f"value with initial=")
        sizes = {}
        for other, value in feed.items():
            dims = self._inputs[other].shape if other in self._inputs else None
            for d, n in zip(dims or (), np.shape(value)):
                if isinstance(d, str):
                    sizes.setdefault(d, n)
        shape = []
        for d in arg.shape:
            if isinstance(d, int):
                shape.append(d)
            elif isinstance(d, str) and d in sizes:
                shape.append(sizes[d])
            else:
                raise ValueError(f"state input {name!r} has shape {arg.shape}: the size of "
                                 f"{d!r} is not known from the other inputs; give the first "
                                 f"state with initial=")
        dtype = {"tensor(double)": np.float64, "tensor(float16)": np.float16}.get(arg.type,
                                                                                  np.float32)
        return np.zeros(shape, dtype)

    def run(self, output_names: Sequence[str] | None,
            input_feed: Mapping[str, Any]) -> list[np.ndarray]:
        """session.run with the state inputs filled in; the state outputs are kept."""
        given = [n for n in input_feed if n in self.pairs]
        if given:
            raise ValueError(f"{given} are state inputs, which the stream feeds itself")
        feed = dict(input_feed)
        for name in self.pairs:
            value = self.state.get(name)
            feed[name] = value if value is not None else self._zeros(name, input_feed)
        wanted = list(output_names) if output_names else list(self._all)
        extra = [o for o in self.pairs.values() if o not in wanted]
        results = self.session.run(wanted + extra, feed)
        by_name = dict(zip(wanted + extra, results))
        for name, out in self.pairs.items():
            self.state[name] = by_name[out]
        return results[:len(wanted)]
