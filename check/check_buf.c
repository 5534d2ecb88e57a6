/*
 * check/check_buf.c -- tests for src/buf.c (struct sf_buf).
 *
 * Owns: the contract tests of the SSH wire reader/writer: every get (good,
 * truncated at every byte, oversize, trailing data, outputs cleared and
 * cursor unchanged on failure), every put (growth ceiling, read-only,
 * fixed storage), mpint per RFC 4251 s5, name-lists, marks, reservations,
 * wiping and allocation failure; plus the err.c/mem.c helpers (error
 * strings, sshflow_strerror, allocation hooks). Must never: depend on
 * timing or on other modules than buf/mem/err.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* The documented invariant, checked from outside after every failure. */
static void
ck_invariant(const struct sf_buf *b)
{
    ck_assert_uint_le(b->rpos, b->wpos);
    ck_assert_uint_le(b->wpos, b->hwm);
    ck_assert_uint_le(b->hwm, b->cap);
    ck_assert_uint_le(b->cap, b->max);
    if (b->owned) {
        ck_assert_uint_le(b->max, SF_BUF_MAX);
    }
}

/* Assert b's readable bytes equal exp[0..n). */
static void
ck_contents(const struct sf_buf *b, const void *exp, size_t n)
{
    ck_assert_uint_eq(sf_buf_len(b), n);
    if (n != 0) {
        ck_assert_mem_eq(sf_buf_ptr(b), exp, n);
    }
}

/* ------------------------------------------------------------ fixed scalars */

static const uint8_t scalars[] = {
    0x7f,                                           /* u8 */
    0x02,                                           /* bool: nonzero = true */
    0xde, 0xad, 0xbe, 0xef,                         /* u32 */
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* u64 */
};

START_TEST(test_buf_get_scalars_good)
{
    struct sf_buf b;
    uint8_t u8 = 0;
    bool bl = false;
    uint32_t u32 = 0;
    uint64_t u64 = 0;

    sf_buf_init_view(&b, scalars, sizeof(scalars));
    ck_assert_int_eq(sf_buf_get_u8(&b, &u8), 0);
    ck_assert_uint_eq(u8, 0x7f);
    ck_assert_int_eq(sf_buf_get_bool(&b, &bl), 0);
    ck_assert(bl);
    ck_assert_int_eq(sf_buf_get_u32(&b, &u32), 0);
    ck_assert_uint_eq(u32, 0xdeadbeefu);
    ck_assert_int_eq(sf_buf_get_u64(&b, &u64), 0);
    ck_assert_uint_eq(u64, 0x0123456789abcdefull);
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
    ck_assert_int_eq(sf_buf_get_u8(&b, &u8), SF_ERR_INCOMPLETE);
}
END_TEST

START_TEST(test_buf_get_bool_zero)
{
    static const uint8_t z[] = { 0x00 };
    struct sf_buf b;
    bool bl = true;

    sf_buf_init_view(&b, z, sizeof(z));
    ck_assert_int_eq(sf_buf_get_bool(&b, &bl), 0);
    ck_assert(!bl);
}
END_TEST

