/*
 * src/mlkem768.c -- ML-KEM-768 (FIPS 203, August 2024) for the
 * mlkem768x25519-sha256 key exchange.
 *
 * Two back ends, chosen at compile time:
 *  - OpenSSL 3.5 and later: the provider's "ML-KEM-768" EVP_PKEY (key
 *    generation from the 64-byte seed d || z, encapsulation with the "ikme"
 *    parameter for the deterministic form, raw public/private key import).
 *  - Otherwise: the implementation below, written from FIPS 203 s4-s7,
 *    with SHA3-256, SHA3-512, SHAKE128 and SHAKE256 from OpenSSL EVP.
 *    OpenSSL 3.0 cannot squeeze a SHAKE128 stream incrementally, so
 *    SampleNTT (FIPS 203 Algorithm 7) squeezes 3 blocks (504 bytes, enough
 *    for about 99% of the matrix entries) and, when those hold fewer than
 *    256 accepted values, squeezes the stream again from the start at twice
 *    the length; a prefix of a longer SHAKE output equals the shorter
 *    output, so the result is exactly FIPS 203's.
 *
 * Owns: the polynomial arithmetic mod q = 3329 (NTT, base-case products,
 * compression, byte encodings, centred binomial sampling) and every
 * intermediate secret, wiped before return. check/check_mlkem768.c runs
 * this code under valgrind with the secrets marked undefined to catch
 * secret-dependent branches and memory indexes in the compiled code.
 * Must never: branch or index on secret data (the NTT, compression,
 * decoding, sampling from PRF output and the decapsulation comparison and
 * selection are straight-line; only the public matrix sampling and the
 * public encapsulation key check branch on data), divide by a variable or
 * use the `/` and `%` operators on secrets (Barrett reduction and
 * multiply-shift division instead), do I/O, or keep state between calls.
 */
#include "mlkem768.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>
#include <openssl/rand.h>

/*
 * SF_MLKEM768_FORCE_OPENSSL builds the OpenSSL back end against older
 * headers (every function it uses exists since 3.0): only for checking that
 * the code compiles; it cannot run on a library without ML-KEM.
 */
#if OPENSSL_VERSION_NUMBER >= 0x30500000L || defined(SF_MLKEM768_FORCE_OPENSSL)
#define MLKEM_USE_OPENSSL 1
#else
#define MLKEM_USE_OPENSSL 0
#endif

#define MLKEM_SEED_BYTES 32 /* d, z, m, rho, sigma, r, H(ek), K */

_Static_assert(SF_MLKEM768_SHARED_BYTES == MLKEM_SEED_BYTES, "K is 32 bytes");

#if MLKEM_USE_OPENSSL

/* ================================================ OpenSSL 3.5+ back end */

#define MLKEM_OSSL_NAME "ML-KEM-768"
#define MLKEM_OSSL_SEED "seed" /* OSSL_PKEY_PARAM_ML_KEM_SEED: d || z */
#define MLKEM_OSSL_IKME "ikme" /* OSSL_KEM_PARAM_IKME: m */

int
sf_mlkem768_keypair_derand(uint8_t *pk, uint8_t *sk, const uint8_t d[32], const uint8_t z[32])
{
    uint8_t seed[2 * MLKEM_SEED_BYTES];
    OSSL_PARAM params[2];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    size_t pklen = SF_MLKEM768_PUBLICKEY_BYTES, sklen = SF_MLKEM768_SECRETKEY_BYTES;
    int r = SF_ERR_CRYPTO;

    memcpy(seed, d, MLKEM_SEED_BYTES);
    memcpy(seed + MLKEM_SEED_BYTES, z, MLKEM_SEED_BYTES);
    params[0] = OSSL_PARAM_construct_octet_string(MLKEM_OSSL_SEED, seed, sizeof(seed));
    params[1] = OSSL_PARAM_construct_end();
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, MLKEM_OSSL_NAME, NULL)) == NULL ||
        EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_CTX_set_params(ctx, params) != 1 ||
        EVP_PKEY_generate(ctx, &key) != 1 ||
        EVP_PKEY_get_raw_public_key(key, pk, &pklen) != 1 ||
        pklen != SF_MLKEM768_PUBLICKEY_BYTES ||
        EVP_PKEY_get_raw_private_key(key, sk, &sklen) != 1 ||
        sklen != SF_MLKEM768_SECRETKEY_BYTES) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        ERR_clear_error();
        sf_wipe(pk, SF_MLKEM768_PUBLICKEY_BYTES);
        sf_wipe(sk, SF_MLKEM768_SECRETKEY_BYTES);
    }
    sf_wipe(seed, sizeof(seed));
    EVP_PKEY_free(key);
    EVP_PKEY_CTX_free(ctx);
    return r;
}

