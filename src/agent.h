/*
 * src/agent.h -- client for an ssh-agent (draft-miller-ssh-agent): list the
 * agent's keys and ask it for signatures.
 *
 * Owns: one connection to an agent (a flow, usually a Unix socket), the
 * framing of requests and replies, the time bound of every request, and the
 * parsing of the two replies we use. Must never: handle private keys, block
 * without bound, or make sense of a reply it does not fully understand.
 *
 * Bounds: every request (write + whole reply) ends within timeout_ms, by a
 * watchdog thread per agent that aborts the flow when the bound is reached
 * (see docs/agent.md). Replies larger than SF_AGENT_MSG_MAX are refused.
 *
 * Errors (all negative SF_ERR_*): SF_ERR_AGENT when the agent cannot be
 * reached, closes the connection, fails on I/O or answers SSH_AGENT_FAILURE;
 * SF_ERR_TIMEOUT when a bound was reached; SF_ERR_TOO_LARGE,
 * SF_ERR_INCOMPLETE, SF_ERR_BAD_FORMAT, SF_ERR_TRAILING_DATA for malformed
 * replies; SF_ERR_PROTOCOL for a reply of the wrong type or a signature
 * made with another algorithm than asked; SF_ERR_INVALID, SF_ERR_UNSUPPORTED,
 * SF_ERR_NOMEM, SF_ERR_NO_SPACE for the caller's side. After an error that
 * may have left the connection out of step (I/O, end of stream, timeout, a
 * bad reply length) every later call returns that same error at once
 * (sticky); after any other error the connection stays usable.
 *
 * Thread-safety: one call at a time per struct sf_agent (it is not shared
 * between threads); different agents share nothing.
 */
#ifndef SF_AGENT_H
#define SF_AGENT_H

#include "buf.h"
#include "sf.h"

#define SF_AGENT_MSG_MAX (256 * 1024) /* largest request or reply body (OpenSSH's bound) */
#define SF_AGENT_IDS_MAX 2048         /* most identities we take in one list (as OpenSSH) */

struct sf_agent;
struct sf_agent_id {
    uint8_t *blob;  /* public key blob (string type || ...), as the agent sent it */
    size_t bloblen;
    char *comment;  /* NUL-terminated; the agent's bytes (no embedded NUL) */
};

/*
 * Connect to the agent socket at path (NULL: $SSH_AUTH_SOCK; unset/empty ->
 * SF_ERR_AGENT with why "SSH_AUTH_SOCK is not set"). timeout_ms (> 0, else
 * SF_ERR_INVALID) bounds the connect and every later request. why[whysz]
 * gets a sentence on failure. Blocks (bounded).
 */
SF_MUST_USE int sf_agent_open(const char *path, int timeout_ms, struct sf_agent **out, char *why,
                              size_t whysz);

/*
 * Use an already connected flow (a socketpair end in the tests, or any
 * stream that speaks the agent protocol). Takes f in every case (freed on
 * failure). timeout_ms > 0 bounds every request.
 */
SF_MUST_USE int sf_agent_from_flow(sshflow_flow *f, int timeout_ms, struct sf_agent **out);

/*
 * SSH2_AGENTC_REQUEST_IDENTITIES -> *ids (caller frees with
 * sf_agent_ids_free), *n. Keys of types sshflow cannot use are still listed
 * (the caller filters). *ids is NULL when *n is 0 or on failure.
 */
SF_MUST_USE int sf_agent_list(struct sf_agent *a, struct sf_agent_id **ids, size_t *n);
void sf_agent_ids_free(struct sf_agent_id *ids, size_t n);

/*
 * SSH2_AGENTC_SIGN_REQUEST for key blob over data; flags
 * SSH_AGENT_RSA_SHA2_256/512 chosen from sigalg ("rsa-sha2-256" /
 * "rsa-sha2-512"; for other keys sigalg is the key type; "ssh-rsa" (SHA-1)
 * is refused with SF_ERR_UNSUPPORTED). Appends the signature blob (string
 * alg-name || string sig; no outer length) to out, after checking the alg
 * name inside it equals sigalg and the blob parses. SF_ERR_AGENT on
 * SSH_AGENT_FAILURE (e.g. the key was removed or the user refused). The
 * signature is not verified here (the caller has the key and the data).
 */
SF_MUST_USE int sf_agent_sign(struct sf_agent *a, const uint8_t *blob, size_t bloblen,
                              const char *sigalg, const uint8_t *data, size_t len,
                              struct sf_buf *out);

/*
 * The last failure of a call on a, as a sentence ("" if none), for error
 * details and logs. Valid until the next call on a.
 */
const char *sf_agent_why(const struct sf_agent *a);

/* Close the connection and release everything; NULL is allowed. */
void sf_agent_free(struct sf_agent *a);

#endif
