/*
 * src/ring.h -- fixed-capacity byte ring for channel data.
 *
 * Capacity equals the local window; the ring never grows. Two-span
 * zero-copy access (peek + consume). Locking belongs to the channel, not the
 * ring. Wipes its storage when freed.
 */
#ifndef SF_RING_H
#define SF_RING_H

#include "sf.h"

struct sf_span {
    uint8_t *p;
    size_t n;
};
struct sf_ring {
    uint8_t *d;
    size_t cap, head, len;
}; /* fields private to ring.c */

SF_MUST_USE int sf_ring_init(struct sf_ring *r, size_t cap);
void sf_ring_free(struct sf_ring *r); /* wipes; safe on a zeroed struct */
size_t sf_ring_len(const struct sf_ring *r);
size_t sf_ring_room(const struct sf_ring *r);
size_t sf_ring_write(struct sf_ring *r, const void *p, size_t n); /* copies min(n, room) */
size_t sf_ring_read(struct sf_ring *r, void *out, size_t n);      /* copies min(n, len) */
void sf_ring_peek(const struct sf_ring *r, struct sf_span s[2]);  /* readable, as <= 2 spans */
void sf_ring_consume(struct sf_ring *r, size_t n);                /* n <= len, else SF_ASSERT */

#endif
