/* Fused gate math for one GRU time step over the whole batch (see
 * _gru_gates_impl.h).
 * Declared for float (_f32) and double (_f64).
 *
 * Two layouts, chosen per call by _gru.pyx:
 *   rows     (B, G*H) per step: batch row b is contiguous. Handles uneven
 *            lengths and the reverse direction per row (gru_steps_t).
 *   columns  (G*H, B) per step, i.e. transposed: element (j, b) lives at
 *            X[j * ld + b]. Every sequence has the full length. The loops
 *            run along b, and the recurrent GEMM h @ W_hh^T is computed as
 *            W_hh @ h^T, which OpenBLAS runs faster once B*H*H is large.
 */
#ifndef GRU_CY_GATES_H
#define GRU_CY_GATES_H

#include <stddef.h>

#include "_recurrent.h"

/* Which time index each batch row handles at step s (rows layout). */
typedef rc_steps_t gru_steps_t;

#define GRU_DECLARE(T, S)                                                     \
void gru_row_fwd_after##S(const gru_steps_t *st, const T *gi, const T *gh,    \
                          const T *b_ih, const T *b_hh, T *h, T *out,         \
                          ptrdiff_t out_ld, T *gates, T *aux, T *hprev);      \
void gru_row_fwd_before_rz##S(const gru_steps_t *st, const T *gi,             \
                              const T *gh, const T *b_ih, const T *b_hh,      \
                              const T *h, T *gates, T *rh, int train);        \
void gru_row_fwd_before_n##S(const gru_steps_t *st, const T *gi,              \
                             const T *gh, const T *b_ih, const T *b_hh,       \
                             T *gates, T *h, T *out, ptrdiff_t out_ld,        \
                             T *hprev);                                       \
void gru_row_bwd_after##S(const gru_steps_t *st, const T *gates,              \
                          const T *aux, const T *hprev, const T *dout,        \
                          ptrdiff_t dout_ld, T *dh, T *dgi, T *dgh);          \
void gru_row_bwd_before_n##S(const gru_steps_t *st, const T *gates,           \
                             const T *hprev, const T *dout, ptrdiff_t dout_ld,\
                             T *dh, T *dgi, T *dgh);                          \
void gru_row_bwd_before_rz##S(const gru_steps_t *st, const T *gates,          \
                              const T *hprev, const T *drh, T *dh, T *dgi,    \
                              T *dgh);                                        \
void gru_col_fwd_after##S(int B, int H, const T *gi, ptrdiff_t gi_ld,         \
                          const T *gh, const T *b_ih, const T *b_hh,          \
                          const T *h, ptrdiff_t h_ld, T *h_new,               \
                          ptrdiff_t hn_ld, T *gates, T *aux, ptrdiff_t sv_ld);\
void gru_col_fwd_before_rz##S(int B, int H, const T *gi, ptrdiff_t gi_ld,     \
                              const T *gh, const T *b_ih, const T *b_hh,      \
                              const T *h, ptrdiff_t h_ld, T *gates, T *rh,    \
                              ptrdiff_t sv_ld);                               \
void gru_col_fwd_before_n##S(int B, int H, const T *gi, ptrdiff_t gi_ld,      \
                             const T *ghn, const T *b_ih, const T *b_hh,      \
                             T *gates, ptrdiff_t sv_ld, const T *h,           \
                             ptrdiff_t h_ld, T *h_new, ptrdiff_t hn_ld);      \
void gru_col_bwd_after##S(int B, int H, const T *gates, const T *aux,         \
                          ptrdiff_t sv_ld, const T *hprev, ptrdiff_t hp_ld,   \
                          const T *dout, T *dh, T *dgi, T *dgh,               \
                          ptrdiff_t dg_ld);                                   \
void gru_col_bwd_before_n##S(int B, int H, const T *gates, ptrdiff_t sv_ld,   \
                             const T *hprev, ptrdiff_t hp_ld, const T *dout,  \
                             T *dh, T *dgi, T *dgh, ptrdiff_t dg_ld);         \
void gru_col_bwd_before_rz##S(int B, int H, const T *gates, ptrdiff_t sv_ld,  \
                              const T *hprev, ptrdiff_t hp_ld, const T *drh,  \
                              T *dh, T *dgi, T *dgh, ptrdiff_t dg_ld);

GRU_DECLARE(float, _f32)
GRU_DECLARE(double, _f64)

#undef GRU_DECLARE
#endif
