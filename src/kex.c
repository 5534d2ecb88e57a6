/*
 * src/kex.c -- key exchange methods, exchange-hash digest and RFC 4253 s7.2
 * key derivation.
 *
 * Methods (one table row each, init_msg 30 / reply_msg 31 for all):
 *   curve25519-sha256, curve25519-sha256@libssh.org   RFC 8731
 *   ecdh-sha2-nistp256 / nistp384 / nistp521         RFC 5656 s4, s6.2
 *   diffie-hellman-group14-sha256 / group16-sha512    RFC 8268, RFC 3526, RFC 4253 s8
 *
 * Owns: the method table, the client's ephemeral private key (an EVP_PKEY,
 * whose private parts OpenSSL clears on free) and every intermediate secret
 * (raw shared secret, derived blocks), wiped before return. Every value the
 * server sends is validated here before any secret is derived from it.
 * Must never: do I/O, know the KEXINIT negotiation or the layout of the
 * exchange hash (that is the transport's), read peer bytes other than
 * through struct sf_buf, or hand out a K computed from an unchecked value.
 */
#include "kex.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#define KEX_X25519_LEN 32   /* RFC 7748 s5: public values and output are 32 bytes */
#define KEX_EC_FIELD_MAX 66 /* P-521: ceil(521 / 8) */
#define KEX_EC_POINT_MAX (1 + 2 * KEX_EC_FIELD_MAX) /* 0x04 || x || y */
#define KEX_DH_P_MAX 512    /* 4096-bit group */
#define KEX_SECRET_MAX KEX_DH_P_MAX
/*
 * Private exponent length for the MODP groups: 2 x 256 bits, twice the
 * largest symmetric key we negotiate (AES-256, ChaCha20), as RFC 8268 s4
 * and OpenSSH's dh_gen_key() do. It is also at least twice the strength
 * of either group (about 112 / 150 bits), which OpenSSL requires.
 */
#define KEX_DH_PRIV_BITS 512

_Static_assert(EVP_MAX_MD_SIZE <= 64, "sf_kex_hash promises 64-byte output buffers suffice");

enum kex_family {
    KEX_X25519 = 1,
    KEX_ECDH,
    KEX_DH,
};

/* What a method needs beyond its name and hash. */
struct kex_params {
    enum kex_family family;
    const char *alg;   /* OpenSSL key type: "X25519", "EC", "DH" */
    const char *group; /* OpenSSL group name: "P-256", "modp_2048"; NULL for X25519 */
    size_t size;       /* bytes of the public value's coordinate / modulus */
};

struct sf_kex_state {
    const struct kex_params *kp;
    EVP_PKEY *priv; /* our ephemeral key pair; NULL once K has been computed */
};

static const struct kex_params kp_x25519 = {KEX_X25519, "X25519", NULL, KEX_X25519_LEN};
static const struct kex_params kp_p256 = {KEX_ECDH, "EC", "P-256", 32};
static const struct kex_params kp_p384 = {KEX_ECDH, "EC", "P-384", 48};
static const struct kex_params kp_p521 = {KEX_ECDH, "EC", "P-521", 66};
static const struct kex_params kp_dh14 = {KEX_DH, "DH", "modp_2048", 256};
static const struct kex_params kp_dh16 = {KEX_DH, "DH", "modp_4096", 512};

const char sf_kex_default_list[] =
    "curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
    "diffie-hellman-group16-sha512,diffie-hellman-group14-sha256";
const char sf_kex_all_list[] =
    "curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
    "diffie-hellman-group16-sha512,diffie-hellman-group14-sha256";

/* ------------------------------------------------------------ key pairs */

/* Fresh ephemeral key pair for kp. */
static int
kex_keygen(const struct kex_params *kp, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM params[3];
    size_t priv_bits = KEX_DH_PRIV_BITS;
    size_t np = 0;
    int r = SF_ERR_CRYPTO;

    *out = NULL;
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, kp->alg, NULL)) == NULL ||
        EVP_PKEY_keygen_init(ctx) != 1) {
        goto out;
    }
    if (kp->group != NULL) {
        params[np++] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                        (char *)kp->group, 0);
    }
    if (kp->family == KEX_DH) {
        params[np++] = OSSL_PARAM_construct_size_t(OSSL_PKEY_PARAM_DH_PRIV_LEN, &priv_bits);
    }
    params[np] = OSSL_PARAM_construct_end();
    if (np != 0 && EVP_PKEY_CTX_set_params(ctx, params) != 1) {
        goto out;
    }
    if (EVP_PKEY_generate(ctx, out) != 1) {
        *out = NULL;
        goto out;
    }
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    return r;
}

