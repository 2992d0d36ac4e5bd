"""Single-operator models for InferenceSession, checked against ONNX's reference implementation.

Each case is one node with its attributes and inputs; ``build(case, stored)``
makes the model with onnx.helper (the inputs as graph inputs, or all stored in the
file as initializers when ``stored``, which the session folds at load). The
expected outputs come from ``onnx.reference.ReferenceEvaluator`` (the ONNX
specification's semantics in Python), or from ONNX Runtime for the cases marked
``reference="ort"``, where that implementation departs from the specification
(each says why); recurrent nodes are checked against ONNX Runtime, whose handling
of sequence_lens the reference implementation lacks. tests/make_golden_session.py
saves models, inputs and outputs so that tests/test_session_ops.py checks them
without onnx.
"""

import zlib

import numpy as np

F32 = np.float32


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


class Case:
    def __init__(self, name, op, inputs, attrs=None, n_out=1, opset=17, input_stored=(),
                 reference="onnx", outer=None):
        self.name, self.op, self.inputs = name, op, inputs
        self.attrs = attrs or {}         # a callable value is called with onnx.helper
        self.outer = outer or {}         # graph inputs the node reads only from its subgraphs
        self.n_out, self.opset = n_out, opset
        self.input_stored = input_stored    # inputs stored in the file in every variant
        self.reference = reference


def _f(rng, *shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, shape).astype(F32)


