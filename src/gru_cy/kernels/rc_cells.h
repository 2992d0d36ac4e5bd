/* The recurrent layers: one time loop per cell over a time-major padded
 * batch, forward (inference or training) and backward, on gru_cy's products
 * (rc_gemm.h) and thread pool (rc_pool.h).
 *
 * Letters: T steps, B batch, I inputs, H units, G gates (GRU 3, LSTM 4,
 * RNN 1, Jordan 1), GH = G * H, R the width of the state carried from step
 * to step (H; proj_size P for an LSTM with a projection; O, the output
 * size, for the Jordan network).
 *
 * Sequence b runs over its first len_b steps: forward t = 0 .. len_b - 1,
 * reverse t = len_b - 1 .. 0. Step s handles time t = s (forward) or
 * t = len_b - 1 - s (reverse) of each sequence still running. Arrays with
 * a row per time and sequence (x, out, dout, dx, the tape, the gates'
 * gradients) are indexed by time, rows t * B + b (rows of padded times
 * hold zeros in the tape and the gradients); what one step's product reads
 * lives in per-step buffers, rows b.
 *
 * Every product is rc_gemm's (one multiply-add chain per element) and the
 * gate math of a row never reads another row, so a sequence's results do
 * not depend on the other sequences of the batch, on the batch size, on
 * how the work is split over threads, or on the number of steps in one
 * call: step() equals the whole-sequence call bit for bit.
 *
 * Threads: a layer's team splits into row groups (contiguous rows of the
 * batch; no barrier between them) times unit groups (units of the layer,
 * 32 floats or 16 doubles per block: each thread computes the gates, the
 * products and the state of its units; the unit groups of a row group meet
 * at one barrier per step, two for the cells with a second product per
 * step). The directions of a bidirectional layer run on separate halves of
 * the team. */
#ifndef GRU_CY_RC_CELLS_H
#define GRU_CY_RC_CELLS_H

#include <stddef.h>

enum { RC_GRU = 0, RC_LSTM = 1, RC_RNN = 2, RC_JORDAN = 3 };

/* Activations of the RNN and the Jordan network (flags). */
enum { RC_TANH = 0, RC_RELU = 1, RC_SIGMOID = 2, RC_IDENTITY = 3 };

/* A weight W of shape (N, K) as a module holds it: W row-major, or, when
 * fortran, W^T row-major (an F-contiguous (N, K) array): the products then
 * read it in place, without packing. */
typedef struct {
    const void *p;
    int fortran;
    /* W^T already packed (rc_pack_weight), or NULL: a caller that keeps
     * the packing between calls (a cache, frozen weights) spares the call
     * packing it again. */
    const void *packed;
    /* The weight packed as bfloat16 or int8 (rc_qgemm.h; forward only,
     * float32 only), or NULL. With it, p only has to be non-NULL and
     * packed is not read. */
    const struct rc_qmat *q;
} rc_weight;

/* Elements rc_pack_weight writes for an (N, K) weight. */
ptrdiff_t rc_packed_weight_elems(int N, int K);
/* Pack the (N, K) C-contiguous weight w as the forward products read it
 * (W^T in panels) into dst. */
void rc_pack_weight(int dtype, const void *w, int N, int K, void *dst);

typedef struct {
    int cell;           /* RC_GRU ... */
    int dtype;          /* RC_F32 or RC_F64 */
    /* GRU: 1 reset_after, 0 reset_before; RNN: RC_TANH or RC_RELU;
     * Jordan: act | out_act << 4 */
    int flags;
    int T, B, In, H;   /* In: inputs I */
    int P;              /* LSTM: proj_size (0: none); Jordan: O; else 0 */
    int reverse;
    const long long *lengths;   /* NULL: every sequence has T steps */
    /* The weights: GRU, LSTM, RNN: w_ih (GH, I), w_hh (GH, R), biases (GH);
     * LSTM: w2 = W_hr (P, H); Jordan: w_ih (H, I), w_hh = W_yh (H, O),
     * w2 = W_hy (O, H), b_ih (H), b2 = b_hy (O), no b_hh. NULL biases: none. */
    rc_weight w_ih, w_hh, w2;
    const void *b_ih, *b_hh, *b2;
    /* Forward. */
    const void *x;      /* (T, B, I), C-contiguous */
    void *out;          /* row (t, b) at out + (t * B + b) * out_ld, R columns;
                         * rows of padded times are left as they are */
    ptrdiff_t out_ld;
    void *h;            /* (B, R): the initial state in, the final one out */
    void *c;            /* (B, H): the LSTM's cell state, in and out */
    void *tape;         /* rc_tape_elems elements (training), or NULL */
    /* Backward (the same layer description and tape). */
    const void *dout;   /* like out, dout_ld */
    ptrdiff_t dout_ld;
    void *dx;           /* (T, B, I), added into */
    void *dh, *dc;      /* (B, R), (B, H): dL/d(final state) in, dL/d(initial state) out */
    rc_weight g_ih, g_hh, g2;   /* weight gradients, added into */
    void *gb_ih, *gb_hh, *gb2;  /* bias gradients, added into, or NULL */
} rc_layer;

/* Elements of the tape of a layer (training). */
ptrdiff_t rc_tape_elems(const rc_layer *L);

/* Run n_layers layers of n_dirs directions each (n_layers * n_dirs entries,
 * layer-major): the directions of a layer at once, on separate threads when
 * there are several, the layers one after the other (layer k + 1's x may be
 * layer k's out). Up to nthreads threads. Returns 0, or -1 when memory for
 * the workspace ran out (nothing ran then). */
int rc_forward(rc_layer *layers, int n_layers, int n_dirs, int nthreads);

/* Backward of one layer's directions (n_dirs entries), from their tapes;
 * each adds into its own dx. Returns 0 or -1 (out of memory). */
int rc_backward(rc_layer *layers, int n_dirs, int nthreads);

/* Fill every workspace with NaN when it is allocated (debug runs: a result
 * that read memory the kernels did not write comes out NaN). */
void rc_set_poison(int on);

/* How a layer's team of `threads` splits (row groups, unit groups), for the
 * tests and the documentation of the rule. */
void rc_split(const rc_layer *L, int threads, int *row_groups, int *unit_groups);

/* For the tests: split every layer into (row_groups, unit_groups) as far as
 * its rows and units allow, whatever its size (0, 0: the rule above), and
 * thread calls from min_work multiply-adds on (negative: the default). */
void rc_force_split(int row_groups, int unit_groups, double min_work);

#endif
