/*
 * check/check_cert.c -- tests for OpenSSH certificates: src/cert.c (parse,
 * CA signature, checks), the certificate side of key.c, host certificates in
 * known_hosts (@cert-authority, @revoked; knownhosts.c and hostauth.c), and
 * interop against a real sshd serving a HostCertificate (plus the legacy
 * SHA-1 "ssh-rsa" host key algorithm, which a caller must opt in to).
 *
 * Every CA, key and certificate comes from the real ssh-keygen at test time
 * (-s CA -I id -n principals -V validity -h -O options -z serial), so the
 * format is checked against OpenSSH, not against our reading of
 * PROTOCOL.certkeys. Certificates OpenSSH would not write (host critical
 * options, unsorted options, ...) are built here and signed with a CA key
 * through key.c.
 *
 * Owns: one temp dir made by main() (removed when main exits) and the sshd
 * servers its interop tests start. Must never: touch ~/.ssh, or use the
 * network beyond 127.0.0.1.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cert.h"
#include "hostauth.h"
#include "key.h"
#include "knownhosts.h"
#include "sshd.h"
#include "sshflow.h"

#define SSH_KEYGEN "/usr/bin/ssh-keygen"
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define T_2030_01_01 1893456000ULL /* 2030-01-01T00:00:00Z */
#define T_2030_02_01 1896134400ULL /* 2030-02-01T00:00:00Z */
#define CONNECT_TIMEOUT "20"
#define TCP_TIMEOUT_MS 10000

struct tkey {
    char path[160]; /* private key; public key at path.pub */
    char type[64];
    char b64[4096];
    char entry[4200]; /* "type b64" */
    uint8_t blob[3072];
    size_t len;
};

struct tcert {
    char path[180]; /* the -cert.pub file */
    char type[64];
    char entry[8400]; /* "type b64" */
    uint8_t blob[6144];
    size_t len;
};

enum { CA_ED, CA_EC, CA_RSA, CA_OTHER, NCA };
enum { SUB_ED, SUB_EC, SUB_RSA, NSUB };

static struct tkey CA[NCA], SUB[NSUB];
static struct tcert M[3][NSUB]; /* host certificates: CA_ED/EC/RSA x subject */
static struct tcert C_USER, C_EXPIRED, C_FUTURE, C_WINDOW, C_NOPRINC, C_OTHERCA, C_SHA1,
    C_WRONGPRINC;

static pid_t main_pid;
static char rootdir[64];
static bool fixture_ok;
static char fixture_err[256];
static sshflow_error E;

/* Host certificates of the matrix name these principals. */
#define PRINCIPALS "host1.example.com,127.0.0.1,Mixed.Example.com"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

