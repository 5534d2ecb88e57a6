/*
 * check/check_key.c -- tests for src/key.c and src/keyfile.c: public key
 * blobs, signatures, private key files.
 *
 * Owns: known-answer vectors (RFC 8032 s7.1 test 1 for Ed25519; ECDSA and
 * RSA vectors made offline, see below), openssh-key-v1 payloads built here
 * field by field, and a temp dir of keys made at test time by the real
 * ssh-keygen (interop: .pub blobs, PEM/PKCS#8 files, SSHSIG signatures
 * checked by `ssh-keygen -Y verify` and made by `ssh-keygen -Y sign`).
 * Must never: need python at run time, touch ~/.ssh, or leave its temp dir.
 *
 * The ECDSA/RSA vectors were made once with python3 `cryptography` 48:
 *   k = ec.generate_private_key(SECP256R1()); der = k.sign(msg, ECDSA(SHA256()))
 *   r, s = decode_dss_signature(der)        (likewise P-384/SHA384, P-521/SHA512)
 *   k = rsa.generate_private_key(65537, 2048)
 *   sig = k.sign(msg, PKCS1v15(), SHA256())  (and SHA512, SHA1)
 *   kat_rsa_short_*: the first "sshflow rsa short %d" message whose SHA-256
 *   signature starts with a zero byte.
 */
#include "key.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "buf.h"
#include "sshd.h"


#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define PASS "secret-pass"
#define WRONG_PASS "wrong-pass"

/* RFC 8032 s7.1, TEST 1: secret key (seed), public key, signature of the empty message. */
static const uint8_t ed_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};
static const uint8_t ed_pub[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};
static const uint8_t ed_sig[64] = {
    0xe5, 0x56, 0x43, 0x00, 0xc3, 0x60, 0xac, 0x72, 0x90, 0x86, 0xe2, 0xcc, 0x80, 0x6e, 0x82, 0x8a,
    0x84, 0x87, 0x7f, 0x1e, 0xb8, 0xe5, 0xd9, 0x74, 0xd8, 0x73, 0xe0, 0x65, 0x22, 0x49, 0x01, 0x55,
    0x5f, 0xb8, 0x82, 0x15, 0x90, 0xa3, 0x3b, 0xac, 0xc6, 0x1e, 0x39, 0x70, 0x1c, 0xf9, 0xb4, 0x6b,
    0xd2, 0x5b, 0xf5, 0xf0, 0x59, 0x5b, 0xbe, 0x24, 0x65, 0x51, 0x41, 0x43, 0x8e, 0x7a, 0x10, 0x0b,
};

