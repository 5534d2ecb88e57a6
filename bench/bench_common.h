/*
 * bench/bench_common.h -- what the benchmark clients (bench/client_*.c)
 * share: the command line, the data source and checker, the clock, and the
 * one result line each client prints.
 *
 * Owns: argument parsing, reading the input file in order (upload side),
 * comparing received bytes with the same file (download side), timing.
 * Must never: talk SSH (each client does that with its own library only),
 * or hold the whole file in memory (peak RSS is part of what is measured).
 *
 * Every client is used the same way:
 *
 *   client -p PORT -l USER -i KEY -k KNOWN_HOSTS [-c CIPHER] [-m MAC]
 *          [-x KEX] [-H HOSTKEYALG] [-N] MODE ARG
 *
 * -N asks for TCP_NODELAY on the connection where the library leaves that
 * to the application (libssh2: the application's socket; libssh:
 * SSH_OPTIONS_NODELAY; paramiko: a socket of our own given to connect()).
 * sshflow always sets it, so there -N changes nothing.
 *
 *   upload FILE     exec "sha256sum", send FILE, EOF, print the remote hash
 *   download FILE   exec "cat FILE", compare every received byte with FILE
 *   roundtrip FILE  exec "cat", send FILE while reading it back and comparing
 *   handshake N     N times: connect, key exchange, host key check,
 *                   publickey auth, exec "true", wait for exit status 0
 *
 * and prints one line on stdout:
 *   RESULT mode=M bytes=B secs=S algs="..." [hash=H]     (transfer modes)
 *   RESULT mode=handshake ms=a,b,c,... algs="..."
 * secs runs from before the TCP connect to after the channel and the
 * connection are closed. On any failure it prints why on stderr and exits 1.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The application's buffer for every read and write, in every client. */
#define BENCH_CHUNK 65536

struct bench_args {
    const char *host;        /* always 127.0.0.1 here */
    int port;
    const char *user;
    const char *key;         /* unencrypted ed25519 private key file */
    const char *known_hosts; /* OpenSSH known_hosts with "[127.0.0.1]:PORT" lines */
    const char *cipher;      /* NULL: the library's default */
    const char *mac;         /* NULL: the library's default */
    const char *kex;         /* NULL: the library's default */
    const char *hostkey;     /* host key algorithm; NULL: default */
    const char *mode;        /* upload, download, roundtrip, handshake */
    const char *file;        /* transfer modes */
    int count;               /* handshake mode */
    int nodelay;             /* -N: ask for TCP_NODELAY (see above) */
};

/* Parse argv into *a, or print usage and exit(2). */
void bench_parse_args(int argc, char **argv, struct bench_args *a);

/* Print "name: message" on stderr and exit(1). */
void bench_die(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Monotonic clock in seconds. */
double bench_now(void);

/* The input file, read front to back in chunks (the sending side). */
struct bench_src {
    int fd;
    uint64_t size;
    uint64_t done;
};
void bench_src_open(struct bench_src *s, const char *path);
/* Next chunk into buf (at most len bytes); returns 0 at the end. */
size_t bench_src_next(struct bench_src *s, void *buf, size_t len);
void bench_src_close(struct bench_src *s);

/*
 * The checker: received bytes are compared, in order, with the same file
 * (pread into a scratch buffer and memcmp: no hashing on the client, so
 * the check costs a copy from the page cache, not a SHA-256).
 */
struct bench_chk {
    int fd;
    uint64_t size;
    uint64_t done;
    unsigned char *scratch;
};
void bench_chk_open(struct bench_chk *c, const char *path);
/* Compare the next len bytes; exits(1) on a mismatch or too many bytes. */
void bench_chk_feed(struct bench_chk *c, const void *buf, size_t len);
/* Exit(1) unless every byte of the file arrived. */
void bench_chk_finish(struct bench_chk *c);
void bench_chk_close(struct bench_chk *c);

/* Upload mode: the command whose stdout is read back. */
#define BENCH_UPLOAD_CMD "sha256sum"
#define BENCH_ROUNDTRIP_CMD "cat"
#define BENCH_HANDSHAKE_CMD "true"
/* Download mode: "cat 'FILE'" into buf (exits on overflow). */
void bench_download_cmd(const char *file, char *buf, size_t len);

/*
 * The remote sha256sum's output ("<64 hex>  -\n") collected by the upload
 * side; bench_hash_feed appends (bounded), bench_hash_hex returns the first
 * word.
 */
struct bench_hash {
    char text[256];
    size_t len;
};
void bench_hash_feed(struct bench_hash *h, const void *buf, size_t len);
const char *bench_hash_hex(struct bench_hash *h);

/* Print the RESULT line of a transfer mode. hash may be NULL. */
void bench_report(const struct bench_args *a, uint64_t bytes, double secs, const char *algs,
                  const char *hash);
/* Print the RESULT line of the handshake mode (ms[0..n-1]). */
void bench_report_handshake(const double *ms, int n, const char *algs);

#endif
