/*
 * src/cert.c -- OpenSSH certificates (PROTOCOL.certkeys, "New public key
 * formats"): parsing, the CA signature, and the checks for one use.
 *
 *     string    "<type>-cert-v01@openssh.com"
 *     string    nonce
 *     ...       the fields of the plain key (ed25519: string pk; ecdsa:
 *               string curve, string Q; rsa: mpint e, mpint n)
 *     uint64    serial
 *     uint32    type                 1 = user, 2 = host
 *     string    key id
 *     string    valid principals     zero or more string principal
 *     uint64    valid after
 *     uint64    valid before
 *     string    critical options     zero or more (string name, string data)
 *     string    extensions           the same encoding
 *     string    reserved
 *     string    signature key        the CA's plain public key blob
 *     string    signature            over every byte before it
 *
 * Owns: struct sf_cert and everything decoded from it; the table of
 * certificate types and algorithm names. Must never: trust a CA by itself
 * (callers hold the trusted CA keys), accept a certificate as a CA key
 * (chains are not supported by the protocol), or read the blob other than
 * through struct sf_buf. The plain key inside is rebuilt as a plain blob
 * and parsed by key.c, so it gets exactly the checks of any other key.
 */
#include "cert.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "key.h"

#define CERT_RSA_MAX_BYTES (16384 / 8) /* as key.c: the largest modulus we parse */
#define CERT_EC_Q_MAX (1 + 2 * 66)     /* uncompressed P-521 point */
#define CERT_ED25519_PUB 32
#define CERT_B64_SLACK 4 /* decoders may want room for a whole quantum */
#define CERT_READ_CHUNK 4096

const char sf_cert_ca_default_algs[] = "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                                       "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256";

const char sf_cert_alg_list[] = "ssh-ed25519-cert-v01@openssh.com,"
                                "ecdsa-sha2-nistp256-cert-v01@openssh.com,"
                                "ecdsa-sha2-nistp384-cert-v01@openssh.com,"
                                "ecdsa-sha2-nistp521-cert-v01@openssh.com,"
                                "rsa-sha2-512-cert-v01@openssh.com,"
                                "rsa-sha2-256-cert-v01@openssh.com,"
                                "ssh-rsa-cert-v01@openssh.com";

enum cert_fields {
    CERT_FIELDS_ED25519, /* string pk */
    CERT_FIELDS_ECDSA,   /* string curve, string Q */
    CERT_FIELDS_RSA,     /* mpint e, mpint n */
};

/* Certificate key types (the name inside blobs) and their plain key type. */
static const struct cert_type {
    const char *name;
    const char *plain;
    enum cert_fields fields;
} cert_types[] = {
    { "ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519", CERT_FIELDS_ED25519 },
    { "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256", CERT_FIELDS_ECDSA },
    { "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384", CERT_FIELDS_ECDSA },
    { "ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521", CERT_FIELDS_ECDSA },
    { "ssh-rsa-cert-v01@openssh.com", "ssh-rsa", CERT_FIELDS_RSA },
};

/*
 * Algorithm names (KEXINIT host key algorithms, USERAUTH public key
 * algorithm) and the signature algorithm inside the signatures they make.
 */
static const struct cert_alg {
    const char *alg;
    const char *base;
} cert_algs[] = {
    { "ssh-ed25519-cert-v01@openssh.com", "ssh-ed25519" },
    { "ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp256" },
    { "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp384" },
    { "ecdsa-sha2-nistp521-cert-v01@openssh.com", "ecdsa-sha2-nistp521" },
    { "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-512" },
    { "rsa-sha2-256-cert-v01@openssh.com", "rsa-sha2-256" },
    { "ssh-rsa-cert-v01@openssh.com", "ssh-rsa" }, /* SHA-1: only when asked for */
};

struct sf_cert {
    const struct cert_type *type;
    uint8_t *blob; /* the whole certificate */
    size_t bloblen;
    uint8_t *keyblob; /* plain blob of the certified key */
    size_t keybloblen;
    struct sf_pubkey *key; /* the certified key */
    struct sf_pubkey *ca;  /* the CA key */
    uint8_t *cablob;
    size_t cablobsz;
    char casig[SF_NAME_MAX + 1]; /* CA signature algorithm */
    uint64_t serial;
    uint32_t kind;
    char *key_id;
    char **principals;
    size_t nprincipals;
    uint64_t valid_after;
    uint64_t valid_before;
    char **critical; /* names of the critical options */
    size_t ncritical;
};

