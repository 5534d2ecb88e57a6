/*
 * check/testlib/servers.c -- test harness: five real SSH servers on
 * 127.0.0.1 with throwaway keys, for the interop matrix (see servers.h).
 *
 * Owns: the per-server temp dirs it creates (prefix sf-srv-), the processes
 * it starts (Dropbear, the tinysshd accept loop and the tinysshd it forks
 * per connection, the Python servers of check/servers/) and their
 * descendants, a registry of running servers for the atexit clean-up, and
 * the KEXINIT probe. OpenSSH goes through check/testlib/sshd.h. Must never:
 * touch a real ~/.ssh or /etc/ssh, listen anywhere but 127.0.0.1, signal a
 * process that is not one it started or a descendant of one, remove a
 * directory it did not create, or block without a bound. Not linked into
 * the library; not thread-safe (main thread only).
 *
 * The small utilities and the process primitives (spawn with chosen fds,
 * freeze-and-kill of a process tree) come from testutil.h, shared with
 * sshd.c; this file only picks its own death signal and SIGCHLD reset.
 */
#include "servers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "buf.h"
#include "testutil.h"

#define DIR_PREFIX "sf-srv-"
#define START_TIMEOUT_MS 20000  /* one server start: until it speaks SSH */
#define STOP_TIMEOUT_MS 3000    /* reaping a killed server */
#define KEYGEN_TIMEOUT_MS 60000
#define QUERY_TIMEOUT_MS 20000
#define PROBE_STEP_MS 2000      /* one readiness probe */
#define START_TRIES 8           /* port collisions (Dropbear picks no port itself) */
#define REGISTRY_MAX 8
#define PACKET_MAX 35000        /* RFC 4253 s6.1: what a probe accepts */

#define PYTHON_PATH "/usr/bin/python3"
#define DROPBEAR_PATH "/usr/sbin/dropbear"
#define DROPBEARKEY_PATH "/usr/bin/dropbearkey"
#define TINYSSHD_PATH "/usr/sbin/tinysshd"
#define TINYSSHD_MAKEKEY_PATH "/usr/sbin/tinysshd-makekey"
#define DPKG_QUERY_PATH "/usr/bin/dpkg-query"

#ifndef SSHFLOW_TESTLIB_SOURCE
#define SSHFLOW_TESTLIB_SOURCE __FILE__
#endif

static const char *const kind_names[SF_TEST_SRV_COUNT] = {
    "openssh", "dropbear", "tinysshd", "paramiko", "asyncssh",
};
static const char *const kind_packages[SF_TEST_SRV_COUNT] = {
    "openssh-server", "dropbear-bin", "tinysshd", "python3-paramiko", "python3-asyncssh",
};

/* ---- small utilities ---- */

static void say(const char *f, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *f, ...)
{
    va_list ap;

    va_start(ap, f);
    fprintf(stderr, "sf_test_servers: ");
    vfprintf(stderr, f, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) ftw;
    if (flag == FTW_DP || flag == FTW_D) {
        (void) rmdir(path);
    } else {
        (void) unlink(path);
    }
    return 0;
}

