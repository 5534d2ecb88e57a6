/*
 * src/keyfile.c -- private key files: openssh-key-v1 (plain and
 * passphrase-protected), and PEM / PKCS#8.
 *
 * Owns: reading a key file (size-capped), the "-----BEGIN OPENSSH PRIVATE
 * KEY-----" armour and its payload (OpenSSH PROTOCOL.key), its decryption
 * (bcrypt KDF; AES-CTR/CBC, AES-GCM, 3DES-CBC, chacha20-poly1305 as
 * ssh-keygen -Z writes them), the public key in its clear header, and
 * handing other PEM files to OpenSSL with a passphrase callback that never
 * prompts. Must never: prompt on a terminal, leave a copy of secret bytes
 * (armour text, decoded payload, derived key, decrypted section) unwiped,
 * run the KDF before every length in the file has been checked, or parse
 * the payload other than through struct sf_buf.
 */
#include "keyfile.h"

#include "bcrypt_pbkdf.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#define KEYFILE_MAX SF_KEYFILE_MAX /* largest key file we read */
#define KEYFILE_RSA_MAX_BYTES (16384 / 8)
#define KEYFILE_EC_MAX_FIELD 66
#define KEYFILE_ED25519_PUB 32
#define KEYFILE_ED25519_PRIV 64   /* seed || public key */
#define KEYFILE_NONE_BLOCKSIZE 8 /* cipher "none" pads to 8 bytes */

static const char openssh_magic[] = "openssh-key-v1"; /* with its NUL: 15 bytes */
static const char openssh_begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
static const char openssh_end[] = "-----END OPENSSH PRIVATE KEY-----";

/* ECDSA curves as OpenSSH names them in the private section. */
struct keyfile_curve {
    const char *type;
    const char *id;
    const char *group;
    size_t field;
};

static const struct keyfile_curve keyfile_curves[] = {
    { "ecdsa-sha2-nistp256", "nistp256", "prime256v1", 32 },
    { "ecdsa-sha2-nistp384", "nistp384", "secp384r1", 48 },
    { "ecdsa-sha2-nistp521", "nistp521", "secp521r1", 66 },
};

static bool
name_eq(const uint8_t *p, size_t n, const char *s)
{
    size_t sl = strlen(s);

    return n == sl && memcmp(p, s, n) == 0;
}

static bool
is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_b64(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/' || c == '=';
}

/*
 * Next line of b as a view without its line end and surrounding blanks.
 * Returns true if there was one.
 */
static bool
next_line(struct sf_buf *b, const uint8_t **line, size_t *n)
{
    const uint8_t *p = sf_buf_ptr(b);
    size_t avail = sf_buf_len(b), len, take;
    const uint8_t *nl = NULL;

    *line = NULL;
    *n = 0;
    if (avail == 0) {
        return false;
    }
    nl = memchr(p, '\n', avail);
    len = nl != NULL ? (size_t)(nl - p) : avail;
    take = nl != NULL ? len + 1 : avail;
    if (sf_buf_skip(b, take) != 0) {
        return false;
    }
    while (len > 0 && is_blank(p[len - 1])) {
        len--;
    }
    while (len > 0 && is_blank(p[0])) {
        p++;
        len--;
    }
    *line = p;
    *n = len;
    return true;
}

/* True if the first non-blank line of data is the openssh-key-v1 BEGIN line. */
static bool
is_openssh_armour(const uint8_t *data, size_t len)
{
    struct sf_buf b;
    const uint8_t *line = NULL;
    size_t n = 0;

    sf_buf_init_view(&b, data, len);
    while (next_line(&b, &line, &n)) {
        if (n != 0) {
            return name_eq(line, n, openssh_begin);
        }
    }
    return false;
}

/*
 * Strip the armour: BEGIN line, base64 lines, END line, nothing but blank
 * lines after it. *out (sf_alloc'd; free with sf_freezero(*out, *outcap))
 * gets the decoded payload.
 */
