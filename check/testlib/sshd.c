/*
 * check/testlib/sshd.c -- test harness: a private OpenSSH server with
 * throwaway keys on a free 127.0.0.1 port (see sshd.h).
 *
 * Owns: the per-server temp dirs it creates, the sshd processes it starts
 * (and their descendants), the process-wide key cache, a registry of running
 * servers for the atexit clean-up. Must never: touch ~/.ssh or /etc/ssh,
 * signal a process that is not sshd or a descendant of an sshd it started,
 * remove a directory it did not create, or block without a bound. Not linked
 * into the library; not thread-safe (main thread only).
 */
#include "sshd.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DIR_PREFIX "sf-sshd-"
#define CACHE_PREFIX "sf-sshkeys-"
#define START_TIMEOUT_MS 10000 /* one sshd start: until it accepts */
#define STOP_TIMEOUT_MS 3000   /* reaping a killed sshd */
#define KEYGEN_TIMEOUT_MS 60000
#define QUERY_TIMEOUT_MS 10000
#define START_TRIES 8          /* port collisions */
#define REGISTRY_MAX 32
#define TREE_MAX 512           /* processes under one sshd we can track */
#define EXTRA_KEYWORDS_MAX 64
#define CONFIG_MAX 16384

/* fd placeholders for spawn_raw */
#define FD_DEVNULL SF_TEST_FD_DEVNULL
#define FD_INHERIT SF_TEST_FD_INHERIT

/* ---- small utilities ---- */

static void say(const char *f, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *f, ...)
{
    va_list ap;

    va_start(ap, f);
    fprintf(stderr, "sf_test_sshd: ");
    vfprintf(stderr, f, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static int
copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[8192];
    ssize_t n;

    n = sf_test_read_file(from, buf, sizeof(buf));
    if (n < 0 || (size_t) n + 1 >= sizeof(buf)) {
        say("cannot read %s", from);
        return -1;
    }
    return sf_test_write_file(to, buf, (size_t) n, mode);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        say("remove %s: %s", path, strerror(errno));
    }
    return 0;
}

