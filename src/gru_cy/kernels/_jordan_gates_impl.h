/* One instantiation of the Jordan activations for T = float or double (see
 * _jordan_gates.c). The activation is chosen once per call, outside the
 * loops, so that each inner loop is a plain loop the compiler vectorises;
 * a missing bias gets loops of its own rather than a zero vector. */

/* Apply `EXPR(v)` (v the pre-activation) to rows x n elements, in place or
 * from src to dst, with or without a bias of length n. */
#define JORDAN_MAP(EXPR, src, dst, bias)                                      \
    do {                                                                      \
        if (bias) {                                                           \
            for (int r = 0; r < rows; r++) {                                  \
                const T *in_ = (src) + (ptrdiff_t)r * n;                      \
                T *out_ = (dst) + (ptrdiff_t)r * n;                           \
                for (int j = 0; j < n; j++) {                                 \
                    T v = in_[j] + (bias)[j];                                 \
                    out_[j] = EXPR;                                           \
                }                                                             \
            }                                                                 \
        } else {                                                              \
            ptrdiff_t total = (ptrdiff_t)rows * n;                            \
            const T *in_ = (src);                                             \
            T *out_ = (dst);                                                  \
            for (ptrdiff_t j = 0; j < total; j++) {                           \
                T v = in_[j];                                                 \
                out_[j] = EXPR;                                               \
            }                                                                 \
        }                                                                     \
    } while (0)

RC_DISPATCH
void S(jordan_hidden)(int act, int rows, int n, T *a, const T *b_ih)
{
    switch (act) {
    case 0: JORDAN_MAP(TANH(v), a, a, b_ih); break;
    case 1: JORDAN_MAP((v < (T)0 ? (T)0 : v), a, a, b_ih); break;
    default: JORDAN_MAP(SIGMOID(v), a, a, b_ih); break;
    }
}

RC_DISPATCH
void S(jordan_output)(int out_act, int rows, int n, const T *z, const T *b_hy, T *y)
{
    switch (out_act) {
    case 0: JORDAN_MAP(v, z, y, b_hy); break;
    case 1: JORDAN_MAP(TANH(v), z, y, b_hy); break;
    default: JORDAN_MAP(SIGMOID(v), z, y, b_hy); break;
    }
}

#undef JORDAN_MAP

RC_DISPATCH
void S(jordan_dz)(int out_act, int rows, int n, const T *restrict dout, const T *restrict dy,
                  const T *restrict y, T *restrict dz)
{
    ptrdiff_t total = (ptrdiff_t)rows * n;
    switch (out_act) {
    case 0:
        for (ptrdiff_t j = 0; j < total; j++)
            dz[j] = dout[j] + dy[j];
        break;
    case 1:
        for (ptrdiff_t j = 0; j < total; j++)
            dz[j] = (dout[j] + dy[j]) * ((T)1 - y[j] * y[j]);
        break;
    default:
        for (ptrdiff_t j = 0; j < total; j++)
            dz[j] = (dout[j] + dy[j]) * (y[j] * ((T)1 - y[j]));
        break;
    }
}

RC_DISPATCH
void S(jordan_da)(int act, int rows, int n, const T *restrict h, T *restrict da)
{
    ptrdiff_t total = (ptrdiff_t)rows * n;
    switch (act) {
    case 0:
        for (ptrdiff_t j = 0; j < total; j++)
            da[j] *= (T)1 - h[j] * h[j];
        break;
    case 1:
        for (ptrdiff_t j = 0; j < total; j++)
            da[j] = h[j] > (T)0 ? da[j] : (T)0;
        break;
    default:
        for (ptrdiff_t j = 0; j < total; j++)
            da[j] *= h[j] * ((T)1 - h[j]);
        break;
    }
}
