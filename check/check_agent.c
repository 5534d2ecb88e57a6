/*
 * check/check_agent.c -- tests for src/agent.c (the ssh-agent client) and
 * the Unix-socket connect in src/flow_fd.c (sshflow_connect_unix,
 * sf_flow_connect_unix).
 *
 * Owns: a fake agent (a thread serving one end of a socketpair with
 * scripted replies, built here byte by byte from draft-miller-ssh-agent),
 * a temp dir of keys made by ssh-keygen (an unchecked fixture, once per
 * run), and the real `ssh-agent -D -a DIR/sock` processes the tests start;
 * each test that starts one kills and reaps it.
 *
 * Must never: talk to the user's own agent (SSH_AUTH_SOCK is set to our
 * socket before ssh-add runs, and tests that read it set it first), touch
 * ~/.ssh, leave its temp dir, or wait without bound (the fake agent's reads
 * poll with a bound; timeouts are asserted as errors, never as durations).
 */
#include "agent.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "flow.h"
#include "key.h"
#include "sshd.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* draft-miller-ssh-agent s5.1 (written out here, independently of agent.c). */
#define T_FAILURE 5
#define T_SUCCESS 6
#define T_REQUEST_IDENTITIES 11
#define T_IDENTITIES_ANSWER 12
#define T_SIGN_REQUEST 13
#define T_SIGN_RESPONSE 14

#define SSH_AGENT_BIN "/usr/bin/ssh-agent"
#define SSH_ADD_BIN "/usr/bin/ssh-add"

#define FAKE_WAIT_MS 10000 /* bound on every wait of the fake agent */
#define FAKE_REQ_MAX 4096
#define FAKE_REPLIES_MAX 4

/* ------------------------------------------------------------------------ */
/* Building messages                                                        */
/* ------------------------------------------------------------------------ */

struct bld {
    uint8_t d[4096];
    size_t n;
};

