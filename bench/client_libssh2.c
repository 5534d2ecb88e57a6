/*
 * bench/client_libssh2.c -- the benchmark client for libssh2 (usage in
 * bench_common.h), with libssh2's normal API: the application makes the TCP
 * socket, libssh2_session_handshake, libssh2_knownhost_checkp against the
 * known_hosts file, libssh2_userauth_publickey_fromfile, a session channel
 * and exec.
 *
 * Upload and download use blocking mode. The round trip cannot: a libssh2
 * session must not be used from two threads at once, and a blocking write
 * that waits for window space never hands the window back to the server,
 * so with `cat` echoing the data both sides would stall. It switches the
 * session to non-blocking mode and drives one loop: write when the remote
 * window allows, read what has arrived, and poll() the socket in the
 * direction libssh2_session_block_directions() names. libssh2 requires that
 * a send cut short by EAGAIN is retried with the same call before any other
 * call that may send (a read may send a window adjust), so the loop keeps
 * track of which call has a send pending.
 *
 * The socket is the application's; like libssh2's examples, the client
 * leaves Nagle's algorithm on unless -N asks for TCP_NODELAY.
 *
 * Owns: its socket and libssh2 session. Must never: skip the host key check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libssh2.h>

#include "bench_common.h"

static const char *NAME = "client_libssh2";

struct conn {
    int sock;
    LIBSSH2_SESSION *s;
    LIBSSH2_CHANNEL *ch;
};

static void die_ssh(LIBSSH2_SESSION *s, const char *what)
{
    char *msg = NULL;

    libssh2_session_last_error(s, &msg, NULL, 0);
    bench_die(NAME, "%s: %s", what, msg != NULL ? msg : "?");
}

static void pref(LIBSSH2_SESSION *s, int method, const char *value)
{
    if (value != NULL && libssh2_session_method_pref(s, method, value) != 0) {
        die_ssh(s, value);
    }
}

static int knownhost_keybit(int type)
{
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default:
        return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

static void check_host_key(const struct bench_args *a, LIBSSH2_SESSION *s)
{
    LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(s);
    size_t len;
    int type, r;
    const char *key;

    if (kh == NULL) {
        die_ssh(s, "knownhost_init");
    }
    if (libssh2_knownhost_readfile(kh, a->known_hosts, LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0) {
        die_ssh(s, "knownhost_readfile");
    }
    key = libssh2_session_hostkey(s, &len, &type);
    if (key == NULL) {
        die_ssh(s, "session_hostkey");
    }
    r = libssh2_knownhost_checkp(kh, a->host, a->port, key, len,
                                 LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                     knownhost_keybit(type),
                                 NULL);
    if (r != LIBSSH2_KNOWNHOST_CHECK_MATCH) {
        bench_die(NAME, "host key not accepted by %s (check %d)", a->known_hosts, r);
    }
    libssh2_knownhost_free(kh);
}

static void open_channel(const struct bench_args *a, const char *cmd, struct conn *c)
{
    struct sockaddr_in sin;
    char pub[4200];

    c->sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)a->port);
    if (c->sock < 0 || inet_pton(AF_INET, a->host, &sin.sin_addr) != 1 ||
        connect(c->sock, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        bench_die(NAME, "connect: %s", strerror(errno));
    }
    if (a->nodelay) {
        int one = 1;
        if (setsockopt(c->sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
            bench_die(NAME, "TCP_NODELAY: %s", strerror(errno));
        }
    }
    c->s = libssh2_session_init();
    if (c->s == NULL) {
        bench_die(NAME, "libssh2_session_init failed");
    }
    libssh2_session_set_blocking(c->s, 1);
    pref(c->s, LIBSSH2_METHOD_KEX, a->kex);
    pref(c->s, LIBSSH2_METHOD_HOSTKEY, a->hostkey);
    pref(c->s, LIBSSH2_METHOD_CRYPT_CS, a->cipher);
    pref(c->s, LIBSSH2_METHOD_CRYPT_SC, a->cipher);
    pref(c->s, LIBSSH2_METHOD_MAC_CS, a->mac);
    pref(c->s, LIBSSH2_METHOD_MAC_SC, a->mac);
    if (libssh2_session_handshake(c->s, c->sock) != 0) {
        die_ssh(c->s, "handshake");
    }
    check_host_key(a, c->s);
    if (snprintf(pub, sizeof(pub), "%s.pub", a->key) >= (int)sizeof(pub)) {
        bench_die(NAME, "key path too long");
    }
    if (libssh2_userauth_publickey_fromfile(c->s, a->user, pub, a->key, NULL) != 0) {
        die_ssh(c->s, "publickey auth");
    }
    c->ch = libssh2_channel_open_session(c->s);
    if (c->ch == NULL) {
        die_ssh(c->s, "channel_open_session");
    }
    if (libssh2_channel_exec(c->ch, cmd) != 0) {
        die_ssh(c->s, "exec");
    }
}

static void algs_of(LIBSSH2_SESSION *s, char *buf, size_t len)
{
    const char *kex = libssh2_session_methods(s, LIBSSH2_METHOD_KEX);
    const char *hk = libssh2_session_methods(s, LIBSSH2_METHOD_HOSTKEY);
    const char *cipher = libssh2_session_methods(s, LIBSSH2_METHOD_CRYPT_CS);
    const char *mac = libssh2_session_methods(s, LIBSSH2_METHOD_MAC_CS);

    snprintf(buf, len, "kex=%s hostkey=%s cipher=%s mac=%s", kex ? kex : "?", hk ? hk : "?",
             cipher ? cipher : "?", mac ? mac : "?");
}

/* Blocking: close, wait for the server's close, require exit status 0, free. */
static void finish(struct conn *c)
{
    libssh2_session_set_blocking(c->s, 1);
    if (libssh2_channel_close(c->ch) != 0 || libssh2_channel_wait_closed(c->ch) != 0) {
        die_ssh(c->s, "close");
    }
    if (libssh2_channel_get_exit_status(c->ch) != 0) {
        bench_die(NAME, "remote command did not exit with status 0");
    }
    libssh2_channel_free(c->ch);
    libssh2_session_disconnect(c->s, "bye");
    libssh2_session_free(c->s);
    close(c->sock);
}

