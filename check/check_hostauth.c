/*
 * check/check_hostauth.c -- tests for host authentication: the seed's
 * authenticator strings, known_hosts (strict and accept-new), callback and
 * insecure authenticators.
 *
 * Owns: its temp directories (one for the keys, made once by main(), and
 * one per test that is also the test's $HOME). Must never: touch the real
 * ~/.ssh (every test sets HOME to its own dir first), or need the network.
 * Keys and hashed known_hosts files come from the real ssh-keygen, so the
 * file format is checked against OpenSSH itself, not against our reading of
 * the manual.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hostauth.h"
#include "key.h"
#include "knownhosts.h"
#include "sshflow.h"

#define SSH_KEYGEN "/usr/bin/ssh-keygen"

struct tkey {
    char type[64];
    char b64[4096];   /* as in the .pub file (padded) */
    char entry[4200]; /* "type b64" */
    uint8_t blob[3072];
    size_t len;
    char fp[80]; /* as ssh-keygen -l -E sha256 prints it */
};

static struct tkey K1, K2, K3; /* ssh-ed25519 */
static struct tkey E1;         /* ecdsa-sha2-nistp256 */
static struct tkey E3;         /* ecdsa-sha2-nistp384 */
static struct tkey R1;         /* ssh-rsa, 1024 bits (fast to make) */

static pid_t main_pid;
static char rootdir[64]; /* everything below is removed when main() exits */
static char keydir[96];  /* rootdir/keys */
static char tdir[96];    /* rootdir/t.XXXXXX: this test's dir and $HOME */
static char khpath[128]; /* tdir/.ssh/known_hosts */
static sshflow_error E;

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
rmtree(const char *dir)
{
    if (dir[0] != '\0') {
        (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
}

/*
 * Runs in every process that exit()s: the test's own dir, and the whole
 * root only in main (so a test that failed without its teardown leaves
 * nothing behind either).
 */
static void
cleanup_at_exit(void)
{
    rmtree(tdir);
    tdir[0] = '\0';
    if (getpid() == main_pid) {
        rmtree(rootdir);
    }
}

/*
 * Run argv (no shell) with stdin from /dev/null and stderr to /dev/null;
 * stdout goes into out[outsz] (NUL-terminated) if out is not NULL. Returns
 * the exit status, or -1.
 */
static int
run(char *const argv[], char *out, size_t outsz)
{
    int pfd[2];
    size_t got = 0;
    int status = 0;
    pid_t pid;

    if (pipe(pfd) != 0) {
        return -1;
    }
    if ((pid = fork()) < 0) {
        return -1;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);

        dup2(null, 0);
        dup2(null, 2);
        dup2(pfd[1], 1);
        close(pfd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    for (;;) {
        char tmp[4096];
        ssize_t n = read(pfd[0], tmp, sizeof(tmp));

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        if (out != NULL && got + 1 < outsz) {
            size_t c = SF_MIN((size_t)n, outsz - 1 - got);

            memcpy(out + got, tmp, c);
            got += c;
        }
    }
    close(pfd[0]);
    if (out != NULL && outsz > 0) {
        out[got] = '\0';
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return -1;
        }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char *
read_file(const char *path, size_t *len)
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

static void
write_raw(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

/* Write $HOME/.ssh/known_hosts from a printf format. */
static void
write_kh(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

static void
write_kh(const char *fmt, ...)
{
    static char buf[256 * 1024];
    char dir[128];
    va_list ap;
    int n;

    snprintf(dir, sizeof(dir), "%s/.ssh", tdir);
    (void)mkdir(dir, 0700);
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < sizeof(buf));
    write_raw(khpath, buf, (size_t)n);
}

/* Make a key with ssh-keygen in keydir and load its .pub and fingerprint. */
static int
make_key(struct tkey *k, const char *name, const char *type, const char *bits)
{
    char path[128], pub[140], out[512];
    char *text = NULL;
    char *sp = NULL;
    char *sp2 = NULL;
    char *argv_gen[] = { SSH_KEYGEN, "-q", "-t", (char *)type, "-b", (char *)bits, "-N", "",
                         "-C", "test", "-f", path, NULL };
    char *argv_fp[] = { SSH_KEYGEN, "-l", "-E", "sha256", "-f", pub, NULL };

    snprintf(path, sizeof(path), "%s/%s", keydir, name);
    snprintf(pub, sizeof(pub), "%s.pub", path);
    if (run(argv_gen, NULL, 0) != 0 || (text = read_file(pub, NULL)) == NULL) {
        return -1;
    }
    /* "type base64 comment\n" */
    if ((sp = strchr(text, ' ')) == NULL || (sp2 = strchr(sp + 1, ' ')) == NULL) {
        free(text);
        return -1;
    }
    *sp = '\0';
    *sp2 = '\0';
    snprintf(k->type, sizeof(k->type), "%s", text);
    snprintf(k->b64, sizeof(k->b64), "%s", sp + 1);
    snprintf(k->entry, sizeof(k->entry), "%s %s", k->type, k->b64);
    free(text);
    if (sf_base64_decode(k->b64, strlen(k->b64), k->blob, sizeof(k->blob), &k->len) != 0) {
        return -1;
    }
    /* "256 SHA256:xxx test (ED25519)" */
    if (run(argv_fp, out, sizeof(out)) != 0 || (sp = strchr(out, ' ')) == NULL ||
        (sp2 = strchr(sp + 1, ' ')) == NULL) {
        return -1;
    }
    *sp2 = '\0';
    snprintf(k->fp, sizeof(k->fp), "%s", sp + 1);
    return 0;
}

static void
setup(void)
{
    snprintf(tdir, sizeof(tdir), "%s/t.XXXXXX", rootdir);
    ck_assert_ptr_nonnull(mkdtemp(tdir));
    ck_assert_int_eq(setenv("HOME", tdir, 1), 0);
    snprintf(khpath, sizeof(khpath), "%s/.ssh/known_hosts", tdir);
    memset(&E, 0, sizeof(E));
}

static void
teardown(void)
{
    rmtree(tdir);
    tdir[0] = '\0';
}

static int
chk(const sshflow_hostauth *a, const char *host, uint16_t port, const struct tkey *k)
{
    memset(&E, 0, sizeof(E));
    return sf_hostauth_check(a, host, port, k->blob, k->len, &E);
}

#define ASSERT_DETAIL_HAS(s)                                                                \
    ck_assert_msg(strstr(E.detail, (s)) != NULL, "detail lacks \"%s\": %s", (s), E.detail)

static sshflow_hostauth *
parse_ok(const char *spec)
{
    sshflow_hostauth *a = NULL;

    memset(&E, 0, sizeof(E));
    a = sshflow_hostauth_parse(spec, &E);
    ck_assert_msg(a != NULL, "parse(\"%s\") failed: %s", spec, E.detail);
    return a;
}

static void
parse_bad(const char *spec)
{
    sshflow_hostauth *a = NULL;

    memset(&E, 0, sizeof(E));
    a = sshflow_hostauth_parse(spec, &E);
    ck_assert_msg(a == NULL, "parse(\"%s\") should fail", spec != NULL ? spec : "(null)");
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_INVALID);
    ck_assert_msg(E.detail[0] != '\0', "no detail for \"%s\"", spec != NULL ? spec : "(null)");
}

/* The base64 part of a fingerprint (after "SHA256:"). */
static const char *
fp_b64(const struct tkey *k)
{
    return k->fp + strlen("SHA256:");
}

static sshflow_hostauth *
kh_strict(void)
{
    sshflow_hostauth *a = sshflow_hostauth_known_hosts(khpath, SSHFLOW_HOSTKEY_STRICT);

    ck_assert_ptr_nonnull(a);
    return a;
}

static sshflow_hostauth *
kh_accept_new(void)
{
    sshflow_hostauth *a = sshflow_hostauth_known_hosts(khpath, SSHFLOW_HOSTKEY_ACCEPT_NEW);

    ck_assert_ptr_nonnull(a);
    return a;
}

/* Number of '\n' in s. */
static size_t
count_lines(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n;
}

/* ssh-keygen -F name -f khpath: 0 found, 1 not found. */
static int
keygen_find(const char *name, char *out, size_t outsz)
{
    char *argv[] = { SSH_KEYGEN, "-F", (char *)name, "-f", khpath, NULL };

    return run(argv, out, outsz);
}

/* ------------------------------------------------------------------------ */
/* Seed syntax                                                              */
/* ------------------------------------------------------------------------ */

/* Our fingerprints (b64.c) are the ones ssh-keygen prints. */
START_TEST(test_fingerprint_sha256_matches_ssh_keygen)
{
    const struct tkey *keys[] = { &K1, &K2, &E1, &E3, &R1 };
    char fp[80];
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ck_assert_int_eq(sf_fingerprint_sha256(keys[i]->blob, keys[i]->len, fp, sizeof(fp)), 0);
        ck_assert_str_eq(fp, keys[i]->fp);
    }
}
END_TEST

START_TEST(test_hostauth_parse_sha256_good)
{
    char spec[128];
    sshflow_hostauth *a = parse_ok(K1.fp);

    ck_assert_int_eq(chk(a, "h", 22, &K1), 0);
    ck_assert_int_eq(chk(a, NULL, 0, &K1), 0); /* no host needed */
    ck_assert_int_eq(chk(a, "h", 22, &K2), SF_ERR_HOSTKEY);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_HOSTKEY);
    ASSERT_DETAIL_HAS(K2.fp);
    ASSERT_DETAIL_HAS(K1.fp);
    ck_assert(!sf_hostauth_needs_host(a));
    sshflow_hostauth_free(a);

    /* With '=' padding, and with a lower-case prefix. */
    snprintf(spec, sizeof(spec), "%s=", K1.fp);
    a = parse_ok(spec);
    ck_assert_int_eq(chk(a, "h", 22, &K1), 0);
    sshflow_hostauth_free(a);
    snprintf(spec, sizeof(spec), "sha256:%s", fp_b64(&K1));
    a = parse_ok(spec);
    ck_assert_int_eq(chk(a, "h", 22, &K1), 0);
    sshflow_hostauth_free(a);

    /* Any key type. */
    a = parse_ok(E1.fp);
    ck_assert_int_eq(chk(a, "h", 22, &E1), 0);
    ck_assert_int_eq(chk(a, "h", 22, &K1), SF_ERR_HOSTKEY);
    sshflow_hostauth_free(a);
    a = parse_ok(R1.fp);
    ck_assert_int_eq(chk(a, "h", 22, &R1), 0);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_hostauth_parse_typed_good)
{
    static const struct {
        const char *prefix;
        const struct tkey *key;
    } cases[] = {
        { "ssh-ed25519", &K1 },         { "ed25519", &K1 },
        { "ED25519", &K1 },             { "ecdsa-sha2-nistp256", &E1 },
        { "ecdsa-sha2-nistp384", &E3 }, { "ssh-rsa", &R1 },
        { "rsa", &R1 },
    };
    char spec[160];
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sshflow_hostauth *a = NULL;

        snprintf(spec, sizeof(spec), "%s:%s", cases[i].prefix, fp_b64(cases[i].key));
        a = parse_ok(spec);
        ck_assert_int_eq(chk(a, "h", 22, cases[i].key), 0);
        ck_assert_int_eq(chk(a, "h", 22, &K2), SF_ERR_HOSTKEY);
        sshflow_hostauth_free(a);
    }
    /* "type:SHA256:b64", as pasted from ssh-keygen -l. */
    snprintf(spec, sizeof(spec), "ssh-ed25519:%s", K1.fp);
    sshflow_hostauth *a = parse_ok(spec);
    ck_assert_int_eq(chk(a, "h", 22, &K1), 0);
    sshflow_hostauth_free(a);
}
END_TEST

/* The fingerprint matches but the key type is not the pinned one. */
START_TEST(test_hostauth_parse_typed_wrong_type)
{
    char spec[160];
    sshflow_hostauth *a = NULL;

    snprintf(spec, sizeof(spec), "ecdsa-sha2-nistp256:%s", fp_b64(&K1));
    a = parse_ok(spec);
    ck_assert_int_eq(chk(a, "h", 22, &K1), SF_ERR_HOSTKEY);
    ASSERT_DETAIL_HAS("ecdsa-sha2-nistp256");
    ASSERT_DETAIL_HAS("ssh-ed25519");
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_hostauth_parse_blob_good)
{
    const struct tkey *keys[] = { &K1, &E1, &E3, &R1 };
    char unpadded[4096];
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        sshflow_hostauth *a = parse_ok(keys[i]->b64);

        ck_assert_int_eq(chk(a, "h", 22, keys[i]), 0);
        ck_assert_int_eq(chk(a, "h", 22, &K2), SF_ERR_HOSTKEY);
        ASSERT_DETAIL_HAS(K2.fp);
        sshflow_hostauth_free(a);

        /* Without its '=' padding too. */
        snprintf(unpadded, sizeof(unpadded), "%s", keys[i]->b64);
        while (strlen(unpadded) > 0 && unpadded[strlen(unpadded) - 1] == '=') {
            unpadded[strlen(unpadded) - 1] = '\0';
        }
        a = parse_ok(unpadded);
        ck_assert_int_eq(chk(a, "h", 22, keys[i]), 0);
        sshflow_hostauth_free(a);
    }
    /* E1's base64 has padding, so the unpadded case above was a real one. */
    ck_assert_int_eq(E1.b64[strlen(E1.b64) - 1], '=');
}
END_TEST

