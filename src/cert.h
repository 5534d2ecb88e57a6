/*
 * src/cert.h -- OpenSSH certificates (PROTOCOL.certkeys): parsing a
 * certificate blob or "*-cert.pub" file, verifying the CA's signature on it,
 * and checking it for a use (host or user, principal, validity window,
 * critical options).
 *
 * Types: ssh-ed25519-cert-v01@openssh.com,
 * ecdsa-sha2-nistp256/384/521-cert-v01@openssh.com and
 * ssh-rsa-cert-v01@openssh.com. The last one signs under the algorithm names
 * rsa-sha2-256-cert-v01@openssh.com / rsa-sha2-512-cert-v01@openssh.com
 * (and, only when a caller opts in, ssh-rsa-cert-v01@openssh.com = SHA-1).
 * CA keys: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa; never a
 * certificate (no chains).
 *
 * Owns: struct sf_cert (the blob, the embedded plain key, the CA key and the
 * decoded fields). Must never: decide trust (which CA is trusted is the
 * caller's business: known_hosts for host certificates, the server for user
 * certificates), or read a byte of a blob other than through struct sf_buf.
 */
#ifndef SF_CERT_H
#define SF_CERT_H

#include "sf.h"

struct sf_cert;
struct sf_pubkey;

enum { SF_CERT_USER = 1, SF_CERT_HOST = 2 };

/* Named limits on the fields of a certificate (every blob is <= SF_KEYBLOB_MAX too). */
#define SF_CERT_NONCE_MAX 256        /* OpenSSH writes 32 bytes */
#define SF_CERT_KEYID_MAX 1024       /* free text from the CA */
#define SF_CERT_PRINCIPALS_MAX 256   /* OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS */
#define SF_CERT_PRINCIPAL_MAX 1024   /* one user or host name */
#define SF_CERT_OPTIONS_MAX 64       /* critical options, and extensions, each */
#define SF_CERT_OPTION_NAME_MAX 256  /* "source-address", "my-option@example.com" */
#define SF_CERT_FILE_MAX (64 * 1024) /* largest "*-cert.pub" file we read */
#define SF_CERT_WHY_MAX 256          /* a reason from sf_cert_check always fits */

/*
 * OpenSSH 9.2's CASignatureAlgorithms default (less the sk-* types, which
 * sshflow does not support): no SHA-1 "ssh-rsa".
 */
extern const char sf_cert_ca_default_algs[];

/*
 * Parse a certificate blob and verify the CA's signature on it (CA signature
 * algorithms as OpenSSH 9.2's CASignatureAlgorithms default: no SHA-1
 * "ssh-rsa"). Every field bounded; trailing data, unknown key types,
 * critical options or extensions not sorted / duplicated are errors.
 * Returns 0, SF_ERR_KEY_TYPE (not a certificate type we support, or an
 * unsupported or certificate CA key), SF_ERR_SIGNATURE (the CA's signature
 * does not verify), SF_ERR_CERT (the CA signed with an algorithm not
 * allowed), SF_ERR_NOMEM, or a parse error (SF_ERR_INCOMPLETE,
 * SF_ERR_BAD_FORMAT, SF_ERR_TOO_LARGE, SF_ERR_TRAILING_DATA).
 */
SF_MUST_USE int sf_cert_from_blob(const uint8_t *blob, size_t len, struct sf_cert **out);
/*
 * The same with the CA signature algorithms allowed given as a comma list
 * (e.g. a CASignatureAlgorithms setting). ca_algs NULL allows every
 * algorithm key.c can verify, SHA-1 "ssh-rsa" included: for parsing only
 * (a host key from KEXDH_REPLY, whose certificate is checked for trust
 * later, or downgraded to its plain key as OpenSSH does); whoever then
 * trusts it must check sf_cert_ca_alg_ok().
 */
SF_MUST_USE int sf_cert_from_blob_algs(const uint8_t *blob, size_t len, const char *ca_algs,
                                       struct sf_cert **out);
/*
 * Read a "*-cert.pub" one-line file ("type base64 [comment]", as
 * ssh-keygen -s writes it; leading blank and '#' lines are skipped).
 * SF_ERR_FILE (cannot be read, or larger than SF_CERT_FILE_MAX) /
 * SF_ERR_KEY_TYPE (not a certificate, e.g. a plain .pub) / parse errors as
 * sf_cert_from_blob.
 */