/* _i = number of bytes available (0 .. width-1). */
START_TEST(test_buf_get_u32_truncated)
{
    struct sf_buf b;
    uint32_t v = 99;

    sf_buf_init_view(&b, scalars + 2, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_u32(&b, &v), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(v, 0);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
    ck_invariant(&b);
}
END_TEST

START_TEST(test_buf_get_u64_truncated)
{
    struct sf_buf b;
    uint64_t v = 99;

    sf_buf_init_view(&b, scalars + 6, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_u64(&b, &v), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(v, 0);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
}
END_TEST

START_TEST(test_buf_get_u8_truncated)
{
    struct sf_buf b;
    uint8_t v = 99;
    bool bl = true;

    sf_buf_init_view(&b, NULL, 0);
    ck_assert_int_eq(sf_buf_get_u8(&b, &v), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(v, 0);
    ck_assert_int_eq(sf_buf_get_bool(&b, &bl), SF_ERR_INCOMPLETE);
    ck_assert(!bl);
}
END_TEST

START_TEST(test_buf_get_bytes_good)
{
    struct sf_buf b;
    uint8_t out[4] = { 0 };

    sf_buf_init_view(&b, scalars, sizeof(scalars));
    ck_assert_int_eq(sf_buf_skip(&b, 2), 0);
    ck_assert_int_eq(sf_buf_get_bytes(&b, out, 4), 0);
    ck_assert_mem_eq(out, scalars + 2, 4);
    ck_assert_int_eq(sf_buf_get_bytes(&b, out, 0), 0);
    ck_assert_uint_eq(sf_buf_len(&b), 8);
    ck_assert_int_eq(sf_buf_expect_end(&b), SF_ERR_TRAILING_DATA);
}
END_TEST

START_TEST(test_buf_get_bytes_truncated)
{
    struct sf_buf b;
    uint8_t out[8];

    memset(out, 0xaa, sizeof(out));
    sf_buf_init_view(&b, scalars, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_bytes(&b, out, sizeof(out)), SF_ERR_INCOMPLETE);
    for (size_t k = 0; k < sizeof(out); k++) {
        ck_assert_uint_eq(out[k], 0);
    }
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
    ck_assert_int_eq(sf_buf_skip(&b, (size_t)_i + 1), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
}
END_TEST

START_TEST(test_buf_peek_u32_bounds)
{
    struct sf_buf b;
    uint32_t v = 1;

    sf_buf_init_view(&b, scalars, sizeof(scalars));
    ck_assert_int_eq(sf_buf_peek_u32(&b, 2, &v), 0);
    ck_assert_uint_eq(v, 0xdeadbeefu);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(scalars)); /* peek does not move */
    ck_assert_int_eq(sf_buf_peek_u32(&b, sizeof(scalars) - 4, &v), 0);
    ck_assert_int_eq(sf_buf_peek_u32(&b, sizeof(scalars) - 3, &v), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(v, 0);
    v = 1;
    ck_assert_int_eq(sf_buf_peek_u32(&b, SIZE_MAX - 1, &v), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(v, 0);
}
END_TEST

/* ------------------------------------------------------------------ strings */

static const uint8_t str_abc[] = { 0, 0, 0, 3, 'a', 'b', 'c' };

START_TEST(test_buf_get_string_good)
{
    static const uint8_t msg[] = { 0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0x55 };
    struct sf_buf b;
    const uint8_t *p = NULL;
    size_t n = 99;

    sf_buf_init_view(&b, msg, sizeof(msg));
    ck_assert_int_eq(sf_buf_get_string(&b, &p, &n, 3), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_mem_eq(p, "abc", 3);
    ck_assert_ptr_eq(p, msg + 4); /* zero-copy view */
    ck_assert_int_eq(sf_buf_get_string(&b, &p, &n, 0), 0); /* empty string */
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(sf_buf_expect_end(&b), SF_ERR_TRAILING_DATA);
    ck_assert_uint_eq(sf_buf_len(&b), 1);
}
END_TEST

START_TEST(test_buf_get_string_truncated)
{
    struct sf_buf b;
    const uint8_t *p = (const uint8_t *)1;
    size_t n = 99;

    sf_buf_init_view(&b, str_abc, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_string(&b, &p, &n, 64), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(n, 0);
    ck_invariant(&b);
}
END_TEST

START_TEST(test_buf_get_string_oversize)
{
    static const uint8_t huge[] = { 0xff, 0xff, 0xff, 0xff, 'x' };
    struct sf_buf b;
    const uint8_t *p = (const uint8_t *)1;
    size_t n = 99;

    sf_buf_init_view(&b, str_abc, sizeof(str_abc));
    ck_assert_int_eq(sf_buf_get_string(&b, &p, &n, 2), SF_ERR_TOO_LARGE);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(str_abc));
    sf_buf_init_view(&b, huge, sizeof(huge));
    ck_assert_int_eq(sf_buf_get_string(&b, &p, &n, SF_STRING_MAX), SF_ERR_TOO_LARGE);
    /* With no limit, a length beyond the data is still only "incomplete". */
    ck_assert_int_eq(sf_buf_get_string(&b, &p, &n, SIZE_MAX), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(huge));
}
END_TEST

START_TEST(test_buf_get_sub_good)
{
    /* string { uint32 7, string "hi" } followed by u8 9 */
    static const uint8_t msg[] = { 0, 0, 0, 10, 0, 0, 0, 7, 0, 0, 0, 2, 'h', 'i', 9 };
    struct sf_buf b, sub;
    uint32_t v = 0;
    const uint8_t *p = NULL;
    size_t n = 0;
    uint8_t u = 0;

    sf_buf_init_view(&b, msg, sizeof(msg));
    ck_assert_int_eq(sf_buf_get_sub(&b, &sub, SF_KEYBLOB_MAX), 0);
    ck_assert_int_eq(sf_buf_get_u32(&sub, &v), 0);
    ck_assert_uint_eq(v, 7);
    ck_assert_int_eq(sf_buf_get_string(&sub, &p, &n, 16), 0);
    ck_assert_mem_eq(p, "hi", 2);
    ck_assert_int_eq(sf_buf_expect_end(&sub), 0);
    ck_assert_int_eq(sf_buf_put_u8(&sub, 1), SF_ERR_READONLY);
    ck_assert_ptr_null(sf_buf_mutable_ptr(&sub));
    ck_assert_int_eq(sf_buf_get_u8(&b, &u), 0);
    ck_assert_uint_eq(u, 9);
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
}
END_TEST

START_TEST(test_buf_get_sub_truncated)
{
    struct sf_buf b, sub;

    memset(&sub, 0xaa, sizeof(sub));
    sf_buf_init_view(&b, str_abc, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_sub(&b, &sub, 64), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
    ck_assert_uint_eq(sf_buf_len(&sub), 0);
    ck_assert_ptr_null(sub.d);
}
END_TEST

START_TEST(test_buf_get_sub_oversize)
{
    struct sf_buf b, sub;

    sf_buf_init_view(&b, str_abc, sizeof(str_abc));
    ck_assert_int_eq(sf_buf_get_sub(&b, &sub, 2), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(str_abc));
    ck_assert_int_eq(sf_buf_get_sub(&b, &sub, 3), 0);
    ck_contents(&sub, "abc", 3);
}
END_TEST

START_TEST(test_buf_get_cstr_good)
{
    struct sf_buf b;
    char out[4];

    sf_buf_init_view(&b, str_abc, sizeof(str_abc));
    ck_assert_int_eq(sf_buf_get_cstr(&b, out, sizeof(out)), 0); /* len 3 fits outsz 4 */
    ck_assert_str_eq(out, "abc");
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
}
END_TEST

START_TEST(test_buf_get_cstr_too_long)
{
    struct sf_buf b;
    char out[3];

    memset(out, 'z', sizeof(out));
    sf_buf_init_view(&b, str_abc, sizeof(str_abc));
    ck_assert_int_eq(sf_buf_get_cstr(&b, out, sizeof(out)), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(out[0], 0);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(str_abc));
    ck_assert_int_eq(sf_buf_get_cstr(&b, out, 0), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(str_abc));
}
END_TEST

START_TEST(test_buf_get_cstr_nul)
{
    static const uint8_t msg[] = { 0, 0, 0, 3, 'a', 0, 'c' };
    struct sf_buf b;
    char out[16];

    memset(out, 'z', sizeof(out));
    sf_buf_init_view(&b, msg, sizeof(msg));
    ck_assert_int_eq(sf_buf_get_cstr(&b, out, sizeof(out)), SF_ERR_BAD_FORMAT);
    ck_assert_uint_eq(out[0], 0);
    ck_assert_uint_eq(sf_buf_len(&b), sizeof(msg));
}
END_TEST

START_TEST(test_buf_get_cstr_truncated)
{
    struct sf_buf b;
    char out[16];

    memset(out, 'z', sizeof(out));
    sf_buf_init_view(&b, str_abc, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_cstr(&b, out, sizeof(out)), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(out[0], 0);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
}
END_TEST

/* --------------------------------------------------------------- name-lists */

/* Build "uint32 len || s" into storage and view it. */
static void
view_string(struct sf_buf *b, uint8_t *storage, const char *s, size_t n)
{
    sf_store_be32(storage, (uint32_t)n);
    memcpy(storage + 4, s, n);
    sf_buf_init_view(b, storage, 4 + n);
}

START_TEST(test_buf_get_namelist_good)
{
    uint8_t st[64];
    struct sf_buf b, list;
    const char *name = NULL;
    size_t len = 0;

    view_string(&b, st, "aes128-ctr,x,chacha20-poly1305@openssh.com", 42);
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, SF_NAMELIST_MAX), 0);
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
    ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 1);
    ck_assert_uint_eq(len, 10);
    ck_assert_mem_eq(name, "aes128-ctr", 10);
    ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 1);
    ck_assert_uint_eq(len, 1);
    ck_assert_mem_eq(name, "x", 1);
    ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 1);
    ck_assert_uint_eq(len, 29);
    ck_assert_mem_eq(name, "chacha20-poly1305@openssh.com", 29);
    ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 0);
    ck_assert_ptr_null(name);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 0);
}
END_TEST

START_TEST(test_buf_get_namelist_empty_list)
{
    static const uint8_t msg[] = { 0, 0, 0, 0 };
    struct sf_buf b, list;
    const char *name = (const char *)1;
    size_t len = 9;

    sf_buf_init_view(&b, msg, sizeof(msg));
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, SF_NAMELIST_MAX), 0);
    ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 0);
    ck_assert_ptr_null(name);
    ck_assert_uint_eq(len, 0);
}
END_TEST