/* Generated offline with python3 cryptography 48 (see check_key.c header). */
static const uint8_t kat_ecdsa_msg[] = {
    0x73, 0x73, 0x68, 0x66, 0x6c, 0x6f, 0x77, 0x20, 0x65, 0x63, 0x64, 0x73, 0x61, 0x20, 0x6b, 0x6e,
    0x6f, 0x77, 0x6e, 0x20, 0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
};
static const uint8_t kat_p256_q[] = {
    0x04, 0x13, 0x2a, 0x49, 0x00, 0x64, 0x80, 0xf8, 0x74, 0x40, 0x67, 0xc7, 0xed, 0x9f, 0x13, 0xa9,
    0xd0, 0x17, 0x50, 0x52, 0x52, 0x17, 0xaf, 0x80, 0x6a, 0x44, 0x54, 0xa5, 0xda, 0xbc, 0xbd, 0xb5,
    0xe1, 0x41, 0xb5, 0xb7, 0xe3, 0xdb, 0x96, 0xff, 0x71, 0x9e, 0xa8, 0xf5, 0x00, 0xf1, 0x8e, 0xb7,
    0x69, 0x75, 0x49, 0xfd, 0x73, 0xc3, 0xa8, 0x29, 0x5c, 0x18, 0xb1, 0xe5, 0x03, 0x80, 0x1d, 0x00,
    0xe7,
};
static const uint8_t kat_p256_d[] = {
    0xcf, 0x36, 0xfc, 0x7b, 0x5a, 0x83, 0xa9, 0x54, 0x10, 0xbd, 0xe4, 0x1a, 0xc9, 0xda, 0x49, 0x85,
    0x25, 0xf1, 0x82, 0x59, 0x49, 0x4e, 0x21, 0x15, 0x5b, 0x85, 0xf6, 0xb7, 0x71, 0x91, 0xbc, 0x17,
};
static const uint8_t kat_p256_r[] = {
    0x4a, 0x97, 0xc0, 0xe1, 0xa9, 0xed, 0x74, 0xbc, 0x3e, 0x9f, 0x16, 0xd4, 0x18, 0x16, 0x8c, 0xc4,
    0x9d, 0x5d, 0xc7, 0x62, 0x00, 0xfa, 0x43, 0xfe, 0x39, 0x58, 0xae, 0xe9, 0xa3, 0xe4, 0x7b, 0xf1,
};
static const uint8_t kat_p256_s[] = {
    0xad, 0xe5, 0xa0, 0xb0, 0xbf, 0x8f, 0xeb, 0xef, 0x24, 0xfe, 0x37, 0x2c, 0xd0, 0x0b, 0xba, 0x5b,
    0x69, 0xc2, 0xd9, 0xfe, 0xd8, 0xa5, 0x24, 0xf7, 0xd5, 0xeb, 0x43, 0x37, 0xc2, 0x49, 0xa7, 0x2a,
};
static const uint8_t kat_p384_q[] = {
    0x04, 0x68, 0xcf, 0x32, 0xf9, 0xef, 0x16, 0x63, 0x62, 0xb1, 0x9f, 0xc1, 0x20, 0x40, 0x65, 0x78,
    0x84, 0xa8, 0x2f, 0x33, 0x8a, 0xc1, 0x33, 0x66, 0x66, 0x7a, 0xee, 0xcf, 0xb0, 0x4e, 0xaf, 0x90,
    0x12, 0x4e, 0xe9, 0x4f, 0x08, 0x06, 0xe6, 0x21, 0xdc, 0x21, 0x2a, 0xbf, 0x0f, 0x28, 0x81, 0x45,
    0xa7, 0x33, 0xae, 0xed, 0xea, 0xd4, 0x1f, 0x3c, 0x0e, 0x33, 0xa3, 0x1f, 0x44, 0x72, 0xf5, 0xaa,
    0xbc, 0x3e, 0x9c, 0x41, 0xb7, 0xdd, 0x5a, 0x7c, 0xdc, 0xdd, 0xbc, 0x84, 0xb7, 0x0a, 0x33, 0x2b,
    0x0f, 0x26, 0x2d, 0xf2, 0x99, 0xe1, 0x5d, 0x02, 0x7b, 0x1d, 0x42, 0x29, 0xce, 0xc1, 0xd9, 0xae,
    0x13,
};
static const uint8_t kat_p384_d[] = {
    0xd3, 0xe6, 0xad, 0x04, 0x55, 0x87, 0xa7, 0x11, 0xe2, 0xfd, 0x11, 0xab, 0x7d, 0xd4, 0x82, 0xa5,
    0x6b, 0x2f, 0xbf, 0x05, 0x24, 0x66, 0x52, 0xf7, 0xcb, 0xe0, 0x06, 0xa3, 0x57, 0xd0, 0x1d, 0x24,
    0xd3, 0xf8, 0xe7, 0x63, 0xed, 0x1b, 0x1a, 0xe9, 0x42, 0x77, 0x2a, 0x1e, 0xf6, 0x83, 0x04, 0x41,
};
static const uint8_t kat_p384_r[] = {
    0xd4, 0xc1, 0x41, 0xf7, 0x8d, 0x8a, 0x12, 0xdc, 0xe8, 0x2e, 0x06, 0x50, 0xf0, 0xda, 0xfa, 0x30,
    0x54, 0x64, 0xf8, 0x68, 0x80, 0x5d, 0x97, 0x6c, 0xdd, 0x99, 0x1c, 0xa7, 0xb5, 0x7b, 0xfe, 0x3c,
    0x03, 0x54, 0xd5, 0x18, 0x09, 0x57, 0xe8, 0x04, 0x8e, 0x49, 0x66, 0xc3, 0x56, 0xe0, 0xe2, 0x53,
};
static const uint8_t kat_p384_s[] = {
    0x98, 0x8f, 0x96, 0x54, 0x3f, 0x25, 0x01, 0x3a, 0xce, 0xf8, 0x61, 0x5d, 0x64, 0x00, 0xd3, 0xcf,
    0x4a, 0x8e, 0x75, 0xbb, 0xa1, 0x6d, 0xc7, 0xf0, 0xc4, 0x15, 0x71, 0x04, 0x44, 0x3c, 0xf7, 0x0c,
    0x68, 0xe7, 0xb4, 0xad, 0xe5, 0xe6, 0xb3, 0x02, 0xa9, 0x75, 0x16, 0x31, 0x49, 0x9a, 0xfa, 0xaf,
};
static const uint8_t kat_p521_q[] = {
    0x04, 0x01, 0xdc, 0x89, 0x78, 0x09, 0x31, 0x2e, 0xa3, 0x8d, 0x42, 0x35, 0x80, 0x0d, 0x94, 0xbe,
    0x2b, 0x00, 0x99, 0xc8, 0x48, 0x09, 0xd2, 0x13, 0xf6, 0xbf, 0xac, 0x1f, 0xfb, 0xe3, 0x6a, 0xf7,
    0x80, 0x61, 0x3b, 0xca, 0x9f, 0xa4, 0x82, 0xc3, 0xe3, 0x2a, 0x1f, 0xc6, 0x66, 0x71, 0x4e, 0xc3,
    0x5a, 0xd1, 0xae, 0xe6, 0x1f, 0x95, 0x5e, 0x06, 0x0c, 0xef, 0xd6, 0x76, 0x5c, 0x30, 0x7e, 0x5d,
    0xc3, 0xc0, 0x10, 0x00, 0xe3, 0xa5, 0x27, 0xf8, 0xb4, 0x9f, 0xf4, 0xbf, 0xaf, 0x27, 0x0f, 0xe7,
    0x1b, 0xdf, 0x2f, 0xb3, 0xc0, 0x6b, 0x06, 0xba, 0x3f, 0x6e, 0x6b, 0x51, 0x1e, 0x22, 0x57, 0xfc,
    0x3a, 0x8d, 0x13, 0x16, 0x53, 0x9b, 0xed, 0xc7, 0xe0, 0xc6, 0x17, 0xcb, 0xd3, 0x61, 0x88, 0x87,
    0xca, 0xb1, 0x7c, 0xb9, 0xdb, 0x23, 0x75, 0xa3, 0xa3, 0x53, 0xa4, 0xf5, 0xa9, 0xd0, 0x1f, 0x7a,
    0x33, 0xf8, 0xca, 0xb0, 0x1d,
};
static const uint8_t kat_p521_d[] = {
    0x49, 0x0d, 0xb0, 0xad, 0xd9, 0xe4, 0xb7, 0x33, 0x6f, 0x69, 0xcd, 0x2e, 0x7b, 0xc4, 0xe2, 0xd7,
    0x11, 0xd0, 0x08, 0xa0, 0x7a, 0x6d, 0x29, 0x8c, 0x6c, 0xdb, 0xdf, 0xf9, 0x65, 0x35, 0xc7, 0x34,
    0xe1, 0x4b, 0x36, 0xed, 0x81, 0xc8, 0xa1, 0x70, 0x50, 0x2f, 0x9b, 0x5f, 0x52, 0xe9, 0xab, 0xeb,
    0xf7, 0x40, 0xf7, 0x38, 0xfc, 0x56, 0x5f, 0x45, 0x83, 0x3b, 0xb0, 0x9a, 0xfc, 0xf6, 0x13, 0xbb,
    0x4c,
};
static const uint8_t kat_p521_r[] = {
    0x01, 0xc6, 0xea, 0x07, 0xbb, 0xb0, 0x69, 0x4d, 0x4e, 0x39, 0xf4, 0x8e, 0x6e, 0x25, 0xdb, 0xf4,
    0x8b, 0x4e, 0x6b, 0xa2, 0x6d, 0x67, 0x57, 0xb3, 0x49, 0xa6, 0x55, 0x4d, 0xf8, 0x17, 0x35, 0xb0,
    0xac, 0x47, 0xf8, 0xd0, 0x7d, 0x44, 0x12, 0x88, 0xad, 0x1d, 0x92, 0x39, 0x3c, 0xfa, 0xc4, 0x1f,
    0x6a, 0x41, 0x66, 0x73, 0xf9, 0x15, 0xbf, 0x84, 0x32, 0xfd, 0x0e, 0xce, 0x75, 0x98, 0xeb, 0x94,
    0x2e, 0x10,
};
static const uint8_t kat_p521_s[] = {
    0x01, 0xe1, 0x7b, 0xa4, 0xaf, 0xec, 0xf1, 0x0d, 0x1a, 0x3b, 0x5f, 0x85, 0x35, 0x11, 0x59, 0x44,
    0xa0, 0xe8, 0xf9, 0xed, 0x2d, 0xe4, 0x83, 0x1e, 0x8e, 0x0c, 0xb2, 0x7a, 0xa7, 0xfd, 0x03, 0x5c,
    0x24, 0xbf, 0x03, 0x96, 0x06, 0x52, 0xab, 0xbc, 0x15, 0x40, 0x94, 0x6e, 0x1b, 0x5a, 0x48, 0x6a,
    0x2e, 0x73, 0xc9, 0x42, 0x3f, 0x5e, 0x5c, 0x4a, 0x3d, 0x40, 0x32, 0x3f, 0x69, 0x27, 0xe0, 0x0e,
    0x60, 0x8d,
};
static const uint8_t kat_rsa_msg[] = {
    0x73, 0x73, 0x68, 0x66, 0x6c, 0x6f, 0x77, 0x20, 0x72, 0x73, 0x61, 0x20, 0x6b, 0x6e, 0x6f, 0x77,
    0x6e, 0x20, 0x61, 0x6e, 0x73, 0x77, 0x65, 0x72,
};
static const uint8_t kat_rsa_n[] = {
    0xbb, 0x91, 0xb6, 0x05, 0x89, 0x89, 0x44, 0x00, 0xa4, 0xf7, 0x2c, 0x81, 0x87, 0xa1, 0x0b, 0x47,
    0x42, 0x67, 0x06, 0x37, 0xa3, 0xda, 0xf6, 0x03, 0xfa, 0x98, 0xfb, 0x38, 0xcc, 0x55, 0x0f, 0xbb,
    0x3e, 0x71, 0xf7, 0xf3, 0xc6, 0x9d, 0x81, 0x66, 0xa2, 0x80, 0x9e, 0xa0, 0x91, 0xc8, 0x17, 0x49,
    0xba, 0x23, 0xb9, 0x28, 0xa2, 0x71, 0x5e, 0xae, 0x93, 0xed, 0xc9, 0x31, 0xcb, 0x80, 0xd2, 0x61,
    0x1f, 0xab, 0xe0, 0xca, 0xa7, 0x1c, 0xf4, 0x97, 0xde, 0x6b, 0xa1, 0x27, 0xa0, 0x97, 0x88, 0x12,
    0xae, 0x29, 0x27, 0x3b, 0x7e, 0x36, 0xe7, 0x08, 0xaf, 0xce, 0x98, 0x7a, 0x63, 0x73, 0xf6, 0x0d,
    0xfc, 0xca, 0x24, 0xc4, 0x30, 0x72, 0x83, 0xeb, 0xb1, 0x6f, 0xd6, 0xcb, 0x2a, 0xa3, 0x3c, 0xe7,
    0x29, 0x8c, 0xda, 0x6a, 0x70, 0xfc, 0x0c, 0x6e, 0xf9, 0xc6, 0x28, 0xa1, 0xce, 0xe5, 0x1d, 0xde,
    0x16, 0xce, 0x45, 0x40, 0x28, 0x31, 0xcf, 0x7b, 0x96, 0x83, 0x1b, 0xbc, 0xfa, 0x33, 0x5e, 0x57,
    0xdd, 0x6c, 0xd4, 0xd4, 0x95, 0xc6, 0xc2, 0x12, 0x6a, 0xdd, 0x64, 0xe0, 0x6b, 0x0a, 0x7c, 0x1d,
    0x14, 0xcb, 0xc5, 0xbf, 0xdf, 0x8d, 0xcc, 0x42, 0xe9, 0x36, 0x4d, 0x8a, 0x9c, 0x2e, 0x82, 0x61,
    0xbd, 0x2c, 0x48, 0x5c, 0x01, 0x58, 0x34, 0x42, 0xdc, 0x0f, 0x51, 0x64, 0xfa, 0x62, 0xc4, 0x45,
    0x99, 0xfd, 0x93, 0xef, 0xad, 0xd5, 0xcb, 0x7c, 0xa2, 0x80, 0xb8, 0x7a, 0x84, 0xdf, 0x62, 0x35,
    0xd2, 0x72, 0xce, 0x36, 0xbf, 0x15, 0xb8, 0xd1, 0xc6, 0x68, 0xf9, 0x84, 0xaf, 0xab, 0x16, 0x6b,
    0x3f, 0x3a, 0x9a, 0x54, 0x6c, 0xb1, 0xbf, 0x94, 0xd8, 0x5d, 0xef, 0xc3, 0x8e, 0x9a, 0x4a, 0xde,
    0x7c, 0xfc, 0x23, 0x4f, 0x79, 0x01, 0xea, 0x3b, 0x02, 0xc0, 0xb5, 0x36, 0xa5, 0xb7, 0xfe, 0xa9,
};
static const uint8_t kat_rsa_e[] = {
    0x01, 0x00, 0x01,
};
static const uint8_t kat_rsa_d[] = {
    0x03, 0x10, 0x55, 0xbf, 0x50, 0x68, 0x50, 0x16, 0x8c, 0x9b, 0x46, 0xfc, 0x54, 0xa9, 0x52, 0x44,
    0x57, 0x36, 0xd4, 0x98, 0xab, 0x12, 0x04, 0x0b, 0xbb, 0x97, 0xad, 0x1e, 0xd7, 0xe3, 0x99, 0xce,
    0xae, 0xad, 0xf0, 0xe5, 0x67, 0xfc, 0xa1, 0xa4, 0xfa, 0x09, 0x8c, 0xcd, 0xc5, 0xa3, 0xd5, 0x91,
    0x8c, 0x3b, 0x52, 0x26, 0x72, 0x44, 0xd4, 0xcd, 0x98, 0x37, 0xfd, 0x9d, 0xd5, 0x1b, 0xa5, 0x14,
    0x16, 0x0e, 0xda, 0x2c, 0xa5, 0x3f, 0x29, 0x55, 0xa3, 0xb9, 0xf1, 0x57, 0x72, 0xdd, 0x96, 0xc8,
    0xeb, 0x54, 0x5b, 0xc2, 0x32, 0x85, 0x16, 0x10, 0x03, 0xc3, 0x25, 0xa5, 0x76, 0x23, 0x6a, 0x44,
    0xff, 0x38, 0x94, 0x12, 0x2a, 0x52, 0x6c, 0x8a, 0x38, 0x8b, 0x41, 0xa0, 0x6e, 0xf1, 0x5c, 0xa8,
    0xcf, 0xfa, 0x6f, 0x84, 0xe6, 0x94, 0x8f, 0x65, 0x6e, 0xaa, 0x08, 0x76, 0xe0, 0x28, 0xc8, 0xec,
    0x95, 0x1c, 0xcb, 0x49, 0x8c, 0x1f, 0xb2, 0x1c, 0xa5, 0x1b, 0x9f, 0x37, 0x2e, 0xf0, 0x2a, 0x16,
    0x89, 0x9a, 0x9f, 0x2a, 0x2a, 0xd3, 0x4f, 0x8f, 0xb1, 0x09, 0x3b, 0x75, 0x13, 0xe9, 0x3d, 0x68,
    0xd3, 0x6f, 0x33, 0x5a, 0x3a, 0x03, 0x3d, 0x44, 0x51, 0x6c, 0x2a, 0x5d, 0x42, 0x6e, 0x78, 0x86,
    0x69, 0x0d, 0xf3, 0x74, 0xa3, 0xbf, 0x92, 0x4f, 0xe7, 0xd1, 0x39, 0xdb, 0x87, 0x26, 0x26, 0x6f,
    0xb5, 0x6d, 0x4a, 0xc7, 0xb0, 0x61, 0x61, 0x33, 0xcc, 0xdf, 0x53, 0x2d, 0x1a, 0xf6, 0xa2, 0x3f,
    0x16, 0xdf, 0xbd, 0x74, 0xac, 0x51, 0xec, 0xe4, 0xe1, 0xfa, 0x51, 0xf3, 0xf8, 0xfc, 0xf9, 0xf0,
    0x36, 0x88, 0x86, 0xb5, 0x17, 0x7a, 0xf5, 0xfc, 0x37, 0x04, 0x3e, 0xd6, 0x87, 0x30, 0x80, 0xd1,
    0xfd, 0x5c, 0xd4, 0x0d, 0x02, 0xc9, 0x8e, 0xc6, 0x91, 0x82, 0x23, 0xcc, 0x19, 0x92, 0x2f, 0x03,
};
static const uint8_t kat_rsa_iqmp[] = {
    0xda, 0xf9, 0xea, 0xc5, 0x9d, 0x44, 0x6e, 0x15, 0x64, 0x9d, 0x59, 0x2f, 0x97, 0x3c, 0x55, 0x00,
    0xa6, 0xa2, 0x51, 0x8e, 0x50, 0xf9, 0xe9, 0x3f, 0x20, 0xd7, 0x25, 0xe1, 0xa6, 0x4b, 0xbe, 0xbc,
    0x83, 0x40, 0xcb, 0xec, 0x48, 0xe4, 0xab, 0xac, 0x1f, 0x1c, 0x0e, 0x36, 0x98, 0xcf, 0xaa, 0x7f,
    0x18, 0x79, 0x4e, 0x35, 0x38, 0x43, 0xd5, 0x26, 0xc5, 0xe7, 0xdc, 0x7e, 0xc1, 0x60, 0x2e, 0x2a,
    0xa8, 0xbe, 0x50, 0x4a, 0x0d, 0xc3, 0x3a, 0xc2, 0x1a, 0x40, 0x3a, 0x5e, 0x60, 0x68, 0xb3, 0x2f,
    0x15, 0x3b, 0x90, 0xd0, 0x2d, 0x5f, 0x29, 0x18, 0xe7, 0x42, 0x7b, 0xf8, 0xc9, 0xf9, 0xa3, 0xf4,
    0x66, 0x91, 0xf5, 0x1a, 0xd4, 0xd0, 0x50, 0xbd, 0xcd, 0xfd, 0x7b, 0x0f, 0x32, 0x35, 0x1e, 0xf9,
    0xd0, 0x78, 0x29, 0xbf, 0x18, 0xd9, 0x4e, 0xf9, 0x4c, 0xc7, 0xa9, 0xe9, 0x50, 0x4e, 0x9e, 0xfa,
};
static const uint8_t kat_rsa_p[] = {
    0xdf, 0x70, 0xa2, 0xd2, 0xe1, 0x7a, 0x02, 0x73, 0xae, 0x16, 0x24, 0x18, 0xde, 0x43, 0xe1, 0x47,
    0x5d, 0xad, 0xa9, 0xa5, 0xce, 0x39, 0xea, 0x8d, 0x74, 0xe7, 0x2d, 0xfb, 0x0c, 0xd6, 0xbe, 0x24,
    0xf2, 0x1a, 0x55, 0x64, 0x1f, 0xf7, 0x5a, 0x24, 0x1e, 0x67, 0x47, 0xd2, 0xde, 0x74, 0xd1, 0xa9,
    0x5a, 0x78, 0x0a, 0x96, 0x34, 0xd7, 0xb8, 0x40, 0xdb, 0xb2, 0xfe, 0x4e, 0x44, 0xa1, 0x0d, 0x5c,
    0xf6, 0x6d, 0xbd, 0xed, 0x04, 0x90, 0x0c, 0x7f, 0x3f, 0x64, 0xb7, 0x6b, 0xe5, 0xdf, 0x90, 0xee,
    0xed, 0x60, 0xfe, 0xb7, 0xeb, 0x9e, 0x46, 0x57, 0xe8, 0x70, 0xab, 0x1a, 0x56, 0x10, 0x58, 0xe2,
    0x0c, 0x80, 0x7e, 0xcf, 0xaf, 0xda, 0x94, 0x93, 0xf3, 0xbd, 0x88, 0xd6, 0x4c, 0x6a, 0x54, 0x54,
    0xf4, 0x6e, 0xb2, 0xf2, 0xfb, 0x13, 0x1a, 0x08, 0x23, 0xa3, 0xda, 0x43, 0x12, 0xee, 0x8f, 0xa7,
};
static const uint8_t kat_rsa_q[] = {
    0xd6, 0xe6, 0xec, 0xd6, 0x66, 0x58, 0x91, 0x0b, 0x71, 0x45, 0x12, 0xb5, 0xe3, 0x6a, 0x47, 0xed,
    0x4c, 0xa6, 0xf3, 0x83, 0x70, 0x07, 0xaa, 0xeb, 0x4a, 0x28, 0x50, 0xe3, 0x5d, 0xe3, 0x13, 0x35,
    0x08, 0xbd, 0x72, 0x68, 0x93, 0x1d, 0x9c, 0xe9, 0xa8, 0x60, 0x59, 0xe9, 0xc5, 0x34, 0x05, 0x67,
    0x89, 0x7a, 0x5d, 0xea, 0x56, 0xac, 0xb6, 0x01, 0x40, 0xc7, 0x0f, 0x1c, 0xaf, 0xda, 0xec, 0x63,
    0xf2, 0xd6, 0x36, 0xa0, 0xb1, 0xdd, 0x76, 0x02, 0x45, 0x8b, 0xab, 0xd1, 0xf7, 0x2f, 0x5b, 0x35,
    0x2b, 0x6a, 0xee, 0x5d, 0x85, 0x01, 0x42, 0xb1, 0x9e, 0x12, 0x26, 0x68, 0xb0, 0xa9, 0xf1, 0x80,
    0xf4, 0x5f, 0xa7, 0xa0, 0x6e, 0xde, 0x3b, 0x1a, 0x7b, 0x0e, 0x33, 0xce, 0x0b, 0x4c, 0x0f, 0x4a,
    0x3c, 0xab, 0x3b, 0x8c, 0xb7, 0xab, 0x3d, 0xb1, 0xe8, 0x26, 0x77, 0xa6, 0x9a, 0x03, 0x49, 0x2f,
};
static const uint8_t kat_rsa_sig_sha256[] = {
    0x66, 0x93, 0x6c, 0x5a, 0x89, 0x3b, 0x21, 0xd6, 0x50, 0x6a, 0xf1, 0xc3, 0x2a, 0x06, 0x0c, 0xa4,
    0x1f, 0x69, 0x12, 0xe9, 0x0d, 0x30, 0x35, 0x0b, 0x75, 0x99, 0xc9, 0xed, 0x00, 0x2e, 0x21, 0x7f,
    0xe5, 0x35, 0x8e, 0xa4, 0xcb, 0xf3, 0x1b, 0x2c, 0xa5, 0xd5, 0xe5, 0x09, 0xb8, 0x74, 0x0e, 0x7e,
    0x03, 0x98, 0x3d, 0x62, 0x80, 0x1e, 0x92, 0xbf, 0xb1, 0xe6, 0x7b, 0x53, 0xcd, 0x79, 0xc9, 0x0c,
    0x58, 0xf8, 0x9c, 0x89, 0x05, 0xf8, 0xac, 0x4f, 0x4f, 0xae, 0xed, 0x31, 0x8e, 0x41, 0xe3, 0xf0,
    0x99, 0x56, 0xc1, 0x9b, 0xc8, 0xed, 0x02, 0xce, 0x48, 0xcf, 0xcb, 0xb7, 0xa0, 0x6a, 0x1a, 0xdd,
    0xc0, 0x5f, 0xb4, 0x91, 0xd5, 0x04, 0x13, 0x34, 0x2a, 0xe1, 0xdc, 0x69, 0x3d, 0x39, 0x1d, 0x2f,
    0x70, 0x88, 0x12, 0x75, 0x02, 0xfb, 0xea, 0x42, 0x53, 0xc6, 0x34, 0x0d, 0x08, 0xc8, 0xb1, 0xd5,
    0xb6, 0x2e, 0x3e, 0x35, 0x4c, 0xd5, 0x12, 0x1a, 0xaa, 0x83, 0x75, 0x0e, 0xd2, 0x0b, 0x3b, 0xa7,
    0xfa, 0x16, 0xc5, 0xc4, 0xfe, 0x5f, 0xfe, 0x11, 0x9d, 0xe6, 0x2d, 0x8f, 0x4b, 0xc1, 0x5d, 0xa9,
    0x15, 0xc9, 0x42, 0x04, 0xf4, 0xee, 0x94, 0xc7, 0xb0, 0x96, 0xf9, 0xcf, 0xdc, 0xdb, 0x1a, 0xcb,
    0xee, 0x92, 0xd5, 0xb1, 0x7d, 0x7b, 0xec, 0x4b, 0xdf, 0x77, 0x8a, 0xa3, 0xd7, 0xff, 0xcd, 0x10,
    0x78, 0xd5, 0xa8, 0x1e, 0xfc, 0x7b, 0xe4, 0x25, 0x4a, 0x4a, 0xeb, 0x6f, 0xd7, 0x2c, 0x05, 0xf3,
    0x75, 0xc2, 0x46, 0x1a, 0xf6, 0x86, 0x75, 0x8a, 0x98, 0xb0, 0x09, 0x68, 0x0d, 0x83, 0x3b, 0x5d,
    0x22, 0xe0, 0x68, 0x87, 0x0b, 0x22, 0x14, 0xd8, 0xbd, 0x10, 0x80, 0xb7, 0xf0, 0x9e, 0xe7, 0x2d,
    0x69, 0xd7, 0x81, 0x5f, 0x08, 0x7f, 0x55, 0xe5, 0x3a, 0xb8, 0x30, 0x4b, 0x5f, 0x83, 0xe4, 0x32,
};
static const uint8_t kat_rsa_sig_sha512[] = {
    0x06, 0xd2, 0xf1, 0x43, 0x25, 0x8a, 0xf9, 0x8b, 0x65, 0xc6, 0x94, 0x41, 0xc1, 0xd7, 0x0f, 0x83,
    0x4c, 0xcd, 0x99, 0x4e, 0xcb, 0x2c, 0x55, 0x87, 0xd0, 0x8e, 0xa0, 0x63, 0xb4, 0x73, 0x47, 0x90,
    0xc7, 0x18, 0x76, 0xbc, 0x1d, 0x5b, 0x03, 0x0c, 0x20, 0x5b, 0x54, 0x41, 0x0f, 0x1c, 0x49, 0x5a,
    0xb7, 0x79, 0x8b, 0xf4, 0x06, 0x61, 0xab, 0x5d, 0x7e, 0x50, 0x0b, 0x68, 0xa1, 0x0e, 0xc8, 0x26,
    0x32, 0x1f, 0x75, 0x44, 0x3a, 0x32, 0x1a, 0xc0, 0x34, 0x67, 0x06, 0x2a, 0x16, 0x6f, 0xed, 0x0d,
    0x90, 0xda, 0x1f, 0x2d, 0x76, 0xbb, 0x4e, 0x8a, 0x34, 0x99, 0xad, 0xae, 0xbf, 0xd7, 0xaa, 0x27,
    0x0c, 0xfb, 0x4b, 0xbc, 0x8a, 0x4c, 0x77, 0x58, 0x5f, 0xac, 0x59, 0xb9, 0x9e, 0x66, 0x70, 0xb7,
    0xe2, 0x9b, 0xaf, 0x02, 0xb3, 0x93, 0x50, 0xa2, 0xb8, 0x85, 0x6a, 0x64, 0x53, 0x33, 0xb4, 0x8a,
    0x73, 0xe6, 0x0a, 0x14, 0xa0, 0xd5, 0x3b, 0x5f, 0x12, 0x77, 0xed, 0x6c, 0x7e, 0x16, 0x63, 0x48,
    0x8f, 0xd2, 0x69, 0x24, 0xeb, 0x00, 0xc4, 0x25, 0x2a, 0x89, 0xec, 0x07, 0x87, 0xa5, 0x4d, 0x70,
    0xf1, 0xaa, 0x20, 0x8e, 0x31, 0x19, 0x83, 0x52, 0xae, 0x32, 0x78, 0x44, 0xc1, 0x8d, 0x1a, 0x0d,
    0xa2, 0x50, 0xf2, 0x2b, 0xf3, 0x68, 0x1d, 0x80, 0x05, 0x87, 0xc0, 0x05, 0xd2, 0x34, 0x66, 0x20,
    0xef, 0x8c, 0x39, 0xd9, 0x0d, 0x9f, 0x5f, 0xc9, 0xfc, 0x7f, 0x08, 0xa2, 0x20, 0xb6, 0xa7, 0x37,
    0x03, 0x7d, 0x29, 0x3f, 0x26, 0x4c, 0xce, 0xbd, 0x76, 0x47, 0x91, 0x4a, 0x9a, 0x49, 0x37, 0x53,
    0x49, 0xea, 0x9d, 0xe8, 0x00, 0x68, 0x89, 0x0b, 0xcb, 0xf4, 0xda, 0x0a, 0xd0, 0xb1, 0x68, 0xe8,
    0xc8, 0x11, 0xbe, 0xa7, 0xd8, 0x48, 0x70, 0x84, 0xbe, 0x9b, 0x66, 0x23, 0x8d, 0x13, 0xe3, 0xb3,
};
static const uint8_t kat_rsa_sig_sha1[] = {
    0x0e, 0x5a, 0xf5, 0x92, 0xbf, 0x4c, 0x2f, 0x49, 0xf7, 0xbc, 0xa5, 0x7a, 0x69, 0xd3, 0x50, 0xce,
    0xa1, 0x8b, 0xc9, 0x71, 0xd5, 0xbd, 0xfc, 0xc4, 0xa3, 0x2f, 0x05, 0xff, 0x9b, 0xa3, 0x21, 0x7d,
    0x74, 0x15, 0x01, 0x4d, 0xef, 0x73, 0xcb, 0x55, 0xdb, 0x7a, 0x54, 0x8e, 0xb7, 0xfa, 0xd1, 0x89,
    0x42, 0xff, 0x38, 0x35, 0x7d, 0xde, 0xba, 0x72, 0x85, 0xeb, 0x10, 0xfc, 0x20, 0x2f, 0x9b, 0xcf,
    0xe9, 0x19, 0x0d, 0xce, 0xe2, 0x08, 0xd1, 0xd9, 0x90, 0x13, 0xc7, 0xb5, 0xd8, 0xb6, 0x47, 0xe3,
    0x82, 0xb5, 0x2a, 0x4b, 0xa3, 0x90, 0x5e, 0x55, 0x7b, 0xfd, 0x0d, 0x2f, 0x67, 0x3f, 0x25, 0xaf,
    0xae, 0x5e, 0x3b, 0xcc, 0x21, 0x75, 0x2b, 0xce, 0x99, 0x9e, 0x7a, 0x92, 0xd6, 0xa7, 0x90, 0x22,
    0x0e, 0x25, 0xee, 0x8d, 0x89, 0xac, 0xb7, 0x54, 0x9f, 0x51, 0xbd, 0xcf, 0xa4, 0xc0, 0x5d, 0xed,
    0xa9, 0xdb, 0x35, 0x44, 0x7a, 0x95, 0x80, 0x1d, 0x48, 0x60, 0x97, 0xa4, 0x4d, 0xe8, 0x71, 0xcf,
    0xc6, 0xe7, 0x93, 0x85, 0x89, 0xb8, 0x5e, 0x20, 0x83, 0x27, 0xfb, 0xcf, 0x06, 0x97, 0x9b, 0xfc,
    0x08, 0x5a, 0xf9, 0xfb, 0xc8, 0x6f, 0xcb, 0xdb, 0xf9, 0x24, 0xb3, 0x3f, 0x9a, 0xec, 0x4a, 0x9e,
    0x3f, 0x95, 0x3c, 0x5e, 0x4d, 0x8e, 0xab, 0x04, 0xed, 0xb3, 0x9f, 0x69, 0x85, 0xa7, 0x5d, 0x98,
    0xb8, 0xd7, 0x96, 0x4d, 0x43, 0x3d, 0xcc, 0xe4, 0xe1, 0x37, 0x44, 0x8b, 0xcb, 0x59, 0x5a, 0xb6,
    0x1e, 0x96, 0x51, 0x0d, 0xe3, 0x18, 0x41, 0xd1, 0x23, 0x25, 0x82, 0x49, 0xa3, 0x42, 0x6c, 0x8e,
    0xa4, 0x73, 0x58, 0xc9, 0x8e, 0x00, 0x7f, 0xaf, 0x51, 0x0d, 0xef, 0x8a, 0xe9, 0xb8, 0x64, 0x80,
    0x63, 0xa8, 0x44, 0x93, 0x61, 0x6e, 0x50, 0x38, 0x33, 0x28, 0x75, 0xf2, 0xd9, 0x5d, 0x66, 0x02,
};
static const uint8_t kat_rsa_short_msg[] = {
    0x73, 0x73, 0x68, 0x66, 0x6c, 0x6f, 0x77, 0x20, 0x72, 0x73, 0x61, 0x20, 0x73, 0x68, 0x6f, 0x72,
    0x74, 0x20, 0x32, 0x35, 0x32,
};
static const uint8_t kat_rsa_short_sig[] = {
    0x00, 0x2e, 0xd9, 0xde, 0x2c, 0xfa, 0xa1, 0x2c, 0xfd, 0x7b, 0x0d, 0x97, 0x79, 0x21, 0x02, 0x81,
    0xe7, 0x44, 0x9a, 0x49, 0xff, 0xe6, 0xdb, 0x79, 0x3c, 0xd7, 0x70, 0x95, 0x7f, 0x60, 0x18, 0xf2,
    0xdd, 0x18, 0x15, 0x40, 0xd9, 0x1b, 0x7f, 0x51, 0x83, 0xd9, 0x1d, 0x66, 0xa0, 0xbd, 0xa7, 0xe5,
    0x96, 0x22, 0xb8, 0xf1, 0xab, 0x70, 0x39, 0x40, 0xea, 0xa9, 0x01, 0x0a, 0x5c, 0xf5, 0x6a, 0x4d,
    0xd7, 0x83, 0x5a, 0x3e, 0xdf, 0x61, 0x45, 0xf9, 0x68, 0xc3, 0x9e, 0xf6, 0xe6, 0xc6, 0x09, 0x5a,
    0xb6, 0x32, 0x11, 0x83, 0xd6, 0x24, 0xb9, 0xe0, 0x2f, 0x0d, 0x7f, 0x09, 0x50, 0xc6, 0xad, 0xb9,
    0xc3, 0xeb, 0x6d, 0xfc, 0x84, 0x77, 0x91, 0xcb, 0x3b, 0x8b, 0xf8, 0x6f, 0xd6, 0x48, 0x57, 0x1d,
    0xd9, 0xe7, 0x32, 0x31, 0xbf, 0xbd, 0x21, 0x6d, 0x49, 0xcf, 0xe0, 0xc6, 0x12, 0x7c, 0xce, 0x6b,
    0x20, 0x90, 0xe4, 0xce, 0x85, 0x1c, 0xf1, 0xab, 0x98, 0xa9, 0x8d, 0x71, 0x7f, 0x55, 0x14, 0x9b,
    0x57, 0x06, 0x24, 0x62, 0xb3, 0x9b, 0x0f, 0x30, 0xfb, 0xd4, 0xcb, 0x93, 0x53, 0x08, 0x05, 0x47,
    0xee, 0x68, 0x38, 0xd7, 0xc6, 0xb9, 0xeb, 0x2a, 0xa9, 0xa2, 0x6a, 0x33, 0xbc, 0x92, 0xa5, 0x0e,
    0x7c, 0x72, 0x76, 0x77, 0x56, 0xac, 0x76, 0x0e, 0x60, 0x39, 0xa6, 0xc6, 0xc5, 0xa4, 0x20, 0x30,
    0x61, 0xca, 0xc4, 0x94, 0xfb, 0x67, 0x03, 0x1f, 0x1b, 0x23, 0xd0, 0x57, 0xae, 0x78, 0x6a, 0x3d,
    0x93, 0xa4, 0x8c, 0xd9, 0xe5, 0xe5, 0x56, 0x9a, 0x14, 0xc5, 0x90, 0x59, 0x09, 0xf7, 0x77, 0x82,
    0xb2, 0x5a, 0xa0, 0xbf, 0x9d, 0x2a, 0x5d, 0x6e, 0x7b, 0xd7, 0x64, 0xf8, 0xdf, 0xa7, 0x15, 0x30,
    0x57, 0x3c, 0x7e, 0xba, 0xab, 0x48, 0xc0, 0x5b, 0x2e, 0x04, 0x4f, 0x86, 0x50, 0xec, 0x05, 0xc4,
};

