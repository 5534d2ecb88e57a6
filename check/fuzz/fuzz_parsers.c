/*
 * check/fuzz/fuzz_parsers.c -- libFuzzer harness for every parser that takes
 * bytes from the peer or from a file: buffer getters, public key blobs and
 * signatures, private key files (text and openssh-key-v1 payloads), the
 * packet decoder, OpenSSH certificates, public key files, ssh-agent
 * replies, known_hosts files, the sntrup761 / ML-KEM-768 decapsulation and
 * the key exchange methods' handling of the server's values.
 *
 * Build (see docs/fuzzing.md): cmake -DSSHFLOW_FUZZ=ON -DCMAKE_C_COMPILER=clang
 *   -DSSHFLOW_SANITIZE=address,undefined
 *   -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all" ...
 * Run:  ./fuzz_parsers -max_total_time=60 check/fuzz/corpus/<target>
 *
 * The first input byte selects the target (its number in `targets` below;
 * other values do nothing); the rest is the target's input. With
 * SSHFLOW_FUZZ_TARGET=<name> in the environment the first byte is ignored
 * and every input goes to that target, so one run stays on one parser.
 *
 * Owns: the fuzz targets, their fixed keys and the scratch directory for
 * file-reading parsers (one per process, in /dev/shm, removed at exit).
 * Must never: run anything unbounded on fuzzed input (the bcrypt KDF runs
 * only with SSHFLOW_FUZZ_KDF=1 and only for files asking at most
 * FUZZ_BCRYPT_ROUNDS rounds; OpenSSL's PBKDF2 for PKCS#8 never gets a
 * passphrase), block (the agent's flow ends at the end
 * of the input), or keep state between inputs that changes what an input
 * does, except the cached kex key pairs (see fuzz_kex).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "compress.h"
#include "cert.h"
#include "conn.h"
#include "kex.h"
#include "key.h"
#include "keyfile.h"
#include "knownhosts.h"
#include "mlkem768.h"
#include "sntrup761.h"

#define FUZZ_BCRYPT_ROUNDS 1      /* most bcrypt rounds given a passphrase (SSHFLOW_FUZZ_KDF=1) */
#define FUZZ_PASSPHRASE "fuzz"    /* the seeds' passphrase */
#define FUZZ_AGENT_TIMEOUT 60000  /* never reached: reads end at the input's end */
#define FUZZ_OUT_MAX (64 * 1024)  /* output buffers of the targets */
#define FUZZ_PATH_MAX 256

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* For results a target does not look at (gcc does not take a (void) cast for warn_unused_result). */
static void
discard(int r)
{
    (void)r;
}

/* Scratch directory for targets whose parser reads a file. */
static char scratch_dir[FUZZ_PATH_MAX];
static char kh_path[FUZZ_PATH_MAX + 32];
static char pub_path[FUZZ_PATH_MAX + 32];

static void
scratch_remove(void)
{
    if (scratch_dir[0] != '\0') {
        (void)unlink(kh_path);
        (void)unlink(pub_path);
        (void)rmdir(scratch_dir);
    }
}

static void
scratch_make(void)
{
    static const char *const bases[] = { "/dev/shm", "/tmp" };

    for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
        snprintf(scratch_dir, sizeof(scratch_dir), "%s/sshflow-fuzz-XXXXXX", bases[i]);
        if (mkdtemp(scratch_dir) != NULL) {
            snprintf(kh_path, sizeof(kh_path), "%s/known_hosts", scratch_dir);
            snprintf(pub_path, sizeof(pub_path), "%s/key-cert.pub", scratch_dir);
            atexit(scratch_remove);
            return;
        }
    }
    fprintf(stderr, "fuzz_parsers: no scratch directory in /dev/shm or /tmp\n");
    abort();
}

/* Replace the file at path with d[n]; aborts on failure (the harness is broken then). */
static void
write_file(const char *path, const uint8_t *d, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t done = 0;

    if (fd < 0) {
        perror(path);
        abort();
    }
    while (done < n) {
        ssize_t k = write(fd, d + done, n - done);

        if (k <= 0) {
            perror(path);
            abort();
        }
        done += (size_t)k;
    }
    close(fd);
}

/* A heap copy of exactly n bytes (so ASan sees reads past n): d padded with zeros or cut. */
static uint8_t *
exact_copy(const uint8_t *d, size_t dlen, size_t n)
{
    uint8_t *p = sf_alloc(n);

    if (p == NULL) {
        abort();
    }
    if (dlen > 0) {
        memcpy(p, d, SF_MIN(dlen, n));
    }
    return p;
}

static void
buf_make(struct sf_buf *b)
{
    if (sf_buf_alloc(b, 1024, FUZZ_OUT_MAX) != 0) {
        abort();
    }
}

/* Base64 text of fixed test data into out (abort if it does not decode). */
static size_t
b64_fixed(const char *text, uint8_t *out, size_t outsz)
{
    size_t n = 0;

    if (sf_base64_decode(text, strlen(text), out, outsz, &n) != 0) {
        abort();
    }
    return n;
}

