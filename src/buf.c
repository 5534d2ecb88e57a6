/*
 * src/buf.c -- bounds-checked reader/writer for SSH wire types (RFC 4251 s5).
 *
 * Owns: every byte-level read and write of SSH wire data; the buffer
 * invariants (see buf.h) and their checker; growth of owned buffers and the
 * wiping of every byte ever written. Must never: trust a length from the
 * wire before checking it against the readable bytes and the caller's limit,
 * abort on peer input, use plain realloc (it would leave unwiped copies), or
 * write to a read-only view.
 *
 * Decisions beyond buf.h:
 *  - SF_BUF_MAX bounds owned buffers. Caller storage (init_mem / init_view)
 *    may be larger (e.g. a whole known_hosts file); then cap = max = len.
 *  - Views handed out by gets do not pin; only sf_buf_reserve() pins.
 *  - Marks (open/close_string) are offsets: growth keeps them valid,
 *    sf_buf_compact() and sf_buf_reset() invalidate them.
 *  - sf_buf_get_mpint_pos()'s limit bounds the magnitude (without the 0x00
 *    sign byte), so a caller passes the size of the number it expects.
 */
#include "buf.h"

#include <string.h>

#define BUF_GROW_MIN 256 /* first allocation of an empty owned buffer */

/* The invariant of buf.h; called at every entry point. */
static void
buf_check(const struct sf_buf *b)
{
    SF_ASSERT(b != NULL);
    SF_ASSERT(b->rpos <= b->wpos);
    SF_ASSERT(b->wpos <= b->hwm);
    SF_ASSERT(b->hwm <= b->cap);
    SF_ASSERT(b->cap <= b->max);
    SF_ASSERT(!b->owned || b->max <= SF_BUF_MAX);
    SF_ASSERT(b->d != NULL || b->cap == 0);
    SF_ASSERT(!(b->owned && b->ro));
    SF_ASSERT(!(b->ro && b->pinned));
}

static size_t
avail(const struct sf_buf *b)
{
    return b->wpos - b->rpos;
}

/* Start of readable bytes, never NULL + offset. */
static const uint8_t *
rptr(const struct sf_buf *b)
{
    return b->d != NULL ? b->d + b->rpos : NULL;
}

/* ---------------------------------------------------------------- lifecycle */

void
sf_buf_init_mem(struct sf_buf *b, void *mem, size_t len)
{
    SF_ASSERT(b != NULL);
    memset(b, 0, sizeof(*b));
    if (mem != NULL) {
        b->d = mem;
        b->cap = len;
        b->max = len;
    }
    buf_check(b);
}

void
sf_buf_init_view(struct sf_buf *b, const void *data, size_t len)
{
    SF_ASSERT(b != NULL);
    memset(b, 0, sizeof(*b));
    b->ro = 1;
    if (data != NULL) {
        /* The cast is safe: ro makes every write path refuse. */
        b->d = (uint8_t *)(uintptr_t)data;
        b->cap = b->max = b->wpos = b->hwm = len;
    }
    buf_check(b);
}

int
sf_buf_alloc(struct sf_buf *b, size_t initial, size_t max)
{
    SF_ASSERT(b != NULL);
    memset(b, 0, sizeof(*b));
    if (max == 0 || max > SF_BUF_MAX || initial > max) {
        return SF_ERR_INVALID;
    }
    if (initial != 0 && (b->d = sf_alloc(initial)) == NULL) {
        return SF_ERR_NOMEM;
    }
    b->cap = initial;
    b->max = max;
    b->owned = 1;
    buf_check(b);
    return 0;
}

void
sf_buf_reset(struct sf_buf *b)
{
    buf_check(b);
    if (!b->ro) {
        sf_wipe(b->d, b->hwm);
        b->hwm = 0;
        b->rpos = b->wpos = 0;
    } else {
        /* Never write to a view's storage: just empty it. */
        b->rpos = b->wpos = b->hwm = 0;
    }
    b->pinned = 0;
    buf_check(b);
}