static const char *const bad_lists[] = {
    ",", ",a", "a,", "a,,b", ",,", "a b", "a\tb", "a\x7f", "a\x80", "a\nb", "a,b,",
};

START_TEST(test_buf_get_namelist_bad)
{
    const char *s = bad_lists[_i];
    uint8_t st[64];
    struct sf_buf b, list;

    view_string(&b, st, s, strlen(s));
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, SF_NAMELIST_MAX), SF_ERR_BAD_FORMAT);
    ck_assert_uint_eq(sf_buf_len(&b), 4 + strlen(s));
    ck_assert_uint_eq(sf_buf_len(&list), 0);
}
END_TEST

START_TEST(test_buf_get_namelist_nul)
{
    uint8_t st[16];
    struct sf_buf b, list;

    view_string(&b, st, "ab\0c", 4);
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, SF_NAMELIST_MAX), SF_ERR_BAD_FORMAT);
    ck_assert_uint_eq(sf_buf_len(&b), 8);
}
END_TEST

START_TEST(test_buf_get_namelist_oversize)
{
    uint8_t st[16];
    struct sf_buf b, list;

    view_string(&b, st, "abc,de", 6);
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, 5), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(sf_buf_len(&b), 10);
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, 6), 0);
}
END_TEST

START_TEST(test_buf_get_namelist_truncated)
{
    uint8_t st[16];
    struct sf_buf b, list;

    view_string(&b, st, "ab,c", 4);
    sf_buf_init_view(&b, st, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_namelist(&b, &list, SF_NAMELIST_MAX), SF_ERR_INCOMPLETE);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
}
END_TEST

/* The iterator alone, on lists that did not go through get_namelist. */
START_TEST(test_sf_namelist_next_empty_names)
{
    static const char *const raw[] = { ",a", "a,", "a,,b" };
    static const int good_before[] = { 0, 0, 1 }; /* names yielded before the error */
    struct sf_buf list;
    const char *name = NULL;
    size_t len = 0;

    for (size_t k = 0; k < sizeof(raw) / sizeof(raw[0]); k++) {
        sf_buf_init_view(&list, raw[k], strlen(raw[k]));
        for (int j = 0; j < good_before[k]; j++) {
            ck_assert_int_eq(sf_namelist_next(&list, &name, &len), 1);
        }
        size_t before = sf_buf_len(&list);
        ck_assert_int_eq(sf_namelist_next(&list, &name, &len), SF_ERR_BAD_FORMAT);
        ck_assert_ptr_null(name);
        ck_assert_uint_eq(len, 0);
        ck_assert_uint_eq(sf_buf_len(&list), before);
    }
}
END_TEST

/* ------------------------------------------------------------------- mpints */

/* RFC 4251 s5 examples (the positive ones). */
static const struct {
    const uint8_t *mag;
    size_t maglen;
    const uint8_t *wire;
    size_t wirelen;
} mpint_vec[] = {
    { (const uint8_t *)"", 0, (const uint8_t *)"\0\0\0\0", 4 },
    { (const uint8_t *)"\x09\xa3\x78\xf9\xb2\xe3\x32\xa7", 8,
      (const uint8_t *)"\0\0\0\x08\x09\xa3\x78\xf9\xb2\xe3\x32\xa7", 12 },
    { (const uint8_t *)"\x80", 1, (const uint8_t *)"\0\0\0\x02\x00\x80", 6 },
};

START_TEST(test_buf_put_mpint_rfc4251)
{
    uint8_t st[32];
    struct sf_buf b;

    sf_buf_init_mem(&b, st, sizeof(st));
    ck_assert_int_eq(sf_buf_put_mpint(&b, mpint_vec[_i].mag, mpint_vec[_i].maglen), 0);
    ck_contents(&b, mpint_vec[_i].wire, mpint_vec[_i].wirelen);
}
END_TEST

START_TEST(test_buf_get_mpint_pos_rfc4251)
{
    struct sf_buf b;
    const uint8_t *p = NULL;
    size_t n = 99;

    sf_buf_init_view(&b, mpint_vec[_i].wire, mpint_vec[_i].wirelen);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 8), 0);
    ck_assert_uint_eq(n, mpint_vec[_i].maglen);
    if (n != 0) {
        ck_assert_mem_eq(p, mpint_vec[_i].mag, n);
    }
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
}
END_TEST

