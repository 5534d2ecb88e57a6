/*
 * check/check_interop_zlib.c -- compression against real servers: OpenSSH
 * sshd (check/testlib/sshd.h) with "Compression yes", which offers
 * zlib@openssh.com (delayed until authentication), and a paramiko server
 * run by this file that offers plain "zlib" (from the first NEWKEYS) or
 * zlib@openssh.com.
 *
 * Covers: the handshake with Compression yes (sshflow_describe names the
 * method) and exec with its exit status; 16 MiB through cat, compressible
 * and random, checked by SHA-256, with the bytes on the wire counted by
 * our own TCP flow (compressible data must shrink there, so compression
 * is really on, in both directions); a few cipher/MAC suites with
 * compression on; re-keys during a compressed transfer (server and client
 * RekeyLimit; the streams restart at every NEWKEYS on both sides, or the
 * transfer breaks); with the default config nothing is compressed even
 * though the server offers it; Compression yes against a server that
 * refuses compression falls back to none.
 *
 * Owns: its sshd servers (one per tcase, unchecked fixtures) and the
 * paramiko server processes it starts (one per test). Must never: include
 * a src/ header or call an internal function (public API only), reach
 * anything but 127.0.0.1, depend on timing for its verdict (every wait is
 * bounded: ConnectTimeout, the server start bound, the tcase timeout), or
 * signal a process it did not start.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sshd.h"
#include "sshflow.h"

#define MIB ((size_t)1024 * 1024)
#define CAT_SIZE (16 * MIB)
#define REKEY_SIZE (8 * MIB)
#define CONNECT_TIMEOUT "30"
#define TCP_TIMEOUT_MS 10000
#define IO_CHUNK (256 * 1024)
#define PYTHON "/usr/bin/python3"
#define PM_PASSWORD "zlib-Test-pw"

static const char *errtxt(const sshflow_error *err)
{
    return err->detail[0] != '\0' ? err->detail : "(no detail)";
}

/* ------------------------------------------------------------------------ */
/* A TCP flow that counts the bytes on the wire                             */
/* ------------------------------------------------------------------------ */

struct counted {
    int fd;
    atomic_ullong rd, wr;
};

static int flow_errno(sshflow_error *err, int e)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
        err->kind = SSHFLOW_ERR_FLOW;
        err->sys_errno = e;
        snprintf(err->detail, sizeof(err->detail), "socket: %s", strerror(e));
    }
    return SSHFLOW_ERR_FLOW;
}

static ssize_t counted_read(void *ctx, void *buf, size_t len, sshflow_error *err)
{
    struct counted *c = ctx;
    for (;;) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n >= 0) {
            atomic_fetch_add(&c->rd, (unsigned long long)n);
            return n;
        }
        if (errno != EINTR) {
            return flow_errno(err, errno);
        }
    }
}

static int counted_write(void *ctx, const void *buf, size_t len, sshflow_error *err)
{
    struct counted *c = ctx;
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return flow_errno(err, errno);
        }
        atomic_fetch_add(&c->wr, (unsigned long long)n);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int counted_shutdown(void *ctx, sshflow_error *err)
{
    struct counted *c = ctx;
    if (shutdown(c->fd, SHUT_WR) != 0) {
        return flow_errno(err, errno);
    }
    return 0;
}

static void counted_abort(void *ctx)
{
    struct counted *c = ctx;
    (void)shutdown(c->fd, SHUT_RDWR);
}

static void counted_free(void *ctx)
{
    struct counted *c = ctx;
    close(c->fd);
    free(c);
}

static const sshflow_flow_ops counted_ops = {
    .read = counted_read,
    .write = counted_write,
    .abort = counted_abort,
    .shutdown = counted_shutdown,
    .free = counted_free,
};

