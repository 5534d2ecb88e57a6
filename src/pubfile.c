/*
 * src/pubfile.c -- public key files and what ssh-keygen -l says about a key.
 *
 * Owns: the OpenSSH one-line public key form ("type base64 comment", as in
 * id_ed25519.pub, certificates included), RFC 4716 "SSH2 PUBLIC KEY" files,
 * a structural parser for public key and certificate blobs that yields the
 * size and display type ssh-keygen prints (ED25519, ECDSA, RSA, DSA, the
 * -SK and -CERT variants), the plain key inside a certificate, and MD5
 * fingerprints. Must never: trust a length it has not checked (everything
 * goes through struct sf_buf), accept a line whose type differs from the
 * type inside its blob, or verify anything cryptographically (a public key
 * file carries no proof; the certificate engineer's code checks signatures).
 */
#include "keyfile.h"

#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define PUB_RSA_MAX_BYTES (16384 / 8 + 1)
#define PUB_EC_MAX_FIELD 66
#define PUB_ED25519_LEN 32
#define PUB_CERT_SUFFIX "-cert-v01@openssh.com"
#define RFC4716_BEGIN "---- BEGIN SSH2 PUBLIC KEY ----"
#define RFC4716_END "---- END SSH2 PUBLIC KEY ----"
#define RFC4716_TAG_MAX 64    /* RFC 4716 s3.3 */
#define RFC4716_VALUE_MAX 1024 /* RFC 4716 s3.3 */

enum pub_family {
    FAM_ED25519,
    FAM_RSA,
    FAM_DSA,
    FAM_ECDSA,
    FAM_SK_ECDSA,
    FAM_SK_ED25519,
};

/* Key types as OpenSSH names them; sizes and display names as sshkey_size / sshkey_type. */
struct pub_type {
    const char *name;
    const char *cert;       /* its certificate type */
    enum pub_family fam;
    const char *curve;      /* ECDSA: curve identifier in the blob */
    size_t field;           /* ECDSA: field bytes */
    unsigned bits;          /* fixed size; 0: from the modulus */
    const char *upper;      /* ssh-keygen's display name */
    const char *cert_upper; /* same for the certificate */
};

static const struct pub_type pub_types[] = {
    { "ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", FAM_ED25519, NULL, 0, 256, "ED25519",
      "ED25519-CERT" },
    { "ssh-rsa", "ssh-rsa-cert-v01@openssh.com", FAM_RSA, NULL, 0, 0, "RSA", "RSA-CERT" },
    { "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256-cert-v01@openssh.com", FAM_ECDSA, "nistp256",
      32, 256, "ECDSA", "ECDSA-CERT" },
    { "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384-cert-v01@openssh.com", FAM_ECDSA, "nistp384",
      48, 384, "ECDSA", "ECDSA-CERT" },
    { "ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521-cert-v01@openssh.com", FAM_ECDSA, "nistp521",
      66, 521, "ECDSA", "ECDSA-CERT" },
    { "ssh-dss", "ssh-dss-cert-v01@openssh.com", FAM_DSA, NULL, 0, 0, "DSA", "DSA-CERT" },
    { "sk-ecdsa-sha2-nistp256@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
      FAM_SK_ECDSA, "nistp256", 32, 256, "ECDSA-SK", "ECDSA-SK-CERT" },
    { "sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com", FAM_SK_ED25519, NULL,
      0, 256, "ED25519-SK", "ED25519-SK-CERT" },
};

static bool
name_eq(const uint8_t *p, size_t n, const char *s)
{
    size_t sl = strlen(s);

    return n == sl && memcmp(p, s, n) == 0;
}

static const struct pub_type *
type_find(const uint8_t *name, size_t n, bool *cert)
{
    for (size_t i = 0; i < sizeof(pub_types) / sizeof(pub_types[0]); i++) {
        if (name_eq(name, n, pub_types[i].name)) {
            *cert = false;
            return &pub_types[i];
        }
        if (name_eq(name, n, pub_types[i].cert)) {
            *cert = true;
            return &pub_types[i];
        }
    }
    return NULL;
}

