/*
 * check/testlib/authkit.h -- test helpers for the user-authentication
 * interop tests (check/check_auth.c): a private directory other local users
 * can read, key files and certificates made by the real ssh-keygen, a
 * private ssh-agent, prompt callbacks that answer from a script and record
 * what they were asked, and bounded reads of sshd's log.
 *
 * Owns: the directories it creates (removed at exit by the process that
 * created them), the ssh-agent processes it starts, the files it writes.
 * Must never: touch ~/.ssh, /etc/ssh or the user's own agent, signal a
 * process it did not start, wait without a bound, or be linked into the
 * library (test-only code). Uses only the public API of sshflow.
 *
 * Not thread-safe except the prompt and banner recorders (their callbacks
 * run on sshflow's reader thread). Process helpers come from sshd.h.
 */
#ifndef SF_TEST_AUTHKIT_H
#define SF_TEST_AUTHKIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "sshflow.h"

#define SF_AUTHKIT_SSH_AGENT_PATH "/usr/bin/ssh-agent"
#define SF_AUTHKIT_SSH_ADD_PATH "/usr/bin/ssh-add"
#define SF_AUTHKIT_ENV_PATH "/usr/bin/env"
#define SF_AUTHKIT_PATH_MAX 300

/*
 * Make a fresh directory $TMPDIR/sf-authkit-XXXXXX (or /tmp) with mode 0755,
 * so sshd can read files in it while acting as another user (authorized keys
 * of the password user). It and everything in it are removed when the
 * process that made it exits (forked children leave it alone), or by
 * sf_authkit_dir_remove(). Returns 0 or -1 with a message on stderr.
 */
int sf_authkit_dir(char *out, size_t outsz);

/* Remove a directory made by sf_authkit_dir() (and forget it). */
void sf_authkit_dir_remove(const char *dir);

/* A subdirectory `name` of parent with mode 0755 into out; 0 or -1. */
int sf_authkit_subdir(const char *parent, const char *name, char *out, size_t outsz);

/* Write text to path (created or truncated) with mode; 0 or -1. */
int sf_authkit_write(const char *path, const char *text, mode_t mode);

/* Append text to path (created 0644 if missing); 0 or -1. */
int sf_authkit_append(const char *path, const char *text);

/* Append the content of the file src to dst (e.g. a .pub to authorized_keys); 0 or -1. */
int sf_authkit_append_file(const char *dst, const char *src);

/* Read at most outsz - 1 bytes of path, NUL-terminated; length or -1. */
ssize_t sf_authkit_read(const char *path, char *out, size_t outsz);

/* Size of a file, 0 if it does not exist. */
off_t sf_authkit_file_size(const char *path);

/*
 * A key for ssh-keygen to make. type: "ed25519", "ecdsa", "rsa"; bits NULL
 * for the default; format NULL (openssh-key-v1), "PEM" or "PKCS8";
 * passphrase NULL or "" for a plain key; cipher (-Z) NULL for ssh-keygen's
 * default. path is where the private key goes (public key: path.pub).
 * With `from` set (a plain private key with its .pub beside it), no key is
 * generated: from is copied to path and rewritten by `ssh-keygen -p` in the
 * format and with the passphrase and cipher asked for (type and bits are
 * then ignored). That is how one RSA key is stored in every format without
 * paying for RSA key generation each time.
 */
struct sf_authkit_keyspec {
    const char *from;
    const char *type;
    const char *bits;
    const char *format;
    const char *passphrase;
    const char *cipher;
    char path[SF_AUTHKIT_PATH_MAX];
};

/*
 * Make the n keys with ssh-keygen, up to `parallel` at a time (0: 4), each
 * bounded (60 s). Existing files at the paths are replaced. A key made
 * `from` another must come in a later call than the one that makes it.
 * 0 or -1.
 */
int sf_authkit_keygen(struct sf_authkit_keyspec *keys, size_t n, unsigned parallel);

/*
 * Sign the public key pub (".pub" file) with the CA private key ca:
 * `ssh-keygen -s ca -I id -n principals [-V validity] pub`, which writes the
 * certificate beside it as "<pub without .pub>-cert.pub". validity may be
 * NULL (forever). 0 or -1 with ssh-keygen's message on stderr.
 */
int sf_authkit_sign(const char *ca, const char *pub, const char *id, const char *principals,
                    const char *validity);