/* Remove a directory tree we created (the name must carry one of our prefixes). */
static void
rm_tree(const char *dir)
{
    if (dir[0] != '/' || (strstr(dir, "/" DIR_PREFIX) == NULL && strstr(dir, "/" CACHE_PREFIX) == NULL)) {
        return;
    }
    (void) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- processes ---- */

/*
 * fork + exec argv[0] with fd0/fd1/fd2 as stdin/stdout/stderr (FD_DEVNULL or
 * FD_INHERIT allowed); the child dies (SIGTERM) with the test's main thread.
 */
static pid_t
spawn_raw(char *const argv[], int fd0, int fd1, int fd2)
{
    return sf_test_spawn_fds(argv, fd0, fd1, fd2, SIGTERM, false);
}

/* A close-on-exec pipe whose fds are >= 3 (so dup2 onto 0..2 cannot clobber them). */
static int
make_pipe(int p[2])
{
    int i;

    if (pipe2(p, O_CLOEXEC) != 0) {
        say("pipe: %s", strerror(errno));
        return -1;
    }
    for (i = 0; i < 2; i++) {
        if (p[i] < 3) {
            int fd = fcntl(p[i], F_DUPFD_CLOEXEC, 3);

            if (fd < 0) {
                say("fcntl: %s", strerror(errno));
                close(p[0]);
                close(p[1]);
                return -1;
            }
            close(p[i]);
            p[i] = fd;
        }
    }
    return 0;
}

static void
close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int
decode_status(int st)
{
    if (WIFEXITED(st)) {
        return WEXITSTATUS(st);
    }
    if (WIFSIGNALED(st)) {
        return 128 + WTERMSIG(st);
    }
    return -1;
}

int
sf_test_wait(pid_t pid, int timeout_ms)
{
    int st = 0;
    int r;

    if (pid <= 0) {
        return -1;
    }
    r = sf_test_wait_until(pid, sf_test_now_ms() + (timeout_ms > 0 ? timeout_ms : 0), &st);
    if (r == 1) {
        return decode_status(st);
    }
    if (r == 0) {
        say("pid %ld did not exit within %d ms: killing it", (long) pid, timeout_ms);
        (void) kill(pid, SIGKILL);
        (void) sf_test_wait_until(pid, sf_test_now_ms() + 5000, &st);
    }
    return -1;
}

pid_t
sf_test_spawn(char *const argv[], int *to_fd, int *from_fd)
{
    int in[2] = { -1, -1 }, out[2] = { -1, -1 };
    pid_t pid = -1;

    if (to_fd != NULL) {
        *to_fd = -1;
        if (make_pipe(in) != 0) {
            goto out;
        }
    }
    if (from_fd != NULL) {
        *from_fd = -1;
        if (make_pipe(out) != 0) {
            goto out;
        }
    }
    pid = spawn_raw(argv, to_fd != NULL ? in[0] : FD_DEVNULL, from_fd != NULL ? out[1] : FD_DEVNULL,
                    FD_INHERIT);
    if (pid < 0) {
        goto out;
    }
    if (to_fd != NULL) {
        *to_fd = in[1];
        in[1] = -1;
    }
    if (from_fd != NULL) {
        *from_fd = out[0];
        out[0] = -1;
    }
out:
    close_fd(&in[0]);
    close_fd(&in[1]);
    close_fd(&out[0]);
    close_fd(&out[1]);
    return pid;
}

/* Append what fits of data to buf[cap] at *len, keeping it NUL-terminated. */
static void
append_capped(char *buf, size_t cap, size_t *len, const char *data, size_t n)
{
    if (buf == NULL || cap == 0) {
        return;
    }
    if (*len + 1 < cap) {
        size_t k = cap - 1 - *len;

        if (k > n) {
            k = n;
        }
        memcpy(buf + *len, data, k);
        *len += k;
    }
    buf[*len] = '\0';
}

int
sf_test_run(char *const argv[], const char *input, char *out, size_t outsz, char *err,
            size_t errsz, int timeout_ms)
{
    int in_p[2] = { -1, -1 }, out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
    size_t in_len = input != NULL ? strlen(input) : 0, in_off = 0, out_len = 0, err_len = 0;
    long long deadline = sf_test_now_ms() + timeout_ms;
    struct sigaction ign, old_pipe;
    pid_t pid = -1;
    int rc = -1;

    if (out != NULL && outsz > 0) {
        out[0] = '\0';
    }
    if (err != NULL && errsz > 0) {
        err[0] = '\0';
    }
    /* A child that exits without reading its input must not SIGPIPE us. */
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe);

    if (make_pipe(in_p) != 0 || make_pipe(out_p) != 0 || make_pipe(err_p) != 0) {
        goto out;
    }
    pid = spawn_raw(argv, in_p[0], out_p[1], err_p[1]);
    if (pid < 0) {
        goto out;
    }
    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    (void) fcntl(in_p[1], F_SETFL, O_NONBLOCK);
    if (in_len == 0) {
        close_fd(&in_p[1]);
    }
    while (out_p[0] >= 0 || err_p[0] >= 0) {
        struct pollfd pfd[3];
        int *fds[3];
        nfds_t n = 0;
        long long left = deadline - sf_test_now_ms();
        char buf[4096];
        nfds_t i;

        if (left <= 0) {
            say("%s timed out after %d ms", argv[0], timeout_ms);
            goto out;
        }
        if (in_p[1] >= 0) {
            pfd[n].fd = in_p[1];
            pfd[n].events = POLLOUT;
            fds[n++] = &in_p[1];
        }
        if (out_p[0] >= 0) {
            pfd[n].fd = out_p[0];
            pfd[n].events = POLLIN;
            fds[n++] = &out_p[0];
        }
        if (err_p[0] >= 0) {
            pfd[n].fd = err_p[0];
            pfd[n].events = POLLIN;
            fds[n++] = &err_p[0];
        }
        if (poll(pfd, n, left > 1000 ? 1000 : (int) left) < 0) {
            if (errno == EINTR) {
                continue;
            }
            say("poll: %s", strerror(errno));
            goto out;
        }
        for (i = 0; i < n; i++) {
            ssize_t k;

            if (pfd[i].revents == 0) {
                continue;
            }
            if (fds[i] == &in_p[1]) {
                k = write(in_p[1], input + in_off, in_len - in_off);
                if (k > 0) {
                    in_off += (size_t) k;
                }
                if ((k < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) {
                    close_fd(&in_p[1]);
                }
                continue;
            }
            k = read(*fds[i], buf, sizeof(buf));
            if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            if (k <= 0) {
                close_fd(fds[i]);
                continue;
            }
            if (fds[i] == &out_p[0]) {
                append_capped(out, outsz, &out_len, buf, (size_t) k);
            } else {
                append_capped(err, errsz, &err_len, buf, (size_t) k);
            }
        }
    }
    close_fd(&in_p[1]);
    {
        long long left = deadline - sf_test_now_ms();

        rc = sf_test_wait(pid, left > 0 ? (int) left : 1);
    }
    pid = -1;
out:
    if (pid > 0) {
        (void) kill(pid, SIGKILL);
        (void) sf_test_wait(pid, 5000);
    }
    close_fd(&in_p[0]);
    close_fd(&in_p[1]);
    close_fd(&out_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    sigaction(SIGPIPE, &old_pipe, NULL);
    return rc;
}

/* ---- the process tree under an sshd ---- */

/*
 * Kill root's whole tree with SIGKILL and reap root (our child). Everything
 * is frozen first, so nothing can fork while we look. No SIGTERM for the
 * listener: while handling it, sshd may still accept a queued connection and
 * fork a child we could no longer find once the listener is gone.
 */
static void
end_tree(pid_t root)
{
    sf_test_tree_end(root, STOP_TIMEOUT_MS);
}

/* ---- registry of running servers, for the atexit clean-up ---- */

struct reg_entry {
    pid_t owner;   /* process that started it; 0 = free slot */
    pid_t sshd;    /* listener, 0 when not running */
    char dir[256];
};

static struct reg_entry registry[REGISTRY_MAX];
static bool atexit_registered;
static char cache_dir[256]; /* process-wide key cache */
static pid_t cache_owner;   /* process that created cache_dir (and removes it) */

static void
cleanup_at_exit(void)
{
    pid_t me = getpid();
    size_t i;

    for (i = 0; i < REGISTRY_MAX; i++) {
        if (registry[i].owner != me) {
            continue; /* inherited through fork: the parent's to clean */
        }
        end_tree(registry[i].sshd);
        rm_tree(registry[i].dir);
        memset(&registry[i], 0, sizeof(registry[i]));
    }
    if (cache_owner == me && cache_dir[0] != '\0') {
        rm_tree(cache_dir);
        cache_dir[0] = '\0';
        cache_owner = 0;
    }
}

static void
ensure_atexit(void)
{
    if (!atexit_registered && atexit(cleanup_at_exit) == 0) {
        atexit_registered = true;
    }
}

static struct reg_entry *
reg_find(const char *dir)
{
    pid_t me = getpid();
    size_t i;

    for (i = 0; i < REGISTRY_MAX; i++) {
        if (registry[i].owner == me && strcmp(registry[i].dir, dir) == 0) {
            return &registry[i];
        }
    }
    return NULL;
}

static void
reg_set(const char *dir, pid_t sshd)
{
    struct reg_entry *e = reg_find(dir);
    pid_t me = getpid();
    size_t i;

    ensure_atexit();
    for (i = 0; e == NULL && i < REGISTRY_MAX; i++) {
        if (registry[i].owner != me) {
            /* free, or a stale copy inherited from a parent process */
            e = &registry[i];
        }
    }
    if (e == NULL) {
        return; /* more than REGISTRY_MAX servers: no clean-up at exit for this one */
    }
    e->owner = me;
    e->sshd = sshd;
    snprintf(e->dir, sizeof(e->dir), "%s", dir);
}

static void
reg_drop(const char *dir)
{
    struct reg_entry *e = reg_find(dir);

    if (e != NULL) {
        memset(e, 0, sizeof(*e));
    }
}

/* ---- keys ---- */

struct keyspec {
    const char *name; /* file name in the dir */
    const char *type; /* ssh-keygen -t */
    const char *bits; /* ssh-keygen -b, or NULL */
};

static const struct keyspec host_keys[SF_TEST_HOSTKEY_COUNT] = {
    { "ssh_host_ed25519_key", "ed25519", NULL },
    { "ssh_host_ecdsa256_key", "ecdsa", "256" },
    { "ssh_host_rsa_key", "rsa", "3072" },
    { "ssh_host_ecdsa384_key", "ecdsa", "384" },
};

static const struct keyspec user_keys[4] = {
    { "id_ed25519", "ed25519", NULL },
    { "id_ecdsa", "ecdsa", "256" },
    { "id_rsa", "rsa", "3072" },
    { "id_unauth", "ed25519", NULL },
};

/* Generate n keys into dir concurrently (RSA dominates: ~1 s). */
static int
keygen_batch(const char *dir, const struct keyspec *k, size_t n)
{
    pid_t pids[8] = { 0 };
    long long deadline = sf_test_now_ms() + KEYGEN_TIMEOUT_MS;
    int rc = 0;
    size_t i;

    if (n > 8) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        char path[300], pub[310], comment[64];
        char *argv[16];
        int a = 0;

        if (sf_test_fmt(path, sizeof(path), "%s/%s", dir, k[i].name) != 0 ||
            sf_test_fmt(pub, sizeof(pub), "%s.pub", path) != 0) {
            rc = -1;
            break;
        }
        (void) unlink(path); /* ssh-keygen would ask before overwriting */
        (void) unlink(pub);
        snprintf(comment, sizeof(comment), "sshflow-test-%s", k[i].name);
        argv[a++] = (char *) SF_TEST_SSH_KEYGEN_PATH;
        argv[a++] = (char *) "-q";
        argv[a++] = (char *) "-N";
        argv[a++] = (char *) "";
        argv[a++] = (char *) "-t";
        argv[a++] = (char *) k[i].type;
        if (k[i].bits != NULL) {
            argv[a++] = (char *) "-b";
            argv[a++] = (char *) k[i].bits;
        }
        argv[a++] = (char *) "-C";
        argv[a++] = comment;
        argv[a++] = (char *) "-f";
        argv[a++] = path;
        argv[a] = NULL;
        pids[i] = spawn_raw(argv, FD_DEVNULL, FD_DEVNULL, FD_INHERIT);
        if (pids[i] < 0) {
            pids[i] = 0;
            rc = -1;
            break;
        }
    }
    for (i = 0; i < n; i++) {
        long long left = deadline - sf_test_now_ms();

        if (pids[i] <= 0) {
            continue;
        }
        if (sf_test_wait(pids[i], left > 0 ? (int) left : 1) != 0) {
            say("ssh-keygen -t %s failed", k[i].type);
            rc = -1;
        }
    }
    return rc;
}

/* All host and user keys into dir, in one concurrent batch. */
static int
keygen_all(const char *dir)
{
    struct keyspec all[8];
    size_t i;

    for (i = 0; i < 8; i++) {
        all[i] = i < 4 ? host_keys[i] : user_keys[i - 4];
    }
    return keygen_batch(dir, all, 8);
}

/* A complete key set in dir, owned by us and not writable by others? */
static bool
cache_valid(const char *dir)
{
    struct stat st;
    size_t i;

    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022) != 0) {
        return false;
    }
    for (i = 0; i < 8; i++) {
        const struct keyspec *k = i < 4 ? &host_keys[i] : &user_keys[i - 4];
        char path[300];

        if (sf_test_fmt(path, sizeof(path), "%s/%s.pub", dir, k->name) != 0 || access(path, R_OK) != 0) {
            return false;
        }
        path[strlen(path) - 4] = '\0';
        if (access(path, R_OK) != 0) {
            return false;
        }
    }
    return true;
}

