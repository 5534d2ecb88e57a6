#!/usr/bin/python3
"""
check/servers/paramiko_server.py -- a throwaway SSH server built on paramiko's
server mode, for the interop matrix (check/check_matrix.c via
check/testlib/servers.c).

Owns: one listening socket on 127.0.0.1 (port chosen by the kernel), one
thread per connection, and the /bin/sh processes it runs for exec requests.
Must never: listen anywhere but 127.0.0.1, accept a user key other than the
ones in --authorized-keys, or need anything outside Debian's packages
(python3-paramiko).

Behaviour: offers every algorithm this paramiko implements (its preferred
lists are all of them; group exchange too when /etc/ssh/moduli is readable)
and the host keys given with --hostkey; accepts publickey authentication for
any user name with a key from --authorized-keys; runs exec requests with
/bin/sh -c, copying channel data to the command's stdin (EOF closes it), its
stdout and stderr back, then sends EOF, the exit status and CLOSE.

Prints "VERSION paramiko <version>" and "PORT <port>" on stdout, then
serves until killed. Diagnostics go to stderr.
"""
import argparse
import os
import socket
import subprocess
import sys
import threading

import paramiko

CHUNK = 65536


def load_host_key(path):
    """A private key of any type paramiko knows, from an OpenSSH file."""
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(path)
        except (paramiko.SSHException, ValueError) as e:
            errors.append("%s: %s" % (cls.__name__, e))
    raise SystemExit("paramiko_server: cannot load host key %s (%s)" % (path, "; ".join(errors)))


def load_authorized(path):
    """The base64 key blobs of an authorized_keys file."""
    blobs = set()
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and not line.startswith("#"):
                blobs.add(fields[1])
    return blobs


def pump_in(chan, proc):
    """Channel data to the command's stdin; EOF (or a closed channel) closes it."""
    broken = False
    try:
        while True:
            data = chan.recv(CHUNK)
            if not data:
                break
            if broken:
                continue
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (BrokenPipeError, OSError):
                broken = True  # the command stopped reading: drop the rest
    except (EOFError, OSError, paramiko.SSHException):
        pass
    try:
        proc.stdin.close()
    except OSError:
        pass


def pump_out(src, send):
    """A pipe of the command to the channel, until the pipe's EOF."""
    try:
        while True:
            data = os.read(src.fileno(), CHUNK)
            if not data:
                break
            send(data)
    except (OSError, EOFError, paramiko.SSHException):
        pass


# paramiko sends CHANNEL_SUCCESS for an exec request only after
# check_channel_exec_request returned; a quick command started from it could
# close the channel before that reply. Remember when each reply is out, and
# start the command only then.
_replied = {}
_replied_lock = threading.Lock()


def _reply_event(key):
    with _replied_lock:
        return _replied.setdefault(key, threading.Event())


_orig_send_user_message = paramiko.Transport._send_user_message


def _send_user_message(self, m):
    _orig_send_user_message(self, m)
    b = m.asbytes()
    if len(b) >= 5 and b[0] == 99:  # SSH_MSG_CHANNEL_SUCCESS, uint32 recipient channel
        _reply_event((id(self), int.from_bytes(b[1:5], "big"))).set()


paramiko.Transport._send_user_message = _send_user_message


def run_exec(chan, command):
    _reply_event((id(chan.get_transport()), chan.remote_chanid)).wait(20)
    proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    tin = threading.Thread(target=pump_in, args=(chan, proc), daemon=True)
    tout = threading.Thread(target=pump_out, args=(proc.stdout, chan.sendall), daemon=True)
    terr = threading.Thread(target=pump_out, args=(proc.stderr, chan.sendall_stderr), daemon=True)
    tin.start()
    tout.start()
    terr.start()
    tout.join()
    terr.join()
    status = proc.wait()
    if status < 0:
        status = 128 - status  # killed by a signal: report it as the shell would
    try:
        chan.shutdown_write()
        chan.send_exit_status(status)
        chan.close()
    except (OSError, EOFError, paramiko.SSHException):
        pass


class Server(paramiko.ServerInterface):
    def __init__(self, authorized):
        self.authorized = authorized

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if key.get_base64() in self.authorized:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel, command):
        cmd = command.decode("utf-8", "replace") if isinstance(command, bytes) else command
        threading.Thread(target=run_exec, args=(channel, cmd), daemon=True).start()
        return True


def serve(conn, keys, authorized):
    t = paramiko.Transport(conn)
    try:
        t.load_server_moduli()  # /etc/ssh/moduli: enables group exchange
        for k in keys:
            t.add_server_key(k)
        t.start_server(server=Server(authorized))
        while t.is_active():
            t.join(1.0)
    except (EOFError, OSError, paramiko.SSHException) as e:
        print("paramiko_server: connection: %s" % e, file=sys.stderr)
    finally:
        t.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hostkey", action="append", required=True)
    ap.add_argument("--authorized-keys", required=True)
    args = ap.parse_args()

    keys = [load_host_key(p) for p in args.hostkey]
    authorized = load_authorized(args.authorized_keys)
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    sys.stdout.write("VERSION paramiko %s\nPORT %d\n" % (paramiko.__version__, lsock.getsockname()[1]))
    sys.stdout.flush()
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn, keys, authorized), daemon=True).start()


if __name__ == "__main__":
    main()
