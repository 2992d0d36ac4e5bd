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

#define GATES_IMPL "_rnn_gates_impl.h"
#include "_instantiate.h"