/*
 * Key pair from fixed values (test vectors only, via sf_kex_test_init_fixed).
 * X25519: priv is the 32-byte scalar, pub is ignored. ECDH: priv is the
 * big-endian scalar, pub the uncompressed point. DH: priv is the big-endian
 * exponent, pub the big-endian public value.
 */
static int
kex_import(const struct kex_params *kp, const uint8_t *priv, size_t privlen, const uint8_t *pub,
           size_t publen, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *x = NULL, *y = NULL;
    int r = SF_ERR_CRYPTO;

    *out = NULL;
    if (kp->family == KEX_X25519) {
        if (privlen != KEX_X25519_LEN) {
            return SF_ERR_INVALID;
        }
        if ((*out = EVP_PKEY_new_raw_private_key_ex(NULL, kp->alg, NULL, priv, privlen)) ==
            NULL) {
            return SF_ERR_CRYPTO;
        }
        return 0;
    }
    if (pub == NULL || publen == 0 || privlen == 0) {
        return SF_ERR_INVALID;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL || (x = BN_secure_new()) == NULL ||
        BN_bin2bn(priv, (int)privlen, x) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, kp->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, x) != 1) {
        goto out;
    }
    if (kp->family == KEX_ECDH) {
        if (OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, publen) != 1) {
            goto out;
        }
    } else if ((y = BN_bin2bn(pub, (int)publen, NULL)) == NULL ||
               OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, y) != 1) {
        goto out;
    }
    if ((params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, kp->alg, NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) != 1) {
        *out = NULL;
        goto out;
    }
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(x);
    BN_free(y);
    return r;
}

/*
 * Append our public value as it goes on the wire and into the hash:
 * string Q_C (raw 32 bytes for X25519, 0x04 || x || y for ECDH) or mpint e.
 */
static int
kex_put_public(const struct kex_params *kp, EVP_PKEY *pk, struct sf_buf *out)
{
    uint8_t pub[KEX_DH_P_MAX];
    size_t len = 0;
    BIGNUM *e = NULL;
    int r = SF_ERR_CRYPTO;

    switch (kp->family) {
    case KEX_X25519:
        len = sizeof(pub);
        if (EVP_PKEY_get_raw_public_key(pk, pub, &len) != 1 || len != KEX_X25519_LEN) {
            goto out;
        }
        r = sf_buf_put_string(out, pub, len);
        break;
    case KEX_ECDH:
        /* RFC 5656 s4: Q_C is the uncompressed point (SEC1 2.3.3). */
        if (EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
                                            &len) != 1 ||
            len != 1 + 2 * kp->size || pub[0] != 0x04) {
            goto out;
        }
        r = sf_buf_put_string(out, pub, len);
        break;
    case KEX_DH:
        if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PUB_KEY, &e) != 1 ||
            BN_bn2binpad(e, pub, (int)kp->size) < 0) {
            goto out;
        }
        r = sf_buf_put_mpint(out, pub, kp->size);
        break;
    default:
        r = SF_ERR_INTERNAL;
        break;
    }
out:
    BN_free(e);
    return r;
}

static int
kex_init(const struct kex_params *kp, const uint8_t *priv, size_t privlen, const uint8_t *pub,
         size_t publen, struct sf_kex_state **stp, struct sf_buf *out)
{
    struct sf_kex_state *st = NULL;
    int r;

    if (stp == NULL || out == NULL) {
        return SF_ERR_INVALID;
    }
    *stp = NULL;
    if ((st = sf_alloc(sizeof(*st))) == NULL) {
        return SF_ERR_NOMEM;
    }
    st->kp = kp;
    r = priv == NULL ? kex_keygen(kp, &st->priv)
                     : kex_import(kp, priv, privlen, pub, publen, &st->priv);
    if (r != 0 || (r = kex_put_public(kp, st->priv, out)) != 0) {
        goto out;
    }
    *stp = st;
    st = NULL;
out:
    if (st != NULL) {
        EVP_PKEY_free(st->priv);
        sf_freezero(st, sizeof(*st));
    }
    return r;
}

