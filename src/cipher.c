/*
 * src/cipher.c -- packet protection for one direction of the binary packet
 * protocol (RFC 4253 s6): chacha20-poly1305@openssh.com, AES-GCM (RFC 5647
 * as OpenSSH does it) and AES-CTR with HMAC-SHA2 (encrypt-and-MAC or
 * encrypt-then-MAC), all through OpenSSL 3 EVP.
 *
 * Owns: the cipher and MAC tables and name lists, the EVP contexts of one
 * direction and their key material (wiped on free), the per-direction
 * state (GCM invocation counter, the CTR keystream position).
 * Must never: look at packet contents beyond the length field, do I/O,
 * allocate on the seal/open path, or release a byte of plaintext from a
 * packet whose tag did not verify. A struct sf_cipher belongs to one
 * direction and is used by one thread at a time; nothing here locks.
 *
 * Wire layout handled here (RFC 4253 s6):
 *     uint32 packet_length || byte padding_length || payload || padding
 * followed on the wire by the tag (MAC or AEAD tag).
 */
#include "cipher.h"

#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "buf.h"

#define CHACHA_KEY_LEN 32   /* one ChaCha20 key; the SSH key is two of them */
#define CHACHA_IV_LEN 16    /* OpenSSL's ChaCha20 "IV": state words 12..15 */
#define CHACHA_BLOCK_LEN 64 /* one ChaCha20 keystream block */
#define POLY1305_KEY_LEN 32
#define AEAD_TAG_LEN 16  /* Poly1305 and GCM tags */
#define GCM_IV_LEN 12    /* RFC 5647 s7.1: 4-byte fixed field || 8-byte counter */
#define AES_BLOCK_LEN 16
#define CTR_IV_LEN 16
#define HMAC_MAX_LEN 64 /* SHA-512 */
#define SEQ_LEN 4       /* uint32 sequence number prefixed to the MAC input */

enum cipher_mode {
    MODE_CHACHAPOLY, /* chacha20-poly1305@openssh.com */
    MODE_AESGCM,     /* aesNNN-gcm@openssh.com */
    MODE_AESCTR,     /* aesNNN-ctr (or legacy aesNNN-cbc) plus a separate HMAC */
};

struct cipher_row {
    struct sf_cipher_info info;
    const char *evp_name; /* OpenSSL algorithm name */
    enum cipher_mode mode;
};

struct mac_row {
    struct sf_mac_info info;
    const char *digest; /* OpenSSL digest name for HMAC */
};

static const struct cipher_row cipher_rows[] = {
    /* name, key_len, iv_len, block_len, tag_len */
    { { "chacha20-poly1305@openssh.com", 2 * CHACHA_KEY_LEN, 0, 8, AEAD_TAG_LEN },
      "ChaCha20",
      MODE_CHACHAPOLY },
    { { "aes128-gcm@openssh.com", 16, GCM_IV_LEN, AES_BLOCK_LEN, AEAD_TAG_LEN },
      "AES-128-GCM",
      MODE_AESGCM },
    { { "aes256-gcm@openssh.com", 32, GCM_IV_LEN, AES_BLOCK_LEN, AEAD_TAG_LEN },
      "AES-256-GCM",
      MODE_AESGCM },
    { { "aes128-ctr", 16, CTR_IV_LEN, AES_BLOCK_LEN, 0 }, "AES-128-CTR", MODE_AESCTR },
    { { "aes192-ctr", 24, CTR_IV_LEN, AES_BLOCK_LEN, 0 }, "AES-192-CTR", MODE_AESCTR },
    { { "aes256-ctr", 32, CTR_IV_LEN, AES_BLOCK_LEN, 0 }, "AES-256-CTR", MODE_AESCTR },
    /* Legacy (RFC 4253 s6.3), only when asked for: CBC with encrypt-and-MAC is
     * open to plaintext-recovery attacks. Same packet handling as CTR: one
     * context per key, so the chaining runs across packets as the RFC says. */
    { { "aes128-cbc", 16, CTR_IV_LEN, AES_BLOCK_LEN, 0 }, "AES-128-CBC", MODE_AESCTR },
    { { "aes192-cbc", 24, CTR_IV_LEN, AES_BLOCK_LEN, 0 }, "AES-192-CBC", MODE_AESCTR },
    { { "aes256-cbc", 32, CTR_IV_LEN, AES_BLOCK_LEN, 0 }, "AES-256-CBC", MODE_AESCTR },
};

