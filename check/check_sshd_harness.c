/*
 * check/check_sshd_harness.c -- proves the test sshd harness
 * (check/testlib/sshd.c) works, using only the real OpenSSH client: so an
 * interop failure elsewhere points at our client, not at the harness.
 *
 * Owns: tests of sf_test_sshd_*. Must never: use the sshflow library, or
 * reach anything but 127.0.0.1.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sshd.h"

#define SSH_TIMEOUT_MS 30000

/* One extra ssh option: -o Name=value. */
struct ssh_opt {
    const char *name;
    const char *value;
};

/*
 * Run the real ssh client against s as s->user (or `user`), with known_hosts
 * kh and identity key (NULL: no identity, IdentitiesOnly), up to 4 extra -o
 * options, remote command cmd. prefix (may be NULL) is an argv run before ssh, e.g.
 * /usr/bin/env VAR=...; it must end with a NULL.
 */
static int
ssh_run(const struct sf_test_sshd *s, const char *user, const char *kh, const char *key,
        const struct ssh_opt *opts, size_t nopts, char *const *prefix, const char *cmd, char *out,
        size_t outsz, char *err, size_t errsz)
{
    char port[16], khopt[400], idopt[400], o[4][256], dest[128];
    char *argv[64];
    int a = 0;

    snprintf(port, sizeof(port), "%u", (unsigned) s->port);
    snprintf(khopt, sizeof(khopt), "UserKnownHostsFile=%s", kh);
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", user != NULL ? user : s->user);
    while (prefix != NULL && *prefix != NULL) {
        argv[a++] = *prefix++;
    }
    argv[a++] = (char *) SF_TEST_SSH_PATH;
    argv[a++] = (char *) "-F";
    argv[a++] = (char *) "/dev/null";
    argv[a++] = (char *) "-o";
    argv[a++] = khopt;
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "GlobalKnownHostsFile=/dev/null";
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "StrictHostKeyChecking=yes";
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "UpdateHostKeys=no";
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) (prefix != NULL ? "BatchMode=no" : "BatchMode=yes");
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "IdentitiesOnly=yes";
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "ConnectTimeout=20";
    if (key != NULL) {
        snprintf(idopt, sizeof(idopt), "IdentityFile=%s", key);
        argv[a++] = (char *) "-o";
        argv[a++] = idopt;
    } else {
        argv[a++] = (char *) "-o";
        argv[a++] = (char *) "PubkeyAuthentication=no";
    }
    for (size_t i = 0; i < nopts && i < 4; i++) {
        snprintf(o[i], sizeof(o[i]), "%s=%s", opts[i].name, opts[i].value);
        argv[a++] = (char *) "-o";
        argv[a++] = o[i];
    }
    argv[a++] = (char *) "-p";
    argv[a++] = port;
    argv[a++] = dest;
    argv[a++] = (char *) cmd;
    argv[a] = NULL;
    return sf_test_run(argv, NULL, out, outsz, err, errsz, SSH_TIMEOUT_MS);
}

/* Read one line (up to '\n') from fd within timeout_ms; returns its length or -1. */
static int
read_line(int fd, char *buf, size_t bufsz, int timeout_ms)
{
    size_t len = 0;

    buf[0] = '\0';
    while (len + 1 < bufsz) {
        struct pollfd p = { fd, POLLIN, 0 };
        ssize_t n;

        if (poll(&p, 1, timeout_ms) <= 0) {
            return -1;
        }
        n = read(fd, buf + len, 1);
        if (n <= 0) {
            return -1;
        }
        len++;
        buf[len] = '\0';
        if (buf[len - 1] == '\n') {
            return (int) len;
        }
    }
    return (int) len;
}

static bool
is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- start, exec, stop ---- */