/* Connect to 127.0.0.1:port; *cnt stays valid until the flow is freed. */
static sshflow_flow *counted_connect(uint16_t port, struct counted **cnt)
{
    struct sockaddr_in sa;
    struct counted *c = calloc(1, sizeof(*c));
    sshflow_flow *f;

    ck_assert_ptr_nonnull(c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(c->fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to port %u: %s",
                  (unsigned)port, strerror(errno));
    atomic_init(&c->rd, 0);
    atomic_init(&c->wr, 0);
    f = sshflow_flow_new(&counted_ops, c);
    ck_assert_ptr_nonnull(f);
    *cnt = c;
    return f;
}

/* ------------------------------------------------------------------------ */
/* Data, hashing, transfers                                                 */
/* ------------------------------------------------------------------------ */

/* Compressible: numbered text lines; random: xorshift. Both reproducible. */
struct gen {
    bool text;
    uint64_t x;
    unsigned line;
    char pend[128];
    size_t pend_len, pend_off;
};

static void gen_init(struct gen *g, bool text, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    g->text = text;
    g->x = seed * 0x9E3779B97F4A7C15ULL + 1;
    g->line = (unsigned)seed;
}

static void gen_fill(struct gen *g, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (g->text) {
            if (g->pend_off == g->pend_len) {
                g->pend_len = (size_t)snprintf(g->pend, sizeof(g->pend),
                                               "%08u compressed transport line, value %u\n",
                                               g->line, (g->line * 2654435761u) % 100000u);
                g->pend_off = 0;
                g->line++;
            }
            p[i] = (uint8_t)g->pend[g->pend_off++];
        } else {
            g->x ^= g->x >> 12;
            g->x ^= g->x << 25;
            g->x ^= g->x >> 27;
            p[i] = (uint8_t)((g->x * 0x2545F4914F6CDD1DULL) >> 56);
        }
    }
}

static void sha_hex(EVP_MD_CTX *h, char out[65])
{
    uint8_t md[32];
    unsigned len = 0;
    ck_assert_int_eq(EVP_DigestFinal_ex(h, md, &len), 1);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    EVP_MD_CTX_free(h);
}

static EVP_MD_CTX *sha_new(void)
{
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(EVP_DigestInit_ex(h, EVP_sha256(), NULL), 1);
    return h;
}

struct writer {
    sshflow_flow *f;
    size_t n;
    bool text;
    uint64_t seed;
    int rc;
    size_t written;
    sshflow_error err;
    char hash[65];
};

static void *writer_run(void *arg)
{
    struct writer *w = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    struct gen g;
    size_t i = 0;

    memset(&w->err, 0, sizeof(w->err));
    w->rc = SSHFLOW_ERR_NOMEM;
    if (buf == NULL || h == NULL || EVP_DigestInit_ex(h, EVP_sha256(), NULL) != 1) {
        free(buf);
        EVP_MD_CTX_free(h);
        return NULL;
    }
    gen_init(&g, w->text, w->seed);
    w->rc = 0;
    while (w->written < w->n) {
        /* Odd sizes that straddle packets. */
        size_t want = (i++ % 2 == 0) ? IO_CHUNK : (IO_CHUNK / 3 + 17 * i) % IO_CHUNK + 1;
        size_t k = w->n - w->written < want ? w->n - w->written : want;
        gen_fill(&g, buf, k);
        EVP_DigestUpdate(h, buf, k);
        if ((w->rc = sshflow_write(w->f, buf, k, &w->err)) != 0) {
            break;
        }
        w->written += k;
    }
    if (w->rc == 0) {
        w->rc = sshflow_shutdown(w->f, &w->err);
    }
    uint8_t md[32];
    unsigned len = 0;
    EVP_DigestFinal_ex(h, md, &len);
    EVP_MD_CTX_free(h);
    for (unsigned j = 0; j < 32; j++) {
        snprintf(w->hash + 2 * j, 3, "%02x", md[j]);
    }
    free(buf);
    return NULL;
}

/* Read stdout to EOF, hashing; returns the byte count. */
static size_t read_hash(sshflow_flow *f, char hash[65])
{
    uint8_t *buf = malloc(IO_CHUNK);
    EVP_MD_CTX *h = sha_new();
    sshflow_error err;
    size_t total = 0;

    ck_assert_ptr_nonnull(buf);
    memset(&err, 0, sizeof(err));
    for (;;) {
        ssize_t n = sshflow_read_into(f, buf, IO_CHUNK, &err);
        ck_assert_msg(n >= 0, "read failed after %zu bytes: %s", total, errtxt(&err));
        if (n == 0) {
            break;
        }
        EVP_DigestUpdate(h, buf, (size_t)n);
        total += (size_t)n;
    }
    sha_hex(h, hash);
    free(buf);
    return total;
}

