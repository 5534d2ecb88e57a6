/*
 * src/mlkem768.h -- ML-KEM-768 (FIPS 203, August 2024), the post-quantum
 * half of the mlkem768x25519-sha256 key exchange.
 *
 * Owns: the ML-KEM-768 key generation, encapsulation and decapsulation
 * entry points. Uses OpenSSL's "ML-KEM-768" when sshflow is built against
 * OpenSSL 3.5 or later, otherwise its own constant-time implementation.
 * Must never: do I/O, branch or index on secret data, or leave secrets in
 * memory it owns after returning.
 *
 * All functions return 0 or a negative SF_ERR_*. Buffers are the caller's
 * and must have the sizes below; they are thread-safe (no shared state).
 */
#ifndef SF_MLKEM768_H
#define SF_MLKEM768_H

#include <stdint.h>

#include "sf.h"

#define SF_MLKEM768_PUBLICKEY_BYTES 1184
#define SF_MLKEM768_SECRETKEY_BYTES 2400
#define SF_MLKEM768_CIPHERTEXT_BYTES 1088
#define SF_MLKEM768_SHARED_BYTES 32
/* FIPS 203 ML-KEM.KeyGen_internal(d, z) (deterministic) and the randomized form. */
SF_MUST_USE int sf_mlkem768_keypair_derand(uint8_t *pk, uint8_t *sk, const uint8_t d[32], const uint8_t z[32]);
SF_MUST_USE int sf_mlkem768_keypair(uint8_t *pk, uint8_t *sk);
/* ML-KEM.Encaps_internal(ek, m) and randomized; both run the FIPS 203 s7.2 encapsulation key check (modulus check) and return SF_ERR_CRYPTO if it fails. */
SF_MUST_USE int sf_mlkem768_encaps_derand(uint8_t *ct, uint8_t *ss, const uint8_t *pk, const uint8_t m[32]);
SF_MUST_USE int sf_mlkem768_encaps(uint8_t *ct, uint8_t *ss, const uint8_t *pk);
/* ML-KEM.Decaps with implicit rejection (never fails on a bad ciphertext; returns nonzero only on internal failure or a malformed sk per FIPS 203 s7.3 hash check). */
SF_MUST_USE int sf_mlkem768_decaps(uint8_t *ss, const uint8_t *ct, const uint8_t *sk);

#endif /* SF_MLKEM768_H */
