/*
 * check/check_cli.c -- tests of the sshflow command-line client
 * (tools/sshflow.c) against a real OpenSSH sshd: -Q, identity files with
 * passphrases asked through SSH_ASKPASS, SSH_ASKPASS_REQUIRE, passwords
 * and keyboard-interactive answers asked the same way,
 * NumberOfPasswordPrompts, IdentityAgent / IdentitiesOnly with a real
 * ssh-agent, CertificateFile, PreferredAuthentications.
 *
 * Owns: running the built `sshflow` binary (found beside this test
 * program) in a clean environment without a controlling terminal (setsid),
 * with HOME pointing at an empty directory so no real ~/.ssh is used.
 * Must never: touch the real ~/.ssh, signal a process it did not start, or
 * wait without a bound.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sshd.h"
#include "sshflow.h"
#include "testutil.h"

#define RUN_MS 60000
#define OUT_MAX 65536

static char cli[4096];     /* the sshflow binary */
static char tdir[256];     /* this program's scratch directory */
static char home[300];     /* an empty HOME */
static char askpass[300];  /* the askpass script */
static char answer[300];   /* what the script answers (first line of this file) */
static char asklog[300];   /* the script appends its argument here */

static void write_file(const char *path, const char *text, mode_t mode)
{
    ck_assert_msg(sf_test_write_file(path, text, strlen(text), mode) == 0, "cannot write %s", path);
}

/* The file's text into out ("" if it does not exist). */
static void read_file(const char *path, char *out, size_t outsz)
{
    (void)sf_test_read_file(path, out, outsz);
}

static int count_lines(const char *path)
{
    char buf[8192];
    int n = 0;
    read_file(path, buf, sizeof(buf));
    for (const char *p = buf; *p != '\0'; p++) {
        n += *p == '\n';
    }
    return n;
}

static void setup_once(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        return;
    }
    self[n] = '\0';
    snprintf(cli, sizeof(cli), "%s/sshflow", dirname(self));
    snprintf(tdir, sizeof(tdir), "/tmp/sf-cli-XXXXXX");
    if (mkdtemp(tdir) == NULL) {
        tdir[0] = '\0';
        return;
    }
    chmod(tdir, 0755);
    snprintf(home, sizeof(home), "%s/home", tdir);
    mkdir(home, 0700);
    snprintf(askpass, sizeof(askpass), "%s/askpass.sh", tdir);
    snprintf(answer, sizeof(answer), "%s/answer", tdir);
    snprintf(asklog, sizeof(asklog), "%s/asklog", tdir);
    char script[1024];
    snprintf(script, sizeof(script),
             "#!/bin/sh\n"
             "printf '%%s\\n' \"$1\" >> %s\n"
             "[ -f %s ] || exit 1\n"
             "head -n 1 %s\n",
             asklog, answer, answer);
    FILE *fp = fopen(askpass, "w");
    if (fp != NULL) {
        fputs(script, fp);
        fclose(fp);
        chmod(askpass, 0755);
    }
}

static void cleanup_once(void)
{
    if (tdir[0] != '\0') {
        char *argv[] = {"/bin/rm", "-rf", tdir, NULL};
        sf_test_run(argv, NULL, NULL, 0, NULL, 0, 10000);
    }
}

/* Set what the askpass script answers (NULL: it declines) and clear its log. */
static void set_answer(const char *text)
{
    unlink(asklog);
    if (text == NULL) {
        unlink(answer);
        return;
    }
    char line[512];
    snprintf(line, sizeof(line), "%s\n", text);
    write_file(answer, line, 0600);
}

/*
 * Run sshflow with args in a clean environment: HOME, PATH, and the extra
 * "NAME=value" strings in env (NULL-terminated, may be NULL), without a
 * terminal. Returns its exit code; stdout/stderr into out/err.
 */