static void
cleanup_at_exit(void)
{
    if (getpid() == main_pid && rootdir[0] != '\0') {
        (void)nftw(rootdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/* Start argv with stdin, stdout and stderr on /dev/null; its pid or -1. */
static pid_t
spawn(char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Wait for pid; 0 if it exited 0. */
static int
reap(pid_t pid)
{
    int status = 0;

    if (pid < 0) {
        return -1;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Run argv with stdin, stdout and stderr on /dev/null; 0 if it exited 0. */
static int
run(char *const argv[])
{
    return reap(spawn(argv));
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *d = NULL;
    long n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    d = malloc((size_t)n + 1);
    if (d != NULL && fread(d, 1, (size_t)n, f) != (size_t)n) {
        free(d);
        d = NULL;
    }
    fclose(f);
    if (d != NULL) {
        d[n] = '\0';
        if (len != NULL) {
            *len = (size_t)n;
        }
    }
    return d;
}

static int
spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    size_t n = strlen(text);

    if (f == NULL) {
        return -1;
    }
    if (fwrite(text, 1, n, f) != n) {
        fclose(f);
        return -1;
    }
    return fclose(f);
}

/* "type base64 comment" of a .pub file into type, b64 and blob. */
static int
read_pub(const char *path, char *type, size_t typesz, char *b64, size_t b64sz, uint8_t *blob,
         size_t blobsz, size_t *len)
{
    char *text = slurp(path, NULL);
    char *sp = NULL, *end = NULL;
    int r = -1;

    if (text == NULL || (sp = strchr(text, ' ')) == NULL) {
        goto out;
    }
    *sp = '\0';
    end = sp + 1 + strcspn(sp + 1, " \n");
    *end = '\0';
    if (strlen(text) >= typesz || strlen(sp + 1) >= b64sz) {
        goto out;
    }
    snprintf(type, typesz, "%s", text);
    snprintf(b64, b64sz, "%s", sp + 1);
    if (sf_base64_decode(b64, strlen(b64), blob, blobsz, len) != 0) {
        goto out;
    }
    r = 0;
out:
    free(text);
    return r;
}

/* Start ssh-keygen making key `name` into k->path (finish with load_key). */
static pid_t
start_key(struct tkey *k, const char *name, const char *type, const char *bits)
{
    char *argv[] = { SSH_KEYGEN, "-q", "-t", (char *)type, "-b", (char *)bits, "-N", "",
                     "-C", "test", "-f", k->path, NULL };

    snprintf(k->path, sizeof(k->path), "%s/%s", rootdir, name);
    return spawn(argv);
}

static int
load_key(struct tkey *k)
{
    char pub[180];

    snprintf(pub, sizeof(pub), "%s.pub", k->path);
    if (read_pub(pub, k->type, sizeof(k->type), k->b64, sizeof(k->b64), k->blob, sizeof(k->blob),
                 &k->len) != 0) {
        snprintf(fixture_err, sizeof(fixture_err), "ssh-keygen for %s failed", k->path);
        return -1;
    }
    snprintf(k->entry, sizeof(k->entry), "%s %s", k->type, k->b64);
    return 0;
}

/* Load a -cert.pub file into c. */
static int
load_cert(struct tcert *c, const char *path)
{
    char b64[8192];

    snprintf(c->path, sizeof(c->path), "%s", path);
    if (read_pub(path, c->type, sizeof(c->type), b64, sizeof(b64), c->blob, sizeof(c->blob),
                 &c->len) != 0) {
        snprintf(fixture_err, sizeof(fixture_err), "cannot read %s", path);
        return -1;
    }
    snprintf(c->entry, sizeof(c->entry), "%s %s", c->type, b64);
    return 0;
}

/*
 * Sign a copy of sub's public key with ca: ssh-keygen -s CA -I id -z 42
 * [extra args...] NAME.pub, giving NAME-cert.pub.
 */
static int
make_cert(struct tcert *c, const char *name, const struct tkey *ca, const struct tkey *sub, ...)
{
    char src[180], pub[180], out[200];
    char *argv[32];
    char *text = NULL;
    const char *a = NULL;
    size_t n = 0;
    va_list ap;

    snprintf(src, sizeof(src), "%s.pub", sub->path);
    snprintf(pub, sizeof(pub), "%s/%s.pub", rootdir, name);
    snprintf(out, sizeof(out), "%s/%s-cert.pub", rootdir, name);
    if ((text = slurp(src, NULL)) == NULL || spit(pub, text) != 0) {
        free(text);
        return -1;
    }
    free(text);
    argv[n++] = SSH_KEYGEN;
    argv[n++] = "-q";
    argv[n++] = "-s";
    argv[n++] = (char *)ca->path;
    argv[n++] = "-I";
    argv[n++] = (char *)name;
    argv[n++] = "-z";
    argv[n++] = "42";
    va_start(ap, sub);
    while ((a = va_arg(ap, const char *)) != NULL && n < NELEM(argv) - 2) {
        argv[n++] = (char *)a;
    }
    va_end(ap);
    argv[n++] = pub;
    argv[n] = NULL;
    if (run(argv) != 0) {
        snprintf(fixture_err, sizeof(fixture_err), "ssh-keygen -s for %s failed", name);
        return -1;
    }
    return load_cert(c, out);
}

static int
make_fixture(void)
{
    static const char *const ca_names[3] = { "ca_ed", "ca_ec", "ca_rsa" };
    static const char *const sub_names[NSUB] = { "ed", "ec", "rsa" };

    pid_t pids[NCA + NSUB];
    int bad = 0;

    /* All keys at once: RSA generation dominates. */
    pids[0] = start_key(&CA[CA_ED], "ca_ed", "ed25519", "256");
    pids[1] = start_key(&CA[CA_EC], "ca_ec", "ecdsa", "256");
    pids[2] = start_key(&CA[CA_RSA], "ca_rsa", "rsa", "2048");
    pids[3] = start_key(&CA[CA_OTHER], "ca_other", "ed25519", "256");
    pids[4] = start_key(&SUB[SUB_ED], "sub_ed", "ed25519", "256");
    pids[5] = start_key(&SUB[SUB_EC], "sub_ec", "ecdsa", "384");
    pids[6] = start_key(&SUB[SUB_RSA], "sub_rsa", "rsa", "2048");
    for (size_t i = 0; i < NELEM(pids); i++) {
        bad |= reap(pids[i]) != 0;
    }
    for (int i = 0; i < NCA; i++) {
        bad |= load_key(&CA[i]) != 0;
    }
    for (int i = 0; i < NSUB; i++) {
        bad |= load_key(&SUB[i]) != 0;
    }
    if (bad) {
        return -1;
    }
    for (int ca = 0; ca < 3; ca++) {
        for (int s = 0; s < NSUB; s++) {
            char name[64];

            snprintf(name, sizeof(name), "m_%s_%s", ca_names[ca], sub_names[s]);
            if (make_cert(&M[ca][s], name, &CA[ca], &SUB[s], "-h", "-n", PRINCIPALS, NULL) != 0) {
                return -1;
            }
        }
    }
    if (make_cert(&C_USER, "user", &CA[CA_ED], &SUB[SUB_ED], "-n", "alice,bob", "-O",
                  "force-command=/bin/true", "-O", "source-address=127.0.0.1/32", NULL) != 0 ||
        make_cert(&C_EXPIRED, "expired", &CA[CA_ED], &SUB[SUB_ED], "-h", "-n", PRINCIPALS, "-V",
                  "20000101:20010101", NULL) != 0 ||
        make_cert(&C_FUTURE, "future", &CA[CA_ED], &SUB[SUB_ED], "-h", "-n", PRINCIPALS, "-V",
                  "20990101:20991231", NULL) != 0 ||
        make_cert(&C_WINDOW, "window", &CA[CA_ED], &SUB[SUB_ED], "-h", "-n", PRINCIPALS, "-V",
                  "20300101:20300201", NULL) != 0 ||
        make_cert(&C_NOPRINC, "noprinc", &CA[CA_ED], &SUB[SUB_ED], "-h", NULL) != 0 ||
        make_cert(&C_OTHERCA, "otherca", &CA[CA_OTHER], &SUB[SUB_ED], "-h", "-n", PRINCIPALS,
                  NULL) != 0 ||
        make_cert(&C_SHA1, "sha1", &CA[CA_RSA], &SUB[SUB_ED], "-h", "-t", "ssh-rsa", "-n",
                  PRINCIPALS, NULL) != 0 ||
        make_cert(&C_WRONGPRINC, "wrongprinc", &CA[CA_ED], &SUB[SUB_ED], "-h", "-n",
                  "other.example.com", NULL) != 0) {
        return -1;
    }
    return 0;
}

#define REQUIRE_FIXTURE() ck_assert_msg(fixture_ok, "fixture: %s", fixture_err)

static struct sf_cert *
parse_ok(const struct tcert *c)
{
    struct sf_cert *cert = NULL;
    int r = sf_cert_from_blob(c->blob, c->len, &cert);

    ck_assert_msg(r == 0, "%s: %s", c->path, sf_err_str(r));
    ck_assert_ptr_nonnull(cert);
    return cert;
}

/* The fields after the type name of a plain key blob (what a certificate embeds). */
static const uint8_t *
key_fields(const struct tkey *k, size_t *n)
{
    uint32_t tl = sf_load_be32(k->blob);

    *n = k->len - 4 - tl;
    return k->blob + 4 + tl;
}

static void
put_str(struct sf_buf *b, const void *p, size_t n)
{
    ck_assert_int_eq(sf_buf_put_string(b, p, n), 0);
}

static void
put_cstr(struct sf_buf *b, const char *s)
{
    ck_assert_int_eq(sf_buf_put_cstr(b, s), 0);
}

/* A certificate OpenSSH would not write; everything left 0/NULL takes a sane default. */
struct build {
    const char *type;       /* default ssh-ed25519-cert-v01@openssh.com (subject SUB_ED) */
    uint32_t kind;          /* default host */
    const char *const *principals;
    size_t nprincipals;
    const char *const *crit; /* names; data is empty */
    size_t ncrit;
    const char *const *ext;
    size_t next;
    uint64_t va, vb;         /* default 0 .. forever */
    const uint8_t *ca;       /* CA blob; default CA_ED's */
    size_t calen;
    bool trailing;           /* a byte after the signature */
    bool bad_sig;            /* flip a bit of the signature */
};

/* Build the certificate described by o into out, signed by CA_ED's private key. */
static void
build_cert(const struct build *o, struct sf_buf *out)
{
    struct sf_buf sect, sig;
    struct sf_privkey *ca = NULL;
    const uint8_t *kf = NULL;
    size_t kfn = 0;
    static const uint8_t nonce[32] = { 1, 2, 3 };

    ck_assert_int_eq(sf_buf_alloc(&sect, 256, SF_KEYBLOB_MAX * 2), 0);
    ck_assert_int_eq(sf_buf_alloc(&sig, 256, SF_KEYBLOB_MAX), 0);
    put_cstr(out, o->type != NULL ? o->type : "ssh-ed25519-cert-v01@openssh.com");
    put_str(out, nonce, sizeof(nonce));
    kf = key_fields(&SUB[SUB_ED], &kfn);
    ck_assert_int_eq(sf_buf_put_bytes(out, kf, kfn), 0);
    ck_assert_int_eq(sf_buf_put_u64(out, 7), 0);
    ck_assert_int_eq(sf_buf_put_u32(out, o->kind != 0 ? o->kind : SF_CERT_HOST), 0);
    put_cstr(out, "built");
    for (size_t i = 0; i < o->nprincipals; i++) {
        if (o->principals[i] == NULL) {
            put_str(&sect, "a\0b", 3); /* a principal with a NUL inside */
        } else {
            put_cstr(&sect, o->principals[i]);
        }
    }
    ck_assert_int_eq(sf_buf_put_sub(out, &sect), 0);
    sf_buf_reset(&sect);
    ck_assert_int_eq(sf_buf_put_u64(out, o->va), 0);
    ck_assert_int_eq(sf_buf_put_u64(out, o->vb != 0 ? o->vb : UINT64_MAX), 0);
    for (size_t i = 0; i < o->ncrit; i++) {
        put_cstr(&sect, o->crit[i]);
        put_str(&sect, "", 0);
    }
    ck_assert_int_eq(sf_buf_put_sub(out, &sect), 0);
    sf_buf_reset(&sect);
    for (size_t i = 0; i < o->next; i++) {
        put_cstr(&sect, o->ext[i]);
        put_str(&sect, "", 0);
    }
    ck_assert_int_eq(sf_buf_put_sub(out, &sect), 0);
    put_str(out, "", 0); /* reserved */
    if (o->ca != NULL) {
        put_str(out, o->ca, o->calen);
    } else {
        put_str(out, CA[CA_ED].blob, CA[CA_ED].len);
    }
    ck_assert_int_eq(sf_privkey_load_file(CA[CA_ED].path, NULL, &ca), 0);
    ck_assert_int_eq(sf_privkey_sign(ca, "ssh-ed25519", sf_buf_ptr(out), sf_buf_len(out), &sig),
                     0);
    if (o->bad_sig) {
        sf_buf_mutable_ptr(&sig)[sf_buf_len(&sig) - 1] ^= 0x01;
    }
    ck_assert_int_eq(sf_buf_put_sub(out, &sig), 0);
    if (o->trailing) {
        ck_assert_int_eq(sf_buf_put_u8(out, 0), 0);
    }
    sf_privkey_free(ca);
    sf_buf_free(&sect);
    sf_buf_free(&sig);
}

static int
build_parse(const struct build *o, struct sf_cert **out)
{
    struct sf_buf b;
    int r;

    ck_assert_int_eq(sf_buf_alloc(&b, 1024, SF_KEYBLOB_MAX * 2), 0);
    build_cert(o, &b);
    r = sf_cert_from_blob(sf_buf_ptr(&b), sf_buf_len(&b), out);
    if (r != 0) {
        ck_assert_ptr_null(*out);
    }
    sf_buf_free(&b);
    return r;
}

/* Write a known_hosts file for this test process; returns its path (static). */
static const char *
write_kh(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static const char *
write_kh(const char *fmt, ...)
{
    static char path[128];
    static char text[64 * 1024];
    va_list ap;
    int n;

    snprintf(path, sizeof(path), "%s/kh.%d", rootdir, (int)getpid());
    va_start(ap, fmt);
    n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    ck_assert_int_eq(spit(path, text), 0);
    return path;
}

/* sf_hostauth_check of blob against a known_hosts authenticator. */
static int
kh_check(const char *path, enum sshflow_hostkey_policy pol, const char *host, uint16_t port,
         const uint8_t *blob, size_t len)
{
    sshflow_hostauth *a = sshflow_hostauth_known_hosts(path, pol);
    int r;

    ck_assert_ptr_nonnull(a);
    memset(&E, 0, sizeof(E));
    r = sf_hostauth_check(a, host, port, blob, len, &E);
    sshflow_hostauth_free(a);
    return r;
}

#define KH_OK(path, host, port, c)                                                         \
    do {                                                                                   \
        int kh_r_ = kh_check((path), SSHFLOW_HOSTKEY_STRICT, (host), (port), (c)->blob,    \
                             (c)->len);                                                    \
        ck_assert_msg(kh_r_ == 0, "%s:%u refused (%d): %s", (host), (unsigned)(port), kh_r_, \
                      E.detail);                                                           \
    } while (0)

#define DETAIL_HAS(s)                                                                      \
    ck_assert_msg(strstr(E.detail, (s)) != NULL, "detail lacks \"%s\": %s", (s), E.detail)

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* Every CA type x every key type, from the files ssh-keygen wrote. */
START_TEST(test_cert_load_matrix)
{
    static const char *const casig[3] = { "ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512" };
    int ca = _i / NSUB, s = _i % NSUB;
    const struct tcert *c = &M[ca][s];
    struct sf_cert *cert = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;
    char want[96];

    REQUIRE_FIXTURE();
    ck_assert_int_eq(sf_cert_load_file(c->path, &cert), 0);
    snprintf(want, sizeof(want), "%s-cert-v01@openssh.com", SUB[s].type);
    ck_assert_str_eq(sf_cert_type(cert), want);
    ck_assert_str_eq(c->type, want);
    ck_assert_str_eq(sf_cert_plain_type(cert), SUB[s].type);
    p = sf_cert_blob(cert, &n);
    ck_assert(n == c->len && memcmp(p, c->blob, n) == 0);
    p = sf_cert_key_blob(cert, &n);
    ck_assert(n == SUB[s].len && memcmp(p, SUB[s].blob, n) == 0);
    ck_assert(sf_cert_certifies(cert, SUB[s].blob, SUB[s].len));
    ck_assert(!sf_cert_certifies(cert, SUB[(s + 1) % NSUB].blob, SUB[(s + 1) % NSUB].len));
    ck_assert(!sf_cert_certifies(cert, CA[ca].blob, CA[ca].len));
    p = sf_cert_ca_blob(cert, &n);
    ck_assert(n == CA[ca].len && memcmp(p, CA[ca].blob, n) == 0);
    ck_assert_str_eq(sf_cert_ca_sigalg(cert), casig[ca]);
    ck_assert(sf_cert_ca_alg_ok(cert, NULL));
    ck_assert_uint_eq(sf_cert_kind(cert), SF_CERT_HOST);
    ck_assert_uint_eq(sf_cert_serial(cert), 42);
    ck_assert_uint_eq(sf_cert_nprincipals(cert), 3);
    ck_assert_str_eq(sf_cert_principal(cert, 0), "host1.example.com");
    ck_assert_str_eq(sf_cert_principal(cert, 1), "127.0.0.1");
    ck_assert_ptr_null(sf_cert_principal(cert, 3));
    ck_assert_uint_eq(sf_cert_valid_after(cert), 0);
    ck_assert(sf_cert_valid_before(cert) == UINT64_MAX);
    ck_assert_uint_eq(sf_cert_ncritical(cert), 0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", (uint64_t)time(NULL), NULL, 0),
                     0);
    /* The same blob, verified, through the wire parser. */
    sf_cert_free(cert);
    cert = parse_ok(c);
    sf_cert_free(cert);
}
END_TEST

/* key.c: a certificate public key verifies as its key, under certificate names only. */
START_TEST(test_cert_pubkey_wrap)
{
    static const struct {
        int sub;
        const char *sigalg;
    } cases[] = {
        { SUB_ED, "ssh-ed25519" },
        { SUB_EC, "ecdsa-sha2-nistp384" },
        { SUB_RSA, "rsa-sha2-512" },
        { SUB_RSA, "rsa-sha2-256" },
        { SUB_RSA, "ssh-rsa" },
    };
    static const uint8_t msg[] = "exchange hash stand-in";

    REQUIRE_FIXTURE();
    for (size_t i = 0; i < NELEM(cases); i++) {
        const struct tcert *c = &M[CA_EC][cases[i].sub];
        const char *certalg = sf_cert_alg_for_sigalg(cases[i].sigalg);
        struct sf_privkey *k = NULL;
        struct sf_pubkey *pk = NULL, *plain = NULL;
        struct sf_buf sig;
        const uint8_t *p = NULL;
        size_t n = 0;

        ck_assert_ptr_nonnull(certalg);
        ck_assert_int_eq(sf_buf_alloc(&sig, 256, SF_KEYBLOB_MAX), 0);
        ck_assert_int_eq(sf_pubkey_from_blob(c->blob, c->len, &pk), 0);
        ck_assert_str_eq(sf_pubkey_type(pk), c->type);
        p = sf_pubkey_blob(pk, &n);
        ck_assert(n == c->len && memcmp(p, c->blob, n) == 0);
        ck_assert_ptr_nonnull(sf_pubkey_cert(pk));
        ck_assert(sf_pubkey_sigalg_ok(pk, certalg));
        ck_assert(!sf_pubkey_sigalg_ok(pk, cases[i].sigalg)); /* plain name: no */
        ck_assert(!sf_pubkey_sigalg_ok(pk, "ssh-ed25519-cert-v01@openssh.com") ||
                  cases[i].sub == SUB_ED);
        /* The plain parser refuses a certificate. */
        ck_assert_int_eq(sf_pubkey_from_plain_blob(c->blob, c->len, &plain), SF_ERR_KEY_TYPE);
        ck_assert_ptr_null(plain);

        ck_assert_int_eq(sf_privkey_load_file(SUB[cases[i].sub].path, NULL, &k), 0);
        ck_assert_int_eq(sf_privkey_sign(k, cases[i].sigalg, msg, sizeof(msg), &sig), 0);
        ck_assert_int_eq(sf_pubkey_verify(pk, certalg, sf_buf_ptr(&sig), sf_buf_len(&sig), msg,
                                          sizeof(msg)),
                         0);
        ck_assert_int_eq(sf_pubkey_verify(pk, certalg, sf_buf_ptr(&sig), sf_buf_len(&sig), msg,
                                          sizeof(msg) - 1),
                         SF_ERR_SIGNATURE);
        ck_assert_int_eq(sf_pubkey_verify(pk, cases[i].sigalg, sf_buf_ptr(&sig),
                                          sf_buf_len(&sig), msg, sizeof(msg)),
                         SF_ERR_SIGNATURE);
        /* A signature made under the certificate name carries the base name: the same bytes. */
        {
            struct sf_buf sig2;

            ck_assert_int_eq(sf_buf_alloc(&sig2, 256, SF_KEYBLOB_MAX), 0);
            ck_assert_int_eq(sf_privkey_sign(k, certalg, msg, sizeof(msg), &sig2), 0);
            ck_assert_int_eq(sf_pubkey_verify(pk, certalg, sf_buf_ptr(&sig2), sf_buf_len(&sig2),
                                              msg, sizeof(msg)),
                             0);
            sf_buf_free(&sig2);
        }
        sf_privkey_free(k);
        sf_pubkey_free(pk);
        sf_buf_free(&sig);
    }
}
END_TEST

START_TEST(test_cert_alg_names)
{
    static const char *const pairs[][2] = {
        { "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com" },
        { "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com" },
        { "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com" },
        { "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521-cert-v01@openssh.com" },
        { "rsa-sha2-512", "rsa-sha2-512-cert-v01@openssh.com" },
        { "rsa-sha2-256", "rsa-sha2-256-cert-v01@openssh.com" },
        { "ssh-rsa", "ssh-rsa-cert-v01@openssh.com" },
    };

    for (size_t i = 0; i < NELEM(pairs); i++) {
        ck_assert_str_eq(sf_cert_alg_for_sigalg(pairs[i][0]), pairs[i][1]);
        ck_assert_str_eq(sf_cert_sigalg_base(pairs[i][1]), pairs[i][0]);
        ck_assert(sf_list_has(sf_cert_alg_list, pairs[i][1], strlen(pairs[i][1])));
        ck_assert(sf_sigalg_supported(pairs[i][1], strlen(pairs[i][1])));
    }
    ck_assert_ptr_null(sf_cert_alg_for_sigalg("ssh-dss"));
    ck_assert_ptr_null(sf_cert_alg_for_sigalg("ssh-ed25519-cert-v01@openssh.com"));
    ck_assert_ptr_null(sf_cert_alg_for_sigalg(NULL));
    ck_assert_ptr_null(sf_cert_sigalg_base("ssh-ed25519"));
    ck_assert_ptr_null(sf_cert_sigalg_base(NULL));
    ck_assert(sf_cert_is_type("ssh-rsa-cert-v01@openssh.com", 28));
    ck_assert(!sf_cert_is_type("rsa-sha2-512-cert-v01@openssh.com", 33)); /* an algorithm only */
    ck_assert(!sf_cert_is_type("ssh-dss-cert-v01@openssh.com", 28));
    ck_assert(!sf_cert_is_type("ssh-ed25519", 11));
    ck_assert_str_eq(sf_cert_ca_default_algs, "ssh-ed25519,ecdsa-sha2-nistp256,"
                                              "ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
                                              "rsa-sha2-512,rsa-sha2-256");
}
END_TEST

/* A CA signature with SHA-1 ("ssh-keygen -s ... -t ssh-rsa"): not trusted by default. */
START_TEST(test_cert_sha1_ca)
{
    struct sf_cert *cert = (struct sf_cert *)&cert;

    REQUIRE_FIXTURE();
    ck_assert_int_eq(sf_cert_from_blob(C_SHA1.blob, C_SHA1.len, &cert), SF_ERR_CERT);
    ck_assert_ptr_null(cert);
    ck_assert_int_eq(sf_cert_load_file(C_SHA1.path, &cert), SF_ERR_CERT);
    ck_assert_int_eq(sf_cert_from_blob_algs(C_SHA1.blob, C_SHA1.len, "ssh-rsa,rsa-sha2-512", &cert),
                     0);
    ck_assert_str_eq(sf_cert_ca_sigalg(cert), "ssh-rsa");
    ck_assert(!sf_cert_ca_alg_ok(cert, NULL));
    ck_assert(sf_cert_ca_alg_ok(cert, "rsa-sha2-512,ssh-rsa"));
    sf_cert_free(cert);
    /* NULL: any algorithm (for parsing a host key, trusted later or downgraded). */
    ck_assert_int_eq(sf_cert_from_blob_algs(C_SHA1.blob, C_SHA1.len, NULL, &cert), 0);
    sf_cert_free(cert);
    /* A restricted list refuses the others too. */
    ck_assert_int_eq(sf_cert_from_blob_algs(M[CA_ED][0].blob, M[CA_ED][0].len, "rsa-sha2-512",
                                            &cert),
                     SF_ERR_CERT);
}
END_TEST

START_TEST(test_cert_load_file_errors)
{
    struct sf_cert *cert = (struct sf_cert *)&cert;
    char path[128], text[9000], pub[200];
    char *t = NULL;

    REQUIRE_FIXTURE();
    snprintf(path, sizeof(path), "%s/lf.%d", rootdir, (int)getpid());
    ck_assert_int_eq(sf_cert_load_file("/nonexistent/x-cert.pub", &cert), SF_ERR_FILE);
    ck_assert_ptr_null(cert);
    ck_assert_int_eq(sf_cert_load_file(rootdir, &cert), SF_ERR_FILE); /* a directory */
    ck_assert_int_eq(sf_cert_load_file(NULL, &cert), SF_ERR_INVALID);
    /* A plain public key is not a certificate. */
    snprintf(pub, sizeof(pub), "%s.pub", SUB[SUB_ED].path);
    ck_assert_int_eq(sf_cert_load_file(pub, &cert), SF_ERR_KEY_TYPE);
    /* Empty, blank, comments only. */
    ck_assert_int_eq(spit(path, ""), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_KEY_TYPE);
    ck_assert_int_eq(spit(path, "\n  \n# comment\n"), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_KEY_TYPE);
    /* Comments and blanks before the line, CRLF and no comment after: fine. */
    snprintf(text, sizeof(text), "# made by ssh-keygen\n\n%s\r\n", M[CA_ED][SUB_ED].entry);
    ck_assert_int_eq(spit(path, text), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), 0);
    sf_cert_free(cert);
    /* The type in front must be the blob's. */
    t = strchr(M[CA_ED][SUB_ED].entry, ' ');
    snprintf(text, sizeof(text), "ssh-rsa-cert-v01@openssh.com%s\n", t);
    ck_assert_int_eq(spit(path, text), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_BAD_FORMAT);
    /* Type only, bad base64. */
    ck_assert_int_eq(spit(path, "ssh-ed25519-cert-v01@openssh.com\n"), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_BAD_FORMAT);
    ck_assert_int_eq(spit(path, "ssh-ed25519-cert-v01@openssh.com AAAA*AAA\n"), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_BAD_FORMAT);
    /* An unknown certificate type. */
    ck_assert_int_eq(spit(path, "ssh-dss-cert-v01@openssh.com AAAA\n"), 0);
    ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(cert);
    /* Larger than any certificate file. */
    {
        FILE *f = fopen(path, "wb");

        ck_assert_ptr_nonnull(f);
        for (int i = 0; i < SF_CERT_FILE_MAX / 32; i++) {
            fputs("# padding padding padding padding padding padding padding padd\n", f);
        }
        fputs(M[CA_ED][SUB_ED].entry, f);
        fclose(f);
        ck_assert_int_eq(sf_cert_load_file(path, &cert), SF_ERR_FILE);
    }
}
END_TEST

/*
 * The byte-level loops run over every byte of two certificates, LOOP_CHUNK
 * bytes per iteration (one fork each: Check still isolates a crash).
 */
#define LOOP_CHUNK 16

static int
loop_count(void)
{
    size_t n = M[CA_ED][SUB_ED].len + M[CA_RSA][SUB_EC].len;

    return n > 0 ? (int)((n + LOOP_CHUNK - 1) / LOOP_CHUNK) : 1;
}

static const struct tcert *
loop_cert(size_t i, size_t *off)
{
    const struct tcert *a = &M[CA_ED][SUB_ED];
    const struct tcert *b = &M[CA_RSA][SUB_EC];

    if (i < a->len) {
        *off = i;
        return a;
    }
    *off = i - a->len;
    return *off < b->len ? b : NULL;
}

/* Any changed byte: an error (a parse error or a bad CA signature), never a crash. */
START_TEST(test_cert_corrupt_byte)
{
    static const uint8_t masks[] = { 0x01, 0x80, 0xff };

    REQUIRE_FIXTURE();
    for (size_t i = (size_t)_i * LOOP_CHUNK; i < (size_t)(_i + 1) * LOOP_CHUNK; i++) {
        size_t off = 0;
        const struct tcert *c = loop_cert(i, &off);
        uint8_t *copy = NULL;

        if (c == NULL) {
            break;
        }
        copy = malloc(c->len);
        ck_assert_ptr_nonnull(copy);
        /* One flip per byte, the mask rotating: low bit, high bit, every bit. */
        {
            uint8_t mask = masks[off % NELEM(masks)];
            struct sf_cert *cert = NULL;
            struct sf_pubkey *pk = NULL;
            int r;

            memcpy(copy, c->blob, c->len);
            copy[off] ^= mask;
            r = sf_cert_from_blob(copy, c->len, &cert);
            ck_assert_msg(r != 0, "byte %zu ^ 0x%02x of %s accepted", off, mask, c->path);
            ck_assert_ptr_null(cert);
            ck_assert_int_ne(sf_pubkey_from_blob(copy, c->len, &pk), 0);
            ck_assert_ptr_null(pk);
        }
        free(copy);
    }
}
END_TEST

/* Every truncation: an error. */
START_TEST(test_cert_truncated)
{
    REQUIRE_FIXTURE();
    for (size_t i = (size_t)_i * LOOP_CHUNK; i < (size_t)(_i + 1) * LOOP_CHUNK; i++) {
        size_t off = 0;
        const struct tcert *c = loop_cert(i, &off);
        struct sf_cert *cert = NULL;
        uint8_t *copy = NULL;
        int r;

        if (c == NULL) {
            break;
        }
        /* A copy of exactly off bytes, so a read past it is caught by ASan. */
        copy = malloc(off + 1);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, c->blob, off);
        r = sf_cert_from_blob(off > 0 ? copy : NULL, off, &cert);
        ck_assert_msg(r != 0, "%zu of %zu bytes of %s accepted", off, c->len, c->path);
        ck_assert_ptr_null(cert);
        free(copy);
    }
}
END_TEST

START_TEST(test_cert_trailing_and_oversize)
{
    const struct tcert *c = &M[CA_ED][SUB_ED];
    struct sf_cert *cert = NULL;
    uint8_t *big = NULL;

    REQUIRE_FIXTURE();
    big = calloc(1, SF_KEYBLOB_MAX + 2);
    ck_assert_ptr_nonnull(big);
    memcpy(big, c->blob, c->len);
    ck_assert_int_eq(sf_cert_from_blob(big, c->len + 1, &cert), SF_ERR_TRAILING_DATA);
    ck_assert_ptr_null(cert);
    ck_assert_int_eq(sf_cert_from_blob(big, SF_KEYBLOB_MAX + 1, &cert), SF_ERR_TOO_LARGE);
    /* The nonce claims 2^32 - 1 bytes. */
    memcpy(big, c->blob, c->len);
    {
        uint32_t tl = sf_load_be32(big);

        sf_store_be32(big + 4 + tl, 0xffffffffU);
        ck_assert_int_ne(sf_cert_from_blob(big, c->len, &cert), 0);
        /* ... or 300 bytes: over SF_CERT_NONCE_MAX even though the blob holds them. */
        sf_store_be32(big + 4 + tl, 300);
        ck_assert_int_eq(sf_cert_from_blob(big, c->len, &cert), SF_ERR_TOO_LARGE);
    }
    ck_assert_ptr_null(cert);
    ck_assert_int_eq(sf_cert_from_blob(c->blob, c->len, NULL), SF_ERR_INVALID);
    ck_assert_int_eq(sf_cert_from_blob(NULL, 5, &cert), SF_ERR_INVALID);
    free(big);
}
END_TEST

/* Certificates built here: our builder first makes a good one. */
START_TEST(test_cert_build_good)
{
    static const char *const princ[] = { "h1", "h2" };
    static const char *const crit[] = { "force-command", "source-address" };
    static const char *const ext[] = { "permit-X11-forwarding", "permit-pty" };
    struct build o = { 0 };
    struct sf_cert *cert = NULL;

    REQUIRE_FIXTURE();
    ck_assert_int_eq(build_parse(&o, &cert), 0);
    ck_assert_uint_eq(sf_cert_nprincipals(cert), 0);
    ck_assert_str_eq(sf_cert_key_id(cert), "built");
    ck_assert_uint_eq(sf_cert_serial(cert), 7);
    sf_cert_free(cert);
    o.principals = princ;
    o.nprincipals = 2;
    o.crit = crit;
    o.ncrit = 2;
    o.ext = ext;
    o.next = 2;
    o.kind = SF_CERT_USER;
    ck_assert_int_eq(build_parse(&o, &cert), 0);
    ck_assert_uint_eq(sf_cert_ncritical(cert), 2);
    ck_assert_str_eq(sf_cert_critical_name(cert, 0), "force-command");
    ck_assert_str_eq(sf_cert_critical_name(cert, 1), "source-address");
    ck_assert_ptr_null(sf_cert_critical_name(cert, 2));
    sf_cert_free(cert);
}
END_TEST

START_TEST(test_cert_build_bad)
{
    static const char *const unsorted[] = { "source-address", "force-command" };
    static const char *const dup[] = { "force-command", "force-command" };
    static const char *const prefix[] = { "permit-pty-x", "permit-pty" };
    static const char *const empty[] = { "" };
    static const char *const nul_princ[] = { "ok", NULL };
    static const char *many[SF_CERT_PRINCIPALS_MAX + 1];
    struct build o;
    struct sf_cert *cert = NULL;
    struct sf_buf cablob;

    REQUIRE_FIXTURE();
    memset(&o, 0, sizeof(o));
    o.crit = unsorted;
    o.ncrit = 2;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);
    o.crit = dup;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);
    o.crit = empty;
    o.ncrit = 1;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);
    memset(&o, 0, sizeof(o));
    o.ext = prefix;
    o.next = 2;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);
    o.ext = dup;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);

    memset(&o, 0, sizeof(o));
    o.kind = 3;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);
    memset(&o, 0, sizeof(o));
    o.type = "ssh-dss-cert-v01@openssh.com";
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_KEY_TYPE);
    o.type = "ecdsa-sha2-nistp256-cert-v01@openssh.com"; /* ed25519 fields under an ECDSA type */
    ck_assert_int_ne(build_parse(&o, &cert), 0);
    memset(&o, 0, sizeof(o));
    o.principals = nul_princ;
    o.nprincipals = 2;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_BAD_FORMAT);
    for (size_t i = 0; i < NELEM(many); i++) {
        many[i] = "p";
    }
    o.principals = many;
    o.nprincipals = SF_CERT_PRINCIPALS_MAX;
    ck_assert_int_eq(build_parse(&o, &cert), 0);
    sf_cert_free(cert);
    o.nprincipals = SF_CERT_PRINCIPALS_MAX + 1;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_TOO_LARGE);
    memset(&o, 0, sizeof(o));
    o.trailing = true;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_TRAILING_DATA);
    memset(&o, 0, sizeof(o));
    o.bad_sig = true;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_SIGNATURE);
    /* A CA key that is not the signer: the signature does not verify. */
    memset(&o, 0, sizeof(o));
    o.ca = CA[CA_OTHER].blob;
    o.calen = CA[CA_OTHER].len;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_SIGNATURE);
    /* A certificate as the CA key: no chains. */
    o.ca = M[CA_ED][SUB_ED].blob;
    o.calen = M[CA_ED][SUB_ED].len;
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_KEY_TYPE);
    /* An unsupported CA key type. */
    ck_assert_int_eq(sf_buf_alloc(&cablob, 64, 1024), 0);
    put_cstr(&cablob, "ssh-dss");
    put_str(&cablob, "x", 1);
    o.ca = sf_buf_ptr(&cablob);
    o.calen = sf_buf_len(&cablob);
    ck_assert_int_eq(build_parse(&o, &cert), SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(cert);
    sf_buf_free(&cablob);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

START_TEST(test_cert_check_validity)
{
    struct sf_cert *cert = NULL;
    char why[SF_CERT_WHY_MAX];
    uint64_t now = (uint64_t)time(NULL);

    REQUIRE_FIXTURE();
    /* ssh-keygen -V 20300101:20300201 (TZ=UTC): exactly these bounds. */
    cert = parse_ok(&C_WINDOW);
    ck_assert_uint_eq(sf_cert_valid_after(cert), T_2030_01_01);
    ck_assert_uint_eq(sf_cert_valid_before(cert), T_2030_02_01);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", T_2030_01_01 - 1, why,
                                   sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "not yet valid") != NULL && strstr(why, "2030-01-01") != NULL,
                  "%s", why);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", T_2030_01_01, why,
                                   sizeof(why)),
                     0);
    ck_assert_str_eq(why, "");
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", T_2030_02_01 - 1, NULL, 0),
                     0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", T_2030_02_01, why,
                                   sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "expired") != NULL && strstr(why, "2030-02-01") != NULL, "%s", why);
    sf_cert_free(cert);

    cert = parse_ok(&C_EXPIRED);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", now, why, sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "expired") != NULL, "%s", why);
    sf_cert_free(cert);
    cert = parse_ok(&C_FUTURE);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", now, why, sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "not yet valid") != NULL, "%s", why);
    /* A tiny why buffer is still terminated. */
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "127.0.0.1", now, why, 4), SF_ERR_CERT);
    ck_assert_uint_eq(strlen(why), 3);
    sf_cert_free(cert);
}
END_TEST

