/*
 * src/compress.c -- payload compression for the packet layer: one zlib
 * stream per direction (RFC 4253 s6.2), partial flush after each packet,
 * bounded inflation.
 *
 * Owns: the zlib streams and the memory zlib asks for (through sf_alloc,
 * wiped on free). Must never: do I/O, take locks, decide when compression
 * starts (kexproto.c does), or let a peer's data make it write more than
 * the caller's bound.
 */
#include "compress.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include <zlib.h>

#define COMP_LEVEL 6 /* OpenSSH's level */

struct sf_comp {
    z_stream s;
    bool tx;     /* deflate, else inflate */
    bool inited; /* deflateInit / inflateInit succeeded: End must run */
    bool broken; /* a call failed: the stream no longer matches the peer's */
};

static const struct {
    int alg;
    const char *name;
} comp_names[] = {
    {SF_COMP_NONE, "none"},
    {SF_COMP_ZLIB, "zlib"},
    {SF_COMP_DELAYED, "zlib@openssh.com"},
};

const char *sf_comp_alg_name(int alg)
{
    for (size_t i = 0; i < sizeof(comp_names) / sizeof(comp_names[0]); i++) {
        if (comp_names[i].alg == alg) {
            return comp_names[i].name;
        }
    }
    return "none";
}

int sf_comp_alg_find(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(comp_names) / sizeof(comp_names[0]); i++) {
        if (strlen(comp_names[i].name) == n && memcmp(comp_names[i].name, name, n) == 0) {
            return comp_names[i].alg;
        }
    }
    return -1;
}

/*
 * zlib's allocator: sf_alloc (fault injection, zeroed), with the size kept
 * in a header so the free can wipe: the window and the hash tables hold
 * plaintext of the session.
 */
#define ZHDR _Alignof(max_align_t)
_Static_assert(ZHDR >= sizeof(size_t), "allocation header too small for a size");

static voidpf comp_zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size != 0 && items > (SIZE_MAX - ZHDR) / size) {
        return Z_NULL;
    }
    size_t n = (size_t)items * size;
    uint8_t *p = sf_alloc(n + ZHDR);
    if (p == NULL) {
        return Z_NULL;
    }
    memcpy(p, &n, sizeof(n));
    return p + ZHDR;
}

static void comp_zfree(voidpf opaque, voidpf address)
{
    (void)opaque;
    if (address == Z_NULL) {
        return;
    }
    uint8_t *p = (uint8_t *)address - ZHDR;
    size_t n = 0;
    memcpy(&n, p, sizeof(n));
    sf_freezero(p, n + ZHDR);
}

int sf_comp_new(struct sf_comp **out, bool tx)
{
    struct sf_comp *z = sf_alloc(sizeof(*z));
    int zr;

    *out = NULL;
    if (z == NULL) {
        return SF_ERR_NOMEM;
    }
    z->tx = tx;
    z->s.zalloc = comp_zalloc;
    z->s.zfree = comp_zfree;
    z->s.opaque = Z_NULL;
    /* zlib format (RFC 1950 header and Adler-32), 32 KiB window, as RFC 4253 s6.2 says. */
    zr = tx ? deflateInit(&z->s, COMP_LEVEL) : inflateInit(&z->s);
    if (zr != Z_OK) {
        sf_comp_free(z);
        return zr == Z_MEM_ERROR ? SF_ERR_NOMEM : SF_ERR_INTERNAL;
    }
    z->inited = true;
    *out = z;
    return 0;
}

void sf_comp_free(struct sf_comp *z)
{
    if (z == NULL) {
        return;
    }
    if (z->inited) {
        (void)(z->tx ? deflateEnd(&z->s) : inflateEnd(&z->s));
    }
    sf_freezero(z, sizeof(*z));
}

size_t sf_comp_bound(size_t n)
{
    /*
     * Incompressible input becomes stored blocks: 5 bytes of header per
     * block of at least 16 KiB at zlib's default memLevel, so 1 byte per
     * KiB is ample; plus the 2-byte zlib header, up to 7 bits left over from
     * the previous packet's flush, and the flush itself.
     */
    return SF_COMP_BOUND(n);
}

