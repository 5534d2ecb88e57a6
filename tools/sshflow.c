/*
 * tools/sshflow.c -- the sshflow command-line client, an ssh(1) look-alike
 * for scripts: `sshflow [options] destination [command...]`.
 *
 * Owns: command-line parsing (a subset of ssh's flags and -o options), the
 * choice of credentials and host authenticator, the local terminal (raw mode
 * while a remote pty is in use), the three copy loops (stdin -> channel,
 * channel stdout -> fd 1, channel stderr -> fd 2) and the process exit code.
 *
 * Must never: use anything but the public API of include/sshflow.h (no
 * src/ headers), prompt for anything (prompting is a later issue), print a
 * password or key, or join the stdin thread (it may be blocked reading a
 * terminal forever; the process simply exits).
 *
 * Threads: the main thread reads channel stdout; a "stdin" thread feeds the
 * channel; an "stderr" thread copies channel stderr; a "winch" thread
 * forwards terminal size changes when a pty is in use; a "closer" thread
 * closes the channel when our stdout breaks. The only state they share is
 * struct session, whose guard (mutex + counter) keeps the flow from being
 * freed while a never-joined thread is inside an sshflow call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sshflow.h"

#define CLI_EXIT_FAIL 255      /* ssh's exit code for its own failures */
#define CLI_IO_BUF (64 * 1024) /* bytes per read from a fd or the channel */
#define CLI_CLOSE_WAIT_MS 5000 /* bound on waiting for the server's close */
#define CLI_EPIPE_WAIT_MS 1000 /* same, after our stdout broke */
#define CLI_GUARD_WAIT_MS 3000 /* bound on waiting for threads to leave the flow */
#define CLI_MSG_MAX 1024       /* longest diagnostic line printed */
#define CLI_MODES_MAX 512      /* encoded terminal modes (about 60 * 5 bytes) */
#define CLI_DEFAULT_PORT 22

/* ------------------------------------------------------------------------ */
/* Diagnostics                                                              */
/* ------------------------------------------------------------------------ */

/* Where diagnostics go. Shared with the library's log callback (any thread). */
struct logctx {
    bool verbose;    /* -v; written before any thread starts */
    atomic_bool raw; /* terminal in raw mode: end lines with \r\n */
};

/*
 * Copy src to dst (size dstlen > 0) replacing control characters, which may
 * come from the server (disconnect text, signal names, exit messages), so
 * they cannot drive the terminal.
 */
