/*
 * src/knownhosts.c -- OpenSSH known_hosts files: look-up, key types, and
 * appending a new host (accept-new).
 *
 * Format (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"), one entry per line:
 *
 *     [@revoked|@cert-authority] hostpatterns keytype base64-blob [comment]
 *
 *   hostpatterns  comma-separated; '*' and '?' wildcards; '!' negates (a
 *                 negated match makes the whole line not apply); a non-22
 *                 port is written "[host]:port"; or one hashed name
 *                 "|1|base64(salt)|base64(HMAC-SHA1(salt, name))".
 *   '#' comments and blank lines are ignored, and so is every line we cannot
 *   parse (as OpenSSH does).
 *   @cert-authority  the key is a CA: a host certificate it signed is
 *                 accepted for the hosts the patterns match (sshd(8)).
 *   @revoked      the key must never be accepted: as a host key, as the key
 *                 inside a host certificate, or as the CA that signed one. A
 *                 revoked certificate revokes the key it certifies.
 *
 * Host certificates (OpenSSH sshconnect.c check_host_key()): accepted if a
 * matching @cert-authority line holds the CA key and the certificate is a
 * host certificate, valid now, naming the host among its principals (an
 * empty list names every host), without critical options, and signed with
 * an algorithm of the CASignatureAlgorithms default. Otherwise (CA unknown,
 * or the certificate fails a check) it is downgraded to its plain key,
 * which is then checked like any other: known, changed, or unknown (and
 * accept-new appends the plain key). A revocation is never downgraded.
 *
 * Owns: reading the file (whole, bounded by SF_KNOWNHOSTS_FILE_MAX), the host
 * pattern matcher, the hashed-name check, the strict / accept-new decision
 * and the locked append. Must never: talk to the network, interpret key
 * material itself (keys are compared as blobs; only the type name in front
 * is read, through sf_buf; certificates are cert.c's), rewrite or truncate
 * lines that were there before, or follow the lookup with a decision made
 * on data read outside the lock when it writes.
 */
#include "knownhosts.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "buf.h"
#include "cert.h"
#include "key.h"

#define KH_DEFAULT_PORT 22
#define KH_HOST_MAX 1025                 /* NI_MAXHOST */
#define KH_NAME_MAX (KH_HOST_MAX + 16)   /* "[" host "]:" port */
#define KH_HASH_MAGIC "|1|"              /* the only hashed-name format OpenSSH writes */
#define KH_HASH_LEN 20                   /* HMAC-SHA1 output */
#define KH_SALT_MAX 64                   /* OpenSSH writes 20-byte salts */
#define KH_B64_SLACK 4                   /* decoders may want room for a whole quantum */
#define KH_TYPES_MSG_MAX 256             /* known types quoted in messages */
#define KH_PWBUF_MAX 16384               /* getpwuid_r scratch */
#define KH_READ_CHUNK 8192
#define KH_RSA_MODULUS_MIN 128           /* bytes: 1024 bits, as key.c */
#define KH_RSA_MODULUS_MAX 2049          /* bytes: 16384 bits plus a sign byte */
#define KH_MPINT_E_MAX 64
#define KH_WHY_MAX 320                   /* why a host certificate was not accepted */

/* One blank-separated field of a line: [p, p + n). */
struct kh_span {
    const char *p;
    size_t n;
};

/* One look-up over a file: the query, what was found, and scratch space. */
struct kh_scan {
    /* Query. keytype NULL: only collect key types. */
    const char *name; /* lower-cased "host" or "[host]:port" */
    size_t namelen;
    const char *keytype;
    const uint8_t *blob;
    size_t bloblen;
    const uint8_t *cablob; /* a host certificate's CA key, or NULL */
    size_t cablobsz;
    /* Results: first line (1-based) of each kind, 0 if none. */
    unsigned long found_line;      /* the same key */
    unsigned long changed_line;    /* a different key of the same type */
    unsigned long other_line;      /* a key of another type */
    unsigned long revoked_line;    /* the same key (or a certificate of it) under @revoked */
    unsigned long ca_line;         /* the CA key under @cert-authority */
    unsigned long ca_revoked_line; /* the CA key under @revoked */
    bool ca_seen;                  /* some @cert-authority line applies to the host */
    char other_type[SF_NAME_MAX + 1];
    char *types; /* key types seen for the host (comma list), or NULL */
    size_t typessz;
    bool types_full;
    /* Scratch, freed by scan_free. */
    EVP_MAC *mac;
    EVP_MAC_CTX *macctx;
    uint8_t *kbuf; /* SF_KEYBLOB_MAX + KH_B64_SLACK */
};

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
span_eq(struct kh_span f, const char *s)
{
    size_t n = strlen(s);

    return f.n == n && memcmp(f.p, s, n) == 0;
}


/* Fill err for a failed file operation; keeps errno in err->sys_errno. */
static int
file_error(sshflow_error *err, int e, const char *what, const char *path)
{
    char tmp[128];

    tmp[0] = '\0';
    sf_err_set(err, SF_ERR_FILE, "cannot %s known_hosts file %s: %s", what, path,
               sf_errno_text(e, tmp, sizeof(tmp)));
    if (err != NULL) {
        err->sys_errno = e;
    }
    return SF_ERR_FILE;
}

/* ------------------------------------------------------------------------ */
/* Names and patterns                                                       */
/* ------------------------------------------------------------------------ */