/* n bytes through the remote cat and back, hashed both ways. */
static void cat_roundtrip(sshflow_flow *f, size_t n, bool text, uint64_t seed)
{
    struct writer w;
    pthread_t th;
    char got[65];

    memset(&w, 0, sizeof(w));
    w.f = f;
    w.n = n;
    w.text = text;
    w.seed = seed;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_run, &w), 0);
    size_t total = read_hash(f, got);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(w.rc == 0, "writer failed after %zu bytes: %s", w.written, errtxt(&w.err));
    ck_assert_uint_eq(total, n);
    ck_assert_str_eq(got, w.hash);
}

/* Read stdout to EOF into buf (NUL-terminated). */
static size_t read_all(sshflow_flow *f, char *buf, size_t cap)
{
    sshflow_error err;
    size_t len = 0;

    memset(&err, 0, sizeof(err));
    for (;;) {
        ck_assert_msg(len + 1 < cap, "more output than expected");
        ssize_t n = sshflow_read_into(f, buf + len, cap - 1 - len, &err);
        ck_assert_msg(n >= 0, "read failed: %s", errtxt(&err));
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* Close (bounded), expect exit status, free. */
static void close_status(sshflow_flow *f, uint32_t status)
{
    sshflow_error err;
    sshflow_exit ex;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_close_timeout(f, 30000, &err) == 0, "close: %s", errtxt(&err));
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, status);
    sshflow_free(f);
}

/* The value of key= in a describe string ("" if absent). */
static void desc_get(sshflow_flow *f, const char *key, char *out, size_t outsz)
{
    char desc[512];
    size_t klen = strlen(key);

    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    out[0] = '\0';
    for (const char *p = desc; p != NULL && *p != '\0'; p = strchr(p, ' ')) {
        while (*p == ' ') {
            p++;
        }
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t n = strcspn(p + klen + 1, " ");
            snprintf(out, outsz, "%.*s", (int)n, p + klen + 1);
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

struct copts {
    bool compression;
    const char *rekey, *cipher, *mac;
    uint16_t port; /* for known_hosts: HostName 127.0.0.1 and this port */
};

static sshflow_config *make_config(const struct copts *o)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_error err;

    ck_assert_ptr_nonnull(cfg);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_config_set(cfg, "ConnectTimeout", CONNECT_TIMEOUT, &err), 0);
    if (o->port != 0) {
        char port[16];
        snprintf(port, sizeof(port), "%u", (unsigned)o->port);
        ck_assert_int_eq(sshflow_config_set(cfg, "HostName", "127.0.0.1", &err), 0);
        ck_assert_int_eq(sshflow_config_set(cfg, "Port", port, &err), 0);
    }
    if (o->compression) {
        ck_assert_msg(sshflow_config_set(cfg, "Compression", "yes", &err) == 0, "%s",
                      errtxt(&err));
    }
    if (o->rekey != NULL) {
        ck_assert_int_eq(sshflow_config_set(cfg, "RekeyLimit", o->rekey, &err), 0);
    }
    if (o->cipher != NULL) {
        ck_assert_int_eq(sshflow_config_set(cfg, "Ciphers", o->cipher, &err), 0);
    }
    if (o->mac != NULL) {
        ck_assert_int_eq(sshflow_config_set(cfg, "MACs", o->mac, &err), 0);
    }
    return cfg;
}

/* Run cmd over a counted TCP flow to port; cred and ha are borrowed. */
static sshflow_flow *exec_on(uint16_t port, const char *user, const sshflow_cred *cred,
                             const sshflow_hostauth *ha, const char *cmd, const struct copts *o,
                             struct counted **cnt)
{
    sshflow_config *cfg = make_config(o);
    sshflow_request *req = sshflow_request_exec(cmd);
    sshflow_error err;

    ck_assert_ptr_nonnull(req);
    memset(&err, 0, sizeof(err));
    sshflow_flow *t = counted_connect(port, cnt);
    sshflow_flow *f = sshflow_client_of_flow(t, user, cred, ha, req, cfg, &err);
    ck_assert_msg(f != NULL, "connect and exec '%s' failed: %s", cmd, errtxt(&err));
    sshflow_request_free(req);
    sshflow_config_free(cfg);
    return f;
}

