/*
 * check/check_flow.c -- tests for the generic flow calls (src/flow.c) and
 * the fd flow and TCP connect (src/flow_fd.c).
 *
 * Must never: hang. Every wait on another thread or on a descriptor is
 * bounded (WAIT_MS), so a bug fails its test instead of blocking the run.
 */
#include "flow.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 5000          /* bound on any wait for another thread or fd */
#define BIG_LEN (4 * 1024 * 1024) /* larger than any socket or pipe buffer */

/* ------------------------------------------------------------------------ */
/* A user-defined flow that counts calls                                    */
/* ------------------------------------------------------------------------ */

struct ucount {
    int read, write, writev, shutdown, close, abort, free, close_timeout;
    int last_timeout;
};

struct uctx {
    struct ucount *n;
    uint8_t data[256]; /* read from the front, written at the back */
    size_t len;
    size_t rpos;
    ssize_t read_ret;  /* if nonzero, read returns this without touching err */
    int write_ret;     /* if nonzero, write returns this */
};

static ssize_t
u_read(void *ctx, void *buf, size_t len, sshflow_error *err)
{
    struct uctx *u = ctx;
    size_t n;

    u->n->read++;
    if (u->read_ret != 0) {
        return u->read_ret;
    }
    n = u->len - u->rpos;
    if (n > len) {
        n = len;
    }
    memcpy(buf, u->data + u->rpos, n);
    u->rpos += n;
    return (ssize_t)n;
}

static int
u_write(void *ctx, const void *buf, size_t len, sshflow_error *err)
{
    struct uctx *u = ctx;

    u->n->write++;
    if (u->write_ret != 0) {
        return u->write_ret;
    }
    if (len > sizeof(u->data) - u->len) {
        return SSHFLOW_ERR_NOMEM;
    }
    memcpy(u->data + u->len, buf, len);
    u->len += len;
    return 0;
}

static int
u_writev(void *ctx, const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    struct uctx *u = ctx;
    int i;

    u->n->writev++;
    for (i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > sizeof(u->data) - u->len) {
            return SSHFLOW_ERR_NOMEM;
        }
        memcpy(u->data + u->len, iov[i].iov_base, iov[i].iov_len);
        u->len += iov[i].iov_len;
    }
    return 0;
}

static int
u_shutdown(void *ctx, sshflow_error *err)
{
    ((struct uctx *)ctx)->n->shutdown++;
    return 0;
}

static int
u_close(void *ctx, sshflow_error *err)
{
    ((struct uctx *)ctx)->n->close++;
    return 0;
}

static void
u_abort(void *ctx)
{
    ((struct uctx *)ctx)->n->abort++;
}

static void
u_free(void *ctx)
{
    struct uctx *u = ctx;

    u->n->free++;
    free(u);
}

static int
u_close_timeout(void *ctx, int timeout_ms, sshflow_error *err)
{
    struct uctx *u = ctx;

    u->n->close_timeout++;
    u->n->last_timeout = timeout_ms;
    return 0;
}

static const sshflow_flow_ops u_ops_full = {
    .read = u_read,
    .write = u_write,
    .writev = u_writev,
    .shutdown = u_shutdown,
    .close = u_close,
    .abort = u_abort,
    .free = u_free,
};

/* Only the required ops plus free: writev falls back to write. */
static const sshflow_flow_ops u_ops_min = {
    .read = u_read,
    .write = u_write,
    .free = u_free,
};

static sshflow_flow *
u_new(const sshflow_flow_ops *ops, struct ucount *n, const char *data, struct uctx **out)
{
    struct uctx *u = calloc(1, sizeof(*u));
    sshflow_flow *f = NULL;

    ck_assert_ptr_nonnull(u);
    memset(n, 0, sizeof(*n));
    u->n = n;
    if (data != NULL) {
        u->len = strlen(data);
        memcpy(u->data, data, u->len);
    }
    f = sshflow_flow_new(ops, u);
    ck_assert_ptr_nonnull(f);
    if (out != NULL) {
        *out = u;
    }
    return f;
}

START_TEST(test_sshflow_flow_new_bad_ops)
{
    static const sshflow_flow_ops no_read = {.write = u_write};
    static const sshflow_flow_ops no_write = {.read = u_read};
    int dummy = 0;

    ck_assert_ptr_null(sshflow_flow_new(NULL, &dummy));
    ck_assert_ptr_null(sshflow_flow_new(&no_read, &dummy));
    ck_assert_ptr_null(sshflow_flow_new(&no_write, &dummy));
}
END_TEST

START_TEST(test_sshflow_flow_new_nomem)
{
    struct ucount n;
    struct uctx *u = calloc(1, sizeof(*u));

    ck_assert_ptr_nonnull(u);
    memset(&n, 0, sizeof(n));
    u->n = &n;
    sf_alloc_fail_after(1);
    ck_assert_ptr_null(sshflow_flow_new(&u_ops_full, u));
    sf_alloc_fail_after(0);
    ck_assert_int_eq(n.free, 0); /* ops->free is not called on failure */
    free(u);
}
END_TEST

START_TEST(test_sshflow_free_once)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, NULL, NULL);

    ck_assert_ptr_eq(f->ops, &u_ops_full);
    ck_assert_ptr_null(f->host);
    ck_assert_uint_eq(f->port, 0);
    sshflow_free(f);
    ck_assert_int_eq(n.free, 1);
    ck_assert_int_eq(n.close, 0);
    sshflow_free(NULL);
}
END_TEST

START_TEST(test_sshflow_free_after_close_once)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, NULL, NULL);

    ck_assert_int_eq(sshflow_close(f, NULL), 0);
    sshflow_free(f);
    ck_assert_int_eq(n.free, 1);
    ck_assert_int_eq(n.close, 1);
}
END_TEST