static void sanitize(char *dst, size_t dstlen, const char *src)
{
    size_t i = 0;
    for (; src != NULL && *src != '\0' && i + 1 < dstlen; src++) {
        unsigned char ch = (unsigned char)*src;
        dst[i++] = (ch < 0x20 && ch != '\t') || ch == 0x7f ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* Print one line to stderr: prefix + sanitized text. */
static void emit(struct logctx *lc, const char *prefix, const char *text)
{
    char safe[CLI_MSG_MAX];
    sanitize(safe, sizeof(safe), text);
    bool raw = lc != NULL && atomic_load(&lc->raw);
    fprintf(stderr, "%s%s%s", prefix, safe, raw ? "\r\n" : "\n");
}

__attribute__((format(printf, 3, 4))) static void say(struct logctx *lc, const char *prefix,
                                                      const char *fmt, ...)
{
    char msg[CLI_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(lc, prefix, msg);
}

#define debug(lc, ...)                                                                             \
    do {                                                                                           \
        if ((lc)->verbose) {                                                                       \
            say((lc), "debug1: ", __VA_ARGS__);                                                    \
        }                                                                                          \
    } while (0)

/* The library's log callback (sshflow_set_log); may run on any thread. */
static void log_cb(void *user, const char *msg)
{
    emit(user, "debug1: ", msg);
}

/* "sshflow: <sentence>" for a failed library call. */
static void report_error(struct logctx *lc, const sshflow_error *err)
{
    char sentence[CLI_MSG_MAX];
    sshflow_strerror(err, sentence, sizeof(sentence));
    emit(lc, "sshflow: ", sentence);
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

enum strict_mode {
    STRICT_YES = 0, /* also "ask": we do not prompt yet */
    STRICT_ACCEPT_NEW,
    STRICT_NO,
};

enum tty_mode {
    TTY_AUTO = 0, /* a pty only for a shell with a terminal on stdin */
    TTY_FORCE,    /* -t */
    TTY_NEVER,    /* -T */
};

/* -o options we know (OpenSSH names). */
enum opt_id {
    OPT_USERKNOWNHOSTSFILE = 0,
    OPT_STRICTHOSTKEYCHECKING,
    OPT_CIPHERS,
    OPT_KEXALGORITHMS,
    OPT_HOSTKEYALGORITHMS,
    OPT_MACS,
    OPT_CONNECTTIMEOUT,
    OPT_BATCHMODE,
    OPT_REKEYLIMIT,
    OPT_PORT,
    OPT_USER,
    OPT_IDENTITYFILE,
    OPT_LOGLEVEL,
    OPT_IDENTITIESONLY,
    OPT_IDENTITYAGENT,
    OPT_CERTIFICATEFILE,
    OPT_PREFERREDAUTHENTICATIONS,
    OPT_PASSWORDAUTHENTICATION,
    OPT_KBDINTERACTIVEAUTHENTICATION,
    OPT_PUBKEYAUTHENTICATION,
    OPT_NUMBEROFPASSWORDPROMPTS,
    OPT_COMPRESSION,
    OPT_COUNT,
};

static const struct {
    const char *name;
    enum opt_id id;
    bool to_config; /* the value goes to sshflow_config_set() under this name */
} opt_table[] = {
    {"UserKnownHostsFile", OPT_USERKNOWNHOSTSFILE, false},
    {"StrictHostKeyChecking", OPT_STRICTHOSTKEYCHECKING, false},
    {"Ciphers", OPT_CIPHERS, true},
    {"KexAlgorithms", OPT_KEXALGORITHMS, true},
    {"HostKeyAlgorithms", OPT_HOSTKEYALGORITHMS, true},
    {"MACs", OPT_MACS, true},
    {"ConnectTimeout", OPT_CONNECTTIMEOUT, true},
    {"BatchMode", OPT_BATCHMODE, false},
    {"RekeyLimit", OPT_REKEYLIMIT, true},
    {"Port", OPT_PORT, false},
    {"User", OPT_USER, false},
    {"IdentityFile", OPT_IDENTITYFILE, false},
    {"LogLevel", OPT_LOGLEVEL, false},
    {"IdentitiesOnly", OPT_IDENTITIESONLY, false},
    {"IdentityAgent", OPT_IDENTITYAGENT, false},
    {"CertificateFile", OPT_CERTIFICATEFILE, false},
    {"PreferredAuthentications", OPT_PREFERREDAUTHENTICATIONS, true},
    {"PasswordAuthentication", OPT_PASSWORDAUTHENTICATION, true},
    {"KbdInteractiveAuthentication", OPT_KBDINTERACTIVEAUTHENTICATION, true},
    {"PubkeyAuthentication", OPT_PUBKEYAUTHENTICATION, true},
    {"NumberOfPasswordPrompts", OPT_NUMBEROFPASSWORDPROMPTS, false},
    {"Compression", OPT_COMPRESSION, true},
};

struct cli {
    struct logctx *lc;
    sshflow_config *cfg; /* borrowed; -o algorithm options are applied to it */
    char *l_user;        /* -l (last wins); owned */
    char *o_user;        /* -o User (first wins, as in ssh); owned */
    char *dest_user;     /* user@ of the destination; owned */
    char *host;          /* owned; without [] */
    uint16_t port;       /* 0: not given */
    bool port_from_p;    /* -p given: it beats -o Port */
    char **ident;        /* -i / IdentityFile, ~ expanded; owned */
    size_t nident;
    char **certs;        /* CertificateFile, ~ expanded; owned */
    size_t ncerts;
    bool identities_only; /* IdentitiesOnly=yes: no agent keys */
    char *agent;          /* IdentityAgent: socket path, "none", or NULL ($SSH_AUTH_SOCK); owned */
    bool no_password;     /* PasswordAuthentication=no */
    bool no_kbdint;       /* KbdInteractiveAuthentication=no */
    unsigned password_prompts; /* NumberOfPasswordPrompts (default 3) */
    char *known_hosts; /* UserKnownHostsFile, ~ expanded; owned; NULL: default */
    enum strict_mode strict;
    bool batch;            /* BatchMode=yes: never ask the user */
    int connect_timeout_s; /* 0: the system's TCP timeout */
    enum tty_mode tty;
    bool subsystem;       /* -s */
    char *command;        /* joined command words; owned; NULL: none */
    bool seen[OPT_COUNT]; /* ssh semantics: the first value of an option wins */
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: sshflow [-ChsTtVv] [-i identity] [-l user] [-o option=value] [-p port]\n"
                "               [-Q query] destination [command ...]\n"
                "\n"
                "  destination     [user@]host; host is a name, an IPv4 address or an IPv6\n"
                "                  address (::1 or [::1])\n"
                "  command         run it (words joined with spaces); none: a login shell\n"
                "  -i identity     private key file to try; may be repeated (in order).\n"
                "                  Default: those of ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa,\n"
                "                  ~/.ssh/id_rsa that exist. Encrypted keys: the passphrase\n"
                "                  is asked for. \"<identity>-cert.pub\" is used if present.\n"
                "  -l user         user to log in as (default: user@ of destination, $USER)\n"
                "  -o option=value OpenSSH option, \"Name=value\" or \"Name value\"; supported:\n"
                "                  UserKnownHostsFile, StrictHostKeyChecking (yes|ask|accept-new|\n"
                "                  no; ask acts as yes), Ciphers, KexAlgorithms,\n"
                "                  HostKeyAlgorithms, MACs, ConnectTimeout (seconds), BatchMode,\n"
                "                  RekeyLimit, Port, User, IdentityFile, CertificateFile,\n"
                "                  IdentitiesOnly (yes: no agent keys), IdentityAgent (path,\n"
                "                  none, SSH_AUTH_SOCK, $VAR), PreferredAuthentications,\n"
                "                  PubkeyAuthentication, PasswordAuthentication,\n"
                "                  KbdInteractiveAuthentication, NumberOfPasswordPrompts,\n"
                "                  Compression,\n"
                "                  LogLevel (ignored)\n"
                "  -C              compress (zlib@openssh.com or zlib; as -o Compression=yes)\n"
                "  -p port         port to connect to (default 22)\n"
                "  -Q query        list supported algorithms: kex, cipher, mac, key,\n"
                "                  compression\n"
                "  -s              command is a subsystem name (e.g. sftp)\n"
                "  -t              force a pseudo-terminal (even if stdin is not a terminal)\n"
                "  -T              no pseudo-terminal\n"
                "  -v              print debugging messages\n"
                "  -V              print the version and exit\n"
                "  -h              print this help and exit\n"
                "\n"
                "Authentication is tried in ssh's order: the agent's keys ($SSH_AUTH_SOCK),\n"
                "identity files, keyboard-interactive, password. Passphrases, passwords and\n"
                "keyboard-interactive answers are asked on the terminal, or through the\n"
                "program named by SSH_ASKPASS (no terminal and DISPLAY set, or\n"
                "SSH_ASKPASS_REQUIRE=force|prefer; never with SSH_ASKPASS_REQUIRE=never or\n"
                "BatchMode=yes).\n"
                "\n"
                "Environment:\n"
                "  SSHFLOW_PASSWORD  password to try without asking (replaces the prompt)\n"
                "  SSH_AUTH_SOCK     the ssh-agent to use\n"
                "  SSH_ASKPASS, SSH_ASKPASS_REQUIRE, DISPLAY  as for ssh(1)\n"
                "  USER              default user name (else the login name)\n"
                "  HOME              where ~/.ssh is\n"
                "  TERM              terminal type sent with a pty request\n"
                "\n"
                "Exit status: that of the remote command; 128+N if it was killed by\n"
                "signal N; 255 on connection, authentication or usage errors, or when the\n"
                "server sent no exit status.\n");
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    if (h != NULL && *h != '\0') {
        return h;
    }
    struct passwd *pw = getpwuid(getuid());
    return pw != NULL && pw->pw_dir != NULL ? pw->pw_dir : "/";
}

/* Expand a leading "~/" (or "~" alone) with the home directory. NULL on OOM. */
static char *expand_tilde(const char *path)
{
    if (path[0] != '~' || (path[1] != '/' && path[1] != '\0')) {
        return strdup(path);
    }
    const char *home = home_dir();
    size_t hl = strlen(home);
    size_t pl = strlen(path + 1);
    char *out = malloc(hl + pl + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, home, hl);
    memcpy(out + hl, path + 1, pl + 1);
    return out;
}

static int add_identity(struct cli *c, const char *path)
{
    char *p = expand_tilde(path);
    if (p == NULL) {
        return -1;
    }
    char **n = realloc(c->ident, (c->nident + 1) * sizeof(*n));
    if (n == NULL) {
        free(p);
        return -1;
    }
    c->ident = n;
    c->ident[c->nident++] = p;
    return 0;
}

/* Port number 1..65535, or 0 if s is not one. */
static uint16_t parse_port(const char *s)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535) {
        return 0;
    }
    return (uint16_t)v;
}

/* "yes"/"no" (ssh also takes "true"/"false"); -1 if neither. */
static int parse_yesno(const char *s)
{
    if (strcasecmp(s, "yes") == 0 || strcasecmp(s, "true") == 0) {
        return 1;
    }
    if (strcasecmp(s, "no") == 0 || strcasecmp(s, "false") == 0) {
        return 0;
    }
    return -1;
}

#define OPTERR_PREFIX "command-line line 0: "

/*
 * Apply one -o argument. Returns 0, or -1 after printing why (exit 255).
 */
static int apply_option(struct cli *c, const char *arg)
{
    int ret = -1;
    char *copy = strdup(arg);
    if (copy == NULL) {
        say(c->lc, "sshflow: ", "out of memory");
        return -1;
    }

    /* Name, then whitespace and at most one '=', then the value. */
    char *name = copy;
    while (*name == ' ' || *name == '\t') {
        name++;
    }
    char *p = name;
    while (*p != '\0' && *p != '=' && *p != ' ' && *p != '\t') {
        p++;
    }
    char *value = p;
    if (*p != '\0') {
        bool had_eq = *p == '=';
        *p++ = '\0';
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (!had_eq && *p == '=') {
            p++;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
        }
        value = p;
        size_t vl = strlen(value);
        while (vl > 0 && (value[vl - 1] == ' ' || value[vl - 1] == '\t')) {
            value[--vl] = '\0';
        }
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = '\0';
            value++;
        }
    }

    size_t i;
    for (i = 0; i < sizeof(opt_table) / sizeof(opt_table[0]); i++) {
        if (strcasecmp(name, opt_table[i].name) == 0) {
            break;
        }
    }
    if (i == sizeof(opt_table) / sizeof(opt_table[0])) {
        say(c->lc, "", OPTERR_PREFIX "Bad configuration option: %s", name);
        goto out;
    }
    if (*value == '\0') {
        say(c->lc, "", OPTERR_PREFIX "no argument after keyword \"%s\"", name);
        goto out;
    }
    enum opt_id id = opt_table[i].id;
    if (id != OPT_IDENTITYFILE && id != OPT_CERTIFICATEFILE && c->seen[id]) {
        ret = 0; /* ssh: the first value obtained wins */
        goto out;
    }
    c->seen[id] = true;

    switch (id) {
    case OPT_USERKNOWNHOSTSFILE: {
        /* OpenSSH takes a list of files; we check the first one. */
        char *sp = strpbrk(value, " \t");
        if (sp != NULL) {
            *sp = '\0';
        }
        c->known_hosts = strcasecmp(value, "none") == 0 ? strdup("/dev/null") : expand_tilde(value);
        if (c->known_hosts == NULL) {
            say(c->lc, "sshflow: ", "out of memory");
            goto out;
        }
        break;
    }
    case OPT_STRICTHOSTKEYCHECKING:
        if (strcasecmp(value, "accept-new") == 0) {
            c->strict = STRICT_ACCEPT_NEW;
        } else if (strcasecmp(value, "ask") == 0 || parse_yesno(value) == 1) {
            c->strict = STRICT_YES;
        } else if (strcasecmp(value, "off") == 0 || parse_yesno(value) == 0) {
            c->strict = STRICT_NO;
        } else {
            say(c->lc, "", OPTERR_PREFIX "unsupported option \"%s\".", value);
            goto out;
        }
        break;
    case OPT_BATCHMODE: {
        int yn = parse_yesno(value);
        if (yn < 0) {
            say(c->lc, "", OPTERR_PREFIX "unsupported option \"%s\".", value);
            goto out;
        }
        c->batch = yn == 1;
        break;
    }
    case OPT_CONNECTTIMEOUT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0' || v < 0 || v > INT_MAX / 1000) {
            say(c->lc, "", OPTERR_PREFIX "invalid time value \"%s\".", value);
            goto out;
        }
        c->connect_timeout_s = (int)v;
        break;
    }
    case OPT_PORT:
        if (!c->port_from_p) {
            c->port = parse_port(value);
            if (c->port == 0) {
                say(c->lc, "", OPTERR_PREFIX "Bad port '%s'.", value);
                goto out;
            }
        }
        break;
    case OPT_USER:
        c->o_user = strdup(value);
        if (c->o_user == NULL) {
            say(c->lc, "sshflow: ", "out of memory");
            goto out;
        }
        break;
    case OPT_IDENTITYFILE:
        if (add_identity(c, value) != 0) {
            say(c->lc, "sshflow: ", "out of memory");
            goto out;
        }
        break;
    case OPT_LOGLEVEL:
        break;
    case OPT_IDENTITIESONLY:
    case OPT_PASSWORDAUTHENTICATION:
    case OPT_KBDINTERACTIVEAUTHENTICATION:
    case OPT_PUBKEYAUTHENTICATION: {
        int yn = parse_yesno(value);
        if (yn < 0) {
            say(c->lc, "", OPTERR_PREFIX "unsupported option \"%s\".", value);
            goto out;
        }
        if (id == OPT_IDENTITIESONLY) {
            c->identities_only = yn == 1;
        } else if (id == OPT_PASSWORDAUTHENTICATION) {
            c->no_password = yn == 0;
        } else if (id == OPT_KBDINTERACTIVEAUTHENTICATION) {
            c->no_kbdint = yn == 0;
        }
        break;
    }
    case OPT_IDENTITYAGENT: {
        /* "none", "SSH_AUTH_SOCK", "$VAR" or a path (ssh_config(5)). */
        const char *v = value;
        if (strcmp(v, "SSH_AUTH_SOCK") == 0) {
            v = NULL;
        } else if (v[0] == '$') {
            v = getenv(v + 1);
            if (v == NULL) {
                v = "none";
            }
        }
        if (v != NULL && (c->agent = strcasecmp(v, "none") == 0 ? strdup("none") : expand_tilde(v)) == NULL) {
            say(c->lc, "sshflow: ", "out of memory");
            goto out;
        }
        break;
    }
    case OPT_CERTIFICATEFILE: {
        char **n = realloc(c->certs, (c->ncerts + 1) * sizeof(*n));
        if (n == NULL || (n[c->ncerts] = expand_tilde(value)) == NULL) {
            if (n != NULL) {
                c->certs = n;
            }
            say(c->lc, "sshflow: ", "out of memory");
            goto out;
        }
        c->certs = n;
        c->ncerts++;
        break;
    }
    case OPT_NUMBEROFPASSWORDPROMPTS: {
        char *end = NULL;
        long v = strtol(value, &end, 10);
        if (end == value || *end != '\0' || v < 0 || v > 100) {
            say(c->lc, "", OPTERR_PREFIX "invalid number \"%s\".", value);
            goto out;
        }
        c->password_prompts = (unsigned)v;
        break;
    }
    case OPT_PREFERREDAUTHENTICATIONS:
    case OPT_COMPRESSION:
    case OPT_CIPHERS:
    case OPT_KEXALGORITHMS:
    case OPT_HOSTKEYALGORITHMS:
    case OPT_MACS:
    case OPT_REKEYLIMIT:
    case OPT_COUNT:
    default:
        break;
    }

    if (opt_table[i].to_config) {
        sshflow_error err;
        memset(&err, 0, sizeof(err));
        if (sshflow_config_set(c->cfg, opt_table[i].name, value, &err) != 0) {
            char sentence[CLI_MSG_MAX];
            sshflow_strerror(&err, sentence, sizeof(sentence));
            say(c->lc, "", OPTERR_PREFIX "%s: %s", opt_table[i].name, sentence);
            goto out;
        }
    }
    ret = 0;