/* --- OpenSSH --- */

static struct sf_test_sshd srv;
static bool srv_ok;

static void srv_start(const char *extra)
{
    srv_ok = sf_test_sshd_start(&srv, extra) == 0;
    if (!srv_ok) {
        fprintf(stderr, "check_interop_zlib: cannot start sshd (%s)\n", extra);
    }
}
static void setup_comp(void)
{
    srv_start("Compression yes\n");
}
static void setup_comp_rekey(void)
{
    srv_start("Compression yes\nRekeyLimit 1M\n");
}
static void setup_nocomp(void)
{
    srv_start("Compression no\n");
}
static void teardown_srv(void)
{
    sf_test_sshd_stop(&srv);
    srv_ok = false;
}

#define REQUIRE_SRV() ck_assert_msg(srv_ok, "the test sshd did not start (see stderr)")

static sshflow_flow *sshd_exec(const char *cmd, const struct copts *o, struct counted **cnt)
{
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_hostauth *ha = sshflow_hostauth_known_hosts(srv.known_hosts, SSHFLOW_HOSTKEY_STRICT);
    sshflow_error err;
    struct counted *dummy = NULL;

    ck_assert_ptr_nonnull(cred);
    ck_assert_ptr_nonnull(ha);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_keyfile(cred, srv.userkey_ed25519, NULL, &err) == 0, "%s",
                  errtxt(&err));
    struct copts oo = *o;
    oo.port = srv.port;
    sshflow_flow *f = exec_on(srv.port, srv.user, cred, ha, cmd, &oo, cnt != NULL ? cnt : &dummy);
    sshflow_cred_free(cred);
    sshflow_hostauth_free(ha);
    return f;
}

/* ------------------------------------------------------------------------ */
/* Tests against OpenSSH                                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_zlib_handshake_exec)
{
    struct copts o = {.compression = true};
    char v[128], out[256];

    REQUIRE_SRV();
    sshflow_flow *f = sshd_exec("echo compressed hello; exit 3", &o, NULL);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, "zlib@openssh.com");
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "compressed hello\n");
    close_status(f, 3);
}
END_TEST

/* 16 MiB each way through cat: _i 0 compressible, 1 random. */
START_TEST(test_zlib_cat_16m)
{
    struct copts o = {.compression = true};
    struct counted *cnt = NULL;
    bool text = _i == 0;
    char v[128];

    REQUIRE_SRV();
    sshflow_flow *f = sshd_exec("cat", &o, &cnt);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, "zlib@openssh.com");
    cat_roundtrip(f, CAT_SIZE, text, 0x11 + (uint64_t)_i);
    unsigned long long wr = atomic_load(&cnt->wr), rd = atomic_load(&cnt->rd);
    if (text) {
        /* Compressed both ways: the wire carries a fraction of the data. */
        ck_assert_msg(wr < CAT_SIZE / 4 && rd < CAT_SIZE / 4,
                      "16 MiB of text took %llu bytes out, %llu in", wr, rd);
    } else {
        ck_assert_msg(wr > CAT_SIZE && rd > CAT_SIZE, "random data: %llu out, %llu in", wr, rd);
    }
    close_status(f, 0);
}
END_TEST

/* Compression under a few cipher/MAC suites (padding and length paths). */
START_TEST(test_zlib_ciphers)
{
    static const struct {
        const char *cipher, *mac;
    } cm[] = {
        {"chacha20-poly1305@openssh.com", NULL},
        {"aes128-gcm@openssh.com", NULL},
        {"aes128-ctr", "hmac-sha2-256-etm@openssh.com"},
        {"aes256-ctr", "hmac-sha2-512"},
    };
    struct copts o = {.compression = true, .cipher = cm[_i].cipher, .mac = cm[_i].mac};
    char v[128];

    REQUIRE_SRV();
    sshflow_flow *f = sshd_exec("cat", &o, NULL);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, "zlib@openssh.com");
    desc_get(f, "cipher", v, sizeof(v));
    ck_assert_str_eq(v, cm[_i].cipher);
    cat_roundtrip(f, MIB, _i % 2 == 0, 0x40 + (uint64_t)_i);
    close_status(f, 0);
}
END_TEST