static void write_all(struct conn *c, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = libssh2_channel_write(c->ch, (const char *)buf, len);
        if (n < 0) {
            die_ssh(c->s, "write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Read stdout to EOF (blocking), handing each piece to fn. */
static void read_all(struct conn *c, unsigned char *buf,
                     void (*fn)(void *ctx, const void *p, size_t n), void *ctx)
{
    ssize_t n;

    while ((n = libssh2_channel_read(c->ch, (char *)buf, BENCH_CHUNK)) > 0) {
        fn(ctx, buf, (size_t)n);
    }
    if (n < 0) {
        die_ssh(c->s, "read");
    }
}

static void feed_hash(void *ctx, const void *p, size_t n)
{
    bench_hash_feed(ctx, p, n);
}

static void feed_chk(void *ctx, const void *p, size_t n)
{
    bench_chk_feed(ctx, p, n);
}

static void discard(void *ctx, const void *p, size_t n)
{
}

enum pending { P_NONE, P_WRITE, P_EOF, P_READ };

/* The round trip in non-blocking mode (see the top of the file). */
static void roundtrip(struct conn *c, struct bench_src *src, struct bench_chk *chk,
                      unsigned char *wbuf, unsigned char *rbuf)
{
    enum pending pend = P_NONE;
    size_t woff = 0, wlen = 0;
    int eof_sent = 0, eof_read = 0;

    libssh2_session_set_blocking(c->s, 0);
    while (!eof_read || !eof_sent) {
        int progress = 0;
        ssize_t n;

        if (pend == P_NONE || pend == P_WRITE || pend == P_EOF) {
            if (woff == wlen && pend == P_NONE) {
                wlen = bench_src_next(src, wbuf, BENCH_CHUNK);
                woff = 0;
            }
            if (woff < wlen) {
                n = libssh2_channel_write(c->ch, (const char *)wbuf + woff, wlen - woff);
                if (n > 0) {
                    woff += (size_t)n;
                    progress = 1;
                    pend = P_NONE;
                } else if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) {
                    pend = (libssh2_session_block_directions(c->s) &
                            LIBSSH2_SESSION_BLOCK_OUTBOUND) ? P_WRITE : P_NONE;
                } else {
                    die_ssh(c->s, "write");
                }
            } else if (!eof_sent) {
                int r = libssh2_channel_send_eof(c->ch);
                if (r == 0) {
                    eof_sent = 1;
                    progress = 1;
                    pend = P_NONE;
                } else if (r == LIBSSH2_ERROR_EAGAIN) {
                    pend = (libssh2_session_block_directions(c->s) &
                            LIBSSH2_SESSION_BLOCK_OUTBOUND) ? P_EOF : P_NONE;
                } else {
                    die_ssh(c->s, "send_eof");
                }
            }
        }
        if ((pend == P_NONE || pend == P_READ) && !eof_read) {
            n = libssh2_channel_read(c->ch, (char *)rbuf, BENCH_CHUNK);
            if (n > 0) {
                bench_chk_feed(chk, rbuf, (size_t)n);
                progress = 1;
                pend = P_NONE;
            } else if (n == 0 || n == LIBSSH2_ERROR_EAGAIN) {
                if (n == 0 && libssh2_channel_eof(c->ch)) {
                    eof_read = 1;
                    progress = 1;
                }
                pend = (n == LIBSSH2_ERROR_EAGAIN && (libssh2_session_block_directions(c->s) &
                                                      LIBSSH2_SESSION_BLOCK_OUTBOUND))
                           ? P_READ
                           : P_NONE;
            } else {
                die_ssh(c->s, "read");
            }
        }
        if (!progress) {
            /* A send is pending: only the socket becoming writable helps.
             * Otherwise wait for data or a window adjust. */
            struct pollfd pfd = {.fd = c->sock,
                                 .events = pend != P_NONE ? POLLOUT : POLLIN};
            if (poll(&pfd, 1, 10000) == 0) {
                bench_die(NAME, "round trip: no progress for 10 s");
            }
        }
    }
}

static void run_transfer(const struct bench_args *a)
{
    char cmd[4200], algs[512];
    unsigned char *buf = malloc(BENCH_CHUNK), *wbuf = malloc(BENCH_CHUNK);
    struct bench_hash hash = {{0}, 0};
    struct bench_src src;
    struct bench_chk chk;
    struct conn c;
    size_t n;
    double t0;

    if (buf == NULL || wbuf == NULL) {
        bench_die(NAME, "out of memory");
    }
    if (strcmp(a->mode, "upload") == 0) {
        bench_src_open(&src, a->file);
        t0 = bench_now();
        open_channel(a, BENCH_UPLOAD_CMD, &c);
        while ((n = bench_src_next(&src, wbuf, BENCH_CHUNK)) > 0) {
            write_all(&c, wbuf, n);
        }
        if (libssh2_channel_send_eof(c.ch) != 0) {
            die_ssh(c.s, "send_eof");
        }
        read_all(&c, buf, feed_hash, &hash);
        algs_of(c.s, algs, sizeof(algs));
        finish(&c);
        bench_report(a, src.done, bench_now() - t0, algs, bench_hash_hex(&hash));
        bench_src_close(&src);
    } else if (strcmp(a->mode, "download") == 0) {
        bench_download_cmd(a->file, cmd, sizeof(cmd));
        bench_chk_open(&chk, a->file);
        t0 = bench_now();
        open_channel(a, cmd, &c);
        if (libssh2_channel_send_eof(c.ch) != 0) {
            die_ssh(c.s, "send_eof");
        }
        read_all(&c, buf, feed_chk, &chk);
        bench_chk_finish(&chk);
        algs_of(c.s, algs, sizeof(algs));
        finish(&c);
        bench_report(a, chk.done, bench_now() - t0, algs, NULL);
        bench_chk_close(&chk);
    } else {
        bench_src_open(&src, a->file);
        bench_chk_open(&chk, a->file);
        t0 = bench_now();
        open_channel(a, BENCH_ROUNDTRIP_CMD, &c);
        roundtrip(&c, &src, &chk, wbuf, buf);
        bench_chk_finish(&chk);
        algs_of(c.s, algs, sizeof(algs));
        finish(&c);
        bench_report(a, chk.done, bench_now() - t0, algs, NULL);
        bench_chk_close(&chk);
        bench_src_close(&src);
    }
    free(buf);
    free(wbuf);
}

static void run_handshakes(const struct bench_args *a)
{
    double *ms = calloc((size_t)a->count, sizeof(double));
    unsigned char *buf = malloc(BENCH_CHUNK);
    char algs[512] = "";
    struct conn c;
    int i;

    if (ms == NULL || buf == NULL) {
        bench_die(NAME, "out of memory");
    }
    for (i = 0; i < a->count; i++) {
        double t0 = bench_now();

        open_channel(a, BENCH_HANDSHAKE_CMD, &c);
        if (libssh2_channel_send_eof(c.ch) != 0) {
            die_ssh(c.s, "send_eof");
        }
        read_all(&c, buf, discard, NULL);
        algs_of(c.s, algs, sizeof(algs));
        finish(&c);
        ms[i] = (bench_now() - t0) * 1000.0;
    }
    bench_report_handshake(ms, a->count, algs);
    free(ms);
    free(buf);
}

int main(int argc, char **argv)
{
    struct bench_args a;

    bench_parse_args(argc, argv, &a);
    if (libssh2_init(0) != 0) {
        bench_die(NAME, "libssh2_init failed");
    }
    if (strcmp(a.mode, "handshake") == 0) {
        run_handshakes(&a);
    } else {
        run_transfer(&a);
    }
    libssh2_exit();
    return 0;
}
