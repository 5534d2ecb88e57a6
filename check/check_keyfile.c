/*
 * check/check_keyfile.c -- tests for src/bcrypt_pbkdf.c, src/keyfile.c
 * (openssh-key-v1 decryption, public key of a private key file),
 * src/pubfile.c (public key files, MD5 fingerprints, key sizes) and
 * src/keywrite.c (key generation, writing, sshflow_key_fingerprint_file,
 * sshflow_keygen).
 *
 * Owns: bcrypt_pbkdf known-answer vectors (made offline by
 * check/vectors/gen_bcrypt_vectors.py from python3-bcrypt, OpenBSD's C
 * code), Blowfish vectors (Eric Young's published set), payloads crafted
 * here field by field, and a temp dir of keys made at test time by the real
 * /usr/bin/ssh-keygen (every type x openssh / PEM / PKCS#8 x plain /
 * encrypted, every cipher ssh-keygen -Z takes, certificates, RFC 4716
 * exports) that our loader must read and whose `ssh-keygen -l` lines our
 * fingerprint function must reproduce; keys we write must be read back by
 * `ssh-keygen -y`. Must never: need python at run time, touch ~/.ssh, or
 * leave its temp dir behind.
 */
#include "keyfile.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "bcrypt_pbkdf.h"
#include "buf.h"
#include "sshd.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define KG SF_TEST_SSH_KEYGEN_PATH
#define PASS "sshflow-pass1"
#define WRONG_PASS "sshflow-pass2"
#define OSSH_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----"
#define OSSH_END "-----END OPENSSH PRIVATE KEY-----"

/* ---- small helpers ---- */

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *d = NULL;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    d = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_eq(fread(d, 1, (size_t)n, f), (size_t)n);
    d[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return d;
}

