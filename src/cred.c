/*
 * src/cred.c -- the public credentials calls (sshflow_cred_*): keys from
 * files or memory (asking for passphrases), certificates attached to keys,
 * agents, passwords (fixed or asked), keyboard-interactive, the banner
 * callback.
 *
 * Owns: building struct sshflow_cred (cred.h) and freeing it, wiping every
 * secret. Must never: talk to the network or an agent (auth.c does that
 * when connecting), or keep a passphrase after the key is loaded.
 */
#include "cert.h"
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PROMPT_ANSWER_MAX 1024 /* longest passphrase/password we take from a prompt */

const char *sf_cred_method(const struct sf_cred_item *it)
{
    switch (it->kind) {
    case SF_CRED_KEY:
    case SF_CRED_AGENT:
        return "publickey";
    case SF_CRED_PASSWORD:
        return "password";
    case SF_CRED_KBDINT:
        return "keyboard-interactive";
    default:
        return "none";
    }
}

SSHFLOW_API sshflow_cred *sshflow_cred_new(void)
{
    return sf_alloc(sizeof(sshflow_cred));
}

static void item_free(struct sf_cred_item *it)
{
    if (it == NULL) {
        return;
    }
    sf_privkey_free(it->key);
    sf_cert_free(it->cert);
    if (it->password != NULL) {
        sf_freezero(it->password, strlen(it->password));
    }
    sf_free(it->agent_path);
    sf_free(it->label);
    sf_free(it);
}

SSHFLOW_API void sshflow_cred_free(sshflow_cred *c)
{
    if (c == NULL) {
        return;
    }
    struct sf_cred_item *it = c->head;
    while (it != NULL) {
        struct sf_cred_item *next = it->next;
        item_free(it);
        it = next;
    }
    sf_free(c);
}

SSHFLOW_API void sshflow_cred_set_banner(sshflow_cred *c, sshflow_banner_fn fn, void *user)
{
    if (c != NULL) {
        c->banner = fn;
        c->banner_user = user;
    }
}

static void cred_append(sshflow_cred *c, struct sf_cred_item *it)
{
    if (c->tail != NULL) {
        c->tail->next = it;
    } else {
        c->head = it;
    }
    c->tail = it;
}

/* A new item with a copy of label; NULL on out of memory. */
static struct sf_cred_item *item_new(int kind, const char *label)
{
    struct sf_cred_item *it = sf_alloc(sizeof(*it));
    if (it == NULL) {
        return NULL;
    }
    it->kind = kind;
    if ((it->label = sf_strdup(label)) == NULL) {
        sf_free(it);
        return NULL;
    }
    return it;
}

static int key_error(sshflow_error *err, int r, int sys_errno, const char *what)
{
    int k;
    switch (r) {
    case SF_ERR_FILE:
        k = sf_err_set(err, r, "cannot read key file %s", what);
        if (err != NULL) {
            err->sys_errno = sys_errno;
        }
        return k;
    case SF_ERR_KEY_ENCRYPTED:
        return sf_err_set(err, r, "key %s is encrypted: it needs a passphrase", what);
    case SF_ERR_KEY_PASSPHRASE:
        return sf_err_set(err, r, "wrong passphrase for key %s", what);
    case SF_ERR_KEY_TYPE:
        return sf_err_set(err, r, "key %s: unsupported key type or format, or a corrupt key", what);
    case SF_ERR_NOMEM:
        return sf_err_set(err, r, "out of memory");
    default:
        return sf_err_set(err, r, "key %s is not usable: %s", what, sf_err_str(r));
    }
}

