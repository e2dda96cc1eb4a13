/* _outbuf.h - where softmax_c's large fresh outputs live.
 *
 * A fresh output of many MiB costs more in the kernel's page faults than in
 * the softmax itself: freed by the caller, its pages go back to the system
 * (glibc unmaps every block of 32 MiB or more; a VM's balloon driver may
 * even hand them back to the host), and the next call faults the same
 * number of new, zeroed pages in again.  A loop that calls sc.softmax on the
 * logits of each step pays that on every call.
 *
 * So outputs of SC_OB_MIN bytes or more are allocated through a NumPy
 * memory handler (NEP 49) of our own, installed only for the moment the
 * output array is created (the handler is a context variable; the array
 * keeps a reference to it and frees through it, whoever frees it):
 *   - each block is its own mapping, 2 MiB aligned and advised for huge
 *     pages, with the data at the offset in its page where malloc puts
 *     large blocks, and so NumPy its own large buffers (16 bytes past a
 *     page with glibc): sc_ob.head bytes in.  A loop that reads one array
 *     while it writes another a little lower in its page stalls its loads
 *     on false store matches (4K aliasing), so an output placed elsewhere
 *     in its page (a cache line in, say) makes softmax_vjp(y, g, out=) with
 *     y from softmax_c and out from NumPy far slower than with all three
 *     from either; at NumPy's offset every mix runs as the all-NumPy one;
 *   - a freed block is kept, up to SC_OB_SLOTS blocks and a byte limit
 *     (sc_ob.limit: SOFTMAX_C_OUTPUT_CACHE_MB, by default 256 MiB or a
 *     sixteenth of the memory), for the next output of about its size;
 *     a block that does not fit goes back to the system at once (munmap),
 *     the oldest kept ones first.  The memory kept stays in the resident
 *     set, as glibc keeps up to 64 MiB of freed heap.  (Not MADV_FREE,
 *     which would let the kernel take it back under pressure: the advice
 *     and its TLB shootdowns on every free cost more than the page faults
 *     saved; docs/performance.md, "Output blocks".)
 * Arrays never see any of this: they own their data as with np.empty.
 *
 * Where mmap or NEP 49 is missing (or under AddressSanitizer, which should
 * see NumPy's own buffers), SC_OB_ENABLED is 0 and outputs come from
 * np.empty as before. */
#ifndef SOFTMAX_C_OUTBUF_H
#define SOFTMAX_C_OUTBUF_H

#include <Python.h>
#include <stdint.h>
#include <string.h>
#include "numpy/ndarraytypes.h"

#if defined(__SANITIZE_ADDRESS__)
#define SC_OB_ENABLED 0
#elif (defined(__linux__) || defined(__APPLE__)) && NPY_FEATURE_VERSION >= NPY_1_22_API_VERSION
#define SC_OB_ENABLED 1
#else
#define SC_OB_ENABLED 0
#endif

/* outputs from 4 MiB: where NumPy itself starts asking for huge pages */
#define SC_OB_MIN ((size_t)4 << 20)
#define SC_OB_SLOTS 8
/* the data's offset in its block when malloc's cannot be learnt */
#define SC_OB_HEAD 16

#if SC_OB_ENABLED
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define SC_OB_ALIGN ((size_t)2 << 20)
#define SC_OB_MAGIC 0x73634f7574427566ULL /* "scOutBuf" */

/* The block's first bytes, before the data: which mapping it is. */
typedef struct {
    uint64_t magic;
    size_t len; /* the mapping's length, from the block's start */
} sc_ob_head;
typedef char sc_ob_head_fits[sizeof(sc_ob_head) <= SC_OB_HEAD ? 1 : -1];

static struct {
    pthread_mutex_t lock;
    char *base[SC_OB_SLOTS]; /* kept blocks, oldest first */
    size_t len[SC_OB_SLOTS];
    int n;
    size_t kept;  /* bytes in kept blocks */
    size_t limit; /* at most this many bytes kept; 0: keep none */
    uint64_t hits, misses;
    size_t head; /* the data's offset from the block's start, set once */
} sc_ob = {PTHREAD_MUTEX_INITIALIZER, {0}, {0}, 0, 0, 0, 0, 0, SC_OB_HEAD};

