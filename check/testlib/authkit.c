/*
 * check/testlib/authkit.c -- test helpers for the user-authentication
 * interop tests (see authkit.h): shared directories, ssh-keygen keys and
 * certificates, a private ssh-agent, prompt/banner recorders, sshd log reads.
 *
 * Owns: the directories it creates and the ssh-agent processes it starts.
 * Must never: touch ~/.ssh, /etc/ssh or the user's own agent, signal a
 * process it did not start, remove a directory it did not create, or wait
 * without a bound. Test-only code; uses the public sshflow API only.
 */
#include "authkit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sshd.h"
#include "testutil.h"

#define DIR_PREFIX "sf-authkit-"
#define DIRS_MAX 8
#define KEYGEN_TIMEOUT_MS 60000
#define TOOL_TIMEOUT_MS 20000
#define AGENT_START_MS 5000
#define AGENT_REAP_MS 5000
#define LOG_READ_MAX (1024 * 1024)
#define KEYGEN_PARALLEL_MAX 16

/* ---- directories ---- */

static struct {
    pid_t owner;
    char path[SF_AUTHKIT_PATH_MAX];
} dirs[DIRS_MAX];
static bool atexit_done;

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "authkit: remove %s: %s\n", path, strerror(errno));
    }
    return 0;
}

/* Only trees we made: absolute and named with our prefix. */
static void
rm_tree(const char *dir)
{
    if (dir[0] != '/' || strstr(dir, "/" DIR_PREFIX) == NULL) {
        return;
    }
    (void) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
dirs_at_exit(void)
{
    pid_t me = getpid();
    size_t i;

    for (i = 0; i < DIRS_MAX; i++) {
        if (dirs[i].owner == me && dirs[i].path[0] != '\0') {
            rm_tree(dirs[i].path);
            dirs[i].owner = 0;
            dirs[i].path[0] = '\0';
        }
    }
}

int
sf_authkit_dir(char *out, size_t outsz)
{
    const char *tmp = getenv("TMPDIR");
    size_t i;
    int n;

    if (tmp == NULL || tmp[0] != '/' || strlen(tmp) > 100) {
        tmp = "/tmp";
    }
    n = snprintf(out, outsz, "%s/" DIR_PREFIX "XXXXXX", tmp);
    if (n < 0 || (size_t) n >= outsz || (size_t) n >= SF_AUTHKIT_PATH_MAX) {
        fprintf(stderr, "authkit: temp dir name too long\n");
        return -1;
    }
    if (mkdtemp(out) == NULL) {
        fprintf(stderr, "authkit: mkdtemp %s: %s\n", out, strerror(errno));
        return -1;
    }
    if (chmod(out, 0755) != 0) {
        fprintf(stderr, "authkit: chmod %s: %s\n", out, strerror(errno));
        rm_tree(out);
        return -1;
    }
    if (!atexit_done && atexit(dirs_at_exit) == 0) {
        atexit_done = true;
    }
    for (i = 0; i < DIRS_MAX; i++) {
        if (dirs[i].owner != getpid()) {
            dirs[i].owner = getpid();
            snprintf(dirs[i].path, sizeof(dirs[i].path), "%s", out);
            break;
        }
    }
    return 0;
}

void
sf_authkit_dir_remove(const char *dir)
{
    size_t i;

    for (i = 0; i < DIRS_MAX; i++) {
        if (dirs[i].owner == getpid() && strcmp(dirs[i].path, dir) == 0) {
            rm_tree(dirs[i].path);
            dirs[i].owner = 0;
            dirs[i].path[0] = '\0';
        }
    }
}

int
sf_authkit_subdir(const char *parent, const char *name, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "%s/%s", parent, name);

    if (n < 0 || (size_t) n >= outsz) {
        return -1;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "authkit: mkdir %s: %s\n", out, strerror(errno));
        return -1;
    }
    return chmod(out, 0755) == 0 ? 0 : -1;
}

/* ---- files ---- */

static int
write_all(int fd, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        off += (size_t) n;
    }
    return 0;
}