START_TEST(test_buf_put_mpint_strips_zeros)
{
    static const uint8_t z[] = { 0, 0, 0 };
    static const uint8_t lead[] = { 0, 0, 0x80, 0x01 };
    static const uint8_t lead_exp[] = { 0, 0, 0, 3, 0, 0x80, 0x01 };
    static const uint8_t small[] = { 0, 0x7f };
    static const uint8_t small_exp[] = { 0, 0, 0, 1, 0x7f };
    uint8_t st[32];
    struct sf_buf b;

    sf_buf_init_mem(&b, st, sizeof(st));
    ck_assert_int_eq(sf_buf_put_mpint(&b, z, sizeof(z)), 0);
    ck_contents(&b, "\0\0\0\0", 4);
    sf_buf_reset(&b);
    ck_assert_int_eq(sf_buf_put_mpint(&b, lead, sizeof(lead)), 0);
    ck_contents(&b, lead_exp, sizeof(lead_exp));
    sf_buf_reset(&b);
    ck_assert_int_eq(sf_buf_put_mpint(&b, small, sizeof(small)), 0);
    ck_contents(&b, small_exp, sizeof(small_exp));
}
END_TEST

static const struct {
    const char *wire;
    size_t len;
} mpint_bad[] = {
    { "\0\0\0\x02\xed\xcc", 6 },         /* RFC 4251: -1234 */
    { "\0\0\0\x05\xff\x21\x52\x41\x11", 9 }, /* RFC 4251: -deadbeef */
    { "\0\0\0\x01\x00", 5 },             /* zero with a byte */
    { "\0\0\0\x02\x00\x7f", 6 },         /* needless leading zero */
    { "\0\0\0\x03\x00\x00\x80", 7 },     /* two leading zeros */
    { "\0\0\0\x01\x80", 5 },             /* -128 */
};

START_TEST(test_buf_get_mpint_pos_bad)
{
    struct sf_buf b;
    const uint8_t *p = (const uint8_t *)1;
    size_t n = 99;

    sf_buf_init_view(&b, mpint_bad[_i].wire, mpint_bad[_i].len);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 64), SF_ERR_BAD_FORMAT);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(sf_buf_len(&b), mpint_bad[_i].len);
}
END_TEST

START_TEST(test_buf_get_mpint_pos_oversize)
{
    struct sf_buf b;
    const uint8_t *p = NULL;
    size_t n = 0;

    /* limit bounds the magnitude: 0x80 is one byte even though it takes two on the wire */
    sf_buf_init_view(&b, mpint_vec[2].wire, mpint_vec[2].wirelen);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 1), 0);
    ck_assert_uint_eq(n, 1);
    sf_buf_init_view(&b, mpint_vec[1].wire, mpint_vec[1].wirelen);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 7), SF_ERR_TOO_LARGE);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(sf_buf_len(&b), mpint_vec[1].wirelen);
    /* 00 80 00: magnitude 2 bytes, wire 3: limit 1 refuses after stripping */
    sf_buf_init_view(&b, "\0\0\0\x03\x00\x80\x00", 7);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 1), SF_ERR_TOO_LARGE);
    ck_assert_uint_eq(sf_buf_len(&b), 7);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 2), 0);
    ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(test_buf_get_mpint_pos_truncated)
{
    struct sf_buf b;
    const uint8_t *p = (const uint8_t *)1;
    size_t n = 99;

    sf_buf_init_view(&b, mpint_vec[1].wire, (size_t)_i);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, 64), SF_ERR_INCOMPLETE);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(sf_buf_len(&b), (size_t)_i);
}
END_TEST

/* --------------------------------------------------------------------- puts */

START_TEST(test_buf_put_all_types)
{
    static const uint8_t exp[] = {
        0x7f, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
        0xcd, 0xef, 'r', 'a', 'w', 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 3, 'a', 'b', 'c',
        0, 0, 0, 2, 'b', 'c', 0, 0, 0, 0,
    };
    uint8_t st[64];
    struct sf_buf b, v;
    uint8_t u = 0;

    sf_buf_init_mem(&b, st, sizeof(st));
    ck_assert_uint_eq(sf_buf_len(&b), 0);
    ck_assert_uint_eq(sf_buf_room(&b), sizeof(st));
    ck_assert_int_eq(sf_buf_put_u8(&b, 0x7f), 0);
    ck_assert_int_eq(sf_buf_put_bool(&b, true), 0);
    ck_assert_int_eq(sf_buf_put_bool(&b, false), 0);
    ck_assert_int_eq(sf_buf_put_u32(&b, 0xdeadbeefu), 0);
    ck_assert_int_eq(sf_buf_put_u64(&b, 0x0123456789abcdefull), 0);
    ck_assert_int_eq(sf_buf_put_bytes(&b, "raw", 3), 0);
    ck_assert_int_eq(sf_buf_put_string(&b, "hi", 2), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "abc"), 0);
    sf_buf_init_view(&v, "abc", 3);
    ck_assert_int_eq(sf_buf_get_u8(&v, &u), 0);
    ck_assert_int_eq(sf_buf_put_sub(&b, &v), 0); /* readable bytes only: "bc" */
    ck_assert_int_eq(sf_buf_put_string(&b, NULL, 0), 0);
    ck_contents(&b, exp, sizeof(exp));
    ck_assert_uint_eq(sf_buf_room(&b), sizeof(st) - sizeof(exp));
    ck_assert_ptr_eq(sf_buf_mutable_ptr(&b), st);
}
END_TEST

