/*
 * check/check_core.c -- the protocol core (transport, key exchange, auth,
 * channel) driven in memory through the public API by a scripted fake
 * server (check/testlib/fakeserver.c): the well-behaved paths, windows,
 * requests, exit status, re-keys started by either side, and a server that
 * stops reading while a writer is blocked (the reader thread must go on).
 *
 * The hostile cases (faults, truncations, strict KEX, timeouts) are in
 * check_core_faults.c.
 *
 * Must never: hang (every wait is bounded: ConnectTimeout 5, the fake
 * server's own deadline, bounded closes), or need a network or a real server.
 */
#include "coretest.h"
#include "fakeserver.h"

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"

#define CLOSE_MS 3000


/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i * 7 + i / 251 + seed);
    }
}

static bool is_pattern(const uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)(i * 7 + i / 251 + seed)) {
            return false;
        }
    }
    return true;
}

static sshflow_flow *connect_ok(struct fs *fs, const struct fs_client *o)
{
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, o, &err);
    ck_assert_msg(f != NULL, "client_of_flow failed: %s: %s (server: %s)",
                  sshflow_err_kind_name(err.kind), err.detail, fs_why(fs));
    return f;
}

/* Server finished its script and saw no protocol violation from the client. */
static void server_ok(struct fs *fs)
{
    int r = fs_finish(fs);
    ck_assert_msg(r == 0, "fake server failed: %s", fs_why(fs));
    ck_assert_msg(fs_seen(fs)->violation[0] == '\0', "client violated the protocol: %s",
                  fs_seen(fs)->violation);
}

/* Close the client, which must end cleanly (the server closes the channel). */
static void close_ok(sshflow_flow *f)
{
    sshflow_error err;
    int r = sshflow_close_timeout(f, CLOSE_MS, &err);
    ck_assert_msg(r == 0, "close: %s: %s", sshflow_err_kind_name(r), err.detail);
}

/* Read stdout to its end (must be a clean end) and return it. */
static uint8_t *read_to_eof(sshflow_flow *f, size_t *len)
{
    sshflow_error err;
    uint8_t *out = NULL;
    int r = fs_client_read_all(f, &out, len, 64 * 1024 * 1024, &err);
    ck_assert_msg(r == 0, "read: %s: %s", sshflow_err_kind_name(r), err.detail);
    return out;
}

/* ------------------------------------------------------------------------ */
/* A whole session, with every cipher and MAC                               */
/* ------------------------------------------------------------------------ */

#define UP_LEN (100 * 1024 + 17)  /* client to server */
#define DOWN_LEN (150 * 1024 + 3) /* server to client */

static int session_both_ways(struct fs *fs, void *user)
{
    uint8_t *down = malloc(DOWN_LEN);
    int r = -1;
    if (down == NULL) {
        return fs_fail(fs, "out of memory");
    }
    pattern(down, DOWN_LEN, 2);
    if (fs_read_until_eof(fs) == 0 && fs_data(fs, down, DOWN_LEN) == 0) {
        r = fs_end_session(fs, 3);
    }
    free(down);
    return r;
}

START_TEST(test_core_session_every_suite)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.ciphers = ct_suites[_i].cipher;
    sc.macs = ct_suites[_i].mac;
    sc.session = session_both_ways;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);

    char desc[512];
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    ck_assert_msg(strstr(desc, ct_suites[_i].cipher) != NULL, "describe: %s", desc);
    ck_assert_msg(strstr(desc, "strict-kex") != NULL, "describe: %s", desc);
    ck_assert_uint_eq(sshflow_kex_count(f), 1);

    uint8_t *up = malloc(UP_LEN);
    ck_assert_ptr_nonnull(up);
    pattern(up, UP_LEN, 1);
    sshflow_error err;
    ck_assert_int_eq(sshflow_write(f, up, UP_LEN, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    uint8_t *down = read_to_eof(f, &n);
    ck_assert_uint_eq(n, DOWN_LEN);
    ck_assert(is_pattern(down, n, 2));
    close_ok(f);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 3);
    sshflow_free(f);

    server_ok(fs);
    const struct fs_seen *s = fs_seen(fs);
    size_t got = 0;
    const uint8_t *data = fs_client_data(fs, &got);
    ck_assert_uint_eq(got, UP_LEN);
    ck_assert(is_pattern(data, got, 1));
    ck_assert_str_eq(s->cipher, ct_suites[_i].cipher);
    ck_assert_str_eq(s->request, "exec");
    ck_assert_str_eq(s->command, FS_COMMAND);
    ck_assert_str_eq(s->user, FS_USER);
    ck_assert(s->auth_sig_ok);
    ck_assert(s->client_strict);
    ck_assert(s->client_ext_info);
    ck_assert(s->client_kexinit_first);
    ck_assert_uint_eq(s->kex_done, 1);
    ck_assert_uint_eq(s->userauth_requests, 2); /* "none" first, then the key */
    ck_assert(s->eof && s->close);
    ck_assert_msg(strncmp(s->client_version, "SSH-2.0-sshflow", 15) == 0, "%s", s->client_version);
    free(up);
    free(down);
    fs_free(fs);
}
END_TEST

/* The same handshake without strict KEX (sequence numbers never reset). */
START_TEST(test_core_session_no_strict)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.no_strict = true;
    sc.ciphers = ct_suites[_i].cipher;
    sc.macs = ct_suites[_i].mac;
    sc.session = session_both_ways;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    char desc[512];
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    ck_assert_msg(strstr(desc, "strict-kex") == NULL, "describe: %s", desc);
    uint8_t *up = malloc(UP_LEN);
    ck_assert_ptr_nonnull(up);
    pattern(up, UP_LEN, 1);
    sshflow_error err;
    ck_assert_int_eq(sshflow_write(f, up, UP_LEN, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    uint8_t *down = read_to_eof(f, &n);
    ck_assert_uint_eq(n, DOWN_LEN);
    ck_assert(is_pattern(down, n, 2));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    free(up);
    free(down);
    fs_free(fs);
}
END_TEST

/* Host key types: ed25519, ECDSA P-256, RSA (rsa-sha2-512). */
START_TEST(test_core_hostkey_types)
{
    const char *paths[] = {ct_keys.host, ct_keys.ecdsa, ct_keys.rsa};
    const char *fps[] = {ct_keys.host_fp, ct_keys.ecdsa_fp, ct_keys.rsa_fp};
    const char *algs[] = {"hostkey=ssh-ed25519", "hostkey=ecdsa-sha2-nistp256",
                          "hostkey=rsa-sha2-512"};
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hostkey = paths[_i];
    o.hostauth = fps[_i];
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    char desc[512];
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    ck_assert_msg(strstr(desc, algs[_i]) != NULL, "describe: %s", desc);
    sshflow_error err;
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 1;
    free(read_to_eof(f, &n));
    ck_assert_uint_eq(n, 0);
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* stderr, exit status, exit signal, no status                              */
/* ------------------------------------------------------------------------ */

static int session_stderr(struct fs *fs, void *user)
{
    if (fs_data(fs, "out1-", 5) != 0 || fs_ext(fs, 1, "err1-", 5) != 0 ||
        fs_data(fs, "out2", 4) != 0 || fs_ext(fs, 1, "err2", 4) != 0) {
        return -1;
    }
    return fs_end_session(fs, 0);
}

START_TEST(test_core_stderr_apart)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_stderr;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    uint8_t *out = read_to_eof(f, &n);
    ck_assert_uint_eq(n, 9);
    ck_assert_mem_eq(out, "out1-out2", 9);
    char err_text[64];
    size_t en = 0;
    ssize_t k;
    sshflow_error err;
    while ((k = sshflow_read_stderr(f, err_text + en, sizeof(err_text) - en, &err)) > 0) {
        en += (size_t)k;
    }
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(en, 9);
    ck_assert_mem_eq(err_text, "err1-err2", 9);
    ck_assert_uint_eq(sshflow_stderr_dropped(f), 0);
    close_ok(f);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 0);
    sshflow_free(f);
    server_ok(fs);
    free(out);
    fs_free(fs);
}
END_TEST

