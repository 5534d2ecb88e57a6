/*
 * src/hostauth.c -- host authenticators: is this server's host key the
 * right one?
 *
 * Kinds: a pinned SHA-256 fingerprint (any key type, or one type), a pinned
 * public key blob, an OpenSSH known_hosts file (knownhosts.c), a user
 * callback, and the insecure accept-anything (loud on stderr every time).
 * Seed syntax (the OCaml awa library's authenticator strings):
 *
 *     "SHA256:<base64 sha256>"       fingerprint, any key type
 *     "<keytype>:<base64 sha256>"    fingerprint and key type
 *     "<base64 public key blob>"     the key itself
 *
 * A host certificate (*-cert-v01@openssh.com) is parsed by cert.c. The
 * known_hosts kind decides on it with @cert-authority / @revoked lines
 * (knownhosts.c). Every other kind sees only the certified plain key: the
 * fingerprint and key authenticators compare it, and the callback gets its
 * type, blob and fingerprint -- a pinned key stays pinned whether or not the
 * server wraps it in a certificate, as OpenSSH downgrades a certificate it
 * has no CA for to its plain key.
 *
 * Owns: struct sshflow_hostauth, parsing those strings, and the decision in
 * sf_hostauth_check(). Must never: talk to the network, parse key material
 * (only the type name in front of a blob and the shape of its fields;
 * certificates are cert.c's), or accept a key without a positive match
 * (except the insecure kind, which says so on stderr).
 */
#include "hostauth.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "buf.h"
#include "cert.h"
#include "key.h"
#include "knownhosts.h"

#define HA_SPEC_MAX 8192          /* longest authenticator string we parse */
#define HA_DIGEST_LEN 32          /* SHA-256 */
#define HA_FP_MAX 96              /* "SHA256:" + 43, with room (key.h wants >= 64) */
#define HA_B64_SLACK 4            /* decoders may want room for a whole quantum */

enum ha_kind {
    HA_FP_ANY,      /* SHA256:<fp> */
    HA_FP_TYPED,    /* <type>:<fp> */
    HA_KEY,         /* <blob> */
    HA_KNOWN_HOSTS, /* known_hosts file */
    HA_CALLBACK,    /* user callback */
    HA_INSECURE,    /* accept anything */
};

/* Immutable after construction, so checks on several threads may share one. */
struct sshflow_hostauth {
    enum ha_kind kind;
    char keytype[SF_NAME_MAX + 1];  /* HA_FP_TYPED, HA_KEY; else "" */
    uint8_t digest[HA_DIGEST_LEN];  /* HA_FP_ANY, HA_FP_TYPED */
    uint8_t *blob;                  /* HA_KEY */
    size_t bloblen;
    char *path;                     /* HA_KNOWN_HOSTS; NULL: default, resolved per check */
    enum sshflow_hostkey_policy policy;
    sshflow_hostkey_cb cb;          /* HA_CALLBACK */
    void *user;
};

/* Key types an authenticator string may name (short names as awa spells them). */
static const struct {
    const char *name;
    const char *alias;
} ha_types[] = {
    { "ssh-ed25519", "ed25519" },
    { "ecdsa-sha2-nistp256", NULL },
    { "ecdsa-sha2-nistp384", NULL },
    { "ecdsa-sha2-nistp521", NULL },
    { "ssh-rsa", "rsa" },
};

static bool
eq_nocase(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    size_t i;

    if (an != bn) {
        return false;
    }
    for (i = 0; i < an; i++) {
        char x = a[i];
        char y = b[i];

        x = (x >= 'A' && x <= 'Z') ? (char)(x - 'A' + 'a') : x;
        y = (y >= 'A' && y <= 'Z') ? (char)(y - 'A' + 'a') : y;
        if (x != y) {
            return false;
        }
    }
    return true;
}