START_TEST(test_sshd_start_exec)
{
    struct sf_test_sshd s;
    char out[256], err[4096], dir[256];
    pid_t pid;
    int rc;

    ck_assert_int_eq(sf_test_sshd_start(&s, NULL), 0);
    ck_assert_int_gt(s.pid, 0);
    ck_assert_uint_gt(s.port, 0);
    ck_assert_ptr_nonnull(s.user);
    ck_assert(is_dir(s.dir));
    rc = ssh_run(&s, NULL, s.known_hosts, s.userkey_ed25519, NULL, 0, NULL, "echo hi; exit 3", out,
                 sizeof(out), err, sizeof(err));
    if (rc != 3) {
        fprintf(stderr, "ssh stderr: %s\n", err);
    }
    ck_assert_int_eq(rc, 3);
    ck_assert_str_eq(out, "hi\n");

    pid = s.pid;
    snprintf(dir, sizeof(dir), "%s", s.dir);
    sf_test_sshd_stop(&s);
    ck_assert_int_eq(s.pid, 0);
    ck_assert(!is_dir(dir));
    /* reaped: the pid is no longer ours */
    ck_assert_int_eq(kill(pid, 0), -1);
    sf_test_sshd_stop(&s); /* safe twice */
}
END_TEST

/* Each authorized key type logs in; the unauthorized key is refused. */
START_TEST(test_sshd_start_userkeys)
{
    struct sf_test_sshd s;
    const char *keys[3];
    char out[256], err[4096];
    int rc;

    ck_assert_int_eq(sf_test_sshd_start(&s, NULL), 0);
    keys[0] = s.userkey_ed25519;
    keys[1] = s.userkey_ecdsa;
    keys[2] = s.userkey_rsa;
    for (int i = 0; i < 3; i++) {
        rc = ssh_run(&s, NULL, s.known_hosts, keys[i], NULL, 0, NULL, "echo ok", out, sizeof(out), err,
                     sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "key %s: ssh stderr: %s\n", keys[i], err);
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_str_eq(out, "ok\n");
    }
    rc = ssh_run(&s, NULL, s.known_hosts, s.userkey_unauth, NULL, 0, NULL, "echo ok", out, sizeof(out),
                 err, sizeof(err));
    ck_assert_int_eq(rc, 255);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(strstr(err, "Permission denied"));
    sf_test_sshd_stop(&s);
}
END_TEST

/* ---- algorithms: one shared server (started in the unchecked fixture) ---- */

static struct sf_test_sshd shared;

static void
shared_setup(void)
{
    if (sf_test_sshd_start(&shared, NULL) != 0) {
        fprintf(stderr, "shared sshd did not start\n");
    }
}

static void
shared_teardown(void)
{
    sf_test_sshd_stop(&shared);
}

static const struct ssh_opt algs[] = {
    { "KexAlgorithms", "curve25519-sha256" },
    { "KexAlgorithms", "curve25519-sha256@libssh.org" },
    { "KexAlgorithms", "ecdh-sha2-nistp256" },
    { "KexAlgorithms", "ecdh-sha2-nistp384" },
    { "KexAlgorithms", "ecdh-sha2-nistp521" },
    { "KexAlgorithms", "diffie-hellman-group14-sha256" },
    { "KexAlgorithms", "diffie-hellman-group16-sha512" },
    { "KexAlgorithms", "sntrup761x25519-sha512@openssh.com" },
    { "Ciphers", "chacha20-poly1305@openssh.com" },
    { "Ciphers", "aes128-gcm@openssh.com" },
    { "Ciphers", "aes256-gcm@openssh.com" },
    { "Ciphers", "aes128-ctr" },
    { "Ciphers", "aes192-ctr" },
    { "Ciphers", "aes256-ctr" },
    { "MACs", "hmac-sha2-256-etm@openssh.com" },
    { "MACs", "hmac-sha2-512-etm@openssh.com" },
    { "MACs", "hmac-sha2-256" },
    { "MACs", "hmac-sha2-512" },
    { "HostKeyAlgorithms", "ssh-ed25519" },
    { "HostKeyAlgorithms", "ecdsa-sha2-nistp256" },
    { "HostKeyAlgorithms", "ecdsa-sha2-nistp384" },
    { "HostKeyAlgorithms", "rsa-sha2-512" },
    { "HostKeyAlgorithms", "rsa-sha2-256" },
};

