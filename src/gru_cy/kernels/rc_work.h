/* Workspace memory for the kernels: rc_work_alloc returns a 64-byte aligned
 * block of at least bytes (NULL when out of memory); rc_work_free releases
 * it. The block released last, up to RC_WORK_CACHE_BYTES, is kept for the
 * next call: a training step's workspace then lands on memory already
 * mapped instead of on fresh pages the system must fault in and zero one by
 * one (measured: 12-20% of an LSTM training step at B = 32). One block at
 * most stays allocated between calls (per kind, below); calls from several
 * threads are safe (the slot is swapped atomically: one takes the block,
 * others allocate). */
#ifndef GRU_CY_RC_WORK_H
#define GRU_CY_RC_WORK_H

#include <stddef.h>

#define RC_WORK_CACHE_BYTES ((size_t)64 << 20)

void *rc_work_alloc(size_t bytes);
void rc_work_free(void *w);

/* The same for other kinds of blocks, each with a slot of its own: the
 * tapes of forward_train (RC_BLOCK_TAPE; a training loop frees one tape as
 * it makes the next, so one kept block spares every step the page faults
 * of a fresh one), up to RC_TAPE_CACHE_BYTES. */
enum { RC_BLOCK_WORK = 0, RC_BLOCK_TAPE = 1 };
#define RC_TAPE_CACHE_BYTES ((size_t)256 << 20)
void *rc_block_alloc(int kind, size_t bytes);
void rc_block_free(int kind, void *w);

#endif
