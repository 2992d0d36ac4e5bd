/* Instantiates the Elman RNN step functions for float and double, each
 * built once per instruction set and picked at run time (RC_DISPATCH in
 * _recurrent.h). tanh is _activations.h's polynomial: no libm call in the
 * loops, which GCC vectorises along the hidden units (rows) or the batch
 * (columns). */

/* The clamps in _activations.h are conditional selects; under GCC's default
 * -ftrapping-math it will not if-convert them and no loop vectorises.
 * Exception flags are never inspected; NaN and Inf still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <string.h>

#include "_activations.h"
#include "_rnn_gates.h"

#define T float
#define S(name) name##_f32
#define TANH gru_tanhf
#include "_rnn_gates_impl.h"
#undef T
#undef S
#undef TANH

#define T double
#define S(name) name##_f64
#define TANH gru_tanh
#include "_rnn_gates_impl.h"
#undef T
#undef S
#undef TANH