/*
 * SSHFLOW_TEST_KEYCACHE=DIR: keep the keys in DIR/sf-sshkeys-v1 across
 * processes (scripts/test.sh sets it), so each test program does not pay for
 * RSA key generation. Created atomically (generate, then rename); 0 if usable.
 */
static int
use_shared_cache(const char *parent)
{
    char final[256], tmp[256];

    if (parent[0] != '/' || strlen(parent) > 180) {
        return -1;
    }
    (void) mkdir(parent, 0700);
    if (sf_test_fmt(final, sizeof(final), "%s/" CACHE_PREFIX "v1", parent) != 0) {
        return -1;
    }
    if (!cache_valid(final)) {
        if (sf_test_fmt(tmp, sizeof(tmp), "%s/" CACHE_PREFIX "tmp-XXXXXX", parent) != 0 || mkdtemp(tmp) == NULL) {
            return -1;
        }
        if (keygen_all(tmp) != 0 || rename(tmp, final) != 0) {
            rm_tree(tmp); /* failed, or another process won the race */
        }
        if (!cache_valid(final)) {
            return -1;
        }
    }
    snprintf(cache_dir, sizeof(cache_dir), "%s", final);
    cache_owner = 0; /* shared: never removed by us */
    return 0;
}

int
sf_test_sshd_init(void)
{
    const char *shared = getenv("SSHFLOW_TEST_KEYCACHE");

    if (cache_dir[0] != '\0' && cache_valid(cache_dir)) {
        return 0;
    }
    cache_dir[0] = '\0';
    if (shared != NULL && shared[0] != '\0' && use_shared_cache(shared) == 0) {
        return 0;
    }
    ensure_atexit();
    if (sf_test_make_tempdir(cache_dir, sizeof(cache_dir), CACHE_PREFIX) != 0) {
        return -1;
    }
    cache_owner = getpid();
    if (keygen_all(cache_dir) != 0) {
        rm_tree(cache_dir);
        cache_dir[0] = '\0';
        cache_owner = 0;
        return -1;
    }
    return 0;
}

