/*
 * src/ring.c -- fixed-capacity byte ring for channel data.
 *
 * Owns: the ring storage (allocated once at init, wiped and freed at free)
 * and its head/len arithmetic. Must never: grow, block, lock (the channel
 * holds the lock), or parse the bytes it carries.
 */
#include "ring.h"

#include <string.h>

static void
ring_check(const struct sf_ring *r)
{
    SF_ASSERT(r != NULL);
    SF_ASSERT(r->len <= r->cap);
    SF_ASSERT(r->cap == 0 || r->head < r->cap);
    SF_ASSERT(r->d != NULL || r->cap == 0);
}

int
sf_ring_init(struct sf_ring *r, size_t cap)
{
    SF_ASSERT(r != NULL);
    memset(r, 0, sizeof(*r));
    if (cap == 0) {
        return SF_ERR_INVALID;
    }
    if ((r->d = sf_alloc(cap)) == NULL) {
        return SF_ERR_NOMEM;
    }
    r->cap = cap;
    ring_check(r);
    return 0;
}

void
sf_ring_free(struct sf_ring *r)
{
    if (r == NULL) {
        return;
    }
    ring_check(r);
    sf_freezero(r->d, r->cap);
    memset(r, 0, sizeof(*r));
}

size_t
sf_ring_len(const struct sf_ring *r)
{
    ring_check(r);
    return r->len;
}

size_t
sf_ring_room(const struct sf_ring *r)
{
    ring_check(r);
    return r->cap - r->len;
}

size_t
sf_ring_write(struct sf_ring *r, const void *p, size_t n)
{
    const uint8_t *src = p;
    size_t tail, first;

    ring_check(r);
    n = SF_MIN(n, r->cap - r->len);
    if (n == 0) {
        return 0;
    }
    /* tail = (head + len) mod cap, without overflow */
    if (r->len >= r->cap - r->head) {
        tail = r->len - (r->cap - r->head);
    } else {
        tail = r->head + r->len;
    }
    first = SF_MIN(n, r->cap - tail);
    memcpy(r->d + tail, src, first);
    if (n > first) {
        memcpy(r->d, src + first, n - first);
    }
    r->len += n;
    ring_check(r);
    return n;
}

void
sf_ring_peek(const struct sf_ring *r, struct sf_span s[2])
{
    size_t first;

    ring_check(r);
    s[0].p = NULL;
    s[0].n = 0;
    s[1].p = NULL;
    s[1].n = 0;
    if (r->len == 0) {
        return;
    }
    first = SF_MIN(r->len, r->cap - r->head);
    s[0].p = r->d + r->head;
    s[0].n = first;
    if (r->len > first) {
        s[1].p = r->d;
        s[1].n = r->len - first;
    }
}

void
sf_ring_consume(struct sf_ring *r, size_t n)
{
    ring_check(r);
    SF_ASSERT(n <= r->len);
    n = SF_MIN(n, r->len); /* release builds: never go below empty */
    if (n == r->len) {
        /* Empty: restart at 0 so the next data is one contiguous span. */
        r->head = 0;
        r->len = 0;
        return;
    }
    r->head = n < r->cap - r->head ? r->head + n : n - (r->cap - r->head);
    r->len -= n;
    ring_check(r);
}

size_t
sf_ring_read(struct sf_ring *r, void *out, size_t n)
{
    struct sf_span s[2];
    uint8_t *dst = out;
    size_t a, b;

    sf_ring_peek(r, s);
    a = SF_MIN(n, s[0].n);
    if (a != 0) {
        memcpy(dst, s[0].p, a);
    }
    b = SF_MIN(n - a, s[1].n);
    if (b != 0) {
        memcpy(dst + a, s[1].p, b);
    }
    sf_ring_consume(r, a + b);
    return a + b;
}