static void
b_bytes(struct bld *b, const void *p, size_t n)
{
    /* A test bug, not a result (also used while the suite is built, outside any test). */
    if (n > sizeof(b->d) - b->n) {
        fprintf(stderr, "check_agent: test message over %zu bytes\n", sizeof(b->d));
        abort();
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void
b_u8(struct bld *b, uint8_t v)
{
    b_bytes(b, &v, 1);
}

static void
b_u32(struct bld *b, uint32_t v)
{
    uint8_t x[4];

    sf_store_be32(x, v);
    b_bytes(b, x, 4);
}

static void
b_str(struct bld *b, const void *p, size_t n)
{
    b_u32(b, (uint32_t)n);
    b_bytes(b, p, n);
}

static void
b_cstr(struct bld *b, const char *s)
{
    b_str(b, s, strlen(s));
}

/* out = uint32 len || body[0..len) (len may be shorter than the body: truncation). */
static void
b_frame(struct bld *out, const struct bld *body, size_t len)
{
    out->n = 0;
    b_u32(out, (uint32_t)len);
    b_bytes(out, body->d, len);
}

/* A fake ed25519 key blob (the client only looks at the type name). */
static void
fake_ed_blob(struct bld *b, uint8_t fill)
{
    uint8_t pk[32];

    memset(pk, fill, sizeof(pk));
    b->n = 0;
    b_cstr(b, "ssh-ed25519");
    b_str(b, pk, sizeof(pk));
}

/* A signature blob: string alg || string sig (sig: siglen bytes of 0x5a). */
static void
fake_sig_blob(struct bld *b, const char *alg, size_t siglen)
{
    uint8_t s[512];

    siglen = SF_MIN(siglen, sizeof(s));
    memset(s, 0x5a, siglen);
    b->n = 0;
    b_cstr(b, alg);
    b_str(b, s, siglen);
}

/* IDENTITIES_ANSWER with two keys: an ed25519 blob and one of a type nobody knows. */
static struct bld good_blob1;
static struct bld good_blob2;
static const char good_comment1[] = "first key";
static const char good_comment2[] = "";

static void
good_list_body(struct bld *body)
{
    fake_ed_blob(&good_blob1, 0x11);
    good_blob2.n = 0;
    b_cstr(&good_blob2, "x-unknown-key@example.org");
    b_cstr(&good_blob2, "whatever");
    body->n = 0;
    b_u8(body, T_IDENTITIES_ANSWER);
    b_u32(body, 2);
    b_str(body, good_blob1.d, good_blob1.n);
    b_cstr(body, good_comment1);
    b_str(body, good_blob2.d, good_blob2.n);
    b_cstr(body, good_comment2);
}

static void
check_good_list(const struct sf_agent_id *ids, size_t n)
{
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_nonnull(ids);
    ck_assert_uint_eq(ids[0].bloblen, good_blob1.n);
    ck_assert_mem_eq(ids[0].blob, good_blob1.d, good_blob1.n);
    ck_assert_str_eq(ids[0].comment, good_comment1);
    ck_assert_uint_eq(ids[1].bloblen, good_blob2.n);
    ck_assert_mem_eq(ids[1].blob, good_blob2.d, good_blob2.n);
    ck_assert_str_eq(ids[1].comment, good_comment2);
}

/* ------------------------------------------------------------------------ */
/* The fake agent                                                           */
/* ------------------------------------------------------------------------ */

struct fake {
    int fd; /* our end of the socketpair */
    pthread_t th;
    /* The script: for each request, send reply[i] (n == 0: send nothing). */
    const uint8_t *reply[FAKE_REPLIES_MAX];
    size_t replylen[FAKE_REPLIES_MAX];
    size_t nreplies;
    bool close_after; /* close right after the last scripted reply */
    /* What the thread saw. */
    uint8_t req[FAKE_REQ_MAX]; /* the first request's body (its first FAKE_REQ_MAX bytes) */
    size_t reqlen;             /* its whole length */
    size_t nreq; /* requests read */
};

/* Read exactly n bytes within FAKE_WAIT_MS. 1: got them; 0: EOF or timeout or error. */
static int
fake_read(int fd, uint8_t *p, size_t n)
{
    struct pollfd pf;
    size_t got = 0;
    ssize_t k;

    while (got < n) {
        pf.fd = fd;
        pf.events = POLLIN;
        pf.revents = 0;
        if (poll(&pf, 1, FAKE_WAIT_MS) <= 0) {
            return 0;
        }
        if ((k = read(fd, p + got, n - got)) <= 0) {
            return 0;
        }
        got += (size_t)k;
    }
    return 1;
}

static void
fake_write(int fd, const uint8_t *p, size_t n)
{
    size_t off = 0;
    ssize_t k;

    while (off < n) {
        if ((k = send(fd, p + off, n - off, MSG_NOSIGNAL)) <= 0) {
            return; /* the client went away: its test says what it expected */
        }
        off += (size_t)k;
    }
}

static void *
fake_main(void *arg)
{
    struct fake *fk = arg;
    uint8_t hdr[4];
    uint8_t sink[4096];
    size_t chunk = 0;
    size_t got;
    size_t i;

    for (i = 0; i < fk->nreplies; i++) {
        uint32_t len;

        if (!fake_read(fk->fd, hdr, 4)) {
            goto done;
        }
        len = sf_load_be32(hdr);
        if (len > SF_AGENT_MSG_MAX) {
            goto done;
        }
        /* Keep the first FAKE_REQ_MAX bytes of the first request; read the rest away. */
        for (got = 0; got < len; got += chunk) {
            chunk = SF_MIN((size_t)len - got, sizeof(sink));
            if (!fake_read(fk->fd, sink, chunk)) {
                goto done;
            }
            if (i == 0 && got < FAKE_REQ_MAX) {
                memcpy(fk->req + got, sink, SF_MIN(chunk, FAKE_REQ_MAX - got));
            }
        }
        if (i == 0) {
            fk->reqlen = len;
        }
        fk->nreq++;
        fake_write(fk->fd, fk->reply[i], fk->replylen[i]);
    }
    if (fk->close_after) {
        goto done;
    }
    /* Wait (bounded) for the client to close; count anything more it sends. */
    for (;;) {
        struct pollfd pf = { .fd = fk->fd, .events = POLLIN, .revents = 0 };
        ssize_t k;

        if (poll(&pf, 1, FAKE_WAIT_MS) <= 0 || (k = read(fk->fd, sink, sizeof(sink))) <= 0) {
            break;
        }
        fk->nreq++;
    }
done:
    close(fk->fd);
    fk->fd = -1;
    return NULL;
}

static void
fake_script(struct fake *fk, const struct bld *frame)
{
    ck_assert_uint_lt(fk->nreplies, FAKE_REPLIES_MAX);
    fk->reply[fk->nreplies] = frame != NULL ? frame->d : NULL;
    fk->replylen[fk->nreplies] = frame != NULL ? frame->n : 0;
    fk->nreplies++;
}

/* Start the fake agent (script already set) and an sf_agent on the other end. */
static struct sf_agent *
fake_start(struct fake *fk, int timeout_ms)
{
    struct sf_agent *a = NULL;
    sshflow_flow *f = NULL;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f = sshflow_flow_from_fds(sv[0], sv[0], true);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sf_agent_from_flow(f, timeout_ms, &a), 0);
    ck_assert_ptr_nonnull(a);
    fk->fd = sv[1];
    ck_assert_int_eq(pthread_create(&fk->th, NULL, fake_main, fk), 0);
    return a;
}

static void
fake_finish(struct fake *fk, struct sf_agent *a)
{
    sf_agent_free(a);
    ck_assert_int_eq(pthread_join(fk->th, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* Fake agent: listing                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(test_agent_list_good)
{
    static const uint8_t want_req[] = { 0, 0, 0, 1, T_REQUEST_IDENTITIES };
    struct fake fk = { 0 };
    struct bld body, frame;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 99;

    good_list_body(&body);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    check_good_list(ids, n);
    ck_assert_str_eq(sf_agent_why(a), "");
    sf_agent_ids_free(ids, n);
    fake_finish(&fk, a);
    ck_assert_uint_eq(fk.nreq, 1);
    ck_assert_uint_eq(fk.reqlen + 4, sizeof(want_req));
    ck_assert_mem_eq(fk.req, want_req + 4, fk.reqlen);
}
END_TEST

START_TEST(test_agent_list_empty)
{
    struct fake fk = { 0 };
    struct bld body = { .n = 0 }, frame;
    struct sf_agent_id *ids = (struct sf_agent_id *)&body;
    struct sf_agent *a;
    size_t n = 99;

    b_u8(&body, T_IDENTITIES_ANSWER);
    b_u32(&body, 0);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(ids);
    fake_finish(&fk, a);
}
END_TEST

/*
 * The reply body cut to `cut` bytes, with the frame length saying so: every
 * cut is refused; the frame was whole, so the connection stays usable and a
 * good reply afterwards is taken (except the empty frame, which is sticky).
 */
static void
agent_list_truncated_one(int cut)
{
    struct fake fk = { 0 };
    struct bld body, frame, good;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 99;
    int r;

    good_list_body(&body);
    ck_assert_uint_lt((size_t)cut, body.n);
    b_frame(&frame, &body, (size_t)cut);
    b_frame(&good, &body, body.n);
    fake_script(&fk, &frame);
    fake_script(&fk, &good);
    a = fake_start(&fk, 5000);
    r = sf_agent_list(a, &ids, &n);
    ck_assert_int_lt(r, 0);
    ck_assert_msg(r == SF_ERR_INCOMPLETE || r == SF_ERR_BAD_FORMAT, "cut %d: %d (%s)", cut, r,
                  sf_agent_why(a));
    ck_assert_ptr_null(ids);
    ck_assert_uint_eq(n, 0);
    ck_assert_str_ne(sf_agent_why(a), "");
    if (cut == 0) {
        ck_assert_int_eq(sf_agent_list(a, &ids, &n), r);
    } else {
        ck_assert_msg(sf_agent_list(a, &ids, &n) == 0, "cut %d: no recovery (%s)", cut,
                      sf_agent_why(a));
        check_good_list(ids, n);
        sf_agent_ids_free(ids, n);
    }
    fake_finish(&fk, a);
}

/* The agent sends `cut` bytes of a good frame and closes: SF_ERR_AGENT, sticky. */
static void
agent_list_cut_one(int cut)
{
    struct fake fk = { 0 };
    struct bld body, frame;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 99;
    int r;

    good_list_body(&body);
    b_frame(&frame, &body, body.n);
    ck_assert_uint_lt((size_t)cut, frame.n);
    frame.n = (size_t)cut;
    fake_script(&fk, &frame);
    fk.close_after = true;
    a = fake_start(&fk, 5000);
    r = sf_agent_list(a, &ids, &n);
    ck_assert_msg(r == SF_ERR_AGENT, "cut %d: %d (%s)", cut, r, sf_agent_why(a));
    ck_assert_ptr_null(ids);
    ck_assert_ptr_nonnull(strstr(sf_agent_why(a), "closed"));
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_AGENT);
    fake_finish(&fk, a);
}

/*
 * Every cut runs in this one test process (a fresh fake agent each): a
 * forked test per byte costs more than the cut itself.
 */
START_TEST(test_agent_list_truncated)
{
    struct bld body;
    size_t cut;

    good_list_body(&body);
    for (cut = 0; cut < body.n; cut++) {
        agent_list_truncated_one((int)cut);
    }
}
END_TEST

START_TEST(test_agent_list_cut)
{
    struct bld body, frame;
    size_t cut;

    good_list_body(&body);
    b_frame(&frame, &body, body.n);
    for (cut = 0; cut < frame.n; cut++) {
        agent_list_cut_one((int)cut);
    }
}
END_TEST

/* Reply lengths: 0, one over the bound, 2^32-1: refused, sticky. */
START_TEST(test_agent_list_oversize)
{
    static const uint32_t lens[] = { 0, SF_AGENT_MSG_MAX + 1, 0xffffffffu };
    static const int want[] = { SF_ERR_BAD_FORMAT, SF_ERR_TOO_LARGE, SF_ERR_TOO_LARGE };
    struct fake fk = { 0 };
    struct bld frame = { .n = 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    b_u32(&frame, lens[_i]);
    b_u8(&frame, T_IDENTITIES_ANSWER);
    b_u32(&frame, 0);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), want[_i]);
    ck_assert_ptr_null(ids);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), want[_i]);
    fake_finish(&fk, a);
    ck_assert_uint_eq(fk.nreq, 1); /* the second call sent nothing */
}
END_TEST

