/*
 * src/cred.h -- the credentials object (sshflow_cred): an ordered list of
 * ways to authenticate, built by the public sshflow_cred_* calls (cred.c)
 * and consumed by user authentication (auth.c) on the reader thread.
 *
 * Owns: the items and the secrets in them (keys, passwords), wiped when the
 * object is freed. Must never: do network I/O.
 */
#ifndef SF_CRED_H
#define SF_CRED_H

#include "key.h"
#include "sf.h"

struct sf_cert;

enum sf_cred_kind {
    SF_CRED_KEY = 1,      /* a private key, maybe with a certificate */
    SF_CRED_PASSWORD = 2, /* a fixed password, or one asked for with a prompt */
    SF_CRED_AGENT = 3,    /* every key an ssh-agent holds */
    SF_CRED_KBDINT = 4,   /* keyboard-interactive with a prompt callback */
};

struct sf_cred_item {
    int kind;
    struct sf_privkey *key;   /* KEY */
    struct sf_cert *cert;     /* KEY: certificate for key, or NULL */
    char *password;           /* PASSWORD (fixed); wiped on free */
    sshflow_prompt_fn prompt; /* PASSWORD (asked) and KBDINT */
    void *prompt_user;
    unsigned tries;           /* PASSWORD (asked) and KBDINT: attempts */
    char *agent_path;         /* AGENT: socket, NULL for $SSH_AUTH_SOCK */
    char *label;              /* file name, "password", "agent ...", for messages */
    struct sf_cred_item *next;
};

struct sshflow_cred {
    struct sf_cred_item *head, *tail;
    sshflow_banner_fn banner;
    void *banner_user;
};

/* The SSH method name an item authenticates with ("publickey", ...). */
const char *sf_cred_method(const struct sf_cred_item *it);

#endif