def cases():
    out = []

    def add(name, op, inputs, **kw):
        out.append(Case(name, op, inputs, **kw))

    r = _rng("elementwise")
    a, b = _f(r, 2, 3, 4), _f(r, 3, 1)
    pos = _f(r, 2, 3, 4, lo=0.1, hi=3.0)
    ints_a = r.integers(-9, 10, (3, 4)).astype(np.int64)
    ints_b = r.integers(1, 5, (4,)).astype(np.int64) * np.array([1, -1, 1, -1])
    for op in ("Add", "Sub", "Mul", "Div"):
        add(f"{op}_broadcast", op, [a, b])
        add(f"{op}_int64", op, [ints_a, ints_b])
    add("Pow_float", "Pow", [pos, _f(r, 4)])
    add("Pow_int_exponent", "Pow", [a, np.array([2, 3, 0, 1], np.int64)])
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        add(f"{op}_float", op, [np.round(a), np.round(b)], opset=17)
        add(f"{op}_int", op, [ints_a, ints_b])
    bools = r.integers(0, 2, (3, 4)).astype(bool)
    for op in ("And", "Or", "Xor"):
        add(op, op, [bools, bools[::-1]])
    add("Not", "Not", [bools])
    add("Mod_int", "Mod", [ints_a, ints_b])
    add("Mod_fmod", "Mod", [a, b + 3], attrs=dict(fmod=1))
    for op in ("Sum", "Max", "Min", "Mean"):
        add(f"{op}_three", op, [a, b, _f(r, 4)])
        add(f"{op}_one", op, [a])
    add("PRelu", "PRelu", [a, _f(r, 4)])
    unary = ["Neg", "Abs", "Exp", "Floor", "Ceil", "Sign", "Sin", "Cos", "Tan", "Erf",
             "Sigmoid", "Tanh", "Relu", "Softsign", "Softplus"]
    for op in unary:
        add(op, op, [a * 1.7])
    add("Round_halves", "Round", [np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49], F32)])
    add("Sqrt", "Sqrt", [pos])
    add("Log", "Log", [pos])
    add("Reciprocal", "Reciprocal", [pos])
    add("IsNaN", "IsNaN", [np.array([1.0, np.nan, np.inf], F32)])
    add("IsInf", "IsInf", [np.array([1.0, np.nan, np.inf, -np.inf], F32)],
        attrs=dict(detect_negative=0))
    add("LeakyRelu", "LeakyRelu", [a], attrs=dict(alpha=0.2))
    add("LeakyRelu_default", "LeakyRelu", [a])
    add("Elu", "Elu", [a], attrs=dict(alpha=0.7))
    add("Selu", "Selu", [a])
    add("Celu", "Celu", [a], attrs=dict(alpha=1.3))
    add("ThresholdedRelu", "ThresholdedRelu", [a], attrs=dict(alpha=0.5))
    add("HardSigmoid", "HardSigmoid", [a * 4], attrs=dict(alpha=0.3, beta=0.4))
    add("HardSwish", "HardSwish", [a * 4], opset=14)
    add("Mish", "Mish", [a * 3], opset=18)
    add("Gelu", "Gelu", [a * 2], opset=20)
    add("Gelu_tanh", "Gelu", [a * 2], attrs=dict(approximate="tanh"), opset=20)
    add("Clip_both", "Clip", [a, np.array(-0.5, F32), np.array(0.7, F32)], opset=13)
    add("Clip_min_only", "Clip", [a, np.array(-0.5, F32)], opset=13)
    add("Clip_opset9_attrs", "Clip", [a], attrs=dict(min=-0.3, max=0.2), opset=9)
    add("Clip_int", "Clip", [ints_a, np.array(-3, np.int64), np.array(4, np.int64)], opset=13)
    for to, name in ((7, "int64"), (6, "int32"), (9, "bool"), (11, "double"), (10, "float16")):
        add(f"Cast_to_{name}", "Cast", [a * 3], attrs=dict(to=to))
    add("Cast_int_to_float", "Cast", [ints_a], attrs=dict(to=1))
    add("CastLike", "CastLike", [a * 3, np.zeros(1, np.int32)], opset=15)
    add("Where", "Where", [bools, ints_a.astype(F32), _f(r, 4)])
    add("Identity", "Identity", [a])

    r = _rng("shape")
    x = _f(r, 2, 3, 4, 5)
    add("Shape", "Shape", [x])
    add("Shape_start_end", "Shape", [x], attrs=dict(start=1, end=-1), opset=15)
    add("Size", "Size", [x])
    add("Reshape", "Reshape", [x, np.array([0, -1, 5], np.int64)])
    add("Reshape_allowzero", "Reshape", [np.zeros((0, 3), F32), np.array([3, 0], np.int64)],
        attrs=dict(allowzero=1), opset=14)
    add("Flatten", "Flatten", [x], attrs=dict(axis=2))
    add("Flatten_negative", "Flatten", [x], attrs=dict(axis=-1))
    add("Flatten_zero", "Flatten", [x], attrs=dict(axis=0))
    sq = _f(r, 1, 3, 1, 2)
    add("Squeeze_axes_input", "Squeeze", [sq, np.array([0, -2], np.int64)])
    add("Squeeze_all", "Squeeze", [sq])
    add("Squeeze_opset11", "Squeeze", [sq], attrs=dict(axes=[2]), opset=11)
    add("Unsqueeze", "Unsqueeze", [_f(r, 3, 2), np.array([0, -1], np.int64)])
    add("Unsqueeze_opset11", "Unsqueeze", [_f(r, 3, 2)], attrs=dict(axes=[1, 3]), opset=11)
    add("Transpose", "Transpose", [x], attrs=dict(perm=[2, 0, 3, 1]))
    add("Transpose_default", "Transpose", [x])
    add("Concat", "Concat", [_f(r, 2, 3), _f(r, 2, 1), _f(r, 2, 0)], attrs=dict(axis=-1))
    add("Split_even", "Split", [x], attrs=dict(axis=1), n_out=3)
    add("Split_sizes_input", "Split", [x, np.array([1, 3], np.int64)], attrs=dict(axis=2),
        n_out=2)
    add("Split_opset11", "Split", [x], attrs=dict(axis=3, split=[2, 3]), n_out=2, opset=11)
    add("Split_num_outputs", "Split", [_f(r, 7, 2)], attrs=dict(axis=0, num_outputs=3),
        n_out=3, opset=18)
    add("Slice", "Slice", [x, np.array([1, -3], np.int64), np.array([100, -1], np.int64),
                          np.array([1, 3], np.int64)])
    add("Slice_steps", "Slice", [x, np.array([-1, 0], np.int64),
                                np.array([-10**18, 5], np.int64),
                                np.array([2, 3], np.int64), np.array([-1, 2], np.int64)])
    add("Slice_negative_step_end", "Slice", [np.arange(6, dtype=F32),
                                            np.array([4], np.int64), np.array([-7], np.int64),
                                            np.array([0], np.int64), np.array([-2], np.int64)])
    add("Gather_axis0", "Gather", [_f(r, 5, 3), np.array([[0, 4], [-1, 2]], np.int64)])
    add("Gather_axis1_scalar", "Gather", [x, np.array(-2, np.int64)], attrs=dict(axis=1))
    add("Gather_int32", "Gather", [_f(r, 5, 3), np.array([3, 1], np.int32)])
    add("GatherElements", "GatherElements", [_f(r, 3, 4), r.integers(-4, 4, (3, 2))],
        attrs=dict(axis=1))
    add("Expand", "Expand", [_f(r, 3, 1), np.array([2, 1, 4], np.int64)])
    add("ConstantOfShape", "ConstantOfShape", [np.array([2, 3], np.int64)])
    add("ConstantOfShape_int", "ConstantOfShape", [np.array([4], np.int64)],
        attrs=dict(value=np.array([7], np.int64)))
    add("Dropout", "Dropout", [a], n_out=1)
    add("Dropout_mask", "Dropout", [a], n_out=2)
    add("Tile", "Tile", [_f(r, 2, 3), np.array([2, 1], np.int64)])
    add("Range_int", "Range", [np.array(2, np.int64), np.array(11, np.int64),
                               np.array(3, np.int64)])
    add("Range_float", "Range", [np.array(1.0, F32), np.array(-2.0, F32),
                                 np.array(-0.7, F32)])
    p = _f(r, 2, 3, 4)
    add("Pad_constant", "Pad", [p, np.array([0, 1, 2, 0, 0, 1], np.int64), np.array(0.5, F32)])
    add("Pad_reflect", "Pad", [p, np.array([0, 0, 2, 0, 0, 3], np.int64)],
        attrs=dict(mode="reflect"))
    add("Pad_edge", "Pad", [p, np.array([0, 2, 1, 0, 1, 0], np.int64)], attrs=dict(mode="edge"))
    # The reference implementation cannot pad by negative amounts (cropping).
    add("Pad_negative", "Pad", [p, np.array([0, -1, 1, 0, 0, -2], np.int64)], reference="ort")
    add("Pad_axes", "Pad", [p, np.array([1, 2], np.int64), np.array(0.0, F32),
                            np.array([-1], np.int64)], opset=18)
    add("Pad_wrap", "Pad", [p, np.array([0, 1, 1, 0, 0, 2], np.int64)], attrs=dict(mode="wrap"),
        opset=19)
    add("Trilu", "Trilu", [_f(r, 2, 4, 5), np.array(1, np.int64)], attrs=dict(upper=0),
        opset=14)
    add("CumSum", "CumSum", [_f(r, 3, 4), np.array(1, np.int64)])
    add("CumSum_exclusive_reverse", "CumSum", [_f(r, 3, 4), np.array(0, np.int64)],
        attrs=dict(exclusive=1, reverse=1))
    add("NonZero", "NonZero", [np.array([[1, 0, 2], [0, 0, 3]], F32)])
    data = _f(r, 3, 4)
    add("ScatterElements", "ScatterElements",
        [data, np.array([[1, -1], [0, 2], [3, 0]], np.int64), _f(r, 3, 2)], attrs=dict(axis=1))
    add("ScatterElements_add", "ScatterElements",
        [data, np.array([[1, 2, 0, 1]], np.int64), _f(r, 1, 4)],
        attrs=dict(axis=0, reduction="add"), opset=16)
    add("ScatterND", "ScatterND", [data, np.array([[2], [0]], np.int64), _f(r, 2, 4)])
    add("ScatterND_elements_mul", "ScatterND",
        [data, np.array([[0, 1], [2, 3], [0, 1]], np.int64), _f(r, 3)],
        attrs=dict(reduction="mul"), opset=16)
    add("GatherND", "GatherND", [_f(r, 2, 3, 4), np.array([[1, 2], [0, -1]], np.int64)])

    r = _rng("reduce")
    x = _f(r, 2, 3, 4)
    for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
               "ReduceL1", "ReduceL2", "ReduceLogSumExp"):
        add(f"{op}_opset13", op, [x], attrs=dict(axes=[1, -1], keepdims=0), opset=13)
        add(f"{op}_opset18", op, [x, np.array([0], np.int64)], opset=18)
        add(f"{op}_all", op, [x], opset=18)
    add("ReduceLogSum", "ReduceLogSum", [np.abs(x) + 0.1, np.array([2], np.int64)], opset=18)
    add("ReduceSum_axes_input", "ReduceSum", [x, np.array([-1], np.int64)], opset=13)
    add("ReduceSum_opset11", "ReduceSum", [x], attrs=dict(axes=[0, 2]), opset=11)
    add("ReduceSum_noop", "ReduceSum", [x, np.zeros(0, np.int64)],
        attrs=dict(noop_with_empty_axes=1), opset=13)
    add("ReduceMean_int", "ReduceMean", [np.arange(24, dtype=np.int64).reshape(2, 3, 4)],
        attrs=dict(axes=[1]), opset=13)
    ties = np.array([[1, 3, 3, 0], [2, 2, 1, 2]], F32)
    for op in ("ArgMax", "ArgMin"):
        add(f"{op}", op, [x], attrs=dict(axis=1))
        add(f"{op}_last", op, [ties], attrs=dict(axis=1, keepdims=0, select_last_index=1))
        add(f"{op}_first", op, [ties], attrs=dict(axis=-1, select_last_index=0))
    y = _f(r, 2, 3, 5) * 4
    for op in ("Softmax", "LogSoftmax", "Hardmax"):
        add(f"{op}", op, [y])
        add(f"{op}_axis1", op, [y], attrs=dict(axis=1))
        # Before opset 13 the input is coerced to 2-D at axis; the reference implementation
        # applies opset 13's single-axis rule to every opset.
        add(f"{op}_opset11", op, [y], attrs=dict(axis=1), opset=11, reference="ort")
        add(f"{op}_opset11_default", op, [y], opset=11, reference="ort")
    far = np.array([[0.0, 1.0, 2.0], [-300.0, -301.0, -299.0], [50.0, -np.inf, 49.0]], F32)
    add("Softmax_rows_far_apart", "Softmax", [far])
    for name, row in (("small", [-3.0, 0.5, 2.0, 1.0]), ("large", [90.0, 95.0, 10.0, -30.0]),
                      ("very_negative", [-200.0, -190.0, -195.0, -400.0])):
        # The reference LogSoftmax takes the log of Softmax's result: -inf where that
        # underflows, where the operator's value is finite (ONNX Runtime gives it).
        for op in ("Softmax", "LogSoftmax"):
            add(f"{op}_one_row_{name}", op, [np.array([[row]], F32)],
                reference="ort" if op == "LogSoftmax" else "onnx")
    add("LogSoftmax_rows_far_apart", "LogSoftmax", [far])
    add("TopK", "TopK", [ties, np.array([2], np.int64)], attrs=dict(axis=1), n_out=2)
    add("TopK_smallest", "TopK", [x, np.array([2], np.int64)], attrs=dict(axis=2, largest=0),
        n_out=2)

    r = _rng("nn")
    add("MatMul_2d", "MatMul", [_f(r, 3, 4), _f(r, 4, 5)])
    add("MatMul_batched", "MatMul", [_f(r, 2, 3, 4), _f(r, 4, 5)])
    add("MatMul_broadcast", "MatMul", [_f(r, 2, 1, 3, 4), _f(r, 3, 4, 2)])
    add("MatMul_vector", "MatMul", [_f(r, 4), _f(r, 2, 4, 3)])
    add("MatMul_weight_vector", "MatMul", [_f(r, 2, 4), _f(r, 4)])
    add("MatMul_weight_stored", "MatMul", [_f(r, 2, 3, 4), _f(r, 4, 5)], input_stored=(1,))
    add("Gemm", "Gemm", [_f(r, 3, 4), _f(r, 4, 5), _f(r, 5)])
    add("Gemm_trans_alpha_beta", "Gemm", [_f(r, 4, 3), _f(r, 5, 4), _f(r, 3, 1)],
        attrs=dict(transA=1, transB=1, alpha=0.5, beta=2.0))
    add("Gemm_stored", "Gemm", [_f(r, 3, 4), _f(r, 5, 4), _f(r, 1, 5)],
        attrs=dict(transB=1, alpha=1.5), input_stored=(1, 2))
    add("Gemm_no_c", "Gemm", [_f(r, 3, 4), _f(r, 4, 5)], attrs=dict(beta=0.3))
    x1 = _f(r, 2, 4, 11)
    w1 = _f(r, 6, 4, 3)
    add("Conv1d", "Conv", [x1, w1, _f(r, 6)], input_stored=(1,))
    add("Conv1d_strides_pads_dilations", "Conv", [x1, w1], input_stored=(1,),
        attrs=dict(strides=[2], pads=[2, 1], dilations=[2]))
    add("Conv1d_groups", "Conv", [x1, _f(r, 6, 2, 3), _f(r, 6)], input_stored=(1,),
        attrs=dict(group=2, pads=[1, 1]))
    # Batch 1 runs other paths: patches as columns when short, channels-last when long.
    add("Conv1d_batch1_short", "Conv", [_f(r, 1, 4, 11), w1, _f(r, 6)], input_stored=(1,),
        attrs=dict(pads=[1, 1]))
    add("Conv1d_batch1_long", "Conv", [_f(r, 1, 4, 90), w1, _f(r, 6)], input_stored=(1,),
        attrs=dict(pads=[2, 0], strides=[1]))
    add("Conv2d_batch1", "Conv", [_f(r, 1, 3, 5, 6), _f(r, 4, 3, 2, 3)], input_stored=(1,),
        attrs=dict(pads=[0, 1, 1, 1], dilations=[2, 1]))
    add("Conv1d_depthwise", "Conv", [x1, _f(r, 8, 1, 5), _f(r, 8)], input_stored=(1,),
        attrs=dict(group=4, pads=[2, 2], strides=[3]))
    add("Conv1d_same_upper", "Conv", [x1, w1], input_stored=(1,),
        attrs=dict(auto_pad="SAME_UPPER", strides=[2]))
    add("Conv1d_same_lower", "Conv", [x1, _f(r, 6, 4, 4)], input_stored=(1,),
        attrs=dict(auto_pad="SAME_LOWER"))
    add("Conv1d_valid", "Conv", [x1, w1], input_stored=(1,), attrs=dict(auto_pad="VALID"))
    x2 = _f(r, 2, 3, 7, 6)
    add("Conv2d", "Conv", [x2, _f(r, 4, 3, 3, 2), _f(r, 4)], input_stored=(1,),
        attrs=dict(pads=[1, 0, 1, 1], strides=[2, 1]))
    add("Conv2d_groups_dilations", "Conv", [_f(r, 1, 4, 8, 8), _f(r, 6, 2, 3, 3)],
        input_stored=(1,), attrs=dict(group=2, dilations=[2, 1], kernel_shape=[3, 3]))
    add("Conv2d_depthwise", "Conv", [_f(r, 2, 3, 5, 5), _f(r, 3, 1, 3, 3)], input_stored=(1,),
        attrs=dict(group=3, pads=[1, 1, 1, 1]))
    add("Conv2d_pointwise", "Conv", [x2, _f(r, 5, 3, 1, 1)], input_stored=(1,))
    for op, extra in (("MaxPool", {}), ("AveragePool", {}),
                      ("AveragePool", dict(count_include_pad=1))):
        tag = "_count_pad" if extra else ""
        add(f"{op}1d{tag}", op, [x1], attrs=dict(kernel_shape=[3], strides=[2], pads=[1, 1],
                                                 **extra))
        add(f"{op}1d_ceil{tag}", op, [x1], attrs=dict(kernel_shape=[3], strides=[2],
                                                      ceil_mode=1, pads=[0, 1], **extra))
        # The reference MaxPool swaps the spatial axes of 2-D inputs with unequal pads.
        add(f"{op}2d{tag}", op, [x2], attrs=dict(kernel_shape=[3, 2], pads=[1, 0, 1, 1],
                                                 **extra),
            reference="ort" if op == "MaxPool" else "onnx")
        add(f"{op}2d_same_upper{tag}", op, [x2], attrs=dict(kernel_shape=[2, 3], strides=[2, 2],
                                                            auto_pad="SAME_UPPER", **extra))
    add("MaxPool1d_dilations", "MaxPool", [x1], attrs=dict(kernel_shape=[2], dilations=[3]))
    add("GlobalAveragePool", "GlobalAveragePool", [x2])
    # The reference GlobalMaxPool drops the channel axis of 1-D inputs.
    add("GlobalMaxPool", "GlobalMaxPool", [x1], reference="ort")
    add("BatchNormalization", "BatchNormalization",
        [x2, _f(r, 3), _f(r, 3), _f(r, 3), _f(r, 3, lo=0.1, hi=2.0)], input_stored=(1, 2, 3, 4),
        opset=15)
    add("BatchNormalization_2d_input", "BatchNormalization",
        [_f(r, 5, 3), _f(r, 3), _f(r, 3), _f(r, 3), _f(r, 3, lo=0.1, hi=2.0)],
        attrs=dict(epsilon=0.01), opset=15)
    add("LayerNormalization", "LayerNormalization", [x1, _f(r, 11), _f(r, 11)])
    add("LayerNormalization_axis1_stats", "LayerNormalization",
        [x1, _f(r, 4, 11), _f(r, 4, 11)], attrs=dict(axis=1, epsilon=1e-3), n_out=3)
    add("LayerNormalization_no_bias", "LayerNormalization", [x1, _f(r, 11)])
    add("InstanceNormalization", "InstanceNormalization", [x2, _f(r, 3), _f(r, 3)])

    # If: the branches read a tensor of the enclosing graph; the condition fed at run (the
    # branch is chosen then), or stored (the session keeps only the chosen branch).
    outer = {"z": _f(r, 2, 3)}
    for cond in (True, False):
        add(f"If_{cond}", "If", [np.array(cond)], outer=outer, n_out=2,
            attrs=dict(then_branch=lambda h: _branch(h, "Relu", "Neg"),
                       else_branch=lambda h: _branch(h, "Sigmoid", "Abs")))
    return out


