/*
 * src/agent.c -- ssh-agent client (draft-miller-ssh-agent): list the
 * agent's identities and ask it for signatures.
 *
 * Owns: the connection to the agent (a flow from sf_flow_connect_unix or
 * given by the caller), the framing of requests and replies (uint32 length
 * || byte type || contents), the time bound of each request, the parsing of
 * IDENTITIES_ANSWER and SIGN_RESPONSE through struct sf_buf, and the
 * watchdog thread that enforces the bound.
 *
 * Must never: touch private keys; block without bound (every write and
 * read of a request runs under a deadline); trust a length from the agent
 * before checking it against SF_AGENT_MSG_MAX and the bytes present; accept
 * a reply it does not fully understand (unknown types, trailing bytes and
 * malformed contents are errors, never skipped).
 *
 * How the bound works: the fd flow waits in poll() without a timeout of its
 * own (it can only be woken by abort or close), so SO_RCVTIMEO would not
 * help. Each agent has a watchdog thread sleeping on a condition variable
 * (CLOCK_MONOTONIC). A request sets a deadline before writing and clears it
 * once the whole reply is read; if the deadline passes first, the watchdog
 * aborts the flow, which makes the blocked write or read return at once.
 * The request then fails with SF_ERR_TIMEOUT and the connection is dead
 * (sticky), since a late reply could no longer be matched to its request.
 * This works on any flow, bounds partial writes too, and costs one sleeping
 * thread per open agent.
 */
#include "agent.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flow.h"

/* Message numbers (draft-miller-ssh-agent s5.1) and sign flags (s4.5.1). */
#define AGENT_FAILURE 5
#define AGENTC_REQUEST_IDENTITIES 11
#define AGENT_IDENTITIES_ANSWER 12
#define AGENTC_SIGN_REQUEST 13
#define AGENT_SIGN_RESPONSE 14
/* Legacy failure codes OpenSSH's authfd.c also treats as failure. */
#define AGENT_FAILURE_SSH2 30
#define AGENT_FAILURE_COM 102
#define AGENT_RSA_SHA2_256 0x02
#define AGENT_RSA_SHA2_512 0x04

#define AGENT_WHY_MAX 256

struct sf_agent {
    /* Immutable after creation. */
    sshflow_flow *flow; /* the connection; owned */
    int timeout_ms;     /* bound of each request */
    pthread_t watchdog;

    /* Used only by the thread making calls (one at a time). */
    int dead;                /* sticky error once the stream may be out of step; 0: usable */
    char why[AGENT_WHY_MAX]; /* last failure in words */

    pthread_mutex_t lock; /* protects the fields below */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC; signalled on new deadline and on quit */
    uint64_t deadline;    /* sf_now_ms() bound of the request in progress; 0: none */
    bool fired;           /* the watchdog aborted the flow */
    bool quit;            /* sf_agent_free: the watchdog exits */
};

