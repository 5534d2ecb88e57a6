/*
 * sshflow.h -- upgrade any reliable byte stream to an SSH client channel and
 * get it back as a stream.
 *
 * The whole public API. Every type is opaque except sshflow_error (which
 * callers allocate on their stack) and sshflow_flow_ops (which callers fill
 * to wrap their own stream).
 *
 * Conventions used by every function below:
 *  - Functions that can fail take a `sshflow_error *err` last. It may be
 *    NULL. On failure it is filled with the kind, errno, disconnect reason
 *    and a human-readable detail; sshflow_strerror() makes a sentence of it.
 *  - Return values: 0 (SSHFLOW_OK) on success, a negative SSHFLOW_ERR_* kind
 *    on failure, unless documented otherwise.
 *  - "Blocks" means the call may wait for the network or another thread.
 *    Every blocking call can end: on data, on an error, on the peer's close,
 *    on a timeout, or when another thread closes the flow.
 *  - "Thread-safe" means the call may be made concurrently with other calls
 *    on the same object from other threads.
 */
#ifndef SSHFLOW_H
#define SSHFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(SSHFLOW_BUILDING) && defined(__GNUC__)
#define SSHFLOW_API __attribute__((visibility("default")))
#else
#define SSHFLOW_API
#endif

#define SSHFLOW_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Error kinds. Functions return these negated-as-is (they are negative). */
enum sshflow_err_kind {
    SSHFLOW_OK = 0,
    SSHFLOW_ERR_DISCONNECT = -1, /* the peer sent DISCONNECT; see reason and detail */
    SSHFLOW_ERR_PROTOCOL = -2,   /* the peer broke the protocol, or nothing in common */
    SSHFLOW_ERR_HOSTKEY = -3,    /* the server's host key was refused */
    SSHFLOW_ERR_AUTH = -4,       /* user authentication failed */
    SSHFLOW_ERR_CHANNEL = -5,    /* channel open or channel request refused */
    SSHFLOW_ERR_FLOW = -6,       /* the underlying flow failed; see sys_errno */
    SSHFLOW_ERR_TIMEOUT = -7,    /* a bound given by the caller was reached */
    SSHFLOW_ERR_CLOSED = -8,     /* the flow is closed: no more writes (or reads) */
    SSHFLOW_ERR_NOMEM = -9,      /* out of memory */
    SSHFLOW_ERR_INVALID = -10,   /* invalid argument, or an unusable key or file */
    SSHFLOW_ERR_INTERNAL = -11,  /* a bug in sshflow */
    SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE = -12, /* the key is encrypted and no passphrase was given */
    SSHFLOW_ERR_KEY_PASSPHRASE = -13,       /* the passphrase given for a key is wrong */
    SSHFLOW_ERR_KEY_FORMAT = -14, /* unsupported key type or file format, or a corrupt key */
    SSHFLOW_ERR_FILE = -15,       /* a file could not be read or written; see sys_errno */
    SSHFLOW_ERR_AGENT = -16,      /* the ssh-agent could not be reached or failed */
};

/* Returned by sshflow_read() at end of stream (it is not an error). */
#define SSHFLOW_EOF 1

/*
 * Detail of a failure. Callers own it (usually on their stack). All fields
 * are valid after a failing call that was given it.
 */
typedef struct sshflow_error {
    int kind;                   /* enum sshflow_err_kind, 0 if no error */
    int sys_errno;              /* errno for SSHFLOW_ERR_FLOW, else 0 */
    uint32_t disconnect_reason; /* RFC 4253 s11.1 reason code, for DISCONNECT (sent or received) */
    char detail[512];           /* what failed, in words; NUL-terminated */
} sshflow_error;

/*
 * A sentence describing err (e.g. "authentication failed: server accepts
 * publickey,password; tried publickey"). Writes into buf (size len, always
 * NUL-terminated when len > 0) and returns buf. Never blocks; thread-safe.
 */
SSHFLOW_API const char *sshflow_strerror(const sshflow_error *err, char *buf, size_t len);

/* Name of an error kind ("protocol error", ...). Static string; thread-safe. */
SSHFLOW_API const char *sshflow_err_kind_name(int kind);

/* ------------------------------------------------------------------------ */
/* Flows                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A flow: a reliable, ordered byte stream. A TCP socket, a pipe, an SSH
 * channel and a user's own stream are all flows and are used through the
 * same calls.
 */
