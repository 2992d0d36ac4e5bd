/* Fused gate math for one LSTM time step over the whole batch (rows layout:
 * batch row b of a step is contiguous), declared for float (_f32) and
 * double (_f64); see _lstm_gates_impl.h for the maths and the arrays.
 */
#ifndef GRU_CY_LSTM_GATES_H
#define GRU_CY_LSTM_GATES_H

#include <stddef.h>

#include "_recurrent.h"

/* Every function takes the step description st (rc_steps_t: st->H is the
 * cell width H) and R, the width of the state h and of the output (the
 * projection size P, or H without projection). */

#define LSTM_DECLARE(T, S)                                                    \
void lstm_row_fwd##S(const rc_steps_t *st, int R, const T *gi, const T *gh,   \
                     const T *bias, T *h, T *c, T *m, T *out,                 \
                     ptrdiff_t out_ld, T *gates, T *cprev, T *tc, T *hprev,   \
                     T *m_tape);                                              \
void lstm_row_proj_out##S(const rc_steps_t *st, int R, const T *p, T *h,      \
                          T *out,                                             \
                          ptrdiff_t out_ld);                                  \
void lstm_row_bwd_proj##S(const rc_steps_t *st, int R, const T *dout,         \
                          ptrdiff_t dout_ld, T *dh, T *dhp, T *dhp_step);     \
void lstm_row_bwd##S(const rc_steps_t *st, const T *dm, const T *dout,        \
                     ptrdiff_t dout_ld, const T *gates, const T *cprev,       \
                     const T *tc, T *dh, T *dc, T *dgi, T *dg_step);

LSTM_DECLARE(float, _f32)
LSTM_DECLARE(double, _f64)

#undef LSTM_DECLARE
#endif
