/*
 * src/conn.c -- the connection coordinator: sticky errors, the send path
 * (with key-exchange gating), version exchange, and the reader side that
 * turns flow bytes into messages and handles the transport-layer ones.
 *
 * Owns: struct sf_conn's locks and lifetime. Must never: parse channel or
 * authentication messages (channel.c, auth.c), or hold mu while blocking in
 * the flow.
 */
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

static const char client_version[] = "SSH-2.0-sshflow_" SSHFLOW_VERSION;

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static sshflow_log_fn log_fn;
static void *log_user;

SSHFLOW_API void sshflow_set_log(sshflow_log_fn fn, void *user)
{
    pthread_mutex_lock(&log_mu);
    log_fn = fn;
    log_user = user;
    pthread_mutex_unlock(&log_mu);
}

void sf_log(const char *fmt, ...)
{
    char line[600];
    va_list ap;

    pthread_mutex_lock(&log_mu);
    if (log_fn != NULL) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        log_fn(log_user, line);
    }
    pthread_mutex_unlock(&log_mu);
}

int sf_conn_new(struct sf_conn **out, sshflow_flow *flow, const struct sshflow_config *cfg)
{
    struct sf_conn *c = sf_alloc(sizeof(*c));
    int r;

    *out = NULL;
    if (c == NULL) {
        return SF_ERR_NOMEM;
    }
    c->flow = flow;
    c->cfg = *cfg;
    c->cfg.hostname = NULL; /* not owned here */
    /* Timed waits compute deadlines on CLOCK_MONOTONIC: the condition variables must use it. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, &ca);
    pthread_mutex_init(&c->send_mu, NULL);
    pthread_cond_init(&c->send_cv, &ca);
    pthread_cond_init(&c->helper_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->write_mu, NULL);
    pthread_mutex_init(&c->ctl_mu, NULL);
    atomic_init(&c->failed, false);
    c->phase = SF_PHASE_HANDSHAKE;
    c->initial_kex = true;
    if ((r = sf_tp_init(&c->tp)) != 0 ||
        (r = sf_buf_alloc(&c->i_s, 1024, SF_PACKET_MAX)) != 0 ||
        (r = sf_buf_alloc(&c->i_c, 1024, SF_PACKET_MAX)) != 0 ||
        (r = sf_buf_alloc(&c->kex_cpub, 128, 4096)) != 0 ||
        (r = sf_buf_alloc(&c->deferred, 256, SF_BUF_MAX)) != 0 ||
        (r = sf_buf_alloc(&c->deferred_spare, 256, SF_BUF_MAX)) != 0) {
        sf_conn_free(c);
        return r;
    }
    *out = c;
    return 0;
}

void sf_conn_free(struct sf_conn *c)
{
    if (c == NULL) {
        return;
    }
    sf_tp_free(&c->tp);
    sf_buf_free(&c->i_s);
    sf_buf_free(&c->i_c);
    sf_buf_free(&c->kex_cpub);
    sf_buf_free(&c->deferred);
    sf_buf_free(&c->deferred_spare);
    if (c->kex_st != NULL && c->neg.kex != NULL) {
        c->neg.kex->free(c->kex_st);
    }
    sf_cipher_free(c->pending_rx);
    sf_cipher_free(c->pending_tx);
    sf_free(c->hostkey_blob);
    sf_free(c->host);
    sf_wipe(c->session_id, sizeof(c->session_id));
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->send_mu);
    pthread_cond_destroy(&c->send_cv);
    pthread_cond_destroy(&c->helper_cv);
    pthread_mutex_destroy(&c->write_mu);
    pthread_mutex_destroy(&c->ctl_mu);
    sf_free(c);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 0)))
#endif
static int vrecord_locked(struct sf_conn *c, int code, const char *fmt, va_list ap)
{
    if (c->err_code == 0) {
        char detail[sizeof(c->err.detail)];
        vsnprintf(detail, sizeof(detail), fmt, ap);
        c->err_code = code;
        (void)sf_err_set(&c->err, code, "%s", detail);
        c->phase = SF_PHASE_DEAD;
        if (!c->closing) {
            sf_log("connection failed: %s", detail);
        }
    }
    return c->err_code;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 0)))
#endif
static int vfail_locked(struct sf_conn *c, int code, const char *fmt, va_list ap)
{
    int r = vrecord_locked(c, code, fmt, ap);
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->helper_cv);
    return r;
}

int sf_conn_fail_locked(struct sf_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail_locked(c, code, fmt, ap);
    va_end(ap);
    return r;
}

int sf_conn_fail(struct sf_conn *c, int code, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&c->mu);
    va_start(ap, fmt);
    int r = vfail_locked(c, code, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&c->mu);
    /*
     * Wake writers waiting for a key exchange that will never finish. If a
     * writer holds send_mu (blocked in the flow), it does this itself when
     * it lets go (sf_conn_send_unlock sees `failed`): never wait for it here.
     */
    atomic_store(&c->failed, true);
    if (pthread_mutex_trylock(&c->send_mu) == 0) {
        c->send_dead = true;
        pthread_cond_broadcast(&c->send_cv);
        pthread_mutex_unlock(&c->send_mu);
    }
    return r;
}