static void
kex_free(struct sf_kex_state *st)
{
    if (st == NULL) {
        return;
    }
    EVP_PKEY_free(st->priv); /* OpenSSL clears private key material */
    sf_freezero(st, sizeof(*st));
}

/* ------------------------------------------------------- shared secrets */

/*
 * secret = derive(priv, peer). peer must already be validated; the derive
 * context validates it again (validate_peer = 1).
 */
static int
kex_derive_with(EVP_PKEY *priv, EVP_PKEY *peer, bool pad_dh, uint8_t *secret, size_t *len)
{
    EVP_PKEY_CTX *ctx = NULL;
    size_t need = 0;
    int r = SF_ERR_CRYPTO;

    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL)) == NULL ||
        EVP_PKEY_derive_init(ctx) != 1) {
        goto out;
    }
    /* DH: always p-length output (DH_compute_key_padded); we strip for the mpint. */
    if (pad_dh) {
        unsigned int pad = 1;
        OSSL_PARAM params[2];

        params[0] = OSSL_PARAM_construct_uint(OSSL_EXCHANGE_PARAM_PAD, &pad);
        params[1] = OSSL_PARAM_construct_end();
        if (EVP_PKEY_CTX_set_params(ctx, params) != 1) {
            goto out;
        }
    }
    if (EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) != 1) {
        r = SF_ERR_PROTOCOL;
        goto out;
    }
    if (EVP_PKEY_derive(ctx, NULL, &need) != 1 || need > *len) {
        goto out;
    }
    if (EVP_PKEY_derive(ctx, secret, &need) != 1) {
        sf_wipe(secret, *len);
        goto out;
    }
    *len = need;
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    return r;
}

/* All-zero test without a data-dependent branch inside the loop. */
static bool
is_all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;

    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

/*
 * RFC 8731 s3: X25519(a, Q_S). OpenSSL already refuses an all-zero result
 * (a small-order Q_S); we check again because RFC 8731 requires it.
 */
static int
x25519_shared(EVP_PKEY *priv, const uint8_t peer_pub[KEX_X25519_LEN], uint8_t out[KEX_X25519_LEN])
{
    EVP_PKEY *peer = NULL;
    size_t len = KEX_X25519_LEN;
    int r;

    if ((peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, peer_pub,
                                               KEX_X25519_LEN)) == NULL) {
        return SF_ERR_CRYPTO;
    }
    if ((r = kex_derive_with(priv, peer, false, out, &len)) != 0) {
        goto out;
    }
    if (len != KEX_X25519_LEN) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    if (is_all_zero(out, len)) {
        r = SF_ERR_PROTOCOL;
        goto out;
    }
out:
    if (r != 0) {
        sf_wipe(out, KEX_X25519_LEN);
    }
    EVP_PKEY_free(peer);
    return r;
}

/*
 * RFC 5656 s4: Q_S must be a valid point of the negotiated curve; K is the
 * x coordinate of d_C * Q_S (s7.1 via SEC1 3.3.1), field-length here.
 */
static int
ecdh_shared(const struct kex_params *kp, EVP_PKEY *priv, const uint8_t *q, size_t qlen,
            uint8_t *secret, size_t *len)
{
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY *peer = NULL;
    OSSL_PARAM params[3];
    int r = SF_ERR_PROTOCOL;

    /* Uncompressed only (RFC 5656 s3.1 / OpenSSH); this also rules out infinity ("00"). */
    if (qlen != 1 + 2 * kp->size || q[0] != 0x04) {
        goto out;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)kp->group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)q, qlen);
    params[2] = OSSL_PARAM_construct_end();
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    /* Decoding fails for coordinates >= p and for points not on the curve. */
    if (EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        peer = NULL;
        goto out;
    }
    /* SP 800-56A 5.6.2.3.3 full public key validation (on curve, n*Q = O). */
    if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, peer, NULL)) == NULL) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    if (EVP_PKEY_public_check(check) != 1) {
        goto out;
    }
    if ((r = kex_derive_with(priv, peer, false, secret, len)) != 0) {
        goto out;
    }
    if (*len != kp->size) {
        sf_wipe(secret, *len);
        r = SF_ERR_CRYPTO;
        goto out;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    return r;
}