static int add_key(sshflow_cred *c, struct sf_privkey *k, const char *label, sshflow_error *err)
{
    struct sf_cred_item *it = item_new(SF_CRED_KEY, label);
    if (it == NULL) {
        sf_privkey_free(k);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    it->key = k;
    cred_append(c, it);
    return 0;
}

/* Attach cert to the last key item it certifies. Takes cert in every case. */
static int attach_cert(sshflow_cred *c, struct sf_cert *cert, const char *path, sshflow_error *err)
{
    struct sf_cred_item *found = NULL;
    struct sf_buf blob = {0};
    int r;

    if ((r = sf_buf_alloc(&blob, 512, SF_KEYBLOB_MAX)) != 0) {
        sf_cert_free(cert);
        return sf_err_set(err, r, "out of memory");
    }
    for (struct sf_cred_item *it = c->head; it != NULL; it = it->next) {
        if (it->kind != SF_CRED_KEY) {
            continue;
        }
        sf_buf_reset(&blob);
        if (sf_privkey_pubblob(it->key, &blob) == 0 &&
            sf_cert_certifies(cert, sf_buf_ptr(&blob), sf_buf_len(&blob))) {
            found = it;
        }
    }
    sf_buf_free(&blob);
    if (found == NULL) {
        sf_cert_free(cert);
        return sf_err_set(err, SF_ERR_KEY_TYPE, "certificate %s certifies none of the keys added", path);
    }
    sf_cert_free(found->cert);
    found->cert = cert;
    return 0;
}

SSHFLOW_API int sshflow_cred_add_certfile(sshflow_cred *c, const char *path, sshflow_error *err)
{
    struct sf_cert *cert = NULL;
    int r;
    if (c == NULL || path == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_cred_add_certfile: NULL argument");
    }
    errno = 0;
    if ((r = sf_cert_load_file(path, &cert)) != 0) {
        int e = errno;
        if (r == SF_ERR_FILE) {
            return key_error(err, r, e, path);
        }
        return sf_err_set(err, r == SF_ERR_NOMEM ? r : SF_ERR_KEY_TYPE,
                          "%s is not a usable certificate: %s", path, sf_err_str(r));
    }
    return attach_cert(c, cert, path, err);
}

/* Load path with passphrase, add it, and attach "<path>-cert.pub" if there is one. */
static int add_keyfile(sshflow_cred *c, const char *path, const char *passphrase,
                       sshflow_error *err)
{
    struct sf_privkey *k = NULL;
    char certpath[4096];
    int r;

    errno = 0;
    if ((r = sf_privkey_load_file(path, passphrase, &k)) != 0) {
        return key_error(err, r, errno, path);
    }
    if ((r = add_key(c, k, path, err)) != 0) {
        return r;
    }
    /* ssh(1) loads the certificate beside an identity file without being asked. */
    if ((size_t)snprintf(certpath, sizeof(certpath), "%s-cert.pub", path) < sizeof(certpath) &&
        access(certpath, F_OK) == 0) {
        struct sf_cert *cert = NULL;
        sshflow_error cerr;
        if (sf_cert_load_file(certpath, &cert) != 0 || attach_cert(c, cert, certpath, &cerr) != 0) {
            sf_log("ignoring %s: not a certificate for %s", certpath, path);
        } else {
            sf_log("certificate %s attached to %s", certpath, path);
        }
    }
    return 0;
}

SSHFLOW_API int sshflow_cred_add_keyfile(sshflow_cred *c, const char *path,
                                         const char *passphrase, sshflow_error *err)
{
    if (c == NULL || path == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_cred_add_keyfile: NULL argument");
    }
    return add_keyfile(c, path, passphrase, err);
}

SSHFLOW_API int sshflow_cred_add_keyfile_prompt(sshflow_cred *c, const char *path,
                                                sshflow_prompt_fn fn, void *user,
                                                unsigned tries, sshflow_error *err)
{
    char *answer = NULL;
    char text[600];
    int r;

    if (c == NULL || path == NULL || fn == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_cred_add_keyfile_prompt: NULL argument");
    }
    if (tries == 0) {
        tries = 3;
    }
    /* First without a passphrase: a plain key needs no question. */
    r = add_keyfile(c, path, NULL, err);
    if (r == 0 || sf_err_kind(SF_ERR_KEY_ENCRYPTED) != r) {
        return r;
    }
    if ((answer = sf_alloc(PROMPT_ANSWER_MAX)) == NULL) {
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    snprintf(text, sizeof(text), "Enter passphrase for key '%s': ", path);
    sshflow_prompt p = {.kind = "passphrase", .name = "", .instruction = "", .text = text,
                        .echo = false, .index = 0, .count = 1};
    for (unsigned i = 0; i < tries; i++) {
        answer[0] = '\0';
        if (fn(user, &p, answer, PROMPT_ANSWER_MAX) != 0) {
            r = sf_err_set(err, SF_ERR_KEY_ENCRYPTED, "key %s is encrypted and no passphrase was given", path);
            break;
        }
        answer[PROMPT_ANSWER_MAX - 1] = '\0';
        r = add_keyfile(c, path, answer, err);
        if (r != sf_err_kind(SF_ERR_KEY_PASSPHRASE)) {
            break;
        }
    }
    sf_freezero(answer, PROMPT_ANSWER_MAX);
    return r;
}

SSHFLOW_API int sshflow_cred_add_key(sshflow_cred *c, const void *data, size_t len,
                                     const char *passphrase, sshflow_error *err)
{
    struct sf_privkey *k = NULL;
    int r;
    if (c == NULL || data == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_cred_add_key: NULL argument");
    }
    if ((r = sf_privkey_load(data, len, passphrase, &k)) != 0) {
        return key_error(err, r, 0, "(in memory)");
    }
    return add_key(c, k, "(in-memory key)", err);
}

SSHFLOW_API int sshflow_cred_add_password(sshflow_cred *c, const char *password,
                                          sshflow_error *err)
{
    if (c == NULL || password == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_cred_add_password: NULL argument");
    }
    struct sf_cred_item *it = item_new(SF_CRED_PASSWORD, "password");
    if (it == NULL || (it->password = sf_strdup(password)) == NULL) {
        item_free(it);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    it->tries = 1;
    cred_append(c, it);
    return 0;
}

static int add_prompting(sshflow_cred *c, int kind, const char *label, sshflow_prompt_fn fn,
                         void *user, unsigned tries, sshflow_error *err)
{
    if (c == NULL || fn == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "%s: NULL argument", label);
    }
    struct sf_cred_item *it = item_new(kind, label);
    if (it == NULL) {
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    it->prompt = fn;
    it->prompt_user = user;
    it->tries = tries == 0 ? 3 : SF_MIN(tries, 100u);
    cred_append(c, it);
    return 0;
}

SSHFLOW_API int sshflow_cred_add_password_prompt(sshflow_cred *c, sshflow_prompt_fn fn,
                                                 void *user, unsigned tries, sshflow_error *err)
{
    return add_prompting(c, SF_CRED_PASSWORD, "password", fn, user, tries, err);
}

SSHFLOW_API int sshflow_cred_add_kbdint(sshflow_cred *c, sshflow_prompt_fn fn, void *user,
                                        unsigned tries, sshflow_error *err)
{
    return add_prompting(c, SF_CRED_KBDINT, "keyboard-interactive", fn, user, tries, err);
}

SSHFLOW_API int sshflow_cred_add_agent(sshflow_cred *c, const char *path, sshflow_error *err)
{
    char label[300];
    if (c == NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_cred_add_agent: NULL argument");
    }
    snprintf(label, sizeof(label), "agent %s", path != NULL ? path : "$SSH_AUTH_SOCK");
    struct sf_cred_item *it = item_new(SF_CRED_AGENT, label);
    if (it == NULL || (path != NULL && (it->agent_path = sf_strdup(path)) == NULL)) {
        item_free(it);
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    cred_append(c, it);
    return 0;
}