SF_MUST_USE int sf_cert_load_file(const char *path, struct sf_cert **out);
void sf_cert_free(struct sf_cert *c); /* NULL ok */

/* The whole certificate blob (owned by c). */
const uint8_t *sf_cert_blob(const struct sf_cert *c, size_t *len);
/* Certificate key type, e.g. "ssh-ed25519-cert-v01@openssh.com". */
const char *sf_cert_type(const struct sf_cert *c);
/* Key type of the certified key, e.g. "ssh-ed25519". */
const char *sf_cert_plain_type(const struct sf_cert *c);
/* Plain public key blob of the certified key (owned by c). */
const uint8_t *sf_cert_key_blob(const struct sf_cert *c, size_t *len);
/* The certified key (owned by c). */
const struct sf_pubkey *sf_cert_key(const struct sf_cert *c);
/* True if the certified key equals the plain public key blob (e.g. of a private key). */
bool sf_cert_certifies(const struct sf_cert *c, const uint8_t *keyblob, size_t len);
/* The CA key blob that signed it (owned by c). */
const uint8_t *sf_cert_ca_blob(const struct sf_cert *c, size_t *len);
/* Signature algorithm the CA used ("ssh-ed25519", "rsa-sha2-512", "ssh-rsa", ...). */
const char *sf_cert_ca_sigalg(const struct sf_cert *c);
/* True if the CA's signature algorithm is in ca_algs (NULL: sf_cert_ca_default_algs). */
bool sf_cert_ca_alg_ok(const struct sf_cert *c, const char *ca_algs);

/* Decoded fields. */
uint32_t sf_cert_kind(const struct sf_cert *c); /* SF_CERT_USER or SF_CERT_HOST */
uint64_t sf_cert_serial(const struct sf_cert *c);
const char *sf_cert_key_id(const struct sf_cert *c);
size_t sf_cert_nprincipals(const struct sf_cert *c);
const char *sf_cert_principal(const struct sf_cert *c, size_t i); /* NULL past the end */
uint64_t sf_cert_valid_after(const struct sf_cert *c);
uint64_t sf_cert_valid_before(const struct sf_cert *c);
size_t sf_cert_ncritical(const struct sf_cert *c);
const char *sf_cert_critical_name(const struct sf_cert *c, size_t i); /* NULL past the end */

/*
 * USERAUTH / host key algorithm name for a base signature algorithm:
 * "rsa-sha2-512" -> "rsa-sha2-512-cert-v01@openssh.com", "ssh-ed25519" ->
 * "ssh-ed25519-cert-v01@openssh.com", "ssh-rsa" ->
 * "ssh-rsa-cert-v01@openssh.com"; NULL if none.
 */
const char *sf_cert_alg_for_sigalg(const char *sigalg);
/* The reverse: base signature algorithm of a certificate algorithm name; NULL if not one. */
const char *sf_cert_sigalg_base(const char *certalg);
/* True if name[n] is a certificate key type we support (not the rsa-sha2-*-cert names). */
bool sf_cert_is_type(const char *name, size_t n);
/* Every certificate algorithm name, comma-separated, in OpenSSH's preference order. */
extern const char sf_cert_alg_list[];

/*
 * Check type (SF_CERT_HOST / SF_CERT_USER), principal (NULL: skip; an empty
 * principal list matches every name, as PROTOCOL.certkeys says and OpenSSH
 * 9.2's client accepts for host certificates), the validity window against
 * now (seconds since the epoch; valid after <= now < valid before), and
 * critical options: a host certificate with any critical option is refused
 * (none are defined for hosts); for user certificates the client does not
 * enforce them -- the server does (force-command, source-address are its
 * business) -- so they are not looked at. why[whysz] (may be NULL) gets the
 * reason. Returns 0 or SF_ERR_CERT on refusal (SF_ERR_INVALID for bad
 * arguments).
 */
SF_MUST_USE int sf_cert_check(const struct sf_cert *c, int type, const char *principal,
                              uint64_t now, char *why, size_t whysz);

#endif
