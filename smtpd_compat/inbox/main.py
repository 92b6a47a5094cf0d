"""The ``python -m smtpd_compat.inbox`` (``smtpd-compat-inbox``) command line."""

from __future__ import annotations

import logging
import os
import re
import signal
import sqlite3
import sys
import threading
from argparse import ArgumentParser, ArgumentTypeError, Namespace
from typing import Any, Optional, Sequence, Tuple

from smtpd_compat.inbox.release import Relay
from smtpd_compat.inbox.server import Inbox
from smtpd_compat.inbox.store import BaseStore, MessageStore, SQLiteStore
from smtpd_compat.common.address import MAX_PORT, format_address
from smtpd_compat.inbox.web import is_loopback

__all__ = ["main"]

PROGRAM = "smtpd_compat.inbox" if "__main__.py" in sys.argv[0] else os.path.basename(sys.argv[0])
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def address(text: str) -> Tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``; port 0 asks for a free one."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", text)
    if match is None:
        raise ArgumentTypeError("expected HOST:PORT (or [IPv6]:PORT), got {!r}".format(text))
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if port > MAX_PORT:
        raise ArgumentTypeError("port {} is out of range".format(port))
    return host, port


def size(text: str) -> int:
    """A byte count such as ``500000``, ``64K``, ``256M`` or ``1G``; 0 means no cap."""
    match = re.fullmatch(r"(\d+)([KMG]?)B?", text.strip().upper())
    if match is None:
        raise ArgumentTypeError(
            "expected a size such as 1000000, 64K, 256M or 1G, got {!r}".format(text)
        )
    return int(match.group(1)) * UNITS[match.group(2)]


def count(text: str) -> int:
    if not text.isdigit():
        raise ArgumentTypeError("expected a whole number, got {!r}".format(text))
    return int(text)


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog=PROGRAM,
        description="Receive mail over SMTP and browse it in a web page or through a JSON API.",
    )
    for flag, port, what in (("--smtp", 1025, "SMTP listens"), ("--http", 8025, "the page and API listen")):
        parser.add_argument(
            flag,
            type=address,
            default=("127.0.0.1", port),
            metavar="HOST:PORT",
            help="where {} (default 127.0.0.1:{}; port 0: any free port)".format(what, port),
        )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="keep messages in this SQLite file across restarts (default: in memory)",
    )
    parser.add_argument(
        "--max-messages",
        type=count,
        default=500,
        metavar="N",
        help="keep at most N messages, dropping the oldest (default 500; 0: no cap)",
    )
    parser.add_argument(
        "--max-bytes",
        type=size,
        default=size("256M"),
        metavar="SIZE",
        help="keep at most SIZE bytes of messages, dropping the oldest (default 256M; 0: no cap)",
    )
    parser.add_argument(
        "--relay",
        type=address,
        metavar="HOST:PORT",
        help="allow releasing messages, only to this SMTP server (default: release is off)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log SMTP and HTTP requests to stderr"
    )
    return parser


def make_store(args: Namespace) -> BaseStore:
    caps: Any = {"max_messages": args.max_messages or None, "max_bytes": args.max_bytes or None}
    return MessageStore(**caps) if args.db is None else SQLiteStore(args.db, **caps)


def _warn_beyond_loopback(args: Namespace) -> None:
    exposed = [host for host, _ in (args.smtp, args.http) if not is_loopback(host)]
    if exposed:
        print(
            "{}: warning: listening beyond loopback on {}: anyone who can reach it can read, delete"
            " and release the mail".format(PROGRAM, ", ".join(sorted(set(exposed)))),
            file=sys.stderr,
        )


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _warn_beyond_loopback(args)
    try:
        store = make_store(args)
    except (OSError, ValueError, sqlite3.Error) as exc:
        parser.exit(1, "{}: cannot open the store {}: {}\n".format(PROGRAM, args.db, exc))
    inbox = Inbox(store, args.smtp, args.http, relay=Relay(*args.relay) if args.relay else None)
    try:
        inbox.start()
    except OSError as exc:
        store.close()
        parser.exit(1, "{}: cannot listen: {}\n".format(PROGRAM, exc))
    print("SMTP on {}".format(format_address(args.smtp[0], inbox.smtp_port)), flush=True)
    print("Inbox on {}".format(inbox.url), flush=True)
    stopped = threading.Event()
    for name in ("SIGINT", "SIGTERM"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: stopped.set())
    try:
        # A timed wait, so a Windows console's Ctrl-C gets a chance to run the handler.
        while not stopped.wait(0.5):
            pass
    finally:
        inbox.stop()
        store.close()