START_TEST(test_sshflow_write_user)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_full, &n, NULL, &u);
    sshflow_error err;

    ck_assert_int_eq(sshflow_write(f, "abc", 3, &err), 0);
    ck_assert_int_eq(err.kind, 0);
    ck_assert_int_eq(sshflow_write(f, "de", 2, NULL), 0);
    ck_assert_int_eq(sshflow_write(f, NULL, 0, &err), 0); /* nothing to do: op not called */
    ck_assert_int_eq(n.write, 2);
    ck_assert_uint_eq(u->len, 5);
    ck_assert_mem_eq(u->data, "abcde", 5);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_writev_fallback)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_min, &n, NULL, &u);
    struct iovec iov[4] = {
        {(void *)"ab", 2}, {NULL, 0}, {(void *)"cde", 3}, {(void *)"f", 1},
    };

    ck_assert_int_eq(sshflow_writev(f, iov, 4, NULL), 0);
    ck_assert_int_eq(n.write, 3); /* one write per non-empty buffer, in order */
    ck_assert_uint_eq(u->len, 6);
    ck_assert_mem_eq(u->data, "abcdef", 6);
    ck_assert_int_eq(sshflow_writev(f, iov, 0, NULL), 0);
    ck_assert_int_eq(n.write, 3);
    sshflow_free(f);
    ck_assert_int_eq(n.free, 1);
}
END_TEST

START_TEST(test_sshflow_writev_fallback_stops_on_error)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_min, &n, NULL, &u);
    struct iovec iov[2] = {{(void *)"ab", 2}, {(void *)"cd", 2}};
    sshflow_error err;

    u->write_ret = SSHFLOW_ERR_TIMEOUT;
    ck_assert_int_eq(sshflow_writev(f, iov, 2, &err), SSHFLOW_ERR_TIMEOUT);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_TIMEOUT); /* filled though the op did not */
    ck_assert_int_eq(n.write, 1);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_writev_native)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_full, &n, NULL, &u);
    struct iovec iov[3] = {{(void *)"ab", 2}, {(void *)"cd", 2}, {(void *)"e", 1}};

    ck_assert_int_eq(sshflow_writev(f, iov, 3, NULL), 0);
    ck_assert_int_eq(n.writev, 1);
    ck_assert_int_eq(n.write, 0);
    ck_assert_mem_eq(u->data, "abcde", 5);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_read_into_user)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, "hello", NULL);
    char buf[8];

    ck_assert_int_eq(sshflow_read_into(f, buf, 3, NULL), 3);
    ck_assert_mem_eq(buf, "hel", 3);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), NULL), 2);
    ck_assert_mem_eq(buf, "lo", 2);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), NULL), 0);
    ck_assert_int_eq(n.read, 3);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_read_user)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, "hello", NULL);
    uint8_t *out = (uint8_t *)&n;
    size_t outlen = 99;

    ck_assert_int_eq(sshflow_read(f, &out, &outlen, NULL), 0);
    ck_assert_uint_eq(outlen, 5);
    ck_assert_mem_eq(out, "hello", 5);
    free(out);
    ck_assert_int_eq(sshflow_read(f, &out, &outlen, NULL), SSHFLOW_EOF);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(outlen, 0);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_read_op_errors)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_full, &n, "hello", &u);
    uint8_t *out = NULL;
    size_t outlen = 0;
    char buf[4];
    sshflow_error err;

    /* a failure the op did not describe still fills err */
    u->read_ret = SSHFLOW_ERR_TIMEOUT;
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), SSHFLOW_ERR_TIMEOUT);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_TIMEOUT);
    ck_assert_str_ne(err.detail, "");
    ck_assert_int_eq(sshflow_read(f, &out, &outlen, &err), SSHFLOW_ERR_TIMEOUT);
    ck_assert_ptr_null(out);
    /* not a kind at all */
    u->read_ret = -1000;
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_FLOW);
    /* more bytes than asked for: a broken op */
    u->read_ret = 5;
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), SSHFLOW_ERR_INTERNAL);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_INTERNAL);
    /* success clears a stale error */
    u->read_ret = 0;
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), 4);
    ck_assert_int_eq(err.kind, 0);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_write_op_errors)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_full, &n, NULL, &u);
    sshflow_error err;

    u->write_ret = 3; /* a POSIX-minded op returning a count: success */
    ck_assert_int_eq(sshflow_write(f, "abc", 3, &err), 0);
    u->write_ret = -77;
    ck_assert_int_eq(sshflow_write(f, "abc", 3, &err), SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_FLOW);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_close_user)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, "data", NULL);
    struct iovec iov = {(void *)"x", 1};
    char buf[4];
    sshflow_error err;

    ck_assert_int_eq(sshflow_close(f, &err), 0);
    ck_assert_int_eq(n.close, 1);
    ck_assert_int_eq(n.abort, 1); /* close wakes a blocked reader */
    ck_assert(atomic_load(&f->closed));
    ck_assert_int_eq(sshflow_close(f, &err), 0); /* second close: harmless */
    ck_assert_int_eq(sshflow_close_timeout(f, 0, &err), 0);
    ck_assert_int_eq(n.close, 1);
    ck_assert_int_eq(n.abort, 1);
    ck_assert_int_eq(sshflow_write(f, "x", 1, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_writev(f, &iov, 1, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_shutdown(f, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(n.write + n.writev + n.read + n.shutdown, 0);
    sshflow_free(f);
    ck_assert_int_eq(n.free, 1);
}
END_TEST

START_TEST(test_sshflow_close_no_op)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_min, &n, NULL, NULL);

    ck_assert_int_eq(sshflow_close(f, NULL), 0);
    ck_assert_int_eq(sshflow_write(f, "x", 1, NULL), SSHFLOW_ERR_CLOSED);
    sshflow_free(f);
    ck_assert_int_eq(n.free, 1);
}
END_TEST

START_TEST(test_sshflow_close_timeout_hook)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, NULL, NULL);

    f->close_timeout = u_close_timeout;
    ck_assert_int_eq(sshflow_close_timeout(f, 1234, NULL), 0);
    ck_assert_int_eq(n.close_timeout, 1);
    ck_assert_int_eq(n.last_timeout, 1234);
    ck_assert_int_eq(n.close, 0); /* the bounded close replaces ops->close */
    ck_assert_int_eq(sshflow_close(f, NULL), 0);
    ck_assert_int_eq(n.close_timeout, 1);
    sshflow_free(f);

    f = u_new(&u_ops_full, &n, NULL, NULL);
    f->close_timeout = u_close_timeout;
    ck_assert_int_eq(sshflow_close(f, NULL), 0);
    ck_assert_int_eq(n.last_timeout, -1); /* sshflow_close waits without bound */
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_shutdown_user)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, "abc", NULL);
    struct iovec iov = {(void *)"x", 1};
    char buf[4];
    sshflow_error err;

    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    ck_assert_int_eq(n.shutdown, 1);
    ck_assert_int_eq(sshflow_write(f, "x", 1, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_writev(f, &iov, 1, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(n.write + n.writev, 0);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), 3); /* reads go on */
    sshflow_free(f);

    f = u_new(&u_ops_min, &n, NULL, NULL);
    ck_assert_int_eq(sshflow_shutdown(f, &err), SSHFLOW_ERR_INVALID); /* no way to half-close */
    ck_assert_int_eq(sshflow_write(f, "x", 1, &err), 0);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sf_flow_abort_once)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, "abc", NULL);
    char buf[4];

    sf_flow_abort(f);
    sf_flow_abort(f);
    ck_assert_int_eq(n.abort, 1);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), NULL), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_write(f, "x", 1, NULL), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_close(f, NULL), 0);
    ck_assert_int_eq(n.abort, 1); /* close does not abort twice */
    sshflow_free(f);
    sf_flow_abort(NULL);

    f = u_new(&u_ops_min, &n, NULL, NULL); /* no abort op: still marked */
    sf_flow_abort(f);
    ck_assert(atomic_load(&f->aborted));
    sshflow_free(f);
}
END_TEST

