/*
 * check/check_interop.c -- interop tests of the sshflow client against a
 * real OpenSSH server (sshd from check/testlib/sshd.h).
 *
 * Owns: end-to-end tests through the public API only (include/sshflow.h):
 * the algorithm matrix, user authentication, exec exit codes and signals,
 * stdout/stderr separation, bulk transfers checked by SHA-256, re-keying
 * (server- and client-forced, by volume and by time), concurrent readers
 * and writers, half-close, close semantics (also with a call blocked on
 * another thread), pty/env/shell/subsystem/signal requests, host key
 * checking (known_hosts, pins, callbacks), a server killed mid-transfer,
 * sshd -i over pipes, handshake timeouts, garbage instead of a version
 * line, and keepalive replies. One sshd per tcase (unchecked fixture)
 * unless the tests kill or change it (checked fixture, one per test).
 *
 * Must never: include a src/ header or call an internal sf_* function of the
 * library, reach anything but 127.0.0.1 and the servers it starts, depend on
 * speed or timing for its verdict (every wait is bounded, by ConnectTimeout
 * or the tcase timeout, so a bug fails instead of hanging), or signal a
 * process it did not start.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sshd.h"
#include "sshflow.h"

#define MIB ((size_t) 1024 * 1024)
#define BIG_SIZE (256 * MIB)    /* test 4: upload and download */
#define REKEY_SIZE (64 * MIB)   /* test 5: transfers under server re-keying */
#define CONCUR_SIZE (64 * MIB)  /* test 6: concurrent cat */
#define INETD_SIZE (16 * MIB)   /* test 11: cat over sshd -i */
#define CLIENT_REKEY_SIZE (8 * MIB)
#define MATRIX_SIZE (256 * 1024) /* cat round trip per cipher/MAC */
#define IO_CHUNK MIB
#define CONNECT_TIMEOUT "30"    /* seconds, ConnectTimeout of every normal connection */
#define TCP_TIMEOUT_MS 10000
#define LOG_MAX (256 * 1024)
#define LOG_WAIT_MS 10000       /* bound on waiting for an expected sshd log line */
#define REAP_MS 15000

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static int silent_listener(uint16_t *port);

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* "kind: detail" of an error, for failure messages. */
static const char *
errtxt(const sshflow_error *err)
{
    static __thread char buf[768];

    snprintf(buf, sizeof(buf), "%s (%d): %s", sshflow_err_kind_name(err->kind), err->kind,
             err->detail);
    return buf;
}

static off_t
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The file from offset `from` on (at most cap - 1 bytes), NUL-terminated. */
static void
read_file_from(const char *path, off_t from, char *buf, size_t cap)
{
    ssize_t n = 0;
    size_t off = 0;
    int fd;

    buf[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    while (off + 1 < cap) {
        n = pread(fd, buf + off, cap - 1 - off, from + (off_t) off);
        if (n <= 0) {
            break;
        }
        off += (size_t) n;
    }
    close(fd);
    buf[off] = '\0';
}

/*
 * Wait (bounded) until the sshd log, from offset `from`, contains needle.
 * sshd's monitor may write a line a moment after the client saw the effect,
 * so a line that must be there is polled for rather than read once.
 */
static bool
log_wait_for(const char *log, off_t from, const char *needle)
{
    static char text[LOG_MAX];
    long long deadline = now_ms() + LOG_WAIT_MS;

    for (;;) {
        read_file_from(log, from, text, sizeof(text));
        if (strstr(text, needle) != NULL) {
            return true;
        }
        if (now_ms() >= deadline) {
            return false;
        }
        sleep_ms(20);
    }
}

static bool
log_has(const char *log, off_t from, const char *needle)
{
    static char text[LOG_MAX];

    read_file_from(log, from, text, sizeof(text));
    return strstr(text, needle) != NULL;
}

static void
hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- SHA-256 ---- */

struct sha {
    EVP_MD_CTX *ctx;
};

static void
sha_init(struct sha *h)
{
    h->ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(h->ctx);
    ck_assert_int_eq(EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL), 1);
}

static void
sha_update(struct sha *h, const void *p, size_t n)
{
    ck_assert_int_eq(EVP_DigestUpdate(h->ctx, p, n), 1);
}

/* Finish into 65 bytes of lowercase hex. */
static void
sha_final_hex(struct sha *h, char out[65])
{
    uint8_t md[32];
    unsigned int mdlen = 0;

    ck_assert_int_eq(EVP_DigestFinal_ex(h->ctx, md, &mdlen), 1);
    ck_assert_uint_eq(mdlen, 32);
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    hex(md, 32, out);
}

/*
 * ---- the deterministic byte stream ----
 * AES-128-CTR with key 00 01 .. 0f and a zero IV (last byte = seed) over
 * zeros: the same stream `openssl enc -aes-128-ctr -K .. -iv .. -nosalt`
 * prints for /dev/zero, so the server can produce it too.
 */
#define GEN_KEY_HEX "000102030405060708090a0b0c0d0e0f"

struct gen {
    EVP_CIPHER_CTX *ctx;
    uint8_t *zeros;
};

static void
gen_init(struct gen *g, uint8_t seed)
{
    uint8_t key[16], iv[16];
    size_t i;

    for (i = 0; i < 16; i++) {
        key[i] = (uint8_t) i;
    }
    memset(iv, 0, sizeof(iv));
    iv[15] = seed;
    g->ctx = EVP_CIPHER_CTX_new();
    g->zeros = calloc(1, IO_CHUNK);
    ck_assert_ptr_nonnull(g->ctx);
    ck_assert_ptr_nonnull(g->zeros);
    ck_assert_int_eq(EVP_EncryptInit_ex(g->ctx, EVP_aes_128_ctr(), NULL, key, iv), 1);
}

/* The next n (<= IO_CHUNK) bytes of the stream. */
static void
gen_fill(struct gen *g, uint8_t *out, size_t n)
{
    int outl = 0;

    ck_assert_uint_le(n, IO_CHUNK);
    ck_assert_int_eq(EVP_EncryptUpdate(g->ctx, out, &outl, g->zeros, (int) n), 1);
    ck_assert_int_eq(outl, (int) n);
}

static void
gen_free(struct gen *g)
{
    EVP_CIPHER_CTX_free(g->ctx);
    free(g->zeros);
    g->ctx = NULL;
    g->zeros = NULL;
}

/* SHA-256 (hex) of the first n bytes of the stream with this seed. */
static void
gen_expected_hash(uint8_t seed, size_t n, char out[65])
{
    struct gen g;
    struct sha h;
    uint8_t *buf = malloc(IO_CHUNK);
    size_t done = 0;

    ck_assert_ptr_nonnull(buf);
    gen_init(&g, seed);
    sha_init(&h);
    while (done < n) {
        size_t k = n - done < IO_CHUNK ? n - done : IO_CHUNK;

        gen_fill(&g, buf, k);
        sha_update(&h, buf, k);
        done += k;
    }
    sha_final_hex(&h, out);
    gen_free(&g);
    free(buf);
}

/* The shell command that prints the first n bytes of the stream with this seed. */
static void
gen_command(uint8_t seed, size_t n, char *cmd, size_t cmdsz)
{
    snprintf(cmd, cmdsz,
             "openssl enc -aes-128-ctr -K " GEN_KEY_HEX
             " -iv 000000000000000000000000000000%02x -nosalt -in /dev/zero 2>/dev/null"
             " | head -c %zu",
             (unsigned) seed, n);
}

/* ------------------------------------------------------------------------ */
/* Servers and connections                                                  */
/* ------------------------------------------------------------------------ */

/*
 * The server of the current tcase. Tcases that only connect share one started
 * by an unchecked fixture (in the runner process; each forked test gets a
 * copy of this struct); tcases that kill or rotate it start their own in a
 * checked fixture. Fixtures cannot fail a test from the runner process, so
 * they record success and every test asserts it.
 */
static struct sf_test_sshd srv;
static bool srv_ok;

static void
srv_start(const char *extra)
{
    srv_ok = sf_test_sshd_start(&srv, extra) == 0;
    if (!srv_ok) {
        fprintf(stderr, "check_interop: cannot start sshd (extra config: %s)\n",
                extra != NULL ? extra : "none");
    }
}

static void
setup_default(void)
{
    srv_start(NULL);
}

static void
setup_rekey(void)
{
    srv_start("RekeyLimit 1M\n");
}

static void
setup_rekey_time(void)
{
    srv_start("RekeyLimit 1G 1\n");
}

static void
setup_keepalive(void)
{
    srv_start("ClientAliveInterval 1\nClientAliveCountMax 1\n");
}

static void
teardown_srv(void)
{
    sf_test_sshd_stop(&srv);
    srv_ok = false;
}

#define REQUIRE_SRV() ck_assert_msg(srv_ok, "the test sshd did not start (see stderr)")

/* Options of one connection; zero means the default. */
struct copts {
    const char *kex, *hostkey, *cipher, *mac, *rekey; /* forced algorithm lists */
    const char *keyfile;                  /* user key; NULL: the ed25519 user key */
    const char *password;                 /* password credential (added after the key) */
    bool no_key;                          /* do not add any key */
    const char *user;                     /* NULL: srv.user */
    const sshflow_hostauth *hostauth;     /* NULL: srv's known_hosts, strict */
    const char *connect_timeout;          /* NULL: CONNECT_TIMEOUT */
};

static sshflow_config *
make_config(const struct copts *o)
{
    static const char *const names[] = { "KexAlgorithms", "HostKeyAlgorithms", "Ciphers", "MACs",
                                         "RekeyLimit" };
    const char *values[5] = { o->kex, o->hostkey, o->cipher, o->mac, o->rekey };
    sshflow_config *cfg = sshflow_config_new();
    sshflow_error err;
    size_t i;

    ck_assert_ptr_nonnull(cfg);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_config_set(cfg, "ConnectTimeout",
                                     o->connect_timeout != NULL ? o->connect_timeout : CONNECT_TIMEOUT,
                                     &err) == 0,
                  "ConnectTimeout: %s", errtxt(&err));
    for (i = 0; i < 5; i++) {
        if (values[i] == NULL) {
            continue;
        }
        ck_assert_msg(sshflow_config_set(cfg, names[i], values[i], &err) == 0, "config %s=%s: %s",
                      names[i], values[i], errtxt(&err));
    }
    return cfg;
}

static sshflow_cred *
make_cred(const struct sf_test_sshd *s, const struct copts *o)
{
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_error err;

    ck_assert_ptr_nonnull(cred);
    memset(&err, 0, sizeof(err));
    if (!o->no_key) {
        const char *key = o->keyfile != NULL ? o->keyfile : s->userkey_ed25519;

        ck_assert_msg(sshflow_cred_add_keyfile(cred, key, NULL, &err) == 0, "key %s: %s", key,
                      errtxt(&err));
    }
    if (o->password != NULL) {
        ck_assert_msg(sshflow_cred_add_password(cred, o->password, &err) == 0, "password: %s",
                      errtxt(&err));
    }
    return cred;
}

/* Upgrade `transport` to an SSH channel running req. Returns NULL with err on failure. */
static sshflow_flow *
upgrade(const struct sf_test_sshd *s, sshflow_flow *transport, sshflow_request *req,
        const struct copts *o, sshflow_config *cfg_in, sshflow_error *err)
{
    sshflow_config *cfg = cfg_in != NULL ? cfg_in : make_config(o);
    sshflow_cred *cred = make_cred(s, o);
    sshflow_hostauth *own = NULL;
    const sshflow_hostauth *ha = o->hostauth;
    sshflow_flow *f;

    if (ha == NULL) {
        own = sshflow_hostauth_known_hosts(s->known_hosts, SSHFLOW_HOSTKEY_STRICT);
        ck_assert_ptr_nonnull(own);
        ha = own;
    }
    f = sshflow_client_of_flow(transport, o->user != NULL ? o->user : s->user, cred, ha, req, cfg,
                               err);
    sshflow_hostauth_free(own);
    sshflow_cred_free(cred);
    if (cfg_in == NULL) {
        sshflow_config_free(cfg);
    }
    return f;
}

/* Connect by TCP to s and run cmd. Returns NULL with err filled on failure. */
static sshflow_flow *
try_exec(const struct sf_test_sshd *s, const char *cmd, const struct copts *o, sshflow_error *err)
{
    static const struct copts none;
    sshflow_request *req = sshflow_request_exec(cmd);
    sshflow_flow *transport, *f;

    if (o == NULL) {
        o = &none;
    }
    memset(err, 0, sizeof(*err));
    ck_assert_ptr_nonnull(req);
    transport = sshflow_connect_tcp("127.0.0.1", s->port, TCP_TIMEOUT_MS, err);
    if (transport == NULL) {
        sshflow_request_free(req);
        return NULL;
    }
    f = upgrade(s, transport, req, o, NULL, err);
    sshflow_request_free(req);
    return f;
}

/* try_exec that must succeed. */
static sshflow_flow *
must_exec(const struct sf_test_sshd *s, const char *cmd, const struct copts *o)
{
    sshflow_error err;
    sshflow_flow *f = try_exec(s, cmd, o, &err);

    ck_assert_msg(f != NULL, "connect and exec '%s' failed: %s", cmd, errtxt(&err));
    return f;
}

/* Read stdout until EOF into buf (NUL-terminated); returns the length. */
static size_t
read_all(sshflow_flow *f, char *buf, size_t cap)
{
    sshflow_error err;
    size_t len = 0;

    memset(&err, 0, sizeof(err));
    for (;;) {
        ssize_t n;

        ck_assert_msg(len + 1 < cap, "more output than expected: %.200s", buf);
        n = sshflow_read_into(f, buf + len, cap - 1 - len, &err);
        ck_assert_msg(n >= 0, "read failed after %zu bytes: %s", len, errtxt(&err));
        if (n == 0) {
            break;
        }
        len += (size_t) n;
        buf[len] = '\0';
    }
    buf[len] = '\0';
    return len;
}

/* Read stderr until EOF into buf (NUL-terminated); returns the length. */
static size_t
read_all_stderr(sshflow_flow *f, char *buf, size_t cap)
{
    sshflow_error err;
    size_t len = 0;

    memset(&err, 0, sizeof(err));
    for (;;) {
        ssize_t n;

        ck_assert_msg(len + 1 < cap, "more stderr than expected: %.200s", buf);
        n = sshflow_read_stderr(f, buf + len, cap - 1 - len, &err);
        ck_assert_msg(n >= 0, "stderr read failed after %zu bytes: %s", len, errtxt(&err));
        if (n == 0) {
            break;
        }
        len += (size_t) n;
    }
    buf[len] = '\0';
    return len;
}

/* when: where the test is (the API says the exit is final once close returned 0). */
static void
expect_exit_status_at(sshflow_flow *f, uint32_t status, const char *when)
{
    sshflow_exit ex;

    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_msg(ex.kind == SSHFLOW_EXIT_STATUS,
                  "%s: exit kind %d%s (signal '%s'), want STATUS %u", when, ex.kind,
                  ex.kind == SSHFLOW_EXIT_NONE ? " = NONE, not known yet" : "", ex.signal,
                  status);
    ck_assert_uint_eq(ex.status, status);
}