int
sf_knownhosts_path(const char *path, char *out, size_t outsz)
{
    struct passwd pw;
    struct passwd *res = NULL;
    const char *home = NULL;
    char *pwbuf = NULL;
    int n;
    int r = SF_ERR_INVALID;

    if (out == NULL || outsz == 0) {
        return SF_ERR_INVALID;
    }
    out[0] = '\0';
    if (path != NULL) {
        if (path[0] == '\0') {
            goto out;
        }
        n = snprintf(out, outsz, "%s", path);
        if (n < 0 || (size_t)n >= outsz) {
            out[0] = '\0';
            goto out;
        }
        r = 0;
        goto out;
    }
    home = getenv("HOME");
    if (home == NULL || home[0] == '\0') {
        if ((pwbuf = sf_alloc(KH_PWBUF_MAX)) == NULL) {
            r = SF_ERR_NOMEM;
            goto out;
        }
        if (getpwuid_r(getuid(), &pw, pwbuf, KH_PWBUF_MAX, &res) != 0 || res == NULL ||
            pw.pw_dir == NULL || pw.pw_dir[0] == '\0') {
            goto out;
        }
        home = pw.pw_dir;
    }
    n = snprintf(out, outsz, "%s/.ssh/known_hosts", home);
    if (n < 0 || (size_t)n >= outsz) {
        out[0] = '\0';
        goto out;
    }
    r = 0;
out:
    sf_free(pwbuf);
    return r;
}

/*
 * The name looked up in the file: host lower-cased, as "[host]:port" when
 * the port is not 22 (OpenSSH's put_host_port(); port 0 means 22).
 */
static int
lookup_name(const char *host, uint16_t port, char *out, size_t outsz)
{
    size_t hl = strnlen(host, KH_HOST_MAX + 1);
    size_t i;
    int n;

    if (hl == 0 || hl > KH_HOST_MAX) {
        return SF_ERR_INVALID;
    }
    if (port == 0 || port == KH_DEFAULT_PORT) {
        n = snprintf(out, outsz, "%s", host);
    } else {
        n = snprintf(out, outsz, "[%s]:%u", host, (unsigned)port);
    }
    if (n < 0 || (size_t)n >= outsz) {
        return SF_ERR_INVALID;
    }
    for (i = 0; out[i] != '\0'; i++) {
        out[i] = ascii_lower(out[i]);
    }
    return 0;
}

/*
 * True if host can be written into a known_hosts line as a plain name:
 * nothing that the format treats specially (blanks, pattern characters,
 * list separators, brackets, hash/comment/marker leaders, control bytes).
 */
static bool
host_writable(const char *host)
{
    const unsigned char *p = (const unsigned char *)host;

    if (*p == '\0') {
        return false;
    }
    for (; *p != '\0'; p++) {
        if (*p <= ' ' || *p == 0x7f || strchr(",*?![]|#@\\", *p) != NULL) {
            return false;
        }
    }
    return true;
}

/* A key type name we are willing to write: 1..SF_NAME_MAX printable ASCII, no blanks. */
static bool
keytype_writable(const char *t)
{
    size_t i;

    for (i = 0; t[i] != '\0'; i++) {
        if (t[i] <= ' ' || t[i] >= 0x7f || i >= SF_NAME_MAX) {
            return false;
        }
    }
    return i > 0;
}

/*
 * The shape of a key blob of a type we support, so that a truncated or
 * padded key is refused like OpenSSH's sshkey_read() refuses it. Fields are
 * checked for length only; no key material is interpreted.
 *
 *   ssh-ed25519 (RFC 8709 s4):    string "ssh-ed25519", string key[32]
 *   ecdsa-sha2-* (RFC 5656 s3.1): string type, string curve, string Q
 *                                 (0x04 || X || Y)
 *   ssh-rsa (RFC 4253 s6.6):      string "ssh-rsa", mpint e, mpint n
 */
static int
blob_shape(const uint8_t *blob, size_t len, char *type, size_t typesz)
{
    static const struct {
        const char *type;
        const char *curve;
        size_t qlen;
    } curves[] = {
        { "ecdsa-sha2-nistp256", "nistp256", 65 },
        { "ecdsa-sha2-nistp384", "nistp384", 97 },
        { "ecdsa-sha2-nistp521", "nistp521", 133 },
    };
    struct sf_buf b;
    const uint8_t *p = NULL;
    size_t n = 0;
    size_t i;
    int r;

    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_cstr(&b, type, typesz)) != 0) {
        return r;
    }
    if (strcmp(type, "ssh-ed25519") == 0) {
        if ((r = sf_buf_get_string(&b, &p, &n, 32)) != 0) {
            return r;
        }
        if (n != 32) {
            return SF_ERR_BAD_FORMAT;
        }
        return sf_buf_expect_end(&b);
    }
    if (strcmp(type, "ssh-rsa") == 0) {
        if ((r = sf_buf_get_mpint_pos(&b, &p, &n, KH_MPINT_E_MAX)) != 0) {
            return r;
        }
        if (n == 0) {
            return SF_ERR_BAD_FORMAT;
        }
        if ((r = sf_buf_get_mpint_pos(&b, &p, &n, KH_RSA_MODULUS_MAX)) != 0) {
            return r;
        }
        if (n < KH_RSA_MODULUS_MIN) {
            return SF_ERR_BAD_FORMAT;
        }
        return sf_buf_expect_end(&b);
    }
    for (i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        char curve[16];

        if (strcmp(type, curves[i].type) != 0) {
            continue;
        }
        if ((r = sf_buf_get_cstr(&b, curve, sizeof(curve))) != 0 ||
            (r = sf_buf_get_string(&b, &p, &n, curves[i].qlen)) != 0) {
            return r;
        }
        if (strcmp(curve, curves[i].curve) != 0 || n != curves[i].qlen || p[0] != 0x04) {
            return SF_ERR_BAD_FORMAT;
        }
        return sf_buf_expect_end(&b);
    }
    return SF_ERR_KEY_TYPE;
}