int sf_conn_fail_disconnect(struct sf_conn *c, uint32_t reason, int code, const char *fmt, ...)
{
    va_list ap;
    /*
     * Record first (so a writer woken by the dead transport sees the cause),
     * wake the readers only after DISCONNECT is out (so none of them tears
     * the transport down before the server was told why).
     */
    pthread_mutex_lock(&c->mu);
    bool first = c->err_code == 0;
    va_start(ap, fmt);
    int r = vrecord_locked(c, code, fmt, ap);
    va_end(ap);
    if (first) {
        c->err.disconnect_reason = reason; /* the reason we sent */
    }
    pthread_mutex_unlock(&c->mu);
    sf_conn_disconnect(c, reason, sf_err_str(code));
    pthread_mutex_lock(&c->mu);
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->helper_cv);
    pthread_mutex_unlock(&c->mu);
    return r;
}

void sf_conn_step(struct sf_conn *c, const char *step)
{
    pthread_mutex_lock(&c->mu);
    c->step = step;
    pthread_mutex_unlock(&c->mu);
    sf_log("%s", step);
}

/* Copy a ready payload into the packet being built. */
struct copy_arg {
    const uint8_t *p;
    size_t n;
};
static int fill_copy(void *arg, struct sf_buf *b)
{
    const struct copy_arg *a = arg;
    return sf_buf_put_bytes(b, a->p, a->n);
}

int sf_conn_write_packet_locked(struct sf_conn *c, int (*fill)(void *arg, struct sf_buf *b),
                                void *arg)
{
    struct sf_buf b;
    const uint8_t *wire = NULL;
    size_t wirelen = 0;
    sshflow_error ferr = {0};
    int r;

    if (c->send_dead) {
        return SF_ERR_CLOSED;
    }
    sf_tp_begin(&c->tp, &b);
    if ((r = fill(arg, &b)) != 0 || (r = sf_tp_finish(&c->tp, &b, &wire, &wirelen)) != 0) {
        return r;
    }
    if (sf_flow_write(c->flow, wire, wirelen, &ferr) != 0) {
        c->send_dead = true;
        pthread_cond_broadcast(&c->send_cv);
        return SF_ERR_IO;
    }
    return 0;
}

static int send_locked(struct sf_conn *c, const uint8_t *payload, size_t len)
{
    struct copy_arg a = {payload, len};
    return sf_conn_write_packet_locked(c, fill_copy, &a);
}

