"""Whole sequence models exported from PyTorch, for InferenceSession's tests and golden files.

Each entry of ``MODELS`` builds a small torch module (seeded), example inputs and
the dynamic axes; ``export(name, dynamo, path)`` writes it with
torch.onnx.export, the TorchScript exporter (dynamo=False) or the dynamo one, both
with dynamic batch and time axes. Needs torch (and onnxscript for dynamo).
"""

import warnings

import numpy as np


def _modules():
    import torch
    from torch import nn

    class TextClassifier(nn.Module):
        """Embedding -> 2-layer GRU -> Linear -> softmax, the state as input and output."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 12)
            self.gru = nn.GRU(12, 16, num_layers=2, batch_first=True)
            self.head = nn.Linear(16, 5)

        def forward(self, tokens, h0):
            y, h = self.gru(self.emb(tokens), h0)
            return torch.softmax(self.head(y), dim=-1), h

    class SpeechEncoder(nn.Module):
        """Conv1d front end (BatchNorm, ReLU, MaxPool) -> LSTM -> Linear -> log_softmax."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv1d(13, 16, kernel_size=5, stride=2, padding=2)
            self.norm = nn.BatchNorm1d(16)
            self.pool = nn.MaxPool1d(2, ceil_mode=True)
            self.lstm = nn.LSTM(16, 20, batch_first=True)
            self.out = nn.Linear(20, 8)

        def forward(self, features):           # (B, 13, T)
            x = self.pool(torch.relu(self.norm(self.conv(features))))
            y, _ = self.lstm(x.transpose(1, 2))
            return torch.log_softmax(self.out(y), dim=-1)

    class Tagger(nn.Module):
        """Embedding -> bidirectional 2-layer LSTM -> LayerNorm -> GELU -> Linear (per token)."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(40, 10)
            self.lstm = nn.LSTM(10, 12, num_layers=2, bidirectional=True)
            self.norm = nn.LayerNorm(24)
            self.tags = nn.Linear(24, 6)

        def forward(self, tokens):              # (T, B): time-major
            y, _ = self.lstm(self.emb(tokens))
            return self.tags(nn.functional.gelu(self.norm(y)))

    class BiGRUTagger(nn.Module):
        """Embedding -> bidirectional GRU -> ArgMax of a Linear head, and the scores."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(30, 8)
            self.gru = nn.GRU(8, 10, bidirectional=True, batch_first=True)
            self.drop = nn.Dropout(0.3)
            self.tags = nn.Linear(20, 4)

        def forward(self, tokens):
            y, h = self.gru(self.emb(tokens))
            scores = self.tags(self.drop(y))
            return scores.argmax(-1), scores, h.transpose(0, 1).reshape(tokens.shape[0], -1)

    class PackedTagger(nn.Module):
        """Embedding -> packed sequences of unequal lengths -> bidirectional 2-layer LSTM ->
        Linear per token (the export sorts by length: TopK, ScatterElements)."""

        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(20, 6, padding_idx=0)
            self.lstm = nn.LSTM(6, 7, num_layers=2, bidirectional=True, batch_first=True)
            self.out = nn.Linear(14, 3)

        def forward(self, tokens, lengths):
            packed = nn.utils.rnn.pack_padded_sequence(self.emb(tokens), lengths,
                                                       batch_first=True, enforce_sorted=False)
            y, (h, _) = self.lstm(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True,
                                                    total_length=tokens.shape[1])
            return self.out(y), h

    class SpectrogramRNN(nn.Module):
        """Conv2d over (freq, time) -> flatten the frequencies -> Elman RNN -> mean -> Linear."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, kernel_size=3, stride=(2, 1), padding=1)
            self.rnn = nn.RNN(4 * 8, 12, batch_first=True)
            self.out = nn.Linear(12, 3)

        def forward(self, spec):                # (B, 1, 16, T)
            x = torch.tanh(self.conv(spec))      # (B, 4, 8, T)
            B, C, F, T = x.shape
            y, _ = self.rnn(x.permute(0, 3, 1, 2).reshape(B, T, C * F))
            return self.out(y.mean(dim=1))

    return dict(text_gru=TextClassifier, speech_conv_lstm=SpeechEncoder,
                tagger_bilstm=Tagger, tagger_bigru=BiGRUTagger, spectrogram_rnn=SpectrogramRNN,
                tagger_packed=PackedTagger)


# name -> (input names, output names, example input maker, dynamic axes)
def _specs():
    def tokens(vocab, B, T):
        return np.random.default_rng(B * 100 + T).integers(0, vocab, (B, T)).astype(np.int64)

    return {
        "text_gru": (["tokens", "h0"], ["probs", "h_n"],
                     lambda B, T: {"tokens": tokens(50, B, T),
                                   "h0": np.random.default_rng(T).uniform(
                                       -1, 1, (2, B, 16)).astype(np.float32)},
                     {"tokens": {0: "batch", 1: "time"}, "h0": {1: "batch"},
                      "probs": {0: "batch", 1: "time"}, "h_n": {1: "batch"}}),
        "speech_conv_lstm": (["features"], ["log_probs"],
                             lambda B, T: {"features": np.random.default_rng(T).standard_normal(
                                 (B, 13, T)).astype(np.float32)},
                             {"features": {0: "batch", 2: "time"},
                              "log_probs": {0: "batch", 1: "frames"}}),
        "tagger_bilstm": (["tokens"], ["scores"],
                          lambda B, T: {"tokens": tokens(40, T, B)},
                          {"tokens": {0: "time", 1: "batch"}, "scores": {0: "time", 1: "batch"}}),
        "tagger_bigru": (["tokens"], ["tags", "scores", "summary"],
                         lambda B, T: {"tokens": tokens(30, B, T)},
                         {"tokens": {0: "batch", 1: "time"}, "tags": {0: "batch", 1: "time"},
                          "scores": {0: "batch", 1: "time"}, "summary": {0: "batch"}}),
        "tagger_packed": (["tokens", "lengths"], ["scores", "h_n"],
                          lambda B, T: {"tokens": tokens(20, B, T),
                                        "lengths": np.maximum(np.arange(B, 0, -1) * T // B, 1)
                                        .astype(np.int64)[::-1].copy()},
                          {"tokens": {0: "batch", 1: "time"}, "lengths": {0: "batch"},
                           "scores": {0: "batch", 1: "time"}, "h_n": {1: "batch"}}),
        "spectrogram_rnn": (["spec"], ["logits"],
                            lambda B, T: {"spec": np.random.default_rng(T).standard_normal(
                                (B, 1, 16, T)).astype(np.float32)},
                            {"spec": {0: "batch", 3: "time"}, "logits": {0: "batch"}}),
    }


MODELS = sorted(_specs())
# Models the dynamo exporter cannot export (torch.export refuses packed sequences).
TORCHSCRIPT_ONLY = ("tagger_packed",)


def make(name, seed=0):
    """(torch module in eval mode, input names, output names, input maker, dynamic axes)."""
    import torch

    torch.manual_seed(seed)
    module = _modules()[name]().eval()
    with torch.no_grad():   # non-trivial normalisation statistics
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return (module,) + _specs()[name]


def export(name, dynamo, path, seed=0):
    """Export model name to path; returns (module, input names, output names, input maker)."""
    import torch

    module, inputs, outputs, make_inputs, axes = make(name, seed)
    example = make_inputs(2, 7)
    args = tuple(torch.from_numpy(example[n]) for n in inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = {n: {axis: torch.export.Dim.DYNAMIC for axis in axes.get(n, {})}
                      for n in inputs}
            try:
                torch.onnx.export(module, args, path, dynamo=True, input_names=inputs,
                                  output_names=outputs, dynamic_shapes=shapes, verbose=False)
            except Exception:  # noqa: BLE001  (nn.RNN: the loop is unrolled, time is fixed)
                torch.onnx.export(module, args, path, dynamo=True, input_names=inputs,
                                  output_names=outputs, verbose=False)
            _inline_external_data(path)
        else:
            torch.onnx.export(module, args, path, dynamo=False, input_names=inputs,
                              output_names=outputs, dynamic_axes=axes, opset_version=17)
    return module, inputs, outputs, make_inputs


def _inline_external_data(path):
    """One self-contained file (the dynamo exporter may write the weights next to it)."""
    import os

    import onnx

    model = onnx.load(path)
    for name in os.listdir(os.path.dirname(os.path.abspath(path))):
        if name.startswith(os.path.basename(path) + ".") and name.endswith(".data"):
            os.remove(os.path.join(os.path.dirname(os.path.abspath(path)), name))
    onnx.save(model, path)


SHAPES = ((2, 7), (3, 11), (1, 1))   # (batch, time) fed to every model


def torch_outputs(module, inputs, feeds):
    import torch

    with torch.no_grad():
        result = module(*(torch.from_numpy(feeds[n]) for n in inputs))
    result = result if isinstance(result, tuple) else (result,)
    return [r.numpy() for r in result]
