/*
 * src/flow.h -- the flow object behind the public sshflow_flow handle.
 *
 * A flow is an operations table plus its context. The generic calls in
 * flow.c (sshflow_read, sshflow_write, ...) check arguments and the flow's
 * state, then dispatch to the ops. SSH channels are flows too: they set
 * `chan` so channel-only calls (exit status, stderr) can find them.
 *
 * Must never: know anything about SSH.
 */
#ifndef SF_FLOW_H
#define SF_FLOW_H

#include <stdatomic.h>

#include "sf.h"

struct sf_chan;

struct sshflow_flow {
    const sshflow_flow_ops *ops; /* immutable after creation */
    void *ctx;                   /* immutable; released by ops->free */
    /* Optional bounded close (SSH channels); NULL: ops->close is used. */
    int (*close_timeout)(void *ctx, int timeout_ms, sshflow_error *err);
    struct sf_chan *chan; /* non-NULL for a flow made by client_of_flow */
    char *host;           /* host name if known (TCP flows), for known_hosts; owned */
    uint16_t port;        /* port if known, else 0 */
    atomic_bool aborted;  /* abort() was called (at most once) */
    atomic_bool closed;   /* close() was called */
};

/*
 * Abort the flow: call ops->abort once (if any) so that a thread blocked in
 * read or write on another thread returns. Thread-safe, idempotent.
 */
void sf_flow_abort(sshflow_flow *f);

/* Internal convenience wrappers that use the ops directly (no state checks). */
ssize_t sf_flow_read(sshflow_flow *f, void *buf, size_t len, sshflow_error *err);
int sf_flow_write(sshflow_flow *f, const void *buf, size_t len, sshflow_error *err);
int sf_flow_writev(sshflow_flow *f, const struct iovec *iov, int iovcnt, sshflow_error *err);

/* Set host/port (copies host). Returns 0 or SF_ERR_NOMEM... as a public kind. */
int sf_flow_set_peer(sshflow_flow *f, const char *host, uint16_t port);

/*
 * sshflow_connect_unix with a bound: timeout_ms (> 0; <= 0 means 10 s)
 * bounds the connect, which can wait only while the listener's backlog is
 * full; reaching it gives SF_ERR_TIMEOUT (public SSHFLOW_ERR_TIMEOUT).
 * Other failures: SSHFLOW_ERR_INVALID (no path, path too long),
 * SSHFLOW_ERR_FLOW with sys_errno (ENOENT, ECONNREFUSED, EACCES, ...).
 * Returns the flow (owning the socket) or NULL with err filled.
 */
sshflow_flow *sf_flow_connect_unix(const char *path, int timeout_ms, sshflow_error *err);

#endif
