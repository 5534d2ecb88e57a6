/*
 * src/hostauth.h -- internal side of host authentication: checking a
 * server's host key against an authenticator (fingerprint, key, known_hosts
 * file, callback). The public constructors are in sshflow.h.
 *
 * Owns: the authenticator objects and known_hosts parsing/appending. Must
 * never: talk to the network.
 */
#ifndef SF_HOSTAUTH_H
#define SF_HOSTAUTH_H

#include "sf.h"

/*
 * Decide on a server host key. host may be NULL (unknown: only non-file
 * authenticators can then accept), port is the server's port (22 default).
 * blob is the public key blob from KEXDH_REPLY (already parsed and its
 * signature verified by the caller). Returns 0 to accept, or
 * SF_ERR_HOSTKEY_UNKNOWN / SF_ERR_HOSTKEY_CHANGED / SF_ERR_HOSTKEY (and
 * SF_ERR_INVALID/SF_ERR_FILE/SF_ERR_NOMEM) with err's detail naming the
 * reason, e.g. "host key for [127.0.0.1]:2222 changed (known_hosts line 3
 * of /root/.ssh/known_hosts has a different ssh-ed25519 key)".
 * For accept-new, appends "host keytype base64" (or "[host]:port ...") to
 * the file. May log a loud warning for the insecure authenticator.
 *
 * blob may be a host certificate (*-cert-v01@openssh.com): it is parsed and
 * its CA signature verified (a failure refuses, SF_ERR_HOSTKEY). A
 * known_hosts authenticator trusts it through @cert-authority lines, or
 * judges its plain key (knownhosts.h); every other kind sees only the
 * certified plain key (the callback gets its type, blob and fingerprint).
 */
SF_MUST_USE int sf_hostauth_check(const sshflow_hostauth *a, const char *host, uint16_t port,
                                  const uint8_t *blob, size_t bloblen, sshflow_error *err);

/*
 * Comma-separated key types ("ssh-ed25519,ecdsa-sha2-nistp256") that the
 * authenticator already knows for host:port, in file order, without
 * duplicates, so that the client can prefer them in HostKeyAlgorithms (as
 * OpenSSH does). When a known_hosts @cert-authority line applies to the
 * host, every certificate algorithm name (sf_cert_alg_list, e.g.
 * "ssh-ed25519-cert-v01@openssh.com,...,rsa-sha2-512-cert-v01@openssh.com")
 * comes first. Empty string if none or not applicable. Never fails except
 * for outsz too small (truncated at a name boundary).
 */
void sf_hostauth_known_types(const sshflow_hostauth *a, const char *host, uint16_t port,
                             char *out, size_t outsz);

/* True if this authenticator needs a host name (known_hosts). */
bool sf_hostauth_needs_host(const sshflow_hostauth *a);

#endif