/* A reply of exactly SF_AGENT_MSG_MAX bytes (one key with a huge blob) is taken. */
START_TEST(test_agent_list_max)
{
    struct fake fk = { 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    struct sf_buf b;
    uint8_t *big;
    size_t n = 0;
    size_t bloblen = SF_AGENT_MSG_MAX - 1 - 4 - 4 - 4 - 3;
    struct sf_buf_mark m;
    uint8_t *p = NULL;
    size_t fill;

    ck_assert_int_eq(sf_buf_alloc(&b, SF_AGENT_MSG_MAX + 4, SF_AGENT_MSG_MAX + 4), 0);
    ck_assert_int_eq(sf_buf_put_u32(&b, SF_AGENT_MSG_MAX), 0);
    ck_assert_int_eq(sf_buf_put_u8(&b, T_IDENTITIES_ANSWER), 0);
    ck_assert_int_eq(sf_buf_put_u32(&b, 1), 0);
    ck_assert_int_eq(sf_buf_open_string(&b, &m), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "big-key@example.org"), 0);
    fill = 4 + 1 + 4 + 4 + bloblen - sf_buf_len(&b);
    ck_assert_int_eq(sf_buf_reserve(&b, fill, &p), 0);
    memset(p, 0xab, fill);
    ck_assert_int_eq(sf_buf_close_string(&b, &m), 0);
    ck_assert_int_eq(sf_buf_put_cstr(&b, "big"), 0);
    ck_assert_uint_eq(sf_buf_len(&b), SF_AGENT_MSG_MAX + 4);
    big = malloc(sf_buf_len(&b));
    ck_assert_ptr_nonnull(big);
    memcpy(big, sf_buf_ptr(&b), sf_buf_len(&b));
    fk.reply[0] = big;
    fk.replylen[0] = sf_buf_len(&b);
    fk.nreplies = 1;
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(ids[0].bloblen, bloblen);
    ck_assert_str_eq(ids[0].comment, "big");
    sf_agent_ids_free(ids, n);
    fake_finish(&fk, a);
    sf_buf_free(&b);
    free(big);
}
END_TEST

/* Reply types other than IDENTITIES_ANSWER and the failure codes: PROTOCOL. */
START_TEST(test_agent_list_wrong_type)
{
    static const uint8_t types[] = { T_SIGN_RESPONSE, T_SUCCESS, 0, 1, 99, 255 };
    struct fake fk = { 0 };
    struct bld body = { .n = 0 }, frame, good;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    b_u8(&body, types[_i]);
    b_u32(&body, 0);
    b_frame(&frame, &body, body.n);
    good_list_body(&body);
    b_frame(&good, &body, body.n);
    fake_script(&fk, &frame);
    fake_script(&fk, &good);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_PROTOCOL);
    ck_assert_ptr_nonnull(strstr(sf_agent_why(a), "unexpected reply type"));
    /* Whole frame read: still in step. */
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    check_good_list(ids, n);
    sf_agent_ids_free(ids, n);
    fake_finish(&fk, a);
}
END_TEST

/* SSH_AGENT_FAILURE (and OpenSSH's two legacy codes): SF_ERR_AGENT, not sticky. */
START_TEST(test_agent_list_failure)
{
    static const uint8_t types[] = { T_FAILURE, 30, 102 };
    struct fake fk = { 0 };
    struct bld body = { .n = 0 }, frame, good;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    b_u8(&body, types[_i]);
    b_frame(&frame, &body, body.n);
    good_list_body(&body);
    b_frame(&good, &body, body.n);
    fake_script(&fk, &frame);
    fake_script(&fk, &good);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_AGENT);
    ck_assert_ptr_null(ids);
    ck_assert_ptr_nonnull(strstr(sf_agent_why(a), "refused"));
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    check_good_list(ids, n);
    sf_agent_ids_free(ids, n);
    fake_finish(&fk, a);
}
END_TEST

/* A failure reply carrying anything more is malformed, not a plain failure. */
START_TEST(test_agent_list_failure_trailing)
{
    struct fake fk = { 0 };
    struct bld body = { .n = 0 }, frame;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    b_u8(&body, T_FAILURE);
    b_u8(&body, 0);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_TRAILING_DATA);
    fake_finish(&fk, a);
}
END_TEST

/* Bytes after the last key. */
START_TEST(test_agent_list_trailing)
{
    struct fake fk = { 0 };
    struct bld body, frame;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    good_list_body(&body);
    b_u8(&body, 0);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_TRAILING_DATA);
    ck_assert_ptr_null(ids);
    ck_assert_uint_eq(n, 0);
    fake_finish(&fk, a);
}
END_TEST

/* Key counts beyond the bound or beyond what the bytes can hold: refused before allocating. */
START_TEST(test_agent_list_nkeys)
{
    static const uint32_t counts[] = { 0xffffffffu, SF_AGENT_IDS_MAX + 1, SF_AGENT_IDS_MAX, 3 };
    static const int want[] = { SF_ERR_TOO_LARGE, SF_ERR_TOO_LARGE, SF_ERR_INCOMPLETE,
                                SF_ERR_INCOMPLETE };
    struct fake fk = { 0 };
    struct bld body = { .n = 0 }, frame, blob;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    fake_ed_blob(&blob, 1);
    b_u8(&body, T_IDENTITIES_ANSWER);
    b_u32(&body, counts[_i]);
    b_str(&body, blob.d, blob.n);
    b_cstr(&body, "c1");
    b_str(&body, blob.d, blob.n);
    b_cstr(&body, "c2");
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), want[_i]);
    ck_assert_ptr_null(ids);
    fake_finish(&fk, a);
}
END_TEST

/* Key blobs without a type name, comments with a NUL: malformed. */
START_TEST(test_agent_list_bad_entry)
{
    struct fake fk = { 0 };
    struct bld body = { .n = 0 }, frame, blob = { .n = 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    const char *comment = "ok";
    size_t clen = 2;
    size_t n = 0;

    switch (_i) {
    case 0: /* empty blob */
        break;
    case 1: /* empty type name */
        b_u32(&blob, 0);
        break;
    case 2: /* type name longer than the blob */
        b_u32(&blob, 20);
        b_bytes(&blob, "ssh-ed", 6);
        break;
    case 3: /* a NUL inside the comment */
        fake_ed_blob(&blob, 2);
        comment = "a\0b";
        clen = 3;
        break;
    default: /* a type name over SF_NAME_MAX */
        b_u32(&blob, SF_NAME_MAX + 1);
        while (blob.n < 4 + SF_NAME_MAX + 1) {
            b_u8(&blob, 'x');
        }
        break;
    }
    b_u8(&body, T_IDENTITIES_ANSWER);
    b_u32(&body, 1);
    b_str(&body, blob.d, blob.n);
    b_str(&body, comment, clen);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_BAD_FORMAT);
    ck_assert_ptr_null(ids);
    fake_finish(&fk, a);
}
END_TEST

/* Allocation failures at every point of a list: NOMEM or success, never a leak or crash. */
START_TEST(test_agent_list_nomem)
{
    struct fake fk = { 0 };
    struct bld body, frame;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;
    int r;

    good_list_body(&body);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    sf_alloc_fail_after((unsigned long)_i + 1);
    r = sf_agent_list(a, &ids, &n);
    sf_alloc_fail_after(0);
    /* 6 allocations: reply buffer, array, 2 x (blob, comment). */
    if (_i < 6) {
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_ptr_null(ids);
    } else {
        ck_assert_int_eq(r, 0);
        check_good_list(ids, n);
        sf_agent_ids_free(ids, n);
    }
    fake_finish(&fk, a);
}
END_TEST

