/*
 * src/auth.c -- user authentication (RFC 4252): the ssh-userauth service,
 * "none" first (to learn what the server accepts), then the caller's
 * credentials: publickey (signed directly, RFC 4252 s7; rsa-sha2 per RFC
 * 8332 and server-sig-algs per RFC 8308; OpenSSH certificates per
 * PROTOCOL.certkeys), keys held by an ssh-agent, password (s8, fixed or
 * asked), keyboard-interactive (RFC 4256). Partial success (several
 * factors, sshd's AuthenticationMethods) is followed: the credentials are
 * gone through again while the server makes progress. USERAUTH_BANNER goes
 * to the caller's callback.
 *
 * Owns: building USERAUTH requests and reading their replies. Runs on the
 * reader thread during the handshake. Must never: run before the host key
 * was accepted (client.c orders that), keep secrets after use, or count
 * the time a user spends answering a prompt against ConnectTimeout.
 */
#include "agent.h"
#include "cert.h"
#include "conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define SSH_MSG_USERAUTH_INFO_REQUEST 60  /* RFC 4256 s3.2 */
#define SSH_MSG_USERAUTH_INFO_RESPONSE 61 /* RFC 4256 s3.4 */
#define KBDINT_PROMPTS_MAX 64             /* prompts in one round we answer */
#define ANSWER_MAX 1024                   /* longest answer taken from a prompt */
#define AGENT_TIMEOUT_MS 10000            /* bound on each agent request */
#define AUTH_PASSES 4                     /* rounds through the credentials (factors) */

/* What the server said so far, and what we tried (for the final error). */
struct auth_state {
    char methods[SF_NAMELIST_MAX]; /* methods that can continue */
    bool partial;                  /* the last failure was a partial success */
    bool progressed;               /* a partial success happened in this pass */
    bool any_partial;              /* a partial success happened at all */
    char tried[768];
    char notes[512];
};

static void append(char *dst, size_t dstsz, const char *sep, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void append(char *dst, size_t dstsz, const char *sep, const char *fmt, ...)
{
    size_t len = strlen(dst);
    va_list ap;
    if (len + 1 >= dstsz) {
        return;
    }
    if (len > 0) {
        snprintf(dst + len, dstsz - len, "%s", sep);
        len = strlen(dst);
    }
    va_start(ap, fmt);
    vsnprintf(dst + len, dstsz - len, fmt, ap);
    va_end(ap);
}

/* Wait for the next upper-layer message; transport ones are handled in sf_conn_next. */
static int next_msg(struct sf_conn *c, uint8_t *type, struct sf_buf *m)
{
    int r;
    while ((r = sf_conn_next(c, type, m)) == 0) {
    }
    return r < 0 ? r : 0;
}

/* User callbacks: the time they take is not the server's fault, so it is not counted. */
static uint64_t callback_begin(struct sf_conn *c)
{
    pthread_mutex_lock(&c->mu);
    c->hs_in_callback = true;
    pthread_mutex_unlock(&c->mu);
    return sf_now_ms();
}

static void callback_end(struct sf_conn *c, uint64_t t0)
{
    uint64_t now = sf_now_ms();
    pthread_mutex_lock(&c->mu);
    c->hs_in_callback = false;
    c->hs_paused_ms += now - t0;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int ask(struct sf_conn *c, sshflow_prompt_fn fn, void *user, const sshflow_prompt *p,
               char *answer, size_t answer_size)
{
    answer[0] = '\0';
    uint64_t t0 = callback_begin(c);
    int r = fn(user, p, answer, answer_size);
    callback_end(c, t0);
    answer[answer_size - 1] = '\0';
    return r;
}

/* Copy text[n] for showing: drop control characters other than newline and tab. */
static char *printable(const uint8_t *text, size_t n)
{
    char *s = sf_alloc(n + 1);
    size_t j = 0;
    if (s == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = text[i];
        if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch != 0x7f)) {
            s[j++] = (char)ch;
        }
    }
    s[j] = '\0';
    return s;
}

