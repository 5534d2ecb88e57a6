/*
 * check/check_matrix.c -- the interop matrix: the sshflow client against
 * five real SSH servers (OpenSSH, Dropbear, tinysshd, paramiko, AsyncSSH;
 * check/testlib/servers.h), one algorithm at a time.
 *
 * Owns: for each server, reading what it offers (its KEXINIT), and for every
 * key exchange, host key, cipher and MAC algorithm that the server offers
 * and sshflow_supported() lists, one connection through the public API with
 * that algorithm forced: the handshake (the negotiated algorithm and the
 * host key fingerprint are checked), an exec of `cat && exit 7` (the exit
 * status is checked) and a round trip of N bytes through cat (SHA-256 of
 * what went out and what came back). N is 32 MiB (BIG_SIZE) for the first
 * cipher of each family per server (the family is the name without its
 * digits: aes-ctr, aes-cbc, aes-gcm@openssh.com, chacha-poly...), and
 * 256 KiB + 1 (SMALL_SIZE, more than Dropbear's 24 KiB window, several
 * packets) for everything else; under valgrind (or with SSHFLOW_MATRIX_BIG
 * set to a byte count) the big size changes. Each result is a line of
 * the TSV file $SSHFLOW_MATRIX_OUT (default: matrix.tsv beside this
 * program), which scripts/matrix.sh turns into docs/matrix.md.
 *
 * A combination both sides support that fails is a test failure; every
 * combination is still tried and recorded first. Algorithms are never
 * listed here: both lists come from the server and from the library.
 *
 * Must never: include a src/ header or call an internal sf_* function of the
 * library, reach anything but 127.0.0.1 and the servers it starts, wait
 * without a bound (ConnectTimeout bounds the handshake, a watchdog the
 * transfer), or signal a process it did not start.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "servers.h"
#include "sshflow.h"

#define MIB ((size_t) 1024 * 1024)
#define BIG_SIZE (32 * MIB)
#define SMALL_SIZE ((size_t) 256 * 1024 + 1)
#define COMMAND "cat && exit 7"
#define EXIT_EXPECTED 7u
#define CONNECT_TIMEOUT "20"   /* seconds: TCP connect and handshake */
#define CONNECT_TIMEOUT_VALGRIND "600" /* sntrup761 or DH group18 take minutes under valgrind */
#define VALGRIND_SLOWDOWN 15   /* the watchdog's bounds under valgrind */
#define TCP_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS 15000
#define SMALL_CASE_MS 60000    /* watchdog: one connection with a small transfer */
#define BIG_CASE_MS 180000     /* watchdog: one connection with a big transfer */
#define PROBE_TIMEOUT_MS 10000
#define IO_CHUNK 65536
#define LIST_MAX 8192
#define FAILS_MAX 8192
#define TCASE_TIMEOUT 900      /* seconds per server (all its algorithms) */

static char tsv_path[PATH_MAX];

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static long long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
errtxt(const sshflow_error *err)
{
    static __thread char buf[700];

    snprintf(buf, sizeof(buf), "%s: %s", sshflow_err_kind_name(err->kind), err->detail);
    return buf;
}

/* True if the comma- or newline-separated list holds name exactly. */
static bool
list_has(const char *list, const char *name)
{
    size_t n = strlen(name);
    const char *p = list;

    while (p != NULL && *p != '\0') {
        size_t len = strcspn(p, ",\n");

        if (len == n && strncmp(p, name, n) == 0) {
            return true;
        }
        p += len;
        if (*p != '\0') {
            p++;
        }
    }
    return false;
}

/* Next name of a comma- or newline-separated list into name[namesz]; NULL at the end. */
static const char *
list_next(const char *p, char *name, size_t namesz)
{
    size_t len;

    while (p != NULL && (*p == ',' || *p == '\n')) {
        p++;
    }
    if (p == NULL || *p == '\0') {
        return NULL;
    }
    len = strcspn(p, ",\n");
    snprintf(name, namesz, "%.*s", (int) (len < namesz ? len : namesz - 1), p);
    return p + len;
}