START_TEST(test_cert_check_principal)
{
    struct sf_cert *cert = NULL;
    char why[SF_CERT_WHY_MAX];
    uint64_t now = (uint64_t)time(NULL);

    REQUIRE_FIXTURE();
    cert = parse_ok(&M[CA_ED][SUB_ED]);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "host1.example.com", now, why, sizeof(why)),
                     0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, NULL, now, why, sizeof(why)), 0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "host2.example.com", now, why, sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "host2.example.com") != NULL && strstr(why, "principal") != NULL,
                  "%s", why);
    /* Exact match: no patterns, no prefixes, case matters (ssh lower-cases the host first). */
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "host1", now, NULL, 0), SF_ERR_CERT);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "*.example.com", now, NULL, 0), SF_ERR_CERT);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "HOST1.example.com", now, NULL, 0),
                     SF_ERR_CERT);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "Mixed.Example.com", now, NULL, 0), 0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "", now, NULL, 0), SF_ERR_CERT);
    sf_cert_free(cert);
    /* No principals: valid for every name (PROTOCOL.certkeys; OpenSSH 9.2's client agrees). */
    cert = parse_ok(&C_NOPRINC);
    ck_assert_uint_eq(sf_cert_nprincipals(cert), 0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "anything.example.org", now, NULL, 0), 0);
    sf_cert_free(cert);
    ck_assert_int_eq(sf_cert_check(NULL, SF_CERT_HOST, NULL, now, NULL, 0), SF_ERR_INVALID);
}
END_TEST

