/*
 * check/testlib/testutil.h -- small helpers shared by the test harnesses
 * (sshd.c, servers.c, authkit.c) and the tests: monotonic time, bounded
 * sleeps, whole-file read/write, checked snprintf, temp dirs, and the fork/exec and
 * process-tree primitives the server harnesses build on.
 *
 * Owns: nothing beyond the calls it makes; the process-tree helpers use one
 * static pid table. Must never: signal a process that is not the given root
 * or one of its descendants, wait without a bound, or be linked into the
 * library (test-only code). Not thread-safe (main thread only).
 */
#ifndef SF_TEST_TESTUTIL_H
#define SF_TEST_TESTUTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* fd arguments of sf_test_spawn_fds besides a real descriptor */
#define SF_TEST_FD_DEVNULL (-1)
#define SF_TEST_FD_INHERIT (-2)

/* Milliseconds of CLOCK_MONOTONIC. */
long long sf_test_now_ms(void);

/* Sleep ms milliseconds (resumed across EINTR). */
void sf_test_sleep_ms(int ms);

/*
 * snprintf into dst[dstsz]; 0, or -1 with a message on stderr (naming the
 * format) if it did not fit.
 */
int sf_test_fmt(char *dst, size_t dstsz, const char *f, ...) __attribute__((format(printf, 3, 4)));

/*
 * Write len bytes to path (created or truncated, O_CLOEXEC), then fchmod it
 * to mode (so mode holds whatever the umask or an older file said). 0, or
 * -1 with a message on stderr.
 */
int sf_test_write_file(const char *path, const void *data, size_t len, mode_t mode);

/*
 * Read at most bufsz - 1 bytes of path into buf, NUL-terminated. Returns the
 * length, or -1 if it cannot be opened or a read fails (buf then holds ""
 * or what was read so far) or bufsz is 0. Silent.
 */
ssize_t sf_test_read_file(const char *path, char *buf, size_t bufsz);

/*
 * mkdtemp "$TMPDIR/<prefix>XXXXXX" (TMPDIR only if absolute and at most 120
 * bytes, else /tmp) into out[outsz]. 0, or -1 with a message on stderr and
 * out emptied if mkdtemp failed.
 */
int sf_test_make_tempdir(char *out, size_t outsz, const char *prefix);

/* Close every fd >= 3 (async-signal-safe: usable in a forked child). */
void sf_test_close_from3(void);

/*
 * In a freshly forked child of parent: PR_SET_PDEATHSIG(deathsig) (it
 * _exit(126)s if that fails or parent is already gone), SIGPIPE (and with
 * reset_sigchld SIGCHLD too) back to SIG_DFL, empty signal mask.
 * Async-signal-safe.
 */
void sf_test_child_setup(pid_t parent, int deathsig, bool reset_sigchld);

/*
 * fork + exec argv[0] (absolute path) with fd0/fd1/fd2 as its
 * stdin/stdout/stderr: a descriptor, SF_TEST_FD_DEVNULL or
 * SF_TEST_FD_INHERIT. The child is set up by sf_test_child_setup(deathsig,
 * reset_sigchld) and keeps no other descriptor. Returns the pid, or -1 with
 * a message on stderr.
 */
pid_t sf_test_spawn_fds(char *const argv[], int fd0, int fd1, int fd2, int deathsig,
                        bool reset_sigchld);

/*
 * waitpid(WNOHANG) on our child pid every 5 ms until deadline (an
 * sf_test_now_ms value): 1 = reaped (*st set), 0 = still running at the
 * deadline, -1 = error.
 */
int sf_test_wait_until(pid_t pid, long long deadline, int *st);

/* root (first) and all its live, non-zombie descendants into pids[max]; the count. */
size_t sf_test_tree_collect(pid_t root, pid_t *pids, size_t max);

/*
 * Freeze (SIGSTOP) root and every descendant, rescanning until no new
 * process appears (at most 20 rounds; a stopped process cannot fork), then
 * SIGKILL them all and reap root (our child) within timeout_ms. Tracks at
 * most 512 processes. No-op for root <= 0.
 */
void sf_test_tree_end(pid_t root, int timeout_ms);

#endif /* SF_TEST_TESTUTIL_H */