void
sf_buf_free(struct sf_buf *b)
{
    if (b == NULL) {
        return;
    }
    buf_check(b);
    if (!b->ro) {
        sf_wipe(b->d, b->hwm);
    }
    if (b->owned) {
        sf_free(b->d);
    }
    memset(b, 0, sizeof(*b));
}

void
sf_buf_compact(struct sf_buf *b)
{
    size_t n;

    buf_check(b);
    if (b->ro || b->rpos == 0) {
        return;
    }
    /* Moving bytes under an outstanding reservation would be a bug. */
    SF_ASSERT(!b->pinned);
    n = avail(b);
    if (n != 0) {
        memmove(b->d, b->d + b->rpos, n);
    }
    /* The vacated tail may hold secrets; wipe it now rather than at reset. */
    sf_wipe(b->d + n, b->wpos - n);
    b->rpos = 0;
    b->wpos = n;
    buf_check(b);
}

/* ------------------------------------------------------------------ queries */

size_t
sf_buf_len(const struct sf_buf *b)
{
    buf_check(b);
    return avail(b);
}

size_t
sf_buf_room(const struct sf_buf *b)
{
    buf_check(b);
    if (b->ro) {
        return 0;
    }
    if (b->owned && !b->pinned) {
        return b->max - b->wpos;
    }
    return b->cap - b->wpos;
}

const uint8_t *
sf_buf_ptr(const struct sf_buf *b)
{
    buf_check(b);
    return rptr(b);
}

uint8_t *
sf_buf_mutable_ptr(struct sf_buf *b)
{
    buf_check(b);
    if (b->ro || b->d == NULL) {
        return NULL;
    }
    return b->d + b->rpos;
}

/* ------------------------------------------------------------------- reader */

int
sf_buf_get_u8(struct sf_buf *b, uint8_t *v)
{
    buf_check(b);
    *v = 0;
    if (avail(b) < 1) {
        return SF_ERR_INCOMPLETE;
    }
    *v = b->d[b->rpos++];
    return 0;
}

int
sf_buf_get_bool(struct sf_buf *b, bool *v)
{
    uint8_t u = 0;
    int r;

    *v = false;
    if ((r = sf_buf_get_u8(b, &u)) != 0) {
        return r;
    }
    *v = u != 0;
    return 0;
}

int
sf_buf_get_u32(struct sf_buf *b, uint32_t *v)
{
    buf_check(b);
    *v = 0;
    if (avail(b) < 4) {
        return SF_ERR_INCOMPLETE;
    }
    *v = sf_load_be32(b->d + b->rpos);
    b->rpos += 4;
    return 0;
}

int
sf_buf_get_u64(struct sf_buf *b, uint64_t *v)
{
    buf_check(b);
    *v = 0;
    if (avail(b) < 8) {
        return SF_ERR_INCOMPLETE;
    }
    *v = ((uint64_t)sf_load_be32(b->d + b->rpos) << 32) | sf_load_be32(b->d + b->rpos + 4);
    b->rpos += 8;
    return 0;
}

int
sf_buf_get_bytes(struct sf_buf *b, void *out, size_t n)
{
    buf_check(b);
    if (n == 0) {
        return 0;
    }
    if (avail(b) < n) {
        memset(out, 0, n);
        return SF_ERR_INCOMPLETE;
    }
    memcpy(out, b->d + b->rpos, n);
    b->rpos += n;
    return 0;
}

int
sf_buf_skip(struct sf_buf *b, size_t n)
{
    buf_check(b);
    if (avail(b) < n) {
        return SF_ERR_INCOMPLETE;
    }
    b->rpos += n;
    return 0;
}

int
sf_buf_peek_u32(const struct sf_buf *b, size_t off, uint32_t *v)
{
    buf_check(b);
    *v = 0;
    if (off > avail(b) || avail(b) - off < 4) {
        return SF_ERR_INCOMPLETE;
    }
    *v = sf_load_be32(b->d + b->rpos + off);
    return 0;
}

/*
 * RFC 4251 s5: string = uint32 length || length bytes. The declared length
 * is checked against the limit first (a lie is a lie even when truncated),
 * then against the readable bytes.
 */