/*
 * RFC 4253 s8: reject f outside [2, p-2] ("values of 'e' or 'f' that are not
 * in the range [1, p-1] MUST NOT be sent or accepted"; 1 and p-1 give a
 * K known to anyone, so like OpenSSH we refuse them too). The derive
 * context then runs OpenSSL's full public key check, which also requires
 * f to lie in the order-q subgroup that g = 2 generates for these safe
 * primes; every honest f = 2^y mod p does.
 */
static int
dh_shared(const struct kex_params *kp, EVP_PKEY *priv, const uint8_t *fb, size_t flen,
          uint8_t *secret, size_t *len)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *peer = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    BIGNUM *f = NULL, *p = NULL, *pm1 = NULL;
    int r = SF_ERR_CRYPTO;

    if (flen > kp->size) {
        r = SF_ERR_PROTOCOL;
        goto out;
    }
    if ((f = BN_bin2bn(fb, (int)flen, NULL)) == NULL ||
        EVP_PKEY_get_bn_param(priv, OSSL_PKEY_PARAM_FFC_P, &p) != 1 ||
        (pm1 = BN_dup(p)) == NULL || BN_sub_word(pm1, 1) != 1) {
        goto out;
    }
    if (BN_cmp(f, BN_value_one()) <= 0 || BN_cmp(f, pm1) >= 0) {
        r = SF_ERR_PROTOCOL;
        goto out;
    }
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, kp->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PUB_KEY, f) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1) {
        goto out;
    }
    if (EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        peer = NULL;
        r = SF_ERR_PROTOCOL;
        goto out;
    }
    if ((r = kex_derive_with(priv, peer, true, secret, len)) != 0) {
        goto out;
    }
    if (*len != kp->size || is_all_zero(secret, *len)) {
        sf_wipe(secret, *len);
        r = SF_ERR_CRYPTO;
        goto out;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(f);
    BN_free(p);
    BN_free(pm1);
    return r;
}

/*
 * Bytes sf_buf_put_mpint() writes for this magnitude. Like the encoding
 * itself (and every SSH implementation) it depends on how many leading zero
 * bytes K has; RFC 4251 s5 leaves no way around that.
 */
static size_t
mpint_size(const uint8_t *be, size_t n)
{
    size_t i = 0;

    while (i < n && be[i] == 0) {
        i++;
    }
    if (i == n) {
        return 4;
    }
    return 4 + (n - i) + ((be[i] & 0x80) != 0 ? 1 : 0);
}

/*
 * RFC 8731 s3.1, RFC 5656 s4, RFC 4253 s8: server's half of the reply.
 *   string   Q_S   (curve25519: 32 bytes; ECDH: uncompressed point)
 * or
 *   mpint    f     (DH)
 * On success the bytes of that field, exactly as read, are appended to
 * hashpart and K to k_out as an mpint; the private key is then dropped.
 * On failure hashpart and k_out are unchanged; msg may have been advanced
 * past a value that was read but refused.
 */
static int
kex_finish(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
           struct sf_buf *k_out)
{
    uint8_t secret[KEX_SECRET_MAX];
    size_t slen = sizeof(secret);
    const uint8_t *start = NULL, *v = NULL;
    size_t before, used, vlen = 0;
    int r = SF_ERR_INTERNAL;

    if (st == NULL || st->priv == NULL || st->kp == NULL || msg == NULL || hashpart == NULL ||
        k_out == NULL) {
        return SF_ERR_INVALID;
    }
    start = sf_buf_ptr(msg);
    before = sf_buf_len(msg);
    switch (st->kp->family) {
    case KEX_X25519:
        /* A wrong length is refused before anything else (RFC 8731 s3). */
        if ((r = sf_buf_get_string(msg, &v, &vlen, KEX_EC_POINT_MAX)) != 0) {
            goto out;
        }
        if (vlen != KEX_X25519_LEN) {
            r = SF_ERR_PROTOCOL;
            goto out;
        }
        slen = KEX_X25519_LEN;
        r = x25519_shared(st->priv, v, secret);
        break;
    case KEX_ECDH:
        if ((r = sf_buf_get_string(msg, &v, &vlen, KEX_EC_POINT_MAX)) != 0) {
            goto out;
        }
        r = ecdh_shared(st->kp, st->priv, v, vlen, secret, &slen);
        break;
    case KEX_DH:
        if ((r = sf_buf_get_mpint_pos(msg, &v, &vlen, st->kp->size)) != 0) {
            goto out;
        }
        r = dh_shared(st->kp, st->priv, v, vlen, secret, &slen);
        break;
    default:
        r = SF_ERR_INTERNAL;
        break;
    }
    if (r != 0) {
        goto out;
    }
    used = before - sf_buf_len(msg);
    /* Both appends or neither (short of an allocation failure growing k_out). */
    if (sf_buf_room(hashpart) < used || sf_buf_room(k_out) < mpint_size(secret, slen)) {
        r = SF_ERR_NO_SPACE;
        goto out;
    }
    if ((r = sf_buf_put_bytes(hashpart, start, used)) != 0 ||
        (r = sf_buf_put_mpint(k_out, secret, slen)) != 0) {
        goto out;
    }
    /* The ephemeral key has done its job: drop it now (forward secrecy). */
    EVP_PKEY_free(st->priv);
    st->priv = NULL;
out:
    sf_wipe(secret, sizeof(secret));
    return r;
}

