/*
 * src/compress.h -- SSH payload compression (RFC 4253 s6.2 "zlib", and
 * OpenSSH's delayed "zlib@openssh.com", PROTOCOL s1.2) over the system zlib.
 *
 * One struct sf_comp is one direction's persistent zlib stream: deflate for
 * what we send, inflate for what we receive. Each packet's payload is
 * deflated with a partial flush (Z_PARTIAL_FLUSH, as OpenSSH does), so the
 * peer can decode every packet completely on arrival, and the history
 * carries over from packet to packet. Inflation is bounded by the caller's
 * output size: a packet that would inflate to more is an error, never a
 * bigger allocation (zlib bombs). When a stream starts (which NEWKEYS,
 * delayed until authentication or not) is decided by kexproto.c; this
 * module only compresses and decompresses.
 */
#ifndef SF_COMPRESS_H
#define SF_COMPRESS_H

#include "sf.h"

/* Compression algorithms, by their SSH names. */
enum sf_comp_alg {
    SF_COMP_NONE = 0,    /* "none" */
    SF_COMP_ZLIB = 1,    /* "zlib": starts with the NEWKEYS that negotiated it */
    SF_COMP_DELAYED = 2, /* "zlib@openssh.com": starts after USERAUTH_SUCCESS */
};

/* Every name we implement, for sshflow_supported(). */
#define SF_COMP_ALL_LIST "none,zlib@openssh.com,zlib"
/* What "Compression yes" offers (OpenSSH's client order). */
#define SF_COMP_YES_LIST "zlib@openssh.com,zlib,none"
/* What "Compression no" (the default) offers. */
#define SF_COMP_NO_LIST "none"

/* The SSH name of alg ("none" for anything unknown). */
const char *sf_comp_alg_name(int alg);
/* The algorithm named by name[0..n), or -1 if it is not one of ours. */
int sf_comp_alg_find(const char *name, size_t n);

struct sf_comp;

/*
 * A fresh stream: deflate (compress what we send) if tx, else inflate.
 * Returns 0 or SF_ERR_NOMEM. Everything zlib allocates goes through
 * sf_alloc and is wiped when freed (the history holds session plaintext).
 */
SF_MUST_USE int sf_comp_new(struct sf_comp **out, bool tx);
/* Free (wiping); NULL is fine. */
void sf_comp_free(struct sf_comp *z);

/*
 * Output room that always suffices to deflate n bytes as one packet
 * (the zlib header on the first packet, stored blocks for incompressible
 * data, the partial flush).
 */
size_t sf_comp_bound(size_t n);
#define SF_COMP_BOUND(n) ((n) + ((n) >> 10) + 64)

/*
 * Deflate in[0..n) (n >= 1) as the next packet's payload into
 * out[0..outsz): *outlen bytes, ending with a partial flush. Returns 0,
 * SF_ERR_TOO_LARGE if out was too small, SF_ERR_INVALID for n == 0,
 * SF_ERR_NOMEM. After an error the stream is unusable (every later call
 * fails): its state no longer matches what the peer has seen.
 */
SF_MUST_USE int sf_comp_deflate(struct sf_comp *z, const uint8_t *in, size_t n, uint8_t *out,
                                size_t outsz, size_t *outlen);

/*
 * Inflate one packet's payload in[0..n) into out[0..max): *outlen bytes.
 * Returns 0, or:
 *   SF_ERR_TOO_LARGE   it would inflate to more than max bytes (checked
 *                      without producing them: at most max + 1 bytes are
 *                      ever written, to out or a 1-byte probe),
 *   SF_ERR_BAD_FORMAT  invalid deflate data, a finished stream (the peer
 *                      must never end it), data that stops inside a block
 *                      that already produced output (a payload not ending
 *                      with a flush: truncated), or an empty result (every
 *                      payload has a message type),
 *   SF_ERR_NOMEM.
 * Corruption that still decodes (deflate has no per-packet check; the
 * Adler-32 comes only at a stream's end, which SSH never reaches) is not
 * detectable here: the packet's MAC is what guards the bytes.
 * After an error the stream is unusable.
 */
SF_MUST_USE int sf_comp_inflate(struct sf_comp *z, const uint8_t *in, size_t n, uint8_t *out,
                                size_t max, size_t *outlen);

#endif