/* The family of an algorithm: its name without digits ("aes128-ctr" -> "aes-ctr"). */
static void
family_of(const char *alg, char *out, size_t outsz)
{
    size_t j = 0;

    for (; *alg != '\0' && j + 1 < outsz; alg++) {
        if (*alg < '0' || *alg > '9') {
            out[j++] = *alg;
        }
    }
    out[j] = '\0';
}

/* An AEAD cipher carries its own MAC: a MAC is negotiated but unused with it. */
static bool
cipher_is_aead(const char *name)
{
    return strstr(name, "poly1305") != NULL || strstr(name, "-gcm") != NULL;
}

/* Under valgrind (20-50x slower): small transfers everywhere, longer bounds. */
static bool
under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");

    return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* The watchdog's bound for one connection. */
static int
case_bound_ms(size_t size)
{
    int ms = size >= BIG_SIZE ? BIG_CASE_MS : SMALL_CASE_MS;

    return under_valgrind() ? ms * VALGRIND_SLOWDOWN : ms;
}

/* Copy s into out with tabs and newlines turned into spaces (one TSV field). */
static void
field(char *out, size_t outsz, const char *s)
{
    size_t j = 0;

    for (; s != NULL && *s != '\0' && j + 1 < outsz; s++) {
        out[j++] = (*s == '\t' || *s == '\n' || *s == '\r') ? ' ' : *s;
    }
    out[j] = '\0';
}

/* ------------------------------------------------------------------------ */
/* The TSV file                                                             */
/* ------------------------------------------------------------------------ */

#define TSV_HEADER                                                                                 \
    "server\tclass\talgorithm\tstatus\thandshake\texec\ttransfer\tbytes\tms\tnegotiated\tdetail\n"

struct row {
    const char *server, *cls, *alg, *status, *handshake, *exec, *transfer;
    size_t bytes;
    long long ms;
    const char *negotiated, *detail;
};