#define STDERR_SENT 1500

static int session_stderr_flood(struct fs *fs, void *user)
{
    uint8_t buf[STDERR_SENT];
    pattern(buf, sizeof(buf), 9);
    if (fs_ext(fs, 1, buf, sizeof(buf)) != 0 || fs_data(fs, "done", 4) != 0) {
        return -1;
    }
    return fs_end_session(fs, 0);
}

/* MaxStderrBuffer: the oldest bytes are kept, the rest dropped and counted;
 * stdout is not stalled by an unread stderr. */
START_TEST(test_core_stderr_buffer_full)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    o.max_stderr = "1K";
    sc.session = session_stderr_flood;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    uint8_t *out = read_to_eof(f, &n);
    ck_assert_uint_eq(n, 4);
    ck_assert_mem_eq(out, "done", 4);
    uint8_t buf[STDERR_SENT];
    size_t en = 0;
    ssize_t k;
    sshflow_error err;
    while ((k = sshflow_read_stderr(f, buf + en, sizeof(buf) - en, &err)) > 0) {
        en += (size_t)k;
    }
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(en, 1024);
    ck_assert(is_pattern(buf, en, 9));
    ck_assert_uint_eq(sshflow_stderr_dropped(f), STDERR_SENT - 1024);
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    free(out);
    fs_free(fs);
}
END_TEST

static int session_signal(struct fs *fs, void *user)
{
    if (fs_data(fs, "partial", 7) != 0 ||
        fs_exit_signal(fs, "KILL", true, "killed by the test") != 0) {
        return -1;
    }
    return fs_end_session(fs, -1);
}

START_TEST(test_core_exit_signal)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_signal;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    free(read_to_eof(f, &n));
    ck_assert_uint_eq(n, 7);
    close_ok(f);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_SIGNAL);
    ck_assert_str_eq(ex.signal, "KILL");
    ck_assert(ex.core_dumped);
    ck_assert_str_eq(ex.message, "killed by the test");
    sshflow_free(f);
    server_ok(fs);
    fs_free(fs);
}
END_TEST

struct exit_case {
    int status; /* < 0: none sent */
};

static int session_exit(struct fs *fs, void *user)
{
    const struct exit_case *e = user;
    return fs_end_session(fs, e->status);
}

/* No exit-status at all is EXIT_NONE, distinct from status 0. */
START_TEST(test_core_exit_none_vs_zero)
{
    struct exit_case e = {_i == 0 ? -1 : 0};
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_exit;
    sc.user = &e;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    if (e.status < 0) {
        ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_NONE);
    } else {
        ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
        ck_assert_uint_eq(ex.status, 0);
    }
    sshflow_free(f);
    server_ok(fs);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Authentication                                                           */
/* ------------------------------------------------------------------------ */

START_TEST(test_core_auth_password)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.password = "s3cret";
    sc.banner = "Welcome to the fake server\r\n";
    o.no_key = true;
    o.password = "s3cret";
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    sshflow_error err;
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    ck_assert_str_eq(fs_seen(fs)->auth_method, "password");
    ck_assert_uint_eq(fs_seen(fs)->userauth_requests, 2); /* "none", password */
    fs_free(fs);
}
END_TEST

/* A refused key, then the password: credentials are tried in order. */
START_TEST(test_core_auth_key_then_password)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.refuse_publickey = true;
    sc.password = "pw";
    o.password = "pw";
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    sshflow_error err;
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    ck_assert_uint_eq(fs_seen(fs)->userauth_requests, 3); /* "none", key, password */
    ck_assert(fs_seen(fs)->auth_sig_ok);
    ck_assert_str_eq(fs_seen(fs)->auth_method, "password");
    fs_free(fs);
}
END_TEST

START_TEST(test_core_auth_refused)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.auth_refuse = true;
    o.password = "wrong";
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_ptr_null(f);
    ck_assert_msg(err.kind == SSHFLOW_ERR_AUTH, "%s: %s", sshflow_err_kind_name(err.kind),
                  err.detail);
    ck_assert_msg(strstr(err.detail, "publickey,password") != NULL, "%s", err.detail);
    ck_assert_msg(strstr(err.detail, FS_USER) != NULL, "%s", err.detail);
    (void)fs_finish(fs);
    ck_assert_uint_eq(fs_seen(fs)->userauth_requests, 3); /* "none", key, password */
    ck_assert(fs_seen(fs)->auth_sig_ok); /* the signature was fine, only refused */
    ck_assert(fs_seen(fs)->disconnect);
    ck_assert_uint_eq(fs_seen(fs)->disconnect_reason, 14); /* NO_MORE_AUTH_METHODS_AVAILABLE */
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Channel open and request refused                                         */
/* ------------------------------------------------------------------------ */

START_TEST(test_core_open_refused)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.open_refuse = true;
    sc.open_fail_code = 4; /* SSH_OPEN_RESOURCE_SHORTAGE */
    sc.open_fail_text = "no more sessions today";
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_ptr_null(f);
    ck_assert_msg(err.kind == SSHFLOW_ERR_CHANNEL, "%s: %s", sshflow_err_kind_name(err.kind),
                  err.detail);
    ck_assert_msg(strstr(err.detail, "no more sessions today") != NULL, "%s", err.detail);
    ck_assert_msg(strstr(err.detail, "4") != NULL, "%s", err.detail);
    ck_assert_int_eq(fs_finish(fs), 0);
    ck_assert_uint_eq(fs_seen(fs)->channel_opens, 1);
    fs_free(fs);
}
END_TEST

