/*
 * src/key.h -- public keys, private keys, signatures, fingerprints.
 *
 * Key types: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (signing
 * with rsa-sha2-256 / rsa-sha2-512; ssh-rsa SHA-1 signatures are always
 * refused). All crypto through OpenSSL EVP.
 *
 * Owns: EVP_PKEY objects; private key material is wiped when freed. Every
 * blob from the wire or a file is parsed through struct sf_buf.
 */
#ifndef SF_KEY_H
#define SF_KEY_H

#include "buf.h"
#include "sf.h"

struct sf_pubkey;
struct sf_privkey;

/* Default host key algorithm preference (OpenSSH's order) and all supported. */
extern const char sf_hostkey_default_list[];
extern const char sf_hostkey_all_list[];
/* True if name (n bytes) is a host key / signature algorithm we support. */
bool sf_sigalg_supported(const char *name, size_t n);

/*
 * Parse a public key blob (RFC 4253 s6.6, RFC 5656 s3.1, RFC 8709 s4):
 * string type || type-specific fields. Rejects trailing data, unknown types,
 * invalid points, RSA moduli under 1024 bits.
 */
SF_MUST_USE int sf_pubkey_from_blob(const uint8_t *blob, size_t len, struct sf_pubkey **out);
void sf_pubkey_free(struct sf_pubkey *k);
/* Key type name as in the blob ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"). */
const char *sf_pubkey_type(const struct sf_pubkey *k);
/* The blob the key was parsed from (owned by k). */
const uint8_t *sf_pubkey_blob(const struct sf_pubkey *k, size_t *len);
/* True if signature algorithm sigalg (e.g. "rsa-sha2-512") can be used with this key. */
bool sf_pubkey_sigalg_ok(const struct sf_pubkey *k, const char *sigalg);

/*
 * Verify an SSH signature blob (string algorithm-name || string signature;
 * RFC 4253 s6.6, RFC 5656 s3.1.2, RFC 8332 s3) over data. The name inside
 * the blob must equal sigalg. Returns 0 or SF_ERR_SIGNATURE (or a parse
 * error).
 */
SF_MUST_USE int sf_pubkey_verify(const struct sf_pubkey *k, const char *sigalg,
                                 const uint8_t *sig, size_t siglen, const uint8_t *data,
                                 size_t datalen);

/*
 * "SHA256:<base64 without padding>" of the blob, as ssh-keygen -l prints
 * it. out must hold at least 64 bytes.
 */
SF_MUST_USE int sf_fingerprint_sha256(const uint8_t *blob, size_t len, char *out, size_t outsz);

/*
 * Load a private key from memory: openssh-key-v1 ("-----BEGIN OPENSSH
 * PRIVATE KEY-----", unencrypted; encrypted gives SF_ERR_KEY_ENCRYPTED), or
 * PEM / PKCS#8 through OpenSSL (passphrase may be NULL; a wrong or missing
 * one gives SF_ERR_KEY_PASSPHRASE / SF_ERR_KEY_ENCRYPTED). Unsupported types
 * give SF_ERR_KEY_TYPE. Wipes its temporary copies.
 */
SF_MUST_USE int sf_privkey_load(const uint8_t *data, size_t len, const char *passphrase,
                                struct sf_privkey **out);
/* Same from a file; SF_ERR_FILE if it cannot be read. */
SF_MUST_USE int sf_privkey_load_file(const char *path, const char *passphrase,
                                     struct sf_privkey **out);
void sf_privkey_free(struct sf_privkey *k); /* wipes; NULL ok */
/*
 * Wrap a loaded OpenSSL key (key.c, used by keyfile.c): on success ownership
 * of *pkey moves into *out and *pkey is set to NULL.
 */
typedef struct evp_pkey_st EVP_PKEY;
SF_MUST_USE int sf_privkey_from_pkey(EVP_PKEY **pkey, struct sf_privkey **out);
const char *sf_privkey_type(const struct sf_privkey *k); /* as sf_pubkey_type */
/* The OpenSSL key inside k (still owned by k; for writing key files). */
EVP_PKEY *sf_privkey_pkey(const struct sf_privkey *k);
/* Append the public key blob (no length prefix) to out. */
SF_MUST_USE int sf_privkey_pubblob(const struct sf_privkey *k, struct sf_buf *out);
/*
 * Sign data with signature algorithm sigalg ("ssh-ed25519",
 * "ecdsa-sha2-nistp256", "rsa-sha2-512", ...). Appends the signature blob
 * (string algorithm-name || string signature, no outer length prefix) to out.
 */
SF_MUST_USE int sf_privkey_sign(const struct sf_privkey *k, const char *sigalg,
                                const uint8_t *data, size_t len, struct sf_buf *out);

/* Base64 (standard alphabet). encode: NUL-terminated, pad controls '='. decode: ignores nothing, strict. */
SF_MUST_USE int sf_base64_encode(const uint8_t *in, size_t len, bool pad, char *out, size_t outsz);
SF_MUST_USE int sf_base64_decode(const char *in, size_t len, uint8_t *out, size_t outsz,
                                 size_t *outlen);

#endif
