"""Peak server memory for one huge message: smtpd_compat's modern face
streaming to ``Spooler`` against aiosmtpd 1.4.6 (which holds the message).

Each server runs in its own process (a venv with aiosmtpd 1.4.6 for the
reference); the figure is ``VmHWM`` (peak RSS) minus the RSS after the
greeting, from ``/proc``.  Linux only, stdlib only.

    python bench/streaming_rss.py --python /work/venvs/py312/bin/python --mib 1024 --ref-mib 256
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

OURS = """
import asyncio, sys
from smtpd_compat.modern.smtp import SMTP
from smtpd_compat.modern.spool import Spooler
async def main():
    spooler = Spooler(sys.argv[1])
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(spooler, data_size_limit=None), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""

AIOSMTPD = """
import asyncio, sys, pathlib
from aiosmtpd.smtp import SMTP
class ToFile:
    async def handle_DATA(self, server, session, envelope):
        pathlib.Path(sys.argv[1], "message.eml").write_bytes(envelope.original_content)
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(ToFile(), data_size_limit=None), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        data += sock.recv(4096)
    return data


def measure(python: str, program: str, mib: int) -> float:
    """MiB of peak RSS above idle while one ``mib`` MiB message goes in."""
    with tempfile.TemporaryDirectory() as spool:
        server = subprocess.Popen([python, "-c", program, spool], stdout=subprocess.PIPE, cwd=REPO,
                                  env={"PYTHONPATH": str(REPO)})
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            with socket.create_connection(("127.0.0.1", port)) as sock:
                reply(sock)
                idle = kib(server.pid, "VmRSS")
                for command in (b"EHLO c", b"MAIL FROM:<a@x.test>", b"RCPT TO:<b@x.test>", b"DATA"):
                    sock.sendall(command + b"\r\n")
                    reply(sock)
                block = (b"x" * 998 + b"\r\n") * 1024  # 1024 lines of 1000 bytes
                for _ in range(mib * 1024 * 1024 // len(block)):
                    sock.sendall(block)
                sock.sendall(b".\r\n")
                started = time.monotonic()
                assert reply(sock).startswith(b"250"), "message refused"
                peak = kib(server.pid, "VmHWM")
            print(f"  reply after the last byte: {time.monotonic() - started:.2f} s", file=sys.stderr)
            return (peak - idle) / 1024
        finally:
            server.kill()
            server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="an interpreter with aiosmtpd 1.4.6")
    parser.add_argument("--mib", type=int, default=1024, help="message size for smtpd_compat")
    parser.add_argument("--ref-mib", type=int, default=256, help="message size for aiosmtpd (it holds it all)")
    args = parser.parse_args()
    ours = measure(args.python, OURS, args.mib)
    print(f"smtpd_compat.modern + Spooler, {args.mib} MiB message: peak RSS {ours:.1f} MiB above idle")
    theirs = measure(args.python, AIOSMTPD, args.ref_mib)
    print(f"aiosmtpd 1.4.6 (handle_DATA to a file), {args.ref_mib} MiB message: peak RSS {theirs:.1f} MiB above idle")


if __name__ == "__main__":
    main()
