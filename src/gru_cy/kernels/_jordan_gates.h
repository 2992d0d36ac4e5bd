/* Element-wise math of one Jordan-network time step over a block of batch
 * rows (see _jordan_gates.c), declared for float (_f32) and double (_f64).
 *
 * Every array is a contiguous block of `rows` rows of width H (hidden) or O
 * (output). Activation codes: hidden act 0 = tanh, 1 = relu, 2 = sigmoid;
 * output act 0 = identity, 1 = tanh, 2 = sigmoid. A NULL bias means none.
 */
#ifndef GRU_CY_JORDAN_GATES_H
#define GRU_CY_JORDAN_GATES_H

#define JORDAN_DECLARE(T, S)                                                  \
void jordan_hidden##S(int act, int rows, int H, T *a, const T *b_ih);         \
void jordan_output##S(int out_act, int rows, int O, const T *z,               \
                      const T *b_hy, T *y);                                   \
void jordan_dz##S(int out_act, int rows, int O, const T *dout, const T *dy,   \
                  const T *y, T *dz);                                         \
void jordan_da##S(int act, int rows, int H, const T *h, T *da);

JORDAN_DECLARE(float, _f32)
JORDAN_DECLARE(double, _f64)

#undef JORDAN_DECLARE
#endif
