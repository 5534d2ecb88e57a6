/*
 * src/key.c -- public keys, signatures and the private key object.
 *
 * Owns: struct sf_pubkey and struct sf_privkey (an EVP_PKEY plus the SSH
 * public key blob), parsing of public key blobs (RFC 4253 s6.6, RFC 5656
 * s3.1, RFC 8709 s4; certificate blobs are parsed by cert.c and wrapped
 * here), signature verification and creation (RFC 4253 s6.6, RFC 5656
 * s3.1.2, RFC 8332, RFC 8709 s6), and the host key algorithm lists.
 * Must never: read files or PEM armour (keyfile.c does), make or accept a
 * SHA-1 RSA signature unless "ssh-rsa" (or "ssh-rsa-cert-v01@openssh.com")
 * is the algorithm the caller asked for, or look at bytes from the peer
 * other than through struct sf_buf.
 */
#include "key.h"

#include <string.h>

#include "cert.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h> /* ECDSA_SIG only: the DER <-> (r, s) conversion */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

/* RSA limits: OpenSSH refuses moduli under 1024 bits; 16384 is its upper bound. */
#define KEY_RSA_MIN_BITS 1024
#define KEY_RSA_MAX_BITS 16384
#define KEY_RSA_MAX_BYTES (KEY_RSA_MAX_BITS / 8)
#define KEY_ED25519_PUB 32
#define KEY_ED25519_SIG 64
#define KEY_EC_MAX_FIELD 66 /* P-521: 521 bits */

/*
 * OpenSSH 9.2's default HostKeyAlgorithms (ssh_config(5), `ssh -G`), less
 * the sk-* types: certificates first. SHA-1 "ssh-rsa" is only in the list
 * of all (a caller opts in with HostKeyAlgorithms +ssh-rsa).
 */
const char sf_hostkey_default_list[] = "ssh-ed25519-cert-v01@openssh.com,"
                                       "ecdsa-sha2-nistp256-cert-v01@openssh.com,"
                                       "ecdsa-sha2-nistp384-cert-v01@openssh.com,"
                                       "ecdsa-sha2-nistp521-cert-v01@openssh.com,"
                                       "rsa-sha2-512-cert-v01@openssh.com,"
                                       "rsa-sha2-256-cert-v01@openssh.com,"
                                       "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                                       "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";
const char sf_hostkey_all_list[] = "ssh-ed25519-cert-v01@openssh.com,"
                                   "ecdsa-sha2-nistp256-cert-v01@openssh.com,"
                                   "ecdsa-sha2-nistp384-cert-v01@openssh.com,"
                                   "ecdsa-sha2-nistp521-cert-v01@openssh.com,"
                                   "rsa-sha2-512-cert-v01@openssh.com,"
                                   "rsa-sha2-256-cert-v01@openssh.com,"
                                   "ssh-rsa-cert-v01@openssh.com,"
                                   "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                                   "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa";

enum key_kind {
    KEY_ED25519,
    KEY_ECDSA,
    KEY_RSA,
};

/* RFC 5656 s6.1 (names), s6.2.1 (hash by curve size). */
struct key_curve {
    const char *type;  /* key type and signature algorithm name */
    const char *id;    /* curve identifier inside the blob */
    const char *group; /* OpenSSL group name (short name, as EVP_PKEY_get_group_name gives) */
    const char *alias; /* the NIST name OpenSSL also accepts */
    const char *md;    /* digest for signatures */
    size_t field;      /* bytes per coordinate; also the most bytes r, s, d may have */
};

static const struct key_curve curves[] = {
    { "ecdsa-sha2-nistp256", "nistp256", "prime256v1", "P-256", "SHA256", 32 },
    { "ecdsa-sha2-nistp384", "nistp384", "secp384r1", "P-384", "SHA384", 48 },
    { "ecdsa-sha2-nistp521", "nistp521", "secp521r1", "P-521", "SHA512", 66 },
};

/* What a public and a private key have in common. */
struct key_core {
    enum key_kind kind;
    const struct key_curve *curve; /* KEY_ECDSA only */
    size_t modbytes;               /* KEY_RSA only: modulus length in bytes */
    EVP_PKEY *pkey;
    uint8_t *blob; /* public key blob (RFC 4253 s6.6) */
    size_t bloblen;
};

