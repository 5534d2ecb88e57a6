/*
 * src/kex.c -- key exchange methods, the exchange hash, and RFC 4253 s7.2
 * key derivation.
 *
 * Methods (one table row each):
 *   mlkem768x25519-sha256                  draft-ietf-sshm-mlkem-hybrid-kex (30/31)
 *   sntrup761x25519-sha512, ...@openssh.com draft-josefsson-ntruprime-ssh (30/31)
 *   curve25519-sha256, curve25519-sha256@libssh.org   RFC 8731 (30/31)
 *   ecdh-sha2-nistp256 / nistp384 / nistp521         RFC 5656 s4, s6.2 (30/31)
 *   diffie-hellman-group-exchange-sha256 / -sha1     RFC 4419 (34, 31, 32/33)
 *   diffie-hellman-group14/16/18-sha256/512          RFC 8268, RFC 3526 (30/31)
 *   diffie-hellman-group14-sha1, group1-sha1         RFC 4253 s8, RFC 2409 (legacy)
 *
 * The hybrids send C_INIT = PQ public key || X25519 public key as one
 * string, read S_REPLY = PQ ciphertext || X25519 public key as one string,
 * and give K = HASH(K_PQ || K_CL) encoded as a string (not an mpint).
 *
 * Owns: the method table, the client's ephemeral private keys (EVP_PKEY,
 * BIGNUM exponent in secure memory, the KEM secret key) and every
 * intermediate secret (raw shared secrets, derived blocks), wiped before
 * return; the group check of RFC 4419 groups; the layout of the exchange
 * hash. Every value the server sends is validated here before any secret is
 * derived from it. Must never: do I/O, know the KEXINIT negotiation, read
 * peer bytes other than through struct sf_buf, or hand out a K computed
 * from an unchecked value.
 */
#include "kex.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>

#include "mlkem768.h"
#include "sntrup761.h"

#define KEX_X25519_LEN 32   /* RFC 7748 s5: public values and output are 32 bytes */
#define KEX_EC_FIELD_MAX 66 /* P-521: ceil(521 / 8) */
#define KEX_EC_POINT_MAX (1 + 2 * KEX_EC_FIELD_MAX) /* 0x04 || x || y */
#define KEX_DH_P_MAX (SF_KEX_GEX_MAX / 8)           /* 8192-bit groups: group18, GEX */
#define KEX_SECRET_MAX KEX_DH_P_MAX
/*
 * Private exponent length for the MODP groups: 2 x 256 bits, twice the
 * largest symmetric key we negotiate (AES-256, ChaCha20), as RFC 8268 s4
 * and OpenSSH's dh_gen_key() do. It is also at least twice the strength
 * of every group we use (at most about 200 bits for 8192-bit groups),
 * which OpenSSL requires.
 */
#define KEX_DH_PRIV_BITS 512
/*
 * GEX_GROUP mpints up to this many bytes are read and then refused by the
 * size check (a clear "too large" message); longer ones fail as TOO_LARGE.
 */
#define KEX_GEX_MPINT_MAX (KEX_DH_P_MAX + 64)
/*
 * Miller-Rabin rounds with random bases for q = (p-1)/2 of a group that is
 * not a known one: a composite q passes with probability at most 4^-32 =
 * 2^-64 whatever the server chose. About 0.5 s for a 3072-bit group here,
 * 10 s for 8192 bits (docs/kex.md).
 */
#define KEX_GEX_MR_ROUNDS 32
/* The largest PQ public key / ciphertext (ML-KEM-768: 1184 / 1088 bytes). */
#define KEX_PQ_PK_MAX SF_MLKEM768_PUBLICKEY_BYTES
#define KEX_PQ_CT_MAX SF_MLKEM768_CIPHERTEXT_BYTES
#define KEX_PQ_SS_MAX 32
#define KEX_PQ_SEED_MAX 64

_Static_assert(EVP_MAX_MD_SIZE <= 64, "sf_kex_hash promises 64-byte output buffers suffice");
_Static_assert(SF_SNTRUP761_PUBLICKEY_BYTES <= KEX_PQ_PK_MAX, "PQ public key buffer");
_Static_assert(SF_SNTRUP761_CIPHERTEXT_BYTES <= KEX_PQ_CT_MAX, "PQ ciphertext buffer");
_Static_assert(SF_SNTRUP761_SHARED_BYTES <= KEX_PQ_SS_MAX &&
                   SF_MLKEM768_SHARED_BYTES <= KEX_PQ_SS_MAX,
               "PQ shared secret buffer");

enum kex_family {
    KEX_X25519 = 1,
    KEX_ECDH,
    KEX_DH,     /* named MODP group through OpenSSL's DH (group14, 16, 18) */
    KEX_DHX,    /* explicit group, plain BIGNUM arithmetic (group1, group exchange) */
    KEX_HYBRID, /* PQ KEM + X25519 */
};

/* A post-quantum KEM as the hybrids use it. */
struct kex_kem {
    size_t pk_len, sk_len, ct_len, ss_len;
    size_t seed_len; /* bytes of seed for a deterministic key pair (tests) */
    /* seed NULL: fresh randomness */
    int (*keypair)(uint8_t *pk, uint8_t *sk, const uint8_t *seed);
    int (*dec)(uint8_t *ss, const uint8_t *ct, const uint8_t *sk);
};

/* What a method needs beyond its name and hash. */
struct kex_params {
    enum kex_family family;
    const char *alg;   /* OpenSSL key type: "X25519", "EC", "DH"; NULL for KEX_DHX */
    const char *group; /* OpenSSL group name: "P-256", "modp_2048"; NULL otherwise */
    size_t size;       /* bytes of the public value's coordinate / modulus (0: GEX, varies) */
    const struct kex_kem *kem; /* KEX_HYBRID */
    bool gex;                  /* KEX_DHX: the group comes from the server */
};