def _branch(helper, first, second):
    """A branch of an If: two outputs computed from the enclosing graph's z."""
    nodes = [helper.make_node(first, ["z"], ["a"]), helper.make_node(second, ["a"], ["b"])]
    return helper.make_graph(nodes, f"{first}_{second}", [],
                             [helper.make_tensor_value_info("a", 1, None),
                              helper.make_tensor_value_info("b", 1, None)])


RECURRENT_INPUTS = {"GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
                    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c"),
                    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h")}


def recurrent_cases():
    """(name, op, attrs, inputs: {name: array}, n_out): recurrent nodes, weights stored."""
    out = []
    gates = {"GRU": 3, "LSTM": 4, "RNN": 1}
    T, B, I, H = 5, 3, 4, 3
    for op in ("GRU", "LSTM", "RNN"):
        G = gates[op]
        for direction in ("forward", "reverse", "bidirectional"):
            D = 2 if direction == "bidirectional" else 1
            for variant in ("plain", "states", "lengths_bias", "nobias_h_only", "empty"):
                r = _rng(f"{op}{direction}{variant}")
                attrs = dict(hidden_size=H, direction=direction)
                if op == "GRU":
                    attrs["linear_before_reset"] = int(variant in ("states", "nobias_h_only"))
                if op == "RNN" and variant == "states":
                    attrs["activations"] = ["Relu"] * D
                inputs = {"X": _f(r, T, B, I), "W": _f(r, D, G * H, I, lo=-0.7, hi=0.7),
                          "R": _f(r, D, G * H, H, lo=-0.7, hi=0.7)}
                if variant != "nobias_h_only":
                    inputs["B"] = _f(r, D, 2 * G * H, lo=-0.5, hi=0.5)
                if variant == "lengths_bias":
                    inputs["sequence_lens"] = np.array([5, 2, 4], np.int32)
                if variant == "empty":   # a sequence of length 0 ends in the state 0
                    inputs["sequence_lens"] = np.array([3, 0, 5], np.int32)
                if variant in ("states", "nobias_h_only", "lengths_bias", "empty"):
                    inputs["initial_h"] = _f(r, D, B, H, lo=-1, hi=1)
                if op == "LSTM" and variant == "states":
                    inputs["initial_c"] = _f(r, D, B, H, lo=-1, hi=1)
                n_out = 3 if op == "LSTM" else 2
                out.append((f"{op}_{direction}_{variant}", op, attrs, inputs, n_out))
    return out


def build(case, stored, onnx):
    """The model of a Case: (model, feeds); stored: every input an initializer (then the
    session folds the node at load)."""
    from onnx import helper, numpy_helper

    names = [f"x{i}" for i in range(len(case.inputs))]
    feeds, inits, graph_inputs = {}, [], []
    for i, (name, value) in enumerate(zip(names, case.inputs)):
        if stored or i in case.input_stored:
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        else:
            feeds[name] = value
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(np.asarray(value).dtype), value.shape))
    for name, value in case.outer.items():
        feeds[name] = value
        graph_inputs.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape))
    outputs = [f"y{k}" for k in range(case.n_out)]
    attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else
             v(helper) if callable(v) else v for k, v in case.attrs.items()}
    node = helper.make_node(case.op, names, outputs, **attrs)
    graph = helper.make_graph([node], case.name, graph_inputs,
                              [helper.make_tensor_value_info(o, 0, None) for o in outputs],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", case.opset)])
    model.ir_version = 8
    _output_types(model, onnx)
    return model, feeds


def _output_types(model, onnx):
    """Declare the graph outputs' types as ONNX's shape inference finds them (ONNX Runtime
    refuses outputs without a type)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001  (a model shape inference rejects: leave the types out)
        return
    found = {v.name: v for v in inferred.graph.output}
    for out in model.graph.output:
        if out.name in found and found[out.name].type.tensor_type.elem_type:
            out.type.tensor_type.elem_type = found[out.name].type.tensor_type.elem_type


def build_recurrent(name, op, attrs, inputs, n_out, onnx):
    from onnx import helper, numpy_helper

    order = RECURRENT_INPUTS[op]
    node_inputs = [n if n in inputs else "" for n in order]
    while node_inputs[-1] == "":
        node_inputs.pop()
    feeds = {n: v for n, v in inputs.items() if n not in ("W", "R", "B")}
    inits = [numpy_helper.from_array(inputs[n], n) for n in ("W", "R", "B") if n in inputs]
    graph_inputs = [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()]
    outputs = ["Y", "Y_h", "Y_c"][:n_out]
    node = helper.make_node(op, node_inputs, outputs, **attrs)
    graph = helper.make_graph([node], name, graph_inputs,
                              [helper.make_tensor_value_info(o, 1, None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, feeds
