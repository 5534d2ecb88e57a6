#!/usr/bin/python3
# bench/client_paramiko.py -- the benchmark client for paramiko, with the
# same command line and RESULT line as the C clients (bench/bench_common.h):
#
#   client_paramiko.py -p PORT -l USER -i KEY -k KNOWN_HOSTS [-c CIPHER]
#       [-m MAC] [-x KEX] [-H HOSTKEYALG] [-N] upload|download|roundtrip FILE
#       | handshake N
#
# Normal paramiko use: SSHClient with the known_hosts file loaded and
# RejectPolicy (unknown or changed host key refused), an Ed25519Key read from
# the file, connect() without agent or ~/.ssh keys, then a session channel
# and exec_command. Algorithms are pinned with connect(disabled_algorithms=)
# (everything but the wanted one disabled). The round trip writes from a
# second thread (paramiko channels may be written and read from different
# threads). Data is read and written in 64 KiB pieces, like the C clients;
# received data is compared with the input file, not hashed.
#
# Owns: nothing but its connection. Must never: skip the host key check.
import getopt
import os
import socket
import sys
import threading
import time

import paramiko

CHUNK = 65536


def die(msg):
    sys.stderr.write("client_paramiko: %s\n" % msg)
    sys.exit(1)


def parse(argv):
    try:
        opts, rest = getopt.getopt(argv, "p:l:i:k:c:m:x:H:h:N")
    except getopt.GetoptError as e:
        die(str(e))
    a = {"host": "127.0.0.1", "cipher": None, "mac": None, "kex": None, "hostkey": None,
         "nodelay": None}
    names = {"-p": "port", "-l": "user", "-i": "key", "-k": "known_hosts", "-c": "cipher",
             "-m": "mac", "-x": "kex", "-H": "hostkey", "-h": "host", "-N": "nodelay"}
    for o, v in opts:
        a[names[o]] = v
    if len(rest) != 2 or not all(k in a for k in ("port", "user", "key", "known_hosts")):
        die("usage: see bench/bench_common.h")
    a["port"] = int(a["port"])
    a["mode"], a["arg"] = rest
    return a


def disabled(a):
    """Disable every algorithm paramiko knows except the wanted one."""
    t = paramiko.Transport
    want = {"ciphers": (a["cipher"], t._preferred_ciphers),
            "macs": (a["mac"], t._preferred_macs),
            "kex": (a["kex"], t._preferred_kex),
            "keys": (a["hostkey"], t._preferred_keys)}
    out = {}
    for kind, (name, known) in want.items():
        if name is None:
            continue
        if name not in known:
            die("paramiko %s does not support %s" % (paramiko.__version__, name))
        out[kind] = [x for x in known if x != name]
    return out


def open_channel(a, cmd):
    client = paramiko.SSHClient()
    client.load_host_keys(a["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    key = paramiko.Ed25519Key.from_private_key_file(a["key"])
    sock = None
    if a["nodelay"] is not None:
        # -N: our own socket with TCP_NODELAY (paramiko leaves Nagle on)
        sock = socket.create_connection((a["host"], a["port"]), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client.connect(a["host"], port=a["port"], username=a["user"], pkey=key,
                   allow_agent=False, look_for_keys=False, timeout=10,
                   disabled_algorithms=disabled(a), sock=sock)
    ch = client.get_transport().open_session()
    ch.exec_command(cmd)
    return client, ch


def algs_of(a, client):
    # paramiko keeps no record of the agreed kex name; with -x only that one
    # is enabled, so it is the one used.
    t = client.get_transport()
    return "kex=%s hostkey=%s cipher=%s mac=%s" % (
        a["kex"] or "?", t.host_key_type, t.local_cipher, t.local_mac)


def finish(client, ch):
    if ch.recv_exit_status() != 0:
        die("remote command did not exit with status 0")
    ch.close()
    client.close()


def send_file(ch, path):
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            ch.sendall(b)
    ch.shutdown_write()


def check_stream(ch, path):
    """Read the channel to EOF, comparing with the file; returns bytes."""
    n = 0
    with open(path, "rb") as f:
        while True:
            b = ch.recv(CHUNK)
            if not b:
                break
            if f.read(len(b)) != b:
                die("wrong data near offset %d" % n)
            n += len(b)
        if f.read(1):
            die("received only %d bytes" % n)
    return n


def report(a, nbytes, secs, algs, hsh=None):
    print('RESULT mode=%s bytes=%d secs=%.6f algs="%s"%s' % (
        a["mode"], nbytes, secs, algs, (" hash=" + hsh) if hsh else ""), flush=True)


def main():
    a = parse(sys.argv[1:])
    mode = a["mode"]
    if mode == "handshake":
        ms = []
        algs = ""
        for _ in range(int(a["arg"])):
            t0 = time.monotonic()
            client, ch = open_channel(a, "true")
            ch.shutdown_write()
            while ch.recv(CHUNK):
                pass
            algs = algs_of(a, client)
            finish(client, ch)
            ms.append((time.monotonic() - t0) * 1000.0)
        print('RESULT mode=handshake ms=%s algs="%s"' % (",".join("%.3f" % x for x in ms), algs),
              flush=True)
        return
    path = a["arg"]
    if "'" in path:
        die("file name with a quote")
    t0 = time.monotonic()
    if mode == "upload":
        client, ch = open_channel(a, "sha256sum")
        send_file(ch, path)
        out = b""
        while True:
            b = ch.recv(CHUNK)
            if not b:
                break
            out += b
        hsh = out.split()[0].decode() if out.split() else ""
        if len(hsh) != 64:
            die("sha256sum said %r" % out)
        algs = algs_of(a, client)
        finish(client, ch)
        report(a, os.path.getsize(path), time.monotonic() - t0, algs, hsh)
    elif mode == "download":
        client, ch = open_channel(a, "cat '%s'" % path)
        ch.shutdown_write()
        n = check_stream(ch, path)
        algs = algs_of(a, client)
        finish(client, ch)
        report(a, n, time.monotonic() - t0, algs)
    elif mode == "roundtrip":
        client, ch = open_channel(a, "cat")
        err = []

        def writer():
            try:
                send_file(ch, path)
            except Exception as e:  # reported by the main thread
                err.append(e)

        th = threading.Thread(target=writer)
        th.start()
        n = check_stream(ch, path)
        th.join()
        if err:
            die("write: %s" % err[0])
        algs = algs_of(a, client)
        finish(client, ch)
        report(a, n, time.monotonic() - t0, algs)
    else:
        die("unknown mode %s" % mode)


if __name__ == "__main__":
    try:
        main()
    except (paramiko.SSHException, OSError) as e:
        die("%s: %s" % (type(e).__name__, e))
