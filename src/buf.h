/*
 * src/buf.h -- bounds-checked reader/writer for SSH wire types (RFC 4251 s5).
 *
 * One byte array, two cursors:
 *
 *     0 <= rpos <= wpos <= cap <= max <= SF_BUF_MAX,  wpos <= hwm <= cap
 *
 *     d: [ consumed | readable: wpos - rpos | writable: cap - wpos ]
 *
 * Rules:
 *  - A get succeeds completely, or fails with the buffer unchanged and its
 *    outputs cleared (0 / NULL).
 *  - Every length read from the wire is checked against the readable bytes
 *    and against an explicit caller limit before it is used.
 *  - Functions return 0 or a negative SF_ERR_*; nothing aborts on peer input.
 *  - sf_buf_reset()/sf_buf_free() wipe every byte ever written (up to hwm).
 *  - Pointers handed out (views, reservations) stay valid until the next call
 *    that grows b.
 * Fields are private to buf.c; the struct is visible only so that buffers
 * and sub-views can live on the stack.
 */
#ifndef SF_BUF_H
#define SF_BUF_H

#include "sf.h"

#define SF_BUF_MAX (SF_PACKET_MAX + 4096) /* hard ceiling for any one buffer */

struct sf_buf {
    uint8_t *d;          /* storage; ours if owned, else the caller's */
    size_t rpos;         /* next byte to read */
    size_t wpos;         /* next byte to write */
    size_t hwm;          /* highest wpos since last wipe: bytes to wipe */
    size_t cap;          /* bytes available at d */
    size_t max;          /* growth ceiling (owned buffers); cap <= max */
    unsigned owned : 1;  /* d allocated by sf_buf_alloc, freed by sf_buf_free */
    unsigned ro : 1;     /* read-only view: every put fails SF_ERR_READONLY */
    unsigned pinned : 1; /* a raw pointer is out: growth forbidden */
};

/* Lifecycle */
void sf_buf_init_mem(struct sf_buf *b, void *mem, size_t len);         /* fixed, caller storage, empty */
void sf_buf_init_view(struct sf_buf *b, const void *data, size_t len); /* read-only, all readable */
SF_MUST_USE int sf_buf_alloc(struct sf_buf *b, size_t initial, size_t max); /* growable, owned */
void sf_buf_reset(struct sf_buf *b);   /* wipe to hwm; rpos = wpos = 0; unpin */
void sf_buf_free(struct sf_buf *b);    /* wipe; free if owned; safe on zeroed struct */
void sf_buf_compact(struct sf_buf *b); /* move readable bytes to d[0] */

/* Queries */
size_t sf_buf_len(const struct sf_buf *b);         /* readable bytes */
size_t sf_buf_room(const struct sf_buf *b);        /* writable bytes before max */
const uint8_t *sf_buf_ptr(const struct sf_buf *b); /* start of readable bytes */
uint8_t *sf_buf_mutable_ptr(struct sf_buf *b);     /* same, writable (NULL for views) */

/* Reader: SSH wire types */
SF_MUST_USE int sf_buf_get_u8(struct sf_buf *b, uint8_t *v);
SF_MUST_USE int sf_buf_get_bool(struct sf_buf *b, bool *v); /* nonzero = true */
SF_MUST_USE int sf_buf_get_u32(struct sf_buf *b, uint32_t *v);
SF_MUST_USE int sf_buf_get_u64(struct sf_buf *b, uint64_t *v);
SF_MUST_USE int sf_buf_get_bytes(struct sf_buf *b, void *out, size_t n); /* exactly n */
SF_MUST_USE int sf_buf_skip(struct sf_buf *b, size_t n);
/* string = uint32 len || bytes; *p points into b (zero-copy view). */
SF_MUST_USE int sf_buf_get_string(struct sf_buf *b, const uint8_t **p, size_t *n, size_t limit);
/* string as a read-only sub-reader over its contents (key blobs, signatures). */
SF_MUST_USE int sf_buf_get_sub(struct sf_buf *b, struct sf_buf *sub, size_t limit);
/* string copied into out[outsz] and NUL-terminated; rejects embedded NUL and len >= outsz. */
SF_MUST_USE int sf_buf_get_cstr(struct sf_buf *b, char *out, size_t outsz);
/* name-list: a sub-reader plus an iterator that yields each name (no empty names). */
SF_MUST_USE int sf_buf_get_namelist(struct sf_buf *b, struct sf_buf *list, size_t limit);
/* Returns 1 and the next name, 0 at the end, or < 0 on an empty name. */
SF_MUST_USE int sf_namelist_next(struct sf_buf *list, const char **name, size_t *len);
/* mpint that must be non-negative and minimally encoded; view of the magnitude (no leading 0). */
SF_MUST_USE int sf_buf_get_mpint_pos(struct sf_buf *b, const uint8_t **p, size_t *n, size_t limit);
SF_MUST_USE int sf_buf_expect_end(const struct sf_buf *b); /* SF_ERR_TRAILING_DATA */
SF_MUST_USE int sf_buf_peek_u32(const struct sf_buf *b, size_t off, uint32_t *v);

/* Writer */
SF_MUST_USE int sf_buf_put_u8(struct sf_buf *b, uint8_t v);
SF_MUST_USE int sf_buf_put_bool(struct sf_buf *b, bool v);
SF_MUST_USE int sf_buf_put_u32(struct sf_buf *b, uint32_t v);
SF_MUST_USE int sf_buf_put_u64(struct sf_buf *b, uint64_t v);
SF_MUST_USE int sf_buf_put_bytes(struct sf_buf *b, const void *p, size_t n);
SF_MUST_USE int sf_buf_put_string(struct sf_buf *b, const void *p, size_t n);
SF_MUST_USE int sf_buf_put_cstr(struct sf_buf *b, const char *s);
SF_MUST_USE int sf_buf_put_sub(struct sf_buf *b, const struct sf_buf *v); /* readable bytes of v as string */
/* unsigned big-endian magnitude -> mpint (strips leading zeros, adds 0x00 if top bit set) */
SF_MUST_USE int sf_buf_put_mpint(struct sf_buf *b, const uint8_t *be, size_t n);
/* Raw write window of n bytes at the write cursor (advances wpos); pins b until sf_buf_reset. */
SF_MUST_USE int sf_buf_reserve(struct sf_buf *b, size_t n, uint8_t **p);
/* Length-prefixed region whose size is known only afterwards (s2n reservation). */
struct sf_buf_mark {
    size_t at;
};
SF_MUST_USE int sf_buf_open_string(struct sf_buf *b, struct sf_buf_mark *m);
SF_MUST_USE int sf_buf_close_string(struct sf_buf *b, const struct sf_buf_mark *m);

/* Big-endian helpers for raw arrays (not peer-length driven). */
static inline uint32_t sf_load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void sf_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void sf_store_be64(uint8_t *p, uint64_t v)
{
    sf_store_be32(p, (uint32_t)(v >> 32));
    sf_store_be32(p + 4, (uint32_t)v);
}

#endif