struct ec_kat {
    const char *type, *id;
    const uint8_t *q, *d, *r, *s;
    size_t qn, dn, rn, sn;
};

#define EC_KAT(c, t, i)                                                                        \
    {                                                                                          \
        t, i, kat_##c##_q, kat_##c##_d, kat_##c##_r, kat_##c##_s, sizeof(kat_##c##_q),         \
            sizeof(kat_##c##_d), sizeof(kat_##c##_r), sizeof(kat_##c##_s)                      \
    }

static const struct ec_kat ec_kats[] = {
    EC_KAT(p256, "ecdsa-sha2-nistp256", "nistp256"),
    EC_KAT(p384, "ecdsa-sha2-nistp384", "nistp384"),
    EC_KAT(p521, "ecdsa-sha2-nistp521", "nistp521"),
};

/* ------------------------------------------------------------------ helpers */

static void
buf_new(struct sf_buf *b)
{
    ck_assert_int_eq(sf_buf_alloc(b, 0, SF_BUF_MAX), 0);
}

static void
put_cstr(struct sf_buf *b, const char *s)
{
    ck_assert_int_eq(sf_buf_put_cstr(b, s), 0);
}

static void
put_str(struct sf_buf *b, const void *p, size_t n)
{
    ck_assert_int_eq(sf_buf_put_string(b, p, n), 0);
}

static void
put_mpint(struct sf_buf *b, const uint8_t *p, size_t n)
{
    ck_assert_int_eq(sf_buf_put_mpint(b, p, n), 0);
}

static void
put_u32(struct sf_buf *b, uint32_t v)
{
    ck_assert_int_eq(sf_buf_put_u32(b, v), 0);
}

static void
put_bytes(struct sf_buf *b, const void *p, size_t n)
{
    ck_assert_int_eq(sf_buf_put_bytes(b, p, n), 0);
}

static bool
buf_eq(const struct sf_buf *a, const struct sf_buf *b)
{
    return sf_buf_len(a) == sf_buf_len(b) &&
           memcmp(sf_buf_ptr(a), sf_buf_ptr(b), sf_buf_len(a)) == 0;
}

/* RFC 8709 s4 */
static void
blob_ed25519(struct sf_buf *b, const uint8_t *pub, size_t n)
{
    put_cstr(b, "ssh-ed25519");
    put_str(b, pub, n);
}

/* RFC 5656 s3.1 */
static void
blob_ecdsa(struct sf_buf *b, const char *type, const char *id, const uint8_t *q, size_t qn)
{
    put_cstr(b, type);
    put_cstr(b, id);
    put_str(b, q, qn);
}

/* RFC 4253 s6.6 */
static void
blob_rsa(struct sf_buf *b, const uint8_t *e, size_t en, const uint8_t *n, size_t nn)
{
    put_cstr(b, "ssh-rsa");
    put_mpint(b, e, en);
    put_mpint(b, n, nn);
}

static void
blob_rsa_kat(struct sf_buf *b)
{
    blob_rsa(b, kat_rsa_e, sizeof(kat_rsa_e), kat_rsa_n, sizeof(kat_rsa_n));
}

/* Signature blob: string name || string signature. */
static void
sig_raw(struct sf_buf *b, const char *alg, const uint8_t *s, size_t n)
{
    put_cstr(b, alg);
    put_str(b, s, n);
}

/* RFC 5656 s3.1.2: string name || string (mpint r || mpint s). */
static void
sig_ecdsa(struct sf_buf *b, const char *alg, const uint8_t *r, size_t rn, const uint8_t *s,
          size_t sn)
{
    struct sf_buf in;

    buf_new(&in);
    put_mpint(&in, r, rn);
    put_mpint(&in, s, sn);
    put_cstr(b, alg);
    ck_assert_int_eq(sf_buf_put_sub(b, &in), 0);
    sf_buf_free(&in);
}

static struct sf_pubkey *
pub_of(const struct sf_buf *blob)
{
    struct sf_pubkey *k = NULL;

    ck_assert_int_eq(sf_pubkey_from_blob(sf_buf_ptr(blob), sf_buf_len(blob), &k), 0);
    ck_assert_ptr_nonnull(k);
    return k;
}

/* Parse must fail with code want (0 = any error) and leave *out NULL. */
static void
pub_fails(const uint8_t *p, size_t n, int want)
{
    struct sf_pubkey *k = (struct sf_pubkey *)&k; /* not NULL: must be cleared */
    int r = sf_pubkey_from_blob(p, n, &k);

    if (want != 0) {
        ck_assert_int_eq(r, want);
    } else {
        ck_assert_int_lt(r, 0);
    }
    ck_assert_ptr_null(k);
}

static int
verify_buf(const struct sf_pubkey *k, const char *alg, const struct sf_buf *sig, const void *data,
           size_t n)
{
    return sf_pubkey_verify(k, alg, sf_buf_ptr(sig), sf_buf_len(sig), data, n);
}

/* -------------------------------------------- openssh-key-v1 payload builder */

struct ossh_opts {
    const char *cipher;  /* ciphername */
    const char *kdf;     /* kdfname */
    size_t kdfopts;      /* bytes of (zero) kdfoptions */
    uint32_t nkeys;      /* number of keys */
    uint32_t check_xor;  /* second checkint = first ^ this */
    bool bad_pad;        /* last padding byte wrong */
};

static const struct ossh_opts plain = { "none", "none", 0, 1, 0, false };

/* PROTOCOL.key: header, one public key, the private list with padding. */
static void
openssh_payload(struct sf_buf *out, const struct ossh_opts *o, const struct sf_buf *pub,
                const struct sf_buf *priv)
{
    static const uint8_t zeros[64] = { 0 };
    const uint32_t check = 0x5f3759dfu;
    struct sf_buf sec;
    size_t pad;

    buf_new(&sec);
    put_u32(&sec, check);
    put_u32(&sec, check ^ o->check_xor);
    put_bytes(&sec, sf_buf_ptr(priv), sf_buf_len(priv));
    put_cstr(&sec, "comment@sshflow");
    pad = (8 - sf_buf_len(&sec) % 8) % 8;
    if (o->bad_pad && pad == 0) {
        pad = 8;
    }
    for (size_t i = 1; i <= pad; i++) {
        ck_assert_int_eq(sf_buf_put_u8(&sec, (o->bad_pad && i == pad) ? 0x00 : (uint8_t)i), 0);
    }
    put_bytes(out, "openssh-key-v1", 15); /* with its NUL */
    put_cstr(out, o->cipher);
    put_cstr(out, o->kdf);
    ck_assert_uint_le(o->kdfopts, sizeof(zeros));
    put_str(out, zeros, o->kdfopts);
    put_u32(out, o->nkeys);
    ck_assert_int_eq(sf_buf_put_sub(out, pub), 0);
    ck_assert_int_eq(sf_buf_put_sub(out, &sec), 0);
    sf_buf_free(&sec);
}

/* Armoured text of a payload (malloc'd, NUL-terminated): lines of 70 with eol. */
static char *
armour(const uint8_t *p, size_t n, const char *eol, size_t *lenp)
{
    size_t b64sz = (n + 2) / 3 * 4 + 1, blen, cap, o = 0;
    char *b64 = malloc(b64sz), *t = NULL;

    ck_assert_ptr_nonnull(b64);
    ck_assert_int_eq(sf_base64_encode(p, n, true, b64, b64sz), 0);
    blen = strlen(b64);
    cap = blen + (blen / 70 + 3) * strlen(eol) + 128;
    t = malloc(cap);
    ck_assert_ptr_nonnull(t);
    o += (size_t)snprintf(t + o, cap - o, "-----BEGIN OPENSSH PRIVATE KEY-----%s", eol);
    for (size_t i = 0; i < blen; i += 70) {
        size_t chunk = blen - i < 70 ? blen - i : 70;

        memcpy(t + o, b64 + i, chunk);
        o += chunk;
        o += (size_t)snprintf(t + o, cap - o, "%s", eol);
    }
    o += (size_t)snprintf(t + o, cap - o, "-----END OPENSSH PRIVATE KEY-----%s", eol);
    ck_assert_uint_lt(o, cap);
    free(b64);
    *lenp = o;
    return t;
}

/* Load the first n bytes of payload, armoured. */
static int
load_payload(const struct sf_buf *payload, size_t n, const char *pass, struct sf_privkey **k)
{
    size_t len = 0;
    char *text = NULL;
    int r;

    ck_assert_uint_le(n, sf_buf_len(payload));
    text = armour(sf_buf_ptr(payload), n, "\n", &len);
    *k = (struct sf_privkey *)k; /* not NULL: must be set */
    r = sf_privkey_load((const uint8_t *)text, len, pass, k);
    if (r != 0) {
        ck_assert_ptr_null(*k);
    } else {
        ck_assert_ptr_nonnull(*k);
    }
    free(text);
    return r;
}

/* Ed25519 private fields: string type, string pub, string (seed || pub2). */
static void
priv_ed25519(struct sf_buf *b, const uint8_t *seed, const uint8_t *pub, const uint8_t *pub2)
{
    uint8_t sk[64];

    memcpy(sk, seed, 32);
    memcpy(sk + 32, pub2, 32);
    put_cstr(b, "ssh-ed25519");
    put_str(b, pub, 32);
    put_str(b, sk, 64);
}

/* ECDSA private fields: string type, string id, string Q, mpint d (d ^ dxor in its last byte). */
static void
priv_ecdsa(struct sf_buf *b, const struct ec_kat *v, uint8_t dxor)
{
    uint8_t d[80];

    ck_assert_uint_le(v->dn, sizeof(d));
    memcpy(d, v->d, v->dn);
    d[v->dn - 1] ^= dxor;
    put_cstr(b, v->type);
    put_cstr(b, v->id);
    put_str(b, v->q, v->qn);
    put_mpint(b, d, v->dn);
}

enum rsa_defect { RSA_OK, RSA_BAD_IQMP, RSA_BAD_D, RSA_BAD_N, RSA_SMALL_E };

/* RSA private fields: string type, mpint n, e, d, iqmp, p, q. */
static void
priv_rsa(struct sf_buf *b, enum rsa_defect defect)
{
    uint8_t n[sizeof(kat_rsa_n)], d[sizeof(kat_rsa_d)], iqmp[sizeof(kat_rsa_iqmp)];
    static const uint8_t one[1] = { 1 };

    memcpy(n, kat_rsa_n, sizeof(n));
    memcpy(d, kat_rsa_d, sizeof(d));
    memcpy(iqmp, kat_rsa_iqmp, sizeof(iqmp));
    if (defect == RSA_BAD_IQMP) {
        iqmp[sizeof(iqmp) - 1] ^= 0x02;
    } else if (defect == RSA_BAD_D) {
        d[sizeof(d) - 1] ^= 0x02;
    } else if (defect == RSA_BAD_N) {
        n[sizeof(n) - 1] ^= 0x02;
    }
    put_cstr(b, "ssh-rsa");
    put_mpint(b, n, sizeof(n));
    if (defect == RSA_SMALL_E) {
        put_mpint(b, one, 1);
    } else {
        put_mpint(b, kat_rsa_e, sizeof(kat_rsa_e));
    }
    put_mpint(b, d, sizeof(d));
    put_mpint(b, iqmp, sizeof(iqmp));
    put_mpint(b, kat_rsa_p, sizeof(kat_rsa_p));
    put_mpint(b, kat_rsa_q, sizeof(kat_rsa_q));
}

/* Payload of the RFC 8032 Ed25519 key. */
static void
payload_ed25519(struct sf_buf *out, const struct ossh_opts *o)
{
    struct sf_buf pub, priv;

    buf_new(&pub);
    buf_new(&priv);
    blob_ed25519(&pub, ed_pub, 32);
    priv_ed25519(&priv, ed_seed, ed_pub, ed_pub);
    openssh_payload(out, o, &pub, &priv);
    sf_buf_free(&pub);
    sf_buf_free(&priv);
}

static void
payload_rsa(struct sf_buf *out, const struct ossh_opts *o, enum rsa_defect defect)
{
    struct sf_buf pub, priv;

    buf_new(&pub);
    buf_new(&priv);
    if (defect == RSA_BAD_N) {
        /* The header carries the changed n too: only n = p*q can catch it. */
        uint8_t n[sizeof(kat_rsa_n)];

        memcpy(n, kat_rsa_n, sizeof(n));
        n[sizeof(n) - 1] ^= 0x02;
        blob_rsa(&pub, kat_rsa_e, sizeof(kat_rsa_e), n, sizeof(n));
    } else {
        blob_rsa_kat(&pub);
    }
    priv_rsa(&priv, defect);
    openssh_payload(out, o, &pub, &priv);
    sf_buf_free(&pub);
    sf_buf_free(&priv);
}

static void
payload_ecdsa(struct sf_buf *out, const struct ec_kat *v, uint8_t dxor)
{
    struct sf_buf pub, priv;

    buf_new(&pub);
    buf_new(&priv);
    blob_ecdsa(&pub, v->type, v->id, v->q, v->qn);
    priv_ecdsa(&priv, v, dxor);
    openssh_payload(out, &plain, &pub, &priv);
    sf_buf_free(&pub);
    sf_buf_free(&priv);
}

/* Sign with k, verify with a public key from k's own blob; return the signature blob. */
static void
sign_verify(const struct sf_privkey *k, const char *alg, const void *data, size_t n,
            struct sf_buf *sig)
{
    struct sf_buf blob;
    struct sf_pubkey *pk = NULL;

    buf_new(&blob);
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    pk = pub_of(&blob);
    ck_assert_int_eq(sf_privkey_sign(k, alg, data, n, sig), 0);
    ck_assert_int_eq(verify_buf(pk, alg, sig, data, n), 0);
    /* Tampered data fails. */
    if (n > 0) {
        uint8_t *copy = malloc(n);

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, data, n);
        copy[n / 2] ^= 0x01;
        ck_assert_int_eq(verify_buf(pk, alg, sig, copy, n), SF_ERR_SIGNATURE);
        free(copy);
    }
    sf_pubkey_free(pk);
    sf_buf_free(&blob);
}

