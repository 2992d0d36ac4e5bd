/* Fused gate math for one batch row of one GRU step (see _gru_gates_impl.h).
 * Declared for float (_f32) and double (_f64). */
#ifndef GRU_CY_GATES_H
#define GRU_CY_GATES_H

#define GRU_DECLARE(T, S)                                                     \
void gru_fwd_after##S(int H, const T *gi, const T *gh, const T *bias,        \
                      T *h, T *out);                                          \
void gru_fwd_after_train##S(int H, const T *gi, const T *gh, const T *bias,  \
                            T *h, T *out, T *gates, T *aux, T *hprev);        \
void gru_fwd_before_rz##S(int H, const T *gi, const T *gh, const T *bias,    \
                          const T *h, T *gates, T *rh);                       \
void gru_fwd_before_n##S(int H, const T *gi, const T *ghn, const T *bias,    \
                         T *gates, T *h, T *out, T *hprev);                   \
void gru_bwd_after##S(int H, const T *gates, const T *aux, const T *hprev,   \
                      const T *dout, T *dh, T *dgi, T *dgh);                  \
void gru_bwd_before_n##S(int H, const T *gates, const T *hprev,              \
                         const T *dout, T *dh, T *dgi, T *dgh);               \
void gru_bwd_before_rz##S(int H, const T *gates, const T *hprev,             \
                          const T *drh, T *dh, T *dgi, T *dgh);

GRU_DECLARE(float, _f32)
GRU_DECLARE(double, _f64)

#undef GRU_DECLARE
#endif