/* Append "string" (u32 length || bytes) to p at *off. */
static void
put_str(uint8_t *p, size_t *off, const void *s, size_t n)
{
    sf_store_be32(p + *off, (uint32_t)n);
    memcpy(p + *off + 4, s, n);
    *off += 4 + n;
}

static void
parse_bad_blob(const uint8_t *blob, size_t len)
{
    char b64[1024];

    ck_assert_int_eq(sf_base64_encode(blob, len, true, b64, sizeof(b64)), 0);
    parse_bad(b64);
}

START_TEST(test_hostauth_parse_malformed)
{
    static const char *bad[] = {
        "",
        "SHA256:",
        "SHA256:AAAA",
        "SHA256:!!!!",
        ":AAAA",
        "ssh-ed25519:",
        "ssh-dss:AAAA",
        "AAAA",
        "AAAAB3NzaC1yc2E=",            /* string "ssh-rsa" and nothing else */
        "AAAAC3NzaC1lZDI1NTE5",        /* string "ssh-ed25519", no key */
        "Zm9vYmFy",                    /* "foobar" */
        "not base64 at all",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5",
    };
    char spec[8300];
    uint8_t blob[256];
    uint8_t key[65];
    size_t off = 0;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parse_bad(bad[i]);
    }
    parse_bad(NULL);

    /* Fingerprints: unknown type, wrong padding, one character too many, whitespace. */
    snprintf(spec, sizeof(spec), "ssh-dss:%s", fp_b64(&K1));
    parse_bad(spec);
    ASSERT_DETAIL_HAS("unknown key type");
    snprintf(spec, sizeof(spec), "sha512:%s", fp_b64(&K1));
    parse_bad(spec);
    snprintf(spec, sizeof(spec), "%s==", K1.fp);
    parse_bad(spec);
    snprintf(spec, sizeof(spec), "%sA", K1.fp);
    parse_bad(spec);
    snprintf(spec, sizeof(spec), "%sAAAA", K1.fp);
    parse_bad(spec);
    snprintf(spec, sizeof(spec), " %s", K1.fp);
    parse_bad(spec);
    snprintf(spec, sizeof(spec), "%s\n", K1.fp);
    parse_bad(spec);
    snprintf(spec, sizeof(spec), "%s", K1.fp);
    spec[10] = '*';
    parse_bad(spec);
    /* A fingerprint's base64 is not a key, and a key line is not a key. */
    parse_bad(fp_b64(&K1));
    parse_bad(K1.entry);
    snprintf(spec, sizeof(spec), "%s\n", K1.b64);
    parse_bad(spec);
    /* Too long. */
    memset(spec, 'A', 8200);
    spec[8200] = '\0';
    parse_bad(spec);

    /* Blobs: trailing byte, short key, long key, unknown type, wrong curve, bad point. */
    memset(key, 0x04, sizeof(key));
    memcpy(blob, K1.blob, K1.len);
    blob[K1.len] = 0;
    parse_bad_blob(blob, K1.len + 1);
    off = 0;
    put_str(blob, &off, "ssh-ed25519", 11);
    put_str(blob, &off, key, 31);
    parse_bad_blob(blob, off);
    off = 0;
    put_str(blob, &off, "ssh-ed25519", 11);
    put_str(blob, &off, key, 33);
    parse_bad_blob(blob, off);
    off = 0;
    put_str(blob, &off, "ssh-dss", 7);
    put_str(blob, &off, key, 32);
    parse_bad_blob(blob, off);
    off = 0;
    put_str(blob, &off, "ecdsa-sha2-nistp256", 19);
    put_str(blob, &off, "nistp384", 8);
    put_str(blob, &off, key, 65);
    parse_bad_blob(blob, off);
    off = 0;
    put_str(blob, &off, "ecdsa-sha2-nistp256", 19);
    put_str(blob, &off, "nistp256", 8);
    key[0] = 0x02; /* compressed points are not SSH's encoding */
    put_str(blob, &off, key, 65);
    parse_bad_blob(blob, off);
    /* RSA modulus under 1024 bits. */
    off = 0;
    put_str(blob, &off, "ssh-rsa", 7);
    put_str(blob, &off, "\x01\x00\x01", 3);
    key[0] = 0x7f;
    put_str(blob, &off, key, 64);
    parse_bad_blob(blob, off);
}
END_TEST

