/* Instantiates the LSTM gate functions for float and double, each built
 * for AVX-512, AVX2+FMA and baseline x86-64 and picked by the loader at run
 * time (RC_DISPATCH in _recurrent.h). */

/* The clamps in _activations.h are conditional selects; under GCC's default
 * -ftrapping-math it will not if-convert them and no gate loop vectorises.
 * Exception flags are never inspected; NaN and Inf still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <string.h>

#include "_activations.h"
#include "_lstm_gates.h"

#define T float
#define S(name) name##_f32
#define SIGMOID gru_sigmoidf
#define TANH gru_tanhf
#include "_lstm_gates_impl.h"
#undef T
#undef S
#undef SIGMOID
#undef TANH

#define T double
#define S(name) name##_f64
#define SIGMOID gru_sigmoid
#define TANH gru_tanh
#include "_lstm_gates_impl.h"
#undef T
#undef S
#undef SIGMOID
#undef TANH
