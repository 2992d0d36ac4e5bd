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

#define GATES_IMPL "_lstm_gates_impl.h"
#include "_instantiate.h"
