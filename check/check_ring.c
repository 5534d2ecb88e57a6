/*
 * check/check_ring.c -- tests for src/ring.c (struct sf_ring).
 *
 * Owns: the ring contract: capacity never exceeded, FIFO order across
 * wraparound, two-span peek, consume, full/empty edges, wipe on free.
 * Must never: depend on timing.
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

START_TEST(test_ring_init_invalid)
{
    struct sf_ring r;

    ck_assert_int_eq(sf_ring_init(&r, 0), SF_ERR_INVALID);
    sf_ring_free(&r);
    memset(&r, 0, sizeof(r));
    ck_assert_uint_eq(sf_ring_len(&r), 0);
    ck_assert_uint_eq(sf_ring_room(&r), 0);
    sf_ring_free(&r);
    sf_ring_free(NULL);
    sf_alloc_fail_after(1);
    ck_assert_int_eq(sf_ring_init(&r, 16), SF_ERR_NOMEM);
    sf_ring_free(&r);
}
END_TEST

START_TEST(test_ring_write_read_full_empty)
{
    struct sf_ring r;
    struct sf_span s[2];
    uint8_t out[16];

    ck_assert_int_eq(sf_ring_init(&r, 8), 0);
    ck_assert_uint_eq(sf_ring_len(&r), 0);
    ck_assert_uint_eq(sf_ring_room(&r), 8);
    ck_assert_uint_eq(sf_ring_read(&r, out, sizeof(out)), 0); /* empty */
    sf_ring_peek(&r, s);
    ck_assert_uint_eq(s[0].n, 0);
    ck_assert_uint_eq(s[1].n, 0);
    ck_assert_uint_eq(sf_ring_write(&r, "abcdefghij", 10), 8); /* min(n, room) */
    ck_assert_uint_eq(sf_ring_len(&r), 8);
    ck_assert_uint_eq(sf_ring_room(&r), 0);
    ck_assert_uint_eq(sf_ring_write(&r, "x", 1), 0); /* full */
    ck_assert_uint_eq(sf_ring_read(&r, out, 3), 3);
    ck_assert_mem_eq(out, "abc", 3);
    ck_assert_uint_eq(sf_ring_read(&r, out, sizeof(out)), 5);
    ck_assert_mem_eq(out, "defgh", 5);
    ck_assert_uint_eq(sf_ring_len(&r), 0);
    ck_assert_uint_eq(sf_ring_room(&r), 8);
    sf_ring_free(&r);
}
END_TEST

START_TEST(test_ring_wraparound_spans)
{
    struct sf_ring r;
    struct sf_span s[2];
    uint8_t out[8];

    ck_assert_int_eq(sf_ring_init(&r, 8), 0);
    ck_assert_uint_eq(sf_ring_write(&r, "012345", 6), 6);
    ck_assert_uint_eq(sf_ring_read(&r, out, 4), 4);      /* head = 4, len 2 */
    ck_assert_uint_eq(sf_ring_write(&r, "ABCDEF", 6), 6); /* wraps: len 8 */
    ck_assert_uint_eq(sf_ring_room(&r), 0);
    sf_ring_peek(&r, s);
    ck_assert_uint_eq(s[0].n, 4);
    ck_assert_mem_eq(s[0].p, "45AB", 4);
    ck_assert_uint_eq(s[1].n, 4);
    ck_assert_mem_eq(s[1].p, "CDEF", 4);
    ck_assert_uint_eq(sf_ring_len(&r), 8); /* peek does not consume */
    sf_ring_consume(&r, 3);
    sf_ring_peek(&r, s);
    ck_assert_uint_eq(s[0].n, 1);
    ck_assert_mem_eq(s[0].p, "B", 1);
    ck_assert_uint_eq(s[1].n, 4);
    sf_ring_consume(&r, 1); /* first span exhausted: the rest is one span */
    sf_ring_peek(&r, s);
    ck_assert_uint_eq(s[0].n, 4);
    ck_assert_mem_eq(s[0].p, "CDEF", 4);
    ck_assert_uint_eq(s[1].n, 0);
    ck_assert_ptr_null(s[1].p);
    ck_assert_uint_eq(sf_ring_read(&r, out, 8), 4);
    ck_assert_mem_eq(out, "CDEF", 4);
    sf_ring_free(&r);
}
END_TEST

