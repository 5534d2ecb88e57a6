/*
 * bench/client_libssh.c -- the benchmark client for libssh (usage in
 * bench_common.h), with libssh's normal API: ssh_options_set (host, port,
 * user, known_hosts file, algorithms; ~/.ssh/config not read),
 * ssh_connect, ssh_session_is_known_server, ssh_pki_import_privkey_file +
 * ssh_userauth_publickey, a session channel and exec.
 *
 * Upload and download use blocking mode. The round trip cannot use two
 * threads (a libssh session is not to be used from two threads at once),
 * and one thread cannot simply alternate blocking writes and reads: a
 * blocking ssh_channel_write that waits for window space keeps buffering
 * the echoed data without giving the server more window, so `cat` and the
 * client would stall. So the round trip stays single-threaded and never
 * waits inside libssh: it writes only as much as ssh_channel_window_size()
 * allows, takes what has arrived with ssh_channel_read_nonblocking(), and
 * when neither made progress poll()s the session's socket for input.
 *
 * Owns: its libssh session. Must never: skip the host key check.
 */
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>

#include "bench_common.h"

static const char *NAME = "client_libssh";

struct conn {
    ssh_session s;
    ssh_channel ch;
};

static void die_ssh(ssh_session s, const char *what)
{
    bench_die(NAME, "%s: %s", what, ssh_get_error(s));
}

static void opt(ssh_session s, enum ssh_options_e o, const void *value, const char *what)
{
    if (value != NULL && ssh_options_set(s, o, value) != 0) {
        die_ssh(s, what);
    }
}

