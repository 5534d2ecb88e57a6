/*
 * src/sntrup761.h -- Streamlined NTRU Prime sntrup761 KEM (NTRU Prime
 * round-3 specification, p = 761, q = 4591, w = 286), with the sizes and
 * byte encodings of the round-3 reference / SUPERCOP crypto_kem/sntrup761
 * that OpenSSH's sntrup761x25519-sha512@openssh.com uses.
 *
 * Owns: the KEM arithmetic (constant time with respect to secrets) and its
 * encodings. Must never: branch on or index memory by a secret, keep state
 * between calls, or do I/O other than through the caller's random source.
 *
 * Random bytes are drawn exactly as the round-3 reference draws them, so
 * the NIST KAT is reproducible with its DRBG: keypair makes 761 rng calls
 * of 4 bytes for the small polynomial g (again while g is not invertible
 * mod 3, which is rare), 761 calls of 4 bytes for the short f, then one
 * call of 191 bytes for rho; enc makes 761 calls of 4 bytes for the short
 * r. With rng NULL each polynomial's 3044 bytes come from one RAND_bytes.
 *
 * All functions return 0 or a negative SF_ERR_*; on failure the outputs
 * are zeroed. They are thread-safe (no shared state; the rng callback must
 * be safe to call from the caller's thread).
 */
#ifndef SF_SNTRUP761_H
#define SF_SNTRUP761_H

#include <stddef.h>
#include <stdint.h>

#include "sf.h"

#define SF_SNTRUP761_PUBLICKEY_BYTES 1158
#define SF_SNTRUP761_SECRETKEY_BYTES 1763
#define SF_SNTRUP761_CIPHERTEXT_BYTES 1039
#define SF_SNTRUP761_SHARED_BYTES 32
/* Random source: fill out[n]. NULL means OpenSSL's RAND_bytes. Returns 0 or nonzero on failure. */
typedef int (*sf_sntrup761_rng)(void *ctx, uint8_t *out, size_t n);
SF_MUST_USE int sf_sntrup761_keypair(uint8_t *pk, uint8_t *sk, sf_sntrup761_rng rng, void *rngctx);
SF_MUST_USE int sf_sntrup761_enc(uint8_t *ct, uint8_t *ss, const uint8_t *pk, sf_sntrup761_rng rng, void *rngctx);
/* Always produces a shared secret (implicit rejection); returns nonzero only on internal failure. */
SF_MUST_USE int sf_sntrup761_dec(uint8_t *ss, const uint8_t *ct, const uint8_t *sk);

#endif
