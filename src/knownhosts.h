/*
 * src/knownhosts.h -- OpenSSH known_hosts files (sshd(8), "SSH_KNOWN_HOSTS
 * FILE FORMAT"): looking a host key up, listing known key types, and
 * appending a new host for accept-new. Used only by hostauth.c.
 *
 * Owns: reading, matching and appending known_hosts lines, and the trust
 * decision on host certificates (@cert-authority, @revoked). Must never:
 * talk to the network, interpret key material itself (a key is its blob;
 * only the type name at the front of the blob is read; certificates are
 * parsed by cert.c), or rewrite/truncate an existing file.
 */
#ifndef SF_KNOWNHOSTS_H
#define SF_KNOWNHOSTS_H

#include "sf.h"

#define SF_KNOWNHOSTS_FILE_MAX (64 * 1024 * 1024) /* larger files are refused */
#define SF_KNOWNHOSTS_PATH_MAX 4096               /* longest file name we build */

/*
 * Resolve the known_hosts file name into out[outsz]: path itself, or for
 * NULL $HOME/.ssh/known_hosts ($HOME unset or empty: the passwd entry's
 * home). Returns 0 or SF_ERR_INVALID (name too long, no home directory).
 */
SF_MUST_USE int sf_knownhosts_path(const char *path, char *out, size_t outsz);

/*
 * Decide on host:port's key (type name keytype, public key blob, "SHA256:..."
 * fingerprint fp used in messages) against the file at path (NULL: the
 * default). Returns 0 to accept, SF_ERR_HOSTKEY (revoked key),
 * SF_ERR_HOSTKEY_CHANGED (the host is known with other keys),
 * SF_ERR_HOSTKEY_UNKNOWN (the host is not in the file and policy is
 * strict), or SF_ERR_FILE / SF_ERR_INVALID / SF_ERR_NOMEM / SF_ERR_CRYPTO;
 * err (may be NULL) gets the detail. With SSHFLOW_HOSTKEY_ACCEPT_NEW an
 * unknown host is appended (under an exclusive flock, re-checked under the
 * lock) and accepted. A missing file counts as empty. Thread-safe.
 */
SF_MUST_USE int sf_knownhosts_check(const char *path, enum sshflow_hostkey_policy policy,
                                    const char *host, uint16_t port, const char *keytype,
                                    const uint8_t *blob, size_t bloblen, const char *fp,
                                    sshflow_error *err);

/*
 * The same for a host certificate presented by host:port (parsed, its CA
 * signature verified; see knownhosts.c): accepted if an @cert-authority line
 * for the host holds its CA key and it passes sf_cert_check() for a host
 * certificate naming host at time now (seconds since the epoch) with a CA
 * signature algorithm of the CASignatureAlgorithms default. Otherwise its
 * plain key is checked as sf_knownhosts_check() does (accept-new appends the
 * plain key), with err's detail saying first why the certificate was not
 * enough. @revoked lines holding the certified key, a certificate of it, or
 * the CA key refuse (SF_ERR_HOSTKEY) without that fallback. Thread-safe.
 */
struct sf_cert;
SF_MUST_USE int sf_knownhosts_check_cert(const char *path, enum sshflow_hostkey_policy policy,
                                         const char *host, uint16_t port,
                                         const struct sf_cert *cert, uint64_t now,
                                         sshflow_error *err);

/*
 * Key types the file knows for host:port, comma-separated in file order
 * without duplicates, truncated at a name boundary to fit out[outsz]. If an
 * @cert-authority line applies to the host, every certificate algorithm
 * name (sf_cert_alg_list) comes first. Empty on any failure (no file, no
 * home, out of memory). Thread-safe.
 */
void sf_knownhosts_types(const char *path, const char *host, uint16_t port, char *out,
                         size_t outsz);

/*
 * Check that blob[len] is a complete public key blob of a supported type
 * (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa): the field lengths
 * only, no key material is interpreted. Copies the type name into
 * type[typesz]. Returns 0, SF_ERR_KEY_TYPE for a well-formed type name we
 * do not support (type filled), or a parse error (type cleared).
 */
SF_MUST_USE int sf_knownhosts_blob_check(const uint8_t *blob, size_t len, char *type,
                                         size_t typesz);

#endif