static int run_cli(const char *const *env, const char *const *args, char *out, char *err)
{
    char *argv[64];
    char envhome[400];
    int n = 0;
    snprintf(envhome, sizeof(envhome), "HOME=%s", home);
    argv[n++] = "/usr/bin/env";
    argv[n++] = "-i";
    argv[n++] = envhome;
    argv[n++] = "PATH=/usr/bin:/bin";
    argv[n++] = "USER=root";
    for (int i = 0; env != NULL && env[i] != NULL && n < 40; i++) {
        argv[n++] = (char *)env[i];
    }
    argv[n++] = "/usr/bin/setsid";
    argv[n++] = "-w";
    argv[n++] = cli;
    for (int i = 0; args[i] != NULL && n < 63; i++) {
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    return sf_test_run(argv, NULL, out, OUT_MAX, err, OUT_MAX, RUN_MS);
}

static struct sf_test_sshd srv;
static bool srv_ok;
static char portstr[8];
static char kh_opt[400];

static void start_server(const char *extra)
{
    srv_ok = sf_test_sshd_start(&srv, extra) == 0;
    if (srv_ok) {
        snprintf(portstr, sizeof(portstr), "%u", (unsigned)srv.port);
        snprintf(kh_opt, sizeof(kh_opt), "UserKnownHostsFile=%s", srv.known_hosts);
    }
}

static void srv_setup(void)
{
    start_server(NULL);
}

static void srv_setup_pam(void)
{
    start_server("UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication no\n");
}

static void srv_teardown(void)
{
    sf_test_sshd_stop(&srv);
    srv_ok = false;
}

#define NEED_SERVER()                                                                  \
    do {                                                                               \
        ck_assert_msg(srv_ok, "sshd did not start");                                   \
        ck_assert_msg(access(cli, X_OK) == 0, "no sshflow binary at %s", cli);          \
    } while (0)

static char out[OUT_MAX], errb[OUT_MAX];

/* ---- -Q ---- */

START_TEST(test_cli_query)
{
    ck_assert_msg(access(cli, X_OK) == 0, "no sshflow binary at %s", cli);
    const char *a1[] = {"-Q", "kex", NULL};
    ck_assert_int_eq(run_cli(NULL, a1, out, errb), 0);
    ck_assert_msg(strstr(out, "curve25519-sha256\n") != NULL, "-Q kex: %s", out);
    ck_assert_msg(strchr(out, ',') == NULL, "one name a line: %s", out);
    const char *a2[] = {"-Q", "cipher", NULL};
    ck_assert_int_eq(run_cli(NULL, a2, out, errb), 0);
    ck_assert_msg(strstr(out, "chacha20-poly1305@openssh.com") != NULL, "-Q cipher: %s", out);
    const char *a3[] = {"-Q", "mac", NULL};
    ck_assert_int_eq(run_cli(NULL, a3, out, errb), 0);
    ck_assert_msg(strstr(out, "hmac-sha2-256") != NULL, "-Q mac: %s", out);
    const char *a4[] = {"-Q", "key", NULL};
    ck_assert_int_eq(run_cli(NULL, a4, out, errb), 0);
    ck_assert_msg(strstr(out, "ssh-ed25519") != NULL, "-Q key: %s", out);
    const char *a6[] = {"-Q", "compression", NULL};
    ck_assert_int_eq(run_cli(NULL, a6, out, errb), 0);
    ck_assert_msg(strstr(out, "zlib@openssh.com\n") != NULL && strstr(out, "none\n") != NULL,
                  "-Q compression: %s", out);
    const char *a5[] = {"-Q", "nonsense", NULL};
    ck_assert_int_eq(run_cli(NULL, a5, out, errb), 255);
    ck_assert_msg(strstr(errb, "nonsense") != NULL, "names the bad query: %s", errb);
}
END_TEST

/* ---- passwords through SSH_ASKPASS ---- */

START_TEST(test_cli_askpass_password)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=force", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-l", SF_TEST_PW_USER, "127.0.0.1",
                          "echo", "pw-ok", NULL};
    set_answer(SF_TEST_PW_PASSWORD);
    int rc = run_cli(env, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "pw-ok\n");
    char log[4096];
    read_file(asklog, log, sizeof(log));
    ck_assert_msg(strstr(log, SF_TEST_PW_USER "@127.0.0.1's password:") != NULL, "asked: %s", log);
}
END_TEST