static int
armour_decode(const uint8_t *data, size_t len, uint8_t **out, size_t *outlen, size_t *outcap)
{
    struct sf_buf b;
    const uint8_t *line = NULL;
    size_t n = 0, tlen = 0, dcap = 0;
    char *text = NULL;
    uint8_t *dec = NULL;
    bool begun = false, ended = false;
    int r;

    *out = NULL;
    *outlen = 0;
    *outcap = 0;
    if ((text = sf_alloc(len + 1)) == NULL) {
        return SF_ERR_NOMEM;
    }
    sf_buf_init_view(&b, data, len);
    while (next_line(&b, &line, &n)) {
        if (n == 0) {
            continue;
        }
        if (!begun) {
            if (!name_eq(line, n, openssh_begin)) {
                r = SF_ERR_BAD_FORMAT;
                goto out;
            }
            begun = true;
            continue;
        }
        if (ended) {
            r = SF_ERR_BAD_FORMAT; /* text after the END line */
            goto out;
        }
        if (name_eq(line, n, openssh_end)) {
            ended = true;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (!is_b64(line[i])) {
                r = SF_ERR_BAD_FORMAT;
                goto out;
            }
            text[tlen++] = (char)line[i];
        }
    }
    if (!ended || tlen == 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    dcap = tlen / 4 * 3 + 3;
    if ((dec = sf_alloc(dcap)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = sf_base64_decode(text, tlen, dec, dcap, outlen)) != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    *out = dec;
    *outcap = dcap;
    dec = NULL;
    r = 0;
out:
    sf_freezero(dec, dcap);
    sf_freezero(text, len + 1);
    return r;
}

/* A secret big number from a big-endian magnitude (secure heap, constant-time flag). */
static int
bn_secret(const uint8_t *p, size_t n, BIGNUM **out)
{
    BIGNUM *bn = NULL;

    if ((bn = BN_secure_new()) == NULL) {
        return SF_ERR_NOMEM;
    }
    BN_set_flags(bn, BN_FLG_CONSTTIME);
    if (BN_bin2bn(p, (int)n, bn) == NULL) {
        BN_clear_free(bn);
        return SF_ERR_NOMEM;
    }
    *out = bn;
    return 0;
}

static int
pkey_fromdata(const char *alg, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int r = SF_ERR_CRYPTO;

    *out = NULL;
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL)) == NULL) {
        goto out;
    }
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) != 1) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params); /* the BN_secure_new values sit in its cleared part */
    return r;
}

/*
 * Ed25519 private section (OpenSSH, as for the agent):
 *   string  public key (32)
 *   string  private key (64) = seed (32) || public key (32)
 */
static int
priv_ed25519(struct sf_buf *b, EVP_PKEY **out)
{
    const uint8_t *pub = NULL, *priv = NULL;
    size_t publen = 0, privlen = 0, rawlen = KEYFILE_ED25519_PUB;
    uint8_t raw[KEYFILE_ED25519_PUB];
    EVP_PKEY *pk = NULL;
    int r;

    *out = NULL;
    if ((r = sf_buf_get_string(b, &pub, &publen, KEYFILE_ED25519_PUB)) != 0 ||
        (r = sf_buf_get_string(b, &priv, &privlen, KEYFILE_ED25519_PRIV)) != 0) {
        goto out;
    }
    if (publen != KEYFILE_ED25519_PUB || privlen != KEYFILE_ED25519_PRIV ||
        CRYPTO_memcmp(priv + KEYFILE_ED25519_PUB, pub, KEYFILE_ED25519_PUB) != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, 32)) == NULL) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    /* The stored public key must be the one the seed gives. */
    if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1 || rawlen != sizeof(raw) ||
        CRYPTO_memcmp(raw, pub, sizeof(raw)) != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    *out = pk;
    pk = NULL;
    r = 0;
out:
    EVP_PKEY_free(pk);
    return r;
}

/*
 * ECDSA private section:
 *   string  curve identifier ("nistp256", ...), matching the key type
 *   string  Q (uncompressed point)
 *   mpint   d
 */
static int
priv_ecdsa(const struct keyfile_curve *cv, struct sf_buf *b, EVP_PKEY **out)
{
    const uint8_t *id = NULL, *q = NULL, *d = NULL;
    size_t idlen = 0, qlen = 0, dlen = 0;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *bn_d = NULL;
    EVP_PKEY_CTX *chk = NULL;
    EVP_PKEY *pk = NULL;
    int r;

    *out = NULL;
    if ((r = sf_buf_get_string(b, &id, &idlen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_string(b, &q, &qlen, 1 + 2 * KEYFILE_EC_MAX_FIELD)) != 0 ||
        (r = sf_buf_get_mpint_pos(b, &d, &dlen, KEYFILE_EC_MAX_FIELD)) != 0) {
        goto out;
    }
    if (!name_eq(id, idlen, cv->id) || qlen != 1 + 2 * cv->field || q[0] != 0x04 ||
        dlen == 0 || dlen > cv->field) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((r = bn_secret(d, dlen, &bn_d)) != 0) {
        goto out;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, cv->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn_d) != 1) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = pkey_fromdata("EC", bld, &pk)) != 0) {
        goto out;
    }
    /* Point on the curve, d in [1, n-1], and Q = d*G. */
    if ((chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_check(chk) != 1) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    *out = pk;
    pk = NULL;
    r = 0;
out:
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_free(pk);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bn_d);
    return r;
}

/*
 * RSA private section:
 *   mpint n, mpint e, mpint d, mpint iqmp, mpint p, mpint q
 * OpenSSL also wants d mod (p-1) and d mod (q-1), which OpenSSH does not store.
 */
