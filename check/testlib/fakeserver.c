/*
 * check/testlib/fakeserver.c -- a scripted, in-memory SSH server for the
 * protocol-core tests (see fakeserver.h).
 *
 * Owns: the server thread, the server end of the socketpair, the server's
 * packet state (a struct sf_tp used with its directions swapped), its host
 * keys, and the record of what the client did (struct fs_seen); on the test
 * side, the throwaway key files (fs_keys_make) and a client set up through
 * the public API (fs_connect). Must never: block without a bound (every wait
 * ends at fs->deadline), call Check's assertions from its thread, touch the
 * client's internals (it sees the client only through the socket), or touch
 * files outside its own temp dir.
 */
#include "fakeserver.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cipher.h"
#include "conn.h"
#include "kex.h"
#include "key.h"
#include "mlkem768.h"
#include "sntrup761.h"
#include "sshd.h"

#define FS_VERSION "SSH-2.0-fakepeer_1.0"
#define FS_STRICT_S "kex-strict-s-v00@openssh.com"
#define FS_STRICT_C "kex-strict-c-v00@openssh.com"
#define FS_EXT_INFO_C "ext-info-c"
#define FS_TIMEOUT_DEFAULT_MS 8000
#define FS_WINDOW_DEFAULT (2 * 1024 * 1024)
#define FS_MAXPKT_DEFAULT (32 * 1024)
#define FS_SERVER_CHAN 7 /* our channel id: not the client's 0, so mix-ups show */
#define FS_SCRATCH (SF_PACKET_MAX)
#define FS_X25519_LEN 32

/* A message received but not yet handed to the script. */
struct fs_qmsg {
    struct fs_qmsg *next;
    size_t len;
    uint8_t d[];
};

struct fs {
    struct fs_script sc;
    int sock;        /* our end (non-blocking) */
    int client_sock; /* the test's end until fs_flow() takes it */
    pthread_t thread;
    bool started;
    bool joined;
    uint64_t deadline; /* sf_now_ms() bound on everything */

    /* Notes to the main thread. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned notes; /* fs_notify() calls (server to test) */
    unsigned pokes; /* fs_poke() calls (test to server) */

    /* Outcome. */
    int result; /* 0 ran to the end (or a planned stop), -1 failed */
    bool failed;
    bool planned; /* stopped at a point on purpose */
    char why[512];
    struct fs_seen seen;

    /* Keys. */
    struct sf_privkey *hostkey, *signkey, *rekey_hostkey;
    char hk_algs[128];            /* host key algorithms we offer */
    char hk_alg[SF_NAME_MAX + 1]; /* negotiated */

    /* Transport. */
    struct sf_tp tp; /* tx = server to client, rx = client to server */
    unsigned sent;   /* packets sent */
    bool truncated;  /* the truncation fault was used */
    char v_c[256];
    uint8_t *i_s, *i_c; /* KEXINIT payloads of the current exchange */
    size_t i_s_len, i_c_len;
    bool kexinit_sent;  /* ours, in the current exchange */
    bool in_kex;        /* a key exchange is running (we send nothing else) */
    bool client_in_kex; /* the client's KEXINIT seen, its NEWKEYS not yet */
    bool initial;       /* the first key exchange */
    bool strict;
    uint8_t session_id[64];
    size_t sid_len;
    const struct sf_cipher_info *ci_ctos, *ci_stoc;
    const struct sf_mac_info *mi_ctos, *mi_stoc;
    int comp_ctos, comp_stoc; /* SF_COMP_* agreed in the current exchange */
    bool authed;              /* USERAUTH_SUCCESS sent: zlib@openssh.com runs */
    const struct fs_kexm *km; /* the key exchange method of the current exchange */

    /* Received messages. */
    uint8_t *cur; /* copy of the last message */
    size_t curlen;
    struct fs_qmsg *q_head, *q_tail;
    uint8_t *scratch; /* for building messages */