static int
put_file(const char *path, const char *text, int flags, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, mode);
    int rc;

    if (fd < 0) {
        fprintf(stderr, "authkit: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    rc = write_all(fd, text, strlen(text));
    if (rc != 0) {
        fprintf(stderr, "authkit: write %s: %s\n", path, strerror(errno));
    }
    if ((flags & O_TRUNC) != 0 && fchmod(fd, mode) != 0) {
        rc = -1;
    }
    close(fd);
    return rc;
}

int
sf_authkit_write(const char *path, const char *text, mode_t mode)
{
    return put_file(path, text, O_TRUNC, mode);
}

int
sf_authkit_append(const char *path, const char *text)
{
    return put_file(path, text, O_APPEND, 0644);
}

ssize_t
sf_authkit_read(const char *path, char *out, size_t outsz)
{
    return sf_test_read_file(path, out, outsz);
}

int
sf_authkit_append_file(const char *dst, const char *src)
{
    char buf[16384];
    ssize_t n = sf_authkit_read(src, buf, sizeof(buf));

    if (n <= 0 || (size_t) n + 2 >= sizeof(buf)) {
        fprintf(stderr, "authkit: cannot read %s\n", src);
        return -1;
    }
    if (buf[n - 1] != '\n') {
        buf[n] = '\n';
        buf[n + 1] = '\0';
    }
    return sf_authkit_append(dst, buf);
}

off_t
sf_authkit_file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* ---- ssh-keygen ---- */

static int
copy_file(const char *from, const char *to, mode_t mode)
{
    char buf[16384];
    ssize_t n = sf_authkit_read(from, buf, sizeof(buf));

    if (n <= 0 || (size_t) n + 1 >= sizeof(buf)) {
        fprintf(stderr, "authkit: cannot read %s\n", from);
        return -1;
    }
    return sf_authkit_write(to, buf, mode);
}

static pid_t
keygen_spawn(const struct sf_authkit_keyspec *k)
{
    char pub[SF_AUTHKIT_PATH_MAX + 8], from_pub[SF_AUTHKIT_PATH_MAX + 8];
    char *argv[24];
    int a = 0;

    snprintf(pub, sizeof(pub), "%s.pub", k->path);
    (void) unlink(k->path); /* ssh-keygen would ask before overwriting */
    (void) unlink(pub);
    argv[a++] = (char *) SF_TEST_SSH_KEYGEN_PATH;
    argv[a++] = (char *) "-q";
    if (k->from != NULL) {
        snprintf(from_pub, sizeof(from_pub), "%s.pub", k->from);
        if (copy_file(k->from, k->path, 0600) != 0 || copy_file(from_pub, pub, 0644) != 0) {
            return -1;
        }
        argv[a++] = (char *) "-p";
        argv[a++] = (char *) "-P";
        argv[a++] = (char *) "";
    } else {
        argv[a++] = (char *) "-t";
        argv[a++] = (char *) k->type;
        if (k->bits != NULL) {
            argv[a++] = (char *) "-b";
            argv[a++] = (char *) k->bits;
        }
        argv[a++] = (char *) "-C";
        argv[a++] = (char *) "sshflow-authkit";
    }
    if (k->format != NULL) {
        argv[a++] = (char *) "-m";
        argv[a++] = (char *) k->format;
    }
    if (k->cipher != NULL) {
        argv[a++] = (char *) "-Z";
        argv[a++] = (char *) k->cipher;
    }
    argv[a++] = (char *) "-N";
    argv[a++] = (char *) (k->passphrase != NULL ? k->passphrase : "");
    argv[a++] = (char *) "-f";
    argv[a++] = (char *) k->path;
    argv[a] = NULL;
    return sf_test_spawn(argv, NULL, NULL);
}

int
sf_authkit_keygen(struct sf_authkit_keyspec *keys, size_t n, unsigned parallel)
{
    pid_t pids[KEYGEN_PARALLEL_MAX];
    size_t idx[KEYGEN_PARALLEL_MAX];
    size_t next = 0, running = 0, i;
    long long deadline = sf_test_now_ms() + KEYGEN_TIMEOUT_MS;
    int rc = 0;

    if (parallel == 0) {
        parallel = 4;
    }
    if (parallel > KEYGEN_PARALLEL_MAX) {
        parallel = KEYGEN_PARALLEL_MAX;
    }
    while (next < n || running > 0) {
        while (rc == 0 && next < n && running < parallel) {
            pid_t pid = keygen_spawn(&keys[next]);

            if (pid < 0) {
                rc = -1;
                break;
            }
            pids[running] = pid;
            idx[running] = next;
            running++;
            next++;
        }
        if (rc != 0) {
            next = n; /* start nothing more; reap what runs */
        }
        if (running == 0) {
            break;
        }
        /* Reap the oldest (keys take similar times), bounded by the batch deadline. */
        {
            long long left = deadline - sf_test_now_ms();
            int st = sf_test_wait(pids[0], left > 0 ? (int) left : 1);

            if (st != 0) {
                const struct sf_authkit_keyspec *k = &keys[idx[0]];

                fprintf(stderr, "authkit: ssh-keygen %s -t %s -b %s -m %s -Z %s -f %s: status %d\n",
                        k->from != NULL ? "-p (converting a copy)" : "",
                        k->type != NULL ? k->type : "-",
                        k->bits != NULL ? k->bits : "-",
                        k->format != NULL ? k->format : "openssh",
                        k->cipher != NULL ? k->cipher : "-", k->path, st);
                rc = -1;
            }
            for (i = 1; i < running; i++) {
                pids[i - 1] = pids[i];
                idx[i - 1] = idx[i];
            }
            running--;
        }
    }
    return rc;
}

int
sf_authkit_sign(const char *ca, const char *pub, const char *id, const char *principals,
                const char *validity)
{
    char *argv[16];
    char errbuf[2048];
    int a = 0, rc;

    argv[a++] = (char *) SF_TEST_SSH_KEYGEN_PATH;
    argv[a++] = (char *) "-q";
    argv[a++] = (char *) "-s";
    argv[a++] = (char *) ca;
    argv[a++] = (char *) "-I";
    argv[a++] = (char *) id;
    argv[a++] = (char *) "-n";
    argv[a++] = (char *) principals;
    if (validity != NULL) {
        argv[a++] = (char *) "-V";
        argv[a++] = (char *) validity;
    }
    argv[a++] = (char *) pub;
    argv[a] = NULL;
    rc = sf_test_run(argv, NULL, NULL, 0, errbuf, sizeof(errbuf), TOOL_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "authkit: ssh-keygen -s %s -I %s -n %s %s: status %d: %s\n", ca, id,
                principals, pub, rc, errbuf);
        return -1;
    }
    return 0;
}