out:
    free(copy);
    return ret;
}

/* Split [user@]host; host may be an IPv6 literal, bare or in []. */
static int parse_destination(struct cli *c, const char *dest)
{
    const char *h = dest;
    const char *at = strrchr(dest, '@');
    if (at != NULL) {
        if (at == dest) {
            say(c->lc, "sshflow: ", "empty user name in destination \"%s\"", dest);
            return -1;
        }
        free(c->dest_user);
        c->dest_user = strndup(dest, (size_t)(at - dest));
        if (c->dest_user == NULL) {
            say(c->lc, "sshflow: ", "out of memory");
            return -1;
        }
        h = at + 1;
    }
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    bool bad = hl == 0 || h[0] == '-';
    for (size_t i = 0; i < hl && !bad; i++) {
        unsigned char ch = (unsigned char)h[i];
        bad = ch <= ' ' || ch == 0x7f || ch == '[' || ch == ']' || ch == '/' || ch == '\'' ||
              ch == '"' || ch == '\\' || ch == '`' || ch == '@';
    }
    if (bad) {
        say(c->lc, "sshflow: ", "bad host name in destination \"%s\"", dest);
        return -1;
    }
    c->host = strndup(h, hl);
    if (c->host == NULL) {
        say(c->lc, "sshflow: ", "out of memory");
        return -1;
    }
    return 0;
}

/* Join words with single spaces, as ssh does. NULL on OOM. */
static char *join_words(char **words, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++) {
        len += strlen(words[i]) + 1;
    }
    char *s = malloc(len);
    if (s == NULL) {
        return NULL;
    }
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t wl = strlen(words[i]);
        if (i > 0) {
            s[at++] = ' ';
        }
        memcpy(s + at, words[i], wl);
        at += wl;
    }
    s[at] = '\0';
    return s;
}

enum parse_result {
    PARSE_OK = 0,
    PARSE_EXIT_OK,   /* -h or -V: done, exit 0 */
    PARSE_EXIT_FAIL, /* message printed: exit 255 */
};

/*
 * Parse argv like ssh (with BSD getopt): options, the destination, more
 * options (unless "--" was seen), then the command words. Options do not
 * permute past the first command word, so `sshflow host ls -l` runs "ls -l".
 */
