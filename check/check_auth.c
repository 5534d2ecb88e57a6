/*
 * check/check_auth.c -- user-authentication interop tests of the sshflow
 * client against a real OpenSSH sshd (check/testlib/sshd.h), with keys,
 * certificates and agents made by the real OpenSSH tools
 * (check/testlib/authkit.h).
 *
 * Owns: end-to-end tests through the public API only (include/sshflow.h):
 * every key type x file format x plain/encrypted made by ssh-keygen, key
 * passphrases (missing, wrong, prompted), several identities in order,
 * ssh-agent (by path and $SSH_AUTH_SOCK, empty, dead), password prompts,
 * keyboard-interactive through PAM, two factors (AuthenticationMethods),
 * USERAUTH_BANNER, the text of authentication errors, the
 * PreferredAuthentications / *Authentication options, user certificates
 * (found beside the key or added explicitly; wrong principal, expired,
 * untrusted CA), and hashed / @revoked known_hosts made by ssh-keygen.
 *
 * One sshd per tcase (unchecked fixture in the runner process; each forked
 * test uses it); the keys are made once in main() before the runner starts
 * so every test process inherits them.
 *
 * Must never: include a src/ header or call an internal sf_* function of the
 * library, reach anything but 127.0.0.1 and the servers and agents it
 * starts, use the user's ~/.ssh or agent, depend on timing for its verdict
 * (every wait is bounded by ConnectTimeout or the tcase timeout), or signal
 * a process it did not start.
 */
#include <check.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authkit.h"
#include "sshd.h"
#include "sshflow.h"

#define CONNECT_TIMEOUT "20" /* seconds: bound on every handshake */
#define TCP_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS 20000
#define LOG_WAIT_MS 10000
#define TCASE_TIMEOUT 60     /* seconds per test */
#define PASS "sshflow key pass 1" /* passphrase of every encrypted test key */
#define WRONG_PASS "not the pass phrase"
#define MATRIX_MAX 32
#define PATH_SZ SF_AUTHKIT_PATH_MAX

/* ------------------------------------------------------------------------ */
/* The kit: keys and certificates made once, before the runner forks        */
/* ------------------------------------------------------------------------ */

struct mkey {
    char name[48];      /* e.g. "ecdsa384-pkcs8-enc" */
    const char *type;   /* ssh-keygen -t */
    const char *bits;   /* -b or NULL */
    const char *format; /* -m or NULL (openssh) */
    const char *cipher; /* -Z or NULL */
    bool enc;           /* made with -N PASS */
    int base;           /* -1: generated; else the matrix key it is a converted copy of */
    char path[PATH_SZ];
};

struct ckey {
    const char *name;
    const char *type, *bits;
    const char *logtype; /* as sshd logs the certified key, e.g. "ED25519-CERT" */
    const char *pkalg;   /* the signature algorithm we expect sshd to log */
    char path[PATH_SZ];
};

static char kit[PATH_SZ];       /* the kit directory (0755) */
static char authdir[PATH_SZ];   /* AuthorizedKeysFile <authdir>/%u */
static char empty_ak[PATH_SZ];  /* an empty authorized_keys file (certs server) */
static char banner_file[PATH_SZ];
static char me[64];             /* the login user of key tests: the current user */
static bool kit_ok, pw_ok;
static bool verbose;            /* SF_AUTH_VERBOSE set: sshflow's log and every error to stderr */

static struct mkey matrix[MATRIX_MAX];
static size_t n_matrix;
static size_t enc_idx[MATRIX_MAX]; /* indexes of encrypted keys in matrix */
static size_t n_enc;

static char key_unauth[PATH_SZ]; /* ed25519, in no authorized_keys */
static char key_tf[PATH_SZ];     /* ed25519, authorized for the password user (two factors) */
static char ca_key[PATH_SZ];     /* the trusted user CA */
static char ca_other[PATH_SZ];   /* a CA sshd does not trust */

static struct ckey cert_auto[3] = {
    { "cert-ed25519", "ed25519", NULL, "ED25519-CERT", "ssh-ed25519-cert-v01@openssh.com", "" },
    { "cert-ecdsa", "ecdsa", "384", "ECDSA-CERT", "ecdsa-sha2-nistp384-cert-v01@openssh.com", "" },
    { "cert-rsa", "rsa", "2048", "RSA-CERT", "rsa-sha2-512-cert-v01@openssh.com", "" },
};
static char cert_explicit[PATH_SZ];     /* key whose certificate is NOT at <key>-cert.pub */
static char cert_explicit_crt[PATH_SZ]; /* ... but here */
static char cert_wrongprinc[PATH_SZ];   /* key + -cert.pub for another principal */
static char cert_expired[PATH_SZ];      /* key + -cert.pub valid 2020-01-01..02 */
static char cert_otherca[PATH_SZ];      /* key + -cert.pub signed by ca_other */

/* The banner sshd sends: text, then a line with terminal escapes to be stripped. */
#define BANNER_WORDS "sshflow-auth-banner: authorized use only"
#define BANNER_TEXT BANNER_WORDS "\n\033[31mred\033[0m \033]0;title\007tail\n"

static int
kpath(char *out, const char *name)
{
    int n = snprintf(out, PATH_SZ, "%s/keys/%s", kit, name);

    return n > 0 && n < PATH_SZ ? 0 : -1;
}

/*
 * One key per type is generated (the plain OpenSSH-format one); the other
 * formats of that type are the same key rewritten by `ssh-keygen -p`, which
 * keeps RSA key generation (slow) to one key.
 */
static void
matrix_add(const char *name, const char *type, const char *bits, const char *format,
           const char *cipher, bool enc, int base)
{
    struct mkey *k = &matrix[n_matrix];

    snprintf(k->name, sizeof(k->name), "%s", name);
    k->base = base;
    k->type = type;
    k->bits = bits;
    k->format = format;
    k->cipher = cipher;
    k->enc = enc;
    if (enc) {
        enc_idx[n_enc++] = n_matrix;
    }
    n_matrix++;
}

static void
matrix_build(void)
{
    static const char *const curves[3] = { "256", "384", "521" };
    static const char *const formats[3] = { NULL, "PEM", "PKCS8" };
    static const char *const fnames[3] = { "openssh", "pem", "pkcs8" };
    char name[48];
    size_t c, f, e;

    matrix_add("ed25519", "ed25519", NULL, NULL, NULL, false, -1);
    matrix_add("ed25519-enc-ctr", "ed25519", NULL, NULL, "aes256-ctr", true, 0);
    matrix_add("ed25519-enc-gcm", "ed25519", NULL, NULL, "aes256-gcm@openssh.com", true, 0);
    for (c = 0; c < 4; c++) {
        int base = (int) n_matrix;

        for (f = 0; f < 3; f++) {
            for (e = 0; e < 2; e++) {
                snprintf(name, sizeof(name), "%s%s-%s%s", c < 3 ? "ecdsa" : "rsa",
                         c < 3 ? curves[c] : "2048", fnames[f], e ? "-enc" : "");
                matrix_add(name, c < 3 ? "ecdsa" : "rsa", c < 3 ? curves[c] : "2048", formats[f],
                           NULL, e != 0, f == 0 && e == 0 ? -1 : base);
            }
        }
    }
}

static const struct mkey *
matrix_find(const char *name)
{
    size_t i;

    for (i = 0; i < n_matrix; i++) {
        if (strcmp(matrix[i].name, name) == 0) {
            return &matrix[i];
        }
    }
    return NULL;
}

/* In a test: the matrix key of that name (the test fails if there is none). */
static const struct mkey *
mkey_named(const char *name)
{
    const struct mkey *k = matrix_find(name);

    ck_assert_msg(k != NULL, "no key named %s in the matrix", name);
    return k;
}

static const char *
current_user(void)
{
    struct passwd *pw = getpwuid(geteuid());

    return pw != NULL ? pw->pw_name : "root";
}