int
sf_authkit_fingerprint(const char *pub, char *out, size_t outsz)
{
    char *argv[] = { (char *) SF_TEST_SSH_KEYGEN_PATH, (char *) "-l", (char *) "-E",
                     (char *) "sha256", (char *) "-f", (char *) pub, NULL };
    char text[1024], errbuf[1024], bits[32], fp[256];
    int rc;

    rc = sf_test_run(argv, NULL, text, sizeof(text), errbuf, sizeof(errbuf), TOOL_TIMEOUT_MS);
    if (rc != 0 || sscanf(text, "%31s %255s", bits, fp) != 2 || strncmp(fp, "SHA256:", 7) != 0) {
        fprintf(stderr, "authkit: ssh-keygen -l -f %s: status %d: %s%s\n", pub, rc, text, errbuf);
        return -1;
    }
    snprintf(out, outsz, "%s", fp);
    return 0;
}

int
sf_authkit_hash_known_hosts(const char *path)
{
    char *argv[] = { (char *) SF_TEST_SSH_KEYGEN_PATH, (char *) "-H", (char *) "-f", (char *) path,
                     NULL };
    char errbuf[2048];
    int rc;

    rc = sf_test_run(argv, NULL, NULL, 0, errbuf, sizeof(errbuf), TOOL_TIMEOUT_MS);
    if (rc != 0) {
        fprintf(stderr, "authkit: ssh-keygen -H -f %s: status %d: %s\n", path, rc, errbuf);
        return -1;
    }
    return 0;
}

/* ---- ssh-agent ---- */