int sf_comp_deflate(struct sf_comp *z, const uint8_t *in, size_t n, uint8_t *out, size_t outsz,
                    size_t *outlen)
{
    z_stream *s = &z->s;
    int zr;

    *outlen = 0;
    if (!z->tx || z->broken) {
        return SF_ERR_INTERNAL;
    }
    if (n == 0) {
        return SF_ERR_INVALID; /* every payload has a message type */
    }
    if (n > UINT_MAX || outsz > UINT_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    s->next_in = (Bytef *)(uintptr_t)in; /* zlib's API is not const; deflate only reads it */
    s->avail_in = (uInt)n;
    s->next_out = out;
    s->avail_out = (uInt)outsz;
    zr = deflate(s, Z_PARTIAL_FLUSH);
    /*
     * With room left over, the flush is complete (zlib.h: a flush must be
     * repeated only while it fills the output). Otherwise part of this
     * payload would go out with the next one: the stream is lost.
     */
    if (zr != Z_OK || s->avail_in != 0 || s->avail_out == 0) {
        z->broken = true;
        s->next_in = NULL;
        s->next_out = NULL;
        return zr == Z_MEM_ERROR ? SF_ERR_NOMEM : (zr == Z_OK ? SF_ERR_TOO_LARGE : SF_ERR_INTERNAL);
    }
    *outlen = outsz - s->avail_out;
    s->next_in = NULL;
    s->next_out = NULL;
    return 0;
}

int sf_comp_inflate(struct sf_comp *z, const uint8_t *in, size_t n, uint8_t *out, size_t max,
                    size_t *outlen)
{
    z_stream *s = &z->s;
    uint8_t probe = 0;
    bool probing = false;
    size_t got = 0;      /* bytes written to out */
    size_t complete = 0; /* of them, the bytes of blocks that ended */
    unsigned idle = 0;
    int r = 0;

    *outlen = 0;
    if (z->tx || z->broken) {
        return SF_ERR_INTERNAL;
    }
    if (n > UINT_MAX || max > UINT_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    s->next_in = (Bytef *)(uintptr_t)in; /* inflate only reads it */
    s->avail_in = (uInt)n;
    s->next_out = out;
    s->avail_out = (uInt)max;
    /*
     * Z_BLOCK: inflate stops at every block boundary, so after each call
     * data_type says whether it is between blocks (bit 128). A payload
     * ended by a flush (partial, sync or full) leaves every block that
     * produced output complete: after its last end-of-block code come only
     * empty blocks, which may straddle into the next packet (RFC 4253
     * s6.2). Output from a block that has not ended means the payload was
     * cut.
     */
    for (;;) {
        uInt in0 = s->avail_in, out0 = s->avail_out;
        int zr = inflate(s, Z_BLOCK);
        switch (zr) {
        case Z_OK:
        case Z_BUF_ERROR: /* no progress possible: needs more input */
            break;
        case Z_MEM_ERROR:
            r = SF_ERR_NOMEM;
            goto out;
        case Z_STREAM_END: /* the peer ended its stream: nothing may follow */
        case Z_NEED_DICT:
        case Z_DATA_ERROR:
            r = SF_ERR_BAD_FORMAT;
            goto out;
        default:
            r = SF_ERR_INTERNAL;
            goto out;
        }
        if (probing) {
            if (s->avail_out == 0) {
                r = SF_ERR_TOO_LARGE; /* a byte beyond max exists */
                goto out;
            }
        } else {
            got = max - s->avail_out;
        }
        if (s->data_type & 128) {
            complete = got;
        }
        if (!probing && s->avail_out == 0) {
            /* out is full: is there more? One byte into a probe tells. */
            probing = true;
            s->next_out = &probe;
            s->avail_out = 1;
            continue;
        }
        if (s->avail_in == in0 && s->avail_out == out0) {
            /* Nothing moved: done if the input is used up. With input left
             * this only happens while held bits decode as empty blocks,
             * a few times at most; bound it anyway. */
            if (s->avail_in == 0) {
                break;
            }
            if (++idle > 16) {
                r = SF_ERR_BAD_FORMAT;
                goto out;
            }
            continue;
        }
        idle = 0;
    }
    if (got > complete || got == 0) {
        r = SF_ERR_BAD_FORMAT; /* cut inside a block, or no message at all */
        goto out;
    }
    *outlen = got;
out:
    if (r != 0) {
        z->broken = true;
    }
    sf_wipe(&probe, sizeof(probe));
    s->next_in = NULL;
    s->next_out = NULL;
    return r;
}