static const struct mac_row mac_rows[] = {
    /* name, key_len, mac_len, etm */
    { { "hmac-sha2-256-etm@openssh.com", 32, 32, true }, "SHA256" },
    { { "hmac-sha2-512-etm@openssh.com", 64, 64, true }, "SHA512" },
    { { "hmac-sha2-256", 32, 32, false }, "SHA256" },
    { { "hmac-sha2-512", 64, 64, false }, "SHA512" },
    /* Legacy (RFC 4253 s6.4), only when asked for. */
    { { "hmac-sha1-etm@openssh.com", 20, 20, true }, "SHA1" },
    { { "hmac-sha1", 20, 20, false }, "SHA1" },
};

#define NROWS(a) (sizeof(a) / sizeof((a)[0]))

/* OpenSSH 9's order. The legacy CBC ciphers and SHA-1 MACs are only in the
 * "all" lists: a caller must name them ("+aes128-cbc") to use them. */
const char sf_cipher_default_list[] = "chacha20-poly1305@openssh.com,"
                                      "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
                                      "aes128-ctr,aes192-ctr,aes256-ctr";
const char sf_mac_default_list[] = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
                                   "hmac-sha2-256,hmac-sha2-512";
const char sf_cipher_all_list[] = "chacha20-poly1305@openssh.com,"
                                  "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
                                  "aes128-ctr,aes192-ctr,aes256-ctr,"
                                  "aes128-cbc,aes192-cbc,aes256-cbc";
const char sf_mac_all_list[] = "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com,"
                               "hmac-sha2-256,hmac-sha2-512,"
                               "hmac-sha1-etm@openssh.com,hmac-sha1";

struct sf_cipher {
    enum cipher_mode mode;
    bool encrypt;               /* sending direction */
    bool etm;                   /* AES-CTR with an encrypt-then-MAC MAC */
    size_t block_len;           /* padding multiple */
    size_t tag_len;             /* bytes after the packet on the wire */
    size_t first_len;           /* bytes needed by peek_len */
    EVP_CIPHER_CTX *ctx;        /* ChaCha20 under K_2 (payload) / AES-GCM / AES-CTR */
    EVP_CIPHER_CTX *hdr;        /* ChaCha20 under K_1 (length field); chacha only */
    EVP_MAC_CTX *mac;           /* Poly1305 (rekeyed per packet) or keyed HMAC */
    uint8_t gcm_iv[GCM_IV_LEN]; /* fixed field || invocation counter (big-endian) */
    /*
     * Encrypt-and-MAC receive only: peek_len decrypted the first block of
     * the packet with sequence number peek_seq in place, and the CTR
     * keystream has moved past it.
     */
    bool peeked;
    uint32_t peek_seq;
};

static const uint8_t zero_block[CHACHA_BLOCK_LEN];

const struct sf_cipher_info *
sf_cipher_info_find(const char *name, size_t n)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < NROWS(cipher_rows); i++) {
        const char *have = cipher_rows[i].info.name;

        if (strlen(have) == n && memcmp(have, name, n) == 0) {
            return &cipher_rows[i].info;
        }
    }
    return NULL;
}

const struct sf_mac_info *
sf_mac_info_find(const char *name, size_t n)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < NROWS(mac_rows); i++) {
        const char *have = mac_rows[i].info.name;

        if (strlen(have) == n && memcmp(have, name, n) == 0) {
            return &mac_rows[i].info;
        }
    }
    return NULL;
}

/* The table row behind an info pointer; NULL if it is not one of ours. */
static const struct cipher_row *
cipher_row_of(const struct sf_cipher_info *ci)
{
    for (size_t i = 0; i < NROWS(cipher_rows); i++) {
        if (&cipher_rows[i].info == ci) {
            return &cipher_rows[i];
        }
    }
    return NULL;
}