typedef struct sshflow_flow sshflow_flow;

/*
 * The operations of a user-defined flow. Each function gets the ctx given to
 * sshflow_flow_new(). Functions report failure by returning a negative
 * SSHFLOW_ERR_* kind and, when err is not NULL, filling it (sys_errno for
 * I/O failures).
 *
 *  read      Required. Blocks until at least one byte is available; returns
 *            the number of bytes read (> 0), 0 at end of stream, or < 0.
 *  write     Required. Writes all len bytes or fails.
 *  writev    Optional (NULL: write is called per buffer). All or fail.
 *  shutdown  Optional. Half-close: no more writes; reads go on.
 *  close     Optional. Flush, release the stream; reads/writes then fail.
 *  abort     Optional, but needed for close() to wake a reader that is
 *            blocked in read() on another thread: make pending and future
 *            reads and writes fail promptly. Must be callable from any thread
 *            while read/write are in progress. sshflow calls it at most once.
 *  free      Optional. Release ctx. Called exactly once, by sshflow_free().
 *
 * sshflow calls read from one thread at a time and write/writev/shutdown
 * from one thread at a time (possibly a different one than read).
 */
typedef struct sshflow_flow_ops {
    ssize_t (*read)(void *ctx, void *buf, size_t len, sshflow_error *err);
    int (*write)(void *ctx, const void *buf, size_t len, sshflow_error *err);
    int (*writev)(void *ctx, const struct iovec *iov, int iovcnt, sshflow_error *err);
    int (*shutdown)(void *ctx, sshflow_error *err);
    int (*close)(void *ctx, sshflow_error *err);
    void (*abort)(void *ctx);
    void (*free)(void *ctx);
} sshflow_flow_ops;

/*
 * Wrap a user's stream as a flow. ops must stay valid for the flow's life
 * (usually a static const table); ctx is handed to every op and released by
 * ops->free when the flow is freed. Returns NULL on out of memory (then
 * ops->free is not called). Never blocks; thread-safe.
 */
SSHFLOW_API sshflow_flow *sshflow_flow_new(const sshflow_flow_ops *ops, void *ctx);

/*
 * A flow over a file descriptor (connected socket, pipe or socketpair end,
 * or a pair of pipes: rfd for reading and wfd for writing, which may be the
 * same fd). If own_fds, close()/free() close the descriptors. Returns NULL on
 * out of memory. Never blocks; thread-safe.
 */
SSHFLOW_API sshflow_flow *sshflow_flow_from_fds(int rfd, int wfd, bool own_fds);

/*
 * Connect by TCP to host:port (names resolved with getaddrinfo, IPv4 and IPv6
 * tried in order). timeout_ms bounds each connection attempt (0: the
 * system's). Returns the flow or NULL with err filled. Blocks; thread-safe.
 * The flow remembers host and port, so sshflow_client_of_flow() can check
 * known_hosts against them.
 */
SSHFLOW_API sshflow_flow *sshflow_connect_tcp(const char *host, uint16_t port, int timeout_ms,
                                              sshflow_error *err);

/*
 * Connect to a Unix-domain stream socket (e.g. an ssh-agent). Returns the
 * flow or NULL with err filled. Blocks only briefly; thread-safe.
 */
SSHFLOW_API sshflow_flow *sshflow_connect_unix(const char *path, sshflow_error *err);

/*
 * Read into a fresh buffer: on success *out is a malloc()ed buffer of *outlen
 * >= 1 bytes that the caller owns and releases with free(). Returns 0 on
 * data, SSHFLOW_EOF at end of stream (once the remote sent EOF and every
 * in-flight byte was read; *out is NULL), or a negative kind. Blocks until
 * one of those. Thread-safe with respect to writers; one reader at a time.
 */
SSHFLOW_API int sshflow_read(sshflow_flow *f, uint8_t **out, size_t *outlen, sshflow_error *err);

/*
 * Read into the caller's buffer (POSIX form). Returns the number of bytes
 * copied (1..len), 0 at end of stream, or a negative kind. len must be > 0.
 * Blocks; same thread rules as sshflow_read().
 */
SSHFLOW_API ssize_t sshflow_read_into(sshflow_flow *f, void *buf, size_t len, sshflow_error *err);