START_TEST(test_cli_askpass_wrong_counts_prompts)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=force", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-o", "NumberOfPasswordPrompts=2",
                          "-l", SF_TEST_PW_USER, "127.0.0.1", "true", NULL};
    set_answer("not-the-password");
    int rc = run_cli(env, args, out, errb);
    ck_assert_int_eq(rc, 255);
    ck_assert_int_eq(count_lines(asklog), 2);
    ck_assert_msg(strstr(errb, "password") != NULL, "error names the method: %s", errb);
}
END_TEST

START_TEST(test_cli_askpass_declined)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=force", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-l", SF_TEST_PW_USER, "127.0.0.1", "true", NULL};
    set_answer(NULL); /* the script exits 1: the user cancelled */
    int rc = run_cli(env, args, out, errb);
    ck_assert_int_eq(rc, 255);
    ck_assert_int_eq(count_lines(asklog), 1); /* a cancel is not asked again */
}
END_TEST

START_TEST(test_cli_askpass_never)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    /* A display is set, but "never" forbids askpass, and there is no terminal. */
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=never", "DISPLAY=:0", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-l", SF_TEST_PW_USER, "127.0.0.1", "true", NULL};
    set_answer(SF_TEST_PW_PASSWORD);
    int rc = run_cli(env, args, out, errb);
    ck_assert_int_eq(rc, 255);
    ck_assert_int_eq(count_lines(asklog), 0);
}
END_TEST

START_TEST(test_cli_askpass_display_no_tty)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    /* ssh's default: no terminal and a display -> askpass. */
    const char *env[] = {ap, "DISPLAY=:0", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-l", SF_TEST_PW_USER, "127.0.0.1",
                          "echo", "d-ok", NULL};
    set_answer(SF_TEST_PW_PASSWORD);
    int rc = run_cli(env, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "d-ok\n");
    /* Without a display (and no REQUIRE), there is nobody to ask. */
    const char *env2[] = {ap, NULL};
    set_answer(SF_TEST_PW_PASSWORD);
    rc = run_cli(env2, args, out, errb);
    ck_assert_int_eq(rc, 255);
    ck_assert_int_eq(count_lines(asklog), 0);
}
END_TEST

START_TEST(test_cli_batchmode_never_asks)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=force", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-o", "BatchMode=yes", "-l",
                          SF_TEST_PW_USER, "127.0.0.1", "true", NULL};
    set_answer(SF_TEST_PW_PASSWORD);
    ck_assert_int_eq(run_cli(env, args, out, errb), 255);
    ck_assert_int_eq(count_lines(asklog), 0);
}
END_TEST

/* ---- identity files ---- */

static void keygen(const char *path, const char *type, const char *pass)
{
    char *rmv[] = {"/bin/rm", "-f", (char *)path, NULL};
    sf_test_run(rmv, NULL, NULL, 0, NULL, 0, 5000);
    char pub[400];
    snprintf(pub, sizeof(pub), "%s.pub", path);
    unlink(pub);
    char *argv[] = {SF_TEST_SSH_KEYGEN_PATH, "-q", "-t", (char *)type, "-a", "4", "-N",
                    (char *)pass, "-C", "cli-test", "-f", (char *)path, NULL};
    ck_assert_int_eq(sf_test_run(argv, NULL, NULL, 0, errb, OUT_MAX, 60000), 0);
}

static void authorize(const char *pubpath)
{
    char line[8192];
    read_file(pubpath, line, sizeof(line));
    FILE *fp = fopen(srv.authorized_keys, "a");
    ck_assert_ptr_nonnull(fp);
    fputs(line, fp);
    fclose(fp);
}