int
sf_test_sshd_hostkey_pub(int which, char *out, size_t outsz)
{
    if (which < 0 || which >= SF_TEST_HOSTKEY_COUNT || out == NULL || outsz == 0) {
        say("sf_test_sshd_hostkey_pub: bad arguments");
        return -1;
    }
    if (sf_test_sshd_init() != 0) {
        return -1;
    }
    return sf_test_fmt(out, outsz, "%s/%s.pub", cache_dir, host_keys[which].name);
}

/* ---- algorithms: what we want enabled, less what this OpenSSH does not know ---- */

static const char *const want_kex[] = {
    "mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256", "curve25519-sha256@libssh.org", "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384", "ecdh-sha2-nistp521", "diffie-hellman-group14-sha256",
    "diffie-hellman-group16-sha512", NULL,
};
static const char *const want_cipher[] = {
    "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
    "aes128-ctr", "aes192-ctr", "aes256-ctr", NULL,
};
static const char *const want_mac[] = {
    "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256",
    "hmac-sha2-512", NULL,
};
static const char *const want_hostkey[] = {
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-512", "rsa-sha2-256", NULL,
};

static char alg_kex[1024], alg_cipher[1024], alg_mac[1024], alg_hostkey[1024];

/* Comma list of want[] names that `ssh -Q what` prints (all of them if that fails). */
static int
filter_algs(const char *what, const char *const want[], char *dst, size_t dstsz)
{
    static char known[16384];
    char *argv[] = { (char *) SF_TEST_SSH_PATH, (char *) "-Q", (char *) what, NULL };
    bool have_list;
    size_t len = 0, i;

    known[0] = '\n';
    have_list = sf_test_run(argv, NULL, known + 1, sizeof(known) - 2, NULL, 0, QUERY_TIMEOUT_MS) == 0;
    if (have_list) {
        size_t k = strlen(known);

        if (known[k - 1] != '\n') {
            known[k++] = '\n';
            known[k] = '\0';
        }
    }
    dst[0] = '\0';
    for (i = 0; want[i] != NULL; i++) {
        char needle[128];

        snprintf(needle, sizeof(needle), "\n%s\n", want[i]);
        if (have_list && strstr(known, needle) == NULL) {
            continue;
        }
        if (len + strlen(want[i]) + 2 > dstsz) {
            return -1;
        }
        len += (size_t) snprintf(dst + len, dstsz - len, "%s%s", len > 0 ? "," : "", want[i]);
    }
    return len > 0 ? 0 : -1;
}