START_TEST(test_core_request_refused)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.request_refuse = true;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_ptr_null(f);
    ck_assert_msg(err.kind == SSHFLOW_ERR_CHANNEL, "%s: %s", sshflow_err_kind_name(err.kind),
                  err.detail);
    ck_assert_msg(strstr(err.detail, "exec") != NULL, "%s", err.detail);
    ck_assert_msg(strstr(err.detail, FS_COMMAND) != NULL, "%s", err.detail);
    ck_assert_int_eq(fs_finish(fs), 0);
    ck_assert_str_eq(fs_seen(fs)->request, "exec");
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Windows                                                                  */
/* ------------------------------------------------------------------------ */

#define SMALL_WINDOW 1000
#define SMALL_MAXPKT 256
#define WINDOW_SENT 5000

/* Grant SMALL_WINDOW at a time, only when all of it was used. */
static int session_small_window(struct fs *fs, void *user)
{
    uint8_t t = 0;
    struct sf_buf m;
    while (!fs_seen(fs)->eof) {
        if (fs_recv(fs, &t, &m) != 0) {
            return -1;
        }
        if (fs_server_window(fs) == 0 && fs_window_adjust(fs, SMALL_WINDOW) != 0) {
            return -1;
        }
    }
    return fs_end_session(fs, 0);
}

/* The client never sends more than the window we granted, nor more than our
 * max packet in one message, and waits for our WINDOW_ADJUST. */
START_TEST(test_core_client_respects_window)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.window = SMALL_WINDOW;
    sc.maxpkt = SMALL_MAXPKT;
    sc.no_auto_window = true;
    sc.session = session_small_window;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    uint8_t buf[WINDOW_SENT];
    pattern(buf, sizeof(buf), 5);
    sshflow_error err;
    ck_assert_int_eq(sshflow_write(f, buf, sizeof(buf), &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    size_t got = 0;
    const uint8_t *data = fs_client_data(fs, &got);
    ck_assert_uint_eq(got, WINDOW_SENT);
    ck_assert(is_pattern(data, got, 5));
    fs_free(fs);
}
END_TEST

#define BIG_DOWN (3 * 1024 * 1024 + 5) /* more than the client's 2 MiB window */

static int session_big_down(struct fs *fs, void *user)
{
    uint8_t *p = malloc(BIG_DOWN);
    int r = -1;
    if (p == NULL) {
        return fs_fail(fs, "out of memory");
    }
    pattern(p, BIG_DOWN, 4);
    if (fs_data(fs, p, BIG_DOWN) == 0) {
        r = fs_end_session(fs, 0);
    }
    free(p);
    return r;
}

/* The client re-opens its window as the application reads. */
START_TEST(test_core_client_reopens_window)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_big_down;
    sc.timeout_ms = 15000;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    uint8_t *d = read_to_eof(f, &n);
    ck_assert_uint_eq(n, BIG_DOWN);
    ck_assert(is_pattern(d, n, 4));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    ck_assert_uint_eq(fs_seen(fs)->client_window, 2 * 1024 * 1024);
    ck_assert_uint_gt(fs_seen(fs)->window_adjusts, 0);
    free(d);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Requests the client must refuse, messages it must not know               */
/* ------------------------------------------------------------------------ */

static int session_keepalives(struct fs *fs, void *user)
{
    uint8_t t = 0;
    struct sf_buf m;
    if (fs_global_request(fs, "keepalive@openssh.com", false) != 0 ||
        fs_global_request(fs, "keepalive@openssh.com", true) != 0 ||
        fs_chan_request(fs, "keepalive@openssh.com", false) != 0 ||
        fs_chan_request(fs, "keepalive@openssh.com", true) != 0) {
        return -1;
    }
    /* Replies come in order: the global one, then the channel one. */
    while (fs_seen(fs)->channel_failures == 0) {
        if (fs_recv(fs, &t, &m) != 0) {
            return -1;
        }
        if (t != SSH_MSG_REQUEST_FAILURE && t != SSH_MSG_CHANNEL_FAILURE &&
            t != SSH_MSG_CHANNEL_WINDOW_ADJUST) {
            return fs_fail(fs, "unexpected message %u after the keepalives", t);
        }
    }
    return fs_end_session(fs, 0);
}

START_TEST(test_core_keepalive_requests)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_keepalives;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    const struct fs_seen *s = fs_seen(fs);
    ck_assert_uint_eq(s->request_failures, 1); /* only the one with want_reply */
    ck_assert_uint_eq(s->request_successes, 0);
    ck_assert_uint_eq(s->channel_failures, 1);
    ck_assert_uint_eq(s->last_failure_chan, fs_server_chan(fs));
    fs_free(fs);
}
END_TEST

/*
 * paramiko starts the command before it replies to the exec request: a quick
 * command's output, exit status, EOF and CLOSE can all arrive before the
 * reply (or instead of it, if the server then drops the reply for the closed
 * channel). The command evidently ran: that is not a refusal.
 */
static enum fs_action hook_close_before_reply(struct fs *fs, enum fs_point at, void *user)
{
    (void)user;
    if (at != FS_AT_REQUEST) {
        return FS_GO;
    }
    if (fs_data(fs, "quick\n", 6) != 0 || fs_exit_status(fs, 3) != 0 || fs_eof(fs) != 0 ||
        fs_close(fs) != 0) {
        return FS_DROP;
    }
    return FS_SKIP; /* and no reply at all */
}

/* The session after that: wait for the client's CLOSE. */
static int session_await_close(struct fs *fs, void *user)
{
    uint8_t t = 0;
    struct sf_buf m;
    (void)user;
    while (fs_recv(fs, &t, &m) == 0) {
        if (t == SSH_MSG_CHANNEL_CLOSE) {
            return 0;
        }
    }
    return fs_fail(fs, "no CLOSE from the client");
}

START_TEST(test_core_exec_closed_before_reply)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hook = hook_close_before_reply;
    sc.session = session_await_close;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    uint8_t *out = read_to_eof(f, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert_mem_eq(out, "quick\n", 6);
    free(out);
    close_ok(f);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 3);
    sshflow_free(f);
    server_ok(fs);
    fs_free(fs);
}
END_TEST

/* A global request during authentication (OpenSSH sends hostkeys-00 there). */
static enum fs_action hook_global_at_open(struct fs *fs, enum fs_point at, void *user)
{
    if (at == FS_AT_OPEN && fs_global_request(fs, "hostkeys-00@openssh.com", false) != 0) {
        return FS_DROP;
    }
    if (at == FS_AT_AUTH && fs_global_request(fs, "no-such-request@example.com", true) != 0) {
        return FS_DROP;
    }
    return FS_GO;
}