/* Oversize length fields inside a base64 blob. */
START_TEST(test_hostauth_parse_oversize)
{
    uint8_t blob[64];
    size_t off = 0;

    put_str(blob, &off, "ssh-ed25519", 11);
    sf_store_be32(blob + off, 0xffffffffu);
    off += 4;
    memset(blob + off, 'k', 32);
    off += 32;
    parse_bad_blob(blob, off);

    sf_store_be32(blob, 0x7fffffffu);
    parse_bad_blob(blob, 16);
}
END_TEST

/* Every proper prefix of "SHA256:<43 chars>" is refused. */
START_TEST(test_hostauth_parse_sha256_truncated)
{
    char spec[128];

    ck_assert_uint_eq(strlen(K1.fp), 50);
    snprintf(spec, sizeof(spec), "%.*s", _i, K1.fp);
    parse_bad(spec);
}
END_TEST

/* Every proper prefix of "ssh-ed25519:<43 chars>" is refused. */
START_TEST(test_hostauth_parse_typed_truncated)
{
    char full[128];
    char spec[128];

    snprintf(full, sizeof(full), "ssh-ed25519:%s", fp_b64(&E1));
    ck_assert_uint_eq(strlen(full), 55);
    snprintf(spec, sizeof(spec), "%.*s", _i, full);
    parse_bad(spec);
}
END_TEST

/*
 * Every proper prefix of a key's base64 is refused, for each key type (up
 * to the unpadded form, which is the same key and accepted).
 */
START_TEST(test_hostauth_parse_blob_truncated)
{
    const struct tkey *keys[] = { &K1, &E1, &E3, &R1 };
    char spec[4096];
    size_t i;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        size_t full = strcspn(keys[i]->b64, "=");

        ck_assert_uint_lt(full, 256); /* the loop covers every prefix */
        if ((size_t)_i >= full) {
            continue;
        }
        snprintf(spec, sizeof(spec), "%.*s", _i, keys[i]->b64);
        parse_bad(spec);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* known_hosts: strict                                                      */
/* ------------------------------------------------------------------------ */

START_TEST(test_known_hosts_strict_accept)
{
    sshflow_hostauth *a = NULL;

    write_kh("host1 %s\n[127.0.0.1]:2222 %s\n", K1.entry, K2.entry);
    a = kh_strict();
    ck_assert(sf_hostauth_needs_host(a));
    ck_assert_int_eq(chk(a, "host1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "HOST1", 22, &K1), 0); /* names compare case-insensitively */
    ck_assert_int_eq(chk(a, "host1", 0, &K1), 0);  /* port 0 is 22 */
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K2), 0);
    ck_assert_int_eq(chk(a, "127.0.0.1", 22, &K2), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "host1", 2222, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "127.0.0.1", 2223, &K2), SF_ERR_HOSTKEY_UNKNOWN);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_strict_unknown)
{
    sshflow_hostauth *a = kh_strict();
    struct stat st;

    /* No file at all: empty, and strict does not create it. */
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_HOSTKEY);
    ck_assert_int_ne(stat(khpath, &st), 0);

    write_kh("host1 %s\n", K1.entry);
    ck_assert_int_eq(chk(a, "host2", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ASSERT_DETAIL_HAS("host2");
    ASSERT_DETAIL_HAS(K1.fp);
    ASSERT_DETAIL_HAS(khpath);
    ASSERT_DETAIL_HAS("ssh-keyscan");
    ASSERT_DETAIL_HAS("accept-new");
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ASSERT_DETAIL_HAS("[127.0.0.1]:2222");
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_strict_changed)
{
    sshflow_hostauth *a = NULL;

    write_kh("# first\n\nhost1 %s\nhost2 %s\n", K2.entry, K1.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY_CHANGED);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_HOSTKEY);
    ASSERT_DETAIL_HAS("line 3 of ");
    ASSERT_DETAIL_HAS(khpath);
    ASSERT_DETAIL_HAS(K1.fp);
    ASSERT_DETAIL_HAS("REMOTE HOST IDENTIFICATION HAS CHANGED");
    ASSERT_DETAIL_HAS("host1");
    ck_assert_int_eq(chk(a, "host2", 22, &K1), 0);
    sshflow_hostauth_free(a);

    /* accept-new refuses a changed key too, and leaves the file alone. */
    size_t before = 0;
    size_t after = 0;
    char *t0 = read_file(khpath, &before);
    a = kh_accept_new();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY_CHANGED);
    char *t1 = read_file(khpath, &after);
    ck_assert_str_eq(t0, t1);
    free(t0);
    free(t1);
    sshflow_hostauth_free(a);
}
END_TEST