static int
query_algs(void)
{
    if (alg_kex[0] != '\0') {
        return 0;
    }
    if (filter_algs("kex", want_kex, alg_kex, sizeof(alg_kex)) != 0 ||
        filter_algs("cipher", want_cipher, alg_cipher, sizeof(alg_cipher)) != 0 ||
        filter_algs("mac", want_mac, alg_mac, sizeof(alg_mac)) != 0 ||
        filter_algs("HostKeyAlgorithms", want_hostkey, alg_hostkey, sizeof(alg_hostkey)) != 0) {
        say("no usable algorithm list");
        alg_kex[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- sshd_config ---- */

struct cfg {
    char *buf;
    size_t cap, len;
    bool overflow;
    char kw[EXTRA_KEYWORDS_MAX][64]; /* keywords extra_config sets globally */
    size_t nkw;
};

static void
cfg_scan_extra(struct cfg *c, const char *extra)
{
    const char *p = extra;

    while (p != NULL && *p != '\0') {
        const char *line = p, *end = strchr(p, '\n');
        size_t k = 0;

        p = end != NULL ? end + 1 : NULL;
        while (*line == ' ' || *line == '\t') {
            line++;
        }
        if (*line == '#' || *line == '\n' || *line == '\r' || *line == '\0') {
            continue;
        }
        while (line[k] != '\0' && line[k] != ' ' && line[k] != '\t' && line[k] != '=' &&
               line[k] != '\n' && line[k] != '\r') {
            k++;
        }
        if (k == 5 && strncasecmp(line, "Match", 5) == 0) {
            break; /* what follows is scoped to the Match block */
        }
        if (k < sizeof(c->kw[0]) && c->nkw < EXTRA_KEYWORDS_MAX) {
            memcpy(c->kw[c->nkw], line, k);
            c->kw[c->nkw][k] = '\0';
            c->nkw++;
        }
    }
}

static void cfg_add(struct cfg *c, const char *f, ...) __attribute__((format(printf, 2, 3)));

/* Append one default line unless extra_config sets its keyword. */
static void
cfg_add(struct cfg *c, const char *f, ...)
{
    char line[2048];
    const char *sp;
    size_t klen, n, i;
    va_list ap;
    int r;

    va_start(ap, f);
    r = vsnprintf(line, sizeof(line), f, ap);
    va_end(ap);
    if (r < 0 || (size_t) r >= sizeof(line)) {
        c->overflow = true;
        return;
    }
    sp = strchr(line, ' ');
    klen = sp != NULL ? (size_t) (sp - line) : strlen(line);
    for (i = 0; i < c->nkw; i++) {
        if (strlen(c->kw[i]) == klen && strncasecmp(c->kw[i], line, klen) == 0) {
            return;
        }
    }
    n = strlen(line);
    if (c->len + n + 2 > c->cap) {
        c->overflow = true;
        return;
    }
    memcpy(c->buf + c->len, line, n);
    c->len += n;
    c->buf[c->len++] = '\n';
    c->buf[c->len] = '\0';
}

static int
write_config(const struct sf_test_sshd *s, const char *extra)
{
    static char buf[CONFIG_MAX];
    static struct cfg c;
    size_t i;

    memset(&c, 0, sizeof(c));
    c.buf = buf;
    c.cap = sizeof(buf);
    buf[0] = '\0';
    cfg_scan_extra(&c, extra);

    cfg_add(&c, "# sshflow test server (check/testlib/sshd.c); throwaway, 127.0.0.1 only");
    cfg_add(&c, "ListenAddress 127.0.0.1:%u", (unsigned) s->port);
    cfg_add(&c, "AddressFamily inet");
    for (i = 0; i < SF_TEST_HOSTKEY_COUNT; i++) {
        cfg_add(&c, "HostKey %s", s->hostkey[i]);
    }
    cfg_add(&c, "PidFile %s/sshd.pid", s->dir);
    cfg_add(&c, "AuthorizedKeysFile %s", s->authorized_keys);
    cfg_add(&c, "StrictModes no");
    cfg_add(&c, "UsePAM no");
    cfg_add(&c, "PubkeyAuthentication yes");
    cfg_add(&c, "PasswordAuthentication yes");
    cfg_add(&c, "PermitEmptyPasswords no");
    cfg_add(&c, "PermitRootLogin yes");
    cfg_add(&c, "KbdInteractiveAuthentication no");
    cfg_add(&c, "LogLevel VERBOSE");
    cfg_add(&c, "AcceptEnv LANG LC_* SF_*");
    cfg_add(&c, "Subsystem sftp internal-sftp");
    cfg_add(&c, "PermitUserEnvironment no");
    cfg_add(&c, "MaxStartups 100");
    cfg_add(&c, "MaxSessions 10");
    cfg_add(&c, "MaxAuthTries 10");
    cfg_add(&c, "LoginGraceTime 60");
    cfg_add(&c, "UseDNS no");
    cfg_add(&c, "PrintMotd no");
    cfg_add(&c, "PrintLastLog no");
    cfg_add(&c, "X11Forwarding no");
    cfg_add(&c, "AllowTcpForwarding yes");
    /*
     * bash run by sshd sources ~/.bashrc unless SHLVL says it is nested:
     * keep the login user's rc files (slow, may print) out of command output.
     */
    cfg_add(&c, "SetEnv SHLVL=1");
    cfg_add(&c, "KexAlgorithms %s", alg_kex);
    cfg_add(&c, "Ciphers %s", alg_cipher);
    cfg_add(&c, "MACs %s", alg_mac);
    cfg_add(&c, "HostKeyAlgorithms %s", alg_hostkey);
    if (c.overflow) {
        say("sshd_config too long");
        return -1;
    }
    if (extra != NULL && extra[0] != '\0') {
        size_t n = strlen(extra);

        if (c.len + n + 32 > c.cap) {
            say("extra_config too long");
            return -1;
        }
        c.len += (size_t) snprintf(buf + c.len, c.cap - c.len, "# extra_config\n%s%s", extra,
                                   extra[n - 1] == '\n' ? "" : "\n");
    }
    return sf_test_write_file(s->config, buf, c.len, 0600);
}

/* known_hosts lines "[127.0.0.1]:port type base64" for the current host keys. */
static int
write_known_hosts(const struct sf_test_sshd *s, const char *path)
{
    char out[16384], pub[310], key[8192];
    size_t len = 0, i;

    for (i = 0; i < SF_TEST_HOSTKEY_COUNT; i++) {
        char type[64], b64[8000];

        if (sf_test_fmt(pub, sizeof(pub), "%s.pub", s->hostkey[i]) != 0 || sf_test_read_file(pub, key, sizeof(key)) <= 0 ||
            sscanf(key, "%63s %7999s", type, b64) != 2) {
            say("cannot read %s", pub);
            return -1;
        }
        len += (size_t) snprintf(out + len, sizeof(out) - len, "[127.0.0.1]:%u %s %s\n",
                                 (unsigned) s->port, type, b64);
        if (len >= sizeof(out)) {
            return -1;
        }
    }
    return sf_test_write_file(path, out, len, 0644);
}

/* ---- start / stop ---- */

static bool
ensure_run_sshd(void)
{
    struct stat st;

    if (stat("/run/sshd", &st) == 0) {
        return S_ISDIR(st.st_mode);
    }
    if (mkdir("/run/sshd", 0755) != 0 && errno != EEXIST) {
        return false;
    }
    (void) chmod("/run/sshd", 0755);
    return stat("/run/sshd", &st) == 0 && S_ISDIR(st.st_mode);
}

bool
sf_test_sshd_available(void)
{
    const char *skip = getenv("SSHFLOW_SKIP_INTEROP");

    if (skip != NULL && skip[0] != '\0' && strcmp(skip, "0") != 0) {
        return false;
    }
    return access(SF_TEST_SSHD_PATH, X_OK) == 0 && access(SF_TEST_SSH_KEYGEN_PATH, X_OK) == 0 &&
           ensure_run_sshd();
}

static uint16_t
free_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    uint16_t port = 0;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return 0;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *) &a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *) &a, &alen) == 0) {
        port = ntohs(a.sin_port);
    }
    close(fd);
    return port;
}