static int
priv_rsa(struct sf_buf *b, EVP_PKEY **out)
{
    const uint8_t *v[6] = { NULL };
    size_t vl[6] = { 0 };
    BIGNUM *n = NULL, *e = NULL, *d = NULL, *iqmp = NULL, *p = NULL, *q = NULL;
    BIGNUM *dmp1 = NULL, *dmq1 = NULL, *pm1 = NULL, *qm1 = NULL, *t = NULL;
    BN_CTX *bnctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pk = NULL;
    int r;

    *out = NULL;
    for (size_t i = 0; i < 6; i++) {
        if ((r = sf_buf_get_mpint_pos(b, &v[i], &vl[i], KEYFILE_RSA_MAX_BYTES)) != 0) {
            goto out;
        }
        if (vl[i] == 0 || vl[i] > KEYFILE_RSA_MAX_BYTES) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
    }
    if ((r = bn_secret(v[0], vl[0], &n)) != 0 || (r = bn_secret(v[1], vl[1], &e)) != 0 ||
        (r = bn_secret(v[2], vl[2], &d)) != 0 || (r = bn_secret(v[3], vl[3], &iqmp)) != 0 ||
        (r = bn_secret(v[4], vl[4], &p)) != 0 || (r = bn_secret(v[5], vl[5], &q)) != 0) {
        goto out;
    }
    if ((bnctx = BN_CTX_secure_new()) == NULL || (dmp1 = BN_secure_new()) == NULL ||
        (dmq1 = BN_secure_new()) == NULL || (pm1 = BN_secure_new()) == NULL ||
        (qm1 = BN_secure_new()) == NULL || (t = BN_secure_new()) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    /* Consistency: n = p*q, iqmp = q^-1 mod p, 1 < d < n. */
    r = SF_ERR_CRYPTO;
    if (BN_mul(t, p, q, bnctx) != 1) {
        goto out;
    }
    if (BN_cmp(t, n) != 0 || BN_cmp(d, n) >= 0 || BN_is_one(d) || BN_is_one(p) ||
        BN_is_one(q)) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if (BN_mod_mul(t, iqmp, q, p, bnctx) != 1) {
        goto out;
    }
    if (!BN_is_one(t)) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    /* dmp1 = d mod (p-1), dmq1 = d mod (q-1); and e*d = 1 modulo both. */
    if (BN_sub(pm1, p, BN_value_one()) != 1 || BN_mod(dmp1, d, pm1, bnctx) != 1 ||
        BN_sub(qm1, q, BN_value_one()) != 1 || BN_mod(dmq1, d, qm1, bnctx) != 1) {
        goto out;
    }
    if (BN_mod_mul(t, e, dmp1, pm1, bnctx) != 1) {
        goto out;
    }
    if (!BN_is_one(t)) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if (BN_mod_mul(t, e, dmq1, qm1, bnctx) != 1) {
        goto out;
    }
    if (!BN_is_one(t)) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dmp1) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dmq1) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, iqmp) != 1) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = pkey_fromdata("RSA", bld, &pk)) != 0) {
        goto out;
    }
    *out = pk;
    pk = NULL;
    r = 0;
out:
    EVP_PKEY_free(pk);
    OSSL_PARAM_BLD_free(bld);
    BN_CTX_free(bnctx);
    BN_clear_free(n);
    BN_clear_free(e);
    BN_clear_free(d);
    BN_clear_free(iqmp);
    BN_clear_free(p);
    BN_clear_free(q);
    BN_clear_free(dmp1);
    BN_clear_free(dmq1);
    BN_clear_free(pm1);
    BN_clear_free(qm1);
    BN_clear_free(t);
    return r;
}

/* ---- openssh-key-v1 ciphers ---- */

enum keyfile_mode {
    KF_CTR,
    KF_CBC,
    KF_GCM,
    KF_CHACHAPOLY,
};

/* The ciphers ssh-keygen -Z can write (OpenSSH's cipher table, for key files). */
struct keyfile_cipher {
    const char *name;
    const char *evp; /* OpenSSL cipher name */
    enum keyfile_mode mode;
    size_t keylen, ivlen, blocklen, taglen;
};

static const struct keyfile_cipher keyfile_ciphers[] = {
    { "aes128-ctr", "AES-128-CTR", KF_CTR, 16, 16, 16, 0 },
    { "aes192-ctr", "AES-192-CTR", KF_CTR, 24, 16, 16, 0 },
    { "aes256-ctr", "AES-256-CTR", KF_CTR, 32, 16, 16, 0 },
    { "aes128-cbc", "AES-128-CBC", KF_CBC, 16, 16, 16, 0 },
    { "aes192-cbc", "AES-192-CBC", KF_CBC, 24, 16, 16, 0 },
    { "aes256-cbc", "AES-256-CBC", KF_CBC, 32, 16, 16, 0 },
    { "3des-cbc", "DES-EDE3-CBC", KF_CBC, 24, 8, 8, 0 },
    { "aes128-gcm@openssh.com", "AES-128-GCM", KF_GCM, 16, 12, 16, 16 },
    { "aes256-gcm@openssh.com", "AES-256-GCM", KF_GCM, 32, 12, 16, 16 },
    /* Two ChaCha20 keys (payload + Poly1305 key, then the unused length key), no IV. */
    { "chacha20-poly1305@openssh.com", "ChaCha20", KF_CHACHAPOLY, 64, 0, 8, 16 },
};