START_TEST(test_cli_identity_passphrase_askpass)
{
    NEED_SERVER();
    char key[400], pub[400];
    snprintf(key, sizeof(key), "%s/enc_ed25519", tdir);
    snprintf(pub, sizeof(pub), "%s.pub", key);
    keygen(key, "ed25519", "cli-pass-phrase");
    authorize(pub);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=force", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-i", key, "-o", "PasswordAuthentication=no",
                          "-o", "KbdInteractiveAuthentication=no", "127.0.0.1", "echo", "key-ok", NULL};
    set_answer("cli-pass-phrase");
    int rc = run_cli(env, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "key-ok\n");
    char log[4096];
    read_file(asklog, log, sizeof(log));
    ck_assert_msg(strstr(log, "Enter passphrase for key") != NULL, "asked: %s", log);
    /* Wrong passphrase three times: asked three times, then refused. */
    set_answer("wrong");
    rc = run_cli(env, args, out, errb);
    ck_assert_int_eq(rc, 255);
    ck_assert_int_eq(count_lines(asklog), 3);
}
END_TEST

START_TEST(test_cli_repeated_identities)
{
    NEED_SERVER();
    /* The first -i key is not authorized, the second is: both are tried in order. */
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-i", srv.userkey_unauth, "-i",
                          srv.userkey_ecdsa, "-o", "BatchMode=yes", "-v", "127.0.0.1", "echo", "two-ok", NULL};
    int rc = run_cli(NULL, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "two-ok\n");
    const char *a = strstr(errb, srv.userkey_unauth);
    ck_assert_msg(a != NULL && strstr(a, srv.userkey_ecdsa) != NULL, "both tried in order: %s", errb);
}
END_TEST

START_TEST(test_cli_compression)
{
    NEED_SERVER();
    const char *args[] = {"-C", "-v", "-p", portstr, "-o", kh_opt, "-i", srv.userkey_ed25519, "-o",
                          "BatchMode=yes", "127.0.0.1", "echo", "zip-ok", NULL};
    int rc = run_cli(NULL, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "zip-ok\n");
    ck_assert_msg(strstr(errb, "zlib@openssh.com") != NULL, "-v shows compression: %s", errb);
}
END_TEST

START_TEST(test_cli_preferred_authentications)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    /* With publickey left out, the (authorized) key is not used. */
    const char *env[] = {"SSHFLOW_PASSWORD=wrong-password", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-i", srv.userkey_ed25519, "-o",
                          "PreferredAuthentications=password", "127.0.0.1", "true", NULL};
    ck_assert_int_eq(run_cli(env, args, out, errb), 255);
    const char *args2[] = {"-p", portstr, "-o", kh_opt, "-i", srv.userkey_ed25519, "-o",
                           "PreferredAuthentications=publickey,password", "127.0.0.1", "true", NULL};
    int rc = run_cli(env, args2, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    const char *args3[] = {"-p", portstr, "-o", kh_opt, "-o", "PreferredAuthentications=bogus",
                           "127.0.0.1", "true", NULL};
    ck_assert_int_eq(run_cli(env, args3, out, errb), 255);
    ck_assert_msg(strstr(errb, "bogus") != NULL, "names the method: %s", errb);
}
END_TEST

/* ---- agent ---- */

START_TEST(test_cli_identity_agent)
{
    NEED_SERVER();
    char sock[400], agent_env[450];
    snprintf(sock, sizeof(sock), "%s/agent.sock", tdir);
    unlink(sock);
    char *agv[] = {"/usr/bin/ssh-agent", "-D", "-a", sock, NULL};
    pid_t ag = sf_test_spawn(agv, NULL, NULL);
    ck_assert_int_gt(ag, 0);
    for (int i = 0; i < 500 && access(sock, F_OK) != 0; i++) {
        usleep(10000);
    }
    snprintf(agent_env, sizeof(agent_env), "SSH_AUTH_SOCK=%s", sock);
    char *add[] = {"/usr/bin/env", agent_env, "/usr/bin/ssh-add", "-q", srv.userkey_ed25519, NULL};
    ck_assert_int_eq(sf_test_run(add, NULL, NULL, 0, errb, OUT_MAX, 20000), 0);

    char ia[450];
    snprintf(ia, sizeof(ia), "IdentityAgent=%s", sock);
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-o", ia, "-o", "BatchMode=yes",
                          "127.0.0.1", "echo", "agent-ok", NULL};
    int rc = run_cli(NULL, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "agent-ok\n");
    /* $SSH_AUTH_SOCK is used by default ... */
    const char *env[] = {agent_env, NULL};
    const char *args2[] = {"-p", portstr, "-o", kh_opt, "-o", "BatchMode=yes", "127.0.0.1",
                           "echo", "env-ok", NULL};
    rc = run_cli(env, args2, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    /* ... but not with IdentitiesOnly or IdentityAgent=none. */
    const char *args3[] = {"-p", portstr, "-o", kh_opt, "-o", "BatchMode=yes", "-o",
                           "IdentitiesOnly=yes", "127.0.0.1", "true", NULL};
    ck_assert_int_eq(run_cli(env, args3, out, errb), 255);
    const char *args4[] = {"-p", portstr, "-o", kh_opt, "-o", "BatchMode=yes", "-o",
                           "IdentityAgent=none", "127.0.0.1", "true", NULL};
    ck_assert_int_eq(run_cli(env, args4, out, errb), 255);
    kill(ag, SIGTERM);
    sf_test_wait(ag, 5000);
}
END_TEST