static enum parse_result parse_args(struct cli *c, int argc, char **argv)
{
    int i = 1;
    bool terminated = false;
    bool have_dest = false;

    for (;;) {
        while (!terminated && i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
            if (strcmp(argv[i], "--") == 0) {
                terminated = true;
                i++;
                break;
            }
            for (const char *p = argv[i] + 1; *p != '\0'; p++) {
                char o = *p;
                switch (o) {
                case 'p':
                case 'l':
                case 'i':
                case 'Q':
                case 'o': {
                    const char *val = NULL;
                    if (p[1] != '\0') {
                        val = p + 1;
                    } else if (i + 1 < argc) {
                        val = argv[++i];
                    } else {
                        say(c->lc, "", "option requires an argument -- %c", o);
                        usage(stderr);
                        return PARSE_EXIT_FAIL;
                    }
                    if (o == 'p') {
                        c->port = parse_port(val);
                        if (c->port == 0) {
                            say(c->lc, "", "Bad port '%s'", val);
                            return PARSE_EXIT_FAIL;
                        }
                        c->port_from_p = true;
                    } else if (o == 'l') {
                        free(c->l_user);
                        c->l_user = strdup(val);
                        if (c->l_user == NULL) {
                            say(c->lc, "sshflow: ", "out of memory");
                            return PARSE_EXIT_FAIL;
                        }
                    } else if (o == 'Q') {
                        const char *list = sshflow_supported(strcasecmp(val, "key") == 0 ||
                                                                     strcasecmp(val, "HostKeyAlgorithms") == 0
                                                                 ? "key"
                                                             : strcasecmp(val, "ciphers") == 0 ? "cipher"
                                                             : strcasecmp(val, "macs") == 0    ? "mac"
                                                                                               : val);
                        if (list == NULL) {
                            say(c->lc, "", "Unsupported query \"%s\"", val);
                            return PARSE_EXIT_FAIL;
                        }
                        printf("%s\n", list);
                        return PARSE_EXIT_OK;
                    } else if (o == 'i') {
                        if (add_identity(c, val) != 0) {
                            say(c->lc, "sshflow: ", "out of memory");
                            return PARSE_EXIT_FAIL;
                        }
                    } else if (apply_option(c, val) != 0) {
                        return PARSE_EXIT_FAIL;
                    }
                    goto next_arg; /* the rest of this word was the value */
                }
                case 'C':
                    if (apply_option(c, "Compression=yes") != 0) {
                        return PARSE_EXIT_FAIL;
                    }
                    break;
                case 't':
                    c->tty = TTY_FORCE;
                    break;
                case 'T':
                    c->tty = TTY_NEVER;
                    break;
                case 's':
                    c->subsystem = true;
                    break;
                case 'v':
                    c->lc->verbose = true;
                    break;
                case 'V':
                    printf("sshflow %s\n", SSHFLOW_VERSION);
                    return PARSE_EXIT_OK;
                case 'h':
                    usage(stdout);
                    return PARSE_EXIT_OK;
                default:
                    say(c->lc, "", "unknown option -- %c", o);
                    usage(stderr);
                    return PARSE_EXIT_FAIL;
                }
            }
        next_arg:
            i++;
        }
        if (have_dest) {
            break;
        }
        if (i >= argc) {
            usage(stderr);
            return PARSE_EXIT_FAIL;
        }
        if (parse_destination(c, argv[i]) != 0) {
            return PARSE_EXIT_FAIL;
        }
        have_dest = true;
        i++;
        /* ssh parses options again after the destination (unless after "--"). */
    }

    if (i < argc) {
        c->command = join_words(argv + i, argc - i);
        if (c->command == NULL) {
            say(c->lc, "sshflow: ", "out of memory");
            return PARSE_EXIT_FAIL;
        }
        if (c->command[0] == '\0') {
            /* ssh: an empty command means a shell. */
            free(c->command);
            c->command = NULL;
        }
    }
    if (c->subsystem && c->command == NULL) {
        say(c->lc, "sshflow: ", "-s needs a subsystem name as the command");
        return PARSE_EXIT_FAIL;
    }
    return PARSE_OK;
}

static void cli_free(struct cli *c)
{
    free(c->l_user);
    free(c->o_user);
    free(c->dest_user);
    free(c->host);
    for (size_t i = 0; i < c->nident; i++) {
        free(c->ident[i]);
    }
    free(c->ident);
    for (size_t i = 0; i < c->ncerts; i++) {
        free(c->certs[i]);
    }
    free(c->certs);
    free(c->agent);
    free(c->known_hosts);
    free(c->command);
}

/* ------------------------------------------------------------------------ */
/* Asking the user: the terminal, or the SSH_ASKPASS program, as ssh does   */
/* ------------------------------------------------------------------------ */

#define ASKPASS_TIMEOUT_S 300 /* an askpass program that never answers is killed */

/*
 * Run the askpass program with the prompt as its argument and read the
 * first line of its output. Returns 0, or -1 if it failed or was declined
 * (nonzero exit).
 */
static int askpass_run(const char *prog, const char *prompt, char *answer, size_t size)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        execlp(prog, prog, prompt, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    size_t len = 0;
    int ret = 0;
    uint64_t waited_ms = 0;
    for (;;) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int pr = poll(&p, 1, 1000);
        if (pr == 0) {
            if ((waited_ms += 1000) >= ASKPASS_TIMEOUT_S * 1000ULL) {
                kill(pid, SIGKILL);
                ret = -1;
                break;
            }
            continue;
        }
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr < 0) {
            ret = -1;
            break;
        }
        ssize_t n = read(pfd[0], answer + len, size - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (len >= size - 1) {
            break;
        }
    }
    close(pfd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    answer[len] = '\0';
    answer[strcspn(answer, "\r\n")] = '\0';
    if (ret != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        explicit_bzero(answer, size);
        return -1;
    }
    return 0;
}