START_TEST(test_sf_flow_dispatch)
{
    struct ucount n;
    struct uctx *u = NULL;
    sshflow_flow *f = u_new(&u_ops_min, &n, "xy", &u);
    struct iovec iov[2] = {{(void *)"ab", 2}, {(void *)"c", 1}};
    sshflow_error err;
    char buf[8];

    ck_assert_int_eq(sf_flow_read(f, buf, sizeof(buf), &err), 2);
    ck_assert_int_eq(sf_flow_write(f, "12", 2, &err), 0);
    ck_assert_int_eq(sf_flow_writev(f, iov, 2, &err), 0);
    ck_assert_int_eq(n.read, 1);
    ck_assert_int_eq(n.write, 3);
    ck_assert_uint_eq(u->len, 7);
    ck_assert_mem_eq(u->data, "xy12abc", 7);
    sshflow_free(f);

    f = u_new(&u_ops_full, &n, NULL, &u);
    ck_assert_int_eq(sf_flow_writev(f, iov, 2, &err), 0);
    ck_assert_int_eq(n.writev, 1);
    ck_assert_int_eq(n.write, 0);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sf_flow_set_peer)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_min, &n, NULL, NULL);
    char name[] = "example.org";

    ck_assert_int_eq(sf_flow_set_peer(f, name, 22), 0);
    name[0] = 'X'; /* copied, not borrowed */
    ck_assert_str_eq(f->host, "example.org");
    ck_assert_uint_eq(f->port, 22);
    ck_assert_int_eq(sf_flow_set_peer(f, "::1", 2222), 0);
    ck_assert_str_eq(f->host, "::1");
    ck_assert_uint_eq(f->port, 2222);
    sf_alloc_fail_after(1);
    ck_assert_int_eq(sf_flow_set_peer(f, "other", 1), SSHFLOW_ERR_NOMEM);
    sf_alloc_fail_after(0);
    ck_assert_str_eq(f->host, "::1"); /* unchanged on failure */
    ck_assert_int_eq(sf_flow_set_peer(f, NULL, 0), 0);
    ck_assert_ptr_null(f->host);
    ck_assert_int_eq(sf_flow_set_peer(f, "last", 7), 0);
    sshflow_free(f); /* frees host (ASan/valgrind would see a leak) */
}
END_TEST

