/*
 * src/client.c -- sshflow_client_of_flow, the coordinator: it runs the
 * handshake on the connection's reader thread (version, key exchange, host
 * key check, authentication, channel open, request), waits for it with a
 * bound, and hands the channel back as a flow. Also the small public
 * objects: config and requests (credentials: cred.c).
 *
 * Owns: the order of the handshake and the reader thread's life. Must
 * never: parse messages itself.
 */
#include "conn.h"
#include "hostauth.h"

#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Config                                                                   */
/* ------------------------------------------------------------------------ */

void sf_config_defaults(struct sshflow_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->algs.kex, sizeof(cfg->algs.kex), "%s", sf_kex_default_list);
    snprintf(cfg->algs.hostkey, sizeof(cfg->algs.hostkey), "%s", sf_hostkey_default_list);
    snprintf(cfg->algs.cipher, sizeof(cfg->algs.cipher), "%s", sf_cipher_default_list);
    snprintf(cfg->algs.mac, sizeof(cfg->algs.mac), "%s", sf_mac_default_list);
    cfg->connect_timeout_ms = 30000;
    cfg->rekey_bytes = 1ULL << 30;
    cfg->rekey_seconds = 3600;
    cfg->max_stderr = 1024 * 1024;
}

SSHFLOW_API sshflow_config *sshflow_config_new(void)
{
    sshflow_config *cfg = sf_alloc(sizeof(*cfg));
    if (cfg != NULL) {
        sf_config_defaults(cfg);
    }
    return cfg;
}

SSHFLOW_API void sshflow_config_free(sshflow_config *cfg)
{
    if (cfg != NULL) {
        sf_free(cfg->hostname);
        sf_free(cfg);
    }
}

static int append_name(char *out, size_t outsz, const char *name, size_t n)
{
    size_t len = strlen(out);
    if (len + n + 2 > outsz) {
        return SF_ERR_TOO_LARGE;
    }
    if (len > 0) {
        out[len++] = ',';
    }
    memcpy(out + len, name, n);
    out[len + n] = '\0';
    return 0;
}

/*
 * OpenSSH's list syntax (ssh_config(5)): "a,b" replaces, "+a,b" appends,
 * "-a*,b" removes, "^a,b" prepends; a name with * or ? is a pattern that
 * stands for the supported names it matches. A plain name we do not
 * support, or a pattern matching none, is an error naming it. Writes the
 * result into cur.
 */