START_TEST(test_buf_put_fixed_full)
{
    uint8_t st[7];
    struct sf_buf b;

    sf_buf_init_mem(&b, st, sizeof(st));
    ck_assert_int_eq(sf_buf_put_u32(&b, 1), 0);
    /* a string that does not fit is not written at all */
    ck_assert_int_eq(sf_buf_put_string(&b, "x", 1), SF_ERR_NO_SPACE);
    ck_assert_uint_eq(sf_buf_len(&b), 4);
    ck_assert_int_eq(sf_buf_put_u32(&b, 1), SF_ERR_NO_SPACE);
    ck_assert_int_eq(sf_buf_put_bytes(&b, "abc", 3), 0);
    ck_assert_uint_eq(sf_buf_room(&b), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, 1), SF_ERR_NO_SPACE);
    ck_assert_int_eq(sf_buf_put_mpint(&b, (const uint8_t *)"\x80", 1), SF_ERR_NO_SPACE);
    ck_assert_uint_eq(sf_buf_len(&b), 7);
    ck_invariant(&b);
}
END_TEST

START_TEST(test_buf_put_readonly)
{
    struct sf_buf b;
    struct sf_buf_mark m;
    uint8_t *p = (uint8_t *)1;

    sf_buf_init_view(&b, "abc", 3);
    ck_assert_uint_eq(sf_buf_room(&b), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, 1), SF_ERR_READONLY);
    ck_assert_int_eq(sf_buf_put_u32(&b, 1), SF_ERR_READONLY);
    ck_assert_int_eq(sf_buf_put_string(&b, "x", 1), SF_ERR_READONLY);
    ck_assert_int_eq(sf_buf_put_mpint(&b, (const uint8_t *)"\x01", 1), SF_ERR_READONLY);
    ck_assert_int_eq(sf_buf_reserve(&b, 1, &p), SF_ERR_READONLY);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(sf_buf_open_string(&b, &m), SF_ERR_READONLY);
    ck_contents(&b, "abc", 3);
    sf_buf_compact(&b); /* harmless on a view */
    ck_contents(&b, "abc", 3);
}
END_TEST

START_TEST(test_buf_alloc_growth_limit)
{
    struct sf_buf b;
    uint8_t exp[100];

    ck_assert_int_eq(sf_buf_alloc(&b, 0, 100), 0);
    ck_assert_uint_eq(sf_buf_room(&b), 100);
    for (size_t k = 0; k < 100; k++) {
        exp[k] = (uint8_t)k;
        ck_assert_int_eq(sf_buf_put_u8(&b, (uint8_t)k), 0);
        ck_invariant(&b);
    }
    ck_assert_uint_eq(sf_buf_room(&b), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, 1), SF_ERR_NO_SPACE);
    ck_contents(&b, exp, sizeof(exp));
    sf_buf_free(&b);

    /* growth by doubling from a small start keeps the contents */
    ck_assert_int_eq(sf_buf_alloc(&b, 1, SF_BUF_MAX), 0);
    for (uint32_t k = 0; k < 5000; k++) {
        ck_assert_int_eq(sf_buf_put_u32(&b, k), 0);
    }
    ck_assert_uint_le(b.cap, SF_BUF_MAX);
    for (uint32_t k = 0; k < 5000; k++) {
        uint32_t v = 0;
        ck_assert_int_eq(sf_buf_get_u32(&b, &v), 0);
        ck_assert_uint_eq(v, k);
    }
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
    sf_buf_free(&b);

    /* one put larger than the remaining room fails whole */
    ck_assert_int_eq(sf_buf_alloc(&b, 4, 10), 0);
    ck_assert_int_eq(sf_buf_put_u32(&b, 7), 0);
    ck_assert_int_eq(sf_buf_put_string(&b, "abc", 3), SF_ERR_NO_SPACE);
    ck_assert_uint_eq(sf_buf_len(&b), 4);
    ck_assert_int_eq(sf_buf_put_string(&b, "ab", 2), 0);
    ck_assert_uint_eq(sf_buf_len(&b), 10);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_alloc_invalid)
{
    struct sf_buf b;

    ck_assert_int_eq(sf_buf_alloc(&b, 0, 0), SF_ERR_INVALID);
    ck_assert_int_eq(sf_buf_alloc(&b, 10, 5), SF_ERR_INVALID);
    ck_assert_int_eq(sf_buf_alloc(&b, 0, SF_BUF_MAX + 1), SF_ERR_INVALID);
    ck_assert_ptr_null(b.d);
    sf_buf_free(&b);
    ck_assert_int_eq(sf_buf_alloc(&b, SF_BUF_MAX, SF_BUF_MAX), 0);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_alloc_nomem)
{
    struct sf_buf b;

    sf_alloc_fail_after(1);
    ck_assert_int_eq(sf_buf_alloc(&b, 16, 64), SF_ERR_NOMEM);
    ck_assert_int_eq(sf_buf_alloc(&b, 4, 64), 0); /* only the one allocation failed */
    ck_assert_int_eq(sf_buf_put_u32(&b, 0x01020304), 0);
    sf_alloc_fail_after(1);
    ck_assert_int_eq(sf_buf_put_u8(&b, 5), SF_ERR_NOMEM); /* growth fails */
    ck_contents(&b, "\x01\x02\x03\x04", 4);
    ck_invariant(&b);
    ck_assert_int_eq(sf_buf_put_u8(&b, 5), 0);
    ck_contents(&b, "\x01\x02\x03\x04\x05", 5);
    sf_alloc_fail_after(2); /* second allocation from now */
    void *a = sf_alloc(1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(sf_alloc(1));
    sf_free(a);
    sf_alloc_fail_after(0);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_put_from_self)
{
    struct sf_buf b;

    /* the source lives in b and growth moves it */
    ck_assert_int_eq(sf_buf_alloc(&b, 4, 64), 0);
    ck_assert_int_eq(sf_buf_put_bytes(&b, "abcd", 4), 0);
    ck_assert_int_eq(sf_buf_put_bytes(&b, sf_buf_ptr(&b), 4), 0);
    ck_contents(&b, "abcdabcd", 8);
    ck_assert_int_eq(sf_buf_put_sub(&b, &b), 0);
    ck_contents(&b, "abcdabcd\0\0\0\x08" "abcdabcd", 20);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_reserve_pins)
{
    struct sf_buf b;
    uint8_t *p = NULL;

    ck_assert_int_eq(sf_buf_alloc(&b, 8, 64), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, 0xaa), 0);
    ck_assert_int_eq(sf_buf_reserve(&b, 4, &p), 0); /* fits without growth */
    ck_assert_ptr_eq(p, sf_buf_ptr(&b) + 1);
    memcpy(p, "wxyz", 4);
    ck_contents(&b, "\xaawxyz", 5);
    ck_assert(b.pinned);
    ck_assert_uint_eq(sf_buf_room(&b), 3); /* no growth while pinned */
    ck_assert_int_eq(sf_buf_put_u32(&b, 1), SF_ERR_NO_SPACE);
    ck_assert_int_eq(sf_buf_put_bytes(&b, "123", 3), 0);
    ck_assert_int_eq(sf_buf_reserve(&b, 1, &p), SF_ERR_NO_SPACE);
    ck_assert_ptr_null(p);
    sf_buf_reset(&b); /* unpins */
    ck_assert(!b.pinned);
    ck_assert_int_eq(sf_buf_reserve(&b, 40, &p), 0); /* grows first, then pins */
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(sf_buf_len(&b), 40);
    for (size_t k = 0; k < 40; k++) {
        ck_assert_uint_eq(p[k], 0); /* reset wiped the old bytes */
    }
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_open_close_string)
{
    static const uint8_t exp[] = { 0, 0, 0, 11, 1, 0, 0, 0, 2, 'h', 'i', 0, 0, 0, 0, 9 };
    struct sf_buf b;
    struct sf_buf_mark outer, inner, empty;

    ck_assert_int_eq(sf_buf_alloc(&b, 1, 64), 0); /* growth happens between open and close */
    ck_assert_int_eq(sf_buf_open_string(&b, &outer), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, 1), 0);
    ck_assert_int_eq(sf_buf_open_string(&b, &inner), 0);
    ck_assert_int_eq(sf_buf_put_bytes(&b, "hi", 2), 0);
    ck_assert_int_eq(sf_buf_close_string(&b, &inner), 0);
    ck_assert_int_eq(sf_buf_open_string(&b, &empty), 0);
    ck_assert_int_eq(sf_buf_close_string(&b, &empty), 0);
    ck_assert_int_eq(sf_buf_close_string(&b, &outer), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, 9), 0);
    ck_contents(&b, exp, sizeof(exp));
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_open_close_string_bad)
{
    uint8_t st[6];
    struct sf_buf b;
    struct sf_buf_mark m = { 0 };

    sf_buf_init_mem(&b, st, sizeof(st));
    ck_assert_int_eq(sf_buf_put_bytes(&b, "abc", 3), 0);
    ck_assert_int_eq(sf_buf_open_string(&b, &m), SF_ERR_NO_SPACE);
    ck_assert_uint_eq(sf_buf_len(&b), 3);
    ck_assert_int_eq(sf_buf_close_string(&b, &m), SF_ERR_INVALID); /* failed open */
    m.at = 1;                                                      /* mark past wpos - 4 */
    ck_assert_int_eq(sf_buf_close_string(&b, &m), SF_ERR_INVALID);
    ck_contents(&b, "abc", 3);
}
END_TEST

