"""Peak memory of an SMTP server fed a 100 MB line without a newline.

    python soak/line_memory.py                       # every server below
    python soak/line_memory.py --servers modern legacy --mebibytes 100

Each server runs as a subprocess from its command line, with a 10 MiB
message size limit.  After EHLO (and, for the DATA case, MAIL, RCPT, DATA)
the kernel's peak-RSS counter is reset (/proc/PID/clear_refs), then the
line is sent and ended; the figure is VmHWM minus the RSS before the line.
tests/hostile/test_sizes.py runs the same measurement on both faces.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
SIZE_LIMIT = str(10 << 20)
MIB = 1 << 20
# The stdlib smtpd and aiosmtpd are compared on Python 3.11, which has both here.
PYTHON_311 = shutil.which("python3.11") or "/root/.pyenv/versions/3.11.7/bin/python3.11"

SERVERS: Dict[str, List[str]] = {
    "modern": [sys.executable, "-m", "smtpd_compat.modern", "-n", "-c", "smtpd_compat.modern.handlers.Sink",
               "-s", SIZE_LIMIT, "-l", "127.0.0.1:{port}"],
    "legacy": [sys.executable, "-m", "smtpd_compat", "-n", "-c", "smtpd_compat.DebuggingServer",
               "-s", SIZE_LIMIT, "127.0.0.1:{port}"],
    "aiosmtpd": [PYTHON_311, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                 "-s", SIZE_LIMIT, "-l", "127.0.0.1:{port}"],
    "stdlib": [PYTHON_311, "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer",
               "-s", SIZE_LIMIT, "127.0.0.1:{port}"],
}
MODES = {
    "command": [b"EHLO c"],
    "data": [b"EHLO c", b"MAIL FROM:<a@x.test>", b"RCPT TO:<b@x.test>", b"DATA"],
}
LINE_END = {"command": b"\r\n", "data": b"\r\n.\r\n"}


def memory_kib(pid: int) -> Dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of process ``pid``, in KiB."""
    values: Dict[str, int] = {}
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(value.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset the peak-RSS counter of ``pid`` (Linux 4.0+); False if refused."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as clear:
            clear.write("5")
        return True
    except OSError:
        return False


class Server:
    """One server command line running in a subprocess on a free port."""

    def __init__(self, argv: Sequence[str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        command = [arg.format(port=self.port) for arg in argv]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("server %s did not start" % command)
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def _reply(sock: socket.socket, buf: bytearray) -> bytes:
    """One complete reply; b"" if the connection closed first."""
    while True:
        start = 0
        end = buf.find(b"\r\n")
        while end >= 0:
            if buf[start + 3:start + 4] != b"-":
                reply = bytes(buf[:end + 2])
                del buf[:end + 2]
                return reply
            start = end + 2
            end = buf.find(b"\r\n", start)
        data = sock.recv(65536)
        if not data:
            return b""
        buf += data


def measure_line(server: Server, mode: str, mebibytes: int = 100) -> Tuple[Optional[int], bytes, bool]:
    """Send ``mebibytes`` without a newline in ``mode`` ("command" or
    "data"), then end the line.  Returns the server's peak RSS growth in KiB
    (None if the peak cannot be reset), its reply to the line's end (b"" if
    it closed), and whether a NOOP after it got 250."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        buf = bytearray()
        _reply(sock, buf)
        for command in MODES[mode]:
            sock.sendall(command + b"\r\n")
            reply = _reply(sock, buf)
            assert reply[:1] in (b"2", b"3"), (command, reply)
        baseline = memory_kib(server.proc.pid)["VmRSS"]
        if not reset_peak(server.proc.pid):
            return None, b"", False
        block = b"z" * MIB
        reply, serves_on = b"", False
        try:
            for _ in range(mebibytes):
                sock.sendall(block)
            sock.sendall(LINE_END[mode])
            reply = _reply(sock, buf)
            sock.settimeout(5)
            sock.sendall(b"NOOP\r\n")
            serves_on = _reply(sock, buf).startswith(b"250")
        except OSError:
            pass  # closed, or no answer to the NOOP
        growth = memory_kib(server.proc.pid)["VmHWM"] - baseline
    return growth, reply, serves_on


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", nargs="+", choices=sorted(SERVERS), default=list(SERVERS))
    parser.add_argument("--mebibytes", type=int, default=100)
    args = parser.parse_args()
    print("| server | line in | peak RSS growth | reply | serves on |")
    print("|---|---|---|---|---|")
    for name in args.servers:
        for mode in MODES:
            server = Server(SERVERS[name])
            try:
                growth, reply, serves_on = measure_line(server, mode, args.mebibytes)
            finally:
                server.stop()
            shown = "unmeasurable" if growth is None else "%.1f MiB" % (growth / 1024)
            text = reply.decode("ascii", "replace").strip() or "(connection closed)"
            print("| %s | %s | %s | %s | %s |" % (name, mode, shown, text, "yes" if serves_on else "no"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