START_TEST(test_sshd_algorithms_each)
{
    /* A MAC is negotiated only with a non-AEAD cipher: force one alongside. */
    struct ssh_opt opts[2] = { algs[_i], { "Ciphers", "aes128-ctr" } };
    size_t nopts = strcmp(algs[_i].name, "MACs") == 0 ? 2 : 1;
    char out[256], err[4096];
    int rc;

    ck_assert_int_gt(shared.pid, 0);
    rc = ssh_run(&shared, NULL, shared.known_hosts, shared.userkey_ed25519, opts, nopts, NULL,
                 "echo ok", out, sizeof(out), err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s=%s: ssh stderr: %s\n", algs[_i].name, algs[_i].value, err);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, "ok\n");
}
END_TEST

/* ---- host key rotation ---- */

START_TEST(test_sshd_rotate_hostkeys_refused)
{
    struct sf_test_sshd s;
    char out[256], err[8192];
    uint16_t port;
    int rc;

    ck_assert_int_eq(sf_test_sshd_start(&s, NULL), 0);
    port = s.port;
    rc = ssh_run(&s, NULL, s.known_hosts, s.userkey_ed25519, NULL, 0, NULL, "echo before", out, sizeof(out),
                 err, sizeof(err));
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, "before\n");

    ck_assert_int_eq(sf_test_sshd_rotate_hostkeys(&s), 0);
    ck_assert_uint_eq(s.port, port);
    ck_assert_int_gt(s.pid, 0);
    rc = ssh_run(&s, NULL, s.known_hosts, s.userkey_ed25519, NULL, 0, NULL, "echo after", out, sizeof(out),
                 err, sizeof(err));
    ck_assert_int_eq(rc, 255);
    ck_assert_str_eq(out, "");
    ck_assert_ptr_nonnull(strstr(err, "REMOTE HOST IDENTIFICATION HAS CHANGED"));

    /* The new keys are published in known_hosts_current. */
    rc = ssh_run(&s, NULL, s.known_hosts_current, s.userkey_ed25519, NULL, 0, NULL, "echo after", out,
                 sizeof(out), err, sizeof(err));
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, "after\n");
    sf_test_sshd_stop(&s);
}
END_TEST

/* ---- inetd mode ---- */

START_TEST(test_sshd_inetd_banner)
{
    struct sf_test_sshd s;
    char line[512];
    int to = -1, from = -1;
    pid_t pid;

    ck_assert_int_eq(sf_test_sshd_start(&s, NULL), 0);
    pid = sf_test_sshd_inetd(&s, &to, &from);
    ck_assert_int_gt(pid, 0);
    ck_assert_int_ge(to, 0);
    ck_assert_int_ge(from, 0);
    ck_assert_int_gt(read_line(from, line, sizeof(line), 10000), 0);
    ck_assert_msg(strncmp(line, "SSH-2.0-", 8) == 0, "banner: %s", line);
    ck_assert_ptr_nonnull(strstr(line, "\r\n"));
    /* Our banner, then EOF: sshd must give up and exit by itself. */
    ck_assert_int_eq(write(to, "SSH-2.0-harness\r\n", 17), 17);
    close(to);
    close(from);
    ck_assert_int_ge(sf_test_wait(pid, 10000), 0);
    sf_test_sshd_stop(&s);
}
END_TEST

/* ---- kill_all ends established sessions ---- */