START_TEST(test_flow_args)
{
    struct ucount n;
    sshflow_flow *f = u_new(&u_ops_full, &n, "abc", NULL);
    struct iovec bad[2] = {{(void *)"a", 1}, {NULL, 3}};
    uint8_t *out = NULL;
    size_t outlen = 0;
    char buf[4];
    sshflow_error err;

    ck_assert_int_eq(sshflow_read_into(NULL, buf, 1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_read_into(f, NULL, 1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_read_into(f, buf, 0, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_read_into(f, NULL, 0, NULL), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_read(NULL, &out, &outlen, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_read(f, NULL, &outlen, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_read(f, &out, NULL, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_write(NULL, "a", 1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_write(f, NULL, 1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_writev(NULL, bad, 1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_writev(f, bad, -1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_writev(f, NULL, 1, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_writev(f, bad, 2, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_writev(f, NULL, 0, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(NULL, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_close(NULL, &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_close_timeout(NULL, 0, NULL), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(n.read + n.write + n.writev + n.shutdown + n.close, 0);
    sshflow_free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Helpers for descriptors and threads                                      */
/* ------------------------------------------------------------------------ */

/* src/flow_fd.c test hook: false = no private O_NONBLOCK reopening of pipes. */
extern bool sf_flow_fd_reopen_pipes;

/*
 * A flow and the raw descriptors of its peer. Kind 0: a socketpair (one
 * descriptor each side); kind 1: two pipes (flow reads one, writes the
 * other); kind 2: the same without the pipe reopening (the poll + PIPE_BUF
 * path, which is what other systems get).
 */
#define KINDS 3
struct pair {
    sshflow_flow *f;
    int frfd, fwfd;      /* the flow's descriptors */
    int peer_r, peer_w;  /* the other side (equal for a socketpair) */
};

static void
pair_open(struct pair *p, int kind, bool own)
{
    int a[2];
    int b[2];

    memset(p, 0, sizeof(*p));
    if (kind == 0) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
        p->frfd = p->fwfd = a[0];
        p->peer_r = p->peer_w = a[1];
    } else {
        ck_assert_int_eq(pipe(a), 0); /* flow -> peer */
        ck_assert_int_eq(pipe(b), 0); /* peer -> flow */
        p->fwfd = a[1];
        p->peer_r = a[0];
        p->frfd = b[0];
        p->peer_w = b[1];
    }
    sf_flow_fd_reopen_pipes = kind != 2;
    p->f = sshflow_flow_from_fds(p->frfd, p->fwfd, own);
    sf_flow_fd_reopen_pipes = true;
    ck_assert_ptr_nonnull(p->f);
}

static void
close_peer(struct pair *p)
{
    if (p->peer_r >= 0) {
        close(p->peer_r);
    }
    if (p->peer_w >= 0 && p->peer_w != p->peer_r) {
        close(p->peer_w);
    }
    p->peer_r = p->peer_w = -1;
}

static void
pair_close(struct pair *p)
{
    sshflow_free(p->f);
    p->f = NULL;
    close_peer(p);
}

static bool
fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* Read exactly n bytes from a raw descriptor, each wait bounded. */
static void
raw_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        ssize_t r;

        ck_assert_msg(poll(&pf, 1, WAIT_MS) == 1, "peer read: no data in time");
        r = read(fd, (uint8_t *)buf + got, n - got);
        ck_assert_msg(r > 0, "peer read: %zd (%s)", r, strerror(errno));
        got += (size_t)r;
    }
}

/* Expect end of stream on a raw descriptor within the bound. */
static void
raw_expect_eof(int fd)
{
    struct pollfd pf = {fd, POLLIN, 0};
    char c;

    ck_assert_msg(poll(&pf, 1, WAIT_MS) == 1, "peer: no end of stream in time");
    ck_assert_int_eq(read(fd, &c, 1), 0);
}

/* Expect EPIPE writing to fd: every reader on the other side has gone. */
static void
raw_expect_reader_gone(int fd)
{
    ck_assert(signal(SIGPIPE, SIG_IGN) != SIG_ERR);
    errno = 0;
    ck_assert_int_eq(write(fd, "z", 1), -1);
    ck_assert_int_eq(errno, EPIPE);
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
}

static void
raw_write_full(int fd, const void *buf, size_t n)
{
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
}

static uint8_t *
pattern(size_t n, unsigned seed)
{
    uint8_t *p = malloc(n);
    size_t i;

    ck_assert_ptr_nonnull(p);
    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)((i * 131u + seed + (i >> 9)) & 0xff);
    }
    return p;
}

/*
 * A thread whose end the test waits for with a bound. On timeout it is left
 * running (and its struct leaked) and the test fails.
 */
struct worker {
    pthread_t tid;
    sem_t done;
    void (*fn)(struct worker *);
    sshflow_flow *f;
    int fd;
    size_t len;         /* bytes to read or write */
    const uint8_t *src; /* for writers */
    uint8_t *got;       /* for readers: len bytes */
    ssize_t ret;
    sshflow_error err;
};

static void *
worker_main(void *arg)
{
    struct worker *w = arg;

    w->fn(w);
    sem_post(&w->done);
    return NULL;
}

static struct worker *
worker_start(void (*fn)(struct worker *), sshflow_flow *f, int fd, size_t len,
             const uint8_t *src)
{
    struct worker *w = calloc(1, sizeof(*w));

    ck_assert_ptr_nonnull(w);
    w->fn = fn;
    w->f = f;
    w->fd = fd;
    w->len = len;
    w->src = src;
    if (len > 0 && src == NULL) {
        w->got = malloc(len);
        ck_assert_ptr_nonnull(w->got);
    }
    ck_assert_int_eq(sem_init(&w->done, 0, 0), 0);
    ck_assert_int_eq(pthread_create(&w->tid, NULL, worker_main, w), 0);
    return w;
}

/* Wait for the worker (bounded), join it, and return it for inspection. */
static void
worker_join(struct worker *w)
{
    struct timespec ts;
    int r;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    while ((r = sem_timedwait(&w->done, &ts)) != 0 && errno == EINTR) {
    }
    ck_assert_msg(r == 0, "worker thread did not finish within %d ms", WAIT_MS);
    ck_assert_int_eq(pthread_join(w->tid, NULL), 0);
    sem_destroy(&w->done);
}

static void
worker_free(struct worker *w)
{
    free(w->got);
    free(w);
}

/* Let a worker reach its blocking call. Correctness does not depend on it. */
static void
settle(void)
{
    struct timespec ts = {0, 50 * 1000 * 1000};

    nanosleep(&ts, NULL);
}

/* Reader of a raw descriptor: exactly len bytes (each wait bounded). */
static void
w_raw_reader(struct worker *w)
{
    size_t got = 0;

    while (got < w->len) {
        struct pollfd pf = {w->fd, POLLIN, 0};
        ssize_t r;

        if (poll(&pf, 1, WAIT_MS) != 1) {
            break;
        }
        if ((r = read(w->fd, w->got + got, w->len - got)) <= 0) {
            break;
        }
        got += (size_t)r;
    }
    w->ret = (ssize_t)got;
}

/* One blocking flow read into a small buffer. */
static void
w_flow_read(struct worker *w)
{
    char buf[64];

    w->ret = sshflow_read_into(w->f, buf, sizeof(buf), &w->err);
}

/* One flow write of len bytes from src. */
static void
w_flow_write(struct worker *w)
{
    w->ret = sshflow_write(w->f, w->src, w->len, &w->err);
}

/* ------------------------------------------------------------------------ */
/* fd flow                                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_sshflow_flow_from_fds_bad)
{
    ck_assert_ptr_null(sshflow_flow_from_fds(-1, 1, false));
    ck_assert_ptr_null(sshflow_flow_from_fds(0, -1, false));
}
END_TEST

START_TEST(test_sshflow_flow_from_fds_roundtrip)
{
    struct pair p;
    char buf[16];
    sshflow_error err;

    pair_open(&p, _i, true);
    ck_assert_int_eq(sshflow_write(p.f, "ping", 4, &err), 0);
    raw_read_full(p.peer_r, buf, 4);
    ck_assert_mem_eq(buf, "ping", 4);
    raw_write_full(p.peer_w, "pong!", 5);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), &err), 5);
    ck_assert_mem_eq(buf, "pong!", 5);
    /* a short buffer takes part of what is there; the rest comes next */
    raw_write_full(p.peer_w, "abcdef", 6);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, 4, &err), 4);
    ck_assert_mem_eq(buf, "abcd", 4);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), &err), 2);
    ck_assert_mem_eq(buf, "ef", 2);
    pair_close(&p);
}
END_TEST

START_TEST(test_sshflow_flow_from_fds_two_flows)
{
    int sv[2];
    sshflow_flow *a = NULL;
    sshflow_flow *b = NULL;
    uint8_t *out = NULL;
    size_t outlen = 0;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    a = sshflow_flow_from_fds(sv[0], sv[0], true);
    b = sshflow_flow_from_fds(sv[1], sv[1], true);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(sshflow_write(a, "hello", 5, NULL), 0);
    ck_assert_int_eq(sshflow_read(b, &out, &outlen, NULL), 0);
    ck_assert_uint_eq(outlen, 5);
    ck_assert_mem_eq(out, "hello", 5);
    free(out);
    ck_assert_int_eq(sshflow_close(a, NULL), 0);
    ck_assert_int_eq(sshflow_read(b, &out, &outlen, NULL), SSHFLOW_EOF);
    ck_assert_ptr_null(out);
    sshflow_free(a);
    sshflow_free(b);
}
END_TEST

START_TEST(test_sshflow_read_eof)
{
    struct pair p;
    uint8_t *out = NULL;
    size_t outlen = 0;
    char buf[8];

    pair_open(&p, _i, true);
    raw_write_full(p.peer_w, "x", 1);
    close_peer(&p);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), NULL), 1);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), NULL), 0);
    ck_assert_int_eq(sshflow_read(p.f, &out, &outlen, NULL), SSHFLOW_EOF);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(outlen, 0);
    pair_close(&p);
}
END_TEST

