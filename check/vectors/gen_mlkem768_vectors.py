#!/usr/bin/env python3
"""
check/vectors/gen_mlkem768_vectors.py -- generate the ML-KEM-768 known-answer
vectors used by check/check_mlkem768.c.

Owns: a small independent model of ML-KEM-768 written from FIPS 203 (August
2024) with python's hashlib SHA3/SHAKE (no shared code with src/mlkem768.c:
schoolbook negacyclic products and plain `%` arithmetic instead of the NTT,
Fractions for compression), the choice of which NIST ACVP vectors go into
the test, the extra cases (chained keygen/encaps/decaps with tampered
ciphertexts, a seed whose matrix needs more than 504 bytes of SHAKE128), and
the exhaustive checks of the constants src/mlkem768.c relies on.
Must never: be needed at test run time (its output is pasted into the C
test), or emit an ACVP vector the model does not reproduce.

Inputs:
  --acvp DIR   a directory holding the NIST ACVP-Server FIPS 203 sample
               files, as found in github.com/usnistgov/ACVP-Server under
               gen-val/json-files/: DIR/ML-KEM-keyGen-FIPS203/internalProjection.json
               and DIR/ML-KEM-encapDecap-FIPS203/internalProjection.json.
               The vectors in check_mlkem768.c come from the copy of those
               files in GiacomoPope/kyber-py assets/ (commit 8979236),
               vsId 42.
  --kyber-py SRC  optional: the src/ directory of GiacomoPope/kyber-py; every
               extra case is then also recomputed with its ML_KEM_768 and
               must agree (a second, third-party implementation).

Usage: python3 check/vectors/gen_mlkem768_vectors.py --acvp DIR [--kyber-py SRC] > out.inc
The output replaces the block between BEGIN GENERATED and END GENERATED in
check/check_mlkem768.c.
"""
import argparse
import hashlib
import json
import os
import sys
from fractions import Fraction

Q = 3329
N = 256
K = 3
ETA1 = ETA2 = 2
DU, DV = 10, 4


# ---- hash functions (FIPS 203 s4.1)
def H(s):
    return hashlib.sha3_256(s).digest()


def G(s):
    d = hashlib.sha3_512(s).digest()
    return d[:32], d[32:]


def J(s):
    return hashlib.shake_256(s).digest(32)


def PRF(eta, s, b):
    return hashlib.shake_256(s + bytes([b])).digest(64 * eta)


def XOF(rho, i, j, n):
    return hashlib.shake_128(rho + bytes([i, j])).digest(n)