/* Make every key, certificate and file the tests use. 0 or -1 (message on stderr). */
static int
kit_make(void)
{
    struct sf_authkit_keyspec specs[MATRIX_MAX + 16], conv[MATRIX_MAX + 1];
    char keysdir[PATH_SZ], ak_me[PATH_SZ], ak_pw[PATH_SZ], pub[PATH_SZ + 16];
    char from[PATH_SZ + 16], to[PATH_SZ + 16];
    size_t n = 0, nconv = 0, i;

    snprintf(me, sizeof(me), "%s", current_user());
    matrix_build(); /* first: the suite's loop counts need it even if the rest fails */
    if (sf_authkit_dir(kit, sizeof(kit)) != 0 ||
        sf_authkit_subdir(kit, "keys", keysdir, sizeof(keysdir)) != 0 ||
        sf_authkit_subdir(kit, "authorized", authdir, sizeof(authdir)) != 0) {
        return -1;
    }
    memset(specs, 0, sizeof(specs));
    memset(conv, 0, sizeof(conv));
    for (i = 0; i < n_matrix; i++) {
        struct sf_authkit_keyspec *s;

        if (kpath(matrix[i].path, matrix[i].name) != 0) {
            return -1;
        }
        if (matrix[i].base >= 0) {
            s = &conv[nconv++];
            s->from = matrix[matrix[i].base].path;
        } else {
            s = &specs[n++];
        }
        s->type = matrix[i].type;
        s->bits = matrix[i].bits;
        s->format = matrix[i].format;
        s->cipher = matrix[i].cipher;
        s->passphrase = matrix[i].enc ? PASS : NULL;
        snprintf(s->path, sizeof(s->path), "%s", matrix[i].path);
    }
    {
        char *const plain_ed[] = { key_unauth, key_tf, ca_key, ca_other, cert_explicit,
                                   cert_wrongprinc, cert_expired, cert_otherca };
        static const char *const names[] = { "unauth", "twofactor", "ca", "ca-other",
                                              "cert-explicit", "cert-wrongprinc", "cert-expired",
                                              "cert-otherca" };

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (kpath(plain_ed[i], names[i]) != 0) {
                return -1;
            }
            specs[n].type = "ed25519";
            snprintf(specs[n].path, sizeof(specs[n].path), "%s", plain_ed[i]);
            n++;
        }
    }
    for (i = 0; i < 3; i++) {
        if (kpath(cert_auto[i].path, cert_auto[i].name) != 0) {
            return -1;
        }
        if (strcmp(cert_auto[i].type, "rsa") == 0) {
            /* A copy of the matrix's RSA key (not in the certs server's authorized_keys). */
            conv[nconv].from = matrix_find("rsa2048-openssh")->path;
            snprintf(conv[nconv].path, sizeof(conv[nconv].path), "%s", cert_auto[i].path);
            nconv++;
            continue;
        }
        specs[n].type = cert_auto[i].type;
        specs[n].bits = cert_auto[i].bits;
        snprintf(specs[n].path, sizeof(specs[n].path), "%s", cert_auto[i].path);
        n++;
    }
    if (sf_authkit_keygen(specs, n, 4) != 0 || sf_authkit_keygen(conv, nconv, 4) != 0) {
        return -1;
    }

    /* AuthorizedKeysFile <authdir>/%u: every matrix key for us, one key for the password user. */
    snprintf(ak_me, sizeof(ak_me), "%s/%s", authdir, me);
    snprintf(ak_pw, sizeof(ak_pw), "%s/%s", authdir, SF_TEST_PW_USER);
    if (sf_authkit_write(ak_me, "", 0644) != 0 || sf_authkit_write(ak_pw, "", 0644) != 0) {
        return -1;
    }
    for (i = 0; i < n_matrix; i++) {
        snprintf(pub, sizeof(pub), "%s.pub", matrix[i].path);
        if (sf_authkit_append_file(ak_me, pub) != 0) {
            return -1;
        }
    }
    snprintf(pub, sizeof(pub), "%s.pub", key_tf);
    if (sf_authkit_append_file(ak_pw, pub) != 0) {
        return -1;
    }
    snprintf(empty_ak, sizeof(empty_ak), "%s/empty_authorized_keys", kit);
    snprintf(banner_file, sizeof(banner_file), "%s/banner", kit);
    if (sf_authkit_write(empty_ak, "", 0644) != 0 ||
        sf_authkit_write(banner_file, BANNER_TEXT, 0644) != 0) {
        return -1;
    }

    /* Certificates (ssh-keygen -s writes <key>-cert.pub beside the key). */
    for (i = 0; i < 3; i++) {
        char id[64];

        snprintf(pub, sizeof(pub), "%s.pub", cert_auto[i].path);
        snprintf(id, sizeof(id), "sf-id-%s", cert_auto[i].name);
        if (sf_authkit_sign(ca_key, pub, id, me, NULL) != 0) {
            return -1;
        }
    }
    snprintf(pub, sizeof(pub), "%s.pub", cert_explicit);
    if (sf_authkit_sign(ca_key, pub, "sf-id-explicit", me, NULL) != 0) {
        return -1;
    }
    snprintf(from, sizeof(from), "%s-cert.pub", cert_explicit);
    snprintf(cert_explicit_crt, sizeof(cert_explicit_crt), "%s/explicit.crt", kit);
    snprintf(to, sizeof(to), "%s", cert_explicit_crt);
    if (rename(from, to) != 0) {
        fprintf(stderr, "check_auth: rename %s: %s\n", from, strerror(errno));
        return -1;
    }
    snprintf(pub, sizeof(pub), "%s.pub", cert_wrongprinc);
    if (sf_authkit_sign(ca_key, pub, "sf-id-wrongprinc", "someone-else,nobody", NULL) != 0) {
        return -1;
    }
    snprintf(pub, sizeof(pub), "%s.pub", cert_expired);
    if (sf_authkit_sign(ca_key, pub, "sf-id-expired", me, "20200101:20200102") != 0) {
        return -1;
    }
    snprintf(pub, sizeof(pub), "%s.pub", cert_otherca);
    if (sf_authkit_sign(ca_other, pub, "sf-id-otherca", me, NULL) != 0) {
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* "kind (n): detail" of an error, for failure messages. */
static const char *
errtxt(const sshflow_error *err)
{
    static __thread char buf[768];

    snprintf(buf, sizeof(buf), "%s (%d): %s", sshflow_err_kind_name(err->kind), err->kind,
             err->detail);
    return buf;
}

static void
log_to_stderr(void *user, const char *msg)
{
    (void) user;
    fprintf(stderr, "sshflow: %s\n", msg);
}

#define REQUIRE_KIT() ck_assert_msg(kit_ok, "the test keys could not be made (see stderr)")

/* Tests that log in as the password user return early (and pass) without it. */
#define REQUIRE_PW_USER()                                                                        \
    do {                                                                                         \
        if (!pw_ok) {                                                                            \
            fprintf(stderr, "check_auth: SKIP %s: no user %s (needs root)\n", __func__,          \
                    SF_TEST_PW_USER);                                                            \
            return;                                                                              \
        }                                                                                        \
    } while (0)

static sshflow_cred *
cred_new(void)
{
    sshflow_cred *c = sshflow_cred_new();

    ck_assert_ptr_nonnull(c);
    return c;
}

static void
cred_key(sshflow_cred *c, const char *path, const char *pass)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_keyfile(c, path, pass, &err) == 0, "add_keyfile %s: %s", path,
                  errtxt(&err));
}

static void
cred_password(sshflow_cred *c, const char *pw)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_password(c, pw, &err) == 0, "add_password: %s", errtxt(&err));
}

static void
cred_agent(sshflow_cred *c, const char *sock)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_agent(c, sock, &err) == 0, "add_agent %s: %s",
                  sock != NULL ? sock : "(SSH_AUTH_SOCK)", errtxt(&err));
}

static void
cred_kbdint(sshflow_cred *c, struct sf_authkit_prompter *p, unsigned tries)
{
    sshflow_error err;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_kbdint(c, sf_authkit_prompt_cb, p, tries, &err) == 0,
                  "add_kbdint: %s", errtxt(&err));
}

/* ------------------------------------------------------------------------ */
/* Servers and connections                                                  */
/* ------------------------------------------------------------------------ */

static struct sf_test_sshd srv;
static bool srv_ok;

#define REQUIRE_SRV()                                                                            \
    do {                                                                                         \
        REQUIRE_KIT();                                                                           \
        ck_assert_msg(srv_ok, "the test sshd did not start (see stderr)");                       \
    } while (0)