/* Close (bounded) and free. */
static void
close_ok(sshflow_flow *f)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_close_timeout(f, 30000, &err) == 0, "close: %s", errtxt(&err));
    sshflow_free(f);
}

/*
 * Close (bounded), then expect the exit status (final once close returned),
 * and free. Tests whose subject is not the EOF/exit-status ordering check the
 * status here rather than right after EOF (test_exec_* do that).
 */
static void
close_status(sshflow_flow *f, uint32_t status)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_close_timeout(f, 30000, &err) == 0, "close: %s", errtxt(&err));
    expect_exit_status_at(f, status, "after close");
    sshflow_free(f);
}

/* Run cmd, read its stdout to EOF into out, close, expect exit status 0. */
static void
run_ok(const struct sf_test_sshd *s, const char *cmd, const struct copts *o, char *out,
       size_t cap)
{
    sshflow_flow *f = must_exec(s, cmd, o);

    read_all(f, out, cap);
    close_status(f, 0);
}

/* The value of "key=" in a sshflow_describe() string, into out. */
static void
desc_get(const char *desc, const char *key, char *out, size_t outsz)
{
    size_t klen = strlen(key);
    const char *p = desc;

    out[0] = '\0';
    while (p != NULL && *p != '\0') {
        while (*p == ' ') {
            p++;
        }
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            size_t n = strcspn(p + klen + 1, " ");

            snprintf(out, outsz, "%.*s", (int) n, p + klen + 1);
            return;
        }
        p = strchr(p, ' ');
    }
}

/* "SHA256:..." fingerprint of a public key file, by ssh-keygen -l. */
static void
keygen_fingerprint(const char *pubpath, char *fp, size_t fpsz)
{
    char *argv[] = { (char *) SF_TEST_SSH_KEYGEN_PATH, (char *) "-l", (char *) "-E",
                     (char *) "sha256", (char *) "-f", (char *) pubpath, NULL };
    char out[1024], errbuf[1024];
    char bits[32], f[256];
    int rc;

    rc = sf_test_run(argv, NULL, out, sizeof(out), errbuf, sizeof(errbuf), 20000);
    ck_assert_msg(rc == 0, "ssh-keygen -l -f %s: %d %s", pubpath, rc, errbuf);
    ck_assert_msg(sscanf(out, "%31s %255s", bits, f) == 2 && strncmp(f, "SHA256:", 7) == 0,
                  "unexpected ssh-keygen output: %s", out);
    snprintf(fp, fpsz, "%s", f);
}

/* ------------------------------------------------------------------------ */
/* Bulk transfer helpers                                                    */
/* ------------------------------------------------------------------------ */

/* Write n bytes of the seed stream to f in chunks; hash them into hash_hex. */
struct writer {
    sshflow_flow *f;
    size_t n;
    uint8_t seed;
    bool shutdown_after;
    int rc;             /* 0 or the failing call's kind */
    size_t written;
    sshflow_error err;
    char hash_hex[65];
};

static void *
writer_run(void *arg)
{
    struct writer *w = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    struct gen g;
    struct sha h;
    size_t i = 0;

    memset(&w->err, 0, sizeof(w->err));
    w->rc = SSHFLOW_ERR_NOMEM;
    if (buf == NULL) {
        return NULL;
    }
    gen_init(&g, w->seed);
    sha_init(&h);
    w->rc = 0;
    while (w->written < w->n) {
        /* Vary the write sizes: 1 MiB, then odd sizes that straddle packets. */
        size_t want = (i++ % 3 == 0) ? IO_CHUNK : (IO_CHUNK / 3 + 17 * i) % IO_CHUNK + 1;
        size_t k = w->n - w->written < want ? w->n - w->written : want;

        gen_fill(&g, buf, k);
        sha_update(&h, buf, k);
        w->rc = sshflow_write(w->f, buf, k, &w->err);
        if (w->rc != 0) {
            break;
        }
        w->written += k;
    }
    if (w->rc == 0 && w->shutdown_after) {
        w->rc = sshflow_shutdown(w->f, &w->err);
    }
    sha_final_hex(&h, w->hash_hex);
    gen_free(&g);
    free(buf);
    return NULL;
}

/* Read stdout to EOF, hashing; returns the byte count. */
static size_t
read_hash(sshflow_flow *f, char hash_hex[65])
{
    uint8_t *buf = malloc(IO_CHUNK);
    struct sha h;
    sshflow_error err;
    size_t total = 0;

    ck_assert_ptr_nonnull(buf);
    memset(&err, 0, sizeof(err));
    sha_init(&h);
    for (;;) {
        ssize_t n = sshflow_read_into(f, buf, IO_CHUNK, &err);

        ck_assert_msg(n >= 0, "read failed after %zu bytes: %s", total, errtxt(&err));
        if (n == 0) {
            break;
        }
        ck_assert_uint_le((size_t) n, IO_CHUNK);
        sha_update(&h, buf, (size_t) n);
        total += (size_t) n;
    }
    sha_final_hex(&h, hash_hex);
    free(buf);
    return total;
}

/*
 * Send n bytes of the seed stream through `cat` while reading them back on
 * this thread; the bytes and hashes must match.
 */
static void
cat_roundtrip(sshflow_flow *f, size_t n, uint8_t seed)
{
    struct writer w;
    pthread_t th;
    char got[65];
    size_t total;

    memset(&w, 0, sizeof(w));
    w.f = f;
    w.n = n;
    w.seed = seed;
    w.shutdown_after = true;
    ck_assert_int_eq(pthread_create(&th, NULL, writer_run, &w), 0);
    total = read_hash(f, got);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(w.rc == 0, "writer failed after %zu bytes: %s", w.written, errtxt(&w.err));
    ck_assert_uint_eq(total, n);
    ck_assert_str_eq(got, w.hash_hex);
}

/* Upload n bytes of the seed stream to `sha256sum` and compare its answer. */
static void
upload_check(sshflow_flow *f, size_t n, uint8_t seed)
{
    struct writer w;
    char out[256];

    memset(&w, 0, sizeof(w));
    w.f = f;
    w.n = n;
    w.seed = seed;
    w.shutdown_after = true;
    writer_run(&w);
    ck_assert_msg(w.rc == 0, "upload failed after %zu bytes: %s", w.written, errtxt(&w.err));
    read_all(f, out, sizeof(out));
    ck_assert_msg(strlen(out) >= 64 && strncmp(out, w.hash_hex, 64) == 0,
                  "sha256sum on the server printed '%s', we sent %s", out, w.hash_hex);
}

/* Download n bytes of the seed stream generated by the server and compare. */
static void
download_check(sshflow_flow *f, size_t n, uint8_t seed)
{
    char got[65], want[65];
    size_t total = read_hash(f, got);

    gen_expected_hash(seed, n, want);
    ck_assert_uint_eq(total, n);
    ck_assert_str_eq(got, want);
}

/* ------------------------------------------------------------------------ */
/* 1. Algorithm matrix                                                      */
/* ------------------------------------------------------------------------ */

static const char *const kexes[] = {
    "curve25519-sha256",  "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",           "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512",
};
#define N_KEX (sizeof(kexes) / sizeof(kexes[0]))

static const char *const hostkeys[] = {
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "rsa-sha2-512", "rsa-sha2-256",
};
#define N_HOSTKEY (sizeof(hostkeys) / sizeof(hostkeys[0]))

/* Every cipher, with every MAC for the ones that need one (NULL: AEAD). */
static const struct {
    const char *cipher, *mac;
} ciphermacs[] = {
    { "chacha20-poly1305@openssh.com", NULL },
    { "aes128-gcm@openssh.com", NULL },
    { "aes256-gcm@openssh.com", NULL },
    { "aes128-ctr", "hmac-sha2-256-etm@openssh.com" },
    { "aes128-ctr", "hmac-sha2-512-etm@openssh.com" },
    { "aes128-ctr", "hmac-sha2-256" },
    { "aes128-ctr", "hmac-sha2-512" },
    { "aes192-ctr", "hmac-sha2-256-etm@openssh.com" },
    { "aes192-ctr", "hmac-sha2-512-etm@openssh.com" },
    { "aes192-ctr", "hmac-sha2-256" },
    { "aes192-ctr", "hmac-sha2-512" },
    { "aes256-ctr", "hmac-sha2-256-etm@openssh.com" },
    { "aes256-ctr", "hmac-sha2-512-etm@openssh.com" },
    { "aes256-ctr", "hmac-sha2-256" },
    { "aes256-ctr", "hmac-sha2-512" },
};
#define N_CIPHERMAC (sizeof(ciphermacs) / sizeof(ciphermacs[0]))

/* A few combinations off both axes. */
static const struct {
    const char *kex, *hostkey, *cipher, *mac;
} mixes[] = {
    { "ecdh-sha2-nistp521", "ecdsa-sha2-nistp384", "aes256-ctr", "hmac-sha2-512" },
    { "diffie-hellman-group16-sha512", "rsa-sha2-256", "aes192-ctr", "hmac-sha2-256-etm@openssh.com" },
    { "curve25519-sha256@libssh.org", "ecdsa-sha2-nistp256", "aes128-gcm@openssh.com", NULL },
    { "diffie-hellman-group14-sha256", "ssh-ed25519", "chacha20-poly1305@openssh.com", NULL },
    { "ecdh-sha2-nistp384", "rsa-sha2-512", "aes128-ctr", "hmac-sha2-512-etm@openssh.com" },
    { "ecdh-sha2-nistp256", "ssh-ed25519", "aes256-gcm@openssh.com", NULL },
};
#define N_MIX (sizeof(mixes) / sizeof(mixes[0]))

static bool
is_hmac(const char *name)
{
    return strncmp(name, "hmac-", 5) == 0;
}

/* Check the negotiated names against the forced ones (NULL: not checked). */
static void
expect_desc(sshflow_flow *f, const char *kex, const char *hostkey, const char *cipher,
            const char *mac, bool aead)
{
    char desc[512], v[128];

    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    if (kex != NULL) {
        desc_get(desc, "kex", v, sizeof(v));
        ck_assert_msg(strcmp(v, kex) == 0, "kex: want %s, describe says '%s'", kex, desc);
    }
    if (hostkey != NULL) {
        desc_get(desc, "hostkey", v, sizeof(v));
        ck_assert_msg(strcmp(v, hostkey) == 0, "hostkey: want %s, describe says '%s'", hostkey, desc);
    }
    if (cipher != NULL) {
        desc_get(desc, "cipher", v, sizeof(v));
        ck_assert_msg(strcmp(v, cipher) == 0, "cipher: want %s, describe says '%s'", cipher, desc);
    }
    desc_get(desc, "mac", v, sizeof(v));
    if (mac != NULL) {
        ck_assert_msg(strcmp(v, mac) == 0, "mac: want %s, describe says '%s'", mac, desc);
    } else if (aead) {
        ck_assert_msg(v[0] != '\0' && !is_hmac(v), "AEAD cipher but mac is '%s' in '%s'", v, desc);
    }
}

START_TEST(test_algs_kex_hostkey)
{
    const char *kex = kexes[(size_t) _i / N_HOSTKEY];
    const char *hk = hostkeys[(size_t) _i % N_HOSTKEY];
    struct copts o;
    sshflow_flow *f;
    char out[64];

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.kex = kex;
    o.hostkey = hk;
    f = must_exec(&srv, "echo ok", &o);
    expect_desc(f, kex, hk, NULL, NULL, false);
    ck_assert_uint_eq(sshflow_kex_count(f), 1);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    close_status(f, 0);
}
END_TEST

START_TEST(test_algs_cipher_mac)
{
    const char *cipher = ciphermacs[_i].cipher, *mac = ciphermacs[_i].mac;
    struct copts o;
    sshflow_flow *f;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.cipher = cipher;
    o.mac = mac;
    f = must_exec(&srv, "cat", &o);
    expect_desc(f, NULL, NULL, cipher, mac, mac == NULL);
    cat_roundtrip(f, MATRIX_SIZE, (uint8_t) _i);
    close_status(f, 0);
}
END_TEST

START_TEST(test_algs_mix)
{
    struct copts o;
    sshflow_flow *f;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.kex = mixes[_i].kex;
    o.hostkey = mixes[_i].hostkey;
    o.cipher = mixes[_i].cipher;
    o.mac = mixes[_i].mac;
    f = must_exec(&srv, "cat", &o);
    expect_desc(f, o.kex, o.hostkey, o.cipher, o.mac, o.mac == NULL);
    cat_roundtrip(f, MATRIX_SIZE, (uint8_t) (0x40 + _i));
    close_status(f, 0);
}
END_TEST

/* A forced algorithm the server lacks must fail cleanly (PROTOCOL: nothing in common). */
START_TEST(test_algs_no_common_hostkey)
{
    struct sf_test_sshd *s = &srv;
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    /* The server offers nistp521 as an algorithm but has no such key. */
    o.hostkey = "ecdsa-sha2-nistp521";
    f = try_exec(s, "echo ok", &o, &err);
    ck_assert_msg(f == NULL, "connected with a host key algorithm the server has no key for");
    ck_assert_msg(err.kind == SSHFLOW_ERR_PROTOCOL, "want PROTOCOL, got %s", errtxt(&err));
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 2. User authentication                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_auth_userkey)
{
    static const char *const logtype[3] = { "ED25519", "ECDSA", "RSA" };
    const char *keys[3] = { srv.userkey_ed25519, srv.userkey_ecdsa, srv.userkey_rsa };
    char fp[128], needle[512], out[64];
    struct copts o;
    off_t from;

    REQUIRE_SRV();
    keygen_fingerprint(keys[_i], fp, sizeof(fp)); /* of the private key: ssh-keygen reads .pub */
    from = file_size(srv.log);
    memset(&o, 0, sizeof(o));
    o.keyfile = keys[_i];
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    /* The server accepted exactly this key. */
    snprintf(needle, sizeof(needle), "Accepted publickey for %s from 127.0.0.1", srv.user);
    ck_assert_msg(log_wait_for(srv.log, from, needle), "sshd log lacks '%s'", needle);
    snprintf(needle, sizeof(needle), "%s %s", logtype[_i], fp);
    ck_assert_msg(log_has(srv.log, from, needle), "sshd log lacks '%s'", needle);
}
END_TEST

START_TEST(test_auth_password)
{
    struct copts o;
    char out[128], needle[256];
    off_t from;

    REQUIRE_SRV();
    if (sf_test_password_user() != 0) {
        fprintf(stderr, "check_interop: SKIP test_auth_password: no password user (needs root)\n");
        return;
    }
    from = file_size(srv.log);
    memset(&o, 0, sizeof(o));
    o.no_key = true;
    o.password = SF_TEST_PW_PASSWORD;
    o.user = SF_TEST_PW_USER;
    run_ok(&srv, "id -un", &o, out, sizeof(out));
    ck_assert_str_eq(out, SF_TEST_PW_USER "\n");
    snprintf(needle, sizeof(needle), "Accepted password for %s", SF_TEST_PW_USER);
    ck_assert_msg(log_wait_for(srv.log, from, needle), "sshd log lacks '%s'", needle);
}
END_TEST