START_TEST(test_cert_check_type)
{
    struct sf_cert *cert = NULL;
    char why[SF_CERT_WHY_MAX];
    uint64_t now = (uint64_t)time(NULL);

    REQUIRE_FIXTURE();
    cert = parse_ok(&C_USER);
    ck_assert_uint_eq(sf_cert_kind(cert), SF_CERT_USER);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "alice", now, why, sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "user certificate") != NULL, "%s", why);
    /* User certificates: the options are the server's to enforce. */
    ck_assert_uint_eq(sf_cert_ncritical(cert), 2);
    ck_assert_str_eq(sf_cert_critical_name(cert, 0), "force-command");
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_USER, "alice", now, why, sizeof(why)), 0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_USER, "carol", now, NULL, 0), SF_ERR_CERT);
    ck_assert_int_eq(sf_cert_check(cert, 3, "alice", now, NULL, 0), SF_ERR_INVALID);
    sf_cert_free(cert);
    cert = parse_ok(&M[CA_EC][SUB_RSA]);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_USER, "127.0.0.1", now, why, sizeof(why)),
                     SF_ERR_CERT);
    ck_assert_msg(strstr(why, "host certificate") != NULL, "%s", why);
    sf_cert_free(cert);
}
END_TEST

/* Host certificates: every critical option is unknown, so refused. */
START_TEST(test_cert_check_host_critical)
{
    static const char *const crit[] = { "verify-required" };
    struct build o = { 0 };
    struct sf_cert *cert = NULL;
    char why[SF_CERT_WHY_MAX];

    REQUIRE_FIXTURE();
    o.crit = crit;
    o.ncrit = 1;
    ck_assert_int_eq(build_parse(&o, &cert), 0);
    ck_assert_int_eq(sf_cert_check(cert, SF_CERT_HOST, "h", 1000, why, sizeof(why)), SF_ERR_CERT);
    ck_assert_msg(strstr(why, "verify-required") != NULL, "%s", why);
    sf_cert_free(cert);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* known_hosts                                                              */
/* ------------------------------------------------------------------------ */

START_TEST(test_kh_cert_accept)
{
    const char *kh = NULL;
    char hashed[128];
    char *argv[] = { SSH_KEYGEN, "-q", "-H", "-f", hashed, NULL };

    REQUIRE_FIXTURE();
    /* Each CA type, each key type. */
    kh = write_kh("# CAs\n@cert-authority host1.example.com,[127.0.0.1]:2222 %s\n"
                  "@cert-authority host1.example.com,[127.0.0.1]:2222 %s\n"
                  "@cert-authority host1.example.com,[127.0.0.1]:2222 %s\n",
                  CA[CA_ED].entry, CA[CA_EC].entry, CA[CA_RSA].entry);
    for (int ca = 0; ca < 3; ca++) {
        for (int s = 0; s < NSUB; s++) {
            KH_OK(kh, "host1.example.com", 22, &M[ca][s]);
            KH_OK(kh, "HOST1.example.com", 22, &M[ca][s]); /* names lower-cased, as ssh does */
            KH_OK(kh, "127.0.0.1", 2222, &M[ca][s]);
        }
    }
    /* The port is part of the name the patterns see. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, M[0][0].blob,
                              M[0][0].len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    /* Wildcards and negation. */
    kh = write_kh("@cert-authority *.example.com,!bad.example.com,127.0.0.?,[127.0.0.1]:* %s\n",
                  CA[CA_ED].entry);
    KH_OK(kh, "host1.example.com", 22, &M[CA_ED][SUB_ED]);
    KH_OK(kh, "127.0.0.1", 22, &M[CA_ED][SUB_ED]);
    KH_OK(kh, "127.0.0.1", 2200, &M[CA_ED][SUB_ED]);
    /* The host name is lower-cased before the principal check, as ssh does: "Mixed..." never. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "Mixed.Example.com", 22,
                              M[CA_ED][SUB_ED].blob, M[CA_ED][SUB_ED].len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "bad.example.com", 22,
                              M[CA_ED][SUB_ED].blob, M[CA_ED][SUB_ED].len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "host1.example.org", 22,
                              M[CA_ED][SUB_ED].blob, M[CA_ED][SUB_ED].len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    /*
     * A hashed name on an @cert-authority line (ssh-keygen -H leaves marked
     * lines alone, so hash a plain line with it and put the marker in front).
     */
    snprintf(hashed, sizeof(hashed), "%s", write_kh("host1.example.com %s\n", CA[CA_ED].entry));
    ck_assert_int_eq(run(argv), 0);
    {
        char *text = slurp(hashed, NULL);
        char line[8192];

        ck_assert_ptr_nonnull(text);
        ck_assert_msg(strncmp(text, "|1|", 3) == 0, "%s", text);
        snprintf(line, sizeof(line), "@cert-authority %s", text);
        ck_assert_int_eq(spit(hashed, line), 0);
        free(text);
    }
    KH_OK(hashed, "host1.example.com", 22, &M[CA_ED][SUB_EC]);
    ck_assert_int_eq(kh_check(hashed, SSHFLOW_HOSTKEY_STRICT, "host2.example.com", 22,
                              M[CA_ED][SUB_EC].blob, M[CA_ED][SUB_EC].len),
                     SF_ERR_HOSTKEY_UNKNOWN);
}
END_TEST

START_TEST(test_kh_cert_refused)
{
    const char *kh = NULL;
    char *before = NULL, *after = NULL;

    REQUIRE_FIXTURE();
    kh = write_kh("@cert-authority * %s\n", CA[CA_ED].entry);
    /* A CA we do not trust. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "host1.example.com", 22, C_OTHERCA.blob,
                              C_OTHERCA.len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_HOSTKEY);
    DETAIL_HAS("no @cert-authority line");
    DETAIL_HAS(kh);
    DETAIL_HAS("ssh-ed25519-cert-v01@openssh.com");
    DETAIL_HAS("is not known"); /* what became of the plain key */
    /* Trusted CA, but the host is not a principal. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "host2.example.com", 22,
                              M[CA_ED][SUB_ED].blob, M[CA_ED][SUB_ED].len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    DETAIL_HAS("not among its 3 principals");
    DETAIL_HAS("line 1");
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, C_WRONGPRINC.blob,
                              C_WRONGPRINC.len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    /* Expired, not yet valid. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, C_EXPIRED.blob,
                              C_EXPIRED.len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    DETAIL_HAS("expired");
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, C_FUTURE.blob,
                              C_FUTURE.len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    DETAIL_HAS("not yet valid");
    /* A user certificate presented as a host key. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "alice", 22, C_USER.blob, C_USER.len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    DETAIL_HAS("user certificate");
    /* CA signature with SHA-1: not in CASignatureAlgorithms. */
    kh = write_kh("@cert-authority * %s\n", CA[CA_RSA].entry);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, C_SHA1.blob, C_SHA1.len),
                     SF_ERR_HOSTKEY_UNKNOWN);
    DETAIL_HAS("ssh-rsa");
    DETAIL_HAS("CASignatureAlgorithms");
    KH_OK(kh, "127.0.0.1", 22, &M[CA_RSA][SUB_ED]);
    /* No principals: any host. */
    kh = write_kh("@cert-authority * %s\n", CA[CA_ED].entry);
    KH_OK(kh, "whatever.example.net", 22, &C_NOPRINC);

    /* accept-new records nothing for a refused certificate whose key is known otherwise. */
    kh = write_kh("@cert-authority * %s\nhost2.example.com %s\n", CA[CA_ED].entry,
                  SUB[SUB_EC].entry);
    before = slurp(kh, NULL);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_ACCEPT_NEW, "host2.example.com", 22,
                              M[CA_ED][SUB_ED].blob, M[CA_ED][SUB_ED].len),
                     SF_ERR_HOSTKEY_CHANGED);
    DETAIL_HAS("not among");
    DETAIL_HAS("line 2 of");
    after = slurp(kh, NULL);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_kh_cert_revoked)
{
    const char *kh = NULL;
    char *before = NULL, *after = NULL;

    REQUIRE_FIXTURE();
    /* The CA revoked: refused, even with the plain key listed. */
    kh = write_kh("@cert-authority * %s\n@revoked * %s\n127.0.0.1 %s\n", CA[CA_ED].entry,
                  CA[CA_ED].entry, SUB[SUB_ED].entry);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, M[CA_ED][SUB_ED].blob,
                              M[CA_ED][SUB_ED].len),
                     SF_ERR_HOSTKEY);
    DETAIL_HAS("revoked");
    DETAIL_HAS("line 2 of");
    /* ... but the plain key alone (not as a certificate) still passes. */
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, SUB[SUB_ED].blob,
                              SUB[SUB_ED].len),
                     0);
    /* The certified key revoked. */
    kh = write_kh("@cert-authority * %s\n@revoked 127.0.0.1 %s\n", CA[CA_ED].entry,
                  SUB[SUB_EC].entry);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, M[CA_ED][SUB_EC].blob,
                              M[CA_ED][SUB_EC].len),
                     SF_ERR_HOSTKEY);
    DETAIL_HAS("revoked");
    KH_OK(kh, "127.0.0.1", 22, &M[CA_ED][SUB_ED]);
    /* A revocation for another host does not apply (host patterns as usual). */
    KH_OK(kh, "host1.example.com", 22, &M[CA_ED][SUB_EC]);
    /* A revoked certificate revokes its key: another certificate of it too. */
    kh = write_kh("@cert-authority * %s\n@revoked * %s\n", CA[CA_ED].entry, C_WINDOW.entry);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, M[CA_EC][SUB_ED].blob,
                              M[CA_EC][SUB_ED].len),
                     SF_ERR_HOSTKEY);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, SUB[SUB_ED].blob,
                              SUB[SUB_ED].len),
                     SF_ERR_HOSTKEY);
    KH_OK(kh, "127.0.0.1", 22, &M[CA_ED][SUB_RSA]);
    /* accept-new never adds a revoked key. */
    kh = write_kh("@revoked * %s\n", CA[CA_OTHER].entry);
    before = slurp(kh, NULL);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_ACCEPT_NEW, "127.0.0.1", 22, C_OTHERCA.blob,
                              C_OTHERCA.len),
                     SF_ERR_HOSTKEY);
    after = slurp(kh, NULL);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
}
END_TEST

