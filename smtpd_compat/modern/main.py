"""The ``python -m smtpd_compat.modern`` command line, flag for flag with aiosmtpd's.

Differences from aiosmtpd 1.4.6: SIGTERM stops the server as cleanly as
SIGINT (exit status 0), open client connections are closed on the way out,
and the privilege drop to ``nobody`` happens after binding, so privileged
ports such as 25 work when started as root.
"""

from __future__ import annotations

import logging
import os
import signal
import ssl
import sys
from argparse import ArgumentParser, Namespace
from contextlib import suppress
from functools import partial
from importlib import import_module
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Optional, Sequence, Tuple

from smtpd_compat.modern import __version__
from smtpd_compat.modern.controller import UnthreadedController
from smtpd_compat.modern.smtp import DATA_SIZE_DEFAULT, make_loop

pwd: Optional[ModuleType]
try:
    import pwd
except ImportError:  # Windows
    pwd = None

__all__ = ["main"]

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 8025
DEFAULT_CLASS = "smtpd_compat.modern.handlers.Debugging"

# "python -m smtpd_compat.modern" would otherwise show up as ".../__main__.py".
PROGRAM = "smtpd_compat.modern" if "__main__.py" in sys.argv[0] else os.path.basename(sys.argv[0])

#: Signals that end the server cleanly, where the platform has them.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM") if hasattr(signal, name)
)


#: The opt-in extensions' flags: (flag, extension, RFC); each sets
#: ``SMTP(..., enable_<extension>=True)``.  The legacy CLI takes the same.
EXTENSION_FLAGS = (
    ("--chunking", "CHUNKING", "RFC 3030"),
    ("--binarymime", "BINARYMIME", "RFC 3030, with --chunking"),
    ("--pipelining", "PIPELINING", "RFC 2920"),
    ("--enhancedstatuscodes", "ENHANCEDSTATUSCODES", "RFC 2034"),
    ("--dsn", "DSN", "RFC 3461"),
)


def extension_settings(options: Any) -> Dict[str, bool]:
    """The ``enable_<extension>`` keywords the flags turned on."""
    return {
        f"enable_{extension}": True
        for _, extension, _ in EXTENSION_FLAGS
        if getattr(options, f"enable_{extension}", False)
    }


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog=PROGRAM, description="An RFC 5321 SMTP server with extensions.")
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-n",
        "--nosetuid",
        dest="setuid",
        default=True,
        action="store_false",
        help=(
            "This program generally tries to setuid ``nobody``, unless this "
            "flag is set.  The setuid call will fail if this program is not "
            "run as root (in which case, use this flag)."
        ),
    )
    parser.add_argument(
        "-c",
        "--class",
        dest="classpath",
        metavar="CLASSPATH",
        default=DEFAULT_CLASS,
        help=(
            "Use the given class, as a Python dotted import path, as the "
            "handler class for SMTP events.  This class can process "
            "received messages and do other actions during the SMTP "
            f"dialog.  Uses ``{DEFAULT_CLASS}`` by default."
        ),
    )
    parser.add_argument(
        "-s",
        "--size",
        metavar="SIZE",
        type=int,
        help=(
            "Restrict the total size of the incoming message to "
            "``SIZE`` number of bytes via the RFC 1870 SIZE extension. "
            f"Defaults to {DATA_SIZE_DEFAULT:,} bytes."
        ),
    )
    parser.add_argument(
        "-u",
        "--smtputf8",
        default=False,
        action="store_true",
        help="Enable the ``SMTPUTF8`` extension as defined in RFC 6531.",
    )
    parser.add_argument(
        "-d",
        "--debug",
        default=0,
        action="count",
        help="Increase debugging output. Every ``-d`` increases debugging level by one.",
    )
    parser.add_argument(
        "-l",
        "--listen",
        metavar="[HOST][:PORT]",
        nargs="?",
        default=None,
        help=(
            "Optional host and port to listen on.  If the ``PORT`` part is not "
            f"given, then port ``{DEFAULT_PORT}`` is used.  If only ``:PORT`` is "
            f"given, then ``{DEFAULT_HOST}`` is used for the hostname.  If neither "
            f"are given, ``{DEFAULT_HOST}:{DEFAULT_PORT}`` is used."
        ),
    )
    for flag, metavar, partner, what, protocol in (
        ("--smtpscert", "CERTFILE", "--smtpskey", "certificate file", "**SMTPS**"),
        ("--smtpskey", "KEYFILE", "--smtpscert", "key file", "**SMTPS**"),
        ("--tlscert", "CERTFILE", "--tlskey", "certificate file", "**STARTTLS**"),
        ("--tlskey", "KEYFILE", "--tlscert", "key file", "**STARTTLS**"),
    ):
        parser.add_argument(
            flag,
            metavar=metavar,
            type=Path,
            default=None,
            help=(
                f"The {what} for implementing {protocol}. If given, the parameter "
                f"``{partner}`` must also be specified."
            ),
        )
    parser.add_argument(
        "--no-requiretls",
        dest="requiretls",
        default=True,
        action="store_false",
        help=(
            "If specified, disables ``require_starttls`` of the SMTP class. "
            "(By default, ``require_starttls`` is True.) "
            "Has no effect if ``--tlscert`` and ``--tlskey`` are not specified."
        ),
    )
    for flag, extension, rfc in EXTENSION_FLAGS:
        parser.add_argument(
            flag,
            dest=f"enable_{extension}",
            default=False,
            action="store_true",
            help=f"Offer the ``{extension}`` extension ({rfc}); off by default, as in aiosmtpd.",
        )
    parser.add_argument(
        "classargs",
        metavar="CLASSARGS",
        nargs="*",
        default=(),
        help="Additional arguments passed to the handler CLASS.",
    )
    return parser