/* Known only with other key types: refused (even by accept-new), naming the known types. */
START_TEST(test_known_hosts_other_type)
{
    sshflow_hostauth *a = NULL;
    char *t0 = NULL;
    char *t1 = NULL;

    write_kh("# c\nhost1 %s\nhost1 %s\n", E1.entry, E3.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("UNKNOWN");
    ASSERT_DETAIL_HAS("ssh-ed25519");
    ASSERT_DETAIL_HAS("ecdsa-sha2-nistp256,ecdsa-sha2-nistp384");
    ASSERT_DETAIL_HAS("line 2 of ");
    ASSERT_DETAIL_HAS(khpath);
    ASSERT_DETAIL_HAS(K1.fp);
    sshflow_hostauth_free(a);

    t0 = read_file(khpath, NULL);
    a = kh_accept_new();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY_CHANGED);
    t1 = read_file(khpath, NULL);
    ck_assert_str_eq(t0, t1);
    free(t0);
    free(t1);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_comma_list)
{
    sshflow_hostauth *a = NULL;

    write_kh("alpha,Beta,[gamma]:2200,10.0.0.1 %s\n", K1.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "alpha", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "beta", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "gamma", 2200, &K1), 0);
    ck_assert_int_eq(chk(a, "10.0.0.1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "gamma", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "alph", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "alphaa", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "10.0.0.10", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "beta", 22, &K2), SF_ERR_HOSTKEY_CHANGED);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_wildcards)
{
    sshflow_hostauth *a = NULL;

    write_kh("*.example.com %s\nhost? %s\n[*.test]:* %s\n10.1.*.? %s\n", K1.entry, K2.entry,
             E1.entry, E3.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "x.example.com", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "A.B.Example.COM", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "example.com", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "x.example.com.evil", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "host1", 22, &K2), 0);
    ck_assert_int_eq(chk(a, "host12", 22, &K2), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "host", 22, &K2), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "a.test", 2222, &E1), 0);
    ck_assert_int_eq(chk(a, "a.test", 22, &E1), SF_ERR_HOSTKEY_UNKNOWN);
    ck_assert_int_eq(chk(a, "10.1.200.7", 22, &E3), 0);
    ck_assert_int_eq(chk(a, "10.1.200.77", 22, &E3), SF_ERR_HOSTKEY_UNKNOWN);
    /* x.example.com is known with K1: K3 is a changed key. */
    ck_assert_int_eq(chk(a, "x.example.com", 22, &K3), SF_ERR_HOSTKEY_CHANGED);
    sshflow_hostauth_free(a);
}
END_TEST

