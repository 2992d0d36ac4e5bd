/* One instruction set's activations and loops, for float and double
 * (rc_cells.c includes it once per set, under the set's target), with:
 *   ISA_TAG   the set's suffix of every name (_portable, _avx2, _avx512)
 *   MADF      its multiply-add for float, MADD for double (fused on every set)
 * The names: the activations A(x) = x ISA_TAG, the loops S(x) = x _f32 ISA_TAG
 * and x _f64 ISA_TAG. */

#define RC_CAT_(a, b) a##b
#define RC_CAT(a, b) RC_CAT_(a, b)
#define A(x) RC_CAT(x, ISA_TAG)
#include "rc_activations_impl.h"

#define T float
#define DT RC_F32
#define SIGMOID A(sigmoidf)
#define TANH A(tanhf)
#define S(x) RC_CAT(x, RC_CAT(_f32, ISA_TAG))
#include "rc_loops_impl.h"
#undef S
#undef T
#undef DT
#undef SIGMOID
#undef TANH

#define T double
#define DT RC_F64
#define SIGMOID A(sigmoid)
#define TANH A(tanh)
#define S(x) RC_CAT(x, RC_CAT(_f64, ISA_TAG))
#include "rc_loops_impl.h"
#undef S
#undef T
#undef DT
#undef SIGMOID
#undef TANH

#undef A
#undef RC_CAT
#undef RC_CAT_