#define KEYFILE_KEYIV_MAX (64 + 16)
#define KEYFILE_CHACHA_IV 16 /* OpenSSL's ChaCha20 "IV": LE32 counter || 12-byte nonce */
#define KEYFILE_POLY_KEY 32

static const struct keyfile_cipher *
cipher_find(const uint8_t *name, size_t n)
{
    for (size_t i = 0; i < sizeof(keyfile_ciphers) / sizeof(keyfile_ciphers[0]); i++) {
        if (name_eq(name, n, keyfile_ciphers[i].name)) {
            return &keyfile_ciphers[i];
        }
    }
    return NULL;
}

bool
sf_keyfile_cipher_sizes(const char *name, size_t *keylen, size_t *ivlen, size_t *blocklen,
                        size_t *taglen)
{
    const struct keyfile_cipher *c = name != NULL ? cipher_find((const uint8_t *)name,
                                                                strlen(name))
                                                  : NULL;

    if (c == NULL) {
        return false;
    }
    *keylen = c->keylen;
    *ivlen = c->ivlen;
    *blocklen = c->blocklen;
    *taglen = c->taglen;
    return true;
}

/* One pass of an OpenSSL cipher over len bytes (no padding), optional GCM tag. */
static int
evp_pass(const struct keyfile_cipher *c, bool encrypt, const uint8_t *key, const uint8_t *iv,
         const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER *alg = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    int outl = 0, finl = 0, r = SF_ERR_CRYPTO;

    if (len > INT32_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    if ((alg = EVP_CIPHER_fetch(NULL, c->evp, NULL)) == NULL ||
        (ctx = EVP_CIPHER_CTX_new()) == NULL) {
        goto out;
    }
    if (EVP_CipherInit_ex(ctx, alg, NULL, key, iv, encrypt ? 1 : 0) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        goto out;
    }
    if (c->mode == KF_GCM && !encrypt &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, (int)c->taglen, tag) != 1) {
        goto out;
    }
    if (EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1 || (size_t)outl != len) {
        goto out;
    }
    if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1) {
        /* For GCM this is the tag check: the passphrase (or the file) is wrong. */
        r = c->mode == KF_GCM ? SF_ERR_KEY_PASSPHRASE : SF_ERR_CRYPTO;
        goto out;
    }
    if (finl != 0) {
        goto out;
    }
    if (c->mode == KF_GCM && encrypt &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, (int)c->taglen, tag) != 1) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        sf_wipe(out, len);
    }
    EVP_CIPHER_CTX_free(ctx); /* cleanses the key schedule */
    EVP_CIPHER_free(alg);
    return r;
}

/*
 * chacha20-poly1305@openssh.com as OpenSSH applies it to a key file: one
 * "packet" with sequence number 0 and no length field. The first 32 key
 * bytes (K_2) give the Poly1305 key (keystream block 0) and encrypt the data
 * from block 1; the tag is Poly1305 over the ciphertext, checked before
 * decrypting.
 */
static int
chachapoly_pass(const struct keyfile_cipher *c, bool encrypt, const uint8_t *key,
                const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    static const uint8_t zero[KEYFILE_POLY_KEY] = { 0 };
    uint8_t iv[KEYFILE_CHACHA_IV] = { 0 }, polykey[KEYFILE_POLY_KEY], mac[16];
    const struct keyfile_cipher stream = { c->name, "ChaCha20", KF_CTR, 32, 16, 1, 0 };
    EVP_MAC *alg = NULL;
    EVP_MAC_CTX *mctx = NULL;
    size_t maclen = 0;
    int r;

    /* Block 0 of the keystream (counter 0, nonce = sequence number 0) is the Poly1305 key. */
    if ((r = evp_pass(&stream, true, key, iv, zero, sizeof(zero), polykey, NULL)) != 0) {
        goto out;
    }
    r = SF_ERR_CRYPTO;
    if ((alg = EVP_MAC_fetch(NULL, "POLY1305", NULL)) == NULL ||
        (mctx = EVP_MAC_CTX_new(alg)) == NULL ||
        EVP_MAC_init(mctx, polykey, sizeof(polykey), NULL) != 1) {
        goto out;
    }
    iv[0] = 1; /* the data starts at block 1 */
    if (!encrypt) {
        if (EVP_MAC_update(mctx, in, len) != 1 ||
            EVP_MAC_final(mctx, mac, &maclen, sizeof(mac)) != 1 || maclen != c->taglen) {
            goto out;
        }
        if (CRYPTO_memcmp(mac, tag, c->taglen) != 0) {
            r = SF_ERR_KEY_PASSPHRASE;
            goto out;
        }
        r = evp_pass(&stream, false, key, iv, in, len, out, NULL);
        goto out;
    }
    if ((r = evp_pass(&stream, true, key, iv, in, len, out, NULL)) != 0) {
        goto out;
    }
    r = SF_ERR_CRYPTO;
    if (EVP_MAC_update(mctx, out, len) != 1 ||
        EVP_MAC_final(mctx, tag, &maclen, c->taglen) != 1 || maclen != c->taglen) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        sf_wipe(out, len);
    }
    EVP_MAC_CTX_free(mctx);
    EVP_MAC_free(alg);
    sf_wipe(polykey, sizeof(polykey));
    sf_wipe(mac, sizeof(mac));
    return r;
}