/* Read a line from the terminal with echo off unless echo. */
static int tty_read(int fd, const char *text, bool echo, char *answer, size_t size)
{
    struct termios saved, quiet;
    bool restore = false;
    if (write(fd, text, strlen(text)) < 0) {
        return -1;
    }
    if (!echo && tcgetattr(fd, &saved) == 0) {
        quiet = saved;
        quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    size_t len = 0;
    int ret = -1;
    for (;;) {
        char ch;
        ssize_t n = read(fd, &ch, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; /* end of input: declined */
        }
        if (ch == '\n' || ch == '\r') {
            ret = 0;
            break;
        }
        if (len + 1 < size) {
            answer[len++] = ch;
        }
    }
    answer[len] = '\0';
    if (restore) {
        tcsetattr(fd, TCSAFLUSH, &saved);
        if (write(fd, "\n", 1) < 0) {
            ret = -1;
        }
    }
    if (ret != 0) {
        explicit_bzero(answer, size);
    }
    return ret;
}

/*
 * The prompt callback (sshflow_prompt_fn). Like ssh's read_passphrase():
 * SSH_ASKPASS is used when there is no terminal and DISPLAY (or
 * WAYLAND_DISPLAY) is set, always with SSH_ASKPASS_REQUIRE=force, first
 * with SSH_ASKPASS_REQUIRE=prefer (and a display), never with
 * SSH_ASKPASS_REQUIRE=never. BatchMode: never asks.
 */
static int cli_prompt(void *user, const sshflow_prompt *p, char *answer, size_t size)
{
    struct cli *c = user;
    if (c->batch) {
        debug(c->lc, "BatchMode: not asking \"%s\"", p->text);
        return -1;
    }
    const char *disp = getenv("DISPLAY");
    const char *wl = getenv("WAYLAND_DISPLAY");
    bool allow_askpass = (disp != NULL && *disp != '\0') || (wl != NULL && *wl != '\0');
    bool use_askpass = false;
    const char *req = getenv("SSH_ASKPASS_REQUIRE");
    if (req != NULL && strcmp(req, "force") == 0) {
        use_askpass = allow_askpass = true;
    } else if (req != NULL && strcmp(req, "prefer") == 0) {
        use_askpass = allow_askpass;
    } else if (req != NULL && strcmp(req, "never") == 0) {
        allow_askpass = false;
    }
    int tty = -1;
    if (!use_askpass) {
        tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (tty < 0) {
            use_askpass = true;
        }
    }
    /* keyboard-interactive: show the round's name and instruction once, as ssh does. */
    char text[1024];
    if (p->index == 0 && ((p->name != NULL && p->name[0]) || (p->instruction != NULL && p->instruction[0]))) {
        snprintf(text, sizeof(text), "%s%s%s%s", p->name, p->name[0] ? "\n" : "", p->instruction,
                 p->instruction[0] ? "\n" : "");
        if (tty >= 0) {
            if (write(tty, text, strlen(text)) < 0) {
                debug(c->lc, "cannot write to the terminal");
            }
        } else {
            say(c->lc, "", "%s", text);
        }
    }
    int ret;
    if (use_askpass) {
        if (!allow_askpass) {
            debug(c->lc, "no terminal and no askpass allowed: cannot ask \"%s\"", p->text);
            return -1;
        }
        const char *prog = getenv("SSH_ASKPASS");
        if (prog == NULL || *prog == '\0') {
            prog = "/usr/bin/ssh-askpass";
        }
        ret = askpass_run(prog, p->text, answer, size);
    } else {
        ret = tty_read(tty, p->text, p->echo, answer, size);
    }
    if (tty >= 0) {
        close(tty);
    }
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Terminal                                                                 */
/* ------------------------------------------------------------------------ */

/* RFC 4254 s8 opcodes with the local termios fields they describe. */
static const struct {
    uint8_t op;
    int idx;
} tty_chars[] = {
    {1, VINTR},     {2, VQUIT},    {3, VERASE},  {4, VKILL},     {5, VEOF},
    {6, VEOL},      {7, VEOL2},    {8, VSTART},  {9, VSTOP},     {10, VSUSP},
    {12, VREPRINT}, {13, VWERASE}, {14, VLNEXT}, {18, VDISCARD},
};

enum tty_field { TF_I, TF_L, TF_O, TF_C };

static const struct {
    uint8_t op;
    enum tty_field field;
    tcflag_t flag;
} tty_flags[] = {
    {30, TF_I, IGNPAR},  {31, TF_I, PARMRK}, {32, TF_I, INPCK},  {33, TF_I, ISTRIP},
    {34, TF_I, INLCR},   {35, TF_I, IGNCR},  {36, TF_I, ICRNL},
#ifdef IUCLC
    {37, TF_I, IUCLC},
#endif
    {38, TF_I, IXON},    {39, TF_I, IXANY},  {40, TF_I, IXOFF},
#ifdef IMAXBEL
    {41, TF_I, IMAXBEL},
#endif
#ifdef IUTF8
    {42, TF_I, IUTF8}, /* RFC 8160 */
#endif
    {50, TF_L, ISIG},    {51, TF_L, ICANON},
#ifdef XCASE
    {52, TF_L, XCASE},
#endif
    {53, TF_L, ECHO},    {54, TF_L, ECHOE},  {55, TF_L, ECHOK},  {56, TF_L, ECHONL},
    {57, TF_L, NOFLSH},  {58, TF_L, TOSTOP}, {59, TF_L, IEXTEN},
#ifdef ECHOCTL
    {60, TF_L, ECHOCTL},
#endif
#ifdef ECHOKE
    {61, TF_L, ECHOKE},
#endif
#ifdef PENDIN
    {62, TF_L, PENDIN},
#endif
    {70, TF_O, OPOST},
#ifdef OLCUC
    {71, TF_O, OLCUC},
#endif
    {72, TF_O, ONLCR},   {73, TF_O, OCRNL},  {74, TF_O, ONOCR},  {75, TF_O, ONLRET},
    {92, TF_C, PARENB},  {93, TF_C, PARODD},
};

static size_t put_mode(uint8_t *out, size_t at, uint8_t op, uint32_t v)
{
    out[at] = op;
    out[at + 1] = (uint8_t)(v >> 24);
    out[at + 2] = (uint8_t)(v >> 16);
    out[at + 3] = (uint8_t)(v >> 8);
    out[at + 4] = (uint8_t)v;
    return at + 5;
}

/*
 * Encode the terminal modes of tio (RFC 4254 s8: opcode byte + uint32,
 * ending with TTY_OP_END) into out. Returns the length.
 */
static size_t encode_modes(const struct termios *tio, uint8_t out[CLI_MODES_MAX])
{
    size_t at = 0;
    _Static_assert(
        (sizeof(tty_chars) / sizeof(tty_chars[0]) + sizeof(tty_flags) / sizeof(tty_flags[0]) + 2) *
                    5 +
                1 <=
            CLI_MODES_MAX,
        "CLI_MODES_MAX too small");
    for (size_t i = 0; i < sizeof(tty_chars) / sizeof(tty_chars[0]); i++) {
        cc_t v = tio->c_cc[tty_chars[i].idx];
        at = put_mode(out, at, tty_chars[i].op, v == _POSIX_VDISABLE ? 255 : v);
    }
    for (size_t i = 0; i < sizeof(tty_flags) / sizeof(tty_flags[0]); i++) {
        tcflag_t word = 0;
        switch (tty_flags[i].field) {
        case TF_I:
            word = tio->c_iflag;
            break;
        case TF_L:
            word = tio->c_lflag;
            break;
        case TF_O:
            word = tio->c_oflag;
            break;
        case TF_C:
        default:
            word = tio->c_cflag;
            break;
        }
        at = put_mode(out, at, tty_flags[i].op, (word & tty_flags[i].flag) != 0);
    }
    at = put_mode(out, at, 90, (tio->c_cflag & CSIZE) == CS7); /* CS7 */
    at = put_mode(out, at, 91, (tio->c_cflag & CSIZE) == CS8); /* CS8 */
    out[at++] = 0;                                             /* TTY_OP_END */
    return at;
}

/* Like ssh's enter_raw_mode(): bytes go to the remote pty untouched. */
static int enter_raw_mode(const struct termios *saved)
{
    struct termios tio = *saved;
    tio.c_iflag |= IGNPAR;
    tio.c_iflag &= ~(tcflag_t)(ISTRIP | INLCR | IGNCR | ICRNL | IXON | IXANY | IXOFF);
#ifdef IUCLC
    tio.c_iflag &= ~(tcflag_t)IUCLC;
#endif
    tio.c_lflag &= ~(tcflag_t)(ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHONL | IEXTEN);
    tio.c_oflag &= ~(tcflag_t)OPOST;
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    return tcsetattr(STDIN_FILENO, TCSADRAIN, &tio);
}

/* ------------------------------------------------------------------------ */
/* Session: the copy threads                                                */
/* ------------------------------------------------------------------------ */

struct session {
    sshflow_flow *f; /* set before any thread starts, freed after guard_stop() */
    struct logctx *lc;
    pthread_mutex_t mu;         /* protects stopped, users and refs */
    pthread_cond_t cv;          /* signalled when users drops to 0 */
    bool stopped;               /* mu: no new sshflow calls from unjoined threads */
    int users;                  /* mu: unjoined threads inside an sshflow call */
    int refs;                   /* mu: main + running detached threads; 0 frees s */
    uint8_t inbuf[CLI_IO_BUF];  /* stdin thread only */
    uint8_t errbuf[CLI_IO_BUF]; /* stderr thread only */
    uint8_t outbuf[CLI_IO_BUF]; /* main thread only */
};

/*
 * Drop one reference to s; the last one frees it. Detached threads hold one
 * each, so s (the mutex, the stdin buffer) outlives main's use of it.
 */
static void session_unref(struct session *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left == 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
}

/* Unjoined threads bracket every sshflow call with guard_enter/leave. */
static bool guard_enter(struct session *s)
{
    pthread_mutex_lock(&s->mu);
    bool ok = !s->stopped;
    if (ok) {
        s->users++;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static void guard_leave(struct session *s)
{
    pthread_mutex_lock(&s->mu);
    if (--s->users == 0) {
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

/*
 * Forbid new calls and wait (bounded) until no unjoined thread is inside an
 * sshflow call. Returns true when the flow may be freed.
 */
static bool guard_stop(struct session *s, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    s->stopped = true;
    while (s->users > 0) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &deadline) == ETIMEDOUT) {
            break;
        }
    }
    bool idle = s->users == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

/* Wait until fd is ready (for a descriptor left in O_NONBLOCK mode). */
static void wait_fd(int fd, short events)
{
    struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
    }
}

/* Write all n bytes to fd despite short writes, EINTR and O_NONBLOCK. */
static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                wait_fd(fd, POLLOUT);
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* stdin -> channel; at end of stdin, EOF to the remote. Never joined. */
static void *stdin_main(void *arg)
{
    struct session *s = arg;
    sshflow_error err;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, s->inbuf, sizeof(s->inbuf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_fd(STDIN_FILENO, POLLIN);
            continue;
        }
        if (n <= 0) {
            if (n < 0) {
                debug(s->lc, "read stdin: %s; sending EOF", strerror(errno));
            }
            if (guard_enter(s)) {
                memset(&err, 0, sizeof(err));
                if (sshflow_shutdown(s->f, &err) != 0 && err.kind != SSHFLOW_ERR_CLOSED) {
                    debug(s->lc, "sending EOF failed: %s", sshflow_err_kind_name(err.kind));
                }
                guard_leave(s);
            }
            break;
        }
        if (!guard_enter(s)) {
            break;
        }
        memset(&err, 0, sizeof(err));
        int r = sshflow_write(s->f, s->inbuf, (size_t)n, &err);
        guard_leave(s);
        if (r != 0) {
            /* The remote closed or the connection broke; main reports the latter. */
            debug(s->lc, "stdin copy stopped: %s", sshflow_err_kind_name(err.kind));
            break;
        }
    }
    session_unref(s);
    return NULL;
}

/* channel stderr -> fd 2, until the channel's end. Joined by main. */
static void *stderr_main(void *arg)
{
    struct session *s = arg;
    bool out_ok = true;
    sshflow_error err;
    for (;;) {
        memset(&err, 0, sizeof(err));
        ssize_t n = sshflow_read_stderr(s->f, s->errbuf, sizeof(s->errbuf), &err);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            debug(s->lc, "stderr copy stopped: %s", sshflow_err_kind_name(err.kind));
            break;
        }
        if (out_ok && write_all(STDERR_FILENO, s->errbuf, (size_t)n) != 0) {
            out_ok = false; /* keep draining so the channel does not stall */
        }
    }
    return NULL;
}

/* Terminal size changes -> window-change requests. Never joined. */
static void *winch_main(void *arg)
{
    struct session *s = arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGWINCH);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) {
            break;
        }
        struct winsize ws;
        if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) != 0) {
            continue;
        }
        if (!guard_enter(s)) {
            break;
        }
        sshflow_error err;
        memset(&err, 0, sizeof(err));
        int r = sshflow_window_change(s->f, ws.ws_col, ws.ws_row, &err);
        guard_leave(s);
        if (r != 0) {
            debug(s->lc, "window-change: %s", sshflow_err_kind_name(err.kind));
        } else {
            debug(s->lc, "window-change %ux%u", (unsigned)ws.ws_col, (unsigned)ws.ws_row);
        }
    }
    session_unref(s);
    return NULL;
}

