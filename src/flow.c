/*
 * src/flow.c -- the generic flow calls (sshflow_read, sshflow_write, ...).
 *
 * Owns: the allocation of every sshflow_flow (sshflow_flow_new is the only
 * constructor; sshflow_free the only destructor), argument and state checks,
 * the serialisation of writers (the ops contract in sshflow.h promises that
 * write/writev/shutdown are called from one thread at a time), the
 * close-once and abort-once bookkeeping, and normalising what ops return.
 *
 * Must never: know anything about SSH or file descriptors; block anywhere
 * but inside an op or on the per-flow writer lock (the only lock held
 * across an op; close and abort never take it, so they can always wake a
 * writer blocked in an op). Flows must not be allocated anywhere else: the
 * writer lock lives behind the public struct.
 */
#include "flow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Bytes sshflow_read() asks for at a time; the buffer is shrunk afterwards. */
#define FLOW_READ_CHUNK (32 * 1024)

/*
 * What sshflow_flow_new allocates. The public struct comes first, so a flow
 * pointer is also a pointer to this; flow.h stays the shared interface and
 * the writer lock stays private to this file.
 */
struct flow_impl {
    struct sshflow_flow pub; /* must stay the first member */
    pthread_mutex_t wlock;   /* serialises write/writev/shutdown (held across the op) */
    atomic_bool shut;        /* sshflow_shutdown succeeded: writes give CLOSED */
};

static struct flow_impl *
impl_of(sshflow_flow *f)
{
    return (struct flow_impl *)f;
}

/* Reset err before a call so a failing op that forgot to fill it is visible. */
static void
err_clear(sshflow_error *err)
{
    if (err == NULL) {
        return;
    }
    err->kind = 0;
    err->sys_errno = 0;
    err->disconnect_reason = 0;
    err->detail[0] = '\0';
}

/* Internal code for a public kind, so a bare kind from an op can be reported. */
static int
code_of_kind(int kind)
{
    switch (kind) {
    case SSHFLOW_ERR_DISCONNECT:
        return SF_ERR_DISCONNECT;
    case SSHFLOW_ERR_PROTOCOL:
        return SF_ERR_PROTOCOL;
    case SSHFLOW_ERR_HOSTKEY:
        return SF_ERR_HOSTKEY;
    case SSHFLOW_ERR_AUTH:
        return SF_ERR_AUTH;
    case SSHFLOW_ERR_CHANNEL:
        return SF_ERR_CHANNEL;
    case SSHFLOW_ERR_FLOW:
        return SF_ERR_IO;
    case SSHFLOW_ERR_TIMEOUT:
        return SF_ERR_TIMEOUT;
    case SSHFLOW_ERR_CLOSED:
        return SF_ERR_CLOSED;
    case SSHFLOW_ERR_NOMEM:
        return SF_ERR_NOMEM;
    case SSHFLOW_ERR_INVALID:
        return SF_ERR_INVALID;
    case SSHFLOW_ERR_INTERNAL:
        return SF_ERR_INTERNAL;
    default:
        return 0;
    }
}

/*
 * Make a negative op result a proper public kind with err filled. A user's
 * op may return something that is not a kind (e.g. -1000) or forget err.
 */
static int
fix_failure(long long r, const char *what, sshflow_error *err)
{
    int code = r >= SSHFLOW_ERR_INTERNAL ? code_of_kind((int)r) : 0;

    if (code == 0) {
        return sf_err_set(err, SF_ERR_IO, "flow %s failed (op returned %lld)", what, r);
    }
    if (err != NULL && err->kind == 0) {
        return sf_err_set(err, code, "flow %s failed", what);
    }
    return (int)r;
}

static ssize_t
fix_read(ssize_t n, size_t len, sshflow_error *err)
{
    if (n < 0) {
        return fix_failure((long long)n, "read", err);
    }
    if ((size_t)n > len) {
        return sf_err_set(err, SF_ERR_INTERNAL, "flow read returned %zd for a %zu-byte buffer",
                          n, len);
    }
    return n;
}

static int
fix_write(int r, const char *what, sshflow_error *err)
{
    if (r < 0) {
        return fix_failure(r, what, err);
    }
    /* "All or fail": a non-negative result means everything was written. */
    return 0;
}

/* Writes per buffer, for flows without ops->writev. */
static int
writev_by_write(sshflow_flow *f, const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    int i;
    int r;

    for (i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len == 0) {
            continue;
        }
        if ((r = fix_write(f->ops->write(f->ctx, iov[i].iov_base, iov[i].iov_len, err), "write",
                           err)) != 0) {
            return r;
        }
    }
    return 0;
}