/* Bits of a big-endian magnitude without leading zero bytes (sf_buf_get_mpint_pos's view). */
static unsigned
magnitude_bits(const uint8_t *p, size_t n)
{
    unsigned bits;
    uint8_t top;

    if (n == 0) {
        return 0;
    }
    bits = (unsigned)(n - 1) * 8;
    for (top = p[0]; top != 0; top >>= 1) {
        bits++;
    }
    return bits;
}

/*
 * The key fields after the type name (RFC 4253 s6.6, RFC 5656 s3.1, RFC 8709
 * s4, PROTOCOL.u2f for the -sk types):
 *   ssh-ed25519   string pk(32)
 *   ssh-rsa       mpint e, mpint n
 *   ssh-dss       mpint p, q, g, y
 *   ecdsa-*       string curve, string Q (uncompressed point)
 *   sk-ecdsa-*    string curve, string Q, string application
 *   sk-ssh-ed25519 string pk(32), string application
 */
static int
key_fields(struct sf_buf *b, const struct pub_type *t, unsigned *bits)
{
    const uint8_t *v[4] = { NULL };
    size_t vl[4] = { 0 };
    int r;

    *bits = t->bits;
    switch (t->fam) {
    case FAM_ED25519:
    case FAM_SK_ED25519:
        if ((r = sf_buf_get_string(b, &v[0], &vl[0], PUB_ED25519_LEN)) != 0) {
            return r;
        }
        if (vl[0] != PUB_ED25519_LEN) {
            return SF_ERR_BAD_FORMAT;
        }
        break;
    case FAM_RSA:
        if ((r = sf_buf_get_mpint_pos(b, &v[0], &vl[0], PUB_RSA_MAX_BYTES)) != 0 ||
            (r = sf_buf_get_mpint_pos(b, &v[1], &vl[1], PUB_RSA_MAX_BYTES)) != 0) {
            return r;
        }
        if (vl[0] == 0 || vl[1] == 0) {
            return SF_ERR_BAD_FORMAT;
        }
        *bits = magnitude_bits(v[1], vl[1]);
        break;
    case FAM_DSA:
        for (size_t i = 0; i < 4; i++) {
            if ((r = sf_buf_get_mpint_pos(b, &v[i], &vl[i], PUB_RSA_MAX_BYTES)) != 0) {
                return r;
            }
            if (vl[i] == 0) {
                return SF_ERR_BAD_FORMAT;
            }
        }
        *bits = magnitude_bits(v[0], vl[0]);
        break;
    case FAM_ECDSA:
    case FAM_SK_ECDSA:
        if ((r = sf_buf_get_string(b, &v[0], &vl[0], SF_NAME_MAX)) != 0 ||
            (r = sf_buf_get_string(b, &v[1], &vl[1], 1 + 2 * PUB_EC_MAX_FIELD)) != 0) {
            return r;
        }
        if (!name_eq(v[0], vl[0], t->curve) || vl[1] != 1 + 2 * t->field || v[1][0] != 0x04) {
            return SF_ERR_BAD_FORMAT;
        }
        break;
    default:
        return SF_ERR_INTERNAL;
    }
    if (t->fam == FAM_SK_ECDSA || t->fam == FAM_SK_ED25519) {
        if ((r = sf_buf_get_string(b, &v[2], &vl[2], SF_STRING_MAX)) != 0) {
            return r;
        }
    }
    return 0;
}

/*
 * PROTOCOL.certkeys: after the type,
 *   string nonce, <key fields>, uint64 serial, uint32 type, string key id,
 *   string valid principals, uint64 valid after, uint64 valid before,
 *   string critical options, string extensions, string reserved,
 *   string signature key, string signature
 * Only the structure is checked here (the signature is not verified).
 */