static void
spill(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(d, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void
buf_new(struct sf_buf *b)
{
    ck_assert_int_eq(sf_buf_alloc(b, 256, SF_BUF_MAX), 0);
}

static bool
buf_eq(const struct sf_buf *a, const struct sf_buf *b)
{
    return sf_buf_len(a) == sf_buf_len(b) &&
           memcmp(sf_buf_ptr(a), sf_buf_ptr(b), sf_buf_len(a)) == 0;
}

/* The payload inside an openssh-key-v1 armour (test-side decoder). */
static void
dearmour(const char *text, size_t len, struct sf_buf *out)
{
    const char *p = strstr(text, OSSH_BEGIN), *end = NULL;
    char *b64 = malloc(len + 1);
    uint8_t *dec = malloc(len);
    size_t n = 0, declen = 0;

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_nonnull(b64);
    ck_assert_ptr_nonnull(dec);
    end = strstr(p, OSSH_END);
    ck_assert_ptr_nonnull(end);
    for (p += strlen(OSSH_BEGIN); p < end; p++) {
        if (*p != '\n' && *p != '\r') {
            b64[n++] = *p;
        }
    }
    ck_assert_int_eq(sf_base64_decode(b64, n, dec, len, &declen), 0);
    ck_assert_int_eq(sf_buf_put_bytes(out, dec, declen), 0);
    free(b64);
    free(dec);
}

/* Armour n payload bytes again, 70 columns (malloc'd, *lenp bytes). */
static char *
rearmour(const uint8_t *p, size_t n, size_t *lenp)
{
    size_t b64sz = (n + 2) / 3 * 4 + 1, blen, o = 0;
    char *b64 = malloc(b64sz), *text = NULL;

    ck_assert_ptr_nonnull(b64);
    ck_assert_int_eq(sf_base64_encode(p, n, true, b64, b64sz), 0);
    blen = strlen(b64);
    text = malloc(blen + blen / 70 + 128);
    ck_assert_ptr_nonnull(text);
    o += (size_t)sprintf(text + o, "%s\n", OSSH_BEGIN);
    for (size_t i = 0; i < blen; i += 70) {
        size_t k = blen - i < 70 ? blen - i : 70;

        memcpy(text + o, b64 + i, k);
        o += k;
        text[o++] = '\n';
    }
    o += (size_t)sprintf(text + o, "%s\n", OSSH_END);
    free(b64);
    *lenp = o;
    return text;
}

static int
load_text(const char *text, size_t len, const char *pass, struct sf_privkey **k)
{
    int r = sf_privkey_load((const uint8_t *)text, len, pass, k);

    if (r != 0) {
        ck_assert_ptr_null(*k);
    }
    return r;
}

/* Blob of the key in a "type base64 comment" file, decoded here (not by pubfile.c). */
static void
pubblob_of(const char *path, struct sf_buf *out)
{
    size_t len = 0, declen = 0;
    char *text = slurp(path, &len), *b64 = NULL, *end = NULL;
    uint8_t *dec = malloc(len);

    ck_assert_ptr_nonnull(dec);
    b64 = strchr(text, ' ');
    ck_assert_ptr_nonnull(b64);
    b64++;
    end = b64 + strcspn(b64, " \n");
    ck_assert_int_eq(sf_base64_decode(b64, (size_t)(end - b64), dec, len, &declen), 0);
    ck_assert_int_eq(sf_buf_put_bytes(out, dec, declen), 0);
    free(dec);
    free(text);
}

/* Sign with k and verify with the public blob: the private half really is that key's. */
static void
sign_check(struct sf_privkey *k, const struct sf_buf *pubblob)
{
    static const uint8_t msg[] = "sshflow keyfile test message";
    struct sf_pubkey *pub = NULL;
    struct sf_buf sig;
    const char *alg = sf_privkey_type(k);

    if (strcmp(alg, "ssh-rsa") == 0) {
        alg = "rsa-sha2-256";
    }
    buf_new(&sig);
    ck_assert_int_eq(sf_pubkey_from_blob(sf_buf_ptr(pubblob), sf_buf_len(pubblob), &pub), 0);
    ck_assert_int_eq(sf_privkey_sign(k, alg, msg, sizeof(msg), &sig), 0);
    ck_assert_int_eq(sf_pubkey_verify(pub, alg, sf_buf_ptr(&sig), sf_buf_len(&sig), msg,
                                      sizeof(msg)),
                     0);
    sf_pubkey_free(pub);
    sf_buf_free(&sig);
}

/* ---- bcrypt_pbkdf and Blowfish ---- */

struct bcrypt_kat {
    const char *pass;
    size_t passlen;
    const char *salt;
    size_t saltlen;
    unsigned rounds;
    size_t keylen;
    const char *key;
};

/* BEGIN GENERATED bcrypt: check/vectors/gen_bcrypt_vectors.py, bcrypt 3.2.2 */
static const struct bcrypt_kat bcrypt_kats[] = {
    { "\x70\x61\x73\x73\x77\x6f\x72\x64", 8,
      "\x73\x61\x6c\x74", 4,
      4, 32,
      "\x5b\xbf\x0c\xc2\x93\x58\x7f\x1c\x36\x35\x55\x5c\x27\x79\x65\x98"
      "\xd4\x7e\x57\x90\x71\xbf\x42\x7e\x9d\x8f\xbe\x84\x2a\xba\x34\xd9" },
    { "\x70\x61\x73\x73\x77\x6f\x72\x64", 8,
      "\x73\x61\x6c\x74", 4,
      1, 1,
      "\x7a" },
    { "\x73\x73\x68\x66\x6c\x6f\x77", 7,
      "\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x61\x62\x63\x64\x65\x66", 16,
      2, 33,
      "\xd3\x32\x1a\xe0\x22\x86\x65\x10\xf4\x8e\x18\x68\x08\x22\xd0\x9a"
      "\x1a\xc7\xbd\xf9\x6e\x0e\x0e\xaf\x5c\x82\xdb\xfc\x5c\x74\xeb\x11"
      "\x0f" },
    { "\x63\x6f\x72\x72\x65\x63\x74\x20\x68\x6f\x72\x73\x65\x20\x62\x61"
      "\x74\x74\x65\x72\x79\x20\x73\x74\x61\x70\x6c\x65", 28,
      "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f", 16,
      16, 48,
      "\x80\x0e\x37\xc0\x07\x98\x3f\x65\x8e\x60\xa0\xbb\x3d\x6d\x9d\xa4"
      "\x3b\x1a\xdf\x37\x37\x1d\x89\xce\x9a\x55\x06\xd6\xed\x3e\xfc\xf9"
      "\x1f\x79\xd8\xb9\xd7\x61\x7e\xa8\xf9\x8b\xf4\x5c\x36\x2a\x31\x53" },
    { "\x70\x77", 2,
      "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f", 16,
      3, 44,
      "\x34\x25\x70\x21\xbf\x46\xd9\x36\x6c\xc9\x52\xf2\x4c\xb9\x3e\xf5"
      "\xa0\xdb\x9b\x86\x8e\x20\xc6\x35\x0e\x45\x01\x72\x62\x6e\xeb\x54"
      "\x9e\x77\x3b\xb0\x86\x11\x44\x2e\x1c\xd8\x7f\x5b" },
    { "\x70\x61\x73\x73\x00\x77\x6f\x72\x64", 9,
      "\x73\x61\x6c\x74\x00\x73\x61\x6c\x74", 9,
      3, 64,
      "\x67\xff\x21\x5a\x25\x4d\x57\x78\x88\x26\x48\x4e\xe0\xd4\x3c\xd7"
      "\x55\xec\x57\xac\x67\x67\x6c\xc2\x7d\xa9\x5d\x44\x54\xaa\x26\xd6"
      "\x23\xc0\xda\xf5\xa6\x4d\x24\x70\x74\x26\x57\x84\x74\xf7\x3e\x68"
      "\x9a\x6e\x2f\xde\xf9\xd7\xc2\xfe\x2f\x7e\x49\x3e\xdc\xf4\x16\xfb" },
    { "\xff\xff\xff", 3,
      "\x00", 1,
      5, 48,
      "\x32\xe6\x48\xfa\x3e\x2b\xd5\xe2\x78\xea\x31\x8a\xd5\x4f\x0a\xcd"
      "\x1f\xed\x31\x3d\x5a\x48\xaa\xa2\x6c\x46\x70\xc7\x46\xeb\x5d\x1a"
      "\xf9\x32\x7c\xa5\x49\x12\x97\x8e\xed\xf0\xc6\xfb\x33\x18\x96\xb8" },
    { "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41\x41"
      "\x41\x41\x41\x41\x41\x41\x41\x41", 200,
      "\x00\x07\x0e\x15\x1c\x23\x2a\x31\x38\x3f\x46\x4d\x54\x5b\x62\x69"
      "\x70\x77\x7e\x85\x8c\x93\x9a\xa1\xa8\xaf\xb6\xbd\xc4\xcb\xd2\xd9"
      "\xe0\xe7\xee\xf5\xfc\x03\x0a\x11\x18\x1f\x26\x2d\x34\x3b\x42\x49"
      "\x50\x57\x5e\x65\x6c\x73\x7a\x81\x88\x8f\x96\x9d\xa4\xab\xb2\xb9"
      "\xc0\xc7\xce\xd5\xdc\xe3\xea\xf1\xf8\xff\x06\x0d\x14\x1b\x22\x29"
      "\x30\x37\x3e\x45\x4c\x53\x5a\x61\x68\x6f\x76\x7d\x84\x8b\x92\x99"
      "\xa0\xa7\xae\xb5", 100,
      2, 100,
      "\xbf\x6f\x25\x9b\xf6\xbb\x59\x29\xa3\x2a\x1c\xc0\x14\x6c\x20\x8a"
      "\x4f\x6c\x51\x35\xe7\x67\xff\x9f\xad\xe5\x88\xee\x3e\x0e\xd9\x50"
      "\x7b\xc1\x01\x8a\xb0\xc1\x89\x30\xe8\x25\x7a\xf0\x74\x36\x5c\x90"
      "\x91\x45\x04\x26\x58\xf8\x7c\x05\x03\x1c\xbf\xa7\xa6\x75\x5c\xcc"
      "\xa4\x1e\xb1\x32\xa4\xc1\x1e\x4b\x14\x30\x44\x12\xcc\x90\xc5\x7f"
      "\xe5\x82\x7b\x26\xc2\x25\x52\x6a\xc5\x10\x3e\xe1\x65\x4f\xe9\xf6"
      "\xd1\xdb\xf2\x08" },
    { "\x6d\x61\x78", 3,
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73"
      "\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73\x73", 1024,
      1, 512,
      "\xab\x5c\xd4\x96\xb8\x9d\xe8\x68\xcf\xbe\x83\x13\xf4\xe2\xbe\xa1"
      "\x47\x41\xc4\xcf\x59\xd5\x55\x79\xe8\xac\xa3\x7d\x57\xda\xb1\x8a"
      "\x09\xe6\x4f\x53\x1c\x0c\x29\x61\x8b\x29\xc2\x18\x7a\xe5\xd6\x7e"
      "\x1c\x47\xe1\x4d\x33\x57\x5f\x0c\x0b\x07\x80\x1e\x1a\x90\xe4\x89"
      "\x17\x4e\x55\x7f\xc8\xca\x0d\x01\xae\x10\x19\x08\x7a\x43\xe8\x31"
      "\xef\x77\x2c\x7d\xce\x64\x64\xd9\x7a\x74\xc4\x82\x6c\x3b\x53\xba"
      "\x3d\x3f\x38\xd8\x32\x63\x06\xd8\x03\x87\x60\xb0\x3c\xfb\x92\x35"
      "\x3f\x8f\x9d\x25\xd6\xe0\x12\xd5\x5d\xad\x40\x8f\x21\x76\x55\x96"
      "\x71\x23\x1a\xc4\x8e\x08\x64\xa5\x7e\xe7\xa9\xaa\x75\xf9\xce\x38"
      "\xa1\x4a\xd1\x05\x5e\x89\x8a\xce\xf6\x0f\x96\x43\x5e\xf3\x41\xaf"
      "\xa5\x8c\x8a\x3a\x09\xfa\x7f\xfb\x85\xe1\x23\xd2\xc6\x89\xa5\x55"
      "\x30\x45\x2e\x29\x38\xd1\xf3\x0e\x54\xde\x7f\xd6\x33\xad\x04\xec"
      "\x8e\x1b\x48\xea\x5c\xff\x19\x0b\xe6\x45\x9c\x50\xcb\x1c\xfc\x62"
      "\x7d\x0d\xc8\xd2\x17\xe7\x81\xf3\xff\x9c\xd6\x7a\xf5\x4e\xec\x0c"
      "\x43\x65\x44\x42\xe7\x3b\x50\x0d\x5f\x22\x79\xf2\x5c\xb6\xf7\x67"
      "\x2f\x95\x1e\x3a\xe8\x2f\x83\xfd\xbc\x53\x09\xa2\x9c\x25\x53\x7b"
      "\x36\x03\x8b\xf5\xf9\xce\xde\x08\x2e\xbe\xfd\x78\x4e\x36\x90\x5c"
      "\x45\xb5\xb7\xba\xb7\xc1\x54\x55\x2c\x9f\x70\x8d\xf1\x1b\xaf\x62"
      "\x53\x66\xec\xac\xb4\x9b\x02\x90\x2e\x49\xa1\x49\x4e\xf7\x86\xb2"
      "\x1f\x81\xfd\x2a\xfc\xcd\x3d\x51\x0a\x6f\x8d\x3f\xc2\x13\x4d\x06"
      "\xd7\xc5\x01\xab\xf3\x91\xb8\x21\x98\x3d\x46\xc1\xc5\x5c\x53\x04"
      "\x42\xf4\xdc\xd4\x17\xe6\x13\x81\xe9\x6e\x2d\x4e\xc9\xb0\x94\x16"
      "\x4c\x38\xea\xa7\x54\x7c\x73\x48\x23\xdb\xf4\x91\x67\x1b\xd3\x9a"
      "\xa5\xbe\xcf\x09\x24\xe8\x33\xc6\x10\x16\x88\xec\x28\x97\x5b\xd8"
      "\x13\xf7\x3e\x4d\x3a\x13\x0b\xa2\x80\x71\xd1\x90\x42\x5b\x14\x9d"
      "\xb5\x79\x46\xe7\xa9\xd6\x9b\xba\x85\xc4\xea\x21\x33\xc2\xd9\xf6"
      "\xd1\x5d\x41\xad\xaa\x5b\xc7\xe6\xec\x55\xfa\x33\xff\xe8\x54\x2d"
      "\xaa\xa6\x9f\x92\xc7\x7b\x32\x85\x3c\x03\xb6\xef\xbd\xc6\x4c\xb2"
      "\x8f\xb1\x42\xad\x67\x76\x3d\x03\x18\xb8\x1f\x9a\x3b\x7a\x43\x6e"
      "\xf8\xa1\xe9\x2b\x89\x79\x98\x1b\x03\x4f\x0a\xf9\x41\x2d\xe1\x67"
      "\x33\xe5\xbb\xc8\x1a\x3f\x06\xae\x9d\xf1\x10\x59\x2a\x03\x42\x4a"
      "\xe1\xcc\xbc\x37\x6e\x8b\xd0\xe2\xcc\xe8\x11\xad\x1d\x5f\x85\xab" },
    { "\x72\x6f\x75\x6e\x64\x73", 6,
      "\x4e\x61\x43\x6c", 4,
      50, 32,
      "\xcf\xb0\xed\xeb\xff\x39\x7d\x28\x3b\x0c\xa1\x61\x14\x2d\xfa\xb4"
      "\x21\x19\x0c\xbe\xe8\x87\x95\x49\xf2\x19\x02\x96\x7a\x3b\x6c\x15" },
};
/* END GENERATED bcrypt */

START_TEST(test_bcrypt_pbkdf_kat)
{
    const struct bcrypt_kat *v = &bcrypt_kats[_i];
    uint8_t key[SF_BCRYPT_KEY_MAX + 1];

    memset(key, 0xa5, sizeof(key));
    ck_assert_int_eq(sf_bcrypt_pbkdf(v->pass, v->passlen, (const uint8_t *)v->salt, v->saltlen,
                                     key, v->keylen, v->rounds),
                     0);
    ck_assert_mem_eq(key, v->key, v->keylen);
    ck_assert_uint_eq(key[v->keylen], 0xa5); /* nothing written past keylen */
}
END_TEST

/* The largest key length (1024: 32 interleaved blocks) is self-consistent: its first
 * bytes are not those of a shorter key (interleaving), and two runs agree. */
START_TEST(test_bcrypt_pbkdf_maxkey)
{
    static uint8_t a[SF_BCRYPT_KEY_MAX], b[SF_BCRYPT_KEY_MAX];
    uint8_t shortkey[32];

    ck_assert_int_eq(sf_bcrypt_pbkdf("max", 3, (const uint8_t *)"salt", 4, a, sizeof(a), 1), 0);
    ck_assert_int_eq(sf_bcrypt_pbkdf("max", 3, (const uint8_t *)"salt", 4, b, sizeof(b), 1), 0);
    ck_assert_mem_eq(a, b, sizeof(a));
    ck_assert_int_eq(sf_bcrypt_pbkdf("max", 3, (const uint8_t *)"salt", 4, shortkey, 32, 1), 0);
    /* Key byte 0 is block 1's byte 0 in both; byte 1 is block 2's byte 0 in the long key. */
    ck_assert_uint_eq(a[0], shortkey[0]);
    ck_assert_mem_ne(a, shortkey, sizeof(shortkey));
}
END_TEST

START_TEST(test_bcrypt_pbkdf_args)
{
    static const uint8_t salt[4] = { 1, 2, 3, 4 };
    uint8_t key[SF_BCRYPT_KEY_MAX + 1], big[SF_BCRYPT_SALT_MAX + 1] = { 0 };

    memset(key, 0xa5, sizeof(key));
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, salt, sizeof(salt), key, 16, 0), SF_ERR_INVALID);
    ck_assert_uint_eq(key[0], 0); /* zeroed on refusal */
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 0, salt, sizeof(salt), key, 16, 1), SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf(NULL, 1, salt, sizeof(salt), key, 16, 1), SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, salt, 0, key, 16, 1), SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, NULL, 4, key, 16, 1), SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, big, sizeof(big), key, 16, 1), SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, salt, sizeof(salt), key, 0, 1), SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, salt, sizeof(salt), key, SF_BCRYPT_KEY_MAX + 1, 1),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, salt, sizeof(salt), NULL, 16, 1), SF_ERR_INVALID);
    /* The bounds themselves are accepted. */
    ck_assert_int_eq(sf_bcrypt_pbkdf("p", 1, big, SF_BCRYPT_SALT_MAX, key, 1, 1), 0);
}
END_TEST

