/* The layout helpers declared in _recurrent.h, for float and double. */

/* As for the gate loops: without -ftrapping-math GCC if-converts and
 * vectorises freely; exception flags are never inspected, NaN and Inf
 * still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "_recurrent.h"

#define GATES_IMPL "_layout_impl.h"
#include "_instantiate.h"