/* One line, appended with one write() (the file is shared by Check's forked tests). */
static void
tsv_row(const struct row *r)
{
    char neg[300], det[SF_TEST_SRV_LIST_MAX], line[SF_TEST_SRV_LIST_MAX + 1024];
    int fd, n;

    field(neg, sizeof(neg), r->negotiated != NULL ? r->negotiated : "");
    field(det, sizeof(det), r->detail != NULL ? r->detail : "");
    n = snprintf(line, sizeof(line), "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%zu\t%lld\t%s\t%s\n", r->server,
                 r->cls, r->alg, r->status, r->handshake != NULL ? r->handshake : "-",
                 r->exec != NULL ? r->exec : "-", r->transfer != NULL ? r->transfer : "-", r->bytes,
                 r->ms, neg, det);
    ck_assert_int_gt(n, 0);
    if ((size_t) n >= sizeof(line)) {
        n = (int) sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    fd = open(tsv_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    ck_assert_msg(fd >= 0, "cannot open %s: %s", tsv_path, strerror(errno));
    ck_assert_int_eq(write(fd, line, (size_t) n), n);
    close(fd);
}

static void
tsv_info(const char *server, const char *what, const char *text)
{
    struct row r = { server, "info", what, "info", "-", "-", "-", 0, 0, "", text };

    tsv_row(&r);
}

/* ------------------------------------------------------------------------ */
/* One connection                                                           */
/* ------------------------------------------------------------------------ */

/* Deterministic test data: splitmix64. */
static uint64_t
next64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void
fill(uint8_t *p, size_t n, uint64_t *state)
{
    size_t i;

    for (i = 0; i < n; i += 8) {
        uint64_t v = next64(state);
        size_t k = n - i < 8 ? n - i : 8;

        memcpy(p + i, &v, k);
    }
}

static void
sha_hex(EVP_MD_CTX *ctx, char out[65])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t md[32];
    unsigned int len = 0, i;

    out[0] = '\0';
    if (EVP_DigestFinal_ex(ctx, md, &len) != 1 || len != 32) {
        return;
    }
    for (i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
}

struct writer {
    sshflow_flow *f;
    size_t size;
    int rc;
    sshflow_error err;
    char sha[65];
};

static void *
writer_main(void *arg)
{
    struct writer *w = arg;
    uint8_t *buf = malloc(IO_CHUNK);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint64_t state = 0x5eed5eed5eedULL ^ w->size;
    size_t off = 0;

    w->rc = -1;
    if (buf == NULL || ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        snprintf(w->err.detail, sizeof(w->err.detail), "out of memory");
        goto out;
    }
    while (off < w->size) {
        size_t n = w->size - off < IO_CHUNK ? w->size - off : IO_CHUNK;

        fill(buf, n, &state);
        (void) EVP_DigestUpdate(ctx, buf, n);
        if (sshflow_write(w->f, buf, n, &w->err) != 0) {
            goto out;
        }
        off += n;
    }
    if (sshflow_shutdown(w->f, &w->err) != 0) {
        goto out;
    }
    sha_hex(ctx, w->sha);
    w->rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    free(buf);
    return NULL;
}

/* Closes the flow (waking every blocked call) if the case runs past its bound. */
struct watchdog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, fired;
    sshflow_flow *f;
    int ms;
    pthread_t th;
};

static void *
watchdog_main(void *arg)
{
    struct watchdog *wd = arg;
    struct timespec until;
    bool fire = false;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wd->ms / 1000;
    pthread_mutex_lock(&wd->mu);
    while (!wd->done) {
        if (pthread_cond_timedwait(&wd->cv, &wd->mu, &until) == ETIMEDOUT) {
            fire = !wd->done;
            wd->fired = fire;
            break;
        }
    }
    pthread_mutex_unlock(&wd->mu);
    if (fire) {
        (void) sshflow_close_timeout(wd->f, 0, NULL);
    }
    return NULL;
}

static void
watchdog_start(struct watchdog *wd, sshflow_flow *f, int ms)
{
    pthread_condattr_t ca;

    memset(wd, 0, sizeof(*wd));
    wd->f = f;
    wd->ms = ms;
    ck_assert_int_eq(pthread_mutex_init(&wd->mu, NULL), 0);
    ck_assert_int_eq(pthread_condattr_init(&ca), 0);
    ck_assert_int_eq(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC), 0);
    ck_assert_int_eq(pthread_cond_init(&wd->cv, &ca), 0);
    pthread_condattr_destroy(&ca);
    ck_assert_int_eq(pthread_create(&wd->th, NULL, watchdog_main, wd), 0);
}

/* Stop the watchdog; true if it fired. */
static bool
watchdog_stop(struct watchdog *wd)
{
    bool fired;

    pthread_mutex_lock(&wd->mu);
    wd->done = true;
    pthread_cond_broadcast(&wd->cv);
    pthread_mutex_unlock(&wd->mu);
    pthread_join(wd->th, NULL);
    fired = wd->fired;
    pthread_cond_destroy(&wd->cv);
    pthread_mutex_destroy(&wd->mu);
    return fired;
}

struct hostkey_check {
    const struct sf_test_server *s;
    bool known;
    char fp[80];
};

static bool
hostkey_cb(void *user, const char *host, uint16_t port, const char *keytype, const uint8_t *blob,
           size_t bloblen, const char *fingerprint)
{
    struct hostkey_check *hk = user;
    int i;

    (void) host;
    (void) port;
    (void) keytype;
    (void) blob;
    (void) bloblen;
    snprintf(hk->fp, sizeof(hk->fp), "%s", fingerprint != NULL ? fingerprint : "(none)");
    for (i = 0; fingerprint != NULL && i < hk->s->nhostfp; i++) {
        if (strcmp(fingerprint, hk->s->hostfp[i]) == 0) {
            hk->known = true;
        }
    }
    return hk->known;
}

/*
 * Set option `opt` so that only `alg` is offered. A name the plain list
 * refuses (a legacy algorithm) is enabled with "+name" and then everything
 * else in `all` is removed with "-...". how gets the form that worked.
 */