def _check_cert_pair(
    parser: ArgumentParser, kind: str, cert: Optional[Path], key: Optional[Path]
) -> None:
    if bool(cert) ^ bool(key):
        parser.error(f"--{kind}cert and --{kind}key must be specified together")
    if cert and not cert.exists():
        parser.error(f"Cert file {cert} not found")
    if key and not key.exists():
        parser.error(f"Key file {key} not found")


def parseargs(args: Optional[Sequence[str]] = None) -> Tuple[ArgumentParser, Namespace]:
    """Parse the command line and build the handler; errors exit via the parser."""
    parser = _parser()
    parsed = parser.parse_args(args)
    path, _, name = parsed.classpath.rpartition(".")
    handler_class = getattr(import_module(path), name)
    if hasattr(handler_class, "from_cli"):
        parsed.handler = handler_class.from_cli(parser, *parsed.classargs)
    else:
        if parsed.classargs:
            parser.error(f"Handler class {path} takes no arguments")
        parsed.handler = handler_class()

    if parsed.listen is None:
        parsed.host, parsed.port = DEFAULT_HOST, DEFAULT_PORT
    else:
        # rpartition so that an IPv6 host such as "::1:25" keeps its colons.
        host, colon, port = parsed.listen.rpartition(":")
        if not colon:
            parsed.host, parsed.port = port, DEFAULT_PORT
        else:
            parsed.host = host or DEFAULT_HOST
            try:
                parsed.port = int(port) if port else DEFAULT_PORT
            except ValueError:
                parser.error(f"Invalid port number: {port}")

    _check_cert_pair(parser, "smtps", parsed.smtpscert, parsed.smtpskey)
    _check_cert_pair(parser, "tls", parsed.tlscert, parsed.tlskey)
    return parser, parsed


def _server_tls_context(cert: Optional[Path], key: Optional[Path]) -> Optional[ssl.SSLContext]:
    if not (cert and key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.check_hostname = False
    context.load_cert_chain(str(cert), str(key))
    return context


def _drop_privileges() -> None:
    """Become ``nobody``, or exit 1 with aiosmtpd's messages."""
    if pwd is None:
        print('Cannot import module "pwd"; try running with -n option.', file=sys.stderr)
        sys.exit(1)
    try:
        os.setuid(pwd.getpwnam("nobody").pw_uid)
    except (PermissionError, KeyError):
        print('Cannot setuid "nobody"; try running with -n option.', file=sys.stderr)
        sys.exit(1)


def main(args: Optional[Sequence[str]] = None) -> None:
    """Serve until SIGINT/SIGTERM (or Ctrl-C), then close everything and return."""
    parser, ns = parseargs(args=args)

    logging.basicConfig(level=logging.ERROR)
    log = logging.getLogger("mail.log")
    loop = make_loop()
    if ns.debug > 0:
        log.setLevel(logging.INFO)
    if ns.debug > 1:
        log.setLevel(logging.DEBUG)
    if ns.debug > 2:
        loop.set_debug(enabled=True)

    # Built through functools.partial, as aiosmtpd's main built its server:
    # aiosmtpd's tests patch ``main.partial`` to stop right there.
    controller = partial(
        UnthreadedController,
        ns.handler,
        hostname=ns.host,
        port=ns.port,
        loop=loop,
        ssl_context=_server_tls_context(ns.smtpscert, ns.smtpskey),
        data_size_limit=ns.size,
        enable_SMTPUTF8=ns.smtputf8,
        tls_context=_server_tls_context(ns.tlscert, ns.tlskey),
        require_starttls=ns.requiretls,
        **extension_settings(ns),
    )()
    log.debug("Attempting to start server on %s:%s", ns.host, ns.port)
    controller.begin()
    installed = []
    try:
        if ns.setuid:
            _drop_privileges()
        for signum in STOP_SIGNALS:
            # Not available on Windows or outside the main thread; Ctrl-C
            # then arrives as KeyboardInterrupt instead.
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, loop.stop)
                installed.append(signum)
        # Logged once signals are handled, so watchers may signal right after it.
        log.info("Server is listening on %s:%s", ns.host, controller.port)
        log.debug("Starting asyncio loop")
        with suppress(KeyboardInterrupt):
            loop.run_forever()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        controller.end()
        log.debug("Completed asyncio loop")
        loop.close()