START_TEST(test_core_global_request_in_handshake)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.hook = hook_global_at_open;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    sshflow_error err;
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    ck_assert_uint_eq(fs_seen(fs)->request_failures, 2); /* one per auth request: "none" and the key */
    fs_free(fs);
}
END_TEST

/* Message numbers the client does not know: UNIMPLEMENTED with the
 * sequence number of the packet (RFC 4253 s11.4), which strict KEX reset
 * after NEWKEYS. */
static const uint8_t unknown_types[] = {8, 15, 19, 22, 29, 128, 192, 255};
/* Unassigned numbers inside the connection protocol's range (RFC 4250 s4.1.2). */
static const uint8_t unassigned_conn_types[] = {70, 89, 101, 127};

struct unimpl_case {
    uint8_t type;
    uint32_t seq; /* filled by the session */
};

static int session_unknown(struct fs *fs, void *user)
{
    struct unimpl_case *u = user;
    uint8_t msg[4] = {u->type, 1, 2, 3};
    uint8_t t = 0;
    struct sf_buf m;
    u->seq = fs_tx_seq(fs);
    if (fs_send(fs, msg, sizeof(msg)) != 0 ||
        fs_global_request(fs, "sync@example.com", true) != 0) {
        return -1;
    }
    while (fs_seen(fs)->request_failures == 0) {
        if (fs_recv(fs, &t, &m) != 0) {
            return -1;
        }
    }
    return fs_end_session(fs, 0);
}

static void run_unknown(uint8_t type)
{
    struct unimpl_case u = {type, 0};
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.session = session_unknown;
    sc.user = &u;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_msg(f != NULL, "message %u: %s: %s", type, sshflow_err_kind_name(err.kind),
                  err.detail);
    size_t n = 0;
    uint8_t *d = NULL;
    int r = fs_client_read_all(f, &d, &n, 1024, &err);
    free(d);
    ck_assert_msg(r == 0, "message %u killed the connection: %s: %s", type,
                  sshflow_err_kind_name(r), err.detail);
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    const struct fs_seen *s = fs_seen(fs);
    ck_assert_msg(s->unimplemented == 1, "message %u: %u UNIMPLEMENTED", type, s->unimplemented);
    ck_assert_msg(s->unimpl_seq[0] == u.seq, "message %u: UNIMPLEMENTED for seq %u, sent as %u",
                  type, s->unimpl_seq[0], u.seq);
    fs_free(fs);
}

START_TEST(test_core_unimplemented_seq)
{
    run_unknown(unknown_types[_i]);
}
END_TEST

