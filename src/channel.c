/*
 * src/channel.c -- the session channel (RFC 4254 s5-6): open, requests,
 * data and window flow control, EOF/close, exit status; and the channel as
 * a flow (read, write, writev, shutdown, close, free).
 *
 * Owns: struct sf_chan (all fields under conn->mu). Must never: send while
 * holding mu, or let the ring outgrow the local window.
 */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Re-open the window once this much was consumed (a quarter of it). */
#define WINDOW_ADJUST_AT (SF_CHAN_WINDOW / 4)
/* Largest data chunk per packet we send, whatever the remote allows. */
#define SEND_CHUNK_MAX (32 * 1024)


/* Wait on cv with an absolute deadline (ms on CLOCK_MONOTONIC; 0: none). 1 if it passed. */
static int wait_until(struct sf_conn *c, uint64_t deadline)
{
    if (deadline == 0) {
        pthread_cond_wait(&c->cv, &c->mu);
        return 0;
    }
    uint64_t now = sf_now_ms();
    if (now >= deadline) {
        return 1;
    }
    struct timespec ts;
    sf_abstime(CLOCK_MONOTONIC, deadline - now, &ts);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    return 0;
}

static int send_simple(struct sf_conn *c, uint8_t type, uint32_t remote_id, int kind)
{
    uint8_t msg[5];
    msg[0] = type;
    sf_store_be32(msg + 1, remote_id);
    return sf_conn_send(c, msg, sizeof(msg), kind);
}

static int send_window_adjust(struct sf_conn *c, uint32_t remote_id, uint32_t add)
{
    uint8_t msg[9];
    msg[0] = SSH_MSG_CHANNEL_WINDOW_ADJUST;
    sf_store_be32(msg + 1, remote_id);
    sf_store_be32(msg + 5, add);
    return sf_conn_send(c, msg, sizeof(msg), SF_SEND_CONTROL);
}

/* With mu held: bytes to give back to the remote now (0: not yet). */
static uint32_t take_adjust_locked(struct sf_chan *ch)
{
    if (ch->consumed < WINDOW_ADJUST_AT || ch->close_rcvd || ch->eof_rcvd) {
        return 0;
    }
    uint32_t add = (uint32_t)ch->consumed;
    ch->consumed = 0;
    ch->local_window += add;
    return add;
}

int sf_chan_pump(struct sf_conn *c)
{
    uint8_t t = 0;
    struct sf_buf m;
    int r = sf_conn_next(c, &t, &m);
    if (r <= 0) {
        return r;
    }
    return sf_chan_dispatch(c, t, &m);
}

/*
 * RFC 4254 s5.1
 *   byte      SSH_MSG_CHANNEL_OPEN
 *   string    "session"
 *   uint32    sender channel
 *   uint32    initial window size
 *   uint32    maximum packet size
 */
int sf_chan_open_session(struct sf_conn *c)
{
    struct sf_chan *ch = sf_alloc(sizeof(*ch));
    uint8_t msg[64];
    struct sf_buf b;
    int r;

    sf_conn_step(c, "opening the session channel");
    if (ch == NULL) {
        return sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
    }
    ch->conn = c;
    ch->local_id = 0;
    ch->state = SF_CHAN_OPENING;
    ch->local_window = SF_CHAN_WINDOW;
    if ((r = sf_ring_init(&ch->data, SF_CHAN_WINDOW)) != 0 ||
        (r = sf_ring_init(&ch->ext, c->cfg.max_stderr)) != 0) {
        sf_ring_free(&ch->data);
        sf_free(ch);
        return sf_conn_fail(c, r, "out of memory");
    }
    pthread_mutex_lock(&c->mu);
    c->chan = ch;
    pthread_mutex_unlock(&c->mu);

    sf_buf_init_mem(&b, msg, sizeof(msg));
    if ((r = sf_buf_put_u8(&b, SSH_MSG_CHANNEL_OPEN)) != 0 ||
        (r = sf_buf_put_cstr(&b, "session")) != 0 || (r = sf_buf_put_u32(&b, ch->local_id)) != 0 ||
        (r = sf_buf_put_u32(&b, SF_CHAN_WINDOW)) != 0 ||
        (r = sf_buf_put_u32(&b, SF_CHAN_MAXPKT)) != 0) {
        return sf_conn_fail(c, r, "building CHANNEL_OPEN failed");
    }
    if ((r = sf_conn_send(c, sf_buf_ptr(&b), sf_buf_len(&b), SF_SEND_CONTROL)) != 0) {
        return r;
    }
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int st = ch->state;
        pthread_mutex_unlock(&c->mu);
        if (st != SF_CHAN_OPENING) {
            break;
        }
        if ((r = sf_chan_pump(c)) < 0) {
            return r;
        }
    }
    if (ch->state == SF_CHAN_FAILED) {
        return sf_conn_fail(c, SF_ERR_CHANNEL, "server refused to open a session channel: %s (code %u)",
                            ch->open_fail, ch->open_fail_code);
    }
    return 0;
}