/* ------------------------------------------------------------- public keys */

START_TEST(test_pubkey_from_blob_ed25519)
{
    struct sf_buf b;
    struct sf_pubkey *k = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;

    buf_new(&b);
    blob_ed25519(&b, ed_pub, 32);
    k = pub_of(&b);
    ck_assert_str_eq(sf_pubkey_type(k), "ssh-ed25519");
    p = sf_pubkey_blob(k, &n);
    ck_assert_uint_eq(n, sf_buf_len(&b));
    ck_assert_mem_eq(p, sf_buf_ptr(&b), n);
    sf_pubkey_free(k);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_ecdsa)
{
    const struct ec_kat *v = &ec_kats[_i];
    struct sf_buf b;
    struct sf_pubkey *k = NULL;
    const uint8_t *p = NULL;
    size_t n = 0;

    buf_new(&b);
    blob_ecdsa(&b, v->type, v->id, v->q, v->qn);
    k = pub_of(&b);
    ck_assert_str_eq(sf_pubkey_type(k), v->type);
    p = sf_pubkey_blob(k, &n);
    ck_assert_uint_eq(n, sf_buf_len(&b));
    ck_assert_mem_eq(p, sf_buf_ptr(&b), n);
    sf_pubkey_free(k);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_rsa)
{
    struct sf_buf b;
    struct sf_pubkey *k = NULL;

    buf_new(&b);
    blob_rsa_kat(&b);
    k = pub_of(&b);
    ck_assert_str_eq(sf_pubkey_type(k), "ssh-rsa");
    sf_pubkey_free(k);
    sf_buf_free(&b);
}
END_TEST

/* Every proper prefix of a good blob fails cleanly (loop over the length). */
START_TEST(test_pubkey_from_blob_truncated_ed25519)
{
    struct sf_buf b;

    buf_new(&b);
    blob_ed25519(&b, ed_pub, 32);
    ck_assert_uint_eq(sf_buf_len(&b), 51);
    pub_fails(sf_buf_ptr(&b), (size_t)_i, 0);
    sf_buf_free(&b);
}
END_TEST

/* The larger blobs loop inside one test (a fork per prefix would be slow). */
START_TEST(test_pubkey_from_blob_truncated_ecdsa_rsa)
{
    struct sf_buf b;

    buf_new(&b);
    blob_ecdsa(&b, ec_kats[0].type, ec_kats[0].id, ec_kats[0].q, ec_kats[0].qn);
    for (size_t i = 0; i < sf_buf_len(&b); i++) {
        pub_fails(sf_buf_ptr(&b), i, 0);
    }
    sf_buf_reset(&b);
    blob_rsa_kat(&b);
    for (size_t i = 0; i < sf_buf_len(&b); i++) {
        pub_fails(sf_buf_ptr(&b), i, 0);
    }
    sf_buf_reset(&b);
    blob_ecdsa(&b, ec_kats[2].type, ec_kats[2].id, ec_kats[2].q, ec_kats[2].qn);
    for (size_t i = 0; i < sf_buf_len(&b); i++) {
        pub_fails(sf_buf_ptr(&b), i, 0);
    }
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_trailing)
{
    struct sf_buf b;

    buf_new(&b);
    switch (_i) {
    case 0:
        blob_ed25519(&b, ed_pub, 32);
        break;
    case 1:
        blob_ecdsa(&b, ec_kats[1].type, ec_kats[1].id, ec_kats[1].q, ec_kats[1].qn);
        break;
    default:
        blob_rsa_kat(&b);
        break;
    }
    ck_assert_int_eq(sf_buf_put_u8(&b, 0), 0);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_TRAILING_DATA);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_oversize)
{
    static const uint8_t huge_type[] = { 0xff, 0xff, 0xff, 0xff, 's', 's', 'h' };
    static const uint8_t zeros[2100] = { 0 };
    uint8_t big[2100];
    struct sf_buf b;
    uint8_t *over = NULL;

    pub_fails(huge_type, sizeof(huge_type), SF_ERR_TOO_LARGE);

    /* Ed25519 key string of 33 bytes. */
    buf_new(&b);
    put_cstr(&b, "ssh-ed25519");
    put_str(&b, zeros, 33);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_TOO_LARGE);

    /* ECDSA Q longer than any curve's point. */
    sf_buf_reset(&b);
    put_cstr(&b, "ecdsa-sha2-nistp256");
    put_cstr(&b, "nistp256");
    put_str(&b, zeros, 1000);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_TOO_LARGE);

    /* RSA modulus above 16384 bits. */
    memset(big, 0x5a, sizeof(big));
    sf_buf_reset(&b);
    blob_rsa(&b, kat_rsa_e, sizeof(kat_rsa_e), big, sizeof(big));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_TOO_LARGE);

    /* Length field claims more than the blob has. */
    sf_buf_reset(&b);
    put_cstr(&b, "ssh-ed25519");
    put_u32(&b, 32);
    put_bytes(&b, ed_pub, 31);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_INCOMPLETE);

    /* A blob above SF_KEYBLOB_MAX is refused before parsing. */
    over = calloc(1, SF_KEYBLOB_MAX + 1);
    ck_assert_ptr_nonnull(over);
    pub_fails(over, SF_KEYBLOB_MAX + 1, SF_ERR_TOO_LARGE);
    free(over);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_unknown_type)
{
    static const char *const types[] = {
        "ssh-dss", "ssh-ed448", "ssh-dss-cert-v01@openssh.com", "ecdsa-sha2-nistp224",
        "sk-ssh-ed25519@openssh.com", "rsa-sha2-256", "", "ssh-ed25519 ",
    };
    struct sf_buf b;

    buf_new(&b);
    for (size_t i = 0; i < NELEM(types); i++) {
        sf_buf_reset(&b);
        put_cstr(&b, types[i]);
        put_str(&b, ed_pub, 32);
        pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_KEY_TYPE);
    }
    pub_fails(NULL, 0, SF_ERR_INCOMPLETE);
    /* A certificate type is parsed as one (cert.c): this body is far too short. */
    sf_buf_reset(&b);
    put_cstr(&b, "ssh-ed25519-cert-v01@openssh.com");
    put_str(&b, ed_pub, 32);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_INCOMPLETE);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_ed25519_short)
{
    struct sf_buf b;

    buf_new(&b);
    blob_ed25519(&b, ed_pub, 31);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_ecdsa_curve_mismatch)
{
    struct sf_buf b;

    buf_new(&b);
    /* Type says P-256, identifier says P-384 (RFC 5656 s3.1: must match). */
    blob_ecdsa(&b, "ecdsa-sha2-nistp256", "nistp384", ec_kats[0].q, ec_kats[0].qn);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* P-384 point under the P-256 names. */
    sf_buf_reset(&b);
    blob_ecdsa(&b, "ecdsa-sha2-nistp256", "nistp256", ec_kats[1].q, ec_kats[1].qn);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_ecdsa_bad_point)
{
    const struct ec_kat *v = &ec_kats[_i];
    uint8_t q[1 + 2 * 66];
    struct sf_buf b;

    buf_new(&b);
    /* Off the curve: y + 1 (last byte). */
    memcpy(q, v->q, v->qn);
    q[v->qn - 1] ^= 0x01;
    blob_ecdsa(&b, v->type, v->id, q, v->qn);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* Compressed form (0x02 || X) is not what RFC 5656 sends. */
    sf_buf_reset(&b);
    memcpy(q, v->q, v->qn);
    q[0] = 0x02 | (v->q[v->qn - 1] & 1);
    blob_ecdsa(&b, v->type, v->id, q, 1 + (v->qn - 1) / 2);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* Right length, wrong prefix byte. */
    sf_buf_reset(&b);
    memcpy(q, v->q, v->qn);
    q[0] = 0x06;
    blob_ecdsa(&b, v->type, v->id, q, v->qn);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* (0, 0) */
    sf_buf_reset(&b);
    memset(q, 0, sizeof(q));
    q[0] = 0x04;
    blob_ecdsa(&b, v->type, v->id, q, v->qn);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* The point at infinity's one-byte encoding. */
    sf_buf_reset(&b);
    q[0] = 0x00;
    blob_ecdsa(&b, v->type, v->id, q, 1);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_from_blob_rsa_weak)
{
    uint8_t n[256];
    static const uint8_t e_even[] = { 0x01, 0x00, 0x00 };
    static const uint8_t e_one[] = { 0x01 };
    static const uint8_t e_three[] = { 0x03 };
    static const uint8_t neg[] = { 0x00, 0x00, 0x00, 0x01, 0x80 };
    struct sf_buf b;
    struct sf_pubkey *k = NULL;

    buf_new(&b);
    /* 1023 bits: refused. */
    memset(n, 0xc5, sizeof(n));
    n[0] = 0x7f;
    blob_rsa(&b, kat_rsa_e, sizeof(kat_rsa_e), n, 128);
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_KEY_TYPE);
    /* 1024 bits: accepted (the parser cannot tell a real modulus; it checks the size). */
    sf_buf_reset(&b);
    n[0] = 0x80;
    blob_rsa(&b, kat_rsa_e, sizeof(kat_rsa_e), n, 128);
    ck_assert_int_eq(sf_pubkey_from_blob(sf_buf_ptr(&b), sf_buf_len(&b), &k), 0);
    sf_pubkey_free(k);
    k = NULL;
    /* Even e, e = 1: refused; e = 3 fine. */
    sf_buf_reset(&b);
    blob_rsa(&b, e_even, sizeof(e_even), kat_rsa_n, sizeof(kat_rsa_n));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    sf_buf_reset(&b);
    blob_rsa(&b, e_one, sizeof(e_one), kat_rsa_n, sizeof(kat_rsa_n));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    sf_buf_reset(&b);
    blob_rsa(&b, e_three, sizeof(e_three), kat_rsa_n, sizeof(kat_rsa_n));
    ck_assert_int_eq(sf_pubkey_from_blob(sf_buf_ptr(&b), sf_buf_len(&b), &k), 0);
    sf_pubkey_free(k);
    /* e = 0 (empty mpint) */
    sf_buf_reset(&b);
    put_cstr(&b, "ssh-rsa");
    put_u32(&b, 0);
    put_mpint(&b, kat_rsa_n, sizeof(kat_rsa_n));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* Negative e */
    sf_buf_reset(&b);
    put_cstr(&b, "ssh-rsa");
    put_bytes(&b, neg, sizeof(neg));
    put_mpint(&b, kat_rsa_n, sizeof(kat_rsa_n));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* Non-minimal n (extra zero byte in front) */
    sf_buf_reset(&b);
    put_cstr(&b, "ssh-rsa");
    put_mpint(&b, kat_rsa_e, sizeof(kat_rsa_e));
    put_u32(&b, (uint32_t)sizeof(kat_rsa_n) + 2);
    put_bytes(&b, "\0\0", 2);
    put_bytes(&b, kat_rsa_n, sizeof(kat_rsa_n));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    /* e >= n */
    sf_buf_reset(&b);
    blob_rsa(&b, kat_rsa_n, sizeof(kat_rsa_n), kat_rsa_n, sizeof(kat_rsa_n));
    pub_fails(sf_buf_ptr(&b), sf_buf_len(&b), SF_ERR_BAD_FORMAT);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_pubkey_sigalg_ok)
{
    struct sf_buf b;
    struct sf_pubkey *ed = NULL, *ec = NULL, *rsa = NULL;

    buf_new(&b);
    blob_ed25519(&b, ed_pub, 32);
    ed = pub_of(&b);
    sf_buf_reset(&b);
    blob_ecdsa(&b, ec_kats[1].type, ec_kats[1].id, ec_kats[1].q, ec_kats[1].qn);
    ec = pub_of(&b);
    sf_buf_reset(&b);
    blob_rsa_kat(&b);
    rsa = pub_of(&b);

    ck_assert(sf_pubkey_sigalg_ok(ed, "ssh-ed25519"));
    ck_assert(!sf_pubkey_sigalg_ok(ed, "ecdsa-sha2-nistp256"));
    ck_assert(!sf_pubkey_sigalg_ok(ed, "rsa-sha2-256"));
    ck_assert(sf_pubkey_sigalg_ok(ec, "ecdsa-sha2-nistp384"));
    ck_assert(!sf_pubkey_sigalg_ok(ec, "ecdsa-sha2-nistp256"));
    ck_assert(!sf_pubkey_sigalg_ok(ec, "ecdsa-sha2-nistp521"));
    ck_assert(!sf_pubkey_sigalg_ok(ec, "ssh-ed25519"));
    ck_assert(sf_pubkey_sigalg_ok(rsa, "rsa-sha2-256"));
    ck_assert(sf_pubkey_sigalg_ok(rsa, "rsa-sha2-512"));
    ck_assert(sf_pubkey_sigalg_ok(rsa, "ssh-rsa")); /* SHA-1: legacy, when asked for */
    ck_assert(!sf_pubkey_sigalg_ok(rsa, "rsa-sha2-384"));
    /* A plain key does not sign under certificate names. */
    ck_assert(!sf_pubkey_sigalg_ok(ed, "ssh-ed25519-cert-v01@openssh.com"));
    ck_assert(!sf_pubkey_sigalg_ok(rsa, "rsa-sha2-512-cert-v01@openssh.com"));
    ck_assert(!sf_pubkey_sigalg_ok(ec, "ecdsa-sha2-nistp384-cert-v01@openssh.com"));
    ck_assert_ptr_null(sf_pubkey_cert(ed));
    ck_assert(!sf_pubkey_sigalg_ok(rsa, NULL));
    ck_assert(!sf_pubkey_sigalg_ok(rsa, ""));
    sf_pubkey_free(ed);
    sf_pubkey_free(ec);
    sf_pubkey_free(rsa);
    sf_buf_free(&b);
}
END_TEST

