/* Activation math of one Elman RNN time step over the whole batch (see
 * _rnn_gates_impl.h), declared for float (_f32) and double (_f64).
 *
 *   h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  act = tanh or relu
 *
 * Layouts as for every cell (_recurrent.h): rows, (B, H) per step, any
 * lengths and the reverse direction per row (rc_steps_t); columns, (H, B)
 * per step, element (j, b) at X[j * ld + b], full lengths.
 */
#ifndef GRU_CY_RNN_GATES_H
#define GRU_CY_RNN_GATES_H

#include <stddef.h>

#include "_recurrent.h"

/* act argument of every function */
#define RNN_TANH 0
#define RNN_RELU 1

#define RNN_DECLARE(T, S)                                                     \
void rnn_row_fwd##S(const rc_steps_t *st, int act, const T *gi, const T *gh,  \
                    const T *bias, T *h, T *out, ptrdiff_t out_ld, T *hs);    \
void rnn_row_bwd##S(const rc_steps_t *st, int act, const T *hs,               \
                    const T *dout, ptrdiff_t dout_ld, T *dh, T *dgi,          \
                    T *dgh);                                                  \
void rnn_col_fwd##S(int B, int H, int act, const T *gi, ptrdiff_t gi_ld,      \
                    const T *gh, const T *bias, T *h_new, ptrdiff_t hn_ld);   \
void rnn_col_bwd##S(int B, int H, int act, const T *hs, ptrdiff_t hs_ld,      \
                    const T *dh, const T *dout, T *dgi, T *dgh,               \
                    ptrdiff_t dg_ld);

RNN_DECLARE(float, _f32)
RNN_DECLARE(double, _f64)

#undef RNN_DECLARE
#endif