static int
force_alg(sshflow_config *cfg, const char *opt, const char *all, const char *alg, char *how,
          size_t howsz, sshflow_error *err)
{
    static char minus[LIST_MAX];
    char plus[300], name[256];
    const char *p = all;
    size_t j = 1;

    if (sshflow_config_set(cfg, opt, alg, err) == 0) {
        snprintf(how, howsz, "%s", alg);
        return 0;
    }
    snprintf(plus, sizeof(plus), "+%s", alg);
    if (sshflow_config_set(cfg, opt, plus, err) != 0) {
        return -1;
    }
    minus[0] = '-';
    minus[1] = '\0';
    while ((p = list_next(p, name, sizeof(name))) != NULL) {
        if (strcmp(name, alg) == 0 || j + strlen(name) + 2 >= sizeof(minus)) {
            continue;
        }
        j += (size_t) snprintf(minus + j, sizeof(minus) - j, "%s%s", j > 1 ? "," : "", name);
    }
    if (j > 1 && sshflow_config_set(cfg, opt, minus, err) != 0) {
        return -1;
    }
    snprintf(how, howsz, "+%s", alg);
    return 0;
}

struct outcome {
    bool hs_ok, exec_ok, xfer_ok;
    char negotiated[256];
    char detail[700];
    long long ms;
};

static void add_detail(struct outcome *o, const char *f, ...) __attribute__((format(printf, 2, 3)));

static void
add_detail(struct outcome *o, const char *f, ...)
{
    size_t len = strlen(o->detail);
    char piece[600];
    va_list ap;

    va_start(ap, f);
    vsnprintf(piece, sizeof(piece), f, ap);
    va_end(ap);
    snprintf(o->detail + len, sizeof(o->detail) - len, "%s%s", len > 0 ? "; " : "", piece);
}

/* The value of "key=" in sshflow_describe()'s text ("kex=... hostkey=... cipher=... mac=..."). */
static void
desc_value(const char *desc, const char *key, char *out, size_t outsz)
{
    char pat[32];
    const char *p;

    out[0] = '\0';
    snprintf(pat, sizeof(pat), "%s=", key);
    for (p = desc; (p = strstr(p, pat)) != NULL; p++) {
        if (p == desc || p[-1] == ' ') {
            size_t n = strcspn(p + strlen(pat), " ");

            snprintf(out, outsz, "%.*s", (int) n, p + strlen(pat));
            return;
        }
    }
}

/*
 * One connection to s with `alg` of class cls forced (and, for a MAC, the
 * cipher mac_cipher): handshake, exec, round trip of size bytes.
 */