START_TEST(test_ring_consume_all_restarts)
{
    struct sf_ring r;
    struct sf_span s[2];

    ck_assert_int_eq(sf_ring_init(&r, 8), 0);
    ck_assert_uint_eq(sf_ring_write(&r, "abcde", 5), 5);
    sf_ring_consume(&r, 2);
    sf_ring_consume(&r, 3);
    ck_assert_uint_eq(sf_ring_len(&r), 0);
    /* after emptying, a full write is one contiguous span */
    ck_assert_uint_eq(sf_ring_write(&r, "01234567", 8), 8);
    sf_ring_peek(&r, s);
    ck_assert_uint_eq(s[0].n, 8);
    ck_assert_mem_eq(s[0].p, "01234567", 8);
    ck_assert_uint_eq(s[1].n, 0);
    sf_ring_consume(&r, 0);
    ck_assert_uint_eq(sf_ring_len(&r), 8);
    sf_ring_free(&r);
}
END_TEST

/* Against a model: random-ish write/read sizes, FIFO order preserved. _i seeds the pattern. */
START_TEST(test_ring_model)
{
    enum { CAP = 13, TOTAL = 4000 };
    struct sf_ring r;
    uint8_t in[32], out[32];
    uint32_t seed = 2463534242u + (uint32_t)_i;
    size_t wrote = 0, readn = 0;

    ck_assert_int_eq(sf_ring_init(&r, CAP), 0);
    while (readn < TOTAL) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        size_t w = seed % 20, k;
        for (k = 0; k < w; k++) {
            in[k] = (uint8_t)(wrote + k);
        }
        size_t room = sf_ring_room(&r);
        size_t got = sf_ring_write(&r, in, w);
        ck_assert_uint_eq(got, SF_MIN(w, room));
        wrote += got;
        size_t want = (seed >> 8) % 20;
        size_t len = sf_ring_len(&r);
        size_t rd = sf_ring_read(&r, out, want);
        ck_assert_uint_eq(rd, SF_MIN(want, len));
        for (k = 0; k < rd; k++) {
            ck_assert_uint_eq(out[k], (uint8_t)(readn + k));
        }
        readn += rd;
        ck_assert_uint_eq(sf_ring_len(&r), wrote - readn);
        ck_assert_uint_le(sf_ring_len(&r), CAP);
    }
    sf_ring_free(&r);
}
END_TEST

#ifndef NDEBUG
START_TEST(test_ring_consume_too_much)
{
    struct sf_ring r;

    ck_assert_int_eq(sf_ring_init(&r, 4), 0);
    ck_assert_uint_eq(sf_ring_write(&r, "ab", 2), 2);
    sf_ring_consume(&r, 3); /* SF_ASSERT: aborts in debug builds */
    sf_ring_free(&r);
}
END_TEST
#endif

static Suite *
ring_suite(bool forking)
{
    Suite *s = suite_create("ring");
    TCase *tc = tcase_create("ring");

    tcase_add_test(tc, test_ring_init_invalid);
    tcase_add_test(tc, test_ring_write_read_full_empty);
    tcase_add_test(tc, test_ring_wraparound_spans);
    tcase_add_test(tc, test_ring_consume_all_restarts);
    tcase_add_loop_test(tc, test_ring_model, 0, 8);
#ifndef NDEBUG
    /* An abort would end a non-forking run (valgrind with CK_FORK=no). */
    if (forking) {
        tcase_add_test_raise_signal(tc, test_ring_consume_too_much, SIGABRT);
    }
#endif
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    const char *fk = getenv("CK_FORK");
    bool forking = !(fk != NULL && strcmp(fk, "no") == 0);
    SRunner *sr = srunner_create(ring_suite(forking));
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