/* Does 127.0.0.1:port accept and send an SSH banner within timeout_ms? */
static bool
speaks_ssh(uint16_t port, int timeout_ms)
{
    struct sockaddr_in a;
    struct pollfd p;
    char buf[256];
    ssize_t n;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &a, sizeof(a)) != 0) {
        close(fd);
        return false;
    }
    /* Waiting for the banner also means sshd has accepted (and forked for) us. */
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    n = poll(&p, 1, timeout_ms) == 1 ? read(fd, buf, sizeof(buf)) : -1;
    close(fd);
    return n >= 8 && memcmp(buf, "SSH-2.0-", 8) == 0;
}

static off_t
file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* The log from offset `from` on, NUL-terminated (the last bufsz - 1 bytes of it). */
static void
log_since(const char *path, off_t from, char *buf, size_t bufsz)
{
    off_t size = file_size(path);
    ssize_t n = 0;
    int fd;

    buf[0] = '\0';
    if (size - from > (off_t) bufsz - 1) {
        from = size - ((off_t) bufsz - 1);
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    n = pread(fd, buf, bufsz - 1, from);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
}

/*
 * Wait (at most 2 s) until the listener has no child left: then the process
 * that served our readiness probe has logged its last line, and a test that
 * reads the log from "now" on never sees the probe.
 */
static void
quiesce(pid_t listener)
{
    static pid_t pids[TREE_MAX];
    long long deadline = sf_test_now_ms() + 2000;

    while (sf_test_tree_collect(listener, pids, TREE_MAX) > 1 && sf_test_now_ms() < deadline) {
        sf_test_sleep_ms(5);
    }
}

/*
 * Start `sshd -D` with s->config and wait until it listens: its PidFile
 * names it (written after the listen sockets are bound) and a connection
 * gets an SSH banner. 0 = up, 1 = its port was taken (retry elsewhere), -1 = failed.
 */
static int
launch(struct sf_test_sshd *s)
{
    char *argv[] = { (char *) SF_TEST_SSHD_PATH, (char *) "-D", (char *) "-e", (char *) "-f",
                     s->config, (char *) "-E", s->log, NULL };
    char pidfile[300], text[4096];
    long long deadline = sf_test_now_ms() + START_TIMEOUT_MS;
    off_t log_from = file_size(s->log);
    pid_t pid;
    int st = 0;

    if (sf_test_fmt(pidfile, sizeof(pidfile), "%s/sshd.pid", s->dir) != 0) {
        return -1;
    }
    (void) unlink(pidfile);
    pid = spawn_raw(argv, FD_DEVNULL, FD_DEVNULL, FD_INHERIT);
    if (pid < 0) {
        return -1;
    }
    for (;;) {
        int w = sf_test_wait_until(pid, sf_test_now_ms(), &st);

        if (w != 0) {
            log_since(s->log, log_from, text, sizeof(text));
            if (strstr(text, "Address already in use") != NULL) {
                return 1;
            }
            say("sshd exited (status %d) during start-up; its log:\n%s", w == 1 ? decode_status(st) : -1,
                text);
            return -1;
        }
        if (sf_test_read_file(pidfile, text, sizeof(text)) > 0 && atol(text) == (long) pid &&
            speaks_ssh(s->port, 2000)) {
            quiesce(pid);
            s->pid = pid;
            reg_set(s->dir, pid);
            return 0;
        }
        if (sf_test_now_ms() >= deadline) {
            break;
        }
        sf_test_sleep_ms(10);
    }
    end_tree(pid);
    log_since(s->log, log_from, text, sizeof(text));
    say("sshd did not accept connections on 127.0.0.1:%u within %d ms; its log:\n%s",
        (unsigned) s->port, START_TIMEOUT_MS, text);
    return -1;
}

static int
copy_keys(const struct sf_test_sshd *s, const char *const dst[], const struct keyspec *k, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        char from[300], from_pub[310], to_pub[310];

        if (sf_test_fmt(from, sizeof(from), "%s/%s", cache_dir, k[i].name) != 0 ||
            sf_test_fmt(from_pub, sizeof(from_pub), "%s.pub", from) != 0 ||
            sf_test_fmt(to_pub, sizeof(to_pub), "%s.pub", dst[i]) != 0 || copy_file(from, dst[i], 0600) != 0 ||
            copy_file(from_pub, to_pub, 0644) != 0) {
            return -1;
        }
    }
    (void) s;
    return 0;
}

