/* The layout helpers declared in _recurrent.h, for float and double. */

/* As for the gate loops: without -ftrapping-math GCC if-converts and
 * vectorises freely; exception flags are never inspected, NaN and Inf
 * still propagate. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <stdlib.h>

#include "_recurrent.h"

/* The cached block: a 64-byte header holding the capacity, then the
 * workspace (64-byte aligned). */
typedef struct {
    size_t cap;
    char pad[64 - sizeof(size_t)];
} rc_work_hdr;

static rc_work_hdr *rc_work_slot;

void *rc_work_alloc(size_t bytes)
{
    rc_work_hdr *h = __atomic_exchange_n(&rc_work_slot, NULL, __ATOMIC_ACQ_REL);
    if (h != NULL && h->cap >= bytes)
        return h + 1;
    free(h);
    void *p = NULL;
    if (bytes > (size_t)-1 - sizeof(rc_work_hdr) ||
        posix_memalign(&p, 64, sizeof(rc_work_hdr) + bytes) != 0)
        return NULL;
    h = (rc_work_hdr *)p;
    h->cap = bytes;
    return h + 1;
}

void rc_work_free(void *w)
{
    if (w == NULL)
        return;
    rc_work_hdr *h = (rc_work_hdr *)w - 1;
    if (h->cap > RC_WORK_CACHE_BYTES) {
        free(h);
        return;
    }
    free(__atomic_exchange_n(&rc_work_slot, h, __ATOMIC_ACQ_REL));
}

#define GATES_IMPL "_layout_impl.h"
#include "_instantiate.h"