static void sc_ob_lock(void) { pthread_mutex_lock(&sc_ob.lock); }
static void sc_ob_unlock(void) { pthread_mutex_unlock(&sc_ob.lock); }

/* A new mapping of len bytes (a multiple of SC_OB_ALIGN), aligned to
 * SC_OB_ALIGN so that huge pages can back all of it; NULL if none. */
static char *sc_ob_map(size_t len)
{
    size_t span = len + SC_OB_ALIGN;
    char *p, *q;
    if (span < len)
        return NULL;
    p = (char *)mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == (char *)MAP_FAILED)
        return NULL;
    q = (char *)(((uintptr_t)p + SC_OB_ALIGN - 1) & ~(uintptr_t)(SC_OB_ALIGN - 1));
    if (q > p)
        munmap(p, (size_t)(q - p));
    if (q + len < p + span)
        munmap(q + len, (size_t)(p + span - (q + len)));
#ifdef MADV_HUGEPAGE
    madvise(q, len, MADV_HUGEPAGE); /* advice only: ignore a refusal */
#endif
    return q;
}

/* Take kept block i out of the list (the lock held); its length to *len. */
static char *sc_ob_take(int i, size_t *len)
{
    char *p = sc_ob.base[i];
    *len = sc_ob.len[i];
    sc_ob.kept -= *len;
    sc_ob.n--;
    for (; i < sc_ob.n; i++) {
        sc_ob.base[i] = sc_ob.base[i + 1];
        sc_ob.len[i] = sc_ob.len[i + 1];
    }
    return p;
}

static void *sc_ob_malloc(void *ctx, size_t size)
{
    size_t need, best_len = 0;
    char *p = NULL;
    int i, best = -1;
    (void)ctx;
    if (size > SIZE_MAX - sc_ob.head - SC_OB_ALIGN)
        return NULL;
    need = (size + sc_ob.head + SC_OB_ALIGN - 1) & ~(SC_OB_ALIGN - 1);
    sc_ob_lock();
    /* the smallest kept block that holds it, if it wastes under a third */
    for (i = 0; i < sc_ob.n; i++)
        if (sc_ob.len[i] >= need && sc_ob.len[i] - need <= need / 2
                && (best < 0 || sc_ob.len[i] < best_len)) {
            best = i;
            best_len = sc_ob.len[i];
        }
    if (best >= 0) {
        p = sc_ob_take(best, &best_len);
        sc_ob.hits++;
    } else {
        sc_ob.misses++;
    }
    sc_ob_unlock();
    if (p == NULL) {
        best_len = need;
        p = sc_ob_map(need);
        if (p == NULL)
            return NULL;
    }
    ((sc_ob_head *)p)->magic = SC_OB_MAGIC;
    ((sc_ob_head *)p)->len = best_len;
    return p + sc_ob.head;
}

static void sc_ob_free(void *ctx, void *ptr, size_t size)
{
    char *base, *drop[SC_OB_SLOTS + 1];
    size_t len, drop_len[SC_OB_SLOTS + 1];
    int i, ndrop = 0;
    (void)ctx;
    (void)size;
    if (ptr == NULL)
        return;
    base = (char *)ptr - sc_ob.head;
    len = ((sc_ob_head *)base)->len;
    ((sc_ob_head *)base)->magic = 0;
    sc_ob_lock();
    if (len > sc_ob.limit) {
        drop[ndrop] = base;
        drop_len[ndrop++] = len;
    } else {
        /* make room: the oldest kept blocks go first */
        while (sc_ob.n == SC_OB_SLOTS || sc_ob.kept + len > sc_ob.limit) {
            drop[ndrop] = sc_ob_take(0, &drop_len[ndrop]);
            ndrop++;
        }
        sc_ob.base[sc_ob.n] = base;
        sc_ob.len[sc_ob.n++] = len;
        sc_ob.kept += len;
    }
    sc_ob_unlock();
    for (i = 0; i < ndrop; i++)
        munmap(drop[i], drop_len[i]);
}