static const struct mac_row *
mac_row_of(const struct sf_mac_info *mi)
{
    for (size_t i = 0; i < NROWS(mac_rows); i++) {
        if (&mac_rows[i].info == mi) {
            return &mac_rows[i];
        }
    }
    return NULL;
}

void
sf_cipher_free(struct sf_cipher *c)
{
    if (c == NULL) {
        return;
    }
    /* OpenSSL cleanses its key schedules and MAC keys when freeing these. */
    EVP_CIPHER_CTX_free(c->ctx);
    EVP_CIPHER_CTX_free(c->hdr);
    EVP_MAC_CTX_free(c->mac);
    sf_freezero(c, sizeof(*c));
}

/*
 * A one-entry OSSL_PARAM list (entry, end marker) built field by field
 * rather than with OSSL_PARAM_construct_*(): a struct copy also copies the
 * uninitialised padding after data_type, which then sits in vector
 * registers when OpenSSL's GHASH assembly runs and makes valgrind report
 * its tag comparison as depending on uninitialised data. The OSSL_PARAM
 * API only reads from data for a set; the casts from const are safe.
 */
static void
set_param(OSSL_PARAM p[2], const char *key, unsigned int type, void *data, size_t n)
{
    memset(p, 0, 2 * sizeof(p[0]));
    p[0].key = key;
    p[0].data_type = type;
    p[0].data = data;
    p[0].data_size = n;
    p[0].return_size = OSSL_PARAM_UNMODIFIED;
}