static bool
name_eq(const uint8_t *p, size_t n, const char *s)
{
    size_t sl = strlen(s);

    return n == sl && memcmp(p, s, n) == 0;
}

static const struct cert_type *
type_lookup(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < sizeof(cert_types) / sizeof(cert_types[0]); i++) {
        if (name_eq(p, n, cert_types[i].name)) {
            return &cert_types[i];
        }
    }
    return NULL;
}

bool
sf_cert_is_type(const char *name, size_t n)
{
    return name != NULL && type_lookup((const uint8_t *)name, n) != NULL;
}

const char *
sf_cert_alg_for_sigalg(const char *sigalg)
{
    if (sigalg == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(cert_algs) / sizeof(cert_algs[0]); i++) {
        if (strcmp(sigalg, cert_algs[i].base) == 0) {
            return cert_algs[i].alg;
        }
    }
    return NULL;
}

const char *
sf_cert_sigalg_base(const char *certalg)
{
    if (certalg == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(cert_algs) / sizeof(cert_algs[0]); i++) {
        if (strcmp(certalg, cert_algs[i].alg) == 0) {
            return cert_algs[i].base;
        }
    }
    return NULL;
}

static void
free_strings(char **v, size_t n)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sf_free(v[i]);
    }
    sf_free(v);
}

void
sf_cert_free(struct sf_cert *c)
{
    if (c == NULL) {
        return;
    }
    sf_free(c->blob);
    sf_free(c->keyblob);
    sf_free(c->cablob);
    sf_pubkey_free(c->key);
    sf_pubkey_free(c->ca);
    sf_free(c->key_id);
    free_strings(c->principals, c->nprincipals);
    free_strings(c->critical, c->ncritical);
    sf_free(c);
}

/*
 * The certified key's fields, re-encoded after "string plain-type" into
 * out: the plain public key blob (RFC 4253 s6.6, RFC 5656 s3.1, RFC 8709
 * s4). key.c then checks the key itself.
 */
static int
get_key_fields(struct sf_buf *b, const struct cert_type *t, struct sf_buf *out)
{
    const uint8_t *p = NULL, *q = NULL;
    size_t pn = 0, qn = 0;
    int r;

    if ((r = sf_buf_put_cstr(out, t->plain)) != 0) {
        return r;
    }
    switch (t->fields) {
    case CERT_FIELDS_ED25519:
        if ((r = sf_buf_get_string(b, &p, &pn, CERT_ED25519_PUB)) != 0 ||
            (r = sf_buf_put_string(out, p, pn)) != 0) {
            return r;
        }
        return 0;
    case CERT_FIELDS_ECDSA:
        if ((r = sf_buf_get_string(b, &p, &pn, SF_NAME_MAX)) != 0 ||
            (r = sf_buf_get_string(b, &q, &qn, CERT_EC_Q_MAX)) != 0 ||
            (r = sf_buf_put_string(out, p, pn)) != 0 || (r = sf_buf_put_string(out, q, qn)) != 0) {
            return r;
        }
        return 0;
    case CERT_FIELDS_RSA:
        if ((r = sf_buf_get_mpint_pos(b, &p, &pn, CERT_RSA_MAX_BYTES)) != 0 ||
            (r = sf_buf_get_mpint_pos(b, &q, &qn, CERT_RSA_MAX_BYTES)) != 0 ||
            (r = sf_buf_put_mpint(out, p, pn)) != 0 || (r = sf_buf_put_mpint(out, q, qn)) != 0) {
            return r;
        }
        return 0;
    default:
        return SF_ERR_INTERNAL;
    }
}