/*
 * Write all len bytes or fail. SSHFLOW_ERR_CLOSED means the flow was closed
 * or shut down (by us or, for a channel, by the remote) and nothing more can
 * be written; other kinds mean the transport broke. The caller's buffer may
 * be reused when the call returns. Blocks while the remote window is full or
 * a key exchange is under way. Thread-safe: concurrent writers are
 * serialised (each call's bytes stay contiguous).
 */
SSHFLOW_API int sshflow_write(sshflow_flow *f, const void *buf, size_t len, sshflow_error *err);

/* Like sshflow_write() for a sequence of buffers, sent in order. */
SSHFLOW_API int sshflow_writev(sshflow_flow *f, const struct iovec *iov, int iovcnt,
                               sshflow_error *err);

/*
 * Half-close: no more writes (for a channel, sends EOF). Reads go on until
 * the remote's end of stream. Blocks only to flush. Thread-safe.
 */
SSHFLOW_API int sshflow_shutdown(sshflow_flow *f, sshflow_error *err);

/*
 * Close: flush pending writes, signal end of stream to the remote, and wait
 * until the remote has closed too; then release the underlying transport. A
 * reader blocked on another thread keeps receiving data until the remote
 * closes, then gets end of stream (or SSHFLOW_ERR_CLOSED if it calls read
 * after close returned). timeout_ms bounds the wait for the remote
 * (< 0: wait without bound, which may hang on a broken server; 0: do not
 * wait). When the bound is reached the transport is torn down anyway and
 * SSHFLOW_ERR_TIMEOUT is returned. Calling close twice is harmless. Blocks;
 * thread-safe. The flow must still be freed with sshflow_free().
 */
SSHFLOW_API int sshflow_close_timeout(sshflow_flow *f, int timeout_ms, sshflow_error *err);

/* sshflow_close_timeout(f, -1, err): the seed's close, waiting for the remote. */
SSHFLOW_API int sshflow_close(sshflow_flow *f, sshflow_error *err);

/*
 * Release the flow and everything it owns. If it was not closed, it is torn
 * down without waiting (the remote sees the connection drop). No call on f
 * may be in progress or follow. NULL is allowed. Not thread-safe with
 * respect to other calls on f.
 */
SSHFLOW_API void sshflow_free(sshflow_flow *f);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Connection options, set by OpenSSH-style names and values. A config may be
 * shared by several connections after it is set up; client_of_flow copies
 * what it needs. Not thread-safe while being modified.
 */
typedef struct sshflow_config sshflow_config;

/* New config with secure defaults. NULL on out of memory. */
SSHFLOW_API sshflow_config *sshflow_config_new(void);
SSHFLOW_API void sshflow_config_free(sshflow_config *cfg);

/*
 * Set an option by its OpenSSH name (case-insensitive). Supported:
 *   KexAlgorithms, HostKeyAlgorithms, Ciphers, MACs: preference lists, with
 *       OpenSSH's "+list" (append), "-list" (remove) and "^list" (prepend);
 *       names may be patterns with * and ? ("aes*-gcm@openssh.com"). An
 *       unknown name, or a pattern matching nothing, is refused and named.
 *       Legacy algorithms (SHA-1, CBC, group1) are never in the defaults;
 *       add them with "+name" for old devices. sshflow_supported() lists all.
 *   ConnectTimeout  seconds: bound on the TCP connect and the whole handshake
 *                   (version, key exchange, authentication, channel open).
 *                   Default 30.
 *   RekeyLimit      "<bytes>[K|M|G] [<seconds>]": start a key exchange after
 *                   that much data in either direction or time. Default 1G 3600.
 *   HostName        host name used for known_hosts look-ups when the flow
 *                   does not know it (e.g. a flow over a pipe).
 *   Port            port used with HostName for known_hosts look-ups.
 *   MaxStderrBuffer bytes of stderr kept when nobody reads it (default 1 MiB).
 *   PreferredAuthentications  methods in the order to try them (e.g.
 *                   "publickey,keyboard-interactive,password"); credentials
 *                   are tried by method in this order, and in the order
 *                   they were added within a method. Default: as added.
 *   PubkeyAuthentication, PasswordAuthentication, KbdInteractiveAuthentication
 *                   "yes"/"no": whether that method may be used (default yes).
 *   Compression     "yes"/"no" (default no): yes offers zlib@openssh.com
 *                   (starts after authentication), zlib and none, in that
 *                   order. Worth it on slow links with compressible data;
 *                   it costs CPU otherwise. sshflow_describe() then shows
 *                   "comp=NAME".
 * Returns 0, or SSHFLOW_ERR_INVALID with err explaining. Never blocks.
 */