/* m == NULL: OpenSSL draws m itself. */
static int
ossl_encaps(uint8_t *ct, uint8_t *ss, const uint8_t *pk, const uint8_t *m)
{
    uint8_t mbuf[MLKEM_SEED_BYTES];
    OSSL_PARAM params[2];
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    size_t ctlen = SF_MLKEM768_CIPHERTEXT_BYTES, sslen = SF_MLKEM768_SHARED_BYTES;
    int r = SF_ERR_CRYPTO;

    params[0] = OSSL_PARAM_construct_end();
    if (m != NULL) {
        memcpy(mbuf, m, sizeof(mbuf));
        params[0] = OSSL_PARAM_construct_octet_string(MLKEM_OSSL_IKME, mbuf, sizeof(mbuf));
        params[1] = OSSL_PARAM_construct_end();
    }
    /* The import runs the FIPS 203 s7.2 modulus check and fails on a bad key. */
    if ((key = EVP_PKEY_new_raw_public_key_ex(NULL, MLKEM_OSSL_NAME, NULL, pk,
                                              SF_MLKEM768_PUBLICKEY_BYTES)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
        EVP_PKEY_encapsulate_init(ctx, params) != 1 ||
        EVP_PKEY_encapsulate(ctx, ct, &ctlen, ss, &sslen) != 1 ||
        ctlen != SF_MLKEM768_CIPHERTEXT_BYTES || sslen != SF_MLKEM768_SHARED_BYTES) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        ERR_clear_error(); /* a refused peer key leaves nothing on the error queue */
        sf_wipe(ct, SF_MLKEM768_CIPHERTEXT_BYTES);
        sf_wipe(ss, SF_MLKEM768_SHARED_BYTES);
    }
    sf_wipe(mbuf, sizeof(mbuf));
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return r;
}

int
sf_mlkem768_encaps_derand(uint8_t *ct, uint8_t *ss, const uint8_t *pk, const uint8_t m[32])
{
    return ossl_encaps(ct, ss, pk, m);
}

int
sf_mlkem768_encaps(uint8_t *ct, uint8_t *ss, const uint8_t *pk)
{
    return ossl_encaps(ct, ss, pk, NULL);
}

int
sf_mlkem768_decaps(uint8_t *ss, const uint8_t *ct, const uint8_t *sk)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    size_t sslen = SF_MLKEM768_SHARED_BYTES;
    int r = SF_ERR_CRYPTO;

    /*
     * The import checks H(ek) against the hash stored in dk (FIPS 203 s7.3)
     * and, stricter than FIPS 203 and than the own back end, that every
     * coefficient of s is below q and that the key passes a pairwise
     * consistency test (OpenSSL 3.5 does an encapsulation and decapsulation
     * on every private key import): a dk whose s does not belong to its ek
     * is refused with SF_ERR_CRYPTO instead of decapsulating to K-bar.
     */
    if ((key = EVP_PKEY_new_raw_private_key_ex(NULL, MLKEM_OSSL_NAME, NULL, sk,
                                               SF_MLKEM768_SECRETKEY_BYTES)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL)) == NULL ||
        EVP_PKEY_decapsulate_init(ctx, NULL) != 1 ||
        EVP_PKEY_decapsulate(ctx, ss, &sslen, ct, SF_MLKEM768_CIPHERTEXT_BYTES) != 1 ||
        sslen != SF_MLKEM768_SHARED_BYTES) {
        goto out;
    }
    r = 0;
out:
    if (r != 0) {
        ERR_clear_error();
        sf_wipe(ss, SF_MLKEM768_SHARED_BYTES);
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(key);
    return r;
}

#else /* !MLKEM_USE_OPENSSL */

/* ======================================================= own back end */

/*
 * Values that are public by design although computed from secrets (rho,
 * derived from d) are marked defined for valgrind, so that the
 * constant-time check in check/check_mlkem768.c (secrets marked undefined,
 * every branch or address computed from them reported) sees only real
 * leaks. Outside valgrind the client request is a few no-op instructions.
 */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define CT_DECLASSIFY(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED((p), (n)))
#endif
#endif
#ifndef CT_DECLASSIFY
#define CT_DECLASSIFY(p, n) ((void)(p), (void)(n))
#endif

/* FIPS 203 s8, Table 2: ML-KEM-768. */
#define Q 3329
#define N 256
#define K 3
#define ETA 2 /* eta1 = eta2 = 2 */
#define DU 10
#define DV 4

#define POLY_BYTES 384                         /* ByteEncode_12 of one polynomial */
#define VEC_BYTES (K * POLY_BYTES)             /* 1152 */
#define C1_BYTES (K * 32 * DU)                 /* 960 */
#define C2_BYTES (32 * DV)                     /* 128 */
#define PRF_BYTES (64 * ETA)                   /* 128: SamplePolyCBD input */
#define XOF_BLOCK 168                          /* SHAKE128 rate */
#define XOF_FIRST (3 * XOF_BLOCK)              /* first squeeze, 504 bytes */
#define XOF_MAX (4 * XOF_FIRST)                /* last squeeze, 2016 bytes */

/* Offsets in dk = dk_PKE || ek || H(ek) || z (FIPS 203 Algorithm 16). */
#define SK_EK (VEC_BYTES)
#define SK_H (SK_EK + SF_MLKEM768_PUBLICKEY_BYTES)
#define SK_Z (SK_H + MLKEM_SEED_BYTES)

_Static_assert(SF_MLKEM768_PUBLICKEY_BYTES == VEC_BYTES + MLKEM_SEED_BYTES, "ek size");
_Static_assert(SF_MLKEM768_SECRETKEY_BYTES == SK_Z + MLKEM_SEED_BYTES, "dk size");
_Static_assert(SF_MLKEM768_CIPHERTEXT_BYTES == C1_BYTES + C2_BYTES, "ciphertext size");

