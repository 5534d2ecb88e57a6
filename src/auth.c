/*
 * src/auth.c -- user authentication (RFC 4252): the ssh-userauth service,
 * publickey (signed directly, RFC 4252 s7, with rsa-sha2 per RFC 8332 and
 * server-sig-algs per RFC 8308) and password (s8), credentials tried in
 * order, partial success followed.
 *
 * Owns: building USERAUTH requests and reading their replies. Runs on the
 * reader thread during the handshake. Must never: run before the host key
 * was accepted (client.c orders that), or keep secrets after use.
 */
#include "conn.h"

#include <stdio.h>
#include <string.h>

/* Wait for the next upper-layer message; transport ones are handled in sf_conn_next. */
static int next_msg(struct sf_conn *c, uint8_t *type, struct sf_buf *m)
{
    int r;
    while ((r = sf_conn_next(c, type, m)) == 0) {
    }
    return r < 0 ? r : 0;
}

/* Signature algorithm for a user key: RSA per server-sig-algs, never SHA-1. */
static const char *user_sigalg(struct sf_conn *c, const struct sf_privkey *k)
{
    const char *type = sf_privkey_type(k);
    if (strcmp(type, "ssh-rsa") != 0) {
        return type;
    }
    pthread_mutex_lock(&c->mu);
    bool has512 = sf_list_has(c->server_sig_algs, "rsa-sha2-512", 12);
    bool has256 = sf_list_has(c->server_sig_algs, "rsa-sha2-256", 12);
    pthread_mutex_unlock(&c->mu);
    if (!has512 && has256) {
        return "rsa-sha2-256";
    }
    return "rsa-sha2-512"; /* also when the server sent no list: SHA-1 is not an option */
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

/*
 * RFC 4252 s7: the signature covers
 *   string session identifier || byte 50 || string user || string service ||
 *   string "publickey" || boolean TRUE || string algorithm || string key blob
 * and the request is the same fields (without the session id) plus the signature.
 */
static int build_publickey(struct sf_conn *c, const struct sf_privkey *k, const char *sigalg,
                           struct sf_buf *req)
{
    struct sf_buf blob = {0}, tosign = {0}, sig = {0};
    int r;

    if ((r = sf_buf_alloc(&blob, 512, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_alloc(&tosign, 1024, SF_BUF_MAX)) != 0 ||
        (r = sf_buf_alloc(&sig, 512, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_privkey_pubblob(k, &blob)) != 0 ||
        (r = put_head(req, c->user, "publickey")) != 0 ||
        (r = sf_buf_put_bool(req, true)) != 0 ||
        (r = sf_buf_put_cstr(req, sigalg)) != 0 ||
        (r = sf_buf_put_sub(req, &blob)) != 0 ||
        (r = sf_buf_put_string(&tosign, c->session_id, c->session_id_len)) != 0 ||
        (r = sf_buf_put_bytes(&tosign, sf_buf_ptr(req), sf_buf_len(req))) != 0 ||
        (r = sf_privkey_sign(k, sigalg, sf_buf_ptr(&tosign), sf_buf_len(&tosign), &sig)) != 0 ||
        (r = sf_buf_put_sub(req, &sig)) != 0) {
        goto out;
    }
out:
    sf_buf_free(&blob);
    sf_buf_free(&tosign);
    sf_buf_free(&sig);
    return r;
}

static int build_password(struct sf_conn *c, const char *pw, struct sf_buf *req)
{
    int r;
    if ((r = put_head(req, c->user, "password")) != 0 || (r = sf_buf_put_bool(req, false)) != 0 ||
        (r = sf_buf_put_cstr(req, pw)) != 0) {
        return r;
    }
    return 0;
}

static void append(char *dst, size_t dstsz, const char *what)
{
    size_t len = strlen(dst);
    snprintf(dst + len, dstsz - len, "%s%s", len > 0 ? ", " : "", what);
}

/*
 * RFC 4252 s5.1 SSH_MSG_USERAUTH_FAILURE (after the type byte):
 *   name-list authentications that can continue, boolean partial success
 * RFC 4252 s5.4 SSH_MSG_USERAUTH_BANNER: string message, string language tag
 * Returns 1 on success, 0 on failure (methods/partial filled), < 0 on error.
 */
static int await_result(struct sf_conn *c, char *methods, size_t msz, bool *partial)
{
    uint8_t t = 0;
    struct sf_buf m;
    int r;

    for (;;) {
        if ((r = next_msg(c, &t, &m)) != 0) {
            return r;
        }
        switch (t) {
        case SSH_MSG_USERAUTH_SUCCESS:
            if ((r = sf_buf_expect_end(&m)) != 0) {
                return sf_conn_fail(c, r, "malformed USERAUTH_SUCCESS");
            }
            return 1;
        case SSH_MSG_USERAUTH_FAILURE: {
            struct sf_buf list;
            if ((r = sf_buf_get_namelist(&m, &list, SF_NAMELIST_MAX)) != 0 ||
                (r = sf_buf_get_bool(&m, partial)) != 0 || (r = sf_buf_expect_end(&m)) != 0) {
                return sf_conn_fail(c, r, "malformed USERAUTH_FAILURE");
            }
            size_t n = SF_MIN(sf_buf_len(&list), msz - 1);
            memcpy(methods, sf_buf_ptr(&list), n);
            methods[n] = '\0';
            return 0;
        }
        case SSH_MSG_USERAUTH_BANNER: {
            const uint8_t *text = NULL;
            size_t n = 0;
            if ((r = sf_buf_get_string(&m, &text, &n, SF_STRING_MAX)) != 0) {
                return sf_conn_fail(c, r, "malformed USERAUTH_BANNER");
            }
            sf_log("banner: %.*s", (int)SF_MIN(n, 400), (const char *)text);
            continue;
        }
        case SSH_MSG_USERAUTH_PK_OK: /* also PASSWD_CHANGEREQ: the password expired */
            methods[0] = '\0';
            *partial = false;
            sf_log("server asks for a password change; not supported");
            return 0;
        default:
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "unexpected message %u during authentication", t);
        }
    }
}

int sf_auth_run(struct sf_conn *c)
{
    struct sf_buf req = {0};
    char methods[SF_NAMELIST_MAX] = "";
    char tried[512] = "";
    bool partial = false, known = false;
    uint8_t t = 0;
    struct sf_buf m;
    int r;

    sf_conn_step(c, "user authentication");
    /* RFC 4253 s10: ask for the ssh-userauth service. */
    if ((r = sf_buf_alloc(&req, 1024, SF_BUF_MAX)) != 0) {
        return sf_conn_fail(c, r, "out of memory");
    }
    if ((r = sf_buf_put_u8(&req, SSH_MSG_SERVICE_REQUEST)) != 0 ||
        (r = sf_buf_put_cstr(&req, "ssh-userauth")) != 0 ||
        (r = sf_conn_send(c, sf_buf_ptr(&req), sf_buf_len(&req), SF_SEND_CONTROL)) != 0) {
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

    for (const struct sf_cred_item *it = c->cred != NULL ? c->cred->head : NULL; it != NULL;
         it = it->next) {
        const char *method = it->kind == SF_CRED_KEY ? "publickey" : "password";
        if (known && !sf_list_has(methods, method, strlen(method))) {
            continue;
        }
        sf_buf_reset(&req);
        if (it->kind == SF_CRED_KEY) {
            const char *sigalg = user_sigalg(c, it->key);
            sf_log("trying public key %s (%s)", it->label, sigalg);
            r = build_publickey(c, it->key, sigalg, &req);
        } else {
            sf_log("trying password");
            r = build_password(c, it->password, &req);
        }
        if (r != 0) {
            r = sf_conn_fail(c, r, "building the %s request failed: %s", method, sf_err_str(r));
            goto out;
        }
        r = sf_conn_send(c, sf_buf_ptr(&req), sf_buf_len(&req), SF_SEND_CONTROL);
        sf_buf_reset(&req); /* wipes the password */
        if (r != 0) {
            goto out;
        }
        append(tried, sizeof(tried), it->label);
        if ((r = await_result(c, methods, sizeof(methods), &partial)) < 0) {
            goto out;
        }
        if (r == 1) {
            sf_log("authenticated with %s", it->label);
            r = 0;
            goto out;
        }
        known = true;
        sf_log("%s: %s; server accepts: %s", it->label, partial ? "partial success" : "refused", methods);
    }
    if (!known) {
        /* Nothing was tried: ask with "none" so the error can say what would work. */
        sf_buf_reset(&req);
        if ((r = put_head(&req, c->user, "none")) != 0 ||
            (r = sf_conn_send(c, sf_buf_ptr(&req), sf_buf_len(&req), SF_SEND_CONTROL)) != 0) {
            goto out;
        }
        if ((r = await_result(c, methods, sizeof(methods), &partial)) < 0) {
            goto out;
        }
        if (r == 1) {
            r = 0; /* the server let us in with no authentication */
            goto out;
        }
    }
    r = sf_conn_fail_disconnect(c, SSH_DISCONNECT_NO_MORE_AUTH_METHODS_AVAILABLE, SF_ERR_AUTH, "authentication failed for user %s: server accepts %s; tried %s",
                     c->user, methods[0] ? methods : "(nothing)", tried[0] ? tried : "nothing");
out:
    sf_buf_free(&req);
    return r;
}