/* An agent that never answers: SF_ERR_TIMEOUT, and every later call too (without waiting). */
START_TEST(test_agent_list_timeout)
{
    static const uint8_t blob[] = { 0, 0, 0, 1, 'x' };
    struct fake fk = { 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[64];
    size_t n = 0;

    fake_script(&fk, NULL);
    a = fake_start(&fk, 200);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(sf_agent_why(a), "200 ms"));
    ck_assert_ptr_null(ids);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(sf_agent_sign(a, blob, sizeof(blob), "ssh-ed25519", blob, 1, &out),
                     SF_ERR_TIMEOUT);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_TIMEOUT);
    fake_finish(&fk, a);
    ck_assert_uint_eq(fk.nreq, 1);
}
END_TEST

/* Half a reply, then silence: SF_ERR_TIMEOUT. */
START_TEST(test_agent_list_timeout_partial)
{
    struct fake fk = { 0 };
    struct bld body, frame;
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a;
    size_t n = 0;

    good_list_body(&body);
    b_frame(&frame, &body, body.n);
    frame.n = _i == 0 ? 2 : frame.n / 2;
    fake_script(&fk, &frame);
    a = fake_start(&fk, 200);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), SF_ERR_TIMEOUT);
    fake_finish(&fk, a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Fake agent: signing                                                      */
/* ------------------------------------------------------------------------ */

static const uint8_t sign_data[] = "data to be signed, as in a userauth request";

/* What a SIGN_REQUEST for key blob b, sign_data and flags must look like (body only). */
static void
want_sign_request(struct bld *req, const struct bld *b, uint32_t flags)
{
    req->n = 0;
    b_u8(req, T_SIGN_REQUEST);
    b_str(req, b->d, b->n);
    b_str(req, sign_data, sizeof(sign_data));
    b_u32(req, flags);
}

static void
sign_reply(struct bld *frame, const struct bld *sig)
{
    struct bld body = { .n = 0 };

    b_u8(&body, T_SIGN_RESPONSE);
    b_str(&body, sig->d, sig->n);
    b_frame(frame, &body, body.n);
}

static const struct {
    const char *sigalg;
    uint32_t flags;
} sign_cases[] = {
    { "ssh-ed25519", 0 },
    { "rsa-sha2-256", 2 },
    { "rsa-sha2-512", 4 },
    { "ecdsa-sha2-nistp256", 0 },
    { "ecdsa-sha2-nistp521", 0 },
};

START_TEST(test_agent_sign_good)
{
    struct fake fk = { 0 };
    struct bld blob, sig, frame, req;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];

    fake_ed_blob(&blob, 7);
    fake_sig_blob(&sig, sign_cases[_i].sigalg, 64 + (size_t)_i);
    sign_reply(&frame, &sig);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(sf_buf_put_bytes(&out, "XY", 2), 0);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, sign_cases[_i].sigalg, sign_data,
                                   sizeof(sign_data), &out),
                     0);
    /* Appended, no outer length. */
    ck_assert_uint_eq(sf_buf_len(&out), 2 + sig.n);
    ck_assert_mem_eq(sf_buf_ptr(&out), "XY", 2);
    ck_assert_mem_eq(sf_buf_ptr(&out) + 2, sig.d, sig.n);
    fake_finish(&fk, a);
    want_sign_request(&req, &blob, sign_cases[_i].flags);
    ck_assert_uint_eq(fk.reqlen, req.n);
    ck_assert_mem_eq(fk.req, req.d, req.n);
}
END_TEST

/* The agent signs with another algorithm than asked: PROTOCOL, out unchanged, not sticky. */
START_TEST(test_agent_sign_wrong_alg)
{
    static const struct {
        const char *asked;
        const char *got;
    } cases[] = {
        { "rsa-sha2-512", "ssh-rsa" },
        { "rsa-sha2-256", "rsa-sha2-512" },
        { "rsa-sha2-512", "rsa-sha2-256" },
        { "ssh-ed25519", "ssh-ed25519x" },
        { "ssh-ed25519", "ssh-ed2551" },
        { "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384" },
        { "ssh-ed25519", "ssh-ed\n25519" },
    };
    struct fake fk = { 0 };
    struct bld blob, sig, frame, gsig, gframe;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];

    fake_ed_blob(&blob, 8);
    fake_sig_blob(&sig, cases[_i].got, 64);
    sign_reply(&frame, &sig);
    fake_sig_blob(&gsig, cases[_i].asked, 64);
    sign_reply(&gframe, &gsig);
    fake_script(&fk, &frame);
    fake_script(&fk, &gframe);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, cases[_i].asked, sign_data,
                                   sizeof(sign_data), &out),
                     SF_ERR_PROTOCOL);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    ck_assert_ptr_nonnull(strstr(sf_agent_why(a), "signed with"));
    ck_assert_ptr_null(strchr(sf_agent_why(a), '\n'));
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, cases[_i].asked, sign_data,
                                   sizeof(sign_data), &out),
                     0);
    ck_assert_uint_eq(sf_buf_len(&out), gsig.n);
    fake_finish(&fk, a);
}
END_TEST

/* SIGN_RESPONSE body cut at every byte (frame length fixed up): refused, out unchanged. */
static void
agent_sign_truncated_one(int cut)
{
    struct fake fk = { 0 };
    struct bld blob, sig, frame, body = { .n = 0 };
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];
    int r;

    fake_ed_blob(&blob, 9);
    fake_sig_blob(&sig, "ssh-ed25519", 64);
    b_u8(&body, T_SIGN_RESPONSE);
    b_str(&body, sig.d, sig.n);
    ck_assert_uint_lt((size_t)cut, body.n);
    b_frame(&frame, &body, (size_t)cut);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    r = sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, sizeof(sign_data), &out);
    ck_assert_msg(r == SF_ERR_INCOMPLETE || r == SF_ERR_BAD_FORMAT, "cut %d: %d", cut, r);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
}

/*
 * The signature blob inside a well-framed reply cut at every byte (its
 * string length fixed up): refused (a cut inside the name can only look
 * like another algorithm or a short blob).
 */
static void
agent_sign_blob_truncated_one(int cut)
{
    struct fake fk = { 0 };
    struct bld blob, sig, frame;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];
    int r;

    fake_ed_blob(&blob, 10);
    fake_sig_blob(&sig, "ssh-ed25519", 64);
    ck_assert_uint_lt((size_t)cut, sig.n);
    sig.n = (size_t)cut;
    sign_reply(&frame, &sig);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    r = sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, sizeof(sign_data), &out);
    ck_assert_msg(r == SF_ERR_INCOMPLETE || r == SF_ERR_BAD_FORMAT || r == SF_ERR_PROTOCOL,
                  "cut %d: %d", cut, r);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
}

START_TEST(test_agent_sign_truncated)
{
    struct bld sig;
    size_t cut;

    fake_sig_blob(&sig, "ssh-ed25519", 64);
    for (cut = 0; cut < 1 + 4 + sig.n; cut++) {
        agent_sign_truncated_one((int)cut);
    }
}
END_TEST