START_TEST(test_auth_password_wrong)
{
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;

    REQUIRE_SRV();
    if (sf_test_password_user() != 0) {
        fprintf(stderr, "check_interop: SKIP test_auth_password_wrong: no password user\n");
        return;
    }
    memset(&o, 0, sizeof(o));
    o.no_key = true;
    o.password = "not-the-password";
    o.user = SF_TEST_PW_USER;
    f = try_exec(&srv, "id -un", &o, &err);
    ck_assert_msg(f == NULL, "logged in with a wrong password");
    ck_assert_msg(err.kind == SSHFLOW_ERR_AUTH, "want AUTH, got %s", errtxt(&err));
}
END_TEST

START_TEST(test_auth_key_unauthorized)
{
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;
    char sentence[1024];

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.keyfile = srv.userkey_unauth;
    f = try_exec(&srv, "echo ok", &o, &err);
    ck_assert_msg(f == NULL, "logged in with a key that is not in authorized_keys");
    ck_assert_msg(err.kind == SSHFLOW_ERR_AUTH, "want AUTH, got %s", errtxt(&err));
    /* The detail names the methods the server accepts (publickey,password). */
    ck_assert_msg(strstr(err.detail, "publickey") != NULL && strstr(err.detail, "password") != NULL,
                  "detail does not name the server's methods: %s", err.detail);
    sshflow_strerror(&err, sentence, sizeof(sentence));
    ck_assert_msg(strstr(sentence, "publickey") != NULL, "strerror: %s", sentence);
}
END_TEST

/* A refused password, then a good key. */
START_TEST(test_auth_password_then_key)
{
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_hostauth *ha = sshflow_hostauth_known_hosts(srv.known_hosts, SSHFLOW_HOSTKEY_STRICT);
    sshflow_request *req = sshflow_request_exec("echo key-after-password");
    sshflow_error err;
    sshflow_flow *t, *f;
    char out[64];

    REQUIRE_SRV();
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_cred_add_password(cred, "certainly-not-the-password", &err), 0);
    ck_assert_int_eq(sshflow_cred_add_keyfile(cred, srv.userkey_rsa, NULL, &err), 0);
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = sshflow_client_of_flow(t, srv.user, cred, ha, req, NULL, &err);
    ck_assert_msg(f != NULL, "key after a refused password: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "key-after-password\n");
    close_status(f, 0);
    sshflow_cred_free(cred);
    sshflow_hostauth_free(ha);
    sshflow_request_free(req);
}
END_TEST

/* Credentials are tried in order: a refused key, then a good one. */
START_TEST(test_auth_second_key)
{
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_hostauth *ha = sshflow_hostauth_known_hosts(srv.known_hosts, SSHFLOW_HOSTKEY_STRICT);
    sshflow_request *req = sshflow_request_exec("echo second");
    sshflow_error err;
    sshflow_flow *t, *f;
    char out[64];

    REQUIRE_SRV();
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_cred_add_keyfile(cred, srv.userkey_unauth, NULL, &err), 0);
    ck_assert_int_eq(sshflow_cred_add_keyfile(cred, srv.userkey_ecdsa, NULL, &err), 0);
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = sshflow_client_of_flow(t, srv.user, cred, ha, req, NULL, &err);
    ck_assert_msg(f != NULL, "second key not tried: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "second\n");
    close_status(f, 0);
    sshflow_cred_free(cred);
    sshflow_hostauth_free(ha);
    sshflow_request_free(req);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 3. exec: exit codes, signals, stdout and stderr                          */
/* ------------------------------------------------------------------------ */

START_TEST(test_exec_exit_code)
{
    static const uint32_t codes[] = { 0, 1, 3, 255 };
    char cmd[64], out[64];
    sshflow_flow *f;

    REQUIRE_SRV();
    snprintf(cmd, sizeof(cmd), "echo x; exit %u", codes[_i]);
    f = must_exec(&srv, cmd, NULL);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "x\n");
    close_status(f, codes[_i]);
}
END_TEST

START_TEST(test_exec_exit_signal)
{
    static const char *const sigs[] = { "TERM", "KILL", "SEGV", "HUP" };
    char cmd[128], out[64];
    sshflow_exit ex;
    sshflow_flow *f;

    REQUIRE_SRV();
    /* ulimit -c 0: no core file for SEGV. */
    snprintf(cmd, sizeof(cmd), "ulimit -c 0; echo x; kill -%s $$; echo not-reached", sigs[_i]);
    f = must_exec(&srv, cmd, NULL);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "x\n");
    ck_assert_int_eq(sshflow_close_timeout(f, 30000, NULL), 0);
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_msg(ex.kind == SSHFLOW_EXIT_SIGNAL,
                  "after close: exit kind %d status %u, want SIGNAL %s", ex.kind,
                  ex.status, sigs[_i]);
    ck_assert_str_eq(ex.signal, sigs[_i]);
    ck_assert(!ex.core_dumped);
    sshflow_free(f);
}
END_TEST

/*
 * OpenSSH sends CHANNEL_EOF when the command's output closes and exit-status
 * when it exits, which may be later: here the output closes 1 s before the
 * exit. The API promises the status is final once close returned 0 (close
 * waits for the remote's CLOSE, which follows the status).
 */
START_TEST(test_exec_exit_after_eof)
{
    char out[64];
    sshflow_flow *f;

    REQUIRE_SRV();
    f = must_exec(&srv, "echo x; exec >&- 2>&-; sleep 1; exit 3", NULL);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "x\n");
    close_status(f, 3);
}
END_TEST

START_TEST(test_exec_stdout_stderr)
{
    char out[256], errb[256];
    sshflow_flow *f;

    REQUIRE_SRV();
    f = must_exec(&srv,
                  "printf 'out1\\n'; printf 'err1\\n' >&2; printf 'out2\\n'; printf 'err2\\n' >&2; "
                  "exit 7",
                  NULL);
    read_all(f, out, sizeof(out));
    read_all_stderr(f, errb, sizeof(errb));
    ck_assert_str_eq(out, "out1\nout2\n");
    ck_assert_str_eq(errb, "err1\nerr2\n");
    ck_assert_uint_eq(sshflow_stderr_dropped(f), 0);
    close_status(f, 7);
}
END_TEST

/* Unread stderr beyond MaxStderrBuffer is dropped and counted; stdout goes on. */
START_TEST(test_exec_stderr_unread)
{
    const size_t errbytes = 4000000;
    sshflow_config *cfg;
    sshflow_request *req = sshflow_request_exec("head -c 4000000 /dev/zero >&2; echo done");
    struct copts o;
    sshflow_error err;
    sshflow_flow *t, *f;
    char out[64];
    uint8_t *eb = malloc(2 * MIB);
    size_t elen = 0, i;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(eb);
    memset(&o, 0, sizeof(o));
    cfg = make_config(&o);
    ck_assert_int_eq(sshflow_config_set(cfg, "MaxStderrBuffer", "65536", &err), 0);
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = upgrade(&srv, t, req, &o, cfg, &err);
    ck_assert_msg(f != NULL, "exec: %s", errtxt(&err));
    /* Only stdout is read until EOF: the unread stderr must not stall it. */
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "done\n");
    /* The first 64 KiB were kept, the rest dropped and counted. */
    for (;;) {
        ssize_t n = sshflow_read_stderr(f, eb + elen, 2 * MIB - elen, &err);

        ck_assert_msg(n >= 0, "stderr: %s", errtxt(&err));
        if (n == 0) {
            break;
        }
        elen += (size_t) n;
        ck_assert_uint_lt(elen, 2 * MIB);
    }
    ck_assert_uint_eq(elen, 65536);
    for (i = 0; i < elen && eb[i] == 0; i++) {
    }
    ck_assert_msg(i == elen, "stderr byte %zu is 0x%02x, want 0", i, eb[i]);
    ck_assert_uint_eq(sshflow_stderr_dropped(f), errbytes - 65536);
    close_status(f, 0);
    sshflow_config_free(cfg);
    sshflow_request_free(req);
    free(eb);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 4. 256 MiB each way, checked by SHA-256                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_bulk_upload_256m)
{
    sshflow_flow *f;

    REQUIRE_SRV();
    f = must_exec(&srv, "sha256sum", NULL);
    upload_check(f, BIG_SIZE, 1);
    close_status(f, 0);
}
END_TEST

START_TEST(test_bulk_download_256m)
{
    char cmd[256];
    sshflow_flow *f;

    REQUIRE_SRV();
    gen_command(2, BIG_SIZE, cmd, sizeof(cmd));
    f = must_exec(&srv, cmd, NULL);
    download_check(f, BIG_SIZE, 2);
    close_status(f, 0);
}
END_TEST