/* A pattern that takes exponential time in a naive backtracking matcher. */
START_TEST(test_known_hosts_wildcard_pathological)
{
    char host[1100];
    sshflow_hostauth *a = NULL;

    memset(host, 'a', 1000);
    host[1000] = '\0';
    write_kh("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b,?*?*?*?*?*?*?*?*?*?*?*c %s\n",
             K1.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, host, 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    host[999] = 'b';
    ck_assert_int_eq(chk(a, host, 22, &K1), 0);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_negation)
{
    sshflow_hostauth *a = NULL;

    write_kh("*.example.com,!bad.example.com %s\n"
             "bad.example.com %s\n"
             "!good.test,*.test %s\n",
             K1.entry, K2.entry, E1.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "good.example.com", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "bad.example.com", 22, &K1), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("line 2 of ");
    ck_assert_int_eq(chk(a, "BAD.example.com", 22, &K2), 0);
    ck_assert_int_eq(chk(a, "other.test", 22, &E1), 0);
    ck_assert_int_eq(chk(a, "good.test", 22, &E1), SF_ERR_HOSTKEY_UNKNOWN);
    sshflow_hostauth_free(a);
}
END_TEST

/* Hashed names made by the real ssh-keygen -H; we must find what ssh-keygen -F finds. */
START_TEST(test_known_hosts_hashed)
{
    static const struct {
        const char *name; /* as ssh-keygen -F takes it */
        const char *host;
        uint16_t port;
        bool known;
    } cases[] = {
        { "host1", "host1", 22, true },
        { "[127.0.0.1]:2222", "127.0.0.1", 2222, true },
        { "alpha", "alpha", 22, true },
        { "beta", "beta", 22, true },
        { "gamma", "gamma", 22, false },
        { "127.0.0.1", "127.0.0.1", 22, false },
        { "[host1]:2222", "host1", 2222, false },
        { "host", "host", 22, false },
    };
    char *argv[] = { SSH_KEYGEN, "-H", "-f", khpath, NULL };
    char types[128];
    char *text = NULL;
    sshflow_hostauth *a = NULL;
    size_t i;

    write_kh("host1 %s\n[127.0.0.1]:2222 %s\nAlpha,beta %s\n", K1.entry, K2.entry, E1.entry);
    ck_assert_int_eq(run(argv, NULL, 0), 0);
    text = read_file(khpath, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "|1|"));
    ck_assert_ptr_null(strstr(text, "host1"));
    ck_assert_ptr_null(strstr(text, "127.0.0.1"));
    free(text);

    a = kh_strict();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int found = keygen_find(cases[i].name, NULL, 0);

        ck_assert_msg(found == (cases[i].known ? 0 : 1), "ssh-keygen -F %s gave %d",
                      cases[i].name, found);
        sf_hostauth_known_types(a, cases[i].host, cases[i].port, types, sizeof(types));
        ck_assert_msg((types[0] != '\0') == cases[i].known, "%s: types \"%s\"", cases[i].name,
                      types);
    }
    ck_assert_int_eq(chk(a, "host1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "Host1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K2), 0);
    ck_assert_int_eq(chk(a, "alpha", 22, &E1), 0);
    ck_assert_int_eq(chk(a, "beta", 22, &E1), 0);
    ck_assert_int_eq(chk(a, "host1", 22, &K2), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("line 1 of ");
    ck_assert_int_eq(chk(a, "gamma", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_several_keys)
{
    sshflow_hostauth *a = NULL;

    write_kh("host1 %s\nhost1 %s\nhost1 %s\n", K1.entry, K2.entry, E1.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "host1", 22, &K2), 0);
    ck_assert_int_eq(chk(a, "host1", 22, &E1), 0);
    ck_assert_int_eq(chk(a, "host1", 22, &K3), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("line 1 of ");
    ck_assert_int_eq(chk(a, "host1", 22, &R1), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("UNKNOWN");
    sshflow_hostauth_free(a);
}
END_TEST

/* Comments, blank lines and garbage are skipped, and never count as a known key. */
START_TEST(test_known_hosts_comments_garbage)
{
    static char longline[100 * 1024];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = NULL;
    sshflow_hostauth *a = NULL;

    memset(longline, 'A', sizeof(longline) - 1);
    f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    fprintf(f, "# host1 %s\n", K2.entry);
    fprintf(f, "   # indented comment %s\n", K2.entry);
    fprintf(f, "\n   \t \n");
    fprintf(f, "host1\n");
    fprintf(f, "host1 ssh-ed25519\n");
    fprintf(f, "host1 ssh-ed25519 !!!notbase64!!!\n");
    fprintf(f, "host1 ssh-ed25519 AAAA\n");
    fprintf(f, "host1 ssh-ed25519 %s\n", E1.b64);    /* type says ed25519, blob is ECDSA */
    fprintf(f, "host1 ssh-rsa %s\n", K2.b64);        /* type says rsa, blob is ed25519 */
    fprintf(f, "host1 ssh-ed25519 %s=\n", K2.b64);   /* bad padding */
    fprintf(f, "@bogus host1 %s\n", K2.entry);
    fprintf(f, "@revoked\n");
    fprintf(f, "@revoked host1\n");
    fprintf(f, "|1|garbage|garbage %s\n", K2.entry);
    fprintf(f, "|2|abc|def %s\n", K2.entry);
    fprintf(f, "|1|68vXbWJHSc3JeJYFS1+2i5hQfmQ=|short %s\n", K2.entry);
    fprintf(f, "|1||%s %s\n", "RPIDxK4WMnMnPco6PgdMHO/tYiU=", K2.entry);
    fprintf(f, "host1 1024 35 12345678901234567890\n"); /* SSH1 RSA */
    fprintf(f, "host1 ssh-ed25519 %s\n", longline);
    fprintf(f, "%s\n", longline);
    fputc('\0', f);
    fprintf(f, "host1\x01\xff ssh-ed25519 %s\n", K2.b64);
    fprintf(f, "host1 ssh-ed25519 %.20s\n", K2.b64);
    fprintf(f, "host1 %s comment with spaces\r\n", K1.entry); /* CRLF */
    fprintf(f, "\thost3\t%s", K3.entry);                     /* tabs, no final newline */
    ck_assert_int_eq(fclose(f), 0);
    {
        char dir[128];

        snprintf(dir, sizeof(dir), "%s/.ssh", tdir);
        ck_assert_int_eq(mkdir(dir, 0700), 0);
    }
    write_raw(khpath, buf, len);
    free(buf);

    a = kh_strict();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "host3", 22, &K3), 0);
    /* The only real host1 line is line 24: K2 is a changed key there, not on a garbage line. */
    ck_assert_int_eq(chk(a, "host1", 22, &K2), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("line 24 of ");
    ck_assert_int_eq(chk(a, "host2", 22, &K2), SF_ERR_HOSTKEY_UNKNOWN);
    sshflow_hostauth_free(a);
}
END_TEST

/*
 * Seeded random lines made of known_hosts fragments (fixed seeds, so a
 * failure reproduces): nothing crashes (ASan/valgrind watch), and the one
 * real line at the end is still found.
 */
START_TEST(test_known_hosts_random_garbage)
{
    const char *frags[] = {
        "host1", " ", "\t", ",", "!", "*", "?", "[", "]", ":2222", "|1|", "|", "@revoked ",
        "@cert-authority ", "#", "\r", "\n", "=", "ssh-ed25519", "ssh-rsa", "AAAA", "\0", "\xff",
        K1.b64, K2.entry, E1.entry, "host1 ssh-ed25519 ", "|1|68vXbWJHSc3JeJYFS1+2i5hQfmQ=|",
    };
    static char buf[64 * 1024];
    size_t len = 0;
    uint32_t x = 2463534242u + (uint32_t)_i * 7919u; /* xorshift32 */
    sshflow_hostauth *a = NULL;
    char dir[128];
    char types[128];
    int r;

    while (len < sizeof(buf) - 200) {
        const char *f = NULL;
        size_t n;

        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        f = frags[x % (sizeof(frags) / sizeof(frags[0]))];
        n = f[0] == '\0' ? 1 : strlen(f);
        if (len + n >= sizeof(buf) - 200) {
            break;
        }
        memcpy(buf + len, f, n);
        len += n;
    }
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "\nhost7 %s\n", K3.entry);
    snprintf(dir, sizeof(dir), "%s/.ssh", tdir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    write_raw(khpath, buf, len);

    a = kh_strict();
    ck_assert_int_eq(chk(a, "host7", 22, &K3), 0);
    r = chk(a, "host1", 22, &K2);
    ck_assert(r == 0 || r == SF_ERR_HOSTKEY || r == SF_ERR_HOSTKEY_CHANGED ||
              r == SF_ERR_HOSTKEY_UNKNOWN);
    r = chk(a, "127.0.0.1", 2222, &K1);
    ck_assert(r == 0 || r == SF_ERR_HOSTKEY || r == SF_ERR_HOSTKEY_CHANGED ||
              r == SF_ERR_HOSTKEY_UNKNOWN);
    sf_hostauth_known_types(a, "host1", 22, types, sizeof(types));
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_revoked)
{
    sshflow_hostauth *a = NULL;
    char *t0 = NULL;
    char *t1 = NULL;

    write_kh("@revoked * %s\nhost1 %s\nhost2 %s\n@revoked hostx %s\n", K1.entry, K1.entry,
             K2.entry, K3.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_HOSTKEY);
    ASSERT_DETAIL_HAS("revoked");
    ASSERT_DETAIL_HAS("line 1 of ");
    ASSERT_DETAIL_HAS(K1.fp);
    ck_assert_int_eq(chk(a, "host2", 22, &K1), SF_ERR_HOSTKEY);
    ASSERT_DETAIL_HAS("revoked");
    ck_assert_int_eq(chk(a, "host2", 22, &K2), 0);
    sshflow_hostauth_free(a);

    /* accept-new does not add a revoked key; a revocation for another host does not apply. */
    t0 = read_file(khpath, NULL);
    a = kh_accept_new();
    ck_assert_int_eq(chk(a, "host9", 22, &K1), SF_ERR_HOSTKEY);
    t1 = read_file(khpath, NULL);
    ck_assert_str_eq(t0, t1);
    free(t1);
    ck_assert_int_eq(chk(a, "hosty", 22, &K3), 0);
    t1 = read_file(khpath, NULL);
    ck_assert_uint_eq(count_lines(t1), count_lines(t0) + 1);
    free(t0);
    free(t1);
    sshflow_hostauth_free(a);
}
END_TEST

/*
 * A CA key is not a host key: an @cert-authority line vouches for host
 * certificates only (check_cert.c tests those), never for the plain key, and
 * accept-new still adds the plain key. Its host patterns apply as usual.
 */
START_TEST(test_known_hosts_cert_authority_plain_key)
{
    sshflow_hostauth *a = NULL;
    char types[512];
    char *text = NULL;

    write_kh("@cert-authority *,!host2 %s\n@cert-authority\n", K1.entry);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    sf_hostauth_known_types(a, "host1", 22, types, sizeof(types));
    ck_assert_msg(strncmp(types, "ssh-ed25519-cert-v01@openssh.com,", 33) == 0, "%s", types);
    ck_assert_ptr_nonnull(strstr(types, "rsa-sha2-512-cert-v01@openssh.com"));
    sf_hostauth_known_types(a, "host2", 22, types, sizeof(types));
    ck_assert_str_eq(types, "");
    sshflow_hostauth_free(a);
    a = kh_accept_new();
    ck_assert_int_eq(chk(a, "host1", 22, &K1), 0);
    sshflow_hostauth_free(a);
    text = read_file(khpath, NULL);
    ck_assert_ptr_nonnull(strstr(text, "\nhost1 ssh-ed25519 "));
    free(text);
}
END_TEST

START_TEST(test_known_hosts_default_path)
{
    sshflow_hostauth *a = sshflow_hostauth_known_hosts(NULL, SSHFLOW_HOSTKEY_STRICT);
    char path[4096];
    char want[4096];
    struct passwd *pw = NULL;

    ck_assert_ptr_nonnull(a);
    write_kh("host1 %s\n", K1.entry);
    ck_assert_int_eq(chk(a, "host1", 22, &K1), 0);
    ck_assert_int_eq(chk(a, "host1", 22, &K2), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS(khpath);
    sshflow_hostauth_free(a);

    ck_assert_int_eq(sf_knownhosts_path(NULL, path, sizeof(path)), 0);
    ck_assert_str_eq(path, khpath);
    ck_assert_int_eq(sf_knownhosts_path("/x/y", path, sizeof(path)), 0);
    ck_assert_str_eq(path, "/x/y");
    ck_assert_int_eq(sf_knownhosts_path("", path, sizeof(path)), SF_ERR_INVALID);
    ck_assert_int_eq(sf_knownhosts_path("/x/y", path, 4), SF_ERR_INVALID);
    /* HOME unset: the passwd entry (read only; nothing is written there). */
    ck_assert_int_eq(unsetenv("HOME"), 0);
    pw = getpwuid(getuid());
    if (pw != NULL && pw->pw_dir != NULL && pw->pw_dir[0] != '\0') {
        snprintf(want, sizeof(want), "%s/.ssh/known_hosts", pw->pw_dir);
        ck_assert_int_eq(sf_knownhosts_path(NULL, path, sizeof(path)), 0);
        ck_assert_str_eq(path, want);
    }
    ck_assert_int_eq(setenv("HOME", tdir, 1), 0);
}
END_TEST

START_TEST(test_known_hosts_unreadable)
{
    sshflow_hostauth *a = sshflow_hostauth_known_hosts(tdir, SSHFLOW_HOSTKEY_STRICT);

    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_FILE);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_FILE);
    ck_assert_int_eq(E.sys_errno, EISDIR);
    ASSERT_DETAIL_HAS(tdir);
    sshflow_hostauth_free(a);

    /* /dev/null is a common "no known hosts" choice: empty. */
    a = sshflow_hostauth_known_hosts("/dev/null", SSHFLOW_HOSTKEY_STRICT);
    ck_assert_int_eq(chk(a, "host1", 22, &K1), SF_ERR_HOSTKEY_UNKNOWN);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_no_host)
{
    sshflow_hostauth *a = kh_accept_new();
    struct stat st;

    ck_assert_int_eq(chk(a, NULL, 22, &K1), SF_ERR_HOSTKEY);
    ASSERT_DETAIL_HAS("HostName");
    ck_assert_int_ne(stat(khpath, &st), 0);
    ck_assert_int_eq(chk(a, "", 22, &K1), SF_ERR_INVALID);
    ck_assert_int_ne(stat(khpath, &st), 0);
    sshflow_hostauth_free(a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* known_hosts: accept-new                                                  */
/* ------------------------------------------------------------------------ */

START_TEST(test_known_hosts_accept_new_creates)
{
    sshflow_hostauth *a = sshflow_hostauth_known_hosts(NULL, SSHFLOW_HOSTKEY_ACCEPT_NEW);
    sshflow_hostauth *s = NULL;
    char want[4300];
    char out[8192];
    char dir[128];
    char *text = NULL;
    struct stat st;

    ck_assert_ptr_nonnull(a);
    snprintf(dir, sizeof(dir), "%s/.ssh", tdir);
    ck_assert_int_ne(stat(dir, &st), 0);
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K1), 0);
    ck_assert_int_eq(E.kind, 0);
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    ck_assert_int_eq(stat(khpath, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    text = read_file(khpath, NULL);
    snprintf(want, sizeof(want), "[127.0.0.1]:2222 %s\n", K1.entry);
    ck_assert_str_eq(text, want);
    free(text);

    /* The real ssh-keygen finds it. */
    ck_assert_int_eq(keygen_find("[127.0.0.1]:2222", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, K1.b64));

    /* Second time: accepted, nothing appended. */
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K1), 0);
    text = read_file(khpath, NULL);
    ck_assert_str_eq(text, want);
    free(text);
    /* Now known: another key is a changed one. */
    ck_assert_int_eq(chk(a, "127.0.0.1", 2222, &K2), SF_ERR_HOSTKEY_CHANGED);
    ASSERT_DETAIL_HAS("line 1 of ");

    /* Port 22: the plain name, lower-cased. */
    ck_assert_int_eq(chk(a, "Example.COM", 22, &E1), 0);
    ck_assert_int_eq(keygen_find("example.com", out, sizeof(out)), 0);
    ck_assert_ptr_nonnull(strstr(out, E1.b64));
    ck_assert_int_eq(keygen_find("[example.com]:22", NULL, 0), 1);

    s = kh_strict();
    ck_assert_int_eq(chk(s, "127.0.0.1", 2222, &K1), 0);
    ck_assert_int_eq(chk(s, "example.com", 22, &E1), 0);
    sshflow_hostauth_free(s);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_known_hosts_accept_new_no_newline)
{
    sshflow_hostauth *a = NULL;
    char want[9000];
    char *text = NULL;

    write_kh("hosta %s", K2.entry);
    a = kh_accept_new();
    ck_assert_int_eq(chk(a, "hostb", 22, &K1), 0);
    text = read_file(khpath, NULL);
    snprintf(want, sizeof(want), "hosta %s\nhostb %s\n", K2.entry, K1.entry);
    ck_assert_str_eq(text, want);
    free(text);
    sshflow_hostauth_free(a);
    a = kh_strict();
    ck_assert_int_eq(chk(a, "hosta", 22, &K2), 0);
    ck_assert_int_eq(chk(a, "hostb", 22, &K1), 0);
    sshflow_hostauth_free(a);
}
END_TEST

/* Names that would change the meaning of a known_hosts line are never written. */
START_TEST(test_known_hosts_accept_new_bad_host)
{
    static const char *bad[] = {
        "evil host", "a,b", "x*", "h?", "!h", "[h]", "|1|x", "#h", "@revoked", "h\nx", "h\tx",
    };
    sshflow_hostauth *a = kh_accept_new();
    struct stat st;
    size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(chk(a, bad[i], 22, &K1), SF_ERR_INVALID);
        ck_assert_int_eq(E.kind, SSHFLOW_ERR_INVALID);
    }
    ck_assert_int_ne(stat(khpath, &st), 0);
    sshflow_hostauth_free(a);
}
END_TEST

