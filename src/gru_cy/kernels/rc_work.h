/* Workspace memory for the kernels: rc_work_alloc returns a 64-byte aligned
 * block of at least bytes (NULL when out of memory); rc_work_free releases
 * it. The block released last, up to RC_WORK_CACHE_BYTES, is kept for the
 * next call: a training step's workspace then lands on memory already
 * mapped instead of on fresh pages the system must fault in and zero one by
 * one (measured: 12-20% of an LSTM training step at B = 32). One block at
 * most stays allocated between calls; calls from several threads are safe
 * (the slot is swapped atomically: one takes the block, others allocate). */
#ifndef GRU_CY_RC_WORK_H
#define GRU_CY_RC_WORK_H

#include <stddef.h>

#define RC_WORK_CACHE_BYTES ((size_t)64 << 20)

void *rc_work_alloc(size_t bytes);
void rc_work_free(void *w);

#endif
