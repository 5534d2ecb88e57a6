#!/usr/bin/env python3
"""
check/vectors/gen_cipher_vectors.py -- generate the SSH packet-protection
known-answer vectors used by check/check_cipher.c.

Owns: an independent model of every packet construction in src/cipher.c
(chacha20-poly1305@openssh.com, aes{128,256}-gcm@openssh.com, aes{128,192,256}-ctr
and, legacy, aes{128,192,256}-cbc, with hmac-sha2-{256,512}[-etm@openssh.com]
and hmac-sha1[-etm@openssh.com]) built from the python
`cryptography` package, plus pure-python ChaCha20 (original 64-bit nonce
layout) and Poly1305 used to cross-check the chacha construction, and a
CTR mode built from AES-ECB with an explicit 128-bit counter. Must never:
be needed at test run time (its output is pasted into the C test).

Usage: python3 check/vectors/gen_cipher_vectors.py > /tmp/vectors.inc
The output is the block between "BEGIN GENERATED" and "END GENERATED" in
check/check_cipher.c.
"""
import hmac as py_hmac
import hashlib
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

MASK32 = 0xFFFFFFFF


# ---- pure-python ChaCha20 (Bernstein's layout: 64-bit counter, 64-bit nonce)
def _rotl(v, n):
    return ((v << n) & MASK32) | (v >> (32 - n))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & MASK32; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK32; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & MASK32; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK32; s[b] = _rotl(s[b] ^ s[c], 7)


def chacha_block(key, counter64, nonce8):
    st = list(struct.unpack("<4I", b"expand 32-byte k"))
    st += list(struct.unpack("<8I", key))
    st += [counter64 & MASK32, counter64 >> 32]
    st += list(struct.unpack("<2I", nonce8))
    w = st[:]
    for _ in range(10):
        _qr(w, 0, 4, 8, 12); _qr(w, 1, 5, 9, 13); _qr(w, 2, 6, 10, 14); _qr(w, 3, 7, 11, 15)
        _qr(w, 0, 5, 10, 15); _qr(w, 1, 6, 11, 12); _qr(w, 2, 7, 8, 13); _qr(w, 3, 4, 9, 14)
    return struct.pack("<16I", *[(w[i] + st[i]) & MASK32 for i in range(16)])


def chacha_xor_py(key, nonce8, counter, data):
    out = bytearray()
    for off in range(0, len(data), 64):
        ks = chacha_block(key, counter, nonce8)
        counter += 1
        chunk = data[off:off + 64]
        out += bytes(a ^ b for a, b in zip(chunk, ks))
    return bytes(out)


def poly1305_py(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:], "little")
    p = (1 << 130) - 5
    acc = 0
    for off in range(0, len(msg), 16):
        n = int.from_bytes(msg[off:off + 16] + b"\x01", "little")
        acc = ((acc + n) * r) % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


# ---- the same through `cryptography` (OpenSSL's 16-byte IV: words 12..15)
def chacha_xor_lib(key, nonce8, counter, data):
    iv = struct.pack("<Q", counter) + nonce8
    enc = Cipher(algorithms.ChaCha20(key, iv), mode=None).encryptor()
    return enc.update(data) + enc.finalize()


def poly1305_lib(key, msg):
    return Poly1305.generate_tag(key, msg)


def chacha_xor(key, nonce8, counter, data):
    a = chacha_xor_lib(key, nonce8, counter, data)
    assert a == chacha_xor_py(key, nonce8, counter, data)
    return a


def poly1305(key, msg):
    a = poly1305_lib(key, msg)
    assert a == poly1305_py(key, msg)
    return a