#define RACE_PROCS 8
#define RACE_HOSTS 16

/* Several processes appending at once leave one well-formed line per host. */
START_TEST(test_known_hosts_accept_new_concurrent)
{
    pid_t pids[RACE_PROCS];
    int gate[2];
    char *text = NULL;
    char *line = NULL;
    char *save = NULL;
    char want[4300];
    unsigned seen[RACE_PROCS][RACE_HOSTS];
    unsigned shared = 0;
    size_t nlines = 0;
    sshflow_hostauth *a = NULL;
    int i;
    int j;

    memset(seen, 0, sizeof(seen));
    ck_assert_int_eq(pipe(gate), 0);
    for (i = 0; i < RACE_PROCS; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            sshflow_hostauth *c = sshflow_hostauth_known_hosts(khpath, SSHFLOW_HOSTKEY_ACCEPT_NEW);
            char host[32];
            char b;
            int bad = 0;

            close(gate[1]);
            (void)!read(gate[0], &b, 1); /* wait until the parent opens the gate */
            for (j = 0; j < RACE_HOSTS; j++) {
                snprintf(host, sizeof(host), "h%d-%d", i, j);
                bad |= sf_hostauth_check(c, host, 2222, K1.blob, K1.len, NULL) != 0;
                bad |= sf_hostauth_check(c, "shared", 22, K2.blob, K2.len, NULL) != 0;
            }
            sshflow_hostauth_free(c);
            _exit(bad);
        }
    }
    close(gate[0]);
    close(gate[1]); /* all children start now */
    for (i = 0; i < RACE_PROCS; i++) {
        int st = 0;

        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }

    text = read_file(khpath, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(count_lines(text), RACE_PROCS * RACE_HOSTS + 1);
    ck_assert(text[strlen(text) - 1] == '\n');
    for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        nlines++;
        if (sscanf(line, "[h%d-%d]:2222 ", &i, &j) == 2) {
            ck_assert(i >= 0 && i < RACE_PROCS && j >= 0 && j < RACE_HOSTS);
            snprintf(want, sizeof(want), "[h%d-%d]:2222 %s", i, j, K1.entry);
            ck_assert_str_eq(line, want);
            seen[i][j]++;
            continue;
        }
        snprintf(want, sizeof(want), "shared %s", K2.entry);
        ck_assert_msg(strcmp(line, want) == 0, "bad line: %s", line);
        shared++;
    }
    ck_assert_uint_eq(nlines, RACE_PROCS * RACE_HOSTS + 1);
    ck_assert_uint_eq(shared, 1);
    for (i = 0; i < RACE_PROCS; i++) {
        for (j = 0; j < RACE_HOSTS; j++) {
            ck_assert_uint_eq(seen[i][j], 1);
        }
    }
    free(text);

    a = kh_strict();
    ck_assert_int_eq(chk(a, "h3-7", 2222, &K1), 0);
    ck_assert_int_eq(chk(a, "shared", 22, &K2), 0);
    sshflow_hostauth_free(a);
}
END_TEST

