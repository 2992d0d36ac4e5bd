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

/* Dispatch (target_clones) and always-inline loops as _recurrent.h sets
 * them for every cell. */
#define GRU_DISPATCH RC_DISPATCH
#define GRU_INLINE RC_INLINE
#define gru_row_time rc_row_time

#define GATES_IMPL "_gru_gates_impl.h"
#include "_instantiate.h"