START_TEST(test_sshflow_read_fresh_buffer)
{
    struct pair p;
    uint8_t *data = pattern(40000, 7);
    uint8_t *out = NULL;
    size_t outlen = 0;
    size_t got = 0;
    int calls = 0;

    pair_open(&p, _i, true);
    raw_write_full(p.peer_w, data, 100);
    ck_assert_int_eq(sshflow_read(p.f, &out, &outlen, NULL), 0);
    ck_assert_uint_eq(outlen, 100);
    ck_assert_mem_eq(out, data, 100);
    free(out);
    /* more than one read's worth: several fresh buffers, each at most 32 KiB */
    raw_write_full(p.peer_w, data, 40000);
    while (got < 40000) {
        ck_assert_int_eq(sshflow_read(p.f, &out, &outlen, NULL), 0);
        ck_assert_uint_ge(outlen, 1);
        ck_assert_uint_le(outlen, 32 * 1024);
        ck_assert_uint_le(got + outlen, 40000);
        ck_assert_mem_eq(out, data + got, outlen);
        got += outlen;
        free(out);
        calls++;
    }
    ck_assert_int_ge(calls, 2);
    pair_close(&p);
    free(data);
}
END_TEST

START_TEST(test_sshflow_write_large)
{
    struct pair p;
    uint8_t *data = pattern(BIG_LEN, 3);
    struct worker *w = NULL;
    sshflow_error err;

    pair_open(&p, _i, true);
    w = worker_start(w_raw_reader, NULL, p.peer_r, BIG_LEN, NULL);
    ck_assert_int_eq(sshflow_write(p.f, data, BIG_LEN, &err), 0);
    worker_join(w);
    ck_assert_int_eq(w->ret, BIG_LEN);
    ck_assert(memcmp(w->got, data, BIG_LEN) == 0);
    worker_free(w);
    pair_close(&p);
    free(data);
}
END_TEST

START_TEST(test_sshflow_writev_many)
{
    enum { NSMALL = 3000 };
    struct pair p;
    struct iovec *iov = calloc(NSMALL + 1, sizeof(*iov));
    uint8_t *big = pattern(BIG_LEN, 9);
    uint8_t *small = pattern(NSMALL * 8, 1);
    uint8_t *want = NULL;
    size_t total = 0;
    size_t off = 0;
    struct worker *w = NULL;
    int i;
    int k = 0;
    sshflow_error err;

    ck_assert_ptr_nonnull(iov);
    /* more buffers than IOV_MAX, some empty, with a big one in the middle */
    for (i = 0; i < NSMALL; i++) {
        if (i == NSMALL / 2) {
            iov[k].iov_base = big;
            iov[k].iov_len = BIG_LEN;
            total += BIG_LEN;
            k++;
        }
        iov[k].iov_base = small + off;
        iov[k].iov_len = (size_t)(i % 8);
        off += (size_t)(i % 8);
        total += (size_t)(i % 8);
        k++;
    }
    want = malloc(total);
    ck_assert_ptr_nonnull(want);
    off = 0;
    for (i = 0; i < k; i++) {
        memcpy(want + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    pair_open(&p, _i, true);
    w = worker_start(w_raw_reader, NULL, p.peer_r, total, NULL);
    ck_assert_int_eq(sshflow_writev(p.f, iov, k, &err), 0);
    worker_join(w);
    ck_assert_int_eq(w->ret, (ssize_t)total);
    ck_assert(memcmp(w->got, want, total) == 0);
    worker_free(w);

    /* the same through the internal dispatcher, small buffers only */
    w = worker_start(w_raw_reader, NULL, p.peer_r, off - BIG_LEN, NULL);
    ck_assert_int_eq(sf_flow_writev(p.f, iov, NSMALL / 2, &err), 0);
    ck_assert_int_eq(sf_flow_writev(p.f, iov + NSMALL / 2 + 1, k - NSMALL / 2 - 1, &err), 0);
    worker_join(w);
    ck_assert_int_eq(w->ret, (ssize_t)(off - BIG_LEN));
    pair_close(&p);
    worker_free(w);
    free(want);
    free(small);
    free(big);
    free(iov);
}
END_TEST

START_TEST(test_sshflow_write_nonblocking_fd)
{
    int a[2];
    uint8_t *data = pattern(BIG_LEN, 5);
    sshflow_flow *f = NULL;
    struct worker *w = NULL;

    /* a pipe someone made O_NONBLOCK: EAGAIN is waited out, not an error */
    ck_assert_int_eq(pipe(a), 0);
    ck_assert_int_eq(fcntl(a[1], F_SETFL, fcntl(a[1], F_GETFL) | O_NONBLOCK), 0);
    f = sshflow_flow_from_fds(a[0], a[1], false);
    ck_assert_ptr_nonnull(f);
    w = worker_start(w_raw_reader, NULL, a[0], BIG_LEN, NULL);
    ck_assert_int_eq(sshflow_write(f, data, BIG_LEN, NULL), 0);
    worker_join(w);
    ck_assert_int_eq(w->ret, BIG_LEN);
    ck_assert(memcmp(w->got, data, BIG_LEN) == 0);
    worker_free(w);
    sshflow_free(f);
    close(a[0]);
    close(a[1]);
    free(data);
}
END_TEST

START_TEST(test_sshflow_shutdown_fd)
{
    struct pair p;
    struct iovec iov = {(void *)"x", 1};
    char buf[8];
    sshflow_error err;

    pair_open(&p, _i, true);
    ck_assert_int_eq(sshflow_write(p.f, "last", 4, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(p.f, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(p.f, &err), 0);
    ck_assert_int_eq(sshflow_write(p.f, "x", 1, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_writev(p.f, &iov, 1, &err), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sf_flow_write(p.f, "x", 1, &err), SSHFLOW_ERR_CLOSED); /* the op itself too */
    /* the peer gets what was written, then end of stream */
    raw_read_full(p.peer_r, buf, 4);
    ck_assert_mem_eq(buf, "last", 4);
    raw_expect_eof(p.peer_r);
    /* reads go on */
    raw_write_full(p.peer_w, "more", 4);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), &err), 4);
    ck_assert_mem_eq(buf, "more", 4);
    ck_assert_int_eq(sshflow_close(p.f, &err), 0);
    pair_close(&p);
}
END_TEST

START_TEST(test_sf_flow_abort_wakes_reader)
{
    struct pair p;
    struct worker *w = NULL;
    char buf[4];

    pair_open(&p, _i, true);
    w = worker_start(w_flow_read, p.f, -1, 0, NULL);
    settle();
    sf_flow_abort(p.f);
    worker_join(w);
    ck_assert_int_eq(w->ret, SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(w->err.kind, SSHFLOW_ERR_CLOSED);
    worker_free(w);
    /* after abort everything fails, even with data waiting and via the ops */
    raw_write_full(p.peer_w, "data", 4);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), NULL), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sf_flow_read(p.f, buf, sizeof(buf), NULL), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sf_flow_write(p.f, "x", 1, NULL), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sshflow_write(p.f, "x", 1, NULL), SSHFLOW_ERR_CLOSED);
    pair_close(&p);
}
END_TEST