/* Start a detached thread that holds a reference to s (released by fn). */
static int start_detached(void *(*fn)(void *), struct session *s)
{
    pthread_attr_t attr;
    pthread_t t;
    if (pthread_attr_init(&attr) != 0) {
        return -1;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->mu);
    s->refs++;
    pthread_mutex_unlock(&s->mu);
    int r = pthread_create(&t, &attr, fn, s);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        session_unref(s);
        errno = r;
        return -1;
    }
    return 0;
}

/*
 * Closes the channel with a bound, while main keeps draining. Joined by main
 * (it ends within the bound), so its thread-local state is gone before exit.
 */
static void *closer_main(void *arg)
{
    struct session *s = arg;
    (void)sshflow_close_timeout(s->f, CLI_EPIPE_WAIT_MS, NULL);
    return NULL;
}

/*
 * Our stdout broke (e.g. `sshflow host yes | head -1`). Like ssh, stop
 * copying and close the channel, so that the remote command does not run
 * forever. ssh sends CHANNEL_CLOSE at once; the public API only has the
 * graceful close (EOF, then wait for the server's CLOSE), so a closer
 * thread runs it with a short bound while the caller keeps reading (and
 * discarding): a command that is about to finish still reports its exit
 * status; one that would run forever is cut off when the bound tears the
 * connection down (the server then closes its pipes, exit status 255).
 * (A "signal" request with PIPE is not used: OpenSSH's sshd refuses it.)
 */
static bool stdout_broke(struct session *s, pthread_t *closer)
{
    int nul = open("/dev/null", O_WRONLY);
    if (nul >= 0) {
        dup2(nul, STDOUT_FILENO);
        close(nul);
    } else {
        close(STDOUT_FILENO);
    }
    if (pthread_create(closer, NULL, closer_main, s) != 0) {
        (void)sshflow_close_timeout(s->f, 0, NULL); /* no thread: tear down now */
        return false;
    }
    return true;
}

/* Local number of an RFC 4254 s6.10 signal name, or 0. */
static int signal_number(const char *name)
{
    static const struct {
        const char *name;
        int sig;
    } map[] = {
        {"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"FPE", SIGFPE},   {"HUP", SIGHUP},
        {"ILL", SIGILL},   {"INT", SIGINT},   {"KILL", SIGKILL}, {"PIPE", SIGPIPE},
        {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV}, {"TERM", SIGTERM}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2},
    };
    if (strncmp(name, "SIG", 3) == 0) {
        name += 3;
    }
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(name, map[i].name) == 0) {
            return map[i].sig;
        }
    }
    return 0;
}

/* Turn the remote command's end into our exit code, with ssh's messages. */
static int exit_code_of(struct logctx *lc, const sshflow_exit *ex, bool quiet_sigpipe)
{
    switch (ex->kind) {
    case SSHFLOW_EXIT_STATUS:
        debug(lc, "Exit status %u", (unsigned)ex->status);
        return (int)(ex->status & 0xff);
    case SSHFLOW_EXIT_SIGNAL: {
        char name[sizeof(ex->signal) + 1];
        char msg[sizeof(ex->message) + 1];
        const char *raw = ex->signal;
        if (strncmp(raw, "SIG", 3) == 0) {
            raw += 3;
        }
        sanitize(name, sizeof(name), raw);
        sanitize(msg, sizeof(msg), ex->message);
        int sig = signal_number(name);
        if (sig == SIGPIPE && quiet_sigpipe) {
            debug(lc, "remote command killed by SIGPIPE after our stdout closed");
            return 128 + sig;
        }
        say(lc, "sshflow: ", "remote command killed by signal SIG%s%s%s%s%s", name,
            ex->core_dumped ? " (core dumped)" : "", msg[0] != '\0' ? ": " : "", msg,
            sig == 0 ? " (unknown signal name; exit status 255)" : "");
        return sig == 0 ? CLI_EXIT_FAIL : 128 + sig;
    }
    case SSHFLOW_EXIT_NONE:
    default:
        debug(lc, "no exit status from the server");
        return CLI_EXIT_FAIL;
    }
}

