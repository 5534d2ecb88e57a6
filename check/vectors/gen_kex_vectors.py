#!/usr/bin/env python3
"""
check/vectors/gen_kex_vectors.py -- generates the known-answer vectors that
check/check_kex.c holds as constants. Run offline; the C tests never need
python. Deterministic: the same output every run.

Independent of the C code and of OpenSSL's DH/EC code paths where it
matters:
  * key derivation (RFC 4253 s7.2) and the exchange hash (RFC 4253 s8,
    RFC 4419 s3) use only hashlib;
  * the RFC 3526 MODP primes and the RFC 2409 group 2 prime are rebuilt
    from their defining formula p = 2^N - 2^(N-64) - 1 + 2^64 *
    (floor(2^(N-130) * pi) + c), with pi computed here by Machin's
    formula, and checked to be safe primes;
  * DH and group exchange shared secrets are plain pow() with those primes
    (the group exchange KAT uses a 2048-bit safe prime from OpenSSH's
    /etc/ssh/moduli, checked here); the group-check vectors (composites,
    non-safe primes) are searched for here with our own Miller-Rabin;
  * X25519 / ECDH use the python `cryptography` package, and so does the
    ML-KEM-768 half of mlkem768x25519-sha256 (cryptography >= 46 with an
    OpenSSL that has ML-KEM: the key pair from the fixed seed d || z, the
    server's encapsulation random). There is no python sntrup761, so the
    sntrup761x25519 KAT in check_kex.c takes its KEM half from the
    library's own sntrup761 (whose KATs are its own) and only the X25519
    half and the combination from here.

Usage: python3 check/vectors/gen_kex_vectors.py > /tmp/vectors.txt
(5-10 minutes on an idle machine: the X25519 search for two leading zero
bytes tries ~65k keys, the 8192-bit DH KATs and the prime searches for the
group-check vectors take most of the rest).
Paste the output between the "generated" markers in check/check_kex.c.
Everything is deterministic except the ML-KEM ciphertext (and so that KAT's
server value and K), which cryptography encapsulates with fresh randomness:
any run's output is a valid vector.
"""

import contextlib
import hashlib
import io
import random
import re
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519


def h(b):
    return b.hex()


def mpint(v):
    """RFC 4251 s5 mpint of a non-negative integer: uint32 len || minimal bytes."""
    if v == 0:
        return b"\x00\x00\x00\x00"
    n = (v.bit_length() + 8) // 8  # one extra bit for the sign
    body = v.to_bytes(n, "big")
    if n > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return len(body).to_bytes(4, "big") + body


def mpint_be(b):
    """mpint of an unsigned big-endian byte string (leading zeros stripped)."""
    return mpint(int.from_bytes(b, "big"))


def string(b):
    return len(b).to_bytes(4, "big") + b


# ---------------------------------------------------------------- derive

def derive(hname, k_mpint, hh, letter, sid, need):
    """RFC 4253 s7.2, including the extension rule."""
    out = hashlib.new(hname, k_mpint + hh + letter.encode() + sid).digest()
    while len(out) < need:
        out += hashlib.new(hname, k_mpint + hh + out).digest()
    return out[:need]


def derive_vectors():
    rnd = random.Random(4253)
    vecs = []
    cases = [
        ("SHA256", "sha256", 32, [("A", 16), ("B", 16), ("C", 32), ("D", 32), ("E", 32),
                                   ("F", 32), ("C", 64), ("D", 100)]),
        ("SHA384", "sha384", 48, [("A", 12), ("C", 48), ("E", 64), ("F", 96)]),
        ("SHA512", "sha512", 64, [("B", 12), ("D", 64), ("E", 65), ("F", 130)]),
    ]
    for osslname, hname, hlen, letters in cases:
        # K with its top bit set so the mpint gets a 0x00 prefix.
        kval = rnd.getrandbits(256) | (1 << 255)
        k = mpint(kval)
        hh = bytes(rnd.getrandbits(8) for _ in range(hlen))
        sid = bytes(rnd.getrandbits(8) for _ in range(hlen))
        for letter, need in letters:
            vecs.append((osslname, k, hh, letter, sid, need,
                         derive(hname, k, hh, letter, sid, need)))
    # session_id different from H (after a rekey) and a short K.
    k = mpint(0x1234)
    hh = hashlib.sha256(b"H").digest()
    sid = hashlib.sha256(b"sid").digest()
    vecs.append(("SHA256", k, hh, "A", sid, 40, derive("sha256", k, hh, "A", sid, 40)))
    print("/* sf_kex_derive: hash, K (mpint), H, letter, session_id, need, expected */")
    print("static const struct derive_vec derive_vecs[] = {")
    for v in vecs:
        print('{"%s", "%s",\n "%s",\n \'%s\', "%s", %d,\n "%s"},' %
              (v[0], h(v[1]), h(v[2]), v[3], h(v[4]), v[5], h(v[6])))
    print("};")