    /* Channel. */
    uint32_t cli_chan;   /* the client's id */
    uint32_t cli_window; /* bytes we may send */
    uint32_t cli_maxpkt;
    uint32_t srv_window;  /* bytes the client may still send us */
    uint32_t srv_granted; /* the window size we keep re-opening to */
    uint32_t srv_maxpkt;
    bool chan_open;
    bool no_read;  /* fs_pause_reading(): leave the socket unread */
    uint8_t *data; /* channel data from the client */
    size_t data_len, data_cap;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

int fs_fail(struct fs *fs, const char *fmt, ...)
{
    va_list ap;
    if (!fs->failed) {
        fs->failed = true;
        va_start(ap, fmt);
        vsnprintf(fs->why, sizeof(fs->why), fmt, ap);
        va_end(ap);
    }
    return -1;
}

static void violation(struct fs *fs, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A protocol violation by the client: recorded (first wins), not fatal. */
static void violation(struct fs *fs, const char *fmt, ...)
{
    va_list ap;
    if (fs->seen.violation[0] == '\0') {
        va_start(ap, fmt);
        vsnprintf(fs->seen.violation, sizeof(fs->seen.violation), fmt, ap);
        va_end(ap);
    }
}

void fs_notify(struct fs *fs)
{
    pthread_mutex_lock(&fs->mu);
    fs->notes++;
    pthread_cond_broadcast(&fs->cv);
    pthread_mutex_unlock(&fs->mu);
}

void fs_poke(struct fs *fs)
{
    pthread_mutex_lock(&fs->mu);
    fs->pokes++;
    pthread_cond_broadcast(&fs->cv);
    pthread_mutex_unlock(&fs->mu);
}

static void deadline_ts(uint64_t ms_from_now, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms_from_now / 1000);
    ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int fs_wait_poke(struct fs *fs, unsigned n)
{
    uint64_t now = sf_now_ms();
    struct timespec ts;
    int r = 0;
    deadline_ts(fs->deadline > now ? fs->deadline - now : 0, &ts);
    pthread_mutex_lock(&fs->mu);
    while (fs->pokes < n && r == 0) {
        r = pthread_cond_timedwait(&fs->cv, &fs->mu, &ts);
    }
    bool ok = fs->pokes >= n;
    pthread_mutex_unlock(&fs->mu);
    return ok ? 0 : fs_fail(fs, "the test did not poke the server in time (%d)", r);
}

/* Is name (n bytes) on the comma-separated list? */
static bool in_list(const char *list, const char *name, size_t n)
{
    const char *p = list;
    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) {
            return true;
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return false;
}

static bool namelist_has(const struct sf_buf *list_in, const char *want)
{
    struct sf_buf list = *list_in;
    const char *name = NULL;
    size_t n = 0;
    while (sf_namelist_next(&list, &name, &n) == 1) {
        if (n == strlen(want) && memcmp(name, want, n) == 0) {
            return true;
        }
    }
    return false;
}

/* RFC 4253 s7.1: the first name on the client's list that is also on ours. */
static bool pick(const struct sf_buf *client_in, const char *ours, char *out, size_t outsz)
{
    struct sf_buf list = *client_in;
    const char *name = NULL;
    size_t n = 0;
    while (sf_namelist_next(&list, &name, &n) == 1) {
        if (n < outsz && in_list(ours, name, n)) {
            memcpy(out, name, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

static int remaining_ms(const struct fs *fs)
{
    uint64_t now = sf_now_ms();
    if (now >= fs->deadline) {
        return 0;
    }
    return (int)SF_MIN(fs->deadline - now, (uint64_t)60000);
}

/* Wait for events on our socket until the deadline: revents, or -1 on timeout. */
static int wait_sock(struct fs *fs, short events)
{
    for (;;) {
        int left = remaining_ms(fs);
        if (left == 0) {
            return fs_fail(fs, "fake server: deadline reached");
        }
        struct pollfd p = {.fd = fs->sock, .events = events, .revents = 0};
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return fs_fail(fs, "fake server: poll: %s", strerror(errno));
        }
        if (n > 0) {
            return p.revents;
        }
    }
}

/* Move whatever the socket has into the rx buffer without waiting. 1 if
 * bytes came, 0 if none, -1 at end of stream or on an error. */
static int rx_try(struct fs *fs)
{
    uint8_t *p = NULL;
    size_t room = sf_tp_rx_room(&fs->tp, &p);
    if (room == 0) {
        return 0;
    }
    ssize_t n = recv(fs->sock, p, room, 0);
    if (n > 0) {
        sf_tp_rx_commit(&fs->tp, (size_t)n);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return 0;
    }
    fs->seen.peer_closed = true;
    return -1;
}

/* Read at least one byte into the rx buffer (bounded). */
static int rx_fill(struct fs *fs)
{
    for (;;) {
        uint8_t *p = NULL;
        if (fs->no_read) {
            return fs_fail(fs, "fake server: waiting for the client while reading is paused");
        }
        if (sf_tp_rx_room(&fs->tp, &p) == 0) {
            return fs_fail(fs, "fake server: receive buffer full");
        }
        int r = rx_try(fs);
        if (r > 0) {
            return 0;
        }
        if (r < 0) {
            return fs_fail(fs, "the client closed the connection");
        }
        if (wait_sock(fs, POLLIN) < 0) {
            return -1;
        }
    }
}

static int keep_current(struct fs *fs, const struct sf_buf *p);
static int account(struct fs *fs);

/*
 * The client is gone while we were writing: what it sent last (often a
 * DISCONNECT) may still sit unread in our socket. Take it for the record.
 */
static void salvage(struct fs *fs)
{
    for (int i = 0; i < 64; i++) {
        int got = rx_try(fs);
        struct sf_buf p;
        while (sf_tp_decode(&fs->tp, &p) == 1) {
            if (keep_current(fs, &p) != 0 || account(fs) != 0) {
                return;
            }
        }
        if (got <= 0) {
            return;
        }
    }
}

int fs_send_raw(struct fs *fs, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        ssize_t w = send(fs->sock, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* While the client cannot take more, take what it sends us, so
             * that neither side blocks on a full socket. */
            uint8_t *room = NULL;
            bool can_read =
                sf_tp_rx_room(&fs->tp, &room) > 0 && !fs->seen.peer_closed && !fs->no_read;
            int ev = wait_sock(fs, can_read ? (POLLOUT | POLLIN) : POLLOUT);
            if (ev < 0) {
                return -1;
            }
            if ((ev & POLLIN) != 0 && can_read) {
                (void)rx_try(fs);
            }
            continue;
        }
        int e = errno;
        fs->seen.peer_closed = true;
        salvage(fs);
        return fs_fail(fs, "writing to the client failed: %s", strerror(e));
    }
    return 0;
}

uint32_t fs_tx_seq(const struct fs *fs)
{
    return fs->tp.tx.seq;
}

uint32_t fs_client_chan(const struct fs *fs)
{
    return fs->cli_chan;
}

uint32_t fs_server_chan(const struct fs *fs)
{
    (void)fs;
    return FS_SERVER_CHAN;
}

uint32_t fs_client_window(const struct fs *fs)
{
    return fs->cli_window;
}

uint32_t fs_server_window(const struct fs *fs)
{
    return fs->srv_window;
}

void fs_pause_reading(struct fs *fs, bool paused)
{
    fs->no_read = paused;
}

/* ------------------------------------------------------------------------ */
/* Packets                                                                  */
/* ------------------------------------------------------------------------ */

int fs_send(struct fs *fs, const void *payload, size_t len)
{
    const uint8_t *pl = payload;
    const uint8_t *wire = NULL;
    size_t wirelen = 0;
    struct sf_buf b;
    int r;

    if (fs->sc.truncate && !fs->truncated && len > 0 && pl[0] == fs->sc.truncate_type) {
        fs->truncated = true;
        fs->seen.truncated_from = len;
        len = SF_MIN(len, fs->sc.truncate_len);
    }
    sf_tp_begin(&fs->tp, &b);
    if ((r = sf_buf_put_bytes(&b, pl, len)) != 0 ||
        (r = sf_tp_finish(&fs->tp, &b, &wire, &wirelen)) != 0) {
        return fs_fail(fs, "fake server: building a packet failed: %s", sf_err_str(r));
    }
    fs->sent++;
    uint8_t *w = fs->tp.txbuf; /* == wire */
    if (fs->sc.corrupt_packet == fs->sent) {
        w[wirelen - 1] ^= 0x01; /* the tag (or MAC), or padding before encryption */
    }
    if (fs->sc.oversize_packet == fs->sent) {
        /* The length field is in clear, or encrypted with a stream cipher
         * (chacha20 K_2, CTR): either way XOR turns old into new. */
        size_t taglen = fs->tp.tx.cipher != NULL ? sf_cipher_tag_len(fs->tp.tx.cipher) : 0;
        uint32_t old = (uint32_t)(wirelen - 4 - taglen);
        uint8_t x[4];
        sf_store_be32(x, old ^ fs->sc.oversize_len);
        for (int i = 0; i < 4; i++) {
            w[i] ^= x[i];
        }
    }
    return fs_send_raw(fs, wire, wirelen);
}

/*
 * At our NEWKEYS (tx) or the client's (rx): the agreed compression of that
 * direction starts anew (zlib; zlib@openssh.com once authenticated) or stops.
 */
static int comp_switch(struct fs *fs, bool tx)
{
    struct sf_tp_dir *d = tx ? &fs->tp.tx : &fs->tp.rx;
    d->comp_alg = tx ? fs->comp_stoc : fs->comp_ctos;
    if (d->comp_alg == SF_COMP_ZLIB || (d->comp_alg == SF_COMP_DELAYED && fs->authed)) {
        if (sf_tp_comp_start(&fs->tp, tx) != 0) {
            return fs_fail(fs, "fake server: starting compression failed");
        }
        return 0;
    }
    sf_tp_comp_stop(&fs->tp, tx);
    return 0;
}

/* After our USERAUTH_SUCCESS: delayed compression starts both ways. */
static int comp_authed(struct fs *fs)
{
    fs->authed = true;
    for (int tx = 0; tx < 2; tx++) {
        struct sf_tp_dir *d = tx ? &fs->tp.tx : &fs->tp.rx;
        if (d->comp_alg == SF_COMP_DELAYED && d->comp == NULL &&
            sf_tp_comp_start(&fs->tp, tx != 0) != 0) {
            return fs_fail(fs, "fake server: starting compression failed");
        }
    }
    return 0;
}

/* Build one packet and append its wire bytes to out[*len..cap). */
static int append_packet(struct fs *fs, const uint8_t *payload, size_t n, uint8_t *out,
                         size_t *len, size_t cap)
{
    struct sf_buf b;
    const uint8_t *wire = NULL;
    size_t wl = 0;
    int r;

    sf_tp_begin(&fs->tp, &b);
    if ((r = sf_buf_put_bytes(&b, payload, n)) != 0 ||
        (r = sf_tp_finish(&fs->tp, &b, &wire, &wl)) != 0 || wl > cap - *len) {
        return fs_fail(fs, "fake server: building a packet failed");
    }
    memcpy(out + *len, wire, wl);
    *len += wl;
    fs->sent++;
    return 0;
}

/* script.success_burst: SUCCESS, then IGNORE and a global request, in one write. */
static int send_success_burst(struct fs *fs)
{
    static const uint8_t success[] = {SSH_MSG_USERAUTH_SUCCESS};
    static const uint8_t ignore[] = {SSH_MSG_IGNORE, 0, 0, 0, 5, 'b', 'u', 'r', 's', 't'};
    static const uint8_t greq[] = {SSH_MSG_GLOBAL_REQUEST, 0, 0, 0, 10, 'b', 'u', 'r', 's', 't',
                                   '@', 't', 'e', 's', 't', 1};
    uint8_t buf[1024];
    size_t len = 0;

    if (append_packet(fs, success, sizeof(success), buf, &len, sizeof(buf)) != 0 ||
        comp_authed(fs) != 0 ||
        append_packet(fs, ignore, sizeof(ignore), buf, &len, sizeof(buf)) != 0 ||
        append_packet(fs, greq, sizeof(greq), buf, &len, sizeof(buf)) != 0) {
        return -1;
    }
    return fs_send_raw(fs, buf, len);
}

int fs_send_inflating_zeros(struct fs *fs, size_t n)
{
    static const uint8_t zeros[64 * 1024];
    struct sf_comp *z = fs->tp.tx.comp;
    size_t cap = n / 128 + 2 * sf_comp_bound(sizeof(zeros)), len = 0;
    uint8_t *out = NULL;
    int r = -1;

    if (z == NULL || (out = malloc(cap)) == NULL) {
        return fs_fail(fs, "fake server: no compression running (or out of memory)");
    }
    /* Each piece ends with a partial flush; together they are one payload. */
    while (n > 0) {
        size_t k = SF_MIN(n, sizeof(zeros)), w = 0;
        if (cap - len < sf_comp_bound(k) ||
            sf_comp_deflate(z, zeros, k, out + len, cap - len, &w) != 0) {
            fs_fail(fs, "fake server: deflating the zeros failed");
            goto out;
        }
        len += w;
        n -= k;
    }
    /* Sent as is: the payload is deflate data already. */
    fs->tp.tx.comp = NULL;
    r = fs_send(fs, out, len);
    fs->tp.tx.comp = z;
out:
    free(out);
    return r;
}

/* Keep a copy of the last message (the packet layer's view is short-lived). */
static int keep_current(struct fs *fs, const struct sf_buf *p)
{
    size_t n = sf_buf_len(p);
    if (n > FS_SCRATCH) {
        return fs_fail(fs, "fake server: message too large");
    }
    memcpy(fs->cur, sf_buf_ptr(p), n);
    fs->curlen = n;
    return 0;
}

static bool is_kex_type(uint8_t t)
{
    return t == SSH_MSG_KEXINIT || t == SSH_MSG_NEWKEYS || (t >= 30 && t <= 49);
}

static int append_data(struct fs *fs, const uint8_t *p, size_t n)
{
    if (fs->data_len + n > fs->data_cap) {
        size_t cap = SF_MAX(fs->data_cap * 2, fs->data_len + n + 4096);
        uint8_t *d = realloc(fs->data, cap);
        if (d == NULL) {
            return fs_fail(fs, "fake server: out of memory");
        }
        fs->data = d;
        fs->data_cap = cap;
    }
    memcpy(fs->data + fs->data_len, p, n);
    fs->data_len += n;
    return 0;
}

/* Book-keeping on every message from the client, in arrival order. */
static int account(struct fs *fs)
{
    struct sf_buf m;
    uint8_t t = fs->cur[0];
    uint32_t id = 0, v = 0;
    const uint8_t *s = NULL;
    size_t n = 0;

    sf_buf_init_view(&m, fs->cur + 1, fs->curlen - 1);
    if (fs->client_in_kex && !is_kex_type(t) && (t > 4 || t == 0)) {
        /* RFC 4253 s7.1: after its KEXINIT only transport-generic and kex messages. */
        violation(fs, "message %u during the client's key exchange", t);
    }
    if (fs->client_in_kex && fs->initial && fs->strict && !is_kex_type(t) &&
        t != SSH_MSG_DISCONNECT) {
        violation(fs, "strict KEX: message %u during the first key exchange", t);
    }
    switch (t) {
    case SSH_MSG_DISCONNECT:
        fs->seen.disconnect = true;
        if (sf_buf_get_u32(&m, &v) == 0) {
            fs->seen.disconnect_reason = v;
        }
        if (sf_buf_get_string(&m, &s, &n, SF_STRING_MAX) == 0) {
            n = SF_MIN(n, sizeof(fs->seen.disconnect_text) - 1);
            memcpy(fs->seen.disconnect_text, s, n);
            fs->seen.disconnect_text[n] = '\0';
        }
        break;
    case SSH_MSG_UNIMPLEMENTED:
        if (sf_buf_get_u32(&m, &v) != 0 || sf_buf_expect_end(&m) != 0) {
            violation(fs, "malformed UNIMPLEMENTED");
            break;
        }
        if (fs->seen.unimplemented < 16) {
            fs->seen.unimpl_seq[fs->seen.unimplemented] = v;
        }
        fs->seen.unimplemented++;
        break;
    case SSH_MSG_REQUEST_SUCCESS:
        fs->seen.request_successes++;
        break;
    case SSH_MSG_REQUEST_FAILURE:
        if (sf_buf_expect_end(&m) != 0) {
            violation(fs, "malformed REQUEST_FAILURE");
        }
        fs->seen.request_failures++;
        break;
    case SSH_MSG_CHANNEL_WINDOW_ADJUST:
        if (sf_buf_get_u32(&m, &id) != 0 || sf_buf_get_u32(&m, &v) != 0 ||
            sf_buf_expect_end(&m) != 0) {
            violation(fs, "malformed WINDOW_ADJUST");
            break;
        }
        if (id != FS_SERVER_CHAN) {
            violation(fs, "WINDOW_ADJUST for channel %u", id);
        }
        if ((uint64_t)fs->cli_window + v > UINT32_MAX) {
            violation(fs, "WINDOW_ADJUST beyond 2^32 - 1");
        }
        fs->cli_window += v;
        fs->seen.window_adjusts++;
        break;
    case SSH_MSG_CHANNEL_DATA:
    case SSH_MSG_CHANNEL_EXTENDED_DATA:
        if (sf_buf_get_u32(&m, &id) != 0 ||
            (t == SSH_MSG_CHANNEL_EXTENDED_DATA && sf_buf_get_u32(&m, &v) != 0) ||
            sf_buf_get_string(&m, &s, &n, SF_PACKET_MAX) != 0 || sf_buf_expect_end(&m) != 0) {
            violation(fs, "malformed channel data");
            break;
        }
        if (id != FS_SERVER_CHAN) {
            violation(fs, "channel data for channel %u", id);
        }
        if (fs->seen.eof || fs->seen.close) {
            violation(fs, "channel data after EOF");
        }
        if (n > fs->srv_maxpkt) {
            violation(fs, "%zu bytes of data in one packet; the maximum is %u", n, fs->srv_maxpkt);
        }
        if (n > fs->srv_window) {
            violation(fs, "%zu bytes of data with a window of %u", n, fs->srv_window);
            fs->srv_window = 0;
        } else {
            fs->srv_window -= (uint32_t)n;
        }
        fs->seen.data_bytes += n;
        if (t == SSH_MSG_CHANNEL_DATA) {
            return append_data(fs, s, n);
        }
        break;
    case SSH_MSG_CHANNEL_EOF:
        fs->seen.eof = true;
        break;
    case SSH_MSG_CHANNEL_CLOSE:
        fs->seen.close = true;
        break;
    case SSH_MSG_CHANNEL_SUCCESS:
        fs->seen.channel_successes++;
        break;
    case SSH_MSG_CHANNEL_FAILURE:
        if (sf_buf_get_u32(&m, &id) != 0 || sf_buf_expect_end(&m) != 0) {
            violation(fs, "malformed CHANNEL_FAILURE");
            break;
        }
        fs->seen.channel_failures++;
        fs->seen.last_failure_chan = id;
        break;
    default:
        break;
    }
    return 0;
}

/* Decode the next packet into fs->cur and account for it. */
static int recv_packet(struct fs *fs)
{
    for (;;) {
        struct sf_buf p;
        uint32_t seq = fs->tp.rx.seq;
        int r = sf_tp_decode(&fs->tp, &p);
        if (r < 0) {
            violation(fs, "bad packet %u from the client: %s", seq, sf_err_str(r));
            return fs_fail(fs, "bad packet %u from the client: %s", seq, sf_err_str(r));
        }
        if (r == 1) {
            if (keep_current(fs, &p) != 0) {
                return -1;
            }
            return account(fs);
        }
        if (rx_fill(fs) != 0) {
            return -1;
        }
    }
}

static int queue_current(struct fs *fs)
{
    struct fs_qmsg *q = malloc(sizeof(*q) + fs->curlen);
    if (q == NULL) {
        return fs_fail(fs, "fake server: out of memory");
    }
    q->next = NULL;
    q->len = fs->curlen;
    memcpy(q->d, fs->cur, fs->curlen);
    if (fs->q_tail != NULL) {
        fs->q_tail->next = q;
    } else {
        fs->q_head = q;
    }
    fs->q_tail = q;
    return 0;
}

static void unqueue(struct fs *fs)
{
    struct fs_qmsg *q = fs->q_head;
    fs->q_head = q->next;
    if (fs->q_head == NULL) {
        fs->q_tail = NULL;
    }
    memcpy(fs->cur, q->d, q->len);
    fs->curlen = q->len;
    free(q);
}

/* ------------------------------------------------------------------------ */
/* Key exchange (server side)                                               */
/* ------------------------------------------------------------------------ */

static int put_list(struct sf_buf *b, const char *list, const char *extra)
{
    struct sf_buf_mark m;
    int r;
    if ((r = sf_buf_open_string(b, &m)) != 0 ||
        (r = sf_buf_put_bytes(b, list, strlen(list))) != 0) {
        return r;
    }
    if (extra != NULL) {
        if ((list[0] != '\0' && (r = sf_buf_put_u8(b, ',')) != 0) ||
            (r = sf_buf_put_bytes(b, extra, strlen(extra))) != 0) {
            return r;
        }
    }
    return sf_buf_close_string(b, &m);
}

static void hostkey_algs(const struct sf_privkey *k, char *out, size_t outsz)
{
    const char *type = sf_privkey_type(k);
    if (strcmp(type, "ssh-rsa") == 0) {
        snprintf(out, outsz, "rsa-sha2-512,rsa-sha2-256");
    } else {
        snprintf(out, outsz, "%s", type);
    }
}

/* RFC 4253 s7.1 SSH_MSG_KEXINIT, the server's. */
static int build_kexinit(const struct fs_script *sc, bool initial, const char *hk_algs,
                         struct sf_buf *b)
{
    uint8_t cookie[16];
    const char *ciphers = sc->ciphers != NULL ? sc->ciphers : sf_cipher_all_list;
    const char *macs = sc->macs != NULL ? sc->macs : sf_mac_all_list;
    const char *comps = sc->compression != NULL ? sc->compression : "none";
    int r;

    if (RAND_bytes(cookie, sizeof(cookie)) != 1) {
        return SF_ERR_CRYPTO;
    }
    if ((r = sf_buf_put_u8(b, SSH_MSG_KEXINIT)) != 0 ||
        (r = sf_buf_put_bytes(b, cookie, sizeof(cookie))) != 0 ||
        (r = put_list(b, sc->kex_algs != NULL ? sc->kex_algs : FS_KEX_DEFAULT,
                      initial && !sc->no_strict ? FS_STRICT_S : NULL)) != 0 ||
        (r = put_list(b, hk_algs, NULL)) != 0 || (r = put_list(b, ciphers, NULL)) != 0 ||
        (r = put_list(b, ciphers, NULL)) != 0 || (r = put_list(b, macs, NULL)) != 0 ||
        (r = put_list(b, macs, NULL)) != 0 || (r = put_list(b, comps, NULL)) != 0 ||
        (r = put_list(b, comps, NULL)) != 0 || (r = put_list(b, "", NULL)) != 0 ||
        (r = put_list(b, "", NULL)) != 0 ||
        (r = sf_buf_put_bool(b, sc->kex_follows && initial)) != 0 ||
        (r = sf_buf_put_u32(b, 0)) != 0) {
        return r;
    }
    return 0;
}

static int send_kexinit(struct fs *fs)
{
    struct sf_buf b;
    int r;

    sf_buf_init_mem(&b, fs->i_s, FS_SCRATCH);
    if ((r = build_kexinit(&fs->sc, fs->initial, fs->hk_algs, &b)) != 0) {
        return fs_fail(fs, "fake server: building KEXINIT failed: %s", sf_err_str(r));
    }
    fs->i_s_len = sf_buf_len(&b);
    fs->kexinit_sent = true;
    fs->in_kex = true;
    if (fs_send(fs, fs->i_s, fs->i_s_len) != 0) {
        return -1;
    }
    if (fs->sc.kex_follows && fs->initial) {
        /* The "guessed" first kex packet; a client whose guess differs must drop it. */
        static const uint8_t junk[] = {SSH_MSG_KEX_ECDH_REPLY, 0xde, 0xad, 0xbe, 0xef};
        return fs_send(fs, junk, sizeof(junk));
    }
    return 0;
}

/* Next key exchange message, which must be `want`. */
static int kex_wait(struct fs *fs, uint8_t want)
{
    for (;;) {
        if (recv_packet(fs) != 0) {
            return -1;
        }
        uint8_t t = fs->cur[0];
        if (t == want) {
            return 0;
        }
        if (t == SSH_MSG_DISCONNECT) {
            return fs_fail(fs, "the client disconnected during the key exchange (reason %u: %s)",
                           fs->seen.disconnect_reason, fs->seen.disconnect_text);
        }
        if (t == SSH_MSG_IGNORE || t == SSH_MSG_DEBUG || t == SSH_MSG_UNIMPLEMENTED) {
            continue; /* allowed outside strict KEX; account() noted strict ones */
        }
        violation(fs, "message %u while waiting for %u in the key exchange", t, want);
        return fs_fail(fs, "message %u while waiting for %u in the key exchange", t, want);
    }
}

/*
 * The key exchange methods the fake server can serve. The post-quantum
 * hybrids are built from the library's own sntrup761 / ML-KEM-768 code
 * (the server's encapsulation side, which the client never runs), the DH
 * ones with plain BIGNUM arithmetic: no server on Debian 12 speaks
 * mlkem768x25519-sha256, so this is the only peer the client's ML-KEM
 * side meets in the tests besides python's vectors in check_kex.c.
 */
enum fs_kfam { FSK_X25519 = 1, FSK_DH, FSK_GEX, FSK_SNTRUP, FSK_MLKEM };
struct fs_kexm {
    const char *name;
    const char *hash; /* OpenSSL digest name */
    enum fs_kfam fam;
    int group; /* FSK_DH: 1 (RFC 2409), 14, 16, 18 (RFC 3526) */
};
static const struct fs_kexm fs_kexms[] = {
    {"curve25519-sha256", "SHA256", FSK_X25519, 0},
    {"curve25519-sha256@libssh.org", "SHA256", FSK_X25519, 0},
    {"sntrup761x25519-sha512", "SHA512", FSK_SNTRUP, 0},
    {"sntrup761x25519-sha512@openssh.com", "SHA512", FSK_SNTRUP, 0},
    {"mlkem768x25519-sha256", "SHA256", FSK_MLKEM, 0},
    {"diffie-hellman-group-exchange-sha256", "SHA256", FSK_GEX, 0},
    {"diffie-hellman-group-exchange-sha1", "SHA1", FSK_GEX, 0},
    {"diffie-hellman-group14-sha256", "SHA256", FSK_DH, 14},
    {"diffie-hellman-group16-sha512", "SHA512", FSK_DH, 16},
    {"diffie-hellman-group18-sha512", "SHA512", FSK_DH, 18},
    {"diffie-hellman-group14-sha1", "SHA1", FSK_DH, 14},
    {"diffie-hellman-group1-sha1", "SHA1", FSK_DH, 1},
};

static const struct fs_kexm *kexm_find(const char *name)
{
    for (size_t i = 0; i < sizeof(fs_kexms) / sizeof(fs_kexms[0]); i++) {
        if (strcmp(fs_kexms[i].name, name) == 0) {
            return &fs_kexms[i];
        }
    }
    return NULL;
}

static int point(struct fs *fs, enum fs_point p);

/* Parse the client's KEXINIT (in i_c) and negotiate. */
static int kex_negotiate(struct fs *fs, char *kexname, size_t kexsz)
{
    struct sf_buf m, lists[10];
    char name[SF_NAME_MAX + 1];
    const char *ciphers = fs->sc.ciphers != NULL ? fs->sc.ciphers : sf_cipher_all_list;
    const char *macs = fs->sc.macs != NULL ? fs->sc.macs : sf_mac_all_list;
    bool follows = false;
    uint32_t reserved = 0;

    sf_buf_init_view(&m, fs->i_c + 1, fs->i_c_len - 1);
    if (sf_buf_skip(&m, 16) != 0) {
        violation(fs, "truncated KEXINIT");
        return fs_fail(fs, "truncated KEXINIT from the client");
    }
    for (int i = 0; i < 10; i++) {
        if (sf_buf_get_namelist(&m, &lists[i], SF_NAMELIST_MAX) != 0) {
            violation(fs, "malformed KEXINIT name-list %d", i);
            return fs_fail(fs, "malformed KEXINIT from the client");
        }
    }
    if (sf_buf_get_bool(&m, &follows) != 0 || sf_buf_get_u32(&m, &reserved) != 0 ||
        sf_buf_expect_end(&m) != 0) {
        violation(fs, "malformed KEXINIT tail");
        return fs_fail(fs, "malformed KEXINIT from the client");
    }
    if (follows) {
        violation(fs, "the client set first_kex_packet_follows");
    }
    if (fs->initial) {
        fs->seen.client_strict = namelist_has(&lists[0], FS_STRICT_C);
        fs->seen.client_ext_info = namelist_has(&lists[0], FS_EXT_INFO_C);
        fs->strict = fs->seen.client_strict && !fs->sc.no_strict;
    } else if (namelist_has(&lists[0], FS_STRICT_C) || namelist_has(&lists[0], FS_EXT_INFO_C)) {
        violation(fs, "pseudo-algorithms in a re-key KEXINIT");
    }
    if (!pick(&lists[0], fs->sc.kex_algs != NULL ? fs->sc.kex_algs : FS_KEX_DEFAULT, kexname,
              kexsz)) {
        return fs_fail(fs, "no key exchange method in common");
    }
    if ((fs->km = kexm_find(kexname)) == NULL) {
        return fs_fail(fs, "fake server cannot do key exchange %s", kexname);
    }
    snprintf(fs->seen.kex, sizeof(fs->seen.kex), "%s", kexname);
    if (!pick(&lists[1], fs->hk_algs, fs->hk_alg, sizeof(fs->hk_alg))) {
        return fs_fail(fs, "no host key algorithm in common");
    }
    for (int dir = 0; dir < 2; dir++) {
        const struct sf_cipher_info **ci = dir == 0 ? &fs->ci_ctos : &fs->ci_stoc;
        const struct sf_mac_info **mi = dir == 0 ? &fs->mi_ctos : &fs->mi_stoc;
        *mi = NULL;
        if (!pick(&lists[2 + dir], ciphers, name, sizeof(name)) ||
            (*ci = sf_cipher_info_find(name, strlen(name))) == NULL) {
            return fs_fail(fs, "no cipher in common");
        }
        if (dir == 0) {
            snprintf(fs->seen.cipher, sizeof(fs->seen.cipher), "%s", name);
            fs->seen.mac[0] = '\0';
        }
        if ((*ci)->tag_len == 0) {
            if (!pick(&lists[4 + dir], macs, name, sizeof(name)) ||
                (*mi = sf_mac_info_find(name, strlen(name))) == NULL) {
                return fs_fail(fs, "no MAC in common");
            }
            if (dir == 0) {
                snprintf(fs->seen.mac, sizeof(fs->seen.mac), "%s", name);
            }
        }
        const char *comps = fs->sc.compression != NULL ? fs->sc.compression : "none";
        int *comp = dir == 0 ? &fs->comp_ctos : &fs->comp_stoc;
        if (!pick(&lists[6 + dir], comps, name, sizeof(name)) ||
            (*comp = sf_comp_alg_find(name, strlen(name))) < 0) {
            return fs_fail(fs, "no compression in common");
        }
        if (dir == 0) {
            snprintf(fs->seen.comp, sizeof(fs->seen.comp), "%s", name);
        }
    }
    return 0;
}

/* X25519 (RFC 8731): our ephemeral key, Q_S, and K = X25519(d_S, Q_C). */
static int x25519(struct fs *fs, const uint8_t *qc, uint8_t qs[FS_X25519_LEN],
                  uint8_t secret[FS_X25519_LEN])
{
    EVP_PKEY *eph = NULL, *peer = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    size_t len = FS_X25519_LEN;
    int r = -1;

    if ((eph = EVP_PKEY_Q_keygen(NULL, NULL, "X25519")) == NULL ||
        EVP_PKEY_get_raw_public_key(eph, qs, &len) != 1 || len != FS_X25519_LEN) {
        fs_fail(fs, "fake server: X25519 key generation failed");
        goto out;
    }
    if ((peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, qc, FS_X25519_LEN)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL)) == NULL ||
        EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
        EVP_PKEY_derive(ctx, secret, &len) != 1 || len != FS_X25519_LEN) {
        violation(fs, "the client's Q_C is unusable");
        fs_fail(fs, "X25519 with the client's Q_C failed");
        goto out;
    }
    r = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(eph);
    return r;
}

/* mpint of a BIGNUM (RFC 4251 s5) */
static int put_bn(struct sf_buf *b, const BIGNUM *v)
{
    uint8_t be[SF_KEX_GEX_MAX / 8 + 16];
    int n = BN_num_bytes(v);
    if (n < 0 || (size_t)n > sizeof(be)) {
        return SF_ERR_TOO_LARGE;
    }
    if (n == 0) {
        return sf_buf_put_u32(b, 0);
    }
    BN_bn2bin(v, be);
    return sf_buf_put_mpint(b, be, (size_t)n);
}

/* The group of a fixed-group DH method, or the GEX group the script chose. */
static int dh_group(struct fs *fs, int group, BIGNUM **p, BIGNUM **g)
{
    *p = *g = NULL;
    switch (group) {
    case 1:
        *p = BN_get_rfc2409_prime_1024(NULL);
        break;
    case 14:
        *p = BN_get_rfc3526_prime_2048(NULL);
        break;
    case 16:
        *p = BN_get_rfc3526_prime_4096(NULL);
        break;
    case 18:
        *p = BN_get_rfc3526_prime_8192(NULL);
        break;
    default: /* GEX: the script's group, else RFC 3526 group 14 */
        if (fs->sc.gex_p != NULL) {
            if (BN_hex2bn(p, fs->sc.gex_p) == 0) {
                *p = NULL;
            }
        } else {
            *p = BN_get_rfc3526_prime_2048(NULL);
        }
        break;
    }
    if (*p == NULL || (*g = BN_new()) == NULL) {
        BN_free(*p);
        *p = NULL;
        return fs_fail(fs, "fake server: bad DH group");
    }
    if (group == 0 && fs->sc.gex_g != NULL) {
        if (BN_hex2bn(g, fs->sc.gex_g) == 0) {
            return fs_fail(fs, "fake server: bad GEX generator");
        }
    } else if (BN_set_word(*g, 2) != 1) {
        return fs_fail(fs, "fake server: out of memory");
    }
    return 0;
}

/*
 * RFC 4419 s3: SSH_MSG_KEX_DH_GEX_REQUEST (34) uint32 min, n, max; we answer
 * SSH_MSG_KEX_DH_GEX_GROUP (31) mpint p, mpint g. cpart gets
 * min || n || max || p || g for the exchange hash.
 */
static int gex_server_group(struct fs *fs, BIGNUM **p, BIGNUM **g, struct sf_buf *cpart)
{
    uint32_t mn = 0, n = 0, mx = 0;
    struct sf_buf m, b;

    if (kex_wait(fs, 34) != 0) {
        return -1;
    }
    sf_buf_init_view(&m, fs->cur + 1, fs->curlen - 1);
    if (sf_buf_get_u32(&m, &mn) != 0 || sf_buf_get_u32(&m, &n) != 0 ||
        sf_buf_get_u32(&m, &mx) != 0 || sf_buf_expect_end(&m) != 0) {
        violation(fs, "malformed GEX_REQUEST");
        return fs_fail(fs, "malformed GEX_REQUEST from the client");
    }
    fs->seen.gex_requests++;
    fs->seen.gex_min = mn;
    fs->seen.gex_n = n;
    fs->seen.gex_max = mx;
    if (!(mn <= n && n <= mx)) {
        violation(fs, "GEX_REQUEST with min %u, n %u, max %u", mn, n, mx);
    }
    if (dh_group(fs, 0, p, g) != 0) {
        return -1;
    }
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    if (sf_buf_put_u32(cpart, mn) != 0 || sf_buf_put_u32(cpart, n) != 0 ||
        sf_buf_put_u32(cpart, mx) != 0 || put_bn(cpart, *p) != 0 || put_bn(cpart, *g) != 0 ||
        sf_buf_put_u8(&b, 31) != 0 || put_bn(&b, *p) != 0 || put_bn(&b, *g) != 0 ||
        (fs->sc.gex_trailing && sf_buf_put_u8(&b, 0) != 0)) {
        return fs_fail(fs, "fake server: building GEX_GROUP failed");
    }
    return fs_send(fs, sf_buf_ptr(&b), sf_buf_len(&b));
}

/*
 * DH (RFC 4253 s8, RFC 4419 s3): from the client's e (magnitude), f = g^y
 * and K = e^y mod p. spart gets mpint f, kb mpint K. bad_qs 1: f = 1;
 * 2: f = p.
 */
static int dh_server(struct fs *fs, const BIGNUM *p, const BIGNUM *g, const uint8_t *eb,
                     size_t elen, struct sf_buf *spart, struct sf_buf *kb)
{
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *e = BN_bin2bn(eb, (int)elen, NULL), *y = BN_new(), *f = BN_new(), *k = BN_new();
    BIGNUM *pm1 = BN_dup(p);
    int r = -1;

    if (ctx == NULL || e == NULL || y == NULL || f == NULL || k == NULL || pm1 == NULL ||
        BN_sub_word(pm1, 1) != 1) {
        fs_fail(fs, "fake server: out of memory");
        goto out;
    }
    if (BN_cmp(e, BN_value_one()) <= 0 || BN_cmp(e, pm1) >= 0) {
        violation(fs, "the client's e is out of range");
        fs_fail(fs, "the client's e is out of range");
        goto out;
    }
    if (BN_rand(y, 512, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_mod_exp(f, g, y, p, ctx) != 1 || BN_mod_exp(k, e, y, p, ctx) != 1) {
        fs_fail(fs, "fake server: DH failed");
        goto out;
    }
    if (fs->sc.bad_qs == 1) {
        BN_one(f);
    } else if (fs->sc.bad_qs == 2) {
        BN_copy(f, p);
    }
    if (put_bn(spart, f) != 0 || put_bn(kb, k) != 0) {
        fs_fail(fs, "fake server: encoding f or K failed");
        goto out;
    }
    r = 0;
out:
    BN_CTX_free(ctx);
    BN_free(e);
    BN_clear_free(y);
    BN_free(f);
    BN_clear_free(k);
    BN_free(pm1);
    return r;
}

/* curve25519 (RFC 8731): spart gets string Q_S, kb mpint K. bad_qs 1: zero Q_S; 2: 31 bytes. */
static int x25519_server(struct fs *fs, const uint8_t *qc, size_t qclen, struct sf_buf *spart,
                         struct sf_buf *kb)
{
    uint8_t qs[FS_X25519_LEN], secret[FS_X25519_LEN];
    size_t qslen = FS_X25519_LEN;
    int r = -1;

    if (qclen != FS_X25519_LEN) {
        violation(fs, "malformed ECDH init");
        return fs_fail(fs, "malformed ECDH init from the client");
    }
    if (x25519(fs, qc, qs, secret) != 0) {
        goto out;
    }
    if (fs->sc.bad_qs == 1) {
        memset(qs, 0, sizeof(qs));
    } else if (fs->sc.bad_qs == 2) {
        qslen = FS_X25519_LEN - 1;
    }
    if (sf_buf_put_string(spart, qs, qslen) != 0 ||
        sf_buf_put_mpint(kb, secret, sizeof(secret)) != 0) {
        fs_fail(fs, "fake server: encoding Q_S or K failed");
        goto out;
    }
    r = 0;
out:
    sf_wipe(secret, sizeof(secret));
    return r;
}

/*
 * The hybrids: C_INIT = PQ public key || X25519 key; we encapsulate and
 * answer S_REPLY = ciphertext || X25519 key; K = string HASH(K_PQ || K_CL).
 * bad_qs 1: zero X25519 key; 2: S_REPLY one byte short; 3: one ciphertext
 * bit flipped (the client then gets another K and the signature fails).
 */
static int hybrid_server(struct fs *fs, const uint8_t *c, size_t clen, struct sf_buf *spart,
                         struct sf_buf *kb)
{
    bool sntrup = fs->km->fam == FSK_SNTRUP;
    size_t pklen = sntrup ? SF_SNTRUP761_PUBLICKEY_BYTES : SF_MLKEM768_PUBLICKEY_BYTES;
    size_t ctlen = sntrup ? SF_SNTRUP761_CIPHERTEXT_BYTES : SF_MLKEM768_CIPHERTEXT_BYTES;
    uint8_t reply[SF_MLKEM768_CIPHERTEXT_BYTES + FS_X25519_LEN];
    uint8_t both[32 + FS_X25519_LEN], k[64];
    size_t klen = 0, rlen = ctlen + FS_X25519_LEN;
    int r = -1;

    if (clen != pklen + FS_X25519_LEN) {
        violation(fs, "hybrid init of %zu bytes, want %zu", clen, pklen + FS_X25519_LEN);
        return fs_fail(fs, "malformed hybrid init from the client");
    }
    if ((sntrup ? sf_sntrup761_enc(reply, both, c, NULL, NULL)
                : sf_mlkem768_encaps(reply, both, c)) != 0) {
        violation(fs, "the client's PQ public key is unusable");
        fs_fail(fs, "encapsulation to the client's key failed");
        goto out;
    }
    if (x25519(fs, c + pklen, reply + ctlen, both + 32) != 0 ||
        sf_kex_hash(fs->km->hash, both, sizeof(both), k, &klen) != 0) {
        goto out;
    }
    if (fs->sc.bad_qs == 1) {
        memset(reply + ctlen, 0, FS_X25519_LEN);
    } else if (fs->sc.bad_qs == 2) {
        rlen--;
    } else if (fs->sc.bad_qs == 3) {
        reply[ctlen / 2] ^= 0x01;
    }
    if (sf_buf_put_string(spart, reply, rlen) != 0 || sf_buf_put_string(kb, k, klen) != 0) {
        fs_fail(fs, "fake server: encoding the reply failed");
        goto out;
    }
    r = 0;
out:
    sf_wipe(both, sizeof(both));
    sf_wipe(k, sizeof(k));
    return r;
}

/* RFC 4253 s7.2 keys for one direction. */
static int make_cipher(struct fs *fs, const uint8_t *k, size_t klen, const uint8_t *h, size_t hlen,
                       bool tx, struct sf_cipher **out)
{
    const struct sf_cipher_info *ci = tx ? fs->ci_stoc : fs->ci_ctos;
    const struct sf_mac_info *mi = tx ? fs->mi_stoc : fs->mi_ctos;
    uint8_t iv[64], key[64], mk[128];
    int r;

    *out = NULL;
    const char *hash = fs->km->hash;
    if ((r = sf_kex_derive(hash, k, klen, h, hlen, tx ? 'B' : 'A', fs->session_id, fs->sid_len,
                           iv, ci->iv_len)) != 0 ||
        (r = sf_kex_derive(hash, k, klen, h, hlen, tx ? 'D' : 'C', fs->session_id, fs->sid_len,
                           key, ci->key_len)) != 0 ||
        (mi != NULL && (r = sf_kex_derive(hash, k, klen, h, hlen, tx ? 'F' : 'E',
                                          fs->session_id, fs->sid_len, mk, mi->key_len)) != 0) ||
        (r = sf_cipher_new(out, ci, mi, tx, key, iv, mi != NULL ? mk : NULL)) != 0) {
        fs_fail(fs, "fake server: key derivation failed: %s", sf_err_str(r));
    }
    sf_wipe(iv, sizeof(iv));
    sf_wipe(key, sizeof(key));
    sf_wipe(mk, sizeof(mk));
    return r != 0 ? -1 : 0;
}

/*
 * One whole key exchange. have_client: fs->cur holds the client's KEXINIT
 * (it started). Otherwise we send ours (unless sent) and wait for theirs,
 * keeping other messages for later.
 */
static int kex_run(struct fs *fs, bool have_client)
{
    char kexname[SF_NAME_MAX + 1];
    struct sf_buf hb = {0}, kb = {0}, ks = {0}, sig = {0}, reply = {0}, cpart = {0}, spart = {0};
    struct sf_cipher *tx = NULL, *rx = NULL;
    BIGNUM *dp = NULL, *dg = NULL;
    uint8_t h[64], *cval = NULL;
    size_t hlen = 0;
    const uint8_t *p = NULL;
    size_t n = 0;
    int r = -1, pr;

    fs->in_kex = true;
    if (!have_client) {
        if (!fs->kexinit_sent && send_kexinit(fs) != 0) {
            goto out;
        }
        for (;;) {
            if (recv_packet(fs) != 0) {
                goto out;
            }
            uint8_t t = fs->cur[0];
            if (t == SSH_MSG_KEXINIT) {
                break;
            }
            if (t == SSH_MSG_DISCONNECT) {
                fs_fail(fs, "the client disconnected (reason %u: %s)", fs->seen.disconnect_reason,
                        fs->seen.disconnect_text);
                goto out;
            }
            if (is_kex_type(t)) {
                violation(fs, "key exchange message %u before the client's KEXINIT", t);
                fs_fail(fs, "key exchange message %u before the client's KEXINIT", t);
                goto out;
            }
            if (fs->initial) {
                violation(fs, "message %u before the client's first KEXINIT", t);
            }
            if (queue_current(fs) != 0) {
                goto out;
            }
        }
    }
    fs->seen.kexinits++;
    if (fs->initial) {
        fs->seen.client_kexinit_first = fs->tp.rx.seq == 1;
    }
    fs->client_in_kex = true;
    memcpy(fs->i_c, fs->cur, fs->curlen);
    fs->i_c_len = fs->curlen;
    if (!fs->initial && !fs->kexinit_sent) {
        /* The client started this one; we may still send what we like
         * before our KEXINIT. */
        fs->in_kex = false;
        pr = point(fs, FS_AT_REKEY);
        fs->in_kex = true;
        if (pr < 0) {
            goto out;
        }
    }
    if (!fs->kexinit_sent && send_kexinit(fs) != 0) {
        goto out;
    }
    if (kex_negotiate(fs, kexname, sizeof(kexname)) != 0) {
        /* The client should see it too: record what it does about it. */
        while (!fs->seen.disconnect && recv_packet(fs) == 0) {
        }
        goto out;
    }

    /*
     * RFC 4419 s3: GEX first sends the group (REQUEST 34 / GROUP 31), then
     * INIT 32 / REPLY 33. The others: INIT 30 (string Q_C / C_INIT or
     * mpint e) / REPLY 31.
     */
    const struct fs_kexm *km = fs->km;
    if (sf_buf_alloc(&cpart, 1024, SF_BUF_MAX) != 0 || sf_buf_alloc(&spart, 1024, SF_BUF_MAX) != 0 ||
        sf_buf_alloc(&hb, 4096, SF_BUF_MAX) != 0 || sf_buf_alloc(&kb, 64, 4096) != 0 ||
        sf_buf_alloc(&ks, 512, SF_KEYBLOB_MAX) != 0 ||
        sf_buf_alloc(&sig, 512, SF_KEYBLOB_MAX) != 0 ||
        sf_buf_alloc(&reply, 1024, SF_BUF_MAX) != 0) {
        fs_fail(fs, "fake server: out of memory");
        goto out;
    }
    if (km->fam == FSK_GEX && gex_server_group(fs, &dp, &dg, &cpart) != 0) {
        goto out;
    }
    if (km->fam == FSK_DH && dh_group(fs, km->group, &dp, &dg) != 0) {
        goto out;
    }
    if (kex_wait(fs, km->fam == FSK_GEX ? 32 : SSH_MSG_KEX_ECDH_INIT) != 0) {
        goto out;
    }
    struct sf_buf m;
    int gr;
    sf_buf_init_view(&m, fs->cur + 1, fs->curlen - 1);
    if (km->fam == FSK_DH || km->fam == FSK_GEX) {
        gr = sf_buf_get_mpint_pos(&m, &p, &n, SF_KEX_GEX_MAX / 8);
    } else {
        gr = sf_buf_get_string(&m, &p, &n, 4096);
    }
    if (gr != 0 || sf_buf_expect_end(&m) != 0) {
        violation(fs, "malformed key exchange init (%s)", km->name);
        fs_fail(fs, "malformed key exchange init from the client");
        goto out;
    }
    /* The client's value as read goes into H; keep a copy (hooks may receive). */
    if (sf_buf_put_bytes(&cpart, fs->cur + 1, fs->curlen - 1) != 0 ||
        (cval = malloc(n + 1)) == NULL) {
        fs_fail(fs, "fake server: out of memory");
        goto out;
    }
    memcpy(cval, p, n);
    if (fs->initial && (pr = point(fs, FS_AT_KEXREPLY)) != 0) {
        if (pr < 0) {
            goto out;
        }
        /* The hook replaced the reply: the exchange cannot complete. */
        r = 0;
        goto out;
    }
    switch (km->fam) {
    case FSK_X25519:
        gr = x25519_server(fs, cval, n, &spart, &kb);
        break;
    case FSK_SNTRUP:
    case FSK_MLKEM:
        gr = hybrid_server(fs, cval, n, &spart, &kb);
        break;
    default:
        gr = dh_server(fs, dp, dg, cval, n, &spart, &kb);
        break;
    }
    if (gr != 0) {
        goto out;
    }
    struct sf_privkey *hk =
        fs->initial || fs->rekey_hostkey == NULL ? fs->hostkey : fs->rekey_hostkey;
    /*
     * H = HASH(V_C || V_S || I_C || I_S || K_S || client part || server part || K)
     * (RFC 4253 s8, RFC 4419 s3, RFC 8731 s3, the hybrid drafts), built here
     * by hand rather than with the client's sf_kex_exchange_hash.
     */
    const char *v_s = fs->sc.version != NULL ? fs->sc.version : FS_VERSION;
    if (sf_privkey_pubblob(hk, &ks) != 0 || sf_buf_put_cstr(&hb, fs->v_c) != 0 ||
        sf_buf_put_cstr(&hb, v_s) != 0 || sf_buf_put_string(&hb, fs->i_c, fs->i_c_len) != 0 ||
        sf_buf_put_string(&hb, fs->i_s, fs->i_s_len) != 0 || sf_buf_put_sub(&hb, &ks) != 0 ||
        sf_buf_put_bytes(&hb, sf_buf_ptr(&cpart), sf_buf_len(&cpart)) != 0 ||
        sf_buf_put_bytes(&hb, sf_buf_ptr(&spart), sf_buf_len(&spart)) != 0 ||
        sf_buf_put_bytes(&hb, sf_buf_ptr(&kb), sf_buf_len(&kb)) != 0 ||
        sf_kex_hash(km->hash, sf_buf_ptr(&hb), sf_buf_len(&hb), h, &hlen) != 0) {
        fs_fail(fs, "fake server: exchange hash failed");
        goto out;
    }
    if (fs->sid_len == 0) {
        memcpy(fs->session_id, h, hlen);
        fs->sid_len = hlen;
    }
    if (sf_privkey_sign(fs->signkey != NULL ? fs->signkey : hk, fs->hk_alg, h, hlen, &sig) != 0) {
        fs_fail(fs, "fake server: signing with %s failed", fs->hk_alg);
        goto out;
    }
    if (fs->sc.bad_signature) {
        uint8_t *sp = sf_buf_mutable_ptr(&sig);
        sp[sf_buf_len(&sig) - 1] ^= 0x01;
    }
    /* byte 31 (GEX: 33), string K_S, server part, string signature */
    if (sf_buf_put_u8(&reply, km->fam == FSK_GEX ? 33 : SSH_MSG_KEX_ECDH_REPLY) != 0 ||
        sf_buf_put_sub(&reply, &ks) != 0 ||
        sf_buf_put_bytes(&reply, sf_buf_ptr(&spart), sf_buf_len(&spart)) != 0 ||
        sf_buf_put_sub(&reply, &sig) != 0) {
        fs_fail(fs, "fake server: building the reply failed");
        goto out;
    }
    if (fs_send(fs, sf_buf_ptr(&reply), sf_buf_len(&reply)) != 0) {
        goto out;
    }
    if (make_cipher(fs, sf_buf_ptr(&kb), sf_buf_len(&kb), h, hlen, true, &tx) != 0 ||
        make_cipher(fs, sf_buf_ptr(&kb), sf_buf_len(&kb), h, hlen, false, &rx) != 0) {
        goto out;
    }
    if (fs->initial && (pr = point(fs, FS_AT_NEWKEYS)) != 0) {
        r = pr < 0 ? -1 : 0;
        goto out;
    }
    uint8_t nk = SSH_MSG_NEWKEYS;
    if (fs_send(fs, &nk, 1) != 0) {
        goto out;
    }
    sf_cipher_free(fs->tp.tx.cipher);
    fs->tp.tx.cipher = tx;
    tx = NULL;
    if (fs->strict) {
        fs->tp.tx.seq = 0; /* PROTOCOL s1.10 b */
    }
    if (comp_switch(fs, true) != 0) {
        goto out;
    }
    if (kex_wait(fs, SSH_MSG_NEWKEYS) != 0) {
        goto out;
    }
    if (fs->curlen != 1) {
        violation(fs, "NEWKEYS with trailing data");
    }
    sf_cipher_free(fs->tp.rx.cipher);
    fs->tp.rx.cipher = rx;
    rx = NULL;
    if (fs->strict) {
        fs->tp.rx.seq = 0;
    }
    if (comp_switch(fs, false) != 0) {
        goto out;
    }
    fs->client_in_kex = false;
    fs->in_kex = false;
    fs->kexinit_sent = false;
    fs->initial = false;
    fs->seen.kex_done++;
    r = 0;
out:
    sf_wipe(h, sizeof(h));
    free(cval);
    BN_free(dp);
    BN_free(dg);
    sf_cipher_free(tx);
    sf_cipher_free(rx);
    sf_buf_free(&cpart);
    sf_buf_free(&spart);
    sf_buf_free(&hb);
    sf_buf_free(&kb);
    sf_buf_free(&ks);
    sf_buf_free(&sig);
    sf_buf_free(&reply);
    return r;
}

int fs_send_kexinit(struct fs *fs)
{
    if (fs->kexinit_sent) {
        return fs_fail(fs, "fs_send_kexinit: ours is already out");
    }
    return send_kexinit(fs);
}

int fs_rekey(struct fs *fs)
{
    if (fs->client_in_kex) {
        return fs_fail(fs, "fs_rekey during a key exchange");
    }
    return kex_run(fs, false);
}

/* ------------------------------------------------------------------------ */
/* Receiving for scripts                                                    */
/* ------------------------------------------------------------------------ */

/* Re-open the client's window when half of it is used (unless told not to). */
static int auto_window(struct fs *fs)
{
    if (fs->sc.no_auto_window || !fs->chan_open || fs->in_kex || fs->seen.close) {
        return 0;
    }
    if (fs->srv_window > fs->srv_granted / 2) {
        return 0;
    }
    return fs_window_adjust(fs, fs->srv_granted - fs->srv_window);
}

int fs_recv(struct fs *fs, uint8_t *type, struct sf_buf *msg)
{
    *type = 0;
    sf_buf_init_view(msg, NULL, 0);
    for (;;) {
        if (fs->q_head != NULL) {
            unqueue(fs);
        } else if (recv_packet(fs) != 0) {
            return -1;
        }
        uint8_t t = fs->cur[0];
        if (t == SSH_MSG_KEXINIT) {
            if (kex_run(fs, true) != 0) {
                return -1;
            }
            continue;
        }
        if (auto_window(fs) != 0) {
            return -1;
        }
        *type = t;
        sf_buf_init_view(msg, fs->cur + 1, fs->curlen - 1);
        return 0;
    }
}

int fs_recv_raw(struct fs *fs, uint8_t *type, struct sf_buf *msg)
{
    *type = 0;
    sf_buf_init_view(msg, NULL, 0);
    if (fs->q_head != NULL) {
        unqueue(fs);
    } else if (recv_packet(fs) != 0) {
        return -1;
    }
    *type = fs->cur[0];
    sf_buf_init_view(msg, fs->cur + 1, fs->curlen - 1);
    return 0;
}

int fs_expect(struct fs *fs, uint8_t type, struct sf_buf *msg)
{
    uint8_t t = 0;
    for (;;) {
        if (fs_recv(fs, &t, msg) != 0) {
            return -1;
        }
        if (t == type) {
            return 0;
        }
        switch (t) {
        case SSH_MSG_IGNORE:
        case SSH_MSG_DEBUG:
        case SSH_MSG_CHANNEL_WINDOW_ADJUST:
        case SSH_MSG_CHANNEL_DATA:
        case SSH_MSG_CHANNEL_EXTENDED_DATA:
        case SSH_MSG_UNIMPLEMENTED:
        case SSH_MSG_REQUEST_SUCCESS:
        case SSH_MSG_REQUEST_FAILURE:
        case SSH_MSG_CHANNEL_SUCCESS:
        case SSH_MSG_CHANNEL_FAILURE:
            continue; /* replies to what we sent: accounted for */
        case SSH_MSG_DISCONNECT:
            return fs_fail(fs, "the client disconnected (reason %u: %s) while we waited for %u",
                           fs->seen.disconnect_reason, fs->seen.disconnect_text, type);
        default:
            return fs_fail(fs, "expected message %u from the client, got %u", type, t);
        }
    }
}

/* While we wait for window: take one message, keep it for the script. */
static int wait_window(struct fs *fs)
{
    if (auto_window(fs) != 0 || recv_packet(fs) != 0) {
        return -1;
    }
    uint8_t t = fs->cur[0];
    if (t == SSH_MSG_KEXINIT) {
        return kex_run(fs, true);
    }
    if (t == SSH_MSG_DISCONNECT || t == SSH_MSG_CHANNEL_CLOSE) {
        (void)queue_current(fs);
        return fs_fail(fs, "the client ended while we waited for window (message %u)", t);
    }
    if (t == SSH_MSG_CHANNEL_WINDOW_ADJUST) {
        return 0;
    }
    return queue_current(fs);
}

/* ------------------------------------------------------------------------ */
/* Sending for scripts                                                      */
/* ------------------------------------------------------------------------ */

static int send_buf(struct fs *fs, struct sf_buf *b, int r)
{
    if (r != 0) {
        return fs_fail(fs, "fake server: building a message failed: %s", sf_err_str(r));
    }
    return fs_send(fs, sf_buf_ptr(b), sf_buf_len(b));
}

int fs_send_ignore(struct fs *fs)
{
    static const uint8_t msg[] = {SSH_MSG_IGNORE, 0, 0, 0, 3, 'a', 'b', 'c'};
    return fs_send(fs, msg, sizeof(msg));
}

int fs_send_disconnect(struct fs *fs, uint32_t reason, const char *text)
{
    struct sf_buf b;
    int r;
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    if ((r = sf_buf_put_u8(&b, SSH_MSG_DISCONNECT)) == 0 && (r = sf_buf_put_u32(&b, reason)) == 0 &&
        (r = sf_buf_put_cstr(&b, text != NULL ? text : "")) == 0) {
        r = sf_buf_put_cstr(&b, "");
    }
    return send_buf(fs, &b, r);
}

static int stream_msg(struct fs *fs, uint8_t type, uint32_t code, const uint8_t *p, size_t n)
{
    struct sf_buf b;
    int r;
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    if ((r = sf_buf_put_u8(&b, type)) == 0 && (r = sf_buf_put_u32(&b, fs->cli_chan)) == 0 &&
        (type != SSH_MSG_CHANNEL_EXTENDED_DATA || (r = sf_buf_put_u32(&b, code)) == 0)) {
        r = sf_buf_put_string(&b, p, n);
    }
    return send_buf(fs, &b, r);
}

static int send_stream(struct fs *fs, uint8_t type, uint32_t code, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        while (fs->cli_window == 0) {
            if (wait_window(fs) != 0) {
                return -1;
            }
        }
        size_t chunk = SF_MIN(n, (size_t)fs->cli_window);
        chunk = SF_MIN(chunk, (size_t)fs->cli_maxpkt);
        chunk = SF_MIN(chunk, (size_t)FS_MAXPKT_DEFAULT);
        if (stream_msg(fs, type, code, p, chunk) != 0) {
            return -1;
        }
        fs->cli_window -= (uint32_t)chunk;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

int fs_data(struct fs *fs, const void *p, size_t n)
{
    return send_stream(fs, SSH_MSG_CHANNEL_DATA, 0, p, n);
}

int fs_ext(struct fs *fs, uint32_t code, const void *p, size_t n)
{
    return send_stream(fs, SSH_MSG_CHANNEL_EXTENDED_DATA, code, p, n);
}

int fs_data_raw(struct fs *fs, const void *p, size_t n)
{
    fs->cli_window -= (uint32_t)SF_MIN((size_t)fs->cli_window, n);
    return stream_msg(fs, SSH_MSG_CHANNEL_DATA, 0, p, n);
}

/* byte 98, uint32 recipient, string type, boolean want_reply (RFC 4254 s5.4) */
static int chan_req_head(struct fs *fs, struct sf_buf *b, const char *type, bool want)
{
    int r;
    sf_buf_init_mem(b, fs->scratch, FS_SCRATCH);
    if ((r = sf_buf_put_u8(b, SSH_MSG_CHANNEL_REQUEST)) != 0 ||
        (r = sf_buf_put_u32(b, fs->cli_chan)) != 0 || (r = sf_buf_put_cstr(b, type)) != 0 ||
        (r = sf_buf_put_bool(b, want)) != 0) {
        return r;
    }
    return 0;
}

int fs_exit_status(struct fs *fs, uint32_t status)
{
    struct sf_buf b;
    int r = chan_req_head(fs, &b, "exit-status", false);
    if (r == 0) {
        r = sf_buf_put_u32(&b, status);
    }
    return send_buf(fs, &b, r);
}

int fs_exit_signal(struct fs *fs, const char *sig, bool core, const char *msg)
{
    struct sf_buf b;
    int r = chan_req_head(fs, &b, "exit-signal", false);
    if (r == 0 && (r = sf_buf_put_cstr(&b, sig)) == 0 && (r = sf_buf_put_bool(&b, core)) == 0 &&
        (r = sf_buf_put_cstr(&b, msg)) == 0) {
        r = sf_buf_put_cstr(&b, "");
    }
    return send_buf(fs, &b, r);
}

int fs_chan_request(struct fs *fs, const char *type, bool want)
{
    struct sf_buf b;
    int r = chan_req_head(fs, &b, type, want);
    return send_buf(fs, &b, r);
}

static int chan_simple(struct fs *fs, uint8_t type)
{
    uint8_t msg[5];
    msg[0] = type;
    sf_store_be32(msg + 1, fs->cli_chan);
    return fs_send(fs, msg, sizeof(msg));
}

int fs_eof(struct fs *fs)
{
    return chan_simple(fs, SSH_MSG_CHANNEL_EOF);
}

int fs_close(struct fs *fs)
{
    return chan_simple(fs, SSH_MSG_CHANNEL_CLOSE);
}

int fs_window_adjust(struct fs *fs, uint32_t n)
{
    uint8_t msg[9];
    fs->srv_window += n;
    msg[0] = SSH_MSG_CHANNEL_WINDOW_ADJUST;
    sf_store_be32(msg + 1, fs->cli_chan);
    sf_store_be32(msg + 5, n);
    return fs_send(fs, msg, sizeof(msg));
}

int fs_global_request(struct fs *fs, const char *name, bool want)
{
    struct sf_buf b;
    int r;
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    if ((r = sf_buf_put_u8(&b, SSH_MSG_GLOBAL_REQUEST)) == 0 &&
        (r = sf_buf_put_cstr(&b, name)) == 0) {
        r = sf_buf_put_bool(&b, want);
    }
    return send_buf(fs, &b, r);
}

int fs_read_until_eof(struct fs *fs)
{
    uint8_t t = 0;
    struct sf_buf m;
    while (!fs->seen.eof && !fs->seen.close) {
        if (fs_recv(fs, &t, &m) != 0) {
            return -1;
        }
        if (t == SSH_MSG_DISCONNECT) {
            return fs_fail(fs, "the client disconnected (reason %u: %s)",
                           fs->seen.disconnect_reason, fs->seen.disconnect_text);
        }
    }
    return 0;
}

int fs_end_session(struct fs *fs, int status)
{
    uint8_t t = 0;
    struct sf_buf m;
    if ((status >= 0 && fs_exit_status(fs, (uint32_t)status) != 0) || fs_eof(fs) != 0 ||
        fs_close(fs) != 0) {
        return -1;
    }
    while (!fs->seen.close) {
        if (fs_recv(fs, &t, &m) != 0) {
            if (fs->seen.disconnect || fs->seen.peer_closed) {
                /* It went (DISCONNECT or closed socket) in a re-key it had
                 * started: same as below. */
                fs->seen.close_missing = true;
                fs->failed = false;
                fs->why[0] = '\0';
                return 0;
            }
            return -1;
        }
        if (t == SSH_MSG_DISCONNECT) {
            /* It ends the channel too; the missing CLOSE is noted, not fatal. */
            fs->seen.close_missing = true;
            return 0;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The server's script                                                      */
/* ------------------------------------------------------------------------ */

/* Read and drop everything until the client goes or the deadline. */
static void drain(struct fs *fs)
{
    uint8_t buf[4096];
    for (;;) {
        int left = remaining_ms(fs);
        if (left == 0) {
            return;
        }
        struct pollfd p = {.fd = fs->sock, .events = POLLIN, .revents = 0};
        int n = poll(&p, 1, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        ssize_t k = recv(fs->sock, buf, sizeof(buf), 0);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR && errno != EWOULDBLOCK)) {
            fs->seen.peer_closed = true;
            return;
        }
    }
}

static const char *point_name(enum fs_point p)
{
    static const char *const names[FS_POINT_COUNT] = {
        "version", "kexinit", "kexreply", "newkeys", "ext-info", "service",
        "auth",    "open",    "request",  "session", "rekey",
    };
    return (unsigned)p < FS_POINT_COUNT ? names[p] : "?";
}

/* Stop on purpose at p. hang: keep the connection open but silent. */
static int planned_stop(struct fs *fs, enum fs_point p, bool hang)
{
    char before[sizeof(fs->why)];
    snprintf(before, sizeof(before), "%s", fs->why);
    fs->planned = true;
    snprintf(fs->why, sizeof(fs->why), "stopped at %s as scripted%s%.300s", point_name(p),
             before[0] != '\0' ? " after: " : "", before);
    if (hang) {
        drain(fs);
    }
    return -1;
}

/* Options and the hook at a point: 0 do the normal thing, 1 skip it, -1 stop. */
static int point(struct fs *fs, enum fs_point p)
{
    const struct fs_script *sc = &fs->sc;
    if (sc->disconnect && sc->disconnect_at == p) {
        (void)fs_send_disconnect(fs, sc->disconnect_reason, sc->disconnect_text);
        /* Keep reading until the client goes, so that it gets the message
         * before it sees the connection close. */
        planned_stop(fs, p, false);
        drain(fs);
        return -1;
    }
    if (sc->hang && sc->hang_at == p) {
        return planned_stop(fs, p, true);
    }
    if (sc->hook == NULL) {
        return 0;
    }
    switch (sc->hook(fs, p, sc->user)) {
    case FS_GO:
        return fs->failed ? -1 : 0;
    case FS_SKIP:
        return fs->failed ? -1 : 1;
    case FS_DROP:
        return planned_stop(fs, p, false);
    case FS_HANG:
        return planned_stop(fs, p, true);
    default:
        return fs_fail(fs, "hook returned an unknown action");
    }
}

static int version_exchange(struct fs *fs)
{
    char line[1024];
    int pr;

    if ((pr = point(fs, FS_AT_VERSION)) < 0) {
        return -1;
    }
    if (pr == 0) {
        if (fs->sc.pre_version != NULL &&
            fs_send_raw(fs, fs->sc.pre_version, strlen(fs->sc.pre_version)) != 0) {
            return -1;
        }
        snprintf(line, sizeof(line), "%s\r\n",
                 fs->sc.version != NULL ? fs->sc.version : FS_VERSION);
        if (fs_send_raw(fs, line, strlen(line)) != 0) {
            return -1;
        }
    }
    for (;;) {
        uint8_t *start = fs->tp.rxbuf + fs->tp.rxoff;
        size_t avail = fs->tp.rxlen - fs->tp.rxoff;
        uint8_t *nl = memchr(start, '\n', avail);
        if (nl == NULL) {
            if (avail > 255) {
                violation(fs, "client version line too long");
                return fs_fail(fs, "client version line too long");
            }
            if (rx_fill(fs) != 0) {
                return -1;
            }
            continue;
        }
        size_t len = (size_t)(nl - start);
        fs->tp.rxoff += len + 1;
        if (len == 0 || start[len - 1] != '\r') {
            violation(fs, "client version line does not end in CR LF");
        } else {
            len--;
        }
        if (len >= sizeof(fs->v_c)) {
            return fs_fail(fs, "client version line too long");
        }
        memcpy(fs->v_c, start, len);
        fs->v_c[len] = '\0';
        snprintf(fs->seen.client_version, sizeof(fs->seen.client_version), "%s", fs->v_c);
        if (strncmp(fs->v_c, "SSH-2.0-", 8) != 0) {
            violation(fs, "client sent a line that is not its version");
            continue;
        }
        return 0;
    }
}

static int send_ext_info(struct fs *fs)
{
    struct sf_buf b;
    int r;
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    /* RFC 8308 s2.3: byte 7, uint32 count, (string name, string value)* */
    if ((r = sf_buf_put_u8(&b, SSH_MSG_EXT_INFO)) == 0 && (r = sf_buf_put_u32(&b, 1)) == 0 &&
        (r = sf_buf_put_cstr(&b, "server-sig-algs")) == 0) {
        r = sf_buf_put_cstr(&b, FS_SERVER_SIG_ALGS);
    }
    return send_buf(fs, &b, r);
}

static int service(struct fs *fs)
{
    struct sf_buf m, b;
    char name[64];
    int r, pr;

    if (fs_expect(fs, SSH_MSG_SERVICE_REQUEST, &m) != 0) {
        return -1;
    }
    fs->seen.service_requests++;
    if (sf_buf_get_cstr(&m, name, sizeof(name)) != 0 || sf_buf_expect_end(&m) != 0 ||
        strcmp(name, "ssh-userauth") != 0) {
        violation(fs, "bad SERVICE_REQUEST");
    }
    if ((pr = point(fs, FS_AT_SERVICE)) != 0) {
        return pr < 0 ? -1 : 0;
    }
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    if ((r = sf_buf_put_u8(&b, SSH_MSG_SERVICE_ACCEPT)) == 0) {
        r = sf_buf_put_cstr(&b, fs->sc.service_wrong_name ? "ssh-connection" : "ssh-userauth");
    }
    return send_buf(fs, &b, r);
}

/*
 * RFC 4252 s7: check a publickey request's signature. m is positioned
 * after the method name; the signed data is
 * string session_id || the request up to (not including) the signature.
 */
static bool check_publickey(struct fs *fs, struct sf_buf *m)
{
    bool has_sig = false, ok = false;
    const uint8_t *alg = NULL, *blob = NULL, *sig = NULL;
    size_t alen = 0, blen = 0, slen = 0;
    char algname[SF_NAME_MAX + 1];
    struct sf_pubkey *pk = NULL;
    struct sf_buf data = {0};

    if (sf_buf_get_bool(m, &has_sig) != 0 || sf_buf_get_string(m, &alg, &alen, SF_NAME_MAX) != 0 ||
        sf_buf_get_string(m, &blob, &blen, SF_KEYBLOB_MAX) != 0) {
        violation(fs, "malformed publickey request");
        return false;
    }
    size_t signed_len = (size_t)(sf_buf_ptr(m) - fs->cur);
    if (!has_sig) {
        violation(fs, "publickey request without a signature");
        return false;
    }
    if (sf_buf_get_string(m, &sig, &slen, SF_KEYBLOB_MAX) != 0 || sf_buf_expect_end(m) != 0) {
        violation(fs, "malformed publickey signature");
        return false;
    }
    memcpy(algname, alg, alen);
    algname[alen] = '\0';
    if (sf_pubkey_from_blob(blob, blen, &pk) != 0 || !sf_pubkey_sigalg_ok(pk, algname) ||
        sf_buf_alloc(&data, 1024, SF_BUF_MAX) != 0 ||
        sf_buf_put_string(&data, fs->session_id, fs->sid_len) != 0 ||
        sf_buf_put_bytes(&data, fs->cur, signed_len) != 0) {
        violation(fs, "unusable publickey request (%s)", algname);
        goto out;
    }
    if (sf_pubkey_verify(pk, algname, sig, slen, sf_buf_ptr(&data), sf_buf_len(&data)) != 0) {
        violation(fs, "the client's publickey signature does not verify");
        goto out;
    }
    ok = true;
out:
    sf_pubkey_free(pk);
    sf_buf_free(&data);
    return ok;
}

static int auth(struct fs *fs)
{
    struct sf_buf m, b;
    bool banner_sent = false;
    int r, pr;

    for (;;) {
        char user[64], svc[64], method[32];
        bool accept = false;
        if (fs_expect(fs, SSH_MSG_USERAUTH_REQUEST, &m) != 0) {
            return -1;
        }
        fs->seen.userauth_requests++;
        if (sf_buf_get_cstr(&m, user, sizeof(user)) != 0 ||
            sf_buf_get_cstr(&m, svc, sizeof(svc)) != 0 ||
            sf_buf_get_cstr(&m, method, sizeof(method)) != 0) {
            violation(fs, "malformed USERAUTH_REQUEST");
            return fs_fail(fs, "malformed USERAUTH_REQUEST");
        }
        snprintf(fs->seen.user, sizeof(fs->seen.user), "%s", user);
        snprintf(fs->seen.auth_method, sizeof(fs->seen.auth_method), "%s", method);
        if (strcmp(svc, "ssh-connection") != 0) {
            violation(fs, "USERAUTH_REQUEST for service %s", svc);
        }
        if (strcmp(method, "publickey") == 0) {
            bool ok = check_publickey(fs, &m);
            fs->seen.auth_sig_ok = fs->seen.auth_sig_ok || ok;
            accept = ok && !fs->sc.refuse_publickey;
        } else if (strcmp(method, "password") == 0) {
            bool change = false;
            char pw[256];
            if (sf_buf_get_bool(&m, &change) != 0 || sf_buf_get_cstr(&m, pw, sizeof(pw)) != 0 ||
                sf_buf_expect_end(&m) != 0) {
                violation(fs, "malformed password request");
            } else {
                accept = fs->sc.password != NULL && strcmp(pw, fs->sc.password) == 0;
            }
        } else if (strcmp(method, "none") == 0) {
            if (sf_buf_expect_end(&m) != 0) {
                violation(fs, "malformed none request");
            }
        }
        if (fs->sc.auth_refuse) {
            accept = false;
        }
        if ((pr = point(fs, FS_AT_AUTH)) < 0) {
            return -1;
        }
        if (pr == 1) {
            continue;
        }
        if (fs->sc.banner != NULL && !banner_sent) {
            sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
            if ((r = sf_buf_put_u8(&b, SSH_MSG_USERAUTH_BANNER)) == 0 &&
                (r = sf_buf_put_cstr(&b, fs->sc.banner)) == 0) {
                r = sf_buf_put_cstr(&b, "");
            }
            if (send_buf(fs, &b, r) != 0) {
                return -1;
            }
            banner_sent = true;
        }
        sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
        if (accept) {
            fs->seen.auth_ok = true;
            if (fs->sc.success_burst) {
                return send_success_burst(fs);
            }
            r = sf_buf_put_u8(&b, SSH_MSG_USERAUTH_SUCCESS);
            if (send_buf(fs, &b, r) != 0) {
                return -1;
            }
            return comp_authed(fs);
        }
        /* RFC 4252 s5.1: name-list methods, boolean partial success */
        if ((r = sf_buf_put_u8(&b, SSH_MSG_USERAUTH_FAILURE)) == 0 &&
            (r = sf_buf_put_cstr(&b, "publickey,password")) == 0) {
            r = sf_buf_put_bool(&b, false);
        }
        if (send_buf(fs, &b, r) != 0) {
            return -1;
        }
    }
}

/* 1: channel open; 0: refused as scripted; -1: stop. */
static int channel_open(struct fs *fs)
{
    struct sf_buf m, b;
    char type[32];
    uint32_t id = 0, win = 0, maxpkt = 0;
    int r, pr;

    if (fs_expect(fs, SSH_MSG_CHANNEL_OPEN, &m) != 0) {
        return -1;
    }
    fs->seen.channel_opens++;
    if (sf_buf_get_cstr(&m, type, sizeof(type)) != 0 || sf_buf_get_u32(&m, &id) != 0 ||
        sf_buf_get_u32(&m, &win) != 0 || sf_buf_get_u32(&m, &maxpkt) != 0 ||
        sf_buf_expect_end(&m) != 0 || strcmp(type, "session") != 0) {
        violation(fs, "bad CHANNEL_OPEN");
        return fs_fail(fs, "bad CHANNEL_OPEN");
    }
    fs->cli_chan = id;
    fs->cli_window = win;
    fs->cli_maxpkt = maxpkt;
    fs->seen.client_window = win;
    fs->seen.client_maxpkt = maxpkt;
    fs->srv_granted = fs->sc.window != 0 ? fs->sc.window : FS_WINDOW_DEFAULT;
    fs->srv_window = fs->sc.confirm_window != 0 ? fs->sc.confirm_window : fs->srv_granted;
    fs->srv_maxpkt = fs->sc.maxpkt != 0 ? fs->sc.maxpkt : FS_MAXPKT_DEFAULT;
    if ((pr = point(fs, FS_AT_OPEN)) != 0) {
        return pr < 0 ? -1 : 1;
    }
    sf_buf_init_mem(&b, fs->scratch, FS_SCRATCH);
    if (fs->sc.open_refuse) {
        /* RFC 4254 s5.1: uint32 recipient, uint32 reason, string text, string language */
        if ((r = sf_buf_put_u8(&b, SSH_MSG_CHANNEL_OPEN_FAILURE)) == 0 &&
            (r = sf_buf_put_u32(&b, id)) == 0 &&
            (r = sf_buf_put_u32(&b, fs->sc.open_fail_code)) == 0 &&
            (r = sf_buf_put_cstr(&b, fs->sc.open_fail_text != NULL ? fs->sc.open_fail_text : "")) ==
                0) {
            r = sf_buf_put_cstr(&b, "");
        }
        return send_buf(fs, &b, r) != 0 ? -1 : 0;
    }
    /* uint32 recipient, uint32 sender, uint32 window, uint32 max packet */
    if ((r = sf_buf_put_u8(&b, SSH_MSG_CHANNEL_OPEN_CONFIRMATION)) == 0 &&
        (r = sf_buf_put_u32(&b, id)) == 0 && (r = sf_buf_put_u32(&b, FS_SERVER_CHAN)) == 0 &&
        (r = sf_buf_put_u32(&b, fs->srv_window)) == 0) {
        r = sf_buf_put_u32(&b, fs->sc.confirm_maxpkt != 0 ? fs->sc.confirm_maxpkt : fs->srv_maxpkt);
    }
    if (send_buf(fs, &b, r) != 0) {
        return -1;
    }
    fs->chan_open = true;
    return 1;
}

/* 1: the main request accepted; 0: refused as scripted; -1: stop. */
static int channel_requests(struct fs *fs)
{
    struct sf_buf m;
    for (;;) {
        char type[32];
        uint32_t id = 0;
        bool want = false, main_req = false;
        int pr;
        if (fs_expect(fs, SSH_MSG_CHANNEL_REQUEST, &m) != 0) {
            return -1;
        }
        if (sf_buf_get_u32(&m, &id) != 0 || sf_buf_get_cstr(&m, type, sizeof(type)) != 0 ||
            sf_buf_get_bool(&m, &want) != 0) {
            violation(fs, "malformed CHANNEL_REQUEST");
            return fs_fail(fs, "malformed CHANNEL_REQUEST");
        }
        if (id != FS_SERVER_CHAN) {
            violation(fs, "CHANNEL_REQUEST for channel %u", id);
        }
        bool ok = true;
        if (strcmp(type, "env") == 0) {
            fs->seen.env_requests++;
        } else if (strcmp(type, "exec") == 0 || strcmp(type, "subsystem") == 0) {
            if (sf_buf_get_cstr(&m, fs->seen.command, sizeof(fs->seen.command)) != 0 ||
                sf_buf_expect_end(&m) != 0) {
                violation(fs, "malformed %s request", type);
            }
            main_req = true;
        } else if (strcmp(type, "shell") == 0) {
            main_req = true;
        } else if (strcmp(type, "pty-req") != 0) {
            ok = false;
        }
        if (main_req) {
            snprintf(fs->seen.request, sizeof(fs->seen.request), "%s", type);
            if (!want) {
                violation(fs, "%s request without want_reply", type);
            }
            ok = !fs->sc.request_refuse;
            if ((pr = point(fs, FS_AT_REQUEST)) != 0) {
                return pr < 0 ? -1 : 1;
            }
        }
        if (want && chan_simple(fs, ok ? SSH_MSG_CHANNEL_SUCCESS : SSH_MSG_CHANNEL_FAILURE) != 0) {
            return -1;
        }
        if (main_req) {
            return ok ? 1 : 0;
        }
    }
}

static int default_session(struct fs *fs)
{
    if (fs_read_until_eof(fs) != 0) {
        return -1;
    }
    return fs_end_session(fs, 0);
}

static int run(struct fs *fs)
{
    int pr, r;

    if (version_exchange(fs) != 0) {
        return -1;
    }
    if ((pr = point(fs, FS_AT_KEXINIT)) < 0) {
        return -1;
    }
    if (pr == 1) {
        fs->kexinit_sent = true; /* the hook sent its own */
        fs->i_s_len = 0;
    }
    if (kex_run(fs, false) != 0) {
        return -1;
    }
    if (fs->initial) {
        return 0; /* a hook ended the exchange early */
    }
    if ((pr = point(fs, FS_AT_EXT_INFO)) < 0) {
        return -1;
    }
    if (pr == 0 && fs->seen.client_ext_info && !fs->sc.no_ext_info && send_ext_info(fs) != 0) {
        return -1;
    }
    if (service(fs) != 0 || auth(fs) != 0) {
        return -1;
    }
    if ((r = channel_open(fs)) <= 0) {
        return r;
    }
    if ((r = channel_requests(fs)) <= 0) {
        return r;
    }
    if ((pr = point(fs, FS_AT_SESSION)) != 0) {
        return pr < 0 ? -1 : 0;
    }
    if (fs->sc.session != NULL) {
        return fs->sc.session(fs, fs->sc.user);
    }
    return default_session(fs);
}

static void *server_main(void *arg)
{
    struct fs *fs = arg;
    int r = run(fs);
    if (fs->planned) {
        fs->failed = false;
        r = 0;
    } else if (r == 0) {
        drain(fs); /* until the client is gone */
    }
    fs->result = r == 0 && !fs->failed ? 0 : -1;
    shutdown(fs->sock, SHUT_RDWR);
    fs_notify(fs);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Main thread                                                              */
/* ------------------------------------------------------------------------ */

static int load_key(const char *path, struct sf_privkey **out)
{
    *out = NULL;
    if (path == NULL) {
        return 0;
    }
    int r = sf_privkey_load_file(path, NULL, out);
    if (r != 0) {
        fprintf(stderr, "fakeserver: cannot load %s: %s\n", path, sf_err_str(r));
        return -1;
    }
    return 0;
}

struct fs *fs_start(const struct fs_script *sc)
{
    struct fs *fs = calloc(1, sizeof(*fs));
    int sv[2] = {-1, -1};
    pthread_condattr_t ca;

    if (fs == NULL) {
        return NULL;
    }
    fs->sc = *sc;
    fs->sock = fs->client_sock = -1;
    fs->initial = true;
    pthread_mutex_init(&fs->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fs->cv, &ca);
    pthread_condattr_destroy(&ca);
    fs->deadline =
        sf_now_ms() + (uint64_t)(sc->timeout_ms > 0 ? sc->timeout_ms : FS_TIMEOUT_DEFAULT_MS);
    if (sc->hostkey == NULL || load_key(sc->hostkey, &fs->hostkey) != 0 ||
        load_key(sc->sign_key, &fs->signkey) != 0 ||
        load_key(sc->rekey_hostkey, &fs->rekey_hostkey) != 0) {
        goto fail;
    }
    hostkey_algs(fs->hostkey, fs->hk_algs, sizeof(fs->hk_algs));
    if (sf_tp_init(&fs->tp) != 0 || (fs->cur = malloc(FS_SCRATCH)) == NULL ||
        (fs->scratch = malloc(FS_SCRATCH)) == NULL || (fs->i_s = malloc(FS_SCRATCH)) == NULL ||
        (fs->i_c = malloc(FS_SCRATCH)) == NULL) {
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        goto fail;
    }
    fs->sock = sv[0];
    fs->client_sock = sv[1];
    if (fcntl(fs->sock, F_SETFL, fcntl(fs->sock, F_GETFL) | O_NONBLOCK) != 0) {
        goto fail;
    }
    if (pthread_create(&fs->thread, NULL, server_main, fs) != 0) {
        goto fail;
    }
    fs->started = true;
    return fs;
fail:
    fs_free(fs);
    return NULL;
}

sshflow_flow *fs_flow(struct fs *fs)
{
    if (fs->client_sock < 0) {
        return NULL;
    }
    sshflow_flow *f = sshflow_flow_from_fds(fs->client_sock, fs->client_sock, true);
    if (f != NULL) {
        fs->client_sock = -1;
    }
    return f;
}

int fs_take_client_fd(struct fs *fs)
{
    int fd = fs->client_sock;
    fs->client_sock = -1;
    return fd;
}

int fs_finish(struct fs *fs)
{
    if (fs->started && !fs->joined) {
        pthread_join(fs->thread, NULL);
        fs->joined = true;
    }
    return fs->result;
}

const char *fs_why(const struct fs *fs)
{
    return fs->why;
}

const struct fs_seen *fs_seen(const struct fs *fs)
{
    return &fs->seen;
}

const uint8_t *fs_client_data(const struct fs *fs, size_t *len)
{
    *len = fs->data_len;
    return fs->data;
}

int fs_wait_notes(struct fs *fs, unsigned n, int timeout_ms)
{
    struct timespec ts;
    int r = 0;
    deadline_ts(timeout_ms > 0 ? (uint64_t)timeout_ms : 0, &ts);
    pthread_mutex_lock(&fs->mu);
    while (fs->notes < n && r == 0) {
        r = pthread_cond_timedwait(&fs->cv, &fs->mu, &ts);
    }
    bool ok = fs->notes >= n;
    pthread_mutex_unlock(&fs->mu);
    return ok ? 0 : -1;
}

void fs_free(struct fs *fs)
{
    if (fs == NULL) {
        return;
    }
    (void)fs_finish(fs);
    while (fs->q_head != NULL) {
        struct fs_qmsg *q = fs->q_head;
        fs->q_head = q->next;
        free(q);
    }
    if (fs->sock >= 0) {
        close(fs->sock);
    }
    if (fs->client_sock >= 0) {
        close(fs->client_sock);
    }
    sf_tp_free(&fs->tp);
    sf_privkey_free(fs->hostkey);
    sf_privkey_free(fs->signkey);
    sf_privkey_free(fs->rekey_hostkey);
    free(fs->cur);
    free(fs->scratch);
    free(fs->i_s);
    free(fs->i_c);
    free(fs->data);
    pthread_mutex_destroy(&fs->mu);
    pthread_cond_destroy(&fs->cv);
    free(fs);
}

size_t fs_kexinit_len(const struct fs_script *sc)
{
    struct sf_privkey *k = NULL;
    struct sf_buf b = {0};
    char algs[128];
    size_t n = 0;

    if (load_key(sc->hostkey, &k) != 0 || k == NULL) {
        return 0;
    }
    hostkey_algs(k, algs, sizeof(algs));
    if (sf_buf_alloc(&b, 1024, SF_BUF_MAX) == 0 && build_kexinit(sc, true, algs, &b) == 0) {
        n = sf_buf_len(&b);
    }
    sf_buf_free(&b);
    sf_privkey_free(k);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Test side: keys and the client                                           */
/* ------------------------------------------------------------------------ */

static int keygen(const char *type, const char *bits, const char *path)
{
    char errbuf[512] = "";
    char *argv[16];
    int n = 0;

    argv[n++] = SF_TEST_SSH_KEYGEN_PATH;
    argv[n++] = "-q";
    argv[n++] = "-t";
    argv[n++] = (char *)type;
    if (bits != NULL) {
        argv[n++] = "-b";
        argv[n++] = (char *)bits;
    }
    argv[n++] = "-N";
    argv[n++] = "";
    argv[n++] = "-C";
    argv[n++] = "fakepeer";
    argv[n++] = "-f";
    argv[n++] = (char *)path;
    argv[n] = NULL;
    int st = sf_test_run(argv, NULL, NULL, 0, errbuf, sizeof(errbuf), 60000);
    if (st != 0) {
        fprintf(stderr, "fakeserver: ssh-keygen -t %s failed (%d): %s\n", type, st, errbuf);
        return -1;
    }
    return 0;
}

static int fingerprint(const char *path, char *out, size_t outsz)
{
    struct sf_privkey *k = NULL;
    struct sf_buf b = {0};
    int r = -1;
    if (load_key(path, &k) == 0 && sf_buf_alloc(&b, 512, SF_KEYBLOB_MAX) == 0 &&
        sf_privkey_pubblob(k, &b) == 0 &&
        sf_fingerprint_sha256(sf_buf_ptr(&b), sf_buf_len(&b), out, outsz) == 0) {
        r = 0;
    }
    sf_buf_free(&b);
    sf_privkey_free(k);
    return r;
}

int fs_keys_make(struct fs_keys *k)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->dir, sizeof(k->dir), "/tmp/sf-fakepeer-XXXXXX");
    if (mkdtemp(k->dir) == NULL) {
        fprintf(stderr, "fakeserver: mkdtemp: %s\n", strerror(errno));
        k->dir[0] = '\0';
        return -1;
    }
    snprintf(k->host, sizeof(k->host), "%s/host_ed25519", k->dir);
    snprintf(k->other, sizeof(k->other), "%s/other_ed25519", k->dir);
    snprintf(k->user, sizeof(k->user), "%s/user_ed25519", k->dir);
    snprintf(k->ecdsa, sizeof(k->ecdsa), "%s/host_ecdsa", k->dir);
    snprintf(k->rsa, sizeof(k->rsa), "%s/host_rsa", k->dir);
    if (keygen("ed25519", NULL, k->host) != 0 || keygen("ed25519", NULL, k->other) != 0 ||
        keygen("ed25519", NULL, k->user) != 0 || keygen("ecdsa", "256", k->ecdsa) != 0 ||
        keygen("rsa", "2048", k->rsa) != 0 ||
        fingerprint(k->host, k->host_fp, sizeof(k->host_fp)) != 0 ||
        fingerprint(k->other, k->other_fp, sizeof(k->other_fp)) != 0 ||
        fingerprint(k->ecdsa, k->ecdsa_fp, sizeof(k->ecdsa_fp)) != 0 ||
        fingerprint(k->rsa, k->rsa_fp, sizeof(k->rsa_fp)) != 0) {
        fs_keys_remove(k);
        return -1;
    }
    return 0;
}

void fs_keys_remove(struct fs_keys *k)
{
    const char *files[] = {k->host, k->other, k->user, k->ecdsa, k->rsa};
    char pub[160];
    if (k->dir[0] == '\0') {
        return;
    }
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        if (files[i][0] != '\0') {
            (void)unlink(files[i]);
            snprintf(pub, sizeof(pub), "%s.pub", files[i]);
            (void)unlink(pub);
        }
    }
    (void)rmdir(k->dir);
    k->dir[0] = '\0';
}

static int cfg_set(sshflow_config *cfg, const char *name, const char *value, sshflow_error *err)
{
    if (value == NULL) {
        return 0;
    }
    return sshflow_config_set(cfg, name, value, err);
}

sshflow_flow *fs_connect(struct fs *fs, const struct fs_client *o, sshflow_error *err)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_request *req = sshflow_request_exec(FS_COMMAND);
    sshflow_hostauth *ha = NULL;
    sshflow_flow *f = NULL;
    char tmo[16];

    memset(err, 0, sizeof(*err));
    snprintf(tmo, sizeof(tmo), "%d", o->timeout_s > 0 ? o->timeout_s : 5);
    if (o->ha == NULL) {
        ha = sshflow_hostauth_parse(o->hostauth != NULL ? o->hostauth : o->keys->host_fp, err);
    }
    if (cfg == NULL || cred == NULL || req == NULL || (o->ha == NULL && ha == NULL) ||
        cfg_set(cfg, "ConnectTimeout", tmo, err) != 0 ||
        cfg_set(cfg, "RekeyLimit", o->rekey, err) != 0 ||
        cfg_set(cfg, "MaxStderrBuffer", o->max_stderr, err) != 0 ||
        cfg_set(cfg, "KexAlgorithms", o->kex, err) != 0 ||
        cfg_set(cfg, "Ciphers", o->ciphers, err) != 0 || cfg_set(cfg, "MACs", o->macs, err) != 0 ||
        cfg_set(cfg, "HostKeyAlgorithms", o->hostkeys, err) != 0 ||
        (!o->no_key && sshflow_cred_add_keyfile(cred, o->keys->user, NULL, err) != 0) ||
        (o->password != NULL && sshflow_cred_add_password(cred, o->password, err) != 0)) {
        if (err->kind == 0) {
            err->kind = SSHFLOW_ERR_NOMEM;
            snprintf(err->detail, sizeof(err->detail), "fs_connect: setting up the client failed");
        }
        sshflow_free(o->transport); /* taken over, as promised */
        goto out;
    }
    /* client_of_flow owns the transport from here, whatever it returns. */
    sshflow_flow *transport = o->transport != NULL ? o->transport : fs_flow(fs);
    f = sshflow_client_of_flow(transport, FS_USER, cred, o->ha != NULL ? o->ha : ha, req, cfg, err);
out:
    sshflow_config_free(cfg);
    sshflow_cred_free(cred);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
    return f;
}

int fs_client_read_all(sshflow_flow *f, uint8_t **out, size_t *len, size_t max, sshflow_error *err)
{
    uint8_t buf[16384];
    size_t cap = 0;
    ssize_t n;

    memset(err, 0, sizeof(*err));
    if (out != NULL) {
        *out = NULL;
    }
    *len = 0;
    while ((n = sshflow_read_into(f, buf, sizeof(buf), err)) > 0) {
        if (out == NULL || *len + (size_t)n > max) {
            *len += (size_t)n;
            continue;
        }
        if (*len + (size_t)n > cap) {
            cap = SF_MAX(cap * 2, *len + (size_t)n + 4096);
            uint8_t *d = realloc(*out, cap);
            if (d == NULL) {
                return SSHFLOW_ERR_NOMEM;
            }
            *out = d;
        }
        memcpy(*out + *len, buf, (size_t)n);
        *len += (size_t)n;
    }
    return n == 0 ? 0 : (int)n;
}
