/*
 * check/check_sntrup761.c -- tests for src/sntrup761.c (the sntrup761 KEM).
 *
 * Owns: a NIST AES-256 CTR_DRBG (the "randombytes" of NIST's rng.c, no
 * derivation function, one update after every call), built on OpenSSL
 * AES-256-ECB, and the NIST KAT regeneration on top of it; round trips,
 * implicit rejection, random-source contract and misuse tests. Must never:
 * need the network or python at run time, or depend on timing.
 *
 * Known answers. NIST's PQCgenKAT_kem seeds a DRBG with the 48 bytes
 * 0, 1, ..., 47, draws one 48-byte seed per count from it, and re-seeds
 * the DRBG with that seed before the count's keypair, enc and dec. The
 * DRBG's output depends on how the bytes are asked for (each call ends
 * with a re-key), and two call patterns are published for sntrup761:
 *
 *   reference: the NTRU Prime round-3 reference code (ntruprime-20201007)
 *       draws each 32-bit value of a random polynomial with its own
 *       4-byte call; this is the pattern src/sntrup761.c follows.
 *       KAT_REF_ALL_SHA512 is the SHA-512 of the 100-count kat_kem.rsp
 *       (first line "# kem/sntrup761", then each record and a blank line)
 *       from cloudflare/circl kem/ntruprime/kat_test.go, "computed from
 *       reference implementation".
 *   per-polynomial: the SUPERCOP 20210604 code in PQClean and liboqs
 *       draws each polynomial's 761 * 4 bytes with one call (same bytes
 *       in the same order, different call boundaries). Reproduced here
 *       with an adapter (batch_rng) that answers the KEM's 4-byte calls
 *       from one 3044-byte draw. KAT_PQCLEAN_COUNT0_SHA256 is the SHA-256
 *       of count 0's record ("count = 0\nseed = ..\npk = ..\nsk = ..\n
 *       ct = ..\nss = ..\n"): PQClean crypto_kem/sntrup761/META.yml
 *       nistkat-sha256 and liboqs tests/KATs/kem/kats.json "single".
 *       KAT_PQCLEAN_ALL_SHA256 is liboqs kats.json "all": the 100 records
 *       with a blank line between them, no header.
 *
 * The .rsp files are not stored; the tests regenerate their text and
 * compare the digests, printing count 0's leading bytes on a mismatch to
 * help locate a difference. Between them they cover keypair, enc and (through the
 * ss check of every count) dec on 200 keys.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "sntrup761.h"

#define PK_LEN SF_SNTRUP761_PUBLICKEY_BYTES
#define SK_LEN SF_SNTRUP761_SECRETKEY_BYTES
#define CT_LEN SF_SNTRUP761_CIPHERTEXT_BYTES
#define SS_LEN SF_SNTRUP761_SHARED_BYTES
#define SMALL_LEN 191                    /* Small encoding of a polynomial: rho, Small(r) */
#define RHO_OFF (2 * SMALL_LEN + PK_LEN) /* sk = Small(f) || Small(1/g) || pk || rho || Hash4(pk) */
#define CACHE_OFF (RHO_OFF + SMALL_LEN)
#define KAT_COUNTS 100
#define DRBG_SEED_LEN 48

static const char KAT_REF_ALL_SHA512[] =
    "1a687f42261c47fe4421b35c5d9faf035433fcb2101458680c66c8d54caafec5"
    "fb767ea7725d6681ab100912ef06c38d88862a5d2d86786af2989b7dad33813a";
static const char KAT_PQCLEAN_COUNT0_SHA256[] =
    "afc42c3a5b10f4ef69654250097ebda9b9564570f4086744b24a6daf2bd1f89a";
static const char KAT_PQCLEAN_ALL_SHA256[] =
    "36e1e53d4e6e295e8fb804449958ad9a3719aa350e91933c65791b9117382d57";

/* ---- NIST AES-256 CTR_DRBG (SP 800-90A without df, as NIST's rng.c) ---- */

struct drbg {
    uint8_t key[32];
    uint8_t v[16];
    EVP_CIPHER_CTX *aes;
    bool failed; /* an AES call failed (checked once per use: a ck_assert per block is slow) */
};