/* Send a channel request; with want_reply, wait for its answer (1 success, 0 failure). */
static int chan_request(struct sf_conn *c, const char *type, bool want,
                        int (*fill)(const void *arg, struct sf_buf *b), const void *arg,
                        int kind)
{
    struct sf_chan *ch = c->chan;
    struct sf_buf b = {0};
    int r;

    if ((r = sf_buf_alloc(&b, 256, SF_BUF_MAX)) != 0) {
        return r;
    }
    pthread_mutex_lock(&c->mu);
    uint32_t rid = ch->remote_id;
    int before_ok = ch->req_success, before_fail = ch->req_failure;
    if (want) {
        ch->req_pending++;
    }
    pthread_mutex_unlock(&c->mu);
    if ((r = sf_buf_put_u8(&b, SSH_MSG_CHANNEL_REQUEST)) != 0 || (r = sf_buf_put_u32(&b, rid)) != 0 ||
        (r = sf_buf_put_cstr(&b, type)) != 0 || (r = sf_buf_put_bool(&b, want)) != 0 ||
        (fill != NULL && (r = fill(arg, &b)) != 0)) {
        sf_buf_free(&b);
        return r;
    }
    r = sf_conn_send(c, sf_buf_ptr(&b), sf_buf_len(&b), kind);
    sf_buf_free(&b);
    if (r != 0 || !want) {
        return r;
    }
    for (;;) {
        pthread_mutex_lock(&c->mu);
        bool answered = ch->req_success != before_ok || ch->req_failure != before_fail;
        bool ok = ch->req_success != before_ok;
        bool dead = ch->close_rcvd;
        /* Some servers (paramiko) start the command before they send the reply, and a
         * quick command's output, exit status and CLOSE can overtake it: a command that
         * produced output or an exit status was evidently started. */
        bool ran = ch->eof_rcvd || ch->exit.kind != SSHFLOW_EXIT_NONE ||
                   sf_ring_len(&ch->data) > 0 || sf_ring_len(&ch->ext) > 0;
        pthread_mutex_unlock(&c->mu);
        if (answered) {
            return ok ? 1 : 0;
        }
        if (dead) {
            return ran ? 1 : 0;
        }
        if ((r = sf_chan_pump(c)) < 0) {
            return r;
        }
    }
}

static int fill_cstr(const void *arg, struct sf_buf *b)
{
    return sf_buf_put_cstr(b, (const char *)arg);
}

static int fill_env(const void *arg, struct sf_buf *b)
{
    const struct sf_env *e = arg;
    int r;
    if ((r = sf_buf_put_cstr(b, e->name)) != 0 || (r = sf_buf_put_cstr(b, e->value)) != 0) {
        return r;
    }
    return 0;
}

/*
 * RFC 4254 s6.2
 *   string    TERM environment variable value (e.g., vt100)
 *   uint32    terminal width, characters / uint32 terminal height, rows
 *   uint32    terminal width, pixels / uint32 terminal height, pixels
 *   string    encoded terminal modes
 */
static int fill_pty(const void *arg, struct sf_buf *b)
{
    const struct sshflow_request *q = arg;
    static const uint8_t no_modes[1] = {0}; /* TTY_OP_END */
    int r;
    if ((r = sf_buf_put_cstr(b, q->term != NULL ? q->term : "xterm")) != 0 ||
        (r = sf_buf_put_u32(b, q->cols)) != 0 || (r = sf_buf_put_u32(b, q->rows)) != 0 ||
        (r = sf_buf_put_u32(b, 0)) != 0 || (r = sf_buf_put_u32(b, 0)) != 0 ||
        (r = q->modes != NULL ? sf_buf_put_string(b, q->modes, q->modes_len)
                              : sf_buf_put_string(b, no_modes, 1)) != 0) {
        return r;
    }
    return 0;
}

