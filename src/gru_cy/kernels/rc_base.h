/* Definitions every C file of the kernels shares: portable spellings of
 * restrict and forced inlining, the instruction sets, and the element-type
 * instantiation helpers.
 *
 * The kernels are plain C99 where they must be (any compiler builds the
 * portable path); GCC vector extensions and per-function target attributes
 * add the AVX2 + FMA and AVX-512 paths on x86-64 with GCC or clang. */
#ifndef GRU_CY_RC_BASE_H
#define GRU_CY_RC_BASE_H

#include <stddef.h>

#if defined(_MSC_VER) && !defined(__clang__)
#define RC_RESTRICT __restrict
#define RC_ALWAYS_INLINE __forceinline
#else
#define RC_RESTRICT restrict
#define RC_ALWAYS_INLINE inline __attribute__((always_inline))
#endif

/* The x86-64 vector paths need GCC's vector extensions and target
 * attributes (GCC or clang); the debug build keeps only the portable path
 * so that it runs every product through plain loops. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(GRU_CY_DEBUG)
#define RC_X86 1
#else
#define RC_X86 0
#endif

/* Instruction sets, in increasing order. */
enum { RC_ISA_PORTABLE = 0, RC_ISA_AVX2 = 1, RC_ISA_AVX512 = 2 };

/* Element types: the kernels are written once and instantiated for float
 * (suffix _f32) and double (_f64). */
enum { RC_F32 = 0, RC_F64 = 1 };

#endif