SSHFLOW_API int sshflow_config_set(sshflow_config *cfg, const char *name, const char *value,
                                   sshflow_error *err);

/* ------------------------------------------------------------------------ */
/* Credentials: how we prove who we are                                     */
/* ------------------------------------------------------------------------ */

/*
 * An ordered list of ways to authenticate, tried in turn until the server
 * accepts one. Passwords and keys are copied in and wiped when freed.
 *
 * For every sshflow_cred_* call below: it never touches the network (key
 * and certificate files are read when added; agents are asked only while
 * connecting), it is not thread-safe with respect to other calls on the
 * same cred, and it returns 0 or a negative kind with err filled. A cred
 * that is no longer being modified may be used by several
 * sshflow_client_of_flow() calls at once (they only read it); its prompt
 * and banner callbacks may then run concurrently on their reader threads.
 */
typedef struct sshflow_cred sshflow_cred;

SSHFLOW_API sshflow_cred *sshflow_cred_new(void);
SSHFLOW_API void sshflow_cred_free(sshflow_cred *c);

/*
 * Questions for the user: a key's passphrase, a password, or the prompts of a
 * keyboard-interactive round (RFC 4256). The callback writes a NUL-terminated
 * answer into answer[answer_size] and returns 0, or returns nonzero to
 * decline (the method is then given up). Answers are wiped after use.
 * Callbacks run on the thread that called the function that needs them:
 * sshflow_cred_add_keyfile_prompt() calls it on the caller's thread;
 * password and keyboard-interactive prompts run on the connection's reader
 * thread while sshflow_client_of_flow() waits (time spent in a callback does
 * not count against ConnectTimeout).
 */
typedef struct sshflow_prompt {
    const char *kind;        /* "passphrase", "password" or "keyboard-interactive" */
    const char *name;        /* keyboard-interactive round's name ("" if none) */
    const char *instruction; /* keyboard-interactive instruction ("" if none) */
    const char *text;        /* the prompt, e.g. "Enter passphrase for key 'id': " */
    bool echo;               /* true if the answer may be shown while typed */
    unsigned index;          /* this prompt's place in its round (0-based) */
    unsigned count;          /* prompts in the round (1 for passphrase/password) */
} sshflow_prompt;
typedef int (*sshflow_prompt_fn)(void *user, const sshflow_prompt *p, char *answer,
                                 size_t answer_size);

/*
 * Add a private key read from a file: OpenSSH format (openssh-key-v1, plain
 * or encrypted with bcrypt + aes256-ctr / aes256-gcm@openssh.com) or PEM /
 * PKCS#8 (plain or encrypted). Ed25519, ECDSA P-256/384/521, RSA.
 * passphrase may be NULL for a plain key. If "<path>-cert.pub" exists, the
 * certificate in it is attached to the key (as ssh does); see
 * sshflow_cred_add_certfile(). Errors: SSHFLOW_ERR_FILE (not readable,
 * sys_errno set), SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE, SSHFLOW_ERR_KEY_PASSPHRASE
 * (wrong), SSHFLOW_ERR_KEY_FORMAT (unsupported type or format, corrupt).
 * Reads the file; never blocks on the network. Not thread-safe on the same c.
 */
SSHFLOW_API int sshflow_cred_add_keyfile(sshflow_cred *c, const char *path,
                                         const char *passphrase, sshflow_error *err);

/*
 * Same as sshflow_cred_add_keyfile() for a key held in memory (no
 * certificate is looked for).
 */
SSHFLOW_API int sshflow_cred_add_key(sshflow_cred *c, const void *data, size_t len,
                                     const char *passphrase, sshflow_error *err);

/*
 * Like sshflow_cred_add_keyfile(), but if the key is encrypted, ask for the
 * passphrase with fn (kind "passphrase"), up to `tries` times (0: 3) while it
 * is wrong. Declining gives SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE. Blocks in fn.
 */
SSHFLOW_API int sshflow_cred_add_keyfile_prompt(sshflow_cred *c, const char *path,
                                                sshflow_prompt_fn fn, void *user,
                                                unsigned tries, sshflow_error *err);