/* Eric Young's Blowfish test vectors (key, plaintext, ciphertext). */
static const struct {
    uint8_t key[8], pt[8], ct[8];
} blf_kats[] = {
    { { 0 }, { 0 }, { 0x4e, 0xf9, 0x97, 0x45, 0x61, 0x98, 0xdd, 0x78 } },
    { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
      { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
      { 0x51, 0x86, 0x6f, 0xd5, 0xb8, 0x5e, 0xcb, 0x8a } },
    { { 0x30, 0, 0, 0, 0, 0, 0, 0 },
      { 0x10, 0, 0, 0, 0, 0, 0, 0x01 },
      { 0x7d, 0x85, 0x6f, 0x9a, 0x61, 0x30, 0x63, 0xf2 } },
    { { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 },
      { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 },
      { 0x24, 0x66, 0xdd, 0x87, 0x8b, 0x96, 0x3c, 0x9d } },
    { { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef },
      { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11 },
      { 0x61, 0xf9, 0xc3, 0x80, 0x22, 0x81, 0xb0, 0x96 } },
};

START_TEST(test_bcrypt_blowfish_kat)
{
    uint8_t out[8];

    ck_assert_int_eq(sf_bcrypt_blowfish_ecb(blf_kats[_i].key, 8, blf_kats[_i].pt, out), 0);
    ck_assert_mem_eq(out, blf_kats[_i].ct, 8);
}
END_TEST

/* ---- openssh-key-v1: our writer, our loader ---- */

struct gen_case {
    const char *type;
    unsigned bits;
};

static const struct gen_case gen_cases[] = {
    { "ed25519", 0 }, { "ecdsa", 256 }, { "ecdsa", 384 }, { "ecdsa", 521 }, { "rsa", 2048 },
};

/* Walk an openssh-key-v1 payload: the fields the writer must have put there. */
static void
check_written_payload(const struct sf_buf *payload, bool enc, const struct sf_buf *pub)
{
    struct sf_buf b, kdf;
    uint8_t magic[15];
    const uint8_t *s = NULL;
    size_t n = 0;
    uint32_t u = 0;

    sf_buf_init_view(&b, sf_buf_ptr(payload), sf_buf_len(payload));
    ck_assert_int_eq(sf_buf_get_bytes(&b, magic, sizeof(magic)), 0);
    ck_assert_mem_eq(magic, "openssh-key-v1", 15);
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, 64), 0);
    ck_assert(n == strlen(enc ? "aes256-ctr" : "none") &&
              memcmp(s, enc ? "aes256-ctr" : "none", n) == 0);
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, 64), 0);
    ck_assert(n == strlen(enc ? "bcrypt" : "none") && memcmp(s, enc ? "bcrypt" : "none", n) == 0);
    ck_assert_int_eq(sf_buf_get_sub(&b, &kdf, 1024), 0);
    if (enc) {
        ck_assert_int_eq(sf_buf_get_string(&kdf, &s, &n, 64), 0);
        ck_assert_uint_eq(n, 16);
        ck_assert_int_eq(sf_buf_get_u32(&kdf, &u), 0);
        ck_assert_uint_eq(u, 1);
    }
    ck_assert_uint_eq(sf_buf_len(&kdf), 0);
    ck_assert_int_eq(sf_buf_get_u32(&b, &u), 0);
    ck_assert_uint_eq(u, 1);
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, SF_KEYBLOB_MAX), 0);
    ck_assert(n == sf_buf_len(pub) && memcmp(s, sf_buf_ptr(pub), n) == 0);
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, SF_BUF_MAX), 0);
    ck_assert_uint_eq(n % (enc ? 16 : 8), 0);
    ck_assert_uint_eq(sf_buf_len(&b), 0); /* no tag for aes256-ctr */
}

/* The armour: BEGIN line, base64 lines of exactly 70 columns but the last, END line. */
static void
check_written_armour(const char *text, size_t len)
{
    const char *p = text, *nl = NULL;
    size_t lines = 0, prev = 70;

    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(text[len - 1], '\n');
    ck_assert(strncmp(text, OSSH_BEGIN "\n", strlen(OSSH_BEGIN) + 1) == 0);
    p += strlen(OSSH_BEGIN) + 1;
    while ((nl = memchr(p, '\n', len - (size_t)(p - text))) != NULL) {
        size_t n = (size_t)(nl - p);

        if (n == strlen(OSSH_END) && memcmp(p, OSSH_END, n) == 0) {
            ck_assert_uint_eq((size_t)(nl + 1 - text), len);
            ck_assert_uint_gt(lines, 0);
            return;
        }
        ck_assert_uint_eq(prev, 70); /* only the last line may be short */
        ck_assert_uint_le(n, 70);
        ck_assert_uint_gt(n, 0);
        prev = n;
        lines++;
        p = nl + 1;
    }
    ck_abort_msg("no END line");
}

START_TEST(test_privkey_write_openssh_roundtrip)
{
    const struct gen_case *g = &gen_cases[_i / 2];
    bool enc = _i % 2 == 1;
    struct sf_privkey *k = NULL, *back = NULL;
    struct sf_buf text, text2, pub, pub2, payload;
    char comment[64], got[64];
    bool has = false;

    buf_new(&text);
    buf_new(&text2);
    buf_new(&pub);
    buf_new(&pub2);
    buf_new(&payload);
    snprintf(comment, sizeof(comment), "round trip %d", _i);
    ck_assert_int_eq(sf_privkey_generate(g->type, g->bits, &k), 0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &pub), 0);
    ck_assert_int_eq(sf_privkey_write_openssh(k, comment, enc ? PASS : NULL, 1, &text), 0);
    check_written_armour((const char *)sf_buf_ptr(&text), sf_buf_len(&text));
    ck_assert_int_eq(sf_buf_put_u8(&text, 0), 0); /* NUL for the test's strstr */
    dearmour((const char *)sf_buf_ptr(&text), sf_buf_len(&text) - 1, &payload);
    check_written_payload(&payload, enc, &pub);

    ck_assert_int_eq(sf_privkey_load_comment(sf_buf_ptr(&text), sf_buf_len(&text) - 1,
                                             enc ? PASS : NULL, &back, got, sizeof(got), &has),
                     0);
    ck_assert(has);
    ck_assert_str_eq(got, comment);
    ck_assert_int_eq(sf_privkey_pubblob(back, &pub2), 0);
    ck_assert(buf_eq(&pub, &pub2));
    sign_check(back, &pub);
    sf_privkey_free(back);
    back = NULL;
    if (enc) {
        ck_assert_int_eq(load_text((const char *)sf_buf_ptr(&text), sf_buf_len(&text) - 1, NULL,
                                   &back),
                         SF_ERR_KEY_ENCRYPTED);
        ck_assert_int_eq(load_text((const char *)sf_buf_ptr(&text), sf_buf_len(&text) - 1,
                                   WRONG_PASS, &back),
                         SF_ERR_KEY_PASSPHRASE);
    }
    /* Random checkint (and salt): the same key never gives the same file twice. */
    ck_assert_int_eq(sf_privkey_write_openssh(k, comment, enc ? PASS : NULL, 1, &text2), 0);
    ck_assert(sf_buf_len(&text2) + 1 == sf_buf_len(&text));
    ck_assert_mem_ne(sf_buf_ptr(&text2), sf_buf_ptr(&text), sf_buf_len(&text2));
    sf_privkey_free(k);
    sf_buf_free(&text);
    sf_buf_free(&text2);
    sf_buf_free(&pub);
    sf_buf_free(&pub2);
    sf_buf_free(&payload);
}
END_TEST

START_TEST(test_privkey_generate_args)
{
    struct sf_privkey *k = (struct sf_privkey *)&k;
    struct sf_buf out;

    ck_assert_int_eq(sf_privkey_generate("dsa", 0, &k), SF_ERR_INVALID);
    ck_assert_ptr_null(k);
    ck_assert_int_eq(sf_privkey_generate("ecdsa", 300, &k), SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_generate("rsa", 1024, &k), SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_generate("rsa", 16385, &k), SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_generate("ed25519", 512, &k), SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_generate(NULL, 0, &k), SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_generate("ed25519", 0, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_generate("ed25519", 256, &k), 0);
    buf_new(&out);
    ck_assert_int_eq(sf_privkey_write_openssh(k, NULL, PASS, SF_KEYFILE_ROUNDS_MAX + 1, &out),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_write_openssh(NULL, NULL, NULL, 1, &out), SF_ERR_INVALID);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    sf_privkey_free(k);
    sf_buf_free(&out);
}
END_TEST

/* ---- crafted openssh-key-v1 payloads: each error gets its own code ---- */

struct craft {
    const char *cipher, *kdf;
    size_t saltlen;
    uint32_t rounds;
    bool kdf_trailing;
    uint32_t nkeys;
    size_t privlen; /* random "encrypted" bytes */
    size_t taglen;  /* bytes after the private string */
};

static const struct craft craft_base = { "aes256-ctr", "bcrypt", 16, 1, false, 1, 48, 0 };

static char *
craft_text(const struct craft *c, size_t *len)
{
    struct sf_privkey *k = NULL;
    struct sf_buf p, kdf, pub;
    uint8_t junk[2048];
    char *text = NULL;

    ck_assert_uint_le(c->privlen, sizeof(junk));
    ck_assert(c->saltlen == (size_t)-1 || c->saltlen <= sizeof(junk));
    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)(i * 131 + 7);
    }
    buf_new(&p);
    buf_new(&kdf);
    buf_new(&pub);
    ck_assert_int_eq(sf_privkey_generate("ed25519", 0, &k), 0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &pub), 0);
    if (c->saltlen != (size_t)-1) {
        ck_assert_int_eq(sf_buf_put_string(&kdf, junk, c->saltlen), 0);
        ck_assert_int_eq(sf_buf_put_u32(&kdf, c->rounds), 0);
    }
    if (c->kdf_trailing) {
        ck_assert_int_eq(sf_buf_put_u8(&kdf, 0), 0);
    }
    ck_assert_int_eq(sf_buf_put_bytes(&p, "openssh-key-v1", 15), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&p, c->cipher), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&p, c->kdf), 0);
    ck_assert_int_eq(sf_buf_put_sub(&p, &kdf), 0);
    ck_assert_int_eq(sf_buf_put_u32(&p, c->nkeys), 0);
    ck_assert_int_eq(sf_buf_put_sub(&p, &pub), 0);
    ck_assert_int_eq(sf_buf_put_string(&p, junk, c->privlen), 0);
    ck_assert_int_eq(sf_buf_put_bytes(&p, junk, c->taglen), 0);
    text = rearmour(sf_buf_ptr(&p), sf_buf_len(&p), len);
    sf_privkey_free(k);
    sf_buf_free(&p);
    sf_buf_free(&kdf);
    sf_buf_free(&pub);
    return text;
}

/* Load the crafted file with a passphrase and without; expect the two codes. */
static void
craft_expect(const struct craft *c, int with_pass, int without)
{
    struct sf_privkey *k = NULL;
    size_t len = 0;
    char *text = craft_text(c, &len);

    ck_assert_int_eq(load_text(text, len, PASS, &k), with_pass);
    ck_assert_int_eq(load_text(text, len, NULL, &k), without);
    free(text);
}

START_TEST(test_privkey_load_crafted_errors)
{
    struct craft c = craft_base;

    /* The base case is well formed: random bytes fail the checkint, i.e. "wrong passphrase". */
    craft_expect(&c, SF_ERR_KEY_PASSPHRASE, SF_ERR_KEY_ENCRYPTED);
    c.cipher = "aes512-ctr";
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c = craft_base;
    c.kdf = "scrypt";
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.kdf = "none";
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c = craft_base;
    c.cipher = "none";
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    /* Rounds: 0 and above the bound are refused before any passphrase matters. */
    c = craft_base;
    c.rounds = 0;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.rounds = SF_KEYFILE_ROUNDS_MAX + 1;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.rounds = 0xffffffffu;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    {
        /* The bound itself is accepted (checked without running 1000 rounds). */
        struct sf_privkey *k = NULL;
        size_t len = 0;
        char *text = NULL;

        c.rounds = SF_KEYFILE_ROUNDS_MAX;
        text = craft_text(&c, &len);
        ck_assert_int_eq(load_text(text, len, NULL, &k), SF_ERR_KEY_ENCRYPTED);
        free(text);
    }
    /* Salt: empty, too long, missing options, trailing bytes in the options. */
    c = craft_base;
    c.saltlen = 0;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.saltlen = SF_BCRYPT_SALT_MAX + 1;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.saltlen = (size_t)-1;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c = craft_base;
    c.kdf_trailing = true;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    /* Private section: empty, not a multiple of the block size. */
    c = craft_base;
    c.privlen = 0;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.privlen = 40;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    /* Tags: none where one is needed, one too many, one where none belongs. */
    c = craft_base;
    c.cipher = "aes256-gcm@openssh.com";
    c.taglen = 16;
    craft_expect(&c, SF_ERR_KEY_PASSPHRASE, SF_ERR_KEY_ENCRYPTED); /* tag check fails */
    c.taglen = 0;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.taglen = 15;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c.taglen = 17;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    c = craft_base;
    c.cipher = "chacha20-poly1305@openssh.com";
    c.taglen = 16;
    craft_expect(&c, SF_ERR_KEY_PASSPHRASE, SF_ERR_KEY_ENCRYPTED);
    c = craft_base;
    c.taglen = 1;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
    /* Two keys. */
    c = craft_base;
    c.nkeys = 2;
    craft_expect(&c, SF_ERR_KEY_TYPE, SF_ERR_KEY_TYPE);
}
END_TEST

