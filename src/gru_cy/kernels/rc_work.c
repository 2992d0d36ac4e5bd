/* Workspace memory for the kernels (rc_work.h). */

#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* posix_memalign, in a strict C mode too */
#endif
#include <stdlib.h>

#include "rc_work.h"

/* An atomic pointer swap: MSVC's name, else GCC's (clang too). */
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define RC_SWAP(slot, p) _InterlockedExchangePointer((void *volatile *)(slot), (p))
#else
#define RC_SWAP(slot, p) __atomic_exchange_n((slot), (p), __ATOMIC_ACQ_REL)
#endif

/* Aligned blocks: the Windows C runtime's functions (MSVC and MinGW),
 * else POSIX's. */
#if defined(_WIN32)
#include <malloc.h>
static void *rc_aligned_alloc(size_t bytes) { return _aligned_malloc(bytes, 64); }
static void rc_aligned_free(void *p) { _aligned_free(p); }
#else
static void *rc_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}
static void rc_aligned_free(void *p) { free(p); }
#endif

/* A block: a 64-byte header holding its capacity, then the memory (64-byte
 * aligned). */
typedef struct {
    size_t cap;
    char pad[64 - sizeof(size_t)];
} rc_work_hdr;

/* One slot per kind of block (an rc_work_hdr *, or NULL) and its cap. */
static void *rc_slots[2];
static const size_t rc_caps[2] = {RC_WORK_CACHE_BYTES, RC_TAPE_CACHE_BYTES};

void *rc_block_alloc(int kind, size_t bytes)
{
    rc_work_hdr *h = (rc_work_hdr *)RC_SWAP(&rc_slots[kind], NULL);
    if (h != NULL && h->cap >= bytes)
        return h + 1;
    if (h != NULL)
        rc_aligned_free(h);
    if (bytes > (size_t)-1 - sizeof(rc_work_hdr))
        return NULL;
    h = (rc_work_hdr *)rc_aligned_alloc(sizeof(rc_work_hdr) + bytes);
    if (h == NULL)
        return NULL;
    h->cap = bytes;
    return h + 1;
}

void rc_block_free(int kind, void *w)
{
    if (w == NULL)
        return;
    rc_work_hdr *h = (rc_work_hdr *)w - 1;
    if (h->cap > rc_caps[kind]) {
        rc_aligned_free(h);
        return;
    }
    void *old = RC_SWAP(&rc_slots[kind], (void *)h);
    if (old != NULL)
        rc_aligned_free(old);
}

void *rc_work_alloc(size_t bytes)
{
    return rc_block_alloc(RC_BLOCK_WORK, bytes);
}

void rc_work_free(void *w)
{
    rc_block_free(RC_BLOCK_WORK, w);
}