/*
 * Re-keys in the middle of a compressed transfer: the server re-keys every
 * 1M (its RekeyLimit) and the client every 256K; _i 0 compressible, 1 random.
 */
START_TEST(test_zlib_rekey)
{
    struct copts o = {.compression = true, .rekey = "256K"};
    char v[128];

    REQUIRE_SRV();
    sshflow_flow *f = sshd_exec("cat", &o, NULL);
    cat_roundtrip(f, REKEY_SIZE, _i == 0, 0x60 + (uint64_t)_i);
    unsigned k = sshflow_kex_count(f);
    ck_assert_msg(k > 2, "kex_count %u after %zu bytes each way, compressed", k, REKEY_SIZE);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, "zlib@openssh.com");
    /* And short messages after the re-keys. */
    close_status(f, 0);
    f = sshd_exec("echo after; exit 5", &o, NULL);
    char out[64];
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "after\n");
    close_status(f, 5);
}
END_TEST

/* Default config: the server offers zlib@openssh.com, we do not take it. */
START_TEST(test_zlib_default_off)
{
    struct copts o = {.compression = false};
    struct counted *cnt = NULL;
    char v[128];

    REQUIRE_SRV();
    sshflow_flow *f = sshd_exec("cat", &o, &cnt);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, "");
    desc_get(f, "kex", v, sizeof(v));
    ck_assert_str_ne(v, ""); /* the describe string is there */
    cat_roundtrip(f, MIB, true, 0x70);
    ck_assert_uint_gt(atomic_load(&cnt->wr), MIB);
    ck_assert_uint_gt(atomic_load(&cnt->rd), MIB);
    close_status(f, 0);
}
END_TEST

/* Compression yes, but the server says no: none is agreed, all works. */
START_TEST(test_zlib_server_refuses)
{
    struct copts o = {.compression = true};
    char v[128], out[64];

    REQUIRE_SRV();
    sshflow_flow *f = sshd_exec("echo plain", &o, NULL);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, "");
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "plain\n");
    close_status(f, 0);
}
END_TEST

/* The option's values. */
START_TEST(test_zlib_config_values)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_error err;

    ck_assert_ptr_nonnull(cfg);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_config_set(cfg, "Compression", "yes", &err), 0);
    ck_assert_int_eq(sshflow_config_set(cfg, "compression", "No", &err), 0);
    ck_assert_int_eq(sshflow_config_set(cfg, "Compression", "delayed", &err), SSHFLOW_ERR_INVALID);
    ck_assert_ptr_nonnull(strstr(err.detail, "Compression"));
    ck_assert_str_eq(sshflow_supported("compression"), "none\nzlib@openssh.com\nzlib");
    sshflow_config_free(cfg);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* paramiko: plain zlib                                                     */
/* ------------------------------------------------------------------------ */

/*
 * A one-file paramiko server: ECDSA host key made at start, password auth,
 * exec through /bin/sh with stdin/stdout copied, exit status. argv[1] is
 * the only compression method it offers. Prints FP and PORT lines.
 * (check/servers/paramiko_server.py starts the command before its
 * CHANNEL_SUCCESS is sent, so a quick command's CLOSE can overtake the
 * reply; this one waits for the reply to be out.)
 */