/* An untrusted CA falls back to the plain key, as OpenSSH does. */
START_TEST(test_kh_cert_fallback_plain)
{
    const char *kh = NULL;
    char *text = NULL;
    char want[9000];

    REQUIRE_FIXTURE();
    kh = write_kh("127.0.0.1 %s\n", SUB[SUB_ED].entry);
    KH_OK(kh, "127.0.0.1", 22, &C_OTHERCA);
    KH_OK(kh, "127.0.0.1", 22, &C_EXPIRED); /* no CA line at all: the key decides */
    /* A different plain key known for the host: changed, naming the line. */
    kh = write_kh("# x\n127.0.0.1 %s\n", SUB[SUB_RSA].entry);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 22, C_OTHERCA.blob,
                              C_OTHERCA.len),
                     SF_ERR_HOSTKEY_CHANGED);
    DETAIL_HAS("known_hosts line 2 of");
    /* accept-new appends the plain key, in the form ssh writes. */
    kh = write_kh("@cert-authority other.example.com %s\n", CA[CA_ED].entry);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_ACCEPT_NEW, "127.0.0.1", 2222, C_OTHERCA.blob,
                              C_OTHERCA.len),
                     0);
    text = slurp(kh, NULL);
    snprintf(want, sizeof(want), "@cert-authority other.example.com %s\n[127.0.0.1]:2222 %s\n",
             CA[CA_ED].entry, SUB[SUB_ED].entry);
    ck_assert_str_eq(text, want);
    free(text);
    KH_OK(kh, "127.0.0.1", 2222, &C_OTHERCA);
    ck_assert_int_eq(kh_check(kh, SSHFLOW_HOSTKEY_STRICT, "127.0.0.1", 2222, SUB[SUB_ED].blob,
                              SUB[SUB_ED].len),
                     0);
}
END_TEST

