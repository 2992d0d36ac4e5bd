/* Instantiates the gate-row functions for float and double.
 *
 * On x86-64 Linux with GCC each function is built twice (AVX2+FMA and
 * baseline) and the loader picks one at run time (target_clones), so a
 * wheel built for any x86-64 still runs its gate loops 8 floats wide on
 * machines that have AVX2.
 */
/* The clamps in _activations.h are conditional selects; under GCC's default
 * -ftrapping-math it will not if-convert them (an ordered compare may raise
 * an FP exception), and no gate loop vectorises. Exception flags are never
 * inspected here and no result changes: NaN and Inf still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "_activations.h"
#include "_gru_gates.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(GRU_CY_DEBUG)
#define GRU_DISPATCH __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GRU_DISPATCH
#endif

#define T float
#define S(name) name##_f32
#define SIGMOID gru_sigmoidf
#define TANH gru_tanhf
#include "_gru_gates_impl.h"
#undef T
#undef S
#undef SIGMOID
#undef TANH

#define T double
#define S(name) name##_f64
#define SIGMOID gru_sigmoid
#define TANH gru_tanh
#include "_gru_gates_impl.h"
#undef T
#undef S
#undef SIGMOID
#undef TANH
