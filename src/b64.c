/*
 * src/b64.c -- Base64 (RFC 4648 s4, standard alphabet) and SHA-256 key
 * fingerprints as ssh-keygen -l prints them.
 *
 * Owns: the text <-> bytes conversion for public key blobs and
 * fingerprints. Must never: accept anything but the exact alphabet (no
 * whitespace, no line breaks, no misplaced '=', no non-zero trailing bits),
 * or leave partial output behind on failure.
 */
#include "key.h"

#include <string.h>

#include <openssl/evp.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a Base64 character, or -1. Branches on the input: only public data is decoded here. */
static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

int
sf_base64_encode(const uint8_t *in, size_t len, bool pad, char *out, size_t outsz)
{
    size_t need, i, o = 0, rem;
    uint32_t v;

    if (out == NULL || outsz == 0) {
        return SF_ERR_NO_SPACE;
    }
    out[0] = '\0';
    if (len > (SIZE_MAX / 4 - 1) * 3) {
        return SF_ERR_TOO_LARGE;
    }
    rem = len % 3;
    need = (len / 3) * 4 + (rem == 0 ? 0 : (pad ? 4 : rem + 1)) + 1;
    if (outsz < need) {
        return SF_ERR_NO_SPACE;
    }
    for (i = 0; i + 3 <= len; i += 3) {
        v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 0x3f];
        out[o++] = b64_alphabet[(v >> 12) & 0x3f];
        out[o++] = b64_alphabet[(v >> 6) & 0x3f];
        out[o++] = b64_alphabet[v & 0x3f];
    }
    if (rem != 0) {
        v = (uint32_t)in[i] << 16;
        if (rem == 2) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        out[o++] = b64_alphabet[(v >> 18) & 0x3f];
        out[o++] = b64_alphabet[(v >> 12) & 0x3f];
        if (rem == 2) {
            out[o++] = b64_alphabet[(v >> 6) & 0x3f];
        } else if (pad) {
            out[o++] = '=';
        }
        if (pad) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    SF_ASSERT(o + 1 == need);
    return 0;
}

/*
 * Strict decode: the input is exactly the alphabet, optionally followed by
 * the '=' padding RFC 4648 s4 prescribes (then the length is a multiple of
 * 4). Unpadded input may end in 2 or 3 characters of a final group. The
 * unused bits of the last character must be zero (s3.5), so every byte
 * string has exactly one accepted encoding with and one without padding.
 */
int
sf_base64_decode(const char *in, size_t len, uint8_t *out, size_t outsz, size_t *outlen)
{
    size_t i, o = 0, npad = 0, body, rem, need;
    uint32_t v = 0;
    int c, r = 0;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (outlen == NULL || (in == NULL && len != 0)) {
        return SF_ERR_INVALID;
    }
    while (npad < len && npad < 2 && in[len - 1 - npad] == '=') {
        npad++;
    }
    if (npad != 0 && len % 4 != 0) {
        return SF_ERR_BAD_FORMAT; /* padding present, so groups must be complete */
    }
    body = len - npad;
    rem = body % 4;
    if (rem == 1 || (npad != 0 && rem + npad != 4)) {
        return SF_ERR_BAD_FORMAT;
    }
    need = (body / 4) * 3 + (rem == 0 ? 0 : rem - 1);
    if (need > outsz) {
        return SF_ERR_NO_SPACE;
    }
    for (i = 0; i < body; i++) {
        if ((c = b64_value((unsigned char)in[i])) < 0) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        v = (v << 6) | (uint32_t)c;
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(v >> 16);
            out[o++] = (uint8_t)(v >> 8);
            out[o++] = (uint8_t)v;
            v = 0;
        }
    }
    if (rem == 2) {
        if ((v & 0x0f) != 0) {
            r = SF_ERR_BAD_FORMAT; /* non-zero trailing bits */
            goto out;
        }
        out[o++] = (uint8_t)(v >> 4);
    } else if (rem == 3) {
        if ((v & 0x03) != 0) {
            r = SF_ERR_BAD_FORMAT;
            goto out;
        }
        out[o++] = (uint8_t)(v >> 10);
        out[o++] = (uint8_t)(v >> 2);
    }
    SF_ASSERT(o == need);
    *outlen = o;
out:
    if (r != 0) {
        sf_wipe(out, o);
    }
    return r;
}

int
sf_fingerprint_sha256(const uint8_t *blob, size_t len, char *out, size_t outsz)
{
    static const char prefix[] = "SHA256:";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int r;

    if (out == NULL || outsz == 0) {
        return SF_ERR_NO_SPACE;
    }
    out[0] = '\0';
    if (blob == NULL && len != 0) {
        return SF_ERR_INVALID;
    }
    /* 7 + 43 + NUL */
    if (outsz < sizeof(prefix) + 43) {
        return SF_ERR_NO_SPACE;
    }
    if (EVP_Digest(blob != NULL ? blob : md, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32) {
        return SF_ERR_CRYPTO;
    }
    memcpy(out, prefix, sizeof(prefix) - 1);
    if ((r = sf_base64_encode(md, mdlen, false, out + sizeof(prefix) - 1,
                              outsz - (sizeof(prefix) - 1))) != 0) {
        out[0] = '\0';
        return r;
    }
    return 0;
}