int sf_conn_flush_deferred_locked(struct sf_conn *c)
{
    struct sf_buf view;
    const uint8_t *p = NULL;
    size_t n = 0;
    int r = 0;

    if (c->kex_active) {
        return 0; /* only key exchange messages until our NEWKEYS is out */
    }
    /* Take the queue as it is now; appends go on into the other buffer. */
    pthread_mutex_lock(&c->ctl_mu);
    struct sf_buf tmp = c->deferred;
    c->deferred = c->deferred_spare;
    c->deferred_spare = tmp;
    pthread_mutex_unlock(&c->ctl_mu);
    struct sf_buf *q = &c->deferred_spare;
    if (c->send_dead) {
        sf_buf_reset(q);
        return 0;
    }
    sf_buf_init_view(&view, sf_buf_ptr(q), sf_buf_len(q));
    while (r == 0 && sf_buf_len(&view) > 0) {
        if ((r = sf_buf_get_string(&view, &p, &n, SF_PACKET_MAX)) == 0) {
            r = send_locked(c, p, n);
        }
    }
    sf_buf_reset(q);
    return r;
}

static bool queue_empty(struct sf_conn *c)
{
    pthread_mutex_lock(&c->ctl_mu);
    bool empty = sf_buf_len(&c->deferred) == 0;
    pthread_mutex_unlock(&c->ctl_mu);
    return empty;
}

/*
 * Release send_mu; before that, send the queued control messages and
 * propagate a recorded failure. Then, if more were queued meanwhile and
 * send_mu is free, take it again and repeat: a message queued by a thread
 * whose trylock failed is always sent by the holder it lost to.
 */
void sf_conn_send_unlock(struct sf_conn *c)
{
    int r = 0;
    for (;;) {
        if (atomic_load(&c->failed) && !c->send_dead) {
            c->send_dead = true;
            pthread_cond_broadcast(&c->send_cv);
        }
        if (r == 0) {
            r = sf_conn_flush_deferred_locked(c);
        }
        bool blocked = c->kex_active || c->send_dead || r != 0;
        pthread_mutex_unlock(&c->send_mu);
        if (blocked || queue_empty(c) || pthread_mutex_trylock(&c->send_mu) != 0) {
            break;
        }
    }
    if (r != 0) {
        (void)sf_conn_fail(c, r, "sending a packet failed: %s", sf_err_str(r));
    }
}

int sf_conn_send(struct sf_conn *c, const uint8_t *payload, size_t len, int kind)
{
    int r = 0;

    if (kind == SF_SEND_CONTROL) {
        pthread_mutex_lock(&c->ctl_mu);
        r = sf_buf_put_string(&c->deferred, payload, len);
        pthread_mutex_unlock(&c->ctl_mu);
        if (r != 0) {
            return sf_conn_fail(c, r, "queueing a control message failed: %s", sf_err_str(r));
        }
        /*
         * The reader thread never writes these to the flow itself once the
         * session runs: a full socket would stop it reading. The helper
         * thread sends them.
         */
        pthread_mutex_lock(&c->mu);
        /* helper_ready implies c->reader was written (mu orders it). */
        bool handed = c->helper_ready && pthread_equal(pthread_self(), c->reader);
        if (handed) {
            c->ctl_pending = true;
            pthread_cond_signal(&c->helper_cv);
        }
        pthread_mutex_unlock(&c->mu);
        if (handed) {
            return 0;
        }
        if (pthread_mutex_trylock(&c->send_mu) == 0) {
            sf_conn_send_unlock(c); /* sends it, unless a key exchange runs */
        }
        /* else: the holder sends it when it lets go of send_mu */
        return 0;
    }
    pthread_mutex_lock(&c->send_mu);
    if (kind != SF_SEND_KEX && !c->kex_active && !c->peer_kex && !c->send_dead && sf_kex_due(c)) {
        r = sf_kex_send_kexinit_locked(c);
    }
    if (r == 0 && kind == SF_SEND_DATA) {
        while (c->kex_active && !c->send_dead) {
            pthread_cond_wait(&c->send_cv, &c->send_mu);
        }
    }
    if (r == 0) {
        /* Queued control messages first: they were asked for earlier. */
        if (kind == SF_SEND_DATA && (r = sf_conn_flush_deferred_locked(c)) == 0) {
            r = send_locked(c, payload, len);
        } else if (kind != SF_SEND_DATA) {
            r = send_locked(c, payload, len);
        }
    }
    sf_conn_send_unlock(c);
    if (r != 0) {
        return sf_conn_fail(c, r, "sending a packet failed: %s", sf_err_str(r));
    }
    return 0;
}