int
sf_buf_get_string(struct sf_buf *b, const uint8_t **p, size_t *n, size_t limit)
{
    uint32_t len = 0;

    buf_check(b);
    *p = NULL;
    *n = 0;
    if (avail(b) < 4) {
        return SF_ERR_INCOMPLETE;
    }
    len = sf_load_be32(b->d + b->rpos);
    if (len > limit) {
        return SF_ERR_TOO_LARGE;
    }
    if (len > avail(b) - 4) {
        return SF_ERR_INCOMPLETE;
    }
    *p = b->d + b->rpos + 4;
    *n = len;
    b->rpos += 4 + (size_t)len;
    return 0;
}

int
sf_buf_get_sub(struct sf_buf *b, struct sf_buf *sub, size_t limit)
{
    const uint8_t *p = NULL;
    size_t n = 0;
    int r;

    SF_ASSERT(sub != NULL && sub != b);
    memset(sub, 0, sizeof(*sub));
    if ((r = sf_buf_get_string(b, &p, &n, limit)) != 0) {
        return r;
    }
    sf_buf_init_view(sub, p, n);
    return 0;
}

int
sf_buf_get_cstr(struct sf_buf *b, char *out, size_t outsz)
{
    const uint8_t *p = NULL;
    size_t n = 0, save;
    int r;

    buf_check(b);
    if (outsz == 0) {
        return SF_ERR_TOO_LARGE;
    }
    memset(out, 0, outsz);
    save = b->rpos;
    if ((r = sf_buf_get_string(b, &p, &n, outsz - 1)) != 0) {
        return r;
    }
    if (n != 0 && memchr(p, '\0', n) != NULL) {
        b->rpos = save;
        return SF_ERR_BAD_FORMAT;
    }
    if (n != 0) {
        memcpy(out, p, n);
    }
    out[n] = '\0';
    return 0;
}

/*
 * RFC 4251 s5/s6: a name-list is a string of comma-separated names; no name
 * is empty, and names are printable US-ASCII without whitespace. The whole
 * list is checked here, so a bad list fails before any name is used.
 * The 64-character name limit of s6 is not enforced: an overlong name just
 * never matches one of ours.
 */
static int
namelist_valid(const uint8_t *p, size_t n)
{
    size_t i, namelen = 0;

    for (i = 0; i < n; i++) {
        if (p[i] == ',') {
            if (namelen == 0) {
                return SF_ERR_BAD_FORMAT;
            }
            namelen = 0;
            continue;
        }
        if (p[i] <= 0x20 || p[i] >= 0x7f) {
            return SF_ERR_BAD_FORMAT;
        }
        namelen++;
    }
    if (n != 0 && namelen == 0) {
        return SF_ERR_BAD_FORMAT; /* trailing comma */
    }
    return 0;
}

int
sf_buf_get_namelist(struct sf_buf *b, struct sf_buf *list, size_t limit)
{
    const uint8_t *p = NULL;
    size_t n = 0, save;
    int r;

    buf_check(b);
    SF_ASSERT(list != NULL && list != b);
    memset(list, 0, sizeof(*list));
    save = b->rpos;
    if ((r = sf_buf_get_string(b, &p, &n, limit)) != 0) {
        return r;
    }
    if ((r = namelist_valid(p, n)) != 0) {
        b->rpos = save;
        return r;
    }
    sf_buf_init_view(list, p, n);
    return 0;
}

int
sf_namelist_next(struct sf_buf *list, const char **name, size_t *len)
{
    const uint8_t *p = NULL, *comma = NULL;
    size_t n, namelen;

    buf_check(list);
    *name = NULL;
    *len = 0;
    n = avail(list);
    if (n == 0) {
        return 0;
    }
    p = list->d + list->rpos;
    comma = memchr(p, ',', n);
    namelen = comma != NULL ? (size_t)(comma - p) : n;
    if (namelen == 0) {
        return SF_ERR_BAD_FORMAT; /* leading comma or ",," */
    }
    if (comma != NULL && namelen + 1 == n) {
        return SF_ERR_BAD_FORMAT; /* trailing comma */
    }
    *name = (const char *)p;
    *len = namelen;
    list->rpos += comma != NULL ? namelen + 1 : namelen;
    return 1;
}