int sf_chan_send_requests(struct sf_conn *c)
{
    const struct sshflow_request *q = c->req;
    int r;

    sf_conn_step(c, "sending the channel request");
    for (const struct sf_env *e = q->env; e != NULL; e = e->next) {
        if ((r = chan_request(c, "env", false, fill_env, e, SF_SEND_CONTROL)) < 0) {
            return r;
        }
    }
    if (q->pty) {
        if ((r = chan_request(c, "pty-req", true, fill_pty, q, SF_SEND_CONTROL)) < 0) {
            return r;
        }
        if (r == 0) {
            sf_log("PTY allocation request failed; going on without a terminal");
        }
    }
    switch (q->kind) {
    case SF_REQ_EXEC:
        r = chan_request(c, "exec", true, fill_cstr, q->arg, SF_SEND_CONTROL);
        break;
    case SF_REQ_SHELL:
        r = chan_request(c, "shell", true, NULL, NULL, SF_SEND_CONTROL);
        break;
    case SF_REQ_SUBSYSTEM:
        r = chan_request(c, "subsystem", true, fill_cstr, q->arg, SF_SEND_CONTROL);
        break;
    default:
        return sf_conn_fail(c, SF_ERR_INVALID, "unknown request kind");
    }
    if (r < 0) {
        return r;
    }
    if (r == 0) {
        const char *what = q->kind == SF_REQ_EXEC ? "exec" : q->kind == SF_REQ_SHELL ? "shell" : "subsystem";
        return sf_conn_fail(c, SF_ERR_CHANNEL, "server refused the %s request%s%s", what,
                            q->arg != NULL ? " for " : "", q->arg != NULL ? q->arg : "");
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Incoming channel messages (reader thread)                                */
/* ------------------------------------------------------------------------ */

static void copy_text(char *dst, size_t dstsz, const uint8_t *p, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < dstsz; i++) {
        dst[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    }
    dst[j] = '\0';
}

/*
 * RFC 4254 s6.10
 *   exit-status: uint32 exit_status
 *   exit-signal: string signal name (without "SIG"), boolean core dumped,
 *                string error message, string language tag
 */
static int recv_request_locked(struct sf_chan *ch, struct sf_buf *m, bool *want)
{
    const uint8_t *type = NULL;
    size_t tn = 0;
    int r;

    if ((r = sf_buf_get_string(m, &type, &tn, SF_STRING_MAX)) != 0 ||
        (r = sf_buf_get_bool(m, want)) != 0) {
        return r;
    }
    if (tn == 11 && memcmp(type, "exit-status", 11) == 0) {
        uint32_t st = 0;
        if ((r = sf_buf_get_u32(m, &st)) != 0 || (r = sf_buf_expect_end(m)) != 0) {
            return r;
        }
        ch->exit.kind = SSHFLOW_EXIT_STATUS;
        ch->exit.status = st;
        *want = false; /* never answered */
        return 0;
    }
    if (tn == 11 && memcmp(type, "exit-signal", 11) == 0) {
        const uint8_t *sig = NULL, *msg = NULL, *lang = NULL;
        size_t sn = 0, mn = 0, ln = 0;
        bool core = false;
        if ((r = sf_buf_get_string(m, &sig, &sn, SF_STRING_MAX)) != 0 ||
            (r = sf_buf_get_bool(m, &core)) != 0 ||
            (r = sf_buf_get_string(m, &msg, &mn, SF_STRING_MAX)) != 0 ||
            (r = sf_buf_get_string(m, &lang, &ln, SF_STRING_MAX)) != 0 ||
            (r = sf_buf_expect_end(m)) != 0) {
            return r;
        }
        ch->exit.kind = SSHFLOW_EXIT_SIGNAL;
        copy_text(ch->exit.signal, sizeof(ch->exit.signal), sig, sn);
        ch->exit.core_dumped = core;
        copy_text(ch->exit.message, sizeof(ch->exit.message), msg, mn);
        *want = false;
        return 0;
    }
    /* keepalive@openssh.com and anything else: refused if a reply is wanted. */
    sf_log("channel request %.*s (want reply %d)", (int)SF_MIN(tn, 64), (const char *)type, *want);
    return 0;
}

int sf_chan_dispatch(struct sf_conn *c, uint8_t type, struct sf_buf *m)
{
    struct sf_chan *ch = c->chan;
    uint32_t id = 0;
    uint32_t adjust = 0, rid = 0;
    bool want = false, send_close = false;
    int r;

    if (type < SSH_MSG_CHANNEL_OPEN_CONFIRMATION || type > SSH_MSG_CHANNEL_FAILURE) {
        return sf_conn_fail(c, SF_ERR_PROTOCOL, "unexpected message %u", type);
    }
    if ((r = sf_buf_get_u32(m, &id)) != 0) {
        return sf_conn_fail(c, r, "truncated channel message %u", type);
    }
    pthread_mutex_lock(&c->mu);
    if (c->err_code != 0) {
        /* Another thread recorded a failure (and may have reported it to a
         * reader): nothing that arrives after it is delivered. */
        r = c->err_code;
        pthread_mutex_unlock(&c->mu);
        return r;
    }
    if (ch == NULL || id != ch->local_id) {
        pthread_mutex_unlock(&c->mu);
        return sf_conn_fail(c, SF_ERR_PROTOCOL, "message %u for unknown channel %u", type, id);
    }
    if (ch->state == SF_CHAN_OPENING && type != SSH_MSG_CHANNEL_OPEN_CONFIRMATION &&
        type != SSH_MSG_CHANNEL_OPEN_FAILURE) {
        r = SF_ERR_PROTOCOL;
        goto bad;
    }
    if (ch->close_rcvd) {
        r = SF_ERR_PROTOCOL; /* nothing may follow CLOSE (RFC 4254 s5.3) */
        goto bad;
    }
    rid = ch->remote_id;
    switch (type) {
    case SSH_MSG_CHANNEL_OPEN_CONFIRMATION: {
        /* RFC 4254 s5.1: uint32 sender channel, initial window size, maximum packet size */
        uint32_t sender = 0, win = 0, maxpkt = 0;
        if (ch->state != SF_CHAN_OPENING) {
            r = SF_ERR_PROTOCOL;
            goto bad;
        }
        if ((r = sf_buf_get_u32(m, &sender)) != 0 || (r = sf_buf_get_u32(m, &win)) != 0 ||
            (r = sf_buf_get_u32(m, &maxpkt)) != 0 || (r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        if (maxpkt < SF_CHAN_MAXPKT_MIN) {
            r = SF_ERR_PROTOCOL;
            goto bad;
        }
        ch->remote_id = sender;
        ch->remote_window = win;
        ch->remote_maxpkt = maxpkt;
        ch->state = SF_CHAN_OPEN;
        break;
    }
    case SSH_MSG_CHANNEL_OPEN_FAILURE: {
        /* RFC 4254 s5.1: uint32 reason code, string description, string language tag */
        uint32_t code = 0;
        const uint8_t *d = NULL, *lang = NULL;
        size_t dn = 0, ln = 0;
        if (ch->state != SF_CHAN_OPENING) {
            r = SF_ERR_PROTOCOL;
            goto bad;
        }
        if ((r = sf_buf_get_u32(m, &code)) != 0 ||
            (r = sf_buf_get_string(m, &d, &dn, SF_STRING_MAX)) != 0 ||
            (r = sf_buf_get_string(m, &lang, &ln, SF_STRING_MAX)) != 0 ||
            (r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        ch->open_fail_code = code;
        copy_text(ch->open_fail, sizeof(ch->open_fail), d, dn);
        ch->state = SF_CHAN_FAILED;
        break;
    }
    case SSH_MSG_CHANNEL_WINDOW_ADJUST: {
        uint32_t add = 0;
        if ((r = sf_buf_get_u32(m, &add)) != 0 || (r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        /* RFC 4254 s5.2: the window may not exceed 2^32 - 1 bytes. */
        if ((uint64_t)ch->remote_window + add > UINT32_MAX) {
            r = SF_ERR_PROTOCOL;
            goto bad;
        }
        ch->remote_window += add;
        break;
    }
    case SSH_MSG_CHANNEL_DATA:
    case SSH_MSG_CHANNEL_EXTENDED_DATA: {
        /* RFC 4254 s5.2: [uint32 data_type_code (1 = stderr)] string data */
        uint32_t code = 0;
        const uint8_t *d = NULL;
        size_t dn = 0;
        if ((type == SSH_MSG_CHANNEL_EXTENDED_DATA && (r = sf_buf_get_u32(m, &code)) != 0) ||
            (r = sf_buf_get_string(m, &d, &dn, SF_PACKET_MAX)) != 0 ||
            (r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        if (ch->eof_rcvd || dn > ch->local_window) {
            r = SF_ERR_PROTOCOL; /* data after EOF, or beyond the window we gave */
            goto bad;
        }
        ch->local_window -= (uint32_t)dn;
        if (type == SSH_MSG_CHANNEL_DATA) {
            size_t w = sf_ring_write(&ch->data, d, dn);
            SF_ASSERT(w == dn); /* ring room >= local window, always */
            (void)w;
        } else {
            /* stderr: buffered apart; its window is given back at once (policy in sshflow.h). */
            size_t w = code == 1 ? sf_ring_write(&ch->ext, d, dn) : 0;
            ch->ext_dropped += dn - w;
            ch->consumed += dn;
            adjust = take_adjust_locked(ch);
        }
        break;
    }
    case SSH_MSG_CHANNEL_EOF:
        if ((r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        ch->eof_rcvd = true;
        break;
    case SSH_MSG_CHANNEL_CLOSE:
        if ((r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        ch->close_rcvd = true;
        if (!ch->close_sent) {
            ch->close_sent = true;
            send_close = true;
        }
        ch->state = SF_CHAN_CLOSED;
        break;
    case SSH_MSG_CHANNEL_REQUEST:
        if ((r = recv_request_locked(ch, m, &want)) != 0) {
            goto bad;
        }
        break;
    case SSH_MSG_CHANNEL_SUCCESS:
    case SSH_MSG_CHANNEL_FAILURE:
        if ((r = sf_buf_expect_end(m)) != 0) {
            goto bad;
        }
        if (ch->req_pending == 0) {
            r = SF_ERR_PROTOCOL; /* a reply to nothing */
            goto bad;
        }
        ch->req_pending--;
        if (type == SSH_MSG_CHANNEL_SUCCESS) {
            ch->req_success++;
        } else {
            ch->req_failure++;
        }
        break;
    default:
        r = SF_ERR_PROTOCOL;
        goto bad;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (adjust > 0 && (r = send_window_adjust(c, rid, adjust)) != 0) {
        return r;
    }
    if (want && (r = send_simple(c, SSH_MSG_CHANNEL_FAILURE, rid, SF_SEND_CONTROL)) != 0) {
        return r;
    }
    if (send_close) {
        r = send_simple(c, SSH_MSG_CHANNEL_CLOSE, rid, SF_SEND_CONTROL);
        pthread_mutex_lock(&c->mu);
        ch->close_replied = true; /* close() may now send DISCONNECT after it */
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        if (r != 0) {
            return r;
        }
    }
    return 0;
bad:
    r = sf_conn_fail_locked(c, r, "bad channel message %u: %s", type, sf_err_str(r));
    pthread_mutex_unlock(&c->mu);
    sf_conn_disconnect(c, SSH_DISCONNECT_PROTOCOL_ERROR, "bad channel message");
    return sf_conn_fail(c, r, "%s", "channel protocol error");
}

/* ------------------------------------------------------------------------ */
/* The channel as a flow (application threads)                              */
/* ------------------------------------------------------------------------ */

struct chan_flow {
    struct sf_chan *ch;
    bool torn_down;   /* under mu */
    bool closing;     /* under mu: close() started; blocked writers give up */
    bool shut;        /* EOF sent (shutdown or close); under write_mu */
};

/* Error to hand an application call: the sticky one, as a public kind. */
static int app_error_locked(struct sf_conn *c, sshflow_error *err)
{
    if (err != NULL) {
        *err = c->err;
    }
    return sf_err_kind(c->err_code);
}

static ssize_t read_ring(struct sf_chan *ch, struct sf_ring *ring, void *buf, size_t len,
                         bool is_data, sshflow_error *err)
{
    struct sf_conn *c = ch->conn;
    uint32_t adjust = 0, rid;
    size_t n;

    pthread_mutex_lock(&c->mu);
    while (sf_ring_len(ring) == 0 && !ch->eof_rcvd && !ch->close_rcvd && c->err_code == 0 &&
           !ch->aborted) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    if (ch->aborted) {
        pthread_mutex_unlock(&c->mu);
        return sf_err_set(err, SF_ERR_CLOSED, "the channel flow was aborted");
    }
    n = sf_ring_read(ring, buf, len);
    if (n == 0) {
        if (ch->eof_rcvd || ch->close_rcvd) {
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
        int k = app_error_locked(c, err);
        pthread_mutex_unlock(&c->mu);
        return k;
    }
    if (is_data) {
        ch->consumed += n;
        if (c->phase == SF_PHASE_READY) {
            adjust = take_adjust_locked(ch);
        }
    }
    rid = ch->remote_id;
    pthread_mutex_unlock(&c->mu);
    if (adjust > 0) {
        (void)send_window_adjust(c, rid, adjust); /* a failure is sticky; the next call sees it */
    }
    return (ssize_t)n;
}

static ssize_t cf_read(void *ctx, void *buf, size_t len, sshflow_error *err)
{
    struct chan_flow *cf = ctx;
    return read_ring(cf->ch, &cf->ch->data, buf, len, true, err);
}

struct data_fill {
    uint32_t rid;
    const uint8_t *p;
    size_t n;
};

/* RFC 4254 s5.2: byte SSH_MSG_CHANNEL_DATA, uint32 recipient channel, string data */
static int fill_data(void *arg, struct sf_buf *b)
{
    const struct data_fill *d = arg;
    int r;
    if ((r = sf_buf_put_u8(b, SSH_MSG_CHANNEL_DATA)) != 0 || (r = sf_buf_put_u32(b, d->rid)) != 0 ||
        (r = sf_buf_put_string(b, d->p, d->n)) != 0) {
        return r;
    }
    return 0;
}

/* Write with write_mu held. */
static int write_locked(struct chan_flow *cf, const uint8_t *p, size_t len, sshflow_error *err)
{
    struct sf_chan *ch = cf->ch;
    struct sf_conn *c = ch->conn;
    int r;

    while (len > 0) {
        struct data_fill d;
        pthread_mutex_lock(&c->mu);
        while (ch->remote_window == 0 && !ch->close_rcvd && !cf->shut && c->err_code == 0 &&
               !ch->aborted && !cf->closing) {
            pthread_cond_wait(&c->cv, &c->mu);
        }
        if (cf->shut || ch->close_rcvd || cf->torn_down || ch->aborted || cf->closing) {
            pthread_mutex_unlock(&c->mu);
            return sf_err_set(err, SF_ERR_CLOSED, "the channel is closed for writing");
        }
        if (c->err_code != 0) {
            int k = app_error_locked(c, err);
            pthread_mutex_unlock(&c->mu);
            return k;
        }
        size_t chunk = SF_MIN(len, (size_t)ch->remote_window);
        chunk = SF_MIN(chunk, (size_t)ch->remote_maxpkt);
        chunk = SF_MIN(chunk, (size_t)SEND_CHUNK_MAX);
        ch->remote_window -= (uint32_t)chunk;
        d.rid = ch->remote_id;
        pthread_mutex_unlock(&c->mu);
        d.p = p;
        d.n = chunk;
        if ((r = sf_conn_send_with(c, fill_data, &d)) != 0) {
            pthread_mutex_lock(&c->mu);
            int k = c->err_code != 0 ? app_error_locked(c, err)
                                     : sf_err_set(err, SF_ERR_CLOSED, "the connection is closed");
            pthread_mutex_unlock(&c->mu);
            return k;
        }
        p += chunk;
        len -= chunk;
    }
    return 0;
}

static int cf_write(void *ctx, const void *buf, size_t len, sshflow_error *err)
{
    struct chan_flow *cf = ctx;
    pthread_mutex_lock(&cf->ch->conn->write_mu);
    int r = write_locked(cf, buf, len, err);
    pthread_mutex_unlock(&cf->ch->conn->write_mu);
    return r;
}

static int cf_writev(void *ctx, const struct iovec *iov, int iovcnt, sshflow_error *err)
{
    struct chan_flow *cf = ctx;
    int r = 0;
    pthread_mutex_lock(&cf->ch->conn->write_mu);
    for (int i = 0; i < iovcnt && r == 0; i++) {
        r = write_locked(cf, iov[i].iov_base, iov[i].iov_len, err);
    }
    pthread_mutex_unlock(&cf->ch->conn->write_mu);
    return r;
}

/* Send EOF once; write_mu held so it follows the last write. */
static int shutdown_locked(struct chan_flow *cf, sshflow_error *err)
{
    struct sf_chan *ch = cf->ch;
    struct sf_conn *c = ch->conn;
    int r = 0;

    if (cf->shut) {
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    cf->shut = true;
    bool send = !ch->eof_sent && !ch->close_sent && !cf->torn_down && c->err_code == 0;
    ch->eof_sent = true;
    uint32_t rid = ch->remote_id;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* CONTROL: never waits for a key exchange (close stays bounded); write_mu
     * is held, so no data can be queued behind it and overtake it. */
    if (send && (r = send_simple(c, SSH_MSG_CHANNEL_EOF, rid, SF_SEND_CONTROL)) != 0) {
        pthread_mutex_lock(&c->mu);
        r = app_error_locked(c, err);
        pthread_mutex_unlock(&c->mu);
    }
    return r;
}

static int cf_shutdown(void *ctx, sshflow_error *err)
{
    struct chan_flow *cf = ctx;
    struct sf_conn *c = cf->ch->conn;

    pthread_mutex_lock(&c->write_mu);
    int r = shutdown_locked(cf, err);
    pthread_mutex_unlock(&c->write_mu);
    return r;
}

/* Take write_mu within the bound (< 0: without bound, 0: only if free now). */
static bool lock_writes(struct sf_conn *c, int timeout_ms, uint64_t deadline)
{
    if (timeout_ms < 0) {
        pthread_mutex_lock(&c->write_mu);
        return true;
    }
    if (timeout_ms == 0) {
        return pthread_mutex_trylock(&c->write_mu) == 0;
    }
    uint64_t now = sf_now_ms();
    uint64_t left = deadline > now ? deadline - now : 0;
    struct timespec ts;
    sf_abstime(CLOCK_REALTIME, left, &ts); /* pthread_mutex_timedlock's clock */
    return pthread_mutex_timedlock(&c->write_mu, &ts) == 0;
}

static int cf_close_timeout(void *ctx, int timeout_ms, sshflow_error *err)
{
    struct chan_flow *cf = ctx;
    struct sf_chan *ch = cf->ch;
    struct sf_conn *c = ch->conn;
    uint64_t deadline = timeout_ms > 0 ? sf_now_ms() + (uint64_t)timeout_ms : 0;
    int r = 0;

    pthread_mutex_lock(&c->mu);
    if (cf->torn_down) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    /* Writers blocked waiting for window give up (CLOSED), so EOF can follow them. */
    cf->closing = true;
    c->closing = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* A writer inside a packet write finishes it; within the bound, or teardown ends it. */
    if (lock_writes(c, timeout_ms, deadline)) {
        (void)shutdown_locked(cf, NULL);
        pthread_mutex_unlock(&c->write_mu);
    }
    pthread_mutex_lock(&c->mu);
    /* Wait for the remote's CLOSE and for our reply to be on its way (RFC 4254 s5.3). */
    while ((!ch->close_rcvd || !ch->close_replied) && c->err_code == 0 && timeout_ms != 0) {
        if (wait_until(c, deadline)) {
            break;
        }
    }
    if (!ch->close_rcvd) {
        if (c->err_code != 0) {
            r = app_error_locked(c, err);
        } else {
            r = sf_err_set(err, SF_ERR_TIMEOUT, "the server did not close the channel within %d ms",
                           timeout_ms);
        }
    }
    bool graceful = ch->close_rcvd;
    cf->torn_down = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    sf_conn_teardown(c, graceful);
    return r;
}

static int cf_close(void *ctx, sshflow_error *err)
{
    return cf_close_timeout(ctx, -1, err);
}

static void cf_free(void *ctx)
{
    struct chan_flow *cf = ctx;
    struct sf_chan *ch = cf->ch;
    struct sf_conn *c = ch->conn;

    if (!cf->torn_down) {
        cf->torn_down = true;
        sf_conn_teardown(c, false);
    }
    sf_ring_free(&ch->data);
    sf_ring_free(&ch->ext);
    sf_free(ch);
    c->chan = NULL;
    sshflow_free(c->flow);
    c->flow = NULL;
    sf_conn_free(c);
    sf_free(cf);
}

/* Wake every thread blocked in this channel (it is the transport of a nested connection being torn down). */
static void cf_abort(void *ctx)
{
    struct chan_flow *cf = ctx;
    struct sf_conn *c = cf->ch->conn;
    pthread_mutex_lock(&c->mu);
    cf->ch->aborted = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static const sshflow_flow_ops chan_ops = {
    .read = cf_read,
    .write = cf_write,
    .writev = cf_writev,
    .shutdown = cf_shutdown,
    .close = cf_close,
    .abort = cf_abort,
    .free = cf_free,
};

int sf_chan_make_flow(struct sf_conn *c, sshflow_flow **out)
{
    struct chan_flow *cf = sf_alloc(sizeof(*cf));
    sshflow_flow *f = NULL;

    *out = NULL;
    if (cf == NULL) {
        return SF_ERR_NOMEM;
    }
    cf->ch = c->chan;
    if ((f = sshflow_flow_new(&chan_ops, cf)) == NULL) {
        sf_free(cf);
        return SF_ERR_NOMEM;
    }
    f->close_timeout = cf_close_timeout;
    f->chan = c->chan;
    *out = f;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Channel extras (public)                                                  */
/* ------------------------------------------------------------------------ */

SSHFLOW_API ssize_t sshflow_read_stderr(sshflow_flow *f, void *buf, size_t len, sshflow_error *err)
{
    if (f == NULL || f->chan == NULL || buf == NULL || len == 0) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_read_stderr needs an SSH channel and a buffer");
    }
    return read_ring(f->chan, &f->chan->ext, buf, len, false, err);
}

SSHFLOW_API uint64_t sshflow_stderr_dropped(sshflow_flow *f)
{
    if (f == NULL || f->chan == NULL) {
        return 0;
    }
    struct sf_conn *c = f->chan->conn;
    pthread_mutex_lock(&c->mu);
    uint64_t n = f->chan->ext_dropped;
    pthread_mutex_unlock(&c->mu);
    return n;
}

SSHFLOW_API int sshflow_exit_info(sshflow_flow *f, sshflow_exit *out)
{
    if (f == NULL || f->chan == NULL || out == NULL) {
        return SSHFLOW_ERR_INVALID;
    }
    struct sf_conn *c = f->chan->conn;
    pthread_mutex_lock(&c->mu);
    *out = f->chan->exit;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

struct wc_arg {
    uint32_t cols, rows;
};

static int fill_wc(const void *arg, struct sf_buf *b)
{
    const struct wc_arg *a = arg;
    int r;
    if ((r = sf_buf_put_u32(b, a->cols)) != 0 || (r = sf_buf_put_u32(b, a->rows)) != 0 ||
        (r = sf_buf_put_u32(b, 0)) != 0 || (r = sf_buf_put_u32(b, 0)) != 0) {
        return r;
    }
    return 0;
}

static int app_request(sshflow_flow *f, const char *type,
                       int (*fill)(const void *arg, struct sf_buf *b), const void *arg,
                       sshflow_error *err)
{
    if (f == NULL || f->chan == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "not an SSH channel");
    }
    struct sf_conn *c = f->chan->conn;
    pthread_mutex_lock(&c->mu);
    bool closed = f->chan->close_rcvd || f->chan->close_sent;
    int k = c->err_code != 0 ? app_error_locked(c, err) : 0;
    pthread_mutex_unlock(&c->mu);
    if (k != 0) {
        return k;
    }
    if (closed) {
        return sf_err_set(err, SF_ERR_CLOSED, "the channel is closed");
    }
    int r = chan_request(c, type, false, fill, arg, SF_SEND_DATA);
    if (r != 0) {
        pthread_mutex_lock(&c->mu);
        k = c->err_code != 0 ? app_error_locked(c, err) : sf_err_set(err, r, "sending %s failed", type);
        pthread_mutex_unlock(&c->mu);
        return k;
    }
    return 0;
}

SSHFLOW_API int sshflow_window_change(sshflow_flow *f, uint32_t cols, uint32_t rows,
                                      sshflow_error *err)
{
    struct wc_arg a = {cols, rows};
    return app_request(f, "window-change", fill_wc, &a, err);
}

SSHFLOW_API int sshflow_signal(sshflow_flow *f, const char *signame, sshflow_error *err)
{
    if (signame == NULL || signame[0] == '\0' || strlen(signame) > 20) {
        return sf_err_set(err, SF_ERR_INVALID, "bad signal name");
    }
    if (strncmp(signame, "SIG", 3) == 0) {
        signame += 3;
    }
    return app_request(f, "signal", fill_cstr, signame, err);
}