/* --------------------------------------------------------- method table */

static int
x25519_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_x25519, NULL, 0, NULL, 0, st, out);
}

static int
p256_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_p256, NULL, 0, NULL, 0, st, out);
}

static int
p384_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_p384, NULL, 0, NULL, 0, st, out);
}

static int
p521_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_p521, NULL, 0, NULL, 0, st, out);
}

static int
dh14_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_dh14, NULL, 0, NULL, 0, st, out);
}

static int
dh16_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_dh16, NULL, 0, NULL, 0, st, out);
}

struct kex_row {
    struct sf_kex_method m;
    const struct kex_params *kp;
};

#define KEX_ROW(name, hash, init, kp) {{name, hash, 30, 31, init, kex_finish, kex_free}, kp}

static const struct kex_row kex_rows[] = {
    KEX_ROW("curve25519-sha256", "SHA256", x25519_init, &kp_x25519),
    KEX_ROW("curve25519-sha256@libssh.org", "SHA256", x25519_init, &kp_x25519),
    KEX_ROW("ecdh-sha2-nistp256", "SHA256", p256_init, &kp_p256),
    KEX_ROW("ecdh-sha2-nistp384", "SHA384", p384_init, &kp_p384),
    KEX_ROW("ecdh-sha2-nistp521", "SHA512", p521_init, &kp_p521),
    KEX_ROW("diffie-hellman-group16-sha512", "SHA512", dh16_init, &kp_dh16),
    KEX_ROW("diffie-hellman-group14-sha256", "SHA256", dh14_init, &kp_dh14),
};

#define KEX_NROWS (sizeof(kex_rows) / sizeof(kex_rows[0]))

const struct sf_kex_method *
sf_kex_method_find(const char *name, size_t n)
{
    if (name == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < KEX_NROWS; i++) {
        const char *cand = kex_rows[i].m.name;

        if (strlen(cand) == n && memcmp(cand, name, n) == 0) {
            return &kex_rows[i].m;
        }
    }
    return NULL;
}

/* ------------------------------------------------- hash and derivation */

/* A fixed-size digest that fits EVP_MAX_MD_SIZE; XOFs (SHAKE) are not hashes for SSH. */
static bool
md_usable(const EVP_MD *md)
{
    int size = EVP_MD_get_size(md);

    return size > 0 && size <= EVP_MAX_MD_SIZE && (EVP_MD_get_flags(md) & EVP_MD_FLAG_XOF) == 0;
}

int
sf_kex_hash(const char *hash, const uint8_t *data, size_t len, uint8_t *out, size_t *outlen)
{
    EVP_MD *md = NULL;
    unsigned int n = 0;
    int r = SF_ERR_CRYPTO;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (hash == NULL || out == NULL || outlen == NULL || (data == NULL && len != 0)) {
        return SF_ERR_INVALID;
    }
    if ((md = EVP_MD_fetch(NULL, hash, NULL)) == NULL) {
        r = SF_ERR_UNSUPPORTED;
        goto out;
    }
    if (!md_usable(md)) {
        r = SF_ERR_UNSUPPORTED;
        goto out;
    }
    if (EVP_Digest(data != NULL ? data : (const uint8_t *)"", len, out, &n, md, NULL) != 1) {
        goto out;
    }
    *outlen = n;
    r = 0;
out:
    EVP_MD_free(md);
    return r;
}