/* Coefficients are always kept fully reduced, in [0, q). */
struct poly {
    uint16_t c[N];
};

struct polyvec {
    struct poly p[K];
};

/*
 * zeta^BitRev7(i) mod q, zeta = 17 (FIPS 203 s4.3, Appendix A), used by
 * NTT and NTT^-1.
 */
static const uint16_t zetas[128] = {
    1,    1729, 2580, 3289, 2642, 630,  1897, 848,  1062, 1919, 193,  797,  2786, 3260, 569,
    1746, 296,  2447, 1339, 1476, 3046, 56,   2240, 1333, 1426, 2094, 535,  2882, 2393, 2879,
    1974, 821,  289,  331,  3253, 1756, 1197, 2304, 2277, 2055, 650,  1977, 2513, 632,  2865,
    33,   1320, 1915, 2319, 1435, 807,  452,  1438, 2868, 1534, 2402, 2647, 2617, 1481, 648,
    2474, 3110, 1227, 910,  17,   2761, 583,  2649, 1637, 723,  2288, 1100, 1409, 2662, 3281,
    233,  756,  2156, 3015, 3050, 1703, 1651, 2789, 1789, 1847, 952,  1461, 2687, 939,  2308,
    2437, 2388, 733,  2337, 268,  641,  1584, 2298, 2037, 3220, 375,  2549, 2090, 1645, 1063,
    319,  2773, 757,  2099, 561,  2466, 2594, 2804, 1092, 403,  1026, 1143, 2150, 2775, 886,
    1722, 1212, 1874, 1029, 2110, 2935, 885,  2154,
};

/* zeta^(2 BitRev7(i) + 1) mod q, the moduli of the base-case products (Appendix A). */
static const uint16_t gammas[128] = {
    17,   3312, 2761, 568,  583,  2746, 2649, 680,  1637, 1692, 723,  2606, 2288, 1041, 1100,
    2229, 1409, 1920, 2662, 667,  3281, 48,   233,  3096, 756,  2573, 2156, 1173, 3015, 314,
    3050, 279,  1703, 1626, 1651, 1678, 2789, 540,  1789, 1540, 1847, 1482, 952,  2377, 1461,
    1868, 2687, 642,  939,  2390, 2308, 1021, 2437, 892,  2388, 941,  733,  2596, 2337, 992,
    268,  3061, 641,  2688, 1584, 1745, 2298, 1031, 2037, 1292, 3220, 109,  375,  2954, 2549,
    780,  2090, 1239, 1645, 1684, 1063, 2266, 319,  3010, 2773, 556,  757,  2572, 2099, 1230,
    561,  2768, 2466, 863,  2594, 735,  2804, 525,  1092, 2237, 403,  2926, 1026, 2303, 1143,
    2186, 2150, 1179, 2775, 554,  886,  2443, 1722, 1607, 1212, 2117, 1874, 1455, 1029, 2300,
    2110, 1219, 2935, 394,  885,  2444, 2154, 1175,
};

#define NTT_INV_SCALE 3303 /* 128^-1 mod q (FIPS 203 Algorithm 10, line 14) */

/* ------------------------------------------------ constant-time helpers */

/*
 * Hide a value from the optimiser so that it cannot turn mask arithmetic
 * back into a branch.
 */
static inline uint32_t
ct_barrier(uint32_t x)
{
#if defined(__GNUC__)
    __asm__ volatile("" : "+r"(x));
#endif
    return x;
}

/* r in [0, 2q) -> r mod q, without a branch. */
static inline uint16_t
csubq(uint32_t r)
{
    r -= Q;
    r += Q & (0u - (r >> 31)); /* r < q wrapped around: the top bit is set */
    return (uint16_t)r;
}

/*
 * x mod q for any 32-bit x: Barrett reduction with m = floor(2^32 / q) =
 * 1290167. x / q - x m / 2^32 = x (2^32 - m q) / (q 2^32) < 1353 / 3329 < 1,
 * so t = floor(x m / 2^32) is floor(x / q) or one less and x - t q is in
 * [0, 2q); csubq() finishes.
 */
static inline uint16_t
reduce(uint32_t x)
{
    uint32_t t = (uint32_t)(((uint64_t)x * 1290167u) >> 32);

    return csubq(x - t * Q);
}

/* a * b mod q for a, b < q. */
static inline uint16_t
mulq(uint32_t a, uint32_t b)
{
    return reduce(a * b);
}

/*
 * Compress_d(x) = round(2^d x / q) mod 2^d (FIPS 203 (4.7)) for x in [0, q):
 * floor((2^d x + (q - 1) / 2) / q), the division done as (n * 2580335) >> 33,
 * which equals floor(n / q) for every n < 2^22 (checked exhaustively by
 * check/vectors/gen_mlkem768_vectors.py). (q - 1) / 2 rounds halves up:
 * 2^d x / q is never exactly a half because q is odd.
 */
static inline uint32_t
compress(uint16_t x, unsigned d)
{
    uint64_t n = ((uint64_t)x << d) + (Q - 1) / 2;

    return (uint32_t)((n * 2580335u) >> 33) & ((1u << d) - 1);
}

/* Decompress_d(y) = round(q y / 2^d) (FIPS 203 (4.8)); exact, no division. */
static inline uint16_t
decompress(uint32_t y, unsigned d)
{
    return (uint16_t)((y * Q + (1u << (d - 1))) >> d);
}

