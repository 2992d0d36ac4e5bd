/* Instantiates a type-generic implementation file twice: once for float
 * (names suffixed _f32) and once for double (_f64). The including .c file
 * names it first, as a string:
 *
 *     #define GATES_IMPL "_rnn_gates_impl.h"
 *     #include "_instantiate.h"
 *
 * Inside it, T is the element type, S(name) the suffixed name, SIGMOID and
 * TANH the polynomial activations of _activations.h for T (include that
 * header before this one when the file uses them). No include guard: each
 * .c file includes this once. */
#define T float
#define S(name) name##_f32
#define SIGMOID gru_sigmoidf
#define TANH gru_tanhf
#include GATES_IMPL
#undef T
#undef S
#undef SIGMOID
#undef TANH

#define T double
#define S(name) name##_f64
#define SIGMOID gru_sigmoid
#define TANH gru_tanh
#include GATES_IMPL
#undef T
#undef S
#undef SIGMOID
#undef TANH
#undef GATES_IMPL