START_TEST(test_kh_cert_types)
{
    const char *kh = NULL;
    sshflow_hostauth *a = NULL;
    char types[1024], want[1024];

    REQUIRE_FIXTURE();
    kh = write_kh("host1 %s\n@cert-authority *.example.com %s\n@revoked host1 %s\n",
                  SUB[SUB_EC].entry, CA[CA_ED].entry, SUB[SUB_RSA].entry);
    a = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_STRICT);
    ck_assert_ptr_nonnull(a);
    sf_hostauth_known_types(a, "host1", 22, types, sizeof(types));
    ck_assert_str_eq(types, SUB[SUB_EC].type);
    sf_hostauth_known_types(a, "a.example.com", 22, types, sizeof(types));
    ck_assert_str_eq(types, sf_cert_alg_list);
    kh = write_kh("a.example.com %s\n@cert-authority *.example.com %s\n", SUB[SUB_EC].entry,
                  CA[CA_ED].entry);
    sshflow_hostauth_free(a);
    a = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_STRICT);
    sf_hostauth_known_types(a, "a.example.com", 22, types, sizeof(types));
    snprintf(want, sizeof(want), "%s,%s", sf_cert_alg_list, SUB[SUB_EC].type);
    ck_assert_str_eq(types, want);
    /* Truncated at a name boundary. */
    sf_hostauth_known_types(a, "a.example.com", 22, types, strlen(sf_cert_alg_list) + 1);
    ck_assert_str_eq(types, sf_cert_alg_list);
    sf_hostauth_known_types(a, "a.example.com", 22, types, 40);
    ck_assert_str_eq(types, "ssh-ed25519-cert-v01@openssh.com");
    sshflow_hostauth_free(a);
}
END_TEST

