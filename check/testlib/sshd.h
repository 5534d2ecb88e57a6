/*
 * check/testlib/sshd.h -- test harness: a private OpenSSH server with
 * throwaway keys on a free 127.0.0.1 port, for interop tests.
 *
 * Owns: a temp dir per server (keys, sshd_config, authorized_keys,
 * known_hosts, log), the sshd processes it starts, a process-wide cache of
 * freshly generated keys, and small bounded process helpers (spawn, wait,
 * run-and-capture). Must never: touch the user's ~/.ssh or /etc/ssh, kill a
 * process it did not start, wait without a bound, or be linked into the
 * library (test-only code).
 *
 * Not thread-safe: call it from the test's main thread. The sshd children
 * get PR_SET_PDEATHSIG(SIGTERM), which fires when the *thread* that forked
 * them exits, so forking from a short-lived thread would kill the server
 * early.
 *
 * Servers still running when the process that started them calls exit()
 * (for example a Check test whose ck_assert failed) are stopped and their
 * directories removed by an atexit handler. A crash leaves the directory
 * behind, but PDEATHSIG still stops the server.
 */
#ifndef SF_TEST_SSHD_H
#define SF_TEST_SSHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SF_TEST_SSHD_PATH "/usr/sbin/sshd"
#define SF_TEST_SSH_PATH "/usr/bin/ssh"
#define SF_TEST_SSH_KEYGEN_PATH "/usr/bin/ssh-keygen"

#define SF_TEST_PW_USER "sshflowtest"
#define SF_TEST_PW_PASSWORD "sshflow-Test-pw1"

/* Indexes into hostkey[]. */
enum {
    SF_TEST_HOSTKEY_ED25519 = 0,
    SF_TEST_HOSTKEY_ECDSA256 = 1,
    SF_TEST_HOSTKEY_RSA = 2,
    SF_TEST_HOSTKEY_ECDSA384 = 3,
    SF_TEST_HOSTKEY_COUNT = 4
};

struct sf_test_sshd {
    char dir[256];            /* private temp dir: keys, config, logs */
    uint16_t port;            /* TCP port it listens on (127.0.0.1) */
    pid_t pid;                /* sshd -D process; 0 when not running */
    char config[300];         /* path of sshd_config */
    char known_hosts[300];    /* every host key as "[127.0.0.1]:port"; keeps the
                                 ORIGINAL keys after sf_test_sshd_rotate_hostkeys */
    char known_hosts_current[300]; /* same, but always the keys sshd serves now */
    char hostkey[4][300];     /* host private keys: ed25519, ecdsa256, rsa (3072),
                                 ecdsa384; the public key is PATH.pub */
    char userkey_ed25519[300], userkey_ecdsa[300], userkey_rsa[300]; /* authorized
                                 user keys, OpenSSH format, no passphrase (.pub beside);
                                 ecdsa is nistp256, rsa is 3072 bits */
    char userkey_unauth[300]; /* an ed25519 key NOT in authorized_keys */
    char authorized_keys[300]; /* the AuthorizedKeysFile (all users) */
    char log[300];            /* sshd's log file (-E) */
    const char *user;         /* the login user: the current user (root in CI) */
};

/*
 * Optional: generate the process-wide key cache now. Call it from main()
 * before srunner_run_all() so that Check's forked test processes inherit the
 * keys instead of each generating its own (RSA 3072: 1-4 s). The cache is
 * removed when this process exits. With SSHFLOW_TEST_KEYCACHE=DIR in the
 * environment (scripts/test.sh sets it) the keys live in DIR/sf-sshkeys-v1
 * instead, shared by all test programs and kept. sf_test_sshd_start calls
 * this itself when needed. Returns 0 or -1 with a message on stderr.
 */
int sf_test_sshd_init(void);

/*
 * Path (into out[outsz]) of the public key "....pub" of host key `which`
 * (SF_TEST_HOSTKEY_*) that servers started from now on serve: the key
 * cache's copy (sf_test_sshd_init is called if needed). For signing a host
 * certificate before sf_test_sshd_start (pass it with "HostCertificate
 * PATH" in extra_config). Read it, never write or sign in place (ssh-keygen
 * -s would put the certificate next to it: copy the file first). Servers
 * rotated with sf_test_sshd_rotate_hostkeys serve other keys. Returns 0 or
 * -1 with a message on stderr.
 */
int sf_test_sshd_hostkey_pub(int which, char *out, size_t outsz);

