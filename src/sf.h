/*
 * src/sf.h -- internal prelude shared by every file in src/.
 *
 * Owns: the internal error codes (one X-macro table), allocation hooks,
 * assertions and the named protocol limits. Must never: include anything
 * from the rest of src/, or do I/O.
 */
#ifndef SF_H
#define SF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sshflow.h"

#if defined(__GNUC__)
#define SF_MUST_USE __attribute__((warn_unused_result))
#else
#define SF_MUST_USE
#endif

/* Named limits (RFC 4253 s6.1 asks for at least 35000; OpenSSH uses 256 KiB). */
#define SF_PACKET_MAX (256 * 1024)     /* largest packet_length we accept */
#define SF_NAMELIST_MAX 4096           /* longest name-list we parse */
#define SF_NAME_MAX 64                 /* longest single algorithm name */
#define SF_VERSION_LINE_MAX 255        /* RFC 4253 s4.2, including CR LF */
#define SF_PRE_VERSION_LINES_MAX 1024  /* lines a server may send before its version */
#define SF_PRE_VERSION_BYTES_MAX (64 * 1024)
#define SF_KEYBLOB_MAX (16 * 1024)     /* public key or signature blob */
#define SF_STRING_MAX (64 * 1024)      /* generic text fields (banners, messages) */
#define SF_CHANNELS_MAX 1              /* channels per connection (issue 2: one) */

/*
 * Internal error codes: 0 is success, everything else negative. The table
 * generates the enum and the messages. Each row also names the public
 * error kind it maps to.
 */
#define SF_ERR_MAP(X)                                                                  \
    X(OK, 0, SSHFLOW_OK, "success")                                                    \
    X(NOMEM, -1, SSHFLOW_ERR_NOMEM, "out of memory")                                   \
    X(INCOMPLETE, -2, SSHFLOW_ERR_PROTOCOL, "message truncated")                       \
    X(BAD_FORMAT, -3, SSHFLOW_ERR_PROTOCOL, "malformed message")                       \
    X(TOO_LARGE, -4, SSHFLOW_ERR_PROTOCOL, "length exceeds limit")                     \
    X(TRAILING_DATA, -5, SSHFLOW_ERR_PROTOCOL, "unexpected trailing data in message")  \
    X(NO_SPACE, -6, SSHFLOW_ERR_INTERNAL, "buffer full")                               \
    X(READONLY, -7, SSHFLOW_ERR_INTERNAL, "write to read-only buffer")                 \
    X(MAC, -8, SSHFLOW_ERR_PROTOCOL, "message authentication failed")                  \
    X(PROTOCOL, -9, SSHFLOW_ERR_PROTOCOL, "protocol violation")                        \
    X(NO_ALG, -10, SSHFLOW_ERR_PROTOCOL, "no algorithm in common")                     \
    X(CRYPTO, -11, SSHFLOW_ERR_PROTOCOL, "cryptographic operation failed")             \
    X(SIGNATURE, -12, SSHFLOW_ERR_HOSTKEY, "signature verification failed")            \
    X(KEY_TYPE, -13, SSHFLOW_ERR_KEY_FORMAT, "unsupported key type or format")            \
    X(KEY_ENCRYPTED, -14, SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE, "key is encrypted: a passphrase is needed")                \
    X(FILE, -15, SSHFLOW_ERR_FILE, "file not readable")                                \
    X(HOSTKEY, -16, SSHFLOW_ERR_HOSTKEY, "host key refused")                           \
    X(HOSTKEY_CHANGED, -17, SSHFLOW_ERR_HOSTKEY, "host key changed")                   \
    X(HOSTKEY_UNKNOWN, -18, SSHFLOW_ERR_HOSTKEY, "host key unknown")                   \
    X(AUTH, -19, SSHFLOW_ERR_AUTH, "authentication failed")                            \
    X(CHANNEL, -20, SSHFLOW_ERR_CHANNEL, "channel refused")                            \
    X(IO, -21, SSHFLOW_ERR_FLOW, "underlying flow failed")                             \
    X(EOF, -22, SSHFLOW_ERR_FLOW, "underlying flow closed")                            \
    X(TIMEOUT, -23, SSHFLOW_ERR_TIMEOUT, "timed out")                                  \
    X(CLOSED, -24, SSHFLOW_ERR_CLOSED, "closed")                                       \
    X(DISCONNECT, -25, SSHFLOW_ERR_DISCONNECT, "peer disconnected")                    \
    X(INVALID, -26, SSHFLOW_ERR_INVALID, "invalid argument")                           \
    X(UNSUPPORTED, -27, SSHFLOW_ERR_INVALID, "not supported")                          \
    X(KEY_PASSPHRASE, -28, SSHFLOW_ERR_KEY_PASSPHRASE, "wrong passphrase")                    \
    X(AGENT, -29, SSHFLOW_ERR_AGENT, "ssh-agent failed")                               \
    X(CERT, -30, SSHFLOW_ERR_INVALID, "certificate invalid or not trusted")                    \
    X(INTERNAL, -99, SSHFLOW_ERR_INTERNAL, "internal error")

enum sf_err {
#define SF_X(name, val, kind, str) SF_ERR_##name = (val),
    SF_ERR_MAP(SF_X)
#undef SF_X
};

/* Message for an internal code; never NULL. */
const char *sf_err_str(int code);
/* Public kind (SSHFLOW_ERR_*) for an internal code. */
int sf_err_kind(int code);
/*
 * Fill a public error (may be NULL) from an internal code plus printf-style
 * detail. Returns the public kind (negative) so callers can
 * `return sf_err_set(err, r, "...")`.
 */
int sf_err_set(sshflow_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Allocation: everything goes through these so tests can inject failures. */
void *sf_alloc(size_t n);               /* zeroed; NULL on failure */
void *sf_realloc(void *p, size_t n);
void sf_free(void *p);
void sf_freezero(void *p, size_t n);    /* wipe n bytes, then free; NULL ok */
void sf_wipe(void *p, size_t n);        /* OPENSSL_cleanse */
char *sf_strdup(const char *s);
char *sf_strndup(const char *s, size_t n);
/* Test hook: fail the Nth allocation from now (0 = never). */
void sf_alloc_fail_after(unsigned long n);

/* Broken internal invariant: abort in debug builds, error in release. */
#ifndef NDEBUG
#include <stdlib.h>
#define SF_ASSERT(cond)                                                                \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            sf_assert_fail(#cond, __FILE__, __LINE__);                                 \
        }                                                                              \
    } while (0)
#else
#define SF_ASSERT(cond) ((void)0)
#endif
void sf_assert_fail(const char *what, const char *file, int line);

/* Monotonic clock in milliseconds. */
uint64_t sf_now_ms(void);
/* Absolute time on clock clk, ms_from_now from now, for timed waits. */
struct timespec;
void sf_abstime(int clk, uint64_t ms_from_now, struct timespec *ts);
/* strerror_r, whichever flavour the C library has: text for errno e (tmp may hold it). */
const char *sf_errno_text(int e, char *tmp, size_t tmpsz);
/* True if the comma-separated list contains name (n bytes) as a whole entry. */
bool sf_list_has(const char *list, const char *name, size_t n);

#define SF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SF_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