static void
run_case(const struct sf_test_server *s, const char *cls, const char *alg, const char *mac_cipher,
         size_t size, struct outcome *o)
{
    static const struct {
        const char *cls, *opt, *desc_key;
    } classes[] = {
        { "kex", "KexAlgorithms", "kex" },
        { "key", "HostKeyAlgorithms", "hostkey" },
        { "cipher", "Ciphers", "cipher" },
        { "mac", "MACs", "mac" },
    };
    sshflow_config *cfg = sshflow_config_new();
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_request *req = sshflow_request_exec(COMMAND);
    struct hostkey_check hk = { s, false, "" };
    sshflow_hostauth *ha = sshflow_hostauth_callback(hostkey_cb, &hk);
    sshflow_flow *t = NULL, *f = NULL;
    sshflow_error err;
    struct writer w;
    struct watchdog wd;
    pthread_t wth;
    bool writer_started = false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = malloc(IO_CHUNK);
    size_t got = 0, k;
    char how[300], cipher_how[300], value[256], sha[65];
    const char *opt = NULL, *desc_key = NULL;
    long long t0 = now_ms();
    int r = 0;

    memset(o, 0, sizeof(*o));
    memset(&err, 0, sizeof(err));
    ck_assert_ptr_nonnull(cfg);
    ck_assert_ptr_nonnull(cred);
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(ha);
    ck_assert_ptr_nonnull(ctx);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    for (k = 0; k < sizeof(classes) / sizeof(classes[0]); k++) {
        if (strcmp(classes[k].cls, cls) == 0) {
            opt = classes[k].opt;
            desc_key = classes[k].desc_key;
        }
    }
    ck_assert_ptr_nonnull(opt);

    /* Configuration: only this algorithm. */
    ck_assert_int_eq(sshflow_config_set(cfg, "ConnectTimeout",
                                        under_valgrind() ? CONNECT_TIMEOUT_VALGRIND : CONNECT_TIMEOUT, &err),
                     0);
    if (force_alg(cfg, opt, sshflow_supported(cls), alg, how, sizeof(how), &err) != 0) {
        add_detail(o, "sshflow_config_set %s %s refused: %s", opt, alg, errtxt(&err));
        goto out;
    }
    if (strcmp(how, alg) != 0) {
        add_detail(o, "enabled as %s", how);
    }
    if (mac_cipher != NULL) {
        if (force_alg(cfg, "Ciphers", sshflow_supported("cipher"), mac_cipher, cipher_how,
                      sizeof(cipher_how), &err) != 0) {
            add_detail(o, "sshflow_config_set Ciphers %s refused: %s", mac_cipher, errtxt(&err));
            goto out;
        }
    }
    if (s->userkey[0] != '\0') {
        ck_assert_int_eq(sshflow_cred_add_keyfile(cred, s->userkey, NULL, &err), 0);
    }
    if (s->password != NULL) {
        ck_assert_int_eq(sshflow_cred_add_password(cred, s->password, &err), 0);
    }

    /* Handshake. */
    t = sshflow_connect_tcp("127.0.0.1", s->port, TCP_TIMEOUT_MS, &err);
    if (t == NULL) {
        add_detail(o, "connect: %s", errtxt(&err));
        goto out;
    }
    f = sshflow_client_of_flow(t, s->user, cred, ha, req, cfg, &err);
    t = NULL; /* taken in every case */
    if (f == NULL) {
        add_detail(o, "handshake: %s", errtxt(&err));
        if (hk.fp[0] != '\0' && !hk.known) {
            add_detail(o, "host key %s is none of the server's keys", hk.fp);
        }
        goto out;
    }
    ck_assert_int_eq(sshflow_describe(f, o->negotiated, sizeof(o->negotiated)), 0);
    desc_value(o->negotiated, desc_key, value, sizeof(value));
    if (strcmp(value, alg) != 0) {
        add_detail(o, "negotiated %s instead of the forced one (%s)", value, o->negotiated);
        goto out;
    }
    if (mac_cipher != NULL) {
        desc_value(o->negotiated, "cipher", value, sizeof(value));
        if (strcmp(value, mac_cipher) != 0) {
            add_detail(o, "negotiated cipher %s, not %s", value, mac_cipher);
            goto out;
        }
    }
    o->hs_ok = true;

    /* Round trip through cat, bounded by the watchdog. */
    memset(&w, 0, sizeof(w));
    w.f = f;
    w.size = size;
    watchdog_start(&wd, f, case_bound_ms(size));
    ck_assert_int_eq(pthread_create(&wth, NULL, writer_main, &w), 0);
    writer_started = true;
    for (;;) {
        ssize_t n = sshflow_read_into(f, buf, IO_CHUNK, &err);

        if (n == 0) {
            break;
        }
        if (n < 0) {
            add_detail(o, "read after %zu bytes: %s", got, errtxt(&err));
            r = -1;
            (void) sshflow_close_timeout(f, 0, NULL); /* wake the writer */
            break;
        }
        (void) EVP_DigestUpdate(ctx, buf, (size_t) n);
        got += (size_t) n;
    }
    pthread_join(wth, NULL);
    writer_started = false;
    if (r == 0) {
        r = sshflow_close_timeout(f, CLOSE_TIMEOUT_MS, &err);
        if (r != 0) {
            add_detail(o, "close: %s", errtxt(&err));
        }
    }
    if (watchdog_stop(&wd)) {
        add_detail(o, "watchdog: no end after %d ms", case_bound_ms(size));
    }
    sha_hex(ctx, sha);
    if (w.rc != 0) {
        add_detail(o, "write: %s", errtxt(&w.err));
    } else if (got != size || strcmp(sha, w.sha) != 0) {
        add_detail(o, "received %zu of %zu bytes, SHA-256 %s", got, size,
                   got == size ? "differs" : "not compared");
    } else {
        o->xfer_ok = true;
    }

    /* The exit status (final once close returned 0). */
    {
        sshflow_exit ex;

        ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
        if (ex.kind == SSHFLOW_EXIT_STATUS && ex.status == EXIT_EXPECTED) {
            o->exec_ok = true;
        } else {
            char what[64];

            if (ex.kind == SSHFLOW_EXIT_STATUS) {
                snprintf(what, sizeof(what), "status %u", ex.status);
            } else if (ex.kind == SSHFLOW_EXIT_SIGNAL) {
                snprintf(what, sizeof(what), "signal %s", ex.signal);
            } else {
                snprintf(what, sizeof(what), "no exit status");
            }
            add_detail(o, "exec: %s (expected status %u)", what, EXIT_EXPECTED);
        }
    }
out:
    if (writer_started) {
        pthread_join(wth, NULL);
    }
    o->ms = now_ms() - t0;
    sshflow_free(f);
    sshflow_free(t);
    sshflow_hostauth_free(ha);
    sshflow_request_free(req);
    sshflow_cred_free(cred);
    sshflow_config_free(cfg);
    EVP_MD_CTX_free(ctx);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* One server                                                               */
/* ------------------------------------------------------------------------ */

static size_t
big_size(void)
{
    const char *e = getenv("SSHFLOW_MATRIX_BIG");

    if (e != NULL && *e != '\0') {
        char *end = NULL;
        unsigned long long v = strtoull(e, &end, 10);

        if (end != e && *end == '\0' && v > 0) {
            return (size_t) v;
        }
    }
    return under_valgrind() ? SMALL_SIZE : BIG_SIZE;
}

struct failures {
    int n;
    char text[FAILS_MAX];
};

static void
note_failure(struct failures *fl, const char *cls, const char *alg, const char *detail)
{
    size_t len = strlen(fl->text);

    fl->n++;
    snprintf(fl->text + len, sizeof(fl->text) - len, "\n  %s %s: %s", cls, alg, detail);
}

static void
run_class(const struct sf_test_server *s, const struct sf_test_kexinit *ki, const char *cls,
          struct failures *fl)
{
    const char *offered = strcmp(cls, "kex") == 0   ? ki->kex
                          : strcmp(cls, "key") == 0 ? ki->hostkey
                          : strcmp(cls, "cipher") == 0 ? ki->cipher
                                                       : ki->mac;
    const char *supported = sshflow_supported(cls);
    const char *cipher_supported = sshflow_supported("cipher");
    char families[32][64];
    int nfam = 0;
    char name[256], mac_cipher[256];
    const char *p;

    ck_assert_msg(supported != NULL && supported[0] != '\0', "sshflow_supported(\"%s\") is empty", cls);
    ck_assert_ptr_nonnull(cipher_supported);

    /* A MAC is used only with a cipher without its own: the first one both sides have. */
    mac_cipher[0] = '\0';
    if (strcmp(cls, "mac") == 0) {
        for (p = cipher_supported; (p = list_next(p, name, sizeof(name))) != NULL;) {
            if (list_has(ki->cipher, name) && !cipher_is_aead(name)) {
                snprintf(mac_cipher, sizeof(mac_cipher), "%s", name);
                break;
            }
        }
    }

    /* Both support it: test it (in sshflow's order). */
    for (p = supported; (p = list_next(p, name, sizeof(name))) != NULL;) {
        struct outcome o;
        struct row r = { s->name, cls, name, "tested", NULL, NULL, NULL, 0, 0, NULL, NULL };
        size_t size = SMALL_SIZE;

        if (!list_has(offered, name)) {
            continue;
        }
        if (strcmp(cls, "mac") == 0 && mac_cipher[0] == '\0') {
            r.status = "untestable";
            r.detail = "the server has no cipher without a built-in MAC in common with sshflow";
            tsv_row(&r);
            continue;
        }
        if (strcmp(cls, "cipher") == 0) {
            char fam[64];
            bool seen = false;
            int i;

            family_of(name, fam, sizeof(fam));
            for (i = 0; i < nfam; i++) {
                seen = seen || strcmp(families[i], fam) == 0;
            }
            if (!seen && nfam < 32) {
                snprintf(families[nfam++], sizeof(families[0]), "%s", fam);
                size = big_size();
            }
        }
        run_case(s, cls, name, mac_cipher[0] != '\0' ? mac_cipher : NULL, size, &o);
        r.handshake = o.hs_ok ? "pass" : "FAIL";
        r.exec = o.hs_ok ? (o.exec_ok ? "pass" : "FAIL") : "-";
        r.transfer = o.hs_ok ? (o.xfer_ok ? "pass" : "FAIL") : "-";
        r.bytes = size;
        r.ms = o.ms;
        r.negotiated = o.negotiated;
        r.detail = o.detail;
        tsv_row(&r);
        fprintf(stderr, "matrix: %-9s %-6s %-45s %s%s%s (%zu bytes, %lld ms)%s%s\n", s->name, cls, name,
                r.handshake, strcmp(r.handshake, "pass") == 0 ? "/" : "",
                strcmp(r.handshake, "pass") == 0 ? (o.exec_ok && o.xfer_ok ? "pass" : "FAIL") : "", size,
                o.ms, o.detail[0] != '\0' ? ": " : "", o.detail);
        if (!(o.hs_ok && o.exec_ok && o.xfer_ok)) {
            note_failure(fl, cls, name, o.detail);
        }
    }

    /* The server offers it, sshflow does not implement it. */
    for (p = offered; (p = list_next(p, name, sizeof(name))) != NULL;) {
        struct row r = { s->name, cls, name, "sshflow-lacks", "-", "-", "-", 0, 0, "", "" };

        if (!list_has(supported, name)) {
            tsv_row(&r);
        }
    }
}

static void
run_server(int kind)
{
    const char *name = sf_test_server_name(kind);
    static struct sf_test_server s;
    static struct sf_test_kexinit ki;
    static struct failures fl;
    char why[256], software[256];
    long long t0 = now_ms();

    memset(&fl, 0, sizeof(fl));
    if (!sf_test_server_available(kind, why, sizeof(why))) {
        fprintf(stderr, "matrix: %s skipped: %s\n", name, why);
        tsv_info(name, "skipped", why);
        return;
    }
    ck_assert_msg(sf_test_server_start(&s, kind) == 0, "%s did not start", name);
    ck_assert_msg(sf_test_kexinit_probe(s.port, PROBE_TIMEOUT_MS, &ki) == 0,
                  "%s: no KEXINIT from the server", name);
    /* "SSH-2.0-softwareversion comments": the comment may vary by connection (tinysshd). */
    snprintf(software, sizeof(software), "%s", ki.banner + (strncmp(ki.banner, "SSH-2.0-", 8) == 0 ? 8 : 0));
    software[strcspn(software, " ")] = '\0';
    tsv_info(name, "software", software);
    tsv_info(name, "package", s.package);
    tsv_info(name, "host-keys", s.hostkeys);
    tsv_info(name, "offers-kex", ki.kex);
    tsv_info(name, "offers-key", ki.hostkey);
    tsv_info(name, "offers-cipher", ki.cipher);
    tsv_info(name, "offers-mac", ki.mac);
    fprintf(stderr, "matrix: %s is %s (%s) on port %u\n", name, software, s.package, s.port);

    run_class(&s, &ki, "kex", &fl);
    run_class(&s, &ki, "key", &fl);
    run_class(&s, &ki, "cipher", &fl);
    run_class(&s, &ki, "mac", &fl);

    sf_test_server_stop(&s);
    {
        char ms[32];

        snprintf(ms, sizeof(ms), "%lld", now_ms() - t0);
        tsv_info(name, "elapsed-ms", ms);
    }
    ck_assert_msg(fl.n == 0, "%s: %d combination(s) failed:%s", name, fl.n, fl.text);
}

START_TEST(test_matrix_openssh)
{
    run_server(SF_TEST_SRV_OPENSSH);
}
END_TEST

START_TEST(test_matrix_dropbear)
{
    run_server(SF_TEST_SRV_DROPBEAR);
}
END_TEST

START_TEST(test_matrix_tinysshd)
{
    run_server(SF_TEST_SRV_TINYSSH);
}
END_TEST

START_TEST(test_matrix_paramiko)
{
    run_server(SF_TEST_SRV_PARAMIKO);
}
END_TEST

START_TEST(test_matrix_asyncssh)
{
    run_server(SF_TEST_SRV_ASYNCSSH);
}
END_TEST

/* SSHFLOW_MATRIX_OUT, else matrix.tsv in this program's directory. */
static void
choose_tsv_path(void)
{
    const char *e = getenv("SSHFLOW_MATRIX_OUT");
    char self[PATH_MAX];
    ssize_t n;

    if (e != NULL && *e != '\0') {
        snprintf(tsv_path, sizeof(tsv_path), "%s", e);
        return;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;

        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(tsv_path, sizeof(tsv_path), "%.*s/matrix.tsv", (int) (sizeof(tsv_path) - 12), self);
            return;
        }
    }
    snprintf(tsv_path, sizeof(tsv_path), "matrix.tsv");
}