START_TEST(test_privkey_load_empty_passphrase)
{
    struct sf_privkey *k = NULL;
    size_t len = 0;
    char *text = craft_text(&craft_base, &len);

    /* bcrypt_pbkdf takes no empty passphrase; "" is a wrong one, not a missing one. */
    ck_assert_int_eq(load_text(text, len, "", &k), SF_ERR_KEY_PASSPHRASE);
    free(text);
}
END_TEST

/* The public key of a private key file comes from its clear header, whatever the cipher. */
START_TEST(test_privkey_file_pubblob_crafted)
{
    struct craft c = craft_base;
    struct sf_buf blob;
    size_t len = 0;
    char *text = NULL;

    buf_new(&blob);
    c.cipher = "aes512-ctr"; /* unsupported, but the header is readable */
    text = craft_text(&c, &len);
    ck_assert_int_eq(sf_privkey_file_pubblob((const uint8_t *)text, len, &blob), 0);
    ck_assert_uint_eq(sf_buf_len(&blob), 51); /* string "ssh-ed25519", string pk(32) */
    free(text);
    sf_buf_reset(&blob);
    c = craft_base;
    c.nkeys = 2;
    text = craft_text(&c, &len);
    ck_assert_int_eq(sf_privkey_file_pubblob((const uint8_t *)text, len, &blob), SF_ERR_KEY_TYPE);
    ck_assert_uint_eq(sf_buf_len(&blob), 0);
    free(text);
    ck_assert_int_eq(sf_privkey_file_pubblob((const uint8_t *)"junk", 4, &blob), SF_ERR_KEY_TYPE);
    ck_assert_int_eq(sf_privkey_file_pubblob(NULL, 0, &blob), SF_ERR_INVALID);
    sf_buf_free(&blob);
}
END_TEST

/* A key type we do not load, in a plain openssh-key-v1 file. */
START_TEST(test_privkey_load_unsupported_type)
{
    struct sf_buf p, priv, pub;
    struct sf_privkey *k = NULL;
    uint8_t v[20];
    size_t len = 0;
    char *text = NULL;

    memset(v, 0x42, sizeof(v));
    buf_new(&p);
    buf_new(&priv);
    buf_new(&pub);
    ck_assert_int_eq(sf_buf_put_cstr(&pub, "ssh-dss"), 0);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(sf_buf_put_mpint(&pub, v, sizeof(v)), 0);
    }
    ck_assert_int_eq(sf_buf_put_u32(&priv, 7), 0);
    ck_assert_int_eq(sf_buf_put_u32(&priv, 7), 0);
    ck_assert_int_eq(sf_buf_put_bytes(&priv, sf_buf_ptr(&pub), sf_buf_len(&pub)), 0);
    ck_assert_int_eq(sf_buf_put_mpint(&priv, v, sizeof(v)), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&priv, "dsa"), 0);
    for (uint8_t i = 1; sf_buf_len(&priv) % 8 != 0; i++) {
        ck_assert_int_eq(sf_buf_put_u8(&priv, i), 0);
    }
    ck_assert_int_eq(sf_buf_put_bytes(&p, "openssh-key-v1", 15), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&p, "none"), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&p, "none"), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&p, ""), 0);
    ck_assert_int_eq(sf_buf_put_u32(&p, 1), 0);
    ck_assert_int_eq(sf_buf_put_sub(&p, &pub), 0);
    ck_assert_int_eq(sf_buf_put_sub(&p, &priv), 0);
    text = rearmour(sf_buf_ptr(&p), sf_buf_len(&p), &len);
    ck_assert_int_eq(load_text(text, len, NULL, &k), SF_ERR_KEY_TYPE);
    free(text);
    sf_buf_free(&p);
    sf_buf_free(&priv);
    sf_buf_free(&pub);
}
END_TEST

/* Ed448 in PKCS#8: OpenSSL reads it, we do not use it. And a wrong PEM passphrase. */
START_TEST(test_privkey_load_pem_errors)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
    BIO *bio = BIO_new(BIO_s_mem());
    struct sf_privkey *k = NULL;
    char *data = NULL;
    long n;

    ck_assert_ptr_nonnull(pk);
    ck_assert_ptr_nonnull(bio);
    ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &data);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(load_text(data, (size_t)n, NULL, &k), SF_ERR_KEY_TYPE);
    BIO_free(bio);
    bio = BIO_new(BIO_s_mem());
    ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pk, EVP_aes_128_cbc(), NULL, 0, NULL,
                                              (void *)PASS),
                     1);
    n = BIO_get_mem_data(bio, &data);
    ck_assert_int_eq(load_text(data, (size_t)n, NULL, &k), SF_ERR_KEY_ENCRYPTED);
    ck_assert_int_eq(load_text(data, (size_t)n, WRONG_PASS, &k), SF_ERR_KEY_PASSPHRASE);
    /* Right passphrase: decrypts, then the type is refused. */
    ck_assert_int_eq(load_text(data, (size_t)n, PASS, &k), SF_ERR_KEY_TYPE);
    BIO_free(bio);
    EVP_PKEY_free(pk);
    ck_assert_int_eq(load_text("-----BEGIN JUNK-----\nAAAA\n-----END JUNK-----\n", 44, NULL, &k),
                     SF_ERR_KEY_TYPE);
}
END_TEST

START_TEST(test_privkey_load_file_unreadable)
{
    char dir[] = "/tmp/sf_check_keyfile_u.XXXXXX", path[128];
    struct sf_privkey *k = NULL;
    char out[256];
    sshflow_error err;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/missing", dir);
    errno = 0;
    ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), SF_ERR_FILE);
    ck_assert_int_eq(errno, ENOENT);
    ck_assert_ptr_null(k);
    errno = 0;
    ck_assert_int_eq(sf_privkey_load_file(dir, NULL, &k), SF_ERR_FILE);
    ck_assert_int_eq(errno, EISDIR);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, NULL, out, sizeof(out), &err),
                     SSHFLOW_ERR_FILE);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_FILE);
    ck_assert_int_eq(err.sys_errno, ENOENT);
    ck_assert_str_eq(out, "");
    /* A file that is no key at all. */
    snprintf(path, sizeof(path), "%s/junk", dir);
    spill(path, "hello\n", 6);
    ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), SF_ERR_KEY_TYPE);
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, NULL, out, sizeof(out), &err),
                     SSHFLOW_ERR_KEY_FORMAT);
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, "sha1", out, sizeof(out), &err),
                     SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ---- public key files ---- */

/* A key made once with ssh-keygen; its fingerprints as `ssh-keygen -l [-E md5]` printed them. */
#define KAT_B64 "AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0GNYmSPvr7PfwweSBead21SpjUhwKhVxLq"
#define KAT_SHA256 "SHA256:ejdggG/9oea+xSyjiGhZaYeO658RYydtcF9to9rnmoI"
#define KAT_MD5 "MD5:19:3d:da:3e:b7:57:c1:12:0b:4f:ef:f8:6d:f4:cc:36"

static void
kat_blob(struct sf_buf *out)
{
    uint8_t dec[64];
    size_t n = 0;

    ck_assert_int_eq(sf_base64_decode(KAT_B64, strlen(KAT_B64), dec, sizeof(dec), &n), 0);
    ck_assert_int_eq(sf_buf_put_bytes(out, dec, n), 0);
}

static int
parse_str(const char *text, struct sf_buf *blob, char *comment, size_t commentsz)
{
    return sf_pubfile_parse((const uint8_t *)text, strlen(text), blob, comment, commentsz);
}

START_TEST(test_pubfile_parse_oneline)
{
    static const char *const good[][2] = {
        { "ssh-ed25519 " KAT_B64 " kat\n", "kat" },
        { "ssh-ed25519 " KAT_B64 "\n", "" },
        { "ssh-ed25519 " KAT_B64, "" },
        { "\n# a comment line\n  \t\nssh-ed25519\t" KAT_B64 "  two  words  \n\n", "two  words  " },
        { "  ssh-ed25519 " KAT_B64 " crlf\r\n", "crlf" },
        { "ssh-ed25519 " KAT_B64 " #not a comment line\n", "#not a comment line" },
    };
    struct sf_buf want, blob;
    char comment[64];

    buf_new(&want);
    buf_new(&blob);
    kat_blob(&want);
    for (size_t i = 0; i < NELEM(good); i++) {
        sf_buf_reset(&blob);
        ck_assert_msg(parse_str(good[i][0], &blob, comment, sizeof(comment)) == 0, "case %zu", i);
        ck_assert(buf_eq(&blob, &want));
        ck_assert_str_eq(comment, good[i][1]);
    }
    /* The comment is optional for the caller. */
    sf_buf_reset(&blob);
    ck_assert_int_eq(parse_str(good[0][0], &blob, NULL, 0), 0);
    ck_assert(buf_eq(&blob, &want));
    sf_buf_free(&want);
    sf_buf_free(&blob);
}
END_TEST

START_TEST(test_pubfile_parse_rfc4716)
{
    static const char *const good[][2] = {
        { "---- BEGIN SSH2 PUBLIC KEY ----\n"
          "Comment: \"256-bit ED25519, converted by me\"\n"
          "AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0GNYmSPvr7PfwweSBead21SpjUhwKhVxLq\n"
          "---- END SSH2 PUBLIC KEY ----\n",
          "256-bit ED25519, converted by me" },
        /* other headers, a continued comment, lowercase tag, CRLF, body split anywhere */
        { "\r\n---- BEGIN SSH2 PUBLIC KEY ----\r\n"
          "Subject: someone\r\n"
          "x-private: a value that goes \\\r\n"
          "on: and on\r\n"
          "comment: \"first part, \\\r\n"
          "second part\"\r\n"
          "AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0\r\n"
          "GNYmSPvr7PfwweSBead21SpjUhwKhVxLq\r\n"
          "---- END SSH2 PUBLIC KEY ----\r\n\r\n",
          "first part, second part" },
        { "---- BEGIN SSH2 PUBLIC KEY ----\n"
          "Comment: unquoted\n"
          "AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0GNYmSPvr7PfwweSBead21SpjUhwKhVxLq\n"
          "---- END SSH2 PUBLIC KEY ----",
          "unquoted" },
        { "---- BEGIN SSH2 PUBLIC KEY ----\n"
          "AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0GNYmSPvr7PfwweSBead21SpjUhwKhVxLq\n"
          "---- END SSH2 PUBLIC KEY ----\n",
          "" },
    };
    struct sf_buf want, blob;
    char comment[64];

    buf_new(&want);
    buf_new(&blob);
    kat_blob(&want);
    for (size_t i = 0; i < NELEM(good); i++) {
        sf_buf_reset(&blob);
        ck_assert_msg(parse_str(good[i][0], &blob, comment, sizeof(comment)) == 0, "case %zu", i);
        ck_assert(buf_eq(&blob, &want));
        ck_assert_str_eq(comment, good[i][1]);
    }
    sf_buf_free(&want);
    sf_buf_free(&blob);
}
END_TEST