/* Deterministic "random" bytes for the KEM key pairs and encapsulations. */
static int
counter_rng(void *ctx, uint8_t *out, size_t n)
{
    uint32_t *ctr = ctx;

    for (size_t i = 0; i < n; i++) {
        *ctr = *ctr * 1103515245u + 12345u;
        out[i] = (uint8_t)(*ctr >> 16);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Fixed keys                                                               */
/* ------------------------------------------------------------------------ */

/* Host keys and host certificates the known_hosts target looks up. */
static const char *const kh_keys_b64[] = {
    /* ssh-ed25519 (check/fuzz/corpus/knownhosts uses it) */
    "AAAAC3NzaC1lZDI1NTE5AAAAIDvX+rWg0DYySHwXSXjOAm16vLdl/uPrDuBsy6m0SOxc",
    /* ecdsa-sha2-nistp256 */
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBFN4f+9hyKOvWP8eDZQERxnExmR++GPYCZeV"
    "w5FYtCY73m4/rZlIb5Fyuopn6wCRT+Aq4xjvLGiNgNNtgPEs97g=",
    /* ssh-rsa, 1024 bits */
    "AAAAB3NzaC1yc2EAAAADAQABAAAAgQDOxZd8MJEC6dL/y0bG4MpiwmgaSUniBhPDeApdEbODUKkfgNwSCQMZO78a"
    "t6ENVgpUPSoPYMIcGHu9ZHRMG7d96LVYvE7Job1+ZFcPGbIJ39xfx85l/DRuJqWPrAjxfOrH/R7qmohjArlEM3uH"
    "2l3Gecux02tgp7ovCptspm394w==",
    /* host certificate of the nistp256 key, CA nistp256, principals example.com, 10.0.0.1,
     * valid 2020-01-01 .. 2040-01-01 */
    "AAAAKGVjZHNhLXNoYTItbmlzdHAyNTYtY2VydC12MDFAb3BlbnNzaC5jb20AAAAg0Cso+/UAELlvS5m4e/j087jG"
    "mTWfj/admIAjKVsLwR0AAAAIbmlzdHAyNTYAAABBBFN4f+9hyKOvWP8eDZQERxnExmR++GPYCZeVw5FYtCY73m4/"
    "rZlIb5Fyuopn6wCRT+Aq4xjvLGiNgNNtgPEs97gAAAAAAAAACAAAAAIAAAAHaG9zdC1pZAAAABsAAAALZXhhbXBs"
    "ZS5jb20AAAAIMTAuMC4wLjEAAAAAXgvhAAAAAACDqn6AAAAAAAAAAAAAAAAAAAAAaAAAABNlY2RzYS1zaGEyLW5p"
    "c3RwMjU2AAAACG5pc3RwMjU2AAAAQQQq1QmWTGBFTT+VIFJ0T47La/K3uiPCVkUVbqS+XyghX8Cm9qfEaXtiiGRd"
    "X+czLPiedGSAt3uKprlNTSemf19uAAAAZQAAABNlY2RzYS1zaGEyLW5pc3RwMjU2AAAASgAAACEA5oWREutSlY3/"
    "bH6cTwVQrWJS0sLDAlqBfcm9osW2heYAAAAhALjDGa+S+x9x3y8u+BvULLbM9AeGPESbc7twjRJUbWtc",
    /* host certificate of a nistp384 key, CA ed25519, no principals, valid forever */
    "AAAAKGVjZHNhLXNoYTItbmlzdHAzODQtY2VydC12MDFAb3BlbnNzaC5jb20AAAAg7U1MICJMuh1NZNdt0qU8k6cE"
    "keAUUQMEpnSrNC6sc4EAAAAIbmlzdHAzODQAAABhBLuT7qQ9SKDeV6R5wOWIga5ntqJzFzXdmRGqJz9rdu1PKoON"
    "9DnFUgoUtEtw5+2oG6ZBPv66UhuwX2zgdO3K6C98XCnhrfQF7tps/k625SfCUH9D2NBd9xefdlI6s/zL2wAAAAAA"
    "AAAAAAAAAgAAAAJoMgAAAAAAAAAAAAAAAP//////////AAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAA"
    "ACDLZBd08yG7kw6yaBx93fCCtjzzimcpgaFvENPwvDKJjwAAAFMAAAALc3NoLWVkMjU1MTkAAABAY5tFJS74nme4"
    "sQCnJdBHaWr65xyBX8lHq7SoygtDnTgXo1Jpa/HwrfxPhvtYWfGtONND4y8YAvftz31U4BtFBw==",
};
#define KH_NKEYS (sizeof(kh_keys_b64) / sizeof(kh_keys_b64[0]))

struct kh_key {
    uint8_t blob[2048];
    size_t len;
    char type[SF_NAME_MAX + 1];
    char fp[128];
    struct sf_cert *cert; /* host certificates */
};
static struct kh_key kh_keys[KH_NKEYS];

/* A throwaway CA (ed25519, made for this harness only) that re-signs fuzzed certificates. */
static const char fuzz_ca_text[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACCnB871WvDPh4fOFkmZWQKQWQEzGDjeeGCEwNSE47ZgJwAAAJAm72kzJu9p\n"
    "MwAAAAtzc2gtZWQyNTUxOQAAACCnB871WvDPh4fOFkmZWQKQWQEzGDjeeGCEwNSE47ZgJw\n"
    "AAAEDqKxEZEocf8Y70LITAaFbLSrdxsZwSG17fRX38PgkiBacHzvVa8M+Hh84WSZlZApBZ\n"
    "ATMYON54YITA1ITjtmAnAAAAB2Z1enotY2EBAgMEBQY=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";
static struct sf_privkey *fuzz_ca;
static struct sf_buf fuzz_ca_pub;

static void
keys_init(void)
{
    for (size_t i = 0; i < KH_NKEYS; i++) {
        struct kh_key *k = &kh_keys[i];
        struct sf_buf b;
        const uint8_t *t = NULL;
        size_t tlen = 0;

        k->len = b64_fixed(kh_keys_b64[i], k->blob, sizeof(k->blob));
        sf_buf_init_view(&b, k->blob, k->len);
        if (sf_buf_get_string(&b, &t, &tlen, SF_NAME_MAX) != 0) {
            abort();
        }
        memcpy(k->type, t, tlen);
        k->type[tlen] = '\0';
        if (sf_cert_is_type(k->type, tlen)) {
            const uint8_t *kb = NULL;
            size_t kblen = 0;

            if (sf_cert_from_blob_algs(k->blob, k->len, NULL, &k->cert) != 0) {
                abort();
            }
            kb = sf_cert_key_blob(k->cert, &kblen);
            if (sf_fingerprint_sha256(kb, kblen, k->fp, sizeof(k->fp)) != 0) {
                abort();
            }
        } else if (sf_fingerprint_sha256(k->blob, k->len, k->fp, sizeof(k->fp)) != 0) {
            abort();
        }
    }
    buf_make(&fuzz_ca_pub);
    if (sf_privkey_load((const uint8_t *)fuzz_ca_text, strlen(fuzz_ca_text), NULL, &fuzz_ca) != 0 ||
        sf_privkey_pubblob(fuzz_ca, &fuzz_ca_pub) != 0) {
        abort();
    }
}

/* ------------------------------------------------------------------------ */
/* 0..3: buffer getters, public keys, private key text, packets             */
/* ------------------------------------------------------------------------ */

static void
fuzz_buf(const uint8_t *d, size_t n)
{
    struct sf_buf b, sub, list;
    const uint8_t *p = NULL;
    size_t len = 0;
    char cstr[64];
    uint32_t v = 0;

    sf_buf_init_view(&b, d, n);
    while (sf_buf_len(&b) > 0) {
        uint8_t op = 0;
        if (sf_buf_get_u8(&b, &op) != 0) {
            break;
        }
        int r = 0;
        switch (op % 6) {
        case 0:
            r = sf_buf_get_string(&b, &p, &len, 1024);
            break;
        case 1:
            r = sf_buf_get_mpint_pos(&b, &p, &len, 1024);
            break;
        case 2:
            r = sf_buf_get_namelist(&b, &list, 1024);
            if (r == 0) {
                const char *name = NULL;
                while (sf_namelist_next(&list, &name, &len) == 1) {
                }
            }
            break;
        case 3:
            r = sf_buf_get_cstr(&b, cstr, sizeof(cstr));
            break;
        case 4:
            r = sf_buf_get_sub(&b, &sub, 4096);
            break;
        default:
            r = sf_buf_get_u32(&b, &v);
            break;
        }
        if (r != 0) {
            break;
        }
    }
}

static void
fuzz_pubkey(const uint8_t *d, size_t n)
{
    struct sf_pubkey *k = NULL;
    if (sf_pubkey_from_blob(d, n, &k) == 0) {
        static const uint8_t msg[] = "message";
        discard(sf_pubkey_verify(k, sf_pubkey_type(k), d, n, msg, sizeof(msg)));
        discard(sf_pubkey_verify(k, "rsa-sha2-512", d, n, msg, sizeof(msg)));
        sf_pubkey_free(k);
    }
}

/*
 * Private key file text (openssh-key-v1 armour, PEM, PKCS#8). A passphrase
 * is given only to traditional PEM encryption ("Proc-Type:", one MD5 round):
 * a PKCS#8 file names its own PBKDF2 iteration count, which OpenSSL does
 * not bound, and openssh-key-v1 decryption is target 5's.
 */
static void
fuzz_privkey(const uint8_t *d, size_t n)
{
    struct sf_privkey *k = NULL;
    struct sf_buf blob;
    char comment[256];
    bool has_comment = false;
    const char *pass = NULL;

    if (memmem(d, n, "Proc-Type:", 10) != NULL && memmem(d, n, "ENCRYPTED PRIVATE", 17) == NULL) {
        pass = FUZZ_PASSPHRASE;
    }
    buf_make(&blob);
    if (sf_privkey_load_comment(d, n, pass, &k, comment, sizeof(comment), &has_comment) == 0) {
        (void)sf_privkey_type(k);
        discard(sf_privkey_pubblob(k, &blob));
        sf_privkey_free(k);
    }
    sf_buf_reset(&blob);
    discard(sf_privkey_file_pubblob(d, n, &blob));
    sf_buf_free(&blob);
}

static void
fuzz_packets(const uint8_t *d, size_t n)
{
    static struct sf_tp tp;
    static int ready;
    struct sf_buf payload;
    uint8_t *room = NULL;

    if (!ready) {
        if (sf_tp_init(&tp) != 0) {
            return;
        }
        ready = 1;
    }
    tp.rxoff = tp.rxlen = tp.rxpkt = 0;
    tp.rxpeeked = false;
    size_t cap = sf_tp_rx_room(&tp, &room);
    size_t take = n < cap ? n : cap;
    memcpy(room, d, take);
    sf_tp_rx_commit(&tp, take);
    while (sf_tp_decode(&tp, &payload) == 1) {
    }
}

/* ------------------------------------------------------------------------ */
/* 4: OpenSSH certificates                                                  */
/* ------------------------------------------------------------------------ */

static void
cert_use(const struct sf_cert *c)
{
    const uint8_t *kb = NULL;
    char why[SF_CERT_WHY_MAX];
    size_t kblen = 0;
    size_t i;
    uint64_t after = sf_cert_valid_after(c);
    uint64_t before = sf_cert_valid_before(c);

    (void)sf_cert_type(c);
    (void)sf_cert_plain_type(c);
    (void)sf_cert_blob(c, &kblen);
    (void)sf_cert_ca_blob(c, &kblen);
    (void)sf_cert_key(c);
    (void)sf_cert_serial(c);
    (void)sf_cert_key_id(c);
    (void)sf_cert_kind(c);
    (void)sf_cert_ca_alg_ok(c, NULL);
    (void)sf_cert_sigalg_base(sf_cert_type(c));
    (void)sf_cert_alg_for_sigalg(sf_cert_ca_sigalg(c));
    for (i = 0; i <= sf_cert_nprincipals(c); i++) {
        (void)sf_cert_principal(c, i);
    }
    for (i = 0; i <= sf_cert_ncritical(c); i++) {
        (void)sf_cert_critical_name(c, i);
    }
    kb = sf_cert_key_blob(c, &kblen);
    (void)sf_cert_certifies(c, kb, kblen);
    /* Each end of the validity window and a principal from the certificate itself. */
    discard(sf_cert_check(c, SF_CERT_HOST, "example.com", after, why, sizeof(why)));
    discard(sf_cert_check(c, SF_CERT_USER, sf_cert_principal(c, 0), before, why, sizeof(why)));
    discard(sf_cert_check(c, SF_CERT_USER, NULL, before - 1, why, sizeof(why)));
    discard(sf_cert_check(c, SF_CERT_HOST, NULL, 1700000000, NULL, 0));
}

/*
 * Input: mode byte, then a certificate blob. Mode bit 0: the input is the
 * certificate up to (without) its CA key; the harness appends the fuzz CA's
 * key and a valid signature, so the checks after the signature are reached
 * with fuzzed fields.
 */
static void
fuzz_cert(const uint8_t *d, size_t n)
{
    struct sf_cert *c = NULL;
    struct sf_pubkey *k = NULL;
    struct sf_buf blob, sig, plain;
    const char *tname = NULL;
    unsigned bits = 0;
    uint8_t mode;

    if (n == 0) {
        return;
    }
    mode = d[0];
    d++;
    n--;
    buf_make(&blob);
    buf_make(&sig);
    buf_make(&plain);
    if ((mode & 1) != 0) {
        if (sf_buf_put_bytes(&blob, d, n) != 0 ||
            sf_buf_put_string(&blob, sf_buf_ptr(&fuzz_ca_pub), sf_buf_len(&fuzz_ca_pub)) != 0 ||
            sf_privkey_sign(fuzz_ca, "ssh-ed25519", sf_buf_ptr(&blob), sf_buf_len(&blob), &sig) != 0 ||
            sf_buf_put_string(&blob, sf_buf_ptr(&sig), sf_buf_len(&sig)) != 0) {
            goto out;
        }
    } else if (sf_buf_put_bytes(&blob, d, n) != 0) {
        goto out;
    }
    if (sf_cert_from_blob_algs(sf_buf_ptr(&blob), sf_buf_len(&blob), NULL, &c) == 0) {
        cert_use(c);
        sf_cert_free(c);
        c = NULL;
        /* Only worth the second signature check once the first passed. */
        if (sf_cert_from_blob(sf_buf_ptr(&blob), sf_buf_len(&blob), &c) == 0) {
            sf_cert_free(c);
            c = NULL;
        }
    }
    /* The other readers of certificate blobs: key.c, and pubfile.c's structure check. */
    if (sf_pubkey_from_blob(sf_buf_ptr(&blob), sf_buf_len(&blob), &k) == 0) {
        (void)sf_pubkey_sigalg_ok(k, "ssh-ed25519-cert-v01@openssh.com");
        (void)sf_pubkey_cert(k);
        sf_pubkey_free(k);
    }
    discard(sf_key_bits(sf_buf_ptr(&blob), sf_buf_len(&blob), &bits, &tname));
    discard(sf_key_plain_blob(sf_buf_ptr(&blob), sf_buf_len(&blob), &plain));
out:
    sf_buf_free(&blob);
    sf_buf_free(&sig);
    sf_buf_free(&plain);
}

/* ------------------------------------------------------------------------ */
/* 5: openssh-key-v1 payloads                                               */
/* ------------------------------------------------------------------------ */

static bool fuzz_kdf; /* SSHFLOW_FUZZ_KDF=1: let the bcrypt KDF run (slow) */

/*
 * The rounds an openssh-key-v1 payload asks bcrypt for (0 if it does not
 * say); read here only to decide whether the KDF may run.
 */
static uint32_t
ossh_rounds(const uint8_t *d, size_t n)
{
    static const char magic[] = "openssh-key-v1";
    struct sf_buf b, opts;
    const uint8_t *p = NULL;
    size_t len = 0;
    uint32_t rounds = 0;

    sf_buf_init_view(&b, d, n);
    if (sf_buf_skip(&b, sizeof(magic)) != 0 ||
        sf_buf_get_string(&b, &p, &len, SF_NAME_MAX) != 0 || /* cipher */
        sf_buf_get_string(&b, &p, &len, SF_NAME_MAX) != 0 || /* kdf */
        len != 6 || memcmp(p, "bcrypt", 6) != 0 ||
        sf_buf_get_sub(&b, &opts, 1024) != 0 ||
        sf_buf_get_string(&opts, &p, &len, 1024) != 0 || /* salt */
        sf_buf_get_u32(&opts, &rounds) != 0) {
        return 0;
    }
    return rounds;
}

/*
 * Input: flags byte, then the decoded openssh-key-v1 payload, which the
 * harness wraps in the armour (base64, 70 columns) so libFuzzer mutates the
 * binary structure. Passphrase: none, or "" with flag bit 0 (both stop
 * before the KDF, after every length check). Only with SSHFLOW_FUZZ_KDF=1
 * in the environment does a file asking at most FUZZ_BCRYPT_ROUNDS rounds
 * get the seeds' passphrase "fuzz" and run the KDF and the decryption: one
 * bcrypt round costs ~0.3 s of CPU in the sanitizer build, so that is a
 * separate, slow run (docs/fuzzing.md).
 */
static void
fuzz_ossh(const uint8_t *d, size_t n)
{
    static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
    static const char end[] = "-----END OPENSSH PRIVATE KEY-----\n";
    struct sf_privkey *k = NULL;
    struct sf_buf blob;
    char *text = NULL;
    char *b64 = NULL;
    char comment[SF_KEYFILE_COMMENT_MAX + 1];
    const char *pass = NULL;
    bool has_comment = false;
    size_t b64len, tlen = 0, cap;
    uint32_t rounds;
    uint8_t flags;

    if (n == 0) {
        return;
    }
    flags = d[0];
    d++;
    n--;
    rounds = ossh_rounds(d, n);
    if ((flags & 1) != 0) {
        pass = "";
    } else if (fuzz_kdf && rounds <= FUZZ_BCRYPT_ROUNDS) {
        pass = FUZZ_PASSPHRASE;
    }
    b64len = (n + 2) / 3 * 4;
    cap = sizeof(begin) + sizeof(end) + b64len + b64len / 70 + 2;
    if ((b64 = sf_alloc(b64len + 1)) == NULL || (text = sf_alloc(cap)) == NULL ||
        sf_base64_encode(d, n, true, b64, b64len + 1) != 0) {
        goto out;
    }
    memcpy(text, begin, sizeof(begin) - 1);
    tlen = sizeof(begin) - 1;
    for (size_t i = 0; i < b64len; i += 70) {
        size_t take = SF_MIN((size_t)70, b64len - i);

        memcpy(text + tlen, b64 + i, take);
        tlen += take;
        text[tlen++] = '\n';
    }
    memcpy(text + tlen, end, sizeof(end) - 1);
    tlen += sizeof(end) - 1;

    buf_make(&blob);
    if (sf_privkey_load_comment((const uint8_t *)text, tlen, pass, &k, comment, sizeof(comment),
                                &has_comment) == 0) {
        discard(sf_privkey_pubblob(k, &blob));
        sf_privkey_free(k);
    }
    sf_buf_reset(&blob);
    discard(sf_privkey_file_pubblob((const uint8_t *)text, tlen, &blob));
    sf_buf_free(&blob);
out:
    sf_free(b64);
    sf_free(text);
}

/* ------------------------------------------------------------------------ */
/* 6: public key files                                                      */
/* ------------------------------------------------------------------------ */

/*
 * A .pub file (one line or RFC 4716), and the same bytes as a "*-cert.pub"
 * file read by cert.c; whatever parses goes through the blob readers.
 */
static void
fuzz_pubfile(const uint8_t *d, size_t n)
{
    struct sf_buf blob, plain;
    struct sf_pubkey *k = NULL;
    struct sf_cert *c = NULL;
    char comment[128];
    char fp[128];
    const char *tname = NULL;
    unsigned bits = 0;

    buf_make(&blob);
    buf_make(&plain);
    if (sf_pubfile_parse(d, n, &blob, comment, sizeof(comment)) == 0) {
        const uint8_t *b = sf_buf_ptr(&blob);
        size_t len = sf_buf_len(&blob);

        discard(sf_key_bits(b, len, &bits, &tname));
        discard(sf_key_plain_blob(b, len, &plain));
        discard(sf_fingerprint_md5(b, len, fp, sizeof(fp)));
        discard(sf_fingerprint_sha256(b, len, fp, sizeof(fp)));
        if (sf_pubkey_from_blob(b, len, &k) == 0) {
            sf_pubkey_free(k);
        }
    }
    /* A comment buffer too small for most comments. */
    sf_buf_reset(&blob);
    discard(sf_pubfile_parse(d, n, &blob, comment, 4));
    write_file(pub_path, d, n);
    if (sf_cert_load_file(pub_path, &c) == 0) {
        sf_cert_free(c);
    }
    sf_buf_free(&blob);
    sf_buf_free(&plain);
}

/* ------------------------------------------------------------------------ */
/* 7: ssh-agent replies                                                     */
/* ------------------------------------------------------------------------ */

/* A flow whose reads replay the input (chunk bytes at most per read) and whose writes vanish. */
struct replay {
    const uint8_t *p;
    size_t n;
    size_t chunk;
};

static ssize_t
replay_read(void *ctx, void *buf, size_t len, sshflow_error *err)
{
    struct replay *rp = ctx;
    size_t take = SF_MIN(SF_MIN(len, rp->n), rp->chunk);

    (void)err;
    memcpy(buf, rp->p, take);
    rp->p += take;
    rp->n -= take;
    return (ssize_t)take; /* 0 at the end of the input: the agent hung up */
}

static int
replay_write(void *ctx, const void *buf, size_t len, sshflow_error *err)
{
    (void)ctx;
    (void)buf;
    (void)len;
    (void)err;
    return 0;
}

static const sshflow_flow_ops replay_ops = {
    replay_read, replay_write, NULL, NULL, NULL, NULL, NULL,
};

/*
 * Input: flags byte (bits 0-3: bytes per read, 0 = all; bits 4-5: the
 * signature algorithm asked for; bit 6: a second list request at the end),
 * then the agent's replies: to the list request, then to a sign request
 * for the first key listed (or a fixed ed25519 key).
 */
static void
fuzz_agent(const uint8_t *d, size_t n)
{
    static const char *const sigalgs[] = { "ssh-ed25519", "rsa-sha2-256", "rsa-sha2-512",
                                           "ecdsa-sha2-nistp256" };
    static const uint8_t data[] = "session id and userauth request";
    struct replay rp;
    struct sf_agent *a = NULL;
    struct sf_agent_id *ids = NULL;
    struct sf_buf sig;
    sshflow_flow *f = NULL;
    size_t nids = 0;
    uint8_t flags;

    if (n == 0) {
        return;
    }
    flags = d[0];
    rp.p = d + 1;
    rp.n = n - 1;
    rp.chunk = (flags & 15) != 0 ? (size_t)(flags & 15) : SIZE_MAX;
    if ((f = sshflow_flow_new(&replay_ops, &rp)) == NULL ||
        sf_agent_from_flow(f, FUZZ_AGENT_TIMEOUT, &a) != 0) {
        return; /* f is freed in both cases */
    }
    buf_make(&sig);
    discard(sf_agent_list(a, &ids, &nids));
    if (nids > 0) {
        discard(sf_agent_sign(a, ids[0].blob, ids[0].bloblen, sigalgs[(flags >> 4) & 3], data,
                            sizeof(data), &sig));
    } else {
        discard(sf_agent_sign(a, kh_keys[0].blob, kh_keys[0].len, sigalgs[(flags >> 4) & 3], data,
                            sizeof(data), &sig));
    }
    (void)sf_agent_why(a);
    sf_agent_ids_free(ids, nids);
    ids = NULL;
    nids = 0;
    if ((flags & 0x40) != 0) {
        discard(sf_agent_list(a, &ids, &nids));
        sf_agent_ids_free(ids, nids);
    }
    sf_buf_free(&sig);
    sf_agent_free(a);
}

/* ------------------------------------------------------------------------ */
/* 8: known_hosts files                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Input: two header bytes, then the known_hosts file (written to the
 * scratch directory). Byte 0: bit 0 policy (accept-new appends to the
 * file), bits 1-2 the host, bit 3 the port (22 or 2222), bits 4-6 the key
 * looked up (kh_keys, modulo), bit 7 the time (inside or after the
 * certificates' windows). Byte 1: size of the key type list for
 * sf_knownhosts_types (1..256, an exact-size heap buffer).
 */
static void
fuzz_knownhosts(const uint8_t *d, size_t n)
{
    static const char *const hosts[] = { "example.com", "10.0.0.1", "Other.Example.ORG", "h" };
    enum sshflow_hostkey_policy policy;
    const struct kh_key *k;
    const char *host;
    sshflow_error err;
    uint16_t port;
    uint64_t now;
    char *types = NULL;
    size_t typesz;

    if (n < 2) {
        return;
    }
    policy = (d[0] & 1) != 0 ? SSHFLOW_HOSTKEY_ACCEPT_NEW : SSHFLOW_HOSTKEY_STRICT;
    host = hosts[(d[0] >> 1) & 3];
    port = (d[0] & 8) != 0 ? 2222 : 22;
    k = &kh_keys[((d[0] >> 4) & 7) % KH_NKEYS];
    now = (d[0] & 0x80) != 0 ? 2300000000u : 1700000000u;
    typesz = (size_t)d[1] + 1;
    write_file(kh_path, d + 2, n - 2);
    memset(&err, 0, sizeof(err));
    if (k->cert != NULL) {
        discard(sf_knownhosts_check_cert(kh_path, policy, host, port, k->cert, now, &err));
    } else {
        discard(sf_knownhosts_check(kh_path, policy, host, port, k->type, k->blob, k->len, k->fp,
                                  &err));
    }
    if ((types = sf_alloc(typesz)) == NULL) {
        abort();
    }
    sf_knownhosts_types(kh_path, host, port, types, typesz);
    if (strlen(types) >= typesz) {
        abort(); /* not NUL-terminated inside the buffer (ASan would have said first) */
    }
    sf_free(types);
}

/* ------------------------------------------------------------------------ */
/* 9, 10: KEM decapsulation (and encapsulation to a fuzzed public key)      */
/* ------------------------------------------------------------------------ */

static uint8_t *ntru_pk, *ntru_sk, *mlkem_pk, *mlkem_sk;

static void
kem_init(void)
{
    static const uint8_t dseed[32] = { 1 }, zseed[32] = { 2 };
    uint32_t ctr = 1;

    ntru_pk = exact_copy(NULL, 0, SF_SNTRUP761_PUBLICKEY_BYTES);
    ntru_sk = exact_copy(NULL, 0, SF_SNTRUP761_SECRETKEY_BYTES);
    mlkem_pk = exact_copy(NULL, 0, SF_MLKEM768_PUBLICKEY_BYTES);
    mlkem_sk = exact_copy(NULL, 0, SF_MLKEM768_SECRETKEY_BYTES);
    if (sf_sntrup761_keypair(ntru_pk, ntru_sk, counter_rng, &ctr) != 0 ||
        sf_mlkem768_keypair_derand(mlkem_pk, mlkem_sk, dseed, zseed) != 0) {
        abort();
    }
}

/* sk ^ d[n] (the bytes of the input past the ciphertext), as an exact-size heap copy. */
static uint8_t *
sk_mix(const uint8_t *sk, size_t sklen, const uint8_t *d, size_t n)
{
    uint8_t *p = exact_copy(sk, sklen, sklen);

    for (size_t i = 0; i < n && i < sklen; i++) {
        p[i] ^= d[i];
    }
    return p;
}

/*
 * Input: mode byte, then bytes. Mode bit 0 clear: the bytes are the
 * ciphertext (zero-padded or cut to the fixed size); any bytes past it are
 * XORed into the secret key (a corrupted key must not make the code read
 * out of bounds either). Bit 0 set: the bytes are a public key to
 * encapsulate to.
 */
static void
fuzz_sntrup(const uint8_t *d, size_t n)
{
    uint8_t *ct = NULL, *sk = NULL, *pk = NULL;
    uint8_t ss[SF_SNTRUP761_SHARED_BYTES];
    uint32_t ctr = 7;

    if (n == 0) {
        return;
    }
    if ((d[0] & 1) == 0) {
        ct = exact_copy(d + 1, n - 1, SF_SNTRUP761_CIPHERTEXT_BYTES);
        sk = n - 1 > SF_SNTRUP761_CIPHERTEXT_BYTES
                 ? sk_mix(ntru_sk, SF_SNTRUP761_SECRETKEY_BYTES,
                          d + 1 + SF_SNTRUP761_CIPHERTEXT_BYTES,
                          n - 1 - SF_SNTRUP761_CIPHERTEXT_BYTES)
                 : exact_copy(ntru_sk, SF_SNTRUP761_SECRETKEY_BYTES, SF_SNTRUP761_SECRETKEY_BYTES);
        discard(sf_sntrup761_dec(ss, ct, sk));
    } else {
        pk = exact_copy(d + 1, n - 1, SF_SNTRUP761_PUBLICKEY_BYTES);
        ct = exact_copy(NULL, 0, SF_SNTRUP761_CIPHERTEXT_BYTES);
        discard(sf_sntrup761_enc(ct, ss, pk, counter_rng, &ctr));
    }
    sf_free(ct);
    sf_free(sk);
    sf_free(pk);
}

static void
fuzz_mlkem(const uint8_t *d, size_t n)
{
    static const uint8_t m[32] = { 3 };
    uint8_t *ct = NULL, *sk = NULL, *pk = NULL;
    uint8_t ss[SF_MLKEM768_SHARED_BYTES];

    if (n == 0) {
        return;
    }
    if ((d[0] & 1) == 0) {
        ct = exact_copy(d + 1, n - 1, SF_MLKEM768_CIPHERTEXT_BYTES);
        sk = n - 1 > SF_MLKEM768_CIPHERTEXT_BYTES
                 ? sk_mix(mlkem_sk, SF_MLKEM768_SECRETKEY_BYTES,
                          d + 1 + SF_MLKEM768_CIPHERTEXT_BYTES,
                          n - 1 - SF_MLKEM768_CIPHERTEXT_BYTES)
                 : exact_copy(mlkem_sk, SF_MLKEM768_SECRETKEY_BYTES, SF_MLKEM768_SECRETKEY_BYTES);
        discard(sf_mlkem768_decaps(ss, ct, sk));
    } else {
        pk = exact_copy(d + 1, n - 1, SF_MLKEM768_PUBLICKEY_BYTES);
        ct = exact_copy(NULL, 0, SF_MLKEM768_CIPHERTEXT_BYTES);
        discard(sf_mlkem768_encaps_derand(ct, ss, pk, m));
    }
    sf_free(ct);
    sf_free(sk);
    sf_free(pk);
}

/* ------------------------------------------------------------------------ */
/* 11: key exchange: the server's values                                    */
/* ------------------------------------------------------------------------ */

#define KEX_MAX_METHODS 32
static const struct sf_kex_method *kex_methods[KEX_MAX_METHODS];
static struct sf_kex_state *kex_states[KEX_MAX_METHODS];
static size_t kex_nmethods;

static void
kex_setup(void)
{
    const char *p = sf_kex_all_list;

    while (*p != '\0' && kex_nmethods < KEX_MAX_METHODS) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);

        if ((kex_methods[kex_nmethods] = sf_kex_method_find(p, len)) == NULL) {
            abort();
        }
        kex_nmethods++;
        p += len + (e != NULL ? 1 : 0);
    }
}

/*
 * Input: method byte (index into sf_kex_all_list, modulo), then the server's
 * message from its value on: string Q_S / S_REPLY or mpint f, after
 * client_init; for group exchange mpint p, mpint g (client_group after
 * client_request) and then mpint f. The ephemeral key pair of a method is
 * made once and kept until a reply is accepted (client_finish drops it),
 * since making one (sntrup761, 8192-bit DH) costs far more than the parse.
 */
static void
fuzz_kex(const uint8_t *d, size_t n)
{
    static struct sf_buf out, hashpart, k;
    static bool ready;
    const struct sf_kex_method *m;
    struct sf_kex_state *st = NULL;
    struct sf_buf msg;
    size_t i;

    if (n == 0) {
        return;
    }
    if (!ready) {
        buf_make(&out);
        buf_make(&hashpart);
        buf_make(&k);
        ready = true;
    }
    i = d[0] % kex_nmethods;
    m = kex_methods[i];
    sf_buf_reset(&out);
    sf_buf_reset(&hashpart);
    sf_buf_reset(&k);
    if (m->client_request != NULL) {
        if (m->client_request(&st, SF_KEX_GEX_PREF, &out) != 0) {
            abort();
        }
        sf_buf_init_view(&msg, d + 1, n - 1);
        if (m->client_group(st, &msg, &hashpart, &out) == 0) {
            (void)m->client_finish(st, &msg, &hashpart, &k);
        }
        m->free(st);
        return;
    }
    if (kex_states[i] == NULL && m->client_init(&kex_states[i], &out) != 0) {
        abort();
    }
    sf_buf_init_view(&msg, d + 1, n - 1);
    if (m->client_finish(kex_states[i], &msg, &hashpart, &k) == 0) {
        m->free(kex_states[i]);
        kex_states[i] = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* zlib: one inflating stream fed packet after packet                       */
/* ------------------------------------------------------------------------ */

/*
 * Input: a sequence of (u16 big-endian length, that many bytes) packets fed
 * to one receive stream, as a peer's compressed payloads would be. The
 * output bound is small so that "inflates beyond the limit" is reached.
 */
static void fuzz_zlib(const uint8_t *d, size_t n)
{
    static uint8_t out[4096];
    struct sf_comp *z = NULL;
    size_t off = 0;

    if (sf_comp_new(&z, false) != 0) {
        return;
    }
    while (off + 2 <= n) {
        size_t len = ((size_t)d[off] << 8) | d[off + 1];
        off += 2;
        if (len > n - off) {
            len = n - off;
        }
        size_t got = 0;
        if (len == 0 || sf_comp_inflate(z, d + off, len, out, sizeof(out), &got) != 0) {
            break;
        }
        if (got == 0 || got > sizeof(out)) {
            abort(); /* the contract: a payload is never empty and never over max */
        }
        off += len;
    }
    sf_comp_free(z);
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */
/* ------------------------------------------------------------------------ */

struct target {
    const char *name;
    void (*run)(const uint8_t *d, size_t n);
};

/* The index is the first input byte; never renumber (the corpora depend on it). */
static const struct target targets[] = {
    { "buf", fuzz_buf },               /* 0 */
    { "pubkey", fuzz_pubkey },         /* 1 */
    { "privkey", fuzz_privkey },       /* 2 */
    { "packets", fuzz_packets },       /* 3 */
    { "cert", fuzz_cert },             /* 4 */
    { "ossh", fuzz_ossh },             /* 5 */
    { "pubfile", fuzz_pubfile },       /* 6 */
    { "agent", fuzz_agent },           /* 7 */
    { "knownhosts", fuzz_knownhosts }, /* 8 */
    { "sntrup761", fuzz_sntrup },      /* 9 */
    { "mlkem768", fuzz_mlkem },        /* 10 */
    { "kex", fuzz_kex },               /* 11 */
    { "zlib", fuzz_zlib },             /* 12 */
};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

static int fixed_target = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *want = getenv("SSHFLOW_FUZZ_TARGET");

    (void)argc;
    (void)argv;
    if (want != NULL && want[0] != '\0') {
        for (size_t i = 0; i < NTARGETS; i++) {
            if (strcmp(want, targets[i].name) == 0) {
                fixed_target = (int)i;
            }
        }
        if (fixed_target < 0) {
            fprintf(stderr, "fuzz_parsers: unknown SSHFLOW_FUZZ_TARGET \"%s\"; targets:", want);
            for (size_t i = 0; i < NTARGETS; i++) {
                fprintf(stderr, " %s", targets[i].name);
            }
            fprintf(stderr, "\n");
            exit(2);
        }
    }
    want = getenv("SSHFLOW_FUZZ_KDF");
    fuzz_kdf = want != NULL && strcmp(want, "1") == 0;
    scratch_make();
    keys_init();
    kem_init();
    kex_setup();
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t t;

    if (size == 0) {
        return 0;
    }
    t = fixed_target >= 0 ? (size_t)fixed_target : data[0];
    if (t < NTARGETS) {
        targets[t].run(data + 1, size - 1);
    }
    return 0;
}