START_TEST(test_buf_compact_and_reset_wipe)
{
    uint8_t st[16];
    struct sf_buf b;
    uint32_t v = 0;

    memset(st, 0xee, sizeof(st));
    sf_buf_init_mem(&b, st, sizeof(st));
    ck_assert_int_eq(sf_buf_put_bytes(&b, "0123456789", 10), 0);
    ck_assert_int_eq(sf_buf_get_u32(&b, &v), 0);
    sf_buf_compact(&b);
    ck_contents(&b, "456789", 6);
    ck_assert_ptr_eq(sf_buf_ptr(&b), st);
    for (size_t k = 6; k < 10; k++) {
        ck_assert_uint_eq(st[k], 0); /* vacated tail wiped */
    }
    ck_assert_uint_eq(st[10], 0xee); /* never written: untouched */
    ck_assert_uint_eq(sf_buf_room(&b), 10);
    sf_buf_reset(&b);
    ck_assert_uint_eq(sf_buf_len(&b), 0);
    for (size_t k = 0; k < 10; k++) {
        ck_assert_uint_eq(st[k], 0);
    }
    ck_assert_uint_eq(st[10], 0xee);
    ck_assert_int_eq(sf_buf_put_bytes(&b, "ab", 2), 0);
    sf_buf_free(&b);
    ck_assert_uint_eq(st[0], 0);
    ck_assert_uint_eq(st[1], 0);
}
END_TEST

START_TEST(test_buf_free_zeroed)
{
    struct sf_buf b;
    uint8_t u = 1;

    memset(&b, 0, sizeof(b));
    ck_assert_uint_eq(sf_buf_len(&b), 0);
    ck_assert_int_eq(sf_buf_get_u8(&b, &u), SF_ERR_INCOMPLETE);
    ck_assert_int_eq(sf_buf_put_u8(&b, 1), SF_ERR_NO_SPACE);
    sf_buf_reset(&b);
    sf_buf_compact(&b);
    sf_buf_free(&b);
    sf_buf_free(&b);
    sf_buf_free(NULL);
}
END_TEST