struct sf_kex_state {
    const struct kex_params *kp;
    EVP_PKEY *priv; /* our ephemeral key pair (hybrids: the X25519 half); NULL once used */
    /* KEX_DHX */
    BIGNUM *p, *g; /* the group (public) */
    BIGNUM *x;     /* our exponent (secure heap); NULL once K has been computed */
    uint32_t gex_min, gex_n, gex_max;
    uint8_t fixed_x[KEX_DH_PRIV_BITS / 8]; /* tests: the exponent to use instead of a random one */
    size_t fixed_x_len;
    /* KEX_HYBRID */
    uint8_t *pq_sk; /* kem->sk_len bytes; NULL once K has been computed */
};

/* ------------------------------------------------------------ the KEMs */

/*
 * Deterministic random bytes for sntrup761 test key pairs: the stream
 * SHA-512(seed || uint64 counter) for counter = 0, 1, ... Only ever used
 * with a seed a test supplied (sf_kex_test_init_fixed).
 */
struct seed_rng {
    const uint8_t *seed; /* 32 bytes */
    uint64_t ctr;
    uint8_t block[64];
    size_t used; /* bytes of block already handed out */
};

static int
seed_rng_fill(void *ctx, uint8_t *out, size_t n)
{
    struct seed_rng *sr = ctx;

    while (n > 0) {
        if (sr->used == sizeof(sr->block)) {
            uint8_t in[32 + 8];
            unsigned int len = 0;

            memcpy(in, sr->seed, 32);
            for (int i = 0; i < 8; i++) {
                in[32 + i] = (uint8_t)(sr->ctr >> (56 - 8 * i));
            }
            sr->ctr++;
            if (EVP_Digest(in, sizeof(in), sr->block, &len, EVP_sha512(), NULL) != 1 ||
                len != sizeof(sr->block)) {
                sf_wipe(in, sizeof(in));
                return -1;
            }
            sf_wipe(in, sizeof(in));
            sr->used = 0;
        }
        size_t take = SF_MIN(n, sizeof(sr->block) - sr->used);

        memcpy(out, sr->block + sr->used, take);
        sr->used += take;
        out += take;
        n -= take;
    }
    return 0;
}

static int
sntrup_keypair(uint8_t *pk, uint8_t *sk, const uint8_t *seed)
{
    struct seed_rng sr = {seed, 0, {0}, 64};
    int r;

    if (seed == NULL) {
        return sf_sntrup761_keypair(pk, sk, NULL, NULL);
    }
    r = sf_sntrup761_keypair(pk, sk, seed_rng_fill, &sr);
    sf_wipe(&sr, sizeof(sr));
    return r;
}

static int
sntrup_dec(uint8_t *ss, const uint8_t *ct, const uint8_t *sk)
{
    return sf_sntrup761_dec(ss, ct, sk);
}

/* seed = d || z (FIPS 203 ML-KEM.KeyGen_internal) */
static int
mlkem_keypair(uint8_t *pk, uint8_t *sk, const uint8_t *seed)
{
    if (seed == NULL) {
        return sf_mlkem768_keypair(pk, sk);
    }
    return sf_mlkem768_keypair_derand(pk, sk, seed, seed + 32);
}

static int
mlkem_dec(uint8_t *ss, const uint8_t *ct, const uint8_t *sk)
{
    return sf_mlkem768_decaps(ss, ct, sk);
}

static const struct kex_kem kem_sntrup761 = {
    SF_SNTRUP761_PUBLICKEY_BYTES, SF_SNTRUP761_SECRETKEY_BYTES, SF_SNTRUP761_CIPHERTEXT_BYTES,
    SF_SNTRUP761_SHARED_BYTES,    32,                           sntrup_keypair,
    sntrup_dec,
};
static const struct kex_kem kem_mlkem768 = {
    SF_MLKEM768_PUBLICKEY_BYTES, SF_MLKEM768_SECRETKEY_BYTES, SF_MLKEM768_CIPHERTEXT_BYTES,
    SF_MLKEM768_SHARED_BYTES,    64,                          mlkem_keypair,
    mlkem_dec,
};

static const struct kex_params kp_x25519 = {KEX_X25519, "X25519", NULL, KEX_X25519_LEN, NULL, false};
static const struct kex_params kp_p256 = {KEX_ECDH, "EC", "P-256", 32, NULL, false};
static const struct kex_params kp_p384 = {KEX_ECDH, "EC", "P-384", 48, NULL, false};
static const struct kex_params kp_p521 = {KEX_ECDH, "EC", "P-521", 66, NULL, false};
static const struct kex_params kp_dh14 = {KEX_DH, "DH", "modp_2048", 256, NULL, false};
static const struct kex_params kp_dh16 = {KEX_DH, "DH", "modp_4096", 512, NULL, false};
static const struct kex_params kp_dh18 = {KEX_DH, "DH", "modp_8192", 1024, NULL, false};
static const struct kex_params kp_dh1 = {KEX_DHX, NULL, NULL, 128, NULL, false};
static const struct kex_params kp_gex = {KEX_DHX, NULL, NULL, 0, NULL, true};
static const struct kex_params kp_sntrup = {KEX_HYBRID, "X25519", NULL, KEX_X25519_LEN,
                                            &kem_sntrup761, false};
static const struct kex_params kp_mlkem = {KEX_HYBRID, "X25519", NULL, KEX_X25519_LEN,
                                           &kem_mlkem768, false};

/* OpenSSH 10.0's client default (myproposal.h KEX_CLIENT_KEX), in its order. */
const char sf_kex_default_list[] =
    "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"
    "curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
    "diffie-hellman-group-exchange-sha256,"
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"
    "diffie-hellman-group14-sha256";
/* The default plus the SHA-1 methods, which are only used when a caller adds them. */
const char sf_kex_all_list[] =
    "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,"
    "curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,"
    "diffie-hellman-group-exchange-sha256,"
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,"
    "diffie-hellman-group14-sha256,"
    "diffie-hellman-group14-sha1,diffie-hellman-group1-sha1,"
    "diffie-hellman-group-exchange-sha1";

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