/* Download via sshflow_read() (library-allocated buffers) of a file the test wrote. */
START_TEST(test_bulk_download_file_read)
{
    const size_t n = 8 * MIB + 12345;
    char path[400], cmd[512], want[65], got[65];
    uint8_t *buf = malloc(IO_CHUNK);
    struct gen g;
    struct sha h;
    sshflow_error err;
    sshflow_flow *f;
    size_t done = 0, total = 0;
    FILE *fp;
    int r;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(buf);
    snprintf(path, sizeof(path), "%s/download.bin", srv.dir);
    fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    gen_init(&g, 3);
    sha_init(&h);
    while (done < n) {
        size_t k = n - done < IO_CHUNK ? n - done : IO_CHUNK;

        gen_fill(&g, buf, k);
        sha_update(&h, buf, k);
        ck_assert_uint_eq(fwrite(buf, 1, k, fp), k);
        done += k;
    }
    ck_assert_int_eq(fclose(fp), 0);
    sha_final_hex(&h, want);
    gen_free(&g);

    snprintf(cmd, sizeof(cmd), "cat '%s'", path);
    f = must_exec(&srv, cmd, NULL);
    sha_init(&h);
    memset(&err, 0, sizeof(err));
    for (;;) {
        uint8_t *p = NULL;
        size_t plen = 0;

        r = sshflow_read(f, &p, &plen, &err);
        ck_assert_msg(r == 0 || r == SSHFLOW_EOF, "read: %s", errtxt(&err));
        if (r == SSHFLOW_EOF) {
            ck_assert_ptr_null(p);
            break;
        }
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_ge(plen, 1);
        sha_update(&h, p, plen);
        total += plen;
        free(p);
    }
    sha_final_hex(&h, got);
    ck_assert_uint_eq(total, n);
    ck_assert_str_eq(got, want);
    close_status(f, 0);
    free(buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 5. Re-keying                                                             */
/* ------------------------------------------------------------------------ */

START_TEST(test_rekey_server_upload)
{
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    f = must_exec(&srv, "sha256sum", NULL);
    upload_check(f, REKEY_SIZE, 4);
    k = sshflow_kex_count(f);
    ck_assert_msg(k > 1, "kex_count %u after 64 MiB with server RekeyLimit 1M", k);
    close_status(f, 0);
}
END_TEST

START_TEST(test_rekey_server_download)
{
    char cmd[256];
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    gen_command(5, REKEY_SIZE, cmd, sizeof(cmd));
    f = must_exec(&srv, cmd, NULL);
    download_check(f, REKEY_SIZE, 5);
    k = sshflow_kex_count(f);
    ck_assert_msg(k > 1, "kex_count %u after 64 MiB with server RekeyLimit 1M", k);
    close_status(f, 0);
}
END_TEST

/* Server re-keys while data flows both ways at once. */
START_TEST(test_rekey_server_cat)
{
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    f = must_exec(&srv, "cat", NULL);
    cat_roundtrip(f, 16 * MIB, 6);
    k = sshflow_kex_count(f);
    ck_assert_msg(k > 1, "kex_count %u after 16 MiB each way with server RekeyLimit 1M", k);
    close_status(f, 0);
}
END_TEST

START_TEST(test_rekey_client)
{
    struct copts o;
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.rekey = "1M";
    f = must_exec(&srv, "cat", &o);
    cat_roundtrip(f, CLIENT_REKEY_SIZE, 7);
    k = sshflow_kex_count(f);
    ck_assert_msg(k > 1, "kex_count %u after 8 MiB each way with client RekeyLimit 1M", k);
    close_status(f, 0);
}
END_TEST

/* The client's RekeyLimit also applies per algorithm: chacha20 and an ETM MAC. */
START_TEST(test_rekey_client_ciphers)
{
    static const struct {
        const char *cipher, *mac;
    } cm[] = {
        { "chacha20-poly1305@openssh.com", NULL },
        { "aes256-gcm@openssh.com", NULL },
        { "aes128-ctr", "hmac-sha2-256-etm@openssh.com" },
        { "aes256-ctr", "hmac-sha2-512" },
    };
    struct copts o;
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.rekey = "256K";
    o.cipher = cm[_i].cipher;
    o.mac = cm[_i].mac;
    f = must_exec(&srv, "cat", &o);
    cat_roundtrip(f, 2 * MIB, (uint8_t) (0x20 + _i));
    k = sshflow_kex_count(f);
    ck_assert_msg(k > 1, "kex_count %u with %s", k, cm[_i].cipher);
    expect_desc(f, NULL, NULL, cm[_i].cipher, cm[_i].mac, cm[_i].mac == NULL);
    close_status(f, 0);
}
END_TEST

/*
 * Poll (bounded, 20 s) until a key exchange beyond the first completed while
 * the connection carries no traffic at all: the remote waits for a line we
 * do not send yet, and this thread makes no call on the flow but kex_count.
 */
static unsigned
wait_rekey_idle(sshflow_flow *f)
{
    long long deadline = now_ms() + 20000;
    unsigned k;

    while ((k = sshflow_kex_count(f)) <= 1 && now_ms() < deadline) {
        sleep_ms(50);
    }
    return k;
}

/* The line that ends an idle test: the connection still works both ways. */
static void
finish_idle(sshflow_flow *f)
{
    sshflow_error err;
    char out[64];

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_write(f, "go\n", 3, &err) == 0, "write after re-keys: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "idle-done go\n");
    close_status(f, 0);
}

/* The server (RekeyLimit 1G 1) re-keys by time; we answer although nobody reads. */
START_TEST(test_rekey_server_idle)
{
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    f = must_exec(&srv, "read x; echo idle-done $x", NULL);
    k = wait_rekey_idle(f);
    ck_assert_msg(k > 1, "kex_count %u after 20 idle seconds with server RekeyLimit 1G 1", k);
    finish_idle(f);
    /* And bulk data after time-based re-keys. */
    f = must_exec(&srv, "sleep 2; cat", NULL);
    cat_roundtrip(f, 4 * MIB, 0x50);
    close_status(f, 0);
}
END_TEST

/* The client's own time limit (RekeyLimit "1G 1") fires on an idle connection too. */
START_TEST(test_rekey_client_idle)
{
    struct copts o;
    sshflow_flow *f;
    unsigned k;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    o.rekey = "1G 1";
    f = must_exec(&srv, "read x; echo idle-done $x", &o);
    k = wait_rekey_idle(f);
    ck_assert_msg(k > 1, "kex_count %u after 20 idle seconds with client RekeyLimit 1G 1", k);
    finish_idle(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 6. Concurrent reader and writer                                          */
/* ------------------------------------------------------------------------ */

START_TEST(test_concurrent_cat_64m)
{
    sshflow_flow *f;

    REQUIRE_SRV();
    f = must_exec(&srv, "cat", NULL);
    cat_roundtrip(f, CONCUR_SIZE, 8);
    close_status(f, 0);
}
END_TEST

/*
 * Concurrent writers are serialised and each call's bytes stay contiguous:
 * four threads write 40000-byte records (bigger than a packet) to cat.
 */
#define REC_SIZE 40000
#define REC_PER_THREAD 100
#define REC_THREADS 4

struct recwriter {
    sshflow_flow *f;
    int id;
    int rc;
    sshflow_error err;
};

static void *
recwriter_run(void *arg)
{
    struct recwriter *w = arg;
    uint8_t *rec = malloc(REC_SIZE);
    int seq;

    w->rc = SSHFLOW_ERR_NOMEM;
    if (rec == NULL) {
        return NULL;
    }
    w->rc = 0;
    for (seq = 0; seq < REC_PER_THREAD && w->rc == 0; seq++) {
        size_t i;

        rec[0] = (uint8_t) w->id;
        rec[1] = (uint8_t) seq;
        for (i = 2; i < REC_SIZE; i++) {
            rec[i] = (uint8_t) (w->id * 31 + seq * 7 + i);
        }
        if (seq % 2 == 0) {
            w->rc = sshflow_write(w->f, rec, REC_SIZE, &w->err);
        } else {
            struct iovec iov[3] = { { rec, 1 }, { rec + 1, 20000 }, { rec + 20001, REC_SIZE - 20001 } };

            w->rc = sshflow_writev(w->f, iov, 3, &w->err);
        }
    }
    free(rec);
    return NULL;
}

START_TEST(test_concurrent_writers_contiguous)
{
    struct recwriter w[REC_THREADS];
    pthread_t th[REC_THREADS];
    int next[REC_THREADS] = { 0 };
    uint8_t *rec = malloc(REC_SIZE);
    sshflow_error err;
    sshflow_flow *f;
    size_t have = 0, nrec = 0;
    int i;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(rec);
    f = must_exec(&srv, "cat", NULL);
    for (i = 0; i < REC_THREADS; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].f = f;
        w[i].id = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, recwriter_run, &w[i]), 0);
    }
    memset(&err, 0, sizeof(err));
    while (nrec < REC_THREADS * REC_PER_THREAD) {
        ssize_t n = sshflow_read_into(f, rec + have, REC_SIZE - have, &err);

        ck_assert_msg(n > 0, "read after %zu records: %zd %s", nrec, n, errtxt(&err));
        have += (size_t) n;
        if (have == REC_SIZE) {
            int id = rec[0], seq = rec[1];
            size_t k;

            ck_assert_msg(id < REC_THREADS, "record %zu: bad id %d", nrec, id);
            ck_assert_msg(seq == next[id], "record %zu: thread %d seq %d, want %d", nrec, id, seq,
                          next[id]);
            for (k = 2; k < REC_SIZE; k++) {
                if (rec[k] != (uint8_t) (id * 31 + seq * 7 + k)) {
                    ck_abort_msg("record %zu (thread %d seq %d) broken at byte %zu: writes interleaved",
                                 nrec, id, seq, k);
                }
            }
            next[id]++;
            nrec++;
            have = 0;
        }
    }
    for (i = 0; i < REC_THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_msg(w[i].rc == 0, "writer %d: %s", i, errtxt(&w[i].err));
    }
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    ck_assert_int_eq(sshflow_read_into(f, rec, REC_SIZE, &err), 0);
    close_status(f, 0);
    free(rec);
}
END_TEST

/* stdout and stderr read at the same time on two threads. */
struct errreader {
    sshflow_flow *f;
    size_t total;
    bool bad;
    ssize_t last;
    sshflow_error err;
};

static void *
errreader_run(void *arg)
{
    struct errreader *r = arg;
    char buf[65536];

    while ((r->last = sshflow_read_stderr(r->f, buf, sizeof(buf), &r->err)) > 0) {
        ssize_t i;

        for (i = 0; i < r->last; i++) {
            r->bad |= buf[i] != 'b';
        }
        r->total += (size_t) r->last;
    }
    return NULL;
}

START_TEST(test_concurrent_stdout_stderr)
{
    const size_t n = 8 * MIB;
    struct errreader er;
    char *buf = malloc(IO_CHUNK);
    sshflow_error err;
    sshflow_flow *f;
    pthread_t th;
    size_t total = 0;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(buf);
    f = must_exec(&srv,
                  "head -c 8388608 /dev/zero | tr '\\0' a & "
                  "head -c 8388608 /dev/zero | tr '\\0' b >&2; wait",
                  NULL);
    memset(&er, 0, sizeof(er));
    er.f = f;
    ck_assert_int_eq(pthread_create(&th, NULL, errreader_run, &er), 0);
    memset(&err, 0, sizeof(err));
    for (;;) {
        ssize_t k = sshflow_read_into(f, buf, IO_CHUNK, &err), i;

        ck_assert_msg(k >= 0, "stdout read: %s", errtxt(&err));
        if (k == 0) {
            break;
        }
        /* (ck_assert per byte would be slow: each one writes a mark to Check's pipe) */
        for (i = 0; i < k && buf[i] == 'a'; i++) {
        }
        ck_assert_msg(i == k, "stdout byte %zu is 0x%02x", total + (size_t) i,
                      (unsigned char) buf[i]);
        total += (size_t) k;
    }
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(er.last == 0, "stderr read: %s", errtxt(&er.err));
    ck_assert_uint_eq(total, n);
    ck_assert(!er.bad);
    /* What the stderr reader did not keep up with was dropped and counted, never lost silently. */
    ck_assert_uint_eq(er.total + sshflow_stderr_dropped(f), n);
    close_status(f, 0);
    free(buf);
}
END_TEST

/* One write call of 32 MiB, and one writev of 1000 pieces. */
START_TEST(test_big_single_write)
{
    const size_t n = 32 * MIB;
    uint8_t *big = malloc(n);
    struct iovec *iov = calloc(1000, sizeof(*iov));
    char want[65], out[256];
    struct sha h;
    struct gen g;
    sshflow_error err;
    sshflow_flow *f;
    size_t off = 0;
    int i;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(big);
    ck_assert_ptr_nonnull(iov);
    gen_init(&g, 0x44);
    while (off < n) {
        gen_fill(&g, big + off, IO_CHUNK);
        off += IO_CHUNK;
    }
    gen_free(&g);
    sha_init(&h);
    sha_update(&h, big, n);
    sha_final_hex(&h, want);
    f = must_exec(&srv, "sha256sum", NULL);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_write(f, big, n, &err) == 0, "32 MiB write: %s", errtxt(&err));
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    read_all(f, out, sizeof(out));
    ck_assert_msg(strncmp(out, want, 64) == 0, "server hash %s, want %s", out, want);
    close_status(f, 0);

    /* 1000 pieces of sizes 0..~33000 covering the first bytes of big. */
    off = 0;
    for (i = 0; i < 1000; i++) {
        size_t len = (size_t) (i * 7919) % 33000;

        iov[i].iov_base = big + off;
        iov[i].iov_len = len;
        off += len;
    }
    sha_init(&h);
    sha_update(&h, big, off);
    sha_final_hex(&h, want);
    f = must_exec(&srv, "sha256sum", NULL);
    ck_assert_msg(sshflow_writev(f, iov, 1000, &err) == 0, "writev: %s", errtxt(&err));
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    read_all(f, out, sizeof(out));
    ck_assert_msg(strncmp(out, want, 64) == 0, "server hash %s, want %s (%zu bytes)", out, want, off);
    close_status(f, 0);
    free(big);
    free(iov);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 7. Half-close                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_halfclose)
{
    const char msg[] = "half-close: these bytes go to cat, then EOF\n";
    char got[4096];
    struct iovec iov[3];
    sshflow_error err;
    sshflow_flow *f;
    size_t len = 0;
    ssize_t n;
    int r;

    REQUIRE_SRV();
    f = must_exec(&srv, "cat; echo cat-saw-eof", NULL);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_write(f, msg, strlen(msg), &err) == 0, "write: %s", errtxt(&err));
    iov[0].iov_base = (void *) "vec1 ";
    iov[0].iov_len = 5;
    iov[1].iov_base = (void *) "vec2 ";
    iov[1].iov_len = 5;
    iov[2].iov_base = (void *) "vec3\n";
    iov[2].iov_len = 5;
    ck_assert_msg(sshflow_writev(f, iov, 3, &err) == 0, "writev: %s", errtxt(&err));
    ck_assert_msg(sshflow_shutdown(f, &err) == 0, "shutdown: %s", errtxt(&err));
    /* No more writes after shutdown. */
    r = sshflow_write(f, "x", 1, &err);
    ck_assert_msg(r == SSHFLOW_ERR_CLOSED, "write after shutdown returned %d: %s", r, errtxt(&err));
    /* Reads go on: everything comes back, and then the remote's EOF. */
    for (;;) {
        uint8_t *p = NULL;
        size_t plen = 0;

        r = sshflow_read(f, &p, &plen, &err);
        ck_assert_msg(r == 0 || r == SSHFLOW_EOF, "read: %s", errtxt(&err));
        if (r == SSHFLOW_EOF) {
            break;
        }
        ck_assert_uint_lt(len + plen, sizeof(got));
        memcpy(got + len, p, plen);
        len += plen;
        free(p);
    }
    got[len] = '\0';
    ck_assert_str_eq(got, "half-close: these bytes go to cat, then EOF\nvec1 vec2 vec3\ncat-saw-eof\n");
    /* EOF stays EOF. */
    n = sshflow_read_into(f, got, sizeof(got), &err);
    ck_assert_int_eq(n, 0);
    close_status(f, 0);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 8. Close waits for the remote                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_close_waits_for_remote)
{
    sshflow_error err;
    sshflow_exit ex;
    sshflow_flow *f;
    char buf[16];
    int r;

    REQUIRE_SRV();
    /* Nothing is read: close must still wait until the remote has closed. */
    f = must_exec(&srv, "sleep 1; echo done; exit 5", NULL);
    memset(&err, 0, sizeof(err));
    r = sshflow_close(f, &err);
    ck_assert_msg(r == 0, "close: %s", errtxt(&err));
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_msg(ex.kind == SSHFLOW_EXIT_STATUS && ex.status == 5,
                  "right after close the exit is kind %d status %u, want STATUS 5", ex.kind,
                  ex.status);
    /* After close, reads and writes fail with CLOSED. */
    r = (int) sshflow_read_into(f, buf, sizeof(buf), &err);
    ck_assert_msg(r == SSHFLOW_ERR_CLOSED, "read after close: %d", r);
    r = sshflow_write(f, "x", 1, &err);
    ck_assert_msg(r == SSHFLOW_ERR_CLOSED, "write after close: %d", r);
    /* Closing twice is harmless. */
    ck_assert_int_eq(sshflow_close(f, &err), 0);
    sshflow_free(f);
}
END_TEST

START_TEST(test_close_timeout)
{
    sshflow_error err;
    sshflow_exit ex;
    sshflow_flow *f;
    int r;

    REQUIRE_SRV();
    /* sleep ignores stdin EOF: the remote stays open for 30 s. */
    f = must_exec(&srv, "sleep 30", NULL);
    memset(&err, 0, sizeof(err));
    r = sshflow_close_timeout(f, 1000, &err);
    ck_assert_msg(r == SSHFLOW_ERR_TIMEOUT, "close_timeout(1000) on 'sleep 30' returned %d: %s", r,
                  errtxt(&err));
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_NONE);
    sshflow_free(f);
}
END_TEST