/* RFC 4252 s5.4: string message, string language tag. */
static int handle_banner(struct sf_conn *c, struct sf_buf *m)
{
    const uint8_t *text = NULL;
    size_t n = 0;
    int r;
    if ((r = sf_buf_get_string(m, &text, &n, SF_STRING_MAX)) != 0) {
        return sf_conn_fail(c, r, "malformed USERAUTH_BANNER");
    }
    char *s = printable(text, n);
    if (s == NULL) {
        return sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
    }
    sf_log("banner: %.400s", s);
    if (c->cred != NULL && c->cred->banner != NULL) {
        uint64_t t0 = callback_begin(c);
        c->cred->banner(c->cred->banner_user, s);
        callback_end(c, t0);
    }
    sf_free(s);
    return 0;
}

/*
 * Read the answer to a request: 1 success, 0 failure (st->methods and
 * st->partial updated), 2 when want60 and message 60 arrived (left in *m),
 * < 0 on error. RFC 4252 s5.1 FAILURE: name-list methods, boolean partial.
 */
static int await_result(struct sf_conn *c, struct auth_state *st, bool want60, struct sf_buf *m)
{
    uint8_t t = 0;
    int r;

    for (;;) {
        if ((r = next_msg(c, &t, m)) != 0) {
            return r;
        }
        switch (t) {
        case SSH_MSG_USERAUTH_SUCCESS:
            if ((r = sf_buf_expect_end(m)) != 0) {
                return sf_conn_fail(c, r, "malformed USERAUTH_SUCCESS");
            }
            /* Delayed compression starts now, before the next packet is decoded. */
            if ((r = sf_kex_comp_authenticated(c)) != 0) {
                return r;
            }
            return 1;
        case SSH_MSG_USERAUTH_FAILURE: {
            struct sf_buf list;
            bool partial = false;
            if ((r = sf_buf_get_namelist(m, &list, SF_NAMELIST_MAX)) != 0 ||
                (r = sf_buf_get_bool(m, &partial)) != 0 || (r = sf_buf_expect_end(m)) != 0) {
                return sf_conn_fail(c, r, "malformed USERAUTH_FAILURE");
            }
            size_t n = SF_MIN(sf_buf_len(&list), sizeof(st->methods) - 1);
            memcpy(st->methods, sf_buf_ptr(&list), n);
            st->methods[n] = '\0';
            st->partial = partial;
            if (partial) {
                st->progressed = true;
                st->any_partial = true;
            }
            return 0;
        }
        case SSH_MSG_USERAUTH_BANNER:
            if ((r = handle_banner(c, m)) != 0) {
                return r;
            }
            continue;
        case 60: /* PK_OK, PASSWD_CHANGEREQ or INFO_REQUEST, by method */
            if (want60) {
                return 2;
            }
            /* A password change request: the password is right but expired. */
            st->partial = false;
            append(st->notes, sizeof(st->notes), "; ", "the server asks for a password change (not supported)");
            sf_log("server asks for a password change; not supported");
            return 0;
        default:
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "unexpected message %u during authentication", t);
        }
    }
}

/* The common head of a USERAUTH_REQUEST (RFC 4252 s5). */
static int put_head(struct sf_buf *b, const char *user, const char *method)
{
    int r;
    if ((r = sf_buf_put_u8(b, SSH_MSG_USERAUTH_REQUEST)) != 0 ||
        (r = sf_buf_put_cstr(b, user)) != 0 ||
        (r = sf_buf_put_cstr(b, "ssh-connection")) != 0 ||
        (r = sf_buf_put_cstr(b, method)) != 0) {
        return r;
    }
    return 0;
}

static int send_req(struct sf_conn *c, struct sf_buf *req)
{
    int r = sf_conn_send(c, sf_buf_ptr(req), sf_buf_len(req), SF_SEND_CONTROL);
    sf_buf_reset(req); /* wipes passwords and answers */
    return r;
}

/* Signature algorithm for a user key type: RSA per server-sig-algs, SHA-1 only if asked for. */
static const char *user_sigalg(struct sf_conn *c, const char *type)
{
    if (strcmp(type, "ssh-rsa") != 0) {
        return type;
    }
    pthread_mutex_lock(&c->mu);
    bool has512 = sf_list_has(c->server_sig_algs, "rsa-sha2-512", 12);
    bool has256 = sf_list_has(c->server_sig_algs, "rsa-sha2-256", 12);
    bool listed = c->server_sig_algs[0] != '\0';
    pthread_mutex_unlock(&c->mu);
    if (!has512 && has256) {
        return "rsa-sha2-256";
    }
    if (!has512 && listed && sf_list_has(c->cfg.algs.hostkey, "ssh-rsa", 7)) {
        return "ssh-rsa"; /* legacy server, and the caller opted in to SHA-1 */
    }
    return "rsa-sha2-512"; /* also when the server sent no list */
}