static char cb_type[64];
static uint8_t cb_blob[4096];
static size_t cb_len;
static char cb_fp[96];

static bool
cb_record(void *user, const char *host, uint16_t port, const char *keytype, const uint8_t *blob,
          size_t bloblen, const char *fingerprint)
{
    (void)user;
    (void)host;
    (void)port;
    snprintf(cb_type, sizeof(cb_type), "%s", keytype);
    memcpy(cb_blob, blob, SF_MIN(bloblen, sizeof(cb_blob)));
    cb_len = bloblen;
    snprintf(cb_fp, sizeof(cb_fp), "%s", fingerprint);
    return true;
}

/* Other authenticators see the certified plain key. */
START_TEST(test_hostauth_cert_other_kinds)
{
    const struct tcert *c = &M[CA_RSA][SUB_EC];
    const struct tkey *k = &SUB[SUB_EC];
    sshflow_hostauth *a = NULL;
    sshflow_error err;
    char fp[96], spec[200];

    REQUIRE_FIXTURE();
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sf_fingerprint_sha256(k->blob, k->len, fp, sizeof(fp)), 0);
    /* known_hosts needs a host name: refused, naming the plain key. */
    a = sshflow_hostauth_known_hosts("/nonexistent", SSHFLOW_HOSTKEY_STRICT);
    ck_assert_int_eq(sf_hostauth_check(a, NULL, 22, c->blob, c->len, &err), SF_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.detail, fp) != NULL, "%s", err.detail);
    sshflow_hostauth_free(a);
    a = sshflow_hostauth_callback(cb_record, NULL);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, c->blob, c->len, &err), 0);
    ck_assert_str_eq(cb_type, k->type);
    ck_assert(cb_len == k->len && memcmp(cb_blob, k->blob, k->len) == 0);
    ck_assert_str_eq(cb_fp, fp);
    sshflow_hostauth_free(a);
    a = sshflow_hostauth_parse(fp, &err);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, c->blob, c->len, &err), 0);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, M[CA_RSA][SUB_ED].blob, M[CA_RSA][SUB_ED].len,
                                       &err),
                     SF_ERR_HOSTKEY);
    sshflow_hostauth_free(a);
    snprintf(spec, sizeof(spec), "%s:%s", k->type, fp + 7);
    a = sshflow_hostauth_parse(spec, &err);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, c->blob, c->len, &err), 0);
    sshflow_hostauth_free(a);
    a = sshflow_hostauth_parse(k->b64, &err);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, c->blob, c->len, &err), 0);
    sshflow_hostauth_free(a);
    /* A certificate that does not verify is refused outright. */
    {
        uint8_t bad[6144];

        memcpy(bad, c->blob, c->len);
        bad[c->len - 1] ^= 1;
        a = sshflow_hostauth_insecure_accept_any();
        ck_assert_int_eq(sf_hostauth_check(a, "h", 22, bad, c->len, &err), SF_ERR_HOSTKEY);
        ck_assert_msg(strstr(err.detail, "certificate") != NULL, "%s", err.detail);
        sshflow_hostauth_free(a);
    }
}
END_TEST

/* Out of memory at every allocation: NOMEM, nothing leaked, never a torn file. */
START_TEST(test_cert_alloc_failure)
{
    const struct tcert *c = &M[CA_RSA][SUB_EC];
    struct sf_cert *cert = NULL;
    struct sf_pubkey *pk = NULL;
    const char *kh = NULL;
    bool ok = false;
    char want[9000];

    REQUIRE_FIXTURE();
    for (unsigned long n = 1; n < 200 && !ok; n++) {
        int r;

        sf_alloc_fail_after(n);
        r = sf_cert_from_blob(c->blob, c->len, &cert);
        sf_alloc_fail_after(0);
        ck_assert_msg(r == 0 || r == SF_ERR_NOMEM, "n=%lu r=%d", n, r);
        ok = r == 0;
        if (r != 0) {
            ck_assert_ptr_null(cert);
        }
        sf_cert_free(cert);
        cert = NULL;
    }
    ck_assert(ok);
    ok = false;
    for (unsigned long n = 1; n < 200 && !ok; n++) {
        int r;

        sf_alloc_fail_after(n);
        r = sf_pubkey_from_blob(c->blob, c->len, &pk);
        sf_alloc_fail_after(0);
        ck_assert_msg(r == 0 || r == SF_ERR_NOMEM, "n=%lu r=%d", n, r);
        ok = r == 0;
        sf_pubkey_free(pk);
        pk = NULL;
    }
    ck_assert(ok);
    /* accept-new with an untrusted CA: the plain key is appended whole, or nothing. */
    ok = false;
    snprintf(want, sizeof(want), "@cert-authority x %s\n[127.0.0.1]:2222 %s\n", CA[CA_ED].entry,
             SUB[SUB_EC].entry);
    for (unsigned long n = 1; n < 200 && !ok; n++) {
        int r;
        char *text = NULL;

        kh = write_kh("@cert-authority x %s\n", CA[CA_ED].entry);
        {
            sshflow_hostauth *a = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_ACCEPT_NEW);

            ck_assert_ptr_nonnull(a);
            memset(&E, 0, sizeof(E));
            sf_alloc_fail_after(n);
            r = sf_hostauth_check(a, "127.0.0.1", 2222, c->blob, c->len, &E);
            sf_alloc_fail_after(0);
            sshflow_hostauth_free(a);
        }
        ck_assert_msg(r == 0 || r == SF_ERR_NOMEM, "n=%lu r=%d %s", n, r, E.detail);
        text = slurp(kh, NULL);
        if (r == 0) {
            ck_assert_str_eq(text, want);
            ok = true;
        } else {
            ck_assert_msg(strcmp(text, want) != 0, "n=%lu: appended but failed", n);
            ck_assert_uint_eq(strlen(text), strlen(CA[CA_ED].entry) + strlen("@cert-authority x \n"));
        }
        free(text);
    }
    ck_assert(ok);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Interop: a real sshd with a HostCertificate                              */
/* ------------------------------------------------------------------------ */