static void
drbg_increment(uint8_t v[16])
{
    for (int j = 15; j >= 0; j--) {
        if (++v[j] != 0) {
            break;
        }
    }
}

/* n blocks of AES-256(key, ++V), V incremented before each block. */
static void
drbg_blocks(struct drbg *d, uint8_t *out, size_t n)
{
    int len = 0;

    if (EVP_EncryptInit_ex(d->aes, EVP_aes_256_ecb(), NULL, d->key, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(d->aes, 0) != 1) {
        d->failed = true;
    }
    for (size_t i = 0; i < n; i++) {
        drbg_increment(d->v);
        if (EVP_EncryptUpdate(d->aes, out + 16 * i, &len, d->v, 16) != 1 || len != 16) {
            d->failed = true;
        }
    }
}

/* CTR_DRBG_Update: 48 bytes of keystream, xor provided (may be NULL), become key || V. */
static void
drbg_update(struct drbg *d, const uint8_t *provided)
{
    uint8_t t[48];

    drbg_blocks(d, t, 3);
    if (provided != NULL) {
        for (int i = 0; i < 48; i++) {
            t[i] ^= provided[i];
        }
    }
    memcpy(d->key, t, 32);
    memcpy(d->v, t + 32, 16);
}

static void
drbg_init(struct drbg *d, const uint8_t entropy[DRBG_SEED_LEN])
{
    if (d->aes == NULL) {
        d->aes = EVP_CIPHER_CTX_new();
        ck_assert_ptr_nonnull(d->aes);
    }
    memset(d->key, 0, sizeof d->key);
    memset(d->v, 0, sizeof d->v);
    d->failed = false;
    drbg_update(d, entropy);
}

static void
drbg_free(struct drbg *d)
{
    ck_assert(!d->failed);
    EVP_CIPHER_CTX_free(d->aes);
    d->aes = NULL;
}

/* NIST's randombytes(): whole blocks, the tail of the last one dropped, then an update. */
static void
drbg_generate(struct drbg *d, uint8_t *out, size_t n)
{
    uint8_t block[16];

    while (n > 0) {
        size_t take = n < 16 ? n : 16;

        drbg_blocks(d, block, 1);
        memcpy(out, block, take);
        out += take;
        n -= take;
    }
    drbg_update(d, NULL);
}

/* The sf_sntrup761_rng form. */
static int
drbg_rng(void *ctx, uint8_t *out, size_t n)
{
    drbg_generate(ctx, out, n);
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static void
hex_upper(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789ABCDEF";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static void
hex_lower(char *out, const uint8_t *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Feed text to both digests. */
static void
emit(EVP_MD_CTX *a, EVP_MD_CTX *b, const char *text)
{
    size_t n = strlen(text);

    ck_assert_int_eq(EVP_DigestUpdate(a, text, n), 1);
    ck_assert_int_eq(EVP_DigestUpdate(b, text, n), 1);
}

/* "label = HEX\n" to both digests. */
static void
emit_field(EVP_MD_CTX *a, EVP_MD_CTX *b, const char *label, const uint8_t *v, size_t n)
{
    char *hex = malloc(2 * n + 1);

    ck_assert_ptr_nonnull(hex);
    hex_upper(hex, v, n);
    emit(a, b, label);
    emit(a, b, " = ");
    emit(a, b, hex);
    emit(a, b, "\n");
    free(hex);
}

static EVP_MD_CTX *
digest_new(const EVP_MD *md)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestInit_ex(ctx, md, NULL), 1);
    return ctx;
}

static void
digest_hex(EVP_MD_CTX *ctx, char *out)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    ck_assert_int_eq(EVP_DigestFinal_ex(ctx, md, &n), 1);
    hex_lower(out, md, n);
}

/* First 32 bytes of SHA-512(b || x1 || x2), the specification's Hash_b. */
static void
hash_b(uint8_t out[32], uint8_t b, const uint8_t *x1, size_t n1, const uint8_t *x2, size_t n2)
{
    uint8_t md[64];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestInit_ex(ctx, EVP_sha512(), NULL), 1);
    ck_assert_int_eq(EVP_DigestUpdate(ctx, &b, 1), 1);
    ck_assert_int_eq(EVP_DigestUpdate(ctx, x1, n1), 1);
    if (x2 != NULL) {
        ck_assert_int_eq(EVP_DigestUpdate(ctx, x2, n2), 1);
    }
    ck_assert_int_eq(EVP_DigestFinal_ex(ctx, md, &n), 1);
    EVP_MD_CTX_free(ctx);
    memcpy(out, md, 32);
}