/* Canonical type name for name[n] (full or short, any case), or NULL. */
static const char *
type_lookup(const char *name, size_t n)
{
    size_t i;

    for (i = 0; i < sizeof(ha_types) / sizeof(ha_types[0]); i++) {
        if (eq_nocase(name, n, ha_types[i].name) ||
            (ha_types[i].alias != NULL && eq_nocase(name, n, ha_types[i].alias))) {
            return ha_types[i].name;
        }
    }
    return NULL;
}

/* A key type name as it may appear in a blob: 1..SF_NAME_MAX printable ASCII, no blanks. */
static bool
type_name_ok(const char *t)
{
    size_t i;

    for (i = 0; t[i] != '\0'; i++) {
        if (t[i] <= ' ' || t[i] >= 0x7f || t[i] == ',') {
            return false;
        }
    }
    return i > 0;
}

/* RFC 4253 s6.6: a public key blob starts with string type-name. */
static int
blob_type(const uint8_t *blob, size_t len, char *out, size_t outsz)
{
    struct sf_buf b;
    int r;

    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_cstr(&b, out, outsz)) != 0) {
        return r;
    }
    return type_name_ok(out) ? 0 : SF_ERR_BAD_FORMAT;
}

/* ------------------------------------------------------------------------ */
/* Constructors                                                             */
/* ------------------------------------------------------------------------ */

static sshflow_hostauth *
ha_new(enum ha_kind kind)
{
    sshflow_hostauth *a = sf_alloc(sizeof(*a));

    if (a != NULL) {
        a->kind = kind;
    }
    return a;
}

/* Parse "SHA256:<b64>" / "<type>:<b64>" (the part after the colon is fp[n]). */
static int
parse_fingerprint(sshflow_hostauth *a, const char *prefix, size_t plen, const char *fp, size_t n,
                  sshflow_error *err)
{
    uint8_t digest[HA_DIGEST_LEN + HA_B64_SLACK];
    const char *canon = NULL;
    size_t dlen = 0;
    int r;

    if (eq_nocase(prefix, plen, "SHA256")) {
        a->kind = HA_FP_ANY;
    } else if ((canon = type_lookup(prefix, plen)) != NULL) {
        a->kind = HA_FP_TYPED;
        snprintf(a->keytype, sizeof(a->keytype), "%s", canon);
        /* Tolerate "ssh-ed25519:SHA256:<b64>", as people paste ssh-keygen -l output. */
        if (n > 7 && eq_nocase(fp, 7, "SHA256:")) {
            fp += 7;
            n -= 7;
        }
    } else {
        sf_err_set(err, SF_ERR_INVALID,
                   "host authenticator: unknown key type \"%.*s\" (expected SHA256, "
                   "ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa, ed25519 or rsa)",
                   (int)SF_MIN(plen, (size_t)SF_NAME_MAX), prefix);
        return SF_ERR_INVALID;
    }
    if ((r = sf_base64_decode(fp, n, digest, sizeof(digest), &dlen)) != 0 ||
        dlen != HA_DIGEST_LEN) {
        if (r == SF_ERR_NOMEM) {
            sf_err_set(err, r, "host authenticator: out of memory");
            return r;
        }
        sf_err_set(err, SF_ERR_INVALID,
                   "host authenticator: the fingerprint after \"%.*s:\" is not the base64 of "
                   "a 32-byte SHA-256 digest",
                   (int)SF_MIN(plen, (size_t)SF_NAME_MAX), prefix);
        return SF_ERR_INVALID;
    }
    memcpy(a->digest, digest, HA_DIGEST_LEN);
    return 0;
}