START_TEST(test_agent_sign_blob_truncated)
{
    struct bld sig;
    size_t cut;

    fake_sig_blob(&sig, "ssh-ed25519", 64);
    for (cut = 0; cut < sig.n; cut++) {
        agent_sign_blob_truncated_one((int)cut);
    }
}
END_TEST

/* Trailing bytes inside the signature blob or after it; empty signature. */
START_TEST(test_agent_sign_malformed)
{
    struct fake fk = { 0 };
    struct bld blob, sig, frame, body = { .n = 0 };
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];
    int want;

    fake_ed_blob(&blob, 11);
    fake_sig_blob(&sig, "ssh-ed25519", 64);
    switch (_i) {
    case 0: /* a byte after sig inside the blob */
        b_u8(&sig, 0);
        b_u8(&body, T_SIGN_RESPONSE);
        b_str(&body, sig.d, sig.n);
        want = SF_ERR_TRAILING_DATA;
        break;
    case 1: /* a byte after the signature string */
        b_u8(&body, T_SIGN_RESPONSE);
        b_str(&body, sig.d, sig.n);
        b_u8(&body, 0);
        want = SF_ERR_TRAILING_DATA;
        break;
    case 2: /* empty signature */
        fake_sig_blob(&sig, "ssh-ed25519", 0);
        b_u8(&body, T_SIGN_RESPONSE);
        b_str(&body, sig.d, sig.n);
        want = SF_ERR_BAD_FORMAT;
        break;
    case 3: /* signature blob over SF_KEYBLOB_MAX */
        b_u8(&body, T_SIGN_RESPONSE);
        b_u32(&body, SF_KEYBLOB_MAX + 1);
        b_bytes(&body, sig.d, sig.n);
        want = SF_ERR_TOO_LARGE;
        break;
    default: /* failure */
        b_u8(&body, T_FAILURE);
        want = SF_ERR_AGENT;
        break;
    }
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(
        sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, sizeof(sign_data), &out),
        want);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
}
END_TEST

/* Wrong reply types to a sign request. */
START_TEST(test_agent_sign_wrong_type)
{
    static const uint8_t types[] = { T_IDENTITIES_ANSWER, T_SUCCESS, T_SIGN_REQUEST, 200 };
    struct fake fk = { 0 };
    struct bld blob, sig, frame, body = { .n = 0 };
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];

    fake_ed_blob(&blob, 12);
    fake_sig_blob(&sig, "ssh-ed25519", 64);
    b_u8(&body, types[_i]);
    b_str(&body, sig.d, sig.n);
    b_frame(&frame, &body, body.n);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(
        sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, sizeof(sign_data), &out),
        SF_ERR_PROTOCOL);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
}
END_TEST

/* The agent closes in the middle of a sign reply, or never answers. */
START_TEST(test_agent_sign_cut_and_silent)
{
    struct fake fk = { 0 };
    struct bld blob, sig, frame;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[1024];

    fake_ed_blob(&blob, 13);
    fake_sig_blob(&sig, "ssh-ed25519", 64);
    sign_reply(&frame, &sig);
    frame.n = frame.n / 2;
    if (_i == 0) {
        fake_script(&fk, &frame);
        fk.close_after = true;
    } else {
        fake_script(&fk, NULL);
    }
    a = fake_start(&fk, 200);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(
        sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, sizeof(sign_data), &out),
        (_i == 0 ? SF_ERR_AGENT : SF_ERR_TIMEOUT));
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
}
END_TEST

/* Arguments refused before anything is sent. */
START_TEST(test_agent_sign_args)
{
    struct fake fk = { 0 };
    struct bld blob;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[64];
    uint8_t *big;
    char longname[SF_NAME_MAX + 2];

    fake_ed_blob(&blob, 14);
    a = fake_start(&fk, 5000);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, "ssh-rsa", sign_data, 4, &out),
                     SF_ERR_UNSUPPORTED);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, "", sign_data, 4, &out), SF_ERR_INVALID);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, longname, sign_data, 4, &out),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_sign(a, NULL, 0, "ssh-ed25519", sign_data, 4, &out),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, NULL, sign_data, 4, &out), SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", NULL, 4, &out),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, 4, NULL),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_sign(NULL, blob.d, blob.n, "ssh-ed25519", sign_data, 4, &out),
                     SF_ERR_INVALID);
    big = calloc(1, SF_AGENT_MSG_MAX);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", big,
                                   SF_AGENT_MSG_MAX - 13 - blob.n + 1, &out),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", big, SIZE_MAX, &out),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_list(NULL, NULL, NULL), SF_ERR_INVALID);
    free(big);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
    ck_assert_uint_eq(fk.nreq, 0);
}
END_TEST

/* The largest request allowed goes out whole; no room in out gives NO_SPACE. */
START_TEST(test_agent_sign_big_and_no_space)
{
    struct fake fk = { 0 };
    struct bld blob, sig, frame;
    struct sf_agent *a;
    struct sf_buf out;
    uint8_t mem[16];
    uint8_t *big;
    size_t len;

    fake_ed_blob(&blob, 15);
    fake_sig_blob(&sig, "ssh-ed25519", 64);
    sign_reply(&frame, &sig);
    fake_script(&fk, &frame);
    fake_script(&fk, &frame);
    a = fake_start(&fk, 5000);
    /* byte + string blob + string data + uint32 flags == SF_AGENT_MSG_MAX */
    len = SF_AGENT_MSG_MAX - 13 - blob.n;
    big = calloc(1, len);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(sf_buf_alloc(&out, 0, SF_KEYBLOB_MAX), 0);
    ck_assert_msg(sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", big, len, &out) == 0, "%s",
                  sf_agent_why(a));
    ck_assert_uint_eq(sf_buf_len(&out), sig.n);
    sf_buf_free(&out);
    free(big);
    /* NO_SPACE: a signature that does not fit the caller's buffer; out unchanged. */
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(
        sf_agent_sign(a, blob.d, blob.n, "ssh-ed25519", sign_data, sizeof(sign_data), &out),
        SF_ERR_NO_SPACE);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    fake_finish(&fk, a);
    ck_assert_uint_eq(fk.reqlen, SF_AGENT_MSG_MAX);
    ck_assert_uint_eq(fk.nreq, 2);
}
END_TEST

/* sf_agent_from_flow takes the flow in every case (ASan/valgrind see a leak otherwise). */
START_TEST(test_agent_from_flow_args)
{
    struct sf_agent *a = (struct sf_agent *)&a;
    sshflow_flow *f;
    unsigned long i;
    int sv[2];
    int r;

    ck_assert_int_eq(sf_agent_from_flow(NULL, 1000, &a), SF_ERR_INVALID);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    f = sshflow_flow_from_fds(sv[0], sv[0], true);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sf_agent_from_flow(f, 0, &a), SF_ERR_INVALID);
    f = sshflow_flow_from_fds(sv[1], sv[1], true);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sf_agent_from_flow(f, 1000, NULL), SF_ERR_INVALID);
    /* Allocation failures: NOMEM and nothing left behind, then success. */
    for (i = 1;; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        close(sv[1]);
        f = sshflow_flow_from_fds(sv[0], sv[0], true);
        ck_assert_ptr_nonnull(f);
        sf_alloc_fail_after(i);
        r = sf_agent_from_flow(f, 1000, &a);
        sf_alloc_fail_after(0);
        if (r == 0) {
            break;
        }
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_ptr_null(a);
    }
    ck_assert_uint_ge(i, 2);
    sf_agent_free(a);
    sf_agent_free(NULL);
    sf_agent_ids_free(NULL, 3);
    ck_assert_str_eq(sf_agent_why(NULL), "");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Unix connect and open                                                    */