/*
 * RFC 4253 s7.2:
 *   K1 = HASH(K || H || X || session_id)      X = "A" .. "F"
 *   K2 = HASH(K || H || K1)
 *   K3 = HASH(K || H || K1 || K2) ...         key = K1 || K2 || ... (first need bytes)
 * base holds the running prefix K || H || K1 || ... so each block costs one
 * copy of the digest state and one final.
 */
int
sf_kex_derive(const char *hash, const uint8_t *k_mpint, size_t k_len, const uint8_t *h,
              size_t h_len, char letter, const uint8_t *session_id, size_t sid_len, uint8_t *out,
              size_t need)
{
    EVP_MD *md = NULL;
    EVP_MD_CTX *base = NULL, *blk = NULL;
    uint8_t block[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t have = 0;
    uint8_t x = (uint8_t)letter;
    int r = SF_ERR_CRYPTO;

    if (hash == NULL || k_mpint == NULL || k_len < 4 || h == NULL || h_len == 0 ||
        session_id == NULL || sid_len == 0 || (out == NULL && need != 0) || letter < 'A' ||
        letter > 'F') {
        return SF_ERR_INVALID;
    }
    if (need == 0) {
        return 0;
    }
    if ((md = EVP_MD_fetch(NULL, hash, NULL)) == NULL) {
        r = SF_ERR_UNSUPPORTED;
        goto out;
    }
    if (!md_usable(md)) {
        r = SF_ERR_UNSUPPORTED;
        goto out;
    }
    if ((base = EVP_MD_CTX_new()) == NULL || (blk = EVP_MD_CTX_new()) == NULL ||
        EVP_DigestInit_ex2(base, md, NULL) != 1 ||
        EVP_DigestUpdate(base, k_mpint, k_len) != 1 || EVP_DigestUpdate(base, h, h_len) != 1 ||
        EVP_MD_CTX_copy_ex(blk, base) != 1 || EVP_DigestUpdate(blk, &x, 1) != 1 ||
        EVP_DigestUpdate(blk, session_id, sid_len) != 1 ||
        EVP_DigestFinal_ex(blk, block, &n) != 1) {
        goto out;
    }
    for (;;) {
        size_t take = SF_MIN((size_t)n, need - have);

        memcpy(out + have, block, take);
        have += take;
        if (have == need) {
            break;
        }
        if (EVP_DigestUpdate(base, block, n) != 1 || EVP_MD_CTX_copy_ex(blk, base) != 1 ||
            EVP_DigestFinal_ex(blk, block, &n) != 1) {
            goto out;
        }
    }
    r = 0;
out:
    sf_wipe(block, sizeof(block));
    if (r != 0 && out != NULL) {
        sf_wipe(out, need);
    }
    EVP_MD_CTX_free(blk); /* frees clear the digest state (it holds K) */
    EVP_MD_CTX_free(base);
    EVP_MD_free(md);
    return r;
}

/* ---------------------------------------------------- test-only entries */

/*
 * Not in kex.h: check/check_kex.c declares these itself. Hidden from the
 * shared library by -fvisibility=hidden.
 */

/* Raw X25519 through the same path client_finish uses (RFC 7748 vectors). */
int sf_kex_x25519_test(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32]);

int
sf_kex_x25519_test(const uint8_t priv[32], const uint8_t peer[32], uint8_t out[32])
{
    EVP_PKEY *pk = NULL;
    int r;

    if ((pk = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, priv, KEX_X25519_LEN)) ==
        NULL) {
        return SF_ERR_CRYPTO;
    }
    r = x25519_shared(pk, peer, out);
    EVP_PKEY_free(pk);
    return r;
}

/* client_init of method m with a fixed key pair (see kex_import), for KATs. */
int sf_kex_test_init_fixed(const struct sf_kex_method *m, const uint8_t *priv, size_t privlen,
                           const uint8_t *pub, size_t publen, struct sf_kex_state **st,
                           struct sf_buf *out);

int
sf_kex_test_init_fixed(const struct sf_kex_method *m, const uint8_t *priv, size_t privlen,
                       const uint8_t *pub, size_t publen, struct sf_kex_state **st,
                       struct sf_buf *out)
{
    if (priv == NULL) {
        return SF_ERR_INVALID;
    }
    for (size_t i = 0; i < KEX_NROWS; i++) {
        if (m == &kex_rows[i].m) {
            return kex_init(kex_rows[i].kp, priv, privlen, pub, publen, st, out);
        }
    }
    return SF_ERR_INVALID;
}