/* A bound of 0 does not wait: TIMEOUT at once when the remote is still open. */
START_TEST(test_close_no_wait)
{
    sshflow_error err;
    sshflow_flow *f;
    char out[16];
    int r;

    REQUIRE_SRV();
    f = must_exec(&srv, "echo hi; sleep 30", NULL);
    /* Read "hi" so the command is certainly running. */
    memset(&err, 0, sizeof(err));
    r = (int) sshflow_read_into(f, out, 3, &err);
    ck_assert_msg(r > 0, "read: %s", errtxt(&err));
    r = sshflow_close_timeout(f, 0, &err);
    ck_assert_msg(r == SSHFLOW_ERR_TIMEOUT, "close_timeout(0) returned %d: %s", r, errtxt(&err));
    sshflow_free(f);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 9. Host key checking                                                     */
/* ------------------------------------------------------------------------ */

static void
setup_own(void)
{
    srv_start(NULL);
}

/* Wait (bounded) until sshd logged the end of the connection that began at `from`. */
static void
wait_conn_end(off_t from)
{
    static const char *const ends[] = { "Connection closed", "Connection reset", "Disconnected",
                                        "disconnected", "Received disconnect" };
    long long deadline = now_ms() + LOG_WAIT_MS;
    static char text[LOG_MAX];

    for (;;) {
        size_t i;

        read_file_from(srv.log, from, text, sizeof(text));
        for (i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
            if (strstr(text, ends[i]) != NULL) {
                return;
            }
        }
        ck_assert_msg(now_ms() < deadline, "sshd did not log the end of the connection:\n%s", text);
        sleep_ms(20);
    }
}

/* Lines in the sshd log that mean a credential reached the server. */
static const char *const auth_traces[] = {
    "Accepted ", "Failed publickey", "Failed password", "Postponed ", "Partial ",
};

static void
expect_no_auth_trace(off_t from)
{
    static char text[LOG_MAX];
    size_t i;

    /*
     * sshd logs an authentication attempt before the end of that connection:
     * wait for the end, then look for attempts.
     */
    wait_conn_end(from);
    read_file_from(srv.log, from, text, sizeof(text));
    for (i = 0; i < sizeof(auth_traces) / sizeof(auth_traces[0]); i++) {
        ck_assert_msg(strstr(text, auth_traces[i]) == NULL,
                      "a credential reached the server before the host key was accepted:\n%s", text);
    }
}

START_TEST(test_hostkey_changed_refused)
{
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;
    off_t from;

    REQUIRE_SRV();
    /* Control: this refused key does leave a trace in the log we grep. */
    from = file_size(srv.log);
    memset(&o, 0, sizeof(o));
    o.keyfile = srv.userkey_unauth;
    o.password = "wrong-password";
    f = try_exec(&srv, "echo ok", &o, &err);
    ck_assert_msg(f == NULL && err.kind == SSHFLOW_ERR_AUTH, "control: want AUTH, got %s",
                  errtxt(&err));
    ck_assert_msg(log_wait_for(srv.log, from, "Failed publickey"),
                  "control: sshd did not log the refused key");

    ck_assert_int_eq(sf_test_sshd_rotate_hostkeys(&srv), 0);
    from = file_size(srv.log);
    f = try_exec(&srv, "echo ok", &o, &err); /* srv.known_hosts keeps the old keys */
    ck_assert_msg(f == NULL, "connected to a server whose host key changed");
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
    expect_no_auth_trace(from);

    /* Even with an authorized key, and with accept-new (which refuses changed keys). */
    {
        sshflow_hostauth *ha = sshflow_hostauth_known_hosts(srv.known_hosts,
                                                            SSHFLOW_HOSTKEY_ACCEPT_NEW);
        off_t size_before = file_size(srv.known_hosts);

        memset(&o, 0, sizeof(o));
        o.hostauth = ha;
        from = file_size(srv.log);
        f = try_exec(&srv, "echo ok", &o, &err);
        ck_assert_msg(f == NULL, "accept-new accepted a changed host key");
        ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
        expect_no_auth_trace(from);
        ck_assert_int_eq(file_size(srv.known_hosts), size_before);
        sshflow_hostauth_free(ha);
    }

    /* The current keys work. */
    {
        sshflow_hostauth *ha = sshflow_hostauth_known_hosts(srv.known_hosts_current,
                                                            SSHFLOW_HOSTKEY_STRICT);
        char out[16];

        memset(&o, 0, sizeof(o));
        o.hostauth = ha;
        run_ok(&srv, "echo ok", &o, out, sizeof(out));
        ck_assert_str_eq(out, "ok\n");
        sshflow_hostauth_free(ha);
    }
}
END_TEST

struct cb_rec {
    int calls;
    bool accept;
    char host[128];
    uint16_t port;
    char keytype[64];
    char fp[128];
    size_t bloblen;
};

static bool
record_cb(void *user, const char *host, uint16_t port, const char *keytype, const uint8_t *blob,
          size_t bloblen, const char *fingerprint)
{
    struct cb_rec *r = user;

    r->calls++;
    snprintf(r->host, sizeof(r->host), "%s", host != NULL ? host : "(null)");
    r->port = port;
    snprintf(r->keytype, sizeof(r->keytype), "%s", keytype != NULL ? keytype : "(null)");
    snprintf(r->fp, sizeof(r->fp), "%s", fingerprint != NULL ? fingerprint : "(null)");
    r->bloblen = blob != NULL ? bloblen : 0;
    return r->accept;
}

/* The callback sees the right key and fingerprint; refusing stops before auth. */
START_TEST(test_hostkey_callback)
{
    static const struct {
        const char *alg, *type;
        int idx;
    } k[] = {
        { "ssh-ed25519", "ssh-ed25519", SF_TEST_HOSTKEY_ED25519 },
        { "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", SF_TEST_HOSTKEY_ECDSA256 },
        { "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384", SF_TEST_HOSTKEY_ECDSA384 },
        { "rsa-sha2-512", "ssh-rsa", SF_TEST_HOSTKEY_RSA },
    };
    struct cb_rec rec;
    sshflow_hostauth *ha;
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;
    char pub[320], fp[128], out[16];
    off_t from;
    size_t i;

    REQUIRE_SRV();
    for (i = 0; i < sizeof(k) / sizeof(k[0]); i++) {
        snprintf(pub, sizeof(pub), "%s.pub", srv.hostkey[k[i].idx]);
        keygen_fingerprint(pub, fp, sizeof(fp));

        /* Refused: HOSTKEY, and the authorized key never reached the server. */
        memset(&rec, 0, sizeof(rec));
        rec.accept = false;
        ha = sshflow_hostauth_callback(record_cb, &rec);
        ck_assert_ptr_nonnull(ha);
        memset(&o, 0, sizeof(o));
        o.hostauth = ha;
        o.hostkey = k[i].alg;
        from = file_size(srv.log);
        f = try_exec(&srv, "echo ok", &o, &err);
        ck_assert_msg(f == NULL, "connected although the callback refused");
        ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
        ck_assert_int_eq(rec.calls, 1);
        ck_assert_str_eq(rec.keytype, k[i].type);
        ck_assert_str_eq(rec.fp, fp);
        ck_assert_uint_gt(rec.bloblen, 0);
        expect_no_auth_trace(from);
        sshflow_hostauth_free(ha);

        /* Accepted: the connection works. */
        memset(&rec, 0, sizeof(rec));
        rec.accept = true;
        ha = sshflow_hostauth_callback(record_cb, &rec);
        o.hostauth = ha;
        run_ok(&srv, "echo ok", &o, out, sizeof(out));
        ck_assert_str_eq(out, "ok\n");
        ck_assert_int_eq(rec.calls, 1);
        ck_assert_str_eq(rec.fp, fp);
        ck_assert_str_eq(rec.host, "127.0.0.1");
        ck_assert_uint_eq(rec.port, srv.port);
        sshflow_hostauth_free(ha);
    }
}
END_TEST

START_TEST(test_hostkey_unknown_strict)
{
    char kh[400];
    sshflow_hostauth *ha;
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;
    off_t from;
    FILE *fp;

    REQUIRE_SRV();
    snprintf(kh, sizeof(kh), "%s/known_hosts_empty", srv.dir);
    fp = fopen(kh, "w");
    ck_assert_ptr_nonnull(fp);
    /* Another host's line, so the file is not trivially empty. */
    fprintf(fp, "[127.0.0.1]:1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZpzUV4H9P5jW6DFGa8zNVsAEm05XPLDOaRw4WmuZkX\n");
    ck_assert_int_eq(fclose(fp), 0);
    ha = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_STRICT);
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    from = file_size(srv.log);
    f = try_exec(&srv, "echo ok", &o, &err);
    ck_assert_msg(f == NULL, "strict accepted an unknown host");
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
    expect_no_auth_trace(from);
    sshflow_hostauth_free(ha);
}
END_TEST

static int
count_lines(const char *path)
{
    char text[65536];
    int n = 0;
    char *p;

    read_file_from(path, 0, text, sizeof(text));
    for (p = text; *p != '\0'; p++) {
        n += *p == '\n';
    }
    return n;
}

START_TEST(test_hostkey_accept_new)
{
    char kh[400], text[65536], pattern[64], out[16];
    sshflow_hostauth *ha;
    struct copts o;

    REQUIRE_SRV();
    snprintf(kh, sizeof(kh), "%s/known_hosts_new", srv.dir);
    ha = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_ACCEPT_NEW);
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    o.hostkey = "ecdsa-sha2-nistp384";
    /* The file does not exist yet. */
    ck_assert_int_ne(access(kh, F_OK), 0);
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    sshflow_hostauth_free(ha);
    ck_assert_int_eq(count_lines(kh), 1);
    read_file_from(kh, 0, text, sizeof(text));
    snprintf(pattern, sizeof(pattern), "[127.0.0.1]:%u ", (unsigned) srv.port);
    ck_assert_msg((strncmp(text, pattern, strlen(pattern)) == 0 || strncmp(text, "|1|", 3) == 0) &&
                      strstr(text, "ecdsa-sha2-nistp384 ") != NULL,
                  "unexpected known_hosts line: %s", text);

    /* Now known: a strict connection with the same file is accepted. */
    ha = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_STRICT);
    o.hostauth = ha;
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    sshflow_hostauth_free(ha);

    /* accept-new again does not add a duplicate. */
    ha = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_ACCEPT_NEW);
    o.hostauth = ha;
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    sshflow_hostauth_free(ha);
    ck_assert_int_eq(count_lines(kh), 1);
}
END_TEST

START_TEST(test_hostkey_pinned_fingerprint)
{
    char pub[320], fp[128], out[16];
    sshflow_hostauth *ha;
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;

    REQUIRE_SRV();
    /* Right fingerprint. */
    snprintf(pub, sizeof(pub), "%s.pub", srv.hostkey[SF_TEST_HOSTKEY_ECDSA256]);
    keygen_fingerprint(pub, fp, sizeof(fp));
    ha = sshflow_hostauth_parse(fp, &err);
    ck_assert_msg(ha != NULL, "parse %s: %s", fp, errtxt(&err));
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    o.hostkey = "ecdsa-sha2-nistp256";
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    /* The same pin, but the server is made to present its ed25519 key. */
    o.hostkey = "ssh-ed25519";
    f = try_exec(&srv, "echo ok", &o, &err);
    ck_assert_msg(f == NULL, "a pinned fingerprint accepted another key");
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
    sshflow_hostauth_free(ha);
}
END_TEST

/* Line i (0-based) of the server's original known_hosts, with its newline. */
static void
known_hosts_line(int i, char *line, size_t cap)
{
    static char text[32768];
    const char *p = text;
    int k;

    read_file_from(srv.known_hosts, 0, text, sizeof(text));
    for (k = 0; k < i && p != NULL; k++) {
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    ck_assert_msg(p != NULL && *p != '\0', "known_hosts has no line %d", i);
    snprintf(line, cap, "%.*s", (int) (strcspn(p, "\n") + 1), p);
}

static void
write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    ck_assert_ptr_nonnull(fp);
    ck_assert_int_ge(fputs(text, fp), 0);
    ck_assert_int_eq(fclose(fp), 0);
}

/* Connect with known_hosts file kh (strict) and forced host key algorithms (NULL: default). */
static sshflow_flow *
try_known_hosts(const char *kh, const char *hostkey_algs, sshflow_error *err)
{
    sshflow_hostauth *ha = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_STRICT);
    struct copts o;
    sshflow_flow *f;

    ck_assert_ptr_nonnull(ha);
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    o.hostkey = hostkey_algs;
    f = try_exec(&srv, "echo ok", &o, err);
    sshflow_hostauth_free(ha);
    return f;
}

/*
 * Like OpenSSH, prefer the host key types known_hosts already has for the
 * host: a file that knows only the server's ECDSA key must not fail because
 * the server would also offer Ed25519.
 */
START_TEST(test_hostkey_known_type_preferred)
{
    char kh[400], line[8192], desc[512], v[128], out[16];
    sshflow_error err;
    sshflow_flow *f;

    REQUIRE_SRV();
    snprintf(kh, sizeof(kh), "%s/known_hosts_ecdsa_only", srv.dir);
    known_hosts_line(SF_TEST_HOSTKEY_ECDSA256, line, sizeof(line));
    ck_assert_ptr_nonnull(strstr(line, "ecdsa-sha2-nistp256"));
    write_text(kh, line);
    f = try_known_hosts(kh, NULL, &err);
    ck_assert_msg(f != NULL, "known_hosts with only the ECDSA key, default algorithms: %s",
                  errtxt(&err));
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    desc_get(desc, "hostkey", v, sizeof(v));
    ck_assert_str_eq(v, "ecdsa-sha2-nistp256");
    read_all(f, out, sizeof(out));
    close_status(f, 0);
}
END_TEST

