/*
 * src/kex.h -- key exchange methods, exchange hash and key derivation
 * (RFC 4253 s7-8, RFC 4419, RFC 5656 s4, RFC 8731, RFC 8268,
 * draft-josefsson-ntruprime-ssh, draft-ietf-sshm-mlkem-hybrid-kex).
 *
 * Each method is a row in a table: it makes the client's ephemeral key,
 * writes the client's public value exactly as it appears both in the
 * KEX*_INIT message and in the exchange hash, and from the server's reply
 * computes the shared secret K. Group exchange (RFC 4419) methods first
 * run one more round trip: a group request and the server's group.
 * Everything is pure (no I/O); the transport drives it.
 *
 * Owns: ephemeral private keys and the shared secret (wiped on free), the
 * layout of the exchange hash. Must never: do I/O or negotiate.
 */
#ifndef SF_KEX_H
#define SF_KEX_H

#include "buf.h"
#include "sf.h"

struct sf_kex_state; /* method-private ephemeral state */

/* RFC 4419 s3 / RFC 8270: the group sizes (bits) a client asks for. */
#define SF_KEX_GEX_MIN 2048
#define SF_KEX_GEX_PREF 3072 /* see docs/kex.md: 128-bit strength, checkable in ~0.5 s */
#define SF_KEX_GEX_MAX 8192

struct sf_kex_method {
    const char *name;  /* e.g. "curve25519-sha256" */
    const char *hash;  /* OpenSSL digest name: "SHA1", "SHA256", "SHA384", "SHA512" */
    uint8_t init_msg;  /* the client's init: 30 (ECDH_INIT, KEXDH_INIT, KEM init), 32 (GEX_INIT) */
    uint8_t reply_msg; /* the server's reply: 31, or 33 (GEX_REPLY) */
    /*
     * Make the ephemeral key pair and append the client's public value to
     * out, encoded as on the wire (string Q_C for ECDH/X25519, string
     * C_INIT for the hybrids, mpint e for DH). The same bytes go into the
     * exchange hash. NULL for group exchange methods (see client_group).
     */
    int (*client_init)(struct sf_kex_state **st, struct sf_buf *out);
    /*
     * Read the server's public value from msg (positioned at it: string
     * Q_S / S_REPLY or mpint f), validate it, append its encoding to
     * hashpart exactly as read (for the exchange hash), and append the
     * shared secret K to k_out encoded as the method defines it: an mpint
     * (RFC 4253 s8, RFC 8731 s3) or, for the post-quantum hybrids, a
     * string holding HASH(K_PQ || K_CL). Leaves msg positioned after the
     * value.
     */
    int (*client_finish)(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
                         struct sf_buf *k_out);
    void (*free)(struct sf_kex_state *st); /* wipes; NULL ok */
    /*
     * Group exchange only (RFC 4419), else 0 / NULL. The client first sends
     * request_msg (34, SSH_MSG_KEX_DH_GEX_REQUEST) and reads group_msg (31,
     * SSH_MSG_KEX_DH_GEX_GROUP), then sends init_msg with e.
     *
     * client_request: create the state and append the request body
     * (uint32 min, n, max) to out; those bytes are also the first part of
     * the client's share of the exchange hash.
     * client_group: read mpint p, mpint g from msg, check the group (sizes,
     * odd p, 1 < g < p-1, p a known group or a safe prime), append them
     * to hashpart as read, make the key pair and append mpint e to out.
     * The caller appends out to hashpart too (H has min||n||max||p||g||e
     * where the other methods have Q_C) and checks msg's end.
     */
    uint8_t request_msg;
    uint8_t group_msg;
    int (*client_request)(struct sf_kex_state **st, uint32_t nbits, struct sf_buf *out);
    int (*client_group)(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
                        struct sf_buf *out);
};

/* Look up by exact name; NULL if unknown. */
const struct sf_kex_method *sf_kex_method_find(const char *name, size_t n);

/* OpenSSH 10's client default, in its order. */
extern const char sf_kex_default_list[];
/* Every method: the default plus the legacy SHA-1 ones a caller opts in to (KexAlgorithms +name). */
extern const char sf_kex_all_list[];

/*
 * One-shot digest of data[0..len) with the named hash.
 * out must hold EVP_MAX_MD_SIZE (64) bytes; *outlen gets the length.
 */
SF_MUST_USE int sf_kex_hash(const char *hash, const uint8_t *data, size_t len, uint8_t *out,
                            size_t *outlen);

/*
 * The exchange hash (RFC 4253 s8, RFC 4419 s3, RFC 5656 s4, RFC 8731 s3):
 *   H = HASH(string V_C || string V_S || string I_C || string I_S ||
 *            string K_S || client part || server part || K)
 * v_c / v_s are the version lines without CR LF, i_c / i_s the KEXINIT
 * payloads, k_s the host key blob (each written as a string here). cpub,
 * spub and k are appended as already encoded: cpub is the client's public
 * value (for group exchange: uint32 min, n, max, mpint p, g, e), spub the
 * server's (string Q_S or mpint f), k the shared secret as the method
 * encoded it. out holds 64 bytes.
 */
struct sf_kex_hash_in {
    const char *v_c, *v_s;
    const uint8_t *i_c, *i_s, *k_s, *cpub, *spub, *k;
    size_t i_c_len, i_s_len, k_s_len, cpub_len, spub_len, k_len;
};
SF_MUST_USE int sf_kex_exchange_hash(const char *hash, const struct sf_kex_hash_in *in,
                                     uint8_t *out, size_t *outlen);

/*
 * RFC 4253 s7.2: key = HASH(K || H || letter || session_id), extended with
 * HASH(K || H || K1 || ... ) until need bytes. k_enc is K as the method
 * encoded it (mpint or string, with its length prefix, as k_out above).
 */
SF_MUST_USE int sf_kex_derive(const char *hash, const uint8_t *k_enc, size_t k_len,
                              const uint8_t *h, size_t h_len, char letter,
                              const uint8_t *session_id, size_t sid_len, uint8_t *out,
                              size_t need);

#endif