START_TEST(test_sigalg_supported)
{
    static const char *const yes[] = {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-rsa", /* legacy SHA-1: supported, not in the default list */
        "ssh-ed25519-cert-v01@openssh.com",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "rsa-sha2-512-cert-v01@openssh.com",
        "rsa-sha2-256-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
    };
    static const char *const no[] = {
        "ssh-dss",
        "rsa-sha2-384",
        "ssh-ed448",
        "ssh-dss-cert-v01@openssh.com",
        "sk-ssh-ed25519@openssh.com",
        "sk-ssh-ed25519-cert-v01@openssh.com",
        "",
        "ssh-ed25519,ssh-rsa",
    };

    for (size_t i = 0; i < NELEM(yes); i++) {
        ck_assert(sf_sigalg_supported(yes[i], strlen(yes[i])));
        /* Length counts: a prefix is not a name. */
        ck_assert(!sf_sigalg_supported(yes[i], strlen(yes[i]) - 1));
    }
    for (size_t i = 0; i < NELEM(no); i++) {
        ck_assert(!sf_sigalg_supported(no[i], strlen(no[i])));
    }
    ck_assert(!sf_sigalg_supported("ssh-ed25519x", 12));
    /* OpenSSH 9.2's default (`ssh -G`), less the sk-* names; SHA-1 only by opting in. */
    ck_assert_str_eq(sf_hostkey_default_list,
                     "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,"
                     "ecdsa-sha2-nistp384-cert-v01@openssh.com,"
                     "ecdsa-sha2-nistp521-cert-v01@openssh.com,"
                     "rsa-sha2-512-cert-v01@openssh.com,rsa-sha2-256-cert-v01@openssh.com,"
                     "ssh-ed25519,ecdsa-sha2-nistp256,"
                     "ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,"
                     "rsa-sha2-512,rsa-sha2-256");
    ck_assert(!sf_list_has(sf_hostkey_default_list, "ssh-rsa", 7));
    ck_assert(!sf_list_has(sf_hostkey_default_list, "ssh-rsa-cert-v01@openssh.com", 28));
    ck_assert(sf_list_has(sf_hostkey_all_list, "ssh-rsa", 7));
    ck_assert(sf_list_has(sf_hostkey_all_list, "ssh-rsa-cert-v01@openssh.com", 28));
    /* Every default name is supported, and the list of all is the default plus SHA-1. */
    for (const char *p = sf_hostkey_default_list; *p != '\0';) {
        size_t n = strcspn(p, ",");

        ck_assert(sf_sigalg_supported(p, n));
        p += n + (p[n] == ',');
    }
    ck_assert_uint_eq(strlen(sf_hostkey_all_list),
                      strlen(sf_hostkey_default_list) + strlen(",ssh-rsa-cert-v01@openssh.com") +
                          strlen(",ssh-rsa"));
}
END_TEST

/* -------------------------------------------------------------- verification */

START_TEST(test_pubkey_verify_ed25519_kat)
{
    struct sf_buf b, sig;
    struct sf_pubkey *k = NULL;
    uint8_t bad[65];

    buf_new(&b);
    buf_new(&sig);
    blob_ed25519(&b, ed_pub, 32);
    k = pub_of(&b);
    sig_raw(&sig, "ssh-ed25519", ed_sig, 64);
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, NULL, 0), 0);
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, "", 0), 0);
    /* Other data */
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, "x", 1), SF_ERR_SIGNATURE);
    /* Any flipped bit in R or S */
    for (size_t i = 0; i < 64; i += 7) {
        memcpy(bad, ed_sig, 64);
        bad[i] ^= 0x10;
        sf_buf_reset(&sig);
        sig_raw(&sig, "ssh-ed25519", bad, 64);
        ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, NULL, 0), SF_ERR_SIGNATURE);
    }
    /* 63 and 65 bytes */
    sf_buf_reset(&sig);
    sig_raw(&sig, "ssh-ed25519", ed_sig, 63);
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, NULL, 0), SF_ERR_SIGNATURE);
    memcpy(bad, ed_sig, 64);
    bad[64] = 0;
    sf_buf_reset(&sig);
    sig_raw(&sig, "ssh-ed25519", bad, 65);
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, NULL, 0), SF_ERR_SIGNATURE);
    /* Name in the blob must equal sigalg, and sigalg must fit the key. */
    sf_buf_reset(&sig);
    sig_raw(&sig, "ssh-ed448", ed_sig, 64);
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, NULL, 0), SF_ERR_SIGNATURE);
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-256", ed_sig, 64);
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, NULL, 0), SF_ERR_SIGNATURE);
    /* Trailing data after the signature string. */
    sf_buf_reset(&sig);
    sig_raw(&sig, "ssh-ed25519", ed_sig, 64);
    ck_assert_int_eq(sf_buf_put_u8(&sig, 0), 0);
    ck_assert_int_eq(verify_buf(k, "ssh-ed25519", &sig, NULL, 0), SF_ERR_TRAILING_DATA);
    sf_pubkey_free(k);
    sf_buf_free(&b);
    sf_buf_free(&sig);
}
END_TEST

/* Every prefix of a good signature blob fails (and never crashes). */
START_TEST(test_pubkey_verify_truncated)
{
    struct sf_buf b, sig;
    struct sf_pubkey *k = NULL;

    buf_new(&b);
    buf_new(&sig);
    blob_ed25519(&b, ed_pub, 32);
    k = pub_of(&b);
    sig_raw(&sig, "ssh-ed25519", ed_sig, 64);
    for (size_t i = 0; i < sf_buf_len(&sig); i++) {
        ck_assert_int_lt(sf_pubkey_verify(k, "ssh-ed25519", sf_buf_ptr(&sig), i, NULL, 0), 0);
    }
    sf_pubkey_free(k);
    sf_buf_reset(&b);
    sf_buf_reset(&sig);
    blob_ecdsa(&b, ec_kats[0].type, ec_kats[0].id, ec_kats[0].q, ec_kats[0].qn);
    k = pub_of(&b);
    sig_ecdsa(&sig, ec_kats[0].type, ec_kats[0].r, ec_kats[0].rn, ec_kats[0].s, ec_kats[0].sn);
    ck_assert_int_eq(verify_buf(k, ec_kats[0].type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     0);
    for (size_t i = 0; i < sf_buf_len(&sig); i++) {
        ck_assert_int_lt(sf_pubkey_verify(k, ec_kats[0].type, sf_buf_ptr(&sig), i, kat_ecdsa_msg,
                                          sizeof(kat_ecdsa_msg)),
                         0);
    }
    sf_pubkey_free(k);
    sf_buf_free(&b);
    sf_buf_free(&sig);
}
END_TEST

START_TEST(test_pubkey_verify_ecdsa_kat)
{
    const struct ec_kat *v = &ec_kats[_i];
    const struct ec_kat *other = &ec_kats[(_i + 1) % 3];
    static const uint8_t zero[1] = { 0 };
    const size_t f = (v->qn - 1) / 2;
    uint8_t bad[80], raw[2 * 66];
    struct sf_buf b, sig, in;
    struct sf_pubkey *k = NULL;

    buf_new(&b);
    buf_new(&sig);
    buf_new(&in);
    blob_ecdsa(&b, v->type, v->id, v->q, v->qn);
    k = pub_of(&b);
    sig_ecdsa(&sig, v->type, v->r, v->rn, v->s, v->sn);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)), 0);
    /* Other data */
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg) - 1),
                     SF_ERR_SIGNATURE);
    /* Another curve's name, as sigalg or inside the blob */
    ck_assert_int_eq(verify_buf(k, other->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    sf_buf_reset(&sig);
    sig_ecdsa(&sig, other->type, v->r, v->rn, v->s, v->sn);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    /* r or s changed */
    memcpy(bad, v->r, v->rn);
    bad[v->rn - 1] ^= 0x01;
    sf_buf_reset(&sig);
    sig_ecdsa(&sig, v->type, bad, v->rn, v->s, v->sn);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    memcpy(bad, v->s, v->sn);
    bad[0] ^= 0x01;
    sf_buf_reset(&sig);
    sig_ecdsa(&sig, v->type, v->r, v->rn, bad, v->sn);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    /* r = 0 */
    sf_buf_reset(&sig);
    sig_ecdsa(&sig, v->type, zero, 1, v->s, v->sn);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    /* r longer than the group order */
    memset(bad, 0x7f, sizeof(bad));
    sf_buf_reset(&sig);
    sig_ecdsa(&sig, v->type, bad, v->qn / 2 + 1, v->s, v->sn);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    /* Trailing byte inside the signature string */
    put_mpint(&in, v->r, v->rn);
    put_mpint(&in, v->s, v->sn);
    ck_assert_int_eq(sf_buf_put_u8(&in, 0), 0);
    sf_buf_reset(&sig);
    put_cstr(&sig, v->type);
    ck_assert_int_eq(sf_buf_put_sub(&sig, &in), 0);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    /* A raw r || s of 2 * field bytes (the wrong encoding) */
    memset(raw, 0, sizeof(raw));
    memcpy(raw + f - v->rn, v->r, v->rn);
    memcpy(raw + 2 * f - v->sn, v->s, v->sn);
    sf_buf_reset(&sig);
    sig_raw(&sig, v->type, raw, 2 * f);
    ck_assert_int_eq(verify_buf(k, v->type, &sig, kat_ecdsa_msg, sizeof(kat_ecdsa_msg)),
                     SF_ERR_SIGNATURE);
    sf_pubkey_free(k);
    sf_buf_free(&b);
    sf_buf_free(&sig);
    sf_buf_free(&in);
}
END_TEST

START_TEST(test_pubkey_verify_rsa_kat)
{
    uint8_t bad[sizeof(kat_rsa_sig_sha256) + 1];
    struct sf_buf b, sig;
    struct sf_pubkey *k = NULL;
    const uint8_t *m = kat_rsa_msg;
    size_t mn = sizeof(kat_rsa_msg);

    buf_new(&b);
    buf_new(&sig);
    blob_rsa_kat(&b);
    k = pub_of(&b);
    sig_raw(&sig, "rsa-sha2-256", kat_rsa_sig_sha256, sizeof(kat_rsa_sig_sha256));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, m, mn), 0);
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, m, mn - 1), SF_ERR_SIGNATURE);
    /* The SHA-256 signature claimed as rsa-sha2-512 (both names agree) fails. */
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-512", kat_rsa_sig_sha256, sizeof(kat_rsa_sig_sha256));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-512", &sig, m, mn), SF_ERR_SIGNATURE);
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-512", kat_rsa_sig_sha512, sizeof(kat_rsa_sig_sha512));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-512", &sig, m, mn), 0);
    /* Blob name differs from sigalg */
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, m, mn), SF_ERR_SIGNATURE);
    /* A SHA-1 signature verifies only when "ssh-rsa" is what the caller asked for (legacy). */
    sf_buf_reset(&sig);
    sig_raw(&sig, "ssh-rsa", kat_rsa_sig_sha1, sizeof(kat_rsa_sig_sha1));
    ck_assert_int_eq(verify_buf(k, "ssh-rsa", &sig, m, mn), 0);
    ck_assert_int_eq(verify_buf(k, "ssh-rsa", &sig, m, mn - 1), SF_ERR_SIGNATURE);
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, m, mn), SF_ERR_SIGNATURE);
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-512", &sig, m, mn), SF_ERR_SIGNATURE);
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-256", kat_rsa_sig_sha1, sizeof(kat_rsa_sig_sha1));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, m, mn), SF_ERR_SIGNATURE);
    /* A flipped bit */
    memcpy(bad, kat_rsa_sig_sha512, sizeof(kat_rsa_sig_sha512));
    bad[100] ^= 0x04;
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-512", bad, sizeof(kat_rsa_sig_sha512));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-512", &sig, m, mn), SF_ERR_SIGNATURE);
    /* Longer than the modulus (a zero byte in front) */
    bad[0] = 0;
    memcpy(bad + 1, kat_rsa_sig_sha512, sizeof(kat_rsa_sig_sha512));
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-512", bad, sizeof(bad));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-512", &sig, m, mn), SF_ERR_SIGNATURE);
    /* Empty */
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-512", bad, 0);
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-512", &sig, m, mn), SF_ERR_SIGNATURE);
    /* A signature with a leading zero byte: full length and stripped both verify. */
    ck_assert_uint_eq(kat_rsa_short_sig[0], 0);
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-256", kat_rsa_short_sig, sizeof(kat_rsa_short_sig));
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, kat_rsa_short_msg,
                                sizeof(kat_rsa_short_msg)),
                     0);
    sf_buf_reset(&sig);
    sig_raw(&sig, "rsa-sha2-256", kat_rsa_short_sig + 1, sizeof(kat_rsa_short_sig) - 1);
    ck_assert_int_eq(verify_buf(k, "rsa-sha2-256", &sig, kat_rsa_short_msg,
                                sizeof(kat_rsa_short_msg)),
                     0);
    sf_pubkey_free(k);
    sf_buf_free(&b);
    sf_buf_free(&sig);
}
END_TEST

/* ---------------------------------------------- private keys: openssh-key-v1 */

START_TEST(test_privkey_load_ed25519_kat)
{
    struct sf_buf p, blob, want, sig;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    buf_new(&blob);
    buf_new(&want);
    buf_new(&sig);
    payload_ed25519(&p, &plain);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), 0);
    ck_assert_str_eq(sf_privkey_type(k), "ssh-ed25519");
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    blob_ed25519(&want, ed_pub, 32);
    ck_assert(buf_eq(&blob, &want));
    /* RFC 8032 TEST 1: the signature of the empty message. */
    ck_assert_int_eq(sf_privkey_sign(k, "ssh-ed25519", NULL, 0, &sig), 0);
    sf_buf_reset(&want);
    sig_raw(&want, "ssh-ed25519", ed_sig, 64);
    ck_assert(buf_eq(&sig, &want));
    sf_buf_reset(&sig);
    sign_verify(k, "ssh-ed25519", "some data", 9, &sig);
    /* A passphrase for an unencrypted key is ignored. */
    sf_privkey_free(k);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), "whatever", &k), 0);
    sf_privkey_free(k);
    sf_buf_free(&p);
    sf_buf_free(&blob);
    sf_buf_free(&want);
    sf_buf_free(&sig);
}
END_TEST