/*
 * RFC 4251 s5: mpint, two's complement, big-endian, minimal: no leading 0x00
 * unless the next byte has its top bit set; zero is the empty string.
 */
int
sf_buf_get_mpint_pos(struct sf_buf *b, const uint8_t **p, size_t *n, size_t limit)
{
    const uint8_t *s = NULL;
    size_t len = 0, save;
    int r;

    buf_check(b);
    *p = NULL;
    *n = 0;
    save = b->rpos;
    /* limit bounds the magnitude: allow one extra byte for the sign. */
    if ((r = sf_buf_get_string(b, &s, &len, limit < SIZE_MAX ? limit + 1 : limit)) != 0) {
        return r;
    }
    if (len == 0) {
        *p = s;
        return 0;
    }
    if ((s[0] & 0x80) != 0) {
        r = SF_ERR_BAD_FORMAT; /* negative */
        goto fail;
    }
    if (s[0] == 0x00) {
        if (len == 1 || (s[1] & 0x80) == 0) {
            r = SF_ERR_BAD_FORMAT; /* non-minimal */
            goto fail;
        }
        s++;
        len--;
    }
    if (len > limit) {
        r = SF_ERR_TOO_LARGE;
        goto fail;
    }
    *p = s;
    *n = len;
    return 0;
fail:
    b->rpos = save;
    return r;
}

int
sf_buf_expect_end(const struct sf_buf *b)
{
    buf_check(b);
    return avail(b) == 0 ? 0 : SF_ERR_TRAILING_DATA;
}

/* ------------------------------------------------------------------- writer */

/*
 * Make room for n more bytes at wpos: grow an owned, unpinned buffer by
 * doubling up to its max, copying into fresh storage and wiping the old.
 */
static int
buf_ensure(struct sf_buf *b, size_t n)
{
    size_t need, newcap;
    uint8_t *nd = NULL;

    if (b->ro) {
        return SF_ERR_READONLY;
    }
    if (n <= b->cap - b->wpos) {
        return 0;
    }
    if (!b->owned || b->pinned || n > b->max - b->wpos) {
        return SF_ERR_NO_SPACE;
    }
    need = b->wpos + n;
    newcap = b->cap != 0 ? b->cap : BUF_GROW_MIN;
    while (newcap < need) {
        newcap = newcap > b->max / 2 ? b->max : newcap * 2;
    }
    newcap = SF_MIN(newcap, b->max);
    if ((nd = sf_alloc(newcap)) == NULL) {
        return SF_ERR_NOMEM;
    }
    if (b->wpos != 0) {
        memcpy(nd, b->d, b->wpos);
    }
    sf_freezero(b->d, b->hwm);
    b->d = nd;
    b->cap = newcap;
    b->hwm = b->wpos; /* the fresh storage beyond wpos is zero */
    return 0;
}

/* Account for n bytes written at the old wpos. */
static void
buf_advance(struct sf_buf *b, size_t n)
{
    b->wpos += n;
    b->hwm = SF_MAX(b->hwm, b->wpos);
    buf_check(b);
}

int
sf_buf_put_bytes(struct sf_buf *b, const void *p, size_t n)
{
    const uint8_t *src = p;
    size_t off = 0;
    bool inside = false;
    int r;

    buf_check(b);
    if (b->ro) {
        return SF_ERR_READONLY;
    }
    if (n == 0) {
        return 0;
    }
    /* The source may lie inside b itself; growth would free it, so keep an offset. */
    if (b->d != NULL && src >= b->d && src < b->d + b->cap) {
        inside = true;
        off = (size_t)(src - b->d);
    }
    if ((r = buf_ensure(b, n)) != 0) {
        return r;
    }
    if (inside) {
        src = b->d + off;
    }
    memmove(b->d + b->wpos, src, n);
    buf_advance(b, n);
    return 0;
}