static bool
sock_accepts(const char *path)
{
    struct sockaddr_un a;
    bool ok;
    int fd;

    if (strlen(path) >= sizeof(a.sun_path)) {
        return false;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, strlen(path) + 1);
    ok = connect(fd, (struct sockaddr *) &a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

int
sf_authkit_agent_start(struct sf_authkit_agent *a, const char *parent)
{
    char *argv[] = { (char *) SF_AUTHKIT_SSH_AGENT_PATH, (char *) "-D", (char *) "-a", a->sock,
                     NULL };
    long long deadline;
    int n;

    memset(a, 0, sizeof(*a));
    n = snprintf(a->dir, sizeof(a->dir), "%s/agent-XXXXXX", parent);
    if (n < 0 || (size_t) n >= sizeof(a->dir) || mkdtemp(a->dir) == NULL) {
        fprintf(stderr, "authkit: cannot make an agent dir under %s\n", parent);
        a->dir[0] = '\0';
        return -1;
    }
    n = snprintf(a->sock, sizeof(a->sock), "%s/sock", a->dir);
    if (n < 0 || (size_t) n >= sizeof(a->sock) || (size_t) n >= 100) {
        fprintf(stderr, "authkit: agent socket path too long: %s\n", a->sock);
        return -1;
    }
    a->pid = sf_test_spawn(argv, NULL, NULL);
    if (a->pid < 0) {
        a->pid = 0;
        return -1;
    }
    deadline = sf_test_now_ms() + AGENT_START_MS;
    for (;;) {
        int st = 0;
        pid_t w = waitpid(a->pid, &st, WNOHANG);

        if (w == a->pid) {
            fprintf(stderr, "authkit: ssh-agent exited during start-up (status 0x%x)\n", st);
            a->pid = 0;
            return -1;
        }
        if (sock_accepts(a->sock)) {
            return 0;
        }
        if (sf_test_now_ms() >= deadline) {
            fprintf(stderr, "authkit: ssh-agent did not listen on %s within %d ms\n", a->sock,
                    AGENT_START_MS);
            sf_authkit_agent_kill(a, SIGKILL);
            return -1;
        }
        sf_test_sleep_ms(5);
    }
}

static int
agent_tool(const struct sf_authkit_agent *a, const char *opt, const char *key, char *out,
           size_t outsz)
{
    char env[SF_AUTHKIT_PATH_MAX + 32];
    char errbuf[2048];
    char *argv[8];
    int i = 0, rc;

    snprintf(env, sizeof(env), "SSH_AUTH_SOCK=%s", a->sock);
    argv[i++] = (char *) SF_AUTHKIT_ENV_PATH;
    argv[i++] = env;
    argv[i++] = (char *) SF_AUTHKIT_SSH_ADD_PATH;
    argv[i++] = (char *) opt;
    if (key != NULL) {
        argv[i++] = (char *) key;
    }
    argv[i] = NULL;
    rc = sf_test_run(argv, NULL, out, outsz, errbuf, sizeof(errbuf), TOOL_TIMEOUT_MS);
    if (rc != 0 && !(rc == 1 && strcmp(opt, "-l") == 0)) {
        fprintf(stderr, "authkit: ssh-add %s %s: status %d: %s\n", opt, key != NULL ? key : "", rc,
                errbuf);
    }
    return rc;
}

int
sf_authkit_agent_add(const struct sf_authkit_agent *a, const char *key)
{
    return a->pid > 0 && agent_tool(a, "-q", key, NULL, 0) == 0 ? 0 : -1;
}

int
sf_authkit_agent_count(const struct sf_authkit_agent *a)
{
    char out[8192];
    const char *p;
    int rc, n = 0;

    if (a->pid <= 0) {
        return -1;
    }
    rc = agent_tool(a, "-l", NULL, out, sizeof(out));
    if (rc == 1) {
        return 0; /* "The agent has no identities." */
    }
    if (rc != 0) {
        return -1;
    }
    for (p = out; *p != '\0'; p++) {
        if (*p == '\n') {
            n++;
        }
    }
    return n;
}

void
sf_authkit_agent_kill(struct sf_authkit_agent *a, int sig)
{
    if (a->pid > 0) {
        (void) kill(a->pid, sig);
        (void) sf_test_wait(a->pid, AGENT_REAP_MS);
        a->pid = 0;
    }
}

void
sf_authkit_agent_stop(struct sf_authkit_agent *a)
{
    sf_authkit_agent_kill(a, SIGTERM);
    if (a->dir[0] != '\0') {
        (void) unlink(a->sock);
        (void) rmdir(a->dir);
        a->dir[0] = '\0';
    }
}

/* ---- prompt and banner recorders ---- */

void
sf_authkit_prompter_init(struct sf_authkit_prompter *p, const char *const *answers,
                         size_t nanswers)
{
    size_t i;

    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    if (nanswers > SF_AUTHKIT_PROMPTS_MAX) {
        nanswers = SF_AUTHKIT_PROMPTS_MAX;
    }
    for (i = 0; i < nanswers; i++) {
        p->answers[i] = answers[i];
    }
    p->nanswers = nanswers;
}

void
sf_authkit_prompter_destroy(struct sf_authkit_prompter *p)
{
    pthread_mutex_destroy(&p->mu);
}

static void
copy_str(char *dst, size_t dstsz, const char *src)
{
    snprintf(dst, dstsz, "%s", src != NULL ? src : "(null)");
}

int
sf_authkit_prompt_cb(void *user, const sshflow_prompt *q, char *answer, size_t answer_size)
{
    struct sf_authkit_prompter *p = user;
    const char *ans = NULL;
    unsigned call;
    int rc = 1;

    pthread_mutex_lock(&p->mu);
    call = p->calls++;
    if (call < SF_AUTHKIT_PROMPTS_MAX) {
        copy_str(p->seen[call].kind, sizeof(p->seen[call].kind), q->kind);
        copy_str(p->seen[call].name, sizeof(p->seen[call].name), q->name);
        copy_str(p->seen[call].instruction, sizeof(p->seen[call].instruction), q->instruction);
        copy_str(p->seen[call].text, sizeof(p->seen[call].text), q->text);
        p->seen[call].echo = q->echo;
        p->seen[call].index = q->index;
        p->seen[call].count = q->count;
        p->seen[call].answer_size = answer_size;
    }
    if (p->nanswers > 0) {
        ans = p->answers[call < p->nanswers ? call : p->nanswers - 1];
    }
    if (ans != NULL && answer != NULL && answer_size > strlen(ans)) {
        memcpy(answer, ans, strlen(ans) + 1);
        rc = 0;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

unsigned
sf_authkit_prompter_calls(struct sf_authkit_prompter *p)
{
    unsigned n;

    pthread_mutex_lock(&p->mu);
    n = p->calls;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void
sf_authkit_banners_init(struct sf_authkit_banners *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->mu, NULL);
}

void
sf_authkit_banners_destroy(struct sf_authkit_banners *b)
{
    pthread_mutex_destroy(&b->mu);
}

void
sf_authkit_banner_cb(void *user, const char *text)
{
    struct sf_authkit_banners *b = user;
    size_t len;

    pthread_mutex_lock(&b->mu);
    b->calls++;
    len = strlen(b->text);
    snprintf(b->text + len, sizeof(b->text) - len, "%s", text != NULL ? text : "(null)");
    pthread_mutex_unlock(&b->mu);
}

/* ---- sshd's log ---- */

/* The file from `from` on (at most LOG_READ_MAX bytes), malloc()ed and NUL-terminated. */
static char *
read_from(const char *path, off_t from)
{
    char *buf = malloc(LOG_READ_MAX + 1);
    size_t off = 0;
    int fd;

    if (buf == NULL) {
        return NULL;
    }
    buf[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return buf;
    }
    while (off < LOG_READ_MAX) {
        ssize_t n = pread(fd, buf + off, LOG_READ_MAX - off, from + (off_t) off);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        off += (size_t) n;
    }
    close(fd);
    buf[off] = '\0';
    return buf;
}

long
sf_authkit_log_find(const char *log, off_t from, const char *needle)
{
    char *text = read_from(log, from);
    const char *p;
    long at = -1;

    if (text == NULL) {
        return -1;
    }
    p = strstr(text, needle);
    if (p != NULL) {
        at = (long) (p - text);
    }
    free(text);
    return at;
}

bool
sf_authkit_log_has(const char *log, off_t from, const char *needle)
{
    return sf_authkit_log_find(log, from, needle) >= 0;
}

bool
sf_authkit_log_wait(const char *log, off_t from, const char *needle, int timeout_ms)
{
    long long deadline = sf_test_now_ms() + timeout_ms;

    for (;;) {
        if (sf_authkit_log_has(log, from, needle)) {
            return true;
        }
        if (sf_test_now_ms() >= deadline) {
            return false;
        }
        sf_test_sleep_ms(20);
    }
}
