/* The fused activations of the Jordan network, instantiated for float and
 * double (declarations and activation codes in _jordan_gates.h):
 *
 *   jordan_hidden    a := act(a + b_ih)                 in place, (rows, H)
 *   jordan_output    y := out_act(z + b_hy)             (rows, O)
 *   jordan_dz        dz := (dout + dy) * out_act'(y)    (rows, O)
 *   jordan_da        da := da * act'(h)                 in place, (rows, H)
 *
 * Every derivative is written in terms of the activation's value (tanh:
 * 1 - h^2, sigmoid: h (1 - h), relu: h > 0), so that the training tape
 * keeps h and y only. tanh and sigmoid are the branch-free polynomial ones
 * of _activations.h (no libm call). relu keeps NaN (a < 0 is false for
 * NaN) and, like PyTorch, passes no gradient where its value is not > 0.
 *
 * Each function is cloned per instruction set (RC_DISPATCH, _recurrent.h).
 */

/* The clamps in _activations.h are selects that GCC will not if-convert
 * under -ftrapping-math; no result changes (NaN and Inf still propagate). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include "_activations.h"
#include "_recurrent.h"
#include "_jordan_gates.h"

#define GATES_IMPL "_jordan_gates_impl.h"
#include "_instantiate.h"