static TCase *
server_tcase(const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, TCASE_TIMEOUT);
    return tc;
}

static Suite *
matrix_suite(void)
{
    Suite *su = suite_create("matrix");
    TCase *tc;

    /* One tcase per server, so CK_RUN_CASE=dropbear runs just that one. */
    tc = server_tcase("openssh");
    tcase_add_test(tc, test_matrix_openssh);
    suite_add_tcase(su, tc);
    tc = server_tcase("dropbear");
    tcase_add_test(tc, test_matrix_dropbear);
    suite_add_tcase(su, tc);
    tc = server_tcase("tinysshd");
    tcase_add_test(tc, test_matrix_tinysshd);
    suite_add_tcase(su, tc);
    tc = server_tcase("paramiko");
    tcase_add_test(tc, test_matrix_paramiko);
    suite_add_tcase(su, tc);
    tc = server_tcase("asyncssh");
    tcase_add_test(tc, test_matrix_asyncssh);
    suite_add_tcase(su, tc);
    return su;
}

int
main(void)
{
    static const char *const classes[] = { "kex", "key", "cipher", "mac" };
    SRunner *sr;
    int failed, fd;
    size_t i;

    choose_tsv_path();
    fd = open(tsv_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, TSV_HEADER, strlen(TSV_HEADER)) != (ssize_t) strlen(TSV_HEADER)) {
        fprintf(stderr, "check_matrix: cannot write %s: %s\n", tsv_path, strerror(errno));
        return 1;
    }
    /* What this sshflow implements, in its order (scripts/matrix.sh orders its rows by it). */
    for (i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        const char *list = sshflow_supported(classes[i]);
        char line[LIST_MAX + 128];
        int n = snprintf(line, sizeof(line), "sshflow\tinfo\tsupports-%s\tinfo\t-\t-\t-\t0\t0\t\t",
                         classes[i]);
        size_t j = (size_t) n;

        for (; list != NULL && *list != '\0' && j + 2 < sizeof(line); list++) {
            line[j++] = *list == '\n' ? ',' : *list;
        }
        while (j > (size_t) n && line[j - 1] == ',') {
            j--;
        }
        line[j++] = '\n';
        if (write(fd, line, j) != (ssize_t) j) {
            fprintf(stderr, "check_matrix: cannot write %s: %s\n", tsv_path, strerror(errno));
            close(fd);
            return 1;
        }
    }
    close(fd);
    fprintf(stderr, "check_matrix: results in %s\n", tsv_path);
    if (sf_test_sshd_init() != 0) {
        fprintf(stderr, "check_matrix: no key cache; each server makes its own keys\n");
    }
    sr = srunner_create(matrix_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