static int apply_list(char *cur, size_t cursz, const char *all, const char *value,
                      const char *what, sshflow_error *err)
{
    char out[SF_NAMELIST_MAX] = "";
    char mod = value[0];
    const char *spec = (mod == '+' || mod == '-' || mod == '^') ? value + 1 : value;
    int r;

    if (*spec == '\0') {
        return sf_err_set(err, SF_ERR_INVALID, "%s: empty list", what);
    }
    /* Check every name; a pattern (*, ?) stands for the supported names it matches. */
    char expanded[SF_NAMELIST_MAX] = "";
    for (const char *p = spec; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        bool pattern = memchr(p, '*', n) != NULL || memchr(p, '?', n) != NULL;
        if (n == 0 || n > SF_NAME_MAX) {
            return sf_err_set(err, SF_ERR_INVALID, "%s: empty or overlong name in \"%.64s\"", what, spec);
        }
        if (mod == '-') {
            p = e != NULL ? e + 1 : NULL;
            continue;
        }
        if (!pattern) {
            if (!sf_list_has(all, p, n)) {
                return sf_err_set(err, SF_ERR_INVALID, "%s: unsupported algorithm \"%.*s\" (supported: %s)",
                                  what, (int)n, p, all);
            }
            if (!sf_list_has(expanded, p, n) && append_name(expanded, sizeof(expanded), p, n) != 0) {
                return sf_err_set(err, SF_ERR_INVALID, "%s: list too long", what);
            }
        } else {
            char pat[SF_NAME_MAX + 1];
            bool any = false;
            snprintf(pat, sizeof(pat), "%.*s", (int)n, p);
            for (const char *q = all; q != NULL && *q != '\0';) {
                const char *qe = strchr(q, ',');
                size_t qn = qe != NULL ? (size_t)(qe - q) : strlen(q);
                char name[SF_NAME_MAX + 1];
                snprintf(name, sizeof(name), "%.*s", (int)SF_MIN(qn, (size_t)SF_NAME_MAX), q);
                if (fnmatch(pat, name, 0) == 0) {
                    any = true;
                    if (!sf_list_has(expanded, q, qn) &&
                        append_name(expanded, sizeof(expanded), q, qn) != 0) {
                        return sf_err_set(err, SF_ERR_INVALID, "%s: list too long", what);
                    }
                }
                q = qe != NULL ? qe + 1 : NULL;
            }
            if (!any) {
                return sf_err_set(err, SF_ERR_INVALID, "%s: \"%s\" matches no supported algorithm (supported: %s)",
                                  what, pat, all);
            }
        }
        p = e != NULL ? e + 1 : NULL;
    }
    if (mod != '-') {
        spec = expanded;
    }
    const char *a = NULL, *b = NULL; /* out = a then b, deduplicated */
    if (mod == '+') {
        a = cur;
        b = spec;
    } else if (mod == '^') {
        a = spec;
        b = cur;
    } else if (mod == '-') {
        a = cur;
    } else {
        a = spec;
    }
    for (int pass = 0; pass < 2; pass++) {
        const char *src = pass == 0 ? a : b;
        for (const char *p = src; p != NULL && *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
            bool drop = sf_list_has(out, p, n);
            if (mod == '-' && !drop) {
                char name[SF_NAME_MAX + 1];
                snprintf(name, sizeof(name), "%.*s", (int)SF_MIN(n, (size_t)SF_NAME_MAX), p);
                for (const char *q = spec; q != NULL && *q != '\0';) {
                    const char *qe = strchr(q, ',');
                    size_t qn = qe != NULL ? (size_t)(qe - q) : strlen(q);
                    char pat[SF_NAME_MAX + 1];
                    snprintf(pat, sizeof(pat), "%.*s", (int)SF_MIN(qn, (size_t)SF_NAME_MAX), q);
                    if (fnmatch(pat, name, 0) == 0) {
                        drop = true;
                    }
                    q = qe != NULL ? qe + 1 : NULL;
                }
            }
            if (!drop && (r = append_name(out, sizeof(out), p, n)) != 0) {
                return sf_err_set(err, SF_ERR_INVALID, "%s: list too long", what);
            }
            p = e != NULL ? e + 1 : NULL;
        }
    }
    if (out[0] == '\0') {
        return sf_err_set(err, SF_ERR_INVALID, "%s: no algorithm left", what);
    }
    snprintf(cur, cursz, "%s", out);
    return 0;
}

static int parse_size(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) {
        return -1;
    }
    switch (toupper((unsigned char)*end)) {
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'G':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (*end != '\0' && !isspace((unsigned char)*end)) {
        return -1;
    }
    *out = v;
    return 0;
}