static int
write_authorized_keys(const struct sf_test_sshd *s)
{
    const char *keys[3] = { s->userkey_ed25519, s->userkey_ecdsa, s->userkey_rsa };
    char out[16384];
    size_t len = 0, i;

    for (i = 0; i < 3; i++) {
        char pub[310];
        ssize_t n;

        if (sf_test_fmt(pub, sizeof(pub), "%s.pub", keys[i]) != 0) {
            return -1;
        }
        n = sf_test_read_file(pub, out + len, sizeof(out) - len);
        if (n <= 0 || len + (size_t) n + 2 >= sizeof(out)) {
            say("cannot read %s", pub);
            return -1;
        }
        len += (size_t) n;
        if (out[len - 1] != '\n') {
            out[len++] = '\n';
        }
    }
    return sf_test_write_file(s->authorized_keys, out, len, 0600);
}

static const char *
current_user(void)
{
    static char name[64];
    struct passwd *pw;

    if (name[0] == '\0') {
        pw = getpwuid(geteuid());
        snprintf(name, sizeof(name), "%s", pw != NULL ? pw->pw_name : "root");
    }
    return name;
}

static int
fill_paths(struct sf_test_sshd *s)
{
    size_t i;

    for (i = 0; i < SF_TEST_HOSTKEY_COUNT; i++) {
        if (sf_test_fmt(s->hostkey[i], sizeof(s->hostkey[i]), "%s/%s", s->dir, host_keys[i].name) != 0) {
            return -1;
        }
    }
    if (sf_test_fmt(s->config, sizeof(s->config), "%s/sshd_config", s->dir) != 0 ||
        sf_test_fmt(s->known_hosts, sizeof(s->known_hosts), "%s/known_hosts", s->dir) != 0 ||
        sf_test_fmt(s->known_hosts_current, sizeof(s->known_hosts_current), "%s/known_hosts_current",
            s->dir) != 0 ||
        sf_test_fmt(s->userkey_ed25519, sizeof(s->userkey_ed25519), "%s/%s", s->dir, user_keys[0].name) != 0 ||
        sf_test_fmt(s->userkey_ecdsa, sizeof(s->userkey_ecdsa), "%s/%s", s->dir, user_keys[1].name) != 0 ||
        sf_test_fmt(s->userkey_rsa, sizeof(s->userkey_rsa), "%s/%s", s->dir, user_keys[2].name) != 0 ||
        sf_test_fmt(s->userkey_unauth, sizeof(s->userkey_unauth), "%s/%s", s->dir, user_keys[3].name) != 0 ||
        sf_test_fmt(s->authorized_keys, sizeof(s->authorized_keys), "%s/authorized_keys", s->dir) != 0 ||
        sf_test_fmt(s->log, sizeof(s->log), "%s/sshd.log", s->dir) != 0) {
        return -1;
    }
    return 0;
}