int
sf_buf_put_u8(struct sf_buf *b, uint8_t v)
{
    return sf_buf_put_bytes(b, &v, 1);
}

int
sf_buf_put_bool(struct sf_buf *b, bool v)
{
    return sf_buf_put_u8(b, v ? 1 : 0);
}

int
sf_buf_put_u32(struct sf_buf *b, uint32_t v)
{
    uint8_t t[4];

    sf_store_be32(t, v);
    return sf_buf_put_bytes(b, t, sizeof(t));
}

int
sf_buf_put_u64(struct sf_buf *b, uint64_t v)
{
    uint8_t t[8];

    sf_store_be64(t, v);
    return sf_buf_put_bytes(b, t, sizeof(t));
}

/* uint32 length || optional 0x00 || p[0..n): reserved in one step so it is all or nothing. */
static int
put_string_prefixed(struct sf_buf *b, bool zero, const void *p, size_t n)
{
    const uint8_t *src = p;
    size_t total, off = 0, hdr = zero ? 5 : 4;
    bool inside = false;
    int r;

    buf_check(b);
    if (b->ro) {
        return SF_ERR_READONLY;
    }
    if (n > UINT32_MAX - (zero ? 1 : 0)) {
        return SF_ERR_TOO_LARGE;
    }
    if (n != 0 && b->d != NULL && src >= b->d && src < b->d + b->cap) {
        inside = true;
        off = (size_t)(src - b->d);
    }
    total = hdr + n;
    if (total < n || (r = buf_ensure(b, total)) != 0) {
        return total < n ? SF_ERR_TOO_LARGE : r;
    }
    if (inside) {
        src = b->d + off;
    }
    if (n != 0) {
        memmove(b->d + b->wpos + hdr, src, n);
    }
    sf_store_be32(b->d + b->wpos, (uint32_t)(n + (zero ? 1 : 0)));
    if (zero) {
        b->d[b->wpos + 4] = 0x00;
    }
    buf_advance(b, total);
    return 0;
}

int
sf_buf_put_string(struct sf_buf *b, const void *p, size_t n)
{
    return put_string_prefixed(b, false, p, n);
}

int
sf_buf_put_cstr(struct sf_buf *b, const char *s)
{
    return put_string_prefixed(b, false, s, s != NULL ? strlen(s) : 0);
}

int
sf_buf_put_sub(struct sf_buf *b, const struct sf_buf *v)
{
    buf_check(v);
    return put_string_prefixed(b, false, rptr(v), avail(v));
}

int
sf_buf_put_mpint(struct sf_buf *b, const uint8_t *be, size_t n)
{
    while (n != 0 && be[0] == 0x00) {
        be++;
        n--;
    }
    if (n == 0) {
        return put_string_prefixed(b, false, NULL, 0);
    }
    return put_string_prefixed(b, (be[0] & 0x80) != 0, be, n);
}

int
sf_buf_reserve(struct sf_buf *b, size_t n, uint8_t **p)
{
    int r;

    buf_check(b);
    *p = NULL;
    if ((r = buf_ensure(b, n)) != 0) {
        return r;
    }
    b->pinned = 1;
    *p = b->d != NULL ? b->d + b->wpos : NULL;
    buf_advance(b, n);
    return 0;
}

int
sf_buf_open_string(struct sf_buf *b, struct sf_buf_mark *m)
{
    size_t at;
    int r;

    buf_check(b);
    m->at = SIZE_MAX;
    at = b->wpos;
    if ((r = sf_buf_put_u32(b, 0)) != 0) {
        return r;
    }
    m->at = at;
    return 0;
}

int
sf_buf_close_string(struct sf_buf *b, const struct sf_buf_mark *m)
{
    size_t len;

    buf_check(b);
    if (b->ro) {
        return SF_ERR_READONLY;
    }
    if (m->at == SIZE_MAX || m->at > b->wpos || b->wpos - m->at < 4) {
        return SF_ERR_INVALID;
    }
    len = b->wpos - m->at - 4;
    if (len > UINT32_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    sf_store_be32(b->d + m->at, (uint32_t)len);
    return 0;
}