static const char rfc_text[] = "---- BEGIN SSH2 PUBLIC KEY ----\n"
                               "Comment: \"c\"\n"
                               "AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0GNYmSPvr7PfwweSBead21\n"
                               "SpjUhwKhVxLq\n"
                               "---- END SSH2 PUBLIC KEY ----\n";
static const char line_text[] = "ssh-ed25519 " KAT_B64 " comment\n";

/* Every prefix of a one-line file: an error until the base64 is whole, then a shorter comment. */
START_TEST(test_pubfile_parse_truncated_oneline)
{
    size_t cut = (size_t)_i, whole = strlen("ssh-ed25519 " KAT_B64);
    struct sf_buf blob;
    char comment[64];
    int r;

    buf_new(&blob);
    ck_assert_int_eq(sf_buf_put_u8(&blob, 0x55), 0); /* something already there stays */
    r = sf_pubfile_parse((const uint8_t *)line_text, cut, &blob, comment, sizeof(comment));
    if (cut < whole) {
        ck_assert_int_eq(r, SF_ERR_KEY_TYPE);
        ck_assert_uint_eq(sf_buf_len(&blob), 1);
        ck_assert_str_eq(comment, "");
    } else {
        ck_assert_int_eq(r, 0);
        ck_assert_uint_eq(sf_buf_len(&blob), 1 + 51);
        ck_assert(strncmp(comment, "comment", strlen(comment)) == 0);
    }
    sf_buf_free(&blob);
}
END_TEST

/* Every prefix of an RFC 4716 file that lacks the whole END line is refused. */
START_TEST(test_pubfile_parse_truncated_rfc4716)
{
    size_t cut = (size_t)_i, whole = strlen(rfc_text) - 1;
    struct sf_buf blob;
    char comment[64];
    int r;

    buf_new(&blob);
    r = sf_pubfile_parse((const uint8_t *)rfc_text, cut, &blob, comment, sizeof(comment));
    if (cut < whole) {
        ck_assert_int_eq(r, SF_ERR_KEY_TYPE);
        ck_assert_uint_eq(sf_buf_len(&blob), 0);
    } else {
        ck_assert_int_eq(r, 0);
        ck_assert_str_eq(comment, "c");
    }
    sf_buf_free(&blob);
}
END_TEST

/* base64 of blob + extra bytes, and a one-line file around it (malloc'd). */
static char *
line_of_blob(const char *type, const uint8_t *blob, size_t n)
{
    size_t sz = (n + 2) / 3 * 4 + 1;
    char *b64 = malloc(sz), *line = malloc(sz + 128);

    ck_assert_ptr_nonnull(b64);
    ck_assert_ptr_nonnull(line);
    ck_assert_int_eq(sf_base64_encode(blob, n, true, b64, sz), 0);
    snprintf(line, sz + 128, "%s %s c\n", type, b64);
    free(b64);
    return line;
}

START_TEST(test_pubfile_parse_bad)
{
    static const char *const bad[] = {
        "",
        "\n\n# only comments\n",
        "ssh-rsa " KAT_B64 " type differs from the blob\n",
        "ssh-ed25519 " KAT_B64 " one\nssh-ed25519 " KAT_B64 " two\n",
        "ssh-ed25519 " KAT_B64 "! bad base64\n",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOFwt7pc8f0GNYmSPvr7PfwweSBead21SpjUhwKhVxL c\n",
        "ssh-ed25519\n",
        "ssh-foo " KAT_B64 "\n",
        "command=\"x\" ssh-ed25519 " KAT_B64 " authorized_keys options are not a .pub\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\n" KAT_B64 "\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\n" KAT_B64 "\n---- END SSH2 PUBLIC KEY ----\nmore\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\nComment: x\\\n---- END SSH2 PUBLIC KEY ----\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\n: empty tag\n" KAT_B64 "\n---- END SSH2 PUBLIC KEY ----\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\nComment: x\n---- END SSH2 PUBLIC KEY ----\n",
        "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA C3Nz\n---- END SSH2 PUBLIC KEY ----\n",
    };
    struct sf_buf blob, kat;
    uint8_t raw[128];
    char comment[8], big[1300], *line = NULL;

    buf_new(&blob);
    buf_new(&kat);
    for (size_t i = 0; i < NELEM(bad); i++) {
        ck_assert_msg(parse_str(bad[i], &blob, NULL, 0) == SF_ERR_KEY_TYPE, "case %zu", i);
        ck_assert_uint_eq(sf_buf_len(&blob), 0);
    }
    /* A blob with a byte after its last field; and one whose length field is oversize. */
    kat_blob(&kat);
    memcpy(raw, sf_buf_ptr(&kat), sf_buf_len(&kat));
    raw[sf_buf_len(&kat)] = 0;
    line = line_of_blob("ssh-ed25519", raw, sf_buf_len(&kat) + 1);
    ck_assert_int_eq(parse_str(line, &blob, NULL, 0), SF_ERR_KEY_TYPE);
    free(line);
    raw[4 + 11 + 3] = 33; /* pk length 33 */
    line = line_of_blob("ssh-ed25519", raw, sf_buf_len(&kat) + 1);
    ck_assert_int_eq(parse_str(line, &blob, NULL, 0), SF_ERR_KEY_TYPE);
    free(line);
    raw[3] = 0xff; /* type name length beyond the blob */
    line = line_of_blob("ssh-ed25519", raw, sf_buf_len(&kat));
    ck_assert_int_eq(parse_str(line, &blob, NULL, 0), SF_ERR_KEY_TYPE);
    free(line);
    /* A comment longer than the caller's buffer. */
    ck_assert_int_eq(parse_str(line_text, &blob, comment, strlen("comment")), SF_ERR_NO_SPACE);
    ck_assert_uint_eq(sf_buf_len(&blob), 0);
    /* An RFC 4716 header value over 1024 bytes. */
    snprintf(big, sizeof(big), "---- BEGIN SSH2 PUBLIC KEY ----\nComment: %01100d\n%s\n"
             "---- END SSH2 PUBLIC KEY ----\n", 0, KAT_B64);
    ck_assert_int_eq(parse_str(big, &blob, NULL, 0), SF_ERR_KEY_TYPE);
    ck_assert_int_eq(sf_pubfile_parse(NULL, 0, &blob, NULL, 0), SF_ERR_INVALID);
    ck_assert_int_eq(sf_pubfile_parse((const uint8_t *)"x", 1, NULL, NULL, 0), SF_ERR_INVALID);
    sf_buf_free(&blob);
    sf_buf_free(&kat);
}
END_TEST

START_TEST(test_fingerprint_md5_kat)
{
    struct sf_buf blob;
    char fp[64];

    buf_new(&blob);
    kat_blob(&blob);
    ck_assert_int_eq(sf_fingerprint_md5(sf_buf_ptr(&blob), sf_buf_len(&blob), fp, sizeof(fp)), 0);
    ck_assert_str_eq(fp, KAT_MD5);
    ck_assert_int_eq(sf_fingerprint_sha256(sf_buf_ptr(&blob), sf_buf_len(&blob), fp, sizeof(fp)),
                     0);
    ck_assert_str_eq(fp, KAT_SHA256);
    ck_assert_int_eq(sf_fingerprint_md5(sf_buf_ptr(&blob), sf_buf_len(&blob), fp,
                                        strlen(KAT_MD5)),
                     SF_ERR_NO_SPACE);
    ck_assert_int_eq(sf_fingerprint_md5(sf_buf_ptr(&blob), sf_buf_len(&blob), fp,
                                        strlen(KAT_MD5) + 1),
                     0);
    ck_assert_str_eq(fp, KAT_MD5);
    sf_buf_free(&blob);
}
END_TEST

/* Blob builders for sf_key_bits. */
static void
blob_mag(struct sf_buf *b, const char *type, const size_t *lens, const uint8_t *tops, size_t n)
{
    uint8_t v[600];

    ck_assert_int_eq(sf_buf_put_cstr(b, type), 0);
    for (size_t i = 0; i < n; i++) {
        memset(v, 0x5a, lens[i]);
        v[0] = tops[i];
        ck_assert_int_eq(sf_buf_put_mpint(b, v, lens[i]), 0);
    }
}

static void
blob_ec(struct sf_buf *b, const char *type, const char *curve, size_t field)
{
    uint8_t q[1 + 2 * 66];

    memset(q, 0x11, sizeof(q));
    q[0] = 0x04;
    ck_assert_int_eq(sf_buf_put_cstr(b, type), 0);
    ck_assert_int_eq(sf_buf_put_cstr(b, curve), 0);
    ck_assert_int_eq(sf_buf_put_string(b, q, 1 + 2 * field), 0);
}

/*
 * A certificate (PROTOCOL.certkeys) around the ed25519 KAT key, with a fake
 * CA signature: the structure is all sf_key_bits looks at.
 */
static void
blob_cert(struct sf_buf *b)
{
    struct sf_buf kat;
    const uint8_t *pk = NULL;

    buf_new(&kat);
    kat_blob(&kat);
    pk = sf_buf_ptr(&kat) + 4 + 11 + 4;
    ck_assert_int_eq(sf_buf_put_cstr(b, "ssh-ed25519-cert-v01@openssh.com"), 0);
    ck_assert_int_eq(sf_buf_put_string(b, "0123456789abcdef0123456789abcdef", 32), 0); /* nonce */
    ck_assert_int_eq(sf_buf_put_string(b, pk, 32), 0);
    ck_assert_int_eq(sf_buf_put_u64(b, 42), 0);         /* serial */
    ck_assert_int_eq(sf_buf_put_u32(b, 1), 0);          /* user cert */
    ck_assert_int_eq(sf_buf_put_cstr(b, "key id"), 0);  /* key id */
    ck_assert_int_eq(sf_buf_put_cstr(b, ""), 0);        /* principals */
    ck_assert_int_eq(sf_buf_put_u64(b, 0), 0);          /* valid after */
    ck_assert_int_eq(sf_buf_put_u64(b, UINT64_MAX), 0); /* valid before */
    ck_assert_int_eq(sf_buf_put_cstr(b, ""), 0);        /* critical options */
    ck_assert_int_eq(sf_buf_put_cstr(b, ""), 0);        /* extensions */
    ck_assert_int_eq(sf_buf_put_cstr(b, ""), 0);        /* reserved */
    ck_assert_int_eq(sf_buf_put_sub(b, &kat), 0);       /* signature key (any blob) */
    ck_assert_int_eq(sf_buf_put_cstr(b, "fake signature"), 0);
    sf_buf_free(&kat);
}

