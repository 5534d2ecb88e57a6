/*
 * check/testlib/servers.h -- test harness: five real SSH servers (OpenSSH,
 * Dropbear, tinysshd, paramiko, AsyncSSH) on 127.0.0.1 with throwaway keys,
 * for the interop matrix (check/check_matrix.c).
 *
 * Owns: a private temp dir per server (host keys, user key, logs, a fake
 * home for tinysshd), the processes it starts and their descendants, and a
 * registry of running servers stopped by an atexit handler. OpenSSH is
 * started through check/testlib/sshd.h. Must never: touch a real ~/.ssh or
 * /etc/ssh (tinysshd reads ~/.ssh/authorized_keys, so it runs in a private
 * mount namespace where the test user's home is a directory of ours),
 * listen anywhere but 127.0.0.1, signal a process that is not one it
 * started or a descendant of one, block without a bound, or be linked into
 * the library (test-only code).
 *
 * Not thread-safe: call it from the test's main thread (the children get
 * PR_SET_PDEATHSIG, which fires when the forking *thread* exits).
 */
#ifndef SF_TEST_SERVERS_H
#define SF_TEST_SERVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sshd.h"

enum sf_test_srv_kind {
    SF_TEST_SRV_OPENSSH = 0,
    SF_TEST_SRV_DROPBEAR = 1,
    SF_TEST_SRV_TINYSSH = 2,
    SF_TEST_SRV_PARAMIKO = 3,
    SF_TEST_SRV_ASYNCSSH = 4,
    SF_TEST_SRV_COUNT = 5
};

#define SF_TEST_SRV_HOSTKEYS_MAX 8
#define SF_TEST_SRV_LIST_MAX 4096

struct sf_test_server {
    int kind;                  /* enum sf_test_srv_kind */
    const char *name;          /* "openssh", "dropbear", "tinysshd", "paramiko", "asyncssh" */
    char dir[256];             /* private temp dir ("" for OpenSSH: see sshd) */
    uint16_t port;             /* TCP port on 127.0.0.1 */
    pid_t pid;                 /* server (or accept loop) process; 0 when stopped */
    char log[300];             /* the server's stderr / log file */
    char user[64];             /* user to log in as */
    char userkey[300];         /* private key (OpenSSH format) to log in with, or "" */
    const char *password;      /* password to log in with, or NULL */
    char hostfp[SF_TEST_SRV_HOSTKEYS_MAX][64]; /* "SHA256:..." of every host key it serves */
    int nhostfp;
    char hostkeys[128];        /* the host keys it was given, in words ("ed25519, rsa-3072") */
    char package[192];         /* Debian package and version ("openssh-server 1:9.2p1-2..."), or "" */
    struct sf_test_sshd sshd;  /* the OpenSSH server (kind SF_TEST_SRV_OPENSSH) */
};

/* What a server offers, read from its banner and KEXINIT (client-to-server lists). */
struct sf_test_kexinit {
    char banner[256];                  /* version line without CR LF */
    char kex[SF_TEST_SRV_LIST_MAX];    /* comma-separated name-lists as sent */
    char hostkey[SF_TEST_SRV_LIST_MAX];
    char cipher[SF_TEST_SRV_LIST_MAX];
    char mac[SF_TEST_SRV_LIST_MAX];
};

/* "openssh", ... for a kind; NULL for an unknown kind. */
const char *sf_test_server_name(int kind);

/*
 * True if this kind of server can run here: its programs are installed (and
 * for Dropbear and tinysshd, which log in another local user, we are root),
 * and SSHFLOW_SKIP_INTEROP is not set. Otherwise false with the reason in
 * why[whysz].
 */
bool sf_test_server_available(int kind, char *why, size_t whysz);

/*
 * Generate keys and start a server of this kind on a free 127.0.0.1 port;
 * wait (bounded, 20 s) until it answers with an SSH banner. It offers every
 * algorithm it implements (OpenSSH: every name `ssh -Q` lists; the Python
 * servers: their full lists, not only their defaults; Dropbear and tinysshd:
 * what they were built with), with host keys Ed25519, ECDSA and RSA where it
 * takes them. Returns 0, or -1 with a message on stderr (s is then clean).
 */
int sf_test_server_start(struct sf_test_server *s, int kind);

/*
 * Stop it: freeze the server and every descendant (SIGSTOP), SIGKILL them,
 * reap it (bounded, 3 s), remove the directory. Safe twice and on a zeroed
 * struct.
 */
void sf_test_server_stop(struct sf_test_server *s);

/*
 * Connect to 127.0.0.1:port, send a version line, and read the server's
 * version line and its first (clear-text) KEXINIT. Bounded by timeout_ms.
 * Returns 0, or -1 with a message on stderr.
 */
int sf_test_kexinit_probe(uint16_t port, int timeout_ms, struct sf_test_kexinit *out);

#endif /* SF_TEST_SERVERS_H */