int
sf_test_sshd_start(struct sf_test_sshd *s, const char *extra_config)
{
    const char *host_dst[SF_TEST_HOSTKEY_COUNT];
    const char *user_dst[4];
    int tries, r = -1;
    size_t i;

    memset(s, 0, sizeof(*s));
    s->user = current_user();
    if (!ensure_run_sshd()) {
        say("/run/sshd is missing and cannot be created (run as root)");
        return -1;
    }
    if (sf_test_sshd_init() != 0 || query_algs() != 0) {
        return -1;
    }
    if (sf_test_make_tempdir(s->dir, sizeof(s->dir), DIR_PREFIX) != 0) {
        return -1;
    }
    reg_set(s->dir, 0);
    if (fill_paths(s) != 0) {
        goto out;
    }
    for (i = 0; i < SF_TEST_HOSTKEY_COUNT; i++) {
        host_dst[i] = s->hostkey[i];
    }
    user_dst[0] = s->userkey_ed25519;
    user_dst[1] = s->userkey_ecdsa;
    user_dst[2] = s->userkey_rsa;
    user_dst[3] = s->userkey_unauth;
    if (copy_keys(s, host_dst, host_keys, SF_TEST_HOSTKEY_COUNT) != 0 || copy_keys(s, user_dst, user_keys, 4) != 0 ||
        write_authorized_keys(s) != 0) {
        goto out;
    }
    for (tries = 0; tries < START_TRIES; tries++) {
        s->port = free_port();
        if (s->port == 0) {
            say("no free port on 127.0.0.1");
            break;
        }
        if (write_config(s, extra_config) != 0 || write_known_hosts(s, s->known_hosts) != 0 ||
            write_known_hosts(s, s->known_hosts_current) != 0) {
            break;
        }
        r = launch(s);
        if (r != 1) {
            break;
        }
        r = -1;
    }
out:
    if (r != 0) {
        sf_test_sshd_stop(s);
        return -1;
    }
    return 0;
}

void
sf_test_sshd_stop(struct sf_test_sshd *s)
{
    if (s->pid > 0) {
        end_tree(s->pid);
        s->pid = 0;
    }
    if (s->dir[0] != '\0') {
        rm_tree(s->dir);
        reg_drop(s->dir);
        s->dir[0] = '\0';
    }
    s->port = 0;
}

void
sf_test_sshd_kill_all(struct sf_test_sshd *s)
{
    if (s->pid > 0) {
        end_tree(s->pid);
        s->pid = 0;
        if (s->dir[0] != '\0') {
            reg_set(s->dir, 0);
        }
    }
}

pid_t
sf_test_sshd_inetd(struct sf_test_sshd *s, int *to_fd, int *from_fd)
{
    char *argv[] = { (char *) SF_TEST_SSHD_PATH, (char *) "-i", (char *) "-f", s->config,
                     (char *) "-E", s->log, NULL };

    if (s->dir[0] == '\0' || to_fd == NULL || from_fd == NULL) {
        return -1;
    }
    return sf_test_spawn(argv, to_fd, from_fd);
}

int
sf_test_sshd_rotate_hostkeys(struct sf_test_sshd *s)
{
    long long deadline;
    int r;

    if (s->dir[0] == '\0' || s->port == 0) {
        return -1;
    }
    if (s->pid > 0) {
        end_tree(s->pid);
        s->pid = 0;
        reg_set(s->dir, 0);
    }
    if (keygen_batch(s->dir, host_keys, SF_TEST_HOSTKEY_COUNT) != 0 ||
        write_known_hosts(s, s->known_hosts_current) != 0) {
        return -1;
    }
    /* Same port, so old known_hosts entries still apply: retry while it is busy. */
    deadline = sf_test_now_ms() + START_TIMEOUT_MS;
    while ((r = launch(s)) == 1 && sf_test_now_ms() < deadline) {
        sf_test_sleep_ms(100);
    }
    if (r != 0) {
        say("cannot restart sshd on port %u after rotating host keys", (unsigned) s->port);
        return -1;
    }
    return 0;
}

/* ---- the password user ---- */

int
sf_test_password_user(void)
{
    char *useradd[] = { (char *) "/usr/sbin/useradd", (char *) "-m", (char *) "-s", (char *) "/bin/sh",
                        (char *) SF_TEST_PW_USER, NULL };
    char *chpasswd[] = { (char *) "/usr/sbin/chpasswd", NULL };
    int i;

    if (geteuid() != 0 || access(useradd[0], X_OK) != 0 || access(chpasswd[0], X_OK) != 0) {
        return -1;
    }
    if (getpwnam(SF_TEST_PW_USER) == NULL) {
        /* A parallel test may create it at the same time: judge by the result. */
        (void) sf_test_run(useradd, NULL, NULL, 0, NULL, 0, 30000);
        if (getpwnam(SF_TEST_PW_USER) == NULL) {
            say("cannot create user %s", SF_TEST_PW_USER);
            return -1;
        }
    }
    /* chpasswd fails while another process holds the shadow lock: retry. */
    for (i = 0; i < 50; i++) {
        if (sf_test_run(chpasswd, SF_TEST_PW_USER ":" SF_TEST_PW_PASSWORD "\n", NULL, 0, NULL, 0, 30000) ==
            0) {
            return 0;
        }
        sf_test_sleep_ms(100);
    }
    say("cannot set the password of %s", SF_TEST_PW_USER);
    return -1;
}