/*
 * Attach an OpenSSH certificate ("*-cert.pub" file, as written by
 * ssh-keygen -s) to the most recently added key whose public key it
 * certifies; that key is then offered with the certificate first and plain
 * afterwards. SSHFLOW_ERR_KEY_FORMAT if the file is not a certificate or no
 * added key matches it.
 */
SSHFLOW_API int sshflow_cred_add_certfile(sshflow_cred *c, const char *path, sshflow_error *err);

/*
 * Use the keys held by an ssh-agent (at this point in the order). path is
 * the agent's socket; NULL means $SSH_AUTH_SOCK, read when connecting. The
 * agent is asked for its keys during authentication; an agent that cannot
 * be reached, holds no key or fails is skipped (and named in the final
 * error if nothing else worked). RSA keys sign with rsa-sha2-512/256.
 */
SSHFLOW_API int sshflow_cred_add_agent(sshflow_cred *c, const char *path, sshflow_error *err);

/* Add password authentication with a fixed password (copied, wiped on free). */
SSHFLOW_API int sshflow_cred_add_password(sshflow_cred *c, const char *password,
                                          sshflow_error *err);

/*
 * Add password authentication that asks fn (kind "password", text like
 * "user@host's password: ") when the server wants a password, up to
 * `tries` times (0: 3, OpenSSH's NumberOfPasswordPrompts).
 */
SSHFLOW_API int sshflow_cred_add_password_prompt(sshflow_cred *c, sshflow_prompt_fn fn,
                                                 void *user, unsigned tries, sshflow_error *err);

/*
 * Add keyboard-interactive authentication (RFC 4256): every round of
 * prompts the server sends is put to fn, one prompt at a time (kind
 * "keyboard-interactive"; name and instruction as the server sent them).
 * `tries` bounds how often the method is started again after a failure
 * (0: 3).
 */
SSHFLOW_API int sshflow_cred_add_kbdint(sshflow_cred *c, sshflow_prompt_fn fn, void *user,
                                        unsigned tries, sshflow_error *err);

/*
 * Called with the text of each USERAUTH_BANNER the server sends (RFC 4252
 * s5.4), already stripped of terminal control characters. Runs on the
 * reader thread during sshflow_client_of_flow(). fn NULL: banners are only
 * logged.
 */
typedef void (*sshflow_banner_fn)(void *user, const char *text);
SSHFLOW_API void sshflow_cred_set_banner(sshflow_cred *c, sshflow_banner_fn fn, void *user);

/* ------------------------------------------------------------------------ */
/* Keys: fingerprints and generation                                        */
/* ------------------------------------------------------------------------ */

/*
 * Fingerprint the key in a file (public key: OpenSSH one-line ".pub" or RFC
 * 4716 "---- BEGIN SSH2 PUBLIC KEY ----"; or a certificate; or a private key
 * file whose public part can be read without a passphrase) and write the
 * line `ssh-keygen -l` prints: "<bits> SHA256:<base64> <comment> (<TYPE>)",
 * or with hash "MD5" "<bits> MD5:aa:bb:... <comment> (<TYPE>)". hash NULL
 * means "SHA256". Reads the file; thread-safe.
 */
SSHFLOW_API int sshflow_key_fingerprint_file(const char *path, const char *hash, char *out,
                                             size_t outsz, sshflow_error *err);

/*
 * Generate a key pair and write it as `ssh-keygen` would: the private key to
 * path (openssh-key-v1, mode 0600, encrypted with bcrypt + aes256-ctr if
 * passphrase is non-NULL and non-empty, 16 rounds) and the public key to
 * "<path>.pub". type is "ed25519", "ecdsa" or "rsa"; bits 0 means the
 * default (ECDSA 256, RSA 3072); ECDSA takes 256/384/521, RSA 2048-16384.
 * comment may be NULL. Refuses to overwrite an existing file. Blocks while
 * generating (RSA 3072: up to a few seconds) and writing. Thread-safe.
 */
SSHFLOW_API int sshflow_keygen(const char *type, unsigned bits, const char *comment,
                               const char *passphrase, const char *path, sshflow_error *err);

/* ------------------------------------------------------------------------ */
/* Host authentication: how we know the server is the right one             */
/* ------------------------------------------------------------------------ */

typedef struct sshflow_hostauth sshflow_hostauth;