static int
cipher_crypt(const struct keyfile_cipher *c, bool encrypt, const uint8_t *keyiv,
             const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    int r;

    if (len % c->blocklen != 0) {
        return SF_ERR_INVALID;
    }
    if (c->mode == KF_CHACHAPOLY) {
        r = chachapoly_pass(c, encrypt, keyiv, in, len, out, tag);
    } else {
        r = evp_pass(c, encrypt, keyiv, keyiv + c->keylen, in, len, out, tag);
    }
    ERR_clear_error();
    return r;
}

int
sf_keyfile_crypt(const char *name, bool encrypt, const uint8_t *keyiv, const uint8_t *in,
                 size_t len, uint8_t *out, uint8_t *tag)
{
    const struct keyfile_cipher *c = NULL;

    if (name == NULL || keyiv == NULL || (in == NULL && len != 0) || out == NULL) {
        return SF_ERR_INVALID;
    }
    if ((c = cipher_find((const uint8_t *)name, strlen(name))) == NULL) {
        return SF_ERR_KEY_TYPE;
    }
    if (c->taglen != 0 && tag == NULL) {
        return SF_ERR_INVALID;
    }
    return cipher_crypt(c, encrypt, keyiv, in, len, out, tag);
}

/* ---- openssh-key-v1 ---- */

/*
 * PROTOCOL.key s1 (the decoded payload), as OpenSSH writes it:
 *   byte[]  "openssh-key-v1\0"
 *   string  ciphername
 *   string  kdfname
 *   string  kdfoptions
 *   uint32  number of keys N (we, like OpenSSH, take exactly 1)
 *   string  publickey1
 *   string  encrypted, padded list of private keys
 *   byte[]  AEAD tag (16 bytes for aes*-gcm@openssh.com and
 *           chacha20-poly1305@openssh.com; OpenSSH puts it after the string,
 *           outside its length)
 */
struct ossh_file {
    const uint8_t *cipher, *kdf, *pub, *priv, *tag;
    size_t cipherlen, kdflen, publen, privlen, taglen;
    struct sf_buf kdfopts;
};