START_TEST(test_privkey_load_rsa_kat)
{
    struct sf_buf p, blob, want, sig;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    buf_new(&blob);
    buf_new(&want);
    buf_new(&sig);
    payload_rsa(&p, &plain, RSA_OK);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), 0);
    ck_assert_str_eq(sf_privkey_type(k), "ssh-rsa");
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    blob_rsa_kat(&want);
    ck_assert(buf_eq(&blob, &want));
    /* PKCS#1 v1.5 is deterministic: exactly the vector (RFC 8332 s3). */
    ck_assert_int_eq(sf_privkey_sign(k, "rsa-sha2-256", kat_rsa_msg, sizeof(kat_rsa_msg), &sig),
                     0);
    sf_buf_reset(&want);
    sig_raw(&want, "rsa-sha2-256", kat_rsa_sig_sha256, sizeof(kat_rsa_sig_sha256));
    ck_assert(buf_eq(&sig, &want));
    sf_buf_reset(&sig);
    ck_assert_int_eq(sf_privkey_sign(k, "rsa-sha2-512", kat_rsa_msg, sizeof(kat_rsa_msg), &sig),
                     0);
    sf_buf_reset(&want);
    sig_raw(&want, "rsa-sha2-512", kat_rsa_sig_sha512, sizeof(kat_rsa_sig_sha512));
    ck_assert(buf_eq(&sig, &want));
    /* The leading-zero signature keeps its full length (RFC 8332 s3). */
    sf_buf_reset(&sig);
    ck_assert_int_eq(sf_privkey_sign(k, "rsa-sha2-256", kat_rsa_short_msg,
                                     sizeof(kat_rsa_short_msg), &sig),
                     0);
    sf_buf_reset(&want);
    sig_raw(&want, "rsa-sha2-256", kat_rsa_short_sig, sizeof(kat_rsa_short_sig));
    ck_assert(buf_eq(&sig, &want));
    /* SHA-1 when asked for by name: exactly the vector. */
    sf_buf_reset(&sig);
    ck_assert_int_eq(sf_privkey_sign(k, "ssh-rsa", kat_rsa_msg, sizeof(kat_rsa_msg), &sig), 0);
    sf_buf_reset(&want);
    sig_raw(&want, "ssh-rsa", kat_rsa_sig_sha1, sizeof(kat_rsa_sig_sha1));
    ck_assert(buf_eq(&sig, &want));
    /* A certificate algorithm name signs under its base name. */
    sf_buf_reset(&sig);
    ck_assert_int_eq(sf_privkey_sign(k, "rsa-sha2-512-cert-v01@openssh.com", kat_rsa_msg,
                                     sizeof(kat_rsa_msg), &sig),
                     0);
    sf_buf_reset(&want);
    sig_raw(&want, "rsa-sha2-512", kat_rsa_sig_sha512, sizeof(kat_rsa_sig_sha512));
    ck_assert(buf_eq(&sig, &want));
    /* Names that do not fit the key are refused. */
    sf_buf_reset(&sig);
    ck_assert_int_eq(sf_privkey_sign(k, "rsa-sha2-384", kat_rsa_msg, sizeof(kat_rsa_msg), &sig),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_sign(k, "ssh-ed25519-cert-v01@openssh.com", kat_rsa_msg,
                                     sizeof(kat_rsa_msg), &sig),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_sign(k, "ssh-ed25519", kat_rsa_msg, sizeof(kat_rsa_msg), &sig),
                     SF_ERR_INVALID);
    ck_assert_uint_eq(sf_buf_len(&sig), 0);
    sf_privkey_free(k);
    sf_buf_free(&p);
    sf_buf_free(&blob);
    sf_buf_free(&want);
    sf_buf_free(&sig);
}
END_TEST

START_TEST(test_privkey_load_ecdsa_kat)
{
    const struct ec_kat *v = &ec_kats[_i];
    struct sf_buf p, blob, want, sig;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    buf_new(&blob);
    buf_new(&want);
    buf_new(&sig);
    payload_ecdsa(&p, v, 0);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), 0);
    ck_assert_str_eq(sf_privkey_type(k), v->type);
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    blob_ecdsa(&want, v->type, v->id, v->q, v->qn);
    ck_assert(buf_eq(&blob, &want));
    sign_verify(k, v->type, kat_ecdsa_msg, sizeof(kat_ecdsa_msg), &sig);
    sf_buf_reset(&sig);
    ck_assert_int_eq(sf_privkey_sign(k, ec_kats[(_i + 1) % 3].type, (const uint8_t *)"x", 1,
                                     &sig),
                     SF_ERR_INVALID);
    ck_assert_int_eq(sf_privkey_sign(k, "ssh-ed25519", (const uint8_t *)"x", 1, &sig),
                     SF_ERR_INVALID);
    sf_privkey_free(k);
    /* d that does not belong to Q */
    sf_buf_reset(&p);
    payload_ecdsa(&p, v, 0x01);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_free(&p);
    sf_buf_free(&blob);
    sf_buf_free(&want);
    sf_buf_free(&sig);
}
END_TEST

/* Every prefix of the decoded payload, armoured again, fails cleanly. */
START_TEST(test_privkey_load_truncated)
{
    struct sf_buf p;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    payload_ed25519(&p, &plain);
    for (size_t i = 0; i < sf_buf_len(&p); i++) {
        ck_assert_int_lt(load_payload(&p, i, NULL, &k), 0);
    }
    sf_buf_reset(&p);
    payload_rsa(&p, &plain, RSA_OK);
    for (size_t i = 0; i < sf_buf_len(&p); i++) {
        ck_assert_int_lt(load_payload(&p, i, NULL, &k), 0);
    }
    sf_buf_reset(&p);
    payload_ecdsa(&p, &ec_kats[2], 0);
    for (size_t i = 0; i < sf_buf_len(&p); i++) {
        ck_assert_int_lt(load_payload(&p, i, NULL, &k), 0);
    }
    sf_buf_free(&p);
}
END_TEST

START_TEST(test_privkey_load_checkint)
{
    struct ossh_opts o = plain;
    struct sf_buf p;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    o.check_xor = 0x00000100;
    payload_ed25519(&p, &o);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_reset(&p);
    payload_rsa(&p, &o, RSA_OK);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_free(&p);
}
END_TEST

START_TEST(test_privkey_load_padding)
{
    struct ossh_opts o = plain;
    struct sf_buf p, pub, priv;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    buf_new(&pub);
    buf_new(&priv);
    o.bad_pad = true;
    payload_ed25519(&p, &o);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Not a multiple of the block size (the private list is cut by one byte). */
    sf_buf_reset(&p);
    blob_ed25519(&pub, ed_pub, 32);
    priv_ed25519(&priv, ed_seed, ed_pub, ed_pub);
    put_bytes(&p, "openssh-key-v1", 15);
    put_cstr(&p, "none");
    put_cstr(&p, "none");
    put_cstr(&p, "");
    put_u32(&p, 1);
    ck_assert_int_eq(sf_buf_put_sub(&p, &pub), 0);
    put_u32(&p, (uint32_t)(8 + sf_buf_len(&priv) + 4 + 1)); /* checkints, fields, comment */
    put_u32(&p, 7);
    put_u32(&p, 7);
    put_bytes(&p, sf_buf_ptr(&priv), sf_buf_len(&priv));
    put_str(&p, "c", 1);
    ck_assert_uint_ne((8 + sf_buf_len(&priv) + 5) % 8, 0);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_free(&p);
    sf_buf_free(&pub);
    sf_buf_free(&priv);
}
END_TEST

START_TEST(test_privkey_load_trailing)
{
    struct sf_buf p;
    struct sf_privkey *k = NULL;
    size_t len = 0;
    char *text = NULL, *more = NULL;

    buf_new(&p);
    payload_ed25519(&p, &plain);
    /* A byte after the private list string */
    ck_assert_int_eq(sf_buf_put_u8(&p, 0), 0);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Text after the END line */
    sf_buf_reset(&p);
    payload_ed25519(&p, &plain);
    text = armour(sf_buf_ptr(&p), sf_buf_len(&p), "\n", &len);
    more = malloc(len + 16);
    ck_assert_ptr_nonnull(more);
    memcpy(more, text, len);
    memcpy(more + len, "\n\nQUFBQQ==\n", 11);
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)more, len + 11, NULL, &k),
                     SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(k);
    /* ... but blank lines are fine. */
    memcpy(more + len, "\n \r\n\n", 5);
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)more, len + 5, NULL, &k), 0);
    sf_privkey_free(k);
    free(more);
    free(text);
    sf_buf_free(&p);
}
END_TEST

START_TEST(test_privkey_load_mismatch)
{
    uint8_t other[32];
    struct sf_buf p, pub, priv;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    buf_new(&pub);
    buf_new(&priv);
    memcpy(other, ed_pub, 32);
    other[5] ^= 0x40;
    /* Public key in the header is another key's. */
    blob_ed25519(&pub, other, 32);
    priv_ed25519(&priv, ed_seed, ed_pub, ed_pub);
    openssh_payload(&p, &plain, &pub, &priv);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Private section: stored public key does not match the seed. */
    sf_buf_reset(&p);
    sf_buf_reset(&pub);
    sf_buf_reset(&priv);
    blob_ed25519(&pub, other, 32);
    priv_ed25519(&priv, ed_seed, other, other);
    openssh_payload(&p, &plain, &pub, &priv);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Second half of the 64-byte private key differs from the public key. */
    sf_buf_reset(&p);
    sf_buf_reset(&pub);
    sf_buf_reset(&priv);
    blob_ed25519(&pub, ed_pub, 32);
    priv_ed25519(&priv, ed_seed, ed_pub, other);
    openssh_payload(&p, &plain, &pub, &priv);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* RSA: wrong iqmp, wrong d, n != p*q, e = 1 */
    for (int d = RSA_BAD_IQMP; d <= RSA_SMALL_E; d++) {
        sf_buf_reset(&p);
        payload_rsa(&p, &plain, (enum rsa_defect)d);
        ck_assert_int_lt(load_payload(&p, sf_buf_len(&p), NULL, &k), 0);
    }
    sf_buf_reset(&p);
    payload_rsa(&p, &plain, RSA_BAD_IQMP);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_reset(&p);
    payload_rsa(&p, &plain, RSA_BAD_D);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_reset(&p);
    payload_rsa(&p, &plain, RSA_BAD_N);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* A key of one type inside a header of another */
    sf_buf_reset(&p);
    sf_buf_reset(&pub);
    sf_buf_reset(&priv);
    blob_rsa_kat(&pub);
    priv_ed25519(&priv, ed_seed, ed_pub, ed_pub);
    openssh_payload(&p, &plain, &pub, &priv);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_free(&p);
    sf_buf_free(&pub);
    sf_buf_free(&priv);
}
END_TEST

START_TEST(test_privkey_load_encrypted_openssh)
{
    struct ossh_opts o = plain;
    struct sf_buf p;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    o.cipher = "aes256-ctr";
    o.kdf = "bcrypt";
    o.kdfopts = 24;
    payload_ed25519(&p, &o);
    /*
     * Encrypted keys made by ssh-keygen are test_keygen_load's. This one's
     * KDF options are zeros (empty salt, 0 rounds) and its section is not
     * aligned to the AES block: a malformed file, refused before any
     * passphrase is used.
     */
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), PASS, &k), SF_ERR_KEY_TYPE);
    sf_buf_free(&p);
}
END_TEST

START_TEST(test_privkey_load_bad_header)
{
    struct ossh_opts o;
    struct sf_buf p, pub, priv;
    struct sf_privkey *k = NULL;

    buf_new(&p);
    buf_new(&pub);
    buf_new(&priv);
    /* Two keys announced */
    o = plain;
    o.nkeys = 2;
    payload_ed25519(&p, &o);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Zero keys */
    sf_buf_reset(&p);
    o.nkeys = 0;
    payload_ed25519(&p, &o);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Cipher none with a real KDF, or with KDF options */
    sf_buf_reset(&p);
    o = plain;
    o.kdf = "bcrypt";
    payload_ed25519(&p, &o);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_reset(&p);
    o = plain;
    o.kdfopts = 4;
    payload_ed25519(&p, &o);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Wrong magic (no NUL) */
    sf_buf_reset(&p);
    payload_ed25519(&p, &plain);
    sf_buf_mutable_ptr(&p)[14] = 'x';
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    /* Unknown key type in the private list */
    sf_buf_reset(&p);
    blob_ed25519(&pub, ed_pub, 32);
    put_cstr(&priv, "ssh-dss");
    put_str(&priv, ed_pub, 32);
    openssh_payload(&p, &plain, &pub, &priv);
    ck_assert_int_eq(load_payload(&p, sf_buf_len(&p), NULL, &k), SF_ERR_KEY_TYPE);
    sf_buf_free(&p);
    sf_buf_free(&pub);
    sf_buf_free(&priv);
}
END_TEST

START_TEST(test_privkey_load_armour)
{
    struct sf_buf p;
    struct sf_privkey *k = NULL;
    size_t len = 0;
    char *text = NULL, *cut = NULL;
    static const char junk[] = "not a key at all\n";
    static const char bad_b64[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                                  "b3BlbnNzaC1rZXktdjEA*AAABG5vbmU=\n"
                                  "-----END OPENSSH PRIVATE KEY-----\n";

    buf_new(&p);
    payload_ed25519(&p, &plain);
    /* CRLF line ends and leading blank lines are accepted. */
    text = armour(sf_buf_ptr(&p), sf_buf_len(&p), "\r\n", &len);
    cut = malloc(len + 3);
    ck_assert_ptr_nonnull(cut);
    memcpy(cut, "\n\r\n", 3);
    memcpy(cut + 3, text, len);
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)cut, len + 3, NULL, &k), 0);
    sf_privkey_free(k);
    free(text);
    free(cut);
    /* No END line */
    text = armour(sf_buf_ptr(&p), sf_buf_len(&p), "\n", &len);
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)text, len - 34, NULL, &k),
                     SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(k);
    /* A byte of the base64 replaced by '!' */
    text[40] = '!';
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)text, len, NULL, &k), SF_ERR_KEY_TYPE);
    free(text);
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)bad_b64, strlen(bad_b64), NULL, &k),
                     SF_ERR_KEY_TYPE);
    /* Not a key file */
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)junk, strlen(junk), NULL, &k),
                     SF_ERR_KEY_TYPE);
    ck_assert_int_eq(sf_privkey_load((const uint8_t *)"", 0, NULL, &k), SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(k);
    sf_buf_free(&p);
}
END_TEST