static void *sc_ob_calloc(void *ctx, size_t nelem, size_t elsize)
{
    void *p;
    if (elsize != 0 && nelem > SIZE_MAX / elsize)
        return NULL;
    p = sc_ob_malloc(ctx, nelem * elsize);
    if (p != NULL)
        memset(p, 0, nelem * elsize);
    return p;
}

static void *sc_ob_realloc(void *ctx, void *ptr, size_t new_size)
{
    size_t room;
    void *p;
    if (ptr == NULL)
        return sc_ob_malloc(ctx, new_size);
    room = ((sc_ob_head *)((char *)ptr - sc_ob.head))->len - sc_ob.head;
    if (new_size <= room)
        return ptr;
    p = sc_ob_malloc(ctx, new_size);
    if (p == NULL)
        return NULL;
    memcpy(p, ptr, room); /* the old size is at most room, the new above it */
    sc_ob_free(ctx, ptr, room);
    return p;
}

static PyDataMem_Handler sc_ob_handler = {
    "softmax_c_outputs",
    1,
    {NULL, sc_ob_malloc, sc_ob_calloc, sc_ob_realloc, sc_ob_free}
};

static void sc_ob_atfork_child(void)
{
    pthread_mutex_init(&sc_ob.lock, NULL);
}

/* Module start: the limit; the data's offset, that of a large malloc
 * block (past glibc's largest mmap threshold, so mapped as NumPy's large
 * buffers are, and never touched); and a child of fork gets a fresh lock
 * (the parent's may have been held by another thread). */
static void sc_ob_init(size_t limit)
{
    void *probe = malloc((size_t)64 << 20);
    if (probe != NULL) {
        size_t off = (size_t)((uintptr_t)probe % 4096);
        free(probe);
        if (off % 16 == 0) /* else keep SC_OB_HEAD: NumPy's alignment */
            sc_ob.head = off >= sizeof(sc_ob_head) ? off : off + 4096;
    }
    sc_ob.limit = limit;
    pthread_atfork(NULL, NULL, sc_ob_atfork_child);
}

/* Change the limit; kept blocks beyond it go back to the system. */
static void sc_ob_set_limit(size_t limit)
{
    char *drop[SC_OB_SLOTS];
    size_t drop_len[SC_OB_SLOTS];
    int i, ndrop = 0;
    sc_ob_lock();
    sc_ob.limit = limit;
    while (sc_ob.n > 0 && sc_ob.kept > limit) {
        drop[ndrop] = sc_ob_take(0, &drop_len[ndrop]);
        ndrop++;
    }
    sc_ob_unlock();
    for (i = 0; i < ndrop; i++)
        munmap(drop[i], drop_len[i]);
}

/* (limit, bytes kept, blocks kept, reuses, new mappings) */
static void sc_ob_stats(size_t *v)
{
    sc_ob_lock();
    v[0] = sc_ob.limit;
    v[1] = sc_ob.kept;
    v[2] = (size_t)sc_ob.n;
    v[3] = (size_t)sc_ob.hits;
    v[4] = (size_t)sc_ob.misses;
    sc_ob_unlock();
}

/* A new capsule for PyDataMem_SetHandler. */
static PyObject *sc_ob_capsule(void)
{
    return PyCapsule_New(&sc_ob_handler, "mem_handler", NULL);
}

#else /* !SC_OB_ENABLED */
static void sc_ob_init(size_t limit) { (void)limit; }
static void sc_ob_set_limit(size_t limit) { (void)limit; }
static void sc_ob_stats(size_t *v) { v[0] = v[1] = v[2] = v[3] = v[4] = 0; }
static PyObject *sc_ob_capsule(void) { Py_RETURN_NONE; }
#endif

#endif