/* ------------------------------------------------------------------------ */

static char tdir[128];

static void
tdir_setup(void)
{
    snprintf(tdir, sizeof(tdir), "/tmp/sf_check_agent.XXXXXX");
    if (mkdtemp(tdir) == NULL) {
        tdir[0] = '\0';
    }
}

static void
rm_rf(const char *dir)
{
    char *argv[] = { (char *)"/bin/rm", (char *)"-rf", (char *)dir, NULL };

    if (dir[0] != '\0') {
        (void)sf_test_run(argv, NULL, NULL, 0, NULL, 0, 30000);
    }
}

/* A listening socket at path (backlog as given). */
static int
listen_at(const char *path, int backlog)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    (void)unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, backlog), 0);
    return fd;
}

static void
test_path(char *buf, size_t sz, const char *name)
{
    ck_assert_msg(tdir[0] != '\0', "no temp dir");
    snprintf(buf, sz, "%s/%s.%ld", tdir, name, (long)getpid());
}

START_TEST(test_connect_unix_ok)
{
    char path[200];
    char got[3] = { 0 };
    sshflow_error e;
    sshflow_flow *f;
    int l;
    int c;

    test_path(path, sizeof(path), "ok.sock");
    l = listen_at(path, 4);
    f = sshflow_connect_unix(path, &e);
    ck_assert_msg(f != NULL, "%s", e.detail);
    ck_assert_int_eq(sshflow_write(f, "hi", 2, &e), 0);
    c = accept(l, NULL, NULL);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(fake_read(c, (uint8_t *)got, 2), 1);
    ck_assert_str_eq(got, "hi");
    ck_assert_int_eq(write(c, "yo", 2), 2);
    ck_assert_int_eq(sshflow_read_into(f, got, 2, &e), 2);
    ck_assert_mem_eq(got, "yo", 2);
    sshflow_free(f);
    ck_assert_int_eq(read(c, got, 1), 0); /* our close reached the peer */
    close(c);
    close(l);
    unlink(path);
}
END_TEST