# ---------------------------------------------------------------- MODP

def pi_fixed(bits):
    """floor(pi * 2^bits), by Machin: pi = 16 atan(1/5) - 4 atan(1/239)."""
    guard = 64
    one = 1 << (bits + guard)

    def atan_inv(x):
        total = term = one // x
        x2 = x * x
        k = 1
        sign = -1
        while term:
            term //= x2
            total += sign * (term // (2 * k + 1))
            sign = -sign
            k += 1
        return total

    return (16 * atan_inv(5) - 4 * atan_inv(239)) >> guard


def modp(nbits, c):
    return (1 << nbits) - (1 << (nbits - 64)) - 1 + (1 << 64) * (pi_fixed(nbits - 130) + c)


def is_probable_prime(n, rounds=24):
    rnd = random.Random(n & 0xffffffff)
    if n < 4:
        return n in (2, 3)
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        a = rnd.randrange(2, n - 2)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


P14 = modp(2048, 124476)  # RFC 3526 s3, group 14
P16 = modp(4096, 240904)  # RFC 3526 s5, group 16
P18 = modp(8192, 4743158)  # RFC 3526 s7, group 18
P1 = modp(1024, 129093)  # RFC 2409 s6.2, Oakley group 2 (diffie-hellman-group1-sha1)
assert hex(P14).startswith("0xffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd1")
assert hex(P14).endswith("15728e5a8aacaa68ffffffffffffffff")
assert hex(P16).endswith("4df435c934063199ffffffffffffffff")
assert hex(P18).endswith("60c980dd98edd3dfffffffffffffffff")
assert hex(P1).endswith("49286651ece65381ffffffffffffffff")
for _p in (P14, P16, P1):
    assert is_probable_prime(_p) and is_probable_prime((_p - 1) // 2)
assert is_probable_prime(P18, 4) and is_probable_prime((P18 - 1) // 2, 4)


def dh_vectors():
    """Fixed client x (512 bits) and server y; K = f^x mod p."""
    print("/* DH KATs: group, x, e (mpint), f (mpint), K (mpint), what */")
    print("static const struct dh_kat dh_kats[] = {")
    for name, p in (("group14", P14), ("group16", P16), ("group18", P18), ("group1", P1)):
        rnd = random.Random(8268 + p.bit_length())
        x = rnd.getrandbits(512) | (1 << 511)
        e = pow(2, x, p)
        want = {"top bit set": lambda k: k.bit_length() % 8 == 0 and k.bit_length() == p.bit_length(),
                "leading zero byte": lambda k: k.bit_length() <= p.bit_length() - 8 and
                k.bit_length() % 8 != 0}
        for what, pred in want.items():
            while True:
                y = rnd.getrandbits(512) | (1 << 511)
                f = pow(2, y, p)
                k = pow(f, x, p)
                assert k == pow(e, y, p)
                if pred(k):
                    break
            print('{"%s",\n "%s",\n "%s",\n "%s",\n "%s", "%s"},' %
                  (name, h(x.to_bytes(64, "big")), h(mpint(e)), h(mpint(f)), h(mpint(k)), what))
    print("};")
    # check_kex.c expects f = p - 2 to be refused by the subgroup check:
    # -2 is a non-residue mod p because p = 7 mod 8.
    for p in (P14, P16, P18, P1):
        assert pow(p - 2, (p - 1) // 2, p) != 1 and pow(2, (p - 1) // 2, p) == 1
    print("/* RFC 3526 / RFC 2409 primes as mpints */")
    print('static const char dh_p14[] = "%s";' % h(mpint(P14)))
    print('static const char dh_p16[] = "%s";' % h(mpint(P16)))
    print('static const char dh_p18[] = "%s";' % h(mpint(P18)))
    print('static const char dh_p1[] = "%s";' % h(mpint(P1)))


# ---------------------------------------------------------------- X25519

def x25519_raw(priv, peer):
    return x25519.X25519PrivateKey.from_private_bytes(priv).exchange(
        x25519.X25519PublicKey.from_public_bytes(peer))


def x25519_pub(priv):
    return x25519.X25519PrivateKey.from_private_bytes(priv).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519_vectors():
    # RFC 7748 s5.2 and s6.1, checked here against `cryptography`.
    a = bytes.fromhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4")
    u = bytes.fromhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c")
    print("static const char rfc7748_52_out1[] =\n    \"%s\";" % h(x25519_raw(a, u)))
    a = bytes.fromhex("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d")
    u = bytes.fromhex("e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493")
    print("static const char rfc7748_52_out2[] =\n    \"%s\";" % h(x25519_raw(a, u)))
    k = u = (9).to_bytes(32, "little")
    for i in range(1000):
        k, u = x25519_raw(k, u), k
        if i == 0:
            print("static const char rfc7748_iter1[] =\n    \"%s\";" % h(k))
    print("static const char rfc7748_iter1000[] =\n    \"%s\";" % h(k))

    # Fixed client key, server keys searched for interesting K encodings.
    cpriv = hashlib.sha256(b"sshflow x25519 client").digest()
    print("/* X25519 KATs: client priv, Q_C (raw), Q_S (raw), K (mpint), what */")
    print("static const struct x25519_kat x25519_kats[] = {")
    want = [
        ("top bit set", lambda s: s[0] >= 0x80),
        ("no prefix, no strip", lambda s: 0 < s[0] < 0x80),
        ("one leading zero byte", lambda s: s[0] == 0 and s[1] != 0),
        ("two leading zero bytes", lambda s: s[0] == 0 and s[1] == 0 and s[2] != 0),
        ("leading zero then top bit", lambda s: s[0] == 0 and s[1] >= 0x80),
    ]
    for what, pred in want:
        i = 0
        while True:
            spriv = hashlib.sha256(b"sshflow x25519 server %d" % i).digest()
            spub = x25519_pub(spriv)
            s = x25519_raw(cpriv, spub)
            assert s == x25519_raw(spriv, x25519_pub(cpriv))
            if pred(s):
                break
            i += 1
        print('{"%s",\n "%s",\n "%s",\n "%s", "%s"},' %
              (h(cpriv), h(x25519_pub(cpriv)), h(spub), h(mpint_be(s)), what))

    print("};")
    # Points whose shared secret is all zero for any scalar (small order).
    pz = 2**255 - 19
    lows = [0, 1,
            0xb8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0,
            0x57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5f,
            pz - 1, pz, pz + 1]
    print("/* low-order X25519 points (little-endian u) */")
    print("static const char *const x25519_low_order[] = {")
    for v in lows:
        b = v.to_bytes(32, "little")
        try:
            x25519_raw(cpriv, b)
            raise SystemExit("point %x not rejected" % v)
        except ValueError:
            pass
        print('"%s",' % h(b))
    print("};")


# ---------------------------------------------------------------- ECDH

def ecdh_vectors():
    curves = (("nistp256", ec.SECP256R1(), 32), ("nistp384", ec.SECP384R1(), 48),
              ("nistp521", ec.SECP521R1(), 66))
    print("/* ECDH KATs: curve, client priv (fixed-width), Q_C, Q_S, K (mpint), off-curve, what */")
    print("static const struct ecdh_kat ecdh_kats[] = {")
    for name, curve, fl in curves:
        order = {32: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551,
                 48: int("ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf"
                         "581a0db248b0a77aecec196accc52973", 16),
                 66: int("01ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
                         "fa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409",
                         16)}[fl]
        d = int.from_bytes(hashlib.sha512(b"sshflow ecdh client " + name.encode()).digest(),
                           "big") % order
        cpriv = ec.derive_private_key(d, curve)
        qc = cpriv.public_key().public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
        want = [("top bit set", lambda s: s[0] >= 0x80),
                ("leading zero byte", lambda s: s[0] == 0 and s[1] != 0)]
        if fl == 66:
            # x < 2^521: the first byte is 0 or 1; after stripping a zero the
            # next byte may have its top bit set.
            want = [("leading zero then top bit", lambda s: s[0] == 0 and s[1] >= 0x80),
                    ("first byte 0x01", lambda s: s[0] == 1)]
        # Off-curve: the client's own point with y + 1.
        x = qc[1:1 + fl]
        y = (int.from_bytes(qc[1 + fl:], "big") + 1).to_bytes(fl, "big")
        offc = b"\x04" + x + y
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(curve, offc)
            raise SystemExit("off-curve point accepted")
        except ValueError:
            pass
        for what, pred in want:
            i = 0
            while True:
                e = int.from_bytes(hashlib.sha512(b"sshflow ecdh server %s %d" %
                                                  (name.encode(), i)).digest(), "big") % order
                spriv = ec.derive_private_key(e, curve)
                qs = spriv.public_key().public_bytes(serialization.Encoding.X962,
                                                     serialization.PublicFormat.UncompressedPoint)
                s = cpriv.exchange(ec.ECDH(), spriv.public_key())
                assert len(s) == fl
                if pred(s):
                    break
                i += 1
            print('{"%s",\n "%s",\n "%s",\n "%s",\n "%s",\n "%s", "%s"},' %
                  (name, h(d.to_bytes(fl, "big")), h(qc), h(qs), h(mpint_be(s)), h(offc), what))
    print("};")


# ---------------------------------------------------------------- group exchange

SMALL_PRIMES = [q for q in range(3, 1000) if all(q % d for d in range(2, int(q ** 0.5) + 1))]


def no_small_factor(n):
    return all(n % q for q in SMALL_PRIMES)


def moduli_group(bits):
    """The first `bits`-bit safe prime of OpenSSH's moduli file, checked here."""
    with open("/etc/ssh/moduli") as f:
        for line in f:
            parts = line.split()
            if len(parts) != 7 or line.startswith("#") or int(parts[4]) != bits - 1:
                continue
            p, g = int(parts[6], 16), int(parts[5])
            assert p.bit_length() == bits and p % 4 == 3
            assert is_probable_prime(p, 32) and is_probable_prime((p - 1) // 2, 32)
            return p, g
    raise SystemExit("no %d-bit group in /etc/ssh/moduli" % bits)


def find_prime(rnd, bits, pred=lambda v: True):
    while True:
        v = rnd.getrandbits(bits) | (1 << (bits - 1)) | 1
        if no_small_factor(v) and pred(v) and is_probable_prime(v, 32):
            return v


def u32(v):
    return v.to_bytes(4, "big")


GEX_MIN, GEX_N, GEX_MAX = 2048, 3072, 8192  # what the client asks for (kex.h)


def gex_vectors():
    p, g = moduli_group(2048)
    rnd = random.Random(4419)
    x = rnd.getrandbits(512) | (1 << 511)
    y = rnd.getrandbits(512) | (1 << 511)
    e, f = pow(g, x, p), pow(g, y, p)
    k = pow(f, x, p)
    assert k == pow(e, y, p)
    req = u32(GEX_MIN) + u32(GEX_N) + u32(GEX_MAX)
    group = mpint(p) + mpint(g)
    print("/* Group exchange KAT (RFC 4419): a 2048-bit safe prime of /etc/ssh/moduli */")
    print("static const struct gex_kat gex_kat = {")
    print(' "%s",\n "%s",\n "%s",\n "%s",\n "%s",\n "%s",\n "%s"};' %
          (h(req), h(group), h(x.to_bytes(64, "big")), h(mpint(e)), h(mpint(f)), h(mpint(k)),
           h(req + group + mpint(e))))
    GEX_TRANSCRIPT.update(cpub=req + group + mpint(e), spub=mpint(f), k=mpint(k))

    # The group check: p, g (hex, big-endian) and whether it must pass.
    cases = []
    cases.append(("moduli safe prime, g = %d" % g, p, g, True))
    cases.append(("RFC 3526 group 14", P14, 2, True))
    cases.append(("RFC 3526 group 18", P18, 2, True))
    cases.append(("RFC 3526 group 14, g = p - 2", P14, P14 - 2, True))
    cases.append(("RFC 2409 group 2: 1024 bits, too small", P1, 2, False))
    cases.append(("2047 bits, too small", p >> 1 | 1, 2, False))
    cases.append(("8193 bits, too large", (1 << 8192) | 1, 2, False))
    cases.append(("even", p + 1, 2, False))
    cases.append(("g = 0", p, 0, False))
    cases.append(("g = 1", p, 1, False))
    cases.append(("g = p - 1", p, p - 1, False))
    cases.append(("g = p", p, p, False))
    cases.append(("g = p + 1", p, p + 1, False))
    r1 = find_prime(rnd, 1024, lambda v: v >> 1022 == 3)
    r2 = find_prime(rnd, 1024, lambda v: v >> 1022 == 3)
    assert (r1 * r2).bit_length() == 2048
    cases.append(("composite (two 1024-bit primes)", r1 * r2, 2, False))
    cases.append(("p + 2 (composite)", p + 2, 2, False))
    # A prime whose q = (p-1)/2 is odd and composite with no small factor:
    # only Miller-Rabin on q refuses it.
    np_ = find_prime(rnd, 2048, lambda v: v % 4 == 3 and no_small_factor((v - 1) // 2) and
                     not is_probable_prime((v - 1) // 2, 4))
    cases.append(("prime, not a safe prime", np_, 2, False))
    # q prime, p = 2q + 1 composite without small factors: only the check of p refuses it.
    q = find_prime(rnd, 2047, lambda v: no_small_factor(2 * v + 1) and
                   not is_probable_prime(2 * v + 1, 4))
    cases.append(("q prime, 2q + 1 composite", 2 * q + 1, 2, False))
    # A prime with p = 1 (mod 4): q even.
    p4 = find_prime(rnd, 2048, lambda v: v % 4 == 1)
    cases.append(("prime, q even", p4, 2, False))
    print("/* Group check (RFC 4419 s3 + docs/kex.md): what, p, g, ok */")
    print("static const struct gex_check gex_checks[] = {")
    for what, cp, cg, ok in cases:
        print('{"%s",\n "%s",\n "%s", %s},' % (what, "%x" % cp if cp else "00",
                                               "%02x" % cg if cg < 256 else "%x" % cg,
                                               "true" if ok else "false"))
    print("};")


# ---------------------------------------------------------------- hybrids

def mlkem_vectors():
    from cryptography.hazmat.primitives.asymmetric import mlkem
    seed = hashlib.sha512(b"sshflow mlkem768 client").digest()  # d || z
    xpriv = hashlib.sha256(b"sshflow mlkem768x25519 x25519 client").digest()
    spriv = hashlib.sha256(b"sshflow mlkem768x25519 x25519 server").digest()
    sk = mlkem.MLKEM768PrivateKey.from_seed_bytes(seed)
    pk = sk.public_key().public_bytes_raw()
    assert len(pk) == 1184
    cinit = string(pk + x25519_pub(xpriv))
    ss, ct = sk.public_key().encapsulate()
    assert len(ct) == 1088 and len(ss) == 32 and sk.decapsulate(ct) == ss
    xss = x25519_raw(spriv, x25519_pub(xpriv))
    sreply = string(ct + x25519_pub(spriv))
    k = string(hashlib.sha256(ss + xss).digest())
    print("/* mlkem768x25519-sha256 KAT: x25519 priv || d || z, SHA-256(C_INIT string),")
    print("   S_REPLY (string), K (string). ML-KEM by python cryptography. */")
    print("static const struct hybrid_kat mlkem_kat = {")
    print(' "%s",\n "%s",\n "%s",\n "%s"};' % (h(xpriv + seed), h(hashlib.sha256(cinit).digest()),
                                             h(sreply), h(k)))


def sntrup_vectors():
    xpriv = hashlib.sha256(b"sshflow sntrup761x25519 x25519 client").digest()
    spriv = hashlib.sha256(b"sshflow sntrup761x25519 x25519 server").digest()
    seed = hashlib.sha256(b"sshflow sntrup761 client").digest()
    print("/* sntrup761x25519 half-KAT: x25519 client priv || KEM seed, its X25519 public key,")
    print("   the server's X25519 public key, and their X25519 shared secret */")
    print("static const struct sntrup_kat sntrup_kat = {")
    print(' "%s",\n "%s",\n "%s",\n "%s"};' % (h(xpriv + seed), h(x25519_pub(xpriv)),
                                             h(x25519_pub(spriv)),
                                             h(x25519_raw(spriv, x25519_pub(xpriv)))))
    # The test stream sntrup761 test keys are drawn from (kex.c seed_rng).
    stream = b"".join(hashlib.sha512(seed + i.to_bytes(8, "big")).digest() for i in range(3))
    print('static const char sntrup_seed_stream[] = "%s";' % h(stream[:150]))


# ---------------------------------------------------------------- exchange hash

GEX_TRANSCRIPT = {}


def exchange_hash(hname, vc, vs, ic, is_, ks, cpub, spub, k):
    return hashlib.new(hname, string(vc) + string(vs) + string(ic) + string(is_) + string(ks) +
                       cpub + spub + k).digest()


def exchange_hash_vectors():
    rnd = random.Random(8308)

    def rb(n):
        return bytes(rnd.getrandbits(8) for _ in range(n))

    vc, vs = b"SSH-2.0-sshflow_0.1", b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    cases = [
        ("SHA512", "hybrid: string C_INIT, S_REPLY, string K", string(rb(1190)),
         string(rb(1071)), string(rb(64))),
        ("SHA256", "group exchange: min n max p g e, f, mpint K", GEX_TRANSCRIPT["cpub"],
         GEX_TRANSCRIPT["spub"], GEX_TRANSCRIPT["k"]),
        ("SHA1", "group14-sha1: mpint e, f, K", mpint(rnd.getrandbits(2048)),
         mpint(rnd.getrandbits(2048)), mpint(rnd.getrandbits(2047))),
    ]
    print("/* Exchange hash: hash, what, V_C, V_S, I_C, I_S, K_S, client part, server part,")
    print("   K, H */")
    print("static const struct xh_vec xh_vecs[] = {")
    for hname, what, cpub, spub, k in cases:
        ic, is_, ks = rb(rnd.randrange(100, 300)), rb(rnd.randrange(100, 300)), rb(51)
        hh = exchange_hash(hname.lower(), vc, vs, ic, is_, ks, cpub, spub, k)
        print('{"%s", "%s", "%s", "%s",\n "%s",\n "%s",\n "%s",\n "%s",\n "%s",\n "%s",\n "%s"},' %
              (hname, what, vc.decode(), vs.decode(), h(ic), h(is_), h(ks), h(cpub), h(spub),
               h(k), h(hh)))
    print("};")


def wrap_hex(text, width=64):
    """Split long hex string literals so the C file stays within 100 columns."""
    def split(m):
        hx = m.group(1)
        parts = [hx[i:i + width] for i in range(0, len(hx), width)]
        return '"' + '"\n    "'.join(parts) + '"'
    return re.sub(r'"([0-9a-f]{%d,})"' % (width + 1), split, text)


def main():
    derive_vectors()
    print()
    x25519_vectors()
    print()
    ecdh_vectors()
    print()
    dh_vectors()
    print()
    gex_vectors()
    print()
    mlkem_vectors()
    print()
    sntrup_vectors()
    print()
    exchange_hash_vectors()


if __name__ == "__main__":
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        main()
    sys.stdout.write(wrap_hex(buf.getvalue()))