/* Parse "<base64 public key blob>". */
static int
parse_blob(sshflow_hostauth *a, const char *spec, size_t n, sshflow_error *err)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    int r;

    if ((blob = sf_alloc(SF_KEYBLOB_MAX + HA_B64_SLACK)) == NULL) {
        r = SF_ERR_NOMEM;
        sf_err_set(err, r, "host authenticator: out of memory");
        goto out;
    }
    if (n > (SF_KEYBLOB_MAX / 3 + 1) * 4 ||
        (r = sf_base64_decode(spec, n, blob, SF_KEYBLOB_MAX + HA_B64_SLACK, &len)) != 0 ||
        len > SF_KEYBLOB_MAX) {
        r = SF_ERR_INVALID;
        sf_err_set(err, r,
                   "host authenticator: expected \"SHA256:<fingerprint>\", "
                   "\"<keytype>:<fingerprint>\" or a base64 public key, got something else");
        goto out;
    }
    if ((r = sf_knownhosts_blob_check(blob, len, a->keytype, sizeof(a->keytype))) != 0) {
        r = SF_ERR_INVALID;
        sf_err_set(err, r,
                   "host authenticator: the base64 string is not a complete ssh-ed25519, "
                   "ecdsa-sha2-nistp256/384/521 or ssh-rsa public key blob");
        a->keytype[0] = '\0';
        goto out;
    }
    a->kind = HA_KEY;
    a->blob = blob;
    a->bloblen = len;
    blob = NULL;
    r = 0;
out:
    sf_free(blob);
    return r;
}

SSHFLOW_API sshflow_hostauth *
sshflow_hostauth_parse(const char *spec, sshflow_error *err)
{
    sshflow_hostauth *a = NULL;
    const char *colon = NULL;
    size_t n = 0;
    int r;

    if (spec == NULL || (n = strnlen(spec, HA_SPEC_MAX + 1)) == 0) {
        sf_err_set(err, SF_ERR_INVALID, "host authenticator: empty string");
        return NULL;
    }
    if (n > HA_SPEC_MAX) {
        sf_err_set(err, SF_ERR_INVALID, "host authenticator: string longer than %d bytes",
                   HA_SPEC_MAX);
        return NULL;
    }
    if ((a = ha_new(HA_KEY)) == NULL) {
        sf_err_set(err, SF_ERR_NOMEM, "host authenticator: out of memory");
        return NULL;
    }
    if ((colon = memchr(spec, ':', n)) != NULL) {
        r = parse_fingerprint(a, spec, (size_t)(colon - spec), colon + 1,
                              n - (size_t)(colon - spec) - 1, err);
    } else {
        r = parse_blob(a, spec, n, err);
    }
    if (r != 0) {
        sshflow_hostauth_free(a);
        return NULL;
    }
    return a;
}

SSHFLOW_API sshflow_hostauth *
sshflow_hostauth_known_hosts(const char *path, enum sshflow_hostkey_policy policy)
{
    sshflow_hostauth *a = NULL;

    if (policy != SSHFLOW_HOSTKEY_STRICT && policy != SSHFLOW_HOSTKEY_ACCEPT_NEW) {
        return NULL; /* a caller bug; refusing beats guessing a policy */
    }
    if ((a = ha_new(HA_KNOWN_HOSTS)) == NULL) {
        return NULL;
    }
    a->policy = policy;
    if (path != NULL && (a->path = sf_strdup(path)) == NULL) {
        sf_free(a);
        return NULL;
    }
    return a;
}

SSHFLOW_API sshflow_hostauth *
sshflow_hostauth_callback(sshflow_hostkey_cb cb, void *user)
{
    sshflow_hostauth *a = NULL;

    if (cb == NULL || (a = ha_new(HA_CALLBACK)) == NULL) {
        return NULL;
    }
    a->cb = cb;
    a->user = user;
    return a;
}

SSHFLOW_API sshflow_hostauth *
sshflow_hostauth_insecure_accept_any(void)
{
    return ha_new(HA_INSECURE);
}