/* The per-polynomial pattern: one DRBG call of 761 * 4 bytes answers 761 4-byte calls. */
struct batch_rng {
    struct drbg *d;
    uint8_t buf[761 * 4];
    size_t pos;
};

static int
batch_rng(void *ctx, uint8_t *out, size_t n)
{
    struct batch_rng *b = ctx;

    if (n != 4) { /* rho: its own call in both patterns */
        ck_assert_uint_eq(b->pos, sizeof b->buf);
        drbg_generate(b->d, out, n);
        return 0;
    }
    if (b->pos == sizeof b->buf) {
        drbg_generate(b->d, b->buf, sizeof b->buf);
        b->pos = 0;
    }
    memcpy(out, b->buf + b->pos, 4);
    b->pos += 4;
    return 0;
}

struct kat_style {
    bool per_polynomial; /* randomness through batch_rng */
    const char *header;  /* text before the first record, or NULL */
    bool blank_after_last;
};

static const struct kat_style style_reference = { false, "# kem/sntrup761\n\n", true };
static const struct kat_style style_pqclean = { true, NULL, false };

#define NOTE_LEN 512

/*
 * Regenerate counts 0..ncounts-1 of a KAT file in the given style: the
 * digest (md) of its text in hex, and count 0's leading bytes in note.
 */
static void
kat_digest(const struct kat_style *st, int ncounts, const EVP_MD *md, char *hex, char *note)
{
    struct drbg master = { 0 };
    struct drbg d = { 0 };
    struct batch_rng *batch = calloc(1, sizeof *batch);
    EVP_MD_CTX *ctx = digest_new(md);
    EVP_MD_CTX *none = digest_new(md);
    uint8_t entropy[DRBG_SEED_LEN];
    uint8_t seed[DRBG_SEED_LEN];
    uint8_t *pk = malloc(PK_LEN);
    uint8_t *sk = malloc(SK_LEN);
    uint8_t *ct = malloc(CT_LEN);
    uint8_t ss[SS_LEN];
    uint8_t ss2[SS_LEN];
    char line[64];
    sf_sntrup761_rng rng = st->per_polynomial ? batch_rng : drbg_rng;
    void *rngctx = st->per_polynomial ? (void *)batch : (void *)&d;

    ck_assert(batch != NULL && pk != NULL && sk != NULL && ct != NULL);
    for (int i = 0; i < DRBG_SEED_LEN; i++) {
        entropy[i] = (uint8_t)i;
    }
    drbg_init(&master, entropy);
    batch->d = &d;
    if (st->header != NULL) {
        emit(ctx, none, st->header);
    }
    for (int count = 0; count < ncounts; count++) {
        drbg_generate(&master, seed, sizeof seed);
        drbg_init(&d, seed);
        batch->pos = sizeof batch->buf;
        ck_assert_int_eq(sf_sntrup761_keypair(pk, sk, rng, rngctx), 0);
        ck_assert_int_eq(sf_sntrup761_enc(ct, ss, pk, rng, rngctx), 0);
        ck_assert_int_eq(sf_sntrup761_dec(ss2, ct, sk), 0);
        ck_assert_mem_eq(ss, ss2, SS_LEN);
        ck_assert(!d.failed);

        if (count > 0 && !st->blank_after_last) {
            emit(ctx, none, "\n");
        }
        snprintf(line, sizeof line, "count = %d\n", count);
        emit(ctx, none, line);
        emit_field(ctx, none, "seed", seed, sizeof seed);
        emit_field(ctx, none, "pk", pk, PK_LEN);
        emit_field(ctx, none, "sk", sk, SK_LEN);
        emit_field(ctx, none, "ct", ct, CT_LEN);
        emit_field(ctx, none, "ss", ss, SS_LEN);
        if (st->blank_after_last) {
            emit(ctx, none, "\n");
        }
        if (count == 0) {
            char p1[65], p2[65], p3[65], p4[65];

            hex_upper(p1, pk, 32);
            hex_upper(p2, sk, 32);
            hex_upper(p3, ct, 32);
            hex_upper(p4, ss, 32);
            snprintf(note, NOTE_LEN, "count 0 (%s draws): pk %s.. sk %s.. ct %s.. ss %s",
                     st->per_polynomial ? "per-polynomial" : "reference", p1, p2, p3, p4);
        }
    }
    digest_hex(ctx, hex);
    EVP_MD_CTX_free(ctx);
    EVP_MD_CTX_free(none);
    drbg_free(&master);
    drbg_free(&d);
    free(batch);
    free(pk);
    free(sk);
    free(ct);
}