# ---- primitive KATs from the RFCs / NIST, checked against the library -----
def check_primitive_kats():
    # RFC 8439 s2.3.2: block function, counter 1, nonce 000000090000004a00000000.
    key = bytes(range(32))
    nonce12 = bytes.fromhex("000000090000004a00000000")
    iv = struct.pack("<I", 1) + nonce12
    enc = Cipher(algorithms.ChaCha20(key, iv), mode=None).encryptor()
    blk = enc.update(bytes(64))
    exp = bytes.fromhex(
        "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
        "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
    assert blk == exp, blk.hex()
    # Same 16 bytes seen as Bernstein's layout: counter64 = words 12,13.
    ctr64 = 1 | (struct.unpack("<I", nonce12[:4])[0] << 32)
    assert chacha_block(key, ctr64, nonce12[4:]) == exp
    # RFC 8439 s2.5.2: Poly1305.
    pk = bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
    msg = b"Cryptographic Forum Research Group"
    assert poly1305(pk, msg).hex() == "a8061dc1305136c6c22b8baf0c0127a9"
    # McGrew-Viega GCM test case 4 (AES-128, 60-byte plaintext, 20-byte AAD).
    k = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
    n = bytes.fromhex("cafebabefacedbaddecaf888")
    p = bytes.fromhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
    a = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    ct = AESGCM(k).encrypt(n, p, a)
    assert ct.hex() == ("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
                        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
                        "5bc94fbc3221a5db94fae95ae7121a47"), ct.hex()
    # RFC 4231 test cases 2 and 6.
    assert py_hmac.new(b"Jefe", b"what do ya want for nothing?", "sha256").hexdigest() == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert py_hmac.new(b"Jefe", b"what do ya want for nothing?", "sha512").hexdigest() == (
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
        "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737")
    m6 = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert py_hmac.new(b"\xaa" * 131, m6, "sha256").hexdigest() == \
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    assert py_hmac.new(b"\xaa" * 131, m6, "sha512").hexdigest() == (
        "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352"
        "6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598")
    # SP 800-38A F.5.1 CTR-AES128.Encrypt.
    k = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    ivc = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
    p = bytes.fromhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                      "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
    ct = ctr_xor(k, ivc, p)
    assert ct.hex() == ("874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
                        "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee")


# ---- AES-CTR: AES-ECB on an explicit 128-bit big-endian counter (RFC 4344 s4)
def ctr_xor(key, iv, data):
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    ctr = int.from_bytes(iv, "big")
    out = bytearray()
    for off in range(0, len(data), 16):
        ks = ecb.update(ctr.to_bytes(16, "big"))
        ctr = (ctr + 1) % (1 << 128)
        out += bytes(a ^ b for a, b in zip(data[off:off + 16], ks))
    lib = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    assert lib.update(data) + lib.finalize() == bytes(out)
    return bytes(out)


class CtrStream:
    """One direction's AES-CTR: the keystream continues across packets."""

    def __init__(self, key, iv):
        self.key = key
        self.iv = iv
        self.pos = 0  # bytes of keystream used

    def xor(self, data):
        start = self.pos - self.pos % 16
        skip = self.pos - start
        ctr = (int.from_bytes(self.iv, "big") + start // 16) % (1 << 128)
        out = ctr_xor(self.key, ctr.to_bytes(16, "big"), bytes(skip) + data)[skip:]
        self.pos += len(data)
        return out


class CbcStream:
    """One direction's AES-CBC (legacy): the chaining continues across packets
    (RFC 4253 s6.3), built from AES-ECB so it does not share code with the
    library's EVP CBC."""

    def __init__(self, key, iv):
        self.ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        self.prev = iv

    def xor(self, data):  # named like CtrStream.xor: "protect these bytes"
        assert len(data) % 16 == 0
        out = bytearray()
        for off in range(0, len(data), 16):
            blk = bytes(a ^ b for a, b in zip(data[off:off + 16], self.prev))
            self.prev = self.ecb.update(blk)
            out += self.prev
        return bytes(out)


# ---- packets ------------------------------------------------------------
SEQS = [0xFFFFFFFE, 0xFFFFFFFF, 0x00000000, 0x00000001]  # wraps
PAYLOAD_LENS = [3, 27, 300, 700]


def make_packet(k, payload_len, block, len_excluded):
    """Plaintext packet k: header, then byte j = (j*13 + k*101 + 7) & 0xff."""
    covered = 1 + payload_len if len_excluded else 5 + payload_len
    pad = 4
    while (covered + pad) % block != 0:
        pad += 1
    packet_length = 1 + payload_len + pad
    total = 4 + packet_length
    pkt = bytearray(total)
    struct.pack_into(">IB", pkt, 0, packet_length, pad)
    for j in range(5, total):
        pkt[j] = (j * 13 + k * 101 + 7) & 0xFF
    return bytes(pkt), packet_length, pad


def pattern(n, salt):
    return bytes(((i * 7 + salt * 31 + 1) & 0xFF) for i in range(n))


def seal_chachapoly(key, seq, pkt):
    k2, k1 = key[:32], key[32:]  # first half K_2 (payload), second K_1 (length)
    nonce = struct.pack(">Q", seq)
    enc_len = chacha_xor(k1, nonce, 0, pkt[:4])
    polykey = chacha_xor(k2, nonce, 0, bytes(32))
    enc_rest = chacha_xor(k2, nonce, 1, pkt[4:])
    wire = enc_len + enc_rest
    return wire + poly1305(polykey, wire)


def seal_gcm(key, iv, pkt):
    ct = AESGCM(key).encrypt(iv, pkt[4:], pkt[:4])
    return pkt[:4] + ct


def gcm_inc(iv):
    ctr = (int.from_bytes(iv[4:], "big") + 1) % (1 << 64)
    return iv[:4] + ctr.to_bytes(8, "big")


CIPHERS = [
    # name, key_len, iv, block, kind
    ("chacha20-poly1305@openssh.com", 64, b"", 8, "chacha"),
    ("aes128-gcm@openssh.com", 16, bytes.fromhex("a1a2a3a4 00000000000000fe"), 16, "gcm"),
    ("aes256-gcm@openssh.com", 32, bytes.fromhex("b1b2b3b4 fffffffffffffffe"), 16, "gcm"),
    ("aes128-ctr", 16, bytes.fromhex("00112233445566778899aabbfffffffa"), 16, "ctr"),
    ("aes192-ctr", 24, bytes.fromhex("fffffffffffffffffffffffffffffff9"), 16, "ctr"),
    ("aes256-ctr", 32, bytes.fromhex("0f0e0d0c0b0a09080706050403020100"), 16, "ctr"),
    # legacy, opt-in only
    ("aes128-cbc", 16, bytes.fromhex("000102030405060708090a0b0c0d0e0f"), 16, "cbc"),
    ("aes192-cbc", 24, bytes.fromhex("f0e0d0c0b0a090807060504030201000"), 16, "cbc"),
    ("aes256-cbc", 32, bytes.fromhex("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"), 16, "cbc"),
]
MACS = [
    # name, key_len, digest, etm
    ("hmac-sha2-256-etm@openssh.com", 32, "sha256", True),
    ("hmac-sha2-512-etm@openssh.com", 64, "sha512", True),
    ("hmac-sha2-256", 32, "sha256", False),
    ("hmac-sha2-512", 64, "sha512", False),
    # legacy, opt-in only
    ("hmac-sha1-etm@openssh.com", 20, "sha1", True),
    ("hmac-sha1", 20, "sha1", False),
]


def combos():
    for ci, (cname, klen, iv, block, kind) in enumerate(CIPHERS):
        macs = MACS if kind in ("ctr", "cbc") else [None]
        for mi, mac in enumerate(macs):
            salt = ci * 8 + mi
            key = pattern(klen, salt)
            mackey = pattern(mac[1], salt + 100) if mac else b""
            excluded = kind not in ("ctr", "cbc") or mac[3]
            pkts = []
            gcm_iv = iv
            ctr = CtrStream(key, iv) if kind == "ctr" else CbcStream(key, iv) if kind == "cbc" else None
            for k, (seq, plen) in enumerate(zip(SEQS, PAYLOAD_LENS)):
                pkt, packet_length, pad = make_packet(k, plen, block, excluded)
                if kind == "chacha":
                    wire = seal_chachapoly(key, seq, pkt)
                elif kind == "gcm":
                    wire = seal_gcm(key, gcm_iv, pkt)
                    gcm_iv = gcm_inc(gcm_iv)
                elif mac[3]:  # encrypt-then-MAC
                    enc = pkt[:4] + ctr.xor(pkt[4:])
                    tag = py_hmac.new(mackey, struct.pack(">I", seq) + enc, mac[2]).digest()
                    wire = enc + tag
                else:  # encrypt-and-MAC
                    tag = py_hmac.new(mackey, struct.pack(">I", seq) + pkt, mac[2]).digest()
                    wire = ctr.xor(pkt) + tag
                pkts.append((seq, packet_length, pad, wire))
            yield cname, (mac[0] if mac else None), key, iv, mackey, pkts


def c_hex(b, indent):
    h = b.hex()
    if len(h) <= 80:
        return '"%s"' % h
    parts = [h[i:i + 80] for i in range(0, len(h), 80)]
    return ("\n" + " " * indent).join('"%s"' % p for p in parts)


def main():
    check_primitive_kats()
    print("/* BEGIN GENERATED by check/vectors/gen_cipher_vectors.py */")
    print("#define VEC_NPKT %d" % len(SEQS))
    print("struct pkt_vec {")
    print("    uint32_t seq;")
    print("    uint32_t packet_length;")
    print("    uint8_t padding_length;")
    print("    const char *wire; /* hex: protected packet || tag */")
    print("};")
    print("struct combo_vec {")
    print("    const char *cipher;")
    print("    const char *mac; /* NULL for AEAD */")
    print("    const char *key, *iv, *mackey; /* hex */")
    print("    struct pkt_vec pkts[VEC_NPKT];")
    print("};")
    print("static const struct combo_vec combo_vecs[] = {")
    for cname, mname, key, iv, mackey, pkts in combos():
        print("    {")
        print('        "%s",' % cname)
        print("        %s," % ('"%s"' % mname if mname else "NULL"))
        print("        %s," % c_hex(key, 8))
        print("        %s," % c_hex(iv, 8))
        print("        %s," % c_hex(mackey, 8))
        print("        {")
        for seq, packet_length, pad, wire in pkts:
            print("            { 0x%08xU, %d, %d," % (seq, packet_length, pad))
            print("              %s }," % c_hex(wire, 14))
        print("        },")
        print("    },")
    print("};")
    print("/* END GENERATED */")


if __name__ == "__main__":
    main()
