/*
 * src/keyfile.h -- key files: private key files (keyfile.c), public key
 * files and fingerprints (pubfile.c), key generation and writing
 * (keywrite.c). The loading entry points sf_privkey_load / _load_file are
 * declared in key.h; this header has the helpers around them.
 *
 * Owns: nothing but declarations. Every function here parses through
 * struct sf_buf, wipes its temporary copies of secrets, and returns 0 or a
 * negative SF_ERR_*. File-format errors are SF_ERR_KEY_TYPE (the public
 * SSHFLOW_ERR_KEY_FORMAT), whatever inside the file was wrong.
 */
#ifndef SF_KEYFILE_H
#define SF_KEYFILE_H

#include "buf.h"
#include "key.h"
#include "sf.h"

#define SF_KEYFILE_MAX (1024 * 1024)   /* largest key file read */
#define SF_KEYFILE_ROUNDS_MAX 1000     /* most bcrypt rounds accepted when loading */
#define SF_KEYFILE_ROUNDS_DEFAULT 16   /* ssh-keygen's default, used when writing */
#define SF_KEYFILE_SALT_LEN 16         /* bcrypt salt written (ssh-keygen's) */
#define SF_KEYFILE_COMMENT_MAX 4096    /* longest comment read or written */
#define SF_KEYFILE_LINE 70             /* base64 columns of the armour, as ssh-keygen */

/* ---- keyfile.c ---- */

/*
 * Read a whole file (at most SF_KEYFILE_MAX bytes) into *data (sf_alloc'd,
 * *cap bytes; release with sf_freezero(*data, *cap)). SF_ERR_FILE when it
 * cannot be opened or read, or is a directory (errno is left as the failing
 * call set it: EISDIR for a directory), SF_ERR_TOO_LARGE when too big.
 */
SF_MUST_USE int sf_keyfile_read(const char *path, uint8_t **data, size_t *len, size_t *cap);

/*
 * sf_privkey_load plus the comment stored with the key (openssh-key-v1 keeps
 * it in the private section; PEM / PKCS#8 have none: *has_comment false).
 * comment may be NULL (commentsz 0); a comment that does not fit is
 * SF_ERR_NO_SPACE (one holding a NUL makes the file corrupt: SF_ERR_KEY_TYPE,
 * as for OpenSSH).
 */
SF_MUST_USE int sf_privkey_load_comment(const uint8_t *data, size_t len, const char *passphrase,
                                        struct sf_privkey **out, char *comment,
                                        size_t commentsz, bool *has_comment);

/*
 * The public key blob of a private key file without its passphrase:
 * openssh-key-v1 keeps it in the clear header; unencrypted PEM / PKCS#8 are
 * loaded through OpenSSL; encrypted PEM gives SF_ERR_KEY_ENCRYPTED.
 * Appends the blob to blob_out.
 */
SF_MUST_USE int sf_privkey_file_pubblob(const uint8_t *data, size_t len, struct sf_buf *blob_out);

/*
 * Key and IV sizes of an openssh-key-v1 cipher name ("aes256-ctr", ...),
 * NULL-safe: returns false for an unknown name.
 */
bool sf_keyfile_cipher_sizes(const char *name, size_t *keylen, size_t *ivlen, size_t *blocklen,
                             size_t *taglen);
/*
 * Encrypt (or decrypt) len bytes of an openssh-key-v1 private section with
 * cipher `name`, key || iv in keyiv (keylen + ivlen bytes). For AEAD
 * ciphers tag holds taglen bytes (written when encrypting, checked before
 * anything is returned when decrypting: SF_ERR_KEY_PASSPHRASE on a
 * mismatch, out wiped). in and out may be the same.
 */
SF_MUST_USE int sf_keyfile_crypt(const char *name, bool encrypt, const uint8_t *keyiv,
                                 const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag);

/* ---- pubfile.c ---- */

/*
 * Parse a public key file: OpenSSH one-line form "type base64 [comment]"
 * (blank lines and '#' lines around it are skipped; a second key line is
 * an error) or RFC 4716 "---- BEGIN SSH2 PUBLIC KEY ----" (headers with
 * '\' continuation lines, the "Comment:" header's value, quotes removed, is
 * the comment). The type in the line must equal the type inside the blob,
 * and the blob must be well formed (sf_key_bits). Certificate types
 * ("*-cert-v01@openssh.com") are accepted. Appends the blob to blob_out;
 * comment (may be NULL) gets the comment or "" (SF_ERR_NO_SPACE if it does
 * not fit). Errors: SF_ERR_KEY_TYPE for anything malformed.
 */
SF_MUST_USE int sf_pubfile_parse(const uint8_t *data, size_t len, struct sf_buf *blob_out,
                                 char *comment, size_t commentsz);

/* "MD5:aa:bb:..." (lowercase hex) of blob, as ssh-keygen -E md5 -l prints it. outsz >= 52. */
SF_MUST_USE int sf_fingerprint_md5(const uint8_t *blob, size_t len, char *out, size_t outsz);

/*
 * Size and display type of a public key blob as ssh-keygen -l prints them:
 * 256 "ED25519", 256/384/521 "ECDSA", modulus bits "RSA", 1024.. "DSA",
 * "ECDSA-SK", "ED25519-SK", and "<that>-CERT" for certificates (whose
 * embedded key is parsed; the whole certificate structure must be well
 * formed). *typename_upper is a static string. SF_ERR_KEY_TYPE for an
 * unknown type or a malformed blob (trailing data included).
 */
SF_MUST_USE int sf_key_bits(const uint8_t *blob, size_t len, unsigned *bits,
                            const char **typename_upper);

/*
 * The plain public key inside a certificate blob (type without
 * "-cert-v01@openssh.com", then the key fields); a plain key's blob is
 * copied as it is. ssh-keygen fingerprints a certificate by this key.
 * Appends to out.
 */
SF_MUST_USE int sf_key_plain_blob(const uint8_t *blob, size_t len, struct sf_buf *out);

/* ---- keywrite.c ---- */

/*
 * Generate a key: type "ed25519" (bits 0 or 256), "ecdsa" (0 = 256, 384,
 * 521), "rsa" (0 = 3072, 2048..16384). SF_ERR_INVALID for anything else.
 */
SF_MUST_USE int sf_privkey_generate(const char *type, unsigned bits, struct sf_privkey **out);

/*
 * The openssh-key-v1 file of k as ssh-keygen writes it: armour with
 * 70-column base64 lines, random checkint, padding 1, 2, 3, ..., comment
 * (NULL: ""). With a non-empty passphrase: bcrypt KDF with `rounds` (1 ..
 * SF_KEYFILE_ROUNDS_MAX; 0 means 16) and a random 16-byte salt, cipher
 * aes256-ctr; else cipher and KDF "none". Appends the text to out (grow it
 * to at least 64 KiB). Every intermediate copy of the private key is wiped.
 */
SF_MUST_USE int sf_privkey_write_openssh(const struct sf_privkey *k, const char *comment,
                                         const char *passphrase, unsigned rounds,
                                         struct sf_buf *out);

#endif
