/*
 * bench/client_sshflow.c -- the benchmark client for sshflow (usage in
 * bench_common.h). Uses include/sshflow.h only, linked against the shared
 * library (which exports nothing else).
 *
 * Owns: one connection per transfer with sshflow's blocking API; the round
 * trip writes from a second thread (sshflow_write and sshflow_read_into
 * may run concurrently on one channel).
 * Must never: reach into sshflow's internals, or skip the host key check.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "sshflow.h"

static const char *NAME = "client_sshflow";

static void die_err(const char *what, const sshflow_error *err)
{
    char msg[700];

    bench_die(NAME, "%s: %s", what, sshflow_strerror(err, msg, sizeof(msg)));
}

static void cfg_set(sshflow_config *cfg, const char *name, const char *value)
{
    sshflow_error err;

    if (value != NULL && sshflow_config_set(cfg, name, value, &err) != 0) {
        die_err(name, &err);
    }
}

/* Connect, check the host key against known_hosts (strict), authenticate
 * with the key file, open a session and exec cmd. */
static sshflow_flow *open_channel(const struct bench_args *a, const char *cmd)
{
    sshflow_error err;
    sshflow_config *cfg = sshflow_config_new();
    sshflow_cred *cred = sshflow_cred_new();
    sshflow_hostauth *trust = sshflow_hostauth_known_hosts(a->known_hosts,
                                                           SSHFLOW_HOSTKEY_STRICT);
    sshflow_request *req = sshflow_request_exec(cmd);
    sshflow_flow *tcp, *ch;

    if (cfg == NULL || cred == NULL || trust == NULL || req == NULL) {
        bench_die(NAME, "out of memory");
    }
    cfg_set(cfg, "Ciphers", a->cipher);
    cfg_set(cfg, "MACs", a->mac);
    cfg_set(cfg, "KexAlgorithms", a->kex);
    cfg_set(cfg, "HostKeyAlgorithms", a->hostkey);
    if (sshflow_cred_add_keyfile(cred, a->key, NULL, &err) != 0) {
        die_err("key", &err);
    }
    tcp = sshflow_connect_tcp(a->host, (uint16_t)a->port, 10000, &err);
    if (tcp == NULL) {
        die_err("connect", &err);
    }
    ch = sshflow_client_of_flow(tcp, a->user, cred, trust, req, cfg, &err);
    if (ch == NULL) {
        die_err("ssh", &err);
    }
    sshflow_request_free(req);
    sshflow_hostauth_free(trust);
    sshflow_cred_free(cred);
    sshflow_config_free(cfg);
    return ch;
}

/* Close (waiting for the server's close), require exit status 0, free. */
static void finish_channel(sshflow_flow *ch)
{
    sshflow_error err;
    sshflow_exit ex;

    if (sshflow_close_timeout(ch, 10000, &err) != 0) {
        die_err("close", &err);
    }
    if (sshflow_exit_info(ch, &ex) != 0 || ex.kind != SSHFLOW_EXIT_STATUS || ex.status != 0) {
        bench_die(NAME, "remote command did not exit with status 0");
    }
    sshflow_free(ch);
}

static void send_file(sshflow_flow *ch, struct bench_src *src, unsigned char *buf)
{
    sshflow_error err;
    size_t n;

    while ((n = bench_src_next(src, buf, BENCH_CHUNK)) > 0) {
        if (sshflow_write(ch, buf, n, &err) != 0) {
            die_err("write", &err);
        }
    }
    if (sshflow_shutdown(ch, &err) != 0) {
        die_err("shutdown", &err);
    }
}

struct writer {
    sshflow_flow *ch;
    struct bench_src src;
    unsigned char *buf;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;

    send_file(w->ch, &w->src, w->buf);
    return NULL;
}

