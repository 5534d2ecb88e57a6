#!/usr/bin/python3
"""
check/servers/asyncssh_server.py -- a throwaway SSH server built on AsyncSSH,
for the interop matrix (check/check_matrix.c via check/testlib/servers.c).

Owns: one listening socket on 127.0.0.1 (port chosen by the kernel), the
asyncio loop serving it, and the /bin/sh processes it runs for exec
requests. Must never: listen anywhere but 127.0.0.1, accept a user key
other than the ones in --authorized-keys, or need anything outside Debian's
packages (python3-asyncssh).

Behaviour: offers every key exchange, cipher and MAC algorithm this
AsyncSSH implements (not only its defaults; GSS-API key exchanges are left
out, there is no Kerberos here), and every host key algorithm the host keys
given with --hostkey allow (AsyncSSH derives those itself); accepts publickey authentication for any user name with a key
from --authorized-keys; runs exec requests with /bin/sh -c, copying channel
data to the command's stdin (EOF closes it), its stdout and stderr back,
then sends the exit status and closes.

Prints "VERSION asyncssh <version>" and "PORT <port>" on stdout, then
serves until killed. Diagnostics go to stderr.
"""
import argparse
import asyncio
import sys
import warnings

warnings.simplefilter("ignore")  # cryptography's deprecation notes on old ciphers

import asyncssh  # noqa: E402
from asyncssh.encryption import get_encryption_algs  # noqa: E402
from asyncssh.kex import get_kex_algs  # noqa: E402
from asyncssh.mac import get_mac_algs  # noqa: E402

CHUNK = 65536


def names(algs):
    return [a.decode("ascii") for a in algs]


async def pump_in(process, proc):
    """Channel data to the command's stdin; EOF closes it."""
    broken = False
    try:
        while True:
            data = await process.stdin.read(CHUNK)
            if not data:
                break
            if broken:
                continue
            try:
                proc.stdin.write(data)
                await proc.stdin.drain()
            except (BrokenPipeError, ConnectionResetError):
                broken = True  # the command stopped reading: drop the rest
    except (asyncssh.Error, OSError):
        pass
    try:
        proc.stdin.close()
    except OSError:
        pass


async def pump_out(src, dst):
    """A pipe of the command to the channel, until the pipe's EOF."""
    try:
        while True:
            data = await src.read(CHUNK)
            if not data:
                break
            dst.write(data)
            await dst.drain()
    except (asyncssh.Error, OSError):
        pass


async def handle(process):
    command = process.command
    if command is None:
        process.stderr.write(b"only exec is supported\n")
        process.exit(1)
        return
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    tin = asyncio.ensure_future(pump_in(process, proc))
    await asyncio.gather(pump_out(proc.stdout, process.stdout),
                         pump_out(proc.stderr, process.stderr))
    status = await proc.wait()
    if status < 0:
        status = 128 - status  # killed by a signal: report it as the shell would
    if not tin.done():
        tin.cancel()
    try:
        process.stdout.write_eof()
    except (asyncssh.Error, OSError):
        pass
    process.exit(status)


async def start(args):
    kex = [a for a in names(get_kex_algs()) if not a.startswith("gss-")]
    server = await asyncssh.listen(
        "127.0.0.1", 0,
        server_host_keys=args.hostkey,
        authorized_client_keys=args.authorized_keys,
        kex_algs=kex,
        encryption_algs=names(get_encryption_algs()),
        mac_algs=names(get_mac_algs()),
        compression_algs=["none"],
        encoding=None,
        allow_pty=False,
        agent_forwarding=False,
        x11_forwarding=False,
        process_factory=handle)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("VERSION asyncssh %s\nPORT %d\n" % (asyncssh.__version__, port))
    sys.stdout.flush()
    await asyncio.Event().wait()  # serve until killed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hostkey", action="append", required=True)
    ap.add_argument("--authorized-keys", required=True)
    args = ap.parse_args()
    asyncio.run(start(args))


if __name__ == "__main__":
    main()
