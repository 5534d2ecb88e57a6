/*
 * src/err.c -- internal error codes to messages and public error details.
 *
 * Owns: the mapping from SF_ERR_* (table SF_ERR_MAP in sf.h) to messages and
 * public kinds, filling sshflow_error, and the public sshflow_strerror() /
 * sshflow_err_kind_name(). Must never: allocate, block, or keep state (every
 * function here is thread-safe).
 */
#include "sf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *
sf_err_str(int code)
{
    switch (code) {
#define SF_X(name, val, kind, str)                                                     \
    case (val):                                                                        \
        return (str);
        SF_ERR_MAP(SF_X)
#undef SF_X
    default:
        return "unknown error";
    }
}

int
sf_err_kind(int code)
{
    switch (code) {
#define SF_X(name, val, kind, str)                                                     \
    case (val):                                                                        \
        return (kind);
        SF_ERR_MAP(SF_X)
#undef SF_X
    default:
        return SSHFLOW_ERR_INTERNAL;
    }
}

/*
 * Sets err->kind and err->detail only. err->sys_errno and
 * err->disconnect_reason are left exactly as they are: the caller that knows
 * them (flow I/O, disconnect handling) sets them itself, before or after.
 */
int
sf_err_set(sshflow_error *err, int code, const char *fmt, ...)
{
    int kind = sf_err_kind(code);
    va_list ap;

    if (err == NULL) {
        return kind;
    }
    err->kind = kind;
    if (fmt == NULL || fmt[0] == '\0') {
        snprintf(err->detail, sizeof(err->detail), "%s", sf_err_str(code));
        return kind;
    }
    va_start(ap, fmt);
    if (vsnprintf(err->detail, sizeof(err->detail), fmt, ap) < 0) {
        snprintf(err->detail, sizeof(err->detail), "%s", sf_err_str(code));
    }
    va_end(ap);
    return kind;
}

SSHFLOW_API const char *
sshflow_err_kind_name(int kind)
{
    switch (kind) {
    case SSHFLOW_OK:
        return "success";
    case SSHFLOW_ERR_DISCONNECT:
        return "disconnected by peer";
    case SSHFLOW_ERR_PROTOCOL:
        return "protocol error";
    case SSHFLOW_ERR_HOSTKEY:
        return "host key refused";
    case SSHFLOW_ERR_AUTH:
        return "authentication failed";
    case SSHFLOW_ERR_CHANNEL:
        return "channel refused";
    case SSHFLOW_ERR_FLOW:
        return "flow failed";
    case SSHFLOW_ERR_TIMEOUT:
        return "timed out";
    case SSHFLOW_ERR_CLOSED:
        return "closed";
    case SSHFLOW_ERR_NOMEM:
        return "out of memory";
    case SSHFLOW_ERR_INVALID:
        return "invalid argument";
    case SSHFLOW_ERR_INTERNAL:
        return "internal error";
    case SSHFLOW_ERR_KEY_NEEDS_PASSPHRASE:
        return "key needs a passphrase";
    case SSHFLOW_ERR_KEY_PASSPHRASE:
        return "wrong passphrase";
    case SSHFLOW_ERR_KEY_FORMAT:
        return "unsupported key type or format";
    case SSHFLOW_ERR_FILE:
        return "file not readable";
    case SSHFLOW_ERR_AGENT:
        return "ssh-agent failed";
    default:
        return "unknown error";
    }
}

/* Append formatted text at *off in buf[len], truncating; *off never passes len - 1. */
static void
append(char *buf, size_t len, size_t *off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

static void
append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (*off + 1 >= len) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, len - *off, fmt, ap);
    va_end(ap);
    if (n < 0) {
        buf[*off] = '\0';
        return;
    }
    *off = SF_MIN(*off + (size_t)n, len - 1);
}


SSHFLOW_API const char *
sshflow_strerror(const sshflow_error *err, char *buf, size_t len)
{
    char tmp[128];
    const char *etext = NULL;
    size_t off = 0;

    if (buf == NULL || len == 0) {
        return buf;
    }
    buf[0] = '\0';
    if (err == NULL) {
        append(buf, len, &off, "%s", sshflow_err_kind_name(SSHFLOW_OK));
        return buf;
    }
    append(buf, len, &off, "%s", sshflow_err_kind_name(err->kind));
    /* detail is caller-owned memory: never read past its end even if unterminated. */
    if (strnlen(err->detail, sizeof(err->detail)) != 0) {
        append(buf, len, &off, ": %.*s", (int)strnlen(err->detail, sizeof(err->detail)),
               err->detail);
    }
    if (err->sys_errno != 0) {
        tmp[0] = '\0';
        etext = sf_errno_text(err->sys_errno, tmp, sizeof(tmp));
        if (etext == NULL || etext[0] == '\0' ||
            memmem(err->detail, strnlen(err->detail, sizeof(err->detail)), etext,
                   strlen(etext)) == NULL) {
            append(buf, len, &off, " (errno %d: %s)", err->sys_errno,
                   etext != NULL ? etext : "unknown error");
        }
    }
    if (err->kind == SSHFLOW_ERR_DISCONNECT || err->disconnect_reason != 0) {
        append(buf, len, &off, " [reason %u]", (unsigned)err->disconnect_reason);
    }
    return buf;
}