struct pub_parsed {
    const struct pub_type *type;
    bool cert;
    unsigned bits;
    const uint8_t *fields; /* the key fields, for the plain blob */
    size_t fieldslen;
};

static int
pub_parse(const uint8_t *blob, size_t len, struct pub_parsed *pp)
{
    struct sf_buf b;
    const uint8_t *name = NULL, *s = NULL;
    size_t namelen = 0, sl = 0, start;
    uint64_t u64 = 0;
    uint32_t u32 = 0;
    int r;

    memset(pp, 0, sizeof(*pp));
    if (blob == NULL) {
        return SF_ERR_INVALID;
    }
    sf_buf_init_view(&b, blob, len);
    if ((r = sf_buf_get_string(&b, &name, &namelen, SF_NAME_MAX)) != 0) {
        return r;
    }
    if ((pp->type = type_find(name, namelen, &pp->cert)) == NULL) {
        return SF_ERR_KEY_TYPE;
    }
    if (pp->cert && (r = sf_buf_get_string(&b, &s, &sl, SF_STRING_MAX)) != 0) {
        return r; /* nonce */
    }
    start = len - sf_buf_len(&b);
    if ((r = key_fields(&b, pp->type, &pp->bits)) != 0) {
        return r;
    }
    pp->fields = blob + start;
    pp->fieldslen = len - sf_buf_len(&b) - start;
    if (pp->cert) {
        if ((r = sf_buf_get_u64(&b, &u64)) != 0 || (r = sf_buf_get_u32(&b, &u32)) != 0) {
            return r;
        }
        /* key id, principals; then validity; then options, extensions, reserved, CA key, signature */
        for (size_t i = 0; i < 2; i++) {
            if ((r = sf_buf_get_string(&b, &s, &sl, SF_KEYBLOB_MAX)) != 0) {
                return r;
            }
        }
        if ((r = sf_buf_get_u64(&b, &u64)) != 0 || (r = sf_buf_get_u64(&b, &u64)) != 0) {
            return r;
        }
        for (size_t i = 0; i < 5; i++) {
            if ((r = sf_buf_get_string(&b, &s, &sl, SF_KEYBLOB_MAX)) != 0) {
                return r;
            }
        }
    }
    return sf_buf_expect_end(&b);
}

int
sf_key_bits(const uint8_t *blob, size_t len, unsigned *bits, const char **typename_upper)
{
    struct pub_parsed pp;
    int r;

    if (bits != NULL) {
        *bits = 0;
    }
    if (typename_upper != NULL) {
        *typename_upper = NULL;
    }
    if ((r = pub_parse(blob, len, &pp)) != 0) {
        return r == SF_ERR_INVALID ? r : SF_ERR_KEY_TYPE;
    }
    if (bits != NULL) {
        *bits = pp.bits;
    }
    if (typename_upper != NULL) {
        *typename_upper = pp.cert ? pp.type->cert_upper : pp.type->upper;
    }
    return 0;
}

int
sf_key_plain_blob(const uint8_t *blob, size_t len, struct sf_buf *out)
{
    struct pub_parsed pp;
    struct sf_buf tmp = { 0 };
    int r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = pub_parse(blob, len, &pp)) != 0) {
        return r == SF_ERR_INVALID ? r : SF_ERR_KEY_TYPE;
    }
    if (!pp.cert) {
        return sf_buf_put_bytes(out, blob, len);
    }
    /* Built aside so that out gets all of it or nothing. */
    if ((r = sf_buf_alloc(&tmp, pp.fieldslen + 64, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_put_cstr(&tmp, pp.type->name)) != 0 ||
        (r = sf_buf_put_bytes(&tmp, pp.fields, pp.fieldslen)) != 0) {
        goto out;
    }
    r = sf_buf_put_bytes(out, sf_buf_ptr(&tmp), sf_buf_len(&tmp));
out:
    sf_buf_free(&tmp);
    return r;
}