int
sf_knownhosts_blob_check(const uint8_t *blob, size_t len, char *type, size_t typesz)
{
    int r = blob_shape(blob, len, type, typesz);

    if (r != 0 && r != SF_ERR_KEY_TYPE && typesz > 0) {
        type[0] = '\0';
    }
    return r;
}

/*
 * Glob match of name[nn] against pattern p[pn] ('*' any run, '?' one
 * character), case-insensitive in the pattern (name is already lower-case).
 * Iterative with a single backtrack point: O(nn * pn) worst case, no
 * recursion, so hostile patterns cannot blow the stack or take forever.
 */
static bool
glob_match(const char *name, size_t nn, const char *p, size_t pn)
{
    size_t ni = 0;
    size_t pi = 0;
    size_t star_p = SIZE_MAX;
    size_t star_n = 0;

    while (ni < nn) {
        if (pi < pn && p[pi] == '*') {
            star_p = pi++;
            star_n = ni;
            continue;
        }
        if (pi < pn && (p[pi] == '?' || ascii_lower(p[pi]) == name[ni])) {
            pi++;
            ni++;
            continue;
        }
        if (star_p == SIZE_MAX) {
            return false;
        }
        /* Let the last '*' swallow one more character and retry. */
        pi = star_p + 1;
        ni = ++star_n;
    }
    while (pi < pn && p[pi] == '*') {
        pi++;
    }
    return pi == pn;
}

/*
 * OpenSSH's match_hostname(): returns 1 if a positive pattern of the comma
 * list matches and no negated one does, -1 if a negated ('!') pattern
 * matches (the line then does not apply at all), 0 if nothing matches.
 */
static int
match_list(const char *name, size_t namelen, struct kh_span list)
{
    size_t i = 0;
    int got = 0;

    while (i < list.n) {
        size_t start = i;
        const char *pat = NULL;
        size_t plen = 0;
        bool neg = false;

        while (i < list.n && list.p[i] != ',') {
            i++;
        }
        pat = list.p + start;
        plen = i - start;
        i++; /* past the comma (or the end) */
        if (plen > 0 && pat[0] == '!') {
            neg = true;
            pat++;
            plen--;
        }
        if (plen == 0 || !glob_match(name, namelen, pat, plen)) {
            continue;
        }
        if (neg) {
            return -1;
        }
        got = 1;
    }
    return got;
}