START_TEST(test_sf_flow_abort_wakes_writer)
{
    struct pair p;
    uint8_t *data = pattern(BIG_LEN, 11);
    struct worker *w = NULL;

    /* nobody reads: the writer fills the buffer and blocks */
    pair_open(&p, _i, true);
    w = worker_start(w_flow_write, p.f, -1, BIG_LEN, data);
    settle();
    sf_flow_abort(p.f);
    worker_join(w);
    ck_assert_int_eq(w->ret, SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(w->err.kind, SSHFLOW_ERR_CLOSED);
    worker_free(w);
    pair_close(&p);
    free(data);
}
END_TEST

START_TEST(test_sshflow_close_wakes_reader)
{
    struct pair p;
    struct worker *w = NULL;
    char buf[4];

    pair_open(&p, _i, true);
    w = worker_start(w_flow_read, p.f, -1, 0, NULL);
    settle();
    ck_assert_int_eq(sshflow_close(p.f, NULL), 0);
    worker_join(w);
    ck_assert_int_eq(w->ret, SSHFLOW_ERR_CLOSED);
    worker_free(w);
    ck_assert_int_eq(sshflow_read_into(p.f, buf, sizeof(buf), NULL), SSHFLOW_ERR_CLOSED);
    ck_assert_int_eq(sf_flow_read(p.f, buf, sizeof(buf), NULL), SSHFLOW_ERR_CLOSED);
    /* owned descriptors are closed by close; the peer sees end of stream */
    ck_assert(!fd_is_open(p.frfd));
    ck_assert(!fd_is_open(p.fwfd));
    raw_expect_eof(p.peer_r);
    raw_expect_reader_gone(p.peer_w); /* no private descriptor left open either */
    pair_close(&p);
}
END_TEST

START_TEST(test_sshflow_close_wakes_writer)
{
    struct pair p;
    uint8_t *data = pattern(BIG_LEN, 13);
    struct worker *w = NULL;

    pair_open(&p, _i, true);
    w = worker_start(w_flow_write, p.f, -1, BIG_LEN, data);
    settle();
    ck_assert_int_eq(sshflow_close(p.f, NULL), 0);
    worker_join(w);
    ck_assert_int_eq(w->ret, SSHFLOW_ERR_CLOSED);
    worker_free(w);
    ck_assert(!fd_is_open(p.fwfd));
    pair_close(&p);
    free(data);
}
END_TEST

START_TEST(test_sshflow_close_not_owned)
{
    struct pair p;
    char buf[4];

    pair_open(&p, _i, false);
    ck_assert_int_eq(sshflow_close(p.f, NULL), 0);
    ck_assert_int_eq(sshflow_close(p.f, NULL), 0);
    sshflow_free(p.f);
    p.f = NULL;
    /* still open and usable: they were never ours */
    ck_assert(fd_is_open(p.frfd));
    ck_assert(fd_is_open(p.fwfd));
    raw_write_full(p.peer_w, "ok", 2);
    raw_read_full(p.frfd, buf, 2);
    ck_assert_mem_eq(buf, "ok", 2);
    close(p.frfd);
    if (p.fwfd != p.frfd) {
        close(p.fwfd);
    }
    close_peer(&p);
}
END_TEST

START_TEST(test_sshflow_free_unclosed_fd)
{
    struct pair p;

    /* free without close tears down and closes owned descriptors */
    pair_open(&p, _i, true);
    sshflow_free(p.f);
    p.f = NULL;
    ck_assert(!fd_is_open(p.frfd));
    ck_assert(!fd_is_open(p.fwfd));
    raw_expect_eof(p.peer_r);
    raw_expect_reader_gone(p.peer_w);
    close_peer(&p);
}
END_TEST

START_TEST(test_sshflow_write_epipe_pipe)
{
    int a[2];
    int b[2];
    sshflow_flow *f = NULL;
    sigset_t pend;
    sigset_t mask;
    sshflow_error err;

    /* the default disposition would kill the process */
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    ck_assert_int_eq(pipe(a), 0);
    ck_assert_int_eq(pipe(b), 0);
    close(a[0]); /* nobody will ever read what we write */
    f = sshflow_flow_from_fds(b[0], a[1], true);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(sshflow_write(f, "x", 1, &err), SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(err.sys_errno, EPIPE);
    ck_assert_str_ne(err.detail, "");
    ck_assert_int_eq(sshflow_write(f, "y", 1, &err), SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(err.sys_errno, EPIPE);
    /* no SIGPIPE left pending, and the thread's mask is as it was */
    ck_assert_int_eq(sigpending(&pend), 0);
    ck_assert(!sigismember(&pend, SIGPIPE));
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    ck_assert(!sigismember(&mask, SIGPIPE));
    sshflow_free(f);
    close(b[1]);
}
END_TEST

START_TEST(test_sshflow_write_epipe_socket)
{
    int sv[2];
    sshflow_flow *f = NULL;
    sshflow_error err;
    int r;

    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    f = sshflow_flow_from_fds(sv[0], sv[0], true);
    ck_assert_ptr_nonnull(f);
    r = sshflow_write(f, "x", 1, &err);
    ck_assert_int_eq(r, SSHFLOW_ERR_FLOW);
    ck_assert_msg(err.sys_errno == EPIPE || err.sys_errno == ECONNRESET, "errno %d",
                  err.sys_errno);
    sshflow_free(f);
}
END_TEST

START_TEST(test_sshflow_writev_fd_empty)
{
    struct pair p;
    struct iovec iov[2] = {{NULL, 0}, {NULL, 0}};

    pair_open(&p, _i, true);
    ck_assert_int_eq(sshflow_writev(p.f, iov, 0, NULL), 0);
    ck_assert_int_eq(sshflow_writev(p.f, iov, 2, NULL), 0);
    ck_assert_int_eq(sf_flow_writev(p.f, iov, 2, NULL), 0);
    ck_assert_int_eq(sf_flow_write(p.f, "", 0, NULL), 0);
    pair_close(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* TCP                                                                      */
/* ------------------------------------------------------------------------ */

/* A socket bound to addr:0 (listening if backlog >= 0); its port in *port. -1 if unavailable. */
static int
tcp_bound(int family, const char *addr, int backlog, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int fd;

    memset(&ss, 0, sizeof(ss));
    if ((fd = socket(family, SOCK_STREAM, 0)) < 0) {
        return -1;
    }
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &s4->sin_addr);
        sl = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        sl = sizeof(*s6);
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
        (backlog >= 0 && listen(fd, backlog) != 0)) {
        close(fd);
        return -1;
    }
    sl = sizeof(ss);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int
accept_bounded(int lfd)
{
    struct pollfd pf = {lfd, POLLIN, 0};
    int fd;

    ck_assert_msg(poll(&pf, 1, WAIT_MS) == 1, "no connection to accept");
    fd = accept(lfd, NULL, NULL);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void
tcp_roundtrip(const char *host, int family, const char *bindaddr, const char *want_host)
{
    uint16_t port = 0;
    int lfd = tcp_bound(family, bindaddr, 4, &port);
    int sfd;
    sshflow_flow *f = NULL;
    char buf[8];
    sshflow_error err;

    ck_assert_int_ge(lfd, 0);
    f = sshflow_connect_tcp(host, port, 2000, &err);
    ck_assert_msg(f != NULL, "connect %s: %s", host, err.detail);
    ck_assert_str_eq(f->host, want_host);
    ck_assert_uint_eq(f->port, port);
    sfd = accept_bounded(lfd);
    ck_assert_int_eq(sshflow_write(f, "hi", 2, &err), 0);
    raw_read_full(sfd, buf, 2);
    ck_assert_mem_eq(buf, "hi", 2);
    raw_write_full(sfd, "yo", 2);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), 2);
    ck_assert_mem_eq(buf, "yo", 2);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    raw_expect_eof(sfd);
    close(sfd);
    ck_assert_int_eq(sshflow_read_into(f, buf, sizeof(buf), &err), 0);
    ck_assert_int_eq(sshflow_close(f, &err), 0);
    sshflow_free(f);
    close(lfd);
}

START_TEST(test_sshflow_connect_tcp_ipv4)
{
    tcp_roundtrip("127.0.0.1", AF_INET, "127.0.0.1", "127.0.0.1");
}
END_TEST

START_TEST(test_sshflow_connect_tcp_ipv6)
{
    uint16_t port = 0;
    int probe = tcp_bound(AF_INET6, "::1", 1, &port);

    if (probe < 0) {
        fprintf(stderr, "test_sshflow_connect_tcp_ipv6: no IPv6 loopback here, skipped\n");
        return;
    }
    close(probe);
    tcp_roundtrip("::1", AF_INET6, "::1", "::1");
    tcp_roundtrip("[::1]", AF_INET6, "::1", "::1");
}
END_TEST

START_TEST(test_sshflow_connect_tcp_refused)
{
    uint16_t port = 0;
    /* bound but not listening: a connection is refused, and nobody can take the port */
    int fd = tcp_bound(AF_INET, "127.0.0.1", -1, &port);
    sshflow_flow *f = NULL;
    char want[16];
    sshflow_error err;

    ck_assert_int_ge(fd, 0);
    f = sshflow_connect_tcp("127.0.0.1", port, 2000, &err);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_FLOW);
    ck_assert_int_eq(err.sys_errno, ECONNREFUSED);
    snprintf(want, sizeof(want), "port %u", (unsigned)port);
    ck_assert_ptr_nonnull(strstr(err.detail, "127.0.0.1"));
    ck_assert_ptr_nonnull(strstr(err.detail, want));
    /* no bound of ours: the same answer */
    ck_assert_ptr_null(sshflow_connect_tcp("127.0.0.1", port, 0, &err));
    ck_assert_int_eq(err.sys_errno, ECONNREFUSED);
    close(fd);
}
END_TEST

START_TEST(test_sshflow_connect_tcp_unknown_host)
{
    /* Not a valid DNS name, so the resolver answers without the network. */
    static const char host[] = "no such host.invalid";
    sshflow_flow *f = NULL;
    sshflow_error err;

    f = sshflow_connect_tcp(host, 22, 1000, &err);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_FLOW);
    ck_assert_ptr_nonnull(strstr(err.detail, host));
    ck_assert_ptr_nonnull(strstr(err.detail, "resolve"));
}
END_TEST

START_TEST(test_sshflow_connect_tcp_args)
{
    sshflow_error err;

    ck_assert_ptr_null(sshflow_connect_tcp(NULL, 22, 0, &err));
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_INVALID);
    ck_assert_ptr_null(sshflow_connect_tcp("", 22, 0, &err));
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_INVALID);
    ck_assert_ptr_null(sshflow_connect_tcp("", 22, 0, NULL));
}
END_TEST