/* ------------------------------------------------------------- hashing */

struct hashes {
    EVP_MD *sha3_256; /* H */
    EVP_MD *sha3_512; /* G */
    EVP_MD *shake128; /* XOF */
    EVP_MD *shake256; /* PRF, J */
    EVP_MD_CTX *ctx;
};

static void
hashes_free(struct hashes *h)
{
    EVP_MD_CTX_free(h->ctx); /* the provider wipes its Keccak state */
    EVP_MD_free(h->sha3_256);
    EVP_MD_free(h->sha3_512);
    EVP_MD_free(h->shake128);
    EVP_MD_free(h->shake256);
    memset(h, 0, sizeof(*h));
}

SF_MUST_USE static int
hashes_init(struct hashes *h)
{
    memset(h, 0, sizeof(*h));
    if ((h->sha3_256 = EVP_MD_fetch(NULL, "SHA3-256", NULL)) == NULL ||
        (h->sha3_512 = EVP_MD_fetch(NULL, "SHA3-512", NULL)) == NULL ||
        (h->shake128 = EVP_MD_fetch(NULL, "SHAKE128", NULL)) == NULL ||
        (h->shake256 = EVP_MD_fetch(NULL, "SHAKE256", NULL)) == NULL ||
        (h->ctx = EVP_MD_CTX_new()) == NULL) {
        hashes_free(h);
        return SF_ERR_CRYPTO;
    }
    return 0;
}

/*
 * out = md(a || b), outlen bytes; xof selects the SHAKE squeeze (any
 * length) rather than a fixed-size digest of exactly outlen bytes.
 */
SF_MUST_USE static int
hash2(struct hashes *h, const EVP_MD *md, bool xof, const uint8_t *a, size_t alen,
      const uint8_t *b, size_t blen, uint8_t *out, size_t outlen)
{
    unsigned int got = 0;

    if (EVP_DigestInit_ex2(h->ctx, md, NULL) != 1 || EVP_DigestUpdate(h->ctx, a, alen) != 1 ||
        (blen > 0 && EVP_DigestUpdate(h->ctx, b, blen) != 1)) {
        return SF_ERR_CRYPTO;
    }
    if (xof) {
        return EVP_DigestFinalXOF(h->ctx, out, outlen) == 1 ? 0 : SF_ERR_CRYPTO;
    }
    if ((size_t)EVP_MD_get_size(md) != outlen || EVP_DigestFinal_ex(h->ctx, out, &got) != 1 ||
        got != outlen) {
        return SF_ERR_CRYPTO;
    }
    return 0;
}

/* H(s) = SHA3-256(s) */
SF_MUST_USE static int
hash_h(struct hashes *h, const uint8_t *in, size_t inlen, uint8_t out[32])
{
    return hash2(h, h->sha3_256, false, in, inlen, NULL, 0, out, 32);
}

/* G(a || b) = SHA3-512(a || b) */
SF_MUST_USE static int
hash_g(struct hashes *h, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
       uint8_t out[64])
{
    return hash2(h, h->sha3_512, false, a, alen, b, blen, out, 64);
}

/* PRF_eta(s, b) = SHAKE256(s || b, 64 eta) */
SF_MUST_USE static int
prf(struct hashes *h, const uint8_t s[32], uint8_t nonce, uint8_t out[PRF_BYTES])
{
    return hash2(h, h->shake256, true, s, MLKEM_SEED_BYTES, &nonce, 1, out, PRF_BYTES);
}

/* J(z, c) = SHAKE256(z || c, 32) */
SF_MUST_USE static int
hash_j(struct hashes *h, const uint8_t z[32], const uint8_t *c, uint8_t out[32])
{
    return hash2(h, h->shake256, true, z, MLKEM_SEED_BYTES, c, SF_MLKEM768_CIPHERTEXT_BYTES, out,
                 32);
}

/* --------------------------------------------------------- polynomials */

/* FIPS 203 Algorithm 9: NTT, in place. */
static void
poly_ntt(struct poly *f)
{
    unsigned i = 1;

    for (unsigned len = 128; len >= 2; len >>= 1) {
        for (unsigned start = 0; start < N; start += 2 * len) {
            uint32_t zeta = zetas[i++];

            for (unsigned j = start; j < start + len; j++) {
                uint32_t t = mulq(zeta, f->c[j + len]);

                f->c[j + len] = csubq(f->c[j] + Q - t);
                f->c[j] = csubq(f->c[j] + t);
            }
        }
    }
}

/* FIPS 203 Algorithm 10: NTT^-1, in place. */
static void
poly_invntt(struct poly *f)
{
    unsigned i = 127;

    for (unsigned len = 2; len <= 128; len <<= 1) {
        for (unsigned start = 0; start < N; start += 2 * len) {
            uint32_t zeta = zetas[i--];

            for (unsigned j = start; j < start + len; j++) {
                uint32_t t = f->c[j];

                f->c[j] = csubq(t + f->c[j + len]);
                f->c[j + len] = mulq(zeta, f->c[j + len] + Q - t);
            }
        }
    }
    for (unsigned j = 0; j < N; j++) {
        f->c[j] = mulq(f->c[j], NTT_INV_SCALE);
    }
}