int sf_conn_send_with(struct sf_conn *c, int (*fill)(void *arg, struct sf_buf *b), void *arg)
{
    int r = 0;

    pthread_mutex_lock(&c->send_mu);
    if (!c->kex_active && !c->peer_kex && !c->send_dead && sf_kex_due(c)) {
        r = sf_kex_send_kexinit_locked(c);
    }
    while (r == 0 && c->kex_active && !c->send_dead) {
        pthread_cond_wait(&c->send_cv, &c->send_mu);
    }
    if (r == 0) {
        r = sf_conn_write_packet_locked(c, fill, arg);
    }
    sf_conn_send_unlock(c);
    if (r == SF_ERR_CLOSED) {
        return r;
    }
    if (r != 0) {
        return sf_conn_fail(c, r, "sending data failed: %s", sf_err_str(r));
    }
    return 0;
}

void sf_conn_disconnect(struct sf_conn *c, uint32_t reason, const char *text)
{
    uint8_t msg[300];
    struct sf_buf b;

    sf_buf_init_mem(&b, msg, sizeof(msg));
    if (sf_buf_put_u8(&b, SSH_MSG_DISCONNECT) != 0 || sf_buf_put_u32(&b, reason) != 0 ||
        sf_buf_put_cstr(&b, text) != 0 || sf_buf_put_cstr(&b, "") != 0) {
        return;
    }
    /*
     * Best effort, within a second: if a writer is stuck in the flow, the
     * stream cannot carry a DISCONNECT anyway; it learns of the failure
     * when it lets go of send_mu.
     */
    struct timespec ts;
    sf_abstime(CLOCK_REALTIME, 1000, &ts);
    if (pthread_mutex_timedlock(&c->send_mu, &ts) != 0) {
        atomic_store(&c->failed, true); /* the holder marks the transport dead */
        return;
    }
    if (!c->send_dead) {
        /* Queued control messages (a CHANNEL_CLOSE reply) go first. */
        if (sf_conn_flush_deferred_locked(c) == 0) {
            (void)send_locked(c, sf_buf_ptr(&b), sf_buf_len(&b));
        }
        c->send_dead = true;
    }
    pthread_cond_broadcast(&c->send_cv);
    pthread_mutex_unlock(&c->send_mu);
}

/* Read more bytes from the flow into the rx buffer. */
static int fill_rx(struct sf_conn *c)
{
    uint8_t *p = NULL;
    size_t room = sf_tp_rx_room(&c->tp, &p);
    sshflow_error ferr = {0};
    ssize_t n;

    if (room == 0) {
        return sf_conn_fail(c, SF_ERR_TOO_LARGE, "receive buffer full");
    }
    n = sf_flow_read(c->flow, p, room, &ferr);
    if (n == 0) {
        pthread_mutex_lock(&c->mu);
        const char *during = c->phase == SF_PHASE_HANDSHAKE ? c->step : NULL;
        pthread_mutex_unlock(&c->mu);
        return sf_conn_fail(c, SF_ERR_EOF, "connection closed by the server%s%s",
                            during != NULL ? " during " : "", during != NULL ? during : "");
    }
    if (n < 0) {
        pthread_mutex_lock(&c->mu);
        if (c->err_code == 0) {
            c->err.sys_errno = ferr.sys_errno;
        }
        pthread_mutex_unlock(&c->mu);
        return sf_conn_fail(c, ferr.kind == SSHFLOW_ERR_CLOSED ? SF_ERR_CLOSED : SF_ERR_IO,
                            "reading from the transport failed: %s", ferr.detail);
    }
    sf_tp_rx_commit(&c->tp, (size_t)n);
    return 0;
}