/* Files made by OpenSSH's tools: hashed names (ssh-keygen -H), name lists, comments. */
START_TEST(test_hostkey_hashed_and_lists)
{
    char *argv[] = { (char *) SF_TEST_SSH_KEYGEN_PATH, (char *) "-H", (char *) "-f", NULL, NULL };
    char kh[400], text[32768], line[8192], out[16], errb[1024];
    sshflow_error err;
    sshflow_flow *f;
    int rc;

    REQUIRE_SRV();
    /* Hashed. */
    snprintf(kh, sizeof(kh), "%s/known_hosts_hashed", srv.dir);
    read_file_from(srv.known_hosts, 0, text, sizeof(text));
    write_text(kh, text);
    argv[3] = kh;
    rc = sf_test_run(argv, NULL, NULL, 0, errb, sizeof(errb), 20000);
    ck_assert_msg(rc == 0, "ssh-keygen -H: %d %s", rc, errb);
    read_file_from(kh, 0, text, sizeof(text));
    ck_assert_msg(strncmp(text, "|1|", 3) == 0, "not hashed: %.200s", text);
    f = try_known_hosts(kh, "ssh-ed25519", &err);
    ck_assert_msg(f != NULL, "hashed known_hosts: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    close_status(f, 0);

    /* A comment, a blank line, another host, then a name list with our host second. */
    snprintf(kh, sizeof(kh), "%s/known_hosts_list", srv.dir);
    known_hosts_line(SF_TEST_HOSTKEY_ED25519, line, sizeof(line));
    {
        const char *rest = strchr(line, ' '); /* after "[127.0.0.1]:port" */

        ck_assert_ptr_nonnull(rest);
        snprintf(text, sizeof(text),
                 "# comment line\n\n"
                 "example.org ssh-ed25519 "
                 "AAAAC3NzaC1lZDI1NTE5AAAAIMZpzUV4H9P5jW6DFGa8zNVsAEm05XPLDOaRw4WmuZkX\n"
                 "otherhost,[127.0.0.1]:%u%s",
                 (unsigned) srv.port, rest);
    }
    write_text(kh, text);
    f = try_known_hosts(kh, "ssh-ed25519", &err);
    ck_assert_msg(f != NULL, "name-list known_hosts: %s\n%s", errtxt(&err), text);
    read_all(f, out, sizeof(out));
    close_status(f, 0);
}
END_TEST

/* A key marked @revoked is refused even when another line lists it as good. */
START_TEST(test_hostkey_revoked)
{
    char kh[400], line[8192], text[20000];
    sshflow_error err;
    sshflow_flow *f;
    off_t from;

    REQUIRE_SRV();
    snprintf(kh, sizeof(kh), "%s/known_hosts_revoked", srv.dir);
    known_hosts_line(SF_TEST_HOSTKEY_ED25519, line, sizeof(line));
    snprintf(text, sizeof(text), "%s@revoked %s", line, line);
    write_text(kh, text);
    from = file_size(srv.log);
    f = try_known_hosts(kh, "ssh-ed25519", &err);
    ck_assert_msg(f == NULL, "connected with a revoked host key");
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
    expect_no_auth_trace(from);
}
END_TEST

/* The other authenticator spellings: "<keytype>:<b64 fp>" and the bare key blob. */
START_TEST(test_hostkey_pinned_other_forms)
{
    char pub[320], fp[128], spec[8192], line[8192], type[64], b64[8000], out[16];
    sshflow_hostauth *ha;
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;

    REQUIRE_SRV();
    snprintf(pub, sizeof(pub), "%s.pub", srv.hostkey[SF_TEST_HOSTKEY_ED25519]);
    keygen_fingerprint(pub, fp, sizeof(fp));
    snprintf(spec, sizeof(spec), "ssh-ed25519:%s", fp + 7);
    ha = sshflow_hostauth_parse(spec, &err);
    ck_assert_msg(ha != NULL, "parse %s: %s", spec, errtxt(&err));
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    o.hostkey = "ssh-ed25519";
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    sshflow_hostauth_free(ha);

    known_hosts_line(SF_TEST_HOSTKEY_ED25519, line, sizeof(line));
    ck_assert_int_eq(sscanf(line, "%*s %63s %7999s", type, b64), 2);
    ha = sshflow_hostauth_parse(b64, &err);
    ck_assert_msg(ha != NULL, "parse blob: %s", errtxt(&err));
    o.hostauth = ha;
    run_ok(&srv, "echo ok", &o, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    /* The blob pin refuses the server's ECDSA key. */
    o.hostkey = "ecdsa-sha2-nistp256";
    f = try_exec(&srv, "echo ok", &o, &err);
    ck_assert_msg(f == NULL, "a pinned key blob accepted another key");
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
    sshflow_hostauth_free(ha);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Connecting, configuration, small reads                                   */
/* ------------------------------------------------------------------------ */

/* A host name (not an address) resolving to ::1 and 127.0.0.1: the server listens on the latter. */
START_TEST(test_connect_localhost_name)
{
    sshflow_request *req = sshflow_request_exec("echo ok");
    sshflow_hostauth *ha;
    struct cb_rec rec;
    struct copts o;
    sshflow_error err;
    sshflow_flow *t, *f;
    char out[16];

    REQUIRE_SRV();
    memset(&rec, 0, sizeof(rec));
    rec.accept = true;
    ha = sshflow_hostauth_callback(record_cb, &rec);
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    memset(&err, 0, sizeof(err));
    t = sshflow_connect_tcp("localhost", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect to localhost:%u: %s", (unsigned) srv.port, errtxt(&err));
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f != NULL, "client_of_flow: %s", errtxt(&err));
    ck_assert_str_eq(rec.host, "localhost");
    ck_assert_uint_eq(rec.port, srv.port);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    close_status(f, 0);
    sshflow_hostauth_free(ha);
    sshflow_request_free(req);
}
END_TEST

START_TEST(test_connect_refused)
{
    sshflow_error err;
    sshflow_flow *t;
    uint16_t port = 0;
    int lfd = silent_listener(&port);

    close(lfd); /* now nothing listens there */
    memset(&err, 0, sizeof(err));
    t = sshflow_connect_tcp("127.0.0.1", port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t == NULL, "connected to a closed port");
    ck_assert_msg(err.kind == SSHFLOW_ERR_FLOW, "want FLOW, got %s", errtxt(&err));
    ck_assert_int_eq(err.sys_errno, ECONNREFUSED);
}
END_TEST

/* Config names and list operators, checked against what the server then negotiates. */
START_TEST(test_algs_list_operators)
{
    sshflow_config *cfg = sshflow_config_new();
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;
    char desc[512], v[128];

    REQUIRE_SRV();
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_config_set(cfg, "KexAlgorithms", "no-such-kex", &err),
                     SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_config_set(cfg, "Ciphers", "3des-cbc", &err), SSHFLOW_ERR_INVALID);
    ck_assert_msg(strstr(err.detail, "3des-cbc") != NULL, "names it: %s", err.detail);
    ck_assert_int_eq(sshflow_config_set(cfg, "Ciphers", "+blowfish*", &err), SSHFLOW_ERR_INVALID);
    ck_assert_msg(strstr(err.detail, "blowfish*") != NULL, "names the pattern: %s", err.detail);
    ck_assert_int_eq(sshflow_config_set(cfg, "Ciphers", "aes*-gcm@openssh.com", &err), 0);
    ck_assert_int_eq(sshflow_config_set(cfg, "NoSuchOption", "1", &err), SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sshflow_config_set(cfg, "RekeyLimit", "lots", &err), SSHFLOW_ERR_INVALID);
    sshflow_config_free(cfg);

    /* ^: prepend, so it is our first choice and the server follows it. */
    memset(&o, 0, sizeof(o));
    o.kex = "^ecdh-sha2-nistp384";
    o.cipher = "^aes192-ctr";
    o.mac = "^hmac-sha2-512";
    f = must_exec(&srv, "echo ok", &o);
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    desc_get(desc, "kex", v, sizeof(v));
    ck_assert_msg(strcmp(v, "ecdh-sha2-nistp384") == 0, "^kex: %s", desc);
    desc_get(desc, "cipher", v, sizeof(v));
    ck_assert_msg(strcmp(v, "aes192-ctr") == 0, "^cipher: %s", desc);
    desc_get(desc, "mac", v, sizeof(v));
    ck_assert_msg(strcmp(v, "hmac-sha2-512") == 0, "^mac: %s", desc);
    close_ok(f);

    /* -: removed names are not negotiated. */
    memset(&o, 0, sizeof(o));
    o.kex = "-curve25519-sha256,curve25519-sha256@libssh.org";
    o.cipher = "-chacha20-poly1305@openssh.com";
    o.hostkey = "-ssh-ed25519";
    f = must_exec(&srv, "echo ok", &o);
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    desc_get(desc, "kex", v, sizeof(v));
    ck_assert_msg(strncmp(v, "curve25519", 10) != 0 && v[0] != '\0', "-kex: %s", desc);
    desc_get(desc, "cipher", v, sizeof(v));
    ck_assert_msg(strcmp(v, "chacha20-poly1305@openssh.com") != 0 && v[0] != '\0', "-cipher: %s",
                  desc);
    desc_get(desc, "hostkey", v, sizeof(v));
    ck_assert_msg(strcmp(v, "ssh-ed25519") != 0 && v[0] != '\0', "-hostkey: %s", desc);
    close_ok(f);
}
END_TEST

/* Reads of every size, down to one byte, lose and reorder nothing. */
START_TEST(test_read_small_pieces)
{
    static const size_t sizes[] = { 1, 2, 3, 7, 64, 1000, 4095, 4096, 4097, 32768, 65537 };
    const size_t n = 2 * MIB + 3;
    uint8_t *buf = malloc(70000);
    char cmd[256], want[65], got[65];
    struct sha h;
    sshflow_error err;
    sshflow_flow *f;
    size_t total = 0, i = 0;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(buf);
    gen_command(0x33, n, cmd, sizeof(cmd));
    f = must_exec(&srv, cmd, NULL);
    sha_init(&h);
    memset(&err, 0, sizeof(err));
    for (;;) {
        size_t want_len = sizes[i++ % (sizeof(sizes) / sizeof(sizes[0]))];
        ssize_t k = sshflow_read_into(f, buf, want_len, &err);

        ck_assert_msg(k >= 0, "read: %s", errtxt(&err));
        if (k == 0) {
            break;
        }
        ck_assert_uint_le((size_t) k, want_len);
        sha_update(&h, buf, (size_t) k);
        total += (size_t) k;
    }
    sha_final_hex(&h, got);
    gen_expected_hash(0x33, n, want);
    ck_assert_uint_eq(total, n);
    ck_assert_str_eq(got, want);
    close_status(f, 0);
    free(buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 10. The server killed mid-transfer                                       */
/* ------------------------------------------------------------------------ */

struct killed_reader {
    sshflow_flow *f;
    sem_t started;      /* posted once 1 MiB arrived */
    size_t total;       /* reader thread only, until joined */
    size_t at_post;     /* total when started was posted */
    ssize_t last;       /* the read's final result */
    sshflow_error err;
};

static void *
killed_reader_run(void *arg)
{
    struct killed_reader *k = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    bool posted = false;

    memset(&k->err, 0, sizeof(k->err));
    k->last = SSHFLOW_ERR_NOMEM;
    if (buf == NULL) {
        sem_post(&k->started);
        return NULL;
    }
    for (;;) {
        k->last = sshflow_read_into(k->f, buf, IO_CHUNK, &k->err);
        if (k->last <= 0) {
            break;
        }
        k->total += (size_t) k->last;
        if (!posted && k->total >= MIB) {
            k->at_post = k->total;
            sem_post(&k->started);
            posted = true;
        }
    }
    if (!posted) {
        sem_post(&k->started);
    }
    free(buf);
    return NULL;
}

START_TEST(test_server_killed_mid_download)
{
    struct killed_reader k;
    struct timespec ts;
    sshflow_exit ex;
    sshflow_error err;
    pthread_t th;
    int r;

    REQUIRE_SRV();
    memset(&k, 0, sizeof(k));
    ck_assert_int_eq(sem_init(&k.started, 0, 0), 0);
    k.f = must_exec(&srv, "cat /dev/zero", NULL);
    ck_assert_int_eq(pthread_create(&th, NULL, killed_reader_run, &k), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    while ((r = sem_timedwait(&k.started, &ts)) != 0 && errno == EINTR) {
    }
    ck_assert_msg(r == 0, "no data within 60 s");
    ck_assert_msg(k.at_post >= MIB, "reader stopped early");

    /* Kill sshd and its children while the reader is busy on its thread. */
    sf_test_sshd_kill_all(&srv);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_msg(k.last < 0, "read after the server died returned %zd (want an error, not EOF)",
                  k.last);
    ck_assert_msg(k.last != SSHFLOW_ERR_INTERNAL, "INTERNAL: %s", errtxt(&k.err));
    /* No exit status was invented. */
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(k.f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_NONE);
    /* A later read and a write fail too. */
    memset(&err, 0, sizeof(err));
    {
        char b[16];
        ssize_t n = sshflow_read_into(k.f, b, sizeof(b), &err);

        ck_assert_msg(n < 0,
                      "a read after the failed one returned %zd (the first failure was %zd: %s; "
                      "%zu bytes read before it)",
                      n, k.last, errtxt(&k.err), k.total);
    }
    r = sshflow_write(k.f, "x", 1, &err);
    ck_assert_msg(r < 0, "write after the server died returned %d", r);
    sshflow_free(k.f);
    sem_destroy(&k.started);
}
END_TEST

/* Killed during an upload: the writer gets an error (or the reader does), nothing hangs. */
START_TEST(test_server_killed_mid_upload)
{
    uint8_t *buf = calloc(1, IO_CHUNK);
    sshflow_error err;
    sshflow_flow *f;
    size_t sent = 0;
    int r = 0;
    char b[16];
    ssize_t n;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(buf);
    f = must_exec(&srv, "cat > /dev/null", NULL);
    memset(&err, 0, sizeof(err));
    for (sent = 0; sent < 4 * MIB; sent += IO_CHUNK) {
        r = sshflow_write(f, buf, IO_CHUNK, &err);
        ck_assert_msg(r == 0, "write: %s", errtxt(&err));
    }
    sf_test_sshd_kill_all(&srv);
    /* Writing on must fail within a bounded amount of data (the window). */
    for (sent = 0; sent < 256 * MIB; sent += IO_CHUNK) {
        r = sshflow_write(f, buf, IO_CHUNK, &err);
        if (r != 0) {
            break;
        }
    }
    ck_assert_msg(r < 0, "256 MiB written after the server died");
    ck_assert_msg(r != SSHFLOW_ERR_INTERNAL, "INTERNAL: %s", errtxt(&err));
    n = sshflow_read_into(f, b, sizeof(b), &err);
    ck_assert_msg(n < 0, "read after the server died returned %zd", n);
    sshflow_free(f);
    free(buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 11. sshd -i over pipes                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_inetd_known_hosts)
{
    sshflow_request *req = sshflow_request_exec("echo inetd-ok; cat");
    sshflow_config *cfg;
    struct copts o;
    sshflow_error err;
    sshflow_flow *t, *f;
    char port[16], line[32];
    int to = -1, from = -1, st;
    size_t len = 0;
    pid_t pid;

    REQUIRE_SRV();
    pid = sf_test_sshd_inetd(&srv, &to, &from);
    ck_assert_msg(pid > 0, "cannot spawn sshd -i");
    t = sshflow_flow_from_fds(from, to, true);
    ck_assert_ptr_nonnull(t);
    memset(&o, 0, sizeof(o));
    cfg = make_config(&o);
    snprintf(port, sizeof(port), "%u", (unsigned) srv.port);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_config_set(cfg, "HostName", "127.0.0.1", &err), 0);
    ck_assert_int_eq(sshflow_config_set(cfg, "Port", port, &err), 0);
    f = upgrade(&srv, t, req, &o, cfg, &err);
    ck_assert_msg(f != NULL, "client_of_flow over sshd -i: %s", errtxt(&err));
    /* The first line, then a 16 MiB round trip through cat. */
    while (len < 9) {
        ssize_t n = sshflow_read_into(f, line + len, 9 - len, &err);

        ck_assert_msg(n > 0, "read: %zd %s", n, errtxt(&err));
        len += (size_t) n;
    }
    line[len] = '\0';
    ck_assert_str_eq(line, "inetd-ok\n");
    cat_roundtrip(f, INETD_SIZE, 9);
    close_status(f, 0);
    st = sf_test_wait(pid, REAP_MS);
    ck_assert_msg(st >= 0, "sshd -i did not exit after the client closed");
    sshflow_config_free(cfg);
    sshflow_request_free(req);
}
END_TEST

START_TEST(test_inetd_fingerprint)
{
    char pub[320], fp[128], out[16];
    sshflow_request *req = sshflow_request_exec("echo ok");
    sshflow_hostauth *ha;
    struct copts o;
    sshflow_error err;
    sshflow_flow *t, *f;
    int to = -1, from = -1;
    pid_t pid;

    REQUIRE_SRV();
    snprintf(pub, sizeof(pub), "%s.pub", srv.hostkey[SF_TEST_HOSTKEY_ED25519]);
    keygen_fingerprint(pub, fp, sizeof(fp));
    ha = sshflow_hostauth_parse(fp, &err);
    ck_assert_msg(ha != NULL, "parse %s: %s", fp, errtxt(&err));
    memset(&o, 0, sizeof(o));
    o.hostauth = ha;
    o.hostkey = "ssh-ed25519";

    pid = sf_test_sshd_inetd(&srv, &to, &from);
    ck_assert_msg(pid > 0, "cannot spawn sshd -i");
    t = sshflow_flow_from_fds(from, to, true);
    ck_assert_ptr_nonnull(t);
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f != NULL, "client_of_flow over sshd -i: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    close_status(f, 0);
    ck_assert_msg(sf_test_wait(pid, REAP_MS) >= 0, "sshd -i did not exit after the client closed");

    /* The pin refuses another key type of the same server. */
    o.hostkey = "ecdsa-sha2-nistp256";
    pid = sf_test_sshd_inetd(&srv, &to, &from);
    ck_assert_msg(pid > 0, "cannot spawn sshd -i");
    t = sshflow_flow_from_fds(from, to, true);
    ck_assert_ptr_nonnull(t);
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f == NULL, "pinned fingerprint accepted another key");
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "want HOSTKEY, got %s", errtxt(&err));
    ck_assert_msg(sf_test_wait(pid, REAP_MS) >= 0, "sshd -i did not exit after the client left");
    sshflow_hostauth_free(ha);
    sshflow_request_free(req);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 12. A silent server: ConnectTimeout                                      */
/* ------------------------------------------------------------------------ */

/* A listening socket on a free 127.0.0.1 port that never accepts (the kernel completes the handshake). */
static int
silent_listener(uint16_t *port)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *) &a, sizeof(a)), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *) &a, &alen), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(test_timeout_silent_tcp)
{
    sshflow_hostauth *ha = sshflow_hostauth_insecure_accept_any();
    sshflow_request *req = sshflow_request_exec("true");
    sshflow_cred *cred = sshflow_cred_new();
    struct copts o;
    sshflow_config *cfg;
    sshflow_error err;
    sshflow_flow *t, *f;
    uint16_t port = 0;
    int lfd = silent_listener(&port);

    memset(&o, 0, sizeof(o));
    o.connect_timeout = "2";
    cfg = make_config(&o);
    memset(&err, 0, sizeof(err));
    t = sshflow_connect_tcp("127.0.0.1", port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    ck_assert_int_eq(sshflow_cred_add_password(cred, "x", &err), 0);
    f = sshflow_client_of_flow(t, "nobody", cred, ha, req, cfg, &err);
    ck_assert_msg(f == NULL, "handshake with a silent server succeeded");
    ck_assert_msg(err.kind == SSHFLOW_ERR_TIMEOUT, "want TIMEOUT, got %s", errtxt(&err));
    close(lfd);
    sshflow_config_free(cfg);
    sshflow_cred_free(cred);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
}
END_TEST

/* The same over a socketpair: the bound covers the handshake of any flow. */
START_TEST(test_timeout_silent_socketpair)
{
    sshflow_hostauth *ha = sshflow_hostauth_insecure_accept_any();
    sshflow_request *req = sshflow_request_exec("true");
    sshflow_cred *cred = sshflow_cred_new();
    struct copts o;
    sshflow_config *cfg;
    sshflow_error err;
    sshflow_flow *t, *f;
    int sp[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    memset(&o, 0, sizeof(o));
    o.connect_timeout = "2";
    cfg = make_config(&o);
    t = sshflow_flow_from_fds(sp[0], sp[0], true);
    ck_assert_ptr_nonnull(t);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_cred_add_password(cred, "x", &err), 0);
    f = sshflow_client_of_flow(t, "nobody", cred, ha, req, cfg, &err);
    ck_assert_msg(f == NULL, "handshake with a silent peer succeeded");
    ck_assert_msg(err.kind == SSHFLOW_ERR_TIMEOUT, "want TIMEOUT, got %s", errtxt(&err));
    close(sp[1]);
    sshflow_config_free(cfg);
    sshflow_cred_free(cred);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 13. Garbage instead of a version line                                    */
/* ------------------------------------------------------------------------ */

struct junk_server {
    int fd;
    const char *what; /* which junk */
};

static void
send_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);

        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return; /* the client hung up: fine */
        }
        c += k;
        n -= (size_t) k;
    }
}

