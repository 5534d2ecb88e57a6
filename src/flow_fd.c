/*
 * src/flow_fd.c -- the file-descriptor flow (socket, socketpair end, pipe
 * pair) and TCP connect.
 *
 * Owns: I/O on the descriptors given to sshflow_flow_from_fds (reads, full
 * writes, half-close, close), waking threads blocked in that I/O (abort and
 * close), keeping SIGPIPE from killing the process, and resolving and
 * connecting TCP addresses.
 *
 * Must never: know anything about SSH; change the flags (O_NONBLOCK, ...) of
 * a descriptor it was given, since the open file may be shared with other
 * processes (stdin/stdout of a proxy command, for example); block in flow
 * I/O anywhere but in poll(), where a wake descriptor can always end the
 * wait. (sshflow_connect_tcp blocks in getaddrinfo and in its bounded
 * connect wait; it has no flow to abort yet.)
 *
 * How blocking calls are made abortable: every wait is a poll() on the data
 * descriptor plus a private wake descriptor (an eventfd, or a pipe where
 * there is none) that abort and close make readable for good. Data
 * syscalls never block: sockets use MSG_DONTWAIT; a blocking pipe is, on
 * Linux, reopened through /proc/self/fd as a private O_NONBLOCK open file
 * (the caller's descriptor keeps its flags); anything else that blocks is
 * read only after POLLIN and written only after POLLOUT and at most
 * PIPE_BUF bytes at a time, which a pipe that polls writable takes without
 * blocking (slow: one poll per 4 KiB, hence the reopening).
 */
#include "flow.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/eventfd.h>
#endif

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* no such flag (macOS): SO_NOSIGPIPE is set instead */
#endif

/* Buffers handed to one writev/sendmsg call (well below any IOV_MAX). */
#define FD_IOV_WINDOW 64
#if defined(IOV_MAX) && IOV_MAX < FD_IOV_WINDOW
#undef FD_IOV_WINDOW
#define FD_IOV_WINDOW IOV_MAX
#endif

/*
 * Test hook: false makes new fd flows skip the pipe reopening, so the tests
 * can reach the poll + PIPE_BUF path on Linux too. Set it only while no
 * flow is being created on another thread.
 */
bool sf_flow_fd_reopen_pipes = true;

/* Largest single read or write we ask the kernel for. */
#define FD_IO_MAX ((size_t)SSIZE_MAX)

struct fd_flow {
    /* Immutable after creation. */
    int rfd;          /* descriptor we were given for reading */
    int wfd;          /* descriptor we were given for writing (may equal rfd) */
    bool own;         /* close rfd/wfd on close/free */
    int rio;          /* descriptor we read with: rfd, or our private reopening of it */
    int wio;          /* descriptor we write with: wfd, or our private reopening of it */
    bool rpriv;       /* rio is ours (always closed on close/free) */
    bool wpriv;       /* wio is ours */
    bool rsock;       /* rio is a socket: recv(MSG_DONTWAIT) */
    bool rdirect;     /* rio never blocks (socket or O_NONBLOCK): read before polling */
    bool wsock;       /* wio is a socket: send/sendmsg(MSG_DONTWAIT | MSG_NOSIGNAL) */
    bool wdirect;     /* wio never blocks: write before polling */
    size_t wchunk;    /* most bytes per write syscall (PIPE_BUF on a blocking non-socket) */
    int wake_rd;      /* polled by every wait; readable once stop is set */
    int wake_wr;      /* written by abort/close (== wake_rd for an eventfd) */

    atomic_bool stop; /* abort or close happened: every operation fails CLOSED */

    pthread_mutex_t lock; /* protects the fields below */
    unsigned busy;        /* read/write calls in progress */
    bool closing;         /* close started: no new calls get in */
    bool wshut;           /* write side shut down (shutdown or close) */
    bool wclosed;         /* shutdown closed wio (if ours) and wfd (if owned) */
    bool fds_closed;      /* owned descriptors closed (by close, the last call out, or free) */
};