static int
ossh_split(const uint8_t *blob, size_t len, struct ossh_file *f)
{
    struct sf_buf b;
    uint8_t magic[sizeof(openssh_magic)];
    uint32_t nkeys = 0;
    int r;

    memset(f, 0, sizeof(*f));
    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_bytes(&b, magic, sizeof(magic))) != 0) {
        return r;
    }
    if (memcmp(magic, openssh_magic, sizeof(magic)) != 0) {
        return SF_ERR_BAD_FORMAT;
    }
    if ((r = sf_buf_get_string(&b, &f->cipher, &f->cipherlen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_string(&b, &f->kdf, &f->kdflen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_sub(&b, &f->kdfopts, 4 + SF_BCRYPT_SALT_MAX + 4)) != 0 ||
        (r = sf_buf_get_u32(&b, &nkeys)) != 0) {
        return r;
    }
    if (nkeys != 1) {
        return SF_ERR_BAD_FORMAT;
    }
    if ((r = sf_buf_get_string(&b, &f->pub, &f->publen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_get_string(&b, &f->priv, &f->privlen, KEYFILE_MAX)) != 0) {
        return r;
    }
    /* Whatever follows is the AEAD tag; its length is checked against the cipher. */
    f->tag = sf_buf_ptr(&b);
    f->taglen = sf_buf_len(&b);
    return 0;
}

/*
 * PROTOCOL.key s2, kdfname "bcrypt":
 *   string  salt
 *   uint32  rounds
 */
static int
ossh_kdf(const struct ossh_file *f, const struct keyfile_cipher *c, const char *passphrase,
         uint8_t keyiv[KEYFILE_KEYIV_MAX])
{
    struct sf_buf o = f->kdfopts;
    const uint8_t *salt = NULL;
    size_t saltlen = 0;
    uint32_t rounds = 0;
    int r;

    if ((r = sf_buf_get_string(&o, &salt, &saltlen, SF_BCRYPT_SALT_MAX)) != 0 ||
        (r = sf_buf_get_u32(&o, &rounds)) != 0 || (r = sf_buf_expect_end(&o)) != 0) {
        return r;
    }
    if (saltlen == 0 || rounds == 0 || rounds > SF_KEYFILE_ROUNDS_MAX) {
        return SF_ERR_KEY_TYPE;
    }
    if (passphrase == NULL) {
        return SF_ERR_KEY_ENCRYPTED;
    }
    if (passphrase[0] == '\0') {
        return SF_ERR_KEY_PASSPHRASE; /* bcrypt_pbkdf takes no empty passphrase */
    }
    return sf_bcrypt_pbkdf(passphrase, strlen(passphrase), salt, saltlen, keyiv,
                           c->keylen + c->ivlen, rounds);
}

/*
 * PROTOCOL.key s3, the (decrypted) private list:
 *   uint32  checkint
 *   uint32  checkint
 *   string  key type  || type-specific private fields (as for the agent)
 *   string  comment
 *   byte    1, 2, 3, ...  padding to the cipher block size
 */
static int
ossh_private(struct sf_buf *priv, bool encrypted, const uint8_t *pub, size_t publen,
             struct sf_privkey **out, char *comment, size_t commentsz)
{
    struct sf_buf mine = { 0 };
    const uint8_t *type = NULL, *cmt = NULL;
    size_t typelen = 0, cmtlen = 0;
    uint32_t check1 = 0, check2 = 0;
    const struct keyfile_curve *cv = NULL;
    EVP_PKEY *pk = NULL;
    struct sf_privkey *k = NULL;
    uint8_t pad;
    int r;

    *out = NULL;
    /* Equal checkints show a successful decryption; unencrypted, they must match too. */
    if ((r = sf_buf_get_u32(priv, &check1)) != 0 || (r = sf_buf_get_u32(priv, &check2)) != 0) {
        goto out;
    }
    if (check1 != check2) {
        r = encrypted ? SF_ERR_KEY_PASSPHRASE : SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((r = sf_buf_get_string(priv, &type, &typelen, SF_NAME_MAX)) != 0) {
        goto out;
    }
    if (name_eq(type, typelen, "ssh-ed25519")) {
        r = priv_ed25519(priv, &pk);
    } else if (name_eq(type, typelen, "ssh-rsa")) {
        r = priv_rsa(priv, &pk);
    } else {
        for (size_t i = 0; i < sizeof(keyfile_curves) / sizeof(keyfile_curves[0]); i++) {
            if (name_eq(type, typelen, keyfile_curves[i].type)) {
                cv = &keyfile_curves[i];
            }
        }
        r = cv != NULL ? priv_ecdsa(cv, priv, &pk) : SF_ERR_KEY_TYPE;
    }
    if (r != 0) {
        goto out;
    }
    if ((r = sf_buf_get_string(priv, &cmt, &cmtlen, SF_STRING_MAX)) != 0) {
        goto out;
    }
    /* OpenSSH reads the comment as a C string: no NUL inside. */
    if (memchr(cmt, '\0', cmtlen) != NULL) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    /* Padding 1, 2, 3, ... (mod 256) up to the end. */
    for (size_t i = 1; sf_buf_len(priv) > 0; i++) {
        if ((r = sf_buf_get_u8(priv, &pad)) != 0) {
            goto out;
        }
        if (pad != (uint8_t)(i & 0xff)) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
    }
    if ((r = sf_privkey_from_pkey(&pk, &k)) != 0) {
        goto out;
    }
    /* The public key in the clear header must be the private key's. */
    if ((r = sf_buf_alloc(&mine, publen + 16, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_privkey_pubblob(k, &mine)) != 0) {
        goto out;
    }
    if (sf_buf_len(&mine) != publen || memcmp(sf_buf_ptr(&mine), pub, publen) != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if (comment != NULL) {
        if (cmtlen >= commentsz) {
            r = SF_ERR_NO_SPACE;
            goto out;
        }
        memcpy(comment, cmt, cmtlen);
        comment[cmtlen] = '\0';
    }
    *out = k;
    k = NULL;
    r = 0;
out:
    sf_buf_free(&mine);
    sf_privkey_free(k);
    EVP_PKEY_free(pk);
    return r;
}

static int
openssh_parse(const uint8_t *blob, size_t len, const char *passphrase, struct sf_privkey **out,
              char *comment, size_t commentsz)
{
    struct ossh_file f;
    struct sf_buf priv;
    const struct keyfile_cipher *c = NULL;
    uint8_t keyiv[KEYFILE_KEYIV_MAX];
    uint8_t *plain = NULL;
    size_t blocklen = KEYFILE_NONE_BLOCKSIZE, taglen = 0;
    bool encrypted;
    int r;

    *out = NULL;
    if ((r = ossh_split(blob, len, &f)) != 0) {
        goto out;
    }
    encrypted = !name_eq(f.cipher, f.cipherlen, "none");
    if (encrypted) {
        if ((c = cipher_find(f.cipher, f.cipherlen)) == NULL ||
            !name_eq(f.kdf, f.kdflen, "bcrypt")) {
            r = SF_ERR_KEY_TYPE;
            goto out;
        }
        blocklen = c->blocklen;
        taglen = c->taglen;
    } else if (!name_eq(f.kdf, f.kdflen, "none") || sf_buf_len(&f.kdfopts) != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    /* Every length is checked before the (deliberately slow) KDF runs. */
    if (f.taglen != taglen) {
        r = f.taglen > taglen ? SF_ERR_TRAILING_DATA : SF_ERR_INCOMPLETE;
        goto out;
    }
    if (f.privlen < blocklen || f.privlen % blocklen != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if (!encrypted) {
        sf_buf_init_view(&priv, f.priv, f.privlen);
        r = ossh_private(&priv, false, f.pub, f.publen, out, comment, commentsz);
        goto out;
    }
    if ((r = ossh_kdf(&f, c, passphrase, keyiv)) != 0) {
        goto out;
    }
    if ((plain = sf_alloc(f.privlen)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = cipher_crypt(c, false, keyiv, f.priv, f.privlen, plain, (uint8_t *)f.tag)) != 0) {
        goto out;
    }
    sf_buf_init_view(&priv, plain, f.privlen);
    r = ossh_private(&priv, true, f.pub, f.publen, out, comment, commentsz);
out:
    sf_wipe(keyiv, sizeof(keyiv));
    sf_freezero(plain, f.privlen);
    return r;
}

/* The passphrase callback for OpenSSL: hands over what we have, never prompts. */
struct keyfile_pass {
    const char *pass;
    bool asked;
};

static int
keyfile_pass_cb(char *buf, int size, int rwflag, void *u)
{
    struct keyfile_pass *kp = u;
    size_t n;

    kp->asked = true;
    if (kp->pass == NULL || rwflag != 0 || size <= 0) {
        return -1;
    }
    n = strlen(kp->pass);
    if (n > (size_t)size) {
        return -1;
    }
    memcpy(buf, kp->pass, n);
    return (int)n;
}

/*
 * PEM (traditional or PKCS#8, possibly encrypted) through OpenSSL's decoders.
 * Once OpenSSL has asked for a passphrase, any failure means a missing or
 * wrong passphrase (OpenSSH does the same: a wrong key makes the decrypted
 * DER unparseable in ways OpenSSL reports as format errors).
 */
static int
pem_load(const uint8_t *data, size_t len, const char *passphrase, struct sf_privkey **out)
{
    struct keyfile_pass kp = { passphrase, false };
    BIO *bio = NULL;
    EVP_PKEY *pk = NULL;
    int r;

    *out = NULL;
    if ((bio = BIO_new_mem_buf(data, (int)len)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((pk = PEM_read_bio_PrivateKey_ex(bio, NULL, keyfile_pass_cb, &kp, NULL, NULL)) == NULL) {
        if (kp.asked) {
            r = passphrase == NULL ? SF_ERR_KEY_ENCRYPTED : SF_ERR_KEY_PASSPHRASE;
        } else {
            r = SF_ERR_KEY_TYPE;
        }
        goto out;
    }
    r = sf_privkey_from_pkey(&pk, out);
out:
    ERR_clear_error();
    EVP_PKEY_free(pk);
    BIO_free(bio);
    return r;
}

/*
 * Every failure to understand a key file is SF_ERR_KEY_TYPE (public
 * SSHFLOW_ERR_KEY_FORMAT): the parser's own codes (truncated, too long,
 * malformed, trailing data, an OpenSSL refusal) say nothing more useful to
 * the caller and would otherwise map to "protocol error".
 */
static int
keyfile_err(int r)
{
    switch (r) {
    case 0:
    case SF_ERR_NOMEM:
    case SF_ERR_INVALID:
    case SF_ERR_NO_SPACE:
    case SF_ERR_FILE:
    case SF_ERR_KEY_ENCRYPTED:
    case SF_ERR_KEY_PASSPHRASE:
    case SF_ERR_KEY_TYPE:
    case SF_ERR_INTERNAL:
        return r;
    default:
        return SF_ERR_KEY_TYPE;
    }
}

static bool
looks_pem(const uint8_t *data, size_t len)
{
    return len >= 11 && memmem(data, len, "-----BEGIN ", 11) != NULL;
}

int
sf_privkey_load_comment(const uint8_t *data, size_t len, const char *passphrase,
                        struct sf_privkey **out, char *comment, size_t commentsz,
                        bool *has_comment)
{
    uint8_t *payload = NULL;
    size_t plen = 0, pcap = 0;
    int r;

    if (has_comment != NULL) {
        *has_comment = false;
    }
    if (comment != NULL && commentsz == 0) {
        return SF_ERR_INVALID;
    }
    if (comment != NULL) {
        comment[0] = '\0';
    }
    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (data == NULL) {
        return SF_ERR_INVALID;
    }
    if (len > KEYFILE_MAX) {
        return SF_ERR_KEY_TYPE;
    }
    if (is_openssh_armour(data, len)) {
        if ((r = armour_decode(data, len, &payload, &plen, &pcap)) != 0) {
            goto out;
        }
        r = openssh_parse(payload, plen, passphrase, out, comment, commentsz);
        if (r == 0 && has_comment != NULL) {
            *has_comment = true;
        }
        goto out;
    }
    if (looks_pem(data, len)) {
        r = pem_load(data, len, passphrase, out);
        goto out;
    }
    r = SF_ERR_KEY_TYPE;
out:
    if (r != 0) {
        ERR_clear_error();
        if (comment != NULL) {
            sf_wipe(comment, commentsz);
            comment[0] = '\0';
        }
    }
    sf_freezero(payload, pcap);
    return keyfile_err(r);
}

int
sf_privkey_load(const uint8_t *data, size_t len, const char *passphrase,
                struct sf_privkey **out)
{
    return sf_privkey_load_comment(data, len, passphrase, out, NULL, 0, NULL);
}

int
sf_privkey_file_pubblob(const uint8_t *data, size_t len, struct sf_buf *blob_out)
{
    struct ossh_file f;
    struct sf_privkey *k = NULL;
    uint8_t *payload = NULL;
    size_t plen = 0, pcap = 0;
    unsigned bits = 0;
    const char *tname = NULL;
    int r;

    if (data == NULL || blob_out == NULL) {
        return SF_ERR_INVALID;
    }
    if (len > KEYFILE_MAX) {
        return SF_ERR_KEY_TYPE;
    }
    if (is_openssh_armour(data, len)) {
        /* The header is in the clear; the private list is not looked at. */
        if ((r = armour_decode(data, len, &payload, &plen, &pcap)) != 0 ||
            (r = ossh_split(payload, plen, &f)) != 0) {
            goto out;
        }
        if ((r = sf_key_bits(f.pub, f.publen, &bits, &tname)) != 0) {
            goto out;
        }
        r = sf_buf_put_bytes(blob_out, f.pub, f.publen);
        goto out;
    }
    if (!looks_pem(data, len)) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if ((r = pem_load(data, len, NULL, &k)) != 0) {
        goto out;
    }
    r = sf_privkey_pubblob(k, blob_out);
out:
    /* One put each way: on failure blob_out is as it was. */
    sf_privkey_free(k);
    sf_freezero(payload, pcap);
    return keyfile_err(r);
}

/* ---- reading files ---- */

int
sf_keyfile_read(const char *path, uint8_t **data, size_t *len, size_t *cap)
{
    struct stat st;
    uint8_t *d = NULL, *bigger = NULL;
    size_t n = 0, c = 0;
    ssize_t got;
    int fd = -1, saved = 0, r;

    if (data == NULL || len == NULL || cap == NULL) {
        return SF_ERR_INVALID;
    }
    *data = NULL;
    *len = 0;
    *cap = 0;
    if (path == NULL) {
        return SF_ERR_INVALID;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0 || fstat(fd, &st) != 0) {
        saved = errno;
        r = SF_ERR_FILE;
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        saved = EISDIR;
        r = SF_ERR_FILE;
        goto out;
    }
    if (S_ISREG(st.st_mode) && st.st_size > KEYFILE_MAX) {
        r = SF_ERR_TOO_LARGE;
        goto out;
    }
    /* Size from fstat for regular files (plus one byte to see EOF), else grow. */
    c = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    if ((d = sf_alloc(c)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        if (n == c) {
            if (c > KEYFILE_MAX) {
                r = SF_ERR_TOO_LARGE;
                goto out;
            }
            /* Grow by copy so the old block can be wiped (no realloc). */
            if ((bigger = sf_alloc(c * 2)) == NULL) {
                r = SF_ERR_NOMEM;
                goto out;
            }
            memcpy(bigger, d, n);
            sf_freezero(d, c);
            d = bigger;
            bigger = NULL;
            c *= 2;
        }
        got = read(fd, d + n, c - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            saved = errno;
            r = SF_ERR_FILE;
            goto out;
        }
        if (got == 0) {
            break;
        }
        n += (size_t)got;
    }
    if (n > KEYFILE_MAX) {
        r = SF_ERR_TOO_LARGE;
        goto out;
    }
    *data = d;
    *len = n;
    *cap = c;
    d = NULL;
    r = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    sf_freezero(d, c);
    if (r == SF_ERR_FILE) {
        errno = saved; /* the caller reports it (close and free may have changed it) */
    }
    return r;
}

int
sf_privkey_load_file(const char *path, const char *passphrase, struct sf_privkey **out)
{
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;
    int r, saved;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (path == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = sf_keyfile_read(path, &data, &len, &cap)) != 0) {
        saved = errno;
        r = keyfile_err(r);
        errno = saved;
        return r;
    }
    r = sf_privkey_load(data, len, passphrase, out);
    sf_freezero(data, cap);
    return r;
}