/*
 * Create keys and config (extra_config, may be NULL, is a block of
 * sshd_config lines) and start `sshd -D -e -f CONFIG -E LOG` on a free
 * 127.0.0.1 port; wait (bounded, 10 s) until it answers a connection with
 * an SSH banner, and until the process that served that probe has exited (so
 * the log holds nothing more about it: log offsets taken after start are
 * clean).
 *
 * sshd keeps the first value it reads for a keyword, so the harness leaves
 * out each of its default lines whose keyword extra_config sets (before any
 * Match line) and writes extra_config after its defaults: extra_config
 * overrides, and a Match block in it stays last. The defaults enable all
 * algorithms the client must test (every name `ssh -Q` knows, others are left
 * out), password and publickey auth, root login, AcceptEnv LANG LC_* SF_*,
 * internal-sftp, LogLevel VERBOSE, MaxStartups 100, MaxSessions 10, and
 * SetEnv SHLVL=1 (so bash does not source the login user's ~/.bashrc, which
 * is slow here and could print into command output).
 * Returns 0 or -1 with a message on stderr (s is then stopped and cleaned).
 */
int sf_test_sshd_start(struct sf_test_sshd *s, const char *extra_config);

/*
 * Stop it: freeze (SIGSTOP) sshd and all its descendants, SIGKILL them, reap
 * the listener (bounded, 3 s); remove the directory. Safe twice, and safe on
 * a zeroed struct. (No SIGTERM: a listener handling SIGTERM may still accept
 * a queued connection and fork a child that nothing could then find.)
 */
void sf_test_sshd_stop(struct sf_test_sshd *s);

/*
 * Kill sshd and all its descendants (per-connection and session processes)
 * with SIGKILL, and reap the listener: for "server dies mid-transfer" tests.
 * The directory stays (logs remain readable); sf_test_sshd_stop still cleans.
 * Established connections see their TCP connection closed.
 */
void sf_test_sshd_kill_all(struct sf_test_sshd *s);

/*
 * Spawn `sshd -i -f CONFIG -E LOG` (inetd mode: SSH on its stdin/stdout) with
 * two pipes; *to_fd writes to its stdin, *from_fd reads its stdout (both
 * close-on-exec, owned by the caller). Returns its pid (reap it with
 * sf_test_wait) or -1. Needs a started s (for the config).
 */
pid_t sf_test_sshd_inetd(struct sf_test_sshd *s, int *to_fd, int *from_fd);

/*
 * Replace the four host keys with newly generated ones and restart sshd on
 * the same port. s->known_hosts keeps the old keys (a client using it sees a
 * changed key); s->known_hosts_current gets the new ones. Returns 0 or -1.
 */
int sf_test_sshd_rotate_hostkeys(struct sf_test_sshd *s);

/*
 * Password user: ensure a local account SF_TEST_PW_USER ("sshflowtest")
 * exists with password SF_TEST_PW_PASSWORD ("sshflow-Test-pw1") (useradd +
 * chpasswd; needs root). Returns 0 if available, -1 (and the caller skips)
 * if not possible.
 */
int sf_test_password_user(void);

/*
 * True if interop tests can run here: sshd and ssh-keygen present, /run/sshd
 * exists or can be created, and SSHFLOW_SKIP_INTEROP is not set in the
 * environment.
 */
bool sf_test_sshd_available(void);

/* ---- small process helpers, also useful to tests ---- */

/*
 * Spawn argv[0] (an absolute path) with argv; its stdin/stdout are pipes
 * returned in *to_fd / *from_fd (either may be NULL: then /dev/null). Its
 * stderr is inherited. The child gets PR_SET_PDEATHSIG(SIGTERM). Returns the
 * pid or -1.
 */
pid_t sf_test_spawn(char *const argv[], int *to_fd, int *from_fd);

/*
 * Wait at most timeout_ms for pid; on timeout SIGKILL it and reap. Returns
 * its exit code (0-255), 128 + signal number if a signal ended it, or -1 on
 * timeout or error.
 */
int sf_test_wait(pid_t pid, int timeout_ms);

/*
 * Run argv[0] (absolute path) with argv, feeding it the NUL-terminated
 * string `input` (may be NULL: empty stdin) and capturing stdout into
 * out[outsz] and stderr into err[errsz] (each NUL-terminated and truncated to
 * fit; either may be NULL to discard). Bounded by timeout_ms (killed after
 * it). SIGPIPE is ignored while it runs. Returns as sf_test_wait.
 */
int sf_test_run(char *const argv[], const char *input, char *out, size_t outsz, char *err,
                size_t errsz, int timeout_ms);

#endif /* SF_TEST_SSHD_H */