/* ---- keyboard-interactive through PAM ---- */

START_TEST(test_cli_kbdint_askpass)
{
    NEED_SERVER();
    ck_assert_int_eq(sf_test_password_user(), 0);
    char ap[400];
    snprintf(ap, sizeof(ap), "SSH_ASKPASS=%s", askpass);
    const char *env[] = {ap, "SSH_ASKPASS_REQUIRE=force", NULL};
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-l", SF_TEST_PW_USER, "127.0.0.1",
                          "echo", "kbd-ok", NULL};
    set_answer(SF_TEST_PW_PASSWORD);
    int rc = run_cli(env, args, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "kbd-ok\n");
    char log[4096];
    read_file(asklog, log, sizeof(log));
    ck_assert_msg(strstr(log, "assword") != NULL, "PAM's prompt was asked: %s", log);
}
END_TEST

/* ---- sshflow-keygen ---- */

START_TEST(test_cli_keygen_matches_ssh_keygen)
{
    char kg[4200];
    snprintf(kg, sizeof(kg), "%s-keygen", cli);
    ck_assert_msg(access(kg, X_OK) == 0, "no %s", kg);
    static const char *const types[][2] = {{"ed25519", "0"}, {"ecdsa", "521"}, {"rsa", "2048"}};
    for (size_t i = 0; i < 3; i++) {
        char key[400], pub[420], ours[1024], theirs[1024];
        snprintf(key, sizeof(key), "%s/kg_%s", tdir, types[i][0]);
        snprintf(pub, sizeof(pub), "%s.pub", key);
        unlink(key);
        unlink(pub);
        char *gen[] = {kg, "-t", (char *)types[i][0], "-b", (char *)types[i][1], "-C", "kg test",
                       "-N", "kg-pass", "-f", key, NULL};
        ck_assert_int_eq(sf_test_run(gen, NULL, out, OUT_MAX, errb, OUT_MAX, 60000), 0);
        /* ssh-keygen reads our encrypted private key back to the same public key. */
        char *back[] = {SF_TEST_SSH_KEYGEN_PATH, "-y", "-P", "kg-pass", "-f", key, NULL};
        ck_assert_int_eq(sf_test_run(back, NULL, theirs, sizeof(theirs), errb, OUT_MAX, 30000), 0);
        read_file(pub, ours, sizeof(ours));
        ck_assert_msg(strncmp(ours, theirs, strcspn(theirs, " ") + 1 + strcspn(theirs + strcspn(theirs, " ") + 1, " \n")) == 0,
                      "ours %s theirs %s", ours, theirs);
        for (int md5 = 0; md5 < 2; md5++) {
            char *l1[] = {kg, "-l", "-E", md5 ? "md5" : "sha256", "-f", pub, NULL};
            char *l2[] = {SF_TEST_SSH_KEYGEN_PATH, "-l", "-E", md5 ? "md5" : "sha256", "-f", pub, NULL};
            ck_assert_int_eq(sf_test_run(l1, NULL, ours, sizeof(ours), errb, OUT_MAX, 30000), 0);
            ck_assert_int_eq(sf_test_run(l2, NULL, theirs, sizeof(theirs), errb, OUT_MAX, 30000), 0);
            ck_assert_str_eq(ours, theirs);
        }
        /* Never overwrites. */
        ck_assert_int_ne(sf_test_run(gen, NULL, out, OUT_MAX, errb, OUT_MAX, 60000), 0);
    }
}
END_TEST