int
sf_fingerprint_md5(const uint8_t *blob, size_t len, char *out, size_t outsz)
{
    static const char hex[] = "0123456789abcdef";
    static const char prefix[] = "MD5:";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t o;

    if (out == NULL || outsz == 0) {
        return SF_ERR_NO_SPACE;
    }
    out[0] = '\0';
    if (blob == NULL && len != 0) {
        return SF_ERR_INVALID;
    }
    /* "MD5:" + 16 * "xx:" - 1 + NUL */
    if (outsz < sizeof(prefix) - 1 + 16 * 3) {
        return SF_ERR_NO_SPACE;
    }
    if (EVP_Digest(blob != NULL ? blob : md, len, md, &mdlen, EVP_md5(), NULL) != 1 ||
        mdlen != 16) {
        return SF_ERR_CRYPTO;
    }
    memcpy(out, prefix, sizeof(prefix) - 1);
    o = sizeof(prefix) - 1;
    for (size_t i = 0; i < mdlen; i++) {
        if (i != 0) {
            out[o++] = ':';
        }
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 0x0f];
    }
    out[o] = '\0';
    return 0;
}

/* ---- text ---- */

/* Next line of b without its '\n' (a '\r' before it stays: callers decide). */
static bool
line_next(struct sf_buf *b, const uint8_t **line, size_t *n)
{
    const uint8_t *p = sf_buf_ptr(b), *nl = NULL;
    size_t avail = sf_buf_len(b), take;

    *line = NULL;
    *n = 0;
    if (avail == 0) {
        return false;
    }
    nl = memchr(p, '\n', avail);
    *n = nl != NULL ? (size_t)(nl - p) : avail;
    take = nl != NULL ? *n + 1 : avail;
    if (sf_buf_skip(b, take) != 0) {
        return false;
    }
    *line = p;
    return true;
}