/* A put followed by the matching get gives back the value, for every type. */
START_TEST(test_buf_roundtrip)
{
    struct sf_buf b, sub;
    uint8_t big[300];
    const uint8_t *p = NULL;
    size_t n = 0;
    uint64_t v64 = 0;
    char cs[8];

    for (size_t k = 0; k < sizeof(big); k++) {
        big[k] = (uint8_t)(k * 7 + 1);
    }
    big[0] = 0xff;
    ck_assert_int_eq(sf_buf_alloc(&b, 16, 4096), 0);
    ck_assert_int_eq(sf_buf_put_u64(&b, UINT64_MAX - 5), 0);
    ck_assert_int_eq(sf_buf_put_mpint(&b, big, sizeof(big)), 0);
    ck_assert_int_eq(sf_buf_put_string(&b, big, sizeof(big)), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "seven"), 0);
    ck_assert_int_eq(sf_buf_get_u64(&b, &v64), 0);
    ck_assert_uint_eq(v64, UINT64_MAX - 5);
    ck_assert_int_eq(sf_buf_get_mpint_pos(&b, &p, &n, sizeof(big)), 0);
    ck_assert_uint_eq(n, sizeof(big));
    ck_assert_mem_eq(p, big, sizeof(big));
    ck_assert_int_eq(sf_buf_get_sub(&b, &sub, sizeof(big)), 0);
    ck_contents(&sub, big, sizeof(big));
    ck_assert_int_eq(sf_buf_get_cstr(&b, cs, sizeof(cs)), 0);
    ck_assert_str_eq(cs, "seven");
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_buf_large_view)
{
    /* caller storage may exceed SF_BUF_MAX (e.g. a whole known_hosts file) */
    size_t len = (size_t)SF_BUF_MAX + 100;
    uint8_t *mem = calloc(1, len);
    struct sf_buf b;

    ck_assert_ptr_nonnull(mem);
    sf_buf_init_view(&b, mem, len);
    ck_assert_uint_eq(sf_buf_len(&b), len);
    ck_assert_int_eq(sf_buf_skip(&b, len), 0);
    ck_assert_int_eq(sf_buf_expect_end(&b), 0);
    free(mem);
}
END_TEST


/* ------------------------------------------------- err.c and mem.c helpers */