SSHFLOW_API int sshflow_config_set(sshflow_config *cfg, const char *name, const char *value,
                                   sshflow_error *err)
{
    if (cfg == NULL || name == NULL || value == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_config_set: NULL argument");
    }
    if (strcasecmp(name, "KexAlgorithms") == 0) {
        return apply_list(cfg->algs.kex, sizeof(cfg->algs.kex), sf_kex_all_list, value, name, err);
    }
    if (strcasecmp(name, "HostKeyAlgorithms") == 0) {
        return apply_list(cfg->algs.hostkey, sizeof(cfg->algs.hostkey), sf_hostkey_all_list, value,
                          name, err);
    }
    if (strcasecmp(name, "Ciphers") == 0) {
        return apply_list(cfg->algs.cipher, sizeof(cfg->algs.cipher), sf_cipher_all_list, value,
                          name, err);
    }
    if (strcasecmp(name, "MACs") == 0) {
        return apply_list(cfg->algs.mac, sizeof(cfg->algs.mac), sf_mac_all_list, value, name, err);
    }
    if (strcasecmp(name, "ConnectTimeout") == 0) {
        char *end = NULL;
        long v = strtol(value, &end, 10);
        if (end == value || *end != '\0' || v < 0 || v > 86400) {
            return sf_err_set(err, SF_ERR_INVALID, "ConnectTimeout: expected seconds, got \"%.32s\"", value);
        }
        cfg->connect_timeout_ms = (int)v * 1000;
        return 0;
    }
    if (strcasecmp(name, "RekeyLimit") == 0) {
        uint64_t bytes = 0, secs = 0;
        const char *sp = strchr(value, ' ');
        if (strncasecmp(value, "default", 7) == 0) {
            bytes = 1ULL << 30;
        } else if (parse_size(value, &bytes) != 0 || bytes < 16) {
            return sf_err_set(err, SF_ERR_INVALID, "RekeyLimit: bad size \"%.32s\"", value);
        }
        if (sp != NULL) {
            while (*sp == ' ') {
                sp++;
            }
            if (strcasecmp(sp, "none") != 0 && parse_size(sp, &secs) != 0) {
                return sf_err_set(err, SF_ERR_INVALID, "RekeyLimit: bad time \"%.32s\"", sp);
            }
            cfg->rekey_seconds = secs;
        }
        cfg->rekey_bytes = bytes;
        return 0;
    }
    if (strcasecmp(name, "HostName") == 0) {
        char *h = sf_strdup(value);
        if (h == NULL) {
            return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        }
        sf_free(cfg->hostname);
        cfg->hostname = h;
        return 0;
    }
    if (strcasecmp(name, "Port") == 0) {
        char *end = NULL;
        long v = strtol(value, &end, 10);
        if (end == value || *end != '\0' || v < 1 || v > 65535) {
            return sf_err_set(err, SF_ERR_INVALID, "Port: bad port \"%.32s\"", value);
        }
        cfg->port = (uint16_t)v;
        return 0;
    }
    if (strcasecmp(name, "MaxStderrBuffer") == 0) {
        uint64_t v = 0;
        if (parse_size(value, &v) != 0 || v < 1024 || v > (256u << 20)) {
            return sf_err_set(err, SF_ERR_INVALID, "MaxStderrBuffer: 1K..256M");
        }
        cfg->max_stderr = (size_t)v;
        return 0;
    }
    if (strcasecmp(name, "PreferredAuthentications") == 0) {
        static const char methods[] = "publickey,password,keyboard-interactive";
        for (const char *p = value; *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
            if (n == 0 || !sf_list_has(methods, p, n)) {
                return sf_err_set(err, SF_ERR_INVALID,
                                  "PreferredAuthentications: unsupported method \"%.*s\" (supported: %s)",
                                  (int)SF_MIN(n, 64), p, methods);
            }
            p = e != NULL ? e + 1 : p + n;
        }
        if (strlen(value) >= sizeof(cfg->auth_order)) {
            return sf_err_set(err, SF_ERR_INVALID, "PreferredAuthentications: list too long");
        }
        snprintf(cfg->auth_order, sizeof(cfg->auth_order), "%s", value);
        return 0;
    }
    if (strcasecmp(name, "Compression") == 0) {
        /* OpenSSH's client option: yes offers zlib@openssh.com,zlib,none. */
        if (strcasecmp(value, "yes") == 0) {
            cfg->compression = true;
        } else if (strcasecmp(value, "no") == 0) {
            cfg->compression = false;
        } else {
            return sf_err_set(err, SF_ERR_INVALID, "Compression: expected yes or no, got \"%.32s\"",
                              value);
        }
        return 0;
    }
    bool *flag = NULL;
    if (strcasecmp(name, "PubkeyAuthentication") == 0) {
        flag = &cfg->no_pubkey;
    } else if (strcasecmp(name, "PasswordAuthentication") == 0) {
        flag = &cfg->no_password;
    } else if (strcasecmp(name, "KbdInteractiveAuthentication") == 0 ||
               strcasecmp(name, "ChallengeResponseAuthentication") == 0) {
        flag = &cfg->no_kbdint;
    }
    if (flag != NULL) {
        if (strcasecmp(value, "yes") == 0) {
            *flag = false;
        } else if (strcasecmp(value, "no") == 0) {
            *flag = true;
        } else {
            return sf_err_set(err, SF_ERR_INVALID, "%s: expected yes or no, got \"%.32s\"", name, value);
        }
        return 0;
    }
    return sf_err_set(err, SF_ERR_INVALID, "unknown option \"%.64s\"", name);
}