START_TEST(test_sshd_kill_all_mid_session)
{
    struct sf_test_sshd s;
    char port[16], kh[400], id[400], dest[128], line[128], dir[256];
    char *argv[32];
    int a = 0, from = -1, rc;
    pid_t ssh, sshd;

    ck_assert_int_eq(sf_test_sshd_start(&s, NULL), 0);
    snprintf(port, sizeof(port), "%u", (unsigned) s.port);
    snprintf(kh, sizeof(kh), "UserKnownHostsFile=%s", s.known_hosts);
    snprintf(id, sizeof(id), "IdentityFile=%s", s.userkey_ed25519);
    snprintf(dest, sizeof(dest), "%s@127.0.0.1", s.user);
    argv[a++] = (char *) SF_TEST_SSH_PATH;
    argv[a++] = (char *) "-F";
    argv[a++] = (char *) "/dev/null";
    argv[a++] = (char *) "-o";
    argv[a++] = kh;
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "StrictHostKeyChecking=yes";
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "BatchMode=yes";
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "IdentitiesOnly=yes";
    argv[a++] = (char *) "-o";
    argv[a++] = id;
    argv[a++] = (char *) "-o";
    argv[a++] = (char *) "LogLevel=QUIET";
    argv[a++] = (char *) "-p";
    argv[a++] = port;
    argv[a++] = dest;
    argv[a++] = (char *) "echo ready; exec sleep 60";
    argv[a] = NULL;
    ssh = sf_test_spawn(argv, NULL, &from);
    ck_assert_int_gt(ssh, 0);
    ck_assert_int_gt(read_line(from, line, sizeof(line), 20000), 0);
    ck_assert_str_eq(line, "ready\n");

    sshd = s.pid;
    snprintf(dir, sizeof(dir), "%s", s.dir);
    sf_test_sshd_kill_all(&s);
    ck_assert_int_eq(s.pid, 0);
    ck_assert_int_eq(kill(sshd, 0), -1); /* reaped */
    /* The session died with the server: ssh sees the connection drop. */
    rc = sf_test_wait(ssh, 10000);
    ck_assert_int_eq(rc, 255);
    close(from);
    ck_assert(is_dir(dir)); /* logs stay until stop */
    sf_test_sshd_stop(&s);
    ck_assert(!is_dir(dir));
}
END_TEST

/* ---- extra_config overrides the defaults, Match blocks stay scoped ---- */