#if defined(__linux__)
/*
 * A listener whose accept queue is full drops new SYNs (Linux), so a
 * connection attempt hangs until our bound ends it.
 */
START_TEST(test_sshflow_connect_tcp_timeout)
{
    uint16_t port = 0;
    int lfd = tcp_bound(AF_INET, "127.0.0.1", 0, &port);
    int fill[8];
    int nfill = 0;
    struct sockaddr_in sa;
    sshflow_flow *f = NULL;
    uint64_t t0;
    sshflow_error err;
    int i;

    ck_assert_int_ge(lfd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    for (i = 0; i < 8; i++) {
        struct pollfd pf;

        fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(fill[nfill], 0);
        (void)connect(fill[nfill], (struct sockaddr *)&sa, sizeof(sa));
        pf.fd = fill[nfill];
        pf.events = POLLOUT;
        pf.revents = 0;
        nfill++;
        if (poll(&pf, 1, 200) == 0) {
            break; /* this one hangs: the queue is full */
        }
    }
    t0 = sf_now_ms();
    f = sshflow_connect_tcp("127.0.0.1", port, 300, &err);
    if (f != NULL) {
        /* This network stack does not drop SYNs on a full queue: nothing to test. */
        fprintf(stderr, "test_sshflow_connect_tcp_timeout: queue never filled, skipped\n");
        sshflow_free(f);
    } else {
        ck_assert_int_eq(err.kind, SSHFLOW_ERR_TIMEOUT);
        ck_assert_int_eq(err.sys_errno, 0);
        ck_assert_ptr_nonnull(strstr(err.detail, "127.0.0.1"));
        ck_assert_uint_ge(sf_now_ms() - t0, 250);
    }
    for (i = 0; i < nfill; i++) {
        close(fill[i]);
    }
    close(lfd);
}
END_TEST
#endif

/* ------------------------------------------------------------------------ */

static Suite *
flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = NULL;

    tc = tcase_create("generic");
    tcase_add_test(tc, test_sshflow_flow_new_bad_ops);
    tcase_add_test(tc, test_sshflow_flow_new_nomem);
    tcase_add_test(tc, test_sshflow_free_once);
    tcase_add_test(tc, test_sshflow_free_after_close_once);
    tcase_add_test(tc, test_sshflow_write_user);
    tcase_add_test(tc, test_sshflow_writev_fallback);
    tcase_add_test(tc, test_sshflow_writev_fallback_stops_on_error);
    tcase_add_test(tc, test_sshflow_writev_native);
    tcase_add_test(tc, test_sshflow_read_into_user);
    tcase_add_test(tc, test_sshflow_read_user);
    tcase_add_test(tc, test_sshflow_read_op_errors);
    tcase_add_test(tc, test_sshflow_write_op_errors);
    tcase_add_test(tc, test_sshflow_close_user);
    tcase_add_test(tc, test_sshflow_close_no_op);
    tcase_add_test(tc, test_sshflow_close_timeout_hook);
    tcase_add_test(tc, test_sshflow_shutdown_user);
    tcase_add_test(tc, test_sf_flow_abort_once);
    tcase_add_test(tc, test_sf_flow_dispatch);
    tcase_add_test(tc, test_sf_flow_set_peer);
    tcase_add_test(tc, test_flow_args);
    suite_add_tcase(s, tc);

    /* loop index: 0 = socketpair, 1 = pipe pair, 2 = pipe pair without reopening */
    tc = tcase_create("fd");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_sshflow_flow_from_fds_bad);
    tcase_add_loop_test(tc, test_sshflow_flow_from_fds_roundtrip, 0, KINDS);
    tcase_add_test(tc, test_sshflow_flow_from_fds_two_flows);
    tcase_add_loop_test(tc, test_sshflow_read_eof, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_read_fresh_buffer, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_write_large, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_writev_many, 0, KINDS);
    tcase_add_test(tc, test_sshflow_write_nonblocking_fd);
    tcase_add_loop_test(tc, test_sshflow_shutdown_fd, 0, KINDS);
    tcase_add_loop_test(tc, test_sf_flow_abort_wakes_reader, 0, KINDS);
    tcase_add_loop_test(tc, test_sf_flow_abort_wakes_writer, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_close_wakes_reader, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_close_wakes_writer, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_close_not_owned, 0, KINDS);
    tcase_add_loop_test(tc, test_sshflow_free_unclosed_fd, 0, KINDS);
    tcase_add_test(tc, test_sshflow_write_epipe_pipe);
    tcase_add_test(tc, test_sshflow_write_epipe_socket);
    tcase_add_loop_test(tc, test_sshflow_writev_fd_empty, 0, KINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("tcp");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_sshflow_connect_tcp_ipv4);
    tcase_add_test(tc, test_sshflow_connect_tcp_ipv6);
    tcase_add_test(tc, test_sshflow_connect_tcp_refused);
    tcase_add_test(tc, test_sshflow_connect_tcp_unknown_host);
    tcase_add_test(tc, test_sshflow_connect_tcp_args);
#if defined(__linux__)
    tcase_add_test(tc, test_sshflow_connect_tcp_timeout);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(flow_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
