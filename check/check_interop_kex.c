/*
 * check/check_interop_kex.c -- the key exchange methods against a real
 * OpenSSH sshd (check/testlib/sshd.h): a handshake with each method the
 * installed OpenSSH knows (`ssh -Q kex`) and sshflow supports, exec
 * "echo ok" and its exit status; RFC 4419 group exchange with sshd's own
 * group choice from a small ModuliFile (2048-bit groups, so the client's
 * safe-prime check and sshd's DH stay quick); a client-forced re-key with
 * sntrup761x25519; and "legacy methods are refused unless enabled": a
 * server offering only diffie-hellman-group14-sha1 fails with "no key
 * exchange method in common", naming both lists, and works once the
 * client adds the method with KexAlgorithms +name.
 *
 * Owns: its sshd servers (one per tcase, unchecked fixtures) and a temp
 * dir for the moduli file. Must never: include a src/ header or call an
 * internal function (public API only), reach anything but 127.0.0.1,
 * depend on timing for its verdict (waits are bounded by ConnectTimeout and
 * the tcase timeout), or signal a process it did not start.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sshd.h"
#include "sshflow.h"

#define CONNECT_TIMEOUT "30"
#define TCP_TIMEOUT_MS 10000
#define REKEY_BYTES 3000000 /* with RekeyLimit 1M: a re-key (two, in fact) on the way in */

