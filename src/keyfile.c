/*
 * src/keyfile.c -- private key files: openssh-key-v1, and PEM / PKCS#8.
 *
 * Owns: reading a key file (size-capped), the "-----BEGIN OPENSSH PRIVATE
 * KEY-----" armour and its payload (OpenSSH PROTOCOL.key), and handing
 * other PEM files to OpenSSL with a passphrase callback that never prompts.
 * Must never: prompt on a terminal, leave a copy of secret bytes (armour
 * text, decoded payload) unwiped, or parse the payload other than through
 * struct sf_buf. Decrypting openssh-key-v1 keys (bcrypt KDF) comes later:
 * an encrypted one gives SF_ERR_KEY_ENCRYPTED.
 */
#include "key.h"

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

#define KEYFILE_MAX (1024 * 1024) /* largest key file we read */
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

/*
 * PROTOCOL.key s1, s3 (the decoded payload):
 *   byte[]  "openssh-key-v1\0"
 *   string  ciphername
 *   string  kdfname
 *   string  kdfoptions
 *   uint32  number of keys N (we, like OpenSSH, take exactly 1)
 *   string  publickey1
 *   string  private list:
 *       uint32  checkint
 *       uint32  checkint
 *       string  key type  || type-specific private fields
 *       string  comment
 *       byte    1, 2, 3, ...  padding to the cipher block size
 */
static int
openssh_parse(const uint8_t *blob, size_t len, struct sf_privkey **out)
{
    struct sf_buf b, priv, mine = { 0 };
    uint8_t magic[sizeof(openssh_magic)];
    const uint8_t *cipher = NULL, *kdf = NULL, *kdfopts = NULL, *pub = NULL, *type = NULL;
    const uint8_t *comment = NULL;
    size_t cipherlen = 0, kdflen = 0, kdfoptslen = 0, publen = 0, typelen = 0, commentlen = 0;
    uint32_t nkeys = 0, check1 = 0, check2 = 0;
    const struct keyfile_curve *cv = NULL;
    EVP_PKEY *pk = NULL;
    struct sf_privkey *k = NULL;
    uint8_t pad;
    int r;

    *out = NULL;
    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_bytes(&b, magic, sizeof(magic))) != 0) {
        goto out;
    }
    if (memcmp(magic, openssh_magic, sizeof(magic)) != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((r = sf_buf_get_string(&b, &cipher, &cipherlen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_string(&b, &kdf, &kdflen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_string(&b, &kdfopts, &kdfoptslen, SF_KEYBLOB_MAX)) != 0) {
        goto out;
    }
    if (!name_eq(cipher, cipherlen, "none")) {
        r = SF_ERR_KEY_ENCRYPTED; /* XXX: bcrypt-pbkdf + aes256-ctr comes later */
        goto out;
    }
    if (!name_eq(kdf, kdflen, "none") || kdfoptslen != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((r = sf_buf_get_u32(&b, &nkeys)) != 0 ||
        (r = sf_buf_get_string(&b, &pub, &publen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_get_sub(&b, &priv, KEYFILE_MAX)) != 0 || (r = sf_buf_expect_end(&b)) != 0) {
        goto out;
    }
    if (nkeys != 1 || sf_buf_len(&priv) % KEYFILE_NONE_BLOCKSIZE != 0) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    /* Equal checkints show a successful decryption; unencrypted, they must match too. */
    if ((r = sf_buf_get_u32(&priv, &check1)) != 0 || (r = sf_buf_get_u32(&priv, &check2)) != 0) {
        goto out;
    }
    if (check1 != check2) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((r = sf_buf_get_string(&priv, &type, &typelen, SF_NAME_MAX)) != 0) {
        goto out;
    }
    if (name_eq(type, typelen, "ssh-ed25519")) {
        r = priv_ed25519(&priv, &pk);
    } else if (name_eq(type, typelen, "ssh-rsa")) {
        r = priv_rsa(&priv, &pk);
    } else {
        for (size_t i = 0; i < sizeof(keyfile_curves) / sizeof(keyfile_curves[0]); i++) {
            if (name_eq(type, typelen, keyfile_curves[i].type)) {
                cv = &keyfile_curves[i];
            }
        }
        r = cv != NULL ? priv_ecdsa(cv, &priv, &pk) : SF_ERR_KEY_TYPE;
    }
    if (r != 0) {
        goto out;
    }
    if ((r = sf_buf_get_string(&priv, &comment, &commentlen, SF_STRING_MAX)) != 0) {
        goto out;
    }
    /* Padding 1, 2, 3, ... (mod 256) up to the end. */
    for (size_t i = 1; sf_buf_len(&priv) > 0; i++) {
        if ((r = sf_buf_get_u8(&priv, &pad)) != 0) {
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
    *out = k;
    k = NULL;
    r = 0;
out:
    sf_buf_free(&mine);
    sf_privkey_free(k);
    EVP_PKEY_free(pk);
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

/* PEM (traditional or PKCS#8, possibly encrypted) through OpenSSL's decoders. */
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
        /* Asked for a passphrase: none given, or the given one did not decrypt it. */
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

int
sf_privkey_load(const uint8_t *data, size_t len, const char *passphrase,
                struct sf_privkey **out)
{
    uint8_t *payload = NULL;
    size_t plen = 0, pcap = 0;
    int r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (data == NULL) {
        return SF_ERR_INVALID;
    }
    if (len > KEYFILE_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    if (is_openssh_armour(data, len)) {
        if ((r = armour_decode(data, len, &payload, &plen, &pcap)) != 0) {
            goto out;
        }
        r = openssh_parse(payload, plen, out);
        goto out;
    }
    if (len >= 11 && memmem(data, len, "-----BEGIN ", 11) != NULL) {
        r = pem_load(data, len, passphrase, out);
        goto out;
    }
    r = SF_ERR_KEY_TYPE;
out:
    if (r != 0) {
        ERR_clear_error();
    }
    sf_freezero(payload, pcap);
    return r;
}

int
sf_privkey_load_file(const char *path, const char *passphrase, struct sf_privkey **out)
{
    struct stat st;
    uint8_t *data = NULL, *bigger = NULL;
    size_t len = 0, cap = 0;
    ssize_t got;
    int fd = -1, r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (path == NULL) {
        return SF_ERR_INVALID;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0 || fstat(fd, &st) != 0 ||
        S_ISDIR(st.st_mode)) {
        r = SF_ERR_FILE;
        goto out;
    }
    if (S_ISREG(st.st_mode) && st.st_size > KEYFILE_MAX) {
        r = SF_ERR_TOO_LARGE;
        goto out;
    }
    /* Size from fstat for regular files (plus one byte to see EOF), else grow. */
    cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 4096;
    if ((data = sf_alloc(cap)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap > KEYFILE_MAX) {
                r = SF_ERR_TOO_LARGE;
                goto out;
            }
            /* Grow by copy so the old block can be wiped (no realloc). */
            if ((bigger = sf_alloc(cap * 2)) == NULL) {
                r = SF_ERR_NOMEM;
                goto out;
            }
            memcpy(bigger, data, len);
            sf_freezero(data, cap);
            data = bigger;
            bigger = NULL;
            cap *= 2;
        }
        got = read(fd, data + len, cap - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got < 0) {
            r = SF_ERR_FILE;
            goto out;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    if (len > KEYFILE_MAX) {
        r = SF_ERR_TOO_LARGE;
        goto out;
    }
    r = sf_privkey_load(data, len, passphrase, out);
out:
    if (fd >= 0) {
        close(fd);
    }
    sf_freezero(data, cap);
    return r;
}
