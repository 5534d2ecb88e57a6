#!/usr/bin/python3
"""
check/vectors/gen_bcrypt_vectors.py -- generate the bcrypt_pbkdf known-answer
vectors used by check/check_keyfile.c.

Owns: a list of (passphrase, salt, rounds, key length) cases chosen to reach
every branch of src/bcrypt_pbkdf.c (one and several output blocks, uneven
strides, key lengths 1 and 512, NUL bytes in passphrase and salt, long
salts), and their outputs from an independent implementation: the `bcrypt`
module's kdf() (Debian package python3-bcrypt, OpenBSD's C code). Must
never: be needed at test run time (its output is pasted into the C test).

Usage (Debian's python3, where python3-bcrypt installs the module):
    apt-get install -y python3-bcrypt
    /usr/bin/python3 check/vectors/gen_bcrypt_vectors.py > /tmp/bcrypt.inc
The output is the block between "BEGIN GENERATED bcrypt" and "END GENERATED
bcrypt" in check/check_keyfile.c.
"""
import warnings

import bcrypt

warnings.simplefilter("ignore")  # kdf() warns about few rounds; we want few

CASES = [
    # OpenBSD's regression vector (bcrypt_pbkdf test in OpenSSH's regress)
    (b"password", b"salt", 4, 32),
    # one byte of key; one round
    (b"password", b"salt", 1, 1),
    # one block plus one byte: stride 2, uneven amt
    (b"sshflow", b"0123456789abcdef", 2, 33),
    # aes256-ctr key + IV, ssh-keygen's default rounds
    (b"correct horse battery staple", bytes(range(16)), 16, 48),
    # aes256-gcm key + IV
    (b"pw", bytes(range(16, 32)), 3, 44),
    # chacha20-poly1305: 64 bytes, and key + IV of aes256-cbc (48) at 5 rounds
    (b"pass\x00word", b"salt\x00salt", 3, 64),
    (b"\xff" * 3, b"\x00", 5, 48),
    # long passphrase (SHA-512 makes its length irrelevant), 100-byte salt
    (b"A" * 200, bytes((7 * i) & 0xFF for i in range(100)), 2, 100),
    # the longest key python-bcrypt derives (512; our bound is OpenBSD's 1024),
    # and the longest salt we take
    (b"max", b"s" * 1024, 1, 512),
    # many rounds
    (b"rounds", b"NaCl", 50, 32),
]


def c_wrap(b, indent="      "):
    """A C string literal of b, split into pieces of 16 bytes."""
    s = "".join("\\x%02x" % c for c in b)
    parts = [s[i:i + 64] for i in range(0, len(s), 64)] or [""]
    return ("\n" + indent).join('"%s"' % p for p in parts)


def main():
    print("/* BEGIN GENERATED bcrypt: check/vectors/gen_bcrypt_vectors.py, bcrypt %s */"
          % bcrypt.__version__)
    print("static const struct bcrypt_kat bcrypt_kats[] = {")
    for pw, salt, rounds, klen in CASES:
        key = bcrypt.kdf(password=pw, salt=salt, desired_key_bytes=klen, rounds=rounds)
        print("    { %s, %d,\n      %s, %d,\n      %d, %d,\n      %s },"
              % (c_wrap(pw), len(pw), c_wrap(salt), len(salt), rounds, klen, c_wrap(key)))
    print("};")
    print("/* END GENERATED bcrypt */")


if __name__ == "__main__":
    main()
