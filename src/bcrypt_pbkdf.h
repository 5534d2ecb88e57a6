/*
 * src/bcrypt_pbkdf.h -- the bcrypt_pbkdf key derivation function that
 * OpenSSH uses for passphrase-protected openssh-key-v1 files (PROTOCOL.key
 * s2, kdfname "bcrypt"), with the Blowfish / eksblowfish it needs.
 *
 * Owns: a private Blowfish (OpenSSL 3 keeps its Blowfish in the legacy
 * provider and has no expensive key schedule). Must never: leave any
 * intermediate value (hashes, Blowfish state, partial output) unwiped, or
 * accept parameters outside the documented bounds.
 */
#ifndef SF_BCRYPT_PBKDF_H
#define SF_BCRYPT_PBKDF_H

#include "sf.h"

#define SF_BCRYPT_HASH_LEN 32        /* output of one bcrypt hash */
#define SF_BCRYPT_KEY_MAX (32 * 32)  /* longest key the stride scheme allows */
#define SF_BCRYPT_SALT_MAX 1024      /* longest salt we take (ssh-keygen writes 16) */

/*
 * bcrypt_pbkdf as in OpenBSD / OpenSSH: derive keylen bytes into key from
 * the passphrase (passlen bytes, may contain NUL, must not be empty) and
 * salt (1..SF_BCRYPT_SALT_MAX bytes) with `rounds` iterations (>= 1; the
 * caller bounds the upper end, each round costs one bcrypt hash per 32
 * bytes of output). keylen is 1..SF_BCRYPT_KEY_MAX. Returns 0, or
 * SF_ERR_INVALID for parameters out of range (key is then zeroed), or
 * SF_ERR_CRYPTO if SHA-512 fails. Every intermediate is wiped. Thread-safe.
 */
SF_MUST_USE int sf_bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt,
                                size_t saltlen, uint8_t *key, size_t keylen, unsigned rounds);

/*
 * Plain Blowfish, for known-answer tests of the cipher itself: encrypt one
 * 8-byte block (big-endian halves) under key (1..56 bytes) with the
 * standard key schedule. Returns 0 or SF_ERR_INVALID.
 */
SF_MUST_USE int sf_bcrypt_blowfish_ecb(const uint8_t *key, size_t keylen, const uint8_t in[8],
                                       uint8_t out[8]);

#endif