START_TEST(test_core_unimplemented_connection_range)
{
    run_unknown(unassigned_conn_types[_i]);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Re-keying                                                                */
/* ------------------------------------------------------------------------ */

#define REKEY_PART (64 * 1024 + 11)
#define REKEY_UP (128 * 1024 + 1)

/* Stream, re-key in the middle (our side starts it), stream again, while
 * the client writes too. */
static int session_server_rekey(struct fs *fs, void *user)
{
    uint8_t *p = malloc(2 * REKEY_PART);
    int r = -1;
    if (p == NULL) {
        return fs_fail(fs, "out of memory");
    }
    pattern(p, 2 * REKEY_PART, 6);
    if (fs_data(fs, p, REKEY_PART) == 0 && fs_rekey(fs) == 0 &&
        fs_data(fs, p + REKEY_PART, REKEY_PART) == 0 && fs_rekey(fs) == 0 &&
        fs_read_until_eof(fs) == 0) {
        r = fs_end_session(fs, 0);
    }
    free(p);
    return r;
}

START_TEST(test_core_rekey_by_server)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.ciphers = ct_suites[_i].cipher;
    sc.macs = ct_suites[_i].mac;
    sc.session = session_server_rekey;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    uint8_t *up = malloc(REKEY_UP);
    ck_assert_ptr_nonnull(up);
    pattern(up, REKEY_UP, 7);
    sshflow_error err;
    ck_assert_int_eq(sshflow_write(f, up, REKEY_UP, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    uint8_t *d = read_to_eof(f, &n);
    ck_assert_uint_eq(n, 2 * REKEY_PART);
    ck_assert(is_pattern(d, n, 6));
    close_ok(f);
    ck_assert_uint_eq(sshflow_kex_count(f), 3);
    sshflow_free(f);
    server_ok(fs);
    ck_assert_uint_eq(fs_seen(fs)->kex_done, 3);
    ck_assert_uint_eq(fs_seen(fs)->kexinits, 3);
    size_t got = 0;
    const uint8_t *data = fs_client_data(fs, &got);
    ck_assert_uint_eq(got, REKEY_UP);
    ck_assert(is_pattern(data, got, 7));
    free(up);
    free(d);
    fs_free(fs);
}
END_TEST

#define CREKEY_LEN (200 * 1024 + 9)

static int session_echo_after_eof(struct fs *fs, void *user)
{
    if (fs_read_until_eof(fs) != 0) {
        return -1;
    }
    size_t n = 0;
    const uint8_t *d = fs_client_data(fs, &n);
    uint8_t *copy = malloc(n + 1);
    int r = -1;
    if (copy == NULL) {
        return fs_fail(fs, "out of memory");
    }
    memcpy(copy, d, n);
    if (fs_data(fs, copy, n) == 0) {
        r = fs_end_session(fs, 0);
    }
    free(copy);
    return r;
}

/* RekeyLimit: the client starts re-keys itself, both while sending and receiving. */
START_TEST(test_core_rekey_by_client)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    o.rekey = "32K";
    sc.session = session_echo_after_eof;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    uint8_t *up = malloc(CREKEY_LEN);
    ck_assert_ptr_nonnull(up);
    pattern(up, CREKEY_LEN, 8);
    sshflow_error err;
    ck_assert_int_eq(sshflow_write(f, up, CREKEY_LEN, &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    uint8_t *d = read_to_eof(f, &n);
    ck_assert_uint_eq(n, CREKEY_LEN);
    ck_assert(is_pattern(d, n, 8));
    close_ok(f);
    unsigned kc = sshflow_kex_count(f);
    /* At least one started by the client (how many depends on when its
     * reader sees our NEWKEYS: it starts no new one before). */
    ck_assert_msg(kc >= 2, "only %u key exchanges", kc);
    sshflow_free(f);
    server_ok(fs);
    /* The last exchange may have ended on our side only as the client left. */
    ck_assert_uint_ge(fs_seen(fs)->kex_done, kc);
    ck_assert_uint_le(fs_seen(fs)->kex_done, kc + 1);
    free(up);
    free(d);
    fs_free(fs);
}
END_TEST

#define CLOSE_REKEY_DATA 4096

/* In a re-key the client started: close the channel before our KEXINIT
 * (legal: we have not sent it), then wait until the test closed. No EOF:
 * the test's read then ends only once the client has seen the CLOSE. */
static enum fs_action hook_close_in_rekey(struct fs *fs, enum fs_point at, void *user)
{
    if (at != FS_AT_REKEY) {
        return FS_GO;
    }
    uint8_t t = 0;
    struct sf_buf m;
    if (fs_exit_status(fs, 0) != 0 || fs_close(fs) != 0 || fs_wait_poke(fs, 1) != 0) {
        return FS_DROP;
    }
    /* The client is gone by now: read what it sent before it went. */
    while (!fs_seen(fs)->close && !fs_seen(fs)->disconnect && fs_recv(fs, &t, &m) == 0) {
    }
    return FS_DROP;
}

static int session_data_then_wait(struct fs *fs, void *user)
{
    uint8_t buf[CLOSE_REKEY_DATA];
    uint8_t t = 0;
    struct sf_buf m;
    pattern(buf, sizeof(buf), 3);
    if (fs_data(fs, buf, sizeof(buf)) != 0) {
        return -1;
    }
    while (!fs_seen(fs)->close && !fs_seen(fs)->disconnect) {
        if (fs_recv(fs, &t, &m) != 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * Our CHANNEL_CLOSE arrives while a re-key started by the client runs (and
 * stalls). The client may not answer it before its NEWKEYS (RFC 4253 s7.1),
 * so it must not: sshflow_close() still returns (the remote did close) and
 * the client leaves with a DISCONNECT, the one message it may send.
 */
START_TEST(test_core_close_during_client_rekey)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    o.rekey = "1K"; /* our 4 KiB make the client start a re-key */
    sc.hook = hook_close_in_rekey;
    sc.session = session_data_then_wait;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    size_t n = 0;
    uint8_t *d = read_to_eof(f, &n);
    ck_assert_uint_eq(n, CLOSE_REKEY_DATA);
    close_ok(f);
    fs_poke(fs);
    sshflow_free(f);
    (void)fs_finish(fs);
    const struct fs_seen *s = fs_seen(fs);
    ck_assert_uint_eq(s->kexinits, 2); /* the client did start the re-key */
    ck_assert_msg(s->disconnect, "no DISCONNECT (server: %s)", fs_why(fs));
    ck_assert_msg(s->violation[0] == '\0', "client violated the protocol: %s", s->violation);
    free(d);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Version lines                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_core_lines_before_version)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.pre_version = "Hello, this is a banner\r\nSSH is not yet here\nlast line\r\n";
    sc.version = "SSH-2.0-fakepeer_2.0 with comments";
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    sshflow_error err;
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    fs_free(fs);
}
END_TEST

/* An old server advertising 1.99 speaks version 2 as well. */
START_TEST(test_core_version_199)
{
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.version = "SSH-1.99-fakepeer";
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_flow *f = connect_ok(fs, &o);
    sshflow_error err;
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    close_ok(f);
    sshflow_free(f);
    server_ok(fs);
    fs_free(fs);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Host key callback                                                        */
/* ------------------------------------------------------------------------ */

struct cb_seen {
    int calls;
    char keytype[64];
    char fp[96];
    bool accept;
};

static bool hostkey_cb(void *user, const char *host, uint16_t port, const char *keytype,
                       const uint8_t *blob, size_t bloblen, const char *fingerprint)
{
    struct cb_seen *s = user;
    s->calls++;
    snprintf(s->keytype, sizeof(s->keytype), "%s", keytype);
    snprintf(s->fp, sizeof(s->fp), "%s", fingerprint);
    return s->accept;
}

START_TEST(test_core_hostkey_callback)
{
    struct cb_seen cs = {0, "", "", _i == 0};
    struct fs_script sc;
    struct fs_client o;
    ct_script_init(&sc);
    ct_client_init(&o);
    sshflow_hostauth *ha = sshflow_hostauth_callback(hostkey_cb, &cs);
    ck_assert_ptr_nonnull(ha);
    o.ha = ha;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    sshflow_error err;
    sshflow_flow *f = fs_connect(fs, &o, &err);
    ck_assert_int_eq(cs.calls, 1);
    ck_assert_str_eq(cs.keytype, "ssh-ed25519");
    ck_assert_str_eq(cs.fp, ct_keys.host_fp);
    if (cs.accept) {
        ck_assert_msg(f != NULL, "%s", err.detail);
        ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
        size_t n = 0;
        free(read_to_eof(f, &n));
        close_ok(f);
        sshflow_free(f);
        server_ok(fs);
    } else {
        ck_assert_ptr_null(f);
        ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "%s: %s", sshflow_err_kind_name(err.kind),
                      err.detail);
        (void)fs_finish(fs);
        ck_assert_uint_eq(fs_seen(fs)->service_requests, 0);
        ck_assert_uint_eq(fs_seen(fs)->userauth_requests, 0);
    }
    fs_free(fs);
    sshflow_hostauth_free(ha);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* A writer stuck in a full socket does not stop the reader thread          */
/* ------------------------------------------------------------------------ */

/*
 * The client's transport for this test: a flow over its socketpair end,
 * like the fd flow, that also tells the test when the application's writer
 * thread found the socket full (EAGAIN) and went to wait for room. From then
 * until the server reads again, that writer is inside the flow's write,
 * holding the connection's send lock: no timing guesses.
 */
#define STALL_IO_MS 20000 /* bound on every wait of the stall flow */

struct stall_flow {
    int fd;               /* our socketpair end; sends and receives never block */
    int wake[2];          /* abort() makes it readable: every poll returns */
    atomic_bool aborted;  /* abort() was called */
    pthread_mutex_t mu;   /* guards the fields below */
    pthread_cond_t cv;    /* broadcast when one of them changes */
    pthread_t writer;     /* the application writer thread */
    bool have_writer;     /* writer is set */
    unsigned writer_full; /* times the writer found the socket full */
    unsigned other_full;  /* times another thread (reader, application reader) did */
    bool writer_done;     /* its sshflow_write returned ... */
    int writer_result;    /* ... this */
};

static int stall_error(sshflow_error *err, int kind, int e, const char *what)
{
    if (err != NULL) {
        err->kind = kind;
        err->sys_errno = e;
        snprintf(err->detail, sizeof(err->detail), "stall flow: %s%s%s", what, e != 0 ? ": " : "",
                 e != 0 ? strerror(e) : "");
    }
    return kind;
}

/* Wait until the socket has `events` (0), abort (CLOSED) or the bound (TIMEOUT). */
static int stall_poll(struct stall_flow *s, short events, sshflow_error *err)
{
    for (;;) {
        struct pollfd p[2] = {{s->fd, events, 0}, {s->wake[0], POLLIN, 0}};
        int n = poll(p, 2, STALL_IO_MS);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return stall_error(err, SSHFLOW_ERR_FLOW, errno, "poll");
        }
        if (n == 0) {
            return stall_error(err, SSHFLOW_ERR_TIMEOUT, 0, "no progress within the bound");
        }
        if (p[1].revents != 0) {
            return stall_error(err, SSHFLOW_ERR_CLOSED, 0, "aborted");
        }
        return 0; /* ready, or an error that the next send or recv reports */
    }
}

static ssize_t stall_read(void *ctx, void *buf, size_t len, sshflow_error *err)
{
    struct stall_flow *s = ctx;
    for (;;) {
        if (atomic_load(&s->aborted)) {
            return stall_error(err, SSHFLOW_ERR_CLOSED, 0, "aborted");
        }
        ssize_t n = recv(s->fd, buf, len, MSG_DONTWAIT);
        if (n >= 0) {
            return n;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return stall_error(err, SSHFLOW_ERR_FLOW, errno, "recv");
        }
        int r = stall_poll(s, POLLIN, err);
        if (r != 0) {
            return r;
        }
    }
}

/* The socket is full: note who found it so. */
static void stall_note_full(struct stall_flow *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->have_writer && pthread_equal(pthread_self(), s->writer)) {
        s->writer_full++;
    } else {
        s->other_full++;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int stall_write(void *ctx, const void *buf, size_t len, sshflow_error *err)
{
    struct stall_flow *s = ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        if (atomic_load(&s->aborted)) {
            return stall_error(err, SSHFLOW_ERR_CLOSED, 0, "aborted");
        }
        ssize_t n = send(s->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            stall_note_full(s);
            int r = stall_poll(s, POLLOUT, err);
            if (r != 0) {
                return r;
            }
            continue;
        }
        return stall_error(err, SSHFLOW_ERR_FLOW, n < 0 ? errno : EIO, "send");
    }
    return 0;
}

static int stall_shutdown(void *ctx, sshflow_error *err)
{
    struct stall_flow *s = ctx;
    if (shutdown(s->fd, SHUT_WR) != 0) {
        return stall_error(err, SSHFLOW_ERR_FLOW, errno, "shutdown");
    }
    return 0;
}

static int stall_close(void *ctx, sshflow_error *err)
{
    struct stall_flow *s = ctx;
    (void)shutdown(s->fd, SHUT_RDWR); /* the descriptor itself goes in free */
    return 0;
}

static void stall_abort(void *ctx)
{
    struct stall_flow *s = ctx;
    atomic_store(&s->aborted, true);
    if (write(s->wake[1], "x", 1) < 0) {
        /* the pipe is empty and ours: cannot happen; the bound still ends every wait */
    }
}

static void stall_free(void *ctx)
{
    struct stall_flow *s = ctx;
    close(s->fd);
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

static const sshflow_flow_ops stall_ops = {
    .read = stall_read,
    .write = stall_write,
    .shutdown = stall_shutdown,
    .close = stall_close,
    .abort = stall_abort,
    .free = stall_free,
};

/* A stall flow over fd (taken over), or NULL. */
static struct stall_flow *stall_flow_new(int fd)
{
    struct stall_flow *s = calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    if (s == NULL || fd < 0 || pipe(s->wake) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        free(s);
        return NULL;
    }
    s->fd = fd;
    atomic_init(&s->aborted, false);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

enum stall_until { STALL_WRITER_FULL, STALL_WRITER_DONE };

/* Wait (at most timeout_ms) until the writer found the socket full, or returned. 0 or -1. */
static int stall_wait(struct stall_flow *s, enum stall_until what, int timeout_ms)
{
    struct timespec ts;
    int r = 0;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    for (;;) {
        bool ok = what == STALL_WRITER_FULL ? s->writer_full > 0 : s->writer_done;
        if (ok || r != 0) {
            pthread_mutex_unlock(&s->mu);
            return ok ? 0 : -1;
        }
        r = pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
}

struct stall_writer {
    sshflow_flow *f;
    struct stall_flow *s;
    const uint8_t *p;
    size_t n;
};

static void *stall_writer_main(void *arg)
{
    struct stall_writer *w = arg;
    sshflow_error err;
    pthread_mutex_lock(&w->s->mu);
    w->s->writer = pthread_self();
    w->s->have_writer = true;
    pthread_mutex_unlock(&w->s->mu);
    int r = sshflow_write(w->f, w->p, w->n, &err);
    if (r != 0) {
        fprintf(stderr, "stuck writer: %s: %s\n", sshflow_err_kind_name(r), err.detail);
    }
    pthread_mutex_lock(&w->s->mu);
    w->s->writer_result = r;
    w->s->writer_done = true;
    pthread_cond_broadcast(&w->s->cv);
    pthread_mutex_unlock(&w->s->mu);
    return NULL;
}

/*
 * The volumes. The server grants a window far beyond what is written, so the
 * writer never waits for window: only for the socket. What the server sends
 * while it does not read stays within the client's initial 2 MiB window (it
 * cannot see a WINDOW_ADJUST before it reads again) yet is far more than the
 * socket buffers hold, so all of it arrives only if the client keeps reading.
 */
#define STALL_WINDOW (64u * 1024 * 1024) /* we grant */
#define STALL_UP (16u * 1024 * 1024)     /* the client writes */
#define STALL_OUT (1024 * 1024)          /* we send on stdout while not reading */
#define STALL_ERR (768 * 1024)           /* and on stderr: enough for a WINDOW_ADJUST */
#define STALL_ROUNDS 8                   /* interleaved in this many pieces each */
#define STALL_TIMEOUT_MS 15000           /* the fake server's whole run */

/* The order in which the replies came (1, 2; 0: not seen). */
struct stall_replies {
    unsigned count;
    unsigned chan_failure;    /* to the channel keepalive */
    unsigned request_failure; /* to the global keepalive */
};

static int session_stuck_writer(struct fs *fs, void *user)
{
    struct stall_replies *rep = user;
    uint8_t *out = malloc(STALL_OUT), *ext = malloc(STALL_ERR);
    uint8_t t = 0;
    struct sf_buf m;
    int r = -1;

    if (out == NULL || ext == NULL) {
        r = fs_fail(fs, "out of memory");
        goto out;
    }
    pattern(out, STALL_OUT, 21);
    pattern(ext, STALL_ERR, 22);
    fs_pause_reading(fs, true);
    /* Poke 1: the client's writer is blocked in the full socket. Then what
     * needs the reader thread to send: two replies and a WINDOW_ADJUST. */
    if (fs_wait_poke(fs, 1) != 0 || fs_chan_request(fs, "keepalive@openssh.com", true) != 0 ||
        fs_global_request(fs, "keepalive@openssh.com", true) != 0) {
        goto out;
    }
    for (size_t i = 0; i < STALL_ROUNDS; i++) {
        size_t o = STALL_OUT / STALL_ROUNDS, e = STALL_ERR / STALL_ROUNDS;
        if (fs_data(fs, out + i * o, o) != 0 || fs_ext(fs, 1, ext + i * e, e) != 0) {
            goto out;
        }
    }
    fs_notify(fs); /* all of it went out: the client kept reading */
    /* Poke 2: the test has read it all. Only now do we read again. */
    if (fs_wait_poke(fs, 2) != 0) {
        goto out;
    }
    fs_pause_reading(fs, false);
    while (!fs_seen(fs)->eof && !fs_seen(fs)->close) {
        if (fs_recv(fs, &t, &m) != 0) {
            goto out;
        }
        if (t == SSH_MSG_CHANNEL_FAILURE && rep->chan_failure == 0) {
            rep->chan_failure = ++rep->count;
        } else if (t == SSH_MSG_REQUEST_FAILURE && rep->request_failure == 0) {
            rep->request_failure = ++rep->count;
        } else if (t == SSH_MSG_DISCONNECT) {
            r = fs_fail(fs, "the client disconnected (reason %u: %s)",
                        fs_seen(fs)->disconnect_reason, fs_seen(fs)->disconnect_text);
            goto out;
        }
    }
    r = fs_end_session(fs, 0);
out:
    free(out);
    free(ext);
    return r;
}

/* Read exactly n bytes of stdout (or stderr). */
static void read_exactly(sshflow_flow *f, uint8_t *buf, size_t n, bool stderr_stream)
{
    sshflow_error err;
    size_t got = 0;
    while (got < n) {
        ssize_t k = stderr_stream ? sshflow_read_stderr(f, buf + got, n - got, &err)
                                  : sshflow_read_into(f, buf + got, n - got, &err);
        ck_assert_msg(k > 0, "%s: %zu of %zu bytes, then %zd (%s)",
                      stderr_stream ? "stderr" : "stdout", got, n, k, k < 0 ? err.detail : "end");
        got += (size_t)k;
    }
}

/*
 * The server stops reading; an application thread writes 16 MiB and blocks
 * in the flow's write once the socket is full, holding the send lock. The
 * server, still not reading, sends a keepalive channel request and a global
 * request that both want a reply, then 1 MiB of stdout and 768 KiB of
 * stderr. The reader thread must go on reading all of it (its replies and
 * window adjusts are queued behind the writer), and the application must be
 * able to read it (its own window adjusts are queued too), all while the
 * writer stays blocked. Then the server reads again: the whole upload, the
 * two replies in order, window adjusts, EOF; the session ends cleanly.
 * A reader thread that waited for the send lock would stop reading after
 * the first request: the server's sends would stop at the socket's size and
 * the bounded wait for them fails.
 */
START_TEST(test_core_reader_not_stuck_behind_writer)
{
    struct fs_script sc;
    struct fs_client o;
    struct stall_replies rep = {0, 0, 0};
    sshflow_error err;
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.window = STALL_WINDOW;
    sc.session = session_stuck_writer;
    sc.user = &rep;
    sc.timeout_ms = STALL_TIMEOUT_MS;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    struct stall_flow *s = stall_flow_new(fs_take_client_fd(fs));
    ck_assert_ptr_nonnull(s);
    o.transport = sshflow_flow_new(&stall_ops, s);
    ck_assert_ptr_nonnull(o.transport);
    sshflow_flow *f = connect_ok(fs, &o);

    uint8_t *up = malloc(STALL_UP), *out = malloc(STALL_OUT), *ext = malloc(STALL_ERR);
    ck_assert(up != NULL && out != NULL && ext != NULL);
    pattern(up, STALL_UP, 23);
    struct stall_writer w = {f, s, up, STALL_UP};
    pthread_t writer;
    ck_assert_int_eq(pthread_create(&writer, NULL, stall_writer_main, &w), 0);
    ck_assert_msg(stall_wait(s, STALL_WRITER_FULL, 5000) == 0,
                  "the writer never found the socket full");
    fs_poke(fs);
    ck_assert_msg(fs_wait_notes(fs, 1, 8000) == 0,
                  "the server could not send its data: the client stopped reading while a writer "
                  "was blocked in the flow");
    read_exactly(f, out, STALL_OUT, false);
    read_exactly(f, ext, STALL_ERR, true);
    ck_assert(is_pattern(out, STALL_OUT, 21));
    ck_assert(is_pattern(ext, STALL_ERR, 22));
    pthread_mutex_lock(&s->mu);
    bool done = s->writer_done;
    unsigned other_full = s->other_full;
    pthread_mutex_unlock(&s->mu);
    ck_assert_msg(!done, "the writer finished although the server did not read");
    /* Nobody but the writer ever wrote into the full socket. */
    ck_assert_uint_eq(other_full, 0);

    fs_poke(fs); /* the server reads again */
    ck_assert_msg(stall_wait(s, STALL_WRITER_DONE, 10000) == 0,
                  "the writer did not finish once the server read again");
    ck_assert_int_eq(pthread_join(writer, NULL), 0);
    ck_assert_int_eq(s->writer_result, 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    free(read_to_eof(f, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(sshflow_stderr_dropped(f), 0);
    close_ok(f);
    sshflow_exit ex;
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 0);
    sshflow_free(f); /* frees s too */

    server_ok(fs);
    const struct fs_seen *seen = fs_seen(fs);
    size_t got = 0;
    const uint8_t *data = fs_client_data(fs, &got);
    ck_assert_uint_eq(got, STALL_UP);
    ck_assert(is_pattern(data, got, 23));
    ck_assert_uint_eq(seen->channel_failures, 1);
    ck_assert_uint_eq(seen->last_failure_chan, fs_server_chan(fs));
    ck_assert_uint_eq(seen->request_failures, 1);
    ck_assert_uint_eq(seen->request_successes, 0);
    ck_assert_uint_eq(rep.chan_failure, 1); /* queued in the order asked */
    ck_assert_uint_eq(rep.request_failure, 2);
    /* All 1.75 MiB were consumed (stdout read, stderr buffered) while the
     * writer was blocked: the window came back but for less than the quarter
     * that triggers an adjust, and never beyond the client's window. */
    ck_assert_uint_ge(seen->window_adjusts, 1);
    ck_assert_uint_gt(fs_client_window(fs), SF_CHAN_WINDOW - SF_CHAN_WINDOW / 4);
    ck_assert_uint_le(fs_client_window(fs), SF_CHAN_WINDOW);
    ck_assert(seen->eof && seen->close);
    free(up);
    free(out);
    free(ext);
    fs_free(fs);
}
END_TEST


#include <sys/ioctl.h>
#include <linux/sockios.h>

static int session_full_no_writer(struct fs *fs, void *user)
{
    struct stall_replies *rep = user;
    uint8_t *out = malloc(STALL_OUT), *ext = malloc(STALL_ERR);
    uint8_t t = 0;
    struct sf_buf m;
    int r = -1;
    pattern(out, STALL_OUT, 21);
    pattern(ext, STALL_ERR, 22);
    fs_pause_reading(fs, true);
    if (fs_wait_poke(fs, 1) != 0 || fs_chan_request(fs, "keepalive@openssh.com", true) != 0 ||
        fs_global_request(fs, "keepalive@openssh.com", true) != 0) {
        goto out;
    }
    for (size_t i = 0; i < STALL_ROUNDS; i++) {
        size_t o = STALL_OUT / STALL_ROUNDS, e = STALL_ERR / STALL_ROUNDS;
        if (fs_data(fs, out + i * o, o) != 0 || fs_ext(fs, 1, ext + i * e, e) != 0) {
            goto out;
        }
    }
    fs_notify(fs);
    if (fs_wait_poke(fs, 2) != 0) {
        goto out;
    }
    fs_pause_reading(fs, false);
    while (!fs_seen(fs)->eof && !fs_seen(fs)->close) {
        if (fs_recv(fs, &t, &m) != 0) {
            goto out;
        }
    }
    (void)rep;
    r = fs_end_session(fs, 0);
out:
    free(out);
    free(ext);
    return r;
}

START_TEST(test_core_reader_full_socket_no_writer)
{
    struct fs_script sc;
    struct fs_client o;
    struct stall_replies rep = {0, 0, 0};
    ct_script_init(&sc);
    ct_client_init(&o);
    sc.window = STALL_WINDOW;
    sc.session = session_full_no_writer;
    sc.user = &rep;
    sc.timeout_ms = STALL_TIMEOUT_MS;
    struct fs *fs = fs_start(&sc);
    ck_assert_ptr_nonnull(fs);
    struct stall_flow *s = stall_flow_new(fs_take_client_fd(fs));
    o.transport = sshflow_flow_new(&stall_ops, s);
    sshflow_flow *f = connect_ok(fs, &o);
    pthread_mutex_lock(&s->mu);
    s->writer = pthread_self();
    s->have_writer = true;
    pthread_mutex_unlock(&s->mu);
    int sndbuf = 0;
    socklen_t sl = sizeof(sndbuf);
    ck_assert_int_eq(getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
    uint8_t chunk[1024];
    pattern(chunk, sizeof(chunk), 9);
    sshflow_error err;
    unsigned writes = 0;
    for (;;) {
        int q = 0;
        ck_assert_int_eq(ioctl(s->fd, SIOCOUTQ, &q), 0);
        if (q >= sndbuf) {
            break;
        }
        ck_assert_int_eq(sshflow_write(f, chunk, sizeof(chunk), &err), 0);
        writes++;
    }
    ck_assert_uint_gt(writes, 0);
    fs_poke(fs);
    int nr = fs_wait_notes(fs, 1, 8000);
    ck_assert_msg(nr == 0, "the reader thread stopped reading: it blocked writing its reply into the full socket");

    /* Then everything ends well: the data is all there, the replies arrive. */
    fs_poke(fs); /* the server reads again */
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    size_t n = 0;
    uint8_t *got_out = read_to_eof(f, &n);
    ck_assert_uint_eq(n, STALL_OUT);
    ck_assert(is_pattern(got_out, n, 21));
    free(got_out);
    ck_assert_uint_eq(sshflow_stderr_dropped(f), 0);
    close_ok(f);
    sshflow_free(f); /* frees s too */
    server_ok(fs);
    const struct fs_seen *seen = fs_seen(fs);
    size_t up = 0;
    (void)fs_client_data(fs, &up);
    ck_assert_uint_eq(up, (size_t)writes * sizeof(chunk));
    ck_assert_uint_eq(seen->channel_failures, 1);
    ck_assert_uint_eq(seen->request_failures, 1);
    ck_assert(seen->eof && seen->close);
    fs_free(fs);
}
END_TEST
/* ------------------------------------------------------------------------ */

static Suite *core_suite(void)
{
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("session");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_core_session_every_suite, 0, CT_NSUITES);
    tcase_add_loop_test(tc, test_core_session_no_strict, 0, CT_NSUITES);
    tcase_add_loop_test(tc, test_core_hostkey_types, 0, 3);
    tcase_add_test(tc, test_core_stderr_apart);
    tcase_add_test(tc, test_core_stderr_buffer_full);
    tcase_add_test(tc, test_core_exit_signal);
    tcase_add_loop_test(tc, test_core_exit_none_vs_zero, 0, 2);
    tcase_add_test(tc, test_core_lines_before_version);
    tcase_add_test(tc, test_core_version_199);
    tcase_add_loop_test(tc, test_core_hostkey_callback, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("auth_channel");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_core_auth_password);
    tcase_add_test(tc, test_core_auth_key_then_password);
    tcase_add_test(tc, test_core_auth_refused);
    tcase_add_test(tc, test_core_open_refused);
    tcase_add_test(tc, test_core_request_refused);
    tcase_add_test(tc, test_core_client_respects_window);
    tcase_add_test(tc, test_core_client_reopens_window);
    tcase_add_test(tc, test_core_keepalive_requests);
    tcase_add_test(tc, test_core_global_request_in_handshake);
    tcase_add_test(tc, test_core_exec_closed_before_reply);
    tcase_add_loop_test(tc, test_core_unimplemented_seq, 0, (int)sizeof(unknown_types));
    tcase_add_loop_test(tc, test_core_unimplemented_connection_range, 0,
                        (int)sizeof(unassigned_conn_types));
    suite_add_tcase(s, tc);

    tc = tcase_create("rekey");
    tcase_set_timeout(tc, 10);
    tcase_add_loop_test(tc, test_core_rekey_by_server, 0, CT_NSUITES);
    tcase_add_test(tc, test_core_rekey_by_client);
    tcase_add_test(tc, test_core_close_during_client_rekey);
    suite_add_tcase(s, tc);

    tc = tcase_create("stuck_writer");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_core_reader_not_stuck_behind_writer);
    tcase_add_test(tc, test_core_reader_full_socket_no_writer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (ct_begin() != 0) {
        return 1;
    }
    return ct_run(core_suite());
}
