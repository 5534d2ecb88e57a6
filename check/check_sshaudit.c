/*
 * check/check_sshaudit.c -- ssh-audit's client audit of the sshflow CLI
 * with its default configuration.
 *
 * Owns: one run of `ssh-audit -c` (Debian's ssh-audit listens for a client
 * and reports on the algorithms it offers), one run of the built `sshflow`
 * CLI against it (`sshflow -p PORT -o ConnectTimeout=10 127.0.0.1 true`;
 * it cannot authenticate, ssh-audit hangs up after the KEXINIT), parsing the
 * report, and comparing every [fail] and [warn] in it with the findings
 * docs/ssh-audit.md explains. A finding that is not explained there fails
 * the test; so does a run that produced no report.
 *
 * ssh-audit binds 0.0.0.0 and ::, so the test first moves itself into a
 * private network namespace with only a loopback interface (when the kernel
 * lets it; otherwise ssh-audit listens on all interfaces for the few
 * seconds the test takes). The CLI runs with HOME set to a scratch
 * directory, so no real ~/.ssh is read.
 *
 * Must never: reach anything but 127.0.0.1, touch a real ~/.ssh, wait
 * without a bound, or signal a process it did not start.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sshd.h"
#include "testutil.h"

#define SSH_AUDIT_PATH "/usr/bin/ssh-audit"
#define AUDIT_TIMEOUT "20"        /* seconds ssh-audit waits for a client */
#define LISTEN_WAIT_MS 20000      /* until ssh-audit listens */
#define CLI_TIMEOUT_MS 30000
#define AUDIT_EXIT_MS 30000
#define REPORT_MAX (256 * 1024)
#define DOC_MAX (256 * 1024)
#define FINDINGS_MAX 256

/* Directory of this program (where the build puts the CLI, and our report). */
static void
self_dir(char *out, size_t outsz)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    snprintf(out, outsz, ".");
    if (n <= 0) {
        return;
    }
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash != NULL) {
        *slash = '\0';
        snprintf(out, outsz, "%s", self);
    }
}

/* The sshflow CLI: $SSHFLOW_CLI (ctest sets it), else "sshflow" beside this program. */
static void
cli_path(char *out, size_t outsz)
{
    const char *e = getenv("SSHFLOW_CLI");
    char dir[PATH_MAX];

    if (e != NULL && e[0] == '/') {
        snprintf(out, outsz, "%s", e);
        return;
    }
    self_dir(dir, sizeof(dir));
    snprintf(out, outsz, "%.*s/sshflow", (int) (outsz - 9), dir);
}

/* docs/ssh-audit.md: $SSHFLOW_SOURCE_DIR, else relative to this source file. */
static void
doc_path(char *out, size_t outsz)
{
    const char *e = getenv("SSHFLOW_SOURCE_DIR");
    char *slash;

    if (e != NULL && e[0] == '/') {
        snprintf(out, outsz, "%s/docs/ssh-audit.md", e);
        return;
    }
    snprintf(out, outsz, "%s", __FILE__); /* .../check/check_sshaudit.c */
    slash = strrchr(out, '/');
    if (slash != NULL) {
        *slash = '\0';
        slash = strrchr(out, '/');
    }
    if (slash == NULL) {
        snprintf(out, outsz, "docs/ssh-audit.md");
        return;
    }
    *slash = '\0';
    strncat(out, "/docs/ssh-audit.md", outsz - strlen(out) - 1);
}

/*
 * A private network namespace with loopback up, so ssh-audit's 0.0.0.0/::
 * listener is reachable from nowhere else. False if the kernel refuses.
 */
static bool
private_network(char *why, size_t whysz)
{
    struct ifreq ifr;
    int fd;

    if (unshare(CLONE_NEWNET) != 0) {
        snprintf(why, whysz, "unshare(CLONE_NEWNET): %s", strerror(errno));
        return false;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, whysz, "socket: %s", strerror(errno));
        return false;
    }
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
        snprintf(why, whysz, "SIOCGIFFLAGS lo: %s", strerror(errno));
        close(fd);
        return false;
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
        snprintf(why, whysz, "SIOCSIFFLAGS lo: %s", strerror(errno));
        close(fd);
        return false;
    }
    close(fd);
    return true;
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static int
free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *) &sa, &len) == 0) {
        port = ntohs(sa.sin_port);
    }
    close(fd);
    return port;
}

/*
 * True once something listens on the port (IPv4): /proc/net/tcp, state 0A.
 * A connection would be taken by ssh-audit as the client to audit, so we
 * look instead of knocking.
 */
static bool
port_listening(int port)
{
    static char text[REPORT_MAX];
    const char *p = text;

    if (sf_test_read_file("/proc/net/tcp", text, sizeof(text)) <= 0) {
        return false;
    }
    /* "  0: 00000000:1F90 00000000:0000 0A ...": local port, state 0A = LISTEN */
    while (*p != '\0') {
        unsigned lport = 0, state = 0;

        if (sscanf(p, " %*d: %*x:%x %*x:%*x %x", &lport, &state) == 2 && (int) lport == port &&
            state == 0x0A) {
            return true;
        }
        p += strcspn(p, "\n");
        if (*p == '\n') {
            p++;
        }
    }
    return false;
}