int sf_conn_version_exchange(struct sf_conn *c)
{
    char line[SF_VERSION_LINE_MAX + 2];
    sshflow_error ferr = {0};
    size_t total = 0;
    unsigned lines = 0;
    int r;

    sf_conn_step(c, "version exchange");
    snprintf(c->v_c, sizeof(c->v_c), "%s", client_version);
    snprintf(line, sizeof(line), "%s\r\n", client_version);
    pthread_mutex_lock(&c->send_mu);
    r = sf_flow_write(c->flow, line, strlen(line), &ferr);
    pthread_mutex_unlock(&c->send_mu);
    if (r != 0) {
        return sf_conn_fail(c, SF_ERR_IO, "sending our version failed: %s", ferr.detail);
    }
    /*
     * RFC 4253 s4.2: the server may send other lines before its version
     * line. Lines end in LF (CR optional). Bounded in count and bytes.
     */
    for (;;) {
        uint8_t *start = c->tp.rxbuf + c->tp.rxoff;
        size_t avail = c->tp.rxlen - c->tp.rxoff;
        uint8_t *nl = memchr(start, '\n', avail);
        if (nl == NULL) {
            if (avail > 1024) {
                return sf_conn_fail(c, SF_ERR_PROTOCOL, "server sent a line longer than 1024 bytes "
                                                        "before its version");
            }
            if ((r = fill_rx(c)) != 0) {
                return r;
            }
            continue;
        }
        size_t len = (size_t)(nl - start);
        size_t consumed = len + 1;
        if (memchr(start, '\0', len) != NULL) {
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "server sent a NUL byte before its version");
        }
        if (len > 0 && start[len - 1] == '\r') {
            len--;
        }
        total += consumed;
        c->tp.rxoff += consumed;
        if (len >= 4 && memcmp(start, "SSH-", 4) == 0) {
            if (len > SF_VERSION_LINE_MAX - 2) {
                return sf_conn_fail(c, SF_ERR_PROTOCOL, "server version line too long");
            }
            memcpy(c->v_s, start, len);
            c->v_s[len] = '\0';
            if (strncmp(c->v_s, "SSH-2.0-", 8) != 0 && strncmp(c->v_s, "SSH-1.99-", 9) != 0) {
                return sf_conn_fail(c, SF_ERR_PROTOCOL,
                                    "server speaks an unsupported protocol version: %.64s",
                                    c->v_s);
            }
            sf_log("server version: %s", c->v_s);
            return 0;
        }
        if (++lines > SF_PRE_VERSION_LINES_MAX || total > SF_PRE_VERSION_BYTES_MAX) {
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "server sent too many lines before its version");
        }
    }
}

static int send_unimplemented(struct sf_conn *c, uint32_t seq)
{
    uint8_t msg[5];
    msg[0] = SSH_MSG_UNIMPLEMENTED;
    sf_store_be32(msg + 1, seq);
    return sf_conn_send(c, msg, sizeof(msg), SF_SEND_CONTROL);
}

/*
 * RFC 4253 s11.1
 *   byte      SSH_MSG_DISCONNECT
 *   uint32    reason code
 *   string    description in ISO-10646 UTF-8 encoding
 *   string    language tag
 */