/* A cipher context for `name` keyed with key (and iv, may be NULL). */
static int
new_cipher_ctx(EVP_CIPHER_CTX **out, const char *name, const uint8_t *key, const uint8_t *iv,
               bool encrypt)
{
    EVP_CIPHER *alg = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int r = SF_ERR_CRYPTO;

    *out = NULL;
    if ((alg = EVP_CIPHER_fetch(NULL, name, NULL)) == NULL) {
        goto out;
    }
    if ((ctx = EVP_CIPHER_CTX_new()) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    /* The context keeps its own reference to alg. */
    if (EVP_CipherInit_ex2(ctx, alg, key, iv, encrypt ? 1 : 0, NULL) != 1) {
        goto out;
    }
    /* SSH pads packets itself; a CBC context must not hold back or add a block. */
    if (EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        goto out;
    }
    *out = ctx;
    ctx = NULL;
    r = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(alg);
    return r;
}

/* An HMAC context (digest given, key set) or a Poly1305 one (digest NULL, unkeyed). */
static int
new_mac_ctx(EVP_MAC_CTX **out, const char *digest, const uint8_t *key, size_t key_len)
{
    EVP_MAC *alg = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    int r = SF_ERR_CRYPTO;

    *out = NULL;
    if ((alg = EVP_MAC_fetch(NULL, digest != NULL ? "HMAC" : "POLY1305", NULL)) == NULL) {
        goto out;
    }
    if ((ctx = EVP_MAC_CTX_new(alg)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (digest != NULL) {
        set_param(params, OSSL_MAC_PARAM_DIGEST, OSSL_PARAM_UTF8_STRING, (void *)digest,
                  strlen(digest));
        if (EVP_MAC_init(ctx, key, key_len, params) != 1) {
            goto out;
        }
    }
    *out = ctx;
    ctx = NULL;
    r = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(alg);
    return r;
}

int
sf_cipher_new(struct sf_cipher **out, const struct sf_cipher_info *ci,
              const struct sf_mac_info *mi, bool encrypt, const uint8_t *key, const uint8_t *iv,
              const uint8_t *mackey)
{
    const struct cipher_row *crow = NULL;
    const struct mac_row *mrow = NULL;
    struct sf_cipher *c = NULL;
    int r = SF_ERR_INVALID;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if ((crow = cipher_row_of(ci)) == NULL || key == NULL || (ci->iv_len > 0 && iv == NULL)) {
        goto out;
    }
    if (ci->tag_len > 0) {
        /* AEAD: no MAC is negotiated or used (PROTOCOL s1.6, PROTOCOL.chacha20poly1305). */
        if (mi != NULL) {
            goto out;
        }
    } else if ((mrow = mac_row_of(mi)) == NULL || mackey == NULL) {
        goto out;
    }
    if ((c = sf_alloc(sizeof(*c))) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    c->mode = crow->mode;
    c->encrypt = encrypt;
    c->block_len = ci->block_len;
    switch (c->mode) {
    case MODE_CHACHAPOLY:
        /*
         * PROTOCOL.chacha20poly1305: the first 32 bytes are K_2 (payload and
         * Poly1305 key), the second 32 bytes K_1 (length field). ChaCha20 is
         * its own inverse, so both directions run the "encrypt" operation.
         */
        c->tag_len = AEAD_TAG_LEN;
        c->first_len = 4;
        if ((r = new_cipher_ctx(&c->ctx, crow->evp_name, key, zero_block, true)) != 0 ||
            (r = new_cipher_ctx(&c->hdr, crow->evp_name, key + CHACHA_KEY_LEN, zero_block,
                                true)) != 0 ||
            (r = new_mac_ctx(&c->mac, NULL, NULL, 0)) != 0) {
            goto out;
        }
        break;
    case MODE_AESGCM:
        c->tag_len = AEAD_TAG_LEN;
        c->first_len = 4;
        memcpy(c->gcm_iv, iv, GCM_IV_LEN);
        /* The IV is set per packet (it changes every packet). */
        if ((r = new_cipher_ctx(&c->ctx, crow->evp_name, key, NULL, encrypt)) != 0) {
            goto out;
        }
        break;
    case MODE_AESCTR:
        c->etm = mi->etm;
        c->tag_len = mi->mac_len;
        c->first_len = c->etm ? 4 : c->block_len;
        /* One context for the whole key's lifetime: the counter runs across packets. */
        if ((r = new_cipher_ctx(&c->ctx, crow->evp_name, key, iv, encrypt)) != 0 ||
            (r = new_mac_ctx(&c->mac, mrow->digest, mackey, mi->key_len)) != 0) {
            goto out;
        }
        break;
    default:
        r = SF_ERR_INTERNAL;
        goto out;
    }
    *out = c;
    c = NULL;
    r = 0;
out:
    sf_cipher_free(c);
    return r;
}

size_t
sf_cipher_block_len(const struct sf_cipher *c)
{
    return c->block_len;
}

bool
sf_cipher_len_excluded(const struct sf_cipher *c)
{
    return c->mode != MODE_AESCTR || c->etm;
}

size_t
sf_cipher_tag_len(const struct sf_cipher *c)
{
    return c->tag_len;
}

size_t
sf_cipher_first_len(const struct sf_cipher *c)
{
    return c->first_len;
}

/*
 * Run the (stream) cipher of ctx over n bytes in place. Every caller passes
 * n <= 4 + SF_PACKET_MAX, so the int conversion cannot overflow.
 */
static int
stream_xor(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t n)
{
    int outl = 0;

    if (n == 0) {
        return 0;
    }
    if (EVP_CipherUpdate(ctx, out, &outl, in, (int)n) != 1 || (size_t)outl != n) {
        return SF_ERR_CRYPTO;
    }
    return 0;
}

/* Packet length checks shared by seal and open (the caller's bug if they fail). */
static int
check_args(const struct sf_cipher *c, bool sealing, const uint8_t *pkt, size_t len,
           const uint8_t *tag)
{
    if (c == NULL || pkt == NULL || tag == NULL || c->encrypt != sealing) {
        return SF_ERR_INVALID;
    }
    if (len < c->first_len || len < 4 || len - 4 > SF_PACKET_MAX) {
        return SF_ERR_INVALID;
    }
    return 0;
}

/* ---- chacha20-poly1305@openssh.com ------------------------------------ */

/*
 * OpenSSL's ChaCha20 takes 16 bytes that become state words 12..15 (little
 * endian). OpenSSH uses the original ChaCha20 layout: words 12-13 a 64-bit
 * block counter, words 14-15 the 64-bit nonce, here the sequence number as
 * an SSH uint64 (big-endian). So: counter (8 bytes, LE) || uint64 seq (BE).
 */
static void
chacha_iv(uint8_t iv[CHACHA_IV_LEN], uint32_t seq)
{
    memset(iv, 0, 8); /* block counter 0 */
    sf_store_be64(iv + 8, seq);
}

/*
 * Position the K_2 instance for packet seq: derive the Poly1305 key from
 * keystream block 0, leave the instance at block 1 (where the payload
 * starts), and key the Poly1305 context.
 */
static int
chacha_start(struct sf_cipher *c, uint32_t seq)
{
    uint8_t iv[CHACHA_IV_LEN];
    uint8_t block[CHACHA_BLOCK_LEN];
    int r = SF_ERR_CRYPTO;

    chacha_iv(iv, seq);
    if (EVP_CipherInit_ex2(c->ctx, NULL, NULL, iv, 1, NULL) != 1) {
        goto out;
    }
    /* A whole block, so that the next byte out is block 1's first. */
    if ((r = stream_xor(c->ctx, block, zero_block, sizeof(block))) != 0) {
        goto out;
    }
    if (EVP_MAC_init(c->mac, block, POLY1305_KEY_LEN, NULL) != 1) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    r = 0;
out:
    sf_wipe(block, sizeof(block));
    return r;
}

/* XOR the 4-byte length field at in (K_1, block 0) into out. */
static int
chacha_len(struct sf_cipher *c, uint32_t seq, uint8_t out[4], const uint8_t in[4])
{
    uint8_t iv[CHACHA_IV_LEN];

    chacha_iv(iv, seq);
    if (EVP_CipherInit_ex2(c->hdr, NULL, NULL, iv, 1, NULL) != 1) {
        return SF_ERR_CRYPTO;
    }
    return stream_xor(c->hdr, out, in, 4);
}

/* Poly1305 (keyed by chacha_start) over the whole encrypted packet. */
static int
chacha_tag(struct sf_cipher *c, const uint8_t *pkt, size_t len, uint8_t out[AEAD_TAG_LEN])
{
    size_t outl = 0;

    if (EVP_MAC_update(c->mac, pkt, len) != 1 ||
        EVP_MAC_final(c->mac, out, &outl, AEAD_TAG_LEN) != 1 || outl != AEAD_TAG_LEN) {
        return SF_ERR_CRYPTO;
    }
    return 0;
}

static int
chachapoly_seal(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag)
{
    int r;

    if ((r = chacha_len(c, seq, pkt, pkt)) != 0 || (r = chacha_start(c, seq)) != 0 ||
        (r = stream_xor(c->ctx, pkt + 4, pkt + 4, len - 4)) != 0 ||
        (r = chacha_tag(c, pkt, len, tag)) != 0) {
        return r;
    }
    return 0;
}

static int
chachapoly_open(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    uint8_t want[AEAD_TAG_LEN];
    int r;

    /* The tag covers the ciphertext: check it before decrypting anything. */
    if ((r = chacha_start(c, seq)) != 0 || (r = chacha_tag(c, pkt, len, want)) != 0) {
        goto out;
    }
    if (CRYPTO_memcmp(want, tag, AEAD_TAG_LEN) != 0) {
        r = SF_ERR_MAC;
        goto out;
    }
    if ((r = chacha_len(c, seq, pkt, pkt)) != 0 ||
        (r = stream_xor(c->ctx, pkt + 4, pkt + 4, len - 4)) != 0) {
        goto out;
    }
    r = 0;
out:
    sf_wipe(want, sizeof(want));
    return r;
}

/* ---- aes128-gcm@openssh.com, aes256-gcm@openssh.com ------------------- */

/* RFC 5647 s7.1: the invocation counter is a 64-bit big-endian integer. */
static void
gcm_next_iv(struct sf_cipher *c)
{
    for (size_t i = GCM_IV_LEN; i > 4; i--) {
        if (++c->gcm_iv[i - 1] != 0) {
            break;
        }
    }
}

/*
 * RFC 5647 s7.3: packet_length is additional authenticated data, the rest
 * of the packet is encrypted. For open, want_tag is the received tag: GCM
 * checks it in EVP_CipherFinal_ex (in constant time, inside OpenSSL), after
 * the keystream was applied; on failure the output is wiped.
 */
static int
gcm_run(struct sf_cipher *c, uint8_t *pkt, size_t len, uint8_t *tag, const uint8_t *want_tag)
{
    OSSL_PARAM params[2];
    uint8_t fin[AES_BLOCK_LEN]; /* GCM's final step outputs nothing; room anyway */
    int outl = 0;
    int r = SF_ERR_CRYPTO;

    if (EVP_CipherInit_ex2(c->ctx, NULL, NULL, c->gcm_iv, -1, NULL) != 1) {
        goto out;
    }
    if (EVP_CipherUpdate(c->ctx, NULL, &outl, pkt, 4) != 1) {
        goto out;
    }
    if ((r = stream_xor(c->ctx, pkt + 4, pkt + 4, len - 4)) != 0) {
        goto out;
    }
    r = SF_ERR_CRYPTO;
    if (want_tag != NULL) {
        set_param(params, OSSL_CIPHER_PARAM_AEAD_TAG, OSSL_PARAM_OCTET_STRING, (void *)want_tag,
                  AEAD_TAG_LEN);
        if (EVP_CIPHER_CTX_set_params(c->ctx, params) != 1) {
            goto out;
        }
        if (EVP_CipherFinal_ex(c->ctx, fin, &outl) != 1) {
            r = SF_ERR_MAC;
            goto out;
        }
    } else {
        if (EVP_CipherFinal_ex(c->ctx, fin, &outl) != 1) {
            goto out;
        }
        set_param(params, OSSL_CIPHER_PARAM_AEAD_TAG, OSSL_PARAM_OCTET_STRING, tag, AEAD_TAG_LEN);
        if (EVP_CIPHER_CTX_get_params(c->ctx, params) != 1) {
            goto out;
        }
    }
    r = 0;
out:
    /* One invocation per packet, whatever happened (OpenSSH does the same). */
    gcm_next_iv(c);
    if (r != 0 && want_tag != NULL) {
        sf_wipe(pkt + 4, len - 4); /* never leave unauthenticated plaintext */
    }
    return r;
}

/* ---- aes{128,192,256}-ctr with hmac-sha2-{256,512}[-etm@openssh.com] --- */

/* HMAC(mackey, uint32 seq || pkt[0..len)) into out (the context keeps the key). */
static int
hmac_packet(struct sf_cipher *c, uint32_t seq, const uint8_t *pkt, size_t len,
            uint8_t out[HMAC_MAX_LEN])
{
    uint8_t seqbuf[SEQ_LEN];
    size_t outl = 0;

    sf_store_be32(seqbuf, seq);
    if (EVP_MAC_init(c->mac, NULL, 0, NULL) != 1 || EVP_MAC_update(c->mac, seqbuf, SEQ_LEN) != 1 ||
        EVP_MAC_update(c->mac, pkt, len) != 1 ||
        EVP_MAC_final(c->mac, out, &outl, HMAC_MAX_LEN) != 1 || outl != c->tag_len) {
        return SF_ERR_CRYPTO;
    }
    return 0;
}

static int
ctr_seal(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag)
{
    uint8_t mac[HMAC_MAX_LEN];
    int r;

    if (c->etm) {
        /* PROTOCOL s1.5: length in clear, MAC over the ciphertext. */
        if ((r = stream_xor(c->ctx, pkt + 4, pkt + 4, len - 4)) != 0 ||
            (r = hmac_packet(c, seq, pkt, len, mac)) != 0) {
            goto out;
        }
    } else {
        /* RFC 4253 s6.4: MAC over the plaintext, then encrypt all of it. */
        if ((r = hmac_packet(c, seq, pkt, len, mac)) != 0 ||
            (r = stream_xor(c->ctx, pkt, pkt, len)) != 0) {
            goto out;
        }
    }
    memcpy(tag, mac, c->tag_len);
    r = 0;
out:
    sf_wipe(mac, sizeof(mac));
    return r;
}

static int
ctr_open(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    uint8_t mac[HMAC_MAX_LEN];
    size_t done = 0;
    int r;

    if (c->etm) {
        if ((r = hmac_packet(c, seq, pkt, len, mac)) != 0) {
            goto out;
        }
        if (CRYPTO_memcmp(mac, tag, c->tag_len) != 0) {
            r = SF_ERR_MAC; /* nothing decrypted */
            goto out;
        }
        if ((r = stream_xor(c->ctx, pkt + 4, pkt + 4, len - 4)) != 0) {
            goto out;
        }
        r = 0;
        goto out;
    }
    /*
     * Encrypt-and-MAC can only be checked after decryption. peek_len has
     * normally decrypted the first block already; if it was not called for
     * this packet, do it here so the keystream stays in step.
     */
    if (c->peeked && c->peek_seq == seq) {
        done = c->first_len;
    }
    c->peeked = false;
    if ((r = stream_xor(c->ctx, pkt + done, pkt + done, len - done)) != 0 ||
        (r = hmac_packet(c, seq, pkt, len, mac)) != 0) {
        goto out;
    }
    if (CRYPTO_memcmp(mac, tag, c->tag_len) != 0) {
        sf_wipe(pkt, len); /* never leave unauthenticated plaintext */
        r = SF_ERR_MAC;
        goto out;
    }
    r = 0;
out:
    sf_wipe(mac, sizeof(mac));
    return r;
}

/* ---- dispatch ----------------------------------------------------------- */

int
sf_cipher_seal(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len, uint8_t *tag)
{
    int r;

    if ((r = check_args(c, true, pkt, len, tag)) != 0) {
        return r;
    }
    /* The length field must already describe the packet. */
    if (sf_load_be32(pkt) != len - 4) {
        return SF_ERR_INVALID;
    }
    switch (c->mode) {
    case MODE_CHACHAPOLY:
        return chachapoly_seal(c, seq, pkt, len, tag);
    case MODE_AESGCM:
        return gcm_run(c, pkt, len, tag, NULL);
    case MODE_AESCTR:
        return ctr_seal(c, seq, pkt, len, tag);
    default:
        return SF_ERR_INTERNAL;
    }
}

int
sf_cipher_peek_len(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, uint32_t *packet_length)
{
    uint8_t clear[4];
    int r;

    if (packet_length != NULL) {
        *packet_length = 0;
    }
    if (c == NULL || pkt == NULL || packet_length == NULL || c->encrypt) {
        return SF_ERR_INVALID;
    }
    switch (c->mode) {
    case MODE_CHACHAPOLY:
        /* Into a copy: the tag covers the encrypted length. */
        if ((r = chacha_len(c, seq, clear, pkt)) != 0) {
            return r;
        }
        *packet_length = sf_load_be32(clear);
        sf_wipe(clear, sizeof(clear));
        return 0;
    case MODE_AESGCM:
        *packet_length = sf_load_be32(pkt); /* AAD, in clear */
        return 0;
    case MODE_AESCTR:
        if (!c->etm) {
            if (c->peeked) {
                return SF_ERR_INVALID; /* peeked twice: the keystream would skip */
            }
            if ((r = stream_xor(c->ctx, pkt, pkt, c->first_len)) != 0) {
                return r;
            }
            c->peeked = true;
            c->peek_seq = seq;
        }
        *packet_length = sf_load_be32(pkt);
        return 0;
    default:
        return SF_ERR_INTERNAL;
    }
}

int
sf_cipher_open(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len, const uint8_t *tag)
{
    int r;

    if ((r = check_args(c, false, pkt, len, tag)) != 0) {
        return r;
    }
    switch (c->mode) {
    case MODE_CHACHAPOLY:
        r = chachapoly_open(c, seq, pkt, len, tag);
        break;
    case MODE_AESGCM:
        r = gcm_run(c, pkt, len, NULL, tag);
        break;
    case MODE_AESCTR:
        r = ctr_open(c, seq, pkt, len, tag);
        break;
    default:
        r = SF_ERR_INTERNAL;
        break;
    }
    if (r != 0) {
        return r;
    }
    /* Authentic, so this is what the peer sent; it must match what we were given. */
    if (sf_load_be32(pkt) != len - 4) {
        return SF_ERR_INVALID;
    }
    return 0;
}