/* known_hosts policies (OpenSSH's StrictHostKeyChecking). */
enum sshflow_hostkey_policy {
    SSHFLOW_HOSTKEY_STRICT = 0, /* unknown or changed key refused */
    SSHFLOW_HOSTKEY_ACCEPT_NEW, /* unknown key appended to the file; changed refused */
};

/*
 * Parse an authenticator in the seed library's syntax:
 *   "SHA256:<base64>"          the key's SHA-256 fingerprint (as ssh-keygen -l)
 *   "<keytype>:<base64 fp>"    e.g. "ssh-ed25519:<base64 sha256 fingerprint>"
 *   "<base64 public key blob>" the key itself
 * NULL with err on a malformed string.
 */
SSHFLOW_API sshflow_hostauth *sshflow_hostauth_parse(const char *spec, sshflow_error *err);

/*
 * Check against an OpenSSH known_hosts file (path NULL: ~/.ssh/known_hosts):
 * host patterns (*, ?, !negation), hashed names, [host]:port, comments,
 * @revoked (refuses a key, a certificate of it, or its CA) and
 * @cert-authority (a host certificate signed by that CA, naming the host
 * among its principals, valid now, is accepted; otherwise the certificate's
 * plain key is checked like any key). A changed key is refused with the
 * file and line of the known key in err's detail.
 * The host name and port come from the flow (TCP) or the config's HostName
 * and Port. NULL on out of memory.
 */
SSHFLOW_API sshflow_hostauth *sshflow_hostauth_known_hosts(const char *path,
                                                           enum sshflow_hostkey_policy policy);

/*
 * A user callback. It gets the host (may be NULL), port, the key type, the
 * public key blob and its "SHA256:..." fingerprint, and returns true to
 * accept. Called on the connection's reader thread while client_of_flow
 * waits for the handshake (so it counts against ConnectTimeout). A server
 * that presents an OpenSSH host certificate is judged by the certified
 * plain key: keytype, blob and fingerprint are those of that key.
 */
typedef bool (*sshflow_hostkey_cb)(void *user, const char *host, uint16_t port,
                                   const char *keytype, const uint8_t *blob, size_t bloblen,
                                   const char *fingerprint);
SSHFLOW_API sshflow_hostauth *sshflow_hostauth_callback(sshflow_hostkey_cb cb, void *user);

/*
 * INSECURE: accept any host key, so anyone on the path can read and change
 * everything. Exists for tests and explicit user choice only; every
 * connection made with it logs a warning to stderr.
 */
SSHFLOW_API sshflow_hostauth *sshflow_hostauth_insecure_accept_any(void);

SSHFLOW_API void sshflow_hostauth_free(sshflow_hostauth *a);

/* ------------------------------------------------------------------------ */
/* The channel request                                                      */
/* ------------------------------------------------------------------------ */

typedef struct sshflow_request sshflow_request;

/* Run a command (exec), a login shell (shell), or a subsystem (e.g. "sftp"). */
SSHFLOW_API sshflow_request *sshflow_request_exec(const char *command);
SSHFLOW_API sshflow_request *sshflow_request_shell(void);
SSHFLOW_API sshflow_request *sshflow_request_subsystem(const char *name);

/*
 * Ask for a pseudo-terminal before the request. modes is the RFC 4254 s8
 * encoded terminal modes string (may be NULL/0: none). Returns 0 or a kind.
 */
SSHFLOW_API int sshflow_request_set_pty(sshflow_request *r, const char *term, uint32_t cols,
                                        uint32_t rows, const uint8_t *modes, size_t modes_len);

/* Send an environment variable before the request (servers may refuse; that is not fatal). */
SSHFLOW_API int sshflow_request_add_env(sshflow_request *r, const char *name, const char *value);

SSHFLOW_API void sshflow_request_free(sshflow_request *r);

/* ------------------------------------------------------------------------ */
/* client_of_flow                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Upgrade `transport` to SSH: exchange versions and keys, check the host key
 * with `hostauth` (NULL: ~/.ssh/known_hosts, strict), authenticate `user`
 * with `cred`, open a session channel, send `req`, and return the channel as
 * a flow. On failure returns NULL with err saying which step failed.
 *
 * Ownership: takes `transport` in every case (it is freed on failure).
 * hostauth, cred, req and cfg (NULL: defaults) stay the caller's and are
 * not used after the call returns.
 *
 * Blocks for the whole handshake, bounded by ConnectTimeout. Thread-safe
 * (different calls share nothing).
 */
