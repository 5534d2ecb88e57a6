/*
 * src/kex.h -- key exchange methods, exchange hash and key derivation
 * (RFC 4253 s7-8, RFC 5656 s4, RFC 8731, RFC 8268).
 *
 * Each method is a row in a table: it makes the client's ephemeral key,
 * writes the client's public value exactly as it appears both in the
 * KEX*_INIT message and in the exchange hash, and from the server's reply
 * computes the shared secret K. Everything is pure (no I/O); the transport
 * drives it.
 *
 * Owns: ephemeral private keys and the shared secret (wiped on free).
 */
#ifndef SF_KEX_H
#define SF_KEX_H

#include "buf.h"
#include "sf.h"

struct sf_kex_state; /* method-private ephemeral state */

struct sf_kex_method {
    const char *name;  /* e.g. "curve25519-sha256" */
    const char *hash;  /* OpenSSL digest name: "SHA256", "SHA384", "SHA512" */
    uint8_t init_msg;  /* message number of the client's init: 30 for all first-set methods */
    uint8_t reply_msg; /* message number of the server's reply: 31 */
    /*
     * Make the ephemeral key pair and append the client's public value to
     * out, encoded as on the wire (string Q_C for ECDH/X25519, mpint e for
     * DH). The same bytes go into the exchange hash.
     */
    int (*client_init)(struct sf_kex_state **st, struct sf_buf *out);
    /*
     * Read the server's public value from msg (positioned at it: string
     * Q_S or mpint f), validate it, append its encoding to hashpart exactly
     * as read (for the exchange hash), and append the shared secret K to
     * k_out encoded as an mpint (RFC 4253 s8; for curve25519, RFC 8731 s3).
     * Leaves msg positioned after the value.
     */
    int (*client_finish)(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
                         struct sf_buf *k_out);
    void (*free)(struct sf_kex_state *st); /* wipes; NULL ok */
};

/* Look up by exact name; NULL if unknown. */
const struct sf_kex_method *sf_kex_method_find(const char *name, size_t n);

extern const char sf_kex_default_list[];
extern const char sf_kex_all_list[];

/*
 * One-shot digest of data[0..len) with the named hash.
 * out must hold EVP_MAX_MD_SIZE (64) bytes; *outlen gets the length.
 */
SF_MUST_USE int sf_kex_hash(const char *hash, const uint8_t *data, size_t len, uint8_t *out,
                            size_t *outlen);

/*
 * RFC 4253 s7.2: key = HASH(K || H || letter || session_id), extended with
 * HASH(K || H || K1 || ... ) until need bytes. k_mpint is K encoded as mpint
 * (with its length prefix, as k_out above produced it).
 */
SF_MUST_USE int sf_kex_derive(const char *hash, const uint8_t *k_mpint, size_t k_len,
                              const uint8_t *h, size_t h_len, char letter,
                              const uint8_t *session_id, size_t sid_len, uint8_t *out,
                              size_t need);

#endif