static int
hmac_sha1(struct kh_scan *s, const uint8_t *key, size_t keylen, const char *data, size_t n,
          uint8_t out[KH_HASH_LEN])
{
    static char digest[] = "SHA1";
    OSSL_PARAM params[2];
    size_t outl = 0;

    if (s->mac == NULL && (s->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL) {
        return SF_ERR_CRYPTO;
    }
    if (s->macctx == NULL && (s->macctx = EVP_MAC_CTX_new(s->mac)) == NULL) {
        return SF_ERR_NOMEM;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
    params[1] = OSSL_PARAM_construct_end();
    if (EVP_MAC_init(s->macctx, key, keylen, params) != 1 ||
        EVP_MAC_update(s->macctx, (const unsigned char *)data, n) != 1 ||
        EVP_MAC_final(s->macctx, out, &outl, KH_HASH_LEN) != 1 || outl != KH_HASH_LEN) {
        return SF_ERR_CRYPTO;
    }
    return 0;
}

/*
 * Hashed host field "|1|base64(salt)|base64(hmac)": *match is true if
 * HMAC-SHA1(salt, name) equals hmac. A field we cannot decode simply does
 * not match (OpenSSH skips it too); only a crypto failure is an error,
 * because treating it as "no match" could turn a changed key into a new one.
 */
static int
match_hashed(struct kh_scan *s, struct kh_span f, bool *match)
{
    uint8_t salt[KH_SALT_MAX + KH_B64_SLACK];
    uint8_t want[KH_HASH_LEN + KH_B64_SLACK];
    uint8_t got[KH_HASH_LEN];
    const char *rest = NULL;
    const char *bar = NULL;
    size_t restlen = 0;
    size_t saltlen = 0;
    size_t wantlen = 0;
    int r;

    *match = false;
    if (f.n <= strlen(KH_HASH_MAGIC) || memcmp(f.p, KH_HASH_MAGIC, strlen(KH_HASH_MAGIC)) != 0) {
        return 0;
    }
    rest = f.p + strlen(KH_HASH_MAGIC);
    restlen = f.n - strlen(KH_HASH_MAGIC);
    if ((bar = memchr(rest, '|', restlen)) == NULL) {
        return 0;
    }
    if (sf_base64_decode(rest, (size_t)(bar - rest), salt, sizeof(salt), &saltlen) != 0 ||
        saltlen == 0 || saltlen > KH_SALT_MAX) {
        return 0;
    }
    if (sf_base64_decode(bar + 1, restlen - (size_t)(bar - rest) - 1, want, sizeof(want),
                         &wantlen) != 0 ||
        wantlen != KH_HASH_LEN) {
        return 0;
    }
    if ((r = hmac_sha1(s, salt, saltlen, s->name, s->namelen, got)) != 0) {
        return r;
    }
    *match = CRYPTO_memcmp(got, want, KH_HASH_LEN) == 0;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Scanning                                                                 */
/* ------------------------------------------------------------------------ */

/* Add type to the comma list s->types once; stop at the first that does not fit. */
static void
types_add(struct kh_scan *s, const char *type)
{
    size_t cur = 0;
    size_t tl = strlen(type);
    size_t i = 0;

    if (s->types == NULL || s->typessz == 0 || s->types_full) {
        return;
    }
    cur = strlen(s->types);
    while (i < cur) {
        size_t start = i;

        while (i < cur && s->types[i] != ',') {
            i++;
        }
        if (i - start == tl && memcmp(s->types + start, type, tl) == 0) {
            return;
        }
        i++;
    }
    if (cur + (cur > 0 ? 1 : 0) + tl + 1 > s->typessz) {
        s->types_full = true;
        return;
    }
    if (cur > 0) {
        s->types[cur++] = ',';
    }
    memcpy(s->types + cur, type, tl + 1);
}

/* Next blank-separated field of line[len] from *pos; false at the end. */
static bool
next_field(const char *line, size_t len, size_t *pos, struct kh_span *f)
{
    size_t i = *pos;
    size_t start;

    while (i < len && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    if (i == len) {
        *pos = i;
        return false;
    }
    start = i;
    while (i < len && line[i] != ' ' && line[i] != '\t') {
        i++;
    }
    f->p = line + start;
    f->n = i - start;
    *pos = i;
    return true;
}

/*
 * An @revoked line that applies to the host, key kbuf[bloblen] of type:
 * does it revoke the key looked up, or the CA of its certificate? A revoked
 * certificate revokes the key it certifies (OpenSSH compares public parts);
 * one that does not even parse is skipped, as OpenSSH skips such a line.
 */
static int
scan_revoked(struct kh_scan *s, const char *type, size_t bloblen, unsigned long lineno)
{
    struct sf_cert *cert = NULL;
    const uint8_t *kb = s->kbuf;
    size_t kblen = bloblen;
    int r;

    if (s->blob == NULL) {
        return 0;
    }
    if (sf_cert_is_type(type, strlen(type))) {
        if ((r = sf_cert_from_blob_algs(s->kbuf, bloblen, NULL, &cert)) != 0) {
            return r == SF_ERR_NOMEM ? r : 0;
        }
        kb = sf_cert_key_blob(cert, &kblen);
    }
    if (s->revoked_line == 0 && kblen == s->bloblen && memcmp(kb, s->blob, kblen) == 0) {
        s->revoked_line = lineno;
    }
    if (cert == NULL && s->cablob != NULL && s->ca_revoked_line == 0 &&
        bloblen == s->cablobsz && memcmp(s->kbuf, s->cablob, bloblen) == 0) {
        s->ca_revoked_line = lineno;
    }
    sf_cert_free(cert);
    return 0;
}

/*
 * One line (without its newline). Lines that do not apply to the host, or
 * that we cannot parse, are skipped; errors are only NOMEM / CRYPTO.
 */
static int
scan_line(struct kh_scan *s, const char *line, size_t len, unsigned long lineno)
{
    struct kh_span hosts;
    struct kh_span ktype;
    struct kh_span kb64;
    struct kh_span f;
    char type[SF_NAME_MAX + 1];
    size_t pos = 0;
    size_t bloblen = 0;
    bool revoked = false;
    bool ca = false;
    bool match = false;
    int r;

    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (!next_field(line, len, &pos, &f) || f.p[0] == '#') {
        return 0;
    }
    if (f.p[0] == '@') {
        /* Markers (sshd(8)); a line with any other marker is invalid and skipped. */
        if (span_eq(f, "@revoked")) {
            revoked = true;
        } else if (span_eq(f, "@cert-authority")) {
            ca = true;
        } else {
            return 0;
        }
        if (!next_field(line, len, &pos, &f)) {
            return 0;
        }
    }
    hosts = f;
    if (!next_field(line, len, &pos, &ktype) || !next_field(line, len, &pos, &kb64)) {
        return 0;
    }
    /* Anything after the key is a comment. */
    if (hosts.p[0] == '|') {
        if ((r = match_hashed(s, hosts, &match)) != 0) {
            return r;
        }
    } else {
        match = match_list(s->name, s->namelen, hosts) == 1;
    }
    if (!match) {
        return 0;
    }
    if (kb64.n > (SF_KEYBLOB_MAX / 3 + 1) * 4 ||
        sf_base64_decode(kb64.p, kb64.n, s->kbuf, SF_KEYBLOB_MAX + KH_B64_SLACK, &bloblen) != 0 ||
        bloblen == 0 || bloblen > SF_KEYBLOB_MAX) {
        return 0;
    }
    /*
     * RFC 4253 s6.6: the blob starts with its type name, which must be the
     * line's. A type we do not support (ssh-dss, sk-*) is kept as an opaque
     * key: it still tells that the host is known.
     */
    r = sf_knownhosts_blob_check(s->kbuf, bloblen, type, sizeof(type));
    if ((r != 0 && r != SF_ERR_KEY_TYPE) || !span_eq(ktype, type) || !keytype_writable(type)) {
        return 0;
    }
    if (ca) {
        s->ca_seen = true;
        if (s->cablob != NULL && s->ca_line == 0 && bloblen == s->cablobsz &&
            memcmp(s->kbuf, s->cablob, bloblen) == 0) {
            s->ca_line = lineno;
        }
        return 0;
    }
    if (revoked) {
        return scan_revoked(s, type, bloblen, lineno);
    }
    types_add(s, type);
    if (s->keytype == NULL) {
        return 0;
    }
    if (strcmp(type, s->keytype) != 0) {
        if (s->other_line == 0) {
            s->other_line = lineno;
            snprintf(s->other_type, sizeof(s->other_type), "%s", type);
        }
    } else if (bloblen == s->bloblen && memcmp(s->kbuf, s->blob, bloblen) == 0) {
        if (s->found_line == 0) {
            s->found_line = lineno;
        }
    } else if (s->changed_line == 0) {
        s->changed_line = lineno;
    }
    return 0;
}

/* Every line of data[len]; the file is walked through an sf_buf view. */
static int
scan_data(struct kh_scan *s, const uint8_t *data, size_t len)
{
    struct sf_buf file;
    unsigned long lineno = 0;
    int r;

    if (s->kbuf == NULL && (s->kbuf = sf_alloc(SF_KEYBLOB_MAX + KH_B64_SLACK)) == NULL) {
        return SF_ERR_NOMEM;
    }
    sf_buf_init_view(&file, data, len);
    while (sf_buf_len(&file) > 0) {
        const char *line = (const char *)sf_buf_ptr(&file);
        size_t avail = sf_buf_len(&file);
        const char *nl = memchr(line, '\n', avail);
        size_t n = nl != NULL ? (size_t)(nl - line) : avail;

        lineno++;
        if ((r = scan_line(s, line, n, lineno)) != 0) {
            return r;
        }
        if ((r = sf_buf_skip(&file, nl != NULL ? n + 1 : n)) != 0) {
            return r;
        }
    }
    return 0;
}

static void
scan_free(struct kh_scan *s)
{
    EVP_MAC_CTX_free(s->macctx);
    EVP_MAC_free(s->mac);
    sf_free(s->kbuf);
    s->macctx = NULL;
    s->mac = NULL;
    s->kbuf = NULL;
}

/* Read everything from fd (from its current offset) into a fresh buffer. */
static int
read_fd(int fd, uint8_t **out, size_t *outlen, int *eno)
{
    uint8_t *d = NULL;
    size_t cap = 0;
    size_t len = 0;
    int r = 0;

    *out = NULL;
    *outlen = 0;
    *eno = 0;
    for (;;) {
        ssize_t n;

        if (cap - len < KH_READ_CHUNK) {
            size_t ncap = cap == 0 ? KH_READ_CHUNK * 2 : cap * 2;
            uint8_t *nd = NULL;

            if (cap >= SF_KNOWNHOSTS_FILE_MAX) {
                r = SF_ERR_TOO_LARGE;
                goto out;
            }
            ncap = SF_MIN(ncap, (size_t)SF_KNOWNHOSTS_FILE_MAX);
            if ((nd = sf_realloc(d, ncap)) == NULL) {
                r = SF_ERR_NOMEM;
                goto out;
            }
            d = nd;
            cap = ncap;
        }
        n = read(fd, d + len, cap - len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            *eno = errno;
            r = SF_ERR_FILE;
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    *out = d;
    *outlen = len;
    d = NULL;
out:
    sf_free(d);
    return r;
}

/* Read path whole; a missing file is empty (*data NULL, *len 0). */
static int
load_file(const char *path, uint8_t **data, size_t *len, sshflow_error *err)
{
    int fd = -1;
    int eno = 0;
    int r;

    *data = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO named as known_hosts must not hang us (no effect on files). */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
        if (errno == ENOENT) {
            return 0;
        }
        return file_error(err, errno, "open", path);
    }
    if ((r = read_fd(fd, data, len, &eno)) != 0) {
        if (r == SF_ERR_FILE) {
            file_error(err, eno, "read", path);
        } else if (r == SF_ERR_TOO_LARGE) {
            sf_err_set(err, SF_ERR_FILE, "known_hosts file %s is larger than %d bytes", path,
                       SF_KNOWNHOSTS_FILE_MAX);
            r = SF_ERR_FILE;
        } else {
            sf_err_set(err, r, "reading known_hosts file %s", path);
        }
    }
    close(fd);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Decision                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The strict decision on a finished scan. *absent is set when the host has
 * no usable line at all (the only case accept-new may add it).
 */
static int
decide(const struct kh_scan *s, const char *path, const char *host, uint16_t port,
       const char *fp, bool *absent, sshflow_error *err)
{
    *absent = false;
    if (s->revoked_line != 0) {
        sf_err_set(err, SF_ERR_HOSTKEY,
                   "host key for %s is revoked: its %s key %s is listed as @revoked at line "
                   "%lu of %s",
                   s->name, s->keytype, fp, s->revoked_line, path);
        return SF_ERR_HOSTKEY;
    }
    if (s->ca_revoked_line != 0) {
        sf_err_set(err, SF_ERR_HOSTKEY,
                   "host certificate for %s is revoked: the CA key that signed it is listed as "
                   "@revoked at line %lu of %s (the server's %s key is %s)",
                   s->name, s->ca_revoked_line, path, s->keytype, fp);
        return SF_ERR_HOSTKEY;
    }
    if (s->found_line != 0) {
        return 0;
    }
    if (s->changed_line != 0) {
        sf_err_set(err, SF_ERR_HOSTKEY_CHANGED,
                   "host key for %s changed (known_hosts line %lu of %s has a different %s "
                   "key): the server sent %s key %s. REMOTE HOST IDENTIFICATION HAS CHANGED: "
                   "someone could be doing something nasty (man-in-the-middle); if the key "
                   "was replaced on purpose, remove line %lu",
                   s->name, s->changed_line, path, s->keytype, s->keytype, fp, s->changed_line);
        return SF_ERR_HOSTKEY_CHANGED;
    }
    if (s->other_line != 0) {
        /*
         * Known only with other key types: the server offers a type we have
         * never seen for it. ssh would prompt; we refuse even for accept-new,
         * since a man-in-the-middle could simply offer a new type.
         */
        sf_err_set(err, SF_ERR_HOSTKEY_CHANGED,
                   "host key for %s: %s key %s is UNKNOWN for this type, but the host is "
                   "known with other key types (%s; known_hosts line %lu of %s has a %s key); "
                   "refusing: the server should offer a known type, or the key changed",
                   s->name, s->keytype, fp, s->types != NULL ? s->types : s->other_type,
                   s->other_line, path, s->other_type);
        return SF_ERR_HOSTKEY_CHANGED;
    }
    *absent = true;
    sf_err_set(err, SF_ERR_HOSTKEY_UNKNOWN,
               "host key for %s is not known: %s has no entry for it; the server's %s key is "
               "%s; check that fingerprint, then add the key (ssh-keyscan -p %u %s >> %s) or "
               "use the accept-new policy",
               s->name, path, s->keytype, fp, (unsigned)(port == 0 ? KH_DEFAULT_PORT : port),
               host, path);
    return SF_ERR_HOSTKEY_UNKNOWN;
}

/* Create the file's directory (mode 0700) if it is missing; only the last level. */
static int
make_parent_dir(const char *path, sshflow_error *err)
{
    char dir[SF_KNOWNHOSTS_PATH_MAX];
    char *slash = NULL;
    int n;

    n = snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir)) {
        sf_err_set(err, SF_ERR_INVALID, "known_hosts path too long");
        return SF_ERR_INVALID;
    }
    if ((slash = strrchr(dir, '/')) == NULL || slash == dir) {
        return 0;
    }
    *slash = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return file_error(err, errno, "create the directory of", path);
    }
    return 0;
}

/*
 * accept-new: under an exclusive flock, read the file again and decide
 * again (another process may have added the host meanwhile); if the host is
 * still absent, append "name keytype base64\n" with one write(), preceded
 * by a newline if the file does not end with one.
 *
 * XXX: ssh itself appends without flock, so this excludes other sshflow
 * users only; O_APPEND keeps a single write() from interleaving anyway.
 */
static int
append_host(struct kh_scan *s, const char *path, const char *host, uint16_t port,
            const char *fp, sshflow_error *err)
{
    uint8_t *data = NULL;
    char *b64 = NULL;
    char *line = NULL;
    size_t len = 0;
    size_t b64sz = 0;
    size_t linesz = 0;
    size_t linelen = 0;
    bool absent = false;
    bool need_nl = false;
    int fd = -1;
    int eno = 0;
    int n;
    int r;

    if (!host_writable(host)) {
        sf_err_set(err, SF_ERR_INVALID,
                   "cannot add host %s to %s: the name contains characters that are special "
                   "in known_hosts",
                   s->name, path);
        r = SF_ERR_INVALID;
        goto out;
    }
    if (!keytype_writable(s->keytype)) {
        sf_err_set(err, SF_ERR_INVALID, "cannot add host %s to %s: bad key type name", s->name,
                   path);
        r = SF_ERR_INVALID;
        goto out;
    }
    if ((r = make_parent_dir(path, err)) != 0) {
        goto out;
    }
    if ((fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0) {
        r = file_error(err, errno, "open for appending", path);
        goto out;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            r = file_error(err, errno, "lock", path);
            goto out;
        }
    }
    if ((r = read_fd(fd, &data, &len, &eno)) != 0) {
        if (r == SF_ERR_FILE) {
            file_error(err, eno, "read", path);
        } else {
            sf_err_set(err, r, "reading known_hosts file %s", path);
        }
        goto out;
    }
    /* Decide again on what is in the file now, with the lock held. */
    s->found_line = s->changed_line = s->other_line = s->revoked_line = 0;
    s->ca_line = s->ca_revoked_line = 0;
    s->ca_seen = false;
    s->other_type[0] = '\0';
    if (s->types != NULL && s->typessz > 0) {
        s->types[0] = '\0';
        s->types_full = false;
    }
    if ((r = scan_data(s, data, len)) != 0) {
        sf_err_set(err, r, "reading known_hosts file %s", path);
        goto out;
    }
    r = decide(s, path, host, port, fp, &absent, err);
    if (r != SF_ERR_HOSTKEY_UNKNOWN || !absent) {
        goto out;
    }
    /* Still absent: append. */
    b64sz = (s->bloblen + 2) / 3 * 4 + 1;
    need_nl = len > 0 && data[len - 1] != '\n';
    linesz = 1 + strlen(s->name) + 1 + strlen(s->keytype) + 1 + b64sz + 1;
    if ((b64 = sf_alloc(b64sz)) == NULL || (line = sf_alloc(linesz)) == NULL) {
        r = SF_ERR_NOMEM;
        sf_err_set(err, r, "out of memory adding to %s", path);
        goto out;
    }
    if ((r = sf_base64_encode(s->blob, s->bloblen, true, b64, b64sz)) != 0) {
        sf_err_set(err, r, "cannot encode the host key for %s", path);
        goto out;
    }
    n = snprintf(line, linesz, "%s%s %s %s\n", need_nl ? "\n" : "", s->name, s->keytype, b64);
    if (n < 0 || (size_t)n >= linesz) {
        r = SF_ERR_INTERNAL;
        sf_err_set(err, r, "known_hosts line for %s does not fit", s->name);
        goto out;
    }
    linelen = (size_t)n;
    for (;;) {
        ssize_t w = write(fd, line, linelen);

        if (w < 0 && errno == EINTR) {
            continue; /* nothing was written */
        }
        if (w < 0) {
            r = file_error(err, errno, "append to", path);
            goto out;
        }
        if ((size_t)w != linelen) {
            struct stat st;

            /*
             * Disk full or a size limit: take the torn line back if nobody
             * else wrote meanwhile. If that fails too, the torn line stays
             * and, lacking a key, is skipped by every reader.
             */
            if (fstat(fd, &st) == 0 && (size_t)st.st_size == len + (size_t)w) {
                eno = ftruncate(fd, (off_t)len) == 0 ? ENOSPC : errno;
            } else {
                eno = ENOSPC;
            }
            r = file_error(err, eno, "append to", path);
            goto out;
        }
        break;
    }
    if (err != NULL) {
        /* The UNKNOWN detail from decide() no longer applies. */
        err->kind = 0;
        err->detail[0] = '\0';
    }
    r = 0;
out:
    if (fd >= 0) {
        close(fd); /* releases the lock */
    }
    sf_free(data);
    sf_free(b64);
    sf_free(line);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Entry points                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Would this host certificate be accepted on its own, given that a
 * @cert-authority line for the host holds its CA key? 0, or SF_ERR_CERT
 * with why filled.
 */
static int
cert_acceptable(const struct sf_cert *cert, const char *host, uint64_t now, char *why,
                size_t whysz)
{
    char name[KH_HOST_MAX + 1];
    size_t i;
    int r;

    if (!sf_cert_ca_alg_ok(cert, NULL)) {
        snprintf(why, whysz, "its CA signed it with %s, which CASignatureAlgorithms does not "
                 "allow", sf_cert_ca_sigalg(cert));
        return SF_ERR_CERT;
    }
    /* OpenSSH checks the (lower-cased) host name against the principals; no port. */
    for (i = 0; host[i] != '\0' && i < KH_HOST_MAX; i++) {
        name[i] = ascii_lower(host[i]);
    }
    name[i] = '\0';
    if ((r = sf_cert_check(cert, SF_CERT_HOST, name, now, why, whysz)) != 0) {
        return SF_ERR_CERT;
    }
    return 0;
}

/*
 * The look-up and decision for a plain key (cert NULL), or for a host
 * certificate whose plain key is keytype/blob/fp.
 */
static int
check_key(const char *path, enum sshflow_hostkey_policy policy, const char *host, uint16_t port,
          const char *keytype, const uint8_t *blob, size_t bloblen, const char *fp,
          const struct sf_cert *cert, uint64_t now, sshflow_error *err)
{
    struct kh_scan s;
    char file[SF_KNOWNHOSTS_PATH_MAX];
    char name[KH_NAME_MAX];
    char types[KH_TYPES_MSG_MAX];
    char why[KH_WHY_MAX];
    char reason[SF_CERT_WHY_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    bool absent = false;
    int r;

    memset(&s, 0, sizeof(s));
    types[0] = '\0';
    why[0] = '\0';
    reason[0] = '\0';
    if (host == NULL || keytype == NULL || blob == NULL || bloblen == 0 || fp == NULL) {
        r = SF_ERR_INVALID;
        sf_err_set(err, r, "known_hosts check needs a host name and a key");
        goto out;
    }
    if (policy != SSHFLOW_HOSTKEY_STRICT && policy != SSHFLOW_HOSTKEY_ACCEPT_NEW) {
        r = SF_ERR_INVALID;
        sf_err_set(err, r, "unknown known_hosts policy %d", (int)policy);
        goto out;
    }
    if ((r = sf_knownhosts_path(path, file, sizeof(file))) != 0) {
        sf_err_set(err, r, "cannot find the known_hosts file (%s)",
                   r == SF_ERR_NOMEM ? "out of memory"
                   : path != NULL    ? "empty or too long name"
                                     : "no home directory");
        goto out;
    }
    if ((r = lookup_name(host, port, name, sizeof(name))) != 0) {
        sf_err_set(err, r, "host name unusable for known_hosts (empty or too long)");
        goto out;
    }
    s.name = name;
    s.namelen = strlen(name);
    s.keytype = keytype;
    s.blob = blob;
    s.bloblen = bloblen;
    s.types = types;
    s.typessz = sizeof(types);
    if (cert != NULL) {
        s.cablob = sf_cert_ca_blob(cert, &s.cablobsz);
    }
    if ((r = load_file(file, &data, &len, err)) != 0) {
        goto out;
    }
    if ((r = scan_data(&s, data, len)) != 0) {
        sf_err_set(err, r, "reading known_hosts file %s", file);
        goto out;
    }
    if (cert != NULL && s.revoked_line == 0 && s.ca_revoked_line == 0) {
        if (s.ca_line == 0) {
            snprintf(why, sizeof(why), "no @cert-authority line for %.100s in %.150s holds its CA key",
                     name, file);
        } else if (cert_acceptable(cert, host, now, reason, sizeof(reason)) == 0) {
            r = 0; /* a trusted CA vouches for it */
            goto out;
        } else {
            snprintf(why, sizeof(why), "its CA is trusted (line %lu) but %.200s", s.ca_line,
                     reason);
        }
    }
    r = decide(&s, file, host, port, fp, &absent, err);
    if (r == SF_ERR_HOSTKEY_UNKNOWN && absent && policy == SSHFLOW_HOSTKEY_ACCEPT_NEW) {
        r = append_host(&s, file, host, port, fp, err);
    }
    if (r != 0 && why[0] != '\0' && err != NULL) {
        /* Say why the certificate did not do before what became of its plain key. */
        char plain[sizeof(err->detail)];

        snprintf(plain, sizeof(plain), "%s", err->detail);
        sf_err_set(err, r, "host certificate %s (key ID \"%.64s\") not accepted: %s; "
                   "its plain key then: %s",
                   sf_cert_type(cert), sf_cert_key_id(cert), why, plain);
    }
out:
    scan_free(&s);
    sf_free(data);
    return r;
}

int
sf_knownhosts_check(const char *path, enum sshflow_hostkey_policy policy, const char *host,
                    uint16_t port, const char *keytype, const uint8_t *blob, size_t bloblen,
                    const char *fp, sshflow_error *err)
{
    return check_key(path, policy, host, port, keytype, blob, bloblen, fp, NULL, 0, err);
}

int
sf_knownhosts_check_cert(const char *path, enum sshflow_hostkey_policy policy, const char *host,
                         uint16_t port, const struct sf_cert *cert, uint64_t now,
                         sshflow_error *err)
{
    const uint8_t *blob = NULL;
    size_t bloblen = 0;
    char fp[SF_NAME_MAX + 32];
    int r;

    if (cert == NULL) {
        sf_err_set(err, SF_ERR_INVALID, "known_hosts check needs a host name and a key");
        return SF_ERR_INVALID;
    }
    blob = sf_cert_key_blob(cert, &bloblen);
    if ((r = sf_fingerprint_sha256(blob, bloblen, fp, sizeof(fp))) != 0) {
        sf_err_set(err, r, "cannot compute the host key fingerprint");
        return r;
    }
    return check_key(path, policy, host, port, sf_cert_plain_type(cert), blob, bloblen, fp, cert,
                     now, err);
}

/* Append the names of the comma list to out[outsz]; stop at the first that does not fit. */
static bool
list_append(char *out, size_t outsz, const char *list)
{
    size_t cur = strlen(out);

    while (*list != '\0') {
        const char *e = strchr(list, ',');
        size_t n = e != NULL ? (size_t)(e - list) : strlen(list);

        if (cur + (cur > 0 ? 1 : 0) + n + 1 > outsz) {
            return false;
        }
        if (cur > 0) {
            out[cur++] = ',';
        }
        memcpy(out + cur, list, n);
        cur += n;
        out[cur] = '\0';
        list = e != NULL ? e + 1 : "";
    }
    return true;
}

void
sf_knownhosts_types(const char *path, const char *host, uint16_t port, char *out, size_t outsz)
{
    struct kh_scan s;
    char file[SF_KNOWNHOSTS_PATH_MAX];
    char name[KH_NAME_MAX];
    char *plain = NULL;
    uint8_t *data = NULL;
    size_t len = 0;

    memset(&s, 0, sizeof(s));
    if (out == NULL || outsz == 0) {
        return;
    }
    out[0] = '\0';
    if (host == NULL || sf_knownhosts_path(path, file, sizeof(file)) != 0 ||
        lookup_name(host, port, name, sizeof(name)) != 0 ||
        load_file(file, &data, &len, NULL) != 0 || (plain = sf_alloc(outsz)) == NULL) {
        goto out;
    }
    s.name = name;
    s.namelen = strlen(name);
    s.types = plain;
    s.typessz = outsz;
    if (scan_data(&s, data, len) != 0) {
        goto out;
    }
    /*
     * A CA for the host: certificate algorithms first (OpenSSH's
     * order_hostkeyalgs() prefers them all then), then the plain key types.
     */
    if (s.ca_seen && !list_append(out, outsz, sf_cert_alg_list)) {
        goto out;
    }
    (void)list_append(out, outsz, plain);
out:
    scan_free(&s);
    sf_free(data);
    sf_free(plain);
}
