/* Layout helpers every recurrent cell's kernels share (transposes and bias
 * gradient sums), and the macros the cells' gate files use to build their
 * step functions once per instruction set.
 *
 * Declared for float (_f32) and double (_f64); defined in _layout.c,
 * which every cell's extension compiles in.
 */
#ifndef GRU_CY_RECURRENT_H
#define GRU_CY_RECURRENT_H

#include <stddef.h>

/* On x86-64 Linux with GCC each function marked RC_DISPATCH is built three
 * times (x86-64-v4 = AVX-512, x86-64-v3 = AVX2+FMA, and baseline) and the
 * loader picks one at run time (target_clones): a wheel built for any
 * x86-64 runs its loops 8 floats wide where AVX2 exists. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(GRU_CY_DEBUG)
#if __GNUC__ >= 12
#define RC_DISPATCH \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RC_DISPATCH __attribute__((target_clones("avx2", "default")))
#endif
#else
#define RC_DISPATCH
#endif

/* Per-row loops are written once and inlined into each clone, so that they
 * are compiled for the clone's instruction set. */
#if defined(__GNUC__)
#define RC_INLINE inline __attribute__((always_inline))
#else
#define RC_INLINE inline
#endif

/* Which time index each batch row handles at step s (rows layout). */
typedef struct {
    int B, H;
    int s;                      /* step */
    int T;                      /* padded sequence length */
    int t0;                     /* time index of row block 0 of the input projection */
    int reverse;
    const long long *lengths;   /* NULL: every row has length T */
} rc_steps_t;

/* Time index of batch row b at step st->s, or -1 once its sequence is over:
 * the forward direction reads t = s, the reverse one t = len_b - 1 - s. */
static inline int rc_row_time(const rc_steps_t *st, int b)
{
    int len = st->lengths ? (int)st->lengths[b] : st->T;
    if (st->s >= len)
        return -1;
    return st->reverse ? len - 1 - st->s : st->s;
}

#define RC_DECLARE(T, S)                                                      \
void rc_transpose##S(int rows, int cols, const T *src, ptrdiff_t src_ld,      \
                     T *dst, ptrdiff_t dst_ld);                               \
void rc_sum_rows##S(int rows, int n, const T *x, ptrdiff_t ld, T *acc);       \
void rc_sum_cols##S(int n, int cols, const T *x, ptrdiff_t ld, T *acc);

RC_DECLARE(float, _f32)
RC_DECLARE(double, _f64)

#undef RC_DECLARE
/* Workspace memory for the kernels: rc_work_alloc returns a 64-byte
 * aligned block of at least bytes (NULL when out of memory); rc_work_free
 * releases it. Each extension keeps the block released last, up to
 * RC_WORK_CACHE_BYTES, for its next call: a training step's workspace
 * (T * B * 4H floats for the LSTM's backward) then lands on memory already
 * mapped instead of on fresh pages the system must fault in and zero one
 * by one (measured: 12-20% of an LSTM training step at B = 32). */
#define RC_WORK_CACHE_BYTES ((size_t)64 << 20)
void *rc_work_alloc(size_t bytes);
void rc_work_free(void *w);

#endif