static void close_fds_locked(struct fd_flow *c);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */


static int
closed_err(sshflow_error *err, const char *what)
{
    return sf_err_set(err, SF_ERR_CLOSED, "%s: flow is closed", what);
}

/* An I/O failure with errno e; CLOSED instead if it was caused by abort/close. */
static int
io_err(struct fd_flow *c, sshflow_error *err, int e, const char *what, int fd)
{
    char tmp[128];
    int r;

    if (c != NULL && atomic_load(&c->stop)) {
        return closed_err(err, what);
    }
    r = sf_err_set(err, SF_ERR_IO, "%s on fd %d: %s", what, fd, sf_errno_text(e, tmp, sizeof(tmp)));
    if (err != NULL) {
        err->sys_errno = e;
    }
    return r;
}

/* ------------------------------------------------------------------------ */
/* Waking                                                                   */
/* ------------------------------------------------------------------------ */

static int
set_fd_flags(int fd, int fdflags, int flflags)
{
    int v;

    if (fdflags != 0) {
        if ((v = fcntl(fd, F_GETFD)) < 0 || fcntl(fd, F_SETFD, v | fdflags) < 0) {
            return -1;
        }
    }
    if (flflags != 0) {
        if ((v = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, v | flflags) < 0) {
            return -1;
        }
    }
    return 0;
}