static void
srv_start(const char *extra)
{
    srv_ok = kit_ok && sf_test_sshd_start(&srv, extra) == 0;
    if (kit_ok && !srv_ok) {
        fprintf(stderr, "check_auth: cannot start sshd (extra config:\n%s)\n",
                extra != NULL ? extra : "none");
    }
}

static void
teardown_srv(void)
{
    sf_test_sshd_stop(&srv);
    srv_ok = false;
}

/* Start sshd with the lines given (printf format) as extra_config. */
static void srv_startf(const char *f, ...) __attribute__((format(printf, 1, 2)));

static void
srv_startf(const char *f, ...)
{
    char extra[4096];
    va_list ap;

    va_start(ap, f);
    vsnprintf(extra, sizeof(extra), f, ap);
    va_end(ap);
    srv_start(extra);
}

static void
setup_keys(void)
{
    srv_startf("AuthorizedKeysFile %s/%%u\n", authdir);
}

static void
setup_kbdint(void)
{
    srv_startf("AuthorizedKeysFile %s/%%u\nUsePAM yes\nKbdInteractiveAuthentication yes\n"
               "PasswordAuthentication no\n",
               authdir);
}

static void
setup_twofactor_password(void)
{
    srv_startf("AuthorizedKeysFile %s/%%u\nAuthenticationMethods publickey,password\n", authdir);
}

static void
setup_twofactor_kbdint(void)
{
    srv_startf("AuthorizedKeysFile %s/%%u\nUsePAM yes\nKbdInteractiveAuthentication yes\n"
               "AuthenticationMethods publickey,keyboard-interactive\n",
               authdir);
}

static void
setup_banner(void)
{
    srv_startf("AuthorizedKeysFile %s/%%u\nBanner %s\n", authdir, banner_file);
}

static void
setup_certs(void)
{
    /* DEBUG2: sshd then logs the signature algorithm of the accepted request. */
    srv_startf("AuthorizedKeysFile %s\nTrustedUserCAKeys %s.pub\nLogLevel DEBUG2\n", empty_ak,
               ca_key);
}

static void
setup_default(void)
{
    srv_start(NULL);
}

/*
 * Options of one connection. cfg: name/value pairs for sshflow_config_set,
 * NULL-terminated (ConnectTimeout is always set first).
 */
struct conn {
    const char *user;        /* NULL: the current user */
    const char *known_hosts; /* NULL: srv.known_hosts */
    const char *const *cfg;
};

static sshflow_config *
config_make(const char *const *pairs)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_error err;
    size_t i;

    ck_assert_ptr_nonnull(cfg);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_config_set(cfg, "ConnectTimeout", CONNECT_TIMEOUT, &err) == 0,
                  "ConnectTimeout: %s", errtxt(&err));
    for (i = 0; pairs != NULL && pairs[i] != NULL; i += 2) {
        ck_assert_msg(pairs[i + 1] != NULL, "odd config list");
        ck_assert_msg(sshflow_config_set(cfg, pairs[i], pairs[i + 1], &err) == 0,
                      "config %s=%s: %s", pairs[i], pairs[i + 1], errtxt(&err));
    }
    return cfg;
}

/* Connect to srv and authenticate with cred, running cmd. NULL with err on failure. */
static sshflow_flow *
try_login(const sshflow_cred *cred, const struct conn *o, const char *cmd, sshflow_error *err)
{
    static const struct conn none;
    sshflow_config *cfg;
    sshflow_hostauth *ha;
    sshflow_request *req;
    sshflow_flow *t, *f = NULL;

    if (o == NULL) {
        o = &none;
    }
    memset(err, 0, sizeof(*err));
    cfg = config_make(o->cfg);
    ha = sshflow_hostauth_known_hosts(o->known_hosts != NULL ? o->known_hosts : srv.known_hosts,
                                      SSHFLOW_HOSTKEY_STRICT);
    req = sshflow_request_exec(cmd);
    ck_assert_ptr_nonnull(ha);
    ck_assert_ptr_nonnull(req);
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, err);
    if (t != NULL) {
        f = sshflow_client_of_flow(t, o->user != NULL ? o->user : me, cred, ha, req, cfg, err);
    }
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
    sshflow_config_free(cfg);
    return f;
}

/* Read stdout to EOF into buf (NUL-terminated). */
static void
read_all(sshflow_flow *f, char *buf, size_t cap)
{
    sshflow_error err;
    size_t len = 0;

    memset(&err, 0, sizeof(err));
    buf[0] = '\0';
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
}

/* Log in with cred, run "echo ok": output "ok\n" and exit status 0. what names the case. */
static void
expect_login(const sshflow_cred *cred, const struct conn *o, const char *what)
{
    sshflow_error err;
    sshflow_exit ex;
    sshflow_flow *f;
    char out[256];

    f = try_login(cred, o, "echo ok", &err);
    ck_assert_msg(f != NULL, "%s: login failed: %s", what, errtxt(&err));
    read_all(f, out, sizeof(out));
    ck_assert_msg(strcmp(out, "ok\n") == 0, "%s: output '%s', want 'ok\\n'", what, out);
    ck_assert_msg(sshflow_close_timeout(f, CLOSE_TIMEOUT_MS, &err) == 0, "%s: close: %s", what,
                  errtxt(&err));
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_msg(ex.kind == SSHFLOW_EXIT_STATUS && ex.status == 0,
                  "%s: exit kind %d status %u signal '%s', want status 0", what, ex.kind,
                  ex.status, ex.signal);
    sshflow_free(f);
}

/* Log in with cred must fail with SSHFLOW_ERR_AUTH; err gets the error. */
static void
expect_auth_failure(const sshflow_cred *cred, const struct conn *o, sshflow_error *err,
                    const char *what)
{
    sshflow_flow *f = try_login(cred, o, "echo ok", err);

    if (f != NULL) {
        sshflow_free(f);
        ck_abort_msg("%s: logged in, but authentication should have failed", what);
    }
    ck_assert_msg(err->kind == SSHFLOW_ERR_AUTH, "%s: want an AUTH error, got %s", what,
                  errtxt(err));
    if (verbose) {
        fprintf(stderr, "check_auth: %s: %s\n", what, errtxt(err));
    }
}

/* The part of an auth error detail after "tried" ("" if there is none). */
static const char *
tried_part(const char *detail)
{
    const char *p = strcasestr(detail, "tried");

    return p != NULL ? p : "";
}

/* ------------------------------------------------------------------------ */
/* 1. Key files: every type x format x plain/encrypted                      */
/* ------------------------------------------------------------------------ */

/* Log in with each key of the matrix (encrypted ones with their passphrase). */
START_TEST(test_keyfile_login)
{
    const struct mkey *k = &matrix[_i];
    char what[128];
    sshflow_cred *c;

    REQUIRE_SRV();
    ck_assert_uint_lt((size_t) _i, n_matrix);
    snprintf(what, sizeof(what), "key %s", k->name);
    c = cred_new();
    cred_key(c, k->path, k->enc ? PASS : NULL);
    expect_login(c, NULL, what);
    sshflow_cred_free(c);
}
END_TEST

/* An encrypted key without a passphrase. */
START_TEST(test_keyfile_needs_passphrase)
{
    const struct mkey *k = &matrix[enc_idx[_i]];
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile(c, k->path, NULL, &err);
    ck_assert_msg(r == SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE && err.kind == r,
                  "key %s without passphrase: returned %d, err %s; want KEY_NEEDS_PASSPHRASE",
                  k->name, r, errtxt(&err));
    sshflow_cred_free(c);
}
END_TEST

/* An encrypted key with a wrong passphrase. */
START_TEST(test_keyfile_wrong_passphrase)
{
    const struct mkey *k = &matrix[enc_idx[_i]];
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile(c, k->path, WRONG_PASS, &err);
    ck_assert_msg(r == SSHFLOW_ERR_KEY_PASSPHRASE && err.kind == r,
                  "key %s with a wrong passphrase: returned %d, err %s; want KEY_PASSPHRASE",
                  k->name, r, errtxt(&err));
    sshflow_cred_free(c);
}
END_TEST