/* Sign a copy of the harness's ed25519 host key with ca; returns the -cert.pub path. */
static void
sign_hostkey(const char *name, const struct tkey *ca, const char *principals, char *out,
             size_t outsz)
{
    char src[300], pub[200];
    char *text = NULL;
    char *argv[] = { SSH_KEYGEN, "-q", "-s", (char *)ca->path, "-I", "sshflow-test-host", "-h",
                     "-n", (char *)principals, pub, NULL };

    ck_assert_int_eq(sf_test_sshd_hostkey_pub(SF_TEST_HOSTKEY_ED25519, src, sizeof(src)), 0);
    snprintf(pub, sizeof(pub), "%s/%s.%d.pub", rootdir, name, (int)getpid());
    text = slurp(src, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_int_eq(spit(pub, text), 0);
    free(text);
    ck_assert_int_eq(run(argv), 0);
    snprintf(out, outsz, "%s/%s.%d-cert.pub", rootdir, name, (int)getpid());
}

/* Connect to s, run "true" with known_hosts kh (strict); NULL and err on failure. */
static sshflow_flow *
connect_exec(const struct sf_test_sshd *s, const char *kh, const char *hostkeyalgs,
             sshflow_error *err)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_hostauth *ha = sshflow_hostauth_known_hosts(kh, SSHFLOW_HOSTKEY_STRICT);
    sshflow_request *req = sshflow_request_exec("true");
    sshflow_flow *t = NULL, *f = NULL;

    ck_assert(cfg != NULL && cred != NULL && ha != NULL && req != NULL);
    memset(err, 0, sizeof(*err));
    ck_assert_int_eq(sshflow_config_set(cfg, "ConnectTimeout", CONNECT_TIMEOUT, err), 0);
    if (hostkeyalgs != NULL) {
        ck_assert_msg(sshflow_config_set(cfg, "HostKeyAlgorithms", hostkeyalgs, err) == 0, "%s",
                      err->detail);
    }
    ck_assert_msg(sshflow_cred_add_keyfile(cred, s->userkey_ed25519, NULL, err) == 0, "%s",
                  err->detail);
    t = sshflow_connect_tcp("127.0.0.1", s->port, TCP_TIMEOUT_MS, err);
    ck_assert_msg(t != NULL, "connect: %s", err->detail);
    f = sshflow_client_of_flow(t, s->user, cred, ha, req, cfg, err);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
    sshflow_cred_free(cred);
    sshflow_config_free(cfg);
    return f;
}

/* Read to EOF, close, expect exit status 0. */
static void
finish(sshflow_flow *f)
{
    sshflow_error err;
    sshflow_exit ex;
    char buf[256];

    memset(&err, 0, sizeof(err));
    for (;;) {
        ssize_t n = sshflow_read_into(f, buf, sizeof(buf), &err);

        ck_assert_msg(n >= 0, "read: %s", err.detail);
        if (n == 0) {
            break;
        }
    }
    ck_assert_msg(sshflow_close_timeout(f, 20000, &err) == 0, "close: %s", err.detail);
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 0);
    sshflow_free(f);
}

#define REQUIRE_SSHD()                                                                        \
    do {                                                                                      \
        if (!sf_test_sshd_available()) {                                                      \
            fprintf(stderr, "check_cert: SKIP %s: sshd not usable here\n", __func__);         \
            return;                                                                           \
        }                                                                                     \
    } while (0)

START_TEST(test_hostcert_interop)
{
    struct sf_test_sshd s;
    sshflow_error err;
    sshflow_flow *f = NULL;
    char cert[300], wrong[300], extra[1024], desc[512];
    const char *kh = NULL;

    REQUIRE_FIXTURE();
    REQUIRE_SSHD();
    memset(&s, 0, sizeof(s));
    sign_hostkey("hostcert", &CA[CA_ED], "127.0.0.1", cert, sizeof(cert));
    sign_hostkey("hostcert-wrong", &CA[CA_ED], "not-this-host.example.com", wrong, sizeof(wrong));
    snprintf(extra, sizeof(extra),
             "HostCertificate %s\n"
             "HostKeyAlgorithms ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512\n",
             cert);
    ck_assert_int_eq(sf_test_sshd_start(&s, extra), 0);

    /* Only the CA is known: the certificate must do it. */
    kh = write_kh("@cert-authority [127.0.0.1]:%u %s\n", (unsigned)s.port, CA[CA_ED].entry);
    f = connect_exec(&s, kh, NULL, &err);
    ck_assert_msg(f != NULL, "connect with a trusted host CA: %s", err.detail);
    ck_assert_int_ge(sshflow_describe(f, desc, sizeof(desc)), 0);
    ck_assert_msg(strstr(desc, "hostkey=ssh-ed25519-cert-v01@openssh.com") != NULL, "%s", desc);
    finish(f);

    /* Another CA: refused (the plain key is not known either). */
    kh = write_kh("@cert-authority [127.0.0.1]:%u %s\n", (unsigned)s.port, CA[CA_OTHER].entry);
    f = connect_exec(&s, kh, NULL, &err);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.detail, "no @cert-authority line") != NULL, "%s", err.detail);

    /* The CA revoked. */
    kh = write_kh("@cert-authority [127.0.0.1]:%u %s\n@revoked * %s\n", (unsigned)s.port,
                  CA[CA_ED].entry, CA[CA_ED].entry);
    f = connect_exec(&s, kh, NULL, &err);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.detail, "revoked") != NULL, "%s", err.detail);
    sf_test_sshd_stop(&s);

    /* A certificate whose principals do not include 127.0.0.1. */
    snprintf(extra, sizeof(extra),
             "HostCertificate %s\n"
             "HostKeyAlgorithms ssh-ed25519-cert-v01@openssh.com,ssh-ed25519,rsa-sha2-512\n",
             wrong);
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(sf_test_sshd_start(&s, extra), 0);
    kh = write_kh("@cert-authority [127.0.0.1]:%u %s\n", (unsigned)s.port, CA[CA_ED].entry);
    f = connect_exec(&s, kh, NULL, &err);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(err.kind, SSHFLOW_ERR_HOSTKEY);
    ck_assert_msg(strstr(err.detail, "not among") != NULL, "%s", err.detail);
    sf_test_sshd_stop(&s);
}
END_TEST

/* Legacy SHA-1 "ssh-rsa" host key signatures: only when the caller opts in. */
START_TEST(test_legacy_ssh_rsa_interop)
{
    struct sf_test_sshd s;
    sshflow_error err;
    sshflow_flow *f = NULL;
    char desc[512];

    REQUIRE_FIXTURE();
    REQUIRE_SSHD();
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(sf_test_sshd_start(&s, "HostKeyAlgorithms ssh-rsa\n"), 0);
    f = connect_exec(&s, s.known_hosts, NULL, &err);
    ck_assert_ptr_null(f); /* not in the default list */
    ck_assert_msg(strstr(err.detail, "ssh-rsa") != NULL, "%s", err.detail);
    f = connect_exec(&s, s.known_hosts, "+ssh-rsa", &err);
    ck_assert_msg(f != NULL, "HostKeyAlgorithms +ssh-rsa: %s", err.detail);
    ck_assert_int_ge(sshflow_describe(f, desc, sizeof(desc)), 0);
    ck_assert_msg(strstr(desc, "hostkey=ssh-rsa ") != NULL, "%s", desc);
    finish(f);
    sf_test_sshd_stop(&s);
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
cert_suite(void)
{
    Suite *s = suite_create("cert");
    TCase *tc = NULL;
    int nloop = loop_count();

    tc = tcase_create("parse");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_cert_load_matrix, 0, 3 * NSUB);
    tcase_add_test(tc, test_cert_pubkey_wrap);
    tcase_add_test(tc, test_cert_alg_names);
    tcase_add_test(tc, test_cert_sha1_ca);
    tcase_add_test(tc, test_cert_load_file_errors);
    tcase_add_loop_test(tc, test_cert_corrupt_byte, 0, nloop);
    tcase_add_loop_test(tc, test_cert_truncated, 0, nloop);
    tcase_add_test(tc, test_cert_trailing_and_oversize);
    tcase_add_test(tc, test_cert_build_good);
    tcase_add_test(tc, test_cert_build_bad);
    suite_add_tcase(s, tc);

    tc = tcase_create("check");
    tcase_add_test(tc, test_cert_check_validity);
    tcase_add_test(tc, test_cert_check_principal);
    tcase_add_test(tc, test_cert_check_type);
    tcase_add_test(tc, test_cert_check_host_critical);
    suite_add_tcase(s, tc);

    tc = tcase_create("known_hosts");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_kh_cert_accept);
    tcase_add_test(tc, test_kh_cert_refused);
    tcase_add_test(tc, test_kh_cert_revoked);
    tcase_add_test(tc, test_kh_cert_fallback_plain);
    tcase_add_test(tc, test_kh_cert_types);
    tcase_add_test(tc, test_hostauth_cert_other_kinds);
    tcase_add_test(tc, test_cert_alloc_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("interop");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_hostcert_interop);
    tcase_add_test(tc, test_legacy_ssh_rsa_interop);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = NULL;
    int failed;

    main_pid = getpid();
    /* ssh-keygen -V reads dates in local time: make that UTC. */
    setenv("TZ", "UTC", 1);
    tzset();
    if (access(SSH_KEYGEN, X_OK) != 0) {
        fprintf(stderr, "check_cert: SKIP: %s not found\n", SSH_KEYGEN);
        return 0;
    }
    snprintf(rootdir, sizeof(rootdir), "/tmp/sf-cert-XXXXXX");
    if (mkdtemp(rootdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    atexit(cleanup_at_exit);
    fixture_ok = make_fixture() == 0;
    if (!fixture_ok) {
        fprintf(stderr, "check_cert: fixture failed: %s\n", fixture_err);
    }
    /* The interop tests' server keys, once for every forked test (unless they do not run). */
    if (sf_test_sshd_available() &&
        (getenv("CK_RUN_CASE") == NULL || strcmp(getenv("CK_RUN_CASE"), "interop") == 0) &&
        sf_test_sshd_init() != 0) {
        fprintf(stderr, "check_cert: cannot generate sshd test keys\n");
    }
    sr = srunner_create(cert_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