/* How a publickey request gets its signature: a key in memory or an agent. */
struct signer {
    const struct sf_privkey *key;
    struct sf_agent *agent;
    const uint8_t *agent_blob; /* the key (or certificate) blob the agent knows */
    size_t agent_bloblen;
};

static int sign_with(const struct signer *s, const char *sigalg, const struct sf_buf *data,
                     struct sf_buf *sig)
{
    if (s->key != NULL) {
        return sf_privkey_sign(s->key, sigalg, sf_buf_ptr(data), sf_buf_len(data), sig);
    }
    return sf_agent_sign(s->agent, s->agent_blob, s->agent_bloblen, sigalg, sf_buf_ptr(data),
                         sf_buf_len(data), sig);
}

/*
 * RFC 4252 s7: the signature covers
 *   string session identifier || byte 50 || string user || string service ||
 *   string "publickey" || boolean TRUE || string algorithm || string key blob
 * and the request is the same fields (without the session id) plus the
 * signature. alg is the request's algorithm (a certificate algorithm for a
 * certificate), sigalg the signature's.
 */
static int build_publickey(struct sf_conn *c, const struct signer *s, const char *alg,
                           const char *sigalg, const uint8_t *blob, size_t bloblen,
                           struct sf_buf *req)
{
    struct sf_buf tosign = {0}, sig = {0};
    int r;

    if ((r = sf_buf_alloc(&tosign, 1024, SF_BUF_MAX)) != 0 ||
        (r = sf_buf_alloc(&sig, 512, SF_KEYBLOB_MAX)) != 0 ||
        (r = put_head(req, c->user, "publickey")) != 0 ||
        (r = sf_buf_put_bool(req, true)) != 0 || (r = sf_buf_put_cstr(req, alg)) != 0 ||
        (r = sf_buf_put_string(req, blob, bloblen)) != 0 ||
        (r = sf_buf_put_string(&tosign, c->session_id, c->session_id_len)) != 0 ||
        (r = sf_buf_put_bytes(&tosign, sf_buf_ptr(req), sf_buf_len(req))) != 0 ||
        (r = sign_with(s, sigalg, &tosign, &sig)) != 0 ||
        (r = sf_buf_put_sub(req, &sig)) != 0) {
        goto out;
    }
out:
    sf_buf_free(&tosign);
    sf_buf_free(&sig);
    return r;
}

/*
 * One publickey attempt. Returns 1 accepted, 0 refused or partial, < 0 a
 * connection error; a signing failure (e.g. the agent refused) is a
 * refusal noted in st.
 */
static int try_publickey(struct sf_conn *c, struct auth_state *st, const struct signer *s,
                         const char *alg, const char *sigalg, const uint8_t *blob,
                         size_t bloblen, const char *label)
{
    struct sf_buf req = {0}, m;
    int r;

    if ((r = sf_buf_alloc(&req, 1024, SF_BUF_MAX)) != 0) {
        return sf_conn_fail(c, r, "out of memory");
    }
    sf_log("trying public key %s (%s)", label, alg);
    if ((r = build_publickey(c, s, alg, sigalg, blob, bloblen, &req)) != 0) {
        sf_buf_free(&req);
        if (r == SF_ERR_NOMEM) {
            return sf_conn_fail(c, r, "out of memory");
        }
        append(st->notes, sizeof(st->notes), "; ", "%s: signing failed (%s)", label, sf_err_str(r));
        sf_log("%s: signing failed: %s", label, sf_err_str(r));
        return 0;
    }
    r = send_req(c, &req);
    sf_buf_free(&req);
    if (r != 0) {
        return r;
    }
    append(st->tried, sizeof(st->tried), ", ", "%s", label);
    if ((r = await_result(c, st, false, &m)) != 0) {
        return r;
    }
    sf_log("%s: %s; server accepts: %s", label, st->partial ? "partial success" : "refused", st->methods);
    return 0;
}