/* Allocation failures at every step give SF_ERR_NOMEM and leak nothing. */
START_TEST(test_privkey_load_nomem)
{
    struct sf_buf p, b, sig;
    struct sf_privkey *k = NULL;
    struct sf_pubkey *pk = NULL;
    size_t len = 0;
    char *text = NULL;
    unsigned long n;
    int r;

    buf_new(&p);
    buf_new(&b);
    buf_new(&sig);
    if (_i == 0) {
        payload_ed25519(&p, &plain);
    } else {
        payload_ecdsa(&p, &ec_kats[0], 0);
    }
    text = armour(sf_buf_ptr(&p), sf_buf_len(&p), "\n", &len);
    for (n = 1; n < 100; n++) {
        sf_alloc_fail_after(n);
        r = sf_privkey_load((const uint8_t *)text, len, NULL, &k);
        sf_alloc_fail_after(0);
        if (r == 0) {
            break;
        }
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_ptr_null(k);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_uint_gt(n, 1); /* the loop did exercise failures */
    ck_assert_int_eq(sf_privkey_pubblob(k, &b), 0);
    for (n = 1; n < 100; n++) {
        sf_buf_reset(&sig);
        sf_alloc_fail_after(n);
        r = sf_privkey_sign(k, sf_privkey_type(k), (const uint8_t *)"abc", 3, &sig);
        sf_alloc_fail_after(0);
        if (r == 0) {
            break;
        }
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_uint_eq(sf_buf_len(&sig), 0); /* out untouched on failure */
    }
    ck_assert_int_eq(r, 0);
    for (n = 1; n < 100; n++) {
        sf_alloc_fail_after(n);
        r = sf_pubkey_from_blob(sf_buf_ptr(&b), sf_buf_len(&b), &pk);
        sf_alloc_fail_after(0);
        if (r == 0) {
            break;
        }
        ck_assert_int_eq(r, SF_ERR_NOMEM);
        ck_assert_ptr_null(pk);
    }
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(verify_buf(pk, sf_privkey_type(k), &sig, "abc", 3), 0);
    sf_pubkey_free(pk);
    sf_privkey_free(k);
    free(text);
    sf_buf_free(&p);
    sf_buf_free(&b);
    sf_buf_free(&sig);
}
END_TEST

/* ------------------------------------------- private keys: PEM via OpenSSL */

/* PEM text of pk (malloc'd): PKCS#8, or the traditional form; encrypted if pass. */
static char *
pem_of(EVP_PKEY *pk, bool pkcs8, const char *pass, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const EVP_CIPHER *c = pass != NULL ? EVP_aes_256_cbc() : NULL;
    int klen = pass != NULL ? (int)strlen(pass) : 0;
    char *data = NULL, *copy = NULL;
    long n;

    ck_assert_ptr_nonnull(bio);
    if (pkcs8) {
        ck_assert_int_eq(
            PEM_write_bio_PKCS8PrivateKey(bio, pk, c, (const char *)pass, klen, NULL, NULL), 1);
    } else {
        ck_assert_int_eq(PEM_write_bio_PrivateKey_traditional(bio, pk, c, (unsigned char *)pass,
                                                              klen, NULL, NULL),
                         1);
    }
    n = BIO_get_mem_data(bio, &data);
    ck_assert_int_gt(n, 0);
    copy = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, data, (size_t)n);
    copy[n] = '\0';
    *len = (size_t)n;
    BIO_free(bio);
    return copy;
}

static int
load_text(const char *text, size_t len, const char *pass, struct sf_privkey **k)
{
    int r;

    *k = (struct sf_privkey *)k;
    r = sf_privkey_load((const uint8_t *)text, len, pass, k);
    if (r != 0) {
        ck_assert_ptr_null(*k);
    }
    return r;
}

START_TEST(test_privkey_load_pem_ed25519)
{
    EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    uint8_t raw[32];
    size_t rawlen = sizeof(raw), len = 0;
    struct sf_buf want, blob, sig;
    struct sf_privkey *k = NULL;
    char *text = NULL;

    ck_assert_ptr_nonnull(pk);
    ck_assert_int_eq(EVP_PKEY_get_raw_public_key(pk, raw, &rawlen), 1);
    buf_new(&want);
    buf_new(&blob);
    buf_new(&sig);
    blob_ed25519(&want, raw, 32);

    text = pem_of(pk, true, NULL, &len);
    ck_assert(strncmp(text, "-----BEGIN PRIVATE KEY-----", 27) == 0);
    ck_assert_int_eq(load_text(text, len, NULL, &k), 0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    ck_assert(buf_eq(&blob, &want));
    sign_verify(k, "ssh-ed25519", "pem", 3, &sig);
    sf_privkey_free(k);
    free(text);

    text = pem_of(pk, true, PASS, &len);
    ck_assert(strncmp(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----", 37) == 0);
    ck_assert_int_eq(load_text(text, len, NULL, &k), SF_ERR_KEY_ENCRYPTED);
    ck_assert_int_eq(load_text(text, len, WRONG_PASS, &k), SF_ERR_KEY_PASSPHRASE);
    ck_assert_int_eq(load_text(text, len, "", &k), SF_ERR_KEY_PASSPHRASE);
    ck_assert_int_eq(load_text(text, len, PASS, &k), 0);
    sf_buf_reset(&blob);
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    ck_assert(buf_eq(&blob, &want));
    sf_privkey_free(k);
    free(text);
    EVP_PKEY_free(pk);
    sf_buf_free(&want);
    sf_buf_free(&blob);
    sf_buf_free(&sig);
}
END_TEST

/* Keys OpenSSL can read but we do not take. */
START_TEST(test_privkey_load_pem_unsupported)
{
    EVP_PKEY *pk = NULL;
    struct sf_privkey *k = NULL;
    size_t len = 0;
    char *text = NULL;
    bool pkcs8 = true;

    switch (_i) {
    case 0:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
        break;
    case 1:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
        break;
    case 2:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-224");
        break;
    case 3:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)768);
        break;
    default:
        pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)768);
        pkcs8 = false;
        break;
    }
    ck_assert_ptr_nonnull(pk);
    text = pem_of(pk, pkcs8, NULL, &len);
    ck_assert_int_eq(load_text(text, len, NULL, &k), SF_ERR_KEY_TYPE);
    free(text);
    EVP_PKEY_free(pk);
}
END_TEST

START_TEST(test_privkey_load_pem_garbage)
{
    static const char *const texts[] = {
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n",
        ("-----BEGIN PUBLIC KEY-----\n"
         "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
         "-----END PUBLIC KEY-----\n"),
    };
    struct sf_privkey *k = NULL;

    for (size_t i = 0; i < NELEM(texts); i++) {
        ck_assert_int_eq(load_text(texts[i], strlen(texts[i]), NULL, &k), SF_ERR_KEY_TYPE);
    }
}
END_TEST

/* ---------------------------------------------------------------- key files */

static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    data = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");

    ck_assert_msg(f != NULL, "cannot create %s", path);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_privkey_load_file)
{
    char dir[] = "/tmp/sf_check_key_file.XXXXXX";
    char path[128], big[128], missing[128];
    struct sf_buf p;
    struct sf_privkey *k = (struct sf_privkey *)&k;
    size_t len = 0;
    char *text = NULL, *huge = NULL;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/id_ed25519", dir);
    snprintf(big, sizeof(big), "%s/big", dir);
    snprintf(missing, sizeof(missing), "%s/missing", dir);

    ck_assert_int_eq(sf_privkey_load_file(missing, NULL, &k), SF_ERR_FILE);
    ck_assert_ptr_null(k);
    ck_assert_int_eq(sf_privkey_load_file(dir, NULL, &k), SF_ERR_FILE);

    buf_new(&p);
    payload_ed25519(&p, &plain);
    text = armour(sf_buf_ptr(&p), sf_buf_len(&p), "\n", &len);
    write_file(path, text, len);
    ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), 0);
    ck_assert_str_eq(sf_privkey_type(k), "ssh-ed25519");
    sf_privkey_free(k);

    /* Over the 1 MiB cap: refused without parsing. */
    huge = malloc(1024 * 1024 + 1);
    ck_assert_ptr_nonnull(huge);
    memcpy(huge, text, len);
    memset(huge + len, '\n', 1024 * 1024 + 1 - len);
    write_file(big, huge, 1024 * 1024 + 1);
    ck_assert_int_eq(sf_privkey_load_file(big, NULL, &k), SF_ERR_KEY_TYPE);
    ck_assert_ptr_null(k);
    /* Exactly 1 MiB (the key plus blank lines) is still read. */
    write_file(big, huge, 1024 * 1024);
    ck_assert_int_eq(sf_privkey_load_file(big, NULL, &k), 0);
    sf_privkey_free(k);

    free(huge);
    free(text);
    sf_buf_free(&p);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(unlink(big), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* ------------------------------------------------ interop with ssh-keygen */

#define KG SF_TEST_SSH_KEYGEN_PATH
#define KG_NS "sshflow-test@example.com"
#define KG_ID "sf@test"

static const char kg_msg[] = "sshflow interop message\n";
static char kg_dir[64];
static bool kg_have; /* ssh-keygen is installed */
static bool kg_ok;   /* and the fixture made every key */
static char kg_err[4096];

struct kg_key {
    const char *name;
    const char *sigalgs[2];
};

static const struct kg_key kg_keys[] = {
    { "ed25519", { "ssh-ed25519", NULL } },
    { "ecdsa256", { "ecdsa-sha2-nistp256", NULL } },
    { "ecdsa384", { "ecdsa-sha2-nistp384", NULL } },
    { "ecdsa521", { "ecdsa-sha2-nistp521", NULL } },
    { "rsa2048", { "rsa-sha2-256", "rsa-sha2-512" } },
    { "rsa3072", { "rsa-sha2-512", "rsa-sha2-256" } },
};

enum kg_enc { KG_PLAIN, KG_PEM_ENC, KG_OPENSSH_ENC };

struct kg_file {
    size_t key;       /* index into kg_keys */
    const char *ext;  /* file name = key name + ext */
    enum kg_enc enc;
    const char *head; /* the file must start so (proves the format) */
};

#define KG_OSSH "-----BEGIN OPENSSH PRIVATE KEY-----"
#define KG_EC "-----BEGIN EC PRIVATE KEY-----"
#define KG_RSA "-----BEGIN RSA PRIVATE KEY-----"
#define KG_P8 "-----BEGIN PRIVATE KEY-----"
#define KG_P8E "-----BEGIN ENCRYPTED PRIVATE KEY-----"
#define KG_PROC "\nProc-Type: 4,ENCRYPTED"

static const struct kg_file kg_files[] = {
    { 0, "", KG_PLAIN, KG_OSSH },
    { 1, "", KG_PLAIN, KG_OSSH },
    { 2, "", KG_PLAIN, KG_OSSH },
    { 3, "", KG_PLAIN, KG_OSSH },
    { 4, "", KG_PLAIN, KG_OSSH },
    { 5, "", KG_PLAIN, KG_OSSH },
    { 1, ".PEM", KG_PLAIN, KG_EC },
    { 1, ".PEM.enc", KG_PEM_ENC, KG_EC KG_PROC },
    { 1, ".PKCS8", KG_PLAIN, KG_P8 },
    { 1, ".PKCS8.enc", KG_PEM_ENC, KG_P8E },
    { 2, ".PEM", KG_PLAIN, KG_EC },
    { 2, ".PEM.enc", KG_PEM_ENC, KG_EC KG_PROC },
    { 2, ".PKCS8", KG_PLAIN, KG_P8 },
    { 2, ".PKCS8.enc", KG_PEM_ENC, KG_P8E },
    { 3, ".PEM", KG_PLAIN, KG_EC },
    { 3, ".PEM.enc", KG_PEM_ENC, KG_EC KG_PROC },
    { 3, ".PKCS8", KG_PLAIN, KG_P8 },
    { 3, ".PKCS8.enc", KG_PEM_ENC, KG_P8E },
    { 4, ".PEM", KG_PLAIN, KG_RSA },
    { 4, ".PEM.enc", KG_PEM_ENC, KG_RSA KG_PROC },
    { 4, ".PKCS8", KG_PLAIN, KG_P8 },
    { 4, ".PKCS8.enc", KG_PEM_ENC, KG_P8E },
    { 5, ".PEM", KG_PLAIN, KG_RSA },
    { 5, ".PEM.enc", KG_PEM_ENC, KG_RSA KG_PROC },
    { 5, ".PKCS8", KG_PLAIN, KG_P8 },
    { 5, ".PKCS8.enc", KG_PEM_ENC, KG_P8E },
    { 0, ".openssh.enc", KG_OPENSSH_ENC, KG_OSSH },
    { 4, ".openssh.enc", KG_OPENSSH_ENC, KG_OSSH },
};

static int
kg_run(const char *const *argv, const char *input)
{
    kg_err[0] = '\0';
    return sf_test_run((char *const *)argv, input, NULL, 0, kg_err, sizeof(kg_err), 120000);
}

/*
 * Unchecked fixture (runs once, in the parent): every key and format. For
 * ed25519, ssh-keygen always writes the OpenSSH format (-m is ignored), so
 * its PEM/PKCS#8 forms come from OpenSSL above.
 */
static void
kg_setup(void)
{
    static char script[2048];
    const char *argv[] = { "/bin/sh", "-c", script, NULL };

    kg_have = access(KG, X_OK) == 0;
    if (!kg_have) {
        return;
    }
    snprintf(kg_dir, sizeof(kg_dir), "/tmp/sf_check_key.XXXXXX");
    if (mkdtemp(kg_dir) == NULL) {
        snprintf(kg_err, sizeof(kg_err), "mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(script, sizeof(script),
             "set -e; cd '%s'; KG=%s; P=%s\n"
             "$KG -q -t ed25519 -N '' -C sf -f ed25519 >/dev/null\n"
             "cp ed25519 ed25519.openssh.enc\n"
             "$KG -q -p -a 1 -P '' -N \"$P\" -f ed25519.openssh.enc >/dev/null\n"
             "mk() {\n"
             "  $KG -q -t $1 -b $2 -N '' -C sf -f $3 >/dev/null\n"
             "  for m in PEM PKCS8; do\n"
             "    cp $3 $3.$m; $KG -q -p -m $m -P '' -N '' -f $3.$m >/dev/null\n"
             "    cp $3 $3.$m.enc; $KG -q -p -m $m -P '' -N \"$P\" -f $3.$m.enc >/dev/null\n"
             "  done\n"
             "}\n"
             /* in parallel: RSA key generation dominates */
             "mk rsa 3072 rsa3072 & p1=$!\n"
             "mk rsa 2048 rsa2048 & p2=$!\n"
             "mk ecdsa 256 ecdsa256; mk ecdsa 384 ecdsa384; mk ecdsa 521 ecdsa521\n"
             "wait $p1; wait $p2\n"
             "cp rsa2048 rsa2048.openssh.enc\n"
             "$KG -q -p -a 1 -P '' -N \"$P\" -f rsa2048.openssh.enc >/dev/null\n",
             kg_dir, KG, PASS);
    kg_ok = kg_run(argv, NULL) == 0;
}

static void
kg_teardown(void)
{
    const char *argv[] = { "/bin/rm", "-rf", kg_dir, NULL };

    if (kg_dir[0] != '\0') {
        (void)kg_run(argv, NULL);
    }
}

/* False (and a note) if the ssh-keygen tests cannot run here. */
static bool
kg_ready(void)
{
    if (!kg_have) {
        fprintf(stderr, "check_key: %s missing, skipping ssh-keygen interop\n", KG);
        return false;
    }
    ck_assert_msg(kg_ok, "ssh-keygen fixture failed: %s", kg_err);
    return true;
}

/* Blob of the key in "<dir>/<name>.pub" ("type base64 comment"). */
static void
kg_pubblob(const char *name, struct sf_buf *out)
{
    char path[128];
    size_t len = 0, outlen = 0;
    char *text = NULL, *b64 = NULL, *end = NULL;
    uint8_t blob[4096];

    snprintf(path, sizeof(path), "%s/%s.pub", kg_dir, name);
    text = read_file(path, &len);
    b64 = strchr(text, ' ');
    ck_assert_ptr_nonnull(b64);
    b64++;
    end = b64 + strcspn(b64, " \n");
    ck_assert_int_eq(sf_base64_decode(b64, (size_t)(end - b64), blob, sizeof(blob), &outlen), 0);
    put_bytes(out, blob, outlen);
    free(text);
}

START_TEST(test_keygen_load)
{
    const struct kg_file *f = &kg_files[_i];
    const struct kg_key *key = &kg_keys[f->key];
    char path[128];
    struct sf_buf want, blob, sig;
    struct sf_pubkey *pub = NULL;
    struct sf_privkey *k = (struct sf_privkey *)&k;
    size_t len = 0;
    char *text = NULL;

    if (!kg_ready()) {
        return;
    }
    snprintf(path, sizeof(path), "%s/%s%s", kg_dir, key->name, f->ext);
    text = read_file(path, &len);
    ck_assert_msg(strncmp(text, f->head, strlen(f->head)) == 0, "%s does not start with %s", path,
                  f->head);
    free(text);
    buf_new(&want);
    buf_new(&blob);
    buf_new(&sig);
    kg_pubblob(key->name, &want);
    pub = pub_of(&want);

    switch (f->enc) {
    case KG_OPENSSH_ENC:
        /* bcrypt KDF + aes256-ctr (keyfile.c decrypts them now). */
        ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), SF_ERR_KEY_ENCRYPTED);
        ck_assert_ptr_null(k);
        ck_assert_int_eq(sf_privkey_load_file(path, WRONG_PASS, &k), SF_ERR_KEY_PASSPHRASE);
        ck_assert_ptr_null(k);
        ck_assert_int_eq(sf_privkey_load_file(path, PASS, &k), 0);
        break;
    case KG_PEM_ENC:
        ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), SF_ERR_KEY_ENCRYPTED);
        ck_assert_ptr_null(k);
        ck_assert_int_eq(sf_privkey_load_file(path, WRONG_PASS, &k), SF_ERR_KEY_PASSPHRASE);
        ck_assert_ptr_null(k);
        ck_assert_int_eq(sf_privkey_load_file(path, PASS, &k), 0);
        break;
    case KG_PLAIN:
    default:
        ck_assert_int_eq(sf_privkey_load_file(path, NULL, &k), 0);
        break;
    }
    ck_assert_str_eq(sf_privkey_type(k), sf_pubkey_type(pub));
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    ck_assert(buf_eq(&blob, &want));
    for (size_t j = 0; j < 2 && key->sigalgs[j] != NULL; j++) {
        sf_buf_reset(&sig);
        sign_verify(k, key->sigalgs[j], kg_msg, sizeof(kg_msg) - 1, &sig);
        /* Verified by the key from the .pub file as well. */
        ck_assert_int_eq(verify_buf(pub, key->sigalgs[j], &sig, kg_msg, sizeof(kg_msg) - 1), 0);
        /* Same signature under the other RSA name, or under "ssh-rsa": refused. */
        ck_assert_int_eq(verify_buf(pub, "ssh-rsa", &sig, kg_msg, sizeof(kg_msg) - 1),
                         SF_ERR_SIGNATURE);
    }
    sf_buf_reset(&sig);
    if (strcmp(sf_privkey_type(k), "ssh-rsa") == 0) {
        /* Legacy SHA-1, asked for by name: made and verified. */
        sign_verify(k, "ssh-rsa", kg_msg, sizeof(kg_msg) - 1, &sig);
        ck_assert_int_eq(verify_buf(pub, "ssh-rsa", &sig, kg_msg, sizeof(kg_msg) - 1), 0);
        ck_assert_int_eq(verify_buf(pub, "rsa-sha2-256", &sig, kg_msg, sizeof(kg_msg) - 1),
                         SF_ERR_SIGNATURE);
    } else {
        ck_assert_int_eq(
            sf_privkey_sign(k, "ssh-rsa", (const uint8_t *)kg_msg, sizeof(kg_msg) - 1, &sig),
            SF_ERR_INVALID);
    }
    sf_privkey_free(k);
    sf_pubkey_free(pub);
    sf_buf_free(&want);
    sf_buf_free(&blob);
    sf_buf_free(&sig);
}
END_TEST