struct sf_pubkey {
    struct key_core c;     /* a certificate's: its certified key, with blob = the certificate */
    struct sf_cert *cert;  /* NULL for a plain key */
};

struct sf_privkey {
    struct key_core c;
};

static bool
name_eq(const uint8_t *p, size_t n, const char *s)
{
    size_t sl = strlen(s);

    return n == sl && memcmp(p, s, n) == 0;
}

static const struct key_curve *
curve_by_type(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (name_eq(p, n, curves[i].type)) {
            return &curves[i];
        }
    }
    return NULL;
}

static const struct key_curve *
curve_by_group(const char *group)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (strcmp(group, curves[i].group) == 0 || strcmp(group, curves[i].alias) == 0) {
            return &curves[i];
        }
    }
    return NULL;
}

static void
core_clear(struct key_core *c)
{
    EVP_PKEY_free(c->pkey);
    sf_free(c->blob);
    memset(c, 0, sizeof(*c));
}

static const char *
core_type(const struct key_core *c)
{
    switch (c->kind) {
    case KEY_ED25519:
        return "ssh-ed25519";
    case KEY_ECDSA:
        return c->curve->type;
    case KEY_RSA:
        return "ssh-rsa";
    default:
        return "unknown";
    }
}

/*
 * Digest name for an RSA signature algorithm (RFC 8332 s3); NULL if not one
 * we allow. "ssh-rsa" (RFC 4253 s6.6, SHA-1) is legacy: it is only ever
 * used when a caller asks for that name (HostKeyAlgorithms +ssh-rsa, a CA
 * signature parsed without a CASignatureAlgorithms restriction).
 */
static const char *
rsa_sigalg_md(const char *sigalg)
{
    if (strcmp(sigalg, "rsa-sha2-256") == 0) {
        return "SHA256";
    }
    if (strcmp(sigalg, "rsa-sha2-512") == 0) {
        return "SHA512";
    }
    if (strcmp(sigalg, "ssh-rsa") == 0) {
        return "SHA1";
    }
    return NULL;
}

static bool
core_sigalg_ok(const struct key_core *c, const char *sigalg)
{
    if (sigalg == NULL) {
        return false;
    }
    switch (c->kind) {
    case KEY_ED25519:
        return strcmp(sigalg, "ssh-ed25519") == 0;
    case KEY_ECDSA:
        return strcmp(sigalg, c->curve->type) == 0;
    case KEY_RSA:
        return rsa_sigalg_md(sigalg) != NULL;
    default:
        return false;
    }
}

/* Digest used with sigalg on this key; NULL for Ed25519 (no prehash). */
static const char *
core_md(const struct key_core *c, const char *sigalg)
{
    switch (c->kind) {
    case KEY_ECDSA:
        return c->curve->md;
    case KEY_RSA:
        return rsa_sigalg_md(sigalg);
    case KEY_ED25519:
    default:
        return NULL;
    }
}

bool
sf_sigalg_supported(const char *name, size_t n)
{
    if (name == NULL || n == 0) {
        return false;
    }
    return sf_list_has(sf_hostkey_all_list, name, n);
}

/* Make an EVP_PKEY of the named algorithm from an OSSL_PARAM_BLD's contents. */
static int
pkey_fromdata(const char *alg, OSSL_PARAM_BLD *bld, int selection, EVP_PKEY **out)
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
    if (EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, out, selection, params) != 1) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params); /* clears the part that holds BN_secure_new values */
    return r;
}

/*
 * RFC 5656 s3.1: Q is an uncompressed point (SEC1 2.3.3), 0x04 || X || Y.
 * Builds the key and checks the point fully (on the curve, not infinity,
 * right order).
 */