START_TEST(test_sf_err_str_kind)
{
    ck_assert_str_eq(sf_err_str(SF_ERR_OK), "success");
    ck_assert_str_eq(sf_err_str(SF_ERR_INCOMPLETE), "message truncated");
    ck_assert_str_eq(sf_err_str(SF_ERR_INTERNAL), "internal error");
    ck_assert_str_eq(sf_err_str(-12345), "unknown error");
    ck_assert_int_eq(sf_err_kind(SF_ERR_OK), SSHFLOW_OK);
    ck_assert_int_eq(sf_err_kind(SF_ERR_BAD_FORMAT), SSHFLOW_ERR_PROTOCOL);
    ck_assert_int_eq(sf_err_kind(SF_ERR_HOSTKEY_CHANGED), SSHFLOW_ERR_HOSTKEY);
    ck_assert_int_eq(sf_err_kind(SF_ERR_EOF), SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(sf_err_kind(SF_ERR_NOMEM), SSHFLOW_ERR_NOMEM);
    ck_assert_int_eq(sf_err_kind(-12345), SSHFLOW_ERR_INTERNAL);
}
END_TEST

START_TEST(test_sf_err_set_fields)
{
    sshflow_error e;

    memset(&e, 0, sizeof(e));
    e.sys_errno = 5;
    e.disconnect_reason = 7;
    ck_assert_int_eq(sf_err_set(&e, SF_ERR_AUTH, "tried %s", "publickey"), SSHFLOW_ERR_AUTH);
    ck_assert_int_eq(e.kind, SSHFLOW_ERR_AUTH);
    ck_assert_str_eq(e.detail, "tried publickey");
    ck_assert_int_eq(e.sys_errno, 5);          /* left to the caller */
    ck_assert_uint_eq(e.disconnect_reason, 7); /* left to the caller */
    ck_assert_int_eq(sf_err_set(&e, SF_ERR_TIMEOUT, NULL), SSHFLOW_ERR_TIMEOUT);
    ck_assert_str_eq(e.detail, "timed out");
    ck_assert_int_eq(sf_err_set(&e, SF_ERR_MAC, "%s", ""), SSHFLOW_ERR_PROTOCOL);
    ck_assert_str_eq(e.detail, "");
    ck_assert_int_eq(sf_err_set(NULL, SF_ERR_CHANNEL, "x"), SSHFLOW_ERR_CHANNEL);
}
END_TEST

START_TEST(test_sshflow_strerror_format)
{
    sshflow_error e;
    char out[256], small[8];

    memset(&e, 0, sizeof(e));
    (void)sf_err_set(&e, SF_ERR_IO, "read failed");
    e.sys_errno = 32; /* EPIPE */
    ck_assert_str_eq(sshflow_strerror(&e, out, sizeof(out)),
                     "flow failed: read failed (errno 32: Broken pipe)");
    /* the detail already names the error: not repeated */
    (void)sf_err_set(&e, SF_ERR_IO, "write: Broken pipe");
    ck_assert_str_eq(sshflow_strerror(&e, out, sizeof(out)), "flow failed: write: Broken pipe");
    memset(&e, 0, sizeof(e));
    (void)sf_err_set(&e, SF_ERR_DISCONNECT, "server said bye");
    e.disconnect_reason = 11;
    ck_assert_str_eq(sshflow_strerror(&e, out, sizeof(out)),
                     "disconnected by peer: server said bye [reason 11]");
    memset(&e, 0, sizeof(e));
    e.kind = SSHFLOW_ERR_TIMEOUT;
    ck_assert_str_eq(sshflow_strerror(&e, out, sizeof(out)), "timed out");
    /* truncation always NUL-terminates; len 0 writes nothing */
    (void)sf_err_set(&e, SF_ERR_AUTH, "a long detail");
    ck_assert_ptr_eq(sshflow_strerror(&e, small, sizeof(small)), small);
    ck_assert_str_eq(small, "authent");
    small[0] = 'q';
    ck_assert_ptr_eq(sshflow_strerror(&e, small, 0), small);
    ck_assert_uint_eq(small[0], 'q');
    ck_assert_str_eq(sshflow_strerror(NULL, out, sizeof(out)), "success");
}
END_TEST

START_TEST(test_sshflow_err_kind_name_all)
{
    ck_assert_str_eq(sshflow_err_kind_name(SSHFLOW_ERR_PROTOCOL), "protocol error");
    ck_assert_str_eq(sshflow_err_kind_name(SSHFLOW_OK), "success");
    for (int k = SSHFLOW_ERR_INTERNAL; k <= SSHFLOW_ERR_DISCONNECT; k++) {
        ck_assert_str_ne(sshflow_err_kind_name(k), "unknown error");
    }
    ck_assert_str_eq(sshflow_err_kind_name(-100), "unknown error");
    ck_assert_str_eq(sshflow_err_kind_name(3), "unknown error");
}
END_TEST

START_TEST(test_sf_mem_helpers)
{
    char *s = NULL;
    uint8_t *z = NULL;
    uint64_t t0, t1;

    ck_assert_ptr_nonnull(s = sf_strndup("abcdef", 3));
    ck_assert_str_eq(s, "abc");
    sf_free(s);
    ck_assert_ptr_nonnull(s = sf_strndup("ab", 10));
    ck_assert_str_eq(s, "ab");
    sf_freezero(s, 3);
    ck_assert_ptr_nonnull(s = sf_strdup("hello"));
    ck_assert_str_eq(s, "hello");
    sf_free(s);
    ck_assert_ptr_null(sf_strdup(NULL));
    sf_alloc_fail_after(1);
    ck_assert_ptr_null(sf_strdup("x"));
    ck_assert_ptr_nonnull(z = sf_alloc(32));
    for (size_t k = 0; k < 32; k++) {
        ck_assert_uint_eq(z[k], 0); /* zeroed */
    }
    memset(z, 0x5a, 32);
    sf_wipe(z, 16);
    ck_assert_uint_eq(z[15], 0);
    ck_assert_uint_eq(z[16], 0x5a);
    sf_freezero(z, 32);
    sf_freezero(NULL, 10);
    t0 = sf_now_ms();
    t1 = sf_now_ms();
    ck_assert_uint_ge(t1, t0);
    ck_assert_uint_gt(t0, 0);
}
END_TEST

static Suite *
buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("get");

    tcase_add_test(tc, test_buf_get_scalars_good);
    tcase_add_test(tc, test_buf_get_bool_zero);
    tcase_add_test(tc, test_buf_get_u8_truncated);
    tcase_add_loop_test(tc, test_buf_get_u32_truncated, 0, 4);
    tcase_add_loop_test(tc, test_buf_get_u64_truncated, 0, 8);
    tcase_add_test(tc, test_buf_get_bytes_good);
    tcase_add_loop_test(tc, test_buf_get_bytes_truncated, 0, 8);
    tcase_add_test(tc, test_buf_peek_u32_bounds);
    tcase_add_test(tc, test_buf_get_string_good);
    tcase_add_loop_test(tc, test_buf_get_string_truncated, 0, (int)sizeof(str_abc));
    tcase_add_test(tc, test_buf_get_string_oversize);
    tcase_add_test(tc, test_buf_get_sub_good);
    tcase_add_loop_test(tc, test_buf_get_sub_truncated, 0, (int)sizeof(str_abc));
    tcase_add_test(tc, test_buf_get_sub_oversize);
    tcase_add_test(tc, test_buf_get_cstr_good);
    tcase_add_test(tc, test_buf_get_cstr_too_long);
    tcase_add_test(tc, test_buf_get_cstr_nul);
    tcase_add_loop_test(tc, test_buf_get_cstr_truncated, 0, (int)sizeof(str_abc));
    tcase_add_test(tc, test_buf_large_view);
    suite_add_tcase(s, tc);

    tc = tcase_create("namelist");
    tcase_add_test(tc, test_buf_get_namelist_good);
    tcase_add_test(tc, test_buf_get_namelist_empty_list);
    tcase_add_loop_test(tc, test_buf_get_namelist_bad, 0,
                        (int)(sizeof(bad_lists) / sizeof(bad_lists[0])));
    tcase_add_test(tc, test_buf_get_namelist_nul);
    tcase_add_test(tc, test_buf_get_namelist_oversize);
    tcase_add_loop_test(tc, test_buf_get_namelist_truncated, 0, 8);
    tcase_add_test(tc, test_sf_namelist_next_empty_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("mpint");
    tcase_add_loop_test(tc, test_buf_put_mpint_rfc4251, 0,
                        (int)(sizeof(mpint_vec) / sizeof(mpint_vec[0])));
    tcase_add_loop_test(tc, test_buf_get_mpint_pos_rfc4251, 0,
                        (int)(sizeof(mpint_vec) / sizeof(mpint_vec[0])));
    tcase_add_test(tc, test_buf_put_mpint_strips_zeros);
    tcase_add_loop_test(tc, test_buf_get_mpint_pos_bad, 0,
                        (int)(sizeof(mpint_bad) / sizeof(mpint_bad[0])));
    tcase_add_test(tc, test_buf_get_mpint_pos_oversize);
    tcase_add_loop_test(tc, test_buf_get_mpint_pos_truncated, 0, 12);
    suite_add_tcase(s, tc);

    tc = tcase_create("put");
    tcase_add_test(tc, test_buf_put_all_types);
    tcase_add_test(tc, test_buf_put_fixed_full);
    tcase_add_test(tc, test_buf_put_readonly);
    tcase_add_test(tc, test_buf_alloc_growth_limit);
    tcase_add_test(tc, test_buf_alloc_invalid);
    tcase_add_test(tc, test_buf_alloc_nomem);
    tcase_add_test(tc, test_buf_put_from_self);
    tcase_add_test(tc, test_buf_reserve_pins);
    tcase_add_test(tc, test_buf_open_close_string);
    tcase_add_test(tc, test_buf_open_close_string_bad);
    tcase_add_test(tc, test_buf_compact_and_reset_wipe);
    tcase_add_test(tc, test_buf_free_zeroed);
    tcase_add_test(tc, test_buf_roundtrip);
    suite_add_tcase(s, tc);

    tc = tcase_create("err_mem");
    tcase_add_test(tc, test_sf_err_str_kind);
    tcase_add_test(tc, test_sf_err_set_fields);
    tcase_add_test(tc, test_sshflow_strerror_format);
    tcase_add_test(tc, test_sshflow_err_kind_name_all);
    tcase_add_test(tc, test_sf_mem_helpers);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