static int recv_disconnect(struct sf_conn *c, struct sf_buf *m)
{
    uint32_t reason = 0;
    const uint8_t *text = NULL;
    size_t n = 0;
    char desc[256];
    int r;

    if ((r = sf_buf_get_u32(m, &reason)) != 0 ||
        (r = sf_buf_get_string(m, &text, &n, SF_STRING_MAX)) != 0) {
        return sf_conn_fail(c, SF_ERR_DISCONNECT, "server disconnected (malformed message)");
    }
    /* Keep printable ASCII only: the text goes into error messages and logs. */
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < sizeof(desc); i++) {
        desc[j++] = (text[i] >= 0x20 && text[i] < 0x7f) ? (char)text[i] : '?';
    }
    desc[j] = '\0';
    pthread_mutex_lock(&c->mu);
    if (c->err_code == 0) {
        c->err.disconnect_reason = reason;
    }
    pthread_mutex_unlock(&c->mu);
    return sf_conn_fail(c, SF_ERR_DISCONNECT, "server disconnected: %s (reason %u)", desc, reason);
}

/*
 * RFC 8308 s2.3
 *   byte       SSH_MSG_EXT_INFO
 *   uint32     nr-extensions
 *   repeat:    string extension-name, string extension-value
 */
static int recv_ext_info(struct sf_conn *c, struct sf_buf *m)
{
    uint32_t count = 0;
    int r;

    if ((r = sf_buf_get_u32(m, &count)) != 0) {
        return r;
    }
    if (count > 1024) {
        return SF_ERR_TOO_LARGE;
    }
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *name = NULL, *val = NULL;
        size_t nlen = 0, vlen = 0;
        if ((r = sf_buf_get_string(m, &name, &nlen, SF_NAME_MAX * 4)) != 0 ||
            (r = sf_buf_get_string(m, &val, &vlen, SF_STRING_MAX)) != 0) {
            return r;
        }
        if (nlen == 15 && memcmp(name, "server-sig-algs", 15) == 0) {
            pthread_mutex_lock(&c->mu);
            size_t k = SF_MIN(vlen, sizeof(c->server_sig_algs) - 1);
            memcpy(c->server_sig_algs, val, k);
            c->server_sig_algs[k] = '\0';
            pthread_mutex_unlock(&c->mu);
            sf_log("server-sig-algs: %s", c->server_sig_algs);
        }
    }
    return sf_buf_expect_end(m);
}

/*
 * RFC 4254 s4
 *   byte      SSH_MSG_GLOBAL_REQUEST
 *   string    request name in US-ASCII only
 *   boolean   want reply
 *   ....      request-specific data follows
 * We support none (no forwarding), so every one that wants a reply gets
 * REQUEST_FAILURE: that keeps keepalive@openssh.com and hostkeys-00 happy.
 */
static int recv_global_request(struct sf_conn *c, struct sf_buf *m)
{
    const uint8_t *name = NULL;
    size_t n = 0;
    bool want = false;
    int r;

    if ((r = sf_buf_get_string(m, &name, &n, SF_STRING_MAX)) != 0 ||
        (r = sf_buf_get_bool(m, &want)) != 0) {
        return r;
    }
    sf_log("global request %.*s (want reply %d)", (int)SF_MIN(n, 64), (const char *)name, want);
    if (want) {
        uint8_t msg = SSH_MSG_REQUEST_FAILURE;
        return sf_conn_send(c, &msg, 1, SF_SEND_CONTROL);
    }
    return 0;
}

static bool is_kex_msg(uint8_t t)
{
    return t == SSH_MSG_KEXINIT || t == SSH_MSG_NEWKEYS || (t >= 30 && t <= 49);
}