/*
 * r += f * g in the NTT domain (FIPS 203 Algorithms 11 and 12): 128
 * products in Z_q[X] / (X^2 - gamma_i).
 */
static void
poly_basemul_acc(struct poly *r, const struct poly *f, const struct poly *g)
{
    for (unsigned i = 0; i < N / 2; i++) {
        uint32_t a0 = f->c[2 * i], a1 = f->c[2 * i + 1];
        uint32_t b0 = g->c[2 * i], b1 = g->c[2 * i + 1];
        /* Each sum is below 2 q^2 < 2^25, well inside reduce()'s range. */
        uint32_t c0 = reduce(a0 * b0 + (uint32_t)mulq(a1, b1) * gammas[i]);
        uint32_t c1 = reduce(a0 * b1 + a1 * b0);

        r->c[2 * i] = csubq(r->c[2 * i] + c0);
        r->c[2 * i + 1] = csubq(r->c[2 * i + 1] + c1);
    }
}

static void
poly_add(struct poly *r, const struct poly *a)
{
    for (unsigned j = 0; j < N; j++) {
        r->c[j] = csubq((uint32_t)r->c[j] + a->c[j]);
    }
}

/* r = a - r */
static void
poly_sub_from(struct poly *r, const struct poly *a)
{
    for (unsigned j = 0; j < N; j++) {
        r->c[j] = csubq((uint32_t)a->c[j] + Q - r->c[j]);
    }
}

/* r = sum_j a[j] * b[j] in the NTT domain */
static void
polyvec_dot(struct poly *r, const struct polyvec *a, const struct polyvec *b)
{
    memset(r, 0, sizeof(*r));
    for (unsigned j = 0; j < K; j++) {
        poly_basemul_acc(r, &a->p[j], &b->p[j]);
    }
}

/* FIPS 203 Algorithm 5: ByteEncode_12 of a reduced polynomial. */
static void
poly_encode12(uint8_t out[POLY_BYTES], const struct poly *f)
{
    for (unsigned i = 0; i < N / 2; i++) {
        uint32_t a = f->c[2 * i], b = f->c[2 * i + 1];

        out[3 * i] = (uint8_t)a;
        out[3 * i + 1] = (uint8_t)((a >> 8) | (b << 4));
        out[3 * i + 2] = (uint8_t)(b >> 4);
    }
}

/* FIPS 203 Algorithm 6: ByteDecode_12, reducing each 12-bit value mod q. */
static void
poly_decode12(struct poly *f, const uint8_t in[POLY_BYTES])
{
    for (unsigned i = 0; i < N / 2; i++) {
        uint32_t b0 = in[3 * i], b1 = in[3 * i + 1], b2 = in[3 * i + 2];

        f->c[2 * i] = csubq(b0 | ((b1 & 0x0f) << 8));   /* < 4096 < 2q */
        f->c[2 * i + 1] = csubq((b1 >> 4) | (b2 << 4));
    }
}

/* ByteEncode_d(Compress_d(f)) for d in {4, 10} (a little-endian bit stream). */
static void
poly_compress(uint8_t *out, const struct poly *f, unsigned d)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    for (unsigned j = 0; j < N; j++) {
        acc |= compress(f->c[j], d) << bits;
        bits += d;
        while (bits >= 8) { /* public loop count: depends on d only */
            out[o++] = (uint8_t)acc;
            acc >>= 8;
            bits -= 8;
        }
    }
}

/* Decompress_d(ByteDecode_d(in)) for d in {4, 10}. */
static void
poly_decompress(struct poly *f, const uint8_t *in, unsigned d)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    for (unsigned j = 0; j < N; j++) {
        while (bits < d) {
            acc |= (uint32_t)in[o++] << bits;
            bits += 8;
        }
        f->c[j] = decompress(acc & ((1u << d) - 1), d);
        acc >>= d;
        bits -= d;
    }
}

/* Decompress_1(ByteDecode_1(m)): bit i of m becomes 0 or (q + 1) / 2. */
static void
poly_frommsg(struct poly *f, const uint8_t m[32])
{
    for (unsigned j = 0; j < N; j++) {
        uint32_t bit = (m[j >> 3] >> (j & 7)) & 1;

        f->c[j] = (uint16_t)(ct_barrier(0u - bit) & ((Q + 1) / 2));
    }
}

/* ByteEncode_1(Compress_1(f)) */
static void
poly_tomsg(uint8_t m[32], const struct poly *f)
{
    memset(m, 0, 32);
    for (unsigned j = 0; j < N; j++) {
        m[j >> 3] |= (uint8_t)(compress(f->c[j], 1) << (j & 7));
    }
}

/*
 * FIPS 203 Algorithm 8: SamplePolyCBD_2 from PRF output. Per coefficient,
 * x and y are the sums of two bits each; the result is x - y mod q.
 */
static void
poly_cbd2(struct poly *f, const uint8_t buf[PRF_BYTES])
{
    for (unsigned w = 0; w < N / 8; w++) {
        uint32_t t = (uint32_t)buf[4 * w] | (uint32_t)buf[4 * w + 1] << 8 |
                     (uint32_t)buf[4 * w + 2] << 16 | (uint32_t)buf[4 * w + 3] << 24;
        uint32_t s = (t & 0x55555555u) + ((t >> 1) & 0x55555555u); /* 2-bit sums */

        for (unsigned k = 0; k < 8; k++) {
            uint32_t x = (s >> (4 * k)) & 3, y = (s >> (4 * k + 2)) & 3;

            f->c[8 * w + k] = csubq(x + Q - y);
        }
    }
}