/* sshflow -Q: the supported lists, one name a line, made once. */
static char supported_kex[SF_NAMELIST_MAX], supported_cipher[SF_NAMELIST_MAX],
    supported_mac[SF_NAMELIST_MAX], supported_key[SF_NAMELIST_MAX];
static pthread_once_t supported_once = PTHREAD_ONCE_INIT;

static void one_a_line(char *dst, size_t dstsz, const char *list)
{
    size_t i = 0;
    for (; list[i] != '\0' && i + 1 < dstsz; i++) {
        dst[i] = list[i] == ',' ? '\n' : list[i];
    }
    dst[i] = '\0';
}

static void supported_init(void)
{
    one_a_line(supported_kex, sizeof(supported_kex), sf_kex_all_list);
    one_a_line(supported_cipher, sizeof(supported_cipher), sf_cipher_all_list);
    one_a_line(supported_mac, sizeof(supported_mac), sf_mac_all_list);
    one_a_line(supported_key, sizeof(supported_key), sf_hostkey_all_list);
}

SSHFLOW_API const char *sshflow_supported(const char *what)
{
    if (what == NULL) {
        return NULL;
    }
    pthread_once(&supported_once, supported_init);
    if (strcasecmp(what, "kex") == 0) {
        return supported_kex;
    }
    if (strcasecmp(what, "cipher") == 0) {
        return supported_cipher;
    }
    if (strcasecmp(what, "mac") == 0) {
        return supported_mac;
    }
    if (strcasecmp(what, "key") == 0 || strcasecmp(what, "HostKeyAlgorithms") == 0) {
        return supported_key;
    }
    if (strcasecmp(what, "compression") == 0) {
        return "none\nzlib@openssh.com\nzlib";
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

static sshflow_request *request_new(int kind, const char *arg)
{
    sshflow_request *q = sf_alloc(sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->kind = kind;
    if (arg != NULL && (q->arg = sf_strdup(arg)) == NULL) {
        sf_free(q);
        return NULL;
    }
    return q;
}

SSHFLOW_API sshflow_request *sshflow_request_exec(const char *command)
{
    return command != NULL ? request_new(SF_REQ_EXEC, command) : NULL;
}

SSHFLOW_API sshflow_request *sshflow_request_shell(void)
{
    return request_new(SF_REQ_SHELL, NULL);
}

SSHFLOW_API sshflow_request *sshflow_request_subsystem(const char *name)
{
    return name != NULL ? request_new(SF_REQ_SUBSYSTEM, name) : NULL;
}

SSHFLOW_API int sshflow_request_set_pty(sshflow_request *r, const char *term, uint32_t cols,
                                        uint32_t rows, const uint8_t *modes, size_t modes_len)
{
    if (r == NULL || (modes == NULL && modes_len > 0) || modes_len > 4096) {
        return SSHFLOW_ERR_INVALID;
    }
    char *t = sf_strdup(term != NULL ? term : "xterm");
    uint8_t *m = NULL;
    if (t == NULL || (modes_len > 0 && (m = sf_alloc(modes_len)) == NULL)) {
        sf_free(t);
        return SSHFLOW_ERR_NOMEM;
    }
    if (modes_len > 0) {
        memcpy(m, modes, modes_len);
    }
    sf_free(r->term);
    sf_free(r->modes);
    r->term = t;
    r->modes = m;
    r->modes_len = modes_len;
    r->cols = cols;
    r->rows = rows;
    r->pty = true;
    return 0;
}

SSHFLOW_API int sshflow_request_add_env(sshflow_request *r, const char *name, const char *value)
{
    if (r == NULL || name == NULL || value == NULL || name[0] == '\0') {
        return SSHFLOW_ERR_INVALID;
    }
    struct sf_env *e = sf_alloc(sizeof(*e));
    if (e == NULL || (e->name = sf_strdup(name)) == NULL || (e->value = sf_strdup(value)) == NULL) {
        if (e != NULL) {
            sf_free(e->name);
        }
        sf_free(e);
        return SSHFLOW_ERR_NOMEM;
    }
    struct sf_env **tail = &r->env;
    while (*tail != NULL) {
        tail = &(*tail)->next;
    }
    *tail = e;
    return 0;
}

SSHFLOW_API void sshflow_request_free(sshflow_request *r)
{
    if (r == NULL) {
        return;
    }
    struct sf_env *e = r->env;
    while (e != NULL) {
        struct sf_env *next = e->next;
        sf_free(e->name);
        sf_free(e->value);
        sf_free(e);
        e = next;
    }
    sf_free(r->arg);
    sf_free(r->term);
    sf_free(r->modes);
    sf_free(r);
}

/* ------------------------------------------------------------------------ */
/* The reader thread and client_of_flow                                     */
/* ------------------------------------------------------------------------ */

static int handshake(struct sf_conn *c)
{
    uint8_t t = 0;
    struct sf_buf m;
    int r;

    if ((r = sf_conn_version_exchange(c)) != 0) {
        return r;
    }
    sf_conn_step(c, "key exchange");
    if ((r = sf_kex_start(c)) != 0) {
        return r;
    }
    for (;;) {
        pthread_mutex_lock(&c->mu);
        unsigned done = c->kex_done;
        pthread_mutex_unlock(&c->mu);
        if (done > 0) {
            break;
        }
        if ((r = sf_conn_next(c, &t, &m)) < 0) {
            return r;
        }
        if (r == 1) {
            return sf_conn_fail(c, SF_ERR_PROTOCOL, "message %u before the key exchange finished", t);
        }
    }
    if ((r = sf_auth_run(c)) != 0 || (r = sf_chan_open_session(c)) != 0 ||
        (r = sf_chan_send_requests(c)) != 0) {
        return r;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct sf_conn *c = arg;
    int r = handshake(c);

    pthread_mutex_lock(&c->mu);
    if (r == 0 && c->err_code == 0) {
        c->phase = SF_PHASE_READY;
    }
    c->hs_over = true;
    /* The handshake-only pointers are the caller's: drop them now. */
    c->hostauth = NULL;
    c->cred = NULL;
    c->req = NULL;
    c->user = NULL;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (r != 0) {
        return NULL;
    }
    sf_log("session ready");
    while (sf_chan_pump(c) >= 0) {
    }
    return NULL;
}

/*
 * The helper thread, one per connection once the session runs:
 *  - sends the control messages the reader thread queued (window adjusts,
 *    replies to keepalives, CHANNEL_CLOSE), so the reader never blocks in a
 *    flow write and always goes on reading;
 *  - starts the time-based re-key (RekeyLimit's second value): the reader
 *    only wakes for packets, so an idle connection needs a clock.
 */
static void *helper_main(void *arg)
{
    struct sf_conn *c = arg;
    unsigned started_for = 0; /* kex_done when we last started one */

    pthread_mutex_lock(&c->mu);
    while (c->phase == SF_PHASE_READY && !c->closing) {
        if (c->ctl_pending) {
            c->ctl_pending = false;
            pthread_mutex_unlock(&c->mu);
            pthread_mutex_lock(&c->send_mu);
            sf_conn_send_unlock(c); /* sends the queue unless a key exchange runs */
            pthread_mutex_lock(&c->mu);
            continue;
        }
        bool timed = c->cfg.rekey_seconds > 0;
        uint64_t deadline = c->kex_done_ms + c->cfg.rekey_seconds * 1000;
        if (timed && c->kex_done != started_for && sf_now_ms() >= deadline) {
            started_for = c->kex_done;
            pthread_mutex_unlock(&c->mu);
            sf_log("re-keying (time limit)");
            if (sf_kex_start(c) != 0) {
                sf_log("time-based re-key failed to start"); /* sticky: the loop ends */
            }
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (!timed || c->kex_done == started_for) {
            /* Nothing timed, or our exchange is under way: wait for news. */
            pthread_cond_wait(&c->helper_cv, &c->mu);
            continue;
        }
        struct timespec ts;
        sf_abstime(CLOCK_MONOTONIC, deadline - sf_now_ms(), &ts);
        pthread_cond_timedwait(&c->helper_cv, &c->mu, &ts);
    }
    c->helper_ready = false;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

void sf_conn_teardown(struct sf_conn *c, bool graceful)
{
    if (graceful) {
        sf_conn_disconnect(c, SSH_DISCONNECT_BY_APPLICATION, "closed by the client");
    }
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    bool join = c->reader_started;
    bool join_helper = c->helper_started;
    c->reader_started = false;
    c->helper_started = false;
    pthread_cond_broadcast(&c->cv);
    pthread_cond_broadcast(&c->helper_cv);
    pthread_mutex_unlock(&c->mu);
    sf_flow_abort(c->flow);
    /* Writers waiting for a key exchange, and readers, must not wait any more. */
    pthread_mutex_lock(&c->send_mu);
    c->send_dead = true;
    pthread_cond_broadcast(&c->send_cv);
    pthread_mutex_unlock(&c->send_mu);
    if (join) {
        pthread_join(c->reader, NULL);
    }
    if (join_helper) {
        pthread_join(c->helper, NULL);
    }
    pthread_mutex_lock(&c->mu);
    if (c->err_code == 0) {
        (void)sf_conn_fail_locked(c, SF_ERR_CLOSED, "the connection is closed");
    }
    pthread_mutex_unlock(&c->mu);
    (void)sshflow_close_timeout(c->flow, 0, NULL);
}

/* Host key algorithms for known key types first (OpenSSH does the same). */
static void prefer_known(struct sf_conn *c, const sshflow_hostauth *a)
{
    char known[512] = "", out[SF_NAMELIST_MAX] = "";
    sf_hostauth_known_types(a, c->host, c->port, known, sizeof(known));
    if (known[0] == '\0') {
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (const char *p = c->cfg.algs.hostkey; p != NULL && *p != '\0';) {
            const char *e = strchr(p, ',');
            size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
            const char *keytype = p;
            size_t kn = n;
            if ((n == 12 && strncmp(p, "rsa-sha2-512", 12) == 0) ||
                (n == 12 && strncmp(p, "rsa-sha2-256", 12) == 0)) {
                keytype = "ssh-rsa";
                kn = 7;
            }
            bool is_known = sf_list_has(known, keytype, kn);
            if (is_known == (pass == 0)) {
                (void)append_name(out, sizeof(out), p, n);
            }
            p = e != NULL ? e + 1 : NULL;
        }
    }
    snprintf(c->cfg.algs.hostkey, sizeof(c->cfg.algs.hostkey), "%s", out);
}

static void destroy(struct sf_conn *c)
{
    sf_conn_teardown(c, false);
    if (c->chan != NULL) {
        sf_ring_free(&c->chan->data);
        sf_ring_free(&c->chan->ext);
        sf_free(c->chan);
        c->chan = NULL;
    }
    sshflow_free(c->flow);
    c->flow = NULL;
    sf_conn_free(c);
}

SSHFLOW_API sshflow_flow *sshflow_client_of_flow(sshflow_flow *transport, const char *user,
                                                 const sshflow_cred *cred,
                                                 const sshflow_hostauth *hostauth,
                                                 const sshflow_request *req,
                                                 const sshflow_config *cfg, sshflow_error *err)
{
    struct sshflow_config defaults;
    sshflow_hostauth *owned_auth = NULL;
    struct sf_conn *c = NULL;
    sshflow_flow *out = NULL;
    int r;

    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    if (transport == NULL || user == NULL || req == NULL) {
        sshflow_free(transport);
        sf_err_set(err, SF_ERR_INVALID, "client_of_flow needs a flow, a user name and a request");
        return NULL;
    }
    if (cfg == NULL) {
        sf_config_defaults(&defaults);
        cfg = &defaults;
    }
    if ((r = sf_conn_new(&c, transport, cfg)) != 0) {
        sshflow_free(transport);
        sf_err_set(err, r, "out of memory");
        return NULL;
    }
    const char *host = transport->host != NULL ? transport->host : cfg->hostname;
    c->port = transport->host != NULL ? transport->port : (cfg->port != 0 ? cfg->port : 22);
    if (c->port == 0) {
        c->port = 22;
    }
    if (host != NULL && (c->host = sf_strdup(host)) == NULL) {
        sf_err_set(err, SF_ERR_NOMEM, "out of memory");
        goto fail_early;
    }
    if (hostauth == NULL) {
        if ((owned_auth = sshflow_hostauth_known_hosts(NULL, SSHFLOW_HOSTKEY_STRICT)) == NULL) {
            sf_err_set(err, SF_ERR_NOMEM, "out of memory");
            goto fail_early;
        }
        hostauth = owned_auth;
    }
    if (sf_hostauth_needs_host(hostauth) && c->host == NULL) {
        sf_err_set(err, SF_ERR_INVALID,
                   "known_hosts checking needs the server's name: this flow does not know it, "
                   "so set HostName (and Port) in the config, or give another authenticator");
        goto fail_early;
    }
    prefer_known(c, hostauth);
    c->hostauth = hostauth;
    c->cred = cred;
    c->req = req;
    c->user = user;

    if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
        sf_err_set(err, SF_ERR_NOMEM, "cannot start the reader thread");
        goto fail_early;
    }
    c->reader_started = true;

    /* Wait for the handshake, bounded by ConnectTimeout. */
    uint64_t deadline = cfg->connect_timeout_ms > 0 ? sf_now_ms() + (uint64_t)cfg->connect_timeout_ms : 0;
    pthread_mutex_lock(&c->mu);
    /* Until the reader is done with it: a failure is recorded before the
     * DISCONNECT that tells the server goes out, and we must not tear the
     * transport down in between. */
    while (!c->hs_over) {
        if (deadline == 0 || c->hs_in_callback) {
            /* The user is being asked something: their time is not counted. */
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        uint64_t now = sf_now_ms();
        if (now >= deadline + c->hs_paused_ms) {
            (void)sf_conn_fail_locked(c, SF_ERR_TIMEOUT, "no progress within %d s (stuck in %s)",
                                      cfg->connect_timeout_ms / 1000, c->step != NULL ? c->step : "start");
            break;
        }
        struct timespec ts;
        sf_abstime(CLOCK_MONOTONIC, deadline + c->hs_paused_ms - now, &ts);
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    bool ok = c->phase == SF_PHASE_READY;
    if (!ok && err != NULL) {
        *err = c->err;
    }
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        /* The reader may still be inside a callback using hostauth/cred: join before returning. */
        destroy(c);
        sshflow_hostauth_free(owned_auth);
        return NULL;
    }
    sshflow_hostauth_free(owned_auth);
    /* Ready before it runs: from now on the reader hands it its control
     * messages, even if the helper is scheduled late (ctl_pending waits). */
    pthread_mutex_lock(&c->mu);
    c->helper_ready = true;
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->helper, NULL, helper_main, c) != 0) {
        pthread_mutex_lock(&c->mu);
        c->helper_ready = false;
        pthread_mutex_unlock(&c->mu);
        sf_err_set(err, SF_ERR_NOMEM, "cannot start the connection's helper thread");
        destroy(c);
        return NULL;
    }
    pthread_mutex_lock(&c->mu);
    c->helper_started = true;
    pthread_mutex_unlock(&c->mu);
    if ((r = sf_chan_make_flow(c, &out)) != 0) {
        sf_err_set(err, r, "out of memory");
        destroy(c);
        return NULL;
    }
    return out;

fail_early:
    sshflow_hostauth_free(owned_auth);
    sf_conn_free(c);
    sshflow_free(transport);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                              */
/* ------------------------------------------------------------------------ */

SSHFLOW_API int sshflow_describe(sshflow_flow *f, char *buf, size_t len)
{
    if (f == NULL || f->chan == NULL || buf == NULL || len == 0) {
        return SSHFLOW_ERR_INVALID;
    }
    struct sf_conn *c = f->chan->conn;
    pthread_mutex_lock(&c->mu);
    snprintf(buf, len, "%s", c->desc);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

SSHFLOW_API unsigned sshflow_kex_count(sshflow_flow *f)
{
    if (f == NULL || f->chan == NULL) {
        return 0;
    }
    struct sf_conn *c = f->chan->conn;
    pthread_mutex_lock(&c->mu);
    unsigned n = c->kex_done;
    pthread_mutex_unlock(&c->mu);
    return n;
}
