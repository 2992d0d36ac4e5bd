/* Instantiates the LSTM gate functions for float and double, each built
 * for AVX-512, AVX2+FMA and baseline x86-64 and picked by the loader at run
 * time (target_clones), as the GRU's gate functions are. */

/* The clamps in _activations.h are conditional selects; under GCC's default
 * -ftrapping-math it will not if-convert them and no gate loop vectorises.
 * Exception flags are never inspected; NaN and Inf still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <string.h>

#include "_activations.h"
#include "_lstm_gates.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(GRU_CY_DEBUG)
#if __GNUC__ >= 12
#define LSTM_DISPATCH \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LSTM_DISPATCH __attribute__((target_clones("avx2", "default")))
#endif
#else
#define LSTM_DISPATCH
#endif

#if defined(__GNUC__)
#define LSTM_INLINE inline __attribute__((always_inline))
#else
#define LSTM_INLINE inline
#endif

/* Time index of batch row b at step st->s, or -1 once its sequence is over:
 * the forward direction reads t = s, the reverse one t = len_b - 1 - s. */
static inline int lstm_row_time(const lstm_steps_t *st, int b)
{
    int len = st->lengths ? (int)st->lengths[b] : st->T;
    if (st->s >= len)
        return -1;
    return st->reverse ? len - 1 - st->s : st->s;
}

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
