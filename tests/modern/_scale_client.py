"""The client side of the scale-out test, run inside the balancer's network
namespace (``ip netns exec``):

``load HOST PORT --messages N --threads T --per-session K --cap SECONDS``
    sends N numbered messages (``X-Test-Id: n``) over T threads, K per
    connection, and prints one line per message as its fate is known:
    ``ok n`` (250), ``cut n`` (connection lost or refused mid-transaction)
    or ``refused n`` (another reply).  A cut message is never retried, so a
    stored message can only be there once.  Stops at the cap.
``probe HOST PORT SOURCE``
    sends a valid PROXY v2 header from SOURCE and prints what came back.
"""

from __future__ import annotations

import argparse
import smtplib
import socket
import struct
import sys
import threading
import time
from ipaddress import IPv4Address
from typing import Iterator

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def load(args: argparse.Namespace) -> None:
    numbers: Iterator[int] = iter(range(args.messages))
    lock = threading.Lock()
    deadline = time.monotonic() + args.cap

    def report(verdict: str, number: int) -> None:
        with lock:
            print(verdict, number, flush=True)

    def next_number() -> "int | None":
        with lock:
            return next(numbers, None) if time.monotonic() < deadline else None

    def send(client: smtplib.SMTP, number: int) -> None:
        message = f"X-Test-Id: {number}\r\nSubject: {number}\r\n\r\nmessage {number}\r\n"
        try:
            client.sendmail("a@example.test", ["b@example.test"], message)
        except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused):
            report("refused", number)
        else:
            report("ok", number)

    def worker() -> None:
        pending = next_number()
        while pending is not None:
            try:
                with smtplib.SMTP(args.host, args.port, timeout=10) as client:
                    for _ in range(args.per_session):
                        if pending is None:
                            break
                        send(client, pending)
                        pending = next_number()
            except (OSError, smtplib.SMTPException):
                if pending is not None:
                    report("cut", pending)
                    pending = next_number()

    # The balancer may still be starting: wait (bounded) until it greets.
    while True:
        try:
            smtplib.SMTP(args.host, args.port, timeout=10).quit()
            break
        except (OSError, smtplib.SMTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def probe(args: argparse.Namespace) -> None:
    body = IPv4Address("192.0.2.1").packed + IPv4Address(args.host).packed + struct.pack("!HH", 40000, args.port)
    header = V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    with socket.create_connection((args.host, args.port), timeout=10, source_address=(args.source, 0)) as sock:
        sock.sendall(header)
        received = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    print(repr(received), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    load_parser = commands.add_parser("load")
    probe_parser = commands.add_parser("probe")
    for sub in (load_parser, probe_parser):
        sub.add_argument("host")
        sub.add_argument("port", type=int)
    load_parser.add_argument("--messages", type=int, default=300)
    load_parser.add_argument("--threads", type=int, default=6)
    load_parser.add_argument("--per-session", type=int, default=5)
    load_parser.add_argument("--cap", type=float, default=30.0)
    probe_parser.add_argument("source")
    args = parser.parse_args()
    load(args) if args.command == "load" else probe(args)


if __name__ == "__main__":
    sys.exit(main())