int sf_conn_next(struct sf_conn *c, uint8_t *type, struct sf_buf *msg)
{
    int r;

    *type = 0;
    for (;;) {
        uint32_t seq = c->tp.rx.seq;
        /* A failure seen by any thread ends reading: nothing after it is trusted. */
        pthread_mutex_lock(&c->mu);
        r = c->err_code;
        pthread_mutex_unlock(&c->mu);
        if (r != 0) {
            return r;
        }
        r = sf_tp_decode(&c->tp, msg);
        if (r < 0) {
            if (r == SF_ERR_MAC) {
                return sf_conn_fail_disconnect(c, SSH_DISCONNECT_MAC_ERROR, r, "packet %u failed authentication (corrupt or forged)", seq);
            }
            if (c->tp.rxinflate_failed) {
                const char *why = r == SF_ERR_TOO_LARGE
                                      ? "its payload inflates beyond the packet limit"
                                      : sf_err_str(r);
                return sf_conn_fail_disconnect(c, SSH_DISCONNECT_PROTOCOL_ERROR, r,
                                               "packet %u from the server does not decompress: %s",
                                               seq, why);
            }
            return sf_conn_fail_disconnect(c, SSH_DISCONNECT_PROTOCOL_ERROR, r, "bad packet from the server: %s", sf_err_str(r));
        }
        if (r == 0) {
            if ((r = fill_rx(c)) != 0) {
                return r;
            }
            continue;
        }
        /* Strict KEX and plain KEX both require the sequence number not to wrap in the first exchange. */
        if (c->initial_kex && c->tp.rx.seq == 0) {
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "sequence number wrapped during the first key exchange");
        }
        if (c->skip_next) {
            c->skip_next = false;
            return 0;
        }
        if ((r = sf_kex_maybe_rekey(c)) != 0) {
            return r;
        }
        uint8_t t = 0;
        if ((r = sf_buf_get_u8(msg, &t)) != 0) {
            return sf_conn_fail(c, SF_ERR_BAD_FORMAT, "empty packet");
        }
        /*
         * Strict KEX: nothing but key exchange messages during the first
         * exchange. DISCONNECT ends the connection anyway; keep its reason.
         */
        if (c->initial_kex && c->strict && !is_kex_msg(t) && t != SSH_MSG_DISCONNECT) {
            return sf_conn_fail_disconnect(c, SSH_DISCONNECT_PROTOCOL_ERROR, SF_ERR_PROTOCOL,
                                "strict key exchange: unexpected message %u during the first exchange", t);
        }
        if (c->srv_kexinit && t >= 50) {
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "message %u during a key exchange", t);
        }
        switch (t) {
        case SSH_MSG_DISCONNECT:
            return recv_disconnect(c, msg);
        case SSH_MSG_IGNORE:
            continue;
        case SSH_MSG_DEBUG:
            sf_log("server debug message");
            continue;
        case SSH_MSG_UNIMPLEMENTED:
            sf_log("server says a packet of ours was unimplemented");
            continue;
        case SSH_MSG_EXT_INFO:
            if ((r = recv_ext_info(c, msg)) != 0) {
                return sf_conn_fail(c, r, "bad EXT_INFO: %s", sf_err_str(r));
            }
            return 0;
        case SSH_MSG_GLOBAL_REQUEST:
            if ((r = recv_global_request(c, msg)) != 0) {
                return sf_conn_fail(c, r, "bad global request: %s", sf_err_str(r));
            }
            return 0;
        case SSH_MSG_REQUEST_SUCCESS:
        case SSH_MSG_REQUEST_FAILURE:
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "reply to a global request we never sent");
        default:
            break;
        }
        if (is_kex_msg(t)) {
            if ((r = sf_kex_handle(c, t, msg)) != 0) {
                return r;
            }
            return 0;
        }
        /* Numbers we handle above this layer; others get UNIMPLEMENTED (RFC 4253 s11.4). */
        if (t == SSH_MSG_SERVICE_ACCEPT || (t >= 50 && t <= 53) || t == 60 ||
            (t >= SSH_MSG_CHANNEL_OPEN_CONFIRMATION && t <= SSH_MSG_CHANNEL_FAILURE)) {
            *type = t;
            return 1;
        }
        /* Unknown message number: RFC 4253 s11.4. */
        if ((r = send_unimplemented(c, seq)) != 0) {
            return r;
        }
    }
}