SSHFLOW_API sshflow_flow *sshflow_client_of_flow(sshflow_flow *transport, const char *user,
                                                 const sshflow_cred *cred,
                                                 const sshflow_hostauth *hostauth,
                                                 const sshflow_request *req,
                                                 const sshflow_config *cfg, sshflow_error *err);

/* ------------------------------------------------------------------------ */
/* Session channel extras (valid only on a flow from client_of_flow)        */
/* ------------------------------------------------------------------------ */

/*
 * Read from the remote's stderr (extended data). Same contract as
 * sshflow_read_into() on its own stream. Policy: stderr has its own buffer
 * of MaxStderrBuffer bytes; stderr data counts against the channel window
 * only until it is buffered, so a program that never reads stderr never
 * stalls stdout. When the stderr buffer is full, the oldest bytes are kept
 * and newer ones are dropped and counted (sshflow_stderr_dropped()).
 * Blocks; thread-safe with respect to stdout readers and writers.
 */
SSHFLOW_API ssize_t sshflow_read_stderr(sshflow_flow *f, void *buf, size_t len, sshflow_error *err);

/* Bytes of stderr dropped because the stderr buffer was full. Thread-safe. */
SSHFLOW_API uint64_t sshflow_stderr_dropped(sshflow_flow *f);

/* How the remote command ended. */
enum sshflow_exit_kind {
    SSHFLOW_EXIT_NONE = 0,   /* not known (yet, or the server sent nothing) */
    SSHFLOW_EXIT_STATUS = 1, /* exited; status in .status */
    SSHFLOW_EXIT_SIGNAL = 2, /* killed by a signal; name in .signal */
};
typedef struct sshflow_exit {
    int kind;          /* enum sshflow_exit_kind */
    uint32_t status;   /* exit status for SSHFLOW_EXIT_STATUS */
    char signal[32];   /* signal name without "SIG" ("TERM") for SSHFLOW_EXIT_SIGNAL */
    bool core_dumped;  /* for SSHFLOW_EXIT_SIGNAL */
    char message[256]; /* the server's error message, possibly empty */
} sshflow_exit;

/*
 * Copy what is known of the remote command's end into *out. Returns 0, or
 * SSHFLOW_ERR_INVALID if f is not an SSH channel. Never blocks; thread-safe.
 * Servers send the status after the end of the output and before their
 * close, so it may not be known yet when sshflow_read() returns end of
 * stream; once sshflow_close() returned 0 (the remote closed), it is final.
 */
SSHFLOW_API int sshflow_exit_info(sshflow_flow *f, sshflow_exit *out);

/* Tell the remote pty its new size (window-change). Non-blocking-ish: sends one packet. Thread-safe. */
SSHFLOW_API int sshflow_window_change(sshflow_flow *f, uint32_t cols, uint32_t rows,
                                      sshflow_error *err);

/* Send a signal ("TERM", "INT", ...) to the remote command. Thread-safe. */
SSHFLOW_API int sshflow_signal(sshflow_flow *f, const char *signame, sshflow_error *err);

/*
 * Negotiated algorithms of the connection under f, as
 * "kex=... hostkey=... cipher=... mac=..." into buf. For diagnostics and
 * tests. Thread-safe.
 */
SSHFLOW_API int sshflow_describe(sshflow_flow *f, char *buf, size_t len);

/* Number of completed key exchanges (1 after the handshake). Thread-safe. */
SSHFLOW_API unsigned sshflow_kex_count(sshflow_flow *f);

/*
 * Diagnostics: when set to a non-NULL function, sshflow reports progress
 * messages (like ssh -v) to it. Process-wide; set it before connecting.
 */
typedef void (*sshflow_log_fn)(void *user, const char *msg);
SSHFLOW_API void sshflow_set_log(sshflow_log_fn fn, void *user);

/*
 * The algorithms sshflow supports, as a newline-separated static string,
 * for `sshflow -Q`: what is "kex", "cipher", "mac", "key" (host key and
 * signature algorithms, including certificates) or "compression". NULL for
 * an unknown what. Thread-safe.
 */
SSHFLOW_API const char *sshflow_supported(const char *what);

#ifdef __cplusplus
}
#endif
#endif
