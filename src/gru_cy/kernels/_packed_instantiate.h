/* Instantiates _packed_impl.h for one instruction set, for float and double,
 * then forgets that set's parameters. The including file defines TGT, VB,
 * MR, NPS and KN_CASES (see _packed_impl.h) and ISA, the suffix of the
 * names: gemm_f32_<ISA>, gemm_f64_<ISA>, ... No include guard: _packed.c
 * includes it once per instruction set. */
#define RC_PK_NAME_(x, t, isa) x##t##isa
#define RC_PK_NAME(x, t, isa) RC_PK_NAME_(x, t, isa)

#define T float
#define KN(x) RC_PK_NAME(x, _f32_, ISA)
#include "_packed_impl.h"
#undef T
#undef KN
#define T double
#define KN(x) RC_PK_NAME(x, _f64_, ISA)
#include "_packed_impl.h"
#undef T
#undef KN

#undef RC_PK_NAME_
#undef RC_PK_NAME
#undef ISA
#undef TGT
#undef VB
#undef MR
#undef NPS
#undef KN_CASES