START_TEST(test_key_bits)
{
    static const size_t rsa_lens[] = { 3, 256 }, rsa_odd[] = { 3, 257 }, dsa[] = { 128, 20, 128, 128 };
    static const uint8_t rsa_tops[] = { 0x01, 0x80 }, rsa_odd_tops[] = { 0x01, 0x01 };
    static const uint8_t dsa_tops[] = { 0xff, 0xff, 0x01, 0x01 };
    struct sf_buf b, plain, kat;
    unsigned bits = 0;
    const char *t = NULL;

    buf_new(&b);
    buf_new(&plain);
    buf_new(&kat);
    kat_blob(&kat);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&kat), sf_buf_len(&kat), &bits, &t), 0);
    ck_assert_uint_eq(bits, 256);
    ck_assert_str_eq(t, "ED25519");
    blob_mag(&b, "ssh-rsa", rsa_lens, rsa_tops, 2);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_uint_eq(bits, 2048);
    ck_assert_str_eq(t, "RSA");
    sf_buf_reset(&b);
    blob_mag(&b, "ssh-rsa", rsa_odd, rsa_odd_tops, 2);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_uint_eq(bits, 2049);
    sf_buf_reset(&b);
    blob_mag(&b, "ssh-dss", dsa, dsa_tops, 4);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_uint_eq(bits, 1024);
    ck_assert_str_eq(t, "DSA");
    sf_buf_reset(&b);
    blob_ec(&b, "ecdsa-sha2-nistp521", "nistp521", 66);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_uint_eq(bits, 521);
    ck_assert_str_eq(t, "ECDSA");
    sf_buf_reset(&b);
    blob_ec(&b, "ecdsa-sha2-nistp384", "nistp256", 48); /* curve does not match the type */
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(t);
    sf_buf_reset(&b);
    blob_ec(&b, "sk-ecdsa-sha2-nistp256@openssh.com", "nistp256", 32);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "ssh:"), 0);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_uint_eq(bits, 256);
    ck_assert_str_eq(t, "ECDSA-SK");
    sf_buf_reset(&b);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "sk-ssh-ed25519@openssh.com"), 0);
    ck_assert_int_eq(sf_buf_put_string(&b, sf_buf_ptr(&kat) + 19, 32), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "ssh:"), 0);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_str_eq(t, "ED25519-SK");
    sf_buf_reset(&b);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "ssh-foo"), 0);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), SF_ERR_KEY_TYPE);
    /* A certificate: its display type, and the plain key it carries. */
    sf_buf_reset(&b);
    blob_cert(&b);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), 0);
    ck_assert_uint_eq(bits, 256);
    ck_assert_str_eq(t, "ED25519-CERT");
    ck_assert_int_eq(sf_key_plain_blob(sf_buf_ptr(&b), sf_buf_len(&b), &plain), 0);
    ck_assert(buf_eq(&plain, &kat));
    sf_buf_reset(&plain);
    ck_assert_int_eq(sf_key_plain_blob(sf_buf_ptr(&kat), sf_buf_len(&kat), &plain), 0);
    ck_assert(buf_eq(&plain, &kat));
    /* ... with a byte after its signature. */
    ck_assert_int_eq(sf_buf_put_u8(&b, 0), 0);
    ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), sf_buf_len(&b), &bits, &t), SF_ERR_KEY_TYPE);
    sf_buf_free(&b);
    sf_buf_free(&plain);
    sf_buf_free(&kat);
}
END_TEST

/* Every prefix of a certificate blob is refused, and nothing is appended. */
START_TEST(test_key_bits_cert_truncated)
{
    struct sf_buf b, plain;
    unsigned bits = 0;
    const char *t = NULL;

    buf_new(&b);
    buf_new(&plain);
    blob_cert(&b);
    for (size_t i = 0; i < sf_buf_len(&b); i++) {
        ck_assert_int_eq(sf_key_bits(sf_buf_ptr(&b), i, &bits, &t), SF_ERR_KEY_TYPE);
        ck_assert_int_eq(sf_key_plain_blob(sf_buf_ptr(&b), i, &plain), SF_ERR_KEY_TYPE);
        ck_assert_uint_eq(sf_buf_len(&plain), 0);
    }
    sf_buf_free(&b);
    sf_buf_free(&plain);
}
END_TEST

/* ---- against the real ssh-keygen ---- */

static char kg_dir[64];
static bool kg_have; /* ssh-keygen is installed */
static bool kg_ok;   /* and the fixture made every file */
static char kg_err[4096];

static const char *const kg_keys[] = { "ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa2048" };

enum kg_kind { KG_PLAIN, KG_ENC };

/* The private key files made from each key (ed25519 has no PEM / PKCS#8 form in ssh-keygen). */
static const struct {
    const char *suffix;
    enum kg_kind kind;
    bool openssh;
    const char *head; /* NULL: the PEM head depends on the key type */
} kg_forms[] = {
    { "", KG_PLAIN, true, OSSH_BEGIN },
    { ".enc", KG_ENC, true, OSSH_BEGIN },   /* aes256-ctr, bcrypt */
    { ".gcm", KG_ENC, true, OSSH_BEGIN },   /* aes256-gcm@openssh.com, bcrypt */
    { ".PEM", KG_PLAIN, false, NULL },
    { ".PEM.enc", KG_ENC, false, NULL },
    { ".PKCS8", KG_PLAIN, false, "-----BEGIN PRIVATE KEY-----" },
    { ".PKCS8.enc", KG_ENC, false, "-----BEGIN ENCRYPTED PRIVATE KEY-----" },
};

static const char *const kg_ciphers[] = {
    "aes128-ctr", "aes192-ctr", "aes128-cbc", "aes192-cbc", "aes256-cbc",
    "aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com", "3des-cbc",
};

static int
kg_run(const char *const *argv, const char *input, char *out, size_t outsz)
{
    kg_err[0] = '\0';
    return sf_test_run((char *const *)argv, input, out, outsz, kg_err, sizeof(kg_err), 60000);
}

/*
 * Unchecked fixture (runs once, in the parent process): every key and form,
 * the cipher variants, the -a 1 files the fuzz tests use, certificates, RFC
 * 4716 exports.
 */
static void
kg_setup(void)
{
    static char script[4096];
    const char *argv[] = { "/bin/sh", "-c", script, NULL };

    kg_have = access(KG, X_OK) == 0;
    if (!kg_have) {
        return;
    }
    snprintf(kg_dir, sizeof(kg_dir), "/tmp/sf_check_keyfile.XXXXXX");
    if (mkdtemp(kg_dir) == NULL) {
        snprintf(kg_err, sizeof(kg_err), "mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(script, sizeof(script),
             "set -e; cd '%s'; KG=%s; P=%s\n"
             "mk() {\n"
             "  $KG -q -t $1 $2 -N '' -C \"sf $3\" -f $3 >/dev/null\n"
             "  cp $3 $3.nopub\n"
             "  cp $3 $3.enc; $KG -q -p -a 2 -P '' -N \"$P\" -f $3.enc >/dev/null\n"
             "  cp $3 $3.gcm\n"
             "  $KG -q -p -a 2 -Z aes256-gcm@openssh.com -P '' -N \"$P\" -f $3.gcm >/dev/null\n"
             "  $KG -e -f $3.pub > $3.rfc\n"
             "  if [ $1 != ed25519 ]; then for m in PEM PKCS8; do\n"
             "    cp $3 $3.$m; $KG -q -p -m $m -P '' -N '' -f $3.$m >/dev/null\n"
             "    cp $3 $3.$m.enc; $KG -q -p -m $m -P '' -N \"$P\" -f $3.$m.enc >/dev/null\n"
             "  done; fi\n"
             "}\n"
             "mk rsa '-b 2048' rsa2048 & p1=$!\n"
             "mk ed25519 '' ed25519; mk ecdsa '-b 256' ecdsa256\n"
             "mk ecdsa '-b 384' ecdsa384; mk ecdsa '-b 521' ecdsa521\n"
             "wait $p1\n"
             "for c in aes128-ctr aes192-ctr aes128-cbc aes192-cbc aes256-cbc \\\n"
             "    aes128-gcm@openssh.com chacha20-poly1305@openssh.com 3des-cbc; do\n"
             "  cp ed25519 ed25519.z.$c\n"
             "  $KG -q -p -a 2 -Z $c -P '' -N \"$P\" -f ed25519.z.$c >/dev/null\n"
             "done\n"
             "cp ed25519 fz.ctr; $KG -q -p -a 1 -P '' -N \"$P\" -f fz.ctr >/dev/null\n"
             "cp ed25519 fz.gcm\n"
             "$KG -q -p -a 1 -Z aes128-gcm@openssh.com -P '' -N \"$P\" -f fz.gcm >/dev/null\n"
             "$KG -q -t ed25519 -N '' -C ca -f ca >/dev/null\n"
             "for k in ed25519 ecdsa256 rsa2048; do\n"
             "  $KG -q -s ca -I id-$k -n someone $k.pub 2>/dev/null\n"
             "done\n",
             kg_dir, KG, PASS);
    kg_ok = kg_run(argv, NULL, NULL, 0) == 0;
}

static void
kg_teardown(void)
{
    const char *argv[] = { "/bin/rm", "-rf", kg_dir, NULL };

    if (kg_dir[0] != '\0') {
        (void)kg_run(argv, NULL, NULL, 0);
    }
}

/* False (and a note) if the ssh-keygen tests cannot run here. */
static bool
kg_ready(void)
{
    if (!kg_have) {
        fprintf(stderr, "check_keyfile: %s missing, skipping ssh-keygen interop\n", KG);
        return false;
    }
    ck_assert_msg(kg_ok, "ssh-keygen fixture failed: %s", kg_err);
    return true;
}

static void
kg_path(char *out, size_t outsz, const char *name, const char *suffix)
{
    snprintf(out, outsz, "%s/%s%s", kg_dir, name, suffix);
}

/* True if the armoured openssh-key-v1 text names cipher (proves which cipher ssh-keygen used). */
static bool
payload_has(const char *text, size_t len, const char *cipher)
{
    struct sf_buf p;
    bool found;

    buf_new(&p);
    dearmour(text, len, &p);
    found = memmem(sf_buf_ptr(&p), sf_buf_len(&p), cipher, strlen(cipher)) != NULL;
    sf_buf_free(&p);
    return found;
}

START_TEST(test_keyfile_load_keygen)
{
    const char *name = kg_keys[_i / NELEM(kg_forms)];
    size_t f = (size_t)_i % NELEM(kg_forms), len = 0;
    struct sf_buf want, got, hdr;
    struct sf_privkey *k = (struct sf_privkey *)&k;
    char path[128], comment[64], expect_comment[64];
    const char *head = kg_forms[f].head;
    bool has = false;
    char *text = NULL;

    if (!kg_ready()) {
        return;
    }
    if (!kg_forms[f].openssh && strcmp(name, "ed25519") == 0) {
        return; /* ssh-keygen writes ed25519 in the OpenSSH format only */
    }
    if (head == NULL) {
        head = strncmp(name, "rsa", 3) == 0 ? "-----BEGIN RSA PRIVATE KEY-----"
                                            : "-----BEGIN EC PRIVATE KEY-----";
    }
    kg_path(path, sizeof(path), name, kg_forms[f].suffix);
    text = slurp(path, &len);
    ck_assert_msg(strncmp(text, head, strlen(head)) == 0, "%s does not start with %s", path, head);
    if (strcmp(kg_forms[f].suffix, ".gcm") == 0) {
        ck_assert(payload_has(text, len, "aes256-gcm@openssh.com"));
    } else if (strcmp(kg_forms[f].suffix, ".enc") == 0) {
        ck_assert(payload_has(text, len, "aes256-ctr"));
    }
    buf_new(&want);
    buf_new(&got);
    buf_new(&hdr);
    kg_path(path, sizeof(path), name, ".pub");
    pubblob_of(path, &want);
    kg_path(path, sizeof(path), name, kg_forms[f].suffix);

    /* The public key without the passphrase. */
    if (kg_forms[f].kind == KG_ENC && !kg_forms[f].openssh) {
        ck_assert_int_eq(sf_privkey_file_pubblob((const uint8_t *)text, len, &hdr),
                         SF_ERR_KEY_ENCRYPTED);
    } else {
        ck_assert_int_eq(sf_privkey_file_pubblob((const uint8_t *)text, len, &hdr), 0);
        ck_assert(buf_eq(&hdr, &want));
    }
    if (kg_forms[f].kind == KG_ENC) {
        ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), SF_ERR_KEY_ENCRYPTED);
        ck_assert_ptr_null(k);
        ck_assert_int_eq(sf_privkey_load_file(path, WRONG_PASS, &k), SF_ERR_KEY_PASSPHRASE);
        ck_assert_ptr_null(k);
        ck_assert_int_eq(sf_privkey_load_file(path, "", &k), SF_ERR_KEY_PASSPHRASE);
        ck_assert_int_eq(sf_privkey_load_comment((const uint8_t *)text, len, PASS, &k, comment,
                                                 sizeof(comment), &has),
                         0);
    } else {
        /* A passphrase given for a plain key is not needed, and not an error. */
        ck_assert_int_eq(sf_privkey_load_file(path, PASS, &k), 0);
        sf_privkey_free(k);
        ck_assert_int_eq(sf_privkey_load_comment((const uint8_t *)text, len, NULL, &k, comment,
                                                 sizeof(comment), &has),
                         0);
    }
    ck_assert_int_eq(has, kg_forms[f].openssh);
    if (has) {
        snprintf(expect_comment, sizeof(expect_comment), "sf %s", name);
        ck_assert_str_eq(comment, expect_comment);
    }
    ck_assert_int_eq(sf_privkey_pubblob(k, &got), 0);
    ck_assert(buf_eq(&got, &want));
    sign_check(k, &want);
    sf_privkey_free(k);
    free(text);
    sf_buf_free(&want);
    sf_buf_free(&got);
    sf_buf_free(&hdr);
}
END_TEST