/* "valid principals": zero or more string principal, each without NUL. */
static int
get_principals(struct sf_buf *list, struct sf_cert *c)
{
    char *name = NULL;
    int r;

    if ((name = sf_alloc(SF_CERT_PRINCIPAL_MAX + 1)) == NULL) {
        return SF_ERR_NOMEM;
    }
    if ((c->principals = sf_alloc(SF_CERT_PRINCIPALS_MAX * sizeof(char *))) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    while (sf_buf_len(list) > 0) {
        if (c->nprincipals >= SF_CERT_PRINCIPALS_MAX) {
            r = SF_ERR_TOO_LARGE;
            goto out;
        }
        if ((r = sf_buf_get_cstr(list, name, SF_CERT_PRINCIPAL_MAX + 1)) != 0) {
            goto out;
        }
        if ((c->principals[c->nprincipals] = sf_strdup(name)) == NULL) {
            r = SF_ERR_NOMEM;
            goto out;
        }
        c->nprincipals++;
    }
    r = 0;
out:
    sf_free(name);
    return r;
}

/*
 * Critical options / extensions: zero or more (string name, string data),
 * names unique and in strictly increasing byte order (PROTOCOL.certkeys
 * "Critical options"). names (may be NULL) gets copies of the names.
 */
static int
get_options(struct sf_buf *sect, char ***names, size_t *count)
{
    const uint8_t *prev = NULL, *name = NULL, *data = NULL;
    size_t prevlen = 0, namelen = 0, datalen = 0, n = 0;
    char **v = NULL;
    int r;

    if (names != NULL) {
        *names = NULL;
        if ((v = sf_alloc(SF_CERT_OPTIONS_MAX * sizeof(char *))) == NULL) {
            return SF_ERR_NOMEM;
        }
    }
    while (sf_buf_len(sect) > 0) {
        int cmp;

        if (n >= SF_CERT_OPTIONS_MAX) {
            r = SF_ERR_TOO_LARGE;
            goto out;
        }
        if ((r = sf_buf_get_string(sect, &name, &namelen, SF_CERT_OPTION_NAME_MAX)) != 0 ||
            (r = sf_buf_get_string(sect, &data, &datalen, SF_KEYBLOB_MAX)) != 0) {
            goto out;
        }
        if (namelen == 0 || memchr(name, '\0', namelen) != NULL) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        if (prev != NULL) {
            cmp = memcmp(prev, name, SF_MIN(prevlen, namelen));
            if (cmp > 0 || (cmp == 0 && prevlen >= namelen)) {
                r = SF_ERR_BAD_FORMAT; /* out of order, or repeated */
                goto out;
            }
        }
        if (v != NULL && (v[n] = sf_strndup((const char *)name, namelen)) == NULL) {
            r = SF_ERR_NOMEM;
            goto out;
        }
        prev = name;
        prevlen = namelen;
        n++;
    }
    if (names != NULL) {
        *names = v;
        v = NULL;
    }
    *count = n;
    r = 0;
out:
    free_strings(v, n);
    return r;
}

/* The signature algorithm name at the front of a signature blob. */
static int
sig_name(const uint8_t *sig, size_t len, char *out, size_t outsz)
{
    struct sf_buf b;

    sf_buf_init_view(&b, sig, len);
    return sf_buf_get_cstr(&b, out, outsz);
}

int
sf_cert_from_blob_algs(const uint8_t *blob, size_t len, const char *ca_algs,
                       struct sf_cert **out)
{
    struct sf_cert *c = NULL;
    struct sf_buf b, list, crit, ext, kb = { 0 };
    const uint8_t *type = NULL, *p = NULL, *ca = NULL, *sig = NULL;
    size_t tlen = 0, plen = 0, calen = 0, siglen = 0, signed_len = 0, next = 0;
    char *keyid = NULL;
    int r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (blob == NULL || len == 0) {
        return blob == NULL && len != 0 ? SF_ERR_INVALID : SF_ERR_INCOMPLETE;
    }
    if (len > SF_KEYBLOB_MAX) {
        return SF_ERR_TOO_LARGE;
    }
    if ((c = sf_alloc(sizeof(*c))) == NULL) {
        return SF_ERR_NOMEM;
    }
    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_string(&b, &type, &tlen, SF_NAME_MAX)) != 0) {
        goto out;
    }
    if ((c->type = type_lookup(type, tlen)) == NULL) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if ((r = sf_buf_alloc(&kb, 128, SF_KEYBLOB_MAX)) != 0) {
        goto out;
    }
    if ((keyid = sf_alloc(SF_CERT_KEYID_MAX + 1)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = sf_buf_get_string(&b, &p, &plen, SF_CERT_NONCE_MAX)) != 0 || /* nonce */
        (r = get_key_fields(&b, c->type, &kb)) != 0 ||
        (r = sf_buf_get_u64(&b, &c->serial)) != 0 || (r = sf_buf_get_u32(&b, &c->kind)) != 0 ||
        (r = sf_buf_get_cstr(&b, keyid, SF_CERT_KEYID_MAX + 1)) != 0 ||
        (r = sf_buf_get_sub(&b, &list, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_get_u64(&b, &c->valid_after)) != 0 ||
        (r = sf_buf_get_u64(&b, &c->valid_before)) != 0 ||
        (r = sf_buf_get_sub(&b, &crit, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_get_sub(&b, &ext, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_get_string(&b, &p, &plen, SF_KEYBLOB_MAX)) != 0 || /* reserved */
        (r = sf_buf_get_string(&b, &ca, &calen, SF_KEYBLOB_MAX)) != 0) {
        goto out;
    }
    /* The signature covers every byte up to here. */
    signed_len = len - sf_buf_len(&b);
    if ((r = sf_buf_get_string(&b, &sig, &siglen, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_expect_end(&b)) != 0) {
        goto out;
    }
    if (c->kind != SF_CERT_USER && c->kind != SF_CERT_HOST) {
        r = SF_ERR_BAD_FORMAT;
        goto out;
    }
    if ((r = get_principals(&list, c)) != 0 || (r = get_options(&crit, &c->critical, &next)) != 0) {
        goto out;
    }
    c->ncritical = next;
    if ((r = get_options(&ext, NULL, &next)) != 0) {
        goto out;
    }
    if ((c->key_id = sf_strdup(keyid)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    /* The certified key: the checks of any plain key (curve point, RSA size, ...). */
    if ((r = sf_pubkey_from_plain_blob(sf_buf_ptr(&kb), sf_buf_len(&kb), &c->key)) != 0) {
        goto out;
    }
    /* The CA key: a plain key (a certificate type is refused here, so no chains). */
    if ((r = sf_pubkey_from_plain_blob(ca, calen, &c->ca)) != 0) {
        goto out;
    }
    if ((r = sig_name(sig, siglen, c->casig, sizeof(c->casig))) != 0) {
        r = SF_ERR_SIGNATURE;
        goto out;
    }
    if (ca_algs != NULL && !sf_list_has(ca_algs, c->casig, strlen(c->casig))) {
        r = SF_ERR_CERT;
        goto out;
    }
    if ((r = sf_pubkey_verify(c->ca, c->casig, sig, siglen, blob, signed_len)) != 0) {
        r = r == SF_ERR_NOMEM ? r : SF_ERR_SIGNATURE;
        goto out;
    }
    if ((c->blob = sf_alloc(len)) == NULL || (c->cablob = sf_alloc(calen)) == NULL ||
        (c->keyblob = sf_alloc(sf_buf_len(&kb))) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    memcpy(c->blob, blob, len);
    c->bloblen = len;
    memcpy(c->cablob, ca, calen);
    c->cablobsz = calen;
    c->keybloblen = sf_buf_len(&kb);
    memcpy(c->keyblob, sf_buf_ptr(&kb), c->keybloblen);
    *out = c;
    c = NULL;
    r = 0;
out:
    sf_free(keyid);
    sf_buf_free(&kb);
    sf_cert_free(c);
    return r;
}

int
sf_cert_from_blob(const uint8_t *blob, size_t len, struct sf_cert **out)
{
    return sf_cert_from_blob_algs(blob, len, sf_cert_ca_default_algs, out);
}

/* Read the whole file (at most SF_CERT_FILE_MAX bytes) into a fresh buffer. */
static int
read_file(const char *path, char **out, size_t *outlen)
{
    char *d = NULL;
    size_t len = 0;
    int fd = -1;
    int r;

    *out = NULL;
    *outlen = 0;
    if ((d = sf_alloc(SF_CERT_FILE_MAX + 1)) == NULL) {
        return SF_ERR_NOMEM;
    }
    /* O_NONBLOCK: a FIFO must not hang us (no effect on regular files). */
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
        r = SF_ERR_FILE;
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, d + len, SF_CERT_FILE_MAX + 1 - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            r = SF_ERR_FILE;
            goto out;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
        if (len > SF_CERT_FILE_MAX) {
            r = SF_ERR_FILE; /* no certificate file is this large */
            goto out;
        }
    }
    d[len] = '\0';
    *out = d;
    *outlen = len;
    d = NULL;
    r = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    sf_free(d);
    return r;
}

static bool
is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

/* The next blank-separated word of line[0, n) from *pos: [*w, *w + *wn). */
static bool
next_word(const char *line, size_t n, size_t *pos, const char **w, size_t *wn)
{
    size_t i = *pos;
    size_t start;

    while (i < n && is_blank(line[i])) {
        i++;
    }
    if (i == n) {
        *pos = i;
        return false;
    }
    start = i;
    while (i < n && !is_blank(line[i])) {
        i++;
    }
    *w = line + start;
    *wn = i - start;
    *pos = i;
    return true;
}

int
sf_cert_load_file(const char *path, struct sf_cert **out)
{
    char *text = NULL;
    uint8_t *blob = NULL;
    size_t len = 0, off = 0, bloblen = 0;
    int r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (path == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = read_file(path, &text, &len)) != 0) {
        goto out;
    }
    r = SF_ERR_KEY_TYPE; /* an empty file, or one without a certificate line */
    while (off < len) {
        const char *line = text + off;
        const char *nl = memchr(line, '\n', len - off);
        size_t n = nl != NULL ? (size_t)(nl - line) : len - off;
        const char *type = NULL, *b64 = NULL;
        size_t tn = 0, bn = 0, pos = 0;
        struct sf_buf v;
        char inner[SF_NAME_MAX + 1];

        off += nl != NULL ? n + 1 : n;
        if (!next_word(line, n, &pos, &type, &tn) || type[0] == '#') {
            continue;
        }
        /* "type base64 [comment]": the first such line decides. */
        if (!sf_cert_is_type(type, tn)) {
            r = SF_ERR_KEY_TYPE;
            goto out;
        }
        if (!next_word(line, n, &pos, &b64, &bn) || bn > (SF_KEYBLOB_MAX / 3 + 1) * 4) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        if ((blob = sf_alloc(SF_KEYBLOB_MAX + CERT_B64_SLACK)) == NULL) {
            r = SF_ERR_NOMEM;
            goto out;
        }
        if (sf_base64_decode(b64, bn, blob, SF_KEYBLOB_MAX + CERT_B64_SLACK, &bloblen) != 0 ||
            bloblen > SF_KEYBLOB_MAX) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        /* The type written in front must be the one inside the blob. */
        sf_buf_init_view(&v, blob, bloblen);
        if (sf_buf_get_cstr(&v, inner, sizeof(inner)) != 0 || strlen(inner) != tn ||
            memcmp(inner, type, tn) != 0) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        r = sf_cert_from_blob(blob, bloblen, out);
        goto out;
    }
out:
    sf_free(text);
    sf_free(blob);
    return r;
}

const uint8_t *
sf_cert_blob(const struct sf_cert *c, size_t *len)
{
    *len = c->bloblen;
    return c->blob;
}

const char *
sf_cert_type(const struct sf_cert *c)
{
    return c->type->name;
}

const char *
sf_cert_plain_type(const struct sf_cert *c)
{
    return c->type->plain;
}

const uint8_t *
sf_cert_key_blob(const struct sf_cert *c, size_t *len)
{
    *len = c->keybloblen;
    return c->keyblob;
}

const struct sf_pubkey *
sf_cert_key(const struct sf_cert *c)
{
    return c->key;
}

bool
sf_cert_certifies(const struct sf_cert *c, const uint8_t *keyblob, size_t len)
{
    return c != NULL && keyblob != NULL && len == c->keybloblen &&
           memcmp(keyblob, c->keyblob, len) == 0;
}

const uint8_t *
sf_cert_ca_blob(const struct sf_cert *c, size_t *len)
{
    *len = c->cablobsz;
    return c->cablob;
}

const char *
sf_cert_ca_sigalg(const struct sf_cert *c)
{
    return c->casig;
}

bool
sf_cert_ca_alg_ok(const struct sf_cert *c, const char *ca_algs)
{
    if (c == NULL) {
        return false;
    }
    if (ca_algs == NULL) {
        ca_algs = sf_cert_ca_default_algs;
    }
    return sf_list_has(ca_algs, c->casig, strlen(c->casig));
}

uint32_t
sf_cert_kind(const struct sf_cert *c)
{
    return c->kind;
}

uint64_t
sf_cert_serial(const struct sf_cert *c)
{
    return c->serial;
}

const char *
sf_cert_key_id(const struct sf_cert *c)
{
    return c->key_id;
}

size_t
sf_cert_nprincipals(const struct sf_cert *c)
{
    return c->nprincipals;
}

const char *
sf_cert_principal(const struct sf_cert *c, size_t i)
{
    return i < c->nprincipals ? c->principals[i] : NULL;
}

uint64_t
sf_cert_valid_after(const struct sf_cert *c)
{
    return c->valid_after;
}

uint64_t
sf_cert_valid_before(const struct sf_cert *c)
{
    return c->valid_before;
}

size_t
sf_cert_ncritical(const struct sf_cert *c)
{
    return c->ncritical;
}

const char *
sf_cert_critical_name(const struct sf_cert *c, size_t i)
{
    return i < c->ncritical ? c->critical[i] : NULL;
}

/* A certificate time as ssh-keygen -L shows it, in UTC; out has >= 32 bytes. */
static void
fmt_time(uint64_t t, char *out, size_t outsz)
{
    struct tm tm;
    time_t tt;

    if (t == UINT64_MAX) {
        snprintf(out, outsz, "forever");
        return;
    }
    tt = (time_t)t;
    if (t > (uint64_t)INT64_MAX || (uint64_t)tt != t || gmtime_r(&tt, &tm) == NULL ||
        strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, outsz, "%" PRIu64, t);
    }
}

static int
refuse(char *why, size_t whysz, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int
refuse(char *why, size_t whysz, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whysz > 0) {
        va_start(ap, fmt);
        (void)vsnprintf(why, whysz, fmt, ap);
        va_end(ap);
    }
    return SF_ERR_CERT;
}

int
sf_cert_check(const struct sf_cert *c, int type, const char *principal, uint64_t now, char *why,
              size_t whysz)
{
    char t[40];

    if (why != NULL && whysz > 0) {
        why[0] = '\0';
    }
    if (c == NULL || (type != SF_CERT_USER && type != SF_CERT_HOST)) {
        return SF_ERR_INVALID;
    }
    if (c->kind != (uint32_t)type) {
        return refuse(why, whysz, "it is a %s certificate, not a %s certificate",
                      c->kind == SF_CERT_HOST ? "host" : "user",
                      type == SF_CERT_HOST ? "host" : "user");
    }
    /* PROTOCOL.certkeys: valid after <= current time < valid before. */
    if (now < c->valid_after) {
        fmt_time(c->valid_after, t, sizeof(t));
        return refuse(why, whysz, "it is not yet valid (valid from %s)", t);
    }
    if (now >= c->valid_before) {
        fmt_time(c->valid_before, t, sizeof(t));
        return refuse(why, whysz, "it has expired (valid before %s)", t);
    }
    if (principal != NULL && c->nprincipals > 0) {
        size_t i;

        for (i = 0; i < c->nprincipals; i++) {
            if (strcmp(principal, c->principals[i]) == 0) {
                break;
            }
        }
        if (i == c->nprincipals) {
            return refuse(why, whysz, "\"%.64s\" is not among its %zu principal%s (first: \"%.64s\")",
                          principal, c->nprincipals, c->nprincipals == 1 ? "" : "s",
                          c->principals[0]);
        }
    }
    /*
     * No critical option is defined for host certificates, so any one is
     * unknown and refuses (PROTOCOL.certkeys "Critical options"). A user
     * certificate's options (force-command, source-address,
     * verify-required) restrict what the server allows; the server enforces
     * them, the client has nothing to check.
     */
    if (type == SF_CERT_HOST && c->ncritical > 0) {
        return refuse(why, whysz, "it has the critical option \"%.64s\", unknown for host certificates",
                      c->critical[0]);
    }
    return 0;
}