static int
check_iov(const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    int i;

    if (iovcnt < 0 || (iov == NULL && iovcnt > 0)) {
        return sf_err_set(err, SF_ERR_INVALID, "writev: bad iovec array (count %d)", iovcnt);
    }
    for (i = 0; i < iovcnt; i++) {
        if (iov[i].iov_base == NULL && iov[i].iov_len > 0) {
            return sf_err_set(err, SF_ERR_INVALID, "writev: buffer %d is NULL", i);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Internal calls (flow.h)                                                  */
/* ------------------------------------------------------------------------ */

void
sf_flow_abort(sshflow_flow *f)
{
    if (f == NULL) {
        return;
    }
    if (atomic_exchange(&f->aborted, true)) {
        return;
    }
    if (f->ops->abort != NULL) {
        f->ops->abort(f->ctx);
    }
}

ssize_t
sf_flow_read(sshflow_flow *f, void *buf, size_t len, sshflow_error *err)
{
    err_clear(err);
    return fix_read(f->ops->read(f->ctx, buf, len, err), len, err);
}

int
sf_flow_write(sshflow_flow *f, const void *buf, size_t len, sshflow_error *err)
{
    err_clear(err);
    return fix_write(f->ops->write(f->ctx, buf, len, err), "write", err);
}

int
sf_flow_writev(sshflow_flow *f, const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    err_clear(err);
    if (f->ops->writev == NULL) {
        return writev_by_write(f, iov, iovcnt, err);
    }
    return fix_write(f->ops->writev(f->ctx, iov, iovcnt, err), "writev", err);
}

int
sf_flow_set_peer(sshflow_flow *f, const char *host, uint16_t port)
{
    char *copy = NULL;

    if (f == NULL) {
        return SSHFLOW_ERR_INVALID;
    }
    if (host != NULL && (copy = sf_strdup(host)) == NULL) {
        return SSHFLOW_ERR_NOMEM;
    }
    sf_free(f->host);
    f->host = copy;
    f->port = port;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */
/* ------------------------------------------------------------------------ */

SSHFLOW_API sshflow_flow *
sshflow_flow_new(const sshflow_flow_ops *ops, void *ctx)
{
    struct flow_impl *fi = NULL;

    if (ops == NULL || ops->read == NULL || ops->write == NULL) {
        return NULL;
    }
    if ((fi = sf_alloc(sizeof(*fi))) == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&fi->wlock, NULL) != 0) {
        sf_free(fi);
        return NULL;
    }
    fi->pub.ops = ops;
    fi->pub.ctx = ctx;
    fi->pub.close_timeout = NULL;
    fi->pub.chan = NULL;
    fi->pub.host = NULL;
    fi->pub.port = 0;
    atomic_init(&fi->pub.aborted, false);
    atomic_init(&fi->pub.closed, false);
    atomic_init(&fi->shut, false);
    return &fi->pub;
}

SSHFLOW_API ssize_t
sshflow_read_into(sshflow_flow *f, void *buf, size_t len, sshflow_error *err)
{
    err_clear(err);
    if (f == NULL || buf == NULL || len == 0) {
        return sf_err_set(err, SF_ERR_INVALID, "read: %s",
                          f == NULL ? "no flow" : buf == NULL ? "no buffer" : "zero length");
    }
    if (atomic_load(&f->closed) || atomic_load(&f->aborted)) {
        return sf_err_set(err, SF_ERR_CLOSED, "read: flow is closed");
    }
    return fix_read(f->ops->read(f->ctx, buf, len, err), len, err);
}

SSHFLOW_API int
sshflow_read(sshflow_flow *f, uint8_t **out, size_t *outlen, sshflow_error *err)
{
    uint8_t *buf = NULL;
    uint8_t *smaller = NULL;
    ssize_t n;

    if (out != NULL) {
        *out = NULL;
    }
    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out == NULL || outlen == NULL) {
        err_clear(err);
        return sf_err_set(err, SF_ERR_INVALID, "read: no place for the result");
    }
    /* malloc, not sf_alloc: the caller releases it with free(). */
    if ((buf = malloc(FLOW_READ_CHUNK)) == NULL) {
        err_clear(err);
        return sf_err_set(err, SF_ERR_NOMEM, "read: cannot allocate %d bytes", FLOW_READ_CHUNK);
    }
    n = sshflow_read_into(f, buf, FLOW_READ_CHUNK, err);
    if (n <= 0) {
        free(buf);
        return n == 0 ? SSHFLOW_EOF : (int)n;
    }
    if ((size_t)n < FLOW_READ_CHUNK && (smaller = realloc(buf, (size_t)n)) != NULL) {
        buf = smaller;
    }
    *out = buf;
    *outlen = (size_t)n;
    return 0;
}

SSHFLOW_API int
sshflow_write(sshflow_flow *f, const void *buf, size_t len, sshflow_error *err)
{
    struct flow_impl *fi = NULL;
    int r;

    err_clear(err);
    if (f == NULL || (buf == NULL && len > 0)) {
        return sf_err_set(err, SF_ERR_INVALID, "write: %s", f == NULL ? "no flow" : "no buffer");
    }
    fi = impl_of(f);
    if (atomic_load(&f->closed) || atomic_load(&f->aborted) || atomic_load(&fi->shut)) {
        return sf_err_set(err, SF_ERR_CLOSED, "write: flow is closed for writing");
    }
    if (len == 0) {
        return 0;
    }
    pthread_mutex_lock(&fi->wlock);
    if (atomic_load(&fi->shut)) {
        /* shut down while we waited for the lock */
        r = sf_err_set(err, SF_ERR_CLOSED, "write: flow is closed for writing");
    } else {
        r = fix_write(f->ops->write(f->ctx, buf, len, err), "write", err);
    }
    pthread_mutex_unlock(&fi->wlock);
    return r;
}

SSHFLOW_API int
sshflow_writev(sshflow_flow *f, const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    struct flow_impl *fi = NULL;
    int r;

    err_clear(err);
    if (f == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "writev: no flow");
    }
    if ((r = check_iov(iov, iovcnt, err)) != 0) {
        return r;
    }
    fi = impl_of(f);
    if (atomic_load(&f->closed) || atomic_load(&f->aborted) || atomic_load(&fi->shut)) {
        return sf_err_set(err, SF_ERR_CLOSED, "writev: flow is closed for writing");
    }
    if (iovcnt == 0) {
        return 0;
    }
    pthread_mutex_lock(&fi->wlock);
    if (atomic_load(&fi->shut)) {
        r = sf_err_set(err, SF_ERR_CLOSED, "writev: flow is closed for writing");
    } else if (f->ops->writev == NULL) {
        r = writev_by_write(f, iov, iovcnt, err);
    } else {
        r = fix_write(f->ops->writev(f->ctx, iov, iovcnt, err), "writev", err);
    }
    pthread_mutex_unlock(&fi->wlock);
    return r;
}

SSHFLOW_API int
sshflow_shutdown(sshflow_flow *f, sshflow_error *err)
{
    struct flow_impl *fi = NULL;
    int r = 0;

    err_clear(err);
    if (f == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "shutdown: no flow");
    }
    fi = impl_of(f);
    if (atomic_load(&f->closed) || atomic_load(&f->aborted)) {
        return sf_err_set(err, SF_ERR_CLOSED, "shutdown: flow is closed");
    }
    if (f->ops->shutdown == NULL) {
        return sf_err_set(err, SF_ERR_UNSUPPORTED, "shutdown: this flow cannot half-close");
    }
    pthread_mutex_lock(&fi->wlock);
    if (!atomic_load(&fi->shut)) {
        r = fix_write(f->ops->shutdown(f->ctx, err), "shutdown", err);
        if (r == 0) {
            atomic_store(&fi->shut, true);
        }
    }
    pthread_mutex_unlock(&fi->wlock);
    return r;
}