static int try_key(struct sf_conn *c, struct auth_state *st, const struct sf_cred_item *it)
{
    struct signer s = {.key = it->key};
    struct sf_buf blob = {0};
    const char *sigalg = user_sigalg(c, sf_privkey_type(it->key));
    char label[600];
    int r;

    if (it->cert != NULL) {
        size_t clen = 0;
        const uint8_t *cblob = sf_cert_blob(it->cert, &clen);
        const char *alg = sf_cert_alg_for_sigalg(sigalg);
        if (alg != NULL) {
            snprintf(label, sizeof(label), "%s (certificate)", it->label);
            if ((r = try_publickey(c, st, &s, alg, sigalg, cblob, clen, label)) != 0 || st->partial) {
                return r;
            }
            if (!sf_list_has(st->methods, "publickey", 9)) {
                return 0;
            }
        }
    }
    if ((r = sf_buf_alloc(&blob, 512, SF_KEYBLOB_MAX)) != 0 || (r = sf_privkey_pubblob(it->key, &blob)) != 0) {
        sf_buf_free(&blob);
        return sf_conn_fail(c, r, "out of memory");
    }
    r = try_publickey(c, st, &s, sigalg, sigalg, sf_buf_ptr(&blob), sf_buf_len(&blob), it->label);
    sf_buf_free(&blob);
    return r;
}

/* The base signature algorithm for an agent identity's blob, or NULL if we cannot use it. */
static const char *agent_algs(struct sf_conn *c, const uint8_t *blob, size_t len, const char **alg)
{
    struct sf_pubkey *pk = NULL;
    if (sf_pubkey_from_blob(blob, len, &pk) != 0) {
        return NULL;
    }
    const char *type = sf_pubkey_type(pk);
    const char *base = sf_cert_sigalg_base(type); /* a certificate: its key type decides */
    const char *sigalg = user_sigalg(c, base != NULL ? base : type);
    *alg = base != NULL ? sf_cert_alg_for_sigalg(sigalg) : sigalg;
    sf_pubkey_free(pk);
    return *alg != NULL ? sigalg : NULL;
}

static int try_agent(struct sf_conn *c, struct auth_state *st, const struct sf_cred_item *it)
{
    struct sf_agent *a = NULL;
    struct sf_agent_id *ids = NULL;
    size_t n = 0;
    char why[256] = "";
    int r;

    if ((r = sf_agent_open(it->agent_path, AGENT_TIMEOUT_MS, &a, why, sizeof(why))) != 0) {
        append(st->notes, sizeof(st->notes), "; ", "%s: %s", it->label, why[0] ? why : sf_err_str(r));
        sf_log("%s: %s", it->label, why[0] ? why : sf_err_str(r));
        return 0;
    }
    if ((r = sf_agent_list(a, &ids, &n)) != 0) {
        const char *why2 = sf_agent_why(a) != NULL && sf_agent_why(a)[0] ? sf_agent_why(a) : sf_err_str(r);
        append(st->notes, sizeof(st->notes), "; ", "%s: listing keys failed (%s)", it->label, why2);
        sf_log("%s: listing keys failed: %s", it->label, why2);
        sf_agent_free(a);
        return 0;
    }
    if (n == 0) {
        append(st->notes, sizeof(st->notes), "; ", "%s holds no key", it->label);
    }
    r = 0;
    for (size_t i = 0; i < n; i++) {
        const char *alg = NULL;
        const char *sigalg = agent_algs(c, ids[i].blob, ids[i].bloblen, &alg);
        char label[600];
        if (sigalg == NULL) {
            sf_log("%s: skipping a key of a type sshflow cannot use", it->label);
            continue;
        }
        if (!sf_list_has(st->methods, "publickey", 9)) {
            break;
        }
        snprintf(label, sizeof(label), "%s key %s", it->label,
                 ids[i].comment != NULL && ids[i].comment[0] ? ids[i].comment : "(no comment)");
        struct signer s = {.agent = a, .agent_blob = ids[i].blob, .agent_bloblen = ids[i].bloblen};
        if ((r = try_publickey(c, st, &s, alg, sigalg, ids[i].blob, ids[i].bloblen, label)) != 0 ||
            st->partial) {
            break;
        }
    }
    sf_agent_ids_free(ids, n);
    sf_agent_free(a);
    return r;
}