SSHFLOW_API void
sshflow_hostauth_free(sshflow_hostauth *a)
{
    if (a == NULL) {
        return;
    }
    sf_free(a->blob);
    sf_free(a->path);
    sf_free(a);
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                   */
/* ------------------------------------------------------------------------ */

/* The pinned digest as ssh-keygen prints it, for messages. */
static void
pinned_fp(const sshflow_hostauth *a, char *out, size_t outsz)
{
    char b64[64];

    if (sf_base64_encode(a->digest, HA_DIGEST_LEN, false, b64, sizeof(b64)) != 0) {
        snprintf(out, outsz, "SHA256:?");
        return;
    }
    snprintf(out, outsz, "SHA256:%s", b64);
}

static int
check_fingerprint(const sshflow_hostauth *a, const char *type, const char *fp,
                  sshflow_error *err)
{
    uint8_t digest[HA_DIGEST_LEN + HA_B64_SLACK];
    char want[HA_FP_MAX];
    size_t dlen = 0;
    int r;

    pinned_fp(a, want, sizeof(want));
    if (a->kind == HA_FP_TYPED && strcmp(type, a->keytype) != 0) {
        sf_err_set(err, SF_ERR_HOSTKEY,
                   "host key refused: the server sent a %s key (%s) but the authenticator "
                   "pins a %s key (%s)",
                   type, fp, a->keytype, want);
        return SF_ERR_HOSTKEY;
    }
    if (strncmp(fp, "SHA256:", 7) != 0 ||
        (r = sf_base64_decode(fp + 7, strlen(fp + 7), digest, sizeof(digest), &dlen)) != 0 ||
        dlen != HA_DIGEST_LEN) {
        sf_err_set(err, SF_ERR_INTERNAL, "host key fingerprint \"%s\" is malformed", fp);
        return SF_ERR_INTERNAL;
    }
    if (CRYPTO_memcmp(digest, a->digest, HA_DIGEST_LEN) != 0) {
        sf_err_set(err, SF_ERR_HOSTKEY,
                   "host key refused: the server's %s key is %s, the authenticator pins %s", type,
                   fp, want);
        return SF_ERR_HOSTKEY;
    }
    return 0;
}

static int
check_key(const sshflow_hostauth *a, const char *type, const uint8_t *blob, size_t len,
          const char *fp, sshflow_error *err)
{
    char want[HA_FP_MAX];

    if (len == a->bloblen && CRYPTO_memcmp(blob, a->blob, len) == 0) {
        return 0;
    }
    if (sf_fingerprint_sha256(a->blob, a->bloblen, want, sizeof(want)) != 0) {
        snprintf(want, sizeof(want), "?");
    }
    sf_err_set(err, SF_ERR_HOSTKEY,
               "host key refused: the server's %s key %s is not the pinned %s key %s", type, fp,
               a->keytype, want);
    return SF_ERR_HOSTKEY;
}

static int
no_host(const char *type, const char *fp, sshflow_error *err)
{
    sf_err_set(err, SF_ERR_HOSTKEY,
               "host key %s %s refused: no host name to look up in known_hosts (set HostName)",
               type, fp);
    return SF_ERR_HOSTKEY;
}

/* The decision on a plain key: type, blob and its fingerprint fp. */
static int
check_plain(const sshflow_hostauth *a, const char *host, uint16_t port, const char *type,
            const uint8_t *blob, size_t bloblen, const char *fp, sshflow_error *err)
{
    switch (a->kind) {
    case HA_FP_ANY:
    case HA_FP_TYPED:
        return check_fingerprint(a, type, fp, err);
    case HA_KEY:
        return check_key(a, type, blob, bloblen, fp, err);
    case HA_KNOWN_HOSTS:
        if (host == NULL) {
            return no_host(type, fp, err);
        }
        return sf_knownhosts_check(a->path, a->policy, host, port, type, blob, bloblen, fp, err);
    case HA_CALLBACK:
        if (a->cb(a->user, host, port, type, blob, bloblen, fp)) {
            return 0;
        }
        sf_err_set(err, SF_ERR_HOSTKEY, "host key %s %s refused by the callback", type, fp);
        return SF_ERR_HOSTKEY;
    case HA_INSECURE:
        /* One fprintf, so concurrent warnings do not interleave within a line. */
        fprintf(stderr, "WARNING: sshflow: host key NOT checked (insecure_accept_any): %s\n", fp);
        return 0;
    default:
        sf_err_set(err, SF_ERR_INTERNAL, "unknown host authenticator kind %d", (int)a->kind);
        return SF_ERR_INTERNAL;
    }
}

int
sf_hostauth_check(const sshflow_hostauth *a, const char *host, uint16_t port,
                  const uint8_t *blob, size_t bloblen, sshflow_error *err)
{
    char type[SF_NAME_MAX + 1];
    char fp[HA_FP_MAX];
    struct sf_cert *cert = NULL;
    const uint8_t *kb = NULL;
    size_t kblen = 0;
    time_t now;
    int r;

    if (a == NULL || blob == NULL || bloblen == 0 || bloblen > SF_KEYBLOB_MAX) {
        sf_err_set(err, SF_ERR_INVALID, "host key check without an authenticator or a key");
        return SF_ERR_INVALID;
    }
    if (blob_type(blob, bloblen, type, sizeof(type)) != 0) {
        sf_err_set(err, SF_ERR_INVALID, "host key blob does not start with a key type name");
        return SF_ERR_INVALID;
    }
    if (!sf_cert_is_type(type, strlen(type))) {
        if ((r = sf_fingerprint_sha256(blob, bloblen, fp, sizeof(fp))) != 0) {
            sf_err_set(err, r, "cannot compute the host key fingerprint");
            return r;
        }
        return check_plain(a, host, port, type, blob, bloblen, fp, err);
    }
    /*
     * A host certificate. Its CA signature is verified with any algorithm
     * here; knownhosts.c holds it to CASignatureAlgorithms before trusting
     * it, and everyone else looks at the plain key only.
     */
    if ((r = sf_cert_from_blob_algs(blob, bloblen, NULL, &cert)) != 0) {
        sf_err_set(err, r == SF_ERR_NOMEM ? r : SF_ERR_HOSTKEY,
                   "host certificate %s unusable: %s", type, sf_err_str(r));
        return r == SF_ERR_NOMEM ? r : SF_ERR_HOSTKEY;
    }
    kb = sf_cert_key_blob(cert, &kblen);
    if ((r = sf_fingerprint_sha256(kb, kblen, fp, sizeof(fp))) != 0) {
        sf_err_set(err, r, "cannot compute the host key fingerprint");
    } else if (a->kind == HA_KNOWN_HOSTS && host == NULL) {
        r = no_host(type, fp, err);
    } else if (a->kind == HA_KNOWN_HOSTS) {
        now = time(NULL);
        r = sf_knownhosts_check_cert(a->path, a->policy, host, port, cert,
                                     now < 0 ? 0 : (uint64_t)now, err);
    } else {
        r = check_plain(a, host, port, sf_cert_plain_type(cert), kb, kblen, fp, err);
    }
    sf_cert_free(cert);
    return r;
}

void
sf_hostauth_known_types(const sshflow_hostauth *a, const char *host, uint16_t port, char *out,
                        size_t outsz)
{
    if (out == NULL || outsz == 0) {
        return;
    }
    out[0] = '\0';
    if (a == NULL) {
        return;
    }
    switch (a->kind) {
    case HA_KNOWN_HOSTS:
        sf_knownhosts_types(a->path, host, port, out, outsz);
        return;
    case HA_FP_TYPED:
    case HA_KEY:
        if (strlen(a->keytype) < outsz) {
            snprintf(out, outsz, "%s", a->keytype);
        }
        return;
    case HA_FP_ANY:
    case HA_CALLBACK:
    case HA_INSECURE:
    default:
        return;
    }
}

bool
sf_hostauth_needs_host(const sshflow_hostauth *a)
{
    return a != NULL && a->kind == HA_KNOWN_HOSTS;
}