static void open_channel(const struct bench_args *a, const char *cmd, struct conn *c)
{
    ssh_key key = NULL;
    bool no = false;
    int port = a->port;

    c->s = ssh_new();
    if (c->s == NULL) {
        bench_die(NAME, "ssh_new failed");
    }
    opt(c->s, SSH_OPTIONS_HOST, a->host, "host");
    opt(c->s, SSH_OPTIONS_PORT, &port, "port");
    opt(c->s, SSH_OPTIONS_USER, a->user, "user");
    opt(c->s, SSH_OPTIONS_PROCESS_CONFIG, &no, "process_config");
    if (a->nodelay) {
        int one = 1;
        opt(c->s, SSH_OPTIONS_NODELAY, &one, "nodelay"); /* default: off */
    }
    opt(c->s, SSH_OPTIONS_KNOWNHOSTS, a->known_hosts, "knownhosts");
    opt(c->s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null", "global_knownhosts");
    opt(c->s, SSH_OPTIONS_KEY_EXCHANGE, a->kex, "kex");
    opt(c->s, SSH_OPTIONS_HOSTKEYS, a->hostkey, "hostkeys");
    opt(c->s, SSH_OPTIONS_CIPHERS_C_S, a->cipher, "ciphers");
    opt(c->s, SSH_OPTIONS_CIPHERS_S_C, a->cipher, "ciphers");
    opt(c->s, SSH_OPTIONS_HMAC_C_S, a->mac, "macs");
    opt(c->s, SSH_OPTIONS_HMAC_S_C, a->mac, "macs");
    if (ssh_connect(c->s) != SSH_OK) {
        die_ssh(c->s, "connect");
    }
    if (ssh_session_is_known_server(c->s) != SSH_KNOWN_HOSTS_OK) {
        bench_die(NAME, "host key not accepted by %s", a->known_hosts);
    }
    if (ssh_pki_import_privkey_file(a->key, NULL, NULL, NULL, &key) != SSH_OK) {
        bench_die(NAME, "cannot read key %s", a->key);
    }
    if (ssh_userauth_publickey(c->s, NULL, key) != SSH_AUTH_SUCCESS) {
        die_ssh(c->s, "publickey auth");
    }
    ssh_key_free(key);
    c->ch = ssh_channel_new(c->s);
    if (c->ch == NULL || ssh_channel_open_session(c->ch) != SSH_OK) {
        die_ssh(c->s, "channel_open_session");
    }
    if (ssh_channel_request_exec(c->ch, cmd) != SSH_OK) {
        die_ssh(c->s, "exec");
    }
}

static void algs_of(ssh_session s, char *buf, size_t len)
{
    const char *kex = ssh_get_kex_algo(s);
    const char *cipher = ssh_get_cipher_out(s);
    const char *mac = ssh_get_hmac_out(s);
    const char *hk = NULL;
    ssh_key key = NULL;

    if (ssh_get_server_publickey(s, &key) == SSH_OK) {
        hk = ssh_key_type_to_char(ssh_key_type(key));
    }
    snprintf(buf, len, "kex=%s hostkey=%s cipher=%s mac=%s", kex ? kex : "?", hk ? hk : "?",
             cipher ? cipher : "?", mac ? mac : "?");
    ssh_key_free(key);
}

/* Wait for the exit status (libssh waits for it or the close), require 0,
 * close, disconnect, free. */
static void finish(struct conn *c)
{
    if (ssh_channel_get_exit_status(c->ch) != 0) {
        bench_die(NAME, "remote command did not exit with status 0");
    }
    ssh_channel_close(c->ch);
    ssh_channel_free(c->ch);
    ssh_disconnect(c->s);
    ssh_free(c->s);
}

static void write_all(struct conn *c, const unsigned char *buf, size_t len)
{
    if (ssh_channel_write(c->ch, buf, (uint32_t)len) != (int)len) {
        die_ssh(c->s, "write");
    }
}

static void read_all(struct conn *c, unsigned char *buf,
                     void (*fn)(void *ctx, const void *p, size_t n), void *ctx)
{
    int n;

    while ((n = ssh_channel_read(c->ch, buf, BENCH_CHUNK, 0)) > 0) {
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

/* The round trip without ever waiting inside libssh (top of the file). */
static void roundtrip(struct conn *c, struct bench_src *src, struct bench_chk *chk,
                      unsigned char *wbuf, unsigned char *rbuf)
{
    size_t woff = 0, wlen = 0;
    bool eof_sent = false, eof_read = false;

    while (!eof_read) {
        bool progress = false;
        uint32_t win;
        int n;

        if (woff == wlen && !eof_sent) {
            wlen = bench_src_next(src, wbuf, BENCH_CHUNK);
            woff = 0;
            if (wlen == 0) {
                if (ssh_channel_send_eof(c->ch) != SSH_OK) {
                    die_ssh(c->s, "send_eof");
                }
                eof_sent = true;
            }
        }
        win = ssh_channel_window_size(c->ch);
        if (woff < wlen && win > 0) {
            size_t k = wlen - woff < win ? wlen - woff : win;
            write_all(c, wbuf + woff, k);
            woff += k;
            progress = true;
        }
        n = ssh_channel_read_nonblocking(c->ch, rbuf, BENCH_CHUNK, 0);
        if (n > 0) {
            bench_chk_feed(chk, rbuf, (size_t)n);
            progress = true;
        } else if (n == SSH_EOF || (n == 0 && ssh_channel_is_eof(c->ch))) {
            eof_read = true;
        } else if (n < 0) {
            die_ssh(c->s, "read");
        }
        if (!progress && !eof_read) {
            struct pollfd pfd = {.fd = ssh_get_fd(c->s), .events = POLLIN};
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
        if (ssh_channel_send_eof(c.ch) != SSH_OK) {
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
        if (ssh_channel_send_eof(c.ch) != SSH_OK) {
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
        if (ssh_channel_send_eof(c.ch) != SSH_OK) {
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
    if (ssh_init() != SSH_OK) {
        bench_die(NAME, "ssh_init failed");
    }
    if (strcmp(a.mode, "handshake") == 0) {
        run_handshakes(&a);
    } else {
        run_transfer(&a);
    }
    ssh_finalize();
    return 0;
}