/* Fill v with SamplePolyCBD_2(PRF(seed, nonce++)) for each element. */
SF_MUST_USE static int
polyvec_cbd2(struct hashes *h, struct polyvec *v, const uint8_t seed[32], uint8_t *nonce,
             uint8_t buf[PRF_BYTES])
{
    int r;

    for (unsigned i = 0; i < K; i++) {
        if ((r = prf(h, seed, (*nonce)++, buf)) != 0) {
            return r;
        }
        poly_cbd2(&v->p[i], buf);
    }
    return 0;
}

/*
 * Rejection-sample 12-bit candidates below q from a public SHAKE128 stream
 * (FIPS 203 Algorithm 7, lines 4-14). Returns the number of coefficients
 * written (at most N).
 */
static unsigned
parse_uniform(struct poly *f, const uint8_t *buf, size_t len)
{
    unsigned j = 0;

    for (size_t i = 0; i + 3 <= len && j < N; i += 3) {
        uint16_t d1 = (uint16_t)(buf[i] | ((buf[i + 1] & 0x0f) << 8));
        uint16_t d2 = (uint16_t)((buf[i + 1] >> 4) | (buf[i + 2] << 4));

        if (d1 < Q) {
            f->c[j++] = d1;
        }
        if (d2 < Q && j < N) {
            f->c[j++] = d2;
        }
    }
    return j;
}

/*
 * FIPS 203 Algorithm 7: SampleNTT(rho || x || y). The stream is squeezed
 * in one go (OpenSSL 3.0 has no incremental squeeze): 504 bytes first,
 * then, if fewer than 256 values were accepted, 1008 and 2016 bytes. The
 * chance that 2016 bytes (1344 candidates, each accepted with probability
 * 3329/4096) hold fewer than 256 is far below 2^-200: reaching the end is
 * reported as an internal error rather than looping forever.
 */
SF_MUST_USE static int
sample_ntt(struct hashes *h, struct poly *f, const uint8_t rho[32], uint8_t x, uint8_t y,
           uint8_t *buf)
{
    uint8_t idx[2] = {x, y};
    int r;

    for (size_t len = XOF_FIRST; len <= XOF_MAX; len *= 2) {
        if ((r = hash2(h, h->shake128, true, rho, MLKEM_SEED_BYTES, idx, sizeof(idx), buf,
                       len)) != 0) {
            return r;
        }
        if (parse_uniform(f, buf, len) == N) {
            return 0;
        }
    }
    return SF_ERR_INTERNAL;
}

/*
 * The matrix A-hat of FIPS 203 Algorithms 13 and 14: A[i][j] =
 * SampleNTT(rho || j || i). With transposed set this fills a[i][j] =
 * A[j][i] = SampleNTT(rho || i || j), as encryption needs for A-hat^T.
 */
SF_MUST_USE static int
gen_matrix(struct hashes *h, struct polyvec a[K], const uint8_t rho[32], bool transposed,
           uint8_t *buf)
{
    int r;

    for (unsigned i = 0; i < K; i++) {
        for (unsigned j = 0; j < K; j++) {
            uint8_t x = (uint8_t)(transposed ? i : j), y = (uint8_t)(transposed ? j : i);

            if ((r = sample_ntt(h, &a[i].p[j], rho, x, y, buf)) != 0) {
                return r;
            }
        }
    }
    return 0;
}

/*
 * FIPS 203 s7.2 "modulus check": ek is well formed iff every 12-bit value
 * of its t-hat part is below q (ByteEncode_12(ByteDecode_12(ek)) == ek).
 * ek is public, so this may branch.
 */
static bool
ek_modulus_ok(const uint8_t *ek)
{
    for (size_t i = 0; i < VEC_BYTES; i += 3) {
        uint32_t d1 = ek[i] | ((uint32_t)(ek[i + 1] & 0x0f) << 8);
        uint32_t d2 = ((uint32_t)ek[i + 1] >> 4) | ((uint32_t)ek[i + 2] << 4);

        if (d1 >= Q || d2 >= Q) {
            return false;
        }
    }
    return true;
}

/* -------------------------------------------------------------- K-PKE */

/* Scratch for one operation; wiped as a whole before return. */
struct work {
    struct hashes h;
    struct polyvec a[K];
    struct polyvec s, e, t;
    struct poly v, w;
    uint8_t xof[XOF_MAX];
    uint8_t prfbuf[PRF_BYTES];
    uint8_t g[2 * MLKEM_SEED_BYTES]; /* G output: rho || sigma, or K || r */
    uint8_t in[MLKEM_SEED_BYTES + 1];
    uint8_t m[MLKEM_SEED_BYTES];
    uint8_t kbar[MLKEM_SEED_BYTES];
    uint8_t ct2[SF_MLKEM768_CIPHERTEXT_BYTES];
};

/*
 * K-PKE.Encrypt(ek, m, r) (FIPS 203 Algorithm 14). ek must have passed the
 * modulus check, or come from dk (decoded mod q either way).
 * Uses w->a, w->s (y), w->e (e1), w->t (t-hat), w->v, w->w.
 */