static int try_password(struct sf_conn *c, struct auth_state *st, const struct sf_cred_item *it)
{
    struct sf_buf req = {0}, m;
    char *answer = NULL;
    char text[400];
    int r = 0;

    if ((r = sf_buf_alloc(&req, 256, SF_BUF_MAX)) != 0 ||
        (it->password == NULL && (answer = sf_alloc(ANSWER_MAX)) == NULL)) {
        sf_buf_free(&req);
        return sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
    }
    snprintf(text, sizeof(text), "%s@%s's password: ", c->user, c->host != NULL ? c->host : "server");
    sshflow_prompt p = {.kind = "password", .name = "", .instruction = "", .text = text,
                        .echo = false, .index = 0, .count = 1};
    for (unsigned i = 0; i < SF_MAX(it->tries, 1u); i++) {
        const char *pw = it->password;
        if (pw == NULL) {
            if (ask(c, it->prompt, it->prompt_user, &p, answer, ANSWER_MAX) != 0) {
                append(st->notes, sizeof(st->notes), "; ", "password: declined at the prompt");
                break;
            }
            pw = answer;
        }
        sf_log("trying password");
        if ((r = put_head(&req, c->user, "password")) != 0 || (r = sf_buf_put_bool(&req, false)) != 0 ||
            (r = sf_buf_put_cstr(&req, pw)) != 0) {
            r = sf_conn_fail(c, r, "building the password request failed");
            break;
        }
        if (answer != NULL) {
            sf_wipe(answer, ANSWER_MAX);
        }
        if ((r = send_req(c, &req)) != 0) {
            break;
        }
        append(st->tried, sizeof(st->tried), ", ", "password");
        if ((r = await_result(c, st, false, &m)) != 0 || st->partial ||
            !sf_list_has(st->methods, "password", 8)) {
            break;
        }
        sf_log("password refused; server accepts: %s", st->methods);
    }
    sf_buf_free(&req);
    if (answer != NULL) {
        sf_freezero(answer, ANSWER_MAX);
    }
    return r;
}

/*
 * RFC 4256 s3.2 SSH_MSG_USERAUTH_INFO_REQUEST (after the type byte):
 *   string name, string instruction, string language tag, int num-prompts,
 *   num-prompts x (string prompt, boolean echo)
 * s3.4 SSH_MSG_USERAUTH_INFO_RESPONSE: int num-responses, num x string response
 */
static int kbdint_round(struct sf_conn *c, struct auth_state *st, const struct sf_cred_item *it,
                        struct sf_buf *m, struct sf_buf *resp, bool *declined)
{
    const uint8_t *name = NULL, *instr = NULL, *lang = NULL;
    size_t nlen = 0, ilen = 0, llen = 0;
    uint32_t num = 0;
    char *sname = NULL, *sinstr = NULL, *answer = NULL;
    int r;

