/*
 * src/cipher.h -- packet protection for one direction of the binary packet
 * protocol (RFC 4253 s6): cipher plus MAC, or an AEAD.
 *
 * Constructions:
 *   chacha20-poly1305@openssh.com  (PROTOCOL.chacha20poly1305): the 64-byte
 *       key is K_2 (first 32 bytes: payload and Poly1305 key) then K_1
 *       (last 32: length); Poly1305 tag over the encrypted length and
 *       payload; nonce = sequence number.
 *   aes128-gcm@openssh.com, aes256-gcm@openssh.com (RFC 5647 as OpenSSH
 *       does it): length in clear as AAD, 12-byte IV whose last 8 bytes are
 *       an invocation counter incremented after every packet, 16-byte tag.
 *   aes128-ctr, aes192-ctr, aes256-ctr with a MAC (and, legacy, only when
 *   a caller names them: aes128-cbc, aes192-cbc, aes256-cbc, whose chaining
 *   runs across packets; MACs hmac-sha1 and hmac-sha1-etm@openssh.com):
 *       hmac-sha2-256 / hmac-sha2-512 (encrypt-and-MAC: whole packet
 *           encrypted, MAC = HMAC(key, uint32 seq || plaintext packet));
 *       hmac-sha2-256-etm@openssh.com / hmac-sha2-512-etm@openssh.com
 *           (length in clear, rest encrypted, MAC = HMAC(key, uint32 seq ||
 *           length || ciphertext)).
 *
 * A "packet" below is the bytes `uint32 packet_length || byte padding_length
 * || payload || padding` (4 + packet_length bytes) and the tag (MAC or AEAD
 * tag) follows it on the wire.
 *
 * Owns: OpenSSL EVP contexts and key material (wiped on free). Must never:
 * look at packet contents beyond the length, or do I/O.
 */
#ifndef SF_CIPHER_H
#define SF_CIPHER_H

#include "sf.h"

/* Static description of a cipher or MAC, for KEXINIT negotiation and key derivation. */
struct sf_cipher_info {
    const char *name;
    size_t key_len;   /* bytes of encryption key to derive */
    size_t iv_len;    /* bytes of IV to derive (0 for chacha20-poly1305) */
    size_t block_len; /* cipher block size for padding (8 for chacha) */
    size_t tag_len;   /* AEAD tag length, 0 if a separate MAC is needed */
};
struct sf_mac_info {
    const char *name;
    size_t key_len; /* bytes of MAC key to derive */
    size_t mac_len; /* bytes of MAC on the wire */
    bool etm;       /* encrypt-then-MAC */
};

/* Look up by exact name (n bytes, not NUL-terminated); NULL if unknown. */
const struct sf_cipher_info *sf_cipher_info_find(const char *name, size_t n);
const struct sf_mac_info *sf_mac_info_find(const char *name, size_t n);

/* Comma-separated default preference lists (OpenSSH's order) and all supported names. */
extern const char sf_cipher_default_list[];
extern const char sf_mac_default_list[];
extern const char sf_cipher_all_list[];
extern const char sf_mac_all_list[];

/* One direction's state. Opaque; allocated by sf_cipher_new. */
struct sf_cipher;

/*
 * Create the state for one direction. mac is NULL for AEAD ciphers (tag_len
 * > 0) and required otherwise. key/iv/mackey point to exactly the lengths
 * given by the info structs (they are copied; the caller wipes its copies).
 * encrypt: true for the sending direction.
 */
SF_MUST_USE int sf_cipher_new(struct sf_cipher **out, const struct sf_cipher_info *ci,
                              const struct sf_mac_info *mi, bool encrypt, const uint8_t *key,
                              const uint8_t *iv, const uint8_t *mackey);
void sf_cipher_free(struct sf_cipher *c); /* wipes; NULL ok */

/* Padding block size: the packet (minus the length field when
 * sf_cipher_len_excluded) must be a multiple of it. At least 8. */
size_t sf_cipher_block_len(const struct sf_cipher *c);
/* True when packet_length is not covered by the padding multiple rule
 * (AEAD and EtM modes: OpenSSH pads 1 + payload + padding only). */
bool sf_cipher_len_excluded(const struct sf_cipher *c);
/* Bytes of tag (AEAD tag or MAC) that follow each packet on the wire. */
size_t sf_cipher_tag_len(const struct sf_cipher *c);
/* Bytes of the packet's start needed to learn its length: 4 for AEAD/EtM
 * modes, the block length for encrypt-and-MAC. */
size_t sf_cipher_first_len(const struct sf_cipher *c);

/*
 * Protect a packet in place. pkt holds 4 + packet_length bytes (length
 * field included and already filled, padded as required); tag receives
 * sf_cipher_tag_len() bytes. seq is the packet's sequence number.
 */
SF_MUST_USE int sf_cipher_seal(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len,
                               uint8_t *tag);

/*
 * Learn the packet length from the first sf_cipher_first_len() bytes at
 * pkt. May decrypt those bytes in place (encrypt-and-MAC mode); the caller
 * must then pass the same buffer to sf_cipher_open. *packet_length is the
 * value of the length field (the caller checks it against its limits).
 */
SF_MUST_USE int sf_cipher_peek_len(struct sf_cipher *c, uint32_t seq, uint8_t *pkt,
                                   uint32_t *packet_length);

/*
 * Verify and decrypt a whole packet in place: pkt holds 4 + packet_length
 * bytes as received (after sf_cipher_peek_len), tag the tag. On success pkt
 * is plaintext (length field included). On a bad tag returns SF_ERR_MAC and
 * pkt's contents are unspecified (never trust them). The tag is checked in
 * constant time, before decryption wherever the construction allows
 * (chacha20-poly1305 and EtM; GCM checks inside OpenSSL's final step and
 * the output is wiped on failure; encrypt-and-MAC needs the plaintext).
 */
SF_MUST_USE int sf_cipher_open(struct sf_cipher *c, uint32_t seq, uint8_t *pkt, size_t len,
                               const uint8_t *tag);

#endif
