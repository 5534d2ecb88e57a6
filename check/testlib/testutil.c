/*
 * check/testlib/testutil.c -- small helpers shared by the test harnesses
 * and tests (see testutil.h): time, sleeps, file read/write, checked
 * snprintf, temp dirs, fork/exec with chosen fds, and freeze-and-kill of a
 * process tree.
 *
 * Owns: a static pid table for sf_test_tree_end. Must never: signal a
 * process that is not the given root or one of its descendants, block
 * without a bound, or be linked into the library. Not thread-safe.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TREE_MAX 512 /* processes under one root we can track */

long long
sf_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
sf_test_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int
sf_test_fmt(char *dst, size_t dstsz, const char *f, ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(dst, dstsz, f, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= dstsz) {
        fprintf(stderr, "sf_test: path or text too long: %s\n", f);
        return -1;
    }
    return 0;
}

int
sf_test_write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    const char *p = data;
    size_t off = 0;
    int fd = -1;
    int rc = -1;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "sf_test: open %s: %s\n", path, strerror(errno));
        goto out;
    }
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "sf_test: write %s: %s\n", path, strerror(errno));
            goto out;
        }
        off += (size_t) n;
    }
    if (fchmod(fd, mode) != 0) {
        fprintf(stderr, "sf_test: chmod %s: %s\n", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

ssize_t
sf_test_read_file(const char *path, char *buf, size_t bufsz)
{
    size_t off = 0;
    int fd;

    if (bufsz == 0) {
        return -1;
    }
    buf[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    while (off + 1 < bufsz) {
        ssize_t n = read(fd, buf + off, bufsz - 1 - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            buf[off] = '\0';
            close(fd);
            return -1;
        }
        if (n == 0) {
            break;
        }
        off += (size_t) n;
    }
    buf[off] = '\0';
    close(fd);
    return (ssize_t) off;
}

int
sf_test_make_tempdir(char *out, size_t outsz, const char *prefix)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || tmp[0] != '/' || strlen(tmp) > 120) {
        tmp = "/tmp";
    }
    if (sf_test_fmt(out, outsz, "%s/%sXXXXXX", tmp, prefix) != 0) {
        return -1;
    }
    if (mkdtemp(out) == NULL) {
        fprintf(stderr, "sf_test: mkdtemp %s: %s\n", out, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- processes ---- */

void
sf_test_close_from3(void)
{
    long max;
    int fd;

    if (close_range(3, ~0U, 0) == 0) {
        return;
    }
    max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > 65536) {
        max = 65536;
    }
    for (fd = 3; fd < max; fd++) {
        (void) close(fd);
    }
}

void
sf_test_child_setup(pid_t parent, int deathsig, bool reset_sigchld)
{
    sigset_t none;

    /* Die with the (thread of the) test process that forked us. */
    if (prctl(PR_SET_PDEATHSIG, deathsig) != 0 || getppid() != parent) {
        _exit(126);
    }
    signal(SIGPIPE, SIG_DFL);
    if (reset_sigchld) {
        signal(SIGCHLD, SIG_DFL);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

pid_t
sf_test_spawn_fds(char *const argv[], int fd0, int fd1, int fd2, int deathsig, bool reset_sigchld)
{
    pid_t parent = getpid();
    pid_t pid;

    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "sf_test: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fds[3] = { fd0, fd1, fd2 };
        int i;

        /* Only async-signal-safe calls until exec. */
        sf_test_child_setup(parent, deathsig, reset_sigchld);
        for (i = 0; i < 3; i++) {
            int fd = fds[i];

            if (fd == SF_TEST_FD_INHERIT) {
                continue;
            }
            if (fd < 0) {
                fd = open("/dev/null", O_RDWR);
                if (fd < 0) {
                    _exit(126);
                }
            }
            if (fd != i && dup2(fd, i) < 0) {
                _exit(126);
            }
        }
        /* Keep no stray descriptor of the test (sockets, pipes) alive. */
        sf_test_close_from3();
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int
sf_test_wait_until(pid_t pid, long long deadline, int *st)
{
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);

        if (r == pid) {
            return 1;
        }
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return -1;
        }
        if (sf_test_now_ms() >= deadline) {
            return 0;
        }
        sf_test_sleep_ms(5);
    }
}

/* ppid and state of pid from /proc; -1 if gone. */
static int
proc_stat(pid_t pid, pid_t *ppid, char *state)
{
    char path[64], buf[1024];
    const char *p;
    long pp = 0;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long) pid);
    if (sf_test_read_file(path, buf, sizeof(buf)) <= 0) {
        return -1;
    }
    /* "pid (comm) S ppid ...": comm may hold spaces and parentheses. */
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %c %ld", state, &pp) != 2) {
        return -1;
    }
    *ppid = (pid_t) pp;
    return 0;
}

size_t
sf_test_tree_collect(pid_t root, pid_t *pids, size_t max)
{
    size_t n = 0;
    bool grew = true;

    pids[n++] = root;
    while (grew && n < max) {
        DIR *d = opendir("/proc");
        struct dirent *e;

        grew = false;
        if (d == NULL) {
            break;
        }
        while ((e = readdir(d)) != NULL && n < max) {
            char *end = NULL;
            long v = strtol(e->d_name, &end, 10);
            pid_t ppid = 0;
            char state = 0;
            bool known = false, parent_in = false;
            size_t i;

            if (end == e->d_name || *end != '\0' || v <= 0) {
                continue;
            }
            if (proc_stat((pid_t) v, &ppid, &state) != 0 || state == 'Z') {
                continue;
            }
            for (i = 0; i < n; i++) {
                known = known || pids[i] == (pid_t) v;
                parent_in = parent_in || pids[i] == ppid;
            }
            if (!known && parent_in) {
                pids[n++] = (pid_t) v;
                grew = true;
            }
        }
        closedir(d);
    }
    return n;
}

void
sf_test_tree_end(pid_t root, int timeout_ms)
{
    static pid_t pids[TREE_MAX];
    size_t n = 0, prev = 0, i;
    int round, st;

    if (root <= 0) {
        return;
    }
    for (round = 0; round < 20; round++) {
        n = sf_test_tree_collect(root, pids, TREE_MAX);
        for (i = 0; i < n; i++) {
            (void) kill(pids[i], SIGSTOP);
        }
        if (round > 0 && n == prev) {
            break;
        }
        prev = n;
        sf_test_sleep_ms(2);
    }
    for (i = 0; i < n; i++) {
        (void) kill(pids[i], SIGKILL);
    }
    (void) sf_test_wait_until(root, sf_test_now_ms() + timeout_ms, &st);
}