SSHFLOW_API int
sshflow_close_timeout(sshflow_flow *f, int timeout_ms, sshflow_error *err)
{
    int r = 0;

    err_clear(err);
    if (f == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "close: no flow");
    }
    if (atomic_exchange(&f->closed, true)) {
        return 0; /* closed before (or being closed by another thread) */
    }
    if (f->close_timeout != NULL) {
        /* The bounded close (SSH channels) does its own waking. */
        return fix_write(f->close_timeout(f->ctx, timeout_ms, err), "close", err);
    }
    if (f->ops->close != NULL) {
        r = fix_write(f->ops->close(f->ctx, err), "close", err);
    }
    /*
     * After the flush: wake a reader still blocked in read on another thread
     * (sshflow.h: abort is what lets close wake a blocked reader).
     */
    sf_flow_abort(f);
    return r;
}

SSHFLOW_API int
sshflow_close(sshflow_flow *f, sshflow_error *err)
{
    return sshflow_close_timeout(f, -1, err);
}

SSHFLOW_API void
sshflow_free(sshflow_flow *f)
{
    struct flow_impl *fi = NULL;

    if (f == NULL) {
        return;
    }
    fi = impl_of(f);
    if (f->ops->free != NULL) {
        f->ops->free(f->ctx);
    }
    sf_free(f->host);
    pthread_mutex_destroy(&fi->wlock);
    sf_free(fi);
}