/*
 * Run the session on f until the remote's end. Returns the exit code.
 * Takes f: frees it (unless a stuck thread still uses it; then *leaked).
 */
static int run_session(struct logctx *lc, sshflow_flow *f, bool pty_local, bool *leaked)
{
    int rc = CLI_EXIT_FAIL;
    sshflow_error err;
    memset(&err, 0, sizeof(err));
    struct termios saved;
    memset(&saved, 0, sizeof(saved));
    bool raw = false;
    bool have_stderr_thread = false;
    pthread_t stderr_thread;

    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        say(lc, "sshflow: ", "out of memory");
        sshflow_free(f);
        return CLI_EXIT_FAIL;
    }
    s->f = f;
    s->lc = lc;
    s->refs = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    int tr = pthread_create(&stderr_thread, NULL, stderr_main, s);
    if (tr != 0) {
        say(lc, "sshflow: ", "cannot start a thread: %s", strerror(tr));
        goto out;
    }
    have_stderr_thread = true;
    if (start_detached(stdin_main, s) != 0) {
        say(lc, "sshflow: ", "cannot start a thread: %s", strerror(errno));
        goto out;
    }
    if (pty_local) {
        if (tcgetattr(STDIN_FILENO, &saved) == 0 && enter_raw_mode(&saved) == 0) {
            raw = true;
            atomic_store(&lc->raw, true);
        }
        if (start_detached(winch_main, s) != 0) {
            debug(lc, "no window size updates: cannot start a thread");
        }
    }

    /* channel stdout -> fd 1 */
    bool stdout_broken = false;
    bool have_closer = false;
    pthread_t closer;
    ssize_t n;
    for (;;) {
        memset(&err, 0, sizeof(err));
        n = sshflow_read_into(f, s->outbuf, sizeof(s->outbuf), &err);
        if (n <= 0) {
            break;
        }
        if (stdout_broken) {
            continue; /* draining, see below */
        }
        if (write_all(STDOUT_FILENO, s->outbuf, (size_t)n) != 0) {
            debug(lc, "write stdout: %s; closing the channel", strerror(errno));
            stdout_broken = true;
            have_closer = stdout_broke(s, &closer);
        }
    }

    if (have_closer) {
        pthread_join(closer, NULL);
    }
    if (n < 0 && !stdout_broken) {
        /* The connection broke (or the server misbehaved). */
        if (raw) {
            tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
            raw = false;
            atomic_store(&lc->raw, false);
        }
        report_error(lc, &err);
        (void)sshflow_close_timeout(f, 0, NULL);
        pthread_join(stderr_thread, NULL);
        have_stderr_thread = false;
        goto out;
    }

    /*
     * stdout EOF (or, with a broken stdout, the end of the drain): let
     * stderr drain to its end too, then the bounded close.
     */
    pthread_join(stderr_thread, NULL);
    have_stderr_thread = false;
    memset(&err, 0, sizeof(err));
    if (sshflow_close_timeout(f, CLI_CLOSE_WAIT_MS, &err) != 0) {
        debug(lc, "close: %s", sshflow_err_kind_name(err.kind));
    }
    uint64_t dropped = sshflow_stderr_dropped(f);
    if (dropped > 0) {
        debug(lc, "%llu bytes of remote stderr dropped", (unsigned long long)dropped);
    }
    sshflow_exit ex;
    memset(&ex, 0, sizeof(ex));
    if (raw) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
        raw = false;
        atomic_store(&lc->raw, false);
    }
    if (sshflow_exit_info(f, &ex) != 0) {
        ex.kind = SSHFLOW_EXIT_NONE;
    }
    /*
     * A remote command killed by SIGPIPE after we closed its output because
     * our own stdout broke is the expected outcome: no message (a local
     * pipeline is silent too), but still exit 128+SIGPIPE.
     */
    rc = exit_code_of(lc, &ex, stdout_broken);

out:
    if (raw) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved);
        atomic_store(&lc->raw, false);
    }
    if (have_stderr_thread) {
        /* Only on a failed start: make the stderr reader return, then join. */
        (void)sshflow_close_timeout(f, 0, NULL);
        pthread_join(stderr_thread, NULL);
    }
    if (guard_stop(s, CLI_GUARD_WAIT_MS)) {
        sshflow_free(f);
    } else {
        debug(lc, "a thread is stuck in the library; not freeing the connection");
        *leaked = true;
    }
    /* The detached threads may still hold s; they see stopped and end. */
    session_unref(s);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Make sure fds 0, 1, 2 are open (as ssh does), so that a socket can never
 * land on them and be mistaken for stdin/stdout.
 */
static void sanitize_stdfds(void)
{
    int fd;
    while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd <= STDERR_FILENO) {
    }
    if (fd > STDERR_FILENO) {
        close(fd);
    }
}

/* Add default or given identities. Returns 0, or -1 (out of memory). */
static int add_identities(struct cli *c, sshflow_cred *cred)
{
    static const char *const defaults[] = {"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"};
    bool explicit_ids = c->nident > 0;
    if (!explicit_ids) {
        for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
            if (add_identity(c, defaults[i]) != 0) {
                return -1;
            }
        }
    }
    for (size_t i = 0; i < c->nident; i++) {
        const char *path = c->ident[i];
        struct stat st;
        if (stat(path, &st) != 0) {
            if (explicit_ids) {
                say(c->lc, "", "Warning: Identity file %s not accessible: %s.", path,
                    strerror(errno));
            } else {
                debug(c->lc, "identity file %s: %s", path, strerror(errno));
            }
            continue;
        }
        sshflow_error err;
        memset(&err, 0, sizeof(err));
        int r = c->batch ? sshflow_cred_add_keyfile(cred, path, NULL, &err)
                         : sshflow_cred_add_keyfile_prompt(cred, path, cli_prompt, c, 3, &err);
        if (r != 0) {
            if (err.kind == SSHFLOW_ERR_NOMEM) {
                report_error(c->lc, &err);
                return -1;
            }
            char sentence[CLI_MSG_MAX];
            sshflow_strerror(&err, sentence, sizeof(sentence));
            if (explicit_ids) {
                say(c->lc, "", "Load key \"%s\": %s", path, sentence);
            } else {
                debug(c->lc, "skipping identity file %s: %s", path, sentence);
            }
            continue;
        }
        debug(c->lc, "will try identity file %s", path);
    }
    for (size_t i = 0; i < c->ncerts; i++) {
        sshflow_error err;
        memset(&err, 0, sizeof(err));
        if (sshflow_cred_add_certfile(cred, c->certs[i], &err) != 0) {
            char sentence[CLI_MSG_MAX];
            sshflow_strerror(&err, sentence, sizeof(sentence));
            say(c->lc, "", "Certificate \"%s\": %s", c->certs[i], sentence);
            continue;
        }
        debug(c->lc, "will try certificate %s", c->certs[i]);
    }
    return 0;
}

static const char *default_user(void)
{
    const char *u = getenv("USER");
    if (u != NULL && *u != '\0') {
        return u;
    }
    struct passwd *pw = getpwuid(getuid());
    return pw != NULL ? pw->pw_name : NULL;
}

