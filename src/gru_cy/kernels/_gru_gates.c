/* Instantiates the gate functions for float and double.
 *
 * On x86-64 Linux with GCC each exported function is built three times
 * (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, and baseline) and the loader
 * picks one at run time (target_clones), so a wheel built for any x86-64
 * runs its gate loops 8 floats wide where AVX2 exists. The v4 clone still
 * uses 256-bit vectors (GCC's default tuning) but has 32 vector registers
 * and mask registers: the gate loops stop spilling and run about 2x faster
 * than the v3 clone on AMD Zen 4. ("arch=haswell" would match Intel CPUs
 * only: AMD machines would get the baseline clone.)
 */

/* The clamps in _activations.h are conditional selects; under GCC's default
 * -ftrapping-math it will not if-convert them (an ordered compare may raise
 * an FP exception), and no gate loop vectorises. Exception flags are never
 * inspected here and no result changes: NaN and Inf still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <string.h>

#include "_activations.h"
#include "_gru_gates.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(GRU_CY_DEBUG)
#if __GNUC__ >= 12
/* (x86-64-vN levels in target_clones need GCC 12.) */
#define GRU_DISPATCH \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GRU_DISPATCH __attribute__((target_clones("avx2", "default")))
#endif
#else
#define GRU_DISPATCH
#endif

/* The per-row loops are written once and inlined into each clone, so that
 * they are compiled for the clone's instruction set. */
#if defined(__GNUC__)
#define GRU_INLINE inline __attribute__((always_inline))
#else
#define GRU_INLINE inline
#endif

/* Time index of batch row b at step st->s, or -1 once its sequence is over:
 * the forward direction reads t = s, the reverse one t = len_b - 1 - s. */
static inline int gru_row_time(const gru_steps_t *st, int b)
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