static void
kex_free(struct sf_kex_state *st)
{
    if (st == NULL) {
        return;
    }
    EVP_PKEY_free(st->priv); /* OpenSSL clears private key material */
    BN_clear_free(st->x);
    BN_free(st->p);
    BN_free(st->g);
    if (st->pq_sk != NULL) {
        sf_freezero(st->pq_sk, st->kp->kem->sk_len);
    }
    sf_freezero(st, sizeof(*st));
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
    kex_free(st);
    return r;
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

/* ------------------------------------------- explicit groups (group1, GEX) */

/* RFC 2409 s6.2 Oakley group 2: the group of diffie-hellman-group1-sha1. */
static int
group1_params(BIGNUM **p, BIGNUM **g)
{
    *p = BN_get_rfc2409_prime_1024(NULL);
    *g = BN_new();
    if (*p == NULL || *g == NULL || BN_set_word(*g, 2) != 1) {
        BN_free(*p);
        BN_free(*g);
        *p = *g = NULL;
        return SF_ERR_CRYPTO;
    }
    return 0;
}

/* 1 < v < p - 1 (RFC 4253 s8: e and f outside [1, p-1] are refused; 1 and p-1 too). */
static int
dhx_in_range(const BIGNUM *v, const BIGNUM *p, BN_CTX *ctx)
{
    BIGNUM *pm1 = NULL;
    int r = SF_ERR_CRYPTO;

    BN_CTX_start(ctx);
    if ((pm1 = BN_CTX_get(ctx)) == NULL || BN_copy(pm1, p) == NULL || BN_sub_word(pm1, 1) != 1) {
        goto out;
    }
    r = BN_cmp(v, BN_value_one()) > 0 && BN_cmp(v, pm1) < 0 ? 0 : SF_ERR_PROTOCOL;
out:
    BN_CTX_end(ctx);
    return r;
}

/*
 * Our exponent x (KEX_DH_PRIV_BITS bits, top bit set, or the test's fixed
 * one) and e = g^x mod p, written big-endian into e_be[plen] (p's length).
 */
static int
dhx_keygen(struct sf_kex_state *st, uint8_t *e_be, size_t plen)
{
    BN_CTX *ctx = NULL;
    BIGNUM *x = NULL, *e = NULL;
    int r = SF_ERR_CRYPTO;

    if ((ctx = BN_CTX_secure_new()) == NULL || (x = BN_secure_new()) == NULL ||
        (e = BN_new()) == NULL) {
        goto out;
    }
    if (st->fixed_x_len != 0) {
        if (BN_bin2bn(st->fixed_x, (int)st->fixed_x_len, x) == NULL) {
            goto out;
        }
    } else if (BN_priv_rand_ex(x, KEX_DH_PRIV_BITS, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY, 0,
                               ctx) != 1) {
        goto out;
    }
    BN_set_flags(x, BN_FLG_CONSTTIME);
    if (BN_mod_exp_mont_consttime(e, st->g, x, st->p, ctx, NULL) != 1) {
        goto out;
    }
    /* A good group never gives these; refuse rather than send them. */
    if ((r = dhx_in_range(e, st->p, ctx)) != 0) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    if (BN_bn2binpad(e, e_be, (int)plen) < 0) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    BN_clear_free(st->x);
    st->x = x;
    x = NULL;
    r = 0;
out:
    BN_clear_free(x);
    BN_free(e);
    BN_CTX_free(ctx);
    return r;
}

/*
 * Server's f: mpint, 1 < f < p-1 (RFC 4253 s8). For group1, whose g = 2
 * generates the order-q subgroup of the safe prime p, also f^q = 1, as
 * OpenSSL checks for the named groups. Not for group exchange: the
 * server's g may generate the whole group, and then an honest f need not
 * be a quadratic residue; with a safe prime that leaks at most x's
 * parity, as in every SSH implementation. K = f^x mod p, p-length.
 */
static int
dhx_shared(struct sf_kex_state *st, const uint8_t *fb, size_t flen, uint8_t *secret, size_t *len)
{
    BN_CTX *ctx = NULL;
    BIGNUM *f = NULL, *k = NULL;
    size_t plen = (size_t)BN_num_bytes(st->p);
    int r = SF_ERR_CRYPTO;

    if (plen > *len) {
        return SF_ERR_INTERNAL;
    }
    if ((ctx = BN_CTX_secure_new()) == NULL || (f = BN_bin2bn(fb, (int)flen, NULL)) == NULL ||
        (k = BN_secure_new()) == NULL) {
        goto out;
    }
    if ((r = dhx_in_range(f, st->p, ctx)) != 0) {
        goto out;
    }
    r = SF_ERR_CRYPTO;
    if (!st->kp->gex) {
        /* k = f^q as scratch, q = (p - 1) / 2 */
        if (BN_copy(k, st->p) == NULL || BN_sub_word(k, 1) != 1 || BN_rshift1(k, k) != 1 ||
            BN_mod_exp(k, f, k, st->p, ctx) != 1) {
            goto out;
        }
        if (!BN_is_one(k)) {
            r = SF_ERR_PROTOCOL;
            goto out;
        }
    }
    if (BN_mod_exp_mont_consttime(k, f, st->x, st->p, ctx, NULL) != 1 ||
        BN_bn2binpad(k, secret, (int)plen) < 0) {
        goto out;
    }
    /* f^x is 0 or 1 only for a broken group; never hand such a K out. */
    if (BN_is_zero(k) || BN_is_one(k)) {
        sf_wipe(secret, plen);
        goto out;
    }
    *len = plen;
    r = 0;
out:
    BN_free(f);
    BN_clear_free(k);
    BN_CTX_free(ctx);
    return r;
}

/* ----------------------------------------------------- the GEX group check */

/* Odd primes below 1000: trial division before any Miller-Rabin round. */
static const uint16_t small_primes[] = {
    3,   5,   7,   11,  13,  17,  19,  23,  29,  31,  37,  41,  43,  47,  53,  59,  61,  67,
    71,  73,  79,  83,  89,  97,  101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157,
    163, 167, 173, 179, 181, 191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257,
    263, 269, 271, 277, 281, 283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367,
    373, 379, 383, 389, 397, 401, 409, 419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467,
    479, 487, 491, 499, 503, 509, 521, 523, 541, 547, 557, 563, 569, 571, 577, 587, 593, 599,
    601, 607, 613, 617, 619, 631, 641, 643, 647, 653, 659, 661, 673, 677, 683, 691, 701, 709,
    719, 727, 733, 739, 743, 751, 757, 761, 769, 773, 787, 797, 809, 811, 821, 823, 827, 829,
    839, 853, 857, 859, 863, 877, 881, 883, 887, 907, 911, 919, 929, 937, 941, 947, 953, 967,
    971, 977, 983, 991, 997,
};

/* 1 if n (odd, > 1000) has a small factor, 0 if not, < 0 on error. */
static int
has_small_factor(const BIGNUM *n)
{
    for (size_t i = 0; i < sizeof(small_primes) / sizeof(small_primes[0]); i++) {
        BN_ULONG rem = BN_mod_word(n, small_primes[i]);

        if (rem == (BN_ULONG)-1) {
            return SF_ERR_CRYPTO;
        }
        if (rem == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * Miller-Rabin with `rounds` random bases in [2, n-2] (n odd, > 3): 1 if
 * n is a probable prime, 0 if it is certainly composite, < 0 on error. n
 * is public, so the plain (not constant-time) exponentiation is fine.
 */
static int
miller_rabin(const BIGNUM *n, int rounds, BN_CTX *ctx)
{
    BN_MONT_CTX *mont = NULL;
    BIGNUM *nm1, *d, *range, *a, *x;
    int s = 0, r = SF_ERR_CRYPTO;

    BN_CTX_start(ctx);
    nm1 = BN_CTX_get(ctx);
    d = BN_CTX_get(ctx);
    range = BN_CTX_get(ctx);
    a = BN_CTX_get(ctx);
    x = BN_CTX_get(ctx);
    if (x == NULL || (mont = BN_MONT_CTX_new()) == NULL || BN_MONT_CTX_set(mont, n, ctx) != 1 ||
        BN_copy(nm1, n) == NULL || BN_sub_word(nm1, 1) != 1 || BN_copy(range, n) == NULL ||
        BN_sub_word(range, 3) != 1) {
        goto out;
    }
    while (!BN_is_bit_set(nm1, s)) {
        s++;
    }
    if (BN_rshift(d, nm1, s) != 1) {
        goto out;
    }
    for (int i = 0; i < rounds; i++) {
        int j;

        if (BN_rand_range_ex(a, range, 0, ctx) != 1 || BN_add_word(a, 2) != 1 ||
            BN_mod_exp_mont(x, a, d, n, ctx, mont) != 1) {
            goto out;
        }
        if (BN_is_one(x) || BN_cmp(x, nm1) == 0) {
            continue;
        }
        for (j = 1; j < s; j++) {
            if (BN_mod_sqr(x, x, n, ctx) != 1) {
                goto out;
            }
            if (BN_cmp(x, nm1) == 0) {
                break;
            }
        }
        if (j >= s) {
            r = 0;
            goto out;
        }
    }
    r = 1;
out:
    BN_MONT_CTX_free(mont);
    BN_CTX_end(ctx);
    return r;
}

/*
 * p is a safe prime: q = (p-1)/2 passes trial division and
 * KEX_GEX_MR_ROUNDS Miller-Rabin rounds, and then p is proven prime from q
 * by Pocklington's criterion with base 2 (p - 1 = 2q, q > sqrt(p)):
 * 2^(p-1) = 1 (mod p) and gcd(2^2 - 1, p) = 1 (3 does not divide p).
 * 0 if so, SF_ERR_PROTOCOL if not.
 */
static int
safe_prime_check(const BIGNUM *p, BN_CTX *ctx)
{
    BIGNUM *q, *pm1, *two, *t;
    int r = SF_ERR_CRYPTO, f;

    BN_CTX_start(ctx);
    q = BN_CTX_get(ctx);
    pm1 = BN_CTX_get(ctx);
    two = BN_CTX_get(ctx);
    t = BN_CTX_get(ctx);
    if (t == NULL || BN_copy(pm1, p) == NULL || BN_sub_word(pm1, 1) != 1 ||
        BN_rshift1(q, pm1) != 1 || BN_set_word(two, 2) != 1) {
        goto out;
    }
    /* p = 2q + 1 with q odd: p = 3 (mod 4). */
    if (!BN_is_odd(q)) {
        r = SF_ERR_PROTOCOL;
        goto out;
    }
    if ((f = has_small_factor(p)) != 0 || (f = has_small_factor(q)) != 0) {
        r = f < 0 ? f : SF_ERR_PROTOCOL;
        goto out;
    }
    if ((f = miller_rabin(q, KEX_GEX_MR_ROUNDS, ctx)) != 1) {
        r = f < 0 ? f : SF_ERR_PROTOCOL;
        goto out;
    }
    if (BN_mod_exp(t, two, pm1, p, ctx) != 1) {
        goto out;
    }
    r = BN_is_one(t) ? 0 : SF_ERR_PROTOCOL;
out:
    BN_CTX_end(ctx);
    return r;
}

/* The well-known groups a server may send: compared, not tested. */
static const char *const known_groups[] = {
    "modp_2048", "modp_3072", "modp_4096", "modp_6144", "modp_8192",          /* RFC 3526 */
    "ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192",          /* RFC 7919 */
};
static const int known_group_bits[] = {2048, 3072, 4096, 6144, 8192, 2048, 3072, 4096, 6144, 8192};

/* 1 if p is the prime of one of known_groups, 0 if not, < 0 on error. */
static int
is_known_group(const BIGNUM *p)
{
    int bits = BN_num_bits(p);
    int r = 0;

    for (size_t i = 0; i < sizeof(known_groups) / sizeof(known_groups[0]) && r == 0; i++) {
        EVP_PKEY_CTX *ctx = NULL;
        EVP_PKEY *params = NULL;
        BIGNUM *kp = NULL;
        OSSL_PARAM op[2];

        if (known_group_bits[i] != bits) {
            continue;
        }
        op[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                 (char *)known_groups[i], 0);
        op[1] = OSSL_PARAM_construct_end();
        if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "DH", NULL)) == NULL ||
            EVP_PKEY_paramgen_init(ctx) != 1 || EVP_PKEY_CTX_set_params(ctx, op) != 1 ||
            EVP_PKEY_paramgen(ctx, &params) != 1 ||
            EVP_PKEY_get_bn_param(params, OSSL_PKEY_PARAM_FFC_P, &kp) != 1) {
            r = SF_ERR_CRYPTO;
        } else if (BN_cmp(kp, p) == 0) {
            r = 1;
        }
        BN_free(kp);
        EVP_PKEY_free(params);
        EVP_PKEY_CTX_free(ctx);
    }
    return r;
}

/*
 * RFC 4419 s3 / RFC 8270: the group the server sent must be usable.
 *   min <= bits(p) <= max (the bounds we asked for), p odd, 1 < g < p-1,
 *   p one of the RFC 3526 / RFC 7919 primes or else a safe prime.
 * 0, or SF_ERR_PROTOCOL naming nothing (the caller says which group).
 */
static int
gex_check_group(const BIGNUM *p, const BIGNUM *g, uint32_t min, uint32_t max)
{
    BN_CTX *ctx = NULL;
    int bits = BN_num_bits(p), r;

    if (bits < 0 || (uint32_t)bits < min || (uint32_t)bits > max || !BN_is_odd(p)) {
        return SF_ERR_PROTOCOL;
    }
    if ((ctx = BN_CTX_new()) == NULL) {
        return SF_ERR_CRYPTO;
    }
    if ((r = dhx_in_range(g, p, ctx)) != 0) {
        goto out;
    }
    if ((r = is_known_group(p)) != 0) {
        r = r == 1 ? 0 : r;
        goto out;
    }
    r = safe_prime_check(p, ctx);
out:
    BN_CTX_free(ctx);
    return r;
}

/*
 * RFC 4419 s3 SSH_MSG_KEX_DH_GEX_REQUEST (after the type byte):
 *   uint32 min, uint32 n, uint32 max
 */
static int
gex_request(struct sf_kex_state **stp, uint32_t nbits, struct sf_buf *out)
{
    struct sf_kex_state *st = NULL;
    uint8_t req[12];
    int r;

    if (stp == NULL || out == NULL) {
        return SF_ERR_INVALID;
    }
    *stp = NULL;
    if (sf_buf_room(out) < sizeof(req)) {
        return SF_ERR_NO_SPACE;
    }
    if ((st = sf_alloc(sizeof(*st))) == NULL) {
        return SF_ERR_NOMEM;
    }
    st->kp = &kp_gex;
    st->gex_min = SF_KEX_GEX_MIN;
    st->gex_n = SF_MAX(SF_KEX_GEX_MIN, SF_MIN(nbits, SF_KEX_GEX_MAX));
    st->gex_max = SF_KEX_GEX_MAX;
    sf_store_be32(req, st->gex_min);
    sf_store_be32(req + 4, st->gex_n);
    sf_store_be32(req + 8, st->gex_max);
    if ((r = sf_buf_put_bytes(out, req, sizeof(req))) != 0) {
        sf_freezero(st, sizeof(*st));
        return r;
    }
    *stp = st;
    return 0;
}

/*
 * RFC 4419 s3 SSH_MSG_KEX_DH_GEX_GROUP (after the type byte):
 *   mpint p, mpint g
 * On success p and g are appended to hashpart as read and mpint e to out;
 * on failure neither is written. msg may have been advanced past a group
 * that was read but refused.
 */
static int
gex_group(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
          struct sf_buf *out)
{
    uint8_t e_be[KEX_DH_P_MAX];
    const uint8_t *start = NULL, *pv = NULL, *gv = NULL;
    size_t before, used, plen = 0, glen = 0;
    struct sf_buf rd;
    BIGNUM *p = NULL, *g = NULL;
    int r;

    if (st == NULL || st->kp != &kp_gex || st->p != NULL || msg == NULL || hashpart == NULL ||
        out == NULL) {
        return SF_ERR_INVALID;
    }
    start = sf_buf_ptr(msg);
    before = sf_buf_len(msg);
    /* Both or neither: a truncated g leaves msg where it was. */
    rd = *msg;
    if ((r = sf_buf_get_mpint_pos(&rd, &pv, &plen, KEX_GEX_MPINT_MAX)) != 0 ||
        (r = sf_buf_get_mpint_pos(&rd, &gv, &glen, KEX_GEX_MPINT_MAX)) != 0) {
        return r;
    }
    *msg = rd;
    used = before - sf_buf_len(msg);
    if ((p = BN_bin2bn(pv, (int)plen, NULL)) == NULL ||
        (g = BN_bin2bn(gv, (int)glen, NULL)) == NULL) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    if ((r = gex_check_group(p, g, st->gex_min, st->gex_max)) != 0) {
        goto out;
    }
    plen = (size_t)BN_num_bytes(p);
    if (sf_buf_room(hashpart) < used || sf_buf_room(out) < 4 + 1 + plen) {
        r = SF_ERR_NO_SPACE;
        goto out;
    }
    st->p = p;
    st->g = g;
    if ((r = dhx_keygen(st, e_be, plen)) != 0) {
        st->p = st->g = NULL;
        goto out;
    }
    p = g = NULL;
    if ((r = sf_buf_put_bytes(hashpart, start, used)) != 0 ||
        (r = sf_buf_put_mpint(out, e_be, plen)) != 0) {
        goto out;
    }
out:
    BN_free(p);
    BN_free(g);
    return r;
}

/* ------------------------------------------------------------- hybrids */

/*
 * C_INIT = PQ public key || X25519 public key, as one string
 * (draft-josefsson-ntruprime-ssh s2.1, draft-ietf-sshm-mlkem-hybrid-kex s2.1).
 * seed: NULL for fresh keys; else x25519 private key (32) || KEM seed.
 */
static int
hybrid_init(const struct kex_params *kp, const uint8_t *seed, size_t seedlen,
            struct sf_kex_state **stp, struct sf_buf *out)
{
    const struct kex_kem *kem = kp->kem;
    struct sf_kex_state *st = NULL;
    uint8_t blob[KEX_PQ_PK_MAX + KEX_X25519_LEN];
    size_t xlen = KEX_X25519_LEN;
    int r;

    if (stp == NULL || out == NULL) {
        return SF_ERR_INVALID;
    }
    *stp = NULL;
    if (seed != NULL && seedlen != KEX_X25519_LEN + kem->seed_len) {
        return SF_ERR_INVALID;
    }
    if (sf_buf_room(out) < 4 + kem->pk_len + KEX_X25519_LEN) {
        return SF_ERR_NO_SPACE;
    }
    if ((st = sf_alloc(sizeof(*st))) == NULL) {
        return SF_ERR_NOMEM;
    }
    st->kp = kp;
    if ((st->pq_sk = sf_alloc(kem->sk_len)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (kem->keypair(blob, st->pq_sk, seed != NULL ? seed + KEX_X25519_LEN : NULL) != 0) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    r = seed == NULL ? kex_keygen(&kp_x25519, &st->priv)
                     : kex_import(&kp_x25519, seed, KEX_X25519_LEN, NULL, 0, &st->priv);
    if (r != 0) {
        goto out;
    }
    if (EVP_PKEY_get_raw_public_key(st->priv, blob + kem->pk_len, &xlen) != 1 ||
        xlen != KEX_X25519_LEN) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    if ((r = sf_buf_put_string(out, blob, kem->pk_len + KEX_X25519_LEN)) != 0) {
        goto out;
    }
    *stp = st;
    st = NULL;
out:
    kex_free(st);
    return r;
}

/*
 * S_REPLY = PQ ciphertext || X25519 public key, one string; exactly those
 * lengths. secret = HASH(K_PQ || K_CL) (the method's hash); *len its size.
 */
static int
hybrid_shared(struct sf_kex_state *st, const char *hash, const uint8_t *v, size_t vlen,
              uint8_t *secret, size_t *len)
{
    const struct kex_kem *kem = st->kp->kem;
    uint8_t both[KEX_PQ_SS_MAX + KEX_X25519_LEN];
    int r;

    if (vlen != kem->ct_len + KEX_X25519_LEN) {
        return SF_ERR_PROTOCOL;
    }
    /* The X25519 half first: it refuses a low-order point before the KEM runs. */
    if ((r = x25519_shared(st->priv, v + kem->ct_len, both + kem->ss_len)) != 0) {
        goto out;
    }
    /* Implicit rejection: a bad ciphertext gives a K the server cannot sign for. */
    if (kem->dec(both, v, st->pq_sk) != 0) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    r = sf_kex_hash(hash, both, kem->ss_len + KEX_X25519_LEN, secret, len);
out:
    sf_wipe(both, sizeof(both));
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
 * RFC 8731 s3.1, RFC 5656 s4, RFC 4253 s8, RFC 4419 s3, hybrids: the
 * server's half of the reply.
 *   string   Q_S      (curve25519: 32 bytes; ECDH: uncompressed point)
 *   string   S_REPLY  (hybrids: PQ ciphertext || X25519 public key)
 * or
 *   mpint    f        (DH, group exchange)
 * On success the bytes of that field, exactly as read, are appended to
 * hashpart and K to k_out (an mpint; for the hybrids a string holding
 * HASH(K_PQ || K_CL)); the private key is then dropped. On failure
 * hashpart and k_out are unchanged; msg may have been advanced past a
 * value that was read but refused.
 */
static int
kex_finish_with(const char *hash, struct sf_kex_state *st, struct sf_buf *msg,
                struct sf_buf *hashpart, struct sf_buf *k_out)
{
    uint8_t secret[KEX_SECRET_MAX];
    size_t slen = sizeof(secret), ksize;
    const uint8_t *start = NULL, *v = NULL;
    size_t before, used, vlen = 0;
    bool as_string = false;
    int r = SF_ERR_INTERNAL;

    if (st == NULL || st->kp == NULL || msg == NULL || hashpart == NULL || k_out == NULL) {
        return SF_ERR_INVALID;
    }
    if (st->kp->family == KEX_DHX ? st->x == NULL : st->priv == NULL) {
        return SF_ERR_INVALID; /* no key pair yet, or K was already computed */
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
    case KEX_DHX:
        if ((r = sf_buf_get_mpint_pos(msg, &v, &vlen, (size_t)BN_num_bytes(st->p))) != 0) {
            goto out;
        }
        r = dhx_shared(st, v, vlen, secret, &slen);
        break;
    case KEX_HYBRID:
        /* Longer than the one valid length: refused on the length field alone. */
        if ((r = sf_buf_get_string(msg, &v, &vlen, st->kp->kem->ct_len + KEX_X25519_LEN)) != 0) {
            goto out;
        }
        r = hybrid_shared(st, hash, v, vlen, secret, &slen);
        as_string = true;
        break;
    default:
        r = SF_ERR_INTERNAL;
        break;
    }
    if (r != 0) {
        goto out;
    }
    used = before - sf_buf_len(msg);
    ksize = as_string ? 4 + slen : mpint_size(secret, slen);
    /* Both appends or neither (short of an allocation failure growing k_out). */
    if (sf_buf_room(hashpart) < used || sf_buf_room(k_out) < ksize) {
        r = SF_ERR_NO_SPACE;
        goto out;
    }
    if ((r = sf_buf_put_bytes(hashpart, start, used)) != 0 ||
        (r = as_string ? sf_buf_put_string(k_out, secret, slen)
                       : sf_buf_put_mpint(k_out, secret, slen)) != 0) {
        goto out;
    }
    /* The ephemeral keys have done their job: drop them now (forward secrecy). */
    EVP_PKEY_free(st->priv);
    st->priv = NULL;
    BN_clear_free(st->x);
    st->x = NULL;
    if (st->pq_sk != NULL) {
        sf_freezero(st->pq_sk, st->kp->kem->sk_len);
        st->pq_sk = NULL;
    }
out:
    sf_wipe(secret, sizeof(secret));
    return r;
}

/*
 * Explicit-group DH (group1): the group, our exponent (fixed_x: tests, may
 * be NULL) and mpint e into out.
 */
static int
dhx_init(const struct kex_params *kp, const uint8_t *fixed_x, size_t xlen,
         struct sf_kex_state **stp, struct sf_buf *out)
{
    struct sf_kex_state *st = NULL;
    uint8_t e_be[KEX_DH_P_MAX];
    int r;

    if (stp == NULL || out == NULL) {
        return SF_ERR_INVALID;
    }
    *stp = NULL;
    if (fixed_x != NULL && (xlen == 0 || xlen > sizeof(st->fixed_x))) {
        return SF_ERR_INVALID;
    }
    if (sf_buf_room(out) < 4 + 1 + kp->size) {
        return SF_ERR_NO_SPACE;
    }
    if ((st = sf_alloc(sizeof(*st))) == NULL) {
        return SF_ERR_NOMEM;
    }
    st->kp = kp;
    if (fixed_x != NULL) {
        memcpy(st->fixed_x, fixed_x, xlen);
        st->fixed_x_len = xlen;
    }
    if ((r = group1_params(&st->p, &st->g)) != 0 || (r = dhx_keygen(st, e_be, kp->size)) != 0 ||
        (r = sf_buf_put_mpint(out, e_be, kp->size)) != 0) {
        goto out;
    }
    *stp = st;
    st = NULL;
out:
    kex_free(st);
    sf_wipe(e_be, sizeof(e_be));
    return r;
}
/* --------------------------------------------------------- method table */

static int
kex_finish(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
           struct sf_buf *k_out)
{
    return kex_finish_with(NULL, st, msg, hashpart, k_out);
}

/* The hybrids hash K_PQ || K_CL with the method's own hash. */
static int
finish_sha256(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
              struct sf_buf *k_out)
{
    return kex_finish_with("SHA256", st, msg, hashpart, k_out);
}

static int
finish_sha512(struct sf_kex_state *st, struct sf_buf *msg, struct sf_buf *hashpart,
              struct sf_buf *k_out)
{
    return kex_finish_with("SHA512", st, msg, hashpart, k_out);
}

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

static int
dh18_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return kex_init(&kp_dh18, NULL, 0, NULL, 0, st, out);
}

static int
dh1_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return dhx_init(&kp_dh1, NULL, 0, st, out);
}

static int
sntrup_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return hybrid_init(&kp_sntrup, NULL, 0, st, out);
}

static int
mlkem_init(struct sf_kex_state **st, struct sf_buf *out)
{
    return hybrid_init(&kp_mlkem, NULL, 0, st, out);
}

struct kex_row {
    struct sf_kex_method m;
    const struct kex_params *kp;
};

#define KEX_ROW(name, hash, init, fin, kp)                                                         \
    {{name, hash, 30, 31, init, fin, kex_free, 0, 0, NULL, NULL}, kp}
/* RFC 4419 s3 / s5: REQUEST 34, GROUP 31, INIT 32, REPLY 33. */
#define GEX_ROW(name, hash)                                                                        \
    {{name, hash, 32, 33, NULL, kex_finish, kex_free, 34, 31, gex_request, gex_group}, &kp_gex}

static const struct kex_row kex_rows[] = {
    KEX_ROW("mlkem768x25519-sha256", "SHA256", mlkem_init, finish_sha256, &kp_mlkem),
    KEX_ROW("sntrup761x25519-sha512", "SHA512", sntrup_init, finish_sha512, &kp_sntrup),
    KEX_ROW("sntrup761x25519-sha512@openssh.com", "SHA512", sntrup_init, finish_sha512,
            &kp_sntrup),
    KEX_ROW("curve25519-sha256", "SHA256", x25519_init, kex_finish, &kp_x25519),
    KEX_ROW("curve25519-sha256@libssh.org", "SHA256", x25519_init, kex_finish, &kp_x25519),
    KEX_ROW("ecdh-sha2-nistp256", "SHA256", p256_init, kex_finish, &kp_p256),
    KEX_ROW("ecdh-sha2-nistp384", "SHA384", p384_init, kex_finish, &kp_p384),
    KEX_ROW("ecdh-sha2-nistp521", "SHA512", p521_init, kex_finish, &kp_p521),
    GEX_ROW("diffie-hellman-group-exchange-sha256", "SHA256"),
    KEX_ROW("diffie-hellman-group16-sha512", "SHA512", dh16_init, kex_finish, &kp_dh16),
    KEX_ROW("diffie-hellman-group18-sha512", "SHA512", dh18_init, kex_finish, &kp_dh18),
    KEX_ROW("diffie-hellman-group14-sha256", "SHA256", dh14_init, kex_finish, &kp_dh14),
    /* Legacy (SHA-1, 1024-bit group): only in sf_kex_all_list. */
    KEX_ROW("diffie-hellman-group14-sha1", "SHA1", dh14_init, kex_finish, &kp_dh14),
    KEX_ROW("diffie-hellman-group1-sha1", "SHA1", dh1_init, kex_finish, &kp_dh1),
    GEX_ROW("diffie-hellman-group-exchange-sha1", "SHA1"),
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

/* string = uint32 len || bytes, into a running digest */
static int
md_put_string(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    uint8_t len[4];

    if (n > UINT32_MAX || (p == NULL && n != 0)) {
        return SF_ERR_INVALID;
    }
    sf_store_be32(len, (uint32_t)n);
    if (EVP_DigestUpdate(ctx, len, sizeof(len)) != 1 ||
        (n != 0 && EVP_DigestUpdate(ctx, p, n) != 1)) {
        return SF_ERR_CRYPTO;
    }
    return 0;
}

static int
md_put_raw(EVP_MD_CTX *ctx, const void *p, size_t n)
{
    if (p == NULL || n == 0) {
        return SF_ERR_INVALID; /* every encoded part has at least its length field */
    }
    return EVP_DigestUpdate(ctx, p, n) == 1 ? 0 : SF_ERR_CRYPTO;
}

/*
 * RFC 4253 s8 / RFC 4419 s3 / RFC 5656 s4 / RFC 8731 s3 and the hybrid
 * drafts: H = HASH(V_C || V_S || I_C || I_S || K_S || client part ||
 * server part || K), the first five as strings, the rest as encoded.
 */
int
sf_kex_exchange_hash(const char *hash, const struct sf_kex_hash_in *in, uint8_t *out,
                     size_t *outlen)
{
    EVP_MD *md = NULL;
    EVP_MD_CTX *ctx = NULL;
    unsigned int n = 0;
    int r = SF_ERR_CRYPTO;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (hash == NULL || in == NULL || out == NULL || outlen == NULL || in->v_c == NULL ||
        in->v_s == NULL) {
        return SF_ERR_INVALID;
    }
    if ((md = EVP_MD_fetch(NULL, hash, NULL)) == NULL || !md_usable(md)) {
        r = SF_ERR_UNSUPPORTED;
        goto out;
    }
    if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex2(ctx, md, NULL) != 1) {
        goto out;
    }
    if ((r = md_put_string(ctx, in->v_c, strlen(in->v_c))) != 0 ||
        (r = md_put_string(ctx, in->v_s, strlen(in->v_s))) != 0 ||
        (r = md_put_string(ctx, in->i_c, in->i_c_len)) != 0 ||
        (r = md_put_string(ctx, in->i_s, in->i_s_len)) != 0 ||
        (r = md_put_string(ctx, in->k_s, in->k_s_len)) != 0 ||
        (r = md_put_raw(ctx, in->cpub, in->cpub_len)) != 0 ||
        (r = md_put_raw(ctx, in->spub, in->spub_len)) != 0 ||
        (r = md_put_raw(ctx, in->k, in->k_len)) != 0) {
        goto out;
    }
    r = SF_ERR_CRYPTO;
    if (EVP_DigestFinal_ex(ctx, out, &n) != 1) {
        goto out;
    }
    *outlen = n;
    r = 0;
out:
    EVP_MD_CTX_free(ctx); /* clears the state, which has seen K */
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
sf_kex_derive(const char *hash, const uint8_t *k_enc, size_t k_len, const uint8_t *h,
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

    if (hash == NULL || k_enc == NULL || k_len < 4 || h == NULL || h_len == 0 ||
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
        EVP_DigestUpdate(base, k_enc, k_len) != 1 || EVP_DigestUpdate(base, h, h_len) != 1 ||
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
        const struct kex_params *kp = kex_rows[i].kp;

        if (m != &kex_rows[i].m) {
            continue;
        }
        switch (kp->family) {
        case KEX_HYBRID:
            return hybrid_init(kp, priv, privlen, st, out);
        case KEX_DHX:
            return kp->gex ? SF_ERR_INVALID : dhx_init(kp, priv, privlen, st, out);
        default:
            return kex_init(kp, priv, privlen, pub, publen, st, out);
        }
    }
    return SF_ERR_INVALID;
}

/*
 * Group exchange: use exponent x[0..len) in the coming client_group (after
 * client_request, before client_group), for KATs.
 */
int sf_kex_test_gex_fix_x(struct sf_kex_state *st, const uint8_t *x, size_t len);

int
sf_kex_test_gex_fix_x(struct sf_kex_state *st, const uint8_t *x, size_t len)
{
    if (st == NULL || st->kp != &kp_gex || x == NULL || len == 0 || len > sizeof(st->fixed_x)) {
        return SF_ERR_INVALID;
    }
    memcpy(st->fixed_x, x, len);
    st->fixed_x_len = len;
    return 0;
}

/* The RFC 4419 group check alone, on big-endian p and g: 0 or SF_ERR_PROTOCOL. */
int sf_kex_test_gex_check(const uint8_t *p, size_t plen, const uint8_t *g, size_t glen,
                          uint32_t min, uint32_t max);

int
sf_kex_test_gex_check(const uint8_t *p, size_t plen, const uint8_t *g, size_t glen, uint32_t min,
                      uint32_t max)
{
    BIGNUM *bp = BN_bin2bn(p, (int)plen, NULL), *bg = BN_bin2bn(g, (int)glen, NULL);
    int r = bp != NULL && bg != NULL ? gex_check_group(bp, bg, min, max) : SF_ERR_CRYPTO;

    BN_free(bp);
    BN_free(bg);
    return r;
}

/* The deterministic test stream sntrup761 keys are made from (seed: 32 bytes). */
int sf_kex_test_seed_rng(const uint8_t *seed, uint8_t *out, size_t n);

int
sf_kex_test_seed_rng(const uint8_t *seed, uint8_t *out, size_t n)
{
    struct seed_rng sr = {seed, 0, {0}, 64};
    int r = seed_rng_fill(&sr, out, n);

    sf_wipe(&sr, sizeof(sr));
    return r;
}
