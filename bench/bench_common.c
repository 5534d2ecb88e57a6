/*
 * bench/bench_common.c -- the parts of the benchmark clients that are the
 * same for every library: command line, input file, checker, clock, result
 * line (see bench_common.h for the contract).
 *
 * Owns: plain POSIX I/O on the local input file and stdout/stderr.
 * Must never: link or call any SSH library, or buffer the whole file.
 */
#include "bench_common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s -p PORT -l USER -i KEY -k KNOWN_HOSTS [-c CIPHER] [-m MAC] [-x KEX]\n"
            "          [-H HOSTKEYALG] [-N] upload|download|roundtrip FILE | handshake N\n",
            prog);
    exit(2);
}

void bench_parse_args(int argc, char **argv, struct bench_args *a)
{
    int opt;

    memset(a, 0, sizeof(*a));
    a->host = "127.0.0.1";
    while ((opt = getopt(argc, argv, "p:l:i:k:c:m:x:H:h:N")) != -1) {
        switch (opt) {
        case 'p':
            a->port = atoi(optarg);
            break;
        case 'l':
            a->user = optarg;
            break;
        case 'i':
            a->key = optarg;
            break;
        case 'k':
            a->known_hosts = optarg;
            break;
        case 'c':
            a->cipher = optarg;
            break;
        case 'm':
            a->mac = optarg;
            break;
        case 'x':
            a->kex = optarg;
            break;
        case 'H':
            a->hostkey = optarg;
            break;
        case 'h':
            a->host = optarg;
            break;
        case 'N':
            a->nodelay = 1;
            break;
        default:
            usage(argv[0]);
        }
    }
    if (a->port <= 0 || a->port > 65535 || a->user == NULL || a->key == NULL ||
        a->known_hosts == NULL || argc - optind != 2) {
        usage(argv[0]);
    }
    a->mode = argv[optind];
    if (strcmp(a->mode, "handshake") == 0) {
        a->count = atoi(argv[optind + 1]);
        if (a->count <= 0 || a->count > 10000) {
            usage(argv[0]);
        }
    } else if (strcmp(a->mode, "upload") == 0 || strcmp(a->mode, "download") == 0 ||
               strcmp(a->mode, "roundtrip") == 0) {
        a->file = argv[optind + 1];
    } else {
        usage(argv[0]);
    }
}

void bench_die(const char *name, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_sized(const char *path, uint64_t *size)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        bench_die("bench", "%s: %s", path, strerror(errno));
    }
    if (fstat(fd, &st) != 0) {
        bench_die("bench", "%s: %s", path, strerror(errno));
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

void bench_src_open(struct bench_src *s, const char *path)
{
    s->fd = open_sized(path, &s->size);
    s->done = 0;
}

size_t bench_src_next(struct bench_src *s, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len && s->done < s->size) {
        ssize_t n = read(s->fd, (unsigned char *)buf + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            bench_die("bench", "reading the input file: %s", n < 0 ? strerror(errno) : "short");
        }
        got += (size_t)n;
        s->done += (uint64_t)n;
    }
    return got;
}

void bench_src_close(struct bench_src *s)
{
    close(s->fd);
    s->fd = -1;
}

void bench_chk_open(struct bench_chk *c, const char *path)
{
    c->fd = open_sized(path, &c->size);
    c->done = 0;
    c->scratch = malloc(BENCH_CHUNK);
    if (c->scratch == NULL) {
        bench_die("bench", "out of memory");
    }
}

void bench_chk_feed(struct bench_chk *c, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (len > c->size - c->done) {
        bench_die("bench", "received more than the %llu bytes sent", (unsigned long long)c->size);
    }
    while (len > 0) {
        size_t n = len < BENCH_CHUNK ? len : BENCH_CHUNK;
        ssize_t r = pread(c->fd, c->scratch, n, (off_t)c->done);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            bench_die("bench", "reading the input file: %s", r < 0 ? strerror(errno) : "short");
        }
        if (memcmp(c->scratch, p, (size_t)r) != 0) {
            bench_die("bench", "wrong data near offset %llu", (unsigned long long)c->done);
        }
        c->done += (uint64_t)r;
        p += r;
        len -= (size_t)r;
    }
}

void bench_chk_finish(struct bench_chk *c)
{
    if (c->done != c->size) {
        bench_die("bench", "received %llu of %llu bytes", (unsigned long long)c->done,
                  (unsigned long long)c->size);
    }
}

void bench_chk_close(struct bench_chk *c)
{
    close(c->fd);
    c->fd = -1;
    free(c->scratch);
    c->scratch = NULL;
}

void bench_download_cmd(const char *file, char *buf, size_t len)
{
    int n;

    if (strchr(file, '\'') != NULL) {
        bench_die("bench", "file name with a quote: %s", file);
    }
    n = snprintf(buf, len, "cat '%s'", file);
    if (n < 0 || (size_t)n >= len) {
        bench_die("bench", "file name too long");
    }
}

void bench_hash_feed(struct bench_hash *h, const void *buf, size_t len)
{
    size_t room = sizeof(h->text) - 1 - h->len;

    if (len > room) {
        bench_die("bench", "sha256sum said more than expected");
    }
    memcpy(h->text + h->len, buf, len);
    h->len += len;
    h->text[h->len] = '\0';
}

const char *bench_hash_hex(struct bench_hash *h)
{
    size_t n = strspn(h->text, "0123456789abcdef");

    if (n != 64) {
        bench_die("bench", "sha256sum said \"%s\"", h->text);
    }
    h->text[n] = '\0';
    return h->text;
}

void bench_report(const struct bench_args *a, uint64_t bytes, double secs, const char *algs,
                  const char *hash)
{
    printf("RESULT mode=%s bytes=%llu secs=%.6f algs=\"%s\"%s%s\n", a->mode,
           (unsigned long long)bytes, secs, algs, hash != NULL ? " hash=" : "",
           hash != NULL ? hash : "");
    fflush(stdout);
}

void bench_report_handshake(const double *ms, int n, const char *algs)
{
    int i;

    printf("RESULT mode=handshake ms=");
    for (i = 0; i < n; i++) {
        printf("%s%.3f", i > 0 ? "," : "", ms[i]);
    }
    printf(" algs=\"%s\"\n", algs);
    fflush(stdout);
}