/* ---- known answers ------------------------------------------------------ */

/* The DRBG: its first two outputs for entropy 0..47 are every NIST KEM KAT's count 0 and 1 seeds. */
START_TEST(test_drbg_nist_seeds)
{
    struct drbg d = { 0 };
    uint8_t entropy[DRBG_SEED_LEN];
    uint8_t seed[DRBG_SEED_LEN];
    char hex[2 * DRBG_SEED_LEN + 1];

    for (int i = 0; i < DRBG_SEED_LEN; i++) {
        entropy[i] = (uint8_t)i;
    }
    drbg_init(&d, entropy);
    drbg_generate(&d, seed, sizeof seed);
    hex_upper(hex, seed, sizeof seed);
    ck_assert_str_eq(hex, "061550234D158C5EC95595FE04EF7A25767F2E24CC2BC479D09D86DC9ABCFDE7"
                          "056A8C266F9EF97ED08541DBD2E1FFA1");
    drbg_generate(&d, seed, sizeof seed);
    hex_upper(hex, seed, sizeof seed);
    ck_assert_str_eq(hex, "D81C4D8D734FCBFBEADE3D3F8A039FAA2A2C9957E835AD55B22E75BF57BB556A"
                          "C81ADDE6AEEB4A5A875C3BFCADFA958F");
    drbg_free(&d);
}
END_TEST

/* kat_kem.rsp of the round-3 reference, all 100 counts (circl's SHA-512). */
START_TEST(test_kat_reference_all)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    char note[NOTE_LEN];

    kat_digest(&style_reference, KAT_COUNTS, EVP_sha512(), hex, note);
    if (strcmp(hex, KAT_REF_ALL_SHA512) != 0) {
        fprintf(stderr, "sntrup761 KAT mismatch; %s\n", note);
    }
    ck_assert_str_eq(hex, KAT_REF_ALL_SHA512);
}
END_TEST

/* PQClean / liboqs count 0 (their nistkat output). */
START_TEST(test_kat_pqclean_count0)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    char note[NOTE_LEN];

    kat_digest(&style_pqclean, 1, EVP_sha256(), hex, note);
    if (strcmp(hex, KAT_PQCLEAN_COUNT0_SHA256) != 0) {
        fprintf(stderr, "sntrup761 KAT mismatch; %s\n", note);
    }
    ck_assert_str_eq(hex, KAT_PQCLEAN_COUNT0_SHA256);
}
END_TEST

/* liboqs, all 100 counts. */
START_TEST(test_kat_pqclean_all)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    char note[NOTE_LEN];

    kat_digest(&style_pqclean, KAT_COUNTS, EVP_sha256(), hex, note);
    if (strcmp(hex, KAT_PQCLEAN_ALL_SHA256) != 0) {
        fprintf(stderr, "sntrup761 KAT mismatch; %s\n", note);
    }
    ck_assert_str_eq(hex, KAT_PQCLEAN_ALL_SHA256);
}
END_TEST

/* ---- the random-source contract ------------------------------------------- */

/* Records every call's size; returns bytes from a DRBG. */
struct call_log {
    struct drbg d;
    size_t sizes[8192];
    size_t n;
    uint8_t last[SMALL_LEN]; /* the last call's output, if it was this long */
    int fail_at; /* fail the call with this index (-1: never) */
    int constant; /* hand out this byte value (-1: DRBG output) */
};