/* Out of memory at every allocation: a clean error, and never a torn file. */
START_TEST(test_known_hosts_accept_new_alloc_failure)
{
    sshflow_hostauth *a = NULL;
    unsigned long n;
    bool succeeded = false;

    for (n = 1; n < 40 && !succeeded; n++) {
        int r;

        a = kh_accept_new();
        sf_alloc_fail_after(n);
        r = chk(a, "127.0.0.1", 2222, &K1);
        sf_alloc_fail_after(0);
        ck_assert_msg(r == 0 || r == SF_ERR_NOMEM, "n=%lu r=%d %s", n, r, E.detail);
        if (r == 0) {
            char want[4300];
            char *text = read_file(khpath, NULL);

            snprintf(want, sizeof(want), "[127.0.0.1]:2222 %s\n", K1.entry);
            ck_assert_str_eq(text, want);
            free(text);
            succeeded = true;
        } else {
            char *text = read_file(khpath, NULL);

            ck_assert(text == NULL || text[0] == '\0');
            free(text);
        }
        sshflow_hostauth_free(a);
    }
    ck_assert(succeeded);
}
END_TEST

START_TEST(test_hostauth_parse_alloc_failure)
{
    unsigned long n;
    bool succeeded = false;

    for (n = 1; n < 20 && !succeeded; n++) {
        sshflow_hostauth *a = NULL;

        memset(&E, 0, sizeof(E));
        sf_alloc_fail_after(n);
        a = sshflow_hostauth_parse(E1.b64, &E);
        sf_alloc_fail_after(0);
        if (a != NULL) {
            succeeded = true;
            ck_assert_int_eq(chk(a, "h", 22, &E1), 0);
            sshflow_hostauth_free(a);
        } else {
            ck_assert_int_eq(E.kind, SSHFLOW_ERR_NOMEM);
        }
    }
    ck_assert(succeeded);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Known key types                                                          */
/* ------------------------------------------------------------------------ */

START_TEST(test_hostauth_known_types_file)
{
    sshflow_hostauth *a = NULL;
    char types[128];

    write_kh("host1 %s\n"
             "host1,other %s\n"
             "host1 %s\n"
             "other %s\n"
             "@revoked host1 %s\n"
             "@cert-authority host9 %s\n"
             "[host1]:2222 %s\n",
             K1.entry, E1.entry, K2.entry, R1.entry, E3.entry, R1.entry, E3.entry);
    a = kh_strict();
    sf_hostauth_known_types(a, "host1", 22, types, sizeof(types));
    ck_assert_str_eq(types, "ssh-ed25519,ecdsa-sha2-nistp256");
    sf_hostauth_known_types(a, "HOST1", 22, types, sizeof(types));
    ck_assert_str_eq(types, "ssh-ed25519,ecdsa-sha2-nistp256");
    sf_hostauth_known_types(a, "host1", 2222, types, sizeof(types));
    ck_assert_str_eq(types, "ecdsa-sha2-nistp384");
    sf_hostauth_known_types(a, "other", 22, types, sizeof(types));
    ck_assert_str_eq(types, "ecdsa-sha2-nistp256,ssh-rsa");
    sf_hostauth_known_types(a, "nohost", 22, types, sizeof(types));
    ck_assert_str_eq(types, "");
    sf_hostauth_known_types(a, NULL, 22, types, sizeof(types));
    ck_assert_str_eq(types, "");

    /* Truncated at a name boundary. */
    sf_hostauth_known_types(a, "host1", 22, types, 12);
    ck_assert_str_eq(types, "ssh-ed25519");
    sf_hostauth_known_types(a, "host1", 22, types, 31);
    ck_assert_str_eq(types, "ssh-ed25519");
    sf_hostauth_known_types(a, "host1", 22, types, 32);
    ck_assert_str_eq(types, "ssh-ed25519,ecdsa-sha2-nistp256");
    sf_hostauth_known_types(a, "host1", 22, types, 11);
    ck_assert_str_eq(types, "");
    types[0] = 'x';
    sf_hostauth_known_types(a, "host1", 22, types, 0); /* nothing written */
    ck_assert_int_eq(types[0], 'x');
    sshflow_hostauth_free(a);

    /* No file. */
    a = sshflow_hostauth_known_hosts("/nonexistent/known_hosts", SSHFLOW_HOSTKEY_STRICT);
    sf_hostauth_known_types(a, "host1", 22, types, sizeof(types));
    ck_assert_str_eq(types, "");
    sshflow_hostauth_free(a);
}
END_TEST

static bool
cb_yes(void *user, const char *host, uint16_t port, const char *keytype, const uint8_t *blob,
       size_t bloblen, const char *fingerprint)
{
    (void)user;
    (void)host;
    (void)port;
    (void)keytype;
    (void)blob;
    (void)bloblen;
    (void)fingerprint;
    return true;
}

START_TEST(test_hostauth_known_types_other_kinds)
{
    char spec[160];
    char types[64];
    sshflow_hostauth *a = NULL;

    snprintf(spec, sizeof(spec), "ed25519:%s", fp_b64(&K1));
    a = parse_ok(spec);
    sf_hostauth_known_types(a, "h", 22, types, sizeof(types));
    ck_assert_str_eq(types, "ssh-ed25519");
    sf_hostauth_known_types(a, "h", 22, types, 5);
    ck_assert_str_eq(types, "");
    sshflow_hostauth_free(a);

    a = parse_ok(E1.b64);
    sf_hostauth_known_types(a, "h", 22, types, sizeof(types));
    ck_assert_str_eq(types, "ecdsa-sha2-nistp256");
    sshflow_hostauth_free(a);

    a = parse_ok(K1.fp);
    sf_hostauth_known_types(a, "h", 22, types, sizeof(types));
    ck_assert_str_eq(types, "");
    sshflow_hostauth_free(a);

    a = sshflow_hostauth_callback(cb_yes, NULL);
    sf_hostauth_known_types(a, "h", 22, types, sizeof(types));
    ck_assert_str_eq(types, "");
    ck_assert(!sf_hostauth_needs_host(a));
    sshflow_hostauth_free(a);

    a = sshflow_hostauth_insecure_accept_any();
    sf_hostauth_known_types(a, "h", 22, types, sizeof(types));
    ck_assert_str_eq(types, "");
    sshflow_hostauth_free(a);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Callback, insecure, arguments                                            */
/* ------------------------------------------------------------------------ */

struct cb_rec {
    bool answer;
    int calls;
    char host[64];
    bool host_null;
    uint16_t port;
    char keytype[64];
    uint8_t blob[3072];
    size_t bloblen;
    char fp[80];
};

static bool
cb_record(void *user, const char *host, uint16_t port, const char *keytype, const uint8_t *blob,
          size_t bloblen, const char *fingerprint)
{
    struct cb_rec *r = user;

    r->calls++;
    r->host_null = host == NULL;
    snprintf(r->host, sizeof(r->host), "%s", host != NULL ? host : "");
    r->port = port;
    snprintf(r->keytype, sizeof(r->keytype), "%s", keytype);
    r->bloblen = SF_MIN(bloblen, sizeof(r->blob));
    memcpy(r->blob, blob, r->bloblen);
    snprintf(r->fp, sizeof(r->fp), "%s", fingerprint);
    return r->answer;
}

START_TEST(test_hostauth_callback)
{
    struct cb_rec rec;
    sshflow_hostauth *a = NULL;

    memset(&rec, 0, sizeof(rec));
    ck_assert_ptr_null(sshflow_hostauth_callback(NULL, &rec));
    a = sshflow_hostauth_callback(cb_record, &rec);
    ck_assert_ptr_nonnull(a);

    rec.answer = true;
    ck_assert_int_eq(chk(a, "server.example", 2200, &E1), 0);
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_str_eq(rec.host, "server.example");
    ck_assert_uint_eq(rec.port, 2200);
    ck_assert_str_eq(rec.keytype, "ecdsa-sha2-nistp256");
    ck_assert_uint_eq(rec.bloblen, E1.len);
    ck_assert_mem_eq(rec.blob, E1.blob, E1.len);
    ck_assert_str_eq(rec.fp, E1.fp);

    rec.answer = false;
    ck_assert_int_eq(chk(a, NULL, 22, &K1), SF_ERR_HOSTKEY);
    ck_assert_int_eq(rec.calls, 2);
    ck_assert(rec.host_null);
    ck_assert_str_eq(rec.keytype, "ssh-ed25519");
    ASSERT_DETAIL_HAS("callback");
    ASSERT_DETAIL_HAS(K1.fp);
    sshflow_hostauth_free(a);
}
END_TEST

#define INSECURE_WARNING "WARNING: sshflow: host key NOT checked (insecure_accept_any): "

START_TEST(test_hostauth_insecure_warns)
{
    sshflow_hostauth *a = sshflow_hostauth_insecure_accept_any();
    char path[128];
    char want[160];
    char *text = NULL;
    int saved = -1;
    int fd = -1;

    ck_assert_ptr_nonnull(a);
    ck_assert(!sf_hostauth_needs_host(a));
    snprintf(path, sizeof(path), "%s/stderr", tdir);
    fflush(stderr);
    saved = dup(2);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    dup2(fd, 2);
    close(fd);
    ck_assert_int_eq(chk(a, NULL, 0, &K1), 0);
    ck_assert_int_eq(chk(a, "h", 22, &E1), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    text = read_file(path, NULL);
    ck_assert_ptr_nonnull(text);
    snprintf(want, sizeof(want), "%s%s\n", INSECURE_WARNING, K1.fp);
    ck_assert_ptr_nonnull(strstr(text, want));
    snprintf(want, sizeof(want), "%s%s\n", INSECURE_WARNING, E1.fp);
    ck_assert_ptr_nonnull(strstr(text, want));
    free(text);
    sshflow_hostauth_free(a);
}
END_TEST

START_TEST(test_hostauth_check_bad_args)
{
    sshflow_hostauth *a = sshflow_hostauth_callback(cb_yes, NULL);
    static const uint8_t notype[] = { 0, 0, 0, 50, 's', 's', 'h' };
    static const uint8_t emptytype[] = { 0, 0, 0, 0 };
    static const uint8_t nultype[] = { 0, 0, 0, 3, 'a', 0, 'b' };

    memset(&E, 0, sizeof(E));
    ck_assert_int_eq(sf_hostauth_check(NULL, "h", 22, K1.blob, K1.len, &E), SF_ERR_INVALID);
    ck_assert_int_eq(E.kind, SSHFLOW_ERR_INVALID);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, NULL, 0, &E), SF_ERR_INVALID);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, notype, sizeof(notype), &E), SF_ERR_INVALID);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, emptytype, sizeof(emptytype), &E),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, nultype, sizeof(nultype), &E), SF_ERR_INVALID);
    ck_assert_int_eq(sf_hostauth_check(a, "h", 22, K1.blob, K1.len, NULL), 0);
    sshflow_hostauth_free(a);

    ck_assert_ptr_null(sshflow_hostauth_known_hosts(khpath, (enum sshflow_hostkey_policy)7));
    sshflow_hostauth_free(NULL);
    ck_assert(!sf_hostauth_needs_host(NULL));
}
END_TEST