static void *
junk_server_run(void *arg)
{
    struct junk_server *j = arg;
    char line[128], buf[4096];
    int i;

    if (strcmp(j->what, "lines") == 0) {
        for (i = 0; i < 2000; i++) {
            int n = snprintf(line, sizeof(line), "junk line %d: this is not an SSH server\r\n", i);

            send_all(j->fd, line, (size_t) n);
        }
    } else if (strcmp(j->what, "longline") == 0) {
        memset(buf, 'A', sizeof(buf));
        for (i = 0; i < 64; i++) {
            send_all(j->fd, buf, sizeof(buf));
        }
    } else if (strcmp(j->what, "ssh1") == 0) {
        send_all(j->fd, "SSH-1.5-OldServer\r\n", 19);
    } else if (strcmp(j->what, "binary") == 0) {
        for (i = 0; i < (int) sizeof(buf); i++) {
            buf[i] = (char) (i * 37 + 11);
        }
        for (i = 0; i < 32; i++) { /* 128 KiB: more than any sane pre-version allowance */
            send_all(j->fd, buf, sizeof(buf));
        }
    } else if (strcmp(j->what, "badpacket") == 0) {
        /* A good version line, then a packet whose length is absurd. */
        static const uint8_t pkt[] = { 0xff, 0xff, 0xff, 0xf0, 0x04, 0x14, 0, 0, 0, 0, 0, 0, 0, 0,
                                       0, 0 };

        send_all(j->fd, "SSH-2.0-Junk_1.0\r\n", 18);
        send_all(j->fd, pkt, sizeof(pkt));
    }
    /* Stay silent until the client hangs up (its bound is ConnectTimeout). */
    while (recv(j->fd, buf, sizeof(buf), 0) > 0) {
    }
    return NULL;
}

START_TEST(test_garbage_version)
{
    static const char *const kinds[] = { "lines", "longline", "ssh1", "binary", "badpacket" };
    sshflow_hostauth *ha = sshflow_hostauth_insecure_accept_any();
    sshflow_request *req = sshflow_request_exec("true");
    sshflow_cred *cred = sshflow_cred_new();
    struct junk_server j;
    struct copts o;
    sshflow_config *cfg;
    sshflow_error err;
    sshflow_flow *t, *f;
    pthread_t th;
    int sp[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    j.fd = sp[1];
    j.what = kinds[_i];
    ck_assert_int_eq(pthread_create(&th, NULL, junk_server_run, &j), 0);
    memset(&o, 0, sizeof(o));
    o.connect_timeout = "20";
    cfg = make_config(&o);
    t = sshflow_flow_from_fds(sp[0], sp[0], true);
    ck_assert_ptr_nonnull(t);
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sshflow_cred_add_password(cred, "x", &err), 0);
    f = sshflow_client_of_flow(t, "nobody", cred, ha, req, cfg, &err);
    ck_assert_msg(f == NULL, "handshake with junk (%s) succeeded", kinds[_i]);
    ck_assert_msg(err.kind == SSHFLOW_ERR_PROTOCOL, "junk %s: want PROTOCOL, got %s", kinds[_i],
                  errtxt(&err));
    /* client_of_flow freed the transport: the junk server sees the hang-up. */
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    close(sp[1]);
    sshflow_config_free(cfg);
    sshflow_cred_free(cred);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 14. Keepalive                                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_keepalive_reply)
{
    char out[64];
    off_t from;

    REQUIRE_SRV();
    from = file_size(srv.log);
    /*
     * With ClientAliveInterval 1 and ClientAliveCountMax 1, sshd drops a
     * client that leaves one keepalive@openssh.com unanswered after about
     * 2 s; the command is silent for 5 s.
     */
    run_ok(&srv, "sleep 5; echo alive", NULL, out, sizeof(out));
    ck_assert_str_eq(out, "alive\n");
    ck_assert_msg(!log_has(srv.log, from, "Timeout, client not responding"),
                  "sshd timed the client out");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* More of the channel API: signal, env, pty, shell, subsystem              */
/* ------------------------------------------------------------------------ */

/* Read stdout until needle was seen (bounded by the tcase timeout); returns the length. */
static size_t
read_until(sshflow_flow *f, char *buf, size_t cap, size_t len, const char *needle)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    buf[len] = '\0';
    while (strstr(buf, needle) == NULL) {
        ssize_t n;

        ck_assert_msg(len + 1 < cap, "'%s' not seen in: %.300s", needle, buf);
        n = sshflow_read_into(f, buf + len, cap - 1 - len, &err);
        ck_assert_msg(n > 0, "read before '%s' was seen returned %zd (%s); got: %.300s", needle, n,
                      errtxt(&err), buf);
        len += (size_t) n;
        buf[len] = '\0';
    }
    return len;
}

START_TEST(test_channel_signal)
{
    sshflow_error err;
    sshflow_exit ex;
    sshflow_flow *f;
    char out[64];
    size_t len;

    struct copts o;

    REQUIRE_SRV();
    /*
     * sshd refuses "signal" requests in sessions without post-auth privilege
     * separation, which root logins are: log in as the unprivileged test
     * user, by password (the harness's authorized_keys is root's only: 0600).
     */
    if (sf_test_password_user() != 0) {
        fprintf(stderr, "check_interop: SKIP test_channel_signal: no unprivileged user\n");
        return;
    }
    memset(&o, 0, sizeof(o));
    o.user = SF_TEST_PW_USER;
    o.no_key = true;
    o.password = SF_TEST_PW_PASSWORD;
    /* The shell prints, then becomes sleep (same pid: the session's process). */
    f = must_exec(&srv, "echo ready; exec sleep 30", &o);
    len = read_until(f, out, sizeof(out), 0, "ready\n");
    ck_assert_uint_eq(len, 6);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_signal(f, "TERM", &err) == 0, "signal: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(sshflow_close_timeout(f, 30000, &err), 0);
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_msg(ex.kind == SSHFLOW_EXIT_SIGNAL, "exit kind %d status %u after signal TERM",
                  ex.kind, ex.status);
    ck_assert_str_eq(ex.signal, "TERM");
    sshflow_free(f);
}
END_TEST

START_TEST(test_channel_env)
{
    sshflow_request *req = sshflow_request_exec("printf '%s|%s\\n' \"$SF_TEST_VAR\" \"$NOT_ACCEPTED\"");
    sshflow_error err;
    sshflow_flow *t, *f;
    struct copts o;
    char out[128];

    REQUIRE_SRV();
    ck_assert_int_eq(sshflow_request_add_env(req, "SF_TEST_VAR", "hello world"), 0);
    /* sshd refuses this one (AcceptEnv LANG LC_* SF_*): not fatal. */
    ck_assert_int_eq(sshflow_request_add_env(req, "NOT_ACCEPTED", "x"), 0);
    memset(&o, 0, sizeof(o));
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f != NULL, "exec with env: %s", errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "hello world|\n");
    close_status(f, 0);
    sshflow_request_free(req);
}
END_TEST

START_TEST(test_channel_pty)
{
    sshflow_request *req = sshflow_request_exec("tty; stty size; read x; stty size; exit 6");
    sshflow_error err;
    sshflow_flow *t, *f;
    struct copts o;
    char out[1024];
    size_t len;

    REQUIRE_SRV();
    ck_assert_int_eq(sshflow_request_set_pty(req, "xterm", 80, 24, NULL, 0), 0);
    memset(&o, 0, sizeof(o));
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f != NULL, "exec with pty: %s", errtxt(&err));
    len = read_until(f, out, sizeof(out), 0, "24 80");
    ck_assert_msg(strncmp(out, "/dev/pts/", 9) == 0, "not a pty: %s", out);
    /* The window-change is handled before the line that follows it. */
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_window_change(f, 100, 40, &err) == 0, "window_change: %s", errtxt(&err));
    ck_assert_msg(sshflow_write(f, "go\n", 3, &err) == 0, "write: %s", errtxt(&err));
    read_until(f, out, sizeof(out), len, "40 100");
    close_status(f, 6);
    sshflow_request_free(req);
}
END_TEST

START_TEST(test_channel_shell)
{
    sshflow_request *req = sshflow_request_shell();
    const char script[] = "echo from-shell\nexit 4\n";
    sshflow_error err;
    sshflow_flow *t, *f;
    struct copts o;
    char out[256];

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f != NULL, "shell: %s", errtxt(&err));
    ck_assert_int_eq(sshflow_write(f, script, strlen(script), &err), 0);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "from-shell\n");
    close_status(f, 4);
    sshflow_request_free(req);
}
END_TEST

START_TEST(test_channel_subsystem_sftp)
{
    /* SSH_FXP_INIT version 3 (draft-ietf-secsh-filexfer-02 s4). */
    static const uint8_t init[] = { 0, 0, 0, 5, 1, 0, 0, 0, 3 };
    sshflow_request *req = sshflow_request_subsystem("sftp");
    sshflow_error err;
    sshflow_flow *t, *f;
    struct copts o;
    uint8_t got[4096];
    size_t len = 0;
    uint32_t plen;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f != NULL, "subsystem sftp: %s", errtxt(&err));
    ck_assert_int_eq(sshflow_write(f, init, sizeof(init), &err), 0);
    /* SSH_FXP_VERSION: uint32 length, byte 2, uint32 version, extensions. */
    while (len < 9) {
        ssize_t n = sshflow_read_into(f, got + len, sizeof(got) - len, &err);

        ck_assert_msg(n > 0, "read: %zd %s", n, errtxt(&err));
        len += (size_t) n;
    }
    plen = (uint32_t) got[0] << 24 | (uint32_t) got[1] << 16 | (uint32_t) got[2] << 8 | got[3];
    ck_assert_uint_ge(plen, 5);
    ck_assert_uint_eq(got[4], 2);
    ck_assert_uint_eq(got[8], 3);
    ck_assert_int_eq(sshflow_shutdown(f, &err), 0);
    for (;;) {
        ssize_t n = sshflow_read_into(f, got, sizeof(got), &err);

        ck_assert_msg(n >= 0, "read: %s", errtxt(&err));
        if (n == 0) {
            break;
        }
        len += (size_t) n;
    }
    ck_assert_uint_eq(len, 4 + (size_t) plen);
    close_ok(f);
    sshflow_request_free(req);
}
END_TEST

/* A refused channel request is a CHANNEL error from client_of_flow. */
START_TEST(test_channel_request_refused)
{
    sshflow_request *req = sshflow_request_subsystem("no-such-subsystem");
    sshflow_error err;
    sshflow_flow *t, *f;
    struct copts o;

    REQUIRE_SRV();
    memset(&o, 0, sizeof(o));
    memset(&err, 0, sizeof(err));
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, &err);
    ck_assert_msg(t != NULL, "connect: %s", errtxt(&err));
    f = upgrade(&srv, t, req, &o, NULL, &err);
    ck_assert_msg(f == NULL, "an unknown subsystem was accepted");
    ck_assert_msg(err.kind == SSHFLOW_ERR_CHANNEL, "want CHANNEL, got %s", errtxt(&err));
    sshflow_request_free(req);
}
END_TEST