/* Read fd to its end (bounded) into buf (NUL-terminated). */
static void
read_all(int fd, char *buf, size_t cap, int timeout_ms)
{
    long long deadline = sf_test_now_ms() + timeout_ms;
    size_t off = 0;

    buf[0] = '\0';
    while (off + 1 < cap) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        long long left = deadline - sf_test_now_ms();
        ssize_t n;

        if (left <= 0 || poll(&pfd, 1, (int) left) <= 0) {
            break;
        }
        n = read(fd, buf + off, cap - 1 - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        off += (size_t) n;
    }
    buf[off] = '\0';
}

/* ------------------------------------------------------------------------ */
/* The report                                                               */
/* ------------------------------------------------------------------------ */

struct finding {
    char cls[16];   /* "kex", "key", "enc", "mac", ... */
    char alg[128];
    char level[8];  /* "fail" or "warn" */
    char text[160];
};

static void
trim(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    while (s[0] == ' ' || s[0] == '\t') {
        memmove(s, s + 1, strlen(s));
    }
}

/*
 * Every [fail] and [warn] of ssh-audit's text report (colours off). Lines:
 *   "(kex) ecdh-sha2-nistp256   -- [fail] using weak elliptic curves"
 *   "                           `- [info] available since ..."
 */
static size_t
parse_report(const char *report, struct finding *out, size_t max)
{
    char cls[16] = "", alg[128] = "";
    size_t n = 0;
    const char *p = report;

    while (*p != '\0') {
        size_t len = strcspn(p, "\n");
        char line[512];
        const char *lv;

        snprintf(line, sizeof(line), "%.*s", (int) (len < sizeof(line) ? len : sizeof(line) - 1), p);
        p += len;
        if (*p == '\n') {
            p++;
        }
        if (line[0] == '(') {
            char *close = strchr(line, ')');
            char *dash;

            cls[0] = alg[0] = '\0';
            if (close == NULL) {
                continue;
            }
            snprintf(cls, sizeof(cls), "%.*s", (int) (close - line - 1), line + 1);
            dash = strstr(close, " -- ");
            snprintf(alg, sizeof(alg), "%.*s",
                     (int) (dash != NULL ? (size_t) (dash - close - 1) : strlen(close + 1)), close + 1);
            trim(alg);
        } else if (strstr(line, "`- [") == NULL) {
            cls[0] = alg[0] = '\0'; /* a continuation belongs to the line right above */
            continue;
        }
        lv = strstr(line, "[fail] ");
        if (lv == NULL) {
            lv = strstr(line, "[warn] ");
        }
        if (lv == NULL || cls[0] == '\0' || n >= max) {
            continue;
        }
        snprintf(out[n].cls, sizeof(out[n].cls), "%s", cls);
        snprintf(out[n].alg, sizeof(out[n].alg), "%s", alg);
        snprintf(out[n].level, sizeof(out[n].level), "%.4s", lv + 1);
        snprintf(out[n].text, sizeof(out[n].text), "%s", lv + 7);
        trim(out[n].text);
        n++;
    }
    return n;
}

/*
 * Is this finding explained in docs/ssh-audit.md? The doc has a table whose
 * rows are "| class | algorithm | level | ssh-audit's words | why |" with
 * the first four cells in backquotes or plain.
 */
static void
cell(const char **pp, char *out, size_t outsz)
{
    const char *p = *pp;
    size_t n = strcspn(p, "|\n");

    snprintf(out, outsz, "%.*s", (int) (n < outsz ? n : outsz - 1), p);
    trim(out);
    if (out[0] == '`' && strlen(out) >= 2 && out[strlen(out) - 1] == '`') {
        memmove(out, out + 1, strlen(out));
        out[strlen(out) - 1] = '\0';
    }
    *pp = p + n + (p[n] == '|' ? 1 : 0);
}