int main(int argc, char **argv)
{
    int rc = CLI_EXIT_FAIL;
    bool leaked = false;
    struct logctx lc = {.verbose = false};
    atomic_init(&lc.raw, false);
    struct cli c;
    memset(&c, 0, sizeof(c));
    c.lc = &lc;
    sshflow_config *cfg = NULL;
    sshflow_cred *cred = NULL;
    sshflow_hostauth *ha = NULL;
    sshflow_request *req = NULL;
    sshflow_flow *transport = NULL;
    sshflow_flow *f = NULL;
    sshflow_error err;
    memset(&err, 0, sizeof(err));

    sanitize_stdfds();
    /* Broken pipes are reported as EPIPE, not fatal signals. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
    /*
     * SIGWINCH is taken by sigwait() in the winch thread; block it before any
     * thread (ours or the library's) exists so every thread inherits the mask.
     */
    sigset_t winch;
    sigemptyset(&winch);
    sigaddset(&winch, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &winch, NULL);

    cfg = sshflow_config_new();
    if (cfg == NULL) {
        say(&lc, "sshflow: ", "out of memory");
        goto out;
    }
    c.cfg = cfg;
    switch (parse_args(&c, argc, argv)) {
    case PARSE_OK:
        break;
    case PARSE_EXIT_OK:
        rc = 0;
        goto out;
    case PARSE_EXIT_FAIL:
    default:
        goto out;
    }
    if (lc.verbose) {
        sshflow_set_log(log_cb, &lc);
    }

    const char *user = c.l_user != NULL      ? c.l_user
                       : c.o_user != NULL    ? c.o_user
                       : c.dest_user != NULL ? c.dest_user
                                             : default_user();
    if (user == NULL || *user == '\0') {
        say(&lc, "sshflow: ", "no user name: use -l or user@host");
        goto out;
    }
    uint16_t port = c.port != 0 ? c.port : CLI_DEFAULT_PORT;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if (sshflow_config_set(cfg, "HostName", c.host, &err) != 0 ||
        sshflow_config_set(cfg, "Port", portstr, &err) != 0) {
        report_error(&lc, &err);
        goto out;
    }

    /*
     * Credentials in ssh's order: the agent's keys (unless IdentitiesOnly or
     * IdentityAgent none), identity files (certificates attached), then
     * keyboard-interactive and password, asked on the terminal or through
     * SSH_ASKPASS. SSHFLOW_PASSWORD, if set, is the password without asking.
     */
    cred = sshflow_cred_new();
    if (cred == NULL) {
        say(&lc, "sshflow: ", "out of memory");
        goto out;
    }
    bool agent_none = c.agent != NULL && strcmp(c.agent, "none") == 0;
    if (!c.identities_only && !agent_none && (c.agent != NULL || getenv("SSH_AUTH_SOCK") != NULL)) {
        if (sshflow_cred_add_agent(cred, c.agent, &err) != 0) {
            report_error(&lc, &err);
            goto out;
        }
        debug(&lc, "will try the keys of the agent at %s", c.agent != NULL ? c.agent : getenv("SSH_AUTH_SOCK"));
    }
    if (add_identities(&c, cred) != 0) {
        goto out;
    }
    const char *pw = getenv("SSHFLOW_PASSWORD");
    unsigned prompts = c.seen[OPT_NUMBEROFPASSWORDPROMPTS] ? c.password_prompts : 3;
    if (!c.batch && !c.no_kbdint && pw == NULL && prompts > 0 &&
        sshflow_cred_add_kbdint(cred, cli_prompt, &c, prompts, &err) != 0) {
        report_error(&lc, &err);
        goto out;
    }
    if (pw != NULL) {
        memset(&err, 0, sizeof(err));
        if (sshflow_cred_add_password(cred, pw, &err) != 0) {
            report_error(&lc, &err);
            goto out;
        }
        debug(&lc, "will try the password from SSHFLOW_PASSWORD");
    } else if (!c.batch && !c.no_password && prompts > 0 &&
               sshflow_cred_add_password_prompt(cred, cli_prompt, &c, prompts, &err) != 0) {
        report_error(&lc, &err);
        goto out;
    }

    /* Host authentication. */
    switch (c.strict) {
    case STRICT_NO:
        ha = sshflow_hostauth_insecure_accept_any();
        break;
    case STRICT_ACCEPT_NEW:
        ha = sshflow_hostauth_known_hosts(c.known_hosts, SSHFLOW_HOSTKEY_ACCEPT_NEW);
        break;
    case STRICT_YES:
    default:
        ha = sshflow_hostauth_known_hosts(c.known_hosts, SSHFLOW_HOSTKEY_STRICT);
        break;
    }
    if (ha == NULL) {
        say(&lc, "sshflow: ", "out of memory");
        goto out;
    }

    /* The request: exec, subsystem or shell; maybe with a pty. */
    bool stdin_tty = isatty(STDIN_FILENO) == 1;
    bool want_pty = c.tty == TTY_FORCE || (c.tty == TTY_AUTO && c.command == NULL && stdin_tty);
    if (c.tty == TTY_AUTO && c.command == NULL && !stdin_tty) {
        debug(&lc, "Pseudo-terminal will not be allocated because stdin is not a terminal.");
    }
    if (c.subsystem) {
        req = sshflow_request_subsystem(c.command);
    } else if (c.command != NULL) {
        req = sshflow_request_exec(c.command);
    } else {
        req = sshflow_request_shell();
    }
    if (req == NULL) {
        say(&lc, "sshflow: ", "out of memory");
        goto out;
    }
    if (want_pty) {
        const char *term = getenv("TERM");
        uint32_t cols = 0;
        uint32_t rows = 0;
        uint8_t modes[CLI_MODES_MAX];
        size_t modes_len = 0;
        if (stdin_tty) {
            struct winsize ws;
            struct termios tio;
            if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
                cols = ws.ws_col;
                rows = ws.ws_row;
            }
            if (tcgetattr(STDIN_FILENO, &tio) == 0) {
                modes_len = encode_modes(&tio, modes);
            }
        }
        int r = sshflow_request_set_pty(req, term != NULL && *term != '\0' ? term : "dumb", cols,
                                        rows, modes_len > 0 ? modes : NULL, modes_len);
        if (r != 0) {
            say(&lc, "sshflow: ", "cannot request a pty: %s", sshflow_err_kind_name(r));
            goto out;
        }
    }

    /* Connect and upgrade. */
    int timeout_ms = c.connect_timeout_s * 1000;
    debug(&lc, "Connecting to %s port %u", c.host, (unsigned)port);
    memset(&err, 0, sizeof(err));
    transport = sshflow_connect_tcp(c.host, port, timeout_ms, &err);
    if (transport == NULL) {
        report_error(&lc, &err);
        goto out;
    }
    memset(&err, 0, sizeof(err));
    f = sshflow_client_of_flow(transport, user, cred, ha, req, cfg, &err);
    transport = NULL; /* taken by client_of_flow in every case */
    if (f == NULL) {
        report_error(&lc, &err);
        goto out;
    }
    if (lc.verbose) {
        char desc[CLI_MSG_MAX];
        if (sshflow_describe(f, desc, sizeof(desc)) == 0) {
            debug(&lc, "%s", desc);
        }
    }
    /* Secrets and settings are no longer needed: wipe them now. */
    sshflow_cred_free(cred);
    cred = NULL;

    rc = run_session(&lc, f, want_pty && stdin_tty, &leaked);
    f = NULL; /* taken by run_session */

out:
    sshflow_free(transport);
    sshflow_free(f);
    sshflow_request_free(req);
    sshflow_hostauth_free(ha);
    sshflow_cred_free(cred);
    sshflow_config_free(cfg);
    cli_free(&c);
    if (lc.verbose) {
        sshflow_set_log(NULL, NULL);
    }
    fflush(stdout);
    fflush(stderr);
    if (leaked) {
        /* A library thread may still run: skip atexit handlers (OpenSSL's). */
        _exit(rc);
    }
    /*
     * exit() rather than return: main's frame (lc) stays valid while the
     * never-joined stdin thread may still be blocked in read().
     */
    exit(rc);
}