START_TEST(test_sshd_start_extra_config)
{
    struct sf_test_sshd s;
    char *argv[] = { (char *) SF_TEST_SSHD_PATH, (char *) "-T", (char *) "-f", NULL, (char *) "-C",
                     (char *) "user=nobody,host=localhost,addr=127.0.0.1", NULL };
    char *argv_root[8];
    char out[65536], err[4096], conn[128];
    int rc;

    ck_assert_int_eq(sf_test_sshd_start(&s, "PasswordAuthentication no\nMaxSessions 3\n"
                                            "Match User nobody\n    MaxSessions 2\n"),
                     0);
    argv[3] = s.config;
    rc = sf_test_run(argv, NULL, out, sizeof(out), err, sizeof(err), 10000);
    ck_assert_msg(rc == 0, "sshd -T: %s", err);
    ck_assert_ptr_nonnull(strstr(out, "\npasswordauthentication no\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nmaxsessions 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "\npermitrootlogin yes\n"));

    memcpy(argv_root, argv, sizeof(argv));
    snprintf(conn, sizeof(conn), "user=%s,host=localhost,addr=127.0.0.1", s.user);
    argv_root[5] = conn;
    rc = sf_test_run(argv_root, NULL, out, sizeof(out), err, sizeof(err), 10000);
    ck_assert_msg(rc == 0, "sshd -T: %s", err);
    ck_assert_ptr_nonnull(strstr(out, "\nmaxsessions 3\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nkexalgorithms "));
    ck_assert_ptr_nonnull(strstr(out, "sntrup761x25519-sha512@openssh.com"));
    sf_test_sshd_stop(&s);
}
END_TEST

/* ---- password login ---- */

START_TEST(test_sshd_password_user_login)
{
    struct sf_test_sshd s;
    char askpass[320], script[128], out[256], err[4096], askenv[400];
    char *prefix[] = { (char *) "/usr/bin/env", askenv, (char *) "SSH_ASKPASS_REQUIRE=force",
                       (char *) "DISPLAY=:0", NULL };
    struct ssh_opt pw = { "PreferredAuthentications", "password" };
    FILE *f;
    int rc;

    if (sf_test_password_user() != 0) {
        fprintf(stderr, "test_sshd_password_user_login: skipped (no password user: not root?)\n");
        return;
    }
    ck_assert_int_eq(sf_test_sshd_start(&s, NULL), 0);
    snprintf(askpass, sizeof(askpass), "%s/askpass.sh", s.dir);
    snprintf(script, sizeof(script), "#!/bin/sh\necho '%s'\n", SF_TEST_PW_PASSWORD);
    f = fopen(askpass, "w");
    ck_assert_ptr_nonnull(f);
    fputs(script, f);
    fclose(f);
    ck_assert_int_eq(chmod(askpass, 0755), 0);
    snprintf(askenv, sizeof(askenv), "SSH_ASKPASS=%s", askpass);

    rc = ssh_run(&s, SF_TEST_PW_USER, s.known_hosts, NULL, &pw, 1, prefix, "id -un", out, sizeof(out),
                 err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ssh stderr: %s\n", err);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(out, SF_TEST_PW_USER "\n");
    sf_test_sshd_stop(&s);
}
END_TEST

/* ---- the process helpers ---- */

START_TEST(test_sshd_run_capture)
{
    char *argv[] = { (char *) "/bin/sh", (char *) "-c",
                     (char *) "read x; echo \"got $x\"; echo oops >&2; exit 5", NULL };
    char *sleeper[] = { (char *) "/bin/sleep", (char *) "30", NULL };
    char out[64], err[64], tiny[4];

    ck_assert_int_eq(sf_test_run(argv, "abc\n", out, sizeof(out), err, sizeof(err), 10000), 5);
    ck_assert_str_eq(out, "got abc\n");
    ck_assert_str_eq(err, "oops\n");
    /* truncated to fit, still terminated */
    ck_assert_int_eq(sf_test_run(argv, "abc\n", tiny, sizeof(tiny), NULL, 0, 10000), 5);
    ck_assert_str_eq(tiny, "got");
    /* bounded: killed after the timeout */
    ck_assert_int_eq(sf_test_run(sleeper, NULL, NULL, 0, NULL, 0, 200), -1);
}
END_TEST

static Suite *
sshd_harness_suite(void)
{
    Suite *s = suite_create("sshd_harness");
    TCase *tc;

    tc = tcase_create("helpers");
    tcase_add_test(tc, test_sshd_run_capture);
    suite_add_tcase(s, tc);

    tc = tcase_create("server");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sshd_start_exec);
    tcase_add_test(tc, test_sshd_start_userkeys);
    tcase_add_test(tc, test_sshd_start_extra_config);
    tcase_add_test(tc, test_sshd_rotate_hostkeys_refused);
    tcase_add_test(tc, test_sshd_inetd_banner);
    tcase_add_test(tc, test_sshd_kill_all_mid_session);
    tcase_add_test(tc, test_sshd_password_user_login);
    suite_add_tcase(s, tc);

    tc = tcase_create("algorithms");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, shared_setup, shared_teardown);
    tcase_add_loop_test(tc, test_sshd_algorithms_each, 0, (int) (sizeof(algs) / sizeof(algs[0])));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr;
    int failed;

    if (!sf_test_sshd_available()) {
        printf("check_sshd_harness: sshd not usable here (need /usr/sbin/sshd and root); skipped\n");
        return 0;
    }
    if (sf_test_sshd_init() != 0) {
        return 1;
    }
    sr = srunner_create(sshd_harness_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
