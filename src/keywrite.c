/*
 * src/keywrite.c -- making keys and saying what they are: key generation,
 * writing openssh-key-v1 files (plain or bcrypt + aes256-ctr) and ".pub"
 * lines as ssh-keygen writes them, and the fingerprint line ssh-keygen -l
 * prints for a key file. Public API: sshflow_keygen,
 * sshflow_key_fingerprint_file.
 *
 * Owns: the private key serialisation (the inverse of keyfile.c's parser),
 * the files sshflow_keygen creates (O_CREAT | O_EXCL, the private key 0600;
 * a file it created is removed again if writing fails), and the emulation
 * of ssh-keygen -l's choice of key and comment for a private key file.
 * Must never: overwrite or follow a symlink to an existing file, leave a
 * copy of private key material (serialised section, derived key, armour
 * text) unwiped, or ask for a passphrase.
 */
#include "keyfile.h"

#include "bcrypt_pbkdf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define KW_MAGIC "openssh-key-v1" /* written with its NUL: 15 bytes */
#define KW_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define KW_END "-----END OPENSSH PRIVATE KEY-----\n"
#define KW_CIPHER "aes256-ctr"
#define KW_NONE_BLOCK 8
#define KW_SECTION_MAX (64 * 1024) /* serialised private section (RSA 16384: ~7.5 KiB) */
#define KW_TEXT_MAX (SF_BUF_MAX)   /* armoured output */
#define KW_RSA_BITS_MIN 2048
#define KW_RSA_BITS_MAX 16384
#define KW_RSA_BITS_DEFAULT 3072
#define KW_EC_FIELD_MAX 66
#define KW_ED25519_LEN 32
#define KW_LINE_MAX 2048 /* longest fingerprint line we build */

/* ---- generation ---- */

int
sf_privkey_generate(const char *type, unsigned bits, struct sf_privkey **out)
{
    EVP_PKEY *pk = NULL;
    const char *group = NULL;
    int r;

    if (out == NULL) {
        return SF_ERR_INVALID;
    }
    *out = NULL;
    if (type == NULL) {
        return SF_ERR_INVALID;
    }
    if (strcmp(type, "ed25519") == 0) {
        if (bits != 0 && bits != 256) {
            return SF_ERR_INVALID;
        }
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    } else if (strcmp(type, "ecdsa") == 0) {
        switch (bits) {
        case 0:
        case 256:
            group = "P-256";
            break;
        case 384:
            group = "P-384";
            break;
        case 521:
            group = "P-521";
            break;
        default:
            return SF_ERR_INVALID;
        }
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    } else if (strcmp(type, "rsa") == 0) {
        if (bits == 0) {
            bits = KW_RSA_BITS_DEFAULT;
        }
        if (bits < KW_RSA_BITS_MIN || bits > KW_RSA_BITS_MAX) {
            return SF_ERR_INVALID;
        }
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    } else {
        return SF_ERR_INVALID;
    }
    if (pk == NULL) {
        ERR_clear_error();
        return SF_ERR_CRYPTO;
    }
    r = sf_privkey_from_pkey(&pk, out);
    EVP_PKEY_free(pk);
    return r;
}

/* ---- serialisation ---- */