static const char pm_script[] =
    "import base64, hashlib, os, socket, subprocess, sys, threading\n"
    "import paramiko\n"
    "comp = sys.argv[1]\n"
    "key = paramiko.ECDSAKey.generate()\n"
    "fp = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip('=')\n"
    "ls = socket.socket()\n"
    "ls.bind(('127.0.0.1', 0))\n"
    "ls.listen(8)\n"
    "print('FP SHA256:' + fp)\n"
    "print('PORT %d' % ls.getsockname()[1], flush=True)\n"
    "# The command runs only once our CHANNEL_SUCCESS for it is out: a quick\n"
    "# command could otherwise close the channel before the reply.\n"
    "replied = {}\n"
    "rlock = threading.Lock()\n"
    "def reply_event(key):\n"
    "    with rlock:\n"
    "        return replied.setdefault(key, threading.Event())\n"
    "orig_send = paramiko.Transport._send_user_message\n"
    "def send_user_message(self, m):\n"
    "    orig_send(self, m)\n"
    "    b = m.asbytes()\n"
    "    if len(b) >= 5 and b[0] == 99:\n"
    "        reply_event((id(self), int.from_bytes(b[1:5], 'big'))).set()\n"
    "paramiko.Transport._send_user_message = send_user_message\n"
    "def pin(ch, p):\n"
    "    try:\n"
    "        while True:\n"
    "            d = ch.recv(65536)\n"
    "            if not d:\n"
    "                break\n"
    "            p.stdin.write(d)\n"
    "    except Exception:\n"
    "        pass\n"
    "    try:\n"
    "        p.stdin.close()\n"
    "    except Exception:\n"
    "        pass\n"
    "def run(ch, cmd):\n"
    "    reply_event((id(ch.get_transport()), ch.remote_chanid)).wait(20)\n"
    "    p = subprocess.Popen(['/bin/sh', '-c', cmd], stdin=subprocess.PIPE,\n"
    "                         stdout=subprocess.PIPE, bufsize=0)\n"
    "    threading.Thread(target=pin, args=(ch, p), daemon=True).start()\n"
    "    try:\n"
    "        while True:\n"
    "            d = os.read(p.stdout.fileno(), 65536)\n"
    "            if not d:\n"
    "                break\n"
    "            ch.sendall(d)\n"
    "        st = p.wait()\n"
    "        ch.shutdown_write()\n"
    "        ch.send_exit_status(st)\n"
    "        ch.close()\n"
    "    except Exception as e:\n"
    "        print('run: %s' % e, file=sys.stderr)\n"
    "class S(paramiko.ServerInterface):\n"
    "    def get_allowed_auths(self, u):\n"
    "        return 'password'\n"
    "    def check_auth_password(self, u, pw):\n"
    "        return paramiko.AUTH_SUCCESSFUL if pw == '" PM_PASSWORD "' else paramiko.AUTH_FAILED\n"
    "    def check_channel_request(self, kind, cid):\n"
    "        if kind == 'session':\n"
    "            return paramiko.OPEN_SUCCEEDED\n"
    "        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED\n"
    "    def check_channel_exec_request(self, ch, cmd):\n"
    "        threading.Thread(target=run, args=(ch, cmd.decode()), daemon=True).start()\n"
    "        return True\n"
    "def serve(c):\n"
    "    t = paramiko.Transport(c)\n"
    "    try:\n"
    "        t.get_security_options().compression = (comp,)\n"
    "        t.add_server_key(key)\n"
    "        t.start_server(server=S())\n"
    "        while t.is_active():\n"
    "            t.join(1)\n"
    "    except Exception as e:\n"
    "        print('serve: %s' % e, file=sys.stderr)\n"
    "    finally:\n"
    "        t.close()\n"
    "while True:\n"
    "    c, _ = ls.accept()\n"
    "    threading.Thread(target=serve, args=(c,), daemon=True).start()\n";

struct pm_server {
    pid_t pid;
    uint16_t port;
    char fp[128];
};

static bool paramiko_present(void)
{
    char *argv[] = {(char *)PYTHON, (char *)"-c", (char *)"import paramiko", NULL};
    return access(PYTHON, X_OK) == 0 &&
           sf_test_run(argv, NULL, NULL, 0, NULL, 0, 20000) == 0;
}

/* Start the script offering comp; reads its FP and PORT lines (bounded, 20 s). */
static void pm_start(struct pm_server *s, const char *comp)
{
    char *argv[] = {(char *)PYTHON, (char *)"-c", (char *)pm_script, (char *)comp, NULL};
    char buf[1024];
    size_t len = 0;
    int from = -1;
    unsigned port = 0;

    memset(s, 0, sizeof(*s));
    s->pid = sf_test_spawn(argv, NULL, &from);
    ck_assert_int_gt(s->pid, 0);
    while (port == 0) {
        struct pollfd pfd = {.fd = from, .events = POLLIN};
        ck_assert_msg(poll(&pfd, 1, 20000) == 1, "paramiko server did not start");
        ssize_t n = read(from, buf + len, sizeof(buf) - 1 - len);
        ck_assert_msg(n > 0, "paramiko server exited before printing its port");
        len += (size_t)n;
        buf[len] = '\0';
        const char *fp = strstr(buf, "FP ");
        const char *pp = strstr(buf, "PORT ");
        if (fp != NULL && pp != NULL && strchr(pp, '\n') != NULL) {
            ck_assert_int_eq(sscanf(fp, "FP %127s", s->fp), 1);
            ck_assert_int_eq(sscanf(pp, "PORT %u", &port), 1);
        }
    }
    close(from);
    s->port = (uint16_t)port;
}