static bool
explained(const char *doc, const struct finding *f)
{
    const char *p = doc;

    while (*p != '\0') {
        const char *line = p;
        char c[4][192];
        int i;

        p += strcspn(p, "\n");
        if (*p == '\n') {
            p++;
        }
        if (line[0] != '|') {
            continue;
        }
        line++;
        for (i = 0; i < 4; i++) {
            cell(&line, c[i], sizeof(c[i]));
        }
        if (strcmp(c[0], f->cls) == 0 && strcmp(c[1], f->alg) == 0 && strcmp(c[2], f->level) == 0 &&
            strcmp(c[3], f->text) == 0) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* The test                                                                 */
/* ------------------------------------------------------------------------ */

START_TEST(test_sshaudit_client_defaults)
{
    static char report[REPORT_MAX], doc[DOC_MAX], unexplained[16384];
    static struct finding findings[FINDINGS_MAX];
    char cli[PATH_MAX], docfile[PATH_MAX], dir[PATH_MAX], outfile[PATH_MAX + 32];
    char home[] = "/tmp/sf-audit-home-XXXXXX";
    char why[256], portstr[16], cli_err[4096];
    const char *old_home = getenv("HOME");
    char *saved_home = old_home != NULL ? strdup(old_home) : NULL;
    long long deadline;
    int port, from_fd = -1, rc, cli_rc;
    pid_t audit;
    size_t n, i, bad = 0;

    if (access(SSH_AUDIT_PATH, X_OK) != 0) {
        fprintf(stderr, "check_sshaudit: skipped: %s is not installed (Debian package ssh-audit)\n",
                SSH_AUDIT_PATH);
        free(saved_home);
        return;
    }
    cli_path(cli, sizeof(cli));
    ck_assert_msg(access(cli, X_OK) == 0, "the sshflow CLI %s is not built", cli);
    doc_path(docfile, sizeof(docfile));
    ck_assert_msg(sf_test_read_file(docfile, doc, sizeof(doc)) > 0, "cannot read %s", docfile);

    if (!private_network(why, sizeof(why))) {
        fprintf(stderr, "check_sshaudit: no private network namespace (%s); ssh-audit listens on all "
                "interfaces for the duration of this test\n", why);
    }
    port = free_port();
    ck_assert_int_gt(port, 0);
    snprintf(portstr, sizeof(portstr), "%d", port);
    {
        char *argv[] = { (char *) SSH_AUDIT_PATH, (char *) "-c", (char *) "-n", (char *) "-p", portstr,
                         (char *) "-t", (char *) AUDIT_TIMEOUT, NULL };

        audit = sf_test_spawn(argv, NULL, &from_fd);
        ck_assert_int_gt(audit, 0);
    }
    deadline = sf_test_now_ms() + LISTEN_WAIT_MS;
    while (!port_listening(port)) {
        ck_assert_msg(sf_test_now_ms() < deadline, "ssh-audit did not listen on port %d", port);
        sf_test_sleep_ms(50);
    }

    /* The CLI with its defaults, in a scratch HOME (no real ~/.ssh). */
    ck_assert_ptr_nonnull(mkdtemp(home));
    ck_assert_int_eq(setenv("HOME", home, 1), 0);
    {
        char *argv[] = { cli, (char *) "-p", portstr, (char *) "-o", (char *) "ConnectTimeout=10",
                         (char *) "127.0.0.1", (char *) "true", NULL };

        cli_rc = sf_test_run(argv, NULL, NULL, 0, cli_err, sizeof(cli_err), CLI_TIMEOUT_MS);
    }
    if (saved_home != NULL) {
        setenv("HOME", saved_home, 1);
    } else {
        unsetenv("HOME");
    }
    free(saved_home);
    (void) rmdir(home);

    read_all(from_fd, report, sizeof(report), AUDIT_EXIT_MS);
    close(from_fd);
    rc = sf_test_wait(audit, AUDIT_EXIT_MS);

    /* Keep the report beside the test program for people to read. */
    self_dir(dir, sizeof(dir));
    snprintf(outfile, sizeof(outfile), "%s/ssh-audit-report.txt", dir);
    {
        FILE *fp = fopen(outfile, "w");

        if (fp != NULL) {
            fputs(report, fp);
            fclose(fp);
        }
    }
    fprintf(stderr, "check_sshaudit: ssh-audit exited %d, the CLI %d (%s); report in %s\n", rc, cli_rc,
            cli_err[0] != '\0' ? cli_err : "no message", outfile);

    /* The audit ran: it saw our banner and our algorithm lists. */
    ck_assert_msg(strstr(report, "(gen) banner: SSH-2.0-sshflow") != NULL,
                  "no ssh-audit report of the sshflow client (exit %d):\n%s", rc, report);
    ck_assert_msg(strstr(report, "(kex) ") != NULL && strstr(report, "(enc) ") != NULL &&
                      strstr(report, "(mac) ") != NULL && strstr(report, "(key) ") != NULL,
                  "ssh-audit's report lacks algorithm sections:\n%s", report);
    /* The CLI could not log in (ssh-audit is no server): it must have said so and failed. */
    ck_assert_int_ne(cli_rc, 0);
    ck_assert_int_ne(cli_rc, -1); /* not killed by the bound */

    n = parse_report(report, findings, FINDINGS_MAX);
    unexplained[0] = '\0';
    for (i = 0; i < n; i++) {
        bool ok = explained(doc, &findings[i]);
        size_t len = strlen(unexplained);

        fprintf(stderr, "check_sshaudit: (%s) %s [%s] %s%s\n", findings[i].cls, findings[i].alg,
                findings[i].level, findings[i].text, ok ? "  -- explained" : "  -- NOT EXPLAINED");
        if (!ok) {
            bad++;
            snprintf(unexplained + len, sizeof(unexplained) - len, "\n  | %s | %s | %s | %s |",
                     findings[i].cls, findings[i].alg, findings[i].level, findings[i].text);
        }
    }
    ck_assert_msg(bad == 0, "%zu ssh-audit finding(s) not explained in %s:%s", bad, docfile, unexplained);
}
END_TEST

int
main(void)
{
    Suite *s = suite_create("sshaudit");
    TCase *tc = tcase_create("client");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sshaudit_client_defaults);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
