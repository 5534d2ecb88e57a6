/*
 * src/key.h -- public keys, private keys, signatures, fingerprints.
 *
 * Key types: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa (signing
 * with rsa-sha2-256 / rsa-sha2-512; SHA-1 "ssh-rsa" signatures are legacy:
 * made and accepted only when that algorithm name is asked for, which
 * nothing does by default), and their OpenSSH certificates
 * (*-cert-v01@openssh.com, see cert.h): a certificate public key verifies
 * as its certified key under the certificate algorithm names
 * ("ssh-ed25519-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com",
 * ...), whose signatures carry the base name ("ssh-ed25519",
 * "rsa-sha2-512"). All crypto through OpenSSL EVP.
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
struct sf_cert;

/*
 * Host key algorithms: the default preference is OpenSSH 9.2's
 * HostKeyAlgorithms default (certificate algorithms first, then
 * ssh-ed25519, ecdsa-sha2-nistp256/384/521, rsa-sha2-512, rsa-sha2-256;
 * no sk-*). The list of all supported adds the legacy SHA-1 "ssh-rsa" and
 * "ssh-rsa-cert-v01@openssh.com", which a caller must opt in to
 * (HostKeyAlgorithms +ssh-rsa).
 */
extern const char sf_hostkey_default_list[];
extern const char sf_hostkey_all_list[];
/* True if name (n bytes) is a host key / signature algorithm we support (sf_hostkey_all_list). */
bool sf_sigalg_supported(const char *name, size_t n);

/*
 * Parse a public key blob (RFC 4253 s6.6, RFC 5656 s3.1, RFC 8709 s4):
 * string type || type-specific fields. Rejects trailing data, unknown types,
 * invalid points, RSA moduli under 1024 bits. A certificate blob
 * (*-cert-v01@openssh.com) is parsed by cert.c, its CA signature verified
 * with any algorithm we can verify (SHA-1 included: trusting the CA and its
 * algorithm is the caller's decision, see sf_cert_ca_alg_ok), and the key
 * keeps the certified key: it verifies as that key.
 */
SF_MUST_USE int sf_pubkey_from_blob(const uint8_t *blob, size_t len, struct sf_pubkey **out);
/* The same, for plain keys only (certificate types give SF_ERR_KEY_TYPE). */
SF_MUST_USE int sf_pubkey_from_plain_blob(const uint8_t *blob, size_t len,
                                          struct sf_pubkey **out);
void sf_pubkey_free(struct sf_pubkey *k);
/*
 * Key type name as in the blob ("ssh-ed25519", "ecdsa-sha2-nistp256",
 * "ssh-rsa", or a certificate's, e.g. "ssh-ed25519-cert-v01@openssh.com").
 */
const char *sf_pubkey_type(const struct sf_pubkey *k);
/* The blob the key was parsed from (owned by k; a certificate's whole blob). */
const uint8_t *sf_pubkey_blob(const struct sf_pubkey *k, size_t *len);
/* The certificate of a certificate key (owned by k), or NULL for a plain key. */
const struct sf_cert *sf_pubkey_cert(const struct sf_pubkey *k);
/*
 * True if signature algorithm sigalg can be used with this key: for a plain
 * key its own names ("rsa-sha2-512", "rsa-sha2-256" and the legacy "ssh-rsa"
 * for RSA); for a certificate only the certificate algorithm names
 * ("rsa-sha2-512-cert-v01@openssh.com", ...).
 */
bool sf_pubkey_sigalg_ok(const struct sf_pubkey *k, const char *sigalg);

/*
 * Verify an SSH signature blob (string algorithm-name || string signature;
 * RFC 4253 s6.6, RFC 5656 s3.1.2, RFC 8332 s3) over data. The name inside
 * the blob must equal sigalg, or for a certificate algorithm its base name
 * ("ssh-ed25519" for "ssh-ed25519-cert-v01@openssh.com"). Returns 0 or
 * SF_ERR_SIGNATURE (or a parse error).
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
 * Load a private key from memory (implemented in keyfile.c): openssh-key-v1
 * ("-----BEGIN OPENSSH PRIVATE KEY-----", plain or encrypted with bcrypt and
 * the ciphers ssh-keygen -Z writes), or PEM / PKCS#8 through OpenSSL.
 * passphrase may be NULL. An encrypted key without a passphrase gives
 * SF_ERR_KEY_ENCRYPTED, a wrong one SF_ERR_KEY_PASSPHRASE; an unsupported
 * type or format, or a corrupt file, SF_ERR_KEY_TYPE. Wipes its temporary
 * copies.
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
 * "ecdsa-sha2-nistp256", "rsa-sha2-512", ...; "ssh-rsa" makes a legacy
 * SHA-1 signature; a certificate algorithm name signs under its base name).
 * Appends the signature blob (string algorithm-name || string signature, no
 * outer length prefix) to out. SF_ERR_INVALID if sigalg does not fit k.
 */
SF_MUST_USE int sf_privkey_sign(const struct sf_privkey *k, const char *sigalg,
                                const uint8_t *data, size_t len, struct sf_buf *out);

/* Base64 (standard alphabet). encode: NUL-terminated, pad controls '='. decode: ignores nothing, strict. */
SF_MUST_USE int sf_base64_encode(const uint8_t *in, size_t len, bool pad, char *out, size_t outsz);
SF_MUST_USE int sf_base64_decode(const char *in, size_t len, uint8_t *out, size_t outsz,
                                 size_t *outlen);

#endif