/* A plain key given a passphrase anyway: the passphrase is not needed, the key loads. */
START_TEST(test_keyfile_plain_ignores_passphrase)
{
    static const char *const names[] = { "ed25519", "ecdsa256-pem", "rsa2048-pkcs8" };
    const struct mkey *k;
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    k = mkey_named(names[_i]);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile(c, k->path, PASS, &err);
    ck_assert_msg(r == 0, "plain key %s with a passphrase: %s", k->name, errtxt(&err));
    sshflow_cred_free(c);
}
END_TEST

START_TEST(test_keyfile_missing)
{
    char path[PATH_SZ + 16];
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    snprintf(path, sizeof(path), "%s/no-such-key", kit);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile(c, path, NULL, &err);
    ck_assert_msg(r == SSHFLOW_ERR_FILE && err.kind == r && err.sys_errno == ENOENT,
                  "missing key file: returned %d, errno %d, err %s; want FILE/ENOENT", r,
                  err.sys_errno, errtxt(&err));
    sshflow_cred_free(c);
}
END_TEST

/* Encrypted keys of each format, prompted for: a wrong answer, then the right one. */
static const char *const prompt_keys[] = { "ed25519-enc-ctr", "ed25519-enc-gcm",
                                           "ecdsa384-pem-enc", "rsa2048-pkcs8-enc" };