static void run_transfer(const struct bench_args *a)
{
    char cmd[4200], algs[512];
    unsigned char *buf = malloc(BENCH_CHUNK);
    struct bench_hash hash = {{0}, 0};
    struct bench_src src;
    struct bench_chk chk;
    sshflow_error err;
    sshflow_flow *ch;
    ssize_t n;
    uint64_t bytes = 0;
    double t0;

    if (buf == NULL) {
        bench_die(NAME, "out of memory");
    }
    if (strcmp(a->mode, "upload") == 0) {
        bench_src_open(&src, a->file);
        t0 = bench_now();
        ch = open_channel(a, BENCH_UPLOAD_CMD);
        send_file(ch, &src, buf);
        while ((n = sshflow_read_into(ch, buf, BENCH_CHUNK, &err)) > 0) {
            bench_hash_feed(&hash, buf, (size_t)n);
        }
        if (n < 0) {
            die_err("read", &err);
        }
        bytes = src.done;
        sshflow_describe(ch, algs, sizeof(algs));
        finish_channel(ch);
        bench_report(a, bytes, bench_now() - t0, algs, bench_hash_hex(&hash));
        bench_src_close(&src);
    } else if (strcmp(a->mode, "download") == 0) {
        bench_download_cmd(a->file, cmd, sizeof(cmd));
        bench_chk_open(&chk, a->file);
        t0 = bench_now();
        ch = open_channel(a, cmd);
        if (sshflow_shutdown(ch, &err) != 0) {
            die_err("shutdown", &err);
        }
        while ((n = sshflow_read_into(ch, buf, BENCH_CHUNK, &err)) > 0) {
            bench_chk_feed(&chk, buf, (size_t)n);
        }
        if (n < 0) {
            die_err("read", &err);
        }
        bench_chk_finish(&chk);
        sshflow_describe(ch, algs, sizeof(algs));
        finish_channel(ch);
        bench_report(a, chk.done, bench_now() - t0, algs, NULL);
        bench_chk_close(&chk);
    } else {
        struct writer w;
        pthread_t th;

        w.buf = malloc(BENCH_CHUNK);
        if (w.buf == NULL) {
            bench_die(NAME, "out of memory");
        }
        bench_src_open(&w.src, a->file);
        bench_chk_open(&chk, a->file);
        t0 = bench_now();
        ch = open_channel(a, BENCH_ROUNDTRIP_CMD);
        w.ch = ch;
        if (pthread_create(&th, NULL, writer_main, &w) != 0) {
            bench_die(NAME, "pthread_create failed");
        }
        while ((n = sshflow_read_into(ch, buf, BENCH_CHUNK, &err)) > 0) {
            bench_chk_feed(&chk, buf, (size_t)n);
        }
        if (n < 0) {
            die_err("read", &err);
        }
        pthread_join(th, NULL);
        bench_chk_finish(&chk);
        sshflow_describe(ch, algs, sizeof(algs));
        finish_channel(ch);
        bench_report(a, chk.done, bench_now() - t0, algs, NULL);
        bench_chk_close(&chk);
        bench_src_close(&w.src);
        free(w.buf);
    }
    free(buf);
}

static void run_handshakes(const struct bench_args *a)
{
    double *ms = calloc((size_t)a->count, sizeof(double));
    char algs[512] = "";
    unsigned char buf[256];
    sshflow_error err;
    int i;

    if (ms == NULL) {
        bench_die(NAME, "out of memory");
    }
    for (i = 0; i < a->count; i++) {
        double t0 = bench_now();
        sshflow_flow *ch = open_channel(a, BENCH_HANDSHAKE_CMD);
        ssize_t n;

        if (sshflow_shutdown(ch, &err) != 0) {
            die_err("shutdown", &err);
        }
        while ((n = sshflow_read_into(ch, buf, sizeof(buf), &err)) > 0) {
        }
        if (n < 0) {
            die_err("read", &err);
        }
        sshflow_describe(ch, algs, sizeof(algs));
        finish_channel(ch);
        ms[i] = (bench_now() - t0) * 1000.0;
    }
    bench_report_handshake(ms, a->count, algs);
    free(ms);
}

int main(int argc, char **argv)
{
    struct bench_args a;

    bench_parse_args(argc, argv, &a);
    if (strcmp(a.mode, "handshake") == 0) {
        run_handshakes(&a);
    } else {
        run_transfer(&a);
    }
    return 0;
}