/* PROTOCOL.sshsig: the signed data over the message. */
static void
sshsig_tbs(struct sf_buf *b, const char *hashalg, const char *msg, size_t msglen)
{
    uint8_t h[EVP_MAX_MD_SIZE];
    unsigned int hl = 0;
    const EVP_MD *md = strcmp(hashalg, "sha256") == 0 ? EVP_sha256() : EVP_sha512();

    ck_assert_int_eq(EVP_Digest(msg, msglen, h, &hl, md, NULL), 1);
    put_bytes(b, "SSHSIG", 6);
    put_cstr(b, KG_NS);
    put_cstr(b, "");
    put_cstr(b, hashalg);
    put_str(b, h, hl);
}

/* The armoured SSHSIG signature file for our signature blob sig. */
static void
sshsig_write(const char *path, const struct sf_buf *pub, const char *hashalg,
             const struct sf_buf *sig)
{
    struct sf_buf b;
    size_t b64sz, blen, o = 0;
    char *b64 = NULL, *text = NULL;

    buf_new(&b);
    put_bytes(&b, "SSHSIG", 6);
    put_u32(&b, 1);
    ck_assert_int_eq(sf_buf_put_sub(&b, pub), 0);
    put_cstr(&b, KG_NS);
    put_cstr(&b, "");
    put_cstr(&b, hashalg);
    ck_assert_int_eq(sf_buf_put_sub(&b, sig), 0);
    b64sz = (sf_buf_len(&b) + 2) / 3 * 4 + 1;
    b64 = malloc(b64sz);
    ck_assert_ptr_nonnull(b64);
    ck_assert_int_eq(sf_base64_encode(sf_buf_ptr(&b), sf_buf_len(&b), true, b64, b64sz), 0);
    blen = strlen(b64);
    text = malloc(blen + blen / 70 + 128);
    ck_assert_ptr_nonnull(text);
    o += (size_t)sprintf(text, "-----BEGIN SSH SIGNATURE-----\n");
    for (size_t i = 0; i < blen; i += 70) {
        size_t chunk = blen - i < 70 ? blen - i : 70;

        memcpy(text + o, b64 + i, chunk);
        o += chunk;
        text[o++] = '\n';
    }
    o += (size_t)sprintf(text + o, "-----END SSH SIGNATURE-----\n");
    write_file(path, text, o);
    free(text);
    free(b64);
    sf_buf_free(&b);
}

/* Our signatures, wrapped as SSHSIG, pass `ssh-keygen -Y verify`. */
START_TEST(test_keygen_sshsig_verify)
{
    const struct kg_key *key = &kg_keys[_i];
    char keypath[128], allowed[128], sigpath[160], line[4200];
    static const char *const hashalgs[] = { "sha512", "sha256" };
    struct sf_buf blob, tbs, sig;
    struct sf_privkey *k = NULL;
    char b64[4096];
    int rc;

    if (!kg_ready()) {
        return;
    }
    buf_new(&blob);
    buf_new(&tbs);
    buf_new(&sig);
    snprintf(keypath, sizeof(keypath), "%s/%s", kg_dir, key->name);
    snprintf(allowed, sizeof(allowed), "%s/allowed_%s", kg_dir, key->name);
    ck_assert_int_eq(sf_privkey_load_file(keypath, NULL, &k), 0);
    ck_assert_int_eq(sf_privkey_pubblob(k, &blob), 0);
    ck_assert_int_eq(sf_base64_encode(sf_buf_ptr(&blob), sf_buf_len(&blob), true, b64,
                                      sizeof(b64)),
                     0);
    snprintf(line, sizeof(line), "%s %s %s\n", KG_ID, sf_privkey_type(k), b64);
    write_file(allowed, line, strlen(line));

    for (size_t j = 0; j < 2 && key->sigalgs[j] != NULL; j++) {
        const char *hashalg = hashalgs[(_i + j) % 2];
        const char *argv[] = { KG, "-Y", "verify", "-f", allowed, "-I", KG_ID, "-n", KG_NS, "-s",
                               sigpath, NULL };

        snprintf(sigpath, sizeof(sigpath), "%s/ours_%s_%zu.sig", kg_dir, key->name, j);
        sf_buf_reset(&tbs);
        sf_buf_reset(&sig);
        sshsig_tbs(&tbs, hashalg, kg_msg, sizeof(kg_msg) - 1);
        ck_assert_int_eq(
            sf_privkey_sign(k, key->sigalgs[j], sf_buf_ptr(&tbs), sf_buf_len(&tbs), &sig), 0);
        sshsig_write(sigpath, &blob, hashalg, &sig);
        rc = kg_run(argv, kg_msg);
        ck_assert_msg(rc == 0, "ssh-keygen -Y verify (%s, %s) exit %d: %s", key->sigalgs[j],
                      hashalg, rc, kg_err);
        /* And it does refuse a signature that does not fit the message. */
        rc = kg_run(argv, "sshflow interop message, changed\n");
        ck_assert_msg(rc != 0 && rc != -1, "ssh-keygen accepted a wrong message (%d)", rc);
    }
    sf_privkey_free(k);
    sf_buf_free(&blob);
    sf_buf_free(&tbs);
    sf_buf_free(&sig);
}
END_TEST

/* Signatures by `ssh-keygen -Y sign` pass our verification. */
START_TEST(test_keygen_sshsig_sign)
{
    const struct kg_key *key = &kg_keys[_i];
    char keypath[128], msgpath[128], sigpath[160];
    const char *argv[] = { KG, "-Y", "sign", "-f", keypath, "-n", KG_NS, msgpath, NULL };
    struct sf_buf want, text, raw, tbs, sigcopy, sigbuf;
    struct sf_pubkey *pub = NULL;
    const uint8_t *pk = NULL, *ns = NULL, *res = NULL, *sig = NULL, *alg = NULL;
    size_t pkn = 0, nsn = 0, resn = 0, sign = 0, algn = 0, len = 0, outlen = 0;
    uint8_t magic[6];
    uint32_t version = 0;
    char hashalg[16], sigalg[64];
    char *file = NULL, *p = NULL, *end = NULL;
    uint8_t *dec = NULL;
    int rc;

    if (!kg_ready()) {
        return;
    }
    buf_new(&want);
    buf_new(&text);
    buf_new(&tbs);
    buf_new(&sigcopy);
    snprintf(keypath, sizeof(keypath), "%s/%s", kg_dir, key->name);
    snprintf(msgpath, sizeof(msgpath), "%s/msg_%s", kg_dir, key->name);
    snprintf(sigpath, sizeof(sigpath), "%s.sig", msgpath);
    write_file(msgpath, kg_msg, sizeof(kg_msg) - 1);
    (void)unlink(sigpath);
    rc = kg_run(argv, NULL);
    ck_assert_msg(rc == 0, "ssh-keygen -Y sign exit %d: %s", rc, kg_err);

    /* Dearmour: the base64 between the BEGIN and END lines. */
    file = read_file(sigpath, &len);
    p = strstr(file, "-----BEGIN SSH SIGNATURE-----\n");
    end = strstr(file, "-----END SSH SIGNATURE-----");
    ck_assert(p != NULL && end != NULL && end > p);
    for (p += 30; p < end; p++) {
        if (*p != '\n' && *p != '\r') {
            ck_assert_int_eq(sf_buf_put_u8(&text, (uint8_t)*p), 0);
        }
    }
    dec = malloc(sf_buf_len(&text));
    ck_assert_ptr_nonnull(dec);
    ck_assert_int_eq(sf_base64_decode((const char *)sf_buf_ptr(&text), sf_buf_len(&text), dec,
                                      sf_buf_len(&text), &outlen),
                     0);

    /* PROTOCOL.sshsig: "SSHSIG" u32 version, string pubkey, namespace, reserved, hash, sig */
    sf_buf_init_view(&raw, dec, outlen);
    ck_assert_int_eq(sf_buf_get_bytes(&raw, magic, 6), 0);
    ck_assert_mem_eq(magic, "SSHSIG", 6);
    ck_assert_int_eq(sf_buf_get_u32(&raw, &version), 0);
    ck_assert_uint_eq(version, 1);
    ck_assert_int_eq(sf_buf_get_string(&raw, &pk, &pkn, 4096), 0);
    ck_assert_int_eq(sf_buf_get_string(&raw, &ns, &nsn, 256), 0);
    ck_assert_int_eq(sf_buf_get_string(&raw, &res, &resn, 256), 0);
    ck_assert_int_eq(sf_buf_get_cstr(&raw, hashalg, sizeof(hashalg)), 0);
    ck_assert_int_eq(sf_buf_get_string(&raw, &sig, &sign, 4096), 0);
    ck_assert_int_eq(sf_buf_expect_end(&raw), 0);
    ck_assert_uint_eq(nsn, strlen(KG_NS));
    ck_assert_mem_eq(ns, KG_NS, nsn);
    ck_assert_uint_eq(resn, 0);

    kg_pubblob(key->name, &want);
    ck_assert_uint_eq(pkn, sf_buf_len(&want));
    ck_assert_mem_eq(pk, sf_buf_ptr(&want), pkn);
    pub = pub_of(&want);

    /* The algorithm name inside the signature */
    sf_buf_init_view(&sigbuf, sig, sign);
    ck_assert_int_eq(sf_buf_get_string(&sigbuf, &alg, &algn, 63), 0);
    memcpy(sigalg, alg, algn);
    sigalg[algn] = '\0';
    ck_assert_msg(sf_pubkey_sigalg_ok(pub, sigalg), "unexpected sigalg %s", sigalg);

    sshsig_tbs(&tbs, hashalg, kg_msg, sizeof(kg_msg) - 1);
    ck_assert_int_eq(sf_pubkey_verify(pub, sigalg, sig, sign, sf_buf_ptr(&tbs), sf_buf_len(&tbs)),
                     0);
    /* Another message: refused */
    sf_buf_reset(&tbs);
    sshsig_tbs(&tbs, hashalg, kg_msg, sizeof(kg_msg) - 2);
    ck_assert_int_eq(sf_pubkey_verify(pub, sigalg, sig, sign, sf_buf_ptr(&tbs), sf_buf_len(&tbs)),
                     SF_ERR_SIGNATURE);
    /* A flipped bit in the last byte of the signature: refused */
    sf_buf_reset(&tbs);
    sshsig_tbs(&tbs, hashalg, kg_msg, sizeof(kg_msg) - 1);
    put_bytes(&sigcopy, sig, sign);
    sf_buf_mutable_ptr(&sigcopy)[sign - 1] ^= 0x01;
    ck_assert_int_eq(sf_pubkey_verify(pub, sigalg, sf_buf_ptr(&sigcopy), sign, sf_buf_ptr(&tbs),
                                      sf_buf_len(&tbs)),
                     SF_ERR_SIGNATURE);

    sf_pubkey_free(pub);
    free(dec);
    free(file);
    sf_buf_free(&want);
    sf_buf_free(&text);
    sf_buf_free(&tbs);
    sf_buf_free(&sigcopy);
}
END_TEST

/* ---------------------------------------------------------------- the suite */

static Suite *
key_suite(void)
{
    Suite *s = suite_create("key");
    TCase *tc = tcase_create("pubkey");

    tcase_add_test(tc, test_pubkey_from_blob_ed25519);
    tcase_add_loop_test(tc, test_pubkey_from_blob_ecdsa, 0, (int)NELEM(ec_kats));
    tcase_add_test(tc, test_pubkey_from_blob_rsa);
    tcase_add_loop_test(tc, test_pubkey_from_blob_truncated_ed25519, 0, 51);
    tcase_add_test(tc, test_pubkey_from_blob_truncated_ecdsa_rsa);
    tcase_add_loop_test(tc, test_pubkey_from_blob_trailing, 0, 3);
    tcase_add_test(tc, test_pubkey_from_blob_oversize);
    tcase_add_test(tc, test_pubkey_from_blob_unknown_type);
    tcase_add_test(tc, test_pubkey_from_blob_ed25519_short);
    tcase_add_test(tc, test_pubkey_from_blob_ecdsa_curve_mismatch);
    tcase_add_loop_test(tc, test_pubkey_from_blob_ecdsa_bad_point, 0, (int)NELEM(ec_kats));
    tcase_add_test(tc, test_pubkey_from_blob_rsa_weak);
    tcase_add_test(tc, test_pubkey_sigalg_ok);
    tcase_add_test(tc, test_sigalg_supported);
    suite_add_tcase(s, tc);

    tc = tcase_create("verify");
    tcase_add_test(tc, test_pubkey_verify_ed25519_kat);
    tcase_add_test(tc, test_pubkey_verify_truncated);
    tcase_add_loop_test(tc, test_pubkey_verify_ecdsa_kat, 0, (int)NELEM(ec_kats));
    tcase_add_test(tc, test_pubkey_verify_rsa_kat);
    suite_add_tcase(s, tc);

    tc = tcase_create("privkey");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_privkey_load_ed25519_kat);
    tcase_add_test(tc, test_privkey_load_rsa_kat);
    tcase_add_loop_test(tc, test_privkey_load_ecdsa_kat, 0, (int)NELEM(ec_kats));
    tcase_add_test(tc, test_privkey_load_truncated);
    tcase_add_test(tc, test_privkey_load_checkint);
    tcase_add_test(tc, test_privkey_load_padding);
    tcase_add_test(tc, test_privkey_load_trailing);
    tcase_add_test(tc, test_privkey_load_mismatch);
    tcase_add_test(tc, test_privkey_load_encrypted_openssh);
    tcase_add_test(tc, test_privkey_load_bad_header);
    tcase_add_test(tc, test_privkey_load_armour);
    tcase_add_loop_test(tc, test_privkey_load_nomem, 0, 2);
    tcase_add_test(tc, test_privkey_load_pem_ed25519);
    tcase_add_loop_test(tc, test_privkey_load_pem_unsupported, 0, 5);
    tcase_add_test(tc, test_privkey_load_pem_garbage);
    tcase_add_test(tc, test_privkey_load_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("ssh-keygen");
    tcase_set_timeout(tc, 300);
    tcase_add_unchecked_fixture(tc, kg_setup, kg_teardown);
    tcase_add_loop_test(tc, test_keygen_load, 0, (int)NELEM(kg_files));
    tcase_add_loop_test(tc, test_keygen_sshsig_verify, 0, (int)NELEM(kg_keys));
    tcase_add_loop_test(tc, test_keygen_sshsig_sign, 0, (int)NELEM(kg_keys));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(key_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