/* ------------------------------------------------------------------------ */

static Suite *
hostauth_suite(void)
{
    Suite *s = suite_create("hostauth");
    TCase *tc = tcase_create("parse");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_fingerprint_sha256_matches_ssh_keygen);
    tcase_add_test(tc, test_hostauth_parse_sha256_good);
    tcase_add_test(tc, test_hostauth_parse_typed_good);
    tcase_add_test(tc, test_hostauth_parse_typed_wrong_type);
    tcase_add_test(tc, test_hostauth_parse_blob_good);
    tcase_add_test(tc, test_hostauth_parse_malformed);
    tcase_add_test(tc, test_hostauth_parse_oversize);
    tcase_add_loop_test(tc, test_hostauth_parse_sha256_truncated, 0, 50);
    tcase_add_loop_test(tc, test_hostauth_parse_typed_truncated, 0, 55);
    tcase_add_loop_test(tc, test_hostauth_parse_blob_truncated, 0, 256);
    tcase_add_test(tc, test_hostauth_parse_alloc_failure);
    suite_add_tcase(s, tc);

    tc = tcase_create("known_hosts");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_known_hosts_strict_accept);
    tcase_add_test(tc, test_known_hosts_strict_unknown);
    tcase_add_test(tc, test_known_hosts_strict_changed);
    tcase_add_test(tc, test_known_hosts_other_type);
    tcase_add_test(tc, test_known_hosts_comma_list);
    tcase_add_test(tc, test_known_hosts_wildcards);
    tcase_add_test(tc, test_known_hosts_wildcard_pathological);
    tcase_add_test(tc, test_known_hosts_negation);
    tcase_add_test(tc, test_known_hosts_hashed);
    tcase_add_test(tc, test_known_hosts_several_keys);
    tcase_add_test(tc, test_known_hosts_comments_garbage);
    tcase_add_loop_test(tc, test_known_hosts_random_garbage, 0, 16);
    tcase_add_test(tc, test_known_hosts_revoked);
    tcase_add_test(tc, test_known_hosts_cert_authority_plain_key);
    tcase_add_test(tc, test_known_hosts_default_path);
    tcase_add_test(tc, test_known_hosts_unreadable);
    tcase_add_test(tc, test_known_hosts_no_host);
    tcase_add_test(tc, test_known_hosts_accept_new_creates);
    tcase_add_test(tc, test_known_hosts_accept_new_no_newline);
    tcase_add_test(tc, test_known_hosts_accept_new_bad_host);
    tcase_add_test(tc, test_known_hosts_accept_new_concurrent);
    tcase_add_test(tc, test_known_hosts_accept_new_alloc_failure);
    tcase_add_test(tc, test_hostauth_known_types_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("others");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_hostauth_known_types_other_kinds);
    tcase_add_test(tc, test_hostauth_callback);
    tcase_add_test(tc, test_hostauth_insecure_warns);
    tcase_add_test(tc, test_hostauth_check_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = NULL;
    int failed;

    main_pid = getpid();
    atexit(cleanup_at_exit);
    snprintf(rootdir, sizeof(rootdir), "/tmp/sf_hostauth.XXXXXX");
    if (mkdtemp(rootdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(keydir, sizeof(keydir), "%s/keys", rootdir);
    if (mkdir(keydir, 0700) != 0) {
        perror("mkdir");
        return 1;
    }
    if (make_key(&K1, "k1", "ed25519", "256") != 0 || make_key(&K2, "k2", "ed25519", "256") != 0 ||
        make_key(&K3, "k3", "ed25519", "256") != 0 || make_key(&E1, "e1", "ecdsa", "256") != 0 ||
        make_key(&E3, "e3", "ecdsa", "384") != 0 || make_key(&R1, "r1", "rsa", "1024") != 0) {
        fprintf(stderr, "check_hostauth: cannot make keys with %s\n", SSH_KEYGEN);
        return 1;
    }
    sr = srunner_create(hostauth_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