/* ---- legacy algorithms: refused by default, used when named ---- */

static void srv_setup_legacy(void)
{
    start_server("Ciphers aes128-cbc,aes256-cbc\nMACs hmac-sha1\n");
}

START_TEST(test_cli_legacy_opt_in)
{
    NEED_SERVER();
    const char *args[] = {"-p", portstr, "-o", kh_opt, "-i", srv.userkey_ed25519, "-o",
                          "BatchMode=yes", "127.0.0.1", "echo", "legacy", NULL};
    ck_assert_int_eq(run_cli(NULL, args, out, errb), 255);
    ck_assert_msg(strstr(errb, "cipher") != NULL, "says what is missing: %s", errb);
    const char *args2[] = {"-p", portstr, "-o", kh_opt, "-i", srv.userkey_ed25519, "-o",
                           "BatchMode=yes", "-o", "Ciphers=+aes*-cbc", "-o", "MACs=+hmac-sha1",
                           "127.0.0.1", "echo", "legacy", NULL};
    int rc = run_cli(NULL, args2, out, errb);
    ck_assert_msg(rc == 0, "exit %d, stderr: %s", rc, errb);
    ck_assert_str_eq(out, "legacy\n");
    const char *args3[] = {"-p", portstr, "-o", kh_opt, "-o", "Ciphers=+aes*-cbx", "127.0.0.1",
                           "true", NULL};
    ck_assert_int_eq(run_cli(NULL, args3, out, errb), 255);
    ck_assert_msg(strstr(errb, "aes*-cbx") != NULL, "names the pattern: %s", errb);
}
END_TEST

static Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tq = tcase_create("query");
    tcase_add_test(tq, test_cli_query);
    tcase_add_test(tq, test_cli_keygen_matches_ssh_keygen);
    tcase_set_timeout(tq, 120);
    suite_add_tcase(s, tq);

    TCase *ta = tcase_create("auth");
    tcase_set_timeout(ta, 300);
    tcase_add_unchecked_fixture(ta, srv_setup, srv_teardown);
    tcase_add_test(ta, test_cli_askpass_password);
    tcase_add_test(ta, test_cli_askpass_wrong_counts_prompts);
    tcase_add_test(ta, test_cli_askpass_declined);
    tcase_add_test(ta, test_cli_askpass_never);
    tcase_add_test(ta, test_cli_askpass_display_no_tty);
    tcase_add_test(ta, test_cli_batchmode_never_asks);
    tcase_add_test(ta, test_cli_identity_passphrase_askpass);
    tcase_add_test(ta, test_cli_repeated_identities);
    tcase_add_test(ta, test_cli_preferred_authentications);
    tcase_add_test(ta, test_cli_compression);
    tcase_add_test(ta, test_cli_identity_agent);
    suite_add_tcase(s, ta);

    TCase *tk = tcase_create("pam");
    tcase_set_timeout(tk, 120);
    tcase_add_unchecked_fixture(tk, srv_setup_pam, srv_teardown);
    tcase_add_test(tk, test_cli_kbdint_askpass);
    suite_add_tcase(s, tk);

    TCase *tl = tcase_create("legacy");
    tcase_set_timeout(tl, 120);
    tcase_add_unchecked_fixture(tl, srv_setup_legacy, srv_teardown);
    tcase_add_test(tl, test_cli_legacy_opt_in);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    if (!sf_test_sshd_available()) {
        printf("check_cli: sshd not available, skipped\n");
        return 0;
    }
    setup_once();
    if (tdir[0] == '\0') {
        fprintf(stderr, "check_cli: cannot make a scratch directory\n");
        return 1;
    }
    sf_test_sshd_init();
    SRunner *sr = srunner_create(cli_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cleanup_once();
    return failed == 0 ? 0 : 1;
}