static int
wake_open(struct fd_flow *c)
{
    int p[2];

#if defined(__linux__)
    if ((c->wake_rd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) >= 0) {
        c->wake_wr = c->wake_rd;
        return 0;
    }
#endif
    if (pipe(p) != 0) {
        return -1;
    }
    if (set_fd_flags(p[0], FD_CLOEXEC, O_NONBLOCK) != 0 ||
        set_fd_flags(p[1], FD_CLOEXEC, O_NONBLOCK) != 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    c->wake_rd = p[0];
    c->wake_wr = p[1];
    return 0;
}

static void
wake_close(struct fd_flow *c)
{
    if (c->wake_rd >= 0) {
        close(c->wake_rd);
    }
    if (c->wake_wr >= 0 && c->wake_wr != c->wake_rd) {
        close(c->wake_wr);
    }
    c->wake_rd = c->wake_wr = -1;
}

/* Set stop and make the wake descriptor readable for good. Async-signal-safe. */
static void
wake_all(struct fd_flow *c)
{
    uint64_t one = 1;
    ssize_t n;
    int e = errno;

    atomic_store(&c->stop, true);
    /* Never drained: every later poll returns at once. A full pipe is readable anyway. */
    do {
        if (c->wake_wr == c->wake_rd) {
            n = write(c->wake_wr, &one, sizeof(one));
        } else {
            n = write(c->wake_wr, "x", 1);
        }
    } while (n < 0 && errno == EINTR);
    errno = e;
}

/*
 * Wait until fd reports `events` (or an error/hang-up, which the next
 * syscall will report) or the flow is stopped. Returns 0 when fd is ready.
 */
static int
wait_fd(struct fd_flow *c, int fd, short events, const char *what, sshflow_error *err)
{
    struct pollfd p[2];

    for (;;) {
        if (atomic_load(&c->stop)) {
            return closed_err(err, what);
        }
        p[0].fd = fd;
        p[0].events = events;
        p[0].revents = 0;
        p[1].fd = c->wake_rd;
        p[1].events = POLLIN;
        p[1].revents = 0;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return io_err(c, err, errno, what, fd);
        }
        if (p[1].revents != 0 || atomic_load(&c->stop)) {
            return closed_err(err, what);
        }
        if ((p[0].revents & POLLNVAL) != 0) {
            return io_err(c, err, EBADF, what, fd);
        }
        if (p[0].revents != 0) {
            return 0;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Calls in progress                                                        */
/* ------------------------------------------------------------------------ */

/*
 * A descriptor must not be closed while another thread may still poll or
 * read it: its number could be reused at once by an unrelated open(). So
 * close wakes every call in progress and closes the descriptors only when
 * none is left; if some are, the last one out closes them (promptly, since
 * they were woken). close itself never waits for another thread.
 */

static int
op_enter(struct fd_flow *c, bool writer, const char *what, sshflow_error *err)
{
    int r = 0;

    pthread_mutex_lock(&c->lock);
    if (c->closing || (writer && c->wshut)) {
        r = closed_err(err, what);
    } else {
        c->busy++;
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

static void
op_leave(struct fd_flow *c)
{
    pthread_mutex_lock(&c->lock);
    SF_ASSERT(c->busy > 0);
    c->busy--;
    if (c->busy == 0 && c->closing) {
        close_fds_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------------------ */
/* SIGPIPE on pipes                                                         */
/* ------------------------------------------------------------------------ */

/*
 * A write to a pipe whose reader is gone raises SIGPIPE, which kills the
 * process by default, and send(MSG_NOSIGNAL) exists only for sockets.
 * Process-wide SIG_IGN would change the application's signal handling, so
 * instead (as libpq does) SIGPIPE is blocked in this thread for the write;
 * if the write failed with EPIPE, the SIGPIPE it raised is taken off the
 * pending set with sigtimedwait() before the old mask comes back. A SIGPIPE
 * that was already pending before we started is left alone.
 */
struct sigpipe_guard {
    sigset_t old;     /* the thread's mask before */
    bool active;      /* the mask was changed */
    bool was_pending; /* SIGPIPE was already pending for this thread */
};

static void
sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t s;
    sigset_t pend;

    g->active = false;
    g->was_pending = false;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &s, &g->old) != 0) {
        return;
    }
    g->active = true;
    if (sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE) == 1) {
        g->was_pending = true;
    }
}

static void
sigpipe_restore(struct sigpipe_guard *g, bool got_epipe)
{
    const struct timespec zero = {0, 0};
    sigset_t s;
    int e = errno;

    if (!g->active) {
        return;
    }
    if (got_epipe && !g->was_pending) {
        sigemptyset(&s);
        sigaddset(&s, SIGPIPE);
        while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
    errno = e;
}

/* ------------------------------------------------------------------------ */
/* The operations                                                           */
/* ------------------------------------------------------------------------ */

static ssize_t
read_once(struct fd_flow *c, void *buf, size_t len)
{
    if (c->rsock) {
        return recv(c->rio, buf, len, MSG_DONTWAIT);
    }
    return read(c->rio, buf, len);
}

static ssize_t
fd_read(void *ctx, void *buf, size_t len, sshflow_error *err)
{
    struct fd_flow *c = ctx;
    bool ready = c->rdirect;
    ssize_t n;
    int r;

    if (buf == NULL || len == 0) {
        return sf_err_set(err, SF_ERR_INVALID, "read: no buffer");
    }
    if ((r = op_enter(c, false, "read", err)) != 0) {
        return r;
    }
    len = SF_MIN(len, FD_IO_MAX);
    for (;;) {
        if (!ready && (r = wait_fd(c, c->rio, POLLIN, "read", err)) != 0) {
            n = r;
            break;
        }
        if (atomic_load(&c->stop)) {
            n = closed_err(err, "read");
            break;
        }
        if ((n = read_once(c, buf, len)) >= 0) {
            break;
        }
        if (errno == EINTR) {
            ready = true;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ready = false;
            continue;
        }
        n = io_err(c, err, errno, "read", c->rio);
        break;
    }
    op_leave(c);
    return n;
}

static ssize_t
write_once(struct fd_flow *c, const struct iovec *v, int cnt)
{
    struct msghdr m;

    if (c->wsock) {
        if (cnt == 1) {
            return send(c->wio, v[0].iov_base, v[0].iov_len, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        memset(&m, 0, sizeof(m));
        m.msg_iov = (struct iovec *)v;
        m.msg_iovlen = (size_t)cnt;
        return sendmsg(c->wio, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (cnt == 1) {
        return write(c->wio, v[0].iov_base, v[0].iov_len);
    }
    return writev(c->wio, v, cnt);
}

/*
 * Write every byte of iov[0..iovcnt) or fail. Each round hands the kernel a
 * window of at most FD_IOV_WINDOW buffers and wchunk bytes starting at
 * (i, off), then advances past what it took.
 */
static int
write_all(struct fd_flow *c, const struct iovec *iov, int iovcnt, const char *what,
          sshflow_error *err)
{
    struct iovec win[FD_IOV_WINDOW];
    struct sigpipe_guard g;
    bool ready = c->wdirect;
    bool epipe = false;
    size_t off = 0; /* bytes of iov[i] already written */
    int i = 0;
    int r = 0;

    if (!c->wsock) {
        sigpipe_block(&g);
    }
    for (;;) {
        size_t total = 0;
        ssize_t w;
        int n = 0;
        int j;

        while (i < iovcnt && off == iov[i].iov_len) {
            i++;
            off = 0;
        }
        if (i == iovcnt) {
            break;
        }
        if (atomic_load(&c->stop)) {
            r = closed_err(err, what);
            break;
        }
        if (!ready && (r = wait_fd(c, c->wio, POLLOUT, what, err)) != 0) {
            break;
        }
        for (j = i; j < iovcnt && n < FD_IOV_WINDOW && total < c->wchunk; j++) {
            size_t skip = j == i ? off : 0;
            size_t l = iov[j].iov_len - skip;

            if (l == 0) {
                continue;
            }
            l = SF_MIN(l, c->wchunk - total);
            win[n].iov_base = (uint8_t *)iov[j].iov_base + skip;
            win[n].iov_len = l;
            n++;
            total += l;
        }
        if ((w = write_once(c, win, n)) < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ready = false;
                continue;
            }
            epipe = errno == EPIPE;
            r = io_err(c, err, errno, what, c->wio);
            break;
        }
        /* A short write means the buffer is full: poll before the next one. */
        ready = c->wdirect && (size_t)w == total;
        /* Advance (i, off) by w bytes. */
        while (w > 0) {
            size_t l = iov[i].iov_len - off;

            if ((size_t)w < l) {
                off += (size_t)w;
                w = 0;
            } else {
                w -= (ssize_t)l;
                i++;
                off = 0;
            }
        }
    }
    if (!c->wsock) {
        sigpipe_restore(&g, epipe);
    }
    return r;
}

static int
write_checked(struct fd_flow *c, const struct iovec *iov, int iovcnt, const char *what,
              sshflow_error *err)
{
    int r;

    if ((r = op_enter(c, true, what, err)) != 0) {
        return r;
    }
    r = write_all(c, iov, iovcnt, what, err);
    op_leave(c);
    return r;
}

static int
fd_write(void *ctx, const void *buf, size_t len, sshflow_error *err)
{
    struct fd_flow *c = ctx;
    struct iovec v;

    if (buf == NULL && len > 0) {
        return sf_err_set(err, SF_ERR_INVALID, "write: no buffer");
    }
    v.iov_base = (void *)buf;
    v.iov_len = len;
    return write_checked(c, &v, 1, "write", err);
}

static int
fd_writev(void *ctx, const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    struct fd_flow *c = ctx;

    if (iovcnt < 0 || (iov == NULL && iovcnt > 0)) {
        return sf_err_set(err, SF_ERR_INVALID, "writev: bad iovec array");
    }
    return write_checked(c, iov, iovcnt, "writev", err);
}

/* Half-close; c->lock held. Records wshut whatever happens. */
static int
shut_locked(struct fd_flow *c, sshflow_error *err)
{
    if (c->wshut) {
        return 0;
    }
    c->wshut = true;
    if (c->wsock) {
        if (shutdown(c->wio, SHUT_WR) != 0 && errno != ENOTCONN) {
            return io_err(NULL, err, errno, "shutdown", c->wio);
        }
        return 0;
    }
    if (c->rfd != c->wfd) {
        /*
         * A pipe pair: the reader on the other side sees end of stream once
         * every write descriptor is closed. XXX: if wfd is not ours, that
         * happens only when its owner closes it; we can only stop writing.
         */
        c->wclosed = true;
        if (c->wpriv) {
            close(c->wio);
        }
        if (c->own && close(c->wfd) != 0 && errno != EINTR) {
            return io_err(NULL, err, errno, "shutdown (close)", c->wfd);
        }
        return 0;
    }
    /* XXX: one non-socket fd for both directions cannot half-close: we only stop writing. */
    return 0;
}

static int
fd_shutdown(void *ctx, sshflow_error *err)
{
    struct fd_flow *c = ctx;
    int r;

    pthread_mutex_lock(&c->lock);
    if (c->closing) {
        r = closed_err(err, "shutdown");
    } else {
        r = shut_locked(c, err);
    }
    pthread_mutex_unlock(&c->lock);
    return r;
}

/*
 * Close our private descriptors and the owned ones still open. c->lock held
 * (or no other thread left), and no call in progress.
 */
static void
close_fds_locked(struct fd_flow *c)
{
    if (c->fds_closed) {
        return;
    }
    c->fds_closed = true;
    if (c->rpriv) {
        close(c->rio);
    }
    if (c->wpriv && !c->wclosed) {
        close(c->wio);
    }
    if (c->own) {
        close(c->rfd);
        if (c->wfd != c->rfd && !c->wclosed) {
            close(c->wfd);
        }
    }
    c->wclosed = true;
}

static int
fd_close(void *ctx, sshflow_error *err)
{
    struct fd_flow *c = ctx;

    pthread_mutex_lock(&c->lock);
    if (c->closing) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    c->closing = true;
    atomic_store(&c->stop, true);
    /*
     * End of stream for a socket's peer even if the fd is not ours or is
     * shared; a failure changes nothing for us. The descriptors are closed
     * here if no call is in progress, else by the last one out (op_leave).
     */
    if (c->wsock && !c->wshut) {
        (void)shutdown(c->wio, SHUT_WR);
    }
    c->wshut = true;
    wake_all(c);
    if (c->busy == 0) {
        close_fds_locked(c);
    }
    pthread_mutex_unlock(&c->lock);
    return 0;
}

static void
fd_abort(void *ctx)
{
    wake_all((struct fd_flow *)ctx);
}

static void
fd_free(void *ctx)
{
    struct fd_flow *c = ctx;

    if (c == NULL) {
        return;
    }
    /* No call is in progress (sshflow_free's contract), so no waiting. */
    close_fds_locked(c);
    wake_close(c);
    pthread_mutex_destroy(&c->lock);
    sf_free(c);
}

static const sshflow_flow_ops fd_ops = {
    .read = fd_read,
    .write = fd_write,
    .writev = fd_writev,
    .shutdown = fd_shutdown,
    .close = fd_close,
    .abort = fd_abort,
    .free = fd_free,
};

/* ------------------------------------------------------------------------ */
/* Construction                                                             */
/* ------------------------------------------------------------------------ */

static bool
fd_is_socket(int fd)
{
    struct stat st;

    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool
fd_is_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl >= 0 && (fl & O_NONBLOCK) != 0;
}

/*
 * Linux: open a blocking pipe again through /proc/self/fd, as a new open
 * file of our own with O_NONBLOCK, so that full-size reads and writes never
 * block and the caller's descriptor keeps its flags. The new descriptor
 * counts as one more reader or writer of the pipe until we close it.
 * Returns -1 when not possible (not a pipe, already non-blocking, no /proc,
 * a FIFO without a reader, ...): the PIPE_BUF path is used then.
 */
static int
fd_reopen_nonblocking(int fd, int accmode)
{
#if defined(__linux__)
    char path[64];
    struct stat st;
    int fl;

    if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode)) {
        return -1;
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0 || (fl & O_NONBLOCK) != 0 || (fl & O_ACCMODE) != accmode) {
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    return open(path, accmode | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
#else
    (void)fd;
    (void)accmode;
    return -1;
#endif
}

SSHFLOW_API sshflow_flow *
sshflow_flow_from_fds(int rfd, int wfd, bool own_fds)
{
    struct fd_flow *c = NULL;
    sshflow_flow *f = NULL;

    if (rfd < 0 || wfd < 0) {
        return NULL;
    }
    if ((c = sf_alloc(sizeof(*c))) == NULL) {
        return NULL;
    }
    c->rfd = c->rio = rfd;
    c->wfd = c->wio = wfd;
    c->own = own_fds;
    c->wake_rd = c->wake_wr = -1;
    if (rfd != wfd && sf_flow_fd_reopen_pipes) {
        int fd;

        if ((fd = fd_reopen_nonblocking(rfd, O_RDONLY)) >= 0) {
            c->rio = fd;
            c->rpriv = true;
        }
        if ((fd = fd_reopen_nonblocking(wfd, O_WRONLY)) >= 0) {
            c->wio = fd;
            c->wpriv = true;
        }
    }
    c->rsock = fd_is_socket(c->rio);
    c->rdirect = c->rsock || fd_is_nonblocking(c->rio);
    c->wsock = c->wio == c->rio ? c->rsock : fd_is_socket(c->wio);
    c->wdirect = c->wsock || fd_is_nonblocking(c->wio);
    /* A blocking pipe that polls writable takes PIPE_BUF bytes without blocking. */
    c->wchunk = c->wdirect ? FD_IO_MAX : PIPE_BUF;
    atomic_init(&c->stop, false);
#if defined(SO_NOSIGPIPE)
    if (c->wsock) {
        int one = 1;

        (void)setsockopt(c->wio, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one));
    }
#endif
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        goto fail;
    }
    if (wake_open(c) != 0 || (f = sshflow_flow_new(&fd_ops, c)) == NULL) {
        wake_close(c);
        pthread_mutex_destroy(&c->lock);
        goto fail;
    }
    return f;

fail:
    /* The caller's descriptors stay the caller's when we fail; ours go. */
    if (c->rpriv) {
        close(c->rio);
    }
    if (c->wpriv) {
        close(c->wio);
    }
    sf_free(c);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* TCP connect                                                              */
/* ------------------------------------------------------------------------ */

/* Numeric form of an address, for error messages. */
static void
addr_text(const struct addrinfo *ai, char *buf, size_t len)
{
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, (socklen_t)len, NULL, 0,
                    NI_NUMERICHOST) != 0) {
        snprintf(buf, len, "?");
    }
}

/* A socket for ai, non-blocking and close-on-exec; -1 with errno. */
static int
tcp_socket(const struct addrinfo *ai)
{
    int fd;

#if defined(SOCK_CLOEXEC) && defined(SOCK_NONBLOCK)
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd >= 0 || errno != EINVAL) {
        return fd;
    }
#endif
    if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) < 0) {
        return -1;
    }
    if (set_fd_flags(fd, FD_CLOEXEC, O_NONBLOCK) != 0) {
        int e = errno;

        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/*
 * Connect fd to ai within timeout_ms (0: no bound of ours). Returns 0, or
 * an errno value (ETIMEDOUT when our bound was reached).
 */
static int
tcp_connect_one(int fd, const struct addrinfo *ai, int timeout_ms)
{
    uint64_t deadline = timeout_ms > 0 ? sf_now_ms() + (uint64_t)timeout_ms : 0;
    struct pollfd p;
    socklen_t sl;
    int soerr = 0;
    int n;

    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
        return 0;
    }
    if (errno != EINPROGRESS && errno != EINTR) {
        return errno;
    }
    /* EINTR on a non-blocking connect: it goes on in the background, like EINPROGRESS. */
    for (;;) {
        int wait = -1;

        if (deadline != 0) {
            uint64_t now = sf_now_ms();

            if (now >= deadline) {
                return ETIMEDOUT;
            }
            wait = (int)SF_MIN(deadline - now, (uint64_t)INT_MAX);
        }
        p.fd = fd;
        p.events = POLLOUT;
        p.revents = 0;
        if ((n = poll(&p, 1, wait)) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            return errno;
        }
        if (n == 0) {
            continue; /* the deadline check above decides */
        }
        break;
    }
    sl = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
        return errno;
    }
    return soerr;
}

/* "[::1]" -> "::1" (the form people write in URLs and ssh configs). */
static char *
host_unbracket(const char *host)
{
    size_t n = strlen(host);

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        return sf_strndup(host + 1, n - 2);
    }
    return sf_strdup(host);
}