SF_MUST_USE static int
pke_encrypt(struct work *w, uint8_t *ct, const uint8_t *ek, const uint8_t m[32],
            const uint8_t rnd[32])
{
    uint8_t nonce = 0;
    int r;

    for (unsigned i = 0; i < K; i++) {
        poly_decode12(&w->t.p[i], ek + i * POLY_BYTES);
    }
    if ((r = gen_matrix(&w->h, w->a, ek + VEC_BYTES, true, w->xof)) != 0 ||
        (r = polyvec_cbd2(&w->h, &w->s, rnd, &nonce, w->prfbuf)) != 0 ||  /* y */
        (r = polyvec_cbd2(&w->h, &w->e, rnd, &nonce, w->prfbuf)) != 0 ||  /* e1 */
        (r = prf(&w->h, rnd, nonce, w->prfbuf)) != 0) {                   /* e2 */
        return r;
    }
    poly_cbd2(&w->w, w->prfbuf);
    for (unsigned i = 0; i < K; i++) {
        poly_ntt(&w->s.p[i]);
    }
    /* u = NTT^-1(A-hat^T o y-hat) + e1 */
    for (unsigned i = 0; i < K; i++) {
        polyvec_dot(&w->v, &w->a[i], &w->s);
        poly_invntt(&w->v);
        poly_add(&w->v, &w->e.p[i]);
        poly_compress(ct + i * 32 * DU, &w->v, DU);
    }
    /* v = NTT^-1(t-hat^T o y-hat) + e2 + mu */
    polyvec_dot(&w->v, &w->t, &w->s);
    poly_invntt(&w->v);
    poly_add(&w->v, &w->w);
    poly_frommsg(&w->w, m);
    poly_add(&w->v, &w->w);
    poly_compress(ct + C1_BYTES, &w->v, DV);
    return 0;
}

/*
 * K-PKE.Decrypt(dk_PKE, c) (FIPS 203 Algorithm 15) into w->m.
 * Uses w->s (s-hat), w->e (u), w->v, w->w.
 */
static void
pke_decrypt(struct work *w, const uint8_t *dk, const uint8_t *ct)
{
    for (unsigned i = 0; i < K; i++) {
        poly_decode12(&w->s.p[i], dk + i * POLY_BYTES);
        poly_decompress(&w->e.p[i], ct + i * 32 * DU, DU);
        poly_ntt(&w->e.p[i]);
    }
    poly_decompress(&w->v, ct + C1_BYTES, DV);
    /* w = v - NTT^-1(s-hat^T o NTT(u)) */
    polyvec_dot(&w->w, &w->s, &w->e);
    poly_invntt(&w->w);
    poly_sub_from(&w->w, &w->v);
    poly_tomsg(w->m, &w->w);
}

/* ------------------------------------------------------------- ML-KEM */

/* FIPS 203 Algorithm 16 (with K-PKE.KeyGen, Algorithm 13, inlined). */
int
sf_mlkem768_keypair_derand(uint8_t *pk, uint8_t *sk, const uint8_t d[32], const uint8_t z[32])
{
    struct work w;
    uint8_t nonce = 0;
    int r;

    memset(&w, 0, sizeof(w));
    if ((r = hashes_init(&w.h)) != 0) {
        goto out;
    }
    /* (rho, sigma) = G(d || k): the k byte is FIPS 203's domain separation. */
    memcpy(w.in, d, MLKEM_SEED_BYTES);
    w.in[MLKEM_SEED_BYTES] = K;
    if ((r = hash_g(&w.h, w.in, sizeof(w.in), NULL, 0, w.g)) != 0) {
        goto out;
    }
    CT_DECLASSIFY(w.g, MLKEM_SEED_BYTES); /* rho is published in ek */
    if ((r = gen_matrix(&w.h, w.a, w.g, false, w.xof)) != 0 ||
        (r = polyvec_cbd2(&w.h, &w.s, w.g + MLKEM_SEED_BYTES, &nonce, w.prfbuf)) != 0 ||
        (r = polyvec_cbd2(&w.h, &w.e, w.g + MLKEM_SEED_BYTES, &nonce, w.prfbuf)) != 0) {
        goto out;
    }
    for (unsigned i = 0; i < K; i++) {
        poly_ntt(&w.s.p[i]);
        poly_ntt(&w.e.p[i]);
    }
    /* t-hat = A-hat o s-hat + e-hat */
    for (unsigned i = 0; i < K; i++) {
        polyvec_dot(&w.t.p[i], &w.a[i], &w.s);
        poly_add(&w.t.p[i], &w.e.p[i]);
        poly_encode12(pk + i * POLY_BYTES, &w.t.p[i]);
        poly_encode12(sk + i * POLY_BYTES, &w.s.p[i]);
    }
    memcpy(pk + VEC_BYTES, w.g, MLKEM_SEED_BYTES); /* rho */
    /* dk = dk_PKE || ek || H(ek) || z */
    memcpy(sk + SK_EK, pk, SF_MLKEM768_PUBLICKEY_BYTES);
    if ((r = hash_h(&w.h, pk, SF_MLKEM768_PUBLICKEY_BYTES, sk + SK_H)) != 0) {
        goto out;
    }
    memcpy(sk + SK_Z, z, MLKEM_SEED_BYTES);
out:
    if (r != 0) {
        sf_wipe(pk, SF_MLKEM768_PUBLICKEY_BYTES);
        sf_wipe(sk, SF_MLKEM768_SECRETKEY_BYTES);
    }
    hashes_free(&w.h);
    sf_wipe(&w, sizeof(w));
    return r;
}