static int
log_rng(void *ctx, uint8_t *out, size_t n)
{
    struct call_log *lg = ctx;

    if (lg->fail_at >= 0 && (size_t)lg->fail_at == lg->n) {
        return -1;
    }
    if (lg->n < sizeof lg->sizes / sizeof lg->sizes[0]) {
        lg->sizes[lg->n] = n;
    }
    lg->n++;
    if (lg->constant >= 0) {
        memset(out, lg->constant, n);
        return 0;
    }
    drbg_generate(&lg->d, out, n);
    if (n == sizeof lg->last) {
        memcpy(lg->last, out, n);
    }
    return 0;
}

static void
log_init(struct call_log *lg, uint8_t seedbyte)
{
    uint8_t seed[DRBG_SEED_LEN];

    memset(seed, seedbyte, sizeof seed);
    memset(lg, 0, sizeof *lg);
    drbg_init(&lg->d, seed);
    lg->fail_at = -1;
    lg->constant = -1;
}

/* keypair: k * 761 calls of 4 bytes (g, k >= 1), 761 of 4 (f), one of 191 (rho); enc: 761 of 4. */
START_TEST(test_rng_call_pattern)
{
    struct call_log *lg = calloc(1, sizeof *lg);
    uint8_t *pk = malloc(PK_LEN);
    uint8_t *sk = malloc(SK_LEN);
    uint8_t *ct = malloc(CT_LEN);
    uint8_t ss[SS_LEN];

    ck_assert(lg != NULL && pk != NULL && sk != NULL && ct != NULL);
    log_init(lg, 7);
    ck_assert_int_eq(sf_sntrup761_keypair(pk, sk, log_rng, lg), 0);
    ck_assert_uint_ge(lg->n, 2 * 761 + 1);
    ck_assert_uint_le(lg->n, sizeof lg->sizes / sizeof lg->sizes[0]);
    ck_assert_uint_eq((lg->n - 1) % 761, 0);
    for (size_t i = 0; i + 1 < lg->n; i++) {
        ck_assert_uint_eq(lg->sizes[i], 4);
    }
    ck_assert_uint_eq(lg->sizes[lg->n - 1], SMALL_LEN);
    ck_assert_mem_eq(sk + RHO_OFF, lg->last, SMALL_LEN); /* rho, stored as drawn */
    lg->n = 0;
    ck_assert_int_eq(sf_sntrup761_enc(ct, ss, pk, log_rng, lg), 0);
    ck_assert_uint_eq(lg->n, 761);
    for (size_t i = 0; i < lg->n; i++) {
        ck_assert_uint_eq(lg->sizes[i], 4);
    }
    drbg_free(&lg->d);
    free(lg);
    free(pk);
    free(sk);
    free(ct);
}
END_TEST

/* A failing source at any stage: an error, and zeroed outputs. */
START_TEST(test_rng_failure)
{
    /* first g value, second, last, first f value (one g for this seed), inside f, last f, rho */
    static const int fail_at[] = { 0, 1, 760, 761, 1000, 1521, -2 };
    struct call_log *lg = calloc(1, sizeof *lg);
    uint8_t *pk = malloc(PK_LEN);
    uint8_t *sk = malloc(SK_LEN);
    uint8_t *ct = malloc(CT_LEN);
    uint8_t ss[SS_LEN];
    uint8_t *zero = calloc(1, SK_LEN);
    size_t ncalls;

    ck_assert(lg != NULL && pk != NULL && sk != NULL && ct != NULL && zero != NULL);
    /* How many calls does a good keypair make from this seed? */
    log_init(lg, 9);
    ck_assert_int_eq(sf_sntrup761_keypair(pk, sk, log_rng, lg), 0);
    ncalls = lg->n;
    ck_assert_uint_eq(ncalls, 2 * 761 + 1);
    drbg_free(&lg->d);
    for (size_t k = 0; k < sizeof fail_at / sizeof fail_at[0]; k++) {
        int at = fail_at[k] == -2 ? (int)ncalls - 1 : fail_at[k];

        log_init(lg, 9);
        lg->fail_at = at;
        memset(pk, 0xaa, PK_LEN);
        memset(sk, 0xaa, SK_LEN);
        ck_assert_int_ne(sf_sntrup761_keypair(pk, sk, log_rng, lg), 0);
        ck_assert_mem_eq(pk, zero, PK_LEN);
        ck_assert_mem_eq(sk, zero, SK_LEN);
        drbg_free(&lg->d);
    }
    log_init(lg, 9);
    ck_assert_int_eq(sf_sntrup761_keypair(pk, sk, log_rng, lg), 0);
    lg->n = 0;
    lg->fail_at = 500;
    memset(ct, 0xaa, CT_LEN);
    memset(ss, 0xaa, SS_LEN);
    ck_assert_int_ne(sf_sntrup761_enc(ct, ss, pk, log_rng, lg), 0);
    ck_assert_mem_eq(ct, zero, CT_LEN);
    ck_assert_mem_eq(ss, zero, SS_LEN);
    drbg_free(&lg->d);
    free(lg);
    free(pk);
    free(sk);
    free(ct);
    free(zero);
}
END_TEST

