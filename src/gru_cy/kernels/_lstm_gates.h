/* Fused gate math for one LSTM time step over the whole batch (rows layout:
 * batch row b of a step is contiguous), declared for float (_f32) and
 * double (_f64); see _lstm_gates_impl.h for the maths and the arrays.
 */
#ifndef GRU_CY_LSTM_GATES_H
#define GRU_CY_LSTM_GATES_H

#include <stddef.h>

/* Which time index each batch row handles at step s. */
typedef struct {
    int B, H, R;                /* batch, cell width, state width (P or H) */
    int s;                      /* step */
    int T;                      /* padded sequence length */
    int t0;                     /* time index of row block 0 of gi */
    int reverse;
    const long long *lengths;   /* NULL: every row has length T */
} lstm_steps_t;

#define LSTM_DECLARE(T, S)                                                    \
void lstm_row_fwd##S(const lstm_steps_t *st, const T *gi, const T *gh,        \
                     const T *bias, T *h, T *c, T *m, T *out,                 \
                     ptrdiff_t out_ld, T *gates, T *cprev, T *tc, T *hprev,   \
                     T *m_tape);                                              \
void lstm_row_proj_out##S(const lstm_steps_t *st, const T *p, T *h, T *out,   \
                          ptrdiff_t out_ld);                                  \
void lstm_row_bwd_proj##S(const lstm_steps_t *st, const T *dout,              \
                          ptrdiff_t dout_ld, T *dh, T *dhp, T *dhp_step);     \
void lstm_row_bwd##S(const lstm_steps_t *st, const T *dm, const T *dout,      \
                     ptrdiff_t dout_ld, const T *gates, const T *cprev,       \
                     const T *tc, T *dh, T *dc, T *dgi, T *dg_step);          \
void lstm_transpose##S(int rows, int cols, const T *src, ptrdiff_t src_ld,    \
                       T *dst, ptrdiff_t dst_ld);                             \
void lstm_sum_rows##S(int rows, int n, const T *x, ptrdiff_t ld, T *acc);

LSTM_DECLARE(float, _f32)
LSTM_DECLARE(double, _f64)

#undef LSTM_DECLARE
#endif