START_TEST(test_keyfile_load_ciphers)
{
    struct sf_buf want, got;
    struct sf_privkey *k = NULL;
    char path[160];
    size_t len = 0;
    char *text = NULL;

    if (!kg_ready()) {
        return;
    }
    buf_new(&want);
    buf_new(&got);
    kg_path(path, sizeof(path), "ed25519", ".pub");
    pubblob_of(path, &want);
    snprintf(path, sizeof(path), "%s/ed25519.z.%s", kg_dir, kg_ciphers[_i]);
    text = slurp(path, &len);
    ck_assert(payload_has(text, len, kg_ciphers[_i]));
    ck_assert_int_eq(load_text(text, len, NULL, &k), SF_ERR_KEY_ENCRYPTED);
    ck_assert_int_eq(load_text(text, len, WRONG_PASS, &k), SF_ERR_KEY_PASSPHRASE);
    ck_assert_int_eq(load_text(text, len, PASS, &k), 0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &got), 0);
    ck_assert(buf_eq(&got, &want));
    sf_privkey_free(k);
    free(text);
    sf_buf_free(&want);
    sf_buf_free(&got);
}
END_TEST

/* The files the fuzz tests take apart; strict: every change must be detected (AEAD). */
static const struct {
    const char *file;
    const char *pass;
    bool strict;
} kg_fuzz[] = {
    { "ed25519", NULL, false },
    { "rsa2048", NULL, false },
    { "ecdsa384", NULL, false },
    { "fz.ctr", PASS, false },
    { "fz.gcm", PASS, true }, /* aes128-gcm: key + IV is one bcrypt block, half the cost */
};

/* Every prefix of the file text, and of the decoded payload armoured again, is refused. */
START_TEST(test_keyfile_truncated)
{
    struct sf_privkey *k = NULL;
    struct sf_buf payload, blob;
    char path[128], *text = NULL, *cut = NULL;
    size_t len = 0, clen = 0;

    if (!kg_ready()) {
        return;
    }
    buf_new(&payload);
    buf_new(&blob);
    kg_path(path, sizeof(path), kg_fuzz[_i].file, "");
    text = slurp(path, &len);
    ck_assert_int_eq(text[len - 1], '\n');
    for (size_t i = 0; i + 1 < len; i++) {
        ck_assert_msg(load_text(text, i, kg_fuzz[_i].pass, &k) != 0, "cut at %zu loaded", i);
        ck_assert_int_ne(sf_privkey_file_pubblob((const uint8_t *)text, i, &blob), 0);
        ck_assert_uint_eq(sf_buf_len(&blob), 0);
    }
    /* Without its final newline the file is still whole. */
    ck_assert_int_eq(load_text(text, len - 1, kg_fuzz[_i].pass, &k), 0);
    sf_privkey_free(k);
    k = NULL;
    dearmour(text, len, &payload);
    for (size_t i = 0; i < sf_buf_len(&payload); i++) {
        cut = rearmour(sf_buf_ptr(&payload), i, &clen);
        ck_assert_msg(load_text(cut, clen, kg_fuzz[_i].pass, &k) != 0, "payload cut at %zu", i);
        free(cut);
    }
    free(text);
    sf_buf_free(&payload);
    sf_buf_free(&blob);
}
END_TEST

/* Offset of the bcrypt rounds field in an openssh-key-v1 payload, or SIZE_MAX if none. */
static size_t
rounds_offset(const struct sf_buf *payload)
{
    struct sf_buf b;
    const uint8_t *s = NULL;
    size_t n = 0;

    sf_buf_init_view(&b, sf_buf_ptr(payload), sf_buf_len(payload));
    ck_assert_int_eq(sf_buf_skip(&b, 15), 0);
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, 64), 0); /* cipher */
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, 64), 0); /* kdf */
    if (n != 6 || memcmp(s, "bcrypt", 6) != 0) {
        return SIZE_MAX;
    }
    ck_assert_int_eq(sf_buf_skip(&b, 4), 0);                 /* kdfoptions length */
    ck_assert_int_eq(sf_buf_get_string(&b, &s, &n, 1024), 0); /* salt */
    return sf_buf_len(payload) - sf_buf_len(&b);
}

/*
 * One bit flipped in every byte of the decoded payload. Nothing may load
 * except, for the unauthenticated forms, the same key with a different
 * comment (the comment bytes have no integrity check without an AEAD).
 */
START_TEST(test_keyfile_flipped)
{
    struct sf_privkey *k = NULL;
    struct sf_buf payload, want, got;
    char path[128], comment[128], orig[128], *text = NULL, *flip = NULL;
    size_t len = 0, flen = 0, loaded = 0, ro;
    bool has = false;
    uint8_t *p = NULL;
    int r;

    if (!kg_ready()) {
        return;
    }
    buf_new(&payload);
    buf_new(&want);
    buf_new(&got);
    kg_path(path, sizeof(path), kg_fuzz[_i].file, "");
    text = slurp(path, &len);
    ck_assert_int_eq(sf_privkey_load_comment((const uint8_t *)text, len, kg_fuzz[_i].pass, &k,
                                             orig, sizeof(orig), &has),
                     0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &want), 0);
    sf_privkey_free(k);
    k = NULL;
    dearmour(text, len, &payload);
    ro = rounds_offset(&payload);
    p = malloc(sf_buf_len(&payload));
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < sf_buf_len(&payload); i++) {
        memcpy(p, sf_buf_ptr(&payload), sf_buf_len(&payload));
        if (ro != SIZE_MAX && i >= ro && i < ro + 4) {
            /*
             * In the rounds field (1) flip a bit that makes it 0 or over the
             * bound: a file may ask for up to 1000 rounds (seconds of KDF),
             * and this test must stay quick.
             */
            p[i] ^= i == ro + 3 ? 0x01 : 0x80;
        } else {
            p[i] ^= (uint8_t)(1u << (i % 8));
        }
        flip = rearmour(p, sf_buf_len(&payload), &flen);
        r = sf_privkey_load_comment((const uint8_t *)flip, flen, kg_fuzz[_i].pass, &k, comment,
                                    sizeof(comment), &has);
        if (r == 0) {
            ck_assert_msg(!kg_fuzz[_i].strict, "flip at %zu went unnoticed", i);
            sf_buf_reset(&got);
            ck_assert_int_eq(sf_privkey_pubblob(k, &got), 0);
            ck_assert_msg(buf_eq(&got, &want), "flip at %zu gave another key", i);
            ck_assert_msg(strcmp(comment, orig) != 0, "flip at %zu changed nothing", i);
            sf_privkey_free(k);
            k = NULL;
            loaded++;
        } else {
            ck_assert_ptr_null(k);
            ck_assert_msg(r == SF_ERR_KEY_TYPE || r == SF_ERR_KEY_PASSPHRASE ||
                              r == SF_ERR_KEY_ENCRYPTED,
                          "flip at %zu: %d", i, r);
        }
        free(flip);
    }
    /* Only the comment's bytes (strlen "sf <name>") can have loaded. */
    ck_assert_uint_le(loaded, strlen(orig));
    free(p);
    free(text);
    sf_buf_free(&payload);
    sf_buf_free(&want);
    sf_buf_free(&got);
}
END_TEST

/* ---- fingerprints: our line against ssh-keygen -l ---- */

static const char *const kg_fp_suffixes[] = {
    ".pub", "", ".nopub", ".enc", ".gcm", ".rfc", ".PEM", ".PKCS8", ".PEM.enc", "-cert.pub",
};

/* The RFC 4716 Comment header of a file ssh-keygen -e wrote (continuations joined, unquoted). */
static void
rfc_comment(const char *path, char *out, size_t outsz)
{
    size_t len = 0, o = 0;
    char *text = slurp(path, &len), *p = strstr(text, "\nComment: ");

    ck_assert_ptr_nonnull(p);
    for (p += strlen("\nComment: "); *p != '\0' && *p != '\n' && o + 1 < outsz; p++) {
        if (p[0] == '\\' && p[1] == '\n') {
            p++;
            continue;
        }
        out[o++] = *p;
    }
    out[o] = '\0';
    if (o >= 2 && out[0] == '"' && out[o - 1] == '"') {
        memmove(out, out + 1, o - 2);
        out[o - 2] = '\0';
    }
    free(text);
}