/* A stuck source (every byte 0 or 0xff) ends: a key, or an error, never a hang. */
START_TEST(test_rng_constant)
{
    struct call_log *lg = calloc(1, sizeof *lg);
    uint8_t *pk = malloc(PK_LEN);
    uint8_t *sk = malloc(SK_LEN);
    uint8_t *ct = malloc(CT_LEN);
    uint8_t ss[SS_LEN];
    uint8_t ss2[SS_LEN];

    ck_assert(lg != NULL && pk != NULL && sk != NULL && ct != NULL);
    log_init(lg, 0);
    lg->constant = _i == 0 ? 0x00 : 0xff;
    if (sf_sntrup761_keypair(pk, sk, log_rng, lg) == 0) {
        ck_assert_int_eq(sf_sntrup761_enc(ct, ss, pk, log_rng, lg), 0);
        ck_assert_int_eq(sf_sntrup761_dec(ss2, ct, sk), 0);
        ck_assert_mem_eq(ss, ss2, SS_LEN);
    }
    drbg_free(&lg->d);
    free(lg);
    free(pk);
    free(sk);
    free(ct);
}
END_TEST

/* ---- round trips and rejection ------------------------------------------------ */

/* Heap buffers of exactly the documented sizes, so ASan sees any overrun. */
struct kem_bufs {
    uint8_t *pk, *sk, *ct, *ss, *ss2;
};

static void
bufs_new(struct kem_bufs *b)
{
    b->pk = malloc(PK_LEN);
    b->sk = malloc(SK_LEN);
    b->ct = malloc(CT_LEN);
    b->ss = malloc(SS_LEN);
    b->ss2 = malloc(SS_LEN);
    ck_assert(b->pk != NULL && b->sk != NULL && b->ct != NULL && b->ss != NULL && b->ss2 != NULL);
}

static void
bufs_free(struct kem_bufs *b)
{
    free(b->pk);
    free(b->sk);
    free(b->ct);
    free(b->ss);
    free(b->ss2);
}

/* Many random keys (OpenSSL's RAND_bytes), a few encapsulations each. */
START_TEST(test_roundtrip_random)
{
    struct kem_bufs b;
    uint8_t prev[SS_LEN] = { 0 };
    uint8_t zero[SS_LEN] = { 0 };

    bufs_new(&b);
    for (int k = 0; k < 12; k++) {
        ck_assert_int_eq(sf_sntrup761_keypair(b.pk, b.sk, NULL, NULL), 0);
        /* sk embeds pk, and caches Hash4(pk) */
        ck_assert_mem_eq(b.sk + 2 * SMALL_LEN, b.pk, PK_LEN);
        {
            uint8_t h4[32];

            hash_b(h4, 4, b.pk, PK_LEN, NULL, 0);
            ck_assert_mem_eq(b.sk + CACHE_OFF, h4, 32);
        }
        for (int e = 0; e < 3; e++) {
            ck_assert_int_eq(sf_sntrup761_enc(b.ct, b.ss, b.pk, NULL, NULL), 0);
            ck_assert_int_eq(sf_sntrup761_dec(b.ss2, b.ct, b.sk), 0);
            ck_assert_mem_eq(b.ss, b.ss2, SS_LEN);
            ck_assert_mem_ne(b.ss, zero, SS_LEN);
            ck_assert_mem_ne(b.ss, prev, SS_LEN);
            memcpy(prev, b.ss, SS_LEN);
        }
    }
    bufs_free(&b);
}
END_TEST