/* Every method sshflow supports, as OpenSSH names them. */
static const char *const methods[] = {
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
    "diffie-hellman-group14-sha1",
    "diffie-hellman-group1-sha1",
    "diffie-hellman-group-exchange-sha1",
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* ------------------------------------------------------------------------ */
/* What this OpenSSH knows                                                  */
/* ------------------------------------------------------------------------ */

static char ssh_kex[4096]; /* `ssh -Q kex`, "\n"-framed; "" if unknown */

static bool
openssh_knows(const char *name)
{
    char needle[128];

    snprintf(needle, sizeof(needle), "\n%s\n", name);
    return strstr(ssh_kex, needle) != NULL;
}

static void
query_kex(void)
{
    char *argv[] = {(char *)SF_TEST_SSH_PATH, (char *)"-Q", (char *)"kex", NULL};
    size_t n;

    ssh_kex[0] = '\n';
    ssh_kex[1] = '\0';
    if (sf_test_run(argv, NULL, ssh_kex + 1, sizeof(ssh_kex) - 2, NULL, 0, 10000) != 0) {
        ssh_kex[0] = '\0';
        return;
    }
    n = strlen(ssh_kex);
    if (ssh_kex[n - 1] != '\n') {
        ssh_kex[n] = '\n';
        ssh_kex[n + 1] = '\0';
    }
}

/* Comma list of the methods both sshflow and this OpenSSH have, into out. */
static void
common_methods(char *out, size_t outsz)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < N_METHODS; i++) {
        if (openssh_knows(methods[i])) {
            len += (size_t)snprintf(out + len, outsz - len, "%s%s", len > 0 ? "," : "",
                                    methods[i]);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                  */
/* ------------------------------------------------------------------------ */

static struct sf_test_sshd srv;
static bool srv_ok;
static char moduli_dir[64];
static char moduli_path[128];

/*
 * A ModuliFile with the 2048-bit groups of /etc/ssh/moduli: sshd then
 * answers our request (n = 3072) with one of them, a safe prime that is
 * not a known group, so the client's full check runs.
 */
static bool
make_moduli(void)
{
    FILE *in = fopen("/etc/ssh/moduli", "r"), *out = NULL;
    char line[8192];
    int n = 0;

    if (in == NULL) {
        return false;
    }
    snprintf(moduli_dir, sizeof(moduli_dir), "/tmp/sf-kexit-XXXXXX");
    if (mkdtemp(moduli_dir) == NULL) {
        moduli_dir[0] = '\0';
        fclose(in);
        return false;
    }
    chmod(moduli_dir, 0755);
    snprintf(moduli_path, sizeof(moduli_path), "%s/moduli", moduli_dir);
    out = fopen(moduli_path, "w");
    while (out != NULL && fgets(line, sizeof(line), in) != NULL && n < 8) {
        char ts[32], hex[4096];
        int type, tests, tries, size, gen;

        if (line[0] == '#' || sscanf(line, "%31s %d %d %d %d %d %4095s", ts, &type, &tests,
                                     &tries, &size, &gen, hex) != 7) {
            continue;
        }
        if (size == 2047) {
            fputs(line, out);
            n++;
        }
    }
    fclose(in);
    if (out == NULL || fclose(out) != 0 || n == 0) {
        return false;
    }
    chmod(moduli_path, 0644);
    return true;
}

static void
remove_moduli(void)
{
    if (moduli_dir[0] != '\0') {
        (void)unlink(moduli_path);
        (void)rmdir(moduli_dir);
        moduli_dir[0] = '\0';
    }
}

/* sshd offering every method both sides know, with the small moduli file. */
static void
setup_all(void)
{
    char list[2048], extra[3072];

    srv_ok = false;
    query_kex();
    common_methods(list, sizeof(list));
    if (list[0] == '\0' || !make_moduli()) {
        fprintf(stderr, "check_interop_kex: no usable kex list or moduli file\n");
        return;
    }
    snprintf(extra, sizeof(extra), "KexAlgorithms %s\nModuliFile %s\n", list, moduli_path);
    srv_ok = sf_test_sshd_start(&srv, extra) == 0;
    if (!srv_ok) {
        fprintf(stderr, "check_interop_kex: cannot start sshd (%s)\n", extra);
    }
}

/* sshd offering diffie-hellman-group14-sha1 only. */
static void
setup_legacy(void)
{
    srv_ok = sf_test_sshd_start(&srv, "KexAlgorithms diffie-hellman-group14-sha1\n") == 0;
    if (!srv_ok) {
        fprintf(stderr, "check_interop_kex: cannot start the group14-sha1 sshd\n");
    }
}

static void
teardown_srv(void)
{
    sf_test_sshd_stop(&srv);
    remove_moduli();
    srv_ok = false;
}

#define REQUIRE_SRV() ck_assert_msg(srv_ok, "the test sshd did not start (see stderr)")

/* Does sshd's log contain needle? (A line it writes before the client's connection ends.) */
static bool
log_has(const char *path, const char *needle)
{
    static char text[256 * 1024];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return false;
    }
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static const char *
errtxt(const sshflow_error *err)
{
    static __thread char buf[768];

    snprintf(buf, sizeof(buf), "%s (%d): %s", sshflow_err_kind_name(err->kind), err->kind,
             err->detail);
    return buf;
}

/* Connect and run cmd with KexAlgorithms kex (NULL: default) and RekeyLimit rekey. */
static sshflow_flow *
try_exec(const char *cmd, const char *kex, const char *rekey, sshflow_error *err)
{
    sshflow_config *cfg = sshflow_config_new();
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_request *req = sshflow_request_exec(cmd);
    sshflow_hostauth *ha = sshflow_hostauth_known_hosts(srv.known_hosts, SSHFLOW_HOSTKEY_STRICT);
    sshflow_flow *t = NULL, *f = NULL;

    memset(err, 0, sizeof(*err));
    ck_assert(cfg != NULL && cred != NULL && req != NULL && ha != NULL);
    ck_assert_int_eq(sshflow_config_set(cfg, "ConnectTimeout", CONNECT_TIMEOUT, err), 0);
    if (kex != NULL) {
        ck_assert_msg(sshflow_config_set(cfg, "KexAlgorithms", kex, err) == 0, "%s: %s", kex,
                      errtxt(err));
    }
    if (rekey != NULL) {
        ck_assert_int_eq(sshflow_config_set(cfg, "RekeyLimit", rekey, err), 0);
    }
    ck_assert_msg(sshflow_cred_add_keyfile(cred, srv.userkey_ed25519, NULL, err) == 0, "%s",
                  errtxt(err));
    t = sshflow_connect_tcp("127.0.0.1", srv.port, TCP_TIMEOUT_MS, err);
    if (t != NULL) {
        f = sshflow_client_of_flow(t, srv.user, cred, ha, req, cfg, err);
    }
    sshflow_config_free(cfg);
    sshflow_cred_free(cred);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
    return f;
}

/* Read stdout to EOF: up to cap - 1 bytes kept in buf (NUL-terminated); returns the total. */
static size_t
read_all(sshflow_flow *f, char *buf, size_t cap)
{
    sshflow_error err;
    size_t len = 0, total = 0;
    char tmp[65536];

    memset(&err, 0, sizeof(err));
    for (;;) {
        ssize_t n = sshflow_read_into(f, tmp, sizeof(tmp), &err);

        ck_assert_msg(n >= 0, "read failed after %zu bytes: %s", total, errtxt(&err));
        if (n == 0) {
            break;
        }
        if (len + 1 < cap) {
            size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;

            memcpy(buf + len, tmp, take);
            len += take;
        }
        total += (size_t)n;
    }
    buf[len] = '\0';
    return total;
}

static void
close_exit0(sshflow_flow *f)
{
    sshflow_error err;
    sshflow_exit ex;

    memset(&err, 0, sizeof(err));
    ck_assert_msg(sshflow_close(f, &err) == 0, "close: %s", errtxt(&err));
    memset(&ex, 0, sizeof(ex));
    ck_assert_int_eq(sshflow_exit_info(f, &ex), 0);
    ck_assert_int_eq(ex.kind, SSHFLOW_EXIT_STATUS);
    ck_assert_uint_eq(ex.status, 0);
}

static void
expect_kex(sshflow_flow *f, const char *kex)
{
    char desc[512], want[128];

    ck_assert_int_eq(sshflow_describe(f, desc, sizeof(desc)), 0);
    snprintf(want, sizeof(want), "kex=%s ", kex);
    ck_assert_msg(strstr(desc, want) != NULL, "want %s, describe says: %s", kex, desc);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

/* Each method: handshake with only it, exec "echo ok", exit status 0. */
START_TEST(test_interop_kex_method)
{
    const char *name = methods[_i];
    sshflow_error err;
    sshflow_flow *f;
    char out[64];

    REQUIRE_SRV();
    if (!openssh_knows(name)) {
        fprintf(stderr, "check_interop_kex: this OpenSSH has no %s; skipped\n", name);
        return;
    }
    f = try_exec("echo ok", name, NULL, &err);
    ck_assert_msg(f != NULL, "%s: %s", name, errtxt(&err));
    expect_kex(f, name);
    ck_assert_uint_eq(sshflow_kex_count(f), 1);
    ck_assert_uint_eq(read_all(f, out, sizeof(out)), 3);
    ck_assert_str_eq(out, "ok\n");
    close_exit0(f);
    sshflow_free(f);
    if (strstr(name, "group-exchange") != NULL) {
        /* sshd chose from our moduli file, not its built-in (well-known) fallback groups */
        ck_assert_msg(!log_has(srv.log, "using fixed modulus") &&
                          !log_has(srv.log, "no suitable primes"),
                      "sshd did not use %s", moduli_path);
    }
}
END_TEST

/* The default list against this sshd: the first post-quantum method it has. */
START_TEST(test_interop_kex_default)
{
    sshflow_error err;
    sshflow_flow *f;
    char out[64];
    const char *want = openssh_knows("mlkem768x25519-sha256")    ? "mlkem768x25519-sha256"
                       : openssh_knows("sntrup761x25519-sha512") ? "sntrup761x25519-sha512"
                       : openssh_knows("sntrup761x25519-sha512@openssh.com")
                           ? "sntrup761x25519-sha512@openssh.com"
                           : "curve25519-sha256";

    REQUIRE_SRV();
    f = try_exec("echo ok", NULL, NULL, &err);
    ck_assert_msg(f != NULL, "%s", errtxt(&err));
    expect_kex(f, want);
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    close_exit0(f);
    sshflow_free(f);
}
END_TEST

/*
 * Client-forced re-keys (RekeyLimit 1M) with a post-quantum hybrid and with
 * group exchange: 3 MB in, every byte counted, more than one exchange.
 */
START_TEST(test_interop_kex_rekey)
{
    const char *name = _i == 0 ? "sntrup761x25519-sha512@openssh.com"
                               : "diffie-hellman-group-exchange-sha256";
    sshflow_error err;
    sshflow_flow *f;
    char cmd[64], out[16];
    unsigned k;

    REQUIRE_SRV();
    if (!openssh_knows(name)) {
        fprintf(stderr, "check_interop_kex: this OpenSSH has no %s; skipped\n", name);
        return;
    }
    snprintf(cmd, sizeof(cmd), "head -c %d /dev/zero", REKEY_BYTES);
    f = try_exec(cmd, name, "1M", &err);
    ck_assert_msg(f != NULL, "%s: %s", name, errtxt(&err));
    ck_assert_uint_eq(read_all(f, out, sizeof(out)), REKEY_BYTES);
    close_exit0(f);
    k = sshflow_kex_count(f);
    ck_assert_msg(k >= 2, "kex_count %u after %d bytes with RekeyLimit 1M", k, REKEY_BYTES);
    expect_kex(f, name);
    sshflow_free(f);
}
END_TEST

/*
 * Legacy methods are refused unless enabled: against a server offering
 * only diffie-hellman-group14-sha1 the default fails, naming both lists;
 * "+diffie-hellman-group14-sha1" works.
 */
START_TEST(test_interop_kex_legacy_opt_in)
{
    sshflow_error err;
    sshflow_flow *f;
    char out[64];

    REQUIRE_SRV();
    f = try_exec("echo ok", NULL, NULL, &err);
    ck_assert_msg(f == NULL, "the default list negotiated with a group14-sha1-only server");
    ck_assert_msg(err.kind == SSHFLOW_ERR_PROTOCOL, "%s", errtxt(&err));
    ck_assert_msg(strstr(err.detail, "no key exchange method in common") != NULL, "%s",
                  err.detail);
    ck_assert_msg(strstr(err.detail, "diffie-hellman-group14-sha1") != NULL, "theirs: %s",
                  err.detail);
    ck_assert_msg(strstr(err.detail, "curve25519-sha256") != NULL, "ours: %s", err.detail);

    f = try_exec("echo ok", "+diffie-hellman-group14-sha1", NULL, &err);
    ck_assert_msg(f != NULL, "%s", errtxt(&err));
    expect_kex(f, "diffie-hellman-group14-sha1");
    read_all(f, out, sizeof(out));
    ck_assert_str_eq(out, "ok\n");
    close_exit0(f);
    sshflow_free(f);
}
END_TEST

static Suite *
interop_kex_suite(void)
{
    Suite *s = suite_create("interop_kex");
    TCase *tc = tcase_create("methods");

    tcase_add_unchecked_fixture(tc, setup_all, teardown_srv);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_interop_kex_method, 0, (int)N_METHODS);
    tcase_add_test(tc, test_interop_kex_default);
    tcase_add_loop_test(tc, test_interop_kex_rekey, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("legacy");
    tcase_add_unchecked_fixture(tc, setup_legacy, teardown_srv);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_interop_kex_legacy_opt_in);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    if (!sf_test_sshd_available()) {
        printf("check_interop_kex: sshd not available (or SSHFLOW_SKIP_INTEROP set); skipped\n");
        return EXIT_SUCCESS;
    }
    if (sf_test_sshd_init() != 0) {
        fprintf(stderr, "check_interop_kex: cannot make the test keys\n");
        return EXIT_FAILURE;
    }
    query_kex();
    sr = srunner_create(interop_kex_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