static void pm_stop(struct pm_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGKILL);
        (void)sf_test_wait(s->pid, 5000);
        s->pid = 0;
    }
}

static sshflow_flow *pm_exec(struct pm_server *s, const char *cmd, struct counted **cnt)
{
    struct copts o = {.compression = true};
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    sshflow_hostauth *ha = sshflow_hostauth_parse(s->fp, &err);
    ck_assert_msg(ha != NULL, "pin %s: %s", s->fp, errtxt(&err));
    ck_assert_ptr_nonnull(cred);
    ck_assert_int_eq(sshflow_cred_add_password(cred, PM_PASSWORD, &err), 0);
    struct counted *dummy = NULL;
    sshflow_flow *f = exec_on(s->port, "sshflow", cred, ha, cmd, &o, cnt != NULL ? cnt : &dummy);
    sshflow_cred_free(cred);
    sshflow_hostauth_free(ha);
    return f;
}

/* _i 0: "zlib" (from the first NEWKEYS, so authentication is compressed too); 1: delayed. */
START_TEST(test_zlib_paramiko)
{
    static const char *const comps[] = {"zlib", "zlib@openssh.com"};
    struct pm_server s;
    struct counted *cnt = NULL;
    char v[128], out[64];

    if (!paramiko_present()) {
        fprintf(stderr, "check_interop_zlib: SKIP paramiko test: %s cannot import paramiko\n",
                PYTHON);
        return;
    }
    pm_start(&s, comps[_i]);
    sshflow_flow *f = pm_exec(&s, "echo paramiko; exit 4", NULL);
    desc_get(f, "comp", v, sizeof(v));
    ck_assert_str_eq(v, comps[_i]);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "paramiko\n");
    close_status(f, 4);

    f = pm_exec(&s, "cat", &cnt);
    cat_roundtrip(f, 4 * MIB, true, 0x80 + (uint64_t)_i);
    unsigned long long wr = atomic_load(&cnt->wr), rd = atomic_load(&cnt->rd);
    ck_assert_msg(wr < MIB && rd < MIB, "4 MiB of text took %llu bytes out, %llu in", wr, rd);
    close_status(f, 0);
    pm_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------------ */

static TCase *tc_shared(Suite *s, const char *name, void (*setup)(void), int timeout)
{
    TCase *tc = tcase_create(name);
    tcase_add_unchecked_fixture(tc, setup, teardown_srv);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *zlib_suite(void)
{
    Suite *s = suite_create("interop_zlib");
    TCase *tc;

    tc = tcase_create("config");
    tcase_add_test(tc, test_zlib_config_values);
    suite_add_tcase(s, tc);

    tc = tc_shared(s, "openssh", setup_comp, 300);
    tcase_add_test(tc, test_zlib_handshake_exec);
    tcase_add_loop_test(tc, test_zlib_cat_16m, 0, 2);
    tcase_add_loop_test(tc, test_zlib_ciphers, 0, 4);
    tcase_add_test(tc, test_zlib_default_off);

    tc = tc_shared(s, "openssh_rekey", setup_comp_rekey, 300);
    tcase_add_loop_test(tc, test_zlib_rekey, 0, 2);

    tc = tc_shared(s, "openssh_nocomp", setup_nocomp, 60);
    tcase_add_test(tc, test_zlib_server_refuses);

    tc = tcase_create("paramiko");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_zlib_paramiko, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (!sf_test_sshd_available()) {
        fprintf(stderr,
                "check_interop_zlib: SKIP: sshd not usable here (or SSHFLOW_SKIP_INTEROP set)\n");
        return 0;
    }
    if (sf_test_sshd_init() != 0) {
        fprintf(stderr, "check_interop_zlib: cannot generate test keys\n");
        return 1;
    }
    SRunner *sr = srunner_create(zlib_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