SSHFLOW_API sshflow_flow *
sshflow_connect_tcp(const char *host, uint16_t port, int timeout_ms, sshflow_error *err)
{
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct addrinfo *ai = NULL;
    sshflow_flow *f = NULL;
    char *name = NULL;
    char portstr[8];
    char addr[NI_MAXHOST];
    char tmp[128];
    int last = 0; /* errno of the last failed attempt */
    int fd = -1;
    int rc;
    int fl;
    int one = 1;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    if (host == NULL || host[0] == '\0') {
        sf_err_set(err, SF_ERR_INVALID, "connect: no host name");
        goto out;
    }
    if ((name = host_unbracket(host)) == NULL) {
        sf_err_set(err, SF_ERR_NOMEM, "connect to %s port %u: out of memory", host,
                   (unsigned)port);
        goto out;
    }
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    addr[0] = '\0';

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    /* XXX: name resolution is not bounded by timeout_ms (getaddrinfo has no timeout). */
    if ((rc = getaddrinfo(name, portstr, &hints, &res)) != 0) {
        if (rc == EAI_SYSTEM) {
            int e = errno;

            sf_err_set(err, SF_ERR_IO, "cannot resolve host %s port %u: %s", name,
                       (unsigned)port, sf_errno_text(e, tmp, sizeof(tmp)));
            if (err != NULL) {
                err->sys_errno = e;
            }
        } else {
            sf_err_set(err, SF_ERR_IO, "cannot resolve host %s port %u: %s", name,
                       (unsigned)port, gai_strerror(rc));
        }
        goto out;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        addr_text(ai, addr, sizeof(addr));
        if ((fd = tcp_socket(ai)) < 0) {
            last = errno;
            continue;
        }
        if ((last = tcp_connect_one(fd, ai, timeout_ms)) == 0) {
            break;
        }
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        if (last == 0) {
            last = EADDRNOTAVAIL; /* getaddrinfo gave no address at all */
        }
        if (last == ETIMEDOUT && timeout_ms > 0) {
            sf_err_set(err, SF_ERR_TIMEOUT, "connect to %s port %u (%s): no answer within %d ms",
                       name, (unsigned)port, addr, timeout_ms);
        } else {
            sf_err_set(err, SF_ERR_IO, "connect to %s port %u (%s): %s", name, (unsigned)port,
                       addr, sf_errno_text(last, tmp, sizeof(tmp)));
        }
        if (err != NULL && err->kind == SSHFLOW_ERR_FLOW) {
            err->sys_errno = last;
        }
        goto out;
    }
    /* Back to blocking: the fd flow never needs O_NONBLOCK on a socket. */
    if ((fl = fcntl(fd, F_GETFL)) >= 0) {
        (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    /* SSH sends small packets that must not wait for Nagle's algorithm. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if ((f = sshflow_flow_from_fds(fd, fd, true)) == NULL) {
        sf_err_set(err, SF_ERR_NOMEM, "connect to %s port %u: out of memory", name,
                   (unsigned)port);
        close(fd);
        goto out;
    }
    fd = -1;
    if (sf_flow_set_peer(f, name, port) != 0) {
        sf_err_set(err, SF_ERR_NOMEM, "connect to %s port %u: out of memory", name,
                   (unsigned)port);
        sshflow_free(f);
        f = NULL;
        goto out;
    }

out:
    if (res != NULL) {
        freeaddrinfo(res);
    }
    sf_free(name);
    return f;
}

/* ------------------------------------------------------------------------ */
/* Unix-domain connect                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Connecting a Unix stream socket either succeeds or fails at once, except
 * when the listener's backlog is full: then a blocking connect() waits for
 * room, and on Linux that wait is bounded by SO_SNDTIMEO (it fails with
 * EAGAIN when the bound is reached). So the socket stays blocking for the
 * connect, with SO_SNDTIMEO set to what is left of timeout_ms (also after
 * EINTR, which leaves the socket unconnected); the bound is cleared again
 * afterwards (the fd flow never blocks in a syscall anyway).
 */
sshflow_flow *
sf_flow_connect_unix(const char *path, int timeout_ms, sshflow_error *err)
{
    struct sockaddr_un sa;
    struct timeval tv;
    sshflow_flow *f = NULL;
    uint64_t deadline;
    char tmp[128];
    size_t n;
    int fd = -1;
    int e = 0;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    if (path == NULL || path[0] == '\0') {
        sf_err_set(err, SF_ERR_INVALID, "connect: no socket path");
        goto out;
    }
    if (timeout_ms <= 0) {
        timeout_ms = 10000; /* sshflow_connect_unix: "blocks only briefly" */
    }
    n = strlen(path);
    memset(&sa, 0, sizeof(sa));
    if (n >= sizeof(sa.sun_path)) {
        sf_err_set(err, SF_ERR_INVALID,
                   "connect to %s: path too long for a Unix socket (%zu bytes, at most %zu)",
                   path, n, sizeof(sa.sun_path) - 1);
        goto out;
    }
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);
#if defined(SOCK_CLOEXEC)
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 && errno == EINVAL) {
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
    }
#else
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
#endif
    if (fd < 0 || set_fd_flags(fd, FD_CLOEXEC, 0) != 0) {
        e = errno;
        sf_err_set(err, SF_ERR_IO, "connect to %s: socket: %s", path,
                   sf_errno_text(e, tmp, sizeof(tmp)));
        goto out;
    }
    deadline = sf_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = sf_now_ms();
        uint64_t left = deadline > now ? deadline - now : 0;

        if (left == 0) {
            e = ETIMEDOUT;
            break;
        }
        tv.tv_sec = (time_t)(left / 1000);
        tv.tv_usec = (suseconds_t)((left % 1000) * 1000);
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0) {
            e = errno;
            break;
        }
        if (connect(fd, (const struct sockaddr *)&sa, (socklen_t)sizeof(sa)) == 0) {
            e = 0;
            break;
        }
        e = errno;
        if (e == EINTR) {
            continue;
        }
        if (e == EAGAIN || e == EWOULDBLOCK || e == EINPROGRESS) {
            e = ETIMEDOUT; /* SO_SNDTIMEO ran out while the backlog was full */
        }
        break;
    }
    if (e == ETIMEDOUT) {
        sf_err_set(err, SF_ERR_TIMEOUT, "connect to %s: no room in the listener's backlog within %d ms",
                   path, timeout_ms);
        goto out;
    }
    if (e != 0) {
        sf_err_set(err, SF_ERR_IO, "connect to %s: %s", path, sf_errno_text(e, tmp, sizeof(tmp)));
        goto out;
    }
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if ((f = sshflow_flow_from_fds(fd, fd, true)) == NULL) {
        sf_err_set(err, SF_ERR_NOMEM, "connect to %s: out of memory", path);
        goto out;
    }
    fd = -1;

out:
    if (f == NULL && err != NULL && err->kind == SSHFLOW_ERR_FLOW) {
        err->sys_errno = e;
    }
    if (fd >= 0) {
        close(fd);
    }
    return f;
}

SSHFLOW_API sshflow_flow *
sshflow_connect_unix(const char *path, sshflow_error *err)
{
    return sf_flow_connect_unix(path, 0, err);
}