/* A secret BIGNUM parameter of pk as an mpint. */
static int
put_bn_param(struct sf_buf *b, EVP_PKEY *pk, const char *param)
{
    BIGNUM *bn = NULL;
    uint8_t *bin = NULL;
    size_t n = 0;
    int r;

    if (EVP_PKEY_get_bn_param(pk, param, &bn) != 1) {
        ERR_clear_error();
        return SF_ERR_KEY_TYPE;
    }
    n = (size_t)BN_num_bytes(bn);
    if ((bin = sf_alloc(n + 1)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if (BN_bn2bin(bn, bin) != (int)n) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    r = sf_buf_put_mpint(b, bin, n);
out:
    sf_freezero(bin, n + 1);
    BN_clear_free(bn);
    return r;
}

/*
 * The private key fields as OpenSSH serialises them (the agent's order),
 * type name first:
 *   ssh-ed25519   string pk, string seed || pk
 *   ecdsa-*       string curve, string Q, mpint d
 *   ssh-rsa       mpint n, e, d, iqmp, p, q
 */
static int
put_private(struct sf_buf *b, const struct sf_privkey *k)
{
    EVP_PKEY *pk = sf_privkey_pkey(k);
    struct sf_buf pub = { 0 }, view;
    const uint8_t *type = NULL, *f1 = NULL, *f2 = NULL;
    size_t typelen = 0, f1len = 0, f2len = 0, seedlen = KW_ED25519_LEN;
    uint8_t seed[2 * KW_ED25519_LEN];
    int r;

    if (pk == NULL) {
        return SF_ERR_INVALID;
    }
    if ((r = sf_buf_alloc(&pub, 256, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_privkey_pubblob(k, &pub)) != 0) {
        goto out;
    }
    sf_buf_init_view(&view, sf_buf_ptr(&pub), sf_buf_len(&pub));
    if ((r = sf_buf_get_string(&view, &type, &typelen, SF_NAME_MAX)) != 0) {
        goto out;
    }
    if ((r = sf_buf_put_string(b, type, typelen)) != 0) {
        goto out;
    }
    if (EVP_PKEY_is_a(pk, "ED25519")) {
        if ((r = sf_buf_get_string(&view, &f1, &f1len, KW_ED25519_LEN)) != 0) {
            goto out;
        }
        if (f1len != KW_ED25519_LEN ||
            EVP_PKEY_get_raw_private_key(pk, seed, &seedlen) != 1 || seedlen != KW_ED25519_LEN) {
            r = SF_ERR_KEY_TYPE;
            goto out;
        }
        memcpy(seed + KW_ED25519_LEN, f1, KW_ED25519_LEN);
        if ((r = sf_buf_put_string(b, f1, f1len)) != 0 ||
            (r = sf_buf_put_string(b, seed, sizeof(seed))) != 0) {
            goto out;
        }
    } else if (EVP_PKEY_is_a(pk, "EC")) {
        if ((r = sf_buf_get_string(&view, &f1, &f1len, SF_NAME_MAX)) != 0 ||
            (r = sf_buf_get_string(&view, &f2, &f2len, 1 + 2 * KW_EC_FIELD_MAX)) != 0) {
            goto out;
        }
        if ((r = sf_buf_put_string(b, f1, f1len)) != 0 ||
            (r = sf_buf_put_string(b, f2, f2len)) != 0 ||
            (r = put_bn_param(b, pk, OSSL_PKEY_PARAM_PRIV_KEY)) != 0) {
            goto out;
        }
    } else if (EVP_PKEY_is_a(pk, "RSA")) {
        if ((r = put_bn_param(b, pk, OSSL_PKEY_PARAM_RSA_N)) != 0 ||
            (r = put_bn_param(b, pk, OSSL_PKEY_PARAM_RSA_E)) != 0 ||
            (r = put_bn_param(b, pk, OSSL_PKEY_PARAM_RSA_D)) != 0 ||
            (r = put_bn_param(b, pk, OSSL_PKEY_PARAM_RSA_COEFFICIENT1)) != 0 ||
            (r = put_bn_param(b, pk, OSSL_PKEY_PARAM_RSA_FACTOR1)) != 0 ||
            (r = put_bn_param(b, pk, OSSL_PKEY_PARAM_RSA_FACTOR2)) != 0) {
            goto out;
        }
    } else {
        r = SF_ERR_KEY_TYPE;
        goto out;
    }
    r = 0;
out:
    sf_wipe(seed, sizeof(seed));
    sf_buf_free(&pub);
    return r;
}

/* Base64 of payload in 70-column lines between the armour lines (sshbuf_dtob64 with wrap). */
static int
armour(const uint8_t *payload, size_t len, struct sf_buf *out)
{
    size_t tsz = (len + 2) / 3 * 4 + 1, tlen, at;
    char *text = NULL;
    int r;

    if ((text = sf_alloc(tsz)) == NULL) {
        return SF_ERR_NOMEM;
    }
    if ((r = sf_base64_encode(payload, len, true, text, tsz)) != 0) {
        goto out;
    }
    tlen = strlen(text);
    if ((r = sf_buf_put_bytes(out, KW_BEGIN, strlen(KW_BEGIN))) != 0) {
        goto out;
    }
    for (at = 0; at < tlen; at += SF_KEYFILE_LINE) {
        size_t n = SF_MIN(tlen - at, (size_t)SF_KEYFILE_LINE);

        if ((r = sf_buf_put_bytes(out, text + at, n)) != 0 ||
            (r = sf_buf_put_u8(out, '\n')) != 0) {
            goto out;
        }
    }
    r = sf_buf_put_bytes(out, KW_END, strlen(KW_END));
out:
    sf_freezero(text, tsz);
    return r;
}

/*
 * PROTOCOL.key, as sshkey_private_to_blob2 writes it:
 *   "openssh-key-v1\0", string cipher, string kdf, string kdfoptions
 *   (string salt, uint32 rounds), uint32 1, string public key,
 *   string encrypted(uint32 check, uint32 check, private key, string
 *   comment, padding 1, 2, 3, ... to the block size)
 */
int
sf_privkey_write_openssh(const struct sf_privkey *k, const char *comment,
                         const char *passphrase, unsigned rounds, struct sf_buf *out)
{
    struct sf_buf payload = { 0 }, sect = { 0 }, kdf = { 0 }, pub = { 0 }, text = { 0 };
    uint8_t salt[SF_KEYFILE_SALT_LEN], keyiv[64], check[4];
    size_t keylen = 0, ivlen = 0, blocklen = KW_NONE_BLOCK, taglen = 0;
    bool encrypt = passphrase != NULL && passphrase[0] != '\0';
    uint8_t pad = 0;
    int r;

    if (k == NULL || out == NULL) {
        return SF_ERR_INVALID;
    }
    if (comment == NULL) {
        comment = "";
    }
    if (strlen(comment) > SF_KEYFILE_COMMENT_MAX) {
        return SF_ERR_INVALID;
    }
    if (rounds == 0) {
        rounds = SF_KEYFILE_ROUNDS_DEFAULT;
    }
    if (rounds > SF_KEYFILE_ROUNDS_MAX) {
        return SF_ERR_INVALID;
    }
    if (encrypt) {
        if (!sf_keyfile_cipher_sizes(KW_CIPHER, &keylen, &ivlen, &blocklen, &taglen) ||
            keylen + ivlen > sizeof(keyiv)) {
            return SF_ERR_INTERNAL;
        }
    }
    if ((r = sf_buf_alloc(&payload, 1024, KW_SECTION_MAX * 2)) != 0 ||
        (r = sf_buf_alloc(&sect, 1024, KW_SECTION_MAX)) != 0 ||
        (r = sf_buf_alloc(&kdf, 64, 1024)) != 0 ||
        (r = sf_buf_alloc(&pub, 256, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_alloc(&text, 4096, KW_TEXT_MAX)) != 0) {
        goto out;
    }
    if (RAND_bytes(check, sizeof(check)) != 1 || RAND_bytes(salt, sizeof(salt)) != 1) {
        r = SF_ERR_CRYPTO;
        goto out;
    }
    /* The private section, padded. */
    if ((r = sf_buf_put_bytes(&sect, check, sizeof(check))) != 0 ||
        (r = sf_buf_put_bytes(&sect, check, sizeof(check))) != 0 ||
        (r = put_private(&sect, k)) != 0 || (r = sf_buf_put_cstr(&sect, comment)) != 0) {
        goto out;
    }
    while (sf_buf_len(&sect) % blocklen != 0) {
        if ((r = sf_buf_put_u8(&sect, ++pad)) != 0) {
            goto out;
        }
    }
    if (encrypt) {
        if ((r = sf_buf_put_string(&kdf, salt, sizeof(salt))) != 0 ||
            (r = sf_buf_put_u32(&kdf, rounds)) != 0) {
            goto out;
        }
        if ((r = sf_bcrypt_pbkdf(passphrase, strlen(passphrase), salt, sizeof(salt), keyiv,
                                 keylen + ivlen, rounds)) != 0) {
            goto out;
        }
        if ((r = sf_keyfile_crypt(KW_CIPHER, true, keyiv, sf_buf_ptr(&sect), sf_buf_len(&sect),
                                  sf_buf_mutable_ptr(&sect), NULL)) != 0) {
            goto out;
        }
    }
    if ((r = sf_privkey_pubblob(k, &pub)) != 0) {
        goto out;
    }
    if ((r = sf_buf_put_bytes(&payload, KW_MAGIC, sizeof(KW_MAGIC))) != 0 ||
        (r = sf_buf_put_cstr(&payload, encrypt ? KW_CIPHER : "none")) != 0 ||
        (r = sf_buf_put_cstr(&payload, encrypt ? "bcrypt" : "none")) != 0 ||
        (r = sf_buf_put_sub(&payload, &kdf)) != 0 || (r = sf_buf_put_u32(&payload, 1)) != 0 ||
        (r = sf_buf_put_sub(&payload, &pub)) != 0 ||
        (r = sf_buf_put_sub(&payload, &sect)) != 0) {
        goto out;
    }
    if ((r = armour(sf_buf_ptr(&payload), sf_buf_len(&payload), &text)) != 0) {
        goto out;
    }
    r = sf_buf_put_bytes(out, sf_buf_ptr(&text), sf_buf_len(&text));
out:
    sf_wipe(keyiv, sizeof(keyiv));
    sf_wipe(check, sizeof(check));
    sf_buf_free(&payload);
    sf_buf_free(&sect);
    sf_buf_free(&kdf);
    sf_buf_free(&pub);
    sf_buf_free(&text);
    return r;
}

/* "type base64 comment\n" as sshkey_save_public writes it (the space even if comment is ""). */
static int
pub_line(const struct sf_privkey *k, const char *comment, struct sf_buf *out)
{
    struct sf_buf blob = { 0 };
    char *b64 = NULL;
    size_t b64sz = 0;
    int r;

    if ((r = sf_buf_alloc(&blob, 256, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_privkey_pubblob(k, &blob)) != 0) {
        goto out;
    }
    b64sz = (sf_buf_len(&blob) + 2) / 3 * 4 + 1;
    if ((b64 = sf_alloc(b64sz)) == NULL) {
        r = SF_ERR_NOMEM;
        goto out;
    }
    if ((r = sf_base64_encode(sf_buf_ptr(&blob), sf_buf_len(&blob), true, b64, b64sz)) != 0) {
        goto out;
    }
    if ((r = sf_buf_put_bytes(out, sf_privkey_type(k), strlen(sf_privkey_type(k)))) != 0 ||
        (r = sf_buf_put_u8(out, ' ')) != 0 || (r = sf_buf_put_bytes(out, b64, strlen(b64))) != 0 ||
        (r = sf_buf_put_u8(out, ' ')) != 0 ||
        (r = sf_buf_put_bytes(out, comment, strlen(comment))) != 0 ||
        (r = sf_buf_put_u8(out, '\n')) != 0) {
        goto out;
    }
    r = 0;
out:
    sf_free(b64);
    sf_buf_free(&blob);
    return r;
}

/* ---- files ---- */

static int
write_all(int fd, const uint8_t *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return SF_ERR_FILE;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Create path (must not exist; no symlink followed) with mode and write data; errno kept. */
static int
create_file(const char *path, mode_t mode, int *fdp)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);

    *fdp = fd;
    return fd >= 0 ? 0 : SF_ERR_FILE;
}

static int
file_error(sshflow_error *err, int e, const char *what, const char *path)
{
    char tmp[128];
    int kind = sf_err_set(err, SF_ERR_FILE, "%s %s: %s", what, path,
                          sf_errno_text(e, tmp, sizeof(tmp)));

    if (err != NULL) {
        err->sys_errno = e;
    }
    return kind;
}

SSHFLOW_API int
sshflow_keygen(const char *type, unsigned bits, const char *comment, const char *passphrase,
               const char *path, sshflow_error *err)
{
    struct sf_privkey *k = NULL;
    struct sf_buf priv = { 0 }, pub = { 0 };
    char *pubpath = NULL;
    size_t plen;
    int fd = -1, pfd = -1, r, e = 0;
    bool made = false, pmade = false;

    if (err != NULL) {
        err->sys_errno = 0;
    }
    if (type == NULL || path == NULL || path[0] == '\0') {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_keygen: NULL type or path");
    }
    if (comment == NULL) {
        comment = "";
    }
    if (strlen(comment) > SF_KEYFILE_COMMENT_MAX || strchr(comment, '\n') != NULL ||
        strchr(comment, '\r') != NULL) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_keygen: comment too long or multi-line");
    }
    plen = strlen(path);
    if ((pubpath = sf_alloc(plen + 5)) == NULL) {
        return sf_err_set(err, SF_ERR_NOMEM, "out of memory");
    }
    memcpy(pubpath, path, plen);
    memcpy(pubpath + plen, ".pub", 5);
    if ((r = sf_privkey_generate(type, bits, &k)) != 0) {
        if (r == SF_ERR_INVALID) {
            r = sf_err_set(err, r,
                           "sshflow_keygen: type \"%s\" with %u bits is not supported "
                           "(ed25519; ecdsa 256/384/521; rsa 2048-16384)",
                           type, bits);
        } else {
            r = sf_err_set(err, r, "key generation failed: %s", sf_err_str(r));
        }
        goto done;
    }
    if ((r = sf_buf_alloc(&priv, 4096, KW_TEXT_MAX)) != 0 ||
        (r = sf_buf_alloc(&pub, 1024, SF_KEYBLOB_MAX * 2)) != 0 ||
        (r = sf_privkey_write_openssh(k, comment, passphrase, SF_KEYFILE_ROUNDS_DEFAULT,
                                      &priv)) != 0 ||
        (r = pub_line(k, comment, &pub)) != 0) {
        r = sf_err_set(err, r, "cannot serialise the key: %s", sf_err_str(r));
        goto done;
    }
    /* Both names are claimed before anything is written: no half-made pair. */
    if (create_file(path, 0600, &fd) != 0) {
        e = errno;
        r = file_error(err, e, "cannot create", path);
        goto done;
    }
    made = true;
    if (create_file(pubpath, 0644, &pfd) != 0) {
        e = errno;
        r = file_error(err, e, "cannot create", pubpath);
        goto done;
    }
    pmade = true;
    if (fchmod(fd, 0600) != 0 || write_all(fd, sf_buf_ptr(&priv), sf_buf_len(&priv)) != 0) {
        e = errno;
        r = file_error(err, e, "cannot write", path);
        goto done;
    }
    if (write_all(pfd, sf_buf_ptr(&pub), sf_buf_len(&pub)) != 0) {
        e = errno;
        r = file_error(err, e, "cannot write", pubpath);
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        e = errno;
        r = file_error(err, e, "cannot write", path);
        goto done;
    }
    fd = -1;
    if (close(pfd) != 0) {
        pfd = -1;
        e = errno;
        r = file_error(err, e, "cannot write", pubpath);
        goto done;
    }
    pfd = -1;
    r = 0;
done:
    if (fd >= 0) {
        close(fd);
    }
    if (pfd >= 0) {
        close(pfd);
    }
    if (r != 0) {
        /* Only files this call created are removed. */
        if (made) {
            unlink(path);
        }
        if (pmade) {
            unlink(pubpath);
        }
    }
    sf_privkey_free(k);
    sf_buf_free(&priv);
    sf_buf_free(&pub);
    sf_free(pubpath);
    return r;
}

/* ---- fingerprints ---- */

/* Length of a well-formed UTF-8 sequence of a printable character at p, or 0. */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
    size_t need;
    uint32_t cp;

    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 2;
        cp = p[0] & 0x1f;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 3;
        cp = p[0] & 0x0f;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    /* Overlong, surrogates, beyond Unicode, C1 controls: not printable. */
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0) {
        return 0;
    }
    return need;
}

/*
 * The comment as ssh-keygen's mprintf shows it in a UTF-8 locale: printable
 * characters (and tab, newline, CR, BS, BEL, which vis(3)'s VIS_SAFE lets
 * through) as they are, every other byte as a \ooo octal escape.
 */
static int
put_comment(struct sf_buf *b, const char *comment)
{
    const uint8_t *p = (const uint8_t *)comment;
    size_t n = strlen(comment), u;
    char esc[8];
    int r;

    for (size_t i = 0; i < n; i++) {
        if ((p[i] >= 0x20 && p[i] < 0x7f) || p[i] == '\t' || p[i] == '\n' || p[i] == '\r' ||
            p[i] == '\b' || p[i] == '\a') {
            if ((r = sf_buf_put_u8(b, p[i])) != 0) {
                return r;
            }
            continue;
        }
        if (p[i] >= 0x80 && (u = utf8_len(p + i, n - i)) != 0) {
            if ((r = sf_buf_put_bytes(b, p + i, u)) != 0) {
                return r;
            }
            i += u - 1;
            continue;
        }
        snprintf(esc, sizeof(esc), "\\%03o", p[i]);
        if ((r = sf_buf_put_bytes(b, esc, 4)) != 0) {
            return r;
        }
    }
    return 0;
}

/*
 * What ssh-keygen -l does with a private key file (fingerprint_private):
 * the public key from "<path>.pub" if that is a one-line public key file
 * (an empty comment there becomes the .pub file's name), else the public
 * key in the private file's clear header; if that gave no comment, the key
 * is loaded without a passphrase to read the comment stored with it (an
 * unencrypted openssh-key-v1 file), and failing that there is none.
 */
static int
private_fp_key(const char *path, const uint8_t *data, size_t len, struct sf_buf *blob,
               char *comment, size_t commentsz, bool *has_comment)
{
    char *pubpath = NULL;
    uint8_t *pdata = NULL;
    size_t plen = 0, pcap = 0, n = strlen(path);
    struct sf_privkey *k = NULL;
    bool have_blob = false, hc = false;
    int r;

    *has_comment = false;
    comment[0] = '\0';
    if ((pubpath = sf_alloc(n + 5)) == NULL) {
        return SF_ERR_NOMEM;
    }
    memcpy(pubpath, path, n);
    memcpy(pubpath + n, ".pub", 5);
    if (sf_keyfile_read(pubpath, &pdata, &plen, &pcap) == 0 &&
        !(plen >= 4 && memcmp(pdata, "----", 4) == 0) &&
        sf_pubfile_parse(pdata, plen, blob, comment, commentsz) == 0) {
        have_blob = true;
        if (comment[0] == '\0') {
            snprintf(comment, commentsz, "%s", pubpath);
        }
        *has_comment = true;
    }
    if (!have_blob) {
        if ((r = sf_privkey_file_pubblob(data, len, blob)) == 0) {
            have_blob = true;
        } else if (r == SF_ERR_NOMEM) {
            goto out;
        }
    }
    if (!have_blob || comment[0] == '\0') {
        *has_comment = false;
        r = sf_privkey_load_comment(data, len, NULL, &k, comment, commentsz, &hc);
        if (r == 0) {
            *has_comment = hc;
            if (!have_blob) {
                if ((r = sf_privkey_pubblob(k, blob)) != 0) {
                    goto out;
                }
                have_blob = true;
            }
        } else if (!have_blob) {
            goto out; /* e.g. encrypted PEM: SF_ERR_KEY_ENCRYPTED */
        }
    }
    r = 0;
out:
    sf_privkey_free(k);
    sf_freezero(pdata, pcap);
    sf_free(pubpath);
    return r;
}

SSHFLOW_API int
sshflow_key_fingerprint_file(const char *path, const char *hash, char *out, size_t outsz,
                             sshflow_error *err)
{
    struct sf_buf blob = { 0 }, plain = { 0 }, line = { 0 };
    uint8_t *data = NULL;
    size_t len = 0, cap = 0, first;
    char comment[SF_KEYFILE_COMMENT_MAX + 1], fp[96], num[16];
    bool md5, has_comment = false;
    const char *tname = NULL;
    unsigned bits = 0;
    int r, e;

    if (err != NULL) {
        err->sys_errno = 0;
    }
    if (out != NULL && outsz > 0) {
        out[0] = '\0';
    }
    if (path == NULL || out == NULL || outsz == 0) {
        return sf_err_set(err, SF_ERR_INVALID, "sshflow_key_fingerprint_file: NULL argument");
    }
    if (hash == NULL || strcasecmp(hash, "sha256") == 0) {
        md5 = false;
    } else if (strcasecmp(hash, "md5") == 0) {
        md5 = true;
    } else {
        return sf_err_set(err, SF_ERR_INVALID, "unsupported fingerprint hash \"%s\" (SHA256, MD5)",
                          hash);
    }
    comment[0] = '\0';
    if ((r = sf_keyfile_read(path, &data, &len, &cap)) != 0) {
        e = errno;
        if (r == SF_ERR_FILE) {
            return file_error(err, e, "cannot read", path);
        }
        return sf_err_set(err, r == SF_ERR_TOO_LARGE ? SF_ERR_KEY_TYPE : r,
                          "%s: not a key file (too large)", path);
    }
    if ((r = sf_buf_alloc(&blob, 512, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_alloc(&plain, 512, SF_KEYBLOB_MAX)) != 0 ||
        (r = sf_buf_alloc(&line, 256, KW_LINE_MAX + SF_KEYFILE_COMMENT_MAX * 4)) != 0) {
        r = sf_err_set(err, r, "out of memory");
        goto out;
    }
    /* ssh-keygen's test: "PRIVATE KEY" on the file's first line. */
    first = len;
    if (memchr(data, '\n', len) != NULL) {
        first = (size_t)((const uint8_t *)memchr(data, '\n', len) - data);
    }
    if (memmem(data, first, "PRIVATE KEY", 11) != NULL) {
        r = private_fp_key(path, data, len, &blob, comment, sizeof(comment), &has_comment);
    } else {
        r = sf_pubfile_parse(data, len, &blob, comment, sizeof(comment));
        /* do_fingerprint: an empty comment, or one starting with '#', is "no comment". */
        has_comment = r == 0 && comment[0] != '\0' && comment[0] != '#';
    }
    if (r != 0) {
        switch (r) {
        case SF_ERR_KEY_ENCRYPTED:
            r = sf_err_set(err, r, "%s: encrypted, and no public key can be read from it", path);
            break;
        case SF_ERR_NOMEM:
            r = sf_err_set(err, r, "out of memory");
            break;
        default:
            r = sf_err_set(err, SF_ERR_KEY_TYPE, "%s is not a key file", path);
            break;
        }
        goto out;
    }
    if ((r = sf_key_bits(sf_buf_ptr(&blob), sf_buf_len(&blob), &bits, &tname)) != 0 ||
        (r = sf_key_plain_blob(sf_buf_ptr(&blob), sf_buf_len(&blob), &plain)) != 0) {
        r = sf_err_set(err, SF_ERR_KEY_TYPE, "%s: unsupported key type", path);
        goto out;
    }
    if (md5) {
        r = sf_fingerprint_md5(sf_buf_ptr(&plain), sf_buf_len(&plain), fp, sizeof(fp));
    } else {
        r = sf_fingerprint_sha256(sf_buf_ptr(&plain), sf_buf_len(&plain), fp, sizeof(fp));
    }
    if (r != 0) {
        r = sf_err_set(err, r, "fingerprint failed: %s", sf_err_str(r));
        goto out;
    }
    /* "%u %s %s (%s)": bits, fingerprint, comment or "no comment", type. */
    snprintf(num, sizeof(num), "%u ", bits);
    if ((r = sf_buf_put_bytes(&line, num, strlen(num))) != 0 ||
        (r = sf_buf_put_bytes(&line, fp, strlen(fp))) != 0 ||
        (r = sf_buf_put_u8(&line, ' ')) != 0 ||
        (r = put_comment(&line, has_comment ? comment : "no comment")) != 0 ||
        (r = sf_buf_put_bytes(&line, " (", 2)) != 0 ||
        (r = sf_buf_put_bytes(&line, tname, strlen(tname))) != 0 ||
        (r = sf_buf_put_u8(&line, ')')) != 0) {
        r = sf_err_set(err, r, "fingerprint line too long");
        goto out;
    }
    if (sf_buf_len(&line) >= outsz) {
        r = sf_err_set(err, SF_ERR_INVALID, "output buffer too small: %zu bytes needed",
                       sf_buf_len(&line) + 1);
        goto out;
    }
    memcpy(out, sf_buf_ptr(&line), sf_buf_len(&line));
    out[sf_buf_len(&line)] = '\0';
    r = 0;
out:
    sf_wipe(comment, sizeof(comment));
    sf_buf_free(&blob);
    sf_buf_free(&plain);
    sf_buf_free(&line);
    sf_freezero(data, cap);
    return r;
}