/* "SHA256:..." fingerprint of a public key file by `ssh-keygen -l`; 0 or -1. */
int sf_authkit_fingerprint(const char *pub, char *out, size_t outsz);

/* Hash a known_hosts file in place with `ssh-keygen -H -f` (leaves path.old); 0 or -1. */
int sf_authkit_hash_known_hosts(const char *path);

/* ---- ssh-agent ---- */

struct sf_authkit_agent {
    pid_t pid;                      /* ssh-agent -D; 0 when not running */
    char dir[SF_AUTHKIT_PATH_MAX];  /* private dir holding the socket */
    char sock[SF_AUTHKIT_PATH_MAX]; /* its socket (SSH_AUTH_SOCK) */
};

/*
 * Start `ssh-agent -D -a SOCK` (foreground) in a new subdirectory of parent
 * and wait (bounded, 5 s) until its socket accepts connections. The agent
 * dies with the thread that started it (PR_SET_PDEATHSIG). 0 or -1.
 */
int sf_authkit_agent_start(struct sf_authkit_agent *a, const char *parent);

/* `ssh-add -q KEY` to this agent (env SSH_AUTH_SOCK for ssh-add only); 0 or -1. */
int sf_authkit_agent_add(const struct sf_authkit_agent *a, const char *key);

/* Number of keys the agent holds (`ssh-add -l`), or -1. */
int sf_authkit_agent_count(const struct sf_authkit_agent *a);

/*
 * Send sig to the agent and reap it (bounded). SIGTERM lets it remove its
 * socket; SIGKILL leaves a stale socket file behind. Safe when not running.
 */
void sf_authkit_agent_kill(struct sf_authkit_agent *a, int sig);

/* Kill (if running) and remove its directory. Safe twice. */
void sf_authkit_agent_stop(struct sf_authkit_agent *a);

/* ---- prompt and banner recorders ---- */

#define SF_AUTHKIT_PROMPTS_MAX 8

/*
 * Answers prompts from a script and records every prompt it was given.
 * answers[i] answers the i-th call (the last one is repeated when there are
 * fewer); an answer of NULL declines (returns nonzero). Fill it with
 * sf_authkit_prompter_init() and read it after the call under test.
 */
struct sf_authkit_prompter {
    pthread_mutex_t mu;
    const char *answers[SF_AUTHKIT_PROMPTS_MAX];
    size_t nanswers;
    unsigned calls; /* how many times the callback ran */
    struct {
        char kind[32];
        char name[128];
        char instruction[256];
        char text[256];
        bool echo;
        unsigned index, count;
        size_t answer_size;
    } seen[SF_AUTHKIT_PROMPTS_MAX]; /* the first SF_AUTHKIT_PROMPTS_MAX calls */
};

/* nanswers answers (each may be NULL: decline). */
void sf_authkit_prompter_init(struct sf_authkit_prompter *p, const char *const *answers,
                              size_t nanswers);
void sf_authkit_prompter_destroy(struct sf_authkit_prompter *p);

/* The sshflow_prompt_fn; user is a struct sf_authkit_prompter *. */
int sf_authkit_prompt_cb(void *user, const sshflow_prompt *p, char *answer, size_t answer_size);

/* Calls so far (locked read). */
unsigned sf_authkit_prompter_calls(struct sf_authkit_prompter *p);

/* Concatenates every banner text it gets (the sshflow_banner_fn). */
struct sf_authkit_banners {
    pthread_mutex_t mu;
    unsigned calls;
    char text[4096];
};

void sf_authkit_banners_init(struct sf_authkit_banners *b);
void sf_authkit_banners_destroy(struct sf_authkit_banners *b);
void sf_authkit_banner_cb(void *user, const char *text);

/* ---- sshd's log ---- */

/* Does the file from offset `from` on contain needle (now)? */
bool sf_authkit_log_has(const char *log, off_t from, const char *needle);

/*
 * Wait (bounded by timeout_ms) until the file from `from` on contains needle:
 * sshd's monitor may log a line a moment after the client saw the result.
 */
bool sf_authkit_log_wait(const char *log, off_t from, const char *needle, int timeout_ms);

/*
 * Offset of the first occurrence of needle in the file from `from` on, or -1.
 * For order checks ("this was tried before that").
 */
long sf_authkit_log_find(const char *log, off_t from, const char *needle);

#endif /* SF_TEST_AUTHKIT_H */
