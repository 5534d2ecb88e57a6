/*
 * check/check_b64.c -- tests for src/b64.c: Base64 and SHA-256 fingerprints.
 *
 * Owns: RFC 4648 s10 vectors both ways, strict-decoder rejections, output
 * size limits, and a fingerprint check against ssh-keygen -l on a key made
 * at test time. Must never: need network or python at run time.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "key.h"

/* RFC 4648 s10 */
static const struct {
    const char *plain, *padded, *unpadded;
} rfc4648[] = {
    { "", "", "" },
    { "f", "Zg==", "Zg" },
    { "fo", "Zm8=", "Zm8" },
    { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" },
    { "fooba", "Zm9vYmE=", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};
#define NVEC ((int)(sizeof(rfc4648) / sizeof(rfc4648[0])))

START_TEST(test_base64_encode_rfc4648)
{
    const char *in = rfc4648[_i].plain;
    char out[16];

    memset(out, 'x', sizeof(out));
    ck_assert_int_eq(sf_base64_encode((const uint8_t *)in, strlen(in), true, out, sizeof(out)),
                     0);
    ck_assert_str_eq(out, rfc4648[_i].padded);
    ck_assert_int_eq(sf_base64_encode((const uint8_t *)in, strlen(in), false, out, sizeof(out)),
                     0);
    ck_assert_str_eq(out, rfc4648[_i].unpadded);
}
END_TEST

START_TEST(test_base64_encode_no_space)
{
    const char *in = rfc4648[_i].plain;
    size_t need_pad = strlen(rfc4648[_i].padded) + 1;
    size_t need_nopad = strlen(rfc4648[_i].unpadded) + 1;
    char out[16];

    /* exactly enough works, one byte less fails */
    ck_assert_int_eq(sf_base64_encode((const uint8_t *)in, strlen(in), true, out, need_pad), 0);
    ck_assert_int_eq(sf_base64_encode((const uint8_t *)in, strlen(in), true, out, need_pad - 1),
                     SF_ERR_NO_SPACE);
    ck_assert_int_eq(sf_base64_encode((const uint8_t *)in, strlen(in), false, out, need_nopad),
                     0);
    ck_assert_int_eq(
        sf_base64_encode((const uint8_t *)in, strlen(in), false, out, need_nopad - 1),
        SF_ERR_NO_SPACE);
}
END_TEST

START_TEST(test_base64_decode_rfc4648)
{
    const char *plain = rfc4648[_i].plain;
    uint8_t out[16];
    size_t n = 99;

    ck_assert_int_eq(sf_base64_decode(rfc4648[_i].padded, strlen(rfc4648[_i].padded), out,
                                      sizeof(out), &n),
                     0);
    ck_assert_uint_eq(n, strlen(plain));
    ck_assert_mem_eq(out, plain, n);
    n = 99;
    ck_assert_int_eq(sf_base64_decode(rfc4648[_i].unpadded, strlen(rfc4648[_i].unpadded), out,
                                      sizeof(out), &n),
                     0);
    ck_assert_uint_eq(n, strlen(plain));
    ck_assert_mem_eq(out, plain, n);
    /* exact output size works, one less fails */
    if (n != 0) {
        ck_assert_int_eq(sf_base64_decode(rfc4648[_i].padded, strlen(rfc4648[_i].padded), out,
                                          strlen(plain), &n),
                         0);
        ck_assert_int_eq(sf_base64_decode(rfc4648[_i].padded, strlen(rfc4648[_i].padded), out,
                                          strlen(plain) - 1, &n),
                         SF_ERR_NO_SPACE);
        ck_assert_uint_eq(n, 0);
    }
}
END_TEST

static const char *const b64_bad[] = {
    "Z",        /* one character cannot carry a byte */
    "Zg=",      /* padding without a full group */
    "Zg===",    /* too much padding */
    "Z===",     /* too much padding */
    "====",     /* only padding */
    "=",        /* only padding */
    "Zh==",     /* non-zero trailing bits */
    "Zm9=",     /* non-zero trailing bits */
    "Zm8==",    /* wrong amount of padding */
    "Zg==Zg==", /* padding in the middle */
    "Zg=a",     /* '=' not at the end */
    " Zg==",    /* whitespace */
    "Zg==\n",   /* line break */
    "Zm 9v",    /* inner space */
    "Zm9v\r\n", /* CRLF */
    "Zm-v",     /* base64url alphabet */
    "Zm_v",     /* base64url alphabet */
    "Zm9v*",    /* junk */
    "Zm9vYmFy=", /* padding after a complete group */
};

START_TEST(test_base64_decode_bad)
{
    const char *in = b64_bad[_i];
    uint8_t out[16];
    size_t n = 99;

    memset(out, 0, sizeof(out));
    ck_assert_int_eq(sf_base64_decode(in, strlen(in), out, sizeof(out), &n), SF_ERR_BAD_FORMAT);
    ck_assert_uint_eq(n, 0);
    for (size_t k = 0; k < sizeof(out); k++) {
        ck_assert_uint_eq(out[k], 0); /* nothing left behind */
    }
}
END_TEST

START_TEST(test_base64_decode_embedded_nul)
{
    uint8_t out[16];
    size_t n = 99;

    ck_assert_int_eq(sf_base64_decode("Zm\0v", 4, out, sizeof(out), &n), SF_ERR_BAD_FORMAT);
    ck_assert_uint_eq(n, 0);
    /* the length counts, not the NUL: "Zm8v" with len 2 is "Zm" -> bad trailing bits */
    ck_assert_int_eq(sf_base64_decode("Zm8v", 2, out, sizeof(out), &n), SF_ERR_BAD_FORMAT);
    ck_assert_int_eq(sf_base64_decode("Zm8v", 3, out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "fo", 2);
}
END_TEST

/* Every byte value and every length 0..70 survive encode+decode, padded and not. */
START_TEST(test_base64_roundtrip)
{
    uint8_t in[256], out[256];
    char text[400];
    size_t n = 0;
    bool pad = _i != 0;

    for (size_t k = 0; k < sizeof(in); k++) {
        in[k] = (uint8_t)(255 - k);
    }
    ck_assert_int_eq(sf_base64_encode(in, sizeof(in), pad, text, sizeof(text)), 0);
    ck_assert_int_eq(sf_base64_decode(text, strlen(text), out, sizeof(out), &n), 0);
    ck_assert_uint_eq(n, sizeof(in));
    ck_assert_mem_eq(out, in, sizeof(in));
    for (size_t len = 0; len <= 70; len++) {
        ck_assert_int_eq(sf_base64_encode(in + 3, len, pad, text, sizeof(text)), 0);
        ck_assert_uint_eq(strlen(text), pad ? (len + 2) / 3 * 4 : (len * 4 + 2) / 3);
        ck_assert_int_eq(sf_base64_decode(text, strlen(text), out, sizeof(out), &n), 0);
        ck_assert_uint_eq(n, len);
        if (len != 0) {
            ck_assert_mem_eq(out, in + 3, len);
        }
    }
}
END_TEST

/* SHA-256 of "" and "abc" (FIPS 180-2), Base64 without padding. */
START_TEST(test_fingerprint_sha256_kat)
{
    char fp[64];

    ck_assert_int_eq(sf_fingerprint_sha256((const uint8_t *)"", 0, fp, sizeof(fp)), 0);
    ck_assert_str_eq(fp, "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
    ck_assert_int_eq(sf_fingerprint_sha256((const uint8_t *)"abc", 3, fp, sizeof(fp)), 0);
    ck_assert_str_eq(fp, "SHA256:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0");
    ck_assert_int_eq(sf_fingerprint_sha256((const uint8_t *)"abc", 3, fp, 51), 0);
    ck_assert_int_eq(sf_fingerprint_sha256((const uint8_t *)"abc", 3, fp, 50), SF_ERR_NO_SPACE);
    ck_assert_str_eq(fp, "");
}
END_TEST

static bool
have_ssh_keygen(void)
{
    return system("command -v ssh-keygen >/dev/null 2>&1") == 0;
}

START_TEST(test_fingerprint_sha256_ssh_keygen)
{
    char dir[] = "/tmp/sf_b64_XXXXXX";
    char cmd[512], line[4096], expect[128], got[64];
    char *type = NULL, *b64 = NULL, *save = NULL;
    uint8_t blob[1024];
    size_t bloblen = 0;
    FILE *f = NULL;

    if (!have_ssh_keygen()) {
        fprintf(stderr, "test_fingerprint_sha256_ssh_keygen: ssh-keygen not found, skipped\n");
        return;
    }
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t ed25519 -N '' -C sftest -f %s/k >/dev/null",
             dir);
    ck_assert_int_eq(system(cmd), 0);

    snprintf(cmd, sizeof(cmd), "%s/k.pub", dir);
    ck_assert_ptr_nonnull(f = fopen(cmd, "r"));
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    fclose(f);
    type = strtok_r(line, " \n", &save);
    b64 = strtok_r(NULL, " \n", &save);
    ck_assert_ptr_nonnull(type);
    ck_assert_ptr_nonnull(b64);
    ck_assert_str_eq(type, "ssh-ed25519");
    ck_assert_int_eq(sf_base64_decode(b64, strlen(b64), blob, sizeof(blob), &bloblen), 0);
    ck_assert_uint_eq(bloblen, 51); /* string "ssh-ed25519" || string 32-byte key */
    ck_assert_int_eq(sf_fingerprint_sha256(blob, bloblen, got, sizeof(got)), 0);

    /* "256 SHA256:... sftest (ED25519)" */
    snprintf(cmd, sizeof(cmd), "ssh-keygen -l -E sha256 -f %s/k.pub", dir);
    ck_assert_ptr_nonnull(f = popen(cmd, "r"));
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
    ck_assert_int_eq(pclose(f), 0);
    ck_assert_int_eq(sscanf(line, "%*s %127s", expect), 1);
    ck_assert_str_eq(got, expect);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *
b64_suite(void)
{
    Suite *s = suite_create("b64");
    TCase *tc = tcase_create("base64");

    tcase_add_loop_test(tc, test_base64_encode_rfc4648, 0, NVEC);
    tcase_add_loop_test(tc, test_base64_encode_no_space, 0, NVEC);
    tcase_add_loop_test(tc, test_base64_decode_rfc4648, 0, NVEC);
    tcase_add_loop_test(tc, test_base64_decode_bad, 0, (int)(sizeof(b64_bad) / sizeof(b64_bad[0])));
    tcase_add_test(tc, test_base64_decode_embedded_nul);
    tcase_add_loop_test(tc, test_base64_roundtrip, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("fingerprint");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_fingerprint_sha256_kat);
    tcase_add_test(tc, test_fingerprint_sha256_ssh_keygen);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(b64_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