START_TEST(test_connect_unix_errors)
{
    char path[200];
    char longpath[200];
    sshflow_error e;
    int fd;

    test_path(path, sizeof(path), "missing.sock");
    ck_assert_ptr_null(sshflow_connect_unix(path, &e));
    ck_assert_int_eq(e.kind, SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(e.sys_errno, ENOENT);
    ck_assert_ptr_nonnull(strstr(e.detail, path));

    /* A regular file: nobody listens. */
    test_path(path, sizeof(path), "plain");
    fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_ptr_null(sshflow_connect_unix(path, &e));
    ck_assert_int_eq(e.kind, SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(e.sys_errno, ECONNREFUSED);
    unlink(path);

    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    ck_assert_ptr_null(sshflow_connect_unix(longpath, &e));
    ck_assert_int_eq(e.kind, SSHFLOW_ERR_INVALID);
    ck_assert_ptr_null(sshflow_connect_unix("", &e));
    ck_assert_int_eq(e.kind, SSHFLOW_ERR_INVALID);
    ck_assert_ptr_null(sshflow_connect_unix(NULL, NULL));
}
END_TEST

/* A listener whose backlog is full and never accepts: the connect is bounded. */
START_TEST(test_connect_unix_backlog_timeout)
{
    char path[200];
    sshflow_error e;
    struct sockaddr_un sa;
    int fill[64];
    int nfill = 0;
    int l;
    int i;

    test_path(path, sizeof(path), "full.sock");
    l = listen_at(path, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    /* Fill the backlog with non-blocking connects until one would wait. */
    for (nfill = 0; nfill < (int)NELEM(fill); nfill++) {
        fill[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fill[nfill], 0);
        if (connect(fill[nfill], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            ck_assert_int_eq(errno, EAGAIN);
            nfill++;
            break;
        }
    }
    ck_assert_ptr_null(sf_flow_connect_unix(path, 200, &e));
    ck_assert_int_eq(e.kind, SSHFLOW_ERR_TIMEOUT);
    for (i = 0; i < nfill; i++) {
        close(fill[i]);
    }
    close(l);
    unlink(path);
}
END_TEST

START_TEST(test_agent_open_env)
{
    struct sf_agent *a = (struct sf_agent *)&a;
    char why[256];
    char path[200];

    ck_assert_int_eq(unsetenv("SSH_AUTH_SOCK"), 0);
    ck_assert_int_eq(sf_agent_open(NULL, 1000, &a, why, sizeof(why)), SF_ERR_AGENT);
    ck_assert_ptr_null(a);
    ck_assert_str_eq(why, "SSH_AUTH_SOCK is not set");

    ck_assert_int_eq(setenv("SSH_AUTH_SOCK", "", 1), 0);
    ck_assert_int_eq(sf_agent_open(NULL, 1000, &a, why, sizeof(why)), SF_ERR_AGENT);
    ck_assert_str_eq(why, "SSH_AUTH_SOCK is not set");

    test_path(path, sizeof(path), "nonexistent");
    ck_assert_int_eq(setenv("SSH_AUTH_SOCK", path, 1), 0);
    ck_assert_int_eq(sf_agent_open(NULL, 1000, &a, why, sizeof(why)), SF_ERR_AGENT);
    ck_assert_ptr_null(a);
    ck_assert_msg(strstr(why, path) != NULL && strstr(why, "No such file") != NULL, "%s", why);

    /* An explicit path, the same. */
    ck_assert_int_eq(sf_agent_open(path, 1000, &a, why, sizeof(why)), SF_ERR_AGENT);
    ck_assert_ptr_nonnull(strstr(why, path));
    ck_assert_int_eq(sf_agent_open("", 1000, &a, why, sizeof(why)), SF_ERR_AGENT);
    ck_assert_int_eq(sf_agent_open(path, 0, &a, why, sizeof(why)), SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_open(path, 1000, NULL, why, sizeof(why)), SF_ERR_INVALID);
    ck_assert_int_eq(sf_agent_open(path, 1000, &a, NULL, 0), SF_ERR_AGENT);
    ck_assert_int_eq(unsetenv("SSH_AUTH_SOCK"), 0);
}
END_TEST

/* A full backlog at open: SF_ERR_TIMEOUT, not a hang. */
START_TEST(test_agent_open_timeout)
{
    struct sf_agent *a = NULL;
    struct sockaddr_un sa;
    char why[256];
    char path[200];
    int fill[64];
    int nfill;
    int l;
    int i;

    test_path(path, sizeof(path), "full2.sock");
    l = listen_at(path, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    for (nfill = 0; nfill < (int)NELEM(fill); nfill++) {
        fill[nfill] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (connect(fill[nfill], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            nfill++;
            break;
        }
    }
    ck_assert_int_eq(sf_agent_open(path, 200, &a, why, sizeof(why)), SF_ERR_TIMEOUT);
    ck_assert_ptr_null(a);
    ck_assert_ptr_nonnull(strstr(why, path));
    for (i = 0; i < nfill; i++) {
        close(fill[i]);
    }
    close(l);
    unlink(path);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* The real ssh-agent                                                       */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *file;    /* key file name in tdir */
    const char *sigalg;  /* algorithm to sign with */
} real_keys[] = {
    { "ed25519", "ssh-ed25519" },
    { "ecdsa256", "ecdsa-sha2-nistp256" },
    { "ecdsa384", "ecdsa-sha2-nistp384" },
    { "ecdsa521", "ecdsa-sha2-nistp521" },
    { "rsa2048", "rsa-sha2-256" },
    { "rsa2048", "rsa-sha2-512" },
};
#define REAL_FILES 5 /* the first five entries name distinct files */

static bool real_have;    /* ssh-agent, ssh-add and ssh-keygen present */
static bool real_keys_ok; /* the fixture made the keys */
static char real_err[1024];

static void
real_setup(void)
{
    static char script[2048];
    char *argv[] = { (char *)"/bin/sh", (char *)"-c", script, NULL };

    tdir_setup();
    real_have = access(SSH_AGENT_BIN, X_OK) == 0 && access(SSH_ADD_BIN, X_OK) == 0 &&
                access(SF_TEST_SSH_KEYGEN_PATH, X_OK) == 0;
    if (!real_have || tdir[0] == '\0') {
        return;
    }
    snprintf(script, sizeof(script),
             "set -e; cd '%s'; KG=%s\n"
             "$KG -q -t rsa -b 2048 -N '' -C sf-rsa2048 -f rsa2048 >/dev/null & p=$!\n"
             "$KG -q -t ed25519 -N '' -C sf-ed25519 -f ed25519 >/dev/null\n"
             "$KG -q -t ed25519 -N '' -C sf-other -f other >/dev/null\n"
             "for b in 256 384 521; do\n"
             "  $KG -q -t ecdsa -b $b -N '' -C sf-ecdsa$b -f ecdsa$b >/dev/null\n"
             "done\n"
             "wait $p\n",
             tdir, SF_TEST_SSH_KEYGEN_PATH);
    real_keys_ok = sf_test_run(argv, NULL, NULL, 0, real_err, sizeof(real_err), 120000) == 0;
}

static void
real_teardown(void)
{
    rm_rf(tdir);
}

/* False (and a note) if the real agent cannot be used here. */
static bool
real_ready(void)
{
    if (!real_have) {
        fprintf(stderr, "check_agent: %s, %s or %s missing, skipping real-agent tests\n",
                SSH_AGENT_BIN, SSH_ADD_BIN, SF_TEST_SSH_KEYGEN_PATH);
        return false;
    }
    ck_assert_msg(real_keys_ok, "ssh-keygen fixture failed: %s", real_err);
    return true;
}

/* The blob and comment in DIR/<file>.pub. */
static void
read_pub(const char *file, uint8_t *blob, size_t blobsz, size_t *bloblen, char *comment,
         size_t commentsz)
{
    char path[300];
    char line[4096];
    char *b64;
    char *cm;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s.pub", tdir, file);
    fp = fopen(path, "r");
    ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), fp));
    fclose(fp);
    line[strcspn(line, "\n")] = '\0';
    b64 = strchr(line, ' ');
    ck_assert_ptr_nonnull(b64);
    b64++;
    cm = strchr(b64, ' ');
    ck_assert_ptr_nonnull(cm);
    *cm++ = '\0';
    ck_assert_int_eq(sf_base64_decode(b64, strlen(b64), blob, blobsz, bloblen), 0);
    snprintf(comment, commentsz, "%s", cm);
}

struct real_agent {
    pid_t pid;
    char sock[200];
};

/* Start `ssh-agent -D -a SOCK` and wait (bounded) until it accepts connections. */
static void
real_start(struct real_agent *ra)
{
    static unsigned seq;
    char *argv[] = { (char *)SSH_AGENT_BIN, (char *)"-D", (char *)"-a", ra->sock, NULL };
    uint64_t deadline;
    sshflow_error e;

    snprintf(ra->sock, sizeof(ra->sock), "%s/agent.%ld.%u", tdir, (long)getpid(), seq++);
    (void)unlink(ra->sock);
    ra->pid = sf_test_spawn(argv, NULL, NULL);
    ck_assert_int_gt(ra->pid, 0);
    deadline = sf_now_ms() + 10000;
    for (;;) {
        sshflow_flow *f = sf_flow_connect_unix(ra->sock, 1000, &e);
        struct timespec ts = { 0, 10 * 1000 * 1000 };

        if (f != NULL) {
            sshflow_free(f);
            break;
        }
        ck_assert_msg(sf_now_ms() < deadline, "ssh-agent did not come up: %s", e.detail);
        nanosleep(&ts, NULL);
    }
    ck_assert_int_eq(setenv("SSH_AUTH_SOCK", ra->sock, 1), 0);
}

static void
real_stop(struct real_agent *ra)
{
    if (ra->pid > 0) {
        (void)kill(ra->pid, SIGTERM);
        (void)sf_test_wait(ra->pid, 5000);
        ra->pid = 0;
    }
    (void)unlink(ra->sock);
}

/* ssh-add the key files named in files[0..n) (paths in tdir). */
static void
real_add(const char *const *files, size_t n)
{
    char paths[8][300];
    char *argv[12];
    char err[1024];
    size_t i;
    int rc;

    ck_assert_uint_le(n, 8);
    argv[0] = (char *)SSH_ADD_BIN;
    argv[1] = (char *)"-q";
    for (i = 0; i < n; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s/%s", tdir, files[i]);
        argv[2 + i] = paths[i];
    }
    argv[2 + n] = NULL;
    rc = sf_test_run(argv, NULL, NULL, 0, err, sizeof(err), 30000);
    ck_assert_msg(rc == 0, "ssh-add exited %d: %s", rc, err);
}

START_TEST(test_agent_real_list)
{
    const char *files[REAL_FILES];
    struct real_agent ra = { 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a = NULL;
    bool seen[REAL_FILES] = { false };
    char why[256];
    size_t n = 0;
    size_t i;
    size_t j;

    if (!real_ready()) {
        return;
    }
    for (i = 0; i < REAL_FILES; i++) {
        files[i] = real_keys[i].file;
    }
    real_start(&ra);
    real_add(files, REAL_FILES);
    ck_assert_msg(sf_agent_open(NULL, 5000, &a, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    ck_assert_uint_eq(n, REAL_FILES);
    for (i = 0; i < REAL_FILES; i++) {
        uint8_t blob[2048];
        char comment[256];
        size_t bloblen = 0;

        read_pub(files[i], blob, sizeof(blob), &bloblen, comment, sizeof(comment));
        for (j = 0; j < n; j++) {
            if (ids[j].bloblen == bloblen && memcmp(ids[j].blob, blob, bloblen) == 0) {
                ck_assert_msg(!seen[i], "%s listed twice", files[i]);
                seen[i] = true;
                ck_assert_str_eq(ids[j].comment, comment);
            }
        }
        ck_assert_msg(seen[i], "%s not listed", files[i]);
    }
    sf_agent_ids_free(ids, n);
    sf_agent_free(a);
    real_stop(&ra);
}
END_TEST

START_TEST(test_agent_real_sign)
{
    const char *file = real_keys[_i].file;
    const char *sigalg = real_keys[_i].sigalg;
    struct real_agent ra = { 0 };
    struct sf_pubkey *k = NULL;
    struct sf_agent *a = NULL;
    struct sf_buf out;
    uint8_t data[200];
    uint8_t blob[2048];
    char comment[256];
    char why[256];
    size_t bloblen = 0;
    size_t i;

    if (!real_ready()) {
        return;
    }
    for (i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    read_pub(file, blob, sizeof(blob), &bloblen, comment, sizeof(comment));
    ck_assert_int_eq(sf_pubkey_from_blob(blob, bloblen, &k), 0);
    real_start(&ra);
    real_add(&file, 1);
    ck_assert_msg(sf_agent_open(ra.sock, 5000, &a, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(sf_buf_alloc(&out, 0, SF_KEYBLOB_MAX), 0);
    ck_assert_msg(sf_agent_sign(a, blob, bloblen, sigalg, data, sizeof(data), &out) == 0, "%s",
                  sf_agent_why(a));
    ck_assert_int_eq(sf_pubkey_verify(k, sigalg, sf_buf_ptr(&out), sf_buf_len(&out), data,
                                      sizeof(data)),
                     0);
    /* The check can fail: other data, or another algorithm name, is refused. */
    data[0] ^= 1;
    ck_assert_int_ne(sf_pubkey_verify(k, sigalg, sf_buf_ptr(&out), sf_buf_len(&out), data,
                                      sizeof(data)),
                     0);
    data[0] ^= 1;
    if (strncmp(sigalg, "rsa-", 4) == 0) {
        const char *other = strcmp(sigalg, "rsa-sha2-256") == 0 ? "rsa-sha2-512" : "rsa-sha2-256";

        ck_assert_int_ne(sf_pubkey_verify(k, other, sf_buf_ptr(&out), sf_buf_len(&out), data,
                                          sizeof(data)),
                         0);
    }
    sf_buf_free(&out);
    sf_pubkey_free(k);
    sf_agent_free(a);
    real_stop(&ra);
}
END_TEST

/* An empty agent lists nothing and refuses to sign; the connection stays usable. */
START_TEST(test_agent_real_empty)
{
    struct real_agent ra = { 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a = NULL;
    struct sf_buf out;
    uint8_t blob[2048];
    uint8_t mem[1024];
    char comment[256];
    char why[256];
    size_t bloblen = 0;
    size_t n = 99;
    const char *file = "ed25519";

    if (!real_ready()) {
        return;
    }
    real_start(&ra);
    ck_assert_msg(sf_agent_open(NULL, 5000, &a, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(ids);
    read_pub("other", blob, sizeof(blob), &bloblen, comment, sizeof(comment));
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(sf_agent_sign(a, blob, bloblen, "ssh-ed25519", blob, 10, &out),
                     SF_ERR_AGENT);
    ck_assert_uint_eq(sf_buf_len(&out), 0);
    /* A key held, another not: the one not held is still refused. */
    real_add(&file, 1);
    ck_assert_int_eq(sf_agent_list(a, &ids, &n), 0);
    ck_assert_uint_eq(n, 1);
    sf_agent_ids_free(ids, n);
    ck_assert_int_eq(sf_agent_sign(a, blob, bloblen, "ssh-ed25519", blob, 10, &out),
                     SF_ERR_AGENT);
    sf_agent_free(a);
    real_stop(&ra);
}
END_TEST

/* The agent is killed after open: list and sign fail (no hang, no crash). */
START_TEST(test_agent_real_killed)
{
    struct real_agent ra = { 0 };
    struct sf_agent_id *ids = NULL;
    struct sf_agent *a = NULL;
    struct sf_buf out;
    uint8_t mem[1024];
    char why[256];
    size_t n = 0;
    int r;

    if (!real_ready()) {
        return;
    }
    real_start(&ra);
    ck_assert_msg(sf_agent_open(NULL, 5000, &a, why, sizeof(why)) == 0, "%s", why);
    ck_assert_int_eq(kill(ra.pid, SIGKILL), 0);
    ck_assert_int_eq(sf_test_wait(ra.pid, 5000), 128 + SIGKILL);
    ra.pid = 0;
    r = sf_agent_list(a, &ids, &n);
    ck_assert_msg(r == SF_ERR_AGENT, "%d: %s", r, sf_agent_why(a));
    ck_assert_ptr_null(ids);
    sf_buf_init_mem(&out, mem, sizeof(mem));
    ck_assert_int_eq(sf_agent_sign(a, mem, 8, "ssh-ed25519", mem, 8, &out), SF_ERR_AGENT);
    sf_agent_free(a);
    real_stop(&ra);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
agent_suite(void)
{
    Suite *s = suite_create("agent");
    TCase *tc;

    tc = tcase_create("fake-list");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_agent_list_good);
    tcase_add_test(tc, test_agent_list_empty);
    tcase_add_test(tc, test_agent_list_truncated);
    tcase_add_test(tc, test_agent_list_cut);
    tcase_add_loop_test(tc, test_agent_list_oversize, 0, 3);
    tcase_add_test(tc, test_agent_list_max);
    tcase_add_loop_test(tc, test_agent_list_wrong_type, 0, 6);
    tcase_add_loop_test(tc, test_agent_list_failure, 0, 3);
    tcase_add_test(tc, test_agent_list_failure_trailing);
    tcase_add_test(tc, test_agent_list_trailing);
    tcase_add_loop_test(tc, test_agent_list_nkeys, 0, 4);
    tcase_add_loop_test(tc, test_agent_list_bad_entry, 0, 5);
    tcase_add_loop_test(tc, test_agent_list_nomem, 0, 8);
    tcase_add_test(tc, test_agent_list_timeout);
    tcase_add_loop_test(tc, test_agent_list_timeout_partial, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("fake-sign");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_agent_sign_good, 0, (int)NELEM(sign_cases));
    tcase_add_loop_test(tc, test_agent_sign_wrong_alg, 0, 7);
    tcase_add_test(tc, test_agent_sign_truncated);
    tcase_add_test(tc, test_agent_sign_blob_truncated);
    tcase_add_loop_test(tc, test_agent_sign_malformed, 0, 5);
    tcase_add_loop_test(tc, test_agent_sign_wrong_type, 0, 4);
    tcase_add_loop_test(tc, test_agent_sign_cut_and_silent, 0, 2);
    tcase_add_test(tc, test_agent_sign_args);
    tcase_add_test(tc, test_agent_sign_big_and_no_space);
    tcase_add_test(tc, test_agent_from_flow_args);
    suite_add_tcase(s, tc);

    tc = tcase_create("connect");
    tcase_set_timeout(tc, 30);
    tcase_add_unchecked_fixture(tc, real_setup, real_teardown);
    tcase_add_test(tc, test_connect_unix_ok);
    tcase_add_test(tc, test_connect_unix_errors);
    tcase_add_test(tc, test_connect_unix_backlog_timeout);
    tcase_add_test(tc, test_agent_open_env);
    tcase_add_test(tc, test_agent_open_timeout);
    tcase_add_test(tc, test_agent_real_list);
    tcase_add_loop_test(tc, test_agent_real_sign, 0, (int)NELEM(real_keys));
    tcase_add_test(tc, test_agent_real_empty);
    tcase_add_test(tc, test_agent_real_killed);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(agent_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