/* After the remote command exited and closed, writes fail with CLOSED (not a hang). */
START_TEST(test_write_after_remote_exit)
{
    uint8_t *buf = calloc(1, 16384);
    sshflow_error err;
    sshflow_flow *f;
    char out[16];
    size_t sent;
    int r = 0;

    REQUIRE_SRV();
    ck_assert_ptr_nonnull(buf);
    f = must_exec(&srv, "exec 0<&-; exit 0", NULL);
    read_all(f, out, sizeof(out));
    memset(&err, 0, sizeof(err));
    for (sent = 0; sent < 64 * MIB; sent += 16384) {
        r = sshflow_write(f, buf, 16384, &err);
        if (r != 0) {
            break;
        }
    }
    ck_assert_msg(r == SSHFLOW_ERR_CLOSED, "writes to a closed channel: %d after %zu bytes: %s", r,
                  sent, errtxt(&err));
    close_status(f, 0);
    free(buf);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Blocked calls end when another thread closes                             */
/* ------------------------------------------------------------------------ */

struct blocked {
    sshflow_flow *f;
    sem_t started;
    bool writer;
    ssize_t last;
    size_t moved;
    sshflow_error err;
};

#define BLOCKED_WRITE (64 * MIB)

static void *
blocked_run(void *arg)
{
    struct blocked *b = arg;
    uint8_t *buf = calloc(1, b->writer ? BLOCKED_WRITE : IO_CHUNK);

    memset(&b->err, 0, sizeof(b->err));
    b->last = SSHFLOW_ERR_NOMEM;
    sem_post(&b->started);
    if (buf == NULL) {
        return NULL;
    }
    if (!b->writer) {
        while ((b->last = sshflow_read_into(b->f, buf, IO_CHUNK, &b->err)) > 0) {
            b->moved += (size_t) b->last;
        }
    } else {
        /*
         * One call, far bigger than what the remote takes before it stops
         * reading (1 MiB, plus sshd's 2 MiB window and a pipe buffer): it
         * is in progress, blocked on the window, for as long as the remote
         * does not read.
         */
        b->last = sshflow_write(b->f, buf, BLOCKED_WRITE, &b->err);
    }
    free(buf);
    return NULL;
}

/*
 * A thread is blocked in read (the remote prints nothing) or in write (the
 * remote stopped reading); close from this thread must end that call, and
 * close's own bound must hold although the other thread is inside the flow.
 */
static void
blocked_then_close(bool writer)
{
    struct blocked b;
    struct timespec ts;
    sshflow_error err;
    pthread_t th;
    char line[16];
    int r;

    memset(&b, 0, sizeof(b));
    b.writer = writer;
    ck_assert_int_eq(sem_init(&b.started, 0, 0), 0);
    /* The remote reads exactly 1 MiB of stdin, says so, then neither reads nor writes for 10 s. */
    b.f = must_exec(&srv, "head -c 1048576 > /dev/null; echo got-1m; exec sleep 10", NULL);
    if (!writer) {
        /* Give it its 1 MiB ourselves, before the reader starts. */
        uint8_t *one = calloc(1, MIB);

        ck_assert_ptr_nonnull(one);
        ck_assert_int_eq(sshflow_write(b.f, one, MIB, &err), 0);
        free(one);
        read_until(b.f, line, sizeof(line), 0, "got-1m\n");
    }
    ck_assert_int_eq(pthread_create(&th, NULL, blocked_run, &b), 0);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    while ((r = sem_timedwait(&b.started, &ts)) != 0 && errno == EINTR) {
    }
    ck_assert_int_eq(r, 0);
    if (writer) {
        /* The remote got 1 MiB, which only the writer's single call sends: that call is under way. */
        read_until(b.f, line, sizeof(line), 0, "got-1m\n");
    }
    memset(&err, 0, sizeof(err));
    r = sshflow_close_timeout(b.f, 500, &err);
    if (r != SSHFLOW_ERR_TIMEOUT) {
        sshflow_exit ex;

        memset(&ex, 0, sizeof(ex));
        (void) sshflow_exit_info(b.f, &ex);
        ck_abort_msg("close_timeout(500) with a %s blocked on another thread returned %d (%s); "
                     "exit kind %d status %u (the remote ran 'sleep 10')",
                     writer ? "writer" : "reader", r, errtxt(&err), ex.kind, ex.status);
    }
    /* The blocked thread must come back promptly, with end of stream or an error. */
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    r = pthread_timedjoin_np(th, NULL, &ts);
    ck_assert_msg(r == 0, "the %s blocked on another thread did not return after close",
                  writer ? "writer" : "reader");
    if (writer) {
        ck_assert_msg(b.last < 0, "the 64 MiB write into a stalled remote returned %zd", b.last);
    } else {
        ck_assert_msg(b.last <= 0, "reader ended with %zd", b.last);
        ck_assert_uint_eq(b.moved, 0);
    }
    sshflow_free(b.f);
    sem_destroy(&b.started);
}

START_TEST(test_close_wakes_blocked_reader)
{
    REQUIRE_SRV();
    blocked_then_close(false);
}
END_TEST

START_TEST(test_close_wakes_blocked_writer)
{
    REQUIRE_SRV();
    blocked_then_close(true);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Several connections at once, from several threads                        */
/* ------------------------------------------------------------------------ */

#define PAR_CONNS 4

struct par {
    int idx;
    bool ok;
    char why[256];
};

static void *
par_run(void *arg)
{
    struct par *p = arg;
    static const char *const ciphers[PAR_CONNS] = { "chacha20-poly1305@openssh.com",
                                                    "aes128-gcm@openssh.com", "aes256-ctr",
                                                    "aes192-ctr" };
    struct copts o;
    sshflow_error err;
    sshflow_flow *f;
    struct writer w;
    char out[256];
    sshflow_exit ex;

    memset(&o, 0, sizeof(o));
    o.cipher = ciphers[p->idx];
    o.keyfile = p->idx % 2 == 0 ? srv.userkey_ed25519 : srv.userkey_ecdsa;
    f = try_exec(&srv, "sha256sum", &o, &err);
    if (f == NULL) {
        snprintf(p->why, sizeof(p->why), "connect: %s", errtxt(&err));
        return NULL;
    }
    memset(&w, 0, sizeof(w));
    w.f = f;
    w.n = 4 * MIB;
    w.seed = (uint8_t) (0x60 + p->idx);
    w.shutdown_after = true;
    writer_run(&w);
    if (w.rc != 0) {
        snprintf(p->why, sizeof(p->why), "write: %s", errtxt(&w.err));
        sshflow_free(f);
        return NULL;
    }
    {
        size_t len = 0;

        for (;;) {
            ssize_t n = sshflow_read_into(f, out + len, sizeof(out) - 1 - len, &err);

            if (n < 0) {
                snprintf(p->why, sizeof(p->why), "read: %s", errtxt(&err));
                sshflow_free(f);
                return NULL;
            }
            if (n == 0 || len + (size_t) n + 1 >= sizeof(out)) {
                break;
            }
            len += (size_t) n;
        }
        out[len] = '\0';
    }
    if (sshflow_close_timeout(f, 30000, &err) != 0) {
        snprintf(p->why, sizeof(p->why), "close: %s", errtxt(&err));
        sshflow_free(f);
        return NULL;
    }
    memset(&ex, 0, sizeof(ex));
    (void) sshflow_exit_info(f, &ex);
    sshflow_free(f);
    if (strncmp(out, w.hash_hex, 64) != 0 || ex.kind != SSHFLOW_EXIT_STATUS || ex.status != 0) {
        snprintf(p->why, sizeof(p->why), "server hash '%.64s' want %s, exit %d/%u", out,
                 w.hash_hex, ex.kind, ex.status);
        return NULL;
    }
    p->ok = true;
    return NULL;
}

START_TEST(test_parallel_connections)
{
    struct par p[PAR_CONNS];
    pthread_t th[PAR_CONNS];
    int i;

    REQUIRE_SRV();
    for (i = 0; i < PAR_CONNS; i++) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].idx = i;
        ck_assert_int_eq(pthread_create(&th[i], NULL, par_run, &p[i]), 0);
    }
    for (i = 0; i < PAR_CONNS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    }
    for (i = 0; i < PAR_CONNS; i++) {
        ck_assert_msg(p[i].ok, "connection %d: %s", i, p[i].why);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Strict key exchange, and a pre-auth banner                               */
/* ------------------------------------------------------------------------ */

/* Does this sshd speak strict KEX (the Terrapin counter-measure)? */
static bool
sshd_has_strict_kex(void)
{
    static const char marker[] = "kex-strict-s-v00@openssh.com";
    FILE *fp = fopen(SF_TEST_SSHD_PATH, "rb");
    static char buf[1 << 16];
    size_t keep = 0, n;
    bool found = false;

    if (fp == NULL) {
        return false;
    }
    while (!found && (n = fread(buf + keep, 1, sizeof(buf) - keep, fp)) > 0) {
        size_t len = keep + n;

        found = memmem(buf, len, marker, sizeof(marker) - 1) != NULL;
        keep = sizeof(marker);
        memmove(buf, buf + len - keep, keep);
    }
    fclose(fp);
    return found;
}

START_TEST(test_algs_strict_kex)
{
    char desc[512];
    sshflow_flow *f;
    char out[16];

    REQUIRE_SRV();
    if (!sshd_has_strict_kex()) {
        fprintf(stderr, "check_interop: SKIP test_algs_strict_kex: this sshd has no strict KEX\n");
        return;
    }
    f = must_exec(&srv, "echo ok", NULL);
    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    ck_assert_msg(strstr(desc, "strict") != NULL, "strict KEX not negotiated: %s", desc);
    read_all(f, out, sizeof(out));
    close_status(f, 0);
}
END_TEST

static char banner_path[64];

static void
setup_banner(void)
{
    static const char text[] = "sshflow test banner\nsecond line\n";
    char extra[128];
    int fd;

    srv_ok = false;
    snprintf(banner_path, sizeof(banner_path), "/tmp/sf-interop-banner-XXXXXX");
    fd = mkstemp(banner_path);
    if (fd < 0) {
        banner_path[0] = '\0';
        return;
    }
    if (write(fd, text, sizeof(text) - 1) != (ssize_t) sizeof(text) - 1) {
        close(fd);
        return;
    }
    close(fd);
    chmod(banner_path, 0644);
    snprintf(extra, sizeof(extra), "Banner %s\n", banner_path);
    srv_start(extra);
}

static void
teardown_banner(void)
{
    teardown_srv();
    if (banner_path[0] != '\0') {
        unlink(banner_path);
        banner_path[0] = '\0';
    }
}

START_TEST(test_auth_banner)
{
    char out[16];

    REQUIRE_SRV();
    run_ok(&srv, "echo ok", NULL, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Suite                                                                    */
/* ------------------------------------------------------------------------ */

static TCase *
tc_shared(Suite *s, const char *name, void (*setup)(void), int timeout)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, setup, teardown_srv);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *
interop_suite(void)
{
    Suite *s = suite_create("interop");
    TCase *tc;

    tc = tc_shared(s, "algorithms", setup_default, 60);
    tcase_add_loop_test(tc, test_algs_kex_hostkey, 0, (int) (N_KEX * N_HOSTKEY));
    tcase_add_loop_test(tc, test_algs_cipher_mac, 0, (int) N_CIPHERMAC);
    tcase_add_loop_test(tc, test_algs_mix, 0, (int) N_MIX);
    tcase_add_test(tc, test_algs_no_common_hostkey);
    tcase_add_test(tc, test_algs_strict_kex);

    tc = tc_shared(s, "auth", setup_default, 60);
    tcase_add_loop_test(tc, test_auth_userkey, 0, 3);
    tcase_add_test(tc, test_auth_password);
    tcase_add_test(tc, test_auth_password_wrong);
    tcase_add_test(tc, test_auth_key_unauthorized);
    tcase_add_test(tc, test_auth_second_key);
    tcase_add_test(tc, test_auth_password_then_key);

    tc = tc_shared(s, "exec", setup_default, 60);
    tcase_add_loop_test(tc, test_exec_exit_code, 0, 4);
    tcase_add_loop_test(tc, test_exec_exit_signal, 0, 4);
    tcase_add_test(tc, test_exec_exit_after_eof);
    tcase_add_test(tc, test_exec_stdout_stderr);
    tcase_add_test(tc, test_exec_stderr_unread);

    tc = tc_shared(s, "close", setup_default, 60);
    tcase_add_test(tc, test_halfclose);
    tcase_add_test(tc, test_close_waits_for_remote);
    tcase_add_test(tc, test_close_timeout);
    tcase_add_test(tc, test_close_no_wait);
    tcase_add_test(tc, test_close_wakes_blocked_reader);
    tcase_add_test(tc, test_close_wakes_blocked_writer);
    tcase_add_test(tc, test_write_after_remote_exit);

    tc = tc_shared(s, "channel", setup_default, 60);
    tcase_add_test(tc, test_channel_signal);
    tcase_add_test(tc, test_channel_env);
    tcase_add_test(tc, test_channel_pty);
    tcase_add_test(tc, test_channel_shell);
    tcase_add_test(tc, test_channel_subsystem_sftp);
    tcase_add_test(tc, test_channel_request_refused);
    tcase_add_test(tc, test_parallel_connections);
    tcase_add_test(tc, test_rekey_client_idle); /* a server that never re-keys by itself */

    tc = tcase_create("banner");
    tcase_add_unchecked_fixture(tc, setup_banner, teardown_banner);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_auth_banner);
    suite_add_tcase(s, tc);

    tc = tc_shared(s, "bulk", setup_default, 300);
    tcase_add_test(tc, test_bulk_upload_256m);
    tcase_add_test(tc, test_bulk_download_256m);
    tcase_add_test(tc, test_bulk_download_file_read);
    tcase_add_test(tc, test_read_small_pieces);
    tcase_add_test(tc, test_concurrent_cat_64m);
    tcase_add_test(tc, test_concurrent_writers_contiguous);
    tcase_add_test(tc, test_concurrent_stdout_stderr);
    tcase_add_test(tc, test_big_single_write);
    tcase_add_test(tc, test_rekey_client);
    tcase_add_loop_test(tc, test_rekey_client_ciphers, 0, 4);

    tc = tc_shared(s, "rekey_server", setup_rekey, 300);
    tcase_add_test(tc, test_rekey_server_upload);
    tcase_add_test(tc, test_rekey_server_download);
    tcase_add_test(tc, test_rekey_server_cat);

    tc = tc_shared(s, "rekey_time", setup_rekey_time, 60);
    tcase_add_test(tc, test_rekey_server_idle);

    tc = tc_shared(s, "hostkey_shared", setup_default, 60);
    tcase_add_test(tc, test_hostkey_callback);
    tcase_add_test(tc, test_hostkey_unknown_strict);
    tcase_add_test(tc, test_hostkey_accept_new);
    tcase_add_test(tc, test_hostkey_pinned_fingerprint);
    tcase_add_test(tc, test_hostkey_pinned_other_forms);
    tcase_add_test(tc, test_hostkey_known_type_preferred);
    tcase_add_test(tc, test_hostkey_hashed_and_lists);
    tcase_add_test(tc, test_hostkey_revoked);
    tcase_add_test(tc, test_connect_localhost_name);
    tcase_add_test(tc, test_algs_list_operators);

    /* These kill or change their server: one each, in the test's process. */
    tc = tcase_create("own_server");
    tcase_add_checked_fixture(tc, setup_own, teardown_srv);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hostkey_changed_refused);
    tcase_add_test(tc, test_server_killed_mid_download);
    tcase_add_test(tc, test_server_killed_mid_upload);
    suite_add_tcase(s, tc);

    tc = tc_shared(s, "inetd", setup_default, 120);
    tcase_add_test(tc, test_inetd_known_hosts);
    tcase_add_test(tc, test_inetd_fingerprint);

    tc = tcase_create("no_server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_timeout_silent_tcp);
    tcase_add_test(tc, test_connect_refused);
    tcase_add_test(tc, test_timeout_silent_socketpair);
    tcase_add_loop_test(tc, test_garbage_version, 0, 5);
    suite_add_tcase(s, tc);

    tc = tc_shared(s, "keepalive", setup_keepalive, 60);
    tcase_add_test(tc, test_keepalive_reply);

    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    if (!sf_test_sshd_available()) {
        fprintf(stderr, "check_interop: SKIP: sshd not usable here (or SSHFLOW_SKIP_INTEROP set)\n");
        return 0;
    }
    if (sf_test_sshd_init() != 0) {
        fprintf(stderr, "check_interop: cannot generate test keys\n");
        return 1;
    }
    sr = srunner_create(interop_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