START_TEST(test_key_fingerprint_file_keygen)
{
    size_t nsuf = NELEM(kg_fp_suffixes);
    const char *name = kg_keys[(size_t)_i / 2 / nsuf];
    const char *suffix = kg_fp_suffixes[(size_t)_i / 2 % nsuf];
    bool md5 = _i % 2 == 1, ed = strcmp(name, "ed25519") == 0;
    char path[128], pubpath[128], ours[1024], theirs[1024], cmt[256], expect[1024];
    const char *argv[] = { KG, "-l", "-E", md5 ? "md5" : "sha256", "-f", path, NULL };
    sshflow_error err;
    char *sp = NULL, *lp = NULL;
    int r, kr;

    if (!kg_ready()) {
        return;
    }
    if (ed && suffix[0] == '.' && (suffix[1] == 'P')) {
        return; /* no PEM / PKCS#8 ed25519 from ssh-keygen */
    }
    if (strcmp(suffix, "-cert.pub") == 0 && strcmp(name, "ed25519") != 0 &&
        strcmp(name, "ecdsa256") != 0 && strcmp(name, "rsa2048") != 0) {
        return;
    }
    kg_path(path, sizeof(path), name, suffix);
    memset(&err, 0, sizeof(err));
    r = sshflow_key_fingerprint_file(path, md5 ? "MD5" : NULL, ours, sizeof(ours), &err);
    theirs[0] = '\0';
    kr = kg_run(argv, NULL, theirs, sizeof(theirs));
    theirs[strcspn(theirs, "\n")] = '\0';
    if (strcmp(suffix, ".PEM.enc") == 0) {
        /* Neither can: no .pub beside it, and the file needs its passphrase. */
        ck_assert_int_ne(kr, 0);
        ck_assert_int_eq(r, SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE);
        ck_assert_int_eq(err.kind, SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE);
        return;
    }
    ck_assert_msg(r == 0, "%s: %s", path, err.detail);
    if (strcmp(suffix, ".rfc") == 0) {
        /* ssh-keygen -l cannot read RFC 4716: the .pub's line, with the Comment header. */
        const char *pargv[] = { KG, "-l", "-E", md5 ? "md5" : "sha256", "-f", pubpath, NULL };

        kg_path(pubpath, sizeof(pubpath), name, ".pub");
        ck_assert_int_eq(kg_run(pargv, NULL, theirs, sizeof(theirs)), 0);
        theirs[strcspn(theirs, "\n")] = '\0';
        rfc_comment(path, cmt, sizeof(cmt));
        sp = strchr(strchr(theirs, ' ') + 1, ' '); /* after "<bits> <fp>" */
        lp = strrchr(theirs, '(');
        ck_assert(sp != NULL && lp != NULL);
        snprintf(expect, sizeof(expect), "%.*s %s %s", (int)(sp - theirs), theirs, cmt, lp);
        ck_assert_str_eq(ours, expect);
        return;
    }
    ck_assert_msg(kr == 0, "ssh-keygen -l -f %s: %s", path, kg_err);
    ck_assert_str_eq(ours, theirs);
}
END_TEST

START_TEST(test_key_fingerprint_file_args)
{
    char path[128], small[16];
    sshflow_error err;

    if (!kg_ready()) {
        return;
    }
    kg_path(path, sizeof(path), "ed25519", ".pub");
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, NULL, small, sizeof(small), &err),
                     SSHFLOW_ERR_INVALID);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, "sha512", small, sizeof(small), &err),
                     SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_key_fingerprint_file(NULL, NULL, small, sizeof(small), &err),
                     SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, NULL, NULL, 0, NULL), SSHFLOW_ERR_INVALID);
}
END_TEST

/* ---- sshflow_keygen: read back by ssh-keygen -y and by our loader ---- */

START_TEST(test_keygen_keygen)
{
    const struct gen_case *g = &gen_cases[_i / 2];
    bool enc = _i % 2 == 1;
    char path[128], pubpath[140], line[2048], theirs[1024], ours[1024], *pub = NULL, *again = NULL;
    const char *argv[] = { KG, "-y", "-P", enc ? PASS : "", "-f", path, NULL };
    const char *largv[] = { KG, "-l", "-f", path, NULL };
    struct sf_privkey *k = NULL;
    struct sf_buf want, got;
    struct stat st;
    sshflow_error err;
    size_t len = 0, len2 = 0;

    if (!kg_ready()) {
        return;
    }
    buf_new(&want);
    buf_new(&got);
    snprintf(path, sizeof(path), "%s/gen%d", kg_dir, _i);
    snprintf(pubpath, sizeof(pubpath), "%s.pub", path);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_keygen(g->type, g->bits, "made by sshflow", enc ? PASS : NULL, path,
                                 &err) == 0,
                  "%s", err.detail);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    pub = slurp(pubpath, &len);
    ck_assert_ptr_nonnull(strstr(pub, " made by sshflow\n"));
    /* ssh-keygen derives the same public key line from our private file. */
    line[0] = '\0';
    ck_assert_msg(kg_run(argv, NULL, line, sizeof(line)) == 0, "ssh-keygen -y: %s", kg_err);
    ck_assert_str_eq(line, pub);
    /* So does our loader. */
    pubblob_of(pubpath, &want);
    if (enc) {
        ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), SF_ERR_KEY_ENCRYPTED);
    }
    ck_assert_int_eq(sf_privkey_load_file(path, enc ? PASS : NULL, &k), 0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &got), 0);
    ck_assert(buf_eq(&got, &want));
    sign_check(k, &want);
    sf_privkey_free(k);
    /* And the fingerprint lines agree. */
    ck_assert_int_eq(kg_run(largv, NULL, theirs, sizeof(theirs)), 0);
    theirs[strcspn(theirs, "\n")] = '\0';
    ck_assert_int_eq(sshflow_key_fingerprint_file(path, NULL, ours, sizeof(ours), &err), 0);
    ck_assert_str_eq(ours, theirs);
    /* No overwriting: the call fails with EEXIST and the files stay as they were. */
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_keygen(g->type, g->bits, NULL, NULL, path, &err), SSHFLOW_ERR_FILE);
    ck_assert_int_eq(err.sys_errno, EEXIST);
    again = slurp(pubpath, &len2);
    ck_assert_str_eq(again, pub);
    free(again);
    free(pub);
    sf_buf_free(&want);
    sf_buf_free(&got);
}
END_TEST

START_TEST(test_keygen_refuse)
{
    char dir[] = "/tmp/sf_check_keyfile_g.XXXXXX", path[128], pubpath[140], link_[140];
    sshflow_error err;
    struct stat st;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/k", dir);
    snprintf(pubpath, sizeof(pubpath), "%s/k.pub", dir);
    snprintf(link_, sizeof(link_), "%s/l", dir);
    /* Only the .pub exists: nothing is written, and no private key is left behind. */
    spill(pubpath, "keep\n", 5);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_keygen("ed25519", 0, NULL, NULL, path, &err), SSHFLOW_ERR_FILE);
    ck_assert_int_eq(err.sys_errno, EEXIST);
    ck_assert_int_eq(stat(path, &st), -1);
    ck_assert_int_eq(errno, ENOENT);
    /* A dangling symlink is not followed. */
    ck_assert_int_eq(symlink(path, link_), 0);
    ck_assert_int_eq(sshflow_keygen("ed25519", 0, NULL, NULL, link_, &err), SSHFLOW_ERR_FILE);
    ck_assert_int_eq(stat(path, &st), -1);
    /* Bad arguments. */
    ck_assert_int_eq(sshflow_keygen("dsa", 0, NULL, NULL, path, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_keygen("rsa", 1024, NULL, NULL, path, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_keygen("ecdsa", 300, NULL, NULL, path, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_keygen("ed25519", 0, "two\nlines", NULL, path, &err),
                     SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_keygen("ed25519", 0, NULL, NULL, NULL, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(stat(path, &st), -1);
    /* The empty passphrase means a plain key; a NULL comment an empty one. */
    ck_assert_int_eq(unlink(pubpath), 0);
    ck_assert_int_eq(sshflow_keygen("ed25519", 0, NULL, "", path, &err), 0);
    {
        struct sf_privkey *k = NULL;
        size_t len = 0;
        char *pub = slurp(pubpath, &len);

        ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), 0);
        sf_privkey_free(k);
        ck_assert_int_eq(pub[len - 2], ' '); /* "type base64 \n", as ssh-keygen -C '' */
        free(pub);
    }
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(unlink(pubpath), 0);
    ck_assert_int_eq(unlink(link_), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

static Suite *
keyfile_suite(void)
{
    Suite *s = suite_create("keyfile");
    TCase *tc = tcase_create("bcrypt");

    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_bcrypt_pbkdf_kat, 0, (int)NELEM(bcrypt_kats));
    tcase_add_test(tc, test_bcrypt_pbkdf_maxkey);
    tcase_add_test(tc, test_bcrypt_pbkdf_args);
    tcase_add_loop_test(tc, test_bcrypt_blowfish_kat, 0, (int)NELEM(blf_kats));
    suite_add_tcase(s, tc);

    tc = tcase_create("openssh");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_privkey_write_openssh_roundtrip, 0, 2 * (int)NELEM(gen_cases));
    tcase_add_test(tc, test_privkey_generate_args);
    tcase_add_test(tc, test_privkey_load_crafted_errors);
    tcase_add_test(tc, test_privkey_load_empty_passphrase);
    tcase_add_test(tc, test_privkey_file_pubblob_crafted);
    tcase_add_test(tc, test_privkey_load_unsupported_type);
    tcase_add_test(tc, test_privkey_load_pem_errors);
    tcase_add_test(tc, test_privkey_load_file_unreadable);
    tcase_add_test(tc, test_keygen_refuse);
    suite_add_tcase(s, tc);

    tc = tcase_create("pubfile");
    tcase_add_test(tc, test_pubfile_parse_oneline);
    tcase_add_test(tc, test_pubfile_parse_rfc4716);
    tcase_add_loop_test(tc, test_pubfile_parse_truncated_oneline, 0, (int)sizeof(line_text));
    tcase_add_loop_test(tc, test_pubfile_parse_truncated_rfc4716, 0, (int)sizeof(rfc_text));
    tcase_add_test(tc, test_pubfile_parse_bad);
    tcase_add_test(tc, test_fingerprint_md5_kat);
    tcase_add_test(tc, test_key_bits);
    tcase_add_test(tc, test_key_bits_cert_truncated);
    suite_add_tcase(s, tc);

    tc = tcase_create("ssh-keygen");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, kg_setup, kg_teardown);
    tcase_add_loop_test(tc, test_keyfile_load_keygen, 0, (int)(NELEM(kg_keys) * NELEM(kg_forms)));
    tcase_add_loop_test(tc, test_keyfile_load_ciphers, 0, (int)NELEM(kg_ciphers));
    tcase_add_loop_test(tc, test_keyfile_truncated, 0, (int)NELEM(kg_fuzz));
    tcase_add_loop_test(tc, test_keyfile_flipped, 0, (int)NELEM(kg_fuzz));
    tcase_add_loop_test(tc, test_key_fingerprint_file_keygen, 0,
                        (int)(2 * NELEM(kg_keys) * NELEM(kg_fp_suffixes)));
    tcase_add_test(tc, test_key_fingerprint_file_args);
    tcase_add_loop_test(tc, test_keygen_keygen, 0, 2 * (int)NELEM(gen_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(keyfile_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