/* Round trips with the KAT-style source too (a different code path for the draws). */
START_TEST(test_roundtrip_callback)
{
    struct kem_bufs b;
    struct drbg d = { 0 };
    uint8_t seed[DRBG_SEED_LEN];

    bufs_new(&b);
    for (int k = 0; k < 6; k++) {
        memset(seed, 0x40 + k, sizeof seed);
        drbg_init(&d, seed);
        ck_assert_int_eq(sf_sntrup761_keypair(b.pk, b.sk, drbg_rng, &d), 0);
        ck_assert_int_eq(sf_sntrup761_enc(b.ct, b.ss, b.pk, drbg_rng, &d), 0);
        ck_assert_int_eq(sf_sntrup761_dec(b.ss2, b.ct, b.sk), 0);
        ck_assert_mem_eq(b.ss, b.ss2, SS_LEN);
    }
    drbg_free(&d);
    bufs_free(&b);
}
END_TEST

/* The implicit-rejection secret: Hash0(Hash3(rho) || ct). */
static void
rejection_secret(uint8_t out[SS_LEN], const uint8_t *sk, const uint8_t *ct)
{
    uint8_t h3[32];

    hash_b(h3, 3, sk + RHO_OFF, SMALL_LEN, NULL, 0);
    hash_b(out, 0, h3, sizeof h3, ct, CT_LEN);
}

/* A changed ciphertext byte (in each region) gives the implicit-rejection secret. */
START_TEST(test_dec_tampered)
{
    /* first byte, inside the rounded encoding, its last byte, the confirmation hash, the end */
    static const size_t where[] = { 0, 1, 333, 700, 1005, 1006, 1007, 1020, CT_LEN - 1 };
    struct kem_bufs b;
    uint8_t want[SS_LEN];

    bufs_new(&b);
    ck_assert_int_eq(sf_sntrup761_keypair(b.pk, b.sk, NULL, NULL), 0);
    ck_assert_int_eq(sf_sntrup761_enc(b.ct, b.ss, b.pk, NULL, NULL), 0);
    /* the honest ciphertext is not the rejection value */
    rejection_secret(want, b.sk, b.ct);
    ck_assert_mem_ne(b.ss, want, SS_LEN);
    for (size_t k = 0; k < sizeof where / sizeof where[0]; k++) {
        for (int bit = 0; bit < 8; bit += 7) {
            b.ct[where[k]] ^= (uint8_t)(1u << bit);
            ck_assert_int_eq(sf_sntrup761_dec(b.ss2, b.ct, b.sk), 0);
            ck_assert_mem_ne(b.ss2, b.ss, SS_LEN);
            rejection_secret(want, b.sk, b.ct);
            ck_assert_mem_eq(b.ss2, want, SS_LEN);
            b.ct[where[k]] ^= (uint8_t)(1u << bit);
        }
    }
    /* and the original still decapsulates */
    ck_assert_int_eq(sf_sntrup761_dec(b.ss2, b.ct, b.sk), 0);
    ck_assert_mem_eq(b.ss2, b.ss, SS_LEN);
    bufs_free(&b);
}
END_TEST