static int
fail(struct sf_agent *a, int r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Record why (a sentence) for the failure r and return r. */
static int
fail(struct sf_agent *a, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(a->why, sizeof(a->why), fmt, ap);
    va_end(ap);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Watchdog                                                                 */
/* ------------------------------------------------------------------------ */

static void *
watchdog_main(void *arg)
{
    struct sf_agent *a = arg;
    struct timespec ts;

    pthread_mutex_lock(&a->lock);
    while (!a->quit) {
        uint64_t now = sf_now_ms();

        if (a->deadline == 0) {
            (void)pthread_cond_wait(&a->cond, &a->lock);
        } else if (now >= a->deadline) {
            a->deadline = 0;
            a->fired = true;
            /* Only wakes the flow's waiters (a write to its wake fd): safe under our lock. */
            sf_flow_abort(a->flow);
        } else {
            sf_abstime(CLOCK_MONOTONIC, a->deadline - now, &ts);
            (void)pthread_cond_timedwait(&a->cond, &a->lock, &ts);
        }
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static void
watch_start(struct sf_agent *a)
{
    pthread_mutex_lock(&a->lock);
    a->fired = false;
    a->deadline = sf_now_ms() + (uint64_t)a->timeout_ms;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* Clear the deadline; true if the watchdog aborted the flow meanwhile. */
static bool
watch_stop(struct sf_agent *a)
{
    bool fired;

    pthread_mutex_lock(&a->lock);
    a->deadline = 0;
    fired = a->fired;
    pthread_mutex_unlock(&a->lock);
    return fired;
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

int
sf_agent_from_flow(sshflow_flow *f, int timeout_ms, struct sf_agent **out)
{
    struct sf_agent *a = NULL;
    pthread_condattr_t ca;
    sigset_t all;
    sigset_t old;
    bool have_lock = false;
    bool have_cond = false;
    int r = 0;

    if (out != NULL) {
        *out = NULL;
    }
    if (f == NULL || out == NULL || timeout_ms <= 0) {
        r = SF_ERR_INVALID;
        goto out;
    }
    if ((a = sf_alloc(sizeof(*a))) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    a->flow = f;
    a->timeout_ms = timeout_ms;
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    have_lock = true;
    if (pthread_condattr_init(&ca) != 0) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    (void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    have_cond = pthread_cond_init(&a->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!have_cond) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    /* The watchdog takes no signal meant for the application's threads. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&a->watchdog, NULL, watchdog_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        r = SF_ERR_NOMEM; /* EAGAIN: no resources for a thread */
        goto out;
    }
    *out = a;
    a = NULL;
    f = NULL;

out:
    if (a != NULL) {
        if (have_cond) {
            pthread_cond_destroy(&a->cond);
        }
        if (have_lock) {
            pthread_mutex_destroy(&a->lock);
        }
        sf_free(a);
    }
    sshflow_free(f);
    return r;
}

/* Read SSH_AUTH_SOCK (not from a set-uid program's environment). */
static const char *
auth_sock_env(void)
{
#if defined(__GLIBC__)
    return secure_getenv("SSH_AUTH_SOCK");
#else
    return getenv("SSH_AUTH_SOCK");
#endif
}

int
sf_agent_open(const char *path, int timeout_ms, struct sf_agent **out, char *why, size_t whysz)
{
    sshflow_flow *f = NULL;
    sshflow_error e;
    char dummy[1];
    int r = 0;

    if (why == NULL || whysz == 0) {
        why = dummy;
        whysz = sizeof(dummy);
    }
    why[0] = '\0';
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || timeout_ms <= 0) {
        snprintf(why, whysz, "ssh-agent: %s", out == NULL ? "no place for the result"
                                                           : "the timeout must be > 0 ms");
        r = SF_ERR_INVALID;
        goto out;
    }
    if (path == NULL) {
        path = auth_sock_env();
        if (path == NULL || path[0] == '\0') {
            snprintf(why, whysz, "SSH_AUTH_SOCK is not set");
            r = SF_ERR_AGENT;
            goto out;
        }
    }
    if (path[0] == '\0') {
        snprintf(why, whysz, "ssh-agent: empty socket path");
        r = SF_ERR_AGENT;
        goto out;
    }
    if ((f = sf_flow_connect_unix(path, timeout_ms, &e)) == NULL) {
        switch (e.kind) {
        case SSHFLOW_ERR_NOMEM:
            r = SF_ERR_NOMEM;
            break;
        case SSHFLOW_ERR_TIMEOUT:
            r = SF_ERR_TIMEOUT;
            break;
        default:
            r = SF_ERR_AGENT;
            break;
        }
        snprintf(why, whysz, "cannot reach ssh-agent: %s", e.detail);
        goto out;
    }
    if ((r = sf_agent_from_flow(f, timeout_ms, out)) != 0) {
        f = NULL; /* taken and freed */
        snprintf(why, whysz, "ssh-agent at %s: %s", path, sf_err_str(r));
        goto out;
    }
    f = NULL;

out:
    sshflow_free(f);
    return r;
}

void
sf_agent_free(struct sf_agent *a)
{
    if (a == NULL) {
        return;
    }
    pthread_mutex_lock(&a->lock);
    a->quit = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->watchdog, NULL);
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    sshflow_free(a->flow);
    sf_free(a);
}

const char *
sf_agent_why(const struct sf_agent *a)
{
    return a != NULL ? a->why : "";
}

void
sf_agent_ids_free(struct sf_agent_id *ids, size_t n)
{
    size_t i;

    if (ids == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        sf_free(ids[i].blob);
        sf_free(ids[i].comment);
    }
    sf_free(ids);
}

/* ------------------------------------------------------------------------ */
/* One request, one reply                                                   */
/* ------------------------------------------------------------------------ */

/* A failed flow call: TIMEOUT if the watchdog did it, else the agent failed. */
static int
flow_fail(struct sf_agent *a, const char *what, const sshflow_error *e)
{
    bool fired;

    pthread_mutex_lock(&a->lock);
    fired = a->fired;
    pthread_mutex_unlock(&a->lock);
    if (fired) {
        return fail(a, SF_ERR_TIMEOUT, "ssh-agent: no complete reply to %s within %d ms", what,
                    a->timeout_ms);
    }
    return fail(a, SF_ERR_AGENT, "ssh-agent: %s: %s", what, e->detail);
}

/* Read exactly n bytes. */
static int
recv_exact(struct sf_agent *a, uint8_t *p, size_t n, const char *what)
{
    sshflow_error e;
    size_t got = 0;
    ssize_t k;

    while (got < n) {
        if ((k = sshflow_read_into(a->flow, p + got, n - got, &e)) < 0) {
            return flow_fail(a, what, &e);
        }
        if (k == 0) {
            return fail(a, SF_ERR_AGENT,
                        "ssh-agent closed the connection in the reply to %s (%zu of %zu bytes)",
                        what, got, n);
        }
        got += (size_t)k;
    }
    return 0;
}

/*
 * Send the framed request in req (length prefix included) and read one
 * whole reply frame; *reply gets its body (type || contents). Any failure
 * here makes the connection dead: the stream may be out of step.
 */
static int
agent_call(struct sf_agent *a, const struct sf_buf *req, struct sf_buf *reply, const char *what)
{
    sshflow_error e;
    uint8_t hdr[4];
    uint8_t *p = NULL;
    uint32_t len;
    int r;

    if (a->dead != 0) {
        return a->dead; /* why still says what killed it */
    }
    a->why[0] = '\0';
    watch_start(a);
    if (sshflow_write(a->flow, sf_buf_ptr(req), sf_buf_len(req), &e) != 0) {
        r = flow_fail(a, what, &e);
        goto out;
    }
    if ((r = recv_exact(a, hdr, sizeof(hdr), what)) != 0) {
        goto out;
    }
    len = sf_load_be32(hdr);
    if (len == 0) {
        r = fail(a, SF_ERR_BAD_FORMAT, "ssh-agent: empty reply to %s", what);
        goto out;
    }
    if (len > SF_AGENT_MSG_MAX) {
        r = fail(a, SF_ERR_TOO_LARGE, "ssh-agent: reply to %s of %lu bytes (at most %u)", what,
                 (unsigned long)len, (unsigned)SF_AGENT_MSG_MAX);
        goto out;
    }
    if ((r = sf_buf_alloc(reply, len, len)) != 0 || (r = sf_buf_reserve(reply, len, &p)) != 0) {
        r = fail(a, r, "ssh-agent: reply to %s: %s", what, sf_err_str(r));
        goto out;
    }
    r = recv_exact(a, p, len, what);

out:
    if (watch_stop(a) && r == 0) {
        /* The whole reply came, but the flow was aborted just after. */
        r = fail(a, SF_ERR_TIMEOUT, "ssh-agent: no complete reply to %s within %d ms", what,
                 a->timeout_ms);
    }
    if (r != 0) {
        a->dead = r;
        sf_buf_free(reply);
    }
    return r;
}

/*
 * The reply type byte. Returns 0 if it is `want`; SF_ERR_AGENT for a
 * failure reply (which must carry nothing more); SF_ERR_PROTOCOL for any
 * other type.
 */
static int
reply_type(struct sf_agent *a, struct sf_buf *reply, uint8_t want, const char *what)
{
    uint8_t type;
    int r;

    if ((r = sf_buf_get_u8(reply, &type)) != 0) {
        return fail(a, r, "ssh-agent: reply to %s: %s", what, sf_err_str(r));
    }
    if (type == want) {
        return 0;
    }
    switch (type) {
    case AGENT_FAILURE:
    case AGENT_FAILURE_SSH2:
    case AGENT_FAILURE_COM:
        if ((r = sf_buf_expect_end(reply)) != 0) {
            return fail(a, r, "ssh-agent: failure reply to %s with %zu extra bytes", what,
                        sf_buf_len(reply));
        }
        return fail(a, SF_ERR_AGENT, "ssh-agent refused %s", what);
    default:
        return fail(a, SF_ERR_PROTOCOL, "ssh-agent: unexpected reply type %u to %s",
                    (unsigned)type, what);
    }
}

/* ------------------------------------------------------------------------ */
/* Identities                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A key blob must at least start with its type name (RFC 4253 s6.6); we do
 * not need to understand the rest, since the caller filters key types.
 */
static int
check_keyblob(const uint8_t *blob, size_t len)
{
    struct sf_buf b;
    const uint8_t *name = NULL;
    size_t nlen = 0;
    int r;

    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_string(&b, &name, &nlen, SF_NAME_MAX)) != 0) {
        return r;
    }
    return nlen == 0 ? SF_ERR_BAD_FORMAT : 0;
}

int
sf_agent_list(struct sf_agent *a, struct sf_agent_id **ids, size_t *n)
{
    static const uint8_t req_bytes[] = { 0, 0, 0, 1, AGENTC_REQUEST_IDENTITIES };
    const char *what = "the key list request";
    struct sf_agent_id *list = NULL;
    struct sf_buf req;
    struct sf_buf reply;
    uint32_t nkeys = 0;
    size_t have = 0;
    int r;

    memset(&reply, 0, sizeof(reply));
    if (ids != NULL) {
        *ids = NULL;
    }
    if (n != NULL) {
        *n = 0;
    }
    if (a == NULL || ids == NULL || n == NULL) {
        return SF_ERR_INVALID;
    }
    sf_buf_init_view(&req, req_bytes, sizeof(req_bytes));
    if ((r = agent_call(a, &req, &reply, what)) != 0) {
        goto out;
    }
    /*
     * draft-miller-ssh-agent s4.4:
     *   byte    SSH_AGENT_IDENTITIES_ANSWER
     *   uint32  nkeys
     *   nkeys times: string key blob, string comment
     */
    if ((r = reply_type(a, &reply, AGENT_IDENTITIES_ANSWER, what)) != 0) {
        goto out;
    }
    if ((r = sf_buf_get_u32(&reply, &nkeys)) != 0) {
        r = fail(a, r, "ssh-agent: key list: no key count");
        goto out;
    }
    if (nkeys > SF_AGENT_IDS_MAX) {
        r = fail(a, SF_ERR_TOO_LARGE, "ssh-agent: key list of %lu keys (at most %d)",
                 (unsigned long)nkeys, SF_AGENT_IDS_MAX);
        goto out;
    }
    /* Each key takes at least 8 bytes (two lengths): no allocation for keys that are not there. */
    if (nkeys > sf_buf_len(&reply) / 8) {
        r = fail(a, SF_ERR_INCOMPLETE, "ssh-agent: key list of %lu keys in %zu bytes",
                 (unsigned long)nkeys, sf_buf_len(&reply));
        goto out;
    }
    if (nkeys > 0 && (list = sf_alloc(nkeys * sizeof(*list))) == NULL) {
        r = fail(a, SF_ERR_NOMEM, "ssh-agent: key list: out of memory");
        goto out;
    }
    for (have = 0; have < nkeys; have++) {
        const uint8_t *blob = NULL;
        const uint8_t *comment = NULL;
        size_t bloblen = 0;
        size_t clen = 0;

        if ((r = sf_buf_get_string(&reply, &blob, &bloblen, SF_AGENT_MSG_MAX)) != 0 ||
            (r = sf_buf_get_string(&reply, &comment, &clen, SF_AGENT_MSG_MAX)) != 0) {
            r = fail(a, r, "ssh-agent: key list: key %zu of %lu: %s", have + 1,
                     (unsigned long)nkeys, sf_err_str(r));
            goto out;
        }
        if ((r = check_keyblob(blob, bloblen)) != 0) {
            r = fail(a, SF_ERR_BAD_FORMAT, "ssh-agent: key list: key %zu has no key type",
                     have + 1);
            goto out;
        }
        if (clen > 0 && memchr(comment, '\0', clen) != NULL) {
            r = fail(a, SF_ERR_BAD_FORMAT, "ssh-agent: key list: key %zu: NUL in its comment",
                     have + 1);
            goto out;
        }
        if ((list[have].blob = sf_alloc(bloblen)) == NULL ||
            (list[have].comment = sf_strndup((const char *)comment, clen)) == NULL) {
            have++; /* free what this entry got */
            r = fail(a, SF_ERR_NOMEM, "ssh-agent: key list: out of memory");
            goto out;
        }
        memcpy(list[have].blob, blob, bloblen);
        list[have].bloblen = bloblen;
    }
    if ((r = sf_buf_expect_end(&reply)) != 0) {
        r = fail(a, r, "ssh-agent: key list: %zu bytes after the last key", sf_buf_len(&reply));
        goto out;
    }
    *ids = list;
    *n = have;
    list = NULL;

out:
    sf_agent_ids_free(list, have);
    sf_buf_free(&reply);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Signatures                                                               */
/* ------------------------------------------------------------------------ */

/* Peer bytes made fit for a message: non-printable ASCII shown as '?'. */
static void
printable(const uint8_t *p, size_t n, char *out, size_t outsz)
{
    size_t i;

    for (i = 0; i < n && i + 1 < outsz; i++) {
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    }
    out[i] = '\0';
}

int
sf_agent_sign(struct sf_agent *a, const uint8_t *blob, size_t bloblen, const char *sigalg,
              const uint8_t *data, size_t len, struct sf_buf *out)
{
    const char *what = "the signature request";
    struct sf_buf_mark mark;
    struct sf_buf req;
    struct sf_buf reply;
    struct sf_buf sig;
    const uint8_t *name = NULL;
    const uint8_t *raw = NULL;
    const uint8_t *sigblob = NULL;
    char shown[SF_NAME_MAX + 1];
    size_t siglen = 0;
    size_t namelen = 0;
    size_t rawlen = 0;
    size_t alglen;
    uint32_t flags = 0;
    int r;

    memset(&req, 0, sizeof(req));
    memset(&reply, 0, sizeof(reply));
    if (a == NULL || out == NULL || blob == NULL || bloblen == 0 || sigalg == NULL ||
        (data == NULL && len > 0)) {
        return a != NULL ? fail(a, SF_ERR_INVALID, "ssh-agent: sign: invalid argument")
                         : SF_ERR_INVALID;
    }
    alglen = strlen(sigalg);
    if (alglen == 0 || alglen > SF_NAME_MAX) {
        return fail(a, SF_ERR_INVALID, "ssh-agent: sign: bad signature algorithm name");
    }
    if (strcmp(sigalg, "ssh-rsa") == 0) {
        return fail(a, SF_ERR_UNSUPPORTED, "ssh-agent: sign: ssh-rsa (SHA-1) signatures are not used");
    }
    if (strcmp(sigalg, "rsa-sha2-256") == 0) {
        flags = AGENT_RSA_SHA2_256;
    } else if (strcmp(sigalg, "rsa-sha2-512") == 0) {
        flags = AGENT_RSA_SHA2_512;
    }
    /* 4 + 1 + (4 + bloblen) + (4 + len) + 4, each step checked. */
    if (bloblen > SF_AGENT_MSG_MAX || len > SF_AGENT_MSG_MAX - bloblen ||
        bloblen + len > SF_AGENT_MSG_MAX - 13) {
        return fail(a, SF_ERR_INVALID, "ssh-agent: sign: request over %u bytes",
                    (unsigned)SF_AGENT_MSG_MAX);
    }
    /*
     * draft-miller-ssh-agent s4.5:
     *   byte    SSH_AGENTC_SIGN_REQUEST
     *   string  key blob
     *   string  data
     *   uint32  flags
     */
    if ((r = sf_buf_alloc(&req, bloblen + len + 17, bloblen + len + 17)) != 0 ||
        (r = sf_buf_open_string(&req, &mark)) != 0 ||
        (r = sf_buf_put_u8(&req, AGENTC_SIGN_REQUEST)) != 0 ||
        (r = sf_buf_put_string(&req, blob, bloblen)) != 0 ||
        (r = sf_buf_put_string(&req, data, len)) != 0 ||
        (r = sf_buf_put_u32(&req, flags)) != 0 || (r = sf_buf_close_string(&req, &mark)) != 0) {
        r = fail(a, r, "ssh-agent: sign: %s", sf_err_str(r));
        goto out;
    }
    if ((r = agent_call(a, &req, &reply, what)) != 0) {
        goto out;
    }
    /*
     *   byte    SSH_AGENT_SIGN_RESPONSE
     *   string  signature (string alg-name || string sig blob)
     */
    if ((r = reply_type(a, &reply, AGENT_SIGN_RESPONSE, what)) != 0) {
        goto out;
    }
    if ((r = sf_buf_get_sub(&reply, &sig, SF_KEYBLOB_MAX)) != 0) {
        r = fail(a, r, "ssh-agent: signature: %s", sf_err_str(r));
        goto out;
    }
    sigblob = sf_buf_ptr(&sig);
    siglen = sf_buf_len(&sig);
    if ((r = sf_buf_expect_end(&reply)) != 0) {
        r = fail(a, r, "ssh-agent: %zu bytes after the signature", sf_buf_len(&reply));
        goto out;
    }
    if ((r = sf_buf_get_string(&sig, &name, &namelen, SF_NAME_MAX)) != 0 ||
        (r = sf_buf_get_string(&sig, &raw, &rawlen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_expect_end(&sig)) != 0) {
        r = fail(a, r, "ssh-agent: malformed signature blob: %s", sf_err_str(r));
        goto out;
    }
    if (rawlen == 0) {
        r = fail(a, SF_ERR_BAD_FORMAT, "ssh-agent: empty signature");
        goto out;
    }
    if (namelen != alglen || memcmp(name, sigalg, alglen) != 0) {
        printable(name, namelen, shown, sizeof(shown));
        r = fail(a, SF_ERR_PROTOCOL, "ssh-agent: signed with \"%s\", not %s", shown, sigalg);
        goto out;
    }
    /* The blob as the agent sent it (no outer length). */
    if ((r = sf_buf_put_bytes(out, sigblob, siglen)) != 0) {
        r = fail(a, r, "ssh-agent: signature: %s", sf_err_str(r));
        goto out;
    }

out:
    sf_buf_free(&req);
    sf_buf_free(&reply);
    return r;
}