/* Remove a directory tree we created (its name must carry our prefix). */
static void
rm_tree(const char *dir)
{
    if (dir[0] != '/' || strstr(dir, "/" DIR_PREFIX) == NULL) {
        return;
    }
    (void) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- processes ---- */

/* In a forked child: die (SIGKILL) with the test's thread, clean signal state. */
static void
child_setup(pid_t parent)
{
    sf_test_child_setup(parent, SIGKILL, true);
}

/*
 * fork + exec argv[0] with fd0/fd1/fd2 as stdin/stdout/stderr (-1: /dev/null),
 * set up by child_setup.
 */
static pid_t
spawn_fds(char *const argv[], int fd0, int fd1, int fd2)
{
    return sf_test_spawn_fds(argv, fd0, fd1, fd2, SIGKILL, true);
}

/* True while our child pid has not exited (reaps it if it has). */
static bool
child_alive(pid_t pid)
{
    int st;

    return waitpid(pid, &st, WNOHANG) == 0;
}

/* Freeze root and its descendants, SIGKILL them all, reap root (bounded). */
static void
end_tree(pid_t root)
{
    sf_test_tree_end(root, STOP_TIMEOUT_MS);
}

/* ---- registry of running servers, for the atexit clean-up ---- */

struct reg_entry {
    pid_t owner; /* process that started it; 0 = free slot */
    pid_t pid;
    char dir[256];
};

static struct reg_entry registry[REGISTRY_MAX];
static bool atexit_registered;

static void
cleanup_at_exit(void)
{
    pid_t me = getpid();
    size_t i;

    for (i = 0; i < REGISTRY_MAX; i++) {
        if (registry[i].owner != me) {
            continue; /* inherited through fork: the parent's to clean */
        }
        end_tree(registry[i].pid);
        rm_tree(registry[i].dir);
        memset(&registry[i], 0, sizeof(registry[i]));
    }
}

/* Remember (pid > 0) or forget (pid == 0) the server living in dir. */
static void
reg_set(const char *dir, pid_t pid)
{
    pid_t me = getpid();
    struct reg_entry *e = NULL;
    size_t i;

    if (!atexit_registered && atexit(cleanup_at_exit) == 0) {
        atexit_registered = true;
    }
    for (i = 0; i < REGISTRY_MAX; i++) {
        if (registry[i].owner == me && strcmp(registry[i].dir, dir) == 0) {
            e = &registry[i];
        }
    }
    for (i = 0; e == NULL && pid > 0 && i < REGISTRY_MAX; i++) {
        if (registry[i].owner != me) {
            e = &registry[i];
        }
    }
    if (e == NULL) {
        return;
    }
    if (pid == 0) {
        memset(e, 0, sizeof(*e));
        return;
    }
    e->owner = me;
    e->pid = pid;
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
}

/* ---- sockets ---- */

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port. */
static int
listen_loopback(uint16_t *port)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        say("socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *) &sa, &len) != 0) {
        say("bind/listen 127.0.0.1: %s", strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A port that was free a moment ago (for servers that take a port number). */
static int
pick_port(uint16_t *port)
{
    int fd = listen_loopback(port);

    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}

static int
connect_loopback(uint16_t port, int timeout_ms)
{
    struct sockaddr_in sa;
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Read exactly n bytes before deadline; 0 or -1. */
static int
read_full(int fd, uint8_t *p, size_t n, long long deadline)
{
    size_t off = 0;

    while (off < n) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        long long left = deadline - sf_test_now_ms();
        ssize_t r;

        if (left <= 0 || poll(&pfd, 1, (int) left) <= 0) {
            return -1;
        }
        r = read(fd, p + off, n - off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        off += (size_t) r;
    }
    return 0;
}

/* ---- the KEXINIT probe ---- */

static int
get_list(struct sf_buf *b, char *out, size_t outsz)
{
    return sf_buf_get_cstr(b, out, outsz) == 0 ? 0 : -1;
}

int
sf_test_kexinit_probe(uint16_t port, int timeout_ms, struct sf_test_kexinit *out)
{
    static const char hello[] = "SSH-2.0-sshflow_matrix_probe\r\n";
    long long deadline = sf_test_now_ms() + timeout_ms;
    uint8_t *pkt = NULL;
    uint8_t hdr[5];
    uint32_t plen;
    char line[256];
    size_t n = 0;
    int lines = 0, rc = -1, fd;
    struct sf_buf b;
    uint8_t msg = 0, padlen;

    memset(out, 0, sizeof(*out));
    fd = connect_loopback(port, timeout_ms);
    if (fd < 0) {
        return -1;
    }
    if (write(fd, hello, sizeof(hello) - 1) != (ssize_t) (sizeof(hello) - 1)) {
        goto out;
    }
    /* RFC 4253 s4.2: lines before the version line are allowed. */
    for (;;) {
        uint8_t c;

        if (read_full(fd, &c, 1, deadline) != 0) {
            goto out;
        }
        if (c == '\n') {
            line[n] = '\0';
            if (n > 0 && line[n - 1] == '\r') {
                line[n - 1] = '\0';
            }
            if (strncmp(line, "SSH-", 4) == 0) {
                break;
            }
            if (++lines > 50) {
                goto out;
            }
            n = 0;
            continue;
        }
        if (n + 1 >= sizeof(line)) {
            goto out;
        }
        line[n++] = (char) c;
    }
    snprintf(out->banner, sizeof(out->banner), "%s", line);
    if (read_full(fd, hdr, 5, deadline) != 0) {
        goto out;
    }
    plen = sf_load_be32(hdr);
    padlen = hdr[4];
    if (plen < 1 + (uint32_t) padlen || plen > PACKET_MAX) {
        say("probe: bad packet length %u", plen);
        goto out;
    }
    pkt = malloc(plen);
    if (pkt == NULL || read_full(fd, pkt, plen - 1, deadline) != 0) {
        goto out;
    }
    sf_buf_init_view(&b, pkt, plen - 1 - padlen);
    if (sf_buf_get_u8(&b, &msg) != 0 || msg != 20 || sf_buf_skip(&b, 16) != 0 ||
        get_list(&b, out->kex, sizeof(out->kex)) != 0 ||
        get_list(&b, out->hostkey, sizeof(out->hostkey)) != 0 ||
        get_list(&b, out->cipher, sizeof(out->cipher)) != 0) {
        say("probe: not a KEXINIT (message %u) or a malformed one", msg);
        goto out;
    }
    {
        char skip[SF_TEST_SRV_LIST_MAX];

        /* encryption server-to-client, then MAC client-to-server */
        if (get_list(&b, skip, sizeof(skip)) != 0 || get_list(&b, out->mac, sizeof(out->mac)) != 0) {
            say("probe: malformed KEXINIT");
            goto out;
        }
    }
    rc = 0;
out:
    free(pkt);
    close(fd);
    return rc;
}

/* ---- keys ---- */

/* "SHA256:<base64, no padding>" of a base64 key blob. */
static int
fingerprint_b64(const char *b64, size_t b64len, char *out, size_t outsz)
{
    uint8_t blob[4096], md[32];
    unsigned char enc[64];
    unsigned int mdlen = 0;
    int n, pad = 0;
    size_t i;

    if (b64len == 0 || b64len % 4 != 0 || b64len / 4 * 3 > sizeof(blob)) {
        return -1;
    }
    n = EVP_DecodeBlock(blob, (const unsigned char *) b64, (int) b64len);
    if (n < 0) {
        return -1;
    }
    for (i = b64len; i > 0 && b64[i - 1] == '='; i--) {
        pad++;
    }
    if (EVP_Digest(blob, (size_t) (n - pad), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        return -1;
    }
    n = EVP_EncodeBlock(enc, md, 32);
    while (n > 0 && enc[n - 1] == '=') {
        n--;
    }
    enc[n] = '\0';
    return sf_test_fmt(out, outsz, "SHA256:%s", (const char *) enc);
}

/* Record the fingerprint of an OpenSSH one-line public key ("type base64 [comment]"). */
static int
add_fp_line(struct sf_test_server *s, const char *line)
{
    const char *b = strchr(line, ' ');
    size_t n;

    if (s->nhostfp >= SF_TEST_SRV_HOSTKEYS_MAX || b == NULL) {
        return -1;
    }
    b++;
    n = strcspn(b, " \r\n");
    if (fingerprint_b64(b, n, s->hostfp[s->nhostfp], sizeof(s->hostfp[0])) != 0) {
        say("cannot fingerprint public key line: %.60s", line);
        return -1;
    }
    s->nhostfp++;
    return 0;
}

static int
add_fp_file(struct sf_test_server *s, const char *pubpath)
{
    char text[16384];

    if (sf_test_read_file(pubpath, text, sizeof(text)) <= 0) {
        say("cannot read %s", pubpath);
        return -1;
    }
    return add_fp_line(s, text);
}

/* Append "type[-bits]" to s->hostkeys. */
static void
describe_key(struct sf_test_server *s, const char *type, const char *bits)
{
    size_t len = strlen(s->hostkeys);

    snprintf(s->hostkeys + len, sizeof(s->hostkeys) - len, "%s%s%s%s", len > 0 ? ", " : "", type,
             bits != NULL ? "-" : "", bits != NULL ? bits : "");
}

static int
run_quiet(char *const argv[], char *out, size_t outsz, int timeout_ms)
{
    char err[2048];
    int rc = sf_test_run(argv, NULL, out, outsz, err, sizeof(err), timeout_ms);

    if (rc != 0) {
        say("%s failed (%d): %s", argv[0], rc, err);
        return -1;
    }
    return 0;
}

/* ssh-keygen -t type [-b bits] into path (and path.pub). */
static int
ssh_keygen(const char *path, const char *type, const char *bits)
{
    char *argv[16];
    int i = 0;

    argv[i++] = (char *) SF_TEST_SSH_KEYGEN_PATH;
    argv[i++] = (char *) "-q";
    argv[i++] = (char *) "-N";
    argv[i++] = (char *) "";
    argv[i++] = (char *) "-t";
    argv[i++] = (char *) type;
    if (bits != NULL) {
        argv[i++] = (char *) "-b";
        argv[i++] = (char *) bits;
    }
    argv[i++] = (char *) "-C";
    argv[i++] = (char *) "sshflow-matrix";
    argv[i++] = (char *) "-f";
    argv[i++] = (char *) path;
    argv[i] = NULL;
    return run_quiet(argv, NULL, 0, KEYGEN_TIMEOUT_MS);
}

/* ---- readiness ---- */

/* Wait until the server at s->port answers with an SSH banner, or its process ends. */
static int
wait_ready(struct sf_test_server *s)
{
    long long deadline = sf_test_now_ms() + START_TIMEOUT_MS;

    for (;;) {
        int fd;

        if (!child_alive(s->pid)) {
            s->pid = 0;
            return -1;
        }
        fd = connect_loopback(s->port, PROBE_STEP_MS);
        if (fd >= 0) {
            uint8_t p[4];
            int r = read_full(fd, p, 4, sf_test_now_ms() + PROBE_STEP_MS);

            close(fd);
            if (r == 0 && memcmp(p, "SSH-", 4) == 0) {
                return 0;
            }
        }
        if (sf_test_now_ms() >= deadline) {
            say("%s did not answer on port %u within %d ms", s->name, s->port, START_TIMEOUT_MS);
            return -1;
        }
        sf_test_sleep_ms(20);
    }
}

static int
open_log(struct sf_test_server *s)
{
    int fd;

    if (sf_test_fmt(s->log, sizeof(s->log), "%s/server.log", s->dir) != 0) {
        return -1;
    }
    fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        say("open %s: %s", s->log, strerror(errno));
    }
    return fd;
}

/* ---- OpenSSH ---- */

/* `ssh -Q what` as one comma-separated list into out. */
static int
ssh_query(const char *what, char *out, size_t outsz)
{
    char *argv[] = { (char *) SF_TEST_SSH_PATH, (char *) "-Q", (char *) what, NULL };
    char text[8192];
    size_t j = 0;
    const char *p;

    if (run_quiet(argv, text, sizeof(text), QUERY_TIMEOUT_MS) != 0) {
        return -1;
    }
    for (p = text; *p != '\0'; p++) {
        char c = *p == '\n' ? ',' : *p;

        if (c == ',' && (j == 0 || out[j - 1] == ',')) {
            continue;
        }
        if (j + 1 >= outsz) {
            return -1;
        }
        out[j++] = c;
    }
    while (j > 0 && out[j - 1] == ',') {
        j--;
    }
    out[j] = '\0';
    return j > 0 ? 0 : -1;
}

static int
start_openssh(struct sf_test_server *s)
{
    static char kex[2048], cipher[2048], mac[2048], hostkey[4096], extra[12288];
    int i;

    if (ssh_query("kex", kex, sizeof(kex)) != 0 || ssh_query("cipher", cipher, sizeof(cipher)) != 0 ||
        ssh_query("mac", mac, sizeof(mac)) != 0 ||
        ssh_query("HostKeyAlgorithms", hostkey, sizeof(hostkey)) != 0) {
        return -1;
    }
    /*
     * Everything this sshd implements (sshd offers host key algorithms only
     * for its keys). A long LoginGraceTime: under valgrind an 8192-bit group
     * exchange takes the client more than the harness's 60 s.
     */
    if (sf_test_fmt(extra, sizeof(extra),
            "KexAlgorithms %s\nCiphers %s\nMACs %s\nHostKeyAlgorithms %s\nLoginGraceTime 600\n", kex, cipher,
            mac, hostkey) != 0) {
        return -1;
    }
    if (sf_test_sshd_start(&s->sshd, extra) != 0) {
        return -1;
    }
    s->port = s->sshd.port;
    snprintf(s->log, sizeof(s->log), "%s", s->sshd.log);
    snprintf(s->user, sizeof(s->user), "%s", s->sshd.user);
    snprintf(s->userkey, sizeof(s->userkey), "%s", s->sshd.userkey_ed25519);
    /* sshd.h's four: SF_TEST_HOSTKEY_ED25519, _ECDSA256, _RSA, _ECDSA384 */
    snprintf(s->hostkeys, sizeof(s->hostkeys), "ed25519, ecdsa-256, rsa-3072, ecdsa-384");
    for (i = 0; i < SF_TEST_HOSTKEY_COUNT; i++) {
        char pub[320];

        if (sf_test_fmt(pub, sizeof(pub), "%s.pub", s->sshd.hostkey[i]) != 0 || add_fp_file(s, pub) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ---- Dropbear ---- */

static int
start_dropbear(struct sf_test_server *s)
{
    /* At most four host keys (Dropbear's limit): one per algorithm family. */
    static const char *const keys[][2] = {
        { "ed25519", NULL }, { "ecdsa", "256" }, { "ecdsa", "521" }, { "rsa", "3072" },
    };
    char path[4][300], pidfile[300], listen_arg[64], out[8192];
    int i, tries, logfd = -1, rc = -1;

    if (sf_test_password_user() != 0) {
        say("dropbear: no password user %s", SF_TEST_PW_USER);
        return -1;
    }
    snprintf(s->user, sizeof(s->user), "%s", SF_TEST_PW_USER);
    s->password = SF_TEST_PW_PASSWORD;
    for (i = 0; i < 4; i++) {
        char *gen[] = { (char *) DROPBEARKEY_PATH, (char *) "-t", (char *) keys[i][0], (char *) "-f",
                        path[i], keys[i][1] != NULL ? (char *) "-s" : NULL, (char *) keys[i][1], NULL };
        char *pub[] = { (char *) DROPBEARKEY_PATH, (char *) "-y", (char *) "-f", path[i], NULL };
        const char *line;

        if (sf_test_fmt(path[i], sizeof(path[i]), "%s/dropbear_%s%s", s->dir, keys[i][0],
                keys[i][1] != NULL ? keys[i][1] : "") != 0 ||
            run_quiet(gen, NULL, 0, KEYGEN_TIMEOUT_MS) != 0 ||
            run_quiet(pub, out, sizeof(out), KEYGEN_TIMEOUT_MS) != 0) {
            goto out;
        }
        /* "Public key portion is:\n<type> <base64> <comment>\nFingerprint: ..." */
        line = strstr(out, "\nssh-");
        if (line == NULL) {
            line = strstr(out, "\necdsa-");
        }
        if (line == NULL || add_fp_line(s, line + 1) != 0) {
            say("dropbearkey -y: no public key line in: %.200s", out);
            goto out;
        }
        describe_key(s, keys[i][0], keys[i][1]);
    }
    if (sf_test_fmt(pidfile, sizeof(pidfile), "%s/dropbear.pid", s->dir) != 0 || (logfd = open_log(s)) < 0) {
        goto out;
    }
    for (tries = 0; tries < START_TRIES; tries++) {
        char *argv[] = { (char *) DROPBEAR_PATH, (char *) "-F", (char *) "-E", (char *) "-m",
                         (char *) "-p", listen_arg, (char *) "-P", pidfile,
                         (char *) "-r", path[0], (char *) "-r", path[1],
                         (char *) "-r", path[2], (char *) "-r", path[3], NULL };
        char log[8192];

        if (pick_port(&s->port) != 0 || sf_test_fmt(listen_arg, sizeof(listen_arg), "127.0.0.1:%u", s->port) != 0) {
            goto out;
        }
        s->pid = spawn_fds(argv, -1, -1, logfd);
        if (s->pid < 0) {
            s->pid = 0;
            goto out;
        }
        reg_set(s->dir, s->pid);
        if (wait_ready(s) == 0) {
            rc = 0;
            goto out;
        }
        end_tree(s->pid);
        s->pid = 0;
        (void) sf_test_read_file(s->log, log, sizeof(log));
        if (strstr(log, "in use") == NULL) {
            say("dropbear did not start; its log:\n%s", log);
            goto out;
        }
    }
    say("dropbear: no free port after %d tries", START_TRIES);
out:
    if (logfd >= 0) {
        close(logfd);
    }
    return rc;
}

/* ---- tinysshd ---- */

/*
 * Without mount namespaces (an unprivileged container): put the test key
 * into the throwaway test user's real ~/.ssh/authorized_keys instead. That
 * account (SF_TEST_PW_USER) is made by the harness for tests only; this is
 * never the invoking user's home. Appends to msg why, and returns 0 or -1.
 */
static int
tinyssh_home_fallback(const char *home_src, const char *home_dst, char *msg, size_t msgsz)
{
    char src[600], dir[600], dst[700], text[4096];
    struct stat st;
    ssize_t n;

    if (stat(home_src, &st) != 0 ||
        sf_test_fmt(src, sizeof(src), "%s/.ssh/authorized_keys", home_src) != 0 ||
        sf_test_fmt(dir, sizeof(dir), "%s/.ssh", home_dst) != 0 ||
        sf_test_fmt(dst, sizeof(dst), "%s/authorized_keys", dir) != 0 ||
        (n = sf_test_read_file(src, text, sizeof(text))) <= 0) {
        return -1;
    }
    if ((mkdir(home_dst, 0700) != 0 && errno != EEXIST) || chown(home_dst, st.st_uid, st.st_gid) != 0 ||
        (mkdir(dir, 0700) != 0 && errno != EEXIST) || chown(dir, st.st_uid, st.st_gid) != 0 ||
        sf_test_write_file(dst, text, (size_t) n, 0600) != 0 || chown(dst, st.st_uid, st.st_gid) != 0) {
        return -1;
    }
    fprintf(stderr, "sf_test_servers: tinysshd: %s; using the test user's own %s instead\n", msg, dst);
    return 0;
}

/*
 * The accept loop (a forked child of the test, never returns): a private
 * mount namespace where home_src is bind-mounted on the test user's home
 * (tinysshd reads only ~/.ssh/authorized_keys), then one tinysshd per
 * connection with the socket as stdin/stdout. Reports the namespace set-up
 * on status_fd: "ok" or an error text.
 */
static void __attribute__((noreturn))
tinyssh_loop(int lfd, int status_fd, int logfd, const char *home_src, const char *home_dst,
             const char *keydir)
{
    char msg[256];
    const char *nons = getenv("SSHFLOW_TEST_NO_NAMESPACE"); /* to test the fallback */

    if (nons != NULL && nons[0] != '\0') {
        snprintf(msg, sizeof(msg), "namespaces disabled by SSHFLOW_TEST_NO_NAMESPACE");
    } else if (unshare(CLONE_NEWNS) != 0) {
        snprintf(msg, sizeof(msg), "unshare(CLONE_NEWNS): %s", strerror(errno));
    } else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        snprintf(msg, sizeof(msg), "mount --make-rprivate /: %s", strerror(errno));
    } else if (mount(home_src, home_dst, NULL, MS_BIND, NULL) != 0) {
        snprintf(msg, sizeof(msg), "bind mount on %s: %s", home_dst, strerror(errno));
    } else {
        snprintf(msg, sizeof(msg), "ok");
    }
    if (strcmp(msg, "ok") != 0 && tinyssh_home_fallback(home_src, home_dst, msg, sizeof(msg)) == 0) {
        snprintf(msg, sizeof(msg), "ok");
    }
    (void) write(status_fd, msg, strlen(msg));
    close(status_fd);
    if (strcmp(msg, "ok") != 0) {
        _exit(1);
    }
    signal(SIGCHLD, SIG_IGN); /* reap the per-connection tinysshd automatically */
    for (;;) {
        int c = accept(lfd, NULL, NULL);
        pid_t pid;

        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            _exit(1);
        }
        pid = fork();
        if (pid == 0) {
            char *argv[] = { (char *) TINYSSHD_PATH, (char *) "-v", (char *) keydir, NULL };

            signal(SIGCHLD, SIG_DFL); /* tinysshd waits for its own children */
            if (dup2(c, 0) < 0 || dup2(c, 1) < 0 || dup2(logfd, 2) < 0) {
                _exit(126);
            }
            sf_test_close_from3();
            execv(argv[0], argv);
            _exit(127);
        }
        close(c);
    }
}

static int
start_tinyssh(struct sf_test_server *s)
{
    char keydir[300], home[300], sshdir[300], authkeys[300], pkpath[320], pub[512], line[600];
    uint8_t pk[33];
    uint8_t blob[4 + 11 + 4 + 32];
    unsigned char b64[128];
    char status[160];
    const struct passwd *pw;
    int lfd = -1, logfd = -1, sp[2] = { -1, -1 }, rc = -1;
    ssize_t n;
    long long deadline;

    if (sf_test_password_user() != 0 || (pw = getpwnam(SF_TEST_PW_USER)) == NULL ||
        pw->pw_dir == NULL || pw->pw_dir[0] != '/') {
        say("tinysshd: no test user %s", SF_TEST_PW_USER);
        return -1;
    }
    snprintf(s->user, sizeof(s->user), "%s", SF_TEST_PW_USER);

    /* Host key: tinysshd's own format; the public half is the raw 32-byte Ed25519 key. */
    {
        char *mk[] = { (char *) TINYSSHD_MAKEKEY_PATH, (char *) "-q", keydir, NULL };

        if (sf_test_fmt(keydir, sizeof(keydir), "%s/tinyssh-keys", s->dir) != 0 ||
            run_quiet(mk, NULL, 0, KEYGEN_TIMEOUT_MS) != 0) {
            return -1;
        }
    }
    if (sf_test_fmt(pkpath, sizeof(pkpath), "%s/ed25519.pk", keydir) != 0) {
        return -1;
    }
    n = sf_test_read_file(pkpath, (char *) pk, sizeof(pk));
    if (n != 32) {
        say("tinysshd: %s is not a 32-byte key", pkpath);
        return -1;
    }
    sf_store_be32(blob, 11);
    memcpy(blob + 4, "ssh-ed25519", 11);
    sf_store_be32(blob + 15, 32);
    memcpy(blob + 19, pk, 32);
    (void) EVP_EncodeBlock(b64, blob, (int) sizeof(blob));
    if (sf_test_fmt(line, sizeof(line), "ssh-ed25519 %s tinysshd\n", (const char *) b64) != 0 ||
        add_fp_line(s, line) != 0) {
        return -1;
    }
    describe_key(s, "ed25519", NULL);

    /* The fake home: owned by the test user, as tinysshd (and a shell) expect. */
    if (sf_test_fmt(home, sizeof(home), "%s/home", s->dir) != 0 || sf_test_fmt(sshdir, sizeof(sshdir), "%s/.ssh", home) != 0 ||
        sf_test_fmt(authkeys, sizeof(authkeys), "%s/authorized_keys", sshdir) != 0 ||
        sf_test_fmt(s->userkey, sizeof(s->userkey), "%s/id_ed25519", s->dir) != 0 ||
        sf_test_fmt(pub, sizeof(pub), "%s.pub", s->userkey) != 0) {
        return -1;
    }
    if (ssh_keygen(s->userkey, "ed25519", NULL) != 0 || mkdir(home, 0700) != 0 || mkdir(sshdir, 0700) != 0) {
        say("tinysshd: cannot make the fake home: %s", strerror(errno));
        return -1;
    }
    {
        char text[1024];

        if (sf_test_read_file(pub, text, sizeof(text)) <= 0 || sf_test_write_file(authkeys, text, strlen(text), 0600) != 0) {
            return -1;
        }
    }
    if (chown(home, pw->pw_uid, pw->pw_gid) != 0 || chown(sshdir, pw->pw_uid, pw->pw_gid) != 0 ||
        chown(authkeys, pw->pw_uid, pw->pw_gid) != 0) {
        say("tinysshd: chown: %s", strerror(errno));
        return -1;
    }

    if ((lfd = listen_loopback(&s->port)) < 0 || (logfd = open_log(s)) < 0) {
        goto out;
    }
    if (pipe2(sp, O_CLOEXEC) != 0) {
        say("pipe: %s", strerror(errno));
        goto out;
    }
    {
        pid_t parent = getpid();
        pid_t pid = fork();

        if (pid < 0) {
            say("fork: %s", strerror(errno));
            goto out;
        }
        if (pid == 0) {
            child_setup(parent);
            close(sp[0]);
            tinyssh_loop(lfd, sp[1], logfd, home, pw->pw_dir, keydir);
        }
        s->pid = pid;
        reg_set(s->dir, s->pid);
    }
    close(sp[1]);
    sp[1] = -1;
    deadline = sf_test_now_ms() + START_TIMEOUT_MS;
    memset(status, 0, sizeof(status));
    for (size_t off = 0;;) {
        struct pollfd pfd = { sp[0], POLLIN, 0 };
        long long left = deadline - sf_test_now_ms();
        ssize_t r;

        if (left <= 0 || poll(&pfd, 1, (int) left) <= 0) {
            snprintf(status, sizeof(status), "no answer from the accept loop");
            break;
        }
        r = read(sp[0], status + off, sizeof(status) - 1 - off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0 || off + (size_t) r >= sizeof(status) - 1) {
            break;
        }
        off += (size_t) r;
    }
    if (strcmp(status, "ok") != 0) {
        say("tinysshd: cannot give it a private home (%s); it reads only ~/.ssh/authorized_keys, "
            "and this harness never writes a real home", status);
        goto out;
    }
    rc = wait_ready(s);
out:
    if (lfd >= 0) {
        close(lfd);
    }
    if (logfd >= 0) {
        close(logfd);
    }
    if (sp[0] >= 0) {
        close(sp[0]);
    }
    if (sp[1] >= 0) {
        close(sp[1]);
    }
    return rc;
}

/* ---- paramiko and AsyncSSH ---- */

/* Path of a script in check/servers/ (SSHFLOW_SOURCE_DIR, else beside this file). */
static int
script_path(const char *name, char *out, size_t outsz)
{
    const char *src = getenv("SSHFLOW_SOURCE_DIR");

    if (src != NULL && src[0] == '/') {
        return sf_test_fmt(out, outsz, "%s/check/servers/%s", src, name);
    }
    /* SSHFLOW_TESTLIB_SOURCE is .../check/testlib/servers.c */
    if (sf_test_fmt(out, outsz, "%s", SSHFLOW_TESTLIB_SOURCE) != 0) {
        return -1;
    }
    char *slash = strrchr(out, '/');
    if (slash == NULL) {
        return sf_test_fmt(out, outsz, "check/servers/%s", name);
    }
    *slash = '\0';
    slash = strrchr(out, '/');
    if (slash == NULL) {
        return -1;
    }
    *slash = '\0';
    size_t len = strlen(out);
    return sf_test_fmt(out + len, outsz - len, "/servers/%s", name);
}

static const char *
python_script(int kind)
{
    return kind == SF_TEST_SRV_PARAMIKO ? "paramiko_server.py" : "asyncssh_server.py";
}

static const char *
python_module(int kind)
{
    return kind == SF_TEST_SRV_PARAMIKO ? "paramiko" : "asyncssh";
}

static int
start_python(struct sf_test_server *s)
{
    static const char *const keys[][2] = {
        { "ed25519", NULL }, { "ecdsa", "256" }, { "ecdsa", "384" }, { "ecdsa", "521" }, { "rsa", "3072" },
    };
    char path[5][300], script[512], authkeys[320], text[512];
    const struct passwd *pw = getpwuid(geteuid());
    int i, logfd = -1, outp[2] = { -1, -1 }, rc = -1;
    size_t off = 0;
    long long deadline;

    if (pw == NULL) {
        say("no passwd entry for uid %ld", (long) geteuid());
        return -1;
    }
    snprintf(s->user, sizeof(s->user), "%s", pw->pw_name);
    for (i = 0; i < 5; i++) {
        char pub[320];

        if (sf_test_fmt(path[i], sizeof(path[i]), "%s/host_%s%s", s->dir, keys[i][0],
                keys[i][1] != NULL ? keys[i][1] : "") != 0 ||
            sf_test_fmt(pub, sizeof(pub), "%s.pub", path[i]) != 0 || ssh_keygen(path[i], keys[i][0], keys[i][1]) != 0 ||
            add_fp_file(s, pub) != 0) {
            return -1;
        }
        describe_key(s, keys[i][0], keys[i][1]);
    }
    if (sf_test_fmt(s->userkey, sizeof(s->userkey), "%s/id_ed25519", s->dir) != 0 ||
        sf_test_fmt(authkeys, sizeof(authkeys), "%s.pub", s->userkey) != 0 || ssh_keygen(s->userkey, "ed25519", NULL) != 0 ||
        script_path(python_script(s->kind), script, sizeof(script)) != 0) {
        return -1;
    }
    if ((logfd = open_log(s)) < 0 || pipe2(outp, O_CLOEXEC) != 0) {
        goto out;
    }
    {
        /* -I: Debian's packages only (no user site, no PYTHON* variables). */
        char *argv[] = { (char *) PYTHON_PATH, (char *) "-I", script, (char *) "--authorized-keys", authkeys,
                         (char *) "--hostkey", path[0], (char *) "--hostkey", path[1],
                         (char *) "--hostkey", path[2], (char *) "--hostkey", path[3],
                         (char *) "--hostkey", path[4], NULL };

        s->pid = spawn_fds(argv, -1, outp[1], logfd);
        if (s->pid < 0) {
            s->pid = 0;
            goto out;
        }
        reg_set(s->dir, s->pid);
    }
    close(outp[1]);
    outp[1] = -1;
    /* "VERSION <module> <version>\nPORT <port>\n" */
    deadline = sf_test_now_ms() + START_TIMEOUT_MS;
    text[0] = '\0';
    while (strstr(text, "PORT ") == NULL || strchr(strstr(text, "PORT "), '\n') == NULL) {
        struct pollfd pfd = { outp[0], POLLIN, 0 };
        long long left = deadline - sf_test_now_ms();
        ssize_t r;

        if (left <= 0 || poll(&pfd, 1, (int) left) <= 0) {
            say("%s: no port announced within %d ms (log %s)", s->name, START_TIMEOUT_MS, s->log);
            goto out;
        }
        r = read(outp[0], text + off, sizeof(text) - 1 - off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0 || off + (size_t) r >= sizeof(text) - 1) {
            char log[4096];

            (void) sf_test_read_file(s->log, log, sizeof(log));
            say("%s exited before announcing its port; its log:\n%s", s->name, log);
            goto out;
        }
        off += (size_t) r;
        text[off] = '\0';
    }
    {
        unsigned long port = strtoul(strstr(text, "PORT ") + 5, NULL, 10);

        if (port == 0 || port > 65535) {
            say("%s: bad port line in: %s", s->name, text);
            goto out;
        }
        s->port = (uint16_t) port;
    }
    rc = wait_ready(s);
out:
    if (logfd >= 0) {
        close(logfd);
    }
    if (outp[0] >= 0) {
        close(outp[0]);
    }
    if (outp[1] >= 0) {
        close(outp[1]);
    }
    return rc;
}

/* ---- public ---- */

const char *
sf_test_server_name(int kind)
{
    return kind >= 0 && kind < SF_TEST_SRV_COUNT ? kind_names[kind] : NULL;
}

static bool
why_not(char *why, size_t whysz, const char *f, ...) __attribute__((format(printf, 3, 4)));

static bool
why_not(char *why, size_t whysz, const char *f, ...)
{
    va_list ap;

    if (why != NULL && whysz > 0) {
        va_start(ap, f);
        vsnprintf(why, whysz, f, ap);
        va_end(ap);
    }
    return false;
}

bool
sf_test_server_available(int kind, char *why, size_t whysz)
{
    if (why != NULL && whysz > 0) {
        why[0] = '\0';
    }
    if (getenv("SSHFLOW_SKIP_INTEROP") != NULL) {
        return why_not(why, whysz, "SSHFLOW_SKIP_INTEROP is set");
    }
    switch (kind) {
    case SF_TEST_SRV_OPENSSH:
        if (!sf_test_sshd_available()) {
            return why_not(why, whysz, "no usable %s", SF_TEST_SSHD_PATH);
        }
        return true;
    case SF_TEST_SRV_DROPBEAR:
        if (access(DROPBEAR_PATH, X_OK) != 0 || access(DROPBEARKEY_PATH, X_OK) != 0) {
            return why_not(why, whysz, "%s not installed (Debian package dropbear-bin)", DROPBEAR_PATH);
        }
        if (geteuid() != 0) {
            return why_not(why, whysz, "dropbear must run as root to log in the test user");
        }
        return true;
    case SF_TEST_SRV_TINYSSH:
        if (access(TINYSSHD_PATH, X_OK) != 0 || access(TINYSSHD_MAKEKEY_PATH, X_OK) != 0) {
            return why_not(why, whysz, "%s not installed (Debian package tinysshd)", TINYSSHD_PATH);
        }
        if (geteuid() != 0) {
            return why_not(why, whysz, "tinysshd must run as root to log in the test user");
        }
        return true;
    case SF_TEST_SRV_PARAMIKO:
    case SF_TEST_SRV_ASYNCSSH: {
        char code[64], script[512];
        char *argv[] = { (char *) PYTHON_PATH, (char *) "-I", (char *) "-c", code, NULL };

        if (access(PYTHON_PATH, X_OK) != 0 || access(SF_TEST_SSH_KEYGEN_PATH, X_OK) != 0) {
            return why_not(why, whysz, "%s or %s not installed", PYTHON_PATH, SF_TEST_SSH_KEYGEN_PATH);
        }
        if (script_path(python_script(kind), script, sizeof(script)) != 0 || access(script, R_OK) != 0) {
            return why_not(why, whysz, "server script %s not found", script);
        }
        snprintf(code, sizeof(code), "import %s", python_module(kind));
        if (sf_test_run(argv, NULL, NULL, 0, NULL, 0, QUERY_TIMEOUT_MS) != 0) {
            return why_not(why, whysz, "python3 cannot import %s (Debian package %s)", python_module(kind),
                           kind_packages[kind]);
        }
        return true;
    }
    default:
        return why_not(why, whysz, "unknown server kind %d", kind);
    }
}

/* "package version" from dpkg, or "" if dpkg cannot say. */
static void
package_version(struct sf_test_server *s)
{
    char fmtarg[] = "${Version}";
    char *argv[] = { (char *) DPKG_QUERY_PATH, (char *) "-W", (char *) "-f", fmtarg,
                     (char *) kind_packages[s->kind], NULL };
    char out[128];

    s->package[0] = '\0';
    if (access(DPKG_QUERY_PATH, X_OK) != 0 ||
        sf_test_run(argv, NULL, out, sizeof(out), NULL, 0, QUERY_TIMEOUT_MS) != 0 || out[0] == '\0') {
        return;
    }
    out[strcspn(out, "\r\n")] = '\0';
    snprintf(s->package, sizeof(s->package), "%s %s", kind_packages[s->kind], out);
}

int
sf_test_server_start(struct sf_test_server *s, int kind)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if (kind < 0 || kind >= SF_TEST_SRV_COUNT) {
        say("unknown server kind %d", kind);
        return -1;
    }
    s->kind = kind;
    s->name = kind_names[kind];
    package_version(s);
    if (kind == SF_TEST_SRV_OPENSSH) {
        rc = start_openssh(s);
    } else {
        if (sf_test_make_tempdir(s->dir, sizeof(s->dir), DIR_PREFIX) != 0) {
            return -1;
        }
        switch (kind) {
        case SF_TEST_SRV_DROPBEAR:
            rc = start_dropbear(s);
            break;
        case SF_TEST_SRV_TINYSSH:
            rc = start_tinyssh(s);
            break;
        default:
            rc = start_python(s);
            break;
        }
    }
    if (rc != 0) {
        say("%s did not start", s->name);
        sf_test_server_stop(s);
        return -1;
    }
    return 0;
}

void
sf_test_server_stop(struct sf_test_server *s)
{
    if (s->kind == SF_TEST_SRV_OPENSSH) {
        sf_test_sshd_stop(&s->sshd);
    }
    if (s->pid > 0) {
        end_tree(s->pid);
        s->pid = 0;
    }
    if (s->dir[0] != '\0') {
        reg_set(s->dir, 0);
        rm_tree(s->dir);
        s->dir[0] = '\0';
    }
}