/* Junk ciphertexts (non-canonical encodings included) and a wrong key: rejection, no crash. */
START_TEST(test_dec_junk)
{
    struct kem_bufs b;
    uint8_t *sk2 = malloc(SK_LEN);
    uint8_t *pk2 = malloc(PK_LEN);
    uint8_t want[SS_LEN];

    ck_assert(sk2 != NULL && pk2 != NULL);
    bufs_new(&b);
    ck_assert_int_eq(sf_sntrup761_keypair(b.pk, b.sk, NULL, NULL), 0);
    for (int fill = 0; fill < 3; fill++) {
        if (fill == 2) {
            ck_assert_int_eq(RAND_bytes(b.ct, CT_LEN), 1);
        } else {
            memset(b.ct, fill == 0 ? 0x00 : 0xff, CT_LEN);
        }
        ck_assert_int_eq(sf_sntrup761_dec(b.ss, b.ct, b.sk), 0);
        rejection_secret(want, b.sk, b.ct);
        ck_assert_mem_eq(b.ss, want, SS_LEN);
    }
    /* encapsulated to another key */
    ck_assert_int_eq(sf_sntrup761_keypair(pk2, sk2, NULL, NULL), 0);
    ck_assert_int_eq(sf_sntrup761_enc(b.ct, b.ss, pk2, NULL, NULL), 0);
    ck_assert_int_eq(sf_sntrup761_dec(b.ss2, b.ct, b.sk), 0);
    ck_assert_mem_ne(b.ss2, b.ss, SS_LEN);
    rejection_secret(want, b.sk, b.ct);
    ck_assert_mem_eq(b.ss2, want, SS_LEN);
    /* an all-0xff public key (non-canonical) still encapsulates without a crash */
    memset(pk2, 0xff, PK_LEN);
    ck_assert_int_eq(sf_sntrup761_enc(b.ct, b.ss, pk2, NULL, NULL), 0);
    bufs_free(&b);
    free(sk2);
    free(pk2);
}
END_TEST

/* The shared secret is Hash1(Hash3(Small(r)) || ct): check it against rho swapped in. */
START_TEST(test_dec_secret_format)
{
    struct kem_bufs b;
    uint8_t h3[32];
    uint8_t want[SS_LEN];

    bufs_new(&b);
    ck_assert_int_eq(sf_sntrup761_keypair(b.pk, b.sk, NULL, NULL), 0);
    ck_assert_int_eq(sf_sntrup761_enc(b.ct, b.ss, b.pk, NULL, NULL), 0);
    /* Hash1 over Hash3(rho) is not the secret (it uses Small(r), not rho) ... */
    hash_b(h3, 3, b.sk + RHO_OFF, SMALL_LEN, NULL, 0);
    hash_b(want, 1, h3, sizeof h3, b.ct, CT_LEN);
    ck_assert_mem_ne(b.ss, want, SS_LEN);
    /* ... and changing rho in sk does not change an honest decapsulation */
    b.sk[RHO_OFF] ^= 1;
    ck_assert_int_eq(sf_sntrup761_dec(b.ss2, b.ct, b.sk), 0);
    ck_assert_mem_eq(b.ss2, b.ss, SS_LEN);
    bufs_free(&b);
}
END_TEST

START_TEST(test_api_null)
{
    uint8_t buf[SK_LEN] = { 0 };
    uint8_t ss[SS_LEN];

    ck_assert_int_eq(sf_sntrup761_keypair(NULL, buf, NULL, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_keypair(buf, NULL, NULL, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_enc(NULL, ss, buf, NULL, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_enc(buf, NULL, buf, NULL, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_enc(buf, ss, NULL, NULL, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_dec(NULL, buf, buf), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_dec(ss, NULL, buf), SF_ERR_INVALID);
    ck_assert_int_eq(sf_sntrup761_dec(ss, buf, NULL), SF_ERR_INVALID);
}
END_TEST

static Suite *
sntrup761_suite(void)
{
    Suite *s = suite_create("sntrup761");
    TCase *tc = tcase_create("kat");

    tcase_set_timeout(tc, 300); /* natively about a second; valgrind is far slower */
    tcase_add_test(tc, test_drbg_nist_seeds);
    tcase_add_test(tc, test_kat_reference_all);
    tcase_add_test(tc, test_kat_pqclean_count0);
    tcase_add_test(tc, test_kat_pqclean_all);
    suite_add_tcase(s, tc);

    tc = tcase_create("kem");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rng_call_pattern);
    tcase_add_test(tc, test_rng_failure);
    tcase_add_loop_test(tc, test_rng_constant, 0, 2);
    tcase_add_test(tc, test_roundtrip_random);
    tcase_add_test(tc, test_roundtrip_callback);
    tcase_add_test(tc, test_dec_tampered);
    tcase_add_test(tc, test_dec_junk);
    tcase_add_test(tc, test_dec_secret_format);
    tcase_add_test(tc, test_api_null);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(sntrup761_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