/* FIPS 203 Algorithm 17, after the s7.2 input check. */
int
sf_mlkem768_encaps_derand(uint8_t *ct, uint8_t *ss, const uint8_t *pk, const uint8_t m[32])
{
    struct work w;
    int r;

    memset(&w, 0, sizeof(w));
    if (!ek_modulus_ok(pk)) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    /* (K, r) = G(m || H(ek)) */
    if ((r = hashes_init(&w.h)) != 0 ||
        (r = hash_h(&w.h, pk, SF_MLKEM768_PUBLICKEY_BYTES, w.in)) != 0 ||
        (r = hash_g(&w.h, m, MLKEM_SEED_BYTES, w.in, MLKEM_SEED_BYTES, w.g)) != 0 ||
        (r = pke_encrypt(&w, ct, pk, m, w.g + MLKEM_SEED_BYTES)) != 0) {
        goto out;
    }
    memcpy(ss, w.g, SF_MLKEM768_SHARED_BYTES);
out:
    if (r != 0) {
        sf_wipe(ct, SF_MLKEM768_CIPHERTEXT_BYTES);
        sf_wipe(ss, SF_MLKEM768_SHARED_BYTES);
    }
    hashes_free(&w.h);
    sf_wipe(&w, sizeof(w));
    return r;
}

/* FIPS 203 Algorithm 18, after the s7.3 hash check. */
int
sf_mlkem768_decaps(uint8_t *ss, const uint8_t *ct, const uint8_t *sk)
{
    struct work w;
    uint32_t diff;
    uint8_t keep;
    int r;

    memset(&w, 0, sizeof(w));
    /* s7.3: H(ek) stored in dk must match the ek stored in dk. */
    if ((r = hashes_init(&w.h)) != 0 ||
        (r = hash_h(&w.h, sk + SK_EK, SF_MLKEM768_PUBLICKEY_BYTES, w.in)) != 0) {
        goto out;
    }
    if (CRYPTO_memcmp(w.in, sk + SK_H, MLKEM_SEED_BYTES) != 0) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    pke_decrypt(&w, sk, ct);
    /* (K', r') = G(m' || h); K-bar = J(z || c); c' = Encrypt(ek, m', r') */
    if ((r = hash_g(&w.h, w.m, MLKEM_SEED_BYTES, sk + SK_H, MLKEM_SEED_BYTES, w.g)) != 0 ||
        (r = hash_j(&w.h, sk + SK_Z, ct, w.kbar)) != 0 ||
        (r = pke_encrypt(&w, w.ct2, sk + SK_EK, w.m, w.g + MLKEM_SEED_BYTES)) != 0) {
        goto out;
    }
    /*
     * Implicit rejection without a branch: keep = 0xff when c == c', else
     * 0; CRYPTO_memcmp is constant time and returns 0 or nonzero.
     */
    diff = ct_barrier((uint32_t)CRYPTO_memcmp(ct, w.ct2, SF_MLKEM768_CIPHERTEXT_BYTES));
    keep = (uint8_t)(((diff | (0u - diff)) >> 31) - 1u); /* diff != 0 -> 0, else 0xff */
    for (unsigned i = 0; i < SF_MLKEM768_SHARED_BYTES; i++) {
        ss[i] = (uint8_t)((w.g[i] & keep) | (w.kbar[i] & (uint8_t)~keep));
    }
out:
    if (r != 0) {
        sf_wipe(ss, SF_MLKEM768_SHARED_BYTES);
    }
    hashes_free(&w.h);
    sf_wipe(&w, sizeof(w));
    return r;
}

int
sf_mlkem768_encaps(uint8_t *ct, uint8_t *ss, const uint8_t *pk)
{
    uint8_t m[MLKEM_SEED_BYTES];
    int r;

    if (RAND_priv_bytes(m, sizeof(m)) != 1) {
        sf_wipe(ct, SF_MLKEM768_CIPHERTEXT_BYTES);
        sf_wipe(ss, SF_MLKEM768_SHARED_BYTES);
        return SF_ERR_CRYPTO;
    }
    r = sf_mlkem768_encaps_derand(ct, ss, pk, m);
    sf_wipe(m, sizeof(m));
    return r;
}

#endif /* MLKEM_USE_OPENSSL */

/* ML-KEM.KeyGen (FIPS 203 Algorithm 19): d and z from the private DRBG. */
int
sf_mlkem768_keypair(uint8_t *pk, uint8_t *sk)
{
    uint8_t seed[2 * MLKEM_SEED_BYTES];
    int r;

    if (RAND_priv_bytes(seed, sizeof(seed)) != 1) {
        sf_wipe(pk, SF_MLKEM768_PUBLICKEY_BYTES);
        sf_wipe(sk, SF_MLKEM768_SECRETKEY_BYTES);
        return SF_ERR_CRYPTO;
    }
    r = sf_mlkem768_keypair_derand(pk, sk, seed, seed + MLKEM_SEED_BYTES);
    sf_wipe(seed, sizeof(seed));
    return r;
}