    if ((r = sf_buf_get_string(m, &name, &nlen, SF_STRING_MAX)) != 0 ||
        (r = sf_buf_get_string(m, &instr, &ilen, SF_STRING_MAX)) != 0 ||
        (r = sf_buf_get_string(m, &lang, &llen, SF_STRING_MAX)) != 0 ||
        (r = sf_buf_get_u32(m, &num)) != 0) {
        return sf_conn_fail(c, r, "malformed USERAUTH_INFO_REQUEST");
    }
    if (num > KBDINT_PROMPTS_MAX) {
        return sf_conn_fail(c, SF_ERR_TOO_LARGE, "USERAUTH_INFO_REQUEST with %u prompts", num);
    }
    if ((sname = printable(name, nlen)) == NULL || (sinstr = printable(instr, ilen)) == NULL ||
        (answer = sf_alloc(ANSWER_MAX)) == NULL) {
        r = sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((r = sf_buf_put_u8(resp, SSH_MSG_USERAUTH_INFO_RESPONSE)) != 0 ||
        (r = sf_buf_put_u32(resp, num)) != 0) {
        r = sf_conn_fail(c, r, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < num; i++) {
        const uint8_t *ptext = NULL;
        size_t plen = 0;
        bool echo = false;
        char *stext = NULL;
        if ((r = sf_buf_get_string(m, &ptext, &plen, SF_STRING_MAX)) != 0 ||
            (r = sf_buf_get_bool(m, &echo)) != 0) {
            r = sf_conn_fail(c, r, "malformed USERAUTH_INFO_REQUEST prompt");
            goto out;
        }
        if ((stext = printable(ptext, plen)) == NULL) {
            r = sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
            goto out;
        }
        sshflow_prompt p = {.kind = "keyboard-interactive", .name = sname, .instruction = sinstr,
                            .text = stext, .echo = echo, .index = i, .count = num};
        int a = ask(c, it->prompt, it->prompt_user, &p, answer, ANSWER_MAX);
        sf_free(stext);
        if (a != 0) {
            *declined = true;
            r = 0;
            goto out;
        }
        if ((r = sf_buf_put_cstr(resp, answer)) != 0) {
            r = sf_conn_fail(c, r, "keyboard-interactive answers too long");
            goto out;
        }
        sf_wipe(answer, ANSWER_MAX);
    }
    if ((r = sf_buf_expect_end(m)) != 0) {
        r = sf_conn_fail(c, r, "malformed USERAUTH_INFO_REQUEST (trailing data)");
        goto out;
    }
    r = send_req(c, resp);
out:
    (void)st;
    sf_free(sname);
    sf_free(sinstr);
    if (answer != NULL) {
        sf_freezero(answer, ANSWER_MAX);
    }
    sf_buf_reset(resp);
    return r;
}

#define KBDINT_ROUNDS_MAX 32 /* INFO_REQUEST rounds in one attempt */

static int try_kbdint(struct sf_conn *c, struct auth_state *st, const struct sf_cred_item *it)
{
    struct sf_buf req = {0}, m;
    int r = 0;

    if ((r = sf_buf_alloc(&req, 256, SF_BUF_MAX)) != 0) {
        return sf_conn_fail(c, r, "out of memory");
    }
    for (unsigned attempt = 0; attempt < SF_MAX(it->tries, 1u); attempt++) {
        bool declined = false;
        unsigned rounds = 0;
        sf_log("trying keyboard-interactive");
        /* RFC 4256 s3.1: string language tag, string submethods (both empty). */
        if ((r = put_head(&req, c->user, "keyboard-interactive")) != 0 ||
            (r = sf_buf_put_cstr(&req, "")) != 0 || (r = sf_buf_put_cstr(&req, "")) != 0 ||
            (r = send_req(c, &req)) != 0) {
            break;
        }
        append(st->tried, sizeof(st->tried), ", ", "keyboard-interactive");
        while ((r = await_result(c, st, true, &m)) == 2) {
            if (++rounds > KBDINT_ROUNDS_MAX) {
                r = sf_conn_fail(c, SF_ERR_PROTOCOL, "more than %d keyboard-interactive rounds", KBDINT_ROUNDS_MAX);
                break;
            }
            if ((r = kbdint_round(c, st, it, &m, &req, &declined)) != 0 || declined) {
                break;
            }
        }
        if (r < 0) {
            break;
        }
        if (declined) {
            /* The server waits for answers; the next request (or the end) abandons this one. */
            append(st->notes, sizeof(st->notes), "; ", "keyboard-interactive: declined at the prompt");
            r = 0;
            break;
        }
        if (r == 1 || st->partial || !sf_list_has(st->methods, "keyboard-interactive", 20)) {
            break;
        }
        if (rounds == 0) {
            /* Refused before any question (no PAM behind it, say): asking again cannot help. */
            break;
        }
        sf_log("keyboard-interactive refused; server accepts: %s", st->methods);
    }
    sf_buf_free(&req);
    return r;
}

static bool method_enabled(const struct sf_conn *c, int kind)
{
    switch (kind) {
    case SF_CRED_KEY:
    case SF_CRED_AGENT:
        return !c->cfg.no_pubkey;
    case SF_CRED_PASSWORD:
        return !c->cfg.no_password;
    case SF_CRED_KBDINT:
        return !c->cfg.no_kbdint;
    default:
        return false;
    }
}

static int try_item(struct sf_conn *c, struct auth_state *st, const struct sf_cred_item *it)
{
    st->partial = false;
    switch (it->kind) {
    case SF_CRED_KEY:
        return try_key(c, st, it);
    case SF_CRED_AGENT:
        return try_agent(c, st, it);
    case SF_CRED_PASSWORD:
        return try_password(c, st, it);
    case SF_CRED_KBDINT:
        return try_kbdint(c, st, it);
    default:
        return 0;
    }
}

/* Items in the order to try: PreferredAuthentications by method, else as added. */
static size_t order_items(const struct sf_conn *c, const struct sf_cred_item **out, size_t max)
{
    size_t n = 0;
    const struct sf_cred_item *head = c->cred != NULL ? c->cred->head : NULL;
    const char *pref = c->cfg.auth_order;

    if (pref[0] == '\0') {
        for (const struct sf_cred_item *it = head; it != NULL && n < max; it = it->next) {
            out[n++] = it;
        }
        return n;
    }
    for (const char *p = pref; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        for (const struct sf_cred_item *it = head; it != NULL && n < max; it = it->next) {
            const char *m = sf_cred_method(it);
            if (strlen(m) == len && memcmp(m, p, len) == 0) {
                out[n++] = it;
            }
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return n;
}

#define AUTH_ITEMS_MAX 256 /* credentials looked at */

int sf_auth_run(struct sf_conn *c)
{
    struct auth_state *st = NULL;
    const struct sf_cred_item **items = NULL;
    bool *done = NULL;
    struct sf_buf req = {0}, m;
    uint8_t t = 0;
    size_t n = 0;
    int r;

    sf_conn_step(c, "user authentication");
    if ((st = sf_alloc(sizeof(*st))) == NULL ||
        (items = sf_alloc(AUTH_ITEMS_MAX * sizeof(*items))) == NULL ||
        (done = sf_alloc(AUTH_ITEMS_MAX * sizeof(*done))) == NULL ||
        (r = sf_buf_alloc(&req, 1024, SF_BUF_MAX)) != 0) {
        r = sf_conn_fail(c, SF_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* RFC 4253 s10: ask for the ssh-userauth service. */
    if ((r = sf_buf_put_u8(&req, SSH_MSG_SERVICE_REQUEST)) != 0 ||
        (r = sf_buf_put_cstr(&req, "ssh-userauth")) != 0 ||
        (r = send_req(c, &req)) != 0) {
        goto out;
    }
    if ((r = next_msg(c, &t, &m)) != 0) {
        goto out;
    }
    /* RFC 4253 s10: byte SSH_MSG_SERVICE_ACCEPT, string service name */
    const uint8_t *svc = NULL;
    size_t svclen = 0;
    if (t != SSH_MSG_SERVICE_ACCEPT || sf_buf_get_string(&m, &svc, &svclen, 64) != 0 ||
        sf_buf_expect_end(&m) != 0 || svclen != 12 || memcmp(svc, "ssh-userauth", 12) != 0) {
        r = sf_conn_fail(c, SF_ERR_PROTOCOL, "server did not accept the ssh-userauth service (message %u)", t);
        goto out;
    }

    /* "none" first (as ssh does): the server says which methods it takes, or lets us in. */
    if ((r = put_head(&req, c->user, "none")) != 0 || (r = send_req(c, &req)) != 0) {
        goto out;
    }
    if ((r = await_result(c, st, false, &m)) < 0) {
        goto out;
    }
    if (r == 1) {
        sf_log("the server let us in without authentication");
        r = 0;
        goto out;
    }
    sf_log("server accepts: %s", st->methods);

    n = order_items(c, items, AUTH_ITEMS_MAX);
    for (int pass = 0; pass < AUTH_PASSES; pass++) {
        st->progressed = false;
        for (size_t i = 0; i < n; i++) {
            const struct sf_cred_item *it = items[i];
            const char *method = sf_cred_method(it);
            if (done[i] || !method_enabled(c, it->kind) ||
                !sf_list_has(st->methods, method, strlen(method))) {
                continue;
            }
            done[i] = true;
            if ((r = try_item(c, st, it)) < 0) {
                goto out;
            }
            if (r == 1) {
                sf_log("authenticated with %s", it->label);
                r = 0;
                goto out;
            }
            if (st->partial) {
                sf_log("%s: partial success; the server now wants: %s", it->label, st->methods);
                break; /* the methods changed: start again from the first credential */
            }
        }
        if (!st->progressed) {
            break;
        }
    }
    r = sf_conn_fail_disconnect(
        c, SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, SF_ERR_AUTH,
        "authentication failed for user %s: server accepts %s%s; tried %s%s%s", c->user,
        st->methods[0] ? st->methods : "(nothing)",
        st->any_partial ? " (after a partial success: more factors needed)" : "",
        st->tried[0] ? st->tried : "nothing", st->notes[0] ? "; " : "", st->notes);
out:
    sf_buf_free(&req);
    sf_free(items);
    sf_free(done);
    sf_free(st);
    return r;
}