static bool
is_space(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* Trim blanks, '\r' included, at both ends. */
static void
trim(const uint8_t **p, size_t *n)
{
    while (*n > 0 && (is_space((*p)[*n - 1]) || (*p)[*n - 1] == '\r')) {
        (*n)--;
    }
    while (*n > 0 && (is_space((*p)[0]) || (*p)[0] == '\r')) {
        (*p)++;
        (*n)--;
    }
}

static int
comment_put(char *comment, size_t commentsz, const uint8_t *p, size_t n)
{
    if (comment == NULL) {
        return 0;
    }
    if (n >= commentsz || n > SF_KEYFILE_COMMENT_MAX) {
        return SF_ERR_NO_SPACE;
    }
    if (memchr(p, '\0', n) != NULL) {
        return SF_ERR_KEY_TYPE;
    }
    memcpy(comment, p, n);
    comment[n] = '\0';
    return 0;
}

/* Decode base64 text (n bytes) and check the blob: its type name must be `type` (if given). */
static int
blob_put(const uint8_t *text, size_t n, const uint8_t *type, size_t typelen,
         struct sf_buf *blob_out)
{
    struct pub_parsed pp;
    uint8_t *dec = NULL;
    size_t cap = n / 4 * 3 + 3, declen = 0;
    const uint8_t *name = NULL;
    size_t namelen = 0;
    struct sf_buf b;
    int r;

    if (n == 0 || n > SF_KEYBLOB_MAX * 2) {
        return SF_ERR_KEY_TYPE;
    }
    if ((dec = sf_alloc(cap)) == NULL) {
        return SF_ERR_NOMEM;
    }
    if ((r = sf_base64_decode((const char *)text, n, dec, cap, &declen)) != 0) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if ((r = pub_parse(dec, declen, &pp)) != 0) {
        r = r == SF_ERR_NOMEM ? r : SF_ERR_KEY_TYPE;
        goto out;
    }
    sf_buf_init_view(&b, dec, declen);
    if ((r = sf_buf_get_string(&b, &name, &namelen, SF_NAME_MAX)) != 0) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if (type != NULL && (namelen != typelen || memcmp(name, type, typelen) != 0)) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    r = sf_buf_put_bytes(blob_out, dec, declen);
out:
    sf_free(dec);
    return r;
}

/*
 * The OpenSSH form, one key line: [blanks] type blanks base64 [blanks
 * comment]. The comment runs to the end of the line (a trailing '\r'
 * removed; other trailing blanks kept, as ssh-keygen keeps them).
 */
static int
oneline_parse(struct sf_buf *b, struct sf_buf *blob_out, char *comment, size_t commentsz)
{
    const uint8_t *line = NULL, *p = NULL, *type = NULL, *text = NULL;
    size_t n = 0, i, typelen, textlen;
    bool found = false;
    int r;

    while (line_next(b, &line, &n)) {
        p = line;
        i = 0;
        while (i < n && (is_space(p[i]) || p[i] == '\r')) {
            i++;
        }
        if (i == n || p[i] == '#') {
            continue; /* blank or comment line */
        }
        if (found) {
            return SF_ERR_KEY_TYPE; /* a second key: not a .pub file */
        }
        found = true;
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        type = p + i;
        while (i < n && !is_space(p[i])) {
            i++;
        }
        typelen = (size_t)(p + i - type);
        while (i < n && is_space(p[i])) {
            i++;
        }
        text = p + i;
        while (i < n && !is_space(p[i])) {
            i++;
        }
        textlen = (size_t)(p + i - text);
        while (i < n && is_space(p[i])) {
            i++;
        }
        if ((r = blob_put(text, textlen, type, typelen, blob_out)) != 0) {
            return r;
        }
        if ((r = comment_put(comment, commentsz, p + i, n - i)) != 0) {
            return r;
        }
    }
    return found ? 0 : SF_ERR_KEY_TYPE;
}

/*
 * RFC 4716 s3:
 *   ---- BEGIN SSH2 PUBLIC KEY ----
 *   Header-tag: header-value    (a line ending in '\' continues on the next)
 *   base64 body lines
 *   ---- END SSH2 PUBLIC KEY ----
 * The "Comment" header (tag case-insensitive) gives the comment, its
 * surrounding double quotes removed.
 */
static int
rfc4716_parse(struct sf_buf *b, struct sf_buf *blob_out, char *comment, size_t commentsz)
{
    const uint8_t *line = NULL, *colon = NULL;
    char *body = NULL, *value = NULL;
    size_t n = 0, bodylen = 0, valuelen = 0, bodycap = sf_buf_len(b) + 1;
    bool begun = false, ended = false, in_headers = true, continued = false, is_comment = false;
    bool have_comment = false;
    const uint8_t *cv = NULL;
    size_t cvlen = 0;
    int r;

    if (comment != NULL && commentsz > 0) {
        comment[0] = '\0';
    }
    if ((body = sf_alloc(bodycap)) == NULL || (value = sf_alloc(RFC4716_VALUE_MAX + 1)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    while (line_next(b, &line, &n)) {
        trim(&line, &n);
        if (!begun) {
            if (n == 0) {
                continue;
            }
            if (!name_eq(line, n, RFC4716_BEGIN)) {
                r = SF_ERR_KEY_TYPE;
                goto out;
            }
            begun = true;
            continue;
        }
        if (ended) {
            if (n != 0) {
                r = SF_ERR_KEY_TYPE; /* text after the END line */
                goto out;
            }
            continue;
        }
        if (continued) {
            /* Continuation of a header value. */
            continued = n > 0 && line[n - 1] == '\\';
            if (continued) {
                n--;
            }
            if (is_comment) {
                if (valuelen + n > RFC4716_VALUE_MAX) {
                    r = SF_ERR_KEY_TYPE;
                    goto out;
                }
                memcpy(value + valuelen, line, n);
                valuelen += n;
            }
            continue;
        }
        if (name_eq(line, n, RFC4716_END)) {
            ended = true;
            continue;
        }
        if (in_headers && n > 0 && (colon = memchr(line, ':', n)) != NULL) {
            size_t taglen = (size_t)(colon - line);
            const uint8_t *v = colon + 1;
            size_t vl = n - taglen - 1;

            if (taglen == 0 || taglen > RFC4716_TAG_MAX) {
                r = SF_ERR_KEY_TYPE;
                goto out;
            }
            is_comment = taglen == 7 && strncasecmp((const char *)line, "Comment", 7) == 0;
            while (vl > 0 && is_space(v[0])) {
                v++;
                vl--;
            }
            continued = vl > 0 && v[vl - 1] == '\\';
            if (continued) {
                vl--;
            }
            if (is_comment) {
                if (vl > RFC4716_VALUE_MAX) {
                    r = SF_ERR_KEY_TYPE;
                    goto out;
                }
                memcpy(value, v, vl);
                valuelen = vl;
                have_comment = true;
            }
            continue;
        }
        in_headers = false;
        if (n == 0) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (is_space(line[i])) {
                r = SF_ERR_KEY_TYPE;
                goto out;
            }
            body[bodylen++] = (char)line[i];
        }
    }
    if (!ended || continued || bodylen == 0) {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    if ((r = blob_put((const uint8_t *)body, bodylen, NULL, 0, blob_out)) != 0) {
        goto out;
    }
    if (have_comment) {
        cv = (const uint8_t *)value;
        cvlen = valuelen;
        if (cvlen >= 2 && cv[0] == '"' && cv[cvlen - 1] == '"') {
            cv++;
            cvlen -= 2;
        }
        r = comment_put(comment, commentsz, cv, cvlen);
    }
out:
    sf_free(body);
    sf_free(value);
    return r;
}

static bool
is_rfc4716(const uint8_t *data, size_t len)
{
    struct sf_buf b;
    const uint8_t *line = NULL;
    size_t n = 0;

    sf_buf_init_view(&b, data, len);
    while (line_next(&b, &line, &n)) {
        trim(&line, &n);
        if (n != 0) {
            return name_eq(line, n, RFC4716_BEGIN);
        }
    }
    return false;
}

int
sf_pubfile_parse(const uint8_t *data, size_t len, struct sf_buf *blob_out, char *comment,
                 size_t commentsz)
{
    struct sf_buf b, tmp = { 0 };
    int r;

    if (data == NULL || blob_out == NULL || (comment != NULL && commentsz == 0)) {
        return SF_ERR_INVALID;
    }
    if (comment != NULL) {
        comment[0] = '\0';
    }
    if (len > SF_KEYFILE_MAX) {
        return SF_ERR_KEY_TYPE;
    }
    /* Parsed aside so that blob_out gets the blob or nothing. */
    if ((r = sf_buf_alloc(&tmp, 512, SF_KEYBLOB_MAX)) != 0) {
        return r;
    }
    sf_buf_init_view(&b, data, len);
    if (is_rfc4716(data, len)) {
        r = rfc4716_parse(&b, &tmp, comment, commentsz);
    } else {
        r = oneline_parse(&b, &tmp, comment, commentsz);
    }
    if (r == 0) {
        r = sf_buf_put_bytes(blob_out, sf_buf_ptr(&tmp), sf_buf_len(&tmp));
    }
    if (r != 0 && comment != NULL) {
        comment[0] = '\0';
    }
    sf_buf_free(&tmp);
    if (r != 0 && r != SF_ERR_NOMEM && r != SF_ERR_NO_SPACE) {
        r = SF_ERR_KEY_TYPE; /* too long, truncated, ...: not a usable public key file */
    }
    return r;
}