START_TEST(test_keyfile_prompt_login)
{
    static const char *const answers[] = { WRONG_PASS, PASS };
    const struct mkey *k;
    struct sf_authkit_prompter p;
    char what[128];
    sshflow_cred *c;
    sshflow_error err;
    unsigned i;
    int r;

    REQUIRE_SRV();
    k = mkey_named(prompt_keys[_i]);
    snprintf(what, sizeof(what), "prompted key %s", k->name);
    sf_authkit_prompter_init(&p, answers, 2);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile_prompt(c, k->path, sf_authkit_prompt_cb, &p, 0, &err);
    ck_assert_msg(r == 0, "%s: add_keyfile_prompt: %s (callback called %u times)", what,
                  errtxt(&err), p.calls);
    ck_assert_msg(p.calls == 2, "%s: callback called %u times, want 2 (wrong, then right)", what,
                  p.calls);
    for (i = 0; i < 2; i++) {
        ck_assert_msg(strcmp(p.seen[i].kind, "passphrase") == 0, "%s: call %u kind '%s'", what, i,
                      p.seen[i].kind);
        ck_assert_msg(!p.seen[i].echo, "%s: a passphrase prompt with echo on", what);
        ck_assert_msg(p.seen[i].text[0] != '\0', "%s: empty prompt text", what);
        ck_assert_msg(p.seen[i].answer_size > strlen(PASS), "%s: answer buffer of %zu bytes",
                      what, p.seen[i].answer_size);
    }
    expect_login(c, NULL, what);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* Always wrong: gives up after `tries` questions with KEY_PASSPHRASE. */
START_TEST(test_keyfile_prompt_always_wrong)
{
    static const char *const answers[] = { WRONG_PASS };
    const struct mkey *k;
    struct sf_authkit_prompter p;
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    k = mkey_named("ecdsa256-pkcs8-enc"); /* no bcrypt: quick */
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile_prompt(c, k->path, sf_authkit_prompt_cb, &p, 2, &err);
    ck_assert_msg(r == SSHFLOW_ERR_KEY_PASSPHRASE && err.kind == r,
                  "always-wrong answers: returned %d, err %s; want KEY_PASSPHRASE", r,
                  errtxt(&err));
    ck_assert_msg(p.calls == 2, "tries=2: callback called %u times", p.calls);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* Declining the question gives KEY_NEEDS_PASSPHRASE, after one question. */
START_TEST(test_keyfile_prompt_decline)
{
    static const char *const answers[] = { NULL };
    const struct mkey *k;
    struct sf_authkit_prompter p;
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    k = mkey_named("rsa2048-pem-enc");
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile_prompt(c, k->path, sf_authkit_prompt_cb, &p, 0, &err);
    ck_assert_msg(r == SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE && err.kind == r,
                  "declined prompt: returned %d, err %s; want KEY_NEEDS_PASSPHRASE", r,
                  errtxt(&err));
    ck_assert_msg(p.calls == 1, "declined prompt: callback called %u times, want 1", p.calls);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* A plain key: nobody is asked. */
START_TEST(test_keyfile_prompt_plain_not_asked)
{
    static const char *const answers[] = { PASS };
    const struct mkey *k;
    struct sf_authkit_prompter p;
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    k = mkey_named("ecdsa521-openssh");
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_keyfile_prompt(c, k->path, sf_authkit_prompt_cb, &p, 0, &err);
    ck_assert_msg(r == 0, "plain key via add_keyfile_prompt: %s", errtxt(&err));
    ck_assert_msg(p.calls == 0, "plain key: callback called %u times, want 0", p.calls);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 2. Several identities, tried in order                                    */
/* ------------------------------------------------------------------------ */

START_TEST(test_identities_in_order)
{
    const struct mkey *good;
    char pub[PATH_SZ + 8], fp_bad[128], fp_good[128], needle[512];
    long at_bad, at_good;
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    good = mkey_named("ecdsa521-pkcs8-enc");
    snprintf(pub, sizeof(pub), "%s.pub", key_unauth);
    ck_assert_int_eq(sf_authkit_fingerprint(pub, fp_bad, sizeof(fp_bad)), 0);
    snprintf(pub, sizeof(pub), "%s.pub", good->path);
    ck_assert_int_eq(sf_authkit_fingerprint(pub, fp_good, sizeof(fp_good)), 0);
    c = cred_new();
    cred_key(c, key_unauth, NULL);
    cred_key(c, good->path, PASS);
    from = sf_authkit_file_size(srv.log);
    expect_login(c, NULL, "unauthorized key, then an authorized one");
    sshflow_cred_free(c);

    /* sshd saw both, the refused one first. */
    snprintf(needle, sizeof(needle), "Accepted publickey for %s from 127.0.0.1", me);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    snprintf(needle, sizeof(needle), "ECDSA %s", fp_good);
    at_good = sf_authkit_log_find(srv.log, from, needle);
    ck_assert_msg(at_good >= 0, "sshd log lacks the accepted key '%s'", needle);
    snprintf(needle, sizeof(needle), "Failed publickey for %s", me);
    ck_assert_msg(sf_authkit_log_has(srv.log, from, needle), "sshd log lacks '%s'", needle);
    snprintf(needle, sizeof(needle), "ED25519 %s", fp_bad);
    at_bad = sf_authkit_log_find(srv.log, from, needle);
    ck_assert_msg(at_bad >= 0, "sshd log does not show the unauthorized key offered ('%s')",
                  needle);
    ck_assert_msg(at_bad < at_good, "the unauthorized key was not tried first");
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Passwords: prompted; error texts; configuration switches                 */
/* ------------------------------------------------------------------------ */

START_TEST(test_password_prompt_login)
{
    static const char *const answers[] = { "not-the-password", SF_TEST_PW_PASSWORD };
    struct sf_authkit_prompter p;
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    char needle[256];
    sshflow_cred *c;
    sshflow_error err;
    unsigned i;
    off_t from;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    sf_authkit_prompter_init(&p, answers, 2);
    c = cred_new();
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_password_prompt(c, sf_authkit_prompt_cb, &p, 0, &err) == 0,
                  "add_password_prompt: %s", errtxt(&err));
    from = sf_authkit_file_size(srv.log);
    expect_login(c, &o, "password prompt, wrong then right");
    ck_assert_msg(p.calls == 2, "password callback called %u times, want 2", p.calls);
    for (i = 0; i < 2; i++) {
        ck_assert_msg(strcmp(p.seen[i].kind, "password") == 0, "call %u: kind '%s'", i,
                      p.seen[i].kind);
        ck_assert_msg(!p.seen[i].echo, "call %u: password prompt with echo on", i);
        ck_assert_msg(strcasestr(p.seen[i].text, "password") != NULL,
                      "call %u: prompt text '%s' does not ask for a password", i, p.seen[i].text);
    }
    snprintf(needle, sizeof(needle), "Failed password for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    snprintf(needle, sizeof(needle), "Accepted password for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* 7. Only a wrong password: the error names what was tried and what the server accepts. */
START_TEST(test_error_wrong_password)
{
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    char sentence[1024];
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    c = cred_new();
    cred_password(c, "not-the-password");
    expect_auth_failure(c, &o, &err, "wrong password");
    /* The server accepts publickey,password here. */
    ck_assert_msg(strstr(err.detail, "publickey") != NULL,
                  "the error does not name the methods the server accepts: %s", err.detail);
    ck_assert_msg(strstr(tried_part(err.detail), "password") != NULL,
                  "the error does not say the password was tried: %s", err.detail);
    sshflow_strerror(&err, sentence, sizeof(sentence));
    ck_assert_msg(strstr(sentence, "publickey") != NULL && strstr(sentence, "password") != NULL,
                  "strerror: %s", sentence);
    sshflow_cred_free(c);
}
END_TEST

/* A refused key and a wrong password: both are named as tried. */
START_TEST(test_error_key_and_password)
{
    sshflow_cred *c;
    sshflow_error err;
    const char *tried;

    REQUIRE_SRV();
    c = cred_new();
    cred_key(c, key_unauth, NULL);
    cred_password(c, "not-the-password");
    expect_auth_failure(c, NULL, &err, "unauthorized key and wrong password");
    tried = tried_part(err.detail);
    ck_assert_msg(strstr(tried, "password") != NULL,
                  "the error does not say the password was tried: %s", err.detail);
    ck_assert_msg(strstr(tried, "publickey") != NULL || strstr(tried, "unauth") != NULL ||
                      strcasestr(tried, "ed25519") != NULL || strstr(tried, "SHA256:") != NULL,
                  "the error does not say the key was tried: %s", err.detail);
    sshflow_cred_free(c);
}
END_TEST

/* PubkeyAuthentication no: an authorized key is not used. */
START_TEST(test_config_pubkey_no)
{
    static const char *const cfg[] = { "PubkeyAuthentication", "no", NULL };
    struct conn o = { NULL, NULL, cfg };
    char needle[256];
    sshflow_cred *c;
    sshflow_error err;
    off_t from;

    REQUIRE_SRV();
    c = cred_new();
    cred_key(c, mkey_named("ed25519")->path, NULL);
    cred_password(c, "not-the-password");
    from = sf_authkit_file_size(srv.log);
    expect_auth_failure(c, &o, &err, "PubkeyAuthentication no");
    snprintf(needle, sizeof(needle), "Failed password for %s", me);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    ck_assert_msg(!sf_authkit_log_has(srv.log, from, "publickey for"),
                  "a key was offered although PubkeyAuthentication is no");
    sshflow_cred_free(c);
}
END_TEST

/* PasswordAuthentication no: the right password is not sent. */
START_TEST(test_config_password_no)
{
    static const char *const cfg[] = { "PasswordAuthentication", "no", NULL };
    struct conn o = { SF_TEST_PW_USER, NULL, cfg };
    char needle[256];
    sshflow_cred *c;
    sshflow_error err;
    off_t from;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    c = cred_new();
    cred_password(c, SF_TEST_PW_PASSWORD);
    from = sf_authkit_file_size(srv.log);
    expect_auth_failure(c, &o, &err, "PasswordAuthentication no");
    snprintf(needle, sizeof(needle), "password for %s", SF_TEST_PW_USER);
    ck_assert_msg(!sf_authkit_log_has(srv.log, from, needle),
                  "a password was sent although PasswordAuthentication is no");
    sshflow_cred_free(c);
}
END_TEST

/*
 * PreferredAuthentications reorders methods: a key added before a (wrong)
 * password. _i == 0: default order (as added): the key logs in, no password
 * is sent. _i == 1: "password,publickey": the password is tried first.
 */
START_TEST(test_config_preferred_order)
{
    static const char *const cfg[] = { "PreferredAuthentications", "password,publickey", NULL };
    struct conn o = { NULL, NULL, _i == 1 ? cfg : NULL };
    char fail[256], acc[256];
    long at_fail, at_acc;
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    c = cred_new();
    cred_key(c, mkey_named("ed25519")->path, NULL);
    cred_password(c, "not-the-password");
    from = sf_authkit_file_size(srv.log);
    expect_login(c, &o, _i == 1 ? "PreferredAuthentications password,publickey" : "default order");
    snprintf(acc, sizeof(acc), "Accepted publickey for %s", me);
    snprintf(fail, sizeof(fail), "Failed password for %s", me);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, acc, LOG_WAIT_MS), "sshd log lacks '%s'", acc);
    at_fail = sf_authkit_log_find(srv.log, from, fail);
    at_acc = sf_authkit_log_find(srv.log, from, acc);
    if (_i == 0) {
        ck_assert_msg(at_fail < 0, "default order: the password was sent before the key");
    } else {
        ck_assert_msg(at_fail >= 0 && at_fail < at_acc,
                      "PreferredAuthentications password,publickey: the password was not tried "
                      "first (log offsets %ld, %ld)",
                      at_fail, at_acc);
    }
    sshflow_cred_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 3. ssh-agent                                                             */
/* ------------------------------------------------------------------------ */

static const char *const agent_keys[3] = { "ed25519", "ecdsa256-openssh", "rsa2048-openssh" };
static const char *const agent_logtype[3] = { "ED25519", "ECDSA", "RSA" };

static void
agent_up(struct sf_authkit_agent *a)
{
    ck_assert_msg(sf_authkit_agent_start(a, kit) == 0, "cannot start ssh-agent (see stderr)");
}

static void
agent_add(struct sf_authkit_agent *a, const char *key)
{
    ck_assert_msg(sf_authkit_agent_add(a, key) == 0, "ssh-add %s failed (see stderr)", key);
}

/* One key of each type in the agent, by its socket path. */
START_TEST(test_agent_login)
{
    const struct mkey *k = mkey_named(agent_keys[_i]);
    struct sf_authkit_agent a;
    char pub[PATH_SZ + 8], fp[128], needle[512], what[128];
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    snprintf(pub, sizeof(pub), "%s.pub", k->path);
    ck_assert_int_eq(sf_authkit_fingerprint(pub, fp, sizeof(fp)), 0);
    agent_up(&a);
    agent_add(&a, k->path);
    ck_assert_int_eq(sf_authkit_agent_count(&a), 1);
    c = cred_new();
    cred_agent(c, a.sock);
    from = sf_authkit_file_size(srv.log);
    snprintf(what, sizeof(what), "agent holding %s", k->name);
    expect_login(c, NULL, what);
    snprintf(needle, sizeof(needle), "Accepted publickey for %s", me);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    snprintf(needle, sizeof(needle), "%s %s", agent_logtype[_i], fp);
    ck_assert_msg(sf_authkit_log_has(srv.log, from, needle), "sshd log lacks '%s'", needle);
    sshflow_cred_free(c);
    sf_authkit_agent_stop(&a);
}
END_TEST

/* An agent holding a refused key and then an authorized one: both are tried. */
START_TEST(test_agent_several_keys)
{
    struct sf_authkit_agent a;
    sshflow_cred *c;

    REQUIRE_SRV();
    agent_up(&a);
    agent_add(&a, key_unauth);
    agent_add(&a, mkey_named("rsa2048-pem")->path);
    ck_assert_int_eq(sf_authkit_agent_count(&a), 2);
    c = cred_new();
    cred_agent(c, a.sock);
    expect_login(c, NULL, "agent with a refused key, then an authorized one");
    sshflow_cred_free(c);
    sf_authkit_agent_stop(&a);
}
END_TEST

/* path NULL: $SSH_AUTH_SOCK, read when connecting (it is set after the cred was added). */
START_TEST(test_agent_env_sock)
{
    struct sf_authkit_agent a;
    sshflow_cred *c;

    REQUIRE_SRV();
    agent_up(&a);
    agent_add(&a, mkey_named("ecdsa384-openssh")->path);
    unsetenv("SSH_AUTH_SOCK");
    c = cred_new();
    cred_agent(c, NULL);
    ck_assert_int_eq(setenv("SSH_AUTH_SOCK", a.sock, 1), 0);
    expect_login(c, NULL, "agent from $SSH_AUTH_SOCK");
    unsetenv("SSH_AUTH_SOCK");
    sshflow_cred_free(c);
    sf_authkit_agent_stop(&a);
}
END_TEST

/* An agent with no key, then a password: the password logs in. */
START_TEST(test_agent_empty_then_password)
{
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    struct sf_authkit_agent a;
    char needle[256];
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    agent_up(&a);
    ck_assert_int_eq(sf_authkit_agent_count(&a), 0);
    c = cred_new();
    cred_agent(c, a.sock);
    cred_password(c, SF_TEST_PW_PASSWORD);
    from = sf_authkit_file_size(srv.log);
    expect_login(c, &o, "empty agent, then a password");
    snprintf(needle, sizeof(needle), "Accepted password for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    sshflow_cred_free(c);
    sf_authkit_agent_stop(&a);
}
END_TEST

/*
 * The agent dies before we connect (_i 0: SIGTERM, socket removed; _i 1:
 * SIGKILL, a stale socket file stays): the next credential is used.
 */
START_TEST(test_agent_dead_then_password)
{
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    struct sf_authkit_agent a;
    sshflow_cred *c;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    agent_up(&a);
    agent_add(&a, mkey_named("ed25519")->path);
    c = cred_new();
    cred_agent(c, a.sock);
    cred_password(c, SF_TEST_PW_PASSWORD);
    sf_authkit_agent_kill(&a, _i == 0 ? SIGTERM : SIGKILL);
    expect_login(c, &o, _i == 0 ? "agent ended (TERM), then a password"
                                : "agent killed (KILL), then a password");
    sshflow_cred_free(c);
    sf_authkit_agent_stop(&a);
}
END_TEST

/* The agent is gone and nothing else is left: AUTH, and the error names the agent. */
START_TEST(test_agent_dead_alone)
{
    struct sf_authkit_agent a;
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    agent_up(&a);
    agent_add(&a, mkey_named("ed25519")->path);
    c = cred_new();
    cred_agent(c, a.sock);
    sf_authkit_agent_kill(&a, SIGKILL);
    expect_auth_failure(c, NULL, &err, "dead agent only");
    ck_assert_msg(strcasestr(err.detail, "agent") != NULL, "the error does not name the agent: %s",
                  err.detail);
    sshflow_cred_free(c);
    sf_authkit_agent_stop(&a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 4. keyboard-interactive (PAM)                                            */
/* ------------------------------------------------------------------------ */

START_TEST(test_kbdint_login)
{
    static const char *const answers[] = { SF_TEST_PW_PASSWORD };
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    struct sf_authkit_prompter p;
    char needle[256];
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    cred_kbdint(c, &p, 0);
    from = sf_authkit_file_size(srv.log);
    expect_login(c, &o, "keyboard-interactive");
    ck_assert_msg(p.calls == 1, "kbdint callback called %u times, want 1", p.calls);
    ck_assert_msg(strcmp(p.seen[0].kind, "keyboard-interactive") == 0, "kind '%s'", p.seen[0].kind);
    ck_assert_msg(strcasestr(p.seen[0].text, "password") != NULL,
                  "prompt text '%s': PAM asks for the password", p.seen[0].text);
    ck_assert_msg(!p.seen[0].echo, "the password prompt has echo on");
    ck_assert_msg(p.seen[0].index == 0 && p.seen[0].count == 1, "prompt %u of %u, want 0 of 1",
                  p.seen[0].index, p.seen[0].count);
    snprintf(needle, sizeof(needle), "Accepted keyboard-interactive/pam for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

START_TEST(test_kbdint_wrong)
{
    static const char *const answers[] = { "not-the-password" };
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    struct sf_authkit_prompter p;
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    cred_kbdint(c, &p, 1); /* each PAM failure costs ~2 s */
    expect_auth_failure(c, &o, &err, "keyboard-interactive, wrong answer");
    ck_assert_msg(strstr(err.detail, "keyboard-interactive") != NULL,
                  "the error does not name keyboard-interactive: %s", err.detail);
    ck_assert_msg(p.calls >= 1 && p.calls <= 2, "callback called %u times with tries=1", p.calls);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* The callback declines: the method is given up, AUTH (not a hang, not a timeout). */
START_TEST(test_kbdint_decline)
{
    static const char *const answers[] = { NULL };
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    struct sf_authkit_prompter p;
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    cred_kbdint(c, &p, 0);
    expect_auth_failure(c, &o, &err, "keyboard-interactive, callback declines");
    ck_assert_msg(p.calls == 1, "declining callback called %u times, want 1", p.calls);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* KbdInteractiveAuthentication no: the method is not used; nobody is asked. */
START_TEST(test_kbdint_config_no)
{
    static const char *const answers[] = { SF_TEST_PW_PASSWORD };
    static const char *const cfg[] = { "KbdInteractiveAuthentication", "no", NULL };
    struct conn o = { SF_TEST_PW_USER, NULL, cfg };
    struct sf_authkit_prompter p;
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    cred_kbdint(c, &p, 0);
    expect_auth_failure(c, &o, &err, "KbdInteractiveAuthentication no");
    ck_assert_msg(p.calls == 0, "callback called %u times although the method is off", p.calls);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 5. Two factors (AuthenticationMethods)                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_twofactor_key_password)
{
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    char needle[256];
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    c = cred_new();
    cred_key(c, key_tf, NULL);
    cred_password(c, SF_TEST_PW_PASSWORD);
    from = sf_authkit_file_size(srv.log);
    expect_login(c, &o, "publickey then password");
    snprintf(needle, sizeof(needle), "Partial publickey for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    snprintf(needle, sizeof(needle), "Accepted password for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    sshflow_cred_free(c);
}
END_TEST

/*
 * The password added before the key: the server wants the key first, so the
 * password must still be there after the key's partial success. _i 0: as
 * added; _i 1: PreferredAuthentications publickey,password.
 */
START_TEST(test_twofactor_password_first)
{
    static const char *const cfg[] = { "PreferredAuthentications", "publickey,password", NULL };
    struct conn o = { SF_TEST_PW_USER, NULL, _i == 1 ? cfg : NULL };
    sshflow_cred *c;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    c = cred_new();
    cred_password(c, SF_TEST_PW_PASSWORD);
    cred_key(c, key_tf, NULL);
    expect_login(c, &o,
                 _i == 1 ? "password added first, PreferredAuthentications publickey,password"
                         : "password added before the key");
    sshflow_cred_free(c);
}
END_TEST

/* Only the key: partial success, then nothing left: AUTH saying the server wants a password. */
START_TEST(test_twofactor_key_only)
{
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    c = cred_new();
    cred_key(c, key_tf, NULL);
    expect_auth_failure(c, &o, &err, "only the first factor");
    ck_assert_msg(strcasestr(err.detail, "partial") != NULL,
                  "the error does not say the key was a partial success: %s", err.detail);
    ck_assert_msg(strstr(err.detail, "password") != NULL,
                  "the error does not say the server still wants a password: %s", err.detail);
    sshflow_cred_free(c);
}
END_TEST

START_TEST(test_twofactor_key_kbdint)
{
    static const char *const answers[] = { SF_TEST_PW_PASSWORD };
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    struct sf_authkit_prompter p;
    char needle[256];
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    sf_authkit_prompter_init(&p, answers, 1);
    c = cred_new();
    cred_key(c, key_tf, NULL);
    cred_kbdint(c, &p, 0);
    from = sf_authkit_file_size(srv.log);
    expect_login(c, &o, "publickey then keyboard-interactive");
    ck_assert_msg(p.calls == 1, "kbdint callback called %u times, want 1", p.calls);
    snprintf(needle, sizeof(needle), "Partial publickey for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    snprintf(needle, sizeof(needle), "Accepted keyboard-interactive/pam for %s", SF_TEST_PW_USER);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    sshflow_cred_free(c);
    sf_authkit_prompter_destroy(&p);
}
END_TEST

START_TEST(test_twofactor_key_only_kbdint)
{
    struct conn o = { SF_TEST_PW_USER, NULL, NULL };
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    REQUIRE_PW_USER();
    c = cred_new();
    cred_key(c, key_tf, NULL);
    expect_auth_failure(c, &o, &err, "only the first factor (kbdint second)");
    ck_assert_msg(strcasestr(err.detail, "partial") != NULL,
                  "the error does not say the key was a partial success: %s", err.detail);
    ck_assert_msg(strstr(err.detail, "keyboard-interactive") != NULL,
                  "the error does not say the server still wants keyboard-interactive: %s",
                  err.detail);
    sshflow_cred_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 6. Banner                                                                */
/* ------------------------------------------------------------------------ */

START_TEST(test_banner_callback)
{
    struct sf_authkit_banners b;
    sshflow_cred *c;

    REQUIRE_SRV();
    sf_authkit_banners_init(&b);
    c = cred_new();
    sshflow_cred_set_banner(c, sf_authkit_banner_cb, &b);
    cred_key(c, mkey_named("ed25519")->path, NULL);
    expect_login(c, NULL, "with a banner");
    ck_assert_msg(b.calls >= 1, "the banner callback was not called");
    ck_assert_msg(strstr(b.text, BANNER_WORDS) != NULL, "banner text '%s' lacks '%s'", b.text,
                  BANNER_WORDS);
    /* The printable parts of the escaped line survive; the control characters do not. */
    ck_assert_msg(strstr(b.text, "red") != NULL && strstr(b.text, "tail") != NULL,
                  "banner text '%s' lost its printable parts", b.text);
    ck_assert_msg(strchr(b.text, '\033') == NULL && strchr(b.text, '\007') == NULL,
                  "banner text still holds terminal control characters: '%s'", b.text);
    sshflow_cred_free(c);
    sf_authkit_banners_destroy(&b);
}
END_TEST

/* No callback: the banner is only logged and the login goes on. */
START_TEST(test_banner_no_callback)
{
    sshflow_cred *c;

    REQUIRE_SRV();
    c = cred_new();
    sshflow_cred_set_banner(c, NULL, NULL);
    cred_key(c, mkey_named("ecdsa256-openssh")->path, NULL);
    expect_login(c, NULL, "banner without a callback");
    sshflow_cred_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 8. User certificates                                                     */
/* ------------------------------------------------------------------------ */

/* "<key>-cert.pub" beside the key is used automatically (ed25519, ecdsa, rsa). */
START_TEST(test_cert_auto)
{
    const struct ckey *k = &cert_auto[_i];
    char needle[512], what[128];
    sshflow_cred *c;
    off_t from;

    REQUIRE_SRV();
    snprintf(what, sizeof(what), "certificate %s found beside the key", k->name);
    c = cred_new();
    cred_key(c, k->path, NULL);
    from = sf_authkit_file_size(srv.log);
    expect_login(c, NULL, what);
    snprintf(needle, sizeof(needle), "Accepted publickey for %s", me);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    snprintf(needle, sizeof(needle), "%s SHA256:", k->logtype);
    ck_assert_msg(sf_authkit_log_has(srv.log, from, needle), "%s: sshd log lacks '%s'", what,
                  needle);
    snprintf(needle, sizeof(needle), "ID sf-id-%s", k->name);
    ck_assert_msg(sf_authkit_log_has(srv.log, from, needle), "%s: sshd log lacks '%s'", what,
                  needle);
    snprintf(needle, sizeof(needle), "authenticated 1 pkalg %s", k->pkalg);
    ck_assert_msg(sf_authkit_log_has(srv.log, from, needle), "%s: sshd log lacks '%s'", what,
                  needle);
    sshflow_cred_free(c);
}
END_TEST

/* A certificate under another name, attached with sshflow_cred_add_certfile. */
START_TEST(test_cert_explicit)
{
    sshflow_cred *c;
    sshflow_error err;
    char needle[256];
    off_t from;

    REQUIRE_SRV();
    c = cred_new();
    cred_key(c, cert_explicit, NULL);
    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_cred_add_certfile(c, cert_explicit_crt, &err) == 0, "add_certfile: %s",
                  errtxt(&err));
    from = sf_authkit_file_size(srv.log);
    expect_login(c, NULL, "explicit certificate");
    snprintf(needle, sizeof(needle), "ID sf-id-explicit");
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, needle, LOG_WAIT_MS), "sshd log lacks '%s'",
                  needle);
    sshflow_cred_free(c);
}
END_TEST

/* The same key without its certificate is refused (nothing in authorized_keys). */
START_TEST(test_cert_explicit_missing)
{
    sshflow_cred *c;
    sshflow_error err;

    REQUIRE_SRV();
    c = cred_new();
    cred_key(c, cert_explicit, NULL);
    expect_auth_failure(c, NULL, &err, "key whose certificate was not added");
    sshflow_cred_free(c);
}
END_TEST

/*
 * Certificates sshd must refuse: another principal, expired, signed by an
 * untrusted CA. The log shows sshd saw the certificate and why it refused it.
 */
START_TEST(test_cert_refused)
{
    static const char *const why[3] = { "not a listed principal", "expired", NULL };
    const char *keys[3] = { cert_wrongprinc, cert_expired, cert_otherca };
    static const char *const what[3] = { "certificate for another principal",
                                         "expired certificate", "certificate of an untrusted CA" };
    sshflow_cred *c;
    sshflow_error err;
    off_t from;

    REQUIRE_SRV();
    c = cred_new();
    cred_key(c, keys[_i], NULL);
    from = sf_authkit_file_size(srv.log);
    expect_auth_failure(c, NULL, &err, what[_i]);
    ck_assert_msg(sf_authkit_log_wait(srv.log, from, "-CERT", LOG_WAIT_MS),
                  "%s: sshd never saw a certificate", what[_i]);
    if (why[_i] != NULL) {
        ck_assert_msg(sf_authkit_log_has(srv.log, from, why[_i]), "%s: sshd log lacks '%s'",
                      what[_i], why[_i]);
    }
    sshflow_cred_free(c);
}
END_TEST

/* add_certfile: not a certificate, or no added key matches it -> KEY_FORMAT. */
START_TEST(test_certfile_errors)
{
    char pub[PATH_SZ + 16], crt[PATH_SZ + 16];
    sshflow_cred *c;
    sshflow_error err;
    int r;

    REQUIRE_KIT();
    c = cred_new();
    cred_key(c, mkey_named("ed25519")->path, NULL);
    snprintf(pub, sizeof(pub), "%s.pub", mkey_named("ed25519")->path);
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_certfile(c, pub, &err);
    ck_assert_msg(r == SSHFLOW_ERR_KEY_FORMAT && err.kind == r,
                  "a plain public key as certificate: returned %d, err %s; want KEY_FORMAT", r,
                  errtxt(&err));
    snprintf(crt, sizeof(crt), "%s-cert.pub", cert_auto[0].path);
    memset(&err, 0, sizeof(err));
    r = sshflow_cred_add_certfile(c, crt, &err);
    ck_assert_msg(r == SSHFLOW_ERR_KEY_FORMAT && err.kind == r,
                  "a certificate of a key not added: returned %d, err %s; want KEY_FORMAT", r,
                  errtxt(&err));
    sshflow_cred_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* 9. Hashed known_hosts and @revoked, made by ssh-keygen                   */
/* ------------------------------------------------------------------------ */

/* A per-test copy of srv.known_hosts in the kit dir; returns its path in out. */
static void
known_hosts_copy(const char *name, char *out, size_t outsz)
{
    char text[16384];

    snprintf(out, outsz, "%s/%s-%ld", kit, name, (long) getpid());
    ck_assert_msg(sf_authkit_read(srv.known_hosts, text, sizeof(text)) > 0, "cannot read %s",
                  srv.known_hosts);
    ck_assert_int_eq(sf_authkit_write(out, text, 0644), 0);
}

/* The line of text that holds needle, into out ("" if none). */
static void
line_with(const char *text, const char *needle, char *out, size_t outsz)
{
    const char *p = strstr(text, needle);
    const char *start, *end;

    out[0] = '\0';
    if (p == NULL) {
        return;
    }
    start = p;
    while (start > text && start[-1] != '\n') {
        start--;
    }
    end = strchr(p, '\n');
    if (end == NULL) {
        end = p + strlen(p);
    }
    snprintf(out, outsz, "%.*s", (int) (end - start), start);
}

static void
known_hosts_hashed(char *path, size_t pathsz)
{
    char text[16384];

    known_hosts_copy("kh-hashed", path, pathsz);
    ck_assert_msg(sf_authkit_hash_known_hosts(path) == 0, "ssh-keygen -H failed (see stderr)");
    ck_assert_msg(sf_authkit_read(path, text, sizeof(text)) > 0, "cannot read %s", path);
    ck_assert_msg(strstr(text, "|1|") != NULL && strstr(text, "127.0.0.1") == NULL,
                  "ssh-keygen -H did not hash the names: %s", text);
}

START_TEST(test_known_hosts_hashed)
{
    static const char *const cfg_ed[] = { "HostKeyAlgorithms", "ssh-ed25519", NULL };
    char kh[PATH_SZ + 32];
    struct conn o = { NULL, NULL, NULL };
    sshflow_cred *c;

    REQUIRE_SRV();
    known_hosts_hashed(kh, sizeof(kh));
    o.known_hosts = kh;
    o.cfg = _i == 1 ? cfg_ed : NULL;
    c = cred_new();
    cred_key(c, srv.userkey_ed25519, NULL);
    expect_login(c, &o, _i == 1 ? "hashed known_hosts, ssh-ed25519" : "hashed known_hosts");
    sshflow_cred_free(c);
}
END_TEST

/*
 * The server's ed25519 key marked @revoked (as well as listed as known),
 * HostKeyAlgorithms ssh-ed25519: HOSTKEY. _i 0: plain names; _i 1: a file
 * hashed by ssh-keygen -H plus the @revoked line with the hashed name.
 */
START_TEST(test_known_hosts_revoked)
{
    static const char *const cfg_ed[] = { "HostKeyAlgorithms", "ssh-ed25519", NULL };
    char kh[PATH_SZ + 32], text[16384], line[8192], revoked[8300];
    struct conn o = { NULL, NULL, cfg_ed };
    sshflow_cred *c;
    sshflow_error err;
    off_t from;

    REQUIRE_SRV();
    if (_i == 0) {
        known_hosts_copy("kh-revoked", kh, sizeof(kh));
    } else {
        known_hosts_hashed(kh, sizeof(kh));
    }
    ck_assert_msg(sf_authkit_read(kh, text, sizeof(text)) > 0, "cannot read %s", kh);
    line_with(text, " ssh-ed25519 ", line, sizeof(line));
    ck_assert_msg(line[0] != '\0', "no ssh-ed25519 line in %s", text);
    snprintf(revoked, sizeof(revoked), "@revoked %s\n", line);
    ck_assert_int_eq(sf_authkit_append(kh, revoked), 0);
    o.known_hosts = kh;
    c = cred_new();
    cred_key(c, srv.userkey_ed25519, NULL);
    from = sf_authkit_file_size(srv.log);
    {
        sshflow_flow *f = try_login(c, &o, "echo ok", &err);

        if (f != NULL) {
            sshflow_free(f);
            ck_abort_msg("connected although the host key is @revoked (%s)",
                         _i == 0 ? "plain" : "hashed");
        }
    }
    ck_assert_msg(err.kind == SSHFLOW_ERR_HOSTKEY, "revoked host key: want HOSTKEY, got %s",
                  errtxt(&err));
    ck_assert_msg(strcasestr(err.detail, "revoked") != NULL,
                  "the error does not say the key is revoked: %s", err.detail);
    ck_assert_msg(!sf_authkit_log_has(srv.log, from, "publickey for"),
                  "a key was offered to a server whose host key is revoked");
    sshflow_cred_free(c);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Suite                                                                    */
/* ------------------------------------------------------------------------ */

static TCase *
tc_server(Suite *s, const char *name, void (*setup)(void))
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, setup, teardown_srv);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *
auth_suite(void)
{
    Suite *s = suite_create("auth");
    TCase *tc;

    /* No server: key files and certificate files. */
    tc = tcase_create("keyfile");
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    tcase_add_loop_test(tc, test_keyfile_needs_passphrase, 0, (int) n_enc);
    tcase_add_loop_test(tc, test_keyfile_wrong_passphrase, 0, (int) n_enc);
    tcase_add_loop_test(tc, test_keyfile_plain_ignores_passphrase, 0, 3);
    tcase_add_test(tc, test_keyfile_missing);
    tcase_add_test(tc, test_keyfile_prompt_always_wrong);
    tcase_add_test(tc, test_keyfile_prompt_decline);
    tcase_add_test(tc, test_keyfile_prompt_plain_not_asked);
    tcase_add_test(tc, test_certfile_errors);
    suite_add_tcase(s, tc);

    tc = tc_server(s, "keys", setup_keys);
    tcase_add_loop_test(tc, test_keyfile_login, 0, (int) n_matrix);
    tcase_add_loop_test(tc, test_keyfile_prompt_login, 0,
                        (int) (sizeof(prompt_keys) / sizeof(prompt_keys[0])));
    tcase_add_test(tc, test_identities_in_order);
    tcase_add_test(tc, test_password_prompt_login);
    tcase_add_test(tc, test_error_wrong_password);
    tcase_add_test(tc, test_error_key_and_password);
    tcase_add_test(tc, test_config_pubkey_no);
    tcase_add_test(tc, test_config_password_no);
    tcase_add_loop_test(tc, test_config_preferred_order, 0, 2);

    tc = tc_server(s, "agent", setup_keys);
    tcase_add_loop_test(tc, test_agent_login, 0, 3);
    tcase_add_test(tc, test_agent_several_keys);
    tcase_add_test(tc, test_agent_env_sock);
    tcase_add_test(tc, test_agent_empty_then_password);
    tcase_add_loop_test(tc, test_agent_dead_then_password, 0, 2);
    tcase_add_test(tc, test_agent_dead_alone);

    tc = tc_server(s, "kbdint", setup_kbdint);
    tcase_add_test(tc, test_kbdint_login);
    tcase_add_test(tc, test_kbdint_wrong);
    tcase_add_test(tc, test_kbdint_decline);
    tcase_add_test(tc, test_kbdint_config_no);

    tc = tc_server(s, "twofactor_password", setup_twofactor_password);
    tcase_add_test(tc, test_twofactor_key_password);
    tcase_add_loop_test(tc, test_twofactor_password_first, 0, 2);
    tcase_add_test(tc, test_twofactor_key_only);

    tc = tc_server(s, "twofactor_kbdint", setup_twofactor_kbdint);
    tcase_add_test(tc, test_twofactor_key_kbdint);
    tcase_add_test(tc, test_twofactor_key_only_kbdint);

    tc = tc_server(s, "banner", setup_banner);
    tcase_add_test(tc, test_banner_callback);
    tcase_add_test(tc, test_banner_no_callback);

    tc = tc_server(s, "certs", setup_certs);
    tcase_add_loop_test(tc, test_cert_auto, 0, 3);
    tcase_add_test(tc, test_cert_explicit);
    tcase_add_test(tc, test_cert_explicit_missing);
    tcase_add_loop_test(tc, test_cert_refused, 0, 3);

    tc = tc_server(s, "known_hosts", setup_default);
    tcase_add_loop_test(tc, test_known_hosts_hashed, 0, 2);
    tcase_add_loop_test(tc, test_known_hosts_revoked, 0, 2);

    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    if (!sf_test_sshd_available() || access(SF_AUTHKIT_SSH_AGENT_PATH, X_OK) != 0 ||
        access(SF_AUTHKIT_SSH_ADD_PATH, X_OK) != 0) {
        fprintf(stderr, "check_auth: SKIP: sshd, ssh-keygen, ssh-agent or ssh-add not usable "
                        "here (or SSHFLOW_SKIP_INTEROP set)\n");
        return 0;
    }
    /* Never the user's own agent: tests that want $SSH_AUTH_SOCK set it themselves. */
    unsetenv("SSH_AUTH_SOCK");
    verbose = getenv("SF_AUTH_VERBOSE") != NULL;
    if (verbose) {
        sshflow_set_log(log_to_stderr, NULL);
    }
    /* Before the runner forks: every test process inherits the keys and the user. */
    if (sf_test_sshd_init() != 0) {
        fprintf(stderr, "check_auth: cannot generate the harness keys\n");
        return 1;
    }
    kit_ok = kit_make() == 0;
    if (!kit_ok) {
        fprintf(stderr, "check_auth: cannot make the test keys (tests will fail)\n");
    }
    pw_ok = sf_test_password_user() == 0;
    sr = srunner_create(auth_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