static int
ec_pubkey_make(const struct key_curve *cv, const uint8_t *q, size_t qlen, EVP_PKEY **out)
{
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY_CTX *chk = NULL;
    EVP_PKEY *pk = NULL;
    int r;

    *out = NULL;
    if (qlen != 1 + 2 * cv->field || q[0] != 0x04) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, cv->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, q, qlen) != 1) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = pkey_fromdata("EC", bld, EVP_PKEY_PUBLIC_KEY, &pk)) != 0) {
        goto out;
    }
    if ((chk = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_public_check(chk) != 1) {
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
    return r;
}

/* RFC 4253 s6.6 checks on an RSA public key, on big-endian magnitudes. */
static int
rsa_check_public(const uint8_t *e, size_t elen, const uint8_t *n, size_t nlen)
{
    size_t bits;

    /* Magnitudes come without leading zero bytes (minimal mpints / BN_bn2bin). */
    if (nlen == 0 || nlen > KEY_RSA_MAX_BYTES || n[0] == 0) {
        return SF_ERR_KEY_TYPE;
    }
    bits = nlen * 8;
    for (uint8_t top = n[0]; (top & 0x80) == 0; top = (uint8_t)(top << 1)) {
        bits--;
    }
    if (bits < KEY_RSA_MIN_BITS || bits > KEY_RSA_MAX_BITS) {
        return SF_ERR_KEY_TYPE;
    }
    /* e odd and >= 3, and smaller than n. */
    if (elen == 0 || (e[elen - 1] & 1) == 0 || (elen == 1 && e[0] < 3)) {
        return SF_ERR_BAD_FORMAT;
    }
    if (elen > nlen || (elen == nlen && memcmp(e, n, nlen) >= 0)) {
        return SF_ERR_BAD_FORMAT;
    }
    return 0;
}

static int
rsa_pubkey_make(const uint8_t *e, size_t elen, const uint8_t *n, size_t nlen, EVP_PKEY **out)
{
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *bn_e = NULL, *bn_n = NULL;
    int r;

    *out = NULL;
    if ((r = rsa_check_public(e, elen, n, nlen)) != 0) {
        goto out;
    }
    if ((bn_e = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
        (bn_n = BN_bin2bn(n, (int)nlen, NULL)) == NULL || (bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    r = pkey_fromdata("RSA", bld, EVP_PKEY_PUBLIC_KEY, out);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_e);
    BN_free(bn_n);
    return r;
}

/*
 * Public key blobs:
 *   RFC 8709 s4    string "ssh-ed25519"  string key (32 bytes)
 *   RFC 5656 s3.1  string "ecdsa-sha2-[identifier]"  string [identifier]  string Q
 *   RFC 4253 s6.6  string "ssh-rsa"  mpint e  mpint n
 */
int
sf_pubkey_from_plain_blob(const uint8_t *blob, size_t len, struct sf_pubkey **out)
{
    struct sf_pubkey *k = NULL;
    struct sf_buf b;
    const uint8_t *type = NULL, *p = NULL, *q = NULL;
    size_t tlen = 0, plen = 0, qlen = 0;
    int r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (blob == NULL && len != 0) {
        return SF_ERR_INVALID;
    }
    if (len > SF_KEYBLOB_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    if ((k = sf_alloc(sizeof(*k))) == NULL) {
        return SF_ERR_NOMEM;
    }
    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_string(&b, &type, &tlen, SF_NAME_MAX)) != 0) {
        goto out;
    }
    if (name_eq(type, tlen, "ssh-ed25519")) {
        k->c.kind = KEY_ED25519;
        if ((r = sf_buf_get_string(&b, &p, &plen, KEY_ED25519_PUB)) != 0 ||
            (r = sf_buf_expect_end(&b)) != 0) {
            goto out;
        }
        if (plen != KEY_ED25519_PUB) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        if ((k->c.pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, p, plen)) == NULL) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
    } else if ((k->c.curve = curve_by_type(type, tlen)) != NULL) {
        k->c.kind = KEY_ECDSA;
        if ((r = sf_buf_get_string(&b, &p, &plen, SF_NAME_MAX)) != 0 ||
            (r = sf_buf_get_string(&b, &q, &qlen, 1 + 2 * KEY_EC_MAX_FIELD)) != 0 ||
            (r = sf_buf_expect_end(&b)) != 0) {
            goto out;
        }
        /* RFC 5656 s3.1: the identifier must match the curve named by the type. */
        if (!name_eq(p, plen, k->c.curve->id)) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        if ((r = ec_pubkey_make(k->c.curve, q, qlen, &k->c.pkey)) != 0) {
            goto out;
        }
    } else if (name_eq(type, tlen, "ssh-rsa")) {
        k->c.kind = KEY_RSA;
        /* p = e, q = n */
        if ((r = sf_buf_get_mpint_pos(&b, &p, &plen, KEY_RSA_MAX_BYTES)) != 0 ||
            (r = sf_buf_get_mpint_pos(&b, &q, &qlen, KEY_RSA_MAX_BYTES)) != 0 ||
            (r = sf_buf_expect_end(&b)) != 0) {
            goto out;
        }
        if ((r = rsa_pubkey_make(p, plen, q, qlen, &k->c.pkey)) != 0) {
            goto out;
        }
        k->c.modbytes = qlen;
    } else {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if ((k->c.blob = sf_alloc(len)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    memcpy(k->c.blob, blob, len);
    k->c.bloblen = len;
    *out = k;
    k = NULL;
    r = 0;
out:
    if (r != 0) {
        ERR_clear_error();
    }
    sf_pubkey_free(k);
    return r;
}

/*
 * A certificate (PROTOCOL.certkeys): cert.c parses it and verifies the CA's
 * signature with any algorithm we can verify (whether that CA and
 * algorithm are trusted is decided later, by whoever trusts it); the key
 * object signs and verifies as the certified key.
 */
static int
pubkey_from_cert(const uint8_t *blob, size_t len, struct sf_pubkey **out)
{
    struct sf_pubkey *k = NULL;
    struct sf_cert *cert = NULL;
    const struct sf_pubkey *inner = NULL;
    int r;

    if ((r = sf_cert_from_blob_algs(blob, len, NULL, &cert)) != 0) {
        return r;
    }
    if ((k = sf_alloc(sizeof(*k))) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    inner = sf_cert_key(cert);
    if (EVP_PKEY_up_ref(inner->c.pkey) != 1) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    k->c.kind = inner->c.kind;
    k->c.curve = inner->c.curve;
    k->c.modbytes = inner->c.modbytes;
    k->c.pkey = inner->c.pkey;
    if ((k->c.blob = sf_alloc(len)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    memcpy(k->c.blob, blob, len);
    k->c.bloblen = len;
    k->cert = cert;
    cert = NULL;
    *out = k;
    k = NULL;
    r = 0;
out:
    sf_cert_free(cert);
    sf_pubkey_free(k);
    return r;
}

int
sf_pubkey_from_blob(const uint8_t *blob, size_t len, struct sf_pubkey **out)
{
    struct sf_buf b;
    const uint8_t *type = NULL;
    size_t tlen = 0;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (blob == NULL || len > SF_KEYBLOB_MAX) {
        return sf_pubkey_from_plain_blob(blob, len, out); /* its errors */
    }
    sf_buf_init_view(&b, blob, len);
    if (sf_buf_get_string(&b, &type, &tlen, SF_NAME_MAX) == 0 &&
        sf_cert_is_type((const char *)type, tlen)) {
        return pubkey_from_cert(blob, len, out);
    }
    return sf_pubkey_from_plain_blob(blob, len, out);
}

void
sf_pubkey_free(struct sf_pubkey *k)
{
    if (k == NULL) {
        return;
    }
    core_clear(&k->c);
    sf_cert_free(k->cert);
    sf_free(k);
}

const char *
sf_pubkey_type(const struct sf_pubkey *k)
{
    if (k->cert != NULL) {
        return sf_cert_type(k->cert);
    }
    return core_type(&k->c);
}

const struct sf_cert *
sf_pubkey_cert(const struct sf_pubkey *k)
{
    return k != NULL ? k->cert : NULL;
}

/*
 * The signature algorithm inside signatures made under sigalg by k: the
 * name itself for a plain key; the base name ("rsa-sha2-512" for
 * "rsa-sha2-512-cert-v01@openssh.com") for a certificate, which accepts
 * only certificate algorithm names. NULL if sigalg does not fit the key.
 */
static const char *
pubkey_base_sigalg(const struct sf_pubkey *k, const char *sigalg)
{
    const char *base = NULL;

    if (k == NULL || sigalg == NULL) {
        return NULL;
    }
    base = k->cert != NULL ? sf_cert_sigalg_base(sigalg) : sigalg;
    if (base == NULL || !core_sigalg_ok(&k->c, base)) {
        return NULL;
    }
    return base;
}

const uint8_t *
sf_pubkey_blob(const struct sf_pubkey *k, size_t *len)
{
    *len = k->c.bloblen;
    return k->c.blob;
}

bool
sf_pubkey_sigalg_ok(const struct sf_pubkey *k, const char *sigalg)
{
    return pubkey_base_sigalg(k, sigalg) != NULL;
}

/*
 * RFC 5656 s3.1.2: the ECDSA signature blob is  mpint r  mpint s.  OpenSSL
 * wants DER (SEQUENCE { INTEGER r, INTEGER s }): *der is allocated by
 * OpenSSL (free with OPENSSL_free).
 */
static int
ecdsa_sig_to_der(const struct key_curve *cv, const uint8_t *sig, size_t siglen, uint8_t **der,
                 size_t *derlen)
{
    struct sf_buf b;
    const uint8_t *rp = NULL, *sp = NULL;
    size_t rn = 0, sn = 0;
    ECDSA_SIG *es = NULL;
    BIGNUM *br = NULL, *bs = NULL;
    int len, r;

    *der = NULL;
    *derlen = 0;
    sf_buf_init_view(&b, sig, siglen);
    /* Any defect inside the signature string makes it a bad signature. */
    if (sf_buf_get_mpint_pos(&b, &rp, &rn, cv->field) != 0 ||
        sf_buf_get_mpint_pos(&b, &sp, &sn, cv->field) != 0 || sf_buf_expect_end(&b) != 0) {
        r = SF_ERR_SIGNATURE;
        goto out;
    }
    /* r, s in [1, order - 1] (SEC1 4.1.4 step 1); the order is as long as a coordinate. */
    if (rn == 0 || sn == 0 || rn > cv->field || sn > cv->field) {
        r = SF_ERR_SIGNATURE;
        goto out;
    }
    if ((es = ECDSA_SIG_new()) == NULL || (br = BN_bin2bn(rp, (int)rn, NULL)) == NULL ||
        (bs = BN_bin2bn(sp, (int)sn, NULL)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (ECDSA_SIG_set0(es, br, bs) != 1) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    br = bs = NULL; /* owned by es */
    if ((len = i2d_ECDSA_SIG(es, der)) <= 0) {
        *der = NULL;
        r = SF_ERR_NOMEM;
        goto out;
    }
    *derlen = (size_t)len;
    r = 0;
out:
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(es);
    return r;
}

/*
 * One-shot EVP verify; md NULL for Ed25519. Returns 0 if valid,
 * SF_ERR_SIGNATURE if not.
 */
static int
evp_verify(EVP_PKEY *pkey, const char *md, bool pkcs1, const uint8_t *sig, size_t siglen,
           const uint8_t *data, size_t datalen)
{
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int r = SF_ERR_CRYPTO;

    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, pkey, NULL) != 1) {
        goto out;
    }
    if (pkcs1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
        goto out;
    }
    /* 1 = good; 0 = bad signature; < 0 = could not even parse it: both refuse. */
    if (EVP_DigestVerify(ctx, sig, siglen, data, datalen) != 1) {
        r = SF_ERR_SIGNATURE;
        goto out;
    }
    r = 0;
out:
    EVP_MD_CTX_free(ctx);
    return r;
}

int
sf_pubkey_verify(const struct sf_pubkey *k, const char *sigalg, const uint8_t *sig,
                 size_t siglen, const uint8_t *data, size_t datalen)
{
    struct sf_buf b;
    const uint8_t *name = NULL, *s = NULL;
    size_t nlen = 0, slen = 0, derlen = 0;
    uint8_t *der = NULL, *padded = NULL;
    int r;

    if (k == NULL || sigalg == NULL || (sig == NULL && siglen != 0) ||
        (data == NULL && datalen != 0)) {
        return SF_ERR_INVALID;
    }
    if (siglen > SF_KEYBLOB_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    /* string signature-algorithm-name || string signature */
    sf_buf_init_view(&b, sig, siglen);
    if ((r = sf_buf_get_string(&b, &name, &nlen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_string(&b, &s, &slen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_expect_end(&b)) != 0) {
        goto out;
    }
    /* A certificate's signatures carry the base name ("ssh-ed25519", "rsa-sha2-512"). */
    if ((sigalg = pubkey_base_sigalg(k, sigalg)) == NULL || !name_eq(name, nlen, sigalg)) {
        r = SF_ERR_SIGNATURE;
        goto out;
    }
    if (data == NULL) {
        data = (const uint8_t *)""; /* EVP wants a pointer even for no data */
    }
    switch (k->c.kind) {
    case KEY_ED25519:
        /* RFC 8709 s6: the signature is exactly 64 bytes. */
        if (slen != KEY_ED25519_SIG) {
            r = SF_ERR_SIGNATURE;
            goto out;
        }
        r = evp_verify(k->c.pkey, NULL, false, s, slen, data, datalen);
        break;
    case KEY_ECDSA:
        if ((r = ecdsa_sig_to_der(k->c.curve, s, slen, &der, &derlen)) != 0) {
            goto out;
        }
        r = evp_verify(k->c.pkey, k->c.curve->md, false, der, derlen, data, datalen);
        break;
    case KEY_RSA:
        /*
         * RFC 8332 s3: the signature is as long as the modulus. Some
         * implementations strip leading zero bytes (OpenSSH accepts and pads
         * them too); longer never fits.
         */
        if (slen == 0 || slen > k->c.modbytes) {
            r = SF_ERR_SIGNATURE;
            goto out;
        }
        if (slen < k->c.modbytes) {
            if ((padded = sf_alloc(k->c.modbytes)) == NULL) {
                r = SF_ERR_NOMEM;
                goto out;
            }
            memcpy(padded + (k->c.modbytes - slen), s, slen);
            s = padded;
            slen = k->c.modbytes;
        }
        r = evp_verify(k->c.pkey, rsa_sigalg_md(sigalg), true, s, slen, data, datalen);
        break;
    default:
        r = SF_ERR_INTERNAL;
        break;
    }
out:
    if (r != 0) {
        ERR_clear_error();
    }
    OPENSSL_free(der);
    sf_free(padded);
    return r;
}

/* ---- private keys ---- */

/* RFC 4253 s6.6 public blob of an RSA EVP_PKEY. */
static int
rsa_pubblob(EVP_PKEY *pk, struct sf_buf *out, size_t *modbytes)
{
    BIGNUM *n = NULL, *e = NULL;
    uint8_t nb[KEY_RSA_MAX_BYTES], eb[KEY_RSA_MAX_BYTES];
    int nlen, elen, r;

    if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if (BN_num_bytes(n) > KEY_RSA_MAX_BYTES || BN_num_bytes(e) > KEY_RSA_MAX_BYTES) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    nlen = BN_bn2bin(n, nb);
    elen = BN_bn2bin(e, eb);
    if ((r = rsa_check_public(eb, (size_t)elen, nb, (size_t)nlen)) != 0) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    *modbytes = (size_t)nlen;
    if ((r = sf_buf_put_cstr(out, "ssh-rsa")) != 0 ||
        (r = sf_buf_put_mpint(out, eb, (size_t)elen)) != 0 ||
        (r = sf_buf_put_mpint(out, nb, (size_t)nlen)) != 0) {
        goto out;
    }
    r = 0;
out:
    BN_free(n);
    BN_free(e);
    return r;
}

/* RFC 5656 s3.1 public blob of an EC EVP_PKEY; Q always uncompressed. */
static int
ec_pubblob(EVP_PKEY *pk, struct sf_buf *out, const struct key_curve **curve)
{
    char group[64];
    const struct key_curve *cv = NULL;
    BIGNUM *x = NULL, *y = NULL;
    uint8_t q[1 + 2 * KEY_EC_MAX_FIELD];
    int r;

    if (EVP_PKEY_get_group_name(pk, group, sizeof(group), NULL) != 1 ||
        (cv = curve_by_group(group)) == NULL) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    q[0] = 0x04;
    if (BN_bn2binpad(x, q + 1, (int)cv->field) < 0 ||
        BN_bn2binpad(y, q + 1 + cv->field, (int)cv->field) < 0) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if ((r = sf_buf_put_cstr(out, cv->type)) != 0 || (r = sf_buf_put_cstr(out, cv->id)) != 0 ||
        (r = sf_buf_put_string(out, q, 1 + 2 * cv->field)) != 0) {
        goto out;
    }
    *curve = cv;
    r = 0;
out:
    BN_free(x);
    BN_free(y);
    return r;
}

int
sf_privkey_from_pkey(EVP_PKEY **pkey, struct sf_privkey **out)
{
    struct sf_privkey *k = NULL;
    struct sf_buf b = { 0 };
    uint8_t raw[KEY_ED25519_PUB];
    size_t rawlen = sizeof(raw);
    int r;

    *out = NULL;
    if (pkey == NULL || *pkey == NULL) {
        return SF_ERR_INVALID;
    }
    if ((k = sf_alloc(sizeof(*k))) == NULL) {
        return SF_ERR_NOMEM;
    }
    if ((r = sf_buf_alloc(&b, 256, SF_KEYBLOB_MAX)) != 0) {
        goto out;
    }
    if (EVP_PKEY_is_a(*pkey, "ED25519")) {
        k->c.kind = KEY_ED25519;
        if (EVP_PKEY_get_raw_public_key(*pkey, raw, &rawlen) != 1 || rawlen != sizeof(raw)) {
            r = SF_ERR_KEY_TYPE;
            goto out;
        }
        if ((r = sf_buf_put_cstr(&b, "ssh-ed25519")) != 0 ||
            (r = sf_buf_put_string(&b, raw, rawlen)) != 0) {
            goto out;
        }
    } else if (EVP_PKEY_is_a(*pkey, "EC")) {
        k->c.kind = KEY_ECDSA;
        if ((r = ec_pubblob(*pkey, &b, &k->c.curve)) != 0) {
            goto out;
        }
    } else if (EVP_PKEY_is_a(*pkey, "RSA")) {
        k->c.kind = KEY_RSA;
        if ((r = rsa_pubblob(*pkey, &b, &k->c.modbytes)) != 0) {
            goto out;
        }
    } else {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    k->c.bloblen = sf_buf_len(&b);
    if ((k->c.blob = sf_alloc(k->c.bloblen)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    memcpy(k->c.blob, sf_buf_ptr(&b), k->c.bloblen);
    k->c.pkey = *pkey;
    *pkey = NULL;
    *out = k;
    k = NULL;
    r = 0;
out:
    if (r != 0) {
        ERR_clear_error();
    }
    sf_buf_free(&b);
    sf_privkey_free(k);
    return r;
}

void
sf_privkey_free(struct sf_privkey *k)
{
    if (k == NULL) {
        return;
    }
    /* EVP_PKEY_free clears the private key material (BN_clear_free / cleanse). */
    core_clear(&k->c);
    sf_freezero(k, sizeof(*k));
}

const char *
sf_privkey_type(const struct sf_privkey *k)
{
    return core_type(&k->c);
}

EVP_PKEY *
sf_privkey_pkey(const struct sf_privkey *k)
{
    return k != NULL ? k->c.pkey : NULL;
}

int
sf_privkey_pubblob(const struct sf_privkey *k, struct sf_buf *out)
{
    if (k == NULL || out == NULL) {
        return SF_ERR_INVALID;
    }
    return sf_buf_put_bytes(out, k->c.blob, k->c.bloblen);
}

/* One-shot EVP sign into a fresh buffer *sig (sf_alloc'd, *siglen bytes). */
static int
evp_sign(EVP_PKEY *pkey, const char *md, bool pkcs1, const uint8_t *data, size_t len,
         uint8_t **sig, size_t *siglen)
{
    EVP_MD_CTX *ctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t *s = NULL;
    size_t slen = 0;
    int r = SF_ERR_CRYPTO;

    *sig = NULL;
    *siglen = 0;
    if ((ctx = EVP_MD_CTX_new()) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, pkey, NULL) != 1) {
        goto out;
    }
    if (pkcs1 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
        goto out;
    }
    if (EVP_DigestSign(ctx, NULL, &slen, data, len) != 1 || slen == 0 ||
        slen > SF_KEYBLOB_MAX) {
        goto out;
    }
    if ((s = sf_alloc(slen)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (EVP_DigestSign(ctx, s, &slen, data, len) != 1) {
        goto out;
    }
    *sig = s;
    *siglen = slen;
    s = NULL;
    r = 0;
out:
    sf_free(s);
    EVP_MD_CTX_free(ctx);
    return r;
}

/* RFC 5656 s3.1.2: DER ECDSA signature -> string(mpint r || mpint s) contents in out. */
static int
ecdsa_der_to_ssh(const struct key_curve *cv, const uint8_t *der, size_t derlen,
                 struct sf_buf *out)
{
    ECDSA_SIG *es = NULL;
    const BIGNUM *br = NULL, *bs = NULL;
    const unsigned char *p = der;
    uint8_t rb[KEY_EC_MAX_FIELD], sb[KEY_EC_MAX_FIELD];
    int rn, sn, r;

    if ((es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    ECDSA_SIG_get0(es, &br, &bs);
    if (BN_num_bytes(br) > (int)cv->field || BN_num_bytes(bs) > (int)cv->field) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    rn = BN_bn2bin(br, rb);
    sn = BN_bn2bin(bs, sb);
    if ((r = sf_buf_put_mpint(out, rb, (size_t)rn)) != 0 ||
        (r = sf_buf_put_mpint(out, sb, (size_t)sn)) != 0) {
        goto out;
    }
    r = 0;
out:
    ECDSA_SIG_free(es);
    return r;
}

int
sf_privkey_sign(const struct sf_privkey *k, const char *sigalg, const uint8_t *data, size_t len,
                struct sf_buf *out)
{
    uint8_t *sig = NULL;
    size_t siglen = 0;
    struct sf_buf ssig = { 0 }, blob = { 0 };
    int r;

    if (k == NULL || out == NULL || (data == NULL && len != 0)) {
        return SF_ERR_INVALID;
    }
    /* A certificate algorithm signs as its base algorithm (PROTOCOL.certkeys). */
    if (sf_cert_sigalg_base(sigalg) != NULL) {
        sigalg = sf_cert_sigalg_base(sigalg);
    }
    if (!core_sigalg_ok(&k->c, sigalg)) {
        return SF_ERR_INVALID;
    }
    if (data == NULL) {
        data = (const uint8_t *)"";
    }
    if ((r = evp_sign(k->c.pkey, core_md(&k->c, sigalg), k->c.kind == KEY_RSA, data, len, &sig,
                      &siglen)) != 0) {
        goto out;
    }
    switch (k->c.kind) {
    case KEY_ED25519:
        if (siglen != KEY_ED25519_SIG) {
            r = SF_ERR_CRYPTO;
            goto out;
        }
        break;
    case KEY_ECDSA:
        /* Re-encode into ssig, then write that as the signature string. */
        if ((r = sf_buf_alloc(&ssig, 2 * (4 + 1 + KEY_EC_MAX_FIELD), SF_KEYBLOB_MAX)) != 0 ||
            (r = ecdsa_der_to_ssh(k->c.curve, sig, siglen, &ssig)) != 0) {
            goto out;
        }
        break;
    case KEY_RSA:
        /* RFC 8332 s3: exactly as long as the modulus (EVP gives that). */
        if (siglen != k->c.modbytes) {
            r = SF_ERR_CRYPTO;
            goto out;
        }
        break;
    default:
        r = SF_ERR_INTERNAL;
        goto out;
    }
    /*
     * string signature-algorithm-name || string signature, built aside and
     * appended in one put so that out is unchanged on failure.
     */
    if ((r = sf_buf_alloc(&blob, 64 + siglen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_put_cstr(&blob, sigalg)) != 0) {
        goto out;
    }
    if (k->c.kind == KEY_ECDSA) {
        r = sf_buf_put_sub(&blob, &ssig);
    } else {
        r = sf_buf_put_string(&blob, sig, siglen);
    }
    if (r != 0 || (r = sf_buf_put_bytes(out, sf_buf_ptr(&blob), sf_buf_len(&blob))) != 0) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        ERR_clear_error();
    }
    sf_buf_free(&blob);
    sf_buf_free(&ssig);
    sf_free(sig);
    return r;
}