# ---- rounding helpers (FIPS 203 s4.2.1), exact rational arithmetic
def rnd(x):
    """round to nearest, halves up (FIPS 203 s2.3)"""
    return int((x + Fraction(1, 2)) // 1)


def compress(x, d):
    return rnd(Fraction(2 ** d, Q) * x) % (2 ** d)


def decompress(y, d):
    return rnd(Fraction(Q, 2 ** d) * y)


# ---- encodings (Algorithms 3-6)
def bits_to_bytes(bits):
    out = bytearray(len(bits) // 8)
    for i, b in enumerate(bits):
        out[i // 8] |= b << (i % 8)
    return bytes(out)


def bytes_to_bits(data):
    return [(data[i // 8] >> (i % 8)) & 1 for i in range(8 * len(data))]


def byte_encode(f, d):
    bits = []
    for a in f:
        bits += [(a >> k) & 1 for k in range(d)]
    return bits_to_bytes(bits)


def byte_decode(data, d):
    bits = bytes_to_bits(data)
    m = 2 ** d if d < 12 else Q
    return [sum(bits[i * d + k] << k for k in range(d)) % m for i in range(256)]


# ---- sampling (Algorithms 7, 8)
def sample_ntt(rho, i, j):
    """SampleNTT(rho || i || j); also returns the stream bytes it consumed."""
    n = 168
    while True:
        stream = XOF(rho, i, j, n)
        a, pos = [], 0
        while len(a) < 256 and pos + 3 <= len(stream):
            c0, c1, c2 = stream[pos], stream[pos + 1], stream[pos + 2]
            d1 = c0 + 256 * (c1 % 16)
            d2 = c1 // 16 + 16 * c2
            if d1 < Q:
                a.append(d1)
            if d2 < Q and len(a) < 256:
                a.append(d2)
            pos += 3
        if len(a) == 256:
            return a, pos
        n += 168


def sample_cbd(data, eta):
    bits = bytes_to_bits(data)
    f = []
    for i in range(256):
        x = sum(bits[2 * i * eta + k] for k in range(eta))
        y = sum(bits[2 * i * eta + eta + k] for k in range(eta))
        f.append((x - y) % Q)
    return f


# ---- ring arithmetic: the NTT domain is modelled by the plain ring
# R_q = Z_q[X]/(X^256 + 1); NTT is only needed to match the byte encodings
# of t-hat and s-hat, which FIPS 203 stores in NTT form.
def ntt(f):
    """FIPS 203 Algorithm 9, written out directly."""
    f = list(f)
    i = 1
    length = 128
    while length >= 2:
        for start in range(0, 256, 2 * length):
            zeta = pow(17, bitrev7(i), Q)
            i += 1
            for j in range(start, start + length):
                t = zeta * f[j + length] % Q
                f[j + length] = (f[j] - t) % Q
                f[j] = (f[j] + t) % Q
        length //= 2
    return f


def bitrev7(i):
    return int(format(i, "07b")[::-1], 2)


def inv_ntt_by_interpolation(fh):
    """NTT^-1 by undoing each butterfly of Algorithm 9 with modular
    inverses (not FIPS 203 Algorithm 10, so it checks the C code's)."""
    f = list(fh)
    length = 2
    while length <= 128:
        for start in range(0, 256, 2 * length):
            # the zeta this block used in Algorithm 9
            zeta = pow(17, bitrev7(128 // length + start // (2 * length)), Q)
            for j in range(start, start + length):
                a, b = f[j], f[j + length]
                # forward: a = x + zeta*y, b = x - zeta*y
                x = (a + b) * pow(2, -1, Q) % Q
                y = (a - b) * pow(2 * zeta, -1, Q) % Q
                f[j], f[j + length] = x, y
        length *= 2
    return f


def polymul(a, b):
    """schoolbook product in Z_q[X]/(X^256 + 1)"""
    c = [0] * 512
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                c[i + j] += x * y
    return [(c[i] - c[i + 256]) % Q for i in range(256)]


def padd(a, b):
    return [(x + y) % Q for x, y in zip(a, b)]


def psub(a, b):
    return [(x - y) % Q for x, y in zip(a, b)]


# ---- K-PKE and ML-KEM (Algorithms 13-18), in the plain ring
def matrix(rho):
    """A[i][j] in the plain ring, plus the longest XOF prefix consumed."""
    a, longest = [[None] * K for _ in range(K)], 0
    for i in range(K):
        for j in range(K):
            ah, used = sample_ntt(rho, j, i)
            longest = max(longest, used)
            a[i][j] = inv_ntt_by_interpolation(ah)
    return a, longest


def pke_keygen(d):
    rho, sigma = G(d + bytes([K]))
    a, _ = matrix(rho)
    s = [sample_cbd(PRF(ETA1, sigma, i), ETA1) for i in range(K)]
    e = [sample_cbd(PRF(ETA1, sigma, K + i), ETA1) for i in range(K)]
    t = []
    for i in range(K):
        acc = e[i]
        for j in range(K):
            acc = padd(acc, polymul(a[i][j], s[j]))
        t.append(acc)
    ek = b"".join(byte_encode(ntt(ti), 12) for ti in t) + rho
    dk = b"".join(byte_encode(ntt(si), 12) for si in s)
    return ek, dk


def pke_encrypt(ek, m, r):
    t = [inv_ntt_by_interpolation(byte_decode(ek[384 * i:384 * (i + 1)], 12)) for i in range(K)]
    rho = ek[384 * K:]
    a, _ = matrix(rho)
    y = [sample_cbd(PRF(ETA1, r, i), ETA1) for i in range(K)]
    e1 = [sample_cbd(PRF(ETA2, r, K + i), ETA2) for i in range(K)]
    e2 = sample_cbd(PRF(ETA2, r, 2 * K), ETA2)
    u = []
    for i in range(K):
        acc = e1[i]
        for j in range(K):
            acc = padd(acc, polymul(a[j][i], y[j]))
        u.append(acc)
    mu = [decompress(b, 1) for b in bytes_to_bits(m)]
    v = padd(e2, mu)
    for j in range(K):
        v = padd(v, polymul(t[j], y[j]))
    c1 = b"".join(byte_encode([compress(x, DU) for x in ui], DU) for ui in u)
    c2 = byte_encode([compress(x, DV) for x in v], DV)
    return c1 + c2


def pke_decrypt(dk, c):
    c1, c2 = c[:32 * DU * K], c[32 * DU * K:]
    u = [[decompress(y, DU) for y in byte_decode(c1[320 * i:320 * (i + 1)], DU)] for i in range(K)]
    v = [decompress(y, DV) for y in byte_decode(c2, DV)]
    s = [inv_ntt_by_interpolation(byte_decode(dk[384 * i:384 * (i + 1)], 12)) for i in range(K)]
    w = v
    for i in range(K):
        w = psub(w, polymul(s[i], u[i]))
    return bits_to_bytes([compress(x, 1) for x in w])


def keygen(d, z):
    ek, dkp = pke_keygen(d)
    return ek, dkp + ek + H(ek) + z


def encaps(ek, m):
    for i in range(K):  # s7.2 modulus check
        part = ek[384 * i:384 * (i + 1)]
        assert byte_encode(byte_decode(part, 12), 12) == part, "modulus check"
    kk, r = G(m + H(ek))
    return pke_encrypt(ek, m, r), kk


def decaps(dk, c):
    dkp, ek = dk[:384 * K], dk[384 * K:768 * K + 32]
    h, z = dk[768 * K + 32:768 * K + 64], dk[768 * K + 64:]
    assert H(ek) == h, "hash check"
    m2 = pke_decrypt(dkp, c)
    k2, r2 = G(m2 + h)
    kbar = J(z + c)
    return k2 if pke_encrypt(ek, m2, r2) == c else kbar


# ---- checks of the constants src/mlkem768.c uses
def check_constants():
    # NTT sanity: the model's inverse really inverts, and NTT products match
    # the schoolbook ring product (so the plain-ring model is FIPS 203's).
    f = [(i * 7 + 3) % Q for i in range(256)]
    g = [(i * i + 11) % Q for i in range(256)]
    assert inv_ntt_by_interpolation(ntt(f)) == f
    fh, gh = ntt(f), ntt(g)
    hh = []
    for i in range(128):
        gamma = pow(17, 2 * bitrev7(i) + 1, Q)
        a0, a1, b0, b1 = fh[2 * i], fh[2 * i + 1], gh[2 * i], gh[2 * i + 1]
        hh += [(a0 * b0 + a1 * b1 * gamma) % Q, (a0 * b1 + a1 * b0) % Q]
    assert inv_ntt_by_interpolation(hh) == polymul(f, g)
    # Barrett: x - floor(x * 1290167 / 2^32) * q is in [0, 2q) for all
    # 32-bit x (bound argument); spot-check the extremes and a sweep.
    for x in list(range(0, 1 << 26, 997)) + [2 ** 32 - 1, 2 * (Q - 1) ** 2]:
        assert 0 <= x - ((x * 1290167) >> 32) * Q < 2 * Q
    # Compress_d division: (n * 2580335) >> 33 == n // q for all n < 2^22.
    for n in range(1 << 22):
        assert (n * 2580335) >> 33 == n // Q
    # and Compress_d via floor((2^d x + (q-1)/2) / q) equals FIPS's rounding.
    for d in (1, 4, 10):
        for x in range(Q):
            assert ((x << d) + (Q - 1) // 2) // Q % (1 << d) == compress(x, d)
        for y in range(1 << d):
            assert (y * Q + (1 << (d - 1))) >> d == decompress(y, d)
    # the tables in src/mlkem768.c
    return ([pow(17, bitrev7(i), Q) for i in range(128)],
            [pow(17, 2 * bitrev7(i) + 1, Q) for i in range(128)])


# ---- output helpers
def sha256(b):
    return hashlib.sha256(b).hexdigest()


def cstr(hexstr, indent="     "):
    """a long hex string as concatenated C literals, 88 hex digits a line"""
    parts = [hexstr[i:i + 88] for i in range(0, len(hexstr), 88)]
    return ("\n" + indent).join('"%s"' % p for p in parts)


def seed(label, i):
    return hashlib.shake_256(("sshflow mlkem768 %s %d" % (label, i)).encode()).digest(32)


def load_acvp(acvp):
    kg = json.load(open(os.path.join(acvp, "ML-KEM-keyGen-FIPS203", "internalProjection.json")))
    ed = json.load(open(os.path.join(acvp, "ML-KEM-encapDecap-FIPS203", "internalProjection.json")))
    keygen_cases = [t for g in kg["testGroups"] if g["parameterSet"] == "ML-KEM-768"
                    for t in g["tests"]]
    enc, dec = [], None
    for g in ed["testGroups"]:
        if g["parameterSet"] != "ML-KEM-768":
            continue
        if g["function"] == "encapsulation":
            enc = g["tests"]
        elif g["function"] == "decapsulation":
            dec = g
    return keygen_cases, enc, dec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--acvp", required=True)
    ap.add_argument("--kyber-py")
    args = ap.parse_args()

    check_constants()
    kyber = None
    if args.kyber_py:
        sys.path.insert(0, args.kyber_py)
        from kyber_py.ml_kem import ML_KEM_768 as kyber  # noqa: E402

    out = []
    p = out.append
    p("/* BEGIN GENERATED by check/vectors/gen_mlkem768_vectors.py -- do not edit */")

    keygen_cases, enc, dec = load_acvp(args.acvp)
    bx = bytes.fromhex

    # ACVP keyGen: all 768 cases, d/z in full, ek/dk as SHA-256.
    p("")
    p("/* NIST ACVP ML-KEM-keyGen-FIPS203 vsId 42, ML-KEM-768 (tcId 26-50). */")
    p("static const struct kat_keygen acvp_keygen[] = {")
    for t in keygen_cases:
        ek, dk = keygen(bx(t["d"]), bx(t["z"]))
        assert ek.hex().upper() == t["ek"] and dk.hex().upper() == t["dk"], t["tcId"]
        p("    {%d, \"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\"}," %
          (t["tcId"], t["d"].lower(), t["z"].lower(), sha256(ek), sha256(dk)))
    p("};")

    # ACVP encapsulation: every case checked, the first three emitted.
    for t in enc:
        c, kk = encaps(bx(t["ek"]), bx(t["m"]))
        assert c.hex().upper() == t["c"] and kk.hex().upper() == t["k"], t["tcId"]
    p("")
    p("/* NIST ACVP ML-KEM-encapDecap-FIPS203 vsId 42, ML-KEM-768 encapsulation. */")
    p("static const struct kat_encaps acvp_encaps[] = {")
    for t in enc[:3]:
        p("    {%d,\n     %s,\n     \"%s\",\n     \"%s\",\n     \"%s\"}," %
          (t["tcId"], cstr(t["ek"].lower()), t["m"].lower(), sha256(bx(t["c"])), t["k"].lower()))
    p("};")

    # ACVP decapsulation: one dk, every case checked, two valid and two
    # modified ciphertexts emitted.
    dk = bx(dec["dk"])
    for t in dec["tests"]:
        assert decaps(dk, bx(t["c"])).hex().upper() == t["k"], t["tcId"]
    chosen = [t for t in dec["tests"] if t["reason"] == "no modification"][:2] + \
             [t for t in dec["tests"] if t["reason"] != "no modification"][:2]
    p("")
    p("/* NIST ACVP ML-KEM-encapDecap-FIPS203 vsId 42, ML-KEM-768 decapsulation (tgId %d). */"
      % dec["tgId"])
    p("static const char acvp_decaps_dk[] =\n    %s;" % cstr(dec["dk"].lower(), "    "))
    p("static const struct kat_decaps acvp_decaps[] = {")
    for t in chosen:
        p("    {%d, \"%s\",\n     %s,\n     \"%s\"}," %
          (t["tcId"], t["reason"], cstr(t["c"].lower()), t["k"].lower()))
    p("};")

    # Model cases: chained keygen -> encaps -> decaps, plus tampered
    # ciphertexts (implicit rejection: K-bar = J(z || c')).
    p("")
    p("/* Model cases: d, z, m from SHAKE256(\"sshflow mlkem768 <d|z|m> <i>\"). */")
    p("static const struct kat_chain model_chain[] = {")
    for i in range(4):
        d, z, m = seed("d", i), seed("z", i), seed("m", i)
        ek, dk = keygen(d, z)
        c, kk = encaps(ek, m)
        assert decaps(dk, c) == kk
        pos = [0, 959, 960, 1087][i]  # first/last byte of c1, first/last of c2
        flip = 1 << (i * 3 % 8)
        c2 = bytearray(c)
        c2[pos] ^= flip
        c2 = bytes(c2)
        krej = decaps(dk, c2)
        assert krej == J(z + c2) and krej != kk
        if kyber is not None:
            ek_k, dk_k = kyber._keygen_internal(d, z)
            kk_k, c_k = kyber._encaps_internal(ek_k, m)
            assert (ek_k, dk_k, c_k, kk_k) == (ek, dk, c, kk)
            assert kyber.decaps(dk_k, c2) == krej and kyber.decaps(dk_k, c) == kk
        p("    {\"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\",\n"
          "     \"%s\",\n     %d, 0x%02x, \"%s\"}," %
          (d.hex(), z.hex(), m.hex(), sha256(ek), sha256(dk), sha256(c), kk.hex(), pos, flip,
           krej.hex()))
    p("};")

    # A seed whose matrix needs more than 3 SHAKE128 blocks (504 bytes) for
    # some entry: exercises the second, longer squeeze in sample_ntt().
    for i in range(1000):
        d, z, m = seed("long-xof d", i), seed("long-xof z", i), seed("long-xof m", i)
        rho, _ = G(d + bytes([K]))
        _, longest = matrix(rho)
        if longest > 504:
            break
    else:
        raise SystemExit("no long-XOF seed found")
    ek, dk = keygen(d, z)
    c, kk = encaps(ek, m)
    assert decaps(dk, c) == kk
    if kyber is not None:
        ek_k, dk_k = kyber._keygen_internal(d, z)
        kk_k, c_k = kyber._encaps_internal(ek_k, m)
        assert (ek_k, dk_k, c_k, kk_k) == (ek, dk, c, kk)
    p("")
    p("/* Model case whose matrix needs %d bytes of SHAKE128 for one entry (> 504). */" % longest)
    p("static const struct kat_chain model_long_xof =\n"
      "    {\"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\",\n     \"%s\",\n"
      "     \"%s\",\n     0, 0x00, \"\"};" %
      (d.hex(), z.hex(), m.hex(), sha256(ek), sha256(dk), sha256(c), kk.hex()))
    p("")
    p("/* END GENERATED */")
    print("\n".join(out))


if __name__ == "__main__":
    main()
